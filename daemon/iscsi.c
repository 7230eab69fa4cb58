/*
 * iscsi.c -- the iSCSI target (RFC 7143), a conn_proto (conn.c) in front
 * of the SCSI core (scsi.c) over vio; docs/iscsi.md.
 *
 * A connection goes through:
 *
 *   login (SECURITY: AuthMethod, CHAP -> OPERATIONAL: keys -> final Login
 *   Response) -> full feature phase (Normal: SCSI; Discovery: Text
 *   SendTargets and Logout only) -> Logout / connection loss -> closed
 *
 * The receive machine per connection (on_data): RX_HDR (BHS, AHS, header
 * digest; validated before any data byte is read) -> RX_DATA (data
 * segment, padding, data digest: data placed straight into the task's
 * Data-Out buffer or the staging buffer, or dropped) -> pdu_end.
 *
 * A SCSI task goes through: COLLECTING (immediate, unsolicited and
 * R2T-solicited Data-Out) -> RUNNING (scsi_exec; its completion comes back
 * as a conn message) -> answered (Data-In with status, or SCSI Response)
 * -> freed when the last Data-In chunk referencing its buffer is written.
 *
 * Invariants:
 *   1. A connection and its session are touched only on the
 *      connection's loop thread (MaxConnections=1); the only shared
 *      state is the session table (for reinstatement and TSIH) under
 *      sess_lock, and the LU state inside scsi.c.
 *   2. Any framing the target cannot trust (a digest error, a data
 *      segment over what we declared, a Data-Out with a wrong DataSN,
 *      offset or TTT, a non-login PDU during login) drops the
 *      connection (ErrorRecoveryLevel 0); a PDU that is well framed but
 *      wrong gets Reject (or the login status code of docs/iscsi.md §4.2)
 *      and the connection goes on. Nothing a client sends affects
 *      another connection.
 *   3. A non-immediate command outside [ExpCmdSN, MaxCmdSN] is silently
 *      dropped (its data is read and discarded). MaxCmdSN grows as tasks
 *      complete, so the window bounds the tasks of a session.
 *   4. StatSN is assigned when a status-carrying PDU is queued; PDUs are
 *      queued whole and in order, so StatSN order is the wire order.
 *   5. A task that reached the SCSI core holds one conn_budget request
 *      until its completion message is handled, so the connection (and
 *      its LU reference) outlives every vio request of it.
 *   6. CHAP secrets are read from STATE/iscsi.json (mode 0600 or the
 *      file is ignored) at each login and never logged or sent back.
 *   7. A full-feature session that sent nothing for --iscsi-nop-ms gets a
 *      NOP-In ping (TTT set, ITT reserved; at most one outstanding), and is
 *      dropped when the answer has not come --iscsi-nop-ms later. The
 *      pinger thread only posts a check to the session's loop (under
 *      sess_lock: a listed session's connection lives); every decision is
 *      made there (invariant 1).
 *   8. The stall bound (--iscsi-stall-ms B, docs/iscsi.md §9.3): a task in
 *      the SCSI core for B is answered without waiting any longer where
 *      that is safe -- one that changes no state (scsi_cmd_no_effect:
 *      READ, VERIFY, SYNCHRONIZE CACHE ...) at once, its late completion dropped (it is
 *      "detached": off the task list, still holding its buffers, budget
 *      and window slot until the core is done); one that writes once
 *      scsi_cancel withdrew what of it had not begun (its completion then
 *      carries BUSY). Any other command (PERSISTENT RESERVE OUT, MODE
 *      SELECT: nothing to withdraw, its effect may already hold) is
 *      waited for. A write the backend has begun is waited for: an
 *      answer before it lands would let it overtake the retry. While any
 *      task is stalled, a new medium-access command is answered without
 *      being started. Every such answer is TASK SET FULL when the session
 *      has another task in the task set, else BUSY (SAM-5 5.3). The checks
 *      run on the loop, from the pinger's ticks; NOP-Outs go on being
 *      answered (the loop never waits for vio).
 *   9. At most IMM_MAX immediate SCSI commands of a session are live; one
 *      more is answered without being started, TASK SET FULL or BUSY as in 8 (the window
 *      bounds the others, invariant 3).
 */
#include "iscsi.h"
#include "conn.h"
#include "crc32c.h"
#include "log.h"
#include "registry.h"
#include "scsi.h"
#include "util.h"
#include "vio.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

/* opcodes */
enum { OP_NOP_OUT = 0x00, OP_SCSI_CMD = 0x01, OP_TMF = 0x02, OP_LOGIN = 0x03, OP_TEXT = 0x04, OP_DATA_OUT = 0x05,
	OP_LOGOUT = 0x06, OP_SNACK = 0x10,
	OP_NOP_IN = 0x20, OP_SCSI_RSP = 0x21, OP_TMF_RSP = 0x22, OP_LOGIN_RSP = 0x23, OP_TEXT_RSP = 0x24,
	OP_DATA_IN = 0x25, OP_LOGOUT_RSP = 0x26, OP_R2T = 0x31, OP_ASYNC = 0x32, OP_REJECT = 0x3f };
enum { REJ_PROTOCOL = 0x04, REJ_NOT_SUPPORTED = 0x05, REJ_IMMEDIATE = 0x06, REJ_INVALID_FIELD = 0x09 };

#define MY_MAX_RECV (256u << 10)   /* MaxRecvDataSegmentLength we declare */
#define MY_MAX_BURST (1u << 20)
#define MY_FIRST_BURST (64u << 10)
#define QUEUE_DEPTH 128
#define IMM_MAX 8                  /* immediate SCSI commands live per session (invariant 9) */
#define LOGIN_TEXT_MAX (64u << 10)
#define SOLICIT_MAX (64u << 20)     /* per connection: Data-Out buffers of tasks soliciting data */
#define RSV 0xffffffffu
#define ISCSI_PORT "3260"
#define LOGOUT_WAIT_S 2            /* iscsi.logout: Parameter3 of the Async logout request */
#define PORTALS_MAX 16

/* ---- configuration ---- */
static char iqn_prefix[224] = "iqn.2026-12.io.cask";
static char state_dir[4096];
static int auth_default;           /* AUTH_* */
static int disc_auth_default;      /* --iscsi-discovery-auth */
static int hd_policy, dd_policy;   /* 0 allow, 1 require, 2 off */
static int nop_ms = 5000;          /* --iscsi-nop-ms: ping after this idle time, drop after as long again */
static int stall_ms = 15000;       /* --iscsi-stall-ms: the stall bound (invariant 8) */
enum { AUTH_NONE, AUTH_CHAP, AUTH_MUTUAL };

int
iscsi_configure(const char *key, const char *value)
{
	if (strcmp(key, "state") == 0) {
		snprintf(state_dir, sizeof(state_dir), "%s", value);
		return 0;
	}
	if (strcmp(key, "iqn-prefix") == 0) {
		size_t n = strlen(value);
		if (n < 12 || n > 200 || strncmp(value, "iqn.", 4) != 0)
			return -1;
		for (size_t i = 0; i < n; i++)
			if (!(islower((unsigned char)value[i]) || isdigit((unsigned char)value[i]) || value[i] == '.' ||
			    value[i] == '-' || value[i] == ':'))
				return -1;
		snprintf(iqn_prefix, sizeof(iqn_prefix), "%s", value);
		return 0;
	}
	if (strcmp(key, "auth") == 0 || strcmp(key, "discovery-auth") == 0) {
		int *dst = key[0] == 'a' ? &auth_default : &disc_auth_default;
		if (strcmp(value, "none") == 0)
			*dst = AUTH_NONE;
		else if (strcmp(value, "chap") == 0)
			*dst = AUTH_CHAP;
		else if (strcmp(value, "mutual") == 0)
			*dst = AUTH_MUTUAL;
		else
			return -1;
		return 0;
	}
	if (strcmp(key, "nop-ms") == 0 || strcmp(key, "stall-ms") == 0) {
		char *end;
		long v = strtol(value, &end, 10);
		if (*value == '\0' || *end != '\0' || v < 0 || v > 3600000 || (v > 0 && v < 100))
			return -1;
		*(key[0] == 'n' ? &nop_ms : &stall_ms) = (int)v;
		return 0;
	}
	if (strcmp(key, "tp-threshold") == 0) {
		char *end;
		long v = strtol(value, &end, 10);
		if (*value == '\0' || *end != '\0' || v < 0 || v > 99)
			return -1;
		scsi_set_tp_threshold((int)v);
		return 0;
	}
	if (strcmp(key, "header-digest") == 0 || strcmp(key, "data-digest") == 0) {
		int v = strcmp(value, "allow") == 0 ? 0 : strcmp(value, "require") == 0 ? 1 : strcmp(value, "off") == 0 ? 2 : -1;
		if (v < 0)
			return -1;
		*(key[0] == 'h' ? &hd_policy : &dd_policy) = v;
		return 0;
	}
	return -1;
}

/* ---- byte helpers ---- */
static void
p16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static void
p24(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 16);
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)v;
}
static void
p32(uint8_t *p, uint32_t v)
{
	p16(p, (uint16_t)(v >> 16));
	p16(p + 2, (uint16_t)v);
}
static uint16_t
g16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}
static uint32_t
g24(const uint8_t *p)
{
	return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}
static uint32_t
g32(const uint8_t *p)
{
	return (uint32_t)g16(p) << 16 | g16(p + 2);
}
/* RFC 1982 serial arithmetic */
static int
sn_lt(uint32_t a, uint32_t b)
{
	return a != b && (int32_t)(a - b) < 0;
}

/* ---- target names (docs/iscsi.md §2): computed forward from export names ---- */
static int
target_name_of(const char *export_name, char *out, size_t n)
{
	size_t k = (size_t)snprintf(out, n, "%s:", iqn_prefix);
	for (const char *s = export_name; *s; s++) {
		if (k + 1 >= n)
			return -1;
		char ch = *s;
		if (ch == '/' || ch == '@')
			ch = '.';
		else if (ch == '_')
			ch = '-';
		else
			ch = (char)tolower((unsigned char)ch);
		if (!(islower((unsigned char)ch) || isdigit((unsigned char)ch) || ch == '.' || ch == '-' || ch == ':'))
			return -1;
		out[k++] = ch;
	}
	out[k] = '\0';
	return k > 223 ? -1 : 0;
}

int
iscsi_target_name(const char *export_name, char *out, size_t n)
{
	return target_name_of(export_name, out, n);
}

const char *
iscsi_state_dir(void)
{
	return state_dir;
}

/* Find the export of a target name; 0, -ENOENT, or -EEXIST (two exports map to it). */
static int
target_lookup(const char *tname, char *export_out, size_t n)
{
	char **names;
	size_t cnt;
	reg_exports(&names, &cnt);
	int found = 0;
	for (size_t i = 0; i < cnt; i++) {
		char t[256];
		if (target_name_of(names[i], t, sizeof(t)) == 0 && strcasecmp(t, tname) == 0) {
			if (found++ == 0)
				snprintf(export_out, n, "%s", names[i]);
			else
				log_warn("iscsi: exports %s and %s both map to %s; neither is served", export_out, names[i], t);
		}
		free(names[i]);
	}
	free(names);
	return found == 1 ? 0 : found == 0 ? -ENOENT : -EEXIST;
}

int
iscsi_target_export(const char *target_name, char *out, size_t n)
{
	return target_lookup(target_name, out, n);
}

/* ---- per-target configuration: STATE/iscsi.json ---- */
typedef struct tconf {
	int auth;
	int disc_auth;          /* discovery sessions: --iscsi-discovery-auth, or "discovery_auth" */
	char user[256], secret[256], muser[256], msecret[256];
	int acl_any;
	char acl[32][224];
	int nacl;
	uint32_t blocksize;
} tconf;

static void
jstr(json_object *o, const char *k, char *out, size_t n)
{
	json_object *v;
	if (o && json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string))
		snprintf(out, n, "%s", json_object_get_string(v));
}

static void
jchap(json_object *o, tconf *t)
{
	json_object *ch;
	if (!o || !json_object_object_get_ex(o, "chap", &ch))
		return;
	jstr(ch, "user", t->user, sizeof(t->user));
	jstr(ch, "secret", t->secret, sizeof(t->secret));
	jstr(ch, "mutual_user", t->muser, sizeof(t->muser));
	jstr(ch, "mutual_secret", t->msecret, sizeof(t->msecret));
}

static int
parse_auth(const char *s, int dflt)
{
	return strcmp(s, "none") == 0 ? AUTH_NONE : strcmp(s, "chap") == 0 ? AUTH_CHAP : strcmp(s, "mutual") == 0 ? AUTH_MUTUAL : dflt;
}

