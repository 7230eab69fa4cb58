/*
 * vol.c -- the volume operations: vol.create, destroy, resize, rename,
 * get, set, inherit, list. Property names and values are parsed by the
 * engine (ce_vol_props_parse, ce_vol_set_many), never here.
 */
#include "ctl_impl.h"
#include "../iscsi.h"
#include "../log.h"
#include "util.h"
#include "../vio_impl.h"
#include "../repl/ctrl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static json_object *
vol_json(const char *pool, const ce_vol_info *vi)
{
	char full[400];
	snprintf(full, sizeof(full), "%s/%s", pool, vi->name);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "name", json_object_new_string(full));
	json_object_object_add(o, "guid", hex_guid(vi->guid));
	json_object_object_add(o, "size", json_object_new_uint64(vi->size));
	json_object_object_add(o, "volblocksize", json_object_new_int((int)vi->volblocksize));
	json_object_object_add(o, "compression", json_object_new_string(ce_compress_name(vi->compress)));
	json_object_object_add(o, "checksum", json_object_new_string(ce_checksum_name(vi->checksum)));
	json_object_object_add(o, "sync", json_object_new_string(ce_sync_name(vi->sync)));
	json_object *src = json_object_new_object();
	json_object_object_add(src, "compression", json_object_new_string(vi->local_props & CE_PROP_COMPRESSION ?
	    "local" : "default"));
	json_object_object_add(src, "checksum", json_object_new_string(vi->local_props & CE_PROP_CHECKSUM ?
	    "local" : "default"));
	json_object_object_add(src, "sync", json_object_new_string(vi->local_props & CE_PROP_SYNC ? "local" :
	    "default"));
	json_object_object_add(o, "sources", src);
	json_object_object_add(o, "used", json_object_new_uint64(vi->used));
	json_object_object_add(o, "referenced", json_object_new_uint64(vi->referenced));
	json_object_object_add(o, "usedbydataset", json_object_new_uint64(vi->usedbydataset));
	json_object_object_add(o, "logical", json_object_new_uint64(vi->logical));
	json_object_object_add(o, "logicalreferenced", json_object_new_uint64(vi->logical));
	json_object_object_add(o, "logicalused", json_object_new_uint64(vi->logicalused));
	json_object_object_add(o, "compressratio", ratio_json(vi->logicalused, vi->used));
	json_object_object_add(o, "refcompressratio", ratio_json(vi->logical, vi->referenced));
	json_object_object_add(o, "create_txg", json_object_new_uint64(vi->create_txg));
	json_object_object_add(o, "creation", json_object_new_uint64(vi->ctime));
	json_object_object_add(o, "snapshots", json_object_new_int((int)vi->nsnapshots));
	json_object_object_add(o, "usedbysnapshots", json_object_new_uint64(vi->usedbysnapshots));
	json_object_object_add(o, "written", json_object_new_uint64(vi->written));
	/* intent log damage the replay found in its records, until pool.clear ("": none) */
	json_object_object_add(o, "log_damaged", json_object_new_string(vi->log_damaged));
	if (vi->receive_resume_token[0] != '\0')
		json_object_object_add(o, "receive_resume_token", json_object_new_string(vi->receive_resume_token));
	if (vi->origin[0] != '\0') {
		char on[600];
		snprintf(on, sizeof(on), "%s/%s", pool, vi->origin);
		json_object_object_add(o, "origin", json_object_new_string(on));
	}
	return o;
}

static int
vol_create_cb(ce_pool *p, void *arg)
{
	vctx *x = arg;
	uint64_t size;
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	if (arg_u64(x->args, "size", 1, &size, x->e) != 0)
		return x->e->err;
	json_object *props;
	if (json_object_object_get_ex(x->args, "props", &props) && !json_object_is_type(props, json_type_null)) {
		if (!json_object_is_type(props, json_type_object))
			return fail(x->e, err_set(-EINVAL, "'props' must be an object"), CE_E_BAD_REQUEST);
		json_object_object_foreach(props, k, v) {
			/* the engine parses them (a number is taken as its text: volblocksize 8192) */
			const char *val = NULL;
			if (json_object_is_type(v, json_type_string) && (val = str_value(v, k, x->e)) == NULL)
				return x->e->err;
			if (!json_object_is_type(v, json_type_string))
				val = json_object_get_string(v); /* NULL for null: the engine refuses it */
			int err = ce_vol_props_parse(&pr, k, val);
			if (err != 0)
				return fail(x->e, err, CE_E_INVALID_ARGUMENT);
		}
	}
	int err = ce_vol_create(p, x->vol, size, &pr);
	return err ? fail(x->e, err, ctl_code(err, 1)) : 0;
}

