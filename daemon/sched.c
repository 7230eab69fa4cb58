/*
 * sched.c -- caskd runs the snapshot policies its pools store (the engine's
 * sched.c stores them; the rules are docs/manifests.md "Snapshot policy").
 *
 * A pass, once every few seconds and on demand, walks every pool: for each
 * volume with a policy it works out the newest automatic snapshot (the
 * newest snapshot marked automatic whose name is auto-YYYY-MM-DDTHH:MMZ),
 * takes one when the current slot (the time rounded down to a multiple of
 * `every` since the epoch) is newer, all the pool's due volumes in one
 * ce_snap_create_ex call (one instant), and then prunes the automatic
 * snapshots the policy no longer keeps.
 *
 * Invariants:
 *   1. Only automatic snapshots are pruned, and never one that is held or
 *      the origin of a clone; a snapshot someone took by hand (or renamed)
 *      is never touched, whatever its name.
 *   2. At most one snapshot per volume per pass, named after the current
 *      slot: after downtime the first pass takes one catch-up snapshot,
 *      not one per missed slot; a clock that went back finds its slot
 *      already taken (slot <= newest) and takes nothing; nothing is pruned
 *      because of the time (the kept set depends on the snapshots' slots
 *      only), so a clock jump cannot prune wrongly.
 *   3. A failed snapshot is logged and retried at the volume's next slot,
 *      not before (failed_slot); it stops neither the pass nor other
 *      volumes (a batch refused for some names is retried without them).
 *   4. Passes are serialised (pass_lock): the thread's, `cask schedule run`
 *      and the test clock's never interleave.
 *   5. The clock is the real time unless a test set it (test.sched_clock,
 *      only with --test-ops): from then on it stays where the test puts it.
 */
#include "sched.h"
#include "log.h"
#include "registry.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PASS_SECONDS 10

/* What caskd remembers of a policy's runs (since it started). */
typedef struct vstate {
	char pool[64];
	uint64_t guid;
	char volume[256];
	uint64_t runs, failures, pruned;
	int64_t failed_slot;       /* the slot whose snapshot failed (retried at the next one), or -1 */
	int64_t last_attempt;      /* when a snapshot was last tried (clock seconds), 0: never */
	char last_error[200];
	uint64_t autos;            /* automatic snapshots at the end of the last pass */
	int seen;                  /* in the current pass */
} vstate;

static pthread_mutex_t pass_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t state_lock = PTHREAD_MUTEX_INITIALIZER; /* states[], test clock */
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static vstate *states;
static size_t nstates, capstates;
static int test_clock_set;
static int64_t test_now;
static int stop, running;
static int kicked;         /* a pass is wanted now (state_lock) */
static pthread_t tid;

int64_t
sched_now(void)
{
	pthread_mutex_lock(&state_lock);
	int64_t t = test_clock_set ? test_now : (int64_t)time(NULL);
	pthread_mutex_unlock(&state_lock);
	return t;
}

/* state_lock held */
static vstate *
state_of(const char *pool, uint64_t guid)
{
	for (size_t i = 0; i < nstates; i++)
		if (states[i].guid == guid && strcmp(states[i].pool, pool) == 0)
			return &states[i];
	if (nstates == capstates) {
		capstates = capstates ? capstates * 2 : 16;
		states = xrealloc(states, capstates * sizeof(*states));
	}
	vstate *s = &states[nstates++];
	memset(s, 0, sizeof(*s));
	snprintf(s->pool, sizeof(s->pool), "%s", pool);
	s->guid = guid;
	s->failed_slot = -1;
	return s;
}

/* ---- names and the rule ---- */

void
sched_slot_name(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, len, "auto-%Y-%m-%dT%H:%MZ", &tm) == 0)
		snprintf(buf, len, "auto-invalid");
}

int
sched_parse_name(const char *snap, int64_t *t)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	int y, mo, d, h, mi;
	char z, end;
	if (sscanf(snap, "auto-%4d-%2d-%2dT%2d:%2d%c%c", &y, &mo, &d, &h, &mi, &z, &end) != 6 || z != 'Z')
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	int64_t v = (int64_t)timegm(&tm);
	char again[64];
	sched_slot_name(v, again, sizeof(again));
	if (strcmp(again, snap) != 0)
		return -1; /* not in the exact form we write (leading zeros, ranges) */
	*t = v;
	return 0;
}

