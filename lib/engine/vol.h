#ifndef CASK_ENGINE_VOL_H
#define CASK_ENGINE_VOL_H
#include "deadlist.h"
#include "pool_impl.h"
#include "repl.h"

typedef struct vrange {
	uint64_t start, end; /* blkids [start, end) */
} vrange;

/* A dirty block whose XXH3-128 is known (vol.c invariant 7): what a receive hashed. */
typedef struct vol_khash {
	uint64_t blkid;
	const void *buf;       /* the dirty buffer hashed; NULL: forgotten (changed since) */
	uint8_t h[16];         /* XXH3-128, low64 then high64 (send-stream.md section 2) */
} vol_khash;

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
	unsigned local_props;  /* CE_PROP_* set explicitly (the rest are defaults) */
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
	vol_khash *kh[2];      /* blocks of that txg whose hash is known, ascending blkid */
	size_t nkh[2], capkh[2];

	/*
	 * The record image: the fields a management operation changes, as
	 * of the txg being synced. A management operation in open txg o
	 * saves them here before its first change to the dataset in o
	 * (vol_mgmt_dirty, under pool->lock), unless the sync of o - 1
	 * already settled them; the sync of t settles them from the live
	 * fields unless an operation of t + 1 saved them first (vol_settle).
	 * So an operation made in the open txg cannot leak into the record
	 * of the txg that is syncing.
	 */
	struct {
		char name[CE_NAME_MAX + 1];
		uint64_t size;
		int compress, checksum, sync;
		unsigned local_props;
		uint8_t want_levels;
	} snap;
	uint64_t mgmt_txg;     /* open txg of its last management change (pool->lock) */
	uint64_t snap_txg;     /* the txg `snap` was settled for (pool->lock) */
	uint64_t dirty_in[4];  /* dirty_in[t & 3] == t: on txg t's dirty list (pool_sync.c, ps.lock) */
	size_t vidx;           /* its index in pool->dd.vols */
	volume *name_next;     /* pool->dd.names chain */
	int freeing;           /* destroyed and committed, waiting for its last reference */

	/*
	 * Snapshots (snap.c), changed only by the sync thread and by
	 * management operations (config_lock + pool->lock).
	 */
	int is_snap;           /* a read-only snapshot "VOL@SNAP" */
	int is_auto;           /* snapshot: taken by a snapshot policy (DS_FLAG_AUTO) */
	volume *head;          /* snapshot: the volume it is of */
	volume *prev;          /* next older snapshot (a volume: its newest); set by snap_set_prev */
	volume *child, *sib;   /* the datasets whose prev is this one: successor and clones */
	uint64_t prev_txg;     /* prev's txg: blocks born at or before it are shared */
	uint64_t load_prev, load_head; /* guids from the record, until linked */
	deadlist dl;
	uint64_t unique;       /* snapshot: bytes only it references */
	uint64_t written;      /* bytes of its tree born after prev_txg (a snapshot: what it wrote
	                          before it was taken; derived at import, snap.c invariant 5) */
	int taking;            /* snapshot: created, its attach task has not run yet */
	int rolling_back;      /* volume: its rollback task has not run yet */
	int gone;              /* snapshot: destroyed in the sync (dead lists settled) */

	uint64_t gen;          /* bumps on every change a reader or RMW could see */
	int refs;              /* open handles */
	int ilog_refs;         /* log batches in flight that name it (pool->lock) */
	/* intent log state (ilog->lock) */
	uint64_t ilog_queued;      /* its pending itxs */
	uint64_t ilog_inflight;    /* its itxs in the batch being written */
	uint64_t ilog_durable_seq; /* every itx of it appended before this is durable */
	int ilog_waiters;          /* flushes waiting for it */
	/*
	 * Intent log damage (ilog.c invariant 7; pool->lock): records of it
	 * with txgs in [logdmg_lo, logdmg_hi] that the last replay could not
	 * apply (logdmg_recs of them known; logdmg_unknown: a damaged block
	 * whose records could not be attributed may have held more). In
	 * memory until ce_pool_clear: the log's next epoch overwrites the
	 * evidence, so a later import no longer sees it.
	 */
	uint64_t logdmg_lo, logdmg_hi, logdmg_recs;
	int logdmg_unknown;
	uint64_t destroy_txg;  /* destroyed in that txg (no longer named) */
	uint64_t send_guid;    /* snapshot: send identity if received (0: its guid) */
	/*
	 * A partial receive (send.c): the volume cannot be opened but by its
	 * receiver. Changed under pool->lock after vol_mgmt_dirty; rcap is
	 * its image like `snap`, so the resume offset commits with the data
	 * it covers.
	 */
	int receiving;
	recv_slot_phys rs;     /* rs_vol_guid unused in memory */
	struct {
		int receiving;
		recv_slot_phys rs;
	} rcap;
	/* a replica volume (repl.c): its record; NULL for an ordinary volume */
	struct repl_state *rp;
	struct repl_state *rp_retired; /* states a clear detached (repl.c, 6): freed with the volume */
	uint8_t load_role;     /* ds_role and ds_repl_idx as loaded, until repl_load attaches the record */
	uint32_t load_repl_idx;
};

