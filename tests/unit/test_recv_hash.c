/*
 * test_recv_hash -- the hashes a receive computed become the checksums of
 * the blocks it wrote (vol.c invariant 7), and only while they are true:
 *
 *   - a full stream of a volume stored uncompressed, received: every data
 *     block's checksum is the receive's hash (ce_pool_stat's
 *     sync_cksum_known moves by exactly the block count), the copy reads
 *     back equal after an export and import (the stored checksums verify);
 *     into an lz4 volume of compressible data, none is (the checksum of
 *     compressed bytes is computed);
 *   - a bit flipped in the first, a middle and the last block of a DATA
 *     record is refused with the record's checksum error, and the receive
 *     resumed from its token gives the right data;
 *   - blocks adopted with their hashes and then changed in the same txg
 *     (a partial write patching the buffer in place, a whole-block write,
 *     a zeroing, the same block adopted again out of order, a trim) have
 *     their hashes forgotten: exactly the unchanged blocks count as known, and
 *     every block reads back as last written after an export and import
 *     (a stale hash would store a wrong checksum: EIO; debug builds also
 *     verify every hash taken, blkio.c).
 *   - an incremental stream whose BEGIN says another block size than the
 *     target volume's (its checksums all made right: they are unkeyed) is
 *     refused before anything changes, and so is a resumed one (the partial
 *     receive stays resumable): the receive hands the volume whole
 *     stream blocks, of the volume's size (send.c recv_setup);
 *   - a send reads its records through the ring (many reads in flight)
 *     or, without one (CE_POOL_NO_URING), on its worker threads: both
 *     write the same bytes, and a read that fails (an injected device
 *     error) fails the send with the offset it could not read, in both.
 * cask-debug check is clean on both pools at the end.
 */
#include "t.h"
#include "vol.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#define BS 4096u
#define NB 768u /* three DATA records of 1 MiB */

typedef struct buf {
	uint8_t *d;
	size_t n, cap, pos;
} buf;

static int
buf_write(void *arg, const void *p, size_t len)
{
	buf *b = arg;
	if (b->n + len > b->cap) {
		b->cap = (b->n + len) * 2;
		b->d = realloc(b->d, b->cap);
	}
	memcpy(b->d + b->n, p, len);
	b->n += len;
	return 0;
}

static ssize_t
buf_read(void *arg, void *p, size_t len)
{
	buf *b = arg;
	size_t n = b->n - b->pos < len ? b->n - b->pos : len;
	if (n > 100000)
		n = 100000; /* records arrive in pieces */
	memcpy(p, b->d + b->pos, n);
	b->pos += n;
	return (ssize_t)n;
}

static const char *argv0;
static const char *pa, *pb;
static ce_pool_opts o;
static ce_pool *src, *dst;

static uint64_t
known(ce_pool *p)
{
	ce_pool_stat st;
	OK(ce_pool_sync(p));
	OK(ce_pool_stat_get(p, &st));
	return st.sync_cksum_known;
}

/* Dataset a of pool pa reads exactly as dataset b of pool pb (both read from disk). */
static int
same(const char *a, const char *b)
{
	OK(ce_pool_export(dst));
	OK(ce_pool_import(&pb, 1, &o, &dst));
	ce_vol *x, *y;
	OK(ce_vol_open(src, a, &x));
	OK(ce_vol_open(dst, b, &y));
	int eq = ce_vol_size(x) == ce_vol_size(y);
	uint8_t *bx = malloc(1 << 20), *by = malloc(1 << 20);
	for (uint64_t off = 0; eq && off < ce_vol_size(x); off += 1 << 20) {
		size_t n = ce_vol_size(x) - off < (1 << 20) ? (size_t)(ce_vol_size(x) - off) : (1 << 20);
		OK(ce_vol_read(x, bx, n, off));
		OK(ce_vol_read(y, by, n, off));
		eq = memcmp(bx, by, n) == 0;
	}
	free(bx);
	free(by);
	ce_vol_close(x);
	ce_vol_close(y);
	return eq;
}

