/*
 * cask-debug -- inspect and verify pool files offline (zdb for cask).
 *
 *   cask-debug labels FILE...       both labels of every vdev
 *   cask-debug uberblocks FILE...   every valid uberblock, newest marked
 *   cask-debug tree [-v VOL] FILE...  volumes and every block pointer
 *   cask-debug check FILE...        verify every block and the space maps
 *
 * It links libcask-engine and imports the pool read-only, so it reads the
 * pool exactly as the daemon would. `check` walks every tree from the
 * newest uberblock, verifies every checksum (data included), and checks
 * that the allocation bitmap equals the set of referenced sectors, that
 * no sector is referenced twice, and that each volume's used/logical
 * counters equal what its tree owns. It also reads every copy of the
 * labels and of the uberblock it imported: a damaged copy is a WARNING
 * (the pool is consistent, but redundancy is reduced), and a damaged
 * uberblock in another ring slot is a note (a commit cut short by a crash
 * leaves one; it is older or uncommitted history, not the pool's state).
 * Exit status: 0 clean, 1 problems found, 2 usage or the pool could not
 * be opened, 3 consistent but with damaged copies (redundancy reduced).
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blkio.h"
#include "dataset.h"
#include "label.h"
#include "mos.h"
#include "pool_impl.h"
#include "repl.h"
#include "txg.h"
#include "uberblock.h"
#include "util.h"
#include "vol.h"

static const char *type_names[] = { "hole", "data", "indirect", "mos", "bitmap", "deadlist", "holds" };

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: cask-debug COMMAND FILE...\n"
	    "\n"
	    "Inspect cask pool files offline; the pool is opened read-only.\n"
	    "\n"
	    "commands:\n"
	    "  labels FILE...            print both labels of each vdev and whether they are valid\n"
	    "  uberblocks FILE...        print every valid uberblock; '*' marks the one import uses\n"
	    "  tree [-v VOL] FILE...     print each volume's block pointers (or only VOL's)\n"
	    "  check FILE...             verify every checksum and the space accounting;\n"
	    "                            exit 1 and name each bad block if anything is wrong,\n"
	    "                            exit 3 if all is consistent but a copy of a label or\n"
	    "                            of the uberblock in use is damaged (redundancy reduced)\n"
	    "  log FILE...               print the intent log chain the newest uberblock names:\n"
	    "                            each block and record, and which records import would\n"
	    "                            replay (this read-only view does not apply them)\n"
	    "\n"
	    "Give every vdev of the pool, in any order.\n");
}

static void
print_bp(const char *indent, const bp_phys *bp, uint64_t blkid)
{
	printf("%sL%u blk %-10" PRIu64 " %s %u:0x%" PRIx64 " psize %u lsize %u comp %u cksum %u birth %" PRIu64 "\n",
	    indent, bp->bp_level, blkid, bp->bp_type < 7 ? type_names[bp->bp_type] : "?", bp->bp_vdev,
	    bp->bp_offset, bp->bp_psize, bp->bp_lsize, bp->bp_comp, bp->bp_cksum_type, bp->bp_birth);
}

static int
cmd_labels(int argc, char **argv)
{
	int bad = 0;
	for (int i = 0; i < argc; i++) {
		ce_backend *be;
		if (ce_backend_file_open(argv[i], CE_BE_RDONLY | CE_BE_NOLOCK, &be) != 0) {
			fprintf(stderr, "cask-debug: %s\n", ce_errmsg());
			bad = 1;
			continue;
		}
		printf("%s: %" PRIu64 " bytes\n", argv[i], be->size);
		label_phys *lb = xmalloc_aligned(CE_LABEL_SIZE);
		uint64_t asize = vdev_asize_of(be->size);
		for (int copy = 0; copy < 2; copy++) {
			const char *why = "unreadable";
			uint64_t off = copy == 0 ? 0 : (asize >= CE_LABEL_REGION ? asize - CE_LABEL_REGION : 0);
			int ok = be->size >= off + CE_LABEL_SIZE && be->pread(be, lb, CE_LABEL_SIZE, off) == 0 &&
			    label_check(lb, &why) == 0;
			if (!ok) {
				printf("  label %d @%" PRIu64 ": INVALID (%s)\n", copy, off, why);
				bad = 1;
				continue;
			}
			printf("  label %d @%" PRIu64 ": valid\n", copy, off);
			printf("    pool '%s' guid %016" PRIx64 " version %u\n", lb->lb_pool_name,
			    lb->lb_pool_guid, lb->lb_version);
			printf("    vdev %u of %u guid %016" PRIx64 " asize %" PRIu64 " created txg %" PRIu64 "\n",
			    lb->lb_vdev_index, lb->lb_nvdevs, lb->lb_vdev_guid, lb->lb_asize, lb->lb_create_txg);
		}
		free(lb);
		be->close(be);
	}
	return bad;
}

static int
open_pool(int argc, char **argv, ce_pool **p)
{
	ce_pool_opts o;
	memset(&o, 0, sizeof(o));
	o.flags = CE_BE_RDONLY;
	o.cache_bytes = 64ull << 20;
	int err = ce_pool_import((const char *const *)argv, (unsigned)argc, &o, p);
	if (err != 0)
		fprintf(stderr, "cask-debug: cannot open pool: %s\n", ce_errmsg());
	return err;
}

static int
cmd_uberblocks(int argc, char **argv)
{
	ce_pool *p;
	if (open_pool(argc, argv, &p) != 0)
		return 2;
	for (unsigned v = 0; v < p->nvdevs; v++) {
		printf("vdev %u (%s):\n", v, p->vds[v].path);
		for (int copy = 0; copy < 2; copy++) {
			for (unsigned s = 0; s < CE_UB_SLOTS; s++) {
				uberblock_phys ub;
				if (uberblock_read_slot(&p->vds[v], copy, s, p->guid, &ub) != 1)
					continue;
				printf("  %c label %d slot %2u txg %-8" PRIu64 " time %" PRIu64 ".%09" PRIu64
				    " mos %u:0x%" PRIx64 " levels %u\n", ub.ub_txg == txg_synced(p) ? '*' : ' ',
				    copy, s, ub.ub_txg, (uint64_t)(ub.ub_timestamp / 1000000000ull),
				    (uint64_t)(ub.ub_timestamp % 1000000000ull), ub.ub_mos.bp_vdev, ub.ub_mos.bp_offset,
				    ub.ub_mos_levels);
			}
		}
	}
	ce_pool_export(p);
	return 0;
}

static int
print_visit(void *arg, const bp_phys *bp, int level, uint64_t first, int err)
{
	(void)arg;
	static const char *ind[] = { "      ", "     ", "    ", "   ", "  ", " ", "", "" };
	print_bp(ind[level < 8 ? level : 7], bp, first);
	if (err != 0)
		printf("      ^ cannot read: %s\n", strerror(-err));
	return 0;
}

static int
cmd_tree(int argc, char **argv)
{
	const char *only = NULL;
	int c;
	optind = 1;
	while ((c = getopt(argc, argv, "v:")) != -1) {
		if (c == 'v')
			only = optarg;
		else
			return 2;
	}
	argc -= optind;
	argv += optind;
	if (argc < 1) {
		usage(stderr);
		return 2;
	}
	ce_pool *p;
	if (open_pool(argc, argv, &p) != 0)
		return 2;
	printf("pool %s guid %016" PRIx64 " txg %" PRIu64 "\n", p->name, p->guid, txg_synced(p));
	printf("MOS: %" PRIu64 " bytes, %u levels, format version %u\n", mos_bytes(p), mos_tree(p)->levels,
	    mos_hdr(p)->mh_version);
	for (size_t i = 0; i < ds_count(p); i++) {
		volume *v = ds_at(p, i);
		if (only && strcmp(only, v->name) != 0)
			continue;
		printf("volume %s/%s guid %016" PRIx64 " size %" PRIu64 " volblocksize %u levels %u used %"
		    PRId64 " logical %" PRId64 " compress %s checksum %s\n", p->name, v->name, v->guid,
		    v->size, v->bs, v->tree.levels, v->used, v->logical, ce_compress_name(v->compress),
		    ce_checksum_name(v->checksum));
		cowtree_walk(p, &v->tree, print_visit, NULL);
	}
	ce_pool_export(p);
	return 0;
}

/* ---- check ---- */

