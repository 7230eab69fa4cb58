/*
 * ctrl.c -- the replication controller: a layer of the volume IO
 * interface with N replica endpoints below it instead of one engine
 * (docs/replication.md sections 3.1-3.5, 4, 6-8; wire: replica-protocol.md).
 *
 * The local replica is driven in-process through the engine's replica
 * calls (ce_repl_write ...: the same epoch and sequence checks a remote
 * replica's service makes); remote replicas through one TCP connection
 * each. Every endpoint has a queue, fed in seq order under the
 * controller's lock, and one thread that drains it (the local one applies,
 * a remote one sends), plus for remote ones a thread that reads APPLIED,
 * DURABLE, MB_ACK and ERROR.
 *
 * Invariants:
 *   1. Seqs are assigned under c->mu and queued to every live member in
 *      the same critical section, so every endpoint receives them in order.
 *   2. A write (trim, zero) s is answered when k live members of I have
 *      applied >= s; FUA and FLUSH when k have durable >= s (k: one 1,
 *      quorum floor(N/2)+1, all |I|). Nothing waits for the (k+1)-th.
 *   3. A member that fails (connection lost, fatal error, deadline missed)
 *      stops counting at once; it leaves I only when a membership record
 *      naming it degraded has been stored by a commit quorum (ceil(N/2)
 *      members) -- so at `all` the operations waiting for it are answered
 *      only after that record is durable on a commit quorum (rule 4).
 *   4. STALE_EPOCH, NOT_PROMISED or PROMISED_ELSEWHERE from any replica, or
 *      ESTALE from the local one, fences the controller: every request in
 *      flight and every later one fails with EIO.
 *   5. A read is served from the local replica once every operation assigned
 *      before it is acknowledged and the local replica applied it (stricter
 *      than rule 5 asks: any earlier write, not only overlapping ones).
 *
 *   6. An ejection is proposed only once (D) holds for the remaining members:
 *      k of them have applied the highest seq answered to a client and made
 *      durable the highest one a FLUSH/FUA answer covered (rule 4 item 2).
 *
 *   7. Reconciliation (reconcile: `vol takeover`, and the resume of a volume
 *      this caskd controlled, at start) serves nothing until a prepare
 *      quorum promised the new epoch, the reference R (highest last epoch,
 *      then applied, among the in-sync members whose content is known) was
 *      chosen from at least |I| - k + 1 candidates, every member started
 *      holds exactly R's state (tail sync from R over both members' recent
 *      extents: the rings, after a restart the births on disk), at least k
 *      members started and a commit quorum stored the new membership
 *      record. A resume that meets a newer epoch of another node clears
 *      RP_CONTROLLER_HERE and serves nothing ("moved"). A takeover --force
 *      waives only the |I| - k + 1 candidates (at least one) and the k
 *      started members, never the prepare or the commit quorum, and names
 *      the members of I it did not count (c->forced, the log).
 *   8. Snapshot operations, rollback and resize are sequenced (seq_op): one
 *      at a time, queued like writes, answered when k members of I report them
 *      done (rollback and resize: done and durable, with the record). A
 *      rebuilding member gets the snapshot operations too (it takes every seq);
 *      a snapshot create first waits until every rebuild queued all its data
 *      (rb_copying), so the target's content at that seq is the others'.
 *
 *   9. Read leases (lease_*): nothing is answered -- read, write or flush --
 *      unless a commit quorum of M renewed the lease within 0.9 x REPL_LEASE_MS
 *      of sending (a read: before and after it reads), and the replicas wait
 *      out a lease they granted before promising a newer epoch (service.c).
 *  10. A renewal never waits behind writes: besides the KEEPALIVE at the head
 *      of each data queue, lease_thread keeps one more connection per remote
 *      member that negotiated VOLOP (ATTACH flag LEASE) carrying only
 *      KEEPALIVE, so megabytes of writes queued in the controller, the socket
 *      buffers or the network never delay a renewal; it counts like one from
 *      the data connection (ka_time is the send time, so a late answer only
 *      shortens the lease).
 *  11. The backlog limit (bl_*): a member's backlog -- the sequenced operations
 *      queued to it that it has not reported applied -- never grows past
 *      bl_max_bytes of data or bl_max_ops operations (one request larger than
 *      the limit is let in alone). A write, trim or zero that would pass it is
 *      not assigned a seq: either the member is ejected first (reason lag),
 *      when it is remote, the level is one or quorum and the rest of I still
 *      give k and a commit quorum (a rebuilding member always), or the request
 *      waits, unassigned, in c->wh (backpressure: the frontend stops reading
 *      once its own in-flight limit is reached) until the backlog shrinks, the
 *      member fails (the deadline ejects one that stops applying) or the
 *      controller is fenced. Requests leave c->wh in order; a read or flush
 *      behind a waiting write waits too.
 *
 * As built (see docs/replication.md, "As built, issue 15"): no
 * reads from remote replicas; a member left out of an epoch is not sent
 * anything until a rebuild (issue 16).
 */
#include "ctrl.h"
#include "proto.h"
#include "rebuild.h"
#include "service.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cask/engine.h"
#include "cask/errcodes.h"
#include "phys.h"
#include "sockio.h"
#include "util.h"
#include "../job.h"
#include "../log.h"
#include "../registry.h"

#define MAX_MEMBERS 5
#define CHUNK (1u << 20)

enum { Q_WRITE, Q_TRIM, Q_ZERO, Q_FLUSH, Q_MB, Q_SNAP, Q_RB, Q_KA };

typedef struct cop {
	uint64_t seq;
	int kind;
	uint64_t off, len;
	uint8_t *data;        /* Q_SNAP: the snapshot's name at 0, the new name at 256 */
	int fua;
	int snap_op;          /* Q_SNAP: CE_REPL_SNAP_*, CE_REPL_ROLLBACK, CE_REPL_RESIZE */
	uint64_t vsize;       /* Q_SNAP resize: the new size */
	unsigned vflags;      /* Q_SNAP rollback / resize: CE_ROLLBACK_DESTROY_LATER / CE_RESIZE_SHRINK */
	int refs;             /* queues still holding it (c->mu) */
} cop;

typedef struct qitem {
	int kind;
	cop *op;              /* Q_WRITE/TRIM/ZERO */
	uint64_t upto;        /* Q_FLUSH */
	mb_phys mb;           /* Q_MB */
	uint16_t rbtype;      /* Q_RB: a rebuild frame, its payload in rbpl (rebuild.c) */
	uint8_t *rbpl;
	size_t rbn;
	struct qitem *next;
} qitem;

typedef struct ctrl ctrl;

typedef struct ep {
	ctrl *c;
	int idx, local;
	char addr[64], pool[64];
	uint64_t id, pool_guid;
	uint64_t features;    /* remote: what its HELLO_REPLY granted (RP_FEAT_*) */
	int in_sync;          /* member of I (membership record) */
	int failed;           /* stopped counting (invariant 3) */
	int reason;
	uint64_t applied, durable, sent;
	uint64_t progress_ns; /* when applied last advanced or the first op was queued to an idle member */
	uint64_t mb_acked;    /* highest membership version it acknowledged */
	int snap_done, snap_err; /* the sequenced snapshot operation in flight (c->snap_seq): done, its outcome */
	int fd;
	uint64_t next_id;
	qitem *qh, *qt;
	pthread_cond_t qcv;
	pthread_t th, rx;
	int have_th, have_rx;
	ce_vol *lh;           /* local: the replica handle */
	uint8_t *rxbuf;
	/* rebuild (rebuild.c, through the hooks at the end of this file) */
	int rebuilding;       /* a write-only member: sent the live stream, not counted */
	int rb_copied;        /* rebuilding: every rebuild byte is queued to it (ctrl_rb_copied) */
	int adding;           /* not yet a member of the volume (replica add): not in n for k */
	int removed;          /* no longer a member: its slot is unused */
	rb_live *live;        /* what live operations touched since its join point */
	rb_frame_fn rb_cb;    /* its RB_STATE, RB_RANGES, RB_PROGRESS frames go here */
	void *rb_arg;
	ctrl_rb_progress rbp; /* for vol.status */
	uint64_t failed_ns;   /* when it last failed (the rebuild_wait policy) */
	int auto_tries;       /* rebuilds the policy started since it last joined (at most RB_AUTO_TRIES) */
	uint64_t lease_ns;    /* when the newest frame it renewed the lease with was sent (local: granted) */
	uint64_t ka_ns;       /* when the last KEEPALIVE was queued */
	/* the lease connection (invariant 10; lease_thread's alone, and ctrl_free's after it ended) */
	int kopen, kfd;
	uint64_t kid, kretry_ns;
	/* the backlog (invariant 11): (seq, bytes) of each sequenced op queued to it and not applied, oldest first */
	struct blent { uint64_t seq, bytes; } *bl;
	size_t bl_head, bl_n, bl_cap; /* a ring of bl_cap (a power of two) entries */
	uint64_t bl_bytes, bl_peak_bytes, bl_peak_ops;
	/* rebuilding: the snapshot operations it was sent whose outcome is not yet compared with the
	 * in-sync members' (rb_sn_note): have 1 its OP_DONE came (got), 2 seq_op's outcome is known (want) */
	struct rbsn { uint64_t seq; int got, want, have; } rb_sn[16];
	int rb_sn_n;
} ep;

typedef struct creq {
	vio_req *r;
	uint64_t seq;         /* answered when seq is acknowledged */
	int durable;          /* ... durable */
	int is_read;
	int err;              /* failed at assignment (beyond the sequenced size): answered in order, nothing sent */
	struct creq *next;
} creq;

struct ctrl {
	char export_name[330];
	char pool[64], name[256];
	pthread_mutex_t mu;
	pthread_cond_t cv;    /* acks, membership changes */
	ce_epoch e;
	uint8_t uuid[16];
	int level;
	uint32_t deadline_ms;
	mb_phys mb;           /* the newest committed record */
	int n;
	ep eps[MAX_MEMBERS];
	uint64_t next_seq;    /* last assigned */
	uint64_t acked_max;   /* A: the highest seq answered to a client */
	uint64_t durable_max; /* F: the highest seq covered by an answered FLUSH or FUA */
	creq *ph, *pt;        /* pending client requests, in order */
	int fenced;
	char fenced_by[160];
	char forced[400];     /* a takeover --force: the members of I it did not count ("" otherwise) */
	int stopping;
	int ejecting;
	uint64_t snap_seq;    /* the sequenced snapshot operation in flight, or 0 */
	uint64_t vsize;       /* the size as sequenced (a shrink counts from its seq on); 0: not known */
	pthread_t mt;         /* maintenance: deadlines and ejections */
	pthread_t lt;         /* the lease connections (lease_thread) */
	int have_lt;
	ce_pool *p;
	ce_vol *rd;           /* local plain handle: reads */
	int opens;
	int rb_busy;          /* a rebuild job runs (one per volume) */
	uint32_t rebuild_rate;/* MB/s, 0 unlimited */
	uint32_t rebuild_wait;/* seconds; 0: no automatic rebuild (rebuild.c's policy) */
	uint64_t start_ns;    /* the maintenance thread's start: a lease is pending until held or the deadline */
	int lease_held;       /* held once since start */
	int lease_last;       /* the state the maintenance thread saw last (LEASE_*) */
	creq *wh, *wt;        /* requests waiting for a member's backlog (invariant 11), not assigned yet */
	uint64_t bl_waiting, bl_waits, bl_ejects; /* waiting now; requests that waited; members ejected for it */
	struct ctrl *next;
};

static pthread_mutex_t ctrls_mu = PTHREAD_MUTEX_INITIALIZER;
static ctrl *ctrls;

static json_object *
hex_guid_json(uint64_t g)
{
	char b[20];
	snprintf(b, sizeof(b), "%016" PRIx64, g);
	return json_object_new_string(b);
}

static uint64_t
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- acknowledgement (invariant 2) ---- */

/* The volume's members: slots not removed and not still being added. */
static int
members(const ctrl *c)
{
	int m = 0;
	for (int i = 0; i < c->n; i++)
		m += !c->eps[i].removed && !c->eps[i].adding;
	return m;
}

static int
k_of(const ctrl *c)
{
	int in = 0;
	for (int i = 0; i < c->n; i++)
		in += c->eps[i].in_sync;
	return c->level == MB_ONE ? 1 : c->level == MB_QUORUM ? members(c) / 2 + 1 : in;
}

/* Whether e is sent the live stream: a member of I, or a write-only rebuilding one. */
static int
gets_live(const ep *e)
{
	return (e->in_sync || e->rebuilding) && !e->failed && !e->removed;
}

static int
acked(const ctrl *c, uint64_t s, int durable)
{
	int got = 0;
	for (int i = 0; i < c->n; i++) {
		const ep *e = &c->eps[i];
		if (e->in_sync && !e->failed && (durable ? e->durable : e->applied) >= s)
			got++;
	}
	return got >= k_of(c);
}

static void read_work(void *arg);

/* ---- read leases (replication.md 3.3 item 7, as built) ---- */

enum { LEASE_VALID, LEASE_PENDING, LEASE_LAPSED };
#define LEASE_USE_NS ((uint64_t)REPL_LEASE_MS * 900000ull) /* 0.9 of the replicas' lease: drift margin */
#define KA_EVERY_NS 250000000ull

/* Test builds only (--test-ops and CASK_TEST_UNSAFE_NO_LEASE=1): serve without a lease, to prove the test catches it. */
static int
lease_off(void)
{
	static int off = -1;
	if (off < 0) {
		const char *v = getenv("CASK_TEST_UNSAFE_NO_LEASE");
		off = vio_test_ops() && v != NULL && strcmp(v, "1") == 0;
		if (off)
			log_warn("replication: CASK_TEST_UNSAFE_NO_LEASE: the lease check is off (unsafe, tests only)");
	}
	return off;
}

/* How many members renewed the lease in the last LEASE_USE_NS (a slot removed or still being
 * added is not a member: its renewals do not count). c->mu held. */
static int
lease_count(const ctrl *c, uint64_t now)
{
	int got = 0;
	for (int i = 0; i < c->n; i++)
		got += !c->eps[i].removed && !c->eps[i].adding && c->eps[i].lease_ns != 0 &&
		    now - c->eps[i].lease_ns < LEASE_USE_NS;
	return got;
}

/* A commit quorum of M renewed it (replication.md section 2): valid; never held yet and young: pending. */
static int
lease_state(ctrl *c, uint64_t now)
{
	if (c->start_ns == 0)
		return LEASE_PENDING; /* the maintenance thread has not started yet */
	if (lease_off() || lease_count(c, now) >= (members(c) + 1) / 2) {
		c->lease_held = 1;
		return LEASE_VALID;
	}
	return !c->lease_held && now - c->start_ns < (uint64_t)c->deadline_ms * 1000000ull ? LEASE_PENDING :
	    LEASE_LAPSED;
}

static void settle(ctrl *c);
static void bl_admit_waiting(ctrl *c);
static void rb_sn_note(ep *e, uint64_t seq, int have, int v);
static void bl_clear(ep *e);
static void ctrl_assign(ctrl *c, creq *q);
static void q_push(ep *e, qitem *it);
static void q_push_front(ep *e, qitem *it);

/* The maintenance thread, c->mu held: renew (local grant, KEEPALIVE to each connected member), settle on a change. */
static void
lease_tick(ctrl *c, uint64_t now)
{
	if (!c->fenced && repl_lease_grant(c->export_name, c->e) == 0)
		c->eps[0].lease_ns = now;
	for (int i = 1; i < c->n; i++) {
		ep *e = &c->eps[i];
		/* the sender drains its queue once it stops (fenced, stopping, failed): push nothing after that */
		if (c->fenced || c->stopping || e->failed || e->fd < 0 || now - e->ka_ns < KA_EVERY_NS)
			continue;
		/* one still queued (a stalled member): none more -- only KEEPALIVEs go first, so it is the head */
		if (e->qh != NULL && e->qh->kind == Q_KA)
			continue;
		e->ka_ns = now;
		qitem *it = xcalloc(1, sizeof(*it));
		it->kind = Q_KA;
		q_push_front(e, it); /* invariant 10: not behind the writes queued for it */
	}
	int ls = lease_state(c, now);
	if (ls != c->lease_last) {
		if (ls == LEASE_LAPSED)
			log_warn("replicated volume %s: lease lapsed (%d of %d members renewed it): IO fails until it is "
			    "renewed", c->export_name, lease_count(c, now), members(c));
		else if (ls == LEASE_VALID && c->lease_last == LEASE_LAPSED)
			log_info("replicated volume %s: lease renewed", c->export_name);
		c->lease_last = ls;
		settle(c);
	}
}

/* A member's failure reason (on-disk-format.md 7.3 mm_reason) as words; an unknown number as "reason N". */
static const char *
reason_name(int r, char *buf, size_t len)
{
	static const char *const names[] = { "", "timeout", "io-error", "disconnect", "lag", "checksum",
		"lost-writes", "admin", "not reconciled" };
	if (r >= 0 && r < (int)(sizeof(names) / sizeof(names[0])))
		return names[r];
	snprintf(buf, len, "reason %d", r);
	return buf;
}

/* vol status: the lease object, and for no-lease the reason in fenced_by (what the CLI prints). c->mu held. */
static void
lease_status(ctrl *c, int ls, json_object *res)
{
	uint64_t now = now_ns(), left = 0;
	int got = lease_count(c, now), need = (members(c) + 1) / 2;
	/* the lease lasts until the need-th newest renewal is LEASE_USE_NS old */
	for (int i = 0; i < c->n && ls == LEASE_VALID && !lease_off(); i++) {
		uint64_t t = c->eps[i].lease_ns;
		int newer = 0;
		for (int j = 0; j < c->n; j++)
			newer += c->eps[j].lease_ns >= t && j != i ? 1 : 0;
		if (t != 0 && now - t < LEASE_USE_NS && newer < need && newer + 1 >= need)
			left = MAX(left, (LEASE_USE_NS - (now - t)) / 1000000ull);
	}
	json_object *o = json_object_new_object();
	json_object_object_add(o, "state", json_object_new_string(lease_off() ? "off (test)" : ls == LEASE_VALID ?
	    "valid" : ls == LEASE_PENDING ? "pending" : "lapsed"));
	json_object_object_add(o, "left_ms", json_object_new_uint64(left));
	json_object_object_add(o, "renewed_by", json_object_new_int(got));
	json_object_object_add(o, "needed", json_object_new_int(need));
	json_object_object_add(o, "lease_ms", json_object_new_uint64(REPL_LEASE_MS));
	json_object_object_add(res, "lease", o);
	if (ls == LEASE_LAPSED) {
		char b[160];
		snprintf(b, sizeof(b), "lease lapsed: %d of %d members renewed it in the last %u ms (%d needed)", got,
		    c->n, (unsigned)(LEASE_USE_NS / 1000000ull), need);
		json_object_object_add(res, "fenced_by", json_object_new_string(b));
	}
}

/* Complete what can be completed; called with c->mu held, completes after dropping it. */
static void
settle(ctrl *c)
{
	creq *done = NULL, **dt = &done;
	bl_admit_waiting(c);
	int ls = c->fenced ? LEASE_VALID : lease_state(c, now_ns());
	while (c->ph != NULL && ls != LEASE_PENDING) {
		creq *q = c->ph;
		int ok = c->fenced || ls == LEASE_LAPSED || acked(c, q->seq, q->durable);
		if (ok && q->is_read && !c->fenced && ls == LEASE_VALID) {
			ep *l = &c->eps[0];
			ok = l->in_sync && !l->failed && l->applied >= q->seq;
			if (!ok && (l->failed || !l->in_sync)) {
				q->r->code = CE_E_IO_ERROR;
				ok = 1; /* fails below: remote reads are not built */
			}
		}
		if (!ok)
			break;
		c->ph = q->next;
		if (c->ph == NULL)
			c->pt = NULL;
		q->next = NULL;
		if (!c->fenced && ls == LEASE_VALID && !q->is_read) {
			c->acked_max = MAX(c->acked_max, q->seq);
			if (q->durable)
				c->durable_max = MAX(c->durable_max, q->seq);
		}
		*dt = q;
		dt = &q->next;
	}
	pthread_cond_broadcast(&c->cv);
	int fenced = c->fenced, local_ok = !c->eps[0].failed && c->eps[0].in_sync;
	pthread_mutex_unlock(&c->mu);
	while (done != NULL) {
		creq *q = done;
		done = q->next;
		if (fenced) {
			vio_complete(q->r, -EIO, "the replicated volume is fenced: a newer controller took it over");
		} else if (q->err != 0) {
			vio_complete(q->r, q->err, "range beyond the end of the volume");
		} else if (ls == LEASE_LAPSED) {
			q->r->code = CE_E_IO_ERROR;
			vio_complete(q->r, -EIO, "no lease: a majority of the replicas did not renew it (partitioned?)");
		} else if (q->is_read && !local_ok) {
			vio_complete(q->r, -EIO, "the local replica was ejected (reads from remote replicas are not built)");
		} else if (q->is_read) {
			vio_defer(read_work, q->r);
			q->r = NULL;
		} else {
			vio_complete(q->r, 0, NULL);
		}
		free(q);
	}
	pthread_mutex_lock(&c->mu);
}

static void
fence(ctrl *c, const char *why)
{
	if (!c->fenced)
		log_err("replicated volume %s: fenced: %s", c->export_name, why);
	c->fenced = 1;
	snprintf(c->fenced_by, sizeof(c->fenced_by), "%s", why);
	for (int i = 0; i < c->n; i++)
		pthread_cond_broadcast(&c->eps[i].qcv);
}

/* Invariant 3: stop counting it now; the maintenance thread commits the ejection. */
static void
ep_fail(ep *e, int reason, const char *why)
{
	ctrl *c = e->c;
	if (e->failed)
		return;
	e->failed = 1;
	e->reason = reason;
	e->failed_ns = now_ns();
	bl_clear(e);
	log_warn("replicated volume %s: replica %s%s%s failed: %s", c->export_name, e->local ? "local/" : e->addr,
	    e->local ? e->pool : "/", e->local ? "" : e->pool, why);
	if (e->fd >= 0)
		shutdown(e->fd, SHUT_RDWR);
	pthread_cond_broadcast(&e->qcv);
	pthread_cond_broadcast(&c->cv);
}

static void
q_push(ep *e, qitem *it)
{
	it->next = NULL;
	if (e->qt)
		e->qt->next = it;
	else
		e->qh = it;
	e->qt = it;
	pthread_cond_signal(&e->qcv);
}

/* Queue it first (a KEEPALIVE: it changes no state, so it may pass the writes). c->mu held. */
static void
q_push_front(ep *e, qitem *it)
{
	it->next = e->qh;
	e->qh = it;
	if (e->qt == NULL)
		e->qt = it;
	pthread_cond_signal(&e->qcv);
}

/* Free op when no queue holds it any more. c->mu held. */
static void
op_drop_unused(cop *op)
{
	if (op->refs == 0) {
		free(op->data);
		free(op);
	}
}

/* ---- the backlog limit (invariant 11) ---- */

static uint64_t bl_max_bytes = REPL_BACKLOG_DEFAULT;
static uint64_t bl_max_ops = REPL_BACKLOG_DEFAULT / REPL_BACKLOG_BYTES_PER_OP;

