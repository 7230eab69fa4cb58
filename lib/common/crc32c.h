#ifndef CASK_COMMON_CRC32C_H
#define CASK_COMMON_CRC32C_H
/*
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78), as iSCSI's header
 * and data digests use it (RFC 7143 §13.1, Appendix B.4). The SSE4.2
 * crc32 instruction when the CPU has it (checked once), else a
 * slicing-by-8 table. crc32c(0, p, n) is the digest of p; continue a
 * running digest with crc32c(previous, more, m).
 */
#include <stddef.h>
#include <stdint.h>
uint32_t crc32c(uint32_t crc, const void *p, size_t n);
/* 1 when the hardware path is used (for the unit test's two-path check) */
int crc32c_hw(void);
/* the table path alone (unit test) */
uint32_t crc32c_sw(uint32_t crc, const void *p, size_t n);
#endif
