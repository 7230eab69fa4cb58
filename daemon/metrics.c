/*
 * metrics.c -- the Prometheus metrics endpoint (caskd --metrics ADDR:PORT;
 * every metric is listed in docs/metrics.md).
 *
 * GET /metrics answers in the Prometheus text exposition format (0.0.4):
 * per pool (space, txg, sync durations, dirty bytes, errors, suspension,
 * intent log), per volume (the statistics layer's counters, vio_stats.c),
 * per frontend (connections), jobs, and the daemon itself. The HTTP side is
 * libmicrohttpd (Debian libmicrohttpd-dev): small, in Debian for years,
 * HTTP/1.1 parsing done right, and its own thread.
 *
 * Invariants:
 *   1. The metrics server never blocks IO: it runs in libmicrohttpd's one
 *      internal thread, reads the statistics layer's atomics (no lock of
 *      the IO path) and takes a pool's lock only as long as
 *      ce_pool_stat_get does, like `cask pool status`.
 *   2. Memory and cardinality are bounded: at most METRICS_MAX_POOLS pools
 *      and max_volumes volumes per scrape (caskd --metrics-max-volumes,
 *      default METRICS_VOLUMES_DEFAULT; the rest are counted in
 *      cask_metrics_omitted), at most METRICS_MAX_CONNS connections at
 *      once, each holding at most one response; histograms have
 *      HIST_NB buckets.
 *   3. A volume appears while it exists and once it has been opened since
 *      caskd started (its counters are the statistics layer's, which live
 *      as long as caskd).
 *   4. Every line of a metric family is written together, HELP and TYPE
 *      first (the format requires one group per family).
 */
#include "metrics.h"
#include "conn.h"
#include "job.h"
#include "log.h"
#include "registry.h"
#include "sched.h"
#include "util.h"
#include "vio.h"
#include "vio_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define METRICS_MAX_POOLS 256
#define METRICS_MAX_CONNS 8
#define METRICS_MAX_JOBS 128

static struct MHD_Daemon *mhd;
static char version[32];
static uint64_t start_time;
static size_t max_volumes = METRICS_VOLUMES_DEFAULT; /* set before the server starts; read by scrapes */
static _Atomic uint64_t scrapes;

/* ---- the response body ---- */

typedef struct mbuf {
	char *p;
	size_t len, cap;
} mbuf;

static void __attribute__((format(printf, 2, 3)))
put(mbuf *b, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		b->cap = b->cap * 2 + (size_t)n + 1;
		b->p = xrealloc(b->p, b->cap);
	}
}

/* A label value: backslash, double quote and newline escaped (the format's rule). */
static const char *
esc(const char *s, char *out, size_t cap)
{
	size_t k = 0;
	for (; *s != '\0' && k + 3 < cap; s++) {
		if (*s == '\\' || *s == '"') {
			out[k++] = '\\';
			out[k++] = *s;
		} else if (*s == '\n') {
			out[k++] = '\\';
			out[k++] = 'n';
		} else {
			out[k++] = *s;
		}
	}
	out[k] = '\0';
	return out;
}

