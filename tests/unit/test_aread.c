/*
 * test_aread -- the asynchronous read path (aread.c, ce_vol_read_async):
 *   1. 64 reads in flight at once (held in the ring's completion side),
 *      then completed newest first: each callback runs exactly once, in
 *      that (reverse) order, with the right bytes;
 *   2. reads with partial first and last blocks, compressed blocks, a
 *      large contiguous range, holes and dirty data, against a model;
 *   3. a damaged data block: -EIO through the callback, cksum_errors
 *      counts it, the blocks around it still read;
 *   4. an injected device read error (once, then persistent): -EIO,
 *      io_errors counts, nothing returned as data, reads work after clear;
 *   5. freed space is not reused under a read in flight: a writer thread
 *      overwrites a region (each sync frees and reuses its blocks) while
 *      async reads of it run; every block read is intact and consistent;
 *   6. the fallback: CE_POOL_NO_URING, and a child whose io_uring_setup a
 *      seccomp filter refuses with EPERM: no ring, the reason is given,
 *      ce_vol_read_async says -EAGAIN, ce_vol_read works;
 *   7. a cold tree: reads whose indirect blocks are not cached start
 *      anyway (the indirect blocks come through the ring, tree_reads),
 *      32 at once, with no fallback, against the model;
 *   8. reads of more than 256 blocks (up to the whole volume, cold and
 *      warm, unaligned), with no fallback;
 *   9. a device error in the middle: the 4th of 8 reads in flight, a
 *      later run of one large read, an indirect block's read: exactly
 *      the requests hit get -EIO, once, the others their bytes;
 *  10. ce_vol_close while reads are held in flight (some waiting for
 *      their indirect blocks) waits until they completed; each callback
 *      runs once with the right bytes; the pool exports;
 *  11. a commit holding free_lock when an indirect block arrives: the
 *      read completes with -EAGAIN (it never waits on the completion
 *      thread), and the synchronous read then works;
 *  12. prefetch (ce_vol_prefetch_async, ce_vol_prefetch): a range far
 *      over 8 blocks is cached whole (reads of it then need no device),
 *      and a damaged block makes it fail with -EIO.
 */
#include "aread.h"
#include "blkio.h"
#include "dataset.h"
#include "pool_impl.h"
#include "t.h"
#include "util.h"
#include "vol.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#define BS 4096u
#define VOLSIZE (16ull << 20)

/* ---- waiting for callbacks ---- */

typedef struct waiter {
	pthread_mutex_t lock;
	pthread_cond_t cv;
	int done, expect;
	int order[256];      /* which request completed k-th */
	int err[256];
	int calls[256];
} waiter;

typedef struct rq {
	waiter *w;
	int id;
} rq;

static void
on_done(void *arg, int err)
{
	rq *r = arg;
	waiter *w = r->w;
	pthread_mutex_lock(&w->lock);
	w->order[w->done++] = r->id;
	w->err[r->id] = err;
	w->calls[r->id]++;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->lock);
}

static void
w_init(waiter *w)
{
	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cv, NULL);
}

static void
w_wait(waiter *w, int n)
{
	pthread_mutex_lock(&w->lock);
	while (w->done < n)
		pthread_cond_wait(&w->cv, &w->lock);
	pthread_mutex_unlock(&w->lock);
}

/* One read through the asynchronous path (must start), waited for; its error. */
static int
aread_one(ce_vol *v, void *buf, size_t len, uint64_t off)
{
	waiter w;
	w_init(&w);
	rq r = { &w, 0 };
	OK(ce_vol_read_async(v, buf, len, off, on_done, &r));
	w_wait(&w, 1);
	CHECK(w.calls[0] == 1);
	return w.err[0];
}

/* One prefetch through the asynchronous path (must start), waited for; its error. */
static int
prefetch_one(ce_vol *v, uint64_t off, uint64_t len)
{
	waiter w;
	w_init(&w);
	rq r = { &w, 0 };
	OK(ce_vol_prefetch_async(v, off, len, on_done, &r));
	w_wait(&w, 1);
	CHECK(w.calls[0] == 1);
	return w.err[0];
}

/* Load the tree's indirect blocks into the cache (a map reads them, not the data). */
static void
warm_tree(ce_vol *v)
{
	ce_extent ext[64];
	size_t n;
	OK(ce_vol_map(v, 0, ce_vol_size(v), ext, 64, &n));
}

static void
stat_of(ce_pool *p, ce_pool_stat *st, ce_aread_stat *as)
{
	OK(ce_pool_stat_get(p, st));
	OK(ce_pool_aread_stat(p, as));
}

/* ---- 1: many in flight, completed out of order ---- */

