#ifndef CASK_ENGINE_CHECKSUM_H
#define CASK_ENGINE_CHECKSUM_H
#include <stddef.h>
#include <stdint.h>
/* Fill out[32] with the checksum of type (CE_CK_*) over buf. */
void checksum_compute(int type, const void *buf, size_t len, uint8_t out[32]);
/* 1 when buf matches expect[32]. */
int checksum_verify(int type, const void *buf, size_t len, const uint8_t expect[32]);
int checksum_valid_type(int type);
#endif