struct ce_vol {
	volume *v;
	int repl;           /* ce_repl_open: may apply sequenced operations to a replica volume */
	uint64_t clear_gen; /* pool->clear_gen when opened: older handles may not write */
	/* read-ahead of a sequential reader (vol.c invariant on read-ahead; ra_lock) */
	pthread_mutex_t ra_lock;
	pthread_cond_t ra_cv; /* ra_busy or ar_reqs went to 0 */
	uint64_t ra_next;   /* where the next sequential read starts */
	uint64_t ra_end;    /* end of what read-ahead has sent for this stream */
	unsigned ra_streak; /* sequential reads in a row */
	int ra_busy;        /* read-ahead batches of this handle in flight (at most RA_INFLIGHT) */
	unsigned ar_reqs;   /* asynchronous requests of this handle not yet completed (vol.c, D) */
};

/*
 * The three files of the volume layer share struct volume and these:
 * dataset.c (the directory, record images, loading, the management
 * transaction), vol.c (the data path, handles, resize, the log's
 * callbacks) and vol_sync.c (a dataset's part of a txg). dataset.c's
 * functions are declared in dataset.h.
 */

/* vol_sync.c, for pool_sync.c and snap.c */
int vol_sync(ce_pool *p, volume *v, uint64_t txg);
int vol_sync_record(ce_pool *p, volume *v, uint64_t txg);
int vol_destroy_sync(ce_pool *p, volume *v, uint64_t txg);

/* vol.c */
#define VOL_RESIZE_RECV 0x100u /* ce_vol_resize flag: the receiver may resize its volume */
#define VOL_ROLLBACK_OPEN 0x100u /* ce_vol_rollback flag: the replica apply line rolls back its open volume */
int vol_open_any(ce_pool *p, const char *name, int receiver, ce_vol **out);
/*
 * A receive's whole blocks at an aligned off: n buffers of the block size
 * (bufpool), each with its XXH3-128 (hashes[k]), adopted into the dirty
 * map without a copy; all of them are the engine's after the call.
 */
int vol_recv_adopt(ce_vol *h, void *const *blocks, const uint8_t (*hashes)[16], size_t n, uint64_t off);
int vol_recv_trim(ce_vol *h, uint64_t off, uint64_t len);
void vol_delete(volume *v);
extern const ilog_ops vol_ilog_ops; /* how the intent log reads and replays volumes */
/* for dataset.c: a dataset's in-memory object; ce_pool_clear forgets its pending state */
volume *vol_new(ce_pool *p);
void vol_forget_pending(volume *v);
/* for vol_sync.c: drop slot i's dirty maps (the data is in the tree, or is forgotten) */
void vol_drop_maps(volume *v, int i);
/* for vol_sync.c: the known hash of blkid's dirty buffer buf in slot i (a walk in ascending blkid: *cur), or NULL */
const uint8_t *vol_known_hash(const volume *v, int i, uint64_t blkid, const void *buf, size_t *cur);

extern char vol_hole_marker;
#define VOL_HOLE ((void *)&vol_hole_marker)
#endif
