/*
 * dataset.h -- the dataset directory (dataset.c): the volumes and
 * snapshots of a pool by index and by name, their record images, loading
 * them at import, and the management transaction that snap.c, send.c,
 * hold.c, sched.c, repl.c and vol.c run their operations in.
 *
 * dataset.c alone writes p->dd, under pool->lock (a management
 * operation adds a dataset, the sync thread unlinks a destroyed one);
 * other files read it through ds_count and ds_at under pool->lock, or
 * where nothing else runs (import, the debug tool).
 */
#ifndef CASK_ENGINE_DATASET_H
#define CASK_ENGINE_DATASET_H

#include "vol.h"

void vol_settle(volume *v, uint64_t txg);
int vol_destroyed_by(const volume *v, uint64_t txg);
void vol_unlink(ce_pool *p, volume *v);
int vol_load_all(ce_pool *p);
int vol_reload_all(ce_pool *p);
void dataset_init(ce_pool *p);
void vol_free_all(ce_pool *p);
void vol_record(const volume *v, ds_phys *ds);
volume *vol_find(ce_pool *p, const char *name);
volume *vol_alloc(ce_pool *p);
void vol_add(ce_pool *p, volume *v);
void vol_mgmt_dirty(ce_pool *p, volume *v);
void vol_set_name(ce_pool *p, volume *v, const char *name);
int vol_name_valid(const char *name);
/* the management transaction: returns with config_lock and pool->lock held */
int vol_mgmt_begin(ce_pool *p);
int vol_mgmt_commit(ce_pool *p);
void vol_mgmt_abort(ce_pool *p);
/* a live volume (not a snapshot) for a management operation, locks held; NULL: *err */
volume *vol_mgmt_begin_head(ce_pool *p, const char *name, int *err);
int vol_create_ex(ce_pool *p, const char *name, uint64_t size, const ce_vol_props *props,
    const recv_slot_phys *rs);


/* Datasets in the directory (live, doomed and destroyed-but-referenced), in no order. */
static inline size_t
ds_count(const ce_pool *p)
{
	return p->dd.nvols;
}

static inline volume *
ds_at(const ce_pool *p, size_t i)
{
	return p->dd.vols[i];
}

/* The dataset with this guid (live, doomed or destroyed-but-referenced), or NULL: no scan. */
static inline volume *
ds_by_guid(const ce_pool *p, uint64_t guid)
{
	return guid != 0 ? htab_get(&p->dd.guids, guid) : NULL;
}

#endif
