/*
 * server.c -- the control socket: listening, access, the event loop and
 * its workers, framing.
 *
 * Owns the unix socket that libcask clients talk to, frame parsing,
 * access control (SO_PEERCRED), and dispatch of each request to its
 * operation (ops.c); the operations themselves live in one file per noun.
 *
 * Threads (fixed by the limits, not by the number of clients): one loop
 * thread owns the listening socket and every client socket (epoll, non-
 * blocking): it accepts, reads a client's bytes until one whole frame (and
 * the descriptor passed with it) is in, and writes answers. A complete
 * frame goes to a worker, which runs the operation (operations block:
 * pool create, a send with "wait", job.wait) and hands the client back
 * with its answer. Workers start on demand, at most CTL_WORKERS_MAX;
 * those beyond CTL_WORKERS_KEEP leave after CTL_WORKER_IDLE_S idle
 * seconds. An idle client costs its socket and its struct, no thread.
 *
 * State of a client (the function for each transition):
 *   reading  (on_event -> read_in: bytes of the next frame, EPOLLIN)
 *   -> busy  (dispatch: the frame is whole; epoll watches nothing)
 *   -> writing (handed_back -> flush_out: the answer; EPOLLOUT while the
 *               socket is full, and nothing more is read meanwhile)
 *   -> reading, or closed (client_free: hang-up, malformed frame, stop)
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
 *   5. A client is touched by one thread at a time: the loop, or while
 *      busy the one worker serving it (the loop only notes a hang-up).
 *      So a client has at most one frame being read or run and one answer
 *      in memory, and a client that does not read its answers is not read.
 *   6. A client is freed only by the loop and never while busy; its jobs
 *      are cancelled then (job_cancel_owner).
 */
#include "ctl_impl.h"
#include "ctlframe.h"
#include "../job.h"
#include "../log.h"
#include "../sockpath.h"
#include "sockio.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CTL_WORKERS_MAX 32   /* operations running at once (more wait their turn) */
#define CTL_WORKERS_KEEP 2   /* workers kept when idle */
#define CTL_WORKER_IDLE_S 10

static int lfd = -1;
static char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
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
static pthread_cond_t clients_cv = PTHREAD_COND_INITIALIZER; /* nclients or nworkers went down */
static pthread_cond_t work_cv = PTHREAD_COND_INITIALIZER;    /* a frame is queued, or stopping */
static int nclients;
static int client_fds[256];
static const char *version_string = "0.1.0";

const char *
ctl_version(void)
{
	return version_string;
}

/* ---- framing: answers are built in memory, the loop writes them ---- */

typedef struct obuf {
	uint8_t *b;
	size_t n, cap;
} obuf;

static void
put_frame(obuf *o, uint32_t id, json_object *payload)
{
	size_t len;
	const char *s = json_object_to_json_string_length(payload, JSON_C_TO_STRING_PLAIN, &len);
	if (o->n + 16 + len > o->cap) {
		o->cap = o->n + 16 + len;
		o->b = xrealloc(o->b, o->cap);
	}
	uint8_t *h = o->b + o->n;
	ctl_hdr_encode(h, CTL_RESP, id, (uint32_t)len);
	memcpy(h + 16, s, len);
	/*
	 * JSON is UTF-8. Strings that echo a client's bytes or were cut to a
	 * buffer's size may not be: such bytes become '?' (all JSON syntax is
	 * ASCII, so the text stays valid).
	 */
	if (util_utf8_valid_prefix((const char *)h + 16, len) != len)
		util_utf8_repair((char *)h + 16, len);
	o->n += 16 + len;
}

static void
put_error(obuf *o, uint32_t id, int err, int code, const char *msg, json_object *items)
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
	put_frame(o, id, r);
	json_object_put(r);
}

/* ---- clients: the loop assembles frames, workers run them ---- */

typedef struct cclient {
	int fd;
	uid_t uid;
	uint64_t conn;
	/* input: one frame at a time (loop) */
	uint8_t hdr[16];
	size_t hgot;
	char *body;
	size_t blen, bgot;
	int pfd;             /* a descriptor passed with the frame */
	int bad;             /* the header is bad: answer it, then close */
	/* output: the response being written (loop) */
	obuf out;
	size_t ooff;
	int busy;            /* a worker has it: the loop does not touch input or output */
	int close_after;     /* close once the output is written */
	int dead;            /* hung up while busy: freed when the worker hands it back */
	struct cclient *qnext;
	struct cclient *prev, *next; /* every client (the loop's list) */
} cclient;