/* The IO counters of POOL/VOL (and its snapshots) go with it. */
static void
forget_stats(const char *pool, const char *vol)
{
	char full[600];
	snprintf(full, sizeof(full), "%s/%s", pool, vol);
	vio_stats_forget(full);
}

static int
vol_destroy_cb(ce_pool *p, void *arg)
{
	vctx *x = arg;
	json_object *b;
	unsigned flags = 0;
	if (json_object_object_get_ex(x->args, "recursive", &b) && json_object_get_boolean(b))
		flags |= CE_DESTROY_SNAPSHOTS;
	if (json_object_object_get_ex(x->args, "dependents", &b) && json_object_get_boolean(b))
		flags |= CE_DESTROY_CLONES;
	int err = ce_vol_destroy_ex(p, x->vol, flags);
	int code = ctl_code(err, 1); /* HAS_SNAPSHOTS, HAS_CLONES, HELD, VOLUME_OPEN ... */
	if (code == CE_E_VOLUME_OPEN) {
		char msg[512];
		snprintf(msg, sizeof(msg), "%s", ce_errmsg());
		err_setc(code, err, "%s: in use", msg);
	}
	if (err == 0 && flags)
		log_msg(LOG_INFO, "%s/%s destroyed with its snapshots%s", x->pool, x->vol,
		    flags & CE_DESTROY_CLONES ? " and clones" : "");
	if (err == 0)
		forget_stats(x->pool, x->vol); /* (clones destroyed with -R keep theirs until evicted) */
	return err ? fail(x->e, err, code) : 0;
}

static int
vol_resize_cb(ce_pool *p, void *arg)
{
	vctx *x = arg;
	uint64_t size;
	json_object *sh;
	int shrink = json_object_object_get_ex(x->args, "shrink", &sh) && json_object_get_boolean(sh);
	if (arg_u64(x->args, "size", 1, &size, x->e) != 0)
		return x->e->err;
	char exp[400];
	snprintf(exp, sizeof(exp), "%s/%s", x->pool, x->vol);
	if (repl_ctrl_controls(exp)) {
		/* at one seq on every in-sync replica (replication.md 3.6 item 4) */
		int err = repl_ctrl_resize(exp, size, shrink ? CE_RESIZE_SHRINK : 0);
		return err ? fail(x->e, err, ce_errcode()) : 0;
	}
	if (ce_vol_is_replica(p, x->vol))
		return fail(x->e, err_setc(CE_E_REPLICA_READ_ONLY, -EROFS, "%s is a replica volume: it is resized "
		    "through its controller (cask vol status %s)", exp, exp), CE_E_REPLICA_READ_ONLY);
	int err = ce_vol_resize(p, x->vol, size, shrink ? CE_RESIZE_SHRINK : 0);
	return err ? fail(x->e, err, ctl_code(err, 1)) : 0;
}

static int
vol_rename_cb(ce_pool *p, void *arg)
{
	vctx *x = arg;
	const char *nvol = new_name_arg(x);
	if (nvol == NULL)
		return x->e->err;
	int err = ce_vol_rename(p, x->vol, nvol);
	if (err == 0) {
		forget_stats(x->pool, x->vol);
		/* the iSCSI settings (STATE/iscsi.json, keyed by name) follow the volume */
		char from[400], to[400];
		snprintf(from, sizeof(from), "%s/%s", x->pool, x->vol);
		snprintf(to, sizeof(to), "%s/%s", x->pool, nvol);
		if (iscsi_cfg_rename(from, to) != 0)
			log_warn("vol.rename %s -> %s: the iSCSI settings did not follow: %s", from, to, ce_errmsg());
	}
	return err ? fail(x->e, err, ctl_code(err, 1)) : 0;
}

static int
vol_get_cb(ce_pool *p, void *arg)
{
	vctx *x = arg;
	ce_vol_info vi;
	int err = ce_vol_info_get(p, x->vol, &vi);
	if (err != 0)
		return fail(x->e, err, ctl_code(err, 1));
	json_object *o = vol_json(x->pool, &vi);
	json_object_object_foreach(o, k, v) json_object_object_add(x->res, k, json_object_get(v));
	json_object_put(o);
	return 0;
}

