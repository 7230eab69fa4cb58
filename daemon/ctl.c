/*
 * ctl.c -- the control socket (docs/control-protocol.md).
 *
 * Owns the unix socket that libcask clients talk to, one thread per client
 * connection, frame parsing, access control (SO_PEERCRED) and the table
 * of operations, each a thin layer over the registry and the engine.
 *
 * Invariants:
 *   1. Only root and caskd's own user are served; the socket is 0600 in a
 *      0700 directory as a first line, SO_PEERCRED as the second.
 *   2. A malformed frame gets an error response and closes that
 *      connection only; a request that fails gets an error response
 *      (errno, stable code, message) and the connection goes on.
 *   3. Every response carries the request's id.
 */
#include "ctl.h"
#include "ctlframe.h"
#include "job.h"
#include "log.h"
#include "registry.h"
#include "sockio.h"
#include "util.h"
#include "vioctl.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>


static int lfd = -1;
static char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static pthread_t accept_tid;
static atomic_int stopping;
/* the request being served by this thread: a descriptor passed with it, and its connection */
static __thread int req_fd = -1;
static __thread uint64_t req_conn;
static _Atomic uint64_t next_conn = 1;

/* Take the descriptor passed with the request (the op then owns it), or -1. */
static int
take_fd(void)
{
	int fd = req_fd;
	req_fd = -1;
	return fd;
}
static pthread_mutex_t clients_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t clients_cv = PTHREAD_COND_INITIALIZER;
static int nclients;
static int client_fds[256];
static const char *version_string = "0.1.0";

/* ---- errors ---- */

typedef struct reqerr {
	int err;          /* negative errno */
	const char *code; /* stable code */
	json_object *items; /* a batch refused: [{name, errno, code, message}] for each refused name */
} reqerr;

static int
fail(reqerr *e, int err, const char *code)
{
	e->err = err;
	e->code = code;
	return err;
}

/* The stable code for an engine error, in the context of a pool or a volume (ctl.h). */
const char *
ctl_code_for(int err, int vol)
{
	switch (-err) {
	case ENOENT: return vol ? "VOLUME_NOT_FOUND" : "POOL_NOT_FOUND";
	case EEXIST: return vol ? "VOLUME_EXISTS" : "POOL_EXISTS";
	case EBUSY: return "BUSY";
	case ENOSPC: return "NO_SPACE";
	case EIO: return "IO_ERROR";
	case ENXIO: return "POOL_UNAVAILABLE";
	case EINVAL: case EFBIG: case ERANGE: return "INVALID_ARGUMENT";
	case EROFS: case EACCES: case EPERM: return "PERMISSION_DENIED";
	default: return "INTERNAL";
	}
}

/* ---- argument helpers ---- */

static const char *
arg_str(json_object *args, const char *key, int required, reqerr *e)
{
	json_object *v;
	if (!json_object_object_get_ex(args, key, &v) || json_object_is_type(v, json_type_null)) {
		if (required)
			fail(e, err_set(-EINVAL, "argument '%s' is required", key), "BAD_REQUEST");
		return NULL;
	}
	if (!json_object_is_type(v, json_type_string)) {
		fail(e, err_set(-EINVAL, "argument '%s' must be a string", key), "BAD_REQUEST");
		return NULL;
	}
	return json_object_get_string(v);
}

static int
arg_u64(json_object *args, const char *key, int required, uint64_t *out, reqerr *e)
{
	json_object *v;
	if (!json_object_object_get_ex(args, key, &v) || json_object_is_type(v, json_type_null)) {
		if (required)
			return fail(e, err_set(-EINVAL, "argument '%s' is required", key), "BAD_REQUEST");
		*out = 0;
		return 0;
	}
	if (!json_object_is_type(v, json_type_int))
		return fail(e, err_set(-EINVAL, "argument '%s' must be an integer", key), "BAD_REQUEST");
	errno = 0;
	int64_t i = json_object_get_int64(v);
	uint64_t u = json_object_get_uint64(v);
	if (i < 0 && u == 0)
		return fail(e, err_set(-EINVAL, "argument '%s' must not be negative", key), "INVALID_ARGUMENT");
	*out = u;
	return 0;
}

/* A "POOL/VOL" name split into its parts. */
static int
split_name(const char *full, char *pool, size_t plen, const char **vol, reqerr *e)
{
	const char *slash = strchr(full, '/');
	if (slash == NULL || slash == full || slash[1] == '\0' || (size_t)(slash - full) >= plen ||
	    strchr(slash + 1, '/') != NULL)
		return fail(e, err_set(-EINVAL, "'%s' is not a volume name of the form POOL/VOLUME", full),
		    "INVALID_ARGUMENT");
	snprintf(pool, plen, "%.*s", (int)(slash - full), full);
	*vol = slash + 1;
	return 0;
}

static json_object *
hex_guid(uint64_t g)
{
	char b[20];
	snprintf(b, sizeof(b), "%016" PRIx64, g);
	return json_object_new_string(b);
}

/* ---- pool operations ---- */

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
	if (st.suspended) {
		char why[256];
		snprintf(why, sizeof(why), "suspended (%s): %s; fix the device, then 'cask pool clear %s'",
		    strerror(-st.suspended), st.suspend_reason[0] ? st.suspend_reason : "IO error", name);
		json_object_object_add(o, "error", json_object_new_string(why));
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
		    "BAD_REQUEST");
	size_t len = json_object_array_length(arr);
	if (len == 0 || len > CE_MAX_VDEVS_API)
		return fail(e, err_set(-EINVAL, "a pool needs 1 to %d vdev files", CE_MAX_VDEVS_API),
		    "INVALID_ARGUMENT");
	for (size_t i = 0; i < len; i++) {
		json_object *s = json_object_array_get_idx(arr, i);
		if (!json_object_is_type(s, json_type_string))
			return fail(e, err_set(-EINVAL, "'paths' must hold strings"), "BAD_REQUEST");
		paths[i] = json_object_get_string(s);
		if (paths[i][0] != '/')
			return fail(e, err_set(-EINVAL, "vdev path '%s' must be absolute", paths[i]),
			    "INVALID_ARGUMENT");
	}
	*n = (unsigned)len;
	return 0;
}

static int
op_pool_create(json_object *args, json_object *res, reqerr *e)
{
	const char *name = arg_str(args, "name", 1, e);
	if (name == NULL)
		return e->err;
	const char *paths[CE_MAX_VDEVS_API];
	unsigned n;
	uint64_t size;
	if (paths_arg(args, paths, &n, e) != 0 || arg_u64(args, "size", 0, &size, e) != 0)
		return e->err;
	int err = reg_pool_create(name, paths, n, size);
	if (err != 0)
		return fail(e, err, err == -EEXIST ? "POOL_EXISTS" : ctl_code_for(err, 0));
	json_object_object_add(res, "name", json_object_new_string(name));
	return 0;
}

static int
op_pool_import(json_object *args, json_object *res, reqerr *e)
{
	const char *want = arg_str(args, "name", 0, e);
	const char *dir = arg_str(args, "dir", 0, e);
	const char *paths[CE_MAX_VDEVS_API];
	char *found[CE_MAX_VDEVS_API];
	unsigned n = 0, nfound = 0;
	int err;
	if (e->err)
		return e->err;
	if (dir != NULL) {
		if (want == NULL)
			return fail(e, err_set(-EINVAL, "importing from a directory needs the pool name"), "BAD_REQUEST");
		DIR *d = opendir(dir);
		if (d == NULL)
			return fail(e, err_set(-errno, "%s: %s", dir, strerror(errno)), "INVALID_ARGUMENT");
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
			return fail(e, err_set(-ENOENT, "no vdev of pool %s in %s", want, dir), "POOL_NOT_FOUND");
		for (unsigned i = 0; i < nfound; i++)
			paths[i] = found[i];
		n = nfound;
	} else if (paths_arg(args, paths, &n, e) != 0) {
		return e->err;
	}
	char name[64];
	err = reg_pool_import(paths, n, name, sizeof(name));
	for (unsigned i = 0; i < nfound; i++)
		free(found[i]);
	if (err == 0 && want != NULL && strcmp(want, name) != 0) {
		reg_pool_export(name);
		return fail(e, err_set(-EINVAL, "those vdevs hold pool %s, not %s", name, want), "BAD_VDEV");
	}
	if (err != 0)
		return fail(e, err, err == -EEXIST ? "POOL_EXISTS" : (err == -EINVAL || err == -EIO) ? "BAD_VDEV"
												    : ctl_code_for(err, 0));
	json_object_object_add(res, "name", json_object_new_string(name));
	return 0;
}

