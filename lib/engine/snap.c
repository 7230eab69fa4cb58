/*
 * snap.c -- snapshots (design: docs/design-snapshots.md,
 * format: docs/on-disk-format.md sections 4.4 and 4.5).
 *
 * A snapshot is a read-only dataset that keeps a copy of its volume's root
 * pointer as of the end of one txg: O(1) to take. Each volume's snapshots
 * form a chain by txg; the volume's `prev` is its newest snapshot and
 * `prev_txg` that snapshot's txg.
 *
 * Freeing rule: when a volume's tree releases a block during a sync
 * (cowtree's replace), a block born after prev_txg is freed, an older one
 * is still referenced by the newest snapshot and is appended to the
 * volume's dead list instead (snap_kill, through ct_acct.kill).
 *
 * Taking a snapshot S of volume H in txg t (attach_sync, after H's sync
 * of t): S gets H's root and H's dead list; H gets an empty dead list and
 * prev = S, prev_txg = t.
 *
 * Destroying S with predecessor P and successor N (snap_destroy_sync): the
 * entries of N's dead list born after S.prev_txg are exactly the blocks
 * only S referenced: they are freed; N keeps the others and takes S's
 * dead list. Only dead lists are read, never a tree.
 *
 * The syncing halves of the operations are sync tasks (pool_sync.c)
 * registered by their open-context halves here: attach_sync (snapshot
 * create, also a receive's END), snap_destroy_task, doom_sync (volume
 * destroy, recursive), rollback_sync. The open-context half checks,
 * changes what open context sees (names, destroy_txg, taking,
 * rolling_back) and dirties every dataset whose record changes.
 * Snapshots need no data space; on a full pool ce_snap_create_ex refuses
 * them (-ENOSPC) once their records would eat into the second half of
 * the pool's reserve (alloc.c invariant 3), so that taking snapshots
 * never makes a commit fail.
 * A snapshot taken with CE_SNAP_AUTO (ce_snap_create_ex, for caskd's
 * snapshot policies, sched.c) carries is_auto, written as DS_FLAG_AUTO in
 * its record (format 7); it is an ordinary snapshot in every other way.
 *
 * Invariants:
 *   1. Dead lists change only in the sync thread (vol_sync and the sync
 *      tasks); their objects are written in pass 1 of the same txg as
 *      the frees and records they go with, so a crash keeps all or none.
 *   2. A block is on at most one dead list, and only while an older
 *      dataset of its chain references it.
 *   3. unique (a snapshot's `used`) is the bytes of its successor's dead
 *      list born after the snapshot's prev_txg; it grows with the
 *      volume's kills while the snapshot is the newest, and is recomputed
 *      when a neighbour is destroyed.
 *   4. d->prev is changed only by snap_set_prev, which keeps
 *      d->prev->child/sib: the successor and the clones of a snapshot are
 *      its children, found without a scan of every dataset.
 *   5. A dataset's written (bytes of its tree born after its prev_txg)
 *      is exact: a volume's from import on (a walk of what it wrote since
 *      its newest snapshot), a snapshot's from its attach, or from import
 *      without a walk: s references what s->prev does, less its dead
 *      list, plus what it wrote, so written = used - prev's used + dead
 *      list bytes (WRITTEN_UNKNOWN if the records disagree with that; a
 *      destroy then walks). When snapshot s goes, its successor n takes
 *      s's blocks born after s->prev_txg that n still references: n's
 *      written grows by s's written less what n's dead list frees, so a
 *      destroy reads no tree (snap_destroy_sync; checked against a walk
 *      in debug builds).
 */
#include "snap.h"
#include "blkio.h"
#include "dataset.h"
#include "deadlist.h"
#include "hold.h"
#include "htab.h"
#include "mos.h"
#include "txg.h"
#include "util.h"
#include "vol.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

/*
 * What n new snapshot records may take at their commit: the records (1 KiB each, on-disk-format.md
 * 4.4) and a path of MOS blocks rewritten with them; an upper estimate for alloc_meta_room.
 */
#define SNAP_META_SECTORS(n) (((uint64_t)(n) * 1024 + CE_SECTOR - 1) / CE_SECTOR + 8)

/* ct_acct.kill for a volume's tree: the block is still its newest snapshot's. */
void
snap_kill(void *arg, const bp_phys *bp)
{
	volume *h = arg;
	dl_append(&h->dl, bp);
	/* a clone's origin belongs to another volume: what the clone drops is not its own */
	if (h->prev != NULL && h->prev->head == h && bp->bp_birth > h->prev->prev_txg)
		h->prev->unique += bp_asize(bp);
}

/* A destroyed clone releases what its origin still holds: nothing to do with it. */
static void
kill_forget(void *arg, const bp_phys *bp)
{
	(void)arg;
	(void)bp;
}

/*
 * d->prev = prev, keeping prev's list of children (the datasets whose
 * prev it is: its successor and its clones), so that neither needs a
 * scan of every dataset. Sync thread or management locks.
 */
void
snap_set_prev(volume *d, volume *prev)
{
	if (d->prev != NULL) {
		volume **pp = &d->prev->child;
		while (*pp != NULL && *pp != d)
			pp = &(*pp)->sib;
		VERIFY(*pp == d);
		*pp = d->sib;
	}
	d->sib = NULL;
	d->prev = prev;
	if (prev != NULL) {
		d->sib = prev->child;
		prev->child = d;
	}
}

/* v is freed: a dataset still naming it as prev (a destroyed clone of it) names nothing. */
void
snap_orphan_children(volume *v)
{
	snap_set_prev(v, NULL);
	while (v->child != NULL) {
		volume *c = v->child;
		v->child = c->sib;
		c->sib = NULL;
		c->prev = NULL;
	}
}

/* Datasets (volumes and their snapshots) cloned from snapshot s. */
unsigned
snap_clones(ce_pool *p, const volume *s)
{
	unsigned n = 0;
	(void)p;
	for (volume *v = s->child; v != NULL; v = v->sib)
		if (v->destroy_txg == 0 && (v->is_snap ? v->head != s->head : v != s->head))
			n++;
	return n;
}

