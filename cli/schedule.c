/*
 * schedule.c -- cask schedule list|run|set|remove: the snapshot policies
 * caskd runs (docs/manifests.md "Snapshot policy"), through libcask.
 */
#include "cli.h"
#include "util.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void
schedule_usage(FILE *f)
{
	fprintf(f,
	    "usage: cask schedule COMMAND ...\n"
	    "\n"
	    "Snapshot policies: caskd snapshots a volume on time and prunes the automatic\n"
	    "snapshots the policy no longer keeps. A policy is stored in the volume's pool\n"
	    "(it travels with the pool on export and import); cask apply installs the\n"
	    "snapshots: policies of a manifest the same way.\n"
	    "\n"
	    "  list [POOL | POOL/VOL] [-H] [-p] [-o FIELD,...] [-j]\n"
	    "                      every policy with its last and next run (fields: name,\n"
	    "                      every,keep,retain,auto,last,next,runs,failures,pruned,\n"
	    "                      error); auto: the automatic snapshots it holds now; runs,\n"
	    "                      failures, pruned: since caskd started\n"
	    "  run POOL/VOL        take the volume's automatic snapshot now (named after the\n"
	    "                      minute), then prune as the policy says; for tests and\n"
	    "                      for users (a snapshot before maintenance that the policy\n"
	    "                      then ages out)\n"
	    "  set POOL/VOL --every DURATION [--keep N] [--hourly N] [--daily N]\n"
	    "      [--weekly N] [--monthly N]\n"
	    "                      set (replace) the policy: a snapshot every DURATION (whole\n"
	    "                      minutes, 1m to 366d: 15m, 1h30m, 1d, 1w); keep the newest\n"
	    "                      N, and one per hour / day / week / month for N of them\n"
	    "  remove POOL/VOL     remove the policy (its snapshots stay, as ordinary ones that\n"
	    "                      nothing prunes until a policy returns)\n"
	    "\n"
	    "Automatic snapshots are named POOL/VOL@auto-YYYY-MM-DDTHH:MMZ after their slot\n"
	    "(UTC; the time rounded down to a multiple of every). After caskd was down it\n"
	    "takes one catch-up snapshot, not one per missed slot. Only automatic snapshots\n"
	    "are pruned, never a held one or one with clones, and never one taken by hand\n"
	    "or renamed. A snapshot that fails is logged and tried again at the next slot.\n"
	    "Retain keeps the oldest automatic snapshot of each of the newest N hours (days,\n"
	    "ISO weeks, months; UTC) that have one. Every event is one line in caskd's log.\n"
	    "\n"
	    "Exit status: 0 success, 1 the operation failed, 2 usage error.\n");
}

static const col sched_cols[] = {
	{ "name", "NAME", COL_STR }, { "every", "EVERY", COL_STR }, { "keep", "KEEP", COL_NUM },
	{ "retain", "RETAIN", COL_STR }, { "auto", "AUTO", COL_NUM }, { "last", "LAST", COL_STR },
	{ "next", "NEXT", COL_STR }, { "runs", "RUNS", COL_NUM }, { "failures", "FAILURES", COL_NUM },
	{ "pruned", "PRUNED", COL_NUM }, { "error", "ERROR", COL_STR },
};

static char *
fmt_time(int64_t t)
{
	if (t < 0)
		return xstrdup("-");
	char b[32];
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(b, sizeof(b), "%Y-%m-%dT%H:%MZ", &tm);
	return xstrdup(b);
}

static char **
sched_row(const cask_sched_info *s)
{
	char **r = xcalloc(ARRAY_SIZE(sched_cols), sizeof(char *));
	char b[200];
	r[0] = xstrdup(s->name);
	r[1] = xstrdup(util_fmt_minutes(s->policy.every_min, b, sizeof(b)));
	r[2] = fmt_u64(s->policy.keep);
	const uint32_t v[4] = { s->policy.hourly, s->policy.daily, s->policy.weekly, s->policy.monthly };
	static const char *const n[4] = { "hourly", "daily", "weekly", "monthly" };
	size_t o = 0;
	b[0] = '\0';
	for (int i = 0; i < 4; i++)
		if (v[i])
			o += (size_t)snprintf(b + o, sizeof(b) - o, "%s%s=%u", o ? "," : "", n[i], v[i]);
	r[3] = xstrdup(o ? b : "-");
	r[4] = fmt_u64(s->auto_snapshots);
	r[5] = fmt_time(s->last_run);
	r[6] = fmt_time(s->next_run);
	r[7] = fmt_u64(s->runs);
	r[8] = fmt_u64(s->failures);
	r[9] = fmt_u64(s->pruned);
	r[10] = xstrdup(s->last_error[0] ? s->last_error : "-");
	return r;
}

static int
need_vol(int argc, char **argv, const char *what)
{
	if (argc < 2 || argv[1][0] == '-' || strchr(argv[1], '/') == NULL || strchr(argv[1], '@') != NULL)
		return usage_error("schedule %s needs a volume POOL/VOL", what);
	return 0;
}

