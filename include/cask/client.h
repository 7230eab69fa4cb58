/*
 * cask/client.h -- libcask, the C client library for caskd.
 *
 * Programs manage pools and volumes through this API; the cask CLI is
 * built on it. It speaks the control protocol (docs/control-protocol.md)
 * over caskd's unix socket.
 *
 * Conventions: functions return 0 on success or a negative errno; then
 * cask_error() describes the failure for the calling thread: the errno,
 * a stable symbolic code (e.g. "POOL_NOT_FOUND") and a message. Nothing
 * is ever printed. A client handle may be used from several threads at
 * once (requests on one handle are serialised). A handle is not valid in
 * a child after fork(): calls on it there fail with -EINVAL and send
 * nothing; connect again there.
 */
#ifndef CASK_CLIENT_H
#define CASK_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cask_client cask_client;

typedef struct cask_error_info {
	int err;          /* positive errno */
	char code[48];    /* stable code, see docs/control-protocol.md */
	char message[512];
} cask_error_info;

/* The last failure on this thread. */
const cask_error_info *cask_error(void);

/*
 * After a batch call (cask_snap_create, cask_snap_destroy_many,
 * cask_snap_hold, cask_snap_release) was refused as a whole: each name it
 * refused, with its own errno, code and reason (this thread; 0 after any
 * other failure). The array stays valid until this thread's next call.
 */
typedef struct cask_item_error {
	char name[600];
	int err;
	char code[48];
	char message[256];
} cask_item_error;
size_t cask_error_items(const cask_item_error **items);

/* NULL: $CASK_SOCKET, else $XDG_RUNTIME_DIR/cask/caskd.sock, else /run/cask/caskd.sock. */
int cask_connect(const char *socket_path, cask_client **out);
void cask_disconnect(cask_client *c);
/* The path cask_connect(NULL) would use. */
const char *cask_default_socket(void);

typedef struct cask_pool_info {
	char name[64];
	char guid[24];
	char state[16];        /* ONLINE, SUSPENDED, UNAVAIL */
	char error[256];       /* why, when not ONLINE */
	uint64_t size, allocated, free;
	unsigned nvdevs, volumes;
	uint64_t checksum_errors, io_errors, txg;
	/* intent log since import: region bytes, group commits, blocks and bytes written,
	   commits served by a txg commit instead, records replayed at import */
	uint64_t log_size, log_commits, log_blocks, log_bytes, log_fallbacks, log_replayed;
	char **vdevs;          /* cask_pool_status only; NULL otherwise */
	unsigned nvdevs_paths;
} cask_pool_info;

typedef struct cask_vol_info {
	char name[320];        /* POOL/VOL */
	char guid[24];
	uint64_t size;
	uint32_t volblocksize;
	char compression[16], checksum[16], sync[16];
	uint64_t used, logical, create_txg, creation;
	uint64_t referenced;         /* bytes its tree references */
	uint64_t usedbydataset;      /* what destroying it frees after its snapshots: its tree, less
	                                what a clone shares with its origin; used = this + usedbysnapshots */
	unsigned snapshots;          /* how many it has */
	uint64_t usedbysnapshots;    /* bytes only its snapshots hold */
	uint64_t written;            /* bytes written since its newest snapshot */
	char origin[600];            /* a clone: POOL/VOL@SNAP it was cloned from; else "" */
	uint64_t logicalused;        /* uncompressed bytes of what `used` counts (logical: of `referenced`) */
	char receive_resume_token[96]; /* a partial receive: what `cask send -t` continues; else "" */
	double compressratio;        /* logicalused / used */
	double refcompressratio;     /* logical / referenced */
	/* where each settable property's value comes from: "local" (set) or "default" */
	char compression_source[8], checksum_source[8], sync_source[8];
} cask_vol_info;

typedef struct cask_snap_info {
	char name[600];        /* POOL/VOL@SNAP */
	char volume[320];      /* POOL/VOL */
	char guid[24];
	uint64_t txg, creation, size;
	uint64_t referenced;   /* bytes its tree references */
	uint64_t logical;
	uint64_t used;         /* bytes only it holds: what destroying it frees */
	uint64_t logicalused;  /* uncompressed bytes of what `used` counts */
	double refcompressratio; /* logical / referenced */
	unsigned holds;        /* tags holding it (it cannot be destroyed while held) */
	unsigned clones;       /* volumes cloned from it */
} cask_snap_info;

typedef struct cask_hold_info {
	char snapshot[600];    /* POOL/VOL@SNAP */
	char tag[64];
	uint64_t creation;     /* when the hold was placed */
} cask_hold_info;

/*
 * Option structures begin with their own size: start from the _INIT macro
 * (or set .size = sizeof), so that a program built against this header
 * keeps working when later versions add fields at the end. The library
 * reads what the caller's size covers (defaults for the rest) and refuses
 * (EINVAL) a larger size whose extra bytes are not zero.
 */
typedef struct cask_vol_props {
	size_t size;             /* sizeof(cask_vol_props) */
	uint32_t volblocksize;   /* 0: default */
	const char *compression; /* NULL: default */
	const char *checksum;    /* NULL: default */
	const char *sync;        /* NULL: default (standard) */
} cask_vol_props;
#define CASK_VOL_PROPS_INIT { sizeof(cask_vol_props), 0, NULL, NULL, NULL }

