/*
 * xfer.c -- vol.send, vol.recv and vol.recv_abandon: a transfer runs as a
 * job (../job.c) that moves the stream between the engine and the
 * descriptor passed with the request, polling it so that a cancel is seen
 * within 200 ms even on a silent pipe.
 */
#include "ctl_impl.h"
#include "../job.h"
#include "../log.h"
#include "../registry.h"
#include "../sched.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct xfer {
	char pool[64];
	char name[600];     /* within the pool: VOL@SNAP (send) or VOL (receive) */
	char from[600];     /* send: the base within the pool, or "" */
	char token[128];    /* send: resume token, or "" */
	unsigned flags;     /* send: CE_SEND_*; receive: CE_RECV_* */
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
	int c = ce_errcode_of(err); /* WRONG_BASE, NOT_A_PARTIAL_RECEIVE, VOLUME_EXISTS ... from the engine */
	if (c == CE_E_NOT_FOUND)
		c = !x->in_pool ? CE_E_POOL_NOT_FOUND : recv ? CE_E_VOLUME_NOT_FOUND : CE_E_SNAPSHOT_NOT_FOUND;
	else if (c == CE_E_EXISTS)
		c = CE_E_SNAPSHOT_EXISTS;
	job_set_code(x->j, c);
}

static int
send_cb(ce_pool *p, void *arg)
{
	xfer *x = arg;
	x->in_pool = 1;
	ce_send_opts o = { x->from[0] ? x->from : NULL, x->token[0] ? x->token : NULL, xfer_progress, x, x->flags };
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
	ce_recv_opts o = { x->flags, xfer_progress, x, 0, { 0 } };
	char snap[300];
	int err = ce_recv(p, x->name, &o, fd_read, x, snap, sizeof(snap));
	if (err == 0 && o.policy_result != CE_RECV_POLICY_NONE) {
		static const char *const what[] = { "", "installed", "already the volume's",
			"not installed: the volume keeps its own policy", "not installed (no_policy)" };
		const ce_sched *s = &o.policy;
		log_msg(o.policy_result == CE_RECV_POLICY_KEPT ? LOG_WARN : LOG_INFO,
		    "%s/%s: the stream's snapshot policy (every %um, keep %u, hourly %u, daily %u, weekly %u, "
		    "monthly %u) %s", x->pool, x->name, s->every_min, s->keep, s->hourly, s->daily, s->weekly,
		    s->monthly, what[o.policy_result]);
		if (o.policy_result == CE_RECV_POLICY_INSTALLED)
			sched_kick(); /* in effect at once, as after sched.set */
	}
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
	uint64_t id = job_start(kind, x->pool, target, ctl_conn(), fn, x, xfer_free);
	json_object_object_add(res, "job", json_object_new_uint64(id));
	if (!wait)
		return 0;
	job_wait(id, -1);
	char msg[1024];
	int code;
	int err = job_outcome(id, &code, msg, sizeof(msg));
	if (err != 0) {
		err_setc(code, err, "%s", msg);
		return fail(e, err, code);
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
int
op_vol_send(json_object *args, json_object *res, reqerr *e)
{
	int fd = ctl_take_fd();
	if (fd < 0)
		return fail(e, err_set(-EINVAL, "vol.send needs the stream's file descriptor, passed with "
		    "the request (SCM_RIGHTS)"), CE_E_BAD_REQUEST);
	xfer *x = xcalloc(1, sizeof(*x));
	x->fd = fd;
	const char *token = arg_str(args, "token", 0, e);
	const char *name = e->err ? NULL : arg_str(args, "name", token == NULL, e);
	const char *from = e->err ? NULL : arg_str(args, "from", 0, e);
	const char *rest = NULL;
	if (e->err == 0 && token != NULL) {
		if (strlen(token) >= sizeof(x->token))
			fail(e, err_set(-EINVAL, "'%s' is not a receive_resume_token", token), CE_E_INVALID_ARGUMENT);
		else
			snprintf(x->token, sizeof(x->token), "%s", token);
	} else if (e->err == 0 && split_name(name, x->pool, sizeof(x->pool), &rest, e) == 0) {
		const char *at = strchr(rest, '@');
		if (at == NULL)
			fail(e, err_set(-EINVAL, "send needs a snapshot: %s is a volume", name), CE_E_INVALID_ARGUMENT);
		snprintf(x->name, sizeof(x->name), "%s", rest);
		if (e->err == 0 && from != NULL) {
			char fpool[64];
			const char *frest;
			if (from[0] == '@')
				snprintf(x->from, sizeof(x->from), "%.*s%s", (int)(at - rest), rest, from);
			else if (split_name(from, fpool, sizeof(fpool), &frest, e) == 0) {
				if (strcmp(fpool, x->pool) != 0)
					fail(e, err_set(-EINVAL, "the base %s must be in pool %s", from, x->pool),
					    CE_E_INVALID_ARGUMENT);
				snprintf(x->from, sizeof(x->from), "%s", frest);
			}
		}
	}
	json_object *np;
	if (json_object_object_get_ex(args, "no_policy", &np) && json_object_get_boolean(np))
		x->flags |= CE_SEND_NO_POLICY;
	if (e->err != 0) {
		xfer_free(x);
		return e->err;
	}
	return start_job("send", x, token ? "(resume token)" : name, send_work, args, res, e);
}

/* vol.recv {"name": "pool/vol", "force": bool, "wait": bool} + the stream's fd */
int
op_vol_recv(json_object *args, json_object *res, reqerr *e)
{
	int fd = ctl_take_fd();
	if (fd < 0)
		return fail(e, err_set(-EINVAL, "vol.recv needs the stream's file descriptor, passed with "
		    "the request (SCM_RIGHTS)"), CE_E_BAD_REQUEST);
	xfer *x = xcalloc(1, sizeof(*x));
	x->fd = fd;
	const char *name = arg_str(args, "name", 1, e), *rest;
	if (e->err == 0 && split_name(name, x->pool, sizeof(x->pool), &rest, e) == 0) {
		if (strchr(rest, '@') != NULL)
			fail(e, err_set(-EINVAL, "receive into a volume (POOL/VOL); the snapshot takes the "
			    "sent snapshot's name"), CE_E_INVALID_ARGUMENT);
		snprintf(x->name, sizeof(x->name), "%s", rest);
	}
	json_object *f;
	if (json_object_object_get_ex(args, "force", &f) && json_object_get_boolean(f))
		x->flags |= CE_RECV_FORCE;
	if (json_object_object_get_ex(args, "no_policy", &f) && json_object_get_boolean(f))
		x->flags |= CE_RECV_NO_POLICY;
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
	return err ? fail(x->e, err, err == -ENOENT ? CE_E_NOT_A_PARTIAL_RECEIVE : ctl_code(err, 1)) : 0;
}

/* vol.recv_abandon {"name": "pool/vol"} */
int op_vol_recv_abandon(json_object *a, json_object *r, reqerr *e) { return with_vol(a, r, e, recv_abandon_cb); }
