/*
 * test_snap_ops -- the snapshot operations beyond create/destroy, through
 * the engine API: holds (a held snapshot cannot be destroyed, not even by
 * rollback -r; hold and release are all or none with per-name errors;
 * holds survive export/import and follow a renamed snapshot), recursive
 * volume destroy (-r: with its snapshots; -R: with clones too, all in
 * one txg), and promote (a clone takes over its origin's older
 * snapshots; the former parent becomes a clone; data and space stay
 * exact). cask-debug check is clean after every stage, and destroying
 * everything returns the pool to its empty allocation.
 */
#include "t.h"

#define BS 4096u
#define NB 64u

static const char *argv0;
static const char *path;
static ce_pool_opts o;

static void
fill_blocks(ce_pool *p, const char *vol, uint32_t first, uint32_t n, int tag)
{
	ce_vol *v;
	OK(ce_vol_open(p, vol, &v));
	uint8_t *b = malloc((size_t)n * BS);
	for (uint32_t i = 0; i < n; i++)
		t_fill(b + (size_t)i * BS, BS, (uint64_t)tag * 1000 + first + i);
	OK(ce_vol_write(v, b, (size_t)n * BS, (uint64_t)first * BS));
	free(b);
	ce_vol_close(v);
}

/* 1 when blocks [first, first + n) of dataset name hold tag's pattern (tag 0: zeros). */
static int
holds_data(ce_pool *p, const char *name, uint32_t first, uint32_t n, int tag)
{
	ce_vol *v;
	OK(ce_vol_open(p, name, &v));
	uint8_t got[BS], want[BS];
	int ok = 1;
	for (uint32_t b = first; b < first + n && ok; b++) {
		OK(ce_vol_read(v, got, BS, (uint64_t)b * BS));
		if (tag == 0)
			memset(want, 0, BS);
		else
			t_fill(want, BS, (uint64_t)tag * 1000 + b);
		ok = memcmp(got, want, BS) == 0;
	}
	ce_vol_close(v);
	return ok;
}

static void
snap(ce_pool *p, const char *name)
{
	int e;
	OK(ce_snap_create(p, &name, 1, &e));
}

/* Export, cask-debug check, import. */
static ce_pool *
recheck(ce_pool *p)
{
	OK(ce_pool_export(p));
	CHECK(t_debug_check(argv0, path, NULL) == 0);
	OK(ce_pool_import(&path, 1, &o, &p));
	return p;
}

