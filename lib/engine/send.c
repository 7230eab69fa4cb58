/*
 * send.c -- send streams, receive, resume and diff (format:
 * docs/send-stream.md; on disk: docs/on-disk-format.md sections 4.3, 4.7).
 *
 * Sending walks the snapshot's tree with cowtree_diff: every block
 * pointer records its birth txg, so the blocks that changed after the
 * base snapshot are exactly those born after it, and a subtree whose
 * root was born before it is skipped without being read. A full send is
 * the same walk from txg 0 without holes. Changed data blocks are read
 * a record at a time, up to SEND_SLOTS records in flight through the
 * pool's io_uring ring (else blk_read_many on two worker threads), and
 * go out as DATA records of up to 1 MiB;
 * ranges that became holes go out as HOLE records. Every record carries
 * an XXH3-128 of itself, a sequence number, and the END record a hash of
 * every record header (each holding its record's hash, so the payloads
 * are hashed once), so damage, loss, duplication and reordering are all
 * caught before anything is presented as received.
 *
 * Receiving applies the records to a volume marked as a partial
 * receive (it cannot be opened meanwhile). Each block of a DATA record
 * is hashed once, to check the record, and copied into a block buffer of
 * its own in the same pass; the volume adopts the buffers with their
 * hashes, which the sync takes as the checksums of blocks it stores
 * uncompressed (vol.c invariant 7). After every record the resume
 * offset advances, and since it is part of the volume's record image
 * (kept for the syncing txg like the record, vol_mgmt_dirty), it commits
 * in the same txg as the data it covers, or later. A
 * verified END takes the snapshot (with the sender's identity) and
 * clears the mark in one txg. An interrupted or damaged stream leaves
 * the partial state: `send -t TOKEN` resumes at the offset, `recv -A`
 * abandons (destroy, or roll back to the base).
 *
 * Invariants:
 *   1. A volume is a partial receive from the txg that created (or
 *      marked) it until the txg of its received snapshot; every resume
 *      offset on disk is covered by data on disk.
 *   2. A stream is applied only onto the data it was made from: an
 *      incremental's base is matched by send identity, and the target
 *      must not have changed since the base.
 *   3. Nothing of a stream whose BEGIN is bad (or whose base is wrong) is
 *      applied.
 *   4. A stream carries its volume's snapshot policy only as version 2
 *      (a stream without one is version 1, which every cask reads). The
 *      receiver installs it in the txg of the received snapshot, and only
 *      on a volume that has no policy: a policy the target has is never
 *      replaced by a stream's (recv_finish).
 */
#include "recv.h"
#include "aread.h"
#include "blkio.h"
#include "bufpool.h"
#include "checksum.h"
#include "dataset.h"
#include "mos.h"
#include "sched_policy.h"
#include "snap.h"
#include "util.h"
#include "vol.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define SR_BEGIN 1u
#define SR_DATA 2u
#define SR_HOLE 3u
#define SR_END 4u
#define SR_HDR 64u
#define SR_BEGIN_LEN 512u
#define SR_END_LEN 48u
#define SR_MAX_DATA (1u << 20)
#define SB_MAGIC 0x4d52545344534143ull /* "CASKSTRM" */
#define SB_VERSION_1 1u /* without a snapshot policy: what every cask reads */
#define SB_VERSION 2u   /* the newest: BEGIN may carry the volume's snapshot policy */
#define SB_INCREMENTAL 1u
#define SB_RESUMED 2u
#define SB_POLICY 4u    /* version 2: sb_policy holds the source volume's snapshot policy */

typedef struct rec_hdr {
	uint32_t rh_type;
	uint32_t rh_flags;
	uint64_t rh_seq;
	uint64_t rh_offset;
	uint64_t rh_length;
	uint32_t rh_payload_len;
	uint32_t rh_pad;
	uint64_t rh_pad2;
	uint8_t rh_cksum[16];
} rec_hdr;
_Static_assert(sizeof(rec_hdr) == SR_HDR, "record header is 64 bytes");

typedef struct begin_phys {
	uint64_t sb_magic;
	uint32_t sb_version;
	uint32_t sb_flags;
	uint64_t sb_vol_guid;
	uint64_t sb_to_guid;
	uint64_t sb_to_txg;
	uint64_t sb_from_guid;
	uint64_t sb_from_txg;
	uint64_t sb_size;
	uint32_t sb_volblocksize;
	uint8_t sb_compress;
	uint8_t sb_checksum;
	uint8_t sb_sync;
	uint8_t sb_pad;
	uint64_t sb_resume_offset;
	uint64_t sb_estimate;
	uint32_t sb_every_min;   /* SB_POLICY: the policy (sched_phys's fields), else 0 */
	uint32_t sb_keep;
	uint32_t sb_hourly, sb_daily, sb_weekly, sb_monthly;
	uint8_t sb_reserved[144];
	char sb_to_name[256];
} begin_phys;
_Static_assert(sizeof(begin_phys) == SR_BEGIN_LEN, "BEGIN payload is 512 bytes");

typedef struct end_phys {
	uint64_t se_records;
	uint64_t se_data_bytes;
	uint64_t se_hole_bytes;
	uint8_t se_stream_cksum[16];
	uint64_t se_pad;
} end_phys;
_Static_assert(sizeof(end_phys) == SR_END_LEN, "END payload is 48 bytes");

static void
cksum16(const XXH128_hash_t h, uint8_t out[16])
{
	memcpy(out, &h.low64, 8);
	memcpy(out + 8, &h.high64, 8);
}

/*
 * A record's checksum: over its header with the checksum field zero,
 * then its payload; a DATA payload counts as the XXH3-128 of each of its
 * bs-byte blocks in turn (send-stream.md section 2), so a sender may take
 * a block's hash from its block pointer instead of hashing it again.
 * hashes: the blocks' hashes when known (NULL: computed here).
 */
static void
rec_cksum(const rec_hdr *rh, const void *payload, uint32_t bs, const uint8_t (*hashes)[16],
    uint8_t out[16])
{
	rec_hdr h = *rh;
	memset(h.rh_cksum, 0, sizeof(h.rh_cksum));
	XXH3_state_t st;
	XXH3_128bits_reset(&st);
	XXH3_128bits_update(&st, &h, sizeof(h));
	if (rh->rh_type == SR_DATA && bs > 0 && rh->rh_payload_len % bs == 0) {
		for (uint32_t i = 0; i < rh->rh_payload_len / bs; i++) {
			uint8_t bh[16];
			if (hashes != NULL)
				memcpy(bh, hashes[i], 16);
			else
				cksum16(XXH3_128bits((const uint8_t *)payload + (size_t)i * bs, bs), bh);
			XXH3_128bits_update(&st, bh, 16);
		}
	} else if (rh->rh_payload_len > 0) {
		XXH3_128bits_update(&st, payload, rh->rh_payload_len);
	}
	cksum16(XXH3_128bits_digest(&st), out);
}

static uint64_t
send_identity(const volume *s)
{
	return s->send_guid != 0 ? s->send_guid : s->guid;
}

/* ---- resume tokens ---- */

typedef struct token {
	uint64_t to_guid, from_guid, offset, vol_guid;
} token;

static void
token_format(const token *t, char *buf, size_t len)
{
	uint64_t w[5] = { t->to_guid, t->from_guid, t->offset, t->vol_guid, 0 };
	w[4] = XXH64(w, 32, 0);
	size_t at = (size_t)snprintf(buf, len, "1-");
	for (int i = 0; i < 5 && at < len; i++)
		at += (size_t)snprintf(buf + at, len - at, "%016" PRIx64, w[i]);
}

static int
token_parse(const char *s, token *t)
{
	uint64_t w[5];
	if (s == NULL || strncmp(s, "1-", 2) != 0 || strlen(s) != 2 + 80)
		return -EINVAL;
	for (int i = 0; i < 5; i++) {
		char part[17];
		memcpy(part, s + 2 + 16 * i, 16);
		part[16] = '\0';
		char *end;
		w[i] = strtoull(part, &end, 16);
		if (*end != '\0')
			return -EINVAL;
	}
	if (XXH64(w, 32, 0) != w[4])
		return -EINVAL;
	*t = (token){ w[0], w[1], w[2], w[3] };
	return 0;
}

