/*
 * send.c -- cask send, cask recv, cask vol diff, cask job.
 *
 * send and recv hand their stdout / stdin to caskd (SCM_RIGHTS), which
 * runs the transfer as a job; the CLI follows the job's progress and
 * reports its outcome. If the CLI is interrupted, its connection closes
 * and caskd cancels the job (a receive then stays resumable).
 */
#include "cli.h"
#include "util.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void
human(uint64_t b, char *out, size_t len)
{
	const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)b;
	int i = 0;
	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	snprintf(out, len, i ? "%.2f %s" : "%.0f %s", v, u[i]);
}

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Follow job id until it ends: on a terminal a line that updates in place
 * (bytes, rate, ETA); with verbose and no terminal a line a second; else
 * quiet. Returns the exit status.
 */
static int
follow(cask_client *c, uint64_t id, const char *what, int verbose)
{
	int tty = isatty(STDERR_FILENO);
	double t0 = now_s(), last = 0;
	cask_job_info j;
	for (;;) {
		if (cask_job_wait(c, id, 250, &j) != 0)
			return cli_fail(what);
		int ended = strcmp(j.state, "running") != 0;
		double t = now_s() - t0;
		if ((tty || verbose) && (tty || t - last >= 1.0 || ended)) {
			char d[32], tot[32], r[32];
			human(j.done, d, sizeof(d));
			human(j.total, tot, sizeof(tot));
			double rate = t > 0 ? (double)j.done / t : 0;
			human((uint64_t)rate, r, sizeof(r));
			char eta[32] = "";
			if (!ended && j.total > j.done && rate > 0)
				snprintf(eta, sizeof(eta), "  ETA %.0fs", (double)(j.total - j.done) / rate);
			fprintf(stderr, "%s%s %s%s%s  %s/s%s%s", tty ? "\r" : "", what, d, j.total ? " of " : "",
			    j.total ? tot : "", r, eta, tty ? "   " : "\n");
			last = t;
		}
		if (ended)
			break;
	}
	if (tty)
		fprintf(stderr, "\n");
	if (strcmp(j.state, "done") != 0) {
		fprintf(stderr, "cask %s: %s\n", what, j.message[0] ? j.message : j.state);
		return EXIT_FAIL;
	}
	if (verbose && j.result[0])
		fprintf(stderr, "%s %s\n", strcmp(what, "send") == 0 ? "sent" : "received", j.result);
	return 0;
}

static void
send_usage(FILE *f)
{
	fprintf(f,
	    "usage: cask send [-v] [--no-policy] [-i FROM] POOL/VOL@SNAP > STREAM\n"
	    "       cask send [-v] [--no-policy] -t TOKEN > STREAM\n"
	    "\n"
	    "Write a send stream (docs/send-stream.md) of the snapshot to stdout: all of it,\n"
	    "or with -i only what changed since FROM (POOL/VOL@SNAP or @SNAP: an earlier\n"
	    "snapshot of the volume, or of the origin it was cloned from). -t continues a\n"
	    "receive that stopped, from the target's receive_resume_token. On a terminal,\n"
	    "progress goes to stderr; -v prints it when piped too. caskd does the work;\n"
	    "interrupting this command cancels it.\n"
	    "\n"
	    "The stream carries the volume's snapshot policy (cask schedule), as it is\n"
	    "now, so that `cask recv` can install it; such a stream is version 2, which\n"
	    "a cask older than policies in streams refuses. --no-policy leaves it out\n"
	    "(a version 1 stream, which every cask reads).\n");
}

int
cmd_send(int argc, char **argv)
{
	cask_send_args a = CASK_SEND_ARGS_INIT;
	int verbose = 0, ch;
	static const struct option lo[] = { { "help", 0, NULL, 'h' }, { "no-policy", 0, NULL, 'P' }, { 0, 0, 0, 0 } };
	optind = 1;
	while ((ch = getopt_long(argc, argv, "+vi:t:h", lo, NULL)) != -1) {
		if (ch == 'v')
			verbose = 1;
		else if (ch == 'i')
			a.from = optarg;
		else if (ch == 't')
			a.token = optarg;
		else if (ch == 'P')
			a.no_policy = 1;
		else if (ch == 'h') {
			send_usage(stdout);
			return 0;
		} else
			return usage_error("bad option for send");
	}
	const char *snap = optind < argc ? argv[optind] : NULL;
	if (a.token != NULL ? (snap != NULL || a.from != NULL) : (argc - optind != 1))
		return usage_error("send needs one POOL/VOL@SNAP (and -i FROM), or -t TOKEN alone");
	if (snap != NULL && (strchr(snap, '/') == NULL || strchr(snap, '@') == NULL))
		return usage_error("'%s' is not a snapshot (POOL/VOL@SNAP)", snap);
	if (isatty(STDOUT_FILENO)) {
		fprintf(stderr, "cask send: refusing to write a stream to a terminal: redirect it to a file "
		    "or a pipe\n");
		return EXIT_USAGE;
	}
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	uint64_t id;
	int rc = cask_send(c, snap, &a, STDOUT_FILENO, &id) ? cli_fail("send") : follow(c, id, "send", verbose);
	cask_disconnect(c);
	return rc;
}

