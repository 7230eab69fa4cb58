/*
 * vio.c -- the volume IO interface: handles, the layer stack, completion,
 * the worker pool, and the engine layer at the bottom (docs/design-vio.md).
 *
 * Invariants:
 *   1. Every submitted request completes exactly once: vio_complete runs
 *      the hooks layers pushed (last pushed first), then the submitter's
 *      done. Nothing touches the request after done.
 *   2. The threads that make blocking engine calls are the W workers
 *      started by vio_init, for the whole daemon: their number never
 *      depends on how many volumes or connections are open.
 *   3. The engine layer checks every range and the read-only flag itself,
 *      so a frontend's mistake becomes an error completion, never an
 *      engine call out of bounds.
 *   4. A plain write (no FUA) completes in memory and runs in the thread
 *      that submits it, unless the pool has so much dirty data that it
 *      would wait for the sync thread (ce_vol_write_would_wait); that and
 *      anything that may wait on a device (FUA, flush, trim, zero, map)
 *      runs on a worker, so an event loop does not wait on the disk. A
 *      read or a prefetch (VIO_CACHE) is started asynchronously in the
 *      submitting thread (ce_vol_read_async, ce_vol_prefetch_async: its
 *      device reads go through the pool's io_uring ring and it completes
 *      on the engine's completion thread, or at once when nothing
 *      needed a device); only when that cannot start or go on without
 *      waiting (-EAGAIN, returned or given to the callback) does a
 *      worker read.
 *   5. A handle holds its volume (and so its pool) open from vio_open to
 *      vio_close; the frontend closes it only once nothing is in flight.
 */
#include "vio.h"
#include "vio_impl.h"
#include "log.h"
#include "registry.h"
#include "repl/ctrl.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct vio_vol {
	char name[4097];
	vio_dev *top;
	uint64_t size;
	uint32_t bs;
	unsigned caps;
	ce_vol *cv;
	ce_pool *cp;
	vio_dev engine;
	vio_dev *lockdev;        /* the range lock layer (vio_lock.c), NULL for a snapshot */
};

/* ---- the worker pool ---- */

typedef struct work {
	void (*fn)(void *arg);
	void *arg;
	struct work *next;
} work;

static pthread_mutex_t wlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wcv = PTHREAD_COND_INITIALIZER;
static work *whead, *wtail;
static int wstop;
static pthread_t *workers;
static int nworkers;
static int test_ops;

static void
work_push(work *w)
{
	w->next = NULL;
	pthread_mutex_lock(&wlock);
	if (wtail)
		wtail->next = w;
	else
		whead = w;
	wtail = w;
	pthread_cond_signal(&wcv);
	pthread_mutex_unlock(&wlock);
}

static void *
worker_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&wlock);
	for (;;) {
		while (whead == NULL && !wstop)
			pthread_cond_wait(&wcv, &wlock);
		work *w = whead;
		if (w == NULL)
			break;
		whead = w->next;
		if (whead == NULL)
			wtail = NULL;
		pthread_mutex_unlock(&wlock);
		w->fn(w->arg);
		pthread_mutex_lock(&wlock);
	}
	pthread_mutex_unlock(&wlock);
	return NULL;
}

typedef struct deferred {
	work w;
	void (*fn)(void *arg);
	void *arg;
} deferred;

static void
run_deferred(void *arg)
{
	deferred *d = arg;
	d->fn(d->arg);
	free(d);
}

void
vio_defer(void (*fn)(void *arg), void *arg)
{
	deferred *d = xmalloc(sizeof(*d));
	d->fn = fn;
	d->arg = arg;
	d->w.fn = run_deferred;
	d->w.arg = d;
	work_push(&d->w);
}

int
vio_init(const vio_config *cfg)
{
	int n = cfg && cfg->io_threads > 0 ? cfg->io_threads : 32;
	test_ops = cfg ? cfg->test_ops : 0;
	workers = xcalloc((size_t)n, sizeof(pthread_t));
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, 512u << 10);
	for (nworkers = 0; nworkers < n; nworkers++)
		if (pthread_create(&workers[nworkers], &a, worker_main, NULL) != 0)
			break;
	pthread_attr_destroy(&a);
	if (nworkers == 0)
		return err_set(-EAGAIN, "cannot start the IO worker threads");
	log_info("vio: %d IO worker threads%s", nworkers, test_ops ? ", test operations enabled" : "");
	return 0;
}

void
vio_quiesce(void)
{
	vio_fault_stop();
}

void
vio_shutdown(void)
{
	pthread_mutex_lock(&wlock);
	wstop = 1;
	pthread_cond_broadcast(&wcv);
	pthread_mutex_unlock(&wlock);
	for (int i = 0; i < nworkers; i++)
		pthread_join(workers[i], NULL);
	free(workers);
	workers = NULL;
	nworkers = 0;
	vio_stats_fini();
	vio_fault_fini();
}

int
vio_test_ops(void)
{
	return test_ops;
}

int
vio_worker_count(void)
{
	return nworkers;
}

/* ---- requests ---- */

