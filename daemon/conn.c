/*
 * conn.c -- listeners, event loops and connections for the frontends
 * (docs/design-vio.md §4-6). A frontend is a conn_proto; this file owns
 * the sockets, the threads and the per-connection buffers and bounds.
 *
 * A connection goes through:
 *
 *   accepted (loop 0) -> open (its loop: on_open) -> serving (on_data, on_msg)
 *     -> closing (conn_close, EOF, stop: no more reading; in-flight requests
 *        are answered and the output written) -> gone (on_close, freed)
 *   serving/closing -> dead (write error, stall timeout: output dropped)
 *     -> gone once nothing is in flight
 *
 * Invariants:
 *   1. The number of threads is fixed at conn_start (L loops); it never
 *      depends on the number of connections.
 *   2. A connection's socket, buffers and protocol state are touched only
 *      by its loop thread; other threads reach it only through conn_post
 *      (a list under the loop's lock, and its eventfd).
 *   3. A connection is freed only when it is closing or dead, nothing is
 *      in flight (the protocol's conn_budget count is 0) and no message
 *      for it is queued, so no worker completes into freed memory.
 *   4. While a connection's budget (requests in flight and their bytes,
 *      plus queued output) is over QUEUE_REQS or QUEUE_BYTES, its socket
 *      is not read: a client cannot grow caskd's memory past the bound by
 *      not reading replies. If it also leaves output unwritten for
 *      stall_timeout seconds, it is cut off.
 *   5. At most max_connections are served; a connection past it is
 *      accepted only to be told (conn_refused), and at most REFUSED_MAX
 *      such are kept at once. With max_per_export, at most that many
 *      connections serve one export (conn_set_export refuses the next).
 *   6. Every connection is on the daemon-wide list (all_conns, under
 *      count_lock) from accept to free, with an id never reused: other
 *      threads see it only through that list (conn_list, conn_kill,
 *      conn_wait_gone), reading what the loop publishes (the pub_
 *      atomics, export_name under count_lock), never the loop's fields.
 *      conn_kill only flags it; its loop ends it (mark_dead).
 *   7. A connection that has not named what it serves (conn_set_export)
 *      handshake_timeout seconds after accept is cut off; a serving one
 *      with nothing in flight, nothing to write and no byte either way for
 *      idle_timeout seconds is cut off when idle_timeout is set (it is not
 *      by default: the kernel NBD client and qemu keep an attached disk's
 *      connection idle indefinitely and have no keepalive).
 *   8. Frontend connections leave FD_RESERVE descriptors of RLIMIT_NOFILE
 *      free (a connection whose descriptor would eat into them is closed
 *      at once), so the control socket, pool imports and send/receive
 *      still get descriptors with every connection slot taken. A listener
 *      that still hits EMFILE closes the pending connection with a spare
 *      descriptor kept for that, or else stops accepting for a second:
 *      accept never spins. Refusals are logged at most once per
 *      LOG_EVERY seconds, with their count (no log storm).
 *   9. TLS (conn_start_tls): the reply that agrees to it is written in the
 *      clear, then the handshake runs and every later byte either way
 *      goes through the TLS session; nothing the client sent before the
 *      handshake is ever taken as protocol input (such a client is cut
 *      off), and no output is written during the handshake.
 */
#include "conn.h"
#include "log.h"
#include "util.h"
#include "sockpath.h"
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>

#include <dirent.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <sys/resource.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define QUEUE_BYTES (64u << 20)  /* per connection: payload in flight and output queued */
#define QUEUE_REQS 256           /* per connection: requests in flight */
#define RBUF_SIZE (256u << 10)
#define CHUNK_INLINE 4096u
#define REFUSED_MAX 64
#define MAX_LISTEN 16
#define MAX_LOOPS 8
#define FD_RESERVE 64            /* invariant 8 */
#define LOG_EVERY 10             /* seconds between two refusal lines of one kind */

typedef struct ochunk {
	struct ochunk *next;
	const uint8_t *p;
	size_t len, off;
	void (*release)(void *arg);
	void *arg;
	size_t cap;              /* inline bytes (0 for a reference chunk) */
	uint8_t inl[];
} ochunk;

typedef struct loop loop;

struct conn {
	int fd;
	char peer[80];
	const conn_proto *proto;
	struct listener *l;      /* where it was accepted (its counters) */
	void *data;
	loop *lp;
	int refused;
	int rd_closed;           /* EOF seen, conn_close or stop: no more reading of the socket */
	int closing;             /* conn_close: the protocol takes no more input, buffered or not */
	int dead;                /* write error or cut off: output dropped */
	int registered;
	uint32_t events;         /* what epoll watches now */
	uint8_t *rbuf;
	size_t rlen;
	/* conn_read_into (invariant 10): where the next input goes instead of on_data */
	const struct iovec *d_iov;
	int d_n, d_i;             /* entries, the one being filled */
	size_t d_off;             /* bytes of d_iov[d_i] filled */
	void (*d_done)(conn *c, void *arg);
	void *d_arg;
	int d_small;              /* a large direct read just ended: read the next header in a small piece */
	ochunk *ohead, *otail;
	size_t obytes;
	int inflight;
	int64_t inflight_bytes;
	time_t out_blocked_since; /* output waiting on a full socket since (0: not blocked) */
	time_t opened;
	time_t last_io;           /* the last byte read or written */
	int serving;              /* conn_set_export was called */
	uint64_t id;              /* invariant 6 */
	long uid, pid;            /* a unix peer's, else -1 */
	char export_name[256];    /* under count_lock */
	conn *all_next, *all_prev; /* all_conns, under count_lock */
	atomic_int kill_req;
	SSL *ssl;                 /* invariant 9: the session, once the handshake started */
	SSL_CTX *tls_pending;     /* conn_start_tls: begin once the output is written */
	int tls_hs;               /* handshake in progress */
	int tls_want_write;       /* the session waits for the socket to take bytes */
	char tls_desc[96];        /* "TLSv1.3 psk:ID" or "TLSv1.3 x509:SUBJECT" (under count_lock) */
	char tls_id[128];         /* the PSK identity or the certificate's CN ("" none; loop thread) */
	_Atomic uint64_t pub_in, pub_out, pub_queued;
	_Atomic int64_t pub_last_io;
	atomic_int pub_reqs, pub_state;
	conn_msg *mhead, *mtail;  /* under lp->lock */
	int queued;               /* on lp->ready (under lp->lock) */
	conn *ready_next;
	conn *next, *prev;        /* the loop's list */
};

struct loop {
	int idx;
	int epfd, efd;
	pthread_t tid;
	pthread_mutex_t lock;
	conn *ready;              /* connections with messages, or new ones (under lock) */
	conn *newc;               /* accepted, not yet opened (under lock) */
	int stop;                 /* under lock */
	int stopping_read;        /* under lock: shut every connection's reading */
	conn *conns;              /* loop thread only */
	atomic_int nconns;
	atomic_int kill_pending;  /* some connection of this loop has kill_req set */
};

