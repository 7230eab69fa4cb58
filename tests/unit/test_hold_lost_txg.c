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
#include <fcntl.h>
#include <pthread.h>

#include "gate.h"

static ce_pool *pool;

static void *
hold_thread(void *arg)
{
	const char *name = arg;
	int e;
	OK(ce_snap_hold(pool, "keep", &name, 1, &e));
	return NULL;
}

int
main(void)
{
	t_tmpdir();
	const char *path = t_path("pool"), *copy = t_path("copy");
	ce_pool_opts o;
	memset(&o, 0, sizeof(o));
	o.vdev_size = 64ull << 20;
	o.txg_timeout_ms = 600000; /* txgs commit only when asked */
	o.flags = CE_BE_NODIRECT;  /* the copy reads what was written through the page cache */
	o.wrap = wrap;
	OK(ce_pool_create("tank", &path, 1, &o, &pool));
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	OK(ce_vol_create(pool, "v", 1 << 20, &pr));
	OK(ce_vol_create(pool, "w", 1 << 20, &pr));
	const char *snaps[2] = { "v@a", "v@b" };
	int errs[2];
	OK(ce_snap_create(pool, snaps, 2, errs));

	/* a dirty block, so that the sync of the first hold's txg writes before hold_sync */
	ce_vol *v;
	OK(ce_vol_open(pool, "v", &v));
	uint8_t blk[4096];
	t_fill(blk, sizeof(blk), 1);
	OK(ce_vol_write(v, blk, sizeof(blk), 0));
	ce_vol_close(v);

	pthread_mutex_lock(&gl);
	closed = 1;
	close_after = -1;
	pthread_mutex_unlock(&gl);
	pthread_t a, b;
	pthread_create(&a, NULL, hold_thread, (void *)"v@a");
	wait_at_gate(); /* txg t syncs, its first write waits */
	/* what b's thread wrote before its hold: in txg t+1, as the hold is */
	ce_vol *w;
	OK(ce_vol_open(pool, "w", &w));
	t_fill(blk, sizeof(blk), 2);
	OK(ce_vol_write(w, blk, sizeof(blk), 0));
	ce_vol_close(w);
	pthread_create(&b, NULL, hold_thread, (void *)"v@b");
	/* b's hold is in memory (for txg t+1) once the listing shows it */
	for (;;) {
		ce_hold_info *hi;
		size_t n;
		OK(ce_snap_holds(pool, "v@b", &hi, &n));
		free(hi);
		if (n == 1)
			break;
		usleep(1000);
	}
	/* let t commit: its uberblock is durable after its second flush; then stop t+1 */
	pthread_mutex_lock(&gl);
	waiting = 0;
	closed = 0;
	close_after = 2;
	pthread_cond_broadcast(&gcv);
	pthread_mutex_unlock(&gl);
	pthread_join(a, NULL); /* told: the hold on v@a is durable */
	copy_file(path, copy);  /* a crash now */
	pthread_mutex_lock(&gl);
	closed = 0;
	close_after = -1;
	pthread_cond_broadcast(&gcv);
	pthread_mutex_unlock(&gl);
	pthread_join(b, NULL);
	OK(ce_pool_export(pool));

	ce_pool_opts io;
	memset(&io, 0, sizeof(io));
	ce_pool *c;
	OK(ce_pool_import(&copy, 1, &io, &c));
	ce_hold_info *hi;
	size_t n;
	OK(ce_snap_holds(c, "v@a", &hi, &n));
	printf("holds on v@a after the crash: %zu (the hold returned before it)\n", n);
	CHECK(n == 1);
	free(hi);
	/* txg t+1 never committed: neither the write to w nor the hold on v@b */
	uint8_t got[4096], zero[4096];
	memset(zero, 0, sizeof(zero));
	OK(ce_vol_open(c, "w", &w));
	OK(ce_vol_read(w, got, sizeof(got), 0));
	ce_vol_close(w);
	CHECK(memcmp(got, zero, sizeof(got)) == 0);
	OK(ce_snap_holds(c, "v@b", &hi, &n));
	printf("holds on v@b after the crash: %zu (made in the txg that never committed)\n", n);
	CHECK(n == 0);
	free(hi);
	OK(ce_pool_export(c));
	printf("ok\n");
	return 0;
}
