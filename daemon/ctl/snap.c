/*
 * snap.c -- the snapshot operations: snap.create, destroy, rename, hold,
 * release, holds, list; vol.rollback, clone and promote. Batch operations
 * answer all or nothing and name each refused name with its own code.
 */
#include "ctl_impl.h"
#include "../log.h"
#include "../registry.h"
#include "util.h"
#include "../vio_impl.h"
#include "../repl/ctrl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static json_object *
snap_json(const char *pool, const ce_snap_info *si)
{
	char full[600];
	snprintf(full, sizeof(full), "%s/%s", pool, si->name);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "name", json_object_new_string(full));
	snprintf(full, sizeof(full), "%s/%s", pool, si->volume);
	json_object_object_add(o, "volume", json_object_new_string(full));
	json_object_object_add(o, "guid", hex_guid(si->guid));
	json_object_object_add(o, "txg", json_object_new_uint64(si->txg));
	json_object_object_add(o, "creation", json_object_new_uint64(si->ctime));
	json_object_object_add(o, "size", json_object_new_uint64(si->size));
	json_object_object_add(o, "referenced", json_object_new_uint64(si->referenced));
	json_object_object_add(o, "logical", json_object_new_uint64(si->logical));
	json_object_object_add(o, "refcompressratio", ratio_json(si->logical, si->referenced));
	json_object_object_add(o, "used", json_object_new_uint64(si->used));
	json_object_object_add(o, "logicalused", json_object_new_uint64(si->logicalused));
	json_object_object_add(o, "holds", json_object_new_uint64(si->holds));
	json_object_object_add(o, "clones", json_object_new_uint64(si->clones));
	json_object_object_add(o, "automatic", json_object_new_boolean(si->automatic));
	return o;
}

typedef struct sctx {
	const char **names;   /* VOL@SNAP within the pool */
	const char **full;    /* as the client named them */
	size_t n;
	const char *tag;      /* hold and release */
	reqerr *e;
} sctx;

/*
 * "what: name: why; name: why" from per-name errors, or the engine's
 * message; and each refused name with its errno, code and reason in the
 * response's "errors" array.
 */
static int
per_name_fail(sctx *x, int err, const int *errs, const char *what, const char *(*why)(int),
    int (*code)(int))
{
	char msg[2048];
	size_t at = (size_t)snprintf(msg, sizeof(msg), "%s:", what);
	int any = 0;
	json_object *items = json_object_new_array();
	for (size_t i = 0; i < x->n; i++) {
		if (errs[i] == 0)
			continue;
		any = 1;
		if (at < sizeof(msg))
			at += (size_t)snprintf(msg + at, sizeof(msg) - at, " %s: %s;", x->full[i], why(errs[i]));
		json_object *it = json_object_new_object();
		json_object_object_add(it, "name", json_object_new_string(x->full[i]));
		json_object_object_add(it, "errno", json_object_new_int(-errs[i]));
		json_object_object_add(it, "code", json_object_new_string(ctl_wire(code(errs[i]))));
		json_object_object_add(it, "message", json_object_new_string(why(errs[i])));
		json_object_array_add(items, it);
	}
	if (any) {
		json_object_put(x->e->items);
		x->e->items = items;
	} else {
		json_object_put(items);
	}
	if (any && at < sizeof(msg))
		msg[at - 1] = '\0';
	else if (!any) /* the call's own message: copied first (formatting the error buffer into itself lost it) */
		snprintf(msg, sizeof(msg), "%s", ce_errmsg());
	err_setc(ce_errcode_of(err), err, "%s", msg);
	return err;
}

static int
create_code(int e)
{
	return e == -ENOENT ? CE_E_VOLUME_NOT_FOUND : e == -EEXIST ? CE_E_SNAPSHOT_EXISTS : e == -EBUSY ? CE_E_BUSY :
	    CE_E_INVALID_ARGUMENT;
}

static int
hold_code(int e)
{
	return e == -ENOENT ? CE_E_SNAPSHOT_NOT_FOUND : e == -EEXIST ? CE_E_HOLD_EXISTS : e == -EBUSY ? CE_E_BUSY :
	    CE_E_INVALID_ARGUMENT;
}

static int
release_code(int e)
{
	return e == -ENOENT ? CE_E_HOLD_NOT_FOUND : e == -EBUSY ? CE_E_BUSY : CE_E_INVALID_ARGUMENT;
}

