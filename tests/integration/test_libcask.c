/*
 * test_libcask -- the C client library against a real caskd (the one
 * built next to this test): every function libcask.so.1 exports, its
 * error codes; sixteen threads (eight sharing one handle, eight with
 * their own) through the volume calls, and four threads on the shared
 * handle each through snapshots, holds, diff, send/receive jobs, clone,
 * promote, rollback, renames and recursive destroys at once.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <endian.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "../unit/t.h"
#include "cask/client.h"

static char sock[600];
static cask_client *shared;
static pid_t daemon_pid;

/* Whatever way the test ends, its caskd goes too. */
static void
stop_daemon(void)
{
	if (daemon_pid > 0) {
		kill(daemon_pid, SIGTERM);
		waitpid(daemon_pid, NULL, 0);
		daemon_pid = 0;
	}
}

#define CHECK_CODE(e, want_errno, want_code)                                             \
	do {                                                                             \
		int r_ = (e);                                                            \
		if (r_ != -(want_errno) || strcmp(cask_error()->code, want_code) != 0) { \
			fprintf(stderr, "FAIL %s:%d: %s = %d (%s: %s), want -%d %s\n", __FILE__, \
			    __LINE__, #e, r_, cask_error()->code, cask_error()->message,  \
			    want_errno, want_code);                                      \
			exit(1);                                                         \
		}                                                                        \
	} while (0)
#define COK(e)                                                                            \
	do {                                                                              \
		if ((e) != 0) {                                                           \
			fprintf(stderr, "FAIL %s:%d: %s: %s %s\n", __FILE__, __LINE__, #e, \
			    cask_error()->code, cask_error()->message);                   \
			exit(1);                                                          \
		}                                                                         \
	} while (0)

/* A raw NBD client on caskd's unix socket, through GO of export: its descriptor. */
static int
nbd_go(const char *path, const char *export)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	uint8_t g[18], m[512];
	CHECK(recv(fd, g, 18, MSG_WAITALL) == 18 && memcmp(g, "NBDMAGICIHAVEOPT", 16) == 0);
	uint32_t nl = (uint32_t)strlen(export);
	uint8_t *p = m;
	uint32_t be = htobe32(3);
	memcpy(p, &be, 4), p += 4;                                   /* client flags */
	memcpy(p, "IHAVEOPT", 8), p += 8;
	be = htobe32(7), memcpy(p, &be, 4), p += 4;                  /* GO */
	be = htobe32(4 + nl + 2), memcpy(p, &be, 4), p += 4;
	be = htobe32(nl), memcpy(p, &be, 4), p += 4;
	memcpy(p, export, nl), p += nl;
	memset(p, 0, 2), p += 2;
	CHECK(write(fd, m, (size_t)(p - m)) == p - m);
	for (;;) {
		uint8_t h[20];
		CHECK(recv(fd, h, 20, MSG_WAITALL) == 20);
		uint32_t type, len;
		memcpy(&type, h + 12, 4), memcpy(&len, h + 16, 4);
		type = be32toh(type), len = be32toh(len);
		CHECK(len <= sizeof(m) && (len == 0 || recv(fd, m, len, MSG_WAITALL) == (ssize_t)len));
		CHECK((type & 0x80000000u) == 0);
		if (type == 1)
			return fd; /* ACK: transmission */
	}
}

/* The server closed fd. */
static int
nbd_closed(int fd)
{
	char b;
	struct pollfd pf = { fd, POLLIN, 0 };
	CHECK(poll(&pf, 1, 30000) == 1);
	int gone = recv(fd, &b, 1, 0) <= 0;
	close(fd);
	return gone;
}

static void *
worker(void *arg)
{
	int id = (int)(intptr_t)arg;
	cask_client *c = shared;
	if (id >= 8)
		COK(cask_connect(sock, &c));
	char name[64];
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "tank/t%d-%d", id, i);
		cask_vol_props pr = { sizeof(pr), 0, i % 2 ? "zstd" : "off", NULL, i % 4 == 0 ? "always" : NULL };
		COK(cask_vol_create(c, name, (uint64_t)(i + 1) << 20, &pr));
		cask_vol_info vi;
		COK(cask_vol_get(c, name, &vi));
		CHECK(vi.size == (uint64_t)(i + 1) << 20 && strcmp(vi.name, name) == 0);
		CHECK(strcmp(vi.compression, i % 2 ? "zstd" : "off") == 0);
		CHECK(strcmp(vi.sync, i % 4 == 0 ? "always" : "standard") == 0);
		COK(cask_vol_set(c, name, "checksum", "sha256"));
		COK(cask_vol_resize(c, name, (uint64_t)(i + 2) << 20, 0));
		CHECK_CODE(cask_vol_create(c, name, 1 << 20, NULL), EEXIST, "VOLUME_EXISTS");
		if (i % 3 == 0)
			COK(cask_vol_destroy(c, name));
	}
	if (id >= 8)
		cask_disconnect(c);
	return NULL;
}

/*
 * One thread's tour of the snapshot, send/receive, diff and job calls, on
 * its own volumes, over the shared handle while others do the same.
 */
