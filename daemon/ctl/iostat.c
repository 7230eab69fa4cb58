/*
 * ctl/iostat.c -- the control operations of the volume IO layer
 * (docs/control-protocol.md "vol.iostat", "test.vio_fault").
 *
 *   vol.iostat {name}  the statistics layer's counters of an export since
 *                      caskd started (all zero if it was never opened)
 *   test.vio_fault {name, action, ops, errno, nth, delay_us, pinned}
 *                      the fault layer's rule for an export; refused with
 *                      NOT_SUPPORTED unless caskd runs with --test-ops
 */
#include "ctl_impl.h"
#include "../registry.h"
#include "util.h"
#include "../vio.h"
#include "../vio_impl.h"

#include <errno.h>
#include <string.h>

static const char *
arg_name(json_object *args, reqerr *e)
{
	json_object *v;
	if (!json_object_object_get_ex(args, "name", &v) || !json_object_is_type(v, json_type_string)) {
		e->code = CE_E_BAD_REQUEST;
		err_set(-EINVAL, "argument 'name' (a string, POOL/VOL) is required");
		return NULL;
	}
	return str_value(v, "name", e);
}

/* The export must exist now (its counters may be older than it). */
static int
check_export(const char *name, reqerr *e)
{
	ce_vol *v;
	ce_pool *p;
	int err = reg_vol_open(name, &v, &p);
	if (err != 0) {
		e->code = err == -ENOENT || err == -EINVAL ? CE_E_VOLUME_NOT_FOUND : CE_E_NONE;
		return err;
	}
	reg_vol_close(v, p);
	return 0;
}

int
op_vol_iostat(json_object *args, json_object *res, reqerr *e)
{
	const char *name = arg_name(args, e);
	if (name == NULL)
		return -EINVAL;
	int err = check_export(name, e);
	if (err != 0)
		return err;
	vio_opstats_snap st[VIO_NOPS];
	vio_stats_get(name, st);
	json_object_object_add(res, "name", json_object_new_string(name));
	json_object_object_add(res, "time_ns", json_object_new_uint64(vio_now_ns()));
	json_object *ops = json_object_new_object();
	for (int i = 0; i < VIO_NOPS; i++) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "count", json_object_new_uint64(st[i].count));
		json_object_object_add(o, "bytes", json_object_new_uint64(st[i].bytes));
		json_object_object_add(o, "errors", json_object_new_uint64(st[i].errors));
		json_object_object_add(o, "in_flight", json_object_new_uint64(st[i].in_flight));
		json_object_object_add(o, "latency_ns", json_object_new_uint64(st[i].lat_ns));
		json_object *h = json_object_new_array();
		for (int b = 0; b < VIO_HIST_BUCKETS; b++)
			json_object_array_add(h, json_object_new_uint64(st[i].hist[b]));
		json_object_object_add(o, "histogram_us", h);
		json_object_object_add(ops, vio_op_name(i), o);
	}
	json_object_object_add(res, "ops", ops);
	return 0;
}

static int
get_u64(json_object *args, const char *key, uint64_t *out, reqerr *e)
{
	json_object *v;
	*out = 0;
	if (!json_object_object_get_ex(args, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0) {
		e->code = CE_E_BAD_REQUEST;
		return err_set(-EINVAL, "argument '%s' must be a non-negative integer", key);
	}
	*out = json_object_get_uint64(v);
	return 0;
}

int
op_test_vio_fault(json_object *args, json_object *res, reqerr *e)
{
	if (!vio_test_ops()) {
		e->code = CE_E_NOT_SUPPORTED;
		return err_set(-EOPNOTSUPP, "test.vio_fault needs caskd started with --test-ops");
	}
	const char *name = arg_name(args, e);
	if (name == NULL)
		return -EINVAL;
	int err = check_export(name, e);
	if (err != 0)
		return err;
	json_object *v;
	const char *action = "status";
	if (json_object_object_get_ex(args, "action", &v) && json_object_is_type(v, json_type_string) &&
	    (action = str_value(v, "action", e)) == NULL)
		return e->err;
	vio_fault_rule ru = { 0 };
	uint64_t eno = 0;
	if ((err = get_u64(args, "errno", &eno, e)) != 0 || (err = get_u64(args, "nth", &ru.nth, e)) != 0 ||
	    (err = get_u64(args, "delay_us", &ru.delay_us, e)) != 0 ||
	    (err = arg_bool(args, "pinned", &ru.pinned, e)) != 0)
		return err;
	if (json_object_object_get_ex(args, "ops", &v) && json_object_is_type(v, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			const char *k = str_value(json_object_array_get_idx(v, i), "ops", e);
			if (k == NULL)
				return e->err;
			int op = 0;
			while (op < VIO_NOPS && strcmp(vio_op_name(op), k ? k : "") != 0)
				op++;
			if (op == VIO_NOPS) {
				e->code = CE_E_INVALID_ARGUMENT;
				return err_set(-EINVAL, "unknown request kind '%s' (read, write, flush, trim, zero, map, "
				    "cache)", k ? k : "");
			}
			ru.kinds |= 1u << op;
		}
	}
	if (strcmp(action, "fail") == 0) {
		ru.action = VIO_FAULT_FAIL;
		ru.err = eno == 0 ? -EIO : -(int)MIN(eno, (uint64_t)4095);
	} else if (strcmp(action, "delay") == 0) {
		ru.action = VIO_FAULT_DELAY;
	} else if (strcmp(action, "stall") == 0) {
		ru.action = VIO_FAULT_STALL;
	} else if (strcmp(action, "clear") == 0) {
		ru.action = VIO_FAULT_NONE;
	} else if (strcmp(action, "release") == 0) {
		json_object_object_add(res, "released", json_object_new_uint64(vio_fault_release(name)));
	} else if (strcmp(action, "status") != 0) {
		e->code = CE_E_INVALID_ARGUMENT;
		return err_set(-EINVAL, "action must be fail, delay, stall, clear, release or status");
	}
	if (ru.action != VIO_FAULT_NONE && ru.kinds == 0) {
		e->code = CE_E_INVALID_ARGUMENT;
		return err_set(-EINVAL, "argument 'ops' (the kinds of request to act on) is required");
	}
	if (strcmp(action, "release") != 0 && strcmp(action, "status") != 0)
		vio_fault_set(name, &ru);
	vio_fault_status st;
	vio_fault_get(name, &st);
	json_object_object_add(res, "matched", json_object_new_uint64(st.matched));
	json_object_object_add(res, "injected", json_object_new_uint64(st.injected));
	json_object_object_add(res, "held", json_object_new_uint64(st.held));
	json_object_object_add(res, "max_held", json_object_new_uint64(st.max_held));
	json_object_object_add(res, "released_total", json_object_new_uint64(st.released));
	json_object_object_add(res, "delaying", json_object_new_uint64(st.delaying));
	json_object_object_add(res, "withdrawn", json_object_new_uint64(st.withdrawn));
	json_object_object_add(res, "stats_entries", json_object_new_uint64(vio_stats_count()));
	return 0;
}
