/*
 * txg.c -- transaction groups and the sync thread.
 *
 * Owns the life cycle of a txg and the commit protocol:
 *
 *   open --(txg_quiesce: open_txg++, wait holds == 0)--> quiesced
 *        --(syncing_txg = t, txg_sync_one)--> committed (synced_txg = t)
 *
 * Writers enter the open txg with txg_hold() and leave with txg_rele();
 * there is one open txg and at most one syncing txg at a time, so per-txg
 * state can live in two slots (txg & 1) in each volume.
 *
 * Invariants:
 *   1. Commit order: all blocks of txg t written -> flush every vdev ->
 *      uberblock t written to every label -> flush. Import therefore sees
 *      txg t whole or not at all.
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
 */
#include "pool_impl.h"
#include "uberblock.h"
#include "util.h"
#include "vol.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

uint64_t
txg_hold(ce_pool *p, int *err)
{
	pthread_mutex_lock(&p->lock);
	if (p->suspended) {
		*err = err_set(p->suspended, "pool %s is suspended after an IO error", p->name);
		pthread_mutex_unlock(&p->lock);
		return 0;
	}
	uint64_t t = p->open_txg;
	p->holds[t & 3]++;
	p->txg_dirty[t & 3] = 1;
	if (p->open_since_ns == 0)
		p->open_since_ns = util_now_ns();
	pthread_mutex_unlock(&p->lock);
	*err = 0;
	return t;
}

void
txg_rele(ce_pool *p, uint64_t t)
{
	pthread_mutex_lock(&p->lock);
	VERIFY(p->holds[t & 3] > 0);
	if (--p->holds[t & 3] == 0 && t != p->open_txg)
		pthread_cond_broadcast(&p->cv_done);
	pthread_mutex_unlock(&p->lock);
}

void
txg_dirty_add(ce_pool *p, int64_t bytes, int open)
{
	if (bytes == 0)
		return;
	pthread_mutex_lock(&p->lock);
	/* written under pool->lock, but read without it (ce_vol_write_would_wait): an atomic store */
	__atomic_store_n(&p->dirty_total, (uint64_t)((int64_t)p->dirty_total + bytes), __ATOMIC_RELAXED);
	if (open) {
		/* Racing a quiesce can move bytes between txgs: never wrap. */
		int64_t o = (int64_t)p->dirty_open + bytes;
		p->dirty_open = o < 0 ? 0 : (uint64_t)o;
	}
	if (bytes < 0 && p->throttled)
		pthread_cond_broadcast(&p->cv_done);
	if (p->dirty_open >= p->opts.dirty_sync)
		pthread_cond_signal(&p->cv_work);
	pthread_mutex_unlock(&p->lock);
}

void
txg_throttle(ce_pool *p)
{
	pthread_mutex_lock(&p->lock);
	while (p->dirty_total > p->opts.dirty_max && !p->suspended && !p->stop) {
		p->throttled = 1;
		pthread_cond_signal(&p->cv_work);
		pthread_cond_wait(&p->cv_done, &p->lock);
	}
	p->throttled = 0;
	pthread_mutex_unlock(&p->lock);
}

int
txg_wait_synced(ce_pool *p, uint64_t t)
{
	int err = 0;
	pthread_mutex_lock(&p->lock);
	if (p->sync_req < t)
		p->sync_req = t;
	pthread_cond_signal(&p->cv_work);
	while (p->synced_txg < t && !p->suspended && p->thread_running)
		pthread_cond_wait(&p->cv_done, &p->lock);
	if (p->synced_txg < t)
		err = p->suspended ? p->suspended : -EIO;
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
	uint64_t t = p->txg_dirty[p->open_txg & 3] ? p->open_txg : p->open_txg - 1;
	pthread_mutex_unlock(&p->lock);
	return txg_wait_synced(p, t);
}

/* At txg t's quiesce point (pool->lock held): what each volume and the holds look like in t. */
void
txg_capture(ce_pool *p, uint64_t t)
{
	for (size_t i = 0; i < p->nvols; i++)
		vol_capture(p->vols[i], t);
	hold_capture(p, t);
}