static void
volume_token(const volume *v, char *buf, size_t len)
{
	token t = { v->rs.rs_to_guid, v->rs.rs_from_guid, v->rs.rs_offset, v->rs.rs_src_vol_guid };
	token_format(&t, buf, len);
}

/* ce_vol_info's receive_resume_token (pool->lock held). */
void
recv_token_of(const volume *v, char *buf, size_t len)
{
	if (!v->receiving || v->rs.rs_to_guid == 0)
		buf[0] = '\0';
	else
		volume_token(v, buf, len);
}

/* ---- the receive table in the MOS header ---- */

int
recv_table_load(ce_pool *p)
{
	mos_header_phys *mh = mos_hdr(p);
	if (mh->mh_version < 5)
		return 0;
	const recv_slot_phys *tab = (const recv_slot_phys *)mos_ptr(p, CE_MOS_RECV_OFF);
	for (unsigned i = 0; i < CE_RECV_SLOTS; i++) {
		if (tab[i].rs_vol_guid == 0)
			continue;
		volume *v = NULL;
		/* the partial receives are tracked already (vol_fill): few, so a scan */
		for (size_t k = 0; k < p->nrecv && v == NULL; k++)
			if (p->recv_vols[k]->guid == tab[i].rs_vol_guid && !p->recv_vols[k]->is_snap)
				v = p->recv_vols[k];
		if (v == NULL || !v->receiving)
			return err_set(-EIO, "pool %s: receive table slot %u names no partial receive", p->name, i);
		v->rs = v->rcap.rs = tab[i];
	}
	return 0;
}

/* v is (or becomes, in the open txg) a partial receive: the table is made of these (pool->lock). */
void
recv_track(ce_pool *p, volume *v)
{
	ASSERT_HELD(&p->lock);
	for (size_t k = 0; k < p->nrecv; k++)
		if (p->recv_vols[k] == v)
			return;
	if (p->nrecv == p->caprecv) {
		p->caprecv = p->caprecv ? p->caprecv * 2 : CE_RECV_SLOTS;
		p->recv_vols = xrealloc(p->recv_vols, p->caprecv * sizeof(volume *));
	}
	p->recv_vols[p->nrecv++] = v;
}

void
recv_fini(ce_pool *p)
{
	free(p->recv_vols);
	p->recv_vols = NULL;
	p->nrecv = p->caprecv = 0;
}

void
recv_forget(ce_pool *p, volume *v)
{
	ASSERT_HELD(&p->lock);
	for (size_t k = 0; k < p->nrecv; k++)
		if (p->recv_vols[k] == v) {
			p->recv_vols[k] = p->recv_vols[--p->nrecv];
			return;
		}
}

/*
 * Pass 1 of txg t: the table as the partial receives' images for t say
 * (volume.rcap: settled or saved like the record). Only the volumes that
 * are or were partial receives are read, never every dataset.
 */
int
recv_table_sync(ce_pool *p, uint64_t t)
{
	ASSERT(pool_sync_thread(p));
	recv_slot_phys tab[CE_RECV_SLOTS];
	memset(tab, 0, sizeof(tab));
	unsigned n = 0;
	pthread_mutex_lock(&p->lock);
	for (size_t k = 0; k < p->nrecv;) {
		volume *v = p->recv_vols[k];
		int gone = vol_destroyed_by(v, t);
		if (gone || (!v->rcap.receiving && !v->receiving)) {
			/* done with: its end (or its destroy) is in t, and it is no partial receive after */
			p->recv_vols[k] = p->recv_vols[--p->nrecv];
			continue;
		}
		/* one created after t's quiesce has no image of t */
		if (v->rcap.receiving && v->create_txg <= t) {
			VERIFY(n < CE_RECV_SLOTS);
			tab[n] = v->rcap.rs;
			tab[n++].rs_vol_guid = v->guid;
		}
		k++;
	}
	pthread_mutex_unlock(&p->lock);
	uint8_t *dst = mos_ptr(p, CE_MOS_RECV_OFF);
	if (memcmp(dst, tab, sizeof(tab)) != 0) {
		memcpy(dst, tab, sizeof(tab));
		mos_mark_dirty(p, CE_MOS_RECV_OFF, sizeof(tab));
		if (n > 0 && mos_hdr(p)->mh_version < 5) {
			mos_hdr(p)->mh_version = 5; /* older software would lose the partial state */
			mos_mark_dirty(p, 0, CE_META_BLOCK);
		}
	}
	return 0;
}

/* ---- lineage ---- */

/* Is `from` an ancestor of dataset `to` (in its chain or its origin's)? */
static int
is_ancestor(const volume *from, const volume *to)
{
	for (const volume *d = to->prev; d != NULL; d = d->prev)
		if (d == from)
			return 1;
	return 0;
}

/* ---- send ---- */

/*
 * Records on their way out, in order: DATA slots are read while earlier
 * slots are written, so reading overlaps writing. With the pool's
 * asynchronous reader (aread.c) every slot's blocks go to the ring as one
 * batch when the slot is queued, so up to SEND_SLOTS records (their runs
 * of contiguous blocks, each one device read) are in flight at once and
 * verified on the completion thread; the writer takes each block's hash
 * from its pointer when it has one, else hashes it (slot_hashes).
 * Without a ring (CE_POOL_NO_URING, wrapped backends) SEND_WORKERS
 * threads read the slots with blk_read_many, two at a time.
 */
#define SEND_SLOTS 16
#define SEND_WORKERS 2
enum { SL_FREE, SL_QUEUED, SL_READING, SL_READY };

typedef struct send_slot {
	int state;
	uint32_t type;          /* SR_DATA or SR_HOLE */
	uint64_t first, n;      /* blocks */
	bp_phys *bp;
	uint8_t *buf;
	uint8_t (*hash)[16];
	int err;
} send_slot;

typedef struct sender {
	ce_pool *p;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	send_slot slot[SEND_SLOTS];
	uint64_t head, tail;    /* next slot to write, next to fill */
	pthread_t workers[SEND_WORKERS];
	int nworkers, stop;
	int async;              /* slots are read through the ring (aread batches) */
	unsigned inflight;      /* aread batches not yet done (mu) */
	ce_write_fn wr;
	void *arg;
	const ce_send_opts *o;
	XXH3_state_t stream;
	uint64_t seq, out_bytes, total;
	uint32_t bs;
	uint64_t nblocks, first_blk;
	int holes;
	/* the DATA run being gathered and the HOLE run */
	bp_phys *run_bp;
	uint64_t run_first, run_n;
	uint64_t hole_first, hole_n;
	uint64_t records, data_bytes, hole_bytes;
	int counting; /* the estimate walk: count, send nothing */
} sender;

static int
put_record(sender *s, uint32_t type, uint64_t off, uint64_t len, const void *payload, uint32_t plen,
    const uint8_t (*hashes)[16])
{
	rec_hdr rh;
	memset(&rh, 0, sizeof(rh));
	rh.rh_type = type;
	rh.rh_seq = s->seq++;
	rh.rh_offset = off;
	rh.rh_length = len;
	rh.rh_payload_len = plen;
	rec_cksum(&rh, payload, s->bs, hashes, rh.rh_cksum);
	if (type != SR_END) /* the header carries its payload's checksum: hashing headers covers all */
		XXH3_128bits_update(&s->stream, &rh, sizeof(rh));
	int err = s->wr(s->arg, &rh, sizeof(rh));
	if (err == 0 && plen > 0)
		err = s->wr(s->arg, payload, plen);
	if (err == -ECANCELED)
		return err_set(err, "send cancelled after %" PRIu64 " bytes", s->out_bytes);
	if (err != 0)
		return err_set(err < 0 ? err : -EIO, "send: cannot write the stream: %s",
		    strerror(err < 0 ? -err : EIO));
	s->out_bytes += SR_HDR + plen;
	if (s->o != NULL && s->o->progress != NULL && s->o->progress(s->o->progress_arg, s->out_bytes,
	    s->total) != 0)
		return err_set(-ECANCELED, "send cancelled after %" PRIu64 " bytes", s->out_bytes);
	return 0;
}

