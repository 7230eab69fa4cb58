/*
 * sched.c -- snapshot policies, stored in the pool (format:
 * docs/on-disk-format.md section 4.8).
 *
 * A policy says how often caskd snapshots a volume and which of those
 * automatic snapshots it keeps (docs/manifests.md `snapshots:`). The
 * engine only stores policies, so that they belong to the pool and travel
 * with it on export and import; caskd runs them (daemon/sched.c). The
 * snapshots a policy takes carry DS_FLAG_AUTO (ce_snap_create_ex with
 * CE_SNAP_AUTO), so a snapshot someone took by hand is never mistaken for
 * one of them, whatever its name.
 *
 * All policies of a pool live in one array in memory and on disk in one
 * small object rooted in the MOS header block at CE_MOS_SCHED_OFF,
 * rewritten whole in the txg of any change, as the holds object is
 * (hold.c). A set or removal is a sync task (pool_sync.c): its
 * open-context half checks and changes `sc`, what open context sees
 * (pool->lock); its syncing half (sched_task) makes the same change to
 * `sc_sync`, the policies as of the txg being synced, which only the sync
 * thread touches; sched_sync writes that, after hold_sync in pass 1.
 *
 * Invariants:
 *   1. At most one policy per volume, keyed by the volume's guid (so a
 *      rename keeps it). A policy of a volume that no longer exists is
 *      never listed, is left out when the object is next written (the
 *      volume destroyed by that txg) and dropped when it is loaded.
 *   2. The object written in txg t holds exactly the policy changes of
 *      txgs up to t: never late (a change's task runs in its own txg),
 *      never early (a change made in the open txg while t syncs is in
 *      t + 1's task, not in what t writes).
 *   3. sc equals sc_sync plus the changes whose tasks have not run yet.
 *   4. A stored policy is valid (sched_valid): what import reads is
 *      checked the same way, and a bad record makes the object damaged.
 */
#include "sched_policy.h"
#include "dataset.h"
#include "mos.h"
#include "pool_sync.h"
#include "util.h"
#include "vol.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#define SCHED_PER_LEAF (CE_META_BLOCK / sizeof(sched_phys)) /* 128 */

static mos_sched_phys *
sched_root(ce_pool *p)
{
	return (mos_sched_phys *)mos_ptr(p, CE_MOS_SCHED_OFF);
}

void
sched_init(ce_pool *p)
{
	tree_init(&p->sc_tree, BP_SCHED, 1); /* a created pool has no policy object yet (sched_load: import) */
}

void
sched_fini(ce_pool *p)
{
	free(p->sc);
	p->sc = NULL;
	p->nsc = p->capsc = 0;
	free(p->sc_sync);
	p->sc_sync = NULL;
	p->nscsync = p->capscsync = 0;
}

static void
sched_put(sched_phys **a, size_t *n, size_t *cap, const sched_phys *r)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		*a = xrealloc(*a, *cap * sizeof(sched_phys));
	}
	(*a)[(*n)++] = *r;
}

static int
sched_valid(const ce_sched *s)
{
	return s->every_min >= 1 && s->every_min <= CE_SCHED_EVERY_MAX && s->keep <= CE_SCHED_COUNT_MAX &&
	    s->hourly <= CE_SCHED_COUNT_MAX && s->daily <= CE_SCHED_COUNT_MAX &&
	    s->weekly <= CE_SCHED_COUNT_MAX && s->monthly <= CE_SCHED_COUNT_MAX &&
	    (s->keep | s->hourly | s->daily | s->weekly | s->monthly) != 0;
}

static void
to_policy(const sched_phys *r, ce_sched *s)
{
	s->every_min = r->sc_every_min;
	s->keep = r->sc_keep;
	s->hourly = r->sc_hourly;
	s->daily = r->sc_daily;
	s->weekly = r->sc_weekly;
	s->monthly = r->sc_monthly;
}

static ssize_t
find_in(const sched_phys *a, size_t n, uint64_t guid)
{
	for (size_t i = 0; i < n; i++)
		if (a[i].sc_vol_guid == guid)
			return (ssize_t)i;
	return -1;
}

static ssize_t
sched_find(const ce_pool *p, uint64_t guid)
{
	return find_in(p->sc, p->nsc, guid);
}

/* The volume (not a snapshot) with this guid not destroyed by txg t, or NULL (pool->lock held). */
static volume *
vol_at(ce_pool *p, uint64_t guid, uint64_t t)
{
	ASSERT_HELD(&p->lock);
	for (size_t i = 0; i < ds_count(p); i++) {
		volume *v = ds_at(p, i);
		if (v->guid == guid && !v->is_snap && !vol_destroyed_by(v, t))
			return v;
	}
	return NULL;
}

