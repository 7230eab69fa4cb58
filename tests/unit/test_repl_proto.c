/*
 * test_repl_proto -- the replica protocol codec (daemon/repl/proto.c,
 * docs/replica-protocol.md): frames sealed and verified; every single
 * flipped bit of a header or payload is refused (by the header check or
 * the checksum) before anything in the frame is used; header limits
 * (magic, length over the limit, version); version negotiation; the
 * handshake MACs against an independent HMAC-SHA256 of the message
 * section 4.3 spells out (and distinct per role, key, nonce and
 * version); the peer key file rules.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <fcntl.h>

#include "t.h"
#include "../../daemon/repl/proto.h"

static void
frame(rp_hdr *h, uint8_t *pl, size_t n, uint64_t seed)
{
	t_fill(pl, n, seed);
	rp_hdr_init(h, RP_WRITE, RPF_FUA, 0, 7, 0x3f2a9c01d4e5b6a7ull, 1000 + seed, seed);
	rp_seal(h, pl, n);
}

static void
test_frames(void)
{
	uint8_t pl[4096 + 16];
	rp_hdr h;
	for (uint64_t s = 1; s <= 20; s++) {
		size_t n = (size_t)(s * 211 % sizeof(pl));
		frame(&h, pl, n, s);
		CHECK(rp_check_header(&h, RP_MAX_PAYLOAD, RP_VERSION) == 0);
		CHECK(rp_verify(&h, pl) == 0);
		CHECK(h.rf_len == n);
	}
	/* every bit of a header and of a 600-byte payload */
	size_t n = 600;
	frame(&h, pl, n, 99);
	unsigned refused_hdr = 0, refused_ck = 0;
	for (size_t bit = 0; bit < (RP_HDR_SIZE + n) * 8; bit++) {
		rp_hdr c = h;
		uint8_t p2[700];
		memcpy(p2, pl, n);
		uint8_t *b = bit < RP_HDR_SIZE * 8 ? (uint8_t *)&c + bit / 8 : p2 + (bit / 8 - RP_HDR_SIZE);
		*b ^= (uint8_t)(1u << (bit % 8));
		int hc = rp_check_header(&c, RP_MAX_PAYLOAD, RP_VERSION);
		if (hc != 0) {
			refused_hdr++;
			continue;
		}
		/* a length flipped upward reads more payload: give it zeros beyond */
		static uint8_t big[RP_MAX_PAYLOAD];
		memcpy(big, p2, n);
		memset(big + n, 0, c.rf_len > n ? c.rf_len - n : 0);
		CHECK(rp_verify(&c, big) == RPE_BAD_CHECKSUM);
		refused_ck++;
	}
	printf("flipped bits: %u refused by the header check, %u by the checksum, none accepted\n",
	    refused_hdr, refused_ck);
	CHECK(refused_hdr + refused_ck == (RP_HDR_SIZE + n) * 8 && refused_ck > n * 8);
	/* limits */
	rp_hdr c = h;
	c.rf_magic ^= 1;
	CHECK(rp_check_header(&c, RP_MAX_PAYLOAD, RP_VERSION) == RPE_BAD_FRAME);
	c = h;
	c.rf_len = RP_MAX_PAYLOAD + 1;
	CHECK(rp_check_header(&c, UINT32_MAX, RP_VERSION) == RPE_BAD_FRAME);
	c.rf_len = 257;
	CHECK(rp_check_header(&c, 256, 0) == RPE_BAD_FRAME); /* before AUTH_OK: at most a HELLO */
	c = h;
	c.rf_version = 2;
	CHECK(rp_check_header(&c, RP_MAX_PAYLOAD, RP_VERSION) == RPE_VERSION_MISMATCH);
	CHECK(rp_check_header(&c, RP_MAX_PAYLOAD, 0) == 0);
	/* frozen sizes */
	CHECK(rp_payload_size(RP_HELLO) == 256 && rp_payload_size(RP_HELLO_REPLY) == 256 &&
	    rp_payload_size(RP_AUTH) == 64 && rp_payload_size(RP_ERROR) == 256 &&
	    rp_payload_size(RP_PROMISE) == 2176 && rp_payload_size(RP_START_EPOCH) == 1296 &&
	    rp_payload_size(RP_WRITE) == -1 && rp_payload_size(0x99) == -2);
	CHECK(strcmp(rp_err_name(RPE_STALE_EPOCH), "STALE_EPOCH") == 0 && rp_err_errno(RPE_STALE_EPOCH) == ESTALE);
}

