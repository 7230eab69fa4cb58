/*
 * blkio.c -- reading and writing blocks named by block pointers.
 *
 * Owns the path between a bp_phys and the bytes on a vdev:
 *   read:  cache -> vdev read -> checksum -> decompress -> cache;
 *   write: compress -> checksum (blk_prepare: any thread, no pool state)
 *          -> allocate (or rewrite in place) -> write queue (blk_place:
 *          the sync thread) -> (wq_flush) sorted, coalesced vdev writes.
 *          blk_write is the two in one call; pipe.c runs the first half
 *          of a volume's data blocks on its workers.
 *
 * Invariants:
 *   1. A read never returns bytes that do not match the checksum in the
 *      parent's pointer: a mismatch is -EIO and counts a checksum error.
 *      A pointer that cannot be right (address outside the data area,
 *      impossible sizes) is treated the same way, before any IO.
 *   2. A block is rewritten in place only if it was born in the txg being
 *      synced (no committed uberblock can reference it) and its size is
 *      unchanged; otherwise new space is allocated.
 *   3. Only the sync thread writes (blk_place, blk_write; blk_prepare
 *      touches no pool state and may run anywhere); queued writes reach
 *      the vdevs in wq_flush (called by the sync passes, by the pipeline
 *      every 8 MiB of data, and whenever 32 MiB are queued), in queue order, before anything that references them is
 *      committed. A location queued twice in one flush is written once,
 *      with the newest bytes.
 *   4. A BLK_BORROW buffer is written without a copy when it is stored
 *      uncompressed; its owner keeps it alive until the next wq_flush.
 *   5. Reads that miss more than RQ_CACHE_MAX blocks are streaming reads
 *      and do not fill the cache, so a scan cannot evict the working set.
 *   6. The syncing thread reads what it queued: a block born in the txg
 *      it syncs that is not in the cache is taken from the write queue
 *      (its newest bytes for that location) before the disk. So a sync
 *      needs no flush between its passes, only before the uberblock,
 *      and a txg's writes go out in few, large, coalesced runs.
 */
#include "blkio.h"
#include "bufpool.h"
#include "checksum.h"
#include "compress.h"
#include "pool_impl.h"
#include "util.h"

#include <errno.h>
#include <string.h>

#define WQ_MAX_RUN (8u << 20)
#define WQ_FLUSH_BYTES (32u << 20)
#define RQ_MAX_RUN (1u << 20)

static int
bp_sane(const ce_pool *p, const bp_phys *bp)
{
	if (bp->bp_vdev >= p->nvdevs || bp->bp_lsize == 0 || bp->bp_lsize > CE_VOLBLOCKSIZE_MAX ||
	    bp->bp_psize == 0 || bp->bp_comp > CE_COMP_MAX || bp->bp_offset % CE_SECTOR != 0)
		return 0;
	if (bp->bp_comp == CE_COMP_OFF ? bp->bp_psize != bp->bp_lsize : bp->bp_psize >= bp->bp_lsize)
		return 0;
	const vdev *vd = &p->vds[bp->bp_vdev];
	uint64_t end = VDEV_DATA_START + vd->nsectors * CE_SECTOR;
	return bp->bp_offset >= VDEV_DATA_START && bp->bp_offset + bp_asize(bp) <= end;
}

/*
 * Verify a block read from disk (raw holds its asize bytes) and produce its
 * logical bytes in dst (bp_lsize bytes): in place when uncompressed.
 */
static int
verify_block(ce_pool *p, const bp_phys *bp, const uint8_t *raw, uint8_t *dst)
{
	if (!checksum_verify(bp->bp_cksum_type, raw, bp->bp_psize, bp->bp_cksum)) {
		pool_cksum_error(p);
		return -EIO;
	}
	if (bp->bp_comp == CE_COMP_OFF) {
		if (dst != raw)
			memcpy(dst, raw, bp->bp_lsize);
		return 0;
	}
	if (decompress_block(bp->bp_comp, raw, bp->bp_psize, dst, bp->bp_lsize) != 0) {
		pool_cksum_error(p);
		return -EIO;
	}
	return 0;
}

/* The pool and txg this thread is syncing (blk_sync_begin), whose queued writes it may read. */
static __thread ce_pool *sync_pool;
static __thread uint64_t sync_txg;

void
blk_sync_begin(ce_pool *p, uint64_t txg)
{
	sync_pool = p;
	sync_txg = txg;
	p->wq_sync_start = p->wq_total;
}