/* The living volume with this guid, as open context sees it (pool->lock held). */
static volume *
live_vol(ce_pool *p, uint64_t guid)
{
	return vol_at(p, guid, UINT64_MAX);
}

/* At import and clear, after the datasets. */
int
sched_load(ce_pool *p)
{
	mos_sched_phys *ms = sched_root(p);
	sched_fini(p);
	tree_init(&p->sc_tree, BP_SCHED, 1);
	p->sc_disk_leaves = 0;
	p->sc_dirty = 0;
	if (mos_hdr(p)->mh_version < FMT_V_SCHED)
		return 0; /* older pools have zeros there (never written) */
	if (!bp_is_hole(&ms->ms_root)) {
		p->sc_tree.levels = ms->ms_levels ? ms->ms_levels : 1;
		p->sc_tree.root = ms->ms_root;
	}
	if (ms->ms_count == 0)
		return 0;
	uint64_t n = ms->ms_count, nleaves = (n + SCHED_PER_LEAF - 1) / SCHED_PER_LEAF;
	if (ms->ms_levels == 0 || ms->ms_levels > 8 || nleaves > cowtree_capacity(ms->ms_levels))
		return err_set(-EIO, "pool %s: the snapshot policy object is damaged", p->name);
	sched_phys *buf = xmalloc(nleaves * CE_META_BLOCK);
	int err = mos_read_object(p, &p->sc_tree, (uint8_t *)buf, nleaves);
	if (err != 0) {
		free(buf);
		return err_set(err, "pool %s: cannot read the snapshot policy object", p->name);
	}
	p->sc_disk_leaves = nleaves;
	pthread_mutex_lock(&p->lock); /* the directory's lock (the sync thread is stopped) */
	for (uint64_t i = 0; i < n; i++) {
		ce_sched s;
		to_policy(&buf[i], &s);
		if (!sched_valid(&s) || buf[i].sc_vol_guid == 0 || sched_find(p, buf[i].sc_vol_guid) >= 0) {
			pthread_mutex_unlock(&p->lock);
			free(buf);
			sched_fini(p);
			return err_set(-EIO, "pool %s: snapshot policy record %llu is damaged", p->name,
			    (unsigned long long)i);
		}
		if (live_vol(p, buf[i].sc_vol_guid) == NULL) {
			p->sc_dirty = 1; /* its volume is gone: rewritten without it at the next commit */
			continue;
		}
		sched_put(&p->sc, &p->nsc, &p->capsc, &buf[i]);
		sched_put(&p->sc_sync, &p->nscsync, &p->capscsync, &buf[i]);
	}
	pthread_mutex_unlock(&p->lock);
	free(buf);
	return 0;
}

/* A set (remove 0) or removal of txg t, in its sync (invariant 2). */
typedef struct sched_chg {
	int remove;
	sched_phys r;
} sched_chg;

/* Sync task of ce_sched_set: the same change to the policies as of t. */
static int
sched_task(ce_pool *p, void *arg, uint64_t t)
{
	sched_chg *c = arg;
	(void)t;
	ASSERT(pool_sync_thread(p)); /* sc_sync is the sync thread's */
	ssize_t k = find_in(p->sc_sync, p->nscsync, c->r.sc_vol_guid);
	if (c->remove) {
		VERIFY(k >= 0); /* invariant 3: open context found it in sc */
		p->sc_sync[k] = p->sc_sync[--p->nscsync];
	} else if (k >= 0) {
		p->sc_sync[k] = c->r;
	} else {
		sched_put(&p->sc_sync, &p->nscsync, &p->capscsync, &c->r);
	}
	p->sc_dirty = 1;
	return 0;
}

