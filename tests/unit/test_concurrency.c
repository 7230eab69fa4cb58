/*
 * test_concurrency -- many threads on one volume while txgs sync: each
 * writer owns disjoint 512-byte slices of shared 16K blocks (so partial
 * writes to one block race), readers check that every slice always holds
 * one of its writer's values, and the final contents equal each
 * writer's last write, before and after export/import. A small
 * dirty_max forces the throttle; a small txg timeout many syncs.
 *
 * It caught: a partial write that created a block's entry in a quiescing
 * txg copied the whole block into the newer txg's copy, clobbering
 * another writer's bytes there (vol.c put_block, invariant 2).
 */
#include <pthread.h>
#include <stdatomic.h>

#include "t.h"

#define NW 4
#define SLICE 512
#define NBLK 64
#define BSZ 16384
#define ITERS 3000

static ce_vol *vol;
static ce_pool *pool;
static uint32_t last[NW][NBLK * BSZ / SLICE / NW];
static atomic_int stop_readers; /* read by the reader threads while main sets it */

/* Slice s (global index) belongs to writer s % NW. */
static void
slice_fill(uint8_t *b, uint64_t s, uint32_t gen)
{
	for (int i = 0; i < SLICE; i += 8) {
		uint64_t x = (s << 32) | gen;
		memcpy(b + i, &x, 8);
	}
}

static void *
writer(void *arg)
{
	int w = (int)(intptr_t)arg;
	uint64_t seed = (uint64_t)w + 11;
	uint8_t b[SLICE];
	uint64_t nslices = NBLK * BSZ / SLICE / NW;
	for (uint32_t gen = 1; gen <= ITERS; gen++) {
		uint64_t k = t_rand(&seed) % nslices;
		uint64_t s = k * NW + (uint64_t)w;
		slice_fill(b, s, gen);
		OK(ce_vol_write(vol, b, SLICE, s * SLICE));
		last[w][k] = gen;
		if (gen % 500 == 0)
			OK(ce_pool_sync(pool));
	}
	return NULL;
}

static void *
reader(void *arg)
{
	(void)arg;
	uint8_t *buf = malloc(NBLK * BSZ);
	while (!stop_readers) {
		OK(ce_vol_read(vol, buf, NBLK * BSZ, 0));
		for (uint64_t s = 0; s < NBLK * BSZ / SLICE; s++) {
			uint64_t x;
			memcpy(&x, buf + s * SLICE, 8);
			CHECK(x == 0 || (x >> 32) == s);
			for (int i = 8; i < SLICE; i += 8)
				CHECK(memcmp(buf + s * SLICE + i, &x, 8) == 0);
		}
	}
	free(buf);
	return NULL;
}

static void
verify_final(void)
{
	uint8_t *buf = malloc(NBLK * BSZ), want[SLICE];
	OK(ce_vol_read(vol, buf, NBLK * BSZ, 0));
	for (uint64_t s = 0; s < NBLK * BSZ / SLICE; s++) {
		uint32_t gen = last[s % NW][s / NW];
		if (gen == 0)
			memset(want, 0, SLICE);
		else
			slice_fill(want, s, gen);
		CHECK(memcmp(buf + s * SLICE, want, SLICE) == 0);
	}
	free(buf);
}

int
main(void)
{
	t_tmpdir();
	const char *path = t_path("pool");
	ce_pool_opts o = { 0 };
	o.vdev_size = 64ull << 20;
	o.txg_timeout_ms = 10;
	o.dirty_max = 256 << 10;
	OK(ce_pool_create("conc", &path, 1, &o, &pool));
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.volblocksize = BSZ;
	OK(ce_vol_create(pool, "v", NBLK * BSZ, &pr));
	OK(ce_vol_open(pool, "v", &vol));
	pthread_t w[NW], r[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&r[i], NULL, reader, NULL);
	for (int i = 0; i < NW; i++)
		pthread_create(&w[i], NULL, writer, (void *)(intptr_t)i);
	for (int i = 0; i < NW; i++)
		pthread_join(w[i], NULL);
	stop_readers = 1;
	for (int i = 0; i < 2; i++)
		pthread_join(r[i], NULL);
	verify_final();
	ce_pool_stat st;
	OK(ce_pool_stat_get(pool, &st));
	printf("%" PRIu64 " txgs committed\n", st.synced_txg);
	CHECK(st.synced_txg > 10);
	ce_vol_close(vol);
	OK(ce_pool_export(pool));
	OK(ce_pool_import(&path, 1, &o, &pool));
	OK(ce_vol_open(pool, "v", &vol));
	verify_final();
	ce_vol_close(vol);
	OK(ce_pool_export(pool));
	printf("ok\n");
	return 0;
}
