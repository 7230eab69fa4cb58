/*
 * test_readahead -- read-ahead of a sequential reader (vol.c's read-ahead
 * invariants, aread.c invariant 7) on an aged volume (its blocks
 * overwritten at random, so copy-on-write scattered them):
 *   1. sequential reads, synchronous and asynchronous, return the model's
 *      bytes; the counters show windows sent and blocks read ahead;
 *   2. random reads send no read-ahead;
 *   3. a damaged block inside a read-ahead window: the window fails
 *      (readahead_failed, cksum_errors), the block is not cached, and the
 *      reader that reads it gets -EIO; its neighbours read right;
 *   4. CE_READAHEAD_NONE: sequential reads send none;
 *   5. asynchronous readers over a cold tree, one read at a time and
 *      80 reads of 64 KiB kept in flight (more than a window): both get
 *      read-ahead windows although the indirect blocks ahead of them are
 *      not cached (read-ahead invariant f), and every byte reads right.
 */
#include "aread.h"
#include "blkio.h"
#include "dataset.h"
#include "pool_impl.h"
#include "t.h"
#include "util.h"
#include "vol.h"

#include <pthread.h>

#define BS 4096u
#define VOLSIZE (16ull << 20)
#define CHUNK (64u << 10)

typedef struct waiter {
	pthread_mutex_t lock;
	pthread_cond_t cv;
	int done, err;
} waiter;

static void
on_done(void *arg, int err)
{
	waiter *w = arg;
	pthread_mutex_lock(&w->lock);
	w->done++;
	w->err = err;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->lock);
}

/* One read through the asynchronous path, or the synchronous one when it says -EAGAIN. */
static int
read_async(ce_vol *v, void *buf, size_t len, uint64_t off)
{
	waiter w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };
	int rc = ce_vol_read_async(v, buf, len, off, on_done, &w);
	if (rc == -EAGAIN)
		return ce_vol_read(v, buf, len, off);
	OK(rc);
	pthread_mutex_lock(&w.lock);
	while (w.done == 0)
		pthread_cond_wait(&w.cv, &w.lock);
	pthread_mutex_unlock(&w.lock);
	CHECK(w.done == 1);
	return w.err;
}

static ce_aread_stat
ra_stat(ce_pool *p)
{
	ce_aread_stat as;
	OK(ce_pool_aread_stat(p, &as));
	return as;
}

/* Read the whole volume front to back in CHUNKs and compare. */
static void
seq_pass(ce_vol *v, const uint8_t *model, int async)
{
	uint8_t *buf = xmalloc_aligned(CHUNK);
	for (uint64_t off = 0; off < VOLSIZE; off += CHUNK) {
		OK(async ? read_async(v, buf, CHUNK, off) : ce_vol_read(v, buf, CHUNK, off));
		CHECK(memcmp(buf, model + off, CHUNK) == 0);
	}
	free(buf);
}

/* ---- 5: a deep asynchronous reader ---- */

typedef struct deep {
	pthread_mutex_t lock;
	pthread_cond_t cv;
	int done;
	int err[VOLSIZE / CHUNK];
} deep;

typedef struct deep_rq {
	deep *d;
	int i;
} deep_rq;

static void
deep_done(void *arg, int err)
{
	deep_rq *r = arg;
	pthread_mutex_lock(&r->d->lock);
	r->d->err[r->i] = err;
	r->d->done++;
	pthread_cond_broadcast(&r->d->cv);
	pthread_mutex_unlock(&r->d->lock);
}

static void
deep_wait(deep *d, int n)
{
	pthread_mutex_lock(&d->lock);
	while (d->done < n)
		pthread_cond_wait(&d->cv, &d->lock);
	pthread_mutex_unlock(&d->lock);
}