static void
family(mbuf *b, const char *name, const char *type, const char *help)
{
	put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/*
 * Histogram buckets: the layers count in power-of-two microsecond buckets
 * (bucket k: [2^k, 2^(k+1)) us); the exposition merges neighbours two by
 * two, so bound j is 2^(2j+4) us (a factor of 4 apart): 16 us ... 16.8 s,
 * then +Inf. Every bound is a bucket edge, so the counts are exact.
 */
#define HIST_NB 12
static void
hist(mbuf *b, const char *name, const char *labels, const uint64_t *h, int nh, uint64_t count, uint64_t sum_ns)
{
	uint64_t cum = 0;
	int k = 0;
	for (int j = 0; j < HIST_NB - 1; j++) {
		int edge = 2 * j + 4; /* bucket k counts values < 2^(k+1) us */
		while (k < nh && k + 1 <= edge)
			cum += h[k++];
		put(b, "%s_bucket{%s,le=\"%.9g\"} %" PRIu64 "\n", name, labels, (double)((uint64_t)1 << edge) / 1e6, cum);
	}
	put(b, "%s_bucket{%s,le=\"+Inf\"} %" PRIu64 "\n", name, labels, count);
	put(b, "%s_sum{%s} %.9f\n", name, labels, (double)sum_ns / 1e9);
	put(b, "%s_count{%s} %" PRIu64 "\n", name, labels, count);
}

/* ---- gathering ---- */

typedef struct vrow {
	char pool[64];
	char vol[4097];
	vio_opstats_snap st[VIO_NOPS];
} vrow;

typedef struct gather {
	char **exports;
	size_t nexports;
	vrow *rows;
	size_t nrows;
	uint64_t omitted;
} gather;

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
take_vol(const char *name, const vio_opstats_snap st[VIO_NOPS], void *arg)
{
	gather *g = arg;
	const char *key = name;
	if (bsearch(&key, g->exports, g->nexports, sizeof(char *), cmp_str) == NULL)
		return 0; /* destroyed (or never existed): not shown (invariant 3) */
	if (g->nrows == max_volumes) {
		g->omitted++;
		return 0;
	}
	const char *slash = strchr(name, '/');
	if (slash == NULL || (size_t)(slash - name) >= sizeof(g->rows[0].pool))
		return 0;
	vrow *r = &g->rows[g->nrows++];
	snprintf(r->pool, sizeof(r->pool), "%.*s", (int)(slash - name), name);
	snprintf(r->vol, sizeof(r->vol), "%s", slash + 1);
	memcpy(r->st, st, sizeof(r->st));
	return 0;
}

static int
cmp_row(const void *a, const void *b)
{
	const vrow *x = a, *y = b;
	int c = strcmp(x->pool, y->pool);
	return c != 0 ? c : strcmp(x->vol, y->vol);
}

typedef struct pstat {
	ce_pool_stat *st;
	ce_aread_stat *as;
} pstat;

static int
get_stat(ce_pool *p, void *arg)
{
	pstat *ps = arg;
	int err = ce_pool_stat_get(p, ps->st);
	return err != 0 ? err : ce_pool_aread_stat(p, ps->as);
}

/* The asynchronous read path of each pool (docs/design-vio.md §8). */
static void
aread_metrics(mbuf *b, const ce_pool_stat *ps, const ce_aread_stat *as, size_t n)
{
	char e[200];
	static const struct {
		const char *name, *help;
		size_t off;
	} g[] = {
#define F(n, h, f) { n, h, offsetof(ce_aread_stat, f) }
		F("cask_pool_async_reads_total", "Reads that sent device reads through the pool's io_uring ring.", requests),
		F("cask_pool_async_reads_inline_total", "Asynchronous reads that needed no device read (cached, dirty, holes).", inline_done),
		F("cask_pool_async_read_fallbacks_total", "Reads that could not start asynchronously and took the synchronous path on a worker.", fallbacks),
		F("cask_pool_async_device_reads_total", "Device reads sent to the pool's io_uring ring.", device_reads),
		F("cask_pool_readahead_windows_total", "Read-ahead windows sent for sequential readers (caskd --readahead).", readahead_batches),
		F("cask_pool_readahead_bytes_total", "Bytes of the blocks read ahead.", readahead_bytes),
		F("cask_pool_readahead_hit_blocks_total", "Blocks read ahead that a reader then found in the cache.", readahead_hits),
		F("cask_pool_readahead_wasted_blocks_total", "Blocks read ahead that left the cache before any reader found them.", readahead_wasted),
		F("cask_pool_readahead_failed_windows_total", "Read-ahead windows with a block that failed its read or checksum (not cached).", readahead_failed),
		F("cask_pool_async_tree_reads_total", "Indirect blocks an asynchronous read's lookup missed in the cache and read through the ring.", tree_reads),
		F("cask_pool_async_fill_blocks_total", "Blocks prefetch requests (NBD_CMD_CACHE) read into the cache through the ring.", fill_blocks),
#undef F
	};
	family(b, "cask_pool_async_reads_available", "gauge", "1 when the pool's reads go through io_uring, 0 when they use the worker threads (the caskd log says why).");
	for (size_t i = 0; i < n; i++)
		put(b, "cask_pool_async_reads_available{pool=\"%s\"} %d\n", esc(ps[i].name, e, sizeof(e)), as[i].available);
	for (size_t f = 0; f < ARRAY_SIZE(g); f++) {
		family(b, g[f].name, "counter", g[f].help);
		for (size_t i = 0; i < n; i++)
			put(b, "%s{pool=\"%s\"} %" PRIu64 "\n", g[f].name, esc(ps[i].name, e, sizeof(e)),
			    *(const uint64_t *)((const char *)&as[i] + g[f].off));
	}
	family(b, "cask_pool_async_ring_max", "gauge", "The most device reads in the pool's io_uring ring at once since import.");
	for (size_t i = 0; i < n; i++)
		put(b, "cask_pool_async_ring_max{pool=\"%s\"} %" PRIu64 "\n", esc(ps[i].name, e, sizeof(e)), as[i].ring_max);
}

/* ---- the families ---- */

static void
pool_metrics(mbuf *b, ce_pool_stat *ps, size_t n)
{
	char e[200], l[240];
	static const struct {
		const char *name, *type, *help;
		size_t off;
	} g[] = {
#define F(n, t, h, f) { n, t, h, offsetof(ce_pool_stat, f) }
		F("cask_pool_size_bytes", "gauge", "Bytes of the pool's data area.", size),
		F("cask_pool_allocated_bytes", "gauge", "Bytes allocated in the newest committed txg.", allocated),
		F("cask_pool_free_bytes", "gauge", "Bytes available to new writes.", free),
		F("cask_pool_dirty_bytes", "gauge", "Bytes of written data waiting for a txg sync.", dirty_bytes),
		F("cask_pool_cache_bytes", "gauge", "Bytes in the pool's block cache.", cache_bytes),
		F("cask_pool_cache_max_bytes", "gauge", "The block cache's budget in bytes.", cache_max),
		F("cask_pool_txg", "gauge", "The newest committed transaction group.", synced_txg),
		F("cask_pool_checksum_errors_total", "counter", "Checksum mismatches seen since import or the last clear.", cksum_errors),
		F("cask_pool_io_errors_total", "counter", "Device IO errors seen since import or the last clear.", io_errors),
		F("cask_pool_log_size_bytes", "gauge", "Bytes of the intent log region (0: no log).", log_size),
		F("cask_pool_log_commits_total", "counter", "Intent log group commits (FLUSH/FUA) since import.", log_commits),
		F("cask_pool_log_blocks_total", "counter", "Intent log blocks written since import.", log_blocks),
		F("cask_pool_log_bytes_total", "counter", "Bytes of intent log blocks written since import.", log_bytes),
		F("cask_pool_log_fallbacks_total", "counter", "Log commits served by a txg commit instead, since import.", log_fallbacks),
		F("cask_pool_txg_last_sync_bytes", "gauge", "Bytes the newest committed txg's sync wrote (data and metadata).", last_sync_bytes),
#undef F
	};
	for (size_t f = 0; f < ARRAY_SIZE(g); f++) {
		family(b, g[f].name, g[f].type, g[f].help);
		for (size_t i = 0; i < n; i++)
			put(b, "%s{pool=\"%s\"} %" PRIu64 "\n", g[f].name, esc(ps[i].name, e, sizeof(e)),
			    *(uint64_t *)((char *)&ps[i] + g[f].off));
	}
	family(b, "cask_pool_volumes", "gauge", "Volumes in the pool (snapshots not counted).");
	for (size_t i = 0; i < n; i++)
		put(b, "cask_pool_volumes{pool=\"%s\"} %u\n", esc(ps[i].name, e, sizeof(e)), ps[i].nvols);
	family(b, "cask_pool_vdevs", "gauge", "Devices (vdev files) of the pool.");
	for (size_t i = 0; i < n; i++)
		put(b, "cask_pool_vdevs{pool=\"%s\"} %u\n", esc(ps[i].name, e, sizeof(e)), ps[i].nvdevs);
	family(b, "cask_pool_suspended", "gauge",
	    "1 when the pool is suspended after an IO error (cask pool clear resumes it), else 0.");
	for (size_t i = 0; i < n; i++)
		put(b, "cask_pool_suspended{pool=\"%s\"} %d\n", esc(ps[i].name, e, sizeof(e)), ps[i].suspended != 0);
	family(b, "cask_pool_txg_sync_duration_seconds", "histogram",
	    "Time a transaction group's sync took, for every txg committed since import.");
	for (size_t i = 0; i < n; i++) {
		snprintf(l, sizeof(l), "pool=\"%s\"", esc(ps[i].name, e, sizeof(e)));
		hist(b, "cask_pool_txg_sync_duration_seconds", l, ps[i].sync_hist, CE_SYNC_HIST_BUCKETS, ps[i].syncs,
		    ps[i].sync_ns);
	}
	family(b, "cask_pool_txg_last_sync_seconds", "gauge", "How long the newest committed txg's sync took.");
	for (size_t i = 0; i < n; i++)
		put(b, "cask_pool_txg_last_sync_seconds{pool=\"%s\"} %.6f\n", esc(ps[i].name, e, sizeof(e)),
		    ps[i].last_sync_ns / 1e9);
	family(b, "cask_pool_sync_threads", "gauge", "Worker threads of the pool's sync pipeline (caskd --sync-threads).");
	for (size_t i = 0; i < n; i++)
		put(b, "cask_pool_sync_threads{pool=\"%s\"} %u\n", esc(ps[i].name, e, sizeof(e)), ps[i].sync_threads);
}

static const char *const op_label[VIO_NOPS] = { "read", "write", "flush", "trim", "zero", "map", "cache" };

static void
volume_metrics(mbuf *b, const gather *g)
{
	char ep[200], ev[8400];
	char *lab = xmalloc(sizeof(ep) + sizeof(ev) + 64);
	/* bytes, one family per kind (docs/metrics.md): what cask_volume_read_bytes_total means is plain */
	static const struct {
		int op;
		const char *name, *help;
	} bytes[] = {
		{ VIO_READ, "cask_volume_read_bytes_total", "Bytes read by clients (successful reads)." },
		{ VIO_WRITE, "cask_volume_write_bytes_total", "Bytes written by clients (successful writes)." },
		{ VIO_TRIM, "cask_volume_trim_bytes_total", "Bytes trimmed (discarded) by clients." },
		{ VIO_ZERO, "cask_volume_zero_bytes_total", "Bytes zeroed by clients (write-zeroes)." },
		{ VIO_CACHE, "cask_volume_cache_bytes_total", "Bytes clients asked to prefetch (NBD CACHE)." },
	};
	for (size_t f = 0; f < ARRAY_SIZE(bytes); f++) {
		family(b, bytes[f].name, "counter", bytes[f].help);
		for (size_t i = 0; i < g->nrows; i++)
			put(b, "%s{pool=\"%s\",volume=\"%s\"} %" PRIu64 "\n", bytes[f].name,
			    esc(g->rows[i].pool, ep, sizeof(ep)), esc(g->rows[i].vol, ev, sizeof(ev)),
			    g->rows[i].st[bytes[f].op].bytes);
	}
	static const struct {
		const char *name, *type, *help;
		int which;
	} per_op[] = {
		{ "cask_volume_requests_total", "counter", "Requests completed, by kind (op), whatever their outcome.", 0 },
		{ "cask_volume_request_errors_total", "counter", "Requests that failed, by kind (op).", 1 },
		{ "cask_volume_requests_in_flight", "gauge", "Requests submitted and not yet completed, by kind (op).", 2 },
	};
	for (size_t f = 0; f < ARRAY_SIZE(per_op); f++) {
		family(b, per_op[f].name, per_op[f].type, per_op[f].help);
		for (size_t i = 0; i < g->nrows; i++)
			for (int op = 0; op < VIO_NOPS; op++) {
				const vio_opstats_snap *s = &g->rows[i].st[op];
				uint64_t v = per_op[f].which == 0 ? s->count : per_op[f].which == 1 ? s->errors : s->in_flight;
				put(b, "%s{pool=\"%s\",volume=\"%s\",op=\"%s\"} %" PRIu64 "\n", per_op[f].name,
				    esc(g->rows[i].pool, ep, sizeof(ep)), esc(g->rows[i].vol, ev, sizeof(ev)), op_label[op], v);
			}
	}
	family(b, "cask_volume_request_duration_seconds", "histogram",
	    "Time from submission to completion of a request, by kind (op): read, write, flush, trim, zero.");
	for (size_t i = 0; i < g->nrows; i++)
		for (int op = 0; op <= VIO_ZERO; op++) {
			const vio_opstats_snap *s = &g->rows[i].st[op];
			snprintf(lab, sizeof(ep) + sizeof(ev) + 64, "pool=\"%s\",volume=\"%s\",op=\"%s\"",
			    esc(g->rows[i].pool, ep, sizeof(ep)), esc(g->rows[i].vol, ev, sizeof(ev)), op_label[op]);
			hist(b, "cask_volume_request_duration_seconds", lab, s->hist, VIO_HIST_BUCKETS, s->count, s->lat_ns);
		}
	free(lab);
}

static void
frontend_metrics(mbuf *b)
{
	conn_fstats fs[8];
	size_t n = conn_frontend_stats(fs, ARRAY_SIZE(fs));
	family(b, "cask_frontend_connections", "gauge",
	    "Client connections open now, by frontend (served, or refused and being told so).");
	for (size_t i = 0; i < n; i++)
		put(b, "cask_frontend_connections{frontend=\"%s\"} %d\n", fs[i].name, fs[i].current);
	family(b, "cask_frontend_connections_accepted_total", "counter", "Client connections served since start.");
	for (size_t i = 0; i < n; i++)
		put(b, "cask_frontend_connections_accepted_total{frontend=\"%s\"} %" PRIu64 "\n", fs[i].name, fs[i].accepted);
	family(b, "cask_frontend_connections_refused_total", "counter",
	    "Client connections refused since start (over --max-connections).");
	for (size_t i = 0; i < n; i++)
		put(b, "cask_frontend_connections_refused_total{frontend=\"%s\"} %" PRIu64 "\n", fs[i].name, fs[i].refused);
	family(b, "cask_frontend_listeners", "gauge", "Addresses the frontend listens on.");
	for (size_t i = 0; i < n; i++)
		put(b, "cask_frontend_listeners{frontend=\"%s\"} %d\n", fs[i].name, fs[i].listeners);
	family(b, "cask_frontend_connection_limit", "gauge", "--max-connections: connections served at once.");
	put(b, "cask_frontend_connection_limit %d\n", conn_limit());
}

static const char *
jstr(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : "";
}

static uint64_t
jnum(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) ? (uint64_t)json_object_get_int64(v) : 0;
}

