/*
 * pool_sync.c -- writing out one txg: the pool's half of the commit.
 *
 * txg.c decides when txg t is written and calls pool_sync(p, t), its only
 * call upward. pool_sync writes what changed in t and nothing else:
 *
 *   settle   the datasets dirtied in t take their record image for t
 *            (vol_settle: management fields as of t's quiesce)
 *   data     each dirty volume's blocks and tree (vol_sync)
 *   tasks    the sync tasks registered for t, in registration order:
 *            the syncing halves of management operations (snapshot
 *            attach and destroy, volume destroy, rollback, holds,
 *            snapshot policies), each living in its own subsystem's
 *            file; they may dirty more datasets of t (pool_sync_dirty)
 *   records  dead lists and dataset records of every dataset dirtied in t
 *   pool     holds, snapshot policy (sched.c), dataset attributes (attr.c), receive and replica
 *            objects, then the MOS and bitmaps until a pass writes
 *            nothing, flush, uberblock, flush
 *   after    freed space becomes allocatable, the log learns the commit,
 *            datasets destroyed in t are freed (or later, when still
 *            referenced)
 *
 * A dataset is dirtied in t by a writer when it first puts data into t's
 * maps (map_claim), by a management operation for the open txg
 * (vol_mgmt_dirty), or by a sync task of t. So a txg costs what changed,
 * not what exists: no step here walks every dataset.
 *
 * Invariants:
 *   1. A txg's lists change only while it is open (writers holding it,
 *      management operations) or syncing (the sync thread alone); the
 *      slot t & 3 is empty again once t committed.
 *   2. Sync tasks of t run after every dirty volume's data of t and
 *      before any record of t is built, so a task sees each volume's tree
 *      as of t and its changes go out in the same txg (crash: all or none).
 *   3. A dataset destroyed in t is freed only after t's uberblock is
 *      durable and no handle or log batch still names it.
 *   4. A failed sync changes no list: the pool suspends, and
 *      ce_pool_clear drops every uncommitted txg's work (pool_sync_reset).
 */
#include "pool_sync.h"
#include "aread.h"
#include "blkio.h"
#include "dataset.h"
#include "hold.h"
#include "mos.h"
#include "pool_impl.h"
#include "recv.h"
#include "sched_policy.h"
#include "attr.h"
#include "txg.h"
#include "uberblock.h"
#include "util.h"
#include "vol.h"

#include <string.h>

void
pool_sync_init(ce_pool *p)
{
	pthread_mutex_init(&p->ps.lock, NULL);
}

static void
work_clear(txg_work *w)
{
	for (size_t i = 0; i < w->nst; i++)
		free(w->st[i].arg);
	for (size_t i = 0; i < w->nds; i++)
		if (w->ds[i]->dirty_in[w->txg & 3] == w->txg)
			w->ds[i]->dirty_in[w->txg & 3] = 0;
	w->nst = w->nds = 0;
	w->txg = 0;
}

void
pool_sync_fini(ce_pool *p)
{
	for (int i = 0; i < 4; i++) {
		txg_work *w = &p->ps.w[i];
		for (size_t k = 0; k < w->nst; k++)
			free(w->st[k].arg);
		free(w->ds);
		free(w->st);
		memset(w, 0, sizeof(*w));
	}
	free(p->ps.deferred);
	p->ps.deferred = NULL;
	p->ps.ndef = p->ps.capdef = 0;
	pthread_mutex_destroy(&p->ps.lock);
}

void
pool_sync_reset(ce_pool *p)
{
	pthread_mutex_lock(&p->ps.lock);
	for (int i = 0; i < 4; i++)
		work_clear(&p->ps.w[i]);
	pthread_mutex_unlock(&p->ps.lock);
}

/* The slot of txg t (ps.lock held). */
static txg_work *
work_of(ce_pool *p, uint64_t t)
{
	ASSERT_HELD(&p->ps.lock);
	txg_work *w = &p->ps.w[t & 3];
	if (w->txg != t) {
		VERIFY3U(w->nds + w->nst, ==, 0); /* invariant 1: t - 4 committed */
		w->txg = t;
	}
	return w;
}

void
pool_dirty(ce_pool *p, volume *v, uint64_t t)
{
	pthread_mutex_lock(&p->ps.lock);
	if (v->dirty_in[t & 3] != t) {
		txg_work *w = work_of(p, t);
		if (w->nds == w->capds) {
			w->capds = w->capds ? w->capds * 2 : 16;
			w->ds = xrealloc(w->ds, w->capds * sizeof(volume *));
		}
		w->ds[w->nds++] = v;
		v->dirty_in[t & 3] = t;
	}
	pthread_mutex_unlock(&p->ps.lock);
}