static void
many_in_flight(ce_pool *p, ce_vol *v, const uint8_t *model)
{
	enum { N = 64 };
	waiter w;
	w_init(&w);
	rq r[N];
	uint8_t *bufs = xmalloc_aligned(N * BS);
	ce_aread_stat a0, a1;
	OK(ce_pool_aread_stat(p, &a0));
	aread_test_hold(p);
	for (int i = 0; i < N; i++) {
		r[i] = (rq){ &w, i };
		uint64_t off = (uint64_t)(i * 37 % 2048) * BS * 2; /* distinct, non-adjacent blocks */
		OK(ce_vol_read_async(v, bufs + (size_t)i * BS, BS, off, on_done, &r[i]));
	}
	aread_test_wait_held(p, N); /* all N device reads finished, none processed */
	OK(ce_pool_aread_stat(p, &a1));
	CHECK(a1.requests - a0.requests == N);
	pthread_mutex_lock(&w.lock);
	CHECK(w.done == 0); /* all N started, and none completed: N in flight at once */
	pthread_mutex_unlock(&w.lock);
	printf("many in flight: %d held at once, at most %" PRIu64 " in the kernel together\n", N, a1.ring_max);
	aread_test_release(p);
	w_wait(&w, N);
	for (int k = 0; k < N; k++)
		CHECK(w.order[k] == N - 1 - k); /* newest first */
	for (int i = 0; i < N; i++) {
		uint64_t off = (uint64_t)(i * 37 % 2048) * BS * 2;
		CHECK(w.calls[i] == 1 && w.err[i] == 0);
		CHECK(memcmp(bufs + (size_t)i * BS, model + off, BS) == 0);
	}
	free(bufs);
}

/* ---- 2: shapes of reads ---- */

static void
shapes(ce_pool *p, ce_vol *v, const uint8_t *model)
{
	static const struct { uint64_t off, len; } cases[] = {
		{ 0, BS }, { 1000, 10 }, { 4000, 200 }, { BS * 3 + 17, BS * 5 }, { 12345, 98765 },
		{ 1 << 20, 1 << 20 }, { VOLSIZE - BS, BS }, { VOLSIZE - 100, 100 }, { 7 * BS, 0 },
	};
	uint8_t *buf = xmalloc_aligned(2u << 20);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		memset(buf, 0xee, cases[i].len + 1);
		CHECK_ERR(aread_one(v, buf, cases[i].len, cases[i].off), 0);
		CHECK(memcmp(buf, model + cases[i].off, cases[i].len) == 0);
		/* the same again: cached now (or, for the streaming one, read again) */
		CHECK_ERR(aread_one(v, buf, cases[i].len, cases[i].off), 0);
		CHECK(memcmp(buf, model + cases[i].off, cases[i].len) == 0);
	}
	/* unaligned destination: bounce buffers */
	CHECK_ERR(aread_one(v, buf + 1, 3 * BS, 64 * BS), 0);
	CHECK(memcmp(buf + 1, model + 64 * BS, 3 * BS) == 0);
	/* out of range: an error at once, no callback */
	waiter w;
	w_init(&w);
	rq r = { &w, 0 };
	CHECK_ERR(ce_vol_read_async(v, buf, BS, VOLSIZE, on_done, &r), -EINVAL);
	CHECK(w.done == 0);
	(void)p;
	free(buf);
}

/* dirty data and holes come from memory, with no device read */
static void
dirty_and_holes(ce_pool *p, ce_vol *v, uint8_t *model)
{
	uint8_t blk[BS];
	t_fill(blk, BS, 99);
	OK(ce_vol_write(v, blk, BS, 5 * BS));
	memcpy(model + 5 * BS, blk, BS);
	OK(ce_vol_trim(v, 9 * BS, 2 * BS));
	memset(model + 9 * BS, 0, 2 * BS);
	uint8_t *buf = xmalloc_aligned(16 * BS);
	CHECK_ERR(aread_one(v, buf, 16 * BS, 0), 0);
	CHECK(memcmp(buf, model, 16 * BS) == 0);
	free(buf);
	(void)p;
}

/* ---- 3: a damaged block ---- */

