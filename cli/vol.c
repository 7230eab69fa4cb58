/*
 * vol.c -- `cask vol ...`: create, list, get, set, resize, rename, clone, rollback,
 * promote, destroy.
 */
#include "cli.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static void
vol_usage(FILE *f)
{
	fprintf(f,
	    "usage: cask vol COMMAND ...\n"
	    "\n"
	    "  create POOL/VOL --size SIZE [-o PROP=VALUE]...   a thin volume; PROP is\n"
	    "                                      volblocksize (4K-128K, default 4K),\n"
	    "                                      compression (off|lz4|zstd, default lz4) or\n"
	    "                                      checksum (xxh128|sha256, default xxh128) or\n"
	    "                                      sync (standard|always|disabled, default\n"
	    "                                      standard; disabled is UNSAFE: flushes do nothing)\n"
	    "         [--replica HOST:PORT/POOL]... [-o consistency=one|quorum|all] [-o repl_deadline=MS]\n"
	    "                                      replicated: one more replica per --replica on the\n"
	    "                                      caskd --replica-listen there (docs/replication.md);\n"
	    "                                      default consistency quorum, deadline 5000 ms\n"
	    "         [-o rebuild_rate=MB/s]       limit rebuild copies (default 0: unlimited)\n"
	    "         [-o rebuild_wait=SECONDS]    rebuild a replica by itself when it comes back: a\n"
	    "                                      delta within SECONDS of its failure, else full\n"
	    "                                      (default 0: only cask vol replica rebuild does)\n"
	    "  status POOL/VOL [-j]                a replicated volume's epoch, consistency, state\n"
	    "                                      and per replica: state, link, acked and durable seq,\n"
	    "                                      rebuild progress and bytes transferred\n"
	    "  replica add|remove|replace|rebuild POOL/VOL ...   its replicas (cask vol replica help)\n"
	    "  takeover [--force] POOL/VOL         become the controller of a replica this caskd\n"
	    "                                      holds: membership read from the replicas, the\n"
	    "                                      old controller fenced by a new epoch; --force goes\n"
	    "                                      on without in-sync replicas it cannot reach (writes\n"
	    "                                      only they acknowledged may be lost)\n"
	    "  verify [--repair] [-j] POOL/VOL     compare the in-sync replicas of a replicated volume\n"
	    "                                      chunk by chunk; print the differing 1 MiB ranges\n"
	    "                                      (exit 1 when some differ; --repair: not built)\n"
	    "  checksum POOL/VOL[@SNAP] [-j]       the digest of the logical contents (32 hex digits;\n"
	    "                                      holes read as zeros; XXH3-128 over 1 MiB chunks,\n"
	    "                                      docs/replication.md 12.11): equal bytes, equal digest\n"
	    "  list [POOL] [-H] [-p] [-o FIELD,...] [-j]   (fields: name,size,used,logical,\n"
	    "                                      volblocksize,compression,checksum,sync,creation,guid,\n"
	    "                                      snapshots,usedbysnapshots,written,origin,\n"
	    "                                      referenced,usedbydataset,logicalused,compressratio,\n"
	    "                                      refcompressratio,receive_resume_token,log_damaged;\n"
	    "                                      used = usedbydataset + usedbysnapshots; see\n"
	    "                                      cask(8) for each)\n"
	    "  get PROP|all POOL/VOL [-H] [-p] [-j]   one property, or all of them\n"
	    "  set PROP=VALUE... POOL/VOL          compression or checksum (new writes), or sync;\n"
	    "                                      iscsi_acl, iscsi_auth, iscsi_blocksize (cask iscsi --help);\n"
	    "                                      several at once change together, or none does\n"
	    "  inherit PROP POOL/VOL               PROP back to its default (source: default)\n"
	    "  iostat [-H] [-p] [-j] POOL/VOL [INTERVAL [COUNT]]\n"
	    "                                      the volume's client IO (operations, bandwidth,\n"
	    "                                      average latency): totals since caskd started,\n"
	    "                                      then rates every INTERVAL seconds\n"
	    "  resize POOL/VOL SIZE [--shrink]     grow; shrinking discards data past SIZE and\n"
	    "                                      needs --shrink\n"
	    "  rename POOL/VOL POOL/NEW            rename within the pool (its snapshots follow)\n"
	    "  clone POOL/VOL@SNAP POOL/NEW        a new writable volume that starts as the snapshot\n"
	    "                                      and shares its blocks (the snapshot then cannot\n"
	    "                                      be destroyed while the clone exists)\n"
	    "  rollback [-r] [--force] POOL/VOL@SNAP\n"
	    "                                      make the volume what the snapshot recorded (data\n"
	    "                                      and size; not open by clients); -r also destroys\n"
	    "                                      the snapshots newer than SNAP, else they refuse it\n"
	    "  diff [-H] [-p] [-j] POOL/VOL@A [POOL/VOL@B | POOL/VOL]\n"
	    "                                      the extents that changed since snapshot A (data:\n"
	    "                                      written since; hole: reads zeros now)\n"
	    "  promote POOL/CLONE                  the clone takes over its origin's snapshots up to\n"
	    "                                      the origin; the origin's volume becomes its clone\n"
	    "                                      (then it can be destroyed without the clone)\n"
	    "  destroy [-r | -R] POOL/VOL          destroy a volume and free its space; refused\n"
	    "                                      while it has snapshots unless -r (destroys them\n"
	    "                                      too) and while they have clones unless -R\n"
	    "                                      (destroys those, theirs, ...); one transaction;\n"
	    "                                      held or open snapshots refuse it\n"
	    "  destroy and rollback are refused while clients are connected to the volume\n"
	    "  (the error names them: cask client list); --force (-f) disconnects them first.\n"
	    "\n"
	    "Volumes are served over NBD under their name, POOL/VOL.\n");
}

