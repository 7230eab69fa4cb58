/*
 * compress.c -- block compression with liblz4 and libzstd.
 *
 * Invariants:
 *   1. A block is stored compressed only if that saves at least one
 *      sector; the caller passes that limit as max_len.
 *   2. Decompression must produce exactly the logical size, else the
 *      block is treated as corrupt (-EIO), never returned as data.
 */
#include "compress.h"
#include "phys.h"
#include "util.h"

#include <errno.h>
#include <lz4.h>
#include <zstd.h>

#define ZSTD_LEVEL 3

size_t
compress_bound(size_t len)
{
	size_t a = (size_t)LZ4_compressBound((int)len);
	size_t b = ZSTD_compressBound(len);
	return MAX(a, b);
}

size_t
compress_block(int comp, const void *src, size_t len, void *dst, size_t cap, size_t max_len)
{
	size_t n = 0;
	if (comp == CE_COMP_LZ4) {
		int r = LZ4_compress_default(src, dst, (int)len, (int)cap);
		n = r > 0 ? (size_t)r : 0;
	} else if (comp == CE_COMP_ZSTD) {
		size_t r = ZSTD_compress(dst, cap, src, len, ZSTD_LEVEL);
		n = ZSTD_isError(r) ? 0 : r;
	}
	if (n == 0 || n > max_len)
		return 0;
	VERIFY3U(n, <=, cap);
	ASSERT3U(n, <, len); /* invariant 1: stored compressed only when smaller */
	return n;
}

int
decompress_block(int comp, const void *src, size_t psize, void *dst, size_t lsize)
{
	if (comp == CE_COMP_LZ4) {
		int r = LZ4_decompress_safe(src, dst, (int)psize, (int)lsize);
		return r == (int)lsize ? 0 : -EIO;
	}
	if (comp == CE_COMP_ZSTD) {
		size_t r = ZSTD_decompress(dst, lsize, src, psize);
		return (!ZSTD_isError(r) && r == lsize) ? 0 : -EIO;
	}
	return -EIO;
}
