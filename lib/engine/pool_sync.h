/*
 * pool_sync.h -- what a txg has to write (pool_sync.c): its dirty
 * datasets and its sync tasks, and the one call the txg machine makes
 * upward, pool_sync().
 */
#ifndef CASK_ENGINE_POOL_SYNC_H
#define CASK_ENGINE_POOL_SYNC_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "cask/engine.h"

typedef struct volume volume;

/*
 * The syncing half of a management operation: runs in the sync thread,
 * in pass 1 of the txg it was registered for, after that txg's dirty
 * volume data is written and before the dataset records are. A nonzero
 * return fails the txg (the pool suspends). Its check half runs in open
 * context under the management locks, in the operation's own file.
 */
typedef int (*synctask_fn)(ce_pool *p, void *arg, uint64_t txg);

typedef struct synctask {
	synctask_fn sync;
	void *arg;             /* malloc'd; freed once the task ran or was dropped */
} synctask;

/* One txg's work, in slot txg & 3 (at most one open and one syncing txg). */
typedef struct txg_work {
	uint64_t txg;          /* the txg this slot holds, 0: empty */
	volume **ds;           /* datasets dirtied in txg (data, record or both) */
	size_t nds, capds;
	synctask *st;          /* in registration order */
	size_t nst, capst;
} txg_work;

typedef struct pool_sync_state {
	pthread_mutex_t lock;  /* leaf: the lists (writers add under volume->lock) */
	txg_work w[4];
	volume **deferred;     /* destroyed and committed, still referenced: freed later (pool->lock) */
	size_t ndef, capdef;
	pthread_t syncer;      /* the thread inside pool_sync, while syncing_txg != 0 */
	uint64_t syncing_txg;
} pool_sync_state;

/* This thread is inside pool_sync (for ASSERT: "only the sync thread", invariant 1). */
int pool_sync_thread(const ce_pool *p);
/* The upward call from txg.c: write txg t whole, or fail and leave the disk at t - 1. */
int pool_sync(ce_pool *p, uint64_t t);
void pool_sync_init(ce_pool *p);
void pool_sync_fini(ce_pool *p);
/* ce_pool_clear (sync thread stopped): forget the work of every txg not committed. */
void pool_sync_reset(ce_pool *p);
/* v changes (data or record) in txg t; any thread, any lock but the pool sync lock. */
void pool_dirty(ce_pool *p, volume *v, uint64_t t);
/* The sync thread of t changes v's record too (no lock held). */
void pool_sync_dirty(ce_pool *p, volume *v, uint64_t t);
/* Management locks held: run sync(p, arg, t) in the sync of the open txg t. */
void synctask_add(ce_pool *p, synctask_fn sync, void *arg);
/* The same for a given txg not yet syncing (import: the first txg it will sync). */
void synctask_add_txg(ce_pool *p, uint64_t t, synctask_fn sync, void *arg);
/* A destroyed dataset no longer named (pool->lock held): freed after a later commit. */
void pool_defer_free(ce_pool *p, volume *v);

#endif