void
blk_sync_end(void)
{
	if (sync_pool != NULL)
		__atomic_store_n(&sync_pool->wq_last_sync, sync_pool->wq_total - sync_pool->wq_sync_start,
		    __ATOMIC_RELAXED);
	sync_pool = NULL;
	sync_txg = 0;
}

/* What the newest txg sync queued for writing (ce_pool_stat.last_sync_bytes; any thread). */
uint64_t
blk_last_sync_bytes(const ce_pool *p)
{
	return __atomic_load_n(&p->wq_last_sync, __ATOMIC_RELAXED);
}

/* The newest queued write of bp's location, when this thread is syncing the txg bp was born in. */
static const wq_ent *
wq_find(ce_pool *p, const bp_phys *bp)
{
	if (sync_pool != p || bp->bp_birth != sync_txg)
		return NULL;
	for (size_t i = p->wq_n; i-- > 0;) {
		const wq_ent *q = &p->wq[i];
		if (q->vdev == bp->bp_vdev && q->offset == bp->bp_offset)
			return q->len == bp_asize(bp) ? q : NULL;
	}
	return NULL;
}

/* ---- for the asynchronous reader (aread.c) ---- */

static __thread int nowait;
static __thread int nowait_missed;     /* blk_read found a block not cached (nowait) */
static __thread bp_phys nowait_miss;   /* the first such block */

void
blk_nowait_begin(void)
{
	nowait = 1;
	nowait_missed = 0;
}

int
blk_nowait_miss(bp_phys *out)
{
	if (nowait_missed)
		*out = nowait_miss;
	return nowait_missed;
}

void
blk_nowait_end(void)
{
	nowait = 0;
}

int
blk_bp_sane(const ce_pool *p, const bp_phys *bp)
{
	return bp_sane(p, bp);
}

int
blk_verify(ce_pool *p, const bp_phys *bp, const uint8_t *raw, uint8_t *dst)
{
	return verify_block(p, bp, raw, dst);
}

int
blk_read(ce_pool *p, const bp_phys *bp, void *dst, size_t off, size_t len)
{
	if (bp_is_hole(bp)) {
		memset(dst, 0, len);
		return 0;
	}
	if (!bp_sane(p, bp)) {
		pool_cksum_error(p);
		return -EIO;
	}
	if (off + len > bp->bp_lsize)
		return -EINVAL;
	if (cache_get(&p->cache, bp, dst, off, len))
		return 0;
	if (nowait) {
		if (!nowait_missed) {
			nowait_missed = 1;
			nowait_miss = *bp;
		}
		return -EWOULDBLOCK; /* blk_nowait_begin: no device reads on this thread */
	}
	uint64_t asize = bp_asize(bp);
	uint8_t *raw = bufpool_get(asize);
	uint8_t *logical = bp->bp_comp == CE_COMP_OFF ? raw : bufpool_get(bp->bp_lsize);
	const wq_ent *q = wq_find(p, bp);
	int err = 0;
	if (q != NULL)
		memcpy(raw, q->buf, asize);
	else
		err = vdev_read(&p->vds[bp->bp_vdev], raw, asize, bp->bp_offset);
	if (err != 0) {
		pool_io_error(p, err);
		err = -EIO;
	} else {
		err = verify_block(p, bp, raw, logical);
	}
	if (logical != raw)
		bufpool_put(raw, asize);
	if (err == 0) {
		memcpy(dst, logical + off, len);
		cache_put_owned(&p->cache, bp, logical);
	} else {
		bufpool_put(logical, bp->bp_lsize);
	}
	return err;
}

typedef struct rq_ent {
	const bp_phys *bp;
	uint8_t *dst;
} rq_ent;

static int
rq_cmp(const void *a, const void *b)
{
	const bp_phys *x = ((const rq_ent *)a)->bp, *y = ((const rq_ent *)b)->bp;
	if (x->bp_vdev != y->bp_vdev)
		return x->bp_vdev < y->bp_vdev ? -1 : 1;
	return x->bp_offset < y->bp_offset ? -1 : x->bp_offset > y->bp_offset;
}

/* Reads that miss more blocks than this are streaming reads: not cached. */
#define RQ_CACHE_MAX 8

int
blk_read_many(ce_pool *p, const bp_phys *bps, uint8_t *const *dsts, size_t n)
{
	return blk_read_many_fill(p, bps, dsts, n, 0);
}

