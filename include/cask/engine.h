/*
 * cask/engine.h -- the public API of libcask-engine, the on-disk storage
 * engine: pools of vdevs, thin copy-on-write volumes, transaction groups.
 *
 * Conventions: every function that can fail returns 0 (or a non-negative
 * count) on success and a negative errno on failure; out-parameters are
 * last and untouched on failure; ce_errmsg() then holds a one-line
 * explanation for the calling thread, and ce_errcode() the failure's
 * stable code (CE_E_*, cask/errcodes.h): branch on the code, never on the
 * message. The library never prints.
 *
 * The prefix is ce_ ("cask engine") so that the engine and the client
 * library (cask_*, include/cask/client.h) can be linked together.
 *
 * Thread safety: a pool and its volumes may be used from many threads at
 * once. Management calls (create, destroy, resize, rename, set) are
 * durable when they return: they wait for their transaction group.
 */
#ifndef CASK_ENGINE_H
#define CASK_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cask/errcodes.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ce_pool ce_pool;
typedef struct ce_vol ce_vol;

/*
 * An IO backend: where a vdev's bytes live. The file backend is the
 * default; tests wrap it to inject faults or simulate crashes. Offsets
 * and lengths are multiples of 4096. Each call returns 0 or -errno.
 */
typedef struct ce_backend ce_backend;
struct ce_backend {
	int (*pread)(ce_backend *be, void *buf, size_t len, uint64_t off);
	int (*pwritev)(ce_backend *be, const struct iovec *iov, int iovcnt, uint64_t off);
	int (*flush)(ce_backend *be);
	void (*close)(ce_backend *be);
	uint64_t size; /* bytes */
};

enum {
	CE_BE_RDONLY = 1 << 0,  /* open read-only */
	CE_BE_NODIRECT = 1 << 1, /* use the page cache (no O_DIRECT) */
	CE_BE_NOLOCK = 1 << 2,  /* do not take the exclusive flock */
	CE_BE_NOFOLLOW = 1 << 3, /* refuse a symbolic link as the last component */
	/*
	 * ce_pool_create: use files and devices that hold data, a signature
	 * (filesystem, partition table...) or another pool's label, instead
	 * of refusing them (zpool create -f). Without it they are refused
	 * with -EEXIST: CE_E_VDEV_IN_USE for data and signatures, the plain
	 * EEXIST code (the protocol's POOL_EXISTS) for another pool's label.
	 */
	CE_POOL_FORCE = 1 << 4,
	/*
	 * ce_pool_import: go back to the newest intact txg even when a newer
	 * one was committed and its uberblock is damaged in every copy
	 * (zpool import -F); ce_pool_stat's rewound_* say what was discarded.
	 * Without it such an import fails with -EUCLEAN (CE_E_POOL_NEEDS_REWIND).
	 */
	CE_POOL_REWIND = 1 << 5,
	/* ce_pool_opts.flags: no io_uring ring; ce_vol_read_async always says -EAGAIN. */
	CE_POOL_NO_URING = 1 << 6,
};
int ce_backend_file_open(const char *path, unsigned flags, ce_backend **out);

typedef struct ce_pool_opts {
	uint64_t cache_bytes;    /* block cache budget; 0 = 256 MiB */
	uint64_t dirty_max;      /* writers wait above this; 0 = 512 MiB */
	uint64_t dirty_sync;     /* start a txg sync at this; 0 = dirty_max/4 */
	uint32_t txg_timeout_ms; /* sync dirty data at least this often; 0 = 5000 */
	uint32_t flags;          /* CE_BE_NODIRECT, CE_BE_RDONLY ... for vdev files */
	uint64_t vdev_size;      /* create: size of vdev files that are created or empty */
	/* Optional: wrap each vdev's backend (fault injection, crash simulation). */
	ce_backend *(*wrap)(ce_backend *inner, unsigned vdev_index, void *arg);
	void *wrap_arg;
	/*
	 * Worker threads that compress and checksum a txg's data blocks beside
	 * the sync thread (the sync pipeline): 0 = one per online core (at most
	 * 16), CE_SYNC_THREADS_NONE = none (the sync thread alone).
	 */
	int sync_threads;
	/*
	 * Read-ahead window of a volume handle read sequentially
	 * (docs/design-vio.md §8.1): 0 = 4 MiB, CE_READAHEAD_NONE = off;
	 * at most 64 MiB and a quarter of the cache budget.
	 */
	uint64_t readahead_bytes;
} ce_pool_opts;
#define CE_SYNC_THREADS_NONE (-1)
#define CE_READAHEAD_NONE UINT64_MAX

