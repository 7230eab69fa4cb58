/*
 * repl.c -- a volume as a replica of a replicated volume: its replica
 * record as engine state (design: docs/replication.md section 3.8;
 * bytes: docs/on-disk-format.md section 7).
 *
 * The replica service of caskd (daemon/repl/) decides what the record
 * says -- which epoch it promised, which one it adopted, the membership
 * -- and applies the controller's sequenced operations through this file,
 * which makes those facts commit with the data they describe. Records of
 * all replica volumes of a pool live in one replica object rooted at MOS
 * offset 8448 (four 4 KiB records per 16 KiB leaf, slot = ds_repl_idx).
 * A replica record is part of its volume's record: whatever changes it
 * (a management operation, an apply that finished) puts the volume on
 * the open txg's dirty list (pool_dirty, vol_mgmt_dirty), the sync of
 * that txg settles the record with the volume's image (repl_settle from
 * vol_settle), puts it into its slot with the dataset record
 * (repl_record from vol_sync_record), and rewrites the leaves that
 * changed after the records (repl_sync, pool_sync.c's pool step, like the
 * holds object). No step walks the replica volumes.
 *
 * Invariants:
 *   1. One apply at a time per volume (rp->mu, outside every engine
 *      lock), in seq order: an operation is applied only when its seq is
 *      applied + 1 and its epoch is the promised one, checked under
 *      pool->lock, so no frame of an older epoch is applied once a newer
 *      one was promised (replication.md rule 3, at the engine itself).
 *   2. applied commits with the data: an apply that finished records
 *      (seq, open txg at its start, open txg at its end) and dirties the
 *      volume in the latter; every byte of it lies in txgs between the
 *      two (its txg holds are taken in order and released before it
 *      ends). The settle of txg t (after t's quiesce, when no apply can
 *      end in t any more) takes as applied the newest seq whose end is
 *      <= t, so the record of txg t never claims an operation that is not
 *      wholly in t's tree, and misses none that is; hi is the highest seq
 *      that began in a txg <= t (it may have bytes in t), so hi >= applied.
 *   3. The map gains (t, hi) in each txg where hi rose, so "data of
 *      seqs > c lie only in txgs >= the first entry with sm_hi > c" holds;
 *      merging old pairs (t1,h1),(t2,h2) -> (t1,h2) keeps it true.
 *   4. Promise, epoch start, membership and flags change the live record
 *      under the management locks, after vol_mgmt_dirty kept the image of
 *      the txg syncing (rec -> img, so the open txg never leaks into it),
 *      and return only after their txg committed (durable before the
 *      replica answers).
 *   5. Replica volumes are not written to the intent log (vol.c does not
 *      append their writes): their durability is a txg commit (ce_repl_flush), so
 *      a log replay can never bring back bytes past the record's applied
 *      without the record saying so. (As built: the LR_REPL and
 *      LR_REPL_REC log records of the design are not implemented.)
 *   6. A volume's repl_state lives as long as the volume (v->rp is set
 *      with a release store and read with repl_of's acquire load, so the
 *      write paths read it without pool->lock). ce_pool_clear's reload
 *      refreshes the same object in place and bumps its gen under
 *      pool->lock (a volume the reloaded object does not name has its
 *      state moved to v->rp_retired, never freed under an apply); an
 *      apply or flush that began before the bump records nothing.
 *   7. The ring keeps the byte range of each of the newest REPL_RING
 *      operations, noted under pool->lock when its apply begins (before a
 *      byte changes), so the extents listed for seqs after c cover every
 *      byte this replica may hold of them, a failed try's included. It is
 *      memory only: after an import it knows nothing before applied
 *      (ce_repl_extents answers -ERANGE), and a reconciliation then counts
 *      on the other members' rings or leaves this one degraded.
 *   8. A tail sync (ce_repl_tail_begin .. ce_repl_start_epoch) first makes
 *      the record rebuilding (kind tail) with the reference's history,
 *      durably, so a crash during the copy never leaves a replica that
 *      says complete with half a tail; the START_EPOCH that ends it sets
 *      applied = base with the new epoch, in one commit.
 *   9. A rollback changes bytes without new births (the volume takes the
 *      snapshot's old blocks), so no listing by births can find them: the
 *      settle of every txg at or after the one its apply began in (which
 *      holds the rollback, snap.c) makes the map's first entry (0, s) --
 *      txg 0 is no txg: "data of the seqs up to s may be anywhere" -- and
 *      drops the entries it covers, so a listing from any c < s is the
 *      whole volume (ce_rebuild_scan) and one from c >= s the later
 *      entries' as before. It commits with the rollback, never after it.
 *  10. Older software misreads (0, s) (on-disk-format.md section 7.4), so
 *      the MOS header says FMT_V_ROLLMAP from the first txg whose replica
 *      object holds a record with it: repl_sync, which writes the object
 *      of txg t, raises the header in the same step (sync thread, before
 *      t's MOS is written), so no committed txg has the entry under an
 *      older version. A pool never rolled back keeps its version.
 *  11. A tail sync's bytes are born in txgs after the one TAIL_BEGIN
 *      committed in, and no map entry is added between the two: hi does
 *      not rise (no apply runs: the promised epoch has not started, and
 *      one that began before the promise raised hi in its first txg), so
 *      every tail byte is born after the last entry's txg. The settle
 *      that takes the START_EPOCH's done entry (base, o, o) raises that
 *      last entry's sm_hi to base instead of appending (o, base) -- which
 *      would miss the bytes the tail wrote before o, since a tail spans
 *      txgs -- so a listing from any c < base starts at or before the
 *      tail's first byte. Txgs and his keep their order; the cost is the
 *      last entry's own txg listed again for such a c.
 *
 * States of the record: complete (1) from ce_repl_make on; rebuilding
 * (2) is entered and left by rebuild.c (ce_rebuild_begin, _end), and
 * applies the live stream like complete (rebuild_takes_live); retired
 * (3) is only checked here.
 */
#include "repl.h"
#include "dataset.h"
#include "mos.h"
#include "rebuild.h"
#include "pool_sync.h"
#include "txg.h"
#include "util.h"
#include "vol.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#ifndef RB_TAIL
#define RB_TAIL 1u /* rb_kind of a tail sync (on-disk-format.md section 7) */
#endif

static epoch_phys
ep_of(ce_epoch e)
{
	return (epoch_phys){ e.counter, e.node };
}

static ce_epoch
ce_of(epoch_phys e)
{
	return (ce_epoch){ e.ep_counter, e.ep_node };
}

static int
ep_cmp(epoch_phys a, epoch_phys b)
{
	return ce_epoch_cmp(ce_of(a), ce_of(b));
}

struct repl_state *
repl_of(const volume *v)
{
	return __atomic_load_n(&v->rp, __ATOMIC_ACQUIRE);
}

static void
set_rp(volume *v, repl_state *rs)
{
	__atomic_store_n(&v->rp, rs, __ATOMIC_RELEASE);
}

static void
state_free(repl_state *rs)
{
	while (rs != NULL) {
		repl_state *next = rs->retired;
		pthread_mutex_destroy(&rs->mu);
		free(rs->done);
		free(rs->ring);
		free(rs);
		rs = next;
	}
}

/* The volume is going (vol_delete): nothing can apply to it any more. */
void
repl_free(volume *v)
{
	repl_state *rs = repl_of(v);
	set_rp(v, NULL);
	state_free(rs);
	state_free(v->rp_retired);
	v->rp_retired = NULL;
}

