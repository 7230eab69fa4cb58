/*
 * snap.h -- snapshots (snap.c): the chain, the sync tasks'
 * open-context halves, the accounting send.c and vol.c read.
 */
#ifndef CASK_ENGINE_SNAP_H
#define CASK_ENGINE_SNAP_H

#include "vol.h"

void snap_kill(void *arg, const bp_phys *bp);
volume *snap_successor(ce_pool *p, volume *s); /* takes pool->lock: sync thread only */
int snap_written(ce_pool *p, volume *v, uint64_t *out);
#define WRITTEN_UNKNOWN UINT64_MAX /* a loaded snapshot whose records disagree (invariant 5): a destroy walks */
int snap_link_all(ce_pool *p);
unsigned snap_clones(ce_pool *p, const volume *s);
void snap_set_prev(volume *d, volume *prev);
void snap_orphan_children(volume *v);
int snap_doom_volume(ce_pool *p, volume *h, unsigned flags);
void snap_doom_set(ce_pool *p, volume **set, size_t n);
void snap_rollback_begin(ce_pool *p, volume *h, volume **later, size_t n);
int snap_named_before(const char *const *names, size_t i);
volume *snap_add(ce_pool *p, volume *h, const char *full, uint64_t send_guid);
/* for send.c and vol.c */
int snap_bytes_after(ce_pool *p, volume *v, uint64_t txg, uint64_t *out, uint64_t *lout);
void snap_doomed_acct(volume *v, ct_acct *acct);

#endif
