/*
 * iscsi.c -- the iSCSI target's configuration operations (docs/control-protocol.md
 * "iscsi.*"): iscsi.set, iscsi.chap.set, iscsi.chap.unset, iscsi.config. They
 * change STATE/iscsi.json through daemon/iscsi_cfg.c; a change applies to the
 * next login. Secrets travel only in iscsi.chap.set requests and are never
 * answered back.
 */
#include "ctl_impl.h"
#include "../iscsi.h"
#include "../registry.h"
#include "util.h"

#include <errno.h>
#include <string.h>

static int
vol_exists(ce_pool *p, void *arg)
{
	ce_vol_info vi;
	return ce_vol_info_get(p, arg, &vi);
}

/* The "target" argument: NULL (daemon-wide) when absent and allowed; a POOL/VOL that
 * exists unless may_be_gone. Returns -errno with e filled, or 0. */
static int
target_arg(json_object *args, int required, int may_be_gone, const char **out, reqerr *e)
{
	*out = arg_str(args, "target", required, e);
	if (e->err != 0)
		return e->err;
	if (*out == NULL)
		return 0;
	if (strchr(*out, '@') != NULL)
		return fail(e, err_set(-EINVAL, "%s: a snapshot target uses its volume's iSCSI settings; name the volume",
		    *out), CE_E_INVALID_ARGUMENT);
	char pool[64];
	const char *vol;
	if (split_name(*out, pool, sizeof(pool), &vol, e) != 0)
		return e->err;
	if (may_be_gone)
		return 0;
	int err = reg_with_pool(pool, vol_exists, (void *)vol);
	if (err != 0)
		return fail(e, err, ctl_code(err, 1));
	return 0;
}

int
op_iscsi_set(json_object *args, json_object *res, reqerr *e)
{
	(void)res;
	const char *target, *key = arg_str(args, "property", 1, e);
	if (key == NULL)
		return e->err;
	json_object *v;
	const char *value = NULL;
	if (json_object_object_get_ex(args, "value", &v) && !json_object_is_type(v, json_type_null) &&
	    (value = str_value(v, "value", e)) == NULL)
		return e->err;
	if (target_arg(args, 0, value == NULL, &target, e) != 0)
		return e->err;
	int err = iscsi_cfg_set(target, key, value);
	return err != 0 ? fail(e, err, ce_errcode_of(err)) : 0;
}

int
op_iscsi_chap_set(json_object *args, json_object *res, reqerr *e)
{
	(void)res;
	const char *target;
	if (target_arg(args, 0, 0, &target, e) != 0)
		return e->err;
	const char *user = arg_str(args, "user", 0, e), *secret = e->err ? NULL : arg_str(args, "secret", 0, e);
	const char *muser = e->err ? NULL : arg_str(args, "mutual_user", 0, e);
	const char *msecret = e->err ? NULL : arg_str(args, "mutual_secret", 0, e);
	if (e->err != 0)
		return e->err;
	int err = iscsi_cfg_chap_set(target, user, secret, muser, msecret);
	return err != 0 ? fail(e, err, ce_errcode_of(err)) : 0;
}

int
op_iscsi_chap_unset(json_object *args, json_object *res, reqerr *e)
{
	(void)res;
	const char *target;
	int mutual;
	if (target_arg(args, 0, 1, &target, e) != 0 || arg_bool(args, "mutual", &mutual, e) != 0)
		return e->err;
	int err = iscsi_cfg_chap_unset(target, mutual);
	return err != 0 ? fail(e, err, ce_errcode_of(err)) : 0;
}

int
op_iscsi_config(json_object *args, json_object *res, reqerr *e)
{
	(void)args;
	json_object *a = json_object_new_array();
	int err = iscsi_cfg_list(a);
	if (err != 0) {
		json_object_put(a);
		return fail(e, err, ce_errcode_of(err));
	}
	json_object_object_add(res, "entries", a);
	return 0;
}