int
repl_ctrl_set_backlog(uint64_t bytes)
{
	if (bytes < REPL_BACKLOG_MIN || bytes > REPL_BACKLOG_MAX)
		return -EINVAL;
	bl_max_bytes = bytes;
	bl_max_ops = bytes / REPL_BACKLOG_BYTES_PER_OP;
	return 0;
}

uint64_t
repl_ctrl_backlog(void)
{
	return bl_max_bytes;
}

/* op was queued to e: it is in e's backlog until e reports it applied. c->mu held. */
static void
bl_add(ep *e, const cop *op)
{
	if (e->bl_n == e->bl_cap) {
		size_t nc = e->bl_cap ? 2 * e->bl_cap : 64;
		struct blent *nb = xmalloc(nc * sizeof(*nb));
		for (size_t i = 0; i < e->bl_n; i++)
			nb[i] = e->bl[(e->bl_head + i) & (e->bl_cap - 1)];
		free(e->bl);
		e->bl = nb;
		e->bl_cap = nc;
		e->bl_head = 0;
	}
	uint64_t b = op->kind == Q_WRITE ? op->len : 0;
	e->bl[(e->bl_head + e->bl_n) & (e->bl_cap - 1)] = (struct blent){ op->seq, b };
	e->bl_n++;
	e->bl_bytes += b;
	e->bl_peak_bytes = MAX(e->bl_peak_bytes, e->bl_bytes);
	e->bl_peak_ops = MAX(e->bl_peak_ops, (uint64_t)e->bl_n);
}

/* e applied everything up to applied: those leave its backlog. c->mu held. */
static void
bl_release(ep *e, uint64_t applied)
{
	while (e->bl_n > 0 && e->bl[e->bl_head].seq <= applied) {
		e->bl_bytes -= e->bl[e->bl_head].bytes;
		e->bl_head = (e->bl_head + 1) & (e->bl_cap - 1);
		e->bl_n--;
	}
}

/* e stopped getting the stream (failed) or starts a new one: nothing of it is waited for. c->mu held. */
static void
bl_clear(ep *e)
{
	e->bl_head = e->bl_n = 0;
	e->bl_bytes = 0;
}

/*
 * Whether member e may leave I for its backlog: a rebuilding member (it is
 * not counted: its rebuild stops), or a remote member at one or quorum when
 * the rest of I still give k and a commit quorum for the ejection. Never the
 * local replica (reads are served from it) nor a member at all. c->mu held.
 */
static int
bl_expendable(const ctrl *c, const ep *e)
{
	if (!e->in_sync)
		return !e->local;
	if (e->local || c->level == MB_ALL)
		return 0;
	int others = 0;
	for (int i = 0; i < c->n; i++)
		others += &c->eps[i] != e && c->eps[i].in_sync && !c->eps[i].failed;
	int k = c->level == MB_ONE ? 1 : members(c) / 2 + 1;
	return others >= k && others >= (members(c) + 1) / 2;
}

/* Invariant 11: whether r may be assigned now (ejecting each member over the limit that may go). c->mu held. */
static int
bl_admit(ctrl *c, const vio_req *r)
{
	int seqd = r->op == VIO_WRITE || r->op == VIO_TRIM || r->op == VIO_ZERO;
	uint64_t bytes = r->op == VIO_WRITE ? r->len : 0;
	uint64_t ops = !seqd || r->len == 0 ? 0 : r->op == VIO_WRITE ? (r->len + CHUNK - 1) / CHUNK : 1;
	int ok = 1;
	for (int i = 0; ops > 0 && i < c->n; i++) {
		ep *e = &c->eps[i];
		if (!gets_live(e) || e->bl_n == 0 || (e->bl_bytes + bytes <= bl_max_bytes && e->bl_n + ops <= bl_max_ops))
			continue;
		if (!bl_expendable(c, e)) {
			ok = 0; /* backpressure: it waits for this member */
			continue;
		}
		char why[200];
		snprintf(why, sizeof(why), "its backlog is over the limit (%" PRIu64 " bytes in %zu operations not "
		    "applied; at most %" PRIu64 " bytes or %" PRIu64 " operations): it needs a rebuild", e->bl_bytes,
		    e->bl_n, bl_max_bytes, bl_max_ops);
		c->bl_ejects++;
		ep_fail(e, 4, why); /* lag */
	}
	return ok;
}

/* settle's first step: requests waiting for a backlog (invariant 11) that may go now, in order. c->mu held. */
static void
bl_admit_waiting(ctrl *c)
{
	while (c->wh != NULL) {
		creq *q = c->wh;
		if (!c->fenced && (c->stopping || !bl_admit(c, q->r)))
			break; /* a stopping controller fails them once fenced (ctrl_free) */
		c->wh = q->next;
		if (c->wh == NULL)
			c->wt = NULL;
		q->next = NULL;
		c->bl_waiting--;
		if (c->fenced) { /* settle fails it: never assigned, nothing of it was sent */
			if (c->pt)
				c->pt->next = q;
			else
				c->ph = q;
			c->pt = q;
		} else {
			ctrl_assign(c, q);
		}
	}
}

/* Queue op (a sequenced operation shared by every member it goes to) on e. c->mu held. */
static void
q_push_op(ep *e, int kind, cop *op)
{
	qitem *it = xcalloc(1, sizeof(*it));
	it->kind = kind;
	it->op = op;
	op->refs++;
	bl_add(e, op);
	q_push(e, it);
}

static void
item_free(ctrl *c, qitem *it)
{
	if (it->op != NULL) {
		it->op->refs--;
		op_drop_unused(it->op);
	}
	free(it->rbpl);
	free(it);
}

/* ---- remote frames ---- */

#define TX_BATCH 64             /* frames one writev sends at most */
#define TX_BATCH_BYTES (4u << 20)

/* A frame being sent: header, a fixed first part, and a second part (data, a record, a name) not copied. */
typedef struct txf {
	rp_hdr h;
	union {
		rp_write w;
		rp_zero z;
		rp_snap sn;
		rp_resize rz;
		uint64_t ka[2];
	} a;
	size_t an;
	const void *b;
	size_t bn;
} txf;

/* Frame queue item it for e (the sender thread: e->next_id is its own). */
static void
tx_frame(ep *e, const qitem *it, txf *f)
{
	const cop *op = it->op;
	uint16_t t = RP_FLUSH;
	uint32_t fl = 0;
	uint64_t seq = op != NULL ? op->seq : 0;
	f->an = f->bn = 0;
	f->b = NULL;
	switch (it->kind) {
	case Q_WRITE:
		t = RP_WRITE;
		fl = op->fua ? RPF_FUA : 0;
		f->a.w = (rp_write){ op->off, (uint32_t)op->len, 0 };
		f->an = sizeof(f->a.w);
		f->b = op->data;
		f->bn = op->len;
		break;
	case Q_TRIM:
	case Q_ZERO:
		t = it->kind == Q_TRIM ? RP_TRIM : RP_ZERO;
		f->a.z = (rp_zero){ op->off, op->len, 0, 0 };
		f->an = t == RP_TRIM ? 16 : 24;
		break;
	case Q_FLUSH:
		seq = it->upto;
		break;
	case Q_MB:
		t = RP_MB_COMMIT;
		f->b = &it->mb;
		f->bn = sizeof(it->mb);
		break;
	case Q_SNAP:
		if (op->snap_op == CE_REPL_RESIZE) {
			t = RP_RESIZE;
			f->a.rz = (rp_resize){ op->vsize, op->vflags & CE_RESIZE_SHRINK ? RZ_SHRINK : 0, 0 };
			f->an = sizeof(f->a.rz);
			break;
		}
		t = op->snap_op == CE_REPL_SNAP_CREATE ? RP_SNAPSHOT : op->snap_op == CE_REPL_SNAP_DESTROY ?
		    RP_SNAP_DESTROY : op->snap_op == CE_REPL_ROLLBACK ? RP_ROLLBACK : RP_SNAP_RENAME;
		memset(&f->a.sn, 0, sizeof(f->a.sn));
		memcpy(f->a.sn.sn_name, op->data, strnlen((const char *)op->data, sizeof(f->a.sn.sn_name)));
		if (t == RP_ROLLBACK && (op->vflags & CE_ROLLBACK_DESTROY_LATER))
			f->a.sn.sn_flags = SN_DESTROY_LATER;
		f->an = sizeof(f->a.sn);
		if (t == RP_SNAP_RENAME) {
			f->b = op->data + 256;
			f->bn = 256;
		}
		break;
	case Q_RB: /* a rebuild frame, its payload built by rebuild.c */
		t = it->rbtype;
		f->b = it->rbpl;
		f->bn = it->rbn;
		break;
	}
	if (it->kind == Q_KA) {
		t = RP_KEEPALIVE;
		f->a.ka[0] = now_ns(); /* ka_time: the lease counts from here (replica-protocol.md 6.0) */
		f->a.ka[1] = 0;
		f->an = 16;
	}
	rp_hdr_init(&f->h, t, fl, 0, e->c->e.counter, e->c->e.node, seq, ++e->next_id);
	rp_seal2(&f->h, &f->a, f->an, f->b, f->bn);
}

static int
ep_recv(int fd, rp_hdr *h, uint8_t *buf, uint32_t max)
{
	if (sock_read_full(fd, h, sizeof(*h)) != 0)
		return -EPIPE;
	if (rp_check_header(h, max, RP_VERSION) != 0)
		return -EPROTO;
	if (h->rf_len && sock_read_full(fd, buf, h->rf_len) != 0)
		return -EPIPE;
	return rp_verify(h, buf) == 0 ? 0 : -EBADMSG;
}

/* Connect and authenticate (replica-protocol.md section 4, the controller's side). */
static int
peer_connect_f(const char *addr, int *fdp, uint64_t *features, char *msg, size_t mlen);
/* The same, the connect and the whole handshake bounded by ms; SO_RCVTIMEO is left at what is left of it. */
static int
peer_connect_t(const char *addr, int *fdp, uint64_t *features, char *msg, size_t mlen, int ms);

/*
 * connect() that gives up after REPL_CONNECT_MS, like every reply (SO_RCVTIMEO
 * below). A blocking connect to a member behind a partition (its SYNs dropped,
 * not refused) waits out the kernel's SYN retries -- about two minutes with
 * tcp_syn_retries 6 -- and a takeover or a reconnect waited that long per
 * unreachable member (repl_lease.sh's link-down rounds: 40-75 s per takeover).
 * 0, or -1 with errno set (ETIMEDOUT when the time ran out); fd blocking again.
 * (The lease connection uses a far shorter bound, KCONNECT_MS.)
 */
#define REPL_CONNECT_MS 10000
static int
connect_bounded(int fd, const struct sockaddr *sa, socklen_t len, int ms)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
		return -1;
	int rc = connect(fd, sa, len);
	if (rc != 0 && errno == EINPROGRESS) {
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (;;) {
			clock_gettime(CLOCK_MONOTONIC, &t1);
			long left = ms - ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
			struct pollfd pf = { fd, POLLOUT, 0 };
			int n = left > 0 ? poll(&pf, 1, (int)left) : 0;
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return -1;
			if (n == 0) {
				errno = ETIMEDOUT;
				return -1;
			}
			int e = 0;
			socklen_t el = sizeof(e);
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0)
				return -1;
			if (e != 0) {
				errno = e;
				return -1;
			}
			rc = 0;
			break;
		}
	}
	if (rc != 0)
		return -1;
	return fcntl(fd, F_SETFL, fl);
}

/* SO_RCVTIMEO: what is left until deadline (monotonic ns), at least 1 ms; -1 with ETIMEDOUT when nothing is. */
static int
rcv_left(int fd, uint64_t deadline)
{
	uint64_t now = now_ns();
	if (now >= deadline) {
		errno = ETIMEDOUT;
		return -1;
	}
	uint64_t us = MAX((deadline - now) / 1000, 1000ull);
	struct timeval tv = { (time_t)(us / 1000000), (suseconds_t)(us % 1000000) };
	return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

static int
peer_connect_f(const char *addr, int *fdp, uint64_t *features, char *msg, size_t mlen)
{
	int err = peer_connect_t(addr, fdp, features, msg, mlen, REPL_CONNECT_MS);
	struct timeval tv = { REPL_CONNECT_MS / 1000, 0 }; /* each later answer: REPL_CONNECT_MS */
	if (err == 0)
		setsockopt(*fdp, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return err;
}

static int
peer_connect_t(const char *addr, int *fdp, uint64_t *features, char *msg, size_t mlen, int ms)
{
	const repl_peer_config *pc = repl_peer_cfg();
	if (pc->key == NULL && !pc->insecure) {
		snprintf(msg, mlen, "replication needs --peer-key (or --insecure-peers)");
		return -EPERM;
	}
	uint64_t deadline = now_ns() + (uint64_t)ms * 1000000ull; /* the connect and the whole handshake */
	char host[128], port[32];
	if (repl_split_addr(addr, host, sizeof(host), port, sizeof(port)) != 0) {
		snprintf(msg, mlen, "replica address '%s': want HOST:PORT", addr);
		return -EINVAL;
	}
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV }, *res;
	if (getaddrinfo(host, port, &hints, &res) != 0) {
		snprintf(msg, mlen, "replica %s: cannot resolve", addr);
		return -EHOSTUNREACH;
	}
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect_bounded(fd, res->ai_addr, res->ai_addrlen, ms) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		snprintf(msg, mlen, "replica %s: %s", addr, strerror(e));
		return -EHOSTUNREACH;
	}
	freeaddrinfo(res);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	rp_hello he;
	memset(&he, 0, sizeof(he));
	memcpy(he.he_proto, "cask-replica", 12);
	he.he_min_version = 1;
	he.he_max_version = RP_VERSION;
	he.he_flags = pc->key ? HE_KEY : HE_INSECURE;
	he.he_features = RP_FEAT_TAIL | RP_FEAT_REBUILD | RP_FEAT_VERIFY | RP_FEAT_RB_READ | RP_FEAT_VOLOP;
	he.he_instance = pc->instance;
	uint8_t nc[RP_NONCE];
	if (getrandom(nc, RP_NONCE, 0) != RP_NONCE) {
		close(fd);
		return -EIO;
	}
	memcpy(he.he_nonce, nc, RP_NONCE);
	snprintf(he.he_software, sizeof(he.he_software), "caskd");
	snprintf(he.he_addr, sizeof(he.he_addr), "%s", pc->advertise);
	rp_hdr h;
	rp_hdr_init(&h, RP_HELLO, 0, sizeof(he), 0, 0, 0, 1);
	rp_seal(&h, &he, sizeof(he));
	uint8_t buf[256];
	int err = -EPROTO;
	if (sock_write_full(fd, &h, sizeof(h)) != 0 || sock_write_full(fd, &he, sizeof(he)) != 0 ||
	    rcv_left(fd, deadline) != 0 || ep_recv(fd, &h, buf, 256) != 0)
		goto refused;
	if (h.rf_type == RP_ERROR)
		goto error_frame;
	if (h.rf_type != RP_HELLO_REPLY || h.rf_len != 256)
		goto refused;
	rp_hello_reply hr;
	memcpy(&hr, buf, sizeof(hr));
	if (hr.hr_version != RP_VERSION || (pc->key && !(hr.hr_flags & HE_KEY))) {
		snprintf(msg, mlen, "replica %s: version %u or key mode not offered", addr, hr.hr_version);
		goto out;
	}
	rp_auth au;
	memset(&au, 0, sizeof(au));
	if (pc->key)
		rp_mac(0, pc->key, pc->keylen, nc, hr.hr_nonce, pc->instance, hr.hr_instance, 1, au.au_mac);
	rp_hdr_init(&h, RP_AUTH, 0, sizeof(au), 0, 0, 0, 2);
	rp_seal(&h, &au, sizeof(au));
	if (sock_write_full(fd, &h, sizeof(h)) != 0 || sock_write_full(fd, &au, sizeof(au)) != 0 ||
	    rcv_left(fd, deadline) != 0 || ep_recv(fd, &h, buf, 256) != 0)
		goto refused;
	if (h.rf_type == RP_ERROR)
		goto error_frame;
	if (h.rf_type != RP_AUTH_OK || h.rf_len != 64)
		goto refused;
	if (pc->key) {
		uint8_t want[RP_MAC];
		rp_mac(1, pc->key, pc->keylen, nc, hr.hr_nonce, pc->instance, hr.hr_instance, 1, want);
		if (!rp_mac_equal(want, buf)) {
			snprintf(msg, mlen, "replica %s: it does not hold the peer key", addr);
			goto out;
		}
	}
	if (rcv_left(fd, deadline + 1000000ull) != 0) /* a caller's next answer: what is left (at least 1 ms) */
		goto refused;
	*fdp = fd;
	*features = hr.hr_features;
	return 0;
error_frame: {
	rp_error er;
	memcpy(&er, buf, sizeof(er));
	er.er_msg[sizeof(er.er_msg) - 1] = '\0';
	snprintf(msg, mlen, "replica %s refused: %s: %s", addr, rp_err_name(er.er_code), er.er_msg);
	goto out;
}
refused:
	snprintf(msg, mlen, "replica %s: the handshake failed", addr);
out:
	close(fd);
	return err;
}

/* One request and its answer, before the endpoint threads run. */
static int rpc_x(int fd, uint16_t type, ce_epoch e, uint64_t seq, const void *pl, size_t n, uint16_t want,
    uint8_t *out, uint32_t outmax, rp_hdr *hout, char *msg, size_t mlen, const char *addr);

static int
rpc(int fd, uint16_t type, ce_epoch e, uint64_t seq, const void *pl, size_t n, uint16_t want, uint8_t *out,
    char *msg, size_t mlen, const char *addr)
{
	return rpc_x(fd, type, e, seq, pl, n, want, out, RP_STATUS_SIZE, NULL, msg, mlen, addr);
}

/* The next answer frame (APPLIED/DURABLE skipped) into out (outmax), its header in *hout. */
static int
rpc_next(int fd, uint16_t type, uint16_t want, uint8_t *out, uint32_t outmax, rp_hdr *hout, char *msg,
    size_t mlen, const char *addr)
{
	rp_hdr h;
	for (;;) {
		int err = ep_recv(fd, &h, out, outmax);
		if (err != 0) {
			snprintf(msg, mlen, "replica %s: no answer to %s", addr, rp_type_name(type));
			return -EHOSTUNREACH;
		}
		if (h.rf_type == RP_APPLIED || h.rf_type == RP_DURABLE)
			continue;
		if (hout != NULL)
			*hout = h;
		if (h.rf_type == RP_ERROR) {
			rp_error er;
			memcpy(&er, out, sizeof(er));
			er.er_msg[sizeof(er.er_msg) - 1] = '\0';
			er.er_addr[sizeof(er.er_addr) - 1] = '\0';
			if (er.er_code == RPE_STALE_EPOCH || er.er_code == RPE_PROMISED_ELSEWHERE)
				/* where the volume went: the promised epoch and its holder (rule 7) */
				snprintf(msg, mlen, "controlled by %" PRIu64 ".%016" PRIx64 " at %s (%s from %s)",
				    er.er_epoch_ctr, er.er_epoch_node, er.er_addr[0] ? er.er_addr : "?",
				    rp_err_name(er.er_code), addr);
			else
				snprintf(msg, mlen, "replica %s: %s: %s", addr, rp_err_name(er.er_code), er.er_msg);
			return -rp_err_errno(er.er_code);
		}
		if (h.rf_type != want) {
			snprintf(msg, mlen, "replica %s: %s answered with %s", addr, rp_type_name(type),
			    rp_type_name(h.rf_type));
			return -EPROTO;
		}
		return 0;
	}
}

static int
rpc_x(int fd, uint16_t type, ce_epoch e, uint64_t seq, const void *pl, size_t n, uint16_t want, uint8_t *out,
    uint32_t outmax, rp_hdr *hout, char *msg, size_t mlen, const char *addr)
{
	rp_hdr h;
	rp_hdr_init(&h, type, 0, (uint32_t)n, e.counter, e.node, seq, 3);
	rp_seal(&h, pl, n);
	if (sock_write_full(fd, &h, sizeof(h)) != 0 || (n && sock_write_full(fd, pl, n) != 0)) {
		snprintf(msg, mlen, "replica %s: connection lost", addr);
		return -EHOSTUNREACH;
	}
	if (want == 0)
		return 0; /* no answer expected */
	return rpc_next(fd, type, want, out, outmax, hout, msg, mlen, addr);
}

/* ---- endpoint threads ---- */

static void
ep_applied(ep *e, uint64_t a, uint64_t d)
{
	ctrl *c = e->c;
	if (a > e->applied) {
		e->applied = a;
		e->progress_ns = now_ns();
		bl_release(e, a);
	}
	if (d > e->durable)
		e->durable = d;
	settle(c);
}

/*
 * An endpoint's sender thread (local_thread, remote_tx), under c->mu: the
 * next queued item, waiting for one; NULL when the thread must stop (the
 * controller stops or is fenced, or the endpoint failed).
 */
static qitem *
ep_next(ep *e)
{
	ctrl *c = e->c;
	while (e->qh == NULL && !c->stopping && !c->fenced && !e->failed)
		pthread_cond_wait(&e->qcv, &c->mu);
	if (e->qh == NULL || c->stopping || c->fenced || e->failed)
		return NULL;
	qitem *it = e->qh;
	e->qh = it->next;
	if (e->qh == NULL)
		e->qt = NULL;
	return it;
}

/* Under c->mu, when a sender thread stops: drop what is left in its queue. */
static void
ep_drain(ep *e)
{
	while (e->qh != NULL) {
		qitem *it = e->qh;
		e->qh = it->next;
		item_free(e->c, it);
	}
	e->qt = NULL;
}

