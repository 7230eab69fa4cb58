/*
 * aread.c -- asynchronous block reads through io_uring.
 *
 * Owns each pool's read ring (struct aread): the io_uring instance, the
 * queue of device reads waiting for ring space, the count of batches in
 * flight, and the completion thread that verifies what the device
 * returned. A batch (aread_batch) is a set of blocks one caller wants;
 * it becomes runs (physically contiguous blocks on one vdev, at most
 * AR_MAX_RUN bytes), each run one IORING_OP_READ. docs/design-vio.md §8.
 *
 * State of a run (the function for each transition):
 *   queued    (ar_queue: waiting for a ring entry, in ar->qhead)
 *   -> in ring (pump: an SQE is prepared; ar->ring_used counts it)
 *   -> back to queued (run_done: short read, -EAGAIN or -EINTR: the rest)
 *   -> done   (run_done: every block verified, or the run failed)
 * A batch is finished (batch_finish) when its last run is done.
 *
 * Invariants:
 *   1. A caller never sees bytes that do not match their checksum as
 *      data: each block of a run is verified (and decompressed) on the
 *      completion thread before fn runs, and a mismatch makes the batch
 *      fail with -EIO (counted in cksum_errors; a device error in
 *      io_errors), as blk_read does.
 *   2. fn runs exactly once per submitted batch, on the completion
 *      thread, after the batch stopped counting in ar->inflight.
 *   3. A batch counts in ar->inflight from aread_submit (its submitter
 *      still holding free_lock for reading) until its reads are
 *      verified; aread_drain (free_lock held for writing) waits for zero,
 *      so space freed by a commit is never reused while a read started
 *      under an older root is still reading it (txg.c invariant 2).
 *   4. At most AR_RING reads are in the kernel at once (ring_used); the
 *      rest wait in the queue, so the completion ring cannot overflow.
 *   5. The SQ side of the ring is touched only under ar->lock; the CQ
 *      side only by the completion thread. The completion thread never
 *      waits for free_lock or pool->lock: a batch's fn that runs the
 *      next stage of an asynchronous request (vol.c, invariant C) only
 *      tries free_lock, and takes v->lock, which no holder keeps while
 *      it waits for this thread.
 *   6. An injected read fault (fault.c) is asked once per run, as the
 *      backend's pread would be, and a failing run returns no data: it
 *      goes through the ring as a no-op and completes with -EIO.
 *   7. A read-ahead batch (aread_batch_prefetch; vol.c's read-ahead) has
 *      no caller buffers (dst NULL): each block it reads is verified
 *      like any other and only then put in the cache; a block that fails
 *      verification is counted (cksum_errors, ra_failed) and left out,
 *      so the reader who wants it reads it again and gets -EIO
 *      (invariant 1). It always fills the cache: the cache's budget is
 *      the bound on the memory read-ahead holds once the batch is done.
 *      A read-ahead (AREAD_RA) block goes in with cache_put_ra, so its
 *      hit or its waste is counted (cache.c invariant 4).
 */
#include "aread.h"
#include "blkio.h"
#include "bufpool.h"
#include "fault.h"
#include "pool_impl.h"
#include "util.h"

#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AR_RING 256u         /* ring entries: device reads in the kernel at once */
#define AR_MAX_RUN (1u << 20) /* bytes per device read */
#define AR_CACHE_MAX 8u      /* batches that miss more blocks do not fill the cache (blkio.c invariant 5) */
#define AR_REAP 64u

typedef struct ar_item {
	bp_phys bp;
	uint8_t *dst;
	uint32_t off, len;   /* slice of the logical block wanted */
} ar_item;

enum { RAW_DIRECT, RAW_POOL, RAW_HEAP };

typedef struct ar_run {
	aread_batch *b;
	uint32_t vdev;
	uint64_t off;        /* device offset of the run */
	uint32_t len;
	uint32_t done;       /* bytes read so far (a short read continues) */
	uint8_t *raw;
	int raw_kind;
	int fault;           /* an injected fault: fail without data */
	size_t first, n;     /* items of the run */
	uint64_t seq;        /* order of submission (the test hook releases by it) */
	struct ar_run *qnext;
} ar_run;

