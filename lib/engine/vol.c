/*
 * vol.c -- volumes: thin block devices made of a copy-on-write tree.
 *
 * Owns each volume's in-memory state (struct volume): its committed tree,
 * and per transaction group the dirty blocks and punched ranges that are
 * not yet in the tree. Also the management operations (create, destroy,
 * rename, resize, set) and the volume's part of a txg sync (vol_sync).
 *
 * Invariants:
 *   1. A block's current contents are, newest first: its dirty buffer or
 *      punched range in the open txg, then in the syncing txg, then the
 *      committed tree. Readers take exactly that order under v->lock,
 *      capturing the tree root in the same critical section.
 *   2. A writer holding txg t changes only the maps of txg t, and also
 *      the copy in txg t+1 when one exists (t is then quiescing), so that
 *      concurrent writes to different bytes of one block are never lost.
 *   3. Read-modify-write takes its base from txgs <= t only. When it has
 *      to read the tree it drops the lock, and retries if v->gen changed
 *      meanwhile.
 *   4. The maps of a syncing txg are frozen: nobody adds to them. The
 *      sync thread writes them out, then installs the new root and drops
 *      the maps in one critical section (vol_sync).
 *   5. Every dirty data block is charged against free space when it first
 *      becomes dirty in a txg (its size plus one path of new indirect
 *      blocks when its parent is not yet charged), so a full pool fails
 *      the write with -ENOSPC instead of failing the sync. Holes are
 *      never charged: trim and destroy always work.
 *
 * Management operations change the in-memory state in the open txg and
 * wait for that txg to commit before returning.
 */
#include "vol.h"
#include "bufpool.h"
#include "checksum.h"
#include "prop.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

char vol_hole_marker;

#define TRIM_RANGE_MIN 64u  /* punch by range at or above this many blocks */
#define READ_BATCH 256u     /* blocks resolved per read batch */

static int
name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > CE_NAME_MAX || !isalnum((unsigned char)name[0]))
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (!isalnum(c) && c != '_' && c != '-' && c != '.' && c != ':')
			return 0;
	}
	return 1;
}

static volume *
vol_new(ce_pool *p)
{
	volume *v = xcalloc(1, sizeof(*v));
	v->pool = p;
	pthread_mutex_init(&v->lock, NULL);
	for (int i = 0; i < 2; i++) {
		htab_init(&v->dirty[i]);
		htab_init(&v->parents[i]);
	}
	v->slot = VOL_NO_SLOT;
	dl_init(&v->dl);
	v->tree.leaf_type = BP_DATA;
	v->tree.ind_comp = CE_COMP_LZ4;
	v->tree.cktype = CE_CK_XXH128;
	return v;
}

static void
drop_maps(volume *v, int i)
{
	size_t it = 0;
	uint64_t k;
	void *d;
	while (htab_next(&v->dirty[i], &it, &k, &d))
		if (d != VOL_HOLE)
			bufpool_put(d, v->bs);
	htab_clear(&v->dirty[i]);
	htab_clear(&v->parents[i]);
	v->nfr[i] = 0;
	v->dtxg[i] = 0;
}

void
vol_delete(volume *v)
{
	for (int i = 0; i < 2; i++) {
		drop_maps(v, i);
		htab_fini(&v->dirty[i]);
		htab_fini(&v->parents[i]);
		free(v->fr[i]);
	}
	dl_fini(&v->dl);
	repl_free(v);
	pthread_mutex_destroy(&v->lock);
	free(v);
}

/* Live volume by name; caller holds pool->lock. */
static volume *
find_vol(ce_pool *p, const char *name)
{
	for (size_t i = 0; i < p->nvols; i++)
		if (p->vols[i]->destroy_txg == 0 && strcmp(p->vols[i]->name, name) == 0)
			return p->vols[i];
	return NULL;
}

static void
add_vol(ce_pool *p, volume *v)
{
	if (p->nvols == p->capvols) {
		p->capvols = p->capvols ? p->capvols * 2 : 16;
		p->vols = xrealloc(p->vols, p->capvols * sizeof(volume *));
	}
	p->vols[p->nvols++] = v;
}

/* The record fields a management operation changes, as they are now (see volume.snap). */
static void
capture_fields(volume *v)
{
	snprintf(v->snap.name, sizeof(v->snap.name), "%s", v->name);
	v->snap.size = v->size;
	v->snap.compress = v->compress;
	v->snap.checksum = v->checksum;
	v->snap.sync = v->sync;
	v->snap.local_props = v->local_props;
	v->snap.want_levels = v->want_levels;
}

void
vol_capture(volume *v, uint64_t t)
{
	v->snap.txg = t;
	v->snap.destroy_txg = v->destroy_txg;
	v->snap.rollback_txg = v->rollback_txg;
	if (v->is_snap && (v->rec_txg == 0 || v->rec_txg > t)) {
		/* an unchanged snapshot: nothing of it is written this txg (unless its sync changes it) */
		v->snap.doomed = v->destroy_txg != 0 && v->destroy_txg <= t;
		return;
	}
	if (v->is_snap) {
		/* the change is t's now: a rename in t + 1 marks t + 1, and t still writes this one */
		v->snap.rec = 1;
		v->rec_txg = 0;
	}
	capture_fields(v);
	v->snap.doomed = v->destroy_txg != 0 && v->destroy_txg <= t;
	v->rcap.receiving = v->receiving;
	v->rcap.rs = v->rs;
	repl_capture(v, t);
}

void
vol_record(const volume *v, ds_phys *ds)
{
	memset(ds, 0, sizeof(*ds));
	ds->ds_guid = v->guid;
	ds->ds_type = v->is_snap ? DS_TYPE_SNAPSHOT : DS_TYPE_VOLUME;
	ds->ds_flags = ((uint32_t)v->snap.sync & DS_FLAG_SYNC_MASK) |
	    (v->is_snap ? 0 : (v->snap.local_props << DS_FLAG_LOCAL_SHIFT) & DS_FLAG_LOCAL_MASK);
	ds->ds_size = v->snap.size;
	ds->ds_volblocksize = v->bs;
	ds->ds_levels = v->tree.levels;
	ds->ds_compress = (uint8_t)v->snap.compress;
	ds->ds_checksum = (uint8_t)v->snap.checksum;
	ds->ds_create_txg = v->create_txg;
	ds->ds_used = (uint64_t)v->used;
	ds->ds_logical = (uint64_t)v->logical;
	ds->ds_ctime = v->ctime;
	ds->ds_root = v->tree.root;
	snprintf(ds->ds_name, sizeof(ds->ds_name), "%s", v->snap.name);
	ds->ds_prev_guid = v->prev ? v->prev->guid : 0;
	ds->ds_prev_txg = v->prev ? v->prev_txg : 0;
	ds->ds_head_guid = v->is_snap ? v->head->guid : 0;
	ds->ds_dl_count = v->dl.n;
	ds->ds_dl_bytes = v->dl.bytes;
	ds->ds_dl_levels = v->dl.tree.levels;
	ds->ds_dl_root = v->dl.tree.root;
	ds->ds_recv = v->is_snap ? 0 : (uint8_t)v->rcap.receiving;
	ds->ds_send_guid = v->is_snap ? v->send_guid : 0;
	/* the role as of the captured record, so the dataset and the replica object agree */
	if (!v->is_snap && v->rp != NULL && v->rp->cap.rp_ds_guid != 0) {
		ds->ds_role = DS_ROLE_REPLICA;
		ds->ds_repl_idx = v->rp->idx;
	}
}

