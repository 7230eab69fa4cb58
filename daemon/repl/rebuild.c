/*
 * rebuild.c -- rebuild in caskd (design: docs/replication.md section 12;
 * frames: docs/replica-protocol.md section 8.3; the engine side is
 * lib/engine/rebuild.c).
 *
 * Two halves. The target's: rb_target_frame applies RB_BEGIN, RB_SCAN,
 * RB_DATA, RB_HOLE, RB_CURSOR and RB_END for the replica service
 * (service.c hands them over after its header, checksum, state and epoch
 * checks). The controller's: a rebuild is a caskd job (kind "rebuild")
 * that brings one member T up to date from the controller's local
 * replica S while the volume is served:
 *
 *   connect  ATTACH (returning member) or CREATE (replica add), STATUS
 *   plan     kind and ranges: a resume of T's own record (rb_phys), a
 *            delta from the common point of the two epoch histories
 *            (12.2), or full
 *   join     ctrl_rb_start: J = the last assigned seq, RB_BEGIN(J) first
 *            in T's queue, every later operation to T too (write-only)
 *   list     S: ce_rebuild_scan of the local replica after it applied J;
 *            T: RB_SCAN pages; merged (union, coalesced)
 *   copy     per range, per chunk of at most 1 MiB: S's map and bytes,
 *            cut around what live operations touched since J, queued to
 *            T behind the live operations queued so far; RB_CURSOR (every
 *            listed byte below it is queued) every 4 MiB and at the end;
 *            at most 64 MiB ahead of T's RB_PROGRESS (both at most half
 *            and an eighth of caskd --repl-backlog: rb_ahead)
 *   end      RB_END(complete) (T commits, then says complete), then the
 *            membership change that makes T in-sync (ctrl_rb_join)
 *
 * Invariants:
 *   1. No rebuild byte lands where a live operation after J wrote (12.4
 *      item 3): every live operation queued to T adds its range to the
 *      job's live set under the controller's lock (ctrl.c, submit), and
 *      a chunk is cut against that set and queued under the same lock, so
 *      every operation that could have changed the bytes since they were
 *      read is ahead of them in T's queue and its range is excluded. The
 *      bytes that remain are S's state(J) there, which is every later
 *      state's too until a live operation (excluded) changes them.
 *   2. The cut happens in the controller, before the wire, so the target
 *      needs no per-block metadata and a resumed rebuild starts with an
 *      empty set at its new join point.
 *   3. `transferred` counts the bytes of every RB_DATA, RB_HOLE and
 *      RB_CURSOR frame queued to T and of every RB_RANGES frame received
 *      from it, headers included; live operations are not counted.
 *   4. A rebuild never loops: each range is read once; a read error at
 *      the source ends the job (DATA_LOST-style failure, named ranges in
 *      the message) and T stays rebuilding with its durable cursor.
 */
#include "rebuild.h"
#include "ctrl.h"
#include "service.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cask/errcodes.h"
#include "phys.h"
#include "sockio.h"
#include "util.h"
#include "../job.h"
#include "../log.h"
#include "../registry.h"

#define RB_AHEAD (64ull << 20)  /* rebuild bytes queued to T beyond its RB_PROGRESS */
#define RB_WAIT_MS 30000        /* an answer from T */
#define RB_CURSOR_EVERY (4ull << 20) /* rebuild bytes queued between two RB_CURSOR frames */

/*
 * The ahead window: live operations queue behind the rebuild data, so T's
 * backlog (ctrl.c invariant 11) counts what T must apply before them; at
 * most half the backlog limit, or a rebuild under writes would be ejected
 * for lag whenever the limit is below RB_AHEAD. The cursor interval stays
 * a quarter of it, so an RB_PROGRESS always comes before the window closes.
 */
static uint64_t
rb_ahead(void)
{
	return MIN(RB_AHEAD, repl_ctrl_backlog() / 2);
}

/* ---- the live set (invariant 1) ---- */

typedef struct ivl {
	uint64_t s, e;               /* [s, e) */
} ivl;

struct rb_live {
	ivl *v;                      /* sorted, disjoint, not adjacent */
	size_t n, cap;
};

rb_live *
rb_live_new(void)
{
	return xcalloc(1, sizeof(rb_live));
}

void
rb_live_free(rb_live *l)
{
	if (l != NULL)
		free(l->v);
	free(l);
}

