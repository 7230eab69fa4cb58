/*
 * service.c -- the replica service (docs/replication.md sections 3.1,
 * 3.3, 5; docs/replica-protocol.md sections 4-7 and 11).
 *
 * One thread per controller connection, blocking IO: a replica applies
 * its session's frames strictly one at a time anyway, and the number of
 * controllers per caskd is small. Each connection walks
 *   new -> negotiated (HELLO) -> authenticated (AUTH) -> bound (CREATE |
 *   ATTACH) -> promised (PREPARE) -> session (START_EPOCH)
 * and every frame is treated in the order of protocol section 11:
 * header, checksum, type and state, epoch, session, sequence, act.
 *
 * Invariants:
 *   1. Nothing in a frame is used before its checksum matched (proto.c 1).
 *   2. The epoch rule is enforced twice: here, against the record's
 *      promised epoch, on every frame after binding (a late frame of a
 *      deposed controller on a connection that stayed open is refused with
 *      STALE_EPOCH and the connection closed); and in the engine, which
 *      applies an operation only in the promised epoch (repl.c 1), so a
 *      promise made by another thread between the two checks still wins.
 *   3. One session per replica volume: START_EPOCH closes every other
 *      connection bound to the volume before it answers, so no frame of an
 *      older connection is read after the new session began.
 *   4. DURABLE(d) is sent only after ce_repl_flush said d is committed.
 *   5. Reconciliation frames (feature TAIL: TAIL_LIST, TAIL_BEGIN,
 *      TAIL_DATA, READ) are served on a promised connection, before its
 *      epoch started; the engine refuses a tail write unless the record is
 *      in a tail sync of the promised epoch (repl.c 8). Snapshot operations
 *      are sequenced frames like writes; OP_DONE follows their APPLIED.
 */
#include "service.h"
#include "proto.h"
#include "rebuild.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cask/engine.h"
#include "../log.h"
#include "phys.h"
#include "../registry.h"
#include "sockio.h"
#include "util.h"

#define MAX_UNAUTH 16
#define HANDSHAKE_MS 5000

static repl_peer_config cfg;

void
repl_peer_configure(const repl_peer_config *c)
{
	cfg = *c;
}

const repl_peer_config *
repl_peer_cfg(void)
{
	return &cfg;
}

int
repl_split_addr(const char *addr, char *host, size_t hostlen, char *port, size_t portlen)
{
	const char *colon;
	if (addr[0] == '[') {
		const char *end = strchr(addr, ']');
		if (end == NULL || end[1] != ':')
			return -EINVAL;
		snprintf(host, hostlen, "%.*s", (int)(end - addr - 1), addr + 1);
		colon = end + 1;
	} else {
		colon = strrchr(addr, ':');
		if (colon == NULL)
			return -EINVAL;
		snprintf(host, hostlen, "%.*s", (int)(colon - addr), addr);
	}
	snprintf(port, portlen, "%s", colon + 1);
	return port[0] ? 0 : -EINVAL;
}

/* ---- connections ---- */

enum cstate { CS_NEW, CS_NEGOTIATED, CS_AUTH, CS_BOUND, CS_PROMISED, CS_SESSION };

typedef struct rconn {
	int fd;
	char peer[80];
	enum cstate st;
	uint16_t version;
	uint8_t nonce_c[RP_NONCE], nonce_r[RP_NONCE];
	uint64_t inst_c;
	uint64_t features;       /* negotiated (HELLO_REPLY hr_features) */
	int lease_only;          /* ATTACH flag LEASE: a lease connection, KEEPALIVE only (ctrl.c invariant 10) */
	int peer_key;
	/* bound volume */
	char pool[64], name[256], export_name[330];
	ce_pool *p;
	ce_vol *rd;              /* a plain handle: reads */
	ce_vol *h;               /* a replica handle: sequenced operations */
	ce_epoch e;              /* the epoch this connection was promised */
	uint64_t applied_sent;
	int applied_pending;
	uint64_t rb_bytes;       /* rebuild bytes applied since RB_BEGIN (rebuild.c) */
	uint64_t rb_committed;   /* rb_bytes at the target's last commit of them */
	/* input buffer */
	uint8_t *in;
	size_t in_len, in_off;
	uint8_t *payload;
	struct rconn *next;
	pthread_t th;
	int done;
} rconn;

static pthread_mutex_t conns_mu = PTHREAD_MUTEX_INITIALIZER;
static rconn *conns;
static int nunauth;
static int listen_fd = -1;
static pthread_t accept_th;
static int accept_running;
static _Atomic int stopping; /* set by repl_service_stop, read by the accept thread */

#define IN_CAP (2u << 20)

static int
send_frame(rconn *c, uint16_t type, uint32_t flags, uint64_t seq, uint64_t id, const void *pl, size_t n)
{
	rp_hdr h;
	rp_hdr_init(&h, type, flags, (uint32_t)n, c->e.counter, c->e.node, seq, id);
	h.rf_version = c->version ? c->version : RP_VERSION;
	rp_seal(&h, pl, n);
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)pl, n } };
	return sock_write_iov(c->fd, iov, n ? 2 : 1) == 0 ? 0 : -EPIPE;
}

static void
send_error(rconn *c, uint32_t code, const rp_hdr *ref, int fatal, const ce_repl_info *ri, uint64_t value,
    const char *msg)
{
	rp_error e;
	rp_error_fill(&e, code, ref ? ref->rf_id : 0, ref ? ref->rf_seq : 0, fatal, "%s", msg);
	e.er_value = value;
	if (ri != NULL) {
		e.er_epoch_ctr = ri->promised.counter;
		e.er_epoch_node = ri->promised.node;
		snprintf(e.er_addr, sizeof(e.er_addr), "%s", ri->holder_addr);
	}
	(void)send_frame(c, RP_ERROR, 0, 0, 0, &e, sizeof(e));
	if (fatal)
		log_info("replica peer %s: %s: %s%s", c->peer, rp_err_name(code), msg,
		    c->name[0] ? "" : "");
}

static int
flush_applied(rconn *c)
{
	if (!c->applied_pending || c->h == NULL)
		return 0;
	c->applied_pending = 0;
	uint64_t a = ce_repl_applied(c->h);
	c->applied_sent = a;
	return send_frame(c, RP_APPLIED, 0, a, 0, NULL, 0);
}

