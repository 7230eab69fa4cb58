/*
 * rebuild.c -- a replica being rebuilt, the engine side (design:
 * docs/replication.md section 12; bytes: docs/on-disk-format.md section
 * 7.5, the rb_phys of the replica record, present since format 6).
 *
 * A target replica T is made identical to an in-sync source while the
 * live stream goes on: ce_rebuild_begin puts it in state rebuilding at
 * join point J (its applied becomes J, so the live operation J + 1 is the
 * next it accepts), rebuild data and holes arrive through
 * ce_rebuild_write / ce_rebuild_hole between the live operations, the
 * controller's RB_CURSOR says how far the listed ranges are applied
 * (ce_rebuild_cursor), and ce_rebuild_end(COMPLETE) commits it all and
 * makes the record complete again. ce_rebuild_scan is the listing both
 * sides make: the ranges born after the txg that the sequence->txg map
 * gives for the common point, through the walk diff uses
 * (vol_changed_after in send.c), which skips unchanged subtrees.
 *
 * Invariants:
 *   1. Rebuild data is applied only in state rebuilding and in the
 *      promised epoch (checked under pool->lock with the volume's apply
 *      mutex held, like sequenced operations: repl.c invariant 1), so a
 *      deposed controller cannot write rebuild data either.
 *   2. The cursor is a record field changed after vol_mgmt_dirty (repl.c
 *      invariant 4), so it commits in the open txg or later; every rebuild
 *      byte below it was written before it was set, so it is in that txg
 *      or an earlier one: a durable cursor is always covered by durable
 *      data (like a receive's resume offset, send.c invariant 1).
 *   3. Jumping applied to J is an apply that finished in the open txg
 *      (a repl_done entry), so the map gains (txg, J): later listings from
 *      any point below J include everything written here since.
 *   4. The record says complete only after a commit of all rebuild data
 *      (ce_rebuild_end flushes first).
 *   5. A member that missed the start of the promised epoch e (it was
 *      unreachable at a takeover, then promised e by PREPARE join) joins
 *      e's stream at J by a delta or full rebuild: the join entry (e, J),
 *      not adopted, is appended to its history and applied becomes J --
 *      also downwards, when it holds a divergent tail of the old epoch
 *      beyond J. Going down keeps rp_hi (the tail's bytes are still in the
 *      pool until the rebuild overwrites them), so the map still answers
 *      the tail's txgs for every seq below hi: listings from the common
 *      point include the tail, later ones are supersets, never subsets.
 *      A tail sync (kind 1) still needs the epoch started.
 *   6. ce_rebuild_scan lists every byte of every operation that began
 *      before it was called: it waits for the apply in progress (the
 *      volume's apply mutex, repl.c invariant 1) before its pool sync, so
 *      on a replica that promised a newer epoch (a reconciliation lists
 *      its births, ctrl.c invariant 7) no apply of the older one can
 *      still be writing bytes the walk would miss.
 *
 * States: complete --ce_rebuild_begin--> rebuilding --ce_rebuild_end
 * (COMPLETE)--> complete; ce_rebuild_end(CANCELLED | FAILED) stays
 * rebuilding with its cursor (flags say why) and ce_rebuild_begin with
 * CE_RB_RESUME continues it.
 */
#include "repl.h"
#include "dataset.h"
#include "recv.h"
#include "txg.h"
#include "util.h"
#include "vol.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

enum { RB_F_CANCELLED = 1u, RB_F_FAILED = 2u };

static int
rb_handle(ce_vol *h, repl_state **rs)
{
	if (!h->repl || h->v->rp == NULL)
		return err_set(-EINVAL, "not a replica handle");
	*rs = h->v->rp;
	return 0;
}

static int
same_epoch(ce_epoch e, epoch_phys p)
{
	return e.counter == p.ep_counter && e.node == p.ep_node;
}

