/*
 * test_badpool -- files that are not (whole, healthy) cask vdevs are
 * refused on import with a clear message, and are never written to:
 * empty, truncated, random bytes, a copy with a changed pool GUID (label
 * checksums then fail), a copy whose labels were re-sealed with another
 * GUID (its uberblocks then do not belong), vdevs of two pools given
 * together, a vdev given twice, a missing vdev, and create over an
 * existing vdev.
 */
#include <fcntl.h>

#include "t.h"
#include "label.h"

/* Import must fail with `err` and a message containing `msg`, leaving the files unchanged. */
static void
refused(const char *const *paths, unsigned n, int err, const char *msg)
{
	uint8_t before[8][32], after[32];
	for (unsigned i = 0; i < n; i++)
		t_file_digest(paths[i], before[i]);
	ce_pool *p = NULL;
	ce_pool_opts o = { 0 };
	int r = ce_pool_import(paths, n, &o, &p);
	if (r != err || strstr(ce_errmsg(), msg) == NULL) {
		fprintf(stderr, "import of %s: got %d '%s', want %d '...%s...'\n", paths[0], r, ce_errmsg(),
		    err, msg);
		CHECK(0);
	}
	printf("refused %-40s %s\n", strrchr(paths[n - 1], '/') + 1, ce_errmsg());
	for (unsigned i = 0; i < n; i++) {
		t_file_digest(paths[i], after);
		CHECK(memcmp(before[i], after, 32) == 0);
	}
}

static void
copy_file(const char *from, const char *to)
{
	char cmd[1200];
	snprintf(cmd, sizeof(cmd), "cp --sparse=always '%s' '%s'", from, to);
	CHECK(system(cmd) == 0);
}

static void
patch_labels(const char *path, uint64_t new_guid, int reseal)
{
	FILE *f = fopen(path, "r+b");
	CHECK(f != NULL);
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	for (int copy = 0; copy < 2; copy++) {
		label_phys lb;
		long off = copy == 0 ? 0 : size - (long)CE_LABEL_REGION;
		CHECK(fseek(f, off, SEEK_SET) == 0 && fread(&lb, 1, sizeof(lb), f) == sizeof(lb));
		lb.lb_pool_guid = new_guid;
		if (reseal)
			label_seal(&lb);
		CHECK(fseek(f, off, SEEK_SET) == 0 && fwrite(&lb, 1, sizeof(lb), f) == sizeof(lb));
	}
	fclose(f);
}

int
main(void)
{
	t_tmpdir();
	ce_pool_opts o = { 0 };
	o.vdev_size = 32ull << 20;
	ce_pool *p;
	const char *good = t_path("good");
	OK(ce_pool_create("good", &good, 1, &o, &p));
	OK(ce_vol_create(p, "v", 1 << 20, NULL));
	OK(ce_pool_export(p));
	const char *two[] = { t_path("two0"), t_path("two1") };
	OK(ce_pool_create("two", two, 2, &o, &p));
	OK(ce_pool_export(p));

	/* empty */
	const char *empty = t_path("empty");
	int fd = open(empty, O_CREAT | O_WRONLY, 0600);
	close(fd);
	refused(&empty, 1, -EINVAL, "empty file");

	/* truncated to half, and to a few KiB */
	const char *trunc = t_path("truncated");
	copy_file(good, trunc);
	CHECK(truncate(trunc, 16 << 20) == 0);
	refused(&trunc, 1, -EINVAL, "truncated");
	CHECK(truncate(trunc, 8192) == 0);
	refused(&trunc, 1, -EINVAL, "truncated");

	/* random bytes */
	const char *rnd = t_path("random");
	FILE *f = fopen(rnd, "wb");
	uint8_t *buf = malloc(1 << 20);
	for (int i = 0; i < 32; i++) {
		t_fill(buf, 1 << 20, (uint64_t)i + 1);
		CHECK(fwrite(buf, 1, 1 << 20, f) == 1 << 20);
	}
	fclose(f);
	free(buf);
	refused(&rnd, 1, -EINVAL, "not a cask vdev");

	/* a copy with its GUID changed in place: both label checksums fail */
	const char *guid = t_path("changed-guid");
	copy_file(good, guid);
	patch_labels(guid, 0x1122334455667788ull, 0);
	refused(&guid, 1, -EIO, "both labels damaged");

	/* labels re-sealed with another GUID: the uberblocks belong to the old pool */
	const char *resealed = t_path("resealed-guid");
	copy_file(good, resealed);
	patch_labels(resealed, 0x1122334455667788ull, 1);
	refused(&resealed, 1, -EIO, "no valid uberblock");

	/* vdevs of two different pools together */
	const char *mixed[] = { two[0], good };
	refused(mixed, 2, -EINVAL, "belongs to pool 'good'");
	/* the same vdev twice, and a vdev missing */
	const char *twice[] = { two[0], two[0] };
	refused(twice, 2, -EINVAL, "same vdev");
	refused(&two[1], 1, -ENXIO, "has 2 vdevs but 1 were given");

	/* creating a pool over an existing vdev is refused and leaves it intact */
	uint8_t d0[32], d1[32];
	t_file_digest(good, d0);
	CHECK_ERR(ce_pool_create("other", &good, 1, &o, &p), -EEXIST);
	CHECK(strstr(ce_errmsg(), "already a vdev of pool 'good'") != NULL);
	t_file_digest(good, d1);
	CHECK(memcmp(d0, d1, 32) == 0);

	/* a vdev file the file system cannot make that big: refused, and no file is left behind */
	char hugepath[512];
	snprintf(hugepath, sizeof(hugepath), "%s/huge.vdev", t_dir); /* not t_path: its 8 buffers are in use */
	const char *huge = hugepath;
	ce_pool_opts ho = o;
	ho.vdev_size = (uint64_t)INT64_MAX & ~4095ull;
	int herr = ce_pool_create("huge", &huge, 1, &ho, &p);
	CHECK(herr == -EFBIG || herr == -EINVAL);
	CHECK(strstr(ce_errmsg(), "cannot create") != NULL);
	CHECK(access(huge, F_OK) != 0 && errno == ENOENT);

	/* the healthy pools still import */
	OK(ce_pool_import(&good, 1, &o, &p));
	OK(ce_pool_export(p));
	OK(ce_pool_import(two, 2, &o, &p));
	/* and a second import of an open pool is refused (flock) */
	ce_pool *p2;
	CHECK_ERR(ce_pool_import(two, 2, &o, &p2), -EBUSY);
	OK(ce_pool_export(p));
	printf("ok\n");
	return 0;
}
