#ifndef CASK_DAEMON_CONN_H
#define CASK_DAEMON_CONN_H
/*
 * conn -- listeners, event loops and connection plumbing shared by the
 * frontends (NBD now, iSCSI next). docs/design-vio.md §4-6.
 *
 * Threading: a connection belongs to one loop thread; every conn_*
 * function below except conn_post runs on that thread only (the proto
 * callbacks are called there). conn_post may be called from any thread.
 */
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

typedef struct conn conn;

/* A completion (or any message) for a connection's loop: embed it in your struct. */
typedef struct conn_msg {
	struct conn_msg *next;
} conn_msg;

typedef struct conn_proto {
	const char *name;
	/* a new connection: send the greeting (conn_refused(c) says it is over the cap) */
	void (*on_open)(conn *c);
	/* bytes arrived: consume a prefix, return its length (0: need more). Not called while throttled. */
	size_t (*on_data)(conn *c, const uint8_t *p, size_t n);
	/* a message conn_post'ed for c */
	void (*on_msg)(conn *c, conn_msg *m);
	/* the connection is gone and nothing of it is in flight: free the protocol state */
	void (*on_close)(conn *c);
} conn_proto;

typedef struct conn_config {
	int loops;               /* event-loop threads (default: CPUs, at most 8) */
	int max_connections;     /* default 1024 */
	int stall_timeout;       /* seconds a throttled client may leave its replies unread (default 60) */
	int idle_timeout;        /* seconds a serving connection may do nothing (0: never cut, the default) */
	int handshake_timeout;   /* seconds from accept to conn_set_export (default 30) */
	int max_per_export;      /* connections serving one export (0: no limit, the default) */
} conn_config;

/* spec: "HOST:PORT", "[V6ADDR]:PORT" or "unix:PATH" */
int conn_listen(const char *spec, const conn_proto *proto);
int conn_start(const conn_config *cfg);
/* Stop accepting, end every connection (requests already read are answered), stop the loops. */
void conn_stop(void);

/* ---- for protocols, on the connection's loop thread ---- */
void conn_set_data(conn *c, void *p);
void *conn_data(conn *c);
const char *conn_peer(const conn *c);
/* The socket's local address as "ADDR:PORT" or "[V6ADDR]:PORT" (TCP only); -1 if unknown. */
int conn_local_addr(const conn *c, char *buf, size_t n);
int conn_refused(const conn *c);
int conn_limit(void);
/*
 * From on_data (or a done of this): the next iov[0..n) total bytes of input
 * go straight into those buffers, not through on_data (conn.c invariant
 * 10): what is buffered already is copied, the rest is read from the
 * socket into place. done(c, arg) runs on the loop thread once they are
 * all there; if the connection ends first it never runs (on_close frees
 * them). iov must stay valid until then.
 */
void conn_read_into(conn *c, const struct iovec *iov, int n, void (*done)(conn *c, void *arg), void *arg);
/* Queue output: copied. */
void conn_write(conn *c, const void *p, size_t n);
/* Queue output by reference: release(arg) once written (or the connection died). */
void conn_write_ref(conn *c, const void *p, size_t n, void (*release)(void *arg), void *arg);
/* TLS (conn.c invariant 9), ssl_ctx an SSL_CTX *: once the output queued so far (the
 * reply agreeing to it) is written, the server handshake runs; from then on every byte
 * goes through the session. Input after this call is no longer passed to on_data. */
void conn_start_tls(conn *c, void *ssl_ctx);
/* 1 once the TLS handshake has finished. */
int conn_tls(const conn *c);
/* Who the session authenticated: the PSK identity or the client certificate's CN ("" none). */
const char *conn_tls_identity(const conn *c);
/* End the connection once what is in flight is answered and the output written. */
void conn_close(conn *c);
/* Requests in flight on this connection and their bytes (the queue bound, design-vio.md §5). */
void conn_budget(conn *c, int dreqs, int64_t dbytes);
int conn_inflight(const conn *c);
/* From any thread: deliver m to on_msg on c's loop thread. */
void conn_post(conn *c, conn_msg *m);

/* The frontend names what c serves (an export, a target): from then on the
 * connection is "serving" (the idle timeout, not the handshake timeout,
 * applies) and client.list shows the name; --force matches holders by it. */
/* 0, or -EUSERS (ce_errmsg says so) when name already has --max-export-connections
 * connections: the frontend refuses the client then. */
int conn_set_export(conn *c, const char *name);

/* counts for tests and the status op */
int conn_count(void);

/* ---- from any thread: who is connected (client.list, client.kill) ---- */
typedef struct conn_info {
	uint64_t id;             /* unique while caskd runs, never reused */
	const char *frontend;    /* the proto's name (static) */
	char peer[80];           /* "ADDR:PORT" or "unix#FD" */
	long uid, pid;           /* a unix peer's (SO_PEERCRED), else -1 */
	char export_name[256];   /* conn_set_export's name, "" before it */
	int64_t since;           /* accept time, seconds since the epoch */
	int64_t idle;            /* seconds since the last byte either way */
	uint64_t bytes_in, bytes_out;
	int requests;            /* in flight */
	uint64_t queued_bytes;   /* payload in flight and output not yet written */
	const char *state;       /* "handshake", "serving", "closing", "refused" */
	char tls[96];            /* "TLSv1.3 psk:ID", "TLSv1.3 x509:/CN=..."; "" in the clear */
} conn_info;
/* A snapshot of every connection, by id; the caller frees *out. */
int conn_list(conn_info **out, size_t *n);
/* Disconnect a connection (what it has in flight completes first): 0, or
 * -ENOENT. why goes to the log line. */
int conn_kill(uint64_t id, const char *why);
/* Wait until none of ids is connected, at most timeout_ms: 0, or -ETIMEDOUT. */
int conn_wait_gone(const uint64_t *ids, size_t n, int timeout_ms);

/* Per frontend (protocol name), summed over its listeners: for the metrics server. */
typedef struct conn_fstats {
	const char *name;
	int listeners, current;      /* current: open connections, served or refused */
	uint64_t accepted, refused;  /* since start; refused: over --max-connections */
} conn_fstats;
/* Between conn_start and conn_stop; returns how many of out[0..max) it filled. */
size_t conn_frontend_stats(conn_fstats *out, size_t max);
#endif