#define CE_SYNC_HIST_BUCKETS 32 /* bucket k: txg syncs that took [2^k, 2^(k+1)) us (k = 0: also < 1 us) */
typedef struct ce_pool_stat {
	char name[64];
	uint64_t guid;
	unsigned nvdevs;
	uint64_t size;           /* bytes of data area */
	uint64_t allocated;      /* bytes allocated in the last committed txg */
	uint64_t free;           /* bytes available to new writes now */
	uint64_t cksum_errors;   /* checksum mismatches seen since import */
	uint64_t io_errors;      /* backend errors seen since import */
	uint64_t synced_txg;     /* newest committed txg */
	uint64_t dirty_bytes;    /* data waiting for a txg sync */
	uint64_t syncs;          /* txgs committed since import (by the sync thread) */
	uint64_t sync_ns;        /* the time their syncs took, summed */
	uint64_t sync_hist[CE_SYNC_HIST_BUCKETS];
	uint64_t last_sync_ns;   /* the newest committed txg's sync: its time */
	uint64_t last_sync_bytes; /* the bytes the newest sync wrote (data, metadata; not the uberblocks) */
	unsigned sync_threads;   /* the sync pipeline's workers (ce_pool_opts.sync_threads) */
	uint64_t sync_cksum_known; /* data blocks written since import whose checksum was the hash a
	                              receive had computed to verify its stream (not hashed again) */
	uint64_t cache_bytes;    /* block cache in use */
	uint64_t cache_max;
	int suspended;           /* 0, or the -errno that suspended the pool */
	unsigned nvols;
	/* intent log (since import) */
	uint64_t log_size;       /* bytes of the log region; 0: no log */
	uint64_t log_commits;    /* FLUSH/FUA group commits */
	uint64_t log_blocks;     /* log blocks written */
	uint64_t log_bytes;      /* bytes of log blocks written */
	uint64_t log_fallbacks;  /* commits served by a txg commit instead */
	uint64_t log_replayed;   /* records replayed at import */
	uint64_t log_inplace;    /* bytes of large writes logged in place (pointed to) */
	char suspend_reason[160]; /* why the pool is suspended, if it is */
	/*
	 * Imported with CE_POOL_REWIND past a damaged newer txg: the txgs
	 * rewound_base_txg + 1 ... rewound_txg were discarded (the newest of
	 * them committed at rewound_time_ns, as its damaged record says); the
	 * pool went on from rewound_base_txg. 0: none.
	 */
	uint64_t rewound_base_txg;
	uint64_t rewound_txg;
	uint64_t rewound_time_ns;
	/* A read-only import that found such a damaged newer txg (and did not refuse): its number. */
	uint64_t newer_damaged_txg;
	/*
	 * Intent log damage the replay at import (or clear) found, until
	 * ce_pool_clear acknowledges it: log_damaged_seq, a block of the chain
	 * that fails its checksum (replay stopped there; the intact blocks
	 * after it and their records were not replayed); log_bad_inplace,
	 * write records whose data written in place fails its checksum (not
	 * replayed). *_certain: a later block shows it had been acknowledged
	 * (else it may be a write a crash tore before its flush returned).
	 * Each is also counted in cksum_errors.
	 */
	uint64_t log_damaged_seq;
	uint64_t log_lost_blocks, log_lost_records;
	uint64_t log_bad_inplace;
	int log_damage_certain, log_bad_inplace_certain;
	unsigned log_damaged_vols;   /* volumes marked log_damaged (ce_vol_info) */
} ce_pool_stat;

/* The asynchronous read path of an open pool (ce_pool_aread_stat). */
typedef struct ce_aread_stat {
	int available;           /* 1: reads go through io_uring */
	char why[160];           /* when not: why (the ring could not be set up, ...) */
	uint64_t requests;       /* ce_vol_read_async calls that sent device reads */
	uint64_t inline_done;    /* ... that needed none (dirty, holes, cached) */
	uint64_t fallbacks;      /* ... that said -EAGAIN */
	uint64_t device_reads;   /* reads sent to the ring */
	uint64_t ring_max;       /* most device reads in the ring at once */
	uint64_t readahead_batches; /* read-ahead windows sent (ce_pool_opts.readahead_bytes) */
	uint64_t readahead_blocks;  /* blocks they read into the cache */
	uint64_t readahead_failed;  /* windows with a block that failed (not cached; its reader gets EIO) */
	uint64_t tree_reads;     /* indirect blocks an asynchronous read's lookup missed, read through the ring */
	uint64_t fill_blocks;    /* blocks prefetch requests (ce_vol_prefetch_async, NBD_CMD_CACHE) read into the cache */
	uint64_t readahead_bytes;   /* bytes of the blocks read ahead (readahead_blocks) */
	uint64_t readahead_hits;    /* blocks read ahead that a reader then found in the cache (each once) */
	uint64_t readahead_wasted;  /* blocks read ahead that left the cache before any reader found them */
} ce_aread_stat;
int ce_pool_aread_stat(ce_pool *p, ce_aread_stat *st);

/* What a file's label says (to find a pool's vdevs). */
typedef struct ce_vdev_label {
	char pool_name[64];
	uint64_t pool_guid;
	unsigned index, nvdevs;
} ce_vdev_label;
/* 0 when path holds a valid cask label; -errno and ce_errmsg() otherwise. Never writes. */
int ce_vdev_probe(const char *path, ce_vdev_label *out);

int ce_pool_create(const char *name, const char *const *paths, unsigned npaths,
    const ce_pool_opts *opts, ce_pool **out);
int ce_pool_import(const char *const *paths, unsigned npaths,
    const ce_pool_opts *opts, ce_pool **out);
/* Commit everything written so far, then close. */
int ce_pool_export(ce_pool *p);
/* Close without committing the open txg (what a crash would leave). */
void ce_pool_abandon(ce_pool *p);
/* Commit every write that returned before this call; returns 0 or -errno. */
int ce_pool_sync(ce_pool *p);
/*
 * Resume a suspended pool once its devices work again: the in-memory
 * state is rebuilt from the newest committed txg plus the intent log
 * (everything acknowledged as durable; writes never flushed before the
 * failure are lost, as in a crash). Volume handles opened before the clear
 * can still read and close, but their writes and flushes fail with -EIO
 * (a FLUSH must not claim the lost writes durable): reopen the volume.
 * Also resets the error counters. -EIO (pool still suspended) when the
 * devices still fail.
 */
int ce_pool_clear(ce_pool *p);

/*
 * Fault injection (for tests and drills, like zinject): make IO of kind
 * `op` on vdev `vdev` (-1: every vdev) fail with -EIO after `after` more
 * calls succeed; once, or for every later call until cleared.
 */
