/*
 * test_snap_written_load -- after an import, every snapshot's written
 * (bytes of its tree born after its prev_txg) is known from the records
 * (snap.c invariant 5: used - prev's used + dead list bytes) and equals a
 * walk of its tree, so the first destroy of a loaded snapshot derives its
 * successor's written instead of walking the successor's tree. Chains
 * with overwrites, trims, a clone, a promote, a rollback and destroys of
 * middle and oldest snapshots, checked after each re-import; the volume's
 * written (ce_vol_info) after destroys of loaded snapshots equals a walk.
 */
#include "dataset.h"
#include "pool_impl.h"
#include "snap.h"
#include "t.h"

#include <pthread.h>

#define VOLSIZE (4ull << 20)
#define BS 4096

static const char *path;
static ce_pool_opts o;

static void
put(ce_pool *p, const char *vol, uint64_t blk, size_t nblk, int seed)
{
	ce_vol *v;
	OK(ce_vol_open(p, vol, &v));
	uint8_t *buf = malloc(nblk * BS);
	t_fill(buf, nblk * BS, seed);
	OK(ce_vol_write(v, buf, nblk * BS, blk * BS));
	free(buf);
	ce_vol_close(v);
}

static void
trim(ce_pool *p, const char *vol, uint64_t blk, size_t nblk)
{
	ce_vol *v;
	OK(ce_vol_open(p, vol, &v));
	OK(ce_vol_trim(v, blk * BS, nblk * BS));
	ce_vol_close(v);
}

static void
snap(ce_pool *p, const char *name)
{
	int e = 0;
	OK(ce_snap_create(p, &name, 1, &e));
}

static ce_pool *
reimport(ce_pool *p)
{
	OK(ce_pool_export(p));
	OK(ce_pool_import(&path, 1, &o, &p));
	return p;
}

/* Every live snapshot's written is known and equals a walk; returns how many were checked. */
static int
check_all(ce_pool *p)
{
	int n = 0;
	for (size_t i = 0; i < ds_count(p); i++) {
		volume *v = ds_at(p, i);
		if (v->destroy_txg != 0)
			continue;
		uint64_t w = 0;
		OK(snap_written(p, v, &w));
		if (v->is_snap) {
			CHECK(v->written != WRITTEN_UNKNOWN);
			n++;
		}
		if (v->written != w)
			fprintf(stderr, "%s: written %llu, a walk says %llu\n", v->name,
			    (unsigned long long)v->written, (unsigned long long)w);
		CHECK(v->written == w);
	}
	return n;
}

/* The volume's written as reported equals a walk of its tree after its newest snapshot. */
static void
check_vol(ce_pool *p, const char *name)
{
	ce_vol_info vi;
	OK(ce_vol_info_get(p, name, &vi));
	pthread_mutex_lock(&p->lock);
	volume *v = vol_find(p, name);
	pthread_mutex_unlock(&p->lock);
	CHECK(v != NULL && !v->is_snap);
	uint64_t w = 0;
	OK(snap_written(p, v, &w));
	CHECK(vi.written == w);
}

/* Destroy snapshot name: left snapshots remain, each still exact, and vol's written is a walk's. */
static void
destroy(ce_pool *p, const char *name, int left, const char *vol)
{
	OK(ce_snap_destroy(p, name));
	CHECK(check_all(p) == left);
	check_vol(p, vol);
}

int
main(void)
{
	t_tmpdir();
	path = t_path("pool");
	o.vdev_size = 128ull << 20;
	ce_pool *p;
	OK(ce_pool_create("wl", &path, 1, &o, &p));
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.compress = CE_COMPRESS_OFF;
	OK(ce_vol_create(p, "a", VOLSIZE, &pr));

	/* a chain: each snapshot overwrites part of the last, adds, trims */
	put(p, "a", 0, 300, 1);
	snap(p, "a@s1");
	put(p, "a", 100, 50, 2);
	put(p, "a", 400, 20, 3);
	snap(p, "a@s2");
	trim(p, "a", 0, 40);
	put(p, "a", 120, 10, 4);
	snap(p, "a@s3");
	put(p, "a", 500, 200, 5);
	snap(p, "a@s4");
	put(p, "a", 130, 5, 6);
	p = reimport(p);
	CHECK(check_all(p) == 4);

	/* the first destroys after import: a middle snapshot and the oldest */
	destroy(p, "a@s2", 3, "a");
	destroy(p, "a@s1", 2, "a");
	p = reimport(p);
	CHECK(check_all(p) == 2);

	/* the newest snapshot destroyed first after import: the volume is its successor */
	destroy(p, "a@s4", 1, "a");

	/* a clone of s3 with snapshots of its own, promoted, then a rollback */
	OK(ce_vol_clone(p, "a@s3", "c"));
	put(p, "c", 10, 30, 7);
	snap(p, "c@x1");
	put(p, "c", 20, 5, 8);
	snap(p, "c@x2");
	put(p, "c", 700, 8, 9);
	snap(p, "a@s5");
	put(p, "a", 0, 3, 10);
	p = reimport(p);
	CHECK(check_all(p) == 4);
	OK(ce_vol_promote(p, "c"));
	p = reimport(p);
	CHECK(check_all(p) == 4);
	put(p, "c", 300, 16, 11);
	OK(ce_vol_rollback(p, "c@x2", 0));
	put(p, "c", 301, 2, 12);
	p = reimport(p);
	CHECK(check_all(p) == 4);
	destroy(p, "c@x1", 3, "c");
	destroy(p, "c@x2", 2, "c");
	check_vol(p, "a");
	OK(ce_pool_export(p));
	printf("ok\n");
	return 0;
}