/* The period of time t for retain kind k (0 hour, 1 day, 2 ISO week, 3 month; UTC). */
static int64_t
period(int k, int64_t t)
{
	int64_t day = t >= 0 ? t / 86400 : (t - 86399) / 86400;
	switch (k) {
	case 0:
		return t >= 0 ? t / 3600 : (t - 3599) / 3600;
	case 1:
		return day;
	case 2:
		return (day + 3) >= 0 ? (day + 3) / 7 : (day + 3 - 6) / 7; /* 1970-01-01 was a Thursday */
	default: {
		time_t tt = (time_t)t;
		struct tm tm;
		gmtime_r(&tt, &tm);
		return (int64_t)tm.tm_year * 12 + tm.tm_mon;
	}
	}
}

void
sched_keep(const ce_sched *pol, const int64_t *t, size_t n, unsigned char *keep)
{
	memset(keep, 0, n);
	for (size_t k = 0; k < pol->keep && k < n; k++)
		keep[n - 1 - k] = 1;
	const uint32_t counts[4] = { pol->hourly, pol->daily, pol->weekly, pol->monthly };
	for (int k = 0; k < 4; k++) {
		if (counts[k] == 0)
			continue;
		/* newest first; within a period the last one visited is its oldest, which is kept */
		uint32_t periods = 0;
		int64_t cur = 0;
		size_t cand = 0;
		int have = 0;
		for (size_t i = n; i-- > 0;) {
			int64_t pid = period(k, t[i]);
			if (!have || pid != cur) {
				if (have)
					keep[cand] = 1;
				if (periods == counts[k]) {
					have = 0;
					break;
				}
				periods++;
				cur = pid;
				have = 1;
			}
			cand = i;
		}
		if (have)
			keep[cand] = 1;
	}
}

/* ---- one pool's pass ---- */

typedef struct asnap {
	char name[256]; /* VOL@auto-... */
	int64_t t;
	unsigned holds, clones;
} asnap;

static int
cmp_asnap(const void *a, const void *b)
{
	int64_t x = ((const asnap *)a)->t, y = ((const asnap *)b)->t;
	return x < y ? -1 : x > y;
}

/* The automatic snapshots of vol, oldest first (caller frees). */
static int
autos_of(ce_pool *p, const char *vol, asnap **out, size_t *n)
{
	ce_snap_info *l;
	size_t m;
	int err = ce_snap_list(p, vol, &l, &m);
	if (err != 0)
		return err;
	asnap *a = xcalloc(m ? m : 1, sizeof(*a));
	size_t k = 0;
	for (size_t i = 0; i < m; i++) {
		const char *at = strchr(l[i].name, '@');
		int64_t t;
		if (!l[i].automatic || at == NULL || sched_parse_name(at + 1, &t) != 0)
			continue; /* invariant 1 */
		snprintf(a[k].name, sizeof(a[k].name), "%s", l[i].name);
		a[k].t = t;
		a[k].holds = l[i].holds;
		a[k].clones = l[i].clones;
		k++;
	}
	free(l);
	qsort(a, k, sizeof(*a), cmp_asnap);
	*out = a;
	*n = k;
	return 0;
}

typedef struct pass {
	int64_t now;
	const char *only;      /* `schedule run`: this volume only, at the minute */
	json_object *taken, *pruned, *failed; /* reports (may be NULL) */
	int run_err;           /* `schedule run`: the volume's outcome */
	char run_msg[1024];
	int found;             /* `schedule run`: the volume has a policy */
} pass;

static void
report(json_object *arr, const char *pool, const char *name, const char *msg)
{
	if (arr == NULL)
		return;
	char full[400];
	snprintf(full, sizeof(full), "%s/%s", pool, name);
	if (msg == NULL) {
		json_object_array_add(arr, json_object_new_string(full));
	} else {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "name", json_object_new_string(full));
		json_object_object_add(o, "error", json_object_new_string(msg));
		json_object_array_add(arr, o);
	}
}

