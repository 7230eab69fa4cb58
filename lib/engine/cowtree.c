/*
 * cowtree.c -- copy-on-write radix trees of block pointers.
 *
 * Owns the shape of every object on disk (volumes, the MOS, allocation
 * bitmaps): a root pointer, a number of levels, 16 KiB indirect blocks of
 * 256 pointers, leaves of the object's block size (format §3).
 *
 * Invariants:
 *   1. Live blocks are never overwritten. Changing a leaf writes a new
 *      leaf and new copies of all its ancestors up to a new root; the old
 *      copies are freed (deferred until commit by alloc.c), except blocks
 *      born in the syncing txg, which are rewritten in place.
 *   2. A block's space is accounted and freed exactly once, at the moment
 *      its pointer is replaced in its parent (or in the root).
 *   3. A parent's pointer carries its child's checksum, so every walk
 *      from a committed root verifies every block it reads (blkio.c).
 *   4. An indirect block whose children are all holes becomes a hole:
 *      sparse objects own no space for the parts never written.
 *   5. Readers and the sync thread may walk the same tree at once:
 *      apply/free_range only read old blocks and write new ones; the new
 *      root becomes visible when the caller installs it.
 *   6. A hole's birth is the txg that punched it (0: never written), and
 *      a hole indirect stands for children that are holes of its birth:
 *      when a write rebuilds it, they keep that birth. An incremental
 *      send sends what was born after its base, so a punched block must
 *      never look older than the punch (test_hole_birth).
 *
 * Transitions: cowtree_grow (more levels), cowtree_free_range (punch),
 * cowtree_apply (replace leaves), all in syncing context only.
 */
#include "cowtree.h"
#include "blkio.h"
#include "pool_impl.h"
#include "util.h"

#include <errno.h>
#include <string.h>

uint64_t
cowtree_capacity(uint8_t levels)
{
	if (levels <= 1)
		return 1;
	if ((levels - 1) * CE_IND_SHIFT >= 64)
		return UINT64_MAX;
	return 1ull << ((levels - 1) * CE_IND_SHIFT);
}

uint8_t
cowtree_levels_for(uint64_t nblocks)
{
	uint8_t l = 1;
	while (cowtree_capacity(l) < nblocks)
		l++;
	return l;
}

static int
same_loc(const bp_phys *a, const bp_phys *b)
{
	return !bp_is_hole(a) && !bp_is_hole(b) && a->bp_vdev == b->bp_vdev &&
	    a->bp_offset == b->bp_offset;
}

/* Account a pointer replacement; free the old block unless rewritten in place. */
static void
replace(ce_pool *p, uint64_t txg, const bp_phys *ob, const bp_phys *nb, ct_acct *acct)
{
	acct->used += (int64_t)bp_asize(nb) - (int64_t)bp_asize(ob);
	acct->written += (int64_t)bp_asize(nb);
	if (ob->bp_birth > acct->keep_txg)
		acct->written -= (int64_t)bp_asize(ob);
	if (ob->bp_type == BP_DATA)
		acct->logical -= ob->bp_lsize;
	if (nb->bp_type == BP_DATA)
		acct->logical += nb->bp_lsize;
	if (!bp_is_hole(ob) && !same_loc(ob, nb)) {
		if (acct->kill != NULL && ob->bp_birth <= acct->keep_txg)
			acct->kill(acct->kill_arg, ob);
		else
			blk_free(p, ob, txg);
	}
}

static bp_phys
hole_bp(uint64_t txg)
{
	bp_phys h;
	memset(&h, 0, sizeof(h));
	h.bp_birth = txg;
	return h;
}

