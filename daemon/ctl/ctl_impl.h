/*
 * ctl_impl.h -- what the files of the control server share
 * (docs/control-protocol.md). daemon/ctl.h is its face to the rest of
 * caskd.
 *
 *   server.c   the socket, access (SO_PEERCRED), the loop and its workers, framing,
 *              dispatch through the operation table
 *   ops.c      the operation table (CTL_OPS below, instantiated)
 *   errors.c   the stable code of a failure in a request's context
 *   args.c     JSON argument helpers, names, with_vol
 *   page.c     paged listings (sorted keys, cursors)
 *   client.c   client.list, client.kill, and the holders of a BUSY object
 *   hello.c pool.c vol.c snap.c xfer.c diff.c jobs.c
 *              the operations, one file per noun (xfer: send and receive
 *              jobs and their stream plumbing)
 *
 * Adding an operation: a new file with its op_ function, and one line in
 * CTL_OPS (with the feature `hello` should announce, if any).
 *
 * An operation is int op_x(json_object *args, json_object *res, reqerr *e):
 * args is the request's arguments (an object, perhaps empty); it adds its
 * result to res and returns 0, or returns the -errno with e filled by
 * fail() and err_set's message for people.
 */
#ifndef CASK_DAEMON_CTL_IMPL_H
#define CASK_DAEMON_CTL_IMPL_H

#include "../ctl.h"

#include <cask/engine.h>
#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

typedef struct reqerr {
	int err;            /* negative errno */
	int code;           /* its stable code, CE_E_* (cask/errcodes.h) */
	json_object *items; /* a batch refused: [{name, errno, code, message}] for each refused name */
} reqerr;

static inline int
fail(reqerr *e, int err, int code)
{
	e->err = err;
	e->code = code;
	return err;
}

/* X(name, function, feature): every operation; feature: what hello adds to its list, or NULL. */
#define CTL_OPS(X)                                  \
	X("hello", op_hello, NULL)                  \
	X("pool.create", op_pool_create, NULL)      \
	X("pool.import", op_pool_import, NULL)      \
	X("pool.export", op_pool_export, NULL)      \
	X("pool.destroy", op_pool_destroy, NULL)    \
	X("pool.list", op_pool_list, NULL)          \
	X("pool.status", op_pool_status, NULL)      \
	X("pool.clear", op_pool_clear, NULL)        \
	X("pool.inject", op_pool_inject, NULL)      \
	X("snap.create", op_snap_create, NULL)      \
	X("snap.destroy", op_snap_destroy, NULL)    \
	X("snap.list", op_snap_list, NULL)          \
	X("snap.rename", op_snap_rename, NULL)      \
	X("snap.hold", op_snap_hold, NULL)          \
	X("snap.release", op_snap_release, NULL)    \
	X("snap.holds", op_snap_holds, NULL)        \
	X("vol.rollback", op_vol_rollback, NULL)    \
	X("vol.clone", op_vol_clone, NULL)          \
	X("vol.promote", op_vol_promote, NULL)      \
	X("vol.send", op_vol_send, NULL)            \
	X("vol.recv", op_vol_recv, NULL)            \
	X("vol.recv_abandon", op_vol_recv_abandon, NULL) \
	X("vol.diff", op_vol_diff, NULL)            \
	X("job.get", op_job_get, NULL)              \
	X("job.wait", op_job_wait, NULL)            \
	X("job.cancel", op_job_cancel, NULL)        \
	X("job.list", op_job_list, NULL)            \
	X("vol.create", op_vol_create, NULL)        \
	X("vol.destroy", op_vol_destroy, NULL)      \
	X("vol.resize", op_vol_resize, NULL)        \
	X("vol.rename", op_vol_rename, NULL)        \
	X("vol.list", op_vol_list, NULL)            \
	X("vol.get", op_vol_get, NULL)              \
	X("vol.set", op_vol_set, NULL)              \
	X("vol.inherit", op_vol_inherit, NULL)      \
	X("vol.iostat", op_vol_iostat, "vol.iostat") \
	X("client.list", op_client_list, "client.list") \
	X("client.kill", op_client_kill, "client.kill") \
	X("sched.set", op_sched_set, "schedules")   \
	X("sched.list", op_sched_list, NULL)        \
	X("sched.run", op_sched_run, NULL)          \
	X("vol.status", op_vol_status, "replication") \
	X("iscsi.set", op_iscsi_set, "iscsi.config") \
	X("iscsi.chap.set", op_iscsi_chap_set, NULL) \
	X("iscsi.chap.unset", op_iscsi_chap_unset, NULL) \
	X("iscsi.config", op_iscsi_config, NULL)    \
	X("iscsi.targets", op_iscsi_targets, "iscsi.sessions") \
	X("iscsi.sessions", op_iscsi_sessions, NULL) \
	X("iscsi.logout", op_iscsi_logout, NULL)    \
	X("iscsi.pr", op_iscsi_pr, NULL)            \
	X("vol.takeover", op_vol_takeover, "replication") \
	X("vol.checksum", op_vol_checksum, "vol.checksum") \
	X("vol.replica_rebuild", op_vol_replica_rebuild, "replication.rebuild") \
	X("vol.verify", op_vol_verify, "replication.verify") \
	X("vol.replica_add", op_vol_replica_add, NULL) \
	X("vol.replica_replace", op_vol_replica_replace, NULL) \
	X("vol.replica_remove", op_vol_replica_remove, NULL) \
	X("test.vio_fault", op_test_vio_fault, NULL) \
	X("test.sched_clock", op_test_sched_clock, NULL)

