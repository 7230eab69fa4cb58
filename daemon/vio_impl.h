#ifndef CASK_DAEMON_VIO_IMPL_H
#define CASK_DAEMON_VIO_IMPL_H
/* Between the vio layers and their control operations (ctl/iostat.c). */
#include <stdatomic.h>
#include <stdint.h>
#include "vio.h"

#define VIO_HIST_BUCKETS 32 /* bucket k: latencies in [2^k, 2^(k+1)) microseconds (k = 0 also < 1 us) */

typedef struct vio_opstats {
	_Atomic uint64_t count, bytes, errors, lat_ns;
	_Atomic int64_t in_flight;
	_Atomic uint64_t hist[VIO_HIST_BUCKETS];
} vio_opstats;

typedef struct vio_opstats_snap {
	uint64_t count, bytes, errors, lat_ns, in_flight;
	uint64_t hist[VIO_HIST_BUCKETS];
} vio_opstats_snap;

/* 1 with the counters of the export, 0 (all zero) when it was never opened. */
int vio_stats_get(const char *name, vio_opstats_snap out[VIO_NOPS]);
/* fn(name, counters, arg) for every export with counters (invariant 1; stops when fn returns
 * non-zero); returns how many it visited. fn runs under the table's lock, which the IO path never
 * takes (only opens and closes do): it must only copy. */
size_t vio_stats_each(int (*fn)(const char *name, const vio_opstats_snap st[VIO_NOPS], void *arg), void *arg);
void vio_stats_fini(void);
/* The volume (or snapshot, or pool) `name` is gone or renamed: drop its counters and those of
 * names under it ("name@...", "name/..."); vio_stats.c invariant 1. */
void vio_stats_forget(const char *name);
/* Counter entries held now (tests: the table stays bounded). */
size_t vio_stats_count(void);

enum { VIO_FAULT_NONE, VIO_FAULT_FAIL, VIO_FAULT_DELAY, VIO_FAULT_STALL };
typedef struct vio_fault_rule {
	int action;          /* VIO_FAULT_* */
	unsigned kinds;      /* bit (1 << VIO_READ) ... */
	int err;             /* FAIL: negative errno */
	uint64_t delay_us;   /* DELAY */
	uint64_t nth;        /* 0: every matching request; N: the Nth from now, once */
	int pinned;          /* STALL, DELAY: vio_withdraw cannot take the request back (a request the
	                      * backend has begun: what the stall bound must wait for) */
} vio_fault_rule;
typedef struct vio_fault_status {
	uint64_t matched, injected, held, max_held, released;
	uint64_t delaying;   /* DELAY: requests sleeping now */
	uint64_t withdrawn;  /* held or delayed requests taken back by vio_withdraw since the rule was set */
} vio_fault_status;
/* Replace the export's rule (action NONE clears it; held requests stay held until released). */
void vio_fault_set(const char *name, const vio_fault_rule *rule);
/* Pass every held request of the export down; returns how many. */
uint64_t vio_fault_release(const char *name);
void vio_fault_get(const char *name, vio_fault_status *st);
void vio_fault_stop(void); /* release everything held, hold nothing more */

/* The range lock's daemon-wide counters (vio_lock.c; the metrics endpoint). Only the slow path
 * counts: the fast path of a request without a lock in the way is untouched. */
typedef struct vio_lock_stats {
	uint64_t granted;        /* locks granted */
	uint64_t waited;         /* of those, the ones that queued first */
	uint64_t wait_ns;        /* their time in the queue */
	uint64_t req_waited;     /* requests that queued behind a lock */
	uint64_t withdrawn;      /* locks and requests taken out of the queue (vio_withdraw) */
	uint64_t held, queued;   /* now: locks held; locks and requests queued */
} vio_lock_stats;
void vio_lock_stats_get(vio_lock_stats *out);
/* requests and locks vio_withdraw / vio_lock_withdraw took back, daemon-wide */
uint64_t vio_withdrawn_total(void);
void vio_fault_fini(void);
#endif
