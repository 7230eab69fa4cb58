/*
 * test_repl_tail -- the engine side of reconciliation and of sequenced
 * snapshots (lib/engine/repl.c invariants 7 and 8; docs/replication.md
 * sections 3.6 and 3.7, as built):
 *   - the extent ring: ce_repl_extents lists the ranges of the operations
 *     after a seq, in order (snapshot operations have none); after an
 *     import it knows nothing before the recovered applied (-ERANGE);
 *   - sequenced snapshots: create at seq s holds exactly 1..s-1; a create
 *     of a name that exists still consumes its seq (every replica fails it
 *     alike); rename and destroy likewise;
 *   - sequenced rollback and resize (ce_repl_volop, section 3.6 item 4):
 *     a rollback of the replica's volume while handles have it open, the
 *     ring noting it as the whole volume and a resize as the bytes between
 *     the sizes; a failed one (no such snapshot, a shrink without the flag)
 *     consumes its seq; bad arguments and a gap do not;
 *   - a tail sync: refused unless the epoch is promised and not started;
 *     TAIL_BEGIN makes the record rebuilding (kind tail) durably, so a
 *     crash in the middle (an abandon) imports as rebuilding, which
 *     cask-debug check accepts and which no sequenced write may touch; a
 *     new attempt begins again, copies, and START_EPOCH sets applied down
 *     to the base with the new epoch and the reference's history; the
 *     bytes copied and the record survive export and import;
 *   - a tail sync that spans txgs (a pool sync between its writes) is
 *     covered by the sequence->txg map (repl.c invariant 10): a listing by
 *     births (ce_rebuild_scan) from any point between the member's old hi
 *     and the base lists every range the tail wrote, before and after the
 *     syncs; one from the base lists only what came after it.
 */
#include "t.h"

#define BS 4096u

static const char *argv0;

static void
mb_make(uint8_t mb[CE_REPL_MB_SIZE], ce_epoch e, uint64_t version, uint64_t id)
{
	memset(mb, 0, CE_REPL_MB_SIZE);
	memcpy(mb + 0, &version, 8);
	memcpy(mb + 8, &e.counter, 8);
	memcpy(mb + 16, &e.node, 8);
	mb[32] = 2;
	mb[33] = 1;
	memcpy(mb + 320, &id, 8);
	mb[320 + 16] = 1;
}

static void
pat(uint8_t *b, uint64_t tag)
{
	t_fill(b, BS, tag * 7919 + 1);
	memcpy(b, &tag, 8);
}

/* eh_phys entries (32 bytes: epoch counter, node, base, flags) */
static void
hist_entry(uint8_t *h, ce_epoch e, uint64_t base)
{
	memset(h, 0, 32);
	memcpy(h, &e.counter, 8);
	memcpy(h + 8, &e.node, 8);
	memcpy(h + 16, &base, 8);
	h[24] = 1;
}

typedef struct {
	uint8_t blk[64]; /* blocks of the volume listed */
} listed;

static int
note_listed(void *arg, uint64_t off, uint64_t len, int kind)
{
	(void)kind;
	listed *l = arg;
	for (uint64_t b = off / BS; b < (off + len + BS - 1) / BS && b < 64; b++)
		l->blk[b] = 1;
	return 0;
}

/*
 * A member at seq 10 tail-syncs to base 100 in three txgs (two pool syncs
 * between the writes); then a delta rebuild's listing from any c in
 * [10, 100) must name every block the tail wrote.
 */