void
snap_doomed_acct(volume *v, ct_acct *acct)
{
	if (v->prev != NULL) {
		acct->kill = kill_forget;
		acct->keep_txg = v->prev_txg;
	}
}

/*
 * The dataset whose prev is s: a newer snapshot or the volume. Sync
 * thread, pool->lock not held: it takes it, since a management operation
 * may be adding a dataset (and reallocating p->dd.vols) meanwhile.
 */
volume *
snap_successor(ce_pool *p, volume *s)
{
	volume *found = NULL;
	pthread_mutex_lock(&p->lock); /* a clone in the open txg links into s->child meanwhile */
	for (volume *v = s->child; v != NULL && found == NULL; v = v->sib)
		if (v != s && (v->is_snap ? v->head == s->head : v == s->head))
			found = v;
	pthread_mutex_unlock(&p->lock);
	return found;
}

static uint64_t
unique_of(volume *s, volume *next)
{
	uint64_t u = 0;
	for (uint64_t i = 0; next != NULL && i < next->dl.n; i++)
		if (next->dl.e[i].bp_birth > s->prev_txg)
			u += bp_asize(&next->dl.e[i]);
	return u;
}

typedef struct sum_ctx {
	uint64_t bytes, lbytes;
} sum_ctx;

static int
sum_visit(void *arg, const bp_phys *bp, int level, uint64_t first, int err)
{
	(void)level;
	(void)first;
	((sum_ctx *)arg)->bytes += bp_asize(bp);
	if (bp->bp_type == BP_DATA)
		((sum_ctx *)arg)->lbytes += bp->bp_lsize;
	return err;
}

/* Bytes of v's tree born after its prev_txg (what "written" reports). */
int
snap_written(ce_pool *p, volume *v, uint64_t *out)
{
	if (v->prev_txg == 0) {
		*out = (uint64_t)v->used;
		return 0;
	}
	sum_ctx c = { 0 };
	int err = cowtree_walk_after(p, &v->tree, v->prev_txg, sum_visit, &c);
	*out = c.bytes;
	return err;
}

#ifndef NDEBUG
/* Debug builds: the written derived by a destroy equals a walk of the tree (invariant 5). */
static int
written_checked(ce_pool *p, volume *v)
{
	uint64_t w = 0;
	if (snap_written(p, v, &w) != 0)
		return 1; /* an IO error: nothing to compare */
	return w == v->written;
}
#endif

/*
 * From open context (no lock but config_lock): bytes of v's committed tree
 * born after txg, by a walk that skips older subtrees. free_lock keeps
 * the blocks of the captured root from being reused meanwhile.
 */
int
snap_bytes_after(ce_pool *p, volume *v, uint64_t txg, uint64_t *out, uint64_t *lout)
{
	pthread_rwlock_rdlock(&p->free_lock);
	pthread_mutex_lock(&v->lock);
	cowtree t = v->tree;
	pthread_mutex_unlock(&v->lock);
	sum_ctx c = { 0 };
	int err = cowtree_walk_after(p, &t, txg, sum_visit, &c);
	pthread_rwlock_unlock(&p->free_lock);
	*out = c.bytes;
	*lout = c.lbytes;
	return err;
}

/*
 * A loaded snapshot's written, from its record and its prev's (invariant
 * 5): what s references is what prev references, less s's dead list, plus
 * the blocks s wrote after prev_txg.
 */
static uint64_t
written_of_records(const volume *s)
{
	if (s->prev == NULL)
		return (uint64_t)s->used; /* no older snapshot: all of it */
	int64_t w = s->used - s->prev->used + (int64_t)s->dl.bytes;
	return w < 0 || w > s->used ? WRITTEN_UNKNOWN : (uint64_t)w;
}

/* After import: turn record guids into pointers and derive unique and written. */
int
snap_link_all(ce_pool *p)
{
	/* by guid, and each dataset's successor in its own chain: linear, not quadratic */
	htab byguid, next;
	htab_init(&byguid);
	htab_init(&next);
	int err = 0;
	for (size_t i = 0; i < ds_count(p); i++) {
		volume *v = ds_at(p, i);
		v->prev = v->child = v->sib = NULL;
		v->head = NULL;
		if (v->destroy_txg == 0)
			htab_put(&byguid, v->guid, v);
	}
	for (size_t i = 0; i < ds_count(p) && err == 0; i++) {
		volume *v = ds_at(p, i);
		if (v->destroy_txg != 0)
			continue;
		if (v->load_prev != 0)
			snap_set_prev(v, htab_get(&byguid, v->load_prev));
		if (v->load_head != 0)
			v->head = htab_get(&byguid, v->load_head);
		if ((v->load_prev != 0 && (v->prev == NULL || !v->prev->is_snap ||
		    v->prev->create_txg != v->prev_txg)) ||
		    (v->is_snap && (v->head == NULL || v->head->is_snap)) ||
		    (!v->is_snap && v->load_head != 0))
			err = err_set(-EIO, "pool %s: the snapshot chain of %s is damaged", p->name,
			    v->name);
	}
	/* the successor of s is the dataset of s's own volume whose prev is s (not a clone) */
	for (size_t i = 0; i < ds_count(p) && err == 0; i++) {
		volume *v = ds_at(p, i);
		if (v->destroy_txg == 0 && v->prev != NULL &&
		    v->prev->head == (v->is_snap ? v->head : v))
			htab_put(&next, v->prev->guid, v);
	}
	for (size_t i = 0; i < ds_count(p) && err == 0; i++) {
		volume *v = ds_at(p, i);
		if (v->destroy_txg != 0)
			continue;
		if (v->is_snap) {
			v->unique = unique_of(v, htab_get(&next, v->guid));
			v->written = written_of_records(v);
		} else if (snap_written(p, v, &v->written) != 0)
			err = err_set(-EIO, "pool %s: cannot read the tree of %s", p->name, v->name);
	}
	htab_fini(&byguid);
	htab_fini(&next);
	return err;
}

