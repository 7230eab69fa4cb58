/*
 * snap_bench -- snapshot costs in libcask-engine (issue 5's benchmark).
 *
 *   snap_bench [--dir DIR] [--max N] [--seconds S] [--json FILE]
 *
 * On a 256 MiB volume holding 64 MiB of random data (a pool file in DIR):
 *   create   snapshots one at a time up to --max (default 10000), one 4K
 *            write between them (so each snapshot differs); the median and
 *            99th percentile create latency around 1, 100, 1,000 and
 *            10,000 existing snapshots (windows of up to 50 creates)
 *   destroy  all of them, newest first; destroys per second, whole run
 *   clone    latency of 20 clone creates (median) and their destroys
 *   randwrite  4K random writes for --seconds with 0 snapshots and again
 *            with 100 (each snapshot taken after a 1% rewrite); IOPS
 *            including a final ce_pool_sync; the ratio
 * Every create and destroy returns after its txg commit (two device
 * flushes), as the API promises. Targets (issues 5 and 13): create median
 * <= 1 ms and flat to 10,000; destroy >= 1,000/s from 10,000; IOPS with
 * 100 snapshots >= 90% of none. On a loaded machine the process CPU per
 * create and destroy (printed too) says more than the wall clock.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BENCH_NAME "snap_bench"
#include "bench.h"

#define BS 4096u
static char dir[512] = "/var/tmp";
static long maxsnaps = 10000;
static int seconds = 5;

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* median and p99 of v[from, to) in ms */
static void
window(const double *v, long from, long to, double *med, double *p99)
{
	long n = to - from;
	double *c = malloc((size_t)n * sizeof(double));
	memcpy(c, v + from, (size_t)n * sizeof(double));
	qsort(c, (size_t)n, sizeof(double), cmp_d);
	*med = c[n / 2] * 1e3;
	*p99 = c[(n * 99) / 100 >= n ? n - 1 : (n * 99) / 100] * 1e3;
	free(c);
}

/* CPU seconds of the whole process (the sync thread's work included): load on the machine does not inflate it */
static double
cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
randwrite(ce_pool *p, ce_vol *v, uint64_t nblocks, int secs)
{
	uint8_t *b = malloc(BS);
	uint64_t n = 0;
	double t0 = now(), end = t0 + secs;
	while (now() < end) {
		for (int k = 0; k < 256; k++) {
			fill_random(b, BS);
			int err = ce_vol_write(v, b, BS, (xr() % nblocks) * BS);
			if (err != 0)
				die("write", err);
			n++;
		}
	}
	int err = ce_pool_sync(p);
	if (err != 0)
		die("sync", err);
	double iops = (double)n / (now() - t0);
	free(b);
	return iops;
}

