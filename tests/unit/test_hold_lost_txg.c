/*
 * test_hold_lost_txg -- regression test for a bug cask-stress found (seed
 * 17590405971642533855, round 16): a hold that had returned was gone
 * after a kill.
 *
 * A hold or release marked the holds object for rewriting in the open txg
 * (a txg number, sh_changed_txg; hold and release are a sync task since,
 * hold.c). When a second change came in the next txg while the
 * first one's txg was already syncing but had not reached hold_sync, the
 * mark moved to the later txg, the syncing one skipped the holds, and it
 * committed without the first hold -- whose caller was then told it was
 * durable. A crash before the next commit lost it.
 *
 * Here the sync of the first hold's txg is stopped in its first write
 * (a backend wrapper), a second hold is made meanwhile, the sync goes on
 * until its uberblock is flushed and is stopped again before the next
 * txg writes anything; the pool file is copied then (what a crash there
 * leaves) and imported: the first hold must be in it.
 *
 * The same crash found the opposite bug (cask-stress: "the hold in
 * flight (op 13) shows on one volume, but not everything before it on
 * the other"): the syncing txg wrote the holds as they were when it
 * reached hold_sync, so the second hold, made in the next txg, was
 * written one txg early -- a crash kept it without the writes its thread
 * had made before it. Here a write to volume w comes before the second
 * hold; after the crash the second hold must be absent, like the write.
 */
#include "gate.h"

static void *
hold_thread(void *arg)
{
	const char *name = arg;
	int e;
	OK(ce_snap_hold(pool, "keep", &name, 1, &e));
	return NULL;
}

/* the hold is in memory (for txg t+1) once the listing shows it */
static int
held(void *arg)
{
	ce_hold_info *hi;
	size_t n;
	OK(ce_snap_holds(pool, arg, &hi, &n));
	free(hi);
	return n == 1;
}

int
main(void)
{
	t_tmpdir();
	const char *path = t_path("pool"), *copy = t_path("copy");
	gate_setup(path, 1);
	const char *snaps[2] = { "v@a", "v@b" };
	int errs[2];
	OK(ce_snap_create(pool, snaps, 2, errs));
	gate_write(pool, "v", 1);
	gate_crash(path, copy, hold_thread, (void *)"v@a", gate_write_w, hold_thread, (void *)"v@b", held);
	OK(ce_pool_export(pool));

	ce_pool *c = gate_import(copy);
	ce_hold_info *hi;
	size_t n;
	OK(ce_snap_holds(c, "v@a", &hi, &n));
	printf("holds on v@a after the crash: %zu (the hold returned before it)\n", n);
	CHECK(n == 1);
	free(hi);
	/* txg t+1 never committed: neither the write to w nor the hold on v@b */
	CHECK(gate_zero(c, "w"));
	OK(ce_snap_holds(c, "v@b", &hi, &n));
	printf("holds on v@b after the crash: %zu (made in the txg that never committed)\n", n);
	CHECK(n == 0);
	free(hi);
	OK(ce_pool_export(c));
	printf("ok\n");
	return 0;
}