static ce_pool *
test_holds(ce_pool *p)
{
	int errs[4];
	OK(ce_vol_create(p, "h", NB * BS, NULL));
	fill_blocks(p, "h", 0, NB, 1);
	snap(p, "h@a");
	fill_blocks(p, "h", 0, 8, 2);
	snap(p, "h@b");

	const char *ab[] = { "h@a", "h@b" };
	OK(ce_snap_hold(p, "backup", ab, 2, errs));
	const char *one[] = { "h@a" };
	OK(ce_snap_hold(p, "keep", one, 1, errs));
	CHECK_ERR(ce_snap_hold(p, "keep", one, 1, errs), -EEXIST);
	CHECK(errs[0] == -EEXIST);
	/* all or none: a bad name among good ones places no hold */
	const char *mixed[] = { "h@b", "h@nosuch", "h@b" };
	CHECK_ERR(ce_snap_hold(p, "x", mixed, 3, errs), -EINVAL);
	printf("hold with a bad name: %s\n", ce_errmsg());
	CHECK(errs[0] == 0 && errs[1] == -ENOENT && errs[2] == -EINVAL);
	CHECK(t_snap_info(p, "h@b").holds == 1);
	CHECK_ERR(ce_snap_hold(p, "has space", one, 1, errs), -EINVAL);
	CHECK_ERR(ce_snap_hold(p, "", one, 1, errs), -EINVAL);
	CHECK_ERR(ce_snap_hold(p, "0123456789012345678901234567890123456789012345678901234567890123",
	    one, 1, errs), -EINVAL);
	const char *vol[] = { "h" };
	CHECK_ERR(ce_snap_hold(p, "t", vol, 1, errs), -ENOENT);

	/* a held snapshot is not destroyed, not even by rollback -r */
	CHECK_ERR(ce_snap_destroy(p, "h@a"), -EBUSY);
	printf("destroy a held snapshot: %s\n", ce_errmsg());
	CHECK(strstr(ce_errmsg(), "backup") != NULL && strstr(ce_errmsg(), "keep") != NULL);
	CHECK_ERR(ce_vol_rollback(p, "h@a", CE_ROLLBACK_DESTROY_LATER), -EBUSY);
	printf("rollback -r past a held snapshot: %s\n", ce_errmsg());
	CHECK(holds_data(p, "h@b", 0, 8, 2));
	CHECK(t_snap_info(p, "h@a").holds == 2 && t_snap_info(p, "h@b").holds == 1);

	/* listing, persistence, rename */
	ce_hold_info *hl;
	size_t n;
	OK(ce_snap_holds(p, NULL, &hl, &n));
	CHECK(n == 3);
	CHECK(strcmp(hl[0].snapshot, "h@a") == 0 && strcmp(hl[0].tag, "backup") == 0);
	CHECK(strcmp(hl[1].snapshot, "h@a") == 0 && strcmp(hl[1].tag, "keep") == 0);
	CHECK(strcmp(hl[2].snapshot, "h@b") == 0 && hl[2].ctime > 0);
	free(hl);
	p = recheck(p);
	OK(ce_snap_rename(p, "h@a", "first"));
	OK(ce_snap_holds(p, "h@first", &hl, &n));
	CHECK(n == 2);
	free(hl);
	CHECK_ERR(ce_snap_holds(p, "h@a", &hl, &n), -ENOENT);
	p = recheck(p);

	/* release: all or none, then destroy works */
	const char *rel[] = { "h@first", "h@b" };
	CHECK_ERR(ce_snap_release(p, "keep", rel, 2, errs), -EINVAL);
	CHECK(errs[0] == 0 && errs[1] == -ENOENT);
	CHECK(t_snap_info(p, "h@first").holds == 2);
	OK(ce_snap_release(p, "backup", rel, 2, errs));
	CHECK_ERR(ce_snap_destroy(p, "h@first"), -EBUSY);
	const char *first[] = { "h@first" };
	OK(ce_snap_release(p, "keep", first, 1, errs));
	CHECK_ERR(ce_snap_release(p, "keep", first, 1, errs), -ENOENT);
	OK(ce_snap_holds(p, NULL, &hl, &n));
	CHECK(n == 0);
	free(hl);
	p = recheck(p);
	/* several snapshots destroyed at once: all or none */
	const char *two_bad[] = { "h@first", "h@nosuch" }, *two[] = { "h@first", "h@b" };
	CHECK_ERR(ce_snap_destroy_many(p, two_bad, 2, errs), -EINVAL);
	CHECK(errs[0] == 0 && errs[1] == -ENOENT && t_snap_exists(p, "h@first"));
	OK(ce_snap_destroy_many(p, two, 2, errs));
	CHECK(!t_snap_exists(p, "h@first") && !t_snap_exists(p, "h@b"));
	OK(ce_vol_destroy(p, "h"));
	printf("holds: ok\n");
	return recheck(p);
}

static uint64_t
allocated(ce_pool *p)
{
	ce_pool_stat st;
	OK(ce_pool_sync(p));
	OK(ce_pool_stat_get(p, &st));
	return st.allocated;
}

