/*
 * pool_impl.h -- the in-memory state of an open pool, shared by the
 * engine's subsystems (not part of the public API; the debug and stress
 * tools include it as zdb includes libzpool's headers). Each module's
 * functions are declared in its own header (txg.h, blkio.h, mos.h,
 * vol.h, snap.h, hold.h, send.h, pool_sync.h), so a file's includes say
 * which modules it calls.
 *
 * Lock order (never take an earlier lock while holding a later one):
 *   pool->config_lock  (management operations, one at a time)
 *   (ilog_commit holds no lock while it reads volumes or does IO)
 *   pool->free_lock    (read: a reader's root capture and block reads;
 *                       write: handing freed space back after commit)
 *   volume->lock       (dirty maps, root pointer, size)
 *   ilog.lock          (pending log records, log ring)
 *   pool->lock         (txg state, volume list, dirty accounting)
 *   ps.lock, alloc.lock, cache.lock (leaf locks; ps: each txg's dirty
 *                       datasets and sync tasks, pool_sync.c)
 */
#ifndef CASK_ENGINE_POOL_IMPL_H
#define CASK_ENGINE_POOL_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "alloc.h"
#include "cache.h"
#include "cask/engine.h"
#include "cowtree.h"
#include "htab.h"
#include "fault.h"
#include "ilog.h"
#include "phys.h"
#include "pool_sync.h" /* struct pool_sync_state */
#include "vdev.h"

typedef struct wq_ent {
	uint32_t vdev;
	uint64_t offset;
	uint64_t seq;
	void *buf;   /* aligned, len bytes */
	uint32_t len;
	int owned;   /* returned to the buffer pool after the write */
} wq_ent;

typedef struct volume volume;

struct ce_pool {
	char name[64];
	uint64_t guid;
	vdev *vds;
	unsigned nvdevs;
	ce_pool_opts opts;
	alloc alloc;
	cache cache;
	struct aread *ar;        /* asynchronous reads: the ring and its completion thread (aread.c) */

	/* write queue: filled and drained by the sync thread only */
	wq_ent *wq;
	size_t wq_n, wq_cap;
	uint64_t wq_seq;
	uint64_t wq_bytes;
	uint8_t *cbuf;           /* compression scratch (sync thread) */

	/* MOS: held wholly in memory, written as an object each txg */
	uint8_t *mos_buf;
	uint64_t mos_size;
	uint8_t *mos_dirty;      /* per CE_META_BLOCK leaf */
	cowtree mos_tree;
	cowtree *sm_trees;       /* per vdev: the bitmap objects */
	uint32_t ds_slot_hint;   /* where the next free dataset slot search starts (sync thread) */

	pthread_mutex_t config_lock;
	pthread_rwlock_t free_lock;
	pthread_mutex_t lock;
	volume **vols;           /* live and doomed volumes (any order: volume.vidx) */
	size_t nvols, capvols;
	htab vol_names;          /* name hash -> volume chain (vol.c; pool->lock) */
	pool_sync_state ps;      /* each txg's dirty datasets and sync tasks (pool_sync.c) */

	/* transaction groups (pool->lock) */
	uint64_t open_txg;
	uint64_t syncing_txg;    /* 0 when no txg is syncing */
	uint64_t synced_txg;
	uint64_t holds[4];       /* writers inside txg t: holds[t & 3] */
	int txg_dirty[4];        /* something to commit in txg t */
	uint64_t open_since_ns;  /* when the open txg first got dirty */
	uint64_t sync_req;       /* highest txg somebody waits for */
	uint64_t dirty_total;    /* bytes of dirty data buffers (stored atomically: read unlocked) */
	uint64_t dirty_open;     /* of which in the open txg */
	uint64_t syncs, sync_ns; /* committed txgs since import and the time their syncs took */
	uint64_t sync_hist[CE_SYNC_HIST_BUCKETS]; /* their durations (ce_pool_stat.sync_hist) */
	int throttled;           /* writers are waiting for dirty space */
	pthread_cond_t cv_work;  /* wakes the sync thread */
	pthread_cond_t cv_done;  /* txg synced, quiesced, or space freed */
	pthread_t sync_thread;
	int thread_running;
	int stop;
	int suspended;           /* -errno that stopped the pool, or 0 */
	int readonly;
	int budgeted;            /* counted in the buffer pool's budget */

	ilog ilog;               /* intent log (ilog.c) */
	fault_state faults;      /* injected IO faults (fault.c) */
	char suspend_reason[160]; /* why the pool is suspended (pool->lock) */
	_Atomic uint64_t clear_gen; /* bumped by every ce_pool_clear that reloaded the pool */
	uberblock_phys import_ub; /* the uberblock import (or clear) started from */
	uint64_t newer_damaged_txg; /* import found this newer txg damaged in every copy (0: none) */
	uint64_t newer_damaged_ns;  /* and when its damaged record says it committed */
	int rewound;                /* ... and went back past it (CE_POOL_REWIND) */

	/* snapshot holds (hold.c; pool->lock) */
	hold_phys *sh;
	size_t nsh, capsh;
	cowtree sh_tree;
	uint64_t sh_disk_leaves;  /* leaves the object had when last written */
	/* the holds as of the txg being synced (hold.c's sync task; sync thread, or import) */
	hold_phys *sh_sync;
	size_t nsync, capsync;
	int sh_dirty;             /* sh_sync changed: this txg's hold_sync rewrites the object */

	/* partial receives (send.c; pool->lock): the volumes the receive table is made of */
	volume **recv_vols;
	size_t nrecv, caprecv;

	/* snapshot policies (sched.c; pool->lock) */
	sched_phys *sc;
	size_t nsc, capsc;
	cowtree sc_tree;
	uint64_t sc_disk_leaves;  /* leaves the object had when last written */
	/* the policies as of the txg being synced (sched.c's sync task; sync thread, or import) */
	sched_phys *sc_sync;
	size_t nscsync, capscsync;
	int sc_dirty;             /* sc_sync changed: this txg's sched_sync rewrites the object */
	/*
	 * The replica object (repl.c), touched by the sync thread only (and
	 * by import): rp_buf is the object as of the txg syncing, rp_dirty
	 * marks the leaves that txg's records changed (repl_record).
	 */
	cowtree rp_tree;
	uint8_t *rp_buf;          /* rp_cap_leaves leaves */
	uint8_t *rp_dirty;        /* per leaf */
	uint64_t rp_cap_leaves;
	uint64_t rp_disk_leaves;  /* leaves the object had when last written */
	int rp_changed;           /* some leaf is dirty: repl_sync writes the object */

	_Atomic uint64_t cksum_errors;
	_Atomic uint64_t io_errors;
};

static inline int
pool_io_error(ce_pool *p, int err)
{
	atomic_fetch_add(&p->io_errors, 1);
	return err;
}
#endif