static int
destroy_code(int e)
{
	return e == -ENOENT ? CE_E_SNAPSHOT_NOT_FOUND : e == -EBUSY ? CE_E_BUSY : CE_E_INVALID_ARGUMENT;
}

static const char *
create_why(int e)
{
	return e == -ENOENT ? "no such volume" : e == -EEXIST ? "exists (or named twice)" : "bad snapshot name";
}

static const char *
hold_why(int e)
{
	return e == -ENOENT ? "no such snapshot" : e == -EEXIST ? "already held with this tag" :
	    e == -EBUSY ? "still being taken" : "named twice";
}

static const char *
release_why(int e)
{
	return e == -ENOENT ? "no such snapshot or no hold with this tag" : e == -EBUSY ?
	    "still being taken" : "named twice";
}

/*
 * Rule 6: a snapshot operation on a replicated volume this caskd controls
 * goes through the sequence (repl_ctrl_snap: one seq on every in-sync
 * replica); one on a replica volume that another caskd controls is
 * refused (it would make this copy differ from the others). 1 with *rc set
 * when `vol@snap` in pool was one of those, else 0.
 */
static int
repl_snap(ce_pool *p, const char *pool, const char *volsnap, int op, const char *newname, size_t n, reqerr *e,
    int *rc)
{
	const char *at = strchr(volsnap, '@');
	if (at == NULL)
		return 0;
	char vol[300], exp[400];
	snprintf(vol, sizeof(vol), "%.*s", (int)(at - volsnap), volsnap);
	snprintf(exp, sizeof(exp), "%s/%s", pool, vol);
	if (repl_ctrl_controls(exp)) {
		if (n != 1) {
			*rc = fail(e, err_set(-EINVAL, "%s is replicated: its snapshots are taken one at a time, not with "
			    "others (one sequence point per controller)", exp), CE_E_INVALID_ARGUMENT);
			return 1;
		}
		int err = repl_ctrl_snap(exp, op, at + 1, newname);
		*rc = err ? fail(e, err, ce_errcode()) : 0;
		return 1;
	}
	if (ce_vol_is_replica(p, vol)) {
		*rc = fail(e, err_setc(CE_E_REPLICA_READ_ONLY, -EROFS, "%s is a replica volume: its snapshots are "
		    "taken through its controller (cask vol status %s)", exp, exp), CE_E_REPLICA_READ_ONLY);
		return 1;
	}
	return 0;
}

static int
snap_create_cb(ce_pool *p, void *arg)
{
	sctx *x = arg;
	for (size_t i = 0; i < x->n; i++) {
		char pool[64];
		snprintf(pool, sizeof(pool), "%.*s", (int)(strchr(x->full[i], '/') - x->full[i]), x->full[i]);
		int rc;
		if (repl_snap(p, pool, x->names[i], CE_REPL_SNAP_CREATE, NULL, x->n, x->e, &rc))
			return rc;
	}
	int *errs = xcalloc(x->n, sizeof(int));
	int err = ce_snap_create(p, x->names, x->n, errs), any = 0;
	for (size_t i = 0; err != 0 && i < x->n; i++)
		any |= errs[i] != 0;
	if (err != 0)
		per_name_fail(x, err, errs, "no snapshot taken", create_why, create_code);
	free(errs);
	return err ? fail(x->e, err, any ? CE_E_INVALID_ARGUMENT : ctl_code(err, 1)) : 0;
}

static int
snap_hold_cb(ce_pool *p, void *arg, int release)
{
	sctx *x = arg;
	int *errs = xcalloc(x->n, sizeof(int));
	int err = release ? ce_snap_release(p, x->tag, x->names, x->n, errs)
			  : ce_snap_hold(p, x->tag, x->names, x->n, errs);
	int nf = 0, ex = 0, any = 0;
	for (size_t i = 0; err != 0 && i < x->n; i++) {
		any |= errs[i] != 0;
		nf |= errs[i] == -ENOENT;
		ex |= errs[i] == -EEXIST;
	}
	if (err != 0 && any)
		per_name_fail(x, err, errs, release ? "no hold released" : "no hold placed",
		    release ? release_why : hold_why, release ? release_code : hold_code);
	free(errs);
	if (err == 0)
		return 0;
	int code = !any ? ctl_code(err, 1) : x->n == 1 && nf ?
	    (release ? CE_E_HOLD_NOT_FOUND : CE_E_SNAPSHOT_NOT_FOUND) : x->n == 1 && ex ? CE_E_HOLD_EXISTS :
	    CE_E_INVALID_ARGUMENT;
	return fail(x->e, err, code);
}

