/*
 * ilog.c -- the intent log: fast, honest FLUSH and FUA.
 *
 * A txg commit writes every dirty block, the MOS, the bitmaps, the
 * uberblock and two flushes: far too much to do for every FLUSH or FUA
 * write. The intent log records what changed since the last commit
 * instead, in a ring of log blocks inside a region of the pool (format:
 * docs/on-disk-format.md section 6), and a FLUSH costs one log write and
 * one device flush.
 *
 * Every acknowledged write, trim or write-zeroes appends an in-memory
 * record (itx: volume, range, txg) in ilog_append. ilog_commit(v) turns
 * the pending itxs of v (and of every other volume with a flush waiting)
 * into log blocks, so a volume's FLUSH never pays for another volume's
 * unflushed writes: a write record carries the volume's
 * current contents of its range, read at that moment from the dirty maps
 * (so nothing is copied for writes that are never flushed, and a record
 * is never older than the write that made it). Then it writes the blocks
 * and flushes the log vdev once. One commit runs at a time; FLUSH and FUA
 * requests that arrive meanwhile wait and are all served by the next one
 * (group commit).
 *
 * Each uberblock names the oldest log block that still holds a record
 * newer than its txg (ilog_ub_fill); once it is durable the space before
 * it is reused and itxs of committed txgs are dropped (ilog_ub_durable).
 * Import replays the chain from there (ilog_replay), commits the result
 * and starts a new random epoch at offset 0, so blocks of an earlier epoch
 * are never read as part of the new chain.
 *
 * Invariants:
 *   1. A log block is written only after the previous one was flushed
 *      (commits are serialized), so an acknowledged block never sits
 *      behind a gap in the chain.
 *   2. Blocks are written only while `ready`: a durable uberblock names
 *      the current epoch. After a log IO error (or at import) the log
 *      waits for a txg commit that starts a new epoch; meanwhile FLUSH
 *      falls back to a txg commit.
 *   3. Space is reused only behind the tail of a durable uberblock.
 *   4. If a log write fails or the log is full, the waiting FLUSH is
 *      served by a txg commit instead, so a failure never acknowledges
 *      anything that is not durable.
 *   5. Volumes referenced by a batch in flight are not freed
 *      (volume->ilog_refs), even if their destroy commits meanwhile.
 *   6. Replay tells a chain that ends (the next block is not there: wrong
 *      identity) from one cut by damage (a block of the chain's identity,
 *      epoch and sequence that fails its checksum or is malformed; write
 *      data in place that fails its checksum). Damage is never taken for
 *      the end: it is counted as a checksum error and kept in dmg_* (pool
 *      status, caskd's log) until ce_pool_clear. Replay still stops at a
 *      damaged block (what follows is counted, not applied: the volumes
 *      stay a prefix of what was acknowledged). Damage followed by an
 *      intact block is certain (invariant 1: it had been flushed); in the
 *      last block it may also be a write a crash tore before its flush
 *      returned, which was never acknowledged, and is reported as such.
 *   7. Every volume a damaged record may belong to is marked (volume
 *      logdmg_*: the txg range and count of its records not applied,
 *      shown as its log_damaged property) until ce_pool_clear: the
 *      records of the intact blocks after the damage and the write
 *      records with bad in-place data name theirs; a damaged block's own
 *      records are attributed only if every one is well formed, of a txg
 *      the uberblock does not cover, and names a live volume; else every
 *      live volume is marked as possibly affected.
 *      The mark lives in memory: the next epoch overwrites the evidence.
 *   8. On a vdev that is a plain file the region has no holes once the
 *      log is set up (ilog_create_region, ilog_load: region_prewrite),
 *      so a FLUSH never pays for the file system allocating log space.
 */
#include "ilog.h"
#include "checksum.h"
#include "dataset.h"
#include "mos.h"
#include "pool_impl.h"
#include "txg.h"
#include "util.h"
#include "vdev.h"
#include "vol.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#define LOG_BLK_MAX (1024u * 1024u)  /* largest log block */
#define LOG_REC_MAX (128u * 1024u)   /* records split at 128 KiB boundaries */
#define LOG_PTR_MIN (32u * 1024u)    /* writes at least this long are written in place */
#define LOG_MIN_SECTORS 256u         /* 1 MiB */
#define LOG_MAX_SECTORS 32768u       /* 128 MiB */

void
ilog_set_ops(ce_pool *p, const ilog_ops *ops)
{
	p->ilog.ops = ops;
}

void
ilog_init(ce_pool *p)
{
	ilog *l = &p->ilog;
	memset(l, 0, sizeof(*l));
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->cv, NULL);
	l->head_seq = 1;
}

static void
release_exts(ce_pool *p, ilog_ext *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		alloc_log_release(&p->alloc, e[i].vdev, e[i].off, e[i].bytes);
	free(e);
}

static ilog_lblk *fifo_at(ilog *l, size_t i);

/* Drop every block of the ring (ilog->lock held), handing their data sectors back. */
static void
fifo_clear(ce_pool *p, int release)
{
	ilog *l = &p->ilog;
	for (size_t i = 0; i < l->fn; i++) {
		ilog_lblk *b = fifo_at(l, i);
		if (release)
			release_exts(p, b->ext, b->next);
		else
			free(b->ext);
		b->ext = NULL;
	}
	l->fn = l->ffirst = 0;
	l->used = 0;
}

/* An empty ring whose next block goes to offset 0 as sequence 1 (ilog->lock held). */
static void
ring_restart(ce_pool *p)
{
	ilog *l = &p->ilog;
	fifo_clear(p, 1);
	release_exts(p, l->replay_ext, l->nreplay_ext);
	l->replay_ext = NULL;
	l->nreplay_ext = 0;
	l->head_off = 0;
	l->head_seq = 1;
}

void
ilog_fini(ce_pool *p)
{
	ilog *l = &p->ilog;
	fifo_clear(p, 0);
	free(l->replay_ext);
	free(l->itx);
	free(l->fifo);
	l->itx = NULL;
	l->fifo = NULL;
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->cv);
}

/*
 * Invariant 8: the region is allocated in the vdev file before the first
 * log block is written. A vdev file is sparse (ftruncate), and the first
 * write to a hole makes the FLUSH after it commit the file system's
 * metadata (an ext4 journal transaction) as well as the log block; with
 * the region written once, a FLUSH pays only for its log write. Zeroes
 * go only into holes (vdev.c invariant 4), so this also runs at import,
 * before replay. Best effort: a failure (the host file system is full)
 * leaves the region as it was, counted in prewrite_failed.
 */
