/*
 * vio_stats.c -- the statistics layer of the volume IO stack
 * (docs/design-vio.md §3): per volume and per kind of request, counts,
 * bytes, errors, requests in flight and a latency histogram, read by the
 * vol.iostat control operation (ctl/iostat.c) and `cask vol iostat`.
 *
 * Invariants:
 *   1. The counters of a volume are shared by every handle (connection) of
 *      it and live from the first open until caskd exits: a table keyed by
 *      export name, entries never removed while caskd runs.
 *   2. The IO path takes no lock: counters are atomics, updated once when
 *      a request is submitted (in flight) and once when it completes.
 *   3. A request is counted when it completes, whatever its outcome:
 *      count and latency always, bytes only when it succeeded, errors when
 *      it did not.
 */
#include "vio.h"
#include "vio_impl.h"
#include "util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct vstats {
	char name[4097];
	vio_opstats op[VIO_NOPS];
	struct vstats *next;
} vstats;

static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static vstats *stats_all;

static vstats *
stats_find(const char *name, int create)
{
	pthread_mutex_lock(&stats_lock);
	vstats *s = stats_all;
	while (s != NULL && strcmp(s->name, name) != 0)
		s = s->next;
	if (s == NULL && create) {
		s = xcalloc(1, sizeof(*s));
		snprintf(s->name, sizeof(s->name), "%s", name);
		s->next = stats_all;
		stats_all = s;
	}
	pthread_mutex_unlock(&stats_lock);
	return s;
}

static void
stats_done(vio_req *r, void *arg)
{
	vio_opstats *o = arg;
	uint64_t ns = vio_now_ns() - r->start_ns;
	uint64_t us = ns / 1000;
	int b = us == 0 ? 0 : 63 - __builtin_clzll(us);
	if (b >= VIO_HIST_BUCKETS)
		b = VIO_HIST_BUCKETS - 1;
	atomic_fetch_sub_explicit(&o->in_flight, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&o->count, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&o->lat_ns, ns, memory_order_relaxed);
	atomic_fetch_add_explicit(&o->hist[b], 1, memory_order_relaxed);
	if (r->status != 0)
		atomic_fetch_add_explicit(&o->errors, 1, memory_order_relaxed);
	else if (r->op != VIO_FLUSH && r->op != VIO_MAP)
		atomic_fetch_add_explicit(&o->bytes, r->len, memory_order_relaxed);
}

static void
stats_submit(vio_dev *d, vio_req *r)
{
	vstats *s = d->priv;
	if (r->op < VIO_NOPS) {
		vio_opstats *o = &s->op[r->op];
		atomic_fetch_add_explicit(&o->in_flight, 1, memory_order_relaxed);
		vio_push_done(r, stats_done, o);
	}
	vio_next(d, r);
}

static void
stats_close(vio_dev *d)
{
	(void)d; /* the counters outlive the handle (invariant 1) */
}

static const vio_layer_ops stats_ops = { "stats", stats_submit, stats_close };

vio_dev *
vio_stats_layer(vio_vol *v, vio_dev *below)
{
	vio_dev *d = xcalloc(1, sizeof(*d));
	d->ops = &stats_ops;
	d->next = below;
	d->vol = v;
	d->priv = stats_find(vio_name(v), 1);
	return d;
}

static void snap_ops(vstats *s, vio_opstats_snap out[VIO_NOPS]);

int
vio_stats_get(const char *name, vio_opstats_snap out[VIO_NOPS])
{
	memset(out, 0, sizeof(vio_opstats_snap) * VIO_NOPS);
	vstats *s = stats_find(name, 0);
	if (s == NULL)
		return 0;
	snap_ops(s, out);
	return 1;
}

static void
snap_ops(vstats *s, vio_opstats_snap out[VIO_NOPS])
{
	for (int i = 0; i < VIO_NOPS; i++) {
		vio_opstats *o = &s->op[i];
		out[i].count = atomic_load(&o->count);
		out[i].bytes = atomic_load(&o->bytes);
		out[i].errors = atomic_load(&o->errors);
		out[i].lat_ns = atomic_load(&o->lat_ns);
		int64_t f = atomic_load(&o->in_flight);
		out[i].in_flight = f > 0 ? (uint64_t)f : 0;
		for (int b = 0; b < VIO_HIST_BUCKETS; b++)
			out[i].hist[b] = atomic_load(&o->hist[b]);
	}
}

/*
 * The list only grows at its head and its entries stay until vio_stats_fini
 * (invariant 1), so the walk needs the lock only to read the head: what is
 * behind it was complete before it was linked.
 */
size_t
vio_stats_each(int (*fn)(const char *name, const vio_opstats_snap st[VIO_NOPS], void *arg), void *arg)
{
	pthread_mutex_lock(&stats_lock);
	vstats *s = stats_all;
	pthread_mutex_unlock(&stats_lock);
	size_t n = 0;
	vio_opstats_snap *st = xcalloc(VIO_NOPS, sizeof(*st));
	for (; s != NULL; s = s->next, n++) {
		snap_ops(s, st);
		if (fn(s->name, st, arg) != 0)
			break;
	}
	free(st);
	return n;
}

void
vio_stats_fini(void)
{
	pthread_mutex_lock(&stats_lock);
	while (stats_all != NULL) {
		vstats *s = stats_all;
		stats_all = s->next;
		free(s);
	}
	pthread_mutex_unlock(&stats_lock);
}