static void *
local_thread(void *arg)
{
	ep *e = arg;
	ctrl *c = e->c;
	pthread_mutex_lock(&c->mu);
	for (;;) {
		qitem *it = ep_next(e);
		if (it == NULL)
			break;
		ce_epoch ep_ = c->e;
		pthread_mutex_unlock(&c->mu);
		int err = 0, snap_err = 0;
		uint64_t d = 0, a = 0;
		err_clear();
		switch (it->kind) {
		case Q_WRITE:
			err = ce_repl_write(e->lh, ep_, it->op->seq, it->op->data, it->op->len, it->op->off);
			break;
		case Q_TRIM:
			err = ce_repl_trim(e->lh, ep_, it->op->seq, it->op->off, it->op->len);
			break;
		case Q_ZERO:
			err = ce_repl_zero(e->lh, ep_, it->op->seq, it->op->off, it->op->len);
			break;
		case Q_FLUSH:
			err = ce_repl_flush(e->lh, &d);
			break;
		case Q_MB:
			err = ce_repl_membership(c->p, c->name, ep_, &it->mb);
			break;
		case Q_SNAP:
			if (it->op->snap_op == CE_REPL_ROLLBACK || it->op->snap_op == CE_REPL_RESIZE)
				err = ce_repl_volop(e->lh, ep_, it->op->seq, it->op->snap_op, (const char *)it->op->data,
				    it->op->vsize, it->op->vflags, &snap_err); /* op->fua: durable below */
			else
				err = ce_repl_snap(e->lh, ep_, it->op->seq, it->op->snap_op, (const char *)it->op->data,
				    (const char *)it->op->data + 256, &snap_err);
			break;
		}
		if (err == 0 && it->op != NULL && it->op->fua)
			err = ce_repl_flush(e->lh, &d);
		if (err == 0)
			a = ce_repl_applied(e->lh);
		char why[200];
		snprintf(why, sizeof(why), "%s", err ? ce_errmsg() : "");
		pthread_mutex_lock(&c->mu);
		uint64_t mbv = it->kind == Q_MB ? it->mb.mb_version : 0;
		if (err == 0 && it->kind == Q_SNAP && it->op->seq == c->snap_seq) {
			e->snap_done = 1;
			e->snap_err = snap_err;
		}
		item_free(c, it);
		if (err == -ESTALE) {
			fence(c, why);
			settle(c);
			break;
		}
		if (err != 0) {
			ep_fail(e, 2, why); /* io-error */
			settle(c);
			break;
		}
		if (mbv > e->mb_acked)
			e->mb_acked = mbv;
		ep_applied(e, a, d);
	}
	ep_drain(e);
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/*
 * A remote endpoint's sender: everything queued (up to TX_BATCH frames or
 * TX_BATCH_BYTES of data) goes out in one writev, in seq order, each frame
 * checksummed over its parts in place (no copy of the data).
 */
static void *
remote_tx(void *arg)
{
	ep *e = arg;
	ctrl *c = e->c;
	txf *fr = xmalloc(TX_BATCH * sizeof(txf));
	qitem *batch[TX_BATCH];
	struct iovec iov[3 * TX_BATCH];
	pthread_mutex_lock(&c->mu);
	for (;;) {
		qitem *it = ep_next(e);
		if (it == NULL)
			break;
		int n = 0, ops = it->op != NULL;
		size_t bytes = it->kind == Q_WRITE ? it->op->len : it->kind == Q_RB ? it->rbn : 0;
		batch[n++] = it;
		while (n < TX_BATCH && e->qh != NULL && bytes < TX_BATCH_BYTES) {
			qitem *x = e->qh;
			e->qh = x->next;
			if (e->qh == NULL)
				e->qt = NULL;
			batch[n++] = x;
			ops |= x->op != NULL;
			bytes += x->kind == Q_WRITE ? x->op->len : x->kind == Q_RB ? x->rbn : 0;
		}
		if (ops && e->sent <= e->applied)
			e->progress_ns = now_ns(); /* an idle member starts its deadline now */
		pthread_mutex_unlock(&c->mu);
		int k = 0;
		for (int i = 0; i < n; i++) {
			tx_frame(e, batch[i], &fr[i]);
			iov[k++] = (struct iovec){ &fr[i].h, sizeof(fr[i].h) };
			if (fr[i].an > 0)
				iov[k++] = (struct iovec){ &fr[i].a, fr[i].an };
			if (fr[i].bn > 0)
				iov[k++] = (struct iovec){ (void *)fr[i].b, fr[i].bn };
		}
		int err = sock_write_iov(e->fd, iov, k) == 0 ? 0 : -EPIPE;
		pthread_mutex_lock(&c->mu);
		for (int i = 0; i < n; i++) {
			if (batch[i]->op != NULL && batch[i]->op->seq > e->sent)
				e->sent = batch[i]->op->seq;
			item_free(c, batch[i]);
		}
		if (err != 0) {
			ep_fail(e, 3, "connection lost");
			settle(c);
			break;
		}
	}
	ep_drain(e);
	pthread_mutex_unlock(&c->mu);
	free(fr);
	return NULL;
}

static void *
remote_rx(void *arg)
{
	ep *e = arg;
	ctrl *c = e->c;
	for (;;) {
		rp_hdr h;
		int err = ep_recv(e->fd, &h, e->rxbuf, RP_MAX_PAYLOAD);
		pthread_mutex_lock(&c->mu);
		if (c->stopping) {
			pthread_mutex_unlock(&c->mu);
			break;
		}
		if (err != 0) {
			if (err != -EAGAIN)
				ep_fail(e, err == -EBADMSG ? 5 : 3, err == -EBADMSG ? "a frame with a bad checksum" :
				    "connection lost");
			settle(c);
			pthread_mutex_unlock(&c->mu);
			if (err == -EAGAIN && !e->failed)
				continue;
			break;
		}
		switch (h.rf_type) {
		case RP_APPLIED:
			ep_applied(e, h.rf_seq, 0);
			break;
		case RP_DURABLE:
			ep_applied(e, 0, h.rf_seq);
			break;
		case RP_MB_ACK: {
			rp_mb_ack a;
			memcpy(&a, e->rxbuf, sizeof(a));
			if (a.version > e->mb_acked)
				e->mb_acked = a.version;
			pthread_cond_broadcast(&c->cv);
			break;
		}
		case RP_KEEPALIVE_ACK: {
			uint64_t ka;
			memcpy(&ka, e->rxbuf, sizeof(ka));
			if (h.rf_len == 16 && ka > e->lease_ns && ka <= now_ns())
				e->lease_ns = ka;
			settle(c);
			break;
		}
		case RP_RB_STATE:
		case RP_RB_RANGES:
		case RP_RB_PROGRESS:
			if (e->rb_cb != NULL)
				e->rb_cb(e->rb_arg, &h, e->rxbuf);
			break;
		case RP_OP_DONE: {
			rp_op_done od;
			memcpy(&od, e->rxbuf, sizeof(od));
			if (h.rf_len == sizeof(od) && h.rf_seq == c->snap_seq) {
				e->snap_done = 1;
				e->snap_err = od.od_code == 0 ? 0 : -(int)od.od_value;
				pthread_cond_broadcast(&c->cv);
			}
			if (h.rf_len == sizeof(od) && e->rebuilding) {
				rb_sn_note(e, h.rf_seq, 1, od.od_code == 0 ? 0 : -(int)od.od_value);
				pthread_cond_broadcast(&c->cv);
			}
			break;
		}
		case RP_ERROR: {
			rp_error er;
			memcpy(&er, e->rxbuf, sizeof(er));
			er.er_msg[sizeof(er.er_msg) - 1] = '\0';
			char why[700];
			snprintf(why, sizeof(why), "replica %s/%s: %s: %s (epoch %" PRIu64 ".%016" PRIx64 " at %.64s)",
			    e->addr, e->pool, rp_err_name(er.er_code), er.er_msg, er.er_epoch_ctr, er.er_epoch_node,
			    er.er_addr);
			if (er.er_code == RPE_STALE_EPOCH || er.er_code == RPE_NOT_PROMISED ||
			    er.er_code == RPE_PROMISED_ELSEWHERE)
				fence(c, why);
			else
				ep_fail(e, er.er_code == RPE_BAD_CHECKSUM ? 5 : 2, why);
			settle(c);
			break;
		}
		default:
			break;
		}
		int stop = e->failed || c->fenced;
		pthread_mutex_unlock(&c->mu);
		if (stop)
			break;
	}
	return NULL;
}

/* ---- membership and deadlines (the maintenance thread) ---- */

static void
mb_build(ctrl *c, mb_phys *mb, uint64_t version, int change)
{
	memset(mb, 0, sizeof(*mb));
	mb->mb_version = version;
	mb->mb_epoch = (epoch_phys){ c->e.counter, c->e.node };
	mb->mb_seq = c->next_seq;
	mb->mb_level = (uint8_t)c->level;
	mb->mb_change = (uint8_t)change;
	mb->mb_deadline_ms = c->deadline_ms;
	mb->mb_rebuild_wait_s = 600;
	mb->mb_rebuild_rate = c->rebuild_rate;
	memcpy(mb->mb_vol_uuid, c->uuid, 16);
	snprintf(mb->mb_name, sizeof(mb->mb_name), "%s", c->name);
	int nm = 0;
	for (int i = 0; i < c->n; i++) {
		const ep *e = &c->eps[i];
		if (e->removed)
			continue;
		mm_phys *m = &mb->mb_members[nm++];
		m->mm_id = e->id;
		m->mm_pool_guid = e->pool_guid;
		m->mm_state = e->in_sync && !(change == 1 && e->failed) ? MM_IN_SYNC :
		    e->rebuilding && !e->failed ? MM_REBUILDING : MM_DEGRADED;
		m->mm_reason = m->mm_state == MM_IN_SYNC ? 0 : (uint8_t)e->reason;
		m->mm_flags = e->local ? 1 : 0;
		m->mm_since_seq = c->next_seq;
		m->mm_since_time = (uint64_t)time(NULL);
		snprintf(m->mm_addr, sizeof(m->mm_addr), "%s", e->local ? repl_peer_cfg()->advertise : e->addr);
		snprintf(m->mm_pool, sizeof(m->mm_pool), "%s", e->pool);
	}
	mb->mb_nmembers = (uint8_t)nm;
}

/* (D) for I without the failed members: k' of them hold A applied and F durable. */
static int
d_holds(const ctrl *c)
{
	int in = 0, ga = 0, gd = 0;
	for (int i = 0; i < c->n; i++) {
		const ep *e = &c->eps[i];
		if (!e->in_sync || e->failed)
			continue;
		in++;
		ga += e->applied >= c->acked_max;
		gd += e->durable >= c->durable_max;
	}
	int k = c->level == MB_ONE ? 1 : c->level == MB_QUORUM ? members(c) / 2 + 1 : in;
	return in > 0 && ga >= k && gd >= k;
}

/* Commit an ejection of every failed member of I (invariant 3). c->mu held. */
static void
eject_failed(ctrl *c)
{
	/*
	 * Rule 4 item 2: the new I must satisfy (D) before it is proposed, so a
	 * later controller counting only I never misses an acknowledged write.
	 * The remaining members were sent everything: wait for them.
	 */
	uint64_t dwait = now_ns() + (uint64_t)c->deadline_ms * 1000000ull;
	while (!d_holds(c)) {
		if (c->fenced || c->stopping || now_ns() > dwait) {
			log_err("replicated volume %s: the remaining replicas do not hold every acknowledged write "
			    "(seq %" PRIu64 ", durable %" PRIu64 "): no ejection; the volume stays suspended",
			    c->export_name, c->acked_max, c->durable_max);
			return;
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 20000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&c->cv, &c->mu, &ts);
		lease_tick(c, now_ns()); /* the maintenance thread waits here: the lease goes on being renewed */
	}
	mb_phys mb;
	mb_build(c, &mb, c->mb.mb_version + 1, 1);
	/* who this record names degraded: one that fails while it is committed (the waits below release
	 * c->mu) is not in it and stays in I until the next ejection commits it */
	int named[MAX_MEMBERS] = { 0 };
	for (int i = 0; i < c->n; i++)
		named[i] = c->eps[i].failed && c->eps[i].in_sync;
	int voters = 0;
	for (int i = 0; i < c->n; i++) {
		ep *e = &c->eps[i];
		if (e->in_sync && !e->failed) {
			qitem *it = xcalloc(1, sizeof(*it));
			it->kind = Q_MB;
			it->mb = mb;
			q_push(e, it);
			voters++;
		}
	}
	int need = (members(c) + 1) / 2; /* a commit quorum */
	uint64_t deadline = now_ns() + (uint64_t)c->deadline_ms * 1000000ull;
	for (;;) {
		int got = 0;
		for (int i = 0; i < c->n; i++)
			got += c->eps[i].in_sync && !c->eps[i].failed && c->eps[i].mb_acked >= mb.mb_version;
		if (got >= need)
			break;
		if (c->fenced || c->stopping || now_ns() > deadline || voters < need) {
			log_err("replicated volume %s: the ejection could not be committed on %d members (%d voted): "
			    "the volume stays suspended", c->export_name, need, got);
			return;
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&c->cv, &c->mu, &ts);
		lease_tick(c, now_ns()); /* the maintenance thread waits here: the lease goes on being renewed */
	}
	for (int i = 0; i < c->n; i++)
		if (named[i] && c->eps[i].in_sync) {
			c->eps[i].in_sync = 0;
			char rb[32];
			log_info("replicated volume %s: replica %s/%s ejected (%s; membership version %" PRIu64 ")",
			    c->export_name, c->eps[i].local ? "local" : c->eps[i].addr, c->eps[i].pool,
			    reason_name(c->eps[i].reason, rb, sizeof(rb)), mb.mb_version);
		}
	c->mb = mb;
	settle(c);
}

/* ---- the lease connections (invariant 10) ---- */

/* Test builds only (--test-ops and CASK_TEST_NO_LEASE_CONN=1): renewals only in the data stream. */
static int
lease_conn_off(void)
{
	static int off = -1;
	if (off < 0) {
		const char *v = getenv("CASK_TEST_NO_LEASE_CONN");
		off = vio_test_ops() && v != NULL && strcmp(v, "1") == 0;
		if (off)
			log_warn("replication: CASK_TEST_NO_LEASE_CONN: no lease connections (tests only)");
	}
	return off;
}

static void
kclose(ep *e)
{
	if (e->kopen)
		close(e->kfd);
	e->kopen = 0;
	e->kfd = -1;
}

/*
 * Open e's lease connection: HELLO/AUTH, ATTACH with flag LEASE. 0 or -errno
 * (msg says why). The connect, HELLO, AUTH and ATTACH together wait at most
 * KCONNECT_MS (each answer gets what is left), not the data connection's 10 s: lease_thread makes it, and while it waits no
 * other member's renewal is sent or read -- a member behind a partition (its
 * SYNs dropped, or its bytes blackholed) would otherwise stop every renewal
 * for 10 s, five leases. Test builds (--test-ops) may set
 * CASK_TEST_LEASE_CONNECT_MS to show that (repl_lease_reconnect).
 */
#define KCONNECT_MS 1000
static int
kconnect_ms(void)
{
	static int ms = -1;
	if (ms < 0) {
		const char *v = getenv("CASK_TEST_LEASE_CONNECT_MS");
		ms = vio_test_ops() && v != NULL && atoi(v) > 0 ? atoi(v) : KCONNECT_MS;
		if (ms != KCONNECT_MS)
			log_warn("replication: CASK_TEST_LEASE_CONNECT_MS: lease connections wait %d ms (tests only)", ms);
	}
	return ms;
}

static int
kconnect(ctrl *c, ep *e, const char *addr, const char *pool, char *msg, size_t mlen)
{
	uint64_t feat = 0;
	/* one bound for the connect, HELLO, AUTH and ATTACH: peer_connect_t leaves SO_RCVTIMEO at what is left */
	int fd, err = peer_connect_t(addr, &fd, &feat, msg, mlen, kconnect_ms());
	if (err != 0)
		return err;
	if (!(feat & RP_FEAT_VOLOP)) {
		snprintf(msg, mlen, "replica %s does not offer lease connections (VOLOP)", addr);
		close(fd);
		return -ENOTSUP;
	}
	rp_attach at;
	memset(&at, 0, sizeof(at));
	memcpy(at.at_vol_uuid, c->uuid, 16);
	snprintf(at.at_pool, sizeof(at.at_pool), "%s", pool);
	memcpy(at.at_name, c->name, MIN(strlen(c->name), sizeof(at.at_name)));
	at.at_flags = AT_LEASE;
	uint8_t st[RP_STATUS_SIZE];
	if ((err = rpc(fd, RP_ATTACH, (ce_epoch){ 0, 0 }, 0, &at, sizeof(at), RP_STATUS, st, msg, mlen, addr)) != 0) {
		close(fd);
		return err;
	}
	struct timeval tv = { 1, 0 }; /* a frame that began arriving is whole within a second, or the link is bad */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	e->kfd = fd;
	e->kopen = 1;
	e->kid = 0;
	return 0;
}

static void *
lease_thread(void *arg)
{
	ctrl *c = arg;
	uint8_t *buf = xmalloc(RP_MAX_PAYLOAD + 64);
	pthread_mutex_lock(&c->mu);
	while (!c->stopping) {
		uint64_t start = now_ns();
		int want[MAX_MEMBERS] = { 0 };
		char addr[MAX_MEMBERS][64], pool[MAX_MEMBERS][64];
		ce_epoch ep_ = c->e;
		int n = c->n;
		for (int i = 1; i < n; i++) {
			const ep *e = &c->eps[i];
			want[i] = !c->fenced && !e->removed && !e->adding && e->fd >= 0 && (e->features & RP_FEAT_VOLOP) &&
			    !lease_conn_off();
			snprintf(addr[i], sizeof(addr[i]), "%s", e->addr);
			snprintf(pool[i], sizeof(pool[i]), "%s", e->pool);
		}
		pthread_mutex_unlock(&c->mu);
		struct pollfd pf[MAX_MEMBERS];
		int pi[MAX_MEMBERS], np = 0;
		/* the open connections first, then the connects: one that waits delays no other renewal */
		for (int pass = 0; pass < 2; pass++)
		for (int i = 1; i < n; i++) {
			ep *e = &c->eps[i];
			if (!want[i]) {
				kclose(e);
				continue;
			}
			if ((pass == 0) != (e->kopen != 0))
				continue;
			char msg[300];
			uint64_t t0 = now_ns();
			if (!e->kopen && start >= e->kretry_ns && kconnect(c, e, addr[i], pool[i], msg, sizeof(msg)) != 0) {
				log_info("replicated volume %s: no lease connection to %s/%s (renewals go with the data): %s",
				    c->export_name, addr[i], pool[i], msg);
				/* again in a second, or after four times as long as a try that waited: this thread
				 * is blocked while it tries */
				e->kretry_ns = now_ns() + MAX(1000000000ull, 4 * (now_ns() - t0));
			}
			if (!e->kopen)
				continue;
			rp_hdr h;
			uint64_t ka[2] = { now_ns(), 0 }; /* ka_time: the lease counts from here (replica-protocol.md 6.0) */
			rp_hdr_init(&h, RP_KEEPALIVE, 0, 0, ep_.counter, ep_.node, 0, ++e->kid);
			rp_seal(&h, ka, sizeof(ka));
			struct iovec iov[2] = { { &h, sizeof(h) }, { ka, sizeof(ka) } };
			if (sock_write_iov(e->kfd, iov, 2) != 0) {
				kclose(e);
				continue;
			}
			pf[np] = (struct pollfd){ e->kfd, POLLIN, 0 };
			pi[np++] = i;
		}
		/* the answers, until the next round is due */
		uint64_t due = start + KA_EVERY_NS;
		for (uint64_t now = now_ns(); np > 0 && now < due; now = now_ns()) {
			int r = poll(pf, (nfds_t)np, (int)((due - now) / 1000000ull) + 1);
			if (r <= 0)
				break;
			for (int k = 0; k < np; k++) {
				if (pf[k].revents == 0 || pf[k].fd < 0)
					continue;
				ep *e = &c->eps[pi[k]];
				rp_hdr h;
				int err = ep_recv(e->kfd, &h, buf, RP_MAX_PAYLOAD);
				if (err == 0 && h.rf_type == RP_KEEPALIVE_ACK && h.rf_len == 16) {
					uint64_t t;
					memcpy(&t, buf, sizeof(t));
					pthread_mutex_lock(&c->mu);
					if (t > e->lease_ns && t <= now_ns() && ce_epoch_cmp(c->e, ep_) == 0)
						e->lease_ns = t;
					settle(c);
					pthread_mutex_unlock(&c->mu);
				} else if (err != 0 || h.rf_type != RP_APPLIED) {
					/* an ERROR (a newer epoch, the volume gone) or a broken link: reconnect later; the
					 * data connection reports what it means */
					kclose(e);
					e->kretry_ns = now_ns() + 1000000000ull;
					pf[k].fd = -1;
				}
			}
		}
		pthread_mutex_lock(&c->mu);
		if (c->stopping)
			break;
		uint64_t now = now_ns();
		if (now < due) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			uint64_t ns = (uint64_t)ts.tv_nsec + (due - now);
			ts.tv_sec += (time_t)(ns / 1000000000ull);
			ts.tv_nsec = (long)(ns % 1000000000ull);
			pthread_cond_timedwait(&c->cv, &c->mu, &ts);
		}
	}
	pthread_mutex_unlock(&c->mu);
	for (int i = 1; i < MAX_MEMBERS; i++)
		kclose(&c->eps[i]);
	free(buf);
	return NULL;
}

static void
lease_thread_start(ctrl *c)
{
	for (int i = 0; i < MAX_MEMBERS; i++)
		c->eps[i].kfd = -1;
	c->have_lt = pthread_create(&c->lt, NULL, lease_thread, c) == 0;
}

