/*
 * uberblock.c -- the commit record of a transaction group.
 *
 * Owns uberblock_phys and the ring of 64 slots in each label region
 * (docs/on-disk-format.md §1.2). Writing txg N's uberblock into slot
 * N % 64 is the atomic commit point of txg N: before it, import finds
 * txg N-1 (or older); after it, txg N.
 *
 * Invariants:
 *   1. An uberblock is written only after everything it references is
 *      on stable storage (txg.c flushes before and after).
 *   2. A torn or stale slot is detected by its checksum and skipped;
 *      older slots still hold earlier committed txgs.
 *   3. Slot writes are whole 4 KiB sectors, so a torn write cannot damage
 *      a neighbouring slot.
 *   4. A commit writes the uberblock to every copy before the final flush,
 *      and a crash tears at most the one sector in flight. A copy that
 *      names this pool (magic and pool guid) but fails its checksum is a
 *      damaged uberblock of ours; anything else in a slot (a valid one,
 *      zeros, whatever a file held before the pool) is old content. So a
 *      slot whose copies are all damaged ones of ours, one naming a newer
 *      txg, is damage after that txg committed, not an interrupted commit
 *      (which leaves the other copies old): uberblock_scan reports it, and
 *      import refuses to go back silently (pool.c).
 */
#include "uberblock.h"
#include "checksum.h"
#include "util.h"

#include <errno.h>
#include <string.h>

void
uberblock_seal(uberblock_phys *ub)
{
	checksum_compute(CE_CK_XXH128, ub, CE_CKSUM_OFF, ub->ub_cksum);
}

int
uberblock_valid(const uberblock_phys *ub, uint64_t pool_guid)
{
	return ub->ub_magic == UB_MAGIC && ub->ub_version >= CE_FORMAT_VERSION_MIN &&
	    ub->ub_version <= CE_FORMAT_VERSION &&
	    checksum_verify(CE_CK_XXH128, ub, CE_CKSUM_OFF, ub->ub_cksum) &&
	    ub->ub_pool_guid == pool_guid && ub->ub_txg != 0;
}

static uint64_t
slot_off(const vdev *vd, int copy, unsigned slot)
{
	return vdev_label_off(vd->asize, copy) + CE_UB_RING_OFF + (uint64_t)slot * CE_UB_SIZE;
}

int
uberblock_write(vdev *vds, unsigned nvdevs, const uberblock_phys *ub)
{
	VERIFY(uberblock_valid(ub, ub->ub_pool_guid)); /* sealed: a reader can tell it from a torn slot */
	ASSERT(CE_UB_SIZE % CE_SECTOR == 0);           /* invariant 3: whole sectors */
	uberblock_phys *buf = xmalloc_aligned(CE_UB_SIZE);
	unsigned slot = (unsigned)(ub->ub_txg % CE_UB_SLOTS);
	int err = 0;
	memcpy(buf, ub, CE_UB_SIZE);
	for (unsigned v = 0; v < nvdevs && err == 0; v++) {
		for (int copy = 0; copy < 2 && err == 0; copy++) {
			struct iovec iov = { buf, CE_UB_SIZE };
			err = vdev_writev(&vds[v], &iov, 1, slot_off(&vds[v], copy, slot));
		}
	}
	free(buf);
	return err;
}

int
uberblock_slot_clear(vdev *vds, unsigned nvdevs, unsigned slot)
{
	uint8_t *zero = xmalloc_aligned(CE_UB_SIZE);
	memset(zero, 0, CE_UB_SIZE);
	int err = 0;
	for (unsigned v = 0; v < nvdevs && err == 0; v++)
		for (int copy = 0; copy < 2 && err == 0; copy++) {
			struct iovec iov = { zero, CE_UB_SIZE };
			err = vdev_writev(&vds[v], &iov, 1, slot_off(&vds[v], copy, slot));
		}
	for (unsigned v = 0; v < nvdevs && err == 0; v++)
		err = vdev_flush(&vds[v]);
	free(zero);
	return err;
}

int
uberblock_read_slot(vdev *vd, int copy, unsigned slot, uint64_t pool_guid, uberblock_phys *out)
{
	uberblock_phys *buf = xmalloc_aligned(CE_UB_SIZE);
	int err = vdev_read(vd, buf, CE_UB_SIZE, slot_off(vd, copy, slot));
	if (err == 0) {
		memcpy(out, buf, CE_UB_SIZE);
		err = uberblock_valid(buf, pool_guid);
	}
	free(buf);
	return err;
}

int
uberblock_damaged_ours(const uberblock_phys *ub, uint64_t pool_guid)
{
	return ub->ub_magic == UB_MAGIC && ub->ub_pool_guid == pool_guid &&
	    !checksum_verify(CE_CK_XXH128, ub, CE_CKSUM_OFF, ub->ub_cksum);
}

int
uberblock_scan(vdev *vds, unsigned nvdevs, uint64_t pool_guid, uberblock_phys *out, ub_newer *newer)
{
	uberblock_phys *ring = xmalloc_aligned((size_t)CE_UB_SLOTS * CE_UB_SIZE);
	uberblock_phys best;
	uint64_t claim[CE_UB_SLOTS] = { 0 }, when[CE_UB_SLOTS] = { 0 };
	int intact[CE_UB_SLOTS] = { 0 }; /* a copy is not a damaged uberblock of this pool */
	int found = 0;
	memset(&best, 0, sizeof(best));
	for (unsigned v = 0; v < nvdevs; v++) {
		for (int copy = 0; copy < 2; copy++) {
			uint64_t off = vdev_label_off(vds[v].asize, copy) + CE_UB_RING_OFF;
			if (vdev_read(&vds[v], ring, (size_t)CE_UB_SLOTS * CE_UB_SIZE, off) != 0)
				continue;
			for (unsigned s = 0; s < CE_UB_SLOTS; s++) {
				const uberblock_phys *u = &ring[s];
				if (!uberblock_damaged_ours(u, pool_guid)) {
					intact[s] = 1;
					if (uberblock_valid(u, pool_guid) && (!found || u->ub_txg > best.ub_txg)) {
						best = *u;
						found = 1;
					}
				} else if (u->ub_txg % CE_UB_SLOTS == s && u->ub_txg > claim[s]) {
					/* the header of a damaged copy, unverified: kept only if consistent */
					claim[s] = u->ub_txg;
					when[s] = u->ub_timestamp;
				}
			}
		}
	}
	free(ring);
	if (!found)
		return -ENOENT;
	*out = best;
	if (newer != NULL) {
		memset(newer, 0, sizeof(*newer));
		for (unsigned s = 0; s < CE_UB_SLOTS; s++) {
			if (intact[s] || claim[s] <= best.ub_txg || claim[s] >= best.ub_txg + CE_UB_SLOTS)
				continue;
			newer->slots |= 1ull << s;
			if (claim[s] > newer->txg) {
				newer->txg = claim[s];
				newer->time_ns = when[s];
			}
		}
	}
	return 0;
}

int
uberblock_find_best(vdev *vds, unsigned nvdevs, uint64_t pool_guid, uberblock_phys *out)
{
	return uberblock_scan(vds, nvdevs, pool_guid, out, NULL);
}