typedef struct listener {
	int fd;
	atomic_int paused;             /* accept stopped until resume_at (set by loop 0 only) */
	time_t resume_at;
	const conn_proto *proto;
	atomic_int current;                 /* connections open now, served or refused */
	_Atomic uint64_t accepted, refused; /* since start (refused: over the cap) */
	char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char spec[128];
} listener;

static listener listeners[MAX_LISTEN];
static int nlisten;
static loop loops[MAX_LOOPS];
static int nloops;
static conn_config cfg = { 0, 1024, 60, 0, 30, 0 };
static conn *all_conns;                /* invariant 6, under count_lock */
static long fd_limit;                  /* RLIMIT_NOFILE at conn_start */
static int spare_fd = -1;              /* invariant 8 (loop 0 only) */

/* A kind of refusal logged at most once per LOG_EVERY seconds (loop 0 only: accepting). */
typedef struct ratelog {
	time_t last;
	unsigned long n;               /* refusals since the last line */
} ratelog;
static ratelog rl_fds, rl_emfile, rl_cap, rl_capfull;

static void
rate_warn(ratelog *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void
rate_warn(ratelog *r, const char *fmt, ...)
{
	time_t now = time(NULL);
	r->n++;
	if (r->last != 0 && now - r->last < LOG_EVERY)
		return;
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (r->last == 0 || r->n == 1)
		log_warn("%s", msg);
	else
		log_warn("%s (%lu times in the last %ld s)", msg, r->n, (long)(now - r->last));
	r->last = now;
	r->n = 0;
}
static uint64_t next_id = 1;           /* under count_lock */
enum { PS_HANDSHAKE, PS_SERVING, PS_CLOSING, PS_REFUSED };
static atomic_int nserved, nrefused;
static atomic_int accepting;
static pthread_mutex_t count_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t count_cv = PTHREAD_COND_INITIALIZER;
static _Thread_local loop *cur_loop;
static int listen_marker, wake_marker; /* epoll tags (their addresses) */

/* ---- listening ---- */

/*
 * "PATH[,mode=OCTAL][,group=NAME|GID]": the unix socket's options follow the
 * first comma (so PATH cannot hold one). Mode defaults to 0600, or 0660 when
 * a group is given; only the permission bits (at most 0777) are accepted.
 */
static int
parse_unix_spec(const char *spec, char *path, size_t pathlen, mode_t *mode, gid_t *gid)
{
	const char *comma = strchr(spec, ',');
	size_t n = comma ? (size_t)(comma - spec) : strlen(spec);
	if (n == 0)
		return err_set(-EINVAL, "unix socket: no path in 'unix:%s'", spec);
	if (n >= pathlen)
		return err_set(-ENAMETOOLONG, "unix socket path too long: %.*s", (int)n, spec);
	memcpy(path, spec, n);
	path[n] = '\0';
	int have_mode = 0;
	*gid = (gid_t)-1;
	while (comma != NULL) {
		const char *opt = comma + 1;
		comma = strchr(opt, ',');
		size_t len = comma ? (size_t)(comma - opt) : strlen(opt);
		char val[256];
		if (len >= 5 && strncmp(opt, "mode=", 5) == 0 && len - 5 < sizeof(val)) {
			snprintf(val, sizeof(val), "%.*s", (int)(len - 5), opt + 5);
			char *end;
			errno = 0;
			unsigned long m = strtoul(val, &end, 8);
			if (val[0] < '0' || val[0] > '7' || *end != '\0' || errno != 0 || m > 0777)
				return err_set(-EINVAL, "unix socket %s: bad mode '%s' (octal permission bits, at most 0777)",
				    path, val);
			*mode = (mode_t)m;
			have_mode = 1;
		} else if (len >= 6 && strncmp(opt, "group=", 6) == 0 && len - 6 < sizeof(val)) {
			snprintf(val, sizeof(val), "%.*s", (int)(len - 6), opt + 6);
			struct group gr, *res = NULL;
			size_t blen = 4096;
			char *buf = xmalloc(blen);
			int g;
			while ((g = getgrnam_r(val, &gr, buf, blen, &res)) == ERANGE && blen < ((size_t)1 << 24)) {
				blen *= 2;
				buf = xrealloc(buf, blen);
			}
			if (res != NULL)
				*gid = res->gr_gid;
			free(buf);
			if (g != 0 && g != ENOENT && g != ESRCH && g != EBADF && g != EPERM)
				return err_set(-g, "unix socket %s: cannot look up group '%s': %s", path, val, strerror(g));
			if (res == NULL) {
				char *end;
				errno = 0;
				unsigned long v = strtoul(val, &end, 10);
				if (val[0] < '0' || val[0] > '9' || *end != '\0' || errno != 0 || v >= (gid_t)-1)
					return err_set(-EINVAL, "unix socket %s: unknown group '%s'", path, val);
				*gid = (gid_t)v;
			}
		} else {
			return err_set(-EINVAL, "unix socket %s: unknown option '%.*s' (use mode=OCTAL, group=NAME)", path,
			    (int)len, opt);
		}
	}
	if (!have_mode)
		*mode = *gid != (gid_t)-1 ? 0660 : 0600;
	return 0;
}

static int
listen_unix(const char *spec, listener *l)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	mode_t mode = 0600;
	gid_t gid = (gid_t)-1;
	int rc = parse_unix_spec(spec, sa.sun_path, sizeof(sa.sun_path), &mode, &gid);
	if (rc != 0)
		return rc;
	const char *path = sa.sun_path;
	/* Only a stale socket is replaced (a live caskd's, or a file that is no socket, is refused). */
	if ((rc = sockpath_claim(path, "NBD socket")) != 0)
		return rc;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return err_set(-errno, "socket: %s", strerror(errno));
	/*
	 * Permissions without a window: bind under umask 0077, so the socket is
	 * born owner-only whatever caskd's umask; then the group (lchown: never
	 * follows a symlink swapped in) and only then the wider mode (fchmodat
	 * without following links), so the wider mode never holds with the wrong
	 * group; and listen() right after, so nobody can connect before the
	 * permissions are final (connect to a bound, non-listening socket is
	 * refused). A umask of the wanted mode around bind would skip the chmod
	 * but umask is per process: another thread creating a file in that
	 * instant could get a wider mode than caskd's umask allows; 0077 can only
	 * make such a file narrower. Listening here rather than in conn_start
	 * also keeps the socket from looking stale (bound, not listening) to
	 * another caskd's probe; a client that connects early waits in the
	 * backlog until the loops start.
	 */
	mode_t old = umask(0077);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc != 0) {
		int e = errno;
		close(fd);
		return err_set(-e, "%s: %s", path, strerror(e));
	}
	const char *step = NULL;
	if (gid != (gid_t)-1 && lchown(path, (uid_t)-1, gid) != 0)
		step = "chown";
	else if (fchmodat(AT_FDCWD, path, mode, AT_SYMLINK_NOFOLLOW) != 0)
		step = "chmod";
	else if (listen(fd, 1024) != 0)
		step = "listen";
	if (step != NULL) {
		int e = errno;
		close(fd);
		unlink(path);
		return err_set(-e, "NBD socket %s: %s: %s", path, step, strerror(e));
	}
	snprintf(l->unix_path, sizeof(l->unix_path), "%s", path);
	return fd;
}

