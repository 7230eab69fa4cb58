/*
 * ctlframe.h -- the control protocol's frame header, shared by caskd
 * (daemon/ctl/server.c) and libcask (lib/client/client.c). Byte layout in
 * docs/control-protocol.md: 16 bytes, little-endian.
 */
#ifndef CASK_COMMON_CTLFRAME_H
#define CASK_COMMON_CTLFRAME_H
#include <stdint.h>
#include <string.h>

#define CTL_MAGIC 0x4b534143u /* "CASK" */
#define CTL_VERSION 1
#define CTL_MAX (1u << 20)    /* largest payload */
enum { CTL_REQ = 1, CTL_RESP = 2 };

typedef struct ctl_hdr {
	uint32_t magic;
	uint16_t version, kind;
	uint32_t id, length;
} ctl_hdr;

static inline void
ctl_hdr_encode(uint8_t out[16], uint16_t kind, uint32_t id, uint32_t length)
{
	uint32_t magic = CTL_MAGIC;
	uint16_t version = CTL_VERSION;
	memcpy(out, &magic, 4);
	memcpy(out + 4, &version, 2);
	memcpy(out + 6, &kind, 2);
	memcpy(out + 8, &id, 4);
	memcpy(out + 12, &length, 4);
}

static inline void
ctl_hdr_decode(const uint8_t in[16], ctl_hdr *h)
{
	memcpy(&h->magic, in, 4);
	memcpy(&h->version, in + 4, 2);
	memcpy(&h->kind, in + 6, 2);
	memcpy(&h->id, in + 8, 4);
	memcpy(&h->length, in + 12, 4);
}
#endif