/* Run the frame a client sent (a worker); its answer goes to c->out. 0 to go on, -1 to close after it. */
static int
serve_frame(cclient *c)
{
	obuf *o = &c->out;
	ctl_hdr hd;
	ctl_hdr_decode(c->hdr, &hd);
	uint32_t magic = hd.magic, id = hd.id, len = hd.length;
	uint16_t ver = hd.version, kind = hd.kind;
	uid_t uid = c->uid;
	if (magic != CTL_MAGIC || kind != CTL_REQ || len > CTL_MAX) {
		put_error(o, magic == CTL_MAGIC ? id : 0, -EINVAL, CE_E_BAD_REQUEST,
		    magic != CTL_MAGIC ? "bad frame magic" : kind != CTL_REQ ? "not a request frame"
									   : "frame larger than 1 MiB", NULL);
		return -1;
	}
	if (ver != CTL_VERSION) {
		put_error(o, id, -EPROTO, CE_E_UNSUPPORTED_VERSION, "this caskd speaks control protocol version 1", NULL);
		return -1;
	}
	char *buf = c->body;
	buf[len] = '\0';
	json_tokener *tok = json_tokener_new();
	json_object *req = json_tokener_parse_ex(tok, buf, (int)len);
	int parsed = req != NULL && json_tokener_get_error(tok) == json_tokener_success &&
	    (size_t)json_tokener_get_parse_end(tok) == len;
	json_tokener_free(tok);
	int key_nul = parsed && nul_in_keys(buf, len, req);
	json_object *opv, *args = NULL;
	if (!parsed || !json_object_is_type(req, json_type_object) ||
	    !json_object_object_get_ex(req, "op", &opv) || !json_object_is_type(opv, json_type_string)) {
		json_object_put(req);
		put_error(o, id, -EINVAL, CE_E_BAD_REQUEST, "payload is not a JSON object with a string 'op'", NULL);
		return -1;
	}
	if (!json_object_object_get_ex(req, "args", &args) || json_object_is_type(args, json_type_null))
		args = NULL;
	if (args != NULL && !json_object_is_type(args, json_type_object)) {
		json_object_put(req);
		put_error(o, id, -EINVAL, CE_E_BAD_REQUEST, "'args' must be an object", NULL);
		return 0;
	}
	if (json_object_get_string_len(opv) != (int)strlen(json_object_get_string(opv)) || key_nul) {
		json_object_put(req); /* args.c's check (str_value) for the op; keys: nul_in_keys */
		put_error(o, id, -EINVAL, CE_E_BAD_REQUEST,
		    key_nul ? "a key of the request holds a NUL character" : "'op' holds a NUL character", NULL);
		return 0;
	}
	json_object *empty = json_object_new_object();
	const char *op = json_object_get_string(opv);
	const ctl_op *co = ctl_op_find(op);
	if (co == NULL) {
		char msg[300];
		snprintf(msg, sizeof(msg), "unknown operation '%.200s'", op);
		put_error(o, id, -EOPNOTSUPP, CE_E_UNKNOWN_OP, msg, NULL);
	} else {
		json_object *res = json_object_new_object();
		reqerr e = { 0, CE_E_NONE, NULL };
		err_clear();
		int err = co->fn(args ? args : empty, res, &e);
		if (err != 0) {
			log_info("ctl uid %u: %s failed: %s", (unsigned)uid, op, err_get());
			put_error(o, id, err, e.code != CE_E_NONE ? e.code : ctl_code(err, 0), err_get(), e.items);
			json_object_put(res);
		} else {
			log_debug("ctl uid %u: %s", (unsigned)uid, op);
			json_object *r = json_object_new_object();
			json_object_object_add(r, "ok", json_object_new_boolean(1));
			json_object_object_add(r, "result", res);
			put_frame(o, id, r);
			json_object_put(r);
		}
		json_object_put(e.items);
	}
	json_object_put(empty);
	json_object_put(req);
	return 0;
}

