/*
 * test_ilog -- the intent log, through the engine API and ce_pool_abandon
 * (which drops the open txg as a crash does, while every write the log
 * made reached the file):
 *
 *   1. Rounds of random writes, trims and write-zeroes of 4K..64K (those of
 *      32K and more are logged in place: data in free sectors, pointed to), each
 *      followed by a flush, many more than the log ring holds (so it fills,
 *      falls back to txg commits, and wraps); every round ends with a few
 *      unflushed writes and an abandon. Each import must replay the log:
 *      every flushed change reads back, unflushed ones read old or new.
 *   2. Group commit: 8 threads doing FUA writes share log commits; all of
 *      them survive an abandon.
 *   3. A damaged log block: import stops the replay there, still imports,
 *      and no block reads anything that was never written; the damage is
 *      reported (issue 17 item 9: it used to pass for the chain's end,
 *      silently): the block, the intact blocks and records after it, a
 *      checksum error, until ce_pool_clear; so is in-place data of a logged
 *      write that fails its checksum, and a damaged last block (which a
 *      torn unacknowledged write also leaves) is reported as uncertain.
 *   4. Per-volume commits: a FLUSH on one volume does not log another
 *      volume's unflushed writes; a later FLUSH of that volume does.
 *   5. A pool of three vdevs: in-place data lands on every vdev (each one
 *      written is flushed), and everything flushed survives an abandon.
 *   6. cask-debug check is clean after each import (the log region is
 *      accounted as owned space).
 */
#include "t.h"
#include "pool_impl.h"

#include <pthread.h>

#define BS 4096u
#define NBLK 1024u /* 4 MiB volume */

static const char *path;
static ce_pool_opts o;
/* Per block: the durable generation and the newest one written (0 = zeros). */
static uint32_t durable_gen[NBLK], newest_gen[NBLK];
static uint32_t gen_seq;
/* Every generation ever written to a block, so unflushed values can be recognised. */
static uint32_t *history[NBLK];
static size_t nhistory[NBLK];

static void
fill_gen(uint8_t *b, uint32_t blk, uint32_t gen)
{
	t_fill(b, BS, ((uint64_t)blk << 32) | gen);
	memcpy(b, &gen, 4);
	memcpy(b + 4, &blk, 4);
}

static void
record(uint32_t blk, uint32_t gen)
{
	history[blk] = realloc(history[blk], (nhistory[blk] + 1) * sizeof(uint32_t));
	history[blk][nhistory[blk]++] = gen;
	newest_gen[blk] = gen;
}

static uint32_t seen_gen[NBLK]; /* what check_block read */

/* 0 when block blk holds its durable generation or one written after it. */
static int
check_block(ce_vol *v, uint32_t blk)
{
	uint8_t got[BS], want[BS];
	OK(ce_vol_read(v, got, BS, (uint64_t)blk * BS));
	uint32_t gen;
	memcpy(&gen, got, 4);
	static const uint8_t zero[BS];
	int is_zero = memcmp(got, zero, BS) == 0;
	if (is_zero)
		gen = 0;
	else {
		fill_gen(want, blk, gen);
		if (memcmp(got, want, BS) != 0) {
			printf("block %u: data that was never written\n", blk);
			return 1;
		}
	}
	seen_gen[blk] = gen;
	/* allowed: durable_gen, or anything recorded after it */
	size_t i = 0;
	if (durable_gen[blk] != 0 || nhistory[blk] > 0) {
		for (i = 0; i < nhistory[blk]; i++)
			if (history[blk][i] == durable_gen[blk])
				break;
	}
	if (gen == durable_gen[blk])
		return 0;
	for (size_t k = (durable_gen[blk] == 0 ? 0 : i); k < nhistory[blk]; k++)
		if (history[blk][k] == gen)
			return 0;
	printf("block %u: reads generation %u, durable is %u\n", blk, gen, durable_gen[blk]);
	return 1;
}

/* After a flush: what was written is durable; the history before it is moot. */
static void
all_durable(void)
{
	for (uint32_t b = 0; b < NBLK; b++) {
		durable_gen[b] = newest_gen[b];
		nhistory[b] = 0;
		record(b, newest_gen[b]);
	}
}

