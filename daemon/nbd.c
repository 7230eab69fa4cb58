/*
 * nbd.c -- the NBD server (doc/proto.md of the NetworkBlockDevice project),
 * a conn_proto (conn.c) over the volume IO interface (vio.h).
 *
 * A connection goes through:
 *
 *   greeting (on_open) -> client flags -> option haggling -> transmission -> closed
 *   (parse states ST_FLAGS, ST_OPTIONS, ST_OPT_SKIP, ST_REQUEST, ST_PAYLOAD or ST_DIRECT, ST_SKIP,
 *   ST_DONE)
 *
 * Options: EXPORT_NAME, ABORT, LIST, INFO, GO, STRUCTURED_REPLY,
 * LIST_META_CONTEXT, SET_META_CONTEXT (base:allocation); others get
 * NBD_REP_ERR_UNSUP. Commands: READ, WRITE, FLUSH, TRIM, WRITE_ZEROES,
 * BLOCK_STATUS, CACHE, DISC, with FUA. Exports are volumes named "pool/vol".
 *
 * Invariants:
 *   1. A bad request gets the error reply the protocol defines and the
 *      connection goes on; only a request whose framing cannot be trusted
 *      (bad magic, a write payload too large to skip) closes it. Nothing a
 *      client sends can stop the daemon or affect other clients.
 *   2. FLUSH is answered only after every write answered before it on any
 *      connection to the same export is durable (ce_vol_flush commits the
 *      volume's log: CAN_MULTI_CONN is true). It does not cover other
 *      volumes of the pool. A FUA write, trim or zero is answered only
 *      after it is durable. The volume's sync property can make every
 *      write durable (always) or make flushes no-ops (disabled, unsafe).
 *   3. A connection holds its export open (a vio handle, and so its pool,
 *      which cannot be exported meanwhile) and closes it only when nothing
 *      of it is in flight, however the connection ends.
 *   4. Requests are parsed on the connection's loop thread and submitted
 *      to vio; completions come back as conn messages and are answered in
 *      any order (the protocol matches replies by cookie). Each reply is
 *      queued whole, so replies never interleave. conn.c bounds what a
 *      connection may have in flight and unread (design-vio.md §5).
 *   5. Requests already read when a connection ends (DISC, EOF, SIGTERM)
 *      are run and answered first.
 *   6. Past --max-connections a client gets the greeting and an
 *      NBD_REP_ERR_POLICY reply naming the limit to every option; it is
 *      never served.
 *   7. TLS (--tls=on|require, tls.c): NBD_OPT_STARTTLS is answered with an
 *      ACK, then the TLS handshake (conn_start_tls); options negotiated
 *      before it are forgotten (the protocol's rule). With --tls=require,
 *      before the handshake every option but STARTTLS and ABORT is
 *      refused with NBD_REP_ERR_TLS_REQD (EXPORT_NAME, which has no error
 *      reply, closes the connection): no export is listed, described or
 *      served in the clear.
 *   8. With --tls-access, INFO, GO, EXPORT_NAME and the meta context
 *      options of an export the client's identity is not granted are
 *      refused (NBD_REP_ERR_POLICY; EXPORT_NAME closes), and LIST names
 *      only the exports it may open (tls.c invariant 4).
 *   9. A WRITE of whole blocks at a block-aligned offset, on an export whose
 *      stack ends in the engine (VIO_CAP_ADOPT), is read from the socket
 *      straight into block buffers of the engine's pool (conn_read_into),
 *      which the engine puts into the volume's dirty map as they are
 *      (ce_vol_write_adopt): the payload's only copy is the kernel's. The
 *      memory is the same as a contiguous payload's (one request being
 *      read, conn.c's bounds on what is in flight); once taken, the
 *      blocks are dirty data, bounded by the pool's dirty limit.
 */
#include "nbd.h"
#include "conn.h"
#include "log.h"
#include "registry.h"
#include "tls.h"
#include "util.h"
#include "vio.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBDMAGIC 0x4e42444d41474943ull
#define IHAVEOPT 0x49484156454f5054ull
#define OPT_REPLY_MAGIC 0x3e889045565a9ull
#define REQUEST_MAGIC 0x25609513u
#define SIMPLE_REPLY_MAGIC 0x67446698u
#define STRUCTURED_REPLY_MAGIC 0x668e33efu

enum { FLAG_FIXED_NEWSTYLE = 1, FLAG_NO_ZEROES = 2 };
enum {
	OPT_EXPORT_NAME = 1, OPT_ABORT = 2, OPT_LIST = 3, OPT_STARTTLS = 5, OPT_INFO = 6, OPT_GO = 7,
	OPT_STRUCTURED_REPLY = 8, OPT_LIST_META_CONTEXT = 9, OPT_SET_META_CONTEXT = 10,
};
#define REP_ERR(n) (0x80000000u | (n))
enum { REP_ACK = 1, REP_SERVER = 2, REP_INFO = 3, REP_META_CONTEXT = 4 };
enum { ERR_UNSUP = 1, ERR_POLICY = 2, ERR_INVALID = 3, ERR_PLATFORM = 4, ERR_TLS_REQD = 5, ERR_UNKNOWN = 6,
	ERR_TOO_BIG = 9 };
