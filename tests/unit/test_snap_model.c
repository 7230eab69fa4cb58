/*
 * test_snap_model -- model-based random test of snapshots (fsx-like).
 *
 *   test_snap_model [--ops N] [--seed S] [--check-every K]
 *
 * Up to four volumes of 256 blocks (two to start with). Random
 * operations: writes and trims of 1-8 blocks; snapshot create (of one or
 * two volumes at one instant); snapshot destroy; holds and releases;
 * rollback (to the newest snapshot, or with -r to an older one); clone
 * of a snapshot into a free slot; promote of a clone; volume destroy
 * (plain, -r or -R) and create; txg sync; FLUSH + abandon + import (a
 * crash after a flush); export + import; and kill -9 of a child process
 * that imported the pool and was writing, flushing and committing txgs,
 * then import and reconcile: every write the child was told is durable
 * must be there, the one in flight may be there or not, block by block.
 *
 * Every refusal is predicted by the model (a held snapshot, an origin,
 * snapshots without -r, clones without -R, a promote whose snapshot names
 * clash) and must happen with the predicted error; every success must
 * succeed. The model holds every volume's and snapshot's contents (a
 * generation number per block, unique per write, so a block's identity
 * is its generation) and which chain each snapshot belongs to. After
 * every operation one random dataset is read whole and compared, and
 * `cask-debug check` runs on the committed pool (every K operations;
 * K = 1 by default: no leaked or doubly referenced block after any
 * step). Every 25 operations all datasets are compared, with the space
 * properties computed from the model: exactly for uncompressed data
 * (logicalused of each volume and snapshot, logical), and for allocated
 * bytes within the tree blocks the model does not see (used, written,
 * usedbydataset, usedbysnapshots, one 16 KiB indirect block per tree).
 * At the end everything is destroyed and the pool must be back at its
 * empty allocation. Prints its seed.
 */
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <time.h>

#include "t.h"

#define BS 4096u
#define NB 256u
#define MAXV 4
#define MAXSNAP 64
#define IND 16384u /* the one indirect block of a 256-block tree (uncompressed) */
#define MAXGEN (1u << 22)

typedef struct msnap {
	char name[64];
	int vol;        /* the chain it belongs to (its volume) */
	long op;        /* creation order (= txg order within a chain) */
	int held;       /* carries the hold "m" */
	uint32_t gen[NB];
} msnap;

static uint32_t cur[MAXV][NB];
static msnap snaps[MAXSNAP];
static int nsnaps;
static uint32_t gen_next = 1;
static char vname[MAXV][32];
static int alive[MAXV];
static char origin[MAXV][64];   /* the snapshot a volume's chain was cloned from */
static ce_vol *h[MAXV];
static const char *argv0, *path;
static ce_pool_opts o;
static uint32_t *stamp;         /* per generation: scratch marks for the space model */
static uint32_t stamp_id;

static void
pattern(uint8_t *b, uint32_t blk, uint32_t gen)
{
	t_fill(b, BS, ((uint64_t)gen << 20) | blk);
	memcpy(b, &gen, 4);
}

static int
find_snap(const char *name)
{
	for (int i = 0; i < nsnaps; i++)
		if (strcmp(snaps[i].name, name) == 0)
			return i;
	return -1;
}

/* An alive volume cloned from snapshot `name`? */
static int
is_origin(const char *name)
{
	for (int c = 0; c < MAXV; c++)
		if (alive[c] && strcmp(origin[c], name) == 0)
			return 1;
	return 0;
}

static void
drop_snap(int k)
{
	snaps[k] = snaps[--nsnaps];
}

/* Read dataset `name` whole and compare with gens; returns bad blocks. */
static int
verify(ce_pool *p, const char *name, const uint32_t *gens)
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
			pattern(want, b, gens[b]);
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

/* ---- the space model: sets of generations ---- */

static void
mark(const uint32_t *gens, uint32_t id)
{
	for (uint32_t b = 0; gens != NULL && b < NB; b++)
		if (gens[b] != 0)
			stamp[gens[b]] = id;
}

/* Snapshots of chain v, oldest first. */
static int
chain_of(int v, int *idx)
{
	int n = 0;
	for (int i = 0; i < nsnaps; i++)
		if (snaps[i].vol == v)
			idx[n++] = i;
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && snaps[idx[j]].op < snaps[idx[j - 1]].op; j--) {
			int t = idx[j];
			idx[j] = idx[j - 1];
			idx[j - 1] = t;
		}
	return n;
}