int
blk_read_many_fill(ce_pool *p, const bp_phys *bps, uint8_t *const *dsts, size_t n, int fill)
{
	rq_ent *rq = xmalloc((n ? n : 1) * sizeof(rq_ent));
	size_t nr = 0;
	int err = 0;

	/* one cache lookup per block: their table slots are loaded together, not one miss at a time */
	if (n > 1)
		cache_prefetch(&p->cache, bps, n);
	for (size_t i = 0; i < n; i++) {
		const bp_phys *bp = &bps[i];
		if (bp_is_hole(bp))
			continue; /* the caller zero-fills holes: they have no size */
		if (!bp_sane(p, bp)) {
			pool_cksum_error(p);
			err = -EIO;
			continue;
		}
		if (cache_get(&p->cache, bp, dsts[i], 0, bp->bp_lsize))
			continue;
		const wq_ent *q = wq_find(p, bp);
		if (q != NULL) {
			if (verify_block(p, bp, q->buf, dsts[i]) != 0)
				err = -EIO;
			continue;
		}
		rq[nr++] = (rq_ent){ bp, dsts[i] };
	}
	int cache_fill = fill || nr <= RQ_CACHE_MAX;
	qsort(rq, nr, sizeof(rq_ent), rq_cmp);
	for (size_t i = 0; i < nr;) {
		/* One run: physically contiguous blocks on one vdev. */
		size_t j = i + 1;
		uint64_t start = rq[i].bp->bp_offset, end = start + bp_asize(rq[i].bp);
		while (j < nr && rq[j].bp->bp_vdev == rq[i].bp->bp_vdev &&
		    rq[j].bp->bp_offset == end && end - start + bp_asize(rq[j].bp) <= RQ_MAX_RUN) {
			end += bp_asize(rq[j].bp);
			j++;
		}
		/*
		 * An uncompressed run whose destinations are one aligned, contiguous
		 * buffer is read straight into it and verified there (on a checksum
		 * error the call fails, so the caller never takes those bytes as data).
		 */
		int direct = ((uintptr_t)rq[i].dst % CE_SECTOR) == 0;
		for (size_t k = i; direct && k < j; k++)
			direct = rq[k].bp->bp_comp == CE_COMP_OFF &&
			    rq[k].dst == rq[i].dst + (rq[k].bp->bp_offset - start);
		uint8_t *raw = direct ? rq[i].dst
				      : end - start <= BUFPOOL_MAX ? bufpool_get(end - start)
								   : xmalloc_aligned(end - start);
		int rerr = vdev_read(&p->vds[rq[i].bp->bp_vdev], raw, end - start, start);
		if (rerr != 0) {
			pool_io_error(p, rerr);
			err = -EIO;
		} else {
			for (size_t k = i; k < j; k++) {
				const bp_phys *bp = rq[k].bp;
				if (verify_block(p, bp, raw + (bp->bp_offset - start), rq[k].dst) != 0) {
					err = -EIO;
					continue;
				}
				if (cache_fill)
					cache_put(&p->cache, bp, rq[k].dst);
			}
		}
		if (direct)
			; /* the caller's buffer */
		else if (end - start <= BUFPOOL_MAX)
			bufpool_put(raw, end - start);
		else
			free(raw);
		i = j;
	}
	free(rq);
	return err;
}

static int
wq_add(ce_pool *p, uint32_t vdi, uint64_t offset, void *buf, uint32_t len, int owned)
{
	if (p->wq_n == p->wq_cap) {
		p->wq_cap = p->wq_cap ? p->wq_cap * 2 : 1024;
		p->wq = xrealloc(p->wq, p->wq_cap * sizeof(wq_ent));
	}
	p->wq[p->wq_n++] = (wq_ent){ vdi, offset, p->wq_seq++, buf, len, owned };
	p->wq_bytes += len;
	p->wq_total += len;
	/* Bound the memory queued writes hold; order is kept, so this is always safe. */
	return p->wq_bytes >= WQ_FLUSH_BYTES ? wq_flush(p) : 0;
}

/*
 * The part of a block write that needs only the block's bytes: compress
 * (into scratch, a compress_bound(CE_VOLBLOCKSIZE_MAX) buffer of the
 * caller's), pad, checksum. Any thread may run it (pipe.c's workers do);
 * it touches no pool state. The result is placed by blk_place or dropped
 * by blk_prep_drop.
 */
