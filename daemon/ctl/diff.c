/*
 * diff.c -- vol.diff: the changed ranges between a snapshot and a later one
 * (or the live volume), paged by byte offset.
 */
#include "ctl_impl.h"
#include "util.h"

#include <errno.h>
#include <string.h>

typedef struct dctx {
	const char *from;
	vctx *x;
	json_object *arr;
	uint64_t cursor, limit, n, next;
	int more;
} dctx;

static int
diff_collect(void *arg, uint64_t off, uint64_t len, int kind)
{
	dctx *d = arg;
	if (off + len <= d->cursor)
		return 0;
	if (d->n == d->limit) {
		d->more = 1;
		d->next = off > d->cursor ? off : d->cursor;
		return 1; /* a page is full */
	}
	if (off < d->cursor) {
		len -= d->cursor - off;
		off = d->cursor;
	}
	json_object *ex = json_object_new_object();
	json_object_object_add(ex, "offset", json_object_new_uint64(off));
	json_object_object_add(ex, "length", json_object_new_uint64(len));
	json_object_object_add(ex, "type", json_object_new_string(kind == CE_DIFF_DATA ? "data" : "hole"));
	json_object_array_add(d->arr, ex);
	d->n++;
	return 0;
}

static int
diff_cb(ce_pool *p, void *arg)
{
	dctx *d = arg;
	int err = ce_vol_diff_from(p, d->from, d->x->vol, d->cursor, diff_collect, d);
	if (err == 1)
		err = 0;
	return err ? fail(d->x->e, err, err == -ENOENT ? CE_E_SNAPSHOT_NOT_FOUND : ctl_code(err, 1)) : 0;
}

/*
 * vol.diff {"from": "pool/vol@a" | "@a", "name": "pool/vol@b" | "pool/vol",
 *           "cursor": offset to start at, "limit": extents (default 10000)}
 * -> {"extents": [{"offset", "length", "type": "data"|"hole"}], "next": offset (when more)}
 */
static int
diff_vctx_cb(ce_pool *p, void *arg)
{
	vctx *x = arg;
	const char *from = arg_str(x->args, "from", 1, x->e);
	if (from == NULL)
		return x->e->err;
	char fb[600];
	const char *at = strchr(x->vol, '@');
	if (from[0] == '@')
		snprintf(fb, sizeof(fb), "%.*s%s", at ? (int)(at - x->vol) : (int)strlen(x->vol), x->vol, from);
	else {
		const char *slash = strchr(from, '/');
		if (slash == NULL || (size_t)(slash - from) != strlen(x->pool) ||
		    strncmp(from, x->pool, strlen(x->pool)) != 0)
			return fail(x->e, err_set(-EINVAL, "the base %s must be in pool %s", from, x->pool),
			    CE_E_INVALID_ARGUMENT);
		snprintf(fb, sizeof(fb), "%s", slash + 1);
	}
	json_object *c;
	dctx d = { fb, x, json_object_new_array(), 0, 10000, 0, 0, 0 };
	if (json_object_object_get_ex(x->args, "cursor", &c))
		d.cursor = json_object_get_uint64(c);
	if (json_object_object_get_ex(x->args, "limit", &c) && json_object_get_uint64(c) > 0)
		d.limit = json_object_get_uint64(c);
	int err = diff_cb(p, &d);
	if (err != 0) {
		json_object_put(d.arr);
		return err;
	}
	json_object_object_add(x->res, "extents", d.arr);
	if (d.more)
		json_object_object_add(x->res, "next", json_object_new_uint64(d.next));
	return 0;
}

int op_vol_diff(json_object *a, json_object *r, reqerr *e) { return with_vol(a, r, e, diff_vctx_cb); }