/* The hashes of a DATA slot's blocks, once they are read. */
static void
slot_hashes(sender *s, send_slot *sl)
{
	for (uint64_t i = 0; i < sl->n; i++) {
		/* a block stored as it is, with an XXH3-128 checksum, already carries its hash */
		const bp_phys *bp = &sl->bp[i];
		if (bp->bp_comp == CE_COMP_OFF && bp->bp_cksum_type == CE_CK_XXH128 && bp->bp_psize == s->bs)
			memcpy(sl->hash[i], bp->bp_cksum, 16);
		else
			cksum16(XXH3_128bits(sl->buf + i * s->bs, s->bs), sl->hash[i]);
	}
}

/* Read a DATA slot's blocks and their hashes (a worker, no lock held). */
static int
slot_read(sender *s, send_slot *sl)
{
	uint8_t *dsts[SR_MAX_DATA / CE_VOLBLOCKSIZE_MIN];
	for (uint64_t i = 0; i < sl->n; i++)
		dsts[i] = sl->buf + i * s->bs;
	int err = blk_read_many(s->p, sl->bp, dsts, sl->n);
	if (err != 0)
		return err_set(err, "send: cannot read blocks at offset %" PRIu64 ": %s", sl->first * s->bs,
		    err == -EIO ? "checksum or IO error" : strerror(-err));
	slot_hashes(s, sl);
	return 0;
}

typedef struct slot_ref {
	sender *s;
	send_slot *sl;
} slot_ref;

/* An aread batch of a slot is done (the completion thread): every block verified, or err. */
static void
slot_done(void *arg, int err)
{
	slot_ref *ref = arg;
	sender *s = ref->s;
	pthread_mutex_lock(&s->mu);
	ref->sl->err = err;
	ref->sl->state = SL_READY;
	VERIFY3U(s->inflight, >, 0);
	s->inflight--;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	free(ref);
}

/* Send a queued DATA slot's reads to the ring (the walking thread). */
static void
slot_submit(sender *s, send_slot *sl)
{
	ce_pool *p = s->p;
	slot_ref *ref = xmalloc(sizeof(*ref));
	*ref = (slot_ref){ s, sl };
	pthread_mutex_lock(&s->mu);
	sl->state = SL_READING;
	s->inflight++;
	pthread_mutex_unlock(&s->mu);
	/* aread.h: free_lock from the batch to its submit (the snapshot is open: its blocks stay) */
	pthread_rwlock_rdlock(&p->free_lock);
	aread_batch *b = aread_batch_new(p, slot_done, ref);
	for (uint64_t i = 0; i < sl->n; i++)
		aread_add(b, &sl->bp[i], sl->buf + i * s->bs, 0, s->bs);
	int rc = aread_submit(b);
	pthread_rwlock_unlock(&p->free_lock);
	if (rc != 1)
		slot_done(ref, rc); /* nothing needed a device (cached): done now, 0 or -EIO */
}