static void *
maint_thread(void *arg)
{
	ctrl *c = arg;
	pthread_mutex_lock(&c->mu);
	c->start_ns = now_ns();
	c->lease_last = LEASE_PENDING;
	while (!c->stopping) {
		uint64_t now = now_ns();
		lease_tick(c, now);
		int need_eject = 0;
		for (int i = 0; i < c->n; i++) {
			ep *e = &c->eps[i];
			if (!e->failed && e->in_sync && !e->local && e->sent > e->applied &&
			    now - e->progress_ns > (uint64_t)c->deadline_ms * 1000000ull)
				ep_fail(e, 1, "missed the deadline");
			need_eject |= e->failed && e->in_sync;
		}
		if (need_eject && !c->fenced)
			eject_failed(c);
		if (c->wh != NULL)
			settle(c); /* requests waiting for a backlog (invariant 11): what changed may let them go */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&c->cv, &c->mu, &ts);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* ---- the layer ---- */

typedef struct layer {
	ctrl *c;
} layer;

static void
read_work(void *arg)
{
	vio_req *r = arg;
	ctrl *c = ((layer *)r->dev->priv)->c;
	err_clear();
	int err;
	if (r->op == VIO_READ)
		err = ce_vol_read(c->rd, r->buf, r->len, r->off);
	else if (r->op == VIO_MAP)
		err = ce_vol_map(c->rd, r->off, r->len, r->ext, (r->flags & VIO_MAP_ONE) ? 1 : r->ext_max, &r->ext_n);
	else
		err = 0; /* CACHE: a hint */
	if (err != 0)
		r->code = ce_errcode();
	if (err == 0 && r->op != VIO_CACHE) { /* what was read is current only if the lease still held after it */
		pthread_mutex_lock(&c->mu);
		int bad = c->fenced || lease_state(c, now_ns()) != LEASE_VALID;
		pthread_mutex_unlock(&c->mu);
		if (bad) {
			r->code = CE_E_IO_ERROR;
			vio_complete(r, -EIO, "no lease: a majority of the replicas did not renew it (partitioned?)");
			return;
		}
	}
	vio_complete(r, err, err ? ce_errmsg() : NULL);
}

static void
ctrl_submit(vio_dev *d, vio_req *r)
{
	ctrl *c = ((layer *)d->priv)->c;
	if (r->op >= VIO_NOPS) {
		vio_complete(r, -EINVAL, "unknown request type");
		return;
	}
	uint64_t size = ce_vol_size(c->rd);
	if (r->op != VIO_FLUSH && (r->off > size || r->len > size - r->off)) {
		vio_complete(r, r->op == VIO_WRITE || r->op == VIO_ZERO ? -ENOSPC : -EINVAL,
		    "range beyond the end of the volume");
		return;
	}
	creq *q = xcalloc(1, sizeof(*q));
	q->r = r;
	pthread_mutex_lock(&c->mu);
	if (c->fenced) {
		pthread_mutex_unlock(&c->mu);
		free(q);
		vio_complete(r, -EIO, "the replicated volume is fenced: a newer controller took it over");
		return;
	}
	if (c->wh != NULL || !bl_admit(c, r)) { /* invariant 11: it waits, in order, unassigned */
		if (c->wt)
			c->wt->next = q;
		else
			c->wh = q;
		c->wt = q;
		c->bl_waiting++;
		c->bl_waits++;
		pthread_mutex_unlock(&c->mu);
		return;
	}
	ctrl_assign(c, q);
	settle(c);
	pthread_mutex_unlock(&c->mu);
}

/* Assign q its seq and queue it to every member that gets the live stream (invariant 1). c->mu held. */
static void
ctrl_assign(ctrl *c, creq *q)
{
	vio_req *r = q->r;
	if ((r->op == VIO_WRITE || r->op == VIO_TRIM || r->op == VIO_ZERO) && c->vsize != 0 &&
	    (r->off > c->vsize || r->len > c->vsize - r->off)) {
		/* checked at submit, but it waited (invariant 11) past a sequenced shrink: every replica would fail it */
		q->err = r->op == VIO_TRIM ? -EINVAL : -ENOSPC;
		q->seq = c->next_seq;
	} else if (r->op == VIO_WRITE || r->op == VIO_TRIM || r->op == VIO_ZERO) {
		int kind = r->op == VIO_WRITE ? Q_WRITE : r->op == VIO_TRIM ? Q_TRIM : Q_ZERO;
		uint64_t step = kind == Q_WRITE ? CHUNK : r->len ? r->len : 1;
		for (uint64_t off = 0; off < r->len || (r->len == 0 && off == 0); off += step) {
			if (r->len == 0)
				break;
			cop *op = xcalloc(1, sizeof(*op));
			op->seq = ++c->next_seq;
			op->kind = kind;
			op->off = r->off + off;
			op->len = MIN(step, r->len - off);
			op->fua = (r->flags & VIO_FUA) && off + op->len >= r->len;
			if (kind == Q_WRITE) {
				op->data = xmalloc(op->len);
				memcpy(op->data, (uint8_t *)r->buf + off, op->len);
			}
			for (int i = 0; i < c->n; i++) {
				ep *e = &c->eps[i];
				if (!gets_live(e))
					continue;
				if (e->rebuilding && e->live != NULL)
					rb_live_add(e->live, op->off, op->len); /* rebuild data never lands here now */
				q_push_op(e, kind, op);
			}
			op_drop_unused(op);
		}
		q->seq = c->next_seq;
		q->durable = (r->flags & VIO_FUA) != 0;
	} else if (r->op == VIO_FLUSH) {
		q->seq = c->next_seq;
		q->durable = 1;
		for (int i = 0; i < c->n; i++) {
			ep *e = &c->eps[i];
			if (!gets_live(e))
				continue;
			qitem *it = xcalloc(1, sizeof(*it));
			it->kind = Q_FLUSH;
			it->upto = c->next_seq;
			q_push(e, it);
		}
	} else {
		q->seq = c->next_seq; /* invariant 5 */
		q->is_read = 1;
	}
	if (c->pt)
		c->pt->next = q;
	else
		c->ph = q;
	c->pt = q;
}

static void
ctrl_close(vio_dev *d)
{
	layer *l = d->priv;
	pthread_mutex_lock(&l->c->mu);
	l->c->opens--;
	pthread_mutex_unlock(&l->c->mu);
	free(l);
}

static const vio_layer_ops ctrl_ops = { "replication", ctrl_submit, ctrl_close, NULL };

vio_dev *
repl_ctrl_layer(vio_vol *v, const char *export_name, vio_dev *below, ce_pool *p, ce_vol *cv)
{
	pthread_mutex_lock(&ctrls_mu);
	ctrl *c = ctrls;
	while (c != NULL && strcmp(c->export_name, export_name) != 0)
		c = c->next;
	if (c != NULL) {
		pthread_mutex_lock(&c->mu); /* under ctrls_mu: a takeover frees only a listed controller none opened */
		c->opens++;
		pthread_mutex_unlock(&c->mu);
	}
	pthread_mutex_unlock(&ctrls_mu);
	if (c == NULL)
		return below;
	vio_dev *d = xcalloc(1, sizeof(*d));
	layer *l = xcalloc(1, sizeof(*l));
	l->c = c;
	d->ops = &ctrl_ops;
	d->next = below; /* never passed down (its replicas are its lower half); closed after it */
	d->vol = v;
	d->priv = l;
	return d;
}

/* ---- create ---- */

static _Thread_local char retire_left[300]; /* what retire_created could not destroy, for the message */

/*
 * vol create failed part-way: destroy the remote replicas it created
 * (RETIRE with flag destroy, replica-protocol.md 5.4 as built); those that
 * cannot be destroyed are named in retire_left.
 */
static void
retire_created(ctrl *c)
{
	size_t used = 0;
	for (int i = 1; i < c->n; i++) {
		ep *e = &c->eps[i];
		if (e->fd < 0)
			continue;
		struct timeval tv = { 5, 0 };
		setsockopt(e->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		uint32_t rt[4] = { 1, 0, 0, 0 };
		uint8_t st[RP_STATUS_SIZE];
		char m2[300];
		if (rpc(e->fd, RP_RETIRE, c->e, 0, rt, sizeof(rt), RP_STATUS, st, m2, sizeof(m2), e->addr) == 0) {
			log_info("vol create %s: replica %s/%s destroyed again", c->export_name, e->addr, e->pool);
			continue;
		}
		log_warn("vol create %s: replica %s/%s stays: %s", c->export_name, e->addr, e->pool, m2);
		used += (size_t)snprintf(retire_left + used, sizeof(retire_left) - MIN(used, sizeof(retire_left)),
		    "%s %s/%s/%s", used ? "," : "; left behind:", e->addr, e->pool, c->name);
		if (used >= sizeof(retire_left))
			used = sizeof(retire_left) - 1;
	}
}

static void
ep_start_threads(ep *e)
{
	if (e->local) {
		e->have_th = pthread_create(&e->th, NULL, local_thread, e) == 0;
	} else {
		e->have_th = pthread_create(&e->th, NULL, remote_tx, e) == 0;
		e->have_rx = pthread_create(&e->rx, NULL, remote_rx, e) == 0;
	}
}

static void
ctrl_free(ctrl *c)
{
	pthread_mutex_lock(&c->mu);
	c->stopping = 1;
	for (int i = 0; i < c->n; i++) {
		pthread_cond_broadcast(&c->eps[i].qcv);
		if (c->eps[i].fd >= 0)
			shutdown(c->eps[i].fd, SHUT_RDWR);
	}
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	if (c->mt)
		pthread_join(c->mt, NULL);
	if (c->have_lt)
		pthread_join(c->lt, NULL);
	for (int i = 0; i < c->n; i++) {
		ep *e = &c->eps[i];
		if (e->have_th)
			pthread_join(e->th, NULL);
		if (e->have_rx)
			pthread_join(e->rx, NULL);
		if (e->fd >= 0)
			close(e->fd);
		if (e->lh)
			ce_vol_close(e->lh);
		free(e->rxbuf);
		free(e->bl);
		rb_live_free(e->live);
		pthread_cond_destroy(&e->qcv);
	}
	/* a request still pending fails */
	pthread_mutex_lock(&c->mu);
	c->fenced = 1;
	settle(c);
	pthread_mutex_unlock(&c->mu);
	if (c->rd)
		reg_vol_close(c->rd, c->p);
	free(c);
}

typedef struct mk_args {
	const char *name;
	uint64_t size;
	const ce_vol_props *props;
	const uint8_t *uuid;
	uint64_t guid;
	const char *holder;
} mk_args;

static int
make_local(ce_pool *p, void *arg)
{
	mk_args *a = arg;
	int err = ce_vol_create(p, a->name, a->size, a->props);
	if (err != 0)
		return err;
	ce_vol_info vi;
	if ((err = ce_vol_info_get(p, a->name, &vi)) == 0) {
		a->guid = vi.guid;
		err = ce_repl_make(p, a->name, a->uuid, (ce_epoch){ 1, vi.guid }, a->holder);
	}
	if (err != 0) {
		char msg[400];
		snprintf(msg, sizeof(msg), "%s", ce_errmsg());
		(void)ce_vol_destroy(p, a->name);
		err_set(err, "%s", msg);
	}
	return err;
}

static int
destroy_local(ce_pool *p, void *arg)
{
	return ce_vol_destroy(p, (const char *)arg);
}

int
repl_ctrl_create(const char *pool, const char *name, uint64_t size, const ce_vol_props *props,
    const char *const *replicas, size_t n, int level, uint32_t deadline_ms)
{
	char msg[400] = "";
	if (n + 1 > MAX_MEMBERS)
		return err_setc(CE_E_INVALID_ARGUMENT, -EINVAL, "at most %d replicas", MAX_MEMBERS);
	const repl_peer_config *pc = repl_peer_cfg();
	if (pc->key == NULL && !pc->insecure)
		return err_setc(CE_E_REPLICATION_INSECURE, -EPERM, "replication needs caskd --peer-key FILE "
		    "(or --insecure-peers)");
	if (props != NULL && props->sync == CE_SYNC_DISABLED)
		return err_setc(CE_E_INVALID_ARGUMENT, -EINVAL, "a replicated volume cannot be sync=disabled");
	ctrl *c = xcalloc(1, sizeof(*c));
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	snprintf(c->pool, sizeof(c->pool), "%s", pool);
	snprintf(c->name, sizeof(c->name), "%s", name);
	snprintf(c->export_name, sizeof(c->export_name), "%s/%s", pool, name);
	c->level = level;
	c->deadline_ms = deadline_ms ? deadline_ms : 5000;
	if (getrandom(c->uuid, 16, 0) != 16)
		return err_set(-EIO, "getrandom failed");
	for (int i = 0; i < MAX_MEMBERS; i++) {
		c->eps[i].fd = -1;
		pthread_cond_init(&c->eps[i].qcv, NULL);
		c->eps[i].c = c;
		c->eps[i].idx = i;
	}
	retire_left[0] = '\0';
	/* replica 0: here */
	mk_args a = { name, size, props, c->uuid, 0, pc->advertise };
	int err = reg_with_pool(pool, make_local, &a);
	if (err != 0) {
		snprintf(msg, sizeof(msg), "%s", ce_errmsg());
		int code = ce_errcode();
		for (int i = 0; i < MAX_MEMBERS; i++)
			pthread_cond_destroy(&c->eps[i].qcv);
		free(c);
		return err_setc(code, err, "%s", msg);
	}
	c->e = (ce_epoch){ 1, a.guid };
	ep *l = &c->eps[0];
	l->local = 1;
	l->id = a.guid;
	snprintf(l->pool, sizeof(l->pool), "%s", pool);
	c->n = 1;
	err = reg_vol_open(c->export_name, &c->rd, &c->p);
	if (err == 0)
		err = ce_repl_open(c->p, name, &l->lh);
	if (err != 0) {
		snprintf(msg, sizeof(msg), "%s", ce_errmsg());
		goto fail;
	}
	ce_pool_stat pst;
	l->pool_guid = ce_pool_stat_get(c->p, &pst) == 0 ? pst.guid : 0;
	/* the remote replicas: CREATE with the promise of epoch 1 */
	for (size_t i = 0; i < n; i++) {
		ep *e = &c->eps[c->n];
		const char *slash = strrchr(replicas[i], '/');
		if (slash == NULL || slash == replicas[i] || slash[1] == '\0' ||
		    (size_t)(slash - replicas[i]) >= sizeof(e->addr) || strlen(slash + 1) >= sizeof(e->pool)) {
			snprintf(msg, sizeof(msg), "replica '%s': want HOST:PORT/POOL", replicas[i]);
			err = -EINVAL;
			goto fail;
		}
		snprintf(e->addr, sizeof(e->addr), "%.*s", (int)(slash - replicas[i]), replicas[i]);
		snprintf(e->pool, sizeof(e->pool), "%s", slash + 1);
		if ((err = peer_connect_f(e->addr, &e->fd, &e->features, msg, sizeof(msg))) != 0)
			goto fail;
		c->n++;
		rp_create cr;
		memset(&cr, 0, sizeof(cr));
		memcpy(cr.cr_vol_uuid, c->uuid, 16);
		cr.cr_size = ce_vol_size(c->rd);
		cr.cr_volblocksize = ce_vol_blocksize(c->rd);
		cr.cr_compress = props && props->compress >= 0 ? (uint8_t)props->compress : 0xff;
		cr.cr_checksum = props && props->checksum > 0 ? (uint8_t)props->checksum : 0xff;
		cr.cr_sync = props ? (uint8_t)props->sync : 0;
		snprintf(cr.cr_pool, sizeof(cr.cr_pool), "%s", e->pool);
		memcpy(cr.cr_name, name, strlen(name) < sizeof(cr.cr_name) ? strlen(name) : sizeof(cr.cr_name));
		cr.cr_epoch_ctr = c->e.counter;
		cr.cr_epoch_node = c->e.node;
		snprintf(cr.cr_holder_addr, sizeof(cr.cr_holder_addr), "%s", pc->advertise);
		uint8_t st[RP_STATUS_SIZE];
		if ((err = rpc(e->fd, RP_CREATE, c->e, 0, &cr, sizeof(cr), RP_STATUS, st, msg, sizeof(msg), e->addr)) != 0) {
			close(e->fd);
			e->fd = -1;
			c->n--;
			goto fail;
		}
		rp_status s;
		memcpy(&s, st, sizeof(s));
		e->id = s.st_id;
		e->pool_guid = s.st_pool_guid;
	}
	/* START_EPOCH (base 0) with the first membership record, everyone in sync */
	for (int i = 0; i < c->n; i++)
		c->eps[i].in_sync = 1;
	mb_build(c, &c->mb, 1, 0);
	if ((err = ce_repl_start_epoch(c->p, name, c->e, 0, &c->mb)) != 0) {
		snprintf(msg, sizeof(msg), "%s", ce_errmsg());
		goto fail;
	}
	for (int i = 1; i < c->n; i++) {
		ep *e = &c->eps[i];
		rp_start_epoch se;
		memset(&se, 0, sizeof(se));
		memcpy(se.se_mb, &c->mb, sizeof(c->mb));
		uint8_t st[RP_STATUS_SIZE];
		if ((err = rpc(e->fd, RP_START_EPOCH, c->e, 0, &se, sizeof(se), RP_EPOCH_STARTED, st, msg, sizeof(msg),
		    e->addr)) != 0)
			goto fail;
		struct timeval tv = { 0, 0 };
		setsockopt(e->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		e->rxbuf = xmalloc(RP_MAX_PAYLOAD + 64);
	}
	(void)ce_repl_set_flags(c->p, name, RP_CONTROLLER_HERE, 0);
	c->vsize = ce_vol_size(c->rd);
	uint64_t t = now_ns();
	for (int i = 0; i < c->n; i++) {
		c->eps[i].progress_ns = t;
		c->eps[i].mb_acked = 1;
		ep_start_threads(&c->eps[i]);
	}
	pthread_create(&c->mt, NULL, maint_thread, c);
	lease_thread_start(c);
	pthread_mutex_lock(&ctrls_mu);
	c->next = ctrls;
	ctrls = c;
	pthread_mutex_unlock(&ctrls_mu);
	log_info("replicated volume %s: serving, epoch %" PRIu64 ".%016" PRIx64 ", %d replicas, consistency %s",
	    c->export_name, c->e.counter, c->e.node, c->n, level == MB_ONE ? "one" : level == MB_QUORUM ? "quorum" : "all");
	return 0;
fail:
	retire_created(c);
	for (int i = 1; i < c->n; i++)
		if (c->eps[i].fd >= 0)
			close(c->eps[i].fd);
	if (l->lh)
		ce_vol_close(l->lh);
	if (c->rd)
		reg_vol_close(c->rd, c->p);
	(void)reg_with_pool(pool, destroy_local, (void *)name);
	for (int i = 0; i < MAX_MEMBERS; i++)
		pthread_cond_destroy(&c->eps[i].qcv);
	free(c);
	char c_left[300];
	snprintf(c_left, sizeof(c_left), "%s", retire_left);
	int code = err == -EHOSTUNREACH ? CE_E_PEER_UNREACHABLE : err == -EACCES || err == -EPROTONOSUPPORT ?
	    CE_E_PEER_REFUSED : ce_errcode_of(err);
	return err_setc(code, err, "%s (nothing was created here%s)", msg, c_left[0] ? c_left : "");
}

static int
clear_here(ce_pool *p, void *arg)
{
	return ce_repl_set_flags(p, (const char *)arg, 0, RP_CONTROLLER_HERE);
}

/* ---- takeover and restart: reconciliation (rule 7; docs/replication.md section 3.7, as built) ---- */

typedef struct rmem {
	const mm_phys *m;
	int local, promised;
	int fd;
	uint64_t features;
	ce_repl_info ri;      /* the local one's record, or a remote PROMISE's fields */
	eh_phys hist[CE_REPL_HIST];
	uint32_t nhist;
	uint64_t top;         /* max(applied, hi): the highest seq with bytes maybe here */
	int exact;            /* its content is state(applied) plus ops whose extents are known */
	int start;            /* chosen: started in the new epoch */
	int synced;           /* a tail sync made it the reference's state */
} rmem;

/*
 * An RPC to remote member x failed without an answer (timeout, lost, or a
 * frame not expected): a late answer may still come, and rpc_next takes the
 * first frame of the wanted type, so the connection is not used again --
 * closed, and x counts as not promised (nothing more is sent to it). An
 * ERROR answer leaves the stream in step: kept. Returns err.
 */
static int
rm_rpc_err(rmem *x, int err)
{
	if (err != 0 && !x->local && x->fd >= 0 && (err == -EHOSTUNREACH || err == -EPROTO)) {
		close(x->fd);
		x->fd = -1;
		x->promised = 0;
	}
	return err;
}

static int
ephcmp(epoch_phys a, epoch_phys b)
{
	return ce_epoch_cmp((ce_epoch){ a.ep_counter, a.ep_node }, (ce_epoch){ b.ep_counter, b.ep_node });
}

/* The epoch that numbered seq s in a history (the last entry with base < s); 0 when before it. */
static int
lineage_at(const rmem *x, uint64_t s, epoch_phys *out)
{
	for (uint32_t i = x->nhist; i-- > 0;)
		if (x->hist[i].eh_base < s) {
			*out = x->hist[i].eh_epoch;
			return 1;
		}
	return 0;
}

/* The highest c <= limit with every seq 1..c numbered by the same epoch on both. */
static uint64_t
common_point(const rmem *a, const rmem *b, uint64_t limit)
{
	uint64_t pts[2 * CE_REPL_HIST + 1];
	size_t n = 0;
	for (uint32_t i = 0; i < a->nhist; i++)
		pts[n++] = a->hist[i].eh_base;
	for (uint32_t i = 0; i < b->nhist; i++)
		pts[n++] = b->hist[i].eh_base;
	pts[n++] = limit;
	/* each segment (p, next p] is one epoch on each side: check its first seq */
	uint64_t c = 0;
	for (;;) {
		uint64_t next = UINT64_MAX;
		for (size_t i = 0; i < n; i++)
			if (pts[i] > c && pts[i] < next)
				next = pts[i];
		if (next == UINT64_MAX || c >= limit)
			return MIN(c, limit);
		epoch_phys ea, eb;
		if (!lineage_at(a, c + 1, &ea) || !lineage_at(b, c + 1, &eb) || ephcmp(ea, eb) != 0)
			return c;
		c = MIN(next, limit);
	}
}

typedef struct born {
	uint64_t *off, *len;
	size_t n, cap;
} born;

static int
born_add(void *arg, uint64_t off, uint64_t len, int kind)
{
	born *b = arg;
	(void)kind; /* a hole is copied like data: the reference's bytes there are zeros */
	if (b->n > 0 && b->off[b->n - 1] + b->len[b->n - 1] == off) {
		b->len[b->n - 1] += len;
		return 0;
	}
	if (b->n == b->cap) {
		b->cap = b->cap ? 2 * b->cap : 256;
		b->off = xrealloc(b->off, b->cap * sizeof(uint64_t));
		b->len = xrealloc(b->len, b->cap * sizeof(uint64_t));
	}
	b->off[b->n] = off;
	b->len[b->n++] = len;
	return 0;
}

/*
 * Invariant 7, after a restart: where member x may hold bytes of operations
 * after `after` when its ring does not reach back (a caskd restart empties
 * it) -- every range, data or hole, born in or after the txg that x's
 * sequence->txg map gives for `after` (engine repl.c invariant 3: on disk,
 * committed with the data; ce_rebuild_scan, remotely RB_SCAN on the promised
 * connection). A superset of the ring's extents that covers every operation
 * x ever began, so *top is x->top.
 */
static int
member_births(rmem *x, ce_vol *lh, ce_epoch e, uint64_t after, uint64_t **off, uint64_t **len, size_t *n,
    uint64_t *top, char *msg, size_t mlen)
{
	born b = { NULL, NULL, 0, 0 };
	int err = 0;
	if (x->local) {
		if ((err = ce_rebuild_scan(lh, after, 0, 0, born_add, &b)) < 0)
			snprintf(msg, mlen, "%s", ce_errmsg());
		err = err < 0 ? err : 0;
	} else if (!(x->features & RP_FEAT_REBUILD)) {
		snprintf(msg, mlen, "replica %s does not speak RB_SCAN (its ring was lost at a restart)", x->m->mm_addr);
		err = -EPROTONOSUPPORT;
	} else {
		uint8_t *buf = xmalloc(RP_MAX_PAYLOAD);
		uint64_t from = 0;
		for (int first = 1; err == 0; first = 0) {
			rp_rb_scan sc;
			memset(&sc, 0, sizeof(sc));
			sc.sc_base_seq = after;
			sc.sc_from = from;
			sc.sc_max = RP_RB_MAX_RANGES;
			sc.sc_flags = first ? RB_SCAN_SYNC : 0;
			rp_hdr h;
			if ((err = rm_rpc_err(x, rpc_x(x->fd, RP_RB_SCAN, e, 0, &sc, sizeof(sc), RP_RB_RANGES, buf,
			    RP_MAX_PAYLOAD, &h, msg, mlen, x->m->mm_addr))) != 0)
				break;
			rp_rb_ranges rr;
			memcpy(&rr, buf, sizeof(rr));
			int more = (h.rf_flags & RPF_MORE) != 0;
			if (rr.rr_n > RP_RB_MAX_RANGES || h.rf_len != sizeof(rr) + (uint64_t)rr.rr_n * sizeof(rp_rb_range) ||
			    (more && rr.rr_next <= from)) {
				snprintf(msg, mlen, "replica %s: a malformed RB_RANGES", x->m->mm_addr);
				err = rm_rpc_err(x, -EPROTO);
				break;
			}
			for (uint32_t i = 0; i < rr.rr_n && err == 0; i++) {
				rp_rb_range g;
				memcpy(&g, buf + sizeof(rr) + (size_t)i * sizeof(g), sizeof(g));
				if (g.length == 0 || g.offset > x->ri.size || g.length > x->ri.size - g.offset) {
					snprintf(msg, mlen, "replica %s: RB_RANGES outside the volume", x->m->mm_addr);
					err = rm_rpc_err(x, -EPROTO);
				} else {
					born_add(&b, g.offset, g.length, 0);
				}
			}
			if (!more)
				break;
			from = rr.rr_next;
		}
		free(buf);
	}
	if (err != 0) {
		free(b.off);
		free(b.len);
		return err;
	}
	*off = b.off;
	*len = b.len;
	*n = b.n;
	*top = MAX(after, x->top);
	log_info("reconciliation: member %s/%s: the extents of its operations after seq %" PRIu64 " are not in "
	    "memory (a restart): %zu ranges from the block births on disk", x->local ? "local" : x->m->mm_addr,
	    x->m->mm_pool, after, b.n);
	return 0;
}

/* Extents of the operations after `after` on member x (TAIL_LIST, or the engine for the local one);
 * from the births on disk when the ring does not reach back (member_births). */
static int
member_extents(rmem *x, ce_vol *lh, ce_epoch e, uint64_t after, uint64_t **off, uint64_t **len, size_t *n,
    uint64_t *top, char *msg, size_t mlen)
{
	size_t cap = 0;
	*off = *len = NULL;
	*n = 0;
	*top = after;
	if (x->local) {
		for (;;) {
			cap += RP_TAIL_MAX;
			*off = xrealloc(*off, cap * sizeof(uint64_t));
			*len = xrealloc(*len, cap * sizeof(uint64_t));
			size_t k = 0;
			int e2 = ce_repl_extents(lh, *top, *off + *n, *len + *n, RP_TAIL_MAX, &k, top);
			if (e2 == -ERANGE) {
				free(*off);
				free(*len);
				*off = *len = NULL;
				*n = 0;
				return member_births(x, lh, e, after, off, len, n, top, msg, mlen);
			}
			if (e2 != 0) {
				snprintf(msg, mlen, "%s", ce_errmsg());
				return e2;
			}
			*n += k;
			if (k < RP_TAIL_MAX)
				return 0;
		}
	}
	if (!(x->features & RP_FEAT_TAIL)) {
		snprintf(msg, mlen, "replica %s does not speak the TAIL frames", x->m->mm_addr);
		return -EPROTONOSUPPORT;
	}
	rp_tail_list tl = { after, 0 };
	uint8_t *buf = xmalloc(RP_MAX_PAYLOAD);
	rp_hdr h;
	int err = rpc_x(x->fd, RP_TAIL_LIST, e, 0, &tl, sizeof(tl), RP_TAIL_EXTENTS, buf, RP_MAX_PAYLOAD, &h, msg,
	    mlen, x->m->mm_addr);
	while (err == 0) {
		rp_tail_extents te;
		memcpy(&te, buf, sizeof(te));
		if (te.te_n > RP_TAIL_MAX || h.rf_len != 16 + 16 * te.te_n) {
			snprintf(msg, mlen, "replica %s: a malformed TAIL_EXTENTS", x->m->mm_addr);
			err = -EPROTO;
			break;
		}
		*off = xrealloc(*off, (*n + te.te_n + 1) * sizeof(uint64_t));
		*len = xrealloc(*len, (*n + te.te_n + 1) * sizeof(uint64_t));
		for (uint32_t i = 0; i < te.te_n; i++) {
			memcpy(&(*off)[*n], buf + 16 + 16 * i, 8);
			memcpy(&(*len)[*n], buf + 24 + 16 * i, 8);
			(*n)++;
		}
		*top = te.te_top;
		if (!(h.rf_flags & RPF_MORE))
			break;
		err = rpc_next(x->fd, RP_TAIL_LIST, RP_TAIL_EXTENTS, buf, RP_MAX_PAYLOAD, &h, msg, mlen, x->m->mm_addr);
	}
	free(buf);
	rm_rpc_err(x, err);
	if (err == -ERANGE) { /* TAIL_UNKNOWN: its ring does not reach back */
		free(*off);
		free(*len);
		*off = *len = NULL;
		*n = 0;
		return member_births(x, lh, e, after, off, len, n, top, msg, mlen);
	}
	return err;
}

/* Read [off, off+len) of the reference (len <= RP_MAX_IO). */
static int
ref_read(rmem *r, ce_vol *rd, ce_epoch e, uint8_t *buf, uint8_t *tmp, uint64_t off, uint32_t len, char *msg,
    size_t mlen)
{
	if (r->local) {
		int err = ce_vol_read(rd, buf, len, off);
		if (err != 0)
			snprintf(msg, mlen, "reading the reference: %s", ce_errmsg());
		return err;
	}
	rp_read q = { off, len, 0, 0 };
	int err = rm_rpc_err(r, rpc_x(r->fd, RP_READ, e, 0, &q, sizeof(q), RP_READ_DATA, tmp, RP_MAX_PAYLOAD, NULL,
	    msg, mlen, r->m->mm_addr));
	if (err == 0)
		memcpy(buf, tmp + 16, len);
	return err;
}

typedef struct xt {
	uint64_t off, len;
} xt;

static int
xt_cmp(const void *a, const void *b)
{
	const xt *x = a, *y = b;
	return x->off < y->off ? -1 : x->off > y->off;
}

/* Make q hold the reference's content on the ranges xs (sorted, merged): TAIL_BEGIN, TAIL_DATA... */
static int
tail_sync(rmem *r, rmem *q, ctrl *c, ce_vol *lh, ce_epoch e, const xt *xs, size_t nx, char *msg, size_t mlen)
{
	int err;
	if (q->local) {
		err = ce_repl_tail_begin(c->p, c->name, e, r->hist, r->nhist);
		if (err != 0) {
			snprintf(msg, mlen, "tail sync of the local replica: %s", ce_errmsg());
			return err;
		}
	} else {
		rp_tail_begin tb;
		memset(&tb, 0, sizeof(tb));
		memcpy(tb.tb_hist, r->hist, r->nhist * sizeof(eh_phys));
		tb.tb_nhist = r->nhist;
		uint8_t st[RP_STATUS_SIZE];
		if ((err = rm_rpc_err(q, rpc(q->fd, RP_TAIL_BEGIN, e, 0, &tb, sizeof(tb), RP_STATUS, st, msg, mlen,
		    q->m->mm_addr))) != 0)
			return err;
	}
	uint8_t *buf = xmalloc(RP_MAX_IO + 16), *tmp = xmalloc(RP_MAX_PAYLOAD + 64);
	err = 0;
	for (size_t i = 0; i < nx && err == 0; i++) {
		for (uint64_t o = xs[i].off; o < xs[i].off + xs[i].len && err == 0; o += RP_MAX_IO) {
			uint32_t l = (uint32_t)MIN((uint64_t)RP_MAX_IO, xs[i].off + xs[i].len - o);
			if ((err = ref_read(r, c->rd, e, buf + 16, tmp, o, l, msg, mlen)) != 0)
				break;
			if (q->local) {
				if ((err = ce_repl_tail_write(lh, e, buf + 16, l, o, 0)) != 0)
					snprintf(msg, mlen, "tail sync of the local replica: %s", ce_errmsg());
			} else {
				rp_tail_data td = { o, l, 0 };
				memcpy(buf, &td, 16);
				err = rm_rpc_err(q, rpc_x(q->fd, RP_TAIL_DATA, e, 0, buf, 16 + (size_t)l, 0, NULL, 0, NULL, msg,
				    mlen, q->m->mm_addr));
			}
		}
	}
	free(buf);
	free(tmp);
	return err;
}

/* Where a refusal says the volume went: "EPOCH at ADDR". */
static void
refusal_where(const char *msg, char *where, size_t wlen)
{
	snprintf(where, wlen, "%s", msg);
}

/*
 * Reconcile pool/name from its members and serve it (mode PR_RESUME: this
 * caskd controlled it before; PR_TAKEOVER: `vol takeover`). 0 serving;
 * -EAGAIN not enough members now (the message says who); -ESTALE the volume
 * belongs to a newer controller (where: the message); else -errno.
 */
static int
reconcile(const char *pool, const char *name, int mode, int force, char *msg, size_t mlen)
{
	/* (msg: at least 1600 bytes from the callers) */
	const repl_peer_config *pc = repl_peer_cfg();
	ctrl *c = xcalloc(1, sizeof(*c));
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	snprintf(c->pool, sizeof(c->pool), "%s", pool);
	snprintf(c->name, sizeof(c->name), "%s", name);
	snprintf(c->export_name, sizeof(c->export_name), "%s/%s", pool, name);
	for (int i = 0; i < MAX_MEMBERS; i++) {
		c->eps[i].fd = -1;
		pthread_cond_init(&c->eps[i].qcv, NULL);
		c->eps[i].c = c;
		c->eps[i].idx = i;
	}
	rmem rm[MAX_MEMBERS];
	memset(rm, 0, sizeof(rm));
	for (int i = 0; i < MAX_MEMBERS; i++)
		rm[i].fd = -1;
	int nm = 0, err = 0, li = -1;
	ce_vol *lh = NULL;
	mb_phys mb;
	ce_repl_info lri;
	if ((err = reg_vol_open(c->export_name, &c->rd, &c->p)) != 0) {
		snprintf(msg, mlen, "%s", ce_errmsg());
		goto out;
	}
	if ((err = ce_repl_info_get(c->p, name, &lri)) != 0) {
		snprintf(msg, mlen, "%s is not a replica volume", c->export_name);
		err = -EINVAL;
		goto out;
	}
	if (pc->key == NULL && !pc->insecure) {
		snprintf(msg, mlen, "replication needs caskd --peer-key FILE (or --insecure-peers)");
		err = -EPERM;
		goto out;
	}
	memcpy(&mb, lri.rec + 256, sizeof(mb));
	memcpy(c->uuid, lri.vol_uuid, 16);
	if (mb.mb_nmembers == 0 || mb.mb_nmembers > MAX_MEMBERS) {
		snprintf(msg, mlen, "%s has no membership record", c->export_name);
		err = -EINVAL;
		goto out;
	}
	if ((err = ce_repl_open(c->p, name, &lh)) != 0) {
		snprintf(msg, mlen, "%s", ce_errmsg());
		goto out;
	}
	uint64_t self = lri.id;
	/* 1. the new epoch: the local replica promises first (replication.md 3.3 item 2) */
	ce_epoch expect = lri.promised;
	if (mode == PR_RESUME && lri.promised.node != self) {
		snprintf(msg, mlen, "controlled by %" PRIu64 ".%016" PRIx64 " at %s (a takeover happened)",
		    lri.promised.counter, lri.promised.node, lri.holder_addr);
		err = -ESTALE;
		goto out;
	}
	uint64_t ctr = MAX(MAX(lri.promised.counter, lri.last_epoch.counter), mb.mb_epoch.ep_counter);
	c->e = (ce_epoch){ ctr + 1, self };
	repl_lease_wait(c->export_name, c->e); /* a lease this caskd granted an older holder runs out first */
	if ((err = ce_repl_promise(c->p, name, c->e, pc->advertise, mode == PR_RESUME ? &expect : NULL, &lri)) != 0) {
		snprintf(msg, mlen, "controlled by %" PRIu64 ".%016" PRIx64 " at %s", lri.promised.counter,
		    lri.promised.node, lri.holder_addr);
		err = -ESTALE;
		goto out;
	}
	/* 2. prepare every member of the newest record this replica holds */
	nm = mb.mb_nmembers;
	int npromised = 0;
	char missing[1200] = "";
	for (int i = 0; i < nm; i++) {
		rmem *x = &rm[i];
		x->m = &mb.mb_members[i];
		if (x->m->mm_id == self) {
			x->local = 1;
			li = i;
			x->ri = lri;
			x->promised = 1;
			npromised++;
			continue;
		}
		char m2[300];
		char addr[65];
		snprintf(addr, sizeof(addr), "%.64s", x->m->mm_addr);
		if (peer_connect_f(addr, &x->fd, &x->features, m2, sizeof(m2)) != 0) {
			snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing), " %s (%s)", addr, m2);
			continue;
		}
		rp_attach at;
		memset(&at, 0, sizeof(at));
		memcpy(at.at_vol_uuid, c->uuid, 16);
		snprintf(at.at_pool, sizeof(at.at_pool), "%.63s", x->m->mm_pool);
		memcpy(at.at_name, name, MIN(strlen(name), sizeof(at.at_name)));
		uint8_t st[RP_STATUS_SIZE];
		rp_prepare pr;
		memset(&pr, 0, sizeof(pr));
		pr.pr_mode = (uint32_t)mode;
		pr.pr_expect_ctr = mode == PR_RESUME ? expect.counter : 0;
		pr.pr_expect_node = mode == PR_RESUME ? expect.node : 0;
		snprintf(pr.pr_addr, sizeof(pr.pr_addr), "%s", pc->advertise);
		int e2 = rpc(x->fd, RP_ATTACH, (ce_epoch){ 0, 0 }, 0, &at, sizeof(at), RP_STATUS, st, m2, sizeof(m2), addr);
		if (e2 == 0)
			e2 = rpc(x->fd, RP_PREPARE, c->e, 0, &pr, sizeof(pr), RP_PROMISE, st, m2, sizeof(m2), addr);
		if (e2 == -ESTALE) {
			refusal_where(m2, msg, mlen);
			err = -ESTALE;
			goto out;
		}
		if (e2 != 0) {
			snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing), " %s (%s)", addr, m2);
			close(x->fd);
			x->fd = -1;
			continue;
		}
		rp_status s;
		memcpy(&s, st, sizeof(s));
		x->promised = 1;
		npromised++;
		x->ri.id = s.st_id;
		x->ri.state = s.st_state;
		x->ri.last_epoch = (ce_epoch){ s.st_last_ctr, s.st_last_node };
		x->ri.applied = s.st_applied;
		x->ri.hi = s.st_hi;
		x->ri.size = s.st_size;
		memcpy(x->ri.rec + 1536, s.st_hist, 512);
		mb_phys mbx;
		memcpy(&mbx, s.st_mb, sizeof(mbx));
		int cm = ephcmp(mbx.mb_epoch, mb.mb_epoch);
		if (cm > 0 || (cm == 0 && mbx.mb_version > mb.mb_version)) {
			/* a newer record than ours: its member list must be the same set (joint changes are not built) */
			int same = mbx.mb_nmembers == mb.mb_nmembers;
			for (int k = 0; k < mb.mb_nmembers && same; k++) {
				int found = 0;
				for (int j = 0; j < mbx.mb_nmembers; j++)
					found |= mbx.mb_members[j].mm_id == mb.mb_members[k].mm_id;
				same = found;
			}
			if (!same) {
				snprintf(msg, mlen, "member %s holds a membership record with other members (not built: "
				    "reconciling across a membership change)", addr);
				err = -EINVAL;
				goto out;
			}
			/* take its member states, keep our order (x->m points into mb) */
			for (int k = 0; k < mb.mb_nmembers; k++)
				for (int j = 0; j < mbx.mb_nmembers; j++)
					if (mbx.mb_members[j].mm_id == mb.mb_members[k].mm_id) {
						mb.mb_members[k].mm_state = mbx.mb_members[j].mm_state;
						mb.mb_members[k].mm_reason = mbx.mb_members[j].mm_reason;
					}
			mb.mb_version = mbx.mb_version;
			mb.mb_epoch = mbx.mb_epoch;
			mb.mb_level = mbx.mb_level;
		}
	}
	if (li < 0) {
		snprintf(msg, mlen, "%s is not named in its own membership record", c->export_name);
		err = -EINVAL;
		goto out;
	}
	c->level = mb.mb_level;
	c->deadline_ms = mb.mb_deadline_ms ? mb.mb_deadline_ms : 5000;
	int q1 = nm / 2 + 1;
	if (npromised < q1) {
		snprintf(msg, mlen, "reconciling: %d of %d members promised (need %d); unreachable:%s", npromised, nm, q1,
		    missing);
		err = -EAGAIN;
		goto out;
	}
	/* 3. enough of I, and the reference R */
	int nin = 0, ncand = 0, ri_ = -1;
	for (int i = 0; i < nm; i++) {
		rmem *x = &rm[i];
		memcpy(x->hist, x->ri.rec + 1536, sizeof(x->hist));
		for (x->nhist = 0; x->nhist < CE_REPL_HIST && (x->hist[x->nhist].eh_epoch.ep_counter != 0); x->nhist++)
			;
		x->top = MAX(x->ri.applied, x->ri.hi);
		if (x->m->mm_state != MM_IN_SYNC)
			continue;
		nin++;
		if (!x->promised || x->ri.state != RP_COMPLETE)
			continue;
		x->exact = x->ri.hi <= x->ri.applied;
		if (!x->exact) {
			uint64_t *o, *l, top;
			size_t n;
			char m2[200];
			x->exact = member_extents(x, lh, c->e, x->ri.applied, &o, &l, &n, &top, m2, sizeof(m2)) == 0 &&
			    top >= x->top;
			free(o);
			free(l);
		}
		if (!x->exact)
			continue;
		ncand++;
		if (ri_ < 0 || ce_epoch_cmp(x->ri.last_epoch, rm[ri_].ri.last_epoch) > 0 ||
		    (ce_epoch_cmp(x->ri.last_epoch, rm[ri_].ri.last_epoch) == 0 && x->ri.applied > rm[ri_].ri.applied))
			ri_ = i;
	}
	int k = c->level == MB_ONE ? 1 : c->level == MB_QUORUM ? nm / 2 + 1 : nin;
	if (ri_ < 0 || (ncand < nin - k + 1 && !force)) {
		snprintf(msg, mlen, "reconciling: %d in-sync members can be counted, %d needed to hold every "
		    "acknowledged write; unreachable:%s%s", ncand, nin - k + 1, missing[0] ? missing : " none",
		    mode == PR_TAKEOVER && ri_ >= 0 ? " (vol takeover --force goes on with those it has, and may lose "
		    "writes only the others acknowledged)" : "");
		err = -EAGAIN;
		goto out;
	}
	if (ncand < nin - k + 1) {
		/* --force (replication.md 3.7 step 4): record which members of I were not counted */
		size_t o = (size_t)snprintf(c->forced, sizeof(c->forced), "takeover --force with %d of the %d in-sync "
		    "members needed to hold every acknowledged write; not counted:", ncand, nin - k + 1);
		for (int i = 0; i < nm && o < sizeof(c->forced); i++)
			if (rm[i].m->mm_state == MM_IN_SYNC && !rm[i].exact)
				o += (size_t)snprintf(c->forced + o, sizeof(c->forced) - o, " %s/%s", rm[i].local ? "local" :
				    rm[i].m->mm_addr, rm[i].m->mm_pool);
		log_warn("replicated volume %s: %s: writes acknowledged only by those may be lost", c->export_name,
		    c->forced);
	}
	rmem *R = &rm[ri_];
	uint64_t B = R->ri.applied;
	R->start = 1;
	/* 4. plan: who can be made R's state (their extents and R's are known) */
	int nstart = 1;
	xt *plan[MAX_MEMBERS] = { 0 };
	size_t nplan[MAX_MEMBERS] = { 0 };
	for (int i = 0; i < nm; i++) {
		rmem *q = &rm[i];
		if (q == R || !q->promised || q->m->mm_state != MM_IN_SYNC || q->ri.state != RP_COMPLETE)
			continue;
		uint64_t cp = common_point(R, q, MIN(R->top, q->top));
		uint64_t *o1 = NULL, *l1 = NULL, *o2 = NULL, *l2 = NULL, t1 = 0, t2 = 0;
		size_t n1 = 0, n2 = 0;
		char m2[300];
		int ok = member_extents(R, lh, c->e, MIN(cp, q->ri.applied), &o1, &l1, &n1, &t1, m2, sizeof(m2)) == 0 &&
		    t1 >= R->top;
		if (ok && cp < q->top)
			ok = member_extents(q, lh, c->e, cp, &o2, &l2, &n2, &t2, m2, sizeof(m2)) == 0 && t2 >= q->top;
		if (ok && q->ri.size != R->ri.size) {
			/* a resize that reached only one of them (never answered): a tail sync copies bytes, not sizes */
			snprintf(m2, sizeof(m2), "its size %" PRIu64 " is not the reference's %" PRIu64, q->ri.size, R->ri.size);
			ok = 0;
		}
		if (ok) {
			xt *xs = xmalloc((n1 + n2 + 1) * sizeof(xt));
			size_t nx = 0;
			for (size_t j = 0; j < n1; j++)
				xs[nx++] = (xt){ o1[j], l1[j] };
			for (size_t j = 0; j < n2; j++)
				xs[nx++] = (xt){ o2[j], l2[j] };
			qsort(xs, nx, sizeof(xt), xt_cmp);
			size_t w = 0;
			for (size_t j = 0; j < nx; j++) {
				if (w > 0 && xs[j].off <= xs[w - 1].off + xs[w - 1].len) {
					uint64_t end = MAX(xs[w - 1].off + xs[w - 1].len, xs[j].off + xs[j].len);
					xs[w - 1].len = end - xs[w - 1].off;
				} else {
					xs[w++] = xs[j];
				}
			}
			plan[i] = xs;
			nplan[i] = w;
			q->start = 1;
			q->synced = w > 0 || q->ri.applied != B;
			nstart++;
		} else {
			log_warn("replicated volume %s: member %s/%s cannot be made the reference's state here (%s): "
			    "degraded until a rebuild", c->export_name, q->local ? "local" : q->m->mm_addr, q->m->mm_pool, m2);
		}
		free(o1);
		free(l1);
		free(o2);
		free(l2);
	}
	int kstart = c->level == MB_ONE ? 1 : c->level == MB_QUORUM ? nm / 2 + 1 : 1;
	if (force)
		kstart = 1; /* --force starts with who can be started (step 8); below k it serves no write until a rebuild */
	if (nstart < kstart) {
		snprintf(msg, mlen, "reconciling: only %d members can hold the newest state (seq %" PRIu64 "), %d needed",
		    nstart, B, kstart);
		err = -EAGAIN;
		goto plan_out;
	}
	if (force && !rm[li].start) {
		/* an epoch without the local replica could serve nothing (reads come from it) nor be rebuilt from here */
		snprintf(msg, mlen, "reconciling: takeover --force needs the local replica among the members it starts, "
		    "and it cannot be made the reference's state (see the log)");
		err = -EAGAIN;
		goto plan_out;
	}
	/* 5. tail syncs (each member durably `rebuilding` before its first byte changes) */
	for (int i = 0; i < nm; i++) {
		rmem *q = &rm[i];
		if (!q->start || q == R || !q->synced)
			continue;
		char m2[300];
		int e2 = tail_sync(R, q, c, lh, c->e, plan[i], nplan[i], m2, sizeof(m2));
		if (e2 != 0) {
			log_warn("replicated volume %s: tail sync of %s/%s failed: %s", c->export_name,
			    q->local ? "local" : q->m->mm_addr, q->m->mm_pool, m2);
			if (e2 == -ESTALE) {
				snprintf(msg, mlen, "%s", m2);
				err = -ESTALE;
				goto plan_out;
			}
			q->start = 0;
			nstart--;
			continue;
		}
		log_info("replicated volume %s: %s/%s brought to seq %" PRIu64 " (%zu ranges copied from %s/%s)",
		    c->export_name, q->local ? "local" : q->m->mm_addr, q->m->mm_pool, B, nplan[i],
		    R->local ? "local" : R->m->mm_addr, R->m->mm_pool);
	}
	if (nstart < kstart) {
		snprintf(msg, mlen, "reconciling: tail syncs failed; %d members can start, %d needed", nstart, kstart);
		err = -EAGAIN;
		goto plan_out;
	}
	if (!R->local && R->fd < 0) {
		/* its connection failed during the plan or a tail sync (rm_rpc_err): it cannot be started */
		snprintf(msg, mlen, "reconciling: the reference %s/%s stopped answering", R->m->mm_addr, R->m->mm_pool);
		err = -EAGAIN;
		goto plan_out;
	}
	/* 6. the controller's members: local first (eps[0]), then the others in record order */
	int order[MAX_MEMBERS], no = 0;
	order[no++] = li;
	for (int i = 0; i < nm; i++)
		if (i != li)
			order[no++] = i;
	c->n = nm;
	for (int j = 0; j < nm; j++) {
		rmem *x = &rm[order[j]];
		ep *e = &c->eps[j];
		e->local = x->local;
		e->id = x->m->mm_id;
		e->pool_guid = x->m->mm_pool_guid;
		snprintf(e->addr, sizeof(e->addr), "%.63s", x->m->mm_addr);
		snprintf(e->pool, sizeof(e->pool), "%.63s", x->m->mm_pool);
		e->in_sync = x->start;
		e->failed = !x->start;
		e->reason = x->start ? 0 : x->m->mm_state == MM_IN_SYNC ? 8 : x->m->mm_reason;
		e->applied = e->durable = e->sent = x->start ? B : 0;
		if (!x->local) {
			e->fd = x->fd;
			e->features = x->features;
			x->fd = -1;
		}
	}
	c->next_seq = c->acked_max = c->durable_max = B;
	mb_phys nmb;
	mb_build(c, &nmb, mb.mb_version + 1, 0);
	for (int j = 0; j < nm; j++) {
		mm_phys *m = &nmb.mb_members[j];
		const rmem *x = &rm[order[j]];
		if (!x->start) {
			m->mm_state = x->m->mm_state == MM_IN_SYNC ? MM_DEGRADED : x->m->mm_state;
			m->mm_reason = x->m->mm_state == MM_IN_SYNC ? 8 : x->m->mm_reason; /* not reconciled */
		}
		m->mm_since_seq = x->start ? B : x->m->mm_since_seq;
	}
	c->mb = nmb;
	/* 7. START_EPOCH on the chosen, MB_COMMIT to the rest that promised; a commit quorum must hold it */
	int acks = 0, started = 0;
	for (int j = 0; j < nm; j++) {
		ep *e = &c->eps[j];
		rmem *x = &rm[order[j]];
		char m2[300];
		int e2;
		if (!x->promised)
			continue;
		if (x->start) {
			if (e->local) {
				e2 = ce_repl_start_epoch(c->p, name, c->e, B, &nmb);
				if (e2 != 0)
					snprintf(m2, sizeof(m2), "%s", ce_errmsg());
			} else {
				rp_start_epoch se;
				memset(&se, 0, sizeof(se));
				memcpy(se.se_mb, &nmb, sizeof(nmb));
				se.se_flags = x->synced ? 1 : 0;
				uint8_t st[RP_STATUS_SIZE];
				e2 = rpc(e->fd, RP_START_EPOCH, c->e, B, &se, sizeof(se), RP_EPOCH_STARTED, st, m2, sizeof(m2),
				    e->addr);
			}
		} else if (e->local) {
			e2 = ce_repl_membership(c->p, name, c->e, &nmb);
			if (e2 != 0)
				snprintf(m2, sizeof(m2), "%s", ce_errmsg());
		} else {
			uint8_t st[RP_STATUS_SIZE];
			e2 = rpc(e->fd, RP_MB_COMMIT, c->e, 0, &nmb, sizeof(nmb), RP_MB_ACK, st, m2, sizeof(m2), e->addr);
		}
		if (e2 == -ESTALE) {
			snprintf(msg, mlen, "%s", m2);
			err = -ESTALE;
			goto plan_out;
		}
		if (e2 != 0) {
			log_warn("replicated volume %s: member %s/%s: %s", c->export_name, e->local ? "local" : e->addr,
			    e->pool, m2);
			if (x->start) {
				/* the record committed names it IN_SYNC: it stays in I, failed, and the maintenance
				 * thread ejects it with a record (invariant 3) */
				e->failed = 1;
				e->reason = 8;
			}
			continue;
		}
		acks++;
		started += x->start;
		e->mb_acked = nmb.mb_version;
	}
	if (acks < (nm + 1) / 2 || started < kstart || (force && (!c->eps[0].in_sync || c->eps[0].failed))) {
		snprintf(msg, mlen, "reconciling: the new epoch's membership reached %d members (%d needed), %d started%s",
		    acks, (nm + 1) / 2, started, force && (!c->eps[0].in_sync || c->eps[0].failed) ? "; takeover "
		    "--force needs the local replica started" : "");
		err = -EAGAIN;
		goto plan_out;
	}
	/* 8. serve */
	c->eps[0].lh = lh;
	lh = NULL;
	for (int j = 1; j < nm; j++) {
		ep *e = &c->eps[j];
		if (e->fd >= 0 && (!e->in_sync || e->failed)) {
			close(e->fd); /* a member left out: not sent anything (it rejoins by a rebuild) */
			e->fd = -1;
		}
		if (e->fd >= 0) {
			struct timeval tv = { 0, 0 };
			setsockopt(e->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			e->rxbuf = xmalloc(RP_MAX_PAYLOAD + 64);
		}
	}
	(void)ce_repl_set_flags(c->p, name, RP_CONTROLLER_HERE, 0);
	c->vsize = R->ri.size; /* every started member's (step 4) */
	uint64_t t = now_ns();
	for (int j = 0; j < nm; j++) {
		c->eps[j].progress_ns = t;
		if (c->eps[j].in_sync && !c->eps[j].failed)
			ep_start_threads(&c->eps[j]);
	}
	pthread_create(&c->mt, NULL, maint_thread, c);
	lease_thread_start(c);
	pthread_mutex_lock(&ctrls_mu);
	c->next = ctrls;
	ctrls = c;
	pthread_mutex_unlock(&ctrls_mu);
	log_info("replicated volume %s: %s, serving, epoch %" PRIu64 ".%016" PRIx64 " from seq %" PRIu64
	    " (reference %s/%s), %d of %d members in sync", c->export_name, mode == PR_RESUME ? "resumed" : "taken over",
	    c->e.counter, c->e.node, B, R->local ? "local" : R->m->mm_addr, R->m->mm_pool, started, nm);
	for (int i = 0; i < MAX_MEMBERS; i++)
		free(plan[i]);
	return 0;
plan_out:
	for (int i = 0; i < MAX_MEMBERS; i++)
		free(plan[i]);
out:
	for (int i = 0; i < MAX_MEMBERS; i++) {
		if (rm[i].fd >= 0)
			close(rm[i].fd);
		if (c->eps[i].fd >= 0)
			close(c->eps[i].fd);
		pthread_cond_destroy(&c->eps[i].qcv);
	}
	if (lh != NULL)
		ce_vol_close(lh);
	if (c->rd != NULL)
		reg_vol_close(c->rd, c->p);
	if (err == -ESTALE && mode == PR_RESUME)
		(void)reg_with_pool(pool, clear_here, (void *)name);
	free(c);
	return err;
}

