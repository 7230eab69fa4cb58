/*
 * test_wq -- the sync's write queue (blkio.c): a block queued in the txg
 * being synced reads back from the queue before it reaches the disk, and
 * when a block freed in that txg has its sectors given out again (the
 * allocator's rotor wrapped), overlapping queued writes leave only the
 * newest bytes on disk, whatever their order by offset. Before the queue
 * dropped overlapped writes, E below was written over F's second half.
 */
#include <fcntl.h>

#include "alloc.h"
#include "blkio.h"
#include "pool_impl.h"
#include "txg.h"
#include "t.h"

static void
fill(uint8_t *b, size_t n, int c)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(c + i % 251);
}

int
main(void)
{
	t_tmpdir();
	const char *path = t_path("pool");
	ce_pool_opts o = { 0 };
	o.vdev_size = 64ull << 20;
	ce_pool *p;
	OK(ce_pool_create("wq", &path, 1, &o, &p));
	/* the sync thread only syncs dirty txgs: with no volume written it stays idle */
	uint64_t t = txg_open(p) + 100;
	blk_sync_begin(p, t);

	static uint8_t a[16384], b[4096], c[8192], d[4096], r[16384];
	fill(a, sizeof(a), 1);
	fill(b, sizeof(b), 2);
	fill(c, sizeof(c), 3);
	fill(d, sizeof(d), 4);
	bp_phys ba, bb, bc, bd;
	OK(blk_write(p, a, sizeof(a), CE_COMP_OFF, CE_CK_XXH128, BP_DATA, 0, t, NULL, 0, &ba));
	/* not on disk yet: this thread reads it from the queue */
	OK(blk_read(p, &ba, r, 0, sizeof(a)));
	CHECK(memcmp(r, a, sizeof(a)) == 0);

	/*
	 * Free A in its own txg (its sectors are reusable at once) and send the
	 * allocator's rotor back over them: E (8K) lands in A's second half and
	 * is freed too, then F (16K) takes A's place. On disk F must be whole:
	 * E's older bytes sort after F's start and must not be written over it.
	 */
	blk_free(p, &ba, t);
	alloc_vdev *av = &p->alloc.v[ba.bp_vdev];
	uint64_t x = (ba.bp_offset - VDEV_DATA_START) / CE_SECTOR;
	av->rotor = x + 2;
	OK(blk_write(p, c, sizeof(c), CE_COMP_OFF, CE_CK_XXH128, BP_DATA, 0, t, NULL, 0, &bc));
	CHECK(bc.bp_offset == ba.bp_offset + 2 * CE_SECTOR);
	blk_free(p, &bc, t);
	av->rotor = x;
	static uint8_t f[16384];
	fill(f, sizeof(f), 5);
	bp_phys bf;
	OK(blk_write(p, f, sizeof(f), CE_COMP_OFF, CE_CK_XXH128, BP_DATA, 0, t, NULL, 0, &bf));
	CHECK(bf.bp_offset == ba.bp_offset);
	/* and B (4K) right after F, D (4K) after that: unrelated neighbours stay intact */
	OK(blk_write(p, b, sizeof(b), CE_COMP_OFF, CE_CK_XXH128, BP_DATA, 0, t, NULL, 0, &bb));
	OK(blk_write(p, d, sizeof(d), CE_COMP_OFF, CE_CK_XXH128, BP_DATA, 0, t, NULL, 0, &bd));
	CHECK(bb.bp_offset == bf.bp_offset + sizeof(f) && bd.bp_offset == bb.bp_offset + sizeof(b));
	OK(blk_read(p, &bf, r, 0, sizeof(f)));                /* the queue's newest bytes */
	CHECK(memcmp(r, f, sizeof(f)) == 0);
	OK(wq_flush(p));

	/* on the disk itself (reads through the pool could come from the cache): the newest bytes */
	int fd = open(path, O_RDONLY);
	CHECK(fd >= 0);
	CHECK(pread(fd, r, sizeof(f), (off_t)bf.bp_offset) == (ssize_t)sizeof(f));
	CHECK(memcmp(r, f, sizeof(f)) == 0);                   /* E's bytes did not land on F */
	CHECK(pread(fd, r, sizeof(b), (off_t)bb.bp_offset) == (ssize_t)sizeof(b));
	CHECK(memcmp(r, b, sizeof(b)) == 0);
	CHECK(pread(fd, r, sizeof(d), (off_t)bd.bp_offset) == (ssize_t)sizeof(d));
	CHECK(memcmp(r, d, sizeof(d)) == 0);
	close(fd);
	OK(blk_read(p, &bf, r, 0, sizeof(f)));
	CHECK(memcmp(r, f, sizeof(f)) == 0);

	blk_free(p, &bf, t);
	blk_free(p, &bb, t);
	blk_free(p, &bd, t);
	blk_sync_end(); /* frees too are the syncing thread's (blkio.c invariant 3) */
	OK(ce_pool_export(p));
	printf("ok\n");
	return 0;
}