static void
damaged(const char *path, ce_pool_opts *o)
{
	ce_pool *p;
	OK(ce_pool_import(&path, 1, o, &p));
	pthread_mutex_lock(&p->lock);
	volume *vol = vol_find(p, "v");
	pthread_mutex_unlock(&p->lock);
	CHECK(vol != NULL);
	bp_phys bp;
	OK(cowtree_lookup(p, &vol->tree, 300, &bp));
	CHECK(!bp_is_hole(&bp) && bp.bp_comp == CE_COMP_OFF);
	OK(ce_pool_export(p));
	t_flip(path, bp.bp_offset + 100, 8, 0x33);

	OK(ce_pool_import(&path, 1, o, &p));
	ce_vol *v;
	OK(ce_vol_open(p, "v", &v));
	warm_tree(v);
	ce_pool_stat s0, s1;
	ce_aread_stat a0, a1;
	stat_of(p, &s0, &a0);
	uint8_t *buf = xmalloc_aligned(4 * BS);
	CHECK_ERR(aread_one(v, buf, BS, 300 * BS), -EIO);
	stat_of(p, &s1, &a1);
	CHECK(s1.cksum_errors == s0.cksum_errors + 1);
	CHECK(a1.requests == a0.requests + 1); /* it went through the ring */
	/* a read that spans it fails whole; its neighbours read */
	CHECK_ERR(aread_one(v, buf, 3 * BS, 299 * BS), -EIO);
	CHECK_ERR(aread_one(v, buf, BS, 299 * BS), 0);
	CHECK_ERR(aread_one(v, buf, BS, 301 * BS), 0);
	/* the synchronous path agrees */
	CHECK_ERR(ce_vol_read(v, buf, BS, 300 * BS), -EIO);
	/* a prefetch over it fails, asynchronous and synchronous, and does not cache it */
	CHECK_ERR(prefetch_one(v, 256 * BS, 64 * BS), -EIO);
	CHECK_ERR(ce_vol_prefetch(v, 256 * BS, 64 * BS), -EIO);
	CHECK_ERR(aread_one(v, buf, BS, 300 * BS), -EIO);
	free(buf);
	ce_vol_close(v);
	OK(ce_pool_export(p));
	t_flip(path, bp.bp_offset + 100, 8, 0x33); /* repaired */
}

/* ---- 4: injected device errors ---- */

static void
injected(ce_pool *p, ce_vol *v, const uint8_t *model)
{
	uint8_t *buf = xmalloc_aligned(8 * BS);
	ce_pool_stat s0, s1;
	ce_aread_stat a0, a1;
	stat_of(p, &s0, &a0);
	ce_fault f = { .op = CE_FAULT_READ, .vdev = -1, .after = 0, .persistent = 0 };
	OK(ce_pool_fault_inject(p, &f));
	memset(buf, 0xee, BS);
	CHECK_ERR(aread_one(v, buf, BS, 1001 * BS), -EIO); /* not cached: a device read */
	stat_of(p, &s1, &a1);
	CHECK(s1.io_errors == s0.io_errors + 1);
	CHECK(a1.requests == a0.requests + 1);
	CHECK(buf[0] == 0xee && buf[BS - 1] == 0xee); /* nothing arrived */
	CHECK_ERR(aread_one(v, buf, BS, 1001 * BS), 0); /* once: the next one reads */
	CHECK(memcmp(buf, model + 1001 * BS, BS) == 0);

	/* persistent after one read that succeeds */
	f.persistent = 1;
	f.after = 1;
	OK(ce_pool_fault_inject(p, &f));
	CHECK_ERR(aread_one(v, buf, BS, 1101 * BS), 0);
	CHECK_ERR(aread_one(v, buf, BS, 1103 * BS), -EIO);
	CHECK_ERR(aread_one(v, buf, BS, 1105 * BS), -EIO);
	ce_pool_fault_clear(p);
	CHECK_ERR(aread_one(v, buf, BS, 1105 * BS), 0);
	CHECK(memcmp(buf, model + 1105 * BS, BS) == 0);
	free(buf);
}

/* ---- 5: reads in flight across commits that free and reuse space ---- */

#define RACE_BLKS 2048u

typedef struct racer {
	ce_pool *p;
	ce_vol *v;
	_Atomic int stop;
	_Atomic int rounds;
} racer;

/* Block b of version n: (b, n) in every 16 bytes, so a read tells what it got. */
static void
stamp(uint8_t *blk, uint64_t b, uint64_t n)
{
	for (unsigned i = 0; i < BS; i += 16) {
		memcpy(blk + i, &b, 8);
		memcpy(blk + i + 8, &n, 8);
	}
}

static int
stamped(const uint8_t *blk, uint64_t b)
{
	uint64_t n0;
	memcpy(&n0, blk + 8, 8);
	for (unsigned i = 0; i < BS; i += 16) {
		uint64_t x, n;
		memcpy(&x, blk + i, 8);
		memcpy(&n, blk + i + 8, 8);
		if (x != b || n != n0)
			return 0;
	}
	return 1;
}

/* Rewrite a random 64-block chunk at a time: each txg commit frees the old copies for reuse. */
static void *
race_writer(void *arg)
{
	racer *r = arg;
	uint8_t *buf = xmalloc_aligned(64 * BS);
	uint64_t s = 11;
	for (uint64_t n = 1; !atomic_load(&r->stop); n++) {
		uint64_t b = t_rand(&s) % (RACE_BLKS / 64) * 64;
		for (unsigned k = 0; k < 64; k++)
			stamp(buf + k * BS, b + k, n);
		OK(ce_vol_write(r->v, buf, 64 * BS, b * BS));
		if (n % 4 == 0)
			OK(ce_vol_flush(r->v));
		if (n % 2 == 0)
			OK(ce_pool_sync(r->p)); /* a commit: the chunks rewritten before it are freed */
		r->rounds++;
	}
	free(buf);
	return NULL;
}