typedef int (*ctl_op_fn)(json_object *args, json_object *res, reqerr *e);
/* repl.c: vol.create with "replicas" */
int op_vol_create_replicated(json_object *args, json_object *res, reqerr *e);
#define CTL_OP_DECL_(name, fn, feature) int fn(json_object *args, json_object *res, reqerr *e);
CTL_OPS(CTL_OP_DECL_)
#undef CTL_OP_DECL_

typedef struct ctl_op {
	const char *name;
	ctl_op_fn fn;
	const char *feature;
} ctl_op;
extern const ctl_op ctl_ops[];
extern const size_t ctl_nops;
/* The operation called name, or NULL. */
const ctl_op *ctl_op_find(const char *name);

/* server.c: the request this thread serves */
/* Take the descriptor passed with the request (the op then owns it), or -1. */
int ctl_take_fd(void);
/* The connection the request came on (jobs belong to it). */
uint64_t ctl_conn(void);
/* caskd's version, for hello. */
const char *ctl_version(void);

/* args.c */
const char *str_value(json_object *v, const char *what, reqerr *e);
/* Whether an object key in the request (raw[0..len) parsed as req) held a NUL. */
int nul_in_keys(const char *raw, size_t len, json_object *req);
const char *arg_str(json_object *args, const char *key, int required, reqerr *e);
int arg_u64(json_object *args, const char *key, int required, uint64_t *out, reqerr *e);
int arg_bool(json_object *args, const char *key, int *out, reqerr *e);
/* A "POOL/VOL" name split into its parts. */
int split_name(const char *full, char *pool, size_t plen, const char **vol, reqerr *e);
/* "pool" or "pool/rest" (optional argument `arg`) into pool and rest (NULL without a slash). */
int pool_or_name_arg(json_object *args, const char *arg, char *pool, size_t plen, const char **rest,
    const char **only, reqerr *e);
json_object *hex_guid(uint64_t g);
/* logical / allocated, two decimals (1.00 for nothing allocated) */
json_object *ratio_json(uint64_t logical, uint64_t alloc);

/* An operation on one named volume (or VOL@SNAP), run in its pool. */
typedef struct vctx {
	const char *pool;
	const char *vol;      /* within the pool */
	json_object *args;
	json_object *res;
	reqerr *e;
} vctx;
/* Split the "name" argument, run cb(pool, vctx) on its pool. */
int with_vol(json_object *args, json_object *res, reqerr *e, int (*cb)(ce_pool *, void *));
/* The "new_name" argument, POOL/VOL in the request's own pool: its VOL part, or NULL (error set). */
const char *new_name_arg(vctx *x);

/* client.c: what a connected frontend client may hold */
enum { HOLD_POOL, HOLD_VOL, HOLD_SNAP, HOLD_ROLLBACK };
/* Run fn; with args "force" first disconnect the clients holding the named
 * object(s) ("name" or "names"); a BUSY it returns names those still holding it. */
int with_holders(json_object *args, json_object *res, reqerr *e, int scope, const char *opname, ctl_op_fn fn);

/* page.c: listings (see there) */
#define KEY_LEN 800
typedef struct page_item {
	char key[KEY_LEN];
	json_object *it;
} page_item;
/* The items of a listing, gathered from its sources in any order. */
typedef struct page_list {
	page_item *v;
	size_t n, cap;
} page_list;
void page_put(page_list *pl, const char *key, json_object *it);
/* The "cursor" and "limit" arguments (a cursor holding a NUL is a BAD_REQUEST). */
int page_params(json_object *args, const char **cursor, uint64_t *limit, reqerr *e);
/* The page args asks for, as a JSON array (and "next" into res); takes the items;
 * page_params must have accepted args. */
json_object *page_of(page_list *pl, json_object *args, json_object *res);
/* A listing in progress: what each pool's callback adds to. */
typedef struct sl {
	const char *pool;
	const char *vol;      /* within the pool, or NULL */
	page_list *items;
	reqerr *e;
	const char *cursor;   /* the page asked for (page_params) */
	uint64_t limit;
} sl;
/* The order of a listing as a string key: "pool\x01rest" for "pool/rest". */
void key_of_name(const char *full, char *buf, size_t len);
void sl_add(sl *x, const void *items, size_t n, void (*key)(const sl *, const void *, size_t, char *),
    json_object *(*make)(const sl *, const void *, size_t));
int list_pools_paged(const char *only, const char *vol, int strict, int (*cb)(ce_pool *, void *),
    json_object *res, const char *key, reqerr *e, json_object *args);

#endif
