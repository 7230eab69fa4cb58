/*
 * scsi.c -- the SCSI block-device core (SPC-4, SBC-3) behind the iSCSI
 * target; docs/iscsi.md §10-13. Transport-independent: iscsi.c hands it
 * commands (scsi.h); the volume is reached through vio.
 *
 * A command goes through:
 *
 *   scsi_prepare (decode, the check order of §10.2: LUN, opcode, CONTROL,
 *     unit attention, reservations, CDB usage bits, transfer
 *     reconciliation, LU state, LBA range) -> the transport collects
 *     need_out bytes of Data-Out -> scsi_exec (emulated: Data-In built at
 *     once; medium: vio requests, completion counted down in c->pending)
 *     -> c->done (exactly once, any thread) -> scsi_cmd_fini
 *
 * Invariants:
 *   1. One table (optab[]) describes every command: handler, CDB length,
 *      direction, reservation class, flags and the CDB usage bitmap.
 *      REPORT SUPPORTED OPERATION CODES is generated from it, and
 *      scsi_prepare refuses any CDB bit outside the usage map (INVALID
 *      FIELD IN CDB with the field pointer), so what is advertised and
 *      what is accepted cannot drift apart.
 *   2. lu->lock guards the LU's shared state (nexus list, UA queues,
 *      reservations, mode values); it is never held across vio_submit or
 *      a completion callback.
 *   3. A medium command's Data-In is the vio read buffer itself; nothing
 *      is written when the checks fail (an EDTL that disagrees with the
 *      CDB's transfer length writes nothing, §7.6).
 *   4. Every error is a CHECK CONDITION with a sense key and ASC/ASCQ;
 *      vio failures are mapped from their stable code (CE_E_*), not from
 *      message text.
 *   5. scsi_cancel (the transport's stall bound): once c->cancel is set no
 *      phase of c begins that would change the medium (rmw_granted, the
 *      write after a compare check it), and only requests vio_withdraw took
 *      back -- which never had an effect -- complete with -ECANCELED, which
 *      maps to BUSY with c->withdrawn. So a command answered BUSY wrote
 *      nothing: scsi_cancel withdraws nothing of a phase of several
 *      writing requests (WRITE SAME with a pattern, UNMAP of several
 *      ranges: some may have begun) nor anything once c->wrote is set
 *      (WRITE AND VERIFY's write landed: its read-back runs and decides
 *      the status); those are waited for, like a begun write. c->reqs is replaced only under reqs_busy, which
 *      scsi_cancel holds while it walks them; it completes what it took back
 *      after dropping it (a completion may begin the next phase).
 */
#include "scsi.h"
#include "log.h"
#include "registry.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cask/errcodes.h"

/* sense keys */
enum { SK_NO_SENSE = 0, SK_NOT_READY = 2, SK_MEDIUM_ERROR = 3, SK_HARDWARE_ERROR = 4, SK_ILLEGAL_REQUEST = 5,
	SK_UNIT_ATTENTION = 6, SK_DATA_PROTECT = 7, SK_ABORTED_COMMAND = 0xb, SK_MISCOMPARE = 0xe };
#define ASC(a, q) (((a) << 8) | (q))

/* reservation classes (§12.3) */
enum { PR_A, PR_R, PR_W, PR_S };
/* flags */
/* OP_NOEFFECT: the command changes neither the medium nor any other state of the LU (reads,
 * VERIFY, PRE-FETCH, SYNCHRONIZE CACHE, capacity/status queries): the transport may answer it
 * before it completes and drop its completion (the stall bound, docs/iscsi.md §20). Never on a
 * command with OP_WRITES, nor on one that changes reservations, mode pages or the like. */
enum { OP_UA_OK = 1, OP_SPC2_OK = 2, OP_WRITES = 4, OP_MEDIUM = 8, OP_NOEFFECT = 16 };

#define UA_MAX 16
#define PR_MAX_REGS 1024

struct scsi_nexus {
	scsi_nexus *next;
	scsi_lu *lu;
	char port[320];
	uint16_t ua[UA_MAX];
	int nua;
	int registered;
	uint64_t key;
};

struct scsi_lu {
	scsi_lu *next;
	char name[300];
	char tport[300];        /* SCSI name string of the target port: TARGETNAME,t,0x0001 */
	int refs;
	pthread_mutex_t lock;
	vio_vol *vol;
	uint64_t size;
	uint32_t bs, vbs;
	int ro;
	uint64_t pool_guid, ds_guid;
	/* mode values (current) */
	int wce, d_sense, swp;
	scsi_nexus *nexuses;
	/* SPC-2 */
	scsi_nexus *spc2;
	/* persistent reservations */
	uint32_t prgen;
	int pr_type;             /* 0: none */
	scsi_nexus *pr_holder;   /* NULL for the all-registrants types */
	int aptpl;               /* the PR state is kept in the pool (PTPL_A) */
	int is_snap;             /* a snapshot's LU: APTPL refused (PTPL_C 0) */
	pthread_mutex_t save_lock; /* one pr_persist at a time, each writing the newest state */
	/* thin provisioning soft threshold (docs/iscsi.md §13; mode page 1C/02): UA 38/07 once the
	 * pool's free space falls below tp_count sets of TP_SET bytes, re-armed one set above */
	_Atomic int tp_enabled;
	uint32_t tp_count, tp_default;
	int tp_fired;
	_Atomic uint64_t tp_next_ns; /* the next check, at most every TP_CHECK_NS */
};

static pthread_mutex_t lus_lock = PTHREAD_MUTEX_INITIALIZER;
static scsi_lu *lus;

#define TP_SET (1u << 20)              /* one threshold set: 1 MiB (THRESHOLD EXPONENT, VPD B2) */
#define TP_CHECK_NS 100000000ull       /* the pool's free space is looked at most every 100 ms */
static _Atomic int tp_pct = 10;        /* --iscsi-tp-threshold: % of the pool's size */

void
scsi_set_tp_threshold(int pct)
{
	tp_pct = pct;
}

/* An LU's threshold state outlives its sessions (as the PR state does): whether it fired, and
 * the values MODE SELECT set, by pool and dataset guid until caskd stops (under lus_lock). */
typedef struct tp_kept {
	struct tp_kept *next;
	uint64_t pool_guid, ds_guid;
	int enabled, fired;
	uint32_t count;
} tp_kept;
static tp_kept *tp_kept_list;

static tp_kept *
tp_kept_find(uint64_t pool_guid, uint64_t ds_guid, int create)
{
	for (tp_kept *k = tp_kept_list; k; k = k->next)
		if (k->pool_guid == pool_guid && k->ds_guid == ds_guid)
			return k;
	if (!create)
		return NULL;
	tp_kept *k = xcalloc(1, sizeof(*k));
	k->pool_guid = pool_guid;
	k->ds_guid = ds_guid;
	k->next = tp_kept_list;
	tp_kept_list = k;
	return k;
}

typedef struct scsi_op {
	uint8_t opcode;
	int16_t sa;              /* service action, -1: none */
	const char *name;
	int (*prep)(scsi_cmd *c);
	void (*exec)(scsi_cmd *c);
	uint8_t cdb_len;
	uint8_t dir;
	uint8_t pr_class;
	uint8_t flags;
	uint8_t usage[16];
} scsi_op;

/* ---- byte helpers ---- */
static void
p16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static void
p32(uint8_t *p, uint32_t v)
{
	p16(p, (uint16_t)(v >> 16));
	p16(p + 2, (uint16_t)v);
}
static void
p64(uint8_t *p, uint64_t v)
{
	p32(p, (uint32_t)(v >> 32));
	p32(p + 4, (uint32_t)v);
}
static uint16_t
g16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}
static uint32_t
g32(const uint8_t *p)
{
	return (uint32_t)g16(p) << 16 | g16(p + 2);
}
static uint64_t
g64(const uint8_t *p)
{
	return (uint64_t)g32(p) << 32 | g32(p + 4);
}

/* ---- sense ---- */

static void
sense_full(scsi_cmd *c, int key, int asc, int ascq, int info_valid, uint64_t info, int sksv, int cd, int byte,
    int bit)
{
	scsi_lu *lu = c->nx ? c->nx->lu : NULL;
	int desc = lu != NULL && lu->d_sense;
	uint8_t *s = c->sense;
	memset(s, 0, SCSI_SENSE_MAX);
	c->status = SCSI_CHECK;
	if (!desc) {
		s[0] = 0x70 | (info_valid ? 0x80 : 0);
		s[2] = (uint8_t)key;
		if (info_valid)
			p32(s + 3, (uint32_t)info);
		s[7] = 10;
		s[12] = (uint8_t)asc;
		s[13] = (uint8_t)ascq;
		if (sksv) {
			s[15] = (uint8_t)(0x80 | (cd ? 0x40 : 0) | (bit >= 0 ? 0x08 | (bit & 7) : 0));
			p16(s + 16, (uint16_t)byte);
		}
		c->sense_len = 18;
		return;
	}
	s[0] = 0x72;
	s[1] = (uint8_t)key;
	s[2] = (uint8_t)asc;
	s[3] = (uint8_t)ascq;
	size_t n = 8;
	if (info_valid) {
		s[n] = 0x00;
		s[n + 1] = 0x0a;
		s[n + 2] = 0x80;
		p64(s + n + 4, info);
		n += 12;
	}
	if (sksv) {
		s[n] = 0x02;
		s[n + 1] = 0x06;
		s[n + 4] = (uint8_t)(0x80 | (cd ? 0x40 : 0) | (bit >= 0 ? 0x08 | (bit & 7) : 0));
		p16(s + n + 5, (uint16_t)byte);
		n += 8;
	}
	s[7] = (uint8_t)(n - 8);
	c->sense_len = (uint32_t)n;
}

void
scsi_set_sense(scsi_cmd *c, int key, int asc, int ascq)
{
	sense_full(c, key, asc, ascq, 0, 0, 0, 0, 0, -1);
}

/* INVALID FIELD IN CDB pointing at byte/bit */
static int
bad_cdb(scsi_cmd *c, int byte, int bit)
{
	sense_full(c, SK_ILLEGAL_REQUEST, 0x24, 0x00, 0, 0, 1, 1, byte, bit);
	return -1;
}
static int
bad_param(scsi_cmd *c, int byte, int bit)
{
	sense_full(c, SK_ILLEGAL_REQUEST, 0x26, 0x00, 0, 0, 1, 0, byte, bit);
	return -1;
}
static int
sense_err(scsi_cmd *c, int key, int asc, int ascq)
{
	scsi_set_sense(c, key, asc, ascq);
	return -1;
}
static int
lba_range(scsi_cmd *c, uint64_t lba)
{
	sense_full(c, SK_ILLEGAL_REQUEST, 0x21, 0x00, 1, lba, 0, 0, 0, -1);
	return -1;
}

/* ---- logical units ---- */

typedef struct guid_q {
	const char *vol;     /* "vol" or "vol@snap" */
	uint64_t pool_guid, ds_guid;
	uint64_t pool_size;
} guid_q;

static int
find_guids(ce_pool *p, void *arg)
{
	guid_q *q = arg;
	ce_pool_stat st;
	if (ce_pool_stat_get(p, &st) == 0) {
		q->pool_guid = st.guid;
		q->pool_size = st.size;
	}
	const char *at = strchr(q->vol, '@');
	if (at == NULL) {
		ce_vol_info vi;
		if (ce_vol_info_get(p, q->vol, &vi) == 0)
			q->ds_guid = vi.guid;
		return 0;
	}
	char vname[256];
	snprintf(vname, sizeof(vname), "%.*s", (int)(at - q->vol), q->vol);
	ce_snap_info *si;
	size_t n;
	if (ce_snap_list(p, vname, &si, &n) == 0) {
		for (size_t i = 0; i < n; i++)
			if (strcmp(si[i].name, q->vol) == 0)
				q->ds_guid = si[i].guid;
		free(si);
	}
	return 0;
}

static scsi_abort_hook abort_hook;

void
scsi_set_abort_hook(scsi_abort_hook fn)
{
	abort_hook = fn;
}

static void pr_restore(scsi_lu *lu);
static void pr_keep(scsi_lu *lu);

scsi_lu *
scsi_lu_get(const char *export_name, const char *tport, uint32_t bs, int *err)
{
	pthread_mutex_lock(&lus_lock);
	for (scsi_lu *lu = lus; lu; lu = lu->next) {
		if (strcmp(lu->name, export_name) == 0) {
			lu->refs++;
			pthread_mutex_unlock(&lus_lock);
			return lu;
		}
	}
	pthread_mutex_unlock(&lus_lock);
	vio_vol *v = vio_open(export_name, 0, err);
	if (v == NULL)
		return NULL;
	scsi_lu *lu = xcalloc(1, sizeof(*lu));
	snprintf(lu->name, sizeof(lu->name), "%s", export_name);
	pthread_mutex_init(&lu->lock, NULL);
	lu->vol = v;
	lu->refs = 1;
	lu->bs = bs == 4096 ? 4096 : 512;
	snprintf(lu->tport, sizeof(lu->tport), "%s", tport ? tport : "");
	lu->vbs = vio_block_size(v);
	if (lu->vbs < lu->bs || lu->vbs % lu->bs)
		lu->vbs = lu->bs;
	lu->size = vio_size(v);
	lu->ro = (vio_caps(v) & VIO_CAP_READ_ONLY) != 0;
	lu->wce = 1;
	char pool[128];
	const char *slash = strchr(export_name, '/');
	guid_q q = { slash ? slash + 1 : export_name, 0, 0, 0 };
	snprintf(pool, sizeof(pool), "%.*s", slash ? (int)(slash - export_name) : 0, export_name);
	reg_with_pool(pool, find_guids, &q);
	lu->pool_guid = q.pool_guid;
	lu->ds_guid = q.ds_guid;
	uint64_t sets = q.pool_size / 100 * (uint64_t)tp_pct / TP_SET;
	lu->tp_count = lu->tp_default = sets > 0xffffffffu ? 0xffffffffu : (uint32_t)sets;
	lu->tp_enabled = !lu->ro && lu->tp_count > 0;
	lu->is_snap = strchr(export_name, '@') != NULL;
	pthread_mutex_init(&lu->save_lock, NULL);
	pr_restore(lu);
	pthread_mutex_lock(&lus_lock);
	/* another session may have opened it meanwhile: share that one */
	for (scsi_lu *o = lus; o; o = o->next) {
		if (strcmp(o->name, export_name) == 0) {
			o->refs++;
			pthread_mutex_unlock(&lus_lock);
			vio_close(v);
			while (lu->nexuses) {
				scsi_nexus *n = lu->nexuses;
				lu->nexuses = n->next;
				free(n);
			}
			pthread_mutex_destroy(&lu->save_lock);
			pthread_mutex_destroy(&lu->lock);
			free(lu);
			return o;
		}
	}
	tp_kept *tk = lu->ds_guid != 0 ? tp_kept_find(lu->pool_guid, lu->ds_guid, 0) : NULL;
	if (tk != NULL) {
		lu->tp_enabled = tk->enabled;
		lu->tp_fired = tk->fired;
		lu->tp_count = tk->count;
	}
	lu->next = lus;
	lus = lu;
	pthread_mutex_unlock(&lus_lock);
	return lu;
}

void
scsi_lu_put(scsi_lu *lu)
{
	if (lu == NULL)
		return;
	pthread_mutex_lock(&lus_lock);
	if (--lu->refs > 0) {
		pthread_mutex_unlock(&lus_lock);
		return;
	}
	for (scsi_lu **pp = &lus; *pp; pp = &(*pp)->next) {
		if (*pp == lu) {
			*pp = lu->next;
			break;
		}
	}
	if (lu->ds_guid != 0 && !lu->ro) {
		tp_kept *tk = tp_kept_find(lu->pool_guid, lu->ds_guid, 1);
		tk->enabled = lu->tp_enabled;
		tk->fired = lu->tp_fired;
		tk->count = lu->tp_count;
	}
	pthread_mutex_unlock(&lus_lock);
	vio_close(lu->vol);
	pr_keep(lu);
	while (lu->nexuses) {
		scsi_nexus *n = lu->nexuses;
		lu->nexuses = n->next;
		free(n);
	}
	pthread_mutex_destroy(&lu->save_lock);
	pthread_mutex_destroy(&lu->lock);
	free(lu);
}

vio_vol *
scsi_lu_vol(scsi_lu *lu)
{
	return lu->vol;
}

scsi_lu *
scsi_nexus_lu(scsi_nexus *nx)
{
	return nx->lu;
}

