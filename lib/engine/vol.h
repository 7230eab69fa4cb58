#ifndef CASK_ENGINE_VOL_H
#define CASK_ENGINE_VOL_H
#include "pool_impl.h"

typedef struct vrange {
	uint64_t start, end; /* blkids [start, end) */
} vrange;

#define VOL_NO_SLOT UINT32_MAX

struct volume {
	ce_pool *pool;
	pthread_mutex_t lock;
	char name[CE_NAME_MAX + 1];
	uint64_t guid;
	uint64_t size;
	uint32_t bs;
	int compress;
	int checksum;
	int sync;              /* CE_SYNC_* */
	uint64_t create_txg, ctime;
	cowtree tree;          /* committed (installed) tree */
	uint8_t want_levels;   /* levels the current size needs */
	int64_t used, logical; /* of the installed tree */
	uint32_t slot;         /* MOS dataset slot, VOL_NO_SLOT before its first sync */

	/* Per-txg state, index txg & 1; dtxg[i] says which txg it holds (0: none). */
	htab dirty[2];         /* blkid -> data buffer (bs bytes) or VOL_HOLE */
	uint64_t dtxg[2];
	vrange *fr[2];         /* ranges punched in that txg, applied before dirty[] */
	size_t nfr[2], capfr[2];
	htab parents[2];       /* level-1 parents already charged in that txg */
	uint64_t charged[2];   /* sectors charged to alloc for that txg */
	uint64_t dbytes[2];    /* bytes of dirty buffers in that txg */

	/*
	 * The fields a management operation changes, as of the txg being
	 * synced: captured at its quiesce point (txg_capture, under
	 * pool->lock, which management operations hold while they change
	 * them), so an operation made in the open txg cannot leak into the
	 * record of the txg that is syncing.
	 */
	struct {
		uint64_t txg;          /* the txg this snapshot is for */
		char name[CE_NAME_MAX + 1];
		uint64_t size;
		int compress, checksum, sync;
		uint8_t want_levels;
		int doomed;            /* destroyed in or before that txg */
	} snap;

	uint64_t gen;          /* bumps on every change a reader or RMW could see */
	int refs;              /* open handles */
	int ilog_refs;         /* log batches in flight that name it (pool->lock) */
	/* intent log state (ilog->lock) */
	uint64_t ilog_queued;      /* its pending itxs */
	uint64_t ilog_inflight;    /* its itxs in the batch being written */
	uint64_t ilog_durable_seq; /* every itx of it appended before this is durable */
	int ilog_waiters;          /* flushes waiting for it */
	uint64_t destroy_txg;  /* destroyed in that txg (no longer named) */
};

struct ce_vol {
	volume *v;
	uint64_t clear_gen; /* pool->clear_gen when opened: older handles may not write */
};

extern char vol_hole_marker;
#define VOL_HOLE ((void *)&vol_hole_marker)
#endif
