/*
 * iostat.c -- `cask vol iostat POOL/VOL [INTERVAL [COUNT]]`: the IO a
 * volume's clients did, from caskd's statistics layer (vol.iostat), laid
 * out like `zpool iostat`: the first line totals since caskd started, each
 * later line the rates over the INTERVAL seconds before it.
 */
#include "cli.h"

#include <inttypes.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const int shown[4] = { CASK_IO_READ, CASK_IO_WRITE, CASK_IO_FLUSH, CASK_IO_TRIM };

static void
human(double v, char *buf, size_t n, int parsable)
{
	static const char units[] = " KMGTPE";
	if (parsable) {
		snprintf(buf, n, "%.0f", v);
		return;
	}
	int u = 0;
	while (v >= 1000 && u < 6) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, n, "%.0f", v);
	else
		snprintf(buf, n, v < 10 ? "%.1f%c" : "%.0f%c", v, units[u]);
}

static void
latency(uint64_t ns, uint64_t count, char *buf, size_t n, int parsable)
{
	if (count == 0) {
		snprintf(buf, n, "-");
		return;
	}
	double us = (double)ns / (double)count / 1000.0;
	if (parsable)
		snprintf(buf, n, "%.0f", us * 1000.0); /* ns */
	else if (us < 1000)
		snprintf(buf, n, "%.0fus", us);
	else if (us < 1000000)
		snprintf(buf, n, "%.1fms", us / 1000);
	else
		snprintf(buf, n, "%.1fs", us / 1000000);
}

/* Trim and zero are one column (both free blocks). */
static cask_io_counts
kind_of(const cask_iostat *s, int k)
{
	cask_io_counts c = s->kind[k];
	if (k == CASK_IO_TRIM) {
		c.count += s->kind[CASK_IO_ZERO].count;
		c.bytes += s->kind[CASK_IO_ZERO].bytes;
		c.latency_ns += s->kind[CASK_IO_ZERO].latency_ns;
	}
	return c;
}

static void
header(void)
{
	printf("%-24s %31s  %15s  %31s\n", "", "operations", "bandwidth", "average latency");
	printf("%-24s %7s %7s %7s %7s  %7s %7s  %7s %7s %7s %7s\n", "volume", "read", "write", "flush", "trim",
	    "read", "write", "read", "write", "flush", "trim");
	printf("%-24s %7s %7s %7s %7s  %7s %7s  %7s %7s %7s %7s\n", "------------------------", "-------",
	    "-------", "-------", "-------", "-------", "-------", "-------", "-------", "-------", "-------");
}

/* One line: totals (prev NULL) or rates from prev to cur. */
static void
line(const char *name, const cask_iostat *cur, const cask_iostat *prev, int parsable)
{
	double secs = prev ? (double)(cur->time_ns - prev->time_ns) / 1e9 : 1.0;
	if (secs <= 0)
		secs = 1.0;
	char ops[4][16], bw[2][16], lat[4][16];
	for (int i = 0; i < 4; i++) {
		cask_io_counts c = kind_of(cur, shown[i]), p = { 0 };
		if (prev)
			p = kind_of(prev, shown[i]);
		human((double)(c.count - p.count) / secs, ops[i], sizeof(ops[i]), parsable);
		latency(c.latency_ns - p.latency_ns, c.count - p.count, lat[i], sizeof(lat[i]), parsable);
		if (i < 2)
			human((double)(c.bytes - p.bytes) / secs, bw[i], sizeof(bw[i]), parsable);
	}
	printf("%-24s %7s %7s %7s %7s  %7s %7s  %7s %7s %7s %7s\n", name, ops[0], ops[1], ops[2], ops[3], bw[0],
	    bw[1], lat[0], lat[1], lat[2], lat[3]);
	fflush(stdout);
}

static void
print_json(const char *name, const cask_iostat *s)
{
	static const char *kinds[CASK_IO_KINDS] = { "read", "write", "flush", "trim", "zero", "map", "cache" };
	json_object *o = json_object_new_object(), *ops = json_object_new_object();
	json_object_object_add(o, "name", json_object_new_string(name));
	for (int i = 0; i < CASK_IO_KINDS; i++) {
		const cask_io_counts *c = &s->kind[i];
		json_object *k = json_object_new_object(), *h = json_object_new_array();
		json_object_object_add(k, "count", json_object_new_uint64(c->count));
		json_object_object_add(k, "bytes", json_object_new_uint64(c->bytes));
		json_object_object_add(k, "errors", json_object_new_uint64(c->errors));
		json_object_object_add(k, "in_flight", json_object_new_uint64(c->in_flight));
		json_object_object_add(k, "latency_ns", json_object_new_uint64(c->latency_ns));
		for (int b = 0; b < CASK_IO_HIST_BUCKETS; b++)
			json_object_array_add(h, json_object_new_uint64(c->hist_us[b]));
		json_object_object_add(k, "histogram_us", h);
		json_object_object_add(ops, kinds[i], k);
	}
	json_object_object_add(o, "ops", ops);
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}

int
cmd_vol_iostat(int argc, char **argv)
{
	int parsable = 0, json = 0, scripted = 0;
	const char *pos[3];
	int npos = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-p") == 0)
			parsable = 1;
		else if (strcmp(argv[i], "-j") == 0)
			json = 1;
		else if (strcmp(argv[i], "-H") == 0)
			scripted = 1;
		else if (argv[i][0] == '-' && argv[i][1] != '\0')
			return usage_error("unknown option '%s' for vol iostat (-H, -p, -j)", argv[i]);
		else if (npos == 3)
			return usage_error("vol iostat takes POOL/VOL [INTERVAL [COUNT]]");
		else
			pos[npos++] = argv[i];
	}
	if (npos == 0)
		return usage_error("vol iostat needs POOL/VOL");
	long interval = 0, count = -1;
	char *end;
	if (npos >= 2) {
		interval = strtol(pos[1], &end, 10);
		if (*end != '\0' || interval <= 0 || interval > 86400)
			return usage_error("bad INTERVAL '%s' (seconds, 1-86400)", pos[1]);
	}
	if (npos == 3) {
		count = strtol(pos[2], &end, 10);
		if (*end != '\0' || count <= 0)
			return usage_error("bad COUNT '%s'", pos[2]);
	}
	if (json && interval)
		return usage_error("vol iostat -j prints the totals once (no INTERVAL)");
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	cask_iostat prev, cur;
	int rc = 0;
	if (cask_vol_iostat(c, pos[0], &cur) != 0) {
		rc = cli_fail("vol iostat");
		goto out;
	}
	if (json) {
		print_json(pos[0], &cur);
		goto out;
	}
	if (!scripted)
		header();
	line(pos[0], &cur, NULL, parsable);
	for (long n = 1; interval > 0 && (count < 0 || n < count); n++) {
		prev = cur;
		sleep((unsigned)interval);
		if (cask_vol_iostat(c, pos[0], &cur) != 0) {
			rc = cli_fail("vol iostat");
			break;
		}
		line(pos[0], &cur, &prev, parsable);
	}
out:
	cask_disconnect(c);
	return rc;
}
