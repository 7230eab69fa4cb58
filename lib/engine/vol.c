/*
 * vol.c -- volumes: thin block devices made of a copy-on-write tree.
 *
 * Owns each volume's in-memory data state (struct volume): its committed
 * tree, and per transaction group the dirty blocks and punched ranges
 * that are not yet in the tree; the data path (read, write, trim,
 * write-zeroes, map, flush), resize (it punches the dirty maps), the
 * handles (open, close) and what the intent log reads and replays
 * (vol_ilog_ops). The dataset directory and the other management
 * operations are dataset.c's; writing a volume's txg out is vol_sync.c's.
 *
 * Invariants:
 *   1. A block's current contents are, newest first: its dirty buffer or
 *      punched range in the open txg, then in the syncing txg, then the
 *      committed tree. Readers take exactly that order under v->lock,
 *      capturing the tree root in the same critical section.
 *   2. A writer holding txg t changes only the maps of txg t, and also
 *      the copy in txg t+1 when one exists (t is then quiescing), so that
 *      concurrent writes to different bytes of one block are never lost.
 *   3. Read-modify-write takes its base from txgs <= t only. When it has
 *      to read the tree it drops the lock, and retries if v->gen changed
 *      meanwhile.
 *   4. The maps of a syncing txg are frozen: nobody adds to them. The
 *      sync thread writes them out, then installs the new root and drops
 *      the maps in one critical section (vol_sync.c).
 *   5. Every dirty data block is charged against free space when it first
 *      becomes dirty in a txg (its size plus one path of new indirect
 *      blocks when its parent is not yet charged), so a full pool fails
 *      the write with -ENOSPC instead of failing the sync. Holes are
 *      never charged: trim and destroy always work.
 *   6. A volume is on txg t's dirty list (pool_sync.c) from its first
 *      dirty block of t on: map_claim puts it there.
 *   7. A known hash (v->kh[i], kept with the maps of slot i) is the
 *      XXH3-128 of the bytes its buffer holds: only vol_recv_adopt adds
 *      one, for a block it has just put, and whatever else puts a block
 *      into a map or patches a dirty buffer in place forgets the block's
 *      known hash in that map first (kh_forget: put_block, rmw_block);
 *      so does whatever deletes a dirty block and frees its buffer (a
 *      trim's range punch, a shrink: a freed buffer may come back as
 *      another block's).
 *      Entries ascend by blkid (one that would not is not added: the hash
 *      is then computed as for any block), so the sync finds them with a
 *      merge walk and takes one only for the very buffer it writes
 *      (vol_known_hash). Debug builds verify every hash taken (blkio.c).
 */
#include "vol.h"
#include "aread.h"
#include "blkio.h"
#include "bufpool.h"
#include "dataset.h"
#include "deadlist.h"
#include "snap.h"
#include "repl.h"
#include "txg.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

char vol_hole_marker;

#define TRIM_RANGE_MIN 64u  /* punch by range at or above this many blocks */
#define READ_BATCH 256u     /* blocks resolved per read batch */
#define RA_INFLIGHT 2       /* read-ahead batches of one handle in flight at once */

volume *
vol_new(ce_pool *p)
{
	volume *v = xcalloc(1, sizeof(*v));
	v->pool = p;
	pthread_mutex_init(&v->lock, NULL);
	for (int i = 0; i < 2; i++) {
		htab_init(&v->dirty[i]);
		htab_init(&v->parents[i]);
	}
	v->slot = VOL_NO_SLOT;
	dl_init(&v->dl);
	v->tree.leaf_type = BP_DATA;
	v->tree.ind_comp = CE_COMP_LZ4;
	v->tree.cktype = CE_CK_XXH128;
	return v;
}

void
vol_drop_maps(volume *v, int i)
{
	size_t it = 0;
	uint64_t k;
	void *d;
	while (htab_next(&v->dirty[i], &it, &k, &d))
		if (d != VOL_HOLE)
			bufpool_put(d, v->bs);
	htab_clear(&v->dirty[i]);
	htab_clear(&v->parents[i]);
	v->nfr[i] = 0;
	v->nkh[i] = 0;
	v->dtxg[i] = 0;
}

void
vol_delete(volume *v)
{
	for (int i = 0; i < 2; i++) {
		vol_drop_maps(v, i);
		htab_fini(&v->dirty[i]);
		htab_fini(&v->parents[i]);
		free(v->fr[i]);
		free(v->kh[i]);
	}
	dl_fini(&v->dl);
	repl_free(v);
	pthread_mutex_destroy(&v->lock);
	free(v);
}

/* ce_pool_clear: forget a volume's dirty state and pending operations (v->lock held). */
void
vol_forget_pending(volume *v)
{
	for (int i = 0; i < 2; i++) {
		vol_drop_maps(v, i);
		v->charged[i] = 0; /* the allocator was rebuilt: no charges exist */
		v->dbytes[i] = 0;
	}
	v->taking = 0;
	v->rolling_back = 0;
	v->gone = 0;
	v->gen++;
}

/* ---- per-txg dirty state ---- */

static void
map_claim(volume *v, uint64_t t)
{
	int i = t & 1;
	ASSERT_HELD(&v->lock); /* invariant 2: the maps of t change under the volume's lock */
	if (v->dtxg[i] == 0) {
		v->dtxg[i] = t;
		pool_dirty(v->pool, v, t); /* its first dirty block of t */
	}
	VERIFY3U(v->dtxg[i], ==, t);
}

static int
fr_covers(const volume *v, int i, uint64_t blkid)
{
	for (size_t k = 0; k < v->nfr[i]; k++)
		if (blkid >= v->fr[i][k].start && blkid < v->fr[i][k].end)
			return 1;
	return 0;
}

/* Newest dirty state of blkid in txgs <= maxtxg: 1 and *data (buffer or VOL_HOLE), or 0. */
static int
dirty_lookup(const volume *v, uint64_t maxtxg, uint64_t blkid, void **data)
{
	int first = v->dtxg[0] >= v->dtxg[1] ? 0 : 1;
	for (int n = 0; n < 2; n++) {
		int i = n == 0 ? first : !first;
		if (v->dtxg[i] == 0 || v->dtxg[i] > maxtxg)
			continue;
		void *d = htab_get(&v->dirty[i], blkid);
		if (d != NULL) {
			*data = d;
			return 1;
		}
		if (fr_covers(v, i, blkid)) {
			*data = VOL_HOLE;
			return 1;
		}
	}
	return 0;
}

static void *
zbuf(const volume *v)
{
	void *b = bufpool_get(v->bs);
	memset(b, 0, v->bs);
	return b;
}

/* The known hash of blkid in slot i (binary search: entries ascend), or NULL. */
static vol_khash *
kh_find(volume *v, int i, uint64_t blkid)
{
	size_t lo = 0, hi = v->nkh[i];
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v->kh[i][mid].blkid < blkid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < v->nkh[i] && v->kh[i][lo].blkid == blkid ? &v->kh[i][lo] : NULL;
}

/* Invariant 7: blkid's buffer in slot i changes, its known hash (if any) is forgotten (v->lock). */
static void
kh_forget(volume *v, int i, uint64_t blkid)
{
	size_t n = v->nkh[i];
	if (n == 0 || blkid > v->kh[i][n - 1].blkid || blkid < v->kh[i][0].blkid)
		return; /* every volume but a receiving one, and a receive's next block */
	vol_khash *e = kh_find(v, i, blkid);
	if (e != NULL)
		e->buf = NULL;
}

/* Invariant 7: blkid was just put in slot i with buffer buf, whose bytes hash to h (v->lock). */
static void
kh_add(volume *v, int i, uint64_t blkid, const void *buf, const uint8_t h[16])
{
	size_t n = v->nkh[i];
	if (n > 0 && v->kh[i][n - 1].blkid >= blkid)
		return; /* out of order (not a receive's): computed at the sync like any block's */
	if (n == v->capkh[i]) {
		v->capkh[i] = v->capkh[i] ? v->capkh[i] * 2 : 256;
		v->kh[i] = xrealloc(v->kh[i], v->capkh[i] * sizeof(vol_khash));
	}
	vol_khash *e = &v->kh[i][v->nkh[i]++];
	e->blkid = blkid;
	e->buf = buf;
	memcpy(e->h, h, 16);
}

