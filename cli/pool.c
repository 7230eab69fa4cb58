/*
 * pool.c -- `cask pool ...`: create, list, status, export, import, destroy.
 */
#include "cli.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void
pool_usage(FILE *f)
{
	fprintf(f,
	    "usage: cask pool COMMAND ...\n"
	    "\n"
	    "  create [-f] POOL FILE... [--size SIZE]\n"
	    "                                      make a pool of these files or devices; files\n"
	    "                                      that do not exist are created sparse, of SIZE;\n"
	    "                                      an existing file must be of SIZE. A file or\n"
	    "                                      device holding anything (a filesystem, a\n"
	    "                                      partition table, another pool, any non-zero\n"
	    "                                      byte) is refused; -f, --force overwrites it:\n"
	    "                                      what it held is lost. Never forced: a size\n"
	    "                                      mismatch, a symbolic link another user owns\n"
	    "                                      or that sits in a sticky world-writable dir\n"
	    "  list [-H] [-p] [-o FIELD,...] [-j]  list pools (fields: name,size,alloc,free,cap,\n"
	    "                                      health,vdevs,volumes,txg,guid)\n"
	    "  status POOL [-j]                    state, space, errors and vdevs of a pool\n"
	    "  export [--force] POOL               commit and close a pool (it stops being served);\n"
	    "                                      refused while clients are connected to its\n"
	    "                                      volumes (the error names them) unless --force,\n"
	    "                                      which disconnects them first\n"
	    "  import [--rewind] POOL [-d DIR]     find the vdevs of POOL in DIR (default: caskd's\n"
	    "                                      state directory) and import it\n"
	    "  import [--rewind] --path FILE...    import the pool on exactly these files\n"
	    "                                      Import refuses a pool whose newest committed\n"
	    "                                      txg is damaged in every copy; --rewind goes\n"
	    "                                      back to the newest intact txg and discards the\n"
	    "                                      newer ones (the changes they committed are\n"
	    "                                      lost; pool status says which txgs went)\n"
	    "  destroy POOL                        close a pool and wipe its labels (data is lost)\n"
	    "  clear POOL                          resume a pool suspended after an IO error, once\n"
	    "                                      its devices work again; resets error counters\n"
	    "  inject POOL read|write|flush [--after N] [--vdev N] [--persistent]\n"
	    "                                      testing: make that IO fail with EIO after N more\n"
	    "                                      calls succeed, once (or until cleared)\n"
	    "  inject POOL none                    remove an injected fault\n"
	    "\n"
	    "Sizes take K, M, G, T suffixes. -H: no header, tab separated; -p: exact numbers;\n"
	    "-j: JSON.\n");
}

static const col pool_cols[] = {
	{ "name", "NAME", COL_STR }, { "size", "SIZE", COL_SIZE }, { "alloc", "ALLOC", COL_SIZE },
	{ "free", "FREE", COL_SIZE }, { "cap", "CAP", COL_PCT }, { "health", "HEALTH", COL_STR },
	{ "vdevs", "VDEVS", COL_NUM }, { "volumes", "VOLUMES", COL_NUM }, { "txg", "TXG", COL_NUM },
	{ "guid", "GUID", COL_STR },
};

static char **
pool_row(const cask_pool_info *p)
{
	char **r = xcalloc(ARRAY_SIZE(pool_cols), sizeof(char *));
	int unavail = strcmp(p->state, "UNAVAIL") == 0;
	r[0] = xstrdup(p->name);
	r[1] = unavail ? xstrdup("-") : fmt_u64(p->size);
	r[2] = unavail ? xstrdup("-") : fmt_u64(p->allocated);
	r[3] = unavail ? xstrdup("-") : fmt_u64(p->free);
	r[4] = unavail || p->size == 0 ? xstrdup("-") : fmt_u64(p->allocated * 100 / p->size);
	r[5] = xstrdup(p->state);
	r[6] = fmt_u64(p->nvdevs);
	r[7] = fmt_u64(p->volumes);
	r[8] = fmt_u64(p->txg);
	r[9] = xstrdup(p->guid[0] ? p->guid : "-");
	return r;
}