/* ---- `vol takeover`, and the resume of controllers at start ---- */

typedef struct resume {
	char pool[64], name[256], export_name[330];
	pthread_t th;
	char state[1700];    /* resume.mu: what `vol status` says meanwhile */
	int done;
	struct resume *next;
} resume;

static pthread_mutex_t resume_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t resume_cv = PTHREAD_COND_INITIALIZER;
static resume *resumes;
static int resume_stop;

static int
ctrl_exists(const char *export_name)
{
	pthread_mutex_lock(&ctrls_mu);
	ctrl *c = ctrls;
	while (c != NULL && strcmp(c->export_name, export_name) != 0)
		c = c->next;
	pthread_mutex_unlock(&ctrls_mu);
	return c != NULL;
}

int
repl_ctrl_controls(const char *export_name)
{
	return ctrl_exists(export_name);
}

int
repl_ctrl_takeover(const char *pool, const char *name, int force)
{
	char export_name[330], msg[1600] = "";
	snprintf(export_name, sizeof(export_name), "%s/%s", pool, name);
	/* a controller here that a newer one fenced goes first, once nothing has it open */
	pthread_mutex_lock(&ctrls_mu);
	ctrl **pp = &ctrls, *old = NULL;
	while (*pp != NULL && strcmp((*pp)->export_name, export_name) != 0)
		pp = &(*pp)->next;
	if (*pp != NULL) {
		pthread_mutex_lock(&(*pp)->mu);
		int fenced = (*pp)->fenced, opens = (*pp)->opens;
		pthread_mutex_unlock(&(*pp)->mu);
		if (!fenced || opens > 0) {
			pthread_mutex_unlock(&ctrls_mu);
			return err_setc(CE_E_INVALID_ARGUMENT, -EEXIST, "%s: %s", export_name, !fenced ?
			    "this caskd controls it already" : "its fenced controller here is still open by clients "
			    "(disconnect them first)");
		}
		old = *pp;
		*pp = old->next;
	}
	pthread_mutex_unlock(&ctrls_mu);
	if (old != NULL)
		ctrl_free(old);
	pthread_mutex_lock(&resume_mu);
	for (resume *r = resumes; r != NULL; r = r->next)
		if (!r->done && strcmp(r->export_name, export_name) == 0) {
			pthread_mutex_unlock(&resume_mu);
			return err_setc(CE_E_INVALID_ARGUMENT, -EBUSY, "%s: this caskd is resuming it already (%s)",
			    export_name, r->state);
		}
	pthread_mutex_unlock(&resume_mu);
	int err = reconcile(pool, name, PR_TAKEOVER, force, msg, sizeof(msg));
	if (err == 0)
		return 0;
	int code = err == -ESTALE ? CE_E_PEER_REFUSED : err == -EAGAIN ? CE_E_PEER_UNREACHABLE :
	    err == -EINVAL ? CE_E_NOT_REPLICATED : err == -EPERM ? CE_E_REPLICATION_INSECURE : ce_errcode_of(err);
	return err_setc(code, err, "takeover of %s: %s", export_name, msg);
}