static int
listen_tcp(const char *spec)
{
	char host[256], port[32];
	if (spec[0] == '[') {
		const char *end = strchr(spec, ']');
		if (end == NULL || end[1] != ':')
			return err_set(-EINVAL, "bad address '%s' (use [ADDR]:PORT)", spec);
		snprintf(host, sizeof(host), "%.*s", (int)(end - spec - 1), spec + 1);
		snprintf(port, sizeof(port), "%s", end + 2);
	} else {
		const char *colon = strrchr(spec, ':');
		if (colon == NULL)
			return err_set(-EINVAL, "bad address '%s' (use ADDR:PORT)", spec);
		snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
		snprintf(port, sizeof(port), "%s", colon + 1);
	}
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
	struct addrinfo *res;
	int g = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (g != 0)
		return err_set(-EINVAL, "address '%s': %s", spec, gai_strerror(g));
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int one = 1;
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return err_set(-e, "cannot listen on %s: %s", spec, strerror(e));
	}
	freeaddrinfo(res);
	return fd;
}

int
conn_listen(const char *spec, const conn_proto *proto)
{
	if (nlisten == MAX_LISTEN)
		return err_set(-E2BIG, "too many listeners (at most %d)", MAX_LISTEN);
	listener *l = &listeners[nlisten];
	memset(l, 0, sizeof(*l));
	int fd = strncmp(spec, "unix:", 5) == 0 ? listen_unix(spec + 5, l) : listen_tcp(spec);
	if (fd < 0)
		return fd;
	l->fd = fd;
	l->proto = proto;
	snprintf(l->spec, sizeof(l->spec), "%s", spec);
	nlisten++;
	log_info("%s: listening on %s", proto->name, spec);
	return 0;
}

/* ---- output ---- */

static void
chunk_free(ochunk *k)
{
	if (k->release)
		k->release(k->arg);
	free(k);
}

/* Queue chunk k last on c's output list. */
static void
out_append(conn *c, ochunk *k)
{
	if (c->otail)
		c->otail->next = k;
	else
		c->ohead = k;
	c->otail = k;
}

void
conn_write(conn *c, const void *p, size_t n)
{
	if (c->dead || n == 0)
		return;
	ochunk *t = c->otail;
	if (t != NULL && t->cap > 0 && t->cap - t->len >= n) {
		memcpy(t->inl + t->len, p, n);
		t->len += n;
	} else {
		size_t cap = MAX(n, (size_t)CHUNK_INLINE);
		ochunk *k = xmalloc(sizeof(*k) + cap);
		memset(k, 0, sizeof(*k));
		k->cap = cap;
		k->p = k->inl;
		memcpy(k->inl, p, n);
		k->len = n;
		out_append(c, k);
	}
	c->obytes += n;
}

void
conn_write_ref(conn *c, const void *p, size_t n, void (*release)(void *arg), void *arg)
{
	if (c->dead || n == 0) {
		/* nothing to send (a zero-length chunk would make writev return 0 forever) */
		if (release)
			release(arg);
		return;
	}
	ochunk *k = xcalloc(1, sizeof(*k));
	k->p = p;
	k->len = n;
	k->release = release;
	k->arg = arg;
	out_append(c, k);
	c->obytes += n;
}

static void
drop_output(conn *c)
{
	while (c->ohead != NULL) {
		ochunk *k = c->ohead;
		c->ohead = k->next;
		chunk_free(k);
	}
	c->otail = NULL;
	c->obytes = 0;
}

static void
mark_dead(conn *c, const char *why)
{
	if (c->dead)
		return;
	if (why)
		log_info("%s %s: %s", c->proto->name, c->peer, why);
	c->dead = 1;
	c->rd_closed = 1;
	c->closing = 1;
	c->rlen = 0;
	shutdown(c->fd, SHUT_RDWR);
	drop_output(c);
}

/* One TLS record's worth of the first chunk; -1 when the session cannot take it now. */
static ssize_t
tls_write(conn *c)
{
	ochunk *k = c->ohead;
	size_t len = MIN(k->len - k->off, (size_t)1 << 30);
	int r = SSL_write(c->ssl, k->p + k->off, (int)len);
	if (r > 0) {
		c->tls_want_write = 0;
		return r;
	}
	int e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
		c->tls_want_write = e == SSL_ERROR_WANT_WRITE;
		if (c->out_blocked_since == 0)
			c->out_blocked_since = time(NULL);
	} else {
		ERR_clear_error();
		mark_dead(c, "TLS write failed; closing");
	}
	return -1;
}

static void
flush_output(conn *c)
{
	while (c->ohead != NULL && !c->dead) {
		ssize_t w;
		if (c->ssl != NULL) {
			if (c->tls_hs || (w = tls_write(c)) < 0)
				return;
			goto wrote;
		}
		struct iovec iov[64];
		int n = 0;
		for (ochunk *k = c->ohead; k != NULL && n < 64; k = k->next, n++) {
			iov[n].iov_base = (void *)(k->p + k->off);
			iov[n].iov_len = k->len - k->off;
		}
		w = writev(c->fd, iov, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (c->out_blocked_since == 0)
					c->out_blocked_since = time(NULL);
				return;
			}
			mark_dead(c, "write failed; closing");
			return;
		}
	wrote:;
		size_t left = (size_t)w;
		c->obytes -= left;
		c->last_io = time(NULL);
		atomic_fetch_add_explicit(&c->pub_out, (uint64_t)w, memory_order_relaxed);
		c->out_blocked_since = 0; /* progress: the stall clock restarts */
		while (left > 0) {
			ochunk *k = c->ohead;
			size_t in = k->len - k->off;
			if (left < in) {
				k->off += left;
				break;
			}
			left -= in;
			c->ohead = k->next;
			if (c->ohead == NULL)
				c->otail = NULL;
			chunk_free(k);
		}
	}
	c->out_blocked_since = 0;
}

/* ---- the connection's state ---- */

static int
throttled(const conn *c)
{
	return c->inflight >= QUEUE_REQS || (uint64_t)c->inflight_bytes + c->obytes > QUEUE_BYTES;
}