/* Read exactly n bytes through the buffer; before blocking, answer APPLIED (coalesced). */
static int
read_exact(rconn *c, void *dst, size_t n, int timeout_ms)
{
	uint8_t *d = dst;
	while (n > 0) {
		if (c->in_off == c->in_len) {
			c->in_off = c->in_len = 0;
			if (flush_applied(c) != 0)
				return -EPIPE;
			if (timeout_ms > 0) {
				struct pollfd pf = { c->fd, POLLIN, 0 };
				int r = poll(&pf, 1, timeout_ms);
				if (r == 0)
					return -ETIMEDOUT;
			}
			ssize_t r = recv(c->fd, c->in, IN_CAP, 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				return -EPIPE;
			c->in_len = (size_t)r;
		}
		size_t k = MIN(n, c->in_len - c->in_off);
		memcpy(d, c->in + c->in_off, k);
		c->in_off += k;
		d += k;
		n -= k;
	}
	return 0;
}

static void
fill_status(rp_status *st, const ce_repl_info *ri, int session)
{
	memset(st, 0, sizeof(*st));
	memcpy(st->st_vol_uuid, ri->vol_uuid, 16);
	st->st_id = ri->id;
	st->st_pool_guid = ri->pool_guid;
	st->st_promised_ctr = ri->promised.counter;
	st->st_promised_node = ri->promised.node;
	st->st_last_ctr = ri->last_epoch.counter;
	st->st_last_node = ri->last_epoch.node;
	st->st_applied = ri->applied;
	st->st_durable = ri->durable;
	st->st_hi = ri->hi;
	st->st_state = ri->state;
	st->st_flags = session ? ST_SESSION : 0;
	st->st_size = ri->size;
	st->st_volblocksize = ri->volblocksize;
	snprintf(st->st_holder_addr, sizeof(st->st_holder_addr), "%s", ri->holder_addr);
	memcpy(st->st_mb, ri->rec + 256, 1280);
	memcpy(st->st_hist, ri->rec + 1536, 512);
	memcpy(st->st_rb, ri->rec + 2048, 128);
}

static int
send_status(rconn *c, uint16_t type, uint64_t id)
{
	ce_repl_info ri;
	int err = ce_repl_info_get(c->p, c->name, &ri);
	if (err != 0)
		return err;
	rp_status st;
	fill_status(&st, &ri, c->st == CS_SESSION);
	return send_frame(c, type, 0, 0, id, &st, sizeof(st));
}

/* ---- the handshake ---- */

static int
handshake(rconn *c)
{
	rp_hdr h;
	uint8_t pl[256];
	int err;
	/* HELLO */
	if ((err = read_exact(c, &h, sizeof(h), HANDSHAKE_MS)) != 0)
		return err;
	int code = rp_check_header(&h, 256, 0);
	if (code == 0 && (err = read_exact(c, pl, h.rf_len, HANDSHAKE_MS)) != 0)
		return err;
	if (code == 0)
		code = rp_verify(&h, pl);
	if (code == 0 && (h.rf_type != RP_HELLO || h.rf_len != 256))
		code = RPE_BAD_FRAME;
	if (code != 0) {
		send_error(c, (uint32_t)code, &h, 1, NULL, 0, "expected a HELLO");
		return -EPROTO;
	}
	rp_hello he;
	memcpy(&he, pl, sizeof(he));
	char msg[160];
	if (strncmp(he.he_proto, "cask-replica", sizeof(he.he_proto)) != 0) {
		send_error(c, RPE_BAD_FRAME, &h, 1, NULL, 0, "not a cask replica protocol HELLO");
		return -EPROTO;
	}
	uint16_t v = rp_negotiate(he.he_min_version, he.he_max_version, 1, RP_VERSION);
	if (v == 0) {
		snprintf(msg, sizeof(msg), "protocol versions %u..%u offered, this caskd speaks 1..%u",
		    he.he_min_version, he.he_max_version, RP_VERSION);
		send_error(c, RPE_VERSION_MISMATCH, &h, 1, NULL,
		    he.he_min_version | (uint64_t)he.he_max_version << 16, msg);
		return -EPROTO;
	}
	c->version = v;
	if (he.he_instance == cfg.instance) {
		send_error(c, RPE_DUPLICATE_ID, &h, 1, NULL, 0, "connected to itself");
		return -EPROTO;
	}
	if (cfg.key != NULL && !(he.he_flags & HE_KEY)) {
		send_error(c, RPE_AUTH_REQUIRED, &h, 1, NULL, 0, "no key offered (this caskd has --peer-key)");
		return -EACCES;
	}
	if (cfg.key == NULL && (he.he_flags & HE_KEY)) {
		send_error(c, RPE_AUTH_REQUIRED, &h, 1, NULL, 0, "this caskd has no peer key");
		return -EACCES;
	}
	if (cfg.key == NULL && !(he.he_flags & HE_INSECURE)) {
		send_error(c, RPE_AUTH_REQUIRED, &h, 1, NULL, 0, "the peer is neither keyed nor insecure");
		return -EACCES;
	}
	memcpy(c->nonce_c, he.he_nonce, RP_NONCE);
	c->inst_c = he.he_instance;
	rp_hello_reply hr;
	memset(&hr, 0, sizeof(hr));
	hr.hr_version = v;
	hr.hr_min_version = 1;
	hr.hr_max_version = RP_VERSION;
	hr.hr_flags = cfg.key ? HE_KEY : HE_INSECURE;
	hr.hr_features = he.he_features & (RP_FEAT_TAIL | RP_FEAT_REBUILD | RP_FEAT_VERIFY | RP_FEAT_RB_READ |
	    RP_FEAT_VOLOP);
	c->features = hr.hr_features;
	hr.hr_instance = cfg.instance;
	if (getrandom(c->nonce_r, RP_NONCE, 0) != RP_NONCE)
		return -EIO;
	memcpy(hr.hr_nonce, c->nonce_r, RP_NONCE);
	snprintf(hr.hr_software, sizeof(hr.hr_software), "caskd");
	c->st = CS_NEGOTIATED;
	if (send_frame(c, RP_HELLO_REPLY, 0, 0, h.rf_id, &hr, sizeof(hr)) != 0)
		return -EPIPE;
	/* AUTH */
	if ((err = read_exact(c, &h, sizeof(h), HANDSHAKE_MS)) != 0)
		return err;
	code = rp_check_header(&h, 256, v);
	if (code == 0 && (err = read_exact(c, pl, h.rf_len, HANDSHAKE_MS)) != 0)
		return err;
	if (code == 0)
		code = rp_verify(&h, pl);
	if (code == 0 && (h.rf_type != RP_AUTH || h.rf_len != 64))
		code = RPE_BAD_FRAME;
	if (code != 0) {
		send_error(c, (uint32_t)code, &h, 1, NULL, 0, "expected an AUTH");
		return -EPROTO;
	}
	rp_auth au, ok;
	memcpy(&au, pl, sizeof(au));
	memset(&ok, 0, sizeof(ok));
	if (cfg.key != NULL) {
		uint8_t want[RP_MAC];
		rp_mac(0, cfg.key, cfg.keylen, c->nonce_c, c->nonce_r, c->inst_c, cfg.instance, v, want);
		if (!rp_mac_equal(want, au.au_mac)) {
			send_error(c, RPE_AUTH_FAILED, &h, 1, NULL, 0, "wrong key");
			return -EACCES;
		}
		rp_mac(1, cfg.key, cfg.keylen, c->nonce_c, c->nonce_r, c->inst_c, cfg.instance, v, ok.au_mac);
	}
	c->st = CS_AUTH;
	return send_frame(c, RP_AUTH_OK, 0, 0, h.rf_id, &ok, sizeof(ok)) == 0 ? 0 : -EPIPE;
}

/* ---- binding ---- */

typedef struct create_args {
	const rp_create *cr;
	char name[256];
	int code;
	char msg[160];
} create_args;

static int
create_in_pool(ce_pool *p, void *arg)
{
	create_args *a = arg;
	const rp_create *cr = a->cr;
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.volblocksize = cr->cr_volblocksize;
	if (cr->cr_compress != 0xff)
		pr.compress = cr->cr_compress;
	if (cr->cr_checksum != 0xff)
		pr.checksum = cr->cr_checksum;
	pr.sync = cr->cr_sync;
	int err = ce_vol_create(p, a->name, cr->cr_size, &pr);
	if (err != 0) {
		a->code = err == -EEXIST ? RPE_VOLUME_EXISTS : err == -ENOSPC ? RPE_NO_SPACE : RPE_INVALID_ARGUMENT;
		snprintf(a->msg, sizeof(a->msg), "%s", ce_errmsg());
		return err;
	}
	ce_epoch e = { cr->cr_epoch_ctr, cr->cr_epoch_node };
	char holder[65];
	snprintf(holder, sizeof(holder), "%.64s", cr->cr_holder_addr);
	err = ce_repl_make(p, a->name, cr->cr_vol_uuid, e, holder);
	if (err != 0) {
		a->code = RPE_INVALID_ARGUMENT;
		snprintf(a->msg, sizeof(a->msg), "%s", ce_errmsg());
		(void)ce_vol_destroy(p, a->name);
	}
	return err;
}

static void
unbind(rconn *c)
{
	if (c->h != NULL)
		ce_vol_close(c->h);
	if (c->rd != NULL)
		reg_vol_close(c->rd, c->p);
	c->h = c->rd = NULL;
	c->p = NULL;
}

/* Open pool/name for this connection: 0, or an RPE_ code with msg. */
static int
bind_volume(rconn *c, const char *pool, const char *name, const uint8_t *uuid, char *msg, size_t mlen)
{
	snprintf(c->pool, sizeof(c->pool), "%s", pool);
	snprintf(c->name, sizeof(c->name), "%s", name);
	snprintf(c->export_name, sizeof(c->export_name), "%s/%s", pool, name);
	int err = reg_vol_open(c->export_name, &c->rd, &c->p);
	if (err != 0) {
		snprintf(msg, mlen, "%s", ce_errmsg());
		c->name[0] = '\0';
		return err == -ENXIO || strchr(name, '/') ? RPE_POOL_NOT_FOUND : RPE_VOLUME_NOT_FOUND;
	}
	ce_repl_info ri;
	if (ce_repl_info_get(c->p, name, &ri) != 0) {
		snprintf(msg, mlen, "%.120s is not a replica volume", c->export_name);
		unbind(c);
		c->name[0] = '\0';
		return RPE_NOT_A_REPLICA;
	}
	if (uuid != NULL && memcmp(uuid, ri.vol_uuid, 16) != 0) {
		snprintf(msg, mlen, "%.120s is a replica of another volume", c->export_name);
		unbind(c);
		c->name[0] = '\0';
		return RPE_WRONG_VOLUME;
	}
	if ((err = ce_repl_open(c->p, name, &c->h)) != 0) {
		snprintf(msg, mlen, "%s", ce_errmsg());
		unbind(c);
		c->name[0] = '\0';
		return RPE_INTERNAL;
	}
	c->e = ri.promised;
	c->st = CS_BOUND;
	return 0;
}

/* Close every other connection bound to this volume (invariant 3). */
static void
take_session(rconn *c)
{
	pthread_mutex_lock(&conns_mu);
	for (rconn *o = conns; o != NULL; o = o->next)
		if (o != c && o->st >= CS_BOUND && strcmp(o->export_name, c->export_name) == 0)
			shutdown(o->fd, SHUT_RDWR);
	c->st = CS_SESSION;
	pthread_mutex_unlock(&conns_mu);
}

/* ---- frames ---- */

static int
is_sequenced(uint16_t t)
{
	return t == RP_WRITE || t == RP_TRIM || t == RP_ZERO || t == RP_SNAPSHOT || t == RP_SNAP_DESTROY ||
	    t == RP_SNAP_RENAME || t == RP_ROLLBACK || t == RP_RESIZE;
}

/* TAIL_LIST: the extents after tl_after, in frames of at most RP_TAIL_MAX (MORE on all but the last). */
static int
tail_list(rconn *c, const rp_hdr *h, const rp_tail_list *tl)
{
	uint64_t *off = xmalloc(RP_TAIL_MAX * sizeof(uint64_t)), *len = xmalloc(RP_TAIL_MAX * sizeof(uint64_t));
	uint64_t after = tl->tl_after;
	int rc = 0;
	for (;;) {
		size_t n = 0;
		uint64_t top = after;
		int err = ce_repl_extents(c->h, after, off, len, RP_TAIL_MAX, &n, &top);
		if (err != 0) {
			send_error(c, RPE_TAIL_UNKNOWN, h, 0, NULL, after, ce_errmsg());
			break;
		}
		int more = n == RP_TAIL_MAX;
		uint8_t *pl = c->payload;
		rp_tail_extents te = { top, (uint32_t)n, 0 };
		memcpy(pl, &te, sizeof(te));
		for (size_t i = 0; i < n; i++) {
			memcpy(pl + 16 + 16 * i, &off[i], 8);
			memcpy(pl + 24 + 16 * i, &len[i], 8);
		}
		if ((rc = send_frame(c, RP_TAIL_EXTENTS, more ? RPF_MORE : 0, 0, h->rf_id, pl, 16 + 16 * n)) != 0 ||
		    !more)
			break;
		after = top;
	}
	free(off);
	free(len);
	return rc;
}

/* ---- the rebuild frames (rebuild.c does them; these lend it the connection) ---- */

static int
rb_send(void *conn, uint16_t type, uint32_t flags, uint64_t id, const void *pl, size_t n)
{
	return send_frame(conn, type, flags, 0, id, pl, n);
}

static void
rb_error(void *conn, uint32_t code, const rp_hdr *ref, int fatal, const char *msg)
{
	send_error(conn, code, ref, fatal, NULL, 0, msg);
}

static void
rb_take_session(void *conn)
{
	rconn *c = conn;
	take_session(c);
	c->applied_sent = ce_repl_applied(c->h);
}

static int
rb_serve(rconn *c, const rp_hdr *h, const uint8_t *pl, ce_epoch fe)
{
	/* scratch for an answer: the payload buffer past the frame (RB_SCAN's 48 bytes; an RB_RANGES
	 * answer of 4096 ranges is 98320 bytes) */
	_Static_assert(4096 + 16 + 24 * RP_RB_MAX_RANGES <= RP_MAX_PAYLOAD, "the RB_RANGES answer fits");
	rb_peer rp = { c, c->p, c->name, c->h, fe, c->st == CS_SESSION, c->payload + 4096, &c->rb_bytes,
		&c->rb_committed, rb_send, rb_error, rb_take_session, c->rd, c->export_name };
	return rb_target_frame(&rp, h, pl);
}

static int
destroy_vol(ce_pool *p, void *arg)
{
	return ce_vol_destroy(p, (const char *)arg);
}

/*
 * RETIRE (replica-protocol.md 5.4, as built): only flag 1, destroy, of a
 * replica that holds no write (applied and hi 0): what `vol create` cleans
 * up after a failure part-way. Answered STATUS (state 3) once it is gone;
 * then the connection closes. 0 go on (refused), <0 close.
 */
static int
serve_retire(rconn *c, const rp_hdr *h, const uint8_t *pl, const ce_repl_info *ri)
{
	uint32_t flags;
	memcpy(&flags, pl, sizeof(flags));
	if (flags != 1) {
		send_error(c, RPE_INVALID_ARGUMENT, h, 0, NULL, 0, "RETIRE: only flag 1 (destroy) is built");
		return 0;
	}
	if (ri->applied != 0 || ri->hi != 0) {
		send_error(c, RPE_INVALID_ARGUMENT, h, 0, NULL, 0, "RETIRE: the replica holds writes: not destroyed");
		return 0;
	}
	rp_status st;
	fill_status(&st, ri, c->st == CS_SESSION);
	st.st_state = 3; /* retired: gone */
	char pool[64], name[256];
	snprintf(pool, sizeof(pool), "%s", c->pool);
	snprintf(name, sizeof(name), "%s", c->name);
	unbind(c);
	c->st = CS_AUTH;
	int err = reg_with_pool(pool, destroy_vol, name);
	if (err != 0) {
		char msg[200];
		snprintf(msg, sizeof(msg), "RETIRE: %s", ce_errmsg());
		send_error(c, RPE_IO_ERROR, h, 1, NULL, 0, msg);
		return err;
	}
	log_info("replica %s/%s destroyed by its controller %s (RETIRE: vol create failed)", pool, name, c->peer);
	(void)send_frame(c, RP_STATUS, 0, 0, h->rf_id, &st, sizeof(st));
	return -ECONNRESET;
}

/* One frame after the handshake: 0 go on, <0 close. */

/*
 * ROLLBACK and RESIZE (feature VOLOP, replica-protocol.md section 7.2): at
 * their seq (checked by the caller), applied like a snapshot operation, then
 * made durable with the record before OP_DONE, so an answered rollback or
 * resize survives a crash of k members (replication.md 3.6, as built).
 */
static int
serve_volop(rconn *c, const rp_hdr *h, const uint8_t *pl, ce_epoch fe)
{
	uint16_t t = h->rf_type;
	char name[257] = "";
	uint64_t size = 0;
	unsigned flags = 0;
	if (t == RP_ROLLBACK) {
		rp_snap sn;
		memcpy(&sn, pl, sizeof(sn));
		snprintf(name, sizeof(name), "%.256s", sn.sn_name);
		if ((sn.sn_flags & ~(uint32_t)SN_DESTROY_LATER) != 0 || name[0] == '\0') {
			send_error(c, RPE_INVALID_ARGUMENT, h, 1, NULL, 0, "ROLLBACK: unknown flags or no snapshot name");
			return -EPROTO;
		}
		flags = sn.sn_flags & SN_DESTROY_LATER ? CE_ROLLBACK_DESTROY_LATER : 0;
	} else {
		rp_resize rz;
		memcpy(&rz, pl, sizeof(rz));
		if ((rz.rz_flags & ~(uint32_t)RZ_SHRINK) != 0 || rz.rz_size == 0) {
			send_error(c, RPE_INVALID_ARGUMENT, h, 1, NULL, 0, "RESIZE: unknown flags or size 0");
			return -EPROTO;
		}
		size = rz.rz_size;
		flags = rz.rz_flags & RZ_SHRINK ? CE_RESIZE_SHRINK : 0;
	}
	int op_err = 0;
	int err = ce_repl_volop(c->h, fe, h->rf_seq, t == RP_ROLLBACK ? CE_REPL_ROLLBACK : CE_REPL_RESIZE, name, size,
	    flags, &op_err);
	if (err == -ESTALE) {
		ce_repl_info ri;
		(void)ce_repl_info_get(c->p, c->name, &ri);
		send_error(c, RPE_STALE_EPOCH, h, 1, &ri, 0, ce_errmsg());
		return -ESTALE;
	}
	if (err != 0) {
		send_error(c, err == -EINVAL ? RPE_INVALID_ARGUMENT : RPE_IO_ERROR, h, 1, NULL, 0, ce_errmsg());
		return err;
	}
	char why[200];
	snprintf(why, sizeof(why), "%s", op_err ? ce_errmsg() : "");
	uint64_t d;
	if ((err = ce_repl_flush(c->h, &d)) != 0) {
		send_error(c, RPE_POOL_SUSPENDED, h, 1, NULL, 0, ce_errmsg());
		return err;
	}
	c->applied_pending = 1;
	if (flush_applied(c) != 0 || send_frame(c, RP_DURABLE, 0, d, h->rf_id, NULL, 0) != 0)
		return -EPIPE;
	rp_op_done od = { op_err ? (uint32_t)RPE_INVALID_ARGUMENT : 0, 0, op_err ? (uint64_t)-op_err : 0 };
	if (t == RP_ROLLBACK)
		log_info("replica %s: ROLLBACK to %s at seq %" PRIu64 "%s%s", c->export_name, name, h->rf_seq,
		    op_err ? ": " : "", why);
	else
		log_info("replica %s: RESIZE to %" PRIu64 " at seq %" PRIu64 "%s%s", c->export_name, size, h->rf_seq,
		    op_err ? ": " : "", why);
	return send_frame(c, RP_OP_DONE, 0, h->rf_seq, h->rf_id, &od, sizeof(od));
}

static int
serve_frame(rconn *c, const rp_hdr *h, const uint8_t *pl)
{
	char msg[200];
	uint16_t t = h->rf_type;
	long want = rp_payload_size(t);
	/* 3. type and state */
	int ok_state;
	switch (t) {
	case RP_CREATE: case RP_ATTACH: ok_state = c->st == CS_AUTH; break;
	case RP_KEEPALIVE: case RP_BYE: ok_state = 1; break;
	case RP_PREPARE: case RP_STATUS_REQ: ok_state = c->st >= CS_BOUND; break;
	case RP_START_EPOCH: case RP_MB_COMMIT: case RP_RETIRE: ok_state = c->st >= CS_PROMISED; break;
	case RP_WRITE: case RP_TRIM: case RP_ZERO: case RP_FLUSH: case RP_READ: ok_state = c->st >= CS_BOUND; break;
	case RP_RB_BEGIN: case RP_RB_SCAN: case RP_RB_DATA: case RP_RB_HOLE: case RP_RB_CURSOR: case RP_RB_END:
		if (!(c->features & RP_FEAT_REBUILD)) {
			send_error(c, RPE_UNKNOWN_TYPE, h, 1, NULL, 0, "a frame of a feature not negotiated (REBUILD)");
			return -EPROTO;
		}
		ok_state = c->st >= CS_BOUND;
		break;
	case RP_RB_READ:
		if (!(c->features & RP_FEAT_RB_READ)) {
			send_error(c, RPE_UNKNOWN_TYPE, h, 1, NULL, 0, "a frame of a feature not negotiated (RB_READ)");
			return -EPROTO;
		}
		ok_state = c->st >= CS_BOUND;
		break;
	case RP_CKSUM:
		if (!(c->features & RP_FEAT_VERIFY)) {
			send_error(c, RPE_UNKNOWN_TYPE, h, 1, NULL, 0, "a frame of a feature not negotiated (VERIFY)");
			return -EPROTO;
		}
		ok_state = c->st >= CS_BOUND;
		break;
	case RP_ROLLBACK: case RP_RESIZE:
		if (!(c->features & RP_FEAT_VOLOP)) {
			send_error(c, RPE_UNKNOWN_TYPE, h, 1, NULL, 0, "a frame of a feature not negotiated (VOLOP)");
			return -EPROTO;
		}
		ok_state = c->st >= CS_BOUND;
		break;
	case RP_TAIL_LIST: case RP_TAIL_BEGIN: case RP_TAIL_DATA:
	case RP_SNAPSHOT: case RP_SNAP_DESTROY: case RP_SNAP_RENAME:
		if (!(c->features & RP_FEAT_TAIL)) {
			send_error(c, RPE_UNKNOWN_TYPE, h, 1, NULL, 0, "a frame of a feature not negotiated (TAIL)");
			return -EPROTO;
		}
		ok_state = t == RP_TAIL_LIST || t == RP_TAIL_BEGIN || t == RP_TAIL_DATA ? c->st >= CS_PROMISED :
		    c->st >= CS_BOUND;
		break;
	default:
		send_error(c, RPE_UNKNOWN_TYPE, h, 1, NULL, 0, "a frame type a controller does not send");
		return -EPROTO;
	}
	if (c->lease_only && t != RP_KEEPALIVE && t != RP_BYE) {
		send_error(c, RPE_BAD_FRAME, h, 1, NULL, 0, "a lease connection carries only KEEPALIVE");
		return -EPROTO;
	}
	if (!ok_state || (want >= 0 && h->rf_len != (uint32_t)want) || (want == -1 && h->rf_len < 16) ||
	    (t == RP_TAIL_DATA && h->rf_len > 16 + RP_MAX_IO) ||
	    (h->rf_flags & ~(uint32_t)(t == RP_WRITE ? RPF_FUA | RPF_REPAIR : 0)) != 0) {
		snprintf(msg, sizeof(msg), "%s: wrong size, flags or state", rp_type_name(t));
		send_error(c, RPE_BAD_FRAME, h, 1, NULL, 0, msg);
		return -EPROTO;
	}
	if (t == RP_BYE)
		return -ECONNRESET;
	if (t == RP_KEEPALIVE && c->st < CS_BOUND)
		return send_frame(c, RP_KEEPALIVE_ACK, 0, 0, h->rf_id, pl, 16);
	if (t == RP_CREATE || t == RP_ATTACH) {
		int code;
		if (t == RP_CREATE) {
			rp_create cr;
			memcpy(&cr, pl, sizeof(cr));
			char pool[65], name[257];
			snprintf(pool, sizeof(pool), "%.64s", cr.cr_pool);
			snprintf(name, sizeof(name), "%.256s", cr.cr_name);
			create_args a = { .cr = &cr, .code = 0 };
			memcpy(a.name, name, sizeof(a.name) - 1);
			a.name[sizeof(a.name) - 1] = 0;
			if (cr.cr_sync == CE_SYNC_DISABLED) {
				send_error(c, RPE_REPLICA_SYNC_DISABLED, h, 0, NULL, 0, "a replica cannot be sync=disabled");
				return 0;
			}
			int err = reg_with_pool(pool, create_in_pool, &a);
			if (err != 0) {
				if (a.code == 0) {
					a.code = RPE_POOL_NOT_FOUND;
					snprintf(a.msg, sizeof(a.msg), "%s", ce_errmsg());
				}
				send_error(c, (uint32_t)a.code, h, 0, NULL, 0, a.msg);
				return 0;
			}
			code = bind_volume(c, pool, name, cr.cr_vol_uuid, msg, sizeof(msg));
			if (code == 0) {
				c->st = CS_PROMISED; /* CREATE records the promise of cr_epoch */
				log_info("replica %s/%s created for %s (epoch %" PRIu64 ".%016" PRIx64 ")", pool,
				    name, c->peer, cr.cr_epoch_ctr, cr.cr_epoch_node);
			}
		} else {
			rp_attach at;
			memcpy(&at, pl, sizeof(at));
			char pool[65], name[257];
			snprintf(pool, sizeof(pool), "%.64s", at.at_pool);
			snprintf(name, sizeof(name), "%.256s", at.at_name);
			if ((at.at_flags & ~(uint32_t)AT_LEASE) != 0 || ((at.at_flags & AT_LEASE) &&
			    !(c->features & RP_FEAT_VOLOP))) {
				send_error(c, RPE_INVALID_ARGUMENT, h, 1, NULL, 0, "ATTACH: unknown flags, or LEASE without "
				    "the feature VOLOP");
				return -EPROTO;
			}
			code = bind_volume(c, pool, name, at.at_vol_uuid, msg, sizeof(msg));
			if (code == 0)
				c->lease_only = (at.at_flags & AT_LEASE) != 0;
		}
		if (code != 0) {
			send_error(c, (uint32_t)code, h, 0, NULL, 0, msg);
			return 0;
		}
		return send_status(c, RP_STATUS, h->rf_id);
	}
	/* 4. epoch, against the record */
	ce_repl_info ri;
	if (ce_repl_info_get(c->p, c->name, &ri) != 0) {
		send_error(c, RPE_VOLUME_NOT_FOUND, h, 1, NULL, 0, "the replica volume is gone");
		return -ENOENT;
	}
	ce_epoch fe = { h->rf_epoch_ctr, h->rf_epoch_node };
	int cmp = ce_epoch_cmp(fe, ri.promised);
	if (t != RP_STATUS_REQ) {
		if (cmp < 0 || (t != RP_PREPARE && cmp == 0 && ce_epoch_cmp(c->e, ri.promised) != 0)) {
			snprintf(msg, sizeof(msg), "epoch %" PRIu64 ".%016" PRIx64 " is older than the promised %" PRIu64
			    ".%016" PRIx64, fe.counter, fe.node, ri.promised.counter, ri.promised.node);
			send_error(c, RPE_STALE_EPOCH, h, 1, &ri, 0, msg);
			return -ESTALE;
		}
		if (cmp > 0 && t != RP_PREPARE) {
			send_error(c, RPE_NOT_PROMISED, h, 1, &ri, 0, "a newer epoch that was never promised");
			return -ESTALE;
		}
	}
	/* 5. session (READ also on a promised connection: a reconciliation reads its reference) */
	if ((is_sequenced(t) || t == RP_FLUSH || (t == RP_READ && c->st != CS_PROMISED) || rb_target_needs_session(t)) &&
	    c->st != CS_SESSION) {
		send_error(c, RPE_NOT_SESSION, h, 1, &ri, 0, "not the volume's session");
		return -ESTALE;
	}
	switch (t) {
	case RP_RETIRE:
		return serve_retire(c, h, pl, &ri);
	case RP_KEEPALIVE:
		/* a lease connection is bound with the promised epoch (checked above): its renewal is the holder's */
		if ((c->st >= CS_PROMISED || c->lease_only) && repl_lease_grant(c->export_name, fe) != 0)
			return 0; /* a newer epoch is being promised: no renewal, the holder's lease runs out */
		return send_frame(c, RP_KEEPALIVE_ACK, 0, 0, h->rf_id, pl, 16);
	case RP_STATUS_REQ:
		return send_status(c, RP_STATUS, h->rf_id);
	case RP_PREPARE: {
		rp_prepare pr;
		memcpy(&pr, pl, sizeof(pr));
		char addr[65];
		snprintf(addr, sizeof(addr), "%.64s", pr.pr_addr);
		ce_epoch expect = { pr.pr_expect_ctr, pr.pr_expect_node };
		if (pr.pr_mode < PR_RESUME || pr.pr_mode > PR_JOIN) {
			send_error(c, RPE_BAD_FRAME, h, 1, NULL, 0, "PREPARE: unknown mode");
			return -EPROTO;
		}
		if (ce_epoch_cmp(fe, ri.promised) > 0 &&
		    (pr.pr_mode != PR_RESUME || ce_epoch_cmp(ri.promised, expect) <= 0))
			repl_lease_wait(c->export_name, fe); /* the older holder's lease runs out first (3.3 item 7) */
		int err = ce_repl_promise(c->p, c->name, fe, addr, pr.pr_mode == PR_RESUME ? &expect : NULL, &ri);
		if (err == -ESTALE) {
			int elsewhere = ce_epoch_cmp(fe, ri.promised) > 0;
			send_error(c, elsewhere ? RPE_PROMISED_ELSEWHERE : RPE_STALE_EPOCH, h, 1, &ri, 0, ce_errmsg());
			return -ESTALE;
		}
		if (err != 0) {
			send_error(c, RPE_IO_ERROR, h, 1, NULL, 0, ce_errmsg());
			return err;
		}
		c->e = fe;
		if (c->st < CS_PROMISED)
			c->st = CS_PROMISED;
		log_info("replica %s: promised epoch %" PRIu64 ".%016" PRIx64 " to %s (%s)", c->export_name,
		    fe.counter, fe.node, addr, c->peer);
		return send_status(c, RP_PROMISE, h->rf_id);
	}
	case RP_START_EPOCH: {
		rp_start_epoch se;
		memcpy(&se, pl, sizeof(se));
		int err = ce_repl_start_epoch(c->p, c->name, fe, h->rf_seq, se.se_mb);
		if (err == -ESTALE) {
			send_error(c, RPE_STALE_EPOCH, h, 1, &ri, 0, ce_errmsg());
			return -ESTALE;
		}
		if (err == -EPROTO) {
			send_error(c, RPE_EPOCH_REFUSED, h, 0, NULL, ri.applied, ce_errmsg());
			return 0;
		}
		if (err != 0) {
			send_error(c, err == -EINVAL ? RPE_INVALID_ARGUMENT : RPE_IO_ERROR, h, err != -EINVAL, NULL, 0,
			    ce_errmsg());
			return err == -EINVAL ? 0 : err;
		}
		take_session(c);
		c->applied_sent = h->rf_seq;
		log_info("replica %s: epoch %" PRIu64 ".%016" PRIx64 " started at %" PRIu64 " (%s)", c->export_name,
		    fe.counter, fe.node, h->rf_seq, c->peer);
		return send_status(c, RP_EPOCH_STARTED, h->rf_id);
	}
	case RP_TAIL_LIST: {
		rp_tail_list tl;
		memcpy(&tl, pl, sizeof(tl));
		return tail_list(c, h, &tl);
	}
	case RP_TAIL_BEGIN: {
		rp_tail_begin tb;
		memcpy(&tb, pl, sizeof(tb));
		int err = ce_repl_tail_begin(c->p, c->name, fe, tb.tb_hist, tb.tb_nhist);
		if (err != 0) {
			send_error(c, err == -ESTALE ? RPE_STALE_EPOCH : err == -EPROTO ? RPE_EPOCH_REFUSED :
			    err == -EINVAL ? RPE_INVALID_ARGUMENT : RPE_IO_ERROR, h, err != -EINVAL && err != -EPROTO, &ri,
			    0, ce_errmsg());
			return err == -EINVAL || err == -EPROTO ? 0 : err;
		}
		log_info("replica %s: tail sync for epoch %" PRIu64 ".%016" PRIx64 " begins (%s)", c->export_name,
		    fe.counter, fe.node, c->peer);
		return send_status(c, RP_STATUS, h->rf_id);
	}
	case RP_TAIL_DATA: {
		rp_tail_data td;
		memcpy(&td, pl, sizeof(td));
		int zero = (td.td_flags & 1) != 0;
		if ((td.td_flags & ~1u) != 0 || td.td_length == 0 || td.td_offset > ri.size ||
		    td.td_length > ri.size - td.td_offset || (zero ? h->rf_len != 16 : h->rf_len != 16 + td.td_length)) {
			send_error(c, RPE_INVALID_RANGE, h, 1, NULL, 0, "TAIL_DATA outside the volume or of a wrong size");
			return -EPROTO;
		}
		int err = ce_repl_tail_write(c->h, fe, pl + 16, td.td_length, td.td_offset, zero);
		if (err != 0) {
			send_error(c, err == -ESTALE ? RPE_STALE_EPOCH : err == -ENOSPC ? RPE_NO_SPACE : RPE_IO_ERROR, h, 1,
			    &ri, 0, ce_errmsg());
			return err;
		}
		return 0;
	}
	case RP_MB_COMMIT: {
		int err = ce_repl_membership(c->p, c->name, fe, pl);
		if (err == -ESTALE) {
			send_error(c, RPE_MB_STALE, h, 0, NULL, 0, ce_errmsg());
			return 0;
		}
		if (err != 0) {
			send_error(c, err == -EINVAL ? RPE_INVALID_ARGUMENT : RPE_IO_ERROR, h, err != -EINVAL, NULL, 0,
			    ce_errmsg());
			return err == -EINVAL ? 0 : err;
		}
		rp_mb_ack ack = { 0, 0 };
		memcpy(&ack.version, pl, 8);
		return send_frame(c, RP_MB_ACK, 0, 0, h->rf_id, &ack, sizeof(ack));
	}
	case RP_FLUSH: {
		uint64_t d = 0;
		if (ce_repl_applied(c->h) < h->rf_seq) {
			send_error(c, RPE_SEQUENCE_GAP, h, 1, NULL, ce_repl_applied(c->h) + 1, "FLUSH beyond applied");
			return -EPROTO;
		}
		int err = ce_repl_flush(c->h, &d);
		if (err != 0) {
			send_error(c, RPE_POOL_SUSPENDED, h, 1, NULL, 0, ce_errmsg());
			return err;
		}
		if (flush_applied(c) != 0)
			return -EPIPE;
		return send_frame(c, RP_DURABLE, 0, d, h->rf_id, NULL, 0);
	}
	case RP_READ: {
		rp_read rd;
		memcpy(&rd, pl, sizeof(rd));
		if (rd.length == 0 || rd.length > RP_MAX_IO || rd.offset > ri.size || rd.length > ri.size - rd.offset) {
			send_error(c, RPE_INVALID_RANGE, h, 0, NULL, 0, "READ outside the volume");
			return 0;
		}
		uint64_t a = ce_repl_applied(c->h);
		if (a < rd.min_seq) {
			send_error(c, RPE_LAGGING, h, 0, NULL, a, "this replica has not applied min_seq");
			return 0;
		}
		uint8_t *buf = c->payload + 16;
		int err = ce_vol_read(c->rd, buf, rd.length, rd.offset);
		if (err != 0) {
			send_error(c, RPE_IO_ERROR, h, 0, NULL, 0, ce_errmsg());
			return 0;
		}
		rp_read_data rdd = { a, 0 };
		memcpy(c->payload, &rdd, 16);
		return send_frame(c, RP_READ_DATA, 0, 0, h->rf_id, c->payload, 16 + (size_t)rd.length);
	}
	case RP_CKSUM: {
		/* the digests L_i of replication.md 12.11 of the chunks of [offset, offset+length) of the
		 * live volume as this replica has applied it now; MORE while more frames follow */
		rp_cksum ck;
		memcpy(&ck, pl, sizeof(ck));
		if (ck.ck_identity != 0 || ck.ck_chunk != RP_CKSUM_CHUNK) {
			send_error(c, RPE_INVALID_RANGE, h, 0, NULL, 0, "CKSUM: only the live volume (identity 0) "
			    "in chunks of 1 MiB");
			return 0;
		}
		if (ck.ck_offset % RP_CKSUM_CHUNK != 0 || ck.ck_length == 0 || ck.ck_offset >= ri.size ||
		    ck.ck_length > ri.size - ck.ck_offset) {
			send_error(c, RPE_INVALID_RANGE, h, 0, NULL, 0, "CKSUM outside the volume or not on a chunk");
			return 0;
		}
		uint64_t first = ck.ck_offset / RP_CKSUM_CHUNK;
		uint64_t end = (ck.ck_offset + ck.ck_length + RP_CKSUM_CHUNK - 1) / RP_CKSUM_CHUNK;
		while (first < end) {
			uint32_t n = (uint32_t)MIN(end - first, (uint64_t)RP_CKSUM_MAX);
			rp_cksum_reply cr = { first * RP_CKSUM_CHUNK, n, 0 };
			memcpy(c->payload, &cr, sizeof(cr));
			uint8_t (*dg)[16] = (uint8_t (*)[16])(c->payload + sizeof(cr));
			if (ce_vol_digest_chunks(c->rd, first, n, dg) != 0) {
				/* chunk by chunk: one this replica cannot read (a checksum error) has the digest
				 * of 16 zero bytes, "unreadable", so that the controller reports it */
				for (uint32_t i = 0; i < n; i++)
					if (ce_vol_digest_chunks(c->rd, first + i, 1, dg + i) != 0) {
						log_warn("replica %s: CKSUM: chunk at %" PRIu64 " unreadable: %s",
						    c->export_name, (first + i) * RP_CKSUM_CHUNK, ce_errmsg());
						memset(dg[i], 0, 16);
					}
			}
			first += n;
			int e2 = send_frame(c, RP_CKSUM_REPLY, first < end ? RPF_MORE : 0, 0, h->rf_id, c->payload,
			    sizeof(cr) + (size_t)n * 16);
			if (e2 != 0)
				return e2;
		}
		return 0;
	}
	default:
		if (rb_target_type(t))
			return rb_serve(c, h, pl, fe);
		break;
	}
	/* 6. sequence, then 7. act (one at a time, in order) */
	uint64_t applied = ce_repl_applied(c->h);
	if (h->rf_seq != applied + 1) {
		send_error(c, h->rf_seq > applied + 1 ? RPE_SEQUENCE_GAP : RPE_SEQUENCE_DUP, h, 1, NULL, applied + 1,
		    "out of sequence");
		return -EPROTO;
	}
	int err;
	if (t == RP_SNAPSHOT || t == RP_SNAP_DESTROY || t == RP_SNAP_RENAME) {
		rp_snap sn;
		memcpy(&sn, pl, sizeof(sn));
		char name[257], nn[257] = "";
		snprintf(name, sizeof(name), "%.256s", sn.sn_name);
		if (t == RP_SNAP_RENAME)
			snprintf(nn, sizeof(nn), "%.256s", (const char *)pl + sizeof(sn));
		int op_err = 0;
		err = ce_repl_snap(c->h, fe, h->rf_seq, t == RP_SNAPSHOT ? CE_REPL_SNAP_CREATE :
		    t == RP_SNAP_DESTROY ? CE_REPL_SNAP_DESTROY : CE_REPL_SNAP_RENAME, name, nn, &op_err);
		if (err == -ESTALE) {
			(void)ce_repl_info_get(c->p, c->name, &ri);
			send_error(c, RPE_STALE_EPOCH, h, 1, &ri, 0, ce_errmsg());
			return -ESTALE;
		}
		if (err != 0) {
			send_error(c, err == -EINVAL ? RPE_INVALID_ARGUMENT : RPE_IO_ERROR, h, 1, NULL, 0, ce_errmsg());
			return err;
		}
		c->applied_pending = 1;
		if (flush_applied(c) != 0)
			return -EPIPE;
		/* the snapshot operation committed (its own txg): done, with its outcome */
		rp_op_done od = { op_err ? (uint32_t)RPE_INVALID_ARGUMENT : 0, 0, op_err ? (uint64_t)-op_err : 0 };
		log_info("replica %s: %s %s at seq %" PRIu64 "%s%s", c->export_name, rp_type_name(t), name, h->rf_seq,
		    op_err ? ": " : "", op_err ? strerror(-op_err) : "");
		return send_frame(c, RP_OP_DONE, 0, h->rf_seq, h->rf_id, &od, sizeof(od));
	}
	if (t == RP_ROLLBACK || t == RP_RESIZE)
		return serve_volop(c, h, pl, fe);
	uint64_t off, len;
	if (t == RP_WRITE) {
		rp_write w;
		memcpy(&w, pl, sizeof(w));
		off = w.wr_offset;
		len = w.wr_length;
		if (len == 0 || len > RP_MAX_IO || len != h->rf_len - 16 || off > ri.size || len > ri.size - off) {
			send_error(c, RPE_INVALID_RANGE, h, 1, NULL, 0, "WRITE outside the volume");
			return -EPROTO;
		}
		err = ce_repl_write(c->h, fe, h->rf_seq, pl + 16, len, off);
	} else {
		rp_range r;
		memcpy(&r, pl, sizeof(r));
		off = r.offset;
		len = r.length;
		if (len == 0 || off > ri.size || len > ri.size - off) {
			send_error(c, RPE_INVALID_RANGE, h, 1, NULL, 0, "range outside the volume");
			return -EPROTO;
		}
		err = t == RP_TRIM ? ce_repl_trim(c->h, fe, h->rf_seq, off, len) :
		    ce_repl_zero(c->h, fe, h->rf_seq, off, len);
	}
	if (err == -ESTALE) {
		(void)ce_repl_info_get(c->p, c->name, &ri);
		send_error(c, RPE_STALE_EPOCH, h, 1, &ri, 0, ce_errmsg());
		return -ESTALE;
	}
	if (err != 0) {
		/* not consumed (repl.c): end the session; the controller ejects this replica */
		send_error(c, err == -ENOSPC ? RPE_NO_SPACE : err == -EIO ? RPE_IO_ERROR : RPE_INVALID_ARGUMENT, h, 1,
		    NULL, 0, ce_errmsg());
		return err;
	}
	c->applied_pending = 1;
	if (h->rf_flags & RPF_FUA) {
		uint64_t d;
		if ((err = ce_repl_flush(c->h, &d)) != 0) {
			send_error(c, RPE_POOL_SUSPENDED, h, 1, NULL, 0, ce_errmsg());
			return err;
		}
		if (flush_applied(c) != 0)
			return -EPIPE;
		return send_frame(c, RP_DURABLE, 0, d, h->rf_id, NULL, 0);
	}
	return 0;
}

static void
conn_loop(rconn *c)
{
	int err = handshake(c);
	pthread_mutex_lock(&conns_mu);
	nunauth--;
	pthread_mutex_unlock(&conns_mu);
	if (err != 0) {
		log_info("replica peer %s refused: %s", c->peer, strerror(-err));
		return;
	}
	for (;;) {
		rp_hdr h;
		if (read_exact(c, &h, sizeof(h), 0) != 0)
			return;
		int code = rp_check_header(&h, RP_MAX_PAYLOAD, c->version);
		if (code != 0) {
			send_error(c, (uint32_t)code, &h, 1, NULL, 0, "bad frame header");
			return;
		}
		if (read_exact(c, c->payload, h.rf_len, 0) != 0)
			return;
		if ((code = rp_verify(&h, c->payload)) != 0) {
			send_error(c, RPE_BAD_CHECKSUM, &h, 1, NULL, 0, "checksum mismatch: nothing of the frame was used");
			return;
		}
		if (serve_frame(c, &h, c->payload) != 0)
			return;
	}
}

/*
 * End a connection so that the last frames sent (a fatal ERROR above all:
 * STALE_EPOCH is how a stale controller learns it is fenced) reach the peer.
 * Closing a socket with unread input makes the kernel answer with a reset,
 * and a reset may destroy what the peer has not read yet; so the write side
 * is shut first (the peer reads our frames, then end of stream) and input
 * is read and dropped until the peer closes too, for at most
 * LINGER_MS. Stopping the service shuts the read side, which ends this wait.
 */
#define LINGER_MS 2000
static void
linger_close(rconn *c)
{
	shutdown(c->fd, SHUT_WR);
	uint64_t until = util_now_ns() / 1000000u + LINGER_MS;
	for (;;) {
		uint64_t now = util_now_ns() / 1000000u;
		if (now >= until)
			break;
		struct pollfd pf = { c->fd, POLLIN, 0 };
		int r = poll(&pf, 1, (int)(until - now));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		ssize_t n = recv(c->fd, c->in, IN_CAP, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
	}
	shutdown(c->fd, SHUT_RDWR);
}

static void *
conn_thread(void *arg)
{
	rconn *c = arg;
	conn_loop(c);
	(void)flush_applied(c);
	unbind(c);
	linger_close(c);
	pthread_mutex_lock(&conns_mu);
	c->done = 1;
	pthread_mutex_unlock(&conns_mu);
	return NULL;
}

static void
reap(int all)
{
	for (;;) {
		rconn *victim = NULL;
		pthread_mutex_lock(&conns_mu);
		for (rconn **pp = &conns; *pp != NULL; pp = &(*pp)->next) {
			if ((*pp)->done || all) {
				victim = *pp;
				*pp = victim->next;
				break;
			}
		}
		if (victim != NULL && all && !victim->done)
			shutdown(victim->fd, SHUT_RDWR);
		pthread_mutex_unlock(&conns_mu);
		if (victim == NULL)
			return;
		pthread_join(victim->th, NULL);
		close(victim->fd);
		free(victim->in);
		free(victim->payload);
		free(victim);
	}
}

static void *
accept_thread(void *arg)
{
	(void)arg;
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(listen_fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
		if (stopping) {
			if (fd >= 0)
				close(fd);
			return NULL;
		}
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE)
				continue;
			return NULL;
		}
		reap(0);
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		char host[64] = "?", port[16] = "?";
		getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port, sizeof(port),
		    NI_NUMERICHOST | NI_NUMERICSERV);
		rconn *c = calloc(1, sizeof(*c));
		c->fd = fd;
		snprintf(c->peer, sizeof(c->peer), "%s:%s", host, port);
		c->in = malloc(IN_CAP);
		c->payload = malloc(RP_MAX_PAYLOAD + 64);
		pthread_mutex_lock(&conns_mu);
		if (nunauth >= MAX_UNAUTH) {
			pthread_mutex_unlock(&conns_mu);
			rp_error e;
			rp_error_fill(&e, RPE_BUSY, 0, 0, 1, "too many unauthenticated connections");
			(void)send_frame(c, RP_ERROR, 0, 0, 0, &e, sizeof(e));
			close(fd);
			free(c->in);
			free(c->payload);
			free(c);
			continue;
		}
		nunauth++;
		c->next = conns;
		conns = c;
		if (pthread_create(&c->th, NULL, conn_thread, c) != 0) {
			conns = c->next;
			nunauth--;
			pthread_mutex_unlock(&conns_mu);
			close(fd);
			free(c->in);
			free(c->payload);
			free(c);
			continue;
		}
		pthread_mutex_unlock(&conns_mu);
	}
}

