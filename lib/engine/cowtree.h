#ifndef CASK_ENGINE_COWTREE_H
#define CASK_ENGINE_COWTREE_H
#include <stddef.h>
#include <stdint.h>
#include "phys.h"

struct ce_pool;

typedef struct cowtree {
	bp_phys root;
	uint8_t levels;    /* 1: root is the only leaf */
	uint8_t leaf_type; /* BP_DATA, BP_MOS, BP_BITMAP */
	uint8_t ind_comp;  /* compression of indirect blocks */
	uint8_t cktype;    /* checksum of indirect blocks */
	uint32_t bsize;    /* leaf size */
} cowtree;

typedef struct ct_acct {
	int64_t used;    /* allocated bytes owned by the tree */
	int64_t logical; /* logical bytes of non-hole data leaves */
	/*
	 * Snapshots: a released block born at or before keep_txg is still
	 * referenced by a snapshot; it goes to kill() (the dead list) instead
	 * of being freed. kill NULL: every released block is freed.
	 */
	void (*kill)(void *arg, const bp_phys *bp);
	void *kill_arg;
	uint64_t keep_txg;
	int64_t written; /* change of the bytes born after keep_txg (with kill set) */
} ct_acct;

typedef struct ct_leaf {
	uint64_t blkid;
	bp_phys bp;
} ct_leaf;

uint64_t cowtree_capacity(uint8_t levels);
uint8_t cowtree_levels_for(uint64_t nblocks);
/* The leaf pointer for blkid (a hole beyond the tree's reach). */
int cowtree_lookup(struct ce_pool *p, const cowtree *t, uint64_t blkid, bp_phys *out);
/* Leaf pointers for blkids [first, first + n): one indirect-block read per 256. */
int cowtree_lookup_range(struct ce_pool *p, const cowtree *t, uint64_t first, size_t n, bp_phys *out);
/* Replace leaf pointers (sorted by blkid, unique) and rewrite their ancestors. */
int cowtree_apply(struct ce_pool *p, cowtree *t, uint64_t txg, const ct_leaf *leaves,
    size_t n, ct_acct *acct);
/* Punch leaves [start, end) to holes, freeing whole subtrees where possible. */
int cowtree_free_range(struct ce_pool *p, cowtree *t, uint64_t txg, uint64_t start,
    uint64_t end, ct_acct *acct);
/* Add levels on top so the tree can address more leaves. */
int cowtree_grow(struct ce_pool *p, cowtree *t, uint64_t txg, uint8_t levels, ct_acct *acct);

/*
 * Visit every non-hole block pointer, parents before children. err is 0,
 * or the -errno from reading that indirect block (its children are then
 * not visited). A non-zero return from fn stops the walk.
 */
typedef int (*ct_visit_fn)(void *arg, const bp_phys *bp, int level, uint64_t first_blkid, int err);
int cowtree_walk(struct ce_pool *p, const cowtree *t, ct_visit_fn fn, void *arg);
/* The same, skipping every block born at or before min_birth (and so its whole subtree). */
int cowtree_walk_after(struct ce_pool *p, const cowtree *t, uint64_t min_birth, ct_visit_fn fn,
    void *arg);
/*
 * What changed after min_birth, in leaf order: fn(first, 1, bp) for a data
 * leaf born after it, and with holes set fn(first, n, NULL) for a hole
 * pointer (at any level, covering n leaves) born after it. Unchanged
 * subtrees are skipped without being read. An unreadable indirect block
 * stops the walk with its error.
 */
typedef int (*ct_diff_fn)(void *arg, uint64_t first, uint64_t n, const bp_phys *bp);
int cowtree_diff(struct ce_pool *p, const cowtree *t, uint64_t min_birth, int holes, ct_diff_fn fn,
    void *arg);
/* The same from leaf `start` on: subtrees wholly before it are not visited (a hole may begin before it). */
int cowtree_diff_from(struct ce_pool *p, const cowtree *t, uint64_t min_birth, int holes, uint64_t start,
    ct_diff_fn fn, void *arg);
#endif
