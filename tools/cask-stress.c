/*
 * cask-stress -- ztest for cask: every operation the engine has, from
 * concurrent threads, against an in-memory model, with the power cord
 * pulled (SIGKILL) at random moments, injected IO faults, and the pool
 * abandoned and re-imported.
 *
 *   cask-stress [--seconds N] [--seed S] [--threads T] [--vdevs V] DIR
 *
 * The parent keeps the model; each round it forks a worker that imports
 * pool A ("stress", V vdevs in DIR) and pool B ("stressb", the target of
 * sends) and runs T threads. Thread t owns volumes "t<t>v0" and "t<t>v1"
 * of pool A and the receive target "t<t>r" of pool B, and performs
 * operations drawn deterministically from (seed, round, t, op index) and
 * the model: create, destroy (-r, -R), write (any offset and length, some
 * compressible, some FUA), FLUSH, read-and-verify, trim, write-zeroes,
 * resize, set, sync, snapshot, snapshot destroy, clone, promote, rollback
 * (-r), hold, release, read a snapshot, set or remove a snapshot policy
 * (ce_sched_set), and send (full or incremental, some cut short and
 * resumed with the receive_resume_token) into pool B, where the received
 * snapshot is read back and compared, and the policy the stream carried
 * is installed on the target when it has none (send-stream.md 3.1). Refusals the
 * engine must make (destroying a held snapshot or a clone's origin, a
 * rollback past a held snapshot) are expected with their errno.
 *
 * Each worker thread publishes in shared memory how many ops it started
 * and, per volume, its durable point: the durable-prefix rule of
 * tests/integration/nbd_kill_load.py. A FLUSH that returned (and a FUA
 * write, which is a write and a FLUSH) makes every earlier op on its
 * volume durable; a management call that returned (they wait for their
 * txg) and a pool sync make every earlier op on every volume durable; a
 * completed receive is durable in pool B.
 *
 * A round ends in one of four ways:
 *   kill     SIGKILL at a random moment (most rounds);
 *   export   the threads stop after a number of ops and the pool is exported;
 *   abandon  the same, then ce_pool_abandon (what a crash would leave);
 *   fault    an IO fault (read, write or flush; once or persistent, on one
 *            vdev or all) is injected while the threads run; a thread that
 *            gets -EIO stops; then the fault is cleared, `pool clear` must
 *            resume the pool, and the pool is exported.
 * The parent then runs `cask-debug check` (next to this binary) on both
 * pools, imports them and, for each volume, finds the prefix P of its
 * thread's ops (durable <= P <= started) whose model state -- data, size,
 * block size, snapshots with their data, holds and clones, origin --
 * equals what the pool holds; an export must keep every op. A management
 * op that was in flight is all or nothing across the thread's volumes. A
 * partial receive left by a kill must belong to a send in flight; it is
 * abandoned. The matched states become the model of the next round.
 *
 * Exit status: 0 when every round verified; 1 on any violation, with the
 * seed printed so the run can be repeated with --seed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "cask/engine.h"

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAXT 16
#define NSLOT 2
#define MAXVOL (1u << 20)
#define CHUNK 4096u
#define NCHUNK (MAXVOL / CHUNK)
#define MAXSNAP 3        /* snapshots a volume gets before the generator destroys some */
#define SNAPCAP (4 * MAXSNAP) /* promotes bring the origin's snapshots over (gen_op keeps within it) */
#define MAXRSNAP 5       /* received snapshots before the next send is a full one again */
#define DUR_B NSLOT      /* durable[] index of the receive target in pool B */

/* ---- the model ---- */

/* A snapshot's data: immutable once taken, shared by the model copies that refer to it. */
typedef struct sbuf {
	int ref;
	uint64_t size;
	uint64_t dig[NCHUNK];
	uint8_t data[MAXVOL];
} sbuf;

typedef struct msnap {
	uint64_t id;   /* name "s<id in hex>", unique in the run */
	sbuf *b;
	int held;      /* tag "t<thread>" */
} msnap;

typedef struct slot {
	int exists;
	uint64_t size;
	uint32_t bs;
	uint8_t *data; /* MAXVOL bytes */
	int nsnap;
	msnap snap[SNAPCAP]; /* oldest first */
	int origin_slot;     /* a clone: of snapshot origin_id of this slot; else -1 */
	uint64_t origin_id;
	int has_pol;         /* its snapshot policy (ce_sched_set) */
	ce_sched pol;
} slot;

typedef struct rtarget {
	int exists;
	int nsnap;
	msnap snap[MAXRSNAP]; /* oldest first; held is unused */
	int has_pol;          /* the policy a received stream installed */
	ce_sched pol;
} rtarget;

typedef struct tmodel {
	slot s[NSLOT];
	rtarget r;
} tmodel;

typedef struct model {
	tmodel t[MAXT];
} model;

enum {
	OP_CREATE, OP_DESTROY, OP_WRITE, OP_READ, OP_TRIM, OP_ZERO, OP_RESIZE, OP_SET, OP_SYNC,
	OP_FLUSH, OP_SNAP, OP_SNAPDEL, OP_CLONE, OP_PROMOTE, OP_ROLLBACK, OP_HOLD, OP_RELEASE,
	OP_READSNAP, OP_SEND, OP_SCHED, OP_NKINDS
};
static const char *op_names[] = { "create", "destroy", "write", "read", "trim", "zero", "resize", "set",
	"sync", "flush", "snapshot", "snapdestroy", "clone", "promote", "rollback", "hold", "release",
	"readsnap", "send", "sched" };

typedef struct shared {
	_Atomic uint64_t started[MAXT];
	_Atomic uint64_t durable[MAXT][NSLOT + 1];
	_Atomic uint64_t count[OP_NKINDS];
	_Atomic uint64_t refused, fua, resumed, eio_stops;
	_Atomic int failed;
} shared;

typedef struct op {
	int kind;
	int slot;
	int other;     /* OP_CLONE: the origin's slot; OP_DESTROY: the clone slot also destroyed, or -1 */
	int fua;       /* OP_WRITE */
	int expect;    /* 0, or the -errno the engine must refuse it with */
	unsigned flags;
	uint64_t off, len, size;
	uint32_t bs;
	int prop;      /* OP_SET: 0 compression, 1 checksum; OP_CREATE: compression; OP_SCHED: 1 set, 0 remove */
	int value;
	int sidx;      /* a snapshot of the slot (index into snap[]) */
	uint64_t id;   /* OP_SNAP: the new snapshot's id */
	uint64_t from; /* OP_SEND: incremental from this snapshot id (0: full) */
	int full_resend; /* OP_SEND: the target is destroyed first */
	uint32_t cut;  /* OP_SEND: cut the stream at cut/65536 of its length, then resume; 0 never */
	ce_sched pol;  /* OP_SCHED with prop 1: the policy */
	uint64_t dseed;
} op;

static uint64_t g_seed;
static unsigned g_threads = 4;
static const char *g_dir;
static char g_pool_path[4][PATH_MAX];
static char g_pathb[PATH_MAX];
static unsigned g_nvdevs = 1;
static char g_debug[PATH_MAX];
static int g_debug_env;
static int g_keep; /* CASK_STRESS_KEEP=1: each round's pool files, as the worker left them, go to DIR/pre-import */
static int g_trace = -1; /* CASK_STRESS_TRACE=FILE: one line per op started, per volume adopted */
static int g_control;
static uint64_t g_torn; /* writes in flight found landed in part (allowed) */ /* --control: volumes get sync=disabled, so FLUSH claims are false */

static uint64_t
mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static uint64_t
rnd(uint64_t *s)
{
	*s += 0x9E3779B97F4A7C15ull;
	return mix(*s);
}

static void *
xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n, sz);
	if (p == NULL) {
		perror("cask-stress: calloc");
		_exit(2);
	}
	return p;
}

static sbuf *
sbuf_new(const uint8_t *data, uint64_t size)
{
	sbuf *b = xcalloc(1, sizeof(*b));
	b->ref = 1;
	b->size = size;
	memcpy(b->data, data, size);
	for (uint64_t k = 0; k < size / CHUNK; k++)
		b->dig[k] = XXH3_64bits(b->data + k * CHUNK, CHUNK);
	return b;
}

static sbuf *
sbuf_get(sbuf *b)
{
	b->ref++;
	return b;
}

static void
sbuf_put(sbuf *b)
{
	if (b != NULL && --b->ref == 0)
		free(b);
}

static void
slot_clear(slot *sl)
{
	for (int k = 0; k < sl->nsnap; k++)
		sbuf_put(sl->snap[k].b);
	sl->nsnap = 0;
	sl->exists = 0;
	sl->origin_slot = -1;
	sl->has_pol = 0;
	memset(&sl->pol, 0, sizeof(sl->pol));
}