uint64_t
vio_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

const char *
vio_op_name(int op)
{
	static const char *names[VIO_NOPS] = { "read", "write", "flush", "trim", "zero", "map", "cache" };
	return op >= 0 && op < VIO_NOPS ? names[op] : "unknown";
}

void
vio_push_done(vio_req *r, vio_hook_fn fn, void *arg)
{
	VERIFY(r->nhooks < VIO_MAX_HOOKS);
	r->hooks[r->nhooks].fn = fn;
	r->hooks[r->nhooks].arg = arg;
	r->nhooks++;
}

void
vio_complete(vio_req *r, int status, const char *msg)
{
	r->status = status;
	if (status != 0) {
		if (r->code == CE_E_NONE) /* the engine layer gives the engine's own code */
			r->code = ce_errcode_of(status);
		snprintf(r->msg, sizeof(r->msg), "%s", msg && *msg ? msg : strerror(-status));
	}
	while (r->nhooks > 0) {
		r->nhooks--;
		r->hooks[r->nhooks].fn(r, r->hooks[r->nhooks].arg);
	}
	r->done(r);
}

void
vio_next(vio_dev *d, vio_req *r)
{
	r->dev = d->next;
	d->next->ops->submit(d->next, r);
}

void
vio_submit(vio_vol *v, vio_req *r)
{
	r->start_ns = vio_now_ns();
	r->nhooks = 0;
	r->status = 0;
	r->code = CE_E_NONE;
	r->msg[0] = '\0';
	r->ext_n = 0;
	r->dev = v->top;
	v->top->ops->submit(v->top, r);
}

/* ---- the engine layer ---- */

typedef struct ejob {
	work w;
	vio_req *r;
	vio_vol *v;
} ejob;

static int
engine_run(vio_vol *v, vio_req *r)
{
	switch (r->op) {
	case VIO_READ:
		return ce_vol_read(v->cv, r->buf, r->len, r->off);
	case VIO_WRITE:
		if (r->blk != NULL) {
			void **blk = r->blk;
			r->blk = NULL; /* the engine's now, whatever it returns */
			return ce_vol_write_adopt(v->cv, blk, r->len / v->bs, r->off, (r->flags & VIO_FUA) ? CE_WRITE_FUA : 0);
		}
		return ce_vol_write_flags(v->cv, r->buf, r->len, r->off, (r->flags & VIO_FUA) ? CE_WRITE_FUA : 0);
	case VIO_FLUSH:
		return ce_vol_flush(v->cv);
	case VIO_TRIM:
	case VIO_ZERO: {
		/* Zeroing punches holes (as fast as it gets, so FAST_ZERO holds; NO_HOLE is a hint). */
		int err = r->op == VIO_TRIM ? ce_vol_trim(v->cv, r->off, r->len) : ce_vol_write_zeroes(v->cv, r->off, r->len);
		if (err == 0 && (r->flags & VIO_FUA))
			err = ce_vol_flush(v->cv);
		return err;
	}
	case VIO_MAP:
		return ce_vol_map(v->cv, r->off, r->len, r->ext, (r->flags & VIO_MAP_ONE) ? 1 : r->ext_max, &r->ext_n);
	case VIO_CACHE:
		/* every block read stays in the pool's block cache, however many missed */
		return ce_vol_prefetch(v->cv, r->off, r->len);
	default:
		return err_set(-EINVAL, "unknown request type %d", r->op);
	}
}

static void
engine_work(void *arg)
{
	ejob *j = arg;
	vio_req *r = j->r;
	vio_vol *v = j->v;
	free(j);
	err_clear();
	int err = engine_run(v, r);
	if (err != 0)
		r->code = ce_errcode();
	vio_complete(r, err, err ? ce_errmsg() : NULL);
}

static void
engine_to_worker(vio_vol *v, vio_req *r)
{
	ejob *j = xmalloc(sizeof(*j));
	j->r = r;
	j->v = v;
	j->w.fn = engine_work;
	j->w.arg = j;
	work_push(&j->w);
}

/* The asynchronous read's or prefetch's completion (the completion thread, or inline). */
static void
engine_read_done(void *arg, int err)
{
	vio_req *r = arg;
	char msg[VIO_MSG_MAX];
	if (err == -EAGAIN) {
		/* it could not go on without waiting (a commit in the way): a worker reads (invariant 4) */
		engine_to_worker(r->dev->vol, r);
		return;
	}
	if (err != 0)
		snprintf(msg, sizeof(msg), "%.96s: %s at %llu failed: %s", r->dev->vol->name,
		    r->op == VIO_CACHE ? "prefetch" : "read", (unsigned long long)r->off,
		    err == -EIO ? "checksum or IO error" : strerror(-err));
	vio_complete(r, err, err ? msg : NULL);
}