/* Pointer to the block at `level` covering leaf index `idx << (8*level)`. */
static int
lookup_level(ce_pool *p, const cowtree *t, int level, uint64_t idx, bp_phys *out)
{
	bp_phys bp = t->root;
	for (int l = t->levels - 1; l > level; l--) {
		if (bp_is_hole(&bp)) {
			/* under a hole: punched when it was (invariant 6) */
			*out = hole_bp(bp.bp_birth);
			return 0;
		}
		uint64_t child = (idx >> ((l - 1 - level) * CE_IND_SHIFT)) & (CE_IND_PTRS - 1);
		bp_phys parent = bp;
		int err = blk_read(p, &parent, &bp, child * sizeof(bp_phys), sizeof(bp_phys));
		if (err != 0)
			return err;
		if (!bp_is_hole(&bp) && (bp.bp_type != (l - 1 == 0 ? t->leaf_type : BP_INDIRECT) ||
		    bp.bp_level != l - 1)) {
			pool_cksum_error(p);
			return -EIO;
		}
	}
	*out = bp;
	return 0;
}

int
cowtree_lookup(ce_pool *p, const cowtree *t, uint64_t blkid, bp_phys *out)
{
	if (blkid >= cowtree_capacity(t->levels)) {
		*out = hole_bp(0);
		return 0;
	}
	return lookup_level(p, t, 0, blkid, out);
}

int
cowtree_lookup_range(ce_pool *p, const cowtree *t, uint64_t first, size_t n, bp_phys *out)
{
	if (t->levels == 1) {
		for (size_t k = 0; k < n; k++) {
			int err = cowtree_lookup(p, t, first + k, &out[k]);
			if (err != 0)
				return err;
		}
		return 0;
	}
	for (size_t k = 0; k < n;) {
		uint64_t blkid = first + k;
		size_t span = MIN(n - k, (size_t)(CE_IND_PTRS - (blkid & (CE_IND_PTRS - 1))));
		bp_phys l1;
		int err = blkid >= cowtree_capacity(t->levels) ? (l1 = hole_bp(0), 0)
							       : lookup_level(p, t, 1, blkid >> CE_IND_SHIFT, &l1);
		if (err == 0 && !bp_is_hole(&l1) && (l1.bp_type != BP_INDIRECT || l1.bp_level != 1)) {
			pool_cksum_error(p);
			err = -EIO;
		}
		if (err != 0)
			return err;
		if (bp_is_hole(&l1)) {
			for (size_t j = 0; j < span; j++)
				out[k + j] = hole_bp(l1.bp_birth);
		} else {
			err = blk_read(p, &l1, &out[k], (blkid & (CE_IND_PTRS - 1)) * sizeof(bp_phys),
			    span * sizeof(bp_phys));
			if (err != 0)
				return err;
			for (size_t j = 0; j < span; j++)
				if (!bp_is_hole(&out[k + j]) && (out[k + j].bp_type != t->leaf_type ||
				    out[k + j].bp_level != 0)) {
					pool_cksum_error(p);
					return -EIO;
				}
		}
		k += span;
	}
	return 0;
}

static int
all_holes(const bp_phys *b)
{
	for (unsigned i = 0; i < CE_IND_PTRS; i++)
		if (!bp_is_hole(&b[i]))
			return 0;
	return 1;
}

