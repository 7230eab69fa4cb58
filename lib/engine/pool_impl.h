/*
 * pool_impl.h -- the in-memory state of an open pool, shared by the
 * engine's subsystems (not part of the public API; the debug and stress
 * tools include it as zdb includes libzpool's headers).
 *
 * Lock order (never take an earlier lock while holding a later one):
 *   pool->config_lock  (management operations, one at a time)
 *   (ilog_commit holds no lock while it reads volumes or does IO)
 *   pool->free_lock    (read: a reader's root capture and block reads;
 *                       write: handing freed space back after commit)
 *   volume->lock       (dirty maps, root pointer, size)
 *   ilog.lock          (pending log records, log ring)
 *   pool->lock         (txg state, volume list, dirty accounting)
 *   alloc.lock, cache.lock (leaf locks)
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
	volume **vols;           /* live and doomed volumes */
	size_t nvols, capvols;

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
	uint64_t sh_changed_txg;  /* the holds changed since the last capture, in this txg (0: no) */
	hold_phys *sh_cap;        /* the holds as of txg sh_cap_txg's quiesce (hold_capture) ... */
	size_t nsh_cap, capsh_cap;
	uint64_t sh_cap_txg;      /* ... which hold_sync of that txg writes (0: nothing to write) */

	/* the replica object (repl.c; written by the sync thread) */
	cowtree rp_tree;
	uint8_t *rp_buf;          /* the object as last written or loaded */
	uint64_t rp_disk_leaves;

	_Atomic uint64_t cksum_errors;
	_Atomic uint64_t io_errors;
};

/* txg.c */
uint64_t txg_hold(ce_pool *p, int *err);
void txg_rele(ce_pool *p, uint64_t txg);
int txg_wait_synced(ce_pool *p, uint64_t txg);
int txg_sync_now(ce_pool *p);
int txg_start(ce_pool *p);
void txg_stop(ce_pool *p);
int txg_sync_one(ce_pool *p, uint64_t txg); /* used at pool creation */
void txg_capture(ce_pool *p, uint64_t txg);
void txg_dirty_add(ce_pool *p, int64_t bytes, int open);
void txg_throttle(ce_pool *p);

/* blkio.c */
int blk_read(ce_pool *p, const bp_phys *bp, void *dst, size_t off, size_t len);
/* This thread syncs txg t of p: its reads of blocks born in t may come from the write queue. */
void blk_sync_begin(ce_pool *p, uint64_t t);
void blk_sync_end(void);
int blk_read_many(ce_pool *p, const bp_phys *bps, uint8_t *const *dsts, size_t n);
enum { BLK_CACHE = 1, BLK_BORROW = 2 };
int blk_write(ce_pool *p, const void *data, uint32_t lsize, int comp, int cktype,
    int type, int level, uint64_t txg, const bp_phys *old, unsigned flags, bp_phys *out);
void blk_free(ce_pool *p, const bp_phys *bp, uint64_t txg);
int wq_flush(ce_pool *p);
void wq_discard(ce_pool *p);

/* mos.c */
void mos_init_empty(ce_pool *p);
int mos_load(ce_pool *p, const uberblock_phys *ub);
void mos_mark_dirty(ce_pool *p, uint64_t off, uint64_t len);
int mos_sync(ce_pool *p, uint64_t txg, int *did);
int mos_sync_bitmaps(ce_pool *p, uint64_t txg, int *did);
uint32_t mos_ds_slot_alloc(ce_pool *p);
void mos_ds_put(ce_pool *p, uint32_t slot, const ds_phys *ds);
void mos_ds_get(const ce_pool *p, uint32_t slot, ds_phys *ds);
uint32_t mos_ds_capacity(const ce_pool *p);
mos_header_phys *mos_hdr(ce_pool *p);
/* An object whose contents live in buf (nleaves 16 KiB leaves): write its dirty leaves. */
int mos_sync_object(ce_pool *p, cowtree *t, uint64_t txg, const uint8_t *buf, uint8_t *dirty,
    uint64_t nleaves, int type, int *did);
void tree_init(cowtree *t, uint8_t leaf_type, uint64_t nleaves);
int mos_read_object(ce_pool *p, const cowtree *t, uint8_t *buf, uint64_t nleaves);

/* vol.c */
int vol_sync(ce_pool *p, volume *v, uint64_t txg);
int vol_load_all(ce_pool *p);
int vol_reload_all(ce_pool *p);
void vol_free_all(ce_pool *p);
void vol_delete(volume *v);
void vol_record(const volume *v, ds_phys *ds);
void vol_capture(volume *v, uint64_t t);
int vol_read_current(volume *v, void *buf, uint64_t off, uint64_t len);
int vol_apply_log(volume *v, int type, const void *data, uint64_t off, uint64_t len);

/* send.c */
int recv_table_load(ce_pool *p);
int recv_table_sync(ce_pool *p, uint64_t txg);

/* hold.c */
int hold_load(ce_pool *p);
void hold_capture(ce_pool *p, uint64_t txg);
int hold_sync(ce_pool *p, uint64_t txg);
void hold_fini(ce_pool *p);
unsigned hold_count(const ce_pool *p, uint64_t snap_guid);
void hold_tags(const ce_pool *p, uint64_t snap_guid, char *buf, size_t len);

static inline int
pool_io_error(ce_pool *p, int err)
{
	atomic_fetch_add(&p->io_errors, 1);
	return err;
}
#endif