struct aread_batch {
	ce_pool *p;
	aread_done_fn fn;
	void *arg;
	ar_item *items;
	size_t n, cap;
	ar_run *runs;
	size_t nruns, left;  /* runs not yet done (completion thread) */
	int err;
	int cache_fill;
	int prefetch;        /* AREAD_RA, AREAD_TREE, AREAD_FILL: fills the cache only (invariant 7); 0: a read */
};

typedef struct ar_parked {
	ar_run *run;
	int res;
} ar_parked;

struct aread {
	int ok;              /* a ring and a completion thread */
	char why[160];       /* when not: why */
	struct io_uring ring;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cv;   /* inflight reached 0; parked changed */
	ar_run *qhead, *qtail; /* lock */
	unsigned ring_used;  /* lock */
	uint64_t inflight;   /* batches (lock) */
	uint64_t seq;        /* runs submitted (lock) */
	uint64_t drain_waits; /* aread_drain calls that had to wait (lock; a test hook reads it) */
	/* test hook: park finished reads (lock) */
	int hold;
	ar_parked *parked;
	size_t nparked, capparked;
	/* counters */
	_Atomic uint64_t requests, inline_done, fallbacks, device_reads, ring_max;
	_Atomic uint64_t ra_batches, ra_blocks, ra_failed;
	_Atomic uint64_t tree_reads, fill_blocks;
	_Atomic uint64_t ra_bytes;
};

static int
item_cmp(const void *a, const void *b)
{
	const bp_phys *x = &((const ar_item *)a)->bp, *y = &((const ar_item *)b)->bp;
	if (x->bp_vdev != y->bp_vdev)
		return x->bp_vdev < y->bp_vdev ? -1 : 1;
	return x->bp_offset < y->bp_offset ? -1 : x->bp_offset > y->bp_offset;
}

/* ---- the submit side (ar->lock) ---- */

static void
ar_queue(aread *ar, ar_run *r)
{
	r->qnext = NULL;
	if (ar->qtail)
		ar->qtail->qnext = r;
	else
		ar->qhead = r;
	ar->qtail = r;
}

/* Move queued runs into the ring while it has room, and submit them (ar->lock held). */
static void
pump(ce_pool *p, aread *ar)
{
	unsigned added = 0;
	while (ar->qhead != NULL && ar->ring_used < AR_RING) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ar->ring);
		if (sqe == NULL)
			break; /* entries prepared and not yet taken by the kernel: submit below */
		ar_run *r = ar->qhead;
		ar->qhead = r->qnext;
		if (ar->qhead == NULL)
			ar->qtail = NULL;
		if (r->done == 0 && fault_read_hit(&p->faults, r->vdev))
			r->fault = 1;
		if (r->fault)
			io_uring_prep_nop(sqe);
		else
			io_uring_prep_read(sqe, p->vds[r->vdev].fd, r->raw + r->done, r->len - r->done,
			    r->off + r->done);
		io_uring_sqe_set_data(sqe, r);
		ar->ring_used++;
		added++;
	}
	if (ar->ring_used > atomic_load_explicit(&ar->ring_max, memory_order_relaxed))
		atomic_store_explicit(&ar->ring_max, ar->ring_used, memory_order_relaxed);
	if (added > 0 || io_uring_sq_ready(&ar->ring) > 0)
		(void)io_uring_submit(&ar->ring); /* a refusal (-EBUSY, -EAGAIN) is retried at the next pump */
}

aread_batch *
aread_batch_new(ce_pool *p, aread_done_fn fn, void *arg)
{
	aread_batch *b = xcalloc(1, sizeof(*b));
	b->p = p;
	b->fn = fn;
	b->arg = arg;
	return b;
}

void
aread_add(aread_batch *b, const bp_phys *bp, uint8_t *dst, uint32_t off, uint32_t len)
{
	ce_pool *p = b->p;
	if (bp_is_hole(bp)) {
		memset(dst, 0, len);
		return;
	}
	if (!blk_bp_sane(p, bp) || (uint64_t)off + len > bp->bp_lsize) {
		atomic_fetch_add(&p->cksum_errors, 1);
		b->err = -EIO;
		return;
	}
	if (cache_get(&p->cache, bp, dst, off, len))
		return;
	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 8;
		b->items = xrealloc(b->items, b->cap * sizeof(ar_item));
	}
	b->items[b->n++] = (ar_item){ *bp, dst, off, len };
}