static void *
resume_thread(void *arg)
{
	resume *r = arg;
	for (int attempt = 0;; attempt++) {
		char msg[1600] = "";
		int err = reconcile(r->pool, r->name, PR_RESUME, 0, msg, sizeof(msg));
		pthread_mutex_lock(&resume_mu);
		if (err == 0) {
			r->done = 1;
			pthread_mutex_unlock(&resume_mu);
			return NULL;
		}
		snprintf(r->state, sizeof(r->state), "%s%s", err == -EAGAIN ? "" : err == -ESTALE ? "moved: " :
		    "stopped: ", msg);
		if (attempt == 0 || err != -EAGAIN)
			log_warn("replicated volume %s: %s", r->export_name, r->state);
		if (err != -EAGAIN) {
			/* -ESTALE: a takeover happened; the local replica serves the new controller (rule 7) */
			r->done = 1;
			pthread_mutex_unlock(&resume_mu);
			return NULL;
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		while (!resume_stop && pthread_cond_timedwait(&resume_cv, &resume_mu, &ts) == 0)
			;
		int stop = resume_stop;
		pthread_mutex_unlock(&resume_mu);
		if (stop)
			return NULL;
	}
}

typedef struct scan_args {
	const char *pool;
} scan_args;

static int
scan_pool(ce_pool *p, void *arg)
{
	scan_args *a = arg;
	ce_vol_info *vs;
	size_t n;
	if (ce_vol_list(p, &vs, &n) != 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		ce_repl_info ri;
		if (strchr(vs[i].name, '@') != NULL || ce_repl_info_get(p, vs[i].name, &ri) != 0 ||
		    !(ri.flags & RP_CONTROLLER_HERE))
			continue;
		char exp[330];
		snprintf(exp, sizeof(exp), "%s/%s", a->pool, vs[i].name);
		int busy = ctrl_exists(exp);
		pthread_mutex_lock(&resume_mu);
		for (resume *q = resumes; q != NULL && !busy; q = q->next)
			busy = !q->done && strcmp(q->export_name, exp) == 0;
		pthread_mutex_unlock(&resume_mu);
		if (busy)
			continue;
		resume *r = xcalloc(1, sizeof(*r));
		snprintf(r->pool, sizeof(r->pool), "%s", a->pool);
		snprintf(r->name, sizeof(r->name), "%s", vs[i].name);
		snprintf(r->export_name, sizeof(r->export_name), "%s/%s", a->pool, vs[i].name);
		snprintf(r->state, sizeof(r->state), "reconciling: starting");
		pthread_mutex_lock(&resume_mu);
		r->next = resumes;
		resumes = r;
		if (pthread_create(&r->th, NULL, resume_thread, r) != 0) {
			resumes = r->next;
			free(r);
		}
		pthread_mutex_unlock(&resume_mu);
		log_info("replicated volume %s/%s: this caskd controlled it: reconciling before it serves writes",
		    a->pool, vs[i].name);
	}
	free(vs);
	return 0;
}

void
repl_ctrl_resume_all(void)
{
	char **names;
	size_t n;
	if (reg_pool_names(&names, &n) != 0)
		return;
	for (size_t i = 0; i < n; i++) {
		scan_args a = { names[i] };
		(void)reg_with_pool(names[i], scan_pool, &a);
		free(names[i]);
	}
	free(names);
}

void
repl_ctrl_resume_pool(const char *pool)
{
	scan_args a = { pool };
	(void)reg_with_pool(pool, scan_pool, &a);
}

static void
resume_stop_all(void)
{
	pthread_mutex_lock(&resume_mu);
	resume_stop = 1;
	pthread_cond_broadcast(&resume_cv);
	resume *list = resumes;
	resumes = NULL;
	pthread_mutex_unlock(&resume_mu);
	while (list != NULL) {
		resume *r = list;
		list = r->next;
		pthread_join(r->th, NULL);
		free(r);
	}
}

/* vol.status of a volume this caskd does not control: resuming, or a replica (and whose). */
static int
status_other(const char *export_name, json_object *res)
{
	pthread_mutex_lock(&resume_mu);
	for (resume *r = resumes; r != NULL; r = r->next)
		if (strcmp(r->export_name, export_name) == 0 && (!r->done || strncmp(r->state, "moved", 5) == 0 ||
		    strncmp(r->state, "stopped", 7) == 0)) {
			json_object_object_add(res, "state", json_object_new_string(r->done ? strncmp(r->state, "moved", 5)
			    == 0 ? "moved" : "stopped" : "reconciling"));
			json_object_object_add(res, "message", json_object_new_string(r->state));
			json_object_object_add(res, "fenced_by", json_object_new_string(r->state));
			json_object_object_add(res, "replicas", json_object_new_array());
			pthread_mutex_unlock(&resume_mu);
			return 0;
		}
	pthread_mutex_unlock(&resume_mu);
	return -ENOENT;
}

/* ---- sequenced snapshots (rule 6) ---- */

/*
 * One sequenced operation that is not a write (invariant 8): a snapshot
 * create / destroy / rename, or (feature VOLOP) a rollback or a resize of
 * the volume. Rollback and resize are answered only when k members have
 * them durable (each replica commits them with its record before it
 * reports them done), so they survive a crash and a reconciliation.
 */
/*
 * Whether a rebuilding member has not been sent all its rebuild data yet
 * (ctrl_rb_copied). A snapshot waits for that: then every byte the target
 * lacked is ahead of the snapshot in its queue and it takes the snapshot on
 * content equal to the others' (replication.md 3.6 item 5, as built). c->mu held.
 */
#define SNAP_RB_WAIT_MS 60000 /* the longest a snapshot create waits for rb_copying */
static int
rb_copying(const ctrl *c)
{
	for (int i = 0; i < c->n; i++) {
		const ep *e = &c->eps[i];
		if (e->rebuilding && !e->failed && !e->removed && !e->rb_copied)
			return 1;
	}
	return 0;
}

/*
 * A rebuilding member's outcome of snapshot operation seq (have 0: it was
 * sent; 1: its OP_DONE said v; 2: the in-sync members' outcome is v; 4:
 * theirs is not known, so it fails). Once
 * both are known they must agree, else its copy differs (it still held a
 * snapshot the others destroyed while it was out, say) and its rebuild
 * fails; ctrl_rb_join waits until none is left. c->mu held.
 */
static void
rb_sn_note(ep *e, uint64_t seq, int have, int v)
{
	int i = 0;
	while (i < e->rb_sn_n && e->rb_sn[i].seq != seq)
		i++;
	if (i == e->rb_sn_n) {
		if (have != 0 || e->failed)
			return; /* not one it was sent (or counted for) */
		if (e->rb_sn_n == (int)(sizeof(e->rb_sn) / sizeof(e->rb_sn[0]))) {
			ep_fail(e, 2, "too many snapshot operations not reported done during its rebuild");
			return;
		}
		e->rb_sn[e->rb_sn_n++] = (struct rbsn){ seq, 0, 0, 0 };
		return;
	}
	struct rbsn *x = &e->rb_sn[i];
	if (have == 4) { /* the in-sync members' outcome is not known (seq_op gave up): nothing to compare with */
		ep_fail(e, 2, "the in-sync members' outcome of a snapshot operation it took is not known");
		e->rb_sn[i] = e->rb_sn[--e->rb_sn_n];
		return;
	}
	if (have == 1)
		x->got = v;
	else
		x->want = v;
	x->have |= have;
	if (x->have != 3)
		return;
	if (x->got != x->want && !e->failed) {
		char why[200];
		snprintf(why, sizeof(why), "the snapshot operation at seq %" PRIu64 " ended otherwise on it (%s) than on "
		    "the in-sync members (%s): its rebuild fails", seq, x->got ? strerror(-x->got) : "done",
		    x->want ? strerror(-x->want) : "done");
		ep_fail(e, 2, why);
	}
	e->rb_sn[i] = e->rb_sn[--e->rb_sn_n];
}

static int
seq_op(const char *export_name, int op, const char *snap, const char *newname, uint64_t size, unsigned flags)
{
	pthread_mutex_lock(&ctrls_mu);
	ctrl *c = ctrls;
	while (c != NULL && strcmp(c->export_name, export_name) != 0)
		c = c->next;
	pthread_mutex_unlock(&ctrls_mu);
	if (c == NULL)
		return -ENOENT;
	int volop = op == CE_REPL_ROLLBACK || op == CE_REPL_RESIZE;
	const char *what = op == CE_REPL_ROLLBACK ? "rollback" : op == CE_REPL_RESIZE ? "resize" : "snapshot";
	if ((snap != NULL && strlen(snap) >= 256) || (newname != NULL && strlen(newname) >= 256))
		return err_setc(CE_E_INVALID_ARGUMENT, -EINVAL, "snapshot name too long");
	pthread_mutex_lock(&c->mu);
	/* one at a time; a snapshot also waits until every rebuild copied everything (rb_copying), at most
	 * SNAP_RB_WAIT_MS: a throttled rebuild of a large volume copies for hours */
	uint64_t rb_give_up = now_ns() + SNAP_RB_WAIT_MS * 1000000ull;
	while ((c->snap_seq != 0 || (op == CE_REPL_SNAP_CREATE && rb_copying(c))) && !c->fenced && !c->stopping) {
		if (c->snap_seq == 0 && now_ns() > rb_give_up) {
			pthread_mutex_unlock(&c->mu);
			return err_setc(CE_E_BUSY, -EBUSY, "%s@%s: a rebuild is still copying to a replica after %d s (a "
			    "snapshot is taken once it has queued all its data): try again later (cask job list)",
			    export_name, snap, SNAP_RB_WAIT_MS / 1000);
		}
		util_cond_wait_ms(&c->cv, &c->mu, 100);
	}
	if (c->fenced || c->stopping) {
		pthread_mutex_unlock(&c->mu);
		return err_setc(CE_E_IO_ERROR, -EIO, "the replicated volume %s is fenced: a newer controller took it "
		    "over", export_name);
	}
	if (volop) {
		/*
		 * A rebuilding member copies ranges while it takes the live stream: a
		 * rollback or resize under it would leave its copy neither old nor new.
		 * A member that did not negotiate VOLOP could not take it.
		 */
		for (int i = 0; i < c->n; i++) {
			const ep *e = &c->eps[i];
			int busy = c->rb_busy || (e->rebuilding && !e->failed && !e->removed);
			int old = !e->local && !e->removed && e->in_sync && !e->failed && !(e->features & RP_FEAT_VOLOP);
			if (!busy && !old)
				continue;
			pthread_mutex_unlock(&c->mu);
			if (busy)
				return err_setc(CE_E_BUSY, -EBUSY, "%s: %s of a replicated volume refused while a rebuild "
				    "runs (wait for it: cask vol status)", export_name, what);
			return err_setc(CE_E_NOT_SUPPORTED, -ENOTSUP, "%s: %s of a replicated volume refused: the caskd of "
			    "replica %s/%s does not take it (protocol feature VOLOP): upgrade it", export_name, what,
			    e->addr, e->pool);
		}
	}
	/* every write answered before this call has a lower seq: the operation follows it (rule 6) */
	cop *o = xcalloc(1, sizeof(*o));
	o->seq = ++c->next_seq;
	o->kind = Q_SNAP;
	o->snap_op = op;
	o->vsize = size;
	o->vflags = flags;
	o->fua = volop; /* the local replica makes it durable (local_thread) like a FUA write */
	o->data = xcalloc(1, 512);
	snprintf((char *)o->data, 256, "%s", snap != NULL ? snap : "");
	if (newname != NULL)
		snprintf((char *)o->data + 256, 256, "%s", newname);
	c->snap_seq = o->seq;
	uint64_t vsize0 = c->vsize;
	if (op == CE_REPL_RESIZE && c->vsize != 0)
		c->vsize = MIN(c->vsize, size); /* a write assigned after the shrink is checked against it */
	for (int i = 0; i < c->n; i++) {
		c->eps[i].snap_done = 0;
		c->eps[i].snap_err = 0;
	}
	for (int i = 0; i < c->n; i++) {
		ep *e = &c->eps[i];
		if (!gets_live(e)) /* a rebuilding member too: it takes every seq (its outcome is not counted) */
			continue;
		q_push_op(e, Q_SNAP, o);
		if (e->rebuilding)
			rb_sn_note(e, o->seq, 0, 0); /* compared when both outcomes are known */
	}
	op_drop_unused(o);
	uint64_t seq = c->snap_seq;
	int result = 0, ok = 0;
	/* a member that takes longer misses its deadline and is ejected; then the rest answer */
	uint64_t give_up = now_ns() + 4ull * c->deadline_ms * 1000000ull;
	for (;;) {
		int done = 0, in = 0;
		for (int i = 0; i < c->n; i++) {
			const ep *e = &c->eps[i];
			if (e->in_sync && !e->failed) {
				in++;
				done += e->snap_done;
			}
		}
		if (c->fenced || c->stopping)
			break;
		/* k members of I took it (or failed it alike); a failed member stops counting and is ejected */
		if (done >= k_of(c) && acked(c, seq, volop)) {
			ok = 1;
			break;
		}
		if (now_ns() > give_up)
			break;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&c->cv, &c->mu, &ts);
	}
	if (ok) {
		/* the outcome: the local replica's, else the first member's that took it */
		const ep *l = &c->eps[0];
		int have = 0;
		if (l->in_sync && !l->failed && l->snap_done) {
			result = l->snap_err;
			have = 1;
		}
		for (int i = 0; i < c->n && !have; i++)
			if (c->eps[i].in_sync && !c->eps[i].failed && c->eps[i].snap_done) {
				result = c->eps[i].snap_err;
				have = 1;
			}
		/* a member that did otherwise differs from the rest: it leaves I (io-error) */
		for (int i = 0; i < c->n; i++) {
			ep *e = &c->eps[i];
			if (e->in_sync && !e->failed && e->snap_done && e->snap_err != result)
				ep_fail(e, 2, "a sequenced operation ended otherwise than on the others");
		}
		if (result == 0)
			c->acked_max = MAX(c->acked_max, seq);
		if (result == 0 && volop)
			c->durable_max = MAX(c->durable_max, seq);
		if (op == CE_REPL_RESIZE && c->vsize != 0)
			c->vsize = result == 0 ? size : vsize0; /* not known when !ok: the smaller one stays */
	}
	for (int i = 0; i < c->n; i++) { /* a rebuilding member's outcome, now or when its OP_DONE comes */
		ep *e = &c->eps[i];
		if (!e->rebuilding || e->failed)
			continue;
		rb_sn_note(e, seq, ok ? 2 : 4, result);
	}
	c->snap_seq = 0;
	pthread_cond_broadcast(&c->cv);
	int fenced = c->fenced;
	pthread_mutex_unlock(&c->mu);
	char obj[600];
	if (op == CE_REPL_RESIZE)
		snprintf(obj, sizeof(obj), "%s: resize to %" PRIu64, export_name, size);
	else
		snprintf(obj, sizeof(obj), "%s%s%s", export_name, op == CE_REPL_ROLLBACK ? ": rollback to @" : "@",
		    snap);
	if (!ok)
		return err_setc(CE_E_IO_ERROR, -EIO, "%s: %s", obj, fenced ?
		    "the replicated volume is fenced: a newer controller took it over" : c->stopping ?
		    "the controller stopped" : "too few in-sync replicas took it in time (it may have happened on some)");
	if (result != 0) {
		int code = result == -EEXIST ? (op == CE_REPL_ROLLBACK ? CE_E_HAS_NEWER_SNAPSHOTS : CE_E_SNAPSHOT_EXISTS) :
		    result == -ENOENT ? CE_E_SNAPSHOT_NOT_FOUND : ce_errcode_of(result);
		return err_setc(code, result, "%s: %s (on every in-sync replica, at seq %" PRIu64 ")%s", obj,
		    strerror(-result), seq, op == CE_REPL_ROLLBACK && result == -EEXIST ?
		    ": it has newer snapshots (destroy them, or roll back with -r)" : op == CE_REPL_RESIZE &&
		    result == -EINVAL ? ": a size that is a multiple of the block size; a smaller one needs --shrink" : "");
	}
	log_info("replicated volume %s: %s at seq %" PRIu64 " on every in-sync replica", obj,
	    op == CE_REPL_SNAP_CREATE ? "create" : op == CE_REPL_SNAP_DESTROY ? "destroy" : op == CE_REPL_SNAP_RENAME ?
	    "rename" : "done", seq);
	return 0;
}