static int efd = -1, wfd = -1;  /* epoll set; eventfd the workers wake the loop with */
static pthread_t loop_tid;
/* the work queue and the handed-back list (clients_lock) */
static cclient *qhead, *qtail, *donelist;
static int nworkers, nidle;
static cclient *all; /* the loop's */

static void
ep_set(cclient *c, uint32_t ev)
{
	struct epoll_event e = { .events = ev, .data.ptr = c };
	VERIFY0(epoll_ctl(efd, EPOLL_CTL_MOD, c->fd, &e));
}

static void
client_free(cclient *c)
{
	if (c->conn != 0)
		job_cancel_owner(c->conn); /* a client that goes away takes its jobs with it */
	epoll_ctl(efd, EPOLL_CTL_DEL, c->fd, NULL);
	if (c->prev)
		c->prev->next = c->next;
	else
		all = c->next;
	if (c->next)
		c->next->prev = c->prev;
	close(c->fd);
	if (c->pfd >= 0)
		close(c->pfd);
	free(c->body);
	free(c->out.b);
	pthread_mutex_lock(&clients_lock);
	for (int i = 0; i < nclients; i++)
		if (client_fds[i] == c->fd) {
			client_fds[i] = client_fds[--nclients];
			break;
		}
	pthread_cond_broadcast(&clients_cv);
	pthread_mutex_unlock(&clients_lock);
	free(c);
}

static void *worker_main(void *arg);

/* Hand a complete frame to a worker; start one if none is idle (at most CTL_WORKERS_MAX). */
static void
dispatch(cclient *c)
{
	c->busy = 1;
	c->qnext = NULL;
	pthread_mutex_lock(&clients_lock);
	if (qtail)
		qtail->qnext = c;
	else
		qhead = c;
	qtail = c;
	if (nidle == 0 && nworkers < CTL_WORKERS_MAX) {
		pthread_t t;
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &a, worker_main, NULL) == 0)
			nworkers++;
		pthread_attr_destroy(&a);
	}
	pthread_cond_signal(&work_cv);
	pthread_mutex_unlock(&clients_lock);
}

/* Write what output is pending: 0 all written (or nothing), 1 the socket is full, -1 the client is gone. */
static int
flush_out(cclient *c)
{
	while (c->ooff < c->out.n) {
		ssize_t w = send(c->fd, c->out.b + c->ooff, c->out.n - c->ooff, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 1;
		if (w <= 0)
			return -1;
		c->ooff += (size_t)w;
	}
	c->out.n = c->ooff = 0;
	if (c->out.cap > (64u << 10)) { /* an idle client keeps no large answer buffer */
		free(c->out.b);
		c->out.b = NULL;
		c->out.cap = 0;
	}
	return 0;
}

/* Read what the socket has of the current frame: 1 the frame is complete, 0 more to come, -1 close. */
static int
read_in(cclient *c)
{
	for (;;) {
		void *dst;
		size_t want;
		if (c->hgot < 16) {
			dst = c->hdr + c->hgot;
			want = 16 - c->hgot;
		} else {
			dst = c->body + c->bgot;
			want = c->blen - c->bgot;
		}
		if (want == 0)
			return 1;
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(4 * sizeof(int))];
		} cb;
		struct iovec iov = { dst, want };
		struct msghdr m = { 0 };
		m.msg_iov = &iov;
		m.msg_iovlen = 1;
		m.msg_control = cb.b;
		m.msg_controllen = sizeof(cb.b);
		ssize_t r = recvmsg(c->fd, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (r <= 0)
			return -1;
		for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h != NULL; h = CMSG_NXTHDR(&m, h)) {
			if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
				continue;
			size_t k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k; i++) {
				int got;
				memcpy(&got, CMSG_DATA(h) + i * sizeof(int), sizeof(int));
				if (c->pfd < 0)
					c->pfd = got;
				else
					close(got); /* one descriptor per request */
			}
		}
		if (c->hgot < 16) {
			c->hgot += (size_t)r;
			if (c->hgot == 16) {
				ctl_hdr hd;
				ctl_hdr_decode(c->hdr, &hd);
				if (hd.magic != CTL_MAGIC || hd.kind != CTL_REQ || hd.length > CTL_MAX || hd.version != CTL_VERSION) {
					c->bad = 1; /* the worker answers it; nothing more is read */
					return 1;
				}
				c->blen = hd.length;
				c->bgot = 0;
				c->body = xmalloc(c->blen + 1);
			}
		} else {
			c->bgot += (size_t)r;
		}
	}
}