static void
batch_free(aread_batch *b)
{
	free(b->items);
	free(b->runs);
	free(b);
}

void
aread_batch_drop(aread_batch *b)
{
	batch_free(b);
}

static void
raw_free(ar_run *r)
{
	if (r->raw_kind == RAW_POOL)
		bufpool_put(r->raw, r->len);
	else if (r->raw_kind == RAW_HEAP)
		free(r->raw);
	r->raw = NULL;
}

void
aread_batch_fill(aread_batch *b, int kind)
{
	VERIFY(kind == AREAD_RA || kind == AREAD_TREE || kind == AREAD_FILL);
	b->prefetch = kind;
}

void
aread_batch_prefetch(aread_batch *b)
{
	aread_batch_fill(b, AREAD_RA);
}

void
aread_add_prefetch(aread_batch *b, const bp_phys *bp)
{
	ce_pool *p = b->p;
	VERIFY(b->prefetch);
	/* A hole, an impossible pointer or a cached block: nothing to read ahead (the reader judges it). */
	if (bp_is_hole(bp) || !blk_bp_sane(p, bp) || cache_has(&p->cache, bp))
		return;
	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 8;
		b->items = xrealloc(b->items, b->cap * sizeof(ar_item));
	}
	b->items[b->n++] = (ar_item){ *bp, NULL, 0, bp->bp_lsize };
}

int
aread_submit(aread_batch *b)
{
	ce_pool *p = b->p;
	aread *ar = p->ar;
	if (b->err != 0 || b->n == 0) {
		int err = b->err;
		batch_free(b);
		return err;
	}
	b->cache_fill = b->prefetch || b->n <= AR_CACHE_MAX;
	if (b->prefetch == AREAD_RA) {
		atomic_fetch_add_explicit(&ar->ra_batches, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&ar->ra_blocks, b->n, memory_order_relaxed);
		uint64_t bytes = 0;
		for (size_t i = 0; i < b->n; i++)
			bytes += b->items[i].bp.bp_lsize;
		atomic_fetch_add_explicit(&ar->ra_bytes, bytes, memory_order_relaxed);
	} else if (b->prefetch == AREAD_TREE) {
		atomic_fetch_add_explicit(&ar->tree_reads, b->n, memory_order_relaxed);
	} else if (b->prefetch == AREAD_FILL) {
		atomic_fetch_add_explicit(&ar->fill_blocks, b->n, memory_order_relaxed);
	}
	qsort(b->items, b->n, sizeof(ar_item), item_cmp);
	b->runs = xcalloc(b->n, sizeof(ar_run));
	for (size_t i = 0; i < b->n;) {
		const ar_item *it = &b->items[i];
		uint64_t start = it->bp.bp_offset, end = start + bp_asize(&it->bp);
		size_t j = i + 1;
		while (j < b->n && b->items[j].bp.bp_vdev == it->bp.bp_vdev && b->items[j].bp.bp_offset == end &&
		    end - start + bp_asize(&b->items[j].bp) <= AR_MAX_RUN) {
			end += bp_asize(&b->items[j].bp);
			j++;
		}
		/* Straight into the caller's buffer: whole uncompressed blocks, contiguous and aligned there. */
		int direct = it->dst != NULL && ((uintptr_t)it->dst % CE_SECTOR) == 0;
		for (size_t k = i; direct && k < j; k++) {
			const ar_item *x = &b->items[k];
			direct = x->bp.bp_comp == CE_COMP_OFF && x->off == 0 && x->len == x->bp.bp_lsize &&
			    bp_asize(&x->bp) == x->bp.bp_lsize && x->dst == it->dst + (x->bp.bp_offset - start);
		}
		ar_run *r = &b->runs[b->nruns++];
		r->b = b;
		r->vdev = it->bp.bp_vdev;
		r->off = start;
		r->len = (uint32_t)(end - start);
		r->first = i;
		r->n = j - i;
		if (direct) {
			r->raw = it->dst;
			r->raw_kind = RAW_DIRECT;
		} else if (r->len <= BUFPOOL_MAX) {
			r->raw = bufpool_get(r->len);
			r->raw_kind = RAW_POOL;
		} else {
			r->raw = xmalloc_aligned(r->len);
			r->raw_kind = RAW_HEAP;
		}
		i = j;
	}
	b->left = b->nruns;
	if (!b->prefetch)
		atomic_fetch_add_explicit(&ar->requests, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&ar->device_reads, b->nruns, memory_order_relaxed);
	pthread_mutex_lock(&ar->lock);
	ar->inflight++; /* invariant 3: before the submitter lets go of free_lock */
	for (size_t i = 0; i < b->nruns; i++) {
		b->runs[i].seq = ar->seq++;
		ar_queue(ar, &b->runs[i]);
	}
	pump(p, ar);
	pthread_mutex_unlock(&ar->lock);
	return 1;
}

