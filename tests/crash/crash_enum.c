/*
 * crash_enum -- crash states of small workloads, checked against the
 * durability contract.
 *
 *   crash_enum [--ops N] [--seed S]            bounded enumeration
 *   crash_enum --soak STATES [--seed S]        random workloads and crashes
 *   crash_enum --workload W3P1C1S0 [--seed S]  one workload (as a violation names it),
 *                                              every crash point, cold and warm
 *
 * A workload is a sequence of operations on a 16-block volume:
 *   W  write block 0          T  trim block 0        Z  write-zeroes block 1
 *   F  FUA write of block 1 (write, then flush)      S  flush
 *   L  one 64 KiB write of blocks 0-15 (logged in place: its data goes to
 *      free sectors and the log record points to it)
 *   P  snapshot create "v@p<i>"     D  destroy the newest snapshot left
 *   R  roll the volume back to the newest snapshot left
 *   C  clone the newest snapshot left into "c<i>"
 *   M  promote the newest clone (the snapshots up to its origin move to it)
 * After a crash every snapshot that exists must hold exactly the volume as
 * it was at its create (whole or not at all), under one name; an
 * acknowledged create must exist, an acknowledged destroy must not. A
 * clone that exists holds its origin's contents; an acknowledged clone
 * exists. A promote happened for all the snapshots it moves or for none,
 * and an acknowledged one happened.
 * followed by a final S. The enumeration runs every workload of up to --ops
 * (default 3) operations, crashes it at every device write and during
 * every device flush it makes, and for each crash point builds four crash
 * states of every vdev (unflushed writes all dropped, all kept, a random
 * subset applied in a random order, a random subset with one sector torn). A fresh engine must import each state
 * without repair, and every block must read back its last durable value
 * or a value written after it -- never anything else. The soak does the
 * same with random workloads of up to 8 operations on random blocks.
 *
 * A flush (S, F) is served by the intent log when the pool is "warm" (the
 * log's epoch is durable) and by a txg commit right after import ("cold");
 * the enumeration runs every workload both ways, the soak picks at random.
 * Crash states are imported read-write, so the intent log is replayed
 * (into an overlay: the template file is never changed).
 * Exit status 0 when every state holds, 1 otherwise (the failing workload,
 * crash point, mode and seed are printed).
 */
#include <getopt.h>
#include <time.h>

#include "../unit/t.h"
#include "crashsim.h"

#define NBLK 16
#define BS 4096
enum { OP_W, OP_T, OP_Z, OP_F, OP_S, OP_L, OP_P, OP_D, OP_R, OP_C, OP_M, OP_N };
static const char opname[] = "WTZFSLPDRCM";

/* What the last run did with snapshots: acked ops, and which P each D destroyed. */
static int g_acked[16];
static int g_dtarget[16];

typedef struct op {
	int kind;
	int blk;
} op;

/* Does op touch block b, and what does it leave there (0 zeros, i+1 op i's pattern)? */
static int
touches(const op *o, int b)
{
	if (o->kind == OP_R)
		return 1; /* a rollback sets every block (when it had a target) */
	return o->kind == OP_L || (o->kind != OP_S && o->kind != OP_P && o->kind != OP_D &&
	    o->kind != OP_C && o->kind != OP_M && o->blk == b);
}

static int value_at(const op *ops, int i, int b);

/* What block b held just before op k ran (a snapshot's or a clone's instant). */
static int
value_before(const op *ops, int k, int b)
{
	int v = 0;
	for (int j = 0; j < k; j++)
		if (touches(&ops[j], b) && (ops[j].kind != OP_R || g_dtarget[j] >= 0))
			v = value_at(ops, j, b);
	return v;
}

/* What op i leaves in block b: 0 zeros, i+1 its pattern; a rollback, the value at its snapshot. */
static int
value_at(const op *ops, int i, int b)
{
	if (ops[i].kind == OP_R)
		return value_before(ops, g_dtarget[i], b);
	return (ops[i].kind == OP_W || ops[i].kind == OP_F || ops[i].kind == OP_L) ? i + 1 : 0;
}


