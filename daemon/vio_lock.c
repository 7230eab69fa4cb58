/*
 * vio_lock.c -- the volume range lock: a vio layer under the statistics layer of every
 * writable handle (docs/design-vio.md §9). COMPARE AND WRITE and OR WRITE (scsi.c), and a
 * replica repair, lock a byte range of the volume exclusively against every request of
 * every handle of the volume (NBD, iSCSI, the replication controller below).
 *
 * State: one lkvol per volume, keyed by (pool, dataset guid), shared by the volume's handles
 * (a reference each). Fields: `fast` (ranged requests admitted without the table), `active`
 * (locks pending or held), and under `mu` the lists `tracked` (requests admitted through the
 * table, in flight), `held` (granted locks) and `queue` (waiting locks and requests, FIFO).
 *
 * Invariants:
 *   1. A ranged request (READ, WRITE, TRIM, ZERO) without VIO_LOCKED goes down only when it
 *      overlaps no held lock; a lock is granted only when no request that overlaps it is in
 *      flight below. Fast path: submit increments `fast` then reads `active`; a locker
 *      increments `active` then reads `fast` (all seq_cst): one of them sees the other
 *      (lock_submit, lock_try_grant). A lock is granted only with `fast` == 0, and while
 *      `active` != 0 no request enters the fast path.
 *   2. Every waiter leaves the queue exactly once, in kick(), when it conflicts with nothing
 *      held or tracked and with no waiter queued before it (conflict: overlapping ranges, at
 *      least one a lock) -- nor with a waiter this same pass of kick released before it
 *      (still on its private list, not yet tracked or held). kick runs after every event that can make a waiter admissible: a
 *      tracked request's completion, an unlock, `fast` reaching 0 while `active` != 0.
 *   3. What kick releases is run outside `mu`, on a vio worker (vio_defer): a released
 *      request is passed down, a grant's callback is called. Nothing is run inside `mu`.
 *   4. A VIO_LOCKED request passes at once; it lies inside the range of the lock it names,
 *      which is held (VERIFY).
 *   5. Memory: requests are linked through their own vio_req.lkw; a lock is one allocation
 *      from vio_lock_range to vio_unlock (or vio_lock_withdraw); an lkvol lives while a handle
 *      of its volume is open.
 *   6. A waiter also leaves the queue when it is withdrawn (vio_withdraw, vio_lock_withdraw:
 *      the stall bound of docs/iscsi.md §9.3), under mu, so it is never also released by kick.
 *      A withdrawn request moves to `tracked` until its completion (slow_done, which kicks); a
 *      withdrawn lock is freed and kicks at once: what queued behind it may go.
 *   7. The counters of vio_lock_stats change only on the slow path (a queue, a grant, an
 *      unlock, a withdrawal); the fast path stays one atomic add and one load.
 */
#include "vio.h"
#include "vio_impl.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

enum { LKW_REQ = 1, LKW_LOCK = 2 };
enum { LK_QUEUED = 1, LK_HELD = 2 };

typedef struct lkvol lkvol;

struct vio_lock {
	vio_lkw w;
	lkvol *lv;
	int state;
	uint64_t queued_ns;      /* when it queued (0: granted at once) */
	void (*granted)(vio_lock *lk, void *arg);
	void *arg;
};

struct lkvol {
	ce_pool *pool;
	uint64_t guid;
	int refs;
	lkvol *next;
	_Atomic int64_t fast;
	_Atomic int64_t active;
	pthread_mutex_t mu;
	vio_lkw tracked, held, queue; /* list heads (circular, doubly linked) */
	size_t nqueued;
};

static pthread_mutex_t tab_lock = PTHREAD_MUTEX_INITIALIZER;
static lkvol *tab;

/* vio_lock_stats: daemon-wide, touched only off the fast path */
static _Atomic uint64_t st_granted, st_waited, st_wait_ns, st_req_waited, st_withdrawn;
static _Atomic int64_t st_held, st_queued;