static int
ds_valid(const ds_phys *dsp)
{
	ds_phys ds = *dsp;
	int snap = ds.ds_type == DS_TYPE_SNAPSHOT;
	if (memchr(ds.ds_name, '\0', sizeof(ds.ds_name)) == NULL)
		return 0;
	if (snap) {
		/* VOL@SNAP, both parts valid names */
		char *at = strchr(ds.ds_name, '@');
		if (at == NULL || ds.ds_head_guid == 0)
			return 0;
		*at = '\0';
		if (!name_valid(at + 1))
			return 0;
	} else if (ds.ds_head_guid != 0) {
		return 0;
	}
	if (ds.ds_dl_count > (UINT64_MAX >> 12) || (ds.ds_prev_guid == 0) != (ds.ds_prev_txg == 0))
		return 0;
	if (ds.ds_recv > 1 || (snap && ds.ds_recv) || (!snap && ds.ds_send_guid != 0))
		return 0;
	if (ds.ds_role > DS_ROLE_REPLICA || (snap && ds.ds_role) || (ds.ds_role == 0 && ds.ds_repl_idx != 0))
		return 0;
	return !((ds.ds_type != DS_TYPE_VOLUME && !snap) || !IS_P2(ds.ds_volblocksize) ||
		    ds.ds_volblocksize < CE_VOLBLOCKSIZE_MIN || ds.ds_volblocksize > CE_VOLBLOCKSIZE_MAX ||
		    ds.ds_levels == 0 || ds.ds_levels > 8 || ds.ds_compress > CE_COMP_MAX ||
		    !checksum_valid_type(ds.ds_checksum) || ds.ds_size % ds.ds_volblocksize != 0 ||
		    (ds.ds_flags & ~(DS_FLAG_SYNC_MASK | DS_FLAG_LOCAL_MASK)) != 0 || (ds.ds_flags & DS_FLAG_SYNC_MASK) > CE_SYNC_DISABLED ||
		    memchr(ds.ds_name, '\0', sizeof(ds.ds_name)) == NULL || !name_valid(ds.ds_name) ||
		    ds.ds_size == 0 || ds.ds_size / ds.ds_volblocksize > cowtree_capacity(7));
}

/* A volume as its committed record says. */
static void
vol_fill(volume *v, const ds_phys *dsp, uint32_t s)
{
	ds_phys ds = *dsp;
		v->guid = ds.ds_guid;
		v->size = ds.ds_size;
		v->bs = ds.ds_volblocksize;
		v->compress = ds.ds_compress;
		v->checksum = ds.ds_checksum;
		v->sync = (int)(ds.ds_flags & DS_FLAG_SYNC_MASK);
		v->local_props = (ds.ds_flags & DS_FLAG_LOCAL_MASK) >> DS_FLAG_LOCAL_SHIFT;
		v->create_txg = ds.ds_create_txg;
		v->ctime = ds.ds_ctime;
		v->used = (int64_t)ds.ds_used;
		v->logical = (int64_t)ds.ds_logical;
		v->tree.root = ds.ds_root;
		v->tree.levels = ds.ds_levels;
		v->tree.bsize = v->bs;
		v->want_levels = MAX(ds.ds_levels, cowtree_levels_for(v->size / v->bs));
		v->slot = s;
		snprintf(v->name, sizeof(v->name), "%s", ds.ds_name);
	v->is_snap = ds.ds_type == DS_TYPE_SNAPSHOT;
	v->load_prev = ds.ds_prev_guid;
	v->load_head = ds.ds_head_guid;
	v->prev_txg = ds.ds_prev_txg;
	v->rec_txg = 0;
	v->snap.rec = 0;
	v->send_guid = ds.ds_send_guid;
	v->receiving = v->rcap.receiving = ds.ds_recv;
	v->load_role = ds.ds_role;
	v->load_repl_idx = ds.ds_repl_idx;
	memset(&v->rs, 0, sizeof(v->rs));
	v->rcap.rs = v->rs;
	/* what a record written later (without a full capture) is made of */
	capture_fields(v);
}

/* Dataset record s: 1 a valid volume, 0 a free slot, -EIO damaged. */
static int
record_at(ce_pool *p, uint32_t s, ds_phys *ds)
{
	mos_ds_get(p, s, ds);
	if (ds->ds_guid == 0)
		return 0;
	if (!ds_valid(ds))
		return err_set(-EIO, "pool %s: dataset record %u is damaged", p->name, s);
	return 1;
}

int
vol_load_all(ce_pool *p)
{
	uint32_t cap = mos_ds_capacity(p);
	for (uint32_t s = 0; s < cap; s++) {
		ds_phys ds;
		int r = record_at(p, s, &ds);
		if (r <= 0) {
			if (r < 0)
				return r;
			continue;
		}
		volume *v = vol_new(p);
		vol_fill(v, &ds, s);
		add_vol(p, v);
		if (dl_load(p, &v->dl, &ds) != 0)
			return err_set(-EIO, "pool %s: the dead list of %s is damaged", p->name, v->name);
	}
	int lerr = snap_link_all(p);
	if (lerr == 0)
		lerr = hold_load(p);
	if (lerr == 0)
		lerr = recv_table_load(p);
	return lerr != 0 ? lerr : repl_load(p);
}

/* ce_pool_clear: forget a volume's dirty state and pending operations (v->lock held). */
static void
forget_pending(volume *v)
{
	for (int i = 0; i < 2; i++) {
		drop_maps(v, i);
		v->charged[i] = 0; /* the allocator was rebuilt: no charges exist */
		v->dbytes[i] = 0;
	}
	v->snap_txg_pending = 0;
	v->rollback_txg = 0;
	v->gen++;
}

/*
 * ce_pool_clear: make every volume what the freshly loaded MOS says,
 * keeping the volume objects (open handles point at them). Dirty state is
 * dropped; volumes the MOS does not have are doomed, new ones are added.
 * Caller: sync thread stopped, no writers inside a txg, free_lock held
 * for writing.
 */
int
vol_reload_all(ce_pool *p)
{
	uint32_t cap = mos_ds_capacity(p);
	for (uint32_t s = 0; s < cap; s++) {
		ds_phys ds;
		int r = record_at(p, s, &ds);
		if (r < 0)
			return r; /* before anything changed */
	}
	size_t nold = p->nvols;
	uint8_t *seen = xcalloc(nold ? nold : 1, 1);
	for (uint32_t s = 0; s < cap; s++) {
		ds_phys ds;
		if (record_at(p, s, &ds) != 1)
			continue;
		volume *v = NULL;
		for (size_t i = 0; i < nold; i++)
			if (p->vols[i]->guid == ds.ds_guid)
				v = p->vols[i], seen[i] = 1;
		if (v == NULL) {
			v = vol_new(p);
			add_vol(p, v);
		}
		pthread_mutex_lock(&v->lock);
		forget_pending(v);
		vol_fill(v, &ds, s);
		v->destroy_txg = 0;
		pthread_mutex_unlock(&v->lock);
		dl_fini(&v->dl);
		if (dl_load(p, &v->dl, &ds) != 0) {
			free(seen);
			return err_set(-EIO, "pool %s: the dead list of %s is damaged", p->name, v->name);
		}
	}
	for (size_t i = 0; i < nold; i++) {
		volume *v = p->vols[i];
		if (seen[i])
			continue;
		/* Created in a txg that never committed: gone. */
		pthread_mutex_lock(&v->lock);
		forget_pending(v);
		v->slot = VOL_NO_SLOT;
		if (v->destroy_txg == 0)
			v->destroy_txg = p->synced_txg;
		v->load_prev = v->load_head = 0;
		pthread_mutex_unlock(&v->lock);
		dl_fini(&v->dl);
		dl_init(&v->dl);
	}
	free(seen);
	/* link only the living: the doomed keep no pointers */
	int lerr = snap_link_all(p);
	if (lerr == 0)
		lerr = hold_load(p);
	if (lerr == 0)
		lerr = recv_table_load(p);
	return lerr != 0 ? lerr : repl_load(p);
}