/* Server identity: version string and protocol version. */
int cask_hello(cask_client *c, char *version, size_t len, int *protocol);

/*
 * What the server supports, so that a program checks a feature instead of
 * calling and failing: its version, protocol and feature names (see
 * docs/control-protocol.md, `hello`).
 */
#define CASK_MAX_FEATURES 64
typedef struct cask_capabilities_info {
	char server[32];
	char version[64];
	int protocol;
	unsigned nfeatures;
	char features[CASK_MAX_FEATURES][32];
} cask_capabilities_info;
int cask_capabilities(cask_client *c, cask_capabilities_info *out);
/* 1 if caps names feature. */
int cask_has_feature(const cask_capabilities_info *caps, const char *feature);
/* This library's version ("1.0.0"); its soname is libcask.so.1 (docs/client-api.md). */
const char *cask_lib_version(void);

int cask_pool_create(cask_client *c, const char *name, const char *const *paths, unsigned n, uint64_t size);
int cask_pool_import(cask_client *c, const char *name, const char *const *paths, unsigned n,
    const char *dir, char *name_out, size_t name_len);
int cask_pool_export(cask_client *c, const char *name);
int cask_pool_destroy(cask_client *c, const char *name);
int cask_pool_list(cask_client *c, cask_pool_info **out, size_t *n);
int cask_pool_status(cask_client *c, const char *name, cask_pool_info *out);

/*
 * Since CASK_1.1 (caskd features "pool.create.force", "pool.import.rewind";
 * a caskd without them ignores the flag). flags: 0, or
 *   CASK_POOL_FORCE  (create) use files and devices that hold data, a
 *                    filesystem or other signature, or another pool's
 *                    label, overwriting it (zpool create -f). Without it
 *                    they are refused: VDEV_IN_USE, or POOL_EXISTS for a
 *                    pool's label. A size mismatch and an unsafe symbolic
 *                    link are refused either way.
 *   CASK_POOL_REWIND (import) when the newest committed txg's uberblock is
 *                    damaged in every copy, go back to the newest intact
 *                    txg and discard the newer ones (zpool import -F).
 *                    Without it such an import fails: POOL_NEEDS_REWIND.
 * Any other bit: EINVAL. cask_pool_create/import are these with flags 0.
 */
#define CASK_POOL_FORCE  (1u << 0)
#define CASK_POOL_REWIND (1u << 1)
int cask_pool_create_ex(cask_client *c, const char *name, const char *const *paths, unsigned n,
    uint64_t size, unsigned flags);
int cask_pool_import_ex(cask_client *c, const char *name, const char *const *paths, unsigned n,
    const char *dir, unsigned flags, char *name_out, size_t name_len);
/* What an import with CASK_POOL_REWIND discarded (all 0: nothing). Since CASK_1.1. */
typedef struct cask_pool_rewind_info {
	uint64_t base_txg;               /* the txg the pool went on from */
	uint64_t first_discarded_txg;    /* base_txg + 1 */
	uint64_t last_discarded_txg;
	uint64_t last_discarded_time_ns; /* when that txg had committed (ns since the epoch) */
	uint64_t newer_damaged_txg;      /* a read-only import: the damaged newer txg it found */
} cask_pool_rewind_info;
int cask_pool_rewind_get(cask_client *c, const char *name, cask_pool_rewind_info *out);
/* Since CASK_1.1: a pool's txg syncs since import (pool.status; 0 from a caskd that does not report them). */
typedef struct cask_pool_sync_info {
	uint64_t syncs;           /* txgs committed since import */
	uint64_t sync_ns_total;   /* the time their syncs took, summed */
	uint64_t last_sync_ns;    /* the newest one's */
	uint64_t last_sync_bytes; /* the bytes it wrote (data and metadata) */
	unsigned sync_threads;    /* worker threads of the sync pipeline */
} cask_pool_sync_info;
int cask_pool_sync_get(cask_client *c, const char *name, cask_pool_sync_info *out);
/* Resume a suspended pool once its devices work (and reset its error counters). */
int cask_pool_clear(cask_client *c, const char *name);
/*
 * Fault injection for tests and drills: make "read", "write" or "flush" IO
 * fail with EIO on vdev `vdev` (-1: all) after `after` more calls, once or
 * until cleared (op "none" clears).
 */
int cask_pool_inject(cask_client *c, const char *name, const char *op, int vdev, uint64_t after,
    int persistent);
/* Free what cask_pool_status put into *p (its vdev paths); *p stays usable. */
void cask_pool_info_clear(cask_pool_info *p);
/* Free a list from cask_pool_list. */
void cask_pool_info_free(cask_pool_info *list, size_t n);

int cask_vol_create(cask_client *c, const char *name, uint64_t size, const cask_vol_props *props);
int cask_vol_destroy(cask_client *c, const char *name);
/* With its snapshots (CASK_DESTROY_SNAPSHOTS, -r) and the volumes cloned from
   them, recursively (CASK_DESTROY_CLONES, -R), in one transaction. */
enum { CASK_DESTROY_SNAPSHOTS = 1, CASK_DESTROY_CLONES = 2 };
int cask_vol_destroy_ex(cask_client *c, const char *name, unsigned flags);
/* Clone POOL/VOL takes over its origin's snapshots up to the origin; the
   origin's volume becomes its clone (NOT_A_CLONE, SNAPSHOT_EXISTS). */
