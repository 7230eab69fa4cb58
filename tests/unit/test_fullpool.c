/*
 * test_fullpool -- write until the pool is full: the writer gets ENOSPC,
 * the pool stays consistent (cask-debug check) and importable; trimming
 * (and destroying) frees space and makes the pool writable again.
 * Snapshots on the full pool are taken until their records would eat into
 * the second half of the reserve, then refused with ENOSPC, never
 * suspending the pool; freeing data lets them in again.
 */
#include "t.h"

/* Write incompressible 256K chunks from off until ENOSPC; returns bytes written. */
static uint64_t
fill(ce_vol *v, uint64_t off, uint64_t limit, uint64_t seed)
{
	uint8_t *buf = malloc(256 << 10);
	uint64_t done = 0;
	for (;;) {
		if (off + done + (256 << 10) > limit)
			break;
		t_fill(buf, 256 << 10, seed + done);
		int r = ce_vol_write(v, buf, 256 << 10, off + done);
		if (r == -ENOSPC) {
			CHECK(strstr(ce_errmsg(), "is full") != NULL);
			break;
		}
		OK(r);
		done += 256 << 10;
	}
	free(buf);
	return done;
}

static uint8_t *
small_buf(void)
{
	static uint8_t b[256 << 10];
	memset(b, 7, sizeof(b));
	return b;
}

int
main(int argc, char **argv)
{
	(void)argc;
	t_tmpdir();
	const char *path = t_path("pool");
	ce_pool_opts o = { 0 };
	o.vdev_size = 32ull << 20;
	ce_pool *p;
	OK(ce_pool_create("full", &path, 1, &o, &p));
	ce_pool_stat st0;
	OK(ce_pool_stat_get(p, &st0)); /* empty: MOS, bitmaps, intent log region */
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.compress = CE_COMPRESS_OFF;
	const uint64_t vsize = 128ull << 20; /* thin: four times the pool */
	OK(ce_vol_create(p, "v", vsize, &pr));
	ce_vol *v;
	OK(ce_vol_open(p, "v", &v));
	uint64_t w1 = fill(v, 0, vsize, 1);
	printf("first fill: %" PRIu64 " KiB before ENOSPC\n", w1 >> 10);
	CHECK(w1 >= (16ull << 20) && w1 < (32ull << 20));
	OK(ce_pool_sync(p));
	/* A second attempt is refused too; small writes fill the last gap and then stop too. */
	CHECK_ERR(ce_vol_write(v, small_buf(), 256 << 10, w1), -ENOSPC);
	uint8_t small[4096] = { 1 };
	uint64_t gap = 0;
	int r;
	while ((r = ce_vol_write(v, small, sizeof(small), w1 + (1 << 20) + gap)) == 0 && gap < (4 << 20))
		gap += sizeof(small);
	printf("then %" PRIu64 " KiB in 4K writes\n", gap >> 10);
	CHECK_ERR(r, -ENOSPC);
	/* Everything written before ENOSPC reads back. */
	uint8_t *buf = malloc(256 << 10), *want = malloc(256 << 10);
	for (uint64_t off = 0; off < w1; off += 256 << 10) {
		OK(ce_vol_read(v, buf, 256 << 10, off));
		t_fill(want, 256 << 10, 1 + off);
		CHECK(memcmp(buf, want, 256 << 10) == 0);
	}
	ce_vol_close(v);
	OK(ce_pool_export(p));
	CHECK(t_debug_check(argv[0], path, NULL) == 0);

	/* The full pool imports; trim works on it and gives the space back. */
	OK(ce_pool_import(&path, 1, &o, &p));
	OK(ce_vol_open(p, "v", &v));
	OK(ce_vol_trim(v, 0, w1 / 2));
	OK(ce_pool_sync(p));
	uint64_t w2 = fill(v, w1, vsize, 2);
	printf("after trimming %" PRIu64 " KiB: %" PRIu64 " KiB more written\n", (w1 / 2) >> 10, w2 >> 10);
	CHECK(w2 >= w1 / 4);
	ce_vol_close(v);
	OK(ce_pool_export(p));
	CHECK(t_debug_check(argv[0], path, NULL) == 0);

	/* Destroy works on a full pool and returns it to its empty allocation. */
	OK(ce_pool_import(&path, 1, &o, &p));
	ce_pool_stat st;
	/*
	 * Snapshots need no data space, but their records do: on the full pool they are taken until
	 * they would eat into the second half of the reserve, then refused with -ENOSPC (no name is
	 * wrong: errs stay 0), and the pool commits on, never suspended (alloc.c invariant 3).
	 */
	OK(ce_vol_create(p, "s", 1 << 20, &pr));
	OK(ce_pool_sync(p));
	OK(ce_pool_stat_get(p, &st));
	uint64_t before_snaps = st.allocated;
	unsigned taken = 0;
	char names[100][64];
	const char *nv[100];
	int errs[100];
	for (size_t batch = 100; batch > 0; batch /= 10) {
		for (;;) {
			for (size_t i = 0; i < batch; i++) {
				snprintf(names[i], sizeof(names[i]), "s@f%u", taken + (unsigned)i);
				nv[i] = names[i];
			}
			int e = ce_snap_create(p, nv, batch, errs);
			if (e != 0) {
				CHECK_ERR(e, -ENOSPC);
				CHECK(strstr(ce_errmsg(), "pool full is full") != NULL);
				for (size_t i = 0; i < batch; i++)
					CHECK(errs[i] == 0);
				break;
			}
			taken += (unsigned)batch;
			CHECK(taken < 20000);
		}
	}
	OK(ce_pool_sync(p));
	OK(ce_pool_stat_get(p, &st));
	CHECK(st.suspended == 0);
	printf("snapshots on the full pool: %u taken, then refused with ENOSPC; the pool commits on\n", taken);
	CHECK(taken >= 100);
	uint64_t records = st.allocated - before_snaps; /* the dataset records stay (their slots are reused) */
	const char *one[] = { "s@one" };
	CHECK_ERR(ce_snap_create(p, one, 1, errs), -ENOSPC);
	uint64_t full_alloc = st.allocated;
	OK(ce_vol_destroy(p, "v"));
	OK(ce_snap_create(p, one, 1, errs)); /* the data that went made room */
	OK(ce_pool_stat_get(p, &st));
	printf("destroy: allocated %" PRIu64 " KiB -> %" PRIu64 " KiB\n", full_alloc >> 10, st.allocated >> 10);
	CHECK(st.allocated < st0.allocated + (256 << 10) + records);
	OK(ce_vol_create(p, "w", vsize, &pr));
	OK(ce_vol_open(p, "w", &v));
	uint64_t w3 = fill(v, 0, vsize, 3);
	CHECK(w3 >= w1 - (1 << 20));
	ce_vol_close(v);
	OK(ce_pool_export(p));
	CHECK(t_debug_check(argv[0], path, NULL) == 0);
	free(buf);
	free(want);
	printf("ok\n");
	return 0;
}