static void
engine_submit(vio_dev *d, vio_req *r)
{
	vio_vol *v = d->vol;
	int ranged = r->op != VIO_FLUSH;
	if (r->op >= VIO_NOPS) {
		vio_complete(r, -EINVAL, "unknown request type");
		return;
	}
	if (ranged && (r->off > v->size || r->len > v->size - r->off)) {
		vio_complete(r, r->op == VIO_WRITE || r->op == VIO_ZERO ? -ENOSPC : -EINVAL,
		    "range beyond the end of the volume");
		return;
	}
	if ((v->caps & VIO_CAP_READ_ONLY) && (r->op == VIO_WRITE || r->op == VIO_TRIM || r->op == VIO_ZERO)) {
		vio_complete(r, -EPERM, "the volume is read-only (a snapshot)");
		return;
	}
	if (r->blk != NULL && (r->op != VIO_WRITE || r->off % v->bs != 0 || r->len % v->bs != 0)) {
		vio_complete(r, -EINVAL, "block buffers for an unaligned range or not a write");
		return;
	}
	if ((r->op == VIO_READ || r->op == VIO_WRITE) && r->buf == NULL && r->blk == NULL && r->len > 0) {
		vio_complete(r, -EINVAL, "no buffer");
		return;
	}
	if (r->op == VIO_WRITE && !(r->flags & VIO_FUA) && !ce_vol_write_would_wait(v->cv)) {
		err_clear();
		int err = engine_run(v, r);
		if (err != 0)
			r->code = ce_errcode();
		vio_complete(r, err, err ? ce_errmsg() : NULL);
		return;
	}
	if (r->op == VIO_READ || r->op == VIO_CACHE) {
		/* invariant 4: device reads go to the ring; -EAGAIN (no ring, ...): a worker reads */
		int err = r->op == VIO_READ ? ce_vol_read_async(v->cv, r->buf, r->len, r->off, engine_read_done, r)
					    : ce_vol_prefetch_async(v->cv, r->off, r->len, engine_read_done, r);
		if (err == 0)
			return;
		if (err != -EAGAIN) {
			r->code = ce_errcode();
			vio_complete(r, err, ce_errmsg());
			return;
		}
	}
	engine_to_worker(v, r);
}

static void
engine_close(vio_dev *d)
{
	vio_vol *v = d->vol;
	reg_vol_close(v->cv, v->cp);
}

static const vio_layer_ops engine_ops = { "engine", engine_submit, engine_close };

/* ---- handles ---- */

vio_vol *
vio_open(const char *export_name, unsigned open_flags, int *errp)
{
	(void)open_flags;
	ce_vol *cv;
	ce_pool *cp;
	int err = reg_vol_open(export_name, &cv, &cp);
	if (err != 0) {
		*errp = err;
		return NULL;
	}
	vio_vol *v = xcalloc(1, sizeof(*v));
	snprintf(v->name, sizeof(v->name), "%s", export_name);
	v->cv = cv;
	v->cp = cp;
	v->size = ce_vol_size(cv);
	v->bs = ce_vol_blocksize(cv);
	v->caps = VIO_CAP_MAP | VIO_CAP_CACHE | VIO_CAP_MULTI_CONN;
	if (ce_vol_readonly(cv))
		v->caps |= VIO_CAP_READ_ONLY;
	else
		v->caps |= VIO_CAP_FLUSH | VIO_CAP_FUA | VIO_CAP_TRIM | VIO_CAP_ZERO | VIO_CAP_FAST_ZERO;
	v->engine.ops = &engine_ops;
	v->engine.vol = v;
	/* a replicated volume this caskd controls: the controller replaces the engine (ctrl.c) */
	vio_dev *top = repl_ctrl_layer(v, export_name, &v->engine, cp, cv);
	/* block buffers go only to the engine: no layer between them reads a WRITE's data */
	if (top == &v->engine && !test_ops && !(v->caps & VIO_CAP_READ_ONLY))
		v->caps |= VIO_CAP_ADOPT;
	if (test_ops)
		top = vio_fault_layer(v, top);
	if (!(v->caps & VIO_CAP_READ_ONLY)) {
		/* the range lock's table is the volume's, keyed by its dataset guid (§9) */
		ce_vol_info vi;
		err = ce_vol_info_get(cp, strchr(export_name, '/') + 1, &vi);
		if (err != 0) {
			v->top = top;
			vio_close(v);
			*errp = err;
			return NULL;
		}
		top = v->lockdev = vio_lock_layer(v, top, cp, vi.guid);
	}
	top = vio_stats_layer(v, top);
	v->top = top;
	*errp = 0;
	return v;
}

void
vio_close(vio_vol *v)
{
	if (v == NULL)
		return;
	vio_dev *d = v->top;
	while (d != NULL) {
		vio_dev *below = d->next;
		d->ops->close(d);
		if (d != &v->engine)
			free(d);
		d = below;
	}
	free(v);
}

vio_dev *
vio_lock_dev(vio_vol *v)
{
	return v->lockdev;
}

uint64_t
vio_size(const vio_vol *v)
{
	return v->size;
}

uint32_t
vio_block_size(const vio_vol *v)
{
	return v->bs;
}

unsigned
vio_caps(const vio_vol *v)
{
	return v->caps;
}

const char *
vio_name(const vio_vol *v)
{
	return v->name;
}