scsi_nexus *
scsi_nexus_get(scsi_lu *lu, const char *port)
{
	pthread_mutex_lock(&lu->lock);
	scsi_nexus *n;
	for (n = lu->nexuses; n; n = n->next)
		if (strcasecmp(n->port, port) == 0)
			break;
	if (n == NULL) {
		n = xcalloc(1, sizeof(*n));
		n->lu = lu;
		snprintf(n->port, sizeof(n->port), "%s", port);
		n->next = lu->nexuses;
		lu->nexuses = n;
	}
	pthread_mutex_unlock(&lu->lock);
	return n;
}

static void
ua_add_locked(scsi_nexus *n, uint16_t code)
{
	for (int i = 0; i < n->nua; i++)
		if (n->ua[i] == code)
			return;
	if (n->nua < UA_MAX)
		n->ua[n->nua++] = code;
}

void
scsi_nexus_lost(scsi_nexus *nx)
{
	scsi_lu *lu = nx->lu;
	pthread_mutex_lock(&lu->lock);
	if (lu->spc2 == nx)
		lu->spc2 = NULL;
	pthread_mutex_unlock(&lu->lock);
}

void
scsi_lu_reset(scsi_lu *lu)
{
	pthread_mutex_lock(&lu->lock);
	lu->spc2 = NULL;
	lu->wce = 1;
	lu->d_sense = 0;
	lu->swp = 0;
	for (scsi_nexus *n = lu->nexuses; n; n = n->next)
		ua_add_locked(n, ASC(0x29, 0x00));
	pthread_mutex_unlock(&lu->lock);
}

/* ---- completion helpers ---- */

static void
finish(scsi_cmd *c)
{
	c->done(c);
}

/* Data-In of n bytes built in c->din: reconcile with EDTL (§7.6). */
static void
din_ready(scsi_cmd *c, uint32_t n)
{
	if (c->edtl < n) {
		c->resid_over = 1;
		c->resid = n - c->edtl;
		c->din_len = c->edtl;
	} else {
		c->din_len = n;
		if (c->edtl > n) {
			c->resid_under = 1;
			c->resid = c->edtl - n;
		}
	}
}

/* an emulated Data-In command: allocate its buffer */
static uint8_t *
din_alloc(scsi_cmd *c, size_t n)
{
	c->din = xcalloc(1, n ? n : 1);
	return c->din;
}

/* the spin lock of c->reqs (scsi_cancel against a phase that replaces them on another thread) */
static void
reqs_lock(scsi_cmd *c)
{
	while (atomic_exchange(&c->reqs_busy, 1))
		;
}

static void
reqs_unlock(scsi_cmd *c)
{
	atomic_store(&c->reqs_busy, 0);
}

/* BUSY, withdrawn: the command gave way to the stall bound (scsi_cancel) */
static void
set_withdrawn(scsi_cmd *c)
{
	c->status = SCSI_BUSY;
	c->sense_len = 0;
	c->withdrawn = 1;
}

static void
map_vio_error(scsi_cmd *c, int op, int status, int code)
{
	if (status == -ECANCELED && atomic_load(&c->cancel)) {
		set_withdrawn(c);
		return;
	}
	switch (code) {
	case CE_E_NO_SPACE:
		scsi_set_sense(c, SK_DATA_PROTECT, 0x27, 0x07);
		return;
	case CE_E_PERMISSION_DENIED:
		scsi_set_sense(c, SK_DATA_PROTECT, 0x27, 0x00);
		return;
	case CE_E_POOL_UNAVAILABLE:
	case CE_E_POOL_SUSPENDED:
		scsi_set_sense(c, SK_NOT_READY, 0x04, 0x03);
		return;
	case CE_E_BUSY:
	case CE_E_VOLUME_OPEN:
		c->status = SCSI_BUSY;
		c->sense_len = 0;
		return;
	case CE_E_IO_ERROR:
		if (op == VIO_READ || op == VIO_MAP || op == VIO_CACHE)
			sense_full(c, SK_MEDIUM_ERROR, 0x11, 0x00, 1, c->lba, 0, 0, 0, -1);
		else
			sense_full(c, SK_MEDIUM_ERROR, 0x0c, 0x00, 1, c->lba, 0, 0, 0, -1);
		return;
	default:
		if (status == -ENOSPC)
			scsi_set_sense(c, SK_DATA_PROTECT, 0x27, 0x07);
		else if (status == -EROFS || status == -EPERM)
			scsi_set_sense(c, SK_DATA_PROTECT, 0x27, 0x00);
		else
			scsi_set_sense(c, SK_HARDWARE_ERROR, 0x44, 0x00);
	}
}

/* Medium commands: submit nreqs requests prepared in c->reqs; then(c) runs when all completed OK. */
typedef void (*then_fn)(scsi_cmd *c);

static void
req_done(vio_req *r)
{
	scsi_cmd *c = r->udata;
	if (r->status != 0 && atomic_exchange(&c->ioerr, 1) == 0) {
		map_vio_error(c, r->op, r->status, r->code);
		log_debug("scsi %s: %s failed: %s", c->nx->lu->name, vio_op_name(r->op), r->msg);
	}
	if (atomic_fetch_sub(&c->pending, 1) == 1) {
		then_fn then = (then_fn)c->work_then;
		if (!atomic_load(&c->ioerr) && then != NULL)
			then(c);
		else
			finish(c);
	}
}

static vio_req *
reqs_alloc(scsi_cmd *c, int n)
{
	vio_req *rs = xcalloc((size_t)n, sizeof(vio_req));
	for (int i = 0; i < n; i++) {
		rs[i].udata = c;
		rs[i].done = req_done;
	}
	reqs_lock(c);
	vio_req *old = c->reqs;
	int nold = c->nreqs;
	c->reqs = rs;
	c->nreqs = n;
	reqs_unlock(c);
	for (int i = 0; i < nold; i++)
		free(old[i].ext);
	free(old);
	return rs;
}

static void
submit_all(scsi_cmd *c, then_fn then)
{
	c->work_then = (void *)then;
	atomic_store(&c->pending, c->nreqs);
	vio_vol *v = c->nx->lu->vol;
	int n = c->nreqs;
	vio_req *rs = c->reqs;
	for (int i = 0; i < n; i++)
		vio_submit(v, &rs[i]);
}

static void
submit_one(scsi_cmd *c, int op, uint32_t flags, uint64_t off, uint64_t len, void *buf, then_fn then)
{
	vio_req *r = reqs_alloc(c, 1);
	r->op = (uint8_t)op;
	r->flags = flags;
	r->off = off;
	r->len = len;
	r->buf = buf;
	submit_all(c, then);
}

/* ---- the commands ---- */

#define LU(c) ((c)->nx->lu)

static int
prep_none(scsi_cmd *c)
{
	return 0;
}

static void
exec_good(scsi_cmd *c)
{
	finish(c);
}

/* REQUEST SENSE */
static void
exec_request_sense(scsi_cmd *c)
{
	scsi_lu *lu = LU(c);
	uint16_t ua = 0;
	pthread_mutex_lock(&lu->lock);
	scsi_nexus *n = c->nx;
	if (n->nua > 0) {
		ua = n->ua[0];
		memmove(n->ua, n->ua + 1, (size_t)(n->nua - 1) * sizeof(n->ua[0]));
		n->nua--;
	}
	int saved = lu->d_sense;
	lu->d_sense = c->cdb[1] & 1;
	scsi_cmd tmp = *c;
	if (ua)
		scsi_set_sense(&tmp, SK_UNIT_ATTENTION, ua >> 8, ua & 0xff);
	else
		scsi_set_sense(&tmp, SK_NO_SENSE, 0, 0);
	lu->d_sense = saved;
	pthread_mutex_unlock(&lu->lock);
	uint32_t alloc = c->cdb[4];
	uint8_t *d = din_alloc(c, tmp.sense_len);
	memcpy(d, tmp.sense, tmp.sense_len);
	din_ready(c, MIN(alloc, tmp.sense_len));
	finish(c);
}

static int
prep_alloc_in(scsi_cmd *c)
{
	return 0;
}

/* identity */
static uint64_t
mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

static uint64_t
naa_id(const scsi_lu *lu)
{
	uint64_t h = mix64(lu->pool_guid ^ mix64(lu->ds_guid + 0x9e3779b97f4a7c15ull));
	return (3ull << 60) | (h & ((1ull << 60) - 1));
}

static const char *target_port_name(scsi_cmd *c);

static size_t
vpd_page(scsi_cmd *c, uint8_t page, uint8_t *d)
{
	scsi_lu *lu = LU(c);
	uint32_t bs = lu->bs;
	memset(d, 0, 512);
	d[0] = 0x00;
	d[1] = page;
	size_t n = 4;
	switch (page) {
	case 0x00: {
		static const uint8_t pages[] = { 0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2 };
		memcpy(d + 4, pages, sizeof(pages));
		n += sizeof(pages);
		break;
	}
	case 0x80: {
		char sn[40];
		snprintf(sn, sizeof(sn), "%016" PRIx64 "%016" PRIx64, lu->pool_guid, lu->ds_guid);
		memcpy(d + 4, sn, 32);
		n += 32;
		break;
	}
	case 0x83: {
		/* NAA 3 locally assigned (association 0) */
		d[n] = 0x01; /* binary */
		d[n + 1] = 0x03; /* association 0, type NAA */
		d[n + 3] = 8;
		p64(d + n + 4, naa_id(lu));
		n += 12;
		/* T10 vendor ID */
		d[n] = 0x02; /* ASCII */
		d[n + 1] = 0x01;
		d[n + 3] = 8 + 32;
		memcpy(d + n + 4, "CASK    ", 8);
		char sn[40];
		snprintf(sn, sizeof(sn), "%016" PRIx64 "%016" PRIx64, lu->pool_guid, lu->ds_guid);
		memcpy(d + n + 12, sn, 32);
		n += 4 + 40;
		/* relative target port 1 (association 1) */
		d[n] = 0x51; /* protocol iSCSI, binary */
		d[n + 1] = 0x94; /* PIV, association 1, type 4 */
		d[n + 3] = 4;
		p16(d + n + 6, 1);
		n += 8;
		/* target port group 1 */
		d[n] = 0x51;
		d[n + 1] = 0x95;
		d[n + 3] = 4;
		p16(d + n + 6, 1);
		n += 8;
		/* SCSI name string of the target port (association 1) */
		const char *tp = target_port_name(c);
		if (tp != NULL) {
			size_t l = strlen(tp) + 1;
			size_t pl = (l + 3) & ~(size_t)3;
			if (pl <= 256) {
				d[n] = 0x53; /* iSCSI, UTF-8 */
				d[n + 1] = 0x98; /* PIV, association 1, type 8 */
				d[n + 3] = (uint8_t)pl;
				memcpy(d + n + 4, tp, l - 1);
				n += 4 + pl;
			}
		}
		break;
	}
	case 0xb0: {
		d[3] = 0x3c;
		d[4] = 0x00; /* WSNZ 0: WRITE SAME with 0 blocks covers LBA to the end */
		d[5] = 255; /* MAXIMUM COMPARE AND WRITE LENGTH */
		p16(d + 6, (uint16_t)MAX(1u, lu->vbs / bs));
		p32(d + 8, SCSI_MAX_XFER / bs);
		p32(d + 12, (1u << 20) / bs);
		p32(d + 16, SCSI_MAX_XFER / bs); /* MAXIMUM PREFETCH LENGTH */
		p32(d + 20, 0xffffffffu); /* MAXIMUM UNMAP LBA COUNT */
		p32(d + 24, 256); /* MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT */
		p32(d + 28, MAX(1u, lu->vbs / bs)); /* OPTIMAL UNMAP GRANULARITY */
		p32(d + 32, 0x80000000u); /* UGAVALID, alignment 0 */
		p64(d + 36, (1ull << 30) / bs); /* MAXIMUM WRITE SAME LENGTH */
		return 64;
	}
	case 0xb1:
		d[3] = 0x3c;
		p16(d + 4, 1); /* non-rotating */
		return 64;
	case 0xb2:
		d[3] = 4;
		d[4] = (uint8_t)(bs == 4096 ? 8 : 11); /* THRESHOLD EXPONENT: a threshold set is 1 MiB (TP_SET) */
		d[5] = 0x80 | 0x40 | 0x20 | 0x04; /* LBPU, LBPWS, LBPWS10, LBPRZ (001b in bits 4-2) */
		d[6] = 0x02; /* PROVISIONING TYPE thin */
		return 8;
	default:
		return 0;
	}
	p16(d + 2, (uint16_t)(n - 4));
	return n;
}

static void
exec_inquiry(scsi_cmd *c)
{
	uint32_t alloc = g16(c->cdb + 3);
	uint8_t *d = din_alloc(c, 512);
	size_t n;
	int lun0 = c->lun == 0;
	if (c->cdb[1] & 1) {
		if (!lun0) {
			free(c->din);
			c->din = NULL;
			sense_full(c, SK_ILLEGAL_REQUEST, 0x25, 0x00, 0, 0, 0, 0, 0, -1);
			return finish(c);
		}
		n = vpd_page(c, c->cdb[2], d);
		if (n == 0) {
			free(c->din);
			c->din = NULL;
			bad_cdb(c, 2, -1);
			return finish(c);
		}
	} else {
		if (c->cdb[2] != 0) {
			free(c->din);
			c->din = NULL;
			bad_cdb(c, 2, -1);
			return finish(c);
		}
		memset(d, 0, 96);
		d[0] = lun0 ? 0x00 : 0x7f; /* PQ 011b, PDT 1Fh for a LUN that does not exist */
		d[2] = 0x06; /* SPC-4 */
		d[3] = 0x12; /* HISUP, response data format 2 */
		d[4] = 96 - 5;
		d[5] = 0x00; /* TPGS 00: no ALUA commands offered (RTPG is not built) */
		d[7] = 0x02; /* CMDQUE */
		memcpy(d + 8, "CASK    ", 8);
		memcpy(d + 16, "cask volume     ", 16);
		memcpy(d + 32, "0001", 4);
		p16(d + 58, 0x00c0); /* SAM-5 */
		p16(d + 60, 0x0960); /* iSCSI */
		p16(d + 62, 0x0460); /* SPC-4 */
		p16(d + 64, 0x04c0); /* SBC-3 */
		n = 96;
	}
	din_ready(c, (uint32_t)MIN(n, alloc));
	finish(c);
}

static void
exec_report_luns(scsi_cmd *c)
{
	uint32_t alloc = g32(c->cdb + 6);
	uint8_t sel = c->cdb[2];
	uint8_t *d = din_alloc(c, 16);
	p32(d, sel == 0x01 ? 0 : 8); /* well-known LUNs only: none */
	din_ready(c, MIN(alloc, sel == 0x01 ? 8u : 16u));
	finish(c);
}

static int
prep_report_luns(scsi_cmd *c)
{
	uint8_t sel = c->cdb[2];
	if (sel != 0x00 && sel != 0x01 && sel != 0x02)
		return bad_cdb(c, 2, -1);
	if (g32(c->cdb + 6) < 16)
		return bad_cdb(c, 6, -1);
	return 0;
}

static void
exec_read_capacity10(scsi_cmd *c)
{
	scsi_lu *lu = LU(c);
	uint64_t last = lu->size / lu->bs - 1;
	uint8_t *d = din_alloc(c, 8);
	p32(d, last > 0xffffffffull ? 0xffffffffu : (uint32_t)last);
	p32(d + 4, lu->bs);
	din_ready(c, 8);
	finish(c);
}

static void
exec_read_capacity16(scsi_cmd *c)
{
	scsi_lu *lu = LU(c);
	uint32_t alloc = g32(c->cdb + 10);
	uint8_t *d = din_alloc(c, 32);
	p64(d, lu->size / lu->bs - 1);
	p32(d + 8, lu->bs);
	int exp = 0;
	while ((lu->bs << (exp + 1)) <= lu->vbs)
		exp++;
	d[13] = (uint8_t)exp;
	d[14] = 0x80 | 0x40; /* LBPME, LBPRZ */
	din_ready(c, MIN(alloc, 32u));
	finish(c);
}

/* mode pages */
/* The logical block provisioning mode page (1Ch/02h, SBC-3 6.5.8): one soft threshold
 * descriptor on the pool's available LBA mapping resources, armed on decrease; ENABLED and
 * THRESHOLD COUNT changeable (lu->lock held). */