static void
note_result(const char *pool, uint64_t guid, int64_t slot, int64_t now, int err, const char *msg)
{
	pthread_mutex_lock(&state_lock);
	vstate *s = state_of(pool, guid);
	s->last_attempt = now;
	if (err == 0) {
		s->runs++;
		s->failed_slot = -1;
		s->last_error[0] = '\0';
	} else {
		s->failures++;
		s->failed_slot = slot;
		snprintf(s->last_error, sizeof(s->last_error), "%s", msg);
	}
	pthread_mutex_unlock(&state_lock);
}

static int
pool_pass(ce_pool *p, void *arg)
{
	pass *x = arg;
	const char *pool = ce_pool_name(p);
	ce_sched_info *pol;
	size_t np;
	if (ce_sched_list(p, &pol, &np) != 0)
		return 0;
	pthread_mutex_lock(&state_lock);
	for (size_t i = 0; i < np; i++) {
		vstate *s = state_of(pool, pol[i].vol_guid);
		s->seen = 1;
		snprintf(s->volume, sizeof(s->volume), "%s", pol[i].volume);
	}
	pthread_mutex_unlock(&state_lock);

	/* 1. the snapshots due: one per volume, named after its slot (invariant 2) */
	char (*names)[330] = xcalloc(np ? np : 1, sizeof(*names));
	const char **nv = xcalloc(np ? np : 1, sizeof(char *));
	size_t *which = xcalloc(np ? np : 1, sizeof(size_t));
	int64_t *slots = xcalloc(np ? np : 1, sizeof(int64_t));
	size_t nd = 0;
	for (size_t i = 0; i < np; i++) {
		if (x->only != NULL && strcmp(x->only, pol[i].volume) != 0)
			continue;
		x->found = 1;
		asnap *a;
		size_t na;
		if (autos_of(p, pol[i].volume, &a, &na) != 0)
			continue;
		int64_t every = (int64_t)pol[i].policy.every_min * 60;
		int64_t slot = x->only != NULL ? x->now - x->now % 60 : x->now - x->now % every;
		pthread_mutex_lock(&state_lock);
		int64_t failed = state_of(pool, pol[i].vol_guid)->failed_slot;
		pthread_mutex_unlock(&state_lock);
		int due = x->only != NULL || ((na == 0 || slot > a[na - 1].t) && slot != failed);
		free(a);
		if (!due)
			continue;
		char sn[64];
		sched_slot_name(slot, sn, sizeof(sn));
		snprintf(names[nd], sizeof(names[nd]), "%s@%s", pol[i].volume, sn);
		nv[nd] = names[nd];
		which[nd] = i;
		slots[nd] = slot;
		nd++;
	}
	/* all of them in one instant; a batch refused for some names goes again without them (invariant 3) */
	int *errs = xcalloc(nd ? nd : 1, sizeof(int));
	char msg[300] = "";
	for (int attempt = 0; nd > 0 && attempt < 2; attempt++) {
		int err = ce_snap_create_ex(p, nv, nd, CE_SNAP_AUTO, errs);
		snprintf(msg, sizeof(msg), "%s", err != 0 ? ce_errmsg() : "");
		size_t bad = 0;
		for (size_t k = 0; k < nd; k++)
			bad += errs[k] != 0;
		if (err == 0 || bad == 0 || bad == nd || attempt == 1) {
			for (size_t k = 0; k < nd; k++) {
				int e = err == 0 ? 0 : errs[k] != 0 ? errs[k] : err;
				const char *why = e == 0 ? NULL : errs[k] != 0 && err != 0 ?
				    (errs[k] == -EEXIST ? "a snapshot of that name exists" : strerror(-errs[k])) : msg;
				note_result(pool, pol[which[k]].vol_guid, slots[k], x->now, e, why ? why : "");
				if (x->only != NULL) {
					x->run_err = e;
					snprintf(x->run_msg, sizeof(x->run_msg), "%s/%s: %s", pool, nv[k], why ? why : "");
				}
				if (e == 0) {
					log_info("schedule %s/%s: took %s/%s", pool, pol[which[k]].volume, pool, nv[k]);
					report(x->taken, pool, nv[k], NULL);
				} else {
					log_warn("schedule %s/%s: snapshot %s/%s failed: %s (tried again at the next slot)",
					    pool, pol[which[k]].volume, pool, nv[k], why);
					report(x->failed, pool, nv[k], why);
				}
			}
			break;
		}
		/* keep only the names the engine did not refuse, and go again */
		size_t w = 0;
		for (size_t k = 0; k < nd; k++) {
			if (errs[k] != 0) {
				const char *why = errs[k] == -EEXIST ? "a snapshot of that name exists" : strerror(-errs[k]);
				note_result(pool, pol[which[k]].vol_guid, slots[k], x->now, errs[k], why);
				log_warn("schedule %s/%s: snapshot %s/%s failed: %s (tried again at the next slot)", pool,
				    pol[which[k]].volume, pool, nv[k], why);
				report(x->failed, pool, nv[k], why);
				if (x->only != NULL) {
					x->run_err = errs[k];
					snprintf(x->run_msg, sizeof(x->run_msg), "%s/%s: %s", pool, nv[k], why);
				}
				continue;
			}
			memmove(names[w], names[k], sizeof(names[w]));
			which[w] = which[k];
			slots[w] = slots[k];
			nv[w] = names[w];
			w++;
		}
		nd = w;
	}
	free(errs);

	/* 2. prune what no rule keeps: automatic, not held, not an origin (invariant 1) */
	for (size_t i = 0; i < np; i++) {
		if (x->only != NULL && strcmp(x->only, pol[i].volume) != 0)
			continue;
		asnap *a;
		size_t na;
		if (autos_of(p, pol[i].volume, &a, &na) != 0)
			continue;
		int64_t *t = xcalloc(na ? na : 1, sizeof(int64_t));
		unsigned char *keep = xcalloc(na ? na : 1, 1);
		for (size_t k = 0; k < na; k++)
			t[k] = a[k].t;
		sched_keep(&pol[i].policy, t, na, keep);
		const char **gone = xcalloc(na ? na : 1, sizeof(char *));
		size_t ng = 0, left = na;
		for (size_t k = 0; k < na; k++)
			if (!keep[k] && a[k].holds == 0 && a[k].clones == 0)
				gone[ng++] = a[k].name;
		if (ng > 0) {
			int *de = xcalloc(ng, sizeof(int));
			if (ce_snap_destroy_many(p, gone, ng, de) == 0) {
				for (size_t k = 0; k < ng; k++) {
					log_info("schedule %s/%s: pruned %s/%s", pool, pol[i].volume, pool, gone[k]);
					report(x->pruned, pool, gone[k], NULL);
				}
				left -= ng;
			} else {
				/* something changed under us (a hold placed meanwhile): one at a time */
				for (size_t k = 0; k < ng; k++) {
					if (ce_snap_destroy(p, gone[k]) == 0) {
						log_info("schedule %s/%s: pruned %s/%s", pool, pol[i].volume, pool, gone[k]);
						report(x->pruned, pool, gone[k], NULL);
						left--;
					} else {
						log_warn("schedule %s/%s: cannot prune %s/%s: %s", pool, pol[i].volume, pool,
						    gone[k], ce_errmsg());
					}
				}
			}
			free(de);
		}
		pthread_mutex_lock(&state_lock);
		vstate *s = state_of(pool, pol[i].vol_guid);
		s->pruned += na - left;
		s->autos = left;
		pthread_mutex_unlock(&state_lock);
		free(gone);
		free(keep);
		free(t);
		free(a);
	}
	free(names);
	free(nv);
	free(which);
	free(slots);
	free(pol);
	return 0;
}