int cask_vol_promote(cask_client *c, const char *name);
int cask_vol_resize(cask_client *c, const char *name, uint64_t size, int shrink);
int cask_vol_rename(cask_client *c, const char *name, const char *new_name);
/* pool NULL: every pool. */
int cask_vol_list(cask_client *c, const char *pool, cask_vol_info **out, size_t *n);
int cask_vol_get(cask_client *c, const char *name, cask_vol_info *out);
int cask_vol_set(cask_client *c, const char *name, const char *prop, const char *value);
/* Several properties at once (1-8): all are checked first, then all change together, or none. */
int cask_vol_set_many(cask_client *c, const char *name, const char *const *props,
    const char *const *values, size_t n);
/* A property back to its default (its source becomes "default"). */
int cask_vol_inherit(cask_client *c, const char *name, const char *prop);

/* Snapshots. create: all the names (one pool) at one instant, or none (the
   message names each bad one). list: name NULL (all), "POOL" or "POOL/VOL". */
int cask_snap_create(cask_client *c, const char *const *names, size_t n);
int cask_snap_destroy(cask_client *c, const char *name);
/* All the named snapshots (one pool) in one transaction, or none. */
int cask_snap_destroy_many(cask_client *c, const char *const *names, size_t n);
/* POOL/VOL@OLD -> POOL/VOL@NEW (new_name may also be just NEW). */
int cask_snap_rename(cask_client *c, const char *name, const char *new_name);
int cask_snap_list(cask_client *c, const char *name, cask_snap_info **out, size_t *n);
/* Holds: tag (1-63 printable characters, no spaces) on every named snapshot
   (one pool), or on none; a held snapshot cannot be destroyed (SNAPSHOT_HELD).
   release: the tag off every named snapshot, or off none (HOLD_NOT_FOUND). */
int cask_snap_hold(cask_client *c, const char *tag, const char *const *names, size_t n);
int cask_snap_release(cask_client *c, const char *tag, const char *const *names, size_t n);
/* name NULL (all), "POOL" or "POOL/VOL@SNAP"; sorted by snapshot, then tag. */
int cask_snap_holds(cask_client *c, const char *name, cask_hold_info **out, size_t *n);
/* Make POOL/VOL what POOL/VOL@SNAP recorded; newer snapshots are refused
   (HAS_NEWER_SNAPSHOTS) unless destroy_later, which destroys them too. */
int cask_vol_rollback(cask_client *c, const char *snap, int destroy_later);
/* A writable volume POOL/NEW that starts as POOL/VOL@SNAP (same pool). */
int cask_vol_clone(cask_client *c, const char *snap, const char *new_name);

/*
 * Send and receive (docs/send-stream.md). The stream travels through a
 * file descriptor handed to caskd (SCM_RIGHTS) and the transfer runs in
 * caskd as a job: these calls return its id at once, or with wait set
 * when it has ended (its error is then the call's). The job is cancelled
 * if this connection closes first.
 */
typedef struct cask_send_args {
	size_t size;           /* sizeof(cask_send_args) */
	const char *from;      /* incremental base: POOL/VOL@SNAP or @SNAP; NULL: full */
	const char *token;     /* resume a partial receive (snap NULL) */
	int wait;              /* 0: return the job at once; else wait for its end (its error is the call's) */
	int timeout_ms;        /* with wait, > 0: at most that long (-ETIMEDOUT, TIMED_OUT; the job goes on) */
	int no_policy;         /* (1.1) leave the volume's snapshot policy out of the stream */
} cask_send_args;
#define CASK_SEND_ARGS_INIT { sizeof(cask_send_args), NULL, NULL, 0, 0, 0 }
int cask_send(cask_client *c, const char *snap, const cask_send_args *a, int fd, uint64_t *job);
typedef struct cask_recv_args {
	size_t size;           /* sizeof(cask_recv_args) */
	int force;             /* roll a changed target back to the base first */
	int wait;              /* as in cask_send_args */
	int timeout_ms;
	int no_policy;         /* (1.1) do not install the snapshot policy the stream carries */
} cask_recv_args;
#define CASK_RECV_ARGS_INIT { sizeof(cask_recv_args), 0, 0, 0, 0 }
/* Into POOL/VOL (a full stream creates it); snap_out gets the snapshot made (with wait). */
int cask_recv(cask_client *c, const char *vol, const cask_recv_args *a, int fd, uint64_t *job,
    char *snap_out, size_t snap_len);
int cask_recv_abandon(cask_client *c, const char *vol);

typedef struct cask_job_info {
	uint64_t id;
	char kind[16];          /* "send", "receive" */
	char pool[64];
	char target[600];
	char state[16];         /* "running", "done", "failed", "cancelled" */
	uint64_t done, total;   /* bytes of the stream so far, and expected (0: unknown) */
	uint64_t elapsed_ms;
	char result[600];       /* done: what it made (e.g. the received snapshot) */
	int err;                /* failed or cancelled: errno, stable code, message */
	char code[32];
	char message[1024];
} cask_job_info;
int cask_job_get(cask_client *c, uint64_t id, cask_job_info *out);
/* Until the job ends or timeout_ms passes (< 0: until it ends). */
int cask_job_wait(cask_client *c, uint64_t id, int timeout_ms, cask_job_info *out);
int cask_job_cancel(cask_client *c, uint64_t id);
int cask_job_list(cask_client *c, cask_job_info **out, size_t *n);
/*
 * A descriptor that becomes readable when job id ends, for poll/select
 * or an event loop (it is a connection of its own, waiting for the job);
 * the caller closes it, then reads the outcome with cask_job_get. Closing
 * it does not cancel the job. Returns the descriptor or -errno.
 */
