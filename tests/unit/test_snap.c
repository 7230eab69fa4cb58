/*
 * test_snap -- snapshots through the engine API: O(1) create (one or
 * several at one instant, all or none with per-name errors), read-only
 * reads of the old contents while the volume changes, the space a
 * snapshot alone holds (`used`) and the volume's usedbysnapshots and
 * written, destroy freeing exactly what only the snapshot held (dead
 * lists), persistence across export/import, and the refusals (write to a
 * snapshot, destroy a volume with snapshots, bad names). cask-debug check
 * (chain-aware) is clean at every stage; destroying everything returns the
 * pool to its empty allocation.
 */
#include "t.h"

#define BS 4096u
#define NB 64u

static void
fill_blocks(ce_vol *v, uint32_t first, uint32_t n, int tag)
{
	uint8_t *b = malloc((size_t)n * BS);
	for (uint32_t i = 0; i < n; i++)
		t_fill(b + (size_t)i * BS, BS, (uint64_t)tag * 1000 + first + i);
	OK(ce_vol_write(v, b, (size_t)n * BS, (uint64_t)first * BS));
	free(b);
}

/* 1 when block blk of v holds tag's pattern (tag 0: zeros). */
static int
holds(ce_vol *v, uint32_t blk, int tag)
{
	uint8_t got[BS], want[BS];
	OK(ce_vol_read(v, got, BS, (uint64_t)blk * BS));
	if (tag == 0)
		memset(want, 0, BS);
	else
		t_fill(want, BS, (uint64_t)tag * 1000 + blk);
	return memcmp(got, want, BS) == 0;
}

