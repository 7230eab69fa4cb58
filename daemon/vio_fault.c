/*
 * vio_fault.c -- the fault/delay layer of the volume IO stack, for tests
 * (docs/design-vio.md §3). In the stack only when caskd runs with
 * --test-ops; driven by the test.vio_fault control operation (ctl/iostat.c).
 *
 * A volume has at most one rule: which kinds of request it matches, what
 * it does to them (fail with an errno, delay, or stall: hold until
 * released), and whether it hits every matching request or exactly the
 * Nth one from when it was set.
 *
 * Invariants:
 *   1. A rule with nth = N acts on exactly one request: the Nth that
 *      matches after it was set (counted under the volume's lock, so
 *      requests of several connections are numbered once each).
 *   2. A held request is passed down unchanged when released; it is never
 *      dropped. held counts the requests held now, max_held the most held
 *      at once since the rule was set (what a test reads to see how many
 *      requests were in flight together, without a clock).
 *   3. State is per export name, shared by all handles, freed at exit.
 *   4. vio_withdraw takes a held or sleeping (delayed) request back unless the rule was set
 *      `pinned` (a request the backend has begun): under the volume's lock, so a withdrawn
 *      request is never also passed down; a delayed one's sleeper then only frees its record.
 */
#include "vio.h"
#include "vio_impl.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct held {
	vio_dev *d;
	vio_req *r;
	int pinned;
	struct held *next;
} held;

typedef struct delayed delayed;

typedef struct fstate {
	char name[4097];
	pthread_mutex_t lock;
	vio_fault_rule rule;
	vio_fault_status st;
	held *held_head, **held_tail;
	delayed *sleeping;       /* DELAY: requests asleep on a worker (invariant 4) */
	struct fstate *next;
} fstate;

static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER;
static fstate *fault_all;
static atomic_int no_stalls; /* caskd is stopping: nothing is held any more */

static fstate *
fault_find(const char *name)
{
	pthread_mutex_lock(&fault_lock);
	fstate *f = fault_all;
	while (f != NULL && strcmp(f->name, name) != 0)
		f = f->next;
	if (f == NULL) {
		f = xcalloc(1, sizeof(*f));
		snprintf(f->name, sizeof(f->name), "%s", name);
		pthread_mutex_init(&f->lock, NULL);
		f->held_tail = &f->held_head;
		f->next = fault_all;
		fault_all = f;
	}
	pthread_mutex_unlock(&fault_lock);
	return f;
}

struct delayed {
	vio_dev *d;
	vio_req *r;              /* NULL once withdrawn */
	uint64_t us;
	int pinned;
	delayed *next;
};

static void
delay_then_pass(void *arg)
{
	delayed *x = arg;
	fstate *f = x->d->priv;
	struct timespec ts = { (time_t)(x->us / 1000000), (long)(x->us % 1000000) * 1000 };
	nanosleep(&ts, NULL);
	pthread_mutex_lock(&f->lock);
	for (delayed **pp = &f->sleeping; *pp != NULL; pp = &(*pp)->next)
		if (*pp == x) {
			*pp = x->next;
			break;
		}
	f->st.delaying--;
	vio_req *r = x->r;
	pthread_mutex_unlock(&f->lock);
	if (r != NULL)
		vio_next(x->d, r);
	free(x);
}

static void
fault_submit(vio_dev *d, vio_req *r)
{
	fstate *f = d->priv;
	pthread_mutex_lock(&f->lock);
	vio_fault_rule ru = f->rule;
	int act = VIO_FAULT_NONE;
	if (ru.action != VIO_FAULT_NONE && r->op < VIO_NOPS && (ru.kinds & (1u << r->op))) {
		f->st.matched++;
		if (ru.nth == 0 || f->st.matched == ru.nth)
			act = ru.action;
	}
	if (act == VIO_FAULT_STALL && atomic_load(&no_stalls))
		act = VIO_FAULT_NONE;
	if (act != VIO_FAULT_NONE)
		f->st.injected++;
	if (act == VIO_FAULT_STALL) {
		held *h = xmalloc(sizeof(*h));
		h->d = d;
		h->r = r;
		h->pinned = ru.pinned;
		h->next = NULL;
		*f->held_tail = h;
		f->held_tail = &h->next;
		f->st.held++;
		if (f->st.held > f->st.max_held)
			f->st.max_held = f->st.held;
	}
	pthread_mutex_unlock(&f->lock);
	switch (act) {
	case VIO_FAULT_FAIL:
		vio_complete(r, ru.err, "injected fault (test.vio_fault)");
		break;
	case VIO_FAULT_DELAY: {
		delayed *x = xmalloc(sizeof(*x));
		x->d = d;
		x->r = r;
		x->us = ru.delay_us;
		x->pinned = ru.pinned;
		pthread_mutex_lock(&f->lock);
		x->next = f->sleeping;
		f->sleeping = x;
		f->st.delaying++;
		pthread_mutex_unlock(&f->lock);
		vio_defer(delay_then_pass, x);
		break;
	}
	case VIO_FAULT_STALL:
		break; /* passed down by vio_fault_release */
	default:
		vio_next(d, r);
	}
}