/* Forget the states of policies no pass saw (removed, or their pool is gone). */
static void
sweep(void)
{
	pthread_mutex_lock(&state_lock);
	size_t w = 0;
	for (size_t i = 0; i < nstates; i++)
		if (states[i].seen) {
			states[i].seen = 0;
			states[w++] = states[i];
		}
	nstates = w;
	pthread_mutex_unlock(&state_lock);
}

static void
run_pass(pass *x)
{
	char **names;
	size_t n;
	reg_pool_names(&names, &n);
	for (size_t i = 0; i < n; i++) {
		reg_with_pool(names[i], pool_pass, x);
		free(names[i]);
	}
	free(names);
	sweep();
}

static void *
sched_thread(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&state_lock);
	while (!stop) {
		pthread_mutex_unlock(&state_lock);
		pthread_mutex_lock(&pass_lock);
		pass x = { .now = sched_now() };
		run_pass(&x);
		pthread_mutex_unlock(&pass_lock);
		pthread_mutex_lock(&state_lock);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += PASS_SECONDS;
		if (!stop && !kicked)
			pthread_cond_timedwait(&wake, &state_lock, &ts);
		kicked = 0;
	}
	pthread_mutex_unlock(&state_lock);
	return NULL;
}

int
sched_start(void)
{
	stop = 0;
	if (pthread_create(&tid, NULL, sched_thread, NULL) != 0)
		return err_set(-EAGAIN, "cannot start the snapshot scheduler");
	running = 1;
	return 0;
}