/* The loop takes back a client a worker served. */
static void
handed_back(cclient *c)
{
	if (c->dead) {
		client_free(c);
		return;
	}
	int w = flush_out(c);
	if (atomic_load(&stopping)) {
		client_free(c); /* the answer went if the socket took it */
		return;
	}
	if (w < 0 || (w == 0 && c->close_after)) {
		client_free(c);
		return;
	}
	ep_set(c, w == 1 ? EPOLLOUT : EPOLLIN); /* a client that does not read its answers is not read */
}

static void
on_event(cclient *c, uint32_t ev)
{
	if (c->busy) {
		if (ev & (EPOLLHUP | EPOLLERR)) {
			c->dead = 1; /* the worker's answer goes nowhere; freed when it is handed back */
			epoll_ctl(efd, EPOLL_CTL_DEL, c->fd, NULL); /* HUP is reported whatever the mask: not again */
		}
		return;
	}
	if (c->out.n > 0) {
		int w = flush_out(c);
		if (w < 0 || (w == 0 && c->close_after)) {
			client_free(c);
			return;
		}
		if (w == 1)
			return;
		ep_set(c, EPOLLIN);
	}
	if (!(ev & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	int r = read_in(c);
	if (r < 0) {
		client_free(c);
		return;
	}
	if (r == 1) {
		ep_set(c, 0); /* nothing more is read until the answer is written */
		dispatch(c);
	}
}

static void
accept_one(void)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	obuf o = { 0 };
	struct ucred cr;
	socklen_t cl = sizeof(cr);
	pthread_mutex_lock(&clients_lock);
	int full = nclients == (int)ARRAY_SIZE(client_fds) || atomic_load(&stopping);
	if (!full)
		client_fds[nclients++] = fd;
	pthread_mutex_unlock(&clients_lock);
	if (full) {
		put_error(&o, 0, -EAGAIN, CE_E_BUSY, "too many control clients", NULL);
	} else if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0 || (cr.uid != 0 && cr.uid != geteuid())) {
		log_warn("ctl: refused a client (uid %d)", (int)cr.uid);
		put_error(&o, 0, -EACCES, CE_E_PERMISSION_DENIED, "this caskd serves only root and its own user", NULL);
	} else {
		cclient *c = xcalloc(1, sizeof(*c));
		c->fd = fd;
		c->uid = cr.uid;
		c->pfd = -1;
		c->conn = atomic_fetch_add(&next_conn, 1);
		c->next = all;
		if (all)
			all->prev = c;
		all = c;
		struct epoll_event e = { .events = EPOLLIN, .data.ptr = c };
		if (epoll_ctl(efd, EPOLL_CTL_ADD, fd, &e) != 0)
			client_free(c);
		return;
	}
	/* a refusal: one small frame, sent if the socket takes it, then closed */
	(void)!send(fd, o.b, o.n, MSG_DONTWAIT | MSG_NOSIGNAL); /* a client gone already gets nothing */
	free(o.b);
	close(fd);
	if (!full) {
		pthread_mutex_lock(&clients_lock);
		for (int i = 0; i < nclients; i++)
			if (client_fds[i] == fd) {
				client_fds[i] = client_fds[--nclients];
				break;
			}
		pthread_cond_broadcast(&clients_cv);
		pthread_mutex_unlock(&clients_lock);
	}
}

static char loop_tag; /* epoll data of the listening socket and the eventfd */
#define TAG_LISTEN ((void *)&loop_tag)
#define TAG_WAKE ((void *)(&loop_tag + 1))

