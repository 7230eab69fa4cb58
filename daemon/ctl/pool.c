/*
 * pool.c -- the pool operations: pool.create, import, export, destroy,
 * list, status, clear, inject.
 */
#include "ctl_impl.h"
#include "../repl/ctrl.h"
#include "../log.h"
#include "../registry.h"
#include "util.h"
#include "../vio_impl.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

static json_object *
pool_json(const char *name, ce_pool *p)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "name", json_object_new_string(name));
	if (p == NULL) {
		json_object_object_add(o, "state", json_object_new_string("UNAVAIL"));
		json_object_object_add(o, "error", json_object_new_string("its vdevs did not import"));
		return o;
	}
	ce_pool_stat st;
	ce_pool_stat_get(p, &st);
	json_object_object_add(o, "guid", hex_guid(st.guid));
	json_object_object_add(o, "state", json_object_new_string(st.suspended ? "SUSPENDED" : "ONLINE"));
	char dmg[1024];
	int damaged = reg_log_damage_text(&st, name, dmg, sizeof(dmg));
	if (st.suspended) {
		char why[256];
		snprintf(why, sizeof(why), "suspended (%s): %s; fix the device, then 'cask pool clear %s'",
		    strerror(-st.suspended), st.suspend_reason[0] ? st.suspend_reason : "IO error", name);
		json_object_object_add(o, "error", json_object_new_string(why));
	} else if (damaged) {
		json_object_object_add(o, "error", json_object_new_string(dmg));
	}
	if (damaged) {
		/* intent log damage the replay found, until pool.clear (lib/engine/ilog.c invariant 6) */
		json_object *d = json_object_new_object();
		json_object_object_add(d, "damaged_block", json_object_new_uint64(st.log_damaged_seq));
		json_object_object_add(d, "lost_blocks", json_object_new_uint64(st.log_lost_blocks));
		json_object_object_add(d, "lost_records", json_object_new_uint64(st.log_lost_records));
		json_object_object_add(d, "certain", json_object_new_boolean(st.log_damage_certain));
		json_object_object_add(d, "bad_inplace_records", json_object_new_uint64(st.log_bad_inplace));
		json_object_object_add(d, "bad_inplace_certain", json_object_new_boolean(st.log_bad_inplace_certain));
		json_object_object_add(d, "volumes", json_object_new_int((int)st.log_damaged_vols));
		json_object_object_add(o, "log_damage", d);
	}
	json_object_object_add(o, "size", json_object_new_uint64(st.size));
	json_object_object_add(o, "allocated", json_object_new_uint64(st.allocated));
	json_object_object_add(o, "free", json_object_new_uint64(st.free));
	json_object_object_add(o, "nvdevs", json_object_new_int((int)st.nvdevs));
	json_object_object_add(o, "volumes", json_object_new_int((int)st.nvols));
	json_object_object_add(o, "checksum_errors", json_object_new_uint64(st.cksum_errors));
	json_object_object_add(o, "io_errors", json_object_new_uint64(st.io_errors));
	json_object_object_add(o, "txg", json_object_new_uint64(st.synced_txg));
	json_object_object_add(o, "log_size", json_object_new_uint64(st.log_size));
	json_object_object_add(o, "log_commits", json_object_new_uint64(st.log_commits));
	json_object_object_add(o, "log_blocks", json_object_new_uint64(st.log_blocks));
	json_object_object_add(o, "log_bytes", json_object_new_uint64(st.log_bytes));
	json_object_object_add(o, "log_fallbacks", json_object_new_uint64(st.log_fallbacks));
	json_object_object_add(o, "log_replayed", json_object_new_uint64(st.log_replayed));
	json_object_object_add(o, "log_inplace_bytes", json_object_new_uint64(st.log_inplace));
	if (st.rewound_txg != 0) {
		/* imported with "rewind": what the import discarded */
		json_object *rw = json_object_new_object();
		json_object_object_add(rw, "base_txg", json_object_new_uint64(st.rewound_base_txg));
		json_object_object_add(rw, "first_discarded_txg", json_object_new_uint64(st.rewound_base_txg + 1));
		json_object_object_add(rw, "last_discarded_txg", json_object_new_uint64(st.rewound_txg));
		json_object_object_add(rw, "last_discarded_time_ns", json_object_new_uint64(st.rewound_time_ns));
		json_object_object_add(o, "rewound", rw);
	}
	if (st.newer_damaged_txg != 0)
		json_object_object_add(o, "newer_damaged_txg", json_object_new_uint64(st.newer_damaged_txg));
	return o;
}