typedef struct check_ctx {
	ce_pool *p;
	uint64_t **refd;     /* per vdev: referenced-sector bitmap */
	const char *what;    /* "tank/vol", "MOS", "bitmap of vdev 0" */
	uint64_t problems;
	uint64_t blocks;
	int64_t used, logical;
	uint8_t *scratch;
	int count_only;      /* accounting walk: no marking, no reads */
} check_ctx;

static void
problem(check_ctx *c, const bp_phys *bp, uint64_t blkid, const char *fmt, ...)
{
	va_list ap;
	c->problems++;
	printf("PROBLEM %s: L%u blk %" PRIu64 " at %u:0x%" PRIx64 ": ", c->what, bp->bp_level, blkid,
	    bp->bp_vdev, bp->bp_offset);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static int
check_visit(void *arg, const bp_phys *bp, int level, uint64_t first, int err)
{
	check_ctx *c = arg;
	ce_pool *p = c->p;
	if (c->count_only) {
		c->used += (int64_t)bp_asize(bp);
		if (bp->bp_type == BP_DATA)
			c->logical += bp->bp_lsize;
		return 0;
	}
	c->blocks++;
	if (bp->bp_level != level)
		problem(c, bp, first, "pointer says level %u, found at level %d", bp->bp_level, level);
	if (bp->bp_vdev >= p->nvdevs) {
		problem(c, bp, first, "no such vdev");
		return 0;
	}
	uint64_t s0 = (bp->bp_offset - VDEV_DATA_START) / CE_SECTOR, n = bp_asize(bp) / CE_SECTOR;
	if (bp->bp_offset < VDEV_DATA_START || s0 + n > p->vds[bp->bp_vdev].nsectors) {
		problem(c, bp, first, "address outside the data area");
		return 0;
	}
	for (uint64_t s = s0; s < s0 + n; s++) {
		uint64_t *w = &c->refd[bp->bp_vdev][s >> 6];
		if (*w & (1ull << (s & 63)))
			problem(c, bp, first, "sector %" PRIu64 " is referenced twice", s);
		*w |= 1ull << (s & 63);
		if (!alloc_test(&p->alloc, bp->bp_vdev, s))
			problem(c, bp, first, "sector %" PRIu64 " is referenced but free in the bitmap", s);
	}
	c->used += (int64_t)bp_asize(bp);
	if (bp->bp_type == BP_DATA)
		c->logical += bp->bp_lsize;
	if (err != 0) {
		problem(c, bp, first, "indirect block unreadable: %s",
		    err == -EIO ? "checksum mismatch or IO error" : strerror(-err));
	} else if (level == 0) {
		int e = blk_read(p, bp, c->scratch, 0, bp->bp_lsize);
		if (e != 0)
			problem(c, bp, first, "%s block unreadable: %s",
			    bp->bp_type < 7 ? type_names[bp->bp_type] : "?",
			    e == -EIO ? "checksum mismatch or IO error" : strerror(-e));
	}
	return 0;
}

/*
 * Every copy of each vdev's labels and of the uberblock import chose
 * (txg synced_txg, in slot txg % CE_UB_SLOTS of both label regions of
 * every vdev). Returns the damaged copies; prints a note for each other
 * slot that holds a damaged uberblock.
 */
static uint64_t
check_copies(ce_pool *p)
{
	uint64_t damaged = 0, notes = 0;
	label_phys *lb = xmalloc_aligned(CE_LABEL_SIZE);
	unsigned inuse = (unsigned)(txg_synced(p) % CE_UB_SLOTS);
	for (unsigned v = 0; v < p->nvdevs; v++) {
		vdev *vd = &p->vds[v];
		for (int copy = 0; copy < 2; copy++) {
			const char *why = "unreadable";
			uint64_t off = vdev_label_off(vd->asize, copy);
			if (vdev_read(vd, lb, CE_LABEL_SIZE, off) != 0 || label_check(lb, &why) != 0) {
				printf("WARNING vdev %u (%s): label %d at %" PRIu64 " is damaged (%s); "
				    "the other copy still holds: redundancy is reduced\n", v, vd->path, copy, off, why);
				damaged++;
			}
			for (unsigned s = 0; s < CE_UB_SLOTS; s++) {
				uberblock_phys ub;
				int r = uberblock_read_slot(vd, copy, s, p->guid, &ub), ok = r == 1;
				if (r < 0) {
					printf("WARNING vdev %u (%s): label region %d slot %u cannot be read: %s\n", v,
					    vd->path, copy, s, strerror(-r));
					damaged++;
					continue;
				}
				if (ok && (s != inuse || ub.ub_txg == txg_synced(p)))
					continue;
				int ours = !ok && uberblock_damaged_ours(&ub, p->guid);
				if (s == inuse && ours) {
					printf("WARNING vdev %u (%s): label region %d slot %u: the copy of the "
					    "uberblock in use (txg %" PRIu64 ") is damaged: redundancy is reduced\n", v,
					    vd->path, copy, s, txg_synced(p));
					damaged++;
					continue;
				}
				if (s == inuse) {
					/* a commit cut short between its copies; the next txg writes both again */
					printf("note vdev %u (%s): label region %d slot %u does not hold the uberblock "
					    "in use (txg %" PRIu64 "): its commit was cut short before this copy was "
					    "written\n", v, vd->path, copy, s, txg_synced(p));
				} else if (ours) {
					printf("note vdev %u (%s): label region %d slot %u holds a damaged uberblock "
					    "(a commit cut short by a crash, or damage to older history)\n", v, vd->path,
					    copy, s);
				} else {
					continue; /* never written, or what the file held before the pool */
				}
				notes++;
			}
		}
	}
	free(lb);
	if (damaged > 0 || notes > 0)
		printf("%" PRIu64 " damaged copies of labels or of the uberblock in use; %" PRIu64
		    " notes on other uberblock slots\n", damaged, notes);
	return damaged;
}

static void
repl_report(void *arg, const char *msg)
{
	printf("PROBLEM %s\n", msg);
}

static int
cmd_check(int argc, char **argv)
{
	ce_pool *p;
	char what[400];
	if (open_pool(argc, argv, &p) != 0)
		return 2;
	check_ctx c;
	memset(&c, 0, sizeof(c));
	c.p = p;
	c.scratch = xmalloc(CE_VOLBLOCKSIZE_MAX);
	c.refd = xcalloc(p->nvdevs, sizeof(uint64_t *));
	for (unsigned v = 0; v < p->nvdevs; v++)
		c.refd[v] = xcalloc(p->alloc.v[v].nwords, 8);

	c.what = "MOS";
	cowtree_walk(p, mos_tree(p), check_visit, &c);
	for (unsigned v = 0; v < p->nvdevs; v++) {
		snprintf(what, sizeof(what), "bitmap of vdev %u", v);
		c.what = what;
		cowtree_walk(p, mos_sm_tree(p, v), check_visit, &c);
	}
	/* Every partial receive has its slot in the receive table (import checked the converse). */
	for (size_t i = 0; i < ds_count(p); i++)
		if (!ds_at(p, i)->is_snap && ds_at(p, i)->receiving && ds_at(p, i)->rs.rs_to_guid == 0) {
			c.problems++;
			printf("PROBLEM %s/%s: marked a partial receive, but the receive table has no slot for it\n",
			    p->name, ds_at(p, i)->name);
		}
	/* The replica object (format 6): its blocks, and every record (invariant 8). */
	if (p->rp_disk_leaves > 0) {
		c.what = "replica object";
		cowtree_walk(p, &p->rp_tree, check_visit, &c);
	}
	c.problems += repl_check(p, repl_report, NULL);
	/* The holds object: its blocks, and every record names a snapshot, each tag once. */
	mos_header_phys *mh0 = mos_hdr(p);
	if (mh0->mh_version >= 4 && !bp_is_hole(&mh0->mh_holds_root)) {
		cowtree ht;
		tree_init(&ht, BP_HOLDS, 1);
		ht.levels = mh0->mh_holds_levels;
		ht.root = mh0->mh_holds_root;
		c.what = "holds object";
		cowtree_walk(p, &ht, check_visit, &c);
		uint64_t n = mh0->mh_holds_count, nl = (n + 127) / 128;
		hold_phys *hb = xcalloc(nl ? nl : 1, CE_META_BLOCK);
		if (n > 0 && mos_read_object(p, &ht, (uint8_t *)hb, nl) != 0) {
			c.problems++;
			printf("PROBLEM holds object: unreadable\n");
			n = 0;
		}
		for (uint64_t i = 0; i < n; i++) {
			volume *s = NULL;
			for (size_t k = 0; k < ds_count(p) && s == NULL; k++)
				if (ds_at(p, k)->is_snap && ds_at(p, k)->guid == hb[i].hd_snap_guid)
					s = ds_at(p, k);
			int dup = 0;
			for (uint64_t k = 0; k < i; k++)
				dup |= hb[k].hd_snap_guid == hb[i].hd_snap_guid &&
				    strncmp(hb[k].hd_tag, hb[i].hd_tag, sizeof(hb[i].hd_tag)) == 0;
			if (s == NULL || dup || hb[i].hd_tag[0] == '\0') {
				c.problems++;
				printf("PROBLEM hold %" PRIu64 " ('%.63s' on snapshot %016" PRIx64 "): %s\n", i,
				    hb[i].hd_tag, hb[i].hd_snap_guid, s == NULL ? "no such snapshot" :
				    dup ? "the same tag twice" : "empty tag");
			}
		}
		free(hb);
	}
	/* The snapshot policy object (format FMT_V_SCHED): its blocks; the engine validated the records at import. */
	const mos_sched_phys *ms0 = (const mos_sched_phys *)mos_ptr(p, CE_MOS_SCHED_OFF);
	if (mh0->mh_version >= FMT_V_SCHED && !bp_is_hole(&ms0->ms_root)) {
		cowtree st;
		tree_init(&st, BP_SCHED, 1);
		st.levels = ms0->ms_levels;
		st.root = ms0->ms_root;
		c.what = "snapshot policy object";
		cowtree_walk(p, &st, check_visit, &c);
	} else if (mh0->mh_version < FMT_V_SCHED) {
		static const uint8_t zero[sizeof(mos_sched_phys)];
		if (memcmp(ms0, zero, sizeof(zero)) != 0) {
			c.problems++;
			printf("PROBLEM MOS header block: a snapshot policy root in a version %u pool\n", mh0->mh_version);
		}
	}
	/*
	 * Each volume's chain oldest first: a dataset's walk skips what was
	 * born at or before its prev_txg (an older dataset counted it), so a
	 * sector shared by snapshots is owned once. Accounting is a second,
	 * unpruned walk that only adds up.
	 */
	uint64_t nvols = 0;
	htab dead;
	htab_init(&dead);
	for (size_t i = 0; i < ds_count(p); i++) {
		volume *h = ds_at(p, i);
		if (h->is_snap)
			continue;
		volume *chain[4096];
		size_t nc = 0;
		for (volume *s = h; s != NULL && nc < 4096; s = s->prev) {
			/* a clone's origin is walked with its own volume */
			if (s != h && (!s->is_snap || s->head != h))
				break;
			chain[nc++] = s;
		}
		for (size_t k = nc; k-- > 0;) {
			volume *v = chain[k];
			snprintf(what, sizeof(what), "%s/%s", p->name, v->name);
			c.what = what;
			c.used = c.logical = 0;
			cowtree_walk_after(p, &v->tree, v->prev ? v->prev_txg : 0, check_visit, &c);
			c.count_only = 1;
			c.used = c.logical = 0;
			cowtree_walk(p, &v->tree, check_visit, &c);
			c.count_only = 0;
			if (c.used != v->used || c.logical != v->logical) {
				c.problems++;
				printf("PROBLEM %s: accounting says used %" PRId64 " logical %" PRId64
				    ", the tree holds used %" PRId64 " logical %" PRId64 "\n", what, v->used,
				    v->logical, c.used, c.logical);
			}
			snprintf(what, sizeof(what), "dead list of %s/%s", p->name, v->name);
			cowtree_walk(p, &v->dl.tree, check_visit, &c);
			nvols++;
		}
	}
	/*
	 * Dead lists, once every chain is walked (a clone's entries are its
	 * origin's blocks). A block is on at most one dead list per chain (a
	 * volume and a clone may both have dropped a block their origin holds).
	 */
	for (size_t hi = 0; hi < ds_count(p); hi++) {
	volume *h = ds_at(p, hi);
	if (h->is_snap)
		continue;
	htab_clear(&dead);
	for (size_t i = 0; i < ds_count(p); i++) {
		volume *v = ds_at(p, i);
		if ((v->is_snap ? v->head : v) != h)
			continue;
		snprintf(what, sizeof(what), "%s/%s", p->name, v->name);
		c.what = what;
		/* its dead list: blocks an older dataset owns, each once; its object is metadata */
		uint64_t bytes = 0;
		for (uint64_t e = 0; e < v->dl.n; e++) {
			const bp_phys *bp = &v->dl.e[e];
			uint64_t s0 = (bp->bp_offset - VDEV_DATA_START) / CE_SECTOR;
			uint64_t key = (s0 << 8) | bp->bp_vdev;
			bytes += bp_asize(bp);
			if (bp->bp_vdev >= p->nvdevs || bp->bp_offset < VDEV_DATA_START ||
			    s0 + bp_asize(bp) / CE_SECTOR > p->vds[bp->bp_vdev].nsectors) {
				problem(&c, bp, e, "dead list entry outside the data area");
				continue;
			}
			if (htab_get(&dead, key) != NULL)
				problem(&c, bp, e, "on a dead list twice");
			htab_put(&dead, key, (void *)1);
			if (v->prev == NULL || bp->bp_birth > v->prev_txg)
				problem(&c, bp, e, "on the dead list but born after the older dataset");
			for (uint64_t sct = s0; sct < s0 + bp_asize(bp) / CE_SECTOR; sct++)
				if (!(c.refd[bp->bp_vdev][sct >> 6] & (1ull << (sct & 63))))
				problem(&c, bp, e, "dead list entry: sector %" PRIu64 " is owned by no "
				    "older dataset", sct);
		}
		if (bytes != v->dl.bytes) {
			c.problems++;
			printf("PROBLEM %s: dead list says %" PRIu64 " bytes, its entries hold %" PRIu64
			    "\n", what, v->dl.bytes, bytes);
		}
	}
	}
	htab_fini(&dead);
	/* The intent log region owns its sectors. */
	mos_header_phys *mh = mos_hdr(p);
	for (uint64_t i = 0; i < mh->mh_log_nsectors && mh->mh_log_vdev < p->nvdevs; i++) {
		uint64_t s = mh->mh_log_sector + i;
		if (s >= p->alloc.v[mh->mh_log_vdev].nsectors)
			break;
		uint64_t *w = &c.refd[mh->mh_log_vdev][s >> 6];
		if (*w & (1ull << (s & 63))) {
			c.problems++;
			printf("PROBLEM intent log: sector %" PRIu64 " is also owned by a block\n", s);
		}
		*w |= 1ull << (s & 63);
		if (!alloc_test(&p->alloc, mh->mh_log_vdev, s)) {
			c.problems++;
			printf("PROBLEM intent log: sector %" PRIu64 " is free in the bitmap\n", s);
		}
	}
	/* Every allocated sector must be referenced (no leaks). */
	uint64_t alloc_total = 0;
	for (unsigned v = 0; v < p->nvdevs; v++) {
		alloc_vdev *av = &p->alloc.v[v];
		for (uint64_t w = 0; w < av->nwords; w++) {
			uint64_t leaked = av->cur[w] & ~c.refd[v][w];
			alloc_total += (uint64_t)__builtin_popcountll(av->cur[w]);
			while (leaked) {
				uint64_t s = w * 64 + (uint64_t)__builtin_ctzll(leaked);
				leaked &= leaked - 1;
				c.problems++;
				if (c.problems < 1000)
					printf("PROBLEM vdev %u: sector %" PRIu64 " is allocated but not referenced (leak)\n", v, s);
			}
		}
	}
	ce_pool_stat st;
	ce_pool_stat_get(p, &st);
	printf("pool %s txg %" PRIu64 ": %" PRIu64 " blocks in %" PRIu64 " volumes, MOS and bitmaps; "
	    "%" PRIu64 " sectors allocated; %" PRIu64 " checksum errors; %" PRIu64 " problems\n",
	    p->name, txg_synced(p), c.blocks, nvols, alloc_total, st.cksum_errors, c.problems);
	uint64_t damaged = check_copies(p);
	if (st.newer_damaged_txg != 0) {
		/* committed txgs this view cannot reach: import refuses without --rewind */
		printf("PROBLEM pool %s: txg %" PRIu64 " was committed, but its uberblock is damaged in every "
		    "copy; this check saw txg %" PRIu64 ", and import refuses to go back to it without "
		    "--rewind\n", p->name, st.newer_damaged_txg, txg_synced(p));
		c.problems++;
	}
	for (unsigned v = 0; v < p->nvdevs; v++)
		free(c.refd[v]);
	free(c.refd);
	free(c.scratch);
	ce_pool_export(p);
	return c.problems ? 1 : damaged ? 3 : 0;
}

/* ---- log ---- */

typedef struct log_ctx {
	ce_pool *p;
	uint64_t blocks, recs, replay;
} log_ctx;

static int
log_visit(void *arg, const ilog_blk_phys *b, uint64_t off, const ilog_rec_phys *r, const void *body)
{
	log_ctx *c = arg;
	if (r == NULL) {
		c->blocks++;
		printf("block seq %" PRIu64 " at +%" PRIu64 ": %u KiB, %u records\n", b->lg_seq, off,
		    b->lg_nsectors * 4, b->lg_nrecs);
		return 0;
	}
	c->recs++;
	const char *vname = "(no such volume)";
	for (size_t i = 0; i < ds_count(c->p); i++)
		if (ds_at(c->p, i)->guid == r->lr_ds_guid)
			vname = ds_at(c->p, i)->name;
	int replays = r->lr_txg > txg_synced(c->p);
	c->replay += (uint64_t)replays;
	const char *type = r->lr_type == LR_WRITE ? "write" : r->lr_type == LR_ZERO ? "zero" :
	    r->lr_type == LR_WRITE_PTR ? "write-in-place" : "?";
	printf("  txg %-6" PRIu64 " %-14s %s off %" PRIu64 " len %" PRIu64, r->lr_txg, type, vname,
	    r->lr_offset, r->lr_length);
	if (r->lr_type == LR_WRITE_PTR) {
		ilog_ptr_phys ptr;
		memcpy(&ptr, body, sizeof(ptr));
		printf(" data at %u:0x%" PRIx64, ptr.lp_vdev, ptr.lp_offset);
	}
	printf("  %s\n", replays ? "(replays)" : "(committed: skipped)");
	return 0;
}

static int
cmd_log(int argc, char **argv)
{
	ce_pool *p;
	if (open_pool(argc, argv, &p) != 0)
		return 2;
	const uberblock_phys *ub = &p->import_ub;
	mos_header_phys *mh = mos_hdr(p);
	if (mh->mh_log_nsectors == 0) {
		printf("pool %s has no intent log region (format version 1, not yet upgraded)\n", p->name);
		ce_pool_export(p);
		return 0;
	}
	printf("intent log: vdev %u, %" PRIu64 " KiB at sector %" PRIu64 "; uberblock txg %" PRIu64,
	    mh->mh_log_vdev, mh->mh_log_nsectors * 4, mh->mh_log_sector, ub->ub_txg);
	if (ub->ub_log_epoch == 0) {
		printf(" names no chain\n");
		ce_pool_export(p);
		return 0;
	}
	printf(" names epoch %016" PRIx64 ", block seq %" PRIu64 " at +%" PRIu64 "\n", ub->ub_log_epoch,
	    ub->ub_log_seq, ub->ub_log_off);
	log_ctx c = { p, 0, 0, 0 };
	int err = ilog_walk(p, ub, log_visit, &c);
	if (err == -EBADMSG)
		printf("damaged: block seq %" PRIu64 " has the chain's identity but fails its checksum; replay "
		    "stops there\n", ub->ub_log_seq + c.blocks);
	else if (err != 0)
		printf("read error: %s\n", strerror(-err));
	printf("end of chain: %" PRIu64 " blocks, %" PRIu64 " records, %" PRIu64 " to replay\n", c.blocks,
	    c.recs, c.replay);
	ce_pool_export(p);
	return err ? 1 : 0;
}

int
main(int argc, char **argv)
{
	if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc < 3) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "labels") == 0)
		return cmd_labels(argc - 2, argv + 2) ? 1 : 0;
	if (strcmp(cmd, "uberblocks") == 0)
		return cmd_uberblocks(argc - 2, argv + 2);
	if (strcmp(cmd, "tree") == 0)
		return cmd_tree(argc - 1, argv + 1);
	if (strcmp(cmd, "check") == 0)
		return cmd_check(argc - 2, argv + 2);
	if (strcmp(cmd, "log") == 0)
		return cmd_log(argc - 2, argv + 2);
	fprintf(stderr, "cask-debug: unknown command '%s'\n", cmd);
	usage(stderr);
	return 2;
}