void
vio_lock_stats_get(vio_lock_stats *out)
{
	out->granted = st_granted;
	out->waited = st_waited;
	out->wait_ns = st_wait_ns;
	out->req_waited = st_req_waited;
	out->withdrawn = st_withdrawn;
	int64_t h = st_held, q = st_queued;
	out->held = h > 0 ? (uint64_t)h : 0;
	out->queued = q > 0 ? (uint64_t)q : 0;
}

/* ---- lists ---- */

static void
l_init(vio_lkw *h)
{
	h->prev = h->next = h;
}

static void
l_add_tail(vio_lkw *h, vio_lkw *w)
{
	w->prev = h->prev;
	w->next = h;
	h->prev->next = w;
	h->prev = w;
}

static void
l_del(vio_lkw *w)
{
	w->prev->next = w->next;
	w->next->prev = w->prev;
	w->prev = w->next = NULL;
}

static int
overlap(const vio_lkw *a, const vio_lkw *b)
{
	return a->off < b->off + b->len && b->off < a->off + a->len;
}

static int
conflict(const vio_lkw *a, const vio_lkw *b)
{
	return (a->kind == LKW_LOCK || b->kind == LKW_LOCK) && overlap(a, b);
}

/* mu held: does w conflict with anything on list h (up to stop, exclusive)? */
static int
conflicts_in(const vio_lkw *h, const vio_lkw *stop, const vio_lkw *w)
{
	for (const vio_lkw *x = h->next; x != h && x != stop; x = x->next)
		if (conflict(x, w))
			return 1;
	return 0;
}

/* mu held (invariant 2): may w (queued, or about to be) be admitted now? */
static int
admissible(lkvol *lv, const vio_lkw *w, const vio_lkw *queued_before_stop)
{
	if (w->kind == LKW_LOCK && atomic_load(&lv->fast) != 0)
		return 0;
	if (conflicts_in(&lv->held, NULL, w))
		return 0;
	if (w->kind == LKW_LOCK && conflicts_in(&lv->tracked, NULL, w))
		return 0;
	return !conflicts_in(&lv->queue, queued_before_stop, w);
}

#define REQ_OF(p) ((vio_req *)((char *)(p) - offsetof(vio_req, lkw)))
#define LOCK_OF(p) ((vio_lock *)((char *)(p) - offsetof(vio_lock, w)))

static void
run_released_req(void *arg)
{
	vio_req *r = arg;
	vio_next(r->dev, r);
}

static void
run_grant(void *arg)
{
	vio_lock *lk = arg;
	lk->granted(lk, lk->arg);
}

/* Invariant 2 and 3: release every waiter that can go now, then run them outside mu. */
static void
kick(lkvol *lv)
{
	vio_lkw go;
	l_init(&go);
	pthread_mutex_lock(&lv->mu);
	vio_lkw *w = lv->queue.next;
	while (w != &lv->queue) {
		vio_lkw *nx = w->next;
		/* those released earlier in this pass are on `go`, not yet tracked or held: a
		 * waiter behind them must not pass a conflicting one (a lock granted together
		 * with an overlapping request released just before it broke CAW's atomicity) */
		if (admissible(lv, w, w) && !conflicts_in(&go, NULL, w)) {
			l_del(w);
			lv->nqueued--;
			l_add_tail(&go, w);
		}
		w = nx;
	}
	/* to tracked / held before mu is dropped, so later arrivals see them; vio_defer only
	 * queues the work (invariant 3: it runs on a worker, after mu is released) */
	while (go.next != &go) {
		vio_lkw *x = go.next;
		l_del(x);
		atomic_fetch_sub(&st_queued, 1);
		if (x->kind == LKW_LOCK) {
			atomic_fetch_add(&st_granted, 1);
			atomic_fetch_add(&st_waited, 1);
			atomic_fetch_add(&st_wait_ns, vio_now_ns() - LOCK_OF(x)->queued_ns);
			atomic_fetch_add(&st_held, 1);
			LOCK_OF(x)->state = LK_HELD;
			l_add_tail(&lv->held, x);
			vio_defer(run_grant, LOCK_OF(x));
		} else {
			l_add_tail(&lv->tracked, x);
			vio_defer(run_released_req, REQ_OF(x));
		}
	}
	pthread_mutex_unlock(&lv->mu);
}

