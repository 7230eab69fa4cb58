/*
 * jobs.c -- the job operations: job.get, wait, cancel, list (the jobs
 * themselves are ../job.c).
 */
#include "ctl_impl.h"
#include "../job.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

static int
job_id_arg(json_object *args, uint64_t *id, reqerr *e)
{
	json_object *v;
	if (!json_object_object_get_ex(args, "id", &v) || !json_object_is_type(v, json_type_int))
		return fail(e, err_set(-EINVAL, "argument 'id' (a job id) is required"), CE_E_BAD_REQUEST);
	*id = json_object_get_uint64(v);
	return 0;
}

/* job.get {"id"} -> the job */
int
op_job_get(json_object *args, json_object *res, reqerr *e)
{
	uint64_t id;
	if (job_id_arg(args, &id, e) != 0)
		return e->err;
	json_object *j = job_get(id);
	if (j == NULL)
		return fail(e, err_set(-ENOENT, "no job %" PRIu64, id), CE_E_JOB_NOT_FOUND);
	json_object_object_foreach(j, k, v) json_object_object_add(res, k, json_object_get(v));
	json_object_put(j);
	return 0;
}

/* job.wait {"id", "timeout_ms" (default: until it ends)} -> the job */
int
op_job_wait(json_object *args, json_object *res, reqerr *e)
{
	uint64_t id;
	if (job_id_arg(args, &id, e) != 0)
		return e->err;
	json_object *t;
	int ms = json_object_object_get_ex(args, "timeout_ms", &t) ? json_object_get_int(t) : -1;
	if (job_wait(id, ms) != 0)
		return fail(e, err_set(-ENOENT, "no job %" PRIu64, id), CE_E_JOB_NOT_FOUND);
	return op_job_get(args, res, e);
}

int
op_job_cancel(json_object *args, json_object *res, reqerr *e)
{
	(void)res;
	uint64_t id;
	if (job_id_arg(args, &id, e) != 0)
		return e->err;
	int err = job_cancel(id);
	if (err == -ENOENT)
		return fail(e, err_set(err, "no job %" PRIu64, id), CE_E_JOB_NOT_FOUND);
	if (err == -EALREADY)
		return fail(e, err_set(err, "job %" PRIu64 " has already ended", id), CE_E_JOB_ENDED);
	return 0;
}

/* job.list: jobs are listed by id */
int
op_job_list(json_object *args, json_object *res, reqerr *e)
{
	const char *cursor;
	uint64_t limit;
	if (page_params(args, &cursor, &limit, e) != 0)
		return e->err;
	json_object *all = job_list(), *id;
	page_list items = { 0 };
	for (size_t i = 0; i < json_object_array_length(all); i++) {
		json_object *j = json_object_array_get_idx(all, i);
		char key[24];
		snprintf(key, sizeof(key), "%020" PRIu64, json_object_object_get_ex(j, "id", &id) ?
		    json_object_get_uint64(id) : 0);
		page_put(&items, key, json_object_get(j));
	}
	json_object_put(all);
	json_object_object_add(res, "jobs", page_of(&items, args, res));
	return 0;
}
