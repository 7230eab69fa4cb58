/*
 * pipe.h -- the sync pipeline (pipe.c): worker threads that prepare a
 * volume's dirty blocks while the sync thread places and writes them.
 */
#ifndef CASK_ENGINE_PIPE_H
#define CASK_ENGINE_PIPE_H

#include "cowtree.h"
#include "pool_impl.h"

typedef struct sync_pipe sync_pipe;

/*
 * The data blocks of one volume in txg t (the sync thread): datas[k] is
 * the dirty buffer of leaves[k].blkid (sorted) or VOL_HOLE; with
 * compression on, an all-zero block becomes VOL_HOLE too. known (NULL,
 * or per block NULL or its XXH3-128, vol.c invariant 7): a block stored
 * uncompressed takes this hash instead of being hashed again. Fills
 * leaves[k].bp; the buffers stay borrowed until the next wq_flush.
 */
int pipe_write(ce_pool *p, uint64_t t, void **datas, const uint8_t *const *known, ct_leaf *leaves,
    size_t n, uint32_t bs, int comp, int ck);
/* Stop p's workers (pool teardown, after the sync thread stopped). */
void pipe_fini(ce_pool *p);
/* The workers p is configured for (started on its first sync of more than one batch). */
unsigned pipe_threads(const ce_pool *p);

#endif
