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
int conn_refused(const conn *c);
int conn_limit(void);
/* Queue output: copied. */
void conn_write(conn *c, const void *p, size_t n);
/* Queue output by reference: release(arg) once written (or the connection died). */
void conn_write_ref(conn *c, const void *p, size_t n, void (*release)(void *arg), void *arg);
/* End the connection once what is in flight is answered and the output written. */
void conn_close(conn *c);
/* Requests in flight on this connection and their bytes (the queue bound, design-vio.md §5). */
void conn_budget(conn *c, int dreqs, int64_t dbytes);
int conn_inflight(const conn *c);
/* From any thread: deliver m to on_msg on c's loop thread. */
void conn_post(conn *c, conn_msg *m);

/* counts for tests and the status op */
int conn_count(void);
/* Per frontend (protocol name), summed over its listeners: for the metrics server. */
typedef struct conn_fstats {
	const char *name;
	int listeners, current;      /* current: open connections, served or refused */
	uint64_t accepted, refused;  /* since start; refused: over --max-connections */
} conn_fstats;
/* Between conn_start and conn_stop; returns how many of out[0..max) it filled. */
size_t conn_frontend_stats(conn_fstats *out, size_t max);
#endif