/* For vol_sync (slot i frozen: its txg is syncing): the hash of blkid's buffer buf, or NULL. */
const uint8_t *
vol_known_hash(const volume *v, int i, uint64_t blkid, const void *buf, size_t *cur)
{
	while (*cur < v->nkh[i] && v->kh[i][*cur].blkid < blkid)
		(*cur)++;
	if (*cur < v->nkh[i] && v->kh[i][*cur].blkid == blkid && v->kh[i][*cur].buf == buf && buf != VOL_HOLE)
		return v->kh[i][*cur].h;
	return NULL;
}

static int
charge_block(volume *v, int i, uint64_t blkid)
{
	uint64_t need = v->bs / CE_SECTOR, pk = 0;
	int new_parent = 0;
	if (v->want_levels > 1) {
		pk = (blkid >> CE_IND_SHIFT);
		if (htab_get(&v->parents[i], pk) == NULL) {
			need += (uint64_t)(v->want_levels - 1) * (CE_IND_SIZE / CE_SECTOR);
			new_parent = 1;
		}
	}
	int err = alloc_charge(&v->pool->alloc, need, 0);
	if (err != 0)
		return err_set(err, "pool %s is full", v->pool->name);
	if (new_parent)
		htab_put(&v->parents[i], pk, VOL_HOLE);
	v->charged[i] += need;
	return 0;
}

/*
 * Store data (owned buffer or VOL_HOLE) as blkid's contents in txg t. A
 * whole-block write also replaces a newer copy (invariant 2); a partial
 * write passes whole = 0 and patches the newer copy itself, because
 * copying its whole block would clobber other writers' bytes there.
 */
static int
put_block(volume *v, uint64_t t, uint64_t blkid, void *data, int whole, int64_t *ddelta)
{
	int i = t & 1, j = !i;
	map_claim(v, t);
	kh_forget(v, i, blkid); /* invariant 7 */
	void *old = htab_get(&v->dirty[i], blkid);
	if ((old == NULL || old == VOL_HOLE) && data != VOL_HOLE) {
		int err = charge_block(v, i, blkid);
		if (err != 0)
			return err;
	}
	htab_put(&v->dirty[i], blkid, data);
	if (old != NULL && old != VOL_HOLE) {
		bufpool_put(old, v->bs);
		v->dbytes[i] -= v->bs;
		*ddelta -= v->bs;
	}
	if (data != VOL_HOLE) {
		v->dbytes[i] += v->bs;
		*ddelta += v->bs;
	}
	/* Invariant 2: a newer copy of this block must see this write too. */
	if (whole && v->dtxg[j] == t + 1) {
		void *e = htab_get(&v->dirty[j], blkid);
		if (e != NULL) {
			void *copy = VOL_HOLE;
			if (data != VOL_HOLE) {
				copy = bufpool_get(v->bs);
				memcpy(copy, data, v->bs);
			}
			kh_forget(v, j, blkid); /* invariant 7 */
			htab_put(&v->dirty[j], blkid, copy);
			if (e != VOL_HOLE)
				bufpool_put(e, v->bs);
			else if (copy != VOL_HOLE)
				v->dbytes[j] += v->bs, *ddelta += v->bs;
			if (copy == VOL_HOLE && e != VOL_HOLE)
				v->dbytes[j] -= v->bs, *ddelta -= v->bs;
		}
	}
	v->gen++;
	return 0;
}

static void
apply_bytes(uint8_t *blk, uint32_t boff, uint32_t len, const void *src)
{
	if (src != NULL)
		memcpy(blk + boff, src, len);
	else
		memset(blk + boff, 0, len);
}

/* Write part of a block in txg t (src NULL: zeros). */
static int
rmw_block(volume *v, uint64_t t, uint64_t blkid, uint32_t boff, uint32_t len, const void *src,
    int64_t *ddelta)
{
	ce_pool *p = v->pool;
	int i = t & 1, j = !i;
	for (;;) {
		pthread_mutex_lock(&v->lock);
		void *e = v->dtxg[i] == t ? htab_get(&v->dirty[i], blkid) : NULL;
		uint8_t *nb = NULL;
		if (e != NULL && e != VOL_HOLE) {
			kh_forget(v, i, blkid); /* invariant 7: patched in place */
			apply_bytes(e, boff, len, src);
		} else {
			void *base;
			if (e == VOL_HOLE) {
				nb = zbuf(v);
			} else if (dirty_lookup(v, t, blkid, &base)) {
				nb = bufpool_get(v->bs);
				if (base == VOL_HOLE)
					memset(nb, 0, v->bs);
				else
					memcpy(nb, base, v->bs);
			} else {
				uint64_t gen0 = v->gen;
				cowtree ts = v->tree;
				pthread_mutex_unlock(&v->lock);
				nb = bufpool_get(v->bs);
				bp_phys bp;
				pthread_rwlock_rdlock(&p->free_lock);
				int err = cowtree_lookup(p, &ts, blkid, &bp);
				if (err == 0)
					err = bp_is_hole(&bp) ? (memset(nb, 0, v->bs), 0)
							      : blk_read(p, &bp, nb, 0, v->bs);
				pthread_rwlock_unlock(&p->free_lock);
				if (err != 0) {
					bufpool_put(nb, v->bs);
					return err_set(err, "%s: read of block %" PRIu64
					    " for a partial write failed", v->name, blkid);
				}
				pthread_mutex_lock(&v->lock);
				if (v->gen != gen0) {
					pthread_mutex_unlock(&v->lock);
					bufpool_put(nb, v->bs);
					continue;
				}
			}
			apply_bytes(nb, boff, len, src);
			int err = put_block(v, t, blkid, nb, 0, ddelta);
			if (err != 0) {
				pthread_mutex_unlock(&v->lock);
				bufpool_put(nb, v->bs);
				return err;
			}
		}
		/* Invariant 2 for partial writes: patch a newer copy with these bytes only. */
		if (v->dtxg[j] == t + 1) {
			void *ne = htab_get(&v->dirty[j], blkid);
			if (ne == VOL_HOLE) {
				ne = zbuf(v);
				htab_put(&v->dirty[j], blkid, ne);
				v->dbytes[j] += v->bs;
				*ddelta += v->bs;
			}
			if (ne != NULL) {
				kh_forget(v, j, blkid); /* invariant 7 */
				apply_bytes(ne, boff, len, src);
			}
		}
		v->gen++;
		pthread_mutex_unlock(&v->lock);
		return 0;
	}
}

/*
 * After ce_pool_clear, writes that were acknowledged but not flushed
 * before the failure are gone. A handle opened before the clear must not
 * write or flush as if nothing happened (a later FLUSH would claim those
 * writes durable): it gets EIO until it is reopened, like a connection to
 * a server that crashed.
 */
static int
stale_check(const ce_vol *h)
{
	ce_pool *p = h->v->pool;
	if (h->clear_gen != atomic_load(&p->clear_gen))
		return err_set(-EIO, "pool %s was cleared after an IO error: writes not flushed before "
		    "it were lost; reopen volume %s", p->name, h->v->name);
	return 0;
}

static int
check_range(const volume *v, uint64_t off, uint64_t len)
{
	if (off > v->size || len > v->size - off)
		return err_set(-EINVAL, "%s: range %" PRIu64 "+%" PRIu64 " is beyond the end (%" PRIu64
		    " bytes)", v->name, off, len, v->size);
	return 0;
}

#define PUT_BATCH 256u /* whole blocks copied outside the lock, then put under one hold of it */

/*
 * Whole blocks [blkid, blkid + n): from src, each copied into a buffer of
 * its own without the lock, or (adopt) the caller's buffers themselves,
 * no copy; then all put in one critical section (a reader sees each block
 * old or new, as with one at a time). On failure *nput blocks were put
 * (the map owns their buffers); copies not put are freed here, adopted
 * buffers not put stay the caller's.
 */
