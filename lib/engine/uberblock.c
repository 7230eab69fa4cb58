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
 *      and a crash tears at most the one sector in flight, so a slot whose
 *      copies are all damaged (none valid, none still all zeros) while one
 *      of them names a newer txg of this pool is damage after that txg
 *      committed, not an interrupted commit (that leaves the other copies
 *      old: valid, or zeros in a slot never used):
 *      uberblock_newer_damaged finds it, and import refuses to go back
 *      silently (pool.c).
 *   5. Pool create zeroes both rings (uberblock_ring_clear) before the
 *      first commit, so a slot never written since is all zeros and
 *      anything else that fails its checksum is damage or a torn commit
 *      (cask-debug check tells them apart from empty slots).
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

static int
all_zero(const void *b, size_t n)
{
	const uint8_t *p = b;
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return 0;
	return 1;
}

int
uberblock_newer_damaged(vdev *vds, unsigned nvdevs, uint64_t pool_guid, uint64_t best_txg,
    uint64_t *txg, uint64_t *time_ns, uint64_t *slots)
{
	uberblock_phys *ring = xmalloc_aligned((size_t)CE_UB_SLOTS * CE_UB_SIZE);
	uint64_t claim[CE_UB_SLOTS] = { 0 }, when[CE_UB_SLOTS] = { 0 };
	int intact[CE_UB_SLOTS] = { 0 }; /* a copy is valid, or all zeros (never written) */
	for (unsigned v = 0; v < nvdevs; v++) {
		for (int copy = 0; copy < 2; copy++) {
			uint64_t off = vdev_label_off(vds[v].asize, copy) + CE_UB_RING_OFF;
			if (vdev_read(&vds[v], ring, (size_t)CE_UB_SLOTS * CE_UB_SIZE, off) != 0)
				continue;
			for (unsigned s = 0; s < CE_UB_SLOTS; s++) {
				const uberblock_phys *u = &ring[s];
				if (uberblock_valid(u, pool_guid) || all_zero(u, CE_UB_SIZE)) {
					intact[s] = 1;
					continue;
				}
				/* the header of a damaged copy, unverified: only a consistent claim counts */
				if (u->ub_magic == UB_MAGIC && u->ub_pool_guid == pool_guid &&
				    u->ub_txg > best_txg && u->ub_txg < best_txg + CE_UB_SLOTS &&
				    u->ub_txg % CE_UB_SLOTS == s && u->ub_txg > claim[s]) {
					claim[s] = u->ub_txg;
					when[s] = u->ub_timestamp;
				}
			}
		}
	}
	free(ring);
	int found = 0;
	*slots = 0;
	for (unsigned s = 0; s < CE_UB_SLOTS; s++) {
		if (intact[s] || claim[s] == 0)
			continue;
		*slots |= 1ull << s;
		if (found && claim[s] <= *txg)
			continue;
		*txg = claim[s];
		*time_ns = when[s];
		found = 1;
	}
	return found;
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
uberblock_ring_clear(vdev *vd)
{
	size_t len = (size_t)CE_UB_SLOTS * CE_UB_SIZE;
	uint8_t *zero = xmalloc_aligned(len);
	memset(zero, 0, len);
	int err = 0;
	for (int copy = 0; copy < 2 && err == 0; copy++) {
		struct iovec iov = { zero, len };
		err = vdev_writev(vd, &iov, 1, slot_off(vd, copy, 0));
	}
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
uberblock_find_best(vdev *vds, unsigned nvdevs, uint64_t pool_guid, uberblock_phys *out)
{
	uberblock_phys *ring = xmalloc_aligned((size_t)CE_UB_SLOTS * CE_UB_SIZE);
	uberblock_phys best;
	int found = 0;
	memset(&best, 0, sizeof(best));
	for (unsigned v = 0; v < nvdevs; v++) {
		for (int copy = 0; copy < 2; copy++) {
			uint64_t off = vdev_label_off(vds[v].asize, copy) + CE_UB_RING_OFF;
			if (vdev_read(&vds[v], ring, (size_t)CE_UB_SLOTS * CE_UB_SIZE, off) != 0)
				continue;
			for (unsigned s = 0; s < CE_UB_SLOTS; s++) {
				if (uberblock_valid(&ring[s], pool_guid) &&
				    (!found || ring[s].ub_txg > best.ub_txg)) {
					best = ring[s];
					found = 1;
				}
			}
		}
	}
	free(ring);
	if (!found)
		return -ENOENT;
	*out = best;
	return 0;
}
