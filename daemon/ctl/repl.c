/*
 * repl.c -- the replication operations (docs/control-protocol.md,
 * docs/replication.md section 10.3): vol.create with "replicas", and
 * vol.status. The controller itself is daemon/repl/ctrl.c.
 */
#include "ctl_impl.h"
#include "../repl/ctrl.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* vol.create with a non-empty "replicas" array (op_vol_create hands it here). */
int
op_vol_create_replicated(json_object *args, json_object *res, reqerr *e)
{
	const char *full = arg_str(args, "name", 1, e);
	if (full == NULL)
		return e->err;
	char pool[64];
	const char *vol;
	if (split_name(full, pool, sizeof(pool), &vol, e) != 0)
		return e->err;
	uint64_t size;
	if (arg_u64(args, "size", 1, &size, e) != 0)
		return e->err;
	json_object *reps;
	json_object_object_get_ex(args, "replicas", &reps);
	size_t n = json_object_array_length(reps);
	const char **rv = xcalloc(n ? n : 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		json_object *it = json_object_array_get_idx(reps, i);
		if (!json_object_is_type(it, json_type_string) || (rv[i] = str_value(it, "replicas", e)) == NULL) {
			free(rv);
			return e->err ? e->err : fail(e, err_set(-EINVAL, "'replicas' must be strings HOST:PORT/POOL"),
			    CE_E_BAD_REQUEST);
		}
	}
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	int level = 2;
	uint64_t deadline_ms = 5000;
	json_object *props;
	if (json_object_object_get_ex(args, "props", &props) && json_object_is_type(props, json_type_object)) {
		json_object_object_foreach(props, k, v) {
			const char *val = json_object_is_type(v, json_type_string) ? str_value(v, k, e) :
			    json_object_get_string(v);
			if (val == NULL && e->err) {
				free(rv);
				return e->err;
			}
			int err = 0;
			if (strcmp(k, "consistency") == 0) {
				level = val && strcmp(val, "one") == 0 ? 1 : val && strcmp(val, "quorum") == 0 ? 2 :
				    val && strcmp(val, "all") == 0 ? 3 : 0;
				if (level == 0)
					err = err_set(-EINVAL, "consistency must be one, quorum or all");
			} else if (strcmp(k, "repl_deadline") == 0) {
				char *end;
				deadline_ms = val ? strtoull(val, &end, 10) : 0;
				if (val == NULL || *end != '\0' || deadline_ms < 100 || deadline_ms > 600000)
					err = err_set(-EINVAL, "repl_deadline is milliseconds, 100 to 600000");
			} else {
				err = ce_vol_props_parse(&pr, k, val);
			}
			if (err != 0) {
				free(rv);
				return fail(e, err, CE_E_INVALID_ARGUMENT);
			}
		}
	}
	int err = repl_ctrl_create(pool, vol, size, &pr, rv, n, level, (uint32_t)deadline_ms);
	free(rv);
	if (err != 0)
		return fail(e, err, ce_errcode_of(err));
	return repl_ctrl_status(full, res) == 0 ? 0 : 0;
}

int
op_vol_status(json_object *args, json_object *res, reqerr *e)
{
	const char *full = arg_str(args, "name", 1, e);
	if (full == NULL)
		return e->err;
	if (repl_ctrl_status(full, res) != 0)
		return fail(e, err_set(-EINVAL, "%s is not a replicated volume this caskd controls", full),
		    CE_E_NOT_REPLICATED);
	return 0;
}
