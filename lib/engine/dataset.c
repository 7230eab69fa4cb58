/*
 * dataset.c -- the dataset directory and the management transaction.
 *
 * Owns the set of datasets of an open pool (volumes and snapshots, by
 * index in pool->dd.vols, by name in pool->dd.names and by guid in
 * pool->dd.guids), loading it from
 * the dataset records at import and again at clear, the record images
 * the sync writes, and the management transaction (mgmt_begin/commit)
 * that snap.c, hold.c and send.c build their operations on, with the
 * operations create, destroy, rename, set and inherit, info and list.
 * Management operations change the in-memory state in the open txg and
 * wait for that txg to commit before returning.
 *
 * This file alone writes p->dd; the others read it through ds_count and
 * ds_at (dataset.h).
 *
 * Invariants:
 *   1. The directory changes only under pool->lock (ASSERT_HELD); a name
 *      names at most one live dataset; a guid names exactly one dataset
 *      of the directory (import refuses two records with one guid), so
 *      dd.guids finds it without a scan.
 *   2. A dataset is on txg t's dirty list (pool_sync.c) when anything of
 *      its record changed in t: vol_mgmt_dirty puts it there before a
 *      management change, vol_add when it is created.
 *   3. The record written for t is the image `snap`/`rcap` settled for t
 *      (vol_settle); an operation in t + 1 saved it before changing the
 *      live fields (vol_mgmt_dirty), so the open txg never leaks into the
 *      syncing one.
 */
#include "dataset.h"
#include "checksum.h"
#include "deadlist.h"
#include "hold.h"
#include "mos.h"
#include "prop.h"
#include "recv.h"
#include "sched_policy.h"
#include "attr.h"
#include "snap.h"
#include "txg.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

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

/* ---- the dataset directory: every dataset by index and by name (pool->lock) ---- */

static uint64_t
name_hash(const char *name)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
	for (const unsigned char *c = (const unsigned char *)name; *c; c++)
		h = (h ^ *c) * 0x100000001b3ull;
	return h;
}

static void
name_index(ce_pool *p, volume *v)
{
	ASSERT_HELD(&p->lock);
	uint64_t k = name_hash(v->name);
	v->name_next = htab_get(&p->dd.names, k);
	htab_put(&p->dd.names, k, v);
}

static void
name_unindex(ce_pool *p, volume *v)
{
	ASSERT_HELD(&p->lock);
	uint64_t k = name_hash(v->name);
	volume *c = htab_get(&p->dd.names, k), *prev = NULL;
	while (c != NULL && c != v)
		prev = c, c = c->name_next;
	VERIFY(c == v);
	if (prev != NULL)
		prev->name_next = v->name_next;
	else if (v->name_next != NULL)
		htab_put(&p->dd.names, k, v->name_next);
	else
		htab_del(&p->dd.names, k);
	v->name_next = NULL;
}

/* Live volume by name; caller holds pool->lock. */
static volume *
find_vol(ce_pool *p, const char *name)
{
	ASSERT_HELD(&p->lock);
	for (volume *v = htab_get(&p->dd.names, name_hash(name)); v != NULL; v = v->name_next)
		if (v->destroy_txg == 0 && strcmp(v->name, name) == 0)
			return v;
	return NULL;
}

static void
add_vol(ce_pool *p, volume *v)
{
	if (p->dd.nvols == p->dd.capvols) {
		p->dd.capvols = p->dd.capvols ? p->dd.capvols * 2 : 16;
		p->dd.vols = xrealloc(p->dd.vols, p->dd.capvols * sizeof(volume *));
	}
	ASSERT_HELD(&p->lock);
	v->vidx = p->dd.nvols;
	p->dd.vols[p->dd.nvols++] = v;
	name_index(p, v);
	VERIFY(htab_put(&p->dd.guids, v->guid, v) == NULL); /* invariant 1 */
}

