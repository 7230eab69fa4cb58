/*
 * test_log_prewrite -- the intent log region is allocated in the vdev
 * file before the log uses it (ilog.c invariant 8, vdev.c invariant 4):
 *   1. vdev_prewrite on a sparse file writes zeroes into the holes of the
 *      range it is given and nowhere else, keeps the data that is there,
 *      reports the bytes it wrote, and writes nothing the second time;
 *   2. ce_pool_create leaves the log region without a hole;
 *   3. a hole punched into the region of a pool whose log holds flushed
 *      records not yet committed (abandoned) is filled at import, and the
 *      replay still finds every flushed write.
 * A file system that does not report holes (SEEK_HOLE) skips the test.
 */
#include "ilog.h"
#include "pool_impl.h"
#include "t.h"
#include "util.h"
#include "vdev.h"

#include <fcntl.h>

#define MB (1ull << 20)
#define BS 4096u

/* 1 if [off, off+len) of fd has a hole (SEEK_HOLE finds one before its end). */
static int
has_hole(int fd, uint64_t off, uint64_t len)
{
	off_t h = lseek(fd, (off_t)off, SEEK_HOLE);
	CHECK(h >= 0);
	return (uint64_t)h < off + len;
}

static void
fill(uint8_t *b, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(seed + i * 7);
}

int
main(void)
{
	t_tmpdir();

	/* 1. vdev_prewrite on a plain sparse file */
	const char *fpath = t_path("sparse");
	int fd = open(fpath, O_RDWR | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0);
	CHECK(ftruncate(fd, (off_t)(8 * MB)) == 0);
	if (!has_hole(fd, 0, 8 * MB)) {
		printf("skip: this file system does not report holes (SEEK_HOLE)\n");
		return 77;
	}
	uint8_t *a = xmalloc(64 * 1024), *b = xmalloc(BS), *rd = xmalloc(8 * MB);
	fill(a, 64 * 1024, 1);
	fill(b, BS, 99);
	CHECK(pwrite(fd, a, 64 * 1024, (off_t)MB) == 64 * 1024);
	CHECK(pwrite(fd, b, BS, (off_t)(3 * MB + BS)) == BS);
	CHECK(fsync(fd) == 0);
	vdev vd = { .fd = fd };
	uint64_t wrote = 0;
	OK(vdev_prewrite(&vd, MB / 2, 4 * MB, &wrote));
	/* the range's holes: 4 MiB less what was data (the file system may round data to its blocks) */
	printf("prewrite: %" PRIu64 " KiB written into holes\n", wrote >> 10);
	CHECK(wrote >= 4 * MB - 128 * 1024 && wrote <= 4 * MB - 64 * 1024 - BS);
	CHECK(!has_hole(fd, MB / 2, 4 * MB));
	CHECK(has_hole(fd, 0, MB / 2));               /* before the range: untouched */
	CHECK(has_hole(fd, 4 * MB + MB / 2, 3 * MB)); /* after it: untouched */
	CHECK(pread(fd, rd, 8 * MB, 0) == (ssize_t)(8 * MB));
	CHECK(memcmp(rd + MB, a, 64 * 1024) == 0);
	CHECK(memcmp(rd + 3 * MB + BS, b, BS) == 0);
	for (uint64_t i = 0; i < 8 * MB; i++) {
		int in_a = i >= MB && i < MB + 64 * 1024, in_b = i >= 3 * MB + BS && i < 3 * MB + 2 * BS;
		if (!in_a && !in_b && rd[i] != 0) {
			fprintf(stderr, "FAIL: byte %" PRIu64 " is %u, not zero\n", i, rd[i]);
			return 1;
		}
	}
	OK(vdev_prewrite(&vd, MB / 2, 4 * MB, &wrote));
	CHECK(wrote == 0); /* nothing left to fill */
	vdev none = { .fd = -1 };
	OK(vdev_prewrite(&none, 0, MB, &wrote)); /* a wrapped backend: nothing to do */
	CHECK(wrote == 0);
	close(fd);
	printf("1. vdev_prewrite fills exactly the holes of its range, keeps the data\n");

	/* 2. pool create */
	const char *path = t_path("pool");
	ce_pool_opts o = { 0 };
	o.vdev_size = 256 * MB;
	o.txg_timeout_ms = 60000; /* txgs only when asked: the flushed writes stay in the log */
	ce_pool *p;
	OK(ce_pool_create("pw", &path, 1, &o, &p));
	uint64_t base = p->ilog.base, size = p->ilog.size;
	CHECK(p->ilog.enabled && size >= MB);
	CHECK(p->ilog.prewritten == size && p->ilog.prewrite_failed == 0);
	fd = open(path, O_RDONLY);
	CHECK(fd >= 0);
	CHECK(!has_hole(fd, base, size));
	CHECK(has_hole(fd, base + size, 64 * MB)); /* the data area stays sparse */
	close(fd);
	printf("2. create: the %" PRIu64 " KiB log region has no hole\n", size >> 10);

	/* 3. a hole in the region of an abandoned pool: filled at import, the replay intact */
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.compress = CE_COMPRESS_OFF;
	OK(ce_vol_create(p, "v", 16 * MB, &pr));
	OK(ce_pool_sync(p)); /* the log's epoch starts */
	ce_vol *v;
	OK(ce_vol_open(p, "v", &v));
	uint8_t *w = xmalloc_aligned(BS);
	for (int i = 0; i < 8; i++) {
		fill(w, BS, (uint8_t)(10 + i));
		OK(ce_vol_write(v, w, BS, (uint64_t)i * 3 * BS));
		OK(ce_vol_flush(v));
	}
	ce_pool_stat st;
	OK(ce_pool_stat_get(p, &st));
	CHECK(st.log_blocks > 0);
	uint64_t used = p->ilog.head_off;
	CHECK(used > 0 && used <= size - size / 4); /* the punch below misses every live block */
	ce_vol_close(v);
	ce_pool_abandon(p); /* the writes are only in the log */
	fd = open(path, O_RDWR);
	CHECK(fd >= 0);
	uint64_t punch = size / 4; /* the last quarter of the region: past the live blocks */
	CHECK(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(base + size - punch), (off_t)punch) == 0);
	CHECK(has_hole(fd, base, size));
	close(fd);
	OK(ce_pool_import(&path, 1, &o, &p));
	CHECK(p->ilog.prewritten == punch);
	OK(ce_pool_stat_get(p, &st));
	CHECK(st.log_replayed >= 8);
	fd = open(path, O_RDONLY);
	CHECK(fd >= 0);
	CHECK(!has_hole(fd, base, size));
	close(fd);
	OK(ce_vol_open(p, "v", &v));
	for (int i = 0; i < 8; i++) {
		fill(w, BS, (uint8_t)(10 + i));
		OK(ce_vol_read(v, rd, BS, (uint64_t)i * 3 * BS));
		CHECK(memcmp(rd, w, BS) == 0);
	}
	ce_vol_close(v);
	OK(ce_pool_export(p));
	printf("3. import: the punched %" PRIu64 " KiB filled, %" PRIu64 " records replayed intact\n", punch >> 10,
	    st.log_replayed);
	free(a);
	free(b);
	free(rd);
	free(w);
	return 0;
}