static void
region_prewrite(ce_pool *p)
{
	ilog *l = &p->ilog;
	uint64_t wrote = 0;
	if (vdev_prewrite(&p->vds[l->vdev], l->base, l->size, &wrote) != 0)
		l->prewrite_failed++;
	l->prewritten += wrote;
}

int
ilog_create_region(ce_pool *p)
{
	ilog *l = &p->ilog;
	uint64_t ns = p->vds[0].nsectors / 64;
	if (ns < LOG_MIN_SECTORS)
		ns = LOG_MIN_SECTORS;
	if (ns > LOG_MAX_SECTORS)
		ns = LOG_MAX_SECTORS;
	uint32_t vdi;
	uint64_t off;
	int err = alloc_alloc(&p->alloc, ns * CE_SECTOR, &vdi, &off);
	if (err != 0)
		return err_set(err, "pool %s: no room for an intent log of %" PRIu64 " KiB", p->name,
		    ns * CE_SECTOR / 1024);
	mos_header_phys *h = mos_hdr(p);
	if (h->mh_version < 2)
		h->mh_version = 2;
	h->mh_log_vdev = vdi;
	h->mh_log_sector = (off - VDEV_DATA_START) / CE_SECTOR;
	h->mh_log_nsectors = ns;
	mos_mark_dirty(p, 0, CE_META_BLOCK);
	l->enabled = 1;
	l->vdev = vdi;
	l->base = off;
	l->size = ns * CE_SECTOR;
	region_prewrite(p);
	return 0;
}

int
ilog_load(ce_pool *p)
{
	ilog *l = &p->ilog;
	mos_header_phys *h = mos_hdr(p);
	if (h->mh_log_nsectors == 0)
		return 0;
	if (h->mh_log_vdev >= p->nvdevs ||
	    h->mh_log_sector + h->mh_log_nsectors > p->vds[h->mh_log_vdev].nsectors ||
	    h->mh_log_nsectors > LOG_MAX_SECTORS)
		return err_set(-EIO, "pool %s: the intent log region in the MOS is impossible", p->name);
	for (uint64_t s = 0; s < h->mh_log_nsectors; s++)
		if (!alloc_test(&p->alloc, h->mh_log_vdev, h->mh_log_sector + s))
			return err_set(-EIO, "pool %s: the intent log region is not allocated", p->name);
	l->enabled = 1;
	l->vdev = h->mh_log_vdev;
	l->base = VDEV_DATA_START + h->mh_log_sector * CE_SECTOR;
	l->size = h->mh_log_nsectors * CE_SECTOR;
	if (!p->readonly)
		region_prewrite(p); /* a pool made before it was done at create, or copied sparse */
	return 0;
}

void
ilog_new_epoch(ce_pool *p, uint64_t txg)
{
	ilog *l = &p->ilog;
	pthread_mutex_lock(&l->lock);
	l->ready = 0;
	l->pending_epoch = util_random64();
	l->pending_txg = txg;
	pthread_mutex_unlock(&l->lock);
}

void
ilog_append(volume *v, int type, uint64_t off, uint64_t len, uint64_t txg)
{
	ilog *l = &v->pool->ilog;
	if (len == 0 || l->replaying || v->sync == CE_SYNC_DISABLED)
		return;
	pthread_mutex_lock(&l->lock);
	l->next_seq++;
	if (l->nitx > 0) {
		/* Sequential writes of one txg grow one record. */
		ilog_itx *last = &l->itx[l->nitx - 1];
		if (last->v == v && last->type == type && last->txg == txg &&
		    last->off + last->len == off) {
			last->len += len;
			pthread_mutex_unlock(&l->lock);
			return;
		}
	}
	if (l->nitx == l->capitx) {
		l->capitx = l->capitx ? l->capitx * 2 : 256;
		l->itx = xrealloc(l->itx, l->capitx * sizeof(ilog_itx));
	}
	l->itx[l->nitx++] = (ilog_itx){ .v = v, .txg = txg, .off = off, .len = len, .type = type };
	v->ilog_queued++;
	pthread_mutex_unlock(&l->lock);
}

/* ---- building and writing log blocks ---- */

typedef struct lbuild {
	uint8_t *buf;      /* LOG_BLK_MAX, aligned */
	uint32_t used;
	uint32_t nrecs;
	uint64_t max_txg;
	uint64_t off, seq; /* assigned when placed */
	ilog_ext *ext;     /* write-in-place data: where ... */
	uint8_t **extbuf;  /* ... and what */
	size_t next, capext;
	int ring_owns;     /* placed: the ring releases the sectors */
} lbuild;

typedef struct batchbuf {
	lbuild *b;
	size_t n, cap;
	uint64_t bytes;               /* of log blocks */
	uint64_t ptr_records, ptr_bytes;
} batchbuf;

static lbuild *
cur_block(batchbuf *bb, uint32_t need)
{
	if (bb->n > 0 && bb->b[bb->n - 1].used + need <= LOG_BLK_MAX)
		return &bb->b[bb->n - 1];
	if (bb->n == bb->cap) {
		bb->cap = bb->cap ? bb->cap * 2 : 4;
		bb->b = xrealloc(bb->b, bb->cap * sizeof(lbuild));
	}
	lbuild *lb = &bb->b[bb->n++];
	memset(lb, 0, sizeof(*lb));
	lb->buf = xmalloc_aligned(LOG_BLK_MAX);
	lb->used = LG_HDR_SIZE;
	return lb;
}

/* Free a batch; sectors of write-in-place data not handed to the ring go back. */
static void
batch_free(ce_pool *p, batchbuf *bb)
{
	for (size_t i = 0; i < bb->n; i++) {
		lbuild *lb = &bb->b[i];
		free(lb->buf);
		for (size_t k = 0; k < lb->next; k++)
			free(lb->extbuf[k]);
		free(lb->extbuf);
		if (lb->ring_owns)
			free(lb->ext);
		else
			release_exts(p, lb->ext, lb->next);
	}
	free(bb->b);
}