int
pool_sync_thread(const ce_pool *p)
{
	return p->ps.syncing_txg != 0 && pthread_equal(p->ps.syncer, pthread_self());
}

/* Only the thread syncing t (invariant 1). */
static void
assert_syncing(ce_pool *p, uint64_t t)
{
	ASSERT3U(p->ps.syncing_txg, ==, t);
	ASSERT(pool_sync_thread(p));
	(void)p;
	(void)t;
}

void
pool_sync_dirty(ce_pool *p, volume *v, uint64_t t)
{
	assert_syncing(p, t);
	pthread_mutex_lock(&p->lock);
	pool_dirty(p, v, t);
	vol_settle(v, t);
	pthread_mutex_unlock(&p->lock);
}

void
synctask_add_txg(ce_pool *p, uint64_t t, synctask_fn sync, void *arg)
{
	pthread_mutex_lock(&p->ps.lock);
	txg_work *w = work_of(p, t);
	if (w->nst == w->capst) {
		w->capst = w->capst ? w->capst * 2 : 8;
		w->st = xrealloc(w->st, w->capst * sizeof(synctask));
	}
	w->st[w->nst++] = (synctask){ sync, arg };
	pthread_mutex_unlock(&p->ps.lock);
}

void
synctask_add(ce_pool *p, synctask_fn sync, void *arg)
{
	synctask_add_txg(p, txg_open(p), sync, arg);
}

void
pool_defer_free(ce_pool *p, volume *v)
{
	ASSERT_HELD(&p->lock);
	if (v->freeing)
		return;
	v->freeing = 1;
	if (p->ps.ndef == p->ps.capdef) {
		p->ps.capdef = p->ps.capdef ? p->ps.capdef * 2 : 16;
		p->ps.deferred = xrealloc(p->ps.deferred, p->ps.capdef * sizeof(volume *));
	}
	p->ps.deferred[p->ps.ndef++] = v;
}

/* Entry k of t's dataset list, or NULL past its end (tasks may have added some). */
static volume *
dirty_at(ce_pool *p, uint64_t t, size_t k)
{
	txg_work *w = &p->ps.w[t & 3];
	pthread_mutex_lock(&p->ps.lock);
	volume *v = w->txg == t && k < w->nds ? w->ds[k] : NULL;
	pthread_mutex_unlock(&p->ps.lock);
	return v;
}

/* A destroyed dataset nothing references any more (pool->lock held). */
static int
freeable(ce_pool *p, volume *v, uint64_t t)
{
	/* a log batch in flight still reads it: a later commit frees it */
	return v->refs == 0 && v->ilog_refs == 0 && v->dirty_in[(t + 1) & 3] != t + 1;
}

/* After t committed: datasets destroyed in t (and older ones still waiting) go. */
static void
free_destroyed(ce_pool *p, uint64_t t)
{
	pthread_mutex_lock(&p->lock);
	pthread_mutex_lock(&p->ps.lock);
	txg_work *w = &p->ps.w[t & 3];
	for (size_t k = 0; w->txg == t && k < w->nds; k++) {
		volume *v = w->ds[k];
		if (!vol_destroyed_by(v, t) || v->freeing)
			continue;
		if (freeable(p, v, t)) {
			vol_unlink(p, v);
			vol_delete(v);
			w->ds[k] = NULL; /* work_done drops the entry */
		} else {
			pool_defer_free(p, v);
		}
	}
	size_t n = 0;
	for (size_t i = 0; i < p->ps.ndef; i++) {
		volume *v = p->ps.deferred[i];
		if (vol_destroyed_by(v, t) && freeable(p, v, t)) {
			vol_unlink(p, v);
			vol_delete(v);
		} else {
			p->ps.deferred[n++] = v;
		}
	}
	p->ps.ndef = n;
	pthread_mutex_unlock(&p->ps.lock);
	pthread_mutex_unlock(&p->lock);
}

/* The dataset lists of t lose entries freed above: empty the slot. */
static void
work_done(ce_pool *p, uint64_t t)
{
	pthread_mutex_lock(&p->ps.lock);
	txg_work *w = &p->ps.w[t & 3];
	if (w->txg == t) {
		size_t n = 0;
		for (size_t i = 0; i < w->nds; i++)
			if (w->ds[i] != NULL)
				w->ds[n++] = w->ds[i];
		w->nds = n;
		work_clear(w);
	}
	pthread_mutex_unlock(&p->ps.lock);
}

