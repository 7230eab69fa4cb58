/*
 * proto.c -- replica protocol version 1: frame checksums, header checks,
 * version negotiation, the handshake MACs and the peer key
 * (docs/replica-protocol.md sections 2, 4, 9, 10, 11).
 *
 * Invariants:
 *   1. Nothing of a frame is trusted before rp_verify accepted it: the
 *      header check only bounds how many payload bytes to read (magic,
 *      length, version), and a receiver acts on the type, epoch and seq
 *      only after the XXH3-128 over the header (checksum field zero) and
 *      payload matched (section 11, steps 1-2).
 *   2. MACs are compared in constant time (CRYPTO_memcmp), and each role
 *      has its own label, so a peer's MAC reflected back never verifies.
 */
#include "proto.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

static void
digest(const rp_hdr *h, const void *payload, uint8_t out[16])
{
	rp_hdr z = *h;
	memset(z.rf_cksum, 0, sizeof(z.rf_cksum));
	XXH3_state_t st;
	XXH3_128bits_reset(&st);
	XXH3_128bits_update(&st, &z, sizeof(z));
	if (h->rf_len > 0)
		XXH3_128bits_update(&st, payload, h->rf_len);
	XXH128_hash_t d = XXH3_128bits_digest(&st);
	memcpy(out, &d.low64, 8);
	memcpy(out + 8, &d.high64, 8);
}

void
rp_hdr_init(rp_hdr *h, uint16_t type, uint32_t flags, uint32_t len, uint64_t ectr, uint64_t enode,
    uint64_t seq, uint64_t id)
{
	memset(h, 0, sizeof(*h));
	h->rf_magic = RP_MAGIC;
	h->rf_version = RP_VERSION;
	h->rf_type = type;
	h->rf_flags = flags;
	h->rf_len = len;
	h->rf_epoch_ctr = ectr;
	h->rf_epoch_node = enode;
	h->rf_seq = seq;
	h->rf_id = id;
}

void
rp_seal(rp_hdr *h, const void *payload, size_t plen)
{
	h->rf_len = (uint32_t)plen;
	digest(h, payload, h->rf_cksum);
}

void
rp_seal2(rp_hdr *h, const void *a, size_t an, const void *b, size_t bn)
{
	h->rf_len = (uint32_t)(an + bn);
	memset(h->rf_cksum, 0, sizeof(h->rf_cksum));
	XXH3_state_t st;
	XXH3_128bits_reset(&st);
	XXH3_128bits_update(&st, h, sizeof(*h));
	if (an > 0)
		XXH3_128bits_update(&st, a, an);
	if (bn > 0)
		XXH3_128bits_update(&st, b, bn);
	XXH128_hash_t d = XXH3_128bits_digest(&st);
	memcpy(h->rf_cksum, &d.low64, 8);
	memcpy(h->rf_cksum + 8, &d.high64, 8);
}

int
rp_check_header(const rp_hdr *h, uint32_t max_len, uint16_t version)
{
	if (h->rf_magic != RP_MAGIC || h->rf_len > max_len || h->rf_len > RP_MAX_PAYLOAD)
		return RPE_BAD_FRAME;
	if (version != 0 && h->rf_version != version)
		return RPE_VERSION_MISMATCH;
	return 0;
}

int
rp_verify(const rp_hdr *h, const void *payload)
{
	uint8_t d[16];
	digest(h, payload, d);
	return memcmp(d, h->rf_cksum, 16) == 0 ? 0 : RPE_BAD_CHECKSUM;
}

long
rp_payload_size(uint16_t type)
{
	switch (type) {
	case RP_HELLO: case RP_HELLO_REPLY: case RP_ERROR: return 256;
	case RP_AUTH: case RP_AUTH_OK: return 64;
	case RP_KEEPALIVE: case RP_KEEPALIVE_ACK: case RP_MB_ACK: case RP_OP_DONE: case RP_RETIRE:
		return 16;
	case RP_BYE: case RP_STATUS_REQ: case RP_APPLIED: case RP_DURABLE: case RP_FLUSH: return 0;
	case RP_CREATE: return 512;
	case RP_ATTACH: return 384;
	case RP_STATUS: case RP_PROMISE: case RP_EPOCH_STARTED: return RP_STATUS_SIZE;
	case RP_PREPARE: return 128;
	case RP_START_EPOCH: return 1296;
	case RP_TAIL_LIST: return 16;
	case RP_TAIL_BEGIN: return 528;
	case RP_SNAPSHOT: case RP_SNAP_DESTROY: return 320;
	case RP_SNAP_RENAME: return 576;
	case RP_ROLLBACK: return 320;
	case RP_RESIZE: return 16;
	case RP_TAIL_EXTENTS: case RP_TAIL_DATA: return -1;
	case RP_TRIM: return 16;
	case RP_ZERO: case RP_READ: return 24;
	case RP_MB_COMMIT: return 1280;
	case RP_RB_BEGIN: return 128;
	case RP_RB_STATE: return 144;
	case RP_RB_SCAN: case RP_RB_PROGRESS: case RP_CKSUM: return 48;
	case RP_RB_HOLE: case RP_RB_BAD: return 24;
	case RP_RB_READ: return 32;
	case RP_RB_CURSOR: case RP_RB_END: return 16;
	case RP_WRITE: case RP_READ_DATA: case RP_RB_RANGES: case RP_RB_DATA: case RP_CKSUM_REPLY: return -1;
	default: return -2;
	}
}