enum { CE_FAULT_READ = 1, CE_FAULT_WRITE = 2, CE_FAULT_FLUSH = 3 };
typedef struct ce_fault {
	int op;
	int vdev;
	uint64_t after;
	int persistent;
} ce_fault;
int ce_pool_fault_inject(ce_pool *p, const ce_fault *f);
void ce_pool_fault_clear(ce_pool *p);
const char *ce_fault_op_name(int op);
int ce_pool_stat_get(ce_pool *p, ce_pool_stat *st);
const char *ce_pool_name(const ce_pool *p);

enum { CE_COMPRESS_OFF = 0, CE_COMPRESS_LZ4 = 1, CE_COMPRESS_ZSTD = 2 };
/*
 * sync (ZFS semantics): standard -- writes are durable after a flush;
 * always -- every write, trim and zeroing is durable when it returns;
 * disabled -- flushes do nothing (UNSAFE: a crash may lose data the
 * client was told was durable).
 */
enum { CE_SYNC_STANDARD = 0, CE_SYNC_ALWAYS = 1, CE_SYNC_DISABLED = 2 };
enum { CE_CHECKSUM_XXH128 = 1, CE_CHECKSUM_SHA256 = 2 };
#define CE_VOLBLOCKSIZE_DEFAULT 4096u
#define CE_VOLBLOCKSIZE_MIN 4096u
#define CE_VOLBLOCKSIZE_MAX 131072u

typedef struct ce_vol_props {
	uint32_t volblocksize; /* 0 = default */
	int compress;          /* -1 = default (lz4) */
	int checksum;          /* 0 = default (xxh128) */
	int sync;              /* CE_SYNC_*, default standard */
} ce_vol_props;
#define CE_VOL_PROPS_DEFAULT { 0, -1, 0, CE_SYNC_STANDARD }

typedef struct ce_vol_info {
	char name[256];
	uint64_t guid;
	uint64_t size;
	uint32_t volblocksize;
	int compress;
	int checksum;
	int sync;
	uint64_t used;       /* usedbydataset + usedbysnapshots: what destroying it and its snapshots frees */
	uint64_t referenced; /* allocated bytes its tree references (committed) */
	uint64_t usedbydataset; /* what destroying the volume frees once its snapshots are gone: its
	                           tree, less (for a clone) what it shares with its origin */
	uint64_t logical;    /* logicalreferenced: uncompressed bytes of its data blocks (committed) */
	uint64_t logicalused; /* uncompressed bytes of the data blocks `used` counts */
	uint64_t create_txg;
	uint64_t ctime;
	unsigned nsnapshots;
	uint64_t usedbysnapshots; /* bytes only its snapshots reference (freed if all were destroyed) */
	uint64_t written;         /* bytes written since its newest snapshot (all, without one) */
	char origin[256];         /* a clone: the snapshot it was cloned from; else "" */
	char receive_resume_token[96]; /* a partial receive: where `send -t` continues; else "" */
	unsigned local_props;     /* CE_PROP_* set explicitly (source "local"; else "default") */
	/* acknowledged writes the last intent log replay found damaged and did not apply, until
	 * ce_pool_clear (in memory only): "txg A-B, N records" (see ce_pool_stat.log_*); "" clean */
	char log_damaged[96];
} ce_vol_info;

/*
 * Snapshots: read-only, named "VOL@SNAP", taken in O(1) at one instant.
 * ce_snap_create takes all the named snapshots in one txg, or none: errs[i]
 * gets 0 or -errno per name (-EINVAL bad name, -ENOENT no volume, -EEXIST
 * exists or named twice) and the call fails with -EINVAL if any is bad.
 * On a full pool it fails with -ENOSPC (errs all 0) when the records would
 * eat into the second half of the pool's reserve: a snapshot needs no data
 * space, but never takes the room that commits, trim and destroy need.
 * A snapshot opens with ce_vol_open (reads only).
 */
typedef struct ce_snap_info {
	char name[256];       /* VOL@SNAP */
	char volume[256];
	uint64_t guid;
	uint64_t txg;         /* the instant it records */
	uint64_t ctime;
	uint64_t size;        /* the volume's size then */
	uint64_t referenced;  /* allocated bytes its tree references */
	uint64_t logical;
	uint64_t used;        /* bytes only it references: what destroying it frees */
	uint64_t logicalused; /* uncompressed bytes of the data blocks `used` counts */
	unsigned holds;       /* tags holding it (a held snapshot cannot be destroyed) */
	unsigned clones;      /* volumes cloned from it */
	int automatic;        /* taken by a snapshot policy (CE_SNAP_AUTO) */
} ce_snap_info;
int ce_snap_create(ce_pool *p, const char *const *names, size_t n, int *errs);
/* CE_SNAP_AUTO: the snapshots are a policy's (ce_sched_*): marked so on disk, pruned by caskd. */
enum { CE_SNAP_AUTO = 1 };
int ce_snap_create_ex(ce_pool *p, const char *const *names, size_t n, unsigned flags, int *errs);

/*
 * Snapshot policies (docs/manifests.md `snapshots:`), stored in the pool
 * (on-disk-format.md section 4.8) and run by caskd: every `every_min`
 * minutes an automatic snapshot; kept are the newest `keep` and, per
 * retain count, one per hour / day / week / month for that many periods.
 */
#define CE_SCHED_EVERY_MAX 527040u /* 366 days, in minutes */
#define CE_SCHED_COUNT_MAX 100000u
typedef struct ce_sched {
	uint32_t every_min;
	uint32_t keep;
	uint32_t hourly, daily, weekly, monthly;
} ce_sched;
typedef struct ce_sched_info {
	char volume[256];
	uint64_t vol_guid;
	ce_sched policy;
	uint64_t mtime;       /* when it was set (seconds since the epoch) */
} ce_sched_info;
/* Set (replace) the volume's policy, or remove it (policy NULL; -ENOENT if it has none). Commits. */
int ce_sched_set(ce_pool *p, const char *vol, const ce_sched *policy);
/* Every policy of a living volume, sorted by volume name; caller frees *out. */
int ce_sched_list(ce_pool *p, ce_sched_info **out, size_t *count);