/* dst becomes a copy of src (dst->data is dst's own buffer). */
static void
slot_copy(slot *dst, const slot *src)
{
	uint8_t *d = dst->data;
	slot_clear(dst);
	*dst = *src;
	dst->data = d;
	memcpy(d, src->data, MAXVOL);
	for (int k = 0; k < src->nsnap; k++)
		sbuf_get(src->snap[k].b);
}

static void
rt_clear(rtarget *r)
{
	for (int k = 0; k < r->nsnap; k++)
		sbuf_put(r->snap[k].b);
	r->nsnap = 0;
	r->exists = 0;
	r->has_pol = 0;
	memset(&r->pol, 0, sizeof(r->pol));
}

static void
rt_copy(rtarget *dst, const rtarget *src)
{
	rt_clear(dst);
	*dst = *src;
	for (int k = 0; k < src->nsnap; k++)
		sbuf_get(src->snap[k].b);
}

static int
snap_find(const slot *sl, uint64_t id)
{
	for (int k = 0; k < sl->nsnap; k++)
		if (sl->snap[k].id == id)
			return k;
	return -1;
}

/* How many volumes of the thread are clones of snapshot id of slot s. */
static int
clones_of(const tmodel *tm, int s, uint64_t id)
{
	int n = 0;
	for (int c = 0; c < NSLOT; c++)
		n += tm->s[c].exists && tm->s[c].origin_slot == s && tm->s[c].origin_id == id;
	return n;
}

static int
any_held(const slot *sl)
{
	for (int k = 0; k < sl->nsnap; k++)
		if (sl->snap[k].held)
			return 1;
	return 0;
}

/* The clone of one of slot s's snapshots, or -1. */
static int
clone_slot_of(const tmodel *tm, int s)
{
	for (int c = 0; c < NSLOT; c++)
		if (c != s && tm->s[c].exists && tm->s[c].origin_slot == s)
			return c;
	return -1;
}

static int
is_mgmt(int kind)
{
	switch (kind) {
	case OP_CREATE: case OP_DESTROY: case OP_RESIZE: case OP_SET: case OP_SYNC: case OP_SNAP:
	case OP_SNAPDEL: case OP_CLONE: case OP_PROMOTE: case OP_ROLLBACK: case OP_HOLD: case OP_RELEASE:
	case OP_SCHED:
		return 1;
	default:
		return 0;
	}
}

/* Operation number i of thread t in round r, given the thread's model state it applies to. */
static op
gen_op(unsigned r, unsigned t, uint64_t i, const tmodel *tm)
{
	uint64_t s = mix(g_seed ^ mix(((uint64_t)r << 40) ^ ((uint64_t)t << 32) ^ i));
	op o;
	memset(&o, 0, sizeof(o));
	o.other = -1;
	o.slot = (int)(rnd(&s) % NSLOT);
	const slot *sl = &tm->s[o.slot];
	o.dseed = rnd(&s);
	if (!sl->exists) {
		static const uint32_t bss[] = { 4096, 16384, 65536 };
		/* a clone of the other volume's snapshot, or a new volume */
		const slot *os = &tm->s[1 - o.slot];
		if (os->exists && os->nsnap > 0 && rnd(&s) % 3 != 0) {
			o.kind = OP_CLONE;
			o.other = 1 - o.slot;
			o.sidx = (int)(rnd(&s) % (uint64_t)os->nsnap);
			return o;
		}
		o.kind = OP_CREATE;
		o.bs = bss[rnd(&s) % 3];
		o.size = (1 + rnd(&s) % (MAXVOL / o.bs)) * o.bs;
		o.value = (int)(rnd(&s) % 3);
		return o;
	}
	unsigned w = (unsigned)(rnd(&s) % 1000);
	static const struct { unsigned upto; int kind; } table[] = {
		{ 300, OP_WRITE }, { 380, OP_READ }, { 440, OP_TRIM }, { 470, OP_ZERO }, { 500, OP_RESIZE },
		{ 520, OP_SET }, { 540, OP_SYNC }, { 620, OP_FLUSH }, { 690, OP_SNAP }, { 730, OP_SNAPDEL },
		{ 760, OP_PROMOTE }, { 800, OP_ROLLBACK }, { 830, OP_HOLD }, { 860, OP_RELEASE },
		{ 900, OP_READSNAP }, { 950, OP_SEND }, { 975, OP_DESTROY }, { 990, OP_SCHED }, { 1000, OP_WRITE },
	};
	for (size_t k = 0; k < sizeof(table) / sizeof(table[0]); k++)
		if (w < table[k].upto) {
			o.kind = table[k].kind;
			break;
		}
	/* operations on snapshots need one; otherwise write */
	if (sl->nsnap == 0 && (o.kind == OP_SNAPDEL || o.kind == OP_ROLLBACK || o.kind == OP_HOLD ||
	    o.kind == OP_RELEASE || o.kind == OP_READSNAP || o.kind == OP_SEND))
		o.kind = OP_WRITE;
	if (o.kind == OP_SNAP && sl->nsnap >= MAXSNAP)
		o.kind = OP_SNAPDEL;
	if (o.kind == OP_PROMOTE && sl->origin_slot < 0)
		o.kind = OP_SNAP;
	if (o.kind == OP_PROMOTE &&
	    sl->nsnap + snap_find(&tm->s[sl->origin_slot], sl->origin_id) + 1 > SNAPCAP)
		o.kind = sl->nsnap > 0 ? OP_SNAPDEL : OP_WRITE; /* the model's list would overflow */
	if (o.kind == OP_SNAP && sl->nsnap >= SNAPCAP)
		o.kind = OP_WRITE;
	if (sl->nsnap > 0)
		o.sidx = (int)(rnd(&s) % (uint64_t)sl->nsnap);
	switch (o.kind) {
	case OP_WRITE:
	case OP_READ:
	case OP_TRIM:
	case OP_ZERO: {
		uint64_t maxlen = o.kind == OP_WRITE ? 96 * 1024 : sl->size;
		o.off = rnd(&s) % sl->size;
		if (rnd(&s) % 2)
			o.off &= ~4095ull;
		o.len = 1 + rnd(&s) % MIN(maxlen, sl->size - o.off);
		o.fua = o.kind == OP_WRITE && rnd(&s) % 5 == 0;
		break;
	}
	case OP_RESIZE:
		o.size = (1 + rnd(&s) % (MAXVOL / sl->bs)) * sl->bs;
		break;
	case OP_SET:
		o.prop = (int)(rnd(&s) % 2);
		o.value = o.prop == 0 ? (int)(rnd(&s) % 3) : 1 + (int)(rnd(&s) % 2);
		break;
	case OP_SNAP:
		o.id = ((uint64_t)(r + 1) << 32) | (uint64_t)(t << 24) | i;
		break;
	case OP_SNAPDEL: {
		const msnap *m = &sl->snap[o.sidx];
		if (m->held || clones_of(tm, o.slot, m->id) > 0)
			o.expect = -EBUSY;
		break;
	}
	case OP_ROLLBACK:
		/* to the newest: no flag needed; to an older one: -r, refused if a later one is held or cloned */
		if (o.sidx != sl->nsnap - 1) {
			o.flags = CE_ROLLBACK_DESTROY_LATER;
			for (int k = o.sidx + 1; k < sl->nsnap; k++)
				if (sl->snap[k].held || clones_of(tm, o.slot, sl->snap[k].id) > 0)
					o.expect = -EBUSY;
			if (rnd(&s) % 8 == 0) {
				o.flags = 0;
				o.expect = -EEXIST;
			}
		}
		break;
	case OP_HOLD:
		if (sl->snap[o.sidx].held)
			o.expect = -EEXIST;
		break;
	case OP_RELEASE:
		if (!sl->snap[o.sidx].held)
			o.expect = -ENOENT;
		break;
	case OP_SCHED:
		/* set (replace) a policy that keeps something, or remove one (refused when there is none) */
		o.prop = rnd(&s) % 3 != 0;
		if (o.prop) {
			o.pol.every_min = 1 + (uint32_t)(rnd(&s) % 1440);
			o.pol.keep = (uint32_t)(rnd(&s) % 6);
			o.pol.daily = (uint32_t)(rnd(&s) % 4);
			o.pol.monthly = o.pol.keep + o.pol.daily == 0 ? 1 : (uint32_t)(rnd(&s) % 2);
		} else if (!sl->has_pol) {
			o.expect = -ENOENT;
		}
		break;
	case OP_DESTROY: {
		o.other = clone_slot_of(tm, o.slot);
		if (any_held(sl) || (o.other >= 0 && any_held(&tm->s[o.other])))
			o.expect = -EBUSY;
		o.flags = o.other >= 0 ? CE_DESTROY_CLONES : sl->nsnap > 0 ? CE_DESTROY_SNAPSHOTS : 0;
		if (o.other >= 0 && rnd(&s) % 4 == 0) {
			o.flags = CE_DESTROY_SNAPSHOTS; /* without -R: refused */
			o.expect = -EBUSY;
		}
		if (o.expect != 0)
			o.other = -1;
		break;
	}
	case OP_SEND: {
		const rtarget *rt = &tm->r;
		const msnap *newest = &sl->snap[sl->nsnap - 1];
		o.sidx = sl->nsnap - 1;
		if (rt->exists && rt->nsnap > 0 && rt->snap[rt->nsnap - 1].id == newest->id) {
			o.kind = OP_READSNAP; /* already there */
			break;
		}
		int base = rt->exists && rt->nsnap > 0 && rt->nsnap < MAXRSNAP ?
		    snap_find(sl, rt->snap[rt->nsnap - 1].id) : -1;
		if (base >= 0 && base < sl->nsnap - 1)
			o.from = sl->snap[base].id;
		else
			o.full_resend = rt->exists;
		if (rnd(&s) % 4 == 0)
			o.cut = 1 + (uint32_t)(rnd(&s) % 65535);
		break;
	}
	default:
		break;
	}
	return o;
}