const char *
rp_type_name(uint16_t t)
{
	switch (t) {
	case RP_HELLO: return "HELLO";
	case RP_HELLO_REPLY: return "HELLO_REPLY";
	case RP_AUTH: return "AUTH";
	case RP_AUTH_OK: return "AUTH_OK";
	case RP_ERROR: return "ERROR";
	case RP_KEEPALIVE: return "KEEPALIVE";
	case RP_KEEPALIVE_ACK: return "KEEPALIVE_ACK";
	case RP_BYE: return "BYE";
	case RP_CREATE: return "CREATE";
	case RP_ATTACH: return "ATTACH";
	case RP_STATUS_REQ: return "STATUS_REQ";
	case RP_STATUS: return "STATUS";
	case RP_RETIRE: return "RETIRE";
	case RP_PREPARE: return "PREPARE";
	case RP_PROMISE: return "PROMISE";
	case RP_START_EPOCH: return "START_EPOCH";
	case RP_EPOCH_STARTED: return "EPOCH_STARTED";
	case RP_TAIL_LIST: return "TAIL_LIST";
	case RP_TAIL_EXTENTS: return "TAIL_EXTENTS";
	case RP_TAIL_BEGIN: return "TAIL_BEGIN";
	case RP_TAIL_DATA: return "TAIL_DATA";
	case RP_SNAPSHOT: return "SNAPSHOT";
	case RP_SNAP_DESTROY: return "SNAP_DESTROY";
	case RP_SNAP_RENAME: return "SNAP_RENAME";
	case RP_ROLLBACK: return "ROLLBACK";
	case RP_RESIZE: return "RESIZE";
	case RP_WRITE: return "WRITE";
	case RP_TRIM: return "TRIM";
	case RP_ZERO: return "ZERO";
	case RP_MB_COMMIT: return "MB_COMMIT";
	case RP_MB_ACK: return "MB_ACK";
	case RP_APPLIED: return "APPLIED";
	case RP_DURABLE: return "DURABLE";
	case RP_FLUSH: return "FLUSH";
	case RP_OP_DONE: return "OP_DONE";
	case RP_READ: return "READ";
	case RP_READ_DATA: return "READ_DATA";
	case RP_CKSUM: return "CKSUM";
	case RP_CKSUM_REPLY: return "CKSUM_REPLY";
	case RP_RB_BEGIN: return "RB_BEGIN";
	case RP_RB_STATE: return "RB_STATE";
	case RP_RB_SCAN: return "RB_SCAN";
	case RP_RB_RANGES: return "RB_RANGES";
	case RP_RB_DATA: return "RB_DATA";
	case RP_RB_HOLE: return "RB_HOLE";
	case RP_RB_READ: return "RB_READ";
	case RP_RB_BAD: return "RB_BAD";
	case RP_RB_PROGRESS: return "RB_PROGRESS";
	case RP_RB_CURSOR: return "RB_CURSOR";
	case RP_RB_END: return "RB_END";
	default: return "?";
	}
}

static const struct {
	uint32_t code;
	const char *name;
	int err;
} errs[] = {
	{ RPE_BAD_FRAME, "BAD_FRAME", EPROTO }, { RPE_BAD_CHECKSUM, "BAD_CHECKSUM", EBADMSG },
	{ RPE_UNKNOWN_TYPE, "UNKNOWN_TYPE", EPROTO },
	{ RPE_VERSION_MISMATCH, "VERSION_MISMATCH", EPROTONOSUPPORT },
	{ RPE_AUTH_REQUIRED, "AUTH_REQUIRED", EACCES }, { RPE_AUTH_FAILED, "AUTH_FAILED", EACCES },
	{ RPE_BUSY, "BUSY", EBUSY }, { RPE_DUPLICATE_ID, "DUPLICATE_ID", EEXIST },
	{ RPE_VOLUME_NOT_FOUND, "VOLUME_NOT_FOUND", ENOENT }, { RPE_VOLUME_EXISTS, "VOLUME_EXISTS", EEXIST },
	{ RPE_POOL_NOT_FOUND, "POOL_NOT_FOUND", ENOENT }, { RPE_NOT_A_REPLICA, "NOT_A_REPLICA", EINVAL },
	{ RPE_WRONG_VOLUME, "WRONG_VOLUME", EXDEV }, { RPE_NO_SPACE, "NO_SPACE", ENOSPC },
	{ RPE_INVALID_ARGUMENT, "INVALID_ARGUMENT", EINVAL }, { RPE_INVALID_RANGE, "INVALID_RANGE", EINVAL },
	{ RPE_IO_ERROR, "IO_ERROR", EIO }, { RPE_POOL_SUSPENDED, "POOL_SUSPENDED", EIO },
	{ RPE_REPLICA_SYNC_DISABLED, "REPLICA_SYNC_DISABLED", EINVAL },
	{ RPE_STALE_EPOCH, "STALE_EPOCH", ESTALE }, { RPE_NOT_PROMISED, "NOT_PROMISED", ESTALE },
	{ RPE_PROMISED_ELSEWHERE, "PROMISED_ELSEWHERE", ESTALE }, { RPE_NOT_SESSION, "NOT_SESSION", ESTALE },
	{ RPE_EPOCH_REFUSED, "EPOCH_REFUSED", ESTALE }, { RPE_SEQUENCE_GAP, "SEQUENCE_GAP", EPROTO },
	{ RPE_SEQUENCE_DUP, "SEQUENCE_DUP", EPROTO }, { RPE_LAGGING, "LAGGING", EAGAIN },
	{ RPE_MB_STALE, "MB_STALE", ESTALE }, { RPE_RETIRED, "RETIRED", ESHUTDOWN },
	{ RPE_TAIL_UNKNOWN, "TAIL_UNKNOWN", ERANGE },
	{ RPE_INTERNAL, "INTERNAL", EIO },
};