void
sched_stop(void)
{
	if (!running)
		return;
	pthread_mutex_lock(&state_lock);
	stop = 1;
	pthread_cond_broadcast(&wake);
	pthread_mutex_unlock(&state_lock);
	pthread_join(tid, NULL);
	running = 0;
	pthread_mutex_lock(&state_lock);
	free(states);
	states = NULL;
	nstates = capstates = 0;
	pthread_mutex_unlock(&state_lock);
}

void
sched_kick(void)
{
	pthread_mutex_lock(&state_lock);
	kicked = 1;
	pthread_cond_broadcast(&wake);
	pthread_mutex_unlock(&state_lock);
}

void
sched_test_clock(int64_t now)
{
	pthread_mutex_lock(&state_lock);
	test_clock_set = 1;
	test_now = now;
	pthread_mutex_unlock(&state_lock);
}

int
sched_clock_pass(int64_t now, json_object *res)
{
	pthread_mutex_lock(&pass_lock);
	pthread_mutex_lock(&state_lock);
	test_clock_set = 1;
	test_now = now;
	pthread_mutex_unlock(&state_lock);
	pass x = { .now = now, .taken = json_object_new_array(), .pruned = json_object_new_array(),
		.failed = json_object_new_array() };
	run_pass(&x);
	pthread_mutex_unlock(&pass_lock);
	json_object_object_add(res, "time", json_object_new_int64(now));
	json_object_object_add(res, "taken", x.taken);
	json_object_object_add(res, "pruned", x.pruned);
	json_object_object_add(res, "failed", x.failed);
	return 0;
}

int
sched_run(const char *pool, const char *vol, json_object *res)
{
	pthread_mutex_lock(&pass_lock);
	pass x = { .now = sched_now(), .only = vol, .taken = json_object_new_array(),
		.pruned = json_object_new_array(), .failed = json_object_new_array() };
	int err = reg_with_pool(pool, pool_pass, &x);
	pthread_mutex_unlock(&pass_lock);
	if (err == 0 && !x.found)
		err = err_set(-EINVAL, "volume %s/%s has no snapshot policy (or does not exist)", pool, vol);
	else if (err == 0 && x.run_err != 0)
		err = err_set(x.run_err, "%s", x.run_msg);
	if (err == 0) {
		json_object *t = json_object_array_get_idx(x.taken, 0);
		json_object_object_add(res, "snapshot", t ? json_object_get(t) : NULL);
		json_object_object_add(res, "pruned", json_object_get(x.pruned));
	}
	json_object_put(x.taken);
	json_object_put(x.pruned);
	json_object_put(x.failed);
	return err;
}