static void *
loop_main(void *arg)
{
	(void)arg;
	struct epoll_event ev[64];
	int listening = 1;
	for (;;) {
		int n = epoll_wait(efd, ev, ARRAY_SIZE(ev), -1);
		if (n < 0 && errno != EINTR)
			break;
		for (int i = 0; i < n; i++) {
			if (ev[i].data.ptr == TAG_LISTEN) {
				if (listening)
					accept_one();
			} else if (ev[i].data.ptr == TAG_WAKE) {
				uint64_t x;
				(void)!read(wfd, &x, sizeof(x)); /* fails only when the wake-up was taken already */
			} else {
				on_event(ev[i].data.ptr, ev[i].events);
			}
		}
		pthread_mutex_lock(&clients_lock);
		cclient *d = donelist;
		donelist = NULL;
		pthread_mutex_unlock(&clients_lock);
		while (d != NULL) {
			cclient *next = d->qnext;
			handed_back(d);
			d = next;
		}
		if (atomic_load(&stopping)) {
			if (listening) {
				epoll_ctl(efd, EPOLL_CTL_DEL, lfd, NULL);
				listening = 0;
			}
			/* idle clients go now (also one that does not read its answer); busy ones when handed back */
			for (cclient *c = all, *next; c != NULL; c = next) {
				next = c->next;
				if (!c->busy)
					client_free(c);
			}
			pthread_mutex_lock(&clients_lock);
			int left = nclients;
			pthread_mutex_unlock(&clients_lock);
			if (left == 0)
				break;
		}
	}
	return NULL;
}

static void *
worker_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&clients_lock);
	for (;;) {
		while (qhead == NULL && !atomic_load(&stopping)) {
			nidle++;
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += CTL_WORKER_IDLE_S;
			int rc = pthread_cond_timedwait(&work_cv, &clients_lock, &ts);
			nidle--;
			if (rc == ETIMEDOUT && qhead == NULL && nworkers > CTL_WORKERS_KEEP)
				goto out; /* an extra worker that is not needed any more */
		}
		cclient *c = qhead;
		if (c == NULL)
			break; /* stopping, nothing queued */
		qhead = c->qnext;
		if (qhead == NULL)
			qtail = NULL;
		pthread_mutex_unlock(&clients_lock);
		req_fd = c->pfd;
		c->pfd = -1;
		req_conn = c->conn;
		int rc = serve_frame(c);
		if (req_fd >= 0)
			close(ctl_take_fd()); /* passed to an op that did not take it */
		free(c->body);
		c->body = NULL;
		c->hgot = c->blen = c->bgot = 0;
		c->bad = 0;
		if (rc != 0)
			c->close_after = 1;
		pthread_mutex_lock(&clients_lock);
		c->busy = 0;
		c->qnext = donelist;
		donelist = c;
		uint64_t one = 1;
		(void)!write(wfd, &one, sizeof(one)); /* fails only when the loop is to wake anyway */
	}
out:
	nworkers--;
	pthread_cond_broadcast(&clients_cv);
	pthread_mutex_unlock(&clients_lock);
	return NULL;
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
	efd = epoll_create1(EPOLL_CLOEXEC);
	wfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (efd < 0 || wfd < 0)
		return err_set(-errno, "cannot set up the control loop: %s", strerror(errno));
	struct epoll_event l = { .events = EPOLLIN, .data.ptr = TAG_LISTEN };
	struct epoll_event w = { .events = EPOLLIN, .data.ptr = TAG_WAKE };
	int fl = fcntl(lfd, F_GETFL);
	if (fl < 0 || fcntl(lfd, F_SETFL, fl | O_NONBLOCK) != 0 || epoll_ctl(efd, EPOLL_CTL_ADD, lfd, &l) != 0 ||
	    epoll_ctl(efd, EPOLL_CTL_ADD, wfd, &w) != 0)
		return err_set(-errno, "cannot set up the control loop: %s", strerror(errno));
	if (pthread_create(&loop_tid, NULL, loop_main, NULL) != 0)
		return err_set(-EAGAIN, "cannot start the control thread");
	return 0;
}

void
ctl_stop(void)
{
	if (lfd < 0)
		return;
	job_shutdown(); /* cancel the transfers (a worker may be waiting for one) */
	atomic_store(&stopping, 1);
	pthread_mutex_lock(&clients_lock);
	pthread_cond_broadcast(&work_cv);
	pthread_mutex_unlock(&clients_lock);
	uint64_t one = 1;
	(void)!write(wfd, &one, sizeof(one)); /* fails only when the loop is to wake anyway */
	pthread_join(loop_tid, NULL);
	pthread_mutex_lock(&clients_lock);
	while (nworkers > 0) /* they leave once the queue is empty and stopping is set */
		pthread_cond_wait(&clients_cv, &clients_lock);
	pthread_mutex_unlock(&clients_lock);
	close(lfd);
	unlink(sock_path);
	close(efd);
	close(wfd);
	efd = wfd = lfd = -1;
}