/* Write out txg t: volumes, then MOS and bitmaps until stable, then commit. */
static int
txg_sync_work(ce_pool *p, uint64_t t)
{
	int err = 0;

	pthread_mutex_lock(&p->lock);
	size_t nv = p->nvols;
	volume **vols = xmalloc((nv ? nv : 1) * sizeof(volume *));
	if (nv > 0)
		memcpy(vols, p->vols, nv * sizeof(volume *));
	pthread_mutex_unlock(&p->lock);

	/*
	 * Pass 1: volume data and trees (blocks a snapshot still references
	 * go to dead lists); then snapshots destroyed and taken in t; then
	 * the dead list objects and every record into the MOS.
	 */
	for (size_t i = 0; i < nv && err == 0; i++) {
		volume *v = vols[i];
		/* Created after t's quiesce, or destroyed by an earlier txg. */
		if (v->snap.txg != t || (v->snap.destroy_txg != 0 && v->snap.destroy_txg < t) || v->is_snap)
			continue;
		/* a volume destroyed with its snapshots: they go first, newest first */
		if (v->snap.doomed)
			err = snap_destroy_chain_sync(p, v, t);
		if (err == 0)
			err = vol_sync(p, v, t);
	}
	for (size_t i = 0; i < nv && err == 0; i++) {
		volume *v = vols[i];
		if (v->is_snap && v->snap.txg == t && v->snap.doomed && v->snap.destroy_txg == t &&
		    v->gone_txg != t)
			err = snap_destroy_sync(p, v, t);
	}
	for (size_t i = 0; i < nv && err == 0; i++) {
		volume *v = vols[i];
		if (!v->is_snap && v->snap.txg == t && v->snap.rollback_txg != 0 && v->snap.rollback_txg <= t &&
		    !v->snap.doomed)
			err = snap_rollback_sync(p, v, t);
	}
	for (size_t i = 0; i < nv && err == 0; i++) {
		volume *v = vols[i];
		if (v->is_snap && v->snap.txg == t && v->snap_txg_pending != 0 && v->snap_txg_pending <= t)
			snap_attach(p, v, t);
	}
	for (size_t i = 0; i < nv && err == 0; i++) {
		volume *v = vols[i];
		if (v->snap.txg != t || (v->snap.destroy_txg != 0 && v->snap.destroy_txg < t))
			continue;
		if (v->snap.doomed) {
			if (v->is_snap && v->slot != VOL_NO_SLOT) {
				ds_phys ds;
				memset(&ds, 0, sizeof(ds));
				mos_ds_put(p, v->slot, &ds);
			}
			continue;
		}
		/* a snapshot's record is written only when it changed */
		int snap_changed = v->snap.rec;
		if (v->is_snap && !snap_changed && !v->dl.changed)
			continue;
		err = dl_sync(p, &v->dl, t);
		if (err == 0) {
			ds_phys ds;
			if (v->slot == VOL_NO_SLOT)
				v->slot = mos_ds_slot_alloc(p);
			pthread_mutex_lock(&v->lock);
			vol_record(v, &ds);
			pthread_mutex_unlock(&v->lock);
			if ((ds.ds_flags & DS_FLAG_LOCAL_MASK) && mos_hdr(p)->mh_version < 5) {
				mos_hdr(p)->mh_version = 5; /* older software would call the record damaged */
				mos_mark_dirty(p, 0, CE_META_BLOCK);
			}
			mos_ds_put(p, v->slot, &ds);
			if (snap_changed)
				v->snap.rec = 0;
		}
	}
	if (err == 0)
		err = hold_sync(p, t);
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
	if (err == 0) {
		uberblock_phys ub;
		memset(&ub, 0, sizeof(ub));
		ub.ub_magic = UB_MAGIC;
		ub.ub_version = CE_FORMAT_VERSION;
		ub.ub_txg = t;
		ub.ub_pool_guid = p->guid;
		ub.ub_timestamp = util_now_ns();
		ub.ub_mos_size = p->mos_size;
		ub.ub_mos_levels = p->mos_tree.levels;
		ub.ub_mos = p->mos_tree.root;
		ilog_ub_fill(p, t, &ub);
		uberblock_seal(&ub);
		err = uberblock_write(p->vds, p->nvdevs, &ub);
		for (unsigned v = 0; v < p->nvdevs && err == 0; v++)
			err = vdev_flush(&p->vds[v]);
		if (err != 0)
			pool_io_error(p, err);
	}
	if (err != 0) {
		wq_discard(p);
		free(vols);
		return err;
	}
	pthread_rwlock_wrlock(&p->free_lock);
	alloc_commit_done(&p->alloc);
	pthread_rwlock_unlock(&p->free_lock);
	ilog_ub_durable(p, t);

	/* Volumes destroyed in this txg are gone for good now. */
	pthread_mutex_lock(&p->lock);
	size_t k = 0;
	for (size_t i = 0; i < p->nvols; i++) {
		volume *v = p->vols[i];
		/* A log batch in flight still reads it: the next commit frees it. */
		if (v->destroy_txg != 0 && v->destroy_txg <= t && v->ilog_refs == 0 && v->refs == 0) {
			vol_delete(v);
		} else {
			p->vols[k++] = v;
		}
	}
	p->nvols = k;
	pthread_mutex_unlock(&p->lock);
	free(vols);
	return 0;
}

