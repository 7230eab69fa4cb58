/*
 * pipe.c -- the sync pipeline: a pool's worker threads that prepare a
 * volume's dirty blocks for the sync thread (issue 18).
 *
 * Owns the workers (started by the first sync that has enough blocks to
 * share, stopped with the pool: pipe_fini) and the one job they work on:
 * pipe_write, called by vol_sync for the data blocks of one volume in
 * txg t. The job's blocks, sorted by key, are cut into batches of
 * PIPE_BATCH. The per-block work that needs only the block's bytes (the
 * all-zero test, compression, the checksum: blk_prepare) runs on the
 * workers, a batch at a time; the sync thread takes the batches in order
 * and places each block (blk_place: allocate, cache, queue), issuing the
 * queued writes every PIPE_FLUSH bytes while the workers prepare later
 * batches. docs/ARCHITECTURE.md §4 draws it.
 *
 * A batch's state machine (sync_pipe.lock guards every transition):
 *
 *   free --(claim: a worker in worker(), or the sync thread in
 *           pipe_write when no worker has)--> claimed
 *        --(prepare_batch returns)--> done
 *        --(the sync thread: place_batch, or drop_batch after an error)
 *
 * Invariants:
 *   1. A worker reads only the dirty buffers of the batch it claimed (the
 *      syncing txg's maps are frozen: vol.c invariant 4) and writes only
 *      that batch's results; it takes no pool, volume, allocator or cache
 *      lock and calls nothing that needs the sync thread.
 *   2. Only the sync thread places blocks, in batch order and within a
 *      batch in key order: the allocator sees the same sequence of
 *      requests as a sequential sync, so a txg's layout is the same
 *      whatever the thread count (test_sync_pipe).
 *   3. Workers claim at most PIPE_AHEAD batches beyond the one being
 *      placed, so prepared blocks waiting for placement (compressed copies
 *      among them) are bounded by PIPE_AHEAD * PIPE_BATCH blocks.
 *   4. pipe_write returns only when no worker is inside its job and every
 *      prepared buffer is queued or freed; after an error it still waits
 *      for the claimed batches, places nothing more and drops them.
 */
#include "pipe.h"
#include "blkio.h"
#include "compress.h"
#include "pool_impl.h"
#include "util.h"
#include "vol.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#define PIPE_BATCH 64u
#define PIPE_AHEAD 8u
#define PIPE_FLUSH (8u << 20)
#define PIPE_MAX_THREADS 16

enum { B_FREE, B_CLAIMED, B_DONE };

typedef struct pipe_job {
	uint64_t t;
	void **datas;     /* per block: its dirty buffer; VOL_HOLE when a hole (also after the zero test) */
	const uint8_t *const *known; /* per block: its XXH3-128 when known (NULL: none known) */
	ct_leaf *leaves;  /* per block: its key (in), its pointer (out) */
	blk_prep *prep;   /* per block: what blk_prepare made */
	size_t n, nbatches;
	uint32_t bs;
	int comp, ck;
	size_t next_claim; /* the first batch nobody has claimed */
	size_t limit;      /* batches at or past this are not to be claimed (after an error: next_claim) */
	size_t placing;    /* the batch the sync thread places or waits for */
	uint8_t *state;    /* per batch: B_* */
} pipe_job;

struct sync_pipe {
	pthread_mutex_t lock;
	pthread_cond_t cv_work; /* a batch may be claimed, or stop */
	pthread_cond_t cv_done; /* a batch is done */
	pthread_t *threads;
	unsigned nthreads;
	int stop;
	pipe_job *job;          /* the job in progress, or NULL */
	uint64_t batches, helped; /* batches prepared: all, and by the sync thread itself */
};

static int
all_zero(const uint8_t *b, size_t n)
{
	static const uint8_t z[4096];
	for (size_t o = 0; o < n; o += sizeof(z))
		if (memcmp(b + o, z, MIN(sizeof(z), n - o)) != 0)
			return 0;
	return 1;
}