static void *
tour(void *arg)
{
	int id = (int)(intptr_t)arg;
	cask_client *c = shared;
	char v[32], s1[96], s2[96], cl[32], cp[96], rv[32], rs[96];
	snprintf(v, sizeof(v), "tank/tour%d", id);
	snprintf(s1, sizeof(s1), "%s@a", v);
	snprintf(s2, sizeof(s2), "%s@b", v);
	snprintf(cl, sizeof(cl), "tank/tourclone%d", id);
	snprintf(cp, sizeof(cp), "%s@c", cl);
	snprintf(rv, sizeof(rv), "tank/tourcopy%d", id);
	snprintf(rs, sizeof(rs), "%s@a", rv);
	COK(cask_vol_create(c, v, 4 << 20, NULL));
	/* CASK_1.1: a volume no client has done IO to has all-zero counters; a missing one is refused */
	cask_iostat ios;
	memset(&ios, 0xff, sizeof(ios));
	COK(cask_vol_iostat(c, v, &ios));
	CHECK(ios.kind[CASK_IO_READ].count == 0 && ios.kind[CASK_IO_WRITE].bytes == 0 && ios.time_ns != 0);
	CHECK_CODE(cask_vol_iostat(c, "tank/no-such-volume", &ios), ENOENT, "VOLUME_NOT_FOUND");
	/* CASK_1.1: no intent log damage on a new volume (ilog_damage.sh checks a damaged one) */
	char dmg[128];
	memset(dmg, 'x', sizeof(dmg));
	COK(cask_vol_log_damaged(c, v, dmg, sizeof(dmg)));
	CHECK(dmg[0] == '\0');
	CHECK_CODE(cask_vol_log_damaged(c, "tank/no-such-volume", dmg, sizeof(dmg)), ENOENT, "VOLUME_NOT_FOUND");
	/* CASK_1.1: a snapshot policy: set, listed, run now (an automatic snapshot), removed */
	cask_sched pol = { 60, 3, 0, 2, 0, 0 }, bad = { 60, 0, 0, 0, 0, 0 };
	char sv[32];
	snprintf(sv, sizeof(sv), "tank/sched%d", id);
	size_t n0;
	COK(cask_vol_create(c, sv, 1 << 20, NULL));
	COK(cask_sched_set(c, sv, &pol));
	CHECK_CODE(cask_sched_set(c, sv, &bad), EINVAL, "INVALID_ARGUMENT");
	CHECK_CODE(cask_sched_set(c, "tank/no-such-volume", &pol), ENOENT, "VOLUME_NOT_FOUND");
	cask_sched_info *sl;
	COK(cask_sched_list(c, sv, &sl, &n0));
	CHECK(n0 == 1 && strcmp(sl[0].name, sv) == 0 && sl[0].policy.every_min == 60 && sl[0].policy.keep == 3 &&
	    sl[0].policy.daily == 2 && sl[0].next_run > 0);
	free(sl);
	char autosnap[600];
	int runrc = cask_sched_run(c, sv, autosnap, sizeof(autosnap));
	/* the scheduler may have taken this minute's snapshot itself (the policy's slot): then EEXIST */
	CHECK(runrc == 0 ? strncmp(autosnap, sv, strlen(sv)) == 0 && strstr(autosnap, "@auto-") != NULL :
	    cask_error()->err == EEXIST);
	COK(cask_sched_set(c, sv, NULL));
	CHECK_CODE(cask_sched_set(c, sv, NULL), EINVAL, "INVALID_ARGUMENT");
	COK(cask_sched_list(c, NULL, &sl, &n0));
	free(sl);
	CHECK_CODE(cask_sched_run(c, sv, autosnap, sizeof(autosnap)), EINVAL, "INVALID_ARGUMENT");
	COK(cask_vol_destroy_ex(c, sv, CASK_DESTROY_SNAPSHOTS));
	/* CASK_1.1 replication: this caskd has no --peer-key, and v is not a replicated volume
	 * (repl_quorum.sh drives both with real replicas) */
	cask_repl_status rst;
	CHECK_CODE(cask_vol_repl_status(c, v, &rst), EINVAL, "NOT_REPLICATED");
	cask_repl_lease rls = CASK_REPL_LEASE_INIT;
	CHECK_CODE(cask_vol_repl_status_ex(c, v, &rst, &rls), EINVAL, "NOT_REPLICATED"); /* repl_lease.sh: a real one */
	rls.size = sizeof(size_t); /* covers no field */
	CHECK_CODE(cask_vol_repl_status_ex(c, v, &rst, &rls), EINVAL, "INVALID_ARGUMENT");
	cask_repl_backlog rblg = CASK_REPL_BACKLOG_INIT;
	CHECK_CODE(cask_vol_repl_backlog(c, v, &rblg), EINVAL, "NOT_REPLICATED"); /* repl_backlog.sh: a real one */
	rblg.size = sizeof(size_t);
	CHECK_CODE(cask_vol_repl_backlog(c, v, &rblg), EINVAL, "INVALID_ARGUMENT");
	CHECK_CODE(cask_vol_takeover(c, v, &rst), EINVAL, "NOT_REPLICATED"); /* repl_takeover.sh: real ones */
	CHECK_CODE(cask_vol_takeover_ex(c, v, CASK_TAKEOVER_FORCE, &rst), EINVAL, "NOT_REPLICATED");
	CHECK_CODE(cask_vol_takeover_ex(c, v, 2, &rst), EINVAL, "INVALID_ARGUMENT");
	const char *reps[] = { "127.0.0.1:1/p2" };
	cask_repl_args rargs = CASK_REPL_ARGS_INIT;
	rargs.replicas = reps;
	rargs.nreplicas = 1;
	rargs.consistency = "quorum";
	CHECK_CODE(cask_vol_create_replicated(c, "tank/r", 1 << 20, NULL, &rargs), EPERM, "REPLICATION_INSECURE");
	/* the replica jobs need a replicated volume (rebuild_proportional.sh drives them for real) */
	uint64_t rjob = 0;
	CHECK_CODE(cask_vol_replica_add(c, v, "127.0.0.1:1/p2", &rjob), EINVAL, "NOT_REPLICATED");
	CHECK_CODE(cask_vol_replica_rebuild(c, v, "127.0.0.1:1/p2", &rjob), EINVAL, "NOT_REPLICATED");
	CHECK_CODE(cask_vol_replica_replace(c, v, "127.0.0.1:1/p2", "127.0.0.1:2/p3", &rjob), EINVAL, "NOT_REPLICATED");
	CHECK_CODE(cask_vol_replica_remove(c, v, "127.0.0.1:1/p2", 0), EINVAL, "NOT_REPLICATED");
	CHECK_CODE(cask_vol_replica_remove(c, v, "127.0.0.1:1/p2", 8), EINVAL, "INVALID_ARGUMENT");
	CHECK(rjob == 0);
	/* verify needs a replicated volume too (repl_verify.sh drives it for real) */
	cask_verify_result vres;
	cask_verify_range *vrg = NULL;
	size_t nvrg = 0;
	CHECK_CODE(cask_vol_verify(c, v, 0, &vres, &vrg, &nvrg), EINVAL, "NOT_REPLICATED");
	CHECK_CODE(cask_vol_verify(c, v, 1, &vres, &vrg, &nvrg), EINVAL, "INVALID_ARGUMENT");
	CHECK(vrg == NULL && nvrg == 0);
	cask_rebuild_info *rbl;
	size_t nrbl;
	CHECK_CODE(cask_vol_rebuild_list(c, v, &rbl, &nrbl), EINVAL, "NOT_REPLICATED");
	const char *one[] = { s1 };
	COK(cask_snap_create(c, one, 1));
	/* CASK_1.1 vol checksum: the snapshot of an unchanged volume has its digest (an empty 4 MiB
	 * volume: the digest of 4 MiB of zeros, whatever the volume); unknown names are refused */
	uint8_t dv[16], ds[16];
	COK(cask_vol_checksum(c, v, dv));
	COK(cask_vol_checksum(c, s1, ds));
	CHECK(memcmp(dv, ds, 16) == 0);
	CHECK_CODE(cask_vol_checksum(c, "tank/no-such-volume", dv), ENOENT, "VOLUME_NOT_FOUND");
	CHECK_CODE(cask_vol_checksum(c, "tank/no-such-volume@x", dv), ENOENT, "SNAPSHOT_NOT_FOUND");
	/* CASK_1.1 iSCSI configuration of v's target: ACL and CHAP set, listed without the
	 * secret, bad values refused, removed again (iscsi_config.sh logs in through them) */
	COK(cask_iscsi_set(c, v, "acl", "iqn.2026-12.io.cask.test:*"));
	COK(cask_iscsi_set(c, v, "auth", "chap"));
	COK(cask_iscsi_chap_set(c, v, "user1", "a-secret-of-16b!", "tuser", "another-secret-1"));
	CHECK_CODE(cask_iscsi_chap_set(c, v, "user1", "short", NULL, NULL), EINVAL, "INVALID_ARGUMENT");
	CHECK_CODE(cask_iscsi_set(c, v, "blocksize", "1000"), EINVAL, "INVALID_ARGUMENT");
	CHECK_CODE(cask_iscsi_set(c, "tank/no-such-volume", "acl", "*"), ENOENT, "VOLUME_NOT_FOUND");
	cask_iscsi_entry *ie;
	size_t ni, found = 0;
	COK(cask_iscsi_config(c, &ie, &ni));
	CHECK(ni >= 2 && ie[0].target[0] == '\0');
	for (size_t i = 0; i < ni; i++)
		if (strcmp(ie[i].target, v) == 0) {
			found++;
			CHECK(strcmp(ie[i].auth, "chap") == 0 && ie[i].nacl == 1 &&
			    strcmp(ie[i].acl[0], "iqn.2026-12.io.cask.test:*") == 0 && ie[i].blocksize == 512 &&
			    strcmp(ie[i].chap_user, "user1") == 0 && ie[i].chap_secret && ie[i].mutual_secret &&
			    strncmp(ie[i].iqn, "iqn.2026-12.io.cask:tank.", 25) == 0);
		}
	CHECK(found == 1);
	free(ie);
	/* the live view (iscsi_cli.sh drives it with real initiators): v's target shows its ACL and
	 * that CHAP secrets are set, nobody is logged in, no reservations */
	cask_iscsi_target *itg;
	size_t nit;
	found = 0;
	COK(cask_iscsi_targets(c, NULL, &itg, &nit));
	for (size_t i = 0; i < nit; i++)
		if (strcmp(itg[i].volume, v) == 0) {
			found++;
			CHECK(strcmp(itg[i].state, "ok") == 0 && strcmp(itg[i].auth, "chap") == 0 && itg[i].chap &&
			    itg[i].mutual_chap && itg[i].nacl == 1 && strcmp(itg[i].acl[0], "iqn.2026-12.io.cask.test:*") == 0 &&
			    itg[i].lun == 0 && itg[i].size == 4u << 20 && itg[i].sessions == 0 && !itg[i].read_only);
		}
	CHECK(found == 1);
	free(itg);
	CHECK_CODE(cask_iscsi_targets(c, "no-such-pool", &itg, &nit), ENOENT, "POOL_NOT_FOUND");
	cask_iscsi_session *is;
	size_t nis;
	COK(cask_iscsi_sessions(c, v, &is, &nis));
	CHECK(nis == 0);
	free(is);
	CHECK_CODE(cask_iscsi_logout(c, 1, 0, NULL), ENOENT, "CLIENT_NOT_FOUND");
	cask_iscsi_pr pr;
	COK(cask_iscsi_pr_get(c, v, &pr));
	CHECK(strcmp(pr.volume, v) == 0 && strcmp(pr.type, "none") == 0 && pr.nregs == 0 && !pr.open && !pr.aptpl);
	cask_iscsi_pr_free(&pr);
	CHECK_CODE(cask_iscsi_pr_get(c, "tank/no-such-volume", &pr), ENOENT, "VOLUME_NOT_FOUND");
	COK(cask_iscsi_chap_unset(c, v, 0));
	COK(cask_iscsi_set(c, v, "acl", NULL));
	COK(cask_iscsi_set(c, v, "auth", NULL));
	COK(cask_iscsi_config(c, &ie, &ni));
	for (size_t i = 0; i < ni; i++)
		CHECK(strcmp(ie[i].target, v) != 0); /* nothing left: the entry is gone */
	free(ie);
	const char *two[] = { s2 };
	COK(cask_snap_create(c, two, 1));
	COK(cask_snap_hold(c, "tour", one, 1));
	cask_hold_info *hl;
	size_t n;
	COK(cask_snap_holds(c, s1, &hl, &n));
	CHECK(n == 1 && strcmp(hl[0].tag, "tour") == 0);
	free(hl);
	CHECK_CODE(cask_snap_destroy(c, s1), EBUSY, "SNAPSHOT_HELD");
	COK(cask_snap_release(c, "tour", one, 1));
	cask_diff_iter *it;
	cask_extent e;
	COK(cask_diff_begin(c, s1, s2, &it));
	CHECK(cask_diff_next(it, &e) == 0); /* nothing was written between them */
	cask_diff_end(it);
	/* send s1 through a pipe into a new volume: two jobs in caskd */
	int pp[2];
	CHECK(pipe(pp) == 0);
	uint64_t sj, rj;
	cask_send_args sa = CASK_SEND_ARGS_INIT;
	cask_recv_args ra = CASK_RECV_ARGS_INIT;
	COK(cask_send(c, s1, &sa, pp[1], &sj));
	COK(cask_recv(c, rv, &ra, pp[0], &rj, NULL, 0));
	close(pp[0]);
	close(pp[1]);
	cask_job_info ji;
	COK(cask_job_wait(c, sj, -1, &ji));
	CHECK(strcmp(ji.state, "done") == 0);
	COK(cask_job_wait(c, rj, -1, &ji));
	CHECK(strcmp(ji.state, "done") == 0 && strcmp(ji.result, rs) == 0);
	cask_job_info *jl;
	COK(cask_job_list(c, &jl, &n));
	CHECK(n >= 2);
	free(jl);
	/* clone and promote there and back; rollback; renames; recursive destroys */
	COK(cask_vol_clone(c, s2, cl));
	const char *cpn[] = { cp };
	COK(cask_snap_create(c, cpn, 1));
	COK(cask_vol_promote(c, cl));               /* v's a and b move to the clone */
	cask_vol_info vi;
	COK(cask_vol_get(c, v, &vi));
	CHECK(strstr(vi.origin, "tourclone") != NULL);
	COK(cask_vol_promote(c, v));                /* and back */
	COK(cask_vol_get(c, cl, &vi));
	CHECK(strcmp(vi.origin, s2) == 0);
	CHECK_CODE(cask_vol_rollback(c, s1, 1), EBUSY, "BUSY"); /* b has a clone */
	COK(cask_vol_rollback(c, s2, 0));
	char renamed[96];
	snprintf(renamed, sizeof(renamed), "%s@renamed", rv);
	COK(cask_snap_rename(c, rs, renamed));
	COK(cask_vol_destroy_ex(c, v, CASK_DESTROY_CLONES)); /* with its snapshots and the clone */
	CHECK_CODE(cask_vol_get(c, cl, &vi), ENOENT, "VOLUME_NOT_FOUND");
	const char *rn[] = { renamed };
	COK(cask_snap_destroy_many(c, rn, 1));
	COK(cask_vol_destroy(c, rv));
	return NULL;
}