static int
op_pool_export(json_object *args, json_object *res, reqerr *e)
{
	(void)res;
	const char *name = arg_str(args, "name", 1, e);
	if (name == NULL)
		return e->err;
	int err = reg_pool_export(name);
	return err ? fail(e, err, ctl_code_for(err, 0)) : 0;
}

static int
clear_cb(ce_pool *p, void *arg)
{
	(void)arg;
	return ce_pool_clear(p);
}

static int
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
		return fail(e, err, err == -EIO ? "POOL_SUSPENDED" : ctl_code_for(err, 0));
	}
	log_msg(LOG_INFO, "pool %s: cleared; online", name);
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
static int
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
		    "INVALID_ARGUMENT");
	json_object *v;
	if (json_object_object_get_ex(args, "vdev", &v) && !json_object_is_type(v, json_type_null)) {
		if (arg_u64(args, "vdev", 1, &u, e) != 0)
			return e->err;
		if (u > CE_MAX_VDEVS_API)
			return fail(e, err_set(-EINVAL, "no vdev %" PRIu64, u), "INVALID_ARGUMENT");
		f.vdev = (int)u;
	}
	if (arg_u64(args, "after", 0, &f.after, e) != 0)
		return e->err;
	if (json_object_object_get_ex(args, "persistent", &v) && !json_object_is_type(v, json_type_null)) {
		if (!json_object_is_type(v, json_type_boolean))
			return fail(e, err_set(-EINVAL, "argument 'persistent' must be true or false"), "BAD_REQUEST");
		f.persistent = json_object_get_boolean(v);
	}
	int err = reg_with_pool(name, inject_cb, &f);
	if (err != 0)
		return fail(e, err, ctl_code_for(err, 0));
	if (f.op != 0)
		log_msg(LOG_WARN, "pool %s: fault injected: %s on %s after %" PRIu64 " calls, %s", name,
		    ce_fault_op_name(f.op), f.vdev < 0 ? "every vdev" : "one vdev", f.after,
		    f.persistent ? "persistent" : "once");
	else
		log_msg(LOG_INFO, "pool %s: injected faults cleared", name);
	return 0;
}

static int
op_pool_destroy(json_object *args, json_object *res, reqerr *e)
{
	(void)res;
	const char *name = arg_str(args, "name", 1, e);
	if (name == NULL)
		return e->err;
	int err = reg_pool_destroy(name);
	return err ? fail(e, err, ctl_code_for(err, 0)) : 0;
}

static int
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

static int
op_pool_status(json_object *args, json_object *res, reqerr *e)
{
	const char *name = arg_str(args, "name", 1, e);
	if (name == NULL)
		return e->err;
	char **paths;
	unsigned n;
	int err = reg_pool_paths(name, &paths, &n);
	if (err != 0)
		return fail(e, err, ctl_code_for(err, 0));
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

/* ---- volume operations ---- */

typedef struct vctx {
	const char *pool;
	const char *vol;
	json_object *args;
	json_object *res;
	reqerr *e;
} vctx;

/* logical / allocated, two decimals (1.00 for nothing allocated) */
static json_object *
ratio_json(uint64_t logical, uint64_t alloc)
{
	double r = alloc == 0 ? 1.0 : (double)logical / (double)alloc;
	char s[32];
	snprintf(s, sizeof(s), "%.2f", r);
	return json_object_new_double_s(r, s);
}

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
			return fail(x->e, err_set(-EINVAL, "'props' must be an object"), "BAD_REQUEST");
		json_object_object_foreach(props, k, v) {
			const char *s = json_object_get_string(v);
			if (strcmp(k, "volblocksize") == 0) {
				uint64_t bs;
				if (util_parse_size(s, &bs) != 0 || bs > UINT32_MAX)
					return fail(x->e, err_set(-EINVAL, "bad volblocksize '%s'", s), "INVALID_ARGUMENT");
				pr.volblocksize = (uint32_t)bs;
			} else if (strcmp(k, "compression") == 0 || strcmp(k, "compress") == 0) {
				if (strcmp(s, "off") == 0)
					pr.compress = CE_COMPRESS_OFF;
				else if (strcmp(s, "lz4") == 0 || strcmp(s, "on") == 0)
					pr.compress = CE_COMPRESS_LZ4;
				else if (strcmp(s, "zstd") == 0)
					pr.compress = CE_COMPRESS_ZSTD;
				else
					return fail(x->e, err_set(-EINVAL, "bad compression '%s' (off, lz4, zstd)", s),
					    "INVALID_ARGUMENT");
			} else if (strcmp(k, "checksum") == 0) {
				if (strcmp(s, "xxh128") == 0 || strcmp(s, "on") == 0)
					pr.checksum = CE_CHECKSUM_XXH128;
				else if (strcmp(s, "sha256") == 0)
					pr.checksum = CE_CHECKSUM_SHA256;
				else
					return fail(x->e, err_set(-EINVAL, "bad checksum '%s' (xxh128, sha256)", s),
					    "INVALID_ARGUMENT");
			} else if (strcmp(k, "sync") == 0) {
				if (strcmp(s, "standard") == 0)
					pr.sync = CE_SYNC_STANDARD;
				else if (strcmp(s, "always") == 0)
					pr.sync = CE_SYNC_ALWAYS;
				else if (strcmp(s, "disabled") == 0)
					pr.sync = CE_SYNC_DISABLED;
				else
					return fail(x->e, err_set(-EINVAL, "bad sync '%s' (standard, always, disabled)", s),
					    "INVALID_ARGUMENT");
			} else {
				return fail(x->e, err_set(-EINVAL, "unknown property '%s' (volblocksize, "
				    "compression, checksum, sync)", k), "INVALID_ARGUMENT");
			}
		}
	}
	int err = ce_vol_create(p, x->vol, size, &pr);
	return err ? fail(x->e, err, ctl_code_for(err, 1)) : 0;
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
	if (err == -EBUSY && strstr(ce_errmsg(), "is open") != NULL) {
		char msg[512];
		snprintf(msg, sizeof(msg), "%s", ce_errmsg());
		err_set(err, "%s: in use (connected NBD clients)", msg);
	}
	if (err == 0 && flags)
		log_msg(LOG_INFO, "%s/%s destroyed with its snapshots%s", x->pool, x->vol,
		    flags & CE_DESTROY_CLONES ? " and clones" : "");
	const char *code = err == -EBUSY && strstr(ce_errmsg(), "held") ? "SNAPSHOT_HELD" :
	    err == -EBUSY && strstr(ce_errmsg(), "with -r") ? "HAS_SNAPSHOTS" :
	    err == -EBUSY && strstr(ce_errmsg(), "with -R") ? "HAS_CLONES" : ctl_code_for(err, 1);
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
	int err = ce_vol_resize(p, x->vol, size, shrink ? CE_RESIZE_SHRINK : 0);
	return err ? fail(x->e, err, ctl_code_for(err, 1)) : 0;
}

/* The "new_name" argument, POOL/VOL in the request's own pool: its VOL part, or NULL (error set). */
static const char *
new_name_arg(vctx *x)
{
	const char *nn = arg_str(x->args, "new_name", 1, x->e);
	if (nn == NULL)
		return NULL;
	char npool[64];
	const char *nvol;
	if (split_name(nn, npool, sizeof(npool), &nvol, x->e) != 0)
		return NULL;
	if (strcmp(npool, x->pool) != 0) {
		fail(x->e, err_set(-EINVAL, "%s: a volume cannot move to another pool (%s -> %s)", nn, x->pool, npool),
		    "INVALID_ARGUMENT");
		return NULL;
	}
	return nvol;
}

