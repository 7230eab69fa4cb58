/*
 * alloc.c -- space allocation: one bitmap per vdev, sector granularity.
 *
 * Owns which sectors of each data area are in use. Two bitmaps per vdev:
 *   cur   -- the allocation state of the txg being synced; it is what the
 *            bitmap object on disk records for that txg (§4.2 of the
 *            format), so it describes exactly the blocks reachable from
 *            that txg's uberblock;
 *   avail -- cur plus the blocks freed in this txg: a freed block is
 *            still referenced by the last committed txg, so it must not be
 *            handed out again until this txg commits.
 *
 * Invariants:
 *   1. Only the sync thread allocates and frees (txg.c); writers only
 *      charge and uncharge (promises against free space).
 *   2. cur ⊆ avail. A free clears cur at once and avail after commit
 *      (alloc_commit_done), unless the block was born in the syncing txg
 *      and is therefore not referenced by any committed uberblock.
 *   3. free for writers = unallocated(avail) - charged - reserve; the
 *      reserve keeps sync passes, trim and destroy working on a full
 *      pool. New records that take no data space (snapshots) may use the
 *      reserve, but only its first half (alloc_meta_room): the second half
 *      stays for the sync passes, trim and destroy, so snapshots taken on
 *      a full pool fail with -ENOSPC instead of making a commit fail.
 *   4. Every change to cur marks its 16 KiB bitmap leaf dirty, so the
 *      next sync pass rewrites it.
 *
 * Allocation is next-fit from a rotor, so that the blocks of one txg land
 * next to each other and random writes become sequential IO. Vdevs are
 * striped in 1 MiB runs.
 */
#include "alloc.h"
#include "util.h"
#include "vdev.h"

#include <errno.h>
#include <string.h>

#define STRIPE_SECTORS 256u

void
alloc_init(alloc *a, unsigned nvdevs, const uint64_t *nsectors)
{
	memset(a, 0, sizeof(*a));
	pthread_mutex_init(&a->lock, NULL);
	a->nvdevs = nvdevs;
	a->v = xcalloc(nvdevs, sizeof(alloc_vdev));
	for (unsigned i = 0; i < nvdevs; i++) {
		alloc_vdev *av = &a->v[i];
		av->nsectors = nsectors[i];
		av->sm_bytes = P2ROUNDUP((nsectors[i] + 7) / 8, CE_META_BLOCK);
		av->nleaves = av->sm_bytes / CE_META_BLOCK;
		av->nwords = av->sm_bytes / 8;
		av->cur = xcalloc(av->nwords, 8);
		av->avail = xcalloc(av->nwords, 8);
		av->leaf_dirty = xcalloc(av->nleaves, 1);
		a->total += nsectors[i];
	}
	a->reserve = MAX(a->total / 32, 256u);
	if (a->reserve > a->total / 2)
		a->reserve = a->total / 2;
	a->vrotor_left = STRIPE_SECTORS;
}

void
alloc_fini(alloc *a)
{
	for (unsigned i = 0; i < a->nvdevs; i++) {
		free(a->v[i].cur);
		free(a->v[i].avail);
		free(a->v[i].leaf_dirty);
	}
	free(a->v);
	free(a->deferred);
	pthread_mutex_destroy(&a->lock);
}

static uint64_t
popcount_words(const uint64_t *w, uint64_t n)
{
	uint64_t c = 0;
	for (uint64_t i = 0; i < n; i++)
		c += (uint64_t)__builtin_popcountll(w[i]);
	return c;
}

int
alloc_load(alloc *a, unsigned v, const void *bitmap, uint64_t len)
{
	alloc_vdev *av = &a->v[v];
	if (len != av->sm_bytes)
		return -EIO;
	memcpy(av->cur, bitmap, len);
	/* Bits past the end of the data area must be clear. */
	for (uint64_t s = av->nsectors; s < av->nwords * 64; s++)
		if (av->cur[s >> 6] & (1ull << (s & 63)))
			return -EIO;
	memcpy(av->avail, av->cur, len);
	av->ncur = av->navail = popcount_words(av->cur, av->nwords);
	return 0;
}

static void
set_bits(uint64_t *w, uint64_t s, uint64_t n, int val)
{
	while (n > 0) {
		uint64_t bit = s & 63;
		uint64_t k = MIN(64 - bit, n);
		uint64_t mask = (k == 64 ? ~0ull : ((1ull << k) - 1)) << bit;
		if (val) {
			VERIFY((w[s >> 6] & mask) == 0);
			w[s >> 6] |= mask;
		} else {
			VERIFY((w[s >> 6] & mask) == mask);
			w[s >> 6] &= ~mask;
		}
		s += k;
		n -= k;
	}
}

static void
mark_dirty(alloc_vdev *av, uint64_t s, uint64_t n)
{
	uint64_t first = (s / 8) / CE_META_BLOCK, last = ((s + n - 1) / 8) / CE_META_BLOCK;
	for (uint64_t l = first; l <= last; l++)
		av->leaf_dirty[l] = 1;
}