static int
sched_list(int argc, char **argv)
{
	out_opts o = { 0 };
	int ch;
	optind = 1;
	while ((ch = getopt(argc, argv, "Hpjo:")) != -1)
		if (!parse_out_opt(ch, optarg, &o))
			return usage_error("bad option for schedule list");
	if (argc - optind > 1)
		return usage_error("schedule list takes at most one POOL or POOL/VOL");
	const char *name = optind < argc ? argv[optind] : NULL;
	if (name != NULL && strchr(name, '@') != NULL)
		return usage_error("schedule list takes a POOL or POOL/VOL, not a snapshot");
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	cask_sched_info *list;
	size_t n;
	int rc;
	if (cask_sched_list(c, name, &list, &n) != 0) {
		rc = cli_fail("schedule list");
	} else {
		table t = { sched_cols, (int)ARRAY_SIZE(sched_cols), NULL, 0 };
		for (size_t i = 0; i < n; i++)
			table_add(&t, sched_row(&list[i]));
		/* -j: every field unless -o says otherwise */
		rc = table_print(&t, &o, o.json ? "name,every,keep,retain,auto,last,next,runs,failures,pruned,error"
		    : "name,every,keep,retain,auto,last,next,failures");
		table_free(&t);
		free(list);
	}
	cask_disconnect(c);
	return rc;
}

static int
sched_run_cmd(int argc, char **argv)
{
	int rc = need_vol(argc, argv, "run");
	if (rc != 0)
		return rc;
	if (argc > 2)
		return usage_error("schedule run takes one POOL/VOL, not '%s'", argv[2]);
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	char snap[600];
	if (cask_sched_run(c, argv[1], snap, sizeof(snap)) != 0)
		rc = cli_fail_code("schedule run");
	else
		printf("%s\n", snap);
	cask_disconnect(c);
	return rc;
}

static int
count_arg(const char *opt, const char *s, uint32_t *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	if (*s == '\0' || *s == '-' || *end != '\0' || v > 100000)
		return usage_error("--%s wants a count from 0 to 100000, not '%s'", opt, s);
	*out = (uint32_t)v;
	return 0;
}

static int
sched_set_cmd(int argc, char **argv)
{
	int rc = need_vol(argc, argv, "set");
	if (rc != 0)
		return rc;
	static const struct option lo[] = { { "every", 1, NULL, 'e' }, { "keep", 1, NULL, 'k' },
		{ "hourly", 1, NULL, 'H' }, { "daily", 1, NULL, 'D' }, { "weekly", 1, NULL, 'W' },
		{ "monthly", 1, NULL, 'M' }, { 0, 0, 0, 0 } };
	cask_sched s = { 0 };
	int have_every = 0, ch;
	optind = 2;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		uint64_t m;
		switch (ch) {
		case 'e':
			if (util_parse_minutes(optarg, &m) != 0)
				return usage_error("--every wants whole minutes from 1m to 366d (15m, 1h30m, 1d), not '%s'",
				    optarg);
			s.every_min = (uint32_t)m;
			have_every = 1;
			break;
		case 'k': if ((rc = count_arg("keep", optarg, &s.keep)) != 0) return rc; break;
		case 'H': if ((rc = count_arg("hourly", optarg, &s.hourly)) != 0) return rc; break;
		case 'D': if ((rc = count_arg("daily", optarg, &s.daily)) != 0) return rc; break;
		case 'W': if ((rc = count_arg("weekly", optarg, &s.weekly)) != 0) return rc; break;
		case 'M': if ((rc = count_arg("monthly", optarg, &s.monthly)) != 0) return rc; break;
		default:
			return usage_error("unknown option '%s' for schedule set", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (!have_every)
		return usage_error("schedule set needs --every DURATION");
	if ((s.keep | s.hourly | s.daily | s.weekly | s.monthly) == 0)
		return usage_error("the policy keeps nothing: give --keep or a retain count above 0");
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	rc = cask_sched_set(c, argv[1], &s) ? cli_fail("schedule set") : 0;
	cask_disconnect(c);
	return rc;
}

static int
sched_remove_cmd(int argc, char **argv)
{
	int rc = need_vol(argc, argv, "remove");
	if (rc != 0)
		return rc;
	if (argc > 2)
		return usage_error("schedule remove takes one POOL/VOL, not '%s'", argv[2]);
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	rc = cask_sched_set(c, argv[1], NULL) ? cli_fail("schedule remove") : 0;
	cask_disconnect(c);
	return rc;
}

int
cmd_schedule(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
		schedule_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	for (int i = 2; i < argc; i++)
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			schedule_usage(stdout);
			return 0;
		}
	const char *sub = argv[1];
	if (strcmp(sub, "list") == 0)
		return sched_list(argc - 1, argv + 1);
	if (strcmp(sub, "run") == 0)
		return sched_run_cmd(argc - 1, argv + 1);
	if (strcmp(sub, "set") == 0)
		return sched_set_cmd(argc - 1, argv + 1);
	if (strcmp(sub, "remove") == 0)
		return sched_remove_cmd(argc - 1, argv + 1);
	return usage_error("unknown schedule command '%s'", sub);
}