static int
vol_rename_cb(ce_pool *p, void *arg)
{
	vctx *x = arg;
	const char *nvol = new_name_arg(x);
	if (nvol == NULL)
		return x->e->err;
	int err = ce_vol_rename(p, x->vol, nvol);
	return err ? fail(x->e, err, ctl_code_for(err, 1)) : 0;
}

static int
vol_get_cb(ce_pool *p, void *arg)
{
	vctx *x = arg;
	ce_vol_info vi;
	int err = ce_vol_info_get(p, x->vol, &vi);
	if (err != 0)
		return fail(x->e, err, ctl_code_for(err, 1));
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
			    "BAD_REQUEST");
		const char *ks[8], *vs[8];
		size_t n = 0;
		json_object_object_foreach(props, k, v) {
			if (!json_object_is_type(v, json_type_string))
				return fail(x->e, err_set(-EINVAL, "property '%s': the value must be a string", k),
				    "BAD_REQUEST");
			ks[n] = k;
			vs[n++] = json_object_get_string(v);
		}
		int err = ce_vol_set_many(p, x->vol, ks, vs, n);
		return err ? fail(x->e, err, ctl_code_for(err, 1)) : 0;
	}
	const char *prop = arg_str(x->args, "prop", 1, x->e);
	const char *value = prop ? arg_str(x->args, "value", 1, x->e) : NULL;
	if (value == NULL)
		return x->e->err;
	int err = ce_vol_set(p, x->vol, prop, value);
	return err ? fail(x->e, err, ctl_code_for(err, 1)) : 0;
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
	return err ? fail(x->e, err, ctl_code_for(err, 1)) : 0;
}

static int
with_vol(json_object *args, json_object *res, reqerr *e, int (*cb)(ce_pool *, void *))
{
	const char *name = arg_str(args, "name", 1, e);
	if (name == NULL)
		return e->err;
	char pool[64];
	vctx x = { pool, NULL, args, res, e };
	if (split_name(name, pool, sizeof(pool), &x.vol, e) != 0)
		return e->err;
	int err = reg_with_pool(pool, cb, &x);
	if (err != 0 && e->err == 0)
		return fail(e, err, ctl_code_for(err, 0)); /* the pool itself */
	return err;
}

static int op_vol_create(json_object *a, json_object *r, reqerr *e) { return with_vol(a, r, e, vol_create_cb); }
static int op_vol_destroy(json_object *a, json_object *r, reqerr *e) { return with_vol(a, r, e, vol_destroy_cb); }
static int op_vol_resize(json_object *a, json_object *r, reqerr *e) { return with_vol(a, r, e, vol_resize_cb); }
static int op_vol_rename(json_object *a, json_object *r, reqerr *e) { return with_vol(a, r, e, vol_rename_cb); }
static int op_vol_get(json_object *a, json_object *r, reqerr *e) { return with_vol(a, r, e, vol_get_cb); }
static int op_vol_set(json_object *a, json_object *r, reqerr *e) { return with_vol(a, r, e, vol_set_cb); }
static int op_vol_inherit(json_object *a, json_object *r, reqerr *e) { return with_vol(a, r, e, vol_inherit_cb); }

/*
 * Listings. Every item has a string key whose order is the listing's
 * order; a page is the items after `cursor` (an earlier reply's "next"),
 * at most `limit` of them (default 1000, at most 5000: a reply stays well
 * under the 1 MiB frame), with "next" when more follow. The cursor is a
 * key, not an index, so items created or destroyed between pages neither
 * repeat nor shift the others.
 */
#define KEY_LEN 800

typedef struct page_item {
	char key[KEY_LEN];
	json_object *it;
} page_item;

/* The items of a listing, gathered from its sources in any order. */
typedef struct page_list {
	page_item *v;
	size_t n, cap;
} page_list;

static void
page_put(page_list *pl, const char *key, json_object *it)
{
	if (pl->n == pl->cap) {
		pl->cap = pl->cap ? 2 * pl->cap : 64;
		pl->v = xrealloc(pl->v, pl->cap * sizeof(*pl->v));
	}
	snprintf(pl->v[pl->n].key, KEY_LEN, "%s", key);
	pl->v[pl->n++].it = it;
}

static void
page_params(json_object *args, const char **cursor, uint64_t *limit)
{
	json_object *c;
	*cursor = json_object_object_get_ex(args, "cursor", &c) ? json_object_get_string(c) : NULL;
	*limit = json_object_object_get_ex(args, "limit", &c) ? json_object_get_uint64(c) : 1000;
	if (*limit == 0 || *limit > 5000)
		*limit = *limit == 0 ? 1000 : 5000;
}

static int
page_item_cmp(const void *a, const void *b)
{
	return strcmp(((const page_item *)a)->key, ((const page_item *)b)->key);
}

/* The page args asks for, as a JSON array (and "next" into res); takes the items. */
static json_object *
page_of(page_list *pl, json_object *args, json_object *res)
{
	const char *cursor;
	uint64_t limit, taken = 0;
	page_params(args, &cursor, &limit);
	json_object *page = json_object_new_array();
	if (pl->n > 1)
		qsort(pl->v, pl->n, sizeof(*pl->v), page_item_cmp);
	const char *last = NULL;
	size_t i = 0;
	for (; i < pl->n; i++) {
		if (cursor != NULL && strcmp(pl->v[i].key, cursor) <= 0)
			continue;
		if (taken == limit) {
			json_object_object_add(res, "next", json_object_new_string(last));
			break;
		}
		json_object_array_add(page, json_object_get(pl->v[i].it));
		last = pl->v[i].key;
		taken++;
	}
	for (i = 0; i < pl->n; i++)
		json_object_put(pl->v[i].it);
	free(pl->v);
	memset(pl, 0, sizeof(*pl));
	return page;
}

/* A listing in progress: what each pool's callback adds to. */
typedef struct sl {
	const char *pool;
	const char *vol;      /* within the pool, or NULL */
	page_list *items;
	reqerr *e;
	const char *cursor;   /* the page asked for (page_params) */
	uint64_t limit;
} sl;

static int
str_ptr_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The order of a listing as a string key: "pool\x01rest" for "pool/rest". */
static void
key_of_name(const char *full, char *buf, size_t len)
{
	const char *slash = strchr(full, '/');
	if (slash == NULL)
		snprintf(buf, len, "%s", full);
	else
		snprintf(buf, len, "%.*s\x01%s", (int)(slash - full), full, slash + 1);
}

/*
 * Add a pool's n items to the listing: key(x, items, i, buf) gives item
 * i's key, make(x, items, i) its JSON. Only the items that can be on the
 * page are made (after the cursor, and of those the limit+1 smallest: the
 * page and whether a next one follows): a listing of 10,000 snapshots
 * answered in pages of 1,000 would otherwise build 10,000 objects a page.
 */
static void
sl_add(sl *x, const void *items, size_t n, void (*key)(const sl *, const void *, size_t, char *),
    json_object *(*make)(const sl *, const void *, size_t))
{
	char (*keys)[KEY_LEN] = xmalloc((n ? n : 1) * KEY_LEN);
	const char **after = xmalloc((n ? n : 1) * sizeof(*after));
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		key(x, items, i, keys[i]);
		if (x->cursor == NULL || strcmp(keys[i], x->cursor) > 0)
			after[m++] = keys[i];
	}
	if (m > x->limit + 1) { /* keep the limit+1 smallest */
		qsort(after, m, sizeof(*after), str_ptr_cmp);
		m = x->limit + 1;
	}
	for (size_t k = 0; k < m; k++)
		page_put(x->items, after[k], make(x, items, (size_t)(after[k] - keys[0]) / KEY_LEN));
	free(after);
	free(keys);
}

/*
 * Run cb on every pool, or only on pool `only`, which must exist; the
 * callbacks add their items (sl_add), and the page args asks for goes into
 * res as `key`. A named pool's error fails the call (an unavailable pool,
 * or with `strict` a volume that does not exist); listing every pool skips
 * the unavailable ones (pool.list shows them).
 */
