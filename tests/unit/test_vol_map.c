/*
 * test_vol_map -- the allocation map: holes and data, merged into extents,
 * across dirty state and the committed tree, partial first and last
 * blocks, the extent limit, and trims punching holes.
 */
#include "t.h"

static void
expect(ce_vol *v, uint64_t off, uint64_t len, size_t max, const ce_extent *want, size_t nwant)
{
	ce_extent got[16];
	size_t n = 99;
	OK(ce_vol_map(v, off, len, got, max, &n));
	if (n != nwant)
		fprintf(stderr, "map %" PRIu64 "+%" PRIu64 ": %zu extents, want %zu\n", off, len, n, nwant);
	CHECK(n == nwant);
	for (size_t i = 0; i < n; i++) {
		if (got[i].offset != want[i].offset || got[i].length != want[i].length || got[i].flags != want[i].flags)
			fprintf(stderr, "extent %zu: %" PRIu64 "+%" PRIu64 " flags %u, want %" PRIu64 "+%" PRIu64 " flags %u\n",
			    i, got[i].offset, got[i].length, got[i].flags, want[i].offset, want[i].length, want[i].flags);
		CHECK(got[i].offset == want[i].offset && got[i].length == want[i].length && got[i].flags == want[i].flags);
	}
}

int
main(void)
{
	t_tmpdir();
	const char *path = t_path("pool");
	ce_pool_opts o = { 0 };
	o.vdev_size = 64ull << 20;
	ce_pool *p;
	OK(ce_pool_create("map", &path, 1, &o, &p));
	const uint64_t M = 1 << 20;
	OK(ce_vol_create(p, "v", 8 * M, NULL));
	ce_vol *v;
	OK(ce_vol_open(p, "v", &v));
	const unsigned H = CE_EXTENT_HOLE;
	/* empty volume: one hole */
	expect(v, 0, 8 * M, 16, (ce_extent[]){ { 0, 8 * M, H } }, 1);
	uint8_t *buf = malloc(M);
	t_fill(buf, M, 1);
	OK(ce_vol_write(v, buf, M, 2 * M)); /* dirty */
	expect(v, 0, 8 * M, 16, (ce_extent[]){ { 0, 2 * M, H }, { 2 * M, M, 0 }, { 3 * M, 5 * M, H } }, 3);
	OK(ce_pool_sync(p)); /* now in the tree */
	expect(v, 0, 8 * M, 16, (ce_extent[]){ { 0, 2 * M, H }, { 2 * M, M, 0 }, { 3 * M, 5 * M, H } }, 3);
	/* unaligned start and end */
	expect(v, 2 * M - 100, M + 300, 16,
	    (ce_extent[]){ { 2 * M - 100, 100, H }, { 2 * M, M, 0 }, { 3 * M, 200, H } }, 3);
	/* the extent limit: report only what fits */
	expect(v, 0, 8 * M, 2, (ce_extent[]){ { 0, 2 * M, H }, { 2 * M, M, 0 } }, 2);
	/* trim a hole into the middle (partly dirty, partly committed) */
	OK(ce_vol_trim(v, 2 * M + 4096 * 10, 4096 * 100));
	expect(v, 2 * M, M, 16,
	    (ce_extent[]){ { 2 * M, 40960, 0 }, { 2 * M + 40960, 409600, H }, { 2 * M + 450560, M - 450560, 0 } }, 3);
	OK(ce_pool_sync(p));
	expect(v, 2 * M, M, 16,
	    (ce_extent[]){ { 2 * M, 40960, 0 }, { 2 * M + 40960, 409600, H }, { 2 * M + 450560, M - 450560, 0 } }, 3);
	/* out of range */
	ce_extent e[2];
	size_t n;
	CHECK_ERR(ce_vol_map(v, 8 * M, 1, e, 2, &n), -EINVAL);
	free(buf);
	ce_vol_close(v);
	OK(ce_pool_export(p));
	printf("ok\n");
	return 0;
}