static void
set_events(conn *c)
{
	uint32_t want = 0;
	if (!c->rd_closed && (!throttled(c) || c->tls_hs))
		want |= EPOLLIN | EPOLLRDHUP;
	if ((c->ohead != NULL || c->tls_want_write) && !c->dead)
		want |= EPOLLOUT;
	if (want == c->events && c->registered)
		return;
	struct epoll_event ev = { .events = want, .data.ptr = c };
	if (epoll_ctl(c->lp->epfd, c->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) == 0) {
		c->registered = 1;
		c->events = want;
	}
}

static void
destroy(conn *c)
{
	loop *lp = c->lp;
	if (c->registered)
		epoll_ctl(lp->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	drop_output(c);
	if (c->proto->on_close)
		c->proto->on_close(c);
	if (c->ssl != NULL) {
		if (!c->dead && !c->tls_hs)
			SSL_shutdown(c->ssl); /* close_notify, best effort (the socket is non-blocking) */
		SSL_free(c->ssl);
		ERR_clear_error();
	}
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		lp->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	log_info("%s %s: disconnected (client %" PRIu64 ")", c->proto->name, c->peer, c->id);
	free(c->rbuf);
	atomic_fetch_sub(&c->l->current, 1);
	atomic_fetch_sub(&lp->nconns, 1);
	pthread_mutex_lock(&count_lock);
	if (c->refused)
		atomic_fetch_sub(&nrefused, 1);
	else
		atomic_fetch_sub(&nserved, 1);
	if (c->all_prev)
		c->all_prev->all_next = c->all_next;
	else
		all_conns = c->all_next;
	if (c->all_next)
		c->all_next->all_prev = c->all_prev;
	pthread_cond_broadcast(&count_cv);
	pthread_mutex_unlock(&count_lock);
	free(c);
}

void
conn_read_into(conn *c, const struct iovec *iov, int n, void (*done)(conn *c, void *arg), void *arg)
{
	VERIFY(c->d_iov == NULL && n > 0);
	c->d_iov = iov;
	c->d_n = n;
	c->d_i = 0;
	c->d_off = 0;
	c->d_done = done;
	c->d_arg = arg;
}

#define DIRECT_SMALL_AFTER (64u << 10)
#define DIRECT_SMALL_READ 4096u

/*
 * n bytes into the pending direct read: copied from p, or (p NULL) already
 * read into place. At its end, done (invariant 10). Returns n.
 */
static size_t
direct_take(conn *c, const uint8_t *p, size_t n)
{
	size_t used = 0;
	while (used < n) {
		VERIFY(c->d_i < c->d_n);
		const struct iovec *v = &c->d_iov[c->d_i];
		size_t m = MIN(n - used, v->iov_len - c->d_off);
		if (p != NULL)
			memcpy((uint8_t *)v->iov_base + c->d_off, p + used, m);
		used += m;
		c->d_off += m;
		if (c->d_off == v->iov_len) {
			c->d_i++;
			c->d_off = 0;
		}
	}
	if (c->d_i == c->d_n) {
		size_t total = 0;
		for (int i = 0; i < c->d_n; i++)
			total += c->d_iov[i].iov_len;
		/* the next payload most likely follows its header: keep it out of rbuf (a copy) */
		c->d_small = total >= DIRECT_SMALL_AFTER;
		c->d_iov = NULL;
		c->d_done(c, c->d_arg);
	}
	return n;
}

#define DIRECT_IOV 256

static ssize_t read_some(conn *c, uint8_t *p, size_t n);

/* One read from the socket or the session straight into the direct read's buffers: as read_some. */
static ssize_t
direct_read(conn *c)
{
	struct iovec v[DIRECT_IOV];
	int n = 0;
	for (int i = c->d_i; i < c->d_n && n < DIRECT_IOV; i++, n++) {
		v[n] = c->d_iov[i];
		if (i == c->d_i) {
			v[n].iov_base = (uint8_t *)v[n].iov_base + c->d_off;
			v[n].iov_len -= c->d_off;
		}
	}
	if (c->ssl != NULL)
		return read_some(c, v[0].iov_base, v[0].iov_len);
	ssize_t r = readv(c->fd, v, n);
	if (r < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
		return 0;
	return r < 0 ? -1 : r;
}

/* Consume buffered input while the protocol takes it and the budget allows. */
static void
parse_input(conn *c)
{
	size_t pos = 0;
	while (pos < c->rlen && !c->closing && !c->dead && !throttled(c) && c->tls_pending == NULL) {
		if (c->d_iov != NULL) {
			/* invariant 10: what rbuf holds of it first */
			size_t want = c->d_iov[c->d_i].iov_len - c->d_off;
			for (int i = c->d_i + 1; i < c->d_n && want < c->rlen - pos; i++)
				want += c->d_iov[i].iov_len;
			pos += direct_take(c, c->rbuf + pos, MIN(want, c->rlen - pos));
			continue;
		}
		size_t k = c->proto->on_data(c, c->rbuf + pos, c->rlen - pos);
		if (k == 0)
			break;
		pos += k;
	}
	if (pos > 0) {
		memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
		c->rlen -= pos;
	}
}

/* What the peer presented: for client.list and the log. */
static void
tls_describe(conn *c)
{
	char who[80] = "";
	const char *id = SSL_get_psk_identity(c->ssl);
	if (id == NULL)
		id = SSL_get_app_data(c->ssl); /* tls.c's PSK callback leaves it there */
	X509 *cert = SSL_get1_peer_certificate(c->ssl);
	if (id != NULL) {
		snprintf(who, sizeof(who), " psk:%s", id);
		snprintf(c->tls_id, sizeof(c->tls_id), "%s", id);
	} else if (cert != NULL) {
		char subj[72];
		X509_NAME_oneline(X509_get_subject_name(cert), subj, sizeof(subj));
		snprintf(who, sizeof(who), " x509:%s", subj);
		if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, c->tls_id,
		    (int)sizeof(c->tls_id)) < 0)
			c->tls_id[0] = '\0';
	}
	X509_free(cert); /* (log_msg escapes what the client chose: the identity, the subject) */
	pthread_mutex_lock(&count_lock);
	snprintf(c->tls_desc, sizeof(c->tls_desc), "%s%s", SSL_get_version(c->ssl), who);
	pthread_mutex_unlock(&count_lock);
	log_info("%s %s: TLS %s (%s)", c->proto->name, c->peer, c->tls_desc, SSL_get_cipher_name(c->ssl));
}

static void
tls_handshake(conn *c)
{
	int r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		c->tls_hs = 0;
		c->tls_want_write = 0;
		tls_describe(c);
		return;
	}
	int e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		c->tls_want_write = e == SSL_ERROR_WANT_WRITE;
		return;
	}
	char why[200];
	unsigned long oe = ERR_get_error();
	char es[160];
	ERR_error_string_n(oe, es, sizeof(es));
	ERR_clear_error();
	snprintf(why, sizeof(why), "TLS handshake failed: %s", oe ? es : "connection closed");
	mark_dead(c, why);
}

