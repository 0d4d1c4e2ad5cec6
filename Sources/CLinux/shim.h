/* Linux-only system headers that Swift's Glibc module does not cover. */
#include <sys/signalfd.h>
static inline int signalfd_like(sigset_t *mask) { return signalfd(-1, mask, SFD_NONBLOCK | SFD_CLOEXEC); }
#include <malloc.h>
/* glibc's allocator: allocations of `bytes` and more are mapped each on
   their own (and the threshold no longer adapts); freed heap pages go back
   to the system. */
static inline int malloc_map_from(int bytes) { return mallopt(M_MMAP_THRESHOLD, bytes); }
static inline int malloc_give_back(void) { return malloc_trim(0); }
/* The allocator's own figures, in bytes: in use (heap chunks and mapped
   blocks), and free but kept in the heap. */
static inline unsigned long malloc_bytes_in_use(void) { struct mallinfo2 m = mallinfo2(); return m.uordblks + m.hblkhd; }
static inline unsigned long malloc_bytes_free(void) { struct mallinfo2 m = mallinfo2(); return m.fordblks; }
#include <sys/syscall.h>
#include <sys/socket.h>
#include <unistd.h>
/* struct mmsghdr and sendmmsg/recvmmsg are GNU extensions the Glibc module
   does not expose: the same layout and the system calls themselves. */
struct batch_msghdr { struct msghdr msg_hdr; unsigned int msg_len; };
static inline int batch_sendmmsg(int fd, struct batch_msghdr *v, unsigned int n, int flags) {
    return (int)syscall(SYS_sendmmsg, fd, v, n, flags);
}
static inline int batch_recvmmsg(int fd, struct batch_msghdr *v, unsigned int n, int flags) {
    return (int)syscall(SYS_recvmmsg, fd, v, n, flags, (void *)0);
}
