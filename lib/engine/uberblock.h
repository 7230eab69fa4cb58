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
/*
 * Evidence that a txg newer than best_txg was committed and its
 * uberblock is now damaged in every copy: a ring slot none of whose
 * copies (both label regions of every vdev) is valid or zeros, where a damaged
 * copy still names this pool and a txg in (best_txg, best_txg + 64) that
 * belongs in that slot. *txg and *time_ns get the newest such claim and
 * *slots a bit per slot that holds one; returns 1 when there is one.
 */
int uberblock_newer_damaged(vdev *vds, unsigned nvdevs, uint64_t pool_guid, uint64_t best_txg,
    uint64_t *txg, uint64_t *time_ns, uint64_t *slots);
/* Zero slot `slot` in both label regions of every vdev (a rewind accepted its loss). */
int uberblock_slot_clear(vdev *vds, unsigned nvdevs, unsigned slot);
/* Zero the ring of both label regions of vd (pool create: nothing left of an earlier owner). */
int uberblock_ring_clear(vdev *vd);
/* Read one slot (for cask-debug). 1 valid, 0 invalid, -errno IO error. */
int uberblock_read_slot(vdev *vd, int copy, unsigned slot, uint64_t pool_guid, uberblock_phys *out);
#endif
