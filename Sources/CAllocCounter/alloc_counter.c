#include <errno.h>
#include <stddef.h>
#include <stdatomic.h>
#include "alloc_counter.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static _Atomic unsigned long count;
static _Thread_local unsigned long thread_count;

unsigned long nfq_alloc_count(void) { return atomic_load_explicit(&count, memory_order_relaxed); }
unsigned long nfq_alloc_count_this_thread(void) { return thread_count; }

void nfq_alloc_maybe_trace(void);
void *malloc(size_t n) { atomic_fetch_add_explicit(&count, 1, memory_order_relaxed); thread_count++; nfq_alloc_maybe_trace(); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { atomic_fetch_add_explicit(&count, 1, memory_order_relaxed); thread_count++; return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { atomic_fetch_add_explicit(&count, 1, memory_order_relaxed); thread_count++; return __libc_realloc(p, n); }
void free(void *p) { __libc_free(p); }
void *memalign(size_t a, size_t n) { atomic_fetch_add_explicit(&count, 1, memory_order_relaxed); thread_count++; return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { return memalign(a, n); }
int posix_memalign(void **out, size_t a, size_t n) {
    void *p = memalign(a, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

/* Debugging aid: print a backtrace for the next `n` allocations (stderr). */
#include <execinfo.h>
static _Atomic int trace_left;
static _Thread_local int in_trace;
void nfq_alloc_trace(int n) { atomic_store(&trace_left, n); }
void nfq_alloc_maybe_trace(void) {
    if (atomic_load_explicit(&trace_left, memory_order_relaxed) > 0 && !in_trace) {
        in_trace = 1;
        atomic_fetch_sub(&trace_left, 1);
        void *frames[16];
        int k = backtrace(frames, 16);
        backtrace_symbols_fd(frames, k, 2);
        in_trace = 0;
    }
}