static const uint32_t *
origin_gens(int v)
{
	int k = origin[v][0] ? find_snap(origin[v]) : -1;
	CHECK(origin[v][0] == '\0' || k >= 0); /* an origin is never destroyed */
	return k >= 0 ? snaps[k].gen : NULL;
}

/* Blocks of gens that are in neither a nor b (NULL: empty), counted once. */
static uint64_t
only_in(const uint32_t *gens, const uint32_t *a, const uint32_t *b)
{
	uint32_t ia = ++stamp_id, ib = ++stamp_id, seen = ++stamp_id;
	mark(a, ia);
	mark(b, ib);
	uint64_t n = 0;
	for (uint32_t k = 0; k < NB; k++) {
		uint32_t g = gens[k];
		if (g != 0 && stamp[g] != ia && stamp[g] != ib && stamp[g] != seen) {
			n++;
			stamp[g] = seen;
		}
	}
	return n * BS;
}

typedef struct sp_model {
	uint64_t dataset, snapshots, written, referenced;
} sp_model;

static void
volume_model(int v, sp_model *m)
{
	int idx[MAXSNAP], n = chain_of(v, idx);
	const uint32_t *og = origin_gens(v);
	memset(m, 0, sizeof(*m));
	m->dataset = only_in(cur[v], og, NULL);
	m->written = only_in(cur[v], n > 0 ? snaps[idx[n - 1]].gen : og, NULL);
	for (uint32_t b = 0; b < NB; b++)
		m->referenced += cur[v][b] != 0 ? BS : 0;
	/* the union of the chain's snapshots, less the head and the origin */
	uint32_t ih = ++stamp_id, io = ++stamp_id, seen = ++stamp_id;
	mark(cur[v], ih);
	mark(og, io);
	for (int i = 0; i < n; i++)
		for (uint32_t k = 0; k < NB; k++) {
			uint32_t g = snaps[idx[i]].gen[k];
			if (g != 0 && stamp[g] != ih && stamp[g] != io && stamp[g] != seen) {
				m->snapshots += BS;
				stamp[g] = seen;
			}
		}
}

static void
verify_all(ce_pool *p)
{
	int bad = 0;
	for (int v = 0; v < MAXV; v++)
		if (alive[v])
			bad += verify(p, vname[v], cur[v]);
	for (int i = 0; i < nsnaps; i++)
		bad += verify(p, snaps[i].name, snaps[i].gen);
	CHECK(bad == 0);
	OK(ce_pool_sync(p)); /* space is of committed state */
	ce_snap_info *l;
	size_t n;
	OK(ce_snap_list(p, NULL, &l, &n));
	CHECK((int)n == nsnaps);
	for (int v = 0; v < MAXV; v++) {
		if (!alive[v])
			continue;
		ce_vol_info vi;
		OK(ce_vol_info_get(p, vname[v], &vi));
		sp_model m;
		volume_model(v, &m);
		if (vi.logicalused != m.dataset + m.snapshots || vi.logical != m.referenced) {
			printf("%s: logicalused %" PRIu64 " logical %" PRIu64 ", model %" PRIu64 " + %" PRIu64
			    " and %" PRIu64 "\n", vname[v], vi.logicalused, vi.logical, m.dataset, m.snapshots,
			    m.referenced);
			CHECK(0);
		}
		/* allocated: the data the model knows, plus tree blocks */
		int idx[MAXSNAP], ns = chain_of(v, idx);
		CHECK(vi.usedbydataset >= m.dataset && vi.usedbydataset <= m.dataset + IND);
		CHECK(vi.usedbysnapshots >= m.snapshots && vi.usedbysnapshots <= m.snapshots + (uint64_t)ns * IND);
		CHECK(vi.written >= m.written && vi.written <= m.written + IND);
		CHECK(vi.referenced >= m.referenced && vi.referenced <= m.referenced + IND);
		CHECK(vi.used == vi.usedbydataset + vi.usedbysnapshots);
		CHECK(vi.nsnapshots == (unsigned)ns);
		CHECK(strcmp(vi.origin, origin[v]) == 0);
	}
	for (size_t i = 0; i < n; i++) {
		int k = find_snap(l[i].name);
		CHECK(k >= 0);
		msnap *s = &snaps[k];
		CHECK(strcmp(l[i].volume, vname[s->vol]) == 0);
		/* used: blocks in neither its older nor its newer neighbour in the chain */
		int idx[MAXSNAP], ns = chain_of(s->vol, idx), pos = 0;
		while (idx[pos] != k)
			pos++;
		const uint32_t *older = pos > 0 ? snaps[idx[pos - 1]].gen : origin_gens(s->vol);
		const uint32_t *newer = pos + 1 < ns ? snaps[idx[pos + 1]].gen : cur[s->vol];
		uint64_t du = only_in(s->gen, older, newer), data = 0;
		for (uint32_t b = 0; b < NB; b++)
			data += s->gen[b] != 0 ? BS : 0;
		if (l[i].logicalused != du || l[i].used < du || l[i].used > du + IND ||
		    l[i].logical != data || l[i].referenced > data + IND || l[i].holds != (unsigned)s->held) {
			printf("%s: used %" PRIu64 " logicalused %" PRIu64 " logical %" PRIu64 " holds %u; model "
			    "unique %" PRIu64 " data %" PRIu64 " held %d\n", s->name, l[i].used, l[i].logicalused,
			    l[i].logical, l[i].holds, du, data, s->held);
			CHECK(0);
		}
	}
	free(l);
}