/* ---- the completion side (the completion thread) ---- */

static void
batch_finish(aread_batch *b)
{
	aread *ar = b->p->ar;
	aread_done_fn fn = b->fn;
	void *arg = b->arg;
	int err = b->err, prefetch = b->prefetch;
	batch_free(b);
	pthread_mutex_lock(&ar->lock);
	VERIFY3U(ar->inflight, >, 0);
	if (--ar->inflight == 0)
		pthread_cond_broadcast(&ar->cv);
	pthread_mutex_unlock(&ar->lock);
	if (err != 0 && prefetch == AREAD_RA)
		atomic_fetch_add_explicit(&ar->ra_failed, 1, memory_order_relaxed);
	fn(arg, err); /* invariant 2 */
}

/* Verify every block of a run that read all its bytes and hand each its slice. */
static void
run_verify(aread_batch *b, ar_run *r)
{
	ce_pool *p = b->p;
	for (size_t k = r->first; k < r->first + r->n; k++) {
		ar_item *it = &b->items[k];
		const bp_phys *bp = &it->bp;
		uint8_t *raw = r->raw + (bp->bp_offset - r->off);
		int whole = it->dst != NULL && it->off == 0 && it->len == bp->bp_lsize;
		uint8_t *logical;
		if (whole)
			logical = it->dst; /* == raw when direct: verified in place */
		else if (bp->bp_comp == CE_COMP_OFF)
			logical = raw;
		else
			logical = bufpool_get(bp->bp_lsize);
		if (blk_verify(p, bp, raw, logical) != 0) {
			b->err = -EIO; /* invariant 1 (counted by blk_verify) */
		} else {
			if (!whole && it->dst != NULL)
				memcpy(it->dst, logical + it->off, it->len);
			if (b->cache_fill && b->prefetch == AREAD_RA)
				cache_put_ra(&p->cache, bp, logical); /* its hits and waste are counted */
			else if (b->cache_fill)
				cache_put(&p->cache, bp, logical);
		}
		if (logical != it->dst && logical != raw)
			bufpool_put(logical, bp->bp_lsize);
	}
}

static void
run_done(ce_pool *p, aread *ar, ar_run *r, int res)
{
	aread_batch *b = r->b;
	if (r->fault) {
		pool_io_error(p, -EIO);
		b->err = -EIO;
	} else if (res == -EAGAIN || res == -EINTR || (res > 0 && r->done + (uint32_t)res < r->len)) {
		if (res > 0)
			r->done += (uint32_t)res; /* a short read: the rest */
		pthread_mutex_lock(&ar->lock);
		ar_queue(ar, r);
		pump(p, ar);
		pthread_mutex_unlock(&ar->lock);
		return;
	} else if (res <= 0) {
		pool_io_error(p, res < 0 ? res : -EIO); /* 0: end of the file (vdev.c invariant 3) */
		b->err = -EIO;
	} else {
		run_verify(b, r);
	}
	raw_free(r);
	if (--b->left == 0)
		batch_finish(b);
}