/* Destroyed by txg t (read under pool->lock: open context may be destroying it in t + 1). */
static int
destroyed_by(ce_pool *p, volume *v, uint64_t t)
{
	pthread_mutex_lock(&p->lock);
	int r = vol_destroyed_by(v, t);
	pthread_mutex_unlock(&p->lock);
	return r;
}

/* Sync task of snapshot create, txg t, after h's sync: snapshot s takes h's root and dead list. */
static int
attach_sync(ce_pool *p, void *arg, uint64_t t)
{
	volume *s = *(volume **)arg, *h = s->head;
	pool_sync_dirty(p, h, t);
	pool_sync_dirty(p, s, t);
	/*
	 * The MOS header is the sync thread's (mos.c invariant 1): older
	 * software must not open a pool with snapshots (version 3), drop a
	 * received snapshot's send identity (5) nor an automatic snapshot's
	 * DS_FLAG_AUTO (FMT_V_SCHED, sched.c).
	 */
	uint32_t want = s->is_auto ? FMT_V_SCHED : s->send_guid != 0 ? 5 : 3;
	if (mos_hdr(p)->mh_version < want) {
		mos_hdr(p)->mh_version = want;
		mos_mark_dirty(p, 0, CE_META_BLOCK);
	}
	pthread_mutex_lock(&h->lock);
	pthread_mutex_lock(&s->lock);
	/* management operations read chains, create_txg and taking under pool->lock */
	pthread_mutex_lock(&p->lock);
	s->tree = h->tree;
	/* as of txg t: h's record image for t, not what the open txg changed since */
	s->size = s->snap.size = h->snap.size;
	s->bs = h->bs;
	s->compress = s->snap.compress = h->snap.compress;
	s->checksum = s->snap.checksum = h->snap.checksum;
	s->sync = s->snap.sync = h->snap.sync;
	s->used = h->used;
	s->logical = h->logical;
	s->create_txg = t;
	s->dl = h->dl; /* its object too: the leaves still dirty are written this txg */
	s->dl.changed = 1;
	dl_init(&h->dl);
	h->dl.changed = 1;
	snap_set_prev(s, h->prev);
	s->prev_txg = h->prev_txg;
	s->unique = 0;
	snap_set_prev(h, s);
	h->prev_txg = t;
	s->written = h->written; /* s's tree is h's: the same blocks born after that prev_txg */
	h->written = 0;
	s->gen++;
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_unlock(&h->lock);
	pthread_mutex_lock(&p->lock);
	s->taking = 0;
	pthread_mutex_unlock(&p->lock);
	return 0;
}

/* txg t: snapshot s goes; what only it referenced is freed. */
static int
snap_destroy_sync(ce_pool *p, volume *s, uint64_t t)
{
	volume *n = snap_successor(p, s);
	VERIFY(n != NULL && !s->gone);
	pool_sync_dirty(p, n, t); /* its dead list and prev change */
	deadlist *nd = &n->dl;
	uint64_t k = 0, freed = 0, lfreed = 0;
	for (uint64_t i = 0; i < nd->n; i++) {
		bp_phys *e = &nd->e[i];
		if (e->bp_birth > s->prev_txg) {
			blk_free(p, e, t);
			freed += bp_asize(e);
			lfreed += e->bp_type == BP_DATA ? e->bp_lsize : 0;
		} else {
			nd->e[k++] = *e;
		}
	}
	nd->n = k;
	nd->bytes -= freed;
	nd->lbytes -= lfreed;
	dl_reserve(nd, nd->n + s->dl.n);
	for (uint64_t i = 0; i < s->dl.n; i++)
		nd->e[nd->n++] = s->dl.e[i];
	nd->bytes += s->dl.bytes;
	nd->lbytes += s->dl.lbytes;
	if (nd->cap > nd->n)
		memset(nd->e + nd->n, 0, (nd->cap - nd->n) * sizeof(bp_phys));
	dl_mark_all(nd);
	/* s's dead list object is metadata: free it whole. */
	ct_acct acct = { 0 };
	int err = cowtree_free_range(p, &s->dl.tree, t, 0, cowtree_capacity(s->dl.tree.levels), &acct);
	if (err != 0)
		return err;
	/* management operations read the chains under pool->lock (snap_clones) */
	pthread_mutex_lock(&n->lock);
	pthread_mutex_lock(&p->lock);
	snap_set_prev(n, s->prev);
	n->prev_txg = s->prev_txg;
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_unlock(&n->lock);
	volume *owner = n->is_snap ? n->head : n;
	if (n->prev != NULL && n->prev->head == owner) /* not a clone's origin */
		n->prev->unique = unique_of(n->prev, n);
	if (n->is_snap)
		n->unique = unique_of(n, snap_successor(p, n));
	/* invariant 5: n's blocks born after its new prev_txg, without a walk of its tree */
	if (n->prev_txg == 0) {
		n->written = (uint64_t)n->used; /* no older snapshot: all of it */
	} else if (n->written != WRITTEN_UNKNOWN && s->written != WRITTEN_UNKNOWN) {
		n->written = n->written + s->written - freed;
		ASSERT(destroyed_by(p, n, t) || written_checked(p, n));
	} else if (n->is_snap) {
		n->written = WRITTEN_UNKNOWN;
	} else if (!destroyed_by(p, n, t) && (err = snap_written(p, n, &n->written)) != 0) {
		return err;
	}
	pthread_mutex_lock(&p->lock);
	snap_set_prev(s, NULL);
	s->gone = 1;
	pthread_mutex_unlock(&p->lock);
	dl_fini(&s->dl);
	return 0;
}

/*
 * txg t, before h's own (doomed) sync: h's snapshots destroyed in the
 * same txg go first, newest first, so that each one frees what it alone
 * held and h is left with no snapshot of its own when its tree is freed
 * (a clone keeps its origin: what that holds is not freed).
 */