static void
test_negotiate(void)
{
	CHECK(rp_negotiate(1, 1, 1, 1) == 1);
	CHECK(rp_negotiate(2, 3, 1, 1) == 0);
	CHECK(rp_negotiate(1, 3, 2, 5) == 3);
	CHECK(rp_negotiate(1, 4, 2, 2) == 2);
	CHECK(rp_negotiate(0, 0, 0, 0) == 0);
}

static void
test_mac(void)
{
	uint8_t key[40], nc[32], nr[32];
	t_fill(key, sizeof(key), 1);
	t_fill(nc, 32, 2);
	t_fill(nr, 32, 3);
	uint64_t ic = 0x1111222233334444ull, ir = 0x5555666677778888ull;
	uint8_t mc[32], mr[32], want[32];
	rp_mac(0, key, sizeof(key), nc, nr, ic, ir, 1, mc);
	rp_mac(1, key, sizeof(key), nc, nr, ic, ir, 1, mr);
	/* independently: HMAC(K, "cask-rp1 controller" || nc || nr || ic || ir || version) */
	uint8_t msg[128];
	size_t n = 0;
	memcpy(msg, "cask-rp1 controller", 19);
	n = 19;
	memcpy(msg + n, nc, 32), n += 32;
	memcpy(msg + n, nr, 32), n += 32;
	memcpy(msg + n, &ic, 8), n += 8;
	memcpy(msg + n, &ir, 8), n += 8;
	msg[n++] = 1;
	msg[n++] = 0;
	unsigned wl = 32;
	HMAC(EVP_sha256(), key, sizeof(key), msg, n, want, &wl);
	CHECK(rp_mac_equal(mc, want));
	n = 0;
	memcpy(msg, "cask-rp1 replica", 16);
	n = 16;
	memcpy(msg + n, nr, 32), n += 32;
	memcpy(msg + n, nc, 32), n += 32;
	memcpy(msg + n, &ir, 8), n += 8;
	memcpy(msg + n, &ic, 8), n += 8;
	msg[n++] = 1;
	msg[n++] = 0;
	HMAC(EVP_sha256(), key, sizeof(key), msg, n, want, &wl);
	CHECK(rp_mac_equal(mr, want));
	CHECK(!rp_mac_equal(mc, mr)); /* a reflected MAC never verifies */
	uint8_t x[32];
	key[0] ^= 1;
	rp_mac(0, key, sizeof(key), nc, nr, ic, ir, 1, x);
	CHECK(!rp_mac_equal(mc, x)); /* wrong key */
	key[0] ^= 1;
	rp_mac(0, key, sizeof(key), nc, nr, ic, ir, 2, x);
	CHECK(!rp_mac_equal(mc, x)); /* the version is inside: no downgrade */
	nr[5] ^= 1;
	rp_mac(0, key, sizeof(key), nc, nr, ic, ir, 1, x);
	CHECK(!rp_mac_equal(mc, x)); /* fresh nonces: no replay */
}

static void
write_file(const char *path, const char *s, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	CHECK(write(fd, s, strlen(s)) == (ssize_t)strlen(s));
	CHECK(fchmod(fd, mode) == 0);
	close(fd);
}

static void
test_key(void)
{
	uint8_t *k;
	size_t n;
	const char *why;
	const char *p = t_path("key");
	write_file(p, "0123456789abcdef0123456789abcdef\n", 0600);
	OK(rp_key_load(p, &k, &n, &why));
	CHECK(n == 32 && memcmp(k, "0123456789abcdef0123456789abcdef", 32) == 0);
	free(k);
	write_file(p, "0123456789abcdef0123456789abcdef\n", 0644);
	CHECK(rp_key_load(p, &k, &n, &why) == -EPERM);
	write_file(p, "short\n", 0600);
	CHECK(rp_key_load(p, &k, &n, &why) == -EINVAL);
	CHECK(rp_key_load(t_path("none"), &k, &n, &why) == -ENOENT);
}

int
main(void)
{
	t_tmpdir();
	test_frames();
	test_negotiate();
	test_mac();
	test_key();
	printf("ok\n");
	return 0;
}
