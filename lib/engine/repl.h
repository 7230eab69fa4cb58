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

/* An apply that finished: every byte of seq is in txgs <= txg. */
typedef struct repl_done {
	uint64_t seq, txg;
} repl_done;

typedef struct repl_state {
	pthread_mutex_t mu;      /* one apply at a time; taken before every engine lock */
	uint32_t idx;            /* slot in the replica object */
	/* pool->lock: */
	repl_phys rec;           /* live management fields (promise, epochs, membership, history);
	                            applied, hi and the map live in the fields below */
	repl_phys cap;           /* the record as captured at the last quiesce; rp_ds_guid 0 before */
	uint64_t applied;        /* every operation 1..applied has finished applying */
	uint64_t begun;          /* highest seq whose apply began */
	uint64_t durable;        /* the applied of the newest committed capture this process waited for */
	repl_done *done;         /* finished applies not yet captured, oldest first */
	size_t ndone, capdone;
} repl_state;

void repl_capture(volume *v, uint64_t t);  /* at t's quiesce, pool->lock held */
int repl_load(ce_pool *p);                 /* at import, after the datasets */
int repl_sync(ce_pool *p, uint64_t t);     /* pass 1 of txg t */
void repl_free(volume *v);
void repl_pool_fini(ce_pool *p);
/*
 * cask-debug check, invariant 8 (on-disk-format.md section 7.7): each
 * problem is passed to report; returns how many.
 */
unsigned repl_check(ce_pool *p, void (*report)(void *arg, const char *msg), void *arg);
#endif