void
repl_pool_fini(ce_pool *p)
{
	free(p->rp_buf);
	free(p->rp_dirty);
	p->rp_buf = p->rp_dirty = NULL;
	p->rp_cap_leaves = p->rp_disk_leaves = 0;
	p->rp_changed = 0;
}

/* The object buffer holds at least n leaves (sync thread or import). */
static void
obj_reserve(ce_pool *p, uint64_t n)
{
	if (n <= p->rp_cap_leaves)
		return;
	p->rp_buf = xrealloc(p->rp_buf, n * CE_META_BLOCK);
	p->rp_dirty = xrealloc(p->rp_dirty, n);
	memset(p->rp_buf + p->rp_cap_leaves * CE_META_BLOCK, 0, (n - p->rp_cap_leaves) * CE_META_BLOCK);
	memset(p->rp_dirty + p->rp_cap_leaves, 0, n - p->rp_cap_leaves);
	p->rp_cap_leaves = n;
}

static repl_state *
state_new(uint32_t idx)
{
	repl_state *rs = xcalloc(1, sizeof(*rs));
	pthread_mutex_init(&rs->mu, NULL);
	rs->idx = idx;
	return rs;
}

/* ---- capture and sync ---- */

static void
map_append(repl_phys *r, uint64_t t, uint64_t hi)
{
	if (r->rp_map_count == CE_REPL_MAP) {
		/* the older half, pairwise: coarser old answers, never wrong ones */
		uint32_t half = CE_REPL_MAP / 2, k = 0;
		for (uint32_t i = 0; i < half; i += 2)
			r->rp_map[k++] = (sm_phys){ r->rp_map[i].sm_txg, r->rp_map[i + 1].sm_hi };
		memmove(&r->rp_map[k], &r->rp_map[half], (CE_REPL_MAP - half) * sizeof(sm_phys));
		r->rp_map_count = k + (CE_REPL_MAP - half);
		memset(&r->rp_map[r->rp_map_count], 0, (CE_REPL_MAP - r->rp_map_count) * sizeof(sm_phys));
	}
	r->rp_map[r->rp_map_count++] = (sm_phys){ t, hi };
}

/* The record image (dataset.c capture_image): rec as it is now; pool->lock held. */
void
repl_image(volume *v)
{
	ASSERT_HELD(&v->pool->lock);
	if (repl_of(v) != NULL)
		repl_of(v)->img = repl_of(v)->rec;
}

/*
 * Invariant 2: what txg t holds of this replica, settled once per txg
 * with the volume's image (vol_settle; pool->lock held, t quiesced).
 */
void
repl_settle(volume *v, uint64_t t)
{
	repl_state *rs = repl_of(v);
	ASSERT_HELD(&v->pool->lock);
	if (rs == NULL || rs->img.rp_ds_guid == 0)
		return; /* made a replica after t: t has no record of it */
	const repl_phys old = rs->cap.rp_ds_guid != 0 ? rs->cap : rs->img;
	uint64_t applied = old.rp_applied;
	size_t k = 0;
	while (k < rs->ndone && rs->done[k].txg <= t)
		applied = rs->done[k++].seq;
	if (k > 0) {
		memmove(rs->done, rs->done + k, (rs->ndone - k) * sizeof(repl_done));
		rs->ndone -= k;
	}
	/* the one operation after applied that may have begun in t (applies are serial) */
	uint64_t hi = applied;
	if (rs->ndone > 0 && rs->done[0].btxg <= t)
		hi = rs->done[0].seq;
	else if (rs->ndone == 0 && rs->begun > applied && rs->begun_txg <= t)
		hi = rs->begun;
	repl_phys c = rs->img;
	c.rp_applied = applied;
	c.rp_hi = MAX(old.rp_hi, hi);
	c.rp_map_count = old.rp_map_count;
	memcpy(c.rp_map, old.rp_map, sizeof(c.rp_map));
	if (rs->rollback_seq != 0 && rs->rollback_txg <= t) {
		/* invariant 9: (0, s) first; the entries it covers dropped; any beyond the table merged into the last */
		sm_phys m[CE_REPL_MAP];
		uint64_t s0 = rs->rollback_seq;
		for (uint32_t i = 0; i < c.rp_map_count; i++)
			if (c.rp_map[i].sm_txg == 0)
				s0 = MAX(s0, c.rp_map[i].sm_hi);
		uint32_t mk = 0;
		m[mk++] = (sm_phys){ 0, s0 };
		for (uint32_t i = 0; i < c.rp_map_count; i++) {
			if (c.rp_map[i].sm_txg == 0 || c.rp_map[i].sm_hi <= s0)
				continue;
			if (mk < CE_REPL_MAP)
				m[mk++] = c.rp_map[i];
			else
				m[mk - 1].sm_hi = c.rp_map[i].sm_hi;
		}
		memset(c.rp_map, 0, sizeof(c.rp_map));
		memcpy(c.rp_map, m, mk * sizeof(sm_phys));
		c.rp_map_count = mk;
		rs->rollback_seq = 0;
	}
	if (rs->tail_end_txg != 0 && rs->tail_end_txg <= t) {
		/* invariant 11: the tail's bytes are born after the last entry's txg: it covers them */
		ASSERT(c.rp_map_count > 0 && c.rp_map[c.rp_map_count - 1].sm_txg <= rs->tail_end_txg);
		if (c.rp_hi > c.rp_map[c.rp_map_count - 1].sm_hi)
			c.rp_map[c.rp_map_count - 1].sm_hi = c.rp_hi;
		rs->tail_end_txg = 0;
	}
	if (c.rp_map_count == 0 || c.rp_hi > c.rp_map[c.rp_map_count - 1].sm_hi) {
		if (c.rp_map_count > 0 && c.rp_map[c.rp_map_count - 1].sm_txg == t)
			c.rp_map[c.rp_map_count - 1].sm_hi = c.rp_hi;
		else
			map_append(&c, t, c.rp_hi);
	}
	rs->cap = c;
}