static int snap_hold_do(ce_pool *p, void *arg) { return snap_hold_cb(p, arg, 0); }
static int snap_release_do(ce_pool *p, void *arg) { return snap_hold_cb(p, arg, 1); }

/*
 * The "names" argument: a non-empty array of "pool/vol@snap", all in one
 * pool. Fills x (names and full are the caller's to free) and pool.
 */
static int
snap_names_arg(json_object *args, sctx *x, char *pool, size_t plen, reqerr *e)
{
	json_object *arr;
	if (!json_object_object_get_ex(args, "names", &arr) || !json_object_is_type(arr, json_type_array) ||
	    json_object_array_length(arr) == 0)
		return fail(e, err_set(-EINVAL, "argument 'names' must be a non-empty array"), CE_E_BAD_REQUEST);
	size_t n = json_object_array_length(arr);
	if (n > 1024)
		return fail(e, err_set(-EINVAL, "at most 1024 snapshots at once"), CE_E_INVALID_ARGUMENT);
	x->names = xcalloc(n, sizeof(char *));
	x->full = xcalloc(n, sizeof(char *));
	x->n = n;
	x->e = e;
	pool[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		json_object *s = json_object_array_get_idx(arr, i);
		if (!json_object_is_type(s, json_type_string))
			return fail(e, err_set(-EINVAL, "'names' must hold strings"), CE_E_BAD_REQUEST);
		char p2[64];
		const char *rest;
		if ((x->full[i] = str_value(s, "names", e)) == NULL)
			return e->err;
		if (split_name(x->full[i], p2, sizeof(p2), &rest, e) != 0)
			return e->err;
		if (i == 0)
			snprintf(pool, plen, "%s", p2);
		else if (strcmp(pool, p2) != 0)
			return fail(e, err_set(-EINVAL, "snapshots named together must be in one pool (%s, %s)",
			    pool, p2), CE_E_INVALID_ARGUMENT);
		x->names[i] = rest;
	}
	return 0;
}

/* Parse names (and the tag), run cb on their pool. */
static int
with_snap_names(json_object *args, reqerr *e, int need_tag, int (*cb)(ce_pool *, void *), const char *done)
{
	sctx x = { 0 };
	char pool[64];
	int rc = 0;
	if (need_tag && (x.tag = arg_str(args, "tag", 1, e)) == NULL)
		return e->err;
	rc = snap_names_arg(args, &x, pool, sizeof(pool), e);
	if (rc == 0) {
		int err = reg_with_pool(pool, cb, &x);
		rc = err != 0 && e->err == 0 ? fail(e, err, ctl_code(err, 0)) : err;
		if (rc == 0)
			log_msg(LOG_INFO, "pool %s: %s %zu snapshot%s%s%s", pool, done, x.n, x.n == 1 ? "" : "s",
			    x.tag ? " with tag " : "", x.tag ? x.tag : "");
	}
	free(x.names);
	free(x.full);
	return rc;
}

/* snap.create {"names": ["pool/vol@snap", ...]}: all in one pool, one instant, all or none. */
int
op_snap_create(json_object *args, json_object *res, reqerr *e)
{
	(void)res;
	return with_snap_names(args, e, 0, snap_create_cb, "took");
}

/* snap.hold {"tag": "t", "names": [...]} and snap.release: every named snapshot, or none. */
int
op_snap_hold(json_object *args, json_object *res, reqerr *e)
{
	(void)res;
	return with_snap_names(args, e, 1, snap_hold_do, "held");
}

int
op_snap_release(json_object *args, json_object *res, reqerr *e)
{
	(void)res;
	return with_snap_names(args, e, 1, snap_release_do, "released");
}

