/*
 * checksum.c -- block checksums.
 *
 * Owns the mapping from a checksum type (bp_cksum_type) to an algorithm:
 *   1 xxh3-128 (libxxhash): fast, the default for data and metadata;
 *   2 sha256 (OpenSSL EVP): cryptographic, for users who want it.
 * Invariants:
 *   1. The stored form is fixed by docs/on-disk-format.md: xxh3-128 as
 *      low64 then high64, little-endian, zero-padded to 32 bytes.
 *   2. An unknown type never verifies (corrupt pointers read as EIO).
 */
#include "checksum.h"
#include "phys.h"
#include "util.h"

#include <openssl/evp.h>
#include <string.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

int
checksum_valid_type(int type)
{
	return type == CE_CK_XXH128 || type == CE_CK_SHA256;
}

void
checksum_compute(int type, const void *buf, size_t len, uint8_t out[32])
{
	memset(out, 0, 32);
	if (type == CE_CK_XXH128) {
		XXH128_hash_t h = XXH3_128bits(buf, len);
		memcpy(out, &h.low64, 8);
		memcpy(out + 8, &h.high64, 8);
	} else {
		unsigned int n = 0;
		VERIFY3U(type, ==, CE_CK_SHA256);
		VERIFY(EVP_Digest(buf, len, out, &n, EVP_sha256(), NULL) == 1);
		VERIFY3U(n, ==, 32);
	}
}

int
checksum_verify(int type, const void *buf, size_t len, const uint8_t expect[32])
{
	uint8_t got[32];
	if (!checksum_valid_type(type))
		return 0;
	checksum_compute(type, buf, len, got);
	return memcmp(got, expect, 32) == 0;
}