/* Write payload: part random, part runs (compressible). */
static void
payload(uint8_t *b, uint64_t len, uint64_t dseed)
{
	uint64_t s = dseed;
	for (uint64_t i = 0; i < len;) {
		uint64_t run = 1 + rnd(&s) % 3000;
		if (rnd(&s) % 2) {
			uint8_t c = (uint8_t)rnd(&s);
			for (uint64_t k = 0; k < run && i < len; k++)
				b[i++] = c;
		} else {
			for (uint64_t k = 0; k < run && i < len; k++)
				b[i++] = (uint8_t)rnd(&s);
		}
	}
}

/* Apply a successful op (expect == 0) to the thread's model. */
static void
model_apply(tmodel *tm, const op *o)
{
	if (o->expect != 0)
		return;
	slot *sl = &tm->s[o->slot];
	switch (o->kind) {
	case OP_CREATE:
		slot_clear(sl);
		sl->exists = 1;
		sl->size = o->size;
		sl->bs = o->bs;
		memset(sl->data, 0, MAXVOL);
		break;
	case OP_DESTROY:
		slot_clear(sl);
		if (o->other >= 0)
			slot_clear(&tm->s[o->other]);
		break;
	case OP_WRITE:
		payload(sl->data + o->off, o->len, o->dseed);
		break;
	case OP_TRIM:
	case OP_ZERO:
		memset(sl->data + o->off, 0, o->len);
		break;
	case OP_RESIZE:
		if (o->size < sl->size)
			memset(sl->data + o->size, 0, sl->size - o->size);
		sl->size = o->size;
		break;
	case OP_SNAP:
		sl->snap[sl->nsnap++] = (msnap){ o->id, sbuf_new(sl->data, sl->size), 0 };
		break;
	case OP_SNAPDEL:
		sbuf_put(sl->snap[o->sidx].b);
		memmove(&sl->snap[o->sidx], &sl->snap[o->sidx + 1], (size_t)(sl->nsnap - o->sidx - 1) * sizeof(msnap));
		sl->nsnap--;
		break;
	case OP_CLONE: {
		slot *os = &tm->s[o->other];
		const msnap *m = &os->snap[o->sidx];
		slot_clear(sl);
		sl->exists = 1;
		sl->size = m->b->size;
		sl->bs = os->bs;
		memset(sl->data, 0, MAXVOL);
		memcpy(sl->data, m->b->data, m->b->size);
		sl->origin_slot = o->other;
		sl->origin_id = m->id;
		break;
	}
	case OP_PROMOTE: {
		/* the origin volume's snapshots up to the origin move to the clone (oldest first) */
		int os = sl->origin_slot;
		slot *ov = &tm->s[os];
		int k = snap_find(ov, sl->origin_id);
		msnap moved[SNAPCAP];
		int nm = k + 1;
		memcpy(moved, ov->snap, (size_t)nm * sizeof(msnap));
		memmove(ov->snap, ov->snap + nm, (size_t)(ov->nsnap - nm) * sizeof(msnap));
		ov->nsnap -= nm;
		memmove(sl->snap + nm, sl->snap, (size_t)sl->nsnap * sizeof(msnap));
		memcpy(sl->snap, moved, (size_t)nm * sizeof(msnap));
		sl->nsnap += nm;
		ov->origin_slot = o->slot;
		ov->origin_id = sl->origin_id;
		sl->origin_slot = -1;
		break;
	}
	case OP_ROLLBACK: {
		const msnap *m = &sl->snap[o->sidx];
		sl->size = m->b->size;
		memset(sl->data, 0, MAXVOL);
		memcpy(sl->data, m->b->data, m->b->size);
		for (int k = o->sidx + 1; k < sl->nsnap; k++)
			sbuf_put(sl->snap[k].b);
		sl->nsnap = o->sidx + 1;
		break;
	}
	case OP_HOLD:
		sl->snap[o->sidx].held = 1;
		break;
	case OP_RELEASE:
		sl->snap[o->sidx].held = 0;
		break;
	case OP_SCHED:
		sl->has_pol = o->prop;
		sl->pol = o->prop ? o->pol : (ce_sched){ 0 };
		break;
	case OP_SEND: {
		rtarget *rt = &tm->r;
		if (o->from == 0)
			rt_clear(rt);
		if (!rt->has_pol && sl->has_pol) { /* installed where there is none; a target's own is kept */
			rt->has_pol = 1;
			rt->pol = sl->pol;
		}
		rt->exists = 1;
		rt->snap[rt->nsnap++] = (msnap){ sl->snap[o->sidx].id, sbuf_get(sl->snap[o->sidx].b), 0 };
		break;
	}
	default:
		break;
	}
}

static void
vol_name(char *buf, size_t n, unsigned t, int s)
{
	snprintf(buf, n, "t%uv%d", t, s);
}

static void
snap_name(char *buf, size_t n, unsigned t, int s, uint64_t id)
{
	snprintf(buf, n, "t%uv%d@s%" PRIx64, t, s, id);
}

static void
rt_name(char *buf, size_t n, unsigned t)
{
	snprintf(buf, n, "t%ur", t);
}

static void
trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void
trace(const char *fmt, ...)
{
	if (g_trace < 0)
		return;
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0 && write(g_trace, line, MIN((size_t)n, sizeof(line) - 1)) < 0)
		g_trace = -1;
}

static void
trace_op(unsigned r, unsigned t, uint64_t i, const op *o, const tmodel *tm)
{
	const slot *sl = &tm->s[o->slot];
	trace("r%u t%u i%" PRIu64 " %s v%d off %" PRIu64 " len %" PRIu64 " size %" PRIu64 " fua %d snap s%" PRIx64
	    " other %d flags %u from s%" PRIx64 " full_resend %d cut %u id s%" PRIx64 " expect %d\n", r, t, i,
	    op_names[o->kind], o->slot, o->off, o->len, o->size, o->fua,
	    o->kind == OP_CLONE ? tm->s[o->other].snap[o->sidx].id : sl->nsnap ? sl->snap[o->sidx].id : 0, o->other,
	    o->flags, o->from, o->full_resend, o->cut, o->id, o->expect);
}

/* ---- send streams through memory ---- */

typedef struct stream {
	uint8_t *b;
	size_t len, cap;
	size_t pos, limit; /* reading */
} stream;

static int
stream_write(void *arg, const void *buf, size_t len)
{
	stream *s = arg;
	if (s->len + len > s->cap) {
		size_t nc = s->cap ? s->cap : 1 << 16;
		while (nc < s->len + len)
			nc *= 2;
		uint8_t *nb = realloc(s->b, nc);
		if (nb == NULL)
			return -ENOMEM;
		s->b = nb;
		s->cap = nc;
	}
	memcpy(s->b + s->len, buf, len);
	s->len += len;
	return 0;
}

static ssize_t
stream_read(void *arg, void *buf, size_t len)
{
	stream *s = arg;
	size_t n = MIN(len, s->limit - s->pos);
	memcpy(buf, s->b + s->pos, n);
	s->pos += n;
	return (ssize_t)n;
}

/* ---- worker ---- */

static atomic_int g_stop;      /* worker: the threads stop at their next op */
static atomic_int g_fault_mode; /* worker: -EIO may come from an injected fault */

typedef struct wctx {
	ce_pool *p, *pb;
	model *m;
	shared *sh;
	unsigned round, t;
	uint64_t limit; /* stop after this many ops (export and abandon rounds), else never */
} wctx;

