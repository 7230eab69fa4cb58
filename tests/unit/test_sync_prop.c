/*
 * test_sync_prop -- the sync property, by what survives an abandoned pool
 * (ce_pool_abandon: the open txg is never committed, as in a crash):
 *   standard: a write survives only if ce_vol_flush ran after it;
 *   always:   every write, trim and zeroing survives when it returns;
 *   disabled: ce_vol_flush commits nothing (unsafe, by design).
 * The property persists and is validated.
 */
#include "t.h"

static const char *path;
static ce_pool_opts o;

/* Write 0x11 at block 0 (and trim block 1 after writing it); flush if asked; abandon; reimport. */
static void
scenario(const char *sync, int flush, int expect_kept)
{
	ce_pool *p;
	ce_vol *v;
	uint8_t buf[4096], got[4096];
	OK(ce_pool_import(&path, 1, &o, &p));
	OK(ce_vol_set(p, "v", "sync", sync));
	OK(ce_vol_open(p, "v", &v));
	/* a committed baseline: block 1 = 0x22, block 0 = zeros */
	memset(buf, 0x22, sizeof(buf));
	OK(ce_vol_write(v, buf, 4096, 4096));
	OK(ce_vol_trim(v, 0, 4096));
	OK(ce_pool_sync(p));
	/* the operations under test */
	memset(buf, 0x11, sizeof(buf));
	OK(ce_vol_write(v, buf, 4096, 0));
	OK(ce_vol_trim(v, 4096, 4096));
	if (flush)
		OK(ce_vol_flush(v));
	ce_vol_close(v);
	ce_pool_abandon(p);
	OK(ce_pool_import(&path, 1, &o, &p));
	OK(ce_vol_open(p, "v", &v));
	OK(ce_vol_read(v, got, 4096, 0));
	memset(buf, expect_kept ? 0x11 : 0, sizeof(buf));
	CHECK(memcmp(got, buf, 4096) == 0);
	OK(ce_vol_read(v, got, 4096, 4096));
	memset(buf, expect_kept ? 0 : 0x22, sizeof(buf));
	CHECK(memcmp(got, buf, 4096) == 0);
	ce_vol_info vi;
	OK(ce_vol_info_get(p, "v", &vi));
	CHECK(strcmp(ce_sync_name(vi.sync), sync) == 0);
	ce_vol_close(v);
	OK(ce_pool_export(p));
	printf("sync=%-8s flush=%d: %s\n", sync, flush, expect_kept ? "kept" : "lost (as allowed)");
}

int
main(void)
{
	t_tmpdir();
	path = t_path("pool");
	o.vdev_size = 32ull << 20;
	o.txg_timeout_ms = 600000; /* nothing commits unless asked */
	ce_pool *p;
	OK(ce_pool_create("syncp", &path, 1, &o, &p));
	OK(ce_vol_create(p, "v", 1 << 20, NULL));
	CHECK_ERR(ce_vol_set(p, "v", "sync", "sometimes"), -EINVAL);
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.sync = 7;
	CHECK_ERR(ce_vol_create(p, "w", 1 << 20, &pr), -EINVAL);
	pr.sync = CE_SYNC_ALWAYS;
	OK(ce_vol_create(p, "w", 1 << 20, &pr));
	ce_vol_info vi;
	OK(ce_vol_info_get(p, "w", &vi));
	CHECK(vi.sync == CE_SYNC_ALWAYS);
	OK(ce_pool_export(p));

	scenario("standard", 0, 0);
	scenario("standard", 1, 1);
	scenario("always", 0, 1);
	scenario("disabled", 1, 0);
	printf("ok\n");
	return 0;
}
