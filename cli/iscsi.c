/*
 * iscsi.c -- `cask iscsi ...`: the iSCSI target's configuration (docs/iscsi.md §14).
 *
 *   cask iscsi config [-H] [-p] [-j] [-o FIELD,...]
 *   cask iscsi set PROP=VALUE... [POOL/VOL]      acl, auth, blocksize
 *   cask iscsi chap set [--target POOL/VOL] [--user NAME] [--secret-file F]
 *                       [--mutual-user NAME --mutual-secret-file F]
 *   cask iscsi chap unset [--target POOL/VOL] [--mutual]
 *   cask iscsi targets [-H] [-p] [-j] [-o FIELD,...] [POOL]
 *   cask iscsi sessions [-H] [-p] [-j] [-o FIELD,...] [TARGET|POOL/VOL]
 *   cask iscsi logout [--force] TSIH
 *   cask iscsi pr [-H] [-p] [-j] [-o FIELD,...] TARGET|POOL/VOL
 *
 * Secrets are read from a file or from standard input, never from the
 * command line (it is visible to every user in ps), and never printed.
 */
#include "cli.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
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
	    "       cask iscsi targets [-H] [-p] [-j] [-o FIELD,...] [POOL]\n"
	    "                              every exported volume and snapshot: iqn, volume, state (ok, or\n"
	    "                              conflict/no-name: not served), lun, size, blocksize, ro, auth,\n"
	    "                              chap and mutual_chap (on|off: whether secrets are set, never\n"
	    "                              the secrets), acl, portals, sessions\n"
	    "       cask iscsi sessions [-H] [-p] [-j] [-o FIELD,...] [TARGET|POOL/VOL]\n"
	    "                              the sessions logged in: tsih, initiator, isid, target, volume,\n"
	    "                              address, portal, state, since, header_digest, data_digest,\n"
	    "                              chap, commands (in flight)\n"
	    "       cask iscsi logout [--force] TSIH\n"
	    "                              end a session: an Async logout request, dropped if the\n"
	    "                              initiator has not logged out in 3 s (--force: at once);\n"
	    "                              its commands in flight are answered first\n"
	    "       cask iscsi pr [-H] [-p] [-j] [-o FIELD,...] TARGET|POOL/VOL\n"
	    "                              persistent reservations: generation, reservation type, APTPL,\n"
	    "                              and each registration: key, initiator_port, holder\n"
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

/* ---- the live state ---- */

/* -H -p -j -o, then at most max_args operands (argv[optind..]); -1 after a usage error. */
static int
out_args(int argc, char **argv, out_opts *o, int max_args, const char *what)
{
	int ch;
	optind = 1;
	while ((ch = getopt(argc, argv, "Hpjo:")) != -1)
		if (!parse_out_opt(ch, optarg, o)) {
			usage_error("bad option for iscsi %s", what);
			return -1;
		}
	if (argc - optind > max_args) {
		usage_error("iscsi %s takes at most %d argument%s", what, max_args, max_args == 1 ? "" : "s");
		return -1;
	}
	return argc - optind;
}

static char *
joined(const char (*v)[224], unsigned n)
{
	size_t cap = (size_t)n * 225 + 2, k = 0;
	char *s = xcalloc(1, cap);
	for (unsigned i = 0; i < n; i++)
		k += (size_t)snprintf(s + k, cap - k, "%s%s", i ? "," : "", v[i]);
	if (n == 0)
		snprintf(s, cap, "-");
	return s;
}

static const col tgt_cols[] = {
	{ "iqn", "TARGET", COL_STR }, { "volume", "VOLUME", COL_STR }, { "state", "STATE", COL_STR },
	{ "lun", "LUN", COL_NUM }, { "size", "SIZE", COL_SIZE }, { "blocksize", "BLOCKSIZE", COL_NUM },
	{ "ro", "RO", COL_STR }, { "auth", "AUTH", COL_STR }, { "chap", "CHAP", COL_STR },
	{ "mutual_chap", "MUTUAL_CHAP", COL_STR }, { "acl", "ACL", COL_STR }, { "portals", "PORTALS", COL_STR },
	{ "sessions", "SESSIONS", COL_NUM },
};

