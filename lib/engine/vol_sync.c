/*
 * vol_sync.c -- a dataset's part of writing txg t, called by pool_sync.c
 * for each dataset on t's dirty list.
 *
 * vol_sync writes a volume's dirty blocks of t (through the sync
 * pipeline, pipe.c: prepared on its workers, placed in key order here)
 * and punches its trimmed ranges into its tree (blocks a snapshot still references go to the dead
 * list: snap_kill), then installs the new root and drops t's maps in one
 * critical section (vol.c invariant 4). vol_destroy_sync frees the tree of
 * a volume destroyed in t; vol_sync_record writes the dead list and the
 * record (the image settled for t, dataset.c invariant 3).
 *
 * Invariants:
 *   1. Only the sync thread of t runs here (ASSERT(pool_sync_thread)).
 *   2. A dataset's record is written only after its data and t's sync
 *      tasks (pool_sync.c invariant 2), from the image settled for t.
 *   3. What t's maps charged is released when they are dropped
 *      (release_txg), written or not.
 */
#include "vol.h"
#include "blkio.h"
#include "dataset.h"
#include "deadlist.h"
#include "mos.h"
#include "pipe.h"
#include "snap.h"
#include "txg.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

/* ---- sync ---- */

static void
release_txg(ce_pool *p, volume *v, int i)
{
	uint64_t charged = v->charged[i], dbytes = v->dbytes[i];
	v->charged[i] = 0;
	v->dbytes[i] = 0;
	vol_drop_maps(v, i);
	alloc_uncharge(&p->alloc, charged);
	txg_dirty_add(p, -(int64_t)dbytes, 0);
}

/* txg t destroys volume v (its snapshots went first): its tree and dead list object are freed. */
int
vol_destroy_sync(ce_pool *p, volume *v, uint64_t t)
{
	int i = t & 1;
	VERIFY(!v->is_snap && vol_destroyed_by(v, t));
	ASSERT(pool_sync_thread(p));
	pthread_mutex_lock(&v->lock);
	cowtree ts = v->tree;
	pthread_mutex_unlock(&v->lock);
	ct_acct acct = { 0 };
	snap_doomed_acct(v, &acct); /* a clone: what its origin holds stays */
	int err = cowtree_free_range(p, &ts, t, 0, cowtree_capacity(ts.levels), &acct);
	if (err != 0)
		return err;
	/* a clone's dead list (blocks its origin holds) goes with it: only its object is freed */
	ct_acct meta = { 0 };
	err = cowtree_free_range(p, &v->dl.tree, t, 0, cowtree_capacity(v->dl.tree.levels), &meta);
	if (err != 0)
		return err;
	pthread_mutex_lock(&v->lock);
	v->tree = ts;
	v->used += acct.used;
	v->logical += acct.logical;
	VERIFY3U(v->used, ==, 0);
	if (v->dtxg[i] == t)
		release_txg(p, v, i);
	v->gen++;
	pthread_mutex_unlock(&v->lock);
	if (v->slot != VOL_NO_SLOT) {
		ds_phys ds;
		memset(&ds, 0, sizeof(ds));
		mos_ds_put(p, v->slot, &ds);
	}
	return 0;
}

