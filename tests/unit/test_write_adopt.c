/*
 * test_write_adopt -- ce_vol_write_adopt (the NBD frontend's copy-free
 * write): adopted block buffers read back as written, mixed with copied
 * writes, trims and syncs, across more than one put batch (256 blocks) and
 * an export/import; bad calls fail with a clear error and free every
 * buffer (the sanitizer build would report a leak); an adoption that runs
 * out of space keeps what it put and frees the rest; the log replays
 * adopted writes after a crash.
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

/* n block buffers of bs bytes filled from seed; the same bytes into model at off. */
static void **
blocks(uint32_t bs, size_t n, uint64_t seed, uint8_t *model, uint64_t off)
{
	void **b = malloc(n * sizeof(*b));
	for (size_t i = 0; i < n; i++) {
		b[i] = ce_blockbuf_get(bs);
		t_fill(b[i], bs, seed + i);
		if (model != NULL)
			memcpy(model + off + i * bs, b[i], bs);
	}
	return b;
}

static int
adopt(ce_vol *v, uint32_t bs, size_t n, uint64_t seed, uint8_t *model, uint64_t off, unsigned flags)
{
	void **b = blocks(bs, n, seed, model, off);
	int err = ce_vol_write_adopt(v, b, n, off, flags);
	free(b); /* the array is ours; the buffers are the engine's */
	return err;
}

int
main(void)
{
	t_tmpdir();
	const char *paths[] = { t_path("pool0") };
	ce_pool_opts o = { 0 };
	o.vdev_size = 96ull << 20;
	ce_pool *p;
	OK(ce_pool_create("tank", paths, 1, &o, &p));

	const uint64_t size = 16ull << 20;
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	OK(ce_vol_create(p, "v", size, &pr));
	pr.volblocksize = 16384;
	OK(ce_vol_create(p, "v16", size, &pr));

	const char *names[] = { "v", "v16" };
	uint8_t *models[2];
	for (int n = 0; n < 2; n++) {
		ce_vol *v;
		OK(ce_vol_open(p, names[n], &v));
		uint32_t bs = ce_vol_blocksize(v);
		uint64_t nblocks = size / bs;
		uint8_t *model = models[n] = calloc(1, size);
		uint8_t *buf = malloc(1 << 20);
		uint64_t seed = 7 + (uint64_t)n;
		for (int i = 0; i < 300; i++) {
			uint64_t r = t_rand(&seed);
			if (i % 5 == 0) {
				/* a copied write, unaligned, over adopted blocks */
				uint64_t off = r % (size - 70000), len = 1 + t_rand(&seed) % 70000;
				t_fill(buf, len, seed);
				OK(ce_vol_write(v, buf, len, off));
				memcpy(model + off, buf, len);
			} else if (i % 23 == 0) {
				uint64_t off = r % (size - 300000), len = t_rand(&seed) % 300000;
				OK(ce_vol_trim(v, off, len));
				memset(model + off, 0, len);
			} else {
				/* up to 600 blocks: more than one put batch */
				size_t nb = 1 + (size_t)(t_rand(&seed) % (i % 7 == 0 ? 600 : 40));
				if (nb > nblocks)
					nb = (size_t)nblocks;
				uint64_t blk = r % (nblocks - nb + 1);
				OK(adopt(v, bs, nb, seed, model, blk * bs, i % 11 == 0 ? CE_WRITE_FUA : 0));
			}
			if (i % 60 == 13)
				OK(ce_pool_sync(p));
			if (i % 29 == 0)
				expect(v, model, 0, size);
		}
		expect(v, model, 0, size);

		/* bad calls: an error, nothing changed, every buffer freed */
		void **b = blocks(bs, 3, 1, NULL, 0);
		CHECK_ERR(ce_vol_write_adopt(v, b, 3, bs / 2, 0), -EINVAL);
		free(b);
		b = blocks(bs, 3, 1, NULL, 0);
		CHECK_ERR(ce_vol_write_adopt(v, b, 3, size - bs, 0), -EINVAL);
		free(b);
		CHECK_ERR(ce_vol_write_adopt(v, NULL, 2, 0, 0), -EINVAL);
		OK(ce_vol_write_adopt(v, NULL, 0, 0, 0));
		expect(v, model, 0, size);
		OK(ce_pool_sync(p));
		expect(v, model, 0, size);
		ce_vol_close(v);
		free(buf);
	}

	/* a snapshot is read-only: -EROFS, buffers freed */
	const char *sn[] = { "v@s" };
	int serr[1];
	OK(ce_snap_create(p, sn, 1, serr));
	ce_vol *s;
	OK(ce_vol_open(p, "v@s", &s));
	void **b = blocks(4096, 2, 1, NULL, 0);
	CHECK_ERR(ce_vol_write_adopt(s, b, 2, 0, 0), -EROFS);
	free(b);
	ce_vol_close(s);

	/* export, import: everything adopted is on disk */
	OK(ce_pool_export(p));
	OK(ce_pool_import(paths, 1, &o, &p));
	for (int n = 0; n < 2; n++) {
		ce_vol *v;
		OK(ce_vol_open(p, names[n], &v));
		expect(v, models[n], 0, size);
		ce_vol_close(v);
	}

	/* a crash after a FUA adoption: the log brings it back */
	ce_vol *v;
	OK(ce_vol_open(p, "v", &v));
	OK(adopt(v, 4096, 300, 4242, models[0], 1 << 20, CE_WRITE_FUA));
	ce_vol_close(v);
	ce_pool_abandon(p);
	OK(ce_pool_import(paths, 1, &o, &p));
	OK(ce_vol_open(p, "v", &v));
	expect(v, models[0], 0, size);

	/* a full pool: -ENOSPC; the blocks put before it read back, the rest freed */
	OK(ce_vol_create(p, "big", 1ull << 30, NULL));
	ce_vol *big;
	OK(ce_vol_open(p, "big", &big));
	uint64_t off = 0;
	int err = 0;
	while (err == 0 && off < (1ull << 30)) {
		err = adopt(big, 4096, 512, off, NULL, off, 0);
		if (err == 0)
			off += 512 * 4096;
	}
	CHECK_ERR(err, -ENOSPC);
	printf("full after %" PRIu64 " MiB adopted\n", off >> 20);
	uint8_t *got = malloc(512 * 4096), *want = malloc(4096);
	OK(ce_vol_read(big, got, 512 * 4096, off - 512 * 4096));
	for (int i = 0; i < 512; i++) {
		t_fill(want, 4096, off - 512 * 4096 + (uint64_t)i);
		CHECK(memcmp(got + (size_t)i * 4096, want, 4096) == 0);
	}
	free(got);
	free(want);
	ce_vol_close(big);
	expect(v, models[0], 0, size);
	ce_vol_close(v);

	ce_pool_stat st;
	OK(ce_pool_stat_get(p, &st));
	CHECK(st.cksum_errors == 0);
	OK(ce_pool_export(p));
	free(models[0]);
	free(models[1]);
	printf("ok\n");
	return 0;
}
