/*
 * hold.c -- snapshot holds (format: docs/on-disk-format.md section 4.6).
 *
 * A hold is a tag on a snapshot that keeps it from being destroyed until
 * the tag is released, so that a backup job, say, can be sure the
 * snapshot it sends from is still there next time. A snapshot may carry
 * several tags, each once. We refuse to destroy a held snapshot (ZFS
 * can instead defer the destroy until the last release); refusing is
 * simpler to explain, and `release` then `destroy` says what happens.
 *
 * All holds of a pool live in one array in memory and on disk in one
 * small object rooted in the MOS header, rewritten whole in the txg of
 * any change: holds are few, and one object keeps a snapshot's 512-byte
 * record unchanged. A hold or release is a sync task (pool_sync.c): its
 * open-context half checks and changes `sh`, what open context sees
 * (pool->lock); its syncing half (hold_task) makes the same change to
 * `sh_sync`, the holds as of the txg being synced, which only the sync
 * thread touches, and hold_sync writes that.
 *
 * Invariants:
 *   1. A hold names a snapshot that exists and is not being taken or
 *      destroyed: hold refuses pending snapshots, destroy refuses held
 *      ones, both under config_lock.
 *   2. The object written in txg t holds exactly the changes of txgs up
 *      to t: never late (a change's task runs in its own txg), never
 *      early (a change made in the open txg while t syncs is in t + 1's
 *      task, not in the copy t writes; test_hold_lost_txg checks both).
 *   3. sh equals sh_sync plus the changes whose tasks have not run yet.
 *   4. Hold and release are all-or-none over the names given.
 */
#include "hold.h"
#include "dataset.h"
#include "mos.h"
#include "snap.h"
#include "util.h"
#include "vol.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#define HOLDS_PER_LEAF (CE_META_BLOCK / sizeof(hold_phys)) /* 128 */

void
hold_init(ce_pool *p)
{
	tree_init(&p->sh_tree, BP_HOLDS, 1);
}

void
hold_fini(ce_pool *p)
{
	free(p->sh);
	p->sh = NULL;
	p->nsh = p->capsh = 0;
	free(p->sh_sync);
	p->sh_sync = NULL;
	p->nsync = p->capsync = 0;
}

static void
hold_put(hold_phys **a, size_t *n, size_t *cap, const hold_phys *h)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		*a = xrealloc(*a, *cap * sizeof(hold_phys));
	}
	(*a)[(*n)++] = *h;
}

static void
hold_make(hold_phys *h, uint64_t guid, const char *tag, uint64_t ctime)
{
	memset(h, 0, sizeof(*h));
	h->hd_snap_guid = guid;
	h->hd_ctime = ctime;
	snprintf(h->hd_tag, sizeof(h->hd_tag), "%s", tag);
}

static ssize_t
find_in(const hold_phys *a, size_t n, uint64_t guid, const char *tag)
{
	for (size_t i = 0; i < n; i++)
		if (a[i].hd_snap_guid == guid && strcmp(a[i].hd_tag, tag) == 0)
			return (ssize_t)i;
	return -1;
}

static ssize_t
hold_find(const ce_pool *p, uint64_t guid, const char *tag)
{
	return find_in(p->sh, p->nsh, guid, tag);
}

unsigned
hold_count(const ce_pool *p, uint64_t guid)
{
	ASSERT_HELD(&p->lock);
	unsigned n = 0;
	for (size_t i = 0; i < p->nsh; i++)
		n += p->sh[i].hd_snap_guid == guid;
	return n;
}

/* "tag1, tag2" of snapshot guid into buf (for error messages). */
void
hold_tags(const ce_pool *p, uint64_t guid, char *buf, size_t len)
{
	size_t at = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < p->nsh && at < len; i++)
		if (p->sh[i].hd_snap_guid == guid)
			at += (size_t)snprintf(buf + at, len - at, "%s%s", at ? ", " : "", p->sh[i].hd_tag);
}