static const col vol_cols[] = {
	{ "name", "NAME", COL_STR }, { "size", "SIZE", COL_SIZE }, { "used", "USED", COL_SIZE },
	{ "logical", "LREFER", COL_SIZE }, { "volblocksize", "VOLBLOCK", COL_SIZE },
	{ "compression", "COMPRESS", COL_STR }, { "checksum", "CHECKSUM", COL_STR },
	{ "sync", "SYNC", COL_STR }, { "creation", "CREATION", COL_NUM }, { "guid", "GUID", COL_STR },
	{ "snapshots", "SNAPS", COL_NUM }, { "usedbysnapshots", "USEDSNAP", COL_SIZE },
	{ "written", "WRITTEN", COL_SIZE }, { "origin", "ORIGIN", COL_STR },
	{ "referenced", "REFER", COL_SIZE }, { "usedbydataset", "USEDDS", COL_SIZE },
	{ "logicalused", "LUSED", COL_SIZE }, { "compressratio", "RATIO", COL_STR },
	{ "refcompressratio", "REFRATIO", COL_STR }, { "receive_resume_token", "RESUMETOKEN", COL_STR },
	{ "log_damaged", "LOGDAMAGED", COL_STR },
};

/* log_damaged is not in cask_vol_info (its layout is frozen): one vol.get per volume, when shown */
static const char *
log_damaged_of(cask_client *c, const char *name, char *buf, size_t len)
{
	buf[0] = '\0';
	if (cask_vol_log_damaged(c, name, buf, len) != 0)
		snprintf(buf, len, "?");
	return buf[0] ? buf : "-";
}

static int
shows(const out_opts *o, const char *field)
{
	if (o->fields == NULL)
		return 0;
	size_t n = strlen(field);
	for (const char *s = o->fields; (s = strstr(s, field)) != NULL; s += n)
		if ((s == o->fields || s[-1] == ',') && (s[n] == '\0' || s[n] == ','))
			return 1;
	return 0;
}

static char **
vol_row(const cask_vol_info *v, const char *log_damaged)
{
	char **r = xcalloc(ARRAY_SIZE(vol_cols), sizeof(char *));
	r[0] = xstrdup(v->name);
	r[1] = fmt_u64(v->size);
	r[2] = fmt_u64(v->used);
	r[3] = fmt_u64(v->logical);
	r[4] = fmt_u64(v->volblocksize);
	r[5] = xstrdup(v->compression);
	r[6] = xstrdup(v->checksum);
	r[7] = xstrdup(v->sync);
	r[8] = fmt_u64(v->creation);
	r[9] = xstrdup(v->guid);
	r[10] = fmt_u64(v->snapshots);
	r[11] = fmt_u64(v->usedbysnapshots);
	r[12] = fmt_u64(v->written);
	r[13] = xstrdup(v->origin[0] ? v->origin : "-");
	r[14] = fmt_u64(v->referenced);
	r[15] = fmt_u64(v->usedbydataset);
	r[16] = fmt_u64(v->logicalused);
	r[17] = fmt_ratio(v->compressratio);
	r[18] = fmt_ratio(v->refcompressratio);
	r[19] = xstrdup(v->receive_resume_token[0] ? v->receive_resume_token : "-");
	r[20] = xstrdup(log_damaged);
	return r;
}

static int
is_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return 1;
	return 0;
}