int
main(int argc, char **argv)
{
	(void)argc;
	t_tmpdir();
	const char *path = t_path("pool");
	ce_pool_opts o = { 0 };
	o.vdev_size = 64ull << 20;
	ce_pool *p;
	ce_vol *v, *s;
	ce_pool_stat st0, st;
	ce_vol_info vi;
	OK(ce_pool_create("sn", &path, 1, &o, &p));
	OK(ce_pool_stat_get(p, &st0));
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.compress = CE_COMPRESS_OFF;
	OK(ce_vol_create(p, "v", NB * BS, &pr));
	OK(ce_vol_create(p, "w", NB * BS, &pr));
	OK(ce_vol_open(p, "v", &v));
	fill_blocks(v, 0, NB, 1);
	OK(ce_pool_sync(p));
	OK(ce_vol_info_get(p, "v", &vi));
	uint64_t full = vi.used;
	CHECK(vi.written == full && vi.usedbysnapshots == 0 && vi.nsnapshots == 0);

	/* create: all at one instant, or none */
	const char *bad[] = { "v@a", "nosuch@b", "v@", "v@a", "w@ok" };
	int errs[5];
	CHECK_ERR(ce_snap_create(p, bad, 5, errs), -EINVAL);
	printf("bad batch: %s\n", ce_errmsg());
	CHECK(errs[0] == 0 && errs[1] == -ENOENT && errs[2] == -EINVAL && errs[3] == -EEXIST && errs[4] == 0);
	ce_snap_info *list;
	size_t n;
	OK(ce_snap_list(p, NULL, &list, &n));
	CHECK(n == 0);
	free(list);
	const char *good[] = { "v@s1", "w@s1" };
	OK(ce_snap_create(p, good, 2, errs));
	ce_snap_info i1 = t_snap_info(p, "v@s1"), iw = t_snap_info(p, "w@s1");
	CHECK(i1.txg == iw.txg);   /* one instant */
	CHECK(i1.referenced == full && i1.used == 0 && strcmp(i1.volume, "v") == 0);
	const char *again[] = { "v@s1" };
	CHECK_ERR(ce_snap_create(p, again, 1, errs), -EINVAL);
	CHECK(errs[0] == -EEXIST);

	/* the volume changes; the snapshot does not */
	fill_blocks(v, 0, NB / 2, 2);
	OK(ce_pool_sync(p));
	OK(ce_vol_open(p, "v@s1", &s));
	for (uint32_t b = 0; b < NB; b++) {
		CHECK(holds(s, b, 1));
		CHECK(holds(v, b, b < NB / 2 ? 2 : 1));
	}
	uint8_t blk[BS] = { 0 };
	CHECK_ERR(ce_vol_write(s, blk, BS, 0), -EROFS);
	CHECK_ERR(ce_vol_trim(s, 0, BS), -EROFS);
	ce_vol_close(s);
	i1 = t_snap_info(p, "v@s1");
	OK(ce_vol_info_get(p, "v", &vi));
	printf("after overwriting half: v@s1 used %" PRIu64 " referenced %" PRIu64 "; v used %" PRIu64
	    " written %" PRIu64 " usedbysnapshots %" PRIu64 "\n", i1.used, i1.referenced, vi.used,
	    vi.written, vi.usedbysnapshots);
	CHECK(i1.used >= (NB / 2) * BS && i1.used < (NB / 2) * BS + 65536);
	CHECK(vi.usedbysnapshots == i1.used && vi.nsnapshots == 1);
	CHECK(vi.written >= (NB / 2) * BS && vi.written < vi.referenced);
	/* used = usedbydataset + usedbysnapshots; usedbydataset: its tree (no origin to share with) */
	CHECK(vi.usedbydataset == vi.referenced && vi.used == vi.usedbydataset + vi.usedbysnapshots);
	CHECK(vi.referenced == i1.referenced);
	ce_vol_close(v);
	CHECK_ERR(ce_vol_destroy(p, "v"), -EBUSY);
	printf("destroy with snapshots: %s\n", ce_errmsg());
	CHECK(strstr(ce_errmsg(), "snapshot") != NULL);
	OK(ce_vol_open(p, "v", &v));
	CHECK_ERR(ce_vol_set(p, "v@s1", "sync", "always"), -EINVAL);
	CHECK_ERR(ce_snap_destroy(p, "v@nosuch"), -ENOENT);
	CHECK_ERR(ce_snap_destroy(p, "v"), -ENOENT);

	/* a second snapshot, a trim, then persistence */
	const char *s2[] = { "v@s2" };
	OK(ce_snap_create(p, s2, 1, errs));
	OK(ce_vol_trim(v, 0, 16 * BS));
	OK(ce_pool_sync(p));
	ce_vol_close(v);
	OK(ce_pool_export(p));
	CHECK(t_debug_check(argv[0], path, NULL) == 0);
	OK(ce_pool_import(&path, 1, &o, &p));
	OK(ce_vol_open(p, "v", &v));
	OK(ce_vol_open(p, "v@s2", &s));
	for (uint32_t b = 0; b < NB; b++) {
		CHECK(holds(s, b, b < NB / 2 ? 2 : 1));
		CHECK(holds(v, b, b < 16 ? 0 : b < NB / 2 ? 2 : 1));
	}
	ce_vol_close(s);
	OK(ce_vol_open(p, "v@s1", &s));
	for (uint32_t b = 0; b < NB; b++)
		CHECK(holds(s, b, 1));
	ce_vol_close(s);
	ce_snap_info i2 = t_snap_info(p, "v@s2");
	CHECK(i2.used >= 16 * BS);
	CHECK(t_snap_info(p, "v@s1").used == i1.used);

	/* rollback: to s2 (the newest) directly; to s1 only with -r (s2 goes) */
	fill_blocks(v, 40, 8, 3);
	ce_vol_close(v);
	OK(ce_pool_sync(p));
	CHECK_ERR(ce_vol_rollback(p, "v@s1", 0), -EEXIST);
	printf("rollback past a newer snapshot: %s\n", ce_errmsg());
	OK(ce_vol_open(p, "v", &v));
	CHECK_ERR(ce_vol_rollback(p, "v@s2", 0), -EBUSY); /* open */
	ce_vol_close(v);
	OK(ce_vol_rollback(p, "v@s2", 0));
	OK(ce_vol_open(p, "v", &v));
	for (uint32_t b = 0; b < NB; b++)
		CHECK(holds(v, b, b < NB / 2 ? 2 : 1));
	OK(ce_vol_info_get(p, "v", &vi));
	CHECK(vi.written == 0 && vi.nsnapshots == 2);
	fill_blocks(v, 0, 4, 4); /* writes after a rollback go on as usual */
	CHECK(holds(v, 0, 4) && holds(v, 4, 2));
	ce_vol_close(v);
	OK(ce_pool_export(p));
	CHECK(t_debug_check(argv[0], path, NULL) == 0);
	OK(ce_pool_import(&path, 1, &o, &p));
	OK(ce_vol_open(p, "v", &v));
	CHECK(holds(v, 0, 4) && holds(v, 5, 2) && holds(v, 40, 1));

	/* a clone of s2: writable, shares s2's blocks, keeps s2 alive */
	OK(ce_vol_clone(p, "v@s2", "c"));
	CHECK_ERR(ce_vol_clone(p, "v@s2", "c"), -EEXIST);
	CHECK_ERR(ce_vol_clone(p, "v@nosuch", "c2"), -ENOENT);
	OK(ce_vol_info_get(p, "c", &vi));
	CHECK(strcmp(vi.origin, "v@s2") == 0 && vi.written == 0);
	ce_vol *cl;
	OK(ce_vol_open(p, "c", &cl));
	for (uint32_t b = 0; b < NB; b++)
		CHECK(holds(cl, b, b < NB / 2 ? 2 : 1));
	fill_blocks(cl, 8, 8, 5);
	CHECK(holds(cl, 8, 5) && holds(v, 8, 2));
	ce_vol_close(cl);
	CHECK_ERR(ce_snap_destroy(p, "v@s2"), -EBUSY);
	printf("destroy an origin: %s\n", ce_errmsg());
	const char *cs[] = { "c@x" };
	OK(ce_snap_create(p, cs, 1, errs));
	OK(ce_vol_open(p, "c", &cl));
	fill_blocks(cl, 0, 4, 6);
	ce_vol_close(cl);
	OK(ce_pool_sync(p));
	ce_vol_close(v);
	OK(ce_pool_export(p));
	CHECK(t_debug_check(argv[0], path, NULL) == 0);
	OK(ce_pool_import(&path, 1, &o, &p));
	OK(ce_vol_open(p, "v", &v));
	OK(ce_vol_open(p, "c@x", &cl));
	CHECK(holds(cl, 8, 5) && holds(cl, 0, 2) && holds(cl, 40, 1));
	ce_vol_close(cl);
	OK(ce_snap_destroy(p, "c@x"));
	OK(ce_vol_destroy(p, "c"));
	OK(ce_pool_sync(p));
	ce_vol_close(v);
	OK(ce_pool_export(p));
	CHECK(t_debug_check(argv[0], path, NULL) == 0);
	OK(ce_pool_import(&path, 1, &o, &p));
	OK(ce_vol_open(p, "v", &v));
	for (uint32_t b = 0; b < 4; b++)
		CHECK(holds(v, b, 4));

	/* destroy s1: frees what only it held (the first half's old blocks) */
	OK(ce_pool_sync(p));
	i2 = t_snap_info(p, "v@s2");
	OK(ce_pool_stat_get(p, &st));
	uint64_t before = st.allocated;
	OK(ce_snap_destroy(p, "v@s1"));
	OK(ce_pool_sync(p));
	OK(ce_pool_stat_get(p, &st));
	printf("destroy v@s1 (used %" PRIu64 "): allocated %" PRIu64 " -> %" PRIu64 "\n", i1.used, before,
	    st.allocated);
	CHECK(before - st.allocated >= (NB / 2) * BS);
	OK(ce_vol_open(p, "v@s2", &s));
	for (uint32_t b = 0; b < NB; b++)
		CHECK(holds(s, b, b < NB / 2 ? 2 : 1));
	ce_vol_close(s);
	CHECK(t_snap_info(p, "v@s2").used == i2.used);
	/* snapshot rename (its volume stays) */
	CHECK_ERR(ce_snap_rename(p, "v@s2", "w@s2"), -EINVAL);
	CHECK_ERR(ce_snap_rename(p, "v@s2", "bad/name"), -EINVAL);
	CHECK_ERR(ce_snap_rename(p, "v@nosuch", "x"), -ENOENT);
	OK(ce_snap_rename(p, "v@s2", "renamed"));
	CHECK_ERR(ce_vol_open(p, "v@s2", &s), -ENOENT);
	OK(ce_snap_rename(p, "v@renamed", "v@s2"));
	/* rename carries snapshots along */
	ce_vol_close(v);
	OK(ce_vol_rename(p, "v", "v2"));
	OK(ce_vol_open(p, "v2@s2", &s));
	ce_vol_close(s);
	OK(ce_pool_export(p));
	CHECK(t_debug_check(argv[0], path, NULL) == 0);

	/* destroying everything returns the pool to its empty allocation */
	OK(ce_pool_import(&path, 1, &o, &p));
	OK(ce_snap_destroy(p, "v2@s2"));
	OK(ce_snap_destroy(p, "w@s1"));
	OK(ce_vol_destroy(p, "v2"));
	OK(ce_vol_destroy(p, "w"));
	OK(ce_pool_sync(p));
	OK(ce_pool_stat_get(p, &st));
	printf("everything destroyed: allocated %" PRIu64 " (empty pool: %" PRIu64 ")\n", st.allocated,
	    st0.allocated);
	CHECK(st.allocated <= st0.allocated + 65536);
	OK(ce_pool_export(p));
	CHECK(t_debug_check(argv[0], path, NULL) == 0);
	printf("ok\n");
	return 0;
}
