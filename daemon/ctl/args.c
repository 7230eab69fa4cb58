/*
 * args.c -- JSON argument helpers shared by the operations: typed
 * arguments, POOL/VOL names, and with_vol (run a callback on a named
 * volume's pool).
 */
#include "ctl_impl.h"
#include "../registry.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

/*
 * The one place a request's string becomes a C string: v must be a JSON
 * string, and its decoded length must be its C-string length -- a string
 * holding "\u0000" would otherwise be cut at the NUL ("POOL/VOL\u0000junk"
 * naming POOL/VOL), so it is a BAD_REQUEST.  `what` names the argument in
 * the error.  Returns the string, or NULL with the error set.
 */
const char *
str_value(json_object *v, const char *what, reqerr *e)
{
	if (v == NULL || !json_object_is_type(v, json_type_string)) {
		fail(e, err_set(-EINVAL, "argument '%s' must be a string", what), CE_E_BAD_REQUEST);
		return NULL;
	}
	const char *s = json_object_get_string(v);
	if (s == NULL || strlen(s) != (size_t)json_object_get_string_len(v)) {
		fail(e, err_set(-EINVAL, "argument '%s' holds a NUL character", what), CE_E_BAD_REQUEST);
		return NULL;
	}
	return s;
}

/* NUL characters in the decoded strings of v and below. */
static size_t
nuls_in_values(json_object *v)
{
	size_t n = 0;
	if (json_object_is_type(v, json_type_string)) {
		const char *s = json_object_get_string(v);
		size_t len = (size_t)json_object_get_string_len(v);
		for (const char *p = s; (p = memchr(p, '\0', len - (size_t)(p - s))) != NULL; p++)
			n++;
	} else if (json_object_is_type(v, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(v); i++)
			n += nuls_in_values(json_object_array_get_idx(v, i));
	} else if (json_object_is_type(v, json_type_object)) {
		json_object_object_foreach(v, k, c) {
			(void)k;
			n += nuls_in_values(c);
		}
	}
	return n;
}

/*
 * Whether an object key of the request held a NUL.  json-c keeps keys as
 * C strings, so "compression\u0000x" arrives as "compression" and no check
 * after parsing can see it; but in JSON a backslash occurs only inside
 * strings, so the payload's \u0000 escapes are exactly the NULs of its keys
 * and values: more escapes than NULs in the values means a key had one.
 */
int
nul_in_keys(const char *raw, size_t len, json_object *req)
{
	size_t escapes = 0;
	for (size_t i = 0; i + 1 < len; i++) {
		if (raw[i] != '\\')
			continue;
		if (raw[i + 1] == 'u' && i + 5 < len && memcmp(raw + i + 2, "0000", 4) == 0)
			escapes++;
		i++; /* the escaped character (a second backslash, too) */
	}
	return escapes > nuls_in_values(req);
}

const char *
arg_str(json_object *args, const char *key, int required, reqerr *e)
{
	json_object *v;
	if (!json_object_object_get_ex(args, key, &v) || json_object_is_type(v, json_type_null)) {
		if (required)
			fail(e, err_set(-EINVAL, "argument '%s' is required", key), CE_E_BAD_REQUEST);
		return NULL;
	}
	return str_value(v, key, e);
}

int
arg_u64(json_object *args, const char *key, int required, uint64_t *out, reqerr *e)
{
	json_object *v;
	if (!json_object_object_get_ex(args, key, &v) || json_object_is_type(v, json_type_null)) {
		if (required)
			return fail(e, err_set(-EINVAL, "argument '%s' is required", key), CE_E_BAD_REQUEST);
		*out = 0;
		return 0;
	}
	if (!json_object_is_type(v, json_type_int))
		return fail(e, err_set(-EINVAL, "argument '%s' must be an integer", key), CE_E_BAD_REQUEST);
	errno = 0;
	int64_t i = json_object_get_int64(v);
	uint64_t u = json_object_get_uint64(v);
	if (i < 0 && u == 0)
		return fail(e, err_set(-EINVAL, "argument '%s' must not be negative", key), CE_E_INVALID_ARGUMENT);
	*out = u;
	return 0;
}