/* invariant 9: the reply agreeing to TLS is written; start the session */
static void
tls_begin(conn *c)
{
	SSL_CTX *ctx = c->tls_pending;
	c->tls_pending = NULL;
	if (c->rlen > 0) {
		mark_dead(c, "sent data before the TLS handshake; cut off");
		return;
	}
	c->ssl = SSL_new(ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
		ERR_clear_error();
		mark_dead(c, "cannot start a TLS session");
		return;
	}
	SSL_set_accept_state(c->ssl);
	c->tls_hs = 1;
	tls_handshake(c);
}

/* One read from the socket or the session: bytes, 0 at the end, -1 for nothing now (EAGAIN). */
static ssize_t
read_some(conn *c, uint8_t *p, size_t n)
{
	if (c->ssl == NULL) {
		ssize_t r = read(c->fd, p, n);
		if (r < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
			return 0;
		return r < 0 ? -1 : r;
	}
	int r = SSL_read(c->ssl, p, (int)MIN(n, (size_t)1 << 30));
	if (r > 0)
		return r;
	int e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		c->tls_want_write = e == SSL_ERROR_WANT_WRITE;
		return -1;
	}
	ERR_clear_error();
	return 0; /* close_notify, or a broken session */
}

static void
on_readable(conn *c)
{
	if (c->tls_hs) {
		tls_handshake(c);
		if (c->tls_hs || c->dead)
			return;
	}
	for (int round = 0; round < 8 && !c->rd_closed && !throttled(c); round++) {
		if (c->d_iov != NULL && c->rlen == 0 && !c->closing && !c->dead) {
			/* invariant 10: a payload straight into the protocol's buffers */
			errno = 0;
			ssize_t n = direct_read(c);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				break;
			if (n == 0) {
				c->rd_closed = 1;
				break;
			}
			c->last_io = time(NULL);
			atomic_fetch_add_explicit(&c->pub_in, (uint64_t)n, memory_order_relaxed);
			direct_take(c, NULL, (size_t)n);
			continue;
		}
		if (c->rlen == RBUF_SIZE)
			break; /* the protocol wants more than a buffer holds: it consumes partially, so this is a bug */
		errno = 0;
		size_t ask = RBUF_SIZE - c->rlen;
		if (c->d_small && ask > DIRECT_SMALL_READ)
			ask = DIRECT_SMALL_READ;
		c->d_small = 0;
		ssize_t n = read_some(c, c->rbuf + c->rlen, ask);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		if (n == 0) {
			c->rd_closed = 1;
			break;
		}
		c->rlen += (size_t)n;
		c->last_io = time(NULL);
		atomic_fetch_add_explicit(&c->pub_in, (uint64_t)n, memory_order_relaxed);
		parse_input(c);
		if (c->ssl == NULL && (size_t)n < ask / 2)
			break; /* drained the socket, most likely (a session reads one record at a time) */
	}
}

/* After any event: write what can be written, resume reading, or end the connection. */
static void
settle(conn *c)
{
	if (!c->dead && !c->closing && !throttled(c) && c->rlen > 0) {
		parse_input(c);
		/* At EOF or stop, requests already read are still served (NBD invariant 5); a partial one is dropped. */
		if (c->rd_closed && !throttled(c))
			c->rlen = 0;
	}
	if (!c->dead && c->tls_hs)
		tls_handshake(c);
	if (!c->dead)
		flush_output(c);
	if (!c->dead && c->tls_pending != NULL && c->ohead == NULL)
		tls_begin(c);
	/* records the session already took off the socket: epoll will not say so */
	for (int i = 0; i < 64 && c->ssl != NULL && !c->tls_hs && !c->dead && !c->rd_closed && !throttled(c) &&
	    c->rlen < RBUF_SIZE && SSL_pending(c->ssl) > 0; i++)
		on_readable(c);
	atomic_store_explicit(&c->pub_reqs, c->inflight, memory_order_relaxed);
	atomic_store_explicit(&c->pub_queued, (uint64_t)c->inflight_bytes + c->obytes, memory_order_relaxed);
	atomic_store_explicit(&c->pub_last_io, (int64_t)c->last_io, memory_order_relaxed);
	atomic_store_explicit(&c->pub_state, c->refused ? PS_REFUSED : c->closing || c->dead ? PS_CLOSING :
	    c->serving ? PS_SERVING : PS_HANDSHAKE, memory_order_relaxed);
	if ((c->rd_closed || c->dead) && c->inflight == 0 && c->mhead == NULL && c->ohead == NULL &&
	    (c->rlen == 0 || c->closing || c->dead)) {
		pthread_mutex_lock(&c->lp->lock);
		int queued = c->queued;
		pthread_mutex_unlock(&c->lp->lock);
		if (!queued) {
			destroy(c);
			return;
		}
	}
	set_events(c);
}

void
conn_close(conn *c)
{
	c->rd_closed = 1;
	c->closing = 1;
}

void
conn_budget(conn *c, int dreqs, int64_t dbytes)
{
	c->inflight += dreqs;
	c->inflight_bytes += dbytes;
}

int
conn_inflight(const conn *c)
{
	return c->inflight;
}

void
conn_set_data(conn *c, void *p)
{
	c->data = p;
}

void *
conn_data(conn *c)
{
	return c->data;
}

