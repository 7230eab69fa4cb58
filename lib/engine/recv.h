/*
 * recv.h -- receives (the receive half of send.c): the receive table that
 * pool_sync.c writes and import loads, the partial receives it is made
 * of, their resume tokens. The send half has no callers inside the
 * engine (ce_send, ce_vol_diff are API, cask/engine.h).
 */
#ifndef CASK_ENGINE_RECV_H
#define CASK_ENGINE_RECV_H

#include "vol.h"

int recv_table_load(ce_pool *p);
int recv_table_sync(ce_pool *p, uint64_t txg);
void recv_track(ce_pool *p, volume *v);
void recv_forget(ce_pool *p, volume *v);
void recv_fini(ce_pool *p);
void recv_token_of(const volume *v, char *buf, size_t len);

#endif
