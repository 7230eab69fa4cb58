/*
 * test_cache -- the block cache stays within its budget, evicts least
 * recently used first, and never serves a block whose checksum differs
 * from the pointer asked for (reused address or rewrite in place).
 */
#include "t.h"
#include "cache.h"

static bp_phys
mkbp(uint64_t off, uint8_t ck)
{
	bp_phys bp;
	memset(&bp, 0, sizeof(bp));
	bp.bp_offset = 524288 + off * 4096;
	bp.bp_lsize = 4096;
	bp.bp_psize = 4096;
	bp.bp_type = BP_DATA;
	bp.bp_cksum[0] = ck;
	return bp;
}

int
main(void)
{
	cache c;
	cache_init(&c, 64 * 4096);
	uint8_t data[4096], out[4096];
	for (int i = 0; i < 1000; i++) {
		bp_phys bp = mkbp((uint64_t)i, 1);
		memset(data, i & 0xff, sizeof(data));
		cache_put(&c, &bp, data);
		CHECK(c.bytes <= c.max);
	}
	/* the newest entries are there, the oldest were evicted */
	bp_phys last = mkbp(999, 1), first = mkbp(0, 1);
	CHECK(cache_get(&c, &last, out, 0, 4096) == 1);
	CHECK(out[0] == (999 & 0xff));
	CHECK(cache_get(&c, &first, out, 0, 4096) == 0);
	/* a lookup with another checksum misses and drops the stale entry */
	bp_phys other = mkbp(999, 2);
	CHECK(cache_get(&c, &other, out, 0, 4096) == 0);
	CHECK(cache_get(&c, &last, out, 0, 4096) == 0);
	/* partial copies */
	bp_phys bp = mkbp(5000, 3);
	for (int i = 0; i < 4096; i++)
		data[i] = (uint8_t)i;
	cache_put(&c, &bp, data);
	CHECK(cache_get(&c, &bp, out, 100, 10) == 1);
	CHECK(out[0] == 100 && out[9] == 109);
	/* LRU: touching an entry keeps it alive */
	for (int i = 0; i < 200; i++) {
		bp_phys b = mkbp(10000 + (uint64_t)i, 1);
		cache_put(&c, &b, data);
		CHECK(cache_get(&c, &bp, out, 0, 1) == 1);
	}
	/* an entry larger than the budget is not cached */
	cache small;
	cache_init(&small, 1024);
	cache_put(&small, &bp, data);
	CHECK(small.bytes == 0);
	cache_fini(&small);
	cache_fini(&c);
	printf("ok\n");
	return 0;
}