typedef struct pj {
	const char *name;
	json_object *out;
} pj;

static int
pool_json_cb(ce_pool *p, void *arg)
{
	pj *x = arg;
	x->out = pool_json(x->name, p);
	return 0;
}

static int
paths_arg(json_object *args, const char **paths, unsigned *n, reqerr *e)
{
	json_object *arr;
	if (!json_object_object_get_ex(args, "paths", &arr) || !json_object_is_type(arr, json_type_array))
		return fail(e, err_set(-EINVAL, "argument 'paths' (an array of file names) is required"),
		    CE_E_BAD_REQUEST);
	size_t len = json_object_array_length(arr);
	if (len == 0 || len > CE_MAX_VDEVS_API)
		return fail(e, err_set(-EINVAL, "a pool needs 1 to %d vdev files", CE_MAX_VDEVS_API),
		    CE_E_INVALID_ARGUMENT);
	for (size_t i = 0; i < len; i++) {
		json_object *s = json_object_array_get_idx(arr, i);
		if (!json_object_is_type(s, json_type_string))
			return fail(e, err_set(-EINVAL, "'paths' must hold strings"), CE_E_BAD_REQUEST);
		if ((paths[i] = str_value(s, "paths", e)) == NULL)
			return e->err;
		if (paths[i][0] != '/')
			return fail(e, err_set(-EINVAL, "vdev path '%s' must be absolute", paths[i]),
			    CE_E_INVALID_ARGUMENT);
	}
	*n = (unsigned)len;
	return 0;
}

int
op_pool_create(json_object *args, json_object *res, reqerr *e)
{
	const char *name = arg_str(args, "name", 1, e);
	if (name == NULL)
		return e->err;
	const char *paths[CE_MAX_VDEVS_API];
	unsigned n;
	uint64_t size;
	int force;
	if (paths_arg(args, paths, &n, e) != 0 || arg_u64(args, "size", 0, &size, e) != 0 ||
	    arg_bool(args, "force", &force, e) != 0)
		return e->err;
	int err = reg_pool_create(name, paths, n, size, force ? CE_POOL_FORCE : 0);
	if (err != 0) {
		/* VDEV_IN_USE is what "force" overrides; any other EEXIST stays CASK_1.0's POOL_EXISTS */
		int c = ce_errcode_of(err);
		return fail(e, err, c == CE_E_VDEV_IN_USE ? c : err == -EEXIST ? CE_E_POOL_EXISTS : ctl_code(err, 0));
	}
	json_object_object_add(res, "name", json_object_new_string(name));
	return 0;
}