/* A destroyed dataset leaves the directory for good (pool->lock held; pool_sync.c frees it). */
void
vol_unlink(ce_pool *p, volume *v)
{
	ASSERT_HELD(&p->lock);
	VERIFY(v->vidx < p->dd.nvols && p->dd.vols[v->vidx] == v);
	name_unindex(p, v);
	VERIFY(htab_del(&p->dd.guids, v->guid) == v);
	recv_forget(p, v);
	snap_orphan_children(v);
	p->dd.vols[v->vidx] = p->dd.vols[--p->dd.nvols];
	p->dd.vols[v->vidx]->vidx = v->vidx;
}

/* Rename a dataset (pool->lock held; the caller dirtied it first). */
void
vol_set_name(ce_pool *p, volume *v, const char *name)
{
	char nn[CE_NAME_MAX + 1];
	snprintf(nn, sizeof(nn), "%s", name);
	name_unindex(p, v);
	memcpy(v->name, nn, sizeof(nn));
	name_index(p, v);
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

static void
capture_image(volume *v)
{
	capture_fields(v);
	v->rcap.receiving = v->receiving;
	v->rcap.rs = v->rs;
	repl_image(v);
}

/* The sync of t is about to read v's image (pool->lock held). */
void
vol_settle(volume *v, uint64_t t)
{
	ASSERT_HELD(&v->pool->lock);
	if (v->snap_txg == t)
		return;
	if (v->mgmt_txg <= t)
		capture_image(v); /* no operation of t + 1 changed it yet: the live fields are t's */
	v->snap_txg = t;
	repl_settle(v, t); /* a replica's record of t: this image and the applies t holds */
}

/*
 * A management operation is about to change v in the open txg o
 * (management locks held): keep v's image as of o - 1 for that txg's
 * sync, and put v on o's dirty list so that its record is written.
 */
void
vol_mgmt_dirty(ce_pool *p, volume *v)
{
	ASSERT_HELD(&p->lock);
	uint64_t o = txg_open(p);
	if (v->mgmt_txg != o) {
		/* settled already: the sync of o - 1 reads it, and it is right */
		if (v->snap_txg != o - 1)
			capture_image(v);
		v->mgmt_txg = o;
	}
	pool_dirty(p, v, o);
}

/* Destroyed in t or before (its destroy is in t's sync or already committed). */
int
vol_destroyed_by(const volume *v, uint64_t t)
{
	return v->destroy_txg != 0 && v->destroy_txg <= t;
}

void
vol_record(const volume *v, ds_phys *ds)
{
	memset(ds, 0, sizeof(*ds));
	ds->ds_guid = v->guid;
	ds->ds_type = v->is_snap ? DS_TYPE_SNAPSHOT : DS_TYPE_VOLUME;
	ds->ds_flags = ((uint32_t)v->snap.sync & DS_FLAG_SYNC_MASK) |
	    (v->is_snap ? 0 : (v->snap.local_props << DS_FLAG_LOCAL_SHIFT) & DS_FLAG_LOCAL_MASK) |
	    (v->is_snap && v->is_auto ? DS_FLAG_AUTO : 0);
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
	/* the role as of the settled replica record, so the dataset and the replica object agree */
	const struct repl_state *rs = repl_of(v);
	if (!v->is_snap && rs != NULL && rs->cap.rp_ds_guid != 0) {
		ds->ds_role = DS_ROLE_REPLICA;
		ds->ds_repl_idx = rs->idx;
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
	if ((ds.ds_flags & DS_FLAG_AUTO) && !snap)
		return 0;
	ds.ds_flags &= ~DS_FLAG_AUTO;
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
		v->is_auto = (ds.ds_flags & DS_FLAG_AUTO) != 0;
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
	v->mgmt_txg = v->snap_txg = 0;
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

/* After the datasets (import and clear): their chains, then the pool objects that name them. */
static int
load_parts(ce_pool *p)
{
	int err = snap_link_all(p);
	if (err == 0)
		err = hold_load(p);
	if (err == 0)
		err = sched_load(p);
	if (err == 0)
		err = attr_load(p);
	if (err == 0)
		err = recv_table_load(p);
	return err != 0 ? err : repl_load(p);
}

/* The dataset of the directory with this guid (import and clear: the sync thread is stopped). */
static volume *
guid_owner(ce_pool *p, uint64_t guid)
{
	pthread_mutex_lock(&p->lock);
	volume *v = ds_by_guid(p, guid);
	pthread_mutex_unlock(&p->lock);
	return v;
}

/* Record s names a guid that v already has: damage (invariant 1). */
static int
guid_damaged(ce_pool *p, uint32_t s, const volume *v)
{
	return err_set(-EIO, "pool %s: dataset record %u has the guid of %s (damaged)", p->name, s, v->name);
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
		volume *dup = guid_owner(p, ds.ds_guid);
		if (dup != NULL)
			return guid_damaged(p, s, dup);
		volume *v = vol_new(p);
		vol_fill(v, &ds, s);
		pthread_mutex_lock(&p->lock); /* the directory's lock (nobody else runs yet) */
		add_vol(p, v);
		if (v->receiving)
			recv_track(p, v);
		pthread_mutex_unlock(&p->lock);
		if (dl_load(p, &v->dl, &ds) != 0)
			return err_set(-EIO, "pool %s: the dead list of %s is damaged", p->name, v->name);
	}
	return load_parts(p);
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
	size_t nold = p->dd.nvols;
	uint8_t *seen = xcalloc(nold ? nold : 1, 1);
	for (uint32_t s = 0; s < cap; s++) {
		ds_phys ds;
		if (record_at(p, s, &ds) != 1)
			continue;
		volume *v = guid_owner(p, ds.ds_guid);
		if (v != NULL && (v->vidx >= nold || seen[v->vidx])) {
			free(seen);
			return guid_damaged(p, s, v); /* an earlier record of this loop had it */
		}
		if (v != NULL)
			seen[v->vidx] = 1;
		if (v == NULL) {
			v = vol_new(p);
			vol_fill(v, &ds, s);
			pthread_mutex_lock(&p->lock);
			add_vol(p, v);
			pthread_mutex_unlock(&p->lock);
		}
		pthread_mutex_lock(&v->lock);
		pthread_mutex_lock(&p->lock);
		vol_forget_pending(v);
		name_unindex(p, v);
		vol_fill(v, &ds, s);
		name_index(p, v);
		v->destroy_txg = 0;
		if (v->receiving)
			recv_track(p, v);
		else
			recv_forget(p, v);
		pthread_mutex_unlock(&p->lock);
		pthread_mutex_unlock(&v->lock);
		dl_fini(&v->dl);
		if (dl_load(p, &v->dl, &ds) != 0) {
			free(seen);
			return err_set(-EIO, "pool %s: the dead list of %s is damaged", p->name, v->name);
		}
	}
	for (size_t i = 0; i < nold; i++) {
		volume *v = p->dd.vols[i];
		if (seen[i])
			continue;
		/* Created in a txg that never committed: gone. */
		pthread_mutex_lock(&v->lock);
		vol_forget_pending(v);
		v->slot = VOL_NO_SLOT;
		if (v->destroy_txg == 0)
			v->destroy_txg = txg_synced(p);
		v->load_prev = v->load_head = 0;
		pthread_mutex_unlock(&v->lock);
		pthread_mutex_lock(&p->lock);
		recv_forget(p, v);
		pool_defer_free(p, v); /* freed after the next commit */
		pthread_mutex_unlock(&p->lock);
		dl_fini(&v->dl);
		dl_init(&v->dl);
	}
	free(seen);
	/* link only the living: the doomed keep no pointers */
	return load_parts(p);
}

void
dataset_init(ce_pool *p)
{
	htab_init(&p->dd.names);
	htab_init(&p->dd.guids);
}

void
vol_free_all(ce_pool *p)
{
	for (size_t i = 0; i < p->dd.nvols; i++)
		vol_delete(p->dd.vols[i]);
	free(p->dd.vols);
	p->dd.vols = NULL;
	p->dd.nvols = p->dd.capvols = 0;
	htab_fini(&p->dd.names);
	htab_fini(&p->dd.guids);
	recv_fini(p);
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
	if (txg_suspended(p)) {
		int err = txg_suspended(p);
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
	uint64_t t = txg_mark_open(p);
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
/* A dataset a management operation creates in the open txg (its name set; management locks held). */
void
vol_add(ce_pool *p, volume *v)
{
	add_vol(p, v);
	v->mgmt_txg = txg_open(p); /* no older image: the sync of its first txg settles it */
	pool_dirty(p, v, txg_open(p));
}

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

volume *
vol_mgmt_begin_head(ce_pool *p, const char *name, int *err)
{
	return mgmt_begin_head(p, name, err);
}

/* Snapshots of h, counting those whose destroy has not committed yet. */
static unsigned
count_snaps(ce_pool *p, const volume *h)
{
	unsigned n = 0;
	for (size_t i = 0; i < p->dd.nvols; i++) {
		volume *s = p->dd.vols[i];
		if (s->is_snap && s->head == h && (s->destroy_txg == 0 || s->destroy_txg > txg_synced(p)))
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
	v->create_txg = txg_open(p);
	v->ctime = (uint64_t)time(NULL);
	v->tree.bsize = bs;
	v->tree.levels = 1;
	v->want_levels = cowtree_levels_for(size / bs);
	if (rs != NULL) {
		v->receiving = 1;
		v->rs = *rs;
	}
	vol_add(p, v);
	if (rs != NULL)
		recv_track(p, v);
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
	for (size_t i = 0; i < p->dd.nvols; i++) {
		volume *s = p->dd.vols[i];
		if (s->is_snap && s->head == v && s->destroy_txg == 0 &&
		    strlen(newname) + strlen(strchr(s->name, '@')) > CE_NAME_MAX) {
			mgmt_abort(p);
			return err_set(-EINVAL, "renaming %s/%s to %s would make snapshot name %s%s too long",
			    p->name, oldname, newname, newname, strchr(s->name, '@'));
		}
	}
	/* Under pool->lock only: the lock order forbids v->lock here. */
	for (size_t i = 0; i < p->dd.nvols; i++) {
		volume *s = p->dd.vols[i];
		if (s->is_snap && s->head == v && s->destroy_txg == 0) {
			char nn[CE_NAME_MAX + 1];
			snprintf(nn, sizeof(nn), "%s%s", newname, strchr(s->name, '@'));
			vol_mgmt_dirty(p, s);
			vol_set_name(p, s, nn);
		}
	}
	vol_mgmt_dirty(p, v);
	vol_set_name(p, v, newname);
	return mgmt_commit(p);
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
	vol_mgmt_dirty(p, v);
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
	vol_mgmt_dirty(p, v);
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
	if (v->logdmg_lo != 0) /* ilog.c invariant 7 */
		snprintf(out->log_damaged, sizeof(out->log_damaged), "txg %" PRIu64 "-%" PRIu64 ", %" PRIu64
		    " record%s%s", v->logdmg_lo, v->logdmg_hi, v->logdmg_recs, v->logdmg_recs == 1 ? "" : "s",
		    v->logdmg_unknown ? " (and a damaged block's unknown ones)" : "");
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
	volume **live = xmalloc((p->dd.nvols ? p->dd.nvols : 1) * sizeof(volume *));
	size_t n = 0;
	for (size_t i = 0; i < p->dd.nvols; i++)
		if (p->dd.vols[i]->destroy_txg == 0 && !p->dd.vols[i]->is_snap)
			live[n++] = p->dd.vols[i];
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