static int
vol_create(int argc, char **argv)
{
	uint64_t size = 0;
	const char *name = NULL;
	cask_vol_props pr = CASK_VOL_PROPS_INIT;
	cask_repl_args ra = CASK_REPL_ARGS_INIT;
	const char *reps[CASK_REPL_MAX];
	static char bsbuf[32];
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--replica") == 0) {
			if (++i == argc)
				return usage_error("--replica needs HOST:PORT/POOL");
			if (ra.nreplicas == CASK_REPL_MAX - 1)
				return usage_error("at most %d replicas besides the local one", CASK_REPL_MAX - 1);
			reps[ra.nreplicas++] = argv[i];
		} else if (strcmp(a, "--size") == 0 || strcmp(a, "-s") == 0 || strncmp(a, "--size=", 7) == 0) {
			const char *v = a[2] == 's' && a[6] == '=' ? a + 7 : (++i < argc ? argv[i] : NULL);
			if (v == NULL || util_parse_size(v, &size) != 0 || size == 0)
				return usage_error("bad or missing size for %s", a);
		} else if (strcmp(a, "-o") == 0) {
			if (++i == argc)
				return usage_error("-o needs PROP=VALUE");
			char *eq = strchr(argv[i], '=');
			if (eq == NULL)
				return usage_error("-o needs PROP=VALUE, got '%s'", argv[i]);
			*eq = '\0';
			const char *prop = argv[i], *val = eq + 1;
			if (strcmp(prop, "volblocksize") == 0) {
				uint64_t bs;
				if (util_parse_size(val, &bs) != 0 || bs == 0 || bs > UINT32_MAX)
					return usage_error("bad volblocksize '%s'", val);
				pr.volblocksize = (uint32_t)bs;
				snprintf(bsbuf, sizeof(bsbuf), "%s", val);
			} else if (strcmp(prop, "compression") == 0 || strcmp(prop, "compress") == 0) {
				pr.compression = val;
			} else if (strcmp(prop, "checksum") == 0) {
				pr.checksum = val;
			} else if (strcmp(prop, "sync") == 0) {
				pr.sync = val;
			} else if (strcmp(prop, "consistency") == 0) {
				ra.consistency = val;
			} else if (strcmp(prop, "repl_deadline") == 0) {
				char *end;
				unsigned long ms = strtoul(val, &end, 10);
				if (*end != '\0' || ms == 0 || ms > UINT32_MAX)
					return usage_error("bad repl_deadline '%s' (milliseconds)", val);
				ra.deadline_ms = (uint32_t)ms;
			} else if (strcmp(prop, "rebuild_wait") == 0) {
				char *end;
				unsigned long secs = strtoul(val, &end, 10);
				if (*end != '\0' || val[0] == '\0' || secs > 365ul * 86400)
					return usage_error("bad rebuild_wait '%s' (seconds)", val);
				ra.rebuild_wait_s = (uint32_t)secs;
			} else if (strcmp(prop, "rebuild_rate") == 0) {
				char *end;
				unsigned long mbs = strtoul(val, &end, 10);
				if (*end != '\0' || val[0] == '\0' || mbs > 1000000)
					return usage_error("bad rebuild_rate '%s' (MB/s, 0 unlimited)", val);
				ra.rebuild_rate_mbs = (uint32_t)mbs;
			} else {
				return usage_error("unknown property '%s' (volblocksize, compression, checksum, sync)", prop);
			}
		} else if (a[0] == '-') {
			return usage_error("unknown option '%s' for vol create", a);
		} else if (name == NULL) {
			name = a;
		} else {
			return usage_error("vol create takes one volume name");
		}
	}
	if (name == NULL)
		return usage_error("vol create needs POOL/VOL");
	if (size == 0)
		return usage_error("vol create needs --size SIZE");
	if (ra.nreplicas == 0 && (ra.consistency || ra.deadline_ms || ra.rebuild_rate_mbs || ra.rebuild_wait_s))
		return usage_error("consistency, repl_deadline, rebuild_rate and rebuild_wait need --replica");
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	int rc;
	if (ra.nreplicas > 0) {
		ra.replicas = reps;
		rc = cask_vol_create_replicated(c, name, size, &pr, &ra) ? cli_fail("vol create") : 0;
	} else {
		rc = cask_vol_create(c, name, size, &pr) ? cli_fail("vol create") : 0;
	}
	cask_disconnect(c);
	return rc;
}

/* The rebuild entry of replica r, or NULL. */
static const cask_rebuild_info *
rebuild_of(const cask_rebuild_info *v, size_t n, const cask_replica_info *r)
{
	char who[140];
	snprintf(who, sizeof(who), "%s/%s", r->address, r->pool);
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].replica, who) == 0)
			return &v[i];
	return NULL;
}

/* "CMD [-j] NAME": the name and whether -j was given; 0, or the usage error's exit status. */
static int
name_and_json(int argc, char **argv, const char *cmd, const char *what, const char **name, int *json)
{
	*json = 0;
	*name = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-j") == 0)
			*json = 1;
		else if (argv[i][0] != '-' && *name == NULL)
			*name = argv[i];
		else
			return usage_error("%s takes [-j] %s", cmd, what);
	}
	if (*name == NULL || strchr(*name, '/') == NULL)
		return usage_error("%s needs %s", cmd, what);
	return 0;
}

