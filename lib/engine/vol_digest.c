/*
 * vol_digest.c -- the digest of a volume's logical contents
 * (docs/replication.md section 12.11): what `cask vol checksum` prints and
 * what online verify compares chunk by chunk.
 *
 * The volume is cut into chunks of CE_DIGEST_CHUNK bytes (the last one
 * shorter when the size is not a multiple). A chunk's digest is
 * XXH3-128 of its logical bytes, holes read as zeros; the volume's digest
 * is XXH3-128 of (u64 size little-endian || L_0 || L_1 || ...), each L_i
 * the 16 bytes of chunk i's digest in canonical (big-endian) order
 * (XXH128_canonicalFromHash). So two volumes with the same bytes and size
 * have the same digest whatever their block size, compression, checksum
 * type, history or which parts are holes.
 *
 * Invariants:
 *   1. Digests depend on logical bytes only: a hole chunk's digest is
 *      that of CE_DIGEST_CHUNK zero bytes (computed once, not read), and
 *      a chunk with holes reads only its data extents into a zeroed
 *      buffer.
 *   2. A damaged block is an error (-EIO from the read), never a digest.
 *   3. Reads go through ce_vol_read, so a live volume is digested as of
 *      the reads (concurrent writes may or may not be seen); a snapshot's
 *      digest is stable.
 */
#include "util.h"

#include <cask/engine.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

static void
canon(XXH128_hash_t h, uint8_t out[16])
{
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, h);
	memcpy(out, c.digest, 16);
}

/* buf: CE_DIGEST_CHUNK bytes of scratch; zero: CE_DIGEST_CHUNK zero bytes' digest (full chunks). */
static int
chunk_digest(ce_vol *v, uint64_t off, uint64_t len, uint8_t *buf, const uint8_t zero[16], uint8_t out[16])
{
	ce_extent ext[64];
	size_t n;
	uint64_t at = off, end = off + len;
	int any_data = 0, err;
	memset(buf, 0, len);
	while (at < end) {
		if ((err = ce_vol_map(v, at, end - at, ext, sizeof(ext) / sizeof(ext[0]), &n)) != 0)
			return err;
		if (n == 0)
			return -EIO; /* the map covers every in-range byte: never reached on a sound volume */
		for (size_t i = 0; i < n; i++) {
			/* invariant 1: the extents tile [at, end) in order, so each byte is read or left zero once */
			ASSERT(ext[i].offset == at && ext[i].length > 0 && ext[i].length <= end - at);
			if (!(ext[i].flags & CE_EXTENT_HOLE)) {
				any_data = 1;
				if ((err = ce_vol_read(v, buf + (ext[i].offset - off), ext[i].length, ext[i].offset)) != 0)
					return err;
			}
			at = ext[i].offset + ext[i].length;
		}
	}
	if (!any_data && len == CE_DIGEST_CHUNK)
		memcpy(out, zero, 16);
	else
		canon(XXH3_128bits(buf, len), out);
	return 0;
}

int
ce_vol_digest_chunks(ce_vol *v, uint64_t first, uint64_t n, uint8_t (*out)[16])
{
	uint64_t size = ce_vol_size(v);
	uint64_t nchunks = (size + CE_DIGEST_CHUNK - 1) / CE_DIGEST_CHUNK;
	if (first > nchunks || n > nchunks - first)
		return err_set(-EINVAL, "chunks %llu..%llu are past the volume's %llu",
		    (unsigned long long)first, (unsigned long long)(first + n), (unsigned long long)nchunks);
	uint8_t *buf = malloc(CE_DIGEST_CHUNK);
	if (buf == NULL)
		return -ENOMEM;
	uint8_t zero[16];
	memset(buf, 0, CE_DIGEST_CHUNK);
	canon(XXH3_128bits(buf, CE_DIGEST_CHUNK), zero);
	int err = 0;
	for (uint64_t i = 0; i < n && err == 0; i++) {
		uint64_t off = (first + i) * CE_DIGEST_CHUNK;
		uint64_t len = size - off < CE_DIGEST_CHUNK ? size - off : CE_DIGEST_CHUNK;
		err = chunk_digest(v, off, len, buf, zero, out[i]);
	}
	free(buf);
	return err;
}

int
ce_vol_digest(ce_vol *v, uint8_t out[16])
{
	uint64_t size = ce_vol_size(v);
	uint64_t nchunks = (size + CE_DIGEST_CHUNK - 1) / CE_DIGEST_CHUNK;
	enum { BATCH = 64 };
	uint8_t d[BATCH][16], le[8];
	XXH3_state_t *st = XXH3_createState();
	if (st == NULL)
		return -ENOMEM;
	XXH3_128bits_reset(st);
	for (int i = 0; i < 8; i++)
		le[i] = (uint8_t)(size >> (8 * i));
	XXH3_128bits_update(st, le, sizeof(le));
	int err = 0;
	for (uint64_t c = 0; c < nchunks && err == 0; c += BATCH) {
		uint64_t k = nchunks - c < BATCH ? nchunks - c : BATCH;
		if ((err = ce_vol_digest_chunks(v, c, k, d)) == 0)
			XXH3_128bits_update(st, d, k * 16);
	}
	if (err == 0)
		canon(XXH3_128bits_digest(st), out);
	XXH3_freeState(st);
	return err;
}

int
ce_vol_checksum(ce_pool *p, const char *name, uint8_t out[16], uint64_t *size)
{
	ce_vol *v;
	int err = ce_vol_open(p, name, &v);
	if (err != 0)
		return err;
	if (size != NULL)
		*size = ce_vol_size(v);
	err = ce_vol_digest(v, out);
	ce_vol_close(v);
	return err;
}