void
blk_prepare(const void *data, uint32_t lsize, int comp, int cktype, unsigned flags, const uint8_t *known,
    uint8_t *scratch, blk_prep *out)
{
	uint32_t psize = lsize;
	uint8_t used_comp = CE_COMP_OFF;
	uint8_t *iobuf = NULL;
	int owned = 1;

	if (comp != CE_COMP_OFF && lsize > CE_SECTOR) {
		size_t cap = compress_bound(CE_VOLBLOCKSIZE_MAX);
		size_t n = compress_block(comp, data, lsize, scratch, cap, lsize - CE_SECTOR);
		if (n > 0) {
			psize = (uint32_t)n;
			used_comp = (uint8_t)comp;
			iobuf = bufpool_get(P2ROUNDUP(psize, CE_SECTOR));
			memcpy(iobuf, scratch, psize);
		}
	}
	uint32_t asize = P2ROUNDUP(psize, CE_SECTOR);
	if (iobuf == NULL) {
		if ((flags & BLK_BORROW) && ((uintptr_t)data % CE_SECTOR) == 0 && psize == asize) {
			iobuf = (uint8_t *)data; /* written straight from the caller's buffer */
			owned = 0;
		} else {
			iobuf = bufpool_get(asize);
			memcpy(iobuf, data, psize);
		}
	}
	if (asize > psize)
		memset(iobuf + psize, 0, asize - psize);
	memset(out, 0, sizeof(*out));
	out->data = data;
	out->iobuf = iobuf;
	out->lsize = lsize;
	out->psize = psize;
	out->comp = used_comp;
	out->cktype = (uint8_t)cktype;
	out->owned = (uint8_t)owned;
	if (known != NULL && used_comp == CE_COMP_OFF && cktype == CE_CK_XXH128 && psize == lsize) {
		/* stored as it is: the hash its writer computed (vol.c invariant 7) is its checksum */
		memset(out->cksum, 0, sizeof(out->cksum));
		memcpy(out->cksum, known, 16);
		out->known = 1;
#ifndef NDEBUG
		uint8_t ck[32];
		checksum_compute(cktype, iobuf, psize, ck);
		VERIFY(memcmp(ck, out->cksum, sizeof(ck)) == 0);
#endif
		return;
	}
	checksum_compute(cktype, iobuf, psize, out->cksum);
}

void
blk_prep_drop(blk_prep *b)
{
	if (b->iobuf != NULL && b->owned)
		bufpool_put(b->iobuf, P2ROUNDUP(b->psize, CE_SECTOR));
	b->iobuf = NULL;
}

/*
 * The sync thread's part: allocate (or rewrite in place), cache, queue.
 * Consumes b (placed or, on failure, dropped).
 */
int
blk_place(ce_pool *p, blk_prep *b, int type, int level, uint64_t txg, const bp_phys *old, unsigned flags,
    bp_phys *out)
{
	ASSERT(sync_pool == p && sync_txg == txg); /* invariant 3: the sync thread of txg writes */
	ASSERT(b->iobuf != NULL);
	uint32_t asize = P2ROUNDUP(b->psize, CE_SECTOR);
	bp_phys bp;
	int err;

	memset(&bp, 0, sizeof(bp));
	bp.bp_psize = b->psize;
	bp.bp_lsize = b->lsize;
	bp.bp_birth = txg;
	bp.bp_comp = b->comp;
	bp.bp_cksum_type = b->cktype;
	bp.bp_type = (uint8_t)type;
	bp.bp_level = (uint8_t)level;
	memcpy(bp.bp_cksum, b->cksum, sizeof(bp.bp_cksum));

	if (old != NULL && !bp_is_hole(old) && old->bp_birth == txg && bp_asize(old) == asize) {
		/* invariant 2: born in the txg being synced, so no committed uberblock names it */
		ASSERT3U(old->bp_birth, ==, sync_txg);
		bp.bp_vdev = old->bp_vdev;
		bp.bp_offset = old->bp_offset;
	} else {
		uint32_t v;
		err = alloc_alloc(&p->alloc, asize, &v, &bp.bp_offset);
		if (err != 0) {
			blk_prep_drop(b);
			return err;
		}
		bp.bp_vdev = (uint16_t)v;
	}
	if (flags & BLK_CACHE)
		cache_put(&p->cache, &bp, b->data);
	*out = bp;
	uint8_t *iobuf = b->iobuf;
	b->iobuf = NULL; /* the queue has it now */
	return wq_add(p, bp.bp_vdev, bp.bp_offset, iobuf, asize, b->owned);
}