static int
ranged(int op)
{
	return op == VIO_READ || op == VIO_WRITE || op == VIO_TRIM || op == VIO_ZERO;
}

static void
fast_put(lkvol *lv)
{
	if (atomic_fetch_sub(&lv->fast, 1) == 1 && atomic_load(&lv->active) != 0)
		kick(lv); /* a lock may be waiting for the fast path to drain (invariant 1) */
}

static void
fast_done(vio_req *r, void *arg)
{
	(void)r;
	fast_put(arg);
}

static void
slow_done(vio_req *r, void *arg)
{
	lkvol *lv = arg;
	pthread_mutex_lock(&lv->mu);
	l_del(&r->lkw);
	int waiters = lv->nqueued != 0;
	pthread_mutex_unlock(&lv->mu);
	if (waiters)
		kick(lv);
}

static void
lock_submit(vio_dev *d, vio_req *r)
{
	lkvol *lv = d->priv;
	if (!ranged(r->op) || r->len == 0) {
		vio_next(d, r);
		return;
	}
	if (r->flags & VIO_LOCKED) {
		/* invariant 4 */
		vio_lock *lk = r->lock;
		VERIFY(lk != NULL && lk->lv == lv && lk->state == LK_HELD);
		VERIFY(r->off >= lk->w.off && r->off + r->len <= lk->w.off + lk->w.len);
		vio_next(d, r);
		return;
	}
	atomic_fetch_add(&lv->fast, 1);
	if (atomic_load(&lv->active) == 0) {
		vio_push_done(r, fast_done, lv);
		vio_next(d, r);
		return;
	}
	fast_put(lv);
	r->lkw.off = r->off;
	r->lkw.len = r->len;
	r->lkw.kind = LKW_REQ;
	vio_push_done(r, slow_done, lv);
	pthread_mutex_lock(&lv->mu);
	if (admissible(lv, &r->lkw, NULL)) {
		l_add_tail(&lv->tracked, &r->lkw);
		pthread_mutex_unlock(&lv->mu);
		vio_next(d, r);
		return;
	}
	l_add_tail(&lv->queue, &r->lkw);
	lv->nqueued++;
	atomic_fetch_add(&st_req_waited, 1);
	atomic_fetch_add(&st_queued, 1);
	pthread_mutex_unlock(&lv->mu);
	/* the lock in the way may have gone between the check and now: nothing is lost, its
	 * unlock kicks under mu after we queued (it takes mu) */
}

int
vio_lock_range(vio_vol *v, uint64_t off, uint64_t len, void (*granted)(vio_lock *lk, void *arg), void *arg)
{
	vio_dev *d = vio_lock_dev(v);
	if (d == NULL)
		return -EROFS;
	if (len == 0 || off > vio_size(v) || len > vio_size(v) - off)
		return -EINVAL;
	lkvol *lv = d->priv;
	vio_lock *lk = xcalloc(1, sizeof(*lk));
	lk->lv = lv;
	lk->w.off = off;
	lk->w.len = len;
	lk->w.kind = LKW_LOCK;
	lk->granted = granted;
	lk->arg = arg;
	pthread_mutex_lock(&lv->mu);
	atomic_fetch_add(&lv->active, 1); /* invariant 1: before fast is read (in admissible) */
	if (admissible(lv, &lk->w, NULL)) {
		lk->state = LK_HELD;
		l_add_tail(&lv->held, &lk->w);
		atomic_fetch_add(&st_granted, 1);
		atomic_fetch_add(&st_held, 1);
		pthread_mutex_unlock(&lv->mu);
		granted(lk, arg);
		return 0;
	}
	lk->state = LK_QUEUED;
	lk->queued_ns = vio_now_ns();
	l_add_tail(&lv->queue, &lk->w);
	lv->nqueued++;
	atomic_fetch_add(&st_queued, 1);
	pthread_mutex_unlock(&lv->mu);
	/* the fast path may have drained between our increment and the check: its last
	 * decrement saw active != 0 and kicks; if it ran before we queued, kick now */
	if (atomic_load(&lv->fast) == 0)
		kick(lv);
	return 0;
}

