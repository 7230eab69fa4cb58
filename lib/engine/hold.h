/*
 * hold.h -- snapshot holds (hold.c): the holds object, its sync, counts for refusals.
 */
#ifndef CASK_ENGINE_HOLD_H
#define CASK_ENGINE_HOLD_H

#include "pool_impl.h"

int hold_load(ce_pool *p);
int hold_sync(ce_pool *p, uint64_t txg);
void hold_init(ce_pool *p); /* a created pool: no holds object yet (hold_load: import) */
void hold_fini(ce_pool *p);
unsigned hold_count(const ce_pool *p, uint64_t snap_guid);
void hold_tags(const ce_pool *p, uint64_t snap_guid, char *buf, size_t len);

#endif
