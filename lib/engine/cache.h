#ifndef CASK_ENGINE_CACHE_H
#define CASK_ENGINE_CACHE_H
#include <pthread.h>
#include <stdint.h>
#include "htab.h"
#include "phys.h"

typedef struct cache_ent cache_ent;
typedef struct cache {
	pthread_mutex_t lock;
	htab map;             /* block address -> cache_ent */
	cache_ent *head, *tail; /* most / least recently used */
	uint64_t bytes, max;
	uint64_t hits, misses;
	uint64_t ra_hits, ra_wasted; /* read-ahead blocks (cache_put_ra): found by a reader, dropped unread */
} cache;

void cache_init(cache *c, uint64_t max_bytes);
void cache_fini(cache *c);
/* 1: bp's verified bytes are cached (no copy, no LRU change). */
int cache_has(cache *c, const bp_phys *bp);
/* Copy len bytes at off of the cached block for bp into dst; 1 hit, 0 miss. */
int cache_get(cache *c, const bp_phys *bp, void *dst, size_t off, size_t len);
/* A batch of lookups is coming (blk_read_many): load their hash slots in parallel first. */
void cache_prefetch(cache *c, const bp_phys *bps, size_t n);
/* Insert the logical contents of bp's block. cache_put copies; cache_put_owned
 * takes ownership of a bufpool buffer of bp_lsize bytes. */
void cache_put(cache *c, const bp_phys *bp, const void *data);
void cache_put_owned(cache *c, const bp_phys *bp, void *data);
/* cache_put for read-ahead: counted in ra_hits when a reader first finds it, else in ra_wasted when dropped. */
void cache_put_ra(cache *c, const bp_phys *bp, const void *data);
#endif