/* Write in place: read the range, claim sectors, point to them. 1 done, 0 use inline. */
static int
add_ptr_record(ce_pool *p, batchbuf *bb, const ilog_itx *it, uint64_t off, uint64_t len, int *err)
{
	uint64_t bytes = P2ROUNDUP(len, CE_SECTOR);
	uint32_t vdi;
	uint64_t voff;
	/* sectors first: without room the record goes inline, and the range is read once */
	if (alloc_log_claim(&p->alloc, bytes, &vdi, &voff) != 0)
		return 0;
	uint8_t *data = xmalloc_aligned(bytes);
	*err = p->ilog.ops->get_data(it->v, data, off, len);
	if (*err != 0) {
		alloc_log_release(&p->alloc, vdi, voff, bytes);
		free(data);
		return 1;
	}
	memset(data + len, 0, bytes - len);
	uint32_t need = LR_HDR_SIZE + (uint32_t)sizeof(ilog_ptr_phys);
	lbuild *lb = cur_block(bb, need);
	ilog_rec_phys r;
	memset(&r, 0, sizeof(r));
	r.lr_type = LR_WRITE_PTR;
	r.lr_datalen = sizeof(ilog_ptr_phys);
	r.lr_ds_guid = it->v->guid;
	r.lr_txg = it->txg;
	r.lr_offset = off;
	r.lr_length = len;
	ilog_ptr_phys ptr;
	memset(&ptr, 0, sizeof(ptr));
	ptr.lp_vdev = vdi;
	ptr.lp_offset = voff;
	checksum_compute(CE_CK_XXH128, data, len, ptr.lp_cksum);
	memcpy(lb->buf + lb->used, &r, sizeof(r));
	memcpy(lb->buf + lb->used + LR_HDR_SIZE, &ptr, sizeof(ptr));
	lb->used += need;
	lb->nrecs++;
	if (it->txg > lb->max_txg)
		lb->max_txg = it->txg;
	if (lb->next == lb->capext) {
		lb->capext = lb->capext ? lb->capext * 2 : 4;
		lb->ext = xrealloc(lb->ext, lb->capext * sizeof(ilog_ext));
		lb->extbuf = xrealloc(lb->extbuf, lb->capext * sizeof(uint8_t *));
	}
	lb->ext[lb->next] = (ilog_ext){ vdi, voff, bytes };
	lb->extbuf[lb->next] = data;
	lb->next++;
	bb->ptr_records++;
	bb->ptr_bytes += bytes;
	return 1;
}

/* Add one record; for a write, read the volume's current bytes into it. */
static int
add_record(batchbuf *bb, const ilog_itx *it, uint64_t off, uint64_t len)
{
	uint32_t dlen = it->type == LR_WRITE ? (uint32_t)len : 0;
	uint32_t need = LR_HDR_SIZE + (uint32_t)P2ROUNDUP(dlen, 8);
	lbuild *lb = cur_block(bb, need);
	ilog_rec_phys r;
	memset(&r, 0, sizeof(r));
	r.lr_type = (uint16_t)it->type;
	r.lr_datalen = dlen;
	r.lr_ds_guid = it->v->guid;
	r.lr_txg = it->txg;
	r.lr_offset = off;
	r.lr_length = len;
	uint8_t *at = lb->buf + lb->used;
	memcpy(at, &r, sizeof(r));
	if (dlen > 0) {
		int err = it->v->pool->ilog.ops->get_data(it->v, at + LR_HDR_SIZE, off, dlen);
		if (err != 0)
			return err;
		memset(at + LR_HDR_SIZE + dlen, 0, P2ROUNDUP(dlen, 8) - dlen);
	}
	lb->used += need;
	lb->nrecs++;
	if (it->txg > lb->max_txg)
		lb->max_txg = it->txg;
	return 0;
}

static int
build_batch(ce_pool *p, const ilog_itx *itx, size_t n, batchbuf *bb)
{
	pthread_mutex_lock(&p->lock);
	uint64_t synced = txg_synced(p);
	pthread_mutex_unlock(&p->lock);
	for (size_t i = 0; i < n; i++) {
		const ilog_itx *it = &itx[i];
		volume *v = it->v;
		if (it->txg <= synced || v->destroy_txg != 0)
			continue; /* in a committed txg already, or gone */
		uint64_t size = v->size;
		if (it->off >= size)
			continue;
		uint64_t end = MIN(it->off + it->len, size);
		if (it->type == LR_ZERO) {
			int err = add_record(bb, it, it->off, end - it->off);
			if (err != 0)
				return err;
			continue;
		}
		for (uint64_t o = it->off; o < end;) {
			uint64_t next = MIN(P2ROUNDUP(o + 1, LOG_REC_MAX), end);
			int err = 0;
			if (next - o < LOG_PTR_MIN || !add_ptr_record(p, bb, it, o, next - o, &err))
				err = add_record(bb, it, o, next - o);
			if (err != 0)
				return err;
			o = next;
		}
	}
	for (size_t i = 0; i < bb->n; i++)
		bb->bytes += P2ROUNDUP(bb->b[i].used, CE_SECTOR);
	return 0;
}

static ilog_lblk *
fifo_at(ilog *l, size_t i)
{
	return &l->fifo[(l->ffirst + i) % l->fcap];
}

static void
fifo_push(ilog *l, ilog_lblk e)
{
	ASSERT_HELD(&l->lock);
	/* invariant 1: blocks join the ring in sequence order, each after the last */
	ASSERT(l->fn == 0 || e.seq > fifo_at(l, l->fn - 1)->seq);
	if (l->fn == l->fcap) {
		size_t nc = l->fcap ? l->fcap * 2 : 64;
		ilog_lblk *nf = xmalloc(nc * sizeof(ilog_lblk));
		for (size_t i = 0; i < l->fn; i++)
			nf[i] = *fifo_at(l, i);
		free(l->fifo);
		l->fifo = nf;
		l->fcap = nc;
		l->ffirst = 0;
	}
	l->fifo[(l->ffirst + l->fn) % l->fcap] = e;
	l->fn++;
	l->used += e.bytes;
	VERIFY3U(l->used, <=, l->size); /* the ring never holds more than its region */
}

/* Where a block of `bytes` can go (ilog->lock held); -ENOSPC when the ring is full. */
static int
place(ilog *l, uint64_t head, uint64_t bytes, const ilog_lblk *first, const ilog_lblk *last,
    uint64_t *pos)
{
	if (bytes > l->size)
		return -ENOSPC;
	if (first == NULL) {
		*pos = head + bytes <= l->size ? head : 0;
		return 0;
	}
	int wrapped = last->off < first->off;
	if (!wrapped) {
		if (head + bytes <= l->size) {
			*pos = head;
			return 0;
		}
		if (bytes <= first->off) {
			*pos = 0;
			return 0;
		}
		return -ENOSPC;
	}
	if (head + bytes <= first->off) {
		*pos = head;
		return 0;
	}
	return -ENOSPC;
}

