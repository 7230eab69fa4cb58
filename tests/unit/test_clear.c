/*
 * test_clear -- injected faults (ce_pool_fault_inject), suspension and
 * ce_pool_clear, with the intent log in the picture:
 *
 *   1. A log write that fails once: the FLUSH is still answered honestly,
 *      by a txg commit, and the pool stays online.
 *   2. A persistent write fault: the FLUSH fails, the pool suspends with a
 *      reason, writes fail; ce_pool_clear refuses while the fault lasts.
 *      Once it is gone, clear resumes the pool: everything flushed before
 *      the fault reads back (from the tree and the replayed log), unflushed
 *      writes read old or new. The handle opened before the clear still
 *      reads, but its writes and flushes fail (a FLUSH must not claim the
 *      lost writes durable); a reopened handle writes and flushes, also
 *      across an abandon.
 *   3. A read fault fails one read only (no suspension).
 *   4. cask-debug check is clean at the end.
 */
#include "t.h"

#define BS 4096u

static void
pat(uint8_t *b, int tag)
{
	t_fill(b, BS, (uint64_t)tag * 7919);
	b[0] = (uint8_t)tag;
}

static int
block_is(ce_vol *v, uint64_t blk, int tag)
{
	uint8_t got[BS], want[BS];
	OK(ce_vol_read(v, got, BS, blk * BS));
	pat(want, tag);
	return memcmp(got, want, BS) == 0;
}

static int
block_is_zero(ce_vol *v, uint64_t blk)
{
	uint8_t got[BS];
	static const uint8_t z[BS];
	OK(ce_vol_read(v, got, BS, blk * BS));
	return memcmp(got, z, BS) == 0;
}