#define WFAIL(...)                                                      \
	do {                                                            \
		fprintf(stderr, "cask-stress: round %u thread %u op %" PRIu64 ": ", c->round, c->t, i); \
		fprintf(stderr, __VA_ARGS__);                           \
		fprintf(stderr, " (%s)\n", ce_errmsg());                \
		atomic_store(&c->sh->failed, 1);                        \
		_exit(1);                                               \
	} while (0)

/* Read a whole volume or snapshot of pool p and compare it with data (size bytes). */
static int
read_compare(ce_pool *p, const char *name, const uint8_t *data, uint64_t size, uint8_t *buf, int *differs)
{
	ce_vol *h;
	int r = ce_vol_open(p, name, &h);
	if (r != 0)
		return r;
	*differs = ce_vol_size(h) != size;
	if (!*differs) {
		r = ce_vol_read(h, buf, size, 0);
		*differs = r == 0 && memcmp(buf, data, size) != 0;
	}
	ce_vol_close(h);
	return r;
}

static int
print_range(void *arg, uint64_t off, uint64_t len, int kind)
{
	(void)arg;
	fprintf(stderr, "  source diff: %s %" PRIu64 "+%" PRIu64 "\n", kind == CE_DIFF_HOLE ? "hole" : "data", off, len);
	return 0;
}

/* One send of op o (its thread's model tm as before the op); 0, or what failed. */
static int
do_send(wctx *c, const op *o, const tmodel *tm, uint8_t *buf, const char **what)
{
	const slot *sl = &tm->s[o->slot];
	char snap[96], from[96], target[64], got[300];
	snap_name(snap, sizeof(snap), c->t, o->slot, sl->snap[o->sidx].id);
	rt_name(target, sizeof(target), c->t);
	int r;
	if (o->full_resend) {
		*what = "destroy the target";
		if ((r = ce_vol_destroy_ex(c->pb, target, CE_DESTROY_SNAPSHOTS)) != 0)
			return r;
	}
	ce_send_opts so;
	memset(&so, 0, sizeof(so));
	if (o->from != 0) {
		snap_name(from, sizeof(from), c->t, o->slot, o->from);
		so.from = from;
	}
	stream st = { 0 };
	*what = "send";
	if ((r = ce_send(c->p, snap, &so, stream_write, &st)) != 0)
		goto out;
	ce_recv_opts ro;
	memset(&ro, 0, sizeof(ro));
	st.limit = o->cut ? (size_t)((uint64_t)st.len * o->cut / 65536) : st.len;
	*what = "receive";
	r = ce_recv(c->pb, target, &ro, stream_read, &st, got, sizeof(got));
	if (o->cut && r != 0) {
		/* cut short: continue from the receive_resume_token, or from the start if nothing landed */
		ce_vol_info vi;
		stream rs = { 0 };
		if (ce_vol_info_get(c->pb, target, &vi) == 0 && vi.receive_resume_token[0]) {
			ce_send_opts ts;
			memset(&ts, 0, sizeof(ts));
			ts.token = vi.receive_resume_token;
			*what = "send from the resume token";
			if ((r = ce_send(c->p, NULL, &ts, stream_write, &rs)) == 0) {
				rs.limit = rs.len;
				*what = "resumed receive";
				r = ce_recv(c->pb, target, &ro, stream_read, &rs, got, sizeof(got));
			}
			atomic_fetch_add(&c->sh->resumed, 1);
		} else {
			st.pos = 0;
			st.limit = st.len;
			*what = "receive again";
			r = ce_recv(c->pb, target, &ro, stream_read, &st, got, sizeof(got));
		}
		free(rs.b);
	}
	if (r != 0)
		goto out;
	/* what arrived is what was sent */
	char rsnap[128];
	snprintf(rsnap, sizeof(rsnap), "%s@s%" PRIx64, target, sl->snap[o->sidx].id);
	*what = "read back the received snapshot";
	int differs = 0;
	const sbuf *b = sl->snap[o->sidx].b;
	r = read_compare(c->pb, rsnap, b->data, b->size, buf, &differs);
	if (r == 0 && differs) {
		*what = "the received snapshot differs from the sent one";
		r = -EILSEQ;
		if (g_debug_env) {
			ce_vol *h;
			if (ce_vol_open(c->pb, rsnap, &h) == 0) {
				fprintf(stderr, "  received size %" PRIu64 ", sent %" PRIu64 "\n", ce_vol_size(h), b->size);
				if (ce_vol_read(h, buf, MIN(b->size, ce_vol_size(h)), 0) == 0)
					for (uint64_t k = 0; k < MIN(b->size, ce_vol_size(h)) / CHUNK; k++)
						if (memcmp(buf + k * CHUNK, b->data + k * CHUNK, CHUNK) != 0)
							fprintf(stderr, "  differs at %" PRIu64 " (received %s)\n", k * CHUNK,
							    buf[k * CHUNK] == 0 && !memcmp(buf + k * CHUNK, buf + k * CHUNK + 1, CHUNK - 1) ?
							    "zeros" : "data");
				ce_vol_close(h);
			}
			if (o->from != 0)
				ce_vol_diff(c->p, from, snap, print_range, NULL);
		}
	}
out:
	free(st.b);
	return r;
}

static void *
worker_thread(void *arg)
{
	wctx *c = arg;
	tmodel *tm = &c->m->t[c->t];
	ce_vol *h[NSLOT] = { NULL, NULL };
	uint8_t *buf = xcalloc(1, MAXVOL);
	char name[64], sname[96];
	uint64_t i = 0;
	for (; i < c->limit && !atomic_load(&g_stop); i++) {
		op o = gen_op(c->round, c->t, i, tm);
		slot *sl = &tm->s[o.slot];
		vol_name(name, sizeof(name), c->t, o.slot);
		if (sl->nsnap > 0)
			snap_name(sname, sizeof(sname), c->t, o.slot, sl->snap[o.sidx].id);
		atomic_store(&c->sh->started[c->t], i + 1);
		trace_op(c->round, c->t, i, &o, tm);
		const char *what = op_names[o.kind];
		int r = 0;
		int needs_handle = o.kind == OP_WRITE || o.kind == OP_READ || o.kind == OP_TRIM ||
		    o.kind == OP_ZERO || o.kind == OP_FLUSH;
		if (needs_handle && h[o.slot] == NULL && (r = ce_vol_open(c->p, name, &h[o.slot])) != 0) {
			what = "open";
			goto result;
		}
		switch (o.kind) {
		case OP_CREATE: {
			ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
			pr.volblocksize = o.bs;
			pr.compress = o.value;
			if (g_control)
				pr.sync = CE_SYNC_DISABLED;
			r = ce_vol_create(c->p, name, o.size, &pr);
			break;
		}
		case OP_DESTROY:
			for (int k = 0; k < NSLOT; k++) {
				ce_vol_close(h[k]);
				h[k] = NULL;
			}
			r = ce_vol_destroy_ex(c->p, name, o.flags);
			break;
		case OP_WRITE:
			payload(buf, o.len, o.dseed);
			r = ce_vol_write(h[o.slot], buf, o.len, o.off);
			if (r == 0 && o.fua) {
				what = "FUA flush";
				r = ce_vol_flush(h[o.slot]);
			}
			break;
		case OP_READ:
			r = ce_vol_read(h[o.slot], buf, o.len, o.off);
			if (r == 0 && memcmp(buf, sl->data + o.off, o.len) != 0)
				WFAIL("read of %s at %" PRIu64 "+%" PRIu64 " differs from the model", name, o.off, o.len);
			break;
		case OP_TRIM:
			r = ce_vol_trim(h[o.slot], o.off, o.len);
			break;
		case OP_ZERO:
			r = ce_vol_write_zeroes(h[o.slot], o.off, o.len);
			break;
		case OP_FLUSH:
			r = ce_vol_flush(h[o.slot]);
			break;
		case OP_RESIZE:
			r = ce_vol_resize(c->p, name, o.size, CE_RESIZE_SHRINK);
			break;
		case OP_SET:
			r = ce_vol_set(c->p, name, o.prop == 0 ? "compression" : "checksum",
			    o.prop == 0 ? ce_compress_name(o.value) : ce_checksum_name(o.value));
			break;
		case OP_SYNC:
			r = ce_pool_sync(c->p);
			break;
		case OP_SNAP: {
			snap_name(sname, sizeof(sname), c->t, o.slot, o.id);
			const char *names[1] = { sname };
			int errs[1];
			r = ce_snap_create(c->p, names, 1, errs);
			if (r != 0 && errs[0] != 0)
				r = errs[0];
			break;
		}
		case OP_SNAPDEL:
			r = ce_snap_destroy(c->p, sname);
			break;
		case OP_CLONE: {
			char origin[96];
			snap_name(origin, sizeof(origin), c->t, o.other, tm->s[o.other].snap[o.sidx].id);
			r = ce_vol_clone(c->p, origin, name);
			break;
		}
		case OP_PROMOTE:
			r = ce_vol_promote(c->p, name);
			break;
		case OP_ROLLBACK:
			ce_vol_close(h[o.slot]);
			h[o.slot] = NULL;
			r = ce_vol_rollback(c->p, sname, o.flags);
			break;
		case OP_HOLD:
		case OP_RELEASE: {
			char tag[16];
			snprintf(tag, sizeof(tag), "t%u", c->t);
			const char *names[1] = { sname };
			int errs[1];
			r = (o.kind == OP_HOLD ? ce_snap_hold : ce_snap_release)(c->p, tag, names, 1, errs);
			if (r != 0 && errs[0] != 0)
				r = errs[0];
			break;
		}
		case OP_SCHED:
			r = ce_sched_set(c->p, name, o.prop ? &o.pol : NULL);
			break;
		case OP_READSNAP: {
			int differs = 0;
			const sbuf *b = sl->snap[o.sidx].b;
			r = read_compare(c->p, sname, b->data, b->size, buf, &differs);
			if (r == 0 && differs)
				WFAIL("snapshot %s differs from the model", sname);
			break;
		}
		case OP_SEND:
			r = do_send(c, &o, tm, buf, &what);
			if (r == -EILSEQ)
				WFAIL("send %s (%s%" PRIx64 ", %s, cut at %u/65536, %s): %s", sname,
				    o.from ? "incremental from s" : "full", o.from, o.full_resend ? "target destroyed first" :
				    "target kept", o.cut, atomic_load(&c->sh->resumed) ? "resumes in this round" : "no resume yet",
				    what);
			break;
		}
result:
		if (r != o.expect) {
			if (r == -EIO && atomic_load(&g_fault_mode)) {
				/* an injected fault: this op's outcome is unknown; stop here */
				atomic_fetch_add(&c->sh->eio_stops, 1);
				break;
			}
			if (o.expect != 0)
				WFAIL("%s %s returned %d (%s), the engine must refuse it with %s", op_names[o.kind],
				    name, r, r ? strerror(-r) : "success", strerror(-o.expect));
			WFAIL("%s %s failed (%s): %s", op_names[o.kind], name, what, strerror(-r));
		}
		model_apply(tm, &o);
		atomic_fetch_add(&c->sh->count[o.kind], 1);
		if (o.expect != 0)
			atomic_fetch_add(&c->sh->refused, 1);
		else if (o.kind == OP_SEND)
			atomic_store(&c->sh->durable[c->t][DUR_B], i + 1);
		else if (is_mgmt(o.kind))
			for (int k = 0; k < NSLOT; k++)
				atomic_store(&c->sh->durable[c->t][k], i + 1);
		else if (o.kind == OP_FLUSH || (o.kind == OP_WRITE && o.fua))
			atomic_store(&c->sh->durable[c->t][o.slot], i + 1);
		if (o.fua)
			atomic_fetch_add(&c->sh->fua, 1);
	}
	for (int s = 0; s < NSLOT; s++)
		ce_vol_close(h[s]);
	free(buf);
	return NULL;
}