/* the configuration of one export (a snapshot uses its volume's) */
static void
tconf_load(const char *export_name, tconf *t)
{
	memset(t, 0, sizeof(*t));
	t->auth = auth_default;
	t->disc_auth = disc_auth_default;
	t->acl_any = 1;
	t->blocksize = 512;
	if (!state_dir[0])
		return;
	char path[4200];
	snprintf(path, sizeof(path), "%s/iscsi.json", state_dir);
	struct stat st;
	if (stat(path, &st) != 0)
		return;
	if ((st.st_mode & 077) != 0) {
		log_warn("iscsi: %s is readable by others (mode %03o); ignored, CHAP logins fail", path,
		    (unsigned)(st.st_mode & 0777));
		t->auth = auth_default == AUTH_NONE ? AUTH_NONE : auth_default;
		return;
	}
	json_object *root = json_object_from_file(path);
	if (root == NULL) {
		log_warn("iscsi: %s is not valid JSON; ignored", path);
		return;
	}
	char a[32] = "";
	jstr(root, "auth", a, sizeof(a));
	if (a[0])
		t->auth = parse_auth(a, t->auth);
	a[0] = '\0';
	jstr(root, "discovery_auth", a, sizeof(a));
	if (a[0])
		t->disc_auth = parse_auth(a, t->disc_auth);
	jchap(root, t);
	json_object *targets, *tg = NULL;
	char vol[512];
	snprintf(vol, sizeof(vol), "%s", export_name);
	char *at = strchr(vol, '@');
	if (at)
		*at = '\0';
	if (json_object_object_get_ex(root, "targets", &targets))
		json_object_object_get_ex(targets, vol, &tg);
	if (tg != NULL) {
		a[0] = '\0';
		jstr(tg, "auth", a, sizeof(a));
		if (a[0])
			t->auth = parse_auth(a, t->auth);
		tconf d = *t;
		memset(t->user, 0, sizeof(t->user) * 4);
		jchap(tg, t);
		if (!t->user[0]) { /* no per-target secret: the daemon-wide one */
			memcpy(t->user, d.user, sizeof(d.user));
			memcpy(t->secret, d.secret, sizeof(d.secret));
			memcpy(t->muser, d.muser, sizeof(d.muser));
			memcpy(t->msecret, d.msecret, sizeof(d.msecret));
		}
		explicit_bzero(&d, sizeof(d));
		json_object *acl;
		if (json_object_object_get_ex(tg, "acl", &acl) && json_object_is_type(acl, json_type_array)) {
			t->acl_any = 0;
			size_t n = json_object_array_length(acl);
			for (size_t i = 0; i < n && t->nacl < 32; i++) {
				const char *e = json_object_get_string(json_object_array_get_idx(acl, i));
				if (e == NULL)
					continue;
				if (strcmp(e, "*") == 0)
					t->acl_any = 1;
				snprintf(t->acl[t->nacl++], sizeof(t->acl[0]), "%s", e);
			}
		}
		json_object *bs;
		if (json_object_object_get_ex(tg, "blocksize", &bs) && json_object_get_int(bs) == 4096)
			t->blocksize = 4096;
	}
	json_object_put(root);
}

static int
acl_allows(const tconf *t, const char *initiator)
{
	if (t->acl_any)
		return 1;
	for (int i = 0; i < t->nacl; i++) {
		size_t l = strlen(t->acl[i]);
		if (l > 0 && t->acl[i][l - 1] == '*') {
			if (strncasecmp(t->acl[i], initiator, l - 1) == 0)
				return 1;
		} else if (strcasecmp(t->acl[i], initiator) == 0) {
			return 1;
		}
	}
	return 0;
}

/* ---- connections, sessions, tasks ---- */

enum { RX_HDR, RX_DATA };
enum { PH_LOGIN, PH_FFP, PH_DONE };

typedef struct iconn iconn;

/* a message for a connection's loop: a task completion (kind 0) or "end this session" (1) */
typedef struct imsg {
	conn_msg m;
	int kind;
	struct preempt_wait *pw; /* kind 3 */
} imsg;

typedef struct itask {
	scsi_cmd sc;
	imsg msg;
	int64_t budget;
	uint64_t run_ns;        /* when it entered the SCSI core */
	uint32_t next_off;      /* offset the next Data-Out of the open burst must carry */
	iconn *ic;
	struct itask *next, *prev;
	uint32_t itt, cmdsn;
	uint8_t lun[8];
	int rbit;               /* the initiator set R: Data-In may be sent */
	int data_err;           /* a Data-Out had a wrong DataSN: answered 0B/4B/00 once its data is in */
	int immediate;
	int running;            /* handed to the SCSI core */
	int aborted;            /* by a TMF: no response */
	int detached;           /* answered by the stall bound while the core still runs it (invariant 8) */
	int cancel_said;        /* the stall bound asked the core to withdraw it, and logged so */
	int prep_failed;        /* answered from scsi_prepare (status set) */
	int refs;               /* the task itself + Data-In chunks not yet written */
	uint8_t *buf;           /* Data-Out buffer (need bytes) */
	uint32_t need;          /* Data-Out bytes the command takes */
	uint32_t got;           /* contiguous Data-Out bytes received (offset of the next) */
	uint32_t edtl;
	int unsol;              /* unsolicited Data-Out still to come (the command's F bit was 0) */
	uint32_t unsol_end;     /* where the unsolicited burst ends */
	uint32_t datasn;        /* next DataSN in the current sequence */
	int r2t_out;            /* an R2T is outstanding */
	uint32_t r2t_ttt, r2t_off, r2t_len, r2tsn;
	struct itmf *tmf;       /* a TMF waiting for this task */
	int soliciting;         /* its buffer counts in ic->solicit_bytes */
	int budget_wait;        /* waits for ic->solicit_bytes to fall before its first R2T */
} itask;

typedef struct tbuf {
	char *p;
	size_t len, cap;
} tbuf;

typedef struct preempt_wait preempt_wait;
typedef struct itmf {
	uint32_t itt;
	uint8_t response;
	int waiting;
	int cold;
	preempt_wait *pw;       /* not a TMF: another session's PREEMPT AND ABORT waits (no response PDU) */
} itmf;

/* A PREEMPT AND ABORT waiting for the sessions of the preempted nexuses (abort_nexuses). */
struct preempt_wait {
	_Atomic int pending;
	void (*done)(void *arg);
	void *arg;
};

static void
preempt_release(preempt_wait *pw)
{
	if (--pw->pending == 0) {
		pw->done(pw->arg);
		free(pw);
	}
}

typedef struct isession {
	struct isession *next;
	iconn *ic;
	int unlinked;           /* taken off the table by a reinstating login (under sess_lock) */
	char initiator[224];
	uint8_t isid[6];
	uint16_t tsih;
	char target[256];
	/* for iscsi.sessions (read under sess_lock; set on the loop before the login completes) */
	char export_name[512];
	char peer[80], local[80];
	int ffp;                /* the final Login Response went out */
	int hd, dd;
	int chap_alg;           /* 0 without CHAP */
	int64_t since;          /* login time, seconds since the epoch */
	_Atomic int inflight;   /* tasks of the session (collecting data, in the core, or answering) */
	_Atomic int detached;   /* tasks answered by the stall bound whose core completion is still due */
	_Atomic int logout_asked; /* iscsi.logout posted an Async logout request */
} isession;

struct iconn {
	conn *c;
	int phase;
	int discovery;
	/* rx machine */
	int rx;
	uint8_t hdr[48 + 1024 + 4];
	uint32_t dlen, dtotal, dpos; /* data segment length; with padding and digest; consumed */
	uint8_t *dst;           /* where data bytes go (NULL: dropped) */
	uint32_t dst_len;       /* store the first dst_len bytes of the segment */
	uint32_t dcrc;
	uint8_t ddig[4];
	uint8_t *stage;         /* staging for control PDUs */
	uint32_t stage_cap;
	itask *rx_task;         /* the task the current PDU's data belongs to */
	int rx_drop_pdu;        /* the current PDU is dropped once read (out-of-window) */
	/* negotiated */
	int hd, dd;             /* digests active (after login) */
	int want_hd, want_dd;   /* negotiated, active after the final login response */
	uint32_t peer_mrdsl;    /* the initiator's MaxRecvDataSegmentLength: bounds what we send */
	uint32_t max_burst, first_burst;
	int initial_r2t, immediate_data;
	/* login */
	uint8_t isid[6];
	uint16_t tsih;
	uint32_t login_itt;
	uint16_t cid;
	int csg;
	int auth;               /* required: AUTH_* */
	int chap_state;         /* 0 none, 1 CHAP chosen, 2 challenge sent, 3 done */
	int auth_method_done;
	uint8_t chap_id, chap_chal[32];
	int chap_alg;           /* CHAP_A chosen: 5 MD5, 6 SHA-1, 7 SHA-256, 8 SHA3-256 */
	unsigned chap_len;      /* its digest size, and the challenge's */
	char initiator[224], target[256], export_name[512], alias[520];
	char *ltext;            /* login text accumulated over C PDUs */
	uint32_t ltext_len;
	tconf tc;
	/* full feature */
	uint32_t stat_sn, exp_cmd_sn;
	int live;               /* non-immediate tasks not yet freed */
	itask *tasks;
	uint32_t next_ttt;
	scsi_lu *lu;
	scsi_nexus *nx;
	isession *sess;
	int logout_pending;
	uint32_t logout_itt;
	int running;            /* tasks in the SCSI core */
	int cold_reset;
	uint64_t solicit_bytes; /* Data-Out buffers of tasks that are soliciting (bound SOLICIT_MAX) */
	/* target NOP-In pings (--iscsi-nop-ms; invariant 7) */
	uint64_t last_rx_ns;    /* when the last byte came */
	uint32_t ping_ttt;      /* the TTT of the unanswered ping, 0 none */
	uint64_t ping_ns;       /* when it was sent */
	_Atomic int ping_queued; /* a check message is on its way to the loop */
	int stall_said;         /* the stall bound's log line was written (until a task completes) */
	int ndetached;          /* tasks answered by the stall bound still in the core */
	int nimm;               /* immediate SCSI tasks not yet freed (invariant 9) */
	/* reinstatement (§4.5): the new login's final response waits for the old session to end */
	struct preempt_wait *drain_pw;  /* the old session: released by on_close, once its tasks are gone */
	int held;                       /* the new one: waiting (holds a conn_budget request) */
	tbuf held_text;                 /* its final response's keys */
	int held_csg;
};

static pthread_mutex_t sess_lock = PTHREAD_MUTEX_INITIALIZER;
static isession *sessions;
static char portals[PORTALS_MAX][300]; /* the listeners, as given (set before the loops start) */
static int nportals;
static uint16_t next_tsih = 1;

static uint32_t
max_cmd_sn(iconn *ic)
{
	return ic->exp_cmd_sn + QUEUE_DEPTH - 1 - (uint32_t)ic->live;
}

/* ---- transmit ---- */

/* Queue one PDU: hdr (48 bytes, DataSegmentLength filled here), then data (copied). */
static void
send_pdu(iconn *ic, uint8_t *bhs, const void *data, uint32_t len)
{
	p24(bhs + 5, len);
	uint8_t h[52];
	memcpy(h, bhs, 48);
	size_t hl = 48;
	if (ic->hd) {
		uint32_t d = crc32c(0, h, 48);
		memcpy(h + 48, &d, 4); /* little-endian on the wire, as RFC 7143 B.4 shows */
		hl = 52;
	}
	conn_write(ic->c, h, hl);
	if (len == 0)
		return;
	conn_write(ic->c, data, len);
	uint8_t tail[8] = { 0 };
	uint32_t pad = (4 - (len & 3)) & 3;
	size_t tl = pad;
	if (ic->dd) {
		uint32_t d = crc32c(0, data, len);
		d = crc32c(d, tail, pad);
		memcpy(tail + pad, &d, 4);
		tl += 4;
	}
	if (tl)
		conn_write(ic->c, tail, tl);
}

static void
put_sns(iconn *ic, uint8_t *bhs, int advance)
{
	p32(bhs + 24, ic->stat_sn);
	if (advance)
		ic->stat_sn++;
	p32(bhs + 28, ic->exp_cmd_sn);
	p32(bhs + 32, max_cmd_sn(ic));
}

static void
send_reject(iconn *ic, int reason, const uint8_t *bad)
{
	uint8_t b[48] = { 0 };
	b[0] = OP_REJECT;
	b[1] = 0x80;
	b[2] = (uint8_t)reason;
	p32(b + 16, RSV);
	put_sns(ic, b, 1);
	send_pdu(ic, b, bad, 48);
}

static void
drop(iconn *ic, const char *why)
{
	log_info("iscsi %s: %s; closing the connection", conn_peer(ic->c), why);
	ic->phase = PH_DONE;
	conn_close(ic->c);
}

/* ---- key text ---- */
typedef struct kv {
	char *k, *v;
} kv;

/* Split NUL-separated key=value text; -1 on malformed text. */
static int
kv_parse(char *text, uint32_t len, kv *out, int max, int *n)
{
	*n = 0;
	uint32_t pos = 0;
	while (pos < len) {
		char *s = text + pos;
		size_t l = strnlen(s, len - pos);
		if (l == len - pos)
			return -1; /* not NUL-terminated */
		pos += (uint32_t)l + 1;
		if (l == 0)
			continue;
		char *eq = strchr(s, '=');
		if (eq == NULL || eq == s || eq - s > 63)
			return -1;
		*eq = '\0';
		for (char *q = s; *q; q++)
			if (!(isalnum((unsigned char)*q) || strchr(".-+@_", *q)))
				return -1;
		if (*n == max)
			return -1;
		for (int i = 0; i < *n; i++)
			if (strcmp(out[i].k, s) == 0)
				return -1; /* a key twice */
		out[*n].k = s;
		out[*n].v = eq + 1;
		(*n)++;
	}
	return 0;
}


