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
/*
 * The ranges of h's committed tree born after min_birth (holes too when
 * holes is set), from byte start on, adjacent ones of a kind merged, as
 * ce_vol_diff_from reports them: the one walk diff and rebuild share.
 * fn runs under the pool's free_lock: quick, no calls into the pool.
 */
int vol_changed_after(ce_vol *h, uint64_t min_birth, int holes, uint64_t start, ce_diff_fn fn, void *arg);

#endif
