/*
 * test_rebuild -- the engine side of rebuild (lib/engine/rebuild.c,
 * docs/replication.md section 12), with two pools standing for two hosts:
 *   - ce_rebuild_scan lists exactly the blocks the operations after the
 *     common point touched (data and holes), and nothing for a point at
 *     the newest applied; full lists every data block;
 *   - a delta rebuild with live operations interleaved (applied while
 *     rebuilding; rebuild data kept off the ranges they touched) ends with
 *     equal digests, state complete, and cask-debug check clean;
 *   - the cursor is durable (export/import), resume needs the same cursor,
 *     rebuild data is refused in another epoch or outside a rebuild;
 *   - a full rebuild of a new replica (no history) adopts the epoch;
 *   - a rollback (no new births) makes a listing from before it the whole
 *     volume, durably, and one from after it only what came after.
 */
#include "t.h"

#define BS 4096u
#define SIZE (16ull << 20)
#define NB (SIZE / BS)

static const char *argv0;

static void
mb_make(uint8_t mb[CE_REPL_MB_SIZE], ce_epoch e, uint64_t id)
{
	uint64_t version = 1;
	memset(mb, 0, CE_REPL_MB_SIZE);
	memcpy(mb + 0, &version, 8);
	memcpy(mb + 8, &e.counter, 8);
	memcpy(mb + 16, &e.node, 8);
	mb[32] = 2;
	mb[33] = 1;
	memcpy(mb + 320, &id, 8);
	mb[320 + 16] = 1;
}

typedef struct replica {
	const char *path;
	ce_pool *p;
	ce_vol *h;
	uint64_t id;
} replica;

static void
make_replica(replica *r, const char *pool, const char *path, const uint8_t uuid[16], ce_epoch *e, int start)
{
	ce_pool_opts o = { 0 };
	o.vdev_size = 128ull << 20;
	r->path = path;
	OK(ce_pool_create(pool, &r->path, 1, &o, &r->p));
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	OK(ce_vol_create(r->p, "v", SIZE, &pr));
	ce_vol_info vi;
	OK(ce_vol_info_get(r->p, "v", &vi));
	r->id = vi.guid;
	if (e->node == 0)
		*e = (ce_epoch){ 1, vi.guid };
	OK(ce_repl_make(r->p, "v", uuid, *e, "h:1"));
	if (start) {
		uint8_t mb[CE_REPL_MB_SIZE];
		mb_make(mb, *e, r->id);
		OK(ce_repl_start_epoch(r->p, "v", *e, 0, mb));
	}
	OK(ce_repl_open(r->p, "v", &r->h));
}

/* Operation seq (deterministic): a write of 1-3 blocks, or every 5th a trim. */
static void
op_of(uint64_t seq, uint64_t *blk, uint64_t *nblk, int *trim)
{
	uint64_t s = seq * 2654435761u;
	*blk = (s >> 7) % (NB - 4);
	*nblk = 1 + (s >> 3) % 3;
	*trim = seq % 5 == 0;
}

static void
apply_op(replica *r, ce_epoch e, uint64_t seq, uint8_t *touched)
{
	uint64_t blk, n;
	int trim;
	op_of(seq, &blk, &n, &trim);
	uint8_t buf[3 * BS];
	t_fill(buf, n * BS, seq);
	if (trim)
		OK(ce_repl_trim(r->h, e, seq, blk * BS, n * BS));
	else
		OK(ce_repl_write(r->h, e, seq, buf, n * BS, blk * BS));
	if (touched)
		memset(touched + blk, 1, n);
}

typedef struct list {
	uint64_t off[4096], len[4096];
	int kind[4096];
	size_t n;
} list;

static int
collect(void *arg, uint64_t off, uint64_t len, int kind)
{
	list *l = arg;
	CHECK(l->n < 4096);
	l->off[l->n] = off;
	l->len[l->n] = len;
	l->kind[l->n++] = kind;
	return 0;
}

static void
listed_blocks(const list *l, uint8_t *out)
{
	memset(out, 0, NB);
	for (size_t i = 0; i < l->n; i++)
		memset(out + l->off[i] / BS, 1, l->len[i] / BS);
}

/* Copy the listed ranges from src to the rebuilding dst, except blocks in skip (live since J). */
static void
copy_ranges(replica *src, replica *dst, ce_epoch e, const list *l, const uint8_t *skip)
{
	uint8_t buf[BS];
	for (size_t i = 0; i < l->n; i++) {
		for (uint64_t b = l->off[i] / BS; b < (l->off[i] + l->len[i]) / BS; b++) {
			if (skip && skip[b])
				continue;
			ce_extent ex;
			size_t n;
			OK(ce_vol_map(src->h, b * BS, BS, &ex, 1, &n));
			if (ex.flags & CE_EXTENT_HOLE) {
				OK(ce_rebuild_hole(dst->h, e, b * BS, BS));
			} else {
				OK(ce_vol_read(src->h, buf, BS, b * BS));
				OK(ce_rebuild_write(dst->h, e, buf, BS, b * BS));
			}
		}
		OK(ce_rebuild_cursor(dst->h, l->off[i] + l->len[i], 0, 0));
	}
}