static void
tb_add(tbuf *t, const char *k, const char *v)
{
	size_t need = strlen(k) + strlen(v) + 2;
	if (t->len + need > t->cap) {
		t->cap = MAX(t->cap * 2, t->len + need + 256);
		t->p = xrealloc(t->p, t->cap);
	}
	t->len += (size_t)sprintf(t->p + t->len, "%s=%s", k, v) + 1;
}

static void
tb_addu(tbuf *t, const char *k, uint64_t v)
{
	char b[24];
	snprintf(b, sizeof(b), "%" PRIu64, v);
	tb_add(t, k, b);
}

static int
parse_num(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	if (!*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* ---- login ---- */

static void
login_respond(iconn *ic, int transit, int csg, int nsg, int sclass, int sdetail, tbuf *t)
{
	uint8_t b[48] = { 0 };
	b[0] = OP_LOGIN_RSP;
	b[1] = (uint8_t)((transit ? 0x80 : 0) | (csg << 2) | (transit ? nsg : 0));
	b[2] = 0;
	b[3] = 0;
	memcpy(b + 8, ic->isid, 6);
	p16(b + 14, (sclass == 0 && transit && nsg == 3) ? ic->tsih : 0);
	p32(b + 16, ic->login_itt);
	put_sns(ic, b, 1);
	b[36] = (uint8_t)sclass;
	b[37] = (uint8_t)sdetail;
	send_pdu(ic, b, t ? t->p : NULL, t ? (uint32_t)t->len : 0);
	if (sclass != 0) {
		ic->phase = PH_DONE;
		conn_close(ic->c);
	}
}

static void
login_fail(iconn *ic, int status, const char *why)
{
	log_info("iscsi %s: login of '%s' to '%s' refused (0x%04x): %s", conn_peer(ic->c), ic->initiator,
	    ic->target, status, why);
	login_respond(ic, 0, ic->csg, 0, status >> 8, status & 0xff, NULL);
}

static void
hexenc(const uint8_t *p, size_t n, char *out)
{
	out[0] = '0';
	out[1] = 'x';
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 + 2 * i, "%02x", p[i]);
}

/* hex (0x...) or base64 (0b...) to bytes; -1 when malformed */
static int
bindec(const char *s, uint8_t *out, size_t max, size_t *n)
{
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		s += 2;
		size_t l = strlen(s);
		if (l == 0 || l % 2 || l / 2 > max)
			return -1;
		for (size_t i = 0; i < l / 2; i++) {
			unsigned v;
			if (!isxdigit((unsigned char)s[2 * i]) || !isxdigit((unsigned char)s[2 * i + 1]) ||
			    sscanf(s + 2 * i, "%2x", &v) != 1)
				return -1;
			out[i] = (uint8_t)v;
		}
		*n = l / 2;
		return 0;
	}
	if (s[0] == '0' && (s[1] == 'b' || s[1] == 'B')) {
		s += 2;
		size_t l = strlen(s);
		if (l == 0 || l % 4 || l / 4 * 3 > max + 2)
			return -1;
		uint8_t tmp[1100];
		int r = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)l);
		if (r < 0)
			return -1;
		size_t k = (size_t)r;
		if (l >= 1 && s[l - 1] == '=')
			k--;
		if (l >= 2 && s[l - 2] == '=')
			k--;
		if (k > max)
			return -1;
		memcpy(out, tmp, k);
		*n = k;
		return 0;
	}
	return -1;
}

/* The digest of CHAP_A value alg (RFC 1994 MD5; SHA-1, SHA-256 and SHA3-256 as open-iscsi, LIO
 * and SCST number them: 6, 7, 8), or NULL for one cask does not do. */
static const EVP_MD *
chap_md(int alg)
{
	switch (alg) {
	case 5: return EVP_md5();
	case 6: return EVP_sha1();
	case 7: return EVP_sha256();
	case 8: return EVP_sha3_256();
	}
	return NULL;
}

/* out = H(id || secret || challenge), EVP_MD_size(chap_md(alg)) bytes (at most 32). */
static void
chap_hash(int alg, uint8_t id, const char *secret, const uint8_t *chal, size_t cl, uint8_t out[32])
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	unsigned ol = 32;
	EVP_DigestInit_ex(m, chap_md(alg), NULL);
	EVP_DigestUpdate(m, &id, 1);
	EVP_DigestUpdate(m, secret, strlen(secret));
	EVP_DigestUpdate(m, chal, cl);
	EVP_DigestFinal_ex(m, out, &ol);
	EVP_MD_CTX_free(m);
}

/* The security stage's keys. Returns 0 to go on, -1 after a failure was answered. */
static int
login_security(iconn *ic, kv *kvs, int n, tbuf *t, int *stay)
{
	const char *chap_a = NULL, *chap_n = NULL, *chap_r = NULL, *chap_i = NULL, *chap_c = NULL;
	for (int i = 0; i < n; i++) {
		const char *k = kvs[i].k, *v = kvs[i].v;
		if (strcmp(k, "AuthMethod") == 0) {
			const char *pick = "Reject";
			char list[256];
			snprintf(list, sizeof(list), "%s", v);
			for (char *sv, *m = strtok_r(list, ",", &sv); m; m = strtok_r(NULL, ",", &sv)) {
				if (strcmp(m, "CHAP") == 0 && (ic->auth != AUTH_NONE || ic->tc.secret[0])) {
					pick = "CHAP";
					break;
				}
				if (strcmp(m, "None") == 0 && ic->auth == AUTH_NONE) {
					pick = "None";
					break;
				}
			}
			tb_add(t, "AuthMethod", pick);
			if (strcmp(pick, "Reject") == 0) {
				login_fail(ic, 0x0201, "no acceptable AuthMethod");
				return -1;
			}
			ic->chap_state = strcmp(pick, "CHAP") == 0 ? 1 : 0;
			ic->auth_method_done = 1;
			if (ic->chap_state)
				*stay = 1;
		} else if (strncmp(k, "CHAP_", 5) == 0) {
			if (strcmp(k, "CHAP_A") == 0)
				chap_a = v;
			else if (strcmp(k, "CHAP_N") == 0)
				chap_n = v;
			else if (strcmp(k, "CHAP_R") == 0)
				chap_r = v;
			else if (strcmp(k, "CHAP_I") == 0)
				chap_i = v;
			else if (strcmp(k, "CHAP_C") == 0)
				chap_c = v;
			else
				tb_add(t, k, "NotUnderstood");
		}
	}
	if (chap_a != NULL) {
		if (ic->chap_state != 1) {
			login_fail(ic, 0x0200, "CHAP_A outside the CHAP exchange");
			return -1;
		}
		int alg = 0; /* the first of the initiator's that cask does */
		char list[256];
		snprintf(list, sizeof(list), "%s", chap_a);
		for (char *sv, *m = strtok_r(list, ",", &sv); m && !alg; m = strtok_r(NULL, ",", &sv)) {
			uint64_t a;
			if (parse_num(m, 5, 8, &a) == 0 && chap_md((int)a) != NULL)
				alg = (int)a;
		}
		if (!alg) {
			tb_add(t, "CHAP_A", "Reject");
			login_fail(ic, 0x0201, "no CHAP algorithm in common (cask: 5 MD5, 6 SHA-1, 7 SHA-256, 8 SHA3-256)");
			return -1;
		}
		ic->chap_alg = alg;
		ic->chap_len = (unsigned)EVP_MD_size(chap_md(alg));
		uint8_t idb;
		if (getrandom(&idb, 1, 0) != 1 || getrandom(ic->chap_chal, ic->chap_len, 0) != (ssize_t)ic->chap_len) {
			login_fail(ic, 0x0300, "no random bytes");
			return -1;
		}
		ic->chap_id = idb;
		char hx[72];
		hexenc(ic->chap_chal, ic->chap_len, hx);
		tb_addu(t, "CHAP_A", (unsigned)alg);
		tb_addu(t, "CHAP_I", idb);
		tb_add(t, "CHAP_C", hx);
		ic->chap_state = 2;
		*stay = 1;
	} else if (chap_n != NULL || chap_r != NULL) {
		if (ic->chap_state != 2 || chap_n == NULL || chap_r == NULL) {
			login_fail(ic, 0x0201, "CHAP response out of order");
			return -1;
		}
		if (!ic->tc.secret[0] || strcmp(chap_n, ic->tc.user) != 0) {
			login_fail(ic, 0x0201, "unknown CHAP user or no secret configured");
			return -1;
		}
		uint8_t resp[32], want[32];
		size_t rl;
		if (bindec(chap_r, resp, sizeof(resp), &rl) != 0 || rl != ic->chap_len) {
			login_fail(ic, 0x0201, "malformed CHAP_R");
			return -1;
		}
		chap_hash(ic->chap_alg, ic->chap_id, ic->tc.secret, ic->chap_chal, ic->chap_len, want);
		if (CRYPTO_memcmp(resp, want, ic->chap_len) != 0) {
			login_fail(ic, 0x0201, "CHAP response does not match");
			return -1;
		}
		if (chap_i != NULL || chap_c != NULL) {
			uint64_t id2;
			uint8_t c2[1024];
			size_t c2l;
			if (chap_i == NULL || chap_c == NULL || parse_num(chap_i, 0, 255, &id2) != 0 ||
			    bindec(chap_c, c2, sizeof(c2), &c2l) != 0 || c2l == 0) {
				login_fail(ic, 0x0201, "malformed mutual CHAP challenge");
				return -1;
			}
			if (c2l == ic->chap_len && memcmp(c2, ic->chap_chal, c2l) == 0) {
				login_fail(ic, 0x0201, "reflected CHAP challenge");
				return -1;
			}
			if (!ic->tc.msecret[0]) {
				login_fail(ic, 0x0201, "mutual CHAP asked, no target secret configured");
				return -1;
			}
			uint8_t r2[32];
			chap_hash(ic->chap_alg, (uint8_t)id2, ic->tc.msecret, c2, c2l, r2);
			char hx[72];
			hexenc(r2, ic->chap_len, hx);
			tb_add(t, "CHAP_N", ic->tc.muser[0] ? ic->tc.muser : ic->target);
			tb_add(t, "CHAP_R", hx);
		} else if (ic->auth == AUTH_MUTUAL) {
			login_fail(ic, 0x0201, "the target requires mutual CHAP");
			return -1;
		}
		ic->chap_state = 3;
	}
	return 0;
}

static const char *
digest_pick(const char *list, int policy)
{
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", list);
	for (char *sv, *m = strtok_r(buf, ",", &sv); m; m = strtok_r(NULL, ",", &sv)) {
		if (strcmp(m, "CRC32C") == 0 && policy != 2)
			return "CRC32C";
		if (strcmp(m, "None") == 0 && policy != 1)
			return "None";
	}
	return "Reject";
}

static const char *
yesno(int v)
{
	return v ? "Yes" : "No";
}

/* operational keys, and the declarative ones of any stage */
static int
login_keys(iconn *ic, kv *kvs, int n, tbuf *t)
{
	for (int i = 0; i < n; i++) {
		const char *k = kvs[i].k, *v = kvs[i].v;
		uint64_t x;
		if (strcmp(k, "InitiatorName") == 0 || strcmp(k, "TargetName") == 0 || strcmp(k, "SessionType") == 0 ||
		    strcmp(k, "InitiatorAlias") == 0 || strcmp(k, "AuthMethod") == 0 || strncmp(k, "CHAP_", 5) == 0)
			continue;
		if (strcmp(k, "HeaderDigest") == 0 || strcmp(k, "DataDigest") == 0) {
			int h = k[0] == 'H';
			int pol = h ? hd_policy : dd_policy;
			if (ic->discovery && pol == 1)
				pol = 0; /* "require" is for sessions that carry data: discovery may go without */
			const char *p = digest_pick(v, pol);
			tb_add(t, k, p);
			if (strcmp(p, "Reject") == 0) {
				login_fail(ic, 0x0200, "no acceptable digest");
				return -1;
			}
			*(h ? &ic->want_hd : &ic->want_dd) = strcmp(p, "CRC32C") == 0;
		} else if (strcmp(k, "MaxConnections") == 0) {
			if (parse_num(v, 1, 65535, &x) != 0)
				goto bad;
			tb_add(t, k, "1");
		} else if (strcmp(k, "InitialR2T") == 0 || strcmp(k, "ImmediateData") == 0 ||
		    strcmp(k, "DataPDUInOrder") == 0 || strcmp(k, "DataSequenceInOrder") == 0 ||
		    strcmp(k, "IFMarker") == 0 || strcmp(k, "OFMarker") == 0) {
			int yes = strcmp(v, "Yes") == 0;
			if (!yes && strcmp(v, "No") != 0)
				goto bad;
			if (strcmp(k, "InitialR2T") == 0) {
				ic->initial_r2t = yes; /* OR with our No */
				tb_add(t, k, yesno(yes));
			} else if (strcmp(k, "ImmediateData") == 0) {
				ic->immediate_data = yes; /* AND with our Yes */
				tb_add(t, k, yesno(yes));
			} else if (k[0] == 'D') {
				tb_add(t, k, "Yes"); /* OR with our Yes */
			} else {
				tb_add(t, k, "No");
			}
		} else if (strcmp(k, "MaxRecvDataSegmentLength") == 0) {
			if (parse_num(v, 512, (1u << 24) - 1, &x) != 0)
				goto bad;
			ic->peer_mrdsl = (uint32_t)x;
			tb_addu(t, k, MY_MAX_RECV);
		} else if (strcmp(k, "MaxBurstLength") == 0) {
			if (parse_num(v, 512, (1u << 24) - 1, &x) != 0)
				goto bad;
			ic->max_burst = (uint32_t)MIN(x, (uint64_t)MY_MAX_BURST);
			tb_addu(t, k, ic->max_burst);
		} else if (strcmp(k, "FirstBurstLength") == 0) {
			if (parse_num(v, 512, (1u << 24) - 1, &x) != 0)
				goto bad;
			ic->first_burst = (uint32_t)MIN(x, (uint64_t)MY_FIRST_BURST);
			tb_addu(t, k, ic->first_burst);
		} else if (strcmp(k, "DefaultTime2Wait") == 0) {
			if (parse_num(v, 0, 3600, &x) != 0)
				goto bad;
			tb_addu(t, k, x);
		} else if (strcmp(k, "DefaultTime2Retain") == 0) {
			if (parse_num(v, 0, 3600, &x) != 0)
				goto bad;
			tb_add(t, k, "0");
		} else if (strcmp(k, "MaxOutstandingR2T") == 0) {
			if (parse_num(v, 1, 65535, &x) != 0)
				goto bad;
			tb_add(t, k, "1");
		} else if (strcmp(k, "ErrorRecoveryLevel") == 0) {
			if (parse_num(v, 0, 2, &x) != 0)
				goto bad;
			tb_add(t, k, "0");
		} else if (strcmp(k, "iSCSIProtocolLevel") == 0) {
			if (parse_num(v, 0, 31, &x) != 0)
				goto bad;
			tb_addu(t, k, MIN(x, (uint64_t)1));
		} else if (strcmp(k, "TaskReporting") == 0) {
			tb_add(t, k, "RFC3720");
		} else if (strcmp(k, "IFMarkInt") == 0 || strcmp(k, "OFMarkInt") == 0 || strcmp(k, "SendTargets") == 0 ||
		    strcmp(k, "TargetAlias") == 0 || strcmp(k, "TargetAddress") == 0 ||
		    strcmp(k, "TargetPortalGroupTag") == 0) {
			tb_add(t, k, "Irrelevant");
		} else {
			tb_add(t, k, "NotUnderstood");
		}
		continue;
	bad:
		login_fail(ic, 0x0200, "a key value out of range");
		return -1;
	}
	return 0;
}