static buf
make_source(const char *vol, int compress, int compressible)
{
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.compress = compress;
	OK(ce_vol_create(src, vol, NB * BS, &pr));
	ce_vol *v;
	OK(ce_vol_open(src, vol, &v));
	uint8_t *b = malloc((size_t)NB * BS);
	for (uint32_t i = 0; i < NB; i++) {
		if (compressible)
			memset(b + (size_t)i * BS, 'a' + i % 26, BS); /* lz4 stores these compressed */
		else
			t_fill(b + (size_t)i * BS, BS, 7000 + i);
	}
	OK(ce_vol_write(v, b, (size_t)NB * BS, 0));
	free(b);
	ce_vol_close(v);
	char snap[64];
	snprintf(snap, sizeof(snap), "%s@s", vol);
	const char *sp = snap;
	int e;
	OK(ce_snap_create(src, &sp, 1, &e));
	buf s = { 0 };
	OK(ce_send(src, snap, NULL, buf_write, &s));
	return s;
}

static int
recv(const char *vol, buf *s)
{
	char snap[300];
	s->pos = 0;
	return ce_recv(dst, vol, NULL, buf_read, s, snap, sizeof(snap));
}

/* The offsets of the DATA records' payloads in a stream. */
static size_t
data_records(const buf *s, size_t *at, size_t max)
{
	size_t n = 0;
	for (size_t off = 0; off + 64 <= s->n && n < max;) {
		uint32_t type, plen;
		memcpy(&type, s->d + off, 4);
		memcpy(&plen, s->d + off + 32, 4);
		if (type == 2)
			at[n++] = off + 64;
		off += 64 + plen;
	}
	return n;
}

static void
streams(void)
{
	/* uncompressed: every block's checksum is the receive's hash */
	buf s = make_source("plain", CE_COMPRESS_OFF, 0);
	uint64_t k0 = known(dst);
	OK(recv("plain", &s));
	uint64_t k1 = known(dst);
	printf("uncompressed volume received: %" PRIu64 " of %u blocks took the receive's hash\n", k1 - k0, NB);
	CHECK(k1 - k0 == NB);
	CHECK(same("plain@s", "plain@s"));

	/* lz4 on compressible data: compressed blocks get the checksum of what is stored */
	buf z = make_source("packed", CE_COMPRESS_LZ4, 1);
	OK(recv("packed", &z));
	uint64_t k2 = known(dst);
	printf("compressed volume received: %" PRIu64 " took the receive's hash\n", k2 - k1);
	CHECK(k2 == k1);
	CHECK(same("packed@s", "packed@s"));
	free(z.d);

	/* a flipped bit in the first, a middle and the last block of a DATA record */
	size_t at[16];
	size_t nd = data_records(&s, at, 16);
	CHECK(nd == 3);
	for (int where = 0; where < 3; where++) {
		buf f = { 0 };
		buf_write(&f, s.d, s.n);
		size_t rec = (size_t)where % nd;
		size_t blk = where == 0 ? 0 : where == 1 ? 100 : 255;
		f.d[at[rec] + blk * BS + 1234] ^= 0x10;
		CHECK_ERR(recv("flip", &f), -EBADMSG);
		printf("bit flipped in block %zu of DATA record %zu: %s\n", blk, rec, ce_errmsg());
		CHECK(strstr(ce_errmsg(), "fails its checksum") != NULL);
		CHECK(!t_snap_exists(dst, "flip@s"));
		/* resumed from where it stopped, with the good stream's records */
		ce_vol_info vi;
		OK(ce_vol_info_get(dst, "flip", &vi));
		CHECK(vi.receive_resume_token[0] != '\0');
		buf r = { 0 };
		ce_send_opts so = { NULL, vi.receive_resume_token, NULL, NULL, 0 };
		OK(ce_send(src, NULL, &so, buf_write, &r));
		OK(recv("flip", &r));
		free(r.d);
		CHECK(same("plain@s", "flip@s"));
		OK(ce_vol_destroy_ex(dst, "flip", CE_DESTROY_SNAPSHOTS));
		free(f.d);
	}
	free(s.d);
}

