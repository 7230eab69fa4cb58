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
	free(h->slots);
	memset(h, 0, sizeof(*h));
}

void
htab_clear(htab *h)
{
	if (h->cap > 0)
		memset(h->slots, 0, h->cap * sizeof(htab_slot));
	h->count = h->used = 0;
}

static void
htab_resize(htab *h, size_t ncap)
{
	htab n;
	n.cap = ncap;
	n.count = n.used = 0;
	n.slots = xcalloc(ncap, sizeof(htab_slot));
	for (size_t i = 0; i < h->cap; i++) {
		void *v = h->slots[i].val;
		if (v == NULL || v == HTAB_TOMB)
			continue;
		size_t j = hash64(h->slots[i].key) & (ncap - 1);
		while (n.slots[j].val != NULL)
			j = (j + 1) & (ncap - 1);
		n.slots[j] = h->slots[i];
		n.count++;
		n.used++;
	}
	free(h->slots);
	*h = n;
}

void *
htab_get(const htab *h, uint64_t key)
{
	if (h->cap == 0)
		return NULL;
	size_t j = hash64(key) & (h->cap - 1);
	for (;;) {
		void *v = h->slots[j].val;
		if (v == NULL)
			return NULL;
		if (v != HTAB_TOMB && h->slots[j].key == key)
			return v;
		j = (j + 1) & (h->cap - 1);
	}
}

void
htab_prefetch(const htab *h, uint64_t key)
{
	if (h->cap > 0)
		__builtin_prefetch(&h->slots[hash64(key) & (h->cap - 1)]);
}

void *
htab_put(htab *h, uint64_t key, void *val)
{
	VERIFY(val != NULL);
	if ((h->used + 1) * 2 >= h->cap)
		htab_resize(h, h->cap == 0 ? 16 : (h->count * 2 >= h->cap / 2 ? h->cap * 2 : h->cap));
	size_t j = hash64(key) & (h->cap - 1);
	size_t tomb = (size_t)-1;
	for (;;) {
		void *v = h->slots[j].val;
		if (v == NULL)
			break;
		if (v == HTAB_TOMB) {
			if (tomb == (size_t)-1)
				tomb = j;
		} else if (h->slots[j].key == key) {
			h->slots[j].val = val;
			return v;
		}
		j = (j + 1) & (h->cap - 1);
	}
	if (tomb != (size_t)-1) {
		j = tomb;
	} else {
		h->used++;
	}
	h->slots[j].key = key;
	h->slots[j].val = val;
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
		void *v = h->slots[j].val;
		if (v == NULL)
			return NULL;
		if (v != HTAB_TOMB && h->slots[j].key == key) {
			h->slots[j].val = HTAB_TOMB;
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
		void *v = h->slots[i].val;
		if (v != NULL && v != HTAB_TOMB) {
			*key = h->slots[i].key;
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
