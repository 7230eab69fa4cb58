/*
 * test_ds_guid -- the dataset directory's guid index (dataset.c invariant
 * 1): every dataset is found by its guid without a scan (ds_by_guid, what
 * recobj_vol_at uses when a txg rewrites the snapshot policy or attribute
 * object) through creates, snapshots, clones, destroys, export and
 * import; a destroyed dataset leaves it once it is freed; and a pool
 * whose records give two datasets one guid (damage) is refused at import
 * with an error that says so, where the old directory loaded both.
 */
#include "dataset.h"
#include "mos.h"
#include "pool_impl.h"
#include "t.h"

#include <cask/errcodes.h>

static const char *path;
static ce_pool_opts o;

/* Every dataset of the directory is what its guid finds; returns how many there are. */
static size_t
check_index(ce_pool *p)
{
	pthread_mutex_lock(&p->lock);
	size_t n = ds_count(p);
	for (size_t i = 0; i < n; i++) {
		volume *v = ds_at(p, i);
		CHECK(ds_by_guid(p, v->guid) == v);
	}
	CHECK(p->dd.guids.count == n);
	pthread_mutex_unlock(&p->lock);
	return n;
}

static uint64_t
guid_of(ce_pool *p, const char *name)
{
	pthread_mutex_lock(&p->lock);
	volume *v = vol_find(p, name);
	CHECK(v != NULL);
	uint64_t g = v->guid;
	pthread_mutex_unlock(&p->lock);
	return g;
}

static int
found(ce_pool *p, uint64_t guid)
{
	pthread_mutex_lock(&p->lock);
	int f = ds_by_guid(p, guid) != NULL;
	pthread_mutex_unlock(&p->lock);
	return f;
}

int
main(void)
{
	t_tmpdir();
	path = t_path("pool");
	memset(&o, 0, sizeof(o));
	o.vdev_size = 64ull << 20;
	ce_pool *p;
	OK(ce_pool_create("tank", &path, 1, &o, &p));
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	OK(ce_vol_create(p, "a", 1 << 20, &pr));
	OK(ce_vol_create(p, "b", 1 << 20, &pr));
	const char *snaps[2] = { "a@s1", "a@s2" };
	int errs[2];
	OK(ce_snap_create(p, snaps, 2, errs));
	OK(ce_vol_clone(p, "a@s1", "c"));
	CHECK(check_index(p) == 5);
	uint64_t gs2 = guid_of(p, "a@s2"), gb = guid_of(p, "b");

	/* a destroyed dataset leaves the index when it leaves the directory */
	OK(ce_snap_destroy(p, "a@s2"));
	OK(ce_pool_sync(p));
	CHECK(!found(p, gs2));
	CHECK(check_index(p) == 4);

	/* the same after an import, which fills it from the records */
	OK(ce_pool_export(p));
	OK(ce_pool_import(&path, 1, &o, &p));
	CHECK(check_index(p) == 4);
	CHECK(found(p, gb) && !found(p, gs2));

	/* damage: b's record gets a's guid (written by the next commit; b itself is not dirty) */
	uint64_t ga = guid_of(p, "a");
	pthread_mutex_lock(&p->config_lock);
	pthread_mutex_lock(&p->lock);
	volume *b = vol_find(p, "b");
	ds_phys ds;
	mos_ds_get(p, b->slot, &ds);
	ds.ds_guid = ga;
	mos_ds_put(p, b->slot, &ds);
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_unlock(&p->config_lock);
	ce_vol *h;
	OK(ce_vol_open(p, "c", &h));
	uint8_t blk[4096];
	t_fill(blk, sizeof(blk), 3);
	OK(ce_vol_write(h, blk, sizeof(blk), 0));
	ce_vol_close(h);
	OK(ce_pool_sync(p));
	OK(ce_pool_export(p));
	ce_pool *q = NULL;
	int err = ce_pool_import(&path, 1, &o, &q);
	printf("import of a pool with two datasets of one guid: %d (%s)\n", err, ce_errmsg());
	CHECK(err == -EIO && q == NULL);
	CHECK(ce_errcode() == CE_E_IO_ERROR);
	CHECK(strstr(ce_errmsg(), "has the guid of a") != NULL);
	printf("ok\n");
	return 0;
}