static int
snap_destroy_cb(ce_pool *p, void *arg)
{
	vctx *x = arg;
	int rc;
	if (repl_snap(p, x->pool, x->vol, CE_REPL_SNAP_DESTROY, NULL, 1, x->e, &rc))
		return rc;
	int err = ce_snap_destroy(p, x->vol);
	if (err == 0) {
		char full[600];
		snprintf(full, sizeof(full), "%s/%s", x->pool, x->vol);
		vio_stats_forget(full);
	}
	if (err == -ENOENT)
		return fail(x->e, err, CE_E_SNAPSHOT_NOT_FOUND);
	if (err == -EBUSY) {
		char msg[512];
		snprintf(msg, sizeof(msg), "%s", ce_errmsg());
		ce_hold_info *h;
		size_t n = 0;
		if (ce_snap_holds(p, x->vol, &h, &n) == 0)
			free(h);
		err_set(err, "%s", msg);
		return fail(x->e, err, n > 0 ? CE_E_HELD : CE_E_BUSY);
	}
	return err ? fail(x->e, err, ctl_code(err, 1)) : 0;
}

static const char *
destroy_why(int e)
{
	return e == -ENOENT ? "no such snapshot" : e == -EBUSY ? "open, held, or the origin of a clone" :
	    "named twice";
}

static int
snap_destroy_many_cb(ce_pool *p, void *arg)
{
	sctx *x = arg;
	for (size_t i = 0; i < x->n; i++) {
		char pool[64];
		snprintf(pool, sizeof(pool), "%.*s", (int)(strchr(x->full[i], '/') - x->full[i]), x->full[i]);
		int rc;
		if (repl_snap(p, pool, x->names[i], CE_REPL_SNAP_DESTROY, NULL, x->n, x->e, &rc))
			return rc;
	}
	int *errs = xcalloc(x->n, sizeof(int));
	int err = ce_snap_destroy_many(p, x->names, x->n, errs), any = 0;
	for (size_t i = 0; err == 0 && i < x->n; i++)
		vio_stats_forget(x->full[i]);
	for (size_t i = 0; err != 0 && i < x->n; i++)
		any |= errs[i] != 0;
	char one[512];
	snprintf(one, sizeof(one), "%s", ce_errmsg());
	if (err != 0 && x->n == 1) {
		/* one name: its own error and code, as snap.destroy with "name" gives */
		int held = 0;
		ce_hold_info *h;
		size_t nh = 0;
		if (err == -EBUSY && ce_snap_holds(p, x->names[0], &h, &nh) == 0) {
			held = nh > 0;
			free(h);
		}
		err_set(err, "%s", one);
		free(errs);
		return fail(x->e, err, err == -ENOENT ? CE_E_SNAPSHOT_NOT_FOUND : held ? CE_E_HELD :
		    ctl_code(err, 1));
	}
	if (err != 0 && any) {
		char all[2048];
		per_name_fail(x, err, errs, "nothing destroyed", destroy_why, destroy_code);
		snprintf(all, sizeof(all), "%s", ce_errmsg());
		err_set(err, "%s (%s)", all, one); /* and the engine's reason for the first */
	}
	free(errs);
	return err ? fail(x->e, err, any ? CE_E_INVALID_ARGUMENT : ctl_code(err, 1)) : 0;
}

/* snap.destroy {"name": "pool/vol@snap"} or {"names": [...]} (one pool: all in one txg, or none) */
static int
snap_destroy_run(json_object *a, json_object *r, reqerr *e)
{
	if (json_object_object_get_ex(a, "names", NULL))
		return with_snap_names(a, e, 0, snap_destroy_many_cb, "destroyed");
	return with_vol(a, r, e, snap_destroy_cb);
}

int
op_snap_destroy(json_object *a, json_object *r, reqerr *e)
{
	return with_holders(a, r, e, HOLD_SNAP, "snap.destroy", snap_destroy_run);
}

