/*
 * mos.c -- the meta object set: the pool's directory.
 *
 * Owns the MOS object (format §4): the header with one record per vdev
 * (naming its allocation bitmap object) and the table of dataset
 * records. The MOS is small and held wholly in memory (p->mos.buf); each
 * txg writes the 16 KiB leaves that changed, and the bitmap leaves that
 * changed, as copy-on-write objects. This file alone writes p->mos; the
 * files that own a region of the buffer (send.c's receive table, sched.c's
 * and repl.c's headers) reach it through mos_ptr (mos.h).
 *
 * Invariants:
 *   1. Only the sync thread (or import/create before it starts, or clear
 *      while it is stopped) touches the MOS buffer, the MOS tree and the
 *      bitmap trees.
 *   2. MOS and bitmap blocks are never compressed, so their second and
 *      later rewrites within one txg are in place (blkio.c invariant 2)
 *      and the sync passes converge: a pass that allocates nothing
 *      dirties nothing.
 *   3. After the last pass, the bitmap on disk equals alloc's `cur`, and
 *      each vdev record's mv_alloc equals the bits set in it.
 *
 * Sync passes (pool_sync.c drives them): mos_sync writes dirty MOS leaves;
 * mos_sync_bitmaps writes dirty bitmap leaves and refreshes the vdev
 * records (which dirties the MOS again if they changed); repeat until a
 * pass writes nothing.
 */
#include "mos.h"
#include "blkio.h"
#include "label.h"
#include "pool_impl.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

static mos_header_phys *
hdr(ce_pool *p)
{
	return (mos_header_phys *)p->mos.buf;
}

void
tree_init(cowtree *t, uint8_t leaf_type, uint64_t nleaves)
{
	memset(t, 0, sizeof(*t));
	t->levels = cowtree_levels_for(nleaves);
	t->leaf_type = leaf_type;
	t->ind_comp = CE_COMP_OFF;
	t->cktype = CE_CK_XXH128;
	t->bsize = CE_META_BLOCK;
}

void
mos_mark_dirty(ce_pool *p, uint64_t off, uint64_t len)
{
	for (uint64_t l = off / CE_META_BLOCK; l <= (off + len - 1) / CE_META_BLOCK; l++)
		p->mos.dirty[l] = 1;
}

mos_header_phys *
mos_hdr(ce_pool *p)
{
	return hdr(p);
}

static uint64_t
mos_size_for(uint32_t capacity)
{
	return P2ROUNDUP(CE_MOS_DS_OFF + (uint64_t)CE_DS_SIZE * capacity, CE_META_BLOCK);
}

void
mos_fini(ce_pool *p)
{
	free(p->mos.buf);
	free(p->mos.dirty);
	free(p->mos.sm_trees);
	p->mos.buf = NULL;
	p->mos.dirty = NULL;
	p->mos.sm_trees = NULL;
}

void
mos_init_empty(ce_pool *p)
{
	p->mos.size = mos_size_for(CE_DS_GROW);
	p->mos.buf = xcalloc(1, p->mos.size);
	p->mos.dirty = xcalloc(p->mos.size / CE_META_BLOCK, 1);
	tree_init(&p->mos.tree, BP_MOS, p->mos.size / CE_META_BLOCK);
	mos_header_phys *h = hdr(p);
	h->mh_magic = MH_MAGIC;
	h->mh_version = CE_FORMAT_VERSION;
	h->mh_nvdevs = p->nvdevs;
	h->mh_ds_capacity = CE_DS_GROW;
	h->mh_pool_guid = p->guid;
	snprintf(h->mh_pool_name, sizeof(h->mh_pool_name), "%s", p->name);
	p->mos.sm_trees = xcalloc(p->nvdevs, sizeof(cowtree));
	for (unsigned v = 0; v < p->nvdevs; v++) {
		alloc_vdev *av = &p->alloc.v[v];
		tree_init(&p->mos.sm_trees[v], BP_BITMAP, av->nleaves);
		memset(av->leaf_dirty, 1, av->nleaves);
		h->mh_vdevs[v].mv_guid = p->vds[v].guid;
		h->mh_vdevs[v].mv_nsectors = av->nsectors;
		h->mh_vdevs[v].mv_sm_size = av->sm_bytes;
		h->mh_vdevs[v].mv_sm_levels = p->mos.sm_trees[v].levels;
	}
	mos_mark_dirty(p, 0, p->mos.size);
}

