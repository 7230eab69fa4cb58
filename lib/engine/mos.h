/*
 * mos.h -- the meta object set (mos.c): dataset record slots, the header, sync passes.
 */
#ifndef CASK_ENGINE_MOS_H
#define CASK_ENGINE_MOS_H

#include "pool_impl.h"

void mos_init_empty(ce_pool *p);
/* pool_free, ce_pool_clear (free_lock held for writing): forget the MOS in memory. */
void mos_fini(ce_pool *p);
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

/*
 * Readers of p->mos (mos.c alone writes it). A file that owns a region
 * of the MOS (the receive table, the policy and replica headers) reaches
 * it through mos_ptr and marks what it changed with mos_mark_dirty.
 */
static inline uint8_t *
mos_ptr(ce_pool *p, uint64_t off)
{
	return p->mos.buf + off;
}

static inline uint64_t
mos_bytes(const ce_pool *p)
{
	return p->mos.size;
}

/* The MOS object itself (its root goes into the uberblock) and vdev v's bitmap object. */
static inline const cowtree *
mos_tree(const ce_pool *p)
{
	return &p->mos.tree;
}

static inline const cowtree *
mos_sm_tree(const ce_pool *p, unsigned v)
{
	return &p->mos.sm_trees[v];
}

#endif
