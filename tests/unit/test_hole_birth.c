/*
 * test_hole_birth -- regression test for a bug cask-stress found (seed
 * 11, round 6): an incremental send missed blocks that had been punched.
 *
 * The blocks a snapshot shares with its base are not sent; a block's
 * pointer records its birth txg, and a hole's birth is the txg that
 * punched it, so "born after the base" means "changed since". When a
 * trim or a shrink emptied a whole indirect block, the indirect became a
 * hole born in that txg (cowtree invariant 4). A later write under it
 * rebuilt the indirect from a buffer of zeros, so its other children
 * became holes born in txg 0: "never written". The send skipped them,
 * and the receiver kept the base's data where the snapshot reads zeros.
 * (OpenZFS had the same bug: hole_birth.)
 *
 * Each case: a volume of 256 + 256 blocks (two indirect blocks), data in
 * the first, snapshot A, the first indirect emptied (by trim, write
 * zeroes, a shrink and grow, or a trim in a clone after a promote), then a
 * write elsewhere under it, snapshot B. B is sent incrementally from A
 * into a second pool and must read the same, and ce_vol_diff(A, B) must
 * name the punched blocks.
 */
#include "t.h"

#define BS 4096u
#define NB 512u

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
	memcpy(p, b->d + b->pos, n);
	b->pos += n;
	return (ssize_t)n;
}

static ce_pool *src, *dst;

static void
xfer(const char *snap, const char *from, const char *target)
{
	buf b = { 0 };
	ce_send_opts so = { from, NULL, NULL, NULL, 0 };
	OK(ce_send(src, snap, &so, buf_write, &b));
	ce_recv_opts ro = { 0, NULL, NULL, 0, { 0 } };
	char got[300];
	OK(ce_recv(dst, target, &ro, buf_read, &b, got, sizeof(got)));
	free(b.d);
}

static void
write_blocks(const char *vol, uint64_t first, uint64_t n, uint64_t tag)
{
	ce_vol *h;
	uint8_t *b = malloc(n * BS);
	for (uint64_t i = 0; i < n; i++)
		t_fill(b + i * BS, BS, tag * 1000 + first + i);
	OK(ce_vol_open(src, vol, &h));
	OK(ce_vol_write(h, b, n * BS, first * BS));
	ce_vol_close(h);
	free(b);
}

static void
snap(const char *name)
{
	int e;
	OK(ce_snap_create(src, &name, 1, &e));
}

typedef struct seen {
	uint64_t lo, hi; /* the punched blocks, as bytes */
	int covered;
} seen;

static int
on_range(void *arg, uint64_t off, uint64_t len, int kind)
{
	seen *s = arg;
	if (kind == CE_DIFF_HOLE && off <= s->lo && off + len >= s->hi)
		s->covered = 1;
	return 0;
}

enum { BY_TRIM, BY_ZEROES, BY_SHRINK, BY_CLONE_TRIM, NCASES };
static const char *case_names[] = { "trim", "write-zeroes", "shrink and grow", "trim in a promoted clone" };

static void
one_case(int c)
{
	char vol[32], a[64], b[64], target[32], rb[64];
	snprintf(vol, sizeof(vol), "v%d", c);
	snprintf(a, sizeof(a), "%s@a", vol);
	snprintf(b, sizeof(b), "%s@b", vol);
	snprintf(target, sizeof(target), "r%d", c);
	snprintf(rb, sizeof(rb), "%s@b", target);
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.volblocksize = BS;
	OK(ce_vol_create(src, vol, (uint64_t)NB * BS, &pr));
	write_blocks(vol, 62, 4, 1);     /* the only data under the first indirect */
	write_blocks(vol, 300, 2, 1);    /* and some under the second */
	snap(a);
	xfer(a, NULL, target);
	const char *from = a;
	char o[16];
	ce_vol *h;
	switch (c) {
	case BY_TRIM:
	case BY_ZEROES:
		OK(ce_vol_open(src, vol, &h));
		if (c == BY_TRIM)
			OK(ce_vol_trim(h, 62 * BS, 4 * BS));
		else
			OK(ce_vol_write_zeroes(h, 62 * BS, 4 * BS));
		ce_vol_close(h);
		break;
	case BY_SHRINK:
		OK(ce_vol_resize(src, vol, 19 * BS, CE_RESIZE_SHRINK));
		OK(ce_pool_sync(src));
		OK(ce_vol_resize(src, vol, (uint64_t)NB * BS, 0));
		break;
	case BY_CLONE_TRIM:
		/* the clone becomes the head of the lineage; A moves to it */
		snprintf(o, sizeof(o), "c%d", c);
		OK(ce_vol_clone(src, a, o));
		OK(ce_vol_promote(src, o));
		snprintf(a, sizeof(a), "%s@a", o);
		from = a;
		OK(ce_vol_open(src, vol, &h));
		OK(ce_vol_trim(h, 62 * BS, 4 * BS));
		ce_vol_close(h);
		break;
	}
	OK(ce_pool_sync(src)); /* the first indirect is a hole now, born in this txg */
	write_blocks(vol, 87, 6, 2); /* rebuilds it */
	snap(b);
	seen s = { 62 * BS, 66 * BS, 0 };
	OK(ce_vol_diff(src, from, b, on_range, &s));
	xfer(b, from, target);
	ce_vol *x, *y;
	OK(ce_vol_open(src, b, &x));
	OK(ce_vol_open(dst, rb, &y));
	CHECK(ce_vol_size(x) == ce_vol_size(y));
	uint64_t n = ce_vol_size(x);
	uint8_t *p = malloc(n), *q = malloc(n);
	OK(ce_vol_read(x, p, n, 0));
	OK(ce_vol_read(y, q, n, 0));
	uint64_t bad = 0;
	for (uint64_t k = 0; k < n / BS; k++)
		bad += memcmp(p + k * BS, q + k * BS, BS) != 0;
	printf("%-26s diff names the punched blocks: %s; received blocks that differ: %" PRIu64 "\n",
	    case_names[c], s.covered ? "yes" : "NO", bad);
	CHECK(s.covered);
	CHECK(bad == 0);
	free(p);
	free(q);
	ce_vol_close(x);
	ce_vol_close(y);
}

int
main(void)
{
	t_tmpdir();
	const char *pa = t_path("a"), *pb = t_path("b");
	ce_pool_opts o;
	memset(&o, 0, sizeof(o));
	o.vdev_size = 64ull << 20;
	OK(ce_pool_create("a", &pa, 1, &o, &src));
	OK(ce_pool_create("b", &pb, 1, &o, &dst));
	for (int c = 0; c < NCASES; c++)
		one_case(c);
	OK(ce_pool_export(src));
	OK(ce_pool_export(dst));
	printf("ok\n");
	return 0;
}