static int
abs_path(const char *in, char *out, size_t n)
{
	if (in[0] == '/') {
		snprintf(out, n, "%s", in);
		return 0;
	}
	char cwd[PATH_MAX];
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return -1;
	int w = snprintf(out, n, "%s/%s", cwd, in);
	return w < 0 || (size_t)w >= n ? -1 : 0;
}

static int
pool_create(int argc, char **argv)
{
	uint64_t size = 0;
	unsigned flags = 0;
	const char *ops[70];
	int nops = 0;
	/* Options may come before, between or after the operands. */
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = NULL;
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			pool_usage(stdout);
			return 0;
		}
		if (strcmp(a, "-f") == 0 || strcmp(a, "--force") == 0) {
			flags |= CASK_POOL_FORCE;
			continue;
		}
		if (strcmp(a, "--size") == 0 || strcmp(a, "-s") == 0) {
			if (++i == argc)
				return usage_error("%s needs a value", a);
			v = argv[i];
		} else if (strncmp(a, "--size=", 7) == 0) {
			v = a + 7;
		} else if (a[0] == '-') {
			return usage_error("unknown option '%s' for pool create", a);
		} else {
			if (nops == 70)
				return usage_error("too many operands");
			ops[nops++] = a;
			continue;
		}
		if (util_parse_size(v, &size) != 0 || size == 0)
			return usage_error("bad size '%s'", v);
	}
	if (nops < 2)
		return usage_error("pool create needs a pool name and at least one file");
	if (nops - 1 > 64)
		return usage_error("a pool has at most 64 vdevs");
	static char paths[64][PATH_MAX];
	const char *pp[64];
	for (int i = 1; i < nops; i++) {
		if (abs_path(ops[i], paths[i - 1], sizeof(paths[0])) != 0)
			return usage_error("cannot resolve '%s'", ops[i]);
		pp[i - 1] = paths[i - 1];
	}
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	int rc = cask_pool_create_ex(c, ops[0], pp, (unsigned)(nops - 1), size, flags) ? cli_fail_code("pool create")
										       : 0;
	cask_disconnect(c);
	return rc;
}