/* Assign ring positions and sequence numbers to every block, or none. */
static int
place_batch(ilog *l, batchbuf *bb)
{
	uint64_t head = l->head_off;
	const ilog_lblk *first = l->fn > 0 ? fifo_at(l, 0) : NULL;
	ilog_lblk tmp_first, tmp_last;
	const ilog_lblk *last = l->fn > 0 ? fifo_at(l, l->fn - 1) : NULL;
	for (size_t i = 0; i < bb->n; i++) {
		uint64_t bytes = P2ROUNDUP(bb->b[i].used, CE_SECTOR), pos;
		if (place(l, head, bytes, first, last, &pos) != 0)
			return -ENOSPC;
		VERIFY3U(pos + bytes, <=, l->size); /* inside the region, never over the tail */
		bb->b[i].off = pos;
		tmp_last = (ilog_lblk){ .off = pos, .bytes = bytes };
		if (first == NULL) {
			tmp_first = tmp_last;
			first = &tmp_first;
		}
		last = &tmp_last;
		head = pos + bytes;
	}
	for (size_t i = 0; i < bb->n; i++) {
		lbuild *lb = &bb->b[i];
		uint64_t bytes = P2ROUNDUP(lb->used, CE_SECTOR);
		lb->seq = l->head_seq++;
		ilog_ext *copy = NULL;
		if (lb->next > 0) {
			copy = xmalloc(lb->next * sizeof(ilog_ext));
			memcpy(copy, lb->ext, lb->next * sizeof(ilog_ext));
		}
		fifo_push(l, (ilog_lblk){ .off = lb->off, .bytes = bytes, .seq = lb->seq,
		    .max_txg = lb->max_txg, .ext = copy, .next = lb->next });
		lb->ring_owns = 1; /* the ring releases the sectors now */
		l->head_off = lb->off + bytes;
	}
	return 0;
}

static void
seal_block(ce_pool *p, uint64_t epoch, lbuild *lb)
{
	uint32_t bytes = (uint32_t)P2ROUNDUP(lb->used, CE_SECTOR);
	memset(lb->buf + lb->used, 0, bytes - lb->used);
	ilog_blk_phys h;
	memset(&h, 0, sizeof(h));
	h.lg_magic = LG_MAGIC;
	h.lg_version = LG_VERSION;
	h.lg_nsectors = bytes / CE_SECTOR;
	h.lg_pool_guid = p->guid;
	h.lg_epoch = epoch;
	h.lg_seq = lb->seq;
	h.lg_nrecs = lb->nrecs;
	h.lg_used = lb->used;
	memcpy(lb->buf, &h, sizeof(h));
	uint8_t ck[32];
	checksum_compute(CE_CK_XXH128, lb->buf, lb->used, ck);
	memcpy(lb->buf + offsetof(ilog_blk_phys, lg_cksum), ck, sizeof(ck));
}

/*
 * Write the batch as log blocks and flush. -ENOSPC: the ring has no room
 * (nothing written); -EAGAIN: the log is not usable now; other errors are
 * IO errors, after which the log waits for a new epoch.
 */
static int
write_batch(ce_pool *p, const ilog_itx *itx, size_t n)
{
	ilog *l = &p->ilog;
	batchbuf bb;
	memset(&bb, 0, sizeof(bb));
	int err = build_batch(p, itx, n, &bb);
	if (err != 0 || bb.n == 0) {
		batch_free(p, &bb);
		return err;
	}
	if (bb.bytes > l->size / 2) {
		batch_free(p, &bb); /* a txg commit serves a batch this large better */
		return -ENOSPC;
	}
	pthread_mutex_lock(&l->lock);
	uint64_t epoch = l->epoch;
	if (!l->ready)
		err = -EAGAIN;
	else
		err = place_batch(l, &bb);
	int half = l->used > l->size / 2;
	pthread_mutex_unlock(&l->lock);
	if (err != 0 || half) {
		/* Half full (or full): a txg commit moves the tail and frees the ring. */
		txg_kick(p);
	}
	if (err != 0) {
		batch_free(p, &bb);
		return err;
	}
	/* Data written in place, then the log blocks; one flush of each vdev touched. */
	uint8_t touched[CE_MAX_VDEVS] = { 0 };
	for (size_t i = 0; i < bb.n && err == 0; i++) {
		lbuild *lb = &bb.b[i];
		for (size_t k = 0; k < lb->next && err == 0; k++) {
			ilog_ext *e = &lb->ext[k];
			struct iovec iov = { lb->extbuf[k], e->bytes };
			err = vdev_writev(&p->vds[e->vdev], &iov, 1, e->off);
			touched[e->vdev] = 1;
		}
	}
	vdev *vd = &p->vds[l->vdev];
	for (size_t i = 0; i < bb.n && err == 0; i++) {
		lbuild *lb = &bb.b[i];
		seal_block(p, epoch, lb);
		struct iovec iov = { lb->buf, P2ROUNDUP(lb->used, CE_SECTOR) };
		err = vdev_writev(vd, &iov, 1, l->base + lb->off);
	}
	touched[l->vdev] = 1;
	for (unsigned v = 0; v < p->nvdevs && err == 0; v++)
		if (touched[v])
			err = vdev_flush(&p->vds[v]);
	if (err != 0) {
		pool_io_error(p, err);
		pthread_mutex_lock(&p->lock);
		uint64_t open = txg_open(p);
		pthread_mutex_unlock(&p->lock);
		ilog_new_epoch(p, open);
	} else {
		pthread_mutex_lock(&l->lock);
		l->blocks += bb.n;
		l->bytes += bb.bytes;
		l->ptr_records += bb.ptr_records;
		l->ptr_bytes += bb.ptr_bytes;
		pthread_mutex_unlock(&l->lock);
	}
	batch_free(p, &bb);
	return err;
}

static void
refs_adjust(ce_pool *p, const ilog_itx *itx, size_t n, int delta)
{
	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < n; i++)
		itx[i].v->ilog_refs += delta;
	pthread_mutex_unlock(&p->lock);
}

/* Take the itxs of every volume with a flush waiting out of the list, in order (l->lock held). */
static ilog_itx *
take_batch(ilog *l, size_t *n)
{
	ilog_itx *batch = xmalloc((l->nitx ? l->nitx : 1) * sizeof(ilog_itx));
	size_t k = 0, nb = 0;
	for (size_t i = 0; i < l->nitx; i++) {
		ilog_itx *it = &l->itx[i];
		if (it->v->ilog_waiters > 0) {
			batch[nb++] = *it;
			it->v->ilog_queued--;
			it->v->ilog_inflight++;
		} else {
			l->itx[k++] = *it;
		}
	}
	l->nitx = k;
	*n = nb;
	return batch;
}