static int
put_blocks(volume *v, uint64_t t, uint64_t blkid, const uint8_t *src, void *const *adopt,
    const uint8_t (*hashes)[16], uint32_t n, int64_t *dd, uint32_t *nput)
{
	void *nb[PUT_BATCH];
	VERIFY3U(n, <=, PUT_BATCH);
	if (adopt != NULL) {
		memcpy(nb, adopt, n * sizeof(void *));
	} else {
		bufpool_get_n(v->bs, nb, n);
		for (uint32_t k = 0; k < n; k++)
			memcpy(nb[k], src + (size_t)k * v->bs, v->bs);
	}
	int err = 0;
	uint32_t k = 0;
	pthread_mutex_lock(&v->lock);
	for (; k < n && err == 0; k++) {
		err = put_block(v, t, blkid + k, nb[k], 1, dd);
		if (err == 0 && hashes != NULL)
			kh_add(v, t & 1, blkid + k, nb[k], hashes[k]);
	}
	pthread_mutex_unlock(&v->lock);
	*nput = err != 0 ? k - 1 : n;
	if (err != 0 && adopt == NULL)
		for (k--; k < n; k++) /* the failed block's buffer and those not put */
			bufpool_put(nb[k], v->bs);
	return err;
}

/* Apply a write (src) or zeroing (src NULL) block by block within txg t. */
static int
write_blocks(volume *v, uint64_t t, const uint8_t *src, uint64_t len, uint64_t off, int64_t *dd)
{
	while (len > 0) {
		uint64_t blkid = off / v->bs;
		uint32_t boff = (uint32_t)(off % v->bs);
		uint32_t n = (uint32_t)MIN((uint64_t)(v->bs - boff), len);
		int err;
		if (n == v->bs && src != NULL && len >= 2 * (uint64_t)v->bs) {
			uint32_t nblk = (uint32_t)MIN(len / v->bs, (uint64_t)PUT_BATCH);
			uint32_t nput;
			n = nblk * v->bs;
			err = put_blocks(v, t, blkid, src, NULL, NULL, nblk, dd, &nput);
		} else if (n == v->bs && src != NULL) {
			void *nb = bufpool_get(v->bs);
			memcpy(nb, src, v->bs);
			pthread_mutex_lock(&v->lock);
			err = put_block(v, t, blkid, nb, 1, dd);
			pthread_mutex_unlock(&v->lock);
			if (err != 0)
				bufpool_put(nb, v->bs);
		} else if (n == v->bs) {
			pthread_mutex_lock(&v->lock);
			err = put_block(v, t, blkid, VOL_HOLE, 1, dd);
			pthread_mutex_unlock(&v->lock);
		} else {
			err = rmw_block(v, t, blkid, boff, n, src, dd);
		}
		if (err != 0)
			return err;
		off += n;
		len -= n;
		if (src != NULL)
			src += n;
	}
	return 0;
}

/* What every change of a volume's data checks first: the pool, the handle, the range (clears the error). */
static int
writable(ce_vol *h, uint64_t off, uint64_t len)
{
	volume *v = h->v;
	ce_pool *p = v->pool;
	int err;

	err_clear();
	if (p->readonly)
		return err_set(-EROFS, "pool %s is imported read-only", p->name);
	if (v->destroy_txg != 0)
		return err_set(-ENOENT, "volume %s/%s no longer exists", p->name, v->name);
	if (v->is_snap)
		return err_set(-EROFS, "%s/%s is a snapshot: read-only", p->name, v->name);
	if (repl_of(v) != NULL && !h->repl)
		return err_setc(CE_E_REPLICA_READ_ONLY, -EROFS, "%s/%s is a replica volume: only its "
		    "controller writes it", p->name, v->name);
	if ((err = stale_check(h)) != 0)
		return err;
	return check_range(v, off, len);
}

/*
 * A write (buf), a zeroing (buf NULL, adopt NULL) or an adoption (adopt:
 * len / bs whole blocks at an aligned off, each a buffer of the block
 * size from ce_blockbuf_get, put into the dirty map as they are). *taken
 * counts the adopted buffers the map now owns; the caller frees the rest.
 * hashes: with adopt, each block's XXH3-128 (invariant 7), or NULL.
 */
static int
vol_modify(ce_vol *h, const void *buf, void *const *adopt, const uint8_t (*hashes)[16], size_t len,
    uint64_t off, size_t *taken)
{
	volume *v = h->v;
	ce_pool *p = v->pool;
	int err, retried = 0;

	if ((err = writable(h, off, len)) != 0)
		return err;
	const uint8_t *src = buf;
	while (len > 0) {
		uint64_t chunk = MIN((uint64_t)len, (uint64_t)v->bs * 256);
		int64_t dd = 0;
		txg_throttle(p);
		uint64_t t = txg_hold(p, &err);
		if (err != 0)
			return err;
		if (h->clear_gen != atomic_load(&p->clear_gen)) {
			/*
			 * A clear ran between two chunks: the earlier ones went with the
			 * txgs it dropped, so this write must not finish in the new pool
			 * and be answered as if whole (clear_gen is bumped under
			 * pool->lock with the resume, so a hold taken after it sees it).
			 */
			txg_rele(p, t);
			return stale_check(h);
		}
		uint32_t nput = 0;
		if (adopt != NULL)
			err = put_blocks(v, t, off / v->bs, NULL, adopt + *taken, hashes ? hashes + *taken : NULL,
			    (uint32_t)(chunk / v->bs), &dd, &nput);
		else
			err = write_blocks(v, t, src, chunk, off, &dd);
		/* counted before t can quiesce: its sync subtracts these bytes (release_txg) */
		txg_dirty_add(p, dd, 1);
		txg_rele(p, t);
		/* Even a failed chunk may have changed some blocks: log what is there now. */
		if (repl_of(v) == NULL) /* a replica volume is made durable by a txg commit (repl.c, 5) */
			ilog_append(v, src != NULL || adopt != NULL ? LR_WRITE : LR_ZERO, off, chunk, t);
		if (adopt != NULL && err != 0) {
			/* the blocks put are the map's: go on after them (write_blocks' retry rewrites them) */
			*taken += nput;
			off += (uint64_t)nput * v->bs;
			len -= (size_t)nput * v->bs;
		}
		if (err == -ENOSPC && !retried) {
			/* Space freed by earlier txgs comes back when they commit. */
			retried = 1;
			int serr = txg_sync_now(p);
			if (serr != 0)
				return serr;
			continue;
		}
		if (err != 0)
			return err;
		retried = 0;
		off += chunk;
		len -= chunk;
		if (src != NULL)
			src += chunk;
		if (adopt != NULL)
			*taken += chunk / v->bs;
	}
	return 0;
}

/* sync=always: what just returned must be durable. */
static int
sync_always(volume *v, int err)
{
	if (err == 0 && v->sync == CE_SYNC_ALWAYS)
		err = ilog_commit(v->pool, v);
	return err;
}

int
ce_vol_write(ce_vol *h, const void *buf, size_t len, uint64_t off)
{
	if (buf == NULL)
		return err_set(-EINVAL, "write: no buffer");
	return sync_always(h->v, vol_modify(h, buf, NULL, NULL, len, off, NULL));
}

void *
ce_blockbuf_get(size_t size)
{
	return bufpool_get(size);
}

void
ce_blockbuf_put(void *buf, size_t size)
{
	bufpool_put(buf, size);
}

int
ce_vol_write_adopt(ce_vol *h, void *const *blocks, size_t n, uint64_t off, unsigned flags)
{
	volume *v = h->v;
	size_t taken = 0;
	int err;
	if (blocks == NULL && n > 0)
		err = err_set(-EINVAL, "write: no buffers");
	else if (off % v->bs != 0)
		err = err_set(-EINVAL, "%s: adopted blocks at %" PRIu64 ", not a multiple of the block size %u",
		    v->name, off, v->bs);
	else if (n > SIZE_MAX / v->bs)
		err = err_set(-EINVAL, "%s: %zu blocks is too many", v->name, n);
	else
		err = sync_always(v, vol_modify(h, NULL, blocks, NULL, n * v->bs, off, &taken));
	/* every buffer is the engine's now: those the map did not take are freed */
	for (size_t k = taken; blocks != NULL && k < n; k++)
		bufpool_put(blocks[k], v->bs);
	if (err == 0 && (flags & CE_WRITE_FUA) && v->sync == CE_SYNC_STANDARD)
		err = ilog_commit(v->pool, v);
	return err;
}