static void
reads_across_commits(const char *path)
{
	ce_pool_opts o = { 0 };
	o.cache_bytes = 1u << 20; /* small: most data blocks miss */
	o.txg_timeout_ms = 20;
	ce_pool *p;
	OK(ce_pool_import(&path, 1, &o, &p));
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.compress = CE_COMPRESS_OFF;
	OK(ce_vol_create(p, "race", RACE_BLKS * BS, &pr));
	ce_vol *v;
	OK(ce_vol_open(p, "race", &v));
	uint8_t *buf = xmalloc_aligned(RACE_BLKS * BS);
	for (uint64_t b = 0; b < RACE_BLKS; b++)
		stamp(buf + b * BS, b, 0);
	OK(ce_vol_write(v, buf, RACE_BLKS * BS, 0));
	OK(ce_vol_flush(v));
	racer r = { .p = p, .v = v };
	pthread_t th;
	CHECK(pthread_create(&th, NULL, race_writer, &r) == 0);
	enum { Q = 32 };
	ce_aread_stat a0, a1;
	OK(ce_pool_aread_stat(p, &a0));
	uint64_t s = 7, started = 0;
	for (int round = 0; round < 300 || r.rounds < 100; round++) {
		waiter w;
		w_init(&w);
		rq q[Q];
		uint64_t blk[Q];
		int n = 0;
		for (int i = 0; i < Q; i++) {
			blk[i] = t_rand(&s) % RACE_BLKS;
			q[i] = (rq){ &w, i };
			int e = ce_vol_read_async(v, buf + (size_t)i * BS, BS, blk[i] * BS, on_done, &q[i]);
			if (e == -EAGAIN) { /* the synchronous path, as the vio layer would take */
				OK(ce_vol_read(v, buf + (size_t)i * BS, BS, blk[i] * BS));
				on_done(&q[i], 0);
			} else {
				OK(e);
				started++;
			}
			n++;
		}
		w_wait(&w, n);
		for (int i = 0; i < n; i++) {
			if (w.err[i] == -EAGAIN) { /* a commit was in the way of a later stage: the synchronous path */
				OK(ce_vol_read(v, buf + (size_t)i * BS, BS, blk[i] * BS));
				w.err[i] = 0;
			}
			CHECK_ERR(w.err[i], 0);
			CHECK(stamped(buf + (size_t)i * BS, blk[i]));
		}
	}
	atomic_store(&r.stop, 1);
	pthread_join(th, NULL);
	OK(ce_pool_aread_stat(p, &a1));
	CHECK(started > 0 && a1.requests > a0.requests); /* the ring was used, not only the fallback */
	ce_pool_stat st;
	OK(ce_pool_stat_get(p, &st));
	CHECK(st.cksum_errors == 0 && st.io_errors == 0);
	printf("reads across commits: %d writer rounds, %" PRIu64 " async reads started, %" PRIu64
	    " through the ring, %" PRIu64 " fallbacks\n", r.rounds, started, a1.requests - a0.requests,
	    a1.fallbacks - a0.fallbacks);
	free(buf);
	ce_vol_close(v);
	OK(ce_vol_destroy(p, "race"));
	OK(ce_pool_export(p));
}

/*
 * The same, deterministic: a read started under the old root is held
 * after its device read; a commit that frees the block it read must wait
 * in aread_drain (free_lock held for writing) until the read is verified.
 */
typedef struct syncer {
	ce_pool *p;
	_Atomic int done;
} syncer;

static void *
sync_thread(void *arg)
{
	syncer *s = arg;
	OK(ce_pool_sync(s->p));
	atomic_store(&s->done, 1);
	return NULL;
}

static void
commit_waits_for_read(const char *path)
{
	ce_pool_opts o = { 0 };
	ce_pool *p;
	OK(ce_pool_import(&path, 1, &o, &p));
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.compress = CE_COMPRESS_OFF;
	OK(ce_vol_create(p, "drain", 64 * BS, &pr));
	ce_vol *v;
	OK(ce_vol_open(p, "drain", &v));
	uint8_t *blk = xmalloc_aligned(BS), *got = xmalloc_aligned(BS);
	stamp(blk, 3, 1);
	OK(ce_vol_write(v, blk, BS, 3 * BS));
	OK(ce_pool_sync(p));
	ce_vol_close(v);
	OK(ce_pool_export(p));
	OK(ce_pool_import(&path, 1, &o, &p)); /* cold: block 3 is read from the device */
	OK(ce_vol_open(p, "drain", &v));
	warm_tree(v);

	aread_test_hold(p);
	waiter w;
	w_init(&w);
	rq r = { &w, 0 };
	OK(ce_vol_read_async(v, got, BS, 3 * BS, on_done, &r));
	aread_test_wait_held(p, 1);
	stamp(blk, 3, 2);
	OK(ce_vol_write(v, blk, BS, 3 * BS)); /* the commit frees version 1's block */
	syncer sy = { .p = p };
	pthread_t th;
	CHECK(pthread_create(&th, NULL, sync_thread, &sy) == 0);
	aread_test_wait_drain(p, 1); /* the commit reached the drain and found our read */
	CHECK(atomic_load(&sy.done) == 0); /* and waits for it */
	pthread_mutex_lock(&w.lock);
	CHECK(w.done == 0);
	pthread_mutex_unlock(&w.lock);
	aread_test_release(p);
	w_wait(&w, 1);
	pthread_join(th, NULL);
	CHECK(atomic_load(&sy.done) == 1);
	CHECK_ERR(w.err[0], 0);
	CHECK(stamped(got, 3));
	uint64_t ver;
	memcpy(&ver, got + 8, 8);
	CHECK(ver == 1); /* what the root it started under held */
	CHECK_ERR(aread_one(v, got, BS, 3 * BS), 0);
	memcpy(&ver, got + 8, 8);
	CHECK(ver == 2);
	free(blk);
	free(got);
	ce_vol_close(v);
	OK(ce_vol_destroy(p, "drain"));
	OK(ce_pool_export(p));
}

