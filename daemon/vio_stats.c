/*
 * vio_stats.c -- the statistics layer of the volume IO stack
 * (docs/design-vio.md §3): per volume and per kind of request, counts,
 * bytes, errors, requests in flight and a latency histogram, read by the
 * vol.iostat control operation (ctl/iostat.c) and `cask vol iostat`.
 *
 * Invariants:
 *   1. The counters of a volume are shared by every handle (connection) of
 *      it and live from the first open while a handle is open, and after
 *      the last close until the volume is destroyed, renamed or its pool
 *      exported (vio_stats_forget), or STATS_IDLE_MAX other volumes' idle
 *      counters are newer (least recently closed first): the table is
 *      bounded by the open volumes plus STATS_IDLE_MAX, whatever names
 *      clients come and go with (issue 17).
 *   2. The IO path takes no lock: counters are atomics, updated once when
 *      a request is submitted (in flight) and once when it completes. An
 *      entry is freed only with no handle open (so nothing in flight).
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

#define STATS_IDLE_MAX 256 /* about 6 KiB each */

typedef struct vstats {
	char name[4097];
	vio_opstats op[VIO_NOPS];
	int refs;                /* open handles (stats_lock) */
	int listed;              /* on stats_all: found by name (stats_lock) */
	struct vstats *next, *prev;           /* stats_all */
	struct vstats *idle_next, *idle_prev; /* idle list, oldest first (refs == 0) */
} vstats;

static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static vstats *stats_all;
static vstats *idle_head, *idle_tail;
static size_t nidle, nentries;

static void
idle_unlink(vstats *s)
{
	if (s->idle_prev)
		s->idle_prev->idle_next = s->idle_next;
	else
		idle_head = s->idle_next;
	if (s->idle_next)
		s->idle_next->idle_prev = s->idle_prev;
	else
		idle_tail = s->idle_prev;
	s->idle_next = s->idle_prev = NULL;
	nidle--;
}

static void
unlist(vstats *s)
{
	if (!s->listed)
		return;
	if (s->prev)
		s->prev->next = s->next;
	else
		stats_all = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->next = s->prev = NULL;
	s->listed = 0;
}

/* stats_lock held; s has no handle open */
static void
entry_free(vstats *s)
{
	if (s->listed)
		idle_unlink(s);
	unlist(s);
	nentries--;
	free(s);
}

/* stats_lock held */
static vstats *
lookup(const char *name)
{
	vstats *s = stats_all;
	while (s != NULL && strcmp(s->name, name) != 0)
		s = s->next;
	return s;
}

/* A handle opens: its volume's counters (created, or taken off the idle list). */
static vstats *
stats_open(const char *name)
{
	pthread_mutex_lock(&stats_lock);
	vstats *s = lookup(name);
	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		snprintf(s->name, sizeof(s->name), "%s", name);
		s->next = stats_all;
		if (stats_all)
			stats_all->prev = s;
		stats_all = s;
		s->listed = 1;
		nentries++;
	} else if (s->refs == 0) {
		idle_unlink(s);
	}
	s->refs++;
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
	vstats *s = d->priv;
	pthread_mutex_lock(&stats_lock);
	if (--s->refs == 0) {
		if (!s->listed) { /* forgotten while open */
			nentries--;
			free(s);
		} else {
			s->idle_prev = idle_tail;
			if (idle_tail)
				idle_tail->idle_next = s;
			else
				idle_head = s;
			idle_tail = s;
			nidle++;
			while (nidle > STATS_IDLE_MAX)
				entry_free(idle_head);
		}
	}
	pthread_mutex_unlock(&stats_lock);
}

static const vio_layer_ops stats_ops = { "stats", stats_submit, stats_close, NULL };

vio_dev *
vio_stats_layer(vio_vol *v, vio_dev *below)
{
	vio_dev *d = xcalloc(1, sizeof(*d));
	d->ops = &stats_ops;
	d->next = below;
	d->vol = v;
	d->priv = stats_open(vio_name(v));
	return d;
}

static void snap_ops(vstats *s, vio_opstats_snap out[VIO_NOPS]);

int
vio_stats_get(const char *name, vio_opstats_snap out[VIO_NOPS])
{
	memset(out, 0, sizeof(vio_opstats_snap) * VIO_NOPS);
	pthread_mutex_lock(&stats_lock); /* the entry cannot be freed meanwhile */
	vstats *s = lookup(name);
	if (s != NULL)
		snap_ops(s, out);
	pthread_mutex_unlock(&stats_lock);
	return s != NULL;
}

/* stats_lock held (the entry is not freed meanwhile); the counters are read atomically. */
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

void
vio_stats_forget(const char *name)
{
	size_t n = strlen(name);
	pthread_mutex_lock(&stats_lock);
	for (vstats *s = stats_all, *nx; s != NULL; s = nx) {
		nx = s->next;
		if (strncmp(s->name, name, n) != 0 || (s->name[n] != '\0' && s->name[n] != '@' && s->name[n] != '/'))
			continue;
		if (s->refs == 0)
			entry_free(s);
		else
			unlist(s); /* freed at its last close; a new open starts afresh */
	}
	pthread_mutex_unlock(&stats_lock);
}

size_t
vio_stats_count(void)
{
	pthread_mutex_lock(&stats_lock);
	size_t n = nentries;
	pthread_mutex_unlock(&stats_lock);
	return n;
}

/*
 * Entries are freed on forget and when the idle list overflows
 * (invariant 1), so the walk holds stats_lock throughout: the table is
 * bounded (open volumes plus STATS_IDLE_MAX), fn only copies, and the IO
 * path takes no lock (invariant 2), so no request waits for a scrape.
 */
size_t
vio_stats_each(int (*fn)(const char *name, const vio_opstats_snap st[VIO_NOPS], void *arg), void *arg)
{
	size_t n = 0;
	vio_opstats_snap *st = xcalloc(VIO_NOPS, sizeof(*st));
	pthread_mutex_lock(&stats_lock);
	for (vstats *s = stats_all; s != NULL; s = s->next, n++) {
		snap_ops(s, st);
		if (fn(s->name, st, arg) != 0)
			break;
	}
	pthread_mutex_unlock(&stats_lock);
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
	idle_head = idle_tail = NULL;
	nidle = nentries = 0;
	pthread_mutex_unlock(&stats_lock);
}
