/*
 * apply.c -- `cask apply -f FILE` and `cask get manifest` (docs/manifests.md,
 * docs/man/cask-apply.8.md): thin programs over libcask's cask_apply and
 * cask_manifest_get (lib/client/apply.c), which check, plan and apply.
 * This file reads the file, prints the plan as cask_apply hands it over
 * (before anything changes), each change when done, and the errors with
 * their positions, and maps the outcome to the exit status.
 */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libgen.h>
#include <limits.h>

/* The whole of FILE ("-": standard input): 0, or -errno. */
static int
read_all(const char *file, char **out, size_t *len)
{
	FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
	if (f == NULL)
		return -errno;
	char *buf = NULL;
	size_t n = 0, cap = 0;
	for (;;) {
		if (n + 65536 > cap) {
			cap = (n + 65536) * 2;
			char *nb = realloc(buf, cap);
			if (nb == NULL) {
				free(buf);
				if (f != stdin)
					fclose(f);
				return -ENOMEM;
			}
			buf = nb;
		}
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	int err = ferror(f) ? -EIO : 0;
	if (f != stdin)
		fclose(f);
	if (err != 0) {
		free(buf);
		return err;
	}
	*out = buf;
	*len = n;
	return 0;
}

static void
print_errors(const cask_apply_result *r, const char *shown)
{
	for (size_t i = 0; i < r->nerrors; i++) {
		const cask_apply_error *e = &r->errors[i];
		if (e->line > 0)
			fprintf(stderr, "%s:%d:%d: %s\n", shown, e->line, e->column, e->message);
		else
			fprintf(stderr, "%s: %s\n", shown, e->message);
	}
	if (r->nerrors > 1) /* one error stays one line */
		fprintf(stderr, "cask: %zu errors in %s; nothing was changed\n", r->nerrors, shown);
}

typedef struct shown_plan {
	const char *file;
} shown_plan;

/* cask_apply's progress: the plan before anything changes, then each change when done. */
static int
on_progress(void *arg, const cask_apply_result *r, size_t item)
{
	shown_plan *sp = arg;
	if (item != (size_t)-1) {
		printf("done: %s\n", r->items[item].action);
		fflush(stdout);
		return 0;
	}
	printf("Plan for %s:\n", sp->file);
	for (size_t i = 0; i < r->nitems; i++) {
		const cask_apply_item *it = &r->items[i];
		printf("  %-14s %-6s %s%s%s\n", it->verb, it->kind, it->name, it->detail[0] ? ": " : "", it->detail);
	}
	printf("Plan: %zu to create, %zu to change, %zu to destroy, %zu unchanged.\n", r->ncreate, r->nchange,
	    r->ndestroy, r->nunchanged);
	fflush(stdout);
	return 0;
}

static void
apply_usage(FILE *f)
{
	fprintf(f,
	    "usage: cask apply -f FILE [--dry-run] [--prune]\n"
	    "\n"
	    "Make the pools and volumes of caskd match a manifest (docs/manifests.md):\n"
	    "\n"
	    "  apiVersion: cask/v1\n"
	    "  pools:\n"
	    "    - name: tank\n"
	    "      vdevs: [/var/lib/cask/tank0.vdev]   # relative: to the file's directory\n"
	    "      size: 100G                          # of each vdev file apply creates\n"
	    "  volumes:\n"
	    "    - name: tank/db\n"
	    "      size: 20G\n"
	    "      properties: {compression: zstd, checksum: xxh128, sync: standard, volblocksize: 4K}\n"
	    "      snapshots:                          # caskd snapshots it on time (cask schedule)\n"
	    "        every: 15m                        # an automatic snapshot every 15 minutes\n"
	    "        keep: 8                           # keep the newest 8 of them, and one per\n"
	    "        retain: {hourly: 24, daily: 7, weekly: 4, monthly: 6}   # period for so many\n"
	    "\n"
	    "First the whole file is checked, alone and against the running state; every\n"
	    "error is printed as FILE:LINE:COLUMN: message and then nothing changes (exit 2).\n"
	    "Then the plan is printed, destructive actions first (release, destroy, shrink,\n"
	    "keep, would-destroy, would-shrink, create, change FIELD OLD -> NEW,\n"
	    "unchanged), and the actions run in that order, one by one. Applying a file\n"
	    "whose state is already reached prints \"No changes\" and exits 0. After a\n"
	    "failure apply stops, says what was done and what was not, and exits 1;\n"
	    "applying again converges.\n"
	    "\n"
	    "  -f, --file FILE   the manifest; - reads standard input (required)\n"
	    "  -n, --dry-run     check and print the plan only; change nothing\n"
	    "      --prune       also the destructive changes: destroy the volumes of the\n"
	    "                    pools listed under pools: that the file does not name, and\n"
	    "                    shrink volumes the file makes smaller (discarding the data\n"
	    "                    past the new size). Without it both are only shown. A\n"
	    "                    volume with snapshots (and so any with holds or clones) or\n"
	    "                    a partial receive is never destroyed (shown as keep); pools\n"
	    "                    are never destroyed, and volumes of pools the file does not\n"
	    "                    list are never touched. Volume by volume the file can\n"
	    "                    ask for more: absent: true destroys the volume (also\n"
	    "                    without --prune), with destroy: snapshots (or clones)\n"
	    "                    its snapshots (and their clones) too; a held snapshot\n"
	    "                    keeps it, unless releaseHolds: true releases the holds\n"
	    "                    first (each one listed as release); allowShrink: true\n"
	    "                    shrinks it to a smaller size.\n"
	    "  -h, --help        this help\n"
	    "\n"
	    "Properties not named in the file are left as they are. volblocksize, a pool's\n"
	    "vdevs and its size cannot change once created: a file that changes them is an\n"
	    "error. A snapshots: policy is installed in the volume's pool (caskd runs it:\n"
	    "cask schedule --help); a volume without snapshots: keeps whatever policy it\n"
	    "has (cask schedule remove takes one away). replicas: and consistency: are\n"
	    "reserved and refused.\n"
	    "\n"
	    "Exit status: 0 applied or nothing to do, 1 an operation failed (or caskd\n"
	    "cannot be reached), 2 usage or validation errors.\n");
}

int
cmd_apply(int argc, char **argv)
{
	const char *file = NULL;
	int dry = 0, prune = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			apply_usage(stdout);
			return 0;
		} else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
			if (++i == argc)
				return usage_error("%s needs a file", a);
			if (file != NULL)
				return usage_error("apply takes one -f FILE");
			file = argv[i];
		} else if (!strncmp(a, "--file=", 7)) {
			if (file != NULL)
				return usage_error("apply takes one -f FILE");
			file = a + 7;
		} else if (!strcmp(a, "-n") || !strcmp(a, "--dry-run")) {
			dry = 1;
		} else if (!strcmp(a, "--prune")) {
			prune = 1;
		} else if (a[0] == '-' && a[1] != '\0') {
			return usage_error("unknown option '%s' for apply", a);
		} else {
			return usage_error("apply takes the manifest as -f FILE, not '%s'", a);
		}
	}
	if (file == NULL)
		return usage_error("apply needs -f FILE");
	const char *shown = strcmp(file, "-") == 0 ? "<stdin>" : file;
	char *text = NULL;
	size_t len = 0;
	int err = read_all(file, &text, &len);
	if (err != 0) {
		fprintf(stderr, "%s: cannot open: %s\n", shown, strerror(-err));
		return EXIT_USAGE;
	}
	/* relative vdev paths start at the file's directory (standard input: the current one) */
	char dir[PATH_MAX] = "";
	if (strcmp(file, "-") != 0) {
		char *copy = strdup(file);
		snprintf(dir, sizeof(dir), "%s", copy != NULL ? dirname(copy) : ".");
		free(copy);
	}
	shown_plan sp = { shown };
	cask_apply_args a = CASK_APPLY_ARGS_INIT;
	a.name = shown;
	a.base_dir = dir[0] ? dir : NULL;
	a.dry_run = dry;
	a.prune = prune;
	a.progress = on_progress;
	a.progress_arg = &sp;
	cask_apply_result *r = NULL;
	cask_client *c = NULL;
	int rc;
	if (cask_connect(cli_socket, &c) != 0) {
		/* caskd cannot be reached: the file's own errors still come first */
		cask_error_info e = *cask_error();
		if (cask_apply(NULL, text, len, &a, &r) != 0 && r != NULL && r->nerrors > 0) {
			print_errors(r, shown);
			rc = EXIT_USAGE;
		} else {
			fprintf(stderr, "cask: %s\n", e.message[0] ? e.message : strerror(e.err));
			rc = EXIT_FAIL;
		}
		goto out;
	}
	err = cask_apply(c, text, len, &a, &r);
	if (r == NULL) {
		rc = cli_fail("apply");
	} else if (r->nerrors > 0) {
		print_errors(r, shown);
		rc = EXIT_USAGE;
	} else if (r->nitems == 0 && err != 0) {
		rc = cli_fail("apply: reading the running state");
	} else if (err != 0) {
		size_t failed = 0;
		while (failed < r->nitems && r->items[failed].state != CASK_APPLY_FAILED)
			failed++;
		if (failed < r->nitems)
			fprintf(stderr, "cask: apply: %s failed: %s\n", r->items[failed].action, r->items[failed].message);
		else
			cli_fail("apply");
		fprintf(stderr, "cask: apply stopped after %zu of %zu changes; not done:\n", r->ndone, r->nsteps);
		size_t last = 0;
		for (size_t i = 0; i < r->nitems; i++)
			if ((r->items[i].state == CASK_APPLY_FAILED || r->items[i].state == CASK_APPLY_NOT_DONE) &&
			    r->items[i].step != last) {
				fprintf(stderr, "  %s\n", r->items[i].action);
				last = r->items[i].step;
			}
		fprintf(stderr, "cask: fix the cause and apply again: what was done shows as unchanged\n");
		rc = EXIT_FAIL;
	} else {
		char nochange[600];
		if (r->nskipped > 0)
			snprintf(nochange, sizeof(nochange), "No changes: the running state matches %s, except for %zu "
			    "destructive change%s that only --prune makes.\n", shown, r->nskipped,
			    r->nskipped == 1 ? "" : "s");
		else
			snprintf(nochange, sizeof(nochange), "No changes: the running state matches %s.\n", shown);
		if (r->nsteps == 0)
			fputs(nochange, stdout);
		else if (dry)
			fputs("Dry run: nothing was changed.\n", stdout);
		else
			printf("Applied: %zu change%s.\n", r->ndone, r->ndone == 1 ? "" : "s");
		rc = 0;
	}