/* Start n reads of BS at offs[i] (each must start), wait for all; errors in err[]. */
static void
reads_of(ce_vol *v, uint8_t *bufs, const uint64_t *offs, int n, int *err)
{
	waiter w;
	w_init(&w);
	rq r[256];
	CHECK(n <= 256);
	for (int i = 0; i < n; i++) {
		r[i] = (rq){ &w, i };
		OK(ce_vol_read_async(v, bufs + (size_t)i * BS, BS, offs[i], on_done, &r[i]));
	}
	w_wait(&w, n);
	for (int i = 0; i < n; i++) {
		CHECK(w.calls[i] == 1);
		err[i] = w.err[i];
	}
}

/* ---- 7: indirect blocks not cached ---- */

static void
cold_tree(ce_pool *p, ce_vol *v, const uint8_t *model)
{
	enum { N = 32 };
	ce_aread_stat a0, a1;
	OK(ce_pool_aread_stat(p, &a0));
	uint8_t *bufs = xmalloc_aligned(N * BS);
	uint64_t offs[N];
	int err[N];
	uint64_t s = 5;
	for (int i = 0; i < N; i++)
		offs[i] = t_rand(&s) % (VOLSIZE / BS) * BS;
	reads_of(v, bufs, offs, N, err);
	OK(ce_pool_aread_stat(p, &a1));
	for (int i = 0; i < N; i++) {
		CHECK_ERR(err[i], 0);
		CHECK(memcmp(bufs + (size_t)i * BS, model + offs[i], BS) == 0);
	}
	CHECK(a1.fallbacks == a0.fallbacks); /* none took the synchronous path */
	CHECK(a1.tree_reads > a0.tree_reads); /* the indirect blocks came through the ring */
	printf("cold tree: %d reads, %" PRIu64 " indirect blocks read asynchronously, no fallback\n", N,
	    a1.tree_reads - a0.tree_reads);
	free(bufs);
}

/* ---- 8: more than 256 blocks ---- */

static void
large(ce_pool *p, ce_vol *v, const uint8_t *model)
{
	static const struct { uint64_t off, len; } cases[] = {
		{ 0, VOLSIZE },                    /* cold: the whole tree and volume */
		{ 100, VOLSIZE - 200 },            /* warm tree, unaligned ends */
		{ 3 * BS + 5, 300 * BS },          /* just over one batch */
		{ (1u << 20) - BS, (4u << 20) + 2 * BS },
	};
	uint8_t *buf = xmalloc_aligned(VOLSIZE + BS);
	ce_aread_stat a0, a1;
	OK(ce_pool_aread_stat(p, &a0));
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		memset(buf, 0xee, cases[i].len);
		CHECK_ERR(aread_one(v, buf, cases[i].len, cases[i].off), 0);
		CHECK(memcmp(buf, model + cases[i].off, cases[i].len) == 0);
		/* into an unaligned buffer (bounce buffers) */
		CHECK_ERR(aread_one(v, buf + 1, cases[i].len, cases[i].off), 0);
		CHECK(memcmp(buf + 1, model + cases[i].off, cases[i].len) == 0);
	}
	OK(ce_pool_aread_stat(p, &a1));
	CHECK(a1.fallbacks == a0.fallbacks);
	CHECK(a1.requests > a0.requests);
	free(buf);
}

/* ---- 9: device errors in the middle of what is in flight ---- */