void
vio_unlock(vio_lock *lk)
{
	lkvol *lv = lk->lv;
	pthread_mutex_lock(&lv->mu);
	VERIFY(lk->state == LK_HELD);
	l_del(&lk->w);
	atomic_fetch_sub(&lv->active, 1);
	atomic_fetch_sub(&st_held, 1);
	pthread_mutex_unlock(&lv->mu);
	free(lk);
	kick(lv);
}

/* ---- the per-volume table and the layer ---- */

static void
lock_close(vio_dev *d)
{
	lkvol *lv = d->priv;
	pthread_mutex_lock(&tab_lock);
	if (--lv->refs == 0) {
		for (lkvol **pp = &tab; *pp; pp = &(*pp)->next)
			if (*pp == lv) {
				*pp = lv->next;
				break;
			}
		/* the frontend closes a handle only once nothing of it is in flight; other handles
		 * are gone too, so nothing can be queued or held */
		VERIFY(lv->tracked.next == &lv->tracked && lv->held.next == &lv->held && lv->nqueued == 0);
		VERIFY(atomic_load(&lv->fast) == 0 && atomic_load(&lv->active) == 0);
		pthread_mutex_destroy(&lv->mu);
		free(lv);
	}
	pthread_mutex_unlock(&tab_lock);
}

/* invariant 6: r waits in the queue (for a lock in its way): withdrawn */
static int
lock_withdraw(vio_dev *d, vio_req *r)
{
	lkvol *lv = d->priv;
	int found = 0;
	pthread_mutex_lock(&lv->mu);
	for (vio_lkw *w = lv->queue.next; w != &lv->queue; w = w->next)
		if (w == &r->lkw) {
			l_del(w);
			lv->nqueued--;
			l_add_tail(&lv->tracked, w); /* slow_done takes it off when the caller completes it */
			atomic_fetch_sub(&st_queued, 1);
			atomic_fetch_add(&st_withdrawn, 1);
			found = 1;
			break;
		}
	pthread_mutex_unlock(&lv->mu);
	return found;
}

int
vio_lock_withdraw(vio_vol *v, void *arg)
{
	vio_dev *d = vio_lock_dev(v);
	if (d == NULL)
		return 0;
	lkvol *lv = d->priv;
	vio_lock *lk = NULL;
	pthread_mutex_lock(&lv->mu);
	for (vio_lkw *w = lv->queue.next; w != &lv->queue; w = w->next)
		if (w->kind == LKW_LOCK && LOCK_OF(w)->arg == arg) {
			lk = LOCK_OF(w);
			l_del(w);
			lv->nqueued--;
			atomic_fetch_sub(&lv->active, 1);
			atomic_fetch_sub(&st_queued, 1);
			atomic_fetch_add(&st_withdrawn, 1);
			break;
		}
	pthread_mutex_unlock(&lv->mu);
	if (lk == NULL)
		return 0;
	free(lk);
	kick(lv);
	return 1;
}

static const vio_layer_ops lock_ops = { "lock", lock_submit, lock_close, lock_withdraw };

vio_dev *
vio_lock_layer(vio_vol *v, vio_dev *below, ce_pool *pool, uint64_t guid)
{
	pthread_mutex_lock(&tab_lock);
	lkvol *lv = tab;
	while (lv != NULL && !(lv->pool == pool && lv->guid == guid))
		lv = lv->next;
	if (lv == NULL) {
		lv = xcalloc(1, sizeof(*lv));
		lv->pool = pool;
		lv->guid = guid;
		pthread_mutex_init(&lv->mu, NULL);
		l_init(&lv->tracked);
		l_init(&lv->held);
		l_init(&lv->queue);
		lv->next = tab;
		tab = lv;
	}
	lv->refs++;
	pthread_mutex_unlock(&tab_lock);
	vio_dev *d = xcalloc(1, sizeof(*d));
	d->ops = &lock_ops;
	d->next = below;
	d->vol = v;
	d->priv = lv;
	return d;
}