void
vol_free_all(ce_pool *p)
{
	for (size_t i = 0; i < p->nvols; i++)
		vol_delete(p->vols[i]);
	free(p->vols);
	p->vols = NULL;
	p->nvols = p->capvols = 0;
}

/* ---- per-txg dirty state ---- */

static void
map_claim(volume *v, uint64_t t)
{
	int i = t & 1;
	if (v->dtxg[i] == 0)
		v->dtxg[i] = t;
	VERIFY3U(v->dtxg[i], ==, t);
}

static int
fr_covers(const volume *v, int i, uint64_t blkid)
{
	for (size_t k = 0; k < v->nfr[i]; k++)
		if (blkid >= v->fr[i][k].start && blkid < v->fr[i][k].end)
			return 1;
	return 0;
}

/* Newest dirty state of blkid in txgs <= maxtxg: 1 and *data (buffer or VOL_HOLE), or 0. */
static int
dirty_lookup(const volume *v, uint64_t maxtxg, uint64_t blkid, void **data)
{
	int first = v->dtxg[0] >= v->dtxg[1] ? 0 : 1;
	for (int n = 0; n < 2; n++) {
		int i = n == 0 ? first : !first;
		if (v->dtxg[i] == 0 || v->dtxg[i] > maxtxg)
			continue;
		void *d = htab_get(&v->dirty[i], blkid);
		if (d != NULL) {
			*data = d;
			return 1;
		}
		if (fr_covers(v, i, blkid)) {
			*data = VOL_HOLE;
			return 1;
		}
	}
	return 0;
}

static void *
zbuf(const volume *v)
{
	void *b = bufpool_get(v->bs);
	memset(b, 0, v->bs);
	return b;
}

static int
charge_block(volume *v, int i, uint64_t blkid)
{
	uint64_t need = v->bs / CE_SECTOR, pk = 0;
	int new_parent = 0;
	if (v->want_levels > 1) {
		pk = (blkid >> CE_IND_SHIFT);
		if (htab_get(&v->parents[i], pk) == NULL) {
			need += (uint64_t)(v->want_levels - 1) * (CE_IND_SIZE / CE_SECTOR);
			new_parent = 1;
		}
	}
	int err = alloc_charge(&v->pool->alloc, need, 0);
	if (err != 0)
		return err_set(err, "pool %s is full", v->pool->name);
	if (new_parent)
		htab_put(&v->parents[i], pk, VOL_HOLE);
	v->charged[i] += need;
	return 0;
}

/*
 * Store data (owned buffer or VOL_HOLE) as blkid's contents in txg t. A
 * whole-block write also replaces a newer copy (invariant 2); a partial
 * write passes whole = 0 and patches the newer copy itself, because
 * copying its whole block would clobber other writers' bytes there.
 */
static int
put_block(volume *v, uint64_t t, uint64_t blkid, void *data, int whole, int64_t *ddelta)
{
	int i = t & 1, j = !i;
	map_claim(v, t);
	void *old = htab_get(&v->dirty[i], blkid);
	if ((old == NULL || old == VOL_HOLE) && data != VOL_HOLE) {
		int err = charge_block(v, i, blkid);
		if (err != 0)
			return err;
	}
	htab_put(&v->dirty[i], blkid, data);
	if (old != NULL && old != VOL_HOLE) {
		bufpool_put(old, v->bs);
		v->dbytes[i] -= v->bs;
		*ddelta -= v->bs;
	}
	if (data != VOL_HOLE) {
		v->dbytes[i] += v->bs;
		*ddelta += v->bs;
	}
	/* Invariant 2: a newer copy of this block must see this write too. */
	if (whole && v->dtxg[j] == t + 1) {
		void *e = htab_get(&v->dirty[j], blkid);
		if (e != NULL) {
			void *copy = VOL_HOLE;
			if (data != VOL_HOLE) {
				copy = bufpool_get(v->bs);
				memcpy(copy, data, v->bs);
			}
			htab_put(&v->dirty[j], blkid, copy);
			if (e != VOL_HOLE)
				bufpool_put(e, v->bs);
			else if (copy != VOL_HOLE)
				v->dbytes[j] += v->bs, *ddelta += v->bs;
			if (copy == VOL_HOLE && e != VOL_HOLE)
				v->dbytes[j] -= v->bs, *ddelta -= v->bs;
		}
	}
	v->gen++;
	return 0;
}

static void
apply_bytes(uint8_t *blk, uint32_t boff, uint32_t len, const void *src)
{
	if (src != NULL)
		memcpy(blk + boff, src, len);
	else
		memset(blk + boff, 0, len);
}

/* Write part of a block in txg t (src NULL: zeros). */
static int
rmw_block(volume *v, uint64_t t, uint64_t blkid, uint32_t boff, uint32_t len, const void *src,
    int64_t *ddelta)
{
	ce_pool *p = v->pool;
	int i = t & 1, j = !i;
	for (;;) {
		pthread_mutex_lock(&v->lock);
		void *e = v->dtxg[i] == t ? htab_get(&v->dirty[i], blkid) : NULL;
		uint8_t *nb = NULL;
		if (e != NULL && e != VOL_HOLE) {
			apply_bytes(e, boff, len, src);
		} else {
			void *base;
			if (e == VOL_HOLE) {
				nb = zbuf(v);
			} else if (dirty_lookup(v, t, blkid, &base)) {
				nb = bufpool_get(v->bs);
				if (base == VOL_HOLE)
					memset(nb, 0, v->bs);
				else
					memcpy(nb, base, v->bs);
			} else {
				uint64_t gen0 = v->gen;
				cowtree ts = v->tree;
				pthread_mutex_unlock(&v->lock);
				nb = bufpool_get(v->bs);
				bp_phys bp;
				pthread_rwlock_rdlock(&p->free_lock);
				int err = cowtree_lookup(p, &ts, blkid, &bp);
				if (err == 0)
					err = bp_is_hole(&bp) ? (memset(nb, 0, v->bs), 0)
							      : blk_read(p, &bp, nb, 0, v->bs);
				pthread_rwlock_unlock(&p->free_lock);
				if (err != 0) {
					bufpool_put(nb, v->bs);
					return err_set(err, "%s: read of block %" PRIu64
					    " for a partial write failed", v->name, blkid);
				}
				pthread_mutex_lock(&v->lock);
				if (v->gen != gen0) {
					pthread_mutex_unlock(&v->lock);
					bufpool_put(nb, v->bs);
					continue;
				}
			}
			apply_bytes(nb, boff, len, src);
			int err = put_block(v, t, blkid, nb, 0, ddelta);
			if (err != 0) {
				pthread_mutex_unlock(&v->lock);
				bufpool_put(nb, v->bs);
				return err;
			}
		}
		/* Invariant 2 for partial writes: patch a newer copy with these bytes only. */
		if (v->dtxg[j] == t + 1) {
			void *ne = htab_get(&v->dirty[j], blkid);
			if (ne == VOL_HOLE) {
				ne = zbuf(v);
				htab_put(&v->dirty[j], blkid, ne);
				v->dbytes[j] += v->bs;
				*ddelta += v->bs;
			}
			if (ne != NULL)
				apply_bytes(ne, boff, len, src);
		}
		v->gen++;
		pthread_mutex_unlock(&v->lock);
		return 0;
	}
}