static void
errors_in_the_middle(ce_pool *p, ce_vol *v, const uint8_t *model)
{
	enum { N = 8 };
	warm_tree(v);
	uint8_t *bufs = xmalloc_aligned(N * BS);
	uint64_t offs[N];
	int err[N];
	ce_pool_stat s0, s1;
	ce_aread_stat a0, a1;
	/* 8 reads of distinct uncached blocks: the 4th device read fails */
	for (int i = 0; i < N; i++)
		offs[i] = (uint64_t)(1500 + 3 * i) * BS;
	stat_of(p, &s0, &a0);
	ce_fault f = { .op = CE_FAULT_READ, .vdev = -1, .after = 3, .persistent = 0 };
	OK(ce_pool_fault_inject(p, &f));
	reads_of(v, bufs, offs, N, err);
	stat_of(p, &s1, &a1);
	CHECK(s1.io_errors == s0.io_errors + 1);
	for (int i = 0; i < N; i++) {
		CHECK_ERR(err[i], i == 3 ? -EIO : 0);
		if (i != 3)
			CHECK(memcmp(bufs + (size_t)i * BS, model + offs[i], BS) == 0);
	}
	CHECK_ERR(aread_one(v, bufs, BS, offs[3]), 0); /* once: it reads now */
	CHECK(memcmp(bufs, model + offs[3], BS) == 0);
	free(bufs);

	/* one 6 MiB read (several 1 MiB runs): its 3rd run fails; the read fails whole, once */
	uint8_t *big = xmalloc_aligned(6u << 20);
	stat_of(p, &s0, &a0);
	f.after = 2;
	OK(ce_pool_fault_inject(p, &f));
	CHECK_ERR(aread_one(v, big, 6u << 20, 8u << 20), -EIO);
	stat_of(p, &s1, &a1);
	CHECK(s1.io_errors == s0.io_errors + 1);
	CHECK(a1.device_reads - a0.device_reads >= 3);
	CHECK_ERR(aread_one(v, big, 6u << 20, 8u << 20), 0);
	CHECK(memcmp(big, model + (8u << 20), 6u << 20) == 0);
	free(big);
	ce_pool_fault_clear(p);
}

/*
 * ---- 10: close while reads are in flight ----
 * Reads of a cold tree are held after their device reads; another thread
 * closes the handle: it cannot return before they complete.
 */
typedef struct closer {
	ce_vol *v;
	_Atomic int closed;
} closer;

static void *
close_thread(void *arg)
{
	closer *c = arg;
	ce_vol_close(c->v);
	atomic_store(&c->closed, 1);
	return NULL;
}

static void
close_in_flight(const char *path, ce_pool_opts *o, const uint8_t *model)
{
	enum { N = 16 };
	ce_pool *p;
	OK(ce_pool_import(&path, 1, o, &p));
	ce_vol *v;
	OK(ce_vol_open(p, "v", &v));
	uint8_t *bufs = xmalloc_aligned(N * BS);
	waiter w;
	w_init(&w);
	rq r[N];
	uint64_t offs[N];
	aread_test_hold(p);
	for (int i = 0; i < N; i++) {
		r[i] = (rq){ &w, i };
		offs[i] = (uint64_t)(i * 263 % (VOLSIZE / BS)) * BS; /* under different indirect blocks */
		OK(ce_vol_read_async(v, bufs + (size_t)i * BS, BS, offs[i], on_done, &r[i]));
	}
	aread_test_wait_held(p, 1); /* at least one device read finished and is held */
	closer c = { .v = v };
	pthread_t th;
	CHECK(pthread_create(&th, NULL, close_thread, &c) == 0);
	pthread_mutex_lock(&w.lock);
	CHECK(w.done == 0); /* nothing completed: every read is held or waits for a held one */
	pthread_mutex_unlock(&w.lock);
	CHECK(atomic_load(&c.closed) == 0); /* and so the close cannot have returned */
	aread_test_release(p); /* the rest (their next stages) run on the completion thread */
	pthread_join(th, NULL);
	CHECK(atomic_load(&c.closed) == 1);
	w_wait(&w, N); /* close returned: every read has run its callback or is in it */
	for (int i = 0; i < N; i++) {
		CHECK(w.calls[i] == 1);
		CHECK_ERR(w.err[i], 0);
		CHECK(memcmp(bufs + (size_t)i * BS, model + offs[i], BS) == 0);
	}
	free(bufs);
	OK(ce_pool_export(p)); /* nothing in flight (aread_fini checks) */
}

/* ---- 11: a commit holds free_lock when a read's indirect block arrives ---- */

static void
commit_in_the_way(const char *path, ce_pool_opts *o, const uint8_t *model)
{
	ce_pool *p;
	OK(ce_pool_import(&path, 1, o, &p));
	ce_vol *v;
	OK(ce_vol_open(p, "v", &v));
	uint8_t *buf = xmalloc_aligned(BS);
	waiter w;
	w_init(&w);
	rq r = { &w, 0 };
	ce_aread_stat a0, a1;
	OK(ce_pool_aread_stat(p, &a0));
	aread_test_hold(p);
	OK(ce_vol_read_async(v, buf, BS, 777 * BS, on_done, &r)); /* cold: its indirect blocks first */
	aread_test_wait_held(p, 1);
	/* as pool_sync does while it hands freed space back; the held read no longer counts */
	pthread_rwlock_wrlock(&p->free_lock);
	aread_test_release(p); /* its next stage runs here, finds free_lock taken, and does not wait */
	pthread_rwlock_unlock(&p->free_lock);
	w_wait(&w, 1);
	CHECK(w.calls[0] == 1);
	CHECK_ERR(w.err[0], -EAGAIN);
	OK(ce_pool_aread_stat(p, &a1));
	CHECK(a1.fallbacks == a0.fallbacks + 1);
	OK(ce_vol_read(v, buf, BS, 777 * BS)); /* what the caller then does */
	CHECK(memcmp(buf, model + 777 * BS, BS) == 0);
	free(buf);
	ce_vol_close(v);
	OK(ce_pool_export(p));
}