static size_t
lbp_page(scsi_lu *lu, int pc, uint8_t *d)
{
	d[0] = 0x40 | 0x1c; /* SPF */
	d[1] = 0x02;
	p16(d + 2, 20);
	/* d[4] SITUA 0: the unit attention goes to every I_T nexus */
	uint8_t *t = d + 16;
	if (pc == 1) {
		t[0] = 0x80; /* ENABLED */
		p32(t + 4, 0xffffffffu);
		return 24;
	}
	/* ENABLED; THRESHOLD TYPE 000b soft; THRESHOLD ARMING 001b decrease */
	t[0] = (uint8_t)((pc == 0 ? (lu->tp_enabled ? 0x80 : 0) : (!lu->ro && lu->tp_default ? 0x80 : 0)) | 0x01);
	t[1] = 0x01; /* THRESHOLD RESOURCE: available LBA mapping resources (the pool's free space) */
	p32(t + 4, pc == 0 ? lu->tp_count : lu->tp_default);
	return 24;
}

static size_t
mode_page(scsi_lu *lu, int page, int pc, uint8_t *d)
{
	/* pc: 0 current, 1 changeable, 2 default */
	switch (page) {
	case 0x01:
		d[0] = 0x01;
		d[1] = 0x0a;
		if (pc != 1)
			d[2] = 0xc0; /* AWRE, ARRE */
		return 12;
	case 0x08:
		d[0] = 0x08;
		d[1] = 0x12;
		if (pc == 1)
			d[2] = 0x04; /* WCE changeable */
		else if (pc == 2)
			d[2] = 0x04;
		else
			d[2] = lu->wce ? 0x04 : 0;
		return 20;
	case 0x0a:
		d[0] = 0x0a;
		d[1] = 0x0a;
		if (pc == 1) {
			d[2] = 0x04; /* D_SENSE */
			d[4] = 0x08; /* SWP */
		} else {
			d[2] = (pc == 0 && lu->d_sense ? 0x04 : 0) | 0x02; /* GLTSD */
			d[3] = 0x00; /* QERR 00 */
			d[4] = (pc == 0 && lu->swp ? 0x08 : 0) | 0x40; /* TAS */
			p16(d + 8, 0xffff); /* BUSY TIMEOUT PERIOD */
		}
		return 12;
	case 0x1c:
		d[0] = 0x1c;
		d[1] = 0x0a;
		if (pc != 1)
			d[2] = 0x08; /* DEXCPT */
		return 12;
	default:
		return 0;
	}
}

static void
exec_mode_sense(scsi_cmd *c)
{
	scsi_lu *lu = LU(c);
	int ten = c->cdb[0] == 0x5a;
	int dbd = (c->cdb[1] & 0x08) != 0;
	int llbaa = ten && (c->cdb[1] & 0x10);
	int pc = c->cdb[2] >> 6, page = c->cdb[2] & 0x3f, sub = c->cdb[3];
	uint32_t alloc = ten ? g16(c->cdb + 7) : c->cdb[4];
	if (pc == 3) {
		sense_err(c, SK_ILLEGAL_REQUEST, 0x39, 0x00);
		return finish(c);
	}
	uint8_t *d = din_alloc(c, 1024);
	size_t h = ten ? 8 : 4;
	size_t n = h;
	int wp = lu->ro || lu->swp;
	if (!dbd) {
		uint64_t nb = lu->size / lu->bs;
		if (llbaa) {
			p64(d + n, nb);
			p32(d + n + 12, lu->bs);
			n += 16;
		} else {
			p32(d + n, nb > 0xffffffffull ? 0xffffffffu : (uint32_t)nb);
			p32(d + n + 4, lu->bs & 0xffffff);
			n += 8;
		}
	}
	size_t bd = n - h;
	pthread_mutex_lock(&lu->lock);
	if (page == 0x3f && (sub == 0x00 || sub == 0xff)) {
		static const int all[] = { 0x01, 0x08, 0x0a, 0x1c };
		for (size_t i = 0; i < ARRAY_SIZE(all); i++) {
			n += mode_page(lu, all[i], pc, d + n);
			if (all[i] == 0x1c && sub == 0xff)
				n += lbp_page(lu, pc, d + n);
		}
	} else if (page == 0x1c && (sub == 0x02 || sub == 0xff)) {
		if (sub == 0xff)
			n += mode_page(lu, 0x1c, pc, d + n);
		n += lbp_page(lu, pc, d + n);
	} else if (sub == 0) {
		size_t k = mode_page(lu, page, pc, d + n);
		if (k == 0) {
			pthread_mutex_unlock(&lu->lock);
			free(c->din);
			c->din = NULL;
			bad_cdb(c, 2, 5);
			return finish(c);
		}
		n += k;
	} else {
		pthread_mutex_unlock(&lu->lock);
		free(c->din);
		c->din = NULL;
		bad_cdb(c, 3, -1);
		return finish(c);
	}
	pthread_mutex_unlock(&lu->lock);
	if (ten) {
		p16(d, (uint16_t)(n - 2));
		d[3] = (uint8_t)((wp ? 0x80 : 0) | 0x10); /* WP, DPOFUA */
		d[4] = llbaa && bd ? 1 : 0;
		p16(d + 6, (uint16_t)bd);
	} else {
		d[0] = (uint8_t)(n - 1);
		d[2] = (uint8_t)((wp ? 0x80 : 0) | 0x10);
		d[3] = (uint8_t)bd;
	}
	din_ready(c, (uint32_t)MIN(n, alloc));
	finish(c);
}

static int
prep_mode_select(scsi_cmd *c)
{
	int ten = c->cdb[0] == 0x55;
	if (!(c->cdb[1] & 0x10))
		return bad_cdb(c, 1, 4); /* PF must be 1 */
	if (c->cdb[1] & 0x01)
		return bad_cdb(c, 1, 0); /* SP: saving is not supported */
	c->spdtl = ten ? g16(c->cdb + 7) : c->cdb[4];
	c->need_out = (int)MIN(c->spdtl, c->edtl);
	return 0;
}

/*
 * MODE SELECT: a page's bytes [from, len) may differ from the current page only in the bits the
 * changeable mask allows. On the first other bit, ILLEGAL REQUEST naming that byte (counted
 * from the parameter list's start: base is the page's offset in it) and bit; returns 1 then.
 */
static int
fixed_bits_differ(scsi_cmd *c, const uint8_t *got, const uint8_t *cur, const uint8_t *chg, size_t from, size_t len,
    size_t base)
{
	for (size_t i = from; i < len; i++) {
		uint8_t diff = (uint8_t)((got[i] ^ cur[i]) & ~chg[i]);
		if (diff) {
			int bit = 7;
			while (!(diff & (1 << bit)))
				bit--;
			bad_param(c, (int)(base + i), bit);
			return 1;
		}
	}
	return 0;
}

static void
exec_mode_select(scsi_cmd *c)
{
	scsi_lu *lu = LU(c);
	int ten = c->cdb[0] == 0x55;
	uint32_t n = (uint32_t)c->need_out;
	const uint8_t *p = c->dout;
	size_t h = ten ? 8 : 4;
	if (n == 0)
		return finish(c);
	if (n < h) {
		sense_err(c, SK_ILLEGAL_REQUEST, 0x1a, 0x00);
		return finish(c);
	}
	size_t bdl = ten ? g16(p + 6) : p[3];
	if (h + bdl > n) {
		sense_err(c, SK_ILLEGAL_REQUEST, 0x1a, 0x00);
		return finish(c);
	}
	if (bdl != 0 && bdl != 8 && bdl != 16) {
		bad_param(c, ten ? 6 : 3, -1);
		return finish(c);
	}
	size_t pos = h + bdl;
	int wce = lu->wce, dsense = lu->d_sense, swp = lu->swp;
	int tp_enabled = lu->tp_enabled;
	uint32_t tp_count = lu->tp_count;
	while (pos < n) {
		if (n - pos < 2) {
			sense_err(c, SK_ILLEGAL_REQUEST, 0x1a, 0x00);
			return finish(c);
		}
		int page = p[pos] & 0x3f;
		if (p[pos] & 0x40) { /* a subpage: only the logical block provisioning page */
			if (page != 0x1c || n - pos < 4 || p[pos + 1] != 0x02) {
				bad_param(c, (int)pos + (page != 0x1c ? 0 : 1), page != 0x1c ? 5 : -1);
				return finish(c);
			}
			uint8_t cur[24] = { 0 }, chg[24] = { 0 };
			pthread_mutex_lock(&lu->lock);
			lbp_page(lu, 0, cur);
			lbp_page(lu, 1, chg);
			pthread_mutex_unlock(&lu->lock);
			size_t plen = (size_t)g16(p + pos + 2) + 4;
			if (plen != sizeof(cur)) {
				bad_param(c, (int)pos + 2, -1);
				return finish(c);
			}
			if (pos + plen > n) {
				sense_err(c, SK_ILLEGAL_REQUEST, 0x1a, 0x00);
				return finish(c);
			}
			if (fixed_bits_differ(c, p + pos, cur, chg, 4, plen, pos))
				return finish(c);
			tp_enabled = (p[pos + 16] & 0x80) != 0;
			tp_count = g32(p + pos + 20);
			if (tp_enabled && lu->ro) {
				bad_param(c, (int)pos + 16, 7);
				return finish(c);
			}
			pos += plen;
			continue;
		}
		size_t plen = (size_t)p[pos + 1] + 2;
		if (pos + plen > n) {
			sense_err(c, SK_ILLEGAL_REQUEST, 0x1a, 0x00);
			return finish(c);
		}
		uint8_t cur[64] = { 0 }, chg[64] = { 0 };
		pthread_mutex_lock(&lu->lock);
		size_t cl = mode_page(lu, page, 0, cur);
		mode_page(lu, page, 1, chg);
		pthread_mutex_unlock(&lu->lock);
		if (cl == 0) {
			bad_param(c, (int)pos, 5);
			return finish(c);
		}
		if (plen != cl) {
			bad_param(c, (int)pos + 1, -1);
			return finish(c);
		}
		if (fixed_bits_differ(c, p + pos, cur, chg, 2, plen, pos))
			return finish(c);
		if (page == 0x08)
			wce = (p[pos + 2] & 0x04) != 0;
		if (page == 0x0a) {
			dsense = (p[pos + 2] & 0x04) != 0;
			swp = (p[pos + 4] & 0x08) != 0;
		}
		pos += plen;
	}
	pthread_mutex_lock(&lu->lock);
	int changed = wce != lu->wce || dsense != lu->d_sense || swp != lu->swp || tp_enabled != lu->tp_enabled ||
	    tp_count != lu->tp_count;
	lu->wce = wce;
	lu->d_sense = dsense;
	lu->swp = swp;
	if (tp_count != lu->tp_count || tp_enabled != lu->tp_enabled)
		lu->tp_fired = 0; /* a new threshold: armed again, checked at the next write */
	lu->tp_enabled = tp_enabled;
	lu->tp_count = tp_count;
	if (changed)
		for (scsi_nexus *x = lu->nexuses; x; x = x->next)
			if (x != c->nx)
				ua_add_locked(x, ASC(0x2a, 0x01));
	pthread_mutex_unlock(&lu->lock);
	finish(c);
}

/* READ / WRITE / VERIFY */
static int
decode_rw(scsi_cmd *c)
{
	const uint8_t *b = c->cdb;
	switch (b[0]) {
	case 0x08: case 0x0a:
		c->lba = ((uint64_t)(b[1] & 0x1f) << 16) | g16(b + 2);
		c->nblk = b[4] ? b[4] : 256;
		break;
	case 0x28: case 0x2a: case 0x2e: case 0x2f: case 0x34: case 0x35: case 0x41:
		c->lba = g32(b + 2);
		c->nblk = g16(b + 7);
		break;
	case 0xa8: case 0xaa: case 0xae: case 0xaf:
		c->lba = g32(b + 2);
		c->nblk = g32(b + 6);
		break;
	default: /* 16-byte */
		c->lba = g64(b + 2);
		c->nblk = g32(b + 10);
		break;
	}
	return 0;
}

static int
check_range(scsi_cmd *c)
{
	scsi_lu *lu = LU(c);
	uint64_t cap = lu->size / lu->bs;
	if (c->lba > cap || c->nblk > cap - c->lba)
		return lba_range(c, c->lba);
	return 0;
}

static int
prep_read(scsi_cmd *c)
{
	decode_rw(c);
	if (c->cdb[0] != 0x08 && (c->cdb[1] & 0xe0))
		return bad_cdb(c, 1, 7); /* RDPROTECT: no protection information */
	if ((uint64_t)c->nblk * LU(c)->bs > SCSI_MAX_XFER)
		return bad_cdb(c, c->cdb[0] == 0x08 ? 4 : c->cdb[0] == 0x28 ? 7 : c->cdb[0] == 0xa8 ? 6 : 10, -1);
	if (check_range(c))
		return -1;
	c->spdtl = c->nblk * LU(c)->bs;
	return 0;
}

static void
read_then(scsi_cmd *c)
{
	din_ready(c, c->spdtl);
	finish(c);
}

static void
exec_read(scsi_cmd *c)
{
	if (c->nblk == 0 || c->edtl == 0) {
		din_ready(c, c->spdtl);
		return finish(c);
	}
	c->din = xmalloc_aligned(c->spdtl);
	submit_one(c, VIO_READ, 0, c->lba * LU(c)->bs, c->spdtl, c->din, read_then);
}

/* A command whose Data-Out is one block pattern (WRITE SAME, VERIFY BYTCHK=11b): EDTL must match. */
static int
medium_out_len(scsi_cmd *c, uint32_t spdtl)
{
	c->spdtl = spdtl;
	if (c->edtl != spdtl) {
		if (c->edtl > spdtl) {
			c->resid_under = 1;
			c->resid = c->edtl - spdtl;
		} else {
			c->resid_over = 1;
			c->resid = spdtl - c->edtl;
		}
		return sense_err(c, SK_ILLEGAL_REQUEST, 0x0e, 0x03);
	}
	c->need_out = (int)spdtl;
	return 0;
}

/*
 * A command whose Data-Out is medium data block by block (WRITE, WRITE AND VERIFY, VERIFY
 * BYTCHK=01b): as FCP-4 and libiscsi 1.19's residual tests want, the command runs on the whole
 * blocks EDTL covers (never beyond SPDTL) with the residual reported; an EDTL that ends inside a
 * block it would need is 0E/03 and nothing is written.
 */
static int
medium_out_blocks(scsi_cmd *c)
{
	uint32_t bs = LU(c)->bs;
	uint32_t spdtl = c->nblk * bs;
	c->spdtl = spdtl;
	if (c->edtl > spdtl) {
		c->resid_under = 1;
		c->resid = c->edtl - spdtl;
	} else if (c->edtl < spdtl) {
		c->resid_over = 1;
		c->resid = spdtl - c->edtl;
		if (c->edtl % bs)
			return sense_err(c, SK_ILLEGAL_REQUEST, 0x0e, 0x03);
		c->nblk = c->edtl / bs;
		c->spdtl = c->edtl;
	}
	c->need_out = (int)c->spdtl;
	return 0;
}

static int
prep_write(scsi_cmd *c)
{
	decode_rw(c);
	if (c->cdb[0] != 0x0a && (c->cdb[1] & 0xe0))
		return bad_cdb(c, 1, 7); /* WRPROTECT */
	if ((uint64_t)c->nblk * LU(c)->bs > SCSI_MAX_XFER)
		return bad_cdb(c, c->cdb[0] == 0x0a ? 4 : c->cdb[0] == 0x2a ? 7 : c->cdb[0] == 0xaa ? 6 : 10, -1);
	if (check_range(c))
		return -1;
	c->fua = c->cdb[0] != 0x0a && (c->cdb[1] & 0x08);
	uint8_t op = c->cdb[0];
	if (op == 0x2e || op == 0xae || op == 0x8e) {
		c->fua = 1;
		c->flag1 = (c->cdb[1] >> 1) & 3; /* BYTCHK */
		if (c->flag1 > 1)
			return bad_cdb(c, 1, 2);
	}
	return medium_out_blocks(c);
}

static void
verify_then(scsi_cmd *c);

static void
write_then(scsi_cmd *c)
{
	if (c->flag1 == 1 && c->nblk > 0) {
		/* WRITE AND VERIFY with BYTCHK: read the range back and compare. The write landed, so
		 * the read-back runs even when scsi_cancel was called: c->wrote keeps it from being
		 * withdrawn (set before submit_one replaces c->reqs under reqs_busy; invariant 5) */
		atomic_store(&c->wrote, 1);
		c->work = xmalloc_aligned(c->spdtl);
		c->flag1 = 0;
		c->flag2 = 1;
		return submit_one(c, VIO_READ, 0, c->lba * LU(c)->bs, c->spdtl, c->work, verify_then);
	}
	finish(c);
}