int
blk_write(ce_pool *p, const void *data, uint32_t lsize, int comp, int cktype, int type,
    int level, uint64_t txg, const bp_phys *old, unsigned flags, bp_phys *out)
{
	ASSERT(sync_pool == p && sync_txg == txg); /* invariant 3: the sync thread of txg writes */
	if (comp != CE_COMP_OFF && p->cbuf == NULL)
		p->cbuf = xmalloc(compress_bound(CE_VOLBLOCKSIZE_MAX));
	blk_prep b;
	blk_prepare(data, lsize, comp, cktype, flags, NULL, p->cbuf, &b);
	return blk_place(p, &b, type, level, txg, old, flags, out);
}

void
blk_free(ce_pool *p, const bp_phys *bp, uint64_t txg)
{
	if (bp_is_hole(bp))
		return;
	ASSERT(sync_pool == p && sync_txg == txg); /* frees belong to the txg being synced */
	alloc_free(&p->alloc, bp->bp_vdev, bp->bp_offset, bp_asize(bp), bp->bp_birth == txg);
}

static int
wq_cmp(const void *a, const void *b)
{
	const wq_ent *x = a, *y = b;
	if (x->vdev != y->vdev)
		return x->vdev < y->vdev ? -1 : 1;
	if (x->offset != y->offset)
		return x->offset < y->offset ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int
wq_flush(ce_pool *p)
{
	int err = 0;
	if (p->wq_n == 0)
		return 0;
	struct iovec *iov = xmalloc(1024 * sizeof(struct iovec));
	qsort(p->wq, p->wq_n, sizeof(wq_ent), wq_cmp);
	/*
	 * Where two queued writes overlap, only the newer is written. The
	 * same location rewritten in place keeps its newest bytes; a range
	 * that overlaps a newer write was freed in this txg (the allocator
	 * gave its sectors out again), so nothing references its bytes.
	 * Sorted by offset, the kept writes do not overlap, so a write can
	 * only overlap the last one kept.
	 */
	size_t k = 0;
	for (size_t i = 0; i < p->wq_n; i++) {
		wq_ent *last = k > 0 ? &p->wq[k - 1] : NULL, *e = &p->wq[i];
		if (last != NULL && last->vdev == e->vdev && last->offset + last->len > e->offset) {
			wq_ent *drop = last->seq > e->seq ? e : last;
			if (drop->owned)
				bufpool_put(drop->buf, drop->len);
			if (drop == last)
				p->wq[k - 1] = *e;
			continue;
		}
		p->wq[k++] = *e;
	}
	p->wq_n = k;
	for (size_t i = 1; i < p->wq_n; i++) /* invariant 3: the kept writes do not overlap */
		ASSERT(p->wq[i - 1].vdev != p->wq[i].vdev ||
		    p->wq[i - 1].offset + p->wq[i - 1].len <= p->wq[i].offset);
	for (size_t i = 0; i < p->wq_n;) {
		size_t j = i;
		uint64_t end = p->wq[i].offset;
		int n = 0;
		while (j < p->wq_n && p->wq[j].vdev == p->wq[i].vdev && p->wq[j].offset == end &&
		    n < 1024 && end - p->wq[i].offset + p->wq[j].len <= WQ_MAX_RUN) {
			iov[n].iov_base = p->wq[j].buf;
			iov[n].iov_len = p->wq[j].len;
			end += p->wq[j].len;
			n++;
			j++;
		}
		if (err == 0) {
			int e = vdev_writev(&p->vds[p->wq[i].vdev], iov, n, p->wq[i].offset);
			if (e != 0)
				err = pool_io_error(p, e);
		}
		i = j;
	}
	for (size_t i = 0; i < p->wq_n; i++)
		if (p->wq[i].owned)
			bufpool_put(p->wq[i].buf, p->wq[i].len);
	p->wq_n = 0;
	p->wq_bytes = 0;
	free(iov);
	return err;
}

void
blk_fini(ce_pool *p)
{
	wq_discard(p);
	free(p->wq);
	free(p->cbuf);
	p->wq = NULL;
	p->cbuf = NULL;
	p->wq_cap = 0;
}

void
wq_discard(ce_pool *p)
{
	for (size_t i = 0; i < p->wq_n; i++)
		if (p->wq[i].owned)
			bufpool_put(p->wq[i].buf, p->wq[i].len);
	p->wq_n = 0;
	p->wq_bytes = 0;
}
