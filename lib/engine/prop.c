/*
 * prop.c -- volume properties by name: compression (off|lz4|zstd),
 * checksum (xxh128|sha256), sync (standard|always|disabled) and, at
 * creation only, volblocksize. Owns the names, the values and the
 * defaults; vol.c stores and commits them, caskd passes a client's
 * strings through ce_vol_props_parse and ce_vol_set_many, so properties
 * are parsed in exactly one place.
 *
 * Invariants:
 *   1. Every name that parses maps back to itself through ce_*_name
 *      (aliases: "compress" for compression, "on" for lz4 and xxh128).
 *   2. A bad name or value fails with -EINVAL and a message that lists
 *      the accepted ones; nothing is changed.
 */
#include "prop.h"
#include "util.h"

#include <cask/engine.h>
#include <errno.h>
#include <string.h>

static int
parse_compress(const char *s, int *out)
{
	if (strcmp(s, "off") == 0)
		*out = CE_COMPRESS_OFF;
	else if (strcmp(s, "lz4") == 0 || strcmp(s, "on") == 0)
		*out = CE_COMPRESS_LZ4;
	else if (strcmp(s, "zstd") == 0)
		*out = CE_COMPRESS_ZSTD;
	else
		return err_set(-EINVAL, "bad compression '%s' (off, lz4, zstd)", s);
	return 0;
}

static int
parse_checksum(const char *s, int *out)
{
	if (strcmp(s, "xxh128") == 0 || strcmp(s, "on") == 0)
		*out = CE_CHECKSUM_XXH128;
	else if (strcmp(s, "sha256") == 0)
		*out = CE_CHECKSUM_SHA256;
	else
		return err_set(-EINVAL, "bad checksum '%s' (xxh128, sha256)", s);
	return 0;
}

static int
parse_sync(const char *s, int *out)
{
	if (strcmp(s, "standard") == 0)
		*out = CE_SYNC_STANDARD;
	else if (strcmp(s, "always") == 0)
		*out = CE_SYNC_ALWAYS;
	else if (strcmp(s, "disabled") == 0)
		*out = CE_SYNC_DISABLED;
	else
		return err_set(-EINVAL, "bad sync '%s' (standard, always, disabled)", s);
	return 0;
}

const char *
ce_sync_name(int s)
{
	return s == CE_SYNC_STANDARD ? "standard" : s == CE_SYNC_ALWAYS ? "always" : s == CE_SYNC_DISABLED ? "disabled" : "?";
}

const char *
ce_compress_name(int c)
{
	return c == CE_COMPRESS_OFF ? "off" : c == CE_COMPRESS_LZ4 ? "lz4" : c == CE_COMPRESS_ZSTD ? "zstd" : "?";
}

const char *
ce_checksum_name(int c)
{
	return c == CE_CHECKSUM_XXH128 ? "xxh128" : c == CE_CHECKSUM_SHA256 ? "sha256" : "?";
}

/* The settable property prop names, or 0 (no error set). */
static unsigned
prop_which(const char *prop)
{
	if (strcmp(prop, "compression") == 0 || strcmp(prop, "compress") == 0)
		return CE_PROP_COMPRESSION;
	if (strcmp(prop, "checksum") == 0)
		return CE_PROP_CHECKSUM;
	if (strcmp(prop, "sync") == 0)
		return CE_PROP_SYNC;
	return 0;
}

unsigned
prop_of(const char *prop)
{
	if (prop == NULL) {
		err_set(-EINVAL, "set: a property name is required");
		return 0;
	}
	unsigned which = prop_which(prop);
	if (which != 0)
		return which;
	if (strcmp(prop, "volblocksize") == 0)
		err_set(-EINVAL, "volblocksize is fixed when a volume is created");
	else if (strcmp(prop, "volsize") == 0 || strcmp(prop, "size") == 0)
		err_set(-EINVAL, "use resize to change the size of a volume");
	else
		err_set(-EINVAL, "unknown or read-only property '%s'", prop);
	return 0;
}

int
prop_parse(unsigned which, const char *value, int *val)
{
	if (value == NULL)
		return err_set(-EINVAL, "set: a value is required");
	return which == CE_PROP_COMPRESSION ? parse_compress(value, val) :
	    which == CE_PROP_CHECKSUM ? parse_checksum(value, val) : parse_sync(value, val);
}

int
prop_default(unsigned which)
{
	ASSERT(which == CE_PROP_COMPRESSION || which == CE_PROP_CHECKSUM || which == CE_PROP_SYNC);
	return which == CE_PROP_COMPRESSION ? CE_COMPRESS_LZ4 : which == CE_PROP_CHECKSUM ?
	    CE_CHECKSUM_XXH128 : CE_SYNC_STANDARD;
}

int
ce_vol_props_parse(ce_vol_props *pr, const char *prop, const char *value)
{
	err_clear();
	if (prop != NULL && strcmp(prop, "volblocksize") == 0) {
		uint64_t bs;
		/* only the form here: ce_vol_create checks the size (a power of two, 4K-128K) */
		if (value == NULL || util_parse_size(value, &bs) != 0 || bs > UINT32_MAX)
			return err_set(-EINVAL, "bad volblocksize '%s'", value ? value : "");
		pr->volblocksize = (uint32_t)bs;
		return 0;
	}
	unsigned which = prop != NULL ? prop_which(prop) : 0;
	if (which == 0)
		return err_set(-EINVAL, "unknown property '%s' (volblocksize, compression, checksum, sync)",
		    prop ? prop : "");
	int val, err = prop_parse(which, value, &val);
	if (err != 0)
		return err;
	if (which == CE_PROP_COMPRESSION)
		pr->compress = val;
	else if (which == CE_PROP_CHECKSUM)
		pr->checksum = val;
	else
		pr->sync = val;
	return 0;
}