static int
vol_status(int argc, char **argv)
{
	int json, rc0;
	const char *name;
	if ((rc0 = name_and_json(argc, argv, "vol status", "POOL/VOL", &name, &json)) != 0)
		return rc0;
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	cask_repl_status st;
	cask_repl_lease ls = CASK_REPL_LEASE_INIT;
	cask_repl_backlog bl = CASK_REPL_BACKLOG_INIT;
	cask_rebuild_info *rbi = NULL;
	size_t nrb = 0;
	int rc = 0;
	if (cask_vol_repl_status_ex(c, name, &st, &ls) != 0 || cask_vol_rebuild_list(c, name, &rbi, &nrb) != 0 ||
	    cask_vol_repl_backlog(c, name, &bl) != 0) {
		rc = cli_fail("vol status");
	} else if (json) {
		printf("{\"name\": \"%s\", \"epoch\": \"%s\", \"consistency\": \"%s\", \"state\": \"%s\", "
		    "\"fenced_by\": \"%s\", \"seq\": %" PRIu64 ", \"membership_version\": %" PRIu64 ", \"replicas\": [",
		    name, st.epoch, st.consistency, st.state, st.fenced_by, st.seq, st.membership_version);
		for (size_t i = 0; i < st.nreplicas; i++) {
			const cask_replica_info *r = &st.replicas[i];
			printf("%s{\"address\": \"%s\", \"pool\": \"%s\", \"state\": \"%s\", \"link\": \"%s\", "
			    "\"reason\": \"%s\", \"acked_seq\": %" PRIu64 ", \"durable_seq\": %" PRIu64, i ? ", " : "",
			    r->address, r->pool, r->state, r->link, r->reason, r->acked_seq, r->durable_seq);
			if (bl.max_bytes != 0 && i < bl.nreplicas)
				printf(", \"backlog_bytes\": %" PRIu64 ", \"backlog_ops\": %" PRIu64 ", \"backlog_peak_bytes\": %"
				    PRIu64 ", \"backlog_peak_ops\": %" PRIu64, bl.replicas[i].bytes, bl.replicas[i].ops,
				    bl.replicas[i].peak_bytes, bl.replicas[i].peak_ops);
			const cask_rebuild_info *b = rebuild_of(rbi, nrb, r);
			if (b != NULL)
				printf(", \"rebuild\": {\"kind\": \"%s\", \"state\": \"%s\", \"done\": %" PRIu64
				    ", \"total\": %" PRIu64 ", \"transferred\": %" PRIu64 ", \"rate\": %" PRIu64
				    ", \"eta_s\": %" PRIu64 ", \"job\": %" PRIu64 "}", b->kind, b->state, b->done, b->total,
				    b->transferred, b->rate, b->eta_s, b->job);
			printf("}");
		}
		printf("]");
		if (ls.state[0])
			printf(", \"lease\": {\"state\": \"%s\", \"left_ms\": %" PRIu64 ", \"renewed_by\": %u, "
			    "\"needed\": %u, \"lease_ms\": %" PRIu64 "}", ls.state, ls.left_ms, ls.renewed_by, ls.needed,
			    ls.lease_ms);
		if (bl.max_bytes != 0)
			printf(", \"backlog\": {\"max_bytes\": %" PRIu64 ", \"max_ops\": %" PRIu64 ", \"waiting\": %" PRIu64
			    ", \"waited\": %" PRIu64 ", \"ejected\": %" PRIu64 "}", bl.max_bytes, bl.max_ops, bl.waiting,
			    bl.waited, bl.ejected);
		printf("}\n");
	} else {
		printf("%s  epoch %s  consistency %s  state %s  seq %" PRIu64 "\n", name, st.epoch, st.consistency,
		    st.state, st.seq);
		if (st.fenced_by[0])
			printf("  %s%s\n", strcmp(st.state, "fenced") == 0 ? "fenced: " : "", st.fenced_by);
		if (ls.state[0])
			printf("  lease %s, %" PRIu64 " ms left, renewed by %u (%u needed; a lease is %" PRIu64 " ms)\n",
			    ls.state, ls.left_ms, ls.renewed_by, ls.needed, ls.lease_ms);
		printf("  %-24s %-10s %-8s %-12s %-10s %-8s %s\n", "REPLICA", "STATE", "LINK", "ACKED", "DURABLE",
		    "REASON", "REBUILD");
		for (size_t i = 0; i < st.nreplicas; i++) {
			const cask_replica_info *r = &st.replicas[i];
			char who[140], rbs[200] = "-";
			snprintf(who, sizeof(who), "%s/%s", r->address, r->pool);
			const cask_rebuild_info *b = rebuild_of(rbi, nrb, r);
			if (b != NULL) {
				char d[16], t[16], x[16], rt[16];
				util_fmt_size(b->done, d, sizeof(d));
				util_fmt_size(b->total, t, sizeof(t));
				util_fmt_size(b->transferred, x, sizeof(x));
				util_fmt_size(b->rate, rt, sizeof(rt));
				snprintf(rbs, sizeof(rbs), "%s %s %s/%s %s/s eta %" PRIu64 "s, %s transferred (job %" PRIu64 ")",
				    b->kind, b->state, d, t, rt, b->eta_s, x, b->job);
			}
			printf("  %-24s %-10s %-8s %-12" PRIu64 " %-10" PRIu64 " %-8s %s\n", who, r->state, r->link,
			    r->acked_seq, r->durable_seq, r->reason[0] ? r->reason : "-", rbs);
		}
		if (bl.max_bytes != 0) {
			char mx[16];
			util_fmt_size(bl.max_bytes, mx, sizeof(mx));
			printf("  backlog limit %s or %" PRIu64 " operations per replica; %" PRIu64 " requests waiting, %" PRIu64
			    " waited, %" PRIu64 " replicas ejected for it\n", mx, bl.max_ops, bl.waiting, bl.waited, bl.ejected);
			for (size_t i = 0; i < bl.nreplicas && i < st.nreplicas; i++) {
				char by[16], pk[16];
				util_fmt_size(bl.replicas[i].bytes, by, sizeof(by));
				util_fmt_size(bl.replicas[i].peak_bytes, pk, sizeof(pk));
				printf("    %s/%s: %s in %" PRIu64 " operations (peak %s, %" PRIu64 " operations)\n",
				    st.replicas[i].address, st.replicas[i].pool, by, bl.replicas[i].ops, pk, bl.replicas[i].peak_ops);
			}
		}
	}
	free(rbi);
	cask_disconnect(c);
	return rc;
}

