/*
 * pool_impl.h -- the in-memory state of an open pool, shared by the
 * engine's subsystems (not part of the public API; the debug and stress
 * tools include it as zdb includes libzpool's headers). Each module's
 * functions are declared in its own header (txg.h, blkio.h, mos.h,
 * dataset.h, deadlist.h, vol.h, snap.h, hold.h, recv.h, pool_sync.h), so
 * a file's includes say which modules it calls.
 *
 * Ownership: every part of struct ce_pool is written by one file only.
 * The sub-structures are the txg state (tx: txg.c), the MOS (mos: mos.c),
 * the dataset directory (dd: dataset.c), each txg's work (ps:
 * pool_sync.c), the allocator, cache, intent log and injected faults
 * (alloc.c, cache.c, ilog.c, fault.c), the write queue (blkio.c), the
 * holds (sh*: hold.c), the receive table (recv_*: send.c), the policies
 * (sc*: sched.c), the dataset attributes (at*: attr.c) and the replica
 * object (rp_*: repl.c); the rest is
 * pool.c's (identity, devices, options, the locks, what import found, the
 * error counters). Other files read through the owner's header (txg_open,
 * mos_ptr, ds_at, ...) and change state through the owner's functions
 * (txg_mark_open, mos_mark_dirty, vol_add, ...).
 *
 * Lock order (never take an earlier lock while holding a later one):
 *   pool->config_lock  (management operations, one at a time)
 *   (ilog_commit holds no lock while it reads volumes or does IO)
 *   pool->free_lock    (read: a reader's root capture and block reads;
 *                       write: handing freed space back after commit)
 *   volume->lock       (dirty maps, root pointer, size)
 *   ilog.lock          (pending log records, log ring)
 *   pool->lock         (p->tx: txg state and dirty accounting; p->dd: the
 *                       dataset directory; the holds, receive and policy tables)
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

/*
 * The sub-structures below are each written by one file only (their
 * owner); other files read them through the owner's header (txg.h,
 * mos.h, dataset.h) and change them through its functions.
 */

#define TXG_REASON_MAX 160

/* Transaction groups: txg.c's, under pool->lock unless said. */
typedef struct txg_state {
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
	uint64_t last_sync_ns;   /* the newest one's */
	int throttled;           /* writers are waiting for dirty space */
	pthread_cond_t cv_work;  /* wakes the sync thread */
	pthread_cond_t cv_done;  /* txg synced, quiesced, or space freed */
	pthread_t sync_thread;
	int thread_running;
	int stop;
	int suspended;           /* -errno that stopped the pool, or 0 */
	char suspend_reason[TXG_REASON_MAX]; /* why the pool is suspended */
} txg_state;

/* The MOS, held wholly in memory and written as an object each txg: mos.c's. */
typedef struct mos_state {
	uint8_t *buf;
	uint64_t size;
	uint8_t *dirty;          /* per CE_META_BLOCK leaf */
	cowtree tree;
	cowtree *sm_trees;       /* per vdev: the bitmap objects */
	uint32_t ds_slot_hint;   /* where the next free dataset slot search starts (sync thread) */
} mos_state;

/* The dataset directory: dataset.c's, under pool->lock. */
typedef struct ds_dir {
	volume **vols;           /* live and doomed volumes (any order: volume.vidx) */
	size_t nvols, capvols;
	htab names;              /* name hash -> volume chain */
	htab guids;              /* guid -> the dataset (guids are random, one per dataset) */
} ds_dir;

struct ce_pool {
	/* pool.c's: set at create or import (guid, vds, nvdevs, opts, readonly) */
	char name[64];
	uint64_t guid;
	vdev *vds;
	unsigned nvdevs;
	ce_pool_opts opts;
	alloc alloc;
	cache cache;
	struct aread *ar;        /* asynchronous reads: the ring and its completion thread (aread.c) */

	/* write queue (blkio.c): filled and drained by the sync thread only */
	wq_ent *wq;
	size_t wq_n, wq_cap;
	uint64_t wq_seq;
	uint64_t wq_bytes;
	uint64_t wq_total;       /* bytes ever queued */
	uint64_t wq_sync_start;  /* wq_total when the txg syncing now began (blk_sync_begin) */
	uint64_t wq_last_sync;   /* bytes the newest sync queued (stored atomically: read by stat) */
	uint8_t *cbuf;           /* compression scratch (sync thread) */
	struct sync_pipe *pipe;  /* the sync pipeline's workers (pipe.c; the sync thread's) */
	uint64_t cksum_known;    /* data blocks whose checksum was their writer's hash (sync thread; read atomically) */

	mos_state mos;           /* the MOS in memory (mos.c) */

	pthread_mutex_t config_lock;
	pthread_rwlock_t free_lock;
	pthread_mutex_t lock;
	ds_dir dd;               /* the dataset directory (dataset.c; pool->lock) */
	pool_sync_state ps;      /* each txg's dirty datasets and sync tasks (pool_sync.c) */

	txg_state tx;            /* transaction groups (txg.c; pool->lock) */
	int readonly;
	int budgeted;            /* counted in the buffer pool's budget */

	ilog ilog;               /* intent log (ilog.c) */
	fault_state faults;      /* injected IO faults (fault.c) */
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

	/* dataset attributes (attr.c; pool->lock), and as of the txg being synced (its sync task) */
	attr_phys *at;
	size_t nat, capat;
	cowtree at_tree;
	uint64_t at_disk_leaves;  /* leaves the object had when last written */
	attr_phys *at_sync;
	size_t natsync, capatsync;
	int at_dirty;             /* at_sync changed: this txg's attr_sync rewrites the object */
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

/* The pool's error counters (pool.c's; ce_pool_clear zeroes them): any file counts through these. */
static inline int
pool_io_error(ce_pool *p, int err)
{
	atomic_fetch_add(&p->io_errors, 1);
	return err;
}

static inline void
pool_cksum_error(ce_pool *p)
{
	atomic_fetch_add(&p->cksum_errors, 1);
}
#endif