enum { INFO_EXPORT = 0, INFO_NAME = 1, INFO_DESCRIPTION = 2, INFO_BLOCK_SIZE = 3 };
enum {
	TF_HAS_FLAGS = 1 << 0, TF_READ_ONLY = 1 << 1, TF_SEND_FLUSH = 1 << 2, TF_SEND_FUA = 1 << 3,
	TF_SEND_TRIM = 1 << 5, TF_SEND_WRITE_ZEROES = 1 << 6, TF_CAN_MULTI_CONN = 1 << 8,
	TF_SEND_CACHE = 1 << 10, TF_SEND_FAST_ZERO = 1 << 11,
};
enum { CMD_READ = 0, CMD_WRITE = 1, CMD_DISC = 2, CMD_FLUSH = 3, CMD_TRIM = 4, CMD_CACHE = 5,
	CMD_WRITE_ZEROES = 6, CMD_BLOCK_STATUS = 7 };
enum { CF_FUA = 1 << 0, CF_NO_HOLE = 1 << 1, CF_DF = 1 << 2, CF_REQ_ONE = 1 << 3, CF_FAST_ZERO = 1 << 4 };
enum { RT_OFFSET_DATA = 1, RT_BLOCK_STATUS = 5, RT_ERROR = 0x8001 };
enum { RF_DONE = 1 };
enum { NBD_EPERM = 1, NBD_EIO = 5, NBD_ENOMEM = 12, NBD_EINVAL = 22, NBD_ENOSPC = 28,
	NBD_EOVERFLOW = 75, NBD_ENOTSUP = 95, NBD_ESHUTDOWN = 108 };
enum { STATE_HOLE = 1, STATE_ZERO = 2 };

#define MAX_PAYLOAD (32u << 20)  /* largest READ/WRITE we accept, as advertised */
#define MAX_OPTION (64u << 10)   /* largest option payload we read */
#define MAX_SKIP (64u << 20)     /* largest bad payload we read and discard */
#define MAX_EXTENTS 1024u        /* block status descriptors per reply */
#define META_ID_ALLOC 1u
static void
put16(uint8_t *p, uint16_t v)
{
	v = htobe16(v);
	memcpy(p, &v, 2);
}
static void
put32(uint8_t *p, uint32_t v)
{
	v = htobe32(v);
	memcpy(p, &v, 4);
}
static void
put64(uint8_t *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, 8);
}
static uint16_t
get16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return be16toh(v);
}
static uint32_t
get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return be32toh(v);
}
static uint64_t
get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return be64toh(v);
}


enum { ST_FLAGS, ST_OPTIONS, ST_OPT_SKIP, ST_REQUEST, ST_PAYLOAD, ST_DIRECT, ST_SKIP, ST_DONE };

typedef struct pbuf {
	size_t cap;
	struct pbuf *next;
	/* the payload follows, 4 KiB aligned */
} pbuf;
#define PBUF_HDR 4096u
#define PBUF_KEEP 4
#define PBUF_KEEP_MAX (1u << 20)

typedef struct nconn nconn;

typedef struct nreq {
	vio_req vr;
	conn_msg msg;
	nconn *nc;
	uint16_t flags, type;
	uint64_t cookie;
	uint32_t len;
	int64_t budget;
	uint8_t *data;          /* WRITE payload, READ buffer */
	void **blk;             /* ST_DIRECT: the WRITE payload in block buffers (vr.blk until the engine takes them) */
	struct iovec *iov;      /* the same, for conn_read_into */
	uint32_t bs;
	uint32_t pre_error;     /* a skipped write: reply this error */
	const char *pre_msg;
} nreq;

struct nconn {
	conn *c;
	int state;
	int structured;
	int meta_alloc;        /* base:allocation selected */
	int no_zeroes;
	int tls;               /* STARTTLS agreed: what follows is inside the session */
	char export_name[4097];
	vio_vol *vol;
	uint64_t size;
	uint16_t tflags;
	uint32_t skip_opt;     /* ST_OPT_SKIP: the option being skipped */
	uint64_t skip_left;    /* ST_OPT_SKIP, ST_SKIP: bytes still to discard */
	uint64_t skip_total;
	nreq *cur;             /* ST_PAYLOAD, ST_SKIP: the write being read */
	uint32_t have;         /* ST_PAYLOAD: payload bytes read so far */
	pbuf *bfree;           /* recycled payload buffers (loop thread only) */
	int nbfree;
};

/* ---- payload buffers ---- */