/* Volume v's data of txg t: its dirty blocks into the tree, the new root installed. */
int
vol_sync(ce_pool *p, volume *v, uint64_t t)
{
	int i = t & 1, err = 0;
	ct_acct acct = { 0 };
	if (v->prev != NULL) {
		/* what the newest snapshot still references goes to the dead list */
		acct.kill = snap_kill;
		acct.kill_arg = v;
		acct.keep_txg = v->prev_txg;
	}

	VERIFY3U(v->snap_txg, ==, t); /* settled: the image below is t's */
	ASSERT(pool_sync_thread(p));
	pthread_mutex_lock(&v->lock);
	if (v->dtxg[i] != t && v->tree.levels >= v->snap.want_levels) {
		pthread_mutex_unlock(&v->lock);
		return 0;
	}
	size_t n = 0;
	uint64_t *keys = v->dtxg[i] == t ? htab_sorted_keys(&v->dirty[i], &n) : xmalloc(8);
	size_t nfr = v->dtxg[i] == t ? v->nfr[i] : 0;
	vrange *fr = xmalloc((nfr ? nfr : 1) * sizeof(vrange));
	if (nfr)
		memcpy(fr, v->fr[i], nfr * sizeof(vrange));
	cowtree ts = v->tree;
	uint8_t want = v->snap.want_levels;
	int comp = v->snap.compress, ck = v->snap.checksum;
	uint64_t nblocks = v->snap.size / v->bs;
	pthread_mutex_unlock(&v->lock);

	ct_leaf *leaves = xmalloc((n ? n : 1) * sizeof(ct_leaf));
	void **datas = xmalloc((n ? n : 1) * sizeof(void *));
	/* hashes a receive already computed (vol.c invariant 7): slot i is frozen, no lock needed */
	const uint8_t **known = v->nkh[i] > 0 && ck == CE_CK_XXH128 ? xmalloc(n * sizeof(*known)) : NULL;
	size_t nl = 0, kcur = 0;

	if (ts.levels < want)
		err = cowtree_grow(p, &ts, t, want, &acct);
	for (size_t k = 0; k < nfr && err == 0; k++)
		err = cowtree_free_range(p, &ts, t, fr[k].start,
		    MIN(fr[k].end, cowtree_capacity(ts.levels)), &acct);
	for (size_t k = 0; k < n && err == 0; k++) {
		void *d = htab_get(&v->dirty[i], keys[k]);
		VERIFY(d != NULL);
		if (keys[k] >= nblocks)
			continue; /* shrunk away in this txg */
		leaves[nl].blkid = keys[k];
		datas[nl] = d;
		if (known != NULL)
			known[nl] = vol_known_hash(v, i, keys[k], d, &kcur);
		nl++;
	}
	/* compressed and checksummed on the pipeline's workers, placed here in key order (pipe.c) */
	if (err == 0)
		err = pipe_write(p, t, datas, known, leaves, nl, v->bs, comp, ck);
	if (err == 0)
		err = cowtree_apply(p, &ts, t, leaves, nl, &acct);
	if (err == 0)
		err = wq_flush(p);
	if (err == 0) {
		pthread_mutex_lock(&v->lock);
		v->tree = ts;
		v->used += acct.used;
		v->logical += acct.logical;
		v->written += acct.written;
		if (v->dtxg[i] == t) {
			/* Hand the written buffers to the cache instead of freeing them. */
			for (size_t k = 0; k < nl; k++) {
				if (datas[k] != VOL_HOLE) {
					cache_put_owned(&p->cache, &leaves[k].bp, datas[k]);
					htab_put(&v->dirty[i], leaves[k].blkid, VOL_HOLE);
				}
			}
			release_txg(p, v, i);
		}
		v->gen++;
		pthread_mutex_unlock(&v->lock);
	}
	free(keys);
	free(fr);
	free(leaves);
	free(datas);
	free(known);
	return err;
}

/*
 * Pass 1 of txg t, after its data and sync tasks: the dead list and the
 * record of dataset v, which changed in t.
 */
int
vol_sync_record(ce_pool *p, volume *v, uint64_t t)
{
	pthread_mutex_lock(&p->lock);
	int gone = vol_destroyed_by(v, t);
	pthread_mutex_unlock(&p->lock);
	if (gone) {
		/* a destroyed volume's record went with its tree (vol_destroy_sync) */
		if (v->is_snap && v->slot != VOL_NO_SLOT) {
			ds_phys ds;
			memset(&ds, 0, sizeof(ds));
			mos_ds_put(p, v->slot, &ds);
		}
		repl_record(p, v, t); /* and a replica volume's slot goes with it */
		return 0;
	}
	VERIFY3U(v->snap_txg, ==, t);
	int err = dl_sync(p, &v->dl, t);
	if (err != 0)
		return err;
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
	repl_record(p, v, t); /* a replica volume's record, settled with the image above */
	return 0;
}