enum { END_KILL, END_EXPORT, END_ABANDON, END_FAULT };
static int g_no_kill; /* --no-kill: no round ends by SIGKILL */
static const char *end_names[] = { "kill", "export", "abandon", "fault" };

static void
worker(unsigned round, int end, model *m, shared *sh, uint64_t limit)
{
	ce_pool_opts o;
	memset(&o, 0, sizeof(o));
	uint64_t s = mix(g_seed ^ round ^ 0x5eed);
	o.txg_timeout_ms = 50 + (unsigned)(rnd(&s) % 200);
	o.dirty_max = 4u << 20;
	o.cache_bytes = 8u << 20;
	const char *paths[4];
	for (unsigned v = 0; v < g_nvdevs; v++)
		paths[v] = g_pool_path[v];
	const char *pathb[1] = { g_pathb };
	ce_pool *p, *pb;
	if (ce_pool_import(paths, g_nvdevs, &o, &p) != 0 || ce_pool_import(pathb, 1, &o, &pb) != 0) {
		fprintf(stderr, "cask-stress: worker import: %s\n", ce_errmsg());
		atomic_store(&sh->failed, 1);
		_exit(1);
	}
	pthread_t th[MAXT];
	wctx c[MAXT];
	for (unsigned t = 0; t < g_threads; t++) {
		c[t] = (wctx){ p, pb, m, sh, round, t, limit };
		pthread_create(&th[t], NULL, worker_thread, &c[t]);
	}
	if (end == END_FAULT) {
		struct timespec d = { 0, (long)(20 + rnd(&s) % 200) * 1000000L };
		nanosleep(&d, NULL);
		ce_fault f;
		f.op = 1 + (int)(rnd(&s) % 3);
		f.vdev = rnd(&s) % 2 ? -1 : (int)(rnd(&s) % g_nvdevs);
		f.after = rnd(&s) % 50;
		f.persistent = (int)(rnd(&s) % 2);
		atomic_store(&g_fault_mode, 1);
		if (ce_pool_fault_inject(p, &f) != 0) {
			fprintf(stderr, "cask-stress: fault inject: %s\n", ce_errmsg());
			_exit(1);
		}
		d.tv_nsec = (long)(50 + rnd(&s) % 300) * 1000000L;
		nanosleep(&d, NULL);
		atomic_store(&g_stop, 1);
	}
	for (unsigned t = 0; t < g_threads; t++)
		pthread_join(th[t], NULL);
	if (end == END_FAULT) {
		ce_pool_fault_clear(p);
		ce_pool_stat st;
		if (ce_pool_clear(p) != 0 || ce_pool_stat_get(p, &st) != 0 || st.suspended != 0) {
			fprintf(stderr, "cask-stress: pool clear after the fault was cleared: %s\n", ce_errmsg());
			_exit(1);
		}
	}
	if (end == END_ABANDON) {
		ce_pool_abandon(p);
		ce_pool_abandon(pb);
		_exit(0);
	}
	if (ce_pool_export(p) != 0 || ce_pool_export(pb) != 0) {
		fprintf(stderr, "cask-stress: worker export: %s\n", ce_errmsg());
		_exit(1);
	}
	_exit(0);
}

/* ---- parent: what the pools hold, and each volume's prefix ---- */

typedef struct osnap {
	uint64_t id;
	uint64_t size;
	unsigned holds, clones;
	uint64_t dig[NCHUNK];
} osnap;

typedef struct observed {
	int exists;
	uint64_t size;
	uint32_t bs;
	char origin[256];
	uint64_t dig[NCHUNK];
	int nsnap;
	osnap snap[SNAPCAP + MAXRSNAP];
	int partial; /* a receive target: it was a partial receive (now abandoned) */
	int has_pol; /* its snapshot policy, as ce_sched_list gives it */
	ce_sched pol;
} observed;

/* The policy of volume name in p: 1 and *out, 0 when it has none, -1 on an error. */
static int
policy_of(ce_pool *p, const char *name, ce_sched *out)
{
	ce_sched_info *si;
	size_t n;
	if (ce_sched_list(p, &si, &n) != 0) {
		fprintf(stderr, "cask-stress: the snapshot policies of %s: %s\n", ce_pool_name(p), ce_errmsg());
		return -1;
	}
	int found = 0;
	for (size_t k = 0; k < n; k++)
		if (strcmp(si[k].volume, name) == 0) {
			*out = si[k].policy;
			found = 1;
		}
	free(si);
	return found;
}

static int
same_pol(int has_a, const ce_sched *a, int has_b, const ce_sched *b)
{
	return has_a == has_b && (!has_a || memcmp(a, b, sizeof(*a)) == 0);
}

static int
digest_of(ce_pool *p, const char *name, uint64_t size, uint64_t *dig, uint8_t *buf)
{
	ce_vol *h;
	if (ce_vol_open(p, name, &h) != 0 || ce_vol_read(h, buf, size, 0) != 0) {
		fprintf(stderr, "cask-stress: cannot read %s back: %s\n", name, ce_errmsg());
		return -1;
	}
	ce_vol_close(h);
	for (uint64_t k = 0; k < size / CHUNK; k++)
		dig[k] = XXH3_64bits(buf + k * CHUNK, CHUNK);
	return 0;
}