static void
session_end(iconn *ic)
{
	if (ic->sess != NULL) {
		pthread_mutex_lock(&sess_lock);
		for (isession **pp = &sessions; *pp && !ic->sess->unlinked; pp = &(*pp)->next)
			if (*pp == ic->sess) {
				*pp = ic->sess->next;
				break;
			}
		pthread_mutex_unlock(&sess_lock);
		free(ic->sess);
		ic->sess = NULL;
	}
}

static void login_finish(iconn *ic, int go, int csg, int nsg, tbuf *t);

/* From the old session's loop (on_close): it ended; tell the reinstating login's loop. */
static void
reinstated(void *arg)
{
	iconn *ic = arg; /* alive: it holds a conn_budget request until the kind-4 message */
	imsg *m = xcalloc(1, sizeof(*m));
	m->kind = 4;
	conn_post(ic->c, &m->m);
}

/* the final step of a normal login: open the LU, register the session (reinstating an old one);
 * 1 when the final response waits for the old session (login_finish from the kind-4 message) */
static int
login_attach(iconn *ic)
{
	int err;
	char tport[300];
	/* the connection now serves this volume: the handshake timeout stops, client.list and
	 * --force see it, and --max-export-connections counts it */
	if (conn_set_export(ic->c, ic->export_name) != 0) {
		login_fail(ic, 0x0302, "the volume has --max-export-connections connections");
		return -1;
	}
	snprintf(tport, sizeof(tport), "%s,t,0x0001", ic->target);
	ic->lu = scsi_lu_get(ic->export_name, tport, ic->tc.blocksize, &err);
	if (ic->lu == NULL) {
		login_fail(ic, 0x0300, "the volume did not open");
		return -1;
	}
	char port[320];
	snprintf(port, sizeof(port), "%s,i,0x%02x%02x%02x%02x%02x%02x", ic->initiator, ic->isid[0], ic->isid[1],
	    ic->isid[2], ic->isid[3], ic->isid[4], ic->isid[5]);
	ic->nx = scsi_nexus_get(ic->lu, port);
	isession *s = xcalloc(1, sizeof(*s));
	s->ic = ic;
	snprintf(s->initiator, sizeof(s->initiator), "%s", ic->initiator);
	memcpy(s->isid, ic->isid, 6);
	snprintf(s->target, sizeof(s->target), "%s", ic->target);
	snprintf(s->export_name, sizeof(s->export_name), "%s", ic->export_name);
	snprintf(s->peer, sizeof(s->peer), "%s", conn_peer(ic->c));
	if (conn_local_addr(ic->c, s->local, sizeof(s->local)) != 0)
		s->local[0] = '\0';
	s->since = (int64_t)time(NULL);
	pthread_mutex_lock(&sess_lock);
	/* reinstatement: a live session of the same initiator port to the same target is ended, and
	 * this login's final response waits until its tasks are gone (kind-4 message, reinstated) */
	preempt_wait *pw = NULL;
	for (isession **pp = &sessions; *pp;) {
		isession *o = *pp;
		if (strcasecmp(o->initiator, s->initiator) == 0 && memcmp(o->isid, s->isid, 6) == 0 &&
		    strcasecmp(o->target, s->target) == 0) {
			*pp = o->next;
			o->unlinked = 1; /* its connection frees it; while it was listed, that connection lived */
			if (pw == NULL) {
				pw = xcalloc(1, sizeof(*pw));
				pw->pending = 1;
				pw->done = reinstated;
				pw->arg = ic;
			}
			pw->pending++;
			imsg *km = xcalloc(1, sizeof(*km));
			km->kind = 1;
			km->pw = pw;
			conn_post(o->ic->c, &km->m);
			log_info("iscsi %s: session of %s reinstated", conn_peer(ic->c), s->initiator);
			continue;
		}
		pp = &o->next;
	}
	for (int tries = 0; tries < 65536; tries++) {
		uint16_t t = next_tsih++;
		if (t == 0)
			continue;
		int used = 0;
		for (isession *o = sessions; o; o = o->next)
			used |= o->tsih == t;
		if (!used) {
			s->tsih = t;
			break;
		}
	}
	s->next = sessions;
	sessions = s;
	pthread_mutex_unlock(&sess_lock);
	ic->sess = s;
	ic->tsih = s->tsih;
	if (pw != NULL) {
		ic->held = 1;
		conn_budget(ic->c, 1, 0); /* the connection lives until reinstated() has been delivered */
		preempt_release(pw);
		return 1;
	}
	return 0;
}

/* One complete Login Request (its text accumulated over C PDUs). */
static void
login_pdu(iconn *ic, const uint8_t *b, char *data, uint32_t len)
{
	int transit = (b[1] & 0x80) != 0, cont = (b[1] & 0x40) != 0;
	int csg = (b[1] >> 2) & 3, nsg = b[1] & 3;
	if (b[3] > 0) {
		login_fail(ic, 0x0205, "unsupported version");
		return;
	}
	if (ic->login_itt == RSV) {
		memcpy(ic->isid, b + 8, 6);
		ic->tsih = g16(b + 14);
		ic->login_itt = g32(b + 16);
		ic->cid = g16(b + 20);
		ic->exp_cmd_sn = g32(b + 24);
		if (ic->tsih != 0) {
			login_fail(ic, 0x020a, "TSIH names no session (MC/S is not supported)");
			return;
		}
	} else if (memcmp(ic->isid, b + 8, 6) != 0 || g32(b + 16) != ic->login_itt) {
		login_fail(ic, 0x020b, "ISID or ITT changed during login");
		return;
	}
	if (csg == 2 || (transit && (nsg == 2 || nsg < csg)) || csg < ic->csg) {
		login_fail(ic, 0x020b, "bad stage transition");
		return;
	}
	ic->csg = csg;
	/* accumulate text over C PDUs */
	if (ic->ltext_len + len > LOGIN_TEXT_MAX) {
		login_fail(ic, 0x0200, "login text too long");
		return;
	}
	ic->ltext = xrealloc(ic->ltext, ic->ltext_len + len + 1);
	memcpy(ic->ltext + ic->ltext_len, data, len);
	ic->ltext_len += len;
	if (cont) {
		login_respond(ic, 0, csg, 0, 0, 0, NULL);
		return;
	}
	kv kvs[64];
	int n;
	char *text = ic->ltext;
	uint32_t tl = ic->ltext_len;
	ic->ltext = NULL;
	ic->ltext_len = 0;
	if (kv_parse(text, tl, kvs, 64, &n) != 0) {
		free(text);
		login_fail(ic, 0x0200, "malformed key text");
		return;
	}
	tbuf t = { 0 };
	/* the first PDU's declarations */
	int first = ic->initiator[0] == '\0';
	for (int i = 0; i < n; i++) {
		if (strcmp(kvs[i].k, "InitiatorName") == 0)
			snprintf(ic->initiator, sizeof(ic->initiator), "%.223s", kvs[i].v);
		else if (strcmp(kvs[i].k, "TargetName") == 0)
			snprintf(ic->target, sizeof(ic->target), "%.255s", kvs[i].v);
		else if (strcmp(kvs[i].k, "SessionType") == 0) {
			if (strcmp(kvs[i].v, "Discovery") == 0)
				ic->discovery = 1;
			else if (strcmp(kvs[i].v, "Normal") != 0) {
				free(text);
				login_fail(ic, 0x0209, "unknown SessionType");
				return;
			}
		}
	}
	int stay = 0;
	if (first) {
		if (!ic->initiator[0]) {
			free(text);
			login_fail(ic, 0x0207, "no InitiatorName");
			return;
		}
		if (!ic->discovery) {
			if (!ic->target[0]) {
				free(text);
				login_fail(ic, 0x0207, "no TargetName");
				return;
			}
			int e = target_lookup(ic->target, ic->export_name, sizeof(ic->export_name));
			if (e != 0) {
				free(text);
				login_fail(ic, 0x0203, e == -EEXIST ? "target name conflict" : "no such target");
				return;
			}
			tconf_load(ic->export_name, &ic->tc);
			ic->auth = ic->tc.auth;
			snprintf(ic->alias, sizeof(ic->alias), "%s", ic->export_name);
			tb_add(&t, "TargetAlias", ic->alias);
			tb_add(&t, "TargetPortalGroupTag", "1");
		} else {
			tconf_load("", &ic->tc); /* the daemon-wide entry: its secrets and discovery_auth */
			ic->auth = ic->tc.disc_auth;
		}
	}
	if (csg == 0) {
		if (login_security(ic, kvs, n, &t, &stay) != 0)
			goto out;
	} else {
		if (ic->auth != AUTH_NONE && ic->chap_state != 3) {
			login_fail(ic, 0x0201, "authentication required");
			goto out;
		}
		for (int i = 0; i < n; i++)
			if (strcmp(kvs[i].k, "AuthMethod") == 0 || strncmp(kvs[i].k, "CHAP_", 5) == 0) {
				login_fail(ic, 0x0200, "security key in the operational stage");
				goto out;
			}
	}
	if (login_keys(ic, kvs, n, &t) != 0)
		goto out;
	if (csg == 0 && transit && !stay) {
		if (ic->auth != AUTH_NONE && ic->chap_state != 3) {
			login_fail(ic, 0x0201, "authentication required");
			goto out;
		}
		if (ic->chap_state == 1 || ic->chap_state == 2)
			stay = 1;
	}
	if (transit && !stay && (nsg == 3) && !ic->discovery) {
		if (!acl_allows(&ic->tc, ic->initiator)) {
			login_fail(ic, 0x0202, "the target's ACL excludes this initiator");
			goto out;
		}
		int a = login_attach(ic);
		if (a < 0)
			goto out;
		if (a > 0) { /* held: the old session drains first */
			ic->held_text = t;
			ic->held_csg = csg;
			t.p = NULL;
			goto out;
		}
	}
	if (transit && !stay && nsg == 3 && ic->discovery) {
		pthread_mutex_lock(&sess_lock);
		if (next_tsih == 0)
			next_tsih = 1;
		ic->tsih = next_tsih++;
		pthread_mutex_unlock(&sess_lock);
	}
	login_finish(ic, transit && !stay, csg, nsg, &t);
out:
	free(t.p);
	free(text);
}