static int
snap_destroy_chain_sync(ce_pool *p, volume *h, uint64_t t)
{
	int err = 0;
	while (err == 0 && h->prev != NULL && h->prev->is_snap && h->prev->head == h &&
	    destroyed_by(p, h->prev, t))
		err = snap_destroy_sync(p, h->prev, t);
	return err;
}

/* A set of datasets one operation destroys, for its sync task. */
typedef struct doom_set {
	volume *h;             /* rollback: the volume rolled back */
	size_t n;
	volume *v[];
} doom_set;

static doom_set *
set_new(volume *h, volume **v, size_t n)
{
	doom_set *d = xmalloc(sizeof(*d) + (n ? n : 1) * sizeof(volume *));
	d->h = h;
	d->n = n;
	if (n > 0)
		memcpy(d->v, v, n * sizeof(volume *));
	return d;
}

static int
older_first(const void *a, const void *b)
{
	const volume *x = *(volume *const *)a, *y = *(volume *const *)b;
	return x->create_txg < y->create_txg ? -1 : x->create_txg > y->create_txg;
}

/* Snapshots of the set not destroyed yet, oldest first. */
static int
destroy_snaps(ce_pool *p, doom_set *d, uint64_t t)
{
	int err = 0;
	qsort(d->v, d->n, sizeof(volume *), older_first);
	for (size_t i = 0; i < d->n && err == 0; i++)
		if (d->v[i]->is_snap && !d->v[i]->gone)
			err = snap_destroy_sync(p, d->v[i], t);
	return err;
}

/*
 * Sync task of a volume destroy: each volume of the set after its own
 * snapshots of the set, newest first (snap_destroy_chain_sync); then any
 * snapshot left.
 */
static int
doom_sync(ce_pool *p, void *arg, uint64_t t)
{
	doom_set *d = arg;
	int err = 0;
	for (size_t i = 0; i < d->n && err == 0; i++) {
		volume *h = d->v[i];
		if (h->is_snap)
			continue;
		err = snap_destroy_chain_sync(p, h, t);
		if (err == 0)
			err = vol_destroy_sync(p, h, t);
	}
	return err != 0 ? err : destroy_snaps(p, d, t);
}

/* Destroy the datasets of set in the open txg (management locks held; all checked). */
void
snap_doom_set(ce_pool *p, volume **set, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		vol_mgmt_dirty(p, set[k]);
		set[k]->destroy_txg = txg_open(p);
	}
	synctask_add(p, doom_sync, set_new(NULL, set, n));
}

/* Sync task of a snapshot destroy. */
static int
snap_destroy_task(ce_pool *p, void *arg, uint64_t t)
{
	return destroy_snaps(p, arg, t);
}

/* Is v (a volume or snapshot) a clone's first dataset, i.e. is its prev in another chain? */
static volume *
clone_head_of(volume *v)
{
	volume *owner = v->is_snap ? v->head : v;
	return v->prev != NULL && v->prev->head != owner ? owner : NULL;
}

/*
 * Mark h (and, by flags, its snapshots and their clones, recursively) for
 * destruction in the open txg; nothing is marked if anything refuses.
 * config_lock and pool->lock held.
 */
int
snap_doom_volume(ce_pool *p, volume *h, unsigned flags)
{
	if (flags & CE_DESTROY_CLONES)
		flags |= CE_DESTROY_SNAPSHOTS;
	volume **set = xmalloc((ds_count(p) + 1) * sizeof(volume *));
	size_t n = 0;
	set[n++] = h;
	int err = 0;
	/* breadth first over volumes: each one's snapshots, then the clones of those */
	for (size_t k = 0; k < n && err == 0; k++) {
		volume *v = set[k];
		if (v->is_snap)
			continue;
		if (v->refs > 0) {
			err = err_setc(CE_E_VOLUME_OPEN, -EBUSY, "volume %s/%s is open (%d handles)", p->name, v->name, v->refs);
			break;
		}
		for (size_t i = 0; i < ds_count(p) && err == 0; i++) {
			volume *s = ds_at(p, i);
			if (!s->is_snap || s->head != v || s->destroy_txg != 0)
				continue;
			char tags[200];
			if (!(flags & CE_DESTROY_SNAPSHOTS))
				err = err_setc(CE_E_HAS_SNAPSHOTS, -EBUSY, "volume %s/%s has snapshots (%s/%s, ...): destroy them "
				    "first, or destroy with -r", p->name, v->name, p->name, s->name);
			else if (s->refs > 0 || s->taking)
				err = err_setc(s->refs > 0 ? CE_E_VOLUME_OPEN : CE_E_BUSY, -EBUSY, "snapshot %s/%s is %s", p->name, s->name,
				    s->refs > 0 ? "open" : "still being taken");
			else if (hold_count(p, s->guid) > 0)
				err = (hold_tags(p, s->guid, tags, sizeof(tags)), err_setc(CE_E_HELD, -EBUSY,
				    "snapshot %s/%s is held (%s): release the holds first", p->name, s->name, tags));
			else
				set[n++] = s;
		}
		/* volumes cloned from v's snapshots */
		for (size_t i = 0; i < ds_count(p) && err == 0; i++) {
			volume *c = ds_at(p, i), *ch = clone_head_of(c);
			if (c->destroy_txg != 0 || ch == NULL || c->prev->head != v || ch->destroy_txg != 0)
				continue;
			if (!(flags & CE_DESTROY_CLONES)) {
				err = err_setc(CE_E_HAS_CLONES, -EBUSY, "%s/%s has clones (%s/%s of %s/%s): destroy them first, or "
				    "destroy with -R", p->name, v->name, p->name, ch->name, p->name, c->prev->name);
				break;
			}
			int seen = 0;
			for (size_t q = 0; q < n; q++)
				seen |= set[q] == ch;
			if (!seen)
				set[n++] = ch;
		}
	}
	if (err == 0)
		snap_doom_set(p, set, n);
	free(set);
	return err;
}

/* Is names[i] also names[k] for some k < i? (batch operations refuse a name given twice) */
int
snap_named_before(const char *const *names, size_t i)
{
	for (size_t k = 0; k < i; k++)
		if (names[k] != NULL && names[i] != NULL && strcmp(names[k], names[i]) == 0)
			return 1;
	return 0;
}

