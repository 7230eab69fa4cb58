/*
 * gate.h -- for the *_lost_txg unit tests: a backend that stops a txg's
 * sync in the middle, and a copy of a pool file as a crash would leave it.
 *
 * wrap() (a ce_pool_opts backend wrapper) passes IO through until the
 * gate closes: close_after > 0 closes it after that many more flushes;
 * while closed, writes wait at the gate (wait_at_gate() returns once one
 * does) until the test sets closed = 0 and broadcasts gcv. copy_file()
 * copies a vdev file byte for byte while the sync is stopped there.
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
#endif