/* Records step of txg t (vol_sync_record): v's slot as settled for t, or empty once v is gone. */
void
repl_record(ce_pool *p, volume *v, uint64_t t)
{
	ASSERT(pool_sync_thread(p));
	repl_state *rs = repl_of(v);
	if (rs == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	int gone = vol_destroyed_by(v, t);
	pthread_mutex_unlock(&p->lock);
	uint64_t leaf = rs->idx / CE_REPL_PER_LEAF;
	repl_phys *slot = (repl_phys *)(p->rp_buf + (size_t)rs->idx * CE_REPL_REC_SIZE);
	if (gone || rs->cap.rp_ds_guid == 0) {
		if (leaf < p->rp_cap_leaves && slot->rp_ds_guid == v->guid) {
			memset(slot, 0, sizeof(*slot));
			p->rp_dirty[leaf] = 1;
			p->rp_changed = 1;
		}
		return;
	}
	obj_reserve(p, leaf + 1);
	slot = (repl_phys *)(p->rp_buf + (size_t)rs->idx * CE_REPL_REC_SIZE);
	if (memcmp(slot, &rs->cap, sizeof(*slot)) != 0) {
		memcpy(slot, &rs->cap, sizeof(*slot));
		p->rp_dirty[leaf] = 1;
		p->rp_changed = 1;
	}
}

/* Pool step of txg t, after every record of t: the leaves t changed, and the root. */
int
repl_sync(ce_pool *p, uint64_t t)
{
	ASSERT(pool_sync_thread(p));
	if (!p->rp_changed)
		return 0;
	uint64_t nleaves = 0;
	uint32_t used = 0;
	int rollmap = 0; /* invariant 10: a record's map starts with a rollback entry */
	for (uint64_t s = 0; s < p->rp_cap_leaves * CE_REPL_PER_LEAF; s++) {
		const repl_phys *r = (const repl_phys *)p->rp_buf + s;
		if (r->rp_ds_guid != 0) {
			used++;
			nleaves = s / CE_REPL_PER_LEAF + 1;
			rollmap |= r->rp_map_count > 0 && r->rp_map[0].sm_txg == 0;
		}
	}
	for (uint64_t l = p->rp_disk_leaves; l < nleaves; l++)
		p->rp_dirty[l] = 1; /* new leaves */
	int err = 0, did = 0;
	if (nleaves > 0)
		err = mos_sync_object(p, &p->rp_tree, t, p->rp_buf, p->rp_dirty, nleaves, BP_REPL, &did);
	if (err == 0 && p->rp_disk_leaves > nleaves) {
		ct_acct acct = { 0 };
		err = cowtree_free_range(p, &p->rp_tree, t, nleaves, p->rp_disk_leaves, &acct);
	}
	if (err != 0)
		return err; /* the pool suspends; clear reloads the object (repl_load) */
	memset(p->rp_dirty, 0, p->rp_cap_leaves);
	p->rp_changed = 0;
	p->rp_disk_leaves = nleaves;
	mos_repl_phys mr;
	memset(&mr, 0, sizeof(mr));
	if (nleaves > 0) {
		mr.mr_magic = MR_MAGIC;
		mr.mr_nslots = (uint32_t)(nleaves * CE_REPL_PER_LEAF);
		mr.mr_used = used;
		mr.mr_levels = p->rp_tree.levels;
		mr.mr_root = p->rp_tree.root;
	}
	memcpy(mos_ptr(p, CE_MOS_REPL_OFF), &mr, sizeof(mr));
	if (nleaves > 0 && mos_hdr(p)->mh_version < FMT_V_REPL)
		mos_hdr(p)->mh_version = FMT_V_REPL; /* older software would not keep the promises */
	if (rollmap && mos_hdr(p)->mh_version < FMT_V_ROLLMAP)
		mos_hdr(p)->mh_version = FMT_V_ROLLMAP; /* invariant 10: older software would miss the rollback */
	ASSERT(!rollmap || mos_hdr(p)->mh_version >= FMT_V_ROLLMAP);
	mos_mark_dirty(p, 0, CE_META_BLOCK); /* the header block goes out with this txg's MOS */
	return 0;
}

static int load_object(ce_pool *p, uint8_t *named);

/* At import (and clear): the replica object, attached to the volumes that name their slots. */
int
repl_load(ce_pool *p)
{
	repl_pool_fini(p);
	tree_init(&p->rp_tree, BP_REPL, 1);
	/*
	 * Invariant 6: a clear keeps every volume's state object (an apply or
	 * a flush may hold its mutex or a pointer to it); attach() refreshes
	 * it in place, and a volume the reloaded object does not name loses
	 * its state to its retired list.
	 */
	uint8_t *named = xcalloc(ds_count(p) ? ds_count(p) : 1, 1);
	int err = load_object(p, named);
	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < ds_count(p); i++) {
		volume *v = ds_at(p, i);
		repl_state *rs = repl_of(v);
		if (rs != NULL && (err != 0 || !named[i])) {
			set_rp(v, NULL);
			rs->gen++;
			rs->retired = v->rp_retired;
			v->rp_retired = rs;
		}
	}
	pthread_mutex_unlock(&p->lock);
	free(named);
	return err;
}

/* Attach the record r to v: a new state, or v's old one refreshed (pool->lock held). */
static void
attach(volume *v, const repl_phys *r, uint32_t idx)
{
	repl_state *rs = repl_of(v);
	if (rs == NULL) {
		rs = state_new(idx);
	} else {
		rs->idx = idx;
		rs->gen++; /* invariant 6: what began before this reload records nothing */
		rs->ndone = 0;
		rs->begun_txg = 0;
		rs->tail_end_txg = 0;
	}
	rs->rec = rs->img = rs->cap = *r;
	rs->rec.rp_holder_addr[sizeof(rs->rec.rp_holder_addr) - 1] = '\0';
	rs->applied = rs->durable = r->rp_applied;
	rs->begun = r->rp_hi;
	set_rp(v, rs);
}

/* The replica object from disk; named[i] set for each volume it gives a record. */
static int
load_object(ce_pool *p, uint8_t *named)
{
	mos_header_phys *mh = mos_hdr(p);
	mos_repl_phys mr;
	memcpy(&mr, mos_ptr(p, CE_MOS_REPL_OFF), sizeof(mr));
	int any_role = 0;
	for (size_t i = 0; i < ds_count(p); i++)
		any_role |= ds_at(p, i)->load_role != 0;
	if (mh->mh_version < FMT_V_REPL || mr.mr_magic == 0) {
		if (any_role)
			return err_set(-EIO, "pool %s: a replica volume has no replica object", p->name);
		return 0;
	}
	uint64_t nleaves = mr.mr_nslots / CE_REPL_PER_LEAF;
	if (mr.mr_magic != MR_MAGIC || mr.mr_nslots == 0 || mr.mr_nslots % CE_REPL_PER_LEAF != 0 ||
	    mr.mr_nslots > CE_REPL_MAX_SLOTS || mr.mr_levels == 0 || mr.mr_levels > 8 ||
	    nleaves > cowtree_capacity(mr.mr_levels))
		return err_set(-EIO, "pool %s: the replica object root is damaged", p->name);
	p->rp_tree.levels = mr.mr_levels;
	p->rp_tree.root = mr.mr_root;
	uint8_t *buf = xmalloc(nleaves * CE_META_BLOCK);
	int err = mos_read_object(p, &p->rp_tree, buf, nleaves);
	if (err != 0) {
		free(buf);
		return err_set(err, "pool %s: cannot read the replica object", p->name);
	}
	obj_reserve(p, nleaves);
	memcpy(p->rp_buf, buf, nleaves * CE_META_BLOCK);
	free(buf);
	buf = p->rp_buf;
	p->rp_disk_leaves = nleaves;
	for (size_t i = 0; i < ds_count(p); i++) {
		volume *v = ds_at(p, i);
		if (v->load_role == 0)
			continue;
		if (v->is_snap || v->load_repl_idx >= mr.mr_nslots)
			return err_set(-EIO, "pool %s: volume %s names replica slot %u, outside the object",
			    p->name, v->name, v->load_repl_idx);
		const repl_phys *r = (const repl_phys *)(buf + (size_t)v->load_repl_idx * CE_REPL_REC_SIZE);
		if (r->rp_ds_guid != v->guid || r->rp_map_count == 0 || r->rp_map_count > CE_REPL_MAP ||
		    r->rp_hist_count > CE_REPL_HIST)
			return err_set(-EIO, "pool %s: the replica record of volume %s is damaged", p->name,
			    v->name);
		pthread_mutex_lock(&p->lock);
		attach(v, r, v->load_repl_idx);
		pthread_mutex_unlock(&p->lock);
		named[i] = 1;
	}
	return 0;
}