int
ilog_commit(ce_pool *p, volume *v)
{
	ilog *l = &p->ilog;
	int err = 0;

	pthread_mutex_lock(&l->lock);
	uint64_t target = l->next_seq;
	v->ilog_waiters++;
	while (v->ilog_durable_seq < target) {
		if (v->ilog_queued == 0 && v->ilog_inflight == 0) {
			/* logged by earlier commits, or committed by txgs */
			v->ilog_durable_seq = target;
			break;
		}
		if (l->committing) {
			pthread_cond_wait(&l->cv, &l->lock);
			continue;
		}
		pthread_mutex_lock(&p->lock);
		int susp = txg_suspended(p);
		pthread_mutex_unlock(&p->lock);
		if (susp != 0) {
			err = err_set(susp, "pool %s is suspended after an IO error; nothing was made "
			    "durable ('cask pool clear' resumes it)", p->name);
			break;
		}
		l->committing = 1;
		uint64_t taken_at = l->next_seq;
		size_t n;
		ilog_itx *batch = take_batch(l, &n);
		int usable = l->enabled && l->ready;
		refs_adjust(p, batch, n, 1);
		pthread_mutex_unlock(&l->lock);

		err = usable ? write_batch(p, batch, n) : -EAGAIN;
		if (err != 0) {
			/* No log (or it failed or is full): commit the txgs instead. */
			uint64_t maxt = 0;
			for (size_t i = 0; i < n; i++)
				maxt = MAX(maxt, batch[i].txg);
			err = txg_wait_synced(p, maxt);
			pthread_mutex_lock(&l->lock);
			l->fallbacks++;
			pthread_mutex_unlock(&l->lock);
		}
		refs_adjust(p, batch, n, -1);

		pthread_mutex_lock(&l->lock);
		l->committing = 0;
		l->commits++;
		for (size_t i = 0; i < n; i++) {
			volume *bv = batch[i].v;
			bv->ilog_inflight--;
			/* it had all its itxs below taken_at in this batch or earlier ones */
			if (err == 0 && bv->ilog_durable_seq < taken_at)
				bv->ilog_durable_seq = taken_at;
		}
		if (err == 0) {
			free(batch);
		} else {
			/* Keep them for the next attempt, in front of newer ones. */
			ilog_itx *m = xmalloc((n + l->nitx + 1) * sizeof(ilog_itx));
			memcpy(m, batch, n * sizeof(ilog_itx));
			if (l->nitx > 0)
				memcpy(m + n, l->itx, l->nitx * sizeof(ilog_itx));
			for (size_t i = 0; i < n; i++)
				batch[i].v->ilog_queued++;
			free(batch);
			free(l->itx);
			l->itx = m;
			l->nitx += n;
			l->capitx = l->nitx + 1;
		}
		pthread_cond_broadcast(&l->cv);
		if (err != 0)
			break;
	}
	v->ilog_waiters--;
	pthread_mutex_unlock(&l->lock);
	return err;
}

void
ilog_stat(ce_pool *p, ce_pool_stat *st)
{
	ilog *l = &p->ilog;
	pthread_mutex_lock(&l->lock);
	st->log_size = l->enabled ? l->size : 0;
	st->log_commits = l->commits;
	st->log_blocks = l->blocks;
	st->log_bytes = l->bytes;
	st->log_fallbacks = l->fallbacks;
	st->log_replayed = l->replayed;
	st->log_inplace = l->ptr_bytes;
	st->log_damaged_seq = l->dmg_seq;
	st->log_lost_blocks = l->dmg_lost_blocks;
	st->log_lost_records = l->dmg_lost_records;
	st->log_bad_inplace = l->dmg_inplace;
	st->log_damage_certain = l->dmg_certain;
	st->log_bad_inplace_certain = l->dmg_inplace_certain;
	pthread_mutex_unlock(&l->lock);
}

int
ilog_epoch_pending(ce_pool *p)
{
	pthread_mutex_lock(&p->ilog.lock);
	int pending = p->ilog.enabled && p->ilog.pending_epoch != 0;
	pthread_mutex_unlock(&p->ilog.lock);
	return pending;
}

void
ilog_ack_damage(ce_pool *p)
{
	ilog *l = &p->ilog;
	pthread_mutex_lock(&l->lock);
	l->dmg_seq = l->dmg_lost_blocks = l->dmg_lost_records = 0;
	l->dmg_inplace = l->dmg_inplace_seq = 0;
	l->dmg_certain = l->dmg_inplace_certain = 0;
	pthread_mutex_unlock(&l->lock);
}

/*
 * ce_pool_clear: forget everything pending (the pool reloads from disk and
 * replays the log again). The caller stopped the sync thread and made sure
 * nobody commits (the pool is suspended, so ilog_commit refuses to start).
 */
void
ilog_reset(ce_pool *p)
{
	ilog *l = &p->ilog;
	pthread_mutex_lock(&l->lock);
	while (l->committing)
		pthread_cond_wait(&l->cv, &l->lock);
	for (size_t i = 0; i < l->nitx; i++)
		l->itx[i].v->ilog_queued--;
	free(l->itx);
	l->itx = NULL;
	l->nitx = l->capitx = 0;
	ring_restart(p);
	l->epoch = 0;
	l->ready = 0;
	l->pending_epoch = 0;
	l->ub_txg = 0;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->lock);
}

/* ---- the sync thread's side ---- */

void
ilog_ub_fill(ce_pool *p, uint64_t txg, uberblock_phys *ub)
{
	ilog *l = &p->ilog;
	pthread_mutex_lock(&l->lock);
	l->ub_txg = txg;
	l->ub_switch = 0;
	l->ub_tail_seq = 0;
	if (l->enabled && l->pending_epoch != 0 && txg >= l->pending_txg) {
		ub->ub_log_epoch = l->pending_epoch;
		ub->ub_log_seq = 1;
		ub->ub_log_off = 0;
		l->ub_switch = 1;
	} else if (l->enabled && l->epoch != 0) {
		uint64_t seq = l->head_seq, off = l->head_off;
		for (size_t i = 0; i < l->fn; i++) {
			ilog_lblk *b = fifo_at(l, i);
			if (b->max_txg > txg) {
				seq = b->seq;
				off = b->off;
				break;
			}
		}
		ub->ub_log_epoch = l->epoch;
		ub->ub_log_seq = seq;
		ub->ub_log_off = off;
		l->ub_tail_seq = seq;
	}
	pthread_mutex_unlock(&l->lock);
}