/*
 * Dataset attributes (format 8, docs/on-disk-format.md section 4.9): small
 * records a frontend keeps with a volume in its own namespace (1: the iSCSI
 * target's APTPL persistent reservations). ce_attr_replace replaces the
 * volume's records of that namespace with a[0..n) (n 0 removes them) and
 * returns once the txg holding the change committed; ce_attr_get returns
 * them in the order they were given (free *out). Dropped with the volume,
 * never sent or cloned. The pool's format becomes 9 at the first record.
 */
#define CE_ATTR_NS_ISCSI_PR 1u
#define CE_ATTR_MAX 256u            /* records per volume and namespace */
#define CE_ATTR_VALUE_MAX 496u      /* bytes of one record's value */
typedef struct ce_attr {
	uint16_t key;
	uint16_t len;                   /* 0 .. CE_ATTR_VALUE_MAX */
	uint8_t val[CE_ATTR_VALUE_MAX];
} ce_attr;
int ce_attr_replace(ce_pool *p, const char *vol, uint16_t ns, const ce_attr *a, size_t n);
int ce_attr_get(ce_pool *p, const char *vol, uint16_t ns, ce_attr **out, size_t *count);
int ce_snap_destroy(ce_pool *p, const char *name);
/* Destroy all the named snapshots in one txg, or none (errs[i]: 0 or -errno per name). */
int ce_snap_destroy_many(ce_pool *p, const char *const *names, size_t n, int *errs);
/* Rename VOL@OLD to VOL@NEW (same volume; newname may be "NEW" or "VOL@NEW"). */
int ce_snap_rename(ce_pool *p, const char *name, const char *newname);
/*
 * Make the volume what snapshot VOL@SNAP recorded (data and size). Newer
 * snapshots make it fail with -EEXIST unless CE_ROLLBACK_DESTROY_LATER
 * destroys them in the same txg. The volume must not be open (-EBUSY).
 */
enum { CE_ROLLBACK_DESTROY_LATER = 1 };
/* A new writable volume NEW that starts as VOL@SNAP and shares its blocks (O(1)). */
int ce_vol_clone(ce_pool *p, const char *snapname, const char *newname);
int ce_vol_rollback(ce_pool *p, const char *snapname, unsigned flags);
/*
 * Promote clone VOL: the snapshots of its origin's volume up to and
 * including the origin move to VOL (renamed VOL@...), and that volume
 * becomes a clone of the origin instead, so it can then be destroyed
 * while VOL lives on. No data moves. -EINVAL if VOL is not a clone,
 * -EEXIST if VOL already has a snapshot named like one that would move.
 */
int ce_vol_promote(ce_pool *p, const char *name);
/*
 * Holds: a tag (1-63 printable characters, no spaces) on a snapshot keeps
 * it from being destroyed until released. Hold and release act on every
 * named snapshot or on none; errs[i] gets 0 or -errno per name (-ENOENT no
 * such snapshot or, for release, no such hold; -EEXIST already held with
 * that tag; -EBUSY being taken; -EINVAL named twice).
 */
typedef struct ce_hold_info {
	char snapshot[256];   /* VOL@SNAP */
	char tag[64];
	uint64_t ctime;
} ce_hold_info;
int ce_snap_hold(ce_pool *p, const char *tag, const char *const *names, size_t n, int *errs);
int ce_snap_release(ce_pool *p, const char *tag, const char *const *names, size_t n, int *errs);
/* name NULL: every hold in the pool; sorted by snapshot, then tag. */
int ce_snap_holds(ce_pool *p, const char *name, ce_hold_info **out, size_t *count);
/* vol NULL: every volume's; sorted by volume, then txg. */
int ce_snap_list(ce_pool *p, const char *vol, ce_snap_info **out, size_t *count);

/*
 * Send and receive (docs/send-stream.md). The stream goes through a
 * callback: write must take all of len (0) or fail (-errno); read returns
 * the bytes read (0 at the end) or -errno. progress, if given, is called
 * after every record with the stream bytes so far and the expected total
 * (0 when unknown); a non-zero return cancels (-ECANCELED).
 */
typedef int (*ce_write_fn)(void *arg, const void *buf, size_t len);
typedef ssize_t (*ce_read_fn)(void *arg, void *buf, size_t len);
typedef int (*ce_progress_fn)(void *arg, uint64_t done, uint64_t total);
typedef struct ce_send_opts {
	const char *from;          /* incremental: an earlier snapshot (VOL@SNAP) of the same lineage,
	                              its own volume's or, for a clone, its origin; NULL: full */
	const char *token;         /* resume what a receive_resume_token names (snap and from unused) */
	ce_progress_fn progress;
	void *progress_arg;
	unsigned flags;            /* CE_SEND_NO_POLICY */
} ce_send_opts;
/* CE_SEND_NO_POLICY: leave the volume's snapshot policy out of the stream (send-stream.md 3.1). */
enum { CE_SEND_NO_POLICY = 1 };
/* -ENOENT when the token's snapshot is not in this pool. */
int ce_send(ce_pool *p, const char *snap, const ce_send_opts *o, ce_write_fn write, void *arg);
/*
 * CE_RECV_FORCE: incremental: roll the volume back to the base first.
 * CE_RECV_NO_POLICY: do not install the snapshot policy the stream carries.
 */
