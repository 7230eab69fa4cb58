/*
 * htab.c -- linear-probing hash map; see htab.h.
 */
#include "htab.h"
#include "util.h"

#include <string.h>

static char htab_tomb_;
#define HTAB_TOMB ((void *)&htab_tomb_)

static inline size_t
hash64(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ull;
	k ^= k >> 33;
	return (size_t)k;
}

void
htab_init(htab *h)
{
	memset(h, 0, sizeof(*h));
}

void
htab_fini(htab *h)
{
	free(h->keys);
	free(h->vals);
	memset(h, 0, sizeof(*h));
}

void
htab_clear(htab *h)
{
	if (h->cap > 0)
		memset(h->vals, 0, h->cap * sizeof(void *));
	h->count = h->used = 0;
}

static void
htab_resize(htab *h, size_t ncap)
{
	htab n;
	n.cap = ncap;
	n.count = n.used = 0;
	n.keys = xmalloc(ncap * sizeof(uint64_t));
	n.vals = xcalloc(ncap, sizeof(void *));
	for (size_t i = 0; i < h->cap; i++) {
		void *v = h->vals[i];
		if (v == NULL || v == HTAB_TOMB)
			continue;
		size_t j = hash64(h->keys[i]) & (ncap - 1);
		while (n.vals[j] != NULL)
			j = (j + 1) & (ncap - 1);
		n.keys[j] = h->keys[i];
		n.vals[j] = v;
		n.count++;
		n.used++;
	}
	free(h->keys);
	free(h->vals);
	*h = n;
}

void *
htab_get(const htab *h, uint64_t key)
{
	if (h->cap == 0)
		return NULL;
	size_t j = hash64(key) & (h->cap - 1);
	for (;;) {
		void *v = h->vals[j];
		if (v == NULL)
			return NULL;
		if (v != HTAB_TOMB && h->keys[j] == key)
			return v;
		j = (j + 1) & (h->cap - 1);
	}
}

void *
htab_put(htab *h, uint64_t key, void *val)
{
	VERIFY(val != NULL);
	if ((h->used + 1) * 4 >= h->cap * 3)
		htab_resize(h, h->cap == 0 ? 16 : (h->count * 2 >= h->cap / 2 ? h->cap * 2 : h->cap));
	size_t j = hash64(key) & (h->cap - 1);
	size_t tomb = (size_t)-1;
	for (;;) {
		void *v = h->vals[j];
		if (v == NULL)
			break;
		if (v == HTAB_TOMB) {
			if (tomb == (size_t)-1)
				tomb = j;
		} else if (h->keys[j] == key) {
			h->vals[j] = val;
			return v;
		}
		j = (j + 1) & (h->cap - 1);
	}
	if (tomb != (size_t)-1) {
		j = tomb;
	} else {
		h->used++;
	}
	h->keys[j] = key;
	h->vals[j] = val;
	h->count++;
	return NULL;
}

void *
htab_del(htab *h, uint64_t key)
{
	if (h->cap == 0)
		return NULL;
	size_t j = hash64(key) & (h->cap - 1);
	for (;;) {
		void *v = h->vals[j];
		if (v == NULL)
			return NULL;
		if (v != HTAB_TOMB && h->keys[j] == key) {
			h->vals[j] = HTAB_TOMB;
			h->count--;
			return v;
		}
		j = (j + 1) & (h->cap - 1);
	}
}

int
htab_next(const htab *h, size_t *iter, uint64_t *key, void **val)
{
	for (size_t i = *iter; i < h->cap; i++) {
		void *v = h->vals[i];
		if (v != NULL && v != HTAB_TOMB) {
			*key = h->keys[i];
			*val = v;
			*iter = i + 1;
			return 1;
		}
	}
	*iter = h->cap;
	return 0;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

uint64_t *
htab_sorted_keys(const htab *h, size_t *n)
{
	uint64_t *keys = xmalloc((h->count ? h->count : 1) * sizeof(uint64_t));
	size_t k = 0, it = 0;
	uint64_t key;
	void *v;
	while (htab_next(h, &it, &key, &v))
		keys[k++] = key;
	VERIFY3U(k, ==, h->count);
	qsort(keys, k, sizeof(uint64_t), cmp_u64);
	*n = k;
	return keys;
}