static void
job_metrics(mbuf *b)
{
	static const char *const states[] = { "running", "done", "failed", "cancelled" };
	/* every kind job_start is given: xfer.c's send and receive, repl's rebuild and verify */
	static const char *const kinds[] = { "send", "receive", "rebuild", "verify" };
	enum { NKINDS = sizeof(kinds) / sizeof(kinds[0]) };
	uint64_t count[NKINDS][4] = { { 0 } };
	json_object *a = job_list(); /* at most the running jobs and the newest 64 ended ones */
	size_t n = json_object_array_length(a);
	for (size_t i = 0; i < n; i++) {
		json_object *j = json_object_array_get_idx(a, i);
		for (int k = 0; k < NKINDS; k++)
			for (int s = 0; s < 4; s++)
				if (strcmp(jstr(j, "kind"), kinds[k]) == 0 && strcmp(jstr(j, "state"), states[s]) == 0)
					count[k][s]++;
	}
	family(b, "cask_jobs", "gauge",
	    "Jobs by kind and state: running ones, and the ended ones caskd still keeps (the newest 64).");
	for (int k = 0; k < NKINDS; k++)
		for (int s = 0; s < 4; s++)
			put(b, "cask_jobs{kind=\"%s\",state=\"%s\"} %" PRIu64 "\n", kinds[k], states[s], count[k][s]);
	char e[200], ek[64];
	for (int which = 0; which < 2; which++) {
		const char *name = which == 0 ? "cask_job_done_bytes" : "cask_job_total_bytes";
		family(b, name, "gauge", which == 0 ? "Bytes a running job has moved so far."
		    : "Bytes a running job will move in all (0: not known yet).");
		size_t shown = 0;
		for (size_t i = 0; i < n && shown < METRICS_MAX_JOBS; i++) {
			json_object *j = json_object_array_get_idx(a, i);
			if (strcmp(jstr(j, "state"), "running") != 0)
				continue;
			shown++;
			put(b, "%s{id=\"%" PRIu64 "\",kind=\"%s\",pool=\"%s\"} %" PRIu64 "\n", name, jnum(j, "id"),
			    esc(jstr(j, "kind"), ek, sizeof(ek)), esc(jstr(j, "pool"), e, sizeof(e)),
			    jnum(j, which == 0 ? "done" : "total"));
		}
	}
	json_object_put(a);
}