/* Pass 1 of txg t (pool_sync, after hold_sync): rewrite the object if t changed a policy. */
int
sched_sync(ce_pool *p, uint64_t t)
{
	ASSERT(pool_sync_thread(p));
	if (!p->sc_dirty)
		return 0;
	uint8_t *buf = xcalloc(p->nscsync ? (p->nscsync + SCHED_PER_LEAF - 1) / SCHED_PER_LEAF : 1,
	    CE_META_BLOCK);
	uint64_t n = 0;
	pthread_mutex_lock(&p->lock); /* destroy_txg: open context may be destroying one in t + 1 */
	for (size_t i = 0; i < p->nscsync; i++)
		if (vol_at(p, p->sc_sync[i].sc_vol_guid, t) != NULL) /* invariant 1 */
			((sched_phys *)buf)[n++] = p->sc_sync[i];
	pthread_mutex_unlock(&p->lock);
	p->sc_dirty = 0;

	uint64_t nleaves = (n + SCHED_PER_LEAF - 1) / SCHED_PER_LEAF;
	uint8_t *dirty = xmalloc(nleaves ? nleaves : 1);
	memset(dirty, 1, nleaves ? nleaves : 1);
	int err = 0, did = 0;
	if (nleaves > 0)
		err = mos_sync_object(p, &p->sc_tree, t, buf, dirty, nleaves, BP_SCHED, &did);
	if (err == 0 && p->sc_disk_leaves > nleaves) {
		ct_acct acct = { 0 };
		err = cowtree_free_range(p, &p->sc_tree, t, nleaves, p->sc_disk_leaves, &acct);
	}
	free(dirty);
	free(buf);
	if (err != 0)
		return err;
	p->sc_disk_leaves = nleaves;
	mos_sched_phys *ms = sched_root(p);
	ms->ms_count = (uint32_t)n;
	ms->ms_levels = p->sc_tree.levels;
	ms->ms_root = p->sc_tree.root;
	mos_mark_dirty(p, CE_MOS_SCHED_OFF, sizeof(*ms));
	if (mos_hdr(p)->mh_version < FMT_V_SCHED) {
		mos_hdr(p)->mh_version = FMT_V_SCHED; /* older software reads zeros there */
		mos_mark_dirty(p, 0, CE_META_BLOCK);
	}
	return 0;
}

int
ce_sched_set(ce_pool *p, const char *vol, const ce_sched *policy)
{
	err_clear();
	if (policy != NULL && !sched_valid(policy))
		return err_set(-EINVAL, "bad snapshot policy: every is 1 to %u minutes, counts at most %u, and "
		    "keep or a retain count must be above 0", CE_SCHED_EVERY_MAX, CE_SCHED_COUNT_MAX);
	int err = vol_mgmt_begin(p);
	if (err != 0)
		return err;
	volume *v = vol != NULL ? vol_find(p, vol) : NULL;
	if (v == NULL || v->is_snap || v->destroy_txg != 0) {
		vol_mgmt_abort(p);
		return err_set(-ENOENT, "volume %s/%s does not exist", p->name, vol ? vol : "(null)");
	}
	ssize_t k = sched_find(p, v->guid);
	sched_chg *c = xcalloc(1, sizeof(*c));
	c->r.sc_vol_guid = v->guid;
	if (policy == NULL) {
		if (k < 0) {
			free(c);
			vol_mgmt_abort(p);
			return err_set(-ENOENT, "volume %s/%s has no snapshot policy", p->name, vol);
		}
		c->remove = 1;
		p->sc[k] = p->sc[--p->nsc];
	} else {
		sched_phys *r = &c->r;
		r->sc_every_min = policy->every_min;
		r->sc_keep = policy->keep;
		r->sc_hourly = policy->hourly;
		r->sc_daily = policy->daily;
		r->sc_weekly = policy->weekly;
		r->sc_monthly = policy->monthly;
		r->sc_mtime = (uint64_t)time(NULL);
		if (k < 0)
			sched_put(&p->sc, &p->nsc, &p->capsc, r);
		else
			p->sc[k] = *r;
	}
	synctask_add(p, sched_task, c); /* the policy object of the open txg gets the same change */
	return vol_mgmt_commit(p);
}

static int
info_cmp(const void *a, const void *b)
{
	return strcmp(((const ce_sched_info *)a)->volume, ((const ce_sched_info *)b)->volume);
}

int
ce_sched_list(ce_pool *p, ce_sched_info **out, size_t *count)
{
	err_clear();
	pthread_mutex_lock(&p->config_lock);
	pthread_mutex_lock(&p->lock);
	ce_sched_info *a = xcalloc(p->nsc ? p->nsc : 1, sizeof(*a));
	size_t k = 0;
	for (size_t i = 0; i < p->nsc; i++) {
		volume *v = live_vol(p, p->sc[i].sc_vol_guid);
		if (v == NULL)
			continue;
		snprintf(a[k].volume, sizeof(a[k].volume), "%s", v->name);
		a[k].vol_guid = v->guid;
		to_policy(&p->sc[i], &a[k].policy);
		a[k].mtime = p->sc[i].sc_mtime;
		k++;
	}
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_unlock(&p->config_lock);
	qsort(a, k, sizeof(*a), info_cmp);
	*out = a;
	*count = k;
	return 0;
}