/* An optional boolean argument: absent or null is false; anything but true/false is a BAD_REQUEST. */
int
arg_bool(json_object *args, const char *key, int *out, reqerr *e)
{
	json_object *v;
	*out = 0;
	if (!json_object_object_get_ex(args, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_boolean))
		return fail(e, err_set(-EINVAL, "argument '%s' must be true or false", key), CE_E_BAD_REQUEST);
	*out = json_object_get_boolean(v);
	return 0;
}

/* A "POOL/VOL" name split into its parts. */
int
split_name(const char *full, char *pool, size_t plen, const char **vol, reqerr *e)
{
	const char *slash = strchr(full, '/');
	if (slash == NULL || slash == full || slash[1] == '\0' || (size_t)(slash - full) >= plen ||
	    strchr(slash + 1, '/') != NULL)
		return fail(e, err_set(-EINVAL, "'%s' is not a volume name of the form POOL/VOLUME", full),
		    CE_E_INVALID_ARGUMENT);
	snprintf(pool, plen, "%.*s", (int)(slash - full), full);
	*vol = slash + 1;
	return 0;
}

json_object *
hex_guid(uint64_t g)
{
	char b[20];
	snprintf(b, sizeof(b), "%016" PRIx64, g);
	return json_object_new_string(b);
}

/* logical / allocated, two decimals (1.00 for nothing allocated) */
json_object *
ratio_json(uint64_t logical, uint64_t alloc)
{
	double r = alloc == 0 ? 1.0 : (double)logical / (double)alloc;
	char s[32];
	snprintf(s, sizeof(s), "%.2f", r);
	return json_object_new_double_s(r, s);
}

/* The "new_name" argument, POOL/VOL in the request's own pool: its VOL part, or NULL (error set). */
const char *
new_name_arg(vctx *x)
{
	const char *nn = arg_str(x->args, "new_name", 1, x->e);
	if (nn == NULL)
		return NULL;
	char npool[64];
	const char *nvol;
	if (split_name(nn, npool, sizeof(npool), &nvol, x->e) != 0)
		return NULL;
	if (strcmp(npool, x->pool) != 0) {
		fail(x->e, err_set(-EINVAL, "%s: a volume cannot move to another pool (%s -> %s)", nn, x->pool, npool),
		    CE_E_INVALID_ARGUMENT);
		return NULL;
	}
	return nvol;
}

int
with_vol(json_object *args, json_object *res, reqerr *e, int (*cb)(ce_pool *, void *))
{
	const char *name = arg_str(args, "name", 1, e);
	if (name == NULL)
		return e->err;
	char pool[64];
	vctx x = { pool, NULL, args, res, e };
	if (split_name(name, pool, sizeof(pool), &x.vol, e) != 0)
		return e->err;
	int err = reg_with_pool(pool, cb, &x);
	if (err != 0 && e->err == 0)
		return fail(e, err, ctl_code(err, 0)); /* the pool itself */
	return err;
}

/* "pool" or "pool/rest" (optional argument `arg`) into pool and rest (NULL without a slash). */
int
pool_or_name_arg(json_object *args, const char *arg, char *pool, size_t plen, const char **rest,
    const char **only, reqerr *e)
{
	*only = arg_str(args, arg, 0, e);
	*rest = NULL;
	pool[0] = '\0';
	if (e->err)
		return e->err;
	if (*only != NULL && strchr(*only, '/') != NULL)
		return split_name(*only, pool, plen, rest, e);
	if (*only != NULL && strlen(*only) >= plen) /* never cut a name to match another pool */
		return fail(e, err_set(-ENOENT, "pool %s does not exist", *only), CE_E_POOL_NOT_FOUND);
	if (*only != NULL)
		snprintf(pool, plen, "%s", *only);
	return 0;
}