/* ---- management ---- */

static volume *
find_replica(ce_pool *p, const char *name, int *err)
{
	volume *v = name != NULL ? vol_find(p, name) : NULL;
	if (v == NULL || v->is_snap)
		*err = err_set(-ENOENT, "volume %s/%s does not exist", p->name, name ? name : "");
	else if (repl_of(v) == NULL)
		*err = err_set(-EINVAL, "volume %s/%s is not a replica", p->name, name);
	else
		*err = 0;
	return *err ? NULL : v;
}

/* A management call on replica name begins: its volume with vol_mgmt_begin done, or NULL (*err set, nothing begun). */
static volume *
mgmt_replica(ce_pool *p, const char *name, int *err)
{
	if ((*err = vol_mgmt_begin(p)) != 0)
		return NULL;
	volume *v = find_replica(p, name, err);
	if (v == NULL)
		vol_mgmt_abort(p);
	return v;
}

static void
info_fill(const volume *v, ce_repl_info *o)
{
	const repl_state *rs = repl_of(v);
	memset(o, 0, sizeof(*o));
	o->id = v->guid;
	o->pool_guid = v->pool->guid;
	memcpy(o->vol_uuid, rs->rec.rp_vol_uuid, 16);
	o->state = rs->rec.rp_state;
	o->flags = rs->rec.rp_flags;
	o->promised = ce_of(rs->rec.rp_promised);
	o->last_epoch = ce_of(rs->rec.rp_last_epoch);
	o->applied = rs->applied;
	o->durable = rs->durable;
	o->hi = MAX(MAX(rs->begun, rs->applied), rs->cap.rp_ds_guid != 0 ? rs->cap.rp_hi : rs->rec.rp_hi);
	snprintf(o->holder_addr, sizeof(o->holder_addr), "%s", rs->rec.rp_holder_addr);
	o->map_count = rs->cap.rp_ds_guid != 0 ? rs->cap.rp_map_count : rs->rec.rp_map_count;
	o->hist_count = rs->rec.rp_hist_count;
	o->size = v->size;
	o->volblocksize = v->bs;
	repl_phys r = rs->rec;
	r.rp_applied = o->applied;
	r.rp_hi = o->hi;
	memcpy(o->rec, &r, CE_REPL_REC_HEAD);
}

int
ce_repl_make(ce_pool *p, const char *name, const uint8_t vol_uuid[16], ce_epoch e,
    const char *holder_addr)
{
	int err = vol_mgmt_begin(p);
	if (err != 0)
		return err;
	volume *v = name != NULL ? vol_find(p, name) : NULL;
	if (v == NULL || v->is_snap) {
		vol_mgmt_abort(p);
		return err_set(-ENOENT, "volume %s/%s does not exist", p->name, name ? name : "");
	}
	if (repl_of(v) != NULL || v->receiving || e.counter == 0 || e.node == 0) {
		vol_mgmt_abort(p);
		return err_set(repl_of(v) != NULL ? -EEXIST : -EINVAL, "volume %s/%s: %s", p->name, name,
		    repl_of(v) != NULL ? "already a replica" : v->receiving ? "a partial receive" :
		    "epoch counter and node must be nonzero");
	}
	uint32_t idx = 0;
	for (;; idx++) {
		int taken = 0;
		for (size_t i = 0; i < ds_count(p) && !taken; i++)
			taken = repl_of(ds_at(p, i)) != NULL && repl_of(ds_at(p, i))->idx == idx;
		if (!taken)
			break;
	}
	if (idx >= CE_REPL_MAX_SLOTS) {
		vol_mgmt_abort(p);
		return err_set(-ENOSPC, "pool %s: %u replica volumes already", p->name, CE_REPL_MAX_SLOTS);
	}
	vol_mgmt_dirty(p, v); /* the txg syncing keeps v's image without a record */
	repl_state *rs = state_new(idx);
	repl_phys *r = &rs->rec;
	r->rp_ds_guid = v->guid;
	memcpy(r->rp_vol_uuid, vol_uuid, 16);
	r->rp_state = RP_COMPLETE;
	r->rp_promised = ep_of(e);
	snprintf(r->rp_holder_addr, sizeof(r->rp_holder_addr), "%s", holder_addr ? holder_addr : "");
	r->rp_map_count = 1;
	r->rp_map[0] = (sm_phys){ txg_open(p), 0 };
	set_rp(v, rs);
	return vol_mgmt_commit(p);
}

int
ce_repl_info_get(ce_pool *p, const char *name, ce_repl_info *out)
{
	err_clear();
	int err;
	pthread_mutex_lock(&p->lock);
	volume *v = find_replica(p, name, &err);
	if (v != NULL)
		info_fill(v, out);
	pthread_mutex_unlock(&p->lock);
	return err;
}

int
ce_vol_is_replica(ce_pool *p, const char *name)
{
	pthread_mutex_lock(&p->lock);
	volume *v = name != NULL ? vol_find(p, name) : NULL;
	int r = v != NULL && !v->is_snap && repl_of(v) != NULL;
	pthread_mutex_unlock(&p->lock);
	return r;
}

int
ce_repl_promise(ce_pool *p, const char *name, ce_epoch e, const char *holder_addr,
    const ce_epoch *expect, ce_repl_info *out)
{
	int err;
	volume *v = mgmt_replica(p, name, &err);
	if (v == NULL)
		return err;
	repl_phys *r = &repl_of(v)->rec;
	int c = ep_cmp(ep_of(e), r->rp_promised);
	if (c < 0 ||
	    (expect != NULL && ep_cmp(r->rp_promised, ep_of(*expect)) > 0 && c != 0)) {
		int elsewhere = c > 0;
		if (out != NULL)
			info_fill(v, out);
		err = err_set(-ESTALE, "volume %s/%s: %s %" PRIu64 ".%016" PRIx64 " to %s", p->name, name,
		    elsewhere ? "promised elsewhere since: epoch" : "promised a newer epoch",
		    r->rp_promised.ep_counter, r->rp_promised.ep_node, r->rp_holder_addr);
		vol_mgmt_abort(p);
		return err;
	}
	if (c == 0) {
		/* a repeat of the promise (a lost reply): it is durable already */
		if (out != NULL)
			info_fill(v, out);
		vol_mgmt_abort(p);
		return 0;
	}
	vol_mgmt_dirty(p, v);
	r->rp_promised = ep_of(e);
	snprintf(r->rp_holder_addr, sizeof(r->rp_holder_addr), "%s", holder_addr ? holder_addr : "");
	if (out != NULL)
		info_fill(v, out);
	return vol_mgmt_commit(p);
}

static int
mb_valid(const mb_phys *mb, uint64_t self, const char **why)
{
	*why = NULL;
	if (mb->mb_level < MB_ONE || mb->mb_level > MB_ALL)
		*why = "consistency level not 1-3";
	else if (mb->mb_nmembers < 1 || mb->mb_nmembers > CE_REPL_MEMBERS)
		*why = "member count not 1-5";
	int self_in = 0;
	for (unsigned i = 0; i < CE_REPL_MEMBERS && *why == NULL; i++) {
		const mm_phys *m = &mb->mb_members[i];
		if (i >= mb->mb_nmembers)
			continue;
		if (m->mm_id == 0 || m->mm_state < MM_IN_SYNC || m->mm_state > MM_EJECTED)
			*why = "a member with id 0 or a bad state";
		for (unsigned k = 0; k < i && *why == NULL; k++)
			if (mb->mb_members[k].mm_id == m->mm_id)
				*why = "a member listed twice";
		self_in |= m->mm_id == self;
	}
	if (*why == NULL && !self_in)
		*why = "it does not name this replica";
	return *why == NULL;
}

