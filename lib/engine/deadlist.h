/*
 * deadlist.h -- dead lists (deadlist.c): a dataset's list of the blocks
 * its predecessor still references and it no longer does.
 */
#ifndef CASK_ENGINE_DEADLIST_H
#define CASK_ENGINE_DEADLIST_H

#include "pool_impl.h"

#define DL_PER_LEAF (CE_META_BLOCK / sizeof(bp_phys)) /* 256 entries per 16 KiB leaf */

/* Blocks the predecessor in the chain still references but this dataset no longer does (deadlist.c). */
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

void dl_init(deadlist *dl);
void dl_fini(deadlist *dl);
/* Room for want entries (new leaves zeroed, not dirty). */
void dl_reserve(deadlist *dl, uint64_t want);
void dl_append(deadlist *dl, const bp_phys *bp);
/* The whole list changed (destroy and attach rewrite lists wholesale). */
void dl_mark_all(deadlist *dl);
/* Write a changed list's object in txg t (pass 1 of the sync). */
int dl_sync(ce_pool *p, deadlist *dl, uint64_t t);
int dl_load(ce_pool *p, deadlist *dl, const ds_phys *ds);
/* Allocated and logical (data blocks') bytes of the entries born after txg. */
void dl_sum_after(const deadlist *dl, uint64_t txg, uint64_t *bytes, uint64_t *lbytes);

#endif