static void
daemon_metrics(mbuf *b, uint64_t omitted)
{
	family(b, "cask_build_info", "gauge", "Always 1; the caskd version is in the label.");
	put(b, "cask_build_info{version=\"%s\"} 1\n", version);
	family(b, "cask_start_time_seconds", "gauge", "When caskd started, in seconds since the epoch.");
	put(b, "cask_start_time_seconds %" PRIu64 "\n", start_time);
	family(b, "cask_io_threads", "gauge", "Threads that run blocking volume IO (--io-threads).");
	put(b, "cask_io_threads %d\n", vio_worker_count());
	vio_lock_stats ls;
	vio_lock_stats_get(&ls);
	family(b, "cask_range_locks_granted_total", "counter",
	    "Volume range locks granted (COMPARE AND WRITE, OR WRITE; docs/design-vio.md 9).");
	put(b, "cask_range_locks_granted_total %" PRIu64 "\n", ls.granted);
	family(b, "cask_range_lock_waits_total", "counter", "Range locks that waited in the queue before their grant.");
	put(b, "cask_range_lock_waits_total %" PRIu64 "\n", ls.waited);
	family(b, "cask_range_lock_wait_seconds_total", "counter", "Time those locks spent in the queue.");
	put(b, "cask_range_lock_wait_seconds_total %.9f\n", (double)ls.wait_ns / 1e9);
	family(b, "cask_range_lock_blocked_requests_total", "counter",
	    "Requests that queued behind a range lock (the fast path is not counted).");
	put(b, "cask_range_lock_blocked_requests_total %" PRIu64 "\n", ls.req_waited);
	family(b, "cask_range_lock_withdrawn_total", "counter",
	    "Locks and requests taken out of the range lock's queue by the iSCSI stall bound.");
	put(b, "cask_range_lock_withdrawn_total %" PRIu64 "\n", ls.withdrawn);
	family(b, "cask_range_locks_held", "gauge", "Range locks held now.");
	put(b, "cask_range_locks_held %" PRIu64 "\n", ls.held);
	family(b, "cask_range_lock_queued", "gauge", "Range locks and requests waiting in the queue now.");
	put(b, "cask_range_lock_queued %" PRIu64 "\n", ls.queued);
	family(b, "cask_io_withdrawn_total", "counter",
	    "Requests taken back from the volume IO stack before they began (iSCSI stall bound; docs/design-vio.md 10).");
	put(b, "cask_io_withdrawn_total %" PRIu64 "\n", vio_withdrawn_total());
	family(b, "cask_metrics_scrapes_total", "counter", "Requests for /metrics answered, this one included.");
	put(b, "cask_metrics_scrapes_total %" PRIu64 "\n", (uint64_t)atomic_fetch_add(&scrapes, 1) + 1);
	family(b, "cask_metrics_omitted", "gauge",
	    "Pools and volumes left out of this scrape by the cardinality bound (docs/metrics.md).");
	put(b, "cask_metrics_omitted %" PRIu64 "\n", omitted);
}