static int
split_snap(const char *full, char *vol, size_t vlen, const char **snap)
{
	const char *at = strchr(full, '@');
	if (at == NULL || at == full || at[1] == '\0' || (size_t)(at - full) >= vlen ||
	    strchr(at + 1, '@') != NULL || strlen(full) > CE_NAME_MAX)
		return -EINVAL;
	snprintf(vol, vlen, "%.*s", (int)(at - full), full);
	*snap = at + 1;
	return 0;
}

typedef struct rb_ctx {
	ce_pool *p;
	uint64_t txg;
	uint64_t freed;
} rb_ctx;

static int
rb_visit(void *arg, const bp_phys *bp, int level, uint64_t first, int err)
{
	rb_ctx *c = arg;
	(void)level;
	(void)first;
	if (err != 0)
		return err;
	/* born after the snapshot: only the volume references it */
	blk_free(c->p, bp, c->txg);
	c->freed += bp_asize(bp);
	return 0;
}

/*
 * txg t, after h's sync: h becomes its newest snapshot again. What h
 * wrote since (blocks born after the snapshot) is freed, by a walk that
 * skips every subtree the snapshot shares; h's dead list (blocks the
 * snapshot holds) is simply dropped: h references them again.
 */
static int
snap_rollback_sync(ce_pool *p, volume *h, uint64_t t)
{
	volume *s = h->prev;
	VERIFY(s != NULL && s->is_snap);
	rb_ctx c = { p, t, 0 };
	int err = cowtree_walk_after(p, &h->tree, s->create_txg, rb_visit, &c);
	if (err != 0)
		return err;
	pthread_mutex_lock(&h->lock);
	h->tree = s->tree;
	h->used = s->used;
	h->logical = s->logical;
	h->size = h->snap.size = s->size;
	h->want_levels = h->snap.want_levels = MAX(s->tree.levels, cowtree_levels_for(h->size / h->bs));
	h->written = 0;
	h->gen++;
	pthread_mutex_unlock(&h->lock);
	dl_fini(&h->dl);
	uint64_t disk = h->dl.disk_leaves;
	cowtree old = h->dl.tree;
	dl_init(&h->dl);
	h->dl.tree = old;          /* the object's leaves go in dl_sync */
	h->dl.disk_leaves = disk;
	h->dl.changed = 1;
	s->unique = 0;
	return 0;
}

/* Sync task of a rollback: the later snapshots go, oldest first, then h rolls back to its newest. */
static int
rollback_sync(ce_pool *p, void *arg, uint64_t t)
{
	doom_set *d = arg;
	volume *h = d->h;
	int err = destroy_snaps(p, d, t);
	pool_sync_dirty(p, h, t);
	if (err == 0 && !destroyed_by(p, h, t))
		err = snap_rollback_sync(p, h, t);
	if (err == 0) {
		pthread_mutex_lock(&p->lock);
		h->rolling_back = 0;
		pthread_mutex_unlock(&p->lock);
	}
	return err;
}

/*
 * Roll h back to its newest snapshot once the later ones (all checked)
 * are destroyed, in the open txg (management locks held).
 */
void
snap_rollback_begin(ce_pool *p, volume *h, volume **later, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		vol_mgmt_dirty(p, later[k]);
		later[k]->destroy_txg = txg_open(p);
	}
	vol_mgmt_dirty(p, h);
	h->rolling_back = 1;
	synctask_add(p, rollback_sync, set_new(h, later, n));
}

/* ---- public ---- */

int
ce_vol_clone(ce_pool *p, const char *snapname, const char *newname)
{
	err_clear();
	if (newname == NULL || !vol_name_valid(newname))
		return err_set(-EINVAL, "bad volume name '%s'", newname ? newname : "");
	int err = vol_mgmt_begin(p);
	if (err != 0)
		return err;
	volume *s = snapname != NULL ? vol_find(p, snapname) : NULL;
	if (s == NULL || !s->is_snap || s->taking || s->destroy_txg != 0) {
		vol_mgmt_abort(p);
		return err_set(-ENOENT, "snapshot %s/%s does not exist", p->name, snapname ? snapname : "");
	}
	if (vol_find(p, newname) != NULL) {
		vol_mgmt_abort(p);
		return err_set(-EEXIST, "volume %s/%s already exists", p->name, newname);
	}
	/* A writable volume that starts as the snapshot's tree and shares its blocks. */
	volume *c = vol_alloc(p);
	snprintf(c->name, sizeof(c->name), "%s", newname);
	c->guid = util_random64();
	c->size = s->size;
	c->bs = s->bs;
	c->compress = s->head->compress;
	c->checksum = s->head->checksum;
	c->sync = s->head->sync;
	c->create_txg = txg_open(p);
	c->ctime = (uint64_t)time(NULL);
	c->tree = s->tree;
	c->used = s->used;
	c->logical = s->logical;
	c->want_levels = MAX(s->tree.levels, cowtree_levels_for(c->size / c->bs));
	snap_set_prev(c, s);
	c->prev_txg = s->create_txg;
	c->written = 0;
	vol_add(p, c);
	return vol_mgmt_commit(p);
}

/* The oldest dataset of h's own chain (h, or its oldest snapshot). */
static volume *
chain_first(volume *h)
{
	volume *f = h;
	while (f->prev != NULL && f->prev->is_snap && f->prev->head == h)
		f = f->prev;
	return f;
}