static void
recv_usage(FILE *f)
{
	fprintf(f,
	    "usage: cask recv [-v] [-F] [--no-policy] POOL/VOL < STREAM\n"
	    "       cask recv -A POOL/VOL\n"
	    "\n"
	    "Read a send stream from stdin. A full stream creates POOL/VOL; an incremental\n"
	    "one applies onto POOL/VOL, whose newest snapshot must be the stream's base and\n"
	    "which must be unchanged since (-F rolls it back first). Either way the\n"
	    "snapshot POOL/VOL@SNAP is made, named as on the source, and only when the\n"
	    "whole stream arrived intact. A stream that stops early or is damaged leaves a\n"
	    "partial receive: `cask vol get receive_resume_token POOL/VOL` gives the token\n"
	    "for `cask send -t`; -A abandons it (a full receive's volume is destroyed, an\n"
	    "incremental one rolled back to its base). -v: progress when piped too.\n"
	    "\n"
	    "A stream that carries a snapshot policy (cask send without --no-policy, of a\n"
	    "volume with one) installs it on POOL/VOL with the snapshot, when POOL/VOL has\n"
	    "no policy; a volume that has one keeps its own, and caskd logs that the\n"
	    "stream's was not installed. --no-policy never installs one. Automatic\n"
	    "snapshots that POOL/VOL's own policy took after the stream's base make an\n"
	    "incremental stream refused; -F destroys them first (never a snapshot taken\n"
	    "by hand). A volume that goes on receiving incremental streams is best\n"
	    "received with --no-policy.\n");
}

int
cmd_recv(int argc, char **argv)
{
	int verbose = 0, force = 0, abandon = 0, nopol = 0, ch;
	static const struct option lo[] = { { "help", 0, NULL, 'h' }, { "no-policy", 0, NULL, 'P' }, { 0, 0, 0, 0 } };
	optind = 1;
	while ((ch = getopt_long(argc, argv, "+vFAh", lo, NULL)) != -1) {
		if (ch == 'v')
			verbose = 1;
		else if (ch == 'F')
			force = 1;
		else if (ch == 'A')
			abandon = 1;
		else if (ch == 'P')
			nopol = 1;
		else if (ch == 'h') {
			recv_usage(stdout);
			return 0;
		} else
			return usage_error("bad option for recv");
	}
	if (argc - optind != 1 || strchr(argv[optind], '/') == NULL || strchr(argv[optind], '@') != NULL)
		return usage_error("recv needs one POOL/VOL");
	const char *vol = argv[optind];
	if (!abandon && isatty(STDIN_FILENO)) {
		fprintf(stderr, "cask recv: refusing to read a stream from a terminal: redirect a file or a "
		    "pipe to it\n");
		return EXIT_USAGE;
	}
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	int rc;
	if (abandon) {
		rc = cask_recv_abandon(c, vol) ? cli_fail("recv -A") : 0;
	} else {
		uint64_t id;
		cask_recv_args ra = CASK_RECV_ARGS_INIT;
		ra.force = force;
		ra.no_policy = nopol;
		rc = cask_recv(c, vol, &ra, STDIN_FILENO, &id, NULL, 0) ? cli_fail("recv")
								      : follow(c, id, "receive", verbose);
	}
	cask_disconnect(c);
	return rc;
}

static const col diff_cols[] = {
	{ "offset", "OFFSET", COL_NUM }, { "length", "LENGTH", COL_NUM }, { "type", "TYPE", COL_STR },
};

/* cask vol diff [-H] [-p] [-j] [-o ...] POOL/VOL@A [POOL/VOL@B | POOL/VOL] */
int
cmd_vol_diff(int argc, char **argv)
{
	out_opts o = { 0 };
	int ch;
	optind = 1;
	while ((ch = getopt(argc, argv, "Hpjo:")) != -1)
		if (!parse_out_opt(ch, optarg, &o))
			return usage_error("bad option for vol diff");
	if (argc - optind < 1 || argc - optind > 2)
		return usage_error("vol diff needs POOL/VOL@A and optionally POOL/VOL@B or POOL/VOL");
	const char *from = argv[optind];
	char to[700];
	const char *at = strchr(from, '@');
	if (at == NULL || strchr(from, '/') == NULL)
		return usage_error("'%s' is not a snapshot (POOL/VOL@SNAP)", from);
	if (argc - optind == 2)
		snprintf(to, sizeof(to), "%s", argv[optind + 1]);
	else
		snprintf(to, sizeof(to), "%.*s", (int)(at - from), from); /* the volume itself */
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	cask_diff_iter *it;
	cask_extent e;
	int rc = 0, r;
	table t = { diff_cols, (int)ARRAY_SIZE(diff_cols), NULL, 0 };
	if (cask_diff_begin(c, from, to, &it) != 0) {
		rc = cli_fail("vol diff");
	} else {
		while ((r = cask_diff_next(it, &e)) == 1) {
			char **row = xcalloc(ARRAY_SIZE(diff_cols), sizeof(char *));
			row[0] = fmt_u64(e.offset);
			row[1] = fmt_u64(e.length);
			row[2] = xstrdup(e.hole ? "hole" : "data");
			table_add(&t, row);
		}
		rc = r < 0 ? cli_fail("vol diff") : table_print(&t, &o, "offset,length,type");
		cask_diff_end(it);
	}
	table_free(&t);
	cask_disconnect(c);
	return rc;
}