/* The login's last response; with go and nsg 3, the full feature phase begins. */
static void
login_finish(iconn *ic, int go, int csg, int nsg, tbuf *t)
{
	login_respond(ic, go, csg, nsg, 0, 0, t);
	if (go && nsg == 3) {
		ic->phase = PH_FFP;
		ic->hd = ic->want_hd;
		ic->dd = ic->want_dd;
		if (ic->sess != NULL) {
			pthread_mutex_lock(&sess_lock);
			ic->sess->hd = ic->hd;
			ic->sess->dd = ic->dd;
			ic->sess->chap_alg = ic->chap_state == 3 ? ic->chap_alg : 0;
			ic->sess->ffp = 1;
			pthread_mutex_unlock(&sess_lock);
		}
		explicit_bzero(ic->tc.secret, sizeof(ic->tc.secret));
		explicit_bzero(ic->tc.msecret, sizeof(ic->tc.msecret));
		static const char *const alg_names[] = { "", "", "", "", "", "MD5", "SHA-1", "SHA-256", "SHA3-256" };
		log_info("iscsi %s: %s session of %s%s%s (ISID %02x%02x%02x%02x%02x%02x, TSIH %u)%s%s%s%s", conn_peer(ic->c),
		    ic->discovery ? "discovery" : "normal", ic->initiator, ic->discovery ? "" : " to ",
		    ic->discovery ? "" : ic->target, ic->isid[0], ic->isid[1], ic->isid[2], ic->isid[3], ic->isid[4],
		    ic->isid[5], ic->tsih, ic->hd ? ", header digest" : "", ic->dd ? ", data digest" : "",
		    ic->chap_state == 3 ? ", CHAP " : "", ic->chap_state == 3 ? alg_names[ic->chap_alg] : "");
	} else if (go) {
		ic->csg = nsg;
	}
}

/* ---- Text: SendTargets ---- */

static void
text_pdu(iconn *ic, const uint8_t *b, char *data, uint32_t len)
{
	kv kvs[16];
	int n;
	tbuf t = { 0 };
	if ((b[1] & 0x40) || g32(b + 20) != RSV) {
		send_reject(ic, REJ_INVALID_FIELD, b); /* continuation of requests: not supported */
		return;
	}
	if (kv_parse(data, len, kvs, 16, &n) != 0) {
		send_reject(ic, REJ_INVALID_FIELD, b);
		return;
	}
	for (int i = 0; i < n; i++) {
		if (strcmp(kvs[i].k, "SendTargets") == 0) {
			char addr[128];
			if (conn_local_addr(ic->c, addr, sizeof(addr)) != 0)
				snprintf(addr, sizeof(addr), "127.0.0.1:3260");
			char ta[160];
			snprintf(ta, sizeof(ta), "%s,1", addr);
			const char *want = kvs[i].v;
			char **names;
			size_t cnt;
			reg_exports(&names, &cnt);
			for (size_t j = 0; j < cnt; j++) {
				char tn[256];
				int ok = target_name_of(names[j], tn, sizeof(tn)) == 0;
				/* a name two exports map to is not served: not listed */
				for (size_t m = 0; ok && m < cnt; m++) {
					char o[256];
					ok = m == j || target_name_of(names[m], o, sizeof(o)) != 0 || strcasecmp(o, tn) != 0;
				}
				if (ok && ic->discovery && strcmp(want, "All") != 0 && strcasecmp(want, tn) != 0)
					ok = 0;
				if (ok && !ic->discovery && strcasecmp(ic->target, tn) != 0)
					ok = 0; /* a normal session learns only its own target */
				if (ok && !ic->discovery && want[0] && strcmp(want, "All") != 0 && strcasecmp(want, tn) != 0)
					ok = 0;
				if (ok) {
					tconf tc;
					tconf_load(names[j], &tc);
					ok = acl_allows(&tc, ic->initiator);
					explicit_bzero(&tc, sizeof(tc));
				}
				if (ok) {
					tb_add(&t, "TargetName", tn);
					tb_add(&t, "TargetAddress", ta);
				}
			}
			for (size_t j = 0; j < cnt; j++)
				free(names[j]); /* after the loop: the conflict check reads every name */
			free(names);
		} else if (strcmp(kvs[i].k, "MaxRecvDataSegmentLength") == 0) {
			uint64_t x;
			if (parse_num(kvs[i].v, 512, (1u << 24) - 1, &x) == 0)
				ic->peer_mrdsl = (uint32_t)x;
			tb_addu(&t, kvs[i].k, MY_MAX_RECV);
		} else {
			tb_add(&t, kvs[i].k, "NotUnderstood");
		}
	}
	uint8_t r[48] = { 0 };
	r[0] = OP_TEXT_RSP;
	r[1] = 0x80;
	p32(r + 16, g32(b + 16));
	p32(r + 20, RSV);
	put_sns(ic, r, 1);
	if (t.len > ic->peer_mrdsl) {
		/* longer than the initiator takes in one PDU: response continuation is not built */
		free(t.p);
		send_reject(ic, REJ_INVALID_FIELD, b);
		return;
	}
	send_pdu(ic, r, t.p, (uint32_t)t.len);
	free(t.p);
}

/* ---- SCSI tasks ---- */

static void
task_unlink(iconn *ic, itask *t)
{
	if (ic->sess != NULL && (t->prev != NULL || ic->tasks == t))
		ic->sess->inflight--;
	if (t->prev)
		t->prev->next = t->next;
	else if (ic->tasks == t)
		ic->tasks = t->next;
	if (t->next)
		t->next->prev = t->prev;
	t->next = t->prev = NULL;
}

static void
task_unsolicit(iconn *ic, itask *t)
{
	if (t->soliciting) {
		t->soliciting = 0;
		if (ic != NULL)
			ic->solicit_bytes -= t->need;
	}
}

static void
task_unref(itask *t)
{
	if (--t->refs > 0)
		return;
	iconn *ic = t->ic;
	task_unsolicit(ic, t);
	if (!t->immediate && ic != NULL)
		ic->live--;
	if (t->immediate && ic != NULL)
		ic->nimm--;
	scsi_cmd_fini(&t->sc);
	free(t->buf);
	free(t);
}

static void
task_release_chunk(void *arg)
{
	task_unref(arg);
}

static void send_tmf_rsp(iconn *ic, itmf *m);
static void maybe_logout(iconn *ic);

static void
task_send_status(iconn *ic, itask *t)
{
	scsi_cmd *sc = &t->sc;
	uint32_t din = sc->din_len;
	int good = sc->status == SCSI_GOOD && sc->sense_len == 0;
	uint32_t datasn = 0;
	uint8_t resid_flags = (uint8_t)((sc->resid_over ? 0x04 : 0) | (sc->resid_under ? 0x02 : 0));
	if (din > 0 && !t->rbit) {
		/* Data-In for a command the initiator did not flag as a read: not sent */
		sc->resid_over = 0;
		sc->resid_under = 1;
		sc->resid = t->edtl;
		resid_flags = 0x02;
		din = 0;
	}
	if (din > 0 && sc->din != NULL && sc->status == SCSI_GOOD) {
		uint32_t seg = MIN(ic->peer_mrdsl, (uint32_t)(256u << 10));
		for (uint32_t off = 0; off < din; off += seg) {
			uint32_t l = MIN(seg, din - off);
			int last = off + l == din;
			uint8_t b[48] = { 0 };
			b[0] = OP_DATA_IN;
			b[1] = last ? 0x80 : 0;
			if (last && good) {
				b[1] |= 0x01 | resid_flags;
				b[3] = sc->status;
				put_sns(ic, b, 1);
				p32(b + 44, sc->resid);
			} else {
				p32(b + 28, ic->exp_cmd_sn);
				p32(b + 32, max_cmd_sn(ic));
			}
			memcpy(b + 8, t->lun, 8);
			p32(b + 16, t->itt);
			p32(b + 20, RSV);
			p32(b + 36, datasn++);
			p32(b + 40, off);
			/* header (and its digest), then the data by reference into the task's buffer */
			p24(b + 5, l);
			uint8_t h[52];
			memcpy(h, b, 48);
			size_t hl = 48;
			if (ic->hd) {
				uint32_t d = crc32c(0, h, 48);
				memcpy(h + 48, &d, 4);
				hl = 52;
			}
			conn_write(ic->c, h, hl);
			t->refs++;
			conn_write_ref(ic->c, sc->din + off, l, task_release_chunk, t);
			uint8_t tail[8] = { 0 };
			uint32_t pad = (4 - (l & 3)) & 3;
			size_t tl = pad;
			if (ic->dd) {
				uint32_t d = crc32c(0, sc->din + off, l);
				d = crc32c(d, tail, pad);
				memcpy(tail + pad, &d, 4);
				tl += 4;
			}
			if (tl)
				conn_write(ic->c, tail, tl);
		}
		if (good)
			return;
	}
	uint8_t b[48] = { 0 };
	b[0] = OP_SCSI_RSP;
	b[1] = 0x80 | resid_flags;
	b[2] = 0x00;
	b[3] = sc->status;
	p32(b + 16, t->itt);
	put_sns(ic, b, 1);
	p32(b + 36, datasn);
	p32(b + 44, sc->resid);
	uint8_t sd[2 + SCSI_SENSE_MAX];
	uint32_t sl = 0;
	if (sc->sense_len) {
		p16(sd, (uint16_t)sc->sense_len);
		memcpy(sd + 2, sc->sense, sc->sense_len);
		sl = 2 + sc->sense_len;
	}
	send_pdu(ic, b, sd, sl);
}

/* A task's answer is known: send it (unless aborted) and let it go. */
static void
task_finish(iconn *ic, itask *t)
{
	task_unlink(ic, t);
	if (!t->aborted && !t->detached && ic->phase == PH_FFP)
		task_send_status(ic, t);
	itmf *m = t->tmf;
	task_unref(t);
	if (m != NULL && --m->waiting == 0)
		send_tmf_rsp(ic, m);
	maybe_logout(ic);
}

static void
task_core_done(scsi_cmd *sc)
{
	itask *t = (itask *)sc;
	conn_post(t->ic->c, &t->msg.m);
}

/* Whether a task of this session has been in the SCSI core for stall_ms or longer (invariant 8). */
static int
stalled(iconn *ic, uint64_t now)
{
	if (stall_ms == 0 || ic->running == 0)
		return 0;
	if (ic->ndetached > 0)
		return 1; /* answered because it stalled, and still not done */
	uint64_t bound = (uint64_t)stall_ms * 1000000u;
	for (itask *t = ic->tasks; t; t = t->next)
		if (t->running && now - t->run_ns >= bound)
			return 1;
	return 0;
}

/* The status for a command refused for want of resources (SAM-5 5.3): TASK SET FULL when the
 * I_T nexus has another task in the task set, BUSY when it has none. */
static uint8_t
full_status(iconn *ic, const itask *t)
{
	for (itask *x = ic->tasks; x; x = x->next)
		if (x != t)
			return SCSI_TASK_SET_FULL;
	return SCSI_BUSY;
}

static void
stall_log(iconn *ic)
{
	if (ic->stall_said)
		return;
	log_warn("iscsi %s: a command has been in the volume IO stack for %d ms or more; stalled commands are "
	    "answered BUSY or TASK SET FULL where that is safe, and new ones until the stall ends", conn_peer(ic->c),
	    stall_ms);
	ic->stall_said = 1;
}

/* A status-only SCSI Response for a detached task (its scsi_cmd still belongs to the core). */
static void
send_status_only(iconn *ic, const itask *t, uint8_t status)
{
	uint8_t b[48] = { 0 };
	b[0] = OP_SCSI_RSP;
	b[1] = 0x80;
	b[3] = status;
	p32(b + 16, t->itt);
	put_sns(ic, b, 1);
	send_pdu(ic, b, NULL, 0);
}

/* On the loop, from the pinger's tick: answer what the stall bound allows (invariant 8). */
static void
stall_check(iconn *ic)
{
	if (ic->phase != PH_FFP || stall_ms == 0 || ic->running == ic->ndetached)
		return;
	uint64_t now = util_now_ns(), bound = (uint64_t)stall_ms * 1000000u;
	for (itask *t = ic->tasks, *nx; t; t = nx) {
		nx = t->next;
		if (!t->running || now - t->run_ns < bound)
			continue;
		if (t->aborted) {
			scsi_cancel(&t->sc); /* no answer is due; the TMF that aborted it waits for it */
			continue;
		}
		stall_log(ic);
		if (scsi_cmd_no_effect(&t->sc)) {
			/* no effect to overtake anything: answered now, the core's completion dropped. Any
			 * other command (a write, PERSISTENT RESERVE OUT waiting for a PREEMPT AND ABORT's
			 * aborted tasks or its APTPL commit) is waited for: what it did must be answered. */
			uint8_t st = full_status(ic, t);
			send_status_only(ic, t, st);
			task_unlink(ic, t);
			t->detached = 1;
			ic->ndetached++;
			if (ic->sess != NULL)
				ic->sess->detached++;
			scsi_cancel(&t->sc); /* what of it waits in the stack goes at once (buffers, window slot) */
			log_info("iscsi %s: ITT 0x%x (opcode 0x%02x) answered %s after %d ms in the volume IO stack; its "
			    "completion will be dropped", conn_peer(ic->c), t->itt, t->sc.cdb[0],
			    st == SCSI_BUSY ? "BUSY" : "TASK SET FULL", stall_ms);
			continue;
		}
		int n = scsi_cancel(&t->sc); /* asked again each tick: a request between layers is missed */
		if (!t->cancel_said) {
			t->cancel_said = 1;
			log_info("iscsi %s: ITT 0x%x (opcode 0x%02x) stalled for %d ms: %s", conn_peer(ic->c), t->itt,
			    t->sc.cdb[0], stall_ms, n > 0 ? "withdrawn from the volume IO stack, answered BUSY or TASK "
			    "SET FULL" : "nothing of it could be withdrawn yet (it has begun); waiting for it");
		}
	}
}