int cask_job_pollfd(cask_client *c, uint64_t id);

/* Changed extents from snapshot FROM to TO (a later snapshot or the volume), in order. */
typedef struct cask_extent {
	uint64_t offset, length;
	int hole;               /* 1: reads zeros now; 0: data written since FROM */
} cask_extent;
typedef struct cask_diff_iter cask_diff_iter;
int cask_diff_begin(cask_client *c, const char *from, const char *to, cask_diff_iter **it);
/* 1 with *ext filled, 0 at the end, or -errno. */
int cask_diff_next(cask_diff_iter *it, cask_extent *ext);
void cask_diff_end(cask_diff_iter *it);

/*
 * (CASK_1.1) IO statistics of a volume as its frontends (NBD) see it, since
 * caskd started: per kind of request, completed requests, bytes moved by the
 * successful ones, failures, requests in flight now, total latency, and a
 * latency histogram (bucket k: [2^k, 2^(k+1)) microseconds; 0 also < 1 us).
 */
enum { CASK_IO_READ, CASK_IO_WRITE, CASK_IO_FLUSH, CASK_IO_TRIM, CASK_IO_ZERO, CASK_IO_MAP, CASK_IO_CACHE,
	CASK_IO_KINDS };
#define CASK_IO_HIST_BUCKETS 32
typedef struct cask_io_counts {
	uint64_t count, bytes, errors, in_flight, latency_ns;
	uint64_t hist_us[CASK_IO_HIST_BUCKETS];
} cask_io_counts;
typedef struct cask_iostat {
	uint64_t time_ns;       /* caskd's monotonic clock when read (rates between two calls) */
	cask_io_counts kind[CASK_IO_KINDS];
} cask_iostat;
int cask_vol_iostat(cask_client *c, const char *name, cask_iostat *out);
/*
 * (CASK_1.1) The volume's read-only log_damaged property into buf: the
 * writes the last intent log replay found damaged and did not apply
 * ("txg A-B, N records ..."), kept until `pool clear` for the life of the
 * import; "" when clean or when the server does not report it. Not in
 * cask_vol_info, whose CASK_1.0 layout is frozen.
 */
int cask_vol_log_damaged(cask_client *c, const char *name, char *buf, size_t len);

/*
 * (CASK_1.1) The clients connected to caskd's frontends (NBD): who, serving
 * what, since when, how much they moved and have in flight. Free the list
 * with free(). cask_conn_kill disconnects one (CLIENT_NOT_FOUND if no such
 * id); what it has in flight completes first.
 */
typedef struct cask_conn_info {
	uint64_t id;             /* never reused while caskd runs */
	char frontend[16];       /* "nbd" */
	char peer[80];           /* "ADDR:PORT", or "unix#N" */
	long uid, pid;           /* a unix socket peer's; -1 when unknown */
	char export_name[256];   /* what it serves ("" while it negotiates) */
	char state[16];          /* "handshake", "serving", "closing", "refused" */
	int64_t since;           /* connected at, seconds since the epoch */
	int64_t idle;            /* seconds since its last byte either way */
	uint64_t bytes_in, bytes_out;
	int requests;            /* in flight */
	uint64_t queued_bytes;   /* request payload in flight and replies not yet sent */
	char tls[96];            /* "TLSv1.3 psk:ID", "TLSv1.3 x509:SUBJECT"; "" in the clear */
} cask_conn_info;
int cask_conn_list(cask_client *c, cask_conn_info **out, size_t *n);
int cask_conn_kill(cask_client *c, uint64_t id);

/*
 * (CASK_1.1) A management call that connected clients make BUSY names them
 * in its error; with CASK_FORCE_DISCONNECT it disconnects them first (their
 * requests in flight complete), then acts. Accepted by cask_vol_destroy_ex
 * (beside CASK_DESTROY_*) and by the _ex calls below.
 */
#define CASK_FORCE_DISCONNECT 0x100u
enum { CASK_ROLLBACK_DESTROY_LATER = 1 };
int cask_vol_rollback_ex(cask_client *c, const char *snap, unsigned flags);
int cask_snap_destroy_many_ex(cask_client *c, const char *const *names, size_t n, unsigned flags);
int cask_pool_export_ex(cask_client *c, const char *name, unsigned flags);

/*
 * (CASK_1.1) Snapshot policies (docs/manifests.md "Snapshot policy"): stored
 * in the volume's pool, run by caskd. Every `every_min` minutes an automatic
 * snapshot POOL/VOL@auto-YYYY-MM-DDTHH:MMZ (UTC, the slot's minute); kept
 * are the newest `keep` and, per retain count, the oldest automatic snapshot
 * of each of that many newest hours / days / weeks / months that have one.
 * Only automatic snapshots are pruned, never a held one or a clone's origin.
 */
