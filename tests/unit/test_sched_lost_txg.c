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
#include <fcntl.h>
#include <pthread.h>

#include "gate.h"

static ce_pool *pool;

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

	/* a dirty block, so that the sync of v's policy txg writes before sched_sync */
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
	pthread_create(&a, NULL, set_thread, (void *)"v");
	wait_at_gate(); /* txg t syncs, its first write waits */
	/* what b's thread wrote before its policy: in txg t+1, as the policy is */
	ce_vol *w;
	OK(ce_vol_open(pool, "w", &w));
	t_fill(blk, sizeof(blk), 2);
	OK(ce_vol_write(w, blk, sizeof(blk), 0));
	ce_vol_close(w);
	pthread_create(&b, NULL, set_thread, (void *)"w");
	/* w's policy is in memory (for txg t+1) once the listing shows it */
	while (!has_policy(pool, "w"))
		usleep(1000);
	/* let t commit: its uberblock is durable after its second flush; then stop t+1 */
	pthread_mutex_lock(&gl);
	waiting = 0;
	closed = 0;
	close_after = 2;
	pthread_cond_broadcast(&gcv);
	pthread_mutex_unlock(&gl);
	pthread_join(a, NULL); /* told: v's policy is durable */
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
	int hv = has_policy(c, "v"), hw = has_policy(c, "w");
	printf("policy of v after the crash: %d (set before it), of w: %d (set in the txg that never "
	    "committed)\n", hv, hw);
	CHECK(hv == 1);
	uint8_t got[4096], zero[4096];
	memset(zero, 0, sizeof(zero));
	OK(ce_vol_open(c, "w", &w));
	OK(ce_vol_read(w, got, sizeof(got), 0));
	ce_vol_close(w);
	CHECK(memcmp(got, zero, sizeof(got)) == 0);
	CHECK(hw == 0);
	OK(ce_pool_export(c));
	printf("ok\n");
	return 0;
}