int
ce_rebuild_begin(ce_vol *h, ce_epoch e, const ce_rebuild *rb)
{
	repl_state *rs = NULL;
	int err = rb_handle(h, &rs);
	if (err != 0)
		return err;
	volume *v = h->v;
	ce_pool *p = v->pool;
	if (rb->kind < CE_RB_TAIL || rb->kind > CE_RB_FULL)
		return err_set(-EINVAL, "rebuild kind %u", rb->kind);
	pthread_mutex_lock(&rs->mu);
	if ((err = vol_mgmt_begin(p)) != 0) {
		pthread_mutex_unlock(&rs->mu);
		return err;
	}
	repl_phys *r = &rs->rec;
	if (!same_epoch(e, r->rp_promised))
		err = err_set(-ESTALE, "volume %s/%s: epoch %" PRIu64 ".%016" PRIx64 " is not the promised one",
		    p->name, v->name, e.counter, e.node);
	else if (r->rp_hist_count > 0 && !same_epoch(e, r->rp_last_epoch) && rb->kind == CE_RB_TAIL)
		err = err_set(-ESTALE, "volume %s/%s: the promised epoch has not started here", p->name, v->name);
	else if ((rb->flags & CE_RB_RESUME) && (r->rp_state != RP_REBUILDING || r->rp_rb.rb_cursor != rb->cursor))
		err = err_set(-EPROTO, "volume %s/%s: resume at %" PRIu64 ", but the record %s %" PRIu64, p->name,
		    v->name, rb->cursor, r->rp_state == RP_REBUILDING ? "has the cursor" : "is not rebuilding, state",
		    r->rp_state == RP_REBUILDING ? r->rp_rb.rb_cursor : r->rp_state);
	else if (r->rp_state == RP_RETIRED)
		err = err_set(-EINVAL, "volume %s/%s is retired", p->name, v->name);
	else if (rb->join_seq < rs->applied && (r->rp_hist_count == 0 || same_epoch(e, r->rp_last_epoch)))
		err = err_set(-EPROTO, "volume %s/%s: join point %" PRIu64 " is below applied %" PRIu64, p->name,
		    v->name, rb->join_seq, rs->applied);
	else if (r->rp_hist_count > 0 && !same_epoch(e, r->rp_last_epoch) &&
	    rb->join_seq < r->rp_hist[r->rp_hist_count - 1].eh_base)
		err = err_set(-EPROTO, "volume %s/%s: join point %" PRIu64 " is below its last epoch's base", p->name,
		    v->name, rb->join_seq);
	if (err != 0) {
		vol_mgmt_abort(p);
		pthread_mutex_unlock(&rs->mu);
		return err;
	}
	vol_mgmt_dirty(p, v);
	uint64_t keep = (rb->flags & CE_RB_RESUME) ? r->rp_rb.rb_cursor : 0;
	rb_phys n;
	memset(&n, 0, sizeof(n));
	n.rb_kind = rb->kind;
	n.rb_base_epoch = (epoch_phys){ rb->base_epoch.counter, rb->base_epoch.node };
	n.rb_base_seq = rb->base_seq;
	n.rb_join_seq = rb->join_seq;
	n.rb_cursor = keep;
	n.rb_done = (rb->flags & CE_RB_RESUME) ? r->rp_rb.rb_done : 0;
	n.rb_total = rb->total;
	n.rb_source = rb->source;
	n.rb_started = rb->started ? rb->started : (uint64_t)time(NULL);
	n.rb_transferred = (rb->flags & CE_RB_RESUME) ? r->rp_rb.rb_transferred : 0;
	r->rp_rb = n;
	r->rp_state = RP_REBUILDING;
	int joins = 0;
	if (r->rp_hist_count == 0) {
		r->rp_last_epoch = r->rp_promised; /* a new replica: the live stream of e starts here */
	} else if (!same_epoch(e, r->rp_last_epoch)) { /* e is the promised one (checked above) */
		/* invariant 5: a member that missed e's start joins e's stream at J */
		if (r->rp_hist_count == CE_REPL_HIST) {
			memmove(&r->rp_hist[0], &r->rp_hist[1], (CE_REPL_HIST - 1) * sizeof(eh_phys));
			r->rp_hist_count--;
		}
		VERIFY3U(r->rp_hist_count, <, CE_REPL_HIST);
		r->rp_hist[r->rp_hist_count++] = (eh_phys){ .eh_epoch = r->rp_promised, .eh_base = rb->join_seq,
		    .eh_flags = 0 };
		r->rp_last_epoch = r->rp_promised;
		joins = 1;
	}
	uint64_t o = txg_open(p);
	if (rb->join_seq > rs->applied || (joins && rb->join_seq < rs->applied)) {
		/* invariant 3: the jump is an apply that ended in o */
		if (rs->ndone == rs->capdone) {
			rs->capdone = rs->capdone ? rs->capdone * 2 : 64;
			rs->done = xrealloc(rs->done, rs->capdone * sizeof(repl_done));
		}
		rs->done[rs->ndone++] = (repl_done){ rb->join_seq, o, o };
		if (rb->join_seq < rs->applied)
			rs->ring_lo = rb->join_seq; /* the ring's newer entries were the old lineage's */
		rs->applied = rb->join_seq;
		rs->begun = rb->join_seq;
		rs->begun_txg = o;
	}
	ASSERT(!joins || rs->applied == rb->join_seq); /* invariant 5: a joiner's applied is J, also downwards */
	err = vol_mgmt_commit(p);
	if (err == 0) {
		pthread_mutex_lock(&p->lock);
		if (rs->applied > rs->durable)
			rs->durable = rs->applied;
		pthread_mutex_unlock(&p->lock);
	}
	pthread_mutex_unlock(&rs->mu);
	return err;
}