static ce_pool *
test_recursive_destroy(ce_pool *p)
{
	int errs[2];
	/* a bystander that must not change */
	OK(ce_vol_create(p, "keep", NB * BS, NULL));
	fill_blocks(p, "keep", 0, NB, 9);
	snap(p, "keep@k");
	uint64_t a0 = allocated(p);

	/* -r: a volume with three snapshots, no clones */
	OK(ce_vol_create(p, "r", NB * BS, NULL));
	fill_blocks(p, "r", 0, NB, 1);
	snap(p, "r@1");
	fill_blocks(p, "r", 0, 16, 2);
	snap(p, "r@2");
	fill_blocks(p, "r", 8, 16, 3);
	snap(p, "r@3");
	CHECK_ERR(ce_vol_destroy(p, "r"), -EBUSY);
	printf("destroy without -r: %s\n", ce_errmsg());
	const char *r2[] = { "r@2" };
	OK(ce_snap_hold(p, "t", r2, 1, errs));
	CHECK_ERR(ce_vol_destroy_ex(p, "r", CE_DESTROY_SNAPSHOTS), -EBUSY);
	printf("destroy -r with a held snapshot: %s\n", ce_errmsg());
	CHECK(t_snap_exists(p, "r@1") && t_snap_exists(p, "r@3"));
	OK(ce_snap_release(p, "t", r2, 1, errs));
	ce_vol *h;
	OK(ce_vol_open(p, "r@1", &h));
	CHECK_ERR(ce_vol_destroy_ex(p, "r", CE_DESTROY_SNAPSHOTS), -EBUSY);
	ce_vol_close(h);
	OK(ce_vol_destroy_ex(p, "r", CE_DESTROY_SNAPSHOTS));
	CHECK(!t_snap_exists(p, "r@1") && !t_snap_exists(p, "r@2") && !t_snap_exists(p, "r@3"));
	CHECK_ERR(ce_vol_open(p, "r", &h), -ENOENT);
	uint64_t a1 = allocated(p);
	printf("destroy -r: allocated %" PRIu64 " -> %" PRIu64 " (before the volume)\n", a1, a0);
	CHECK(a1 == a0);
	p = recheck(p);

	/* -R: a volume, a clone of its snapshot with its own snapshot, and a clone of that */
	OK(ce_vol_create(p, "r", NB * BS, NULL));
	fill_blocks(p, "r", 0, NB, 1);
	snap(p, "r@1");
	fill_blocks(p, "r", 0, 16, 2);
	snap(p, "r@2");
	OK(ce_vol_clone(p, "r@1", "rc"));
	fill_blocks(p, "rc", 20, 8, 4);
	snap(p, "rc@x");
	fill_blocks(p, "rc", 24, 8, 5);
	OK(ce_vol_clone(p, "rc@x", "rcc"));
	fill_blocks(p, "rcc", 40, 4, 6);
	fill_blocks(p, "r", 30, 4, 7);
	CHECK(holds_data(p, "rcc", 20, 4, 4) && holds_data(p, "rcc", 40, 4, 6));
	CHECK_ERR(ce_vol_destroy_ex(p, "r", CE_DESTROY_SNAPSHOTS), -EBUSY);
	printf("destroy -r with clones: %s\n", ce_errmsg());
	CHECK(strstr(ce_errmsg(), "-R") != NULL);
	const char *rx[] = { "rc@x" };
	OK(ce_snap_hold(p, "t", rx, 1, errs));
	CHECK_ERR(ce_vol_destroy_ex(p, "r", CE_DESTROY_CLONES), -EBUSY);
	OK(ce_snap_release(p, "t", rx, 1, errs));
	p = recheck(p);
	OK(ce_vol_destroy_ex(p, "r", CE_DESTROY_CLONES));
	CHECK_ERR(ce_vol_open(p, "rc", &h), -ENOENT);
	CHECK_ERR(ce_vol_open(p, "rcc", &h), -ENOENT);
	CHECK(!t_snap_exists(p, "rc@x") && t_snap_exists(p, "keep@k"));
	a1 = allocated(p);
	printf("destroy -R: allocated %" PRIu64 " -> %" PRIu64 " (before the volume)\n", a1, a0);
	CHECK(a1 == a0);
	CHECK(holds_data(p, "keep", 0, NB, 9) && holds_data(p, "keep@k", 0, NB, 9));
	p = recheck(p);
	OK(ce_snap_destroy(p, "keep@k"));
	OK(ce_vol_destroy(p, "keep"));
	printf("recursive destroy: ok\n");
	return recheck(p);
}

static ce_vol_info
vinfo(ce_pool *p, const char *name)
{
	ce_vol_info vi;
	OK(ce_pool_sync(p));
	OK(ce_vol_info_get(p, name, &vi));
	return vi;
}

/* The data of every dataset of the promote test, wherever its snapshots now live. */
static void
promote_data(ce_pool *p, const char *a, const char *b, const char *c)
{
	CHECK(holds_data(p, a, 0, NB, 1));
	CHECK(holds_data(p, b, 0, 16, 2) && holds_data(p, b, 16, NB - 16, 1));
	CHECK(holds_data(p, c, 0, 16, 2) && holds_data(p, c, 16, 16, 3) && holds_data(p, c, 32, 32, 1));
	CHECK(holds_data(p, "p", 0, 16, 2) && holds_data(p, "p", 16, 16, 3));
	CHECK(holds_data(p, "q@q1", 0, 16, 2) && holds_data(p, "q@q1", 16, 16, 1) &&
	    holds_data(p, "q@q1", 32, 8, 4) && holds_data(p, "q@q1", 40, 24, 1));
	CHECK(holds_data(p, "q", 32, 8, 4) && holds_data(p, "q", 40, 4, 5) && holds_data(p, "q", 44, 20, 1));
}