static void
fault_close(vio_dev *d)
{
	(void)d;
}

/* invariant 4 */
static int
fault_withdraw(vio_dev *d, vio_req *r)
{
	fstate *f = d->priv;
	int found = 0;
	pthread_mutex_lock(&f->lock);
	for (held **pp = &f->held_head; *pp != NULL; pp = &(*pp)->next) {
		held *h = *pp;
		if (h->r != r)
			continue;
		if (!h->pinned) {
			*pp = h->next;
			if (f->held_tail == &h->next)
				f->held_tail = pp;
			free(h);
			f->st.held--;
			f->st.withdrawn++;
			found = 1;
		}
		break;
	}
	for (delayed *x = f->sleeping; x != NULL && !found; x = x->next)
		if (x->r == r) {
			if (!x->pinned) {
				x->r = NULL;
				f->st.withdrawn++;
				found = 1;
			}
			break;
		}
	pthread_mutex_unlock(&f->lock);
	return found;
}

static const vio_layer_ops fault_ops = { "fault", fault_submit, fault_close, fault_withdraw };

vio_dev *
vio_fault_layer(vio_vol *v, vio_dev *below)
{
	vio_dev *d = xcalloc(1, sizeof(*d));
	d->ops = &fault_ops;
	d->next = below;
	d->vol = v;
	d->priv = fault_find(vio_name(v));
	return d;
}

void
vio_fault_set(const char *name, const vio_fault_rule *rule)
{
	fstate *f = fault_find(name);
	pthread_mutex_lock(&f->lock);
	f->rule = *rule;
	f->st.matched = f->st.injected = f->st.withdrawn = 0;
	f->st.max_held = f->st.held;
	pthread_mutex_unlock(&f->lock);
}

uint64_t
vio_fault_release(const char *name)
{
	fstate *f = fault_find(name);
	pthread_mutex_lock(&f->lock);
	held *h = f->held_head;
	f->held_head = NULL;
	f->held_tail = &f->held_head;
	uint64_t n = f->st.held;
	f->st.released += n;
	f->st.held = 0;
	pthread_mutex_unlock(&f->lock);
	while (h != NULL) {
		held *nx = h->next;
		vio_next(h->d, h->r);
		free(h);
		h = nx;
	}
	return n;
}

void
vio_fault_get(const char *name, vio_fault_status *st)
{
	fstate *f = fault_find(name);
	pthread_mutex_lock(&f->lock);
	*st = f->st;
	pthread_mutex_unlock(&f->lock);
}

void
vio_fault_stop(void)
{
	atomic_store(&no_stalls, 1);
	for (;;) {
		pthread_mutex_lock(&fault_lock);
		fstate *f = fault_all;
		while (f != NULL && f->held_head == NULL)
			f = f->next;
		pthread_mutex_unlock(&fault_lock);
		if (f == NULL)
			break;
		vio_fault_release(f->name);
	}
}

void
vio_fault_fini(void)
{
	pthread_mutex_lock(&fault_lock);
	while (fault_all != NULL) {
		fstate *f = fault_all;
		fault_all = f->next;
		while (f->held_head != NULL) {
			held *h = f->held_head;
			f->held_head = h->next;
			free(h);
		}
		pthread_mutex_destroy(&f->lock);
		free(f);
	}
	pthread_mutex_unlock(&fault_lock);
}