static void
tail_across_txgs(void)
{
	const char *path = t_path("pool2");
	ce_pool_opts o = { 0 };
	o.vdev_size = 64ull << 20;
	ce_pool *p;
	OK(ce_pool_create("rt2", &path, 1, &o, &p));
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.compress = CE_COMPRESS_OFF;
	OK(ce_vol_create(p, "m", 256 * BS, &pr));
	ce_vol_info vi;
	OK(ce_vol_info_get(p, "m", &vi));
	uint64_t id = vi.guid;
	uint8_t uuid[16] = { 9 };
	ce_epoch e1 = { 1, id }, e2 = { 2, id };
	OK(ce_repl_make(p, "m", uuid, e1, "here:1"));
	uint8_t mb[CE_REPL_MB_SIZE], b[BS];
	mb_make(mb, e1, 1, id);
	OK(ce_repl_start_epoch(p, "m", e1, 0, mb));
	ce_vol *h;
	OK(ce_repl_open(p, "m", &h));
	for (uint64_t s = 1; s <= 10; s++) { /* seqs 1-10: blocks 0-9 */
		pat(b, s);
		OK(ce_repl_write(h, e1, s, b, BS, (s - 1) * BS));
	}
	uint64_t d;
	OK(ce_repl_flush(h, &d));
	CHECK(d == 10);

	/* the tail 10 -> 100: blocks 20-29 (27 zeroed), a pool sync after 23 and after 27 */
	uint8_t hist[32];
	hist_entry(hist, e1, 0);
	OK(ce_repl_promise(p, "m", e2, "there:2", NULL, NULL));
	OK(ce_repl_tail_begin(p, "m", e2, hist, 1));
	for (uint64_t k = 20; k < 30; k++) {
		pat(b, 1000 + k);
		OK(ce_repl_tail_write(h, e2, b, BS, k * BS, k == 27));
		if (k == 23 || k == 27)
			OK(ce_pool_sync(p));
	}
	mb_make(mb, e2, 2, id);
	OK(ce_repl_start_epoch(p, "m", e2, 100, mb));
	static const uint64_t from[] = { 10, 50, 99 };
	for (size_t i = 0; i < sizeof(from) / sizeof(from[0]); i++) {
		listed l = { { 0 } };
		OK(ce_rebuild_scan(h, from[i], 0, 0, note_listed, &l));
		int missed = 0;
		for (uint64_t k = 20; k < 30; k++)
			missed += !l.blk[k];
		printf("tail across txgs: a listing from %" PRIu64 " misses %d of the 10 blocks the tail wrote\n",
		    from[i], missed);
		CHECK(missed == 0);
	}
	/* after the base: only the new epoch's writes */
	pat(b, 101);
	OK(ce_repl_write(h, e2, 101, b, BS, 40 * BS));
	listed l = { { 0 } };
	OK(ce_rebuild_scan(h, 100, 0, 0, note_listed, &l));
	for (uint64_t k = 0; k < 64; k++)
		CHECK(l.blk[k] == (k == 40));
	ce_vol_close(h);
	OK(ce_pool_export(p));
	CHECK(t_debug_check(argv0, path, NULL) == 0); /* the map's order rules hold */
	OK(ce_pool_import(&path, 1, NULL, &p));
	OK(ce_repl_open(p, "m", &h));
	memset(&l, 0, sizeof(l));
	OK(ce_rebuild_scan(h, 50, 0, 0, note_listed, &l));
	for (uint64_t k = 20; k < 30; k++)
		CHECK(l.blk[k]); /* the record on disk says the same */
	ce_vol_close(h);
	OK(ce_pool_export(p));
}