/* snap.rename {"name": "pool/vol@old", "new_name": "pool/vol@new" | "new"} */
static int
snap_rename_cb(ce_pool *p, void *arg)
{
	vctx *x = arg;
	const char *nn = arg_str(x->args, "new_name", 1, x->e);
	if (nn == NULL)
		return x->e->err;
	const char *slash = strchr(nn, '/');
	if (slash != NULL && ((size_t)(slash - nn) != strlen(x->pool) || strncmp(nn, x->pool, strlen(x->pool)) != 0))
		return fail(x->e, err_set(-EINVAL, "%s: a snapshot stays in pool %s", nn, x->pool), CE_E_INVALID_ARGUMENT);
	const char *nat = strchr(slash ? slash + 1 : nn, '@');
	int rc;
	if (repl_snap(p, x->pool, x->vol, CE_REPL_SNAP_RENAME, nat ? nat + 1 : slash ? slash + 1 : nn, 1, x->e, &rc))
		return rc;
	int err = ce_snap_rename(p, x->vol, slash ? slash + 1 : nn);
	if (err == 0) {
		char full[600];
		snprintf(full, sizeof(full), "%s/%s", x->pool, x->vol);
		vio_stats_forget(full);
	}
	if (err == -ENOENT)
		return fail(x->e, err, CE_E_SNAPSHOT_NOT_FOUND);
	return err ? fail(x->e, err, err == -EEXIST ? CE_E_SNAPSHOT_EXISTS : ctl_code(err, 1)) : 0;
}

int op_snap_rename(json_object *a, json_object *r, reqerr *e) { return with_vol(a, r, e, snap_rename_cb); }

static int
vol_rollback_cb(ce_pool *p, void *arg)
{
	vctx *x = arg;
	json_object *b;
	int later = json_object_object_get_ex(x->args, "destroy_later", &b) && json_object_get_boolean(b);
	const char *at = strchr(x->vol, '@');
	char vol[300];
	snprintf(vol, sizeof(vol), "%.*s", at ? (int)(at - x->vol) : (int)strlen(x->vol), x->vol);
	char exp[400];
	snprintf(exp, sizeof(exp), "%s/%s", x->pool, vol);
	if (at != NULL && repl_ctrl_controls(exp)) {
		/* at one seq on every in-sync replica (replication.md 3.6 item 4) */
		int err = repl_ctrl_rollback(exp, at + 1, later ? CE_ROLLBACK_DESTROY_LATER : 0);
		if (err == 0)
			log_msg(LOG_INFO, "%s/%s: rolled back on every in-sync replica", x->pool, x->vol);
		return err ? fail(x->e, err, ce_errcode()) : 0;
	}
	if (ce_vol_is_replica(p, vol))
		return fail(x->e, err_setc(CE_E_REPLICA_READ_ONLY, -EROFS, "%s is a replica volume: it is rolled back "
		    "through its controller (cask vol status %s)", exp, exp), CE_E_REPLICA_READ_ONLY);
	int err = ce_vol_rollback(p, x->vol, later ? CE_ROLLBACK_DESTROY_LATER : 0);
	if (err == -ENOENT)
		return fail(x->e, err, CE_E_SNAPSHOT_NOT_FOUND);
	if (err == -EEXIST)
		return fail(x->e, err, CE_E_HAS_NEWER_SNAPSHOTS);
	if (err == 0)
		log_msg(LOG_INFO, "%s/%s: rolled back", x->pool, x->vol);
	return err ? fail(x->e, err, ctl_code(err, 1)) : 0;
}

static int
vol_clone_cb(ce_pool *p, void *arg)
{
	vctx *x = arg;
	const char *nvol = new_name_arg(x); /* a clone lives in its origin's pool */
	if (nvol == NULL)
		return x->e->err;
	int err = ce_vol_clone(p, x->vol, nvol);
	if (err == -ENOENT)
		return fail(x->e, err, CE_E_SNAPSHOT_NOT_FOUND);
	if (err == 0)
		log_msg(LOG_INFO, "%s/%s: cloned from %s/%s", x->pool, nvol, x->pool, x->vol);
	return err ? fail(x->e, err, ctl_code(err, 1)) : 0;
}

static int
vol_promote_cb(ce_pool *p, void *arg)
{
	vctx *x = arg;
	int err = ce_vol_promote(p, x->vol);
	if (err == 0)
		log_msg(LOG_INFO, "%s/%s: promoted", x->pool, x->vol);
	int code = err == -EEXIST ? CE_E_SNAPSHOT_EXISTS : ctl_code(err, 1); /* NOT_A_CLONE from the engine */
	return err ? fail(x->e, err, code) : 0;
}

/* vol.promote {"name": "pool/clone"} */
int op_vol_promote(json_object *a, json_object *r, reqerr *e) { return with_vol(a, r, e, vol_promote_cb); }

/* vol.clone {"name": "pool/vol@snap", "new_name": "pool/new"} */
int op_vol_clone(json_object *a, json_object *r, reqerr *e) { return with_vol(a, r, e, vol_clone_cb); }