int
cowtree_apply(ce_pool *p, cowtree *t, uint64_t txg, const ct_leaf *leaves, size_t n,
    ct_acct *acct)
{
	ct_leaf *cur, *next;
	size_t ncur = n;
	int err = 0;

	if (n == 0)
		return 0;
	VERIFY(leaves[n - 1].blkid < cowtree_capacity(t->levels));
	cur = xmalloc(n * sizeof(ct_leaf));
	next = xmalloc(n * sizeof(ct_leaf));
	memcpy(cur, leaves, n * sizeof(ct_leaf));
	bp_phys *buf = xmalloc(CE_IND_SIZE);

	for (int lvl = 1; lvl < t->levels; lvl++) {
		size_t nnext = 0;
		for (size_t i = 0; i < ncur;) {
			uint64_t pi = cur[i].blkid >> CE_IND_SHIFT;
			bp_phys opb, npb;
			err = lookup_level(p, t, lvl, pi, &opb);
			if (err == 0 && bp_is_hole(&opb)) {
				/* the children of a hole keep its birth (invariant 6) */
				for (unsigned k = 0; k < CE_IND_PTRS; k++)
					buf[k] = hole_bp(opb.bp_birth);
			} else if (err == 0) {
				err = blk_read(p, &opb, buf, 0, CE_IND_SIZE);
			}
			if (err != 0)
				goto out;
			size_t j = i;
			for (; j < ncur && (cur[j].blkid >> CE_IND_SHIFT) == pi; j++) {
				unsigned idx = cur[j].blkid & (CE_IND_PTRS - 1);
				replace(p, txg, &buf[idx], &cur[j].bp, acct);
				buf[idx] = cur[j].bp;
			}
			if (all_holes(buf)) {
				npb = hole_bp(txg);
			} else {
				err = blk_write(p, buf, CE_IND_SIZE, t->ind_comp, t->cktype, BP_INDIRECT,
				    lvl, txg, &opb, BLK_CACHE, &npb);
				if (err != 0)
					goto out;
			}
			next[nnext].blkid = pi;
			next[nnext].bp = npb;
			nnext++;
			i = j;
		}
		ct_leaf *tmp = cur;
		cur = next;
		next = tmp;
		ncur = nnext;
	}
	VERIFY3U(ncur, ==, 1);
	VERIFY3U(cur[0].blkid, ==, 0);
	replace(p, txg, &t->root, &cur[0].bp, acct);
	t->root = cur[0].bp;
out:
	free(buf);
	free(cur);
	free(next);
	return err;
}

/* Free every block of the subtree under bp (bp included). */
static int
free_subtree(ce_pool *p, uint64_t txg, const bp_phys *bp, ct_acct *acct)
{
	if (bp_is_hole(bp))
		return 0;
	if (bp->bp_level > 0) {
		bp_phys *buf = xmalloc(CE_IND_SIZE);
		int err = blk_read(p, bp, buf, 0, CE_IND_SIZE);
		for (unsigned i = 0; err == 0 && i < CE_IND_PTRS; i++)
			err = free_subtree(p, txg, &buf[i], acct);
		free(buf);
		if (err != 0)
			return err;
	}
	bp_phys h = hole_bp(txg);
	replace(p, txg, bp, &h, acct);
	return 0;
}

/* Punch [start,end) inside the subtree at bp (level, first leaf base); *out = its new pointer. */
static int
free_range_rec(ce_pool *p, const cowtree *t, uint64_t txg, const bp_phys *bp, int level,
    uint64_t base, uint64_t start, uint64_t end, ct_acct *acct, bp_phys *out)
{
	uint64_t span = cowtree_capacity((uint8_t)(level + 1));
	uint64_t last = base + span; /* may wrap only for absurd trees */
	int err;

	if (bp_is_hole(bp) || end <= base || start >= last) {
		*out = *bp;
		return 0;
	}
	if (start <= base && end >= last) {
		err = free_subtree(p, txg, bp, acct);
		if (err == 0)
			*out = hole_bp(txg);
		return err;
	}
	VERIFY(level > 0);
	bp_phys *buf = xmalloc(CE_IND_SIZE);
	err = blk_read(p, bp, buf, 0, CE_IND_SIZE);
	uint64_t cspan = cowtree_capacity((uint8_t)level);
	for (unsigned i = 0; err == 0 && i < CE_IND_PTRS; i++) {
		bp_phys nb;
		uint64_t cbase = base + i * cspan;
		if (cbase >= end || cbase + cspan <= start)
			continue;
		err = free_range_rec(p, t, txg, &buf[i], level - 1, cbase, start, end, acct, &nb);
		if (err == 0)
			buf[i] = nb; /* accounted inside */
	}
	if (err == 0) {
		bp_phys nb;
		if (all_holes(buf)) {
			nb = hole_bp(txg);
		} else {
			err = blk_write(p, buf, CE_IND_SIZE, t->ind_comp, t->cktype, BP_INDIRECT, level,
			    txg, bp, BLK_CACHE, &nb);
		}
		if (err == 0) {
			replace(p, txg, bp, &nb, acct);
			*out = nb;
		}
	}
	free(buf);
	return err;
}