/* n buffers adopted at block first with their true hashes; model gets the bytes. */
static void
adopt(ce_vol *h, uint32_t first, uint32_t n, uint64_t seed, uint8_t *model)
{
	void **b = malloc(n * sizeof(void *));
	uint8_t (*hs)[16] = malloc((size_t)n * 16);
	for (uint32_t k = 0; k < n; k++) {
		b[k] = ce_blockbuf_get(BS);
		t_fill(b[k], BS, seed + k);
		memcpy(model + (size_t)(first + k) * BS, b[k], BS);
		XXH128_hash_t x = XXH3_128bits(b[k], BS);
		memcpy(hs[k], &x.low64, 8);
		memcpy(hs[k] + 8, &x.high64, 8);
	}
	OK(vol_recv_adopt(h, b, (const uint8_t(*)[16])hs, n, (uint64_t)first * BS));
	free(b);
	free(hs);
}

static void
forgotten(void)
{
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.compress = CE_COMPRESS_OFF;
	OK(ce_vol_create(dst, "changed", 64 * BS, &pr));
	uint8_t *model = calloc(64, BS);
	uint64_t k0 = known(dst);
	ce_vol *h;
	OK(ce_vol_open(dst, "changed", &h));
	/* all in one txg: the pool syncs only when asked (txg_timeout_ms) */
	adopt(h, 0, 16, 500, model);
	uint8_t part[100];
	memset(part, 0xab, sizeof(part));
	OK(ce_vol_write(h, part, sizeof(part), 3 * BS + 50)); /* patched in place */
	memcpy(model + 3 * BS + 50, part, sizeof(part));
	uint8_t *whole = malloc(BS);
	t_fill(whole, BS, 999);
	OK(ce_vol_write(h, whole, BS, 5 * BS)); /* replaced */
	memcpy(model + 5 * BS, whole, BS);
	OK(ce_vol_write_zeroes(h, 7 * BS, BS)); /* zeroed */
	memset(model + 7 * BS, 0, BS);
	adopt(h, 2, 1, 800, model); /* again, out of order: put, its hash not kept */
	adopt(h, 20, 4, 900, model); /* after the others: kept */
	OK(ce_vol_trim(h, 21 * BS, BS)); /* punched: its buffer freed, its hash forgotten */
	memset(model + 21 * BS, 0, BS);
	ce_vol_close(h);
	uint64_t k1 = known(dst);
	printf("adopted 21 blocks with hashes, changed 4 and trimmed 1 of them in the same txg: %" PRIu64
	    " known\n", k1 - k0);
	CHECK(k1 - k0 == 16 + 4 - 4 - 1);
	OK(ce_pool_export(dst));
	OK(ce_pool_import(&pb, 1, &o, &dst));
	OK(ce_vol_open(dst, "changed", &h));
	uint8_t *got = malloc(64 * BS);
	OK(ce_vol_read(h, got, 64 * BS, 0)); /* a stale hash: a wrong stored checksum, EIO */
	CHECK(memcmp(got, model, 64 * BS) == 0);
	ce_vol_close(h);
	free(got);
	free(whole);
	free(model);
}

/* Every record's checksum, and END's stream checksum, made right again for
 * blocks of bs bytes (docs/send-stream.md: a DATA record's checksum covers
 * its header and the hashes of its blocks; the stream's covers the headers). */