static void *
ar_thread(void *arg)
{
	ce_pool *p = arg;
	aread *ar = p->ar;
	struct { ar_run *run; int res; } got[AR_REAP];
	int stop = 0;
	while (!stop) {
		struct io_uring_cqe *cqe;
		int rc = io_uring_wait_cqe(&ar->ring, &cqe);
		if (rc == -EINTR || rc == -EAGAIN)
			continue;
		VERIFY(rc == 0); /* only EINTR is expected of a wait */
		unsigned head, n = 0;
		io_uring_for_each_cqe(&ar->ring, head, cqe) {
			got[n].run = io_uring_cqe_get_data(cqe);
			got[n].res = cqe->res;
			if (++n == AR_REAP)
				break;
		}
		io_uring_cq_advance(&ar->ring, n);
		/* The lock also orders the submitter's writes to the runs before our reads of them. */
		pthread_mutex_lock(&ar->lock);
		ar->ring_used -= n;
		pump(p, ar);
		int hold = ar->hold;
		for (unsigned i = 0; hold && i < n; i++) {
			if (got[i].run == NULL)
				continue;
			if (ar->nparked == ar->capparked) {
				ar->capparked = ar->capparked ? ar->capparked * 2 : 64;
				ar->parked = xrealloc(ar->parked, ar->capparked * sizeof(ar_parked));
			}
			ar->parked[ar->nparked++] = (ar_parked){ got[i].run, got[i].res };
			pthread_cond_broadcast(&ar->cv);
		}
		pthread_mutex_unlock(&ar->lock);
		for (unsigned i = 0; i < n; i++) {
			if (got[i].run == NULL)
				stop = 1; /* aread_fini's no-op */
			else if (!hold)
				run_done(p, ar, got[i].run, got[i].res);
		}
	}
	return NULL;
}

/* ---- lifetime ---- */

static int
vdevs_are_files(const ce_pool *p)
{
	for (unsigned i = 0; i < p->nvdevs; i++)
		if (p->vds[i].fd < 0)
			return 0;
	return 1;
}

void
aread_init(ce_pool *p)
{
	aread *ar = xcalloc(1, sizeof(*ar));
	pthread_mutex_init(&ar->lock, NULL);
	pthread_cond_init(&ar->cv, NULL);
	p->ar = ar;
	if (p->opts.flags & CE_POOL_NO_URING) {
		snprintf(ar->why, sizeof(ar->why), "disabled (CE_POOL_NO_URING)");
		return;
	}
	if (!vdevs_are_files(p)) {
		snprintf(ar->why, sizeof(ar->why), "a vdev's backend is wrapped (not a plain file)");
		return;
	}
	int err = io_uring_queue_init(AR_RING, &ar->ring, 0);
	if (err < 0) {
		snprintf(ar->why, sizeof(ar->why), "io_uring_queue_init: %s", strerror(-err));
		return;
	}
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, 256u << 10);
	err = pthread_create(&ar->thread, &a, ar_thread, p);
	pthread_attr_destroy(&a);
	if (err != 0) {
		io_uring_queue_exit(&ar->ring);
		snprintf(ar->why, sizeof(ar->why), "cannot start the completion thread: %s", strerror(err));
		return;
	}
	ar->ok = 1;
}

void
aread_fini(ce_pool *p)
{
	aread *ar = p->ar;
	if (ar == NULL)
		return;
	if (ar->ok) {
		pthread_mutex_lock(&ar->lock);
		VERIFY3U(ar->inflight, ==, 0); /* every handle closed: nothing in flight */
		ar->hold = 0;
		struct io_uring_sqe *sqe;
		while ((sqe = io_uring_get_sqe(&ar->ring)) == NULL)
			(void)io_uring_submit(&ar->ring);
		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data(sqe, NULL);
		(void)io_uring_submit(&ar->ring);
		pthread_mutex_unlock(&ar->lock);
		pthread_join(ar->thread, NULL);
		io_uring_queue_exit(&ar->ring);
	}
	free(ar->parked);
	pthread_mutex_destroy(&ar->lock);
	pthread_cond_destroy(&ar->cv);
	free(ar);
	p->ar = NULL;
}

