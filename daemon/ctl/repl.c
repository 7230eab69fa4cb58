/*
 * repl.c -- the replication operations (docs/control-protocol.md,
 * docs/replication.md section 10.3): vol.create with "replicas",
 * vol.status, and the replica jobs vol.replica_add, _replace, _rebuild and
 * vol.replica_remove. The controller itself is daemon/repl/ctrl.c, the
 * rebuild job daemon/repl/rebuild.c.
 */
#include "ctl_impl.h"
#include "../job.h"
#include "../repl/ctrl.h"
#include "../repl/rebuild.h"
#include "../registry.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
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
	uint64_t deadline_ms = 5000, rate = 0, wait_s = 0;
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
			} else if (strcmp(k, "rebuild_wait") == 0) {
				char *end;
				wait_s = val ? strtoull(val, &end, 10) : 0;
				if (val == NULL || *end != '\0' || wait_s > 365ull * 86400)
					err = err_set(-EINVAL, "rebuild_wait is seconds, 0 (no automatic rebuild) to a year");
			} else if (strcmp(k, "rebuild_rate") == 0) {
				char *end;
				rate = val ? strtoull(val, &end, 10) : 0;
				if (val == NULL || *end != '\0' || rate > 1000000)
					err = err_set(-EINVAL, "rebuild_rate is MB/s, 0 (unlimited) to 1000000");
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
	(void)repl_ctrl_set_rebuild_rate(full, (uint32_t)rate);
	if (wait_s > 0 && repl_ctrl_set_rebuild_wait(full, (uint32_t)wait_s) == 0)
		repl_rebuild_policy_start();
	return repl_ctrl_status(full, res) == 0 ? 0 : 0;
}

/* A replica this caskd holds but does not control: its record says who does. */
typedef struct rinfo_args {
	const char *vol;
	json_object *res;
} rinfo_args;

static int
replica_info(ce_pool *p, void *arg)
{
	rinfo_args *a = arg;
	ce_repl_info ri;
	int err = ce_repl_info_get(p, a->vol, &ri);
	if (err != 0)
		return err;
	char ep[64], by[200];
	snprintf(ep, sizeof(ep), "%" PRIu64 ".%016" PRIx64, ri.promised.counter, ri.promised.node);
	snprintf(by, sizeof(by), "controlled by %s at %s", ep, ri.holder_addr[0] ? ri.holder_addr : "?");
	json_object_object_add(a->res, "state", json_object_new_string("replica"));
	json_object_object_add(a->res, "epoch", json_object_new_string(ep));
	json_object_object_add(a->res, "controller", json_object_new_string(ri.holder_addr));
	json_object_object_add(a->res, "fenced_by", json_object_new_string(by));
	json_object_object_add(a->res, "seq", json_object_new_uint64(ri.applied));
	json_object_object_add(a->res, "replicas", json_object_new_array());
	return 0;
}

int
op_vol_status(json_object *args, json_object *res, reqerr *e)
{
	const char *full = arg_str(args, "name", 1, e);
	if (full == NULL)
		return e->err;
	if (repl_ctrl_status(full, res) == 0)
		return 0;
	char pool[64];
	const char *vol;
	if (split_name(full, pool, sizeof(pool), &vol, e) != 0)
		return e->err;
	rinfo_args ra = { vol, res };
	if (reg_with_pool(pool, replica_info, &ra) == 0)
		return 0;
	return fail(e, err_set(-EINVAL, "%s is not a replicated volume this caskd controls or holds", full),
	    CE_E_NOT_REPLICATED);
}

/* vol.takeover {"name": "POOL/VOL"}: become the controller of a replica this caskd holds (rule 7). */
int
op_vol_takeover(json_object *args, json_object *res, reqerr *e)
{
	const char *full = arg_str(args, "name", 1, e);
	if (full == NULL)
		return e->err;
	char pool[64];
	const char *vol;
	if (split_name(full, pool, sizeof(pool), &vol, e) != 0)
		return e->err;
	int force = 0;
	if (arg_bool(args, "force", &force, e) != 0)
		return e->err;
	int err = repl_ctrl_takeover(pool, vol, force);
	if (err != 0)
		return fail(e, err, ce_errcode());
	return repl_ctrl_status(full, res) == 0 ? 0 : 0;
}

/* The job started for a replica operation: {"job"}; with "wait", answer when it ends (its error is ours). */
static int
replica_job(json_object *args, json_object *res, reqerr *e, int op)
{
	const char *full = arg_str(args, "name", 1, e);
	const char *rep = full ? arg_str(args, op == RB_OP_REPLACE ? "new" : "replica", 1, e) : NULL;
	const char *old = rep && op == RB_OP_REPLACE ? arg_str(args, "old", 1, e) : NULL;
	if (full == NULL || rep == NULL || (op == RB_OP_REPLACE && old == NULL))
		return e->err;
	int wait = 0;
	if (arg_bool(args, "wait", &wait, e) != 0)
		return e->err;
	uint64_t id;
	int err = repl_rebuild_start(full, rep, old, op, &id);
	if (err != 0)
		return fail(e, err, ce_errcode_of(err));
	json_object_object_add(res, "job", json_object_new_uint64(id));
	if (!wait)
		return 0;
	job_wait(id, -1);
	int code;
	char msg[1024];
	if ((err = job_outcome(id, &code, msg, sizeof(msg))) != 0)
		return fail(e, err_set(err, "%s", msg), code);
	return 0;
}

/* vol.replica_rebuild {"name", "replica": HOST:PORT/POOL, "wait"} -> {"job"} */
int op_vol_replica_rebuild(json_object *a, json_object *r, reqerr *e) { return replica_job(a, r, e, RB_OP_REBUILD); }
/* vol.replica_add {"name", "replica", "wait"} -> {"job"} */
int op_vol_replica_add(json_object *a, json_object *r, reqerr *e) { return replica_job(a, r, e, RB_OP_ADD); }
/* vol.replica_replace {"name", "old", "new", "wait"} -> {"job"} */
int op_vol_replica_replace(json_object *a, json_object *r, reqerr *e) { return replica_job(a, r, e, RB_OP_REPLACE); }

/* vol.verify {"name", "repair"} -> {"job", "size", "chunk", "chunks", "differing", "replicas", "ranges"} */
int
op_vol_verify(json_object *args, json_object *res, reqerr *e)
{
	const char *full = arg_str(args, "name", 1, e);
	if (full == NULL)
		return e->err;
	int repair = 0;
	if (arg_bool(args, "repair", &repair, e) != 0)
		return e->err;
	if (repair)
		return fail(e, err_setc(CE_E_INVALID_ARGUMENT, -EOPNOTSUPP, "vol verify --repair is not built "
		    "(verify reports differing ranges only)"), CE_E_INVALID_ARGUMENT);
	int err = repl_verify(full, res);
	return err != 0 ? fail(e, err, ce_errcode_of(err)) : 0;
}

/* vol.replica_remove {"name", "replica"} -> {} */
int
op_vol_replica_remove(json_object *args, json_object *res, reqerr *e)
{
	(void)res;
	const char *full = arg_str(args, "name", 1, e);
	const char *rep = full ? arg_str(args, "replica", 1, e) : NULL;
	if (full == NULL || rep == NULL)
		return e->err;
	int err = repl_replica_remove(full, rep);
	return err ? fail(e, err, ce_errcode_of(err)) : 0;
}