static int
list_pools_paged(const char *only, const char *vol, int strict, int (*cb)(ce_pool *, void *),
    json_object *res, const char *key, reqerr *e, json_object *args)
{
	page_list items = { 0 };
	char **names;
	size_t n;
	reg_pool_names(&names, &n);
	int found = only == NULL, rc = 0;
	for (size_t i = 0; i < n; i++) {
		if (rc == 0 && (only == NULL || strcmp(only, names[i]) == 0)) {
			sl x = { names[i], vol, &items, e, NULL, 0 };
			page_params(args, &x.cursor, &x.limit);
			found = 1;
			int err = reg_with_pool(names[i], cb, &x);
			if ((strict || only != NULL) && err != 0)
				rc = e->err ? e->err : fail(e, err, ctl_code_for(err, 0));
		}
		free(names[i]);
	}
	free(names);
	if (rc == 0 && !found)
		rc = fail(e, err_set(-ENOENT, "pool %s does not exist", only), "POOL_NOT_FOUND");
	json_object *page = page_of(&items, args, res);
	if (rc != 0) {
		json_object_put(page);
		return rc;
	}
	json_object_object_add(res, key, page);
	return 0;
}

/* "pool" or "pool/rest" (optional argument `arg`) into pool and rest (NULL without a slash). */
static int
pool_or_name_arg(json_object *args, const char *arg, char *pool, size_t plen, const char **rest,
    const char **only, reqerr *e)
{
	*only = arg_str(args, arg, 0, e);
	*rest = NULL;
	pool[0] = '\0';
	if (e->err)
		return e->err;
	if (*only != NULL && strchr(*only, '/') != NULL)
		return split_name(*only, pool, plen, rest, e);
	if (*only != NULL && strlen(*only) >= plen) /* never cut a name to match another pool */
		return fail(e, err_set(-ENOENT, "pool %s does not exist", *only), "POOL_NOT_FOUND");
	if (*only != NULL)
		snprintf(pool, plen, "%s", *only);
	return 0;
}

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

static int
op_vol_list(json_object *args, json_object *res, reqerr *e)
{
	const char *only = arg_str(args, "pool", 0, e);
	if (e->err)
		return e->err;
	return list_pools_paged(only, NULL, 0, vol_list_cb, res, "volumes", e, args);
}

/* ---- snapshot operations ---- */

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
    const char *(*code)(int))
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
		json_object_object_add(it, "code", json_object_new_string(code(errs[i])));
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
	err_set(err, "%s", any ? msg : ce_errmsg());
	return err;
}

static const char *
create_code(int e)
{
	return e == -ENOENT ? "VOLUME_NOT_FOUND" : e == -EEXIST ? "SNAPSHOT_EXISTS" : e == -EBUSY ? "BUSY" :
	    "INVALID_ARGUMENT";
}

static const char *
hold_code(int e)
{
	return e == -ENOENT ? "SNAPSHOT_NOT_FOUND" : e == -EEXIST ? "HOLD_EXISTS" : e == -EBUSY ? "BUSY" :
	    "INVALID_ARGUMENT";
}

static const char *
release_code(int e)
{
	return e == -ENOENT ? "HOLD_NOT_FOUND" : e == -EBUSY ? "BUSY" : "INVALID_ARGUMENT";
}

static const char *
destroy_code(int e)
{
	return e == -ENOENT ? "SNAPSHOT_NOT_FOUND" : e == -EBUSY ? "BUSY" : "INVALID_ARGUMENT";
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

static int
snap_create_cb(ce_pool *p, void *arg)
{
	sctx *x = arg;
	int *errs = xcalloc(x->n, sizeof(int));
	int err = ce_snap_create(p, x->names, x->n, errs), any = 0;
	for (size_t i = 0; err != 0 && i < x->n; i++)
		any |= errs[i] != 0;
	if (err != 0)
		per_name_fail(x, err, errs, "no snapshot taken", create_why, create_code);
	free(errs);
	return err ? fail(x->e, err, any ? "INVALID_ARGUMENT" : ctl_code_for(err, 1)) : 0;
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
	const char *code = !any ? ctl_code_for(err, 1) : x->n == 1 && nf ?
	    (release ? "HOLD_NOT_FOUND" : "SNAPSHOT_NOT_FOUND") : x->n == 1 && ex ? "HOLD_EXISTS" :
	    "INVALID_ARGUMENT";
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
		return fail(e, err_set(-EINVAL, "argument 'names' must be a non-empty array"), "BAD_REQUEST");
	size_t n = json_object_array_length(arr);
	if (n > 1024)
		return fail(e, err_set(-EINVAL, "at most 1024 snapshots at once"), "INVALID_ARGUMENT");
	x->names = xcalloc(n, sizeof(char *));
	x->full = xcalloc(n, sizeof(char *));
	x->n = n;
	x->e = e;
	pool[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		json_object *s = json_object_array_get_idx(arr, i);
		if (!json_object_is_type(s, json_type_string))
			return fail(e, err_set(-EINVAL, "'names' must hold strings"), "BAD_REQUEST");
		char p2[64];
		const char *rest;
		x->full[i] = json_object_get_string(s);
		if (split_name(x->full[i], p2, sizeof(p2), &rest, e) != 0)
			return e->err;
		if (i == 0)
			snprintf(pool, plen, "%s", p2);
		else if (strcmp(pool, p2) != 0)
			return fail(e, err_set(-EINVAL, "snapshots named together must be in one pool (%s, %s)",
			    pool, p2), "INVALID_ARGUMENT");
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
		rc = err != 0 && e->err == 0 ? fail(e, err, ctl_code_for(err, 0)) : err;
		if (rc == 0)
			log_msg(LOG_INFO, "pool %s: %s %zu snapshot%s%s%s", pool, done, x.n, x.n == 1 ? "" : "s",
			    x.tag ? " with tag " : "", x.tag ? x.tag : "");
	}
	free(x.names);
	free(x.full);
	return rc;
}

/* snap.create {"names": ["pool/vol@snap", ...]}: all in one pool, one instant, all or none. */
static int
op_snap_create(json_object *args, json_object *res, reqerr *e)
{
	(void)res;
	return with_snap_names(args, e, 0, snap_create_cb, "took");
}

/* snap.hold {"tag": "t", "names": [...]} and snap.release: every named snapshot, or none. */
static int
op_snap_hold(json_object *args, json_object *res, reqerr *e)
{
	(void)res;
	return with_snap_names(args, e, 1, snap_hold_do, "held");
}

static int
op_snap_release(json_object *args, json_object *res, reqerr *e)
{
	(void)res;
	return with_snap_names(args, e, 1, snap_release_do, "released");
}

static int
snap_destroy_cb(ce_pool *p, void *arg)
{
	vctx *x = arg;
	int err = ce_snap_destroy(p, x->vol);
	if (err == -ENOENT)
		return fail(x->e, err, "SNAPSHOT_NOT_FOUND");
	if (err == -EBUSY) {
		char msg[512];
		snprintf(msg, sizeof(msg), "%s", ce_errmsg());
		ce_hold_info *h;
		size_t n = 0;
		if (ce_snap_holds(p, x->vol, &h, &n) == 0)
			free(h);
		err_set(err, "%s", msg);
		return fail(x->e, err, n > 0 ? "SNAPSHOT_HELD" : "BUSY");
	}
	return err ? fail(x->e, err, ctl_code_for(err, 1)) : 0;
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
	int *errs = xcalloc(x->n, sizeof(int));
	int err = ce_snap_destroy_many(p, x->names, x->n, errs), any = 0;
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
		return fail(x->e, err, err == -ENOENT ? "SNAPSHOT_NOT_FOUND" : held ? "SNAPSHOT_HELD" :
		    ctl_code_for(err, 1));
	}
	if (err != 0 && any) {
		char all[2048];
		per_name_fail(x, err, errs, "nothing destroyed", destroy_why, destroy_code);
		snprintf(all, sizeof(all), "%s", ce_errmsg());
		err_set(err, "%s (%s)", all, one); /* and the engine's reason for the first */
	}
	free(errs);
	return err ? fail(x->e, err, any ? "INVALID_ARGUMENT" : ctl_code_for(err, 1)) : 0;
}