int
main(int argc, char **argv)
{
	(void)argc;
	t_tmpdir();
	const char *path = t_path("pool");
	ce_pool_opts o = { 0 };
	o.vdev_size = 64ull << 20;
	o.txg_timeout_ms = 60000;
	ce_pool *p;
	ce_vol *v;
	uint8_t b[BS];
	ce_pool_stat st;
	OK(ce_pool_create("clr", &path, 1, &o, &p));
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.compress = CE_COMPRESS_OFF;
	OK(ce_vol_create(p, "v", 1 << 20, &pr));
	OK(ce_vol_open(p, "v", &v));

	/* 1. the log write fails once: the flush falls back to a txg commit */
	pat(b, 1);
	OK(ce_vol_write(v, b, BS, 0));
	OK(ce_pool_sync(p)); /* the log's epoch is durable: flushes use the log */
	ce_fault f = { CE_FAULT_WRITE, -1, 0, 0 };
	OK(ce_pool_fault_inject(p, &f));
	pat(b, 2);
	OK(ce_vol_write(v, b, BS, BS));
	OK(ce_vol_flush(v));
	OK(ce_pool_stat_get(p, &st));
	printf("log write failed once: flush answered after %" PRIu64 " fallback txg commit(s); "
	    "pool %s\n", st.log_fallbacks, st.suspended ? "suspended" : "online");
	CHECK(st.suspended == 0 && st.log_fallbacks == 1 && st.io_errors == 1);
	ce_vol_close(v);
	ce_pool_abandon(p);
	OK(ce_pool_import(&path, 1, &o, &p));
	OK(ce_vol_open(p, "v", &v));
	CHECK(block_is(v, 0, 1) && block_is(v, 1, 2));

	/* 2. a persistent write fault suspends the pool; clear resumes it */
	OK(ce_pool_sync(p));
	pat(b, 3);
	OK(ce_vol_write(v, b, BS, 2 * BS));
	OK(ce_pool_sync(p));                  /* committed */
	pat(b, 4);
	OK(ce_vol_write(v, b, BS, 3 * BS));
	OK(ce_vol_flush(v));                  /* in the log */
	pat(b, 5);
	OK(ce_vol_write(v, b, BS, 4 * BS));   /* never flushed */
	f = (ce_fault){ CE_FAULT_WRITE, 0, 0, 1 };
	OK(ce_pool_fault_inject(p, &f));
	pat(b, 6);
	OK(ce_vol_write(v, b, BS, 5 * BS));
	int r = ce_vol_flush(v);
	printf("persistent write fault: flush -> %d (%s)\n", r, ce_errmsg());
	CHECK_ERR(r, -EIO);
	OK(ce_pool_stat_get(p, &st));
	printf("status: suspended (%s): %s\n", strerror(-st.suspended), st.suspend_reason);
	CHECK(st.suspended == -EIO && strstr(st.suspend_reason, "could not be committed") != NULL);
	pat(b, 7);
	CHECK_ERR(ce_vol_write(v, b, BS, 6 * BS), -EIO);
	CHECK_ERR(ce_vol_flush(v), -EIO);
	r = ce_pool_clear(p);
	printf("clear while the fault lasts: %d (%s)\n", r, ce_errmsg());
	CHECK(r < 0);
	OK(ce_pool_stat_get(p, &st));
	CHECK(st.suspended != 0);
	ce_pool_fault_clear(p);
	OK(ce_pool_clear(p));
	OK(ce_pool_stat_get(p, &st));
	printf("after clear: %s, %" PRIu64 " log records replayed, %" PRIu64 " io errors\n",
	    st.suspended ? "suspended" : "online", st.log_replayed, st.io_errors);
	CHECK(st.suspended == 0 && st.suspend_reason[0] == '\0' && st.io_errors == 0);
	CHECK(block_is(v, 0, 1) && block_is(v, 1, 2) && block_is(v, 2, 3) && block_is(v, 3, 4));
	CHECK(block_is(v, 4, 5) || block_is_zero(v, 4));
	CHECK(block_is(v, 5, 6) || block_is_zero(v, 5));
	CHECK(block_is_zero(v, 6));
	pat(b, 8);
	CHECK_ERR(ce_vol_flush(v), -EIO);     /* the old handle may not claim anything durable */
	printf("old handle after clear: %s\n", ce_errmsg());
	CHECK(strstr(ce_errmsg(), "reopen") != NULL);
	CHECK_ERR(ce_vol_write(v, b, BS, 6 * BS), -EIO);
	ce_vol_close(v);
	OK(ce_vol_open(p, "v", &v));
	OK(ce_vol_write(v, b, BS, 6 * BS));   /* a reopened handle works */
	OK(ce_vol_flush(v));
	ce_vol_close(v);
	ce_pool_abandon(p);
	OK(ce_pool_import(&path, 1, &o, &p));
	OK(ce_vol_open(p, "v", &v));
	CHECK(block_is(v, 0, 1) && block_is(v, 1, 2) && block_is(v, 2, 3) && block_is(v, 3, 4));
	CHECK(block_is(v, 6, 8));
	printf("after clear and an abandon: every flushed block is back\n");

	/* 3. a read fault fails one read */
	ce_vol_close(v);
	OK(ce_pool_export(p));
	OK(ce_pool_import(&path, 1, &o, &p)); /* cold cache */
	OK(ce_vol_open(p, "v", &v));
	f = (ce_fault){ CE_FAULT_READ, -1, 0, 0 };
	OK(ce_pool_fault_inject(p, &f));
	CHECK_ERR(ce_vol_read(v, b, BS, 0), -EIO);
	CHECK(block_is(v, 0, 1));
	OK(ce_pool_stat_get(p, &st));
	CHECK(st.suspended == 0 && st.io_errors == 1);
	f = (ce_fault){ CE_FAULT_FLUSH, 3, 0, 0 };
	CHECK_ERR(ce_pool_fault_inject(p, &f), -EINVAL);
	ce_vol_close(v);
	OK(ce_pool_export(p));
	CHECK(t_debug_check(argv[0], path, NULL) == 0);
	printf("ok\n");
	return 0;
}
