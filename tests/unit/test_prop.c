/*
 * test_prop -- volume properties by name (lib/engine/prop.c), the one
 * parser caskd and the engine share: every accepted value and alias of
 * ce_vol_props_parse, the names mapping back (ce_*_name), bad values and
 * unknown properties refused with -EINVAL and nothing changed, and the
 * same names through ce_vol_set / ce_vol_inherit on a real volume.
 */
#include "t.h"

static void
parses(const char *prop, const char *value, ce_vol_props *pr)
{
	if (ce_vol_props_parse(pr, prop, value) != 0) {
		fprintf(stderr, "FAIL: %s=%s: %s\n", prop, value, ce_errmsg());
		exit(1);
	}
}

static void
refused(const char *prop, const char *value, const char *why)
{
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT, before = CE_VOL_PROPS_DEFAULT;
	CHECK_ERR(ce_vol_props_parse(&pr, prop, value), -EINVAL);
	CHECK(ce_errcode() == CE_E_INVALID_ARGUMENT);
	CHECK(strstr(ce_errmsg(), why) != NULL);
	CHECK(memcmp(&pr, &before, sizeof(pr)) == 0);
}

int
main(void)
{
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	static const char *comp[] = { "off", "lz4", "zstd" };
	for (int i = 0; i < 3; i++) {
		parses("compression", comp[i], &pr);
		CHECK(strcmp(ce_compress_name(pr.compress), comp[i]) == 0);
	}
	parses("compress", "on", &pr);
	CHECK(pr.compress == CE_COMPRESS_LZ4);
	static const char *ck[] = { "xxh128", "sha256" };
	for (int i = 0; i < 2; i++) {
		parses("checksum", ck[i], &pr);
		CHECK(strcmp(ce_checksum_name(pr.checksum), ck[i]) == 0);
	}
	parses("checksum", "on", &pr);
	CHECK(pr.checksum == CE_CHECKSUM_XXH128);
	static const char *sy[] = { "standard", "always", "disabled" };
	for (int i = 0; i < 3; i++) {
		parses("sync", sy[i], &pr);
		CHECK(strcmp(ce_sync_name(pr.sync), sy[i]) == 0);
	}
	parses("volblocksize", "16K", &pr);
	CHECK(pr.volblocksize == 16384);
	parses("volblocksize", "8192", &pr);
	CHECK(pr.volblocksize == 8192);
	refused("compression", "gzip", "bad compression 'gzip' (off, lz4, zstd)");
	refused("checksum", "md5", "bad checksum");
	refused("sync", "sometimes", "bad sync");
	refused("sync", NULL, "a value is required");
	refused("volblocksize", "big", "bad volblocksize");
	refused("volblocksize", NULL, "bad volblocksize");
	refused("color", "red", "unknown property 'color'");
	refused("size", "1G", "unknown property");
	refused(NULL, "x", "unknown property");

	/* the same parser behind ce_vol_set and ce_vol_inherit */
	t_tmpdir();
	const char *path = t_path("pool");
	ce_pool_opts o = { 0 };
	o.vdev_size = 64ull << 20;
	ce_pool *p;
	OK(ce_pool_create("props", &path, 1, &o, &p));
	ce_vol_props vp = CE_VOL_PROPS_DEFAULT;
	parses("compression", "zstd", &vp);
	parses("volblocksize", "8K", &vp);
	OK(ce_vol_create(p, "v", 8 << 20, &vp));
	ce_vol_info vi;
	OK(ce_vol_info_get(p, "v", &vi));
	CHECK(vi.compress == CE_COMPRESS_ZSTD && vi.volblocksize == 8192);
	OK(ce_vol_set(p, "v", "sync", "always"));
	CHECK_ERR(ce_vol_set(p, "v", "sync", "sometimes"), -EINVAL);
	CHECK_ERR(ce_vol_set(p, "v", "volblocksize", "4K"), -EINVAL);
	CHECK(strstr(ce_errmsg(), "fixed when a volume is created") != NULL);
	OK(ce_vol_info_get(p, "v", &vi));
	CHECK(vi.sync == CE_SYNC_ALWAYS && (vi.local_props & CE_PROP_SYNC));
	OK(ce_vol_inherit(p, "v", "sync"));
	OK(ce_vol_inherit(p, "v", "compress"));
	OK(ce_vol_info_get(p, "v", &vi));
	CHECK(vi.sync == CE_SYNC_STANDARD && vi.compress == CE_COMPRESS_LZ4 && vi.local_props == 0);
	OK(ce_pool_export(p));
	printf("ok\n");
	return 0;
}