static void
exec_write(scsi_cmd *c)
{
	if (c->nblk == 0)
		return finish(c);
	scsi_lu *lu = LU(c);
	int fua = c->fua || !lu->wce;
	submit_one(c, VIO_WRITE, fua ? VIO_FUA : 0, c->lba * lu->bs, c->spdtl, c->dout, write_then);
}

static int
prep_verify(scsi_cmd *c)
{
	decode_rw(c);
	if (c->cdb[1] & 0xe0)
		return bad_cdb(c, 1, 7); /* VRPROTECT */
	c->flag1 = (c->cdb[1] >> 1) & 3; /* BYTCHK */
	if (c->flag1 == 2)
		return bad_cdb(c, 1, 2);
	if ((uint64_t)c->nblk * LU(c)->bs > SCSI_MAX_XFER)
		return bad_cdb(c, c->cdb[0] == 0x2f ? 7 : c->cdb[0] == 0xaf ? 6 : 10, -1);
	if (check_range(c))
		return -1;
	if (c->flag1 == 0) {
		c->spdtl = 0;
		return 0;
	}
	if (c->flag1 == 3)
		return medium_out_len(c, c->nblk ? LU(c)->bs : 0);
	return medium_out_blocks(c);
}

static void
verify_then(scsi_cmd *c)
{
	scsi_lu *lu = LU(c);
	int bytchk = c->flag2 ? 1 : c->flag1;
	if (bytchk == 0)
		return finish(c);
	uint64_t total = (uint64_t)c->nblk * lu->bs;
	for (uint64_t i = 0; i < total; i++) {
		uint8_t want = bytchk == 3 ? c->dout[i % lu->bs] : c->dout[i];
		if (c->work[i] != want) {
			sense_full(c, SK_MISCOMPARE, 0x1d, 0x00, 1, i, 0, 0, 0, -1);
			return finish(c);
		}
	}
	finish(c);
}

static void
exec_verify(scsi_cmd *c)
{
	if (c->nblk == 0)
		return finish(c);
	uint64_t total = (uint64_t)c->nblk * LU(c)->bs;
	c->work = xmalloc_aligned(total);
	submit_one(c, VIO_READ, 0, c->lba * LU(c)->bs, total, c->work, verify_then);
}

static int
prep_sync(scsi_cmd *c)
{
	decode_rw(c);
	if (c->cdb[0] == 0x91) {
		c->lba = g64(c->cdb + 2);
		c->nblk = g32(c->cdb + 10);
	}
	return check_range(c);
}

static void
exec_sync(scsi_cmd *c)
{
	submit_one(c, VIO_FLUSH, 0, 0, 0, NULL, NULL);
}

static int
prep_prefetch(scsi_cmd *c)
{
	decode_rw(c);
	if (c->cdb[0] == 0x90) {
		c->lba = g64(c->cdb + 2);
		c->nblk = g32(c->cdb + 10);
	}
	return check_range(c);
}

static void
exec_prefetch(scsi_cmd *c)
{
	scsi_lu *lu = LU(c);
	uint64_t n = c->nblk ? c->nblk : lu->size / lu->bs - c->lba;
	if (n == 0)
		return finish(c);
	n = MIN(n, (uint64_t)SCSI_MAX_XFER / lu->bs);
	submit_one(c, VIO_CACHE, 0, c->lba * lu->bs, n * lu->bs, NULL, NULL);
}

/* WRITE SAME 10/16 */
static int
prep_write_same(scsi_cmd *c)
{
	scsi_lu *lu = LU(c);
	decode_rw(c);
	if (c->cdb[1] & 0xe0)
		return bad_cdb(c, 1, 7);
	if (c->cdb[1] & 0x10)
		return bad_cdb(c, 1, 4); /* ANCHOR: ANC_SUP=0 */
	int ndob = c->cdb[0] == 0x93 && (c->cdb[1] & 0x01);
	c->flag1 = (c->cdb[1] & 0x08) != 0; /* UNMAP */
	c->flag2 = ndob;
	uint64_t cap = lu->size / lu->bs;
	if (c->nblk == 0) {
		/* WSNZ=0: zero blocks means from LBA to the end of the LU */
		if (c->lba >= cap)
			return lba_range(c, c->lba);
		if (cap - c->lba > (1ull << 30) / lu->bs)
			return bad_cdb(c, c->cdb[0] == 0x41 ? 7 : 10, -1);
		c->nblk = (uint32_t)(cap - c->lba);
	}
	if ((uint64_t)c->nblk > (1ull << 30) / lu->bs)
		return bad_cdb(c, c->cdb[0] == 0x41 ? 7 : 10, -1);
	if (check_range(c))
		return -1;
	return medium_out_len(c, ndob ? 0 : lu->bs);
}

static void
exec_write_same(scsi_cmd *c)
{
	scsi_lu *lu = LU(c);
	uint64_t off = c->lba * lu->bs, len = (uint64_t)c->nblk * lu->bs;
	/* UNMAP=1 deallocates whatever the block holds, as tgt and LIO do and libiscsi's
	 * WriteSame*.UnmapUntilEnd expect (LBPRZ: the blocks then read as zeros) */
	int zero = c->flag2 || c->flag1;
	if (!zero) {
		zero = 1;
		for (uint32_t i = 0; i < lu->bs; i++)
			if (c->dout[i]) {
				zero = 0;
				break;
			}
	}
	if (zero) {
		int op = c->flag1 ? VIO_TRIM : VIO_ZERO;
		int fua = !lu->wce;
		return submit_one(c, op, fua ? VIO_FUA : 0, off, len, NULL, NULL);
	}
	/* a pattern: one shared 1 MiB buffer, many writes */
	uint32_t chunk = 1u << 20;
	c->work = xmalloc_aligned(chunk);
	for (uint32_t i = 0; i < chunk; i += lu->bs)
		memcpy(c->work + i, c->dout, lu->bs);
	int n = (int)((len + chunk - 1) / chunk);
	vio_req *rs = reqs_alloc(c, n);
	for (int i = 0; i < n; i++) {
		rs[i].op = VIO_WRITE;
		rs[i].flags = lu->wce ? 0 : VIO_FUA;
		rs[i].off = off + (uint64_t)i * chunk;
		rs[i].len = MIN((uint64_t)chunk, len - (uint64_t)i * chunk);
		rs[i].buf = c->work;
	}
	submit_all(c, NULL);
}

/* UNMAP */
static int
prep_unmap(scsi_cmd *c)
{
	if (c->cdb[1] & 0x01)
		return bad_cdb(c, 1, 0); /* ANCHOR */
	c->spdtl = g16(c->cdb + 7);
	c->need_out = (int)MIN(c->spdtl, c->edtl);
	if (c->edtl > c->spdtl) {
		c->resid_under = 1;
		c->resid = c->edtl - c->spdtl;
	} else if (c->edtl < c->spdtl) {
		c->resid_over = 1;
		c->resid = c->spdtl - c->edtl;
	}
	return 0;
}

static void
exec_unmap(scsi_cmd *c)
{
	scsi_lu *lu = LU(c);
	uint32_t n = (uint32_t)c->need_out;
	const uint8_t *p = c->dout;
	if (n == 0)
		return finish(c);
	if (n < 8) {
		sense_err(c, SK_ILLEGAL_REQUEST, 0x1a, 0x00);
		return finish(c);
	}
	uint32_t dl = g16(p), bdl = g16(p + 2);
	if (dl + 2 > n || (dl != 0 && dl != bdl + 6 && dl + 2 < bdl + 8)) {
		bad_param(c, 0, -1);
		return finish(c);
	}
	if (bdl % 16 != 0 || bdl + 8 > n) {
		bad_param(c, 2, -1);
		return finish(c);
	}
	uint32_t nd = bdl / 16;
	if (nd > 256) {
		bad_param(c, 2, -1);
		return finish(c);
	}
	uint64_t cap = lu->size / lu->bs;
	int use = 0;
	for (uint32_t i = 0; i < nd; i++) {
		uint64_t lba = g64(p + 8 + 16 * i);
		uint32_t cnt = g32(p + 16 + 16 * i);
		if (lba > cap || cnt > cap - lba) {
			lba_range(c, lba);
			return finish(c);
		}
		use += cnt != 0;
	}
	if (use == 0)
		return finish(c);
	vio_req *rs = reqs_alloc(c, use);
	int k = 0;
	for (uint32_t i = 0; i < nd; i++) {
		uint64_t lba = g64(p + 8 + 16 * i);
		uint32_t cnt = g32(p + 16 + 16 * i);
		if (cnt == 0)
			continue;
		rs[k].op = VIO_TRIM;
		rs[k].off = lba * lu->bs;
		rs[k].len = (uint64_t)cnt * lu->bs;
		k++;
	}
	submit_all(c, NULL);
}

/* GET LBA STATUS */
#define LBAS_EXT_MAX 512
#define LBAS_WINDOW (64u << 20)

static int
prep_get_lba_status(scsi_cmd *c)
{
	scsi_lu *lu = LU(c);
	c->lba = g64(c->cdb + 2);
	c->spdtl = g32(c->cdb + 10);
	if (c->lba >= lu->size / lu->bs)
		return lba_range(c, c->lba);
	return 0;
}

static void
lbas_then(scsi_cmd *c)
{
	scsi_lu *lu = LU(c);
	vio_req *r = &c->reqs[0];
	uint32_t alloc = c->spdtl;
	size_t maxd = alloc >= 8 ? (alloc - 8) / 16 : 0;
	uint8_t *d = din_alloc(c, 8 + 16 * (size_t)LBAS_EXT_MAX);
	size_t nd = 0;
	uint64_t cap = lu->size / lu->bs;
	uint64_t next = c->lba;
	for (size_t i = 0; i < r->ext_n && nd < LBAS_EXT_MAX; i++) {
		const ce_extent *e = &r->ext[i];
		uint64_t s = e->offset / lu->bs, end = (e->offset + e->length + lu->bs - 1) / lu->bs;
		if (s < next)
			s = next; /* the first descriptor starts at the requested LBA */
		if (end > cap)
			end = cap;
		if (end <= s)
			continue;
		uint8_t st = (e->flags & CE_EXTENT_HOLE) ? 1 : 0;
		if (nd > 0 && d[8 + 16 * (nd - 1) + 12] == st && g64(d + 8 + 16 * (nd - 1)) +
		    g32(d + 8 + 16 * (nd - 1) + 8) == s && (uint64_t)g32(d + 8 + 16 * (nd - 1) + 8) + (end - s) <= 0xffffffffull) {
			p32(d + 8 + 16 * (nd - 1) + 8, g32(d + 8 + 16 * (nd - 1) + 8) + (uint32_t)(end - s));
		} else {
			uint64_t cnt = MIN(end - s, (uint64_t)0xffffffffu);
			p64(d + 8 + 16 * nd, s);
			p32(d + 8 + 16 * nd + 8, (uint32_t)cnt);
			d[8 + 16 * nd + 12] = st;
			nd++;
			end = s + cnt;
		}
		next = end;
	}
	(void)maxd;
	p32(d, (uint32_t)(4 + 16 * nd));
	din_ready(c, (uint32_t)MIN((size_t)alloc, 8 + 16 * nd));
	finish(c);
}

static void
exec_get_lba_status(scsi_cmd *c)
{
	scsi_lu *lu = LU(c);
	if (c->spdtl == 0)
		return finish(c);
	uint64_t off = c->lba * lu->bs;
	/* a bounded window: qemu asks before reads, and the map's cost grows with its range
	 * (the 1 GiB window this had made qemu's 1 MiB reads ten times slower than over NBD);
	 * fewer descriptors than the rest of the LU is what SBC-3 allows */
	uint64_t len = MIN(lu->size - off, (uint64_t)LBAS_WINDOW);
	size_t want = c->spdtl > 8 ? (c->spdtl - 8) / 16 + 1 : 1;
	vio_req *r = reqs_alloc(c, 1);
	r->op = VIO_MAP;
	r->off = off;
	r->len = len;
	r->ext_max = MIN(want, (size_t)LBAS_EXT_MAX);
	r->ext = xcalloc(r->ext_max, sizeof(ce_extent));
	submit_all(c, lbas_then);
}

/* LOG SENSE (SPC-4 6.6): the supported log pages (00h) and the Logical Block Provisioning log
 * page (0Ch, SBC-3 6.4.5), whose counts are in threshold sets (TP_SET, VPD B2's THRESHOLD
 * EXPONENT): the pool's free space (the resource the 1C/02 threshold watches; SCOPE 10b, shared
 * with the pool's other volumes) and the blocks this LU's tree references (SCOPE 01b; committed
 * txgs only, as `cask vol list`). No threshold or saved values: PC is ignored, SP is refused by
 * the usage map. */
typedef struct lbp_counts {
	const char *vol;     /* "vol" or "vol@snap" */
	uint64_t free_b, used_b;
} lbp_counts;

static int
lbp_counts_cb(ce_pool *p, void *arg)
{
	lbp_counts *q = arg;
	ce_pool_stat st;
	int err = ce_pool_stat_get(p, &st);
	if (err != 0)
		return err;
	q->free_b = st.free;
	const char *at = strchr(q->vol, '@');
	if (at == NULL) {
		ce_vol_info vi;
		if ((err = ce_vol_info_get(p, q->vol, &vi)) == 0)
			q->used_b = vi.referenced;
		return err;
	}
	char vname[256];
	snprintf(vname, sizeof(vname), "%.*s", (int)(at - q->vol), q->vol);
	ce_snap_info *si;
	size_t n;
	if ((err = ce_snap_list(p, vname, &si, &n)) != 0)
		return err;
	for (size_t i = 0; i < n; i++)
		if (strcmp(si[i].name, q->vol) == 0)
			q->used_b = si[i].referenced;
	free(si);
	return 0;
}

/* one resource count parameter of page 0Ch */
static size_t
lbp_param(uint8_t *d, uint16_t code, uint64_t sets, uint8_t scope)
{
	p16(d, code);
	d[2] = 0x23; /* DU 0, TSD 1 (never saved), ETC 0, TMC 0, FORMAT AND LINKING 11b (binary list) */
	d[3] = 8;
	p32(d + 4, sets > 0xffffffffull ? 0xffffffffu : (uint32_t)sets);
	d[8] = scope;
	return 12;
}

static void
exec_log_sense(scsi_cmd *c)
{
	scsi_lu *lu = LU(c);
	int page = c->cdb[2] & 0x3f, sub = c->cdb[3];
	uint16_t ptr = g16(c->cdb + 5);
	uint32_t alloc = g16(c->cdb + 7);
	uint8_t *d = din_alloc(c, 64);
	size_t n = 4;
	if (page == 0x00 && (sub == 0x00 || sub == 0xff)) {
		if (ptr != 0) {
			bad_cdb(c, 5, -1); /* the list has no parameter codes */
			return finish(c);
		}
		if (sub == 0x00) {
			d[n++] = 0x00;
			d[n++] = 0x0c;
		} else {
			static const uint8_t pairs[] = { 0x00, 0x00, 0x00, 0xff, 0x0c, 0x00 };
			memcpy(d + n, pairs, sizeof(pairs));
			n += sizeof(pairs);
			d[0] = 0x40; /* SPF */
		}
	} else if (page == 0x0c && sub == 0x00) {
		if (ptr > 0x0002) {
			bad_cdb(c, 5, -1); /* beyond the largest parameter code */
			return finish(c);
		}
		char pool[128];
		const char *slash = strchr(lu->name, '/');
		lbp_counts q = { slash ? slash + 1 : lu->name, 0, 0 };
		int err = -ENOENT;
		if (slash != NULL && (size_t)(slash - lu->name) < sizeof(pool)) {
			snprintf(pool, sizeof(pool), "%.*s", (int)(slash - lu->name), lu->name);
			err = reg_with_pool(pool, lbp_counts_cb, &q);
		}
		if (err != 0) {
			map_vio_error(c, VIO_MAP, err, ce_errcode_of(err));
			return finish(c);
		}
		if (ptr <= 0x0001)
			n += lbp_param(d + n, 0x0001, q.free_b / TP_SET, 0x02);
		n += lbp_param(d + n, 0x0002, (q.used_b + TP_SET - 1) / TP_SET, 0x01);
	} else {
		bad_cdb(c, page == 0x00 || page == 0x0c ? 3 : 2, page == 0x00 || page == 0x0c ? -1 : 5);
		return finish(c);
	}
	d[0] |= (uint8_t)page;
	d[1] = (uint8_t)sub;
	p16(d + 2, (uint16_t)(n - 4));
	din_ready(c, (uint32_t)MIN((size_t)alloc, n));
	finish(c);
}

