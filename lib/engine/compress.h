#ifndef CASK_ENGINE_COMPRESS_H
#define CASK_ENGINE_COMPRESS_H
#include <stddef.h>
/*
 * Compress src (len bytes) into dst (capacity cap). Returns the compressed
 * length, or 0 when the result would not be smaller than max_len (the
 * caller then stores the block uncompressed).
 */
size_t compress_block(int comp, const void *src, size_t len, void *dst, size_t cap, size_t max_len);
/* Decompress exactly lsize bytes; 0 or -EIO on malformed input. */
int decompress_block(int comp, const void *src, size_t psize, void *dst, size_t lsize);
/* Worst-case output size for a compressor call on len bytes. */
size_t compress_bound(size_t len);
#endif