static void
reseal(buf *s, uint32_t bs)
{
	XXH3_state_t st, rs;
	XXH3_128bits_reset(&st);
	for (size_t off = 0; off + 64 <= s->n;) {
		uint32_t type, plen;
		memcpy(&type, s->d + off, 4);
		memcpy(&plen, s->d + off + 32, 4);
		uint8_t *pl = s->d + off + 64;
		if (type == 4) { /* END: records, data bytes, hole bytes, stream checksum */
			XXH128_hash_t h = XXH3_128bits_digest(&st);
			memcpy(pl + 24, &h.low64, 8);
			memcpy(pl + 32, &h.high64, 8);
		}
		memset(s->d + off + 48, 0, 16);
		XXH3_128bits_reset(&rs);
		XXH3_128bits_update(&rs, s->d + off, 64);
		if (type == 2 && plen % bs == 0) {
			for (uint32_t i = 0; i < plen / bs; i++) {
				XXH128_hash_t bh = XXH3_128bits(pl + (size_t)i * bs, bs);
				uint8_t b16[16];
				memcpy(b16, &bh.low64, 8);
				memcpy(b16 + 8, &bh.high64, 8);
				XXH3_128bits_update(&rs, b16, 16);
			}
		} else if (plen > 0) {
			XXH3_128bits_update(&rs, pl, plen);
		}
		XXH128_hash_t h = XXH3_128bits_digest(&rs);
		memcpy(s->d + off + 48, &h.low64, 8);
		memcpy(s->d + off + 56, &h.high64, 8);
		if (type != 4)
			XXH3_128bits_update(&st, s->d + off, 64);
		off += 64 + plen;
	}
}

static void
block_size_mismatch(void)
{
	const uint32_t big = 8192;
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.volblocksize = big;
	pr.compress = CE_COMPRESS_OFF;
	const uint64_t size = 256ull * big; /* two DATA records */
	OK(ce_vol_create(src, "wide", size, &pr));
	ce_vol *v;
	OK(ce_vol_open(src, "wide", &v));
	uint8_t *d = malloc(size);
	t_fill(d, size, 9100);
	OK(ce_vol_write(v, d, size, 0));
	const char *s1 = "wide@s1", *s2 = "wide@s2";
	int e;
	OK(ce_snap_create(src, &s1, 1, &e));
	buf full = { 0 }, inc = { 0 };
	OK(ce_send(src, "wide@s1", NULL, buf_write, &full));
	OK(recv("wide", &full));
	t_fill(d, size, 9200);
	OK(ce_vol_write(v, d, size, 0));
	ce_vol_close(v);
	OK(ce_snap_create(src, &s2, 1, &e));
	ce_send_opts so = { "wide@s1", NULL, NULL, NULL, 0 };
	OK(ce_send(src, "wide@s2", &so, buf_write, &inc));
	/* the resealing is the stream's own: an unchanged stream comes out the same */
	uint8_t *orig = malloc(inc.n);
	memcpy(orig, inc.d, inc.n);
	reseal(&inc, big);
	CHECK(memcmp(orig, inc.d, inc.n) == 0);
	uint32_t vbs;
	memcpy(&vbs, inc.d + 64 + 64, 4); /* BEGIN's sb_volblocksize */
	CHECK(vbs == big);
	vbs = BS;
	memcpy(inc.d + 64 + 64, &vbs, 4);
	reseal(&inc, BS);
	uint64_t before = known(dst);
	CHECK_ERR(recv("wide", &inc), -EINVAL);
	printf("an incremental stream of 4 KiB blocks onto an 8 KiB volume: %s\n", ce_errmsg());
	CHECK(strstr(ce_errmsg(), "stream block size 4096") != NULL);
	CHECK(strstr(ce_errmsg(), "8192") != NULL);
	CHECK(known(dst) == before);
	ce_vol_info vi;
	OK(ce_vol_info_get(dst, "wide", &vi));
	CHECK(vi.written == 0 && vi.size == size);
	ce_vol *y;
	CHECK_ERR(ce_vol_open(dst, "wide@s2", &y), -ENOENT); /* no snapshot made */
	CHECK(same("wide@s1", "wide")); /* the target is still the base, and no partial receive */
	/* a partial receive (the stream cut after its first DATA record), resumed by a stream
	 * of the other block size: refused, the receive stays where it stopped */
	memcpy(inc.d, orig, inc.n);
	size_t whole_n = inc.n;
	inc.n = 64 + 512 + 64 + (1u << 20) + 10;
	CHECK_ERR(recv("wide", &inc), -EPIPE);
	inc.n = whole_n;
	ce_vol_info pi, qi;
	OK(ce_vol_info_get(dst, "wide", &pi));
	CHECK(pi.receive_resume_token[0] != '\0');
	buf res = { 0 };
	ce_send_opts ro = { NULL, pi.receive_resume_token, NULL, NULL, 0 };
	OK(ce_send(src, NULL, &ro, buf_write, &res));
	uint8_t *rorig = malloc(res.n);
	memcpy(rorig, res.d, res.n);
	memcpy(res.d + 64 + 64, &vbs, 4);
	reseal(&res, BS);
	CHECK_ERR(recv("wide", &res), -EINVAL);
	printf("a resumed stream of 4 KiB blocks onto an 8 KiB volume: %s\n", ce_errmsg());
	CHECK(strstr(ce_errmsg(), "stream block size 4096") != NULL);
	OK(ce_vol_info_get(dst, "wide", &qi));
	CHECK(strcmp(pi.receive_resume_token, qi.receive_resume_token) == 0);
	/* the real resume applies */
	memcpy(res.d, rorig, res.n);
	OK(recv("wide", &res));
	CHECK(same("wide@s2", "wide@s2"));
	free(rorig);
	free(res.d);
	free(orig);
	free(d);
	free(full.d);
	free(inc.d);
}