static int
count_progress(void *arg, const cask_apply_result *r, size_t item)
{
	int *calls = arg;
	CHECK(item == (size_t)-1 ? calls[0] == 0 : r->items[item].state == CASK_APPLY_DONE);
	calls[item == (size_t)-1 ? 0 : 1]++;
	return 0;
}

static int
has_pool(cask_client *c, const char *name)
{
	cask_pool_info *pl;
	size_t n;
	COK(cask_pool_list(c, &pl, &n));
	int found = 0;
	for (size_t i = 0; i < n; i++)
		found |= strcmp(pl[i].name, name) == 0;
	cask_pool_info_free(pl, n);
	return found;
}

/* cask_apply and cask_manifest_get (docs/manifests.md): plan, apply, again, errors, a failure, round trip. */
static void
test_apply(cask_client *c)
{
	static const char good[] = "apiVersion: cask/v1\n"
	    "pools:\n  - name: mf\n    vdevs: [mf0.vdev]\n    size: 64M\n"
	    "volumes:\n  - name: mf/a\n    size: 16M\n    properties: {compression: zstd, sync: always}\n"
	    "    snapshots: {every: 1h, keep: 2}\n";
	cask_apply_result *r;
	cask_apply_args a = CASK_APPLY_ARGS_INIT;
	a.name = "good.yaml";
	a.base_dir = t_dir;
	/* the text alone (no client), then a dry run: nothing changes */
	COK(cask_apply(NULL, good, strlen(good), &a, &r));
	CHECK(r->nerrors == 0 && r->nitems == 0);
	cask_apply_result_free(r);
	a.dry_run = 1;
	COK(cask_apply(c, good, strlen(good), &a, &r));
	CHECK(r->nitems == 2 && r->nsteps == 2 && r->ncreate == 2 && r->ndone == 0);
	CHECK(strcmp(r->items[0].verb, "create") == 0 && strcmp(r->items[0].kind, "pool") == 0 &&
	    strcmp(r->items[0].name, "mf") == 0 && r->items[0].step == 1);
	CHECK(strcmp(r->items[1].name, "mf/a") == 0 && r->items[1].state == CASK_APPLY_PLANNED &&
	    strstr(r->items[1].detail, "compression zstd") != NULL && strstr(r->items[1].detail, "every 1h") != NULL);
	CHECK(strcmp(r->items[0].action, "create pool mf") == 0);
	cask_apply_result_free(r);
	CHECK(!has_pool(c, "mf"));
	/* applied, with the progress callback: the plan first, then each change */
	a.dry_run = 0;
	int calls[2] = { 0, 0 };
	a.progress = count_progress;
	a.progress_arg = calls;
	COK(cask_apply(c, good, strlen(good), &a, &r));
	CHECK(calls[0] == 1 && calls[1] == 2 && r->ndone == 2);
	CHECK(r->items[0].state == CASK_APPLY_DONE && r->items[1].state == CASK_APPLY_DONE);
	cask_apply_result_free(r);
	cask_vol_info vi;
	COK(cask_vol_get(c, "mf/a", &vi));
	CHECK(vi.size == 16u << 20 && strcmp(vi.compression, "zstd") == 0 && strcmp(vi.sync, "always") == 0);
	cask_sched_info *sl;
	size_t ns;
	COK(cask_sched_list(c, "mf/a", &sl, &ns));
	CHECK(ns == 1 && sl[0].policy.every_min == 60 && sl[0].policy.keep == 2);
	free(sl);
	/* again: nothing to do */
	a.progress = NULL;
	COK(cask_apply(c, good, strlen(good), &a, &r));
	CHECK(r->nsteps == 0 && r->nunchanged == 2 && r->ndone == 0);
	cask_apply_result_free(r);
	/* the round trip: the running state as a manifest applies unchanged */
	char *text = NULL;
	const char *only[] = { "mf" };
	COK(cask_manifest_get(c, only, 1, &text));
	CHECK(strstr(text, "apiVersion: cask/v1") != NULL && strstr(text, "\"mf/a\"") != NULL &&
	    strstr(text, "every: 1h") != NULL);
	a.prune = 1;
	COK(cask_apply(c, text, strlen(text), &a, &r));
	CHECK(r->nsteps == 0 && r->nerrors == 0);
	cask_apply_result_free(r);
	free(text);
	const char *nope[] = { "no-such-pool" };
	CHECK_CODE(cask_manifest_get(c, nope, 1, &text), ENOENT, "POOL_NOT_FOUND");
	/* errors: all of them, with positions, and nothing changes */
	static const char bad[] = "apiVersion: cask/v1\nvolumes:\n  - name: mf/a\n    size: -1\n"
	    "    colour: blue\n";
	CHECK_CODE(cask_apply(c, bad, strlen(bad), &a, &r), EINVAL, "INVALID_ARGUMENT");
	CHECK(r->nerrors == 2 && r->errors[0].line == 4 && r->errors[1].line == 5 && r->nitems == 0);
	CHECK(strstr(cask_error()->message, "2 errors in good.yaml") != NULL);
	cask_apply_result_free(r);
	CHECK_CODE(cask_apply(NULL, bad, strlen(bad), &a, &r), EINVAL, "INVALID_ARGUMENT");
	CHECK(r->nerrors == 2);
	cask_apply_result_free(r);
	COK(cask_vol_get(c, "mf/a", &vi));
	CHECK(vi.size == 16u << 20);
	/* a change caskd refuses: FAILED with its error, the rest NOT_DONE */
	static const char fails[] = "apiVersion: cask/v1\n"
	    "pools:\n  - name: mf2\n    vdevs: [/nonexistent-dir/mf2.vdev]\n    size: 64M\n"
	    "volumes:\n  - name: mf2/v\n    size: 1M\n";
	a.prune = 0;
	CHECK(cask_apply(c, fails, strlen(fails), &a, &r) < 0);
	CHECK(r->nsteps == 2 && r->ndone == 0 && r->items[0].state == CASK_APPLY_FAILED && r->items[0].err != 0 &&
	    r->items[0].code[0] != '\0' && r->items[0].message[0] != '\0' && r->items[1].state == CASK_APPLY_NOT_DONE);
	printf("apply: a refused change: %s [%s]\n", r->items[0].message, r->items[0].code);
	cask_apply_result_free(r);
	/* bad arguments */
	CHECK_CODE(cask_apply(c, NULL, 5, NULL, &r), EINVAL, "INVALID_ARGUMENT");
	cask_apply_args big[2];
	memset(big, 0, sizeof(big));
	big[0].size = sizeof(big);
	big[1].dry_run = 1; /* a newer caller's field this library does not know */
	CHECK_CODE(cask_apply(c, good, strlen(good), &big[0], &r), EINVAL, "INVALID_ARGUMENT");
	cask_apply_result_free(NULL);
	COK(cask_pool_destroy(c, "mf")); /* with mf/a and the automatic snapshots its policy took */
	printf("apply: plan, apply, again, round trip, errors, a failure: ok\n");
}