int
ce_vol_promote(ce_pool *p, const char *name)
{
	err_clear();
	int err = vol_mgmt_begin(p);
	if (err != 0)
		return err;
	volume *c = name != NULL ? vol_find(p, name) : NULL;
	if (c == NULL || c->is_snap) {
		vol_mgmt_abort(p);
		return err_set(c ? -EINVAL : -ENOENT, c ? "%s/%s is a snapshot: promote a clone volume" :
		    "volume %s/%s does not exist", p->name, name ? name : "");
	}
	volume *first = chain_first(c), *o = first->prev;
	if (o == NULL) {
		vol_mgmt_abort(p);
		return err_setc(CE_E_NOT_A_CLONE, -EINVAL, "volume %s/%s is not a clone: nothing to promote", p->name, name);
	}
	volume *v = o->head;
	if (c->receiving || v->receiving) {
		vol_mgmt_abort(p);
		return err_set(-EBUSY, "%s/%s is a partial receive", p->name, c->receiving ? c->name : v->name);
	}
	/* the two chains must be settled: no snapshot being taken or destroyed, no rollback */
	for (size_t i = 0; i < ds_count(p); i++) {
		volume *d = ds_at(p, i), *owner = d->is_snap ? d->head : d;
		if ((owner == v || owner == c) && (d->taking || d->destroy_txg != 0 ||
		    d->rolling_back)) {
			vol_mgmt_abort(p);
			return err_set(-EBUSY, "%s/%s: an operation on %s/%s is still being committed; try "
			    "again", p->name, name, p->name, d->name);
		}
	}
	/* snapshots move to c with their short names: none may clash */
	size_t vlen = strlen(v->name), n = 0;
	volume **mv = xmalloc(ds_count(p) * sizeof(volume *));
	for (size_t i = 0; i < ds_count(p); i++) {
		volume *s = ds_at(p, i);
		if (!s->is_snap || s->head != v || s->create_txg > o->create_txg)
			continue;
		const char *sn = s->name + vlen + 1;
		char full[2 * CE_NAME_MAX + 2];
		snprintf(full, sizeof(full), "%s@%s", c->name, sn);
		if (strlen(full) > CE_NAME_MAX || vol_find(p, full) != NULL) {
			free(mv);
			vol_mgmt_abort(p);
			return err_set(strlen(full) > CE_NAME_MAX ? -EINVAL : -EEXIST, "cannot promote %s/%s: "
			    "%s/%s %s", p->name, name, p->name, full, strlen(full) > CE_NAME_MAX ?
			    "would be too long a name" : "already exists (rename or destroy it first)");
		}
		mv[n++] = s;
	}
	/*
	 * A sync in flight reads heads and names: let it finish (and any txg
	 * already quiesced), so the whole change lands in one txg.
	 */
	int serr = txg_wait_quiet(p);
	if (serr != 0) {
		free(mv);
		vol_mgmt_abort(p);
		return err_set(serr, "pool %s is suspended after an IO error", p->name);
	}
	for (size_t i = 0; i < n; i++) {
		volume *s = mv[i];
		char full[2 * CE_NAME_MAX + 2];
		snprintf(full, sizeof(full), "%s@%s", c->name, s->name + vlen + 1);
		/* under pool->lock, which every reader of a name or head takes (no sync runs now) */
		vol_mgmt_dirty(p, s);
		vol_set_name(p, s, full);
		s->head = c;
	}
	free(mv);
	/* o's successor is now c's oldest dataset: what only o holds is read from its dead list */
	o->unique = unique_of(o, first);
	return vol_mgmt_commit(p);
}

int
ce_vol_rollback(ce_pool *p, const char *snapname, unsigned flags)
{
	err_clear();
	char vol[CE_NAME_MAX + 1];
	const char *sn;
	if (snapname == NULL || split_snap(snapname, vol, sizeof(vol), &sn) != 0)
		return err_set(-EINVAL, "rollback needs a snapshot name VOL@SNAP");
	int err = vol_mgmt_begin(p);
	if (err != 0)
		return err;
	volume *s = vol_find(p, snapname), *h = vol_find(p, vol);
	if (s == NULL || !s->is_snap || s->taking || s->destroy_txg != 0 || h == NULL ||
	    s->head != h) {
		vol_mgmt_abort(p);
		return err_set(-ENOENT, "snapshot %s/%s does not exist", p->name, snapname);
	}
	if ((h->refs > 0 && !(flags & VOL_ROLLBACK_OPEN)) || h->receiving) {
		vol_mgmt_abort(p);
		return h->receiving ? err_set(-EBUSY, "volume %s/%s is a partial receive: abandon it with "
		    "cask recv -A", p->name, vol) : err_set(-EBUSY, "volume %s/%s is open (%d handles)",
		    p->name, vol, h->refs);
	}
	/* the snapshots taken after it: refused, or destroyed first with -r */
	unsigned later = 0;
	volume *blocker = NULL;
	for (size_t i = 0; i < ds_count(p); i++) {
		volume *o = ds_at(p, i);
		if (o->is_snap && o->head == h && o->destroy_txg == 0 &&
		    (o->taking || o->create_txg > s->create_txg)) {
			later++;
			if (blocker == NULL && (o->refs > 0 || o->taking ||
			    hold_count(p, o->guid) > 0 || snap_clones(p, o) > 0))
				blocker = o;
		}
	}
	if (later > 0 && !(flags & CE_ROLLBACK_DESTROY_LATER)) {
		vol_mgmt_abort(p);
		return err_set(-EEXIST, "%s/%s has %u snapshot%s newer than %s: destroy them, or roll back "
		    "with -r to destroy them too", p->name, vol, later, later == 1 ? "" : "s", snapname);
	}
	if (blocker != NULL) {
		/* the message reads the holds and the name: before the locks go */
		volume *o = blocker;
		err = err_set(-EBUSY, "snapshot %s/%s is %s", p->name, o->name,
		    o->refs > 0 ? "open" : o->taking ? "being taken" :
		    hold_count(p, o->guid) > 0 ? "held (release its holds first)" :
		    "the origin of a clone (destroy or promote the clone first)");
		vol_mgmt_abort(p);
		return err;
	}
	volume **lv = xmalloc((later ? later : 1) * sizeof(volume *));
	size_t nl = 0;
	for (size_t i = 0; i < ds_count(p); i++) {
		volume *o = ds_at(p, i);
		if (o->is_snap && o->head == h && o->destroy_txg == 0 && o->create_txg > s->create_txg)
			lv[nl++] = o;
	}
	snap_rollback_begin(p, h, lv, nl);
	free(lv);
	return vol_mgmt_commit(p);
}