/* The first interval whose end is >= off. */
static size_t
live_find(const rb_live *l, uint64_t off)
{
	size_t lo = 0, hi = l->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (l->v[mid].e < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void
rb_live_add(rb_live *l, uint64_t off, uint64_t len)
{
	if (len == 0)
		return;
	uint64_t s = off, e = off + len;
	size_t i = live_find(l, s), j = i;
	while (j < l->n && l->v[j].s <= e) {
		s = MIN(s, l->v[j].s);
		e = MAX(e, l->v[j].e);
		j++;
	}
	if (j == i) {
		if (l->n == l->cap) {
			l->cap = l->cap ? 2 * l->cap : 64;
			l->v = xrealloc(l->v, l->cap * sizeof(ivl));
		}
		memmove(l->v + i + 1, l->v + i, (l->n - i) * sizeof(ivl));
		l->n++;
	} else if (j > i + 1) {
		memmove(l->v + i + 1, l->v + j, (l->n - j) * sizeof(ivl));
		l->n -= j - i - 1;
	}
	l->v[i] = (ivl){ s, e };
}

/* The pieces of [off, off+len) outside the set: fn(piece); returns the bytes cut out. */
static uint64_t
live_cut(const rb_live *l, uint64_t off, uint64_t len, int (*fn)(void *, uint64_t, uint64_t), void *arg,
    int *err)
{
	uint64_t at = off, end = off + len, cut = 0;
	for (size_t i = live_find(l, off + 1 > off ? off : 0); i < l->n && at < end && *err == 0; i++) {
		if (l->v[i].e <= at)
			continue;
		if (l->v[i].s >= end)
			break;
		if (l->v[i].s > at)
			*err = fn(arg, at, l->v[i].s - at);
		uint64_t ne = MIN(l->v[i].e, end);
		cut += ne - MAX(at, l->v[i].s);
		at = ne;
	}
	if (at < end && *err == 0)
		*err = fn(arg, at, end - at);
	return cut;
}

/* ---- reading a range as pieces (the controller's source and RB_READ's answer) ---- */

enum { PC_DATA, PC_HOLE, PC_BAD };

typedef struct piece {
	uint64_t off, len;
	int kind;                    /* PC_*; PC_DATA bytes are in the caller's buffer at off - its base */
} piece;

typedef struct piece_list {
	piece *v;
	size_t n, cap;
} piece_list;

static void
pc_push(piece_list *l, uint64_t off, uint64_t len, int kind)
{
	if (len == 0)
		return;
	if (l->n > 0 && l->v[l->n - 1].kind == kind && l->v[l->n - 1].off + l->v[l->n - 1].len == off) {
		l->v[l->n - 1].len += len;
		return;
	}
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		l->v = xrealloc(l->v, l->cap * sizeof(piece));
	}
	l->v[l->n++] = (piece){ off, len, kind };
}

/*
 * Read [at, at+n) of v into buf (buf[0] is the byte at `at`) as pieces in
 * offset order: its holes, its data, and -- a data extent whose read
 * fails being read again block by block (the volume's block size) -- the
 * blocks that cannot be read (PC_BAD: a checksum or device error). The
 * number of bytes covered (at most n, 0 only if the map is empty), or
 * -errno when the map itself cannot be read (an unreadable indirect block:
 * the caller treats the whole range as unreadable).
 */
static int64_t
read_pieces(ce_vol *v, uint64_t at, uint64_t n, uint8_t *buf, piece_list *pl)
{
	ce_extent ext[64];
	size_t ne;
	int err = ce_vol_map(v, at, n, ext, 64, &ne);
	if (err != 0)
		return err;
	uint64_t covered = 0, bs = ce_vol_blocksize(v);
	for (size_t i = 0; i < ne; i++) {
		uint64_t off = ext[i].offset, len = ext[i].length;
		covered += len;
		if (ext[i].flags & CE_EXTENT_HOLE) {
			pc_push(pl, off, len, PC_HOLE);
			continue;
		}
		if (ce_vol_read(v, buf + (off - at), len, off) == 0) {
			pc_push(pl, off, len, PC_DATA);
			continue;
		}
		for (uint64_t b = off; b < off + len;) {
			uint64_t be = MIN(off + len, (b / bs + 1) * bs);
			pc_push(pl, b, be - b, ce_vol_read(v, buf + (b - at), be - b, b) == 0 ? PC_DATA : PC_BAD);
			b = be;
		}
	}
	return (int64_t)covered;
}

/* Read all of [at, at+n) as pieces (read_pieces repeated; an unreadable map is one PC_BAD piece to the end). */
static void
read_range(ce_vol *v, uint64_t at, uint64_t n, uint8_t *buf, piece_list *pl)
{
	for (uint64_t p = at; p < at + n;) {
		int64_t got = read_pieces(v, p, at + n - p, buf + (p - at), pl);
		if (got <= 0) {
			pc_push(pl, p, at + n - p, PC_BAD);
			return;
		}
		p += (uint64_t)got;
	}
}

/* ---- the target ---- */

int
rb_target_type(uint16_t t)
{
	return t == RP_RB_BEGIN || t == RP_RB_SCAN || t == RP_RB_DATA || t == RP_RB_HOLE || t == RP_RB_CURSOR ||
	    t == RP_RB_END || t == RP_RB_READ;
}

int
rb_target_needs_session(uint16_t t)
{
	return t == RP_RB_DATA || t == RP_RB_HOLE || t == RP_RB_CURSOR || t == RP_RB_END;
}

static int
send_state(rb_peer *rp, uint64_t id)
{
	ce_repl_info ri;
	int err = ce_repl_info_get(rp->p, rp->name, &ri);
	if (err != 0)
		return err;
	ce_rebuild rb;
	uint64_t dc = 0;
	(void)ce_rebuild_get(rp->h, &rb, &dc);
	rp_rb_state st;
	memset(&st, 0, sizeof(st));
	memcpy(st.rs_rb, ri.rec + 2048, sizeof(st.rs_rb));
	st.rs_applied = ri.applied;
	st.rs_durable_cursor = dc;
	return rp->send(rp->conn, RP_RB_STATE, 0, id, &st, sizeof(st));
}

typedef struct scan_page {
	rp_rb_range *r;
	uint32_t n, max;
	uint64_t from, next;
	int more;
} scan_page;

static int
scan_collect(void *arg, uint64_t off, uint64_t len, int kind)
{
	scan_page *pg = arg;
	if (off + len <= pg->from)
		return 0;
	if (off < pg->from) {
		len -= pg->from - off;
		off = pg->from;
	}
	if (pg->n == pg->max) {
		pg->more = 1;
		pg->next = off;
		return 1;
	}
	pg->r[pg->n++] = (rp_rb_range){ off, len, kind == CE_DIFF_HOLE ? 1u : 0u, 0 };
	return 0;
}

static uint32_t
code_of(int err)
{
	return err == -ESTALE ? RPE_STALE_EPOCH : err == -EPROTO ? RPE_EPOCH_REFUSED : err == -ENOSPC ? RPE_NO_SPACE :
	    err == -EIO ? RPE_IO_ERROR : RPE_INVALID_ARGUMENT;
}

int
rb_target_frame(rb_peer *rp, const rp_hdr *h, const uint8_t *pl)
{
	int err = 0;
	uint64_t size = ce_vol_size(rp->h);
	switch (h->rf_type) {
	case RP_RB_BEGIN: {
		rp_rb_begin b;
		memcpy(&b, pl, sizeof(b));
		ce_rebuild rb;
		memset(&rb, 0, sizeof(rb));
		rb.kind = b.rb_kind;
		rb.flags = b.rb_flags & 1 ? CE_RB_RESUME : 0;
		rb.base_epoch = (ce_epoch){ b.rb_base_ctr, b.rb_base_node };
		rb.base_seq = b.rb_base_seq;
		rb.join_seq = b.rb_join_seq;
		rb.source = b.rb_source;
		rb.cursor = b.rb_cursor;
		if ((err = ce_rebuild_begin(rp->h, rp->e, &rb)) != 0) {
			rp->error(rp->conn, code_of(err), h, err == -ESTALE, ce_errmsg());
			return err == -ESTALE ? err : 0;
		}
		rp->take_session(rp->conn);
		*rp->rx_bytes = *rp->rx_committed = 0;
		log_info("replica %s: rebuilding (%s) from seq %" PRIu64 ", joined at %" PRIu64 "%s", rp->name,
		    b.rb_kind == CE_RB_FULL ? "full" : b.rb_kind == CE_RB_DELTA ? "delta" : "tail", b.rb_base_seq,
		    b.rb_join_seq, rb.flags ? ", resumed" : "");
		return send_state(rp, h->rf_id);
	}
	case RP_RB_SCAN: {
		rp_rb_scan sc;
		memcpy(&sc, pl, sizeof(sc));
		if (sc.sc_snap != 0) {
			rp->error(rp->conn, RPE_INVALID_ARGUMENT, h, 0, "RB_SCAN of a snapshot: not built");
			return 0;
		}
		scan_page pg = { (rp_rb_range *)(rp->out + sizeof(rp_rb_ranges)), 0,
			sc.sc_max == 0 || sc.sc_max > RP_RB_MAX_RANGES ? RP_RB_MAX_RANGES : sc.sc_max, sc.sc_from, 0, 0 };
		err = ce_rebuild_scan(rp->h, sc.sc_base_seq, (sc.sc_flags & RB_SCAN_FULL) != 0, sc.sc_from,
		    scan_collect, &pg);
		if (err < 0) {
			rp->error(rp->conn, RPE_IO_ERROR, h, 0, ce_errmsg());
			return 0;
		}
		rp_rb_ranges rr = { pg.more ? pg.next : size, pg.n, 0 };
		memcpy(rp->out, &rr, sizeof(rr));
		return rp->send(rp->conn, RP_RB_RANGES, pg.more ? RPF_MORE : 0, h->rf_id, rp->out,
		    sizeof(rr) + (size_t)pg.n * sizeof(rp_rb_range));
	}
	case RP_RB_DATA:
	case RP_RB_HOLE: {
		uint64_t off, len;
		if (h->rf_type == RP_RB_DATA) {
			rp_rb_data d;
			memcpy(&d, pl, sizeof(d));
			off = d.offset;
			len = d.length;
			if (len == 0 || len > RP_MAX_IO || len != h->rf_len - sizeof(d) || off > size || len > size - off) {
				rp->error(rp->conn, RPE_INVALID_RANGE, h, 1, "RB_DATA outside the volume");
				return -EPROTO;
			}
			err = ce_rebuild_write(rp->h, rp->e, pl + sizeof(d), len, off);
		} else {
			rp_rb_hole d;
			memcpy(&d, pl, sizeof(d));
			off = d.offset;
			len = d.length;
			if (len == 0 || off > size || len > size - off) {
				rp->error(rp->conn, RPE_INVALID_RANGE, h, 1, "RB_HOLE outside the volume");
				return -EPROTO;
			}
			err = ce_rebuild_hole(rp->h, rp->e, off, len);
		}
		if (err != 0) {
			rp->error(rp->conn, code_of(err), h, 1, ce_errmsg());
			return err;
		}
		*rp->rx_bytes += RP_HDR_SIZE + h->rf_len;
		return 0;
	}
	case RP_RB_CURSOR: {
		rp_rb_cursor cu;
		memcpy(&cu, pl, sizeof(cu));
		ce_rebuild rb;
		uint64_t dc = 0;
		if ((err = ce_rebuild_cursor(rp->h, cu.cu_cursor, cu.cu_done, *rp->rx_bytes)) != 0 ||
		    (err = ce_rebuild_get(rp->h, &rb, &dc)) != 0) {
			rp->error(rp->conn, code_of(err), h, 1, ce_errmsg());
			return err;
		}
		/* durable progress (section 12.7): a commit asked for every RB_COMMIT_EVERY bytes, so a
		 * killed target loses about that much of the copy; not waited for (the cursor commits
		 * with the data it covers whenever the txg does: engine rebuild.c invariant 2) */
		if (*rp->rx_bytes - *rp->rx_committed >= RB_COMMIT_EVERY) {
			(void)ce_rebuild_commit(rp->h);
			*rp->rx_committed = *rp->rx_bytes;
		}
		rp_rb_progress pg = { cu.cu_cursor, dc, *rp->rx_bytes, 0, ce_repl_applied(rp->h), 0 };
		return rp->send(rp->conn, RP_RB_PROGRESS, 0, h->rf_id, &pg, sizeof(pg));
	}
	case RP_RB_END: {
		rp_rb_end en;
		memcpy(&en, pl, sizeof(en));
		if ((err = ce_rebuild_end(rp->h, rp->e, (int)en.en_outcome)) != 0) {
			rp->error(rp->conn, code_of(err), h, err != -EINVAL, ce_errmsg());
			return err == -EINVAL ? 0 : err;
		}
		log_info("replica %s: rebuild %s", rp->name, en.en_outcome == CE_RB_COMPLETE ? "complete" :
		    en.en_outcome == CE_RB_CANCELLED ? "cancelled (the cursor is kept)" : "failed (the cursor is kept)");
		return send_state(rp, h->rf_id);
	}
	case RP_RB_READ: {
		/* a member of I read by a rebuild whose source cannot read the range (section 8.4) */
		rp_rb_read rq;
		memcpy(&rq, pl, sizeof(rq));
		if (rq.rr_flags != 0) {
			rp->error(rp->conn, RPE_BAD_FRAME, h, 1, "RB_READ: unknown flags");
			return -EPROTO;
		}
		if (rq.rr_snap_identity != 0) {
			rp->error(rp->conn, RPE_INVALID_ARGUMENT, h, 0, "RB_READ of a snapshot: not built");
			return 0;
		}
		if (rq.rr_length == 0 || rq.rr_length > RP_MAX_IO || rq.rr_offset > size || rq.rr_length > size - rq.rr_offset) {
			rp->error(rp->conn, RPE_INVALID_RANGE, h, 0, "RB_READ outside the volume");
			return 0;
		}
		uint64_t a = ce_repl_applied(rp->h);
		if (a < rq.rr_min_seq) {
			char m[120];
			snprintf(m, sizeof(m), "RB_READ: applied %" PRIu64 " is below min_seq %" PRIu64, a, rq.rr_min_seq);
			rp->error(rp->conn, RPE_LAGGING, h, 0, m);
			return 0;
		}
		uint8_t *buf = xmalloc(rq.rr_length);
		piece_list pcs = { 0 };
		read_range(rp->rd, rq.rr_offset, rq.rr_length, buf, &pcs);
		for (size_t i = 0; i < pcs.n && err == 0; i++) {
			const piece *x = &pcs.v[i];
			uint32_t more = i + 1 < pcs.n ? RPF_MORE : 0;
			if (x->kind == PC_DATA) {
				rp_rb_data d = { x->off, (uint32_t)x->len, 0, a };
				memcpy(rp->out, &d, sizeof(d));
				memcpy(rp->out + sizeof(d), buf + (x->off - rq.rr_offset), x->len);
				err = rp->send(rp->conn, RP_RB_DATA, more, h->rf_id, rp->out, sizeof(d) + x->len);
			} else if (x->kind == PC_HOLE) {
				rp_rb_hole d = { x->off, x->len, a };
				err = rp->send(rp->conn, RP_RB_HOLE, more, h->rf_id, &d, sizeof(d));
			} else {
				log_warn("replica %s: RB_READ: %" PRIu64 "+%" PRIu64 " cannot be read here either (a "
				    "checksum or device error): answered RB_BAD", rp->export_name, x->off, x->len);
				rp_rb_bad d = { x->off, x->len, RPE_IO_ERROR, 0 };
				err = rp->send(rp->conn, RP_RB_BAD, more, h->rf_id, &d, sizeof(d));
			}
		}
		free(pcs.v);
		free(buf);
		return err;
	}
	default:
		rp->error(rp->conn, RPE_UNKNOWN_TYPE, h, 1, "not a rebuild frame");
		return -EPROTO;
	}
}

/* ---- the controller's job ---- */

typedef struct rng {
	uint64_t off, len;
} rng;

typedef struct rng_list {
	rng *v;
	size_t n, cap;
} rng_list;

static void
rl_push(rng_list *l, uint64_t off, uint64_t len)
{
	if (len == 0)
		return;
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 256;
		l->v = xrealloc(l->v, l->cap * sizeof(rng));
	}
	l->v[l->n++] = (rng){ off, len };
}

