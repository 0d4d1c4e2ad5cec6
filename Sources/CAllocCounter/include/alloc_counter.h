#ifndef NFQ_ALLOC_COUNTER_H
#define NFQ_ALLOC_COUNTER_H
/* Counts heap allocations made by this process (malloc, calloc, realloc,
   aligned allocations), by wrapping glibc's allocator. Linked only into the
   benchmark and the allocation test, never into the daemon. */
unsigned long nfq_alloc_count(void);
/* Allocations made by the calling thread. */
unsigned long nfq_alloc_count_this_thread(void);
void nfq_alloc_trace(int n);
#endif
