#ifndef CASK_ENGINE_ILOG_H
#define CASK_ENGINE_ILOG_H
#include <pthread.h>
#include <stdint.h>
#include "phys.h"
#include "cask/engine.h"

typedef struct ce_pool ce_pool;
typedef struct volume volume;
typedef struct uberblock_phys uberblock_phys;

/* A change acknowledged in memory and not yet in the log (or a txg). */
typedef struct ilog_itx {
	volume *v;
	uint64_t txg;
	uint64_t off, len;
	int type;               /* LR_WRITE, LR_ZERO */
} ilog_itx;

/* Sectors holding the data of a write-in-place record (held in alloc's avail only). */
typedef struct ilog_ext {
	uint32_t vdev;
	uint64_t off, bytes;
} ilog_ext;

/* A log block on disk that a committed uberblock may still need. */
typedef struct ilog_lblk {
	uint64_t off;           /* region offset in bytes */
	uint64_t bytes;
	uint64_t seq;
	uint64_t max_txg;       /* newest txg among its records */
	ilog_ext *ext;          /* data its write-in-place records point to */
	size_t next;
} ilog_lblk;

/*
 * How the log reaches the volumes it logs for: given at open
 * (ilog_set_ops), as OpenZFS's zil_open takes get_data and zil_replay a
 * replay vector, so the log never calls the volume code by name.
 */
typedef struct ilog_ops {
	/* What [off, off + len) of v holds now (a batch copies it into a log block). */
	int (*get_data)(volume *v, void *buf, uint64_t off, uint64_t len);
	/* Replay: the live volume with this guid, or NULL (pool->lock not held; import) */
	volume *(*find)(ce_pool *p, uint64_t guid);
	/* Replay one record (type LR_WRITE or LR_ZERO) onto v; nothing is logged again. */
	int (*replay)(volume *v, int type, const void *data, uint64_t off, uint64_t len);
} ilog_ops;

typedef struct ilog {
	const ilog_ops *ops;
	pthread_mutex_t lock;   /* after volume->lock's users, before pool->lock */
	pthread_cond_t cv;
	int enabled;            /* the pool has a log region (writable pools only) */
	uint32_t vdev;
	uint64_t base, size;    /* region: absolute vdev byte offset, bytes */

	uint64_t epoch;         /* epoch of the blocks being written */
	int ready;              /* a durable uberblock names `epoch`: blocks may be written */
	uint64_t pending_epoch; /* switch to it at the first uberblock >= pending_txg */
	uint64_t pending_txg;
	uint64_t head_off, head_seq; /* where and what the next block is */

	ilog_lblk *fifo;        /* blocks in ring order, oldest first */
	size_t ffirst, fn, fcap;
	uint64_t used;          /* bytes of the blocks in fifo */

	uint64_t ub_txg;        /* uberblock being written by the sync thread ... */
	uint64_t ub_tail_seq;   /* ... and the first block it still needs */
	int ub_switch;          /* ... which starts pending_epoch */

	ilog_itx *itx;          /* pending changes, in order */
	size_t nitx, capitx;
	uint64_t next_seq;      /* itx sequence numbers handed out */
	int committing;
	int replaying;          /* import replays: changes are not logged again */
	ilog_ext *replay_ext;   /* sectors replay reserved until the new epoch is durable */
	size_t nreplay_ext;

	/* statistics */
	uint64_t commits, blocks, bytes, fallbacks, replayed, replayed_blocks;
	uint64_t ptr_records, ptr_bytes, ptr_skipped;
	/* damage the last replay found (invariant 6 of ilog.c), until ce_pool_clear */
	uint64_t dmg_seq;        /* the damaged block's sequence number (0: none) */
	uint64_t dmg_lost_blocks, dmg_lost_records; /* intact blocks after it, not replayed */
	uint64_t dmg_inplace;    /* write records whose in-place data failed its checksum */
	uint64_t dmg_inplace_seq; /* the newest block holding one */
	int dmg_certain;         /* an intact block followed the damage: it had been acknowledged */
	int dmg_inplace_certain; /* likewise for the in-place data */
	uint64_t prewritten;     /* bytes of holes in the region written with zeroes (invariant 8) */
	uint64_t prewrite_failed; /* times that failed (best effort) */
} ilog;

void ilog_init(ce_pool *p);
void ilog_set_ops(ce_pool *p, const ilog_ops *ops);
void ilog_fini(ce_pool *p);
/* Allocate the log region for an empty or version-1 pool (before its next commit). */
int ilog_create_region(ce_pool *p);
/* At import: learn the region from the MOS header. */
int ilog_load(ce_pool *p);
/* At import, sync thread running: apply the records the uberblock does not cover, commit. */
int ilog_replay(ce_pool *p, const uberblock_phys *ub);
/* Clear every volume's log damage mark (ilog.c invariant 7; ce_pool_clear). */
void ilog_unmark(ce_pool *p);
/* Forget pending records and ring state (ce_pool_clear reloads and replays). */
void ilog_reset(ce_pool *p);
/* ce_pool_clear: the damage the last replay found is acknowledged (invariant 6). */
void ilog_ack_damage(ce_pool *p);
/* The log part of ce_pool_stat (takes ilog.lock). */
void ilog_stat(ce_pool *p, ce_pool_stat *st);
/* A log epoch waits for its first commit (ce_pool_sync gives it one). */
int ilog_epoch_pending(ce_pool *p);
/* Start a new epoch at the first commit of txg >= now's open txg. */
void ilog_new_epoch(ce_pool *p, uint64_t txg);
/* A writer changed [off, off+len) of v in txg t (type LR_WRITE or LR_ZERO). */
void ilog_append(volume *v, int type, uint64_t off, uint64_t len, uint64_t txg);
/*
 * Make every change to v appended so far durable (log blocks + flush, or a
 * txg commit). Changes of other volumes with flushes waiting go along.
 */
int ilog_commit(ce_pool *p, volume *v);
/* Sync thread: the log fields of uberblock t; then, once it is durable, release. */
void ilog_ub_fill(ce_pool *p, uint64_t txg, uberblock_phys *ub);
void ilog_ub_durable(ce_pool *p, uint64_t txg);
/* cask-debug: fn(arg, block, region offset, NULL, NULL) per block, then per record;
 * -EBADMSG when the chain is cut by a damaged block (ilog.c invariant 6). */
typedef int (*ilog_walk_fn)(void *arg, const ilog_blk_phys *b, uint64_t off, const ilog_rec_phys *r,
    const void *body);
int ilog_walk(ce_pool *p, const uberblock_phys *ub, ilog_walk_fn fn, void *arg);
#endif
