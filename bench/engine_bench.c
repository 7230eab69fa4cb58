/*
 * engine_bench -- in-process throughput of libcask-engine beside the same
 * IO done with pread/pwrite on a plain file, measured in the same run on
 * the same filesystem.
 *
 *   engine_bench [--dir DIR] [--size-mb N] [--ops N] [--json FILE] [--bs-sweep]
 *
 * Workloads (single thread, one IO at a time, as an application issues them):
 *   randwrite-4k   N random 4 KiB writes, then make them durable
 *                  (engine: ce_pool_sync; file: fdatasync)
 *   seqwrite-1m    the whole volume in 1 MiB writes, then durable
 *   randread-4k-cold  N random 4 KiB reads with nothing cached
 *                  (engine: freshly imported; file: O_DIRECT)
 *   randread-4k-cached  the same reads again with a warm cache
 *                  (engine: its block cache; file: the page cache)
 *   seqread-1m     the whole volume in 1 MiB reads, cold, right after seqwrite
 *   seqread-1m-aged  the same after the random writes (copy-on-write has
 *                  scattered the overwritten blocks; the file has not)
 * The plain file is measured twice where it matters: buffered (the page
 * cache absorbs and sorts the writes; fdatasync at the end) and O_DIRECT
 * (every write goes to the device). Data is incompressible, so lz4 (the
 * default) is tried on every block and stores none compressed.
 * --bs-sweep also measures the engine at volblocksize 4K, 16K, 64K (the
 * measurement behind the default, see docs/ARCHITECTURE.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BENCH_NAME "engine_bench"
#include "bench.h"

static char dir[512] = "/var/tmp";
static uint64_t vol_size = 1ull << 30;
static uint64_t nops = 100000;

typedef struct result {
	const char *name;
	double file_buf, file_direct, engine; /* MB/s */
	double iops_scale;                    /* bytes per op, for IOPS */
} result;

static uint64_t *offsets;

static void
make_offsets(uint64_t seed)
{
	rs = seed;
	for (uint64_t i = 0; i < nops; i++)
		offsets[i] = (xr() % (vol_size / 4096)) * 4096;
}

/* ---- plain file ---- */

static int
file_open(const char *path, int direct)
{
	int fd = open(path, O_RDWR | O_CREAT | (direct ? O_DIRECT : 0), 0600);
	if (fd < 0)
		die(path, errno);
	return fd;
}

static void
drop_page_cache(int fd)
{
	fdatasync(fd);
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
}

static double
file_seqwrite(const char *path, int direct, uint8_t *buf)
{
	unlink(path);
	int fd = file_open(path, direct);
	double t = now();
	for (uint64_t off = 0; off < vol_size; off += 1 << 20)
		if (pwrite(fd, buf + (off % (16u << 20)), 1 << 20, (off_t)off) != 1 << 20)
			die("pwrite", errno);
	if (fdatasync(fd) != 0)
		die("fdatasync", errno);
	t = now() - t;
	close(fd);
	return (double)vol_size / t / 1e6;
}

static double
file_randwrite(const char *path, int direct, uint8_t *buf)
{
	int fd = file_open(path, direct);
	drop_page_cache(fd);
	double t = now();
	for (uint64_t i = 0; i < nops; i++)
		if (pwrite(fd, buf + (i % 4096) * 4096, 4096, (off_t)offsets[i]) != 4096)
			die("pwrite", errno);
	if (fdatasync(fd) != 0)
		die("fdatasync", errno);
	t = now() - t;
	close(fd);
	return (double)nops * 4096 / t / 1e6;
}

static double
file_randread(const char *path, int direct, int drop, uint8_t *buf)
{
	int fd = file_open(path, direct);
	if (drop)
		drop_page_cache(fd);
	double t = now();
	for (uint64_t i = 0; i < nops; i++)
		if (pread(fd, buf, 4096, (off_t)offsets[i]) != 4096)
			die("pread", errno);
	t = now() - t;
	close(fd);
	return (double)nops * 4096 / t / 1e6;
}

static double
file_seqread(const char *path, uint8_t *buf)
{
	int fd = file_open(path, 1);
	double t = now();
	for (uint64_t off = 0; off < vol_size; off += 1 << 20)
		if (pread(fd, buf, 1 << 20, (off_t)off) != 1 << 20)
			die("pread", errno);
	t = now() - t;
	close(fd);
	return (double)vol_size / t / 1e6;
}

/* ---- engine ---- */

typedef struct eng {
	char path[600];
	ce_pool *p;
	ce_vol *v;
	ce_pool_opts o;
} eng;

static void
eng_create(eng *e, uint32_t bs)
{
	snprintf(e->path, sizeof(e->path), "%s/engine_bench.vdev", dir);
	unlink(e->path);
	memset(&e->o, 0, sizeof(e->o));
	e->o.vdev_size = vol_size * 2 + (256ull << 20);
	e->o.cache_bytes = 512ull << 20;
	int err = ce_pool_create("bench", (const char *const *)&(const char *){ e->path }, 1, &e->o, &e->p);
	if (err)
		die("pool create", err);
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.volblocksize = bs;
	if ((err = ce_vol_create(e->p, "v", vol_size, &pr)) || (err = ce_vol_open(e->p, "v", &e->v)))
		die("vol create", err);
}