/* cask-debug check of the committed pool (read-only; the pool stays open). */
static void
debug_check(ce_pool *p, long op, uint64_t seed)
{
	OK(ce_pool_sync(p));
	if (t_debug_check(argv0, path, NULL) != 0) {
		printf("op %ld: cask-debug check failed (seed %" PRIu64 ")\n", op, seed);
		CHECK(0);
	}
}

static void
open_all(ce_pool *p)
{
	for (int k = 0; k < MAXV; k++)
		if (alive[k])
			OK(ce_vol_open(p, vname[k], &h[k]));
}

static void
close_all(void)
{
	for (int k = 0; k < MAXV; k++)
		if (alive[k])
			ce_vol_close(h[k]);
}

/* ---- kill -9 of a writer process ---- */

/* Write i of the child: n blocks from b0, generations base + 8 i + j. */
static void
child_op(uint64_t cseed, long i, uint32_t *b0, uint32_t *n)
{
	uint64_t s = cseed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(i + 1));
	*n = 1 + (uint32_t)(t_rand(&s) % 8);
	*b0 = (uint32_t)(t_rand(&s) % (NB - *n));
}

static void
child_run(const char *vol, uint64_t cseed, uint32_t base, int ackfd)
{
	ce_pool *p;
	ce_vol *v;
	if (ce_pool_import(&path, 1, &o, &p) != 0 || ce_vol_open(p, vol, &v) != 0)
		_exit(3);
	uint8_t *buf = malloc(8 * BS);
	for (long i = 0; i < 100000; i++) {
		uint32_t b0, n;
		child_op(cseed, i, &b0, &n);
		for (uint32_t j = 0; j < n; j++)
			pattern(buf + (size_t)j * BS, b0 + j, base + 8 * (uint32_t)i + j);
		if (ce_vol_write(v, buf, (size_t)n * BS, (uint64_t)b0 * BS) != 0 || ce_vol_flush(v) != 0)
			_exit(4);
		if (write(ackfd, &i, sizeof(i)) != sizeof(i))
			_exit(5);
		if (i % 4 == 3 && ce_pool_sync(p) != 0) /* txg commits in flight when the kill comes */
			_exit(6);
	}
	_exit(7);
}