typedef struct cask_sched {
	uint32_t every_min;     /* 1 .. 527040 (366 days) */
	uint32_t keep;          /* each count 0 .. 100000; at least one above 0 */
	uint32_t hourly, daily, weekly, monthly;
} cask_sched;
typedef struct cask_sched_info {
	char name[320];         /* POOL/VOL */
	cask_sched policy;
	uint64_t set_time;      /* when the policy was set (seconds since the epoch) */
	uint64_t auto_snapshots; /* automatic snapshots the volume has */
	char last_snapshot[600]; /* the newest of them ("" none) */
	int64_t last_run;       /* its slot (seconds since the epoch), -1 none */
	int64_t next_run;       /* the next slot caskd will take */
	uint64_t runs, failures, pruned; /* since caskd started */
	char last_error[200];   /* of the last failed run, "" none */
} cask_sched_info;
/* Set (replace) POOL/VOL's policy; policy NULL removes it (INVALID_ARGUMENT if there is none). */
int cask_sched_set(cask_client *c, const char *name, const cask_sched *policy);
/* name NULL (all), "POOL" or "POOL/VOL"; sorted by pool, then volume. */
int cask_sched_list(cask_client *c, const char *name, cask_sched_info **out, size_t *n);
/* A snapshot of POOL/VOL now (named after the minute), then pruning; its name into snapshot[0..len). */
int cask_sched_run(cask_client *c, const char *name, char *snapshot, size_t len);

/*
 * Replication (CASK_1.1, feature "replication"; docs/replication.md). A
 * replicated volume: replica 0 in the named pool of this caskd, one more
 * per replicas[i] ("HOST:PORT/POOL" of a caskd --replica-listen), served by
 * this caskd's controller. consistency: "one", "quorum" (NULL: the default)
 * or "all"; deadline_ms 0: the default (5000); rebuild_rate_mbs: the
 * rebuild copy limit in MB/s (0: unlimited; a field added later, so a
 * smaller size from an older caller leaves it 0).
 */
typedef struct cask_repl_args {
	size_t size;                 /* sizeof(cask_repl_args) */
	const char *const *replicas;
	size_t nreplicas;
	const char *consistency;
	uint32_t deadline_ms;
	uint32_t rebuild_rate_mbs;
	uint32_t rebuild_wait_s;     /* rebuild a member that comes back by itself (0: only when asked) */
} cask_repl_args;
#define CASK_REPL_ARGS_INIT { sizeof(cask_repl_args), NULL, 0, NULL, 0, 0, 0 }
int cask_vol_create_replicated(cask_client *c, const char *name, uint64_t size,
    const cask_vol_props *props, const cask_repl_args *a);
#define CASK_REPL_MAX 5
typedef struct cask_replica_info {
	char address[64];            /* HOST:PORT, or "local" */
	char pool[64];
	uint64_t id;
	int local;
	char state[16];              /* in-sync, degraded */
	char reason[16];             /* why it left (timeout, disconnect, io-error ...) or "" */
	char link[16];               /* up, offline */
	uint64_t acked_seq, durable_seq, lag_ops;
} cask_replica_info;
typedef struct cask_repl_status {
	char epoch[48];              /* COUNTER.NODEHEX */
	char consistency[16];
	char state[16];              /* serving, suspended, fenced */
	char fenced_by[160];
	uint64_t seq, membership_version;
	uint32_t deadline_ms;
	size_t nreplicas;
	cask_replica_info replicas[CASK_REPL_MAX];
} cask_repl_status;
/*
 * The controller's view of a replicated volume this caskd controls. For a
 * replica this caskd holds but does not control, state is "replica" and
 * fenced_by says "controlled by EPOCH at HOST:PORT"; while a restarted
 * controller reconciles, "reconciling" (fenced_by: what it waits for);
 * "moved" when it found that a takeover happened. NOT_REPLICATED otherwise.
 */
int cask_vol_repl_status(cask_client *c, const char *name, cask_repl_status *out);
/*
 * (CASK_1.1) The controller's read lease (docs/replication.md 3.3 item 7):
 * it answers no read, write or flush unless a commit quorum of the members
 * renewed it lately. A size-prefixed output structure: the caller sets
 * size (CASK_REPL_LEASE_INIT) and the library fills only what that size
 * covers, so fields added later never overrun an older caller's copy; a
 * size smaller than the first field after it is INVALID_ARGUMENT.
 */
typedef struct cask_repl_lease {
	size_t size;                 /* sizeof(cask_repl_lease) */
	char state[16];              /* valid, pending (never held yet, young), lapsed; "" when not controlled here */
	uint64_t left_ms;            /* how long it stays valid without another renewal (0 unless valid) */
	uint32_t renewed_by;         /* members that renewed it within the usable part of the lease */
	uint32_t needed;             /* renewals it needs: a commit quorum of the members */
	uint64_t lease_ms;           /* the length of a lease the replicas grant */
} cask_repl_lease;
#define CASK_REPL_LEASE_INIT { sizeof(cask_repl_lease), "", 0, 0, 0, 0 }
/* cask_vol_repl_status and the lease from the same vol.status answer (lease may be NULL). */
int cask_vol_repl_status_ex(cask_client *c, const char *name, cask_repl_status *out, cask_repl_lease *lease);
/*
 * (CASK_1.1) The backlog limit of a volume this caskd controls
 * (docs/replication.md 3.2 item 5, as built): per replica, in the order of
 * cask_repl_status.replicas, the data and operations queued to it and not
 * yet applied, and their peaks; the limit (caskd --repl-backlog), requests
 * waiting for a replica now, requests that waited in all, and replicas
 * ejected for their backlog. Size-prefixed like cask_repl_lease
 * (CASK_REPL_BACKLOG_INIT). For a replica another caskd controls, or a
 * controller that is reconciling, everything is 0. NOT_REPLICATED for a
 * volume that is not replicated.
 */