static void
eng_reimport(eng *e)
{
	ce_vol_close(e->v);
	int err = ce_pool_export(e->p);
	const char *path = e->path;
	if (err || (err = ce_pool_import(&path, 1, &e->o, &e->p)) || (err = ce_vol_open(e->p, "v", &e->v)))
		die("reimport", err);
}

static void
eng_destroy(eng *e)
{
	ce_vol_close(e->v);
	ce_pool_export(e->p);
	unlink(e->path);
}

static double
eng_seqwrite(eng *e, uint8_t *buf)
{
	double t = now();
	for (uint64_t off = 0; off < vol_size; off += 1 << 20) {
		int err = ce_vol_write(e->v, buf + (off % (16u << 20)), 1 << 20, off);
		if (err)
			die("write", err);
	}
	int err = ce_pool_sync(e->p);
	if (err)
		die("sync", err);
	return (double)vol_size / (now() - t) / 1e6;
}

static double
eng_randwrite(eng *e, uint8_t *buf)
{
	double t = now();
	for (uint64_t i = 0; i < nops; i++) {
		int err = ce_vol_write(e->v, buf + (i % 4096) * 4096, 4096, offsets[i]);
		if (err)
			die("write", err);
	}
	int err = ce_pool_sync(e->p);
	if (err)
		die("sync", err);
	return (double)nops * 4096 / (now() - t) / 1e6;
}

static double
eng_randread(eng *e, uint8_t *buf)
{
	double t = now();
	for (uint64_t i = 0; i < nops; i++) {
		int err = ce_vol_read(e->v, buf, 4096, offsets[i]);
		if (err)
			die("read", err);
	}
	return (double)nops * 4096 / (now() - t) / 1e6;
}

static double
eng_seqread(eng *e, uint8_t *buf)
{
	double t = now();
	for (uint64_t off = 0; off < vol_size; off += 1 << 20) {
		int err = ce_vol_read(e->v, buf, 1 << 20, off);
		if (err)
			die("read", err);
	}
	return (double)vol_size / (now() - t) / 1e6;
}

static void
print_row(FILE *f, const result *r)
{
	double peer = r->file_buf > 0 ? r->file_buf : r->file_direct;
	fprintf(f, "%-20s %10.1f %10.1f %10.1f %8.0f %7.2fx %7.2fx\n", r->name, r->file_buf, r->file_direct,
	    r->engine, r->engine * 1e6 / r->iops_scale, r->file_buf > 0 ? r->engine / r->file_buf : 0.0,
	    r->file_direct > 0 ? r->engine / r->file_direct : (peer > 0 ? r->engine / peer : 0.0));
}