static ce_pool *
test_promote(ce_pool *p)
{
	uint64_t a0 = allocated(p);
	OK(ce_vol_create(p, "p", NB * BS, NULL));
	fill_blocks(p, "p", 0, NB, 1);
	snap(p, "p@a");
	fill_blocks(p, "p", 0, 16, 2);
	snap(p, "p@b");
	fill_blocks(p, "p", 16, 16, 3);
	snap(p, "p@c");
	OK(ce_vol_clone(p, "p@b", "q"));
	fill_blocks(p, "q", 32, 8, 4);
	snap(p, "q@q1");
	fill_blocks(p, "q", 40, 4, 5);
	ce_vol_info pi = vinfo(p, "p"), qi = vinfo(p, "q");
	printf("before promote: p used %" PRIu64 " usedbysnapshots %" PRIu64 "; q used %" PRIu64
	    " usedbysnapshots %" PRIu64 " origin %s\n", pi.used, pi.usedbysnapshots, qi.used,
	    qi.usedbysnapshots, qi.origin);
	/* q's snapshots' dead lists hold only blocks of p@b: nothing of its own */
	CHECK(qi.usedbysnapshots < 3 * 16384);
	CHECK(pi.usedbysnapshots >= 32 * BS);

	CHECK_ERR(ce_vol_promote(p, "p"), -EINVAL);
	printf("promote a volume that is no clone: %s\n", ce_errmsg());
	CHECK_ERR(ce_vol_promote(p, "p@a"), -EINVAL);
	CHECK_ERR(ce_vol_promote(p, "nosuch"), -ENOENT);
	snap(p, "q@a");
	CHECK_ERR(ce_vol_promote(p, "q"), -EEXIST);
	printf("promote with a name clash: %s\n", ce_errmsg());
	OK(ce_snap_destroy(p, "q@a"));

	OK(ce_vol_promote(p, "q"));
	CHECK(t_snap_exists(p, "q@a") && t_snap_exists(p, "q@b") && t_snap_exists(p, "p@c"));
	CHECK(!t_snap_exists(p, "p@a") && !t_snap_exists(p, "p@b"));
	pi = vinfo(p, "p");
	qi = vinfo(p, "q");
	printf("after promote: p used %" PRIu64 " usedbysnapshots %" PRIu64 " origin %s; q used %" PRIu64
	    " usedbysnapshots %" PRIu64 " origin '%s'\n", pi.used, pi.usedbysnapshots, pi.origin, qi.used,
	    qi.usedbysnapshots, qi.origin);
	CHECK(strcmp(pi.origin, "q@b") == 0 && qi.origin[0] == '\0');
	CHECK(pi.nsnapshots == 1 && qi.nsnapshots == 3);
	/* p's snapshot p@c holds only blocks q@b has (born before it): nothing p would free */
	CHECK(pi.usedbysnapshots < 2 * 16384);
	CHECK(qi.usedbysnapshots >= 28 * BS);
	CHECK(t_snap_info(p, "q@a").used >= 16 * BS && t_snap_info(p, "q@b").clones == 1);
	promote_data(p, "q@a", "q@b", "p@c");
	p = recheck(p);
	promote_data(p, "q@a", "q@b", "p@c");

	/* and back: p takes its snapshots again */
	OK(ce_vol_promote(p, "p"));
	CHECK(t_snap_exists(p, "p@a") && t_snap_exists(p, "p@b") && !t_snap_exists(p, "q@a"));
	CHECK(strcmp(vinfo(p, "q").origin, "p@b") == 0 && vinfo(p, "p").origin[0] == '\0');
	promote_data(p, "p@a", "p@b", "p@c");
	p = recheck(p);
	OK(ce_vol_promote(p, "q"));
	p = recheck(p);

	/* the former parent, now a clone, goes; what it frees is its `used` */
	pi = vinfo(p, "p");
	uint64_t before = allocated(p);
	CHECK_ERR(ce_snap_destroy(p, "q@b"), -EBUSY);
	OK(ce_vol_destroy_ex(p, "p", CE_DESTROY_SNAPSHOTS));
	uint64_t after = allocated(p);
	printf("destroy -r the former parent: freed %" PRIu64 ", its used was %" PRIu64 "\n",
	    before - after, pi.used);
	/* used counts data and trees; the dead list objects (metadata) come on top */
	CHECK(before - after >= pi.used && before - after <= pi.used + 2 * 16384);
	CHECK(holds_data(p, "q@a", 0, NB, 1) && holds_data(p, "q@b", 0, 16, 2));
	CHECK(holds_data(p, "q", 32, 8, 4) && holds_data(p, "q", 0, 16, 2));
	p = recheck(p);
	qi = vinfo(p, "q");
	before = allocated(p);
	OK(ce_vol_destroy_ex(p, "q", CE_DESTROY_SNAPSHOTS));
	after = allocated(p);
	printf("destroy -r the promoted clone: freed %" PRIu64 ", its used was %" PRIu64 "\n",
	    before - after, qi.used);
	CHECK(before - after >= qi.used && before - after <= qi.used + 4 * 16384);
	CHECK(after == a0);
	printf("promote: ok\n");
	return recheck(p);
}

int
main(int argc, char **argv)
{
	(void)argc;
	argv0 = argv[0];
	t_tmpdir();
	path = t_path("pool");
	o.vdev_size = 64ull << 20;
	ce_pool *p;
	ce_pool_stat st0, st;
	OK(ce_pool_create("ops", &path, 1, &o, &p));
	OK(ce_pool_stat_get(p, &st0));

	p = test_holds(p);
	p = test_recursive_destroy(p);
	p = test_promote(p);

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