static int
pool_list(int argc, char **argv, int status)
{
	out_opts o = { 0 };
	int ch;
	optind = 1;
	while ((ch = getopt(argc, argv, status ? "jh" : "Hpjo:h")) != -1) {
		if (ch == 'h') {
			pool_usage(stdout);
			return 0;
		}
		if (!parse_out_opt(ch, optarg, &o))
			return usage_error("bad option for pool %s", status ? "status" : "list");
	}
	if (status && optind != argc - 1)
		return usage_error("pool status needs exactly one pool name");
	if (!status && optind != argc)
		return usage_error("pool list takes no operands");
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	int rc = 0;
	if (status) {
		cask_pool_info p;
		cask_pool_rewind_info ri;
		cask_pool_sync_info si;
		int rwok = 0;
		if (cask_pool_status(c, argv[optind], &p) != 0) {
			rc = cli_fail("pool status");
		} else if (!(rwok = cask_pool_rewind_get(c, argv[optind], &ri) == 0) ||
		    cask_pool_sync_get(c, argv[optind], &si) != 0) {
			rc = cli_fail("pool status");
			cask_pool_info_clear(&p);
		} else if (o.json) {
			json_object *j = json_object_new_object();
			json_object_object_add(j, "name", json_object_new_string(p.name));
			json_object_object_add(j, "state", json_object_new_string(p.state));
			if (p.error[0])
				json_object_object_add(j, "error", json_object_new_string(p.error));
			json_object_object_add(j, "guid", json_object_new_string(p.guid));
			json_object_object_add(j, "size", json_object_new_uint64(p.size));
			json_object_object_add(j, "allocated", json_object_new_uint64(p.allocated));
			json_object_object_add(j, "free", json_object_new_uint64(p.free));
			json_object_object_add(j, "volumes", json_object_new_uint64(p.volumes));
			json_object_object_add(j, "checksum_errors", json_object_new_uint64(p.checksum_errors));
			json_object_object_add(j, "io_errors", json_object_new_uint64(p.io_errors));
			json_object_object_add(j, "txg", json_object_new_uint64(p.txg));
			json_object *lg = json_object_new_object();
			json_object_object_add(lg, "size", json_object_new_uint64(p.log_size));
			json_object_object_add(lg, "commits", json_object_new_uint64(p.log_commits));
			json_object_object_add(lg, "blocks", json_object_new_uint64(p.log_blocks));
			json_object_object_add(lg, "bytes", json_object_new_uint64(p.log_bytes));
			json_object_object_add(lg, "fallbacks", json_object_new_uint64(p.log_fallbacks));
			json_object_object_add(lg, "replayed", json_object_new_uint64(p.log_replayed));
			json_object_object_add(j, "intent_log", lg);
			json_object *sy = json_object_new_object();
			json_object_object_add(sy, "txgs", json_object_new_uint64(si.syncs));
			json_object_object_add(sy, "total_ns", json_object_new_uint64(si.sync_ns_total));
			json_object_object_add(sy, "last_ns", json_object_new_uint64(si.last_sync_ns));
			json_object_object_add(sy, "last_bytes", json_object_new_uint64(si.last_sync_bytes));
			json_object_object_add(sy, "threads", json_object_new_int((int)si.sync_threads));
			json_object_object_add(j, "sync", sy);
			if (rwok && ri.last_discarded_txg != 0) {
				json_object *rw = json_object_new_object();
				json_object_object_add(rw, "base_txg", json_object_new_uint64(ri.base_txg));
				json_object_object_add(rw, "first_discarded_txg", json_object_new_uint64(ri.first_discarded_txg));
				json_object_object_add(rw, "last_discarded_txg", json_object_new_uint64(ri.last_discarded_txg));
				json_object_object_add(rw, "last_discarded_time_ns", json_object_new_uint64(ri.last_discarded_time_ns));
				json_object_object_add(j, "rewound", rw);
			}
			if (rwok && ri.newer_damaged_txg != 0)
				json_object_object_add(j, "newer_damaged_txg", json_object_new_uint64(ri.newer_damaged_txg));
			json_object *v = json_object_new_array();
			for (unsigned i = 0; i < p.nvdevs_paths; i++)
				json_object_array_add(v, json_object_new_string(p.vdevs[i]));
			json_object_object_add(j, "vdevs", v);
			printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
			json_object_put(j);
			cask_pool_info_clear(&p);
		} else {
			char a[16], b[16], f[16];
			printf("  pool: %s\n state: %s\n", p.name, p.state);
			if (p.error[0])
				printf("status: %s\n", p.error);
			if (rwok && ri.last_discarded_txg != 0) {
				char when[64];
				time_t t = (time_t)(ri.last_discarded_time_ns / 1000000000u);
				struct tm tm;
				if (ri.last_discarded_time_ns == 0 || gmtime_r(&t, &tm) == NULL ||
				    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
					snprintf(when, sizeof(when), "an unknown time");
				printf("rewind: imported with --rewind: txgs %" PRIu64 "-%" PRIu64 " were discarded "
				    "(the newest committed at %s); the pool went on from txg %" PRIu64 "\n",
				    ri.first_discarded_txg, ri.last_discarded_txg, when, ri.base_txg);
			}
			if (rwok && ri.newer_damaged_txg != 0)
				printf("warning: imported read-only at an older txg than txg %" PRIu64
				    ", whose uberblock is damaged in every copy\n", ri.newer_damaged_txg);
			if (strcmp(p.state, "UNAVAIL") != 0) {
				printf("  guid: %s\n space: %s size, %s allocated, %s free\n", p.guid,
				    util_fmt_size(p.size, a, sizeof(a)), util_fmt_size(p.allocated, b, sizeof(b)),
				    util_fmt_size(p.free, f, sizeof(f)));
				printf("errors: %" PRIu64 " checksum, %" PRIu64 " io\n   txg: %" PRIu64
				    "\nvolumes: %u\n", p.checksum_errors, p.io_errors, p.txg, p.volumes);
				char ls[16], lb[16];
				if (p.log_size == 0)
					printf("   log: none (FLUSH commits a txg)\n");
				else
					printf("   log: %s region; %" PRIu64 " commits, %" PRIu64 " blocks (%s), %" PRIu64
					    " fell back to a txg commit, %" PRIu64 " records replayed at import\n",
					    util_fmt_size(p.log_size, ls, sizeof(ls)), p.log_commits, p.log_blocks,
					    util_fmt_size(p.log_bytes, lb, sizeof(lb)), p.log_fallbacks, p.log_replayed);
				char sb[16];
				printf("  sync: %" PRIu64 " txgs since import, mean %.1f ms; last %.1f ms, %s written; "
				    "%u pipeline threads\n", si.syncs, si.syncs ? si.sync_ns_total / 1e6 / (double)si.syncs : 0.0,
				    si.last_sync_ns / 1e6, util_fmt_size(si.last_sync_bytes, sb, sizeof(sb)), si.sync_threads);
			}
			printf(" vdevs:\n");
			for (unsigned i = 0; i < p.nvdevs_paths; i++)
				printf("\t%s\n", p.vdevs[i]);
			cask_pool_info_clear(&p);
		}
	} else {
		cask_pool_info *list;
		size_t n;
		if (cask_pool_list(c, &list, &n) != 0) {
			rc = cli_fail("pool list");
		} else {
			table t = { pool_cols, (int)ARRAY_SIZE(pool_cols), NULL, 0 };
			for (size_t i = 0; i < n; i++)
				table_add(&t, pool_row(&list[i]));
			rc = table_print(&t, &o, "name,size,alloc,free,cap,health");
			table_free(&t);
			cask_pool_info_free(list, n);
		}
	}
	cask_disconnect(c);
	return rc;
}

static int
pool_import(int argc, char **argv)
{
	const char *dir = NULL;
	int use_paths = 0;
	unsigned flags = 0;
	static const struct option lo[] = { { "dir", 1, NULL, 'd' }, { "path", 0, NULL, 'P' },
		{ "rewind", 0, NULL, 'R' }, { "help", 0, NULL, 'h' }, { 0, 0, 0, 0 } };
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "d:h", lo, NULL)) != -1) {
		if (ch == 'd')
			dir = optarg;
		else if (ch == 'P')
			use_paths = 1;
		else if (ch == 'R')
			flags |= CASK_POOL_REWIND;
		else if (ch == 'h') {
			pool_usage(stdout);
			return 0;
		} else
			return usage_error("bad option for pool import");
	}
	static char paths[64][PATH_MAX];
	const char *pp[64];
	unsigned n = 0;
	const char *name = NULL;
	char dbuf[PATH_MAX];
	if (use_paths) {
		for (int i = optind; i < argc && n < 64; i++) {
			if (abs_path(argv[i], paths[n], sizeof(paths[0])) != 0)
				return usage_error("cannot resolve '%s'", argv[i]);
			pp[n] = paths[n];
			n++;
		}
		if (n == 0)
			return usage_error("pool import --path needs at least one file");
	} else {
		if (optind != argc - 1)
			return usage_error("pool import needs exactly one pool name");
		name = argv[optind];
		if (dir != NULL) {
			if (abs_path(dir, dbuf, sizeof(dbuf)) != 0)
				return usage_error("cannot resolve '%s'", dir);
			dir = dbuf;
		}
	}
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	char got[64];
	int rc = cask_pool_import_ex(c, name, use_paths ? pp : NULL, n, dir, flags, got, sizeof(got));
	if (rc == 0 && use_paths)
		printf("%s\n", got);
	rc = rc ? cli_fail_code("pool import") : 0;
	cask_pool_rewind_info ri;
	if (rc == 0 && (flags & CASK_POOL_REWIND) && cask_pool_rewind_get(c, got, &ri) == 0 &&
	    ri.last_discarded_txg != 0)
		fprintf(stderr, "cask: pool %s: rewound to txg %" PRIu64 "; txgs %" PRIu64 "-%" PRIu64
		    " were discarded\n", got, ri.base_txg, ri.first_discarded_txg, ri.last_discarded_txg);
	cask_disconnect(c);
	return rc;
}