void
ilog_ub_durable(ce_pool *p, uint64_t txg)
{
	ilog *l = &p->ilog;
	pthread_mutex_lock(&l->lock);
	if (l->ub_txg == txg) {
		if (l->ub_switch) {
			l->epoch = l->pending_epoch;
			l->pending_epoch = 0;
			l->ready = 1;
			ring_restart(p);
		} else {
			/* invariant 3: only blocks behind the durable uberblock's tail are reused */
			ASSERT3U(l->ub_tail_seq, <=, l->head_seq);
			while (l->fn > 0 && fifo_at(l, 0)->seq < l->ub_tail_seq) {
				ilog_lblk *b = fifo_at(l, 0);
				release_exts(p, b->ext, b->next);
				b->ext = NULL;
				l->used -= b->bytes;
				l->ffirst = (l->ffirst + 1) % l->fcap;
				l->fn--;
			}
		}
	}
	size_t k = 0;
	for (size_t i = 0; i < l->nitx; i++) {
		if (l->itx[i].txg > txg)
			l->itx[k++] = l->itx[i];
		else
			l->itx[i].v->ilog_queued--; /* committed by the txg */
	}
	if (k < l->nitx)
		pthread_cond_broadcast(&l->cv); /* a flush may have nothing left to wait for */
	l->nitx = k;
	pthread_mutex_unlock(&l->lock);
}

/* ---- replay at import ---- */

/* Read and check the block at region offset off: 1 if it is the expected one, 0 if it is not
 * there (another identity: the chain ends), -1 if it is but fails its checks (damage). */
static int
read_block(ce_pool *p, const uberblock_phys *ub, uint64_t off, uint64_t seq, uint8_t *buf,
    int *ioerr)
{
	ilog *l = &p->ilog;
	vdev *vd = &p->vds[l->vdev];
	*ioerr = 0;
	if (off + CE_SECTOR > l->size)
		return 0;
	int err = vdev_read(vd, buf, CE_SECTOR, l->base + off);
	if (err != 0) {
		*ioerr = err;
		return 0;
	}
	ilog_blk_phys h;
	memcpy(&h, buf, sizeof(h));
	uint64_t bytes = (uint64_t)h.lg_nsectors * CE_SECTOR;
	if (h.lg_magic != LG_MAGIC || h.lg_version != LG_VERSION || h.lg_pool_guid != p->guid ||
	    h.lg_epoch != ub->ub_log_epoch || h.lg_seq != seq)
		return 0;
	if (h.lg_nsectors == 0 || bytes > LOG_BLK_MAX || off + bytes > l->size || h.lg_used < LG_HDR_SIZE ||
	    h.lg_used > bytes)
		return -1;
	if (bytes > CE_SECTOR &&
	    (err = vdev_read(vd, buf + CE_SECTOR, bytes - CE_SECTOR, l->base + off + CE_SECTOR)) != 0) {
		*ioerr = err;
		return 0;
	}
	uint8_t ck[32];
	memcpy(ck, buf + offsetof(ilog_blk_phys, lg_cksum), sizeof(ck));
	memset(buf + offsetof(ilog_blk_phys, lg_cksum), 0, sizeof(ck));
	return checksum_verify(CE_CK_XXH128, buf, h.lg_used, ck) ? 1 : -1;
}

/* Mark v as holding a record of txg t that replay did not apply (invariant 7). */
static void
mark_vol(ce_pool *p, volume *v, uint64_t t, int known)
{
	pthread_mutex_lock(&p->lock);
	if (v->logdmg_lo == 0 || t < v->logdmg_lo)
		v->logdmg_lo = t;
	if (t > v->logdmg_hi)
		v->logdmg_hi = t;
	if (known)
		v->logdmg_recs++;
	else
		v->logdmg_unknown = 1;
	pthread_mutex_unlock(&p->lock);
}

/*
 * Mark the volumes of the records of a block (buf, the first `have` bytes
 * read) that the uberblock does not cover. Returns 0 if every record
 * parsed and named a live volume, -1 if not. A damaged block (!verified)
 * is held to more: every record well formed and of a txg the uberblock
 * does not cover (a flip could have made a lost record's txg look
 * committed; a damaged block that really held older ones costs only a
 * wider mark).
 */
static int
mark_block(ce_pool *p, const uberblock_phys *ub, const uint8_t *buf, uint64_t have, int verified)
{
	ilog_blk_phys h;
	memcpy(&h, buf, sizeof(h));
	uint64_t used = MIN((uint64_t)h.lg_used, have), at = LG_HDR_SIZE;
	int bad = 0;
	for (uint32_t i = 0; i < h.lg_nrecs; i++) {
		ilog_rec_phys r;
		if (at + LR_HDR_SIZE > used)
			return -1;
		memcpy(&r, buf + at, sizeof(r));
		at += LR_HDR_SIZE + P2ROUNDUP((uint64_t)r.lr_datalen, 8);
		/* what apply_block requires, plus a txg the uberblock does not cover */
		if (!verified && ((r.lr_type != LR_WRITE && r.lr_type != LR_ZERO && r.lr_type != LR_WRITE_PTR) ||
		    (r.lr_type == LR_WRITE && (r.lr_datalen != r.lr_length || r.lr_length > LOG_REC_MAX)) ||
		    (r.lr_type == LR_ZERO && r.lr_datalen != 0) ||
		    (r.lr_type == LR_WRITE_PTR && (r.lr_datalen != sizeof(ilog_ptr_phys) ||
		    r.lr_length == 0 || r.lr_length > LOG_REC_MAX)) || at > used || r.lr_txg <= ub->ub_txg))
			return -1;
		if (r.lr_txg <= ub->ub_txg)
			continue;
		volume *v = r.lr_txg <= ub->ub_txg + 1000000 ? p->ilog.ops->find(p, r.lr_ds_guid) : NULL;
		if (v == NULL) {
			bad = 1; /* (a verified block: a volume created in a txg that never committed) */
			continue;
		}
		mark_vol(p, v, r.lr_txg, 1);
	}
	return bad ? -1 : 0;
}

void
ilog_unmark(ce_pool *p)
{
	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < ds_count(p); i++) {
		volume *v = ds_at(p, i);
		v->logdmg_lo = v->logdmg_hi = v->logdmg_recs = 0;
		v->logdmg_unknown = 0;
	}
	pthread_mutex_unlock(&p->lock);
}

