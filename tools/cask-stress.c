/*
 * cask-stress -- random concurrent volume operations against an in-memory
 * model, with SIGKILL at random moments (ztest for cask).
 *
 *   cask-stress [--seconds N] [--seed S] [--threads T] [--vdevs V] DIR
 *
 * The parent keeps the model; each round it forks a worker that imports
 * the pool from DIR and runs T threads. Thread t owns volumes "t<t>v0" and
 * "t<t>v1" and performs operations drawn deterministically from
 * (seed, round, t, op index): create, destroy, write (any offset and
 * length, some compressible), read-and-verify, trim, write-zeroes,
 * resize, set compression/checksum, sync. The worker keeps a copy of the
 * model and verifies every read it makes. It publishes, in shared
 * memory, how many ops each thread has started and how many were synced.
 *
 * Most rounds end with SIGKILL at a random moment; every fifth round the
 * worker stops by itself and exports the pool. The parent then imports
 * the pool and, for each thread, finds the prefix P of its operations
 * (synced <= P <= started) whose model state equals what the pool holds:
 * one must exist, because a txg commits whole. It runs `cask-debug check`
 * (next to this binary) on the pool, adopts the matched state as the
 * model, and starts the next round.
 *
 * Exit status: 0 when every round verified; 1 on any violation, with the
 * seed printed so the run can be repeated.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "cask/engine.h"

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAXT 16
#define NSLOT 2
#define MAXVOL (2u << 20)
#define CHUNK 4096u

typedef struct slot {
	int exists;
	uint64_t size;
	uint32_t bs;
	uint8_t *data; /* MAXVOL bytes */
} slot;

typedef struct model {
	slot s[MAXT][NSLOT];
} model;

typedef struct shared {
	volatile uint64_t started[MAXT];
	volatile uint64_t synced[MAXT];
	volatile int failed;
} shared;

enum { OP_CREATE, OP_DESTROY, OP_WRITE, OP_READ, OP_TRIM, OP_ZERO, OP_RESIZE, OP_SET, OP_SYNC };
static const char *op_names[] = { "create", "destroy", "write", "read", "trim", "zero", "resize", "set", "sync" };

typedef struct op {
	int kind;
	int slot;
	uint64_t off, len, size;
	uint32_t bs;
	int prop;      /* OP_SET: 0 compression, 1 checksum; OP_CREATE: compression */
	int value;
	uint64_t dseed;
} op;

static uint64_t g_seed;
static unsigned g_threads = 4;
static const char *g_dir;
static char g_pool_path[4][PATH_MAX];
static unsigned g_nvdevs = 1;
static char g_debug[PATH_MAX];

static uint64_t
mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static uint64_t
rnd(uint64_t *s)
{
	*s += 0x9E3779B97F4A7C15ull;
	return mix(*s);
}

/* Operation number i of thread t in round r, given the model state it applies to. */
static op
gen_op(unsigned r, unsigned t, uint64_t i, const model *m)
{
	uint64_t s = mix(g_seed ^ mix(((uint64_t)r << 40) ^ ((uint64_t)t << 32) ^ i));
	op o;
	memset(&o, 0, sizeof(o));
	o.slot = (int)(rnd(&s) % NSLOT);
	const slot *sl = &m->s[t][o.slot];
	o.dseed = rnd(&s);
	if (!sl->exists) {
		static const uint32_t bss[] = { 4096, 16384, 65536 };
		o.kind = OP_CREATE;
		o.bs = bss[rnd(&s) % 3];
		o.size = (1 + rnd(&s) % (MAXVOL / o.bs)) * o.bs;
		o.value = (int)(rnd(&s) % 3);
		return o;
	}
	unsigned w = (unsigned)(rnd(&s) % 100);
	if (w < 40)
		o.kind = OP_WRITE;
	else if (w < 55)
		o.kind = OP_READ;
	else if (w < 65)
		o.kind = OP_TRIM;
	else if (w < 70)
		o.kind = OP_ZERO;
	else if (w < 75)
		o.kind = OP_RESIZE;
	else if (w < 79)
		o.kind = OP_SET;
	else if (w < 85)
		o.kind = OP_SYNC;
	else if (w < 87)
		o.kind = OP_DESTROY;
	else
		o.kind = OP_WRITE;
	switch (o.kind) {
	case OP_WRITE:
	case OP_READ:
	case OP_TRIM:
	case OP_ZERO: {
		uint64_t maxlen = o.kind == OP_WRITE ? 96 * 1024 : sl->size;
		o.off = rnd(&s) % sl->size;
		if (rnd(&s) % 2)
			o.off &= ~4095ull;
		o.len = 1 + rnd(&s) % MIN(maxlen, sl->size - o.off);
		break;
	}
	case OP_RESIZE:
		o.size = (1 + rnd(&s) % (MAXVOL / sl->bs)) * sl->bs;
		break;
	case OP_SET:
		o.prop = (int)(rnd(&s) % 2);
		o.value = o.prop == 0 ? (int)(rnd(&s) % 3) : 1 + (int)(rnd(&s) % 2);
		break;
	default:
		break;
	}
	return o;
}

