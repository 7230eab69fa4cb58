/*
 * test_repl -- the replica record as engine state (lib/engine/repl.c,
 * docs/replication.md section 3.8, docs/on-disk-format.md section 7):
 *   - make, promise, start epoch, membership: the epoch rules the
 *     replica enforces itself (older and unstarted epochs refused, a
 *     repeat of the promise answered again, resume refused after a newer
 *     promise), each durable across export/import;
 *   - sequenced applies: only seq == applied + 1, only in the promised
 *     epoch; a plain handle cannot write a replica volume;
 *   - applied commits with the data (repl.c invariant 2): a writer thread
 *     applies disjoint operations (some straddling a txg hold boundary)
 *     while another commits txgs; the pool is abandoned at a random point
 *     (a crash), and after import every operation up to the record's
 *     applied is wholly there and none after its hi;
 *   - the sequence->txg map stays within 112 entries over many txgs, is
 *     monotone, and cask-debug check (invariant 8) is clean;
 *   - upgrade from format 5: the fixture tests/fixtures/pool-v5-repl.vdev.xz
 *     (made by the version-5 build: two volumes, a snapshot with a hold,
 *     an unreplayed intent log record) imports, replays, keeps its data,
 *     gets a replica and is checked and imported again;
 *   - then to format 9 (repl.c invariant 10): the MOS header says 6 until
 *     a sequenced rollback's txg commits the map's rollback entry, 9 from
 *     it on (a crash in between leaves one or the other, never the entry
 *     under 6); the uberblocks keep saying 8, so a version-8 reader reaches
 *     the header; and a copy whose header says CE_FORMAT_VERSION + 1 is
 *     refused with -ENOTSUP and a message naming that version.
 * Seed: CASK_SEED or time.
 */
#include <pthread.h>
#include <time.h>

#include "t.h"
#include "mos.h" /* mos_hdr: the format version the MOS header says */
#include "pool_impl.h"
#include "dataset.h"   /* vol_mgmt_begin: a test-only sync task */
#include "pool_sync.h"
#include "util.h"

#define BS 4096u
#define VOLSIZE (96ull << 20)
#define NB (VOLSIZE / BS)

static const char *argv0;

static ce_epoch
ep(uint64_t c, uint64_t n)
{
	return (ce_epoch){ c, n };
}

/* A membership record (mb_phys layout, on-disk-format.md 7.3) naming only `id`. */
static void
mb_make(uint8_t mb[CE_REPL_MB_SIZE], ce_epoch e, uint64_t version, uint64_t id)
{
	memset(mb, 0, CE_REPL_MB_SIZE);
	memcpy(mb + 0, &version, 8);
	memcpy(mb + 8, &e.counter, 8);
	memcpy(mb + 16, &e.node, 8);
	mb[32] = 2; /* quorum */
	mb[33] = 1;
	memcpy(mb + 320, &id, 8); /* member 0: mm_id */
	mb[320 + 16] = 1;         /* in-sync */
}

static void
block_of(uint8_t *b, uint64_t seq, uint64_t blk)
{
	t_fill(b, BS, seq * 1000003u + blk);
	memcpy(b, &seq, 8);
	memcpy(b + 8, &blk, 8);
}

static ce_pool *
reimport(ce_pool *p, const char *path)
{
	OK(ce_pool_export(p));
	CHECK(t_debug_check(argv0, path, NULL) == 0);
	OK(ce_pool_import(&path, 1, NULL, &p));
	return p;
}