/* At import, after the datasets: the holds object, dropping records that name no snapshot. */
int
hold_load(ce_pool *p)
{
	mos_header_phys *mh = mos_hdr(p);
	hold_fini(p);
	tree_init(&p->sh_tree, BP_HOLDS, 1);
	p->sh_disk_leaves = 0;
	p->sh_dirty = 0;
	if (mh->mh_version < 4 || mh->mh_holds_count == 0) {
		if (mh->mh_version >= 4 && !bp_is_hole(&mh->mh_holds_root)) {
			p->sh_tree.levels = mh->mh_holds_levels ? mh->mh_holds_levels : 1;
			p->sh_tree.root = mh->mh_holds_root;
		}
		return 0;
	}
	uint64_t n = mh->mh_holds_count, nleaves = (n + HOLDS_PER_LEAF - 1) / HOLDS_PER_LEAF;
	if (mh->mh_holds_levels == 0 || mh->mh_holds_levels > 8 ||
	    nleaves > cowtree_capacity(mh->mh_holds_levels))
		return err_set(-EIO, "pool %s: the holds object is damaged", p->name);
	p->sh_tree.levels = mh->mh_holds_levels;
	p->sh_tree.root = mh->mh_holds_root;
	hold_phys *buf = xmalloc(nleaves * CE_META_BLOCK);
	int err = mos_read_object(p, &p->sh_tree, (uint8_t *)buf, nleaves);
	if (err != 0) {
		free(buf);
		return err_set(err, "pool %s: cannot read the holds object", p->name);
	}
	p->sh_disk_leaves = nleaves;
	htab snaps;
	htab_init(&snaps);
	for (size_t i = 0; i < ds_count(p); i++)
		if (ds_at(p, i)->is_snap && ds_at(p, i)->destroy_txg == 0)
			htab_put(&snaps, ds_at(p, i)->guid, ds_at(p, i));
	for (uint64_t i = 0; i < n; i++) {
		hold_phys *h = &buf[i];
		h->hd_tag[sizeof(h->hd_tag) - 1] = '\0';
		if (htab_get(&snaps, h->hd_snap_guid) != NULL && h->hd_tag[0] != '\0' &&
		    hold_find(p, h->hd_snap_guid, h->hd_tag) < 0) {
			hold_put(&p->sh, &p->nsh, &p->capsh, h);
			hold_put(&p->sh_sync, &p->nsync, &p->capsync, h);
		} else
			p->sh_dirty = 1; /* rewritten without it at the next commit */
	}
	htab_fini(&snaps);
	free(buf);
	return 0;
}

/* A hold or release of txg t, in its sync (invariant 2). */
typedef struct hold_chg {
	int release;
	size_t n;
	hold_phys h[];
} hold_chg;

/* Sync task of hold and release: the same change to the holds as of t. */
static int
hold_task(ce_pool *p, void *arg, uint64_t t)
{
	hold_chg *c = arg;
	(void)t;
	ASSERT(pool_sync_thread(p)); /* sh_sync is the sync thread's */
	for (size_t i = 0; i < c->n; i++) {
		ssize_t k = find_in(p->sh_sync, p->nsync, c->h[i].hd_snap_guid, c->h[i].hd_tag);
		if (!c->release) {
			VERIFY(k < 0); /* invariant 3: open context checked it against sh */
			hold_put(&p->sh_sync, &p->nsync, &p->capsync, &c->h[i]);
		} else {
			VERIFY(k >= 0);
			p->sh_sync[k] = p->sh_sync[--p->nsync];
		}
	}
	p->sh_dirty = 1;
	return 0;
}

/* Pass 1 of txg t (pool_sync, after the sync tasks): rewrite the holds object if t changed them. */
int
hold_sync(ce_pool *p, uint64_t t)
{
	ASSERT(pool_sync_thread(p));
	if (!p->sh_dirty)
		return 0;
	uint64_t n = p->nsync, nleaves = (n + HOLDS_PER_LEAF - 1) / HOLDS_PER_LEAF;
	uint8_t *buf = xcalloc(nleaves ? nleaves : 1, CE_META_BLOCK);
	for (uint64_t i = 0; i < n; i++)
		((hold_phys *)buf)[i] = p->sh_sync[i];
	p->sh_dirty = 0;

	uint8_t *dirty = xmalloc(nleaves ? nleaves : 1);
	memset(dirty, 1, nleaves ? nleaves : 1);
	int err = 0, did = 0;
	if (nleaves > 0)
		err = mos_sync_object(p, &p->sh_tree, t, buf, dirty, nleaves, BP_HOLDS, &did);
	if (err == 0 && p->sh_disk_leaves > nleaves) {
		ct_acct acct = { 0 };
		err = cowtree_free_range(p, &p->sh_tree, t, nleaves, p->sh_disk_leaves, &acct);
	}
	free(dirty);
	free(buf);
	if (err != 0)
		return err;
	p->sh_disk_leaves = nleaves;
	mos_header_phys *mh = mos_hdr(p);
	mh->mh_holds_count = (uint32_t)n;
	mh->mh_holds_levels = p->sh_tree.levels;
	mh->mh_holds_root = p->sh_tree.root;
	if (n > 0 && mh->mh_version < 4)
		mh->mh_version = 4; /* older software must not destroy a held snapshot */
	mos_mark_dirty(p, 0, CE_META_BLOCK);
	return 0;
}