/*
 * After ce_pool_clear, writes that were acknowledged but not flushed
 * before the failure are gone. A handle opened before the clear must not
 * write or flush as if nothing happened (a later FLUSH would claim those
 * writes durable): it gets EIO until it is reopened, like a connection to
 * a server that crashed.
 */
static int
stale_check(const ce_vol *h)
{
	ce_pool *p = h->v->pool;
	if (h->clear_gen != atomic_load(&p->clear_gen))
		return err_set(-EIO, "pool %s was cleared after an IO error: writes not flushed before "
		    "it were lost; reopen volume %s", p->name, h->v->name);
	return 0;
}

static int
check_range(const volume *v, uint64_t off, uint64_t len)
{
	if (off > v->size || len > v->size - off)
		return err_set(-EINVAL, "%s: range %" PRIu64 "+%" PRIu64 " is beyond the end (%" PRIu64
		    " bytes)", v->name, off, len, v->size);
	return 0;
}

/* Apply a write (src) or zeroing (src NULL) block by block within txg t. */
static int
write_blocks(volume *v, uint64_t t, const uint8_t *src, uint64_t len, uint64_t off, int64_t *dd)
{
	while (len > 0) {
		uint64_t blkid = off / v->bs;
		uint32_t boff = (uint32_t)(off % v->bs);
		uint32_t n = (uint32_t)MIN((uint64_t)(v->bs - boff), len);
		int err;
		if (n == v->bs && src != NULL) {
			void *nb = bufpool_get(v->bs);
			memcpy(nb, src, v->bs);
			pthread_mutex_lock(&v->lock);
			err = put_block(v, t, blkid, nb, 1, dd);
			pthread_mutex_unlock(&v->lock);
			if (err != 0)
				bufpool_put(nb, v->bs);
		} else if (n == v->bs) {
			pthread_mutex_lock(&v->lock);
			err = put_block(v, t, blkid, VOL_HOLE, 1, dd);
			pthread_mutex_unlock(&v->lock);
		} else {
			err = rmw_block(v, t, blkid, boff, n, src, dd);
		}
		if (err != 0)
			return err;
		off += n;
		len -= n;
		if (src != NULL)
			src += n;
	}
	return 0;
}

static int
vol_modify(ce_vol *h, const void *buf, size_t len, uint64_t off)
{
	volume *v = h->v;
	ce_pool *p = v->pool;
	int err, retried = 0;

	err_clear();
	if (p->readonly)
		return err_set(-EROFS, "pool %s is imported read-only", p->name);
	if (v->destroy_txg != 0)
		return err_set(-ENOENT, "volume %s/%s no longer exists", p->name, v->name);
	if (v->is_snap)
		return err_set(-EROFS, "%s/%s is a snapshot: read-only", p->name, v->name);
	if (v->rp != NULL && !h->repl)
		return err_setc(CE_E_REPLICA_READ_ONLY, -EROFS, "%s/%s is a replica volume: only its "
		    "controller writes it", p->name, v->name);
	if ((err = stale_check(h)) != 0)
		return err;
	if ((err = check_range(v, off, len)) != 0)
		return err;
	const uint8_t *src = buf;
	while (len > 0) {
		uint64_t chunk = MIN((uint64_t)len, (uint64_t)v->bs * 256);
		int64_t dd = 0;
		txg_throttle(p);
		uint64_t t = txg_hold(p, &err);
		if (err != 0)
			return err;
		err = write_blocks(v, t, src, chunk, off, &dd);
		txg_rele(p, t);
		txg_dirty_add(p, dd, 1);
		/* Even a failed chunk may have changed some blocks: log what is there now. */
		ilog_append(v, src != NULL ? LR_WRITE : LR_ZERO, off, chunk, t);
		if (err == -ENOSPC && !retried) {
			/* Space freed by earlier txgs comes back when they commit. */
			retried = 1;
			int serr = txg_sync_now(p);
			if (serr != 0)
				return serr;
			continue;
		}
		if (err != 0)
			return err;
		retried = 0;
		off += chunk;
		len -= chunk;
		if (src != NULL)
			src += chunk;
	}
	return 0;
}

/* sync=always: what just returned must be durable. */
static int
sync_always(volume *v, int err)
{
	if (err == 0 && v->sync == CE_SYNC_ALWAYS)
		err = ilog_commit(v->pool, v);
	return err;
}

int
ce_vol_write(ce_vol *h, const void *buf, size_t len, uint64_t off)
{
	if (buf == NULL)
		return err_set(-EINVAL, "write: no buffer");
	return sync_always(h->v, vol_modify(h, buf, len, off));
}

/* A hint for callers that must not block: a write now would wait for the sync thread (too much dirty data). */
int
ce_vol_write_would_wait(const ce_vol *h)
{
	ce_pool *p = h->v->pool;
	return __atomic_load_n(&p->dirty_total, __ATOMIC_RELAXED) > p->opts.dirty_max;
}

/* CE_WRITE_FUA: durable on return (a log commit of this volume; none with sync=disabled). */
int
ce_vol_write_flags(ce_vol *h, const void *buf, size_t len, uint64_t off, unsigned flags)
{
	int err = ce_vol_write(h, buf, len, off);
	if (err == 0 && (flags & CE_WRITE_FUA) && h->v->sync == CE_SYNC_STANDARD)
		err = ilog_commit(h->v->pool, h->v);
	return err;
}

int
ce_vol_flush(ce_vol *h)
{
	err_clear();
	int err = stale_check(h);
	if (err != 0)
		return err;
	if (h->v->sync == CE_SYNC_DISABLED)
		return 0;
	return ilog_commit(h->v->pool, h->v);
}

static int
vol_trim(ce_vol *h, uint64_t off, uint64_t len)
{
	volume *v = h->v;
	ce_pool *p = v->pool;
	int err;

	err_clear();
	if (p->readonly)
		return err_set(-EROFS, "pool %s is imported read-only", p->name);
	if (v->destroy_txg != 0)
		return err_set(-ENOENT, "volume %s/%s no longer exists", p->name, v->name);
	if (v->is_snap)
		return err_set(-EROFS, "%s/%s is a snapshot: read-only", p->name, v->name);
	if (v->rp != NULL && !h->repl)
		return err_setc(CE_E_REPLICA_READ_ONLY, -EROFS, "%s/%s is a replica volume: only its "
		    "controller writes it", p->name, v->name);
	if ((err = stale_check(h)) != 0)
		return err;
	if ((err = check_range(v, off, len)) != 0)
		return err;
	uint64_t b0 = (off + v->bs - 1) / v->bs, b1 = (off + len) / v->bs;
	if (b1 <= b0 || b1 - b0 < TRIM_RANGE_MIN)
		return vol_modify(h, NULL, len, off);
	/*
	 * Partial head and tail blocks become zeros, whole blocks one punched
	 * range; all in one txg, so a crash keeps the trim whole or not at all.
	 */
	int64_t dd = 0;
	txg_throttle(p);
	uint64_t t = txg_hold(p, &err);
	if (err != 0)
		return err;
	if (off < b0 * v->bs)
		err = write_blocks(v, t, NULL, b0 * v->bs - off, off, &dd);
	if (err == 0 && off + len > b1 * v->bs)
		err = write_blocks(v, t, NULL, off + len - b1 * v->bs, b1 * v->bs, &dd);
	if (err != 0) {
		txg_rele(p, t);
		txg_dirty_add(p, dd, 1);
		return err;
	}
	pthread_mutex_lock(&v->lock);
	int i = t & 1;
	map_claim(v, t);
	if (v->nfr[i] == v->capfr[i]) {
		v->capfr[i] = v->capfr[i] ? v->capfr[i] * 2 : 8;
		v->fr[i] = xrealloc(v->fr[i], v->capfr[i] * sizeof(vrange));
	}
	v->fr[i][v->nfr[i]++] = (vrange){ b0, b1 };
	size_t n;
	uint64_t *keys = htab_sorted_keys(&v->dirty[i], &n);
	for (size_t k = 0; k < n; k++) {
		if (keys[k] < b0 || keys[k] >= b1)
			continue;
		void *d = htab_del(&v->dirty[i], keys[k]);
		if (d != VOL_HOLE) {
			bufpool_put(d, v->bs);
			v->dbytes[i] -= v->bs;
			dd -= v->bs;
		}
	}
	free(keys);
	v->gen++;
	pthread_mutex_unlock(&v->lock);
	txg_rele(p, t);
	txg_dirty_add(p, dd, 1);
	ilog_append(v, LR_ZERO, off, len, t);
	return 0;
}