enum { CE_RECV_FORCE = 1, CE_RECV_NO_POLICY = 2 };
/* What a receive did with the stream's snapshot policy (send-stream.md 3.1). */
enum {
	CE_RECV_POLICY_NONE = 0,      /* the stream carries none (a version 1 stream, or sent without) */
	CE_RECV_POLICY_INSTALLED = 1, /* the volume had none: it has the stream's now */
	CE_RECV_POLICY_SAME = 2,      /* the volume has the same one already */
	CE_RECV_POLICY_KEPT = 3,      /* the volume has another one: kept, the stream's is not installed */
	CE_RECV_POLICY_IGNORED = 4,   /* CE_RECV_NO_POLICY */
};
typedef struct ce_recv_opts {
	unsigned flags;
	ce_progress_fn progress;
	void *progress_arg;
	int policy_result;            /* out, on success: CE_RECV_POLICY_* */
	ce_sched policy;              /* out: the stream's policy, unless POLICY_NONE */
} ce_recv_opts;
/*
 * Receive into VOL: a full stream creates it, an incremental one applies
 * onto it, a resumed one continues its partial receive. On success the
 * snapshot VOL@SNAP exists (its name in snap_out). On an error after the
 * first record the volume stays a partial receive (resumable; see
 * ce_vol_info.receive_resume_token); before, nothing changed.
 */
int ce_recv(ce_pool *p, const char *vol, ce_recv_opts *o, ce_read_fn read, void *arg,
    char *snap_out, size_t snap_len);
/* Abandon a partial receive: a full one is destroyed, an incremental one rolled back to its base. */
int ce_recv_abandon(ce_pool *p, const char *vol);
/*
 * The changes from snapshot FROM to TO (a later snapshot of the same
 * lineage, or the live volume, as of its last commit): fn(offset, length,
 * kind) in increasing offset, adjacent ranges of one kind merged. DATA:
 * written since; HOLE: reads zeros now but may not have then. A non-zero
 * return from fn stops the walk and is returned.
 */
enum { CE_DIFF_DATA = 1, CE_DIFF_HOLE = 2 };
typedef int (*ce_diff_fn)(void *arg, uint64_t off, uint64_t len, int kind);
int ce_vol_diff(ce_pool *p, const char *from, const char *to, ce_diff_fn fn, void *arg);
/*
 * The same from byte offset `start` on: parts of the tree wholly before it
 * are not read, and fn is called as the walk goes (so a paged listing that
 * stops after a page reads only up to it). The first range may begin
 * before `start`.
 */
int ce_vol_diff_from(ce_pool *p, const char *from, const char *to, uint64_t start, ce_diff_fn fn,
    void *arg);

enum { CE_RESIZE_SHRINK = 1 };

int ce_vol_create(ce_pool *p, const char *name, uint64_t size, const ce_vol_props *props);
/*
 * Set one field of *pr from a property's name and value as text, the way
 * a client names them: "volblocksize" (a size such as "8K"; ce_vol_create
 * checks its range), "compression" (or "compress": off|lz4|zstd),
 * "checksum" (xxh128|sha256), "sync" (standard|always|disabled). 0, or
 * -EINVAL (unknown property or bad value, ce_errmsg() says which).
 */
int ce_vol_props_parse(ce_vol_props *pr, const char *prop, const char *value);
int ce_vol_destroy(ce_pool *p, const char *name);
/*
 * Destroy a volume with its snapshots (CE_DESTROY_SNAPSHOTS, "-r") and,
 * with CE_DESTROY_CLONES ("-R"), the volumes cloned from them, theirs,
 * and so on: all in one txg. Without the flags a volume that has
 * snapshots (or snapshots with clones) is refused with -EBUSY. Refused
 * too if any of them is open, held or being taken.
 */
enum { CE_DESTROY_SNAPSHOTS = 1, CE_DESTROY_CLONES = 2 };
int ce_vol_destroy_ex(ce_pool *p, const char *name, unsigned flags);
int ce_vol_rename(ce_pool *p, const char *oldname, const char *newname);
int ce_vol_resize(ce_pool *p, const char *name, uint64_t size, unsigned flags);
/* Properties by name: "compression" (off|lz4|zstd), "checksum" (xxh128|sha256),
 * "sync" (standard|always|disabled). */
int ce_vol_set(ce_pool *p, const char *name, const char *prop, const char *value);
/* Several properties at once: every value is checked first, then all change in one txg. */
int ce_vol_set_many(ce_pool *p, const char *name, const char *const *props, const char *const *values,
    size_t n);
/* Back to the default value (the property's source becomes "default"). */
int ce_vol_inherit(ce_pool *p, const char *name, const char *prop);
/* ce_vol_info.local_props: which properties were set rather than left at their default */
enum { CE_PROP_COMPRESSION = 1, CE_PROP_CHECKSUM = 2, CE_PROP_SYNC = 4 };
int ce_vol_info_get(ce_pool *p, const char *name, ce_vol_info *out);
/* All volumes, sorted by name, in a new array the caller frees. */
int ce_vol_list(ce_pool *p, ce_vol_info **out, size_t *count);