/* START STOP UNIT, PREVENT ALLOW MEDIUM REMOVAL */
static int
prep_start_stop(scsi_cmd *c)
{
	if (c->cdb[4] & 0x02)
		return bad_cdb(c, 4, 1); /* LOEJ: not removable */
	return 0;
}

static int
prep_prevent(scsi_cmd *c)
{
	if (c->cdb[4] & 0x03)
		return bad_cdb(c, 4, 0);
	return 0;
}

/* SPC-2 RESERVE / RELEASE */
static void
exec_reserve(scsi_cmd *c)
{
	scsi_lu *lu = LU(c);
	pthread_mutex_lock(&lu->lock);
	if (lu->pr_type != 0) {
		int mine = lu->pr_holder == c->nx || (lu->pr_holder == NULL && c->nx->registered);
		if (!mine)
			c->status = SCSI_RESV_CONFLICT;
	} else if (lu->spc2 != NULL && lu->spc2 != c->nx) {
		c->status = SCSI_RESV_CONFLICT;
	} else {
		lu->spc2 = c->nx;
	}
	pthread_mutex_unlock(&lu->lock);
	finish(c);
}

static void
exec_release(scsi_cmd *c)
{
	scsi_lu *lu = LU(c);
	pthread_mutex_lock(&lu->lock);
	if (lu->pr_type == 0 && lu->spc2 == c->nx)
		lu->spc2 = NULL;
	pthread_mutex_unlock(&lu->lock);
	finish(c);
}

/* READ DEFECT DATA 10/12: no defects exist; an empty list in the requested format */
static void
exec_read_defect(scsi_cmd *c)
{
	int twelve = c->cdb[0] == 0xb7;
	uint32_t alloc = twelve ? g32(c->cdb + 6) : g16(c->cdb + 7);
	uint8_t *d = din_alloc(c, 8);
	d[1] = (uint8_t)((twelve ? c->cdb[1] : c->cdb[2]) & 0x1f);
	din_ready(c, MIN(alloc, twelve ? 8u : 4u));
	finish(c);
}

/*
 * COMPARE AND WRITE and OR WRITE(16): read, compare (or OR), write, under the volume's range
 * lock (vio_lock_range, docs/design-vio.md §9): no other request of any handle of the volume
 * (NBD, another session, another LU of the same volume) touches the range between the read and
 * the write, which is what makes them atomic against every other writer. The lock is kept in
 * c->work_then from the grant to rmw_release.
 */
static void
rmw_release(scsi_cmd *c)
{
	vio_unlock((vio_lock *)c->work_then);
	c->work_then = NULL;
	finish(c);
}

static void
rmw_done_req(vio_req *r)
{
	scsi_cmd *c = r->udata;
	if (r->status != 0)
		map_vio_error(c, r->op, r->status, r->code);
	rmw_release(c);
}

static void
rmw_read_done(vio_req *r)
{
	scsi_cmd *c = r->udata;
	scsi_lu *lu = LU(c);
	if (r->status != 0) {
		map_vio_error(c, r->op, r->status, r->code);
		return rmw_release(c);
	}
	uint64_t len = (uint64_t)c->nblk * lu->bs;
	const uint8_t *wdata = c->dout;
	if (c->cdb[0] == 0x89) {
		for (uint64_t i = 0; i < len; i++)
			if (c->work[i] != c->dout[i]) {
				sense_full(c, SK_MISCOMPARE, 0x1d, 0x00, 1, i, 0, 0, 0, -1);
				return rmw_release(c);
			}
		wdata = c->dout + len;
	} else {
		for (uint64_t i = 0; i < len; i++)
			c->work[i] |= c->dout[i];
		wdata = c->work;
	}
	if (atomic_load(&c->cancel)) {
		set_withdrawn(c); /* compared, nothing written: the retry compares again */
		return rmw_release(c);
	}
	r->op = VIO_WRITE;
	r->flags = ((c->fua || !lu->wce) ? VIO_FUA : 0) | VIO_LOCKED;
	r->buf = (void *)wdata;
	r->done = rmw_done_req;
	vio_submit(lu->vol, r);
}

/* The range lock is held (inside vio_lock_range or on a vio worker). */
static void
rmw_granted(vio_lock *lk, void *arg)
{
	scsi_cmd *c = arg;
	scsi_lu *lu = LU(c);
	uint64_t len = (uint64_t)c->nblk * lu->bs;
	c->work_then = lk;
	if (atomic_load(&c->cancel)) {
		set_withdrawn(c);
		return rmw_release(c);
	}
	c->work = xmalloc_aligned(len);
	vio_req *r = reqs_alloc(c, 1);
	r->op = VIO_READ;
	r->flags = VIO_LOCKED;
	r->lock = lk;
	r->off = c->lba * lu->bs;
	r->len = len;
	r->buf = c->work;
	r->done = rmw_read_done;
	vio_submit(lu->vol, r);
}

static int
prep_rmw(scsi_cmd *c)
{
	scsi_lu *lu = LU(c);
	c->lba = g64(c->cdb + 2);
	int caw = c->cdb[0] == 0x89;
	c->nblk = caw ? c->cdb[13] : g32(c->cdb + 10);
	if (c->cdb[1] & 0xe0)
		return bad_cdb(c, 1, 7); /* WRPROTECT / ORPROTECT */
	if (!caw && (uint64_t)c->nblk * lu->bs > SCSI_MAX_XFER)
		return bad_cdb(c, 10, -1);
	if (check_range(c))
		return -1;
	c->fua = (c->cdb[1] & 0x08) != 0;
	if (caw && c->nblk == 0 && c->edtl != 0)
		return bad_cdb(c, 13, -1); /* data for blocks the CDB does not name: a length over the maximum */
	return medium_out_len(c, c->nblk * lu->bs * (caw ? 2 : 1));
}

static void
exec_rmw(scsi_cmd *c)
{
	scsi_lu *lu = LU(c);
	if (c->nblk == 0)
		return finish(c);
	int err = vio_lock_range(lu->vol, c->lba * lu->bs, (uint64_t)c->nblk * lu->bs, rmw_granted, c);
	if (err != 0) {
		map_vio_error(c, VIO_WRITE, err, ce_errcode_of(err));
		finish(c);
	}
}

/* REPORT SUPPORTED OPERATION CODES, REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS */
static void exec_rsoc(scsi_cmd *c);
static void exec_rstmf(scsi_cmd *c);
static int prep_rsoc(scsi_cmd *c);
static void exec_prin(scsi_cmd *c);
static int prep_prin(scsi_cmd *c);
static void exec_prout(scsi_cmd *c);
static int prep_prout(scsi_cmd *c);

#define F 0xff
static const scsi_op optab[] = {
	{ 0x00, -1, "TEST UNIT READY", prep_none, exec_good, 6, SCSI_DIR_NONE, PR_A, OP_MEDIUM | OP_NOEFFECT, { 0x00, 0, 0, 0, 0, 0 } },
	{ 0x03, -1, "REQUEST SENSE", prep_alloc_in, exec_request_sense, 6, SCSI_DIR_IN, PR_A, OP_UA_OK | OP_SPC2_OK, { 0x03, 0x01, 0, 0, F, 0 } },
	{ 0x08, -1, "READ(6)", prep_read, exec_read, 6, SCSI_DIR_IN, PR_R, OP_MEDIUM | OP_NOEFFECT, { 0x08, 0x1f, F, F, F, 0 } },
	{ 0x0a, -1, "WRITE(6)", prep_write, exec_write, 6, SCSI_DIR_OUT, PR_W, OP_MEDIUM | OP_WRITES, { 0x0a, 0x1f, F, F, F, 0 } },
	{ 0x12, -1, "INQUIRY", prep_alloc_in, exec_inquiry, 6, SCSI_DIR_IN, PR_A, OP_UA_OK | OP_SPC2_OK, { 0x12, 0x01, F, F, F, 0 } },
	{ 0x15, -1, "MODE SELECT(6)", prep_mode_select, exec_mode_select, 6, SCSI_DIR_OUT, PR_W, 0, { 0x15, 0x11, 0, 0, F, 0 } },
	{ 0x16, -1, "RESERVE(6)", prep_none, exec_reserve, 6, SCSI_DIR_NONE, PR_S, 0, { 0x16, 0, 0, 0, 0, 0 } },
	{ 0x17, -1, "RELEASE(6)", prep_none, exec_release, 6, SCSI_DIR_NONE, PR_S, OP_SPC2_OK, { 0x17, 0, 0, 0, 0, 0 } },
	{ 0x1a, -1, "MODE SENSE(6)", prep_alloc_in, exec_mode_sense, 6, SCSI_DIR_IN, PR_W, 0, { 0x1a, 0x08, F, F, F, 0 } },
	{ 0x1b, -1, "START STOP UNIT", prep_start_stop, exec_good, 6, SCSI_DIR_NONE, PR_S, 0, { 0x1b, 0x01, 0, 0x0f, 0xf7, 0 } },
	{ 0x1e, -1, "PREVENT ALLOW MEDIUM REMOVAL", prep_prevent, exec_good, 6, SCSI_DIR_NONE, PR_S, 0, { 0x1e, 0, 0, 0, 0x03, 0 } },
	{ 0x25, -1, "READ CAPACITY(10)", prep_none, exec_read_capacity10, 10, SCSI_DIR_IN, PR_A, OP_MEDIUM | OP_NOEFFECT, { 0x25, 0, F, F, F, F, 0, 0, 0x01, 0 } },
	{ 0x28, -1, "READ(10)", prep_read, exec_read, 10, SCSI_DIR_IN, PR_R, OP_MEDIUM | OP_NOEFFECT, { 0x28, 0xfe, F, F, F, F, 0x1f, F, F, 0 } },
	{ 0x2a, -1, "WRITE(10)", prep_write, exec_write, 10, SCSI_DIR_OUT, PR_W, OP_MEDIUM | OP_WRITES, { 0x2a, 0xfa, F, F, F, F, 0x1f, F, F, 0 } },
	{ 0x2e, -1, "WRITE AND VERIFY(10)", prep_write, exec_write, 10, SCSI_DIR_OUT, PR_W, OP_MEDIUM | OP_WRITES, { 0x2e, 0xf6, F, F, F, F, 0x1f, F, F, 0 } },
	{ 0x2f, -1, "VERIFY(10)", prep_verify, exec_verify, 10, SCSI_DIR_OUT, PR_R, OP_MEDIUM | OP_NOEFFECT, { 0x2f, 0xf6, F, F, F, F, 0x1f, F, F, 0 } },
	{ 0x34, -1, "PRE-FETCH(10)", prep_prefetch, exec_prefetch, 10, SCSI_DIR_NONE, PR_R, OP_MEDIUM | OP_NOEFFECT, { 0x34, 0x02, F, F, F, F, 0x1f, F, F, 0 } },
	{ 0x35, -1, "SYNCHRONIZE CACHE(10)", prep_sync, exec_sync, 10, SCSI_DIR_NONE, PR_W, OP_MEDIUM | OP_NOEFFECT, { 0x35, 0x06, F, F, F, F, 0x1f, F, F, 0 } },
	{ 0x41, -1, "WRITE SAME(10)", prep_write_same, exec_write_same, 10, SCSI_DIR_OUT, PR_W, OP_MEDIUM | OP_WRITES, { 0x41, 0xf8, F, F, F, F, 0x1f, F, F, 0 } },
	{ 0x42, -1, "UNMAP", prep_unmap, exec_unmap, 10, SCSI_DIR_OUT, PR_W, OP_MEDIUM | OP_WRITES, { 0x42, 0x01, 0, 0, 0, 0, 0x1f, F, F, 0 } },
	{ 0x4d, -1, "LOG SENSE", prep_none, exec_log_sense, 10, SCSI_DIR_IN, PR_A, 0, { 0x4d, 0, F, F, 0, F, F, F, F, 0 } },
	{ 0x55, -1, "MODE SELECT(10)", prep_mode_select, exec_mode_select, 10, SCSI_DIR_OUT, PR_W, 0, { 0x55, 0x11, 0, 0, 0, 0, 0, F, F, 0 } },
	{ 0x56, -1, "RESERVE(10)", prep_none, exec_reserve, 10, SCSI_DIR_NONE, PR_S, 0, { 0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0 } },
	{ 0x57, -1, "RELEASE(10)", prep_none, exec_release, 10, SCSI_DIR_NONE, PR_S, OP_SPC2_OK, { 0x57, 0, 0, 0, 0, 0, 0, 0, 0, 0 } },
	{ 0x5a, -1, "MODE SENSE(10)", prep_alloc_in, exec_mode_sense, 10, SCSI_DIR_IN, PR_W, 0, { 0x5a, 0x18, F, F, 0, 0, 0, F, F, 0 } },
	{ 0x5e, 0x00, "PERSISTENT RESERVE IN / READ KEYS", prep_prin, exec_prin, 10, SCSI_DIR_IN, PR_A, 0, { 0x5e, 0x1f, 0, 0, 0, 0, 0, F, F, 0 } },
	{ 0x5e, 0x01, "PERSISTENT RESERVE IN / READ RESERVATION", prep_prin, exec_prin, 10, SCSI_DIR_IN, PR_A, 0, { 0x5e, 0x1f, 0, 0, 0, 0, 0, F, F, 0 } },
	{ 0x5e, 0x02, "PERSISTENT RESERVE IN / REPORT CAPABILITIES", prep_prin, exec_prin, 10, SCSI_DIR_IN, PR_A, 0, { 0x5e, 0x1f, 0, 0, 0, 0, 0, F, F, 0 } },
	{ 0x5e, 0x03, "PERSISTENT RESERVE IN / READ FULL STATUS", prep_prin, exec_prin, 10, SCSI_DIR_IN, PR_A, 0, { 0x5e, 0x1f, 0, 0, 0, 0, 0, F, F, 0 } },
	{ 0x5f, 0x00, "PERSISTENT RESERVE OUT / REGISTER", prep_prout, exec_prout, 10, SCSI_DIR_OUT, PR_S, 0, { 0x5f, 0x1f, F, 0, 0, F, F, F, F, 0 } },
	{ 0x5f, 0x01, "PERSISTENT RESERVE OUT / RESERVE", prep_prout, exec_prout, 10, SCSI_DIR_OUT, PR_S, 0, { 0x5f, 0x1f, F, 0, 0, F, F, F, F, 0 } },
	{ 0x5f, 0x02, "PERSISTENT RESERVE OUT / RELEASE", prep_prout, exec_prout, 10, SCSI_DIR_OUT, PR_S, 0, { 0x5f, 0x1f, F, 0, 0, F, F, F, F, 0 } },
	{ 0x5f, 0x03, "PERSISTENT RESERVE OUT / CLEAR", prep_prout, exec_prout, 10, SCSI_DIR_OUT, PR_S, 0, { 0x5f, 0x1f, F, 0, 0, F, F, F, F, 0 } },
	{ 0x5f, 0x04, "PERSISTENT RESERVE OUT / PREEMPT", prep_prout, exec_prout, 10, SCSI_DIR_OUT, PR_S, 0, { 0x5f, 0x1f, F, 0, 0, F, F, F, F, 0 } },
	{ 0x5f, 0x05, "PERSISTENT RESERVE OUT / PREEMPT AND ABORT", prep_prout, exec_prout, 10, SCSI_DIR_OUT, PR_S, 0, { 0x5f, 0x1f, F, 0, 0, F, F, F, F, 0 } },
	{ 0x5f, 0x06, "PERSISTENT RESERVE OUT / REGISTER AND IGNORE EXISTING KEY", prep_prout, exec_prout, 10, SCSI_DIR_OUT, PR_S, 0, { 0x5f, 0x1f, F, 0, 0, F, F, F, F, 0 } },
	{ 0x5f, 0x07, "PERSISTENT RESERVE OUT / REGISTER AND MOVE", prep_prout, exec_prout, 10, SCSI_DIR_OUT, PR_S, 0, { 0x5f, 0x1f, F, 0, 0, F, F, F, F, 0 } },
	{ 0x37, -1, "READ DEFECT DATA(10)", prep_none, exec_read_defect, 10, SCSI_DIR_IN, PR_R, OP_MEDIUM | OP_NOEFFECT, { 0x37, 0, 0x1f, 0, 0, 0, 0, F, F, 0 } },
	{ 0x89, -1, "COMPARE AND WRITE", prep_rmw, exec_rmw, 16, SCSI_DIR_OUT, PR_W, OP_MEDIUM | OP_WRITES, { 0x89, 0xf8, F, F, F, F, F, F, F, F, 0, 0, 0, F, 0x1f, 0 } },
	{ 0x8b, -1, "OR WRITE(16)", prep_rmw, exec_rmw, 16, SCSI_DIR_OUT, PR_W, OP_MEDIUM | OP_WRITES, { 0x8b, 0xf8, F, F, F, F, F, F, F, F, F, F, F, F, 0x1f, 0 } },
	{ 0x88, -1, "READ(16)", prep_read, exec_read, 16, SCSI_DIR_IN, PR_R, OP_MEDIUM | OP_NOEFFECT, { 0x88, 0xfe, F, F, F, F, F, F, F, F, F, F, F, F, 0x1f, 0 } },
	{ 0x8a, -1, "WRITE(16)", prep_write, exec_write, 16, SCSI_DIR_OUT, PR_W, OP_MEDIUM | OP_WRITES, { 0x8a, 0xfa, F, F, F, F, F, F, F, F, F, F, F, F, 0x1f, 0 } },
	{ 0x8e, -1, "WRITE AND VERIFY(16)", prep_write, exec_write, 16, SCSI_DIR_OUT, PR_W, OP_MEDIUM | OP_WRITES, { 0x8e, 0xf6, F, F, F, F, F, F, F, F, F, F, F, F, 0x1f, 0 } },
	{ 0x8f, -1, "VERIFY(16)", prep_verify, exec_verify, 16, SCSI_DIR_OUT, PR_R, OP_MEDIUM | OP_NOEFFECT, { 0x8f, 0xf6, F, F, F, F, F, F, F, F, F, F, F, F, 0x1f, 0 } },
	{ 0x90, -1, "PRE-FETCH(16)", prep_prefetch, exec_prefetch, 16, SCSI_DIR_NONE, PR_R, OP_MEDIUM | OP_NOEFFECT, { 0x90, 0x02, F, F, F, F, F, F, F, F, F, F, F, F, 0x1f, 0 } },
	{ 0x91, -1, "SYNCHRONIZE CACHE(16)", prep_sync, exec_sync, 16, SCSI_DIR_NONE, PR_W, OP_MEDIUM | OP_NOEFFECT, { 0x91, 0x06, F, F, F, F, F, F, F, F, F, F, F, F, 0x1f, 0 } },
	{ 0x93, -1, "WRITE SAME(16)", prep_write_same, exec_write_same, 16, SCSI_DIR_OUT, PR_W, OP_MEDIUM | OP_WRITES, { 0x93, 0xf9, F, F, F, F, F, F, F, F, F, F, F, F, 0x1f, 0 } },
	{ 0x9e, 0x10, "READ CAPACITY(16)", prep_none, exec_read_capacity16, 16, SCSI_DIR_IN, PR_A, OP_MEDIUM | OP_NOEFFECT, { 0x9e, 0x1f, F, F, F, F, F, F, F, F, F, F, F, F, 0x01, 0 } },
	{ 0x9e, 0x12, "GET LBA STATUS", prep_get_lba_status, exec_get_lba_status, 16, SCSI_DIR_IN, PR_R, OP_MEDIUM | OP_NOEFFECT, { 0x9e, 0x1f, F, F, F, F, F, F, F, F, F, F, F, F, 0, 0 } },
	{ 0xa0, -1, "REPORT LUNS", prep_report_luns, exec_report_luns, 12, SCSI_DIR_IN, PR_A, OP_UA_OK | OP_SPC2_OK, { 0xa0, 0, F, 0, 0, 0, F, F, F, F, 0, 0 } },
	{ 0xa3, 0x0c, "REPORT SUPPORTED OPERATION CODES", prep_rsoc, exec_rsoc, 12, SCSI_DIR_IN, PR_A, 0, { 0xa3, 0x1f, 0x87, F, F, F, F, F, F, F, 0, 0 } },
	{ 0xa3, 0x0d, "REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS", prep_alloc_in, exec_rstmf, 12, SCSI_DIR_IN, PR_A, 0, { 0xa3, 0x1f, 0x80, 0, 0, 0, F, F, F, F, 0, 0 } },
	{ 0xa8, -1, "READ(12)", prep_read, exec_read, 12, SCSI_DIR_IN, PR_R, OP_MEDIUM | OP_NOEFFECT, { 0xa8, 0xfe, F, F, F, F, F, F, F, F, 0x1f, 0 } },
	{ 0xaa, -1, "WRITE(12)", prep_write, exec_write, 12, SCSI_DIR_OUT, PR_W, OP_MEDIUM | OP_WRITES, { 0xaa, 0xfa, F, F, F, F, F, F, F, F, 0x1f, 0 } },
	{ 0xae, -1, "WRITE AND VERIFY(12)", prep_write, exec_write, 12, SCSI_DIR_OUT, PR_W, OP_MEDIUM | OP_WRITES, { 0xae, 0xf6, F, F, F, F, F, F, F, F, 0x1f, 0 } },
	{ 0xaf, -1, "VERIFY(12)", prep_verify, exec_verify, 12, SCSI_DIR_OUT, PR_R, OP_MEDIUM | OP_NOEFFECT, { 0xaf, 0xf6, F, F, F, F, F, F, F, F, 0x1f, 0 } },
	{ 0xb7, -1, "READ DEFECT DATA(12)", prep_none, exec_read_defect, 12, SCSI_DIR_IN, PR_R, OP_MEDIUM | OP_NOEFFECT, { 0xb7, 0x1f, F, F, F, F, F, F, F, F, 0, 0 } },
};
#undef F