static const col job_cols[] = {
	{ "id", "ID", COL_NUM }, { "kind", "KIND", COL_STR }, { "target", "TARGET", COL_STR },
	{ "state", "STATE", COL_STR }, { "done", "DONE", COL_SIZE }, { "total", "TOTAL", COL_SIZE },
	{ "elapsed_ms", "MS", COL_NUM }, { "result", "RESULT", COL_STR }, { "error", "ERROR", COL_STR },
	{ "rate", "RATE/S", COL_SIZE }, { "eta", "ETA_S", COL_STR },
};

/* cask job list [-H -p -j -o] | cancel ID | wait ID */
int
cmd_job(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		fprintf(argc < 2 ? stderr : stdout,
		    "usage: cask job list [-H] [-p] [-j] [-o FIELD,...]   running and recent send, receive and rebuild jobs\n"
		    "       cask job cancel ID                          stop one (a receive stays resumable)\n"
		    "       cask job wait ID                            until it ends; its outcome\n");
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
				return usage_error("bad option for job list");
		if ((c = cli_connect()) == NULL)
			return EXIT_FAIL;
		cask_job_info *l;
		size_t n;
		if (cask_job_list(c, &l, &n) != 0) {
			rc = cli_fail("job list");
		} else {
			table t = { job_cols, (int)ARRAY_SIZE(job_cols), NULL, 0 };
			for (size_t i = 0; i < n; i++) {
				char **r = xcalloc(ARRAY_SIZE(job_cols), sizeof(char *));
				r[0] = fmt_u64(l[i].id);
				r[1] = xstrdup(l[i].kind);
				r[2] = xstrdup(l[i].target);
				r[3] = xstrdup(l[i].state);
				r[4] = fmt_u64(l[i].done);
				r[5] = fmt_u64(l[i].total);
				r[6] = fmt_u64(l[i].elapsed_ms);
				r[7] = xstrdup(l[i].result[0] ? l[i].result : "-");
				r[8] = xstrdup(l[i].message[0] ? l[i].message : "-");
				/* the average rate since the job began, and the time left at that rate */
				uint64_t rate = l[i].elapsed_ms ? l[i].done * 1000 / l[i].elapsed_ms : 0;
				r[9] = fmt_u64(rate);
				if (strcmp(l[i].state, "running") == 0 && rate > 0 && l[i].total >= l[i].done)
					r[10] = fmt_u64((l[i].total - l[i].done) / rate);
				else
					r[10] = xstrdup("-");
				table_add(&t, r);
			}
			rc = table_print(&t, &o, "id,kind,target,state,done,total,rate,eta,result");
			table_free(&t);
			free(l);
		}
		cask_disconnect(c);
		return rc;
	}
	if ((strcmp(argv[1], "cancel") == 0 || strcmp(argv[1], "wait") == 0) && argc == 3) {
		char *end;
		uint64_t id = strtoull(argv[2], &end, 10);
		if (*end != '\0' || argv[2][0] == '\0')
			return usage_error("'%s' is not a job id", argv[2]);
		if ((c = cli_connect()) == NULL)
			return EXIT_FAIL;
		cask_job_info j;
		if (strcmp(argv[1], "cancel") == 0)
			rc = cask_job_cancel(c, id) ? cli_fail("job cancel") : 0;
		else if (cask_job_wait(c, id, -1, &j) != 0)
			rc = cli_fail("job wait");
		else {
			/* done: what it made; failed or cancelled: the message and the stable code */
			if (j.result[0] || strcmp(j.state, "done") == 0)
				printf("job %llu %s%s%s\n", (unsigned long long)id, j.state, j.result[0] ? ": " : "", j.result);
			else
				printf("job %llu %s: %s%s%s%s\n", (unsigned long long)id, j.state, j.message,
				    j.code[0] ? " (" : "", j.code, j.code[0] ? ")" : "");
			rc = strcmp(j.state, "done") == 0 ? 0 : EXIT_FAIL;
		}
		cask_disconnect(c);
		return rc;
	}
	return usage_error("unknown job command (list, cancel ID, wait ID)");
}
