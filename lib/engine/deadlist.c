/*
 * deadlist.c -- dead lists (format: docs/on-disk-format.md section 4.5):
 * the blocks a dataset's predecessor in its chain still references but
 * the dataset no longer does, in order of death, held in memory and
 * written as an object in the MOS each txg it changed. snap.c decides
 * what goes on which list (snap_kill, attach, destroy); this file keeps
 * the list, its sums and its object.
 *
 * Invariants:
 *   1. bytes and lbytes are the sums of the entries' allocated sizes and
 *      of the data entries' logical sizes; n <= cap, cap is a multiple of
 *      DL_PER_LEAF, and dirty[] has one mark per leaf of cap.
 *   2. A loaded list's byte sum equals its record's ds_dl_bytes, and none
 *      of its entries is a hole (else dl_load fails with -EIO).
 *   3. Only the sync thread changes a list (snap.c invariant 1), besides
 *      import and a new dataset's empty list; dl_sync (ASSERT: the sync
 *      thread) writes the leaves marked dirty and punches the leaves past
 *      the end when the list shrank.
 */
#include "deadlist.h"
#include "mos.h"
#include "pool_sync.h"
#include "util.h"

#include <errno.h>
#include <string.h>

void
dl_init(deadlist *dl)
{
	memset(dl, 0, sizeof(*dl));
	tree_init(&dl->tree, BP_DEADLIST, 1);
}

void
dl_fini(deadlist *dl)
{
	free(dl->e);
	free(dl->dirty);
	dl->e = NULL;
	dl->dirty = NULL;
	dl->n = dl->cap = 0;
}

void
dl_reserve(deadlist *dl, uint64_t want)
{
	if (want <= dl->cap)
		return;
	uint64_t ncap = dl->cap ? dl->cap : DL_PER_LEAF;
	while (ncap < want)
		ncap *= 2;
	dl->e = xrealloc(dl->e, ncap * sizeof(bp_phys));
	memset(dl->e + dl->cap, 0, (ncap - dl->cap) * sizeof(bp_phys));
	dl->dirty = xrealloc(dl->dirty, ncap / DL_PER_LEAF);
	memset(dl->dirty + dl->cap / DL_PER_LEAF, 0, (ncap - dl->cap) / DL_PER_LEAF);
	dl->cap = ncap;
}

void
dl_append(deadlist *dl, const bp_phys *bp)
{
	dl_reserve(dl, dl->n + 1);
	ASSERT(dl->n < dl->cap && dl->cap % DL_PER_LEAF == 0); /* invariant 1 */
	dl->e[dl->n] = *bp;
	dl->dirty[dl->n / DL_PER_LEAF] = 1;
	dl->n++;
	dl->bytes += bp_asize(bp);
	dl->lbytes += bp->bp_type == BP_DATA ? bp->bp_lsize : 0;
	dl->changed = 1;
}

/* Replace the whole list (destroy and attach rewrite lists wholesale). */
void
dl_mark_all(deadlist *dl)
{
	if (dl->cap > 0)
		memset(dl->dirty, 1, dl->cap / DL_PER_LEAF);
	dl->changed = 1;
}

/* Write a changed dead list's object in txg t (pass 1 of the sync). */
int
dl_sync(ce_pool *p, deadlist *dl, uint64_t t)
{
	ASSERT(pool_sync_thread(p));
	if (!dl->changed)
		return 0;
	uint64_t nleaves = (dl->n + DL_PER_LEAF - 1) / DL_PER_LEAF;
	int err = 0, did = 0;
	ct_acct acct = { 0 };
	if (nleaves > 0)
		err = mos_sync_object(p, &dl->tree, t, (const uint8_t *)dl->e, dl->dirty, nleaves,
		    BP_DEADLIST, &did);
	/* Leaves past the end (the list shrank) are punched. */
	if (err == 0 && dl->disk_leaves > nleaves)
		err = cowtree_free_range(p, &dl->tree, t, nleaves, dl->disk_leaves, &acct);
	if (err == 0) {
		dl->disk_leaves = nleaves;
		dl->changed = 0;
	}
	return err;
}

int
dl_load(ce_pool *p, deadlist *dl, const ds_phys *ds)
{
	dl_init(dl);
	dl->tree.levels = ds->ds_dl_levels ? ds->ds_dl_levels : 1;
	dl->tree.root = ds->ds_dl_root;
	if (ds->ds_dl_levels > 8)
		return -EIO;
	uint64_t n = ds->ds_dl_count, nleaves = (n + DL_PER_LEAF - 1) / DL_PER_LEAF;
	if (nleaves > cowtree_capacity(dl->tree.levels))
		return -EIO;
	dl_reserve(dl, n);
	if (nleaves > 0) {
		int err = mos_read_object(p, &dl->tree, (uint8_t *)dl->e, nleaves);
		if (err != 0)
			return err;
		/* The object has whole leaves: zero what lies past the count. */
		memset(dl->e + n, 0, (dl->cap - n) * sizeof(bp_phys));
	}
	dl->n = n;
	for (uint64_t i = 0; i < n; i++) {
		if (bp_is_hole(&dl->e[i]))
			return -EIO;
		dl->bytes += bp_asize(&dl->e[i]);
		dl->lbytes += dl->e[i].bp_type == BP_DATA ? dl->e[i].bp_lsize : 0;
	}
	if (dl->bytes != ds->ds_dl_bytes)
		return -EIO;
	dl->disk_leaves = nleaves;
	return 0;
}

/* Allocated and logical (data blocks') bytes of the entries born after txg. */
void
dl_sum_after(const deadlist *dl, uint64_t txg, uint64_t *bytes, uint64_t *lbytes)
{
	for (uint64_t i = 0; i < dl->n; i++) {
		if (dl->e[i].bp_birth <= txg)
			continue;
		*bytes += bp_asize(&dl->e[i]);
		if (dl->e[i].bp_type == BP_DATA)
			*lbytes += dl->e[i].bp_lsize;
	}
}