/* Write payload: part random, part runs (compressible). */
static void
payload(uint8_t *b, uint64_t len, uint64_t dseed)
{
	uint64_t s = dseed;
	for (uint64_t i = 0; i < len;) {
		uint64_t run = 1 + rnd(&s) % 3000;
		if (rnd(&s) % 2) {
			uint8_t c = (uint8_t)rnd(&s);
			for (uint64_t k = 0; k < run && i < len; k++)
				b[i++] = c;
		} else {
			for (uint64_t k = 0; k < run && i < len; k++)
				b[i++] = (uint8_t)rnd(&s);
		}
	}
}

static void
model_apply(model *m, unsigned t, const op *o)
{
	slot *sl = &m->s[t][o->slot];
	switch (o->kind) {
	case OP_CREATE:
		sl->exists = 1;
		sl->size = o->size;
		sl->bs = o->bs;
		memset(sl->data, 0, MAXVOL);
		break;
	case OP_DESTROY:
		sl->exists = 0;
		break;
	case OP_WRITE:
		payload(sl->data + o->off, o->len, o->dseed);
		break;
	case OP_TRIM:
	case OP_ZERO:
		memset(sl->data + o->off, 0, o->len);
		break;
	case OP_RESIZE:
		if (o->size < sl->size)
			memset(sl->data + o->size, 0, sl->size - o->size);
		sl->size = o->size;
		break;
	default:
		break;
	}
}

static void
vol_name(char *buf, size_t n, unsigned t, int s)
{
	snprintf(buf, n, "t%uv%d", t, s);
}

/* ---- worker ---- */

typedef struct wctx {
	ce_pool *p;
	model *m;
	shared *sh;
	unsigned round, t;
	uint64_t limit; /* stop after this many ops (clean rounds), else never */
} wctx;

#define WFAIL(...)                                                      \
	do {                                                            \
		fprintf(stderr, "cask-stress: worker thread %u op %" PRIu64 ": ", c->t, i); \
		fprintf(stderr, __VA_ARGS__);                           \
		fprintf(stderr, " (%s)\n", ce_errmsg());                \
		c->sh->failed = 1;                                      \
		_exit(1);                                               \
	} while (0)