/* A damaged block whose records cannot be attributed: every live volume may be affected. */
static void
mark_all(ce_pool *p, const uberblock_phys *ub)
{
	pthread_mutex_lock(&p->lock);
	size_t n = ds_count(p);
	uint64_t *guids = xcalloc(n ? n : 1, sizeof(uint64_t));
	for (size_t i = 0; i < n; i++)
		guids[i] = ds_at(p, i)->destroy_txg == 0 && !ds_at(p, i)->is_snap ? ds_at(p, i)->guid : 0;
	pthread_mutex_unlock(&p->lock);
	for (size_t i = 0; i < n; i++) {
		volume *v = guids[i] != 0 ? p->ilog.ops->find(p, guids[i]) : NULL;
		if (v != NULL)
			mark_vol(p, v, ub->ub_txg + 1, 0);
	}
	free(guids);
}

/* The block after the one at off (sequence seq) that fails its checks: where it would be. */
static int
next_after_damage(ce_pool *p, const uberblock_phys *ub, uint64_t *off, uint64_t seq, uint8_t *buf)
{
	ilog_blk_phys h;
	memcpy(&h, buf, sizeof(h));
	int ioerr, ok = 0;
	uint64_t bytes = (uint64_t)h.lg_nsectors * CE_SECTOR;
	if (h.lg_nsectors != 0 && bytes <= LOG_BLK_MAX)
		ok = read_block(p, ub, *off + bytes, seq + 1, buf, &ioerr) > 0;
	if (ok) {
		*off += bytes;
		return 1;
	}
	if (read_block(p, ub, 0, seq + 1, buf, &ioerr) > 0) { /* the writer wrapped after it */
		*off = 0;
		return 1;
	}
	return 0;
}

/* Replay met a damaged block (invariant 6): count it and what follows it, apply nothing more. */
static void
note_damage(ce_pool *p, const uberblock_phys *ub, uint64_t off, uint64_t seq, uint8_t *buf)
{
	ilog *l = &p->ilog;
	uint64_t blocks = 0, recs = 0;
	pool_cksum_error(p);
	/* its own records, unverified: attributed only if all of them parse (invariant 7) */
	ilog_blk_phys dh;
	memcpy(&dh, buf, sizeof(dh));
	uint64_t have = (uint64_t)dh.lg_nsectors * CE_SECTOR;
	if (dh.lg_nsectors == 0 || have > LOG_BLK_MAX || off + have > l->size || dh.lg_used < LG_HDR_SIZE ||
	    dh.lg_used > have || mark_block(p, ub, buf, have, 0) != 0)
		mark_all(p, ub);
	for (uint64_t s = seq; next_after_damage(p, ub, &off, s, buf); s++) {
		blocks++;
		recs += ((ilog_blk_phys *)buf)->lg_nrecs;
		(void)mark_block(p, ub, buf, LOG_BLK_MAX, 1); /* verified: every record parses */
	}
	pthread_mutex_lock(&l->lock);
	l->dmg_seq = seq;
	l->dmg_lost_blocks = blocks;
	l->dmg_lost_records = recs;
	l->dmg_certain = blocks > 0;
	pthread_mutex_unlock(&l->lock);
}

/*
 * One checked block's records that the uberblock does not cover. Pass 0
 * reserves the sectors that write-in-place records point to (before any
 * change can make the allocator hand them out); pass 1 applies.
 */
static int
apply_block(ce_pool *p, const uberblock_phys *ub, const uint8_t *buf, int pass, uint64_t *napplied)
{
	ilog *l = &p->ilog;
	ilog_blk_phys h;
	memcpy(&h, buf, sizeof(h));
	uint32_t at = LG_HDR_SIZE;
	for (uint32_t i = 0; i < h.lg_nrecs; i++) {
		ilog_rec_phys r;
		if (at + LR_HDR_SIZE > h.lg_used)
			return err_set(-EIO, "pool %s: intent log block %" PRIu64 " is malformed "
			    "(record %u past its end)", p->name, h.lg_seq, i);
		memcpy(&r, buf + at, sizeof(r));
		uint64_t dlen = P2ROUNDUP((uint64_t)r.lr_datalen, 8);
		if ((r.lr_type != LR_WRITE && r.lr_type != LR_ZERO && r.lr_type != LR_WRITE_PTR) ||
		    (r.lr_type == LR_WRITE && (r.lr_datalen != r.lr_length || r.lr_length > LOG_REC_MAX)) ||
		    (r.lr_type == LR_ZERO && r.lr_datalen != 0) ||
		    (r.lr_type == LR_WRITE_PTR && (r.lr_datalen != sizeof(ilog_ptr_phys) ||
		    r.lr_length == 0 || r.lr_length > LOG_REC_MAX)) ||
		    at + LR_HDR_SIZE + dlen > h.lg_used)
			return err_set(-EIO, "pool %s: intent log block %" PRIu64 " record %u is malformed",
			    p->name, h.lg_seq, i);
		const uint8_t *data = buf + at + LR_HDR_SIZE;
		at += LR_HDR_SIZE + (uint32_t)dlen;
		if (r.lr_txg <= ub->ub_txg)
			continue;
		ilog_ptr_phys ptr;
		uint64_t pbytes = P2ROUNDUP(r.lr_length, CE_SECTOR);
		if (r.lr_type == LR_WRITE_PTR)
			memcpy(&ptr, data, sizeof(ptr));
		if (pass == 0) {
			/* A pointer into space the tree uses cannot be ours: its data fails the checksum. */
			if (r.lr_type == LR_WRITE_PTR &&
			    alloc_log_claim_at(&p->alloc, ptr.lp_vdev, ptr.lp_offset, pbytes) == 0) {
				l->replay_ext = xrealloc(l->replay_ext, (l->nreplay_ext + 1) * sizeof(ilog_ext));
				l->replay_ext[l->nreplay_ext++] = (ilog_ext){ ptr.lp_vdev, ptr.lp_offset, pbytes };
			}
			continue;
		}
		volume *v = p->ilog.ops->find(p, r.lr_ds_guid);
		if (v == NULL || r.lr_offset >= v->size)
			continue;
		uint64_t len = MIN(r.lr_length, v->size - r.lr_offset);
		uint8_t *pdata = NULL;
		if (r.lr_type == LR_WRITE_PTR) {
			int ok = ptr.lp_vdev < p->nvdevs && ptr.lp_offset >= VDEV_DATA_START &&
			    ptr.lp_offset % CE_SECTOR == 0 &&
			    (ptr.lp_offset - VDEV_DATA_START) / CE_SECTOR + pbytes / CE_SECTOR <=
			    p->vds[ptr.lp_vdev].nsectors;
			if (ok) {
				pdata = xmalloc_aligned(pbytes);
				int e = vdev_read(&p->vds[ptr.lp_vdev], pdata, pbytes, ptr.lp_offset);
				if (e != 0) {
					free(pdata);
					return err_set(e, "pool %s: cannot read intent log data at %u:0x%" PRIx64
					    ": %s", p->name, ptr.lp_vdev, ptr.lp_offset, strerror(-e));
				}
				ok = checksum_verify(CE_CK_XXH128, pdata, r.lr_length, ptr.lp_cksum);
			}
			if (!ok) {
				/*
				 * Its data fails its checksum: damage, or (in the chain's last block) data a
				 * crash kept from its flush, never acknowledged (invariant 6). Not applied.
				 */
				free(pdata);
				l->ptr_skipped++;
				pool_cksum_error(p);
				pthread_mutex_lock(&l->lock);
				l->dmg_inplace++;
				l->dmg_inplace_seq = h.lg_seq;
				pthread_mutex_unlock(&l->lock);
				mark_vol(p, v, r.lr_txg, 1);
				continue;
			}
		}
		int err = p->ilog.ops->replay(v, r.lr_type == LR_WRITE_PTR ? LR_WRITE : r.lr_type,
		    r.lr_type == LR_WRITE ? data : pdata, r.lr_offset, len);
		free(pdata);
		if (err != 0)
			return err;
		(*napplied)++;
	}
	return 0;
}

