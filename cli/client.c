/*
 * client.c -- `cask client list [-H] [-p] [-j] [-o FIELD,...]` (who is
 * connected to caskd's frontends) and `cask client kill ID`.
 */
#include "cli.h"
#include "util.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const col client_cols[] = {
	{ "id", "ID", COL_NUM }, { "frontend", "FRONTEND", COL_STR }, { "peer", "PEER", COL_STR },
	{ "uid", "UID", COL_STR }, { "pid", "PID", COL_STR }, { "export", "EXPORT", COL_STR },
	{ "state", "STATE", COL_STR }, { "since", "SINCE", COL_STR }, { "idle", "IDLE", COL_NUM },
	{ "bytes_in", "IN", COL_SIZE }, { "bytes_out", "OUT", COL_SIZE }, { "requests", "REQS", COL_NUM },
	{ "queued_bytes", "QUEUED", COL_SIZE }, { "tls", "TLS", COL_STR },
};

static char *
opt_long(long v)
{
	char b[32];
	if (v < 0)
		snprintf(b, sizeof(b), "-");
	else
		snprintf(b, sizeof(b), "%ld", v);
	return xstrdup(b);
}

static char *
when(int64_t t, int parsable)
{
	char b[64];
	if (parsable) {
		snprintf(b, sizeof(b), "%lld", (long long)t);
	} else {
		time_t tt = (time_t)t;
		struct tm tm;
		localtime_r(&tt, &tm);
		strftime(b, sizeof(b), "%Y-%m-%d %H:%M:%S", &tm);
	}
	return xstrdup(b);
}

static void
client_usage(FILE *f)
{
	fprintf(f,
	    "usage: cask client list [-H] [-p] [-j] [-o FIELD,...]\n"
	    "                                   the clients connected to caskd's frontends (NBD):\n"
	    "                                   id, peer (address, or uid and pid for a unix socket),\n"
	    "                                   export, since, idle seconds, bytes in and out,\n"
	    "                                   requests in flight and bytes queued\n"
	    "       cask client kill ID         disconnect a client (its requests in flight finish)\n"
	    "\n"
	    "A client holding a volume makes vol destroy, vol rollback, snap destroy and pool\n"
	    "export fail with BUSY naming it; their --force disconnects such clients first.\n");
}

int
cmd_client(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		client_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	cask_client *c;
	int rc = 0;
	if (strcmp(argv[1], "list") == 0) {
		out_opts o = { 0 };
		int ch;
		optind = 1;
		while ((ch = getopt(argc - 1, argv + 1, "Hpjo:")) != -1)
			if (!parse_out_opt(ch, optarg, &o))
				return usage_error("bad option for client list");
		if (optind != argc - 1)
			return usage_error("client list takes no arguments");
		if ((c = cli_connect()) == NULL)
			return EXIT_FAIL;
		cask_conn_info *l;
		size_t n;
		if (cask_conn_list(c, &l, &n) != 0) {
			rc = cli_fail("client list");
		} else {
			table t = { client_cols, (int)ARRAY_SIZE(client_cols), NULL, 0 };
			for (size_t i = 0; i < n; i++) {
				char **r = xcalloc(ARRAY_SIZE(client_cols), sizeof(char *));
				r[0] = fmt_u64(l[i].id);
				r[1] = xstrdup(l[i].frontend);
				r[2] = xstrdup(l[i].peer);
				r[3] = opt_long(l[i].uid);
				r[4] = opt_long(l[i].pid);
				r[5] = xstrdup(l[i].export_name[0] ? l[i].export_name : "-");
				r[6] = xstrdup(l[i].state);
				r[7] = when(l[i].since, o.parsable || o.json);
				r[8] = fmt_u64((uint64_t)(l[i].idle > 0 ? l[i].idle : 0));
				r[9] = fmt_u64(l[i].bytes_in);
				r[10] = fmt_u64(l[i].bytes_out);
				r[11] = fmt_u64((uint64_t)(l[i].requests > 0 ? l[i].requests : 0));
				r[12] = fmt_u64(l[i].queued_bytes);
				r[13] = xstrdup(l[i].tls[0] ? l[i].tls : "-");
				table_add(&t, r);
			}
			rc = table_print(&t, &o, "id,frontend,peer,uid,export,state,since,idle,bytes_in,bytes_out,requests");
			table_free(&t);
			free(l);
		}
		cask_disconnect(c);
		return rc;
	}
	if (strcmp(argv[1], "kill") == 0 && argc == 3) {
		char *end;
		uint64_t id = strtoull(argv[2], &end, 10);
		if (*end != '\0' || argv[2][0] < '0' || argv[2][0] > '9')
			return usage_error("'%s' is not a client id (cask client list)", argv[2]);
		if ((c = cli_connect()) == NULL)
			return EXIT_FAIL;
		rc = cask_conn_kill(c, id) ? cli_fail_code("client kill") : 0;
		cask_disconnect(c);
		return rc;
	}
	return usage_error("unknown client command (list, kill ID)");
}