/* A receive's writes: never synchronous, whatever the sync property (send.c). */
int
vol_recv_write(ce_vol *h, const void *buf, size_t len, uint64_t off)
{
	return vol_modify(h, buf, len, off);
}

int
vol_recv_trim(ce_vol *h, uint64_t off, uint64_t len)
{
	return vol_trim(h, off, len);
}

int
ce_vol_trim(ce_vol *h, uint64_t off, uint64_t len)
{
	return sync_always(h->v, vol_trim(h, off, len));
}

int
ce_vol_write_zeroes(ce_vol *h, uint64_t off, uint64_t len)
{
	return ce_vol_trim(h, off, len);
}

/* The intent log reads what a range holds now (ilog.c). */
int
vol_read_current(volume *v, void *buf, uint64_t off, uint64_t len)
{
	ce_vol h = { .v = v, .clear_gen = atomic_load(&v->pool->clear_gen) };
	return ce_vol_read(&h, buf, len, off);
}

/* Replay one log record (p->ilog.replaying is set: nothing is logged again). */
int
vol_apply_log(volume *v, int type, const void *data, uint64_t off, uint64_t len)
{
	ce_vol h = { .v = v, .clear_gen = atomic_load(&v->pool->clear_gen) };
	if (type == LR_WRITE)
		return vol_modify(&h, data, len, off);
	return vol_trim(&h, off, len);
}

int
ce_vol_read(ce_vol *h, void *buf, size_t len, uint64_t off)
{
	volume *v = h->v;
	ce_pool *p = v->pool;
	uint8_t *dst = buf;
	int err;

	err_clear();
	if ((err = check_range(v, off, len)) != 0)
		return err;
	bp_phys *bps = xmalloc(READ_BATCH * sizeof(bp_phys));
	bp_phys *lbp = xmalloc(READ_BATCH * sizeof(bp_phys));
	uint8_t **dsts = xmalloc(READ_BATCH * sizeof(uint8_t *));
	uint64_t *tblk = xmalloc(READ_BATCH * sizeof(uint64_t));
	/* Only the first and the last block of a batch can be partial. */
	uint8_t *tmp[2] = { bufpool_get(v->bs), bufpool_get(v->bs) };
	while (len > 0 && err == 0) {
		uint64_t first = off / v->bs;
		uint64_t last = (off + len - 1) / v->bs;
		uint64_t nblk = MIN(last - first + 1, (uint64_t)READ_BATCH);
		uint64_t batch_len = MIN((uint64_t)len, nblk * v->bs - off % v->bs);
		size_t ntree = 0;
		cowtree ts;

		pthread_rwlock_rdlock(&p->free_lock);
		pthread_mutex_lock(&v->lock);
		for (uint64_t k = 0; k < nblk; k++) {
			uint64_t blkid = first + k;
			uint64_t bstart = blkid * v->bs;
			uint64_t s = MAX(bstart, off), e = MIN(bstart + v->bs, off + batch_len);
			void *d;
			if (dirty_lookup(v, UINT64_MAX, blkid, &d)) {
				if (d == VOL_HOLE)
					memset(dst + (s - off), 0, e - s);
				else
					memcpy(dst + (s - off), (uint8_t *)d + (s - bstart), e - s);
			} else {
				tblk[ntree++] = blkid;
			}
		}
		ts = v->tree;
		pthread_mutex_unlock(&v->lock);

		size_t nread = 0;
		/* Copy-outs owed from the scratch blocks (first and last block may be partial). */
		struct { int used; size_t to, from, n; } part[2] = { { 0, 0, 0, 0 }, { 0, 0, 0, 0 } };
		/* Leaf pointers for the whole batch, one indirect block per 256. */
		if (ntree > 0)
			err = cowtree_lookup_range(p, &ts, first, nblk, lbp);
		for (size_t k = 0; k < ntree && err == 0; k++) {
			uint64_t blkid = tblk[k], bstart = blkid * v->bs;
			uint64_t s = MAX(bstart, off), e = MIN(bstart + v->bs, off + batch_len);
			bp_phys bp = lbp[blkid - first];
			if (bp_is_hole(&bp)) {
				memset(dst + (s - off), 0, e - s);
				continue;
			}
			if (bp.bp_lsize != v->bs) {
				atomic_fetch_add(&p->cksum_errors, 1);
				err = -EIO;
				break;
			}
			bps[nread] = bp;
			if (s == bstart && e == bstart + v->bs) {
				dsts[nread] = dst + (s - off);
			} else {
				int slot = blkid != first;
				dsts[nread] = tmp[slot];
				part[slot].used = 1;
				part[slot].to = s - off;
				part[slot].from = s - bstart;
				part[slot].n = e - s;
			}
			nread++;
		}
		if (err == 0 && nread > 0)
			err = blk_read_many(p, bps, dsts, nread);
		pthread_rwlock_unlock(&p->free_lock);
		if (err == 0) {
			for (int slot = 0; slot < 2; slot++)
				if (part[slot].used)
					memcpy(dst + part[slot].to, tmp[slot] + part[slot].from, part[slot].n);
		} else {
			err = err_set(err, "%s: read at %" PRIu64 " failed: %s", v->name, off,
			    err == -EIO ? "checksum or IO error" : strerror(-err));
		}
		dst += batch_len;
		off += batch_len;
		len -= batch_len;
	}
	free(bps);
	free(lbp);
	free(dsts);
	free(tblk);
	bufpool_put(tmp[0], v->bs);
	bufpool_put(tmp[1], v->bs);
	return err;
}

int
ce_vol_map(ce_vol *h, uint64_t off, uint64_t len, ce_extent *ext, size_t max, size_t *n)
{
	volume *v = h->v;
	ce_pool *p = v->pool;
	int err;
	size_t ne = 0;

	err_clear();
	if ((err = check_range(v, off, len)) != 0)
		return err;
	if (max == 0 || len == 0) {
		*n = 0;
		return 0;
	}
	uint8_t *hole = xmalloc(READ_BATCH);
	bp_phys *lbp = xmalloc(READ_BATCH * sizeof(bp_phys));
	uint64_t end = off + len;
	while (off < end && err == 0) {
		uint64_t first = off / v->bs;
		uint64_t nblk = MIN((end - 1) / v->bs - first + 1, (uint64_t)READ_BATCH);
		cowtree ts;
		pthread_rwlock_rdlock(&p->free_lock);
		pthread_mutex_lock(&v->lock);
		for (uint64_t k = 0; k < nblk; k++) {
			void *d;
			hole[k] = dirty_lookup(v, UINT64_MAX, first + k, &d) ? (d == VOL_HOLE) : 2;
		}
		ts = v->tree;
		pthread_mutex_unlock(&v->lock);
		err = cowtree_lookup_range(p, &ts, first, nblk, lbp);
		pthread_rwlock_unlock(&p->free_lock);
		for (uint64_t k = 0; k < nblk && err == 0; k++) {
			unsigned flags = (hole[k] == 2 ? bp_is_hole(&lbp[k]) : hole[k]) ? CE_EXTENT_HOLE : 0;
			uint64_t s = MAX((first + k) * v->bs, off), e = MIN((first + k + 1) * v->bs, end);
			if (ne > 0 && ext[ne - 1].flags == flags && ext[ne - 1].offset + ext[ne - 1].length == s) {
				ext[ne - 1].length += e - s;
			} else if (ne == max) {
				off = end; /* out of room: report what is covered */
				break;
			} else {
				ext[ne++] = (ce_extent){ s, e - s, flags };
			}
		}
		if (off < end)
			off = MIN((first + nblk) * v->bs, end);
	}
	free(hole);
	free(lbp);
	if (err != 0)
		return err_set(err, "%s: cannot map allocation: %s", v->name, strerror(-err));
	*n = ne;
	return 0;
}

