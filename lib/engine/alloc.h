#ifndef CASK_ENGINE_ALLOC_H
#define CASK_ENGINE_ALLOC_H
#include <pthread.h>
#include <stdint.h>
#include "phys.h"

typedef struct alloc_vdev {
	uint64_t nsectors;
	uint64_t nwords;
	uint64_t *cur;       /* state of the txg being synced (what goes to disk) */
	uint64_t *avail;     /* cur plus frees not yet committed: what may be handed out */
	uint64_t ncur;       /* bits set in cur */
	uint64_t navail;     /* bits set in avail */
	uint64_t rotor;      /* next-fit cursor, in sectors */
	uint8_t *leaf_dirty; /* per CE_META_BLOCK of cur: changed since last written */
	uint64_t nleaves;
	uint64_t sm_bytes;   /* bytes of the bitmap object (nleaves * CE_META_BLOCK) */
} alloc_vdev;

typedef struct alloc_extent {
	uint32_t vdev;
	uint64_t sector;
	uint64_t count;
} alloc_extent;

typedef struct alloc {
	pthread_mutex_t lock;
	alloc_vdev *v;
	unsigned nvdevs;
	unsigned vrotor;          /* vdev that gets the next allocation */
	unsigned log_vrotor;      /* vdev that gets the next intent log data written in place */
	uint64_t vrotor_left;     /* sectors left before moving to the next vdev */
	alloc_extent *deferred;   /* frees to hand back after the txg commits */
	size_t ndeferred, capdeferred;
	uint64_t total;           /* sectors in all data areas */
	uint64_t charged;         /* sectors promised to dirty data not yet allocated */
	uint64_t reserve;         /* sectors only metadata, trim and destroy may use */
} alloc;

void alloc_init(alloc *a, unsigned nvdevs, const uint64_t *nsectors);
void alloc_fini(alloc *a);
/* Load a vdev's bitmap object contents (sm_bytes bytes) at import. 0 or -EIO. */
int alloc_load(alloc *a, unsigned v, const void *bitmap, uint64_t len);
/* Allocate bytes (multiple of a sector) for the syncing txg. */
int alloc_alloc(alloc *a, uint64_t bytes, uint32_t *vdi, uint64_t *offset);
/* Free a block; immediate when it was never committed (born in this txg). */
void alloc_free(alloc *a, uint32_t vdi, uint64_t offset, uint64_t bytes, int immediate);
/* Intent log data in place: sectors held in `avail` only (never in a bitmap). */
int alloc_log_claim(alloc *a, uint64_t bytes, uint32_t *vdi, uint64_t *offset);
int alloc_log_claim_at(alloc *a, uint32_t vdi, uint64_t offset, uint64_t bytes);
void alloc_log_release(alloc *a, uint32_t vdi, uint64_t offset, uint64_t bytes);
/* The txg committed: deferred frees become allocatable. */
void alloc_commit_done(alloc *a);
/* Promise space to dirty data; -ENOSPC when it would eat into the reserve. */
int alloc_charge(alloc *a, uint64_t sectors, int may_use_reserve);
void alloc_uncharge(alloc *a, uint64_t sectors);
uint64_t alloc_free_sectors(alloc *a);   /* what new writes may still get */
/* Room for `sectors` of records (new snapshots) that may use the reserve, but not its last half. */
int alloc_meta_room(alloc *a, uint64_t sectors);
uint64_t alloc_used_sectors(alloc *a);   /* committed allocation */
int alloc_test(const alloc *a, uint32_t vdi, uint64_t sector); /* bit in cur */
#endif