static uint8_t *
buf_get(nconn *nc, size_t n)
{
	pbuf **pp = &nc->bfree;
	while (*pp != NULL && (*pp)->cap < n)
		pp = &(*pp)->next;
	pbuf *b = *pp;
	if (b != NULL) {
		*pp = b->next;
		nc->nbfree--;
	} else {
		size_t cap = 4096;
		while (cap < n)
			cap <<= 1;
		b = xmalloc_aligned(PBUF_HDR + cap);
		b->cap = cap;
	}
	return (uint8_t *)b + PBUF_HDR;
}

static void
buf_put(nconn *nc, uint8_t *data)
{
	if (data == NULL)
		return;
	pbuf *b = (pbuf *)(data - PBUF_HDR);
	if (nc != NULL && nc->nbfree < PBUF_KEEP && b->cap <= PBUF_KEEP_MAX) {
		b->next = nc->bfree;
		nc->bfree = b;
		nc->nbfree++;
		return;
	}
	free(b);
}

/* ---- option haggling ---- */

static void
opt_reply(nconn *nc, uint32_t opt, uint32_t type, const void *data, uint32_t len)
{
	uint8_t h[20];
	put64(h, OPT_REPLY_MAGIC);
	put32(h + 8, opt);
	put32(h + 12, type);
	put32(h + 16, len);
	conn_write(nc->c, h, 20);
	if (len)
		conn_write(nc->c, data, len);
}

