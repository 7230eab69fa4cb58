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
#include <fcntl.h>
#include <pthread.h>

#include "gate.h"

static ce_pool *pool;

typedef struct job {
	const char *from, *to; /* a rename; to NULL: destroy from */
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

static void
gate_close(void)
{
	pthread_mutex_lock(&gl);
	closed = 1;
	close_after = -1;
	pthread_mutex_unlock(&gl);
}

static void
gate_open(int then_close_after)
{
	pthread_mutex_lock(&gl);
	waiting = 0;
	closed = 0;
	close_after = then_close_after;
	pthread_cond_broadcast(&gcv);
	pthread_mutex_unlock(&gl);
}

/* A dirty block, so that the next txg's sync writes (and stops at the gate) before the records. */
static void
dirty(void)
{
	ce_vol *v;
	OK(ce_vol_open(pool, "v", &v));
	uint8_t blk[4096];
	t_fill(blk, sizeof(blk), 1);
	OK(ce_vol_write(v, blk, sizeof(blk), 0));
	ce_vol_close(v);
}

static int
has_snap(ce_pool *p, const char *name)
{
	ce_vol_info vi;
	return ce_vol_info_get(p, name, &vi) == 0;
}

/* Wait until the change of t + 1 is in memory (the name shows), while t is stopped. */
static void
wait_name(const char *name)
{
	while (!has_snap(pool, name))
		usleep(1000);
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
	const char *snaps[3] = { "v@a", "v@b", "v@c" };
	int errs[3];
	OK(ce_snap_create(pool, snaps, 3, errs));

	/* 1: rename v@a to v@r1 in t; v@r1 to v@r2 in t + 1; crash after t */
	dirty();
	gate_close();
	pthread_t a, b;
	job ja = { "v@a", "v@r1" }, jb = { "v@r1", "v@r2" };
	pthread_create(&a, NULL, job_thread, &ja);
	wait_at_gate();
	pthread_create(&b, NULL, job_thread, &jb);
	wait_name("v@r2");
	gate_open(2); /* t's uberblock is durable after its second flush; then t + 1 stops */
	pthread_join(a, NULL); /* told: the rename to v@r1 is durable */
	copy_file(path, copy);
	gate_open(-1);
	pthread_join(b, NULL);

	ce_pool_opts io;
	memset(&io, 0, sizeof(io));
	ce_pool *c;
	OK(ce_pool_import(&copy, 1, &io, &c));
	printf("after a crash once the rename to v@r1 returned: v@a %d, v@r1 %d, v@r2 %d\n", has_snap(c, "v@a"),
	    has_snap(c, "v@r1"), has_snap(c, "v@r2"));
	CHECK(has_snap(c, "v@r1") && !has_snap(c, "v@a") && !has_snap(c, "v@r2"));
	OK(ce_pool_export(c));

	/* 2: destroy v@r2 in t (its successor v@b's record changes in t's sync); rename v@b in t + 1 */
	dirty();
	gate_close();
	job jd = { "v@r2", NULL }, jr = { "v@b", "v@r3" };
	pthread_create(&a, NULL, job_thread, &jd);
	wait_at_gate();
	pthread_create(&b, NULL, job_thread, &jr);
	wait_name("v@r3");
	gate_open(-1);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	OK(ce_pool_export(pool));
	OK(ce_pool_import(&path, 1, &io, &pool));
	printf("after export and import: v@b %d, v@r3 %d\n", has_snap(pool, "v@b"), has_snap(pool, "v@r3"));
	CHECK(has_snap(pool, "v@r3") && !has_snap(pool, "v@b") && has_snap(pool, "v@c"));
	OK(ce_pool_export(pool));
	printf("ok\n");
	return 0;
}
