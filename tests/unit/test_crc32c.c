/*
 * test_crc32c -- CRC32C (lib/common/crc32c.c) against the iSCSI test vectors of RFC 7143
 * Appendix B.4, on the hardware path and the table path, and incremental use (a digest
 * continued over pieces equals the digest of the whole) at every split and alignment.
 */
#include "t.h"
#include "crc32c.h"

int
main(void)
{
	uint8_t b[32];
	memset(b, 0, 32);
	CHECK(crc32c(0, b, 32) == 0x8a9136aau);
	CHECK(crc32c_sw(0, b, 32) == 0x8a9136aau);
	memset(b, 0xff, 32);
	CHECK(crc32c(0, b, 32) == 0x62a8ab43u);
	CHECK(crc32c_sw(0, b, 32) == 0x62a8ab43u);
	for (int i = 0; i < 32; i++)
		b[i] = (uint8_t)i;
	CHECK(crc32c(0, b, 32) == 0x46dd794eu);
	CHECK(crc32c_sw(0, b, 32) == 0x46dd794eu);
	for (int i = 0; i < 32; i++)
		b[i] = (uint8_t)(31 - i);
	CHECK(crc32c(0, b, 32) == 0x113fdb5cu);
	CHECK(crc32c_sw(0, b, 32) == 0x113fdb5cu);
	/* an iSCSI Read (10) command PDU, B.4's last vector */
	static const uint8_t pdu[48] = { 0x01, 0xc0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x14, 0, 0, 0,
		0, 0, 0x04, 0, 0, 0, 0, 0x14, 0, 0, 0, 0x18, 0x28, 0, 0, 0, 0, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0 };
	CHECK(crc32c(0, pdu, 48) == 0xd9963a56u);
	CHECK(crc32c_sw(0, pdu, 48) == 0xd9963a56u);
	/* incremental, unaligned: both paths agree with the whole */
	uint8_t big[1000];
	for (int i = 0; i < 1000; i++)
		big[i] = (uint8_t)(i * 131 + 7);
	uint32_t whole = crc32c_sw(0, big, 1000);
	CHECK(crc32c(0, big, 1000) == whole);
	for (int off = 0; off < 9; off++) {
		uint32_t w = crc32c_sw(0, big + off, 1000 - (size_t)off);
		for (size_t cut = 0; cut <= 1000 - (size_t)off; cut += 37) {
			CHECK(crc32c(crc32c(0, big + off, cut), big + off + cut, 1000 - (size_t)off - cut) == w);
			CHECK(crc32c_sw(crc32c_sw(0, big + off, cut), big + off + cut, 1000 - (size_t)off - cut) == w);
		}
	}
	printf("crc32c ok (%s path)\n", crc32c_hw() ? "SSE4.2" : "table");
	return 0;
}