static void
opt_error(nconn *nc, uint32_t opt, uint32_t err, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void
opt_error(nconn *nc, uint32_t opt, uint32_t err, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	util_utf8_repair(msg, strlen(msg)); /* the protocol's messages are UTF-8; a name it echoes may not be */
	log_debug("nbd %s: option %u refused: %s", conn_peer(nc->c), opt, msg);
	opt_reply(nc, opt, REP_ERR(err), msg, (uint32_t)strlen(msg));
}

static uint16_t
export_flags(unsigned caps)
{
	/* A snapshot (pool/vol@snap) is served read-only: writes get EPERM. */
	uint16_t f = TF_HAS_FLAGS;
	if (caps & VIO_CAP_READ_ONLY)
		f |= TF_READ_ONLY;
	if (caps & VIO_CAP_FLUSH)
		f |= TF_SEND_FLUSH;
	if (caps & VIO_CAP_FUA)
		f |= TF_SEND_FUA;
	if (caps & VIO_CAP_TRIM)
		f |= TF_SEND_TRIM;
	if (caps & VIO_CAP_ZERO)
		f |= TF_SEND_WRITE_ZEROES;
	if (caps & VIO_CAP_FAST_ZERO)
		f |= TF_SEND_FAST_ZERO;
	if (caps & VIO_CAP_CACHE)
		f |= TF_SEND_CACHE;
	if (caps & VIO_CAP_MULTI_CONN)
		f |= TF_CAN_MULTI_CONN;
	return f;
}

static void
attach(nconn *nc, vio_vol *v, const char *name)
{
	nc->vol = v;
	nc->size = vio_size(v);
	nc->tflags = export_flags(vio_caps(v));
	snprintf(nc->export_name, sizeof(nc->export_name), "%.4096s", name);
}

/* Parse "u32 len, name" at data; returns bytes used or -1. */
static int
parse_name(const uint8_t *data, uint32_t len, char *name, size_t cap)
{
	if (len < 4)
		return -1;
	uint32_t n = get32(data);
	if (n > len - 4 || n >= cap)
		return -1;
	memcpy(name, data + 4, n);
	name[n] = '\0';
	if (memchr(name, '\0', n) != NULL)
		return -1;
	return (int)(4 + n);
}

/* INFO or GO; returns 1 when GO entered transmission. */
static int
do_info(nconn *nc, uint32_t opt, const uint8_t *data, uint32_t len)
{
	char name[4097];
	int used = parse_name(data, len, name, sizeof(name));
	if (used < 0 || (uint32_t)used + 2 > len) {
		opt_error(nc, opt, ERR_INVALID, "malformed %s request", opt == OPT_GO ? "GO" : "INFO");
		return 0;
	}
	uint16_t nreqs = get16(data + used);
	if ((uint32_t)used + 2 + 2u * nreqs != len) {
		opt_error(nc, opt, ERR_INVALID, "INFO request count does not match its length");
		return 0;
	}
	if (!tls_allows(conn_tls_identity(nc->c), name)) {
		opt_error(nc, opt, ERR_POLICY, "export '%s' is not open to this client", name);
		return 0;
	}
	int err;
	vio_vol *v = vio_open(name, 0, &err);
	if (v == NULL) {
		opt_error(nc, opt, err == -ENOENT || err == -EINVAL || err == -ENXIO ? ERR_UNKNOWN : ERR_PLATFORM,
		    "export '%s': %s", name, ce_errmsg());
		return 0;
	}
	if (opt == OPT_GO && conn_set_export(nc->c, name) != 0) { /* --max-export-connections */
		vio_close(v);
		opt_error(nc, opt, ERR_POLICY, "caskd: %s; try again later", ce_errmsg());
		return 0;
	}
	uint8_t info[12];
	put16(info, INFO_EXPORT);
	put64(info + 2, vio_size(v));
	put16(info + 10, export_flags(vio_caps(v)));
	opt_reply(nc, opt, REP_INFO, info, 12);
	for (uint16_t i = 0; i < nreqs; i++) {
		uint16_t what = get16(data + used + 2 + 2 * i);
		if (what == INFO_NAME) {
			uint8_t nb[2 + 4096];
			put16(nb, INFO_NAME);
			size_t nl = strlen(name);
			memcpy(nb + 2, name, nl);
			opt_reply(nc, opt, REP_INFO, nb, (uint32_t)(2 + nl));
		} else if (what == INFO_BLOCK_SIZE) {
			/* Any offset and length works (read-modify-write); whole blocks avoid it. */
			uint8_t bs[14];
			put16(bs, INFO_BLOCK_SIZE);
			put32(bs + 2, 1);
			put32(bs + 6, vio_block_size(v));
			put32(bs + 10, MAX_PAYLOAD);
			opt_reply(nc, opt, REP_INFO, bs, 14);
		}
	}
	opt_reply(nc, opt, REP_ACK, NULL, 0);
	if (opt == OPT_GO) {
		attach(nc, v, name);
		return 1;
	}
	vio_close(v);
	return 0;
}

static void
do_meta(nconn *nc, uint32_t opt, const uint8_t *data, uint32_t len)
{
	char name[4097];
	int set = opt == OPT_SET_META_CONTEXT;
	int used = parse_name(data, len, name, sizeof(name));
	if (used < 0 || (uint32_t)used + 4 > len)
		return opt_error(nc, opt, ERR_INVALID, "malformed meta context request");
	if (set && !nc->structured)
		return opt_error(nc, opt, ERR_INVALID, "SET_META_CONTEXT needs structured replies first");
	uint32_t nq = get32(data + used);
	uint32_t pos = (uint32_t)used + 4;
	/* Validate the whole query list before answering anything. */
	uint32_t scan = pos;
	for (uint32_t i = 0; i < nq; i++) {
		if (len - scan < 4 || get32(data + scan) > len - scan - 4)
			return opt_error(nc, opt, ERR_INVALID, "meta context query %u is malformed", i);
		scan += 4 + get32(data + scan);
	}
	if (scan != len)
		return opt_error(nc, opt, ERR_INVALID, "meta context request has trailing bytes");
	if (!tls_allows(conn_tls_identity(nc->c), name))
		return opt_error(nc, opt, ERR_POLICY, "export '%s' is not open to this client", name);
	ce_vol *v;
	ce_pool *p;
	if (reg_vol_open(name, &v, &p) != 0)
		return opt_error(nc, opt, ERR_UNKNOWN, "export '%s': %s", name, ce_errmsg());
	reg_vol_close(v, p);
	int want = nq == 0 && !set; /* LIST with no queries: every context */
	for (uint32_t i = 0; i < nq; i++) {
		uint32_t ql = get32(data + pos);
		const char *q = (const char *)data + pos + 4;
		if ((ql == strlen("base:allocation") && memcmp(q, "base:allocation", ql) == 0) ||
		    (!set && ql == 5 && memcmp(q, "base:", 5) == 0))
			want = 1;
		pos += 4 + ql;
	}
	if (set)
		nc->meta_alloc = want;
	if (want) {
		uint8_t r[4 + 15];
		put32(r, set ? META_ID_ALLOC : 0);
		memcpy(r + 4, "base:allocation", 15);
		opt_reply(nc, opt, REP_META_CONTEXT, r, sizeof(r));
	}
	opt_reply(nc, opt, REP_ACK, NULL, 0);
}

/* One option whose payload is all here. Sets the next state. */
static void
do_option(nconn *nc, uint32_t opt, const uint8_t *data, uint32_t len)
{
	conn *c = nc->c;
	if (conn_refused(c)) {
		/* Over the connection limit: say so to every option, serve nothing. */
		if (opt == OPT_ABORT) {
			opt_reply(nc, opt, REP_ACK, NULL, 0);
		} else if (opt != OPT_EXPORT_NAME) {
			opt_error(nc, opt, ERR_POLICY, "caskd: too many connections (limit %d); try again later",
			    conn_limit());
			if (opt != OPT_GO)
				return;
		}
		nc->state = ST_DONE;
		conn_close(c);
		return;
	}
	if (tls_mode() == TLS_REQUIRE && !nc->tls && opt != OPT_STARTTLS && opt != OPT_ABORT) {
		/* invariant 7: nothing in the clear */
		if (opt == OPT_EXPORT_NAME) {
			log_info("nbd %s: EXPORT_NAME in the clear while TLS is required; closing", conn_peer(c));
			nc->state = ST_DONE;
			conn_close(c);
		} else {
			opt_error(nc, opt, ERR_TLS_REQD, "this server requires TLS: use NBD_OPT_STARTTLS first");
		}
		return;
	}
	switch (opt) {
	case OPT_EXPORT_NAME: {
		char name[4097];
		if (len > 4096) {
			log_info("nbd %s: export name of %u bytes is too long; closing", conn_peer(c), len);
			break;
		}
		memcpy(name, data, len);
		name[len] = '\0';
		if (memchr(name, '\0', len) != NULL) { /* would name a shorter export */
			log_info("nbd %s: export name holds a NUL byte; closing", conn_peer(c));
			break;
		}
		if (!tls_allows(conn_tls_identity(c), name)) {
			log_info("nbd %s: export '%s' is not open to this client; closing", conn_peer(c), name);
			break;
		}
		int err;
		vio_vol *v = vio_open(name, 0, &err);
		if (v == NULL) {
			/* The protocol has no error reply here: close. */
			log_info("nbd %s: export '%s': %s; closing", conn_peer(c), name, ce_errmsg());
			break;
		}
		if (conn_set_export(c, name) != 0) {
			vio_close(v);
			log_info("nbd %s: %s; closing", conn_peer(c), ce_errmsg());
			break;
		}
		attach(nc, v, name);
		uint8_t r[10 + 124];
		memset(r, 0, sizeof(r));
		put64(r, nc->size);
		put16(r + 8, nc->tflags);
		conn_write(c, r, nc->no_zeroes ? 10 : sizeof(r));
		goto transmit;
	}
	case OPT_ABORT:
		opt_reply(nc, opt, REP_ACK, NULL, 0);
		break;
	case OPT_LIST: {
		if (len != 0) {
			opt_error(nc, opt, ERR_INVALID, "LIST takes no data");
			return;
		}
		char **names;
		size_t n;
		reg_exports(&names, &n);
		for (size_t i = 0; i < n; i++) {
			if (!tls_allows(conn_tls_identity(c), names[i])) {
				free(names[i]);
				continue; /* only what this client may open is listed */
			}
			uint8_t r[4 + 512];
			size_t nl = MIN(strlen(names[i]), (size_t)512);
			put32(r, (uint32_t)nl);
			memcpy(r + 4, names[i], nl);
			opt_reply(nc, opt, REP_SERVER, r, (uint32_t)(4 + nl));
			free(names[i]);
		}
		free(names);
		opt_reply(nc, opt, REP_ACK, NULL, 0);
		return;
	}
	case OPT_INFO:
	case OPT_GO:
		if (do_info(nc, opt, data, len))
			goto transmit;
		return;
	case OPT_STRUCTURED_REPLY:
		if (len != 0)
			opt_error(nc, opt, ERR_INVALID, "STRUCTURED_REPLY takes no data");
		else if (nc->structured)
			opt_error(nc, opt, ERR_INVALID, "structured replies are already on");
		else {
			nc->structured = 1;
			opt_reply(nc, opt, REP_ACK, NULL, 0);
		}
		return;
	case OPT_LIST_META_CONTEXT:
	case OPT_SET_META_CONTEXT:
		do_meta(nc, opt, data, len);
		return;
	case OPT_STARTTLS:
		if (tls_mode() == TLS_OFF)
			opt_error(nc, opt, ERR_POLICY, "TLS is not offered by this server");
		else if (len != 0)
			opt_error(nc, opt, ERR_INVALID, "STARTTLS takes no data");
		else if (nc->tls)
			opt_error(nc, opt, ERR_INVALID, "TLS is already on");
		else {
			opt_reply(nc, opt, REP_ACK, NULL, 0);
			nc->tls = 1;
			nc->structured = 0; /* the options before it are forgotten (invariant 7) */
			nc->meta_alloc = 0;
			conn_start_tls(c, tls_ctx());
		}
		return;
	default:
		opt_error(nc, opt, ERR_UNSUP, "option %u is not supported", opt);
		return;
	}
	nc->state = ST_DONE;
	conn_close(c);
	return;
transmit:
	log_info("nbd %s: serving %s (%" PRIu64 " bytes)%s", conn_peer(c), nc->export_name, nc->size,
	    nc->structured ? ", structured replies" : "");
	nc->state = ST_REQUEST;
}

/* ---- transmission ---- */

static uint32_t
nbd_errno(int err)
{
	switch (-err) {
	case 0: return 0;
	case EPERM: case EROFS: return NBD_EPERM;
	case ENOMEM: return NBD_ENOMEM;
	case EINVAL: return NBD_EINVAL;
	case ENOSPC: return NBD_ENOSPC;
	case EOVERFLOW: return NBD_EOVERFLOW;
	case ENOTSUP: return NBD_ENOTSUP;
	case ESHUTDOWN: return NBD_ESHUTDOWN;
	default: return NBD_EIO;
	}
}

static void
reply_simple_hdr(nconn *nc, uint64_t cookie, uint32_t error)
{
	uint8_t h[16];
	put32(h, SIMPLE_REPLY_MAGIC);
	put32(h + 4, error);
	put64(h + 8, cookie);
	conn_write(nc->c, h, 16);
}

static void
reply_chunk_hdr(nconn *nc, uint64_t cookie, uint16_t flags, uint16_t type, size_t len)
{
	uint8_t h[20];
	put32(h, STRUCTURED_REPLY_MAGIC);
	put16(h + 4, flags);
	put16(h + 6, type);
	put64(h + 8, cookie);
	put32(h + 16, (uint32_t)len);
	conn_write(nc->c, h, 20);
}

/* An error reply (simple or structured, as negotiated). */
static void
reply_error(nconn *nc, uint64_t cookie, uint32_t nerr, const char *msg)
{
	if (!nc->structured)
		return reply_simple_hdr(nc, cookie, nerr);
	uint8_t e[6];
	size_t ml = MIN(strlen(msg), (size_t)1024);
	ml = util_utf8_valid_prefix(msg, ml); /* UTF-8: never cut inside a character */
	put32(e, nerr);
	put16(e + 4, (uint16_t)ml);
	reply_chunk_hdr(nc, cookie, RF_DONE, RT_ERROR, 6 + ml);
	conn_write(nc->c, e, 6);
	conn_write(nc->c, msg, ml);
}

typedef struct rdref {
	nconn *nc;
	uint8_t *data;
} rdref;

static void
release_read(void *arg)
{
	rdref *x = arg;
	buf_put(x->nc, x->data);
	free(x);
}

static void
req_free(nconn *nc, nreq *r)
{
	if (r->vr.blk != NULL) /* not taken by the engine (refused, or the connection ended) */
		for (uint32_t i = 0; i < r->len / r->bs; i++)
			ce_blockbuf_put(r->vr.blk[i], r->bs);
	free(r->blk);
	free(r->iov);
	buf_put(nc, r->data);
	free(r->vr.ext);
	free(r);
}

/* Loop thread: a request completed; answer it. */
static void
answer(nconn *nc, nreq *r)
{
	vio_req *vr = &r->vr;
	conn_budget(nc->c, -1, -r->budget);
	if (vr->status != 0) {
		reply_error(nc, r->cookie, nbd_errno(vr->status), vr->msg);
	} else if (r->type == CMD_READ) {
		rdref *x = xmalloc(sizeof(*x));
		x->nc = nc;
		x->data = r->data;
		r->data = NULL;
		if (!nc->structured) {
			reply_simple_hdr(nc, r->cookie, 0);
		} else {
			uint8_t o[8];
			put64(o, vr->off);
			reply_chunk_hdr(nc, r->cookie, RF_DONE, RT_OFFSET_DATA, 8 + r->len);
			conn_write(nc->c, o, 8);
		}
		conn_write_ref(nc->c, x->data, r->len, release_read, x);
	} else if (r->type == CMD_BLOCK_STATUS) {
		size_t n = vr->ext_n;
		uint8_t *d = xmalloc(4 + 8 * n);
		put32(d, META_ID_ALLOC);
		for (size_t i = 0; i < n; i++) {
			put32(d + 4 + 8 * i, (uint32_t)vr->ext[i].length);
			put32(d + 8 + 8 * i, (vr->ext[i].flags & CE_EXTENT_HOLE) ? STATE_HOLE | STATE_ZERO : 0);
		}
		reply_chunk_hdr(nc, r->cookie, RF_DONE, RT_BLOCK_STATUS, 4 + 8 * n);
		conn_write(nc->c, d, 4 + 8 * n);
		free(d);
	} else {
		reply_simple_hdr(nc, r->cookie, 0);
	}
	req_free(nc, r);
}

static void
on_msg(conn *c, conn_msg *m)
{
	nreq *r = (nreq *)((char *)m - offsetof(nreq, msg));
	answer(conn_data(c), r);
}

/* Any thread: vio finished r. */
static void
vio_done(vio_req *vr)
{
	nreq *r = (nreq *)vr;
	conn_post(r->nc->c, &r->msg);
}

static void
submit(nconn *nc, nreq *r, int op, uint32_t vflags, int64_t budget)
{
	r->vr.op = (uint8_t)op;
	r->vr.flags = vflags;
	r->vr.done = vio_done;
	r->budget = budget;
	conn_budget(nc->c, 1, budget);
	vio_submit(nc->vol, &r->vr);
}

/* Validate a request read whole (a write with its payload) and submit it, or answer its error. */
static void
dispatch(nconn *nc, nreq *r)
{
	uint16_t flags = r->flags, type = r->type;
	uint64_t off = r->vr.off;
	uint32_t len = r->len;
	int in_range = off <= nc->size && len <= nc->size - off;
	const char *bad = NULL;
	uint32_t nerr = NBD_EINVAL;

	if (r->pre_error) {
		nerr = r->pre_error;
		bad = r->pre_msg;
		goto refuse;
	}
	switch (type) {
	case CMD_WRITE:
		if (flags & ~(uint16_t)CF_FUA)
			bad = "unsupported flags for WRITE";
		else if (!in_range)
			nerr = NBD_ENOSPC, bad = "write beyond the end of the export";
		if (bad)
			goto refuse;
		r->vr.buf = r->data; /* NULL when the payload is in r->vr.blk */
		return submit(nc, r, VIO_WRITE, (flags & CF_FUA) ? VIO_FUA : 0, len);
	case CMD_READ:
		if (flags & ~(uint16_t)(CF_FUA | CF_DF))
			bad = "unsupported flags for READ";
		else if (len > MAX_PAYLOAD)
			bad = "read larger than the maximum payload";
		else if (!in_range)
			bad = "read beyond the end of the export";
		if (bad)
			goto refuse;
		r->data = buf_get(nc, len ? len : 1);
		r->vr.buf = r->data;
		return submit(nc, r, VIO_READ, 0, len);
	case CMD_FLUSH:
		if (flags != 0) {
			bad = "unsupported flags for FLUSH";
			goto refuse;
		}
		return submit(nc, r, VIO_FLUSH, 0, 0);
	case CMD_TRIM:
	case CMD_WRITE_ZEROES: {
		uint16_t ok = type == CMD_TRIM ? CF_FUA : (CF_FUA | CF_NO_HOLE | CF_FAST_ZERO);
		if (flags & ~ok)
			bad = "unsupported flags";
		else if (!in_range)
			nerr = type == CMD_TRIM ? NBD_EINVAL : NBD_ENOSPC, bad = "range beyond the end of the export";
		if (bad)
			goto refuse;
		uint32_t vf = ((flags & CF_FUA) ? VIO_FUA : 0) | ((flags & CF_NO_HOLE) ? VIO_NO_HOLE : 0) |
		    ((flags & CF_FAST_ZERO) ? VIO_FAST_ZERO : 0);
		return submit(nc, r, type == CMD_TRIM ? VIO_TRIM : VIO_ZERO, vf, 0);
	}
	case CMD_CACHE:
		if (flags != 0)
			bad = "unsupported flags for CACHE";
		else if (!in_range)
			bad = "range beyond the end of the export";
		if (bad)
			goto refuse;
		return submit(nc, r, VIO_CACHE, 0, 0);
	case CMD_BLOCK_STATUS:
		if (!nc->structured || !nc->meta_alloc)
			bad = "BLOCK_STATUS needs a negotiated meta context";
		else if (flags & ~(uint16_t)CF_REQ_ONE)
			bad = "unsupported flags for BLOCK_STATUS";
		else if (len == 0 || !in_range)
			bad = "bad range for BLOCK_STATUS";
		if (bad)
			goto refuse;
		r->vr.ext = xmalloc(MAX_EXTENTS * sizeof(ce_extent));
		r->vr.ext_max = MAX_EXTENTS;
		return submit(nc, r, VIO_MAP, (flags & CF_REQ_ONE) ? VIO_MAP_ONE : 0, 0);
	default:
		bad = "unknown command";
		goto refuse;
	}
refuse:
	reply_error(nc, r->cookie, nerr, bad);
	req_free(nc, r);
}

/* ---- parsing (conn_proto.on_data) ---- */

/* conn_read_into's done: a WRITE payload is in its block buffers. */
static void
payload_done(conn *c, void *arg)
{
	nconn *nc = conn_data(c);
	nreq *r = arg;
	VERIFY(nc->state == ST_DIRECT && nc->cur == r);
	nc->cur = NULL;
	nc->state = ST_REQUEST;
	dispatch(nc, r);
}

static size_t
on_data(conn *c, const uint8_t *p, size_t n)
{
	nconn *nc = conn_data(c);
	switch (nc->state) {
	case ST_FLAGS: {
		if (n < 4)
			return 0;
		uint32_t cflags = get32(p);
		if (cflags & ~(uint32_t)(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES)) {
			log_info("nbd %s: unknown client flags 0x%x, closing", conn_peer(c), cflags);
			nc->state = ST_DONE;
			conn_close(c);
			return 4;
		}
		nc->no_zeroes = (cflags & FLAG_NO_ZEROES) != 0;
		nc->state = ST_OPTIONS;
		return 4;
	}
	case ST_OPTIONS: {
		if (n < 16)
			return 0;
		if (get64(p) != IHAVEOPT) {
			log_info("nbd %s: bad option magic, closing", conn_peer(c));
			nc->state = ST_DONE;
			conn_close(c);
			return n;
		}
		uint32_t opt = get32(p + 8), len = get32(p + 12);
		if (len > MAX_OPTION) {
			if (len > MAX_SKIP) {
				nc->state = ST_DONE;
				conn_close(c);
				return n;
			}
			nc->skip_opt = opt;
			nc->skip_left = nc->skip_total = len;
			nc->state = ST_OPT_SKIP;
			return 16;
		}
		if (n < 16u + len)
			return 0;
		do_option(nc, opt, p + 16, len);
		return 16u + len;
	}
	case ST_OPT_SKIP: {
		size_t k = (size_t)MIN((uint64_t)n, nc->skip_left);
		nc->skip_left -= k;
		if (nc->skip_left == 0) {
			opt_error(nc, nc->skip_opt, ERR_TOO_BIG, "option payload of %" PRIu64 " bytes is too large",
			    nc->skip_total);
			nc->state = ST_OPTIONS;
		}
		return k;
	}
	case ST_REQUEST: {
		if (n < 28)
			return 0;
		if (get32(p) != REQUEST_MAGIC) {
			log_info("nbd %s: bad request magic 0x%08x, closing", conn_peer(c), get32(p));
			nc->state = ST_DONE;
			conn_close(c);
			return n;
		}
		nreq *r = xcalloc(1, sizeof(*r));
		r->nc = nc;
		r->flags = get16(p + 4);
		r->type = get16(p + 6);
		r->cookie = get64(p + 8);
		r->vr.off = get64(p + 16);
		r->len = get32(p + 24);
		r->vr.len = r->len;
		if (r->type == CMD_DISC) {
			free(r);
			nc->state = ST_DONE;
			conn_close(c); /* what was read before is answered first (invariant 5) */
			return 28;
		}
		if (r->type != CMD_WRITE) {
			dispatch(nc, r);
			return 28;
		}
		/* The payload follows: read it (or skip it) before anything else. */
		if (r->len > MAX_PAYLOAD) {
			log_info("nbd %s: write of %u bytes exceeds the %u limit", conn_peer(c), r->len, MAX_PAYLOAD);
			if (r->len > MAX_SKIP) {
				free(r);
				nc->state = ST_DONE;
				conn_close(c);
				return n;
			}
			r->pre_error = NBD_EOVERFLOW;
			r->pre_msg = "write larger than the maximum payload";
			nc->cur = r;
			nc->skip_left = r->len;
			nc->state = ST_SKIP;
			return 28;
		}
		uint32_t bs = vio_block_size(nc->vol);
		if ((vio_caps(nc->vol) & VIO_CAP_ADOPT) && r->len >= bs && r->len % bs == 0 && r->vr.off % bs == 0) {
			/* invariant 9: straight into block buffers the engine adopts */
			uint32_t nb = r->len / bs;
			r->bs = bs;
			r->blk = xmalloc(nb * sizeof(*r->blk));
			r->iov = xmalloc(nb * sizeof(*r->iov));
			for (uint32_t i = 0; i < nb; i++) {
				r->blk[i] = ce_blockbuf_get(bs);
				r->iov[i] = (struct iovec){ r->blk[i], bs };
			}
			r->vr.blk = r->blk;
			nc->cur = r;
			nc->state = ST_DIRECT;
			conn_read_into(c, r->iov, (int)nb, payload_done, r);
			return 28;
		}
		r->data = buf_get(nc, r->len ? r->len : 1);
		nc->cur = r;
		nc->have = 0;
		nc->state = ST_PAYLOAD;
		if (r->len == 0) {
			nc->cur = NULL;
			nc->state = ST_REQUEST;
			dispatch(nc, r);
		}
		return 28;
	}
	case ST_PAYLOAD: {
		nreq *r = nc->cur;
		size_t k = MIN(n, (size_t)(r->len - nc->have));
		memcpy(r->data + nc->have, p, k);
		nc->have += (uint32_t)k;
		if (nc->have == r->len) {
			nc->cur = NULL;
			nc->state = ST_REQUEST;
			dispatch(nc, r);
		}
		return k;
	}
	case ST_DIRECT:
		VERIFY(!"on_data during a direct read"); /* conn.c invariant 10 */
		return 0;
	case ST_SKIP: {
		size_t k = (size_t)MIN((uint64_t)n, nc->skip_left);
		nc->skip_left -= k;
		if (nc->skip_left == 0) {
			nreq *r = nc->cur;
			nc->cur = NULL;
			nc->state = ST_REQUEST;
			dispatch(nc, r);
		}
		return k;
	}
	default:
		return n; /* ST_DONE: discard */
	}
}

static void
on_open(conn *c)
{
	nconn *nc = xcalloc(1, sizeof(*nc));
	nc->c = c;
	nc->state = ST_FLAGS;
	conn_set_data(c, nc);
	uint8_t hello[18];
	put64(hello, NBDMAGIC);
	put64(hello + 8, IHAVEOPT);
	put16(hello + 16, FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
	conn_write(c, hello, 18);
}

static void
on_close(conn *c)
{
	nconn *nc = conn_data(c);
	if (nc == NULL)
		return;
	if (nc->cur != NULL)
		req_free(nc, nc->cur);
	vio_close(nc->vol);
	while (nc->bfree != NULL) {
		pbuf *b = nc->bfree;
		nc->bfree = b->next;
		free(b);
	}
	free(nc);
}

static const conn_proto nbd_proto = { "nbd", on_open, on_data, on_msg, on_close };

int
nbd_listen(const char *spec)
{
	return conn_listen(spec, &nbd_proto);
}
