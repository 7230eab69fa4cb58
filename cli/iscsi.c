/*
 * iscsi.c -- `cask iscsi ...`: the iSCSI target's configuration (docs/iscsi.md §14).
 *
 *   cask iscsi config [-H] [-p] [-j] [-o FIELD,...]
 *   cask iscsi set PROP=VALUE... [POOL/VOL]      acl, auth, blocksize
 *   cask iscsi chap set [--target POOL/VOL] [--user NAME] [--secret-file F]
 *                       [--mutual-user NAME --mutual-secret-file F]
 *   cask iscsi chap unset [--target POOL/VOL] [--mutual]
 *
 * Secrets are read from a file or from standard input, never from the
 * command line (it is visible to every user in ps), and never printed.
 */
#include "cli.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
iscsi_usage(FILE *f)
{
	fprintf(f,
	    "usage: cask iscsi config [-H] [-p] [-j] [-o FIELD,...]\n"
	    "                              the daemon-wide entry and each configured volume: target,\n"
	    "                              iqn, auth, acl, blocksize, chap_user, chap_secret (set|-),\n"
	    "                              mutual_user, mutual_secret (set|-), discovery_auth;\n"
	    "                              secrets are never shown\n"
	    "       cask iscsi set PROP=VALUE... [POOL/VOL]\n"
	    "                              acl=IQN[,IQN...] (an entry ending in '*' matches a prefix;\n"
	    "                              '*' alone: any initiator, the default), auth=default|none|\n"
	    "                              chap|mutual, blocksize=512|4096; without POOL/VOL only auth\n"
	    "                              (the daemon-wide default, over caskd --iscsi-auth) and\n"
	    "                              discovery_auth=default|none|chap|mutual (discovery sessions,\n"
	    "                              with the daemon-wide CHAP secret; over --iscsi-discovery-auth)\n"
	    "       cask iscsi chap set [--target POOL/VOL] [--user NAME [--secret-file FILE]]\n"
	    "                           [--mutual-user NAME --mutual-secret-file FILE]\n"
	    "                              CHAP secrets (12 to 255 bytes) of a volume's target, or the\n"
	    "                              daemon-wide ones; the initiator's secret comes from FILE or,\n"
	    "                              without --secret-file, from the first line of standard input\n"
	    "       cask iscsi chap unset [--target POOL/VOL] [--mutual]\n"
	    "\n"
	    "Also: cask vol set iscsi_acl=... iscsi_auth=... iscsi_blocksize=... POOL/VOL.\n"
	    "A change applies to the next login; sessions logged in are kept (cask client kill ends one).\n");
}

/* One secret from a file or stdin ("-"): its first line, without the newline. */
static char *
read_secret(const char *path, const char *what)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	if (f == NULL) {
		fprintf(stderr, "cask: %s: %s: %s\n", what, path, strerror(errno));
		return NULL;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, f);
	if (f != stdin)
		fclose(f);
	if (n <= 0) {
		fprintf(stderr, "cask: %s: %s holds no secret\n", what, strcmp(path, "-") == 0 ? "standard input" : path);
		free(line);
		return NULL;
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	return line;
}

static void
wipe_free(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static int
chap_cmd(int argc, char **argv)
{
	if (argc < 2)
		return usage_error("iscsi chap needs set or unset");
	int set = strcmp(argv[1], "set") == 0;
	if (!set && strcmp(argv[1], "unset") != 0)
		return usage_error("unknown iscsi chap command '%s' (set, unset)", argv[1]);
	const char *target = NULL, *user = NULL, *sfile = NULL, *muser = NULL, *mfile = NULL;
	int mutual = 0;
	static const struct option lo[] = { { "target", 1, NULL, 't' }, { "user", 1, NULL, 'u' },
		{ "secret-file", 1, NULL, 's' }, { "mutual-user", 1, NULL, 'U' }, { "mutual-secret-file", 1, NULL, 'S' },
		{ "mutual", 0, NULL, 'm' }, { "secret", 1, NULL, 'X' }, { NULL, 0, NULL, 0 } };
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc - 1, argv + 1, "", lo, NULL)) != -1) {
		switch (ch) {
		case 't': target = optarg; break;
		case 'u': user = optarg; break;
		case 's': sfile = optarg; break;
		case 'U': muser = optarg; break;
		case 'S': mfile = optarg; break;
		case 'm': mutual = 1; break;
		case 'X': return usage_error("a secret is never given on the command line (ps shows it to everyone): "
		    "--secret-file FILE, or standard input");
		default: return EXIT_USAGE;
		}
	}
	if (optind != argc - 1)
		return usage_error("iscsi chap %s takes options only", argv[1]);
	if (set && mutual)
		return usage_error("--mutual is for chap unset; chap set takes --mutual-user and --mutual-secret-file");
	if (!set && (user || sfile || muser || mfile))
		return usage_error("chap unset takes --target and --mutual only");
	if (set && user == NULL && muser == NULL)
		return usage_error("chap set needs --user, --mutual-user or both");
	if (set && sfile != NULL && user == NULL)
		return usage_error("--secret-file needs --user");
	if (set && (muser == NULL) != (mfile == NULL))
		return usage_error("mutual CHAP needs --mutual-user and --mutual-secret-file");
	if (set && sfile == NULL && mfile != NULL && strcmp(mfile, "-") == 0 && user != NULL)
		return usage_error("only one secret can come from standard input; give --secret-file");
	char *secret = NULL, *msecret = NULL;
	if (set && user != NULL && (secret = read_secret(sfile ? sfile : "-", "CHAP secret")) == NULL)
		return EXIT_FAIL;
	if (set && muser != NULL && (msecret = read_secret(mfile, "mutual CHAP secret")) == NULL) {
		wipe_free(secret);
		return EXIT_FAIL;
	}
	cask_client *c = cli_connect();
	int rc = EXIT_FAIL;
	if (c != NULL) {
		if (set)
			rc = cask_iscsi_chap_set(c, target, user, secret, muser, msecret) ? cli_fail_code("iscsi chap set") : 0;
		else
			rc = cask_iscsi_chap_unset(c, target, mutual) ? cli_fail_code("iscsi chap unset") : 0;
		cask_disconnect(c);
	}
	wipe_free(secret);
	wipe_free(msecret);
	return rc;
}