int
ce_repl_start_epoch(ce_pool *p, const char *name, ce_epoch e, uint64_t base, const void *mbp)
{
	mb_phys mb;
	memcpy(&mb, mbp, sizeof(mb));
	int err;
	volume *v = mgmt_replica(p, name, &err);
	if (v == NULL)
		return err;
	repl_state *rs = repl_of(v);
	repl_phys *r = &rs->rec;
	const char *why;
	if (ep_cmp(ep_of(e), r->rp_promised) != 0)
		err = err_set(-ESTALE, "volume %s/%s: epoch %" PRIu64 ".%016" PRIx64 " was not the one promised",
		    p->name, name, e.counter, e.node);
	else if (ep_cmp(r->rp_last_epoch, ep_of(e)) == 0)
		err = err_set(-EPROTO, "volume %s/%s: epoch %" PRIu64 ".%016" PRIx64 " was started already (a "
		    "controller that reconnects prepares a new epoch)", p->name, name, e.counter, e.node);
	else if (r->rp_state == RP_REBUILDING && r->rp_rb.rb_kind == RB_TAIL &&
	    (r->rp_hist_count == 0 || r->rp_hist[r->rp_hist_count - 1].eh_base > base))
		err = err_set(-EPROTO, "volume %s/%s: base %" PRIu64 " is older than the tail sync's history",
		    p->name, name, base);
	else if ((rs->applied != base && !(r->rp_state == RP_REBUILDING && r->rp_rb.rb_kind == RB_TAIL)) ||
	    (r->rp_state != RP_COMPLETE && !(r->rp_state == RP_REBUILDING && r->rp_rb.rb_kind == RB_TAIL)))
		err = err_set(-EPROTO, "volume %s/%s: cannot start an epoch at base %" PRIu64
		    " (applied %" PRIu64 ", state %u)", p->name, name, base, rs->applied, r->rp_state);
	else if (ep_cmp(mb.mb_epoch, ep_of(e)) != 0 || !mb_valid(&mb, v->guid, &why))
		err = err_set(-EINVAL, "volume %s/%s: bad membership record: %s", p->name, name,
		    why ? why : "written by another epoch");
	if (err != 0) {
		vol_mgmt_abort(p);
		return err;
	}
	vol_mgmt_dirty(p, v);
	if (r->rp_hist_count == CE_REPL_HIST) {
		memmove(&r->rp_hist[0], &r->rp_hist[1], (CE_REPL_HIST - 1) * sizeof(eh_phys));
		r->rp_hist_count--;
	}
	r->rp_hist[r->rp_hist_count++] = (eh_phys){ .eh_epoch = ep_of(e), .eh_base = base,
	    .eh_flags = EH_ADOPTED };
	r->rp_last_epoch = ep_of(e);
	r->rp_mb = mb;
	if (r->rp_state == RP_REBUILDING) {
		/*
		 * A tail sync ends: the content is the reference's state(base), so
		 * applied is base (up or down), recorded like an apply that ended in
		 * the open txg; the ring's newer entries were another lineage's.
		 */
		r->rp_state = RP_COMPLETE;
		memset(&r->rp_rb, 0, sizeof(r->rp_rb));
		uint64_t o = txg_open(p);
		rs->ndone = 0;
		if (rs->capdone == 0) {
			rs->capdone = 64;
			rs->done = xrealloc(rs->done, rs->capdone * sizeof(repl_done));
		}
		rs->done[rs->ndone++] = (repl_done){ base, o, o };
		rs->void_hi = MAX(MAX(rs->cap.rp_hi, rs->rec.rp_hi), MAX(rs->begun, rs->applied));
		rs->applied = base;
		rs->begun = base;
		rs->begun_txg = o;
		rs->ring_lo = base;
		rs->tail_end_txg = o; /* invariant 11 */
	}
	err = vol_mgmt_commit(p);
	if (err == 0) {
		pthread_mutex_lock(&p->lock);
		if (rs->applied == base)
			rs->durable = base; /* the commit above carried applied = base */
		pthread_mutex_unlock(&p->lock);
	}
	return err;
}

int
ce_repl_membership(ce_pool *p, const char *name, ce_epoch e, const void *mbp)
{
	mb_phys mb;
	memcpy(&mb, mbp, sizeof(mb));
	int err;
	volume *v = mgmt_replica(p, name, &err);
	if (v == NULL)
		return err;
	repl_phys *r = &repl_of(v)->rec;
	const char *why;
	int c = ep_cmp(mb.mb_epoch, r->rp_mb.mb_epoch);
	if (ep_cmp(ep_of(e), r->rp_promised) != 0 || ep_cmp(mb.mb_epoch, ep_of(e)) != 0)
		err = err_set(-ESTALE, "volume %s/%s: membership of an epoch not promised", p->name, name);
	else if (!mb_valid(&mb, v->guid, &why))
		err = err_set(-EINVAL, "volume %s/%s: bad membership record: %s", p->name, name, why);
	else if (c < 0 || (c == 0 && mb.mb_version < r->rp_mb.mb_version) ||
	    (c == 0 && mb.mb_version == r->rp_mb.mb_version && memcmp(&mb, &r->rp_mb, sizeof(mb)) != 0))
		err = err_set(-ESTALE, "volume %s/%s: membership version %" PRIu64 " is not newer than %" PRIu64,
		    p->name, name, mb.mb_version, r->rp_mb.mb_version);
	if (err != 0) {
		vol_mgmt_abort(p);
		return err;
	}
	if (c == 0 && mb.mb_version == r->rp_mb.mb_version) {
		vol_mgmt_abort(p);
		return 0; /* acknowledged again */
	}
	vol_mgmt_dirty(p, v);
	r->rp_mb = mb;
	return vol_mgmt_commit(p);
}

int
ce_repl_set_flags(ce_pool *p, const char *name, uint32_t set, uint32_t clear)
{
	int err;
	volume *v = mgmt_replica(p, name, &err);
	if (v == NULL)
		return err;
	if ((set | clear) & ~(uint32_t)(RP_CONTROLLER_HERE | RP_FORCED)) {
		vol_mgmt_abort(p);
		return err_set(-EINVAL, "unknown replica record flags");
	}
	vol_mgmt_dirty(p, v);
	repl_of(v)->rec.rp_flags = (repl_of(v)->rec.rp_flags | set) & ~clear;
	return vol_mgmt_commit(p);
}

/* ---- sequenced operations ---- */

int
ce_repl_open(ce_pool *p, const char *name, ce_vol **out)
{
	ce_vol *h;
	int err = ce_vol_open(p, name, &h);
	if (err != 0)
		return err;
	if (repl_of(h->v) == NULL || h->v->is_snap) {
		ce_vol_close(h);
		return err_set(-EINVAL, "volume %s/%s is not a replica", p->name, name);
	}
	h->repl = 1;
	*out = h;
	return 0;
}

enum { OP_WRITE, OP_TRIM, OP_ZERO, OP_SNAP };