out:
	cask_apply_result_free(r);
	if (c != NULL)
		cask_disconnect(c);
	free(text);
	return rc;
}

/* ---- cask get manifest ---- */

static void
get_usage(FILE *f)
{
	fprintf(f,
	    "usage: cask get manifest [POOL...]\n"
	    "\n"
	    "Print the running state of caskd as a cask/v1 manifest (docs/manifests.md)\n"
	    "on standard output: every pool (or the POOLs named) with its vdevs and, when\n"
	    "they are regular files of one size, that size; and each of its volumes with\n"
	    "its size and all its properties (compression, checksum, sync, volblocksize).\n"
	    "`cask apply -f` of the output reports no changes, with or without --prune.\n"
	    "\n"
	    "A clone is printed as a plain volume (a manifest records no origin), and a\n"
	    "partial receive is left out with a comment. A pool that is not ONLINE is left\n"
	    "out with a comment, or is an error when named.\n"
	    "\n"
	    "  -h, --help   this help\n"
	    "\n"
	    "Exit status: 0 printed, 1 caskd refused or cannot be reached (or a named pool\n"
	    "does not exist or is not ONLINE), 2 usage error.\n");
}


int
cmd_get(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		get_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	if (strcmp(argv[1], "manifest") != 0)
		return usage_error("unknown get command '%s' (cask get manifest)", argv[1]);
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			get_usage(stdout);
			return 0;
		}
		if (argv[i][0] == '-')
			return usage_error("unknown option '%s' for get manifest", argv[i]);
	}
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	char *text = NULL;
	int rc = 0;
	if (cask_manifest_get(c, (const char *const *)argv + 2, (size_t)(argc - 2), &text) != 0)
		rc = cli_fail("get manifest");
	else
		fputs(text, stdout);
	free(text);
	cask_disconnect(c);
	return rc;
}