int ce_vol_open(ce_pool *p, const char *name, ce_vol **out);
void ce_vol_close(ce_vol *v);
uint64_t ce_vol_size(const ce_vol *v);
/* 1 for a snapshot handle (reads only; writes, trims and zeroing fail with -EROFS). */
int ce_vol_readonly(const ce_vol *v);
uint32_t ce_vol_blocksize(const ce_vol *v);
int ce_vol_read(ce_vol *v, void *buf, size_t len, uint64_t off);
/*
 * Asynchronous read (docs/design-vio.md §8): blocks not in the cache are
 * read through io_uring and verified on the pool's completion thread;
 * so are the tree's indirect blocks a lookup needs, and a range of any
 * length is read. Returns 0 when started: cb(arg, err) then runs exactly
 * once, with err 0 or a negative errno (-EIO: a checksum or device
 * error, counted in ce_pool_stat), either inside this call (nothing
 * needed a device) or later on the completion thread; buf is filled
 * when err is 0. err -EAGAIN in cb: the read could not go on without
 * waiting (a commit held the pool's free-space lock when an indirect
 * block arrived); nothing of buf is data: make the synchronous
 * ce_vol_read. Returns -EAGAIN, calling nothing, when the read cannot be
 * started without blocking (no ring, a commit in progress): the same.
 * Any other -errno (a bad range): cb is not called. cb must not wait for
 * the pool's sync thread (a flush, a throttled write). ce_vol_close waits
 * until every started read has run or is running its cb; cb may close
 * the handle.
 */
typedef void (*ce_read_cb)(void *arg, int err);
int ce_vol_read_async(ce_vol *v, void *buf, size_t len, uint64_t off, ce_read_cb cb, void *arg);
/*
 * Prefetch [off, off+len) into the block cache (NBD_CMD_CACHE): as
 * ce_vol_read_async without a buffer, whatever the length (8 MiB at a
 * time), every block read filling the cache. err -EIO: a block failed
 * its checksum or its read (not cached). ce_vol_prefetch is the
 * synchronous one.
 */
int ce_vol_prefetch_async(ce_vol *v, uint64_t off, uint64_t len, ce_read_cb cb, void *arg);
int ce_vol_prefetch(ce_vol *v, uint64_t off, uint64_t len);
int ce_vol_write(ce_vol *v, const void *buf, size_t len, uint64_t off);
/* flags: CE_WRITE_FUA makes the write durable before it returns (as a FLUSH of the volume would). */
enum { CE_WRITE_FUA = 1 };
int ce_vol_write_flags(ce_vol *v, const void *buf, size_t len, uint64_t off, unsigned flags);
/*
 * A write without a copy: n whole blocks at off (a multiple of the block
 * size), each in a buffer of ce_vol_blocksize bytes from ce_blockbuf_get,
 * become the volume's dirty blocks as they are. The buffers are the
 * engine's from the call on, whatever it returns (those it could not use
 * it frees); the caller never touches them again. Otherwise as
 * ce_vol_write_flags of the same bytes. For frontends that read a
 * payload straight into block buffers (NBD).
 */
int ce_vol_write_adopt(ce_vol *v, void *const *blocks, size_t n, uint64_t off, unsigned flags);
/* Block buffers (4 KiB aligned, size a multiple of 4 KiB up to 128 KiB) from the engine's buffer pool. */
void *ce_blockbuf_get(size_t size);
void ce_blockbuf_put(void *buf, size_t size);
/* 1 if a write now would wait for the sync thread (dirty data over the pool's limit): a hint, unlocked. */
int ce_vol_write_would_wait(const ce_vol *v);
/* Make every write that returned before this call durable, as the volume's
 * sync property says (a no-op with sync=disabled). What NBD FLUSH calls. */
int ce_vol_flush(ce_vol *v);
/* Both punch holes (they read as zeros and own no space). */
int ce_vol_trim(ce_vol *v, uint64_t off, uint64_t len);
int ce_vol_write_zeroes(ce_vol *v, uint64_t off, uint64_t len);

/*
 * Allocation map: fill ext[] with consecutive extents starting at off that
 * together cover up to len bytes (fewer when max extents are not enough);
 * *n is the number filled. A hole extent reads as zeros and owns no space.
 */
enum { CE_EXTENT_HOLE = 1 };
typedef struct ce_extent {
	uint64_t offset, length;
	unsigned flags;
} ce_extent;
int ce_vol_map(ce_vol *v, uint64_t off, uint64_t len, ce_extent *ext, size_t max, size_t *n);

/*
 * Digest of the logical contents (lib/engine/vol_digest.c; design
 * docs/replication.md section 12.11): chunk i is bytes [i*1MiB, (i+1)*1MiB)
 * (the last one shorter), L_i = XXH3-128 of its bytes with holes as
 * zeros; the volume digest is XXH3-128(u64 size LE || L_0 || L_1 ...).
 * Digests are the 16 canonical (big-endian) bytes of the XXH128 hash.
 * -EIO for a damaged block (never a digest over it).
 */
#define CE_DIGEST_CHUNK (1u << 20)
/* Digests of chunks first..first+n-1 into out[n]; -EINVAL past the end. */
int ce_vol_digest_chunks(ce_vol *v, uint64_t first, uint64_t n, uint8_t (*out)[16]);
int ce_vol_digest(ce_vol *v, uint8_t out[16]);
/* ce_vol_digest of volume or snapshot `name` (VOL or VOL@SNAP); *size (may be NULL): its size. */
int ce_vol_checksum(ce_pool *p, const char *name, uint8_t out[16], uint64_t *size);

/*
 * Replication, the replica side (lib/engine/repl.c; design
 * docs/replication.md section 3.8, format docs/on-disk-format.md section 7).
 * A replica volume carries a replica record committed with its data: the
 * epoch it promised (and to whom), the last epoch it adopted, the applied
 * sequence, its membership record, epoch history and sequence->txg map.
 * Only a handle from ce_repl_open writes it, one sequenced operation at a
 * time (ce_repl_write ...); any other writer gets -EROFS.
 */