static char template_path[512];
static uint64_t checked;
static int quiet; /* the self-test expects a violation: do not print it */
static int warm;  /* commit once after import, so that flushes use the intent log */

static void
pattern(uint8_t *b, int opidx, int blk)
{
	t_fill(b, BS, 1000u * (unsigned)opidx + (unsigned)blk + 1);
	b[0] = (uint8_t)(opidx + 1); /* tag: which op wrote it */
	b[1] = (uint8_t)blk;
}

/* Tag of a block's contents: 0 zeros, i+1 written by op i, -1 garbage. */
static int
tag_of(const uint8_t *b, int blk, int nops)
{
	static const uint8_t zero[BS];
	if (memcmp(b, zero, BS) == 0)
		return 0;
	int i = b[0] - 1;
	if (i < 0 || i >= nops)
		return -1;
	uint8_t want[BS];
	pattern(want, i, blk);
	return memcmp(want, b, BS) == 0 ? i + 1 : -1;
}

/* Run the workload against the crashsim; returns the index of the last op acknowledged durable. */
static int
run(const op *ops, int n, crashsim *cs, int *acked)
{
	ce_pool_opts o = { 0 };
	o.wrap = crashsim_wrap;
	o.wrap_arg = cs;
	o.txg_timeout_ms = 60000; /* commits only when asked: the workload decides */
	const char *path = template_path;
	ce_pool *p;
	ce_vol *v;
	OK(ce_pool_import(&path, 1, &o, &p));
	OK(ce_vol_open(p, "v", &v));
	/* warm: one commit first (it may meet the crash itself), then flushes use the log */
	int warm_err = warm ? ce_pool_sync(p) : 0;
	int durable = -1;
	int stack[16], nstack = 0, clones[16], nclones = 0;
	for (int i = 0; i < 16; i++)
		g_acked[i] = 0, g_dtarget[i] = -1;
	uint8_t buf[BS];
	for (int i = 0; i < n && warm_err == 0; i++) {
		int r = 0;
		switch (ops[i].kind) {
		case OP_W:
		case OP_F:
			pattern(buf, i, ops[i].blk);
			r = ce_vol_write(v, buf, BS, (uint64_t)ops[i].blk * BS);
			if (r == 0 && ops[i].kind == OP_F)
				r = ce_vol_flush(v);
			break;
		case OP_T:
			r = ce_vol_trim(v, (uint64_t)ops[i].blk * BS, BS);
			break;
		case OP_Z:
			r = ce_vol_write_zeroes(v, (uint64_t)ops[i].blk * BS, BS);
			break;
		case OP_S:
			r = ce_vol_flush(v);
			break;
		case OP_L: {
			uint8_t *big = malloc(NBLK * BS);
			for (int b = 0; b < NBLK; b++)
				pattern(big + (size_t)b * BS, i, b);
			r = ce_vol_write(v, big, NBLK * BS, 0);
			free(big);
			break;
		}
		case OP_P: {
			char nm[32];
			snprintf(nm, sizeof(nm), "v@p%d", i);
			const char *names[1] = { nm };
			int errs[1];
			r = ce_snap_create(p, names, 1, errs);
			if (r == 0)
				stack[nstack++] = i;
			break;
		}
		case OP_R:
			if (nstack > 0) {
				char nm[32];
				g_dtarget[i] = stack[nstack - 1];
				snprintf(nm, sizeof(nm), "v@p%d", stack[nstack - 1]);
				ce_vol_close(v);
				r = ce_vol_rollback(p, nm, 0);
				if (ce_vol_open(p, "v", &v) != 0)
					v = NULL; /* the crash came during the rollback: nothing more runs */
			}
			break;
		case OP_C:
			if (nstack > 0) {
				char nm[32], cn[32];
				g_dtarget[i] = stack[nstack - 1];
				snprintf(nm, sizeof(nm), "v@p%d", stack[nstack - 1]);
				snprintf(cn, sizeof(cn), "c%d", i);
				r = ce_vol_clone(p, nm, cn);
				if (r == 0)
					clones[nclones++] = i;
			}
			break;
		case OP_M:
			if (nclones > 0) {
				char cn[32];
				g_dtarget[i] = clones[nclones - 1];
				snprintf(cn, sizeof(cn), "c%d", clones[nclones - 1]);
				r = ce_vol_promote(p, cn);
				if (r == 0) /* its snapshots are renamed: later D and R find nothing */
					nstack = 0;
			}
			break;
		case OP_D:
			if (nstack > 0) {
				char nm[32];
				g_dtarget[i] = stack[nstack - 1];
				snprintf(nm, sizeof(nm), "v@p%d", stack[nstack - 1]);
				r = ce_snap_destroy(p, nm);
				if (r == 0)
					nstack--;
			}
			break;
		}
		acked[i] = g_acked[i] = r == 0 && v != NULL;
		if (v == NULL)
			break;
		/* F, S flush; P, D, R, C and M commit a txg, which makes everything before them durable */
		if (r == 0 && (ops[i].kind == OP_F || ops[i].kind == OP_S || ops[i].kind == OP_P ||
		    ((ops[i].kind == OP_D || ops[i].kind == OP_R || ops[i].kind == OP_C ||
		    ops[i].kind == OP_M) && g_dtarget[i] >= 0)))
			durable = i;
	}
	if (v != NULL)
		ce_vol_close(v);
	ce_pool_abandon(p);
	return durable;
}

