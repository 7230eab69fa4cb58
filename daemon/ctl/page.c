/*
 * page.c -- paged listings.
 *
 * Every item has a string key whose order is the listing's order; a page is
 * the items after `cursor` (an earlier reply's "next"), at most `limit` of
 * them (default 1000, at most 5000: a reply stays well under the 1 MiB
 * frame), with "next" when more follow. The cursor is a key, not an index,
 * so items created or destroyed between pages neither repeat nor shift the
 * others.
 */
#include "ctl_impl.h"
#include "../registry.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void
page_put(page_list *pl, const char *key, json_object *it)
{
	if (pl->n == pl->cap) {
		pl->cap = pl->cap ? 2 * pl->cap : 64;
		pl->v = xrealloc(pl->v, pl->cap * sizeof(*pl->v));
	}
	snprintf(pl->v[pl->n].key, KEY_LEN, "%s", key);
	pl->v[pl->n++].it = it;
}

int
page_params(json_object *args, const char **cursor, uint64_t *limit, reqerr *e)
{
	json_object *c;
	*cursor = arg_str(args, "cursor", 0, e);
	if (e->err)
		return e->err;
	*limit = json_object_object_get_ex(args, "limit", &c) ? json_object_get_uint64(c) : 1000;
	if (*limit == 0 || *limit > 5000)
		*limit = *limit == 0 ? 1000 : 5000;
	return 0;
}

static int
page_item_cmp(const void *a, const void *b)
{
	return strcmp(((const page_item *)a)->key, ((const page_item *)b)->key);
}

/* The page args asks for, as a JSON array (and "next" into res); takes the items. */
json_object *
page_of(page_list *pl, json_object *args, json_object *res)
{
	const char *cursor;
	uint64_t limit, taken = 0;
	reqerr e = { 0, CE_E_NONE, NULL };
	page_params(args, &cursor, &limit, &e); /* checked by the caller (page_params before page_of) */
	json_object *page = json_object_new_array();
	if (pl->n > 1)
		qsort(pl->v, pl->n, sizeof(*pl->v), page_item_cmp);
	const char *last = NULL;
	size_t i = 0;
	for (; i < pl->n; i++) {
		if (cursor != NULL && strcmp(pl->v[i].key, cursor) <= 0)
			continue;
		if (taken == limit) {
			json_object_object_add(res, "next", json_object_new_string(last));
			break;
		}
		json_object_array_add(page, json_object_get(pl->v[i].it));
		last = pl->v[i].key;
		taken++;
	}
	for (i = 0; i < pl->n; i++)
		json_object_put(pl->v[i].it);
	free(pl->v);
	memset(pl, 0, sizeof(*pl));
	return page;
}

static int
str_ptr_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void
key_of_name(const char *full, char *buf, size_t len)
{
	const char *slash = strchr(full, '/');
	if (slash == NULL)
		snprintf(buf, len, "%s", full);
	else
		snprintf(buf, len, "%.*s\x01%s", (int)(slash - full), full, slash + 1);
}

/*
 * Add a pool's n items to the listing: key(x, items, i, buf) gives item
 * i's key, make(x, items, i) its JSON. Only the items that can be on the
 * page are made (after the cursor, and of those the limit+1 smallest: the
 * page and whether a next one follows): a listing of 10,000 snapshots
 * answered in pages of 1,000 would otherwise build 10,000 objects a page.
 */
void
sl_add(sl *x, const void *items, size_t n, void (*key)(const sl *, const void *, size_t, char *),
    json_object *(*make)(const sl *, const void *, size_t))
{
	char (*keys)[KEY_LEN] = xmalloc((n ? n : 1) * KEY_LEN);
	const char **after = xmalloc((n ? n : 1) * sizeof(*after));
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		key(x, items, i, keys[i]);
		if (x->cursor == NULL || strcmp(keys[i], x->cursor) > 0)
			after[m++] = keys[i];
	}
	if (m > x->limit + 1) { /* keep the limit+1 smallest */
		qsort(after, m, sizeof(*after), str_ptr_cmp);
		m = x->limit + 1;
	}
	for (size_t k = 0; k < m; k++)
		page_put(x->items, after[k], make(x, items, (size_t)(after[k] - keys[0]) / KEY_LEN));
	free(after);
	free(keys);
}

/*
 * Run cb on every pool, or only on pool `only`, which must exist; the
 * callbacks add their items (sl_add), and the page args asks for goes into
 * res as `key`. A named pool's error fails the call (an unavailable pool,
 * or with `strict` a volume that does not exist); listing every pool skips
 * the unavailable ones (pool.list shows them).
 */
int
list_pools_paged(const char *only, const char *vol, int strict, int (*cb)(ce_pool *, void *),
    json_object *res, const char *key, reqerr *e, json_object *args)
{
	page_list items = { 0 };
	char **names;
	size_t n;
	const char *cursor;
	uint64_t limit;
	if (page_params(args, &cursor, &limit, e) != 0)
		return e->err;
	reg_pool_names(&names, &n);
	int found = only == NULL, rc = 0;
	for (size_t i = 0; i < n; i++) {
		if (rc == 0 && (only == NULL || strcmp(only, names[i]) == 0)) {
			sl x = { names[i], vol, &items, e, NULL, 0 };
			x.cursor = cursor;
			x.limit = limit;
			found = 1;
			int err = reg_with_pool(names[i], cb, &x);
			if ((strict || only != NULL) && err != 0)
				rc = e->err ? e->err : fail(e, err, ctl_code(err, 0));
		}
		free(names[i]);
	}
	free(names);
	if (rc == 0 && !found)
		rc = fail(e, err_set(-ENOENT, "pool %s does not exist", only), CE_E_POOL_NOT_FOUND);
	json_object *page = page_of(&items, args, res);
	if (rc != 0) {
		json_object_put(page);
		return rc;
	}
	json_object_object_add(res, key, page);
	return 0;
}
