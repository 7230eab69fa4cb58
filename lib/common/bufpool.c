/*
 * bufpool.c -- see bufpool.h. One class per 4 KiB size, each behind its
 * own mutex, holding two stacks of idle buffers: warm (their pages are
 * resident: what bufpool_retained counts) and cold (given back to the
 * kernel with MADV_DONTNEED: address space only).
 *
 * Buffers come from slabs: an empty class maps a run of buffers at once
 * (SLAB_MIN_BUFS of them the first time, twice as many each time after,
 * up to SLAB_MAX bytes) and pre-faults it in the same system call
 * (MAP_POPULATE). One buffer from malloc each had glibc grow a thread
 * arena's heap with an mprotect per allocation and then fault each page
 * in on first touch: with a fresh daemon, half of a sequential write's
 * CPU (perf, issue 18).
 *
 * Invariants:
 *   1. A buffer is in exactly one place: a caller's hands, or one stack of
 *      its class. Slab memory is never unmapped or passed to free().
 *   2. Warm idle bytes stay within the budget (at least RETAIN_MIN): a put
 *      beyond it, and bufpool_trim, release the buffer's pages
 *      (MADV_DONTNEED) and keep it cold. So idle memory (RSS) is bounded
 *      as before; what stays is address space, at most the high-water
 *      mark of buffers in use at once.
 *   3. A get takes a warm buffer, else a cold one (its pages fault in
 *      again, zeroed, on first touch), else maps a slab.
 */
#include "bufpool.h"
#include "util.h"

#include <pthread.h>
#include <sys/mman.h>

#define NCLASS (BUFPOOL_MAX / 4096)
#define RETAIN_MIN (16ull << 20)
#define SLAB_MIN_BUFS 16u
#define SLAB_MAX (4u << 20)

typedef struct stack {
	void **v;
	size_t n, cap;
} stack;

static struct {
	pthread_mutex_t lock;
	stack warm, cold;
	size_t slab_bufs;   /* buffers in the next slab */
} classes[NCLASS];

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t total_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t retained;
static long long budget;

static void
push(stack *s, void *b)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 256;
		s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	s->v[s->n++] = b;
}

static void *
pop_s(stack *s)
{
	return s->n > 0 ? s->v[--s->n] : NULL;
}

void
bufpool_budget_add(long long bytes)
{
	pthread_mutex_lock(&total_lock);
	budget += bytes;
	pthread_mutex_unlock(&total_lock);
	if (bytes < 0)
		bufpool_trim();
}

static void
init(void)
{
	for (unsigned i = 0; i < NCLASS; i++) {
		pthread_mutex_init(&classes[i].lock, NULL);
		classes[i].slab_bufs = SLAB_MIN_BUFS;
	}
}

static void
retained_add(long long d)
{
	pthread_mutex_lock(&total_lock);
	retained += (size_t)d;
	pthread_mutex_unlock(&total_lock);
}

static int
over_budget(size_t extra)
{
	pthread_mutex_lock(&total_lock);
	int over = retained + extra > (size_t)MAX((long long)RETAIN_MIN, budget);
	pthread_mutex_unlock(&total_lock);
	return over;
}

/* Invariant 3, with class c's lock held: a buffer, and whether it was warm. */
static void *
take(unsigned c, int *warm)
{
	void *b = pop_s(&classes[c].warm);
	*warm = b != NULL;
	if (b == NULL)
		b = pop_s(&classes[c].cold);
	return b;
}

/* Map a slab for class c: one buffer for the caller, the rest warm on the class. */
static void *
slab(unsigned c)
{
	size_t size = (size_t)(c + 1) * 4096;
	pthread_mutex_lock(&classes[c].lock);
	size_t n = classes[c].slab_bufs;
	if (n * 2 * size <= SLAB_MAX)
		classes[c].slab_bufs = n * 2;
	pthread_mutex_unlock(&classes[c].lock);
	if (n * size > SLAB_MAX)
		n = MAX(SLAB_MAX / size, (size_t)1);
	uint8_t *m = mmap(NULL, n * size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	VERIFY(m != MAP_FAILED); /* like xmalloc: out of memory is fatal */
	pthread_mutex_lock(&classes[c].lock);
	for (size_t i = 1; i < n; i++)
		push(&classes[c].warm, m + i * size);
	pthread_mutex_unlock(&classes[c].lock);
	retained_add((long long)((n - 1) * size));
	return m;
}

void *
bufpool_get(size_t size)
{
	VERIFY(size > 0 && size % 4096 == 0 && size <= BUFPOOL_MAX);
	pthread_once(&once, init);
	unsigned c = (unsigned)(size / 4096 - 1);
	int warm;
	pthread_mutex_lock(&classes[c].lock);
	void *b = take(c, &warm);
	pthread_mutex_unlock(&classes[c].lock);
	if (b == NULL)
		return slab(c);
	if (warm)
		retained_add(-(long long)size);
	return b;
}

/*
 * n buffers of one size with one hold of the class lock and of the total
 * lock (a receive takes 256 per MiB while the sync thread puts others
 * back: one lock round each was a tenth of the receiving thread, perf).
 */
void
bufpool_get_n(size_t size, void **out, size_t n)
{
	VERIFY(size > 0 && size % 4096 == 0 && size <= BUFPOOL_MAX);
	pthread_once(&once, init);
	unsigned c = (unsigned)(size / 4096 - 1);
	size_t got = 0, warm = 0;
	pthread_mutex_lock(&classes[c].lock);
	while (got < n) {
		int w;
		void *b = take(c, &w);
		if (b == NULL)
			break;
		out[got++] = b;
		warm += (size_t)w;
	}
	pthread_mutex_unlock(&classes[c].lock);
	if (warm > 0)
		retained_add(-(long long)(warm * size));
	for (; got < n; got++)
		out[got] = bufpool_get(size); /* invariant 3: the class ran dry, a slab */
}

void
bufpool_put(void *buf, size_t size)
{
	if (buf == NULL)
		return;
	VERIFY(size > 0 && size % 4096 == 0 && size <= BUFPOOL_MAX);
	VERIFY(((uintptr_t)buf & 4095) == 0);
	pthread_once(&once, init);
	unsigned c = (unsigned)(size / 4096 - 1);
	int keep = !over_budget(size);
	if (keep)
		retained_add((long long)size);
	else
		madvise(buf, size, MADV_DONTNEED); /* invariant 2 */
	pthread_mutex_lock(&classes[c].lock);
	push(keep ? &classes[c].warm : &classes[c].cold, buf);
	pthread_mutex_unlock(&classes[c].lock);
}

/* Invariant 2: release warm buffers' pages until within the budget. */
void
bufpool_trim(void)
{
	pthread_once(&once, init);
	for (unsigned c = NCLASS; c-- > 0;) {
		size_t size = (size_t)(c + 1) * 4096;
		while (over_budget(0)) {
			pthread_mutex_lock(&classes[c].lock);
			void *b = pop_s(&classes[c].warm);
			pthread_mutex_unlock(&classes[c].lock);
			if (b == NULL)
				break;
			retained_add(-(long long)size);
			madvise(b, size, MADV_DONTNEED);
			pthread_mutex_lock(&classes[c].lock);
			push(&classes[c].cold, b);
			pthread_mutex_unlock(&classes[c].lock);
		}
	}
}

size_t
bufpool_retained(void)
{
	pthread_mutex_lock(&total_lock);
	size_t r = retained;
	pthread_mutex_unlock(&total_lock);
	return r;
}
