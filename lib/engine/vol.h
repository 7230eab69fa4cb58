#ifndef CASK_ENGINE_VOL_H
#define CASK_ENGINE_VOL_H
#include "pool_impl.h"
#include "repl.h"

typedef struct vrange {
	uint64_t start, end; /* blkids [start, end) */
} vrange;

#define VOL_NO_SLOT UINT32_MAX

/* Blocks the predecessor in the chain still references but this dataset no longer does (snap.c). */
typedef struct deadlist {
	bp_phys *e;             /* entries, in order of death; cap is a multiple of 256 */
	uint64_t n, cap;
	uint64_t bytes;         /* sum of their allocated sizes */
	uint64_t lbytes;        /* sum of their data blocks' logical sizes (in memory only) */
	cowtree tree;           /* the object on disk */
	uint8_t *dirty;         /* per 16 KiB leaf (cap / 256 of them) */
	uint64_t disk_leaves;   /* leaves the object had when last written */
	int changed;            /* to be written (and the record with it) */
} deadlist;

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
		unsigned local_props;
		uint8_t want_levels;
		int doomed;            /* destroyed in or before that txg */
		uint64_t destroy_txg;  /* destroy_txg then: what the sync thread tests (a destroy
		                          made later, in the open txg, writes it meanwhile) */
		uint64_t rollback_txg; /* rollback_txg then, likewise */
		int rec;               /* snapshot: that txg writes its record (a change handed to
		                          it at quiesce, or one its sync made) */
	} snap;

	/*
	 * Snapshots (snap.c), changed only by the sync thread and by
	 * management operations (config_lock + pool->lock).
	 */
	int is_snap;           /* a read-only snapshot "VOL@SNAP" */
	volume *head;          /* snapshot: the volume it is of */
	volume *prev;          /* next older snapshot (a volume: its newest) */
	uint64_t prev_txg;     /* prev's txg: blocks born at or before it are shared */
	uint64_t load_prev, load_head; /* guids from the record, until linked */
	deadlist dl;
	uint64_t unique;       /* snapshot: bytes only it references */
	uint64_t written;      /* volume: bytes of its tree born after prev_txg */
	uint64_t snap_txg_pending; /* snapshot created in this txg, not yet attached */
	uint64_t rollback_txg;     /* volume: roll back to prev in that txg's sync */
	uint64_t rec_txg;          /* snapshot: a management operation of that (open) txg changed
	                              its record; the txg's quiesce takes it over (0: none since) */

	uint64_t gen;          /* bumps on every change a reader or RMW could see */
	int refs;              /* open handles */
	int ilog_refs;         /* log batches in flight that name it (pool->lock) */
	/* intent log state (ilog->lock) */
	uint64_t ilog_queued;      /* its pending itxs */
	uint64_t ilog_inflight;    /* its itxs in the batch being written */
	uint64_t ilog_durable_seq; /* every itx of it appended before this is durable */
	int ilog_waiters;          /* flushes waiting for it */
	uint64_t destroy_txg;  /* destroyed in that txg (no longer named) */
	uint64_t send_guid;    /* snapshot: send identity if received (0: its guid) */
	/*
	 * A partial receive (send.c): the volume cannot be opened but by its
	 * receiver. Changed under pool->lock; captured at quiesce with the
	 * record, so the resume offset commits with the data it covers.
	 */
	int receiving;
	recv_slot_phys rs;     /* rs_vol_guid unused in memory */
	struct {
		int receiving;
		recv_slot_phys rs;
	} rcap;
	uint64_t gone_txg;     /* snapshot: its dead lists were settled in that txg's sync */
	/* a replica volume (repl.c): its record; NULL for an ordinary volume */
	struct repl_state *rp;
	uint8_t load_role;     /* ds_role and ds_repl_idx as loaded, until repl_load attaches the record */
	uint32_t load_repl_idx;
};

struct ce_vol {
	volume *v;
	int repl;           /* ce_repl_open: may apply sequenced operations to a replica volume */
	uint64_t clear_gen; /* pool->clear_gen when opened: older handles may not write */
};

/* vol.c, for snap.c and send.c */
#define VOL_RESIZE_RECV 0x100u /* ce_vol_resize flag: the receiver may resize its volume */
int vol_create_ex(ce_pool *p, const char *name, uint64_t size, const ce_vol_props *props,
    const recv_slot_phys *rs);
int vol_open_any(ce_pool *p, const char *name, int receiver, ce_vol **out);
int vol_recv_write(ce_vol *h, const void *buf, size_t len, uint64_t off);
int vol_recv_trim(ce_vol *h, uint64_t off, uint64_t len);
int vol_mgmt_begin(ce_pool *p);
int vol_mgmt_commit(ce_pool *p);
void vol_mgmt_abort(ce_pool *p);
volume *vol_find(ce_pool *p, const char *name);
volume *vol_alloc(ce_pool *p);
void vol_add(ce_pool *p, volume *v);
int vol_name_valid(const char *name);

/* snap.c */
void dl_init(deadlist *dl);
void dl_fini(deadlist *dl);
int dl_sync(ce_pool *p, deadlist *dl, uint64_t t);
int dl_load(ce_pool *p, deadlist *dl, const ds_phys *ds);
void snap_kill(void *arg, const bp_phys *bp);
volume *snap_successor(ce_pool *p, volume *s); /* takes pool->lock: sync thread only */
int snap_written(ce_pool *p, volume *v, uint64_t *out);
int snap_link_all(ce_pool *p);
void snap_attach(ce_pool *p, volume *s, uint64_t t);
int snap_destroy_sync(ce_pool *p, volume *s, uint64_t t);
int snap_rollback_sync(ce_pool *p, volume *h, uint64_t t);
unsigned snap_clones(ce_pool *p, const volume *s);
int snap_destroy_chain_sync(ce_pool *p, volume *h, uint64_t t);
int snap_doom_volume(ce_pool *p, volume *h, unsigned flags);
int snap_named_before(const char *const *names, size_t i);
volume *snap_add(ce_pool *p, volume *h, const char *full, uint64_t send_guid);
/* send.c */
void recv_token_of(const volume *v, char *buf, size_t len);
int snap_bytes_after(ce_pool *p, volume *v, uint64_t txg, uint64_t *out, uint64_t *lout);
void dl_sum_after(const deadlist *dl, uint64_t txg, uint64_t *bytes, uint64_t *lbytes);
void snap_doomed_acct(volume *v, ct_acct *acct);

extern char vol_hole_marker;
#define VOL_HOLE ((void *)&vol_hole_marker)
#endif