int
conn_local_addr(const conn *c, char *buf, size_t n)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN + 1], port[16];
	if (getsockname(c->fd, (struct sockaddr *)&ss, &sl) != 0 ||
	    getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port, sizeof(port),
	        NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		return -1;
	snprintf(buf, n, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
	return 0;
}

const char *
conn_peer(const conn *c)
{
	return c->peer;
}

int
conn_refused(const conn *c)
{
	return c->refused;
}

int
conn_limit(void)
{
	return cfg.max_connections;
}

int
conn_count(void)
{
	return atomic_load(&nserved);
}

size_t
conn_frontend_stats(conn_fstats *out, size_t max)
{
	size_t n = 0;
	for (int i = 0; i < nlisten; i++) {
		listener *l = &listeners[i];
		size_t k = 0;
		while (k < n && strcmp(out[k].name, l->proto->name) != 0)
			k++;
		if (k == n) {
			if (n == max)
				continue;
			memset(&out[n], 0, sizeof(out[n]));
			out[n].name = l->proto->name;
			n++;
		}
		out[k].listeners++;
		out[k].current += atomic_load(&l->current);
		out[k].accepted += atomic_load(&l->accepted);
		out[k].refused += atomic_load(&l->refused);
	}
	return n;
}

void
conn_start_tls(conn *c, void *ssl_ctx)
{
	c->tls_pending = ssl_ctx;
}

int
conn_tls(const conn *c)
{
	return c->ssl != NULL && !c->tls_hs;
}

const char *
conn_tls_identity(const conn *c)
{
	return conn_tls(c) ? c->tls_id : "";
}

int
conn_set_export(conn *c, const char *name)
{
	pthread_mutex_lock(&count_lock);
	if (cfg.max_per_export > 0) {
		int n = 0;
		for (conn *o = all_conns; o != NULL; o = o->all_next)
			n += o != c && strncmp(o->export_name, name, sizeof(o->export_name) - 1) == 0 &&
			    o->export_name[0] != '\0';
		if (n >= cfg.max_per_export) {
			pthread_mutex_unlock(&count_lock);
			return err_set(-EUSERS, "export %s has %d connections, its limit (--max-export-connections)", name,
			    n);
		}
	}
	snprintf(c->export_name, sizeof(c->export_name), "%s", name);
	pthread_mutex_unlock(&count_lock);
	c->serving = 1;
	return 0;
}

int
conn_list(conn_info **out, size_t *n)
{
	static const char *states[] = { "handshake", "serving", "closing", "refused" };
	pthread_mutex_lock(&count_lock);
	size_t k = 0;
	for (conn *c = all_conns; c != NULL; c = c->all_next)
		k++;
	conn_info *v = xcalloc(k ? k : 1, sizeof(*v));
	time_t now = time(NULL);
	size_t i = k;
	/* all_conns is newest first: fill from the end so the list is by id */
	for (conn *c = all_conns; c != NULL; c = c->all_next) {
		conn_info *x = &v[--i];
		x->id = c->id;
		x->frontend = c->proto->name;
		snprintf(x->peer, sizeof(x->peer), "%s", c->peer);
		x->uid = c->uid;
		x->pid = c->pid;
		snprintf(x->export_name, sizeof(x->export_name), "%s", c->export_name);
		snprintf(x->tls, sizeof(x->tls), "%s", c->tls_desc);
		x->since = (int64_t)c->opened;
		int64_t last = atomic_load_explicit(&c->pub_last_io, memory_order_relaxed);
		x->idle = last > 0 && now > last ? (int64_t)now - last : 0;
		x->bytes_in = atomic_load_explicit(&c->pub_in, memory_order_relaxed);
		x->bytes_out = atomic_load_explicit(&c->pub_out, memory_order_relaxed);
		x->requests = atomic_load_explicit(&c->pub_reqs, memory_order_relaxed);
		x->queued_bytes = atomic_load_explicit(&c->pub_queued, memory_order_relaxed);
		x->state = states[atomic_load_explicit(&c->pub_state, memory_order_relaxed) & 3];
	}
	pthread_mutex_unlock(&count_lock);
	*out = v;
	*n = k;
	return 0;
}

int
conn_kill(uint64_t id, const char *why)
{
	pthread_mutex_lock(&count_lock);
	conn *c = all_conns;
	while (c != NULL && c->id != id)
		c = c->all_next;
	if (c == NULL) {
		pthread_mutex_unlock(&count_lock);
		return err_set(-ENOENT, "no client %" PRIu64 " is connected", id);
	}
	log_info("%s %s: client %" PRIu64 " disconnected: %s", c->proto->name, c->peer, id, why);
	atomic_store(&c->kill_req, 1);
	loop *lp = c->lp; /* c cannot be freed while count_lock is held (destroy unlinks under it) */
	atomic_store(&lp->kill_pending, 1);
	pthread_mutex_unlock(&count_lock);
	uint64_t one = 1;
	ssize_t rc = write(lp->efd, &one, 8);
	(void)rc;
	return 0;
}

int
conn_wait_gone(const uint64_t *ids, size_t n, int timeout_ms)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	int rc = 0;
	pthread_mutex_lock(&count_lock);
	for (;;) {
		int any = 0;
		for (conn *c = all_conns; c != NULL && !any; c = c->all_next)
			for (size_t i = 0; i < n && !any; i++)
				any = c->id == ids[i];
		if (!any)
			break;
		if (rc == ETIMEDOUT) {
			rc = -ETIMEDOUT;
			break;
		}
		rc = pthread_cond_timedwait(&count_cv, &count_lock, &dl);
	}
	pthread_mutex_unlock(&count_lock);
	return rc == -ETIMEDOUT ? rc : 0;
}

/* Loop thread: end the connections conn_kill flagged. */
static void
run_kills(loop *lp)
{
	if (!atomic_exchange(&lp->kill_pending, 0))
		return;
	for (conn *c = lp->conns, *nx; c != NULL; c = nx) {
		nx = c->next;
		if (atomic_load(&c->kill_req) && !c->dead) {
			mark_dead(c, NULL);
			settle(c);
		}
	}
}

void
conn_post(conn *c, conn_msg *m)
{
	loop *lp = c->lp;
	m->next = NULL;
	pthread_mutex_lock(&lp->lock);
	if (c->mtail)
		c->mtail->next = m;
	else
		c->mhead = m;
	c->mtail = m;
	int wake = 0;
	if (!c->queued) {
		c->queued = 1;
		wake = lp->ready == NULL && lp->newc == NULL;
		c->ready_next = lp->ready;
		lp->ready = c;
	}
	pthread_mutex_unlock(&lp->lock);
	if (wake && cur_loop != lp) {
		uint64_t one = 1;
		ssize_t rc = write(lp->efd, &one, 8);
		(void)rc;
	}
}

/* ---- accepting ---- */

static loop *
pick_loop(void)
{
	loop *best = &loops[0];
	for (int i = 1; i < nloops; i++)
		if (atomic_load(&loops[i].nconns) < atomic_load(&best->nconns))
			best = &loops[i];
	return best;
}

/* Stop accepting on l for a second (loop 0's timer resumes it). */
static void
pause_listener(listener *l)
{
	if (l->paused)
		return;
	epoll_ctl(loops[0].epfd, EPOLL_CTL_DEL, l->fd, NULL);
	l->paused = 1;
	l->resume_at = time(NULL) + 1;
}

static void
resume_listeners(time_t now)
{
	if (!atomic_load(&accepting))
		return; /* conn_stop is closing them */
	for (int i = 0; i < nlisten; i++) {
		listener *l = &listeners[i];
		if (!l->paused || now < l->resume_at)
			continue;
		if (spare_fd < 0)
			spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = l };
		if (epoll_ctl(loops[0].epfd, EPOLL_CTL_ADD, l->fd, &ev) == 0)
			l->paused = 0;
		else
			l->resume_at = now + 1;
	}
}

/* accept failed with EMFILE/ENFILE: shed one pending connection with the spare descriptor, or pause. */
static void
out_of_fds(listener *l, int e)
{
	rate_warn(&rl_emfile, "%s: accept: %s (ulimit -n %ld): refusing new connections while descriptors are "
	    "short", l->proto->name, strerror(e), fd_limit);
	if (spare_fd >= 0) {
		close(spare_fd);
		spare_fd = -1;
		int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			close(fd); /* the client sees its connection closed, not a hang */
		spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd >= 0 && spare_fd >= 0)
			return;
	}
	pause_listener(l);
}