static void
describe(const op *ops, int n, char *out)
{
	for (int i = 0; i < n; i++) {
		out[2 * i] = opname[ops[i].kind];
		out[2 * i + 1] = (char)('0' + ops[i].blk);
	}
	out[2 * n] = '\0';
}

/* One line saying which workload, crash point, mode and seed broke the contract, and how. */
static void __attribute__((format(printf, 5, 6)))
violation(const char *desc, long crash_at, int mode, uint64_t seed, const char *fmt, ...)
{
	if (quiet)
		return;
	printf("VIOLATION workload %s (%s) crash point %ld mode %s seed %" PRIu64 ": ", desc,
	    warm ? "warm" : "cold", crash_at, crashsim_mode_names[mode], seed);
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

/* A crash during recovery: the crash image, with a second crashsim on top. */
typedef struct nest {
	crash_state st1;
	crashsim *cs2;
} nest;

static ce_backend *
nest_wrap(ce_backend *inner, unsigned idx, void *arg)
{
	nest *x = arg;
	return crashsim_wrap(crashsim_image_wrap(inner, idx, &x->st1), idx, x->cs2);
}

static uint64_t nested_checked, nested_crashed;

/*
 * Check one crash state; returns 0 when the contract holds. With nested
 * != 0 the recovery itself (import, intent log replay, its commit) is
 * crashed at a random write first, and the state after that second crash
 * is what must hold.
 */
static int
check_state(const op *ops, int n, crashsim *cs, int durable, int mode, uint64_t seed, long crash_at,
    uint64_t nested)
{
	crash_state st = { cs, mode, seed };
	crash_state st2;
	ce_pool_opts o = { 0 };
	o.flags = CE_BE_NOLOCK; /* the crashsim still holds the file (and its lock) open */
	o.wrap = crashsim_image_wrap;
	o.wrap_arg = &st;
	const char *path = template_path;
	ce_pool *p;
	ce_vol *v;
	char desc[64];
	describe(ops, n, desc);
	checked++;
	crashsim *cs2 = NULL;
	if (nested != 0) {
		/* how many writes recovery makes, then crash it at one of them */
		nest x = { st, crashsim_new(-1) };
		ce_pool_opts o2 = o;
		o2.wrap = nest_wrap;
		o2.wrap_arg = &x;
		if (ce_pool_import(&path, 1, &o2, &p) == 0)
			ce_pool_abandon(p);
		long total = crashsim_writes(x.cs2);
		crashsim_free(x.cs2);
		long k2 = (long)(nested % (uint64_t)(total + 1));
		if (k2 < total)
			nested_crashed++; /* recovery wrote, and the crash hit it */
		x.cs2 = crashsim_new(k2);
		if (ce_pool_import(&path, 1, &o2, &p) == 0)
			ce_pool_abandon(p); /* the crash came after recovery */
		cs2 = x.cs2;
		st2 = (crash_state){ cs2, (int)((nested >> 20) % CS_NMODES), nested * 31 };
		o.wrap_arg = &st2;
		nested_checked++;
	}
	int err = ce_pool_import(&path, 1, &o, &p);
	if (err != 0 && cs2 != NULL)
		crashsim_free(cs2);
	if (err != 0) {
		int q = quiet;
		quiet = 0; /* an import failure is never expected: always said */
		violation(desc, crash_at, mode, seed, "import failed: %s", ce_errmsg());
		quiet = q;
		return 1;
	}
	OK(ce_vol_open(p, "v", &v));
	int bad = 0;
	for (int b = 0; b < NBLK && !bad; b++) {
		uint8_t buf[BS];
		int r = ce_vol_read(v, buf, BS, (uint64_t)b * BS);
		int tag = r == 0 ? tag_of(buf, b, n) : -2;
		/* allowed: the value after the last durable op, or any value written after it */
		/*
		 * An op that failed (the crash came first) was never acknowledged:
		 * it does not set the durable value, but it may have landed.
		 */
		int base = 0;
		for (int i = 0; i <= durable; i++)
			if (touches(&ops[i], b) && g_acked[i] && (ops[i].kind != OP_R || g_dtarget[i] >= 0))
				base = value_at(ops, i, b);
		int ok = tag == base;
		for (int i = 0; i < n && !ok; i++)
			if (touches(&ops[i], b) && (i > durable || !g_acked[i]) &&
			    (ops[i].kind != OP_R || g_dtarget[i] >= 0))
				ok = tag == value_at(ops, i, b);
		if (!ok) {
			char what[64];
			if (tag == -2)
				snprintf(what, sizeof(what), "an error (%s)", ce_errmsg());
			else if (tag == -1)
				snprintf(what, sizeof(what), "data never written");
			else if (tag == 0)
				snprintf(what, sizeof(what), "zeros");
			else
				snprintf(what, sizeof(what), "the value of op %d", tag - 1);
			violation(desc, crash_at, mode, seed, "block %d reads %s, durable through op %d", b, what,
			    durable);
			bad = 1;
		}
	}
	ce_vol_close(v);
	/* Snapshots exist whole or not at all: each one that exists holds the volume as it was */
	for (int k = 0; k < n && !bad; k++) {
		if (ops[k].kind != OP_P)
			continue;
		char nm[32];
		snprintf(nm, sizeof(nm), "v@p%d", k);
		int destroyed = 0, maybe_destroyed = 0;
		for (int j = k + 1; j < n; j++)
			if (ops[j].kind == OP_D && g_dtarget[j] == k)
			{
				if (g_acked[j])
					destroyed = 1;
				else
					maybe_destroyed = 1;
			}
		ce_vol *sv;
		int exists = ce_vol_open(p, nm, &sv) == 0;
		const char *why = NULL;
		/* a promote may have moved it to a clone: one name, never two */
		for (int j = 0; j < n; j++) {
			ce_vol *sv2;
			char moved[32];
			if (ops[j].kind != OP_M || g_dtarget[j] < 0)
				continue;
			int seen = 0; /* two promotes of the same clone name one place */
			for (int jj = 0; jj < j; jj++)
				seen |= ops[jj].kind == OP_M && g_dtarget[jj] == g_dtarget[j];
			if (seen)
				continue;
			snprintf(moved, sizeof(moved), "c%d@p%d", g_dtarget[j], k);
			if (ce_vol_open(p, moved, &sv2) != 0)
				continue;
			if (exists) {
				why = "exists under two names after a promote";
				ce_vol_close(sv2);
			} else {
				exists = 1;
				sv = sv2;
			}
		}
		if (why == NULL && exists && destroyed)
			why = "exists although its destroy was acknowledged";
		else if (!exists && g_acked[k] && !destroyed && !maybe_destroyed)
			why = "is missing although its create was acknowledged";
		for (int b = 0; exists && b < NBLK && why == NULL; b++) {
			uint8_t buf[BS];
			int want = value_before(ops, k, b);
			int r = ce_vol_read(sv, buf, BS, (uint64_t)b * BS);
			if (r != 0 || tag_of(buf, b, n) != want)
				why = "is not whole: a block differs from the volume at its instant";
		}
		if (exists)
			ce_vol_close(sv);
		if (why != NULL) {
			violation(desc, crash_at, mode, seed, "snapshot %s %s", nm, why);
			bad = 1;
		}
	}
	/* clones: an acknowledged one exists; one that exists holds its origin's instant */
	for (int k = 0; k < n && !bad; k++) {
		if (ops[k].kind != OP_C || g_dtarget[k] < 0)
			continue;
		char cn[32];
		snprintf(cn, sizeof(cn), "c%d", k);
		ce_vol *cv;
		const char *why = NULL;
		int exists = ce_vol_open(p, cn, &cv) == 0;
		if (!exists && g_acked[k])
			why = "is missing although its create was acknowledged";
		for (int b = 0; exists && b < NBLK && why == NULL; b++) {
			uint8_t buf[BS];
			int want = value_before(ops, g_dtarget[k], b);
			if (ce_vol_read(cv, buf, BS, (uint64_t)b * BS) != 0 || tag_of(buf, b, n) != want)
				why = "is not its origin's contents";
		}
		if (exists)
			ce_vol_close(cv);
		if (why != NULL) {
			violation(desc, crash_at, mode, seed, "clone %s %s", cn, why);
			bad = 1;
		}
	}
	/* promotes: every snapshot up to the origin moved, or none did; an acknowledged one did */
	for (int m = 0; m < n && !bad; m++) {
		if (ops[m].kind != OP_M || g_dtarget[m] < 0)
			continue;
		int c = g_dtarget[m], origin = g_dtarget[c], moved = 0, stayed = 0;
		for (int k = 0; k <= origin; k++) {
			if (ops[k].kind != OP_P)
				continue;
			char nm[32];
			ce_vol *sv;
			snprintf(nm, sizeof(nm), "c%d@p%d", c, k);
			if (ce_vol_open(p, nm, &sv) == 0) {
				moved++;
				ce_vol_close(sv);
			}
			snprintf(nm, sizeof(nm), "v@p%d", k);
			if (ce_vol_open(p, nm, &sv) == 0) {
				stayed++;
				ce_vol_close(sv);
			}
		}
		const char *why = moved && stayed ? "moved some snapshots but not all" :
		    g_acked[m] && stayed ? "was acknowledged but its snapshots did not move" : NULL;
		if (why != NULL) {
			violation(desc, crash_at, mode, seed, "promote of c%d %s", c, why);
			bad = 1;
		}
	}
	ce_pool_export(p);
	if (cs2 != NULL)
		crashsim_free(cs2);
	return bad;
}

/* Every crash point of one workload, four states each. */
static int
crash_all(const op *ops, int n, uint64_t seed)
{
	int acked[16];
	crashsim *cs = crashsim_new(-1);
	run(ops, n, cs, acked);
	long total = crashsim_writes(cs), nflush = crashsim_flushes(cs);
	crashsim_free(cs);
	int bad = 0;
	/* at every write, then during every flush */
	for (long k = 0; k <= total + nflush && !bad; k++) {
		cs = k <= total ? crashsim_new(k) : crashsim_new_at_flush(k - total - 1);
		int durable = run(ops, n, cs, acked);
		for (int mode = 0; mode < CS_NMODES && !bad; mode++)
			bad = check_state(ops, n, cs, durable, mode, seed + (uint64_t)k * 7 + (uint64_t)mode, k, 0);
		crashsim_free(cs);
	}
	return bad;
}

static void
make_template(void)
{
	snprintf(template_path, sizeof(template_path), "%s/template.vdev", t_dir);
	ce_pool_opts o = { 0 };
	o.vdev_size = 16ull << 20;
	ce_pool *p;
	OK(ce_pool_create("crash", (const char *[]){ template_path }, 1, &o, &p));
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.compress = CE_COMPRESS_OFF;
	OK(ce_vol_create(p, "v", NBLK * BS, &pr));
	OK(ce_pool_export(p));
}

int
main(int argc, char **argv)
{
	int maxops = 3;
	long soak = 0;
	uint64_t seed = (uint64_t)time(NULL);
	static const struct option lo[] = { { "ops", 1, NULL, 'o' }, { "soak", 1, NULL, 'k' },
		{ "seed", 1, NULL, 's' }, { "workload", 1, NULL, 'w' }, { "help", 0, NULL, 'h' }, { 0, 0, 0, 0 } };
	const char *one = NULL;
	int ch;
	while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		if (ch == 'o')
			maxops = atoi(optarg);
		else if (ch == 'k')
			soak = atol(optarg);
		else if (ch == 's')
			seed = strtoull(optarg, NULL, 0);
		else if (ch == 'w')
			one = optarg;
		else {
			printf("usage: crash_enum [--ops N] [--seed S] | --soak STATES [--seed S] | --workload W\n");
			return ch == 'h' ? 0 : 2;
		}
	}
	if (maxops < 1 || maxops > 6) {
		fprintf(stderr, "crash_enum: --ops must be 1-6\n");
		return 2;
	}
	t_tmpdir();
	make_template();
	/* Self-test: a device that loses flushed writes must be caught. */
	{
		op w[3] = { { OP_W, 0 }, { OP_S, 0 }, { OP_S, 0 } };
		int acked[3];
		crashsim *cs = crashsim_new(-1);
		int durable = run(w, 3, cs, acked);
		CHECK(durable == 2);
		quiet = 1;
		CHECK(check_state(w, 3, cs, durable, CS_LYING, seed, -1, 0) == 1);
		quiet = 0;
		CHECK(check_state(w, 3, cs, durable, CS_KEEP_ALL, seed, -1, 0) == 0);
		crashsim_free(cs);
		checked = 0;
		printf("self-test: a lying device is caught\n");
	}
	/* The clone and promote ops really clone and promote. */
	{
		op w[4] = { { OP_P, 0 }, { OP_C, 0 }, { OP_M, 0 }, { OP_S, 0 } };
		int acked[4];
		crashsim *cs = crashsim_new(-1);
		int durable = run(w, 4, cs, acked);
		CHECK(durable == 3 && acked[1] && acked[2] && g_dtarget[2] == 1);
		CHECK(check_state(w, 4, cs, durable, CS_KEEP_ALL, seed, -1, 0) == 0);
		crashsim_free(cs);
		checked = 0;
		printf("self-test: clone and promote are acknowledged\n");
	}
	/* The L operation really takes the write-in-place path of the intent log. */
	{
		ce_pool_opts o = { 0 };
		const char *path = template_path;
		ce_pool *p;
		ce_vol *v;
		OK(ce_pool_import(&path, 1, &o, &p));
		OK(ce_vol_open(p, "v", &v));
		OK(ce_pool_sync(p));
		uint8_t *big = calloc(NBLK, BS);
		big[0] = 1;
		OK(ce_vol_write(v, big, NBLK * BS, 0));
		OK(ce_vol_flush(v));
		free(big);
		ce_pool_stat st;
		OK(ce_pool_stat_get(p, &st));
		CHECK(st.log_inplace == NBLK * BS && st.log_fallbacks == 0);
		ce_vol_close(v);
		ce_pool_abandon(p);
		/* leave the template as it was: re-create it */
		unlink(template_path);
		make_template();
		printf("self-test: a 64 KiB write is logged in place\n");
	}
	int bad = 0;
	uint64_t workloads = 0;
	if (one != NULL) {
		/* letters of opname, each with its block digit: what a violation prints */
		op ops[16];
		int n = 0;
		for (const char *c = one; c[0] != '\0' && c[1] != '\0' && n < 16; c += 2) {
			const char *k = strchr(opname, c[0]);
			if (k == NULL || c[1] < '0' || c[1] > '9') {
				fprintf(stderr, "crash_enum: bad workload '%s' (letters of %s, each with a digit)\n", one,
				    opname);
				return 2;
			}
			ops[n++] = (op){ (int)(k - opname), c[1] - '0' };
		}
		for (warm = 0; warm < 2 && !bad; warm++)
			bad = crash_all(ops, n, seed);
		workloads = 1;
	} else if (soak > 0) {
		uint64_t s = seed | 1;
		while ((long)checked < soak && !bad) {
			op ops[9];
			int n = 1 + (int)(t_rand(&s) % 8);
			for (int i = 0; i < n; i++) {
				ops[i].kind = (int)(t_rand(&s) % OP_N);
				ops[i].blk = (int)(t_rand(&s) % 4);
			}
			ops[n++] = (op){ OP_S, 0 };
			warm = (int)(t_rand(&s) & 1);
			int acked[16];
			crashsim *cs = crashsim_new(-1);
			run(ops, n, cs, acked);
			long total = crashsim_writes(cs), nflush = crashsim_flushes(cs);
			crashsim_free(cs);
			long k = (long)(t_rand(&s) % (uint64_t)(total + 1 + nflush));
			cs = k <= total ? crashsim_new(k) : crashsim_new_at_flush(k - total - 1);
			int durable = run(ops, n, cs, acked);
			int mode = (int)(t_rand(&s) % CS_NMODES);
			/* half of them also crash the recovery (import and log replay) */
			uint64_t nest_seed = (t_rand(&s) & 1) ? (t_rand(&s) | 1) : 0;
			bad = check_state(ops, n, cs, durable, mode, t_rand(&s), k, nest_seed);
			crashsim_free(cs);
			workloads++;
		}
	} else {
		/*
		 * Every sequence of 1..maxops operations, then a final flush; then
		 * the same with the large write among write, FUA write and flush.
		 */
		static const op alpha1[] = { { OP_W, 0 }, { OP_T, 0 }, { OP_Z, 1 }, { OP_F, 1 }, { OP_S, 0 } };
		static const op alpha2[] = { { OP_L, 0 }, { OP_W, 0 }, { OP_F, 1 }, { OP_S, 0 } };
		static const op alpha3[] = { { OP_P, 0 }, { OP_D, 0 }, { OP_R, 0 }, { OP_W, 0 }, { OP_T, 0 } };
		static const op alpha4[] = { { OP_P, 0 }, { OP_C, 0 }, { OP_M, 0 }, { OP_W, 0 } };
		for (int set = 0; set < 4 && !bad; set++) {
		const op *alphabet = set == 0 ? alpha1 : set == 1 ? alpha2 : set == 2 ? alpha3 : alpha4;
		const int na = set == 1 || set == 3 ? 4 : 5;
		for (int len = 1; len <= maxops && !bad; len++) {
			int idx[8] = { 0 };
			for (;;) {
				op ops[9];
				for (int i = 0; i < len; i++)
					ops[i] = alphabet[idx[i]];
				ops[len] = (op){ OP_S, 0 };
				for (warm = 0; warm < 2 && !bad; warm++)
					bad = crash_all(ops, len + 1, seed);
				workloads++;
				if (bad)
					break;
				int d = len - 1;
				while (d >= 0 && ++idx[d] == na)
					idx[d--] = 0;
				if (d < 0)
					break;
			}
		}
		}
	}
	printf("crash_enum: %" PRIu64 " workloads, %" PRIu64 " crash states checked (%" PRIu64
	    " of them after a second crash during recovery, %" PRIu64 " of which hit a recovery write), "
	    "%d violations (seed %" PRIu64 ")\n",
	    workloads, checked, nested_checked, nested_crashed, bad, seed);
	return bad ? 1 : 0;
}