int
repl_ctrl_snap(const char *export_name, int op, const char *snap, const char *newname)
{
	return seq_op(export_name, op, snap, newname, 0, 0);
}

int
repl_ctrl_rollback(const char *export_name, const char *snap, unsigned flags)
{
	return seq_op(export_name, CE_REPL_ROLLBACK, snap, NULL, 0, flags);
}

int
repl_ctrl_resize(const char *export_name, uint64_t size, unsigned flags)
{
	return seq_op(export_name, CE_REPL_RESIZE, NULL, NULL, size, flags);
}

/* ---- status ---- */

int
repl_ctrl_status(const char *export_name, json_object *res)
{
	pthread_mutex_lock(&ctrls_mu);
	ctrl *c = ctrls;
	while (c != NULL && strcmp(c->export_name, export_name) != 0)
		c = c->next;
	if (c == NULL) {
		pthread_mutex_unlock(&ctrls_mu);
		return status_other(export_name, res);
	}
	pthread_mutex_lock(&c->mu);
	char ep_s[64];
	snprintf(ep_s, sizeof(ep_s), "%" PRIu64 ".%016" PRIx64, c->e.counter, c->e.node);
	json_object_object_add(res, "epoch", json_object_new_string(ep_s));
	json_object_object_add(res, "epoch_counter", json_object_new_uint64(c->e.counter));
	json_object_object_add(res, "epoch_node", hex_guid_json(c->e.node));
	json_object_object_add(res, "consistency", json_object_new_string(c->level == MB_ONE ? "one" :
	    c->level == MB_QUORUM ? "quorum" : "all"));
	int in = 0;
	for (int i = 0; i < c->n; i++)
		in += c->eps[i].in_sync && !c->eps[i].failed;
	int ls = c->fenced ? LEASE_LAPSED : lease_state(c, now_ns());
	json_object_object_add(res, "state", json_object_new_string(c->fenced ? "fenced" : ls == LEASE_LAPSED ?
	    "no-lease" : in >= k_of(c) ? "serving" : "suspended"));
	if (c->fenced)
		json_object_object_add(res, "fenced_by", json_object_new_string(c->fenced_by));
	else
		lease_status(c, ls, res);
	if (c->forced[0])
		json_object_object_add(res, "forced", json_object_new_string(c->forced));
	json_object_object_add(res, "seq", json_object_new_uint64(c->next_seq));
	json_object_object_add(res, "membership_version", json_object_new_uint64(c->mb.mb_version));
	char u[33];
	for (int i = 0; i < 16; i++)
		snprintf(u + 2 * i, 3, "%02x", c->uuid[i]);
	json_object_object_add(res, "uuid", json_object_new_string(u));
	json_object_object_add(res, "deadline_ms", json_object_new_uint64(c->deadline_ms));
	json_object_object_add(res, "rebuild_rate", json_object_new_uint64(c->rebuild_rate));
	json_object *bo = json_object_new_object(); /* invariant 11 */
	json_object_object_add(bo, "max_bytes", json_object_new_uint64(bl_max_bytes));
	json_object_object_add(bo, "max_ops", json_object_new_uint64(bl_max_ops));
	json_object_object_add(bo, "waiting", json_object_new_uint64(c->bl_waiting));
	json_object_object_add(bo, "waited", json_object_new_uint64(c->bl_waits));
	json_object_object_add(bo, "ejected", json_object_new_uint64(c->bl_ejects));
	json_object_object_add(res, "backlog", bo);
	json_object *arr = json_object_new_array();
	for (int i = 0; i < c->n; i++) {
		const ep *e = &c->eps[i];
		if (e->removed)
			continue;
		json_object *o = json_object_new_object();
		json_object_object_add(o, "address", json_object_new_string(e->local ? "local" : e->addr));
		json_object_object_add(o, "pool", json_object_new_string(e->pool));
		json_object_object_add(o, "id", hex_guid_json(e->id));
		json_object_object_add(o, "local", json_object_new_boolean(e->local));
		json_object_object_add(o, "state", json_object_new_string(e->in_sync ? "in-sync" :
		    e->rebuilding && !e->failed ? "rebuilding" : "degraded"));
		char rb[32];
		json_object_object_add(o, "reason", json_object_new_string(e->failed || (!e->in_sync && !e->rebuilding) ?
		    reason_name(e->reason, rb, sizeof(rb)) : ""));
		json_object_object_add(o, "link", json_object_new_string(e->failed ? "offline" : "up"));
		json_object_object_add(o, "acked_seq", json_object_new_uint64(e->applied));
		json_object_object_add(o, "durable_seq", json_object_new_uint64(e->durable));
		json_object_object_add(o, "lag_ops", json_object_new_uint64(c->next_seq > e->applied && !e->failed ?
		    c->next_seq - e->applied : 0));
		json_object_object_add(o, "backlog_bytes", json_object_new_uint64(e->bl_bytes));
		json_object_object_add(o, "backlog_ops", json_object_new_uint64(e->bl_n));
		json_object_object_add(o, "backlog_peak_bytes", json_object_new_uint64(e->bl_peak_bytes));
		json_object_object_add(o, "backlog_peak_ops", json_object_new_uint64(e->bl_peak_ops));
		if (e->rbp.job != 0)
			rb_status_json(&e->rbp, o);
		json_object_array_add(arr, o);
	}
	json_object_object_add(res, "replicas", arr);
	pthread_mutex_unlock(&c->mu);
	pthread_mutex_unlock(&ctrls_mu);
	return 0;
}

void
repl_ctrl_shutdown(void)
{
	resume_stop_all();
	for (;;) {
		pthread_mutex_lock(&ctrls_mu);
		ctrl *c = ctrls;
		if (c != NULL)
			ctrls = c->next;
		pthread_mutex_unlock(&ctrls_mu);
		if (c == NULL)
			return;
		/* a clean stop: what was applied becomes durable everywhere it can */
		pthread_mutex_lock(&c->mu);
		if (!c->fenced) {
			for (int i = 0; i < c->n; i++) {
				ep *e = &c->eps[i];
				if (e->in_sync && !e->failed) {
					qitem *it = xcalloc(1, sizeof(*it));
					it->kind = Q_FLUSH;
					it->upto = c->next_seq;
					q_push(e, it);
				}
			}
			uint64_t deadline = now_ns() + 2000000000ull;
			while (!acked(c, c->next_seq, 1) && now_ns() < deadline && !c->fenced) {
				struct timespec ts;
				clock_gettime(CLOCK_REALTIME, &ts);
				ts.tv_sec += 1;
				pthread_cond_timedwait(&c->cv, &c->mu, &ts);
			}
		}
		pthread_mutex_unlock(&c->mu);
		ctrl_free(c);
	}
}

/*
 * ---- rebuild hooks (docs/replication.md section 12) ----
 *
 * The rebuild job (rebuild.c) drives a target member through these; they
 * are the only places here that know a member can be write-only: a
 * rebuilding member gets the live stream (gets_live) but is never
 * counted for acknowledgements, reads or (D), and becomes a member of I
 * only through ctrl_rb_join, a membership change committed like an
 * ejection.
 */

ctrl *
ctrl_rb_claim(const char *export_name, int *err)
{
	pthread_mutex_lock(&ctrls_mu);
	ctrl *c = ctrls;
	while (c != NULL && strcmp(c->export_name, export_name) != 0)
		c = c->next;
	*err = c == NULL ? -ENOENT : 0;
	if (c != NULL) {
		pthread_mutex_lock(&c->mu);
		if (c->rb_busy || c->fenced || c->stopping)
			*err = c->rb_busy ? -EBUSY : -ESTALE;
		else
			c->rb_busy = 1;
		pthread_mutex_unlock(&c->mu);
	}
	pthread_mutex_unlock(&ctrls_mu);
	return *err ? NULL : c;
}

void
ctrl_rb_release(ctrl *c)
{
	pthread_mutex_lock(&c->mu);
	c->rb_busy = 0;
	pthread_mutex_unlock(&c->mu);
}

const char *
ctrl_rb_name(const ctrl *c)
{
	return c->export_name;
}

/* "HOST:PORT/POOL" -> the member's slot; -ENOENT. */
int
ctrl_rb_member(ctrl *c, const char *replica, int *idx)
{
	pthread_mutex_lock(&c->mu);
	int found = -1;
	for (int i = 0; i < c->n && found < 0; i++) {
		const ep *e = &c->eps[i];
		char who[140];
		snprintf(who, sizeof(who), "%s/%s", e->addr, e->pool);
		if (!e->local && !e->removed && strcmp(who, replica) == 0)
			found = i;
	}
	pthread_mutex_unlock(&c->mu);
	if (found < 0)
		return -ENOENT;
	*idx = found;
	return 0;
}

/* A slot for a new member (replica add): adding, not live. -EEXIST, -ENOSPC, -EINVAL. */
int
ctrl_rb_add_slot(ctrl *c, const char *replica, int *idx)
{
	const char *slash = strrchr(replica, '/');
	if (slash == NULL || slash == replica || slash[1] == '\0' || (size_t)(slash - replica) >= 64 ||
	    strlen(slash + 1) >= 64)
		return -EINVAL;
	int i;
	if (ctrl_rb_member(c, replica, &i) == 0)
		return -EEXIST;
	pthread_mutex_lock(&c->mu);
	int slot = -1;
	for (i = 1; i < c->n && slot < 0; i++)
		if (c->eps[i].removed && !c->eps[i].have_th && !c->eps[i].have_rx)
			slot = i;
	if (slot < 0 && c->n < MAX_MEMBERS)
		slot = c->n++;
	if (slot < 0) {
		pthread_mutex_unlock(&c->mu);
		return -ENOSPC;
	}
	ep *e = &c->eps[slot];
	rb_live_free(e->live);
	free(e->rxbuf);
	free(e->bl);
	pthread_cond_t cv = e->qcv;
	memset(e, 0, sizeof(*e));
	e->qcv = cv;
	e->c = c;
	e->idx = slot;
	e->fd = -1;
	e->failed = 1; /* not live until ctrl_rb_start */
	e->adding = 1;
	snprintf(e->addr, sizeof(e->addr), "%.*s", (int)(slash - replica), replica);
	snprintf(e->pool, sizeof(e->pool), "%s", slash + 1);
	pthread_mutex_unlock(&c->mu);
	*idx = slot;
	return 0;
}

/* Join a member's old threads (they stop once it failed) and close its old connection. */
static void
ep_reap(ep *e)
{
	if (e->have_th)
		pthread_join(e->th, NULL);
	if (e->have_rx)
		pthread_join(e->rx, NULL);
	e->have_th = e->have_rx = 0;
	if (e->fd >= 0)
		close(e->fd);
	e->fd = -1;
}

/*
 * Connect to member idx (not live: degraded, or being added) and bind it:
 * ATTACH, or with create CREATE (the promise of the controller's epoch).
 * *st: its STATUS.
 */