static void *
worker_thread(void *arg)
{
	wctx *c = arg;
	ce_vol *h[NSLOT] = { NULL, NULL };
	uint8_t *buf = malloc(MAXVOL);
	char name[64];
	for (uint64_t i = 0; i < c->limit; i++) {
		op o = gen_op(c->round, c->t, i, c->m);
		slot *sl = &c->m->s[c->t][o.slot];
		vol_name(name, sizeof(name), c->t, o.slot);
		__atomic_store_n(&c->sh->started[c->t], i + 1, __ATOMIC_SEQ_CST);
		if (o.kind != OP_CREATE && h[o.slot] == NULL && ce_vol_open(c->p, name, &h[o.slot]) != 0)
			WFAIL("open %s", name);
		int r = 0;
		switch (o.kind) {
		case OP_CREATE: {
			ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
			pr.volblocksize = o.bs;
			pr.compress = o.value;
			r = ce_vol_create(c->p, name, o.size, &pr);
			break;
		}
		case OP_DESTROY:
			ce_vol_close(h[o.slot]);
			h[o.slot] = NULL;
			r = ce_vol_destroy(c->p, name);
			break;
		case OP_WRITE:
			payload(buf, o.len, o.dseed);
			r = ce_vol_write(h[o.slot], buf, o.len, o.off);
			break;
		case OP_READ:
			r = ce_vol_read(h[o.slot], buf, o.len, o.off);
			if (r == 0 && memcmp(buf, sl->data + o.off, o.len) != 0)
				WFAIL("read of %s at %" PRIu64 "+%" PRIu64 " differs from the model", name, o.off, o.len);
			break;
		case OP_TRIM:
			r = ce_vol_trim(h[o.slot], o.off, o.len);
			break;
		case OP_ZERO:
			r = ce_vol_write_zeroes(h[o.slot], o.off, o.len);
			break;
		case OP_RESIZE:
			r = ce_vol_resize(c->p, name, o.size, CE_RESIZE_SHRINK);
			break;
		case OP_SET:
			r = ce_vol_set(c->p, name, o.prop == 0 ? "compression" : "checksum",
			    o.prop == 0 ? ce_compress_name(o.value) : ce_checksum_name(o.value));
			break;
		case OP_SYNC:
			r = ce_pool_sync(c->p);
			break;
		}
		if (r != 0)
			WFAIL("%s %s failed: %s", op_names[o.kind], name, strerror(-r));
		model_apply(c->m, c->t, &o);
		if (o.kind == OP_SYNC)
			__atomic_store_n(&c->sh->synced[c->t], i + 1, __ATOMIC_SEQ_CST);
	}
	for (int s = 0; s < NSLOT; s++)
		ce_vol_close(h[s]);
	free(buf);
	return NULL;
}

static void
worker(unsigned round, model *m, shared *sh, uint64_t limit)
{
	ce_pool_opts o;
	memset(&o, 0, sizeof(o));
	o.txg_timeout_ms = 50 + (unsigned)(mix(g_seed ^ round) % 200);
	o.dirty_max = 4u << 20;
	o.cache_bytes = 8u << 20;
	const char *paths[4];
	for (unsigned v = 0; v < g_nvdevs; v++)
		paths[v] = g_pool_path[v];
	ce_pool *p;
	if (ce_pool_import(paths, g_nvdevs, &o, &p) != 0) {
		fprintf(stderr, "cask-stress: worker import: %s\n", ce_errmsg());
		sh->failed = 1;
		_exit(1);
	}
	pthread_t th[MAXT];
	wctx c[MAXT];
	for (unsigned t = 0; t < g_threads; t++) {
		c[t] = (wctx){ p, m, sh, round, t, limit };
		pthread_create(&th[t], NULL, worker_thread, &c[t]);
	}
	for (unsigned t = 0; t < g_threads; t++)
		pthread_join(th[t], NULL);
	if (ce_pool_export(p) != 0) {
		fprintf(stderr, "cask-stress: worker export: %s\n", ce_errmsg());
		_exit(1);
	}
	_exit(0);
}

/* ---- parent: find each thread's prefix ---- */

typedef struct observed {
	int exists;
	uint64_t size;
	uint32_t bs;
	uint64_t *digest; /* per CHUNK */
} observed;

static int
slot_matches(const slot *sl, const observed *ob)
{
	if (sl->exists != ob->exists)
		return 0;
	if (!sl->exists)
		return 1;
	if (sl->size != ob->size || sl->bs != ob->bs)
		return 0;
	for (uint64_t k = 0; k < sl->size / CHUNK; k++)
		if (XXH3_64bits(sl->data + k * CHUNK, CHUNK) != ob->digest[k])
			return 0;
	return 1;
}

