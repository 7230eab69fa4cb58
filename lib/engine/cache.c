/*
 * cache.c -- the block cache: decompressed, verified block contents.
 *
 * Owns a bounded map from a block's address (vdev, offset) to its logical
 * bytes, evicting the least recently used entry when over budget.
 *
 * Invariants:
 *   1. Only verified data enters the cache (read after checksum check,
 *      or written by the sync thread from the bytes it checksummed).
 *   2. An entry remembers the first 16 bytes of its block's checksum; a
 *      lookup with a different checksum is a miss and drops the entry, so
 *      a reused address or an in-place rewrite never serves stale data.
 *   3. bytes <= max after every insert (entries larger than max are not
 *      cached at all). Memory use is the budget plus per-entry overhead.
 *   4. An entry read ahead (cache_put_ra) counts once: in ra_hits when a
 *      lookup first finds it (cache_get), or in ra_wasted when it is
 *      dropped (evicted, replaced, stale) before any lookup did.
 */
#include "cache.h"
#include "bufpool.h"
#include "util.h"
#include "vdev.h"

#include <string.h>

struct cache_ent {
	uint64_t key;
	uint8_t ck[16];
	uint32_t size;
	uint8_t ra;           /* read ahead and not yet found by a lookup (invariant 4) */
	cache_ent *prev, *next;
	void *data;
};

#define ENT_OVERHEAD ((uint64_t)sizeof(cache_ent) + 32)

static uint64_t
bp_key(const bp_phys *bp)
{
	return ((uint64_t)bp->bp_vdev << 52) | (bp->bp_offset / CE_SECTOR);
}

void
cache_init(cache *c, uint64_t max_bytes)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	htab_init(&c->map);
	c->max = max_bytes;
}

static void
unlink_ent(cache *c, cache_ent *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void
push_front(cache *c, cache_ent *e)
{
	e->prev = NULL;
	e->next = c->head;
	if (c->head)
		c->head->prev = e;
	c->head = e;
	if (c->tail == NULL)
		c->tail = e;
}

static void
drop_ent(cache *c, cache_ent *e)
{
	ASSERT_HELD(&c->lock);
	VERIFY3U(c->bytes, >=, e->size + ENT_OVERHEAD);
	unlink_ent(c, e);
	htab_del(&c->map, e->key);
	c->bytes -= e->size + ENT_OVERHEAD;
	c->ra_wasted += e->ra; /* invariant 4 */
	bufpool_put(e->data, e->size);
	free(e);
}

void
cache_fini(cache *c)
{
	pthread_mutex_lock(&c->lock); /* nobody else uses it now: for drop_ent's ASSERT_HELD */
	while (c->head)
		drop_ent(c, c->head);
	pthread_mutex_unlock(&c->lock);
	htab_fini(&c->map);
	pthread_mutex_destroy(&c->lock);
}

void
cache_prefetch(cache *c, const bp_phys *bps, size_t n)
{
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < n; i++)
		if (!bp_is_hole(&bps[i]))
			htab_prefetch(&c->map, bp_key(&bps[i]));
	pthread_mutex_unlock(&c->lock);
}

int
cache_has(cache *c, const bp_phys *bp)
{
	pthread_mutex_lock(&c->lock);
	cache_ent *e = htab_get(&c->map, bp_key(bp));
	int hit = e != NULL && memcmp(e->ck, bp->bp_cksum, 16) == 0 && e->size == bp->bp_lsize;
	pthread_mutex_unlock(&c->lock);
	return hit;
}

int
cache_get(cache *c, const bp_phys *bp, void *dst, size_t off, size_t len)
{
	int hit = 0;
	pthread_mutex_lock(&c->lock);
	cache_ent *e = htab_get(&c->map, bp_key(bp));
	if (e != NULL) {
		if (memcmp(e->ck, bp->bp_cksum, 16) == 0 && e->size == bp->bp_lsize &&
		    off + len <= e->size) {
			memcpy(dst, (uint8_t *)e->data + off, len);
			c->ra_hits += e->ra; /* invariant 4 */
			e->ra = 0;
			unlink_ent(c, e);
			push_front(c, e);
			hit = 1;
		} else {
			drop_ent(c, e);
		}
	}
	if (hit)
		c->hits++;
	else
		c->misses++;
	pthread_mutex_unlock(&c->lock);
	return hit;
}

static void
put_owned(cache *c, const bp_phys *bp, void *data, int ra)
{
	uint64_t cost = bp->bp_lsize + ENT_OVERHEAD;
	if (cost > c->max) {
		bufpool_put(data, bp->bp_lsize);
		return;
	}
	cache_ent *e = xmalloc(sizeof(*e));
	e->key = bp_key(bp);
	memcpy(e->ck, bp->bp_cksum, 16);
	e->size = bp->bp_lsize;
	e->data = data;
	e->ra = (uint8_t)ra;
	e->prev = e->next = NULL;
	pthread_mutex_lock(&c->lock);
	cache_ent *old = htab_get(&c->map, e->key);
	if (old != NULL)
		drop_ent(c, old);
	while (c->bytes + cost > c->max && c->tail != NULL)
		drop_ent(c, c->tail);
	htab_put(&c->map, e->key, e);
	push_front(c, e);
	c->bytes += cost;
	VERIFY3U(c->bytes, <=, c->max); /* invariant 3 */
	pthread_mutex_unlock(&c->lock);
}

void
cache_put_owned(cache *c, const bp_phys *bp, void *data)
{
	put_owned(c, bp, data, 0);
}

static void
put_copy(cache *c, const bp_phys *bp, const void *data, int ra)
{
	if (bp->bp_lsize + ENT_OVERHEAD > c->max)
		return;
	void *copy = bufpool_get(bp->bp_lsize);
	memcpy(copy, data, bp->bp_lsize);
	put_owned(c, bp, copy, ra);
}

void
cache_put(cache *c, const bp_phys *bp, const void *data)
{
	put_copy(c, bp, data, 0);
}

void
cache_put_ra(cache *c, const bp_phys *bp, const void *data)
{
	put_copy(c, bp, data, 1);
}