static int
rl_collect(void *arg, uint64_t off, uint64_t len, int kind)
{
	(void)kind;
	rl_push(arg, off, len);
	return 0;
}

static int
rng_cmp(const void *a, const void *b)
{
	const rng *x = a, *y = b;
	return x->off < y->off ? -1 : x->off > y->off;
}

/* Sort and coalesce (the union of every list pushed); clip to [from, end). */
static void
rl_merge(rng_list *l, uint64_t from)
{
	qsort(l->v, l->n, sizeof(rng), rng_cmp);
	size_t k = 0;
	for (size_t i = 0; i < l->n; i++) {
		uint64_t s = MAX(l->v[i].off, from), e = l->v[i].off + l->v[i].len;
		if (e <= s)
			continue;
		if (k > 0 && s <= l->v[k - 1].off + l->v[k - 1].len) {
			uint64_t pe = l->v[k - 1].off + l->v[k - 1].len;
			l->v[k - 1].len = MAX(pe, e) - l->v[k - 1].off;
		} else {
			l->v[k++] = (rng){ s, e - s };
		}
	}
	l->n = k;
}

typedef struct rbjob {
	ctrl *c;
	int idx, op;
	char replica[140], old[140];
	job *j;
	uint64_t jobid;
	rb_live *live;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* mailbox (the frame callback, under the controller's lock then mu) */
	int have_state;
	rp_rb_state state;
	int have_ranges;
	rp_rb_ranges rr;
	rng_list rr_items;
	int rr_frames;
	uint64_t rr_bytes;
	uint64_t pg_bytes, pg_cursor, pg_durable;
	/* progress */
	ctrl_rb_progress prog;
	uint64_t sent_bytes;          /* RB_DATA and RB_HOLE bytes queued (flow control) */
	uint64_t cursor_sent;         /* sent_bytes at the last RB_CURSOR */
	uint64_t kept_newer;          /* bytes cut out by invariant 1 */
	uint64_t start_ns, rate_ns, rate_done;
	double rate;
	/* the other sources (section 12.9): members of I read by RB_READ on connections of the job's own */
	ce_epoch e;                   /* the controller's epoch (their frames carry it) */
	uint64_t J;                   /* the join point: RB_READ's min_seq */
	int nalt, alt_listed, local_lost;
	char alt_addr[4][64], alt_pool[4][64];
	int alt_fd[4], alt_dead[4];
	uint64_t alt_id;
	uint8_t *abuf;                /* an answer frame's payload */
	uint64_t repaired;            /* bytes the local source could not read, read from another member */
	piece_list lost;              /* ranges no member could read, outside the live set (DATA_LOST) */
	uint64_t lost_bytes, first_lost;
} rbjob;

/* ---- the other sources (section 12.9; replica-protocol.md section 8.4) ---- */

static void
alt_close(rbjob *r, int k, const char *why)
{
	if (r->alt_fd[k] >= 0)
		close(r->alt_fd[k]);
	r->alt_fd[k] = -1;
	r->alt_dead[k] = 1;
	log_warn("replicated volume %s: rebuild of %s: %s/%s is no longer read from: %s", ctrl_rb_name(r->c),
	    r->replica, r->alt_addr[k], r->alt_pool[k], why);
}

/* Member k's connection of the job's own, opened on first use; 0 or -errno (then it is not asked again). */
static int
alt_open(rbjob *r, int k)
{
	if (r->alt_dead[k])
		return -EPIPE;
	if (r->alt_fd[k] >= 0)
		return 0;
	char msg[300] = "";
	uint64_t feat = 0;
	int fd = -1, err = ctrl_rb_attach(r->c, r->alt_addr[k], r->alt_pool[k], &fd, &feat, msg, sizeof(msg));
	if (err == 0 && !(feat & RP_FEAT_RB_READ)) {
		close(fd);
		snprintf(msg, sizeof(msg), "its caskd does not offer RB_READ (replica protocol feature 4)");
		err = -EOPNOTSUPP;
	}
	if (err != 0) {
		alt_close(r, k, msg);
		return err;
	}
	r->alt_fd[k] = fd;
	return 0;
}

static int
alt_recv(int fd, rp_hdr *h, uint8_t *buf)
{
	if (sock_read_full(fd, h, sizeof(*h)) != 0)
		return -EPIPE;
	if (rp_check_header(h, RP_MAX_PAYLOAD, RP_VERSION) != 0)
		return -EPROTO;
	if (h->rf_len && sock_read_full(fd, buf, h->rf_len) != 0)
		return -EPIPE;
	return rp_verify(h, buf) == 0 ? 0 : -EBADMSG;
}

/*
 * RB_READ [off, off+len) from member k: its bytes into buf (at off - base),
 * the pieces of its answer into *out. 0, or -errno with *why (the
 * connection is then of no more use).
 */
static int
alt_read(rbjob *r, int k, uint64_t off, uint64_t len, uint8_t *buf, uint64_t base, piece_list *out, char *why,
    size_t wlen)
{
	int fd = r->alt_fd[k];
	uint64_t deadline = util_now_ns() + 10ull * 1000000000ull; /* a member lagging behind J catches up */
	for (;;) {
		rp_rb_read rq = { off, (uint32_t)len, 0, 0, r->J };
		rp_hdr h;
		uint64_t id = ++r->alt_id;
		rp_hdr_init(&h, RP_RB_READ, 0, sizeof(rq), r->e.counter, r->e.node, 0, id);
		rp_seal(&h, &rq, sizeof(rq));
		if (sock_write_full(fd, &h, sizeof(h)) != 0 || sock_write_full(fd, &rq, sizeof(rq)) != 0) {
			snprintf(why, wlen, "the connection was lost");
			return -EPIPE;
		}
		uint64_t at = off;
		int lagging = 0;
		for (;;) {
			int err = alt_recv(fd, &h, r->abuf);
			if (err != 0) {
				snprintf(why, wlen, "no answer to RB_READ (%s)", strerror(-err));
				return err;
			}
			if (h.rf_id != id) /* KEEPALIVE, APPLIED ...: not ours */
				continue;
			if (h.rf_type == RP_ERROR && h.rf_len == sizeof(rp_error)) {
				rp_error er;
				memcpy(&er, r->abuf, sizeof(er));
				er.er_msg[sizeof(er.er_msg) - 1] = '\0';
				if (er.er_code == RPE_LAGGING && util_now_ns() < deadline) {
					lagging = 1;
					break;
				}
				snprintf(why, wlen, "%s: %s", rp_err_name(er.er_code), er.er_msg);
				return -EIO;
			}
			uint64_t po, pn;
			int kind;
			if (h.rf_type == RP_RB_DATA && h.rf_len >= sizeof(rp_rb_data)) {
				rp_rb_data d;
				memcpy(&d, r->abuf, sizeof(d));
				po = d.offset, pn = d.length, kind = PC_DATA;
				if (h.rf_len != sizeof(d) + pn)
					pn = 0;
			} else if (h.rf_type == RP_RB_HOLE && h.rf_len == sizeof(rp_rb_hole)) {
				rp_rb_hole d;
				memcpy(&d, r->abuf, sizeof(d));
				po = d.offset, pn = d.length, kind = PC_HOLE;
			} else if (h.rf_type == RP_RB_BAD && h.rf_len == sizeof(rp_rb_bad)) {
				rp_rb_bad d;
				memcpy(&d, r->abuf, sizeof(d));
				po = d.bd_offset, pn = d.bd_length, kind = PC_BAD;
			} else {
				snprintf(why, wlen, "RB_READ answered with %s", rp_type_name(h.rf_type));
				return -EPROTO;
			}
			if (po != at || pn == 0 || pn > off + len - at) {
				snprintf(why, wlen, "RB_READ answered %" PRIu64 "+%" PRIu64 " where %" PRIu64 " was due",
				    po, pn, at);
				return -EPROTO;
			}
			if (kind == PC_DATA)
				memcpy(buf + (po - base), r->abuf + sizeof(rp_rb_data), pn);
			pc_push(out, po, pn, kind);
			at += pn;
			if (!(h.rf_flags & RPF_MORE))
				break;
		}
		if (lagging) {
			out->n = 0;
			usleep(10000);
			continue;
		}
		if (at != off + len) {
			snprintf(why, wlen, "RB_READ's answer ended at %" PRIu64 " of %" PRIu64, at, off + len);
			return -EPROTO;
		}
		return 0;
	}
}

/*
 * [off, off+len), which the source before member k0 could not read: from
 * the other members of I in turn, into buf (at off - base) and *pl; what
 * none can read becomes PC_BAD in *pl. Each range is asked of each member
 * at most once (no loop: section 12.9).
 */
static void
fetch_alt(rbjob *r, uint64_t off, uint64_t len, int k0, uint8_t *buf, uint64_t base, piece_list *pl)
{
	if (!r->alt_listed) {
		r->nalt = ctrl_rb_peers(r->c, r->idx, r->alt_addr, r->alt_pool, 4);
		for (int k = 0; k < 4; k++)
			r->alt_fd[k] = -1;
		r->alt_listed = 1;
		if (r->abuf == NULL)
			r->abuf = xmalloc(RP_MAX_PAYLOAD);
	}
	for (int k = k0; k < r->nalt; k++) {
		if (alt_open(r, k) != 0)
			continue;
		piece_list got = { 0 };
		char why[300] = "";
		if (alt_read(r, k, off, len, buf, base, &got, why, sizeof(why)) != 0) {
			alt_close(r, k, why);
			free(got.v);
			continue;
		}
		uint64_t good = 0;
		for (size_t i = 0; i < got.n; i++)
			good += got.v[i].kind == PC_BAD ? 0 : got.v[i].len;
		if (good > 0) {
			r->repaired += good;
			log_warn("replicated volume %s: rebuild of %s: %" PRIu64 "+%" PRIu64 " read from %s/%s instead "
			    "(%" PRIu64 " bytes of it readable there)", ctrl_rb_name(r->c), r->replica, off, len,
			    r->alt_addr[k], r->alt_pool[k], good);
		}
		for (size_t i = 0; i < got.n; i++) {
			if (got.v[i].kind == PC_BAD)
				fetch_alt(r, got.v[i].off, got.v[i].len, k + 1, buf, base, pl);
			else
				pc_push(pl, got.v[i].off, got.v[i].len, got.v[i].kind);
		}
		free(got.v);
		return;
	}
	pc_push(pl, off, len, PC_BAD);
}

/* A piece no member could read, outside the live set: lost (section 12.9). */
static int
lost_piece(void *arg, uint64_t off, uint64_t len)
{
	rbjob *r = arg;
	pc_push(&r->lost, off, len, PC_BAD);
	r->lost_bytes += len;
	r->first_lost = MIN(r->first_lost, off);
	return 0;
}


static void
on_frame(void *arg, const rp_hdr *h, const uint8_t *pl)
{
	rbjob *r = arg;
	pthread_mutex_lock(&r->mu);
	switch (h->rf_type) {
	case RP_RB_STATE:
		if (h->rf_len == sizeof(rp_rb_state)) {
			memcpy(&r->state, pl, sizeof(r->state));
			r->have_state = 1;
		}
		break;
	case RP_RB_RANGES: {
		rp_rb_ranges rr;
		if (h->rf_len < sizeof(rr))
			break;
		memcpy(&rr, pl, sizeof(rr));
		if (h->rf_len != sizeof(rr) + (uint64_t)rr.rr_n * sizeof(rp_rb_range))
			break;
		for (uint32_t i = 0; i < rr.rr_n; i++) {
			rp_rb_range x;
			memcpy(&x, pl + sizeof(rr) + (size_t)i * sizeof(x), sizeof(x));
			rl_push(&r->rr_items, x.offset, x.length);
		}
		r->rr = rr;
		r->rr.rr_pad = (h->rf_flags & RPF_MORE) != 0;
		r->rr_bytes += RP_HDR_SIZE + h->rf_len;
		r->have_ranges = 1;
		break;
	}
	case RP_RB_PROGRESS:
		if (h->rf_len == sizeof(rp_rb_progress)) {
			rp_rb_progress pg;
			memcpy(&pg, pl, sizeof(pg));
			r->pg_bytes = pg.pg_bytes_applied;
			r->pg_cursor = pg.pg_cursor;
			r->pg_durable = pg.pg_durable_cursor;
		}
		break;
	}
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

/* Wait until *flag (under r->mu) or T fails or the deadline passes. */
static int
wait_for(rbjob *r, int *flag, const char *what)
{
	uint64_t deadline = util_now_ns() + (uint64_t)RB_WAIT_MS * 1000000ull;
	for (;;) {
		pthread_mutex_lock(&r->mu);
		int got = *flag;
		if (got)
			*flag = 0;
		pthread_mutex_unlock(&r->mu);
		if (got)
			return 0;
		ctrl_rb_lock(r->c);
		int failed = ctrl_rb_failed(r->c, r->idx);
		ctrl_rb_unlock(r->c);
		if (failed)
			return err_set(-EPIPE, "the replica %s failed while rebuilding (waiting for %s)", r->replica, what);
		if (r->j != NULL && job_cancelled(r->j))
			return -ECANCELED;
		if (util_now_ns() > deadline)
			return err_set(-ETIMEDOUT, "the replica %s did not answer %s", r->replica, what);
		pthread_mutex_lock(&r->mu);
		if (!*flag)
			util_cond_wait_ms(&r->cv, &r->mu, 20);
		pthread_mutex_unlock(&r->mu);
	}
}

static void
publish(rbjob *r, const char *state)
{
	uint64_t now = util_now_ns();
	if (now - r->rate_ns >= 1000000000ull) {
		double secs = (double)(now - r->rate_ns) / 1e9;
		r->rate = (double)(r->prog.done - r->rate_done) / secs;
		r->rate_ns = now;
		r->rate_done = r->prog.done;
	}
	r->prog.rate = (uint64_t)r->rate;
	r->prog.eta_s = r->rate > 0 && r->prog.total > r->prog.done ? (uint64_t)((double)(r->prog.total -
	    r->prog.done) / r->rate) : 0;
	pthread_mutex_lock(&r->mu);
	r->prog.durable_cursor = r->pg_durable;
	pthread_mutex_unlock(&r->mu);
	snprintf(r->prog.state, sizeof(r->prog.state), "%s", state);
	ctrl_rb_set_progress(r->c, r->idx, &r->prog);
}

/* The common point of section 12.2: the newest epoch both histories adopted; -1 when none. */
static int
common_point(const eh_phys *hs, uint32_t ns, uint64_t applied_s, const eh_phys *ht, uint32_t nt, uint64_t applied_t,
    uint64_t *c, ce_epoch *e)
{
	for (int i = (int)ns - 1; i >= 0; i--) {
		if (!(hs[i].eh_flags & EH_ADOPTED))
			continue;
		for (int k = (int)nt - 1; k >= 0; k--) {
			if (!(ht[k].eh_flags & EH_ADOPTED) || ht[k].eh_epoch.ep_counter != hs[i].eh_epoch.ep_counter ||
			    ht[k].eh_epoch.ep_node != hs[i].eh_epoch.ep_node)
				continue;
			uint64_t end_s = i + 1 < (int)ns ? hs[i + 1].eh_base : applied_s;
			uint64_t end_t = k + 1 < (int)nt ? ht[k + 1].eh_base : applied_t;
			*c = MIN(end_s, end_t);
			*e = (ce_epoch){ hs[i].eh_epoch.ep_counter, hs[i].eh_epoch.ep_node };
			return 0;
		}
	}
	return -1;
}

/* List T's ranges after base (or all, full) through RB_SCAN pages into r->rr_items. */
static int
scan_target(rbjob *r, uint64_t base, int full)
{
	uint64_t from = 0;
	for (int first = 1;; first = 0) {
		rp_rb_scan sc;
		memset(&sc, 0, sizeof(sc));
		sc.sc_base_seq = base;
		sc.sc_from = from;
		sc.sc_max = RP_RB_MAX_RANGES;
		sc.sc_flags = (full ? RB_SCAN_FULL : 0) | (first ? RB_SCAN_SYNC : 0);
		ctrl_rb_lock(r->c);
		int err = ctrl_rb_queue(r->c, r->idx, RP_RB_SCAN, &sc, sizeof(sc), NULL, 0);
		ctrl_rb_unlock(r->c);
		if (err != 0)
			return err_set(-EPIPE, "the replica %s failed while listing", r->replica);
		if ((err = wait_for(r, &r->have_ranges, "RB_SCAN")) != 0)
			return err;
		pthread_mutex_lock(&r->mu);
		int more = r->rr.rr_pad;
		from = r->rr.rr_next;
		pthread_mutex_unlock(&r->mu);
		if (!more)
			return 0;
	}
}

typedef struct cut_ctx {
	rbjob *r;
	const uint8_t *buf;          /* the chunk's bytes from base on; NULL: a hole */
	uint64_t base;
	uint64_t state_seq;
} cut_ctx;

/* One piece outside the live set: an RB_DATA (at most 1 MiB, it is within a chunk) or an RB_HOLE. */
static int
queue_piece(void *arg, uint64_t off, uint64_t len)
{
	cut_ctx *x = arg;
	rbjob *r = x->r;
	int err;
	if (x->buf != NULL) {
		rp_rb_data d = { off, (uint32_t)len, 0, x->state_seq };
		err = ctrl_rb_queue(r->c, r->idx, RP_RB_DATA, &d, sizeof(d), x->buf + (off - x->base), len);
		r->prog.transferred += RP_HDR_SIZE + sizeof(d) + len;
		r->sent_bytes += RP_HDR_SIZE + sizeof(d) + len;
	} else {
		rp_rb_hole d = { off, len, x->state_seq };
		err = ctrl_rb_queue(r->c, r->idx, RP_RB_HOLE, &d, sizeof(d), NULL, 0);
		r->prog.transferred += RP_HDR_SIZE + sizeof(d);
		r->sent_bytes += RP_HDR_SIZE + sizeof(d);
	}
	return err;
}

/* Hold back until T is within RB_AHEAD of what was queued, and the rate limit allows `more` bytes. */
static int
throttle(rbjob *r, uint32_t rate_mbs, uint64_t more)
{
	for (;;) {
		pthread_mutex_lock(&r->mu);
		uint64_t ack = r->pg_bytes;
		pthread_mutex_unlock(&r->mu);
		if (r->sent_bytes <= ack + rb_ahead())
			break;
		ctrl_rb_lock(r->c);
		int failed = ctrl_rb_failed(r->c, r->idx);
		ctrl_rb_unlock(r->c);
		if (failed)
			return err_set(-EPIPE, "the replica %s failed while rebuilding", r->replica);
		if (job_cancelled(r->j))
			return -ECANCELED;
		usleep(2000);
	}
	if (rate_mbs > 0) {
		/* a token bucket on the source reads: done + more bytes may take (done + more) / rate seconds */
		uint64_t budget_ns = (uint64_t)((double)(r->prog.done + more) / ((double)rate_mbs * 1048576.0) * 1e9);
		uint64_t now = util_now_ns();
		if (now - r->start_ns < budget_ns) {
			uint64_t wait = budget_ns - (now - r->start_ns);
			usleep((useconds_t)MIN(wait / 1000, 1000000ull));
		}
	}
	return job_cancelled(r->j) ? -ECANCELED : 0;
}

/*
 * Every listed byte below `at` is queued: tell T (RB_CURSOR; its
 * RB_PROGRESS answer feeds throttle) once RB_CURSOR_EVERY bytes were
 * queued since the last cursor, and always with force (the end). A cursor
 * costs the target a record update, so it is not sent per chunk.
 */
static int
maybe_cursor(rbjob *r, uint64_t at, int force)
{
	if (!force && r->sent_bytes - r->cursor_sent < MIN(RB_CURSOR_EVERY, rb_ahead() / 4))
		return 0;
	rp_rb_cursor cu = { MIN(at, r->first_lost), r->prog.done }; /* never past a lost range: a retry copies it */
	ctrl_rb_lock(r->c);
	int err = ctrl_rb_queue(r->c, r->idx, RP_RB_CURSOR, &cu, sizeof(cu), NULL, 0);
	ctrl_rb_unlock(r->c);
	r->prog.transferred += RP_HDR_SIZE + sizeof(cu);
	r->cursor_sent = r->sent_bytes;
	return err ? err_set(-EPIPE, "the replica %s failed while rebuilding", r->replica) : 0;
}

/*
 * Copy range [off, off+len) from the source to T (section 12.4). A chunk
 * is read from the local replica as pieces; what it cannot read (a block
 * failing its checksum, an unreadable map), or all of it once the local
 * replica has failed, is read from the other members of I (fetch_alt);
 * what none can read is lost. Then, under the controller's lock, every
 * piece is cut around the live set: data and holes are queued to T, lost
 * bytes recorded (a live write after J that covers them makes them moot).
 */
static int
copy_range(rbjob *r, ce_vol *src, uint64_t off, uint64_t len, uint64_t state_seq, uint8_t *buf, uint32_t rate)
{
	uint64_t end = off + len;
	piece_list pcs = { 0 }, local = { 0 };
	int err = 0;
	for (uint64_t at = off; at < end && err == 0;) {
		uint64_t n = MIN(end - at, (uint64_t)RP_MAX_IO);
		if ((err = throttle(r, rate, n)) != 0)
			break;
		uint64_t covered;
		pcs.n = local.n = 0;
		if (!ctrl_rb_local_ok(r->c)) {
			/* the source failed (section 12.7, "S killed"): the other members hold the same state */
			if (!r->local_lost)
				log_warn("replicated volume %s: rebuild of %s: the local replica failed at %" PRIu64
				    "; the rest is read from the other in-sync replicas", ctrl_rb_name(r->c), r->replica, at);
			r->local_lost = 1;
			fetch_alt(r, at, n, 0, buf, at, &pcs);
			covered = n;
		} else {
			int64_t got = read_pieces(src, at, n, buf, &local);
			if (got < 0) {
				log_warn("replicated volume %s: rebuild of %s: the local replica cannot map %" PRIu64 "+%"
				    PRIu64 ": %s", ctrl_rb_name(r->c), r->replica, at, n, ce_errmsg());
				local.n = 0;
				pc_push(&local, at, n, PC_BAD);
				got = (int64_t)n;
			}
			covered = got ? (uint64_t)got : n;
			for (size_t i = 0; i < local.n; i++) {
				if (local.v[i].kind != PC_BAD) {
					pc_push(&pcs, local.v[i].off, local.v[i].len, local.v[i].kind);
					continue;
				}
				log_warn("replicated volume %s: rebuild of %s: %" PRIu64 "+%" PRIu64 " cannot be read from "
				    "the local replica (a checksum or device error)", ctrl_rb_name(r->c), r->replica,
				    local.v[i].off, local.v[i].len);
				fetch_alt(r, local.v[i].off, local.v[i].len, 0, buf, at, &pcs);
			}
		}
		/* invariant 1: cut and queue under the controller's lock */
		ctrl_rb_lock(r->c);
		for (size_t i = 0; i < pcs.n && err == 0; i++) {
			const piece *x = &pcs.v[i];
			if (x->kind == PC_BAD) {
				(void)live_cut(r->live, x->off, x->len, lost_piece, r, &err);
				continue;
			}
			cut_ctx cx = { r, x->kind == PC_HOLE ? NULL : buf, at, state_seq };
			r->kept_newer += live_cut(r->live, x->off, x->len, queue_piece, &cx, &err);
		}
		ctrl_rb_unlock(r->c);
		if (err != 0) {
			err = err_set(-EPIPE, "the replica %s failed while rebuilding", r->replica);
			break;
		}
		at += covered;
		r->prog.done += covered;
		if ((err = maybe_cursor(r, at, 0)) != 0)
			break;
		if (job_progress(r->j, r->prog.done, r->prog.total)) {
			err = -ECANCELED;
			break;
		}
		publish(r, "running");
	}
	free(pcs.v);
	free(local.v);
	return err;
}

/* The DATA_LOST failure (section 12.9): the lost ranges, the first few named. */
static int
lost_error(rbjob *r)
{
	char names[300] = "";
	size_t o = 0;
	for (size_t i = 0; i < r->lost.n && i < 8 && o < sizeof(names); i++)
		o += (size_t)snprintf(names + o, sizeof(names) - o, "%s%" PRIu64 "+%" PRIu64, i ? ", " : "",
		    r->lost.v[i].off, r->lost.v[i].len);
	log_err("replicated volume %s: rebuild of %s: %" PRIu64 " bytes in %zu ranges cannot be read from any "
	    "in-sync replica: %s%s", ctrl_rb_name(r->c), r->replica, r->lost_bytes, r->lost.n, names,
	    r->lost.n > 8 ? ", ..." : "");
	return err_setc(CE_E_DATA_LOST, -EIO, "data lost: %" PRIu64 " bytes in %zu range(s) (offset+length: %s%s) "
	    "cannot be read from any in-sync replica (checksum or device errors); %s stays degraded with its "
	    "cursor before them: rewrite or trim them, then `cask vol replica rebuild` again", r->lost_bytes,
	    r->lost.n, names, r->lost.n > 8 ? ", ..." : "", r->replica);
}

static int
end_target(rbjob *r, int outcome)
{
	rp_rb_end en = { (uint32_t)outcome, 0, 0 };
	ctrl_rb_lock(r->c);
	int err = ctrl_rb_queue(r->c, r->idx, RP_RB_END, &en, sizeof(en), NULL, 0);
	ctrl_rb_unlock(r->c);
	if (err != 0)
		return err_set(-EPIPE, "the replica %s failed before the end of its rebuild", r->replica);
	return wait_for(r, &r->have_state, "RB_END");
}

static int
rebuild_work(job *j, void *arg)
{
	rbjob *r = arg;
	pthread_mutex_lock(&r->mu); /* repl_rebuild_start has set prog.job */
	r->j = j;
	pthread_mutex_unlock(&r->mu);
	char msg[400] = "";
	int err = 0, started = 0, idx = -1;
	int create = r->op == RB_OP_ADD || r->op == RB_OP_REPLACE;
	ctrl *c = r->c;
	rp_status st;
	ce_epoch e;
	uint64_t src_id;
	uint32_t rate;
	ce_repl_info li;
	ce_vol *src = ctrl_rb_source(c, &e, &src_id, &rate, &li);
	uint8_t *buf = NULL;
	rng_list ranges = { 0 };
	if (src == NULL) {
		err = err_setc(CE_E_IO_ERROR, -EIO, "the local replica is not in sync: no source for a rebuild");
		goto out;
	}
	idx = r->idx;
	if ((err = ctrl_rb_connect(c, idx, create, &st, msg, sizeof(msg))) != 0) {
		err = err_setc(err == -EHOSTUNREACH ? CE_E_PEER_UNREACHABLE : ce_errcode_of(err), err, "%s", msg);
		goto out;
	}
	/* plan (sections 12.1, 12.2, 12.7) */
	rb_phys trb;
	memcpy(&trb, st.st_rb, sizeof(trb));
	eh_phys hs[CE_REPL_HIST], ht[CE_REPL_HIST];
	memcpy(hs, li.rec + 1536, sizeof(hs));
	memcpy(ht, st.st_hist, sizeof(ht));
	uint32_t ns = MIN(li.hist_count, CE_REPL_HIST), nt = 0;
	for (nt = 0; nt < CE_REPL_HIST && ht[nt].eh_epoch.ep_counter != 0; nt++)
		;
	rp_rb_begin b;
	memset(&b, 0, sizeof(b));
	b.rb_source = src_id;
	uint64_t base = 0, resume_base = 0, K = 0;
	int full = 0, resume = 0;
	ce_epoch be = e;
	if (!create && st.st_state == RP_REBUILDING && trb.rb_kind != 0 &&
	    (r->op != RB_OP_FULL || trb.rb_kind == CE_RB_FULL)) {
		resume = 1;
		full = trb.rb_kind == CE_RB_FULL;
		base = trb.rb_base_seq;
		be = (ce_epoch){ trb.rb_base_epoch.ep_counter, trb.rb_base_epoch.ep_node };
		K = trb.rb_cursor;
		resume_base = st.st_applied; /* what it missed or lost since its durable live position */
		b.rb_flags = 1;
		b.rb_cursor = K;
	} else if (create || r->op == RB_OP_FULL ||
	    common_point(hs, ns, li.applied, ht, nt, st.st_applied, &base, &be) != 0) {
		full = 1;
		base = 0;
		for (uint32_t i = 0; i < ns; i++)
			if (hs[i].eh_epoch.ep_counter == e.counter && hs[i].eh_epoch.ep_node == e.node)
				base = hs[i].eh_base; /* the base of this epoch: what a new member adopts at the end */
		be = e;
	}
	b.rb_kind = full ? CE_RB_FULL : CE_RB_DELTA;
	b.rb_base_ctr = be.counter;
	b.rb_base_node = be.node;
	b.rb_base_seq = base;
	r->prog.kind = (int)b.rb_kind;
	r->e = e;
	r->first_lost = UINT64_MAX;
	r->live = rb_live_new();
	uint64_t J;
	if ((err = ctrl_rb_start(c, idx, &b, on_frame, r, r->live, &J)) != 0) {
		rb_live_free(r->live);
		r->live = NULL;
		err = err_set(-ESTALE, "the controller of %s stopped", ctrl_rb_name(c));
		goto out;
	}
	started = 1;
	r->J = J;
	if ((err = wait_for(r, &r->have_state, "RB_BEGIN")) != 0)
		goto out;
	log_info("replicated volume %s: rebuilding %s (%s%s, from seq %" PRIu64 ", joined at %" PRIu64 ")",
	    ctrl_rb_name(c), r->replica, full ? "full" : "delta", resume ? ", resumed" : "", base, J);
	/* list (section 12.3): S after it applied J, T by RB_SCAN */
	if ((err = ctrl_rb_wait_local(c, J)) != 0) {
		err = err_set(err, "the local replica did not reach the join point");
		goto out;
	}
	rng_list sl = { 0 };
	if ((err = ce_rebuild_scan(src, base, full, 0, rl_collect, &sl)) < 0)
		goto out_sl;
	if ((err = scan_target(r, base, full)) != 0)
		goto out_sl;
	for (size_t i = 0; i < r->rr_items.n; i++)
		rl_push(&sl, r->rr_items.v[i].off, r->rr_items.v[i].len);
	r->rr_items.n = 0;
	rl_merge(&sl, K); /* a resume: the original rebuild's rest */
	ranges = sl;
	if (resume) {
		rng_list ml = { 0 };
		if ((err = ce_rebuild_scan(src, resume_base, 0, 0, rl_collect, &ml)) < 0 ||
		    (err = scan_target(r, resume_base, 0)) != 0) {
			free(ml.v);
			goto out;
		}
		for (size_t i = 0; i < r->rr_items.n; i++)
			rl_push(&ml, r->rr_items.v[i].off, r->rr_items.v[i].len);
		for (size_t i = 0; i < ml.n; i++)
			rl_push(&ranges, ml.v[i].off, ml.v[i].len);
		free(ml.v);
		rl_merge(&ranges, 0);
	}
	pthread_mutex_lock(&r->mu);
	r->prog.transferred += r->rr_bytes;
	pthread_mutex_unlock(&r->mu);
	for (size_t i = 0; i < ranges.n; i++)
		r->prog.total += ranges.v[i].len;
	job_progress(j, 0, r->prog.total);
	publish(r, "running");
	/* copy (section 12.4) */
	buf = xmalloc(RP_MAX_IO);
	r->start_ns = r->rate_ns = util_now_ns();
	for (size_t i = 0; i < ranges.n && err == 0; i++)
		err = copy_range(r, src, ranges.v[i].off, ranges.v[i].len, J, buf, rate);
	if (err == 0 && r->lost.n > 0) {
		/* T's cursor stays at the first lost byte (maybe_cursor never sends more) */
		(void)maybe_cursor(r, ranges.v[ranges.n - 1].off + ranges.v[ranges.n - 1].len, 1);
		err = lost_error(r);
	}
	if (err != 0)
		goto out;
	ctrl_rb_copied(c, idx); /* every byte T lacked is in its queue: a snapshot now finds it complete */
	/* end and join (section 12.5) */
	if ((err = maybe_cursor(r, ranges.n ? ranges.v[ranges.n - 1].off + ranges.v[ranges.n - 1].len : 0, 1)) != 0 ||
	    (err = end_target(r, CE_RB_COMPLETE)) != 0)
		goto out;
	if ((err = ctrl_rb_join(c, idx, msg, sizeof(msg))) != 0) {
		err = err_set(err, "%s", msg);
		goto out;
	}
	started = 0;
	char res[300];
	snprintf(res, sizeof(res), "%s in sync: %" PRIu64 " bytes listed, %" PRIu64 " transferred, %" PRIu64
	    " kept newer, %" PRIu64 " read from other replicas (unreadable at the source)", r->replica, r->prog.total,
	    r->prog.transferred, r->kept_newer, r->repaired);
	job_set_result(j, res);
	log_info("replicated volume %s: rebuild of %s complete: %s", ctrl_rb_name(c), r->replica, res);
	publish(r, "done");
	if (r->op == RB_OP_REPLACE) {
		int oidx;
		if ((err = ctrl_rb_member(c, r->old, &oidx)) == 0 && (err = ctrl_rb_remove(c, oidx, msg, sizeof(msg))) != 0)
			err = err_set(err, "%s is in sync, but removing %s failed: %s", r->replica, r->old, msg);
		else if (err != 0)
			err = err_set(err, "%s is in sync; %s is no longer a member", r->replica, r->old);
	}
	goto done;
out_sl:
	ranges = sl;
out:
	if (started) {
		int cancelled = err == -ECANCELED, lost = r->lost.n > 0 && ce_errcode() == CE_E_DATA_LOST;
		/* T keeps its durable cursor; a cancel, or data lost (the cursor stopped before it), tells it
		 * so and T commits it (a failed connection cannot be told) */
		if (cancelled || lost) {
			char keep[1024];
			snprintf(keep, sizeof(keep), "%s", ce_errmsg());
			(void)end_target(r, cancelled ? CE_RB_CANCELLED : CE_RB_FAILED);
			if (lost)
				err = err_setc(CE_E_DATA_LOST, -EIO, "%s", keep);
		}
		ctrl_rb_stop(c, idx, cancelled ? "rebuild cancelled" : "rebuild failed");
		publish(r, cancelled ? "cancelled" : "failed");
	} else if (idx >= 0 && create) {
		(void)ctrl_rb_remove(c, idx, msg, sizeof(msg)); /* the member that was being added */
	}
done:
	free(buf);
	free(ranges.v);
	return err;
}

static void
rbjob_free(void *arg)
{
	rbjob *r = arg;
	for (int k = 0; r->alt_listed && k < r->nalt; k++)
		if (r->alt_fd[k] >= 0)
			close(r->alt_fd[k]);
	free(r->abuf);
	free(r->lost.v);
	ctrl_rb_release(r->c);
	rb_live_free(r->live);
	free(r->rr_items.v);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	free(r);
}

int
repl_rebuild_start(const char *export_name, const char *replica, const char *old, int op, uint64_t *jobid)
{
	int err;
	ctrl *c = ctrl_rb_claim(export_name, &err);
	if (c == NULL)
		return err == -ENOENT ? err_setc(CE_E_NOT_REPLICATED, -EINVAL, "%s is not a replicated volume this "
		    "caskd controls", export_name) : err == -EBUSY ? err_setc(CE_E_BUSY, -EBUSY, "%s: a rebuild "
		    "is running (one at a time per volume)", export_name) : err_set(-ESTALE, "%s is fenced",
		    export_name);
	int idx = -1;
	if (op == RB_OP_REPLACE && (err = ctrl_rb_member(c, old, &idx)) != 0) {
		ctrl_rb_release(c);
		return err_setc(CE_E_INVALID_ARGUMENT, -ENOENT, "%s is not a replica of %s", old, export_name);
	}
	if (op == RB_OP_REBUILD || op == RB_OP_FULL)
		err = ctrl_rb_member(c, replica, &idx);
	else
		err = ctrl_rb_add_slot(c, replica, &idx);
	if (err != 0) {
		ctrl_rb_release(c);
		return err == -ENOENT ? err_setc(CE_E_INVALID_ARGUMENT, -ENOENT, "%s is not a replica of %s", replica,
		    export_name) : err == -EEXIST ? err_setc(CE_E_REPLICA_EXISTS, -EEXIST, "%s is a replica of %s "
		    "already", replica, export_name) : err == -ENOSPC ? err_setc(CE_E_INVALID_ARGUMENT, -ENOSPC,
		    "%s has 5 replicas (the most)", export_name) : err_setc(CE_E_INVALID_ARGUMENT, -EINVAL,
		    "replica '%s': want HOST:PORT/POOL", replica);
	}
	rbjob *r = xcalloc(1, sizeof(*r));
	r->c = c;
	r->idx = idx;
	r->op = op;
	snprintf(r->replica, sizeof(r->replica), "%s", replica);
	snprintf(r->old, sizeof(r->old), "%s", old ? old : "");
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	char pool[64];
	const char *slash = strchr(export_name, '/');
	snprintf(pool, sizeof(pool), "%.*s", slash ? (int)(slash - export_name) : 0, export_name);
	char target[400];
	snprintf(target, sizeof(target), "%s %s", export_name, replica);
	/* owned by no connection: a rebuild goes on after the command that started it returns;
	 * its id is set under r->mu, which the work takes first */
	snprintf(r->prog.state, sizeof(r->prog.state), "running");
	pthread_mutex_lock(&r->mu);
	*jobid = job_start("rebuild", pool, target, 0, rebuild_work, r, rbjob_free);
	if (*jobid != 0)
		r->prog.job = *jobid;
	pthread_mutex_unlock(&r->mu);
	if (*jobid == 0) /* caskd is stopping: rbjob_free ran (it released the claim) */
		return err_setc(CE_E_BUSY, -ESHUTDOWN, "caskd is stopping");
	return 0;
}

int
repl_replica_remove(const char *export_name, const char *replica)
{
	int err, idx;
	ctrl *c = ctrl_rb_claim(export_name, &err);
	if (c == NULL)
		return err == -ENOENT ? err_setc(CE_E_NOT_REPLICATED, -EINVAL, "%s is not a replicated volume this "
		    "caskd controls", export_name) : err_setc(CE_E_BUSY, -EBUSY, "%s: a rebuild is running",
		    export_name);
	if ((err = ctrl_rb_member(c, replica, &idx)) != 0) {
		ctrl_rb_release(c);
		return err_setc(CE_E_INVALID_ARGUMENT, -ENOENT, "%s is not a replica of %s", replica, export_name);
	}
	char msg[300] = "";
	err = ctrl_rb_remove(c, idx, msg, sizeof(msg));
	ctrl_rb_release(c);
	return err ? err_setc(err == -EBUSY ? CE_E_BUSY : CE_E_IO_ERROR, err, "%s", msg) : 0;
}

void
rb_status_json(const ctrl_rb_progress *p, json_object *o)
{
	json_object *rb = json_object_new_object();
	json_object_object_add(rb, "kind", json_object_new_string(p->kind == CE_RB_FULL ? "full" :
	    p->kind == CE_RB_DELTA ? "delta" : p->kind == CE_RB_TAIL ? "tail" : "?"));
	json_object_object_add(rb, "state", json_object_new_string(p->state));
	json_object_object_add(rb, "done", json_object_new_uint64(p->done));
	json_object_object_add(rb, "total", json_object_new_uint64(p->total));
	json_object_object_add(rb, "transferred", json_object_new_uint64(p->transferred));
	json_object_object_add(rb, "rate", json_object_new_uint64(p->rate));
	json_object_object_add(rb, "eta_s", json_object_new_uint64(p->eta_s));
	json_object_object_add(rb, "durable_cursor", json_object_new_uint64(p->durable_cursor));
	json_object_object_add(rb, "job", json_object_new_uint64(p->job));
	json_object_object_add(o, "rebuild", rb);
}

/*
 * ---- the policy (section 12.8, as built: opt-in with -o rebuild_wait) ----
 *
 * One thread for the caskd, from the first volume with rebuild_wait set:
 * every 2 s it asks ctrl.c for the degraded members of such volumes (no
 * rebuild running), probes each one's address with a TCP connect (250 ms),
 * and starts a rebuild job for one that answers: a delta (or a resume)
 * when it has been offline for at most rebuild_wait seconds, else full.
 * A member gets at most RB_AUTO_TRIES automatic rebuilds until it joins
 * (a failing one is not retried for ever: `vol replica rebuild` still can).
 */
#define RB_AUTO_TRIES 3

static int
reachable(const char *replica)
{
	char addr[140], host[128], port[32];
	snprintf(addr, sizeof(addr), "%s", replica);
	char *slash = strrchr(addr, '/');
	if (slash != NULL)
		*slash = '\0';
	if (repl_split_addr(addr, host, sizeof(host), port, sizeof(port)) != 0)
		return 0;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV }, *res;
	if (getaddrinfo(host, port, &hints, &res) != 0)
		return 0;
	int ok = 0, fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd >= 0) {
		int r = connect(fd, res->ai_addr, res->ai_addrlen);
		if (r == 0) {
			ok = 1;
		} else if (errno == EINPROGRESS) {
			struct pollfd pf = { fd, POLLOUT, 0 };
			int e = 0;
			socklen_t el = sizeof(e);
			ok = poll(&pf, 1, 250) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) == 0 && e == 0;
		}
		close(fd);
	}
	freeaddrinfo(res);
	return ok;
}