/* A hint for callers that must not block: a write now would wait for the sync thread (too much dirty data). */
int
ce_vol_write_would_wait(const ce_vol *h)
{
	ce_pool *p = h->v->pool;
	return txg_dirty_bytes(p) > p->opts.dirty_max;
}

/* CE_WRITE_FUA: durable on return (a log commit of this volume; none with sync=disabled). */
int
ce_vol_write_flags(ce_vol *h, const void *buf, size_t len, uint64_t off, unsigned flags)
{
	int err = ce_vol_write(h, buf, len, off);
	if (err == 0 && (flags & CE_WRITE_FUA) && h->v->sync == CE_SYNC_STANDARD)
		err = ilog_commit(h->v->pool, h->v);
	return err;
}

int
ce_vol_flush(ce_vol *h)
{
	err_clear();
	int err = stale_check(h);
	if (err != 0)
		return err;
	if (h->v->sync == CE_SYNC_DISABLED)
		return 0;
	return ilog_commit(h->v->pool, h->v);
}

static int
vol_trim(ce_vol *h, uint64_t off, uint64_t len)
{
	volume *v = h->v;
	ce_pool *p = v->pool;
	int err;

	if ((err = writable(h, off, len)) != 0)
		return err;
	uint64_t b0 = (off + v->bs - 1) / v->bs, b1 = (off + len) / v->bs;
	if (b1 <= b0 || b1 - b0 < TRIM_RANGE_MIN)
		return vol_modify(h, NULL, NULL, NULL, len, off, NULL);
	/*
	 * Partial head and tail blocks become zeros, whole blocks one punched
	 * range; all in one txg, so a crash keeps the trim whole or not at all.
	 */
	int64_t dd = 0;
	txg_throttle(p);
	uint64_t t = txg_hold(p, &err);
	if (err != 0)
		return err;
	if (off < b0 * v->bs)
		err = write_blocks(v, t, NULL, b0 * v->bs - off, off, &dd);
	if (err == 0 && off + len > b1 * v->bs)
		err = write_blocks(v, t, NULL, off + len - b1 * v->bs, b1 * v->bs, &dd);
	if (err != 0) {
		txg_dirty_add(p, dd, 1);
		txg_rele(p, t);
		return err;
	}
	pthread_mutex_lock(&v->lock);
	int i = t & 1;
	map_claim(v, t);
	if (v->nfr[i] == v->capfr[i]) {
		v->capfr[i] = v->capfr[i] ? v->capfr[i] * 2 : 8;
		v->fr[i] = xrealloc(v->fr[i], v->capfr[i] * sizeof(vrange));
	}
	v->fr[i][v->nfr[i]++] = (vrange){ b0, b1 };
	size_t n;
	uint64_t *keys = htab_sorted_keys(&v->dirty[i], &n);
	for (size_t k = 0; k < n; k++) {
		if (keys[k] < b0 || keys[k] >= b1)
			continue;
		kh_forget(v, i, keys[k]); /* invariant 7: its buffer is freed */
		void *d = htab_del(&v->dirty[i], keys[k]);
		if (d != VOL_HOLE) {
			bufpool_put(d, v->bs);
			v->dbytes[i] -= v->bs;
			dd -= v->bs;
		}
	}
	free(keys);
	v->gen++;
	pthread_mutex_unlock(&v->lock);
	txg_dirty_add(p, dd, 1);
	txg_rele(p, t);
	if (repl_of(v) == NULL) /* nor is a replica volume's trim logged */
		ilog_append(v, LR_ZERO, off, len, t);
	return 0;
}

/* A receive's writes: never synchronous, whatever the sync property (send.c). */
int
vol_recv_adopt(ce_vol *h, void *const *blocks, const uint8_t (*hashes)[16], size_t n, uint64_t off)
{
	volume *v = h->v;
	size_t taken = 0;
	VERIFY(off % v->bs == 0 && n <= SIZE_MAX / v->bs); /* send.c checked the record's range */
	int err = vol_modify(h, NULL, blocks, hashes, n * v->bs, off, &taken);
	for (size_t k = taken; k < n; k++) /* every buffer is the engine's now */
		bufpool_put(blocks[k], v->bs);
	return err;
}

int
vol_recv_trim(ce_vol *h, uint64_t off, uint64_t len)
{
	return vol_trim(h, off, len);
}

int
ce_vol_trim(ce_vol *h, uint64_t off, uint64_t len)
{
	return sync_always(h->v, vol_trim(h, off, len));
}

int
ce_vol_write_zeroes(ce_vol *h, uint64_t off, uint64_t len)
{
	return ce_vol_trim(h, off, len);
}

/* The intent log reads what a range holds now (ilog_ops.get_data). */
static int
vol_read_current(volume *v, void *buf, uint64_t off, uint64_t len)
{
	ce_vol h = { .v = v, .clear_gen = atomic_load(&v->pool->clear_gen) };
	return ce_vol_read(&h, buf, len, off);
}

/* Replay one log record (p->ilog.replaying is set: nothing is logged again). */
static int
vol_apply_log(volume *v, int type, const void *data, uint64_t off, uint64_t len)
{
	ce_vol h = { .v = v, .clear_gen = atomic_load(&v->pool->clear_gen) };
	if (type == LR_WRITE)
		return vol_modify(&h, data, NULL, NULL, len, off, NULL);
	return vol_trim(&h, off, len);
}

/* The live dataset a log record names (replay at import: few calls, a scan). */
static volume *
vol_find_guid(ce_pool *p, uint64_t guid)
{
	for (size_t i = 0; i < ds_count(p); i++)
		if (ds_at(p, i)->guid == guid && ds_at(p, i)->destroy_txg == 0)
			return ds_at(p, i);
	return NULL;
}

/* Registered with the intent log at pool open (pool.c): it reaches volumes only through these. */
const ilog_ops vol_ilog_ops = {
	.get_data = vol_read_current,
	.find = vol_find_guid,
	.replay = vol_apply_log,
};

/*
 * Read-ahead (docs/design-vio.md §8.1). A handle read sequentially (two
 * reads in a row, each starting where the previous ended, give or take
 * a window of reordering) gets the blocks of the next window
 * (ce_pool_opts.readahead_bytes) that are neither dirty nor cached sent
 * as one aread batch that only fills the cache, so the scattered blocks
 * of an aged volume are read with a deep queue while the reader works.
 *
 * Read-ahead invariants:
 *   a. It never hands out data: the reader reads as before and finds
 *      the blocks in the cache (verified: aread.c invariant 7) or reads
 *      them itself; a damaged block is never cached, so its reader gets
 *      -EIO from its own read.
 *   b. It never reads freed space: the window's pointers are looked up
 *      and the batch submitted under free_lock held for reading, so the
 *      batch counts in aread's inflight before a commit can free them
 *      (aread.c invariant 3; aread_drain).
 *   c. At most RA_INFLIGHT (2) batches per handle are in flight
 *      (ra_busy), each of at most one window, so the next window is read
 *      while the reader consumes the one before: memory in flight is
 *      bounded by two windows, and once
 *      done by the cache's budget. ce_vol_close waits for it (the
 *      callback names the handle), so a handle is never closed from a
 *      read callback (the completion thread would wait for itself).
 *   d. A read that is not sequential resets the stream: nothing more is
 *      sent until two sequential reads again (a batch already sent is
 *      not cancelled; it is at most one window).
 *   e. The reader never waits for it: free_lock is only tried; the tree
 *      lookup is cache-only unless the caller is a synchronous read
 *      (which would load those indirect blocks itself a moment later).
 *   f. An asynchronous reader's window whose lookup misses level-1
 *      indirect blocks (a cold tree) sends the blocks before the first
 *      gap, and the indirect blocks it misses (up to 8) in the same
 *      batch; the rest of the window is left for a later read, which
 *      finds those indirect blocks cached: a sequential reader over a
 *      cold tree still gets read-ahead, however fast it moves.
 */
