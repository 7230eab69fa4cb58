/*
 * cask -- the command line for caskd, a thin program over libcask.
 *
 *   cask [--socket PATH] pool|vol|snap|schedule|send|recv|job|client|iscsi|apply|get COMMAND ...
 *
 * Every error is one line on stderr and a non-zero exit status: 1 when
 * the operation failed (or caskd cannot be reached), 2 for a usage error.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: cask [--socket PATH] COMMAND ...\n"
	    "\n"
	    "Manage the pools and volumes of a running caskd.\n"
	    "\n"
	    "  pool create|list|status|export|import|destroy ...   (cask pool --help)\n"
	    "  vol  create|list|get|set|resize|rename|destroy ...  (cask vol --help)\n"
	    "  snap create|list|destroy|hold|release|holds ...     (cask snap --help)\n"
	    "  schedule list|run|set|remove ...  snapshot policies caskd runs (cask schedule --help)\n"
	    "  send [-i FROM] POOL/VOL@SNAP > STREAM | send -t TOKEN  (cask send --help)\n"
	    "  recv [-F] POOL/VOL < STREAM | recv -A POOL/VOL      (cask recv --help)\n"
	    "  job list|cancel|wait ...  send, receive and rebuild jobs in caskd\n"
	    "  client list|kill ...    the clients connected to caskd's NBD server (cask client --help)\n"
	    "  iscsi config|set|chap ...  the iSCSI target's ACLs, CHAP and block size (cask iscsi --help)\n"
	    "  apply -f FILE [--dry-run] [--prune]  make the state match a manifest (cask apply --help)\n"
	    "  get manifest [POOL...]  print the state as a manifest (cask get --help)\n"
	    "  version                 the versions of cask and of the caskd it reaches\n"
	    "\n"
	    "  --socket PATH           caskd's control socket (default: $CASK_SOCKET,\n"
	    "                          else %s)\n"
	    "  -h, --help              this help\n"
	    "\n"
	    "Exit status: 0 success, 1 the operation failed, 2 usage error.\n", cask_default_socket());
}

int
main(int argc, char **argv)
{
	int i = 1;
	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		}
		if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
			cli_socket = argv[i + 1];
			i += 2;
			continue;
		}
		if (strncmp(argv[i], "--socket=", 9) == 0) {
			cli_socket = argv[i] + 9;
			i++;
			continue;
		}
		return usage_error("unknown option '%s'", argv[i]);
	}
	if (i == argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[i];
	if (strcmp(cmd, "pool") == 0)
		return cmd_pool(argc - i, argv + i);
	if (strcmp(cmd, "vol") == 0)
		return cmd_vol(argc - i, argv + i);
	if (strcmp(cmd, "snap") == 0)
		return cmd_snap(argc - i, argv + i);
	if (strcmp(cmd, "schedule") == 0)
		return cmd_schedule(argc - i, argv + i);
	if (strcmp(cmd, "send") == 0)
		return cmd_send(argc - i, argv + i);
	if (strcmp(cmd, "recv") == 0 || strcmp(cmd, "receive") == 0)
		return cmd_recv(argc - i, argv + i);
	if (strcmp(cmd, "job") == 0)
		return cmd_job(argc - i, argv + i);
	if (strcmp(cmd, "client") == 0)
		return cmd_client(argc - i, argv + i);
	if (strcmp(cmd, "iscsi") == 0)
		return cmd_iscsi(argc - i, argv + i);
	if (strcmp(cmd, "apply") == 0)
		return cmd_apply(argc - i, argv + i);
	if (strcmp(cmd, "get") == 0)
		return cmd_get(argc - i, argv + i);
	if (strcmp(cmd, "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(cmd, "version") == 0) {
		printf("cask 0.1.0\n");
		cask_client *c = cli_connect();
		if (c == NULL)
			return EXIT_FAIL;
		char v[64];
		int proto;
		int rc = cask_hello(c, v, sizeof(v), &proto) ? cli_fail("version") : 0;
		if (rc == 0)
			printf("caskd %s (control protocol %d)\n", v, proto);
		cask_disconnect(c);
		return rc;
	}
	return usage_error("unknown command '%s'", cmd);
}
