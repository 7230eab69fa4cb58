/*
 * recobj.c -- the shared mechanics of the small pool-wide record objects
 * (recobj.h): reading one at import, rewriting it whole in a txg's sync
 * (freeing the leaves it no longer needs), and the live-volume lookup their
 * records are filtered by. What the records mean stays with their owners
 * (sched.c, attr.c).
 *
 * Invariant: after recobj_write in txg t the object is exactly the n
 * records given, in ceil(n / per leaf) leaves, and *disk_leaves says so.
 */
#include "recobj.h"
#include "dataset.h"
#include "mos.h"
#include "util.h"
#include "vol.h"

#include <errno.h>
#include <string.h>

void
recs_put(void **a, size_t *n, size_t *cap, const void *r, size_t size)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		*a = xrealloc(*a, *cap * size);
	}
	memcpy((uint8_t *)*a + (*n)++ * size, r, size);
}

int
recobj_read(ce_pool *p, cowtree *tree, const bp_phys *root, uint8_t levels, uint64_t count,
    size_t recsize, const char *what, void **out, uint64_t *nleaves)
{
	*out = NULL;
	*nleaves = 0;
	if (!bp_is_hole(root)) {
		tree->levels = levels ? levels : 1;
		tree->root = *root;
	}
	if (count == 0)
		return 0;
	uint64_t per = CE_META_BLOCK / recsize, nl = (count + per - 1) / per;
	if (levels == 0 || levels > 8 || nl > cowtree_capacity(levels))
		return err_set(-EIO, "pool %s: the %s is damaged", p->name, what);
	uint8_t *buf = xmalloc(nl * CE_META_BLOCK);
	int err = mos_read_object(p, tree, buf, nl);
	if (err != 0) {
		free(buf);
		return err_set(err, "pool %s: cannot read the %s", p->name, what);
	}
	*out = buf;
	*nleaves = nl;
	return 0;
}

int
recobj_write(ce_pool *p, cowtree *tree, uint64_t *disk_leaves, uint64_t t, uint8_t *buf, uint64_t n,
    size_t recsize, int bptype)
{
	uint64_t per = CE_META_BLOCK / recsize, nleaves = (n + per - 1) / per;
	uint8_t *dirty = xmalloc(nleaves ? nleaves : 1);
	memset(dirty, 1, nleaves ? nleaves : 1);
	int err = 0, did = 0;
	if (nleaves > 0)
		err = mos_sync_object(p, tree, t, buf, dirty, nleaves, bptype, &did);
	if (err == 0 && *disk_leaves > nleaves) {
		ct_acct acct = { 0 };
		err = cowtree_free_range(p, tree, t, nleaves, *disk_leaves, &acct);
	}
	free(dirty);
	if (err == 0)
		*disk_leaves = nleaves;
	return err;
}

volume *
recobj_vol_at(ce_pool *p, uint64_t guid, uint64_t t)
{
	ASSERT_HELD(&p->lock);
	volume *v = ds_by_guid(p, guid); /* not a scan: a sync that rewrites the object costs its records */
	return v != NULL && !v->is_snap && !vol_destroyed_by(v, t) ? v : NULL;
}
