/*
 * replica.c -- cask vol replica add|remove|replace|rebuild: the members of
 * a replicated volume and their rebuild jobs (docs/replication.md
 * section 12; cask(8)).
 */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
replica_usage(FILE *f)
{
	fprintf(f,
	    "usage: cask vol replica COMMAND POOL/VOL ... [--wait]\n"
	    "\n"
	    "  add POOL/VOL HOST:PORT/POOL         a new replica on the caskd at HOST:PORT: created\n"
	    "                                      there and copied (full rebuild: data and holes only)\n"
	    "  replace POOL/VOL OLD NEW            add NEW (full rebuild), then remove OLD\n"
	    "  rebuild POOL/VOL HOST:PORT/POOL     bring a degraded replica back: only what it missed\n"
	    "                                      (delta), the rest of an interrupted rebuild, or full\n"
	    "  remove POOL/VOL HOST:PORT/POOL      take a replica out of the volume (its volume stays)\n"
	    "\n"
	    "add, replace and rebuild start a job (cask job list, cancel, wait) and print its id;\n"
	    "--wait waits for it and prints its outcome. While it runs the replica gets every new\n"
	    "write (cask vol status shows it rebuilding with its progress); it joins the in-sync\n"
	    "replicas when it is caught up. -o rebuild_rate=MB/s at vol create limits the copy.\n");
}

static int
wait_job(cask_client *c, uint64_t id)
{
	cask_job_info j;
	if (cask_job_wait(c, id, -1, &j) != 0)
		return cli_fail("job wait");
	if (strcmp(j.state, "done") != 0) {
		fprintf(stderr, "cask: rebuild job %" PRIu64 " %s: %s [%s]\n", id, j.state, j.message, j.code);
		return EXIT_FAIL;
	}
	printf("job %" PRIu64 " done: %s\n", id, j.result);
	return 0;
}

int
cmd_vol_replica(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		replica_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	const char *sub = argv[1];
	const char *pos[4];
	int np = 0, wait = 0;
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--wait") == 0)
			wait = 1;
		else if (argv[i][0] != '-' && np < 4)
			pos[np++] = argv[i];
		else
			return usage_error("vol replica %s: unexpected '%s'", sub, argv[i]);
	}
	int want = strcmp(sub, "replace") == 0 ? 3 : 2;
	if (strcmp(sub, "add") != 0 && strcmp(sub, "remove") != 0 && strcmp(sub, "replace") != 0 &&
	    strcmp(sub, "rebuild") != 0)
		return usage_error("unknown vol replica command '%s' (add, remove, replace, rebuild)", sub);
	if (np != want || strchr(pos[0], '/') == NULL)
		return usage_error("vol replica %s needs POOL/VOL %s", sub, want == 3 ? "OLD NEW" : "HOST:PORT/POOL");
	if (wait && strcmp(sub, "remove") == 0)
		return usage_error("vol replica remove takes no --wait (it is not a job)");
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	uint64_t id = 0;
	int rc;
	if (strcmp(sub, "remove") == 0)
		rc = cask_vol_replica_remove(c, pos[0], pos[1], 0);
	else if (strcmp(sub, "add") == 0)
		rc = cask_vol_replica_add(c, pos[0], pos[1], &id);
	else if (strcmp(sub, "replace") == 0)
		rc = cask_vol_replica_replace(c, pos[0], pos[1], pos[2], &id);
	else
		rc = cask_vol_replica_rebuild(c, pos[0], pos[1], &id);
	if (rc != 0) {
		char what[64];
		snprintf(what, sizeof(what), "vol replica %s", sub);
		rc = cli_fail_code(what);
	} else if (id != 0 && wait) {
		rc = wait_job(c, id);
	} else if (id != 0) {
		printf("job %" PRIu64 "\n", id);
	}
	cask_disconnect(c);
	return rc;
}
