/*
 * txg.c -- transaction groups and the sync thread.
 *
 * Owns the life cycle of a txg (the state machine only; what a txg
 * writes is pool_sync.c's):
 *
 *   open --(sync_thread: open_txg++, wait holds == 0)--> quiesced
 *        --(syncing_txg = t, pool_sync)--> committed (synced_txg = t)
 *
 * Writers enter the open txg with txg_hold() and leave with txg_rele();
 * there is one open txg and at most one syncing txg at a time, so per-txg
 * state can live in two slots (txg & 1) in each volume. pool_sync(p, t)
 * is the only call this file makes into the rest of the engine. The sync
 * thread also keeps the sync statistics (ce_pool_stat syncs, sync_ns,
 * sync_hist, under pool->lock): how long each pool_sync that committed
 * took, from quiesced to committed. This file alone writes p->tx: other
 * files read it through txg.h's accessors (txg_open, txg_synced, ...) and
 * change it through its functions (txg_mark_open for a management
 * operation, txg_kick, txg_reset at create, import and clear).
 *
 * Invariants:
 *   1. Commit order (pool_sync): all blocks of txg t written -> flush
 *      every vdev -> uberblock t written to every label -> flush. Import
 *      therefore sees txg t whole or not at all.
 *   2. Space freed in txg t becomes allocatable only after t's uberblock
 *      is durable (alloc_commit_done), and only when no reader still holds
 *      a root from before t (free_lock).
 *   3. A failed sync never half-commits: the pool is suspended (every
 *      later write and sync fails with the error) and the on-disk state
 *      stays at the last committed txg.
 *   4. The uberblock also names where intent log replay starts
 *      (ilog_ub_fill); the log learns it is durable right after the
 *      final flush (ilog_ub_durable), before anyone is told of the commit.
 *   5. Dirty data is bounded: writers wait in txg_throttle while more
 *      than dirty_max bytes are dirty; a sync starts when the open txg
 *      passes dirty_sync bytes, after txg_timeout_ms, or on request.
 *      The count never wraps: a writer counts its bytes (txg_dirty_add)
 *      before it releases the txg hold it made them under, so txg t's
 *      sync can never uncount bytes that were not yet counted.
 */
#include "txg.h"
#include "pool_impl.h"
#include "pool_sync.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

uint64_t
txg_hold(ce_pool *p, int *err)
{
	pthread_mutex_lock(&p->lock);
	if (p->tx.suspended) {
		*err = err_set(p->tx.suspended, "pool %s is suspended after an IO error", p->name);
		pthread_mutex_unlock(&p->lock);
		return 0;
	}
	uint64_t t = p->tx.open_txg;
	ASSERT(p->tx.syncing_txg == 0 || p->tx.syncing_txg + 1 == t); /* at most one txg behind it */
	p->tx.holds[t & 3]++;
	p->tx.txg_dirty[t & 3] = 1;
	if (p->tx.open_since_ns == 0)
		p->tx.open_since_ns = util_now_ns();
	pthread_mutex_unlock(&p->lock);
	*err = 0;
	return t;
}

void
txg_rele(ce_pool *p, uint64_t t)
{
	pthread_mutex_lock(&p->lock);
	VERIFY(p->tx.holds[t & 3] > 0);
	if (--p->tx.holds[t & 3] == 0 && t != p->tx.open_txg)
		pthread_cond_broadcast(&p->tx.cv_done);
	pthread_mutex_unlock(&p->lock);
}

void
txg_dirty_add(ce_pool *p, int64_t bytes, int open)
{
	if (bytes == 0)
		return;
	pthread_mutex_lock(&p->lock);
	ASSERT(bytes > 0 || (uint64_t)-bytes <= p->tx.dirty_total); /* invariant 5: the count never wraps */
	/* written under pool->lock, but read without it (ce_vol_write_would_wait): an atomic store */
	__atomic_store_n(&p->tx.dirty_total, (uint64_t)((int64_t)p->tx.dirty_total + bytes), __ATOMIC_RELAXED);
	if (open) {
		/* Racing a quiesce can move bytes between txgs: never wrap. */
		int64_t o = (int64_t)p->tx.dirty_open + bytes;
		p->tx.dirty_open = o < 0 ? 0 : (uint64_t)o;
	}
	if (bytes < 0 && p->tx.throttled)
		pthread_cond_broadcast(&p->tx.cv_done);
	if (p->tx.dirty_open >= p->opts.dirty_sync)
		pthread_cond_signal(&p->tx.cv_work);
	pthread_mutex_unlock(&p->lock);
}

