/*
 * test_repl_clear -- ce_pool_clear while replica applies run (the two
 * bugs it was written for, lib/engine/repl.c invariant 6):
 *
 *   1. use after free: the clear's reload of the replica object (repl_load)
 *      destroyed every volume's repl_state and made a new one while an
 *      apply on another thread held, or waited for, the old one's mutex;
 *   2. v->rp was read without a lock by apply, flush, open and the plain
 *      write path while the clear replaced it.
 *
 * Three applier threads race to apply the next sequenced write (the loser
 * of each seq gets EPROTO), so one of them is nearly always inside apply()
 * or blocked on the state's mutex. The main thread suspends the pool with
 * a persistent write fault, lifts it and clears the pool, 60 times; while
 * it does, the appliers keep their handles and go on trying (so they run
 * through apply() during the reload instead of waiting in ce_vol_open
 * behind the clear's locks), and reopen them after it (a handle from
 * before a clear may not write). Under tests/tsan_wrap.sh the old code
 * fails every run (TSan: pthread_mutex_lock/unlock of a destroyed mutex in
 * apply, races with repl_free); the sanitizer build catches 1 only when
 * the timing lands in the window. Afterwards: the replica's applied after
 * an export and import is what the last flush said, every one of the last
 * NBLK operations reads back, and cask-debug check is clean.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "t.h"

#define BS 4096u
#define NBLK 256u
#define ROUNDS 60
#define APPLIERS 3 /* racing for each seq: one of them is always inside apply() or waiting for its mutex */

static const char *argv0;
static ce_pool *pool;
static ce_epoch E;
static atomic_int stop;
static atomic_int clearing; /* main: from the fault until its clear returned (not ce_pool_stat_get: it
                               reads the allocator unlocked, racing with the clear's reload) */
static atomic_ulong applies, failures;

static void
mb_make(uint8_t mb[CE_REPL_MB_SIZE], ce_epoch e, uint64_t version, uint64_t id)
{
	memset(mb, 0, CE_REPL_MB_SIZE);
	memcpy(mb + 0, &version, 8);
	memcpy(mb + 8, &e.counter, 8);
	memcpy(mb + 16, &e.node, 8);
	mb[32] = 2;
	mb[33] = 1;
	memcpy(mb + 320, &id, 8);
	mb[320 + 16] = 1;
}

static void
block_of(uint8_t *b, uint64_t seq)
{
	t_fill(b, BS, seq * 2654435761u);
	memcpy(b, &seq, 8);
}

static void *
applier(void *arg)
{
	(void)arg;
	uint8_t b[BS];
	ce_vol *h = NULL;
	while (!atomic_load(&stop)) {
		if (h == NULL && ce_repl_open(pool, "r", &h) != 0) {
			h = NULL;
			continue;
		}
		uint64_t s = ce_repl_applied(h) + 1;
		block_of(b, s);
		int err = ce_repl_write(h, E, s, b, BS, (s % NBLK) * BS);
		if (err == -EPROTO)
			continue; /* another applier took s first */
		if (err == 0) {
			atomic_fetch_add(&applies, 1);
			if (s % 16 == 0) {
				uint64_t d;
				(void)ce_repl_flush(h, &d);
			}
		} else {
			atomic_fetch_add(&failures, 1);
			/*
			 * While the pool is suspended keep the handle and go on trying, so
			 * the appliers run through apply() while the clear reloads the
			 * replica state (not parked in ce_vol_open behind the clear's
			 * locks); after the clear the handle is stale: reopen.
			 */
			if (atomic_load(&clearing)) {
				sched_yield();
				continue;
			}
			ce_vol_close(h); /* a handle from before a clear writes nothing more */
			h = NULL;
		}
	}
	if (h != NULL)
		ce_vol_close(h);
	return NULL;
}

int
main(int argc, char **argv)
{
	(void)argc;
	argv0 = argv[0];
	t_tmpdir();
	const char *path = t_path("pool");
	ce_pool_opts o = { 0 };
	o.vdev_size = 64ull << 20;
	o.txg_timeout_ms = 20;
	OK(ce_pool_create("rc", &path, 1, &o, &pool));
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.compress = CE_COMPRESS_OFF;
	OK(ce_vol_create(pool, "r", NBLK * BS, &pr));
	ce_vol_info vi;
	OK(ce_vol_info_get(pool, "r", &vi));
	uint8_t uuid[16] = { 9, 8, 7, 6, 5, 4, 3, 2, 1 };
	E = (ce_epoch){ 1, vi.guid };
	OK(ce_repl_make(pool, "r", uuid, E, "here:1"));
	uint8_t mb[CE_REPL_MB_SIZE];
	mb_make(mb, E, 1, vi.guid);
	OK(ce_repl_start_epoch(pool, "r", E, 0, mb));

	pthread_t th[APPLIERS];
	for (int i = 0; i < APPLIERS; i++)
		CHECK(pthread_create(&th[i], NULL, applier, NULL) == 0);
	int clears = 0;
	for (int round = 0; round < ROUNDS; round++) {
		/* let some applies happen, then suspend the pool under them */
		unsigned long a0 = atomic_load(&applies);
		while (atomic_load(&applies) < a0 + 20)
			sched_yield();
		atomic_store(&clearing, 1);
		ce_fault f = { CE_FAULT_WRITE, 0, 0, 1 };
		OK(ce_pool_fault_inject(pool, &f));
		(void)ce_pool_sync(pool); /* fails: the pool suspends */
		ce_pool_stat st;
		OK(ce_pool_stat_get(pool, &st));
		CHECK(st.suspended != 0);
		ce_pool_fault_clear(pool);
		OK(ce_pool_clear(pool));
		atomic_store(&clearing, 0);
		clears++;
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < APPLIERS; i++)
		pthread_join(th[i], NULL);
	printf("%d clears under %lu applies (%lu refused: handles from before a clear)\n", clears,
	    atomic_load(&applies), atomic_load(&failures));
	CHECK(atomic_load(&failures) > 0);

	/* what the record says is what the data holds */
	ce_repl_info ri;
	ce_vol *h;
	OK(ce_repl_open(pool, "r", &h));
	uint64_t d;
	OK(ce_repl_flush(h, &d));
	ce_vol_close(h);
	OK(ce_pool_export(pool));
	CHECK(t_debug_check(argv0, path, NULL) == 0);
	OK(ce_pool_import(&path, 1, NULL, &pool));
	OK(ce_repl_info_get(pool, "r", &ri));
	printf("after export and import: applied %" PRIu64 "\n", ri.applied);
	CHECK(ri.applied == d);
	ce_vol *rd;
	OK(ce_vol_open(pool, "r", &rd));
	uint8_t got[BS], want[BS];
	uint64_t lo = ri.applied > NBLK ? ri.applied - NBLK + 1 : 1;
	for (uint64_t s = lo; s <= ri.applied; s++) {
		/* the newest write of each block is the last seq that maps to it */
		OK(ce_vol_read(rd, got, BS, (s % NBLK) * BS));
		block_of(want, s);
		CHECK(memcmp(got, want, BS) == 0);
	}
	ce_vol_close(rd);
	OK(ce_pool_export(pool));
	printf("ok\n");
	return 0;
}