/* Prepare batch b of j (invariant 1: touches only that batch's slots). */
static void
prepare_batch(pipe_job *j, size_t b, uint8_t *scratch)
{
	size_t end = MIN(j->n, (b + 1) * PIPE_BATCH);
	for (size_t k = b * PIPE_BATCH; k < end; k++) {
		j->prep[k].iobuf = NULL;
		if (j->datas[k] == VOL_HOLE)
			continue;
		if (j->comp != CE_COMP_OFF && all_zero(j->datas[k], j->bs)) {
			j->datas[k] = VOL_HOLE; /* stays in the dirty map: freed with it */
			continue;
		}
		blk_prepare(j->datas[k], j->bs, j->comp, j->ck, BLK_BORROW, j->known ? j->known[k] : NULL, scratch,
		    &j->prep[k]);
	}
}

static void
drop_batch(pipe_job *j, size_t b, size_t from)
{
	size_t end = MIN(j->n, (b + 1) * PIPE_BATCH);
	for (size_t k = MAX(from, b * PIPE_BATCH); k < end; k++)
		blk_prep_drop(&j->prep[k]);
}

static void *
worker(void *arg)
{
	sync_pipe *sp = arg;
	uint8_t *scratch = xmalloc(compress_bound(CE_VOLBLOCKSIZE_MAX));
	pthread_mutex_lock(&sp->lock);
	while (!sp->stop) {
		pipe_job *j = sp->job;
		if (j == NULL || j->next_claim >= j->limit || j->next_claim >= j->placing + PIPE_AHEAD) {
			pthread_cond_wait(&sp->cv_work, &sp->lock);
			continue;
		}
		size_t b = j->next_claim++;
		VERIFY3U(j->state[b], ==, B_FREE);
		j->state[b] = B_CLAIMED;
		pthread_mutex_unlock(&sp->lock);
		prepare_batch(j, b, scratch);
		pthread_mutex_lock(&sp->lock);
		j->state[b] = B_DONE;
		sp->batches++;
		pthread_cond_broadcast(&sp->cv_done);
	}
	pthread_mutex_unlock(&sp->lock);
	free(scratch);
	return NULL;
}

static unsigned
threads_wanted(const ce_pool *p)
{
	int n = p->opts.sync_threads;
	if (n < 0)
		return 0; /* CE_SYNC_THREADS_NONE */
	if (n == 0) {
		long c = sysconf(_SC_NPROCESSORS_ONLN);
		n = c > 0 ? (int)c : 1;
	}
	return (unsigned)MIN(n, PIPE_MAX_THREADS);
}

/* Start p's workers (the sync thread, the first time a job is worth sharing). NULL: none wanted or none started. */
static sync_pipe *
pipe_get(ce_pool *p)
{
	if (p->pipe != NULL)
		return p->pipe->nthreads > 0 ? p->pipe : NULL;
	sync_pipe *sp = xcalloc(1, sizeof(*sp));
	pthread_mutex_init(&sp->lock, NULL);
	pthread_cond_init(&sp->cv_work, NULL);
	pthread_cond_init(&sp->cv_done, NULL);
	unsigned want = threads_wanted(p);
	sp->threads = xcalloc(want ? want : 1, sizeof(pthread_t));
	for (unsigned i = 0; i < want; i++) {
		if (pthread_create(&sp->threads[i], NULL, worker, sp) != 0)
			break; /* fewer workers: the sync thread prepares what they do not */
		pthread_setname_np(sp->threads[i], "cask-pipe");
		sp->nthreads++;
	}
	p->pipe = sp;
	return sp->nthreads > 0 ? sp : NULL;
}

void
pipe_fini(ce_pool *p)
{
	sync_pipe *sp = p->pipe;
	if (sp == NULL)
		return;
	VERIFY(sp->job == NULL);
	pthread_mutex_lock(&sp->lock);
	sp->stop = 1;
	pthread_cond_broadcast(&sp->cv_work);
	pthread_mutex_unlock(&sp->lock);
	for (unsigned i = 0; i < sp->nthreads; i++)
		pthread_join(sp->threads[i], NULL);
	pthread_cond_destroy(&sp->cv_work);
	pthread_cond_destroy(&sp->cv_done);
	pthread_mutex_destroy(&sp->lock);
	free(sp->threads);
	free(sp);
	p->pipe = NULL;
}

/* From the options alone: p->pipe is the sync thread's (a thread that failed to start is not counted out). */
unsigned
pipe_threads(const ce_pool *p)
{
	return threads_wanted(p);
}

