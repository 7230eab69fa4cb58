#ifndef CASK_DAEMON_VIO_H
#define CASK_DAEMON_VIO_H
/*
 * vio -- the volume IO interface every frontend submits to (docs/design-vio.md).
 * One asynchronous request interface per volume handle; layers stack like
 * nbdkit filters (statistics, fault injection, later replication) over the
 * local engine at the bottom.
 */
#include <stddef.h>
#include <stdint.h>
#include "cask/engine.h"

enum vio_op { VIO_READ, VIO_WRITE, VIO_FLUSH, VIO_TRIM, VIO_ZERO, VIO_MAP, VIO_CACHE, VIO_NOPS };
/* request flags */
enum {
	VIO_FUA = 1u << 0, VIO_NO_HOLE = 1u << 1, VIO_FAST_ZERO = 1u << 2, VIO_MAP_ONE = 1u << 3,
	VIO_LOCKED = 1u << 4, /* the submitter holds r->lock, a range lock covering the request (§9) */
};
/* capabilities of an open volume */
enum {
	VIO_CAP_READ_ONLY = 1u << 0, VIO_CAP_FLUSH = 1u << 1, VIO_CAP_FUA = 1u << 2, VIO_CAP_TRIM = 1u << 3,
	VIO_CAP_ZERO = 1u << 4, VIO_CAP_FAST_ZERO = 1u << 5, VIO_CAP_MAP = 1u << 6, VIO_CAP_CACHE = 1u << 7,
	VIO_CAP_MULTI_CONN = 1u << 8,
	VIO_CAP_ADOPT = 1u << 9, /* a WRITE may carry its data as block buffers (vio_req.blk): the engine takes them */
};
#define VIO_MAX_HOOKS 8
#define VIO_MSG_MAX 160

typedef struct vio_req vio_req;
typedef struct vio_dev vio_dev;
typedef struct vio_vol vio_vol;
typedef struct vio_lock vio_lock;
typedef void (*vio_hook_fn)(vio_req *r, void *arg);

/* a waiter or admitted entry of the range lock's table (vio_lock.c; private to the stack) */
typedef struct vio_lkw {
	struct vio_lkw *prev, *next;
	uint64_t off, len;
	int kind;
} vio_lkw;

struct vio_req {
	/* set by the submitter */
	uint8_t op;              /* enum vio_op */
	uint32_t flags;          /* VIO_FUA ... */
	uint64_t off, len;
	void *buf;               /* READ: filled; WRITE: the data */
	/* WRITE with VIO_CAP_ADOPT, instead of buf: len / vio_block_size buffers of that size from
	 * ce_blockbuf_get, at an aligned off. The engine takes them (blk becomes NULL); whatever is
	 * still in blk on completion is the submitter's to free. */
	void **blk;
	ce_extent *ext;          /* MAP: room for ext_max extents */
	size_t ext_max, ext_n;
	void (*done)(vio_req *r); /* runs exactly once, on any thread (maybe inside vio_submit) */
	void *udata;
	vio_lock *lock;          /* with VIO_LOCKED: the range lock the submitter holds */
	/* set on completion */
	int status;              /* 0 or -errno */
	int code;                /* stable code on failure: CE_E_* (cask/errcodes.h) */
	char msg[VIO_MSG_MAX];
	/* private to the stack */
	uint64_t start_ns;
	vio_dev *dev;            /* where the request is now */
	int nhooks;
	struct { vio_hook_fn fn; void *arg; } hooks[VIO_MAX_HOOKS];
	vio_req *wnext;          /* worker queue link */
	vio_lkw lkw;             /* the range lock's table (only while a lock is pending or held) */
};

typedef struct vio_layer_ops {
	const char *name;
	void (*submit)(vio_dev *d, vio_req *r);
	void (*close)(vio_dev *d);
	/* optional (vio_withdraw): if r waits in this layer's own queue, take it out (under the
	 * layer's lock, so it is never also passed down) and return 1; else 0 */
	int (*withdraw)(vio_dev *d, vio_req *r);
} vio_layer_ops;