/* Invariant 1; with rs->mu held. */
static int
rb_check(ce_vol *h, repl_state *rs, ce_epoch e)
{
	ce_pool *p = h->v->pool;
	int err = 0;
	ASSERT_HELD(&rs->mu); /* invariant 1: the check and the write it admits are one apply */
	pthread_mutex_lock(&p->lock);
	if (!same_epoch(e, rs->rec.rp_promised))
		err = err_set(-ESTALE, "volume %s/%s: rebuild data of epoch %" PRIu64 ".%016" PRIx64
		    ", not the promised one", p->name, h->v->name, e.counter, e.node);
	else if (rs->rec.rp_state != RP_REBUILDING)
		err = err_set(-EINVAL, "volume %s/%s is not rebuilding", p->name, h->v->name);
	pthread_mutex_unlock(&p->lock);
	return err;
}

/* Rebuild data (buf) or a hole (buf NULL): invariant 1, then a plain write or trim. */
static int
rb_apply(ce_vol *h, ce_epoch e, const void *buf, size_t len, uint64_t off)
{
	repl_state *rs = NULL;
	int err = rb_handle(h, &rs);
	if (err != 0)
		return err;
	pthread_mutex_lock(&rs->mu);
	if ((err = rb_check(h, rs, e)) == 0)
		err = buf != NULL ? ce_vol_write(h, buf, len, off) : ce_vol_trim(h, off, len);
	pthread_mutex_unlock(&rs->mu);
	return err;
}

int
ce_rebuild_write(ce_vol *h, ce_epoch e, const void *buf, size_t len, uint64_t off)
{
	return buf != NULL ? rb_apply(h, e, buf, len, off) : err_set(-EINVAL, "rebuild data without bytes");
}

int
ce_rebuild_hole(ce_vol *h, ce_epoch e, uint64_t off, uint64_t len)
{
	return rb_apply(h, e, NULL, len, off);
}

int
ce_rebuild_cursor(ce_vol *h, uint64_t cursor, uint64_t done, uint64_t transferred)
{
	repl_state *rs = NULL;
	int err = rb_handle(h, &rs);
	if (err != 0)
		return err;
	volume *v = h->v;
	ce_pool *p = v->pool;
	if (cursor > v->size)
		return err_set(-EINVAL, "rebuild cursor %" PRIu64 " beyond the volume", cursor);
	pthread_mutex_lock(&rs->mu);
	if ((err = vol_mgmt_begin(p)) != 0) {
		pthread_mutex_unlock(&rs->mu);
		return err;
	}
	if (rs->rec.rp_state != RP_REBUILDING) {
		vol_mgmt_abort(p);
		pthread_mutex_unlock(&rs->mu);
		return err_set(-EINVAL, "volume %s/%s is not rebuilding", p->name, v->name);
	}
	vol_mgmt_dirty(p, v); /* invariant 2 */
	rs->rec.rp_rb.rb_cursor = cursor;
	rs->rec.rp_rb.rb_done = done;
	rs->rec.rp_rb.rb_transferred = transferred;
	txg_mark_open(p);
	vol_mgmt_abort(p); /* no wait: it commits with the next txg */
	pthread_mutex_unlock(&rs->mu);
	return 0;
}

int
ce_rebuild_flush(ce_vol *h, uint64_t *durable_cursor)
{
	repl_state *rs = NULL;
	int err = rb_handle(h, &rs);
	if (err != 0)
		return err;
	ce_pool *p = h->v->pool;
	pthread_mutex_lock(&p->lock);
	uint64_t cur = rs->rec.rp_rb.rb_cursor, t = txg_mark_open(p);
	pthread_mutex_unlock(&p->lock);
	if ((err = txg_wait_synced(p, t)) != 0)
		return err;
	if (durable_cursor != NULL)
		*durable_cursor = cur;
	return 0;
}

int
ce_rebuild_commit(ce_vol *h)
{
	repl_state *rs = NULL;
	int err = rb_handle(h, &rs);
	if (err != 0)
		return err;
	ce_pool *p = h->v->pool;
	pthread_mutex_lock(&p->lock);
	txg_mark_open(p);
	pthread_mutex_unlock(&p->lock);
	txg_kick(p);
	return 0;
}