/* Describe how a slot differs from what was observed (for failure reports). */
static void
slot_diff(const slot *sl, const observed *ob, char *out, size_t n)
{
	if (sl->exists != ob->exists || (sl->exists && (sl->size != ob->size || sl->bs != ob->bs))) {
		snprintf(out, n, "model exists=%d size=%" PRIu64 " bs=%u, pool exists=%d size=%" PRIu64 " bs=%u",
		    sl->exists, sl->size, sl->bs, ob->exists, ob->size, ob->bs);
		return;
	}
	uint64_t bad = 0, first = UINT64_MAX;
	for (uint64_t k = 0; sl->exists && k < sl->size / CHUNK; k++)
		if (XXH3_64bits(sl->data + k * CHUNK, CHUNK) != ob->digest[k]) {
			bad++;
			if (first == UINT64_MAX)
				first = k;
		}
	snprintf(out, n, "%" PRIu64 " chunks of 4K differ, first at offset %" PRIu64, bad, first * CHUNK);
}

static int
observe(ce_pool *p, unsigned t, int s, observed *ob, uint8_t *buf)
{
	char name[64];
	ce_vol_info vi;
	vol_name(name, sizeof(name), t, s);
	ob->exists = ce_vol_info_get(p, name, &vi) == 0;
	if (!ob->exists)
		return 0;
	ob->size = vi.size;
	ob->bs = vi.volblocksize;
	ce_vol *h;
	if (ce_vol_open(p, name, &h) != 0 || ce_vol_read(h, buf, vi.size, 0) != 0) {
		fprintf(stderr, "cask-stress: cannot read %s back: %s\n", name, ce_errmsg());
		return -1;
	}
	ce_vol_close(h);
	for (uint64_t k = 0; k < vi.size / CHUNK; k++)
		ob->digest[k] = XXH3_64bits(buf + k * CHUNK, CHUNK);
	return 0;
}

static int
run_check(void)
{
	char cmd[PATH_MAX * 6];
	int n = snprintf(cmd, sizeof(cmd), "%s check", g_debug);
	for (unsigned v = 0; v < g_nvdevs; v++)
		n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " '%s'", g_pool_path[v]);
	snprintf(cmd + n, sizeof(cmd) - (size_t)n, " > '%s/check.out' 2>&1", g_dir);
	int rc = system(cmd);
	if (rc != 0) {
		snprintf(cmd, sizeof(cmd), "cat '%s/check.out' >&2", g_dir);
		if (system(cmd) != 0)
			return -1;
		return -1;
	}
	return 0;
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: cask-stress [--seconds N] [--seed S] [--threads T] [--vdevs V] DIR\n"
	    "\n"
	    "Run random concurrent volume operations on a pool in DIR against an in-memory\n"
	    "model, kill the worker with SIGKILL at random times, re-import, and verify that\n"
	    "each thread's volumes hold exactly a prefix of its operations that includes every\n"
	    "synced one, and that cask-debug check finds the pool clean.\n"
	    "\n"
	    "  --seconds N   run for about N seconds (default 10)\n"
	    "  --seed S      seed for every random choice (default: from the clock)\n"
	    "  --threads T   concurrent worker threads, 1-%d (default 4)\n"
	    "  --vdevs V     vdev files in the pool, 1-4 (default 1)\n"
	    "\n"
	    "DIR is created if needed; the pool files in it are replaced. Exit status 0 when\n"
	    "every round verified, 1 on a violation (the seed to reproduce is printed).\n", MAXT);
}

