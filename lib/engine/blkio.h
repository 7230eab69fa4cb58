/*
 * blkio.h -- reading and writing blocks named by block pointers (blkio.c).
 */
#ifndef CASK_ENGINE_BLKIO_H
#define CASK_ENGINE_BLKIO_H

#include "pool_impl.h"

int blk_read(ce_pool *p, const bp_phys *bp, void *dst, size_t off, size_t len);
/* This thread syncs txg t of p: its reads of blocks born in t may come from the write queue. */
void blk_sync_begin(ce_pool *p, uint64_t t);
void blk_sync_end(void);
int blk_read_many(ce_pool *p, const bp_phys *bps, uint8_t *const *dsts, size_t n);
enum { BLK_CACHE = 1, BLK_BORROW = 2 };
int blk_write(ce_pool *p, const void *data, uint32_t lsize, int comp, int cktype,
    int type, int level, uint64_t txg, const bp_phys *old, unsigned flags, bp_phys *out);
void blk_free(ce_pool *p, const bp_phys *bp, uint64_t txg);
int wq_flush(ce_pool *p);
void wq_discard(ce_pool *p);
/* pool_free: the write queue and the compression scratch. */
void blk_fini(ce_pool *p);

#endif