int
ce_rebuild_end(ce_vol *h, ce_epoch e, int outcome)
{
	repl_state *rs = NULL;
	int err = rb_handle(h, &rs);
	if (err != 0)
		return err;
	volume *v = h->v;
	ce_pool *p = v->pool;
	if (outcome < CE_RB_COMPLETE || outcome > CE_RB_FAILED)
		return err_set(-EINVAL, "rebuild outcome %d", outcome);
	if (outcome == CE_RB_COMPLETE && (err = ce_rebuild_flush(h, NULL)) != 0) /* invariant 4 */
		return err;
	pthread_mutex_lock(&rs->mu);
	if ((err = vol_mgmt_begin(p)) != 0) {
		pthread_mutex_unlock(&rs->mu);
		return err;
	}
	repl_phys *r = &rs->rec;
	if (!same_epoch(e, r->rp_promised))
		err = err_set(-ESTALE, "volume %s/%s: epoch %" PRIu64 ".%016" PRIx64 " is not the promised one",
		    p->name, v->name, e.counter, e.node);
	else if (r->rp_state != RP_REBUILDING)
		err = err_set(-EINVAL, "volume %s/%s is not rebuilding", p->name, v->name);
	if (err != 0) {
		vol_mgmt_abort(p);
		pthread_mutex_unlock(&rs->mu);
		return err;
	}
	vol_mgmt_dirty(p, v);
	if (outcome == CE_RB_COMPLETE) {
		if (r->rp_hist_count == 0) {
			/* a new replica: it now holds epoch base_epoch's state, as one that adopted it */
			r->rp_hist[r->rp_hist_count++] = (eh_phys){ .eh_epoch = r->rp_promised,
			    .eh_base = MIN(r->rp_rb.rb_base_seq, rs->applied), .eh_flags = EH_ADOPTED };
			r->rp_last_epoch = r->rp_promised;
		}
		memset(&r->rp_rb, 0, sizeof(r->rp_rb));
		r->rp_state = RP_COMPLETE;
	} else {
		r->rp_rb.rb_flags |= outcome == CE_RB_CANCELLED ? RB_F_CANCELLED : RB_F_FAILED;
	}
	err = vol_mgmt_commit(p);
	pthread_mutex_unlock(&rs->mu);
	return err;
}

int
ce_rebuild_get(ce_vol *h, ce_rebuild *out, uint64_t *durable_cursor)
{
	repl_state *rs = NULL;
	int err = rb_handle(h, &rs);
	if (err != 0)
		return err;
	ce_pool *p = h->v->pool;
	pthread_mutex_lock(&p->lock);
	const rb_phys *b = rs->rec.rp_state == RP_REBUILDING ? &rs->rec.rp_rb : NULL;
	memset(out, 0, sizeof(*out));
	if (b != NULL) {
		out->kind = b->rb_kind;
		out->flags = b->rb_flags;
		out->base_epoch = (ce_epoch){ b->rb_base_epoch.ep_counter, b->rb_base_epoch.ep_node };
		out->base_seq = b->rb_base_seq;
		out->join_seq = b->rb_join_seq;
		out->source = b->rb_source;
		out->cursor = b->rb_cursor;
		out->done = b->rb_done;
		out->total = b->rb_total;
		out->transferred = b->rb_transferred;
		out->started = b->rb_started;
	}
	if (durable_cursor != NULL)
		*durable_cursor = rs->cap.rp_ds_guid != 0 && rs->cap.rp_state == RP_REBUILDING ?
		    rs->cap.rp_rb.rb_cursor : 0;
	pthread_mutex_unlock(&p->lock);
	return 0;
}

int
ce_rebuild_scan(ce_vol *h, uint64_t base, int full, uint64_t from, ce_diff_fn fn, void *arg)
{
	repl_state *rs = NULL;
	int err = rb_handle(h, &rs);
	if (err != 0)
		return err;
	ce_pool *p = h->v->pool;
	/* invariant 6: an apply that began before a newer epoch was promised ends first */
	pthread_mutex_lock(&rs->mu);
	pthread_mutex_unlock(&rs->mu);
	if ((err = ce_pool_sync(p)) != 0)
		return err;
	if (full)
		return vol_changed_after(h, 0, 0, from, fn, arg);
	/* the map (repl.c invariant 3): data of seqs > base lie only in txgs >= the first entry with hi > base */
	uint64_t txg = 0;
	int found = 0;
	pthread_mutex_lock(&p->lock);
	const repl_phys *r = rs->cap.rp_ds_guid != 0 ? &rs->cap : &rs->rec;
	for (uint32_t i = 0; i < r->rp_map_count && !found; i++)
		if (r->rp_map[i].sm_hi > base) {
			txg = r->rp_map[i].sm_txg;
			found = 1;
		}
	pthread_mutex_unlock(&p->lock);
	if (!found)
		return 0; /* nothing after base was ever applied here */
	if (txg == 0) {
		/* repl.c invariant 9: a rollback after base may have changed any byte */
		uint64_t size = ce_vol_size(h);
		return from < size ? fn(arg, from, size - from, CE_DIFF_DATA) : 0;
	}
	return vol_changed_after(h, txg - 1, 1, from, fn, arg);
}