/* What the listing shows of one policy (the pool held by the caller). */
int
sched_describe(ce_pool *p, const ce_sched_info *si, json_object *o)
{
	asnap *a;
	size_t na;
	int err = autos_of(p, si->volume, &a, &na);
	if (err != 0)
		return err;
	const char *pool = ce_pool_name(p);
	int64_t now = sched_now(), every = (int64_t)si->policy.every_min * 60;
	int64_t newest = na > 0 ? a[na - 1].t : -1;
	int64_t slot = now - now % every, next = slot > newest ? slot : slot + every;
	pthread_mutex_lock(&state_lock);
	vstate st = { .failed_slot = -1 };
	for (size_t i = 0; i < nstates; i++)
		if (states[i].guid == si->vol_guid && strcmp(states[i].pool, pool) == 0)
			st = states[i];
	pthread_mutex_unlock(&state_lock);
	if (st.failed_slot == slot && next == slot)
		next = slot + every; /* it failed in this slot: the next one */
	char full[400];
	snprintf(full, sizeof(full), "%s/%s", pool, si->volume);
	json_object_object_add(o, "name", json_object_new_string(full));
	json_object_object_add(o, "every_min", json_object_new_int64(si->policy.every_min));
	json_object_object_add(o, "keep", json_object_new_int64(si->policy.keep));
	json_object *r = json_object_new_object();
	json_object_object_add(r, "hourly", json_object_new_int64(si->policy.hourly));
	json_object_object_add(r, "daily", json_object_new_int64(si->policy.daily));
	json_object_object_add(r, "weekly", json_object_new_int64(si->policy.weekly));
	json_object_object_add(r, "monthly", json_object_new_int64(si->policy.monthly));
	json_object_object_add(o, "retain", r);
	json_object_object_add(o, "set_time", json_object_new_int64((int64_t)si->mtime));
	json_object_object_add(o, "auto_snapshots", json_object_new_int64((int64_t)na));
	char last[600];
	snprintf(last, sizeof(last), "%s/%s", pool, na > 0 ? a[na - 1].name : "");
	json_object_object_add(o, "last_snapshot", na > 0 ? json_object_new_string(last) : NULL);
	json_object_object_add(o, "last_run", na > 0 ? json_object_new_int64(newest) : NULL);
	json_object_object_add(o, "next_run", json_object_new_int64(next));
	json_object_object_add(o, "runs", json_object_new_int64((int64_t)st.runs));
	json_object_object_add(o, "failures", json_object_new_int64((int64_t)st.failures));
	json_object_object_add(o, "pruned", json_object_new_int64((int64_t)st.pruned));
	json_object_object_add(o, "last_error", st.last_error[0] ? json_object_new_string(st.last_error) : NULL);
	free(a);
	return 0;
}

/* ---- metrics (metrics.c) ---- */

static void
esc_put(char **buf, size_t *len, size_t *cap, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void
esc_put(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n < *cap - *len) {
			*len += (size_t)n;
			return;
		}
		*cap = *cap * 2 + (size_t)n + 1;
		*buf = xrealloc(*buf, *cap);
	}
}

static const char *
lesc(const char *s, char *out, size_t cap)
{
	size_t k = 0;
	for (; *s != '\0' && k + 3 < cap; s++) {
		if (*s == '\\' || *s == '"' || *s == '\n') {
			out[k++] = '\\';
			out[k++] = *s == '\n' ? 'n' : *s;
		} else {
			out[k++] = *s;
		}
	}
	out[k] = '\0';
	return out;
}

size_t
sched_metrics(char **buf, size_t *len, size_t *cap, size_t max_series)
{
	size_t omitted = 0;
	static const struct {
		const char *name, *type, *help;
		int which;
	} fam[] = {
		{ "cask_schedule_snapshots_total", "counter", "Automatic snapshots a policy took since caskd started.", 0 },
		{ "cask_schedule_failures_total", "counter",
		    "Automatic snapshots that failed since caskd started (each retried at the next slot).", 1 },
		{ "cask_schedule_pruned_total", "counter", "Automatic snapshots a policy pruned since caskd started.", 2 },
		{ "cask_schedule_auto_snapshots", "gauge", "Automatic snapshots the volume has (at the last pass).", 3 },
	};
	char ep[200], ev[600];
	pthread_mutex_lock(&state_lock);
	for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
		esc_put(buf, len, cap, "# HELP %s %s\n# TYPE %s %s\n", fam[f].name, fam[f].help, fam[f].name, fam[f].type);
		for (size_t i = 0; i < nstates && i < max_series; i++) {
			const vstate *s = &states[i];
			if (s->volume[0] == '\0')
				continue;
			uint64_t v = fam[f].which == 0 ? s->runs : fam[f].which == 1 ? s->failures :
			    fam[f].which == 2 ? s->pruned : s->autos;
			esc_put(buf, len, cap, "%s{pool=\"%s\",volume=\"%s\"} %" PRIu64 "\n", fam[f].name,
			    lesc(s->pool, ep, sizeof(ep)), lesc(s->volume, ev, sizeof(ev)), v);
		}
	}
	for (size_t i = max_series; i < nstates; i++)
		omitted += states[i].volume[0] != '\0';
	pthread_mutex_unlock(&state_lock);
	return omitted;
}