/* ---- 12: prefetch ---- */

static void
prefetch(const char *path, ce_pool_opts *o, const uint8_t *model)
{
	ce_pool_opts po = *o;
	po.cache_bytes = 64u << 20; /* room for what is prefetched */
	ce_pool *p;
	OK(ce_pool_import(&path, 1, &po, &p));
	ce_vol *v;
	OK(ce_vol_open(p, "v", &v));
	ce_aread_stat a0, a1, a2;
	OK(ce_pool_aread_stat(p, &a0));
	/* cold: 10 MiB + a bit, over two windows, unaligned */
	CHECK_ERR(prefetch_one(v, 100, (10u << 20) + 5000), 0);
	OK(ce_pool_aread_stat(p, &a1));
	uint64_t nblk = ((10u << 20) + 5100 + BS - 1) / BS;
	CHECK(a1.fill_blocks - a0.fill_blocks == nblk);
	CHECK(a1.fallbacks == a0.fallbacks);
	uint8_t *buf = xmalloc_aligned(1u << 20);
	/* all of it is cached: reads complete inline, with no device read */
	for (uint64_t off = 0; off < (10u << 20); off += 1u << 20) {
		CHECK_ERR(aread_one(v, buf, 1u << 20, off), 0);
		CHECK(memcmp(buf, model + off, 1u << 20) == 0);
	}
	OK(ce_pool_aread_stat(p, &a2));
	CHECK(a2.device_reads == a1.device_reads);
	CHECK(a2.inline_done - a1.inline_done == 10);
	/* the synchronous one caches too, however many blocks miss */
	OK(ce_vol_prefetch(v, 12u << 20, 2u << 20));
	OK(ce_pool_aread_stat(p, &a1));
	CHECK_ERR(aread_one(v, buf, 1u << 20, 12u << 20), 0);
	CHECK_ERR(aread_one(v, buf, 1u << 20, 13u << 20), 0);
	CHECK(memcmp(buf, model + (13u << 20), 1u << 20) == 0);
	OK(ce_pool_aread_stat(p, &a2));
	CHECK(a2.device_reads == a1.device_reads);
	/* out of range: an error at once */
	waiter w;
	w_init(&w);
	rq r = { &w, 0 };
	CHECK_ERR(ce_vol_prefetch_async(v, VOLSIZE - BS, 2 * BS, on_done, &r), -EINVAL);
	CHECK(w.done == 0);
	free(buf);
	ce_vol_close(v);
	OK(ce_pool_export(p));
}

/* ---- 6: the fallback ---- */

static void
check_fallback(ce_pool *p, ce_vol *v, const uint8_t *model, const char *why)
{
	ce_aread_stat as;
	OK(ce_pool_aread_stat(p, &as));
	CHECK(as.available == 0);
	if (strstr(as.why, why) == NULL) {
		fprintf(stderr, "why: '%s', want '%s'\n", as.why, why);
		exit(1);
	}
	uint8_t *buf = xmalloc_aligned(4 * BS);
	waiter w;
	w_init(&w);
	rq r = { &w, 0 };
	CHECK_ERR(ce_vol_read_async(v, buf, BS, 0, on_done, &r), -EAGAIN);
	CHECK(w.done == 0);
	OK(ce_vol_read(v, buf, 4 * BS, 10 * BS));
	CHECK(memcmp(buf, model + 10 * BS, 4 * BS) == 0);
	free(buf);
}

static void
no_uring_flag(const char *path, const uint8_t *model)
{
	ce_pool_opts o = { 0 };
	o.flags = CE_POOL_NO_URING;
	ce_pool *p;
	OK(ce_pool_import(&path, 1, &o, &p));
	ce_vol *v;
	OK(ce_vol_open(p, "v", &v));
	check_fallback(p, v, model, "CE_POOL_NO_URING");
	ce_vol_close(v);
	OK(ce_pool_export(p));
}