int
aread_ready(const ce_pool *p)
{
	return p->ar != NULL && p->ar->ok;
}

void
aread_drain(ce_pool *p)
{
	aread *ar = p->ar;
	if (ar == NULL || !ar->ok)
		return;
	pthread_mutex_lock(&ar->lock);
	if (ar->inflight > 0) {
		ar->drain_waits++;
		pthread_cond_broadcast(&ar->cv); /* aread_test_wait_drain */
	}
	while (ar->inflight > 0)
		pthread_cond_wait(&ar->cv, &ar->lock);
	pthread_mutex_unlock(&ar->lock);
}

void
aread_note_fallback(ce_pool *p)
{
	if (p->ar != NULL)
		atomic_fetch_add_explicit(&p->ar->fallbacks, 1, memory_order_relaxed);
}

void
aread_note_inline(ce_pool *p)
{
	if (p->ar != NULL)
		atomic_fetch_add_explicit(&p->ar->inline_done, 1, memory_order_relaxed);
}

int
ce_pool_aread_stat(ce_pool *p, ce_aread_stat *st)
{
	aread *ar = p->ar;
	memset(st, 0, sizeof(*st));
	if (ar == NULL)
		return err_set(-EINVAL, "pool %s is not open", p->name);
	st->available = ar->ok;
	snprintf(st->why, sizeof(st->why), "%s", ar->why);
	st->requests = atomic_load(&ar->requests);
	st->inline_done = atomic_load(&ar->inline_done);
	st->fallbacks = atomic_load(&ar->fallbacks);
	st->device_reads = atomic_load(&ar->device_reads);
	st->ring_max = atomic_load(&ar->ring_max);
	st->readahead_batches = atomic_load(&ar->ra_batches);
	st->readahead_blocks = atomic_load(&ar->ra_blocks);
	st->readahead_failed = atomic_load(&ar->ra_failed);
	st->tree_reads = atomic_load(&ar->tree_reads);
	st->fill_blocks = atomic_load(&ar->fill_blocks);
	st->readahead_bytes = atomic_load(&ar->ra_bytes);
	pthread_mutex_lock(&p->cache.lock);
	st->readahead_hits = p->cache.ra_hits;
	st->readahead_wasted = p->cache.ra_wasted;
	pthread_mutex_unlock(&p->cache.lock);
	return 0;
}

/* ---- test hooks ---- */

void
aread_test_hold(ce_pool *p)
{
	aread *ar = p->ar;
	pthread_mutex_lock(&ar->lock);
	ar->hold = 1;
	pthread_mutex_unlock(&ar->lock);
}

void
aread_test_wait_held(ce_pool *p, unsigned n)
{
	aread *ar = p->ar;
	pthread_mutex_lock(&ar->lock);
	while (ar->nparked < n)
		pthread_cond_wait(&ar->cv, &ar->lock);
	pthread_mutex_unlock(&ar->lock);
}

static int
parked_cmp(const void *a, const void *b)
{
	uint64_t x = ((const ar_parked *)a)->run->seq, y = ((const ar_parked *)b)->run->seq;
	return x < y ? 1 : x > y ? -1 : 0; /* newest first */
}

void
aread_test_wait_drain(ce_pool *p, uint64_t n)
{
	aread *ar = p->ar;
	pthread_mutex_lock(&ar->lock);
	while (ar->drain_waits < n)
		pthread_cond_wait(&ar->cv, &ar->lock);
	pthread_mutex_unlock(&ar->lock);
}

void
aread_test_release(ce_pool *p)
{
	aread *ar = p->ar;
	pthread_mutex_lock(&ar->lock);
	ar->hold = 0;
	ar_parked *pk = ar->parked;
	size_t n = ar->nparked;
	ar->parked = NULL;
	ar->nparked = ar->capparked = 0;
	pthread_mutex_unlock(&ar->lock);
	qsort(pk, n, sizeof(ar_parked), parked_cmp);
	for (size_t i = 0; i < n; i++)
		run_done(p, ar, pk[i].run, pk[i].res);
	free(pk);
}