static int
observe(ce_pool *p, const char *name, observed *ob, uint8_t *buf, int is_target)
{
	ce_vol_info vi;
	memset(ob, 0, sizeof(*ob));
	if (ce_vol_info_get(p, name, &vi) != 0)
		return 0;
	if (is_target && vi.receive_resume_token[0]) {
		ob->partial = 1;
		if (ce_recv_abandon(p, name) != 0) {
			fprintf(stderr, "cask-stress: abandon the partial receive %s: %s\n", name, ce_errmsg());
			return -1;
		}
		if (ce_vol_info_get(p, name, &vi) != 0)
			return 0;
	}
	ob->exists = 1;
	ob->size = vi.size;
	ob->bs = vi.volblocksize;
	if ((ob->has_pol = policy_of(p, name, &ob->pol)) < 0)
		return -1;
	snprintf(ob->origin, sizeof(ob->origin), "%s", vi.origin);
	if (digest_of(p, name, vi.size, ob->dig, buf) != 0)
		return -1;
	ce_snap_info *si;
	size_t n;
	if (ce_snap_list(p, name, &si, &n) != 0) {
		fprintf(stderr, "cask-stress: snapshots of %s: %s\n", name, ce_errmsg());
		return -1;
	}
	if (n > SNAPCAP + MAXRSNAP) {
		fprintf(stderr, "cask-stress: %s has %zu snapshots, more than the model ever makes\n", name, n);
		free(si);
		return -1;
	}
	for (size_t k = 0; k < n; k++) {
		osnap *os = &ob->snap[k];
		const char *at = strchr(si[k].name, '@');
		if (at == NULL || sscanf(at + 1, "s%" SCNx64, &os->id) != 1) {
			fprintf(stderr, "cask-stress: unexpected snapshot %s\n", si[k].name);
			free(si);
			return -1;
		}
		os->size = si[k].size;
		os->holds = si[k].holds;
		os->clones = si[k].clones;
		if (digest_of(p, si[k].name, si[k].size, os->dig, buf) != 0) {
			free(si);
			return -1;
		}
	}
	ob->nsnap = (int)n;
	free(si);
	return 0;
}

static int
dig_equal(const uint64_t *a, const uint64_t *b, uint64_t size)
{
	return memcmp(a, b, size / CHUNK * sizeof(uint64_t)) == 0;
}

static const osnap *
osnap_find(const observed *ob, uint64_t id)
{
	for (int k = 0; k < ob->nsnap; k++)
		if (ob->snap[k].id == id)
			return &ob->snap[k];
	return NULL;
}

/* Does slot s of tm hold what was observed? why gets the first difference. */
static int
slot_matches(const tmodel *tm, unsigned t, int s, const observed *ob, char *why, size_t n)
{
	const slot *sl = &tm->s[s];
	if (sl->exists != ob->exists) {
		snprintf(why, n, "model exists=%d, pool exists=%d", sl->exists, ob->exists);
		return 0;
	}
	if (!sl->exists)
		return 1;
	if (sl->size != ob->size || sl->bs != ob->bs) {
		snprintf(why, n, "model size %" PRIu64 " bs %u, pool size %" PRIu64 " bs %u", sl->size, sl->bs,
		    ob->size, ob->bs);
		return 0;
	}
	char origin[96] = "";
	if (sl->origin_slot >= 0)
		snap_name(origin, sizeof(origin), t, sl->origin_slot, sl->origin_id);
	if (strcmp(origin, ob->origin) != 0) {
		snprintf(why, n, "model origin '%s', pool origin '%.100s'", origin, ob->origin);
		return 0;
	}
	if (sl->nsnap != ob->nsnap) {
		snprintf(why, n, "model has %d snapshots, pool %d", sl->nsnap, ob->nsnap);
		return 0;
	}
	if (!same_pol(sl->has_pol, &sl->pol, ob->has_pol, &ob->pol)) {
		snprintf(why, n, "model %s a snapshot policy (every %um), pool %s (every %um)", sl->has_pol ? "has" : "has no",
		    sl->pol.every_min, ob->has_pol ? "has" : "has none", ob->pol.every_min);
		return 0;
	}
	for (int k = 0; k < sl->nsnap; k++) {
		const msnap *m = &sl->snap[k];
		const osnap *os = osnap_find(ob, m->id);
		if (os == NULL || os->size != m->b->size || !dig_equal(os->dig, m->b->dig, os->size) ||
		    os->holds != (unsigned)m->held || os->clones != (unsigned)clones_of(tm, s, m->id)) {
			snprintf(why, n, "snapshot s%" PRIx64 " %s", m->id, os == NULL ? "missing" :
			    os->size != m->b->size ? "has another size" : !dig_equal(os->dig, m->b->dig, os->size) ?
			    "has other data" : os->holds != (unsigned)m->held ? "has other holds" : "has other clones");
			return 0;
		}
	}
	uint64_t bad = 0, first = 0;
	for (uint64_t k = 0; k < sl->size / CHUNK; k++)
		if (XXH3_64bits(sl->data + k * CHUNK, CHUNK) != ob->dig[k] && bad++ == 0)
			first = k;
	if (bad) {
		snprintf(why, n, "%" PRIu64 " chunks of 4K differ, first at offset %" PRIu64, bad, first * CHUNK);
		return 0;
	}
	return 1;
}

static int
rt_matches(const rtarget *rt, const observed *ob, char *why, size_t n)
{
	if (rt->exists != ob->exists) {
		snprintf(why, n, "model exists=%d, pool exists=%d", rt->exists, ob->exists);
		return 0;
	}
	if (!rt->exists)
		return 1;
	if (rt->nsnap != ob->nsnap) {
		snprintf(why, n, "model has %d snapshots, pool %d", rt->nsnap, ob->nsnap);
		return 0;
	}
	if (!same_pol(rt->has_pol, &rt->pol, ob->has_pol, &ob->pol)) {
		snprintf(why, n, "model %s the stream's snapshot policy, the target %s", rt->has_pol ? "has" : "has not",
		    ob->has_pol ? "has one" : "has none");
		return 0;
	}
	for (int k = 0; k < rt->nsnap; k++) {
		const osnap *os = osnap_find(ob, rt->snap[k].id);
		if (os == NULL || os->size != rt->snap[k].b->size || !dig_equal(os->dig, rt->snap[k].b->dig, os->size)) {
			snprintf(why, n, "received snapshot s%" PRIx64 " %s", rt->snap[k].id, os ? "differs" : "missing");
			return 0;
		}
	}
	const sbuf *newest = rt->snap[rt->nsnap - 1].b;
	if (ob->size != newest->size || !dig_equal(ob->dig, newest->dig, ob->size)) {
		snprintf(why, n, "the received volume is not its newest snapshot");
		return 0;
	}
	return 1;
}

static int
run_check(const char *what, const char *const *paths, unsigned n)
{
	char cmd[PATH_MAX * 6];
	int k = snprintf(cmd, sizeof(cmd), "'%s' check", g_debug);
	for (unsigned v = 0; v < n; v++)
		k += snprintf(cmd + k, sizeof(cmd) - (size_t)k, " '%s'", paths[v]);
	snprintf(cmd + k, sizeof(cmd) - (size_t)k, " > '%s/check.out' 2>&1", g_dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "cask-stress: cask-debug check of %s:\n", what);
		snprintf(cmd, sizeof(cmd), "cat '%s/check.out' >&2", g_dir);
		if (system(cmd) != 0)
			return -1;
		return -1;
	}
	return 0;
}

/*
 * Replay thread t's ops of this round on its model and adopt, per volume,
 * the first state that matches the pool within the durable-prefix rule.
 * Returns the ops kept (the largest prefix adopted) or -1 on a violation.
 */
