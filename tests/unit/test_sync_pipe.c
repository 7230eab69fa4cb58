/*
 * test_sync_pipe -- the sync pipeline (pipe.c) changes who prepares a
 * txg's blocks, not where they land: the same writes synced with no
 * worker, one and four workers give the same block pointers (offset,
 * sizes, compression, checksum) for every block, over two txgs (the
 * second overwrites and trims part of the first, so its allocations
 * follow frees), and read back the same bytes. Blocks are a mix of
 * compressible, incompressible, all-zero (holes with compression on) and
 * never written. Then an injected write error in the middle of a large
 * pipelined sync suspends the pool without leaking or crashing, and clear
 * brings it back. The pool reports its sync time, bytes and thread count.
 */
#include "cowtree.h"
#include "pool_impl.h"
#include "t.h"
#include "util.h"
#include "vol.h"

#define BS 16384u
#define NBLK 3000u /* 47 batches of 64: more than the pipeline's look-ahead window */

static uint64_t rng;

static uint64_t
next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Block k of round r: its kind follows k, its bytes k and r. */
static void
fill(uint8_t *b, uint64_t k, int r)
{
	switch ((k * 7 + (uint64_t)r) % 5) {
	case 0: /* all zeros: a hole with compression on */
		memset(b, 0, BS);
		break;
	case 1: /* incompressible */
		rng = k * 2654435761u + (uint64_t)r + 1;
		for (size_t i = 0; i < BS; i += 8) {
			uint64_t x = next();
			memcpy(b + i, &x, 8);
		}
		break;
	default: /* compressible text of varying length */
		for (size_t i = 0; i < BS; i++)
			b[i] = (uint8_t)('a' + (i / (1 + k % 13) + (uint64_t)r) % 7);
		break;
	}
}

typedef struct run {
	bp_phys bps[2][NBLK];
	ce_pool_stat st;
} run;

static void
one_run(int threads, run *out)
{
	char name[32];
	snprintf(name, sizeof(name), "pool%d", threads + 1);
	const char *path = t_path(name);
	ce_pool_opts o = { 0 };
	o.vdev_size = 256ull << 20;
	o.sync_threads = threads;
	o.txg_timeout_ms = 600000; /* txgs end where the test syncs, in every run alike */
	ce_pool *p;
	OK(ce_pool_create("sp", &path, 1, &o, &p));
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.volblocksize = BS;
	OK(ce_vol_create(p, "v", (uint64_t)NBLK * BS, &pr));
	ce_vol *h;
	OK(ce_vol_open(p, "v", &h));
	uint8_t *b = xmalloc_aligned(BS), *r = xmalloc_aligned(BS);
	for (int round = 0; round < 2; round++) {
		for (uint64_t k = 0; k < NBLK; k++) {
			if (k % 11 == 3)
				continue; /* never written */
			if (round == 1 && k % 3 != 0)
				continue; /* the second round rewrites a third */
			fill(b, k, round);
			OK(ce_vol_write(h, b, BS, k * BS));
		}
		if (round == 1)
			OK(ce_vol_trim(h, 100 * BS, 200 * BS));
		OK(ce_pool_sync(p));
		OK(cowtree_lookup_range(p, &h->v->tree, 0, NBLK, out->bps[round]));
	}
	for (uint64_t k = 0; k < NBLK; k++) {
		OK(ce_vol_read(h, r, BS, k * BS));
		int r1 = k % 3 == 0;
		if (k % 11 == 3 || (k >= 100 && k < 300))
			memset(b, 0, BS);
		else
			fill(b, k, r1);
		CHECK(memcmp(r, b, BS) == 0);
	}
	OK(ce_pool_stat_get(p, &out->st));
	CHECK(out->st.last_sync_ns > 0);
	CHECK(out->st.last_sync_bytes > 0);
	CHECK(out->st.syncs >= 2);
	if (threads > 0)
		CHECK(out->st.sync_threads == (unsigned)threads);
	else
		CHECK(out->st.sync_threads == 0);

	/* a write error in the middle of a pipelined sync: suspended, nothing leaked */
	for (uint64_t k = 0; k < NBLK; k++) {
		fill(b, k, 2);
		OK(ce_vol_write(h, b, BS, k * BS));
	}
	ce_fault f = { CE_FAULT_WRITE, -1, 5, 1 };
	OK(ce_pool_fault_inject(p, &f));
	CHECK(ce_pool_sync(p) != 0);
	ce_pool_fault_clear(p);
	ce_vol_close(h);
	OK(ce_pool_clear(p));
	OK(ce_vol_open(p, "v", &h));
	OK(ce_vol_read(h, r, BS, 0)); /* the committed round-1 bytes, or round 2's after a replay */
	ce_vol_close(h);
	OK(ce_pool_export(p));
	free(b);
	free(r);
}

int
main(void)
{
	t_tmpdir();
	static run runs[3];
	int threads[3] = { CE_SYNC_THREADS_NONE, 1, 4 };
	for (int i = 0; i < 3; i++)
		one_run(threads[i], &runs[i]);
	for (int i = 1; i < 3; i++)
		for (int round = 0; round < 2; round++)
			for (uint64_t k = 0; k < NBLK; k++) {
				const bp_phys *a = &runs[0].bps[round][k], *c = &runs[i].bps[round][k];
				if (memcmp(a, c, sizeof(*a)) != 0) {
					fprintf(stderr, "threads %d, txg round %d, block %" PRIu64 ": offset %" PRIu64
					    " psize %u comp %u vs offset %" PRIu64 " psize %u comp %u\n", threads[i],
					    round, k, a->bp_offset, a->bp_psize, a->bp_comp, c->bp_offset, c->bp_psize,
					    c->bp_comp);
					CHECK(0);
				}
			}
	/* the mix is what the comparison is worth: every kind of block is there */
	int comp = 0, plain = 0, holes = 0;
	for (uint64_t k = 0; k < NBLK; k++) {
		const bp_phys *a = &runs[0].bps[1][k];
		if (bp_is_hole(a))
			holes++;
		else if (a->bp_comp != CE_COMP_OFF)
			comp++;
		else
			plain++;
	}
	CHECK(comp > 500 && plain > 300 && holes > 500);
	printf("ok\n");
	return 0;
}