int
repl_service_listen(const char *addr)
{
	char host[128], port[32];
	if (repl_split_addr(addr, host, sizeof(host), port, sizeof(port)) != 0)
		return err_set(-EINVAL, "--replica-listen '%s': want ADDR:PORT or [V6ADDR]:PORT", addr);
	struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM }, *res;
	int g = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (g != 0)
		return err_set(-EINVAL, "--replica-listen '%s': %s", addr, gai_strerror(g));
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 64) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return err_set(-e, "cannot listen for replica peers on %s: %s", addr, strerror(e));
	}
	freeaddrinfo(res);
	listen_fd = fd;
	return 0;
}

int
repl_service_start(void)
{
	if (listen_fd < 0)
		return 0;
	if (pthread_create(&accept_th, NULL, accept_thread, NULL) != 0)
		return err_set(-EAGAIN, "cannot start the replica service thread");
	accept_running = 1;
	log_info("replica service listening (%s)", cfg.key ? "peers authenticate with the peer key" :
	    "INSECURE: peers are not authenticated (--insecure-peers)");
	return 0;
}

void
repl_service_stop(void)
{
	if (listen_fd < 0)
		return;
	stopping = 1;
	shutdown(listen_fd, SHUT_RDWR);
	if (accept_running)
		pthread_join(accept_th, NULL);
	accept_running = 0;
	close(listen_fd);
	listen_fd = -1;
	reap(1);
}