int
main(int argc, char **argv)
{
	(void)argc;
	t_tmpdir();
	char caskd[600], state[600], nbdsock[600];
	const char *slash = strrchr(argv[0], '/');
	snprintf(caskd, sizeof(caskd), "%.*s/../caskd", (int)(slash - argv[0]), argv[0]);
	snprintf(sock, sizeof(sock), "%s/run/c.sock", t_dir);
	snprintf(state, sizeof(state), "%s/state", t_dir);
	snprintf(nbdsock, sizeof(nbdsock), "unix:%s/nbd.sock", t_dir);

	/* no daemon yet */
	cask_client *c;
	CHECK(cask_connect(sock, &c) < 0);
	CHECK(strcmp(cask_error()->code, "NOT_RUNNING") == 0 && strstr(cask_error()->message, "cannot reach"));

	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* even if the test aborts */
		execl(caskd, caskd, "--state", state, "--socket", sock, "--nbd", nbdsock, "-q", (char *)NULL);
		_exit(127);
	}
	daemon_pid = pid;
	atexit(stop_daemon);
	for (int i = 0; i < 200 && cask_connect(sock, &c) != 0; i++)
		usleep(20000);
	char ver[32];
	int proto;
	COK(cask_hello(c, ver, sizeof(ver), &proto));
	CHECK(proto == 1 && ver[0] != '\0');

	/* pools */
	char p0[700], p1[700];
	snprintf(p0, sizeof(p0), "%s/p0.vdev", t_dir);
	snprintf(p1, sizeof(p1), "%s/p1.vdev", t_dir);
	const char *paths[] = { p0, p1 };
	COK(cask_pool_create(c, "tank", paths, 2, 128 << 20));
	CHECK_CODE(cask_pool_create(c, "tank", paths, 2, 128 << 20), EEXIST, "POOL_EXISTS");
	CHECK_CODE(cask_pool_create(c, "bad/name", (const char *[]){ "/tmp/x" }, 1, 64 << 20), EINVAL,
	    "INVALID_ARGUMENT");
	CHECK_CODE(cask_pool_create(c, "rel", (const char *[]){ "relative.vdev" }, 1, 64 << 20), EINVAL,
	    "INVALID_ARGUMENT");
	CHECK_CODE(cask_pool_status(c, "nope", &(cask_pool_info){ 0 }), ENOENT, "POOL_NOT_FOUND");
	cask_pool_info pi;
	COK(cask_pool_status(c, "tank", &pi));
	CHECK(strcmp(pi.state, "ONLINE") == 0 && pi.nvdevs == 2 && pi.nvdevs_paths == 2 && pi.size > 200 << 20);
	CHECK(strcmp(pi.vdevs[0], p0) == 0 && strcmp(pi.vdevs[1], p1) == 0);
	cask_pool_info_clear(&pi);
	CHECK(pi.vdevs == NULL);
	cask_pool_info *pl;
	size_t n;
	COK(cask_pool_list(c, &pl, &n));
	CHECK(n == 1 && strcmp(pl[0].name, "tank") == 0);
	cask_pool_info_free(pl, n);
	cask_pool_rewind_info ri;
	memset(&ri, 0xff, sizeof(ri));
	COK(cask_pool_rewind_get(c, "tank", &ri));
	CHECK(ri.base_txg == 0 && ri.last_discarded_txg == 0 && ri.newer_damaged_txg == 0);
	CHECK_CODE(cask_pool_rewind_get(c, "nope", &ri), ENOENT, "POOL_NOT_FOUND");
	cask_pool_sync_info si;
	memset(&si, 0xff, sizeof(si));
	COK(cask_pool_sync_get(c, "tank", &si));
	/* a fresh pool (its creation writes its first txgs itself); the pipeline has a worker per core */
	CHECK(si.sync_ns_total >= si.last_sync_ns && (si.syncs > 0 || si.last_sync_ns == 0));
	CHECK(si.sync_threads >= 1 && si.sync_threads <= 16);
	CHECK_CODE(cask_pool_sync_get(c, "nope", &si), ENOENT, "POOL_NOT_FOUND");

	/* CASK_1.1: a file that holds data is refused unless forced; a vdev of a pool stays POOL_EXISTS */
	char used[700];
	snprintf(used, sizeof(used), "%s/used.img", t_dir);
	{
		int fd = open(used, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		CHECK(fd >= 0);
		char junk[4096];
		for (size_t i = 0; i < sizeof(junk); i++)
			junk[i] = (char)(i * 7 + 1);
		for (int i = 0; i < (32 << 20) / (int)sizeof(junk); i++)
			CHECK(write(fd, junk, sizeof(junk)) == (ssize_t)sizeof(junk));
		close(fd);
	}
	const char *up[] = { used };
	CHECK_CODE(cask_pool_create_ex(c, "used", up, 1, 0, 0), EEXIST, "VDEV_IN_USE");
	CHECK(strstr(cask_error()->message, "holds data") != NULL);
	CHECK_CODE(cask_pool_create_ex(c, "used", up, 1, 0, 1u << 7), EINVAL, "INVALID_ARGUMENT");
	CHECK_CODE(cask_pool_create_ex(c, "used", up, 1, 16 << 20, CASK_POOL_FORCE), EINVAL, "INVALID_ARGUMENT");
	COK(cask_pool_create_ex(c, "used", up, 1, 0, CASK_POOL_FORCE));
	COK(cask_pool_export(c, "used"));
	CHECK_CODE(cask_pool_create_ex(c, "used2", up, 1, 0, 0), EEXIST, "POOL_EXISTS");
	CHECK_CODE(cask_pool_import_ex(c, NULL, up, 1, NULL, 1u << 7, NULL, 0), EINVAL, "INVALID_ARGUMENT");
	char uname[64];
	COK(cask_pool_import_ex(c, NULL, up, 1, NULL, 0, uname, sizeof(uname)));
	CHECK(strcmp(uname, "used") == 0);
	COK(cask_pool_destroy(c, "used"));
	unlink(used);

	/* volumes: errors */
	CHECK_CODE(cask_vol_create(c, "tank/v", 0, NULL), EINVAL, "INVALID_ARGUMENT");
	CHECK_CODE(cask_vol_create(c, "nopool/v", 1 << 20, NULL), ENOENT, "POOL_NOT_FOUND");
	CHECK_CODE(cask_vol_create(c, "noslash", 1 << 20, NULL), EINVAL, "INVALID_ARGUMENT");
	CHECK_CODE(cask_vol_create(c, "tank/v", 1 << 20, &(cask_vol_props){ sizeof(cask_vol_props), 0, "gzip", NULL, NULL }), EINVAL,
	    "INVALID_ARGUMENT");
	CHECK_CODE(cask_vol_get(c, "tank/none", &(cask_vol_info){ 0 }), ENOENT, "VOLUME_NOT_FOUND");
	CHECK_CODE(cask_vol_destroy(c, "tank/none"), ENOENT, "VOLUME_NOT_FOUND");
	CHECK_CODE(cask_vol_set(c, "tank/none", "compression", "off"), ENOENT, "VOLUME_NOT_FOUND");
	CHECK_CODE(cask_vol_create(c, "tank/v", 1 << 20, &(cask_vol_props){ sizeof(cask_vol_props), 0, NULL, NULL, "sometimes" }), EINVAL,
	    "INVALID_ARGUMENT");
	/* option structures carry their size: unset is refused, a newer one's zero tail accepted */
	CHECK_CODE(cask_vol_create(c, "tank/v", 1 << 20, &(cask_vol_props){ 0, 0, NULL, NULL, NULL }), EINVAL,
	    "INVALID_ARGUMENT");
	CHECK(strstr(cask_error()->message, "size") != NULL);
	struct {
		cask_vol_props p;
		uint64_t later_field;
	} newer = { { sizeof(newer), 0, "lz4", NULL, NULL }, 0 };
	CHECK(cask_vol_create(c, "tank/newer", 1 << 20, &newer.p) == 0);
	newer.later_field = 1;
	CHECK_CODE(cask_vol_create(c, "tank/newer2", 1 << 20, &newer.p), EINVAL, "INVALID_ARGUMENT");
	struct {
		size_t size;
		uint32_t volblocksize;
	} older = { sizeof(older), 8192 };   /* an older caller: the fields it has, defaults after */
	CHECK(cask_vol_create(c, "tank/older", 1 << 20, (const cask_vol_props *)(const void *)&older) == 0);
	cask_vol_info ovi;
	CHECK(cask_vol_get(c, "tank/older", &ovi) == 0 && ovi.volblocksize == 8192);
	CHECK(cask_vol_destroy(c, "tank/newer") == 0 && cask_vol_destroy(c, "tank/older") == 0);

	/* sixteen threads: eight share the handle, eight have their own */
	shared = c;
	pthread_t th[16];
	for (int i = 0; i < 16; i++)
		pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i);
	for (int i = 0; i < 16; i++)
		pthread_join(th[i], NULL);
	cask_vol_info *vl;
	COK(cask_vol_list(c, "tank", &vl, &n));
	CHECK(n == 16 * 13); /* 20 each, 7 destroyed */
	for (size_t i = 0; i < n; i++)
		CHECK(strcmp(vl[i].checksum, "sha256") == 0);
	free(vl);
	COK(cask_vol_list(c, NULL, &vl, &n));
	CHECK(n == 16 * 13);
	free(vl);
	CHECK_CODE(cask_vol_list(c, "nope", &vl, &n), ENOENT, "POOL_NOT_FOUND");

	/* capabilities */
	cask_capabilities_info caps;
	COK(cask_capabilities(c, &caps));
	CHECK(strcmp(caps.server, "caskd") == 0 && caps.protocol == 1 && caps.nfeatures > 10);
	CHECK(cask_has_feature(&caps, "send") && cask_has_feature(&caps, "holds") &&
	    !cask_has_feature(&caps, "no-such-feature"));
	CHECK(strcmp(cask_lib_version(), "1.0.0") == 0);

	/* several properties at once, all or none; sources; inherit */
	const char *pk[] = { "sync", "compression" }, *pv[] = { "always", "zstd" }, *pbad[] = { "always", "gzip" };
	CHECK_CODE(cask_vol_set_many(c, "tank/t0-2", pk, pbad, 2), EINVAL, "INVALID_ARGUMENT");
	cask_vol_info pvi;
	COK(cask_vol_get(c, "tank/t0-2", &pvi));
	CHECK(strcmp(pvi.sync, "always") != 0);
	COK(cask_vol_set_many(c, "tank/t0-2", pk, pv, 2));
	COK(cask_vol_get(c, "tank/t0-2", &pvi));
	CHECK(strcmp(pvi.sync, "always") == 0 && strcmp(pvi.compression, "zstd") == 0);
	CHECK(strcmp(pvi.sync_source, "local") == 0);
	COK(cask_vol_inherit(c, "tank/t0-2", "sync"));
	COK(cask_vol_get(c, "tank/t0-2", &pvi));
	CHECK(strcmp(pvi.sync, "standard") == 0 && strcmp(pvi.sync_source, "default") == 0);

	/* a batch call refused: each name's own error */
	const char *sn[] = { "tank/t0-2@a", "tank/nope@a", "tank/t0-2@a" };
	CHECK_CODE(cask_snap_create(c, sn, 3), EINVAL,
	    "INVALID_ARGUMENT");
	const cask_item_error *items;
	size_t ni = cask_error_items(&items);
	CHECK(ni == 2 && strcmp(items[0].name, "tank/nope@a") == 0 && items[0].err == ENOENT &&
	    strcmp(items[0].code, "VOLUME_NOT_FOUND") == 0 && items[1].err == EEXIST);
	cask_vol_info nvi;
	CHECK_CODE(cask_vol_get(c, "tank/nope", &nvi), ENOENT, "VOLUME_NOT_FOUND");
	CHECK(cask_error_items(&items) == 0); /* only after a batch call */

	/* a job's pollable descriptor: readable once it ends */
	int pp[2];
	CHECK(pipe(pp) == 0);
	cask_recv_args ra = CASK_RECV_ARGS_INIT;
	uint64_t jid;
	COK(cask_recv(c, "tank/never", &ra, pp[0], &jid, NULL, 0));
	int pfd = cask_job_pollfd(c, jid);
	CHECK(pfd >= 0);
	struct pollfd pw = { pfd, POLLIN, 0 };
	CHECK(poll(&pw, 1, 200) == 0);          /* running */
	COK(cask_job_cancel(c, jid));
	CHECK(poll(&pw, 1, 10000) == 1);        /* ended */
	close(pfd);
	cask_job_info ji;
	COK(cask_job_get(c, jid, &ji));
	CHECK(strcmp(ji.state, "cancelled") == 0 && strcmp(ji.code, "CANCELLED") == 0);
	CHECK_CODE(cask_job_cancel(c, jid), EALREADY, "JOB_ENDED");
	CHECK_CODE(cask_job_get(c, 999999, &ji), ENOENT, "JOB_NOT_FOUND");
	/* wait with a timeout: TIMED_OUT, and the job goes on until cancelled */
	ra.wait = 1;
	ra.timeout_ms = 300;
	CHECK_CODE(cask_recv(c, "tank/never", &ra, pp[0], &jid, NULL, 0), ETIMEDOUT, "TIMED_OUT");
	COK(cask_job_get(c, jid, &ji));
	CHECK(strcmp(ji.state, "running") == 0);
	COK(cask_job_cancel(c, jid));
	COK(cask_job_wait(c, jid, -1, &ji));
	CHECK(strcmp(ji.state, "cancelled") == 0);
	close(pp[0]);
	close(pp[1]);

	/* four threads on the shared handle, each through snapshots, holds, diff,
	   send/receive jobs, clone, promote, rollback and recursive destroy */
	shared = c;
	pthread_t tt[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&tt[i], NULL, tour, (void *)(intptr_t)i);
	for (int i = 0; i < 4; i++)
		pthread_join(tt[i], NULL);

	/* a truncated stream leaves a partial receive; abandon drops it */
	COK(cask_vol_create(c, "tank/part", 2 << 20, NULL));
	const char *ps[] = { "tank/part@s" };
	COK(cask_snap_create(c, ps, 1));
	char spath[700];
	snprintf(spath, sizeof(spath), "%s/part.stream", t_dir);
	int sfd = open(spath, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(sfd >= 0);
	cask_send_args swa = CASK_SEND_ARGS_INIT;
	swa.wait = 1;
	uint64_t pj;
	COK(cask_send(c, "tank/part@s", &swa, sfd, &pj));
	off_t slen = lseek(sfd, 0, SEEK_END);
	CHECK(slen > 600 && ftruncate(sfd, 600) == 0 && lseek(sfd, 0, SEEK_SET) == 0);
	cask_recv_args rwa = CASK_RECV_ARGS_INIT;
	rwa.wait = 1;
	CHECK_CODE(cask_recv(c, "tank/partcopy", &rwa, sfd, &pj, NULL, 0), EPIPE, "TRUNCATED_STREAM");
	close(sfd);
	cask_vol_info pvi2;
	COK(cask_vol_get(c, "tank/partcopy", &pvi2));
	CHECK(strncmp(pvi2.receive_resume_token, "1-", 2) == 0);
	COK(cask_recv_abandon(c, "tank/partcopy"));
	CHECK_CODE(cask_vol_get(c, "tank/partcopy", &pvi2), ENOENT, "VOLUME_NOT_FOUND"); /* it went */
	CHECK_CODE(cask_recv_abandon(c, "tank/partcopy"), ENOENT, "NOT_A_PARTIAL_RECEIVE");
	COK(cask_vol_destroy_ex(c, "tank/part", CASK_DESTROY_SNAPSHOTS));

	/* an injected flush failure suspends the pool; clear resumes it */
	COK(cask_pool_inject(c, "tank", "flush", -1, 0, 1));
	const char *fs[] = { "tank/t0-2@fail" };
	CHECK(cask_snap_create(c, fs, 1) < 0);
	cask_pool_info pst;
	COK(cask_pool_status(c, "tank", &pst));
	CHECK(strcmp(pst.state, "SUSPENDED") == 0);
	cask_pool_info_clear(&pst);
	CHECK_CODE(cask_pool_clear(c, "tank"), EIO, "POOL_SUSPENDED"); /* the device still fails */
	COK(cask_pool_inject(c, "tank", "none", -1, 0, 0));
	COK(cask_pool_clear(c, "tank"));
	COK(cask_pool_status(c, "tank", &pst));
	CHECK(strcmp(pst.state, "ONLINE") == 0);
	cask_pool_info_clear(&pst);

	/* the default socket follows $CASK_SOCKET */
	setenv("CASK_SOCKET", sock, 1);
	CHECK(strcmp(cask_default_socket(), sock) == 0);
	cask_client *dc;
	COK(cask_connect(NULL, &dc));
	cask_disconnect(dc);

	/* after fork() the child's copy of a handle refuses to be used; the parent's goes on */
	fflush(NULL);
	pid_t child = fork();
	if (child == 0) {
		char cv[64];
		int cp;
		int r = cask_hello(c, cv, sizeof(cv), &cp);
		_exit(r == -EINVAL && strcmp(cask_error()->code, "INVALID_ARGUMENT") == 0 &&
		    strstr(cask_error()->message, "fork") != NULL ? 0 : 1);
	}
	int cst;
	CHECK(child > 0 && waitpid(child, &cst, 0) == child && WIFEXITED(cst) && WEXITSTATUS(cst) == 0);
	cask_vol_info fvi;
	COK(cask_vol_get(c, "tank/t0-1", &fvi));

	/* a listing bigger than a frame comes in pages (server-side cursor) */
	COK(cask_vol_create(c, "tank/many", 1 << 20, NULL));
	static char mnames[3000][32];
	const char *mp[1000];
	for (int b = 0; b < 3; b++) {
		for (int i = 0; i < 1000; i++) {
			snprintf(mnames[b * 1000 + i], sizeof(mnames[0]), "tank/many@s%04d", b * 1000 + i);
			mp[i] = mnames[b * 1000 + i];
		}
		COK(cask_snap_create(c, mp, 1000));
	}
	cask_snap_info *ml;
	size_t mn;
	COK(cask_snap_list(c, "tank/many", &ml, &mn));
	CHECK(mn == 3000);
	for (size_t i = 0; i < mn; i++)
		CHECK(strcmp(ml[i].name, mnames[i]) == 0); /* in order, each once */
	free(ml);
	/* holds page the same way: 2,000 holds, by snapshot then tag */
	for (int i = 0; i < 1000; i++)
		mp[i] = mnames[i];
	COK(cask_snap_hold(c, "b", mp, 1000));
	COK(cask_snap_hold(c, "a", mp, 1000));
	cask_hold_info *mh;
	COK(cask_snap_holds(c, "tank", &mh, &mn));
	CHECK(mn == 2000);
	for (size_t i = 0; i < mn; i++)
		CHECK(strcmp(mh[i].snapshot, mnames[i / 2]) == 0 && strcmp(mh[i].tag, i % 2 ? "b" : "a") == 0);
	free(mh);
	COK(cask_snap_release(c, "a", mp, 1000));
	COK(cask_snap_release(c, "b", mp, 1000));
	COK(cask_vol_destroy_ex(c, "tank/many", CASK_DESTROY_SNAPSHOTS));

	/* rename, shrink */
	COK(cask_vol_rename(c, "tank/t0-1", "tank/renamed"));
	CHECK_CODE(cask_vol_rename(c, "tank/renamed", "other/x"), EINVAL, "INVALID_ARGUMENT");
	CHECK_CODE(cask_vol_resize(c, "tank/renamed", 1 << 20, 0), EINVAL, "INVALID_ARGUMENT");
	COK(cask_vol_resize(c, "tank/renamed", 1 << 20, 1));

	/* CASK_1.1: frontend clients listed and killed; BUSY names them; CASK_FORCE_DISCONNECT */
	{
		char nbdpath[700];
		snprintf(nbdpath, sizeof(nbdpath), "%s/nbd.sock", t_dir);
		const char *hs[] = { "tank/renamed@h1", "tank/renamed@h2" };
		COK(cask_snap_create(c, hs, 2));
		int a = nbd_go(nbdpath, "tank/renamed"), b = nbd_go(nbdpath, "tank/renamed@h2");
		cask_conn_info *cl;
		size_t k = 0;
		for (int i = 0; i < 200 && k < 2; i++) { /* listed once its loop has taken it */
			COK(cask_conn_list(c, &cl, &k));
			if (k < 2)
				free(cl), usleep(10000);
		}
		CHECK(k == 2 && cl[0].id < cl[1].id && strcmp(cl[0].export_name, "tank/renamed") == 0);
		CHECK(strcmp(cl[1].export_name, "tank/renamed@h2") == 0 && strcmp(cl[0].frontend, "nbd") == 0);
		CHECK(cl[0].uid == (long)geteuid() && cl[0].pid == (long)getpid() && strcmp(cl[0].state, "serving") == 0);
		uint64_t ida = cl[0].id;
		free(cl);
		CHECK_CODE(cask_snap_destroy_many_ex(c, &hs[1], 1, 0), EBUSY, "BUSY");
		CHECK(strstr(cask_error()->message, "held by nbd client") != NULL);
		CHECK_CODE(cask_snap_destroy_many_ex(c, &hs[1], 1, 1u << 3), EINVAL, "INVALID_ARGUMENT");
		COK(cask_snap_destroy_many_ex(c, &hs[1], 1, CASK_FORCE_DISCONNECT));
		CHECK(nbd_closed(b));
		/* that destroy committed a txg through the sync thread: timed and counted */
		cask_pool_sync_info s2;
		COK(cask_pool_sync_get(c, "tank", &s2));
		CHECK(s2.syncs > 0 && s2.last_sync_ns > 0 && s2.last_sync_bytes > 0 && s2.sync_ns_total >= s2.last_sync_ns);
		CHECK_CODE(cask_vol_rollback_ex(c, hs[0], 0), EBUSY, "BUSY");
		CHECK_CODE(cask_vol_rollback_ex(c, hs[0], 1u << 3), EINVAL, "INVALID_ARGUMENT");
		COK(cask_conn_kill(c, ida));
		CHECK(nbd_closed(a));
		CHECK_CODE(cask_conn_kill(c, ida), ENOENT, "CLIENT_NOT_FOUND");
		a = nbd_go(nbdpath, "tank/renamed");
		COK(cask_vol_rollback_ex(c, hs[0], CASK_ROLLBACK_DESTROY_LATER | CASK_FORCE_DISCONNECT));
		CHECK(nbd_closed(a));
		a = nbd_go(nbdpath, "tank/renamed");
		CHECK_CODE(cask_pool_export_ex(c, "tank", 0), EBUSY, "BUSY");
		CHECK(strstr(cask_error()->message, "held by nbd client") != NULL);
		CHECK_CODE(cask_pool_export_ex(c, "tank", 1u << 3), EINVAL, "INVALID_ARGUMENT");
		COK(cask_pool_export_ex(c, "tank", CASK_FORCE_DISCONNECT));
		CHECK(nbd_closed(a));
		COK(cask_conn_list(c, &cl, &k));
		CHECK(k == 0);
		free(cl);
		CHECK_CODE(cask_pool_export_ex(c, "tank", 0), ENOENT, "POOL_NOT_FOUND");
		char got0[64];
		COK(cask_pool_import(c, "tank", NULL, 0, t_dir, got0, sizeof(got0)));
	}

	test_apply(c);

	/* export, import by directory, destroy */
	COK(cask_pool_export(c, "tank"));
	CHECK_CODE(cask_pool_export(c, "tank"), ENOENT, "POOL_NOT_FOUND");
	char got[64];
	COK(cask_pool_import(c, "tank", NULL, 0, t_dir, got, sizeof(got)));
	CHECK(strcmp(got, "tank") == 0);
	/* rewind on an intact pool discards nothing */
	COK(cask_pool_export(c, "tank"));
	COK(cask_pool_import_ex(c, "tank", NULL, 0, t_dir, CASK_POOL_REWIND, got, sizeof(got)));
	COK(cask_pool_rewind_get(c, "tank", &ri));
	CHECK(ri.base_txg == 0 && ri.first_discarded_txg == 0 && ri.last_discarded_txg == 0);
	CHECK_CODE(cask_pool_import(c, "tank", NULL, 0, t_dir, got, sizeof(got)), EEXIST, "POOL_EXISTS");
	COK(cask_pool_destroy(c, "tank"));
	CHECK_CODE(cask_pool_import(c, "tank", NULL, 0, t_dir, got, sizeof(got)), ENOENT, "POOL_NOT_FOUND");
	cask_disconnect(c);

	/* SIGTERM: a clean stop, exit 0 */
	kill(pid, SIGTERM);
	int status;
	CHECK(waitpid(pid, &status, 0) == pid);
	daemon_pid = 0;
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	printf("ok\n");
	return 0;
}