void
txg_throttle(ce_pool *p)
{
	pthread_mutex_lock(&p->lock);
	while (p->tx.dirty_total > p->opts.dirty_max && !p->tx.suspended && !p->tx.stop) {
		p->tx.throttled = 1;
		pthread_cond_signal(&p->tx.cv_work);
		pthread_cond_wait(&p->tx.cv_done, &p->lock);
	}
	p->tx.throttled = 0;
	pthread_mutex_unlock(&p->lock);
}

int
txg_wait_synced(ce_pool *p, uint64_t t)
{
	int err = 0;
	pthread_mutex_lock(&p->lock);
	if (p->tx.sync_req < t)
		p->tx.sync_req = t;
	pthread_cond_signal(&p->tx.cv_work);
	while (p->tx.synced_txg < t && !p->tx.suspended && p->tx.thread_running)
		pthread_cond_wait(&p->tx.cv_done, &p->lock);
	if (p->tx.synced_txg < t)
		err = p->tx.suspended ? p->tx.suspended : -EIO;
	pthread_mutex_unlock(&p->lock);
	if (err != 0)
		err_set(err, "pool %s: txg %llu did not commit: %s", p->name,
		    (unsigned long long)t, strerror(-err));
	return err;
}

int
txg_sync_now(ce_pool *p)
{
	pthread_mutex_lock(&p->lock);
	uint64_t t = p->tx.txg_dirty[p->tx.open_txg & 3] ? p->tx.open_txg : p->tx.open_txg - 1;
	pthread_mutex_unlock(&p->lock);
	return txg_wait_synced(p, t);
}

static void *
sync_thread(void *arg)
{
	ce_pool *p = arg;
	pthread_mutex_lock(&p->lock);
	while (!p->tx.stop) {
		uint64_t now = util_now_ns();
		uint64_t open = p->tx.open_txg;
		int dirty = p->tx.txg_dirty[open & 3];
		uint64_t deadline = p->tx.open_since_ns + (uint64_t)p->opts.txg_timeout_ms * 1000000ull;
		int want = !p->tx.suspended &&
		    (p->tx.sync_req >= open || (dirty && (p->tx.dirty_open >= p->opts.dirty_sync ||
		    p->tx.throttled || now >= deadline)));
		if (!want) {
			struct timespec ts;
			uint64_t wake = (dirty && !p->tx.suspended) ? deadline : now + 1000000000ull;
			if (wake > now + 1000000000ull)
				wake = now + 1000000000ull;
			ts.tv_sec = (time_t)(wake / 1000000000ull);
			ts.tv_nsec = (long)(wake % 1000000000ull);
			pthread_cond_timedwait(&p->tx.cv_work, &p->lock, &ts);
			continue;
		}
		/* Quiesce: close txg `open` to new writers and wait for the ones inside. */
		p->tx.open_txg = open + 1;
		p->tx.txg_dirty[(open + 1) & 3] = 0;
		p->tx.open_since_ns = 0;
		p->tx.dirty_open = 0;
		/*
		 * From here on management operations belong to open + 1; each
		 * dataset they change keeps its image as of `open` (vol_mgmt_dirty).
		 */
		while (p->tx.holds[open & 3] > 0)
			pthread_cond_wait(&p->tx.cv_done, &p->lock);
		/* one open and at most one syncing txg: the two slots (txg & 1) of every volume */
		ASSERT3U(p->tx.synced_txg + 1, ==, open);
		p->tx.syncing_txg = open;
		pthread_mutex_unlock(&p->lock);

		uint64_t t0 = util_now_ns();
		int err = pool_sync(p, open);
		uint64_t took = util_now_ns() - t0;

		pthread_mutex_lock(&p->lock);
		p->tx.syncing_txg = 0;
		if (err != 0) {
			p->tx.suspended = err;
			snprintf(p->tx.suspend_reason, sizeof(p->tx.suspend_reason),
			    "txg %llu could not be committed: %s", (unsigned long long)open,
			    err == -EIO ? "IO error on a vdev" : strerror(-err));
		} else {
			p->tx.synced_txg = open;
			p->tx.syncs++;
			p->tx.sync_ns += took;
			uint64_t us = took / 1000;
			int b = us == 0 ? 0 : 63 - __builtin_clzll(us);
			p->tx.sync_hist[b < CE_SYNC_HIST_BUCKETS ? b : CE_SYNC_HIST_BUCKETS - 1]++;
		}
		pthread_cond_broadcast(&p->tx.cv_done);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int
txg_start(ce_pool *p)
{
	p->tx.stop = 0;
	int err = pthread_create(&p->tx.sync_thread, NULL, sync_thread, p);
	if (err != 0)
		return err_set(-err, "cannot start the sync thread");
	p->tx.thread_running = 1;
	return 0;
}

void
txg_stop(ce_pool *p)
{
	if (!p->tx.thread_running)
		return;
	pthread_mutex_lock(&p->lock);
	p->tx.stop = 1;
	pthread_cond_broadcast(&p->tx.cv_work);
	pthread_cond_broadcast(&p->tx.cv_done);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->tx.sync_thread, NULL);
	pthread_mutex_lock(&p->lock);
	p->tx.thread_running = 0;
	pthread_cond_broadcast(&p->tx.cv_done);
	pthread_mutex_unlock(&p->lock);
}

void
txg_init(ce_pool *p)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_cond_init(&p->tx.cv_work, &ca);
	pthread_cond_init(&p->tx.cv_done, &ca);
	pthread_condattr_destroy(&ca);
}