int
main(int argc, char **argv)
{
	const char *json = NULL;
	int sweep = 0;
	static const struct option lo[] = { { "dir", 1, NULL, 'd' }, { "size-mb", 1, NULL, 's' },
		{ "ops", 1, NULL, 'n' }, { "json", 1, NULL, 'j' }, { "bs-sweep", 0, NULL, 'b' },
		{ "help", 0, NULL, 'h' }, { 0, 0, 0, 0 } };
	int ch;
	while ((ch = getopt_long(argc, argv, "d:s:n:j:bh", lo, NULL)) != -1) {
		switch (ch) {
		case 'd': snprintf(dir, sizeof(dir), "%s", optarg); break;
		case 's': vol_size = strtoull(optarg, NULL, 10) << 20; break;
		case 'n': nops = strtoull(optarg, NULL, 10); break;
		case 'j': json = optarg; break;
		case 'b': sweep = 1; break;
		case 'h':
			printf("usage: engine_bench [--dir DIR] [--size-mb N] [--ops N] [--json FILE] [--bs-sweep]\n");
			return 0;
		default: return 2;
		}
	}
	if (vol_size < (64ull << 20) || nops == 0) {
		fprintf(stderr, "engine_bench: --size-mb must be at least 64 and --ops positive\n");
		return 2;
	}
	uint8_t *wbuf, *rbuf;
	if (posix_memalign((void **)&wbuf, 4096, 17u << 20) || posix_memalign((void **)&rbuf, 4096, 1u << 20))
		die("memory", ENOMEM);
	rs = 12345;
	fill_random(wbuf, 17u << 20);
	offsets = malloc(nops * sizeof(uint64_t));
	char fpath[600];
	snprintf(fpath, sizeof(fpath), "%s/engine_bench.file", dir);

	printf("engine_bench: volume %" PRIu64 " MiB, %" PRIu64 " random ops, dir %s\n", vol_size >> 20, nops, dir);
	result r[6];
	memset(r, 0, sizeof(r));
	r[0] = (result){ "seqwrite-1m", 0, 0, 0, 1 << 20 };
	r[1] = (result){ "randwrite-4k", 0, 0, 0, 4096 };
	r[2] = (result){ "randread-4k-cold", 0, 0, 0, 4096 };
	r[3] = (result){ "randread-4k-cached", 0, 0, 0, 4096 };
	r[4] = (result){ "seqread-1m", 0, 0, 0, 1 << 20 };
	r[5] = (result){ "seqread-1m-aged", 0, 0, 0, 1 << 20 };

	/* plain file */
	r[0].file_buf = file_seqwrite(fpath, 0, wbuf);
	r[0].file_direct = file_seqwrite(fpath, 1, wbuf);
	r[4].file_direct = file_seqread(fpath, rbuf);
	make_offsets(1);
	r[1].file_buf = file_randwrite(fpath, 0, wbuf);
	r[1].file_direct = file_randwrite(fpath, 1, wbuf);
	make_offsets(2);
	r[2].file_direct = file_randread(fpath, 1, 1, rbuf);
	file_randread(fpath, 0, 1, rbuf); /* warm the page cache */
	r[3].file_buf = file_randread(fpath, 0, 0, rbuf);
	r[5].file_direct = file_seqread(fpath, rbuf);
	unlink(fpath);

	/* engine, default volblocksize */
	eng e;
	eng_create(&e, 0);
	r[0].engine = eng_seqwrite(&e, wbuf);
	eng_reimport(&e);
	r[4].engine = eng_seqread(&e, rbuf);
	make_offsets(1);
	r[1].engine = eng_randwrite(&e, wbuf);
	eng_reimport(&e);
	make_offsets(2);
	r[2].engine = eng_randread(&e, rbuf);
	r[3].engine = eng_randread(&e, rbuf);
	eng_reimport(&e);
	r[5].engine = eng_seqread(&e, rbuf);
	ce_pool_stat st;
	ce_pool_stat_get(e.p, &st);
	eng_destroy(&e);

	printf("\n%-20s %10s %10s %10s %8s %8s %8s\n", "workload (MB/s)", "file-buf", "file-direct", "cask",
	    "cask-iops", "vs-buf", "vs-direct");
	for (int i = 0; i < 6; i++)
		print_row(stdout, &r[i]);
	printf("\ntargets: randwrite-4k >= 2x plain file; seqwrite-1m and seqread-1m >= 0.8x plain file\n");
	printf("  randwrite-4k: %.2fx buffered+fdatasync, %.2fx O_DIRECT\n", r[1].engine / r[1].file_buf,
	    r[1].engine / r[1].file_direct);
	printf("  seqwrite-1m:  %.2fx buffered+fdatasync, %.2fx O_DIRECT\n", r[0].engine / r[0].file_buf,
	    r[0].engine / r[0].file_direct);
	printf("  seqread-1m:   %.2fx O_DIRECT\n", r[4].engine / r[4].file_direct);

	double sw[3][3];
	static const uint32_t bss[3] = { 4096, 16384, 65536 };
	if (sweep) {
		printf("\nvolblocksize sweep (engine MB/s): %-8s %12s %12s %12s\n", "bs", "randwrite-4k", "seqwrite-1m", "seqread-1m");
		for (int b = 0; b < 3; b++) {
			eng_create(&e, bss[b]);
			sw[b][1] = eng_seqwrite(&e, wbuf);
			eng_reimport(&e);
			sw[b][2] = eng_seqread(&e, rbuf);
			make_offsets(1);
			sw[b][0] = eng_randwrite(&e, wbuf);
			eng_destroy(&e);
			printf("%34s %-8u %12.1f %12.1f %12.1f\n", "", bss[b], sw[b][0], sw[b][1], sw[b][2]);
		}
	}
	if (json != NULL) {
		FILE *f = fopen(json, "w");
		if (f == NULL)
			die(json, errno);
		fprintf(f, "{\n  \"bench\": \"engine\",\n  \"volume_mib\": %" PRIu64 ",\n  \"random_ops\": %" PRIu64 ",\n  \"results\": [\n",
		    vol_size >> 20, nops);
		for (int i = 0; i < 6; i++)
			fprintf(f, "    {\"workload\": \"%s\", \"file_buffered_mbs\": %.1f, \"file_direct_mbs\": %.1f, "
			    "\"cask_mbs\": %.1f}%s\n", r[i].name, r[i].file_buf, r[i].file_direct, r[i].engine, i < 5 ? "," : "");
		fprintf(f, "  ]");
		if (sweep) {
			fprintf(f, ",\n  \"volblocksize_sweep\": [\n");
			for (int b = 0; b < 3; b++)
				fprintf(f, "    {\"volblocksize\": %u, \"randwrite_4k_mbs\": %.1f, \"seqwrite_1m_mbs\": %.1f, "
				    "\"seqread_1m_mbs\": %.1f}%s\n", bss[b], sw[b][0], sw[b][1], sw[b][2], b < 2 ? "," : "");
			fprintf(f, "  ]");
		}
		fprintf(f, "\n}\n");
		fclose(f);
	}
	free(offsets);
	free(wbuf);
	free(rbuf);
	return 0;
}