int
op_pool_import(json_object *args, json_object *res, reqerr *e)
{
	const char *want = arg_str(args, "name", 0, e);
	const char *dir = arg_str(args, "dir", 0, e);
	const char *paths[CE_MAX_VDEVS_API];
	char *found[CE_MAX_VDEVS_API];
	unsigned n = 0, nfound = 0;
	int err, rewind;
	if (e->err || arg_bool(args, "rewind", &rewind, e) != 0)
		return e->err;
	if (dir != NULL) {
		if (want == NULL)
			return fail(e, err_set(-EINVAL, "importing from a directory needs the pool name"), CE_E_BAD_REQUEST);
		DIR *d = opendir(dir);
		if (d == NULL)
			return fail(e, err_set(-errno, "%s: %s", dir, strerror(errno)), CE_E_INVALID_ARGUMENT);
		struct dirent *de;
		while ((de = readdir(d)) != NULL && nfound < CE_MAX_VDEVS_API) {
			char path[PATH_MAX];
			struct stat st;
			ce_vdev_label lb;
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			if (stat(path, &st) != 0 || (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)))
				continue;
			if (ce_vdev_probe(path, &lb) == 0 && strcmp(lb.pool_name, want) == 0)
				found[nfound++] = xstrdup(path);
		}
		closedir(d);
		if (nfound == 0)
			return fail(e, err_set(-ENOENT, "no vdev of pool %s in %s", want, dir), CE_E_POOL_NOT_FOUND);
		for (unsigned i = 0; i < nfound; i++)
			paths[i] = found[i];
		n = nfound;
	} else if (paths_arg(args, paths, &n, e) != 0) {
		return e->err;
	}
	char name[64];
	err = reg_pool_import(paths, n, rewind ? CE_POOL_REWIND : 0, name, sizeof(name));
	for (unsigned i = 0; i < nfound; i++)
		free(found[i]);
	if (err == 0 && want != NULL && strcmp(want, name) != 0) {
		reg_pool_export(name);
		return fail(e, err_set(-EINVAL, "those vdevs hold pool %s, not %s", name, want), CE_E_BAD_VDEV);
	}
	if (err != 0)
		return fail(e, err, err == -EEXIST ? CE_E_POOL_EXISTS : (err == -EINVAL || err == -EIO) ? CE_E_BAD_VDEV
												    : ctl_code(err, 0));
	json_object_object_add(res, "name", json_object_new_string(name));
	repl_ctrl_resume_pool(name); /* replicated volumes this caskd controlled: reconcile, then serve */
	return 0;
}

static int
pool_export_run(json_object *args, json_object *res, reqerr *e)
{
	(void)res;
	const char *name = arg_str(args, "name", 1, e);
	if (name == NULL)
		return e->err;
	int err = reg_pool_export(name);
	if (err == 0)
		vio_stats_forget(name); /* its volumes' IO counters (vio_stats.c invariant 1) */
	return err ? fail(e, err, ctl_code(err, 0)) : 0;
}

int
op_pool_export(json_object *args, json_object *res, reqerr *e)
{
	return with_holders(args, res, e, HOLD_POOL, "pool.export", pool_export_run);
}

static int
clear_cb(ce_pool *p, void *arg)
{
	(void)arg;
	return ce_pool_clear(p);
}

static int
clear_report_cb(ce_pool *p, void *arg)
{
	(void)arg;
	reg_log_damage(p);
	return 0;
}

int
op_pool_clear(json_object *args, json_object *res, reqerr *e)
{
	(void)res;
	const char *name = arg_str(args, "name", 1, e);
	if (name == NULL)
		return e->err;
	int err = reg_with_pool(name, clear_cb, NULL);
	if (err != 0) {
		if (err != -ENOENT && err != -ENXIO)
			log_msg(LOG_WARN, "pool %s: clear failed: %s", name, err_get());
		return fail(e, err, err == -EIO ? CE_E_POOL_SUSPENDED : ctl_code(err, 0));
	}
	log_msg(LOG_INFO, "pool %s: cleared; online", name);
	reg_with_pool(name, clear_report_cb, NULL); /* a suspended pool's clear replays the log again */
	return 0;
}

static int
inject_cb(ce_pool *p, void *arg)
{
	const ce_fault *f = arg;
	if (f->op == 0) {
		ce_pool_fault_clear(p);
		return 0;
	}
	return ce_pool_fault_inject(p, f);
}

