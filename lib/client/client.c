/*
 * client.c -- libcask: the control protocol, client side.
 *
 * Owns the connection to caskd, request framing, JSON encoding of
 * requests and decoding of results into the public structures, and the
 * per-thread error description.
 *
 * Invariants:
 *   1. One request at a time per handle (a mutex), so a handle is safe to
 *      share between threads; every response is matched by its id.
 *   2. A transport failure (daemon gone, bad frame) makes the handle
 *      unusable: later calls fail with ENOTCONN rather than reading a
 *      stream that may be out of step.
 *   3. Never prints; never exits.
 */
#include "cask/client.h"
#include "cask/errcodes.h"
#include "client_impl.h"
#include "ctlframe.h"
#include "sockio.h"

#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>


struct cask_client {
	int fd;
	uint32_t next_id;
	int broken;
	pid_t pid;         /* the process that connected: a child after fork() must connect again */
	pthread_mutex_t lock;
	char path[108];    /* the socket, for the extra connections of cask_job_pollfd */
};

static __thread cask_error_info last;

/* The refused names of the thread's last failed batch call (freed with the thread). */
typedef struct items_tls {
	cask_item_error *v;
	size_t n;
} items_tls;
static pthread_key_t items_key;
static pthread_once_t items_once = PTHREAD_ONCE_INIT;

static void
items_free(void *p)
{
	items_tls *t = p;
	free(t->v);
	free(t);
}

static void
items_init(void)
{
	pthread_key_create(&items_key, items_free);
}

static items_tls *
items_get(void)
{
	pthread_once(&items_once, items_init);
	items_tls *t = pthread_getspecific(items_key);
	if (t == NULL) {
		t = calloc(1, sizeof(*t));
		if (t != NULL)
			pthread_setspecific(items_key, t);
	}
	return t;
}

#define opts_take client_opts_take

const cask_error_info *
cask_error(void)
{
	return &last;
}

size_t
cask_error_items(const cask_item_error **items)
{
	items_tls *t = items_get();
	*items = t && t->n ? t->v : NULL;
	return t ? t->n : 0;
}

/* The failure as caskd named it: its code is a wire name, perhaps one this libcask does not know. */
int
client_set_error_wire(int err, const char *code, const char *fmt, ...)
{
	items_tls *t = items_get();
	if (t != NULL)
		t->n = 0;
	va_list ap;
	last.err = err;
	snprintf(last.code, sizeof(last.code), "%s", code);
	va_start(ap, fmt);
	vsnprintf(last.message, sizeof(last.message), fmt, ap);
	va_end(ap);
	return -err;
}

#define set_error_wire client_set_error_wire
#define set_error client_set_error

const char *
cask_default_socket(void)
{
	static __thread char buf[512];
	const char *e = getenv("CASK_SOCKET");
	if (e && *e)
		snprintf(buf, sizeof(buf), "%s", e);
	else if ((e = getenv("XDG_RUNTIME_DIR")) && *e && geteuid() != 0)
		snprintf(buf, sizeof(buf), "%s/cask/caskd.sock", e);
	else
		snprintf(buf, sizeof(buf), "/run/cask/caskd.sock");
	return buf;
}

int
cask_connect(const char *path, cask_client **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (path == NULL)
		path = cask_default_socket();
	if (strlen(path) >= sizeof(sa.sun_path))
		return set_error(ENAMETOOLONG, CE_E_INVALID_ARGUMENT, "socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return set_error(errno, CE_E_INTERNAL, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = errno;
		close(fd);
		if (e == EACCES || e == EPERM)
			return set_error(e, CE_E_PERMISSION_DENIED, "not allowed to reach caskd at %s: %s (its socket "
			    "serves root and caskd's own user)", path, strerror(e));
		return set_error(e, CE_E_NOT_RUNNING, "cannot reach caskd at %s: %s%s", path, strerror(e),
		    (e == ENOENT || e == ECONNREFUSED) ? " (is caskd running? set CASK_SOCKET or --socket)" : "");
	}
	cask_client *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		close(fd);
		return set_error(ENOMEM, CE_E_INTERNAL, "out of memory");
	}
	c->fd = fd;
	c->next_id = 1;
	c->pid = getpid();
	snprintf(c->path, sizeof(c->path), "%s", path);
	pthread_mutex_init(&c->lock, NULL);
	*out = c;
	return 0;
}

