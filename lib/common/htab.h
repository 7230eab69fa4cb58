/*
 * htab.h -- an open-addressing hash map from uint64_t keys to pointers.
 * Not thread-safe: callers hold their own lock. NULL values are not
 * allowed (NULL means "absent").
 */
#ifndef CASK_COMMON_HTAB_H
#define CASK_COMMON_HTAB_H

#include <stddef.h>
#include <stdint.h>

/* A key and its value side by side: a probe touches one cache line. */
typedef struct htab_slot {
	uint64_t key;
	void *val;        /* NULL = empty slot, HTAB_TOMB = deleted */
} htab_slot;

typedef struct htab {
	htab_slot *slots;
	size_t cap;       /* power of two, or 0 */
	size_t count;     /* live entries */
	size_t used;      /* live + tombstones */
} htab;

void htab_init(htab *h);
void htab_fini(htab *h); /* frees the table, not the values */
/* Empty the map but keep its table (for maps refilled at a similar size). */
void htab_clear(htab *h);
void *htab_get(const htab *h, uint64_t key);
/* Start loading the slot key hashes to, so that a later htab_get of it does not wait on memory. */
void htab_prefetch(const htab *h, uint64_t key);
/* Insert or replace; returns the previous value or NULL. */
void *htab_put(htab *h, uint64_t key, void *val);
void *htab_del(htab *h, uint64_t key);
/* Iterate: for (size_t i = 0; htab_next(h, &i, &k, &v);) */
int htab_next(const htab *h, size_t *iter, uint64_t *key, void **val);
/* All keys, sorted ascending, in a new array (caller frees). */
uint64_t *htab_sorted_keys(const htab *h, size_t *n);

#endif