typedef struct cask_replica_backlog {
	uint64_t bytes, ops;         /* queued and not applied now */
	uint64_t peak_bytes, peak_ops; /* the most since the controller started (or the replica's rebuild began) */
} cask_replica_backlog;
typedef struct cask_repl_backlog {
	size_t size;                 /* sizeof(cask_repl_backlog) */
	uint64_t max_bytes, max_ops; /* the limit; 0: no controller here */
	uint64_t waiting, waited, ejected;
	size_t nreplicas;
	cask_replica_backlog replicas[CASK_REPL_MAX];
} cask_repl_backlog;
#define CASK_REPL_BACKLOG_INIT { sizeof(cask_repl_backlog), 0, 0, 0, 0, 0, 0, { { 0, 0, 0, 0 } } }
int cask_vol_repl_backlog(cask_client *c, const char *name, cask_repl_backlog *out);
/*
 * Become the controller of POOL/VOL, a replica this caskd holds (`cask vol
 * takeover`; docs/replication.md rule 7): the membership is read from the
 * replicas it reaches (a prepare quorum), the newest state is made that of
 * every member it counts in sync, the old controller is fenced by the new
 * epoch. out (may be NULL): the status once serving. PEER_UNREACHABLE: too
 * few members reachable; PEER_REFUSED: a newer epoch was promised elsewhere.
 */
int cask_vol_takeover(cask_client *c, const char *name, cask_repl_status *out);
/*
 * (CASK_1.1) cask_vol_takeover with flags: CASK_TAKEOVER_FORCE (`vol
 * takeover --force`, docs/replication.md 3.7 as built) goes on when fewer
 * in-sync members can be reached than are needed to be sure every
 * acknowledged write is among them: writes only the unreached members
 * acknowledged may be lost (caskd logs which members were not counted, and
 * vol.status says so in "forced"). It still needs promises from a majority
 * of the members (PEER_UNREACHABLE otherwise): that is what fences the old
 * controller. Other flag bits: INVALID_ARGUMENT.
 */
#define CASK_TAKEOVER_FORCE 1u
int cask_vol_takeover_ex(cask_client *c, const char *name, unsigned flags, cask_repl_status *out);

/*
 * (CASK_1.1) Manifests (docs/manifests.md): cask_apply checks a `cask/v1`
 * manifest (YAML text), alone and against caskd's running state, plans,
 * and unless dry_run makes the running state match it; `cask apply -f` is
 * a thin program over it. Nothing changes when the text has any error.
 */
typedef struct cask_apply_error {
	int line, column;       /* 1-based, as libyaml reports them; 0: no position */
	char message[1024];
} cask_apply_error;
enum { CASK_APPLY_PLANNED = 0, CASK_APPLY_DONE = 1, CASK_APPLY_FAILED = 2, CASK_APPLY_NOT_DONE = 3 };
typedef struct cask_apply_item {
	char verb[16];          /* release, destroy, shrink, keep, would-destroy, would-shrink, create, change, unchanged */
	char kind[8];           /* "pool" or "volume" */
	char name[320];
	char detail[1200];      /* "size 1G -> 2G", "compression zstd -> lz4", "vdevs [...], size 256M" ... */
	size_t step;            /* a change: its place in the run order, from 1 (the items of one change,
	                           e.g. several properties set together, share it); 0: not a change */
	char action[1400];      /* a change: what running it does ("grow volume tank/db 1G -> 2G"); else "" */
	int state;              /* CASK_APPLY_*: PLANNED (a dry run, or not a change), DONE, FAILED, NOT_DONE */
	int err;                /* FAILED: errno, stable code and caskd's message */
	char code[32];
	char message[512];
} cask_apply_item;
typedef struct cask_apply_result {
	cask_apply_error *errors; /* in the order of their positions; nothing changed when there are any */
	size_t nerrors;
	cask_apply_item *items;   /* the plan, destructive items first (docs/manifests.md) */
	size_t nitems;
	size_t ncreate, nchange, ndestroy, nunchanged; /* the plan's summary line */
	size_t nsteps;          /* changes to run */
	size_t ndone;           /* changes run */
	size_t nskipped;        /* would-destroy and would-shrink: only with prune */
} cask_apply_result;
typedef struct cask_apply_args {
	size_t size;            /* sizeof(cask_apply_args) */
	const char *name;       /* the manifest's name in messages (a file name); NULL: "<manifest>" */
	const char *base_dir;   /* where relative vdev paths start; NULL: the current directory */
	int dry_run;            /* check and plan; change nothing */
	int prune;              /* also destroy and shrink (docs/manifests.md "Pruning") */
	/* NULL, or called once with the plan (item == (size_t)-1) before anything changes, and after
	   each change has run with the index of its first item; non-zero stops (-ECANCELED) */
	int (*progress)(void *arg, const cask_apply_result *r, size_t item);
	void *progress_arg;
} cask_apply_args;
#define CASK_APPLY_ARGS_INIT { sizeof(cask_apply_args), NULL, NULL, 0, 0, NULL, NULL }
/*
 * Apply the manifest text[0..len). *out (freed with cask_apply_result_free)
 * is set on every return but -EINVAL for bad arguments. 0: applied, or
 * nothing to do, or a dry run whose plan can be applied. -EINVAL
 * (INVALID_ARGUMENT): the text has errors, all in (*out)->errors, and
 * nothing changed. Else the error of the call that failed: reading the
 * running state (nothing changed), or a change (its item FAILED, with the
 * code and message; those before it DONE, those after NOT_DONE: applying
 * again converges). c NULL checks the text alone (no plan): 0 or -EINVAL.
 */
