/*
 * snap.c -- cask snap create|list|destroy|rename|hold|release|holds.
 */
#include "cli.h"
#include "util.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void
snap_usage(FILE *f)
{
	fprintf(f,
	    "usage: cask snap COMMAND ...\n"
	    "\n"
	    "  create POOL/VOL@SNAP...             read-only snapshots, all of them at one instant\n"
	    "                                      (one pool), or none if any name is bad\n"
	    "  list [POOL | POOL/VOL] [-H] [-p] [-o FIELD,...] [-j]\n"
	    "                                      (fields: name,volume,used,referenced,logical,\n"
	    "                                      size,txg,creation,holds,clones,guid)\n"
	    "  destroy [--force] POOL/VOL@SNAP...  destroy snapshots (one pool, all or none), freeing\n"
	    "                                      what only they hold\n"
	    "  rename POOL/VOL@SNAP NEW            rename a snapshot (NEW or POOL/VOL@NEW)\n"
	    "  hold TAG POOL/VOL@SNAP...           put hold TAG on the snapshots (all or none): a\n"
	    "                                      held snapshot cannot be destroyed\n"
	    "  release TAG POOL/VOL@SNAP...        take hold TAG off the snapshots (all or none)\n"
	    "  holds [POOL | POOL/VOL@SNAP] [-H] [-p] [-o FIELD,...] [-j]\n"
	    "                                      the holds (fields: snapshot,tag,creation)\n"
	    "\n"
	    "A snapshot is served read-only over NBD as POOL/VOL@SNAP. used: the bytes only\n"
	    "that snapshot holds (what destroying it frees); referenced: all it references.\n"
	    "A tag is 1-63 printable characters without spaces; a snapshot has each tag once.\n"
	    "A snapshot that has clones cannot be destroyed either: destroy the clones, or\n"
	    "promote one (cask vol promote).\n");
}

static const col snap_cols[] = {
	{ "name", "NAME", COL_STR }, { "volume", "VOLUME", COL_STR }, { "used", "USED", COL_SIZE },
	{ "referenced", "REFER", COL_SIZE }, { "logical", "LREFER", COL_SIZE }, { "size", "VOLSIZE", COL_SIZE },
	{ "txg", "TXG", COL_NUM }, { "creation", "CREATION", COL_NUM }, { "holds", "HOLDS", COL_NUM },
	{ "clones", "CLONES", COL_NUM }, { "guid", "GUID", COL_STR },
};

static char **
snap_row(const cask_snap_info *s)
{
	char **r = xcalloc(ARRAY_SIZE(snap_cols), sizeof(char *));
	r[0] = xstrdup(s->name);
	r[1] = xstrdup(s->volume);
	r[2] = fmt_u64(s->used);
	r[3] = fmt_u64(s->referenced);
	r[4] = fmt_u64(s->logical);
	r[5] = fmt_u64(s->size);
	r[6] = fmt_u64(s->txg);
	r[7] = fmt_u64(s->creation);
	r[8] = fmt_u64(s->holds);
	r[9] = fmt_u64(s->clones);
	r[10] = xstrdup(s->guid);
	return r;
}

static int
need_snap_names(int argc, char **argv, const char *what)
{
	if (argc < 2)
		return usage_error("snap %s needs at least one POOL/VOL@SNAP", what);
	for (int i = 1; i < argc; i++) {
		const char *at = strchr(argv[i], '@');
		if (argv[i][0] == '-' || strchr(argv[i], '/') == NULL || at == NULL || at[1] == '\0')
			return usage_error("'%s' is not a snapshot name (POOL/VOL@SNAP)", argv[i]);
	}
	return 0;
}

static int
snap_create(int argc, char **argv)
{
	int rc = need_snap_names(argc, argv, "create");
	if (rc != 0)
		return rc;
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	rc = cask_snap_create(c, (const char *const *)argv + 1, (size_t)(argc - 1)) ? cli_fail("snap create") : 0;
	cask_disconnect(c);
	return rc;
}

static int
snap_destroy(int argc, char **argv)
{
	unsigned flags = 0;
	if (argc > 1 && (strcmp(argv[1], "--force") == 0 || strcmp(argv[1], "-f") == 0)) {
		flags = CASK_FORCE_DISCONNECT;
		argv[1] = argv[0];
		argc--;
		argv++;
	}
	int rc = need_snap_names(argc, argv, "destroy");
	if (rc != 0)
		return rc;
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	rc = (flags ? cask_snap_destroy_many_ex(c, (const char *const *)argv + 1, (size_t)(argc - 1), flags) :
	    cask_snap_destroy_many(c, (const char *const *)argv + 1, (size_t)(argc - 1))) ?
	    cli_fail("snap destroy") : 0;
	cask_disconnect(c);
	return rc;
}