typedef struct snap_op {
	int op;               /* CE_REPL_SNAP_*, CE_REPL_ROLLBACK, CE_REPL_RESIZE */
	const char *snap, *newname;
	uint64_t size;        /* CE_REPL_RESIZE */
	unsigned flags;       /* CE_ROLLBACK_DESTROY_LATER, CE_RESIZE_SHRINK */
	int err;
} snap_op;

/* Invariant 7: seq's extent, before any byte of it changes (pool->lock held). */
static void
ring_note(repl_state *rs, uint64_t seq, uint64_t off, uint64_t len)
{
	if (rs->ring == NULL)
		rs->ring = xcalloc(REPL_RING, sizeof(repl_ext));
	rs->ring[seq % REPL_RING] = (repl_ext){ seq, off, len };
	if (seq > REPL_RING && rs->ring_lo < seq - REPL_RING)
		rs->ring_lo = seq - REPL_RING;
}

static int
snap_apply(ce_pool *p, volume *v, snap_op *so)
{
	char full[520], nn[520];
	snprintf(full, sizeof(full), "%s@%s", v->name, so->snap);
	if (so->op == CE_REPL_SNAP_CREATE) {
		const char *names[1] = { full };
		int e1 = 0;
		int err = ce_snap_create(p, names, 1, &e1);
		return err != 0 && e1 != 0 ? e1 : err;
	}
	if (so->op == CE_REPL_SNAP_DESTROY)
		return ce_snap_destroy(p, full);
	if (so->op == CE_REPL_ROLLBACK)
		return ce_vol_rollback(p, full, (so->flags & CE_ROLLBACK_DESTROY_LATER) | VOL_ROLLBACK_OPEN);
	if (so->op == CE_REPL_RESIZE)
		return ce_vol_resize(p, v->name, so->size, so->flags & CE_RESIZE_SHRINK);
	snprintf(nn, sizeof(nn), "%s@%s", v->name, so->newname ? so->newname : "");
	return ce_snap_rename(p, full, nn);
}

static int
apply(ce_vol *h, ce_epoch e, uint64_t seq, int op, const void *buf, uint64_t off, uint64_t len)
{
	volume *v = h->v;
	ce_pool *p = v->pool;
	repl_state *rs = repl_of(v);
	if (!h->repl || rs == NULL)
		return err_set(-EINVAL, "not a replica handle");
	pthread_mutex_lock(&rs->mu);
	pthread_mutex_lock(&p->lock);
	int err = 0;
	uint64_t gen = rs->gen;
	if (txg_suspended(p))
		err = err_set(txg_suspended(p), "pool %s is suspended after an IO error", p->name);
	else if (repl_of(v) != rs)
		err = err_set(-EIO, "volume %s/%s: the pool was cleared and the volume is no longer a "
		    "replica", p->name, v->name);
	else if (ep_cmp(ep_of(e), rs->rec.rp_promised) != 0)
		err = err_set(-ESTALE, "volume %s/%s: epoch %" PRIu64 ".%016" PRIx64 " is not the promised one",
		    p->name, v->name, e.counter, e.node);
	else if (ep_cmp(rs->rec.rp_last_epoch, rs->rec.rp_promised) != 0)
		err = err_set(-ESTALE, "volume %s/%s: the promised epoch has not started", p->name, v->name);
	else if (seq != rs->applied + 1)
		err = err_set(-EPROTO, "volume %s/%s: sequence %" PRIu64 ", expected %" PRIu64, p->name,
		    v->name, seq, rs->applied + 1);
	else if (!rebuild_takes_live(&rs->rec))
		err = err_set(-EINVAL, "volume %s/%s: replica state %u takes no writes", p->name, v->name,
		    rs->rec.rp_state);
	if (err == 0 && rs->begun != seq) {
		rs->begun = seq; /* a retry keeps its first txg: its failed try may have left bytes there */
		rs->begun_txg = txg_open(p);
	}
	if (err == 0 && op == OP_SNAP) {
		/*
		 * Invariant 7: a rollback may change any byte (the whole volume, at
		 * its larger size); a resize the bytes between the two sizes; a
		 * snapshot operation none.
		 */
		const snap_op *so = buf;
		uint64_t big = MAX(v->size, so->size);
		if (so->op == CE_REPL_ROLLBACK) {
			ring_note(rs, seq, 0, v->size);
			rs->rollback_seq = seq; /* invariant 9 */
			rs->rollback_txg = rs->begun_txg;
		} else if (so->op == CE_REPL_RESIZE)
			ring_note(rs, seq, MIN(v->size, so->size), big - MIN(v->size, so->size));
		else
			ring_note(rs, seq, 0, 0);
	} else if (err == 0) {
		ring_note(rs, seq, off, len);
	}
	uint64_t btxg = rs->begun_txg;
	pthread_mutex_unlock(&p->lock);
	if (err == 0 && op == OP_SNAP) {
		/*
		 * Rule 6: applies are serial, so the snapshot holds exactly the
		 * operations 1..seq-1; its own failure is every replica's alike
		 * and consumes the seq (the caller reads it in so->err).
		 */
		snap_op *so = (snap_op *)buf;
		so->err = snap_apply(p, v, so);
		if (so->err != 0)
			so->err = so->err < 0 ? so->err : -EIO;
	} else if (err == 0) {
		err = op == OP_WRITE ? ce_vol_write(h, buf, len, off) :
		    op == OP_TRIM ? ce_vol_trim(h, off, len) : ce_vol_write_zeroes(h, off, len);
	}
	if (err == 0) {
		pthread_mutex_lock(&p->lock);
		if (rs->gen != gen) {
			/*
			 * Invariant 6: a clear reloaded the record while this apply ran;
			 * its bytes went with the txgs the clear dropped (vol.c refuses
			 * the chunks after it), so it is not applied.
			 */
			pthread_mutex_unlock(&p->lock);
			pthread_mutex_unlock(&rs->mu);
			return err_set(-EIO, "volume %s/%s: the pool was cleared during the apply of %" PRIu64
			    "; reopen", p->name, v->name, seq);
		}
		if (rs->ndone == rs->capdone) {
			rs->capdone = rs->capdone ? rs->capdone * 2 : 64;
			rs->done = xrealloc(rs->done, rs->capdone * sizeof(repl_done));
		}
		uint64_t o = txg_open(p);
		rs->done[rs->ndone++] = (repl_done){ seq, o, btxg };
		rs->applied = seq;
		/* the record changes in o: v is o's to write, whether or not o has data of it */
		pool_dirty(p, v, o);
			txg_mark_open(p);
		pthread_mutex_unlock(&p->lock);
	}
	pthread_mutex_unlock(&rs->mu);
	return err;
}

int
ce_repl_write(ce_vol *h, ce_epoch e, uint64_t seq, const void *buf, size_t len, uint64_t off)
{
	return apply(h, e, seq, OP_WRITE, buf, off, len);
}

int
ce_repl_trim(ce_vol *h, ce_epoch e, uint64_t seq, uint64_t off, uint64_t len)
{
	return apply(h, e, seq, OP_TRIM, NULL, off, len);
}

int
ce_repl_zero(ce_vol *h, ce_epoch e, uint64_t seq, uint64_t off, uint64_t len)
{
	return apply(h, e, seq, OP_ZERO, NULL, off, len);
}

