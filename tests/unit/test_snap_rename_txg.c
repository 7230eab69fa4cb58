/*
 * test_snap_rename_txg -- a snapshot's record is written by the txg of
 * each change made to it, even when the next change comes while that txg
 * is syncing.
 *
 * A snapshot record carried one mark, rec_txg, the txg of its latest
 * change. A rename made in the open txg t + 1 while t was syncing moved
 * the mark past t, so:
 *   1. a rename made in t, which returned once t committed, was not in t:
 *      a crash before t + 1 committed gave the snapshot its old name back;
 *   2. when t's sync changed the same record (destroying the snapshot
 *      before it) it set the mark back to t and cleared it, so the rename
 *      of t + 1 was never written at all: after export and import the
 *      snapshot had its old name.
 * Now a change puts the snapshot on its own txg's dirty list and keeps
 * the record image of the txg before (vol_mgmt_dirty, dataset.c), so t
 * writes t's name and t + 1 its own, whichever sync changes the record.
 *
 * The sync of t is stopped in its first write (a backend wrapper, as in
 * test_hold_lost_txg), the change of t + 1 is made meanwhile, then t goes
 * on; for case 1 the pool file is copied right after t's uberblock is
 * flushed (what a crash there leaves).
 */
#include "gate.h"

typedef struct job {
	const char *from, *to; /* a rename; to NULL: destroy from */
	const char *shows;     /* the name that shows once the change is in memory */
} job;

static void *
job_thread(void *arg)
{
	job *j = arg;
	if (j->to != NULL)
		OK(ce_snap_rename(pool, j->from, j->to));
	else
		OK(ce_snap_destroy(pool, j->from));
	return NULL;
}

static int
has_snap(ce_pool *p, const char *name)
{
	ce_vol_info vi;
	return ce_vol_info_get(p, name, &vi) == 0;
}

/* the change of t + 1 is in memory (the name shows), while t is stopped */
static int
shows(void *arg)
{
	return has_snap(pool, ((job *)arg)->shows);
}

int
main(void)
{
	t_tmpdir();
	const char *path = t_path("pool"), *copy = t_path("copy");
	gate_setup(path, 0);
	const char *snaps[3] = { "v@a", "v@b", "v@c" };
	int errs[3];
	OK(ce_snap_create(pool, snaps, 3, errs));

	/* 1: rename v@a to v@r1 in t; v@r1 to v@r2 in t + 1; crash after t */
	gate_write(pool, "v", 1);
	job ja = { "v@a", "v@r1", NULL }, jb = { "v@r1", "v@r2", "v@r2" };
	gate_crash(path, copy, job_thread, &ja, NULL, job_thread, &jb, shows);

	ce_pool *c = gate_import(copy);
	printf("after a crash once the rename to v@r1 returned: v@a %d, v@r1 %d, v@r2 %d\n", has_snap(c, "v@a"),
	    has_snap(c, "v@r1"), has_snap(c, "v@r2"));
	CHECK(has_snap(c, "v@r1") && !has_snap(c, "v@a") && !has_snap(c, "v@r2"));
	OK(ce_pool_export(c));

	/* 2: destroy v@r2 in t (its successor v@b's record changes in t's sync); rename v@b in t + 1 */
	gate_write(pool, "v", 1);
	job jd = { "v@r2", NULL, NULL }, jr = { "v@b", "v@r3", "v@r3" };
	gate_crash(path, NULL, job_thread, &jd, NULL, job_thread, &jr, shows);
	OK(ce_pool_export(pool));
	pool = gate_import(path);
	printf("after export and import: v@b %d, v@r3 %d\n", has_snap(pool, "v@b"), has_snap(pool, "v@r3"));
	CHECK(has_snap(pool, "v@r3") && !has_snap(pool, "v@b") && has_snap(pool, "v@c"));
	OK(ce_pool_export(pool));
	printf("ok\n");
	return 0;
}