int
main(int argc, char **argv)
{
	const char *json = NULL;
	static const struct option lo[] = { { "dir", 1, NULL, 'd' }, { "max", 1, NULL, 'm' },
		{ "seconds", 1, NULL, 's' }, { "json", 1, NULL, 'j' }, { "help", 0, NULL, 'h' }, { 0, 0, 0, 0 } };
	int ch;
	while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		if (ch == 'd')
			snprintf(dir, sizeof(dir), "%s", optarg);
		else if (ch == 'm')
			maxsnaps = atol(optarg);
		else if (ch == 's')
			seconds = atoi(optarg);
		else if (ch == 'j')
			json = optarg;
		else {
			printf("usage: snap_bench [--dir DIR] [--max N] [--seconds S] [--json FILE]\n");
			return ch == 'h' ? 0 : 2;
		}
	}
	if (maxsnaps < 1 || maxsnaps > 100000 || seconds < 1)
		die("bad --max or --seconds", EINVAL);
	char path[600];
	snprintf(path, sizeof(path), "%s/snap_bench.%d.cask", dir, (int)getpid());
	unlink(path);
	ce_pool_opts o = { 0 };
	o.vdev_size = 2ull << 30;
	ce_pool *p;
	const char *pp = path;
	int err = ce_pool_create("sbench", &pp, 1, &o, &p);
	if (err != 0)
		die("pool create", err);
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.compress = CE_COMPRESS_OFF;
	const uint64_t vsize = 256ull << 20, nblocks = vsize / BS;
	if ((err = ce_vol_create(p, "v", vsize, &pr)) != 0)
		die("vol create", err);
	ce_vol *v;
	if ((err = ce_vol_open(p, "v", &v)) != 0)
		die("open", err);
	uint8_t *big = malloc(1 << 20);
	for (uint64_t off = 0; off < (64ull << 20); off += 1 << 20) {
		fill_random(big, 1 << 20);
		if ((err = ce_vol_write(v, big, 1 << 20, off)) != 0)
			die("fill", err);
	}
	ce_pool_sync(p);

	/* randwrite with no snapshots */
	double iops0 = randwrite(p, v, nblocks, seconds);

	/* create latency */
	double *lat = malloc((size_t)maxsnaps * sizeof(double));
	double *cpu = malloc((size_t)maxsnaps * sizeof(double));
	uint8_t blk[BS];
	for (long i = 0; i < maxsnaps; i++) {
		fill_random(blk, BS);
		if ((err = ce_vol_write(v, blk, BS, (xr() % nblocks) * BS)) != 0)
			die("write", err);
		char nm[64];
		snprintf(nm, sizeof(nm), "v@s%ld", i);
		const char *names[1] = { nm };
		int errs[1];
		double t0 = now(), c0 = cpu_now();
		if ((err = ce_snap_create(p, names, 1, errs)) != 0)
			die("snap create", err);
		lat[i] = now() - t0;
		cpu[i] = cpu_now() - c0;
		if ((i + 1) % 1000 == 0)
			fprintf(stderr, "  %ld snapshots\n", i + 1);
	}
	long marks[4] = { 1, 100, 1000, 10000 };
	double med[4] = { 0 }, p99[4] = { 0 }, cmed[4] = { 0 }, cp99[4] = { 0 };
	printf("snapshot create latency (each commits its txg):\n");
	for (int m = 0; m < 4; m++) {
		if (marks[m] > maxsnaps)
			continue;
		long to = marks[m], from = to > 50 ? to - 50 : 0;
		window(lat, from, to, &med[m], &p99[m]);
		window(cpu, from, to, &cmed[m], &cp99[m]);
		printf("  around %6ld snapshots: median %.3f ms, p99 %.3f ms (process CPU: median %.3f ms)\n",
		    marks[m], med[m], p99[m], cmed[m]);
	}

	/* destroy all, newest first */
	double t0 = now(), dc0 = cpu_now();
	for (long i = maxsnaps - 1; i >= 0; i--) {
		char nm[64];
		snprintf(nm, sizeof(nm), "v@s%ld", i);
		if ((err = ce_snap_destroy(p, nm)) != 0)
			die("snap destroy", err);
	}
	double drate = (double)maxsnaps / (now() - t0);
	printf("snapshot destroy: %ld in %.2f s = %.0f per second (process CPU %.3f ms per destroy)\n",
	    maxsnaps, now() - t0, drate, (cpu_now() - dc0) * 1e3 / (double)maxsnaps);

	/* clones */
	const char *s0[1] = { "v@base" };
	int errs[1];
	if ((err = ce_snap_create(p, s0, 1, errs)) != 0)
		die("snap create", err);
	double cl[20];
	for (int i = 0; i < 20; i++) {
		char nm[64];
		snprintf(nm, sizeof(nm), "c%d", i);
		double t1 = now();
		if ((err = ce_vol_clone(p, "v@base", nm)) != 0)
			die("clone", err);
		cl[i] = now() - t1;
	}
	qsort(cl, 20, sizeof(double), cmp_d);
	printf("clone create: median %.3f ms\n", cl[10] * 1e3);
	for (int i = 0; i < 20; i++) {
		char nm[64];
		snprintf(nm, sizeof(nm), "c%d", i);
		if ((err = ce_vol_destroy(p, nm)) != 0)
			die("clone destroy", err);
	}
	if ((err = ce_snap_destroy(p, "v@base")) != 0)
		die("snap destroy", err);

	/* randwrite with 100 snapshots, each after a 1% rewrite */
	for (int i = 0; i < 100; i++) {
		for (uint64_t k = 0; k < nblocks / 100; k++) {
			fill_random(blk, BS);
			if ((err = ce_vol_write(v, blk, BS, (xr() % nblocks) * BS)) != 0)
				die("write", err);
		}
		char nm[64];
		snprintf(nm, sizeof(nm), "v@h%d", i);
		const char *names[1] = { nm };
		if ((err = ce_snap_create(p, names, 1, errs)) != 0)
			die("snap create", err);
	}
	double iops100 = randwrite(p, v, nblocks, seconds);
	printf("randwrite-4k: %.0f IOPS with no snapshots, %.0f with 100 (%.2fx)\n", iops0, iops100,
	    iops100 / iops0);
	printf("targets: create median <= 1 ms (%.3f ms at 1, %.3f ms at %ld); destroy >= 1000/s (%.0f/s); "
	    "IOPS with 100 snapshots >= 0.90x (%.2fx)\n", med[0], maxsnaps >= 10000 ? med[3] :
	    maxsnaps >= 1000 ? med[2] : med[1], maxsnaps >= 10000 ? 10000L : maxsnaps >= 1000 ? 1000L : 100L,
	    drate, iops100 / iops0);
	if (json != NULL) {
		FILE *f = fopen(json, "w");
		if (f != NULL) {
			fprintf(f, "{\"bench\": \"snap\", \"max\": %ld, \"create_ms_median\": [%.4f, %.4f, %.4f, %.4f], "
			    "\"create_ms_p99\": [%.4f, %.4f, %.4f, %.4f], \"destroy_per_s\": %.1f, "
			    "\"clone_ms_median\": %.4f, \"randwrite_iops\": [%.0f, %.0f]}\n", maxsnaps, med[0],
			    med[1], med[2], med[3], p99[0], p99[1], p99[2], p99[3], drate, cl[10] * 1e3, iops0, iops100);
			fclose(f);
		}
	}
	ce_vol_close(v);
	ce_pool_export(p);
	unlink(path);
	free(lat);
	free(cpu);
	free(big);
	return 0;
}