int cask_apply(cask_client *c, const char *text, size_t len, const cask_apply_args *a, cask_apply_result **out);
void cask_apply_result_free(cask_apply_result *r);
/*
 * (CASK_1.1) The running state as a `cask/v1` manifest that cask_apply
 * accepts unchanged (`cask get manifest`): every pool (npools 0) or those
 * named (POOL_NOT_FOUND; POOL_UNAVAILABLE when one is not ONLINE), with its
 * volumes, properties and snapshot policies. *text is malloc'd: free it.
 */
int cask_manifest_get(cask_client *c, const char *const *pools, size_t npools, char **text);
/*
 * (CASK_1.1, feature "iscsi.config") The iSCSI target's configuration
 * (docs/iscsi.md §14): per volume POOL/VOL (target NULL: the daemon-wide
 * entry) an ACL, a CHAP policy, a block size and CHAP secrets. Applies to
 * the next login. Secrets are sent only by cask_iscsi_chap_set and never
 * returned: cask_iscsi_config says whether one is set.
 */
/* property "acl" ("IQN[,IQN...]", a '*' at the end matches a prefix; "*" any),
 * "auth" (default|none|chap|mutual), "blocksize" (512|4096); daemon-wide (target NULL) also
 * "discovery_auth" (default|none|chap|mutual); value NULL: the default. */
int cask_iscsi_set(cask_client *c, const char *target, const char *property, const char *value);
/* user+secret and/or mutual_user+mutual_secret (NULL: leave that pair as it is); secrets 12..255 bytes. */
int cask_iscsi_chap_set(cask_client *c, const char *target, const char *user, const char *secret,
    const char *mutual_user, const char *mutual_secret);
/* Remove the secrets (mutual: only the mutual pair). */
int cask_iscsi_chap_unset(cask_client *c, const char *target, int mutual);
#define CASK_ISCSI_ACL_MAX 32
typedef struct cask_iscsi_entry {
	char target[256];            /* POOL/VOL; "" for the daemon-wide entry */
	char iqn[256];               /* its target name ("" for the daemon-wide entry) */
	char auth[16];               /* default, none, chap, mutual */
	char discovery_auth[16];     /* the daemon-wide entry's policy for discovery sessions ("" for a volume) */
	char acl[CASK_ISCSI_ACL_MAX][224];
	unsigned nacl;               /* 1 with acl[0] "*": any initiator */
	unsigned blocksize;          /* 0 for the daemon-wide entry */
	char chap_user[256];         /* "" none */
	int chap_secret;             /* whether a secret is set */
	char mutual_user[256];
	int mutual_secret;
} cask_iscsi_entry;
/* The daemon-wide entry first, then each configured volume. */
int cask_iscsi_config(cask_client *c, cask_iscsi_entry **out, size_t *n);

/*
 * (CASK_1.1, feature "iscsi.sessions") The iSCSI target's live state
 * (docs/iscsi.md §14): the targets (every exported volume and snapshot),
 * the normal sessions logged in, ending one, and a target's persistent
 * reservations. Never a secret: only whether CHAP secrets are set.
 */
#define CASK_ISCSI_PORTALS_MAX 16
typedef struct cask_iscsi_target {
	char iqn[256];               /* "" when the name cannot be derived (state "no-name") */
	char volume[256];            /* POOL/VOL or POOL/VOL@SNAP */
	char state[16];              /* ok, conflict (another export maps to the name: neither is served), no-name */
	char auth[16];               /* what a login needs: none, chap, mutual */
	int chap, mutual_chap;       /* whether a CHAP secret (and a mutual one) applies */
	char acl[CASK_ISCSI_ACL_MAX][224];
	unsigned nacl;               /* acl[0] "*": any initiator */
	char portals[CASK_ISCSI_PORTALS_MAX][320]; /* "ADDR:PORT,1" (TPGT 1) */
	unsigned nportals;
	unsigned lun;                /* 0: one LU per target */
	uint64_t size;               /* the LU's bytes */
	unsigned blocksize;          /* logical block size for the next open (iscsi_blocksize) */
	int read_only;               /* a snapshot */
	unsigned sessions;
} cask_iscsi_target;
/* pool NULL: every pool. */
int cask_iscsi_targets(cask_client *c, const char *pool, cask_iscsi_target **out, size_t *n);
typedef struct cask_iscsi_session {
	unsigned tsih;               /* the session's handle: cask_iscsi_logout takes it */
	char initiator[224];
	char isid[16];               /* 0x + 12 hex digits */
	char target[256];
	char volume[256];
	char address[80];            /* the initiator's ADDR:PORT */
	char portal[80];             /* the local ADDR:PORT it came in on */
	char state[24];              /* login, logged-in, logout-requested */
	int64_t since;               /* seconds since the epoch */
	char header_digest[8], data_digest[8]; /* None or CRC32C */
	char chap[16];               /* none, md5, sha1, sha256, sha3-256 */
	unsigned commands;           /* commands in flight */
} cask_iscsi_session;
/* target: an iSCSI target name or POOL/VOL[@SNAP]; NULL all. */
int cask_iscsi_sessions(cask_client *c, const char *target, cask_iscsi_session **out, size_t *n);
/* End a session: an Async logout request, then dropped if the initiator has not logged out
 * within 3 s (force: dropped at once; commands in flight are answered first). *dropped (may
 * be NULL): 1 when it had to be dropped. CLIENT_NOT_FOUND, BUSY (still draining). */