int
ce_repl_snap(ce_vol *h, ce_epoch e, uint64_t seq, int op, const char *snap, const char *newname,
    int *op_err)
{
	*op_err = 0;
	if (op < CE_REPL_SNAP_CREATE || op > CE_REPL_SNAP_RENAME || snap == NULL || snap[0] == '\0' ||
	    strchr(snap, '@') != NULL || (op == CE_REPL_SNAP_RENAME && (newname == NULL || newname[0] == '\0')))
		return err_set(-EINVAL, "a sequenced snapshot operation needs an operation and a snapshot name");
	snap_op so = { op, snap, newname, 0, 0, 0 };
	int err = apply(h, e, seq, OP_SNAP, &so, 0, 0);
	if (err == 0 && so.err != 0) {
		*op_err = so.err;
		err_set(so.err, "snapshot %s: %s", snap, strerror(-so.err));
	}
	return err;
}

int
ce_repl_volop(ce_vol *h, ce_epoch e, uint64_t seq, int op, const char *snap, uint64_t size, unsigned flags,
    int *op_err)
{
	*op_err = 0;
	if (op == CE_REPL_ROLLBACK && (snap == NULL || snap[0] == '\0' || strchr(snap, '@') != NULL ||
	    (flags & ~(unsigned)CE_ROLLBACK_DESTROY_LATER)))
		return err_set(-EINVAL, "a sequenced rollback needs a snapshot name (and only flag destroy-later)");
	if (op == CE_REPL_RESIZE && (size == 0 || (flags & ~(unsigned)CE_RESIZE_SHRINK)))
		return err_set(-EINVAL, "a sequenced resize needs a size (and only flag shrink)");
	if (op != CE_REPL_ROLLBACK && op != CE_REPL_RESIZE)
		return err_set(-EINVAL, "unknown sequenced volume operation %d", op);
	snap_op so = { op, snap, NULL, size, flags, 0 };
	int err = apply(h, e, seq, OP_SNAP, &so, 0, 0);
	if (err == 0 && so.err != 0) {
		*op_err = so.err;
		if (op == CE_REPL_ROLLBACK)
			err_set(so.err, "rollback to %s: %s", snap, strerror(-so.err));
		else
			err_set(so.err, "resize to %" PRIu64 ": %s", size, strerror(-so.err));
	}
	return err;
}

int
ce_repl_extents(ce_vol *h, uint64_t after, uint64_t *off, uint64_t *len, size_t max, size_t *n, uint64_t *top)
{
	volume *v = h->v;
	ce_pool *p = v->pool;
	repl_state *rs = repl_of(v);
	*n = 0;
	if (!h->repl || rs == NULL)
		return err_set(-EINVAL, "not a replica handle");
	pthread_mutex_lock(&rs->mu); /* no apply between the listing and its end */
	pthread_mutex_lock(&p->lock);
	uint64_t hi = MAX(rs->begun, rs->applied);
	int err = 0;
	if (after < rs->ring_lo && hi > after)
		err = err_set(-ERANGE, "volume %s/%s: the extents of operations after %" PRIu64 " are not known here "
		    "(kept from %" PRIu64 ")", p->name, v->name, after, rs->ring_lo + 1);
	uint64_t s = after;
	while (err == 0 && s < hi && *n < max) {
		s++;
		const repl_ext *x = rs->ring != NULL ? &rs->ring[s % REPL_RING] : NULL;
		if (x == NULL || x->seq != s) {
			err = err_set(-ERANGE, "volume %s/%s: no extent kept for operation %" PRIu64, p->name, v->name, s);
			break;
		}
		if (x->len == 0)
			continue; /* a snapshot operation: no bytes */
		off[*n] = x->off;
		len[*n] = x->len;
		(*n)++;
	}
	/* invariant 8: what the record's hi claimed before a tail sync ended is the reference's content now */
	*top = err == 0 && s == hi ? MAX(s, rs->void_hi) : s;
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_unlock(&rs->mu);
	return err;
}

int
ce_repl_tail_begin(ce_pool *p, const char *name, ce_epoch e, const void *hist, uint32_t nhist)
{
	int err;
	volume *v = mgmt_replica(p, name, &err);
	if (v == NULL)
		return err;
	repl_state *rs = repl_of(v);
	repl_phys *r = &rs->rec;
	if (ep_cmp(ep_of(e), r->rp_promised) != 0)
		err = err_set(-ESTALE, "volume %s/%s: epoch %" PRIu64 ".%016" PRIx64 " was not the one promised",
		    p->name, name, e.counter, e.node);
	else if (ep_cmp(r->rp_last_epoch, ep_of(e)) == 0)
		err = err_set(-EPROTO, "volume %s/%s: the epoch started already: no tail sync", p->name, name);
	else if (r->rp_state == RP_RETIRED || (r->rp_state == RP_REBUILDING && r->rp_rb.rb_kind != RB_TAIL))
		err = err_set(-EINVAL, "volume %s/%s: state %u takes no tail sync", p->name, name, r->rp_state);
	else if (nhist == 0 || nhist > CE_REPL_HIST)
		err = err_set(-EINVAL, "volume %s/%s: a tail sync needs 1 to %u history entries", p->name, name,
		    CE_REPL_HIST);
	if (err != 0) {
		vol_mgmt_abort(p);
		return err;
	}
	const eh_phys *eh = hist;
	for (uint32_t i = 1; i < nhist; i++)
		if (ep_cmp(eh[i].eh_epoch, eh[i - 1].eh_epoch) <= 0 || eh[i].eh_base < eh[i - 1].eh_base) {
			vol_mgmt_abort(p);
			return err_set(-EINVAL, "volume %s/%s: the reference's history is out of order", p->name, name);
		}
	vol_mgmt_dirty(p, v);
	r->rp_state = RP_REBUILDING;
	memset(&r->rp_rb, 0, sizeof(r->rp_rb));
	r->rp_rb.rb_kind = RB_TAIL;
	r->rp_rb.rb_base_epoch = ep_of(e);
	memset(r->rp_hist, 0, sizeof(r->rp_hist));
	memcpy(r->rp_hist, hist, nhist * sizeof(eh_phys));
	r->rp_hist_count = nhist;
	r->rp_last_epoch = eh[nhist - 1].eh_epoch;
	return vol_mgmt_commit(p);
}

int
ce_repl_tail_write(ce_vol *h, ce_epoch e, const void *buf, size_t len, uint64_t off, int zero)
{
	volume *v = h->v;
	ce_pool *p = v->pool;
	repl_state *rs = repl_of(v);
	if (!h->repl || rs == NULL)
		return err_set(-EINVAL, "not a replica handle");
	pthread_mutex_lock(&rs->mu);
	pthread_mutex_lock(&p->lock);
	int err = 0;
	if (ep_cmp(ep_of(e), rs->rec.rp_promised) != 0)
		err = err_set(-ESTALE, "volume %s/%s: epoch %" PRIu64 ".%016" PRIx64 " is not the promised one",
		    p->name, v->name, e.counter, e.node);
	else if (rs->rec.rp_state != RP_REBUILDING || rs->rec.rp_rb.rb_kind != RB_TAIL)
		err = err_set(-EINVAL, "volume %s/%s: no tail sync in progress", p->name, v->name);
	pthread_mutex_unlock(&p->lock);
	if (err == 0)
		err = zero ? ce_vol_write_zeroes(h, off, len) : ce_vol_write(h, buf, len, off);
	pthread_mutex_unlock(&rs->mu);
	return err;
}