static int64_t
verify_thread(unsigned round, unsigned t, tmodel *tm, const shared *sh, int keep_all, ce_pool *p, ce_pool *pb,
    uint8_t *buf, observed *ob)
{
	char name[64], why[200] = "";
	for (int s = 0; s < NSLOT; s++) {
		vol_name(name, sizeof(name), t, s);
		if (observe(p, name, &ob[s], buf, 0) != 0)
			return -1;
	}
	rt_name(name, sizeof(name), t);
	if (observe(pb, name, &ob[NSLOT], buf, 1) != 0)
		return -1;
	uint64_t started = atomic_load(&sh->started[t]);
	uint64_t dur[NSLOT + 1];
	for (int s = 0; s <= NSLOT; s++)
		dur[s] = keep_all ? started : atomic_load(&sh->durable[t][s]);
	static slot chosen[NSLOT];
	static rtarget chosen_r;
	static uint8_t *pre_data;
	if (pre_data == NULL)
		pre_data = xcalloc(1, MAXVOL);
	if (chosen[0].data == NULL)
		for (int s = 0; s < NSLOT; s++) {
			chosen[s].data = xcalloc(1, MAXVOL);
			chosen[s].origin_slot = -1;
		}
	int64_t at[NSLOT + 1];
	int at_end[NSLOT + 1];
	for (int s = 0; s <= NSLOT; s++)
		at[s] = -1, at_end[s] = 0;
	op last;
	memset(&last, 0, sizeof(last));
	last.kind = -1;
	for (uint64_t i = 0;; i++) {
		for (int s = 0; s < NSLOT; s++) {
			if (i < dur[s])
				continue;
			int ok = slot_matches(tm, t, s, &ob[s], why, sizeof(why));
			if (g_debug_env && !ok)
				fprintf(stderr, "  thread %u v%d after %" PRIu64 " ops: %s\n", t, s, i, why);
			if (ok && at[s] < 0) {
				slot_copy(&chosen[s], &tm->s[s]);
				at[s] = (int64_t)i;
			}
			if (ok && i == started)
				at_end[s] = 1;
		}
		if (i >= dur[DUR_B] && at[DUR_B] < 0 && rt_matches(&tm->r, &ob[NSLOT], why, sizeof(why))) {
			rt_copy(&chosen_r, &tm->r);
			at[DUR_B] = (int64_t)i;
		}
		if (i >= started)
			break;
		op o = gen_op(round, t, i, tm);
		if (g_debug_env)
			fprintf(stderr, "  thread %u op %" PRIu64 ": %s v%d off %" PRIu64 " len %" PRIu64 " size %"
			    PRIu64 " expect %d\n", t, i, op_names[o.kind], o.slot, o.off, o.len, o.size, o.expect);
		if (i + 1 == started) {
			last = o;
			/* the volume before the op in flight: a write may land in part (below) */
			memcpy(pre_data, tm->s[o.slot].data, MAXVOL);
		}
		model_apply(tm, &o);
	}
	/*
	 * A write, trim or zeroing in flight may land in part, block by block,
	 * as on any disk (nbd_kill_load's rule is per block too): a txg can
	 * close in the middle of it. Accept a volume whose every 4K holds what
	 * it held before that op or after it, if all else matches.
	 */
	int ls = last.slot;
	if (!keep_all && at[ls] < 0 && (last.kind == OP_WRITE || last.kind == OP_TRIM || last.kind == OP_ZERO) &&
	    started - 1 >= dur[ls] && tm->s[ls].exists && ob[ls].exists && tm->s[ls].size == ob[ls].size) {
		slot *sl = &tm->s[ls];
		int ok = 1;
		for (uint64_t k = 0; ok && k < sl->size / CHUNK; k++)
			if (XXH3_64bits(sl->data + k * CHUNK, CHUNK) != ob[ls].dig[k]) {
				if (XXH3_64bits(pre_data + k * CHUNK, CHUNK) == ob[ls].dig[k])
					memcpy(sl->data + k * CHUNK, pre_data + k * CHUNK, CHUNK);
				else
					ok = 0;
			}
		if (ok && slot_matches(tm, t, ls, &ob[ls], why, sizeof(why))) {
			slot_copy(&chosen[ls], sl);
			at[ls] = (int64_t)started;
			g_torn++;
			trace("r%u t%u: the %s in flight on v%d landed in part\n", round, t, op_names[last.kind], ls);
		}
	}
	/* a full resend in flight may leave the target destroyed (or a partial receive, now abandoned) */
	int send_in_flight = last.kind == OP_SEND && !keep_all;
	if (ob[NSLOT].partial && !send_in_flight) {
		fprintf(stderr, "cask-stress: round %u thread %u: a partial receive without a send in flight\n", round, t);
		return -1;
	}
	if (at[DUR_B] < 0 && send_in_flight && last.full_resend && !ob[NSLOT].exists) {
		rt_clear(&chosen_r);
		at[DUR_B] = (int64_t)started;
	}
	int64_t kept = 0;
	for (int s = 0; s <= NSLOT; s++) {
		if (at[s] < 0) {
			char d[200] = "";
			if (s < NSLOT)
				slot_matches(tm, t, s, &ob[s], d, sizeof(d));
			else
				rt_matches(&tm->r, &ob[NSLOT], d, sizeof(d));
			fprintf(stderr, "cask-stress: round %u thread %u: no prefix of its ops (durable %" PRIu64
			    ", started %" PRIu64 ") matches what %s%s holds (after all ops: %s)%s\n", round, t, dur[s],
			    started, s < NSLOT ? "volume v" : "the receive target", s < NSLOT ? (s ? "1" : "0") : "", d,
			    keep_all ? "; the pool was exported, so every op must be kept" : "");
			return -1;
		}
		if (at[s] > kept)
			kept = at[s];
	}
	/* a management op in flight lands whole: if one volume shows it, every volume shows all before it */
	if (last.kind >= 0 && is_mgmt(last.kind) && !keep_all) {
		int any_only_after = 0, all_end = 1;
		for (int s = 0; s < NSLOT; s++) {
			any_only_after |= at[s] == (int64_t)started;
			all_end &= at_end[s];
		}
		if (any_only_after && !all_end) {
			fprintf(stderr, "cask-stress: round %u thread %u: the %s in flight (op %" PRIu64 ") shows on one "
			    "volume, but not everything before it on the other\n", round, t, op_names[last.kind], started - 1);
			return -1;
		}
	}
	for (int s = 0; s < NSLOT; s++)
		slot_copy(&tm->s[s], &chosen[s]);
	rt_copy(&tm->r, &chosen_r);
	trace("r%u t%u adopted: v0 after %" PRId64 " ops, v1 after %" PRId64 ", target after %" PRId64 " (started %"
	    PRIu64 ")\n", round, t, at[0], at[1], at[DUR_B], started);
	return kept;
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: cask-stress [--seconds N] [--seed S] [--threads T] [--vdevs V] [--control] DIR\n"
	    "\n"
	    "Run random concurrent operations (writes with FLUSH and FUA, trims, resizes,\n"
	    "snapshots, clones, promotes, rollbacks, holds, sends into a second pool) on a\n"
	    "pool in DIR against an in-memory model; kill the worker with SIGKILL at random\n"
	    "times, abandon the pool, inject IO faults and `pool clear`; re-import and verify\n"
	    "that each volume holds a prefix of its thread's operations that includes every\n"
	    "durable one (flushed, or committed by a management call), and that cask-debug\n"
	    "check finds both pools clean.\n"
	    "\n"
	    "  --seconds N   run for about N seconds (default 10)\n"
	    "  --seed S      seed for every random choice (default: from the clock)\n"
	    "  --threads T   concurrent worker threads, 1-%d (default 4)\n"
	    "  --vdevs V     vdev files in the pool, 1-4 (default 1)\n"
	    "  --control     negative control: create volumes with sync=disabled, so\n"
	    "                FLUSH and FUA make nothing durable; the run must fail\n"
	    "  --no-kill     no round ends by SIGKILL (an abandon instead): to tell a\n"
	    "                kill-round failure from any other\n"
	    "\n"
	    "DIR is created if needed; the pool files in it are replaced. Exit status 0 when\n"
	    "every round verified, 1 on a violation (the seed to reproduce is printed).\n"
	    "CASK_STRESS_DEBUG=1 prints the replay of a failing round; CASK_STRESS_TRACE=FILE\n"
	    "writes every op started and every state adopted to FILE; CASK_STRESS_KEEP=1\n"
	    "copies the pool files each round leaves to DIR/pre-import before the check\n"
	    "imports them (on a failure, the state that failed).\n", MAXT);
}