/* First run of n clear bits in [start, end), or -1. */
static int64_t
find_run(const uint64_t *w, uint64_t start, uint64_t end, uint64_t n)
{
	uint64_t i = start;
	while (i + n <= end) {
		uint64_t wi = i >> 6;
		uint64_t word = ~w[wi] & (~0ull << (i & 63));
		while (word == 0) {
			wi++;
			if (wi * 64 >= end)
				return -1;
			word = ~w[wi];
		}
		i = wi * 64 + (uint64_t)__builtin_ctzll(word);
		if (i + n > end)
			return -1;
		uint64_t j = i, stop = i + n;
		int ok = 1;
		while (j < stop) {
			uint64_t wj = j >> 6;
			uint64_t ones = w[wj] & (~0ull << (j & 63));
			if (ones != 0) {
				uint64_t one = wj * 64 + (uint64_t)__builtin_ctzll(ones);
				if (one < stop) {
					i = one + 1;
					ok = 0;
				}
				break;
			}
			j = (wj + 1) * 64;
		}
		if (ok)
			return (int64_t)i;
	}
	return -1;
}

static int64_t
alloc_on_vdev(alloc_vdev *av, uint64_t n)
{
	int64_t s = find_run(av->avail, av->rotor, av->nsectors, n);
	if (s < 0)
		s = find_run(av->avail, 0, MIN(av->rotor + n, av->nsectors), n);
	if (s < 0)
		return -1;
	set_bits(av->avail, (uint64_t)s, n, 1);
	set_bits(av->cur, (uint64_t)s, n, 1);
	av->navail += n;
	av->ncur += n;
	av->rotor = (uint64_t)s + n;
	mark_dirty(av, (uint64_t)s, n);
	return s;
}

int
alloc_alloc(alloc *a, uint64_t bytes, uint32_t *vdi, uint64_t *offset)
{
	uint64_t n = bytes / CE_SECTOR;
	VERIFY(n > 0 && bytes % CE_SECTOR == 0);
	pthread_mutex_lock(&a->lock);
	for (unsigned tries = 0; tries < a->nvdevs; tries++) {
		unsigned v = a->vrotor;
		int64_t s = alloc_on_vdev(&a->v[v], n);
		if (s >= 0) {
			if (a->vrotor_left <= n || a->v[v].navail == a->v[v].nsectors) {
				a->vrotor = (a->vrotor + 1) % a->nvdevs;
				a->vrotor_left = STRIPE_SECTORS;
			} else {
				a->vrotor_left -= n;
			}
			pthread_mutex_unlock(&a->lock);
			*vdi = v;
			*offset = VDEV_DATA_START + (uint64_t)s * CE_SECTOR;
			return 0;
		}
		a->vrotor = (a->vrotor + 1) % a->nvdevs;
		a->vrotor_left = STRIPE_SECTORS;
	}
	pthread_mutex_unlock(&a->lock);
	return -ENOSPC;
}

void
alloc_free(alloc *a, uint32_t vdi, uint64_t offset, uint64_t bytes, int immediate)
{
	VERIFY3U(vdi, <, a->nvdevs);
	alloc_vdev *av = &a->v[vdi];
	uint64_t s = (offset - VDEV_DATA_START) / CE_SECTOR, n = bytes / CE_SECTOR;
	VERIFY(offset >= VDEV_DATA_START && s + n <= av->nsectors && n > 0);
	pthread_mutex_lock(&a->lock);
	set_bits(av->cur, s, n, 0);
	av->ncur -= n;
	mark_dirty(av, s, n);
	if (immediate) {
		set_bits(av->avail, s, n, 0);
		av->navail -= n;
	} else {
		if (a->ndeferred == a->capdeferred) {
			a->capdeferred = a->capdeferred ? a->capdeferred * 2 : 256;
			a->deferred = xrealloc(a->deferred, a->capdeferred * sizeof(alloc_extent));
		}
		a->deferred[a->ndeferred++] = (alloc_extent){ vdi, s, n };
	}
	pthread_mutex_unlock(&a->lock);
}

static uint64_t unallocated(const alloc *a);

/*
 * Intent log data written in place (ilog.c): sectors taken in `avail` only,
 * so the allocator skips them but no bitmap ever records them. Only when
 * the charges of dirty data and the reserve stay covered.
 */
