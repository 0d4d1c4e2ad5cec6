/* Linux-only system headers that Swift's Glibc module does not cover. */
#include <sys/signalfd.h>