void
cask_disconnect(cask_client *c)
{
	if (c == NULL)
		return;
	close(c->fd);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static void get_str(json_object *o, const char *k, char *out, size_t n);

/*
 * Send {"op": op, "args": args} (args consumed), with file descriptor
 * passfd (>= 0) attached, and wait for the response. On success *result
 * is the result object (caller puts it).
 */
static int
call_fd(cask_client *c, const char *op, json_object *args, int passfd, json_object **result)
{
	json_object *req = json_object_new_object();
	json_object_object_add(req, "op", json_object_new_string(op));
	json_object_object_add(req, "args", args ? args : json_object_new_object());
	size_t len;
	const char *s = json_object_to_json_string_length(req, JSON_C_TO_STRING_PLAIN, &len);
	int rc;

	if (c->pid != getpid()) {
		/* the socket is shared with the parent: a request here would interleave with its frames */
		json_object_put(req);
		return set_error(EINVAL, CE_E_INVALID_ARGUMENT, "this caskd handle was made by process %d, before "
		    "fork(): connect again in this process", (int)c->pid);
	}
	pthread_mutex_lock(&c->lock);
	if (c->broken) {
		rc = set_error(ENOTCONN, CE_E_NOT_RUNNING, "the connection to caskd was lost");
		goto out;
	}
	uint32_t id = c->next_id++;
	uint8_t h[16];
	ctl_hdr_encode(h, CTL_REQ, id, (uint32_t)len);
	struct iovec iov[2] = { { h, 16 }, { (void *)s, len } };
	/*
	 * A write that fails leaves the connection broken, but when the peer
	 * has gone, what caskd sent before it closed can still be read: the
	 * PERMISSION_DENIED frame (id 0) of a refused client may come, and the
	 * socket close, before its first request could be written.
	 */
	int wfail = sock_write_iov_fd(c->fd, iov, 2, passfd) != 0;
	int gone = wfail && (errno == EPIPE || errno == ECONNRESET); /* else nothing can come back */
	if (wfail)
		c->broken = 1;
	if ((wfail && !gone) || sock_read_full(c->fd, h, 16) != 0) {
		c->broken = 1;
		rc = set_error(ECONNRESET, CE_E_NOT_RUNNING, "lost the connection to caskd");
		goto out;
	}
	ctl_hdr rh;
	ctl_hdr_decode(h, &rh);
	uint32_t rid = rh.id, l = rh.length;
	if (rh.magic != CTL_MAGIC || rh.kind != CTL_RESP || l > CTL_MAX || (rid != id && rid != 0)) {
		c->broken = 1;
		rc = set_error(EPROTO, CE_E_BAD_REQUEST, "caskd sent a malformed response frame");
		goto out;
	}
	char *buf = malloc(l + 1);
	if (buf == NULL || sock_read_full(c->fd, buf, l) != 0) {
		free(buf);
		c->broken = 1;
		rc = set_error(ECONNRESET, CE_E_NOT_RUNNING, "lost the connection to caskd");
		goto out;
	}
	buf[l] = '\0';
	json_object *resp = json_tokener_parse(buf);
	free(buf);
	json_object *ok, *v;
	if (resp == NULL || !json_object_object_get_ex(resp, "ok", &ok)) {
		json_object_put(resp);
		c->broken = 1;
		rc = set_error(EPROTO, CE_E_BAD_REQUEST, "caskd sent a response that is not JSON");
		goto out;
	}
	if (json_object_get_boolean(ok)) {
		if (!json_object_object_get_ex(resp, "result", &v))
			v = NULL;
		*result = v ? json_object_get(v) : json_object_new_object();
		rc = 0;
	} else {
		json_object *e = NULL, *en, *ec, *em;
		json_object_object_get_ex(resp, "error", &e);
		int err = (e && json_object_object_get_ex(e, "errno", &en)) ? json_object_get_int(en) : EIO;
		const char *code = (e && json_object_object_get_ex(e, "code", &ec)) ? json_object_get_string(ec) : ce_errcode_wire(CE_E_INTERNAL);
		const char *msg = (e && json_object_object_get_ex(e, "message", &em)) ? json_object_get_string(em) : "";
		rc = set_error_wire(err > 0 ? err : EIO, code, "%s", msg);
		if (rid == 0)
			c->broken = 1;
		/* a batch call: each refused name */
		json_object *its;
		items_tls *t = items_get();
		if (e && t && json_object_object_get_ex(e, "errors", &its) && json_object_is_type(its, json_type_array)) {
			size_t n = json_object_array_length(its);
			cask_item_error *iv = realloc(t->v, (n ? n : 1) * sizeof(*iv));
			if (iv != NULL) {
				t->v = iv;
				for (size_t i = 0; i < n; i++) {
					json_object *it = json_object_array_get_idx(its, i), *x;
					memset(&iv[i], 0, sizeof(iv[i]));
					get_str(it, "name", iv[i].name, sizeof(iv[i].name));
					iv[i].err = json_object_object_get_ex(it, "errno", &x) ? json_object_get_int(x) : EIO;
					get_str(it, "code", iv[i].code, sizeof(iv[i].code));
					get_str(it, "message", iv[i].message, sizeof(iv[i].message));
				}
				t->n = n;
			}
		}
	}
	json_object_put(resp);
out:
	pthread_mutex_unlock(&c->lock);
	json_object_put(req);
	return rc;
}

static int
call(cask_client *c, const char *op, json_object *args, json_object **result)
{
	return call_fd(c, op, args, -1, result);
}

static uint64_t
get_u64(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_uint64(v) : 0;
}

static double
get_double(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_double(v) : 0.0;
}

static void
get_str(json_object *o, const char *k, char *out, size_t n)
{
	json_object *v;
	snprintf(out, n, "%s", json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : "");
}

static json_object *
paths_json(const char *const *paths, unsigned n)
{
	json_object *a = json_object_new_array();
	for (unsigned i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(paths[i]));
	return a;
}

int
cask_hello(cask_client *c, char *version, size_t len, int *protocol)
{
	json_object *r;
	int rc = call(c, "hello", NULL, &r);
	if (rc != 0)
		return rc;
	get_str(r, "version", version, len);
	*protocol = (int)get_u64(r, "protocol");
	json_object_put(r);
	return 0;
}

static int
call_void(cask_client *c, const char *op, json_object *args)
{
	json_object *r;
	int rc = call(c, op, args, &r);
	if (rc == 0)
		json_object_put(r);
	return rc;
}

int
cask_pool_create(cask_client *c, const char *name, const char *const *paths, unsigned n, uint64_t size)
{
	return cask_pool_create_ex(c, name, paths, n, size, 0);
}

int
cask_pool_import(cask_client *c, const char *name, const char *const *paths, unsigned n, const char *dir,
    char *name_out, size_t name_len)
{
	return cask_pool_import_ex(c, name, paths, n, dir, 0, name_out, name_len);
}

int
cask_pool_create_ex(cask_client *c, const char *name, const char *const *paths, unsigned n, uint64_t size,
    unsigned flags)
{
	if (flags & ~CASK_POOL_FORCE)
		return set_error(EINVAL, CE_E_INVALID_ARGUMENT, "cask_pool_create_ex: unknown flags 0x%x",
		    flags & ~CASK_POOL_FORCE);
	json_object *a = json_object_new_object();
	json_object_object_add(a, "name", json_object_new_string(name));
	json_object_object_add(a, "paths", paths_json(paths, n));
	if (size)
		json_object_object_add(a, "size", json_object_new_uint64(size));
	if (flags & CASK_POOL_FORCE)
		json_object_object_add(a, "force", json_object_new_boolean(1));
	return call_void(c, "pool.create", a);
}

int
cask_pool_import_ex(cask_client *c, const char *name, const char *const *paths, unsigned n, const char *dir,
    unsigned flags, char *name_out, size_t name_len)
{
	if (flags & ~CASK_POOL_REWIND)
		return set_error(EINVAL, CE_E_INVALID_ARGUMENT, "cask_pool_import_ex: unknown flags 0x%x",
		    flags & ~CASK_POOL_REWIND);
	json_object *a = json_object_new_object(), *r;
	if (flags & CASK_POOL_REWIND)
		json_object_object_add(a, "rewind", json_object_new_boolean(1));
	if (name)
		json_object_object_add(a, "name", json_object_new_string(name));
	if (dir)
		json_object_object_add(a, "dir", json_object_new_string(dir));
	else
		json_object_object_add(a, "paths", paths_json(paths, n));
	int rc = call(c, "pool.import", a, &r);
	if (rc != 0)
		return rc;
	if (name_out)
		get_str(r, "name", name_out, name_len);
	json_object_put(r);
	return 0;
}

static int
name_op(cask_client *c, const char *op, const char *name)
{
	json_object *a = json_object_new_object();
	json_object_object_add(a, "name", json_object_new_string(name));
	return call_void(c, op, a);
}

int cask_pool_export(cask_client *c, const char *name) { return name_op(c, "pool.export", name); }
int cask_pool_clear(cask_client *c, const char *name) { return name_op(c, "pool.clear", name); }

int
cask_pool_inject(cask_client *c, const char *name, const char *op, int vdev, uint64_t after,
    int persistent)
{
	json_object *a = json_object_new_object();
	json_object_object_add(a, "name", json_object_new_string(name));
	json_object_object_add(a, "op", json_object_new_string(op));
	if (vdev >= 0)
		json_object_object_add(a, "vdev", json_object_new_int(vdev));
	json_object_object_add(a, "after", json_object_new_uint64(after));
	json_object_object_add(a, "persistent", json_object_new_boolean(persistent != 0));
	return call_void(c, "pool.inject", a);
}
int cask_pool_destroy(cask_client *c, const char *name) { return name_op(c, "pool.destroy", name); }
int cask_vol_destroy(cask_client *c, const char *name) { return name_op(c, "vol.destroy", name); }
int cask_vol_promote(cask_client *c, const char *name) { return name_op(c, "vol.promote", name); }

int
cask_vol_destroy_ex(cask_client *c, const char *name, unsigned flags)
{
	json_object *a = json_object_new_object();
	json_object_object_add(a, "name", json_object_new_string(name));
	json_object_object_add(a, "recursive", json_object_new_boolean((flags & CASK_DESTROY_SNAPSHOTS) != 0));
	json_object_object_add(a, "dependents", json_object_new_boolean((flags & CASK_DESTROY_CLONES) != 0));
	if (flags & CASK_FORCE_DISCONNECT)
		json_object_object_add(a, "force", json_object_new_boolean(1));
	return call_void(c, "vol.destroy", a);
}

static void
pool_from(json_object *o, cask_pool_info *p)
{
	memset(p, 0, sizeof(*p));
	get_str(o, "name", p->name, sizeof(p->name));
	get_str(o, "guid", p->guid, sizeof(p->guid));
	get_str(o, "state", p->state, sizeof(p->state));
	get_str(o, "error", p->error, sizeof(p->error));
	p->size = get_u64(o, "size");
	p->allocated = get_u64(o, "allocated");
	p->free = get_u64(o, "free");
	p->nvdevs = (unsigned)get_u64(o, "nvdevs");
	p->volumes = (unsigned)get_u64(o, "volumes");
	p->checksum_errors = get_u64(o, "checksum_errors");
	p->io_errors = get_u64(o, "io_errors");
	p->txg = get_u64(o, "txg");
	p->log_size = get_u64(o, "log_size");
	p->log_commits = get_u64(o, "log_commits");
	p->log_blocks = get_u64(o, "log_blocks");
	p->log_bytes = get_u64(o, "log_bytes");
	p->log_fallbacks = get_u64(o, "log_fallbacks");
	p->log_replayed = get_u64(o, "log_replayed");
	json_object *v;
	if (json_object_object_get_ex(o, "vdevs", &v) && json_object_is_type(v, json_type_array)) {
		p->nvdevs_paths = (unsigned)json_object_array_length(v);
		p->vdevs = calloc(p->nvdevs_paths ? p->nvdevs_paths : 1, sizeof(char *));
		for (unsigned i = 0; p->vdevs && i < p->nvdevs_paths; i++)
			p->vdevs[i] = strdup(json_object_get_string(json_object_array_get_idx(v, i)));
	}
}

/*
 * Decode the array `key` of result r into a new array of n elements of
 * size elem, each filled by from(); r is released.
 */
static int
decode_list(json_object *r, const char *key, const char *what, size_t elem,
    void (*from)(json_object *, void *), void **out, size_t *n)
{
	json_object *arr;
	if (!json_object_object_get_ex(r, key, &arr) || !json_object_is_type(arr, json_type_array)) {
		json_object_put(r);
		return set_error(EPROTO, CE_E_BAD_REQUEST, "caskd's %s list is malformed", what);
	}
	size_t k = json_object_array_length(arr);
	uint8_t *list = calloc(k ? k : 1, elem);
	for (size_t i = 0; list && i < k; i++)
		from(json_object_array_get_idx(arr, i), list + i * elem);
	json_object_put(r);
	if (list == NULL)
		return set_error(ENOMEM, CE_E_INTERNAL, "out of memory");
	*out = list;
	*n = k;
	return 0;
}

/*
 * A listing fetched page by page (the server's cursor): args is copied for
 * each request, with "cursor" set from the previous reply's "next".
 */
static int
call_list(cask_client *c, const char *op, json_object *args, const char *key, const char *what, size_t elem,
    void (*from)(json_object *, void *), void **out, size_t *n)
{
	uint8_t *all = NULL;
	size_t total = 0;
	char *cursor = NULL;
	int rc = 0;
	for (;;) {
		json_object *a = NULL, *r, *arr, *nx;
		json_object_deep_copy(args, &a, NULL);
		if (cursor != NULL)
			json_object_object_add(a, "cursor", json_object_new_string(cursor));
		if ((rc = call(c, op, a, &r)) != 0)
			break;
		if (!json_object_object_get_ex(r, key, &arr) || !json_object_is_type(arr, json_type_array)) {
			json_object_put(r);
			rc = set_error(EPROTO, CE_E_BAD_REQUEST, "caskd's %s list is malformed", what);
			break;
		}
		size_t k = json_object_array_length(arr);
		uint8_t *grown = realloc(all, (total + k ? total + k : 1) * elem);
		if (grown == NULL) {
			json_object_put(r);
			rc = set_error(ENOMEM, CE_E_INTERNAL, "out of memory");
			break;
		}
		all = grown;
		memset(all + total * elem, 0, k * elem);
		for (size_t i = 0; i < k; i++)
			from(json_object_array_get_idx(arr, i), all + (total + i) * elem);
		total += k;
		free(cursor);
		cursor = json_object_object_get_ex(r, "next", &nx) ? strdup(json_object_get_string(nx)) : NULL;
		json_object_put(r);
		if (cursor == NULL)
			break;
	}
	free(cursor);
	json_object_put(args);
	if (rc != 0) {
		free(all);
		return rc;
	}
	*out = all != NULL ? all : calloc(1, elem);
	*n = total;
	return 0;
}

/* A listing whose request names at most one thing (argkey: argval, when not NULL). */
static int
list_of(cask_client *c, const char *op, const char *argkey, const char *argval, const char *key,
    const char *what, size_t elem, void (*from)(json_object *, void *), void **list, size_t *n)
{
	json_object *a = json_object_new_object();
	if (argval != NULL)
		json_object_object_add(a, argkey, json_object_new_string(argval));
	*list = NULL;
	return call_list(c, op, a, key, what, elem, from, list, n);
}

static void
pool_from_any(json_object *o, void *p)
{
	pool_from(o, p);
}

int
cask_pool_list(cask_client *c, cask_pool_info **out, size_t *n)
{
	json_object *r;
	int rc = call(c, "pool.list", NULL, &r);
	if (rc != 0)
		return rc;
	void *list = NULL;
	if ((rc = decode_list(r, "pools", "pool", sizeof(cask_pool_info), pool_from_any, &list, n)) == 0)
		*out = list;
	return rc;
}

int
cask_pool_status(cask_client *c, const char *name, cask_pool_info *out)
{
	json_object *a = json_object_new_object(), *r;
	json_object_object_add(a, "name", json_object_new_string(name));
	int rc = call(c, "pool.status", a, &r);
	if (rc != 0)
		return rc;
	pool_from(r, out);
	json_object_put(r);
	return 0;
}

int
cask_pool_rewind_get(cask_client *c, const char *name, cask_pool_rewind_info *out)
{
	json_object *a = json_object_new_object(), *r, *rw;
	json_object_object_add(a, "name", json_object_new_string(name));
	int rc = call(c, "pool.status", a, &r);
	if (rc != 0)
		return rc;
	memset(out, 0, sizeof(*out));
	if (json_object_object_get_ex(r, "rewound", &rw) && json_object_is_type(rw, json_type_object)) {
		out->base_txg = get_u64(rw, "base_txg");
		out->first_discarded_txg = get_u64(rw, "first_discarded_txg");
		out->last_discarded_txg = get_u64(rw, "last_discarded_txg");
		out->last_discarded_time_ns = get_u64(rw, "last_discarded_time_ns");
	}
	out->newer_damaged_txg = get_u64(r, "newer_damaged_txg");
	json_object_put(r);
	return 0;
}

int
cask_pool_sync_get(cask_client *c, const char *name, cask_pool_sync_info *out)
{
	json_object *a = json_object_new_object(), *r;
	json_object_object_add(a, "name", json_object_new_string(name));
	int rc = call(c, "pool.status", a, &r);
	if (rc != 0)
		return rc;
	memset(out, 0, sizeof(*out));
	out->syncs = get_u64(r, "syncs");
	out->sync_ns_total = get_u64(r, "sync_ns_total");
	out->last_sync_ns = get_u64(r, "last_sync_ns");
	out->last_sync_bytes = get_u64(r, "last_sync_bytes");
	out->sync_threads = (unsigned)get_u64(r, "sync_threads");
	json_object_put(r);
	return 0;
}

void
cask_pool_info_clear(cask_pool_info *p)
{
	for (unsigned k = 0; p->vdevs != NULL && k < p->nvdevs_paths; k++)
		free(p->vdevs[k]);
	free(p->vdevs);
	p->vdevs = NULL;
	p->nvdevs_paths = 0;
}

void
cask_pool_info_free(cask_pool_info *list, size_t n)
{
	if (list == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		cask_pool_info_clear(&list[i]);
	free(list);
}

/*
 * The caller's option structure, of its own declared size, as this
 * library's version of it (out, known bytes): fields it does not cover
 * are zero. NULL in: all zero.
 */
int
client_opts_take(const void *in, size_t known, void *out, const char *what)
{
	memset(out, 0, known);
	if (in == NULL)
		return 0;
	size_t size;
	memcpy(&size, in, sizeof(size));
	if (size < sizeof(size_t))
		return set_error(EINVAL, CE_E_INVALID_ARGUMENT, "%s: its size field is not set (use %s_INIT)",
		    what, what);
	for (size_t i = known; i < size; i++)
		if (((const uint8_t *)in)[i] != 0)
			return set_error(EINVAL, CE_E_INVALID_ARGUMENT, "%s: %zu bytes, of which this libcask "
			    "knows %zu; the rest must be zero", what, size, known);
	memcpy(out, in, size < known ? size : known);
	return 0;
}

int
cask_vol_create(cask_client *c, const char *name, uint64_t size, const cask_vol_props *given)
{
	cask_vol_props pr, *props = given ? &pr : NULL;
	if (opts_take(given, sizeof(pr), &pr, "cask_vol_props") != 0)
		return -EINVAL;
	json_object *a = json_object_new_object();
	json_object_object_add(a, "name", json_object_new_string(name));
	json_object_object_add(a, "size", json_object_new_uint64(size));
	if (props != NULL) {
		json_object *p = json_object_new_object();
		if (props->volblocksize) {
			char b[16];
			snprintf(b, sizeof(b), "%u", props->volblocksize);
			json_object_object_add(p, "volblocksize", json_object_new_string(b));
		}
		if (props->compression)
			json_object_object_add(p, "compression", json_object_new_string(props->compression));
		if (props->checksum)
			json_object_object_add(p, "checksum", json_object_new_string(props->checksum));
		if (props->sync)
			json_object_object_add(p, "sync", json_object_new_string(props->sync));
		json_object_object_add(a, "props", p);
	}
	return call_void(c, "vol.create", a);
}

int
cask_vol_create_replicated(cask_client *c, const char *name, uint64_t size, const cask_vol_props *given,
    const cask_repl_args *ga)
{
	cask_vol_props pr;
	cask_repl_args ra;
	if (opts_take(given, sizeof(pr), &pr, "cask_vol_props") != 0 ||
	    opts_take(ga, sizeof(ra), &ra, "cask_repl_args") != 0)
		return -EINVAL;
	json_object *a = json_object_new_object();
	json_object_object_add(a, "name", json_object_new_string(name));
	json_object_object_add(a, "size", json_object_new_uint64(size));
	json_object *p = json_object_new_object();
	if (given != NULL) {
		if (pr.volblocksize) {
			char b[16];
			snprintf(b, sizeof(b), "%u", pr.volblocksize);
			json_object_object_add(p, "volblocksize", json_object_new_string(b));
		}
		if (pr.compression)
			json_object_object_add(p, "compression", json_object_new_string(pr.compression));
		if (pr.checksum)
			json_object_object_add(p, "checksum", json_object_new_string(pr.checksum));
		if (pr.sync)
			json_object_object_add(p, "sync", json_object_new_string(pr.sync));
	}
	json_object *reps = json_object_new_array();
	if (ga != NULL) {
		if (ra.consistency)
			json_object_object_add(p, "consistency", json_object_new_string(ra.consistency));
		if (ra.deadline_ms) {
			char b[16];
			snprintf(b, sizeof(b), "%u", ra.deadline_ms);
			json_object_object_add(p, "repl_deadline", json_object_new_string(b));
		}
		if (ra.rebuild_wait_s) {
			char b[16];
			snprintf(b, sizeof(b), "%u", ra.rebuild_wait_s);
			json_object_object_add(p, "rebuild_wait", json_object_new_string(b));
		}
		if (ra.rebuild_rate_mbs) {
			char b[16];
			snprintf(b, sizeof(b), "%u", ra.rebuild_rate_mbs);
			json_object_object_add(p, "rebuild_rate", json_object_new_string(b));
		}
		for (size_t i = 0; i < ra.nreplicas; i++)
			json_object_array_add(reps, json_object_new_string(ra.replicas[i] ? ra.replicas[i] : ""));
	}
	json_object_object_add(a, "props", p);
	json_object_object_add(a, "replicas", reps);
	return call_void(c, "vol.create", a);
}

static void repl_status_fill(json_object *r, cask_repl_status *out);

int
cask_vol_repl_status(cask_client *c, const char *name, cask_repl_status *out)
{
	json_object *a = json_object_new_object(), *r;
	json_object_object_add(a, "name", json_object_new_string(name));
	int rc = call(c, "vol.status", a, &r);
	if (rc != 0)
		return rc;
	repl_status_fill(r, out);
	json_object_put(r);
	return 0;
}

int
cask_vol_repl_status_ex(cask_client *c, const char *name, cask_repl_status *out, cask_repl_lease *lease)
{
	if (lease != NULL && lease->size < offsetof(cask_repl_lease, state) + sizeof(lease->state)) {
		set_error(EINVAL, CE_E_INVALID_ARGUMENT, "cask_repl_lease: size %zu is too small (use "
		    "CASK_REPL_LEASE_INIT; sizeof is %zu)", lease->size, sizeof(cask_repl_lease));
		return -EINVAL;
	}
	json_object *a = json_object_new_object(), *r;
	json_object_object_add(a, "name", json_object_new_string(name));
	int rc = call(c, "vol.status", a, &r);
	if (rc != 0)
		return rc;
	repl_status_fill(r, out);
	if (lease != NULL) {
		cask_repl_lease l;
		memset(&l, 0, sizeof(l));
		json_object *o;
		if (json_object_object_get_ex(r, "lease", &o) && json_object_is_type(o, json_type_object)) {
			get_str(o, "state", l.state, sizeof(l.state));
			l.left_ms = get_u64(o, "left_ms");
			l.renewed_by = (uint32_t)get_u64(o, "renewed_by");
			l.needed = (uint32_t)get_u64(o, "needed");
			l.lease_ms = get_u64(o, "lease_ms");
		}
		size_t n = lease->size < sizeof(l) ? lease->size : sizeof(l);
		l.size = lease->size;
		memcpy(lease, &l, n); /* what the caller's size covers; the rest of a larger one left alone */
	}
	json_object_put(r);
	return 0;
}

int
cask_vol_repl_backlog(cask_client *c, const char *name, cask_repl_backlog *out)
{
	if (out == NULL || out->size < sizeof(cask_repl_backlog)) {
		set_error(EINVAL, CE_E_INVALID_ARGUMENT, "cask_repl_backlog: size %zu is too small (use "
		    "CASK_REPL_BACKLOG_INIT; sizeof is %zu)", out ? out->size : 0, sizeof(cask_repl_backlog));
		return -EINVAL;
	}
	json_object *a = json_object_new_object(), *r, *o, *arr;
	json_object_object_add(a, "name", json_object_new_string(name));
	int rc = call(c, "vol.status", a, &r);
	if (rc != 0)
		return rc;
	cask_repl_backlog b;
	memset(&b, 0, sizeof(b));
	if (json_object_object_get_ex(r, "backlog", &o) && json_object_is_type(o, json_type_object)) {
		b.max_bytes = get_u64(o, "max_bytes");
		b.max_ops = get_u64(o, "max_ops");
		b.waiting = get_u64(o, "waiting");
		b.waited = get_u64(o, "waited");
		b.ejected = get_u64(o, "ejected");
		if (json_object_object_get_ex(r, "replicas", &arr) && json_object_is_type(arr, json_type_array)) {
			for (size_t i = 0; i < json_object_array_length(arr) && i < CASK_REPL_MAX; i++) {
				json_object *x = json_object_array_get_idx(arr, i);
				cask_replica_backlog *rb = &b.replicas[b.nreplicas++];
				rb->bytes = get_u64(x, "backlog_bytes");
				rb->ops = get_u64(x, "backlog_ops");
				rb->peak_bytes = get_u64(x, "backlog_peak_bytes");
				rb->peak_ops = get_u64(x, "backlog_peak_ops");
			}
		}
	}
	json_object_put(r);
	b.size = out->size;
	memcpy(out, &b, sizeof(b)); /* a larger (newer) caller's struct: the rest left alone */
	return 0;
}

int
cask_vol_takeover(cask_client *c, const char *name, cask_repl_status *out)
{
	return cask_vol_takeover_ex(c, name, 0, out);
}

int
cask_vol_takeover_ex(cask_client *c, const char *name, unsigned flags, cask_repl_status *out)
{
	if (flags & ~CASK_TAKEOVER_FORCE) {
		set_error(EINVAL, CE_E_INVALID_ARGUMENT, "cask_vol_takeover_ex: unknown flags %#x", flags & ~CASK_TAKEOVER_FORCE);
		return -EINVAL;
	}
	json_object *a = json_object_new_object(), *r;
	json_object_object_add(a, "name", json_object_new_string(name));
	if (flags & CASK_TAKEOVER_FORCE)
		json_object_object_add(a, "force", json_object_new_boolean(1));
	int rc = call(c, "vol.takeover", a, &r);
	if (rc != 0)
		return rc;
	if (out != NULL)
		repl_status_fill(r, out);
	json_object_put(r);
	return 0;
}

static void
repl_status_fill(json_object *r, cask_repl_status *out)
{
	json_object *arr;
	memset(out, 0, sizeof(*out));
	get_str(r, "epoch", out->epoch, sizeof(out->epoch));
	get_str(r, "consistency", out->consistency, sizeof(out->consistency));
	get_str(r, "state", out->state, sizeof(out->state));
	get_str(r, "fenced_by", out->fenced_by, sizeof(out->fenced_by));
	out->seq = get_u64(r, "seq");
	out->membership_version = get_u64(r, "membership_version");
	out->deadline_ms = (uint32_t)get_u64(r, "deadline_ms");
	if (json_object_object_get_ex(r, "replicas", &arr) && json_object_is_type(arr, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(arr) && i < CASK_REPL_MAX; i++) {
			json_object *o = json_object_array_get_idx(arr, i), *v;
			cask_replica_info *ri = &out->replicas[out->nreplicas++];
			get_str(o, "address", ri->address, sizeof(ri->address));
			get_str(o, "pool", ri->pool, sizeof(ri->pool));
			char id[24] = "";
			get_str(o, "id", id, sizeof(id));
			ri->id = strtoull(id, NULL, 16);
			ri->local = json_object_object_get_ex(o, "local", &v) && json_object_get_boolean(v);
			get_str(o, "state", ri->state, sizeof(ri->state));
			get_str(o, "reason", ri->reason, sizeof(ri->reason));
			get_str(o, "link", ri->link, sizeof(ri->link));
			ri->acked_seq = get_u64(o, "acked_seq");
			ri->durable_seq = get_u64(o, "durable_seq");
			ri->lag_ops = get_u64(o, "lag_ops");
		}
	}
}

int
cask_vol_checksum(cask_client *c, const char *name, uint8_t digest[16])
{
	json_object *a = json_object_new_object(), *r;
	json_object_object_add(a, "name", json_object_new_string(name));
	int rc = call(c, "vol.checksum", a, &r);
	if (rc != 0)
		return rc;
	char hex[40] = "";
	uint8_t d[16];
	get_str(r, "digest", hex, sizeof(hex));
	json_object_put(r);
	for (int i = 0; i < 16; i++) {
		unsigned b;
		if (strlen(hex) != 32 || sscanf(hex + 2 * i, "%2x", &b) != 1)
			return set_error(EPROTO, CE_E_BAD_REQUEST, "caskd's vol.checksum digest is malformed");
		d[i] = (uint8_t)b;
	}
	memcpy(digest, d, 16);
	return 0;
}

int
cask_vol_verify(cask_client *c, const char *vol, unsigned flags, cask_verify_result *out,
    cask_verify_range **ranges, size_t *n)
{
	if (flags != 0)
		return set_error(EINVAL, CE_E_INVALID_ARGUMENT, "cask_vol_verify: unknown flags 0x%x", flags);
	json_object *a = json_object_new_object(), *r, *arr;
	json_object_object_add(a, "name", json_object_new_string(vol));
	int rc = call(c, "vol.verify", a, &r);
	if (rc != 0)
		return rc;
	memset(out, 0, sizeof(*out));
	out->job = get_u64(r, "job");
	out->size = get_u64(r, "size");
	out->chunks = get_u64(r, "chunks");
	out->differing = get_u64(r, "differing");
	if (json_object_object_get_ex(r, "replicas", &arr) && json_object_is_type(arr, json_type_array))
		for (size_t i = 0; i < json_object_array_length(arr) && out->nreplicas < 5; i++)
			snprintf(out->replicas[out->nreplicas++], sizeof(out->replicas[0]), "%s",
			    json_object_get_string(json_object_array_get_idx(arr, i)));
	size_t len = json_object_object_get_ex(r, "ranges", &arr) && json_object_is_type(arr, json_type_array) ?
	    json_object_array_length(arr) : 0;
	cask_verify_range *v = calloc(len ? len : 1, sizeof(*v));
	if (v == NULL) {
		json_object_put(r);
		return set_error(ENOMEM, CE_E_INTERNAL, "out of memory");
	}
	for (size_t i = 0; i < len; i++) {
		json_object *o = json_object_array_get_idx(arr, i);
		v[i].offset = get_u64(o, "offset");
		v[i].length = get_u64(o, "length");
	}
	json_object_put(r);
	*ranges = v;
	*n = len;
	return 0;
}

int
cask_vol_rebuild_list(cask_client *c, const char *vol, cask_rebuild_info **out, size_t *n)
{
	json_object *a = json_object_new_object(), *r, *arr;
	json_object_object_add(a, "name", json_object_new_string(vol));
	int rc = call(c, "vol.status", a, &r);
	if (rc != 0)
		return rc;
	size_t k = 0, len = json_object_object_get_ex(r, "replicas", &arr) &&
	    json_object_is_type(arr, json_type_array) ? json_object_array_length(arr) : 0;
	cask_rebuild_info *v = calloc(len ? len : 1, sizeof(*v));
	if (v == NULL) {
		json_object_put(r);
		return set_error(ENOMEM, CE_E_INTERNAL, "out of memory");
	}
	for (size_t i = 0; i < len; i++) {
		json_object *o = json_object_array_get_idx(arr, i), *rb;
		if (!json_object_object_get_ex(o, "rebuild", &rb))
			continue;
		cask_rebuild_info *x = &v[k++];
		char addr[64] = "", pool[64] = "";
		get_str(o, "address", addr, sizeof(addr));
		get_str(o, "pool", pool, sizeof(pool));
		snprintf(x->replica, sizeof(x->replica), "%s/%s", addr, pool);
		get_str(rb, "kind", x->kind, sizeof(x->kind));
		get_str(rb, "state", x->state, sizeof(x->state));
		x->job = get_u64(rb, "job");
		x->done = get_u64(rb, "done");
		x->total = get_u64(rb, "total");
		x->transferred = get_u64(rb, "transferred");
		x->rate = get_u64(rb, "rate");
		x->eta_s = get_u64(rb, "eta_s");
	}
	json_object_put(r);
	*out = v;
	*n = k;
	return 0;
}

/* A replica job (vol.replica_add, _replace, _rebuild): {"job"}. */
static int
replica_job(cask_client *c, const char *op, const char *vol, const char *k1, const char *v1, const char *k2,
    const char *v2, uint64_t *job)
{
	json_object *a = json_object_new_object(), *r;
	json_object_object_add(a, "name", json_object_new_string(vol));
	json_object_object_add(a, k1, json_object_new_string(v1 ? v1 : ""));
	if (k2 != NULL)
		json_object_object_add(a, k2, json_object_new_string(v2 ? v2 : ""));
	int rc = call(c, op, a, &r);
	if (rc != 0)
		return rc;
	if (job != NULL)
		*job = get_u64(r, "job");
	json_object_put(r);
	return 0;
}

int
cask_vol_replica_add(cask_client *c, const char *vol, const char *replica, uint64_t *job)
{
	return replica_job(c, "vol.replica_add", vol, "replica", replica, NULL, NULL, job);
}

int
cask_vol_replica_rebuild(cask_client *c, const char *vol, const char *replica, uint64_t *job)
{
	return replica_job(c, "vol.replica_rebuild", vol, "replica", replica, NULL, NULL, job);
}

int
cask_vol_replica_replace(cask_client *c, const char *vol, const char *old_r, const char *new_r, uint64_t *job)
{
	return replica_job(c, "vol.replica_replace", vol, "old", old_r, "new", new_r, job);
}

int
cask_vol_replica_remove(cask_client *c, const char *vol, const char *replica, unsigned flags)
{
	if (flags != 0)
		return set_error(EINVAL, CE_E_INVALID_ARGUMENT, "cask_vol_replica_remove: unknown flags 0x%x", flags);
	json_object *a = json_object_new_object();
	json_object_object_add(a, "name", json_object_new_string(vol));
	json_object_object_add(a, "replica", json_object_new_string(replica ? replica : ""));
	return call_void(c, "vol.replica_remove", a);
}

/* An operation on a name that takes a second one: {"name", "new_name"}. */
static int
name_pair_op(cask_client *c, const char *op, const char *name, const char *new_name)
{
	json_object *a = json_object_new_object();
	json_object_object_add(a, "name", json_object_new_string(name));
	json_object_object_add(a, "new_name", json_object_new_string(new_name));
	return call_void(c, op, a);
}

int
cask_vol_resize(cask_client *c, const char *name, uint64_t size, int shrink)
{
	json_object *a = json_object_new_object();
	json_object_object_add(a, "name", json_object_new_string(name));
	json_object_object_add(a, "size", json_object_new_uint64(size));
	json_object_object_add(a, "shrink", json_object_new_boolean(shrink != 0));
	return call_void(c, "vol.resize", a);
}

int
cask_vol_rename(cask_client *c, const char *name, const char *new_name)
{
	return name_pair_op(c, "vol.rename", name, new_name);
}

int
cask_vol_set(cask_client *c, const char *name, const char *prop, const char *value)
{
	json_object *a = json_object_new_object();
	json_object_object_add(a, "name", json_object_new_string(name));
	json_object_object_add(a, "prop", json_object_new_string(prop));
	json_object_object_add(a, "value", json_object_new_string(value));
	return call_void(c, "vol.set", a);
}

int
cask_vol_set_many(cask_client *c, const char *name, const char *const *props, const char *const *values,
    size_t n)
{
	json_object *a = json_object_new_object(), *p = json_object_new_object();
	json_object_object_add(a, "name", json_object_new_string(name));
	for (size_t i = 0; i < n; i++)
		json_object_object_add(p, props[i], json_object_new_string(values[i]));
	json_object_object_add(a, "props", p);
	return call_void(c, "vol.set", a);
}

int
cask_vol_inherit(cask_client *c, const char *name, const char *prop)
{
	json_object *a = json_object_new_object();
	json_object_object_add(a, "name", json_object_new_string(name));
	json_object_object_add(a, "prop", json_object_new_string(prop));
	return call_void(c, "vol.inherit", a);
}

static void
vol_from(json_object *o, cask_vol_info *v)
{
	memset(v, 0, sizeof(*v));
	get_str(o, "name", v->name, sizeof(v->name));
	get_str(o, "guid", v->guid, sizeof(v->guid));
	get_str(o, "compression", v->compression, sizeof(v->compression));
	get_str(o, "checksum", v->checksum, sizeof(v->checksum));
	get_str(o, "sync", v->sync, sizeof(v->sync));
	v->size = get_u64(o, "size");
	v->volblocksize = (uint32_t)get_u64(o, "volblocksize");
	v->used = get_u64(o, "used");
	v->referenced = get_u64(o, "referenced");
	v->usedbydataset = get_u64(o, "usedbydataset");
	v->logical = get_u64(o, "logical");
	v->create_txg = get_u64(o, "create_txg");
	v->creation = get_u64(o, "creation");
	v->snapshots = (unsigned)get_u64(o, "snapshots");
	v->usedbysnapshots = get_u64(o, "usedbysnapshots");
	v->written = get_u64(o, "written");
	get_str(o, "origin", v->origin, sizeof(v->origin));
	v->logicalused = get_u64(o, "logicalused");
	json_object *src;
	if (json_object_object_get_ex(o, "sources", &src)) {
		get_str(src, "compression", v->compression_source, sizeof(v->compression_source));
		get_str(src, "checksum", v->checksum_source, sizeof(v->checksum_source));
		get_str(src, "sync", v->sync_source, sizeof(v->sync_source));
	}
	get_str(o, "receive_resume_token", v->receive_resume_token, sizeof(v->receive_resume_token));
	v->compressratio = get_double(o, "compressratio");
	v->refcompressratio = get_double(o, "refcompressratio");
}

static void
vol_from_any(json_object *o, void *v)
{
	vol_from(o, v);
}

int
cask_vol_list(cask_client *c, const char *pool, cask_vol_info **out, size_t *n)
{
	void *list;
	int rc = list_of(c, "vol.list", "pool", pool, "volumes", "volume", sizeof(cask_vol_info), vol_from_any,
	    &list, n);
	if (rc == 0)
		*out = list;
	return rc;
}

int
cask_vol_get(cask_client *c, const char *name, cask_vol_info *out)
{
	json_object *a = json_object_new_object(), *r;
	json_object_object_add(a, "name", json_object_new_string(name));
	int rc = call(c, "vol.get", a, &r);
	if (rc != 0)
		return rc;
	vol_from(r, out);
	json_object_put(r);
	return 0;
}

int
cask_vol_log_damaged(cask_client *c, const char *name, char *buf, size_t len)
{
	json_object *a = json_object_new_object(), *r;
	json_object_object_add(a, "name", json_object_new_string(name));
	int rc = call(c, "vol.get", a, &r);
	if (rc != 0)
		return rc;
	if (len > 0)
		get_str(r, "log_damaged", buf, len);
	json_object_put(r);
	return 0;
}

int
cask_vol_iostat(cask_client *c, const char *name, cask_iostat *out)
{
	static const char *kinds[CASK_IO_KINDS] = { "read", "write", "flush", "trim", "zero", "map", "cache" };
	json_object *a = json_object_new_object(), *r, *ops, *o, *h;
	json_object_object_add(a, "name", json_object_new_string(name));
	int rc = call(c, "vol.iostat", a, &r);
	if (rc != 0)
		return rc;
	memset(out, 0, sizeof(*out));
	out->time_ns = get_u64(r, "time_ns");
	if (json_object_object_get_ex(r, "ops", &ops)) {
		for (int i = 0; i < CASK_IO_KINDS; i++) {
			if (!json_object_object_get_ex(ops, kinds[i], &o))
				continue;
			cask_io_counts *k = &out->kind[i];
			k->count = get_u64(o, "count");
			k->bytes = get_u64(o, "bytes");
			k->errors = get_u64(o, "errors");
			k->in_flight = get_u64(o, "in_flight");
			k->latency_ns = get_u64(o, "latency_ns");
			if (json_object_object_get_ex(o, "histogram_us", &h) && json_object_is_type(h, json_type_array))
				for (size_t b = 0; b < CASK_IO_HIST_BUCKETS && b < json_object_array_length(h); b++)
					k->hist_us[b] = json_object_get_uint64(json_object_array_get_idx(h, b));
		}
	}
	json_object_put(r);
	return 0;
}

/* ---- snapshot policies ---- */

int
cask_sched_set(cask_client *c, const char *name, const cask_sched *s)
{
	json_object *a = json_object_new_object(), *pol = NULL;
	json_object_object_add(a, "name", json_object_new_string(name ? name : ""));
	if (s != NULL) {
		pol = json_object_new_object();
		json_object_object_add(pol, "every_min", json_object_new_int64(s->every_min));
		json_object_object_add(pol, "keep", json_object_new_int64(s->keep));
		json_object_object_add(pol, "hourly", json_object_new_int64(s->hourly));
		json_object_object_add(pol, "daily", json_object_new_int64(s->daily));
		json_object_object_add(pol, "weekly", json_object_new_int64(s->weekly));
		json_object_object_add(pol, "monthly", json_object_new_int64(s->monthly));
	}
	json_object_object_add(a, "policy", pol);
	return call_void(c, "sched.set", a);
}

static int64_t
get_i64_or(json_object *o, const char *k, int64_t dflt)
{
	json_object *v;
	if (!json_object_object_get_ex(o, k, &v) || json_object_is_type(v, json_type_null))
		return dflt;
	return json_object_get_int64(v);
}

/* A string that may be null (then ""). */
static void
get_str_or_empty(json_object *o, const char *k, char *out, size_t n)
{
	json_object *v;
	const char *str = json_object_object_get_ex(o, k, &v) && v != NULL ? json_object_get_string(v) : NULL;
	snprintf(out, n, "%s", str != NULL ? str : "");
}

static void
sched_from_any(json_object *o, void *p)
{
	cask_sched_info *s = p;
	json_object *r;
	memset(s, 0, sizeof(*s));
	get_str(o, "name", s->name, sizeof(s->name));
	s->policy.every_min = (uint32_t)get_u64(o, "every_min");
	s->policy.keep = (uint32_t)get_u64(o, "keep");
	if (json_object_object_get_ex(o, "retain", &r)) {
		s->policy.hourly = (uint32_t)get_u64(r, "hourly");
		s->policy.daily = (uint32_t)get_u64(r, "daily");
		s->policy.weekly = (uint32_t)get_u64(r, "weekly");
		s->policy.monthly = (uint32_t)get_u64(r, "monthly");
	}
	s->set_time = get_u64(o, "set_time");
	s->auto_snapshots = get_u64(o, "auto_snapshots");
	get_str_or_empty(o, "last_snapshot", s->last_snapshot, sizeof(s->last_snapshot));
	s->last_run = get_i64_or(o, "last_run", -1);
	s->next_run = get_i64_or(o, "next_run", -1);
	s->runs = get_u64(o, "runs");
	s->failures = get_u64(o, "failures");
	s->pruned = get_u64(o, "pruned");
	get_str_or_empty(o, "last_error", s->last_error, sizeof(s->last_error));
}

int
cask_sched_list(cask_client *c, const char *name, cask_sched_info **out, size_t *n)
{
	void *list;
	int rc = list_of(c, "sched.list", "name", name, "schedules", "schedule", sizeof(cask_sched_info),
	    sched_from_any, &list, n);
	if (rc == 0)
		*out = list;
	return rc;
}

int
cask_sched_run(cask_client *c, const char *name, char *snapshot, size_t len)
{
	json_object *a = json_object_new_object(), *r;
	json_object_object_add(a, "name", json_object_new_string(name ? name : ""));
	int rc = call(c, "sched.run", a, &r);
	if (rc != 0)
		return rc;
	if (snapshot != NULL && len > 0)
		get_str_or_empty(r, "snapshot", snapshot, len);
	json_object_put(r);
	return 0;
}

/* ---- snapshots ---- */

static json_object *
names_args(const char *tag, const char *const *names, size_t n)
{
	json_object *a = json_object_new_object(), *arr = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(arr, json_object_new_string(names[i]));
	json_object_object_add(a, "names", arr);
	if (tag != NULL)
		json_object_object_add(a, "tag", json_object_new_string(tag));
	return a;
}

int
cask_snap_create(cask_client *c, const char *const *names, size_t n)
{
	return call_void(c, "snap.create", names_args(NULL, names, n));
}

int
cask_snap_hold(cask_client *c, const char *tag, const char *const *names, size_t n)
{
	return call_void(c, "snap.hold", names_args(tag, names, n));
}

int
cask_snap_release(cask_client *c, const char *tag, const char *const *names, size_t n)
{
	return call_void(c, "snap.release", names_args(tag, names, n));
}

static void
hold_from_any(json_object *o, void *p)
{
	cask_hold_info *h = p;
	memset(h, 0, sizeof(*h));
	get_str(o, "snapshot", h->snapshot, sizeof(h->snapshot));
	get_str(o, "tag", h->tag, sizeof(h->tag));
	h->creation = get_u64(o, "creation");
}

int
cask_snap_holds(cask_client *c, const char *name, cask_hold_info **out, size_t *n)
{
	void *list;
	int rc = list_of(c, "snap.holds", "name", name, "holds", "hold", sizeof(cask_hold_info), hold_from_any,
	    &list, n);
	if (rc == 0)
		*out = list;
	return rc;
}

int cask_snap_destroy(cask_client *c, const char *name) { return name_op(c, "snap.destroy", name); }

int
cask_snap_destroy_many(cask_client *c, const char *const *names, size_t n)
{
	return call_void(c, "snap.destroy", names_args(NULL, names, n));
}

int
cask_snap_rename(cask_client *c, const char *name, const char *new_name)
{
	return name_pair_op(c, "snap.rename", name, new_name);
}

int
cask_vol_clone(cask_client *c, const char *snap, const char *new_name)
{
	return name_pair_op(c, "vol.clone", snap, new_name);
}

int
cask_vol_rollback_ex(cask_client *c, const char *snap, unsigned flags)
{
	if (flags & ~(unsigned)(CASK_ROLLBACK_DESTROY_LATER | CASK_FORCE_DISCONNECT))
		return set_error(EINVAL, CE_E_INVALID_ARGUMENT, "cask_vol_rollback_ex: unknown flags 0x%x", flags & ~(unsigned)(CASK_ROLLBACK_DESTROY_LATER | CASK_FORCE_DISCONNECT));
	json_object *a = json_object_new_object();
	json_object_object_add(a, "name", json_object_new_string(snap));
	json_object_object_add(a, "destroy_later", json_object_new_boolean((flags & CASK_ROLLBACK_DESTROY_LATER) != 0));
	if (flags & CASK_FORCE_DISCONNECT)
		json_object_object_add(a, "force", json_object_new_boolean(1));
	return call_void(c, "vol.rollback", a);
}

int
cask_vol_rollback(cask_client *c, const char *snap, int destroy_later)
{
	return cask_vol_rollback_ex(c, snap, destroy_later ? CASK_ROLLBACK_DESTROY_LATER : 0);
}

int
cask_snap_destroy_many_ex(cask_client *c, const char *const *names, size_t n, unsigned flags)
{
	if (flags & ~(unsigned)(CASK_FORCE_DISCONNECT))
		return set_error(EINVAL, CE_E_INVALID_ARGUMENT, "cask_snap_destroy_many_ex: unknown flags 0x%x", flags & ~(unsigned)(CASK_FORCE_DISCONNECT));
	json_object *a = names_args(NULL, names, n);
	if (flags & CASK_FORCE_DISCONNECT)
		json_object_object_add(a, "force", json_object_new_boolean(1));
	return call_void(c, "snap.destroy", a);
}

int
cask_pool_export_ex(cask_client *c, const char *name, unsigned flags)
{
	if (flags & ~(unsigned)(CASK_FORCE_DISCONNECT))
		return set_error(EINVAL, CE_E_INVALID_ARGUMENT, "cask_pool_export_ex: unknown flags 0x%x", flags & ~(unsigned)(CASK_FORCE_DISCONNECT));
	json_object *a = json_object_new_object();
	json_object_object_add(a, "name", json_object_new_string(name));
	if (flags & CASK_FORCE_DISCONNECT)
		json_object_object_add(a, "force", json_object_new_boolean(1));
	return call_void(c, "pool.export", a);
}

static void
conn_from_any(json_object *o, void *p)
{
	cask_conn_info *x = p;
	memset(x, 0, sizeof(*x));
	x->id = get_u64(o, "id");
	get_str(o, "frontend", x->frontend, sizeof(x->frontend));
	get_str(o, "peer", x->peer, sizeof(x->peer));
	json_object *v;
	x->uid = json_object_object_get_ex(o, "uid", &v) ? (long)json_object_get_int64(v) : -1;
	x->pid = json_object_object_get_ex(o, "pid", &v) ? (long)json_object_get_int64(v) : -1;
	get_str(o, "export", x->export_name, sizeof(x->export_name));
	get_str(o, "state", x->state, sizeof(x->state));
	get_str(o, "tls", x->tls, sizeof(x->tls));
	x->since = json_object_object_get_ex(o, "since", &v) ? json_object_get_int64(v) : 0;
	x->idle = json_object_object_get_ex(o, "idle", &v) ? json_object_get_int64(v) : 0;
	x->bytes_in = get_u64(o, "bytes_in");
	x->bytes_out = get_u64(o, "bytes_out");
	x->requests = (int)get_u64(o, "requests");
	x->queued_bytes = get_u64(o, "queued_bytes");
}

int
cask_conn_list(cask_client *c, cask_conn_info **out, size_t *n)
{
	void *list;
	int rc = list_of(c, "client.list", NULL, NULL, "clients", "client", sizeof(cask_conn_info), conn_from_any,
	    &list, n);
	if (rc == 0)
		*out = list;
	return rc;
}

int
cask_conn_kill(cask_client *c, uint64_t id)
{
	json_object *a = json_object_new_object();
	json_object_object_add(a, "id", json_object_new_uint64(id));
	return call_void(c, "client.kill", a);
}

static void
snap_from_any(json_object *o, void *p)
{
	cask_snap_info *s = p;
	memset(s, 0, sizeof(*s));
	get_str(o, "name", s->name, sizeof(s->name));
	get_str(o, "volume", s->volume, sizeof(s->volume));
	get_str(o, "guid", s->guid, sizeof(s->guid));
	s->txg = get_u64(o, "txg");
	s->creation = get_u64(o, "creation");
	s->size = get_u64(o, "size");
	s->referenced = get_u64(o, "referenced");
	s->logical = get_u64(o, "logical");
	s->used = get_u64(o, "used");
	s->holds = (unsigned)get_u64(o, "holds");
	s->logicalused = get_u64(o, "logicalused");
	s->refcompressratio = get_double(o, "refcompressratio");
	s->clones = (unsigned)get_u64(o, "clones");
}

int
cask_snap_list(cask_client *c, const char *name, cask_snap_info **out, size_t *n)
{
	void *list;
	int rc = list_of(c, "snap.list", "name", name, "snapshots", "snapshot", sizeof(cask_snap_info),
	    snap_from_any, &list, n);
	if (rc == 0)
		*out = list;
	return rc;
}

/* ---- send, receive, diff, jobs ---- */

int
cask_capabilities(cask_client *c, cask_capabilities_info *out)
{
	json_object *r, *f;
	memset(out, 0, sizeof(*out));
	int rc = call(c, "hello", NULL, &r);
	if (rc != 0)
		return rc;
	get_str(r, "server", out->server, sizeof(out->server));
	get_str(r, "version", out->version, sizeof(out->version));
	out->protocol = (int)get_u64(r, "protocol");
	if (json_object_object_get_ex(r, "features", &f) && json_object_is_type(f, json_type_array)) {
		size_t n = json_object_array_length(f);
		for (size_t i = 0; i < n && out->nfeatures < CASK_MAX_FEATURES; i++)
			snprintf(out->features[out->nfeatures++], sizeof(out->features[0]), "%s",
			    json_object_get_string(json_object_array_get_idx(f, i)));
	}
	json_object_put(r);
	return 0;
}

int
cask_has_feature(const cask_capabilities_info *caps, const char *feature)
{
	for (unsigned i = 0; caps != NULL && feature != NULL && i < caps->nfeatures; i++)
		if (strcmp(caps->features[i], feature) == 0)
			return 1;
	return 0;
}

const char *
cask_lib_version(void)
{
	return "1.0.0";
}

static void
job_from(json_object *o, cask_job_info *j)
{
	memset(j, 0, sizeof(*j));
	j->id = get_u64(o, "id");
	get_str(o, "kind", j->kind, sizeof(j->kind));
	get_str(o, "pool", j->pool, sizeof(j->pool));
	get_str(o, "target", j->target, sizeof(j->target));
	get_str(o, "state", j->state, sizeof(j->state));
	j->done = get_u64(o, "done");
	j->total = get_u64(o, "total");
	j->elapsed_ms = get_u64(o, "elapsed_ms");
	get_str(o, "result", j->result, sizeof(j->result));
	json_object *e, *v;
	if (json_object_object_get_ex(o, "error", &e)) {
		j->err = json_object_object_get_ex(e, "errno", &v) ? json_object_get_int(v) : EIO;
		get_str(e, "code", j->code, sizeof(j->code));
		get_str(e, "message", j->message, sizeof(j->message));
	}
}

/*
 * A job-starting call: the job id at once; with wait, also the job's own
 * result or error once it ends, or -ETIMEDOUT (code TIMED_OUT, the job
 * running on) when timeout_ms (> 0) passes first.
 */
static int
start(cask_client *c, const char *op, json_object *a, int fd, int wait, int timeout_ms, uint64_t *job,
    char *result, size_t rlen)
{
	json_object *r;
	json_object_object_add(a, "wait", json_object_new_boolean(0));
	int rc = call_fd(c, op, a, fd, &r);
	if (rc != 0)
		return rc;
	uint64_t id = get_u64(r, "job");
	if (job != NULL)
		*job = id;
	json_object_put(r);
	if (!wait)
		return 0;
	cask_job_info j;
	if ((rc = cask_job_wait(c, id, timeout_ms > 0 ? timeout_ms : -1, &j)) != 0)
		return rc;
	if (strcmp(j.state, "running") == 0)
		return set_error(ETIMEDOUT, CE_E_TIMED_OUT, "job %llu is still running after %d ms (it goes on: "
		    "cask_job_wait, cask_job_cancel)", (unsigned long long)id, timeout_ms);
	if (j.err != 0)
		return set_error_wire(j.err, j.code, "%s", j.message);
	if (result != NULL)
		snprintf(result, rlen, "%s", j.result);
	return 0;
}

int
cask_send(cask_client *c, const char *snap, const cask_send_args *given, int fd, uint64_t *job)
{
	cask_send_args sargs, *sa = &sargs;
	if (opts_take(given, sizeof(sargs), &sargs, "cask_send_args") != 0)
		return -EINVAL;
	json_object *a = json_object_new_object();
	if (snap != NULL)
		json_object_object_add(a, "name", json_object_new_string(snap));
	if (sa != NULL && sa->from != NULL)
		json_object_object_add(a, "from", json_object_new_string(sa->from));
	if (sa != NULL && sa->token != NULL)
		json_object_object_add(a, "token", json_object_new_string(sa->token));
	if (sa->no_policy) /* only when set: an older caskd refuses no field it does not know of */
		json_object_object_add(a, "no_policy", json_object_new_boolean(1));
	return start(c, "vol.send", a, fd, sa->wait, sa->timeout_ms, job, NULL, 0);
}

int
cask_recv(cask_client *c, const char *vol, const cask_recv_args *given, int fd, uint64_t *job,
    char *snap_out, size_t snap_len)
{
	cask_recv_args ra;
	if (opts_take(given, sizeof(ra), &ra, "cask_recv_args") != 0)
		return -EINVAL;
	json_object *a = json_object_new_object();
	json_object_object_add(a, "name", json_object_new_string(vol));
	json_object_object_add(a, "force", json_object_new_boolean(ra.force != 0));
	if (ra.no_policy)
		json_object_object_add(a, "no_policy", json_object_new_boolean(1));
	return start(c, "vol.recv", a, fd, ra.wait, ra.timeout_ms, job, snap_out, snap_len);
}

int cask_recv_abandon(cask_client *c, const char *vol) { return name_op(c, "vol.recv_abandon", vol); }

static int
job_call(cask_client *c, const char *op, uint64_t id, int timeout_ms, cask_job_info *out)
{
	json_object *a = json_object_new_object(), *r;
	json_object_object_add(a, "id", json_object_new_uint64(id));
	if (timeout_ms >= 0)
		json_object_object_add(a, "timeout_ms", json_object_new_int(timeout_ms));
	int rc = call(c, op, a, &r);
	if (rc != 0)
		return rc;
	if (out != NULL)
		job_from(r, out);
	json_object_put(r);
	return 0;
}

int cask_job_get(cask_client *c, uint64_t id, cask_job_info *out) { return job_call(c, "job.get", id, -1, out); }
int cask_job_wait(cask_client *c, uint64_t id, int timeout_ms, cask_job_info *out)
{
	return job_call(c, "job.wait", id, timeout_ms, out);
}
int cask_job_cancel(cask_client *c, uint64_t id) { return job_call(c, "job.cancel", id, -1, NULL); }

static void
job_from_any(json_object *o, void *p)
{
	job_from(o, p);
}

int
cask_job_list(cask_client *c, cask_job_info **out, size_t *n)
{
	void *list;
	int rc = list_of(c, "job.list", NULL, NULL, "jobs", "job", sizeof(cask_job_info), job_from_any, &list, n);
	if (rc == 0)
		*out = list;
	return rc;
}

struct cask_diff_iter {
	cask_client *c;
	char *from, *to;
	json_object *page;   /* the current page's result */
	size_t idx, n;
	uint64_t next;
	int more, started;
};

int
cask_diff_begin(cask_client *c, const char *from, const char *to, cask_diff_iter **out)
{
	cask_diff_iter *it = calloc(1, sizeof(*it));
	if (it == NULL)
		return set_error(ENOMEM, CE_E_INTERNAL, "out of memory");
	it->c = c;
	it->from = strdup(from);
	it->to = strdup(to);
	*out = it;
	return 0;
}

/* 1 and *ext filled, 0 at the end, or -errno. Pages of extents are fetched as needed. */
int
cask_diff_next(cask_diff_iter *it, cask_extent *ext)
{
	while (it->page == NULL || it->idx == it->n) {
		if (it->started && !it->more)
			return 0;
		json_object_put(it->page);
		it->page = NULL;
		json_object *a = json_object_new_object(), *arr, *nx;
		json_object_object_add(a, "name", json_object_new_string(it->to));
		json_object_object_add(a, "from", json_object_new_string(it->from));
		json_object_object_add(a, "cursor", json_object_new_uint64(it->next));
		int rc = call(it->c, "vol.diff", a, &it->page);
		if (rc != 0)
			return rc;
		it->started = 1;
		if (!json_object_object_get_ex(it->page, "extents", &arr))
			return set_error(EPROTO, CE_E_BAD_REQUEST, "caskd sent a diff without extents");
		it->n = json_object_array_length(arr);
		it->idx = 0;
		it->more = json_object_object_get_ex(it->page, "next", &nx);
		it->next = it->more ? json_object_get_uint64(nx) : 0;
	}
	json_object *arr, *e;
	json_object_object_get_ex(it->page, "extents", &arr);
	e = json_object_array_get_idx(arr, it->idx++);
	ext->offset = get_u64(e, "offset");
	ext->length = get_u64(e, "length");
	char t[8];
	get_str(e, "type", t, sizeof(t));
	ext->hole = strcmp(t, "hole") == 0;
	return 1;
}

void
cask_diff_end(cask_diff_iter *it)
{
	if (it == NULL)
		return;
	json_object_put(it->page);
	free(it->from);
	free(it->to);
	free(it);
}

int
cask_job_pollfd(cask_client *c, uint64_t id)
{
	/* a connection of its own, waiting in job.wait: its answer makes it readable */
	cask_client *w;
	int rc = cask_connect(c->path, &w);
	if (rc != 0)
		return rc;
	json_object *req = json_object_new_object(), *a = json_object_new_object();
	json_object_object_add(a, "id", json_object_new_uint64(id));
	json_object_object_add(req, "op", json_object_new_string("job.wait"));
	json_object_object_add(req, "args", a);
	size_t len;
	const char *s = json_object_to_json_string_length(req, JSON_C_TO_STRING_PLAIN, &len);
	uint8_t h[16];
	ctl_hdr_encode(h, CTL_REQ, 1, (uint32_t)len);
	struct iovec iov[2] = { { h, 16 }, { (void *)s, len } };
	int ok = sock_write_iov(w->fd, iov, 2) == 0;
	json_object_put(req);
	if (!ok) {
		cask_disconnect(w);
		return set_error(ECONNRESET, CE_E_NOT_RUNNING, "lost the connection to caskd");
	}
	int fd = dup(w->fd);
	cask_disconnect(w);
	if (fd < 0)
		return set_error(errno, CE_E_INTERNAL, "dup: %s", strerror(errno));
	return fd;
}

/* ---- the iSCSI target's configuration ---- */

static void
add_opt_str(json_object *a, const char *k, const char *v)
{
	if (v != NULL)
		json_object_object_add(a, k, json_object_new_string(v));
}

int
cask_iscsi_set(cask_client *c, const char *target, const char *property, const char *value)
{
	json_object *a = json_object_new_object();
	add_opt_str(a, "target", target);
	json_object_object_add(a, "property", json_object_new_string(property ? property : ""));
	json_object_object_add(a, "value", value ? json_object_new_string(value) : NULL);
	return call_void(c, "iscsi.set", a);
}

int
cask_iscsi_chap_set(cask_client *c, const char *target, const char *user, const char *secret,
    const char *mutual_user, const char *mutual_secret)
{
	json_object *a = json_object_new_object();
	add_opt_str(a, "target", target);
	add_opt_str(a, "user", user);
	add_opt_str(a, "secret", secret);
	add_opt_str(a, "mutual_user", mutual_user);
	add_opt_str(a, "mutual_secret", mutual_secret);
	return call_void(c, "iscsi.chap.set", a);
}

int
cask_iscsi_chap_unset(cask_client *c, const char *target, int mutual)
{
	json_object *a = json_object_new_object();
	add_opt_str(a, "target", target);
	json_object_object_add(a, "mutual", json_object_new_boolean(mutual != 0));
	return call_void(c, "iscsi.chap.unset", a);
}

static void
iscsi_entry_from(json_object *o, void *p)
{
	cask_iscsi_entry *e = p;
	json_object *acl;
	memset(e, 0, sizeof(*e));
	get_str_or_empty(o, "target", e->target, sizeof(e->target));
	get_str_or_empty(o, "iqn", e->iqn, sizeof(e->iqn));
	get_str_or_empty(o, "auth", e->auth, sizeof(e->auth));
	get_str_or_empty(o, "discovery_auth", e->discovery_auth, sizeof(e->discovery_auth));
	if (json_object_object_get_ex(o, "acl", &acl) && json_object_is_type(acl, json_type_array))
		for (size_t i = 0; i < json_object_array_length(acl) && e->nacl < CASK_ISCSI_ACL_MAX; i++)
			snprintf(e->acl[e->nacl++], sizeof(e->acl[0]), "%s",
			    json_object_get_string(json_object_array_get_idx(acl, i)));
	e->blocksize = (unsigned)get_u64(o, "blocksize");
	get_str_or_empty(o, "chap_user", e->chap_user, sizeof(e->chap_user));
	get_str_or_empty(o, "mutual_user", e->mutual_user, sizeof(e->mutual_user));
	json_object *b;
	e->chap_secret = json_object_object_get_ex(o, "chap_secret", &b) && json_object_get_boolean(b);
	e->mutual_secret = json_object_object_get_ex(o, "mutual_secret", &b) && json_object_get_boolean(b);
}

int
cask_iscsi_config(cask_client *c, cask_iscsi_entry **out, size_t *n)
{
	void *list;
	int rc = list_of(c, "iscsi.config", "target", NULL, "entries", "entry", sizeof(cask_iscsi_entry),
	    iscsi_entry_from, &list, n);
	if (rc == 0)
		*out = list;
	return rc;
}

/* ---- the iSCSI target's live state ---- */

static int
get_flag(json_object *o, const char *k)
{
	json_object *b;
	return json_object_object_get_ex(o, k, &b) && json_object_get_boolean(b);
}

static void
iscsi_target_from(json_object *o, void *p)
{
	cask_iscsi_target *t = p;
	json_object *a, *luns;
	memset(t, 0, sizeof(*t));
	get_str_or_empty(o, "iqn", t->iqn, sizeof(t->iqn));
	get_str_or_empty(o, "volume", t->volume, sizeof(t->volume));
	get_str_or_empty(o, "state", t->state, sizeof(t->state));
	get_str_or_empty(o, "auth", t->auth, sizeof(t->auth));
	t->chap = get_flag(o, "chap");
	t->mutual_chap = get_flag(o, "mutual_chap");
	if (json_object_object_get_ex(o, "acl", &a) && json_object_is_type(a, json_type_array))
		for (size_t i = 0; i < json_object_array_length(a) && t->nacl < CASK_ISCSI_ACL_MAX; i++)
			snprintf(t->acl[t->nacl++], sizeof(t->acl[0]), "%s", json_object_get_string(json_object_array_get_idx(a, i)));
	if (json_object_object_get_ex(o, "portals", &a) && json_object_is_type(a, json_type_array))
		for (size_t i = 0; i < json_object_array_length(a) && t->nportals < CASK_ISCSI_PORTALS_MAX; i++)
			snprintf(t->portals[t->nportals++], sizeof(t->portals[0]), "%s",
			    json_object_get_string(json_object_array_get_idx(a, i)));
	if (json_object_object_get_ex(o, "luns", &luns) && json_object_is_type(luns, json_type_array) &&
	    json_object_array_length(luns) > 0) {
		json_object *l = json_object_array_get_idx(luns, 0);
		t->lun = (unsigned)get_u64(l, "lun");
		t->size = get_u64(l, "size");
		t->blocksize = (unsigned)get_u64(l, "blocksize");
		t->read_only = get_flag(l, "read_only");
	}
	t->sessions = (unsigned)get_u64(o, "sessions");
}

int
cask_iscsi_targets(cask_client *c, const char *pool, cask_iscsi_target **out, size_t *n)
{
	void *list;
	int rc = list_of(c, "iscsi.targets", "pool", pool, "targets", "target", sizeof(cask_iscsi_target),
	    iscsi_target_from, &list, n);
	if (rc == 0)
		*out = list;
	return rc;
}

static void
iscsi_session_from(json_object *o, void *p)
{
	cask_iscsi_session *s = p;
	memset(s, 0, sizeof(*s));
	s->tsih = (unsigned)get_u64(o, "tsih");
	get_str_or_empty(o, "initiator", s->initiator, sizeof(s->initiator));
	get_str_or_empty(o, "isid", s->isid, sizeof(s->isid));
	get_str_or_empty(o, "target", s->target, sizeof(s->target));
	get_str_or_empty(o, "volume", s->volume, sizeof(s->volume));
	get_str_or_empty(o, "address", s->address, sizeof(s->address));
	get_str_or_empty(o, "portal", s->portal, sizeof(s->portal));
	get_str_or_empty(o, "state", s->state, sizeof(s->state));
	s->since = get_i64_or(o, "since", 0);
	get_str_or_empty(o, "header_digest", s->header_digest, sizeof(s->header_digest));
	get_str_or_empty(o, "data_digest", s->data_digest, sizeof(s->data_digest));
	get_str_or_empty(o, "chap", s->chap, sizeof(s->chap));
	s->commands = (unsigned)get_u64(o, "commands");
}

int
cask_iscsi_sessions(cask_client *c, const char *target, cask_iscsi_session **out, size_t *n)
{
	void *list;
	int rc = list_of(c, "iscsi.sessions", "target", target, "sessions", "session", sizeof(cask_iscsi_session),
	    iscsi_session_from, &list, n);
	if (rc == 0)
		*out = list;
	return rc;
}

int
cask_iscsi_logout(cask_client *c, unsigned tsih, int force, int *dropped)
{
	json_object *a = json_object_new_object(), *r;
	json_object_object_add(a, "tsih", json_object_new_uint64(tsih));
	json_object_object_add(a, "force", json_object_new_boolean(force != 0));
	int rc = call(c, "iscsi.logout", a, &r);
	if (rc != 0)
		return rc;
	char how[16];
	get_str_or_empty(r, "how", how, sizeof(how));
	if (dropped != NULL)
		*dropped = strcmp(how, "dropped") == 0;
	json_object_put(r);
	return 0;
}

int
cask_iscsi_pr_get(cask_client *c, const char *target, cask_iscsi_pr *out)
{
	memset(out, 0, sizeof(*out));
	json_object *a = json_object_new_object(), *r, *regs;
	json_object_object_add(a, "target", json_object_new_string(target ? target : ""));
	int rc = call(c, "iscsi.pr", a, &r);
	if (rc != 0)
		return rc;
	get_str_or_empty(r, "volume", out->volume, sizeof(out->volume));
	get_str_or_empty(r, "iqn", out->iqn, sizeof(out->iqn));
	out->open = get_flag(r, "open");
	out->generation = (uint32_t)get_u64(r, "generation");
	get_str_or_empty(r, "type", out->type, sizeof(out->type));
	out->aptpl = get_flag(r, "aptpl");
	if (json_object_object_get_ex(r, "registrations", &regs) && json_object_is_type(regs, json_type_array)) {
		size_t n = json_object_array_length(regs);
		out->regs = calloc(n ? n : 1, sizeof(*out->regs));
		if (out->regs == NULL) {
			json_object_put(r);
			return set_error(ENOMEM, CE_E_INTERNAL, "out of memory");
		}
		for (size_t i = 0; i < n; i++) {
			json_object *o = json_object_array_get_idx(regs, i);
			char key[24];
			get_str_or_empty(o, "key", key, sizeof(key));
			out->regs[i].key = strtoull(key, NULL, 16);
			get_str_or_empty(o, "initiator_port", out->regs[i].initiator_port, sizeof(out->regs[i].initiator_port));
			out->regs[i].holder = get_flag(o, "holder");
		}
		out->nregs = n;
	}
	json_object_put(r);
	return 0;
}

void
cask_iscsi_pr_free(cask_iscsi_pr *pr)
{
	if (pr != NULL) {
		free(pr->regs);
		pr->regs = NULL;
		pr->nregs = 0;
	}
}