int
main(int argc, char **argv)
{
	double seconds = 10;
	int seeded = 0;
	static const struct option lo[] = { { "seconds", 1, NULL, 'n' }, { "seed", 1, NULL, 's' },
		{ "threads", 1, NULL, 't' }, { "vdevs", 1, NULL, 'v' }, { "help", 0, NULL, 'h' }, { 0, 0, 0, 0 } };
	int ch;
	while ((ch = getopt_long(argc, argv, "n:s:t:v:h", lo, NULL)) != -1) {
		char *end;
		switch (ch) {
		case 'n':
			seconds = strtod(optarg, &end);
			if (*end || seconds <= 0) {
				fprintf(stderr, "cask-stress: bad --seconds '%s'\n", optarg);
				return 2;
			}
			break;
		case 's':
			g_seed = strtoull(optarg, &end, 0);
			if (*end) {
				fprintf(stderr, "cask-stress: bad --seed '%s'\n", optarg);
				return 2;
			}
			seeded = 1;
			break;
		case 't':
			g_threads = (unsigned)strtoul(optarg, &end, 10);
			if (*end || g_threads < 1 || g_threads > MAXT) {
				fprintf(stderr, "cask-stress: --threads must be 1-%d\n", MAXT);
				return 2;
			}
			break;
		case 'v':
			g_nvdevs = (unsigned)strtoul(optarg, &end, 10);
			if (*end || g_nvdevs < 1 || g_nvdevs > 4) {
				fprintf(stderr, "cask-stress: --vdevs must be 1-4\n");
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	g_dir = argv[optind];
	if (!seeded) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		g_seed = mix((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid());
	}
	printf("cask-stress: seed %" PRIu64 " threads %u vdevs %u seconds %.0f\n", g_seed, g_threads, g_nvdevs, seconds);
	fflush(stdout);
	if (mkdir(g_dir, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "cask-stress: %s: %s\n", g_dir, strerror(errno));
		return 2;
	}
	/* cask-debug lives next to this binary */
	snprintf(g_debug, sizeof(g_debug), "%s", argv[0]);
	char *slash = strrchr(g_debug, '/');
	if (slash)
		snprintf(slash + 1, sizeof(g_debug) - (size_t)(slash + 1 - g_debug), "cask-debug");
	else
		snprintf(g_debug, sizeof(g_debug), "cask-debug");

	const char *paths[4];
	for (unsigned v = 0; v < g_nvdevs; v++) {
		snprintf(g_pool_path[v], sizeof(g_pool_path[v]), "%s/stress%u.vdev", g_dir, v);
		unlink(g_pool_path[v]);
		paths[v] = g_pool_path[v];
	}
	ce_pool_opts po;
	memset(&po, 0, sizeof(po));
	po.vdev_size = (uint64_t)(96 / g_nvdevs + 16) << 20;
	ce_pool *p;
	if (ce_pool_create("stress", paths, g_nvdevs, &po, &p) != 0 || ce_pool_export(p) != 0) {
		fprintf(stderr, "cask-stress: cannot create the pool: %s\n", ce_errmsg());
		return 2;
	}

	model *m = mmap(NULL, sizeof(model), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	shared *sh = mmap(NULL, sizeof(shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED || sh == MAP_FAILED) {
		perror("cask-stress: mmap");
		return 2;
	}
	for (unsigned t = 0; t < g_threads; t++)
		for (int s = 0; s < NSLOT; s++)
			m->s[t][s].data = calloc(1, MAXVOL);
	observed ob[MAXT][NSLOT];
	for (unsigned t = 0; t < g_threads; t++)
		for (int s = 0; s < NSLOT; s++)
			ob[t][s].digest = calloc(MAXVOL / CHUNK, sizeof(uint64_t));
	uint8_t *buf = malloc(MAXVOL);
	uint64_t seed_rounds = mix(g_seed ^ 0xabcdef);
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	uint64_t total_ops = 0, kills = 0, clean = 0;
	unsigned round = 0;
	int violation = 0;

	for (;; round++) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		double el = (double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9;
		if (el >= seconds)
			break;
		int clean_round = round % 5 == 4;
		uint64_t limit = clean_round ? 50 + rnd(&seed_rounds) % 300 : UINT64_MAX;
		memset((void *)sh, 0, sizeof(*sh));
		fflush(stdout);
		pid_t pid = fork();
		if (pid < 0) {
			perror("cask-stress: fork");
			return 2;
		}
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL); /* the worker never outlives cask-stress */
			worker(round, m, sh, limit);
		}
		int status;
		if (!clean_round) {
			struct timespec d = { 0, (long)(50 + rnd(&seed_rounds) % 400) * 1000000L };
			nanosleep(&d, NULL);
			kill(pid, SIGKILL);
			kills++;
		}
		waitpid(pid, &status, 0);
		if (sh->failed || (clean_round && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) ||
		    (!clean_round && !(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) &&
		    !(WIFEXITED(status) && WEXITSTATUS(status) == 0))) {
			fprintf(stderr, "cask-stress: round %u: the worker failed (status 0x%x)\n", round, status);
			violation = 1;
			break;
		}
		if (run_check() != 0) {
			fprintf(stderr, "cask-stress: round %u: cask-debug check found problems\n", round);
			violation = 1;
			break;
		}
		ce_pool_opts io;
		memset(&io, 0, sizeof(io));
		if (ce_pool_import(paths, g_nvdevs, &io, &p) != 0) {
			fprintf(stderr, "cask-stress: round %u: import failed: %s\n", round, ce_errmsg());
			violation = 1;
			break;
		}
		uint64_t round_ops = 0;
		for (unsigned t = 0; t < g_threads && !violation; t++) {
			for (int s = 0; s < NSLOT; s++)
				if (observe(p, t, s, &ob[t][s], buf) != 0)
					violation = 1;
			uint64_t synced = sh->synced[t], started = sh->started[t];
			/* replay to the synced point, then search forward */
			uint64_t i = 0;
			for (; i < synced; i++) {
				op o = gen_op(round, t, i, m);
				model_apply(m, t, &o);
			}
			int found = 0;
			uint64_t from = i;
			/* A clean export must keep every op: compare only at the end. */
			if (clean_round)
				for (; i < started; i++) {
					op o = gen_op(round, t, i, m);
					model_apply(m, t, &o);
				}
			for (;; i++) {
				if (slot_matches(&m->s[t][0], &ob[t][0]) && slot_matches(&m->s[t][1], &ob[t][1])) {
					found = 1;
					break;
				}
				if (getenv("CASK_STRESS_DEBUG") != NULL) {
					char d0[200], d1[200];
					slot_diff(&m->s[t][0], &ob[t][0], d0, sizeof(d0));
					slot_diff(&m->s[t][1], &ob[t][1], d1, sizeof(d1));
					fprintf(stderr, "  thread %u after %" PRIu64 " ops: v0: %s; v1: %s\n", t, i, d0, d1);
				}
				if (i >= started)
					break;
				op o = gen_op(round, t, i, m);
				if (getenv("CASK_STRESS_DEBUG") != NULL)
					fprintf(stderr, "  op %" PRIu64 ": %s v%d off %" PRIu64 " len %" PRIu64 " size %" PRIu64 "\n",
					    i, op_names[o.kind], o.slot, o.off, o.len, o.size);
				model_apply(m, t, &o);
			}
			if (!found) {
				fprintf(stderr, "cask-stress: round %u thread %u: no prefix of its ops (synced %" PRIu64
				    ", started %" PRIu64 ") matches what the pool holds\n", round, t, synced, started);
				(void)from;
				violation = 1;
				violation = 1;
			} else if (clean_round && i != started) {
				fprintf(stderr, "cask-stress: round %u thread %u: clean export kept %" PRIu64 " of %" PRIu64 " ops\n",
				    round, t, i, started);
				violation = 1;
			}
			round_ops += i;
		}
		ce_pool_export(p);
		if (violation)
			break;
		total_ops += round_ops;
		clean += clean_round;
		printf("round %3u: %-6s %6" PRIu64 " ops durable; import, model and check clean\n", round,
		    clean_round ? "export" : "kill", round_ops);
	}
	for (unsigned t = 0; t < g_threads; t++)
		for (int s = 0; s < NSLOT; s++) {
			free(m->s[t][s].data);
			free(ob[t][s].digest);
		}
	free(buf);
	munmap(m, sizeof(model));
	munmap((void *)sh, sizeof(shared));
	if (violation) {
		printf("cask-stress: FAILED in round %u; reproduce with --seed %" PRIu64 " --threads %u --vdevs %u\n",
		    round, g_seed, g_threads, g_nvdevs);
		return 1;
	}
	fflush(stdout);
	printf("cask-stress: %u rounds (%" PRIu64 " kills, %" PRIu64 " clean exports), %" PRIu64
	    " operations verified, 0 violations (seed %" PRIu64 ")\n", round, kills, clean, total_ops, g_seed);
	return 0;
}