static void
write_range(ce_vol *v, uint32_t blk, uint32_t n, int kind)
{
	uint8_t *buf = malloc((size_t)n * BS);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t g = kind == 0 ? ++gen_seq : 0;
		if (kind == 0)
			fill_gen(buf + (size_t)i * BS, blk + i, g);
		record(blk + i, g);
	}
	if (kind == 0)
		OK(ce_vol_write(v, buf, (size_t)n * BS, (uint64_t)blk * BS));
	else if (kind == 1)
		OK(ce_vol_trim(v, (uint64_t)blk * BS, (uint64_t)n * BS));
	else
		OK(ce_vol_write_zeroes(v, (uint64_t)blk * BS, (uint64_t)n * BS));
	free(buf);
}

static void
verify_all(ce_pool *p, const char *when)
{
	ce_vol *v;
	OK(ce_vol_open(p, "v", &v));
	int bad = 0;
	for (uint32_t b = 0; b < NBLK; b++)
		bad += check_block(v, b);
	ce_vol_close(v);
	if (bad)
		printf("%s: %d bad blocks\n", when, bad);
	CHECK(bad == 0);
}

typedef struct thr {
	ce_vol *v;
	int id;
	int n;
} thr;

static void *
fua_writer(void *arg)
{
	thr *t = arg;
	uint8_t buf[BS];
	for (int i = 0; i < t->n; i++) {
		uint32_t blk = (uint32_t)t->id * 64 + (uint32_t)(i % 64);
		fill_gen(buf, blk, 1000000u + (uint32_t)(t->id * 10000 + i));
		OK(ce_vol_write(t->v, buf, BS, (uint64_t)blk * BS));
		OK(ce_vol_flush(t->v));
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	(void)argc;
	t_tmpdir();
	path = t_path("pool");
	o.vdev_size = 64ull << 20;
	ce_pool *p;
	OK(ce_pool_create("lg", &path, 1, &o, &p));
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.compress = CE_COMPRESS_OFF;
	OK(ce_vol_create(p, "v", (uint64_t)NBLK * BS, &pr));
	ce_pool_stat st;
	OK(ce_pool_stat_get(p, &st));
	CHECK(st.log_size >= (1u << 20));
	printf("log region: %" PRIu64 " KiB\n", st.log_size >> 10);
	OK(ce_pool_export(p));
	o.txg_timeout_ms = 60000; /* txgs commit only when the log is full or asked */

	/* 1. rounds of flushed changes, each ended by an abandon */
	uint64_t total_inplace = 0;
	uint64_t s = 12345, total_blocks = 0, total_bytes = 0, total_fallbacks = 0, total_replayed = 0;
	for (int round = 0; round < 6; round++) {
		OK(ce_pool_import(&path, 1, &o, &p));
		OK(ce_pool_stat_get(p, &st));
		total_replayed += st.log_replayed;
		printf("import: %" PRIu64 " log records replayed\n", st.log_replayed);
		verify_all(p, "after import");
		/* what the import shows is the new baseline */
		memcpy(newest_gen, seen_gen, sizeof(seen_gen));
		all_durable();
		ce_vol *v;
		OK(ce_vol_open(p, "v", &v));
		OK(ce_pool_sync(p)); /* start the log's epoch */
		for (int i = 0; i < 150; i++) {
			uint32_t n = 1 + (uint32_t)(t_rand(&s) % 16);
			uint32_t blk = (uint32_t)(t_rand(&s) % (NBLK - n));
			int kind = (int)(t_rand(&s) % 8);
			write_range(v, blk, n, kind < 6 ? 0 : kind - 5);
			OK(ce_vol_flush(v));
			all_durable();
		}
		/* some unflushed writes: they may or may not survive */
		for (int i = 0; i < 5; i++)
			write_range(v, (uint32_t)(t_rand(&s) % NBLK), 1, 0);
		OK(ce_pool_stat_get(p, &st));
		total_blocks += st.log_blocks;
		total_bytes += st.log_bytes;
		total_fallbacks += st.log_fallbacks;
		printf("round %d: %" PRIu64 " group commits, %" PRIu64 " log blocks (%" PRIu64
		    " KiB), %" PRIu64 " KiB written in place, %" PRIu64 " fell back to a txg commit\n",
		    round, st.log_commits, st.log_blocks, st.log_bytes >> 10, st.log_inplace >> 10,
		    st.log_fallbacks);
		total_inplace += st.log_inplace;
		ce_vol_close(v);
		ce_pool_abandon(p);
	}
	/* the ring (1 MiB) held far less than what was logged: it filled and wrapped */
	CHECK(total_bytes > 2 * st.log_size && total_replayed > 0 && total_inplace > 0);
	OK(ce_pool_import(&path, 1, &o, &p));
	verify_all(p, "final import");
	all_durable();
	OK(ce_pool_export(p));
	CHECK(t_debug_check(argv[0], path, NULL) == 0);

	/* 2. group commit from 8 threads */
	OK(ce_pool_import(&path, 1, &o, &p));
	ce_vol *v;
	OK(ce_vol_open(p, "v", &v));
	OK(ce_pool_sync(p));
	ce_pool_stat st0;
	OK(ce_pool_stat_get(p, &st0));
	pthread_t th[8];
	thr ta[8];
	for (int i = 0; i < 8; i++) {
		ta[i] = (thr){ v, i, 100 };
		pthread_create(&th[i], NULL, fua_writer, &ta[i]);
	}
	for (int i = 0; i < 8; i++)
		pthread_join(th[i], NULL);
	OK(ce_pool_stat_get(p, &st));
	uint64_t commits = st.log_commits - st0.log_commits;
	printf("group commit: 800 FUA writes from 8 threads in %" PRIu64 " commits (%" PRIu64
	    " log blocks)\n", commits, st.log_blocks - st0.log_blocks);
	CHECK(commits >= 1 && commits <= 800);
	ce_vol_close(v);
	ce_pool_abandon(p);
	OK(ce_pool_import(&path, 1, &o, &p));
	OK(ce_vol_open(p, "v", &v));
	for (int t = 0; t < 8; t++) {
		for (int i = 100 - 64; i < 100; i++) {
			uint32_t blk = (uint32_t)t * 64 + (uint32_t)(i % 64);
			uint8_t got[BS], want[BS];
			fill_gen(want, blk, 1000000u + (uint32_t)(t * 10000 + i));
			OK(ce_vol_read(v, got, BS, (uint64_t)blk * BS));
			CHECK(memcmp(got, want, BS) == 0);
		}
	}
	printf("group commit: every FUA write survived the abandon\n");

	/* 3. a damaged log block ends the replay; the pool still imports */
	memset(durable_gen, 0, sizeof(durable_gen));
	OK(ce_vol_trim(v, 0, (uint64_t)NBLK * BS));
	OK(ce_pool_sync(p));
	for (uint32_t b = 0; b < NBLK; b++) {
		nhistory[b] = 0;
		durable_gen[b] = newest_gen[b] = 0;
		record(b, 0);
	}
	ce_vol_close(v);
	OK(ce_pool_export(p));
	OK(ce_pool_import(&path, 1, &o, &p));
	OK(ce_vol_open(p, "v", &v));
	write_range(v, 1000, 1, 0);
	OK(ce_pool_sync(p)); /* a commit starts a new epoch: its chain starts at the region's start */
	CHECK(p->ilog.ready && p->ilog.head_off == 0);
	uint64_t base = p->ilog.base;
	for (int i = 0; i < 10; i++) {
		write_range(v, (uint32_t)i * 8, 1, 0);
		OK(ce_vol_flush(v));
	}
	ce_vol_close(v);
	ce_pool_abandon(p);
	/* blocks are 8 KiB (header + one 4K record): damage the 5th */
	{
		FILE *f = fopen(path, "r+b");
		CHECK(f != NULL);
		CHECK(fseek(f, (long)(base + 4 * 8192 + 200), SEEK_SET) == 0);
		int c = fgetc(f);
		CHECK(fseek(f, (long)(base + 4 * 8192 + 200), SEEK_SET) == 0);
		fputc(c ^ 0x5a, f);
		fclose(f);
	}
	OK(ce_pool_import(&path, 1, &o, &p));
	OK(ce_pool_stat_get(p, &st));
	printf("damaged 5th log block: %" PRIu64 " of 10 records replayed\n", st.log_replayed);
	CHECK(st.log_replayed == 4);
	printf("damaged 5th log block: reported as seq %" PRIu64 ", %" PRIu64 " blocks and %" PRIu64
	    " records after it lost, certain %d, %" PRIu64 " checksum errors\n", st.log_damaged_seq,
	    st.log_lost_blocks, st.log_lost_records, st.log_damage_certain, st.cksum_errors);
	CHECK(st.log_damaged_seq != 0 && st.log_lost_blocks == 5 && st.log_lost_records == 5);
	CHECK(st.log_damage_certain == 1 && st.cksum_errors >= 1 && st.log_bad_inplace == 0);
	OK(ce_pool_clear(p)); /* acknowledged */
	OK(ce_pool_stat_get(p, &st));
	CHECK(st.log_damaged_seq == 0 && st.log_lost_blocks == 0 && st.cksum_errors == 0);
	/* the first four are back; the rest read zeros (their old value), never garbage */
	for (int i = 0; i < 4; i++)
		durable_gen[i * 8] = newest_gen[i * 8];
	verify_all(p, "after a damaged log block");
	OK(ce_pool_export(p));
	CHECK(t_debug_check(argv[0], path, NULL) == 0);

	/* 3b. damaged in-place data of a flushed 64 KiB write, then a damaged last block */
	for (int round = 0; round < 2; round++) {
		OK(ce_pool_import(&path, 1, &o, &p));
		OK(ce_vol_open(p, "v", &v));
		OK(ce_pool_sync(p));
		base = p->ilog.base;
		write_range(v, 100, 16, 0); /* 64 KiB: written in place */
		OK(ce_vol_flush(v));
		uint64_t data_off = 0, last_off = 0;
		pthread_mutex_lock(&p->ilog.lock);
		CHECK(p->ilog.fn == 1 && p->ilog.fifo[p->ilog.ffirst % p->ilog.fcap].next == 1);
		data_off = p->ilog.fifo[p->ilog.ffirst % p->ilog.fcap].ext[0].off;
		pthread_mutex_unlock(&p->ilog.lock);
		write_range(v, 200, 1, 0);
		OK(ce_vol_flush(v)); /* a later block: the first had been acknowledged */
		pthread_mutex_lock(&p->ilog.lock);
		CHECK(p->ilog.fn == 2);
		last_off = p->ilog.fifo[(p->ilog.ffirst + 1) % p->ilog.fcap].off;
		pthread_mutex_unlock(&p->ilog.lock);
		ce_vol_close(v);
		ce_pool_abandon(p);
		FILE *f = fopen(path, "r+b");
		CHECK(f != NULL);
		long at = round == 0 ? (long)(data_off + 3000) : (long)(base + last_off + 300);
		CHECK(fseek(f, at, SEEK_SET) == 0);
		int c = fgetc(f);
		CHECK(fseek(f, at, SEEK_SET) == 0);
		fputc(c ^ 0x01, f);
		fclose(f);
		OK(ce_pool_import(&path, 1, &o, &p));
		OK(ce_pool_stat_get(p, &st));
		printf("%s: bad in-place %" PRIu64 " (certain %d), damaged seq %" PRIu64 " (certain %d), %" PRIu64
		    " checksum errors, %" PRIu64 " replayed\n", round == 0 ? "flipped bit in in-place data" :
		    "flipped bit in the last log block", st.log_bad_inplace, st.log_bad_inplace_certain,
		    st.log_damaged_seq, st.log_damage_certain, st.cksum_errors, st.log_replayed);
		if (round == 0) {
			CHECK(st.log_bad_inplace == 1 && st.log_bad_inplace_certain == 1 && st.log_damaged_seq == 0);
			CHECK(st.log_replayed == 1 && st.cksum_errors == 1);
		} else {
			CHECK(st.log_bad_inplace == 0 && st.log_damaged_seq != 0 && st.log_damage_certain == 0);
			CHECK(st.log_lost_blocks == 0 && st.log_replayed == 1 && st.cksum_errors == 1);
		}
		OK(ce_pool_clear(p));
		OK(ce_pool_stat_get(p, &st));
		CHECK(st.log_bad_inplace == 0 && st.log_damaged_seq == 0 && st.cksum_errors == 0);
		OK(ce_pool_export(p));
		CHECK(t_debug_check(argv[0], path, NULL) == 0);
	}

	/* 4. a FLUSH logs only its own volume's changes */
	OK(ce_pool_import(&path, 1, &o, &p));
	ce_vol_props pr2 = CE_VOL_PROPS_DEFAULT;
	pr2.compress = CE_COMPRESS_OFF;
	OK(ce_vol_create(p, "bulk", 8u << 20, &pr2));
	ce_vol *bulk;
	OK(ce_vol_open(p, "bulk", &bulk));
	OK(ce_vol_open(p, "v", &v));
	OK(ce_pool_sync(p));
	uint8_t *big = malloc(1u << 20);
	for (int i = 0; i < 4; i++) {
		t_fill(big, 1u << 20, 900 + (uint64_t)i);
		OK(ce_vol_write(bulk, big, 1u << 20, (uint64_t)i << 20)); /* never flushed (yet) */
	}
	OK(ce_pool_stat_get(p, &st0));
	uint8_t one[BS];
	fill_gen(one, 7, 4242);
	OK(ce_vol_write(v, one, BS, 7 * BS));
	OK(ce_vol_flush(v));
	OK(ce_pool_stat_get(p, &st));
	uint64_t logged = (st.log_bytes - st0.log_bytes) + (st.log_inplace - st0.log_inplace);
	printf("per-volume: a 4K FLUSH on v logged %" PRIu64 " bytes while 4 MiB of 'bulk' waited\n", logged);
	CHECK(logged <= 16384 && st.log_fallbacks == st0.log_fallbacks);
	OK(ce_vol_flush(bulk));
	OK(ce_pool_stat_get(p, &st0));
	logged = (st0.log_bytes - st.log_bytes) + (st0.log_inplace - st.log_inplace);
	printf("per-volume: then a FLUSH on bulk logged %" PRIu64 " KiB\n", logged >> 10);
	CHECK(logged >= (4u << 20));
	ce_vol_close(v);
	ce_vol_close(bulk);
	ce_pool_abandon(p);
	OK(ce_pool_import(&path, 1, &o, &p));
	OK(ce_vol_open(p, "v", &v));
	OK(ce_vol_open(p, "bulk", &bulk));
	uint8_t got[BS];
	OK(ce_vol_read(v, got, BS, 7 * BS));
	CHECK(memcmp(got, one, BS) == 0);
	for (int i = 0; i < 4; i++) {
		t_fill(big, 1u << 20, 900 + (uint64_t)i);
		uint8_t *rb = malloc(1u << 20);
		OK(ce_vol_read(bulk, rb, 1u << 20, (uint64_t)i << 20));
		CHECK(memcmp(rb, big, 1u << 20) == 0);
		free(rb);
	}
	printf("per-volume: both flushed volumes came back after an abandon\n");
	free(big);
	ce_vol_close(v);
	ce_vol_close(bulk);
	OK(ce_pool_export(p));
	CHECK(t_debug_check(argv[0], path, NULL) == 0);

	/* 5. three vdevs */
	{
		const char *mp[3] = { t_path("m0"), t_path("m1"), t_path("m2") };
		ce_pool_opts mo = { 0 };
		mo.vdev_size = 32ull << 20;
		mo.txg_timeout_ms = 60000;
		OK(ce_pool_create("multi", mp, 3, &mo, &p));
		OK(ce_vol_create(p, "m", 32u << 20, &pr2));
		OK(ce_vol_open(p, "m", &v));
		uint8_t *chunk = malloc(128u << 10);
		for (int i = 0; i < 64; i++) {
			t_fill(chunk, 128u << 10, 5000 + (uint64_t)i);
			OK(ce_vol_write(v, chunk, 128u << 10, (uint64_t)i << 17));
			OK(ce_vol_flush(v));
		}
		OK(ce_pool_stat_get(p, &st));
		unsigned used_vdevs = 0;
		pthread_mutex_lock(&p->ilog.lock);
		for (size_t i = 0; i < p->ilog.fn; i++) {
			ilog_lblk *b = &p->ilog.fifo[(p->ilog.ffirst + i) % p->ilog.fcap];
			for (size_t k = 0; k < b->next; k++)
				used_vdevs |= 1u << b->ext[k].vdev;
		}
		pthread_mutex_unlock(&p->ilog.lock);
		printf("three vdevs: %" PRIu64 " KiB written in place (on vdevs mask 0x%x), %" PRIu64
		    " fallbacks\n", st.log_inplace >> 10, used_vdevs, st.log_fallbacks);
		CHECK(st.log_inplace >= (4u << 20) && used_vdevs == 7);
		ce_vol_close(v);
		ce_pool_abandon(p);
		OK(ce_pool_import(mp, 3, &mo, &p));
		OK(ce_pool_stat_get(p, &st));
		OK(ce_vol_open(p, "m", &v));
		uint8_t *rb = malloc(128u << 10);
		for (int i = 0; i < 64; i++) {
			t_fill(chunk, 128u << 10, 5000 + (uint64_t)i);
			OK(ce_vol_read(v, rb, 128u << 10, (uint64_t)i << 17));
			CHECK(memcmp(rb, chunk, 128u << 10) == 0);
		}
		printf("three vdevs: %" PRIu64 " records replayed, all 64 flushed writes back\n",
		    st.log_replayed);
		free(rb);
		free(chunk);
		ce_vol_close(v);
		OK(ce_pool_export(p));
		char all[1600]; /* t_debug_check quotes its path argument: name all three */
		snprintf(all, sizeof(all), "%s' '%s' '%s", mp[0], mp[1], mp[2]);
		CHECK(t_debug_check(argv[0], all, NULL) == 0);
	}
	for (uint32_t b = 0; b < NBLK; b++)
		free(history[b]);
	printf("ok\n");
	return 0;
}
