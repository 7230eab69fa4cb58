/*
 * test_readahead_stat -- the read-ahead counters of ce_aread_stat move by
 * exactly what happened (cache.c invariant 4):
 *   1. two sequential reads on a cold volume send one window of
 *      ce_pool_opts.readahead_bytes: readahead_batches +1,
 *      readahead_bytes + the window, readahead_blocks + its blocks;
 *   2. another handle reading exactly that window finds every block read
 *      ahead: readahead_hits + its blocks, and the bytes are right; a
 *      second read of them counts nothing more (each block once);
 *   3. a window read ahead and then pushed out of the cache by other
 *      reads before anyone reads it: readahead_wasted + its blocks, hits
 *      unchanged.
 */
#include "t.h"

#define BS 4096u
#define VOLSIZE (16ull << 20)
#define WIN (256u << 10)
#define CACHE (4ull << 20)

static ce_aread_stat
stat_of(ce_pool *p)
{
	ce_aread_stat as;
	OK(ce_pool_aread_stat(p, &as));
	return as;
}

/*
 * Three reads of 8 KiB from off (> 0) on a new handle: the first starts a
 * stream, the third is its second sequential read and sends one window,
 * from where it ended: returned.
 */
static uint64_t
trigger(ce_pool *p, const char *vol, uint64_t off, const uint8_t *model)
{
	ce_vol *h;
	OK(ce_vol_open(p, vol, &h));
	uint8_t buf[2 * BS];
	for (int k = 0; k < 3; k++) {
		OK(ce_vol_read(h, buf, sizeof(buf), off + k * sizeof(buf)));
		CHECK(memcmp(buf, model + off + k * sizeof(buf), sizeof(buf)) == 0);
	}
	ce_vol_close(h); /* waits for the handle's read-ahead batch (vol.c read-ahead invariant c) */
	return off + 3 * sizeof(buf);
}

static void
read_check(ce_pool *p, const char *vol, uint64_t off, uint64_t len, const uint8_t *model)
{
	ce_vol *h;
	OK(ce_vol_open(p, vol, &h));
	uint8_t *buf = malloc(len);
	OK(ce_vol_read(h, buf, len, off)); /* one read: not sequential, so no read-ahead of its own */
	CHECK(memcmp(buf, model + off, len) == 0);
	free(buf);
	ce_vol_close(h);
}

int
main(void)
{
	t_tmpdir();
	const char *path = t_path("pool");
	ce_pool_opts o = { 0 };
	o.vdev_size = 128ull << 20;
	o.readahead_bytes = WIN;
	o.cache_bytes = CACHE;
	o.txg_timeout_ms = 600000;
	ce_pool *p;
	OK(ce_pool_create("ra", &path, 1, &o, &p));
	if (!stat_of(p).available) {
		printf("SKIP: no io_uring here (%s)\n", stat_of(p).why);
		OK(ce_pool_export(p));
		return 77;
	}
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.compress = CE_COMPRESS_OFF;
	OK(ce_vol_create(p, "v", VOLSIZE, &pr));
	uint8_t *model = malloc(VOLSIZE);
	t_fill(model, VOLSIZE, 3);
	ce_vol *h;
	OK(ce_vol_open(p, "v", &h));
	OK(ce_vol_write(h, model, VOLSIZE, 0));
	ce_vol_close(h);
	OK(ce_pool_export(p)); /* cold: the sync left written blocks in the cache */
	OK(ce_pool_import(&path, 1, &o, &p));

	/* 1: one window after the second sequential read, from the end of that read */
	ce_aread_stat a = stat_of(p);
	uint64_t w1 = trigger(p, "v", 4ull << 20, model);
	ce_aread_stat b = stat_of(p);
	printf("window sent: batches +%" PRIu64 ", bytes +%" PRIu64 ", blocks +%" PRIu64 "\n",
	    b.readahead_batches - a.readahead_batches, b.readahead_bytes - a.readahead_bytes,
	    b.readahead_blocks - a.readahead_blocks);
	CHECK(b.readahead_batches - a.readahead_batches == 1);
	CHECK(b.readahead_bytes - a.readahead_bytes == WIN);
	CHECK(b.readahead_blocks - a.readahead_blocks == WIN / BS);
	CHECK(b.readahead_failed == a.readahead_failed);
	CHECK(b.readahead_hits == a.readahead_hits && b.readahead_wasted == a.readahead_wasted);

	/* 2: exactly that window, read by another handle: every block a hit, once */
	read_check(p, "v", w1, WIN, model);
	ce_aread_stat c = stat_of(p);
	printf("window read: hits +%" PRIu64 ", wasted +%" PRIu64 "\n", c.readahead_hits - b.readahead_hits,
	    c.readahead_wasted - b.readahead_wasted);
	CHECK(c.readahead_hits - b.readahead_hits == WIN / BS);
	CHECK(c.readahead_wasted == b.readahead_wasted);
	CHECK(c.readahead_batches == b.readahead_batches);
	read_check(p, "v", w1, WIN, model);
	CHECK(stat_of(p).readahead_hits == c.readahead_hits);

	/* 3: a window pushed out unread: blocks read in small pieces elsewhere fill the cache past its budget */
	uint64_t w2 = trigger(p, "v", 8ull << 20, model);
	ce_aread_stat d = stat_of(p);
	CHECK(d.readahead_blocks - c.readahead_blocks == WIN / BS);
	OK(ce_vol_open(p, "v", &h));
	uint8_t piece[8 * BS]; /* 8 blocks: a read this small fills the cache (blkio.c invariant 5) */
	for (uint64_t i = 0; i < 256; i++) /* 8 MiB, twice the cache, in jumps wider than a window */
		OK(ce_vol_read(h, piece, sizeof(piece), (i * 37 % 256) * sizeof(piece)));
	ce_vol_close(h);
	ce_aread_stat e = stat_of(p);
	printf("window evicted unread: wasted +%" PRIu64 ", hits +%" PRIu64 "\n",
	    e.readahead_wasted - d.readahead_wasted, e.readahead_hits - d.readahead_hits);
	CHECK(e.readahead_wasted - d.readahead_wasted == WIN / BS);
	CHECK(e.readahead_hits == d.readahead_hits);
	read_check(p, "v", w2, WIN, model); /* read from disk again, right */
	CHECK(stat_of(p).readahead_hits == e.readahead_hits);

	free(model);
	OK(ce_pool_export(p));
	printf("ok\n");
	return 0;
}