/* Shared with `cask vol set iscsi_*=...`: prop without its "iscsi_" prefix. */
int
cli_iscsi_set(cask_client *c, const char *target, const char *prop, const char *value)
{
	return cask_iscsi_set(c, target, prop, value) ? cli_fail_code("iscsi set") : 0;
}

static int
set_cmd(int argc, char **argv)
{
	const char *target = NULL;
	int n = argc - 1;
	if (n >= 1 && strchr(argv[argc - 1], '=') == NULL) {
		target = argv[argc - 1];
		n--;
	}
	if (n < 1)
		return usage_error("iscsi set needs PROP=VALUE");
	for (int i = 1; i <= n; i++)
		if (strchr(argv[i], '=') == NULL || argv[i][0] == '=')
			return usage_error("iscsi set needs PROP=VALUE, got '%s'", argv[i]);
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	int rc = 0;
	for (int i = 1; i <= n && rc == 0; i++) {
		char *eq = strchr(argv[i], '=');
		*eq = '\0';
		const char *p = strncmp(argv[i], "iscsi_", 6) == 0 ? argv[i] + 6 : argv[i];
		rc = cli_iscsi_set(c, target, p, eq + 1);
	}
	cask_disconnect(c);
	return rc;
}

static const col cfg_cols[] = {
	{ "target", "TARGET", COL_STR }, { "iqn", "IQN", COL_STR }, { "auth", "AUTH", COL_STR },
	{ "acl", "ACL", COL_STR }, { "blocksize", "BLOCKSIZE", COL_STR }, { "chap_user", "CHAP_USER", COL_STR },
	{ "chap_secret", "SECRET", COL_STR }, { "mutual_user", "MUTUAL_USER", COL_STR },
	{ "mutual_secret", "MUTUAL_SECRET", COL_STR }, { "discovery_auth", "DISCOVERY_AUTH", COL_STR },
};

static char *
dash_or(const char *s)
{
	return xstrdup(s && s[0] ? s : "-");
}

static int
config_cmd(int argc, char **argv)
{
	out_opts o = { 0 };
	int ch;
	optind = 1;
	while ((ch = getopt(argc, argv, "Hpjo:")) != -1)
		if (!parse_out_opt(ch, optarg, &o))
			return usage_error("bad option for iscsi config");
	if (optind != argc)
		return usage_error("iscsi config takes no arguments");
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	cask_iscsi_entry *l;
	size_t n;
	int rc = 0;
	if (cask_iscsi_config(c, &l, &n) != 0) {
		rc = cli_fail_code("iscsi config");
	} else {
		table t = { cfg_cols, (int)ARRAY_SIZE(cfg_cols), NULL, 0 };
		for (size_t i = 0; i < n; i++) {
			char **r = xcalloc(ARRAY_SIZE(cfg_cols), sizeof(char *));
			r[0] = xstrdup(l[i].target[0] ? l[i].target : "(daemon)");
			r[1] = dash_or(l[i].iqn);
			r[2] = dash_or(l[i].auth);
			char acl[CASK_ISCSI_ACL_MAX * 225 + 1] = "";
			size_t k = 0;
			for (unsigned j = 0; j < l[i].nacl; j++)
				k += (size_t)snprintf(acl + k, sizeof(acl) - k, "%s%s", j ? "," : "", l[i].acl[j]);
			r[3] = dash_or(acl);
			r[4] = l[i].blocksize ? fmt_u64(l[i].blocksize) : xstrdup("-");
			r[5] = dash_or(l[i].chap_user);
			r[6] = xstrdup(l[i].chap_secret ? "set" : "-");
			r[7] = dash_or(l[i].mutual_user);
			r[8] = xstrdup(l[i].mutual_secret ? "set" : "-");
			r[9] = dash_or(l[i].discovery_auth);
			table_add(&t, r);
		}
		rc = table_print(&t, &o, "target,auth,acl,blocksize,chap_user,chap_secret,mutual_user,mutual_secret");
		table_free(&t);
		free(l);
	}
	cask_disconnect(c);
	return rc;
}

int
cmd_iscsi(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		iscsi_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	if (strcmp(argv[1], "config") == 0)
		return config_cmd(argc - 1, argv + 1);
	if (strcmp(argv[1], "set") == 0)
		return set_cmd(argc - 1, argv + 1);
	if (strcmp(argv[1], "chap") == 0)
		return chap_cmd(argc - 1, argv + 1);
	return usage_error("unknown iscsi command '%s' (config, set, chap)", argv[1]);
}