static void
ra_done(void *arg, int err)
{
	ce_vol *h = arg;
	(void)err; /* counted by aread (readahead_failed); the reader finds the block uncached */
	pthread_mutex_lock(&h->ra_lock);
	VERIFY(h->ra_busy > 0);
	h->ra_busy--;
	pthread_cond_broadcast(&h->ra_cv);
	pthread_mutex_unlock(&h->ra_lock); /* invariant c: h is not touched after this */
}

/*
 * Send [start, stop) (block aligned) as a read-ahead batch: 1 if sent
 * (ra_done will run); 2 if only the window's first *covered_out blocks
 * were, with the indirect blocks the rest needs (ra_done will run; the
 * rest is for a later read); 0 if nothing.
 */
static int
ra_send(ce_vol *h, uint64_t start, uint64_t stop, int can_block, uint64_t *covered_out)
{
	volume *v = h->v;
	ce_pool *p = v->pool;
	uint64_t first = start / v->bs, nblk = (stop - start) / v->bs;
	if (nblk == 0 || pthread_rwlock_tryrdlock(&p->free_lock) != 0)
		return 0;
	uint64_t *tblk = xmalloc(nblk * sizeof(uint64_t));
	bp_phys *lbp = xmalloc(nblk * sizeof(bp_phys));
	size_t ntree = 0;
	cowtree ts;
	pthread_mutex_lock(&v->lock);
	for (uint64_t k = 0; k < nblk; k++) {
		void *d;
		if (!dirty_lookup(v, UINT64_MAX, first + k, &d))
			tblk[ntree++] = first + k;
	}
	ts = v->tree;
	pthread_mutex_unlock(&v->lock);
	int err = 0, rc = 0;
	uint64_t covered = nblk; /* blocks of the window before the first level-1 block not cached */
	bp_phys miss[8];
	size_t nmiss = 0;
	/* per level-1 indirect block, so that the ones not cached are named (invariant f) */
	for (uint64_t k = 0; ntree > 0 && k < nblk && err == 0;) {
		uint64_t span = MIN(nblk - k, CE_IND_PTRS - (first + k) % CE_IND_PTRS);
		blk_nowait_begin();
		int lerr = cowtree_lookup_range(p, &ts, first + k, span, lbp + k);
		int missed = lerr == -EWOULDBLOCK && nmiss < ARRAY_SIZE(miss) && blk_nowait_miss(&miss[nmiss]);
		blk_nowait_end();
		if (lerr == -EWOULDBLOCK && can_block) {
			lerr = cowtree_lookup_range(p, &ts, first + k, span, lbp + k);
		} else if (lerr == -EWOULDBLOCK) {
			if (missed && (nmiss == 0 || miss[nmiss].bp_offset != miss[nmiss - 1].bp_offset ||
			    miss[nmiss].bp_vdev != miss[nmiss - 1].bp_vdev))
				nmiss++;
			covered = MIN(covered, k);
			lerr = 0;
		}
		err = lerr;
		k += span;
	}
	if (ntree > 0 && err == 0 && (covered > 0 || nmiss > 0)) {
		/* the blocks before the first gap, and the indirect blocks a later read's window needs */
		aread_batch *b = aread_batch_new(p, ra_done, h);
		aread_batch_prefetch(b);
		for (size_t k = 0; k < ntree && tblk[k] - first < covered; k++) {
			const bp_phys *bp = &lbp[tblk[k] - first];
			if (bp->bp_lsize == v->bs)
				aread_add_prefetch(b, bp);
		}
		for (size_t k = 0; k < nmiss; k++)
			aread_add_prefetch(b, &miss[k]);
		if (aread_submit(b) == 1) /* invariant b: before free_lock is let go */
			rc = covered == nblk ? 1 : 2;
	}
	if (covered_out != NULL)
		*covered_out = covered;
	pthread_rwlock_unlock(&p->free_lock);
	free(tblk);
	free(lbp);
	err_clear(); /* a failed lookup is the reader's to report, not read-ahead's */
	return rc;
}

/* A read of [off, off+len) is starting: follow the stream, send the next window when due. */
static void
ra_note(ce_vol *h, uint64_t off, uint64_t len, int can_block)
{
	volume *v = h->v;
	ce_pool *p = v->pool;
	uint64_t win = p->opts.readahead_bytes / v->bs * v->bs;
	if (win == 0 || len == 0 || !aread_ready(p))
		return;
	pthread_mutex_lock(&h->ra_lock);
	int seq = off <= h->ra_next && off + win >= h->ra_next;
	uint64_t end = off + len;
	if (!seq) {
		h->ra_streak = 0; /* invariant d */
		h->ra_end = 0;
		h->ra_next = end;
		pthread_mutex_unlock(&h->ra_lock);
		return;
	}
	h->ra_next = MAX(h->ra_next, end);
	h->ra_streak++;
	uint64_t start = MAX(h->ra_end, (end + v->bs - 1) / v->bs * v->bs);
	uint64_t stop = MIN(end + win, v->size / v->bs * v->bs);
	/* send a window when less than half of one is left ahead of the reader (invariant c: RA_INFLIGHT at most) */
	if (h->ra_streak < 2 || h->ra_busy >= RA_INFLIGHT || h->ra_end >= end + win / 2 || start >= stop) {
		pthread_mutex_unlock(&h->ra_lock);
		return;
	}
	h->ra_busy++;
	h->ra_end = stop;
	pthread_mutex_unlock(&h->ra_lock);
	uint64_t covered = 0;
	int sent = ra_send(h, start, stop, can_block, &covered);
	if (sent == 2) {
		pthread_mutex_lock(&h->ra_lock);
		if (h->ra_end == stop)
			h->ra_end = start + covered * v->bs; /* invariant f: the rest is a later read's (ra_done drops ra_busy) */
		pthread_mutex_unlock(&h->ra_lock);
	} else if (!sent) {
		pthread_mutex_lock(&h->ra_lock);
		if (h->ra_end == stop)
			h->ra_end = start; /* nothing sent (or nothing needed): the next read tries again */
		h->ra_busy--;
		pthread_cond_broadcast(&h->ra_cv);
		pthread_mutex_unlock(&h->ra_lock);
	}
}

