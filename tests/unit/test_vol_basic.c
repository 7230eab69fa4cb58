/*
 * test_vol_basic -- volumes read back what was written, across syncs,
 * partial blocks, trims, and an export/import cycle.
 */
#include "t.h"

static void
expect(ce_vol *v, const uint8_t *model, uint64_t off, uint64_t len)
{
	uint8_t *buf = malloc(len);
	OK(ce_vol_read(v, buf, len, off));
	CHECK(memcmp(buf, model + off, len) == 0);
	free(buf);
}

int
main(void)
{
	t_tmpdir();
	const char *paths[] = { t_path("pool0") };
	ce_pool_opts o = { 0 };
	o.vdev_size = 64ull << 20;
	ce_pool *p;
	OK(ce_pool_create("tank", paths, 1, &o, &p));

	const uint64_t size = 8ull << 20;
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	OK(ce_vol_create(p, "v", size, &pr));
	pr.volblocksize = 16384;
	OK(ce_vol_create(p, "v16", size, &pr));
	CHECK_ERR(ce_vol_create(p, "v", size, NULL), -EEXIST);

	const char *names[] = { "v", "v16" };
	for (int n = 0; n < 2; n++) {
		ce_vol *v;
		OK(ce_vol_open(p, names[n], &v));
		uint8_t *model = calloc(1, size);
		uint8_t *buf = malloc(1 << 20);
		/* fresh volume reads zeros */
		expect(v, model, 0, size);
		/* aligned and unaligned writes */
		uint64_t seed = 1;
		for (int i = 0; i < 200; i++) {
			uint64_t off = t_rand(&seed) % (size - 70000);
			uint64_t len = 1 + t_rand(&seed) % 70000;
			if (i % 3 == 0) {
				off &= ~4095ull;
				len = (len + 4095) & ~4095ull;
			}
			t_fill(buf, len, seed);
			OK(ce_vol_write(v, buf, len, off));
			memcpy(model + off, buf, len);
			if (i % 50 == 7)
				OK(ce_pool_sync(p));
			if (i % 17 == 0)
				expect(v, model, off > 5000 ? off - 5000 : 0, 90000);
		}
		expect(v, model, 0, size);
		OK(ce_pool_sync(p));
		expect(v, model, 0, size);
		/* trim: small and ranged, aligned and not */
		OK(ce_vol_trim(v, 4096, 8192));
		memset(model + 4096, 0, 8192);
		OK(ce_vol_trim(v, 1000, 3000));
		memset(model + 1000, 0, 3000);
		OK(ce_vol_trim(v, 1 << 20, 3 << 20));
		memset(model + (1 << 20), 0, 3 << 20);
		OK(ce_vol_trim(v, 12345, 2000000));
		memset(model + 12345, 0, 2000000);
		expect(v, model, 0, size);
		/* write into a range trimmed in the same txg */
		t_fill(buf, 9000, 99);
		OK(ce_vol_write(v, buf, 9000, (2 << 20) + 100));
		memcpy(model + (2 << 20) + 100, buf, 9000);
		expect(v, model, 0, size);
		OK(ce_pool_sync(p));
		expect(v, model, 0, size);
		/* out of range */
		CHECK_ERR(ce_vol_write(v, buf, 4096, size - 100), -EINVAL);
		CHECK_ERR(ce_vol_read(v, buf, 1, size), -EINVAL);
		ce_vol_close(v);
		/* persist */
		OK(ce_pool_export(p));
		OK(ce_pool_import(paths, 1, &o, &p));
		OK(ce_vol_open(p, names[n], &v));
		expect(v, model, 0, size);
		ce_vol_close(v);
		free(model);
		free(buf);
	}
	ce_pool_stat st;
	OK(ce_pool_stat_get(p, &st));
	CHECK(st.cksum_errors == 0);
	CHECK(st.nvols == 2);
	OK(ce_pool_export(p));
	printf("ok\n");
	return 0;
}