/*
 * Snapshot `full` (VOL@SNAP) of h, taken at the end of the open txg
 * (management lock held; the caller commits). send_guid: a received
 * snapshot's send identity, else 0.
 */
volume *
snap_add(ce_pool *p, volume *h, const char *full, uint64_t send_guid)
{
	uint64_t t = txg_open(p);
	volume *s = vol_alloc(p);
	s->is_snap = 1;
	s->head = h;
	s->guid = util_random64();
	s->send_guid = send_guid;
	snprintf(s->name, sizeof(s->name), "%s", full);
	s->bs = h->bs;
	s->size = h->size;
	s->tree.bsize = h->bs; /* the rest of its tree is h's at snap_attach (h->tree is the sync thread's) */
	s->ctime = (uint64_t)time(NULL);
	s->create_txg = t;
	s->taking = 1;
	vol_mgmt_dirty(p, h); /* its prev and dead list change with the attach */
	vol_add(p, s);
	volume **arg = xmalloc(sizeof(volume *));
	*arg = s;
	synctask_add(p, attach_sync, arg);
	return s;
}

int
ce_snap_create(ce_pool *p, const char *const *names, size_t n, int *errs)
{
	return ce_snap_create_ex(p, names, n, 0, errs);
}

int
ce_snap_create_ex(ce_pool *p, const char *const *names, size_t n, unsigned flags, int *errs)
{
	err_clear();
	if (n == 0)
		return err_set(-EINVAL, "snapshot: no names given");
	for (size_t i = 0; i < n; i++)
		errs[i] = 0;
	int err = vol_mgmt_begin(p);
	if (err != 0)
		return err;
	int bad = 0;
	char first_err[256] = "";
	for (size_t i = 0; i < n; i++) {
		char vol[CE_NAME_MAX + 1];
		const char *sn;
		const char *why = NULL;
		volume *h = NULL;
		if (names[i] == NULL || split_snap(names[i], vol, sizeof(vol), &sn) != 0 ||
		    !vol_name_valid(sn)) {
			errs[i] = -EINVAL;
			why = "bad snapshot name (VOLUME@SNAPSHOT, 255 characters at most; the snapshot "
			    "part like a volume name)";
		} else if ((h = vol_find(p, vol)) == NULL || h->is_snap) {
			errs[i] = -ENOENT;
			why = "no such volume";
		} else if (h->receiving) {
			errs[i] = -EBUSY;
			why = "a receive into it is in progress or partial";
		} else if (vol_find(p, names[i]) != NULL) {
			errs[i] = -EEXIST;
			why = "snapshot exists";
		} else if (snap_named_before(names, i)) {
			errs[i] = -EEXIST;
			why = "named twice";
		}
		if (errs[i] != 0 && bad++ == 0)
			snprintf(first_err, sizeof(first_err), "%s/%s: %s", p->name,
			    names[i] ? names[i] : "(null)", why);
	}
	if (bad) {
		vol_mgmt_abort(p);
		return err_set(-EINVAL, "no snapshot taken: %s%s", first_err,
		    bad > 1 ? " (and more; see the per-name errors)" : "");
	}
	/*
	 * A snapshot takes no data space, but its record (and the MOS blocks the commit rewrites) do:
	 * on a full pool they may use the reserve's first half only (alloc.c invariant 3), so the
	 * snapshots are refused here rather than the commit failing and suspending the pool.
	 */
	err = alloc_meta_room(&p->alloc, SNAP_META_SECTORS(n));
	if (err != 0) {
		vol_mgmt_abort(p); /* errs stay 0: no name is wrong */
		return err_set(-ENOSPC, "pool %s is full: no room for the record%s of %zu snapshot%s (free data: "
		    "destroy a volume, or trim what no snapshot holds)", p->name, n == 1 ? "" : "s", n, n == 1 ? "" : "s");
	}
	for (size_t i = 0; i < n; i++) {
		char vol[CE_NAME_MAX + 1];
		const char *sn;
		split_snap(names[i], vol, sizeof(vol), &sn);
		snap_add(p, vol_find(p, vol), names[i], 0)->is_auto = (flags & CE_SNAP_AUTO) != 0;
	}
	return vol_mgmt_commit(p); /* snap_attach raises the MOS version */
}

/* Why snapshot s cannot be destroyed now (into why), or 0. */
static int
destroy_refusal(ce_pool *p, volume *s, char *why, size_t len)
{
	if (s->refs > 0 || s->taking) {
		snprintf(why, len, "%s", s->refs > 0 ? "open" : "still being taken");
		return -EBUSY;
	}
	unsigned nc = snap_clones(p, s);
	if (nc > 0) {
		snprintf(why, len, "the origin of %u clone%s: destroy or promote them first", nc,
		    nc == 1 ? "" : "s");
		return -EBUSY;
	}
	if (hold_count(p, s->guid) > 0) {
		char tags[200];
		hold_tags(p, s->guid, tags, sizeof(tags));
		snprintf(why, len, "held (%s): release the holds first", tags);
		return -EBUSY;
	}
	volume *h = s->head;
	if (h->receiving && (h->rs.rs_flags & RS_INCREMENTAL) && h->prev == s) {
		snprintf(why, len, "the base of a partial receive: finish or abandon that first");
		return -EBUSY;
	}
	return 0;
}