/* ---- sync ---- */

static int
all_zero(const uint8_t *b, size_t n)
{
	static const uint8_t z[4096];
	for (size_t o = 0; o < n; o += sizeof(z))
		if (memcmp(b + o, z, MIN(sizeof(z), n - o)) != 0)
			return 0;
	return 1;
}

static void
release_txg(ce_pool *p, volume *v, int i)
{
	uint64_t charged = v->charged[i], dbytes = v->dbytes[i];
	v->charged[i] = 0;
	v->dbytes[i] = 0;
	drop_maps(v, i);
	alloc_uncharge(&p->alloc, charged);
	txg_dirty_add(p, -(int64_t)dbytes, 0);
}

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

	VERIFY3U(v->snap.txg, ==, t);
	pthread_mutex_lock(&v->lock);
	if (v->snap.doomed) {
		cowtree ts = v->tree;
		pthread_mutex_unlock(&v->lock);
		ct_acct dacct = { 0 };
		snap_doomed_acct(v, &dacct); /* a clone: what its origin holds stays */
		acct = dacct;
		err = cowtree_free_range(p, &ts, t, 0, cowtree_capacity(ts.levels), &acct);
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
	size_t nl = 0;

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
		if (d == VOL_HOLE || (comp != CE_COMP_OFF && all_zero(d, v->bs))) {
			memset(&leaves[nl].bp, 0, sizeof(bp_phys));
			leaves[nl].bp.bp_birth = t;
			datas[nl] = VOL_HOLE;
		} else {
			err = blk_write(p, d, v->bs, comp, ck, BP_DATA, 0, t, NULL, BLK_BORROW, &leaves[nl].bp);
		}
		nl++;
	}
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
	return err;
}

/* ---- management ---- */

/* Begin a management operation: returns with config_lock and pool->lock held. */
static int
mgmt_begin(ce_pool *p)
{
	err_clear();
	if (p->readonly)
		return err_set(-EROFS, "pool %s is imported read-only", p->name);
	pthread_mutex_lock(&p->config_lock);
	pthread_mutex_lock(&p->lock);
	if (p->suspended) {
		int err = p->suspended;
		pthread_mutex_unlock(&p->lock);
		pthread_mutex_unlock(&p->config_lock);
		return err_set(err, "pool %s is suspended after an IO error", p->name);
	}
	return 0;
}

/* Mark the open txg dirty, drop the locks and wait for it to commit. */
static int
mgmt_commit(ce_pool *p)
{
	uint64_t t = p->open_txg;
	p->txg_dirty[t & 3] = 1;
	if (p->open_since_ns == 0)
		p->open_since_ns = util_now_ns();
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_unlock(&p->config_lock);
	return txg_wait_synced(p, t);
}

static void
mgmt_abort(ce_pool *p)
{
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_unlock(&p->config_lock);
}

int vol_mgmt_begin(ce_pool *p) { return mgmt_begin(p); }
int vol_mgmt_commit(ce_pool *p) { return mgmt_commit(p); }
void vol_mgmt_abort(ce_pool *p) { mgmt_abort(p); }
volume *vol_find(ce_pool *p, const char *name) { return find_vol(p, name); }
volume *vol_alloc(ce_pool *p) { return vol_new(p); }
void vol_add(ce_pool *p, volume *v) { add_vol(p, v); }
int vol_name_valid(const char *name) { return name_valid(name); }

/* A live volume (not a snapshot) for a management operation, or NULL with the error set. */
static volume *
find_head(ce_pool *p, const char *name, int *err)
{
	volume *v = name != NULL ? find_vol(p, name) : NULL;
	if (v == NULL)
		*err = err_set(-ENOENT, "volume %s/%s does not exist", p->name, name ? name : "");
	else if (v->is_snap)
		*err = err_set(-EINVAL, "%s/%s is a snapshot (snapshots are read-only; see the snapshot "
		    "operations)", p->name, name);
	else
		*err = 0;
	return *err ? NULL : v;
}

/*
 * Begin a management operation on live volume `name`: it, with the
 * management locks held; or NULL with *err set and no lock held.
 */
static volume *
mgmt_begin_head(ce_pool *p, const char *name, int *err)
{
	if ((*err = mgmt_begin(p)) != 0)
		return NULL;
	volume *v = find_head(p, name, err);
	if (v == NULL)
		mgmt_abort(p);
	return v;
}

/* Snapshots of h, counting those whose destroy has not committed yet. */
static unsigned
count_snaps(ce_pool *p, const volume *h)
{
	unsigned n = 0;
	for (size_t i = 0; i < p->nvols; i++) {
		volume *s = p->vols[i];
		if (s->is_snap && s->head == h && (s->destroy_txg == 0 || s->destroy_txg > p->synced_txg))
			n++;
	}
	return n;
}

int
ce_vol_create(ce_pool *p, const char *name, uint64_t size, const ce_vol_props *props)
{
	return vol_create_ex(p, name, size, props, NULL);
}

/* ce_vol_create; with rs, the new volume is a partial receive from its first txg on. */
int
vol_create_ex(ce_pool *p, const char *name, uint64_t size, const ce_vol_props *props,
    const recv_slot_phys *rs)
{
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	int err;
	if (props != NULL)
		pr = *props;
	uint32_t bs = pr.volblocksize ? pr.volblocksize : CE_VOLBLOCKSIZE_DEFAULT;
	int comp = pr.compress < 0 ? CE_COMPRESS_LZ4 : pr.compress;
	int ck = pr.checksum ? pr.checksum : CE_CHECKSUM_XXH128;
	err_clear();
	if (name == NULL || !name_valid(name))
		return err_set(-EINVAL, "bad volume name '%s' (1-%u characters: letters, digits, "
		    "'_', '-', '.', ':'; starting with a letter or digit)", name ? name : "", CE_NAME_MAX);
	if (!IS_P2(bs) || bs < CE_VOLBLOCKSIZE_MIN || bs > CE_VOLBLOCKSIZE_MAX)
		return err_set(-EINVAL, "bad volblocksize %u (a power of two from 4K to 128K)", bs);
	if (comp < 0 || comp > CE_COMP_MAX)
		return err_set(-EINVAL, "bad compression %d", comp);
	if (!checksum_valid_type(ck))
		return err_set(-EINVAL, "bad checksum %d", ck);
	if (pr.sync < CE_SYNC_STANDARD || pr.sync > CE_SYNC_DISABLED)
		return err_set(-EINVAL, "bad sync %d", pr.sync);
	if (size == 0 || size % bs != 0)
		return err_set(-EINVAL, "bad volume size %" PRIu64 " (a non-zero multiple of the "
		    "block size %u)", size, bs);
	if (size / bs > cowtree_capacity(7))
		return err_set(-EFBIG, "volume size %" PRIu64 " is too large", size);
	if ((err = mgmt_begin(p)) != 0)
		return err;
	if (find_vol(p, name) != NULL) {
		mgmt_abort(p);
		return err_setc(CE_E_VOLUME_EXISTS, -EEXIST, "volume %s/%s already exists", p->name, name);
	}
	volume *v = vol_new(p);
	snprintf(v->name, sizeof(v->name), "%s", name);
	v->guid = util_random64();
	v->size = size;
	v->bs = bs;
	v->compress = comp;
	/* what the caller chose, rather than took as the default, is "local" */
	v->local_props = (pr.compress >= 0 ? CE_PROP_COMPRESSION : 0) | (pr.checksum ? CE_PROP_CHECKSUM : 0) |
	    (pr.sync != CE_SYNC_STANDARD ? CE_PROP_SYNC : 0);
	v->checksum = ck;
	v->sync = pr.sync;
	v->create_txg = p->open_txg;
	v->ctime = (uint64_t)time(NULL);
	v->tree.bsize = bs;
	v->tree.levels = 1;
	v->want_levels = cowtree_levels_for(size / bs);
	if (rs != NULL) {
		v->receiving = 1;
		v->rs = *rs;
	}
	add_vol(p, v);
	return mgmt_commit(p);
}