static ce_pool *
test_rules(ce_pool *p, const char *path)
{
	uint8_t uuid[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
	ce_vol_props pr = { 0 };
	OK(ce_vol_create(p, "r", 8ull << 20, &pr));
	ce_vol_info vi;
	OK(ce_vol_info_get(p, "r", &vi));
	uint64_t id = vi.guid;
	CHECK(!ce_vol_is_replica(p, "r"));
	OK(ce_repl_make(p, "r", uuid, ep(1, id), "h1:7400"));
	CHECK_ERR(ce_repl_make(p, "r", uuid, ep(1, id), "h1:7400"), -EEXIST);
	CHECK(ce_vol_is_replica(p, "r"));
	ce_repl_info ri;
	OK(ce_repl_info_get(p, "r", &ri));
	CHECK(ri.id == id && ri.state == 1 && ri.applied == 0 && ri.promised.counter == 1 &&
	    ri.promised.node == id && ri.last_epoch.counter == 0 && strcmp(ri.holder_addr, "h1:7400") == 0);
	CHECK(memcmp(ri.vol_uuid, uuid, 16) == 0);

	/* nobody but a replica handle writes it */
	ce_vol *plain, *h;
	uint8_t b[BS];
	block_of(b, 1, 0);
	OK(ce_vol_open(p, "r", &plain));
	CHECK_ERR(ce_vol_write(plain, b, BS, 0), -EROFS);
	CHECK(ce_errcode() == CE_E_REPLICA_READ_ONLY);
	CHECK_ERR(ce_vol_trim(plain, 0, BS), -EROFS);
	CHECK_ERR(ce_repl_write(plain, ep(1, id), 1, b, BS, 0), -EINVAL);
	ce_vol_close(plain);
	OK(ce_repl_open(p, "r", &h));
	/* the promised epoch has not started */
	CHECK_ERR(ce_repl_write(h, ep(1, id), 1, b, BS, 0), -ESTALE);
	uint8_t mb[CE_REPL_MB_SIZE];
	mb_make(mb, ep(1, id), 1, id);
	CHECK_ERR(ce_repl_start_epoch(p, "r", ep(1, id), 5, mb), -EPROTO);     /* base != applied */
	CHECK_ERR(ce_repl_start_epoch(p, "r", ep(2, id), 0, mb), -ESTALE);     /* not promised */
	uint8_t bad[CE_REPL_MB_SIZE];
	mb_make(bad, ep(1, id), 1, id + 1);
	CHECK_ERR(ce_repl_start_epoch(p, "r", ep(1, id), 0, bad), -EINVAL);    /* does not name it */
	OK(ce_repl_start_epoch(p, "r", ep(1, id), 0, mb));
	CHECK_ERR(ce_repl_start_epoch(p, "r", ep(1, id), 0, mb), -EPROTO); /* started already */
	for (uint64_t s = 1; s <= 10; s++) {
		block_of(b, s, s);
		OK(ce_repl_write(h, ep(1, id), s, b, BS, s * BS));
	}
	CHECK_ERR(ce_repl_write(h, ep(1, id), 12, b, BS, 0), -EPROTO); /* gap */
	CHECK_ERR(ce_repl_write(h, ep(1, id), 10, b, BS, 0), -EPROTO); /* duplicate */
	CHECK_ERR(ce_repl_write(h, ep(1, id), 11, b, BS, 8ull << 20), -EINVAL); /* outside: not applied */
	CHECK(ce_repl_applied(h) == 10);
	OK(ce_repl_trim(h, ep(1, id), 11, 2 * BS, BS));
	OK(ce_repl_zero(h, ep(1, id), 12, 3 * BS, BS));
	uint64_t d = 0;
	OK(ce_repl_flush(h, &d));
	CHECK(d == 12);

	/* a newer epoch is promised: the older one's frames are refused from now on */
	uint64_t other = id ^ 0x5555;
	CHECK_ERR(ce_repl_promise(p, "r", ep(0, other), "h2:7400", NULL, NULL), -ESTALE);
	OK(ce_repl_promise(p, "r", ep(3, other), "h2:7400", NULL, &ri));
	CHECK(ri.promised.counter == 3 && ri.promised.node == other && ri.applied == 12);
	OK(ce_repl_promise(p, "r", ep(3, other), "h2:7400", NULL, &ri)); /* a repeat: answered again */
	block_of(b, 13, 13);
	CHECK_ERR(ce_repl_write(h, ep(1, id), 13, b, BS, 13 * BS), -ESTALE);
	CHECK_ERR(ce_repl_promise(p, "r", ep(2, id), "h1:7400", NULL, &ri), -ESTALE); /* older */
	CHECK(ri.promised.counter == 3 && strcmp(ri.holder_addr, "h2:7400") == 0);
	/* resume mode: the old controller expecting its epoch 1 finds 3 promised elsewhere */
	ce_epoch expect = ep(1, id);
	CHECK_ERR(ce_repl_promise(p, "r", ep(4, id), "h1:7400", &expect, &ri), -ESTALE);
	CHECK_ERR(ce_repl_write(h, ep(3, other), 13, b, BS, 13 * BS), -ESTALE); /* promised, not started */
	mb_make(mb, ep(3, other), 2, id);
	OK(ce_repl_start_epoch(p, "r", ep(3, other), 12, mb));
	OK(ce_repl_write(h, ep(3, other), 13, b, BS, 13 * BS));
	/* membership: newer versions of the promised epoch only */
	mb_make(mb, ep(3, other), 3, id);
	OK(ce_repl_membership(p, "r", ep(3, other), mb));
	OK(ce_repl_membership(p, "r", ep(3, other), mb)); /* the same record again */
	mb_make(mb, ep(3, other), 2, id);
	CHECK_ERR(ce_repl_membership(p, "r", ep(3, other), mb), -ESTALE);
	mb_make(mb, ep(1, id), 9, id);
	CHECK_ERR(ce_repl_membership(p, "r", ep(1, id), mb), -ESTALE);
	OK(ce_repl_set_flags(p, "r", 1, 0));
	OK(ce_repl_flush(h, &d));
	CHECK(d == 13);
	ce_vol_close(h);

	p = reimport(p, path);
	OK(ce_repl_info_get(p, "r", &ri));
	CHECK(ri.applied == 13 && ri.durable == 13 && ri.promised.counter == 3 && ri.promised.node == other);
	CHECK(ri.last_epoch.counter == 3 && ri.hist_count == 2 && ri.flags == 1 && ri.hi == 13);
	uint64_t mbv;
	memcpy(&mbv, ri.rec + 256, 8);
	CHECK(mbv == 3);
	/* data and the sequence survived together */
	OK(ce_vol_open(p, "r", &plain));
	uint8_t got[BS], want[BS];
	for (uint64_t s = 1; s <= 13; s++) {
		OK(ce_vol_read(plain, got, BS, s * BS));
		if (s == 2 || s == 3 || s == 11 || s == 12)
			continue;
		block_of(want, s, s);
		CHECK(memcmp(got, want, BS) == 0);
	}
	memset(want, 0, BS);
	OK(ce_vol_read(plain, got, BS, 2 * BS));
	CHECK(memcmp(got, want, BS) == 0);
	OK(ce_vol_read(plain, got, BS, 3 * BS));
	CHECK(memcmp(got, want, BS) == 0);
	ce_vol_close(plain);
	/* the record goes with its volume */
	OK(ce_vol_destroy(p, "r"));
	p = reimport(p, path);
	CHECK(ce_repl_info_get(p, "r", &ri) == -ENOENT);
	printf("rules: ok\n");
	return p;
}

/* ---- applied commits with the data ---- */

typedef struct crash_run {
	ce_pool *p;
	ce_vol *h;
	ce_epoch e;
	uint64_t nops;          /* apply this many, then stop */
	_Atomic int stop;
} crash_run;

/* Op s: blocks [first(s), first(s) + n(s)), disjoint from every other op. */
static uint64_t op_n(uint64_t s) { return s % 8 == 0 ? 300 : 1 + s % 3; }
static uint64_t
op_first(uint64_t s)
{
	uint64_t f = 0;
	for (uint64_t k = 1; k < s; k++)
		f += op_n(k);
	return f;
}

static void *
syncer(void *arg)
{
	crash_run *r = arg;
	while (!r->stop)
		(void)ce_pool_sync(r->p);
	return NULL;
}

static ce_pool *
test_crash(ce_pool *p, const char *path, uint64_t seed)
{
	uint8_t uuid[16] = { 7 };
	for (int iter = 0; iter < 3; iter++) {
		char name[16];
		snprintf(name, sizeof(name), "c%d", iter);
		ce_vol_props pr = { 0 };
		OK(ce_vol_create(p, name, VOLSIZE, &pr));
		ce_vol_info vi;
		OK(ce_vol_info_get(p, name, &vi));
		ce_epoch e = ep(1, vi.guid);
		OK(ce_repl_make(p, name, uuid, e, "h:1"));
		uint8_t mb[CE_REPL_MB_SIZE];
		mb_make(mb, e, 1, vi.guid);
		OK(ce_repl_start_epoch(p, name, e, 0, mb));
		crash_run r = { .p = p, .e = e };
		uint64_t s0 = seed + (uint64_t)iter * 7919u;
		r.nops = 40 + t_rand(&s0) % 120;
		OK(ce_repl_open(p, name, &r.h));
		pthread_t th;
		CHECK(pthread_create(&th, NULL, syncer, &r) == 0);
		uint8_t *buf = malloc(300 * BS);
		uint64_t first = 0;
		for (uint64_t s = 1; s <= r.nops; s++) {
			uint64_t n = op_n(s);
			for (uint64_t k = 0; k < n; k++)
				block_of(buf + k * BS, s, first + k);
			OK(ce_repl_write(r.h, e, s, buf, n * BS, first * BS));
			first += n;
		}
		r.stop = 1;
		pthread_join(th, NULL);
		free(buf);
		ce_vol_close(r.h);
		ce_pool_abandon(p); /* the open txg is lost, as in a crash */
		CHECK(t_debug_check(argv0, path, NULL) == 0);
		OK(ce_pool_import(&path, 1, NULL, &p));
		ce_repl_info ri;
		OK(ce_repl_info_get(p, name, &ri));
		printf("crash %d: %" PRIu64 " ops applied, record says applied %" PRIu64 " hi %" PRIu64
		    " (%u map entries)\n", iter, r.nops, ri.applied, ri.hi, ri.map_count);
		CHECK(ri.applied <= ri.hi && ri.hi <= r.nops);
		ce_vol *v;
		OK(ce_vol_open(p, name, &v));
		uint8_t got[BS], want[BS], zero[BS];
		memset(zero, 0, BS);
		for (uint64_t s = 1; s <= r.nops; s++) {
			uint64_t f = op_first(s);
			for (uint64_t k = 0; k < op_n(s); k++) {
				OK(ce_vol_read(v, got, BS, (f + k) * BS));
				block_of(want, s, f + k);
				if (s <= ri.applied)
					CHECK(memcmp(got, want, BS) == 0);   /* applied: wholly there */
				else if (s > ri.hi)
					CHECK(memcmp(got, zero, BS) == 0);   /* beyond hi: nothing of it */
				else
					CHECK(memcmp(got, want, BS) == 0 || memcmp(got, zero, BS) == 0);
			}
		}
		ce_vol_close(v);
		OK(ce_vol_destroy(p, name));
	}
	printf("crash: ok\n");
	return p;
}

static ce_pool *
test_map(ce_pool *p, const char *path)
{
	uint8_t uuid[16] = { 9 };
	ce_vol_props pr = { 0 };
	OK(ce_vol_create(p, "m", 4ull << 20, &pr));
	ce_vol_info vi;
	OK(ce_vol_info_get(p, "m", &vi));
	ce_epoch e = ep(1, vi.guid);
	OK(ce_repl_make(p, "m", uuid, e, "h:1"));
	uint8_t mb[CE_REPL_MB_SIZE];
	mb_make(mb, e, 1, vi.guid);
	OK(ce_repl_start_epoch(p, "m", e, 0, mb));
	ce_vol *h;
	OK(ce_repl_open(p, "m", &h));
	uint8_t b[BS];
	uint64_t d;
	for (uint64_t s = 1; s <= 300; s++) {
		block_of(b, s, s % 64);
		OK(ce_repl_write(h, e, s, b, BS, (s % 64) * BS));
		OK(ce_repl_flush(h, &d)); /* one txg per operation: one map entry each */
		CHECK(d == s);
	}
	ce_vol_close(h);
	ce_repl_info ri;
	OK(ce_repl_info_get(p, "m", &ri));
	printf("map: %u entries after 300 txgs\n", ri.map_count);
	CHECK(ri.map_count >= 56 && ri.map_count <= 112);
	p = reimport(p, path);
	OK(ce_repl_info_get(p, "m", &ri));
	CHECK(ri.applied == 300 && ri.hi == 300);
	OK(ce_vol_destroy(p, "m"));
	return p;
}

/* ---- upgrade from format 5, then to format 9 ---- */

typedef struct span {
	uint64_t bytes, off0;
	size_t n;
} span;

static int
span_add(void *arg, uint64_t off, uint64_t len, int kind)
{
	span *sp = arg;
	if (sp->n++ == 0)
		sp->off0 = off;
	sp->bytes += len;
	return 0;
}

/* Does a listing from seq base cover the whole volume (the rollback entry (0, s) with s > base)? */
static int
lists_all(ce_vol *h, uint64_t base, uint64_t size)
{
	span sp = { 0, 0, 0 };
	OK(ce_rebuild_scan(h, base, 0, 0, span_add, &sp));
	return sp.n == 1 && sp.off0 == 0 && sp.bytes == size;
}

/* Every uberblock in the first label's ring says at most version 8 (on-disk-format.md 1.2); returns how many. */
static int
ubs_readable_by_v8(const char *path, uint32_t *newest)
{
	FILE *f = fopen(path, "rb");
	CHECK(f != NULL);
	int n = 0;
	uint64_t best = 0;
	for (unsigned s = 0; s < CE_UB_SLOTS; s++) {
		uberblock_phys ub;
		CHECK(fseek(f, (long)(CE_UB_RING_OFF + (uint64_t)s * CE_UB_SIZE), SEEK_SET) == 0);
		CHECK(fread(&ub, sizeof(ub), 1, f) == 1);
		if (ub.ub_magic != UB_MAGIC)
			continue;
		CHECK(ub.ub_version >= 1 && ub.ub_version <= FMT_V_ISCSI);
		if (ub.ub_txg > best) {
			best = ub.ub_txg;
			*newest = ub.ub_version;
		}
		n++;
	}
	fclose(f);
	return n;
}

/* A sync task (test only): the MOS header of this txg says a version from the future. */
static int
future_task(ce_pool *p, void *arg, uint64_t t)
{
	(void)arg, (void)t;
	mos_hdr(p)->mh_version = CE_FORMAT_VERSION + 1;
	mos_mark_dirty(p, 0, CE_META_BLOCK);
	return 0;
}

static void
test_rollmap(ce_pool *p, const char *path, const char *vol)
{
	ce_vol_info vi;
	OK(ce_vol_info_get(p, vol, &vi));
	ce_epoch e = ep(1, vi.guid);
	uint8_t mb[CE_REPL_MB_SIZE];
	mb_make(mb, e, 1, vi.guid);
	OK(ce_repl_start_epoch(p, vol, e, 0, mb));
	ce_vol *h;
	OK(ce_repl_open(p, vol, &h));
	int op_err = 0;
	OK(ce_repl_snap(h, e, 1, CE_REPL_SNAP_CREATE, "r9", NULL, &op_err));
	CHECK(op_err == 0);
	uint8_t b[BS];
	block_of(b, 2, 3);
	OK(ce_repl_write(h, e, 2, b, BS, 3 * BS));
	uint64_t d;
	OK(ce_repl_flush(h, &d));
	CHECK(d == 2);
	CHECK(mos_hdr(p)->mh_version == FMT_V_REPL); /* a replica, no rollback yet: still 6 */
	CHECK(!lists_all(h, 1, vi.size));
	/* a crash right after the rollback's apply: the entry and the version 9 commit together, or neither */
	OK(ce_repl_volop(h, e, 3, CE_REPL_ROLLBACK, "r9", 0, 0, &op_err));
	CHECK(op_err == 0);
	ce_vol_close(h);
	ce_pool_abandon(p);
	CHECK(t_debug_check(argv0, path, NULL) == 0); /* invariant 10: no rollback entry under version 6 */
	OK(ce_pool_import(&path, 1, NULL, &p));
	OK(ce_repl_open(p, vol, &h));
	ce_repl_info ri;
	OK(ce_repl_info_get(p, vol, &ri));
	uint32_t v_after = mos_hdr(p)->mh_version; /* as committed: the scan below commits a txg */
	int has = lists_all(h, 1, vi.size);
	CHECK(v_after == (has ? FMT_V_ROLLMAP : FMT_V_REPL));
	CHECK(ri.applied == 2 || (ri.applied == 3 && has));
	if (ri.applied == 2) { /* the rollback's end was lost (its txg may have committed the entry): again */
		OK(ce_repl_volop(h, e, 3, CE_REPL_ROLLBACK, "r9", 0, 0, &op_err));
		CHECK(op_err == 0);
	}
	printf("rollback then crash: applied %" PRIu64 ", format %u\n", ri.applied, v_after);
	OK(ce_repl_flush(h, &d));
	CHECK(d == 3);
	CHECK(mos_hdr(p)->mh_version == FMT_V_ROLLMAP); /* the rollback's txg committed: 9 */
	CHECK(lists_all(h, 1, vi.size) && !lists_all(h, 3, vi.size));
	ce_vol_close(h);
	OK(ce_pool_export(p));
	CHECK(t_debug_check(argv0, path, NULL) == 0);
	uint32_t newest = 0;
	CHECK(ubs_readable_by_v8(path, &newest) > 0 && newest == CE_UB_VERSION);
	OK(ce_pool_import(&path, 1, NULL, &p));
	CHECK(mos_hdr(p)->mh_version == FMT_V_ROLLMAP); /* durable */
	OK(ce_repl_open(p, vol, &h));
	CHECK(lists_all(h, 1, vi.size));
	ce_vol_close(h);
	OK(ce_pool_export(p));

	/* a pool from the future: a copy whose MOS header says CE_FORMAT_VERSION + 1 */
	const char *copy = t_path("future.vdev");
	char cmd[1200];
	snprintf(cmd, sizeof(cmd), "cp --sparse=always '%s' '%s'", path, copy);
	CHECK(system(cmd) == 0);
	OK(ce_pool_import(&copy, 1, NULL, &p));
	OK(vol_mgmt_begin(p));
	synctask_add(p, future_task, xcalloc(1, 1));
	OK(vol_mgmt_commit(p));
	ce_pool_abandon(p); /* an export would only write the same header again */
	CHECK(ubs_readable_by_v8(copy, &newest) > 0 && newest == CE_UB_VERSION);
	CHECK_ERR(ce_pool_import(&copy, 1, NULL, &p), -ENOTSUP);
	char want[64];
	snprintf(want, sizeof(want), "MOS format version %u is not supported", CE_FORMAT_VERSION + 1);
	CHECK(strstr(ce_errmsg(), want) != NULL);
	printf("format 9 (rollback entry), refusal of %u: ok\n", CE_FORMAT_VERSION + 1);
}

static void
test_upgrade(void)
{
	const char *path = t_path("five0.vdev");
	char cmd[1200];
	snprintf(cmd, sizeof(cmd), "xz -dc tests/fixtures/pool-v5-repl.vdev.xz > '%s'", path);
	if (system(cmd) != 0) {
		printf("upgrade: SKIP (cannot decompress tests/fixtures/pool-v5-repl.vdev.xz: run from the top)\n");
		return;
	}
	ce_pool *p;
	OK(ce_pool_import(&path, 1, NULL, &p));
	ce_vol *v;
	uint8_t got[65536], want[65536];
	OK(ce_vol_open(p, "v", &v));
	OK(ce_vol_read(v, got, 4096, 0));
	memset(want, 0xee, 4096);
	CHECK(memcmp(got, want, 4096) == 0); /* the log record replayed */
	for (int i = 1; i < 64; i++) {
		OK(ce_vol_read(v, got, 65536, (uint64_t)i * 65536));
		memset(want, i + 1, 65536);
		CHECK(memcmp(got, want, 65536) == 0);
	}
	ce_vol_close(v);
	OK(ce_vol_open(p, "v@s1", &v));
	OK(ce_vol_read(v, got, 4096, 0));
	memset(want, 1, 4096);
	CHECK(memcmp(got, want, 4096) == 0);
	ce_vol_close(v);
	ce_hold_info *hi;
	size_t nh;
	OK(ce_snap_holds(p, NULL, &hi, &nh));
	CHECK(nh == 1 && strcmp(hi[0].tag, "keep") == 0);
	free(hi);
	CHECK(mos_hdr(p)->mh_version == 5);
	ce_vol_info vi;
	OK(ce_vol_info_get(p, "w", &vi));
	uint8_t uuid[16] = { 5 };
	OK(ce_repl_make(p, "w", uuid, ep(1, vi.guid), "h:1"));
	OK(ce_pool_export(p));
	CHECK(t_debug_check(argv0, path, NULL) == 0);
	OK(ce_pool_import(&path, 1, NULL, &p));
	ce_repl_info ri;
	OK(ce_repl_info_get(p, "w", &ri));
	CHECK(ri.promised.node == vi.guid && ri.state == 1);
	CHECK(!ce_vol_is_replica(p, "v"));
	CHECK(mos_hdr(p)->mh_version == FMT_V_REPL); /* the first replica record made it version 6 */
	OK(ce_pool_export(p));
	printf("upgrade from format 5: ok\n");
	OK(ce_pool_import(&path, 1, NULL, &p));
	test_rollmap(p, path, "w");
}

int
main(int argc, char **argv)
{
	(void)argc;
	argv0 = argv[0];
	uint64_t seed = getenv("CASK_SEED") ? strtoull(getenv("CASK_SEED"), NULL, 0) : (uint64_t)time(NULL);
	printf("seed %" PRIu64 "\n", seed);
	t_tmpdir();
	const char *path = t_path("pool");
	ce_pool_opts o = { 0 };
	o.vdev_size = 512ull << 20;
	ce_pool *p;
	OK(ce_pool_create("rp", &path, 1, &o, &p));
	p = test_rules(p, path);
	p = test_crash(p, path, seed);
	p = test_map(p, path);
	OK(ce_pool_export(p));
	CHECK(t_debug_check(argv0, path, NULL) == 0);
	test_upgrade();
	printf("ok\n");
	return 0;
}