/* The whole body; caller frees. */
static char *
render(size_t *len)
{
	mbuf b = { xmalloc(65536), 0, 65536 };
	uint64_t omitted = 0;

	char **names;
	size_t nnames;
	reg_pool_names(&names, &nnames);
	ce_pool_stat *ps = xcalloc(MIN(nnames, (size_t)METRICS_MAX_POOLS) + 1, sizeof(*ps));
	ce_aread_stat *as = xcalloc(MIN(nnames, (size_t)METRICS_MAX_POOLS) + 1, sizeof(*as));
	size_t np = 0;
	for (size_t i = 0; i < nnames; i++) {
		pstat both = { &ps[np], &as[np] };
		if (np == METRICS_MAX_POOLS)
			omitted++;
		else if (reg_with_pool(names[i], get_stat, &both) == 0)
			np++;
		free(names[i]);
	}
	free(names);
	pool_metrics(&b, ps, np);
	aread_metrics(&b, ps, as, np);
	free(ps);
	free(as);

	gather g = { 0 };
	reg_exports(&g.exports, &g.nexports);
	g.rows = xcalloc(MIN(g.nexports, (size_t)max_volumes) + 1, sizeof(vrow));
	vio_stats_each(take_vol, &g);
	qsort(g.rows, g.nrows, sizeof(vrow), cmp_row);
	volume_metrics(&b, &g);
	omitted += g.omitted;
	for (size_t i = 0; i < g.nexports; i++)
		free(g.exports[i]);
	free(g.exports);
	free(g.rows);

	frontend_metrics(&b);
	job_metrics(&b);
	omitted += sched_metrics(&b.p, &b.len, &b.cap, max_volumes);
	daemon_metrics(&b, omitted);
	*len = b.len;
	return b.p;
}