static int
has_sa(uint8_t opcode)
{
	return opcode == 0x9e || opcode == 0xa3 || opcode == 0x5e || opcode == 0x5f;
}

static const scsi_op *
op_find(uint8_t opcode, int sa)
{
	for (size_t i = 0; i < ARRAY_SIZE(optab); i++)
		if (optab[i].opcode == opcode && (optab[i].sa < 0 || optab[i].sa == sa))
			return &optab[i];
	return NULL;
}

static int
opcode_known(uint8_t opcode)
{
	for (size_t i = 0; i < ARRAY_SIZE(optab); i++)
		if (optab[i].opcode == opcode)
			return 1;
	return 0;
}

static int
prep_rsoc(scsi_cmd *c)
{
	int opt = c->cdb[2] & 7;
	if (opt > 3)
		return bad_cdb(c, 2, 2);
	if (opt == 1 && has_sa(c->cdb[3]))
		return bad_cdb(c, 3, -1); /* that opcode has service actions: option 2 or 3 */
	if (opt == 2 && !has_sa(c->cdb[3]) && opcode_known(c->cdb[3]))
		return bad_cdb(c, 3, -1);
	return 0;
}

static void
exec_rsoc(scsi_cmd *c)
{
	int rctd = (c->cdb[2] & 0x80) != 0, opt = c->cdb[2] & 7;
	uint32_t alloc = g32(c->cdb + 6);
	uint8_t *d = din_alloc(c, 4 + ARRAY_SIZE(optab) * 32 + 64);
	size_t n;
	if (opt == 0) {
		n = 4;
		for (size_t i = 0; i < ARRAY_SIZE(optab); i++) {
			const scsi_op *o = &optab[i];
			d[n] = o->opcode;
			if (o->sa >= 0) {
				p16(d + n + 2, (uint16_t)o->sa);
				d[n + 5] = 0x01; /* SERVACTV */
			}
			if (rctd)
				d[n + 5] |= 0x02; /* CTDP */
			p16(d + n + 6, o->cdb_len);
			n += 8;
			if (rctd) {
				p16(d + n, 0x0a);
				p32(d + n + 4, 0); /* nominal: not specified */
				p32(d + n + 8, 30);
				n += 12;
			}
		}
		p32(d, (uint32_t)(n - 4));
	} else {
		uint8_t opc = c->cdb[3];
		int sa = g16(c->cdb + 4);
		const scsi_op *o = NULL;
		for (size_t i = 0; i < ARRAY_SIZE(optab); i++) {
			const scsi_op *x = &optab[i];
			if (x->opcode != opc)
				continue;
			if (opt == 1 || (opt == 3 && x->sa < 0) || x->sa == sa) {
				o = x;
				break;
			}
		}
		if (opt == 3 && o != NULL && o->sa >= 0 && o->sa != sa)
			o = NULL;
		memset(d, 0, 4);
		n = 4;
		if (o == NULL) {
			d[1] = 0x01; /* SUPPORT: not supported */
		} else {
			d[1] = 0x03 | (rctd ? 0x80 : 0); /* supported in conformance with a standard */
			p16(d + 2, o->cdb_len);
			memcpy(d + 4, o->usage, o->cdb_len);
			if (o->sa >= 0)
				d[5] = (uint8_t)o->sa; /* the service action byte reads as itself */
			n = 4 + o->cdb_len;
			if (rctd) {
				p16(d + n, 0x0a);
				p32(d + n + 8, 30);
				n += 12;
			}
		}
	}
	din_ready(c, (uint32_t)MIN((size_t)alloc, n));
	finish(c);
}

static void
exec_rstmf(scsi_cmd *c)
{
	uint32_t alloc = g32(c->cdb + 6);
	int repd = (c->cdb[2] & 0x80) != 0;
	uint8_t *d = din_alloc(c, 16);
	d[0] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02; /* ATS, ATSS, CACAS=0, CTSS, LURS, TRS (warm) */
	d[0] = 0x80 | 0x40 | 0x10 | 0x08 | 0x02;
	size_t n = 4;
	if (repd) {
		d[3] = 0x0c;
		n = 16;
	}
	din_ready(c, (uint32_t)MIN((size_t)alloc, n));
	finish(c);
}

/* ---- persistent reservations (shared by every nexus; with APTPL kept in the pool, below) ---- */
enum { PRT_WE = 1, PRT_EA = 3, PRT_WERO = 5, PRT_EARO = 6, PRT_WEAR = 7, PRT_EAAR = 8 };

static int
pr_all_reg(int t)
{
	return t == PRT_WEAR || t == PRT_EAAR;
}
static int
pr_reg_only(int t)
{
	return t == PRT_WERO || t == PRT_EARO;
}
static int
pr_valid_type(int t)
{
	return t == 1 || t == 3 || t == 5 || t == 6 || t == 7 || t == 8;
}


/*
 * ---- keeping the PR state: across the LU's close (memory) and, with
 * APTPL, in the pool (the dataset attribute object, namespace
 * CE_ATTR_NS_ISCSI_PR; docs/on-disk-format.md §4.9) ----
 *
 * The state is serialized to attribute records: key 1 once (u32
 * PRgeneration, u8 type, u8 APTPL, u16 the holder's index among the key-2
 * records or 0xffff), key 2 per registration (u64 key, u16 N, N bytes of
 * the initiator port name). The same records are kept in memory when the
 * last session of an LU ends (a registration outlives its I_T nexus, SPC-4
 * §5.14.3) and written to the pool while APTPL is set; an LU opening takes
 * the memory copy, else the pool's.
 */
enum { PRA_STATE = 1, PRA_REG = 2 };
#define PRA_NOHOLDER 0xffffu

typedef struct pr_kept {
	struct pr_kept *next;
	uint64_t pool_guid, ds_guid;
	ce_attr *a;
	size_t n;
} pr_kept;
static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;
static pr_kept *kept;

/* The LU's PR state as records (lu->lock held); *n 0 when there is nothing to keep. */
static ce_attr *
pr_serialize_locked(scsi_lu *lu, size_t *n)
{
	size_t nreg = 0;
	for (scsi_nexus *x = lu->nexuses; x; x = x->next)
		nreg += x->registered;
	*n = 0;
	if (nreg == 0 && lu->prgen == 0 && !lu->aptpl)
		return NULL;
	ce_attr *a = xcalloc(1 + nreg, sizeof(*a));
	size_t k = 1;
	uint16_t holder = PRA_NOHOLDER;
	for (scsi_nexus *x = lu->nexuses; x && k <= CE_ATTR_MAX - 1; x = x->next) {
		if (!x->registered)
			continue;
		size_t pl = strnlen(x->port, 480);
		if (lu->pr_type != 0 && !pr_all_reg(lu->pr_type) && lu->pr_holder == x)
			holder = (uint16_t)(k - 1);
		a[k].key = PRA_REG;
		a[k].len = (uint16_t)(10 + pl);
		p64(a[k].val, x->key);
		p16(a[k].val + 8, (uint16_t)pl);
		memcpy(a[k].val + 10, x->port, pl);
		k++;
	}
	a[0].key = PRA_STATE;
	a[0].len = 16;
	p32(a[0].val, lu->prgen);
	a[0].val[4] = (uint8_t)lu->pr_type;
	a[0].val[5] = (uint8_t)(lu->aptpl != 0);
	p16(a[0].val + 6, holder);
	*n = k;
	return a;
}

/* Rebuild the state from records (before the LU is shared); 0, or -1 if they make no sense. */
static int
pr_deserialize(scsi_lu *lu, const ce_attr *a, size_t n)
{
	if (n == 0 || a[0].key != PRA_STATE || a[0].len < 8)
		return -1;
	int type = a[0].val[4];
	uint16_t holder = g16(a[0].val + 6);
	if (type != 0 && !pr_valid_type(type))
		return -1;
	scsi_nexus *hold = NULL, **tail = &lu->nexuses;
	for (size_t i = 1; i < n; i++) {
		uint16_t pl = a[i].len >= 10 ? g16(a[i].val + 8) : 0;
		if (a[i].key != PRA_REG || a[i].len < 10 || pl == 0 || pl > 480 || (size_t)pl + 10 > a[i].len)
			return -1;
		scsi_nexus *x = xcalloc(1, sizeof(*x));
		x->lu = lu;
		memcpy(x->port, a[i].val + 10, pl);
		x->port[pl] = '\0';
		x->registered = 1;
		x->key = g64(a[i].val);
		*tail = x; /* in the stored order (READ KEYS lists them so) */
		tail = &x->next;
		if (holder == i - 1)
			hold = x;
	}
	if (type != 0 && !pr_all_reg(type) && hold == NULL)
		return -1;
	if (type != 0 && pr_all_reg(type) && n < 2)
		return -1;
	lu->prgen = g32(a[0].val);
	lu->pr_type = type;
	lu->pr_holder = pr_all_reg(type) ? NULL : hold;
	lu->aptpl = a[0].val[5] != 0;
	return 0;
}

static void
pr_clear_nexuses(scsi_lu *lu)
{
	while (lu->nexuses) {
		scsi_nexus *x = lu->nexuses;
		lu->nexuses = x->next;
		free(x);
	}
	lu->prgen = 0;
	lu->pr_type = 0;
	lu->pr_holder = NULL;
	lu->aptpl = 0;
}

/* The records a volume's PR state is read into (pr_load_cb) or written from (pr_save_cb). */
typedef struct pr_io_q {
	const char *vol;
	ce_attr *a;
	size_t n;
} pr_io_q;

static int
pr_load_cb(ce_pool *p, void *arg)
{
	pr_io_q *q = arg;
	return ce_attr_get(p, q->vol, CE_ATTR_NS_ISCSI_PR, &q->a, &q->n);
}

static void
pr_restore(scsi_lu *lu)
{
	if (lu->ds_guid == 0)
		return;
	pthread_mutex_lock(&kept_lock);
	for (pr_kept *k = kept; k; k = k->next)
		if (k->pool_guid == lu->pool_guid && k->ds_guid == lu->ds_guid) {
			if (pr_deserialize(lu, k->a, k->n) != 0)
				pr_clear_nexuses(lu);
			pthread_mutex_unlock(&kept_lock);
			return;
		}
	pthread_mutex_unlock(&kept_lock);
	if (lu->is_snap)
		return;
	char pool[128];
	const char *slash = strchr(lu->name, '/');
	if (slash == NULL)
		return;
	snprintf(pool, sizeof(pool), "%.*s", (int)(slash - lu->name), lu->name);
	pr_io_q q = { slash + 1, NULL, 0 };
	if (reg_with_pool(pool, pr_load_cb, &q) == 0 && q.n > 0) {
		if (pr_deserialize(lu, q.a, q.n) != 0) {
			pr_clear_nexuses(lu);
			log_err("scsi %s: the persistent reservation kept in the pool is damaged; not restored", lu->name);
		} else {
			log_info("scsi %s: persistent reservations restored from the pool (APTPL): generation %u, type %d",
			    lu->name, lu->prgen, lu->pr_type);
		}
	}
	free(q.a);
}

