/*
 * test_snap_model -- model-based random test of snapshots (fsx-like).
 *
 *   test_snap_model [--ops N] [--seed S]
 *
 * Two volumes of 256 blocks. Random operations: writes and trims of 1-8
 * blocks, snapshot create (of one or both volumes at one instant),
 * snapshot destroy (refused for a clone's origin), rollback (to the
 * newest snapshot, or with -r to an older one), clone of a snapshot into
 * a new volume (up to two) and its destroy (refused while it has
 * snapshots), txg sync, FLUSH + abandon + import (a crash after a
 * flush), export + cask-debug check + import. An in-memory model holds
 * every volume's and every snapshot's contents (a generation number per
 * block); after every operation one random volume or snapshot is read
 * whole and compared, and every 25 operations all of them are, with the
 * space invariants: a snapshot references what its model holds plus
 * indirect blocks, the volume's usedbysnapshots is at least the sum of its
 * snapshots' used, written <= used. At the end everything is destroyed and
 * the pool must be back at its empty allocation. Prints its seed.
 */
#include <getopt.h>
#include <time.h>

#include "t.h"

#define BS 4096u
#define NB 256u
#define MAXV 4      /* a, b and up to two clones */
#define MAXSNAP 64

typedef struct msnap {
	char name[64];
	int vol;
	long op;        /* creation order */
	uint32_t gen[NB];
} msnap;

static uint32_t cur[MAXV][NB];
static msnap snaps[MAXSNAP];
static int nsnaps;
static uint32_t gen_next = 1;
static char vname[MAXV][32] = { "a", "b" };
static int alive[MAXV] = { 1, 1 };
static char origin[MAXV][64];   /* a clone's origin snapshot */
static ce_vol *h[MAXV];

static void
pattern(uint8_t *b, int vol, uint32_t blk, uint32_t gen)
{
	(void)vol; /* generations are unique across volumes (clones share them) */
	t_fill(b, BS, ((uint64_t)gen << 20) | blk);
	memcpy(b, &gen, 4);
}

/* Read dataset `name` whole and compare with gens; returns bad blocks. */
static int
verify(ce_pool *p, const char *name, int vol, const uint32_t *gens)
{
	ce_vol *dh;
	OK(ce_vol_open(p, name, &dh));
	uint8_t *buf = malloc(NB * BS), want[BS];
	OK(ce_vol_read(dh, buf, NB * BS, 0));
	int bad = 0;
	for (uint32_t b = 0; b < NB; b++) {
		if (gens[b] == 0)
			memset(want, 0, BS);
		else
			pattern(want, vol, b, gens[b]);
		if (memcmp(buf + (size_t)b * BS, want, BS) != 0) {
			uint32_t got;
			memcpy(&got, buf + (size_t)b * BS, 4);
			if (bad++ < 5)
				printf("%s block %u: want gen %u, got %u\n", name, b, gens[b], got);
		}
	}
	free(buf);
	ce_vol_close(dh);
	return bad;
}

static void
verify_all(ce_pool *p)
{
	int bad = 0;
	for (int v = 0; v < MAXV; v++)
		if (alive[v])
			bad += verify(p, vname[v], v, cur[v]);
	for (int i = 0; i < nsnaps; i++)
		bad += verify(p, snaps[i].name, snaps[i].vol, snaps[i].gen);
	CHECK(bad == 0);
	/* space invariants (of committed state: sync first) */
	OK(ce_pool_sync(p));
	ce_snap_info *l;
	size_t n;
	OK(ce_snap_list(p, NULL, &l, &n));
	CHECK((int)n == nsnaps);
	for (int v = 0; v < MAXV; v++) {
		if (!alive[v])
			continue;
		ce_vol_info vi;
		OK(ce_vol_info_get(p, vname[v], &vi));
		uint64_t sum = 0;
		for (size_t i = 0; i < n; i++)
			if (strcmp(l[i].volume, vname[v]) == 0)
				sum += l[i].used;
		CHECK(vi.usedbysnapshots >= sum);
		CHECK(vi.written <= vi.used);
		uint64_t data = 0;
		for (uint32_t b = 0; b < NB; b++)
			data += cur[v][b] != 0 ? BS : 0;
		CHECK(vi.logical == data);
		CHECK(strcmp(vi.origin, origin[v]) == 0);
	}
	for (size_t i = 0; i < n; i++) {
		for (int k = 0; k < nsnaps; k++) {
			if (strcmp(snaps[k].name, l[i].name) != 0)
				continue;
			uint64_t data = 0;
			for (uint32_t b = 0; b < NB; b++)
				data += snaps[k].gen[b] != 0 ? BS : 0;
			CHECK(l[i].logical == data);
			CHECK(l[i].referenced >= data && l[i].used <= l[i].referenced);
		}
	}
	free(l);
}