#define CE_REPL_MB_SIZE 1280u   /* the membership record (mb_phys), wire and disk layout */
#define CE_REPL_REC_HEAD 2304u  /* bytes 0..2303 of the record (repl_phys): all but the map */
typedef struct ce_epoch {
	uint64_t counter, node;
} ce_epoch;
static inline int ce_epoch_cmp(ce_epoch a, ce_epoch b)
{
	return a.counter != b.counter ? (a.counter < b.counter ? -1 : 1) :
	    a.node != b.node ? (a.node < b.node ? -1 : 1) : 0;
}
typedef struct ce_repl_info {
	uint64_t id;                 /* the volume's ds_guid: its replica id */
	uint64_t pool_guid;
	uint8_t vol_uuid[16];
	uint32_t state;              /* 1 complete, 2 rebuilding, 3 retired */
	uint32_t flags;              /* bit 0 controller here */
	ce_epoch promised, last_epoch;
	uint64_t applied;            /* in memory: every operation 1..applied applied */
	uint64_t durable;            /* committed with the data (a txg) */
	uint64_t hi;                 /* highest seq whose bytes may be present */
	char holder_addr[64];
	uint32_t map_count, hist_count;
	uint64_t size;
	uint32_t volblocksize;
	uint8_t rec[CE_REPL_REC_HEAD]; /* the record as it is now (mb at 256, history at 1536) */
} ce_repl_info;
/* Make live volume `name` a replica (state complete, applied 0, promised e to holder). Durable. */
int ce_repl_make(ce_pool *p, const char *name, const uint8_t vol_uuid[16], ce_epoch e,
    const char *holder_addr);
int ce_repl_info_get(ce_pool *p, const char *name, ce_repl_info *out);
/*
 * Promise epoch e to holder (PREPARE): refused with -ESTALE when e is not
 * newer than the promised epoch (a repeat of the promised epoch is
 * answered again), and, when expect is given (resume mode), when the
 * promised epoch is newer than *expect. Durable before it returns; *out
 * (may be NULL) is the record after it, or on -ESTALE the record that refused.
 */
int ce_repl_promise(ce_pool *p, const char *name, ce_epoch e, const char *holder_addr,
    const ce_epoch *expect, ce_repl_info *out);
/*
 * Adopt epoch e with base (START_EPOCH): e must be the promised epoch
 * (-ESTALE), not adopted already, and applied must equal base (-EPROTO), mb (CE_REPL_MB_SIZE bytes)
 * becomes the held membership. Durable before it returns.
 */
int ce_repl_start_epoch(ce_pool *p, const char *name, ce_epoch e, uint64_t base, const void *mb);
/* Store membership record mb written by epoch e (MB_COMMIT): e must be promised; (epoch, version) newer. */
int ce_repl_membership(ce_pool *p, const char *name, ce_epoch e, const void *mb);
/* Set or clear record flags (RP_CONTROLLER_HERE). Durable. */
int ce_repl_set_flags(ce_pool *p, const char *name, uint32_t set, uint32_t clear);
/* A handle that applies sequenced operations (and reads). */
int ce_repl_open(ce_pool *p, const char *name, ce_vol **out);
/*
 * Sequenced operations: applied only when e is the promised epoch
 * (-ESTALE) and seq == applied + 1 (-EPROTO; *expect said by ce_repl_info).
 * A failure after the epoch and sequence checks leaves the operation
 * unapplied and the volume possibly partly changed: the caller ends the
 * session (the controller ejects this replica).
 */
int ce_repl_write(ce_vol *h, ce_epoch e, uint64_t seq, const void *buf, size_t len, uint64_t off);
int ce_repl_trim(ce_vol *h, ce_epoch e, uint64_t seq, uint64_t off, uint64_t len);
int ce_repl_zero(ce_vol *h, ce_epoch e, uint64_t seq, uint64_t off, uint64_t len);
/*
 * Rebuild, the engine side (lib/engine/rebuild.c; docs/replication.md
 * section 12, bytes on-disk-format.md section 7.5). A target replica in
 * state rebuilding takes rebuild data (ce_rebuild_write, _hole) besides
 * its live sequenced operations; its progress (rb_phys) commits with the
 * data it covers, so a killed target resumes from its durable cursor.
 */
typedef struct ce_rebuild {
	uint32_t kind;               /* CE_RB_TAIL, CE_RB_DELTA, CE_RB_FULL */
	uint32_t flags;              /* CE_RB_RESUME: keep the durable cursor (must equal cursor) */
	ce_epoch base_epoch;         /* the lineage of the base point (and the epoch adopted at the end) */
	uint64_t base_seq;           /* c: the common point (delta), 0 for full */
	uint64_t join_seq;           /* J: the live stream's operations after it are applied here */
	uint64_t source;             /* the source replica's id */
	uint64_t cursor;             /* byte offset: every listed range ending at or before it is applied */
	uint64_t done, total, transferred;
	uint64_t started;            /* seconds since the epoch */
} ce_rebuild;
enum { CE_RB_TAIL = 1, CE_RB_DELTA = 2, CE_RB_FULL = 3 };
enum { CE_RB_RESUME = 1 };
enum { CE_RB_COMPLETE = 1, CE_RB_CANCELLED = 2, CE_RB_FAILED = 3 };
/*
 * Begin (or resume) a rebuild on replica handle h in epoch e (the promised
 * one): state rebuilding with rb, applied becomes rb->join_seq (the next
 * live operation accepted is J + 1). Durable before it returns.
 * -ESTALE: not the promised epoch; -EPROTO: resume with another cursor, or
 * J below what was applied; -EINVAL: bad kind.
 */