static int
write_uberblock(ce_pool *p, uint64_t t)
{
	uberblock_phys ub;
	memset(&ub, 0, sizeof(ub));
	ub.ub_magic = UB_MAGIC;
	ub.ub_version = CE_UB_VERSION; /* not the pool's version: phys.h, on-disk-format.md 1.2 */
	ub.ub_txg = t;
	ub.ub_pool_guid = p->guid;
	ub.ub_timestamp = util_now_ns();
	ub.ub_mos_size = mos_bytes(p);
	ub.ub_mos_levels = mos_tree(p)->levels;
	ub.ub_mos = mos_tree(p)->root;
	ilog_ub_fill(p, t, &ub);
	uberblock_seal(&ub);
	int err = uberblock_write(p->vds, p->nvdevs, &ub);
	for (unsigned v = 0; v < p->nvdevs && err == 0; v++)
		err = vdev_flush(&p->vds[v]);
	if (err != 0)
		pool_io_error(p, err);
	return err;
}

/* Pass 1 over what t dirtied: settle, data, sync tasks, records. */
static int
sync_datasets(ce_pool *p, uint64_t t)
{
	int err = 0;
	txg_work *w = &p->ps.w[t & 3];

	/* What each dataset of t looks like in t, before anything reads it. */
	pthread_mutex_lock(&p->lock);
	pthread_mutex_lock(&p->ps.lock);
	size_t n = w->txg == t ? w->nds : 0;
	volume **vs = xmalloc((n ? n : 1) * sizeof(volume *));
	if (n > 0)
		memcpy(vs, w->ds, n * sizeof(volume *));
	pthread_mutex_unlock(&p->ps.lock);
	uint8_t *gone = xmalloc(n ? n : 1);
	for (size_t i = 0; i < n; i++) {
		vol_settle(vs[i], t);
		gone[i] = vol_destroyed_by(vs[i], t) != 0;
	}
	pthread_mutex_unlock(&p->lock);

	/* Volume data and trees (blocks a snapshot still references go to dead lists). */
	for (size_t i = 0; i < n && err == 0; i++)
		if (!vs[i]->is_snap && !gone[i])
			err = vol_sync(p, vs[i], t);
	free(vs);
	free(gone);

	/* The sync tasks of t (invariant 2). */
	for (size_t k = 0; err == 0; k++) {
		pthread_mutex_lock(&p->ps.lock);
		int have = w->txg == t && k < w->nst;
		synctask st = have ? w->st[k] : (synctask){ NULL, NULL };
		pthread_mutex_unlock(&p->ps.lock);
		if (!have)
			break;
		assert_syncing(p, t);
		err = st.sync(p, st.arg, t);
	}

	/* Dead lists and records, of the datasets the tasks dirtied too. */
	for (size_t k = 0; err == 0; k++) {
		volume *v = dirty_at(p, t, k);
		if (v == NULL)
			break;
		err = vol_sync_record(p, v, t);
	}
	return err;
}

static int
sync_work(ce_pool *p, uint64_t t)
{
	int err = sync_datasets(p, t);
	if (err == 0)
		err = hold_sync(p, t);
	if (err == 0)
		err = sched_sync(p, t);
	if (err == 0)
		err = attr_sync(p, t);
	if (err == 0)
		err = recv_table_sync(p, t);
	if (err == 0)
		err = repl_sync(p, t);
	/*
	 * Later passes: MOS and bitmaps until a pass writes nothing. A pass
	 * reads what earlier ones queued from the queue (blkio.c, 6), so the
	 * blocks go out once, coalesced, with a location rewritten by later
	 * passes written only with its final bytes.
	 */
	for (int pass = 0; err == 0; pass++) {
		int did = 0;
		VERIFY3U(pass, <, 100);
		err = mos_sync(p, t, &did);
		if (err == 0)
			err = mos_sync_bitmaps(p, t, &did);
		if (!did)
			break;
	}
	if (err == 0)
		err = wq_flush(p);
	for (unsigned v = 0; v < p->nvdevs && err == 0; v++)
		if ((err = vdev_flush(&p->vds[v])) != 0)
			pool_io_error(p, err);
	if (err == 0)
		err = write_uberblock(p, t);
	if (err != 0) {
		wq_discard(p);
		return err;
	}
	pthread_rwlock_wrlock(&p->free_lock);
	aread_drain(p); /* no read started under an older root is still reading (aread.c invariant 3) */
	alloc_commit_done(&p->alloc);
	pthread_rwlock_unlock(&p->free_lock);
	ilog_ub_durable(p, t);
	free_destroyed(p, t);
	work_done(p, t);
	return 0;
}

int
pool_sync(ce_pool *p, uint64_t t)
{
	VERIFY3U(p->ps.syncing_txg, ==, 0); /* one txg syncs at a time */
	p->ps.syncer = pthread_self();
	p->ps.syncing_txg = t;
	blk_sync_begin(p, t);
	int err = sync_work(p, t);
	blk_sync_end();
	p->ps.syncing_txg = 0;
	return err;
}