int
ctrl_rb_connect(ctrl *c, int idx, int create, rp_status *st, char *msg, size_t mlen)
{
	pthread_mutex_lock(&c->mu);
	ep *e = &c->eps[idx];
	int live = gets_live(e) || e->local;
	if (!live)
		e->failed = 1; /* its threads stop */
	pthread_mutex_unlock(&c->mu);
	if (live) {
		snprintf(msg, mlen, "replica %s/%s is %s", e->addr, e->pool, e->in_sync ? "in sync" : "rebuilding");
		return -EBUSY;
	}
	if (e->fd >= 0)
		shutdown(e->fd, SHUT_RDWR);
	ep_reap(e);
	uint64_t feat = 0;
	int fd, err = peer_connect_f(e->addr, &fd, &feat, msg, mlen);
	if (err != 0)
		return err;
	uint8_t buf[RP_STATUS_SIZE];
	const repl_peer_config *pc = repl_peer_cfg();
	if (create) {
		rp_create cr;
		memset(&cr, 0, sizeof(cr));
		memcpy(cr.cr_vol_uuid, c->uuid, 16);
		cr.cr_size = ce_vol_size(c->rd);
		cr.cr_volblocksize = ce_vol_blocksize(c->rd);
		ce_vol_info vi;
		cr.cr_compress = 0xff;
		cr.cr_checksum = 0xff;
		if (ce_vol_info_get(c->p, c->name, &vi) == 0) {
			cr.cr_compress = (uint8_t)vi.compress;
			cr.cr_checksum = (uint8_t)vi.checksum;
			cr.cr_sync = (uint8_t)vi.sync;
		}
		snprintf(cr.cr_pool, sizeof(cr.cr_pool), "%s", e->pool);
		memcpy(cr.cr_name, c->name, strlen(c->name) < sizeof(cr.cr_name) ? strlen(c->name) : sizeof(cr.cr_name));
		cr.cr_epoch_ctr = c->e.counter;
		cr.cr_epoch_node = c->e.node;
		snprintf(cr.cr_holder_addr, sizeof(cr.cr_holder_addr), "%s", pc->advertise);
		err = rpc(fd, RP_CREATE, c->e, 0, &cr, sizeof(cr), RP_STATUS, buf, msg, mlen, e->addr);
	} else {
		rp_attach at;
		memset(&at, 0, sizeof(at));
		memcpy(at.at_vol_uuid, c->uuid, 16);
		snprintf(at.at_pool, sizeof(at.at_pool), "%s", e->pool);
		memcpy(at.at_name, c->name, strlen(c->name) < sizeof(at.at_name) ? strlen(c->name) : sizeof(at.at_name));
		err = rpc(fd, RP_ATTACH, c->e, 0, &at, sizeof(at), RP_STATUS, buf, msg, mlen, e->addr);
	}
	if (err == 0 && !create) {
		/* a member that missed the epoch's start (unreachable at a takeover) promises it now
		 * (PREPARE, mode join): rebuild frames carry this epoch */
		rp_status s0;
		memcpy(&s0, buf, sizeof(s0));
		ce_epoch pe = { s0.st_promised_ctr, s0.st_promised_node };
		if (ce_epoch_cmp(pe, c->e) < 0) {
			rp_prepare pr;
			memset(&pr, 0, sizeof(pr));
			pr.pr_mode = PR_JOIN;
			snprintf(pr.pr_addr, sizeof(pr.pr_addr), "%s", pc->advertise);
			err = rpc(fd, RP_PREPARE, c->e, 0, &pr, sizeof(pr), RP_PROMISE, buf, msg, mlen, e->addr);
		}
	}
	if (err != 0) {
		close(fd);
		return err;
	}
	memcpy(st, buf, sizeof(*st));
	if (st->st_size != ce_vol_size(c->rd)) {
		/* it missed a sequenced resize while it was out: a rebuild copies bytes, not the size (not built) */
		snprintf(msg, mlen, "replica %s/%s is %" PRIu64 " bytes, the volume %" PRIu64 " (resized while it was "
		    "out): replace it (cask vol replica replace)", e->addr, e->pool, st->st_size, ce_vol_size(c->rd));
		close(fd);
		return -EINVAL;
	}
	struct timeval tv = { 0, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	pthread_mutex_lock(&c->mu);
	e->fd = fd;
	e->features = feat;
	e->id = st->st_id;
	e->pool_guid = st->st_pool_guid;
	if (e->rxbuf == NULL)
		e->rxbuf = xmalloc(RP_MAX_PAYLOAD + 64);
	pthread_mutex_unlock(&c->mu);
	return 0;
}

/*
 * The join point (section 12.4 item 1): in one critical section J is the
 * last assigned seq, RB_BEGIN(J) is the first frame of the member's queue,
 * the member gets every later operation (live records what they touch),
 * and a membership record naming it rebuilding goes to every live member.
 */
int
ctrl_rb_start(ctrl *c, int idx, rp_rb_begin *b, rb_frame_fn cb, void *arg, rb_live *live, uint64_t *J)
{
	pthread_mutex_lock(&c->mu);
	ep *e = &c->eps[idx];
	if (c->fenced || c->stopping || e->fd < 0) {
		pthread_mutex_unlock(&c->mu);
		return -ESTALE;
	}
	ep_drain(e);
	bl_clear(e);
	e->bl_peak_bytes = e->bl_peak_ops = 0;
	*J = b->rb_join_seq = c->next_seq;
	e->rebuilding = 1;
	e->rb_copied = 0;
	e->rb_sn_n = 0;
	e->failed = 0;
	e->reason = 0;
	e->live = live;
	e->rb_cb = cb;
	e->rb_arg = arg;
	e->applied = e->durable = e->sent = c->next_seq;
	e->mb_acked = 0;
	e->progress_ns = now_ns();
	qitem *it = xcalloc(1, sizeof(*it));
	it->kind = Q_RB;
	it->rbtype = RP_RB_BEGIN;
	it->rbpl = xmalloc(sizeof(*b));
	memcpy(it->rbpl, b, sizeof(*b));
	it->rbn = sizeof(*b);
	q_push(e, it);
	mb_phys mb;
	mb_build(c, &mb, c->mb.mb_version + 1, 3);
	for (int i = 0; i < c->n; i++)
		if (gets_live(&c->eps[i])) {
			qitem *m = xcalloc(1, sizeof(*m));
			m->kind = Q_MB;
			m->mb = mb;
			q_push(&c->eps[i], m);
		}
	c->mb = mb;
	ep_start_threads(e);
	pthread_mutex_unlock(&c->mu);
	return 0;
}

void ctrl_rb_lock(ctrl *c) { pthread_mutex_lock(&c->mu); }
void ctrl_rb_unlock(ctrl *c) { pthread_mutex_unlock(&c->mu); }

/* With ctrl_rb_lock held: queue a rebuild frame behind the live operations queued so far. */
int
ctrl_rb_queue(ctrl *c, int idx, uint16_t type, const void *pl, size_t n, const void *data, size_t dn)
{
	ep *e = &c->eps[idx];
	if (c->fenced || c->stopping || e->failed || !e->rebuilding)
		return -EPIPE;
	qitem *it = xcalloc(1, sizeof(*it));
	it->kind = Q_RB;
	it->rbtype = type;
	it->rbpl = xmalloc(n + dn);
	memcpy(it->rbpl, pl, n);
	if (dn)
		memcpy(it->rbpl + n, data, dn);
	it->rbn = n + dn;
	q_push(e, it);
	return 0;
}

/* The rebuild queued its last data to member idx: snapshots need not wait for it any more (rb_copying). */
void
ctrl_rb_copied(ctrl *c, int idx)
{
	pthread_mutex_lock(&c->mu);
	c->eps[idx].rb_copied = 1;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

/* With ctrl_rb_lock held: whether the member failed (its connection or an error). */
int
ctrl_rb_failed(ctrl *c, int idx)
{
	return c->fenced || c->stopping || c->eps[idx].failed;
}

/* The source of section 12.6: the local replica when it is in sync. */
ce_vol *
ctrl_rb_source(ctrl *c, ce_epoch *e, uint64_t *id, uint32_t *rate, ce_repl_info *info)
{
	pthread_mutex_lock(&c->mu);
	ep *l = &c->eps[0];
	ce_vol *h = l->local && l->in_sync && !l->failed ? l->lh : NULL;
	*e = c->e;
	*id = l->id;
	*rate = c->rebuild_rate;
	pthread_mutex_unlock(&c->mu);
	if (h != NULL && ce_repl_info_get(c->p, c->name, info) != 0)
		h = NULL;
	return h;
}

/* Wait until the local replica applied seq (it was queued before the caller asked). */
int
ctrl_rb_wait_local(ctrl *c, uint64_t seq)
{
	pthread_mutex_lock(&c->mu);
	ep *l = &c->eps[0];
	while (l->applied < seq && !l->failed && !c->fenced && !c->stopping)
		pthread_cond_wait(&c->cv, &c->mu);
	int err = l->applied >= seq ? 0 : -EIO;
	pthread_mutex_unlock(&c->mu);
	return err;
}

/* Commit mb on a commit quorum of I (and on member `also`, if >= 0); c->mu held. */
static int
mb_commit(ctrl *c, const mb_phys *mb, int also, char *msg, size_t mlen)
{
	for (int i = 0; i < c->n; i++)
		if (gets_live(&c->eps[i])) {
			qitem *m = xcalloc(1, sizeof(*m));
			m->kind = Q_MB;
			m->mb = *mb;
			q_push(&c->eps[i], m);
		}
	int need = (members(c) + 1) / 2;
	uint64_t deadline = now_ns() + (uint64_t)c->deadline_ms * 1000000ull;
	for (;;) {
		int got = 0;
		for (int i = 0; i < c->n; i++)
			got += c->eps[i].in_sync && !c->eps[i].failed && c->eps[i].mb_acked >= mb->mb_version;
		int other = also < 0 || c->eps[also].mb_acked >= mb->mb_version;
		if (got >= need && other)
			return 0;
		if (c->fenced || c->stopping || now_ns() > deadline || (also >= 0 && c->eps[also].failed)) {
			snprintf(msg, mlen, "membership version %" PRIu64 " was not committed (%d of %d members%s)",
			    mb->mb_version, got, need, other ? "" : ", not by the rebuilt replica");
			return -EIO;
		}
		util_cond_wait_ms(&c->cv, &c->mu, 20);
	}
}

/*
 * Section 12.5: the member is caught up (the target said so durably in
 * RB_END's answer); the record naming it in-sync is committed on a commit
 * quorum and by the member itself, and only then does it count.
 */
int
ctrl_rb_join(ctrl *c, int idx, char *msg, size_t mlen)
{
	pthread_mutex_lock(&c->mu);
	ep *e = &c->eps[idx];
	if (ctrl_rb_failed(c, idx)) {
		pthread_mutex_unlock(&c->mu);
		snprintf(msg, mlen, "replica %s/%s failed before it could join", e->addr, e->pool);
		return -EPIPE;
	}
	/* every snapshot operation it took ended as on the in-sync members (rb_sn_note) */
	uint64_t sn_wait = now_ns() + 4ull * c->deadline_ms * 1000000ull;
	while (e->rb_sn_n > 0 && !ctrl_rb_failed(c, idx) && now_ns() < sn_wait)
		util_cond_wait_ms(&c->cv, &c->mu, 20);
	if (e->rb_sn_n > 0 || ctrl_rb_failed(c, idx)) {
		uint64_t s0 = e->rb_sn_n > 0 ? e->rb_sn[0].seq : 0;
		pthread_mutex_unlock(&c->mu);
		if (s0 != 0)
			snprintf(msg, mlen, "replica %s/%s: the outcome of the snapshot operation at seq %" PRIu64 " is not "
			    "known on it: not joined", e->addr, e->pool, s0);
		else
			snprintf(msg, mlen, "replica %s/%s failed before it could join (a snapshot operation ended "
			    "otherwise on it? see the log)", e->addr, e->pool);
		return -EPIPE;
	}
	mb_phys mb;
	e->in_sync = 1; /* for the record only, until it is committed */
	int adding = e->adding;
	e->adding = 0;
	mb_build(c, &mb, c->mb.mb_version + 1, 4);
	e->in_sync = 0;
	int err = mb_commit(c, &mb, idx, msg, mlen);
	if (err == 0) {
		e->in_sync = 1;
		e->rebuilding = 0;
		e->auto_tries = 0;
		e->live = NULL;
		e->rb_cb = NULL;
		e->rb_arg = NULL;
		c->mb = mb;
		log_info("replicated volume %s: replica %s/%s in sync (membership version %" PRIu64 ")",
		    c->export_name, e->addr, e->pool, mb.mb_version);
		settle(c);
	} else {
		e->adding = adding;
	}
	pthread_mutex_unlock(&c->mu);
	return err;
}

/* The rebuild stopped (cancelled or failed): the member is degraded again and gets no more live frames. */
void
ctrl_rb_stop(ctrl *c, int idx, const char *why)
{
	pthread_mutex_lock(&c->mu);
	ep *e = &c->eps[idx];
	if (e->rebuilding) {
		if (!e->failed)
			ep_fail(e, 3, why);
		e->rebuilding = 0;
	}
	e->live = NULL;
	e->rb_cb = NULL;
	e->rb_arg = NULL;
	pthread_mutex_unlock(&c->mu);
}

/* Drop member idx from the volume (replica remove): a membership change without it. */
int
ctrl_rb_remove(ctrl *c, int idx, char *msg, size_t mlen)
{
	pthread_mutex_lock(&c->mu);
	ep *e = &c->eps[idx];
	if (e->local || e->removed) {
		pthread_mutex_unlock(&c->mu);
		snprintf(msg, mlen, "the local replica cannot be removed");
		return -EINVAL;
	}
	int in = 0;
	for (int i = 0; i < c->n; i++)
		in += c->eps[i].in_sync && !c->eps[i].failed && i != idx;
	int was_member = !e->adding;
	if (e->in_sync && in == 0) {
		pthread_mutex_unlock(&c->mu);
		snprintf(msg, mlen, "%s/%s is the only in-sync replica besides none: refused", e->addr, e->pool);
		return -EBUSY;
	}
	if (!e->failed)
		ep_fail(e, 7, "removed"); /* admin */
	e->removed = 1;
	e->in_sync = 0;
	e->rebuilding = 0;
	int err = 0;
	if (was_member) {
		/* (D) for the rest first, as for an ejection (rule 4 item 2) */
		uint64_t dwait = now_ns() + (uint64_t)c->deadline_ms * 1000000ull;
		while (!d_holds(c) && !c->fenced && now_ns() < dwait)
			util_cond_wait_ms(&c->cv, &c->mu, 1000);
		mb_phys mb;
		mb_build(c, &mb, c->mb.mb_version + 1, 5);
		if ((err = mb_commit(c, &mb, -1, msg, mlen)) == 0)
			c->mb = mb;
	}
	pthread_mutex_unlock(&c->mu);
	if (e->fd >= 0)
		shutdown(e->fd, SHUT_RDWR);
	ep_reap(e);
	if (err == 0)
		log_info("replicated volume %s: replica %s/%s removed", c->export_name, e->addr, e->pool);
	return err;
}

void
ctrl_rb_set_progress(ctrl *c, int idx, const ctrl_rb_progress *p)
{
	pthread_mutex_lock(&c->mu);
	c->eps[idx].rbp = *p;
	pthread_mutex_unlock(&c->mu);
}

/* Set one of a controlled volume's rebuild settings (field of struct ctrl); -ENOENT. */
static int
set_rebuild_setting(const char *export_name, size_t field, uint32_t value)
{
	pthread_mutex_lock(&ctrls_mu);
	ctrl *c = ctrls;
	while (c != NULL && strcmp(c->export_name, export_name) != 0)
		c = c->next;
	if (c != NULL) {
		pthread_mutex_lock(&c->mu);
		memcpy((char *)c + field, &value, sizeof(value));
		pthread_mutex_unlock(&c->mu);
	}
	pthread_mutex_unlock(&ctrls_mu);
	return c ? 0 : -ENOENT;
}

int
repl_ctrl_set_rebuild_rate(const char *export_name, uint32_t mbs)
{
	return set_rebuild_setting(export_name, offsetof(ctrl, rebuild_rate), mbs);
}

int
repl_ctrl_set_rebuild_wait(const char *export_name, uint32_t seconds)
{
	return set_rebuild_setting(export_name, offsetof(ctrl, rebuild_wait), seconds);
}

/*
 * The automatic rebuild's candidates (rebuild.c's policy thread): every
 * degraded remote member of a controller with rebuild_wait set and no
 * rebuild running, that the policy tried fewer than max_tries times since
 * it last joined; fn(export, "HOST:PORT/POOL", seconds offline, wait, arg)
 * is called with no lock held. A call counts as a try.
 */
void
ctrl_rb_candidates(int max_tries, void (*fn)(const char *, const char *, uint64_t, uint32_t, void *), void *arg)
{
	typedef struct cand {
		char export_name[330], replica[140];
		uint64_t offline_s;
		uint32_t wait;
	} cand;
	cand v[32];
	int n = 0;
	uint64_t now = now_ns();
	pthread_mutex_lock(&ctrls_mu);
	for (ctrl *c = ctrls; c != NULL && n < 32; c = c->next) {
		pthread_mutex_lock(&c->mu);
		for (int i = 0; c->rebuild_wait > 0 && !c->rb_busy && !c->fenced && !c->stopping && i < c->n && n < 32;
		    i++) {
			ep *e = &c->eps[i];
			if (e->local || e->removed || e->in_sync || e->rebuilding || !e->failed || e->auto_tries >= max_tries)
				continue;
			e->auto_tries++;
			snprintf(v[n].export_name, sizeof(v[n].export_name), "%s", c->export_name);
			snprintf(v[n].replica, sizeof(v[n].replica), "%s/%s", e->addr, e->pool);
			v[n].offline_s = e->failed_ns ? (now - e->failed_ns) / 1000000000ull : 0;
			v[n++].wait = c->rebuild_wait;
		}
		pthread_mutex_unlock(&c->mu);
	}
	pthread_mutex_unlock(&ctrls_mu);
	for (int i = 0; i < n; i++)
		fn(v[i].export_name, v[i].replica, v[i].offline_s, v[i].wait, arg);
}

/* Give back a try that did not start a rebuild (the member was unreachable). */
void
ctrl_rb_untry(const char *export_name, const char *replica)
{
	pthread_mutex_lock(&ctrls_mu);
	for (ctrl *c = ctrls; c != NULL; c = c->next) {
		if (strcmp(c->export_name, export_name) != 0)
			continue;
		pthread_mutex_lock(&c->mu);
		for (int i = 0; i < c->n; i++) {
			char who[140];
			snprintf(who, sizeof(who), "%s/%s", c->eps[i].addr, c->eps[i].pool);
			if (!c->eps[i].local && strcmp(who, replica) == 0 && c->eps[i].auto_tries > 0)
				c->eps[i].auto_tries--;
		}
		pthread_mutex_unlock(&c->mu);
	}
	pthread_mutex_unlock(&ctrls_mu);
}

/*
 * The other sources of a rebuild (section 12.9): the remote members of I
 * that count now, other than member idx, as "HOST:PORT" and pool; at most
 * max. Whether the local replica is one (in sync, not failed) is
 * ctrl_rb_local_ok.
 */
int
ctrl_rb_peers(ctrl *c, int idx, char (*addr)[64], char (*pool)[64], int max)
{
	int n = 0;
	pthread_mutex_lock(&c->mu);
	for (int i = 0; i < c->n && n < max; i++) {
		const ep *e = &c->eps[i];
		if (i == idx || e->local || !e->in_sync || e->failed || e->removed || e->adding || e->rebuilding)
			continue;
		snprintf(addr[n], 64, "%s", e->addr);
		snprintf(pool[n], 64, "%s", e->pool);
		n++;
	}
	pthread_mutex_unlock(&c->mu);
	return n;
}

int
ctrl_rb_local_ok(ctrl *c)
{
	pthread_mutex_lock(&c->mu);
	const ep *l = &c->eps[0];
	int ok = l->local && l->in_sync && !l->failed && !c->fenced && !c->stopping;
	pthread_mutex_unlock(&c->mu);
	return ok;
}

/* A connection of the rebuild's own to member addr/pool (HELLO, AUTH, ATTACH: bound): *fd and its features. */
int
ctrl_rb_attach(ctrl *c, const char *addr, const char *pool, int *fd, uint64_t *features, char *msg, size_t mlen)
{
	int err = peer_connect_f(addr, fd, features, msg, mlen);
	if (err != 0)
		return err;
	pthread_mutex_lock(&c->mu);
	ce_epoch e = c->e;
	rp_attach at;
	memset(&at, 0, sizeof(at));
	memcpy(at.at_vol_uuid, c->uuid, 16);
	memcpy(at.at_name, c->name, MIN(strlen(c->name), sizeof(at.at_name)));
	pthread_mutex_unlock(&c->mu);
	snprintf(at.at_pool, sizeof(at.at_pool), "%.63s", pool);
	uint8_t st[RP_STATUS_SIZE];
	if ((err = rpc(*fd, RP_ATTACH, e, 0, &at, sizeof(at), RP_STATUS, st, msg, mlen, addr)) != 0) {
		close(*fd);
		*fd = -1;
	}
	return err;
}

/* ---- online verify (replication.md section 12.11, as built; replica-protocol.md section 8.2) ---- */

#define VF_BATCH 64u             /* chunks asked of every member per round (64 MiB of volume) */
#define VF_TIMEOUT_S 60          /* a remote member's answer to one round */
#define VF_RECHECKS 3            /* a differing chunk is compared again this many times before it is reported */
#define VF_MAXM MAX_MEMBERS

typedef struct vfjob {
	ctrl *c;
	pthread_mutex_t mu;
	int refs;                    /* the job and the control operation that waits for it */
	uint64_t chunks, differing, size;
	int nm;
	char names[VF_MAXM][140];
	json_object *ranges;         /* [{"offset", "length", "digests": {member: hex}}] */
} vfjob;

static void
vf_put(vfjob *v)
{
	pthread_mutex_lock(&v->mu);
	int last = --v->refs == 0;
	pthread_mutex_unlock(&v->mu);
	if (!last)
		return;
	json_object_put(v->ranges);
	pthread_mutex_destroy(&v->mu);
	free(v);
}

static void
vf_free(void *arg)
{
	vfjob *v = arg;
	ctrl_rb_release(v->c);
	vf_put(v);
}

typedef struct vfm {
	int local, fd;
	ce_vol *lh;
	char addr[65];
} vfm;

/* The digests of chunks [first, first+n) from member m into out. */
static int
vf_digests(vfm *m, ctrl *c, ce_epoch vep, uint64_t size, uint64_t first, uint32_t n, uint8_t (*out)[16], uint8_t *buf,
    char *msg, size_t mlen)
{
	if (m->local) {
		if (ce_vol_digest_chunks(m->lh, first, n, out) != 0)
			for (uint32_t i = 0; i < n; i++) /* as the service does: unreadable, 16 zero bytes */
				if (ce_vol_digest_chunks(m->lh, first + i, 1, out + i) != 0) {
					log_warn("replicated volume %s: verify: local chunk at %" PRIu64 " unreadable: %s",
					    c->export_name, (first + i) * RP_CKSUM_CHUNK, ce_errmsg());
					memset(out[i], 0, 16);
				}
		return 0;
	}
	rp_cksum ck;
	memset(&ck, 0, sizeof(ck));
	ck.ck_offset = first * RP_CKSUM_CHUNK;
	ck.ck_length = MIN((uint64_t)n * RP_CKSUM_CHUNK, size - ck.ck_offset);
	ck.ck_chunk = RP_CKSUM_CHUNK;
	rp_hdr h;
	int err = rpc_x(m->fd, RP_CKSUM, vep, 0, &ck, sizeof(ck), RP_CKSUM_REPLY, buf, RP_MAX_PAYLOAD, &h, msg,
	    mlen, m->addr);
	uint32_t got = 0;
	while (err == 0) {
		rp_cksum_reply cr;
		memcpy(&cr, buf, sizeof(cr));
		if (h.rf_len < sizeof(cr) || h.rf_len != sizeof(cr) + (uint64_t)cr.cr_n * 16 ||
		    cr.cr_offset != (first + got) * RP_CKSUM_CHUNK || cr.cr_n > n - got) {
			snprintf(msg, mlen, "replica %s: a malformed CKSUM_REPLY", m->addr);
			return -EPROTO;
		}
		memcpy(out + got, buf + sizeof(cr), (size_t)cr.cr_n * 16);
		got += cr.cr_n;
		if (!(h.rf_flags & RPF_MORE))
			break;
		err = rpc_next(m->fd, RP_CKSUM, RP_CKSUM_REPLY, buf, RP_MAX_PAYLOAD, &h, msg, mlen, m->addr);
	}
	if (err == 0 && got != n) {
		snprintf(msg, mlen, "replica %s: CKSUM answered %u of %u chunks", m->addr, got, n);
		return -EPROTO;
	}
	return err;
}

static int
vf_same(uint8_t (*const *d)[16], int nm, uint32_t i)
{
	for (int k = 1; k < nm; k++)
		if (memcmp(d[k][i], d[0][i], 16) != 0)
			return 0;
	return 1;
}

static int
verify_work(job *j, void *arg)
{
	vfjob *v = arg;
	ctrl *c = v->c;
	vfm ms[VF_MAXM];
	int nm = 0, err = 0;
	char msg[400] = "";
	/* the members of I that count now (not rebuilding, not failed) */
	pthread_mutex_lock(&c->mu);
	uint64_t size = ce_vol_size(c->rd);
	ce_epoch vep = c->e;
	char pools[VF_MAXM][64];
	for (int i = 0; i < c->n && nm < VF_MAXM; i++) {
		ep *e = &c->eps[i];
		if (!e->in_sync || e->failed || e->removed || e->adding)
			continue;
		ms[nm] = (vfm){ e->local, -1, e->local ? e->lh : NULL, "" };
		snprintf(ms[nm].addr, sizeof(ms[nm].addr), "%s", e->addr);
		snprintf(pools[nm], sizeof(pools[nm]), "%s", e->pool);
		snprintf(v->names[nm], sizeof(v->names[nm]), "%s/%s", e->local ? "local" : e->addr, e->pool);
		nm++;
	}
	pthread_mutex_unlock(&c->mu);
	v->nm = nm;
	v->size = size;
	if (nm < 2) {
		err = err_setc(CE_E_INVALID_ARGUMENT, -EINVAL, "%s has %d in-sync replica(s): nothing to compare",
		    c->export_name, nm);
		return err;
	}
	for (int k = 0; k < nm; k++) {
		if (ms[k].local)
			continue;
		uint64_t feat = 0;
		if ((err = peer_connect_f(ms[k].addr, &ms[k].fd, &feat, msg, sizeof(msg))) != 0) {
			ms[k].fd = -1;
			err = err_setc(CE_E_PEER_UNREACHABLE, err, "%s", msg);
			goto out;
		}
		if (!(feat & RP_FEAT_VERIFY)) {
			err = err_setc(CE_E_INVALID_ARGUMENT, -EOPNOTSUPP, "replica %s does not offer VERIFY", ms[k].addr);
			goto out;
		}
		rp_attach at;
		memset(&at, 0, sizeof(at));
		memcpy(at.at_vol_uuid, c->uuid, 16);
		snprintf(at.at_pool, sizeof(at.at_pool), "%.63s", pools[k]);
		memcpy(at.at_name, c->name, MIN(strlen(c->name), sizeof(at.at_name)));
		uint8_t st[RP_STATUS_SIZE];
		if ((err = rpc(ms[k].fd, RP_ATTACH, vep, 0, &at, sizeof(at), RP_STATUS, st, msg, sizeof(msg),
		    ms[k].addr)) != 0) {
			err = err_set(err, "%s", msg);
			goto out;
		}
		struct timeval tv = { VF_TIMEOUT_S, 0 };
		setsockopt(ms[k].fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	uint64_t nchunks = (size + RP_CKSUM_CHUNK - 1) / RP_CKSUM_CHUNK;
	uint8_t (*d[VF_MAXM])[16];
	for (int k = 0; k < nm; k++)
		d[k] = xmalloc((size_t)VF_BATCH * 16);
	uint8_t *buf = xmalloc(RP_MAX_PAYLOAD);
	uint8_t (*one[VF_MAXM])[16];
	uint8_t ones[VF_MAXM][1][16];
	for (int k = 0; k < nm; k++)
		one[k] = ones[k];
	job_progress(j, 0, size);
	for (uint64_t first = 0; first < nchunks && err == 0; first += VF_BATCH) {
		uint32_t n = (uint32_t)MIN((uint64_t)VF_BATCH, nchunks - first);
		for (int k = 0; k < nm && err == 0; k++)
			if ((err = vf_digests(&ms[k], c, vep, size, first, n, d[k], buf, msg, sizeof(msg))) != 0)
				err = err_set(err, "%s", msg);
		for (uint32_t i = 0; i < n && err == 0; i++) {
			if (vf_same(d, nm, i))
				continue;
			/* live writes reach the members at different moments: compare again (section 12.11) */
			int same = 0;
			for (int r = 0; r < VF_RECHECKS && !same && err == 0; r++) {
				struct timespec ts = { 0, 100 * 1000000L };
				nanosleep(&ts, NULL);
				for (int k = 0; k < nm && err == 0; k++)
					if ((err = vf_digests(&ms[k], c, vep, size, first + i, 1, one[k], buf, msg, sizeof(msg))) != 0)
						err = err_set(err, "%s", msg);
				same = err == 0 && vf_same(one, nm, 0);
			}
			if (err != 0 || same)
				continue;
			uint64_t off = (first + i) * RP_CKSUM_CHUNK;
			json_object *o = json_object_new_object(), *dg = json_object_new_object();
			json_object_object_add(o, "offset", json_object_new_uint64(off));
			json_object_object_add(o, "length", json_object_new_uint64(MIN((uint64_t)RP_CKSUM_CHUNK, size - off)));
			for (int k = 0; k < nm; k++) {
				char hex[33];
				for (int b = 0; b < 16; b++)
					snprintf(hex + 2 * b, 3, "%02x", one[k][0][b]);
				json_object_object_add(dg, v->names[k], json_object_new_string(hex));
			}
			json_object_object_add(o, "digests", dg);
			pthread_mutex_lock(&v->mu);
			json_object_array_add(v->ranges, o);
			v->differing++;
			pthread_mutex_unlock(&v->mu);
		}
		pthread_mutex_lock(&v->mu);
		v->chunks += n;
		pthread_mutex_unlock(&v->mu);
		if (err == 0 && job_progress(j, MIN((first + n) * RP_CKSUM_CHUNK, size), size) != 0)
			err = -ECANCELED;
	}
	for (int k = 0; k < nm; k++)
		free(d[k]);
	free(buf);
	if (err == 0) {
		char res[200];
		snprintf(res, sizeof(res), "%" PRIu64 " chunks of 1 MiB compared on %d replicas, %" PRIu64 " differ",
		    v->chunks, nm, v->differing);
		job_set_result(j, res);
		log_info("replicated volume %s: verify: %s", c->export_name, res);
	}
out:
	for (int k = 0; k < nm; k++)
		if (ms[k].fd >= 0)
			close(ms[k].fd);
	return err;
}

int
repl_verify(const char *export_name, json_object *res)
{
	int err;
	ctrl *c = ctrl_rb_claim(export_name, &err);
	if (c == NULL)
		return err == -ENOENT ? err_setc(CE_E_NOT_REPLICATED, -EINVAL, "%s is not a replicated volume this "
		    "caskd controls", export_name) : err == -EBUSY ? err_setc(CE_E_BUSY, -EBUSY, "%s: a rebuild "
		    "or verify is running (one at a time per volume)", export_name) : err_set(-ESTALE, "%s is fenced",
		    export_name);
	vfjob *v = xcalloc(1, sizeof(*v));
	v->c = c;
	v->refs = 2;
	v->ranges = json_object_new_array();
	pthread_mutex_init(&v->mu, NULL);
	char pool[64];
	const char *slash = strchr(export_name, '/');
	snprintf(pool, sizeof(pool), "%.*s", slash ? (int)(slash - export_name) : 0, export_name);
	uint64_t id = job_start("verify", pool, export_name, 0, verify_work, v, vf_free);
	if (id == 0) {
		vf_put(v);
		return err_setc(CE_E_BUSY, -ESHUTDOWN, "caskd is stopping");
	}
	job_wait(id, -1);
	int code;
	char msg[1024];
	if ((err = job_outcome(id, &code, msg, sizeof(msg))) != 0) {
		vf_put(v);
		return err_setc(code, err, "%s", msg);
	}
	pthread_mutex_lock(&v->mu);
	json_object_object_add(res, "job", json_object_new_uint64(id));
	json_object_object_add(res, "size", json_object_new_uint64(v->size));
	json_object_object_add(res, "chunk", json_object_new_uint64(RP_CKSUM_CHUNK));
	json_object_object_add(res, "chunks", json_object_new_uint64(v->chunks));
	json_object_object_add(res, "differing", json_object_new_uint64(v->differing));
	json_object *rep = json_object_new_array();
	for (int k = 0; k < v->nm; k++)
		json_object_array_add(rep, json_object_new_string(v->names[k]));
	json_object_object_add(res, "replicas", rep);
	json_object_object_add(res, "ranges", json_object_get(v->ranges));
	pthread_mutex_unlock(&v->mu);
	vf_put(v);
	return 0;
}