int
ilog_replay(ce_pool *p, const uberblock_phys *ub)
{
	ilog *l = &p->ilog;
	int err = 0;
	uint64_t nblocks = 0, nrecs = 0;

	if (l->enabled && ub->ub_version >= 2 && ub->ub_log_epoch != 0) {
		uint8_t *buf = xmalloc_aligned(LOG_BLK_MAX);
		uint64_t off = ub->ub_log_off, seq = ub->ub_log_seq;
		/*
		 * A txg that commits while we replay must keep naming this
		 * chain: with an empty fifo and no pending epoch, ilog_ub_fill
		 * writes (epoch, head_seq, head_off), i.e. the same tail.
		 */
		pthread_mutex_lock(&l->lock);
		l->epoch = ub->ub_log_epoch;
		l->head_off = off;
		l->head_seq = seq;
		l->ready = 0;
		l->replaying = 1;
		l->dmg_seq = l->dmg_lost_blocks = l->dmg_lost_records = l->dmg_inplace = l->dmg_inplace_seq = 0;
		l->dmg_certain = 0;
		pthread_mutex_unlock(&l->lock);
		ilog_unmark(p);
		for (int pass = 0; pass < 2 && err == 0; pass++) {
			off = ub->ub_log_off;
			seq = ub->ub_log_seq;
			nblocks = 0;
			for (;;) {
				int ioerr;
				int ok = read_block(p, ub, off, seq, buf, &ioerr);
				if (ok == 0 && ioerr == 0 && off != 0) {
					off = 0; /* the writer wrapped */
					ok = read_block(p, ub, off, seq, buf, &ioerr);
				}
				if (ioerr != 0) {
					err = err_set(ioerr, "pool %s: cannot read the intent log: %s", p->name,
					    strerror(-ioerr));
					break;
				}
				if (ok < 0 && pass == 1)
					note_damage(p, ub, off, seq, buf);
				if (ok <= 0)
					break;
				if ((err = apply_block(p, ub, buf, pass, &nrecs)) != 0)
					break;
				nblocks++;
				off += ((ilog_blk_phys *)buf)->lg_nsectors * (uint64_t)CE_SECTOR;
				seq++;
			}
		}
		l->replaying = 0;
		free(buf);
		if (err != 0)
			return err;
		pthread_mutex_lock(&l->lock);
		/* in-place data that failed with an intact or damaged block after its own: it had been flushed */
		l->dmg_inplace_certain = l->dmg_inplace != 0 && (seq > l->dmg_inplace_seq + 1 ||
		    l->dmg_seq == l->dmg_inplace_seq + 1);
		pthread_mutex_unlock(&l->lock);
	}
	/*
	 * The next commit starts a fresh epoch; until it is durable the old
	 * chain stays untouched and FLUSH falls back to a txg commit. When
	 * something was replayed, commit it now.
	 */
	pthread_mutex_lock(&p->lock);
	uint64_t t = txg_open(p); /* holds the last replayed change */
	if (nrecs > 0)
		txg_mark_dirty(p, t);
	pthread_mutex_unlock(&p->lock);
	ilog_new_epoch(p, t);
	pthread_mutex_lock(&l->lock);
	l->replayed = nrecs;
	l->replayed_blocks = nblocks;
	pthread_mutex_unlock(&l->lock);
	return nrecs > 0 ? txg_wait_synced(p, t) : 0;
}

/* For cask-debug: visit the chain an uberblock names, block by block and record by record. */
int
ilog_walk(ce_pool *p, const uberblock_phys *ub, ilog_walk_fn fn, void *arg)
{
	ilog *l = &p->ilog;
	if (!l->enabled || ub->ub_log_epoch == 0)
		return 0;
	uint8_t *buf = xmalloc_aligned(LOG_BLK_MAX);
	uint64_t off = ub->ub_log_off, seq = ub->ub_log_seq;
	int err = 0;
	for (;;) {
		int ioerr;
		int ok = read_block(p, ub, off, seq, buf, &ioerr);
		if (ok == 0 && ioerr == 0 && off != 0) {
			off = 0;
			ok = read_block(p, ub, off, seq, buf, &ioerr);
		}
		if (ioerr != 0) {
			err = ioerr;
			break;
		}
		if (ok < 0)
			err = -EBADMSG; /* damage, not the end (invariant 6) */
		if (ok <= 0)
			break;
		ilog_blk_phys h;
		memcpy(&h, buf, sizeof(h));
		if ((err = fn(arg, &h, off, NULL, NULL)) != 0)
			break;
		uint32_t at = LG_HDR_SIZE;
		for (uint32_t i = 0; i < h.lg_nrecs && at + LR_HDR_SIZE <= h.lg_used; i++) {
			ilog_rec_phys r;
			memcpy(&r, buf + at, sizeof(r));
			uint64_t dlen = P2ROUNDUP((uint64_t)r.lr_datalen, 8);
			if (at + LR_HDR_SIZE + dlen > h.lg_used)
				break;
			if ((err = fn(arg, &h, off, &r, buf + at + LR_HDR_SIZE)) != 0)
				break;
			at += LR_HDR_SIZE + (uint32_t)dlen;
		}
		if (err != 0)
			break;
		off += (uint64_t)h.lg_nsectors * CE_SECTOR;
		seq++;
	}
	free(buf);
	return err;
}