static void
auto_one(const char *export_name, const char *replica, uint64_t offline_s, uint32_t wait, void *arg)
{
	(void)arg;
	if (!reachable(replica)) {
		ctrl_rb_untry(export_name, replica);
		return;
	}
	int op = offline_s <= wait ? RB_OP_REBUILD : RB_OP_FULL;
	uint64_t id;
	if (repl_rebuild_start(export_name, replica, NULL, op, &id) == 0)
		log_info("replicated volume %s: %s is back after %" PRIu64 " s: rebuild job %" PRIu64 " (%s)",
		    export_name, replica, offline_s, id, op == RB_OP_FULL ? "full: offline longer than rebuild_wait" :
		    "delta or resume");
	else
		ctrl_rb_untry(export_name, replica);
}

static void *
policy_thread(void *arg)
{
	(void)arg;
	for (;;) {
		sleep(2);
		ctrl_rb_candidates(RB_AUTO_TRIES, auto_one, NULL);
	}
	return NULL;
}

static void
policy_start_once(void)
{
	pthread_t t;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &at, policy_thread, NULL) != 0)
		log_warn("the automatic rebuild thread could not start: rebuild_wait has no effect");
	pthread_attr_destroy(&at);
}

void
repl_rebuild_policy_start(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, policy_start_once);
}