/* Sequential reads of CHUNK with up to q in flight; each read issued when fewer are. */
static void
deep_pass(ce_vol *v, const uint8_t *model, int q)
{
	enum { N = VOLSIZE / CHUNK };
	static deep d;
	static deep_rq rq[N];
	memset(&d, 0, sizeof(d));
	pthread_mutex_init(&d.lock, NULL);
	pthread_cond_init(&d.cv, NULL);
	uint8_t *buf = xmalloc_aligned(VOLSIZE);
	int sync_reads = 0;
	for (int i = 0; i < N; i++) {
		deep_wait(&d, i - q + 1 > 0 ? i - q + 1 : 0);
		rq[i] = (deep_rq){ &d, i };
		int rc = ce_vol_read_async(v, buf + (size_t)i * CHUNK, CHUNK, (uint64_t)i * CHUNK, deep_done, &rq[i]);
		if (rc == -EAGAIN) {
			d.err[i] = -EAGAIN;
			deep_done(&rq[i], -EAGAIN);
		} else {
			OK(rc);
		}
	}
	deep_wait(&d, N);
	for (int i = 0; i < N; i++) {
		if (d.err[i] == -EAGAIN) { /* the synchronous path, as the vio layer would take */
			OK(ce_vol_read(v, buf + (size_t)i * CHUNK, CHUNK, (uint64_t)i * CHUNK));
			sync_reads++;
		} else {
			CHECK_ERR(d.err[i], 0);
		}
	}
	CHECK(memcmp(buf, model, VOLSIZE) == 0);
	free(buf);
	if (sync_reads > 0)
		printf("deep reader: %d reads took the synchronous path\n", sync_reads);
}

static ce_pool *
reimport(const char *path, ce_pool_opts *o)
{
	ce_pool *p;
	OK(ce_pool_import(&path, 1, o, &p));
	return p;
}

