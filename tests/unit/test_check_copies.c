/*
 * test_check_copies -- `cask-debug check` reports every damaged copy of a
 * label and of the uberblock in use (issue 17 item 11: it said "0
 * problems" while `cask-debug labels` showed a label INVALID). The pool
 * is still consistent then, so check exits 3 ("damaged but consistent"),
 * not 0 (clean) and not 1 (problems); a damaged uberblock in another ring
 * slot is a note and leaves the exit status alone.
 */
#include <fcntl.h>

#include "t.h"
#include "pool_impl.h"
#include "txg.h"
#include "uberblock.h"

static const char *argv0;

int
main(int argc, char **argv)
{
	(void)argc;
	argv0 = argv[0];
	t_tmpdir();
	const char *path = t_path("pool.vdev");
	const char *paths[] = { path };
	ce_pool_opts o = { .vdev_size = 64ull << 20 };
	ce_pool *p;
	OK(ce_pool_create("tank", paths, 1, &o, &p));
	OK(ce_vol_create(p, "v", 8ull << 20, NULL));
	for (int i = 0; i < 5; i++) {   /* a few txgs, so several ring slots are in use */
		ce_vol *v;
		OK(ce_vol_open(p, "v", &v));
		char buf[4096];
		memset(buf, 'a' + i, sizeof(buf));
		OK(ce_vol_write(v, buf, sizeof(buf), (uint64_t)i * 4096));
		ce_vol_close(v);
		OK(ce_pool_sync(p));
	}
	OK(ce_pool_export(p));

	/* where things are: the txg import uses, and the label regions */
	ce_pool_opts ro = { .flags = CE_BE_RDONLY };
	OK(ce_pool_import(paths, 1, &ro, &p));
	uint64_t txg = txg_synced(p), asize = p->vds[0].asize;
	ce_pool_export(p);
	uint64_t label1 = vdev_label_off(asize, 1);
	unsigned slot = (unsigned)(txg % CE_UB_SLOTS);
	uint64_t ub0 = vdev_label_off(asize, 0) + CE_UB_RING_OFF + (uint64_t)slot * CE_UB_SIZE;
	uint64_t ub1 = label1 + CE_UB_RING_OFF + (uint64_t)slot * CE_UB_SIZE;
	unsigned older = (unsigned)((txg - 1) % CE_UB_SLOTS);
	uint64_t old0 = vdev_label_off(asize, 0) + CE_UB_RING_OFF + (uint64_t)older * CE_UB_SIZE;

	CHECK(t_debug_check(argv0, path, NULL) == 0);

	/* the second label copy */
	t_flip(path, label1 + 100, 1, 0x5a);
	CHECK(t_debug_check(argv0, path, "WARNING vdev 0 .*: label 1 at .* is damaged") == 3);
	t_flip(path, label1 + 100, 1, 0x5a);
	CHECK(t_debug_check(argv0, path, NULL) == 0);

	/* one copy of the uberblock in use, then the other (import uses the intact one) */
	t_flip(path, ub1 + 40, 1, 0x5a);
	CHECK(t_debug_check(argv0, path, "label region 1 slot .*uberblock in use (txg .*) is damaged") == 3);
	t_flip(path, ub1 + 40, 1, 0x5a);
	t_flip(path, ub0 + 40, 1, 0x5a);
	CHECK(t_debug_check(argv0, path, "label region 0 slot .*uberblock in use") == 3);
	t_flip(path, ub0 + 40, 1, 0x5a);

	/* an older slot: a note, still exit 0 */
	t_flip(path, old0 + 40, 1, 0x5a);
	CHECK(t_debug_check(argv0, path, "note vdev 0 .*: label region 0 slot .* holds a damaged uberblock") == 0);
	t_flip(path, old0 + 40, 1, 0x5a);

	CHECK(t_debug_check(argv0, path, NULL) == 0);

	/* a pool made with -f over random bytes: no note on ring slots never written since */
	const char *rnd = t_path("random.vdev");
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "head -c 67108864 /dev/urandom > '%s'", rnd);
	CHECK(system(cmd) == 0);
	ce_pool_opts fo = { .flags = CE_POOL_FORCE };
	OK(ce_pool_create("rnd", &rnd, 1, &fo, &p));
	OK(ce_pool_export(p));
	CHECK(t_debug_check(argv0, rnd, NULL) == 0);
	snprintf(cmd, sizeof(cmd), "grep -q note '%s/check.out'", t_dir);
	CHECK(system(cmd) != 0);
	printf("ok\n");
	return 0;
}
