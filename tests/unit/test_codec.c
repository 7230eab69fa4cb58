/*
 * test_codec -- checksums and compression: known-answer SHA-256, xxh3
 * stability, every bit flip detected, compressors round-trip and refuse
 * to store blocks that would not save a sector, damaged compressed input
 * is an error and never garbage.
 */
#include "t.h"
#include "checksum.h"
#include "compress.h"
#include "phys.h"

int
main(void)
{
	uint8_t ck[32];
	/* SHA-256("abc") */
	static const uint8_t abc[32] = { 0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
		0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10,
		0xff, 0x61, 0xf2, 0x00, 0x15, 0xad };
	checksum_compute(CE_CK_SHA256, "abc", 3, ck);
	CHECK(memcmp(ck, abc, 32) == 0);
	CHECK(checksum_verify(CE_CK_SHA256, "abc", 3, abc));
	CHECK(!checksum_verify(7, "abc", 3, abc));
	/* xxh3-128 of the empty input is a fixed value; upper 16 bytes are zero */
	checksum_compute(CE_CK_XXH128, "", 0, ck);
	static const uint8_t zero16[16];
	CHECK(memcmp(ck + 16, zero16, 16) == 0);
	uint8_t ck2[32];
	checksum_compute(CE_CK_XXH128, "", 0, ck2);
	CHECK(memcmp(ck, ck2, 32) == 0);

	uint8_t *blk = malloc(16384), *out = malloc(16384);
	t_fill(blk, 16384, 5);
	for (int type = 1; type <= 2; type++) {
		checksum_compute(type, blk, 16384, ck);
		for (int bit = 0; bit < 16384 * 8; bit += 97) {
			blk[bit / 8] ^= (uint8_t)(1 << (bit % 8));
			CHECK(!checksum_verify(type, blk, 16384, ck));
			blk[bit / 8] ^= (uint8_t)(1 << (bit % 8));
		}
		CHECK(checksum_verify(type, blk, 16384, ck));
	}

	size_t cap = compress_bound(16384);
	uint8_t *c = malloc(cap);
	for (int comp = 1; comp <= 2; comp++) {
		/* incompressible: refused */
		CHECK(compress_block(comp, blk, 16384, c, cap, 16384 - 4096) == 0);
		/* compressible: round trip */
		uint8_t *txt = malloc(16384);
		for (int i = 0; i < 16384; i++)
			txt[i] = (uint8_t)("cask block storage "[i % 19]);
		size_t n = compress_block(comp, txt, 16384, c, cap, 16384 - 4096);
		CHECK(n > 0 && n < 4096);
		OK(decompress_block(comp, c, n, out, 16384));
		CHECK(memcmp(out, txt, 16384) == 0);
		/* wrong size and damaged input are errors */
		CHECK_ERR(decompress_block(comp, c, n, out, 8192), -EIO);
		/* truncated input cannot produce the full block */
		CHECK_ERR(decompress_block(comp, c, 3, out, 16384), -EIO);
		free(txt);
	}
	CHECK_ERR(decompress_block(9, c, 10, out, 16384), -EIO);
	free(c);
	free(blk);
	free(out);
	printf("ok\n");
	return 0;
}
