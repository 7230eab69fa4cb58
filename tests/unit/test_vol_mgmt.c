/*
 * test_vol_mgmt -- create, list, info, set, rename, resize (grow adds tree
 * levels, shrink needs the flag and frees what it cuts off), destroy
 * (refused while open; returns the pool to its empty allocation), and
 * the error for every bad argument. Everything persists across import.
 */
#include "t.h"

static uint64_t
allocated(ce_pool *p)
{
	ce_pool_stat st;
	OK(ce_pool_stat_get(p, &st));
	return st.allocated;
}

int
main(void)
{
	t_tmpdir();
	const char *path = t_path("pool");
	ce_pool_opts o = { 0 };
	o.vdev_size = 64ull << 20;
	ce_pool *p;
	OK(ce_pool_create("mgmt", &path, 1, &o, &p));
	uint64_t empty = allocated(p);

	/* bad arguments */
	CHECK_ERR(ce_vol_create(p, "", 1 << 20, NULL), -EINVAL);
	CHECK_ERR(ce_vol_create(p, "a/b", 1 << 20, NULL), -EINVAL);
	CHECK_ERR(ce_vol_create(p, "a@b", 1 << 20, NULL), -EINVAL);
	CHECK_ERR(ce_vol_create(p, "-x", 1 << 20, NULL), -EINVAL);
	CHECK_ERR(ce_vol_create(p, "x", 0, NULL), -EINVAL);
	CHECK_ERR(ce_vol_create(p, "x", 1000, NULL), -EINVAL);
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.volblocksize = 3000;
	CHECK_ERR(ce_vol_create(p, "x", 1 << 20, &pr), -EINVAL);
	pr.volblocksize = 256 << 10;
	CHECK_ERR(ce_vol_create(p, "x", 1 << 20, &pr), -EINVAL);
	pr.volblocksize = 65536;
	CHECK_ERR(ce_vol_create(p, "x", 65536 + 4096, &pr), -EINVAL);
	CHECK(strstr(ce_errmsg(), "multiple of the block size") != NULL);

	/* create with properties; list is sorted */
	pr.compress = CE_COMPRESS_ZSTD;
	pr.checksum = CE_CHECKSUM_SHA256;
	OK(ce_vol_create(p, "zeta", 1 << 20, &pr));
	OK(ce_vol_create(p, "alpha", 4096, NULL));
	ce_vol_info *list;
	size_t n;
	OK(ce_vol_list(p, &list, &n));
	CHECK(n == 2 && strcmp(list[0].name, "alpha") == 0 && strcmp(list[1].name, "zeta") == 0);
	CHECK(list[1].volblocksize == 65536 && list[1].compress == CE_COMPRESS_ZSTD &&
	    list[1].checksum == CE_CHECKSUM_SHA256 && list[1].size == 1 << 20);
	CHECK(list[0].volblocksize == CE_VOLBLOCKSIZE_DEFAULT && list[0].compress == CE_COMPRESS_LZ4);
	free(list);

	/* set */
	OK(ce_vol_set(p, "zeta", "compression", "off"));
	OK(ce_vol_set(p, "zeta", "checksum", "xxh128"));
	CHECK_ERR(ce_vol_set(p, "zeta", "compression", "gzip"), -EINVAL);
	CHECK_ERR(ce_vol_set(p, "zeta", "volblocksize", "4096"), -EINVAL);
	CHECK_ERR(ce_vol_set(p, "zeta", "nonsense", "1"), -EINVAL);
	CHECK_ERR(ce_vol_set(p, "nope", "compression", "off"), -ENOENT);

	/* a one-block volume (single-level tree) grows to many levels keeping its data */
	ce_vol *v;
	OK(ce_vol_open(p, "alpha", &v));
	uint8_t blk[4096], got[4096];
	t_fill(blk, 4096, 1);
	OK(ce_vol_write(v, blk, 4096, 0));
	OK(ce_pool_sync(p));
	OK(ce_vol_resize(p, "alpha", 1ull << 40, 0)); /* 1 TiB, thin */
	CHECK(ce_vol_size(v) == 1ull << 40);
	OK(ce_vol_read(v, got, 4096, 0));
	CHECK(memcmp(blk, got, 4096) == 0);
	OK(ce_vol_write(v, blk, 4096, (1ull << 40) - 4096));
	OK(ce_vol_write(v, blk, 4096, 1ull << 30));
	OK(ce_pool_sync(p));
	OK(ce_vol_read(v, got, 4096, (1ull << 40) - 4096));
	CHECK(memcmp(blk, got, 4096) == 0);
	/* shrink needs the flag, and discards what it cuts off */
	CHECK_ERR(ce_vol_resize(p, "alpha", 1 << 20, 0), -EINVAL);
	CHECK_ERR(ce_vol_resize(p, "alpha", 1000, CE_RESIZE_SHRINK), -EINVAL);
	ce_vol_info vi;
	OK(ce_vol_info_get(p, "alpha", &vi));
	uint64_t used_big = vi.used;
	OK(ce_vol_resize(p, "alpha", 1 << 20, CE_RESIZE_SHRINK));
	OK(ce_vol_info_get(p, "alpha", &vi));
	CHECK(vi.size == 1 << 20 && vi.used < used_big);
	CHECK_ERR(ce_vol_read(v, got, 4096, 1 << 20), -EINVAL);
	/* growing again shows zeros where the cut-off data was */
	OK(ce_vol_resize(p, "alpha", 2ull << 30, 0));
	OK(ce_vol_read(v, got, 4096, 1ull << 30));
	static const uint8_t zero[4096];
	CHECK(memcmp(got, zero, 4096) == 0);
	OK(ce_vol_read(v, got, 4096, 0));
	CHECK(memcmp(blk, got, 4096) == 0);

	/* rename keeps open handles working */
	CHECK_ERR(ce_vol_rename(p, "alpha", "zeta"), -EEXIST);
	CHECK_ERR(ce_vol_rename(p, "alpha", "bad/name"), -EINVAL);
	CHECK_ERR(ce_vol_rename(p, "nope", "x"), -ENOENT);
	OK(ce_vol_rename(p, "alpha", "beta"));
	OK(ce_vol_read(v, got, 4096, 0));
	CHECK(memcmp(blk, got, 4096) == 0);
	CHECK_ERR(ce_vol_open(p, "alpha", &v), -ENOENT);

	/* destroy: refused while open */
	CHECK_ERR(ce_vol_destroy(p, "beta"), -EBUSY);
	ce_vol_close(v);

	/* persistence of names and properties */
	OK(ce_pool_export(p));
	OK(ce_pool_import(&path, 1, &o, &p));
	OK(ce_vol_info_get(p, "zeta", &vi));
	CHECK(vi.compress == CE_COMPRESS_OFF && vi.checksum == CE_CHECKSUM_XXH128 && vi.volblocksize == 65536);
	OK(ce_vol_info_get(p, "beta", &vi));
	CHECK(vi.size == 2ull << 30);
	OK(ce_vol_open(p, "beta", &v));
	OK(ce_vol_read(v, got, 4096, 0));
	CHECK(memcmp(blk, got, 4096) == 0);
	ce_vol_close(v);

	/* many volumes (the dataset table grows past its first 32 slots) */
	char name[32];
	for (int i = 0; i < 70; i++) {
		snprintf(name, sizeof(name), "many%02d", i);
		OK(ce_vol_create(p, name, 64 << 10, NULL));
		OK(ce_vol_open(p, name, &v));
		memset(blk, i, sizeof(blk));
		OK(ce_vol_write(v, blk, 4096, 4096));
		ce_vol_close(v);
	}
	OK(ce_pool_export(p));
	OK(ce_pool_import(&path, 1, &o, &p));
	OK(ce_vol_list(p, &list, &n));
	CHECK(n == 72);
	free(list);
	for (int i = 0; i < 70; i++) {
		snprintf(name, sizeof(name), "many%02d", i);
		OK(ce_vol_open(p, name, &v));
		OK(ce_vol_read(v, got, 4096, 4096));
		CHECK(got[0] == i && got[4095] == i);
		ce_vol_close(v);
		OK(ce_vol_destroy(p, name));
	}
	CHECK_ERR(ce_vol_destroy(p, "many00"), -ENOENT);
	OK(ce_vol_destroy(p, "beta"));
	OK(ce_vol_destroy(p, "zeta"));
	OK(ce_vol_list(p, &list, &n));
	CHECK(n == 0);
	free(list);
	/* the pool is back to its empty allocation (MOS grew by one block for the table) */
	printf("allocated: empty pool %" PRIu64 ", after destroying everything %" PRIu64 "\n", empty, allocated(p));
	CHECK(allocated(p) <= empty + 2 * 16384);
	OK(ce_pool_export(p));
	printf("ok\n");
	return 0;
}