static int
vol_set_cb(ce_pool *p, void *arg)
{
	vctx *x = arg;
	json_object *props;
	if (json_object_object_get_ex(x->args, "props", &props)) {
		/* several at once: all or none */
		if (!json_object_is_type(props, json_type_object) || json_object_object_length(props) == 0 ||
		    json_object_object_length(props) > 8)
			return fail(x->e, err_set(-EINVAL, "'props' must be an object of 1 to 8 properties"),
			    CE_E_BAD_REQUEST);
		const char *ks[8], *vs[8];
		size_t n = 0;
		json_object_object_foreach(props, k, v) {
			if (!json_object_is_type(v, json_type_string))
				return fail(x->e, err_set(-EINVAL, "property '%s': the value must be a string", k),
				    CE_E_BAD_REQUEST);
			ks[n] = k;
			if ((vs[n++] = str_value(v, k, x->e)) == NULL)
				return x->e->err;
		}
		int err = ce_vol_set_many(p, x->vol, ks, vs, n);
		return err ? fail(x->e, err, ctl_code(err, 1)) : 0;
	}
	const char *prop = arg_str(x->args, "prop", 1, x->e);
	const char *value = prop ? arg_str(x->args, "value", 1, x->e) : NULL;
	if (value == NULL)
		return x->e->err;
	int err = ce_vol_set(p, x->vol, prop, value);
	return err ? fail(x->e, err, ctl_code(err, 1)) : 0;
}

/* vol.inherit {"name", "prop"}: back to the default */
static int
vol_inherit_cb(ce_pool *p, void *arg)
{
	vctx *x = arg;
	const char *prop = arg_str(x->args, "prop", 1, x->e);
	if (prop == NULL)
		return x->e->err;
	int err = ce_vol_inherit(p, x->vol, prop);
	return err ? fail(x->e, err, ctl_code(err, 1)) : 0;
}

int
op_vol_create(json_object *a, json_object *r, reqerr *e)
{
	json_object *reps;
	if (json_object_object_get_ex(a, "replicas", &reps) && !json_object_is_type(reps, json_type_null)) {
		if (!json_object_is_type(reps, json_type_array))
			return fail(e, err_set(-EINVAL, "'replicas' must be an array"), CE_E_BAD_REQUEST);
		if (json_object_array_length(reps) > 0)
			return op_vol_create_replicated(a, r, e);
	}
	return with_vol(a, r, e, vol_create_cb);
}
static int vol_destroy_run(json_object *a, json_object *r, reqerr *e) { return with_vol(a, r, e, vol_destroy_cb); }
int op_vol_destroy(json_object *a, json_object *r, reqerr *e)
{
	return with_holders(a, r, e, HOLD_VOL, "vol.destroy", vol_destroy_run);
}
int op_vol_resize(json_object *a, json_object *r, reqerr *e) { return with_vol(a, r, e, vol_resize_cb); }
int op_vol_rename(json_object *a, json_object *r, reqerr *e) { return with_vol(a, r, e, vol_rename_cb); }
/* vol.checksum {"name": POOL/VOL | POOL/VOL@SNAP} -> {"digest": 32 hex digits, "size"} */
static int
vol_checksum_cb(ce_pool *p, void *arg)
{
	vctx *x = arg;
	uint8_t d[16];
	uint64_t size;
	int err = ce_vol_checksum(p, x->vol, d, &size);
	if (err != 0)
		return fail(x->e, err, err == -ENOENT && strchr(x->vol, '@') ? CE_E_SNAPSHOT_NOT_FOUND : ctl_code(err, 1));
	char hex[33];
	for (int i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	json_object_object_add(x->res, "digest", json_object_new_string(hex));
	json_object_object_add(x->res, "size", json_object_new_uint64(size));
	return 0;
}

int op_vol_checksum(json_object *a, json_object *r, reqerr *e) { return with_vol(a, r, e, vol_checksum_cb); }
int op_vol_get(json_object *a, json_object *r, reqerr *e) { return with_vol(a, r, e, vol_get_cb); }
int op_vol_set(json_object *a, json_object *r, reqerr *e) { return with_vol(a, r, e, vol_set_cb); }
int op_vol_inherit(json_object *a, json_object *r, reqerr *e) { return with_vol(a, r, e, vol_inherit_cb); }

static void
vol_key(const sl *x, const void *items, size_t i, char *buf)
{
	char full[400];
	snprintf(full, sizeof(full), "%s/%s", x->pool, ((const ce_vol_info *)items)[i].name);
	key_of_name(full, buf, KEY_LEN);
}

static json_object *
vol_item(const sl *x, const void *items, size_t i)
{
	return vol_json(x->pool, &((const ce_vol_info *)items)[i]);
}

static int
vol_list_cb(ce_pool *p, void *arg)
{
	sl *x = arg;
	ce_vol_info *vi;
	size_t n;
	int err = ce_vol_list(p, &vi, &n);
	if (err != 0)
		return err;
	sl_add(x, vi, n, vol_key, vol_item);
	free(vi);
	return 0;
}

int
op_vol_list(json_object *args, json_object *res, reqerr *e)
{
	const char *only = arg_str(args, "pool", 0, e);
	if (e->err)
		return e->err;
	return list_pools_paged(only, NULL, 0, vol_list_cb, res, "volumes", e, args);
}