static void
task_run(iconn *ic, itask *t)
{
	task_unsolicit(ic, t);
	uint64_t now = util_now_ns();
	if (scsi_cmd_medium(&t->sc) && stalled(ic, now)) {
		/* never started, so retryable: the initiator backs off instead of queueing behind the stall */
		stall_log(ic);
		t->sc.status = full_status(ic, t);
		task_finish(ic, t);
		return;
	}
	t->run_ns = now;
	t->sc.dout = t->buf;
	t->running = 1;
	ic->running++;
	t->budget = (int64_t)t->need + t->sc.spdtl;
	conn_budget(ic->c, 1, t->budget);
	scsi_exec(&t->sc);
}

static uint32_t
new_ttt(iconn *ic)
{
	uint32_t v = ic->next_ttt++;
	if (v == RSV)
		v = ic->next_ttt++;
	return v;
}

static void
send_r2t(iconn *ic, itask *t)
{
	uint32_t len = MIN(ic->max_burst, t->need - t->got);
	uint8_t b[48] = { 0 };
	b[0] = OP_R2T;
	b[1] = 0x80;
	memcpy(b + 8, t->lun, 8);
	p32(b + 16, t->itt);
	t->r2t_ttt = new_ttt(ic);
	p32(b + 20, t->r2t_ttt);
	put_sns(ic, b, 0);
	p32(b + 36, t->r2tsn++);
	p32(b + 40, t->got);
	p32(b + 44, len);
	t->r2t_out = 1;
	t->r2t_off = t->got;
	t->r2t_len = len;
	t->next_off = t->got;
	t->datasn = 0;
	send_pdu(ic, b, NULL, 0);
}

/* After any Data-Out progress: wait, solicit more, or run. */
static void
task_advance(iconn *ic, itask *t)
{
	if (t->unsol || t->r2t_out)
		return;
	if (t->aborted) {
		task_finish(ic, t);
		return;
	}
	if (t->data_err) {
		scsi_set_sense(&t->sc, 0x0b, 0x4b, 0x00); /* ABORTED COMMAND, DATA PHASE ERROR */
		task_finish(ic, t);
		return;
	}
	if (t->prep_failed) {
		task_finish(ic, t);
		return;
	}
	if (t->got < t->need) {
		/* bound what a connection's soliciting tasks may make us hold: past SOLICIT_MAX a task
		 * waits for others to finish before its first R2T (one always proceeds) */
		if (!t->soliciting) {
			if (ic->solicit_bytes > 0 && ic->solicit_bytes + t->need > SOLICIT_MAX) {
				t->budget_wait = 1;
				return;
			}
			t->soliciting = 1;
			t->budget_wait = 0;
			ic->solicit_bytes += t->need;
		}
		send_r2t(ic, t);
		return;
	}
	task_run(ic, t);
}

static itask *
task_find(iconn *ic, uint32_t itt)
{
	for (itask *t = ic->tasks; t; t = t->next)
		if (t->itt == itt)
			return t;
	return NULL;
}

/* A SCSI Command's BHS is in: create the task, decide where its immediate data goes. */
static void
scsi_cmd_begin(iconn *ic, const uint8_t *b)
{
	int immediate = (b[0] & 0x40) != 0;
	uint32_t cmdsn = g32(b + 24), itt = g32(b + 16);
	if (ic->discovery) {
		send_reject(ic, REJ_NOT_SUPPORTED, b);
		return;
	}
	if (!immediate) {
		if (cmdsn != ic->exp_cmd_sn) {
			/* out of order or out of the window: dropped silently (RFC 7143 §4.2.2.1) */
			log_debug("iscsi %s: CmdSN %u outside the window (ExpCmdSN %u); dropped", conn_peer(ic->c), cmdsn,
			    ic->exp_cmd_sn);
			return;
		}
		if (ic->logout_pending)
			return;
	}
	if (task_find(ic, itt) != NULL || itt == RSV) {
		if (!immediate)
			ic->exp_cmd_sn++;
		send_reject(ic, REJ_INVALID_FIELD, b);
		return;
	}
	if (!immediate)
		ic->exp_cmd_sn++;
	itask *t = xcalloc(1, sizeof(*t));
	t->ic = ic;
	t->refs = 1;
	t->itt = itt;
	t->cmdsn = cmdsn;
	t->immediate = immediate;
	if (!immediate)
		ic->live++;
	else
		ic->nimm++;
	memcpy(t->lun, b + 8, 8);
	t->edtl = g32(b + 20);
	scsi_cmd *sc = &t->sc;
	sc->nx = ic->nx;
	/* LUN 0 in any addressing method is all-zero; anything else is another LUN */
	uint64_t lun = 0;
	for (int i = 0; i < 8; i++)
		lun = lun << 8 | b[8 + i];
	sc->lun = lun;
	memcpy(sc->cdb, b + 32, 16);
	sc->attr = b[1] & 7;
	sc->edtl = t->edtl;
	int r = (b[1] & 0x40) != 0, w = (b[1] & 0x20) != 0;
	sc->dir = w ? SCSI_DIR_OUT : r ? SCSI_DIR_IN : SCSI_DIR_NONE;
	t->rbit = r;
	sc->done = task_core_done;
	sc->udata = t;
	t->next = ic->tasks;
	if (ic->tasks)
		ic->tasks->prev = t;
	ic->tasks = t;
	if (ic->sess != NULL)
		ic->sess->inflight++;
	if (immediate && ic->nimm > IMM_MAX) {
		/* invariant 9: never started (its data is read and dropped); TASK SET FULL while another of the
		 * session's tasks is in the task set, BUSY if they are all detached (SAM-5 5.3) */
		sc->status = full_status(ic, t);
		t->prep_failed = 1;
	} else if (r && w) {
		scsi_set_sense(sc, 5, 0x0e, 0x03); /* bidirectional commands are not supported */
		t->prep_failed = 1;
	} else if (scsi_prepare(sc) != 0) {
		t->prep_failed = 1;
	} else {
		t->need = (uint32_t)sc->need_out;
		if (t->need > 0)
			t->buf = xmalloc(t->need);
	}
	uint32_t dlen = g24(b + 5);
	/* the unsolicited burst: immediate data plus Data-Out with TTT ffffffff until F=1 */
	t->unsol = w && !(b[1] & 0x80);
	t->unsol_end = MIN(t->edtl, ic->first_burst);
	if (w && !(b[1] & 0x80) && ic->initial_r2t) {
		drop(ic, "unsolicited Data-Out announced with InitialR2T=Yes");
		return;
	}
	if (dlen > 0) {
		if (!w || !ic->immediate_data || dlen > t->unsol_end) {
			drop(ic, "immediate data not allowed here or over FirstBurstLength");
			return;
		}
		ic->rx_task = t;
		ic->dst = t->buf;
		ic->dst_len = MIN(dlen, t->need);
		return;
	}
	if (!t->unsol)
		task_advance(ic, t);
}

/* the command PDU's immediate data is in */
static void
scsi_cmd_data_end(iconn *ic, itask *t, uint32_t dlen)
{
	t->got = MIN(dlen, t->need); /* the rest was dropped (a command that takes less than EDTL) */
	t->next_off = dlen;
	t->datasn = 0;
	if (t->unsol && dlen >= t->unsol_end)
		drop(ic, "unsolicited data beyond FirstBurstLength");
	else
		task_advance(ic, t);
}

/* Data-Out BHS: check it against its task, place its data */
static void
data_out_begin(iconn *ic, const uint8_t *b)
{
	uint32_t itt = g32(b + 16), ttt = g32(b + 20), datasn = g32(b + 36), off = g32(b + 40);
	uint32_t dlen = g24(b + 5);
	itask *t = task_find(ic, itt);
	if (t == NULL || t->running)
		return; /* a task we dropped (out of window) or aborted: its data is read and discarded */
	int unsol = ttt == RSV;
	if (unsol ? !t->unsol : (!t->r2t_out || ttt != t->r2t_ttt)) {
		drop(ic, "Data-Out with a TTT that names no open burst");
		return;
	}
	if (datasn != t->datasn && !t->data_err) {
		/* the framing is sound: read the burst, drop its data, fail the command (not the session) */
		log_info("iscsi %s: Data-Out with DataSN %u, %u expected; the command fails", conn_peer(ic->c), datasn,
		    t->datasn);
		t->data_err = 1;
	}
	if (off != t->next_off) {
		drop(ic, "Data-Out at an unexpected offset");
		return;
	}
	uint64_t end = (uint64_t)off + dlen;
	if (unsol ? end > t->unsol_end : end > (uint64_t)t->r2t_off + t->r2t_len) {
		drop(ic, "Data-Out beyond its burst");
		return;
	}
	t->datasn++;
	t->next_off = (uint32_t)end;
	ic->rx_task = t;
	if (off < t->need && !t->data_err) {
		ic->dst = t->buf + off;
		ic->dst_len = MIN(dlen, t->need - off);
	}
}

static void
data_out_end(iconn *ic, const uint8_t *b, itask *t)
{
	uint32_t ttt = g32(b + 20);
	int fin = (b[1] & 0x80) != 0;
	t->got = MAX(t->got, MIN(t->need, t->next_off));
	if (ttt == RSV) {
		if (fin) {
			t->unsol = 0;
			t->datasn = 0;
		} else if (t->next_off >= t->unsol_end) {
			drop(ic, "unsolicited burst longer than FirstBurstLength");
			return;
		}
	} else {
		uint32_t bend = t->r2t_off + t->r2t_len;
		if (fin != (t->next_off == bend)) {
			drop(ic, "Data-Out F bit does not end its burst");
			return;
		}
		if (fin)
			t->r2t_out = 0;
	}
	task_advance(ic, t);
}

/* Solicit budget was freed: tasks waiting for it go on (oldest first: the list is newest first). */
static void
kick_waiters(iconn *ic)
{
	itask *last = NULL;
	for (itask *x = ic->tasks; x; x = x->next)
		last = x;
	for (itask *x = last, *pv; x && ic->phase == PH_FFP; x = pv) {
		pv = x->prev;
		if (x->budget_wait)
			task_advance(ic, x);
	}
}

/* ---- task management ---- */

static void
send_tmf_rsp(iconn *ic, itmf *m)
{
	if (m->pw != NULL) { /* the tasks a PREEMPT AND ABORT ended are gone */
		preempt_release(m->pw);
		free(m);
		return;
	}
	uint8_t b[48] = { 0 };
	b[0] = OP_TMF_RSP;
	b[1] = 0x80;
	b[2] = m->response;
	p32(b + 16, m->itt);
	put_sns(ic, b, 1);
	send_pdu(ic, b, NULL, 0);
	if (m->cold) {
		ic->phase = PH_DONE;
		conn_close(ic->c);
	}
	free(m);
}

/* abort t: collecting tasks go at once; running ones answer nothing when they complete */
static int
task_abort(iconn *ic, itask *t, itmf *m)
{
	t->aborted = 1;
	if (t->running) {
		t->tmf = m;
		return 1;
	}
	if (t->unsol || t->r2t_out)
		t->unsol = t->r2t_out = 0; /* data still in flight for it is read and dropped (unknown ITT then) */
	task_unlink(ic, t);
	task_unref(t);
	return 0;
}

static void
tmf_pdu(iconn *ic, const uint8_t *b)
{
	int fn = b[1] & 0x7f;
	itmf *m = xcalloc(1, sizeof(*m));
	m->itt = g32(b + 16);
	uint64_t lun = 0;
	for (int i = 0; i < 8; i++)
		lun = lun << 8 | b[8 + i];
	if (!(b[0] & 0x40))
		ic->exp_cmd_sn++;
	if (ic->discovery) {
		m->response = 255;
		return send_tmf_rsp(ic, m);
	}
	switch (fn) {
	case 1: { /* ABORT TASK */
		uint32_t rtt = g32(b + 20), refsn = g32(b + 32);
		itask *t = task_find(ic, rtt);
		if (t == NULL) {
			/* not received yet (RefCmdSN in the window): complete; already answered: no such task */
			m->response = !sn_lt(refsn, ic->exp_cmd_sn) && !sn_lt(max_cmd_sn(ic), refsn) ? 0 : 1;
			break;
		}
		m->waiting += task_abort(ic, t, m);
		break;
	}
	case 2: /* ABORT TASK SET */
	case 4: /* CLEAR TASK SET */
	case 5: /* LOGICAL UNIT RESET */
	case 6: /* TARGET WARM RESET */
	case 7: /* TARGET COLD RESET */
		if (lun != 0 && fn != 6 && fn != 7) {
			m->response = 2;
			break;
		}
		for (itask *t = ic->tasks, *nx; t; t = nx) {
			nx = t->next;
			if (!t->aborted)
				m->waiting += task_abort(ic, t, m);
		}
		if (fn >= 5)
			scsi_lu_reset(ic->lu);
		m->cold = fn == 7;
		break;
	case 8:
		m->response = 4;
		break;
	default:
		m->response = 5;
		break;
	}
	if (m->waiting == 0)
		send_tmf_rsp(ic, m);
	kick_waiters(ic);
	maybe_logout(ic);
}

/* ---- NOP, Logout ---- */

