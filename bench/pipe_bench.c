/*
 * pipe_bench -- the sync pipeline (lib/engine/pipe.c) against the sync
 * thread alone, in the same run: a volume is written sequentially in
 * 1 MiB writes and synced, in-process, once with sync_threads = none and
 * once with the default (one worker per core), alternating the two
 * --rounds times on fresh pools in --dir. Reported per configuration:
 * the median MB/s of write + sync (writers wait on dirty bytes as usual,
 * so a slow sync slows the writer), the median process CPU per MB, and
 * the ratio of the pipeline's MB/s to the sync thread's. A first run,
 * not counted, warms the buffer pool.
 *
 * Configurations: 4K blocks, lz4 (the default volume: a 4 KiB block is
 * never stored compressed, so the per-block work is the checksum); 64K
 * blocks, lz4; 64K blocks, zstd. Data: text-like and compressible
 * (words drawn from a small vocabulary by a seeded generator, about 2-3x
 * with lz4), with every 8th block incompressible and every 16th zero.
 *
 *   pipe_bench [--dir DIR] [--size-mb N] [--rounds N]
 */
#include <getopt.h>
#include <inttypes.h>
#include <errno.h>
#include <sys/resource.h>
#include <unistd.h>

#define BENCH_NAME "pipe_bench"
#include "bench.h"

static char dir[512] = "/var/tmp";

static void
fill_text(uint8_t *b, size_t n)
{
	static const char *words[] = { "the ", "block ", "pointer ", "txg ", "volume ", "sync ", "of ",
		"a ", "pool ", "checksum ", "and ", "data ", "write ", "to ", "copy-on-write ", "tree\n" };
	size_t o = 0;
	while (o < n) {
		const char *w = words[xr() % 16];
		size_t l = strlen(w);
		if (o + l > n)
			l = n - o;
		memcpy(b + o, w, l);
		o += l;
	}
}

static double
cpu_now(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	    ru.ru_stime.tv_usec / 1e6;
}

/* One measurement: MB/s of writing size_mb and syncing; *cpu_ms_mb gets process CPU per MB. */
static double
run(uint32_t bs, int comp, int threads, uint64_t size_mb, const uint8_t *data, double *cpu_ms_mb)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/pipe_bench.%d.vdev", dir, (int)getpid());
	unlink(path);
	const char *paths[1] = { path };
	ce_pool_opts o;
	memset(&o, 0, sizeof(o));
	o.vdev_size = size_mb * 2 * (1ull << 20) + (256ull << 20);
	o.sync_threads = threads;
	ce_pool *p;
	int err = ce_pool_create("pb", paths, 1, &o, &p);
	if (err != 0)
		die("pool create", err);
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.volblocksize = bs;
	pr.compress = comp;
	if ((err = ce_vol_create(p, "v", size_mb << 20, &pr)) != 0)
		die("vol create", err);
	ce_vol *h;
	if ((err = ce_vol_open(p, "v", &h)) != 0)
		die("vol open", err);
	double c0 = cpu_now(), t0 = now();
	for (uint64_t m = 0; m < size_mb; m++)
		if ((err = ce_vol_write(h, data + (m % 64) * (1u << 20), 1u << 20, m << 20)) != 0)
			die("write", err);
	if ((err = ce_pool_sync(p)) != 0)
		die("sync", err);
	double t = now() - t0, c = cpu_now() - c0;
	ce_vol_close(h);
	if ((err = ce_pool_export(p)) != 0)
		die("export", err);
	unlink(path);
	*cpu_ms_mb = c * 1000 / (double)size_mb;
	return (double)size_mb * 1.048576 / t;
}

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double
median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(double), cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int
main(int argc, char **argv)
{
	uint64_t size_mb = 512;
	int rounds = 3;
	static const struct option lo[] = { { "dir", 1, NULL, 'd' }, { "size-mb", 1, NULL, 's' },
		{ "rounds", 1, NULL, 'r' }, { "help", 0, NULL, 'h' }, { NULL, 0, NULL, 0 } };
	int ch;
	while ((ch = getopt_long(argc, argv, "d:s:r:h", lo, NULL)) != -1) {
		switch (ch) {
		case 'd':
			snprintf(dir, sizeof(dir), "%s", optarg);
			break;
		case 's':
			size_mb = strtoull(optarg, NULL, 10);
			break;
		case 'r':
			rounds = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: pipe_bench [--dir DIR] [--size-mb N] [--rounds N]\n");
			return ch == 'h' ? 0 : 2;
		}
	}
	if (size_mb == 0 || rounds < 1 || rounds > 99) {
		fprintf(stderr, "pipe_bench: --size-mb must be > 0 and --rounds 1 to 99\n");
		return 2;
	}
	/* 64 MiB of data, reused: blocks differ (the generator runs on), kinds by position */
	uint8_t *data = malloc(64u << 20);
	if (data == NULL)
		die("malloc", -ENOMEM);
	for (size_t off = 0; off < (64u << 20); off += 65536) {
		size_t k = off / 65536;
		if (k % 16 == 15)
			memset(data + off, 0, 65536);
		else if (k % 8 == 7)
			fill_random(data + off, 65536);
		else
			fill_text(data + off, 65536);
	}
	static const struct {
		const char *name;
		uint32_t bs;
		int comp;
	} cfg[] = { { "4K lz4", 4096, CE_COMPRESS_LZ4 }, { "64K lz4", 65536, CE_COMPRESS_LZ4 },
		{ "64K zstd", 65536, CE_COMPRESS_ZSTD } };
	printf("pipe_bench: %" PRIu64 " MiB sequential write + sync, in-process, %d rounds alternated, "
	    "pool in %s; %ld online cores\n", size_mb, rounds, dir, sysconf(_SC_NPROCESSORS_ONLN));
	/* a warm-up, not counted: the first run of a process pays for fresh pages (its buffers come from libc) */
	double warm;
	run(4096, CE_COMPRESS_LZ4, CE_SYNC_THREADS_NONE, size_mb, data, &warm);
	printf("%-10s %22s %22s %8s\n", "volume", "sync thread alone", "pipeline (default)", "ratio");
	for (size_t c = 0; c < sizeof(cfg) / sizeof(cfg[0]); c++) {
		double mb[2][99], cpu[2][99];
		for (int r = 0; r < rounds; r++)
			for (int k = 0; k < 2; k++) {
				int which = (r % 2) ? 1 - k : k; /* alternate which goes first */
				mb[which][r] = run(cfg[c].bs, cfg[c].comp, which ? 0 : CE_SYNC_THREADS_NONE, size_mb,
				    data, &cpu[which][r]);
			}
		double m0 = median(mb[0], rounds), m1 = median(mb[1], rounds);
		double c0 = median(cpu[0], rounds), c1 = median(cpu[1], rounds);
		printf("%-10s %9.0f MB/s %5.2f ms/MB %9.0f MB/s %5.2f ms/MB %7.2fx\n", cfg[c].name, m0, c0, m1, c1,
		    m1 / m0);
	}
	free(data);
	return 0;
}