/* Place batch b's blocks in key order (invariant 2). */
static int
place_batch(ce_pool *p, pipe_job *j, size_t b, uint64_t *queued)
{
	size_t end = MIN(j->n, (b + 1) * PIPE_BATCH);
	for (size_t k = b * PIPE_BATCH; k < end; k++) {
		bp_phys *bp = &j->leaves[k].bp;
		if (j->datas[k] == VOL_HOLE) {
			memset(bp, 0, sizeof(*bp));
			bp->bp_birth = j->t;
			continue;
		}
		uint32_t asize = P2ROUNDUP(j->prep[k].psize, CE_SECTOR);
		int err = blk_place(p, &j->prep[k], BP_DATA, 0, j->t, NULL, BLK_BORROW, bp);
		if (err != 0) {
			drop_batch(j, b, k + 1);
			return err;
		}
		if (j->prep[k].known) /* ce_pool_stat.sync_cksum_known: blocks placed with a known hash */
			__atomic_store_n(&p->cksum_known, p->cksum_known + 1, __ATOMIC_RELAXED);
		*queued += asize;
	}
	if (*queued >= PIPE_FLUSH) {
		/* the writes of the batches placed so far, while the workers prepare the next ones */
		*queued = 0;
		return wq_flush(p);
	}
	return 0;
}

int
pipe_write(ce_pool *p, uint64_t t, void **datas, const uint8_t *const *known, ct_leaf *leaves, size_t n,
    uint32_t bs, int comp, int ck)
{
	ASSERT(pool_sync_thread(p));
	pipe_job j;
	memset(&j, 0, sizeof(j));
	j.t = t;
	j.datas = datas;
	j.known = known;
	j.leaves = leaves;
	j.n = n;
	j.bs = bs;
	j.comp = comp;
	j.ck = ck;
	j.nbatches = (n + PIPE_BATCH - 1) / PIPE_BATCH;
	j.limit = j.nbatches;
	if (n == 0)
		return 0;
	j.prep = xmalloc(n * sizeof(blk_prep));
	j.state = xcalloc(j.nbatches, 1);
	if (comp != CE_COMP_OFF && p->cbuf == NULL)
		p->cbuf = xmalloc(compress_bound(CE_VOLBLOCKSIZE_MAX));

	/* one batch is not worth a hand-off */
	sync_pipe *sp = j.nbatches > 1 ? pipe_get(p) : NULL;
	if (sp != NULL) {
		pthread_mutex_lock(&sp->lock);
		VERIFY(sp->job == NULL);
		sp->job = &j;
		pthread_cond_broadcast(&sp->cv_work);
		pthread_mutex_unlock(&sp->lock);
	}
	int err = 0;
	uint64_t queued = 0;
	for (size_t b = 0; b < j.nbatches; b++) {
		int mine = 0;
		if (sp != NULL) {
			pthread_mutex_lock(&sp->lock);
			j.placing = b;
			if (err != 0 && j.limit > j.next_claim)
				j.limit = j.next_claim; /* invariant 4: nothing more is claimed */
			if (j.next_claim == b && b < j.limit) {
				j.next_claim++; /* no worker got to it: the sync thread prepares it */
				j.state[b] = B_CLAIMED;
				mine = 1;
				sp->helped++;
				sp->batches++;
			} else if (b >= j.limit) {
				pthread_mutex_unlock(&sp->lock);
				continue; /* never claimed: nothing prepared */
			}
			pthread_cond_broadcast(&sp->cv_work); /* the window moved on */
			while (!mine && j.state[b] != B_DONE)
				pthread_cond_wait(&sp->cv_done, &sp->lock);
			pthread_mutex_unlock(&sp->lock);
		} else {
			if (err != 0)
				break;
			mine = 1;
		}
		if (mine) {
			prepare_batch(&j, b, p->cbuf);
			j.state[b] = B_DONE; /* only this thread looks at a batch it claimed */
		}
		if (err == 0)
			err = place_batch(p, &j, b, &queued);
		else
			drop_batch(&j, b, 0);
	}
	if (sp != NULL) {
		pthread_mutex_lock(&sp->lock);
		for (size_t b = 0; b < j.nbatches; b++) /* invariant 4: every claimed batch came back */
			VERIFY(j.state[b] != B_CLAIMED);
		sp->job = NULL;
		pthread_mutex_unlock(&sp->lock);
	}
	free(j.prep);
	free(j.state);
	return err;
}