static ce_pool *
kill_writer(ce_pool *p, int v, uint64_t *s)
{
	close_all();
	OK(ce_pool_export(p));
	uint64_t cseed = t_rand(s);
	uint32_t base = gen_next;
	int fds[2];
	CHECK(pipe(fds) == 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		child_run(vname[v], cseed, base, fds[1]);
	}
	close(fds[1]);
	long want = 1 + (long)(t_rand(s) % 24), last = -1, got;
	while (last + 1 < want && read(fds[0], &got, sizeof(got)) == sizeof(got))
		last = got;
	usleep((useconds_t)(t_rand(s) % 3000));
	kill(pid, SIGKILL);
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL); /* it was writing, not failing */
	while (read(fds[0], &got, sizeof(got)) == sizeof(got))
		last = got;
	close(fds[0]);
	OK(ce_pool_import(&path, 1, &o, &p));
	open_all(p);
	/* acknowledged writes are in the model; the one in flight may be there, block by block */
	for (long i = 0; i <= last; i++) {
		uint32_t b0, n;
		child_op(cseed, i, &b0, &n);
		for (uint32_t j = 0; j < n; j++)
			cur[v][b0 + j] = base + 8 * (uint32_t)i + j;
	}
	uint32_t b0, n;
	child_op(cseed, last + 1, &b0, &n);
	uint8_t blk[BS];
	int landed = 0;
	for (uint32_t j = 0; j < n; j++) {
		uint32_t g;
		OK(ce_vol_read(h[v], blk, BS, (uint64_t)(b0 + j) * BS));
		memcpy(&g, blk, 4);
		if (g == base + 8 * (uint32_t)(last + 1) + j) {
			cur[v][b0 + j] = g;
			landed++;
		}
	}
	gen_next = base + 8 * (uint32_t)(last + 2);
	CHECK(gen_next < MAXGEN);
	if (verify(p, vname[v], cur[v]) != 0) {
		printf("after kill -9: %ld writes acknowledged, lost some\n", last + 1);
		CHECK(0);
	}
	printf("kill -9 of a writer after %ld acknowledged writes (the next: %d of %u blocks landed)\n",
	    last + 1, landed, n);
	return p;
}

/* ---- volume destroy (plain, -r, -R) as the model predicts it ---- */

static int
destroy_predict(int v, unsigned flags, int *set)
{
	memset(set, 0, MAXV * sizeof(int));
	set[v] = 1;
	for (int again = 1; again;) {
		again = 0;
		for (int i = 0; i < nsnaps; i++) {
			if (!set[snaps[i].vol])
				continue;
			if (!(flags & (CE_DESTROY_SNAPSHOTS | CE_DESTROY_CLONES)) || snaps[i].held)
				return -EBUSY;
			for (int c = 0; c < MAXV; c++) {
				if (!alive[c] || set[c] || strcmp(origin[c], snaps[i].name) != 0)
					continue;
				if (!(flags & CE_DESTROY_CLONES))
					return -EBUSY;
				set[c] = 1;
				again = 1;
			}
		}
	}
	return 0;
}

static int
free_slot(void)
{
	for (int c = 0; c < MAXV; c++)
		if (!alive[c])
			return c;
	return -1;
}