/* vol.rollback {"name": "pool/vol@snap", "destroy_later": bool} */
static int vol_rollback_run(json_object *a, json_object *r, reqerr *e) { return with_vol(a, r, e, vol_rollback_cb); }
int op_vol_rollback(json_object *a, json_object *r, reqerr *e)
{
	return with_holders(a, r, e, HOLD_ROLLBACK, "vol.rollback", vol_rollback_run);
}

/* snapshots are listed by volume, then txg */
static void
snap_key(const sl *x, const void *items, size_t i, char *buf)
{
	const ce_snap_info *si = &((const ce_snap_info *)items)[i];
	char full[400], vk[400];
	snprintf(full, sizeof(full), "%s/%s", x->pool, si->volume);
	key_of_name(full, vk, sizeof(vk));
	const char *at = strchr(si->name, '@');
	snprintf(buf, KEY_LEN, "%s\x01%020" PRIu64 "\x01%s", vk, si->txg, at ? at + 1 : "");
}

static json_object *
snap_item(const sl *x, const void *items, size_t i)
{
	return snap_json(x->pool, &((const ce_snap_info *)items)[i]);
}

static int
snap_list_cb(ce_pool *p, void *arg)
{
	sl *x = arg;
	ce_snap_info *si;
	size_t n;
	int err = ce_snap_list(p, x->vol, &si, &n);
	if (err != 0)
		return fail(x->e, err, ctl_code(err, 1));
	sl_add(x, si, n, snap_key, snap_item);
	free(si);
	return 0;
}

/* snap.list {"name": "pool" | "pool/vol" (optional)} */
int
op_snap_list(json_object *args, json_object *res, reqerr *e)
{
	char pool[64];
	const char *vol, *only;
	if (pool_or_name_arg(args, "name", pool, sizeof(pool), &vol, &only, e) != 0)
		return e->err;
	return list_pools_paged(only ? pool : NULL, vol, vol != NULL, snap_list_cb, res, "snapshots", e, args);
}

/* holds are listed by snapshot (POOL/VOL@SNAP), then tag */
static void
hold_key(const sl *x, const void *items, size_t i, char *buf)
{
	const ce_hold_info *h = &((const ce_hold_info *)items)[i];
	char full[400], sk[600];
	snprintf(full, sizeof(full), "%s/%s", x->pool, h->snapshot);
	key_of_name(full, sk, sizeof(sk));
	snprintf(buf, KEY_LEN, "%s\x01%s", sk, h->tag);
}

static json_object *
hold_item(const sl *x, const void *items, size_t i)
{
	const ce_hold_info *h = &((const ce_hold_info *)items)[i];
	char full[400];
	json_object *o = json_object_new_object();
	snprintf(full, sizeof(full), "%s/%s", x->pool, h->snapshot);
	json_object_object_add(o, "snapshot", json_object_new_string(full));
	json_object_object_add(o, "tag", json_object_new_string(h->tag));
	json_object_object_add(o, "creation", json_object_new_uint64(h->ctime));
	return o;
}

static int
snap_holds_cb(ce_pool *p, void *arg)
{
	sl *x = arg;
	ce_hold_info *h;
	size_t n;
	int err = ce_snap_holds(p, x->vol, &h, &n);
	if (err != 0)
		return fail(x->e, err, err == -ENOENT ? CE_E_SNAPSHOT_NOT_FOUND : ctl_code(err, 1));
	sl_add(x, h, n, hold_key, hold_item);
	free(h);
	return 0;
}

/* snap.holds {"name": "pool" | "pool/vol@snap" (optional)}: {"holds": [{snapshot, tag, creation}]} */
int
op_snap_holds(json_object *args, json_object *res, reqerr *e)
{
	char pool[64];
	const char *snap, *only;
	if (pool_or_name_arg(args, "name", pool, sizeof(pool), &snap, &only, e) != 0)
		return e->err;
	if (snap != NULL && strchr(snap, '@') == NULL)
		return fail(e, err_set(-EINVAL, "'%s' is not a snapshot (POOL/VOL@SNAP)", only),
		    CE_E_INVALID_ARGUMENT);
	return list_pools_paged(only ? pool : NULL, snap, only != NULL, snap_holds_cb, res, "holds", e, args);
}
