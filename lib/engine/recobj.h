/*
 * recobj.h -- a pool-wide object of fixed-size records in 16 KiB leaves,
 * rewritten whole in the txg of any change and rooted in the MOS header
 * block (recobj.c): the snapshot policy object (sched.c) and the dataset
 * attribute object (attr.c).
 */
#ifndef CASK_ENGINE_RECOBJ_H
#define CASK_ENGINE_RECOBJ_H

#include "pool_impl.h"

/* Append record r (size bytes) to the growing array *a of *n (capacity *cap). */
void recs_put(void **a, size_t *n, size_t *cap, const void *r, size_t size);
/* Read the count records (recsize each) of the object rooted at root with levels into
 * *out (whole leaves, *nleaves of them; free it); tree gets the root. 0, or -EIO with
 * the error naming `what`. */
int recobj_read(ce_pool *p, cowtree *tree, const bp_phys *root, uint8_t levels, uint64_t count,
    size_t recsize, const char *what, void **out, uint64_t *nleaves);
/* Write the n records in buf (zero-padded to whole leaves) as the object in txg t, freeing
 * the leaves past them; *disk_leaves: the leaves the object has on disk (updated). */
int recobj_write(ce_pool *p, cowtree *tree, uint64_t *disk_leaves, uint64_t t, uint8_t *buf,
    uint64_t n, size_t recsize, int bptype);
/* The volume (not a snapshot) with this guid not destroyed by txg t, or NULL (pool->lock held). */
volume *recobj_vol_at(ce_pool *p, uint64_t guid, uint64_t t);

#endif