/* The full stream of plain@s from a fresh import of src (cold cache), with or without the ring. */
static int
send_fresh(unsigned flags, buf *out, int fault_after)
{
	OK(ce_pool_export(src));
	ce_pool_opts io = o;
	io.flags |= flags;
	OK(ce_pool_import(&pa, 1, &io, &src));
	ce_aread_stat as;
	OK(ce_pool_aread_stat(src, &as));
	CHECK(as.available == !(flags & CE_POOL_NO_URING));
	if (fault_after >= 0) {
		buf warm = { 0 }; /* the tree's indirect blocks in the cache: the fault hits data reads */
		OK(ce_send(src, "plain@s", NULL, buf_write, &warm));
		free(warm.d);
		ce_fault f = { CE_FAULT_READ, -1, (uint64_t)fault_after, 1 };
		OK(ce_pool_fault_inject(src, &f));
	}
	int err = ce_send(src, "plain@s", NULL, buf_write, out);
	ce_pool_fault_clear(src);
	return err;
}

static void
send_paths(void)
{
	buf ring = { 0 }, workers = { 0 };
	OK(send_fresh(0, &ring, -1));
	OK(send_fresh(CE_POOL_NO_URING, &workers, -1));
	CHECK(ring.n == workers.n && memcmp(ring.d, workers.d, ring.n) == 0);
	printf("send through the ring and on workers: the same %zu bytes\n", ring.n);
	for (int k = 0; k < 2; k++) {
		buf b = { 0 };
		int err = send_fresh(k ? CE_POOL_NO_URING : 0, &b, 2);
		printf("send with a failing read (%s): %s\n", k ? "workers" : "ring", ce_errmsg());
		CHECK_ERR(err, -EIO);
		CHECK(strstr(ce_errmsg(), "cannot read blocks at offset") != NULL);
		free(b.d);
	}
	buf again = { 0 };
	OK(send_fresh(0, &again, -1)); /* reads work again */
	CHECK(again.n == ring.n && memcmp(again.d, ring.d, ring.n) == 0);
	free(again.d);
	free(ring.d);
	free(workers.d);
}

int
main(int argc, char **argv)
{
	(void)argc;
	argv0 = argv[0];
	t_tmpdir();
	pa = t_path("src");
	pb = t_path("dst");
	o.vdev_size = 128ull << 20;
	o.txg_timeout_ms = 600000; /* txgs end when the test syncs */
	OK(ce_pool_create("src", &pa, 1, &o, &src));
	OK(ce_pool_create("dst", &pb, 1, &o, &dst));
	streams();
	forgotten();
	block_size_mismatch();
	send_paths();
	OK(ce_pool_export(src));
	OK(ce_pool_export(dst));
	CHECK(t_debug_check(argv0, pa, NULL) == 0);
	CHECK(t_debug_check(argv0, pb, NULL) == 0);
	printf("ok\n");
	return 0;
}