/* Read a whole object of nleaves 16 KiB leaves into buf. */
int
mos_read_object(ce_pool *p, const cowtree *t, uint8_t *buf, uint64_t nleaves)
{
	for (uint64_t i = 0; i < nleaves; i++) {
		bp_phys bp;
		int err = cowtree_lookup(p, t, i, &bp);
		if (err == 0 && !bp_is_hole(&bp) &&
		    (bp.bp_lsize != CE_META_BLOCK || bp.bp_type != t->leaf_type))
			err = -EIO;
		if (err == 0)
			err = bp_is_hole(&bp) ? (memset(buf + i * CE_META_BLOCK, 0, CE_META_BLOCK), 0)
					      : blk_read(p, &bp, buf + i * CE_META_BLOCK, 0, CE_META_BLOCK);
		if (err != 0)
			return err;
	}
	return 0;
}

int
mos_load(ce_pool *p, const uberblock_phys *ub)
{
	int err;
	if (ub->ub_mos_size < mos_size_for(0) || ub->ub_mos_size % CE_META_BLOCK != 0 ||
	    ub->ub_mos_levels == 0 || ub->ub_mos_levels > 8)
		return err_set(-EIO, "pool %s: uberblock txg %" PRIu64 " has an impossible MOS size",
		    p->name, ub->ub_txg);
	p->mos.size = ub->ub_mos_size;
	p->mos.buf = xcalloc(1, p->mos.size);
	p->mos.dirty = xcalloc(p->mos.size / CE_META_BLOCK, 1);
	tree_init(&p->mos.tree, BP_MOS, p->mos.size / CE_META_BLOCK);
	p->mos.tree.levels = ub->ub_mos_levels;
	p->mos.tree.root = ub->ub_mos;
	err = mos_read_object(p, &p->mos.tree, p->mos.buf, p->mos.size / CE_META_BLOCK);
	if (err != 0)
		return err_set(err, "pool %s: cannot read the MOS of txg %" PRIu64 ": %s", p->name,
		    ub->ub_txg, err == -EIO ? "checksum error" : "IO error");
	mos_header_phys *h = hdr(p);
	if (h->mh_magic == MH_MAGIC && (h->mh_version < CE_FORMAT_VERSION_MIN ||
	    h->mh_version > CE_FORMAT_VERSION))
		return err_set(-ENOTSUP, "pool %s: MOS format version %u is not supported (this "
		    "cask reads %u to %u)", p->name, h->mh_version, CE_FORMAT_VERSION_MIN,
		    CE_FORMAT_VERSION);
	if (h->mh_magic != MH_MAGIC ||
	    h->mh_pool_guid != p->guid || h->mh_nvdevs != p->nvdevs ||
	    mos_size_for(h->mh_ds_capacity) != p->mos.size)
		return err_set(-EIO, "pool %s: MOS header is inconsistent with the labels", p->name);
	p->mos.sm_trees = xcalloc(p->nvdevs, sizeof(cowtree));
	for (unsigned v = 0; v < p->nvdevs; v++) {
		mos_vdev_phys *mv = &h->mh_vdevs[v];
		alloc_vdev *av = &p->alloc.v[v];
		if (mv->mv_guid != p->vds[v].guid || mv->mv_nsectors != av->nsectors ||
		    mv->mv_sm_size != av->sm_bytes || mv->mv_sm_levels == 0 || mv->mv_sm_levels > 8)
			return err_set(-EIO, "pool %s: vdev %u record does not match its label", p->name, v);
		tree_init(&p->mos.sm_trees[v], BP_BITMAP, av->nleaves);
		p->mos.sm_trees[v].levels = mv->mv_sm_levels;
		p->mos.sm_trees[v].root = mv->mv_sm_root;
		uint8_t *bm = xmalloc(av->sm_bytes);
		err = mos_read_object(p, &p->mos.sm_trees[v], bm, av->nleaves);
		if (err == 0)
			err = alloc_load(&p->alloc, v, bm, av->sm_bytes);
		free(bm);
		if (err == 0 && av->ncur != mv->mv_alloc)
			err = -EIO;
		if (err != 0)
			return err_set(err, "pool %s: allocation bitmap of vdev %u is damaged", p->name, v);
	}
	return 0;
}

uint32_t
mos_ds_capacity(const ce_pool *p)
{
	return ((const mos_header_phys *)p->mos.buf)->mh_ds_capacity;
}

void
mos_ds_get(const ce_pool *p, uint32_t slot, ds_phys *ds)
{
	memcpy(ds, p->mos.buf + CE_MOS_DS_OFF + (uint64_t)slot * CE_DS_SIZE, CE_DS_SIZE);
}

void
mos_ds_put(ce_pool *p, uint32_t slot, const ds_phys *ds)
{
	uint8_t *dst = p->mos.buf + CE_MOS_DS_OFF + (uint64_t)slot * CE_DS_SIZE;
	if (memcmp(dst, ds, CE_DS_SIZE) != 0) {
		memcpy(dst, ds, CE_DS_SIZE);
		mos_mark_dirty(p, CE_MOS_DS_OFF + (uint64_t)slot * CE_DS_SIZE, CE_DS_SIZE);
	}
}