int
main(int argc, char **argv)
{
	long nops = 400, check_every = 1;
	uint64_t seed = (uint64_t)time(NULL);
	static const struct option lo[] = { { "ops", 1, NULL, 'o' }, { "seed", 1, NULL, 's' },
		{ "check-every", 1, NULL, 'c' }, { 0, 0, 0, 0 } };
	int ch;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (ch == 'o')
			nops = atol(optarg);
		else if (ch == 's')
			seed = strtoull(optarg, NULL, 0);
		else if (ch == 'c')
			check_every = atol(optarg);
		else
			return 2;
	}
	printf("seed %" PRIu64 ", %ld operations, cask-debug check every %ld\n", seed, nops, check_every);
	argv0 = argv[0];
	t_tmpdir();
	path = t_path("pool");
	stamp = calloc(MAXGEN, sizeof(uint32_t));
	o.vdev_size = 64ull << 20;
	o.txg_timeout_ms = 60000;
	ce_pool *p;
	OK(ce_pool_create("model", &path, 1, &o, &p));
	ce_pool_stat empty;
	OK(ce_pool_stat_get(p, &empty));
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.compress = CE_COMPRESS_OFF;
	for (int v = 0; v < 2; v++) {
		snprintf(vname[v], sizeof(vname[v]), "%c", 'a' + v);
		OK(ce_vol_create(p, vname[v], NB * BS, &pr));
		alive[v] = 1;
		OK(ce_vol_open(p, vname[v], &h[v]));
	}
	uint64_t s = seed * 2 + 1;
	enum { W, T, SC, SD, RB, CL, PR, VD, VC, HO, SY, FA, EX, KI, NCOUNT };
	static const char *cname[] = { "writes", "trims", "snapshot creates", "snapshot destroys",
		"rollbacks", "clones", "promotes", "volume destroys", "volume creates", "holds/releases",
		"syncs", "flush+abandon+import", "export+import", "kill -9 of a writer" };
	long counts[NCOUNT] = { 0 }, refusals = 0;
	uint8_t *buf = malloc(8 * BS);
	for (long op = 0; op < nops; op++) {
		int kind = (int)(t_rand(&s) % 100);
		int v = (int)(t_rand(&s) % MAXV), nalive = 0;
		for (int k = 0; k < MAXV; k++)
			nalive += alive[k];
		if (nalive == 0)
			kind = 81; /* everything was destroyed: create a volume */
		else
			while (!alive[v])
				v = (v + 1) % MAXV;
		if (kind < 36) { /* write */
			uint32_t n = 1 + (uint32_t)(t_rand(&s) % 8), b0 = (uint32_t)(t_rand(&s) % (NB - n));
			for (uint32_t i = 0; i < n; i++) {
				cur[v][b0 + i] = gen_next++;
				pattern(buf + (size_t)i * BS, b0 + i, cur[v][b0 + i]);
			}
			OK(ce_vol_write(h[v], buf, (size_t)n * BS, (uint64_t)b0 * BS));
			counts[W]++;
		} else if (kind < 44) { /* trim */
			uint32_t n = 1 + (uint32_t)(t_rand(&s) % 8), b0 = (uint32_t)(t_rand(&s) % (NB - n));
			OK(ce_vol_trim(h[v], (uint64_t)b0 * BS, (uint64_t)n * BS));
			for (uint32_t i = 0; i < n; i++)
				cur[v][b0 + i] = 0;
			counts[T]++;
		} else if (kind < 55 && nsnaps < MAXSNAP - 2) { /* snapshot create, one or two volumes */
			int both = t_rand(&s) & 1, cnt = 0, errs[2];
			const char *names[2];
			for (int k = 0; k < MAXV && cnt < 2; k++) {
				if (!alive[k] || (!both && k != v))
					continue;
				msnap *m = &snaps[nsnaps + cnt];
				snprintf(m->name, sizeof(m->name), "%s@s%ld", vname[k], op);
				m->vol = k;
				m->op = op;
				m->held = 0;
				memcpy(m->gen, cur[k], sizeof(m->gen));
				names[cnt++] = m->name;
			}
			OK(ce_snap_create(p, names, (size_t)cnt, errs));
			nsnaps += cnt;
			counts[SC]++;
		} else if (kind < 62 && nsnaps > 0) { /* snapshot destroy: origins and held ones refuse */
			int k = (int)(t_rand(&s) % (uint64_t)nsnaps);
			if (is_origin(snaps[k].name) || snaps[k].held) {
				CHECK_ERR(ce_snap_destroy(p, snaps[k].name), -EBUSY);
				refusals++;
			} else {
				OK(ce_snap_destroy(p, snaps[k].name));
				drop_snap(k);
				counts[SD]++;
			}
		} else if (kind < 66 && nsnaps > 0) { /* rollback to a snapshot of v (-r if not the newest) */
			int k = -1, newer = 0, blocked = 0;
			for (int i = 0; i < nsnaps; i++)
				if (snaps[i].vol == v && (k < 0 || (t_rand(&s) & 1)))
					k = i;
			if (k >= 0) {
				for (int i = 0; i < nsnaps; i++)
					if (snaps[i].vol == v && snaps[i].op > snaps[k].op) {
						newer++;
						blocked |= is_origin(snaps[i].name) || snaps[i].held;
					}
				ce_vol_close(h[v]);
				if (newer > 0)
					CHECK_ERR(ce_vol_rollback(p, snaps[k].name, 0), -EEXIST);
				if (blocked) {
					CHECK_ERR(ce_vol_rollback(p, snaps[k].name, CE_ROLLBACK_DESTROY_LATER), -EBUSY);
					refusals++;
				} else {
					OK(ce_vol_rollback(p, snaps[k].name, newer ? CE_ROLLBACK_DESTROY_LATER : 0));
					memcpy(cur[v], snaps[k].gen, sizeof(cur[v]));
					long kop = snaps[k].op;
					for (int i = 0; i < nsnaps;)
						if (snaps[i].vol == v && snaps[i].op > kop)
							drop_snap(i);
						else
							i++;
					counts[RB]++;
				}
				OK(ce_vol_open(p, vname[v], &h[v]));
			}
		} else if (kind < 70 && nsnaps > 0) { /* clone a snapshot into a free slot */
			int c = free_slot();
			if (c >= 0) {
				int k = (int)(t_rand(&s) % (uint64_t)nsnaps);
				snprintf(vname[c], sizeof(vname[c]), "c%ld", op);
				OK(ce_vol_clone(p, snaps[k].name, vname[c]));
				memcpy(cur[c], snaps[k].gen, sizeof(cur[c]));
				snprintf(origin[c], sizeof(origin[c]), "%s", snaps[k].name);
				alive[c] = 1;
				OK(ce_vol_open(p, vname[c], &h[c]));
				counts[CL]++;
			}
		} else if (kind < 74) { /* promote v if it is a clone */
			if (origin[v][0] == '\0') {
				CHECK_ERR(ce_vol_promote(p, vname[v]), -EINVAL);
			} else {
				int ko = find_snap(origin[v]), pv = snaps[ko].vol, clash = 0;
				long oop = snaps[ko].op;
				size_t plen = strlen(vname[pv]);
				for (int i = 0; i < nsnaps; i++) {
					if (snaps[i].vol != pv || snaps[i].op > oop)
						continue;
					for (int j = 0; j < nsnaps; j++)
						clash |= snaps[j].vol == v &&
						    strcmp(strchr(snaps[j].name, '@'), snaps[i].name + plen) == 0;
				}
				if (clash) {
					CHECK_ERR(ce_vol_promote(p, vname[v]), -EEXIST);
					refusals++;
				} else {
					OK(ce_vol_promote(p, vname[v]));
					char old[64], onew[64];
					snprintf(old, sizeof(old), "%s", origin[pv]);
					snprintf(onew, sizeof(onew), "%s%s", vname[v], snaps[ko].name + plen);
					for (int i = 0; i < nsnaps; i++) {
						if (snaps[i].vol != pv || snaps[i].op > oop)
							continue;
						char nn[64];
						snprintf(nn, sizeof(nn), "%s%s", vname[v], snaps[i].name + plen);
						for (int c = 0; c < MAXV; c++)
							if (alive[c] && strcmp(origin[c], snaps[i].name) == 0)
								snprintf(origin[c], sizeof(origin[c]), "%s", nn);
						snprintf(snaps[i].name, sizeof(snaps[i].name), "%s", nn);
						snaps[i].vol = v;
					}
					snprintf(origin[v], sizeof(origin[v]), "%s", old);
					snprintf(origin[pv], sizeof(origin[pv]), "%s", onew);
					counts[PR]++;
				}
			}
		} else if (kind < 77) { /* destroy v: plain, -r or -R */
			static const unsigned fl[] = { 0, CE_DESTROY_SNAPSHOTS, CE_DESTROY_CLONES };
			unsigned flags = fl[t_rand(&s) % 3];
			int set[MAXV];
			int want = destroy_predict(v, flags, set);
			for (int c = 0; c < MAXV; c++)
				if (set[c])
					ce_vol_close(h[c]);
			if (want != 0) {
				CHECK_ERR(ce_vol_destroy_ex(p, vname[v], flags), want);
				refusals++;
				for (int c = 0; c < MAXV; c++)
					if (set[c])
						OK(ce_vol_open(p, vname[c], &h[c]));
			} else {
				OK(ce_vol_destroy_ex(p, vname[v], flags));
				for (int i = 0; i < nsnaps;)
					if (set[snaps[i].vol])
						drop_snap(i);
					else
						i++;
				for (int c = 0; c < MAXV; c++)
					if (set[c]) {
						alive[c] = 0;
						origin[c][0] = '\0';
						memset(cur[c], 0, sizeof(cur[c]));
					}
				counts[VD]++;
			}
		} else if (kind < 82) { /* create a volume in a free slot */
			int c = free_slot();
			if (c >= 0) {
				snprintf(vname[c], sizeof(vname[c]), "v%ld", op);
				OK(ce_vol_create(p, vname[c], NB * BS, &pr));
				memset(cur[c], 0, sizeof(cur[c]));
				origin[c][0] = '\0';
				alive[c] = 1;
				OK(ce_vol_open(p, vname[c], &h[c]));
				counts[VC]++;
			}
		} else if (kind < 86 && nsnaps > 0) { /* hold or release "m" */
			int k = (int)(t_rand(&s) % (uint64_t)nsnaps), e;
			const char *nm = snaps[k].name;
			if (t_rand(&s) & 1) {
				if (snaps[k].held)
					CHECK_ERR(ce_snap_hold(p, "m", &nm, 1, &e), -EEXIST);
				else
					OK(ce_snap_hold(p, "m", &nm, 1, &e));
				snaps[k].held = 1;
			} else {
				if (!snaps[k].held)
					CHECK_ERR(ce_snap_release(p, "m", &nm, 1, &e), -ENOENT);
				else
					OK(ce_snap_release(p, "m", &nm, 1, &e));
				snaps[k].held = 0;
			}
			counts[HO]++;
		} else if (kind < 88) {
			OK(ce_pool_sync(p));
			counts[SY]++;
		} else if (kind < 92) { /* crash after a flush: the log replays */
			for (int k = 0; k < MAXV; k++)
				if (alive[k])
					OK(ce_vol_flush(h[k]));
			close_all();
			ce_pool_abandon(p);
			OK(ce_pool_import(&path, 1, &o, &p));
			open_all(p);
			counts[FA]++;
		} else if (kind < 94) { /* export, import */
			close_all();
			OK(ce_pool_export(p));
			OK(ce_pool_import(&path, 1, &o, &p));
			open_all(p);
			counts[EX]++;
		} else if (kind < 97) {
			p = kill_writer(p, v, &s);
			counts[KI]++;
		}
		/* one dataset after every operation, all of them every 25 */
		int pick = (int)(t_rand(&s) % (uint64_t)(MAXV + nsnaps));
		for (int t = 0; pick < MAXV && !alive[pick] && t < MAXV; t++)
			pick = (pick + 1) % MAXV;
		int bad = 0;
		if (pick >= MAXV)
			bad = verify(p, snaps[pick - MAXV].name, snaps[pick - MAXV].gen);
		else if (alive[pick])
			bad = verify(p, vname[pick], cur[pick]);
		if (bad) {
			printf("op %ld (kind %d): mismatch (seed %" PRIu64 ")\n", op, kind, seed);
			CHECK(bad == 0);
		}
		if (check_every > 0 && op % check_every == check_every - 1)
			debug_check(p, op, seed);
		if (op % 25 == 24)
			verify_all(p);
	}
	verify_all(p);
	printf("ops:");
	for (int i = 0; i < NCOUNT; i++)
		printf("%s %ld %s", i ? "," : "", counts[i], cname[i]);
	int nheld = 0;
	for (int i = 0; i < nsnaps; i++)
		nheld += snaps[i].held;
	printf("; %ld refusals as predicted; %d snapshots (%d held) left\n", refusals, nsnaps, nheld);
	/* everything goes: release the holds, destroy each volume with -R */
	for (int i = 0; i < nsnaps; i++)
		if (snaps[i].held) {
			int e;
			const char *nm = snaps[i].name;
			OK(ce_snap_release(p, "m", &nm, 1, &e));
			snaps[i].held = 0;
		}
	close_all();
	for (int v = 0; v < MAXV; v++) {
		if (!alive[v])
			continue;
		int set[MAXV];
		OK(destroy_predict(v, CE_DESTROY_CLONES, set));
		OK(ce_vol_destroy_ex(p, vname[v], CE_DESTROY_CLONES));
		for (int c = 0; c < MAXV; c++)
			if (set[c])
				alive[c] = 0;
	}
	ce_snap_info *l;
	size_t n;
	OK(ce_snap_list(p, NULL, &l, &n));
	CHECK(n == 0);
	free(l);
	OK(ce_pool_sync(p));
	ce_pool_stat st;
	OK(ce_pool_stat_get(p, &st));
	printf("all destroyed: allocated %" PRIu64 ", empty pool %" PRIu64 "\n", st.allocated,
	    empty.allocated);
	CHECK(st.allocated <= empty.allocated + 65536);
	OK(ce_pool_export(p));
	CHECK(t_debug_check(argv[0], path, NULL) == 0);
	free(buf);
	free(stamp);
	printf("ok\n");
	return 0;
}
