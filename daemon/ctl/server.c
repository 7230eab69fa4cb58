/*
 * server.c -- the control socket: listening, access, client threads, framing.
 *
 * Owns the unix socket that libcask clients talk to, one thread per client
 * connection, frame parsing, access control (SO_PEERCRED), and dispatch of
 * each request to its operation (ops.c); the operations themselves live in
 * one file per noun.
 *
 * Invariants:
 *   1. Only root and caskd's own user are served; the socket is 0600 in a
 *      0700 directory as a first line, SO_PEERCRED as the second.
 *   2. A malformed frame gets an error response and closes that
 *      connection only; a request that fails gets an error response
 *      (errno, stable code, message) and the connection goes on.
 *   3. Every response carries the request's id.
 *   4. A descriptor passed with a request is owned by the operation that
 *      takes it (ctl_take_fd), else closed when the request ends.
 */
#include "ctl_impl.h"
#include "ctlframe.h"
#include "../job.h"
#include "../log.h"
#include "../sockpath.h"
#include "sockio.h"
#include "util.h"

#include <errno.h>
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

int
ctl_take_fd(void)
{
	int fd = req_fd;
	req_fd = -1;
	return fd;
}

uint64_t
ctl_conn(void)
{
	return req_conn;
}

static pthread_mutex_t clients_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t clients_cv = PTHREAD_COND_INITIALIZER;
static int nclients;
static int client_fds[256];
static const char *version_string = "0.1.0";

const char *
ctl_version(void)
{
	return version_string;
}

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
send_error_items(int fd, uint32_t id, int err, int code, const char *msg, json_object *items)
{
	json_object *r = json_object_new_object();
	json_object *e = json_object_new_object();
	json_object_object_add(e, "errno", json_object_new_int(-err));
	json_object_object_add(e, "code", json_object_new_string(ctl_wire(code)));
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
send_error(int fd, uint32_t id, int err, int code, const char *msg)
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
			close(ctl_take_fd());
		return -1;
	}
	ctl_hdr hd;
	ctl_hdr_decode(h, &hd);
	uint32_t magic = hd.magic, id = hd.id, len = hd.length;
	uint16_t ver = hd.version, kind = hd.kind;
	if (magic != CTL_MAGIC || kind != CTL_REQ || len > CTL_MAX) {
		send_error(fd, magic == CTL_MAGIC ? id : 0, -EINVAL, CE_E_BAD_REQUEST,
		    magic != CTL_MAGIC ? "bad frame magic" : kind != CTL_REQ ? "not a request frame"
									   : "frame larger than 1 MiB");
		return -1;
	}
	if (ver != CTL_VERSION) {
		send_error(fd, id, -EPROTO, CE_E_UNSUPPORTED_VERSION, "this caskd speaks control protocol version 1");
		return -1;
	}
	char *buf = xmalloc(len + 1);
	if (sock_read_full_fd(fd, buf, len, &req_fd) != 0) {
		free(buf);
		if (req_fd >= 0)
			close(ctl_take_fd());
		return -1;
	}
	buf[len] = '\0';
	json_tokener *tok = json_tokener_new();
	json_object *req = json_tokener_parse_ex(tok, buf, (int)len);
	int parsed = req != NULL && json_tokener_get_error(tok) == json_tokener_success &&
	    (size_t)json_tokener_get_parse_end(tok) == len;
	json_tokener_free(tok);
	int key_nul = parsed && nul_in_keys(buf, len, req);
	free(buf);
	json_object *opv, *args = NULL;
	if (!parsed || !json_object_is_type(req, json_type_object) ||
	    !json_object_object_get_ex(req, "op", &opv) || !json_object_is_type(opv, json_type_string)) {
		json_object_put(req);
		send_error(fd, id, -EINVAL, CE_E_BAD_REQUEST, "payload is not a JSON object with a string 'op'");
		return -1;
	}
	if (!json_object_object_get_ex(req, "args", &args) || json_object_is_type(args, json_type_null))
		args = NULL;
	if (args != NULL && !json_object_is_type(args, json_type_object)) {
		json_object_put(req);
		return send_error(fd, id, -EINVAL, CE_E_BAD_REQUEST, "'args' must be an object");
	}
	if (json_object_get_string_len(opv) != (int)strlen(json_object_get_string(opv)) || key_nul) {
		json_object_put(req); /* args.c's check (str_value) for the op; keys: nul_in_keys */
		return send_error(fd, id, -EINVAL, CE_E_BAD_REQUEST,
		    key_nul ? "a key of the request holds a NUL character" : "'op' holds a NUL character");
	}
	json_object *empty = json_object_new_object();
	const char *op = json_object_get_string(opv);
	const ctl_op *o = ctl_op_find(op);
	int rc;
	if (o == NULL) {
		char msg[300];
		snprintf(msg, sizeof(msg), "unknown operation '%.200s'", op);
		rc = send_error(fd, id, -EOPNOTSUPP, CE_E_UNKNOWN_OP, msg);
	} else {
		json_object *res = json_object_new_object();
		reqerr e = { 0, CE_E_NONE, NULL };
		err_clear();
		int err = o->fn(args ? args : empty, res, &e);
		if (err != 0) {
			log_info("ctl uid %u: %s failed: %s", (unsigned)uid, op, err_get());
			rc = send_error_items(fd, id, err, e.code != CE_E_NONE ? e.code : ctl_code(err, 0), err_get(), e.items);
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
		close(ctl_take_fd()); /* passed to an op that did not take it */
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
		send_error(fd, 0, -EACCES, CE_E_PERMISSION_DENIED, "this caskd serves only root and its own user");
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
			send_error(fd, 0, -EAGAIN, CE_E_BUSY, "too many control clients");
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
	/* A live daemon on this socket must not be displaced, nor a file that is not a socket removed. */
	int claim = sockpath_claim(path, "control socket");
	if (claim != 0)
		return claim;
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