int
ce_vol_destroy_ex(ce_pool *p, const char *name, unsigned flags)
{
	int err;
	volume *v = mgmt_begin_head(p, name, &err);
	if (v == NULL)
		return err;
	unsigned ns = count_snaps(p, v);
	if (ns > 0 && !(flags & (CE_DESTROY_SNAPSHOTS | CE_DESTROY_CLONES))) {
		mgmt_abort(p);
		return err_setc(CE_E_HAS_SNAPSHOTS, -EBUSY, "volume %s/%s has %u snapshot%s: destroy them first, or destroy "
		    "with -r", p->name, name, ns, ns == 1 ? "" : "s");
	}
	if ((err = snap_doom_volume(p, v, flags)) != 0) {
		mgmt_abort(p);
		return err;
	}
	return mgmt_commit(p);
}

int
ce_vol_destroy(ce_pool *p, const char *name)
{
	return ce_vol_destroy_ex(p, name, 0);
}

int
ce_vol_rename(ce_pool *p, const char *oldname, const char *newname)
{
	if (newname == NULL || !name_valid(newname))
		return err_set(-EINVAL, "bad volume name '%s'", newname ? newname : "");
	int err = mgmt_begin(p);
	if (err != 0)
		return err;
	volume *v = find_head(p, oldname, &err);
	if (v == NULL) {
		mgmt_abort(p);
		return err;
	}
	if (v->receiving) {
		mgmt_abort(p);
		return err_set(-EBUSY, "volume %s/%s is a partial receive: finish or abandon it first",
		    p->name, oldname);
	}
	if (find_vol(p, newname) != NULL) {
		mgmt_abort(p);
		return err_set(-EEXIST, "volume %s/%s already exists", p->name, newname);
	}
	/* Its snapshots are renamed with it: VOL@SNAP -> NEW@SNAP. */
	for (size_t i = 0; i < p->nvols; i++) {
		volume *s = p->vols[i];
		if (s->is_snap && s->head == v && s->destroy_txg == 0 &&
		    strlen(newname) + strlen(strchr(s->name, '@')) > CE_NAME_MAX) {
			mgmt_abort(p);
			return err_set(-EINVAL, "renaming %s/%s to %s would make snapshot name %s%s too long",
			    p->name, oldname, newname, newname, strchr(s->name, '@'));
		}
	}
	/* Under pool->lock only: the lock order forbids v->lock here. */
	for (size_t i = 0; i < p->nvols; i++) {
		volume *s = p->vols[i];
		if (s->is_snap && s->head == v && s->destroy_txg == 0) {
			char nn[CE_NAME_MAX + 1];
			snprintf(nn, sizeof(nn), "%s%s", newname, strchr(s->name, '@'));
			snprintf(s->name, sizeof(s->name), "%s", nn);
			s->rec_txg = p->open_txg;
		}
	}
	snprintf(v->name, sizeof(v->name), "%s", newname);
	return mgmt_commit(p);
}

int
ce_vol_resize(ce_pool *p, const char *name, uint64_t size, unsigned flags)
{
	int err;
	volume *v = mgmt_begin_head(p, name, &err);
	if (v == NULL)
		return err;
	if (v->receiving && !(flags & VOL_RESIZE_RECV)) {
		mgmt_abort(p);
		return err_set(-EBUSY, "volume %s/%s is a partial receive", p->name, name);
	}
	if (size == 0 || size % v->bs != 0 || size / v->bs > cowtree_capacity(7)) {
		mgmt_abort(p);
		return err_set(-EINVAL, "bad volume size %" PRIu64 " (a non-zero multiple of the "
		    "block size %u)", size, v->bs);
	}
	if (size < v->size && !(flags & CE_RESIZE_SHRINK)) {
		mgmt_abort(p);
		return err_set(-EINVAL, "shrinking %s/%s would discard data past the new size (cask vol resize --shrink; CE_RESIZE_SHRINK)",
		    p->name, name);
	}
	/* Lock order: v->lock before pool->lock. */
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_lock(&v->lock);
	pthread_mutex_lock(&p->lock);
	uint64_t t = p->open_txg;
	uint64_t old = v->size / v->bs, nb = size / v->bs;
	int64_t dd = 0;
	if (nb < old) {
		int i = t & 1;
		map_claim(v, t);
		if (v->nfr[i] == v->capfr[i]) {
			v->capfr[i] = v->capfr[i] ? v->capfr[i] * 2 : 8;
			v->fr[i] = xrealloc(v->fr[i], v->capfr[i] * sizeof(vrange));
		}
		v->fr[i][v->nfr[i]++] = (vrange){ nb, UINT64_MAX };
		size_t n;
		uint64_t *keys = htab_sorted_keys(&v->dirty[i], &n);
		for (size_t k = 0; k < n; k++) {
			if (keys[k] < nb)
				continue;
			void *d = htab_del(&v->dirty[i], keys[k]);
			if (d != VOL_HOLE) {
				bufpool_put(d, v->bs);
				v->dbytes[i] -= v->bs;
				dd -= v->bs;
			}
		}
		free(keys);
	}
	v->size = size;
	v->want_levels = MAX(v->want_levels, cowtree_levels_for(nb));
	v->gen++;
	pthread_mutex_unlock(&v->lock);
	err = mgmt_commit(p);
	txg_dirty_add(p, dd, 1);
	return err;
}

/* Set (or with value NULL, reset to the default) one property of v (management lock held). */
static void
prop_apply(volume *v, unsigned which, int val, int local)
{
	if (!local)
		val = prop_default(which);
	if (which == CE_PROP_COMPRESSION)
		v->compress = val;
	else if (which == CE_PROP_CHECKSUM)
		v->checksum = val;
	else
		v->sync = val;
	if (local)
		v->local_props |= which;
	else
		v->local_props &= ~which;
}

int
ce_vol_set(ce_pool *p, const char *name, const char *prop, const char *value)
{
	return ce_vol_set_many(p, name, &prop, &value, 1);
}