const char *
rp_err_name(uint32_t code)
{
	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
		if (errs[i].code == code)
			return errs[i].name;
	return "?";
}

int
rp_err_errno(uint32_t code)
{
	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
		if (errs[i].code == code)
			return errs[i].err;
	return EIO;
}

uint16_t
rp_negotiate(uint16_t amin, uint16_t amax, uint16_t bmin, uint16_t bmax)
{
	uint16_t lo = amin > bmin ? amin : bmin, hi = amax < bmax ? amax : bmax;
	return lo <= hi && lo > 0 ? hi : 0;
}

void
rp_mac(int role, const uint8_t *key, size_t keylen, const uint8_t nonce_c[RP_NONCE],
    const uint8_t nonce_r[RP_NONCE], uint64_t inst_c, uint64_t inst_r, uint16_t version,
    uint8_t out[RP_MAC])
{
	static const char lc[] = "cask-rp1 controller", lr[] = "cask-rp1 replica";
	uint8_t msg[sizeof(lc) - 1 + 2 * RP_NONCE + 16 + 2];
	size_t n = 0;
	const char *label = role == 0 ? lc : lr;
	size_t ll = role == 0 ? sizeof(lc) - 1 : sizeof(lr) - 1;
	memcpy(msg + n, label, ll);
	n += ll;
	memcpy(msg + n, role == 0 ? nonce_c : nonce_r, RP_NONCE);
	n += RP_NONCE;
	memcpy(msg + n, role == 0 ? nonce_r : nonce_c, RP_NONCE);
	n += RP_NONCE;
	uint64_t a = role == 0 ? inst_c : inst_r, b = role == 0 ? inst_r : inst_c;
	memcpy(msg + n, &a, 8);
	n += 8;
	memcpy(msg + n, &b, 8);
	n += 8;
	memcpy(msg + n, &version, 2);
	n += 2;
	unsigned olen = RP_MAC;
	HMAC(EVP_sha256(), key, (int)keylen, msg, n, out, &olen);
}

int
rp_mac_equal(const uint8_t a[RP_MAC], const uint8_t b[RP_MAC])
{
	return CRYPTO_memcmp(a, b, RP_MAC) == 0;
}

int
rp_key_load(const char *path, uint8_t **key, size_t *len, const char **why)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*why = "cannot open it";
		return -errno;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		*why = "not a regular file";
		return -EINVAL;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		close(fd);
		*why = "readable by group or others (chmod 600 it)";
		return -EPERM;
	}
	if (st.st_size > 4096) {
		close(fd);
		*why = "longer than 4096 bytes";
		return -EINVAL;
	}
	uint8_t *b = malloc((size_t)st.st_size + 1);
	ssize_t n = b ? read(fd, b, (size_t)st.st_size) : -1;
	close(fd);
	if (n != st.st_size) {
		free(b);
		*why = "cannot read it";
		return -EIO;
	}
	if (n > 0 && b[n - 1] == '\n')
		n--;
	if (n < 32) {
		free(b);
		*why = "shorter than 32 bytes";
		return -EINVAL;
	}
	*key = b;
	*len = (size_t)n;
	return 0;
}

void
rp_error_fill(rp_error *e, uint32_t code, uint64_t ref_id, uint64_t ref_seq, int fatal,
    const char *fmt, ...)
{
	memset(e, 0, sizeof(*e));
	e->er_code = code;
	e->er_errno = (uint32_t)rp_err_errno(code);
	e->er_ref_id = ref_id;
	e->er_ref_seq = ref_seq;
	e->er_fatal = (uint8_t)(fatal != 0);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->er_msg, sizeof(e->er_msg), fmt, ap);
	va_end(ap);
}