/* ---- HTTP ---- */

static enum MHD_Result
plain(struct MHD_Connection *c, unsigned status, const char *text)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, "Allow", "GET, HEAD");
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
handle(void *cls, struct MHD_Connection *c, const char *url, const char *method, const char *ver,
    const char *upload, size_t *upload_size, void **state)
{
	(void)cls, (void)ver, (void)upload;
	if (*state == NULL) { /* the headers are in; a body (there should be none) may follow */
		*state = (void *)1;
		return MHD_YES;
	}
	if (*upload_size != 0) {
		*upload_size = 0; /* ignored */
		return MHD_YES;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return plain(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET /metrics\n");
	if (strcmp(url, "/") == 0)
		return plain(c, MHD_HTTP_OK, "caskd metrics: GET /metrics (Prometheus text format)\n");
	if (strcmp(url, "/metrics") != 0)
		return plain(c, MHD_HTTP_NOT_FOUND, "not found: the metrics are at /metrics\n");
	size_t len;
	char *body = render(&len);
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char buf[512];
	vsnprintf(buf, sizeof(buf), fmt, ap);
	size_t n = strlen(buf);
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	log_warn("metrics: %s", buf);
}

/* "HOST:PORT" or "[V6]:PORT" into a bound, listening socket. */
static int
bind_spec(const char *spec, int *fd_out, char *shown, size_t shown_len)
{
	char host[256];
	const char *port;
	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');
		if (close == NULL || close[1] != ':' || (size_t)(close - spec - 1) >= sizeof(host))
			return err_set(-EINVAL, "--metrics: '%s' is not [ADDR]:PORT", spec);
		snprintf(host, sizeof(host), "%.*s", (int)(close - spec - 1), spec + 1);
		port = close + 2;
	} else {
		const char *colon = strrchr(spec, ':');
		if (colon == NULL || colon == spec || (size_t)(colon - spec) >= sizeof(host))
			return err_set(-EINVAL, "--metrics: '%s' is not ADDR:PORT", spec);
		snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
		port = colon + 1;
	}
	char *end;
	long pn = strtol(port, &end, 10);
	if (*port == '\0' || *end != '\0' || pn < 0 || pn > 65535)
		return err_set(-EINVAL, "--metrics: bad port in '%s'", spec);
	struct addrinfo hints = { 0 }, *ai;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
	int rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0)
		return err_set(-EINVAL, "--metrics: cannot resolve '%s': %s", host, gai_strerror(rc));
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 16) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return err_set(-e, "--metrics: cannot listen on %s: %s", spec, strerror(e));
	}
	freeaddrinfo(ai);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char h[64] = "?", s[16] = "?";
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		getnameinfo((struct sockaddr *)&ss, sl, h, sizeof(h), s, sizeof(s), NI_NUMERICHOST | NI_NUMERICSERV);
	snprintf(shown, shown_len, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", h, s);
	*fd_out = fd;
	return 0;
}

int
metrics_start(const char *spec, const char *ver, unsigned max_vols)
{
	VERIFY(max_vols >= METRICS_VOLUMES_MIN && max_vols <= METRICS_VOLUMES_MAX);
	max_volumes = max_vols;
	snprintf(version, sizeof(version), "%s", ver);
	start_time = (uint64_t)time(NULL);
	int fd = -1;
	char shown[96];
	int err = bind_spec(spec, &fd, shown, sizeof(shown));
	if (err != 0)
		return err;
	mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG, 0, NULL, NULL,
	    handle, NULL, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET, fd,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICS_MAX_CONNS, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
	    MHD_OPTION_END);
	if (mhd == NULL) {
		close(fd);
		return err_set(-EIO, "--metrics: cannot start the HTTP server on %s", shown);
	}
	log_info("metrics: serving http://%s/metrics", shown);
	return 0;
}

void
metrics_stop(void)
{
	if (mhd != NULL)
		MHD_stop_daemon(mhd); /* closes the listening socket too */
	mhd = NULL;
}
