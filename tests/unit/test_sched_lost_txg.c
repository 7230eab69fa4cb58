/*
 * test_sched_lost_txg -- a snapshot policy change is written by the txg it
 * was made in: never late, never early (sched.c invariant 2).
 *
 * The policy object is a sync task's, as the holds object is (hold.c;
 * test_hold_lost_txg is the regression test this one follows). Here the
 * sync of txg t, which sets volume v's policy, is stopped in its first
 * write (a backend wrapper); meanwhile a write to volume w and then a
 * policy on w are made (txg t + 1). t goes on until its uberblock is
 * flushed and the next txg is stopped before it writes anything; the pool
 * file is copied then (what a crash there leaves) and imported: v's
 * policy must be in it (its caller was told it was durable), and w's must
 * not be, like the write to w made before it. A copy of the policies
 * taken when the sync reached the object (as an earlier version did)
 * would have written w's one txg early.
 */
#include "gate.h"

static void *
set_thread(void *arg)
{
	const char *name = arg;
	ce_sched s = { .every_min = 60, .keep = 3 };
	OK(ce_sched_set(pool, name, &s));
	return NULL;
}

/* The policy of vol in p: 1 with every_min 60 and keep 3, 0 none. */
static int
has_policy(ce_pool *p, const char *vol)
{
	ce_sched_info *si;
	size_t n;
	int found = 0;
	OK(ce_sched_list(p, &si, &n));
	for (size_t i = 0; i < n; i++)
		if (strcmp(si[i].volume, vol) == 0) {
			CHECK(si[i].policy.every_min == 60 && si[i].policy.keep == 3);
			found = 1;
		}
	free(si);
	return found;
}

/* w's policy is in memory (for txg t+1) once the listing shows it */
static int
shows(void *arg)
{
	return has_policy(pool, arg);
}

int
main(void)
{
	t_tmpdir();
	const char *path = t_path("pool"), *copy = t_path("copy");
	gate_setup(path, 1);
	gate_write(pool, "v", 1);
	gate_crash(path, copy, set_thread, (void *)"v", gate_write_w, set_thread, (void *)"w", shows);
	OK(ce_pool_export(pool));

	ce_pool *c = gate_import(copy);
	int hv = has_policy(c, "v"), hw = has_policy(c, "w");
	printf("policy of v after the crash: %d (set before it), of w: %d (set in the txg that never "
	    "committed)\n", hv, hw);
	CHECK(hv == 1);
	CHECK(gate_zero(c, "w"));
	CHECK(hw == 0);
	OK(ce_pool_export(c));
	printf("ok\n");
	return 0;
}
