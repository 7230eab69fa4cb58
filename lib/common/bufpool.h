/*
 * bufpool.h -- reusable 4 KiB-aligned block buffers.
 *
 * Block-sized buffers (4 KiB to 128 KiB, multiples of 4 KiB) are taken
 * and returned at a high rate by different threads (writers allocate
 * dirty blocks, the sync thread and the cache free them). Going through
 * malloc for each made glibc hand pages back to the kernel and fault them
 * in again (measured: a third of sequential-write time in clear_page).
 * The pool keeps freed buffers per size class up to a retention limit
 * (bufpool_budget_add); beyond it their pages go back to the kernel.
 * New buffers come from pre-faulted slabs (bufpool.c), never from malloc:
 * a buffer from here goes back only through bufpool_put, never free().
 * Every buffer is aligned for O_DIRECT.
 */
#ifndef CASK_COMMON_BUFPOOL_H
#define CASK_COMMON_BUFPOOL_H
#include <stddef.h>

#define BUFPOOL_MAX (128u * 1024u)

/* size: a multiple of 4096, at most BUFPOOL_MAX. Never fails. */
void *bufpool_get(size_t size);
void bufpool_put(void *buf, size_t size);
/* n buffers of one size at once (fewer lock rounds than n bufpool_get). */
void bufpool_get_n(size_t size, void **out, size_t n);
/*
 * The pool keeps at most this many idle bytes: the sum of what open pools
 * may hold (dirty limit + cache) added and removed as they open and close,
 * so idle buffers never exceed the memory the engine is configured to use.
 */
void bufpool_budget_add(long long bytes);
void bufpool_trim(void);
/* Bytes held in the free lists now (for tests and stats). */
size_t bufpool_retained(void);
#endif