/* The last session of the LU ended: keep its PR state in memory for the next open. */
static void
pr_keep(scsi_lu *lu)
{
	if (lu->ds_guid == 0)
		return;
	size_t n;
	ce_attr *a = pr_serialize_locked(lu, &n); /* the LU is no longer shared */
	pthread_mutex_lock(&kept_lock);
	pr_kept **pp = &kept;
	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->pool_guid == lu->pool_guid && (*pp)->ds_guid == lu->ds_guid)
			break;
	if (*pp == NULL && n > 0) {
		*pp = xcalloc(1, sizeof(**pp));
		(*pp)->pool_guid = lu->pool_guid;
		(*pp)->ds_guid = lu->ds_guid;
	}
	if (*pp != NULL) {
		pr_kept *k = *pp;
		free(k->a);
		k->a = a;
		k->n = n;
		a = NULL;
		if (n == 0) {
			*pp = k->next;
			free(k);
		}
	}
	pthread_mutex_unlock(&kept_lock);
	free(a);
}

static int
pr_save_cb(ce_pool *p, void *arg)
{
	pr_io_q *q = arg;
	return ce_attr_replace(p, q->vol, CE_ATTR_NS_ISCSI_PR, q->a, q->n);
}

/*
 * Write the LU's newest PR state to the pool (APTPL set), or remove it
 * (APTPL cleared), then complete the command: GOOD only once the txg holding
 * it committed. Runs on its own thread (a commit takes a txg; the
 * connection's loop must not wait for it), holding an LU reference.
 */
static void *
pr_persist_thread(void *arg)
{
	scsi_cmd *c = arg;
	scsi_lu *lu = LU(c);
	pthread_mutex_lock(&lu->save_lock);
	pthread_mutex_lock(&lu->lock);
	size_t n = 0;
	ce_attr *a = lu->aptpl ? pr_serialize_locked(lu, &n) : NULL;
	pthread_mutex_unlock(&lu->lock);
	char pool[128];
	const char *slash = strchr(lu->name, '/');
	snprintf(pool, sizeof(pool), "%.*s", slash ? (int)(slash - lu->name) : 0, lu->name);
	pr_io_q q = { slash ? slash + 1 : lu->name, a, n };
	int err = reg_with_pool(pool, pr_save_cb, &q);
	pthread_mutex_unlock(&lu->save_lock);
	free(a);
	if (err != 0) {
		log_err("scsi %s: cannot keep the persistent reservation in the pool: %s", lu->name, err_get());
		scsi_set_sense(c, SK_HARDWARE_ERROR, 0x44, 0x00);
	}
	finish(c);
	scsi_lu_put(lu);
	return NULL;
}

/* Complete a PROUT that changed the state: through the pool when APTPL is or was set. */
static void
pr_done(scsi_cmd *c, int was_aptpl)
{
	scsi_lu *lu = LU(c);
	if (!was_aptpl && !lu->aptpl)
		return finish(c);
	pthread_mutex_lock(&lus_lock);
	lu->refs++;
	pthread_mutex_unlock(&lus_lock);
	pthread_t th;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &at, pr_persist_thread, c) != 0) {
		pthread_attr_destroy(&at);
		scsi_lu_put(lu);
		log_err("scsi %s: no thread to keep the persistent reservation", lu->name);
		scsi_set_sense(c, SK_HARDWARE_ERROR, 0x44, 0x00);
		return finish(c);
	}
	pthread_attr_destroy(&at);
}

static int
prep_prin(scsi_cmd *c)
{
	c->spdtl = g16(c->cdb + 7);
	return 0;
}

static int
pr_holder_is(scsi_lu *lu, scsi_nexus *n)
{
	if (lu->pr_type == 0 || !n->registered)
		return 0;
	return pr_all_reg(lu->pr_type) || lu->pr_holder == n;
}

static void
exec_prin(scsi_cmd *c)
{
	scsi_lu *lu = LU(c);
	uint32_t alloc = c->spdtl;
	int sa = c->cdb[1] & 0x1f;
	pthread_mutex_lock(&lu->lock);
	size_t nreg = 0;
	for (scsi_nexus *x = lu->nexuses; x; x = x->next)
		nreg += x->registered;
	uint8_t *d = din_alloc(c, 64 + nreg * 300);
	size_t n = 8;
	p32(d, lu->prgen);
	switch (sa) {
	case 0:
		for (scsi_nexus *x = lu->nexuses; x; x = x->next)
			if (x->registered) {
				p64(d + n, x->key);
				n += 8;
			}
		p32(d + 4, (uint32_t)(n - 8));
		break;
	case 1:
		if (lu->pr_type != 0) {
			p64(d + 8, pr_all_reg(lu->pr_type) ? 0 : lu->pr_holder->key);
			d[8 + 13] = (uint8_t)lu->pr_type;
			n = 24;
		}
		p32(d + 4, (uint32_t)(n - 8));
		break;
	case 2:
		memset(d, 0, 8);
		p16(d, 8);
		d[2] = 0x10 | 0x04 | (lu->is_snap ? 0 : 0x01); /* CRH, ATP_C, PTPL_C (not on a snapshot) */
		d[3] = 0x80 | 0x10 | (lu->aptpl ? 0x01 : 0); /* TMV, ALLOW COMMANDS 001b, PTPL_A */
		d[4] = 0x80 | 0x20 | 0x08 | 0x02; /* WR_EX_AR, EX_AC_RO, WR_EX_RO... */
		d[4] = 0xea; /* EX_AC_RO(7) WR_EX_RO(6) EX_AC(5) WR_EX(3) ... per SPC-4 bits */
		d[4] = (uint8_t)((1 << 7) | (1 << 6) | (1 << 5) | (1 << 3) | (1 << 1));
		d[5] = 0x01; /* EX_AC_AR */
		n = 8;
		break;
	case 3:
		for (scsi_nexus *x = lu->nexuses; x; x = x->next) {
			if (!x->registered)
				continue;
			p64(d + n, x->key);
			memset(d + n + 8, 0, 16);
			if (pr_holder_is(lu, x)) {
				d[n + 12] = 0x01; /* R_HOLDER */
				d[n + 13] = (uint8_t)lu->pr_type;
			}
			p16(d + n + 18, 1); /* relative target port */
			/* TransportID: iSCSI, format 01 (NAME,i,0xISID) */
			size_t pl = strlen(x->port) + 1;
			size_t tl = (pl + 3) & ~(size_t)3;
			if (tl < 20)
				tl = 20;
			uint8_t *t = d + n + 24;
			memset(t, 0, 4 + tl);
			t[0] = 0x40 | 0x05;
			p16(t + 2, (uint16_t)tl);
			memcpy(t + 4, x->port, pl - 1);
			p32(d + n + 20, (uint32_t)(4 + tl));
			n += 24 + 4 + tl;
		}
		p32(d + 4, (uint32_t)(n - 8));
		break;
	}
	pthread_mutex_unlock(&lu->lock);
	din_ready(c, (uint32_t)MIN((size_t)alloc, n));
	finish(c);
}

typedef struct abort_wait {
	scsi_cmd *c;
	int was_aptpl;
} abort_wait;

/* The transport ended the preempted nexuses' tasks: the PREEMPT AND ABORT completes. */
static void
preempt_aborted(void *arg)
{
	abort_wait *w = arg;
	scsi_cmd *c = w->c;
	int was = w->was_aptpl;
	free(w);
	pr_done(c, was);
}

static int
prep_prout(scsi_cmd *c)
{
	c->spdtl = g32(c->cdb + 5);
	int sa = c->cdb[1] & 0x1f;
	int scope = c->cdb[2] >> 4, type = c->cdb[2] & 0x0f;
	if (sa == 1 || sa == 2 || sa == 4 || sa == 5) {
		if (scope != 0)
			return bad_cdb(c, 2, 7);
		if (!pr_valid_type(type))
			return bad_cdb(c, 2, 3);
	}
	if (sa == 7) { /* REGISTER AND MOVE: 24 bytes, then a TransportID (at most 4 + 480 bytes here) */
		if (!pr_valid_type(type))
			return bad_cdb(c, 2, 3);
		if (c->spdtl < 24 + 24 || c->spdtl > 24 + 4 + 484)
			return sense_err(c, SK_ILLEGAL_REQUEST, 0x1a, 0x00);
	} else if (c->spdtl != 24) {
		return sense_err(c, SK_ILLEGAL_REQUEST, 0x1a, 0x00);
	}
	c->need_out = (int)MIN(c->spdtl, c->edtl);
	if (c->edtl < c->spdtl)
		return sense_err(c, SK_ILLEGAL_REQUEST, 0x1a, 0x00);
	return 0;
}

/*
 * The I_T nexus an iSCSI TransportID names (SPC-4 7.6.4.6): format 01
 * "NAME,i,0xISID" exactly, or format 00 "NAME" when one nexus of that
 * initiator is known; created (unregistered) when the initiator port has
 * not logged in yet. NULL when the TransportID is malformed or ambiguous
 * (lu->lock held).
 */
static scsi_nexus *
nexus_of_transport_id(scsi_lu *lu, const uint8_t *t, size_t avail)
{
	if (avail < 4 || (t[0] & 0x0f) != 0x05)
		return NULL;
	int fmt = t[0] >> 6;
	size_t len = g16(t + 2);
	if (len < 4 || len + 4 > avail || len > 484)
		return NULL;
	char name[490];
	memcpy(name, t + 4, len);
	name[len] = '\0';
	size_t nl = strnlen(name, len);
	if (nl == 0 || nl >= 320)
		return NULL;
	scsi_nexus *hit = NULL;
	if (fmt == 0) {
		int n = 0;
		for (scsi_nexus *x = lu->nexuses; x; x = x->next)
			if (strncasecmp(x->port, name, nl) == 0 && strncmp(x->port + nl, ",i,0x", 5) == 0) {
				hit = x;
				n++;
			}
		return n == 1 ? hit : NULL;
	}
	if (fmt != 1 || strstr(name, ",i,0x") == NULL)
		return NULL;
	for (scsi_nexus *x = lu->nexuses; x; x = x->next)
		if (strcasecmp(x->port, name) == 0)
			return x;
	hit = xcalloc(1, sizeof(*hit));
	hit->lu = lu;
	memcpy(hit->port, name, nl + 1); /* nl < sizeof(hit->port) */
	hit->next = lu->nexuses;
	lu->nexuses = hit;
	return hit;
}

static void
ua_others_registered(scsi_lu *lu, scsi_nexus *except, uint16_t code)
{
	for (scsi_nexus *x = lu->nexuses; x; x = x->next)
		if (x->registered && x != except)
			ua_add_locked(x, code);
}

static void
pr_release_locked(scsi_lu *lu, scsi_nexus *by)
{
	int t = lu->pr_type;
	lu->pr_type = 0;
	lu->pr_holder = NULL;
	if (pr_reg_only(t) || pr_all_reg(t))
		ua_others_registered(lu, by, ASC(0x2a, 0x04));
}

static void
pr_unregister_locked(scsi_lu *lu, scsi_nexus *x, scsi_nexus *by)
{
	x->registered = 0;
	x->key = 0;
	if (lu->pr_type == 0)
		return;
	if (pr_all_reg(lu->pr_type)) {
		int any = 0;
		for (scsi_nexus *y = lu->nexuses; y; y = y->next)
			any |= y->registered;
		if (!any) {
			lu->pr_type = 0;
			lu->pr_holder = NULL;
		}
	} else if (lu->pr_holder == x) {
		int t = lu->pr_type;
		lu->pr_type = 0;
		lu->pr_holder = NULL;
		if (pr_reg_only(t))
			ua_others_registered(lu, by, ASC(0x2a, 0x04));
	}
}

static void
exec_prout(scsi_cmd *c)
{
	scsi_lu *lu = LU(c);
	const uint8_t *p = c->dout;
	int sa = c->cdb[1] & 0x1f, type = c->cdb[2] & 0x0f;
	uint64_t rk = g64(p), sark = g64(p + 8);
	int spec_i_pt = sa != 7 && (p[20] & 0x08) != 0;
	int aptpl = sa == 7 ? (p[17] & 0x01) != 0 : (p[20] & 0x01) != 0;
	scsi_nexus *me = c->nx;
	if (spec_i_pt) {
		bad_param(c, 20, 3);
		return finish(c);
	}
	if (aptpl && lu->is_snap) {
		bad_param(c, 20, 0); /* PTPL_C=0 on a snapshot: nothing of it is written to the pool */
		return finish(c);
	}
	pthread_mutex_lock(&lu->lock);
	int was_aptpl = lu->aptpl;
	scsi_nexus **gone = NULL; /* PREEMPT AND ABORT: the nexuses whose tasks end */
	size_t ngone = 0;
	if (lu->spc2 != NULL && lu->spc2 != me) {
		c->status = SCSI_RESV_CONFLICT;
		goto out;
	}
	if (sa != 6 && me->registered && rk != me->key) {
		c->status = SCSI_RESV_CONFLICT;
		goto out;
	}
	switch (sa) {
	case 0: /* REGISTER */
	case 6: /* REGISTER AND IGNORE EXISTING KEY */
		if (!me->registered) {
			if (sa == 0 && rk != 0) {
				c->status = SCSI_RESV_CONFLICT;
				break;
			}
			if (sark != 0) {
				me->registered = 1;
				me->key = sark;
			}
			lu->prgen++;
		} else {
			if (sark == 0)
				pr_unregister_locked(lu, me, me);
			else
				me->key = sark;
			lu->prgen++;
		}
		lu->aptpl = aptpl; /* SPC-4 5.14.5: the last REGISTER's APTPL bit decides */
		break;
	case 1: /* RESERVE */
		if (!me->registered) {
			c->status = SCSI_RESV_CONFLICT;
			break;
		}
		if (lu->pr_type == 0) {
			lu->pr_type = type;
			lu->pr_holder = pr_all_reg(type) ? NULL : me;
		} else if (!(pr_holder_is(lu, me) && lu->pr_type == type)) {
			c->status = SCSI_RESV_CONFLICT;
		}
		break;
	case 2: /* RELEASE */
		if (!me->registered) {
			c->status = SCSI_RESV_CONFLICT;
			break;
		}
		if (lu->pr_type == 0 || !pr_holder_is(lu, me))
			break;
		if (lu->pr_type != type) {
			scsi_set_sense(c, SK_ILLEGAL_REQUEST, 0x26, 0x04);
			break;
		}
		pr_release_locked(lu, me);
		break;
	case 3: /* CLEAR */
		if (!me->registered) {
			c->status = SCSI_RESV_CONFLICT;
			break;
		}
		for (scsi_nexus *x = lu->nexuses; x; x = x->next) {
			if (x->registered && x != me)
				ua_add_locked(x, ASC(0x2a, 0x03));
			x->registered = 0;
			x->key = 0;
		}
		lu->pr_type = 0;
		lu->pr_holder = NULL;
		lu->prgen++;
		break;
	case 7: { /* REGISTER AND MOVE (SPC-4 5.14.7.8): the holder hands its reservation to another nexus */
		/* not the holder, no reservation, or an all-registrants one (no single holder to move; LIO
		 * answers so too): RESERVATION CONFLICT */
		if (!me->registered || lu->pr_type == 0 || pr_all_reg(lu->pr_type) || lu->pr_holder != me) {
			c->status = SCSI_RESV_CONFLICT;
			break;
		}
		int unreg = (p[17] & 0x02) != 0;
		uint32_t tlen = g32(p + 20);
		if (sark == 0) {
			bad_param(c, 8, -1);
			break;
		}
		if (g16(p + 18) != 1) {
			bad_param(c, 18, -1); /* one target port: relative port 1 */
			break;
		}
		if (tlen < 24 || 24 + (size_t)tlen > c->spdtl) {
			bad_param(c, 20, -1);
			break;
		}
		scsi_nexus *to = nexus_of_transport_id(lu, p + 24, tlen);
		if (to == NULL || to == me) {
			bad_param(c, 24, -1);
			break;
		}
		if (!to->registered)
			to->registered = 1;
		to->key = sark;
		lu->pr_holder = to;
		if (unreg) {
			me->registered = 0;
			me->key = 0;
		}
		lu->prgen++;
		lu->aptpl = (p[17] & 0x01) != 0;
		break;
	}
	case 4: /* PREEMPT */
	case 5: /* PREEMPT AND ABORT (tasks of the preempted nexuses are not aborted: see As built) */
		if (!me->registered) {
			c->status = SCSI_RESV_CONFLICT;
			break;
		}
		if (lu->pr_type != 0 && pr_all_reg(lu->pr_type) && sark == 0) {
			for (scsi_nexus *x = lu->nexuses; x; x = x->next)
				if (x->registered && x != me) {
					x->registered = 0;
					x->key = 0;
					ua_add_locked(x, ASC(0x2a, 0x05));
					if (sa == 5) {
						gone = xrealloc(gone, (ngone + 1) * sizeof(*gone));
						gone[ngone++] = x;
					}
				}
			lu->pr_type = type;
			lu->pr_holder = pr_all_reg(type) ? NULL : me;
			lu->prgen++;
			break;
		}
		if (sark == 0) {
			bad_param(c, 8, -1);
			break;
		}
		int found = 0;
		int holder_hit = lu->pr_type != 0 && !pr_all_reg(lu->pr_type) && lu->pr_holder->key == sark;
		for (scsi_nexus *x = lu->nexuses; x; x = x->next) {
			if (!x->registered || x->key != sark)
				continue;
			found = 1;
			if (x != me) {
				x->registered = 0;
				x->key = 0;
				ua_add_locked(x, ASC(0x2a, 0x05));
				if (sa == 5) {
					gone = xrealloc(gone, (ngone + 1) * sizeof(*gone));
					gone[ngone++] = x;
				}
			}
		}
		if (!found) {
			c->status = SCSI_RESV_CONFLICT;
			break;
		}
		if (holder_hit || lu->pr_type == 0) {
			if (holder_hit) {
				int old = lu->pr_type;
				lu->pr_type = type;
				lu->pr_holder = pr_all_reg(type) ? NULL : me;
				if (old != type)
					for (scsi_nexus *x = lu->nexuses; x; x = x->next)
						if (x->registered && x != me)
							ua_add_locked(x, ASC(0x2a, 0x04));
			}
		}
		lu->prgen++;
		break;
	default:
		bad_cdb(c, 1, 4);
		break;
	}
out:;
	int changed = c->status == SCSI_GOOD && c->sense_len == 0;
	pthread_mutex_unlock(&lu->lock);
	if (changed && ngone > 0 && abort_hook != NULL) {
		/* the preempted nexuses' tasks end before this command completes (nexuses live as long as the LU) */
		abort_wait *w = xcalloc(1, sizeof(*w));
		w->c = c;
		w->was_aptpl = was_aptpl;
		abort_hook(lu, (scsi_nexus *const *)gone, ngone, preempt_aborted, w);
		free(gone);
		return;
	}
	free(gone);
	if (changed)
		return pr_done(c, was_aptpl);
	finish(c);
}