int
main(int argc, char **argv)
{
	(void)argc;
	argv0 = argv[0];
	t_tmpdir();
	const char *path = t_path("pool");
	ce_pool_opts o = { 0 };
	o.vdev_size = 64ull << 20;
	ce_pool *p;
	OK(ce_pool_create("rt", &path, 1, &o, &p));
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.compress = CE_COMPRESS_OFF;
	OK(ce_vol_create(p, "r", 4 << 20, &pr));
	ce_vol_info vi;
	OK(ce_vol_info_get(p, "r", &vi));
	uint64_t id = vi.guid;
	uint8_t uuid[16] = { 7 };
	ce_epoch e1 = { 1, id };
	OK(ce_repl_make(p, "r", uuid, e1, "here:1"));
	uint8_t mb[CE_REPL_MB_SIZE];
	mb_make(mb, e1, 1, id);
	OK(ce_repl_start_epoch(p, "r", e1, 0, mb));
	ce_vol *h;
	OK(ce_repl_open(p, "r", &h));
	uint8_t b[BS], got[BS];

	/* the ring: 20 writes, block s % 16 each */
	for (uint64_t s = 1; s <= 20; s++) {
		pat(b, s);
		OK(ce_repl_write(h, e1, s, b, BS, (s % 16) * BS));
	}
	uint64_t off[64], len[64], top;
	size_t n;
	OK(ce_repl_extents(h, 10, off, len, 64, &n, &top));
	CHECK(n == 10 && top == 20);
	for (size_t i = 0; i < n; i++)
		CHECK(off[i] == ((11 + i) % 16) * BS && len[i] == BS);
	OK(ce_repl_extents(h, 20, off, len, 64, &n, &top));
	CHECK(n == 0 && top == 20);
	OK(ce_repl_extents(h, 0, off, len, 4, &n, &top)); /* a page of 4 */
	CHECK(n == 4 && top == 4);

	/* sequenced snapshots */
	int oe;
	uint64_t d0;
	OK(ce_repl_snap(h, e1, 21, CE_REPL_SNAP_CREATE, "s1", NULL, &oe));
	CHECK(oe == 0 && ce_repl_applied(h) == 21);
	OK(ce_repl_snap(h, e1, 22, CE_REPL_SNAP_CREATE, "s1", NULL, &oe)); /* exists: consumed, failed alike */
	CHECK(oe == -EEXIST && ce_repl_applied(h) == 22);
	CHECK_ERR(ce_repl_snap(h, e1, 24, CE_REPL_SNAP_CREATE, "s2", NULL, &oe), -EPROTO); /* a gap: not consumed */
	CHECK(ce_repl_applied(h) == 22);
	pat(b, 23);
	OK(ce_repl_write(h, e1, 23, b, BS, 5 * BS)); /* after the snapshot */
	OK(ce_repl_snap(h, e1, 24, CE_REPL_SNAP_RENAME, "s1", "t1", &oe));
	CHECK(oe == 0);
	OK(ce_repl_extents(h, 20, off, len, 64, &n, &top));
	CHECK(n == 1 && off[0] == 5 * BS && top == 24); /* snapshot operations: no bytes */
	ce_vol *sv;
	OK(ce_vol_open(p, "r@t1", &sv));
	OK(ce_vol_read(sv, got, BS, 5 * BS));
	pat(b, 5);
	CHECK(memcmp(got, b, BS) == 0); /* seq 5 wrote block 5; 23 came after the snapshot */
	ce_vol_close(sv);
	OK(ce_repl_snap(h, e1, 25, CE_REPL_SNAP_DESTROY, "t1", NULL, &oe));
	CHECK(oe == 0 && ce_vol_open(p, "r@t1", &sv) == -ENOENT);

	/* sequenced rollback and resize, the volume open (h, and a plain reader) */
	ce_vol *pl;
	OK(ce_vol_open(p, "r", &pl));
	OK(ce_repl_snap(h, e1, 26, CE_REPL_SNAP_CREATE, "rb", NULL, &oe));
	pat(b, 27);
	OK(ce_repl_write(h, e1, 27, b, BS, 6 * BS));
	OK(ce_repl_volop(h, e1, 28, CE_REPL_ROLLBACK, "rb", 0, 0, &oe));
	CHECK(oe == 0 && ce_repl_applied(h) == 28);
	OK(ce_vol_read(pl, got, BS, 6 * BS));
	pat(b, 6);
	CHECK(memcmp(got, b, BS) == 0); /* seq 27 is gone, seq 6's block is back */
	OK(ce_repl_extents(h, 27, off, len, 64, &n, &top));
	CHECK(n == 1 && off[0] == 0 && len[0] == 4 << 20 && top == 28); /* a rollback: the whole volume */
	OK(ce_repl_volop(h, e1, 29, CE_REPL_RESIZE, NULL, 8 << 20, 0, &oe));
	CHECK(oe == 0 && ce_vol_size(pl) == 8 << 20 && ce_vol_size(h) == 8 << 20);
	OK(ce_repl_extents(h, 28, off, len, 64, &n, &top));
	CHECK(n == 1 && off[0] == 4 << 20 && len[0] == 4 << 20 && top == 29); /* a resize: between the sizes */
	OK(ce_repl_volop(h, e1, 30, CE_REPL_RESIZE, NULL, 6 << 20, 0, &oe)); /* shrink without the flag */
	CHECK(oe == -EINVAL && ce_repl_applied(h) == 30 && ce_vol_size(pl) == 8 << 20);
	OK(ce_repl_volop(h, e1, 31, CE_REPL_ROLLBACK, "nope", 0, 0, &oe));
	CHECK(oe == -ENOENT && ce_repl_applied(h) == 31);
	CHECK_ERR(ce_repl_volop(h, e1, 32, CE_REPL_ROLLBACK, "a@b", 0, 0, &oe), -EINVAL); /* not consumed */
	CHECK_ERR(ce_repl_volop(h, e1, 32, CE_REPL_RESIZE, NULL, 0, 0, &oe), -EINVAL);
	CHECK_ERR(ce_repl_volop(h, e1, 33, CE_REPL_RESIZE, NULL, 8 << 20, 0, &oe), -EPROTO); /* a gap */
	OK(ce_repl_volop(h, e1, 32, CE_REPL_RESIZE, NULL, 6 << 20, CE_RESIZE_SHRINK, &oe));
	CHECK(oe == 0 && ce_repl_applied(h) == 32 && ce_vol_size(pl) == 6 << 20);
	ce_vol_close(pl);
	OK(ce_repl_flush(h, &d0));
	CHECK(d0 == 32);

	/* a tail sync: promised, not started */
	ce_epoch e2 = { 2, id };
	uint8_t hist[2 * 32];
	hist_entry(hist, e1, 0);
	CHECK_ERR(ce_repl_tail_begin(p, "r", e2, hist, 1), -ESTALE); /* not promised */
	OK(ce_repl_promise(p, "r", e2, "there:2", NULL, NULL));
	CHECK_ERR(ce_repl_tail_begin(p, "r", e2, hist, 0), -EINVAL);
	OK(ce_repl_tail_begin(p, "r", e2, hist, 1));
	ce_repl_info ri;
	OK(ce_repl_info_get(p, "r", &ri));
	CHECK(ri.state == 2);
	pat(b, 900);
	OK(ce_repl_tail_write(h, e2, b, BS, 2 * BS, 0));
	CHECK_ERR(ce_repl_write(h, e2, 33, b, BS, 0), -ESTALE); /* no sequenced write during it */
	ce_vol_close(h);
	ce_pool_abandon(p); /* a crash in the middle */
	OK(ce_pool_import(&path, 1, NULL, &p));
	OK(ce_repl_info_get(p, "r", &ri));
	printf("after a crash during a tail sync: state %u (rebuilding), applied %" PRIu64 "\n", ri.state, ri.applied);
	CHECK(ri.state == 2);
	OK(ce_pool_export(p));
	CHECK(t_debug_check(argv0, path, NULL) == 0);
	OK(ce_pool_import(&path, 1, NULL, &p));
	OK(ce_repl_open(p, "r", &h));
	/* after an import the ring knows nothing before applied */
	OK(ce_repl_info_get(p, "r", &ri));
	CHECK_ERR(ce_repl_extents(h, ri.applied - 1, off, len, 64, &n, &top), -ERANGE);

	/* a new attempt: the reference's state is seq 15 of epoch 1 (its history), copied, started */
	ce_epoch e3 = { 3, id };
	OK(ce_repl_promise(p, "r", e3, "there:3", NULL, NULL));
	OK(ce_repl_tail_begin(p, "r", e3, hist, 1));
	pat(b, 901);
	OK(ce_repl_tail_write(h, e3, b, BS, 2 * BS, 0));
	OK(ce_repl_tail_write(h, e3, NULL, BS, 3 * BS, 1));
	mb_make(mb, e3, 2, id);
	OK(ce_repl_start_epoch(p, "r", e3, 15, mb));
	OK(ce_repl_info_get(p, "r", &ri));
	CHECK(ri.state == 1 && ri.applied == 15 && ri.last_epoch.counter == 3 && ri.hist_count == 2);
	CHECK_ERR(ce_repl_tail_write(h, e3, b, BS, 0, 0), -EINVAL); /* over */
	OK(ce_repl_extents(h, 15, off, len, 64, &n, &top));
	CHECK(n == 0 && top >= 15);
	pat(b, 16);
	OK(ce_repl_write(h, e3, 16, b, BS, 9 * BS)); /* the new epoch goes on from the base */
	uint64_t d;
	OK(ce_repl_flush(h, &d));
	CHECK(d == 16);
	ce_vol_close(h);
	OK(ce_pool_export(p));
	CHECK(t_debug_check(argv0, path, NULL) == 0);
	OK(ce_pool_import(&path, 1, NULL, &p));
	OK(ce_repl_info_get(p, "r", &ri));
	CHECK(ri.state == 1 && ri.applied == 16 && ri.last_epoch.counter == 3);
	ce_vol *rd;
	OK(ce_vol_open(p, "r", &rd));
	OK(ce_vol_read(rd, got, BS, 2 * BS));
	pat(b, 901);
	CHECK(memcmp(got, b, BS) == 0);
	static const uint8_t z[BS];
	OK(ce_vol_read(rd, got, BS, 3 * BS));
	CHECK(memcmp(got, z, BS) == 0);
	ce_vol_close(rd);
	OK(ce_pool_export(p));
	tail_across_txgs();
	printf("ok\n");
	return 0;
}