static int
snap_list(int argc, char **argv)
{
	out_opts o = { 0 };
	int ch;
	optind = 1;
	while ((ch = getopt(argc, argv, "Hpjo:")) != -1)
		if (!parse_out_opt(ch, optarg, &o))
			return usage_error("bad option for snap list");
	if (argc - optind > 1)
		return usage_error("snap list takes at most one POOL or POOL/VOL");
	const char *name = optind < argc ? argv[optind] : NULL;
	if (name != NULL && strchr(name, '@') != NULL)
		return usage_error("snap list takes a POOL or POOL/VOL, not a snapshot");
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	cask_snap_info *list;
	size_t n;
	int rc = 0;
	if (cask_snap_list(c, name, &list, &n) != 0) {
		rc = cli_fail("snap list");
	} else {
		table t = { snap_cols, (int)ARRAY_SIZE(snap_cols), NULL, 0 };
		for (size_t i = 0; i < n; i++)
			table_add(&t, snap_row(&list[i]));
		rc = table_print(&t, &o, "name,used,referenced,txg");
		table_free(&t);
		free(list);
	}
	cask_disconnect(c);
	return rc;
}

static int
snap_hold(int argc, char **argv, int release)
{
	const char *what = release ? "release" : "hold";
	if (argc < 3 || argv[1][0] == '-')
		return usage_error("snap %s needs TAG and at least one POOL/VOL@SNAP", what);
	int rc = need_snap_names(argc - 1, argv + 1, what);
	if (rc != 0)
		return rc;
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	const char *const *names = (const char *const *)argv + 2;
	rc = (release ? cask_snap_release(c, argv[1], names, (size_t)(argc - 2))
		      : cask_snap_hold(c, argv[1], names, (size_t)(argc - 2))) ? cli_fail(release ? "snap release" : "snap hold") : 0;
	cask_disconnect(c);
	return rc;
}

static const col hold_cols[] = {
	{ "snapshot", "SNAPSHOT", COL_STR }, { "tag", "TAG", COL_STR }, { "creation", "CREATION", COL_NUM },
};

static int
snap_holds(int argc, char **argv)
{
	out_opts o = { 0 };
	int ch;
	optind = 1;
	while ((ch = getopt(argc, argv, "Hpjo:")) != -1)
		if (!parse_out_opt(ch, optarg, &o))
			return usage_error("bad option for snap holds");
	if (argc - optind > 1)
		return usage_error("snap holds takes at most one POOL or POOL/VOL@SNAP");
	const char *name = optind < argc ? argv[optind] : NULL;
	if (name != NULL && strchr(name, '/') != NULL && strchr(name, '@') == NULL)
		return usage_error("snap holds takes a POOL or POOL/VOL@SNAP, not a volume");
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	cask_hold_info *list;
	size_t n;
	int rc = 0;
	if (cask_snap_holds(c, name, &list, &n) != 0) {
		rc = cli_fail("snap holds");
	} else {
		table t = { hold_cols, (int)ARRAY_SIZE(hold_cols), NULL, 0 };
		for (size_t i = 0; i < n; i++) {
			char **r = xcalloc(ARRAY_SIZE(hold_cols), sizeof(char *));
			r[0] = xstrdup(list[i].snapshot);
			r[1] = xstrdup(list[i].tag);
			r[2] = fmt_u64(list[i].creation);
			table_add(&t, r);
		}
		rc = table_print(&t, &o, "snapshot,tag,creation");
		table_free(&t);
		free(list);
	}
	cask_disconnect(c);
	return rc;
}

static int
snap_rename(int argc, char **argv)
{
	if (argc != 3 || argv[2][0] == '-')
		return usage_error("snap rename needs POOL/VOL@SNAP and NEW");
	int rc = need_snap_names(2, argv, "rename");
	if (rc != 0)
		return rc;
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	rc = cask_snap_rename(c, argv[1], argv[2]) ? cli_fail("snap rename") : 0;
	cask_disconnect(c);
	return rc;
}

int
cmd_snap(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
		snap_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	const char *sub = argv[1];
	for (int i = 2; i < argc; i++)
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			snap_usage(stdout);
			return 0;
		}
	if (strcmp(sub, "create") == 0)
		return snap_create(argc - 1, argv + 1);
	if (strcmp(sub, "list") == 0)
		return snap_list(argc - 1, argv + 1);
	if (strcmp(sub, "destroy") == 0)
		return snap_destroy(argc - 1, argv + 1);
	if (strcmp(sub, "rename") == 0)
		return snap_rename(argc - 1, argv + 1);
	if (strcmp(sub, "hold") == 0 || strcmp(sub, "release") == 0)
		return snap_hold(argc - 1, argv + 1, strcmp(sub, "release") == 0);
	if (strcmp(sub, "holds") == 0)
		return snap_holds(argc - 1, argv + 1);
	return usage_error("unknown snap command '%s'", sub);
}
