/*
 * test_vol_digest -- ce_vol_digest (vol checksum) is the documented
 * function of the logical bytes (docs/replication.md 12.11), computed here
 * independently from a model buffer; equal bytes give equal digests
 * whatever the block size, holes or history; snapshots keep theirs; a
 * changed byte changes it; an unreadable block is an error, not a digest.
 */
#include "t.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

/* The reference: the digest of `size` bytes of model, as docs/replication.md 12.11 defines it. */
static void
ref_digest(const uint8_t *model, uint64_t size, uint8_t out[16])
{
	XXH3_state_t st;
	XXH3_128bits_reset(&st);
	uint8_t le[8];
	for (int i = 0; i < 8; i++)
		le[i] = (uint8_t)(size >> (8 * i));
	XXH3_128bits_update(&st, le, 8);
	for (uint64_t off = 0; off < size; off += 1 << 20) {
		uint64_t len = size - off < (1 << 20) ? size - off : (1 << 20);
		XXH128_canonical_t c;
		XXH128_canonicalFromHash(&c, XXH3_128bits(model + off, len));
		XXH3_128bits_update(&st, c.digest, 16);
	}
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(&st));
	memcpy(out, c.digest, 16);
}

static void
digest_of(ce_pool *p, const char *name, uint8_t out[16])
{
	uint64_t size = 0;
	OK(ce_vol_checksum(p, name, out, &size));
	CHECK(size > 0);
}

int
main(void)
{
	t_tmpdir();
	const char *paths[] = { t_path("pool0") };
	ce_pool_opts o = { 0 };
	o.vdev_size = 128ull << 20;
	ce_pool *p;
	OK(ce_pool_create("tank", paths, 1, &o, &p));

	/* not a multiple of the chunk: the last chunk is 16 KiB */
	const uint64_t size = (5ull << 20) + 16384;
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	OK(ce_vol_create(p, "a", size, &pr));
	pr.volblocksize = 16384;
	pr.compress = CE_COMPRESS_ZSTD;
	OK(ce_vol_create(p, "b", size, &pr));
	uint8_t *model = calloc(1, size), *buf = malloc(1 << 20), *zero = calloc(1, 1 << 20);
	uint8_t da[16], db[16], want[16];

	/* empty volumes: all holes, the digest of zeros */
	ref_digest(model, size, want);
	digest_of(p, "a", da);
	digest_of(p, "b", db);
	CHECK(memcmp(da, want, 16) == 0 && memcmp(db, want, 16) == 0);

	ce_vol *a, *b;
	OK(ce_vol_open(p, "a", &a));
	OK(ce_vol_open(p, "b", &b));
	uint64_t seed = 7;
	for (int i = 0; i < 120; i++) {
		uint64_t off = t_rand(&seed) % (size - 70000), len = 1 + t_rand(&seed) % 70000;
		int kind = (int)(t_rand(&seed) % 4);
		if (kind == 0) {
			/* a hole on a, written zeros on b: the same logical bytes */
			off &= ~4095ull;
			len = (len + 4095) & ~4095ull;
			OK(ce_vol_trim(a, off, len));
			OK(ce_vol_write(b, zero, len, off));
			memset(model + off, 0, len);
		} else {
			t_fill(buf, len, seed);
			OK(ce_vol_write(a, buf, len, off));
			OK(ce_vol_write(b, buf, len, off));
			memcpy(model + off, buf, len);
		}
		if (i % 40 == 13)
			OK(ce_pool_sync(p));
	}
	/* and the last, short chunk */
	t_fill(buf, 3000, 5);
	OK(ce_vol_write(a, buf, 3000, size - 3000));
	OK(ce_vol_write(b, buf, 3000, size - 3000));
	memcpy(model + size - 3000, buf, 3000);
	ref_digest(model, size, want);
	digest_of(p, "a", da); /* dirty, not yet committed: reads see it */
	CHECK(memcmp(da, want, 16) == 0);
	OK(ce_pool_sync(p));
	digest_of(p, "a", da);
	digest_of(p, "b", db);
	CHECK(memcmp(da, want, 16) == 0 && memcmp(db, want, 16) == 0);

	/* per-chunk digests: the same function, and a range past the end is refused */
	uint8_t ch[6][16];
	OK(ce_vol_digest_chunks(a, 0, 6, ch));
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, XXH3_128bits(model + (5u << 20), 16384));
	CHECK(memcmp(ch[5], c.digest, 16) == 0);
	CHECK_ERR(ce_vol_digest_chunks(a, 5, 2, ch), -EINVAL);

	/* a snapshot keeps its digest; one changed byte changes the volume's */
	const char *sn[] = { "a@s" };
	int serr[1];
	OK(ce_snap_create(p, sn, 1, serr));
	buf[0] = model[4096 * 300] ^ 1;
	OK(ce_vol_write(a, buf, 1, 4096 * 300));
	uint8_t ds[16];
	digest_of(p, "a@s", ds);
	digest_of(p, "a", da);
	CHECK(memcmp(ds, want, 16) == 0 && memcmp(da, want, 16) != 0);
	model[4096 * 300] ^= 1;
	ref_digest(model, size, want);
	CHECK(memcmp(da, want, 16) == 0);
	/* the same bytes and a different size: a different digest (the size is hashed) */
	OK(ce_vol_create(p, "c", 4ull << 20, NULL));
	OK(ce_vol_create(p, "d", 8ull << 20, NULL));
	digest_of(p, "c", da);
	digest_of(p, "d", db);
	CHECK(memcmp(da, db, 16) != 0);
	CHECK_ERR(ce_vol_checksum(p, "nope", da, NULL), -ENOENT);
	ce_vol_close(a);
	ce_vol_close(b);

	/* an unreadable block is an error (after a reimport nothing is cached) */
	OK(ce_pool_export(p));
	OK(ce_pool_import(paths, 1, &o, &p));
	ce_fault f = { CE_FAULT_READ, -1, 0, 1 };
	OK(ce_pool_fault_inject(p, &f));
	int err = ce_vol_checksum(p, "a", da, NULL);
	CHECK(err == -EIO);
	ce_pool_fault_clear(p);
	OK(ce_pool_export(p));
	free(model);
	free(buf);
	free(zero);
	printf("ok\n");
	return 0;
}