/* ce_vol_read; fill: every block read from a device fills the cache (ce_vol_prefetch). */
static int
vol_read(ce_vol *h, void *buf, size_t len, uint64_t off, int fill)
{
	volume *v = h->v;
	ce_pool *p = v->pool;
	uint8_t *dst = buf;
	int err;

	err_clear();
	if ((err = check_range(v, off, len)) != 0)
		return err;
	if (!fill)
		ra_note(h, off, len, 1); /* a prefetch names its range itself */
	bp_phys *bps = xmalloc(READ_BATCH * sizeof(bp_phys));
	bp_phys *lbp = xmalloc(READ_BATCH * sizeof(bp_phys));
	uint8_t **dsts = xmalloc(READ_BATCH * sizeof(uint8_t *));
	uint64_t *tblk = xmalloc(READ_BATCH * sizeof(uint64_t));
	/* Only the first and the last block of a batch can be partial. */
	uint8_t *tmp[2] = { bufpool_get(v->bs), bufpool_get(v->bs) };
	while (len > 0 && err == 0) {
		uint64_t first = off / v->bs;
		uint64_t last = (off + len - 1) / v->bs;
		uint64_t nblk = MIN(last - first + 1, (uint64_t)READ_BATCH);
		uint64_t batch_len = MIN((uint64_t)len, nblk * v->bs - off % v->bs);
		size_t ntree = 0;
		cowtree ts;

		pthread_rwlock_rdlock(&p->free_lock);
		pthread_mutex_lock(&v->lock);
		for (uint64_t k = 0; k < nblk; k++) {
			uint64_t blkid = first + k;
			uint64_t bstart = blkid * v->bs;
			uint64_t s = MAX(bstart, off), e = MIN(bstart + v->bs, off + batch_len);
			void *d;
			if (dirty_lookup(v, UINT64_MAX, blkid, &d)) {
				if (d == VOL_HOLE)
					memset(dst + (s - off), 0, e - s);
				else
					memcpy(dst + (s - off), (uint8_t *)d + (s - bstart), e - s);
			} else {
				tblk[ntree++] = blkid;
			}
		}
		ts = v->tree;
		pthread_mutex_unlock(&v->lock);

		size_t nread = 0;
		/* Copy-outs owed from the scratch blocks (first and last block may be partial). */
		struct { int used; size_t to, from, n; } part[2] = { { 0, 0, 0, 0 }, { 0, 0, 0, 0 } };
		/* Leaf pointers for the whole batch, one indirect block per 256. */
		if (ntree > 0)
			err = cowtree_lookup_range(p, &ts, first, nblk, lbp);
		for (size_t k = 0; k < ntree && err == 0; k++) {
			uint64_t blkid = tblk[k], bstart = blkid * v->bs;
			uint64_t s = MAX(bstart, off), e = MIN(bstart + v->bs, off + batch_len);
			bp_phys bp = lbp[blkid - first];
			if (bp_is_hole(&bp)) {
				memset(dst + (s - off), 0, e - s);
				continue;
			}
			if (bp.bp_lsize != v->bs) {
				pool_cksum_error(p);
				err = -EIO;
				break;
			}
			bps[nread] = bp;
			if (s == bstart && e == bstart + v->bs) {
				dsts[nread] = dst + (s - off);
			} else {
				int slot = blkid != first;
				dsts[nread] = tmp[slot];
				part[slot].used = 1;
				part[slot].to = s - off;
				part[slot].from = s - bstart;
				part[slot].n = e - s;
			}
			nread++;
		}
		if (err == 0 && nread > 0)
			err = blk_read_many_fill(p, bps, dsts, nread, fill);
		pthread_rwlock_unlock(&p->free_lock);
		if (err == 0) {
			for (int slot = 0; slot < 2; slot++)
				if (part[slot].used)
					memcpy(dst + part[slot].to, tmp[slot] + part[slot].from, part[slot].n);
		} else {
			err = err_set(err, "%s: read at %" PRIu64 " failed: %s", v->name, off,
			    err == -EIO ? "checksum or IO error" : strerror(-err));
		}
		dst += batch_len;
		off += batch_len;
		len -= batch_len;
	}
	free(bps);
	free(lbp);
	free(dsts);
	free(tblk);
	bufpool_put(tmp[0], v->bs);
	bufpool_put(tmp[1], v->bs);
	return err;
}

int
ce_vol_read(ce_vol *h, void *buf, size_t len, uint64_t off)
{
	return vol_read(h, buf, len, off, 0);
}

#define PREFETCH_CHUNK (1u << 20)

int
ce_vol_prefetch(ce_vol *h, uint64_t off, uint64_t len)
{
	int err = check_range(h->v, off, len);
	if (err != 0)
		return err;
	/* into scratch memory: the blocks stay in the cache */
	uint8_t *tmp = xmalloc_aligned(PREFETCH_CHUNK);
	for (uint64_t done = 0; done < len && err == 0; done += PREFETCH_CHUNK)
		err = vol_read(h, tmp, (size_t)MIN((uint64_t)PREFETCH_CHUNK, len - done), off + done, 1);
	free(tmp);
	return err;
}

/*
 * Asynchronous requests (docs/design-vio.md §8.2): ce_vol_read_async and
 * ce_vol_prefetch_async. A request (areq) is the engine's from a start
 * that returns 0 until its callback runs. It resolves its blocks as
 * ce_vol_read does (invariant 1), in stages that never wait: free_lock is
 * only tried, and the tree lookup is cache-only. A stage goes over the
 * window's chunks (blocks under one level-1 indirect block) not yet
 * resolved; a chunk whose lookup finds an indirect block uncached asks
 * for that block in an AREAD_TREE batch and stays for the next stage;
 * the others' blocks go into one data batch (a read) or AREAD_FILL batch
 * (a prefetch). When every batch of the stage is done the next stage
 * runs, on the completion thread, until the window and then the range
 * are resolved.
 *
 * Asynchronous request invariants:
 *   A. q->pending counts the request's batches in flight, plus one held
 *      by whoever runs a stage; only the one that brings it to 0 touches
 *      the request's fields next (areq_drive). So exactly one thread at
 *      a time drives a request, and cb runs exactly once, after every
 *      device read of the request finished (none writes into buf later).
 *   B. Between stages the request holds no block pointer: each stage
 *      resolves its chunks afresh under free_lock, so aread.c invariant 3
 *      (freed space is not reused under a read) covers every batch.
 *   C. A stage on the completion thread never waits: free_lock held or
 *      wanted by a writer (a commit draining reads), or AREQ_STAGES
 *      stages in one window (the cache evicts what a stage fetched),
 *      completes the request with -EAGAIN: nothing of buf is data, the
 *      caller makes the synchronous read. In the starting call the same
 *      is returned as -EAGAIN, cb not called.
 *   D. A handle counts its requests (ar_reqs, ra_lock) from start to the
 *      moment before cb; ce_vol_close waits for 0, so no stage runs on a
 *      closed handle. cb may close the handle (it is not counted then).
 *   E. The first error stays (q->err); no stage starts after it, and cb
 *      gets it once the batches in flight are done.
 */
#define AREQ_STAGES 16u               /* stages per window before the synchronous path takes over */
#define AREQ_FILL_WINDOW (8ull << 20) /* a prefetch resolves this many bytes at a time */

typedef struct areq {
	ce_vol *h;
	uint8_t *buf;           /* the caller's; NULL: a prefetch (fills the cache only) */
	uint64_t off, end;      /* the request's bytes */
	ce_read_cb cb;
	void *arg;
	uint64_t wfirst, wlast; /* the window's blocks [wfirst, wlast] */
	uint64_t wend;          /* the window's end (bytes) */
	size_t nchunks, capchunks;
	uint8_t *todo;          /* per chunk of the window: 1 = not resolved yet */
	uint8_t todo_s[4];
	unsigned stages;        /* in this window */
	int sent;               /* a batch went to the ring (else the request completed inline) */
	_Atomic int pending;    /* invariant A */
	_Atomic int err;        /* invariant E */
} areq;

static void
areq_window(areq *q, uint64_t from)
{
	uint64_t bs = q->h->v->bs;
	q->wend = q->buf != NULL ? q->end : MIN(q->end, from / bs * bs + AREQ_FILL_WINDOW);
	q->wfirst = from / bs;
	q->wlast = (q->wend - 1) / bs;
	q->nchunks = (size_t)(q->wlast / CE_IND_PTRS - q->wfirst / CE_IND_PTRS + 1);
	if (q->nchunks > q->capchunks) {
		if (q->todo != q->todo_s)
			free(q->todo);
		q->todo = xmalloc(q->nchunks);
		q->capchunks = q->nchunks;
	}
	memset(q->todo, 1, q->nchunks);
	q->stages = 0;
}

static void
areq_fail(areq *q, int err)
{
	int zero = 0;
	atomic_compare_exchange_strong(&q->err, &zero, err);
}

/* The request leaves its handle (invariant D): after this, neither q nor h is touched. */
static void
areq_free(areq *q)
{
	ce_vol *h = q->h;
	if (q->todo != q->todo_s)
		free(q->todo);
	free(q);
	pthread_mutex_lock(&h->ra_lock);
	VERIFY(h->ar_reqs > 0);
	if (--h->ar_reqs == 0)
		pthread_cond_broadcast(&h->ra_cv);
	pthread_mutex_unlock(&h->ra_lock);
}

static void
areq_finish(areq *q, int err)
{
	ce_pool *p = q->h->v->pool;
	ce_read_cb cb = q->cb;
	void *arg = q->arg;
	if (err == -EAGAIN)
		aread_note_fallback(p);
	else if (!q->sent)
		aread_note_inline(p);
	areq_free(q);
	cb(arg, err);
}

