#ifndef CASK_DAEMON_SCHED_H
#define CASK_DAEMON_SCHED_H
/*
 * The snapshot scheduler (sched.c): runs the policies the pools store
 * (docs/manifests.md "Snapshot policy"; stored by the engine's sched.c).
 */
#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include "cask/engine.h"

int sched_start(void);   /* the thread: a pass at start, then every few seconds and when kicked */
void sched_stop(void);
void sched_kick(void);   /* a policy changed or a pool came: a pass soon */
/* The scheduler's clock, seconds since the epoch (a test's, once set). */
int64_t sched_now(void);
/* Test only (--test-ops): set the clock (it then stays there) and run a pass now;
 * res gets {time, taken: [...], pruned: [...], failed: [{name, error}]}. */
int sched_clock_pass(int64_t now, json_object *res);
void sched_test_clock(int64_t now); /* caskd --sched-clock: the clock from the start (test only) */
/* `cask schedule run POOL/VOL`: a snapshot now (named after the minute), then pruning;
 * res gets {snapshot, pruned}. -EINVAL when the volume has no policy. */
int sched_run(const char *pool, const char *vol, json_object *res);
/* The listing's fields of one policy (pool held by the caller). */
int sched_describe(ce_pool *p, const ce_sched_info *si, json_object *o);
/* The metrics families of the scheduler, appended to buf (metrics.c). */
size_t sched_metrics(char **buf, size_t *len, size_t *cap, size_t max_series); /* returns the policies left out */

/* The rule, shared with the listing: names and the kept set. */
void sched_slot_name(int64_t t, char *buf, size_t len);  /* "auto-YYYY-MM-DDTHH:MMZ" */
int sched_parse_name(const char *snap, int64_t *t);       /* 0 and its time, or -1 */
/* t[0..n) ascending: keep[i] = 1 for each snapshot a rule keeps */
void sched_keep(const ce_sched *pol, const int64_t *t, size_t n, unsigned char *keep);
#endif
