/*
 * test_rewind -- a damaged newest uberblock never rewinds a pool in
 * silence (issue 17 item 10: with both copies of the newest uberblock
 * damaged, import fell back one txg without a word and a volume read
 * committed data back as zeros; cask-debug check said "0 problems").
 *
 *   1. Import refuses (-EUCLEAN) and says which txg is damaged and how
 *      many committed txgs would be discarded.
 *   2. A read-only import shows the older txg and reports the newer one
 *      (ce_pool_stat.newer_damaged_txg); cask-debug check calls it a
 *      PROBLEM and exits 1.
 *   3. CE_POOL_REWIND (cask pool import --rewind) imports the older txg
 *      and reports exactly what it discarded; the damaged records are
 *      gone afterwards, so the next import is clean, and so is check.
 *   4. A slot damaged in one copy only (what an interrupted commit can
 *      leave) is not such evidence: import goes on as before.
 */
#include <fcntl.h>

#include "t.h"
#include "pool_impl.h"
#include "txg.h"
#include "uberblock.h"

static void
write_block(ce_pool *p, uint64_t blk, char c)
{
	ce_vol *v;
	OK(ce_vol_open(p, "v", &v));
	char buf[4096];
	memset(buf, c, sizeof(buf));
	OK(ce_vol_write(v, buf, sizeof(buf), blk * 4096));
	ce_vol_close(v);
	OK(ce_pool_sync(p));
}

static uint64_t
slot_off(uint64_t asize, int copy, uint64_t txg)
{
	return vdev_label_off(asize, copy) + CE_UB_RING_OFF + (txg % CE_UB_SLOTS) * CE_UB_SIZE;
}

int
main(int argc, char **argv)
{
	(void)argc;
	t_tmpdir();
	const char *path = t_path("pool.vdev");
	const char *paths[] = { path };
	ce_pool_opts o = { .vdev_size = 64ull << 20 };
	ce_pool *p;
	OK(ce_pool_create("tank", paths, 1, &o, &p));
	OK(ce_vol_create(p, "v", 8ull << 20, NULL));
	write_block(p, 0, 'A');
	write_block(p, 1, 'B');
	OK(ce_pool_export(p));

	ce_pool_opts ro = { .flags = CE_BE_RDONLY };
	OK(ce_pool_import(paths, 1, &ro, &p));
	uint64_t newest = txg_synced(p), asize = p->vds[0].asize;
	ce_pool_export(p);
	printf("newest txg %" PRIu64 "\n", newest);

	/* 4. one copy damaged: the other is used, nothing refused */
	t_flip(path, slot_off(asize, 1, newest) + 1000, 1, 0x01);
	OK(ce_pool_import(paths, 1, &ro, &p));
	CHECK(txg_synced(p) == newest);
	ce_pool_export(p);

	/* 1. both copies damaged: refused, with what would be lost */
	t_flip(path, slot_off(asize, 0, newest) + 1000, 1, 0x01);
	ce_pool_opts rw = { 0 };
	int err = ce_pool_import(paths, 1, &rw, &p);
	printf("import: %d %s\n", err, ce_errmsg());
	CHECK(err == -EUCLEAN);
	CHECK(ce_errcode() == CE_E_POOL_NEEDS_REWIND);
	char want[200];
	snprintf(want, sizeof(want), "the uberblock of txg %" PRIu64 " is damaged in every copy; importing "
	    "would go back to txg %" PRIu64 " and discard 1 committed txg", newest, newest - 1);
	CHECK(strstr(ce_errmsg(), want) != NULL);
	CHECK(strstr(ce_errmsg(), "--rewind") != NULL);

	/* 2. read-only: the older txg, and the newer one named */
	OK(ce_pool_import(paths, 1, &ro, &p));
	ce_pool_stat st;
	ce_pool_stat_get(p, &st);
	CHECK(st.synced_txg == newest - 1 && st.newer_damaged_txg == newest && st.rewound_txg == 0);
	ce_pool_export(p);
	snprintf(want, sizeof(want), "PROBLEM pool tank: txg %" PRIu64 " was committed, but its uberblock is "
	    "damaged in every copy", newest);
	CHECK(t_debug_check(argv[0], path, want) == 1);

	/* 3. --rewind: imported, and it says what went */
	ce_pool_opts rew = { .flags = CE_POOL_REWIND };
	OK(ce_pool_import(paths, 1, &rew, &p));
	ce_pool_stat_get(p, &st);
	CHECK(st.rewound_base_txg == newest - 1 && st.rewound_txg == newest && st.rewound_time_ns != 0);
	CHECK(st.newer_damaged_txg == 0);
	ce_vol *v;
	char buf[4096];
	OK(ce_vol_open(p, "v", &v));
	OK(ce_vol_read(v, buf, sizeof(buf), 0));
	CHECK(buf[0] == 'A' && buf[4095] == 'A');
	ce_vol_close(v);
	OK(ce_pool_export(p));
	OK(ce_pool_import(paths, 1, &rw, &p));
	ce_pool_stat_get(p, &st);
	CHECK(st.rewound_txg == 0 && st.newer_damaged_txg == 0);
	OK(ce_pool_export(p));
	CHECK(t_debug_check(argv[0], path, NULL) == 0);
	printf("ok\n");
	return 0;
}