/* ---- the check order (§10.2) ---- */

static int
pr_conflict(scsi_cmd *c, const scsi_op *o)
{
	scsi_lu *lu = LU(c);
	scsi_nexus *n = c->nx;
	if (lu->spc2 != NULL && lu->spc2 != n && !(o->flags & OP_SPC2_OK))
		return 1;
	if (lu->pr_type == 0 || o->pr_class == PR_A)
		return 0;
	if (lu->pr_holder == n)
		return 0;
	if ((pr_reg_only(lu->pr_type) || pr_all_reg(lu->pr_type)) && n->registered)
		return 0;
	int ex = lu->pr_type == PRT_EA || lu->pr_type == PRT_EARO || lu->pr_type == PRT_EAAR;
	switch (o->pr_class) {
	case PR_R:
		return ex;
	case PR_W:
		return 1;
	case PR_S:
		if (o->opcode == 0x5f) {
			int sa = c->cdb[1] & 0x1f;
			return 0 && sa; /* PROUT decides itself */
		}
		if (o->opcode == 0x1b)
			return !(c->cdb[4] & 1);
		if (o->opcode == 0x1e)
			return (c->cdb[4] & 3) != 0;
		if (o->opcode == 0x16 || o->opcode == 0x56 || o->opcode == 0x17 || o->opcode == 0x57)
			return 0; /* the handler decides (§12.5) */
		return 1;
	}
	return 0;
}

int
scsi_prepare(scsi_cmd *c)
{
	c->status = SCSI_GOOD;
	c->sense_len = 0;
	c->need_out = 0;
	uint8_t opc = c->cdb[0];
	int sa = has_sa(opc) ? (c->cdb[1] & 0x1f) : -1;
	const scsi_op *o = op_find(opc, sa);
	scsi_lu *lu = LU(c);
	/* 1. LUN */
	if (c->lun != 0 && opc != 0x12 && opc != 0xa0 && opc != 0x03)
		return sense_err(c, SK_ILLEGAL_REQUEST, 0x25, 0x00);
	/* 2. opcode / service action */
	if (o == NULL) {
		if (sa >= 0 && opcode_known(opc))
			return bad_cdb(c, 1, 4);
		return sense_err(c, SK_ILLEGAL_REQUEST, 0x20, 0x00);
	}
	c->op = o;
	/* 3. CONTROL byte */
	uint8_t ctl = c->cdb[o->cdb_len - 1];
	if (ctl & 0x04)
		return bad_cdb(c, o->cdb_len - 1, 2); /* NACA */
	if (ctl & 0x01)
		return bad_cdb(c, o->cdb_len - 1, 0); /* LINK */
	/* 4. unit attention */
	pthread_mutex_lock(&lu->lock);
	if (!(o->flags & OP_UA_OK) && c->nx->nua > 0) {
		uint16_t ua = c->nx->ua[0];
		memmove(c->nx->ua, c->nx->ua + 1, (size_t)(c->nx->nua - 1) * sizeof(uint16_t));
		c->nx->nua--;
		pthread_mutex_unlock(&lu->lock);
		return sense_err(c, SK_UNIT_ATTENTION, ua >> 8, ua & 0xff);
	}
	/* 5. reservations */
	int conflict = pr_conflict(c, o);
	pthread_mutex_unlock(&lu->lock);
	if (conflict) {
		c->status = SCSI_RESV_CONFLICT;
		return -1;
	}
	/* 6. CDB bits outside the usage map (the CONTROL byte's vendor bits are ignored) */
	for (int i = 1; i < o->cdb_len; i++) {
		uint8_t extra = (uint8_t)(c->cdb[i] & ~o->usage[i]);
		if (i == o->cdb_len - 1)
			extra &= 0x3f & ~0x05;
		if (extra) {
			int bit = 7;
			while (!(extra & (1 << bit)))
				bit--;
			return bad_cdb(c, i, bit);
		}
	}
	/* 7. direction bits vs the op: a Data-Out command flagged as a read cannot get its data;
	 * a Data-In command flagged as a write runs and its Data-In is not sent (the transport
	 * reports the underflow; libiscsi Read10Invalid) */
	if (c->edtl > 0 && o->dir == SCSI_DIR_OUT && c->dir != SCSI_DIR_OUT)
		return sense_err(c, SK_ILLEGAL_REQUEST, 0x0e, 0x03);
	/* 8. LU state */
	if (o->flags & OP_WRITES) {
		if (lu->ro)
			return sense_err(c, SK_DATA_PROTECT, 0x27, 0x00);
		if (lu->swp)
			return sense_err(c, SK_DATA_PROTECT, 0x27, 0x02);
	}
	/* 9-10. the handler's own field rules and the LBA range */
	if (o->prep(c) != 0)
		return -1;
	if (o->dir != SCSI_DIR_OUT)
		c->need_out = 0;
	return 0;
}

int
scsi_cmd_medium(const scsi_cmd *c)
{
	const scsi_op *o = c->op;
	return o != NULL && (o->flags & OP_MEDIUM) != 0;
}

/* The pool's free space (ce_pool_stat: available to new writes now). */
static int
pool_free_cb(ce_pool *p, void *arg)
{
	ce_pool_stat st;
	int err = ce_pool_stat_get(p, &st);
	if (err == 0)
		*(uint64_t *)arg = st.free;
	return err;
}

/*
 * The thin provisioning soft threshold (docs/iscsi.md §13): before a command that writes, at
 * most every TP_CHECK_NS per LU, the pool's free space against every LU of the pool: an armed
 * LU whose threshold it fell below queues UA 38/07 for each of its I_T nexuses (once per
 * crossing); one whose fired threshold it rose a set above is armed again. On the submitting
 * thread, never inside a completion (ce_pool_stat takes pool locks).
 */
static void
tp_check(scsi_lu *lu)
{
	uint64_t now = util_now_ns(), next = lu->tp_next_ns;
	if (now < next || !atomic_compare_exchange_strong(&lu->tp_next_ns, &next, now + TP_CHECK_NS))
		return;
	char pool[128];
	const char *slash = strchr(lu->name, '/');
	if (slash == NULL || (size_t)(slash - lu->name) >= sizeof(pool))
		return;
	snprintf(pool, sizeof(pool), "%.*s", (int)(slash - lu->name), lu->name);
	uint64_t free_b = 0;
	if (reg_with_pool(pool, pool_free_cb, &free_b) != 0)
		return;
	pthread_mutex_lock(&lus_lock);
	for (scsi_lu *x = lus; x; x = x->next) {
		if (x->pool_guid != lu->pool_guid)
			continue;
		pthread_mutex_lock(&x->lock);
		uint64_t thr = (uint64_t)x->tp_count * TP_SET;
		if (x->tp_enabled && !x->tp_fired && free_b < thr) {
			x->tp_fired = 1;
			for (scsi_nexus *n = x->nexuses; n; n = n->next)
				ua_add_locked(n, ASC(0x38, 0x07));
			log_warn("scsi %s: the pool's free space (%" PRIu64 " MiB) fell below the thin provisioning soft "
			    "threshold (%u MiB); unit attention 38/07 to its initiators", x->name, free_b >> 20, x->tp_count);
		} else if (x->tp_fired && free_b >= thr + TP_SET) {
			x->tp_fired = 0;
			log_info("scsi %s: the pool's free space (%" PRIu64 " MiB) is above the soft threshold again; re-armed",
			    x->name, free_b >> 20);
		}
		pthread_mutex_unlock(&x->lock);
	}
	pthread_mutex_unlock(&lus_lock);
}

void
scsi_exec(scsi_cmd *c)
{
	const scsi_op *o = c->op;
	if ((o->flags & OP_WRITES) && LU(c)->tp_enabled)
		tp_check(LU(c));
	o->exec(c);
}

int
scsi_cmd_writes(const scsi_cmd *c)
{
	const scsi_op *o = c->op;
	return o != NULL && (o->flags & OP_WRITES) != 0;
}

int
scsi_cmd_no_effect(const scsi_cmd *c)
{
	const scsi_op *o = c->op;
	if (o == NULL || !(o->flags & OP_NOEFFECT))
		return 0;
	ASSERT(!(o->flags & OP_WRITES) && (o->flags & OP_MEDIUM));
	return 1;
}

int
scsi_cancel(scsi_cmd *c)
{
	const scsi_op *o = c->op;
	if (o == NULL || !(o->flags & OP_MEDIUM))
		return 0;
	atomic_store(&c->cancel, 1);
	vio_vol *v = LU(c)->vol;
	if (o->exec == exec_rmw && vio_lock_withdraw(v, c)) {
		/* still waiting for its range lock: granted never runs */
		set_withdrawn(c);
		finish(c);
		return 1;
	}
	/* withdraw under the spin lock (the array cannot be replaced meanwhile: a phase ends only
	 * when all its requests completed, and a withdrawn one has not), complete outside it (the
	 * completion may begin the next phase, which replaces the array) */
	enum { MAXW = 64 };
	vio_req *got[MAXW];
	int n = 0, writes = 0;
	reqs_lock(c);
	for (int i = 0; i < c->nreqs; i++)
		writes += c->reqs[i].op == VIO_WRITE || c->reqs[i].op == VIO_TRIM || c->reqs[i].op == VIO_ZERO;
	if (atomic_load(&c->wrote) || writes > 1) {
		/* its writes have landed (WRITE AND VERIFY's read-back), or they are several requests of
		 * which some may have begun: withdrawing the rest would answer BUSY with part written.
		 * Waited for, like a begun write (invariant 5) */
		reqs_unlock(c);
		return 0;
	}
	for (int i = 0; i < c->nreqs && n < MAXW; i++)
		if (vio_withdraw(v, &c->reqs[i]))
			got[n++] = &c->reqs[i];
	reqs_unlock(c);
	for (int i = 0; i < n; i++)
		vio_complete(got[i], -ECANCELED, "withdrawn by the iSCSI stall bound");
	return n;
}

void
scsi_cmd_fini(scsi_cmd *c)
{
	if (c->reqs != NULL) {
		for (int i = 0; i < c->nreqs; i++)
			free(c->reqs[i].ext);
		free(c->reqs);
		c->reqs = NULL;
	}
	free(c->din);
	c->din = NULL;
	free(c->work);
	c->work = NULL;
}

static const char *
target_port_name(scsi_cmd *c)
{
	return LU(c)->tport[0] ? LU(c)->tport : NULL;
}

/* ---- the operator's view of persistent reservations (scsi.h) ---- */

const char *
scsi_pr_type_name(int type)
{
	switch (type) {
	case 0: return "none";
	case 1: return "write-exclusive";
	case 3: return "exclusive-access";
	case 5: return "write-exclusive-registrants-only";
	case 6: return "exclusive-access-registrants-only";
	case 7: return "write-exclusive-all-registrants";
	case 8: return "exclusive-access-all-registrants";
	default: return "unknown";
	}
}

/* The records of pr_serialize_locked into out (their layout: pr_deserialize); -1 if they make no sense. */
static int
pr_info_of(const ce_attr *a, size_t n, scsi_pr_info *out)
{
	if (n == 0)
		return 0;
	if (a[0].key != PRA_STATE || a[0].len < 8)
		return -1;
	out->generation = g32(a[0].val);
	out->type = a[0].val[4];
	out->aptpl = a[0].val[5] != 0;
	uint16_t holder = g16(a[0].val + 6);
	out->regs = xcalloc(n, sizeof(*out->regs));
	for (size_t i = 1; i < n; i++) {
		uint16_t pl = a[i].len >= 10 ? g16(a[i].val + 8) : 0;
		if (a[i].key != PRA_REG || pl == 0 || pl >= sizeof(out->regs[0].port) || (size_t)pl + 10 > a[i].len)
			return -1;
		scsi_pr_reg *r = &out->regs[out->nregs++];
		r->key = g64(a[i].val);
		memcpy(r->port, a[i].val + 10, pl);
		r->port[pl] = '\0';
		r->holder = out->type != 0 && (pr_all_reg(out->type) || holder == i - 1);
	}
	return 0;
}

int
scsi_pr_info_get(const char *export_name, scsi_pr_info *out)
{
	memset(out, 0, sizeof(*out));
	ce_attr *a = NULL;
	size_t n = 0;
	int err = 0;
	pthread_mutex_lock(&lus_lock);
	for (scsi_lu *lu = lus; lu; lu = lu->next)
		if (strcmp(lu->name, export_name) == 0) {
			pthread_mutex_lock(&lu->lock);
			a = pr_serialize_locked(lu, &n);
			pthread_mutex_unlock(&lu->lock);
			out->open = 1;
			break;
		}
	pthread_mutex_unlock(&lus_lock);
	if (!out->open) {
		char pool[128];
		const char *slash = strchr(export_name, '/');
		if (slash == NULL || slash == export_name || (size_t)(slash - export_name) >= sizeof(pool))
			return err_set(-ENOENT, "%s: not POOL/VOL", export_name);
		snprintf(pool, sizeof(pool), "%.*s", (int)(slash - export_name), export_name);
		guid_q q = { slash + 1, 0, 0, 0 };
		err = reg_with_pool(pool, find_guids, &q);
		if (err != 0)
			return err;
		if (q.ds_guid == 0)
			return err_set(-ENOENT, "%s: no such volume or snapshot", export_name);
		pthread_mutex_lock(&kept_lock);
		pr_kept *k;
		for (k = kept; k; k = k->next)
			if (k->pool_guid == q.pool_guid && k->ds_guid == q.ds_guid) {
				a = xcalloc(k->n ? k->n : 1, sizeof(*a));
				memcpy(a, k->a, k->n * sizeof(*a));
				n = k->n;
				break;
			}
		pthread_mutex_unlock(&kept_lock);
		if (k == NULL && strchr(export_name, '@') == NULL) {
			pr_io_q pq = { slash + 1, NULL, 0 };
			if (reg_with_pool(pool, pr_load_cb, &pq) == 0) {
				a = pq.a;
				n = pq.n;
			} else {
				free(pq.a);
			}
		}
	}
	if (pr_info_of(a, n, out) != 0) {
		free(out->regs);
		memset(out, 0, sizeof(*out));
		err = err_set(-EIO, "%s: the persistent reservation state is damaged", export_name);
	}
	free(a);
	return err;
}
