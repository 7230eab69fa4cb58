/*
 * caskd -- the cask daemon: owns pools, serves their volumes over NBD
 * (and iSCSI with --iscsi).
 * Frontends come from a table (frontends[]); they run on conn.c's event
 * loops over the volume IO layer (vio.h).
 *
 * Runs in the foreground (container friendly), logs one line per event to
 * stderr, and stops cleanly on SIGTERM or SIGINT: it stops accepting,
 * lets each connection finish the request it is in, commits every pool
 * and exports it, and exits 0.
 *
 * State (--state DIR): pools.cache (the pools to import at start) and,
 * with --default-volume, the default pool's vdev file.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cask/engine.h"
#include "conn.h"
#include "ctl.h"
#include "log.h"
#include "iscsi.h"
#include "metrics.h"
#include "nbd.h"
#include "registry.h"
#include "sched.h"
#include "tls.h"
#include "repl/proto.h"
#include "repl/service.h"
#include "repl/ctrl.h"
#include "util.h"
#include "vio.h"

#define CASKD_VERSION "0.1.0"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: caskd [OPTIONS]\n"
	    "\n"
	    "The cask daemon: imports the pools it knows, serves their volumes over NBD\n"
	    "(export names POOL/VOLUME) and runs in the foreground until SIGTERM or SIGINT.\n"
	    "\n"
	    "  --state DIR             where caskd keeps its state (pool cache, default pool)\n"
	    "                          (default: $CASK_STATE, else /var/lib/cask as root,\n"
	    "                          else $XDG_STATE_HOME/cask or ~/.local/state/cask)\n"
	    "  --socket PATH           the control socket for the cask CLI and libcask\n"
	    "                          (default: $CASK_SOCKET, else $XDG_RUNTIME_DIR/cask/caskd.sock,\n"
	    "                          else /run/cask/caskd.sock)\n"
	    "  --nbd ADDR:PORT         listen for NBD clients here; repeatable; [::1]:PORT for\n"
	    "                          IPv6 (default 127.0.0.1:10809)\n"
	    "  --nbd unix:PATH[,mode=OCTAL][,group=GROUP]\n"
	    "                          a unix socket: mode (default 0600, 0660 with a group)\n"
	    "                          and group (name or gid) set on the socket file\n"
 "  --iscsi ADDR[:PORT]     serve iSCSI here (default port 3260); repeatable; [::1] for\n"
	    "                          IPv6. Off unless given. Targets PREFIX:POOL.VOL (snapshots\n"
	    "                          PREFIX:POOL.VOL.SNAP, read-only), LUN 0; docs/iscsi.md\n"
	    "  --iqn-prefix IQN        the target name prefix (default iqn.2026-12.io.cask)\n"
	    "  --iscsi-auth none|chap|mutual\n"
	    "                          CHAP policy for targets that set none in STATE/iscsi.json\n"
	    "                          (secrets live only there, mode 0600; default none)\n"
	    "  --iscsi-header-digest allow|require|off, --iscsi-data-digest allow|require|off\n"
	    "                          CRC32C digests (default allow: the initiator's order decides)\n"
	    "  --iscsi-discovery-auth none|chap|mutual\n"
	    "                          CHAP for discovery sessions, with the daemon-wide secret\n"
	    "                          (default none; cask iscsi set discovery_auth=... overrides)\n"
	    "  --iscsi-stall-ms MS     a command in the volume IO stack this long is answered BUSY or\n"
	    "                          TASK SET FULL where safe (reads, writes not yet begun), and\n"
	    "                          so are new ones until it ends (retryable; default 15000; 0: never)\n"
	    "  --iscsi-nop-ms MS       ping a session idle this long with a NOP-In and drop it when\n"
	    "                          the answer takes as long again (default 5000; 0: never)\n"
	    "  --iscsi-tp-threshold PCT\n"
	    "                          thin provisioning soft threshold: unit attention 38/07 when\n"
	    "                          the pool's free space falls below PCT %% of its size (default\n"
	    "                          10; 0: none; MODE SELECT of page 1C/02 changes it per LU)\n"
	    "  --metrics ADDR:PORT     serve Prometheus metrics at http://ADDR:PORT/metrics\n"
	    "                          ([::1]:PORT for IPv6; every metric: docs/metrics.md);\n"
	    "                          default: no metrics server\n"
	    "  --metrics-max-volumes N at most N volumes (and N snapshot policies) in a scrape,\n"
	    "                          1-65536 (default 1024); the rest are counted in\n"
	    "                          cask_metrics_omitted\n"
	    "  --max-connections N     frontend connections served at once (default 1024); a\n"
	    "                          client past it is told \"too many connections\" and not served\n"
	    "  --max-export-connections N  connections to one export at once (default: no limit\n"
	    "                          beyond --max-connections); past it NBD_REP_ERR_POLICY\n"
	    "  --stall-timeout SECS    cut off a client that leaves its replies unread this long\n"
	    "                          while its queue is full (default 60)\n"
	    "  --idle-timeout SECS     disconnect a serving client that has nothing in flight and\n"
	    "                          sent or received nothing this long (default 0: never; the\n"
	    "                          kernel NBD client and qemu keep an attached disk idle and\n"
	    "                          send no keepalive, so a default cut would break them)\n"
	    "  --handshake-timeout SECS  disconnect a client that has not chosen an export this\n"
	    "                          long after connecting (default 30)\n"
	    "  --tls=off|on|require    NBD over TLS (NBD_OPT_STARTTLS): on offers it, require\n"
	    "                          refuses every option but STARTTLS in the clear (default off)\n"
	    "  --tls-cert FILE, --tls-key FILE\n"
	    "                          the server's x509 certificate (chain) and key, PEM\n"
	    "  --tls-ca FILE           also require a client certificate signed by this CA\n"
	    "  --tls-psk FILE          pre-shared keys, IDENTITY:HEXKEY per line (psktool's format)\n"
	    "  --tls-access FILE       which client may open which exports: IDENTITY EXPORT... per\n"
	    "                          line (a PSK identity or certificate CN; - for none; exports\n"
	    "                          POOL/VOL, POOL/*, *); without it every client opens every export\n"
	    "  --io-threads N          threads that run blocking volume IO (default 32)\n"
	    "  --loops N               event loop threads for connections (default: CPUs, max 8)\n"
	    "  --no-io-uring           read through the IO worker threads, not io_uring (the\n"
	    "                          fallback used when io_uring cannot be set up)\n"
	    "  --test-ops              for tests: the fault/delay layer in every volume's IO\n"
	    "                          stack, the test.vio_fault and test.sched_clock control\n"
	    "                          operations\n"
	    "  --sched-clock SECONDS   for tests (with --test-ops): the snapshot scheduler's\n"
	    "                          clock starts at SECONDS since the epoch and stays there\n"
	    "                          until test.sched_clock moves it\n"
	    "  --replica-listen ADDR:PORT  accept replication controllers here ([::]:PORT for\n"
	    "                          IPv6; docs/replication.md)\n"
	    "  --peer-key FILE         the shared secret replication peers prove they hold\n"
	    "                          (HMAC-SHA256; at least 32 bytes; mode 0600)\n"
	    "  --insecure-peers        replicate without a peer key (peers are not authenticated)\n"
	    "  --replica-advertise HOST:PORT  the address peers are told (default: the listen address)\n"
	    "  --repl-backlog SIZE     data a replica of a volume this caskd controls may have queued\n"
	    "                          and not applied (default 256M, 1M to 64G): past it a write\n"
	    "                          ejects that replica (one, quorum) or waits for it\n"
	    "  --default-volume SIZE   make sure pool 'default' (a sparse file in the state\n"
	    "                          directory) and volume default/vol0 of SIZE exist\n"
	    "  --cache SIZE            block cache per pool (default 256M)\n"
	    "  --dirty-max SIZE        dirty data per pool before writers wait (default 512M)\n"
	    "  --sync-threads N|none   per pool: threads that compress and checksum a txg's\n"
	    "                          blocks beside the sync thread (default: one per core)\n"
	    "  --readahead SIZE|none   per pool: read-ahead window of a volume read sequentially\n"
	    "                          (default 4M; at most 64M and a quarter of --cache)\n"
	    "  -v, --verbose           log more (repeat for debug)\n"
	    "  -q, --quiet             log only warnings and errors\n"
	    "  -h, --help              this help\n"
	    "  -V, --version           print the version\n"
	    "\n"
	    "Sizes take K, M, G, T suffixes (powers of 1024). At a socket path caskd replaces\n"
	    "only a stale socket (no listener); a socket in use or anything that is not a\n"
	    "socket is an error naming the path, and caskd does not start.\n");
}

static int
mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) != 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) != 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static void
default_state_dir(char *out, size_t n)
{
	const char *e = getenv("CASK_STATE");
	if (e && *e)
		snprintf(out, n, "%s", e);
	else if (geteuid() == 0)
		snprintf(out, n, "/var/lib/cask");
	else if ((e = getenv("XDG_STATE_HOME")) && *e)
		snprintf(out, n, "%s/cask", e);
	else
		snprintf(out, n, "%s/.local/state/cask", getenv("HOME") ? getenv("HOME") : ".");
}

static void
default_socket(char *out, size_t n)
{
	const char *e = getenv("CASK_SOCKET");
	if (e && *e)
		snprintf(out, n, "%s", e);
	else if ((e = getenv("XDG_RUNTIME_DIR")) && *e && geteuid() != 0)
		snprintf(out, n, "%s/cask/caskd.sock", e);
	else
		snprintf(out, n, "/run/cask/caskd.sock");
}

/* The frontends caskd can run; each gets the addresses given for it (or its default). */
static const struct frontend {
	const char *name;
	int (*listen)(const char *spec);
	const char *default_addr;
} frontends[] = {
	{ "nbd", nbd_listen, "127.0.0.1:10809" },
	{ "iscsi", iscsi_listen, NULL }, /* off unless --iscsi is given */
};
#define NFRONT ARRAY_SIZE(frontends)
#define MAX_ADDRS 16

