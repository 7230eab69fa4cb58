/*
 * test_send -- send streams and receive through the engine API: a full
 * stream and six incrementals (writes, trims, zeroes, a grow and a
 * shrink between snapshots) round-tripped into a second pool, every
 * received snapshot compared block for block with its source; an
 * incremental from a clone's origin; diffs against a model of what
 * changed; and every kind of bad input: truncated at many points (then
 * resumed with the token, and abandoned), a flipped bit in every record
 * kind, a record repeated, two records swapped, a record dropped, the
 * wrong base, an unknown version, garbage, an empty stream. A refused
 * BEGIN changes nothing; later damage leaves a resumable partial receive
 * that cannot be opened and is never presented as a snapshot. Snapshot
 * policies in streams (version 2): sent, installed, kept, ignored, refused
 * when bad (policy_streams). cask-debug check is clean on both pools at
 * the end.
 */
#include "t.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#define BS 4096u
#define NB 512u

typedef struct buf {
	uint8_t *d;
	size_t n, cap, pos, limit;
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

/* Reads up to limit bytes (a truncated stream), in uneven pieces. */
static ssize_t
buf_read(void *arg, void *p, size_t len)
{
	buf *b = arg;
	size_t end = b->limit ? b->limit : b->n;
	if (b->pos >= end)
		return 0;
	size_t n = end - b->pos < len ? end - b->pos : len;
	if (n > 7777)
		n = 7777;
	memcpy(p, b->d + b->pos, n);
	b->pos += n;
	return (ssize_t)n;
}

static const char *argv0;
static ce_pool *src, *dst;

static void
fill(ce_vol *v, uint32_t first, uint32_t n, uint64_t tag)
{
	uint8_t *b = malloc((size_t)n * BS);
	for (uint32_t i = 0; i < n; i++)
		t_fill(b + (size_t)i * BS, BS, tag * 100000 + first + i);
	OK(ce_vol_write(v, b, (size_t)n * BS, (uint64_t)first * BS));
	free(b);
}

/* Dataset a of pool pa reads exactly as dataset b of pool pb. */
static int
same(ce_pool *pa, const char *a, ce_pool *pb, const char *b)
{
	ce_vol *x, *y;
	OK(ce_vol_open(pa, a, &x));
	OK(ce_vol_open(pb, b, &y));
	int eq = ce_vol_size(x) == ce_vol_size(y);
	uint64_t size = ce_vol_size(x);
	uint8_t *bx = malloc(1 << 20), *by = malloc(1 << 20);
	for (uint64_t off = 0; eq && off < size; off += 1 << 20) {
		size_t n = size - off < (1 << 20) ? (size_t)(size - off) : (1 << 20);
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
send_stream(const char *snap, const char *from)
{
	buf b = { 0 };
	ce_send_opts o = { from, NULL, NULL, NULL, 0 };
	OK(ce_send(src, snap, &o, buf_write, &b));
	return b;
}

static int
recv_buf(const char *vol, buf *b, unsigned flags)
{
	char snap[300];
	ce_recv_opts o = { flags, NULL, NULL, 0, { 0 } };
	b->pos = 0;
	return ce_recv(dst, vol, &o, buf_read, b, snap, sizeof(snap));
}

/* The record boundaries of a stream: offsets of every record header. */
static size_t
records(const buf *b, size_t *at, size_t max)
{
	size_t n = 0;
	for (size_t off = 0; off + 64 <= b->n && n < max;) {
		uint32_t plen;
		memcpy(&plen, b->d + off + 32, 4);
		at[n++] = off;
		off += 64 + plen;
	}
	return n;
}

/* BEGIN's record checksum made right again after an edit of its payload. */
static void
reseal_begin(buf *b)
{
	memset(b->d + 48, 0, 16);
	XXH3_state_t xs;
	XXH3_128bits_reset(&xs);
	XXH3_128bits_update(&xs, b->d, 64);
	XXH3_128bits_update(&xs, b->d + 64, 512);
	XXH128_hash_t h = XXH3_128bits_digest(&xs);
	memcpy(b->d + 48, &h.low64, 8);
	memcpy(b->d + 56, &h.high64, 8);
}

static uint32_t
u32_at(const buf *b, size_t off)
{
	uint32_t v;
	memcpy(&v, b->d + off, 4);
	return v;
}


static int
same_policy(const ce_sched *a, const ce_sched *b)
{
	return memcmp(a, b, sizeof(*a)) == 0;
}

/*
 * Snapshot policies in streams (send-stream.md 3.1): a volume with a policy
 * sends version 2 with it, one without (or CE_SEND_NO_POLICY) version 1; a
 * full receive installs it with the snapshot; a target with its own keeps
 * it; CE_RECV_NO_POLICY installs nothing; a bad policy or the flag in a
 * version 1 stream is refused before anything changes; the policy survives
 * an export and import of the receiving pool.
 */
static int vol_exists(ce_pool *p, const char *name);
static int resume(const char *vol);

static void
policy_streams(const char *pb)
{
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	OK(ce_vol_create(src, "pv", 64 * BS, &pr));
	ce_vol *h;
	OK(ce_vol_open(src, "pv", &h));
	fill(h, 0, 8, 9);
	ce_vol_close(h);
	const char *p1 = "pv@p1";
	int e;
	OK(ce_snap_create(src, &p1, 1, &e));
	/* no policy: version 1, as before */
	buf b1 = send_stream("pv@p1", NULL);
	CHECK(u32_at(&b1, 64 + 8) == 1 && (u32_at(&b1, 64 + 12) & 4) == 0);
	ce_sched pol = { 60, 4, 0, 7, 4, 6 }, got;
	OK(ce_sched_set(src, "pv", &pol));
	buf b2 = send_stream("pv@p1", NULL);
	CHECK(u32_at(&b2, 64 + 8) == 2 && (u32_at(&b2, 64 + 12) & 4) != 0);
	CHECK(u32_at(&b2, 64 + 88) == 60 && u32_at(&b2, 64 + 92) == 4 && u32_at(&b2, 64 + 100) == 7);
	buf nb = { 0 };
	ce_send_opts so = { NULL, NULL, NULL, NULL, CE_SEND_NO_POLICY };
	OK(ce_send(src, "pv@p1", &so, buf_write, &nb));
	CHECK(u32_at(&nb, 64 + 8) == 1 && nb.n == b1.n);
	printf("policy streams: version 1 without (%zu bytes), 2 with a policy (%zu bytes)\n", b1.n, b2.n);

	/* full receive: installed, with the snapshot */
	char snap[300];
	ce_recv_opts ro = { 0, NULL, NULL, 0, { 0 } };
	b2.pos = 0;
	OK(ce_recv(dst, "pa", &ro, buf_read, &b2, snap, sizeof(snap)));
	CHECK(ro.policy_result == CE_RECV_POLICY_INSTALLED && same_policy(&ro.policy, &pol));
	CHECK(t_policy_of(dst, "pa", &got) && same_policy(&got, &pol));
	CHECK(same(src, "pv@p1", dst, "pa@p1"));
	/* CE_RECV_NO_POLICY: none; a version 1 stream: none */
	ce_recv_opts rn = { CE_RECV_NO_POLICY, NULL, NULL, 0, { 0 } };
	b2.pos = 0;
	OK(ce_recv(dst, "pn", &rn, buf_read, &b2, snap, sizeof(snap)));
	CHECK(rn.policy_result == CE_RECV_POLICY_IGNORED && !t_policy_of(dst, "pn", &got));
	ce_recv_opts r1 = { 0, NULL, NULL, 0, { 0 } };
	b1.pos = 0;
	OK(ce_recv(dst, "p1", &r1, buf_read, &b1, snap, sizeof(snap)));
	CHECK(r1.policy_result == CE_RECV_POLICY_NONE && !t_policy_of(dst, "p1", &got));

	/* incremental onto a target with another policy: the target's is kept */
	ce_sched mine = { 15, 8, 24, 0, 0, 0 };
	OK(ce_sched_set(dst, "pa", &mine));
	OK(ce_vol_open(src, "pv", &h));
	fill(h, 3, 2, 10);
	ce_vol_close(h);
	const char *p2 = "pv@p2";
	OK(ce_snap_create(src, &p2, 1, &e));
	buf i2 = send_stream("pv@p2", "pv@p1");
	ce_recv_opts rk = { 0, NULL, NULL, 0, { 0 } };
	OK(ce_recv(dst, "pa", &rk, buf_read, &i2, snap, sizeof(snap)));
	CHECK(rk.policy_result == CE_RECV_POLICY_KEPT && same_policy(&rk.policy, &pol));
	CHECK(t_policy_of(dst, "pa", &got) && same_policy(&got, &mine));
	CHECK(same(src, "pv@p2", dst, "pa@p2"));
	/* the same policy: nothing to do */
	OK(ce_sched_set(dst, "pa", &pol));
	const char *p3 = "pv@p3";
	OK(ce_snap_create(src, &p3, 1, &e));
	buf i3 = send_stream("pv@p3", "pv@p2");
	ce_recv_opts rs = { 0, NULL, NULL, 0, { 0 } };
	OK(ce_recv(dst, "pa", &rs, buf_read, &i3, snap, sizeof(snap)));
	CHECK(rs.policy_result == CE_RECV_POLICY_SAME);

	/* the target's policy took automatic snapshots after the base: refused, -F destroys them */
	const char *autos[2] = { "pa@auto-2026-01-01T00:00Z", "pa@auto-2026-01-01T01:00Z" };
	int errs[2];
	OK(ce_snap_create_ex(dst, &autos[0], 1, CE_SNAP_AUTO, errs));
	OK(ce_snap_create_ex(dst, &autos[1], 1, CE_SNAP_AUTO, errs));
	const char *p4 = "pv@p4";
	OK(ce_snap_create(src, &p4, 1, &e));
	buf i4 = send_stream("pv@p4", "pv@p3");
	CHECK_ERR(recv_buf("pa", &i4, 0), -EXDEV);
	printf("automatic snapshots after the base: %s\n", ce_errmsg());
	CHECK(strstr(ce_errmsg(), "2 automatic snapshots") != NULL);
	OK(recv_buf("pa", &i4, CE_RECV_FORCE));
	CHECK(!t_snap_exists(dst, autos[0]) && !t_snap_exists(dst, autos[1]));
	CHECK(same(src, "pv@p4", dst, "pa@p4"));
	/* a hand-made snapshot after the base: -F does not destroy it */
	const char *mine1 = "pa@mine";
	OK(ce_snap_create(dst, &mine1, 1, &e));
	OK(ce_snap_create_ex(dst, &autos[0], 1, CE_SNAP_AUTO, errs));
	const char *p5 = "pv@p5";
	OK(ce_snap_create(src, &p5, 1, &e));
	buf i5 = send_stream("pv@p5", "pv@p4");
	CHECK_ERR(recv_buf("pa", &i5, CE_RECV_FORCE), -EXDEV);
	CHECK(t_snap_exists(dst, "pa@mine") && t_snap_exists(dst, autos[0]));
	free(i4.d);
	free(i5.d);

	/* bad BEGINs, checksums made right: refused, nothing created */
	buf bad = { 0 };
	buf_write(&bad, b2.d, b2.n);
	uint32_t zero = 0, one = 1, big = CE_SCHED_EVERY_MAX + 1;
	memcpy(bad.d + 64 + 92, &zero, 4); /* keep 0 */
	memcpy(bad.d + 64 + 100, &zero, 4);
	memcpy(bad.d + 64 + 104, &zero, 4);
	memcpy(bad.d + 64 + 108, &zero, 4); /* keeps nothing */
	reseal_begin(&bad);
	CHECK_ERR(recv_buf("pbad", &bad, 0), -EINVAL);
	printf("a policy that keeps nothing: %s\n", ce_errmsg());
	CHECK(strstr(ce_errmsg(), "snapshot policy") != NULL);
	memcpy(bad.d, b2.d, b2.n);
	memcpy(bad.d + 64 + 88, &big, 4);
	reseal_begin(&bad);
	CHECK_ERR(recv_buf("pbad", &bad, 0), -EINVAL);
	memcpy(bad.d, b2.d, b2.n);
	memcpy(bad.d + 64 + 8, &one, 4); /* the policy flag in a version 1 stream */
	reseal_begin(&bad);
	CHECK_ERR(recv_buf("pbad", &bad, 0), -EINVAL);
	printf("the policy flag in version 1: %s\n", ce_errmsg());
	CHECK(!vol_exists(dst, "pbad"));
	free(bad.d);

	/* a receive damaged after BEGIN installs nothing; its resume does */
	b2.limit = b2.n - 30;
	b2.pos = 0;
	ce_recv_opts rt = { 0, NULL, NULL, 0, { 0 } };
	CHECK_ERR(ce_recv(dst, "pr", &rt, buf_read, &b2, snap, sizeof(snap)), -EPIPE);
	b2.limit = 0;
	CHECK(!t_policy_of(dst, "pr", &got));
	OK(resume("pr"));
	CHECK(t_policy_of(dst, "pr", &got) && same_policy(&got, &pol));

	/* they travel with the pool */
	OK(ce_pool_export(dst));
	OK(ce_pool_import(&pb, 1, NULL, &dst));
	CHECK(t_policy_of(dst, "pr", &got) && same_policy(&got, &pol));
	CHECK(t_policy_of(dst, "pa", &got) && same_policy(&got, &pol));
	CHECK(!t_policy_of(dst, "pn", &got));
	free(b1.d);
	free(b2.d);
	free(nb.d);
	free(i2.d);
	free(i3.d);
}

static int
vol_exists(ce_pool *p, const char *name)
{
	ce_vol_info vi;
	return ce_vol_info_get(p, name, &vi) == 0;
}

static void
token_of(ce_pool *p, const char *vol, char *tok, size_t len)
{
	ce_vol_info vi;
	OK(ce_vol_info_get(p, vol, &vi));
	snprintf(tok, len, "%s", vi.receive_resume_token);
}

/* Send what the token says and receive it: the resume. */
static int
resume(const char *vol)
{
	char tok[128];
	token_of(dst, vol, tok, sizeof(tok));
	CHECK(tok[0] != '\0');
	buf b = { 0 };
	ce_send_opts o = { NULL, tok, NULL, NULL, 0 };
	OK(ce_send(src, NULL, &o, buf_write, &b));
	int r = recv_buf(vol, &b, 0);
	free(b.d);
	return r;
}

typedef struct dmodel {
	uint8_t kind[NB * 2]; /* per block: 0 untouched, 1 data, 2 hole */
	int bad;
} dmodel;

static int
diff_cb(void *arg, uint64_t off, uint64_t len, int kind)
{
	dmodel *m = arg;
	for (uint64_t b = off / BS; b < (off + len) / BS; b++)
		if (b >= NB * 2 || m->kind[b] != (kind == CE_DIFF_DATA ? 1 : 2)) {
			if (m->bad++ < 5)
				printf("diff: block %" PRIu64 " reported %s, model %d\n", b,
				    kind == CE_DIFF_DATA ? "data" : "hole", b < NB * 2 ? m->kind[b] : -1);
		} else {
			m->kind[b] = 0;
		}
	return 0;
}

int
main(int argc, char **argv)
{
	(void)argc;
	argv0 = argv[0];
	t_tmpdir();
	const char *pa = t_path("src"), *pb = t_path("dst");
	ce_pool_opts o = { 0 };
	o.vdev_size = 128ull << 20;
	OK(ce_pool_create("src", &pa, 1, &o, &src));
	OK(ce_pool_create("dst", &pb, 1, &o, &dst));
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.compress = CE_COMPRESS_LZ4;
	OK(ce_vol_create(src, "v", NB * BS, &pr));
	ce_vol *v;
	OK(ce_vol_open(src, "v", &v));
	fill(v, 0, NB, 1);
	const char *s1 = "v@s1";
	int e;
	OK(ce_snap_create(src, &s1, 1, &e));

	/* full */
	buf full = send_stream("v@s1", NULL);
	printf("full stream of %u KiB: %zu bytes\n", NB * BS / 1024, full.n);
	CHECK(full.n > NB * BS && full.n < NB * BS + 64 * 1024);
	OK(recv_buf("r", &full, 0));
	CHECK(same(src, "v@s1", dst, "r@s1") && same(src, "v@s1", dst, "r"));
	CHECK_ERR(recv_buf("r", &full, 0), -EEXIST); /* a full stream makes a new volume */

	/* six incrementals, each with a different kind of change */
	dmodel last;
	char prev[32] = "v@s1";
	for (int k = 2; k <= 7; k++) {
		dmodel m;
		memset(&m, 0, sizeof(m));
		uint32_t first = (uint32_t)(k * 37) % (NB - 64);
		switch (k) {
		case 2: fill(v, first, 40, (uint64_t)k); memset(m.kind + first, 1, 40); break;
		case 3: OK(ce_vol_trim(v, (uint64_t)first * BS, 64 * BS)); memset(m.kind + first, 2, 64); break;
		case 4: OK(ce_vol_write_zeroes(v, (uint64_t)first * BS, 16 * BS)); fill(v, 5, 1, 44);
			memset(m.kind + first, 2, 16); m.kind[5] = 1; break;
		case 5: ce_vol_close(v); OK(ce_vol_resize(src, "v", 2 * NB * BS, 0)); OK(ce_vol_open(src, "v", &v));
			fill(v, NB + 3, 10, (uint64_t)k); memset(m.kind + NB + 3, 1, 10); break;
		case 6: fill(v, 0, 1, 66); fill(v, NB + 100, 1, 66); m.kind[0] = 1; m.kind[NB + 100] = 1; break;
		case 7: ce_vol_close(v); OK(ce_vol_resize(src, "v", NB * BS, CE_RESIZE_SHRINK));
			OK(ce_vol_open(src, "v", &v)); fill(v, 9, 3, 77); memset(m.kind + 9, 1, 3); break;
		}
		char sn[32];
		snprintf(sn, sizeof(sn), "v@s%d", k);
		const char *snp = sn;
		OK(ce_snap_create(src, &snp, 1, &e));
		/* the diff says exactly what changed (trimmed blocks that were data are holes) */
		OK(ce_vol_diff(src, prev, sn, diff_cb, &m));
		int left = 0;
		for (uint32_t b = 0; b < NB * 2; b++)
			left += m.kind[b] == 1 || (m.kind[b] == 2 && k != 7);
		if (m.bad || left)
			printf("diff %s..%s: %d wrong, %d not reported\n", prev, sn, m.bad, left);
		CHECK(m.bad == 0 && left == 0);
		buf inc = send_stream(sn, prev);
		printf("incremental %s -> %s: %zu bytes\n", prev, sn, inc.n);
		OK(recv_buf("r", &inc, 0));
		char rn[32];
		snprintf(rn, sizeof(rn), "r@s%d", k);
		CHECK(same(src, sn, dst, rn) && same(src, sn, dst, "r"));
		if (k == 3) {
			/* the same stream again: its base is no longer r's newest snapshot */
			CHECK_ERR(recv_buf("r", &inc, 0), -EXDEV);
			printf("wrong base: %s\n", ce_errmsg());
		}
		free(inc.d);
		snprintf(prev, sizeof(prev), "%s", sn);
		last = m;
	}
	(void)last;
	/* every received snapshot still equals its source */
	for (int k = 1; k <= 7; k++) {
		char a[32], b[32];
		snprintf(a, sizeof(a), "v@s%d", k);
		snprintf(b, sizeof(b), "r@s%d", k);
		CHECK(same(src, a, dst, b));
	}

	/* incremental from a clone's origin */
	OK(ce_vol_clone(src, "v@s7", "c"));
	ce_vol *cv;
	OK(ce_vol_open(src, "c", &cv));
	fill(cv, 100, 20, 9);
	ce_vol_close(cv);
	const char *cx = "c@x";
	OK(ce_snap_create(src, &cx, 1, &e));
	buf cinc = send_stream("c@x", "v@s7");
	OK(recv_buf("r", &cinc, 0));
	CHECK(same(src, "c@x", dst, "r@x"));
	free(cinc.d);
	printf("incremental from a clone's origin: ok\n");
	ce_snap_info *l;
	size_t n;
	OK(ce_snap_list(dst, "r", &l, &n));
	CHECK(n == 8);
	free(l);

	/* bad input on a fresh incremental x -> s8 (r's newest is r@x, identity of c@x) */
	OK(ce_vol_open(src, "c", &cv));
	for (uint32_t b = 200; b < 300; b += 2)
		fill(cv, b, 1, 10); /* 50 separate DATA records */
	OK(ce_vol_trim(cv, 0, 8 * BS));
	ce_vol_close(cv);
	const char *c8 = "c@s8";
	OK(ce_snap_create(src, &c8, 1, &e));
	buf good = send_stream("c@s8", "c@x");
	size_t at[4096];
	size_t nr = records(&good, at, 4096);
	printf("bad-input stream: %zu bytes, %zu records\n", good.n, nr);
	CHECK(nr >= 4);
	ce_pool_stat st0, st1;
	OK(ce_pool_sync(dst));
	OK(ce_pool_stat_get(dst, &st0));

	/* unknown version, garbage, empty: refused, nothing changes */
	buf bad = { 0 };
	buf_write(&bad, good.d, good.n);
	uint32_t ver = 3;
	memcpy(bad.d + 64 + 8, &ver, 4);
	CHECK_ERR(recv_buf("r", &bad, 0), -EBADMSG); /* the record checksum covers the version */
	printf("a changed version, checksum not fixed: %s\n", ce_errmsg());
	/* with the record's checksum made right: an unknown version */
	uint32_t plen = 512;
	memset(bad.d + 48, 0, 16);
	XXH3_state_t xs;
	XXH3_128bits_reset(&xs);
	XXH3_128bits_update(&xs, bad.d, 64);
	XXH3_128bits_update(&xs, bad.d + 64, plen);
	XXH128_hash_t hh = XXH3_128bits_digest(&xs);
	memcpy(bad.d + 48, &hh.low64, 8);
	memcpy(bad.d + 56, &hh.high64, 8);
	CHECK_ERR(recv_buf("r", &bad, 0), -ENOTSUP);
	printf("version 3: %s\n", ce_errmsg());
	bad.n = 0;
	const char *junk = "this is not a stream, just some text of a reasonable length......................";
	buf_write(&bad, junk, strlen(junk));
	CHECK(recv_buf("r", &bad, 0) != 0);
	printf("garbage: %s\n", ce_errmsg());
	bad.n = 0;
	CHECK_ERR(recv_buf("r", &bad, 0), -EINVAL);
	free(bad.d);
	CHECK(!t_snap_exists(dst, "r@s8"));
	ce_vol *rh;
	OK(ce_vol_open(dst, "r", &rh)); /* untouched: not a partial receive */
	ce_vol_close(rh);

	/* a flipped bit in every record: refused; past BEGIN, a partial receive is left */
	for (size_t i = 0; i < nr; i++) {
		buf fb = { 0 };
		buf_write(&fb, good.d, good.n);
		size_t len = (i + 1 < nr ? at[i + 1] : good.n) - at[i];
		size_t pos = at[i] + (size_t)((i * 7919 + 13) % len);
		fb.d[pos] ^= (uint8_t)(1u << (i % 8));
		int r = recv_buf("r", &fb, 0);
		CHECK(r != 0);
		if (i == 0) {
			CHECK(r == -EBADMSG || r == -EINVAL);
			OK(ce_vol_open(dst, "r", &rh));
			ce_vol_close(rh);
		} else {
			if (i == 1 || i == nr - 1)
				printf("bit flip in record %zu: %s\n", i, ce_errmsg());
			CHECK(r == -EBADMSG);
			CHECK_ERR(ce_vol_open(dst, "r", &rh), -EBUSY); /* partial: not presented */
			CHECK(!t_snap_exists(dst, "r@s8"));
			if (i == 1) {
				/* its base stays, and so does its name, until it is finished or abandoned */
				CHECK_ERR(ce_snap_destroy(dst, "r@x"), -EBUSY);
				CHECK_ERR(ce_vol_rename(dst, "r", "r2"), -EBUSY);
				const char *sx = "r@other";
				CHECK_ERR(ce_snap_create(dst, &sx, 1, &e), -EINVAL);
				CHECK(e == -EBUSY);
				CHECK_ERR(ce_vol_rollback(dst, "r@x", 0), -EBUSY);
			}
			OK(ce_recv_abandon(dst, "r"));
			CHECK(same(src, "c@x", dst, "r")); /* rolled back to the base */
		}
		free(fb.d);
	}
	/* a record repeated, two swapped, one dropped */
	for (int kind = 0; kind < 3; kind++) {
		buf fb = { 0 };
		size_t i = 1 + (size_t)kind % (nr - 2);
		for (size_t r = 0; r < nr; r++) {
			size_t rr = kind == 1 && r == i ? i + 1 : kind == 1 && r == i + 1 ? i : r;
			size_t len = (rr + 1 < nr ? at[rr + 1] : good.n) - at[rr];
			if (kind == 2 && r == i)
				continue;
			buf_write(&fb, good.d + at[rr], len);
			if (kind == 0 && r == i)
				buf_write(&fb, good.d + at[rr], len);
		}
		CHECK_ERR(recv_buf("r", &fb, 0), -EBADMSG);
		printf("%s: %s\n", kind == 0 ? "repeated" : kind == 1 ? "swapped" : "dropped", ce_errmsg());
		CHECK(!t_snap_exists(dst, "r@s8"));
		OK(ce_recv_abandon(dst, "r"));
		free(fb.d);
	}

	/* truncated at many points: each resumed with the token gives the right snapshot */
	int resumed = 0;
	for (size_t cut = 100; cut < good.n; cut += good.n / 9 + 1) {
		good.limit = cut;
		int r = recv_buf("r", &good, 0);
		good.limit = 0;
		if (cut < 64 + 512) {
			CHECK(r != 0 && vol_exists(dst, "r"));
			OK(ce_vol_open(dst, "r", &rh)); /* BEGIN incomplete: nothing changed */
			ce_vol_close(rh);
			continue;
		}
		CHECK_ERR(r, -EPIPE);
		/* a plain re-send is refused while the partial receive exists */
		CHECK_ERR(recv_buf("r", &good, 0), -EBUSY);
		/* survives export and import */
		OK(ce_pool_export(dst));
		OK(ce_pool_import(&pb, 1, &o, &dst));
		OK(resume("r"));
		CHECK(same(src, "c@s8", dst, "r@s8") && same(src, "c@s8", dst, "r"));
		resumed++;
		/* back to the base for the next cut */
		OK(ce_snap_destroy(dst, "r@s8"));
		ce_vol_close(v);
		OK(ce_vol_rollback(dst, "r@x", 0));
		OK(ce_vol_open(src, "v", &v));
	}
	printf("truncated and resumed: %d times\n", resumed);
	CHECK(resumed >= 5);
	/* a full receive truncated, then abandoned: the volume goes */
	full.limit = full.n / 2;
	CHECK_ERR(recv_buf("half", &full, 0), -EPIPE);
	full.limit = 0;
	CHECK(vol_exists(dst, "half"));
	CHECK_ERR(ce_vol_open(dst, "half", &rh), -EBUSY);
	OK(ce_recv_abandon(dst, "half"));
	CHECK(!vol_exists(dst, "half"));
	CHECK_ERR(ce_recv_abandon(dst, "r"), -ENOENT);
	OK(ce_pool_sync(dst));
	OK(ce_pool_stat_get(dst, &st1));
	printf("after every bad stream: allocated %" PRIu64 " -> %" PRIu64 "\n", st0.allocated, st1.allocated);
	CHECK(st1.allocated <= st0.allocated + 65536);
	/* finally the good stream applies */
	OK(recv_buf("r", &good, 0));
	CHECK(same(src, "c@s8", dst, "r@s8"));
	free(good.d);
	free(full.d);

	/* -F: a changed target is refused, then rolled back */
	OK(ce_vol_open(dst, "r", &rh));
	fill(rh, 1, 1, 123);
	ce_vol_close(rh);
	OK(ce_vol_open(src, "c", &cv));
	fill(cv, 7, 1, 11);
	ce_vol_close(cv);
	const char *c9 = "c@s9";
	OK(ce_snap_create(src, &c9, 1, &e));
	buf inc9 = send_stream("c@s9", "c@s8");
	CHECK_ERR(recv_buf("r", &inc9, 0), -ETXTBSY);
	printf("changed target: %s\n", ce_errmsg());
	OK(recv_buf("r", &inc9, CE_RECV_FORCE));
	CHECK(same(src, "c@s9", dst, "r@s9") && same(src, "c@s9", dst, "r"));
	free(inc9.d);

	policy_streams(pb);

	ce_vol_close(v);
	OK(ce_pool_export(src));
	OK(ce_pool_export(dst));
	CHECK(t_debug_check(argv0, pa, NULL) == 0);
	CHECK(t_debug_check(argv0, pb, NULL) == 0);
	printf("ok\n");
	return 0;
}