int
ce_vol_set_many(ce_pool *p, const char *name, const char *const *props, const char *const *values,
    size_t n)
{
	err_clear();
	unsigned which[8];
	int vals[8], err;
	if (n == 0 || n > 8)
		return err_set(-EINVAL, "set: 1 to 8 properties at once");
	/* every value checked before anything changes: all or none */
	for (size_t i = 0; i < n; i++) {
		if ((which[i] = prop_of(props[i])) == 0)
			return -EINVAL;
		if ((err = prop_parse(which[i], values[i], &vals[i])) != 0)
			return err;
		for (size_t k = 0; k < i; k++)
			if (which[k] == which[i])
				return err_set(-EINVAL, "set: property '%s' given twice", props[i]);
	}
	volume *v = mgmt_begin_head(p, name, &err);
	if (v == NULL)
		return err;
	for (size_t i = 0; i < n; i++)
		prop_apply(v, which[i], vals[i], 1);
	return mgmt_commit(p);
}

int
ce_vol_inherit(ce_pool *p, const char *name, const char *prop)
{
	err_clear();
	unsigned which = prop_of(prop);
	if (which == 0)
		return -EINVAL;
	int err;
	volume *v = mgmt_begin_head(p, name, &err);
	if (v == NULL)
		return err;
	prop_apply(v, which, 0, 0);
	return mgmt_commit(p);
}

static void
fill_info(volume *v, ce_vol_info *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&v->lock);
	pthread_mutex_lock(&v->pool->lock);
	snprintf(out->name, sizeof(out->name), "%s", v->name);
	out->guid = v->guid;
	out->size = v->size;
	out->volblocksize = v->bs;
	out->compress = v->compress;
	out->checksum = v->checksum;
	out->sync = v->sync;
	out->local_props = v->local_props;
	out->referenced = (uint64_t)v->used;
	out->used = (uint64_t)v->used; /* a snapshot: see ce_snap_info.used */
	out->logical = (uint64_t)v->logical;
	out->create_txg = v->create_txg;
	out->ctime = v->ctime;
	out->written = v->is_snap ? 0 : v->written;
	recv_token_of(v, out->receive_resume_token, sizeof(out->receive_resume_token));
	ce_pool *p = v->pool;
	uint64_t otxg = 0, snap_logical = 0;
	if (!v->is_snap) {
		/*
		 * The volume's snapshots are its prev chain up to the first
		 * dataset of another head: a clone's origin (one walk; the
		 * per-list totals make a non-clone's sum O(1) per snapshot).
		 */
		volume *o = v->prev;
		while (o != NULL && o->is_snap && o->head == v)
			o = o->prev;
		if (o != NULL) {
			snprintf(out->origin, sizeof(out->origin), "%s", o->name);
			otxg = o->create_txg; /* a clone's dead lists also hold blocks of its origin */
		}
		for (volume *s = v; s != o; s = s->prev) {
			if (s != v && s->destroy_txg != 0)
				continue;
			if (otxg == 0) {
				out->usedbysnapshots += s->dl.bytes;
				snap_logical += s->dl.lbytes;
			} else {
				dl_sum_after(&s->dl, otxg, &out->usedbysnapshots, &snap_logical);
			}
			out->nsnapshots += s != v;
		}
	}
	pthread_mutex_unlock(&v->pool->lock);
	pthread_mutex_unlock(&v->lock);
	if (!v->is_snap) {
		/*
		 * What destroying the volume (after its snapshots) frees: its
		 * whole tree, but for a clone only what is newer than the origin.
		 */
		uint64_t lds = out->logical;
		out->usedbydataset = out->referenced;
		if (otxg > 0 && snap_bytes_after(p, v, otxg, &out->usedbydataset, &lds) != 0) {
			out->usedbydataset = out->referenced; /* unreadable tree: an upper bound */
			lds = out->logical;
		}
		out->used = out->usedbydataset + out->usedbysnapshots;
		out->logicalused = lds + snap_logical;
	}
}

int
ce_vol_info_get(ce_pool *p, const char *name, ce_vol_info *out)
{
	err_clear();
	pthread_mutex_lock(&p->config_lock);
	pthread_mutex_lock(&p->lock);
	volume *v = find_vol(p, name);
	pthread_mutex_unlock(&p->lock);
	if (v == NULL) {
		pthread_mutex_unlock(&p->config_lock);
		return err_set(-ENOENT, "volume %s/%s does not exist", p->name, name);
	}
	fill_info(v, out);
	pthread_mutex_unlock(&p->config_lock);
	return 0;
}

static int
info_cmp(const void *a, const void *b)
{
	return strcmp(((const ce_vol_info *)a)->name, ((const ce_vol_info *)b)->name);
}

int
ce_vol_list(ce_pool *p, ce_vol_info **out, size_t *count)
{
	err_clear();
	pthread_mutex_lock(&p->config_lock);
	pthread_mutex_lock(&p->lock);
	volume **live = xmalloc((p->nvols ? p->nvols : 1) * sizeof(volume *));
	size_t n = 0;
	for (size_t i = 0; i < p->nvols; i++)
		if (p->vols[i]->destroy_txg == 0 && !p->vols[i]->is_snap)
			live[n++] = p->vols[i];
	pthread_mutex_unlock(&p->lock);
	ce_vol_info *info = xcalloc(n ? n : 1, sizeof(ce_vol_info));
	for (size_t i = 0; i < n; i++)
		fill_info(live[i], &info[i]);
	pthread_mutex_unlock(&p->config_lock);
	free(live);
	qsort(info, n, sizeof(ce_vol_info), info_cmp);
	*out = info;
	*count = n;
	return 0;
}

int
ce_vol_open(ce_pool *p, const char *name, ce_vol **out)
{
	return vol_open_any(p, name, 0, out);
}

/* receiver: the receive itself opens its partial volume (send.c) */
int
vol_open_any(ce_pool *p, const char *name, int receiver, ce_vol **out)
{
	err_clear();
	pthread_mutex_lock(&p->config_lock);
	pthread_mutex_lock(&p->lock);
	volume *v = find_vol(p, name);
	if (v != NULL && v->snap_txg_pending != 0)
		v = NULL; /* a snapshot being taken exists once its txg commits */
	if (v != NULL && v->rollback_txg != 0) {
		pthread_mutex_unlock(&p->lock);
		pthread_mutex_unlock(&p->config_lock);
		return err_set(-EBUSY, "volume %s/%s is being rolled back", p->name, name);
	}
	if (v != NULL && v->receiving && !receiver) {
		pthread_mutex_unlock(&p->lock);
		pthread_mutex_unlock(&p->config_lock);
		return err_set(-EBUSY, "volume %s/%s is a partial receive: resume it (cask send -t with its "
		    "receive_resume_token) or abandon it (cask recv -A)", p->name, name);
	}
	if (v != NULL)
		v->refs++;
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_unlock(&p->config_lock);
	if (v == NULL)
		return err_set(-ENOENT, "volume %s/%s does not exist", p->name, name);
	ce_vol *h = xmalloc(sizeof(*h));
	h->v = v;
	h->repl = 0;
	h->clear_gen = atomic_load(&p->clear_gen);
	*out = h;
	return 0;
}

void
ce_vol_close(ce_vol *h)
{
	if (h == NULL)
		return;
	ce_pool *p = h->v->pool;
	pthread_mutex_lock(&p->lock);
	VERIFY(h->v->refs > 0);
	h->v->refs--;
	pthread_mutex_unlock(&p->lock);
	free(h);
}

int
ce_vol_readonly(const ce_vol *h)
{
	return h->v->is_snap;
}

uint64_t
ce_vol_size(const ce_vol *h)
{
	return h->v->size;
}

uint32_t
ce_vol_blocksize(const ce_vol *h)
{
	return h->v->bs;
}
