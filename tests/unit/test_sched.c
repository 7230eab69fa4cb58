/*
 * test_sched -- snapshot policies in the pool (sched.c, on-disk-format.md
 * section 4.8): set, replace, list, remove; bad policies refused; they
 * survive export/import (and a rename of the volume), many of them (more
 * than one leaf of the object); the policy of a destroyed volume is gone;
 * automatic snapshots keep their mark across import while hand-made ones
 * have none; cask-debug check is clean after every stage.
 */
#include "t.h"

static const char *argv0, *path;
static ce_pool_opts o;

static ce_pool *
recheck(ce_pool *p)
{
	OK(ce_pool_export(p));
	CHECK(t_debug_check(argv0, path, NULL) == 0);
	OK(ce_pool_import(&path, 1, &o, &p));
	return p;
}


static size_t
count(ce_pool *p)
{
	ce_sched_info *l;
	size_t n;
	OK(ce_sched_list(p, &l, &n));
	for (size_t i = 1; i < n; i++)
		CHECK(strcmp(l[i - 1].volume, l[i].volume) < 0); /* sorted */
	free(l);
	return n;
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
	OK(ce_pool_create("sc", &path, 1, &o, &p));
	OK(ce_vol_create(p, "db", 1 << 20, NULL));
	OK(ce_vol_create(p, "web", 1 << 20, NULL));
	CHECK(count(p) == 0);

	/* refused: nothing kept, out of range, no volume, a snapshot */
	ce_sched bad[] = { { 60, 0, 0, 0, 0, 0 }, { 0, 1, 0, 0, 0, 0 }, { CE_SCHED_EVERY_MAX + 1, 1, 0, 0, 0, 0 },
		{ 60, CE_SCHED_COUNT_MAX + 1, 0, 0, 0, 0 }, { 60, 1, 0, 0, 0, CE_SCHED_COUNT_MAX + 1 } };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_ERR(ce_sched_set(p, "db", &bad[i]), -EINVAL);
	ce_sched a = { 15, 8, 24, 7, 4, 6 }, b = { 60, 4, 0, 7, 4, 6 }, got;
	CHECK_ERR(ce_sched_set(p, "nope", &a), -ENOENT);
	const char *sn = "db@manual";
	int e;
	OK(ce_snap_create(p, &sn, 1, &e));
	CHECK_ERR(ce_sched_set(p, "db@manual", &a), -ENOENT);
	CHECK_ERR(ce_sched_set(p, "db", NULL), -ENOENT); /* nothing to remove */
	CHECK(count(p) == 0);

	OK(ce_sched_set(p, "db", &a));
	OK(ce_sched_set(p, "web", &b));
	CHECK(count(p) == 2);
	CHECK(t_policy_of(p, "db", &got) && memcmp(&got, &a, sizeof(a)) == 0);
	p = recheck(p);
	CHECK(count(p) == 2);
	CHECK(t_policy_of(p, "db", &got) && memcmp(&got, &a, sizeof(a)) == 0);
	CHECK(t_policy_of(p, "web", &got) && memcmp(&got, &b, sizeof(b)) == 0);

	/* replace; a rename keeps it (keyed by guid) */
	OK(ce_sched_set(p, "db", &b));
	OK(ce_vol_rename(p, "db", "db2"));
	p = recheck(p);
	CHECK(!t_policy_of(p, "db", &got));
	CHECK(t_policy_of(p, "db2", &got) && memcmp(&got, &b, sizeof(b)) == 0);

	/* automatic snapshots are marked, hand-made ones not, across import */
	const char *autos[] = { "db2@auto-2026-12-01T20:15Z", "web@auto-2026-12-01T20:15Z" };
	int errs[2];
	OK(ce_snap_create_ex(p, autos, 2, CE_SNAP_AUTO, errs));
	p = recheck(p);
	CHECK(t_snap_info(p, "db2@auto-2026-12-01T20:15Z").automatic == 1);
	CHECK(t_snap_info(p, "web@auto-2026-12-01T20:15Z").automatic == 1);
	CHECK(t_snap_info(p, "db2@manual").automatic == 0);
	/* renamed, it stays automatic (caskd then leaves it alone: its name no longer parses) */
	OK(ce_snap_rename(p, "web@auto-2026-12-01T20:15Z", "web@keepme"));
	p = recheck(p);
	CHECK(t_snap_info(p, "web@keepme").automatic == 1);

	/* remove */
	OK(ce_sched_set(p, "web", NULL));
	CHECK(count(p) == 1);
	p = recheck(p);
	CHECK(count(p) == 1 && !t_policy_of(p, "web", &got));

	/* many: three leaves of the object, then back to one (the freed leaves are accounted by check) */
	char name[64];
	for (int i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "v%03d", i);
		OK(ce_vol_create(p, name, 1 << 20, NULL));
		ce_sched s = { (uint32_t)(i + 1), (uint32_t)i, 0, 0, 0, (uint32_t)(i % 3) };
		if (s.keep == 0 && s.monthly == 0)
			s.daily = 1;
		OK(ce_sched_set(p, name, &s));
	}
	p = recheck(p);
	CHECK(count(p) == 301);
	CHECK(t_policy_of(p, "v299", &got) && got.every_min == 300 && got.keep == 299 && got.monthly == 299 % 3);
	/* a destroyed volume's policy goes with it */
	for (int i = 0; i < 250; i++) {
		snprintf(name, sizeof(name), "v%03d", i);
		OK(ce_vol_destroy(p, name));
	}
	CHECK(count(p) == 51);
	p = recheck(p);
	CHECK(count(p) == 51);
	OK(ce_sched_set(p, "db2", &a)); /* rewrites the object without the dropped ones */
	p = recheck(p);
	CHECK(count(p) == 51);
	CHECK(t_policy_of(p, "v260", &got) && got.every_min == 261);
	OK(ce_pool_export(p));
	CHECK(t_debug_check(argv[0], path, NULL) == 0);
	printf("ok\n");
	return 0;
}
