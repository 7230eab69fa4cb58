/*
 * test_corrupt -- flip bytes inside a data block and inside an indirect
 * block of a pool file: reads of the affected range return EIO, every
 * other range still reads back, the checksum error counter counts, and
 * `cask-debug check` exits 1 naming the damaged block.
 */
#include "blkio.h"
#include "dataset.h"
#include "pool_impl.h"
#include "t.h"
#include "vol.h"

#define VOLSIZE (8ull << 20)

/* Every 4K reads back, except blocks in [lo1,hi1) or [lo2,hi2), which fail with EIO. */
static void
verify_all(ce_vol *v, const uint8_t *model, uint64_t lo1, uint64_t hi1, uint64_t lo2, uint64_t hi2)
{
	uint8_t buf[4096];
	for (uint64_t off = 0; off < VOLSIZE; off += 4096) {
		int r = ce_vol_read(v, buf, 4096, off);
		if ((off >= lo1 && off < hi1) || (off >= lo2 && off < hi2)) {
			CHECK_ERR(r, -EIO);
		} else {
			OK(r);
			CHECK(memcmp(buf, model + off, 4096) == 0);
		}
	}
}

int
main(int argc, char **argv)
{
	(void)argc;
	t_tmpdir();
	const char *path = t_path("pool");
	ce_pool_opts o = { 0 };
	o.vdev_size = 64ull << 20;
	ce_pool *p;
	OK(ce_pool_create("dmg", &path, 1, &o, &p));
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.compress = CE_COMPRESS_OFF;
	OK(ce_vol_create(p, "v", VOLSIZE, &pr));
	ce_vol *v;
	OK(ce_vol_open(p, "v", &v));
	uint8_t *model = malloc(VOLSIZE);
	t_fill(model, VOLSIZE, 7);
	OK(ce_vol_write(v, model, VOLSIZE, 0));
	ce_vol_close(v);
	OK(ce_pool_export(p));
	CHECK(t_debug_check(argv[0], path, NULL) == 0);

	/* Find data block 100 and the level-1 indirect block covering blocks 256..511. */
	OK(ce_pool_import(&path, 1, &o, &p));
	volume *vol = ds_at(p, 0);
	bp_phys data_bp, l1_bp;
	OK(cowtree_lookup(p, &vol->tree, 100, &data_bp));
	{
		bp_phys root = vol->tree.root;
		CHECK(vol->tree.levels == 3);
		bp_phys l2[256];
		OK(blk_read(p, &root, l2, 0, sizeof(l2)));
		l1_bp = l2[1];
	}
	CHECK(!bp_is_hole(&data_bp) && !bp_is_hole(&l1_bp));
	OK(ce_pool_export(p));

	/* 1. A damaged data block. */
	t_flip(path, data_bp.bp_offset + 1000, 16, 0x5a);
	OK(ce_pool_import(&path, 1, &o, &p));
	OK(ce_vol_open(p, "v", &v));
	verify_all(v, model, 100 * 4096, 101 * 4096, 0, 0);
	ce_pool_stat st;
	OK(ce_pool_stat_get(p, &st));
	CHECK(st.cksum_errors >= 1);
	ce_vol_close(v);
	OK(ce_pool_export(p));
	CHECK(t_debug_check(argv[0], path, "dmg/v: L0 blk 100 at 0:0x") == 1);

	/* 2. A damaged indirect block: blocks 256..511 are unreachable. */
	t_flip(path, l1_bp.bp_offset + 8, 16, 0x5a);
	OK(ce_pool_import(&path, 1, &o, &p));
	OK(ce_vol_open(p, "v", &v));
	verify_all(v, model, 100 * 4096, 101 * 4096, 256 * 4096, 512 * 4096);
	/* A large read across the damage fails as a whole rather than returning holes. */
	uint8_t *big = malloc(1 << 20);
	CHECK_ERR(ce_vol_read(v, big, 1 << 20, 0), -EIO);
	free(big);
	ce_vol_close(v);
	OK(ce_pool_export(p));
	CHECK(t_debug_check(argv[0], path, "dmg/v: L1 blk 256 at 0:0x") == 1);
	printf("ok\n");
	free(model);
	return 0;
}