int ce_rebuild_begin(ce_vol *h, ce_epoch e, const ce_rebuild *rb);
/* Rebuild data and holes (state rebuilding, epoch e); not sequenced. */
int ce_rebuild_write(ce_vol *h, ce_epoch e, const void *buf, size_t len, uint64_t off);
int ce_rebuild_hole(ce_vol *h, ce_epoch e, uint64_t off, uint64_t len);
/* Everything listed below cursor is applied: it commits with the next txg. */
int ce_rebuild_cursor(ce_vol *h, uint64_t cursor, uint64_t done, uint64_t transferred);
/* Ask for a commit of the rebuild's data and cursor so far, without waiting for it. */
int ce_rebuild_commit(ce_vol *h);
/* Commit the rebuild's data and cursor now; *durable_cursor: the cursor that commit holds. */
int ce_rebuild_flush(ce_vol *h, uint64_t *durable_cursor);
/*
 * End it: CE_RB_COMPLETE (the data is committed first, then the record
 * says complete and, for a target with no epoch history, adopts
 * rb.base_epoch at rb.base_seq), or CANCELLED / FAILED (stays rebuilding,
 * its cursor kept, flags say why). Durable.
 */
int ce_rebuild_end(ce_vol *h, ce_epoch e, int outcome);
/* The replica's rebuild record (kind 0: none) and the cursor of its last commit. */
int ce_rebuild_get(ce_vol *h, ce_rebuild *out, uint64_t *durable_cursor);
/*
 * The ranges to copy (section 12.3): with full, every data block; else
 * data and holes born in or after the txg the sequence->txg map gives for
 * seq base (nothing when base is the newest applied). The pool is synced
 * first, so everything applied before the call is listed. From byte
 * `from` on; fn as ce_vol_diff's (it must not call into the pool).
 */
int ce_rebuild_scan(ce_vol *h, uint64_t base, int full, uint64_t from, ce_diff_fn fn, void *arg);
/* Make everything applied durable (a txg commit); *durable the seq now durable. */
int ce_repl_flush(ce_vol *h, uint64_t *durable);
uint64_t ce_repl_applied(ce_vol *h);
int ce_vol_is_replica(ce_pool *p, const char *name);
/*
 * Reconciliation (docs/replication.md section 3.7, as built). The extents
 * of the operations after seq `after` this replica began applying (in
 * memory: the newest 65536, none from before this import): up to max of
 * them into off/len (a byte range each, in seq order), *n how many, *top
 * the highest seq listed. -ERANGE when the record no longer (or never)
 * held an operation after `after` (`after` below what it kept).
 */
int ce_repl_extents(ce_vol *h, uint64_t after, uint64_t *off, uint64_t *len, size_t max, size_t *n,
    uint64_t *top);
/*
 * A tail sync begins (promised epoch e, not yet started): the record goes
 * to state rebuilding (tail) and takes hist (nhist eh_phys entries: the
 * reference's epoch history, whose state it is about to hold), durable
 * before any byte changes; then ce_repl_tail_write copies bytes (zero: a
 * range of zeros), and ce_repl_start_epoch(.., base, ..) completes it
 * (applied := base, state complete).
 */
int ce_repl_tail_begin(ce_pool *p, const char *name, ce_epoch e, const void *hist, uint32_t nhist);
int ce_repl_tail_write(ce_vol *h, ce_epoch e, const void *buf, size_t len, uint64_t off, int zero);
/*
 * Sequenced snapshot operations (replication.md rule 6): applied like a
 * write, at seq (== applied + 1) in the promised epoch, on volume h's
 * snapshot `snap` (the part after '@'). op: 1 create, 2 destroy, 3 rename
 * to `newname`. A failure of the snapshot operation itself (a name taken
 * or missing, no space) still consumes the seq -- every replica fails it
 * alike, so they stay identical -- and is reported in *op_err (0 or
 * -errno); the return value is nonzero only when the seq was not consumed
 * (stale epoch -ESTALE, out of sequence -EPROTO, not a replica handle).
 */
enum { CE_REPL_SNAP_CREATE = 1, CE_REPL_SNAP_DESTROY = 2, CE_REPL_SNAP_RENAME = 3 };
int ce_repl_snap(ce_vol *h, ce_epoch e, uint64_t seq, int op, const char *snap, const char *newname,
    int *op_err);
/*
 * Sequenced volume operations (replication.md rule 6 item 4), with the
 * same seq rules and *op_err as ce_repl_snap: CE_REPL_ROLLBACK rolls h's
 * volume back to its snapshot `snap` (flags: CE_ROLLBACK_DESTROY_LATER;
 * the replica's own open handles do not refuse it: the apply line orders
 * every operation around it), CE_REPL_RESIZE resizes it to `size` bytes
 * (flags: CE_RESIZE_SHRINK). Each commits its own txg before it counts as
 * applied; the caller makes applied durable (ce_repl_flush) before it
 * reports it done.
 */
enum { CE_REPL_ROLLBACK = 4, CE_REPL_RESIZE = 5 };
int ce_repl_volop(ce_vol *h, ce_epoch e, uint64_t seq, int op, const char *snap, uint64_t size,
    unsigned flags, int *op_err);

const char *ce_errmsg(void);
/*
 * The stable code (CE_E_*) of the calling thread's last failure: a
 * specific one where the engine names the condition (CE_E_HELD,
 * CE_E_WRONG_BASE ...), else the one its errno says (ce_errcode_of_errno);
 * CE_E_NONE when no failure was recorded since the detail was last
 * cleared (management calls clear it when they begin). Read it right
 * after the failing call, as ce_errmsg().
 */
int ce_errcode(void);
/* The code of failure err (a -errno just returned): ce_errcode() if the last failure had that errno. */
int ce_errcode_of(int err);
const char *ce_compress_name(int c);
const char *ce_checksum_name(int c);
const char *ce_sync_name(int s);

#ifdef __cplusplus
}
#endif
#endif