/* snap.destroy {"name": "pool/vol@snap"} or {"names": [...]} (one pool: all in one txg, or none) */
static int
op_snap_destroy(json_object *a, json_object *r, reqerr *e)
{
	if (json_object_object_get_ex(a, "names", NULL))
		return with_snap_names(a, e, 0, snap_destroy_many_cb, "destroyed");
	return with_vol(a, r, e, snap_destroy_cb);
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
		return fail(x->e, err_set(-EINVAL, "%s: a snapshot stays in pool %s", nn, x->pool), "INVALID_ARGUMENT");
	int err = ce_snap_rename(p, x->vol, slash ? slash + 1 : nn);
	if (err == -ENOENT)
		return fail(x->e, err, "SNAPSHOT_NOT_FOUND");
	return err ? fail(x->e, err, err == -EEXIST ? "SNAPSHOT_EXISTS" : ctl_code_for(err, 1)) : 0;
}

static int op_snap_rename(json_object *a, json_object *r, reqerr *e) { return with_vol(a, r, e, snap_rename_cb); }

static int
vol_rollback_cb(ce_pool *p, void *arg)
{
	vctx *x = arg;
	json_object *b;
	int later = json_object_object_get_ex(x->args, "destroy_later", &b) && json_object_get_boolean(b);
	int err = ce_vol_rollback(p, x->vol, later ? CE_ROLLBACK_DESTROY_LATER : 0);
	if (err == -ENOENT)
		return fail(x->e, err, "SNAPSHOT_NOT_FOUND");
	if (err == -EEXIST)
		return fail(x->e, err, "HAS_NEWER_SNAPSHOTS");
	if (err == 0)
		log_msg(LOG_INFO, "%s/%s: rolled back", x->pool, x->vol);
	return err ? fail(x->e, err, ctl_code_for(err, 1)) : 0;
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
		return fail(x->e, err, "SNAPSHOT_NOT_FOUND");
	if (err == 0)
		log_msg(LOG_INFO, "%s/%s: cloned from %s/%s", x->pool, nvol, x->pool, x->vol);
	return err ? fail(x->e, err, ctl_code_for(err, 1)) : 0;
}

static int
vol_promote_cb(ce_pool *p, void *arg)
{
	vctx *x = arg;
	int err = ce_vol_promote(p, x->vol);
	if (err == 0)
		log_msg(LOG_INFO, "%s/%s: promoted", x->pool, x->vol);
	const char *code = err == -EINVAL && strstr(ce_errmsg(), "not a clone") ? "NOT_A_CLONE" :
	    err == -EEXIST ? "SNAPSHOT_EXISTS" : ctl_code_for(err, 1);
	return err ? fail(x->e, err, code) : 0;
}

/* vol.promote {"name": "pool/clone"} */
static int op_vol_promote(json_object *a, json_object *r, reqerr *e) { return with_vol(a, r, e, vol_promote_cb); }

/* vol.clone {"name": "pool/vol@snap", "new_name": "pool/new"} */
static int op_vol_clone(json_object *a, json_object *r, reqerr *e) { return with_vol(a, r, e, vol_clone_cb); }

/* vol.rollback {"name": "pool/vol@snap", "destroy_later": bool} */
static int op_vol_rollback(json_object *a, json_object *r, reqerr *e) { return with_vol(a, r, e, vol_rollback_cb); }

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
		return fail(x->e, err, ctl_code_for(err, 1));
	sl_add(x, si, n, snap_key, snap_item);
	free(si);
	return 0;
}

/* snap.list {"name": "pool" | "pool/vol" (optional)} */
static int
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
		return fail(x->e, err, err == -ENOENT ? "SNAPSHOT_NOT_FOUND" : ctl_code_for(err, 1));
	sl_add(x, h, n, hold_key, hold_item);
	free(h);
	return 0;
}

/* snap.holds {"name": "pool" | "pool/vol@snap" (optional)}: {"holds": [{snapshot, tag, creation}]} */
static int
op_snap_holds(json_object *args, json_object *res, reqerr *e)
{
	char pool[64];
	const char *snap, *only;
	if (pool_or_name_arg(args, "name", pool, sizeof(pool), &snap, &only, e) != 0)
		return e->err;
	if (snap != NULL && strchr(snap, '@') == NULL)
		return fail(e, err_set(-EINVAL, "'%s' is not a snapshot (POOL/VOL@SNAP)", only),
		    "INVALID_ARGUMENT");
	return list_pools_paged(only ? pool : NULL, snap, only != NULL, snap_holds_cb, res, "holds", e, args);
}

/* ---- send, receive, diff and jobs ---- */

typedef struct xfer {
	char pool[64];
	char name[600];     /* within the pool: VOL@SNAP (send) or VOL (receive) */
	char from[600];     /* send: the base within the pool, or "" */
	char token[128];    /* send: resume token, or "" */
	unsigned flags;     /* receive: CE_RECV_* */
	int fd;             /* the stream */
	int in_pool;        /* the work reached the pool */
	job *j;
} xfer;

static void
xfer_free(void *arg)
{
	xfer *x = arg;
	close(x->fd);
	free(x);
}

/* Wait until fd is ready for events, checking the job's cancel flag: 0, or -ECANCELED. */
static int
fd_ready(xfer *x, short events)
{
	for (;;) {
		struct pollfd pf = { x->fd, events, 0 };
		int n = poll(&pf, 1, 200);
		if (job_cancelled(x->j))
			return err_set(-ECANCELED, "cancelled");
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return err_set(-errno, "poll: %s", strerror(errno));
	}
}