/* vol takeover POOL/VOL: become the controller of a replica this caskd holds (replication.md rule 7). */
static int
vol_takeover(int argc, char **argv)
{
	unsigned flags = 0;
	if (argc == 3 && strcmp(argv[1], "--force") == 0) {
		flags = CASK_TAKEOVER_FORCE;
		argv++;
		argc--;
	}
	if (argc != 2 || argv[1][0] == '-')
		return usage_error("vol takeover needs [--force] POOL/VOL");
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	cask_repl_status st;
	int rc = 0;
	if (cask_vol_takeover_ex(c, argv[1], flags, &st) != 0)
		rc = cli_fail("vol takeover");
	else
		printf("%s: this caskd is its controller now: epoch %s, state %s, seq %" PRIu64 "%s\n", argv[1], st.epoch,
		    st.state, st.seq, flags ? " (forced: caskd's log names the in-sync replicas it did not count)" : "");
	cask_disconnect(c);
	return rc;
}

static int
vol_checksum(int argc, char **argv)
{
	int json, rc0;
	const char *name;
	if ((rc0 = name_and_json(argc, argv, "vol checksum", "POOL/VOL[@SNAP]", &name, &json)) != 0)
		return rc0;
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	uint8_t d[16];
	int rc = 0;
	if (cask_vol_checksum(c, name, d) != 0) {
		rc = cli_fail("vol checksum");
	} else {
		char hex[33];
		for (int i = 0; i < 16; i++)
			snprintf(hex + 2 * i, 3, "%02x", d[i]);
		if (json)
			printf("{\"name\": \"%s\", \"digest\": \"%s\"}\n", name, hex);
		else
			printf("%s  %s\n", hex, name);
	}
	cask_disconnect(c);
	return rc;
}

static int
vol_verify(int argc, char **argv)
{
	int json = 0, repair = 0;
	const char *name = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-j") == 0)
			json = 1;
		else if (strcmp(argv[i], "--repair") == 0)
			repair = 1;
		else if (argv[i][0] != '-' && name == NULL)
			name = argv[i];
		else
			return usage_error("vol verify takes [--repair] [-j] POOL/VOL");
	}
	if (name == NULL || strchr(name, '/') == NULL)
		return usage_error("vol verify needs POOL/VOL");
	if (repair) {
		fprintf(stderr, "cask: vol verify --repair is not built (vol verify reports the differing ranges)\n");
		return EXIT_FAIL;
	}
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	cask_verify_result vr;
	cask_verify_range *rg = NULL;
	size_t n = 0;
	int rc = 0;
	if (cask_vol_verify(c, name, 0, &vr, &rg, &n) != 0) {
		rc = cli_fail("vol verify");
	} else if (json) {
		printf("{\"name\": \"%s\", \"job\": %" PRIu64 ", \"size\": %" PRIu64 ", \"chunks\": %" PRIu64
		    ", \"differing\": %" PRIu64 ", \"replicas\": [", name, vr.job, vr.size, vr.chunks, vr.differing);
		for (unsigned i = 0; i < vr.nreplicas; i++)
			printf("%s\"%s\"", i ? ", " : "", vr.replicas[i]);
		printf("], \"ranges\": [");
		for (size_t i = 0; i < n; i++)
			printf("%s{\"offset\": %" PRIu64 ", \"length\": %" PRIu64 "}", i ? ", " : "", rg[i].offset,
			    rg[i].length);
		printf("]}\n");
	} else {
		for (size_t i = 0; i < n; i++)
			printf("differs: offset %" PRIu64 " length %" PRIu64 "\n", rg[i].offset, rg[i].length);
		printf("%s: %" PRIu64 " chunks of 1 MiB compared on %u replicas: %" PRIu64 " differ\n", name,
		    vr.chunks, vr.nreplicas, vr.differing);
	}
	if (rc == 0 && vr.differing != 0)
		rc = EXIT_FAIL;
	free(rg);
	cask_disconnect(c);
	return rc;
}

