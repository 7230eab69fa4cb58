/*
 * fault.c -- injected IO faults (the engine's zinject).
 *
 * Every vdev's backend is wrapped by a fault layer when the pool is
 * opened. Unarmed, it costs one atomic load per IO. ce_pool_fault_inject
 * arms it: IO of one kind (read, write, flush) on one vdev or all of them
 * fails with -EIO after a number of calls succeeded, once or until
 * ce_pool_fault_clear. caskd exposes it as `cask pool inject`, so the
 * suspend / `cask pool clear` path can be exercised on a running daemon.
 *
 * Invariant: a fault never changes data: a failed write writes nothing,
 * a failed read returns nothing, a failed flush flushes nothing.
 */
#include "fault.h"
#include "pool_impl.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>

typedef struct fault_be {
	ce_backend be;
	ce_backend *inner;
	fault_state *st;
	unsigned idx;
} fault_be;

const char *
ce_fault_op_name(int op)
{
	switch (op) {
	case CE_FAULT_READ: return "read";
	case CE_FAULT_WRITE: return "write";
	case CE_FAULT_FLUSH: return "flush";
	default: return "?";
	}
}

/* 1 when this call of kind op on vdev idx must fail. */
static int
hit(fault_be *f, int op)
{
	fault_state *s = f->st;
	if (!atomic_load_explicit(&s->armed, memory_order_acquire))
		return 0;
	int fail = 0;
	pthread_mutex_lock(&s->lock);
	ASSERT(s->f.op == CE_FAULT_READ || s->f.op == CE_FAULT_WRITE || s->f.op == CE_FAULT_FLUSH);
	if (s->armed && s->f.op == op && (s->f.vdev < 0 || (unsigned)s->f.vdev == f->idx)) {
		if (s->left > 0) {
			s->left--;
		} else {
			fail = 1;
			s->hits++;
			if (!s->f.persistent)
				atomic_store(&s->armed, 0);
		}
	}
	pthread_mutex_unlock(&s->lock);
	return fail;
}

static int
f_pread(ce_backend *be, void *buf, size_t len, uint64_t off)
{
	fault_be *f = (fault_be *)be;
	return hit(f, CE_FAULT_READ) ? -EIO : f->inner->pread(f->inner, buf, len, off);
}

static int
f_pwritev(ce_backend *be, const struct iovec *iov, int n, uint64_t off)
{
	fault_be *f = (fault_be *)be;
	return hit(f, CE_FAULT_WRITE) ? -EIO : f->inner->pwritev(f->inner, iov, n, off);
}

static int
f_flush(ce_backend *be)
{
	fault_be *f = (fault_be *)be;
	return hit(f, CE_FAULT_FLUSH) ? -EIO : f->inner->flush(f->inner);
}

static void
f_close(ce_backend *be)
{
	fault_be *f = (fault_be *)be;
	f->inner->close(f->inner);
	free(f);
}

void
fault_init(fault_state *st)
{
	pthread_mutex_init(&st->lock, NULL);
}

void
fault_fini(fault_state *st)
{
	pthread_mutex_destroy(&st->lock);
}

ce_backend *
fault_wrap(ce_backend *inner, unsigned idx, fault_state *st)
{
	fault_be *f = xcalloc(1, sizeof(*f));
	f->inner = inner;
	f->st = st;
	f->idx = idx;
	f->be = (ce_backend){ f_pread, f_pwritev, f_flush, f_close, inner->size };
	return &f->be;
}

int
ce_pool_fault_inject(ce_pool *p, const ce_fault *f)
{
	err_clear();
	if (f->op < CE_FAULT_READ || f->op > CE_FAULT_FLUSH)
		return err_set(-EINVAL, "fault: the operation must be read, write or flush");
	if (f->vdev >= (int)p->nvdevs || f->vdev < -1)
		return err_set(-EINVAL, "fault: pool %s has no vdev %d (it has %u)", p->name, f->vdev,
		    p->nvdevs);
	fault_state *s = &p->faults;
	pthread_mutex_lock(&s->lock);
	s->f = *f;
	s->left = f->after;
	s->hits = 0;
	atomic_store(&s->armed, 1);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

void
ce_pool_fault_clear(ce_pool *p)
{
	fault_state *s = &p->faults;
	pthread_mutex_lock(&s->lock);
	atomic_store(&s->armed, 0);
	pthread_mutex_unlock(&s->lock);
}