static int
fd_write(void *arg, const void *buf, size_t len)
{
	xfer *x = arg;
	const uint8_t *p = buf;
	while (len > 0) {
		int e = fd_ready(x, POLLOUT);
		if (e != 0)
			return e;
		ssize_t w = write(x->fd, p, len);
		if (w < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (w < 0)
			return -errno;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static ssize_t
fd_read(void *arg, void *buf, size_t len)
{
	xfer *x = arg;
	for (;;) {
		int e = fd_ready(x, POLLIN);
		if (e != 0)
			return e;
		ssize_t r = read(x->fd, buf, len);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		return r < 0 ? -errno : r;
	}
}

static int
xfer_progress(void *arg, uint64_t done, uint64_t total)
{
	return job_progress(((xfer *)arg)->j, done, total);
}

/*
 * The stable code of a failed send or receive where its errno alone is
 * ambiguous: which thing was not found, or exists (control-protocol.md).
 */
static void
xfer_code(xfer *x, int err, int recv)
{
	if (err == -ENOENT && !x->in_pool)
		job_set_code(x->j, "POOL_NOT_FOUND");
	else if (err == -ENOENT && recv)
		job_set_code(x->j, strstr(ce_errmsg(), "partial receive") ? "NOT_A_PARTIAL_RECEIVE" : "VOLUME_NOT_FOUND");
	else if (err == -ENOENT)
		job_set_code(x->j, "SNAPSHOT_NOT_FOUND");
	else if (err == -EEXIST)
		job_set_code(x->j, strncmp(ce_errmsg(), "volume", 6) == 0 ? "VOLUME_EXISTS" : "SNAPSHOT_EXISTS");
}

static int
send_cb(ce_pool *p, void *arg)
{
	xfer *x = arg;
	x->in_pool = 1;
	ce_send_opts o = { x->from[0] ? x->from : NULL, x->token[0] ? x->token : NULL, xfer_progress, x };
	int err = ce_send(p, x->name, &o, fd_write, x);
	if (err == 0) {
		char r[700];
		snprintf(r, sizeof(r), "%s/%s", x->pool, x->token[0] ? "(resumed)" : x->name);
		job_set_result(x->j, r);
	}
	return err;
}

static int
send_work(job *j, void *arg)
{
	xfer *x = arg;
	x->j = j;
	int err = -ENOENT;
	if (x->token[0] == '\0') {
		err = reg_with_pool(x->pool, send_cb, x);
	} else {
		/* a token names a snapshot by identity: whichever pool has it */
		char **names;
		size_t n;
		reg_pool_names(&names, &n);
		for (size_t i = 0; i < n; i++) {
			if (err == -ENOENT) {
				snprintf(x->pool, sizeof(x->pool), "%s", names[i]);
				err = reg_with_pool(names[i], send_cb, x);
			}
			free(names[i]);
		}
		free(names);
		x->in_pool = 1;
		if (err == -ENOENT)
			err_set(err, "no pool has the snapshot (and base) the token names");
	}
	xfer_code(x, err, 0);
	return err;
}

static int
recv_cb(ce_pool *p, void *arg)
{
	xfer *x = arg;
	x->in_pool = 1;
	ce_recv_opts o = { x->flags, xfer_progress, x };
	char snap[300];
	int err = ce_recv(p, x->name, &o, fd_read, x, snap, sizeof(snap));
	if (err == 0) {
		char r[400];
		snprintf(r, sizeof(r), "%s/%s", x->pool, snap);
		job_set_result(x->j, r);
	}
	return err;
}

static int
recv_work(job *j, void *arg)
{
	xfer *x = arg;
	x->j = j;
	int err = reg_with_pool(x->pool, recv_cb, x);
	xfer_code(x, err, 1);
	return err;
}

/* Start the job; with "wait", answer when it ends (its error is the request's). */
static int
start_job(const char *kind, xfer *x, const char *target, job_fn fn, json_object *args,
    json_object *res, reqerr *e)
{
	json_object *w;
	int wait = json_object_object_get_ex(args, "wait", &w) && json_object_get_boolean(w);
	uint64_t id = job_start(kind, x->pool, target, req_conn, fn, x, xfer_free);
	json_object_object_add(res, "job", json_object_new_uint64(id));
	if (!wait)
		return 0;
	job_wait(id, -1);
	char code[32], msg[1024];
	int err = job_outcome(id, code, sizeof(code), msg, sizeof(msg));
	if (err != 0) {
		err_set(err, "%s", msg);
		return fail(e, err, code[0] ? code : ctl_code_for(err, 0));
	}
	json_object *jo = job_get(id);
	json_object *r;
	if (jo != NULL && json_object_object_get_ex(jo, "result", &r))
		json_object_object_add(res, "result", json_object_get(r));
	json_object_put(jo);
	return 0;
}

/*
 * vol.send {"name": "pool/vol@snap", "from": "pool/vol@base" | "@base" (optional),
 *           "token": "1-..." (instead of name/from), "wait": bool} + the stream's fd
 */
static int
op_vol_send(json_object *args, json_object *res, reqerr *e)
{
	int fd = take_fd();
	if (fd < 0)
		return fail(e, err_set(-EINVAL, "vol.send needs the stream's file descriptor, passed with "
		    "the request (SCM_RIGHTS)"), "BAD_REQUEST");
	xfer *x = xcalloc(1, sizeof(*x));
	x->fd = fd;
	const char *token = arg_str(args, "token", 0, e);
	const char *name = e->err ? NULL : arg_str(args, "name", token == NULL, e);
	const char *from = e->err ? NULL : arg_str(args, "from", 0, e);
	const char *rest = NULL;
	if (e->err == 0 && token != NULL) {
		if (strlen(token) >= sizeof(x->token))
			fail(e, err_set(-EINVAL, "'%s' is not a receive_resume_token", token), "INVALID_ARGUMENT");
		else
			snprintf(x->token, sizeof(x->token), "%s", token);
	} else if (e->err == 0 && split_name(name, x->pool, sizeof(x->pool), &rest, e) == 0) {
		const char *at = strchr(rest, '@');
		if (at == NULL)
			fail(e, err_set(-EINVAL, "send needs a snapshot: %s is a volume", name), "INVALID_ARGUMENT");
		snprintf(x->name, sizeof(x->name), "%s", rest);
		if (e->err == 0 && from != NULL) {
			char fpool[64];
			const char *frest;
			if (from[0] == '@')
				snprintf(x->from, sizeof(x->from), "%.*s%s", (int)(at - rest), rest, from);
			else if (split_name(from, fpool, sizeof(fpool), &frest, e) == 0) {
				if (strcmp(fpool, x->pool) != 0)
					fail(e, err_set(-EINVAL, "the base %s must be in pool %s", from, x->pool),
					    "INVALID_ARGUMENT");
				snprintf(x->from, sizeof(x->from), "%s", frest);
			}
		}
	}
	if (e->err != 0) {
		xfer_free(x);
		return e->err;
	}
	return start_job("send", x, token ? "(resume token)" : name, send_work, args, res, e);
}

/* vol.recv {"name": "pool/vol", "force": bool, "wait": bool} + the stream's fd */
static int
op_vol_recv(json_object *args, json_object *res, reqerr *e)
{
	int fd = take_fd();
	if (fd < 0)
		return fail(e, err_set(-EINVAL, "vol.recv needs the stream's file descriptor, passed with "
		    "the request (SCM_RIGHTS)"), "BAD_REQUEST");
	xfer *x = xcalloc(1, sizeof(*x));
	x->fd = fd;
	const char *name = arg_str(args, "name", 1, e), *rest;
	if (e->err == 0 && split_name(name, x->pool, sizeof(x->pool), &rest, e) == 0) {
		if (strchr(rest, '@') != NULL)
			fail(e, err_set(-EINVAL, "receive into a volume (POOL/VOL); the snapshot takes the "
			    "sent snapshot's name"), "INVALID_ARGUMENT");
		snprintf(x->name, sizeof(x->name), "%s", rest);
	}
	json_object *f;
	if (json_object_object_get_ex(args, "force", &f) && json_object_get_boolean(f))
		x->flags |= CE_RECV_FORCE;
	if (e->err != 0) {
		xfer_free(x);
		return e->err;
	}
	return start_job("receive", x, name, recv_work, args, res, e);
}

static int
recv_abandon_cb(ce_pool *p, void *arg)
{
	vctx *x = arg;
	int err = ce_recv_abandon(p, x->vol);
	if (err == 0)
		log_msg(LOG_INFO, "%s/%s: partial receive abandoned", x->pool, x->vol);
	return err ? fail(x->e, err, err == -ENOENT ? "NOT_A_PARTIAL_RECEIVE" : ctl_code_for(err, 1)) : 0;
}

/* vol.recv_abandon {"name": "pool/vol"} */
static int op_vol_recv_abandon(json_object *a, json_object *r, reqerr *e) { return with_vol(a, r, e, recv_abandon_cb); }

typedef struct dctx {
	const char *from;
	vctx *x;
	json_object *arr;
	uint64_t cursor, limit, n, next;
	int more;
} dctx;

static int
diff_collect(void *arg, uint64_t off, uint64_t len, int kind)
{
	dctx *d = arg;
	if (off + len <= d->cursor)
		return 0;
	if (d->n == d->limit) {
		d->more = 1;
		d->next = off > d->cursor ? off : d->cursor;
		return 1; /* a page is full */
	}
	if (off < d->cursor) {
		len -= d->cursor - off;
		off = d->cursor;
	}
	json_object *ex = json_object_new_object();
	json_object_object_add(ex, "offset", json_object_new_uint64(off));
	json_object_object_add(ex, "length", json_object_new_uint64(len));
	json_object_object_add(ex, "type", json_object_new_string(kind == CE_DIFF_DATA ? "data" : "hole"));
	json_object_array_add(d->arr, ex);
	d->n++;
	return 0;
}

static int
diff_cb(ce_pool *p, void *arg)
{
	dctx *d = arg;
	int err = ce_vol_diff_from(p, d->from, d->x->vol, d->cursor, diff_collect, d);
	if (err == 1)
		err = 0;
	return err ? fail(d->x->e, err, err == -ENOENT ? "SNAPSHOT_NOT_FOUND" : ctl_code_for(err, 1)) : 0;
}

/*
 * vol.diff {"from": "pool/vol@a" | "@a", "name": "pool/vol@b" | "pool/vol",
 *           "cursor": offset to start at, "limit": extents (default 10000)}
 * -> {"extents": [{"offset", "length", "type": "data"|"hole"}], "next": offset (when more)}
 */
static int
diff_vctx_cb(ce_pool *p, void *arg)
{
	vctx *x = arg;
	const char *from = arg_str(x->args, "from", 1, x->e);
	if (from == NULL)
		return x->e->err;
	char fb[600];
	const char *at = strchr(x->vol, '@');
	if (from[0] == '@')
		snprintf(fb, sizeof(fb), "%.*s%s", at ? (int)(at - x->vol) : (int)strlen(x->vol), x->vol, from);
	else {
		const char *slash = strchr(from, '/');
		if (slash == NULL || (size_t)(slash - from) != strlen(x->pool) ||
		    strncmp(from, x->pool, strlen(x->pool)) != 0)
			return fail(x->e, err_set(-EINVAL, "the base %s must be in pool %s", from, x->pool),
			    "INVALID_ARGUMENT");
		snprintf(fb, sizeof(fb), "%s", slash + 1);
	}
	json_object *c;
	dctx d = { fb, x, json_object_new_array(), 0, 10000, 0, 0, 0 };
	if (json_object_object_get_ex(x->args, "cursor", &c))
		d.cursor = json_object_get_uint64(c);
	if (json_object_object_get_ex(x->args, "limit", &c) && json_object_get_uint64(c) > 0)
		d.limit = json_object_get_uint64(c);
	int err = diff_cb(p, &d);
	if (err != 0) {
		json_object_put(d.arr);
		return err;
	}
	json_object_object_add(x->res, "extents", d.arr);
	if (d.more)
		json_object_object_add(x->res, "next", json_object_new_uint64(d.next));
	return 0;
}

static int op_vol_diff(json_object *a, json_object *r, reqerr *e) { return with_vol(a, r, e, diff_vctx_cb); }

static int
job_id_arg(json_object *args, uint64_t *id, reqerr *e)
{
	json_object *v;
	if (!json_object_object_get_ex(args, "id", &v) || !json_object_is_type(v, json_type_int))
		return fail(e, err_set(-EINVAL, "argument 'id' (a job id) is required"), "BAD_REQUEST");
	*id = json_object_get_uint64(v);
	return 0;
}

/* job.get {"id"} -> the job */
static int
op_job_get(json_object *args, json_object *res, reqerr *e)
{
	uint64_t id;
	if (job_id_arg(args, &id, e) != 0)
		return e->err;
	json_object *j = job_get(id);
	if (j == NULL)
		return fail(e, err_set(-ENOENT, "no job %" PRIu64, id), "JOB_NOT_FOUND");
	json_object_object_foreach(j, k, v) json_object_object_add(res, k, json_object_get(v));
	json_object_put(j);
	return 0;
}

/* job.wait {"id", "timeout_ms" (default: until it ends)} -> the job */
static int
op_job_wait(json_object *args, json_object *res, reqerr *e)
{
	uint64_t id;
	if (job_id_arg(args, &id, e) != 0)
		return e->err;
	json_object *t;
	int ms = json_object_object_get_ex(args, "timeout_ms", &t) ? json_object_get_int(t) : -1;
	if (job_wait(id, ms) != 0)
		return fail(e, err_set(-ENOENT, "no job %" PRIu64, id), "JOB_NOT_FOUND");
	return op_job_get(args, res, e);
}

static int
op_job_cancel(json_object *args, json_object *res, reqerr *e)
{
	(void)res;
	uint64_t id;
	if (job_id_arg(args, &id, e) != 0)
		return e->err;
	int err = job_cancel(id);
	if (err == -ENOENT)
		return fail(e, err_set(err, "no job %" PRIu64, id), "JOB_NOT_FOUND");
	if (err == -EALREADY)
		return fail(e, err_set(err, "job %" PRIu64 " has already ended", id), "JOB_ENDED");
	return 0;
}

/* job.list: jobs are listed by id */
static int
op_job_list(json_object *args, json_object *res, reqerr *e)
{
	(void)e;
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

static int
op_hello(json_object *args, json_object *res, reqerr *e)
{
	(void)args;
	(void)e;
	json_object_object_add(res, "server", json_object_new_string("caskd"));
	json_object_object_add(res, "version", json_object_new_string(version_string));
	json_object_object_add(res, "protocol", json_object_new_int(CTL_VERSION));
	json_object *f = json_object_new_array();
	static const char *features[] = { "pools", "volumes", "nbd", "intent-log", "pool.clear", "pool.inject",
		"snapshots", "holds", "vol.promote", "vol.destroy.recursive", "send", "recv", "recv.resume",
		"vol.diff", "jobs", "vol.set.many", "vol.inherit", "property.source", "vol.iostat" };
	for (size_t i = 0; i < ARRAY_SIZE(features); i++)
		json_object_array_add(f, json_object_new_string(features[i]));
	json_object_object_add(res, "features", f);
	return 0;
}

/* The volume IO layer's operations live in vioctl.c; this adapts them to the table. */
#define VIO_OP(f) \
	static int op_##f(json_object *a, json_object *r, reqerr *e) { return f(a, r, &e->code); }
VIO_OP(vioctl_iostat)
VIO_OP(vioctl_fault)

static const struct {
	const char *name;
	int (*fn)(json_object *args, json_object *res, reqerr *e);
} ops[] = {
	{ "hello", op_hello },
	{ "pool.create", op_pool_create },
	{ "pool.import", op_pool_import },
	{ "pool.export", op_pool_export },
	{ "pool.destroy", op_pool_destroy },
	{ "pool.list", op_pool_list },
	{ "pool.status", op_pool_status },
	{ "pool.clear", op_pool_clear },
	{ "pool.inject", op_pool_inject },
	{ "snap.create", op_snap_create },
	{ "snap.destroy", op_snap_destroy },
	{ "snap.list", op_snap_list },
	{ "snap.rename", op_snap_rename },
	{ "snap.hold", op_snap_hold },
	{ "snap.release", op_snap_release },
	{ "snap.holds", op_snap_holds },
	{ "vol.rollback", op_vol_rollback },
	{ "vol.clone", op_vol_clone },
	{ "vol.promote", op_vol_promote },
	{ "vol.send", op_vol_send },
	{ "vol.recv", op_vol_recv },
	{ "vol.recv_abandon", op_vol_recv_abandon },
	{ "vol.diff", op_vol_diff },
	{ "job.get", op_job_get },
	{ "job.wait", op_job_wait },
	{ "job.cancel", op_job_cancel },
	{ "job.list", op_job_list },
	{ "vol.create", op_vol_create },
	{ "vol.destroy", op_vol_destroy },
	{ "vol.resize", op_vol_resize },
	{ "vol.rename", op_vol_rename },
	{ "vol.list", op_vol_list },
	{ "vol.get", op_vol_get },
	{ "vol.set", op_vol_set },
	{ "vol.inherit", op_vol_inherit },
	{ "vol.iostat", op_vioctl_iostat }, { "test.vio_fault", op_vioctl_fault },
};

/* ---- framing ---- */

static int
send_frame(int fd, uint32_t id, json_object *payload)
{
	size_t len;
	const char *s = json_object_to_json_string_length(payload, JSON_C_TO_STRING_PLAIN, &len);
	/*
	 * JSON is UTF-8. Strings that echo a client's bytes or were cut to a
	 * buffer's size may not be: such bytes become '?' (all JSON syntax is
	 * ASCII, so the text stays valid).
	 */
	char *fixed = NULL;
	if (util_utf8_valid_prefix(s, len) != len) {
		fixed = xmalloc(len);
		memcpy(fixed, s, len);
		util_utf8_repair(fixed, len);
		s = fixed;
	}
	uint8_t h[16];
	ctl_hdr_encode(h, CTL_RESP, id, (uint32_t)len);
	struct iovec iov[2] = { { h, 16 }, { (void *)s, len } };
	int rc = sock_write_iov(fd, iov, 2) != 0 ? -1 : 0;
	free(fixed);
	return rc;
}

static int
send_error_items(int fd, uint32_t id, int err, const char *code, const char *msg, json_object *items)
{
	json_object *r = json_object_new_object();
	json_object *e = json_object_new_object();
	json_object_object_add(e, "errno", json_object_new_int(-err));
	json_object_object_add(e, "code", json_object_new_string(code));
	json_object_object_add(e, "message", json_object_new_string(msg && *msg ? msg : strerror(-err)));
	if (items != NULL)
		json_object_object_add(e, "errors", json_object_get(items));
	json_object_object_add(r, "ok", json_object_new_boolean(0));
	json_object_object_add(r, "error", e);
	int rc = send_frame(fd, id, r);
	json_object_put(r);
	return rc;
}

static int
send_error(int fd, uint32_t id, int err, const char *code, const char *msg)
{
	return send_error_items(fd, id, err, code, msg, NULL);
}

/* One request; 0 to go on, -1 to close. */
static int
serve_one(int fd, uid_t uid)
{
	uint8_t h[16];
	req_fd = -1;
	if (sock_read_full_fd(fd, h, 16, &req_fd) != 0) {
		if (req_fd >= 0)
			close(take_fd());
		return -1;
	}
	ctl_hdr hd;
	ctl_hdr_decode(h, &hd);
	uint32_t magic = hd.magic, id = hd.id, len = hd.length;
	uint16_t ver = hd.version, kind = hd.kind;
	if (magic != CTL_MAGIC || kind != CTL_REQ || len > CTL_MAX) {
		send_error(fd, magic == CTL_MAGIC ? id : 0, -EINVAL, "BAD_REQUEST",
		    magic != CTL_MAGIC ? "bad frame magic" : kind != CTL_REQ ? "not a request frame"
									   : "frame larger than 1 MiB");
		return -1;
	}
	if (ver != CTL_VERSION) {
		send_error(fd, id, -EPROTO, "UNSUPPORTED_VERSION", "this caskd speaks control protocol version 1");
		return -1;
	}
	char *buf = xmalloc(len + 1);
	if (sock_read_full_fd(fd, buf, len, &req_fd) != 0) {
		free(buf);
		if (req_fd >= 0)
			close(take_fd());
		return -1;
	}
	buf[len] = '\0';
	json_tokener *tok = json_tokener_new();
	json_object *req = json_tokener_parse_ex(tok, buf, (int)len);
	int parsed = req != NULL && json_tokener_get_error(tok) == json_tokener_success &&
	    (size_t)json_tokener_get_parse_end(tok) == len;
	json_tokener_free(tok);
	free(buf);
	json_object *opv, *args = NULL;
	if (!parsed || !json_object_is_type(req, json_type_object) ||
	    !json_object_object_get_ex(req, "op", &opv) || !json_object_is_type(opv, json_type_string)) {
		json_object_put(req);
		send_error(fd, id, -EINVAL, "BAD_REQUEST", "payload is not a JSON object with a string 'op'");
		return -1;
	}
	if (!json_object_object_get_ex(req, "args", &args) || json_object_is_type(args, json_type_null))
		args = NULL;
	if (args != NULL && !json_object_is_type(args, json_type_object)) {
		json_object_put(req);
		return send_error(fd, id, -EINVAL, "BAD_REQUEST", "'args' must be an object");
	}
	json_object *empty = json_object_new_object();
	const char *op = json_object_get_string(opv);
	size_t i = 0;
	while (i < ARRAY_SIZE(ops) && strcmp(ops[i].name, op) != 0)
		i++;
	int rc;
	if (i == ARRAY_SIZE(ops)) {
		char msg[300];
		snprintf(msg, sizeof(msg), "unknown operation '%.200s'", op);
		rc = send_error(fd, id, -EOPNOTSUPP, "UNKNOWN_OP", msg);
	} else {
		json_object *res = json_object_new_object();
		reqerr e = { 0, NULL, NULL };
		err_clear();
		int err = ops[i].fn(args ? args : empty, res, &e);
		if (err != 0) {
			log_info("ctl uid %u: %s failed: %s", (unsigned)uid, op, err_get());
			rc = send_error_items(fd, id, err, e.code ? e.code : ctl_code_for(err, 0), err_get(), e.items);
			json_object_put(res);
		} else {
			log_debug("ctl uid %u: %s", (unsigned)uid, op);
			json_object *r = json_object_new_object();
			json_object_object_add(r, "ok", json_object_new_boolean(1));
			json_object_object_add(r, "result", res);
			rc = send_frame(fd, id, r);
			json_object_put(r);
		}
		json_object_put(e.items);
	}
	json_object_put(empty);
	json_object_put(req);
	if (req_fd >= 0)
		close(take_fd()); /* passed to an op that did not take it */
	return rc;
}

static void *
client_thread(void *arg)
{
	int fd = (int)(intptr_t)arg;
	struct ucred cr;
	socklen_t cl = sizeof(cr);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0 || (cr.uid != 0 && cr.uid != geteuid())) {
		log_warn("ctl: refused a client (uid %d)", (int)cr.uid);
		send_error(fd, 0, -EACCES, "PERMISSION_DENIED", "this caskd serves only root and its own user");
	} else {
		req_conn = atomic_fetch_add(&next_conn, 1);
		while (!atomic_load(&stopping) && serve_one(fd, cr.uid) == 0)
			;
		job_cancel_owner(req_conn); /* a client that goes away takes its jobs with it */
	}
	close(fd);
	pthread_mutex_lock(&clients_lock);
	for (int i = 0; i < nclients; i++)
		if (client_fds[i] == fd) {
			client_fds[i] = client_fds[--nclients];
			break;
		}
	pthread_cond_broadcast(&clients_cv);
	pthread_mutex_unlock(&clients_lock);
	return NULL;
}

static void *
accept_thread(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (atomic_load(&stopping) || errno == EINVAL || errno == EBADF)
				return NULL;
			if (errno != EINTR && errno != ECONNABORTED)
				usleep(100000);
			continue;
		}
		pthread_mutex_lock(&clients_lock);
		if (nclients == (int)ARRAY_SIZE(client_fds) || atomic_load(&stopping)) {
			pthread_mutex_unlock(&clients_lock);
			send_error(fd, 0, -EAGAIN, "BUSY", "too many control clients");
			close(fd);
			continue;
		}
		client_fds[nclients++] = fd;
		pthread_mutex_unlock(&clients_lock);
		pthread_t t;
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &a, client_thread, (void *)(intptr_t)fd) != 0)
			client_thread((void *)(intptr_t)fd);
		pthread_attr_destroy(&a);
	}
}

