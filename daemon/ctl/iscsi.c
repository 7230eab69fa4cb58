/*
 * iscsi.c -- the iSCSI target's configuration operations (docs/control-protocol.md
 * "iscsi.*"): iscsi.set, iscsi.chap.set, iscsi.chap.unset, iscsi.config. They
 * change STATE/iscsi.json through daemon/iscsi_cfg.c; a change applies to the
 * next login. Secrets travel only in iscsi.chap.set requests and are never
 * answered back. The operator's view: iscsi.targets, iscsi.sessions,
 * iscsi.logout and iscsi.pr (the live state in daemon/iscsi.c and scsi.c).
 */
#include "ctl_impl.h"
#include "../iscsi.h"
#include "../registry.h"
#include "../scsi.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
pool_ok(ce_pool *p, void *arg)
{
	(void)p;
	(void)arg;
	return 0;
}

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

/* iscsi.targets {"pool"?} -> {"targets": [...]} (docs/control-protocol.md) */
int
op_iscsi_targets(json_object *args, json_object *res, reqerr *e)
{
	const char *pool = arg_str(args, "pool", 0, e);
	if (e->err != 0)
		return e->err;
	if (pool != NULL) {
		int err = reg_with_pool(pool, pool_ok, NULL);
		if (err != 0)
			return fail(e, err, ctl_code(err, 0));
	}
	json_object *a = json_object_new_array();
	int err = iscsi_targets_json(pool, a);
	if (err != 0) {
		json_object_put(a);
		return fail(e, err, ce_errcode_of(err));
	}
	json_object_object_add(res, "targets", a);
	return 0;
}

/* A target argument: an iSCSI name (iqn./eui./naa.) or POOL/VOL[@SNAP]; the export in out. */
static int
export_arg(json_object *args, int required, char *out, size_t n, reqerr *e)
{
	const char *t = arg_str(args, "target", required, e);
	if (e->err != 0)
		return e->err;
	out[0] = '\0';
	if (t == NULL)
		return 0;
	if (strncmp(t, "iqn.", 4) == 0 || strncmp(t, "eui.", 4) == 0 || strncmp(t, "naa.", 4) == 0) {
		int err = iscsi_target_export(t, out, n);
		if (err == -EEXIST)
			return fail(e, err_set(-EEXIST, "%s: two volumes map to this target name; name the volume", t),
			    CE_E_INVALID_ARGUMENT);
		if (err != 0)
			return fail(e, err_set(-ENOENT, "%s: no such iSCSI target", t), CE_E_VOLUME_NOT_FOUND);
		return 0;
	}
	char pool[64];
	const char *vol;
	if (split_name(t, pool, sizeof(pool), &vol, e) != 0)
		return e->err;
	snprintf(out, n, "%s", t);
	return 0;
}

/* iscsi.sessions {"target"?} -> {"sessions": [...]} */
int
op_iscsi_sessions(json_object *args, json_object *res, reqerr *e)
{
	char exp[512];
	if (export_arg(args, 0, exp, sizeof(exp), e) != 0)
		return e->err;
	json_object *a = json_object_new_array();
	iscsi_sessions_json(exp[0] ? exp : NULL, a);
	json_object_object_add(res, "sessions", a);
	return 0;
}

/* iscsi.logout {"tsih", "force"?} -> {"how": "logout"|"dropped"} */
int
op_iscsi_logout(json_object *args, json_object *res, reqerr *e)
{
	uint64_t tsih;
	int force = 0;
	if (arg_u64(args, "tsih", 1, &tsih, e) != 0 || arg_bool(args, "force", &force, e) != 0)
		return e->err;
	const char *how = NULL;
	int err = iscsi_logout(tsih > 0xffff ? 0 : (unsigned)tsih, force, &how);
	if (err != 0)
		return fail(e, err, err == -ENOENT ? CE_E_CLIENT_NOT_FOUND : ce_errcode_of(err));
	json_object_object_add(res, "how", json_object_new_string(how));
	return 0;
}

/* iscsi.pr {"target"} -> {"target", "open", "generation", "type", "aptpl", "registrations": [...]} */
int
op_iscsi_pr(json_object *args, json_object *res, reqerr *e)
{
	char exp[512];
	if (export_arg(args, 1, exp, sizeof(exp), e) != 0)
		return e->err;
	scsi_pr_info pi;
	int err = scsi_pr_info_get(exp, &pi);
	if (err != 0)
		return fail(e, err, ctl_code(err, 1));
	char iqn[256];
	json_object_object_add(res, "volume", json_object_new_string(exp));
	json_object_object_add(res, "iqn", iscsi_target_name(exp, iqn, sizeof(iqn)) == 0 ? json_object_new_string(iqn) : NULL);
	json_object_object_add(res, "open", json_object_new_boolean(pi.open));
	json_object_object_add(res, "generation", json_object_new_int64(pi.generation));
	json_object_object_add(res, "type", json_object_new_string(scsi_pr_type_name(pi.type)));
	json_object_object_add(res, "aptpl", json_object_new_boolean(pi.aptpl));
	json_object *regs = json_object_new_array();
	for (size_t i = 0; i < pi.nregs; i++) {
		json_object *r = json_object_new_object();
		char key[19];
		snprintf(key, sizeof(key), "0x%016" PRIx64, pi.regs[i].key);
		json_object_object_add(r, "key", json_object_new_string(key));
		json_object_object_add(r, "initiator_port", json_object_new_string(pi.regs[i].port));
		json_object_object_add(r, "holder", json_object_new_boolean(pi.regs[i].holder));
		json_object_array_add(regs, r);
	}
	free(pi.regs);
	json_object_object_add(res, "registrations", regs);
	return 0;
}
