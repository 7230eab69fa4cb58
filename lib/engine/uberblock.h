#ifndef CASK_ENGINE_UBERBLOCK_H
#define CASK_ENGINE_UBERBLOCK_H
#include "phys.h"
#include "vdev.h"

void uberblock_seal(uberblock_phys *ub);
int uberblock_valid(const uberblock_phys *ub, uint64_t pool_guid);
/* Write ub into its ring slot in both label regions of every vdev. */
int uberblock_write(vdev *vds, unsigned nvdevs, const uberblock_phys *ub);
/*
 * Scan every ring slot of every label copy of every vdev; *out = the
 * valid uberblock with the highest txg. -ENOENT when there is none.
 */
int uberblock_find_best(vdev *vds, unsigned nvdevs, uint64_t pool_guid, uberblock_phys *out);
/* A copy that names this pool (magic, pool guid) but fails its checksum. */
int uberblock_damaged_ours(const uberblock_phys *ub, uint64_t pool_guid);
/*
 * Evidence that a txg newer than the best one was committed and its
 * uberblock is now damaged in every copy (invariant 4): slots none of
 * whose copies (both label regions of every vdev) is anything but a
 * damaged uberblock of this pool, one naming a txg in (best, best + 64)
 * that belongs in that slot.
 */
typedef struct ub_newer {
	uint64_t txg;      /* the newest such claim (0: none) */
	uint64_t time_ns;  /* when its damaged record says it committed */
	uint64_t slots;    /* a bit per slot that holds one */
} ub_newer;
/* uberblock_find_best, and (newer != NULL) the evidence above, in one read of the rings. */
int uberblock_scan(vdev *vds, unsigned nvdevs, uint64_t pool_guid, uberblock_phys *out, ub_newer *newer);
/* Zero slot `slot` in both label regions of every vdev (a rewind accepted its loss). */
int uberblock_slot_clear(vdev *vds, unsigned nvdevs, unsigned slot);
/* Read one slot (for cask-debug). 1 valid, 0 invalid, -errno IO error. */
int uberblock_read_slot(vdev *vd, int copy, unsigned slot, uint64_t pool_guid, uberblock_phys *out);
#endif