static int
tag_valid(const char *tag)
{
	size_t n = tag != NULL ? strlen(tag) : 0;
	if (n == 0 || n > CE_HOLD_TAG_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (tag[i] <= ' ' || tag[i] > '~')
			return 0;
	return 1;
}

/* Hold (release 0) or release (1) tag on every named snapshot, or on none. */
static int
hold_change(ce_pool *p, const char *tag, const char *const *names, size_t n, int *errs, int release)
{
	err_clear();
	if (!tag_valid(tag))
		return err_set(-EINVAL, "bad hold tag '%s' (1-%u printable characters, no spaces)",
		    tag ? tag : "", CE_HOLD_TAG_MAX);
	if (n == 0)
		return err_set(-EINVAL, "%s: no snapshots named", release ? "release" : "hold");
	for (size_t i = 0; i < n; i++)
		errs[i] = 0;
	int err = vol_mgmt_begin(p);
	if (err != 0)
		return err;
	int bad = 0;
	char first[300] = "";
	for (size_t i = 0; i < n; i++) {
		volume *s = names[i] != NULL ? vol_find(p, names[i]) : NULL;
		const char *why = NULL;
		if (s == NULL || !s->is_snap) {
			errs[i] = -ENOENT;
			why = "no such snapshot";
		} else if (s->taking) {
			errs[i] = -EBUSY;
			why = "still being taken";
		} else if (!release && hold_find(p, s->guid, tag) >= 0) {
			errs[i] = -EEXIST;
			why = "already held with this tag";
		} else if (release && hold_find(p, s->guid, tag) < 0) {
			errs[i] = -ENOENT;
			why = "no hold with this tag";
		} else if (snap_named_before(names, i)) {
			errs[i] = -EINVAL;
			why = "named twice";
		}
		if (errs[i] != 0 && bad++ == 0)
			snprintf(first, sizeof(first), "%s/%s: %s", p->name, names[i] ? names[i] : "(null)",
			    why);
	}
	if (bad) {
		vol_mgmt_abort(p);
		int e = 0;
		for (size_t i = 0; i < n && e == 0; i++)
			e = errs[i];
		return err_set(n == 1 ? e : -EINVAL, "%s '%s': nothing changed: %s%s",
		    release ? "release" : "hold", tag, first,
		    bad > 1 ? " (and more; see the per-name errors)" : "");
	}
	uint64_t now = (uint64_t)time(NULL);
	hold_chg *c = xmalloc(sizeof(*c) + n * sizeof(hold_phys));
	c->release = release;
	c->n = n;
	for (size_t i = 0; i < n; i++) {
		volume *s = vol_find(p, names[i]);
		hold_make(&c->h[i], s->guid, tag, now);
		if (!release) {
			hold_put(&p->sh, &p->nsh, &p->capsh, &c->h[i]);
		} else {
			ssize_t k = hold_find(p, s->guid, tag);
			p->sh[k] = p->sh[--p->nsh];
		}
	}
	synctask_add(p, hold_task, c); /* the holds object of the open txg gets the same change */
	return vol_mgmt_commit(p);
}

int
ce_snap_hold(ce_pool *p, const char *tag, const char *const *names, size_t n, int *errs)
{
	return hold_change(p, tag, names, n, errs, 0);
}

int
ce_snap_release(ce_pool *p, const char *tag, const char *const *names, size_t n, int *errs)
{
	return hold_change(p, tag, names, n, errs, 1);
}

static int
hold_info_cmp(const void *a, const void *b)
{
	const ce_hold_info *x = a, *y = b;
	int c = strcmp(x->snapshot, y->snapshot);
	return c != 0 ? c : strcmp(x->tag, y->tag);
}

int
ce_snap_holds(ce_pool *p, const char *name, ce_hold_info **out, size_t *count)
{
	err_clear();
	pthread_mutex_lock(&p->config_lock);
	pthread_mutex_lock(&p->lock);
	volume *only = NULL;
	if (name != NULL && ((only = vol_find(p, name)) == NULL || !only->is_snap ||
	    only->taking)) {
		pthread_mutex_unlock(&p->lock);
		pthread_mutex_unlock(&p->config_lock);
		return err_set(-ENOENT, "snapshot %s/%s does not exist", p->name, name);
	}
	htab snaps;
	htab_init(&snaps);
	for (size_t i = 0; i < ds_count(p); i++)
		if (ds_at(p, i)->is_snap && ds_at(p, i)->destroy_txg == 0)
			htab_put(&snaps, ds_at(p, i)->guid, ds_at(p, i));
	ce_hold_info *a = xcalloc(p->nsh ? p->nsh : 1, sizeof(ce_hold_info));
	size_t k = 0;
	for (size_t i = 0; i < p->nsh; i++) {
		volume *s = htab_get(&snaps, p->sh[i].hd_snap_guid);
		if (s == NULL || (only != NULL && s != only))
			continue;
		snprintf(a[k].snapshot, sizeof(a[k].snapshot), "%s", s->name);
		snprintf(a[k].tag, sizeof(a[k].tag), "%s", p->sh[i].hd_tag);
		a[k].ctime = p->sh[i].hd_ctime;
		k++;
	}
	htab_fini(&snaps);
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_unlock(&p->config_lock);
	qsort(a, k, sizeof(*a), hold_info_cmp);
	*out = a;
	*count = k;
	return 0;
}