static int
targets_cmd(int argc, char **argv)
{
	out_opts o = { 0 };
	int nargs = out_args(argc, argv, &o, 1, "targets");
	if (nargs < 0)
		return EXIT_USAGE;
	const char *pool = nargs ? argv[optind] : NULL;
	if (pool != NULL && strchr(pool, '/') != NULL)
		return usage_error("iscsi targets takes a POOL, got '%s'", pool);
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	cask_iscsi_target *l;
	size_t n;
	int rc = 0;
	if (cask_iscsi_targets(c, pool, &l, &n) != 0) {
		rc = cli_fail_code("iscsi targets");
	} else {
		table t = { tgt_cols, (int)ARRAY_SIZE(tgt_cols), NULL, 0 };
		for (size_t i = 0; i < n; i++) {
			char **r = xcalloc(ARRAY_SIZE(tgt_cols), sizeof(char *));
			r[0] = dash_or(l[i].iqn);
			r[1] = xstrdup(l[i].volume);
			r[2] = xstrdup(l[i].state);
			r[3] = fmt_u64(l[i].lun);
			r[4] = fmt_u64(l[i].size);
			r[5] = fmt_u64(l[i].blocksize);
			r[6] = xstrdup(l[i].read_only ? "on" : "off");
			r[7] = xstrdup(l[i].auth);
			r[8] = xstrdup(l[i].chap ? "on" : "off");
			r[9] = xstrdup(l[i].mutual_chap ? "on" : "off");
			r[10] = joined((const char (*)[224])l[i].acl, l[i].nacl);
			char pt[CASK_ISCSI_PORTALS_MAX * 321 + 2] = "";
			size_t k = 0;
			for (unsigned j = 0; j < l[i].nportals; j++)
				k += (size_t)snprintf(pt + k, sizeof(pt) - k, "%s%s", j ? "," : "", l[i].portals[j]);
			r[11] = dash_or(pt);
			r[12] = fmt_u64(l[i].sessions);
			table_add(&t, r);
		}
		rc = table_print(&t, &o, o.json ? "iqn,volume,state,lun,size,blocksize,ro,auth,chap,mutual_chap,acl,portals,"
		    "sessions" : "iqn,volume,state,lun,size,auth,chap,acl,sessions");
		table_free(&t);
		free(l);
	}
	cask_disconnect(c);
	return rc;
}

static const col sess_cols[] = {
	{ "tsih", "TSIH", COL_NUM }, { "initiator", "INITIATOR", COL_STR }, { "isid", "ISID", COL_STR },
	{ "target", "TARGET", COL_STR }, { "volume", "VOLUME", COL_STR }, { "address", "ADDRESS", COL_STR },
	{ "portal", "PORTAL", COL_STR }, { "state", "STATE", COL_STR }, { "since", "SINCE", COL_NUM },
	{ "header_digest", "HDIGEST", COL_STR }, { "data_digest", "DDIGEST", COL_STR }, { "chap", "CHAP", COL_STR },
	{ "commands", "CMDS", COL_NUM },
};

static int
sessions_cmd(int argc, char **argv)
{
	out_opts o = { 0 };
	int nargs = out_args(argc, argv, &o, 1, "sessions");
	if (nargs < 0)
		return EXIT_USAGE;
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	cask_iscsi_session *l;
	size_t n;
	int rc = 0;
	if (cask_iscsi_sessions(c, nargs ? argv[optind] : NULL, &l, &n) != 0) {
		rc = cli_fail_code("iscsi sessions");
	} else {
		table t = { sess_cols, (int)ARRAY_SIZE(sess_cols), NULL, 0 };
		for (size_t i = 0; i < n; i++) {
			char **r = xcalloc(ARRAY_SIZE(sess_cols), sizeof(char *));
			r[0] = fmt_u64(l[i].tsih);
			r[1] = xstrdup(l[i].initiator);
			r[2] = xstrdup(l[i].isid);
			r[3] = xstrdup(l[i].target);
			r[4] = xstrdup(l[i].volume);
			r[5] = dash_or(l[i].address);
			r[6] = dash_or(l[i].portal);
			r[7] = xstrdup(l[i].state);
			r[8] = fmt_u64((uint64_t)l[i].since);
			r[9] = xstrdup(l[i].header_digest);
			r[10] = xstrdup(l[i].data_digest);
			r[11] = xstrdup(l[i].chap);
			r[12] = fmt_u64(l[i].commands);
			table_add(&t, r);
		}
		rc = table_print(&t, &o, o.json ? "tsih,initiator,isid,target,volume,address,portal,state,since,header_digest,"
		    "data_digest,chap,commands" : "tsih,initiator,isid,target,address,header_digest,data_digest,commands");
		table_free(&t);
		free(l);
	}
	cask_disconnect(c);
	return rc;
}