uint64_t
ce_repl_applied(ce_vol *h)
{
	ce_pool *p = h->v->pool;
	pthread_mutex_lock(&p->lock);
	repl_state *rs = repl_of(h->v);
	uint64_t a = rs ? rs->applied : 0;
	pthread_mutex_unlock(&p->lock);
	return a;
}

int
ce_repl_flush(ce_vol *h, uint64_t *durable)
{
	volume *v = h->v;
	ce_pool *p = v->pool;
	repl_state *rs = repl_of(v);
	if (!h->repl || rs == NULL)
		return err_set(-EINVAL, "not a replica handle");
	pthread_mutex_lock(&p->lock);
	uint64_t a = rs->applied, t = txg_open(p), gen = rs->gen;
	if (a <= rs->durable) {
		*durable = rs->durable;
		pthread_mutex_unlock(&p->lock);
		return 0;
	}
	/* every apply up to a ended with txg <= t (invariant 2): t's record says applied >= a */
	txg_mark_open(p);
	pthread_mutex_unlock(&p->lock);
	int err = txg_wait_synced(p, t);
	if (err != 0)
		return err;
	pthread_mutex_lock(&p->lock);
	if (rs->gen != gen) {
		/* invariant 6: t was a txg of the pool before a clear; nothing of it is known durable */
		pthread_mutex_unlock(&p->lock);
		return err_set(-EIO, "volume %s/%s: the pool was cleared during the flush", p->name, v->name);
	}
	if (a > rs->durable)
		rs->durable = a;
	*durable = rs->durable;
	pthread_mutex_unlock(&p->lock);
	return 0;
}

/* ---- cask-debug check ---- */

static void
reportf(unsigned *n, void (*report)(void *, const char *), void *arg, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void
reportf(unsigned *n, void (*report)(void *, const char *), void *arg, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	(*n)++;
	report(arg, msg);
}

unsigned
repl_check(ce_pool *p, void (*report)(void *arg, const char *msg), void *arg)
{
	unsigned n = 0;
	mos_repl_phys mr;
	memcpy(&mr, mos_ptr(p, CE_MOS_REPL_OFF), sizeof(mr));
	uint32_t nslots = mr.mr_magic == MR_MAGIC ? mr.mr_nslots : 0, used = 0;
	const repl_phys *recs = (const repl_phys *)p->rp_buf;
	if (p->rp_buf == NULL)
		nslots = 0;
	for (uint32_t s = 0; s < nslots; s++) {
		const repl_phys *r = &recs[s];
		if (r->rp_ds_guid == 0)
			continue;
		used++;
		const volume *v = NULL;
		for (size_t i = 0; i < ds_count(p) && v == NULL; i++)
			if (ds_at(p, i)->guid == r->rp_ds_guid && !ds_at(p, i)->is_snap)
				v = ds_at(p, i);
		const char *vn = v ? v->name : "?";
		if (v == NULL || repl_of(v) == NULL || repl_of(v)->idx != s) {
			reportf(&n, report, arg, "replica slot %u: names volume %016" PRIx64 ", which is not a "
			    "replica volume with that slot", s, r->rp_ds_guid);
			continue;
		}
		if (r->rp_state < RP_COMPLETE || r->rp_state > RP_RETIRED)
			reportf(&n, report, arg, "replica %s: state %u", vn, r->rp_state);
		if ((r->rp_rb.rb_kind != 0) != (r->rp_state == RP_REBUILDING))
			reportf(&n, report, arg, "replica %s: rebuild kind %u in state %u", vn,
			    r->rp_rb.rb_kind, r->rp_state);
		if (r->rp_rb.rb_cursor > v->size)
			reportf(&n, report, arg, "replica %s: rebuild cursor beyond the volume", vn);
		if (ep_cmp(r->rp_promised, r->rp_last_epoch) < 0 || ep_cmp(r->rp_promised, r->rp_mb.mb_epoch) < 0)
			reportf(&n, report, arg, "replica %s: promised epoch older than one it adopted", vn);
		if (r->rp_hist_count > CE_REPL_HIST) {
			reportf(&n, report, arg, "replica %s: %u history entries", vn, r->rp_hist_count);
		} else {
			for (uint32_t i = 0; i < r->rp_hist_count; i++) {
				const eh_phys *e = &r->rp_hist[i];
				if (i > 0 && (ep_cmp(e->eh_epoch, r->rp_hist[i - 1].eh_epoch) <= 0 ||
				    e->eh_base < r->rp_hist[i - 1].eh_base))
					reportf(&n, report, arg, "replica %s: history entry %u out of order", vn, i);
				if (e->eh_base > r->rp_applied)
					reportf(&n, report, arg, "replica %s: history base %" PRIu64 " beyond applied %"
					    PRIu64, vn, e->eh_base, r->rp_applied);
			}
			if (r->rp_hist_count > 0 &&
			    ep_cmp(r->rp_hist[r->rp_hist_count - 1].eh_epoch, r->rp_last_epoch) != 0)
				reportf(&n, report, arg, "replica %s: last history epoch is not the last epoch", vn);
		}
		if (r->rp_map_count < 1 || r->rp_map_count > CE_REPL_MAP) {
			reportf(&n, report, arg, "replica %s: %u map entries", vn, r->rp_map_count);
		} else {
			for (uint32_t i = 0; i < r->rp_map_count; i++) {
				const sm_phys *m = &r->rp_map[i];
				if (m->sm_txg > txg_synced(p) || (i > 0 && (m->sm_txg <= r->rp_map[i - 1].sm_txg ||
				    m->sm_hi < r->rp_map[i - 1].sm_hi)))
					reportf(&n, report, arg, "replica %s: map entry %u (txg %" PRIu64 ", hi %" PRIu64
					    ") out of order", vn, i, m->sm_txg, m->sm_hi);
			}
			if (r->rp_map[0].sm_txg == 0 && mos_hdr(p)->mh_version < FMT_V_ROLLMAP) /* invariant 10 */
				reportf(&n, report, arg, "replica %s: a rollback map entry (txg 0, hi %" PRIu64 ") in a "
				    "version %u pool", vn, r->rp_map[0].sm_hi, mos_hdr(p)->mh_version);
			if (r->rp_map[r->rp_map_count - 1].sm_hi != r->rp_hi || r->rp_hi < r->rp_applied)
				reportf(&n, report, arg, "replica %s: hi %" PRIu64 " does not match the map or is "
				    "below applied %" PRIu64, vn, r->rp_hi, r->rp_applied);
		}
		if (r->rp_mb.mb_version != 0 || r->rp_mb.mb_nmembers != 0) {
			const char *why;
			if (!mb_valid(&r->rp_mb, r->rp_state == RP_RETIRED ? r->rp_mb.mb_members[0].mm_id :
			    r->rp_ds_guid, &why))
				reportf(&n, report, arg, "replica %s: membership record: %s", vn, why);
		}
	}
	if (nslots > 0 && used != mr.mr_used)
		reportf(&n, report, arg, "replica object: %u records used, the root says %u", used, mr.mr_used);
	for (size_t i = 0; i < ds_count(p); i++) {
		const volume *v = ds_at(p, i);
		if (repl_of(v) != NULL && (repl_of(v)->idx >= nslots || recs[repl_of(v)->idx].rp_ds_guid != v->guid))
			reportf(&n, report, arg, "replica volume %s: no record in slot %u", v->name, repl_of(v)->idx);
	}
	return n;
}