static int
pool_simple(int argc, char **argv, const char *what, int (*fn)(cask_client *, const char *))
{
	if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		pool_usage(stdout);
		return 0;
	}
	if (argc != 2 || argv[1][0] == '-')
		return usage_error("pool %s needs exactly one pool name", what);
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	int rc = fn(c, argv[1]) ? cli_fail(what) : 0;
	cask_disconnect(c);
	return rc;
}

/* pool export [-f | --force] POOL: --force disconnects the clients served from it first */
static int
pool_export(int argc, char **argv)
{
	unsigned flags = 0;
	if (argc == 3 && (strcmp(argv[1], "-f") == 0 || strcmp(argv[1], "--force") == 0)) {
		flags = CASK_FORCE_DISCONNECT;
		argv[1] = argv[0];
		argc--;
		argv++;
	}
	if (flags == 0)
		return pool_simple(argc, argv, "export", cask_pool_export);
	if (argc != 2 || argv[1][0] == '-')
		return usage_error("pool export needs [--force] and exactly one pool name");
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	int rc = cask_pool_export_ex(c, argv[1], flags) ? cli_fail("export") : 0;
	cask_disconnect(c);
	return rc;
}

static int
pool_inject(int argc, char **argv)
{
	const char *ops[2];
	int nops = 0, vdev = -1, persistent = 0;
	uint64_t after = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			pool_usage(stdout);
			return 0;
		}
		if (strcmp(a, "--persistent") == 0) {
			persistent = 1;
		} else if (strcmp(a, "--after") == 0 || strcmp(a, "--vdev") == 0) {
			if (++i == argc)
				return usage_error("%s needs a value", a);
			char *end;
			errno = 0;
			unsigned long long n = strtoull(argv[i], &end, 10);
			if (errno != 0 || *end != '\0' || argv[i][0] == '-' || argv[i][0] == '\0' ||
			    (a[2] == 'v' && n > 63))
				return usage_error("bad number '%s' for %s", argv[i], a);
			if (a[2] == 'a')
				after = n;
			else
				vdev = (int)n;
		} else if (a[0] == '-') {
			return usage_error("unknown option '%s' for pool inject", a);
		} else {
			if (nops == 2)
				return usage_error("pool inject takes a pool and a fault (read, write, flush, none)");
			ops[nops++] = a;
		}
	}
	if (nops != 2)
		return usage_error("pool inject needs a pool and a fault (read, write, flush, none)");
	if (strcmp(ops[1], "read") != 0 && strcmp(ops[1], "write") != 0 && strcmp(ops[1], "flush") != 0 &&
	    strcmp(ops[1], "none") != 0)
		return usage_error("bad fault '%s' (read, write, flush, none)", ops[1]);
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	int rc = cask_pool_inject(c, ops[0], ops[1], vdev, after, persistent) ? cli_fail("pool inject") : 0;
	cask_disconnect(c);
	return rc;
}

int
cmd_pool(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
		pool_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	const char *sub = argv[1];
	if (strcmp(sub, "create") == 0)
		return pool_create(argc - 1, argv + 1);
	if (strcmp(sub, "list") == 0)
		return pool_list(argc - 1, argv + 1, 0);
	if (strcmp(sub, "status") == 0)
		return pool_list(argc - 1, argv + 1, 1);
	if (strcmp(sub, "import") == 0)
		return pool_import(argc - 1, argv + 1);
	if (strcmp(sub, "export") == 0)
		return pool_export(argc - 1, argv + 1);
	if (strcmp(sub, "destroy") == 0)
		return pool_simple(argc - 1, argv + 1, "destroy", cask_pool_destroy);
	if (strcmp(sub, "clear") == 0)
		return pool_simple(argc - 1, argv + 1, "clear", cask_pool_clear);
	if (strcmp(sub, "inject") == 0)
		return pool_inject(argc - 1, argv + 1);
	return usage_error("unknown pool command '%s'", sub);
}