/* Submit one of a stage's batches; it counts in pending before the ring can finish it (invariant A). */
static void
areq_send(areq *q, aread_batch *b)
{
	atomic_fetch_add(&q->pending, 1);
	int rc = aread_submit(b);
	if (rc == 1) {
		q->sent = 1;
		return;
	}
	atomic_fetch_sub(&q->pending, 1); /* nothing needed a device: b is freed, fn will not run */
	if (rc < 0)
		areq_fail(q, rc);
}

static void areq_batch_done(void *arg, int err);

/* One stage (invariants B, C): -EAGAIN when free_lock cannot be had now (nothing done), else 0. */
static int
areq_stage(areq *q)
{
	volume *v = q->h->v;
	ce_pool *p = v->pool;
	uint64_t bs = v->bs;
	if (pthread_rwlock_tryrdlock(&p->free_lock) != 0)
		return -EAGAIN;
	aread_batch *data = NULL, *tree = NULL;
	bp_phys miss, last_miss = { 0 };
	int have_miss = 0, err = 0;
	/* small reads (the common case) resolve on the stack */
	uint64_t tblk_s[16];
	bp_phys lbp_s[16];
	int small = q->wlast - q->wfirst < 16;
	uint64_t *tblk = small ? tblk_s : xmalloc(CE_IND_PTRS * sizeof(uint64_t));
	bp_phys *lbp = small ? lbp_s : xmalloc(CE_IND_PTRS * sizeof(bp_phys));
	for (size_t c = 0; c < q->nchunks && err == 0; c++) {
		if (!q->todo[c])
			continue;
		uint64_t base = (q->wfirst / CE_IND_PTRS + c) * CE_IND_PTRS;
		uint64_t first = MAX(base, q->wfirst), last = MIN(base + CE_IND_PTRS - 1, q->wlast);
		uint64_t nblk = last - first + 1, lo = MAX(q->off, first * bs), hi = MIN(q->wend, (last + 1) * bs);
		size_t ntree = 0;
		cowtree ts;
		pthread_mutex_lock(&v->lock);
		for (uint64_t k = 0; k < nblk; k++) {
			uint64_t blkid = first + k, bstart = blkid * bs;
			uint64_t s = MAX(bstart, lo), e = MIN(bstart + bs, hi);
			void *d;
			if (!dirty_lookup(v, UINT64_MAX, blkid, &d))
				tblk[ntree++] = blkid;
			else if (q->buf == NULL)
				; /* a prefetch: dirty blocks are in memory already */
			else if (d == VOL_HOLE)
				memset(q->buf + (s - q->off), 0, e - s);
			else
				memcpy(q->buf + (s - q->off), (uint8_t *)d + (s - bstart), e - s);
		}
		ts = v->tree;
		pthread_mutex_unlock(&v->lock);
		if (ntree == 0) {
			q->todo[c] = 0;
			continue;
		}
		blk_nowait_begin();
		int lerr = cowtree_lookup_range(p, &ts, first, nblk, lbp);
		int missed = lerr == -EWOULDBLOCK && blk_nowait_miss(&miss);
		blk_nowait_end();
		if (missed) {
			/* an indirect block on the way is not cached: read it; the chunk waits for the next stage */
			if (!have_miss || miss.bp_vdev != last_miss.bp_vdev || miss.bp_offset != last_miss.bp_offset) {
				if (tree == NULL) {
					tree = aread_batch_new(p, areq_batch_done, q);
					aread_batch_fill(tree, AREAD_TREE);
				}
				aread_add_prefetch(tree, &miss);
				last_miss = miss;
				have_miss = 1;
			}
			continue;
		}
		if (lerr != 0) {
			err = lerr == -EWOULDBLOCK ? -EIO : lerr; /* (a miss is always named) */
			break;
		}
		for (size_t k = 0; k < ntree; k++) {
			uint64_t blkid = tblk[k], bstart = blkid * bs;
			uint64_t s = MAX(bstart, lo), e = MIN(bstart + bs, hi);
			const bp_phys *bp = &lbp[blkid - first];
			if (!bp_is_hole(bp) && bp->bp_lsize != bs) {
				pool_cksum_error(p);
				err = -EIO;
				break;
			}
			if (q->buf == NULL && bp_is_hole(bp))
				continue;
			if (data == NULL) {
				data = aread_batch_new(p, areq_batch_done, q);
				if (q->buf == NULL)
					aread_batch_fill(data, AREAD_FILL);
			}
			if (q->buf != NULL)
				aread_add(data, bp, q->buf + (s - q->off), (uint32_t)(s - bstart), (uint32_t)(e - s));
			else
				aread_add_prefetch(data, bp);
		}
		q->todo[c] = 0;
	}
	if (err != 0) {
		/* nothing of these was sent (invariant E: the request fails) */
		if (data != NULL)
			aread_batch_drop(data);
		if (tree != NULL)
			aread_batch_drop(tree);
		areq_fail(q, err);
	} else {
		if (data != NULL)
			areq_send(q, data);
		if (tree != NULL)
			areq_send(q, tree);
	}
	pthread_rwlock_unlock(&p->free_lock); /* after the batches count in aread's inflight (invariant B) */
	if (!small) {
		free(tblk);
		free(lbp);
	}
	return 0;
}

/*
 * Run stages until batches are in flight (their completion drives on) or
 * the request is complete. starting: inside ce_vol_*_async, where
 * -EAGAIN is returned instead of given to cb (the caller frees q).
 */
static int
areq_drive(areq *q, int starting)
{
	for (;;) {
		int err = atomic_load(&q->err);
		if (err == 0 && memchr(q->todo, 1, q->nchunks) == NULL) {
			if (q->wend >= q->end) {
				areq_finish(q, 0);
				return 0;
			}
			areq_window(q, q->wend); /* a prefetch's next window */
		}
		if (err == 0 && q->stages++ == AREQ_STAGES)
			err = -EAGAIN; /* invariant C: what a stage fetches is evicted before the next */
		if (err == 0) {
			atomic_store(&q->pending, 1);
			err = areq_stage(q);
		}
		if (err == -EAGAIN && starting)
			return -EAGAIN;
		if (err != 0) {
			areq_finish(q, err);
			return 0;
		}
		if (atomic_fetch_sub(&q->pending, 1) != 1)
			return 0; /* invariant A: the last batch to finish drives on */
	}
}

static void
areq_batch_done(void *arg, int err)
{
	areq *q = arg;
	if (err != 0)
		areq_fail(q, err);
	if (atomic_fetch_sub(&q->pending, 1) == 1)
		(void)areq_drive(q, 0);
}

static int
areq_start(ce_vol *h, uint8_t *buf, uint64_t off, uint64_t len, ce_read_cb cb, void *arg)
{
	areq *q = xcalloc(1, sizeof(*q));
	q->h = h;
	q->buf = buf;
	q->off = off;
	q->end = off + len;
	q->cb = cb;
	q->arg = arg;
	q->todo = q->todo_s;
	q->capchunks = sizeof(q->todo_s);
	pthread_mutex_lock(&h->ra_lock);
	h->ar_reqs++; /* invariant D */
	pthread_mutex_unlock(&h->ra_lock);
	areq_window(q, off);
	int rc = areq_drive(q, 1);
	if (rc == -EAGAIN) {
		aread_note_fallback(h->v->pool);
		areq_free(q); /* cb was not called */
	}
	return rc;
}

/*
 * The asynchronous read (docs/design-vio.md §8): the blocks are resolved
 * as ce_vol_read resolves them (invariant 1), without waiting, and the
 * blocks left are read by aread.c. -EAGAIN: take the synchronous path.
 */
/* A read into buf, or a prefetch (buf NULL); only a read is noted for read-ahead (ra). */
static int
areq_begin(ce_vol *h, void *buf, uint64_t off, uint64_t len, int ra, ce_read_cb cb, void *arg)
{
	volume *v = h->v;
	ce_pool *p = v->pool;
	int err;

	err_clear();
	if ((err = check_range(v, off, len)) != 0)
		return err;
	if (!aread_ready(p))
		return -EAGAIN;
	if (ra)
		ra_note(h, off, len, 0);
	if (len == 0) {
		aread_note_inline(p);
		cb(arg, 0);
		return 0;
	}
	return areq_start(h, buf, off, len, cb, arg);
}

