/*
 * aread.h -- asynchronous block reads through io_uring (aread.c).
 *
 * A batch names blocks by their pointers; aread_submit sends the device
 * reads of those not in the cache together, and fn(arg, err) runs once,
 * on the pool's completion thread, when every block is verified and its
 * bytes are in the caller's buffers. See docs/design-vio.md §8.
 */
#ifndef CASK_ENGINE_AREAD_H
#define CASK_ENGINE_AREAD_H

#include <stddef.h>
#include <stdint.h>
#include "phys.h"

typedef struct ce_pool ce_pool;
typedef struct aread aread;
typedef struct aread_batch aread_batch;
/* fn must not wait for the pool's sync thread: a commit may be waiting for this thread. */
typedef void (*aread_done_fn)(void *arg, int err);

/* At pool open (vdevs open): set up the ring and the completion thread, or note why not. */
void aread_init(ce_pool *p);
/* At pool close: nothing is in flight (every handle is closed). */
void aread_fini(ce_pool *p);
/* 1: asynchronous reads work for this pool (a ring, and every vdev is a plain file). */
int aread_ready(const ce_pool *p);
/*
 * Whoever holds free_lock for writing calls this before handing freed
 * space out again: it waits until no asynchronous read started under an
 * older root is still reading (the completion thread never takes free_lock).
 */
void aread_drain(ce_pool *p);

/* The caller holds free_lock (read) from aread_batch_new to aread_submit. */
aread_batch *aread_batch_new(ce_pool *p, aread_done_fn fn, void *arg);
/*
 * Bytes [off, off+len) of bp's logical block go to dst: a hole is zeroes,
 * a cached block is copied now, a pointer that cannot be right is a
 * checksum error; the rest is read at aread_submit.
 */
void aread_add(aread_batch *b, const bp_phys *bp, uint8_t *dst, uint32_t off, uint32_t len);
/*
 * 1: device reads are in flight and fn(arg, err) will run once on the
 * completion thread (it may already have run when this returns).
 * Otherwise nothing needed a device: the batch is freed, fn is not
 * called, and the result (0 or -EIO) is returned.
 */
int aread_submit(aread_batch *b);
/*
 * Read-ahead (aread.c invariant 7): mark a new batch as one that only
 * fills the cache, then name its blocks with aread_add_prefetch (holes,
 * cached blocks and impossible pointers are skipped). fn's err says
 * whether every block was verified; failed blocks are not cached.
 */
void aread_batch_prefetch(aread_batch *b);
/*
 * The same for other kinds of batches that only fill the cache: AREAD_TREE
 * (indirect blocks an asynchronous read's lookup missed), AREAD_FILL (a
 * prefetch request, ce_vol_prefetch_async); AREAD_RA is read-ahead.
 * Each kind has its counter in ce_aread_stat.
 */
enum { AREAD_RA = 1, AREAD_TREE = 2, AREAD_FILL = 3 };
void aread_batch_fill(aread_batch *b, int kind);
void aread_add_prefetch(aread_batch *b, const bp_phys *bp);
/* Free a batch that will not be submitted (nothing of it was sent). */
void aread_batch_drop(aread_batch *b);

/* Counters (ce_pool_aread_stat). */
void aread_note_fallback(ce_pool *p);
void aread_note_inline(ce_pool *p);

/*
 * Test hook: while held, finished device reads are parked instead of
 * processed; aread_test_release processes the parked ones on the calling
 * thread, newest submitted first (out-of-order completion, made
 * deterministic). Call it once every read in flight is parked
 * (aread_test_wait_held waits until n are).
 */
void aread_test_hold(ce_pool *p);
void aread_test_wait_held(ce_pool *p, unsigned n);
void aread_test_release(ce_pool *p);
/* Test hook: wait until aread_drain has found reads in flight n times (and so waits or waited). */
void aread_test_wait_drain(ce_pool *p, uint64_t n);

#endif