int
ctl_listen(const char *path, const char *version)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	version_string = version;
	if (strlen(path) >= sizeof(sa.sun_path))
		return err_set(-ENAMETOOLONG, "control socket path too long: %s", path);
	/* The directory is created private; an existing one is left as it is. */
	char dir[sizeof(sa.sun_path)];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash != NULL && slash != dir) {
		*slash = '\0';
		for (char *p = dir + 1; *p; p++) {
			if (*p == '/') {
				*p = '\0';
				mkdir(dir, 0755);
				*p = '/';
			}
		}
		if (mkdir(dir, 0700) != 0 && errno != EEXIST)
			return err_set(-errno, "cannot create %s: %s", dir, strerror(errno));
	}
	strcpy(sa.sun_path, path);
	/* A live daemon on this socket must not be displaced. */
	int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		close(probe);
		return err_set(-EADDRINUSE, "another caskd is listening on %s", path);
	}
	if (probe >= 0)
		close(probe);
	unlink(path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		return err_set(-errno, "socket: %s", strerror(errno));
	mode_t old = umask(0077);
	int rc = bind(lfd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc != 0 || chmod(path, 0600) != 0 || listen(lfd, 64) != 0) {
		int e = errno;
		close(lfd);
		lfd = -1;
		return err_set(-e, "%s: %s", path, strerror(e));
	}
	snprintf(sock_path, sizeof(sock_path), "%s", path);
	log_info("ctl: listening on %s", path);
	return 0;
}

int
ctl_start(void)
{
	if (pthread_create(&accept_tid, NULL, accept_thread, NULL) != 0)
		return err_set(-EAGAIN, "cannot start the control thread");
	return 0;
}

void
ctl_stop(void)
{
	if (lfd < 0)
		return;
	atomic_store(&stopping, 1);
	shutdown(lfd, SHUT_RDWR);
	pthread_join(accept_tid, NULL);
	close(lfd);
	unlink(sock_path);
	job_shutdown(); /* cancel the transfers (a client may be waiting for one) */
	pthread_mutex_lock(&clients_lock);
	for (int i = 0; i < nclients; i++)
		shutdown(client_fds[i], SHUT_RD);
	while (nclients > 0)
		pthread_cond_wait(&clients_cv, &clients_lock);
	pthread_mutex_unlock(&clients_lock);
}