void
txg_fini(ce_pool *p)
{
	pthread_cond_destroy(&p->tx.cv_work);
	pthread_cond_destroy(&p->tx.cv_done);
}

void
txg_reset(ce_pool *p, uint64_t synced)
{
	pthread_mutex_lock(&p->lock);
	ASSERT(!p->tx.thread_running);
	p->tx.synced_txg = synced;
	p->tx.open_txg = synced + 1;
	p->tx.syncing_txg = 0;
	p->tx.sync_req = 0;
	memset(p->tx.txg_dirty, 0, sizeof(p->tx.txg_dirty));
	p->tx.open_since_ns = 0;
	__atomic_store_n(&p->tx.dirty_total, 0, __ATOMIC_RELAXED); /* read unlocked too */
	p->tx.dirty_open = 0;
	pthread_mutex_unlock(&p->lock);
}

uint64_t
txg_mark_open(ce_pool *p)
{
	ASSERT_HELD(&p->lock);
	uint64_t t = p->tx.open_txg;
	p->tx.txg_dirty[t & 3] = 1;
	if (p->tx.open_since_ns == 0)
		p->tx.open_since_ns = util_now_ns();
	return t;
}

void
txg_mark_dirty(ce_pool *p, uint64_t t)
{
	ASSERT_HELD(&p->lock);
	ASSERT3U(t, ==, p->tx.open_txg);
	p->tx.txg_dirty[t & 3] = 1;
}

void
txg_kick(ce_pool *p)
{
	pthread_mutex_lock(&p->lock);
	if (p->tx.sync_req < p->tx.open_txg)
		p->tx.sync_req = p->tx.open_txg;
	pthread_cond_signal(&p->tx.cv_work);
	pthread_mutex_unlock(&p->lock);
}

int
txg_wait_quiet(ce_pool *p)
{
	ASSERT_HELD(&p->lock);
	while (p->tx.syncing_txg != 0 || p->tx.synced_txg + 1 < p->tx.open_txg) {
		if (p->tx.suspended)
			return p->tx.suspended;
		pthread_cond_wait(&p->tx.cv_done, &p->lock);
	}
	return 0;
}

void
txg_resume(ce_pool *p)
{
	ASSERT_HELD(&p->lock);
	p->tx.suspended = 0;
	p->tx.suspend_reason[0] = '\0';
	pthread_cond_broadcast(&p->tx.cv_done);
}

void
txg_suspend(ce_pool *p, int err, const char *why)
{
	ASSERT_HELD(&p->lock);
	ASSERT(err < 0);
	if (p->tx.suspended == 0) {
		p->tx.suspended = err;
		snprintf(p->tx.suspend_reason, sizeof(p->tx.suspend_reason), "%s", why);
	}
}

uint64_t
txg_holders(const ce_pool *p)
{
	uint64_t h = 0;
	for (int i = 0; i < 4; i++)
		h += p->tx.holds[i];
	return h;
}

void
txg_stat(const ce_pool *p, ce_pool_stat *st)
{
	st->synced_txg = p->tx.synced_txg;
	st->dirty_bytes = p->tx.dirty_total;
	st->syncs = p->tx.syncs;
	st->sync_ns = p->tx.sync_ns;
	memcpy(st->sync_hist, p->tx.sync_hist, sizeof(st->sync_hist));
	st->suspended = p->tx.suspended;
	snprintf(st->suspend_reason, sizeof(st->suspend_reason), "%s", p->tx.suspend_reason);
}