static void
nop_out(iconn *ic, const uint8_t *b, const uint8_t *data, uint32_t len)
{
	uint32_t itt = g32(b + 16);
	if (!(b[0] & 0x40))
		ic->exp_cmd_sn++;
	if (itt == RSV) { /* a ping answer or a no-reply NOP */
		if (ic->ping_ttt != 0 && g32(b + 20) == ic->ping_ttt)
			ic->ping_ttt = 0;
		return;
	}
	uint8_t r[48] = { 0 };
	r[0] = OP_NOP_IN;
	r[1] = 0x80;
	memcpy(r + 8, b + 8, 8);
	p32(r + 16, itt);
	p32(r + 20, RSV);
	put_sns(ic, r, 1);
	send_pdu(ic, r, data, MIN(len, ic->peer_mrdsl));
}

static void
maybe_logout(iconn *ic)
{
	if (!ic->logout_pending || ic->running > 0)
		return;
	ic->logout_pending = 0;
	uint8_t r[48] = { 0 };
	r[0] = OP_LOGOUT_RSP;
	r[1] = 0x80;
	r[2] = 0;
	p32(r + 16, ic->logout_itt);
	put_sns(ic, r, 1);
	send_pdu(ic, r, NULL, 0);
	ic->phase = PH_DONE;
	conn_close(ic->c);
}

static void
logout_pdu(iconn *ic, const uint8_t *b)
{
	int reason = b[1] & 0x7f;
	if (!(b[0] & 0x40))
		ic->exp_cmd_sn++;
	if (reason == 2) {
		uint8_t r[48] = { 0 };
		r[0] = OP_LOGOUT_RSP;
		r[1] = 0x80;
		r[2] = 2; /* connection recovery is not supported */
		p32(r + 16, g32(b + 16));
		put_sns(ic, r, 1);
		send_pdu(ic, r, NULL, 0);
		return;
	}
	ic->logout_pending = 1;
	ic->logout_itt = g32(b + 16);
	/* collecting tasks will not get their data any more: drop them */
	for (itask *t = ic->tasks, *nx; t; t = nx) {
		nx = t->next;
		if (!t->running) {
			t->aborted = 1;
			task_unlink(ic, t);
			task_unref(t);
		}
	}
	maybe_logout(ic);
}

/* ---- the receive machine ---- */

/* BHS+AHS+digest are in: validate and choose the data destination. 0 ok, -1 dropped the connection. */
static int
pdu_begin(iconn *ic)
{
	const uint8_t *b = ic->hdr;
	int op = b[0] & 0x3f;
	uint32_t dlen = g24(b + 5);
	ic->dlen = dlen;
	ic->dtotal = dlen + ((4 - (dlen & 3)) & 3) + (dlen && ic->dd ? 4 : 0);
	ic->dpos = 0;
	ic->dst = NULL;
	ic->dst_len = 0;
	ic->dcrc = 0;
	ic->rx_task = NULL;
	if (dlen > MY_MAX_RECV) {
		drop(ic, "data segment longer than our MaxRecvDataSegmentLength");
		return -1;
	}
	if (ic->phase == PH_LOGIN) {
		if (op != OP_LOGIN) {
			drop(ic, "a PDU other than Login during login");
			return -1;
		}
	} else if (b[4] != 0 && op != OP_SCSI_CMD) {
		drop(ic, "AHS on a PDU that takes none");
		return -1;
	}
	if (op == OP_SCSI_CMD && ic->phase == PH_FFP) {
		scsi_cmd_begin(ic, b);
		return ic->phase == PH_DONE ? -1 : 0;
	}
	if (op == OP_DATA_OUT && ic->phase == PH_FFP) {
		data_out_begin(ic, b);
		return ic->phase == PH_DONE ? -1 : 0;
	}
	/* control PDUs: staged whole (the buffer grows to the largest seen, at most MY_MAX_RECV) */
	if (ic->stage == NULL || ic->stage_cap < dlen + 1) {
		ic->stage_cap = MAX(dlen + 1, 1024u);
		free(ic->stage);
		ic->stage = xmalloc(ic->stage_cap);
	}
	ic->dst = ic->stage;
	ic->dst_len = dlen;
	return 0;
}

static void
pdu_end(iconn *ic)
{
	const uint8_t *b = ic->hdr;
	int op = b[0] & 0x3f;
	uint32_t dlen = ic->dlen;
	if (ic->phase == PH_LOGIN) {
		ic->stage[dlen] = '\0';
		login_pdu(ic, b, dlen ? (char *)ic->stage : (char *)"", dlen);
		return;
	}
	if (ic->phase != PH_FFP)
		return;
	if (ic->discovery && op != OP_TEXT && op != OP_LOGOUT && op != OP_NOP_OUT) {
		if (op == OP_DATA_OUT)
			return;
		send_reject(ic, op == OP_SCSI_CMD || op == OP_TMF ? REJ_NOT_SUPPORTED : REJ_PROTOCOL, b);
		return;
	}
	switch (op) {
	case OP_SCSI_CMD:
		if (ic->rx_task != NULL)
			scsi_cmd_data_end(ic, ic->rx_task, dlen);
		break;
	case OP_DATA_OUT:
		if (ic->rx_task != NULL)
			data_out_end(ic, b, ic->rx_task);
		break;
	case OP_NOP_OUT:
		nop_out(ic, b, ic->stage, dlen);
		break;
	case OP_TEXT:
		if (!(b[0] & 0x40))
			ic->exp_cmd_sn++;
		ic->stage[dlen] = '\0';
		text_pdu(ic, b, (char *)ic->stage, dlen);
		break;
	case OP_TMF:
		tmf_pdu(ic, b);
		break;
	case OP_LOGOUT:
		logout_pdu(ic, b);
		break;
	case OP_SNACK:
		send_reject(ic, REJ_NOT_SUPPORTED, b); /* ErrorRecoveryLevel 0 */
		break;
	default:
		send_reject(ic, REJ_PROTOCOL, b);
		break;
	}
}

static size_t
on_data(conn *c, const uint8_t *p, size_t n)
{
	iconn *ic = conn_data(c);
	if (ic->phase == PH_DONE)
		return n;
	ic->last_rx_ns = util_now_ns();
	if (ic->rx == RX_HDR) {
		if (n < 48)
			return 0;
		size_t ahs = (size_t)p[4] * 4;
		size_t need = 48 + ahs + (ic->hd ? 4 : 0);
		if (n < need)
			return 0;
		memcpy(ic->hdr, p, need);
		if (ic->hd) {
			uint32_t d = crc32c(0, p, 48 + ahs), got;
			memcpy(&got, p + 48 + ahs, 4);
			if (d != got) {
				drop(ic, "header digest error");
				return n;
			}
		}
		if (pdu_begin(ic) != 0)
			return n;
		if (ic->dtotal == 0) {
			pdu_end(ic);
			return need;
		}
		ic->rx = RX_DATA;
		return need;
	}
	/* RX_DATA */
	size_t k = MIN(n, (size_t)(ic->dtotal - ic->dpos));
	uint32_t padded = ic->dlen + ((4 - (ic->dlen & 3)) & 3);
	for (size_t i = 0; i < k;) {
		uint32_t pos = ic->dpos;
		if (pos < ic->dlen) {
			uint32_t l = (uint32_t)MIN(k - i, (size_t)(ic->dlen - pos));
			if (ic->dd)
				ic->dcrc = crc32c(ic->dcrc, p + i, l);
			if (ic->dst != NULL && pos < ic->dst_len)
				memcpy(ic->dst + pos, p + i, MIN(l, ic->dst_len - pos));
			ic->dpos += l;
			i += l;
		} else if (pos < padded) {
			uint32_t l = (uint32_t)MIN(k - i, (size_t)(padded - pos));
			if (ic->dd)
				ic->dcrc = crc32c(ic->dcrc, p + i, l);
			ic->dpos += l;
			i += l;
		} else {
			uint32_t l = (uint32_t)MIN(k - i, (size_t)(ic->dtotal - pos));
			memcpy(ic->ddig + (pos - padded), p + i, l);
			ic->dpos += l;
			i += l;
		}
	}
	if (ic->dpos == ic->dtotal) {
		ic->rx = RX_HDR;
		if (ic->dd && ic->dlen) {
			uint32_t got;
			memcpy(&got, ic->ddig, 4);
			if (got != ic->dcrc) {
				drop(ic, "data digest error");
				return n;
			}
		}
		pdu_end(ic);
	}
	return k;
}

/* On the loop (a kind-2 message from the pinger): ping an idle session, drop a silent one. */
static void
ping_check(iconn *ic)
{
	if (ic->phase != PH_FFP || nop_ms == 0)
		return;
	uint64_t now = util_now_ns(), period = (uint64_t)nop_ms * 1000000u;
	if (ic->ping_ttt != 0) {
		if (now - ic->ping_ns >= period) {
			log_warn("iscsi %s: no answer to a NOP-In ping in %d ms; dropping the session", conn_peer(ic->c), nop_ms);
			drop(ic, "NOP-In ping unanswered");
		}
		return;
	}
	if (now - ic->last_rx_ns < period)
		return;
	uint32_t ttt = ic->next_ttt++;
	if (ttt == 0 || ttt == RSV)
		ttt = ic->next_ttt++;
	uint8_t r[48] = { 0 };
	r[0] = OP_NOP_IN;
	r[1] = 0x80;
	p32(r + 16, RSV); /* target-initiated: ITT reserved, TTT for the answer */
	p32(r + 20, ttt);
	put_sns(ic, r, 0); /* StatSN not advanced (RFC 7143 11.19.2) */
	send_pdu(ic, r, NULL, 0);
	ic->ping_ttt = ttt;
	ic->ping_ns = now;
}

/* scsi.c's abort hook: post an abort to every session of the preempted nexuses on lu. */
static void
abort_nexuses(scsi_lu *lu, scsi_nexus *const *nx, size_t n, void (*done)(void *arg), void *arg)
{
	preempt_wait *pw = xcalloc(1, sizeof(*pw));
	pw->pending = 1;
	pw->done = done;
	pw->arg = arg;
	pthread_mutex_lock(&sess_lock);
	for (isession *s = sessions; s; s = s->next) {
		int hit = 0;
		for (size_t i = 0; i < n && !hit; i++)
			hit = s->ic->lu == lu && s->ic->nx == nx[i];
		if (!hit)
			continue;
		pw->pending++;
		imsg *m = xcalloc(1, sizeof(*m));
		m->kind = 3;
		m->pw = pw;
		conn_post(s->ic->c, &m->m);
	}
	pthread_mutex_unlock(&sess_lock);
	preempt_release(pw);
}

/* The pinger: every tick, a check for every listed session (invariants 7 and 8). */
static void *
pinger(void *arg)
{
	(void)arg;
	/* the NOP period's half, or a quarter of the stall bound (invariant 8) if that is shorter */
	int ms = nop_ms > 0 ? nop_ms / 2 : stall_ms / 4;
	if (stall_ms > 0 && stall_ms / 4 < ms)
		ms = stall_ms / 4;
	for (;;) {
		struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
		nanosleep(&ts, NULL);
		pthread_mutex_lock(&sess_lock);
		for (isession *s = sessions; s; s = s->next) {
			if (s->ic->ping_queued)
				continue;
			s->ic->ping_queued = 1;
			imsg *m = xcalloc(1, sizeof(*m));
			m->kind = 2;
			conn_post(s->ic->c, &m->m);
		}
		pthread_mutex_unlock(&sess_lock);
	}
	return NULL;
}

static void
on_msg(conn *c, conn_msg *m)
{
	iconn *ic = conn_data(c);
	imsg *im = (imsg *)m;
	if (im->kind == 1) {
		if (ic->drain_pw == NULL)
			ic->drain_pw = im->pw; /* released by on_close: then nothing of this session is left */
		else
			preempt_release(im->pw);
		free(im);
		if (ic->phase != PH_DONE)
			drop(ic, "session reinstated by a new login");
		return;
	}
	if (im->kind == 4) { /* the session this login reinstates is gone */
		free(im);
		ic->held = 0;
		conn_budget(c, -1, 0);
		if (ic->phase == PH_LOGIN) {
			log_info("iscsi %s: the reinstated session drained; login of %s completes", conn_peer(c), ic->initiator);
			login_finish(ic, 1, ic->held_csg, 3, &ic->held_text);
		}
		free(ic->held_text.p);
		ic->held_text.p = NULL;
		return;
	}
	if (im->kind == 5) { /* iscsi.logout: ask the initiator to log out (RFC 7143 11.9.1, AsyncEvent 1) */
		free(im);
		if (ic->phase != PH_FFP)
			return;
		uint8_t r[48] = { 0 };
		r[0] = OP_ASYNC;
		r[1] = 0x80;
		p32(r + 16, RSV);
		put_sns(ic, r, 1);
		r[36] = 1;
		p16(r + 42, LOGOUT_WAIT_S); /* Parameter3: log out within this many seconds */
		send_pdu(ic, r, NULL, 0);
		log_info("iscsi %s: the operator asked %s to log out (TSIH %u)", conn_peer(c), ic->initiator, ic->tsih);
		return;
	}
	if (im->kind == 6) { /* iscsi.logout --force, or the initiator did not log out in time */
		free(im);
		if (ic->phase != PH_DONE)
			drop(ic, "session ended by the operator (cask iscsi logout)");
		return;
	}
	if (im->kind == 2) {
		free(im);
		ic->ping_queued = 0;
		ping_check(ic);
		if (ic->phase == PH_FFP)
			stall_check(ic);
		return;
	}
	if (im->kind == 3) { /* PREEMPT AND ABORT by another nexus: end every task of this session */
		itmf *w = xcalloc(1, sizeof(*w));
		w->pw = im->pw;
		free(im);
		for (itask *t = ic->tasks, *nx; t; t = nx) {
			nx = t->next;
			if (!t->aborted) /* one aborted by a TMF already: that TMF waits for it */
				w->waiting += task_abort(ic, t, w);
		}
		if (w->waiting == 0)
			send_tmf_rsp(ic, w);
		kick_waiters(ic);
		maybe_logout(ic);
		return;
	}
	itask *t = (itask *)((char *)im - offsetof(itask, msg));
	conn_budget(c, -1, -t->budget);
	ic->running--;
	ic->stall_said = 0;
	if (t->detached) {
		ic->ndetached--;
		if (ic->sess != NULL)
			ic->sess->detached--;
	} else if (t->sc.withdrawn)
		t->sc.status = full_status(ic, t); /* invariant 8 */
	task_finish(ic, t);
	kick_waiters(ic);
}

