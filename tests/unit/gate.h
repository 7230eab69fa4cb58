/*
 * gate.h -- for the *_lost_txg unit tests: a backend that stops a txg's
 * sync in the middle, and a copy of a pool file as a crash would leave it.
 *
 * wrap() (a ce_pool_opts backend wrapper) passes IO through until the
 * gate closes: close_after > 0 closes it after that many more flushes;
 * while closed, writes wait at the gate (wait_at_gate() returns once one
 * does) until gate_open(). copy_file() copies a vdev file byte for byte
 * while the sync is stopped there.
 *
 * The tests share one crash (gate_crash): change A's txg t is stopped in
 * its first write; meanwhile (txg t + 1) the test writes and makes change
 * B; t is let go until its uberblock is flushed and t + 1 is stopped
 * before it writes anything; the pool file copied then is what a crash
 * there leaves. A must be in the copy (its caller was told it was
 * durable); B and the writes before it must not.
 */
#ifndef CASK_TEST_GATE_H
#define CASK_TEST_GATE_H

#include <fcntl.h>
#include <pthread.h>

#include "t.h"

typedef struct gate_be {
	ce_backend be;
	ce_backend *inner;
} gate_be;

static pthread_mutex_t gl = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gcv = PTHREAD_COND_INITIALIZER;
static int closed;       /* writes wait while set */
static int waiting;      /* a write is waiting at the gate */
static int close_after;  /* close the gate after this many more flushes (-1: never) */

static int
g_pread(ce_backend *be, void *buf, size_t len, uint64_t off)
{
	gate_be *g = (gate_be *)be;
	return g->inner->pread(g->inner, buf, len, off);
}

static int
g_pwritev(ce_backend *be, const struct iovec *iov, int n, uint64_t off)
{
	gate_be *g = (gate_be *)be;
	pthread_mutex_lock(&gl);
	while (closed) {
		waiting = 1;
		pthread_cond_broadcast(&gcv);
		pthread_cond_wait(&gcv, &gl);
	}
	waiting = 0;
	pthread_mutex_unlock(&gl);
	return g->inner->pwritev(g->inner, iov, n, off);
}

static int
g_flush(ce_backend *be)
{
	gate_be *g = (gate_be *)be;
	int r = g->inner->flush(g->inner);
	pthread_mutex_lock(&gl);
	if (close_after > 0 && --close_after == 0)
		closed = 1;
	pthread_mutex_unlock(&gl);
	return r;
}

static void
g_close(ce_backend *be)
{
	gate_be *g = (gate_be *)be;
	g->inner->close(g->inner);
	free(g);
}

static ce_backend *
wrap(ce_backend *inner, unsigned idx, void *arg)
{
	(void)idx;
	(void)arg;
	gate_be *g = calloc(1, sizeof(*g));
	g->inner = inner;
	g->be = (ce_backend){ g_pread, g_pwritev, g_flush, g_close, inner->size };
	return &g->be;
}

static void
wait_at_gate(void)
{
	pthread_mutex_lock(&gl);
	while (!waiting)
		pthread_cond_wait(&gcv, &gl);
	pthread_mutex_unlock(&gl);
}

static void
gate_close(void)
{
	pthread_mutex_lock(&gl);
	closed = 1;
	close_after = -1;
	pthread_mutex_unlock(&gl);
}

/* Lets the waiting writes go; then_close_after > 0 closes the gate again after that many flushes. */
static void
gate_open(int then_close_after)
{
	pthread_mutex_lock(&gl);
	waiting = 0;
	closed = 0;
	close_after = then_close_after;
	pthread_cond_broadcast(&gcv);
	pthread_mutex_unlock(&gl);
}

static ce_pool *pool; /* the pool under test (gate_setup) */

/*
 * pool: a one-vdev pool at path whose IO goes through the gate and whose
 * txgs commit only when asked, with 1 MiB volumes v and (with_w) w.
 */
static void
gate_setup(const char *path, int with_w)
{
	ce_pool_opts o;
	memset(&o, 0, sizeof(o));
	o.vdev_size = 64ull << 20;
	o.txg_timeout_ms = 600000; /* txgs commit only when asked */
	o.flags = CE_BE_NODIRECT;  /* the copy reads what was written through the page cache */
	o.wrap = wrap;
	OK(ce_pool_create("tank", &path, 1, &o, &pool));
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	OK(ce_vol_create(pool, "v", 1 << 20, &pr));
	if (with_w)
		OK(ce_vol_create(pool, "w", 1 << 20, &pr));
}

/* The pool file at path imported (a copy: what the crash left). */
static ce_pool *
gate_import(const char *path)
{
	ce_pool_opts io;
	memset(&io, 0, sizeof(io));
	ce_pool *c;
	OK(ce_pool_import(&path, 1, &io, &c));
	return c;
}

/* Block 0 of vol filled from seed: a dirty block, so that the next txg's sync writes (and stops at the gate) before its records. */
static void
gate_write(ce_pool *p, const char *vol, int seed)
{
	ce_vol *v;
	OK(ce_vol_open(p, vol, &v));
	uint8_t blk[4096];
	t_fill(blk, sizeof(blk), seed);
	OK(ce_vol_write(v, blk, sizeof(blk), 0));
	ce_vol_close(v);
}

/* before_b of gate_crash: what B's thread wrote before B, in txg t + 1 as B is (gate_zero(c, "w") after the crash) */
static void
gate_write_w(void)
{
	gate_write(pool, "w", 2);
}

/* 1 when block 0 of vol in p reads as zeros (never written, or its write lost with its txg). */
static int
gate_zero(ce_pool *p, const char *vol)
{
	ce_vol *v;
	uint8_t got[4096], zero[4096];
	memset(zero, 0, sizeof(zero));
	OK(ce_vol_open(p, vol, &v));
	OK(ce_vol_read(v, got, sizeof(got), 0));
	ce_vol_close(v);
	return memcmp(got, zero, sizeof(got)) == 0;
}

static void
copy_file(const char *from, const char *to)
{
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(in >= 0 && out >= 0);
	static uint8_t buf[1 << 20];
	ssize_t n;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		CHECK(write(out, buf, (size_t)n) == n);
	CHECK(n == 0);
	close(in);
	close(out);
}

/*
 * The crash of the header comment, made with the gate open and a block
 * written first (gate_write, so that t stops before it writes any
 * record). a(aarg) is change A, run on its own thread;
 * before_b() runs once A's txg is stopped; b(barg) is change B, on its own
 * thread too, and b_shows(barg) says when B is in memory. copy NULL: no
 * crash, t and t + 1 both commit.
 */
static void
gate_crash(const char *path, const char *copy, void *(*a)(void *), void *aarg, void (*before_b)(void),
    void *(*b)(void *), void *barg, int (*b_shows)(void *))
{
	pthread_t ta, tb;
	gate_close();
	pthread_create(&ta, NULL, a, aarg);
	wait_at_gate(); /* txg t syncs, its first write waits */
	if (before_b != NULL)
		before_b();
	pthread_create(&tb, NULL, b, barg);
	while (!b_shows(barg))
		usleep(1000);
	if (copy != NULL) {
		gate_open(2); /* t's uberblock is durable after its second flush; then t + 1 stops */
		pthread_join(ta, NULL); /* told: A is durable */
		copy_file(path, copy);  /* a crash now */
		gate_open(-1);
	} else {
		gate_open(-1);
		pthread_join(ta, NULL);
	}
	pthread_join(tb, NULL);
}

#endif