int
alloc_log_claim(alloc *a, uint64_t bytes, uint32_t *vdi, uint64_t *offset)
{
	uint64_t n = bytes / CE_SECTOR;
	VERIFY(n > 0 && bytes % CE_SECTOR == 0);
	pthread_mutex_lock(&a->lock);
	if (unallocated(a) < a->charged + a->reserve + n) {
		pthread_mutex_unlock(&a->lock);
		return -ENOSPC;
	}
	for (unsigned k = 0; k < a->nvdevs; k++) {
		unsigned v = (a->log_vrotor + k) % a->nvdevs;
		alloc_vdev *av = &a->v[v];
		int64_t s = find_run(av->avail, av->rotor, av->nsectors, n);
		if (s < 0)
			s = find_run(av->avail, 0, MIN(av->rotor + n, av->nsectors), n);
		if (s < 0)
			continue;
		set_bits(av->avail, (uint64_t)s, n, 1);
		av->navail += n;
		av->rotor = (uint64_t)s + n;
		a->log_vrotor = (v + 1) % a->nvdevs; /* spread in-place data over the vdevs */
		pthread_mutex_unlock(&a->lock);
		*vdi = v;
		*offset = VDEV_DATA_START + (uint64_t)s * CE_SECTOR;
		return 0;
	}
	pthread_mutex_unlock(&a->lock);
	return -ENOSPC;
}

/* At replay: take exactly these sectors; -EEXIST when any of them is in use. */
int
alloc_log_claim_at(alloc *a, uint32_t vdi, uint64_t offset, uint64_t bytes)
{
	if (vdi >= a->nvdevs || offset < VDEV_DATA_START || bytes == 0 || bytes % CE_SECTOR != 0 ||
	    (offset - VDEV_DATA_START) % CE_SECTOR != 0)
		return -EINVAL;
	alloc_vdev *av = &a->v[vdi];
	uint64_t s = (offset - VDEV_DATA_START) / CE_SECTOR, n = bytes / CE_SECTOR;
	if (s + n > av->nsectors)
		return -EINVAL;
	pthread_mutex_lock(&a->lock);
	for (uint64_t i = s; i < s + n; i++) {
		if (av->avail[i >> 6] & (1ull << (i & 63))) {
			pthread_mutex_unlock(&a->lock);
			return -EEXIST;
		}
	}
	set_bits(av->avail, s, n, 1);
	av->navail += n;
	pthread_mutex_unlock(&a->lock);
	return 0;
}

void
alloc_log_release(alloc *a, uint32_t vdi, uint64_t offset, uint64_t bytes)
{
	alloc_vdev *av = &a->v[vdi];
	uint64_t s = (offset - VDEV_DATA_START) / CE_SECTOR, n = bytes / CE_SECTOR;
	pthread_mutex_lock(&a->lock);
	set_bits(av->avail, s, n, 0);
	av->navail -= n;
	pthread_mutex_unlock(&a->lock);
}

void
alloc_commit_done(alloc *a)
{
	pthread_mutex_lock(&a->lock);
	for (size_t i = 0; i < a->ndeferred; i++) {
		alloc_extent *e = &a->deferred[i];
		set_bits(a->v[e->vdev].avail, e->sector, e->count, 0);
		a->v[e->vdev].navail -= e->count;
	}
	a->ndeferred = 0;
	pthread_mutex_unlock(&a->lock);
}

static uint64_t
unallocated(const alloc *a)
{
	uint64_t used = 0;
	for (unsigned i = 0; i < a->nvdevs; i++)
		used += a->v[i].navail;
	return a->total - used;
}

int
alloc_charge(alloc *a, uint64_t sectors, int may_use_reserve)
{
	int err = 0;
	pthread_mutex_lock(&a->lock);
	uint64_t room = unallocated(a);
	uint64_t need = a->charged + sectors + (may_use_reserve ? 0 : a->reserve);
	if (need > room)
		err = -ENOSPC;
	else
		a->charged += sectors;
	pthread_mutex_unlock(&a->lock);
	return err;
}

void
alloc_uncharge(alloc *a, uint64_t sectors)
{
	pthread_mutex_lock(&a->lock);
	VERIFY3U(a->charged, >=, sectors);
	a->charged -= sectors;
	pthread_mutex_unlock(&a->lock);
}

uint64_t
alloc_free_sectors(alloc *a)
{
	pthread_mutex_lock(&a->lock);
	uint64_t room = unallocated(a);
	uint64_t need = a->charged + a->reserve;
	pthread_mutex_unlock(&a->lock);
	return room > need ? room - need : 0;
}

int
alloc_meta_room(alloc *a, uint64_t sectors)
{
	pthread_mutex_lock(&a->lock);
	uint64_t room = unallocated(a);
	uint64_t need = a->charged + a->reserve - a->reserve / 2 + sectors; /* invariant 3 */
	pthread_mutex_unlock(&a->lock);
	return need > room ? -ENOSPC : 0;
}

uint64_t
alloc_used_sectors(alloc *a)
{
	uint64_t used = 0;
	pthread_mutex_lock(&a->lock);
	for (unsigned i = 0; i < a->nvdevs; i++)
		used += a->v[i].ncur;
	pthread_mutex_unlock(&a->lock);
	return used;
}

int
alloc_test(const alloc *a, uint32_t vdi, uint64_t sector)
{
	return (a->v[vdi].cur[sector >> 6] >> (sector & 63)) & 1;
}