static void
accept_all(listener *l)
{
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE) {
				out_of_fds(l, errno);
				if (l->paused)
					return;
				continue;
			}
			if (errno == ENOBUFS || errno == ENOMEM) {
				rate_warn(&rl_emfile, "%s: accept: %s", l->proto->name, strerror(errno));
				pause_listener(l);
			}
			return; /* EAGAIN: all taken */
		}
		if (!atomic_load(&accepting)) {
			close(fd);
			continue;
		}
		if (fd_limit > 0 && fd >= fd_limit - FD_RESERVE) {
			/* the lowest free descriptor is this high: fewer than FD_RESERVE are left (invariant 8) */
			rate_warn(&rl_fds, "%s: refused a connection: descriptor %d of ulimit -n %ld, %d kept for the "
			    "control socket and pools (raise ulimit -n or lower --max-connections)", l->proto->name, fd,
			    fd_limit, FD_RESERVE);
			close(fd);
			continue;
		}
		int refused = 0;
		conn *c = xcalloc(1, sizeof(*c));
		pthread_mutex_lock(&count_lock);
		if (atomic_load(&nserved) < cfg.max_connections) {
			atomic_fetch_add(&nserved, 1);
		} else if (atomic_load(&nrefused) < REFUSED_MAX) {
			atomic_fetch_add(&nrefused, 1);
			refused = 1;
		} else {
			refused = -1;
		}
		pthread_mutex_unlock(&count_lock);
		atomic_fetch_add(refused ? &l->refused : &l->accepted, 1);
		if (refused < 0) {
			rate_warn(&rl_capfull, "%s: connection limit (%d) reached; closed a connection at once",
			    l->proto->name, cfg.max_connections);
			free(c);
			close(fd);
			continue;
		}
		c->fd = fd;
		c->proto = l->proto;
		c->l = l;
		atomic_fetch_add(&l->current, 1);
		c->refused = refused;
		c->opened = c->last_io = time(NULL);
		atomic_store(&c->pub_last_io, (int64_t)c->opened);
		atomic_store(&c->pub_state, refused ? PS_REFUSED : PS_HANDSHAKE);
		c->uid = c->pid = -1;
		c->rbuf = xmalloc(RBUF_SIZE);
		if (ss.ss_family == AF_UNIX) {
			snprintf(c->peer, sizeof(c->peer), "unix#%d", fd);
			struct ucred cr;
			socklen_t cl = sizeof(cr);
			if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0) {
				c->uid = (long)cr.uid;
				c->pid = (long)cr.pid;
			}
		} else {
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			char host[64], serv[16];
			if (getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv, sizeof(serv),
			    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
				snprintf(host, sizeof(host), "?"), snprintf(serv, sizeof(serv), "?");
			snprintf(c->peer, sizeof(c->peer), "%s:%s", host, serv);
		}
		if (refused)
			rate_warn(&rl_cap, "%s %s: refused: the connection limit (%d) is reached", c->proto->name,
			    c->peer, cfg.max_connections);
		loop *lp = pick_loop();
		c->lp = lp;
		atomic_fetch_add(&lp->nconns, 1);
		/* on the daemon-wide list once what other threads read of it is set (invariant 6) */
		pthread_mutex_lock(&count_lock);
		c->id = next_id++;
		c->all_next = all_conns;
		if (all_conns)
			all_conns->all_prev = c;
		all_conns = c;
		pthread_mutex_unlock(&count_lock);
		pthread_mutex_lock(&lp->lock);
		int wake = lp->ready == NULL && lp->newc == NULL;
		c->next = lp->newc;
		lp->newc = c;
		pthread_mutex_unlock(&lp->lock);
		if (wake && cur_loop != lp) {
			uint64_t one = 1;
			ssize_t rc = write(lp->efd, &one, 8);
			(void)rc;
		}
	}
}

/* ---- the loop ---- */

static void
open_new(loop *lp, conn *list, int stopping)
{
	while (list != NULL) {
		conn *c = list;
		list = c->next;
		c->next = lp->conns;
		c->prev = NULL;
		if (lp->conns)
			lp->conns->prev = c;
		lp->conns = c;
		if (c->uid >= 0)
			log_info("%s %s: connected (client %" PRIu64 ", uid %ld pid %ld)", c->proto->name, c->peer,
			    c->id, c->uid, c->pid);
		else
			log_info("%s %s: connected (client %" PRIu64 ")", c->proto->name, c->peer, c->id);
		c->proto->on_open(c);
		if (stopping)
			c->rd_closed = 1;
		if (atomic_load(&c->kill_req))
			mark_dead(c, NULL);
		settle(c);
	}
}

/* Messages and new connections; returns 1 if there was anything. */
static int
run_ready(loop *lp)
{
	pthread_mutex_lock(&lp->lock);
	conn *r = lp->ready, *nc = lp->newc;
	int any = r != NULL || nc != NULL || lp->stopping_read;
	lp->ready = NULL;
	lp->newc = NULL;
	int stop_read = lp->stopping_read, stopping = lp->stop;
	lp->stopping_read = 0;
	pthread_mutex_unlock(&lp->lock);
	if (nc != NULL)
		open_new(lp, nc, stopping);
	while (r != NULL) {
		conn *c = r;
		pthread_mutex_lock(&lp->lock);
		r = c->ready_next;
		conn_msg *m = c->mhead;
		c->mhead = c->mtail = NULL;
		c->queued = 0;
		pthread_mutex_unlock(&lp->lock);
		while (m != NULL) {
			conn_msg *nx = m->next;
			c->proto->on_msg(c, m);
			m = nx;
		}
		settle(c);
	}
	if (stop_read) {
		for (conn *c = lp->conns, *nx; c != NULL; c = nx) {
			nx = c->next;
			c->rd_closed = 1;
			settle(c);
		}
	}
	return any;
}

static void
check_timeouts(loop *lp, time_t now)
{
	for (conn *c = lp->conns, *nx; c != NULL; c = nx) {
		nx = c->next;
		if (c->dead)
			continue;
		if (c->out_blocked_since != 0 && now - c->out_blocked_since >= cfg.stall_timeout &&
		    (throttled(c) || c->rd_closed)) {
			mark_dead(c, "client has not read its replies; cut off");
			settle(c);
		} else if (c->refused && now - c->opened >= cfg.stall_timeout) {
			mark_dead(c, "refused connection timed out");
			settle(c);
		} else if (!c->refused && !c->serving && !c->closing && cfg.handshake_timeout > 0 &&
		    now - c->opened >= cfg.handshake_timeout) {
			char why[128];
			snprintf(why, sizeof(why), "chose nothing to serve within %d s (--handshake-timeout); cut off",
			    cfg.handshake_timeout);
			mark_dead(c, why);
			settle(c);
		} else if (c->serving && cfg.idle_timeout > 0 && c->inflight == 0 && c->ohead == NULL &&
		    now - c->last_io >= cfg.idle_timeout) {
			char why[128];
			snprintf(why, sizeof(why), "idle for %d s (--idle-timeout); disconnected", cfg.idle_timeout);
			mark_dead(c, why);
			settle(c);
		}
	}
}