static int
logout_cmd(int argc, char **argv)
{
	int force = 0;
	const char *id = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--force") == 0 || strcmp(argv[i], "-f") == 0)
			force = 1;
		else if (argv[i][0] == '-' || id != NULL)
			return usage_error("iscsi logout takes [--force] TSIH, got '%s'", argv[i]);
		else
			id = argv[i];
	}
	char *end;
	unsigned long tsih = id ? strtoul(id, &end, 10) : 0;
	if (id == NULL || *id == '\0' || *end != '\0' || tsih == 0 || tsih > 65535)
		return usage_error("iscsi logout needs the session's TSIH (1-65535; cask iscsi sessions lists them)");
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	int dropped = 0, rc = 0;
	if (cask_iscsi_logout(c, (unsigned)tsih, force, &dropped) != 0)
		rc = cli_fail_code("iscsi logout");
	else
		printf("session %lu %s\n", tsih, dropped ? "dropped" : "logged out");
	cask_disconnect(c);
	return rc;
}

static const col pr_cols[] = {
	{ "key", "KEY", COL_STR }, { "initiator_port", "INITIATOR_PORT", COL_STR }, { "holder", "HOLDER", COL_STR },
};

static int
pr_cmd(int argc, char **argv)
{
	out_opts o = { 0 };
	int nargs = out_args(argc, argv, &o, 1, "pr");
	if (nargs < 0)
		return EXIT_USAGE;
	if (nargs != 1)
		return usage_error("iscsi pr needs a TARGET (iSCSI name) or POOL/VOL");
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	cask_iscsi_pr pr;
	int rc = 0;
	if (cask_iscsi_pr_get(c, argv[optind], &pr) != 0) {
		rc = cli_fail_code("iscsi pr");
		cask_disconnect(c);
		return rc;
	}
	cask_disconnect(c);
	if (o.json) {
		json_object *r = json_object_new_object(), *regs = json_object_new_array();
		json_object_object_add(r, "volume", json_object_new_string(pr.volume));
		json_object_object_add(r, "iqn", pr.iqn[0] ? json_object_new_string(pr.iqn) : NULL);
		json_object_object_add(r, "open", json_object_new_boolean(pr.open));
		json_object_object_add(r, "generation", json_object_new_int64(pr.generation));
		json_object_object_add(r, "type", json_object_new_string(pr.type));
		json_object_object_add(r, "aptpl", json_object_new_boolean(pr.aptpl));
		for (size_t i = 0; i < pr.nregs; i++) {
			json_object *g = json_object_new_object();
			char key[24];
			snprintf(key, sizeof(key), "0x%016" PRIx64, pr.regs[i].key);
			json_object_object_add(g, "key", json_object_new_string(key));
			json_object_object_add(g, "initiator_port", json_object_new_string(pr.regs[i].initiator_port));
			json_object_object_add(g, "holder", json_object_new_boolean(pr.regs[i].holder));
			json_object_array_add(regs, g);
		}
		json_object_object_add(r, "registrations", regs);
		printf("%s\n", json_object_to_json_string_ext(r, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
		    JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(r);
		cask_iscsi_pr_free(&pr);
		return 0;
	}
	if (!o.scripted)
		printf("target %s (%s): generation %u, reservation %s, APTPL %s%s\n", pr.iqn[0] ? pr.iqn : "-", pr.volume,
		    pr.generation, pr.type, pr.aptpl ? "on" : "off", pr.open ? "" : " (no session logged in)");
	table t = { pr_cols, (int)ARRAY_SIZE(pr_cols), NULL, 0 };
	for (size_t i = 0; i < pr.nregs; i++) {
		char **r = xcalloc(ARRAY_SIZE(pr_cols), sizeof(char *));
		char key[24];
		snprintf(key, sizeof(key), "0x%016" PRIx64, pr.regs[i].key);
		r[0] = xstrdup(key);
		r[1] = xstrdup(pr.regs[i].initiator_port);
		r[2] = xstrdup(pr.regs[i].holder ? "yes" : "no");
		table_add(&t, r);
	}
	if (pr.nregs > 0 || o.scripted)
		rc = table_print(&t, &o, "key,initiator_port,holder");
	table_free(&t);
	cask_iscsi_pr_free(&pr);
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
	if (strcmp(argv[1], "targets") == 0)
		return targets_cmd(argc - 1, argv + 1);
	if (strcmp(argv[1], "sessions") == 0)
		return sessions_cmd(argc - 1, argv + 1);
	if (strcmp(argv[1], "logout") == 0)
		return logout_cmd(argc - 1, argv + 1);
	if (strcmp(argv[1], "pr") == 0)
		return pr_cmd(argc - 1, argv + 1);
	return usage_error("unknown iscsi command '%s' (config, set, chap, targets, sessions, logout, pr)", argv[1]);
}