int
main(int argc, char **argv)
{
	long nops = 600;
	uint64_t seed = (uint64_t)time(NULL);
	static const struct option lo[] = { { "ops", 1, NULL, 'o' }, { "seed", 1, NULL, 's' },
		{ 0, 0, 0, 0 } };
	int ch;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (ch == 'o')
			nops = atol(optarg);
		else if (ch == 's')
			seed = strtoull(optarg, NULL, 0);
		else
			return 2;
	}
	printf("seed %" PRIu64 ", %ld operations\n", seed, nops);
	t_tmpdir();
	const char *path = t_path("pool");
	ce_pool_opts o = { 0 };
	o.vdev_size = 64ull << 20;
	o.txg_timeout_ms = 60000;
	ce_pool *p;
	OK(ce_pool_create("model", &path, 1, &o, &p));
	ce_pool_stat empty;
	OK(ce_pool_stat_get(p, &empty));
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.compress = CE_COMPRESS_OFF;
	for (int v = 0; v < 2; v++) {
		OK(ce_vol_create(p, vname[v], NB * BS, &pr));
		OK(ce_vol_open(p, vname[v], &h[v]));
	}
	uint64_t s = seed | 1;
	long counts[10] = { 0 };
	uint8_t *buf = malloc(8 * BS);
	for (long op = 0; op < nops; op++) {
		int kind = (int)(t_rand(&s) % 100);
		int v = (int)(t_rand(&s) % MAXV);
		while (!alive[v])
			v = (v + 1) % MAXV;
		if (kind < 40) { /* write */
			uint32_t n = 1 + (uint32_t)(t_rand(&s) % 8), b0 = (uint32_t)(t_rand(&s) % (NB - n));
			for (uint32_t i = 0; i < n; i++) {
				cur[v][b0 + i] = gen_next++;
				pattern(buf + (size_t)i * BS, v, b0 + i, cur[v][b0 + i]);
			}
			OK(ce_vol_write(h[v], buf, (size_t)n * BS, (uint64_t)b0 * BS));
			counts[0]++;
		} else if (kind < 50) { /* trim */
			uint32_t n = 1 + (uint32_t)(t_rand(&s) % 8), b0 = (uint32_t)(t_rand(&s) % (NB - n));
			OK(ce_vol_trim(h[v], (uint64_t)b0 * BS, (uint64_t)n * BS));
			for (uint32_t i = 0; i < n; i++)
				cur[v][b0 + i] = 0;
			counts[1]++;
		} else if (kind < 62 && nsnaps < MAXSNAP - 2) { /* snapshot create, one or both */
			int both = t_rand(&s) & 1;
			const char *names[2];
			char nm[2][64];
			int cnt = 0, errs[2];
			for (int k = 0; k < MAXV && cnt < 2; k++) {
				if (!alive[k] || (!both && k != v))
					continue;
				snprintf(nm[cnt], sizeof(nm[cnt]), "%s@s%ld", vname[k], op);
				names[cnt] = nm[cnt];
				msnap *m = &snaps[nsnaps + cnt];
				snprintf(m->name, sizeof(m->name), "%s", nm[cnt]);
				m->vol = k;
				m->op = op;
				memcpy(m->gen, cur[k], sizeof(m->gen));
				cnt++;
			}
			OK(ce_snap_create(p, names, (size_t)cnt, errs));
			nsnaps += cnt;
			counts[2]++;
		} else if (kind < 72 && nsnaps > 0) { /* snapshot destroy (an origin refuses) */
			int k = (int)(t_rand(&s) % (uint64_t)nsnaps), is_origin = 0;
			for (int c = 0; c < MAXV; c++)
				is_origin |= alive[c] && strcmp(origin[c], snaps[k].name) == 0;
			if (is_origin) {
				CHECK_ERR(ce_snap_destroy(p, snaps[k].name), -EBUSY);
			} else {
				OK(ce_snap_destroy(p, snaps[k].name));
				snaps[k] = snaps[--nsnaps];
				counts[3]++;
			}
		} else if (kind < 77 && nsnaps > 0) { /* rollback to a snapshot of v (-r if not the newest) */
			int k = -1, newer = 0;
			for (int i = 0; i < nsnaps; i++)
				if (snaps[i].vol == v && (k < 0 || (t_rand(&s) & 1)))
					k = i;
			int newer_origin = 0;
			for (int i = 0; k >= 0 && i < nsnaps; i++)
				for (int c = 0; c < MAXV; c++)
					newer_origin |= snaps[i].vol == v && snaps[i].op > snaps[k].op && alive[c] &&
					    strcmp(origin[c], snaps[i].name) == 0;
			if (k >= 0 && !newer_origin) {
				for (int i = 0; i < nsnaps; i++)
					newer += snaps[i].vol == v && snaps[i].op > snaps[k].op;
				ce_vol_close(h[v]);
				if (newer > 0)
					CHECK_ERR(ce_vol_rollback(p, snaps[k].name, 0), -EEXIST);
				OK(ce_vol_rollback(p, snaps[k].name, newer ? CE_ROLLBACK_DESTROY_LATER : 0));
				memcpy(cur[v], snaps[k].gen, sizeof(cur[v]));
				long kop = snaps[k].op;
				for (int i = 0; i < nsnaps;)
					if (snaps[i].vol == v && snaps[i].op > kop)
						snaps[i] = snaps[--nsnaps];
					else
						i++;
				OK(ce_vol_open(p, vname[v], &h[v]));
				counts[7]++;
			}
		} else if (kind < 80 && nsnaps > 0) { /* clone a snapshot into a free slot */
			int c = 2;
			while (c < MAXV && alive[c])
				c++;
			if (c < MAXV) {
				int k = (int)(t_rand(&s) % (uint64_t)nsnaps);
				snprintf(vname[c], sizeof(vname[c]), "c%ld", op);
				OK(ce_vol_clone(p, snaps[k].name, vname[c]));
				memcpy(cur[c], snaps[k].gen, sizeof(cur[c]));
				snprintf(origin[c], sizeof(origin[c]), "%s", snaps[k].name);
				alive[c] = 1;
				OK(ce_vol_open(p, vname[c], &h[c]));
				counts[8]++;
			}
		} else if (kind < 82) { /* destroy a clone (refused while it has snapshots) */
			int c = 2 + (int)(t_rand(&s) % 2), has = 0;
			for (int i = 0; alive[c] && i < nsnaps; i++)
				has |= snaps[i].vol == c;
			if (alive[c]) {
				ce_vol_close(h[c]);
				if (has) {
					CHECK_ERR(ce_vol_destroy(p, vname[c]), -EBUSY);
					OK(ce_vol_open(p, vname[c], &h[c]));
				} else {
					OK(ce_vol_destroy(p, vname[c]));
					alive[c] = 0;
					origin[c][0] = '\0';
					counts[9]++;
				}
			}
		} else if (kind < 84) {
			OK(ce_pool_sync(p));
			counts[4]++;
		} else if (kind < 90) { /* crash after a flush: the log replays */
			for (int k = 0; k < MAXV; k++) {
				if (!alive[k])
					continue;
				OK(ce_vol_flush(h[k]));
				ce_vol_close(h[k]);
			}
			ce_pool_abandon(p);
			OK(ce_pool_import(&path, 1, &o, &p));
			for (int k = 0; k < MAXV; k++)
				if (alive[k])
					OK(ce_vol_open(p, vname[k], &h[k]));
			counts[5]++;
		} else if (kind < 93) { /* export, check, import */
			for (int k = 0; k < MAXV; k++)
				if (alive[k])
					ce_vol_close(h[k]);
			OK(ce_pool_export(p));
			CHECK(t_debug_check(argv[0], path, NULL) == 0);
			OK(ce_pool_import(&path, 1, &o, &p));
			for (int k = 0; k < MAXV; k++)
				if (alive[k])
					OK(ce_vol_open(p, vname[k], &h[k]));
			counts[6]++;
		}
		/* one dataset after every operation, all of them every 25 */
		int pick = (int)(t_rand(&s) % (uint64_t)(MAXV + nsnaps));
		while (pick < MAXV && !alive[pick])
			pick = (pick + 1) % MAXV;
		int bad = pick < MAXV ? verify(p, vname[pick], pick, cur[pick])
				      : verify(p, snaps[pick - MAXV].name, snaps[pick - MAXV].vol,
					    snaps[pick - MAXV].gen);
		if (bad) {
			printf("op %ld: mismatch (seed %" PRIu64 ")\n", op, seed);
			CHECK(bad == 0);
		}
		if (op % 25 == 24)
			verify_all(p);
	}
	verify_all(p);
	printf("ops: %ld writes, %ld trims, %ld snapshot creates, %ld destroys, %ld rollbacks, %ld clones, "
	    "%ld clone destroys, %ld syncs, %ld flush+abandon+import, %ld export+check+import; %d "
	    "snapshots left\n", counts[0], counts[1], counts[2], counts[3], counts[7], counts[8], counts[9],
	    counts[4], counts[5], counts[6], nsnaps);
	/* everything goes: the pool returns to its empty allocation */
	/* in dependency order: clones without snapshots, snapshots nobody cloned, until none is left */
	for (int progress = 1; progress;) {
		progress = 0;
		for (int k = 2; k < MAXV; k++) {
			int has = 0;
			for (int i = 0; i < nsnaps; i++)
				has |= snaps[i].vol == k;
			if (alive[k] && !has) {
				ce_vol_close(h[k]);
				OK(ce_vol_destroy(p, vname[k]));
				alive[k] = 0;
				origin[k][0] = '\0';
				progress = 1;
			}
		}
		for (int i = 0; i < nsnaps;) {
			int is_origin = 0;
			for (int c = 0; c < MAXV; c++)
				is_origin |= alive[c] && strcmp(origin[c], snaps[i].name) == 0;
			if (!is_origin) {
				OK(ce_snap_destroy(p, snaps[i].name));
				snaps[i] = snaps[--nsnaps];
				progress = 1;
			} else {
				i++;
			}
		}
	}
	CHECK(nsnaps == 0);
	for (int k = 0; k < 2; k++) {
		ce_vol_close(h[k]);
		OK(ce_vol_destroy(p, vname[k]));
	}
	OK(ce_pool_sync(p));
	ce_pool_stat st;
	OK(ce_pool_stat_get(p, &st));
	printf("all destroyed: allocated %" PRIu64 ", empty pool %" PRIu64 "\n", st.allocated,
	    empty.allocated);
	CHECK(st.allocated <= empty.allocated + 65536);
	OK(ce_pool_export(p));
	CHECK(t_debug_check(argv[0], path, NULL) == 0);
	free(buf);
	printf("ok\n");
	return 0;
}