static void
same(replica *a, replica *b)
{
	uint8_t da[16], db[16];
	OK(ce_vol_digest(a->h, da));
	OK(ce_vol_digest(b->h, db));
	CHECK(memcmp(da, db, 16) == 0);
}

int
main(int argc, char **argv)
{
	(void)argc;
	argv0 = argv[0];
	t_tmpdir();
	uint8_t uuid[16] = { 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6 };
	ce_epoch e = { 0, 0 };
	replica s, t;
	make_replica(&s, "src", t_path("src"), uuid, &e, 1);
	make_replica(&t, "tgt", t_path("tgt"), uuid, &e, 1);

	/* 1..100 on both, committed; 101..200 only on the source (the target is away) */
	for (uint64_t q = 1; q <= 100; q++) {
		apply_op(&s, e, q, NULL);
		apply_op(&t, e, q, NULL);
	}
	uint64_t d;
	OK(ce_repl_flush(s.h, &d));
	OK(ce_repl_flush(t.h, &d));
	uint8_t *missed = calloc(1, NB), *got = calloc(1, NB), *live = calloc(1, NB);
	for (uint64_t q = 101; q <= 200; q++)
		apply_op(&s, e, q, missed);

	/* the listings: exactly what 101..200 touched on the source, nothing on the target */
	list *ls = calloc(1, sizeof(list)), *lt = calloc(1, sizeof(list));
	OK(ce_rebuild_scan(s.h, 100, 0, 0, collect, ls));
	listed_blocks(ls, got);
	CHECK(memcmp(got, missed, NB) == 0);
	int holes = 0;
	for (size_t i = 0; i < ls->n; i++)
		holes += ls->kind[i] == CE_DIFF_HOLE;
	CHECK(holes > 0); /* the trims are listed as holes */
	OK(ce_rebuild_scan(t.h, 100, 0, 0, collect, lt));
	CHECK(lt->n == 0);
	list *none = calloc(1, sizeof(list));
	OK(ce_rebuild_scan(s.h, 200, 0, 0, collect, none));
	CHECK(none->n == 0);

	/* not rebuilding yet: rebuild data is refused */
	uint8_t blk[BS];
	memset(blk, 7, BS);
	CHECK_ERR(ce_rebuild_write(t.h, e, blk, BS, 0), -EINVAL);
	/* begin at J = 200 (a wrong epoch is refused first) */
	ce_rebuild rb = { CE_RB_DELTA, 0, e, 100, 200, s.id, 0, 0, 0, 0, 0 };
	CHECK_ERR(ce_rebuild_begin(t.h, (ce_epoch){ 9, 9 }, &rb), -ESTALE);
	rb.join_seq = 50;
	CHECK_ERR(ce_rebuild_begin(t.h, e, &rb), -EPROTO); /* below applied */
	rb.join_seq = 200;
	OK(ce_rebuild_begin(t.h, e, &rb));
	CHECK(ce_repl_applied(t.h) == 200);
	CHECK_ERR(ce_rebuild_write(t.h, (ce_epoch){ 9, 9 }, blk, BS, 0), -ESTALE);
	/* live operations 201..230 reach both; the target applies them while rebuilding */
	for (uint64_t q = 201; q <= 230; q++) {
		apply_op(&s, e, q, NULL);
		apply_op(&t, e, q, live);
	}
	/* half the ranges, the cursor, a crash of the target (export/import) */
	list half = *ls;
	half.n = ls->n / 2;
	copy_ranges(&s, &t, e, &half, live);
	uint64_t dc = 0, cur = half.off[half.n - 1] + half.len[half.n - 1];
	OK(ce_rebuild_flush(t.h, &dc));
	CHECK(dc == cur);
	ce_vol_close(t.h);
	OK(ce_pool_export(t.p));
	CHECK(t_debug_check(argv0, t.path, NULL) == 0);
	OK(ce_pool_import(&t.path, 1, NULL, &t.p));
	OK(ce_repl_open(t.p, "v", &t.h));
	ce_rebuild got_rb;
	OK(ce_rebuild_get(t.h, &got_rb, &dc));
	CHECK(got_rb.kind == CE_RB_DELTA && got_rb.cursor == cur && dc == cur && got_rb.join_seq == 200 &&
	    got_rb.base_seq == 100);
	ce_repl_info ri;
	OK(ce_repl_info_get(t.p, "v", &ri));
	CHECK(ri.state == 2 && ri.applied == 230);
	/* resume: the same cursor, a new join point (nothing happened since 230) */
	rb.flags = CE_RB_RESUME;
	rb.cursor = cur + BS;
	rb.join_seq = 230;
	CHECK_ERR(ce_rebuild_begin(t.h, e, &rb), -EPROTO);
	rb.cursor = cur;
	OK(ce_rebuild_begin(t.h, e, &rb));
	list rest = *ls;
	size_t k = 0;
	for (size_t i = 0; i < ls->n; i++)
		if (ls->off[i] + ls->len[i] > cur) {
			rest.off[k] = ls->off[i], rest.len[k] = ls->len[i], rest.kind[k++] = ls->kind[i];
		}
	rest.n = k;
	copy_ranges(&s, &t, e, &rest, live);
	OK(ce_rebuild_end(t.h, e, CE_RB_COMPLETE));
	OK(ce_repl_info_get(t.p, "v", &ri));
	CHECK(ri.state == 1);
	same(&s, &t);
	for (uint64_t q = 231; q <= 240; q++) { /* it is a complete member again */
		apply_op(&s, e, q, NULL);
		apply_op(&t, e, q, NULL);
	}
	same(&s, &t);

	/* full rebuild of a new replica that never started the epoch */
	replica n;
	make_replica(&n, "new", t_path("new"), uuid, &e, 0);
	list *lf = calloc(1, sizeof(list));
	OK(ce_rebuild_scan(s.h, 0, 1, 0, collect, lf));
	for (size_t i = 0; i < lf->n; i++)
		CHECK(lf->kind[i] == CE_DIFF_DATA);
	ce_rebuild fr = { CE_RB_FULL, 0, e, 0, 240, s.id, 0, 0, 0, 0, 0 };
	OK(ce_rebuild_begin(n.h, e, &fr));
	copy_ranges(&s, &n, e, lf, NULL);
	OK(ce_rebuild_end(n.h, e, CE_RB_COMPLETE));
	OK(ce_repl_info_get(n.p, "v", &ri));
	CHECK(ri.state == 1 && ri.applied == 240 && ri.hist_count == 1 && ri.last_epoch.node == e.node);
	apply_op(&s, e, 241, NULL);
	apply_op(&n, e, 241, NULL);
	same(&s, &n);
	CHECK_ERR(ce_rebuild_end(n.h, e, CE_RB_COMPLETE), -EINVAL); /* not rebuilding any more */

	/*
	 * A rollback changes bytes without births (repl.c invariant 9): a
	 * listing from a point before it is the whole volume, durably; one from
	 * after it lists only what came after. Without the mark the listing
	 * from 250 below found nothing although 243..250 were rolled back.
	 */
	int op_err = 0;
	OK(ce_repl_snap(s.h, e, 242, CE_REPL_SNAP_CREATE, "x", NULL, &op_err));
	CHECK(op_err == 0);
	for (uint64_t q = 243; q <= 250; q++)
		apply_op(&s, e, q, NULL);
	OK(ce_repl_flush(s.h, &d));
	OK(ce_repl_volop(s.h, e, 251, CE_REPL_ROLLBACK, "x", 0, 0, &op_err));
	CHECK(op_err == 0);
	for (int pass = 0; pass < 2; pass++) {
		list *lr = calloc(1, sizeof(list));
		OK(ce_rebuild_scan(s.h, 250, 0, 0, collect, lr));
		CHECK(lr->n == 1 && lr->off[0] == 0 && lr->len[0] == SIZE && lr->kind[0] == CE_DIFF_DATA);
		lr->n = 0;
		OK(ce_rebuild_scan(s.h, 100, 0, 4 * BS, collect, lr)); /* from an offset: the rest */
		CHECK(lr->n == 1 && lr->off[0] == 4 * BS && lr->len[0] == SIZE - 4 * BS);
		lr->n = 0;
		OK(ce_rebuild_scan(s.h, 251 + pass, 0, 0, collect, lr));
		CHECK(lr->n == 0);
		uint8_t one[BS];
		t_fill(one, BS, 252 + pass);
		OK(ce_repl_write(s.h, e, 252 + pass, one, BS, (7 + pass) * BS));
		OK(ce_rebuild_scan(s.h, 251 + pass, 0, 0, collect, lr));
		CHECK(lr->n == 1 && lr->off[0] == (7 + pass) * BS && lr->len[0] == BS);
		free(lr);
		/* durable: the same answers after an export and import */
		ce_vol_close(s.h);
		OK(ce_pool_export(s.p));
		CHECK(t_debug_check(argv0, s.path, NULL) == 0);
		OK(ce_pool_import(&s.path, 1, NULL, &s.p));
		OK(ce_repl_open(s.p, "v", &s.h));
	}

	replica *all[] = { &s, &t, &n };
	for (int i = 0; i < 3; i++) {
		ce_vol_close(all[i]->h);
		OK(ce_pool_export(all[i]->p));
		CHECK(t_debug_check(argv0, all[i]->path, NULL) == 0);
	}
	free(missed), free(got), free(live), free(ls), free(lt), free(none), free(lf);
	printf("ok\n");
	return 0;
}
