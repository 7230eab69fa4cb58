/*
 * txg.h -- the txg state machine (txg.c): holds, waits, the sync thread, dirty accounting.
 */
#ifndef CASK_ENGINE_TXG_H
#define CASK_ENGINE_TXG_H

#include "pool_impl.h"

uint64_t txg_hold(ce_pool *p, int *err);
void txg_rele(ce_pool *p, uint64_t txg);
int txg_wait_synced(ce_pool *p, uint64_t txg);
int txg_sync_now(ce_pool *p);
int txg_start(ce_pool *p);
void txg_stop(ce_pool *p);
void txg_dirty_add(ce_pool *p, int64_t bytes, int open);
void txg_throttle(ce_pool *p);

#endif
