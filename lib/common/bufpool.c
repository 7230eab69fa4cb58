/*
 * bufpool.c -- see bufpool.h. One free list per 4 KiB size class, each
 * behind its own mutex; the next pointer lives in the free buffer itself.
 * At most the budget (at least RETAIN_MIN) is kept; beyond that buffers go
 * back to libc.
 */
#include "bufpool.h"
#include "util.h"

#include <pthread.h>

#define NCLASS (BUFPOOL_MAX / 4096)
#define RETAIN_MIN (16ull << 20)

typedef struct fbuf {
	struct fbuf *next;
} fbuf;

static struct {
	pthread_mutex_t lock;
	fbuf *head;
} classes[NCLASS];

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t total_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t retained;
static long long budget;

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
	for (unsigned i = 0; i < NCLASS; i++)
		pthread_mutex_init(&classes[i].lock, NULL);
}

/* Take a buffer off class c's free list (NULL when empty). */
static fbuf *
pop(unsigned c)
{
	size_t size = (size_t)(c + 1) * 4096;
	pthread_mutex_lock(&classes[c].lock);
	fbuf *b = classes[c].head;
	if (b != NULL)
		classes[c].head = b->next;
	pthread_mutex_unlock(&classes[c].lock);
	if (b != NULL) {
		pthread_mutex_lock(&total_lock);
		retained -= size;
		pthread_mutex_unlock(&total_lock);
	}
	return b;
}

void *
bufpool_get(size_t size)
{
	VERIFY(size > 0 && size % 4096 == 0 && size <= BUFPOOL_MAX);
	pthread_once(&once, init);
	fbuf *b = pop((unsigned)(size / 4096 - 1));
	return b != NULL ? (void *)b : xmalloc_aligned(size);
}

void
bufpool_put(void *buf, size_t size)
{
	if (buf == NULL)
		return;
	VERIFY(size > 0 && size % 4096 == 0 && size <= BUFPOOL_MAX);
	pthread_once(&once, init);
	pthread_mutex_lock(&total_lock);
	int keep = retained + size <= (size_t)MAX((long long)RETAIN_MIN, budget);
	if (keep)
		retained += size;
	pthread_mutex_unlock(&total_lock);
	if (!keep) {
		free(buf);
		return;
	}
	unsigned c = (unsigned)(size / 4096 - 1);
	fbuf *b = buf;
	pthread_mutex_lock(&classes[c].lock);
	b->next = classes[c].head;
	classes[c].head = b;
	pthread_mutex_unlock(&classes[c].lock);
}

/* Give idle buffers back to libc until within the budget. */
void
bufpool_trim(void)
{
	pthread_once(&once, init);
	for (unsigned c = NCLASS; c-- > 0;) {
		for (;;) {
			pthread_mutex_lock(&total_lock);
			int over = retained > (size_t)MAX((long long)RETAIN_MIN, budget);
			pthread_mutex_unlock(&total_lock);
			if (!over)
				return;
			fbuf *b = pop(c);
			if (b == NULL)
				break;
			free(b);
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
