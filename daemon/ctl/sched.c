/*
 * ctl/sched.c -- snapshot policies over the control socket
 * (docs/control-protocol.md "Snapshot policies"):
 *
 *   sched.set {name, policy}   set (replace) POOL/VOL's policy
 *                              {every_min, keep, hourly, daily, weekly,
 *                              monthly}; policy null removes it
 *   sched.list {name?}         every policy (of a pool, or one volume),
 *                              with its last and next run and counters
 *   sched.run {name}           a snapshot of POOL/VOL now, then pruning
 *   test.sched_clock {time}    test only (--test-ops): the scheduler's
 *                              clock becomes `time` and a pass runs now
 */
#include "ctl_impl.h"
#include "../registry.h"
#include "../sched.h"
#include "../vio.h"
#include "util.h"

#include <errno.h>
#include <string.h>

static int
policy_field(json_object *pol, const char *key, uint32_t max, uint32_t *out, reqerr *e)
{
	json_object *v;
	*out = 0;
	if (!json_object_object_get_ex(pol, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0 ||
	    json_object_get_int64(v) > (int64_t)max)
		return fail(e, err_set(-EINVAL, "policy field '%s' wants an integer from 0 to %u", key, max),
		    CE_E_BAD_REQUEST);
	*out = (uint32_t)json_object_get_int64(v);
	return 0;
}

static int
has_policy(ce_pool *p, const char *vol)
{
	ce_sched_info *l;
	size_t n;
	int found = 0;
	if (ce_sched_list(p, &l, &n) != 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		found |= strcmp(l[i].volume, vol) == 0;
	free(l);
	return found;
}

static int
set_cb(ce_pool *p, void *arg)
{
	vctx *x = arg;
	json_object *pol = NULL;
	if (!json_object_object_get_ex(x->args, "policy", &pol))
		return fail(x->e, err_set(-EINVAL, "argument 'policy' (an object, or null to remove) is required"),
		    CE_E_BAD_REQUEST);
	ce_sched s = { 0 }, *sp = NULL;
	if (pol != NULL && !json_object_is_type(pol, json_type_null)) {
		if (!json_object_is_type(pol, json_type_object))
			return fail(x->e, err_set(-EINVAL, "argument 'policy' must be an object or null"),
			    CE_E_BAD_REQUEST);
		static const char *const known[] = { "every_min", "keep", "hourly", "daily", "weekly", "monthly" };
		json_object_object_foreach(pol, key, val) {
			(void)val;
			int ok = 0;
			for (size_t i = 0; i < ARRAY_SIZE(known); i++)
				ok |= strcmp(key, known[i]) == 0;
			if (!ok)
				return fail(x->e, err_set(-EINVAL, "unknown policy field '%s'", key), CE_E_BAD_REQUEST);
		}
		if (policy_field(pol, "every_min", CE_SCHED_EVERY_MAX, &s.every_min, x->e) != 0 ||
		    policy_field(pol, "keep", CE_SCHED_COUNT_MAX, &s.keep, x->e) != 0 ||
		    policy_field(pol, "hourly", CE_SCHED_COUNT_MAX, &s.hourly, x->e) != 0 ||
		    policy_field(pol, "daily", CE_SCHED_COUNT_MAX, &s.daily, x->e) != 0 ||
		    policy_field(pol, "weekly", CE_SCHED_COUNT_MAX, &s.weekly, x->e) != 0 ||
		    policy_field(pol, "monthly", CE_SCHED_COUNT_MAX, &s.monthly, x->e) != 0)
			return x->e->err;
		sp = &s;
	} else if (!has_policy(p, x->vol)) {
		ce_vol_info vi;
		if (ce_vol_info_get(p, x->vol, &vi) != 0)
			return fail(x->e, err_set(-ENOENT, "volume %s/%s does not exist", x->pool, x->vol),
			    CE_E_VOLUME_NOT_FOUND);
		return fail(x->e, err_set(-EINVAL, "volume %s/%s has no snapshot policy", x->pool, x->vol),
		    CE_E_INVALID_ARGUMENT);
	}
	int err = ce_sched_set(p, x->vol, sp);
	if (err != 0)
		return fail(x->e, err, ctl_code(err, 1));
	sched_kick(); /* takes effect without a restart */
	return 0;
}

int
op_sched_set(json_object *args, json_object *res, reqerr *e)
{
	return with_vol(args, res, e, set_cb);
}

typedef struct lctx {
	const char *vol;   /* only this volume, or NULL */
	json_object *arr;
	reqerr *e;
} lctx;

static int
list_cb(ce_pool *p, void *arg)
{
	lctx *x = arg;
	ce_sched_info *l;
	size_t n;
	int err = ce_sched_list(p, &l, &n);
	if (err != 0)
		return fail(x->e, err, ctl_code(err, 0));
	for (size_t i = 0; i < n; i++) {
		if (x->vol != NULL && strcmp(x->vol, l[i].volume) != 0)
			continue;
		json_object *o = json_object_new_object();
		if (sched_describe(p, &l[i], o) != 0) {
			json_object_put(o);
			continue; /* destroyed meanwhile */
		}
		json_object_array_add(x->arr, o);
	}
	free(l);
	return 0;
}

int
op_sched_list(json_object *args, json_object *res, reqerr *e)
{
	char pool[64];
	const char *vol, *only;
	if (pool_or_name_arg(args, "name", pool, sizeof(pool), &vol, &only, e) != 0)
		return e->err;
	lctx x = { vol, json_object_new_array(), e };
	int err = 0;
	if (only != NULL) {
		err = reg_with_pool(pool, list_cb, &x);
		if (err != 0 && e->err == 0)
			err = fail(e, err, ctl_code(err, 0));
	} else {
		char **names;
		size_t n;
		reg_pool_names(&names, &n);
		for (size_t i = 0; i < n; i++) {
			reg_with_pool(names[i], list_cb, &x); /* a pool exported meanwhile is left out */
			free(names[i]);
		}
		free(names);
	}
	if (err != 0) {
		json_object_put(x.arr);
		return err;
	}
	json_object_object_add(res, "schedules", x.arr);
	return 0;
}

int
op_sched_run(json_object *args, json_object *res, reqerr *e)
{
	const char *name = arg_str(args, "name", 1, e);
	if (name == NULL)
		return e->err;
	char pool[64];
	const char *vol;
	if (split_name(name, pool, sizeof(pool), &vol, e) != 0)
		return e->err;
	int err = sched_run(pool, vol, res); /* -EINVAL: no policy; -EEXIST: this minute's snapshot exists */
	if (err == 0)
		return 0;
	int code = ctl_code(err, 1);
	return fail(e, err, code == CE_E_VOLUME_EXISTS ? CE_E_SNAPSHOT_EXISTS : code);
}

int
op_test_sched_clock(json_object *args, json_object *res, reqerr *e)
{
	if (!vio_test_ops())
		return fail(e, err_set(-EOPNOTSUPP, "test.sched_clock needs caskd started with --test-ops"),
		    CE_E_NOT_SUPPORTED);
	json_object *v;
	if (!json_object_object_get_ex(args, "time", &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) < 0 || json_object_get_int64(v) >= 253402300800ll)
		return fail(e, err_set(-EINVAL, "argument 'time' (seconds since the epoch, before the year 10000) "
		    "is required"),
		    CE_E_BAD_REQUEST);
	return sched_clock_pass(json_object_get_int64(v), res);
}
