/* Linux-only system headers that Swift's Glibc module does not cover. */
#include <sys/signalfd.h>
static inline int signalfd_like(sigset_t *mask) { return signalfd(-1, mask, SFD_NONBLOCK | SFD_CLOEXEC); }