uint32_t
mos_ds_slot_alloc(ce_pool *p)
{
	uint32_t cap = mos_ds_capacity(p);
	/* from where the last search ended (slots below it were taken then; a freed one is found on the wrap) */
	for (uint32_t k = 0; k < cap; k++) {
		uint32_t s = (p->mos.ds_slot_hint + k) % cap;
		uint64_t guid;
		memcpy(&guid, p->mos.buf + CE_MOS_DS_OFF + (uint64_t)s * CE_DS_SIZE, sizeof(guid));
		if (guid == 0) {
			p->mos.ds_slot_hint = s + 1;
			return s;
		}
	}
	uint64_t nsize = mos_size_for(cap + CE_DS_GROW);
	p->mos.buf = xrealloc(p->mos.buf, nsize);
	memset(p->mos.buf + p->mos.size, 0, nsize - p->mos.size);
	p->mos.dirty = xrealloc(p->mos.dirty, nsize / CE_META_BLOCK);
	memset(p->mos.dirty + p->mos.size / CE_META_BLOCK, 1, (nsize - p->mos.size) / CE_META_BLOCK);
	p->mos.size = nsize;
	hdr(p)->mh_ds_capacity = cap + CE_DS_GROW;
	mos_mark_dirty(p, 0, sizeof(mos_header_phys));
	p->mos.ds_slot_hint = cap + 1;
	return cap;
}

/* Write the dirty leaves of an object whose contents live in buf. */
int
mos_sync_object(ce_pool *p, cowtree *t, uint64_t txg, const uint8_t *buf, uint8_t *dirty,
    uint64_t nleaves, int type, int *did)
{
	ct_leaf *leaves = xmalloc(nleaves * sizeof(ct_leaf));
	size_t n = 0;
	ct_acct acct = { 0 };
	int err = 0;
	uint8_t want = cowtree_levels_for(nleaves);

	if (t->levels < want)
		err = cowtree_grow(p, t, txg, want, &acct);
	for (uint64_t i = 0; err == 0 && i < nleaves; i++) {
		if (!dirty[i])
			continue;
		dirty[i] = 0;
		bp_phys old;
		err = cowtree_lookup(p, t, i, &old);
		/* invariant 2: a leaf rewritten in this txg stays where it is (uncompressed, same size) */
		ASSERT(err != 0 || bp_is_hole(&old) || old.bp_birth != txg || old.bp_comp == CE_COMP_OFF);
		if (err == 0)
			err = blk_write(p, buf + i * CE_META_BLOCK, CE_META_BLOCK, CE_COMP_OFF,
			    CE_CK_XXH128, type, 0, txg, &old, BLK_CACHE, &leaves[n].bp);
		leaves[n++].blkid = i;
	}
	if (err == 0 && n > 0) {
		err = cowtree_apply(p, t, txg, leaves, n, &acct);
		*did = 1;
	}
	free(leaves);
	return err;
}

int
mos_sync(ce_pool *p, uint64_t txg, int *did)
{
	ASSERT(pool_sync_thread(p)); /* invariant 1 */
	return mos_sync_object(p, &p->mos.tree, txg, p->mos.buf, p->mos.dirty,
	    p->mos.size / CE_META_BLOCK, BP_MOS, did);
}

int
mos_sync_bitmaps(ce_pool *p, uint64_t txg, int *did)
{
	ASSERT(pool_sync_thread(p)); /* invariant 1 */
	mos_header_phys *h = hdr(p);
	for (unsigned v = 0; v < p->nvdevs; v++) {
		alloc_vdev *av = &p->alloc.v[v];
		int err = mos_sync_object(p, &p->mos.sm_trees[v], txg, (const uint8_t *)av->cur,
		    av->leaf_dirty, av->nleaves, BP_BITMAP, did);
		if (err != 0)
			return err;
	}
	/* Refresh the vdev records: roots and allocation counts. */
	for (unsigned v = 0; v < p->nvdevs; v++) {
		mos_vdev_phys mv = h->mh_vdevs[v];
		mv.mv_alloc = p->alloc.v[v].ncur;
		mv.mv_sm_levels = p->mos.sm_trees[v].levels;
		mv.mv_sm_root = p->mos.sm_trees[v].root;
		if (memcmp(&mv, &h->mh_vdevs[v], sizeof(mv)) != 0) {
			h->mh_vdevs[v] = mv;
			mos_mark_dirty(p, 256 + (uint64_t)v * sizeof(mv), sizeof(mv));
		}
	}
	return 0;
}
