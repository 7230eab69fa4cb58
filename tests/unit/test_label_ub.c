/*
 * test_label_ub -- labels and the uberblock ring: one damaged label copy
 * is tolerated, import picks the newest valid uberblock, and a newest slot
 * damaged in every copy is refused unless the caller accepts going back to
 * the previous txg (which is whole) with CE_POOL_REWIND.
 */
#include "t.h"
#include "label.h"
#include "pool_impl.h"
#include "uberblock.h"

static void
zap(const char *path, uint64_t off, size_t len)
{
	FILE *f = fopen(path, "r+b");
	CHECK(f != NULL);
	uint8_t *junk = malloc(len);
	t_fill(junk, len, off);
	CHECK(fseek(f, (long)off, SEEK_SET) == 0 && fwrite(junk, 1, len, f) == len);
	fclose(f);
	free(junk);
}

int
main(void)
{
	t_tmpdir();
	const char *path = t_path("pool");
	ce_pool_opts o = { 0 };
	o.vdev_size = 32ull << 20;
	ce_pool *p;
	OK(ce_pool_create("lab", &path, 1, &o, &p));
	/* Several txgs, each recording the volume count in a volume name. */
	OK(ce_vol_create(p, "a", 1 << 20, NULL));
	OK(ce_vol_create(p, "b", 1 << 20, NULL));
	ce_pool_stat st;
	OK(ce_pool_stat_get(p, &st));
	uint64_t last = st.synced_txg;
	OK(ce_pool_export(p));

	/* label 0 destroyed: label 1 carries the pool */
	zap(path, 0, 4096);
	OK(ce_pool_import(&path, 1, &o, &p));
	OK(ce_pool_stat_get(p, &st));
	CHECK(st.synced_txg == last && st.nvols == 2);
	OK(ce_pool_export(p));
	/* ... and import rewrote the damaged copy */
	{
		ce_backend *be;
		label_phys got;
		int nvalid;
		OK(ce_backend_file_open(path, CE_BE_RDONLY | CE_BE_NOLOCK, &be));
		OK(label_read(be, path, &got, &nvalid));
		CHECK(nvalid == 2);
		be->close(be);
	}

	/*
	 * The newest uberblock slot damaged in both label regions: that txg
	 * committed, so import refuses to go back to the previous one in
	 * silence (issue 17 item 10); with CE_POOL_REWIND the previous txg,
	 * which is whole, is used.
	 */
	uint64_t slot = last % CE_UB_SLOTS;
	zap(path, CE_UB_RING_OFF + slot * CE_UB_SIZE + 100, 200);
	zap(path, (32ull << 20) - CE_LABEL_REGION + CE_UB_RING_OFF + slot * CE_UB_SIZE + 100, 200);
	CHECK_ERR(ce_pool_import(&path, 1, &o, &p), -EUCLEAN);
	ce_pool_opts rew = o;
	rew.flags |= CE_POOL_REWIND;
	OK(ce_pool_import(&path, 1, &rew, &p));
	OK(ce_pool_stat_get(p, &st));
	CHECK(st.synced_txg == last - 1);
	CHECK(st.nvols == 1); /* txg last-1 had only volume a */
	ce_vol_info vi;
	OK(ce_vol_info_get(p, "a", &vi));
	CHECK_ERR(ce_vol_info_get(p, "b", &vi), -ENOENT);
	/* and new commits continue from there */
	OK(ce_vol_create(p, "c", 1 << 20, NULL));
	OK(ce_pool_export(p));
	OK(ce_pool_import(&path, 1, &o, &p));
	OK(ce_vol_info_get(p, "c", &vi));
	OK(ce_pool_export(p));

	/* label seal/check round trip and field validation */
	label_phys lb;
	memset(&lb, 0, sizeof(lb));
	lb.lb_magic = LB_MAGIC;
	lb.lb_version = CE_FORMAT_VERSION;
	lb.lb_pool_guid = 1;
	lb.lb_vdev_guid = 2;
	lb.lb_asize = 32ull << 20;
	lb.lb_nvdevs = 1;
	lb.lb_vdev_guids[0] = 2;
	snprintf(lb.lb_pool_name, sizeof(lb.lb_pool_name), "x");
	label_seal(&lb);
	const char *why;
	OK(label_check(&lb, &why));
	lb.lb_version = 1; /* pools made before the intent log still import */
	label_seal(&lb);
	OK(label_check(&lb, &why));
	lb.lb_version = CE_FORMAT_VERSION + 1; /* from the future */
	label_seal(&lb);
	CHECK_ERR(label_check(&lb, &why), -ENOTSUP);
	lb.lb_version = 2;
	lb.lb_vdev_index = 1;
	label_seal(&lb);
	CHECK_ERR(label_check(&lb, &why), -EIO);
	printf("ok\n");
	return 0;
}