int
ce_snap_destroy_many(ce_pool *p, const char *const *names, size_t n, int *errs)
{
	err_clear();
	if (n == 0)
		return err_set(-EINVAL, "destroy: no snapshots named");
	int err = vol_mgmt_begin(p);
	if (err != 0)
		return err;
	int bad = 0, first = 0;
	char msg[400] = "";
	for (size_t i = 0; i < n; i++) {
		volume *s = names[i] != NULL ? vol_find(p, names[i]) : NULL;
		char why[300] = "";
		errs[i] = 0;
		if (s == NULL || !s->is_snap) {
			errs[i] = -ENOENT;
			snprintf(why, sizeof(why), "does not exist");
		} else if (snap_named_before(names, i)) {
			errs[i] = -EINVAL;
			snprintf(why, sizeof(why), "named twice");
		} else {
			errs[i] = destroy_refusal(p, s, why, sizeof(why));
		}
		if (errs[i] != 0 && bad++ == 0) {
			first = errs[i];
			snprintf(msg, sizeof(msg), "snapshot %s/%s %s%s", p->name, names[i] ? names[i] : "",
			    errs[i] == -ENOENT ? "" : "is ", why);
		}
	}
	if (bad) {
		vol_mgmt_abort(p);
		return err_set(n == 1 ? first : -EINVAL, "%s%s%s", n == 1 ? "" : "nothing destroyed: ", msg,
		    bad > 1 ? " (and more; see the per-name errors)" : "");
	}
	volume **set = xmalloc(n * sizeof(volume *));
	for (size_t i = 0; i < n; i++) {
		set[i] = vol_find(p, names[i]);
		vol_mgmt_dirty(p, set[i]);
		set[i]->destroy_txg = txg_open(p);
	}
	synctask_add(p, snap_destroy_task, set_new(NULL, set, n));
	free(set);
	return vol_mgmt_commit(p);
}

int
ce_snap_destroy(ce_pool *p, const char *name)
{
	int e;
	return ce_snap_destroy_many(p, &name, 1, &e);
}

int
ce_snap_rename(ce_pool *p, const char *name, const char *newname)
{
	err_clear();
	char vol[CE_NAME_MAX + 1], full[2 * CE_NAME_MAX + 2];
	const char *sn;
	if (name == NULL || split_snap(name, vol, sizeof(vol), &sn) != 0 || newname == NULL)
		return err_set(-EINVAL, "rename needs VOL@SNAP and a new snapshot name");
	const char *nn = strchr(newname, '@');
	if (nn != NULL && ((size_t)(nn - newname) != strlen(vol) || strncmp(newname, vol, strlen(vol)) != 0))
		return err_set(-EINVAL, "a snapshot keeps its volume: %s cannot become %s", name, newname);
	nn = nn != NULL ? nn + 1 : newname;
	if (!vol_name_valid(nn) || strlen(vol) + 1 + strlen(nn) > CE_NAME_MAX)
		return err_set(-EINVAL, "bad snapshot name '%s'", nn);
	snprintf(full, sizeof(full), "%s@%s", vol, nn);
	int err = vol_mgmt_begin(p);
	if (err != 0)
		return err;
	volume *s = vol_find(p, name);
	if (s == NULL || !s->is_snap || s->taking) {
		vol_mgmt_abort(p);
		return err_set(-ENOENT, "snapshot %s/%s does not exist", p->name, name);
	}
	if (vol_find(p, full) != NULL) {
		vol_mgmt_abort(p);
		return err_set(-EEXIST, "snapshot %s/%s already exists", p->name, full);
	}
	vol_mgmt_dirty(p, s);
	vol_set_name(p, s, full); /* fits: checked against CE_NAME_MAX above */
	return vol_mgmt_commit(p);
}

static int
snap_info_cmp(const void *a, const void *b)
{
	const ce_snap_info *x = a, *y = b;
	int c = strcmp(x->volume, y->volume);
	if (c != 0)
		return c;
	return x->txg < y->txg ? -1 : x->txg > y->txg ? 1 : strcmp(x->name, y->name);
}

int
ce_snap_list(ce_pool *p, const char *vol, ce_snap_info **out, size_t *count)
{
	err_clear();
	pthread_mutex_lock(&p->config_lock);
	pthread_mutex_lock(&p->lock);
	if (vol != NULL) {
		volume *h = vol_find(p, vol);
		if (h == NULL || h->is_snap) {
			pthread_mutex_unlock(&p->lock);
			pthread_mutex_unlock(&p->config_lock);
			return err_set(-ENOENT, "volume %s/%s does not exist", p->name, vol);
		}
	}
	/* clones per origin and each snapshot's successor, in one pass */
	htab nclones, next;
	htab_init(&nclones);
	htab_init(&next);
	for (size_t i = 0; i < ds_count(p); i++) {
		volume *v = ds_at(p, i), *o = v->prev;
		if (v->destroy_txg != 0 || o == NULL)
			continue;
		if (o->head != (v->is_snap ? v->head : v))
			htab_put(&nclones, o->guid, (void *)((uintptr_t)htab_get(&nclones, o->guid) + 1));
		else
			htab_put(&next, o->guid, v);
	}
	ce_snap_info *a = xcalloc(ds_count(p) ? ds_count(p) : 1, sizeof(ce_snap_info));
	size_t k = 0;
	for (size_t i = 0; i < ds_count(p); i++) {
		volume *s = ds_at(p, i);
		if (!s->is_snap || s->destroy_txg != 0 || s->taking ||
		    (vol != NULL && strcmp(s->head->name, vol) != 0))
			continue;
		ce_snap_info *o = &a[k++];
		snprintf(o->name, sizeof(o->name), "%s", s->name);
		snprintf(o->volume, sizeof(o->volume), "%s", s->head->name);
		o->guid = s->guid;
		o->txg = s->create_txg;
		o->ctime = s->ctime;
		o->size = s->size;
		o->referenced = (uint64_t)s->used;
		o->logical = (uint64_t)s->logical;
		o->used = s->unique;
		o->holds = hold_count(p, s->guid);
		o->clones = (unsigned)(uintptr_t)htab_get(&nclones, s->guid);
		o->automatic = s->is_auto;
		volume *n = htab_get(&next, s->guid);
		uint64_t ub = 0;
		if (n != NULL)
			dl_sum_after(&n->dl, s->prev_txg, &ub, &o->logicalused);
	}
	htab_fini(&nclones);
	htab_fini(&next);
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_unlock(&p->config_lock);
	qsort(a, k, sizeof(*a), snap_info_cmp);
	*out = a;
	*count = k;
	return 0;
}