static void *
loop_main(void *arg)
{
	loop *lp = arg;
	cur_loop = lp;
	struct epoll_event evs[64];
	time_t last_check = time(NULL);
	for (;;) {
		pthread_mutex_lock(&lp->lock);
		int stop = lp->stop && lp->conns == NULL && lp->newc == NULL && lp->ready == NULL;
		int pending = lp->ready != NULL || lp->newc != NULL || lp->stopping_read;
		pthread_mutex_unlock(&lp->lock);
		if (stop)
			break;
		int n = epoll_wait(lp->epfd, evs, 64, pending ? 0 : 1000);
		for (int i = 0; i < n; i++) {
			void *tag = evs[i].data.ptr;
			if (tag == &wake_marker) {
				uint64_t v;
				ssize_t rc = read(lp->efd, &v, 8);
				(void)rc;
			} else if ((uintptr_t)tag >= (uintptr_t)&listeners[0] &&
			    (uintptr_t)tag < (uintptr_t)&listeners[MAX_LISTEN]) {
				accept_all(tag);
			} else {
				conn *c = tag;
				if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
					on_readable(c);
				if ((evs[i].events & EPOLLERR) && !(evs[i].events & EPOLLIN))
					mark_dead(c, NULL);
				settle(c);
			}
		}
		while (run_ready(lp))
			;
		run_kills(lp);
		time_t now = time(NULL);
		if (now != last_check) {
			last_check = now;
			check_timeouts(lp, now);
			if (lp->idx == 0)
				resume_listeners(now);
		}
	}
	return NULL;
}

int
conn_start(const conn_config *c)
{
	if (c != NULL) {
		if (c->loops > 0)
			cfg.loops = c->loops;
		if (c->max_connections > 0)
			cfg.max_connections = c->max_connections;
		if (c->stall_timeout > 0)
			cfg.stall_timeout = c->stall_timeout;
		cfg.idle_timeout = c->idle_timeout > 0 ? c->idle_timeout : 0;
		if (c->handshake_timeout > 0)
			cfg.handshake_timeout = c->handshake_timeout;
		cfg.max_per_export = c->max_per_export > 0 ? c->max_per_export : 0;
	}
	if (cfg.loops <= 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		cfg.loops = n < 1 ? 1 : (int)n;
	}
	if (cfg.loops > MAX_LOOPS)
		cfg.loops = MAX_LOOPS;
	struct rlimit rl;
	fd_limit = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? (long)rl.rlim_cur : 0;
	spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	long open_now = 0;
	DIR *d = opendir("/proc/self/fd");
	for (struct dirent *de; d != NULL && (de = readdir(d)) != NULL;)
		open_now += de->d_name[0] != '.';
	if (d != NULL)
		closedir(d);
	/* each loop adds its epoll and eventfd below */
	long room = fd_limit - FD_RESERVE - open_now - 2L * MAX_LOOPS;
	if (fd_limit > 0 && room < cfg.max_connections)
		log_warn("conn: ulimit -n %ld leaves room for about %ld connections, not --max-connections %d: "
		    "past that clients are refused at once (raise ulimit -n)", fd_limit, MAX(room, 0L),
		    cfg.max_connections);
	atomic_store(&accepting, 1);
	for (nloops = 0; nloops < cfg.loops; nloops++) {
		loop *lp = &loops[nloops];
		memset(lp, 0, sizeof(*lp));
		lp->idx = nloops;
		pthread_mutex_init(&lp->lock, NULL);
		lp->epfd = epoll_create1(EPOLL_CLOEXEC);
		lp->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (lp->epfd < 0 || lp->efd < 0)
			return err_set(-errno, "epoll: %s", strerror(errno));
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &wake_marker };
		epoll_ctl(lp->epfd, EPOLL_CTL_ADD, lp->efd, &ev);
	}
	/*
	 * Bound by conn_listen (so a taken port fails early), TCP listening only
	 * now: until here a client is refused rather than left waiting (a unix
	 * socket listens from conn_listen on, see listen_unix; listen() again
	 * only sets its backlog). Listening
	 * sockets belong to loop 0 (accepting is cheap; connections spread).
	 */
	for (int i = 0; i < nlisten; i++) {
		if (listen(listeners[i].fd, 1024) != 0)
			return err_set(-errno, "cannot listen on %s: %s", listeners[i].spec, strerror(errno));
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &listeners[i] };
		if (epoll_ctl(loops[0].epfd, EPOLL_CTL_ADD, listeners[i].fd, &ev) != 0)
			return err_set(-errno, "epoll: %s", strerror(errno));
	}
	(void)listen_marker;
	for (int i = 0; i < nloops; i++)
		if (pthread_create(&loops[i].tid, NULL, loop_main, &loops[i]) != 0) {
			nloops = i;
			return err_set(-EAGAIN, "cannot start the event loop threads");
		}
	char idle[32];
	snprintf(idle, sizeof(idle), cfg.idle_timeout > 0 ? "%d s" : "off", cfg.idle_timeout);
	log_info("conn: %d event loop threads, at most %d connections, stall timeout %d s, handshake timeout %d s, "
	    "idle timeout %s", nloops, cfg.max_connections, cfg.stall_timeout, cfg.handshake_timeout, idle);
	return 0;
}

void
conn_stop(void)
{
	atomic_store(&accepting, 0);
	for (int i = 0; i < nlisten; i++) {
		if (nloops > 0 && !listeners[i].paused)
			epoll_ctl(loops[0].epfd, EPOLL_CTL_DEL, listeners[i].fd, NULL);
		close(listeners[i].fd);
		if (listeners[i].unix_path[0])
			unlink(listeners[i].unix_path);
	}
	/* Each connection stops reading; what it already read is answered, then it closes. */
	for (int i = 0; i < nloops; i++) {
		loop *lp = &loops[i];
		pthread_mutex_lock(&lp->lock);
		lp->stopping_read = 1;
		lp->stop = 1;
		pthread_mutex_unlock(&lp->lock);
		uint64_t one = 1;
		ssize_t rc = write(lp->efd, &one, 8);
		(void)rc;
	}
	for (int i = 0; i < nloops; i++) {
		pthread_join(loops[i].tid, NULL);
		close(loops[i].epfd);
		close(loops[i].efd);
		pthread_mutex_destroy(&loops[i].lock);
	}
	nloops = 0;
	nlisten = 0;
	if (spare_fd >= 0)
		close(spare_fd);
	spare_fd = -1;
}