static void
on_open(conn *c)
{
	iconn *ic = xcalloc(1, sizeof(*ic));
	ic->c = c;
	ic->phase = PH_LOGIN;
	ic->login_itt = RSV;
	ic->peer_mrdsl = 8192;
	ic->max_burst = 262144;
	ic->first_burst = 65536;
	ic->initial_r2t = 1;
	ic->immediate_data = 1;
	uint32_t r;
	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		r = 1;
	ic->stat_sn = r;
	ic->next_ttt = 1;
	conn_set_data(c, ic);
	if (conn_refused(c)) {
		log_info("iscsi %s: over the connection limit (%d); closing", conn_peer(c), conn_limit());
		ic->phase = PH_DONE;
		conn_close(c);
	}
}

static void
on_close(conn *c)
{
	iconn *ic = conn_data(c);
	if (ic == NULL)
		return;
	while (ic->tasks) {
		itask *t = ic->tasks;
		task_unlink(ic, t);
		if (t->tmf && --t->tmf->waiting == 0) {
			if (t->tmf->pw != NULL)
				preempt_release(t->tmf->pw);
			free(t->tmf);
		}
		t->ic = NULL;
		task_unref(t);
	}
	session_end(ic);
	if (ic->nx)
		scsi_nexus_lost(ic->nx);
	scsi_lu_put(ic->lu);
	if (ic->drain_pw != NULL)
		preempt_release(ic->drain_pw); /* a reinstating login may complete now */
	free(ic->held_text.p);
	free(ic->ltext);
	free(ic->stage);
	explicit_bzero(&ic->tc, sizeof(ic->tc));
	free(ic);
}

static const conn_proto iscsi_proto = { "iscsi", on_open, on_data, on_msg, on_close };

static void
start_pinger(void)
{
	pthread_t th;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &at, pinger, NULL) != 0)
		log_warn("iscsi: no NOP-In pinger thread; idle sessions are not pinged, stalled commands not answered");
	pthread_attr_destroy(&at);
}

int
iscsi_listen(const char *spec)
{
	char buf[300];
	const char *s = spec;
	/* default port 3260: "ADDR", "[V6]" */
	if (spec[0] == '[') {
		const char *e = strchr(spec, ']');
		if (e != NULL && e[1] == '\0') {
			snprintf(buf, sizeof(buf), "%s:%s", spec, ISCSI_PORT);
			s = buf;
		}
	} else if (strchr(spec, ':') == NULL) {
		snprintf(buf, sizeof(buf), "%s:%s", spec, ISCSI_PORT);
		s = buf;
	}
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	scsi_set_abort_hook(abort_nexuses);
	int err = conn_listen(s, &iscsi_proto);
	if (err == 0 && nportals < PORTALS_MAX)
		snprintf(portals[nportals++], sizeof(portals[0]), "%s", s);
	if (err == 0 && (nop_ms > 0 || stall_ms > 0))
		pthread_once(&once, start_pinger);
	return err;
}

/* ---- the operator's view: iscsi.targets, iscsi.sessions, iscsi.logout (daemon/ctl/iscsi.c) ---- */

typedef struct lun_q {
	const char *vol;     /* "vol" or "vol@snap" */
	uint64_t size;
	int found;
} lun_q;

static int
lun_size_cb(ce_pool *p, void *arg)
{
	lun_q *q = arg;
	const char *at = strchr(q->vol, '@');
	if (at == NULL) {
		ce_vol_info vi;
		if (ce_vol_info_get(p, q->vol, &vi) == 0) {
			q->size = vi.size;
			q->found = 1;
		}
		return 0;
	}
	char vname[256];
	snprintf(vname, sizeof(vname), "%.*s", (int)(at - q->vol), q->vol);
	ce_snap_info *si;
	size_t n;
	if (ce_snap_list(p, vname, &si, &n) == 0) {
		for (size_t i = 0; i < n; i++)
			if (strcmp(si[i].name, q->vol) == 0) {
				q->size = si[i].size;
				q->found = 1;
			}
		free(si);
	}
	return 0;
}

static const char *
auth_name(int a)
{
	return a == AUTH_MUTUAL ? "mutual" : a == AUTH_CHAP ? "chap" : "none";
}

static const char *
chap_alg_name(int alg)
{
	static const char *const names[] = { "", "", "", "", "", "md5", "sha1", "sha256", "sha3-256" };
	return alg >= 5 && alg <= 8 ? names[alg] : "none";
}

int
iscsi_targets_json(const char *pool, json_object *out)
{
	char **names;
	size_t cnt;
	int err = reg_exports(&names, &cnt);
	if (err != 0)
		return err;
	char (*tn)[256] = xcalloc(cnt ? cnt : 1, sizeof(*tn));
	int *ok = xcalloc(cnt ? cnt : 1, sizeof(int));
	for (size_t i = 0; i < cnt; i++)
		ok[i] = target_name_of(names[i], tn[i], sizeof(tn[i])) == 0;
	for (size_t i = 0; i < cnt; i++) {
		size_t pl = strcspn(names[i], "/");
		if (pool != NULL && (strlen(pool) != pl || strncmp(pool, names[i], pl) != 0))
			continue;
		int conflict = 0;
		for (size_t j = 0; j < cnt && ok[i]; j++)
			conflict |= j != i && ok[j] && strcasecmp(tn[i], tn[j]) == 0;
		json_object *o = json_object_new_object();
		json_object_object_add(o, "iqn", ok[i] ? json_object_new_string(tn[i]) : NULL);
		json_object_object_add(o, "volume", json_object_new_string(names[i]));
		json_object_object_add(o, "state", json_object_new_string(!ok[i] ? "no-name" : conflict ? "conflict" : "ok"));
		tconf tc;
		tconf_load(names[i], &tc);
		json_object_object_add(o, "auth", json_object_new_string(auth_name(tc.auth)));
		/* whether secrets exist, never what they are */
		json_object_object_add(o, "chap", json_object_new_boolean(tc.user[0] && tc.secret[0]));
		json_object_object_add(o, "mutual_chap", json_object_new_boolean(tc.muser[0] && tc.msecret[0]));
		json_object *acl = json_object_new_array();
		if (tc.acl_any && tc.nacl == 0)
			json_object_array_add(acl, json_object_new_string("*"));
		for (int k = 0; k < tc.nacl; k++)
			json_object_array_add(acl, json_object_new_string(tc.acl[k]));
		json_object_object_add(o, "acl", acl);
		uint32_t bs = tc.blocksize;
		explicit_bzero(&tc, sizeof(tc));
		json_object *pa = json_object_new_array();
		for (int k = 0; k < nportals; k++) {
			char pt[sizeof(portals[0]) + 4];
			snprintf(pt, sizeof(pt), "%.299s,1", portals[k]);
			json_object_array_add(pa, json_object_new_string(pt));
		}
		json_object_object_add(o, "portals", pa);
		char poolname[128];
		snprintf(poolname, sizeof(poolname), "%.*s", (int)(pl < sizeof(poolname) ? pl : sizeof(poolname) - 1), names[i]);
		lun_q q = { names[i][pl] ? names[i] + pl + 1 : "", 0, 0 };
		reg_with_pool(poolname, lun_size_cb, &q);
		json_object *luns = json_object_new_array(), *l = json_object_new_object();
		json_object_object_add(l, "lun", json_object_new_int(0));
		json_object_object_add(l, "size", json_object_new_uint64(q.size));
		/* an LU already open keeps the block size it opened with (iscsi_blocksize applies at the next open) */
		json_object_object_add(l, "blocksize", json_object_new_int((int)bs));
		json_object_object_add(l, "read_only", json_object_new_boolean(strchr(names[i], '@') != NULL));
		json_object_array_add(luns, l);
		json_object_object_add(o, "luns", luns);
		int ns = 0;
		pthread_mutex_lock(&sess_lock);
		for (isession *s = sessions; s; s = s->next)
			ns += strcmp(s->export_name, names[i]) == 0;
		pthread_mutex_unlock(&sess_lock);
		json_object_object_add(o, "sessions", json_object_new_int(ns));
		json_object_array_add(out, o);
	}
	for (size_t i = 0; i < cnt; i++)
		free(names[i]);
	free(names);
	free(tn);
	free(ok);
	return 0;
}

int
iscsi_sessions_json(const char *filter, json_object *out)
{
	pthread_mutex_lock(&sess_lock);
	for (isession *s = sessions; s; s = s->next) {
		if (filter != NULL && strcasecmp(filter, s->target) != 0 && strcmp(filter, s->export_name) != 0)
			continue;
		json_object *o = json_object_new_object();
		char isid[16];
		hexenc(s->isid, 6, isid);
		json_object_object_add(o, "tsih", json_object_new_int(s->tsih));
		json_object_object_add(o, "initiator", json_object_new_string(s->initiator));
		json_object_object_add(o, "isid", json_object_new_string(isid));
		json_object_object_add(o, "target", json_object_new_string(s->target));
		json_object_object_add(o, "volume", json_object_new_string(s->export_name));
		json_object_object_add(o, "address", json_object_new_string(s->peer));
		json_object_object_add(o, "portal", json_object_new_string(s->local));
		json_object_object_add(o, "state", json_object_new_string(!s->ffp ? "login" :
		    s->logout_asked ? "logout-requested" : "logged-in"));
		json_object_object_add(o, "since", json_object_new_int64(s->since));
		json_object_object_add(o, "header_digest", json_object_new_string(s->hd ? "CRC32C" : "None"));
		json_object_object_add(o, "data_digest", json_object_new_string(s->dd ? "CRC32C" : "None"));
		json_object_object_add(o, "chap", json_object_new_string(chap_alg_name(s->chap_alg)));
		json_object_object_add(o, "commands", json_object_new_int(s->inflight));
		json_object_object_add(o, "detached", json_object_new_int(s->detached));
		json_object_array_add(out, o);
	}
	pthread_mutex_unlock(&sess_lock);
	return 0;
}

/* Whether the session want (its address and TSIH) is still listed. */
static int
session_listed(const isession *want, uint16_t tsih)
{
	int found = 0;
	pthread_mutex_lock(&sess_lock);
	for (isession *s = sessions; s && !found; s = s->next)
		found = s == want && s->tsih == tsih;
	pthread_mutex_unlock(&sess_lock);
	return found;
}

/* Post kind to the session with TSIH tsih; its address in *who, or -ENOENT. */
static int
session_post(unsigned tsih, int kind, isession **who)
{
	int err = -ENOENT;
	pthread_mutex_lock(&sess_lock);
	for (isession *s = sessions; s; s = s->next) {
		if (s->tsih != tsih || (*who != NULL && s != *who))
			continue;
		if (kind == 5)
			s->logout_asked = 1;
		imsg *m = xcalloc(1, sizeof(*m));
		m->kind = kind;
		conn_post(s->ic->c, &m->m);
		*who = s;
		err = 0;
		break;
	}
	pthread_mutex_unlock(&sess_lock);
	return err;
}

static int
wait_unlisted(const isession *s, uint16_t tsih, int ms)
{
	for (int waited = 0; waited < ms; waited += 20) {
		if (!session_listed(s, tsih))
			return 1;
		struct timespec ts = { 0, 20 * 1000000L };
		nanosleep(&ts, NULL);
	}
	return !session_listed(s, tsih);
}

int
iscsi_logout(unsigned tsih, int force, const char **how)
{
	isession *s = NULL;
	if (tsih == 0 || tsih > 0xffff || session_post(tsih, force ? 6 : 5, &s) != 0)
		return err_set(-ENOENT, "no iSCSI session with TSIH %u (cask iscsi sessions lists them)", tsih);
	if (!force && wait_unlisted(s, (uint16_t)tsih, (LOGOUT_WAIT_S + 1) * 1000)) {
		*how = "logout";  /* the initiator logged out (or closed the connection) when asked */
		return 0;
	}
	/* not in time: drop it (what is in flight is answered first, conn_close) */
	if (!force && session_post(tsih, 6, &s) != 0) {
		*how = "logout";
		return 0;
	}
	if (!wait_unlisted(s, (uint16_t)tsih, 30000))
		return err_set(-EBUSY, "the session with TSIH %u is still ending (a command of it is in the volume IO "
		    "stack); it goes once that completes", tsih);
	*how = "dropped";
	return 0;
}
