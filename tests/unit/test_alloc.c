/*
 * test_alloc -- the space allocator: runs are contiguous and disjoint,
 * frees are deferred until commit (unless born in the syncing txg),
 * charges respect the reserve, striping spreads across vdevs, and a
 * bitmap round-trips through alloc_load.
 */
#include "t.h"
#include "alloc.h"
#include "vdev.h"

int
main(void)
{
	alloc a;
	uint64_t ns[2] = { 4096, 2048 };
	alloc_init(&a, 2, ns);
	CHECK(a.total == 6144);
	CHECK(a.reserve == 256);
	uint8_t *owner = calloc(2 * 4096, 1);
	uint32_t vd;
	uint64_t off;
	int on[2] = { 0, 0 };
	/* allocate 8-sector runs until full; all disjoint and in range */
	int n = 0;
	while (alloc_alloc(&a, 8 * 4096, &vd, &off) == 0) {
		CHECK(vd < 2);
		CHECK(off >= VDEV_DATA_START && (off - VDEV_DATA_START) % 4096 == 0);
		uint64_t s = (off - VDEV_DATA_START) / 4096;
		CHECK(s + 8 <= ns[vd]);
		for (int k = 0; k < 8; k++) {
			CHECK(!owner[vd * 4096 + s + k]);
			owner[vd * 4096 + s + k] = 1;
			CHECK(alloc_test(&a, vd, s + k));
		}
		on[vd]++;
		n++;
	}
	CHECK(n == 6144 / 8);
	CHECK(on[0] == 512 && on[1] == 256);
	CHECK(alloc_used_sectors(&a) == 6144);
	CHECK_ERR(alloc_charge(&a, 1, 1), -ENOSPC);
	/* a deferred free is not reusable until commit */
	alloc_free(&a, 0, VDEV_DATA_START, 8 * 4096, 0);
	CHECK(!alloc_test(&a, 0, 0));
	CHECK_ERR(alloc_alloc(&a, 4096, &vd, &off), -ENOSPC);
	alloc_commit_done(&a);
	OK(alloc_alloc(&a, 8 * 4096, &vd, &off));
	CHECK(vd == 0 && off == VDEV_DATA_START);
	/* an immediate free (born in this txg) is reusable at once */
	alloc_free(&a, 0, VDEV_DATA_START, 8 * 4096, 1);
	OK(alloc_alloc(&a, 8 * 4096, &vd, &off));
	CHECK(vd == 0 && off == VDEV_DATA_START);
	/* a run needs contiguous sectors: free two separate sectors, ask for two */
	alloc_free(&a, 0, VDEV_DATA_START + 4096 * 100, 4096, 1);
	alloc_free(&a, 0, VDEV_DATA_START + 4096 * 200, 4096, 1);
	CHECK_ERR(alloc_alloc(&a, 2 * 4096, &vd, &off), -ENOSPC);
	OK(alloc_alloc(&a, 4096, &vd, &off));
	OK(alloc_alloc(&a, 4096, &vd, &off));
	/* round trip of the bitmap */
	alloc b;
	alloc_init(&b, 2, ns);
	OK(alloc_load(&b, 0, a.v[0].cur, a.v[0].sm_bytes));
	OK(alloc_load(&b, 1, a.v[1].cur, a.v[1].sm_bytes));
	CHECK(alloc_used_sectors(&b) == alloc_used_sectors(&a));
	/* a bitmap with bits past the end is damaged */
	uint64_t *bad = calloc(1, a.v[1].sm_bytes);
	bad[2048 / 64] = 1;
	CHECK_ERR(alloc_load(&b, 1, bad, a.v[1].sm_bytes), -EIO);
	free(bad);
	alloc_fini(&b);
	alloc_fini(&a);

	/* charges: writers may not eat the reserve; metadata may */
	uint64_t one[1] = { 1024 };
	alloc_init(&a, 1, one);
	CHECK(a.reserve == 256);
	OK(alloc_charge(&a, 700, 0));
	CHECK_ERR(alloc_charge(&a, 100, 0), -ENOSPC);
	OK(alloc_charge(&a, 68, 0));
	CHECK(alloc_free_sectors(&a) == 0);
	OK(alloc_charge(&a, 200, 1));
	alloc_uncharge(&a, 968);
	CHECK(alloc_free_sectors(&a) == 1024 - 256);
	alloc_fini(&a);
	free(owner);
	printf("ok\n");
	return 0;
}