int
txg_sync_one(ce_pool *p, uint64_t t)
{
	blk_sync_begin(p, t);
	int err = txg_sync_work(p, t);
	blk_sync_end();
	return err;
}

static void *
sync_thread(void *arg)
{
	ce_pool *p = arg;
	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		uint64_t now = util_now_ns();
		uint64_t open = p->open_txg;
		int dirty = p->txg_dirty[open & 3];
		uint64_t deadline = p->open_since_ns + (uint64_t)p->opts.txg_timeout_ms * 1000000ull;
		int want = !p->suspended &&
		    (p->sync_req >= open || (dirty && (p->dirty_open >= p->opts.dirty_sync ||
		    p->throttled || now >= deadline)));
		if (!want) {
			struct timespec ts;
			uint64_t wake = (dirty && !p->suspended) ? deadline : now + 1000000000ull;
			if (wake > now + 1000000000ull)
				wake = now + 1000000000ull;
			ts.tv_sec = (time_t)(wake / 1000000000ull);
			ts.tv_nsec = (long)(wake % 1000000000ull);
			pthread_cond_timedwait(&p->cv_work, &p->lock, &ts);
			continue;
		}
		/* Quiesce: close txg `open` to new writers and wait for the ones inside. */
		p->open_txg = open + 1;
		p->txg_dirty[(open + 1) & 3] = 0;
		p->open_since_ns = 0;
		p->dirty_open = 0;
		/* Same critical section as the bump: later management ops belong to open + 1. */
		txg_capture(p, open);
		while (p->holds[open & 3] > 0)
			pthread_cond_wait(&p->cv_done, &p->lock);
		p->syncing_txg = open;
		pthread_mutex_unlock(&p->lock);

		int err = txg_sync_one(p, open);

		pthread_mutex_lock(&p->lock);
		p->syncing_txg = 0;
		if (err != 0) {
			p->suspended = err;
			snprintf(p->suspend_reason, sizeof(p->suspend_reason),
			    "txg %llu could not be committed: %s", (unsigned long long)open,
			    err == -EIO ? "IO error on a vdev" : strerror(-err));
		} else
			p->synced_txg = open;
		pthread_cond_broadcast(&p->cv_done);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int
txg_start(ce_pool *p)
{
	p->stop = 0;
	int err = pthread_create(&p->sync_thread, NULL, sync_thread, p);
	if (err != 0)
		return err_set(-err, "cannot start the sync thread");
	p->thread_running = 1;
	return 0;
}

void
txg_stop(ce_pool *p)
{
	if (!p->thread_running)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	pthread_cond_broadcast(&p->cv_work);
	pthread_cond_broadcast(&p->cv_done);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->sync_thread, NULL);
	pthread_mutex_lock(&p->lock);
	p->thread_running = 0;
	pthread_cond_broadcast(&p->cv_done);
	pthread_mutex_unlock(&p->lock);
}