int
main(int argc, char **argv)
{
	double seconds = 10;
	int seeded = 0;
	static const struct option lo[] = { { "seconds", 1, NULL, 'n' }, { "seed", 1, NULL, 's' },
		{ "threads", 1, NULL, 't' }, { "vdevs", 1, NULL, 'v' }, { "control", 0, NULL, 'c' },
		{ "no-kill", 0, NULL, 'K' }, { "help", 0, NULL, 'h' }, { 0, 0, 0, 0 } };
	int ch;
	while ((ch = getopt_long(argc, argv, "n:s:t:v:chK", lo, NULL)) != -1) {
		char *end;
		switch (ch) {
		case 'K':
			g_no_kill = 1;
			break;
		case 'n':
			seconds = strtod(optarg, &end);
			if (*end || seconds <= 0) {
				fprintf(stderr, "cask-stress: bad --seconds '%s'\n", optarg);
				return 2;
			}
			break;
		case 's':
			g_seed = strtoull(optarg, &end, 0);
			if (*end) {
				fprintf(stderr, "cask-stress: bad --seed '%s'\n", optarg);
				return 2;
			}
			seeded = 1;
			break;
		case 't':
			g_threads = (unsigned)strtoul(optarg, &end, 10);
			if (*end || g_threads < 1 || g_threads > MAXT) {
				fprintf(stderr, "cask-stress: --threads must be 1-%d\n", MAXT);
				return 2;
			}
			break;
		case 'v':
			g_nvdevs = (unsigned)strtoul(optarg, &end, 10);
			if (*end || g_nvdevs < 1 || g_nvdevs > 4) {
				fprintf(stderr, "cask-stress: --vdevs must be 1-4\n");
				return 2;
			}
			break;
		case 'c':
			g_control = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	g_dir = argv[optind];
	g_debug_env = getenv("CASK_STRESS_DEBUG") != NULL;
	g_keep = getenv("CASK_STRESS_KEEP") != NULL;
	if (getenv("CASK_STRESS_TRACE") != NULL &&
	    (g_trace = open(getenv("CASK_STRESS_TRACE"), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644)) < 0) {
		fprintf(stderr, "cask-stress: %s: %s\n", getenv("CASK_STRESS_TRACE"), strerror(errno));
		return 2;
	}
	if (!seeded) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		g_seed = mix((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid());
	}
	printf("cask-stress: seed %" PRIu64 " threads %u vdevs %u seconds %.0f\n", g_seed, g_threads, g_nvdevs, seconds);
	fflush(stdout);
	if (mkdir(g_dir, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "cask-stress: %s: %s\n", g_dir, strerror(errno));
		return 2;
	}
	/* cask-debug lives next to this binary */
	snprintf(g_debug, sizeof(g_debug), "%s", argv[0]);
	char *slash = strrchr(g_debug, '/');
	if (slash)
		snprintf(slash + 1, sizeof(g_debug) - (size_t)(slash + 1 - g_debug), "cask-debug");
	else
		snprintf(g_debug, sizeof(g_debug), "cask-debug");

	const char *paths[4];
	for (unsigned v = 0; v < g_nvdevs; v++) {
		snprintf(g_pool_path[v], sizeof(g_pool_path[v]), "%s/stress%u.vdev", g_dir, v);
		unlink(g_pool_path[v]);
		paths[v] = g_pool_path[v];
	}
	snprintf(g_pathb, sizeof(g_pathb), "%s/stressb.vdev", g_dir);
	unlink(g_pathb);
	const char *pathb[1] = { g_pathb };
	ce_pool_opts po;
	memset(&po, 0, sizeof(po));
	po.vdev_size = (uint64_t)(128 / g_nvdevs + 16) << 20;
	ce_pool *p, *pb;
	if (ce_pool_create("stress", paths, g_nvdevs, &po, &p) != 0 || ce_pool_export(p) != 0) {
		fprintf(stderr, "cask-stress: cannot create the pool: %s\n", ce_errmsg());
		return 2;
	}
	po.vdev_size = 128u << 20;
	if (ce_pool_create("stressb", pathb, 1, &po, &pb) != 0 || ce_pool_export(pb) != 0) {
		fprintf(stderr, "cask-stress: cannot create the receiving pool: %s\n", ce_errmsg());
		return 2;
	}

	model *m = xcalloc(1, sizeof(model));
	shared *sh = mmap(NULL, sizeof(shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		perror("cask-stress: mmap");
		return 2;
	}
	for (unsigned t = 0; t < g_threads; t++)
		for (int s = 0; s < NSLOT; s++) {
			m->t[t].s[s].data = xcalloc(1, MAXVOL);
			m->t[t].s[s].origin_slot = -1;
		}
	observed *ob = xcalloc(NSLOT + 1, sizeof(observed));
	uint8_t *buf = xcalloc(1, MAXVOL);
	uint64_t seed_rounds = mix(g_seed ^ 0xabcdef);
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	uint64_t total_ops = 0, ends[4] = { 0 };
	uint64_t counts[OP_NKINDS] = { 0 }, refused = 0, fua = 0, resumed = 0, eio_stops = 0;
	unsigned round = 0;
	int violation = 0;

	for (;; round++) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		double el = (double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9;
		if (el >= seconds)
			break;
		int end = round % 5 == 4 ? END_EXPORT : round % 7 == 5 ? END_ABANDON : round % 4 == 2 ? END_FAULT : END_KILL;
		if (end == END_KILL && g_no_kill) /* --no-kill: an abandon (a crash at a quiet moment) instead */
			end = END_ABANDON;
		uint64_t limit = end == END_EXPORT || end == END_ABANDON ? 50 + rnd(&seed_rounds) % 300 : UINT64_MAX;
		memset((void *)sh, 0, sizeof(*sh));
		fflush(stdout);
		fflush(stderr);
		pid_t pid = fork();
		if (pid < 0) {
			perror("cask-stress: fork");
			return 2;
		}
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL); /* the worker never outlives cask-stress */
			worker(round, end, m, sh, limit);
		}
		int status;
		if (end == END_KILL) {
			struct timespec d = { 0, (long)(50 + rnd(&seed_rounds) % 400) * 1000000L };
			nanosleep(&d, NULL);
			kill(pid, SIGKILL);
		}
		waitpid(pid, &status, 0);
		int exited_ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
		if (atomic_load(&sh->failed) || (end != END_KILL && !exited_ok) ||
		    (end == END_KILL && !exited_ok && !(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))) {
			fprintf(stderr, "cask-stress: round %u (%s): the worker failed (status 0x%x)\n", round,
			    end_names[end], status);
			violation = 1;
			break;
		}
		if (g_keep) {
			/* what the worker left, before the check's import replays the log and commits */
			char cmd[PATH_MAX * 2 + 64];
			snprintf(cmd, sizeof(cmd), "rm -rf '%s/pre-import' && mkdir '%s/pre-import' && "
			    "cp --sparse=always '%s'/*.vdev '%s/pre-import/'", g_dir, g_dir, g_dir, g_dir);
			if (system(cmd) != 0) {
				fprintf(stderr, "cask-stress: cannot keep the pool files of round %u\n", round);
				return 2;
			}
		}
		if (run_check("pool stress", paths, g_nvdevs) != 0 || run_check("pool stressb", pathb, 1) != 0) {
			fprintf(stderr, "cask-stress: round %u (%s): cask-debug check found problems\n", round, end_names[end]);
			violation = 1;
			break;
		}
		ce_pool_opts io;
		memset(&io, 0, sizeof(io));
		if (ce_pool_import(paths, g_nvdevs, &io, &p) != 0 || ce_pool_import(pathb, 1, &io, &pb) != 0) {
			fprintf(stderr, "cask-stress: round %u: import failed: %s\n", round, ce_errmsg());
			violation = 1;
			break;
		}
		uint64_t round_ops = 0;
		for (unsigned t = 0; t < g_threads && !violation; t++) {
			int64_t kept = verify_thread(round, t, &m->t[t], sh, end == END_EXPORT, p, pb, buf, ob);
			if (kept < 0)
				violation = 1;
			else
				round_ops += (uint64_t)kept;
		}
		if (ce_pool_export(p) != 0 || ce_pool_export(pb) != 0) {
			fprintf(stderr, "cask-stress: round %u: export after the check: %s\n", round, ce_errmsg());
			violation = 1;
		}
		if (violation) {
			fprintf(stderr, "cask-stress: round %u ended by %s\n", round, end_names[end]);
			break;
		}
		total_ops += round_ops;
		ends[end]++;
		for (int k = 0; k < OP_NKINDS; k++)
			counts[k] += atomic_load(&sh->count[k]);
		refused += atomic_load(&sh->refused);
		fua += atomic_load(&sh->fua);
		resumed += atomic_load(&sh->resumed);
		eio_stops += atomic_load(&sh->eio_stops);
		printf("round %3u: %-7s %6" PRIu64 " ops kept; import, model and check clean\n", round,
		    end_names[end], round_ops);
	}
	free(ob);
	free(buf);
	for (unsigned t = 0; t < g_threads; t++) {
		for (int s = 0; s < NSLOT; s++) {
			slot_clear(&m->t[t].s[s]);
			free(m->t[t].s[s].data);
		}
		rt_clear(&m->t[t].r);
	}
	free(m);
	munmap((void *)sh, sizeof(shared));
	if (violation) {
		printf("cask-stress: FAILED in round %u; reproduce with --seed %" PRIu64 " --threads %u --vdevs %u\n",
		    round, g_seed, g_threads, g_nvdevs);
		return 1;
	}
	printf("cask-stress: ops completed:");
	for (int k = 0; k < OP_NKINDS; k++)
		printf(" %s %" PRIu64, op_names[k], counts[k]);
	printf("; %" PRIu64 " FUA, %" PRIu64 " refusals checked, %" PRIu64 " resumed receives, %" PRIu64
	    " threads stopped by an injected EIO, %" PRIu64 " writes in flight landed in part\n", fua, refused,
	    resumed, eio_stops, g_torn);
	printf("cask-stress: %u rounds (%" PRIu64 " kills, %" PRIu64 " exports, %" PRIu64 " abandons, %" PRIu64
	    " faults + clear), %" PRIu64 " operations verified, 0 violations (seed %" PRIu64 ")\n", round,
	    ends[END_KILL], ends[END_EXPORT], ends[END_ABANDON], ends[END_FAULT], total_ops, g_seed);
	return 0;
}