/* Enough descriptors for the connection cap (each connection is one). */
static void
raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int
parse_count(const char *arg, const char *opt, int lo, int hi, int *out)
{
	char *end;
	long v = strtol(arg, &end, 10);
	if (*arg == '\0' || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "caskd: --%s wants a number from %d to %d, not '%s'\n", opt, lo, hi, arg);
		return -1;
	}
	*out = (int)v;
	return 0;
}

typedef struct defvol {
	uint64_t size;
} defvol;

static int
ensure_vol0(ce_pool *p, void *arg)
{
	defvol *d = arg;
	ce_vol_info vi;
	if (ce_vol_info_get(p, "vol0", &vi) == 0) {
		if (vi.size != d->size)
			log_info("volume default/vol0 exists with size %" PRIu64 " (not changed)", vi.size);
		return 0;
	}
	int err = ce_vol_create(p, "vol0", d->size, NULL);
	if (err == 0)
		log_info("volume default/vol0 created (%" PRIu64 " bytes)", d->size);
	return err;
}

static int
ensure_default(const char *state, uint64_t size)
{
	char path[PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/default.vdev", state);
	char **names;
	size_t n;
	int have = 0;
	reg_pool_names(&names, &n);
	for (size_t i = 0; i < n; i++) {
		have |= strcmp(names[i], "default") == 0;
		free(names[i]);
	}
	free(names);
	if (!have) {
		const char *paths[1] = { path };
		struct stat st;
		int err;
		char name[64];
		if (stat(path, &st) == 0 && st.st_size > 0)
			err = reg_pool_import(paths, 1, 0, name, sizeof(name));
		else
			err = reg_pool_create("default", paths, 1, MAX(size * 2, (uint64_t)1 << 30), 0);
		if (err != 0)
			return err;
	}
	defvol d = { size };
	return reg_with_pool("default", ensure_vol0, &d);
}

int
main(int argc, char **argv)
{
	char state[PATH_MAX], sock[PATH_MAX];
	const char *addrs[NFRONT][MAX_ADDRS];
	int naddrs[NFRONT] = { 0 };
	conn_config ccfg = { 0, 1024, 60, 0, 30, 0 };
	vio_config vcfg = { 32, 0 };
	tls_config tcfg = { TLS_OFF, NULL, NULL, NULL, NULL, NULL };
	uint64_t defsize = 0;
	const char *metrics = NULL;
	int metrics_max_volumes = METRICS_VOLUMES_DEFAULT;
	long long sched_clock = -1;
	const char *repl_listen = NULL, *peer_key = NULL, *advertise = NULL;
	int insecure_peers = 0;
	ce_pool_opts opts;
	memset(&opts, 0, sizeof(opts));
	default_state_dir(state, sizeof(state));
	default_socket(sock, sizeof(sock));

	/* long options without a short letter: values past every character */
	enum { OPT_METRICS = 256, OPT_SCHED_CLOCK, OPT_METRICS_MAX_VOLUMES };
	static const struct option lo[] = {
		{ "state", 1, NULL, 's' }, { "socket", 1, NULL, 'S' }, { "nbd", 1, NULL, 'n' }, { "default-volume", 1, NULL, 'd' },
		{ "cache", 1, NULL, 'c' }, { "dirty-max", 1, NULL, 'm' }, { "sync-threads", 1, NULL, 1105 },
		{ "verbose", 0, NULL, 'v' },
		{ "quiet", 0, NULL, 'q' }, { "help", 0, NULL, 'h' }, { "version", 0, NULL, 'V' },
		{ "max-connections", 1, NULL, 'M' }, { "stall-timeout", 1, NULL, 'T' }, { "io-threads", 1, NULL, 'I' },
		{ "loops", 1, NULL, 'L' }, { "test-ops", 0, NULL, 'X' }, { "idle-timeout", 1, NULL, 'i' },
		{ "handshake-timeout", 1, NULL, 'H' }, { "tls", 1, NULL, 't' }, { "tls-cert", 1, NULL, 'C' },
		{ "tls-key", 1, NULL, 'K' }, { "tls-ca", 1, NULL, 'A' }, { "tls-psk", 1, NULL, 'P' },
		{ "tls-access", 1, NULL, 'a' }, { "max-export-connections", 1, NULL, 'E' },
		{ "iscsi", 1, NULL, 1000 }, { "iqn-prefix", 1, NULL, 1001 }, { "iscsi-auth", 1, NULL, 1002 },
		{ "iscsi-header-digest", 1, NULL, 1003 }, { "iscsi-data-digest", 1, NULL, 1004 },
		{ "iscsi-nop-ms", 1, NULL, 1005 }, { "iscsi-discovery-auth", 1, NULL, 1006 },
		{ "iscsi-stall-ms", 1, NULL, 1007 }, { "iscsi-tp-threshold", 1, NULL, 1008 },
		{ "metrics", 1, NULL, OPT_METRICS }, { "sched-clock", 1, NULL, OPT_SCHED_CLOCK },
		{ "metrics-max-volumes", 1, NULL, OPT_METRICS_MAX_VOLUMES },
		{ "replica-listen", 1, NULL, 1101 }, { "peer-key", 1, NULL, 1102 }, { "insecure-peers", 0, NULL, 1103 },
		{ "replica-advertise", 1, NULL, 1104 }, { "no-io-uring", 0, NULL, 1108 }, { "readahead", 1, NULL, 1120 },
		{ "repl-backlog", 1, NULL, 1121 },
		{ 0, 0, 0, 0 } };
	int ch;
	while ((ch = getopt_long(argc, argv, "vqhV", lo, NULL)) != -1) {
		switch (ch) {
		case 's':
			snprintf(state, sizeof(state), "%s", optarg);
			break;
		case 'S':
			snprintf(sock, sizeof(sock), "%s", optarg);
			break;
		case 'n':
			if (naddrs[0] == MAX_ADDRS) {
				fprintf(stderr, "caskd: at most %d --nbd addresses\n", MAX_ADDRS);
				return 2;
			}
			addrs[0][naddrs[0]++] = optarg;
			break;
		case 1000:
			if (naddrs[1] == MAX_ADDRS) {
				fprintf(stderr, "caskd: at most %d --iscsi addresses\n", MAX_ADDRS);
				return 2;
			}
			addrs[1][naddrs[1]++] = optarg;
			break;
		case 1001:
		case 1002:
		case 1003:
		case 1004:
		case 1005:
		case 1006:
		case 1007:
		case 1008: {
			static const char *const keys[] = { "iqn-prefix", "auth", "header-digest", "data-digest", "nop-ms",
				"discovery-auth", "stall-ms", "tp-threshold" };
			if (iscsi_configure(keys[ch - 1001], optarg) != 0) {
				fprintf(stderr, "caskd: bad value '%s' for --%s%s\n", optarg, ch == 1001 ? "" : "iscsi-",
				    keys[ch - 1001]);
				return 2;
			}
			break;
		}
		case 'M':
			if (parse_count(optarg, "max-connections", 1, 1000000, &ccfg.max_connections) != 0)
				return 2;
			break;
		case 'T':
			if (parse_count(optarg, "stall-timeout", 1, 86400, &ccfg.stall_timeout) != 0)
				return 2;
			break;
		case 't':
			if (strcmp(optarg, "off") == 0)
				tcfg.mode = TLS_OFF;
			else if (strcmp(optarg, "on") == 0)
				tcfg.mode = TLS_ON;
			else if (strcmp(optarg, "require") == 0)
				tcfg.mode = TLS_REQUIRE;
			else {
				fprintf(stderr, "caskd: --tls wants off, on or require, not '%s'\n", optarg);
				return 2;
			}
			break;
		case 'C':
			tcfg.cert = optarg;
			break;
		case 'K':
			tcfg.key = optarg;
			break;
		case 'A':
			tcfg.ca = optarg;
			break;
		case 'P':
			tcfg.psk = optarg;
			break;
		case 'a':
			tcfg.access = optarg;
			break;
		case 'E':
			if (parse_count(optarg, "max-export-connections", 1, 1000000, &ccfg.max_per_export) != 0)
				return 2;
			break;
		case 'i':
			if (parse_count(optarg, "idle-timeout", 0, 86400 * 30, &ccfg.idle_timeout) != 0)
				return 2;
			break;
		case 'H':
			if (parse_count(optarg, "handshake-timeout", 1, 86400, &ccfg.handshake_timeout) != 0)
				return 2;
			break;
		case 'I':
			if (parse_count(optarg, "io-threads", 1, 1024, &vcfg.io_threads) != 0)
				return 2;
			break;
		case 'L':
			if (parse_count(optarg, "loops", 1, 8, &ccfg.loops) != 0)
				return 2;
			break;
		case 'X':
			vcfg.test_ops = 1;
			break;
		case OPT_METRICS:
			metrics = optarg;
			break;
		case OPT_METRICS_MAX_VOLUMES:
			if (parse_count(optarg, "metrics-max-volumes", METRICS_VOLUMES_MIN, METRICS_VOLUMES_MAX,
			    &metrics_max_volumes) != 0)
				return 2;
			break;
		case OPT_SCHED_CLOCK: {
			char *end;
			sched_clock = strtoll(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || sched_clock < 0 || sched_clock >= 253402300800ll) {
				fprintf(stderr, "caskd: --sched-clock wants seconds since the epoch, not '%s'\n", optarg);
				return 2;
			}
			break;
		}
		case 1101:
			repl_listen = optarg;
			break;
		case 1102:
			peer_key = optarg;
			break;
		case 1103:
			insecure_peers = 1;
			break;
		case 1104:
			advertise = optarg;
			break;
		case 1105: {
			char *end;
			long v = strcmp(optarg, "none") == 0 ? CE_SYNC_THREADS_NONE : strtol(optarg, &end, 10);
			if (strcmp(optarg, "none") != 0 && (*optarg == '\0' || *end != '\0' || v < 0 || v > 16)) {
				fprintf(stderr, "caskd: bad --sync-threads '%s' (0 to 16, or none)\n", optarg);
				return 2;
			}
			opts.sync_threads = (int)v;
			break;
		}
		case 1120: {
			uint64_t v;
			if (strcmp(optarg, "none") == 0) {
				opts.readahead_bytes = CE_READAHEAD_NONE;
			} else if (util_parse_size(optarg, &v) != 0 || v == 0) {
				fprintf(stderr, "caskd: bad size '%s' for --readahead (a size, or none)\n", optarg);
				return 2;
			} else {
				opts.readahead_bytes = v;
			}
			break;
		}
		case 1108:
			opts.flags |= CE_POOL_NO_URING;
			break;
		case 1121: {
			uint64_t v;
			if (util_parse_size(optarg, &v) != 0 || repl_ctrl_set_backlog(v) != 0) {
				fprintf(stderr, "caskd: bad --repl-backlog '%s' (a size from 1M to 64G)\n", optarg);
				return 2;
			}
			break;
		}
		case 'd':
		case 'c':
		case 'm': {
			uint64_t v;
			if (util_parse_size(optarg, &v) != 0 || v == 0) {
				fprintf(stderr, "caskd: bad size '%s' for --%s\n", optarg,
				    ch == 'd' ? "default-volume" : ch == 'c' ? "cache" : "dirty-max");
				return 2;
			}
			if (ch == 'd')
				defsize = P2ROUNDUP(v, (uint64_t)CE_VOLBLOCKSIZE_DEFAULT);
			else if (ch == 'c')
				opts.cache_bytes = v;
			else
				opts.dirty_max = v;
			break;
		}
		case 'v':
			log_level = log_level < LOG_DEBUG ? log_level + 1 : LOG_DEBUG;
			break;
		case 'q':
			log_level = LOG_WARN;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("caskd %s\n", CASKD_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "caskd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (sched_clock >= 0 && !vcfg.test_ops) {
		fprintf(stderr, "caskd: --sched-clock is for tests: it needs --test-ops\n");
		return 2;
	}
	if (sched_clock >= 0)
		sched_test_clock(sched_clock);
	for (size_t f = 0; f < NFRONT; f++)
		if (naddrs[f] == 0 && frontends[f].default_addr != NULL)
			addrs[f][naddrs[f]++] = frontends[f].default_addr;
	iscsi_configure("state", state);
	raise_fd_limit();
	/* Replication peers: a key, or an explicit --insecure-peers (docs/replication.md 10.1). */
	repl_peer_config pc;
	memset(&pc, 0, sizeof(pc));
	if (peer_key != NULL) {
		uint8_t *k;
		size_t kl;
		const char *why;
		if (rp_key_load(peer_key, &k, &kl, &why) != 0) {
			fprintf(stderr, "caskd: --peer-key %s: %s\n", peer_key, why);
			return 2;
		}
		pc.key = k;
		pc.keylen = kl;
	} else if (repl_listen != NULL && !insecure_peers) {
		fprintf(stderr, "caskd: --replica-listen needs --peer-key FILE (or --insecure-peers to "
		    "replicate without authentication)\n");
		return 2;
	}
	pc.insecure = insecure_peers && peer_key == NULL;
	pc.instance = util_random64();
	snprintf(pc.advertise, sizeof(pc.advertise), "%s", advertise ? advertise : repl_listen ? repl_listen : "");
	repl_peer_configure(&pc);

	/* Signals are handled by the main thread alone, with sigwait. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* before anything starts: a TLS option error is the only line */
	int err = tls_init(&tcfg);
	if (err != 0) {
		log_err("%s", ce_errmsg());
		tls_fini();
		return 1;
	}
	err = mkdir_p(state, 0700);
	if (err != 0) {
		fprintf(stderr, "caskd: cannot create state directory %s: %s\n", state, strerror(-err));
		return 1;
	}
	log_info("caskd %s starting, state %s", CASKD_VERSION, state);
	if ((err = reg_init(state, &opts)) != 0) {
		log_err("%s", ce_errmsg());
		return 1;
	}
	if (defsize != 0 && (err = ensure_default(state, defsize)) != 0) {
		log_err("default volume: %s", ce_errmsg());
		reg_shutdown();
		return 1;
	}
	for (size_t f = 0; f < NFRONT; f++) {
		for (int i = 0; i < naddrs[f]; i++) {
			if ((err = frontends[f].listen(addrs[f][i])) != 0) {
				log_err("%s", ce_errmsg());
				conn_stop(); /* close (and remove the unix sockets of) the ones already bound */
				reg_shutdown();
				return 1;
			}
		}
	}
	if (repl_listen != NULL && (err = repl_service_listen(repl_listen)) != 0) {
		log_err("%s", ce_errmsg());
		conn_stop();
		reg_shutdown();
		return 1;
	}
	/* Frontend ports are bound above but accept only from conn_start, after the control socket exists. */
	if ((err = vio_init(&vcfg)) != 0 || (err = ctl_listen(sock, CASKD_VERSION)) != 0 ||
	    (err = conn_start(&ccfg)) != 0 || (err = ctl_start()) != 0 || (err = reg_watch_start()) != 0 ||
	    (err = sched_start()) != 0 || (metrics != NULL && (err = metrics_start(metrics, CASKD_VERSION, (unsigned)metrics_max_volumes)) != 0) ||
	    (err = repl_service_start()) != 0) {
		log_err("%s", ce_errmsg());
		repl_service_stop();
		metrics_stop();
		reg_watch_stop();
		ctl_stop();
		sched_stop();
		vio_quiesce();
		conn_stop();
		vio_shutdown();
		reg_shutdown();
		return 1;
	}
	repl_ctrl_resume_all(); /* rule 7: volumes this caskd controlled reconcile before they serve writes */
	log_info("caskd ready");
	for (;;) {
		int sig;
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			log_info("SIGHUP ignored (configuration is changed through the control socket)");
			continue;
		}
		log_info("%s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
		break;
	}
	metrics_stop();
	repl_service_stop();
	ctl_stop();
	sched_stop();
	vio_quiesce();
	conn_stop();
	repl_ctrl_shutdown();
	vio_shutdown();
	reg_watch_stop();
	reg_shutdown();
	tls_fini();
	log_info("caskd stopped");
	return 0;
}