static int
vol_list(int argc, char **argv)
{
	out_opts o = { 0 };
	int ch;
	optind = 1;
	while ((ch = getopt(argc, argv, "Hpjo:")) != -1)
		if (!parse_out_opt(ch, optarg, &o))
			return usage_error("bad option for vol list");
	if (argc - optind > 1)
		return usage_error("vol list takes at most one pool name");
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	cask_vol_info *list;
	size_t n;
	int rc;
	if (cask_vol_list(c, optind < argc ? argv[optind] : NULL, &list, &n) != 0) {
		rc = cli_fail("vol list");
	} else {
		table t = { vol_cols, (int)ARRAY_SIZE(vol_cols), NULL, 0 };
		int dmg = shows(&o, "log_damaged");
		char buf[128];
		for (size_t i = 0; i < n; i++)
			table_add(&t, vol_row(&list[i], dmg ? log_damaged_of(c, list[i].name, buf, sizeof(buf)) : "-"));
		rc = table_print(&t, &o, "name,size,used,volblocksize,compression");
		table_free(&t);
		free(list);
	}
	cask_disconnect(c);
	return rc;
}

/* The iscsi_* properties (caskd's iSCSI configuration, cask iscsi config) as vol get rows. */
static const char *const iscsi_props[] = { "iscsi_acl", "iscsi_auth", "iscsi_blocksize" };

static int
iscsi_rows(cask_client *c, const char *vol, const char *only, table *t)
{
	cask_iscsi_entry *l;
	size_t n;
	if (cask_iscsi_config(c, &l, &n) != 0) {
		if (strcmp(cask_error()->code, "UNKNOWN_OP") == 0)
			return 0; /* an older caskd without the iSCSI target */
		return cli_fail("vol get");
	}
	const cask_iscsi_entry *e = NULL;
	for (size_t i = 0; i < n; i++)
		if (strcmp(l[i].target, vol) == 0)
			e = &l[i];
	for (size_t i = 0; i < ARRAY_SIZE(iscsi_props); i++) {
		if (only != NULL && strcmp(only, iscsi_props[i]) != 0)
			continue;
		char val[CASK_ISCSI_ACL_MAX * 225 + 1] = "";
		int local = 0;
		if (i == 0) {
			size_t k = 0;
			for (unsigned j = 0; e != NULL && j < e->nacl; j++)
				k += (size_t)snprintf(val + k, sizeof(val) - k, "%s%s", j ? "," : "", e->acl[j]);
			local = e != NULL && !(e->nacl == 1 && strcmp(e->acl[0], "*") == 0);
			if (!local)
				snprintf(val, sizeof(val), "*");
		} else if (i == 1) {
			local = e != NULL && e->auth[0] && strcmp(e->auth, "default") != 0;
			snprintf(val, sizeof(val), "%s", local ? e->auth : "default");
		} else {
			local = e != NULL && e->blocksize == 4096;
			snprintf(val, sizeof(val), "%u", local ? 4096u : 512u);
		}
		char **r = xcalloc(4, sizeof(char *));
		r[0] = xstrdup(vol);
		r[1] = xstrdup(iscsi_props[i]);
		r[2] = xstrdup(val);
		r[3] = xstrdup(local ? "local" : "default");
		table_add(t, r);
	}
	free(l);
	return 0;
}