int cask_iscsi_logout(cask_client *c, unsigned tsih, int force, int *dropped);
typedef struct cask_iscsi_pr_reg {
	uint64_t key;
	char initiator_port[320];    /* IQN,i,0xISID */
	int holder;
} cask_iscsi_pr_reg;
typedef struct cask_iscsi_pr {
	char volume[256];
	char iqn[256];
	int open;                    /* a session is logged in to the target */
	uint32_t generation;
	char type[40];               /* none, write-exclusive, exclusive-access, ...-registrants-only, ...-all-registrants */
	int aptpl;                   /* kept in the pool across restarts */
	size_t nregs;
	cask_iscsi_pr_reg *regs;     /* malloc'd: cask_iscsi_pr_free */
} cask_iscsi_pr;
/* target: an iSCSI target name or POOL/VOL[@SNAP]. */
int cask_iscsi_pr_get(cask_client *c, const char *target, cask_iscsi_pr *out);
void cask_iscsi_pr_free(cask_iscsi_pr *pr);

/*
 * The digest of POOL/VOL's (or POOL/VOL@SNAP's) logical contents (CASK_1.1,
 * feature "vol.checksum"; docs/replication.md section 12.11): XXH3-128 over
 * the size and the XXH3-128 of each 1 MiB chunk, holes read as zeros. Equal
 * bytes and size give equal digests whatever the history, block size or
 * compression. IO_ERROR for a damaged block.
 */
int cask_vol_checksum(cask_client *c, const char *name, uint8_t digest[16]);

/*
 * Replica membership (CASK_1.1, feature "replication.rebuild";
 * docs/replication.md section 12). Each of add, replace and rebuild starts
 * a rebuild job (kind "rebuild"; cask_job_get/wait/cancel) and gives its
 * id: add creates the volume on the caskd at replica ("HOST:PORT/POOL")
 * and copies it there (full: data and holes only), replace adds new_r and
 * then removes old_r, rebuild brings a degraded member back (delta from
 * where it left, a resume of a cancelled or interrupted rebuild, or full).
 * remove takes a member out of the volume (flags: 0). NOT_REPLICATED, BUSY
 * (a rebuild runs), VOLUME_EXISTS (already a member), INVALID_ARGUMENT.
 */
int cask_vol_replica_add(cask_client *c, const char *vol, const char *replica, uint64_t *job);
int cask_vol_replica_remove(cask_client *c, const char *vol, const char *replica, unsigned flags);
int cask_vol_replica_replace(cask_client *c, const char *vol, const char *old_r, const char *new_r,
    uint64_t *job);
int cask_vol_replica_rebuild(cask_client *c, const char *vol, const char *replica, uint64_t *job);
/*
 * Online verify (CASK_1.1, feature "replication.verify"; docs/replication.md
 * section 12.11): the controller of POOL/VOL compares the 1 MiB chunk
 * digests of its in-sync replicas (a job of kind "verify", shown by
 * cask_job_list while it runs; this call waits for it) and gives every
 * chunk where they still differ after re-checks in *ranges (malloc'd, the
 * caller frees it; *n of them). flags: 0 (repair is not built:
 * INVALID_ARGUMENT). NOT_REPLICATED, BUSY (a rebuild or verify runs),
 * PEER_UNREACHABLE, IO_ERROR (a damaged block on a replica).
 */
typedef struct cask_verify_range {
	uint64_t offset, length;
} cask_verify_range;
typedef struct cask_verify_result {
	uint64_t job, size, chunks, differing;
	unsigned nreplicas;
	char replicas[5][140];       /* "local/POOL" or "HOST:PORT/POOL" */
} cask_verify_result;
int cask_vol_verify(cask_client *c, const char *vol, unsigned flags, cask_verify_result *out,
    cask_verify_range **ranges, size_t *n);
/* The rebuild of each replica that has had one since this controller started (vol.status). */
typedef struct cask_rebuild_info {
	char replica[140];           /* HOST:PORT/POOL */
	char kind[8];                /* delta, full */
	char state[16];              /* running, done, failed, cancelled */
	uint64_t job;
	uint64_t done, total;        /* bytes of the listed ranges */
	uint64_t transferred;        /* bytes of rebuild frames on the wire (headers included) */
	uint64_t rate, eta_s;        /* bytes/s over the last second; seconds left at that rate */
} cask_rebuild_info;
/* A new array (free() it) of *n entries; NOT_REPLICATED. */
int cask_vol_rebuild_list(cask_client *c, const char *vol, cask_rebuild_info **out, size_t *n);

#ifdef __cplusplus
}
#endif
#endif
