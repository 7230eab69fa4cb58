/*
 * test_memory_bounds -- the block cache never holds more than its
 * configured size, and dirty data never grows past dirty_max (plus the
 * one write chunk each writer may have in flight: the throttle runs
 * before a chunk enters its txg), under random reads, a sequential scan,
 * and concurrent bulk writers. A sampler thread watches ce_pool_stat.
 */
#include <pthread.h>

#include "t.h"

#define VOLSIZE (64ull << 20)
#define CACHE (1ull << 20)
#define DIRTY (2ull << 20)
#define CHUNK_MAX (256ull * 4096) /* one write chunk of 256 blocks */
#define NWRITERS 3

static ce_pool *pool;
static volatile int done;
static uint64_t max_cache, max_dirty, samples;

static void *
sampler(void *arg)
{
	(void)arg;
	while (!done) {
		ce_pool_stat st;
		OK(ce_pool_stat_get(pool, &st));
		if (st.cache_bytes > max_cache)
			max_cache = st.cache_bytes;
		if (st.dirty_bytes > max_dirty)
			max_dirty = st.dirty_bytes;
		samples++;
		usleep(200);
	}
	return NULL;
}

static void *
writer(void *arg)
{
	ce_vol *v = arg;
	uint8_t *buf = malloc(4 << 20);
	t_fill(buf, 4 << 20, 3);
	for (uint64_t off = 0; off < VOLSIZE; off += 4 << 20)
		OK(ce_vol_write(v, buf, 4 << 20, off));
	free(buf);
	return NULL;
}

int
main(void)
{
	t_tmpdir();
	const char *path = t_path("pool");
	ce_pool_opts o = { 0 };
	o.vdev_size = 512ull << 20;
	o.cache_bytes = CACHE;
	o.dirty_max = DIRTY;
	OK(ce_pool_create("mem", &path, 1, &o, &pool));
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.compress = CE_COMPRESS_OFF;
	char name[16];
	ce_vol *v[NWRITERS];
	for (int i = 0; i < NWRITERS; i++) {
		snprintf(name, sizeof(name), "v%d", i);
		OK(ce_vol_create(pool, name, VOLSIZE, &pr));
		OK(ce_vol_open(pool, name, &v[i]));
	}
	pthread_t s;
	pthread_create(&s, NULL, sampler, NULL);

	/* concurrent bulk writers against a small dirty limit */
	pthread_t w[NWRITERS];
	for (int i = 0; i < NWRITERS; i++)
		pthread_create(&w[i], NULL, writer, v[i]);
	for (int i = 0; i < NWRITERS; i++)
		pthread_join(w[i], NULL);
	OK(ce_pool_sync(pool));
	/* random small reads (these fill the cache) and a sequential scan */
	uint8_t *buf = malloc(1 << 20);
	uint64_t seed = 9;
	for (int i = 0; i < 20000; i++)
		OK(ce_vol_read(v[i % NWRITERS], buf, 4096, (t_rand(&seed) % (VOLSIZE / 4096)) * 4096));
	for (uint64_t off = 0; off < VOLSIZE; off += 1 << 20)
		OK(ce_vol_read(v[0], buf, 1 << 20, off));
	done = 1;
	pthread_join(s, NULL);
	ce_pool_stat st;
	OK(ce_pool_stat_get(pool, &st));
	printf("%" PRIu64 " samples: cache max %" PRIu64 " KiB (limit %llu), dirty max %" PRIu64
	    " KiB (limit %llu + %d x %llu in flight)\n", samples, max_cache >> 10, CACHE >> 10, max_dirty >> 10,
	    DIRTY >> 10, NWRITERS, CHUNK_MAX >> 10);
	CHECK(samples > 10);
	CHECK(max_cache <= CACHE);
	CHECK(max_cache > CACHE / 2); /* the reads did use the cache */
	CHECK(max_dirty <= DIRTY + NWRITERS * CHUNK_MAX);
	CHECK(st.synced_txg > 10);    /* the writers were throttled into many txgs */
	for (int i = 0; i < NWRITERS; i++)
		ce_vol_close(v[i]);
	free(buf);
	OK(ce_pool_export(pool));
	printf("ok\n");
	return 0;
}