struct vio_dev {
	const vio_layer_ops *ops;
	vio_dev *next;           /* the layer below (NULL for the bottom) */
	vio_vol *vol;
	void *priv;
};

/* ---- for frontends ---- */
/* open_flags: none yet. On failure returns NULL with *err a negative errno (message: ce_errmsg()). */
vio_vol *vio_open(const char *export_name, unsigned open_flags, int *err);
/* The caller has seen every submitted request complete. */
void vio_close(vio_vol *v);
uint64_t vio_size(const vio_vol *v);
uint32_t vio_block_size(const vio_vol *v);
unsigned vio_caps(const vio_vol *v);
const char *vio_name(const vio_vol *v);
void vio_submit(vio_vol *v, vio_req *r);
const char *vio_op_name(int op);
/*
 * The range lock (docs/design-vio.md §9): lock [off, off+len) of the volume exclusively
 * against every READ, WRITE, TRIM and ZERO of every handle of the volume. granted(lk, arg)
 * runs exactly once when the lock is held: inside the call when nothing is in the way, else
 * later on a vio worker. The holder's requests set VIO_LOCKED and r->lock = lk, lie inside the
 * range, and complete before vio_unlock. Returns 0, or -EROFS (a snapshot) / -EINVAL (range)
 * and calls nothing.
 */
int vio_lock_range(vio_vol *v, uint64_t off, uint64_t len, void (*granted)(vio_lock *lk, void *arg), void *arg);
void vio_unlock(vio_lock *lk);
/*
 * Cancel with an outcome (docs/design-vio.md §10): take r out of the queue it waits in inside
 * the stack (a layer's queue, the range lock's, the worker queue) if it has not begun to act.
 * 1: withdrawn -- it never had and never will have an effect, no layer holds it any more, and
 * the caller ends it with vio_complete(r, -ECANCELED, msg) (the hooks of the layers it passed
 * run then, as for any completion). 0: it is running or done, and completes as usual. A request
 * moving between layers at the moment may be missed (0); asking again later finds it.
 */
int vio_withdraw(vio_vol *v, vio_req *r);
/* A lock that vio_lock_range(v, ..., arg) queued and has not granted: taken back (1; granted
 * never runs), else 0 (granted ran or will run). */
int vio_lock_withdraw(vio_vol *v, void *arg);

/* ---- for layers ---- */
void vio_next(vio_dev *d, vio_req *r);                       /* pass down */
void vio_push_done(vio_req *r, vio_hook_fn fn, void *arg);  /* see the completion on the way up */
void vio_complete(vio_req *r, int status, const char *msg); /* end it here (runs the hooks, then done) */
/* Run fn(arg) on a worker thread (a layer that must wait: delay). */
void vio_defer(void (*fn)(void *arg), void *arg);
uint64_t vio_now_ns(void);

/* ---- daemon lifetime ---- */
typedef struct vio_config {
	int io_threads;          /* worker threads (default 32) */
	int test_ops;            /* put the fault layer in every stack, allow test.vio_fault */
} vio_config;
int vio_init(const vio_config *cfg);
void vio_quiesce(void);      /* before the frontends drain: a test layer holds nothing more */
void vio_shutdown(void);     /* after every volume is closed */
int vio_test_ops(void);
int vio_worker_count(void);

/* the shipped layers (vio_stats.c, vio_fault.c) */
vio_dev *vio_stats_layer(vio_vol *v, vio_dev *below);
vio_dev *vio_fault_layer(vio_vol *v, vio_dev *below);
vio_dev *vio_lock_layer(vio_vol *v, vio_dev *below, ce_pool *pool, uint64_t guid);
vio_dev *vio_lock_dev(vio_vol *v); /* the handle's lock layer, NULL for a snapshot */
#endif