int
cowtree_free_range(ce_pool *p, cowtree *t, uint64_t txg, uint64_t start, uint64_t end,
    ct_acct *acct)
{
	bp_phys nr;
	if (start >= end)
		return 0;
	int err = free_range_rec(p, t, txg, &t->root, t->levels - 1, 0, start, end, acct, &nr);
	if (err == 0)
		t->root = nr;
	return err;
}

int
cowtree_grow(ce_pool *p, cowtree *t, uint64_t txg, uint8_t levels, ct_acct *acct)
{
	while (t->levels < levels) {
		if (!bp_is_hole(&t->root)) {
			bp_phys *buf = xcalloc(1, CE_IND_SIZE), nb;
			buf[0] = t->root;
			int err = blk_write(p, buf, CE_IND_SIZE, t->ind_comp, t->cktype, BP_INDIRECT,
			    t->levels, txg, NULL, BLK_CACHE, &nb);
			free(buf);
			if (err != 0)
				return err;
			acct->used += (int64_t)bp_asize(&nb);
			acct->written += (int64_t)bp_asize(&nb);
			t->root = nb;
		}
		t->levels++;
	}
	return 0;
}

static int
walk_rec(ce_pool *p, const cowtree *t, const bp_phys *bp, int level, uint64_t base,
    uint64_t min_birth, ct_visit_fn fn, void *arg)
{
	/* A child is never born after its parent: an old block heads an old subtree. */
	if (bp_is_hole(bp) || (min_birth != 0 && bp->bp_birth <= min_birth))
		return 0;
	if (level == 0)
		return fn(arg, bp, 0, base, 0);
	bp_phys *buf = xmalloc(CE_IND_SIZE);
	int err = blk_read(p, bp, buf, 0, CE_IND_SIZE);
	int r = fn(arg, bp, level, base, err);
	uint64_t cspan = cowtree_capacity((uint8_t)level);
	for (unsigned i = 0; r == 0 && err == 0 && i < CE_IND_PTRS; i++)
		r = walk_rec(p, t, &buf[i], level - 1, base + i * cspan, min_birth, fn, arg);
	free(buf);
	return r;
}

static int
diff_rec(ce_pool *p, const bp_phys *bp, int level, uint64_t base, uint64_t min_birth, int holes,
    uint64_t start, ct_diff_fn fn, void *arg)
{
	if (bp_is_hole(bp))
		return holes && bp->bp_birth > min_birth ? fn(arg, base, cowtree_capacity((uint8_t)(level + 1)), NULL) : 0;
	if (bp->bp_birth <= min_birth)
		return 0;
	if (level == 0)
		return fn(arg, base, 1, bp);
	bp_phys *buf = xmalloc(CE_IND_SIZE);
	int r = blk_read(p, bp, buf, 0, CE_IND_SIZE);
	uint64_t cspan = cowtree_capacity((uint8_t)level);
	for (unsigned i = 0; r == 0 && i < CE_IND_PTRS; i++)
		if (base + (i + 1) * cspan > start)
			r = diff_rec(p, &buf[i], level - 1, base + i * cspan, min_birth, holes, start, fn, arg);
	free(buf);
	return r;
}

int
cowtree_diff(ce_pool *p, const cowtree *t, uint64_t min_birth, int holes, ct_diff_fn fn, void *arg)
{
	return diff_rec(p, &t->root, t->levels - 1, 0, min_birth, holes, 0, fn, arg);
}

int
cowtree_diff_from(ce_pool *p, const cowtree *t, uint64_t min_birth, int holes, uint64_t start,
    ct_diff_fn fn, void *arg)
{
	return diff_rec(p, &t->root, t->levels - 1, 0, min_birth, holes, start, fn, arg);
}

int
cowtree_walk(ce_pool *p, const cowtree *t, ct_visit_fn fn, void *arg)
{
	return walk_rec(p, t, &t->root, t->levels - 1, 0, 0, fn, arg);
}

int
cowtree_walk_after(ce_pool *p, const cowtree *t, uint64_t min_birth, ct_visit_fn fn, void *arg)
{
	return walk_rec(p, t, &t->root, t->levels - 1, 0, min_birth, fn, arg);
}