/* A child whose io_uring_setup fails with EPERM, as under a container runtime's seccomp profile. */
static void
refused_setup(const char *path, const uint8_t *model)
{
	fflush(stdout); /* the child must not print what the parent buffered */
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		struct sock_filter f[] = {
			BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		};
		struct sock_fprog prog = { ARRAY_SIZE(f), f };
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
			printf("SKIP: cannot install a seccomp filter: %s\n", strerror(errno));
			_exit(77);
		}
		ce_pool_opts o = { 0 };
		ce_pool *p;
		OK(ce_pool_import(&path, 1, &o, &p));
		ce_vol *v;
		OK(ce_vol_open(p, "v", &v));
		check_fallback(p, v, model, "io_uring_queue_init: Operation not permitted");
		ce_vol_close(v);
		OK(ce_pool_export(p));
		_exit(0);
	}
	int st;
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st));
	if (WEXITSTATUS(st) == 77)
		printf("refused setup: skipped (no seccomp)\n");
	else
		CHECK(WEXITSTATUS(st) == 0);
}

int
main(void)
{
	t_tmpdir();
	const char *path = t_path("pool");
	ce_pool_opts o = { 0 };
	o.vdev_size = 128ull << 20;
	/* the cases here count device reads of blocks they know uncached: read-ahead is test_readahead's */
	o.readahead_bytes = CE_READAHEAD_NONE;
	ce_pool *p;
	OK(ce_pool_create("ar", &path, 1, &o, &p));
	ce_aread_stat as;
	OK(ce_pool_aread_stat(p, &as));
	if (!as.available) {
		printf("SKIP: no io_uring here (%s)\n", as.why);
		OK(ce_pool_export(p));
		return 77;
	}
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.compress = CE_COMPRESS_OFF;
	OK(ce_vol_create(p, "v", VOLSIZE, &pr));
	pr.compress = CE_COMPRESS_LZ4;
	OK(ce_vol_create(p, "z", VOLSIZE, &pr));
	uint8_t *model = malloc(VOLSIZE), *zmodel = malloc(VOLSIZE);
	t_fill(model, VOLSIZE, 3);
	/* compressible: a pattern with random runs; leave a hole at 8 MiB..9 MiB */
	for (uint64_t i = 0; i < VOLSIZE; i++)
		zmodel[i] = (uint8_t)((i / 64) % 7 == 0 ? model[i] : i % 13);
	memset(zmodel + (8u << 20), 0, 1u << 20);
	ce_vol *v, *z;
	OK(ce_vol_open(p, "v", &v));
	OK(ce_vol_open(p, "z", &z));
	OK(ce_vol_write(v, model, VOLSIZE, 0));
	OK(ce_vol_write(z, zmodel, 8u << 20, 0));
	OK(ce_vol_write(z, zmodel + (9u << 20), VOLSIZE - (9u << 20), 9u << 20));
	ce_vol_close(v);
	ce_vol_close(z);
	OK(ce_pool_export(p));

	/* cold: reimported, the tree's indirect blocks loaded, the data not */
	OK(ce_pool_import(&path, 1, &o, &p));
	OK(ce_vol_open(p, "v", &v));
	OK(ce_vol_open(p, "z", &z));
	cold_tree(p, v, model);
	printf("cold tree: ok\n");
	ce_vol_close(v);
	ce_vol_close(z);
	OK(ce_pool_export(p));
	OK(ce_pool_import(&path, 1, &o, &p));
	OK(ce_vol_open(p, "v", &v));
	OK(ce_vol_open(p, "z", &z));
	large(p, v, model);
	large(p, z, zmodel);
	printf("large reads: ok\n");
	ce_vol_close(v);
	ce_vol_close(z);
	OK(ce_pool_export(p));
	OK(ce_pool_import(&path, 1, &o, &p));
	OK(ce_vol_open(p, "v", &v));
	OK(ce_vol_open(p, "z", &z));
	errors_in_the_middle(p, v, model);
	printf("errors in the middle: ok\n");
	ce_vol_close(v);
	ce_vol_close(z);
	OK(ce_pool_export(p));
	close_in_flight(path, &o, model);
	printf("close with reads in flight: ok\n");
	commit_in_the_way(path, &o, model);
	printf("a commit in the way of a later stage: ok\n");
	prefetch(path, &o, model);
	printf("prefetch: ok\n");
	OK(ce_pool_import(&path, 1, &o, &p));
	OK(ce_vol_open(p, "v", &v));
	OK(ce_vol_open(p, "z", &z));
	warm_tree(v);
	warm_tree(z);
	many_in_flight(p, v, model);
	printf("many in flight: ok\n");
	shapes(p, v, model);
	shapes(p, z, zmodel);
	printf("shapes (plain and lz4): ok\n");
	injected(p, v, model);
	printf("injected device errors: ok\n");
	dirty_and_holes(p, v, model);
	printf("dirty data and holes: ok\n");
	ce_vol_close(v);
	ce_vol_close(z);
	OK(ce_pool_export(p));

	damaged(path, &o);
	printf("damaged block: ok\n");
	reads_across_commits(path);
	commit_waits_for_read(path);
	printf("a commit waits for reads started under the old root: ok\n");
	no_uring_flag(path, model);
	refused_setup(path, model);
	printf("fallback: ok\n");
	free(model);
	free(zmodel);
	return 0;
}