/* ---- read leases (replication.md 3.3 item 7, as built) ---- */

typedef struct lease_ent {
	char name[330];
	ce_epoch floor;       /* grants go only to this epoch or newer */
	uint64_t granted_ns;  /* the last grant (CLOCK_MONOTONIC) */
	struct lease_ent *next;
} lease_ent;

static pthread_mutex_t lease_mu = PTHREAD_MUTEX_INITIALIZER;
static lease_ent *leases;
static uint64_t lease_start_ns; /* this process's first use: a grant before it is unknown */

static uint64_t
lease_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Under lease_mu: the entry of a volume, made on first use. */
static lease_ent *
lease_find(const char *name)
{
	if (lease_start_ns == 0)
		lease_start_ns = lease_now();
	for (lease_ent *l = leases; l != NULL; l = l->next)
		if (strcmp(l->name, name) == 0)
			return l;
	lease_ent *l = xcalloc(1, sizeof(*l));
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->granted_ns = lease_start_ns; /* a grant before a restart may still run: count one from the start */
	l->next = leases;
	leases = l;
	return l;
}

int
repl_lease_grant(const char *export_name, ce_epoch e)
{
	pthread_mutex_lock(&lease_mu);
	lease_ent *l = lease_find(export_name);
	int err = 0;
	if (ce_epoch_cmp(e, l->floor) < 0) {
		err = -ESTALE;
	} else {
		l->floor = e;
		l->granted_ns = lease_now();
	}
	pthread_mutex_unlock(&lease_mu);
	return err;
}

void
repl_lease_wait(const char *export_name, ce_epoch newer)
{
	pthread_mutex_lock(&lease_mu);
	lease_ent *l = lease_find(export_name);
	int older = ce_epoch_cmp(newer, l->floor) > 0;
	if (older)
		l->floor = newer; /* from now on the older holder cannot renew */
	uint64_t until = l->granted_ns + (uint64_t)REPL_LEASE_MS * 1000000ull;
	pthread_mutex_unlock(&lease_mu);
	if (!older)
		return;
	for (uint64_t now = lease_now(); now < until; now = lease_now()) {
		uint64_t d = until - now;
		struct timespec ts = { (time_t)(d / 1000000000ull), (long)(d % 1000000000ull) };
		nanosleep(&ts, NULL);
	}
}
