#ifndef CASK_ENGINE_REPL_H
#define CASK_ENGINE_REPL_H
/*
 * repl.h -- the replica side of replication as engine state (repl.c;
 * docs/replication.md section 3.8, docs/on-disk-format.md section 7).
 */
#include <pthread.h>
#include <stdint.h>
#include "phys.h"

typedef struct ce_pool ce_pool;
typedef struct volume volume;

/* An apply that finished: every byte of seq is in txgs >= btxg and <= txg. */
typedef struct repl_done {
	uint64_t seq, txg, btxg;
} repl_done;

typedef struct repl_state {
	pthread_mutex_t mu;      /* one apply at a time; taken before every engine lock */
	struct repl_state *retired; /* a state repl_load detached from this volume (kept until the volume goes) */
	uint32_t idx;            /* slot in the replica object */
	/* pool->lock: */
	repl_phys rec;           /* live management fields (promise, epochs, membership, history);
	                            applied, hi and the map live in the fields below */
	repl_phys img;           /* rec as of the txg being synced: the volume's record image
	                            (dataset.c, 3); rp_ds_guid 0 while that txg had no record */
	repl_phys cap;           /* the whole record as settled for the last txg that wrote it
	                            (sync thread); rp_ds_guid 0 before the first */
	uint64_t applied;        /* every operation 1..applied has finished applying */
	uint64_t begun;          /* highest seq whose apply began ... */
	uint64_t begun_txg;      /* ... in this open txg (its first attempt) */
	uint64_t durable;        /* the applied of the newest committed capture this process waited for */
	uint64_t gen;            /* bumped by every reload (repl_load at a clear): an apply or flush
	                            that began before it records nothing */
	repl_done *done;         /* finished applies not yet captured, oldest first */
	size_t ndone, capdone;
	/*
	 * The extents of the newest operations (invariant 7), recorded when
	 * each apply begins: ring[seq % REPL_RING] for seqs ring_lo+1 ..
	 * begun; in memory only (an import starts it empty at applied).
	 */
	struct repl_ext *ring;
	uint64_t ring_lo;
	uint64_t void_hi;        /* a tail sync ended here: the record's hi up to this claims no bytes */
	uint64_t rollback_seq;   /* a rollback began (repl.c invariant 9) in rollback_txg; 0 once the map says so */
	uint64_t rollback_txg;
	uint64_t tail_end_txg;   /* a tail sync ended in this open txg (repl.c invariant 11); 0 once settled */
} repl_state;

#define REPL_RING 65536u
typedef struct repl_ext {
	uint64_t seq, off, len;
} repl_ext;

/*
 * v->rp, read without pool->lock (the write paths, the sync thread): it is
 * set once (ce_repl_make, repl_load) and never freed while v lives, so a
 * pointer read here stays valid; an acquire load pairs with the release
 * store that published it.
 */
struct repl_state *repl_of(const volume *v);

/* dataset.c: the image (capture_image) and the record of txg t (vol_settle); pool->lock held */
void repl_image(volume *v);
void repl_settle(volume *v, uint64_t t);
/* vol_sync.c, records step of txg t: v's slot of the replica object as settled (or freed) */
void repl_record(ce_pool *p, volume *v, uint64_t t);
int repl_load(ce_pool *p);                 /* at import, after the datasets */
int repl_sync(ce_pool *p, uint64_t t);     /* pool_sync, after the records of txg t */
void repl_free(volume *v);
void repl_pool_fini(ce_pool *p);
/*
 * cask-debug check, invariant 8 (on-disk-format.md section 7.7): each
 * problem is passed to report; returns how many.
 */
unsigned repl_check(ce_pool *p, void (*report)(void *arg, const char *msg), void *arg);
#endif