static int
vol_get(int argc, char **argv)
{
	static const col get_cols[] = { { "name", "NAME", COL_STR }, { "property", "PROPERTY", COL_STR },
		{ "value", "VALUE", COL_STR }, { "source", "SOURCE", COL_STR } };
	out_opts o = { 0 };
	int ch;
	optind = 1;
	while ((ch = getopt(argc, argv, "Hpjo:")) != -1)
		if (!parse_out_opt(ch, optarg, &o))
			return usage_error("bad option for vol get");
	if (argc - optind != 2)
		return usage_error("vol get needs PROP|all and POOL/VOL");
	const char *prop = argv[optind], *name = argv[optind + 1];
	int all = strcmp(prop, "all") == 0;
	int known = all;
	for (size_t i = 1; i < ARRAY_SIZE(vol_cols); i++)
		known |= strcmp(vol_cols[i].name, prop) == 0;
	for (size_t i = 0; i < ARRAY_SIZE(iscsi_props); i++)
		known |= strcmp(iscsi_props[i], prop) == 0;
	if (!known)
		return usage_error("unknown property '%s'", prop);
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	cask_vol_info v;
	int rc = 0;
	if (cask_vol_get(c, name, &v) != 0) {
		rc = cli_fail("vol get");
	} else {
		char dbuf[128];
		char **row = vol_row(&v, all || strcmp(prop, "log_damaged") == 0 ?
		    log_damaged_of(c, name, dbuf, sizeof(dbuf)) : "-");
		table t = { get_cols, 4, NULL, 0 };
		char buf[32];
		for (size_t i = 1; i < ARRAY_SIZE(vol_cols); i++) {
			if (!all && strcmp(vol_cols[i].name, prop) != 0)
				continue;
			char **r = xcalloc(4, sizeof(char *));
			r[0] = xstrdup(v.name);
			r[1] = xstrdup(vol_cols[i].name);
			const char *src = strcmp(vol_cols[i].name, "compression") == 0 ? v.compression_source :
			    strcmp(vol_cols[i].name, "checksum") == 0 ? v.checksum_source :
			    strcmp(vol_cols[i].name, "sync") == 0 ? v.sync_source : "-";
			r[3] = xstrdup(src[0] ? src : "-");
			/* the value column is a string: format sizes here unless -p or -j */
			if (vol_cols[i].kind == COL_SIZE && !o.parsable && !o.json)
				r[2] = xstrdup(util_fmt_size(strtoull(row[i], NULL, 10), buf, sizeof(buf)));
			else
				r[2] = xstrdup(row[i]);
			table_add(&t, r);
		}
		for (size_t i = 0; i < ARRAY_SIZE(vol_cols); i++)
			free(row[i]);
		free(row);
		if ((all || strncmp(prop, "iscsi_", 6) == 0) && strchr(name, '@') == NULL)
			rc = iscsi_rows(c, v.name, all ? NULL : prop, &t);
		if (rc == 0)
			rc = table_print(&t, &o, "name,property,value,source");
		table_free(&t);
	}
	cask_disconnect(c);
	return rc;
}

static int
vol_inherit(int argc, char **argv)
{
	if (argc != 3 || strchr(argv[2], '/') == NULL)
		return usage_error("vol inherit needs PROP and POOL/VOL");
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	int rc = cask_vol_inherit(c, argv[2], argv[1]) ? cli_fail("vol inherit") : 0;
	cask_disconnect(c);
	return rc;
}

static int
vol_set(int argc, char **argv)
{
	if (argc < 3 || argc > 10)
		return usage_error("vol set needs PROP=VALUE (up to 8) and POOL/VOL");
	const char *props[8], *values[8];
	int n = argc - 2;
	for (int i = 0; i < n; i++) {
		char *eq = strchr(argv[i + 1], '=');
		if (eq == NULL || eq == argv[i + 1])
			return usage_error("vol set needs PROP=VALUE, got '%s'", argv[i + 1]);
		*eq = '\0';
		props[i] = argv[i + 1];
		values[i] = eq + 1;
	}
	const char *vol = argv[argc - 1];
	if (strchr(vol, '/') == NULL || strchr(vol, '=') != NULL)
		return usage_error("vol set needs POOL/VOL last, got '%s'", vol);
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	/* iscsi_* properties live in caskd's iSCSI configuration (cask iscsi), the rest in the pool */
	const char *eprops[8], *evalues[8];
	int ne = 0, rc = 0;
	for (int i = 0; i < n; i++)
		if (strncmp(props[i], "iscsi_", 6) != 0) {
			eprops[ne] = props[i];
			evalues[ne++] = values[i];
		}
	if (ne > 0)
		rc = cask_vol_set_many(c, vol, eprops, evalues, (size_t)ne) ? cli_fail("vol set") : 0;
	for (int i = 0; i < n && rc == 0; i++)
		if (strncmp(props[i], "iscsi_", 6) == 0)
			rc = cli_iscsi_set(c, vol, props[i] + 6, values[i]);
	cask_disconnect(c);
	return rc;
}

static int
vol_resize(int argc, char **argv)
{
	int shrink = 0;
	const char *ops[2];
	int nops = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--shrink") == 0)
			shrink = 1;
		else if (argv[i][0] == '-')
			return usage_error("unknown option '%s' for vol resize", argv[i]);
		else if (nops < 2)
			ops[nops++] = argv[i];
		else
			return usage_error("vol resize needs POOL/VOL and SIZE");
	}
	uint64_t size;
	if (nops != 2)
		return usage_error("vol resize needs POOL/VOL and SIZE");
	if (util_parse_size(ops[1], &size) != 0 || size == 0)
		return usage_error("bad size '%s'", ops[1]);
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	int rc = cask_vol_resize(c, ops[0], size, shrink) ? cli_fail("vol resize") : 0;
	cask_disconnect(c);
	return rc;
}

static int
vol_rename(int argc, char **argv)
{
	if (argc != 3 || argv[1][0] == '-' || argv[2][0] == '-')
		return usage_error("vol rename needs POOL/VOL and POOL/NEW");
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	int rc = cask_vol_rename(c, argv[1], argv[2]) ? cli_fail("vol rename") : 0;
	cask_disconnect(c);
	return rc;
}

