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
uint64_t blk_last_sync_bytes(const ce_pool *p);
int blk_read_many(ce_pool *p, const bp_phys *bps, uint8_t *const *dsts, size_t n);
/* The same; fill: every block read fills the cache, however many missed (a prefetch). */
int blk_read_many_fill(ce_pool *p, const bp_phys *bps, uint8_t *const *dsts, size_t n, int fill);
/* For the asynchronous reader (aread.c): the checks blk_read makes. */
int blk_bp_sane(const ce_pool *p, const bp_phys *bp);
int blk_verify(ce_pool *p, const bp_phys *bp, const uint8_t *raw, uint8_t *dst);
/*
 * Between these, this thread's blk_read serves only what is cached and
 * fails with -EWOULDBLOCK instead of reading a device (a tree lookup made
 * by a thread that must not wait: ce_vol_read_async).
 */
void blk_nowait_begin(void);
void blk_nowait_end(void);
/* 1 and *out: the first block this thread's blk_read missed since blk_nowait_begin. */
int blk_nowait_miss(bp_phys *out);
enum { BLK_CACHE = 1, BLK_BORROW = 2 };
int blk_write(ce_pool *p, const void *data, uint32_t lsize, int comp, int cktype,
    int type, int level, uint64_t txg, const bp_phys *old, unsigned flags, bp_phys *out);
/* A block's bytes made ready to write (blk_prepare), not yet allocated or queued. */
typedef struct blk_prep {
	const void *data;  /* the logical bytes (lsize), borrowed */
	uint8_t *iobuf;    /* what is written: psize bytes padded to the sector */
	uint32_t lsize, psize;
	uint8_t comp;      /* the compression used (CE_COMP_OFF when it did not pay) */
	uint8_t cktype;
	uint8_t owned;     /* iobuf is a buffer-pool buffer of its own, else it is data */
	uint8_t known;     /* cksum is the hash blk_prepare was given (not computed) */
	uint8_t cksum[32];
} blk_prep;
/*
 * known: NULL, or the XXH3-128 (16 bytes) of data's lsize bytes, taken as
 * the checksum when the block is stored as it is with cktype XXH3-128
 * (instead of hashing it again; debug builds verify it).
 */
void blk_prepare(const void *data, uint32_t lsize, int comp, int cktype, unsigned flags,
    const uint8_t *known, uint8_t *scratch, blk_prep *out);
int blk_place(ce_pool *p, blk_prep *b, int type, int level, uint64_t txg, const bp_phys *old,
    unsigned flags, bp_phys *out);
void blk_prep_drop(blk_prep *b);
void blk_free(ce_pool *p, const bp_phys *bp, uint64_t txg);
int wq_flush(ce_pool *p);
void wq_discard(ce_pool *p);
/* pool_free: the write queue and the compression scratch. */
void blk_fini(ce_pool *p);

#endif