int
main(void)
{
	t_tmpdir();
	const char *path = t_path("pool");
	ce_pool_opts o = { 0 };
	o.vdev_size = 128ull << 20;
	ce_pool *p;
	OK(ce_pool_create("ra", &path, 1, &o, &p));
	if (!ra_stat(p).available) {
		printf("SKIP: no io_uring here (%s)\n", ra_stat(p).why);
		OK(ce_pool_export(p));
		return 77;
	}
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.compress = CE_COMPRESS_OFF;
	OK(ce_vol_create(p, "v", VOLSIZE, &pr));
	uint8_t *model = malloc(VOLSIZE);
	t_fill(model, VOLSIZE, 7);
	ce_vol *v;
	OK(ce_vol_open(p, "v", &v));
	OK(ce_vol_write(v, model, VOLSIZE, 0));
	OK(ce_pool_sync(p));
	/* age it: overwrite blocks at random, syncing in between, so their copies scatter */
	uint64_t seed = 12345;
	uint8_t blk[BS];
	for (int round = 0; round < 8; round++) {
		for (int i = 0; i < 256; i++) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			uint64_t b = (seed >> 33) % (VOLSIZE / BS);
			t_fill(blk, BS, seed);
			memcpy(model + b * BS, blk, BS);
			OK(ce_vol_write(v, blk, BS, b * BS));
		}
		OK(ce_pool_sync(p));
	}
	ce_vol_close(v);
	OK(ce_pool_export(p));

	/* 1: sequential, cold cache, synchronous then asynchronous */
	for (int async = 0; async < 2; async++) {
		p = reimport(path, &o);
		OK(ce_vol_open(p, "v", &v));
		ce_aread_stat a0 = ra_stat(p);
		seq_pass(v, model, async);
		ce_vol_close(v); /* waits for read-ahead in flight */
		ce_aread_stat a1 = ra_stat(p);
		CHECK(a1.readahead_batches > a0.readahead_batches);
		CHECK(a1.readahead_blocks > a0.readahead_blocks);
		CHECK(a1.readahead_failed == a0.readahead_failed);
		printf("sequential (%s): %" PRIu64 " windows, %" PRIu64 " blocks read ahead\n",
		    async ? "async" : "sync", a1.readahead_batches - a0.readahead_batches,
		    a1.readahead_blocks - a0.readahead_blocks);
		OK(ce_pool_export(p));
	}

	/* 2: random reads send none */
	{
		p = reimport(path, &o);
		OK(ce_vol_open(p, "v", &v));
		ce_aread_stat a0 = ra_stat(p);
		uint8_t *buf = xmalloc_aligned(CHUNK);
		for (int i = 0; i < 200; i++) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			/* never adjacent to the previous read: distinct, far apart chunks */
			uint64_t off = (uint64_t)((i * 97) % (VOLSIZE / CHUNK / 2)) * 2 * CHUNK;
			OK(ce_vol_read(v, buf, CHUNK, off));
			CHECK(memcmp(buf, model + off, CHUNK) == 0);
		}
		free(buf);
		ce_vol_close(v);
		CHECK(ra_stat(p).readahead_batches == a0.readahead_batches);
		printf("random: no read-ahead\n");
		OK(ce_pool_export(p));
	}

	/* 3: a damaged block inside the first window */
	{
		uint64_t dblk = 1000; /* the second read's window is blocks 32 .. 32+1024 */
		p = reimport(path, &o);
		pthread_mutex_lock(&p->lock);
		volume *vol = vol_find(p, "v");
		pthread_mutex_unlock(&p->lock);
		CHECK(vol != NULL);
		bp_phys bp;
		OK(cowtree_lookup(p, &vol->tree, dblk, &bp));
		CHECK(!bp_is_hole(&bp) && bp.bp_comp == CE_COMP_OFF);
		OK(ce_pool_export(p));
		t_flip(path, bp.bp_offset + 100, 8, 0x5a);

		p = reimport(path, &o);
		ce_pool_stat s0, s1;
		OK(ce_pool_stat_get(p, &s0));
		ce_aread_stat a0 = ra_stat(p);
		OK(ce_vol_open(p, "v", &v));
		uint8_t *buf = xmalloc_aligned(CHUNK);
		OK(ce_vol_read(v, buf, CHUNK, 0));
		OK(ce_vol_read(v, buf, CHUNK, CHUNK)); /* sends the window */
		ce_vol_close(v);                      /* ... and waits for it */
		ce_aread_stat a1 = ra_stat(p);
		OK(ce_pool_stat_get(p, &s1));
		CHECK(a1.readahead_batches == a0.readahead_batches + 1);
		CHECK(a1.readahead_failed == a0.readahead_failed + 1);
		CHECK(s1.cksum_errors == s0.cksum_errors + 1);
		CHECK(!cache_has(&p->cache, &bp)); /* never cached */
		OK(ce_vol_open(p, "v", &v));
		CHECK_ERR(ce_vol_read(v, buf, BS, dblk * BS), -EIO);
		CHECK_ERR(read_async(v, buf, BS, dblk * BS), -EIO);
		OK(ce_vol_read(v, buf, BS, (dblk - 1) * BS));
		CHECK(memcmp(buf, model + (dblk - 1) * BS, BS) == 0);
		OK(read_async(v, buf, BS, (dblk + 1) * BS));
		CHECK(memcmp(buf, model + (dblk + 1) * BS, BS) == 0);
		/* a sequential reader over it: every chunk before reads, the one with it fails */
		ce_vol_close(v);
		OK(ce_vol_open(p, "v", &v));
		for (uint64_t off = 0; off < VOLSIZE; off += CHUNK) {
			int rc = ce_vol_read(v, buf, CHUNK, off);
			if (off / BS <= dblk && dblk < (off + CHUNK) / BS) {
				CHECK_ERR(rc, -EIO);
			} else {
				OK(rc);
				CHECK(memcmp(buf, model + off, CHUNK) == 0);
			}
		}
		free(buf);
		ce_vol_close(v);
		OK(ce_pool_export(p));
		t_flip(path, bp.bp_offset + 100, 8, 0x5a); /* repaired */
		printf("damaged block in a window: EIO to its reader, never served\n");
	}

	/* 4: off */
	{
		ce_pool_opts off = o;
		off.readahead_bytes = CE_READAHEAD_NONE;
		p = reimport(path, &off);
		OK(ce_vol_open(p, "v", &v));
		ce_aread_stat a0 = ra_stat(p);
		seq_pass(v, model, 0);
		ce_vol_close(v);
		CHECK(ra_stat(p).readahead_batches == a0.readahead_batches);
		OK(ce_pool_export(p));
		printf("CE_READAHEAD_NONE: none\n");
	}
	/* 5: asynchronous readers over a cold tree, shallow and deep, get read-ahead */
	{
		uint64_t got[2];
		for (int deep_q = 0; deep_q < 2; deep_q++) {
			p = reimport(path, &o);
			OK(ce_vol_open(p, "v", &v));
			ce_aread_stat a0 = ra_stat(p);
			deep_pass(v, model, deep_q ? 80 : 1);
			ce_vol_close(v);
			got[deep_q] = ra_stat(p).readahead_batches - a0.readahead_batches;
			OK(ce_pool_export(p));
		}
		printf("read-ahead windows: %" PRIu64 " for one read at a time, %" PRIu64 " for 80 in flight\n",
		    got[0], got[1]);
		CHECK(got[0] >= 1);
		CHECK(got[1] >= 1); /* (when a window waited for all its indirect blocks: none, its far end always missed one) */
	}
	free(model);
	printf("test_readahead: ok\n");
	return 0;
}