static void *
send_worker(void *arg)
{
	sender *s = arg;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		send_slot *sl = NULL;
		for (uint64_t k = s->head; k < s->tail && sl == NULL; k++)
			if (s->slot[k % SEND_SLOTS].state == SL_QUEUED)
				sl = &s->slot[k % SEND_SLOTS];
		if (sl == NULL) {
			if (s->stop)
				break;
			pthread_cond_wait(&s->cv, &s->mu);
			continue;
		}
		sl->state = SL_READING;
		pthread_mutex_unlock(&s->mu);
		int err = slot_read(s, sl);
		char msg[256] = "";
		if (err != 0)
			snprintf(msg, sizeof(msg), "%s", ce_errmsg());
		pthread_mutex_lock(&s->mu);
		sl->err = err;
		if (err != 0)
			err_set(err, "%s", msg); /* (this thread's message; the writer sets its own) */
		sl->state = SL_READY;
		pthread_cond_broadcast(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* Write the oldest slot once it is ready. */
static int
emit_oldest(sender *s)
{
	send_slot *sl = &s->slot[s->head % SEND_SLOTS];
	pthread_mutex_lock(&s->mu);
	while (sl->state != SL_READY)
		pthread_cond_wait(&s->cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
	int err = sl->err;
	uint64_t len = sl->n * s->bs;
	if (err != 0)
		err = err_set(err, "send: cannot read blocks at offset %" PRIu64 ": %s", sl->first * s->bs,
		    err == -EIO ? "checksum or IO error" : strerror(-err));
	else if (sl->type == SR_DATA && s->async)
		slot_hashes(s, sl); /* read through the ring: hashed here, beside the writing */
	if (err != 0)
		;
	else if (sl->type == SR_DATA)
		err = put_record(s, SR_DATA, sl->first * s->bs, len, sl->buf, (uint32_t)len,
		    (const uint8_t(*)[16])sl->hash);
	else
		err = put_record(s, SR_HOLE, sl->first * s->bs, len, NULL, 0, NULL);
	pthread_mutex_lock(&s->mu);
	sl->state = SL_FREE;
	s->head++;
	pthread_mutex_unlock(&s->mu);
	return err;
}

/* A free slot for the next record (writing the oldest while all are busy). */
static int
claim_slot(sender *s, send_slot **out)
{
	while (s->tail - s->head == SEND_SLOTS) {
		int err = emit_oldest(s);
		if (err != 0)
			return err;
	}
	*out = &s->slot[s->tail % SEND_SLOTS];
	return 0;
}

static void
queue_slot(sender *s, send_slot *sl, int state)
{
	pthread_mutex_lock(&s->mu);
	sl->state = state;
	s->tail++;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static int
flush_data(sender *s)
{
	if (s->run_n == 0)
		return 0;
	uint64_t len = s->run_n * s->bs;
	int err = 0;
	if (!s->counting) {
		send_slot *sl;
		if ((err = claim_slot(s, &sl)) != 0)
			return err;
		sl->type = SR_DATA;
		sl->first = s->run_first;
		sl->n = s->run_n;
		sl->err = 0;
		memcpy(sl->bp, s->run_bp, s->run_n * sizeof(bp_phys));
		queue_slot(s, sl, SL_QUEUED);
		if (s->async)
			slot_submit(s, sl);
	}
	s->records++;
	s->data_bytes += len;
	s->total += s->counting ? SR_HDR + len : 0;
	s->run_n = 0;
	return err;
}

static int
flush_hole(sender *s)
{
	if (s->hole_n == 0)
		return 0;
	int err = 0;
	uint64_t len = s->hole_n * s->bs;
	if (!s->counting) {
		send_slot *sl;
		if ((err = claim_slot(s, &sl)) != 0)
			return err;
		sl->type = SR_HOLE;
		sl->first = s->hole_first;
		sl->n = s->hole_n;
		sl->err = 0;
		queue_slot(s, sl, SL_READY);
	}
	s->records++;
	s->hole_bytes += len;
	s->total += s->counting ? SR_HDR : 0;
	s->hole_n = 0;
	return err;
}

static void
send_pipeline_start(sender *s)
{
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	for (int i = 0; i < SEND_SLOTS; i++) {
		s->slot[i].bp = xmalloc((SR_MAX_DATA / CE_VOLBLOCKSIZE_MIN) * sizeof(bp_phys));
		s->slot[i].buf = xmalloc_aligned(SR_MAX_DATA);
		s->slot[i].hash = xmalloc((SR_MAX_DATA / CE_VOLBLOCKSIZE_MIN) * 16);
	}
	s->async = aread_ready(s->p);
	for (int i = 0; i < SEND_WORKERS && !s->async; i++)
		if (pthread_create(&s->workers[s->nworkers], NULL, send_worker, s) == 0)
			s->nworkers++;
}

/* Stop the workers (after the slots were written, or on an error: what is queued is dropped). */
static void
send_pipeline_stop(sender *s)
{
	pthread_mutex_lock(&s->mu);
	s->stop = 1;
	/* queued slots nobody will read: mark them done so no worker starts them */
	for (uint64_t k = s->head; k < s->tail; k++)
		if (s->slot[k % SEND_SLOTS].state == SL_QUEUED)
			s->slot[k % SEND_SLOTS].state = SL_READY;
	pthread_cond_broadcast(&s->cv);
	while (s->inflight > 0) /* ring reads write into the slots: wait for them before freeing */
		pthread_cond_wait(&s->cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
	for (int i = 0; i < s->nworkers; i++)
		pthread_join(s->workers[i], NULL);
	for (int i = 0; i < SEND_SLOTS; i++) {
		free(s->slot[i].bp);
		free(s->slot[i].buf);
		free(s->slot[i].hash);
	}
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
}

static int
send_visit(void *arg, uint64_t first, uint64_t n, const bp_phys *bp)
{
	sender *s = arg;
	/* clip to [first_blk, nblocks): a resumed stream starts late, a shrunk volume ends early */
	uint64_t end = first + n;
	if (first < s->first_blk)
		first = s->first_blk;
	if (end > s->nblocks)
		end = s->nblocks;
	if (first >= end)
		return 0;
	int err = 0;
	if (bp == NULL) {
		if (!s->holes)
			return 0;
		if ((err = flush_data(s)) != 0)
			return err;
		if (s->hole_n > 0 && s->hole_first + s->hole_n == first) {
			s->hole_n += end - first;
			return 0;
		}
		if ((err = flush_hole(s)) != 0)
			return err;
		s->hole_first = first;
		s->hole_n = end - first;
		return 0;
	}
	if ((err = flush_hole(s)) != 0)
		return err;
	if (s->run_n > 0 && (s->run_first + s->run_n != first || (s->run_n + 1) * s->bs > SR_MAX_DATA))
		if ((err = flush_data(s)) != 0)
			return err;
	if (s->run_n == 0)
		s->run_first = first;
	s->run_bp[s->run_n++] = *bp;
	return 0;
}

/* The snapshot with send identity id in this pool, or NULL. */
static volume *
find_identity(ce_pool *p, uint64_t id)
{
	for (size_t i = 0; i < ds_count(p); i++) {
		volume *v = ds_at(p, i);
		if (v->is_snap && v->destroy_txg == 0 && !v->taking && send_identity(v) == id)
			return v;
	}
	return NULL;
}

/*
 * The names a send streams: the snapshot (to) and its base (from, "" for a
 * full stream), from the arguments or from a resume token (*tk filled).
 */
static int
send_names(ce_pool *p, const char *snapname, const ce_send_opts *o, token *tk, char to_full[CE_NAME_MAX + 1],
    char from_full[CE_NAME_MAX + 1])
{
	from_full[0] = '\0';
	if (o == NULL || o->token == NULL) {
		if (snapname == NULL || strchr(snapname, '@') == NULL)
			return err_set(-EINVAL, "send needs a snapshot (VOL@SNAP)");
		snprintf(to_full, CE_NAME_MAX + 1, "%s", snapname);
		if (o != NULL && o->from != NULL)
			snprintf(from_full, CE_NAME_MAX + 1, "%s", o->from);
		return 0;
	}
	if (token_parse(o->token, tk) != 0)
		return err_set(-EINVAL, "'%s' is not a receive_resume_token", o->token);
	pthread_mutex_lock(&p->config_lock);
	pthread_mutex_lock(&p->lock);
	volume *to = find_identity(p, tk->to_guid);
	volume *from = tk->from_guid ? find_identity(p, tk->from_guid) : NULL;
	if (to != NULL)
		snprintf(to_full, CE_NAME_MAX + 1, "%s", to->name);
	if (from != NULL)
		snprintf(from_full, CE_NAME_MAX + 1, "%s", from->name);
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_unlock(&p->config_lock);
	if (to == NULL)
		return err_set(-ENOENT, "pool %s has no snapshot the token names", p->name);
	if (tk->from_guid != 0 && from == NULL)
		return err_set(-ENOENT, "pool %s no longer has the base snapshot the token names", p->name);
	return 0;
}

/* The BEGIN record of a stream of to (from: its base or NULL), config_lock and pool->lock held. */
static void
send_begin(ce_pool *p, const volume *to, const volume *from, const ce_send_opts *o, const token *tk,
    begin_phys *b)
{
	memset(b, 0, sizeof(*b));
	b->sb_magic = SB_MAGIC;
	b->sb_version = SB_VERSION_1;
	b->sb_flags = (from ? SB_INCREMENTAL : 0) | (o && o->token ? SB_RESUMED : 0);
	b->sb_vol_guid = to->head->guid;
	b->sb_to_guid = send_identity(to);
	b->sb_to_txg = to->create_txg;
	b->sb_from_guid = from ? send_identity(from) : 0;
	b->sb_from_txg = from ? from->create_txg : 0;
	b->sb_size = to->size;
	b->sb_volblocksize = to->bs;
	b->sb_compress = (uint8_t)to->compress;
	b->sb_checksum = (uint8_t)to->checksum;
	b->sb_sync = (uint8_t)to->sync;
	b->sb_resume_offset = o && o->token ? tk->offset : 0;
	snprintf(b->sb_to_name, sizeof(b->sb_to_name), "%s", to->name);
	ce_sched pol;
	if (!(o && (o->flags & CE_SEND_NO_POLICY)) && sched_get(p, to->head, &pol)) {
		/* the policy as it is now (policies are not snapshotted); only then version 2, so a
		   stream without one stays readable by every cask */
		b->sb_version = SB_VERSION;
		b->sb_flags |= SB_POLICY;
		b->sb_every_min = pol.every_min;
		b->sb_keep = pol.keep;
		b->sb_hourly = pol.hourly;
		b->sb_daily = pol.daily;
		b->sb_weekly = pol.weekly;
		b->sb_monthly = pol.monthly;
	}
}

int
ce_send(ce_pool *p, const char *snapname, const ce_send_opts *o, ce_write_fn wr, void *arg)
{
	err_clear();
	token tk = { 0 };
	char to_full[CE_NAME_MAX + 1], from_full[CE_NAME_MAX + 1];
	int err = send_names(p, snapname, o, &tk, to_full, from_full);
	if (err != 0)
		return err;
	/* Open both: an open snapshot cannot be destroyed under the stream. */
	ce_vol *th = NULL, *fh = NULL;
	err = ce_vol_open(p, to_full, &th);
	if (err != 0)
		return err_set(err, "snapshot %s/%s does not exist", p->name, to_full);
	if (!th->v->is_snap) {
		ce_vol_close(th);
		return err_set(-EINVAL, "%s/%s is a volume: send a snapshot of it", p->name, to_full);
	}
	if (from_full[0] != '\0') {
		if ((err = ce_vol_open(p, from_full, &fh)) != 0 || !fh->v->is_snap) {
			if (fh != NULL)
				ce_vol_close(fh);
			ce_vol_close(th);
			return err_set(-ENOENT, "base snapshot %s/%s does not exist", p->name, from_full);
		}
	}
	volume *to = th->v, *from = fh ? fh->v : NULL;
	pthread_mutex_lock(&p->config_lock);
	pthread_mutex_lock(&p->lock);
	int lineage = from == NULL || is_ancestor(from, to);
	begin_phys b;
	send_begin(p, to, from, o, &tk, &b);
	cowtree tree = to->tree;
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_unlock(&p->config_lock);
	if (!lineage) {
		ce_vol_close(th);
		if (fh != NULL)
			ce_vol_close(fh);
		return err_set(-EINVAL, "%s/%s is not an earlier snapshot of %s/%s (nor of its origin)",
		    p->name, from_full, p->name, to_full);
	}
	if (o && o->token && (tk.offset % to->bs != 0 || tk.offset > to->size)) {
		ce_vol_close(th);
		if (fh != NULL)
			ce_vol_close(fh);
		return err_set(-EINVAL, "the token's offset %" PRIu64 " does not fit %s/%s", tk.offset,
		    p->name, to_full);
	}

	sender s;
	memset(&s, 0, sizeof(s));
	s.p = p;
	s.wr = wr;
	s.arg = arg;
	s.o = o;
	s.bs = to->bs;
	s.nblocks = to->size / to->bs;
	s.first_blk = b.sb_resume_offset / to->bs;
	s.holes = from != NULL;
	s.run_bp = xmalloc((SR_MAX_DATA / CE_VOLBLOCKSIZE_MIN) * sizeof(bp_phys));
	uint64_t min_birth = from ? from->create_txg : 0;
	/* the expected size first: the same walk, counting (indirect blocks only are read) */
	s.counting = 1;
	err = cowtree_diff(p, &tree, min_birth, s.holes, send_visit, &s);
	if (err == 0)
		err = flush_hole(&s);
	if (err == 0)
		err = flush_data(&s);
	s.total += 2 * SR_HDR + SR_BEGIN_LEN + SR_END_LEN;
	b.sb_estimate = s.total;
	s.counting = 0;
	s.records = s.data_bytes = s.hole_bytes = 0;
	XXH3_128bits_reset(&s.stream);
	send_pipeline_start(&s);
	if (err == 0)
		err = put_record(&s, SR_BEGIN, 0, 0, &b, sizeof(b), NULL);
	if (err == 0)
		err = cowtree_diff(p, &tree, min_birth, s.holes, send_visit, &s);
	if (err == 0)
		err = flush_hole(&s);
	if (err == 0)
		err = flush_data(&s);
	while (err == 0 && s.head < s.tail)
		err = emit_oldest(&s);
	send_pipeline_stop(&s);
	if (err == 0) {
		end_phys e;
		memset(&e, 0, sizeof(e));
		e.se_records = s.records;
		e.se_data_bytes = s.data_bytes;
		e.se_hole_bytes = s.hole_bytes;
		cksum16(XXH3_128bits_digest(&s.stream), e.se_stream_cksum);
		err = put_record(&s, SR_END, 0, 0, &e, sizeof(e), NULL);
	}
	free(s.run_bp);
	ce_vol_close(th);
	if (fh != NULL)
		ce_vol_close(fh);
	if (err == -EIO && ce_errmsg()[0] == '\0')
		err_set(err, "send of %s/%s: cannot read its tree: checksum or IO error", p->name, to_full);
	else if (err != 0 && ce_errmsg()[0] == '\0')
		err_set(err, "send of %s/%s failed: %s", p->name, to_full, strerror(-err));
	return err;
}

/* ---- receive ---- */

typedef struct receiver {
	uint32_t bs;     /* from BEGIN: how DATA payloads are hashed */
	ce_pool *p;
	ce_read_fn rd;
	void *arg;
	XXH3_state_t stream;
	uint64_t in_bytes, seq;
	/*
	 * The DATA record read last: its blocks, each hashed and copied into
	 * a block buffer of its own in one pass (the bytes are in the CPU
	 * cache for the copy), to be adopted by the volume with their hashes,
	 * which the sync then takes as checksums instead of hashing the
	 * blocks again (vol.c invariant 7). nbufs: buffers held (recv_drop).
	 */
	uint8_t (*hash)[16];
	void **bufs;
	size_t nbufs;
} receiver;

/* Give back the buffers of a DATA record that will not be applied. */
static void
recv_drop(receiver *r)
{
	for (size_t k = 0; k < r->nbufs; k++)
		bufpool_put(r->bufs[k], r->bs);
	r->nbufs = 0;
}

/* Exactly len bytes: 0, 1 at a clean end before any byte, or -EPIPE in the middle. */
static int
read_full(receiver *r, void *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = r->rd(r->arg, (uint8_t *)buf + got, len - got);
		if (n == -ECANCELED)
			return err_set(-ECANCELED, "receive cancelled after %" PRIu64 " bytes", r->in_bytes + got);
		if (n < 0)
			return err_set((int)n, "receive: cannot read the stream: %s", strerror((int)-n));
		if (n == 0)
			return got == 0 ? 1 : err_set(-EPIPE, "the stream ends in the middle of a record "
			    "(truncated)");
		got += (size_t)n;
	}
	r->in_bytes += len;
	return 0;
}

/*
 * The next record: header checked, payload (up to max bytes) read and
 * checked. 1 at a clean end of the stream.
 */
static int
read_record(receiver *r, rec_hdr *rh, uint8_t *payload, uint32_t max)
{
	uint64_t at = r->in_bytes;
	int e = read_full(r, rh, sizeof(*rh));
	if (e != 0)
		return e;
	if (rh->rh_payload_len > max)
		return r->seq == 0 ? err_set(-EINVAL, "not a cask send stream (or its first record is "
		    "damaged)") : err_set(-EBADMSG, "stream damaged at byte %" PRIu64 ": record %" PRIu64
		    " claims a %u-byte payload", at, r->seq, rh->rh_payload_len);
	if ((e = read_full(r, payload, rh->rh_payload_len)) != 0)
		return e == 1 ? err_set(-EPIPE, "the stream ends in the middle of a record (truncated)") : e;
	uint8_t ck[16];
	const uint8_t (*hashes)[16] = NULL;
	ASSERT(r->nbufs == 0);
	if (rh->rh_type == SR_DATA && r->bs > 0 && rh->rh_payload_len % r->bs == 0 && r->bufs != NULL) {
		/* each block hashed once, and copied while it is in the cache (struct receiver) */
		size_t n = rh->rh_payload_len / r->bs;
		bufpool_get_n(r->bs, r->bufs, n);
		r->nbufs = n;
		for (size_t k = 0; k < n; k++) {
			const uint8_t *b = payload + k * r->bs;
			cksum16(XXH3_128bits(b, r->bs), r->hash[k]);
			memcpy(r->bufs[k], b, r->bs);
		}
		hashes = (const uint8_t(*)[16])r->hash;
	}
	rec_cksum(rh, payload, r->bs, hashes, ck);
	if (memcmp(ck, rh->rh_cksum, 16) != 0) {
		recv_drop(r);
		return err_set(-EBADMSG, "stream damaged at byte %" PRIu64 ": record %" PRIu64 " fails its "
		    "checksum", at, r->seq);
	}
	if (rh->rh_seq != r->seq) {
		recv_drop(r);
		return err_set(-EBADMSG, "stream damaged at byte %" PRIu64 ": record %" PRIu64 " comes "
		    "where record %" PRIu64 " belongs (records lost, repeated or reordered)", at,
		    rh->rh_seq, r->seq);
	}
	r->seq++;
	if (rh->rh_type != SR_END)
		XXH3_128bits_update(&r->stream, rh, sizeof(*rh));
	return 0;
}

/* The policy a BEGIN carries (meaningful with SB_POLICY). */
static ce_sched
begin_policy(const begin_phys *b)
{
	ce_sched s = { b->sb_every_min, b->sb_keep, b->sb_hourly, b->sb_daily, b->sb_weekly, b->sb_monthly };
	return s;
}

static int
begin_valid(const begin_phys *b, char *why, size_t len)
{
	ce_sched pol = begin_policy(b);
	char vol[CE_NAME_MAX + 1];
	const char *at = memchr(b->sb_to_name, '\0', sizeof(b->sb_to_name)) ? strchr(b->sb_to_name, '@') : NULL;
	if (at != NULL)
		snprintf(vol, sizeof(vol), "%.*s", (int)(at - b->sb_to_name), b->sb_to_name);
	const char *bad = !IS_P2(b->sb_volblocksize) || b->sb_volblocksize < CE_VOLBLOCKSIZE_MIN ||
	    b->sb_volblocksize > CE_VOLBLOCKSIZE_MAX ? "block size" :
	    b->sb_size == 0 || b->sb_size % b->sb_volblocksize != 0 ||
	    b->sb_size / b->sb_volblocksize > cowtree_capacity(7) ? "volume size" :
	    b->sb_compress > CE_COMP_MAX || !checksum_valid_type(b->sb_checksum) ||
	    b->sb_sync > CE_SYNC_DISABLED ? "properties" :
	    at == NULL || !vol_name_valid(at + 1) ? "snapshot name" :
	    b->sb_to_guid == 0 || ((b->sb_flags & SB_INCREMENTAL) != 0) != (b->sb_from_guid != 0) ||
	    (b->sb_flags & ~(SB_INCREMENTAL | SB_RESUMED | (b->sb_version >= 2 ? SB_POLICY : 0))) != 0 ?
	    "identities or flags" :
	    (b->sb_flags & SB_POLICY) && !sched_valid(&pol) ? "snapshot policy" :
	    b->sb_resume_offset % b->sb_volblocksize != 0 || b->sb_resume_offset > b->sb_size ||
	    (!(b->sb_flags & SB_RESUMED) && b->sb_resume_offset != 0) ? "resume offset" : NULL;
	if (bad != NULL)
		snprintf(why, len, "its BEGIN record has an impossible %s", bad);
	return bad == NULL;
}

/* Count partial receives (pool->lock held). */
static unsigned
partial_receives(ce_pool *p)
{
	unsigned n = 0;
	for (size_t i = 0; i < ds_count(p); i++)
		n += !ds_at(p, i)->is_snap && ds_at(p, i)->destroy_txg == 0 && ds_at(p, i)->receiving;
	return n;
}

/* The volume's own newest snapshot (pool->lock held), or NULL. */
static volume *
newest_own(volume *h)
{
	return h->prev != NULL && h->prev->is_snap && h->prev->head == h ? h->prev : NULL;
}

/* BEGIN checked: make vol the partial receive this stream continues or starts. */
/* The receive hands the volume whole stream blocks (vol_recv_adopt takes each buffer as
 * one block of the volume's size): a stream of another block size never applies. */
static int
recv_bs_mismatch(ce_pool *p, const char *vol, const begin_phys *b, uint32_t vbs)
{
	return err_set(-EINVAL, "stream block size %u, volume %s/%s's %u: a stream applies only "
	    "onto a volume of its own block size", b->sb_volblocksize, p->name, vol, vbs);
}

static int
recv_setup(ce_pool *p, const char *vol, const begin_phys *b, unsigned flags)
{
	int incr = (b->sb_flags & SB_INCREMENTAL) != 0, resumed = (b->sb_flags & SB_RESUMED) != 0;
	const char *sn = strchr(b->sb_to_name, '@') + 1;
	char snapfull[2 * CE_NAME_MAX + 2];
	snprintf(snapfull, sizeof(snapfull), "%s@%s", vol, sn);
	if (strlen(snapfull) > CE_NAME_MAX)
		return err_set(-EINVAL, "%s/%s would be too long a name", p->name, snapfull);
	recv_slot_phys rs;
	memset(&rs, 0, sizeof(rs));
	rs.rs_to_guid = b->sb_to_guid;
	rs.rs_from_guid = b->sb_from_guid;
	rs.rs_src_vol_guid = b->sb_vol_guid;
	rs.rs_offset = b->sb_resume_offset;
	rs.rs_to_txg = b->sb_to_txg;
	rs.rs_size = b->sb_size;
	rs.rs_flags = incr ? RS_INCREMENTAL : 0;

	int err = vol_mgmt_begin(p);
	if (err != 0)
		return err;
	volume *h = vol_find(p, vol);
	if (h != NULL && h->is_snap) {
		vol_mgmt_abort(p);
		return err_set(-EINVAL, "%s/%s is a snapshot: receive into a volume", p->name, vol);
	}
	if (resumed) {
		if (h == NULL || !h->receiving) {
			vol_mgmt_abort(p);
			return err_setc(CE_E_NOT_A_PARTIAL_RECEIVE, -ENOENT, "%s/%s is not a partial receive: a resumed stream continues one",
			    p->name, vol);
		}
		if (h->refs > 0) {
			vol_mgmt_abort(p);
			return err_set(-EBUSY, "a receive into %s/%s is running", p->name, vol);
		}
		if (h->rs.rs_to_guid != rs.rs_to_guid || h->rs.rs_from_guid != rs.rs_from_guid ||
		    h->rs.rs_src_vol_guid != rs.rs_src_vol_guid || h->rs.rs_flags != rs.rs_flags ||
		    h->rs.rs_offset != rs.rs_offset) {
			vol_mgmt_abort(p);
			return err_set(-EINVAL, "this resumed stream does not continue the partial receive of "
			    "%s/%s (it starts at offset %" PRIu64 ", the receive stopped at %" PRIu64 "; "
			    "send with the volume's current receive_resume_token)", p->name, vol,
			    rs.rs_offset, h->rs.rs_offset);
		}
		if (h->bs != b->sb_volblocksize) {
			vol_mgmt_abort(p);
			return recv_bs_mismatch(p, vol, b, h->bs);
		}
		vol_mgmt_abort(p);
		return 0;
	}
	if (h != NULL && h->receiving) {
		vol_mgmt_abort(p);
		return err_set(-EBUSY, "%s/%s is a partial receive: resume it (cask send -t TOKEN) or "
		    "abandon it (cask recv -A)", p->name, vol);
	}
	if (partial_receives(p) >= CE_RECV_SLOTS) {
		vol_mgmt_abort(p);
		return err_set(-ENOSPC, "pool %s already has %u partial receives: finish or abandon one",
		    p->name, CE_RECV_SLOTS);
	}
	if (!incr) {
		vol_mgmt_abort(p);
		if (h != NULL)
			return err_setc(CE_E_VOLUME_EXISTS, -EEXIST, "volume %s/%s exists: a full stream creates a new volume "
			    "(an incremental one applies onto it)", p->name, vol);
		ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
		pr.volblocksize = b->sb_volblocksize;
		pr.compress = b->sb_compress;
		pr.checksum = b->sb_checksum;
		pr.sync = b->sb_sync;
		return vol_create_ex(p, vol, b->sb_size, &pr, &rs);
	}
	if (h == NULL) {
		vol_mgmt_abort(p);
		return err_set(-ENOENT, "volume %s/%s does not exist: an incremental stream applies onto "
		    "the volume holding its base snapshot", p->name, vol);
	}
	volume *base = newest_own(h);
	/* only automatic snapshots (the target's own policy's) after the base: -F destroys them */
	volume *older = base;
	unsigned autos = 0;
	while (older != NULL && older->is_auto && send_identity(older) != b->sb_from_guid) {
		older = older->prev != NULL && older->prev->is_snap && older->prev->head == h ? older->prev : NULL;
		autos++;
	}
	int drop_autos = 0;
	if (base != NULL && send_identity(base) != b->sb_from_guid && older != NULL &&
	    send_identity(older) == b->sb_from_guid && (flags & CE_RECV_FORCE)) {
		base = older;
		drop_autos = 1;
	}
	if (base == NULL || send_identity(base) != b->sb_from_guid) {
		vol_mgmt_abort(p);
		if (older != NULL && send_identity(older) == b->sb_from_guid)
			return err_setc(CE_E_WRONG_BASE, -EXDEV, "wrong base: the stream applies on top of %s, and "
			    "%s/%s has %u automatic snapshot%s after it (its own snapshot policy's): receive with "
			    "-F to destroy them first", older->name, p->name, vol, autos, autos == 1 ? "" : "s");
		return err_setc(CE_E_WRONG_BASE, -EXDEV, "wrong base: the stream applies on top of snapshot %016" PRIx64
		    ", and %s/%s's newest snapshot is %s%s", b->sb_from_guid, p->name, vol,
		    base ? base->name : "(none)", base ? " (another one)" : "");
	}
	if (h->bs != b->sb_volblocksize) {
		vol_mgmt_abort(p);
		return recv_bs_mismatch(p, vol, b, h->bs);
	}
	if (vol_find(p, snapfull) != NULL) {
		vol_mgmt_abort(p);
		return err_setc(CE_E_SNAPSHOT_EXISTS, -EEXIST, "snapshot %s/%s exists", p->name, snapfull);
	}
	if (h->refs > 0) {
		vol_mgmt_abort(p);
		return err_set(-EBUSY, "volume %s/%s is open (%d handles)", p->name, vol, h->refs);
	}
	char basename[CE_NAME_MAX + 1];
	snprintf(basename, sizeof(basename), "%s", base->name);
	vol_mgmt_abort(p);
	/* unchanged since the base, or rolled back to it with -F */
	ce_vol_info vi;
	if ((err = ce_pool_sync(p)) != 0 || (err = ce_vol_info_get(p, vol, &vi)) != 0)
		return err;
	if (drop_autos) {
		if ((err = ce_vol_rollback(p, basename, CE_ROLLBACK_DESTROY_LATER)) != 0)
			return err;
	} else if (vi.written != 0) {
		if (!(flags & CE_RECV_FORCE))
			return err_setc(CE_E_TARGET_CHANGED, -ETXTBSY, "%s/%s changed since %s (%" PRIu64 " bytes written): roll it "
			    "back, or receive with -F to roll back first", p->name, vol, basename, vi.written);
		if ((err = ce_vol_rollback(p, basename, 0)) != 0)
			return err;
	}
	/* mark it: from this txg on it is a partial receive */
	if ((err = vol_mgmt_begin(p)) != 0)
		return err;
	h = vol_find(p, vol);
	if (h == NULL || h->receiving || h->refs > 0 || newest_own(h) != base) {
		vol_mgmt_abort(p);
		return err_set(-EBUSY, "%s/%s changed while the receive started", p->name, vol);
	}
	vol_mgmt_dirty(p, h);
	h->receiving = 1;
	h->rs = rs;
	recv_track(p, h);
	err = vol_mgmt_commit(p);
	if (err == 0 && b->sb_size != vi.size)
		err = ce_vol_resize(p, vol, b->sb_size, CE_RESIZE_SHRINK | VOL_RESIZE_RECV);
	return err;
}

/*
 * A verified END: the snapshot with the sender's identity, the mark
 * cleared and the stream's snapshot policy (send-stream.md 3.1: installed
 * when the volume has none; a policy it has is kept), in one txg.
 */
static int
recv_finish(ce_pool *p, const char *vol, const begin_phys *b, unsigned flags, int *pres, char *snap_out,
    size_t snap_len)
{
	const char *sn = strchr(b->sb_to_name, '@') + 1;
	char full[2 * CE_NAME_MAX + 2];
	snprintf(full, sizeof(full), "%s@%s", vol, sn);
	int err = vol_mgmt_begin(p);
	if (err != 0)
		return err;
	volume *h = vol_find(p, vol);
	if (h == NULL || !h->receiving) {
		vol_mgmt_abort(p);
		return err_setc(CE_E_NOT_A_PARTIAL_RECEIVE, -ENOENT, "%s/%s is no longer a partial receive", p->name, vol);
	}
	if (vol_find(p, full) != NULL) {
		vol_mgmt_abort(p);
		return err_setc(CE_E_SNAPSHOT_EXISTS, -EEXIST, "snapshot %s/%s exists", p->name, full);
	}
	*pres = CE_RECV_POLICY_NONE;
	if (b->sb_flags & SB_POLICY) {
		ce_sched want = begin_policy(b), have;
		if (flags & CE_RECV_NO_POLICY)
			*pres = CE_RECV_POLICY_IGNORED;
		else if (!sched_get(p, h, &have))
			*pres = CE_RECV_POLICY_INSTALLED;
		else
			*pres = memcmp(&have, &want, sizeof(have)) == 0 ? CE_RECV_POLICY_SAME : CE_RECV_POLICY_KEPT;
		if (*pres == CE_RECV_POLICY_INSTALLED && (err = sched_stage(p, h, &want)) != 0) {
			vol_mgmt_abort(p); /* begin_valid checked it: cannot fail */
			return err;
		}
	}
	snap_add(p, h, full, b->sb_to_guid);
	vol_mgmt_dirty(p, h);
	h->receiving = 0;
	memset(&h->rs, 0, sizeof(h->rs));
	err = vol_mgmt_commit(p); /* snap_attach raises the MOS version (a send identity) */
	if (err == 0 && snap_out != NULL)
		snprintf(snap_out, snap_len, "%s", full);
	return err;
}

int
ce_recv(ce_pool *p, const char *vol, ce_recv_opts *o, ce_read_fn rd, void *arg,
    char *snap_out, size_t snap_len)
{
	err_clear();
	if (vol == NULL || !vol_name_valid(vol))
		return err_set(-EINVAL, "bad volume name '%s'", vol ? vol : "");
	receiver r;
	memset(&r, 0, sizeof(r));
	r.p = p;
	r.rd = rd;
	r.arg = arg;
	XXH3_128bits_reset(&r.stream);
	uint8_t *payload = xmalloc_aligned(SR_MAX_DATA);
	rec_hdr rh;
	begin_phys b;
	char why[200];
	int err = read_record(&r, &rh, payload, SR_BEGIN_LEN);
	if (err == 1)
		err = err_set(-EINVAL, "the stream is empty");
	else if (err == -EPIPE)
		err = err_set(-EINVAL, "not a cask send stream (it ends before its first record does)");
	else if (err == 0 && (rh.rh_type != SR_BEGIN || rh.rh_payload_len != SR_BEGIN_LEN))
		err = err_set(-EINVAL, "not a cask send stream (no BEGIN record)");
	if (err == 0) {
		memcpy(&b, payload, sizeof(b));
		if (b.sb_magic != SB_MAGIC)
			err = err_set(-EINVAL, "not a cask send stream (bad magic)");
		else if (b.sb_version != SB_VERSION_1 && b.sb_version != SB_VERSION)
			err = err_setc(CE_E_UNSUPPORTED_STREAM, -ENOTSUP, "send stream version %u is not supported (this cask reads "
			    "versions %u to %u)", b.sb_version, SB_VERSION_1, SB_VERSION);
		else if (!begin_valid(&b, why, sizeof(why)))
			err = err_set(-EINVAL, "bad send stream: %s", why);
	}
	if (err == 0) {
		r.bs = b.sb_volblocksize;
		err = recv_setup(p, vol, &b, o ? o->flags : 0);
	}
	if (err != 0) {
		free(payload);
		return err;
	}
	/* From here on the volume is a partial receive: an error leaves it resumable. */
	ce_vol *h;
	if ((err = vol_open_any(p, vol, 1, &h)) != 0) {
		free(payload);
		return err;
	}
	volume *v = h->v;
	r.hash = xmalloc((SR_MAX_DATA / CE_VOLBLOCKSIZE_MIN) * 16);
	r.bufs = xmalloc((SR_MAX_DATA / CE_VOLBLOCKSIZE_MIN) * sizeof(void *));
	uint64_t next = b.sb_resume_offset, records = 0, data = 0, holes = 0;
	for (;;) {
		uint64_t at = r.in_bytes;
		err = read_record(&r, &rh, payload, SR_MAX_DATA);
		if (err == 1) {
			err = err_set(-EPIPE, "the stream ends before its END record (truncated)");
			break;
		}
		if (err != 0)
			break;
		if (rh.rh_type == SR_END) {
			end_phys e;
			uint8_t ck[16];
			cksum16(XXH3_128bits_digest(&r.stream), ck);
			memcpy(&e, payload, sizeof(e));
			if (rh.rh_payload_len != SR_END_LEN)
				err = err_set(-EBADMSG, "stream damaged: an END record of %u bytes",
				    rh.rh_payload_len);
			else if (e.se_records != records || e.se_data_bytes != data || e.se_hole_bytes != holes)
				err = err_set(-EBADMSG, "stream damaged: its END counts %" PRIu64 " records (%" PRIu64
				    " data bytes), %" PRIu64 " (%" PRIu64 ") arrived", e.se_records,
				    e.se_data_bytes, records, data);
			else if (memcmp(ck, e.se_stream_cksum, 16) != 0)
				err = err_set(-EBADMSG, "stream damaged: the stream checksum does not match");
			break;
		}
		if (rh.rh_type != SR_DATA && rh.rh_type != SR_HOLE) {
			recv_drop(&r);
			err = err_set(-EBADMSG, "stream damaged at byte %" PRIu64 ": record %" PRIu64 " has type %u",
			    at, rh.rh_seq, rh.rh_type);
			break;
		}
		uint64_t off = rh.rh_offset, len = rh.rh_length;
		if (len == 0 || off % b.sb_volblocksize != 0 || len % b.sb_volblocksize != 0 ||
		    off < next || off > b.sb_size || len > b.sb_size - off ||
		    (rh.rh_type == SR_DATA ? rh.rh_payload_len != len : rh.rh_payload_len != 0)) {
			recv_drop(&r);
			err = err_set(-EBADMSG, "stream damaged at byte %" PRIu64 ": record %" PRIu64 " covers "
			    "[%" PRIu64 ", +%" PRIu64 ") after %" PRIu64 " (volume size %" PRIu64 ")", at,
			    rh.rh_seq, off, len, next, b.sb_size);
			break;
		}
		if (rh.rh_type == SR_DATA) {
			/* the checked record's blocks and their hashes: the volume owns the buffers now */
			VERIFY3U(r.nbufs * b.sb_volblocksize, ==, len);
			r.nbufs = 0;
			err = vol_recv_adopt(h, r.bufs, (const uint8_t(*)[16])r.hash, len / b.sb_volblocksize, off);
		} else {
			err = vol_recv_trim(h, off, len);
		}
		if (err != 0)
			break;
		next = off + len;
		records++;
		if (rh.rh_type == SR_DATA)
			data += len;
		else
			holes += len;
		pthread_mutex_lock(&p->lock);
		vol_mgmt_dirty(p, v);
		v->rs.rs_offset = next; /* commits with this data, or later */
		pthread_mutex_unlock(&p->lock);
		if (o != NULL && o->progress != NULL && o->progress(o->progress_arg, r.in_bytes, b.sb_estimate) != 0) {
			err = err_set(-ECANCELED, "receive cancelled after %" PRIu64 " bytes", r.in_bytes);
			break;
		}
	}
	recv_drop(&r);
	ce_vol_close(h);
	free(payload);
	free(r.hash);
	free(r.bufs);
	int pres = CE_RECV_POLICY_NONE;
	if (err == 0)
		err = recv_finish(p, vol, &b, o ? o->flags : 0, &pres, snap_out, snap_len);
	if (err == 0 && o != NULL) {
		o->policy_result = pres;
		o->policy = pres != CE_RECV_POLICY_NONE ? begin_policy(&b) : (ce_sched){ 0 };
	}
	if (err != 0) {
		char msg[600], tok[96];
		snprintf(msg, sizeof(msg), "%s", ce_errmsg());
		pthread_mutex_lock(&p->lock);
		volume_token(v, tok, sizeof(tok));
		pthread_mutex_unlock(&p->lock);
		err_setc(ce_errcode_of(err), err, "%s; %s/%s stays a partial receive: resume with cask send -t %s, or abandon "
		    "with cask recv -A", msg, p->name, vol, tok);
	}
	return err;
}

int
ce_recv_abandon(ce_pool *p, const char *vol)
{
	int err = vol_mgmt_begin(p);
	if (err != 0)
		return err;
	volume *h = vol != NULL ? vol_find(p, vol) : NULL;
	if (h == NULL || h->is_snap || !h->receiving) {
		vol_mgmt_abort(p);
		return err_setc(CE_E_NOT_A_PARTIAL_RECEIVE, -ENOENT, "%s/%s is not a partial receive", p->name, vol ? vol : "");
	}
	if (h->refs > 0) {
		vol_mgmt_abort(p);
		return err_set(-EBUSY, "a receive into %s/%s is running", p->name, vol);
	}
	if (!(h->rs.rs_flags & RS_INCREMENTAL)) {
		/* a full receive made the volume: it goes (it has no snapshots) */
		snap_doom_set(p, &h, 1);
	} else {
		if (newest_own(h) == NULL) {
			vol_mgmt_abort(p);
			return err_set(-EIO, "%s/%s: the base snapshot of its partial receive is gone", p->name,
			    vol);
		}
		snap_rollback_begin(p, h, NULL, 0); /* to the base (its newest snapshot), with its size */
	}
	vol_mgmt_dirty(p, h);
	h->receiving = 0;
	memset(&h->rs, 0, sizeof(h->rs));
	return vol_mgmt_commit(p);
}

/* ---- diff ---- */

/*
 * Ranges are merged as the walk finds them and handed to the caller as
 * each completes, while the walk holds free_lock (read): the caller's
 * function must be quick and must not call into the pool.
 */
typedef struct differ {
	uint32_t bs;
	uint64_t nblocks;
	uint64_t first, n;  /* the range being merged */
	int kind;
	ce_diff_fn fn;      /* called with each range as it completes */
	void *arg;
} differ;

static int
diff_emit(differ *d)
{
	if (d->n == 0)
		return 0;
	uint64_t off = d->first * d->bs, len = d->n * d->bs;
	d->n = 0;
	return d->fn(d->arg, off, len, d->kind);
}

static int
diff_visit(void *arg, uint64_t first, uint64_t n, const bp_phys *bp)
{
	differ *d = arg;
	uint64_t end = MIN(first + n, d->nblocks);
	if (first >= end)
		return 0;
	int kind = bp == NULL ? CE_DIFF_HOLE : CE_DIFF_DATA;
	if (d->n > 0 && d->kind == kind && d->first + d->n == first) {
		d->n += end - first;
		return 0;
	}
	int r = diff_emit(d);
	d->first = first;
	d->n = end - first;
	d->kind = kind;
	return r;
}

int
ce_vol_diff(ce_pool *p, const char *fromname, const char *toname, ce_diff_fn fn, void *arg)
{
	return ce_vol_diff_from(p, fromname, toname, 0, fn, arg);
}

int
ce_vol_diff_from(ce_pool *p, const char *fromname, const char *toname, uint64_t start, ce_diff_fn fn,
    void *arg)
{
	err_clear();
	ce_vol *fh, *th;
	int err = ce_vol_open(p, fromname ? fromname : "", &fh);
	if (err != 0)
		return err_set(-ENOENT, "snapshot %s/%s does not exist", p->name, fromname ? fromname : "");
	if (!fh->v->is_snap) {
		ce_vol_close(fh);
		return err_set(-EINVAL, "diff starts from a snapshot (VOL@SNAP), not %s/%s", p->name, fromname);
	}
	if ((err = ce_vol_open(p, toname ? toname : "", &th)) != 0) {
		ce_vol_close(fh);
		return err;
	}
	if (!th->v->is_snap)
		err = ce_pool_sync(p); /* the live volume as of now */
	pthread_mutex_lock(&p->config_lock);
	pthread_mutex_lock(&p->lock);
	int ok = is_ancestor(fh->v, th->v);
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_unlock(&p->config_lock);
	if (err == 0 && !ok)
		err = err_set(-EINVAL, "%s/%s is not an earlier snapshot of %s/%s (nor of its origin)",
		    p->name, fromname, p->name, toname);
	if (err == 0)
		err = vol_changed_after(th, fh->v->create_txg, 1, start, fn, arg);
	ce_vol_close(th);
	ce_vol_close(fh);
	return err;
}

/*
 * The walk diff and rebuild share (recv.h): the ranges of h's committed
 * tree born after min_birth, from byte `start` on, merged, in offset order.
 */
int
vol_changed_after(ce_vol *h, uint64_t min_birth, int holes, uint64_t start, ce_diff_fn fn, void *arg)
{
	ce_pool *p = h->v->pool;
	differ d;
	memset(&d, 0, sizeof(d));
	d.fn = fn;
	d.arg = arg;
	d.bs = h->v->bs;
	pthread_rwlock_rdlock(&p->free_lock); /* the live tree's blocks stay while we read */
	pthread_mutex_lock(&h->v->lock);
	cowtree t = h->v->tree;
	d.nblocks = h->v->size / h->v->bs;
	pthread_mutex_unlock(&h->v->lock);
	int err = cowtree_diff_from(p, &t, min_birth, holes, start / d.bs, diff_visit, &d);
	if (err == 0)
		err = diff_emit(&d);
	pthread_rwlock_unlock(&p->free_lock);
	if (err < 0)
		err = err_set(err, "cannot read the tree of %s/%s: %s", p->name, h->v->name,
		    err == -EIO ? "checksum or IO error" : strerror(-err));
	return err;
}