/* Fault injection for tests and drills: {"name", "op": read|write|flush|none, "vdev", "after", "persistent"}. */
int
op_pool_inject(json_object *args, json_object *res, reqerr *e)
{
	(void)res;
	const char *name = arg_str(args, "name", 1, e);
	const char *op = name ? arg_str(args, "op", 1, e) : NULL;
	if (op == NULL)
		return e->err;
	ce_fault f = { 0, -1, 0, 0 };
	uint64_t u;
	if (strcmp(op, "read") == 0)
		f.op = CE_FAULT_READ;
	else if (strcmp(op, "write") == 0)
		f.op = CE_FAULT_WRITE;
	else if (strcmp(op, "flush") == 0)
		f.op = CE_FAULT_FLUSH;
	else if (strcmp(op, "none") != 0)
		return fail(e, err_set(-EINVAL, "bad fault '%s' (read, write, flush or none)", op),
		    CE_E_INVALID_ARGUMENT);
	json_object *v;
	if (json_object_object_get_ex(args, "vdev", &v) && !json_object_is_type(v, json_type_null)) {
		if (arg_u64(args, "vdev", 1, &u, e) != 0)
			return e->err;
		if (u > CE_MAX_VDEVS_API)
			return fail(e, err_set(-EINVAL, "no vdev %" PRIu64, u), CE_E_INVALID_ARGUMENT);
		f.vdev = (int)u;
	}
	if (arg_u64(args, "after", 0, &f.after, e) != 0)
		return e->err;
	if (json_object_object_get_ex(args, "persistent", &v) && !json_object_is_type(v, json_type_null)) {
		if (!json_object_is_type(v, json_type_boolean))
			return fail(e, err_set(-EINVAL, "argument 'persistent' must be true or false"), CE_E_BAD_REQUEST);
		f.persistent = json_object_get_boolean(v);
	}
	int err = reg_with_pool(name, inject_cb, &f);
	if (err != 0)
		return fail(e, err, ctl_code(err, 0));
	if (f.op != 0)
		log_msg(LOG_WARN, "pool %s: fault injected: %s on %s after %" PRIu64 " calls, %s", name,
		    ce_fault_op_name(f.op), f.vdev < 0 ? "every vdev" : "one vdev", f.after,
		    f.persistent ? "persistent" : "once");
	else
		log_msg(LOG_INFO, "pool %s: injected faults cleared", name);
	return 0;
}

int
op_pool_destroy(json_object *args, json_object *res, reqerr *e)
{
	(void)res;
	const char *name = arg_str(args, "name", 1, e);
	if (name == NULL)
		return e->err;
	int err = reg_pool_destroy(name);
	if (err == 0)
		vio_stats_forget(name);
	return err ? fail(e, err, ctl_code(err, 0)) : 0;
}

int
op_pool_list(json_object *args, json_object *res, reqerr *e)
{
	(void)args;
	(void)e;
	char **names;
	size_t n;
	reg_pool_names(&names, &n);
	json_object *arr = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		pj x = { names[i], NULL };
		if (reg_with_pool(names[i], pool_json_cb, &x) != 0)
			x.out = pool_json(names[i], NULL);
		json_object_array_add(arr, x.out);
		free(names[i]);
	}
	free(names);
	json_object_object_add(res, "pools", arr);
	return 0;
}

int
op_pool_status(json_object *args, json_object *res, reqerr *e)
{
	const char *name = arg_str(args, "name", 1, e);
	if (name == NULL)
		return e->err;
	char **paths;
	unsigned n;
	int err = reg_pool_paths(name, &paths, &n);
	if (err != 0)
		return fail(e, err, ctl_code(err, 0));
	pj x = { name, NULL };
	if (reg_with_pool(name, pool_json_cb, &x) != 0)
		x.out = pool_json(name, NULL);
	json_object *arr = json_object_new_array();
	for (unsigned i = 0; i < n; i++) {
		json_object_array_add(arr, json_object_new_string(paths[i]));
		free(paths[i]);
	}
	free(paths);
	json_object_object_add(x.out, "vdevs", arr);
	json_object_object_foreach(x.out, k, v) json_object_object_add(res, k, json_object_get(v));
	json_object_put(x.out);
	return 0;
}