static int
vol_clone(int argc, char **argv)
{
	if (argc != 3 || argv[1][0] == '-' || argv[2][0] == '-' || strchr(argv[1], '@') == NULL ||
	    strchr(argv[2], '@') != NULL)
		return usage_error("vol clone needs POOL/VOL@SNAP and POOL/NEW");
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	int rc = cask_vol_clone(c, argv[1], argv[2]) ? cli_fail("vol clone") : 0;
	cask_disconnect(c);
	return rc;
}

static int
vol_rollback(int argc, char **argv)
{
	unsigned flags = 0;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-r") == 0)
			flags |= CASK_ROLLBACK_DESTROY_LATER;
		else if (strcmp(argv[i], "-f") == 0 || strcmp(argv[i], "--force") == 0)
			flags |= CASK_FORCE_DISCONNECT;
		else
			break;
	}
	if (argc - i != 1 || argv[i][0] == '-' || strchr(argv[i], '@') == NULL || strchr(argv[i], '/') == NULL)
		return usage_error("vol rollback needs [-r] [--force] and one snapshot POOL/VOL@SNAP");
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	int rc = (flags & CASK_FORCE_DISCONNECT ? cask_vol_rollback_ex(c, argv[i], flags) :
	    cask_vol_rollback(c, argv[i], (flags & CASK_ROLLBACK_DESTROY_LATER) != 0)) ? cli_fail("vol rollback") : 0;
	cask_disconnect(c);
	return rc;
}

static int
vol_destroy(int argc, char **argv)
{
	unsigned flags = 0;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-r") == 0)
			flags |= CASK_DESTROY_SNAPSHOTS;
		else if (strcmp(argv[i], "-R") == 0)
			flags |= CASK_DESTROY_SNAPSHOTS | CASK_DESTROY_CLONES;
		else if (strcmp(argv[i], "-f") == 0 || strcmp(argv[i], "--force") == 0)
			flags |= CASK_FORCE_DISCONNECT;
		else
			return usage_error("vol destroy: unknown option %s", argv[i]);
	}
	if (argc - i != 1 || strchr(argv[i], '/') == NULL || strchr(argv[i], '@') != NULL)
		return usage_error("vol destroy needs [-r | -R] [--force] and one POOL/VOL");
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	int rc = cask_vol_destroy_ex(c, argv[i], flags) ? cli_fail("vol destroy") : 0;
	cask_disconnect(c);
	return rc;
}

static int
vol_promote(int argc, char **argv)
{
	if (argc != 2 || argv[1][0] == '-' || strchr(argv[1], '/') == NULL || strchr(argv[1], '@') != NULL)
		return usage_error("vol promote needs one clone POOL/VOL");
	cask_client *c = cli_connect();
	if (c == NULL)
		return EXIT_FAIL;
	int rc = cask_vol_promote(c, argv[1]) ? cli_fail("vol promote") : 0;
	cask_disconnect(c);
	return rc;
}

int
cmd_vol(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "help") == 0 || is_help(argc, argv)) {
		vol_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	const char *sub = argv[1];
	argc--;
	argv++;
	if (strcmp(sub, "create") == 0)
		return vol_create(argc, argv);
	if (strcmp(sub, "status") == 0)
		return vol_status(argc, argv);
	if (strcmp(sub, "takeover") == 0)
		return vol_takeover(argc, argv);
	if (strcmp(sub, "list") == 0)
		return vol_list(argc, argv);
	if (strcmp(sub, "checksum") == 0)
		return vol_checksum(argc, argv);
	if (strcmp(sub, "verify") == 0)
		return vol_verify(argc, argv);
	if (strcmp(sub, "replica") == 0)
		return cmd_vol_replica(argc, argv);
	if (strcmp(sub, "get") == 0)
		return vol_get(argc, argv);
	if (strcmp(sub, "set") == 0)
		return vol_set(argc, argv);
	if (strcmp(sub, "resize") == 0)
		return vol_resize(argc, argv);
	if (strcmp(sub, "rename") == 0)
		return vol_rename(argc, argv);
	if (strcmp(sub, "rollback") == 0)
		return vol_rollback(argc, argv);
	if (strcmp(sub, "clone") == 0)
		return vol_clone(argc, argv);
	if (strcmp(sub, "destroy") == 0)
		return vol_destroy(argc, argv);
	if (strcmp(sub, "promote") == 0)
		return vol_promote(argc, argv);
	if (strcmp(sub, "diff") == 0)
		return cmd_vol_diff(argc, argv);
	if (strcmp(sub, "inherit") == 0)
		return vol_inherit(argc, argv);
	if (strcmp(sub, "iostat") == 0)
		return cmd_vol_iostat(argc, argv);
	return usage_error("unknown vol command '%s'", sub);
}