int
ce_vol_read_async(ce_vol *h, void *buf, size_t len, uint64_t off, ce_read_cb cb, void *arg)
{
	return areq_begin(h, buf, off, len, 1, cb, arg);
}

int
ce_vol_prefetch_async(ce_vol *h, uint64_t off, uint64_t len, ce_read_cb cb, void *arg)
{
	return areq_begin(h, NULL, off, len, 0, cb, arg);
}

int
ce_vol_map(ce_vol *h, uint64_t off, uint64_t len, ce_extent *ext, size_t max, size_t *n)
{
	volume *v = h->v;
	ce_pool *p = v->pool;
	int err;
	size_t ne = 0;

	err_clear();
	if ((err = check_range(v, off, len)) != 0)
		return err;
	if (max == 0 || len == 0) {
		*n = 0;
		return 0;
	}
	uint8_t *hole = xmalloc(READ_BATCH);
	bp_phys *lbp = xmalloc(READ_BATCH * sizeof(bp_phys));
	uint64_t end = off + len;
	while (off < end && err == 0) {
		uint64_t first = off / v->bs;
		uint64_t nblk = MIN((end - 1) / v->bs - first + 1, (uint64_t)READ_BATCH);
		cowtree ts;
		pthread_rwlock_rdlock(&p->free_lock);
		pthread_mutex_lock(&v->lock);
		for (uint64_t k = 0; k < nblk; k++) {
			void *d;
			hole[k] = dirty_lookup(v, UINT64_MAX, first + k, &d) ? (d == VOL_HOLE) : 2;
		}
		ts = v->tree;
		pthread_mutex_unlock(&v->lock);
		err = cowtree_lookup_range(p, &ts, first, nblk, lbp);
		pthread_rwlock_unlock(&p->free_lock);
		for (uint64_t k = 0; k < nblk && err == 0; k++) {
			unsigned flags = (hole[k] == 2 ? bp_is_hole(&lbp[k]) : hole[k]) ? CE_EXTENT_HOLE : 0;
			uint64_t s = MAX((first + k) * v->bs, off), e = MIN((first + k + 1) * v->bs, end);
			if (ne > 0 && ext[ne - 1].flags == flags && ext[ne - 1].offset + ext[ne - 1].length == s) {
				ext[ne - 1].length += e - s;
			} else if (ne == max) {
				off = end; /* out of room: report what is covered */
				break;
			} else {
				ext[ne++] = (ce_extent){ s, e - s, flags };
			}
		}
		if (off < end)
			off = MIN((first + nblk) * v->bs, end);
	}
	free(hole);
	free(lbp);
	if (err != 0)
		return err_set(err, "%s: cannot map allocation: %s", v->name, strerror(-err));
	*n = ne;
	return 0;
}

int
ce_vol_resize(ce_pool *p, const char *name, uint64_t size, unsigned flags)
{
	int err;
	volume *v = vol_mgmt_begin_head(p, name, &err);
	if (v == NULL)
		return err;
	if (v->receiving && !(flags & VOL_RESIZE_RECV)) {
		vol_mgmt_abort(p);
		return err_set(-EBUSY, "volume %s/%s is a partial receive", p->name, name);
	}
	if (size == 0 || size % v->bs != 0 || size / v->bs > cowtree_capacity(7)) {
		vol_mgmt_abort(p);
		return err_set(-EINVAL, "bad volume size %" PRIu64 " (a non-zero multiple of the "
		    "block size %u)", size, v->bs);
	}
	if (size < v->size && !(flags & CE_RESIZE_SHRINK)) {
		vol_mgmt_abort(p);
		return err_set(-EINVAL, "shrinking %s/%s would discard data past the new size (cask vol resize --shrink; CE_RESIZE_SHRINK)",
		    p->name, name);
	}
	/* Lock order: v->lock before pool->lock. */
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_lock(&v->lock);
	pthread_mutex_lock(&p->lock);
	uint64_t t = txg_open(p);
	vol_mgmt_dirty(p, v);
	uint64_t old = v->size / v->bs, nb = size / v->bs;
	int64_t dd = 0;
	if (nb < old) {
		int i = t & 1;
		map_claim(v, t);
		if (v->nfr[i] == v->capfr[i]) {
			v->capfr[i] = v->capfr[i] ? v->capfr[i] * 2 : 8;
			v->fr[i] = xrealloc(v->fr[i], v->capfr[i] * sizeof(vrange));
		}
		v->fr[i][v->nfr[i]++] = (vrange){ nb, UINT64_MAX };
		size_t n;
		uint64_t *keys = htab_sorted_keys(&v->dirty[i], &n);
		for (size_t k = 0; k < n; k++) {
			if (keys[k] < nb)
				continue;
			kh_forget(v, i, keys[k]); /* invariant 7: its buffer is freed */
			void *d = htab_del(&v->dirty[i], keys[k]);
			if (d != VOL_HOLE) {
				bufpool_put(d, v->bs);
				v->dbytes[i] -= v->bs;
				dd -= v->bs;
			}
		}
		free(keys);
	}
	v->size = size;
	v->want_levels = MAX(v->want_levels, cowtree_levels_for(nb));
	v->gen++;
	pthread_mutex_unlock(&v->lock);
	err = vol_mgmt_commit(p);
	txg_dirty_add(p, dd, 1);
	return err;
}

int
ce_vol_open(ce_pool *p, const char *name, ce_vol **out)
{
	return vol_open_any(p, name, 0, out);
}

/* receiver: the receive itself opens its partial volume (send.c) */
int
vol_open_any(ce_pool *p, const char *name, int receiver, ce_vol **out)
{
	err_clear();
	pthread_mutex_lock(&p->config_lock);
	pthread_mutex_lock(&p->lock);
	volume *v = vol_find(p, name);
	if (v != NULL && v->taking)
		v = NULL; /* a snapshot being taken exists once its txg commits */
	if (v != NULL && v->rolling_back) {
		pthread_mutex_unlock(&p->lock);
		pthread_mutex_unlock(&p->config_lock);
		return err_set(-EBUSY, "volume %s/%s is being rolled back", p->name, name);
	}
	if (v != NULL && v->receiving && !receiver) {
		pthread_mutex_unlock(&p->lock);
		pthread_mutex_unlock(&p->config_lock);
		return err_set(-EBUSY, "volume %s/%s is a partial receive: resume it (cask send -t with its "
		    "receive_resume_token) or abandon it (cask recv -A)", p->name, name);
	}
	if (v != NULL)
		v->refs++;
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_unlock(&p->config_lock);
	if (v == NULL)
		return err_set(-ENOENT, "volume %s/%s does not exist", p->name, name);
	ce_vol *h = xmalloc(sizeof(*h));
	h->v = v;
	h->repl = 0;
	h->clear_gen = atomic_load(&p->clear_gen);
	pthread_mutex_init(&h->ra_lock, NULL);
	pthread_cond_init(&h->ra_cv, NULL);
	h->ra_next = h->ra_end = 0;
	h->ra_streak = 0;
	h->ra_busy = 0;
	h->ar_reqs = 0;
	*out = h;
	return 0;
}

void
ce_vol_close(ce_vol *h)
{
	if (h == NULL)
		return;
	ce_pool *p = h->v->pool;
	pthread_mutex_lock(&h->ra_lock);
	/* read-ahead invariant c (its callback names the handle); asynchronous request invariant D */
	while (h->ra_busy > 0 || h->ar_reqs > 0)
		pthread_cond_wait(&h->ra_cv, &h->ra_lock);
	pthread_mutex_unlock(&h->ra_lock);
	pthread_mutex_destroy(&h->ra_lock);
	pthread_cond_destroy(&h->ra_cv);
	pthread_mutex_lock(&p->lock);
	VERIFY(h->v->refs > 0);
	h->v->refs--;
	pthread_mutex_unlock(&p->lock);
	free(h);
}

int
ce_vol_readonly(const ce_vol *h)
{
	return h->v->is_snap;
}

uint64_t
ce_vol_size(const ce_vol *h)
{
	return h->v->size;
}

uint32_t
ce_vol_blocksize(const ce_vol *h)
{
	return h->v->bs;
}
