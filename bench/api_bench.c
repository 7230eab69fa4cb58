/*
 * api_bench -- what a libcask call costs against a running caskd (issue 7).
 * bench/api_bench.py starts the daemon, makes the volume and its
 * snapshots, runs this, and sets the figures beside the Python binding's
 * and the CLI's, measured in the same run.
 *
 *   api_bench --socket PATH --vol POOL/VOL [--calls N] [--threads T]
 *
 * Prints one JSON object:
 *   get_*        N cask_vol_get calls on one handle from one thread: calls
 *                per second, median and p99 latency in microseconds
 *   shared_cps   T threads sharing one handle (requests are serialised on
 *                it), calls per second in all
 *   own_cps      T threads with a handle each, calls per second in all
 *   list_*       cask_snap_list of the volume (every page), 5 times: items
 *                and the median time in milliseconds
 */
#define BENCH_NAME "api_bench"
#include <pthread.h>

#include "bench.h"
#include "cask/client.h"

static const char *sock, *vol;
static long calls = 20000;
static int nthreads = 4;

static void
cdie(const char *what)
{
	const cask_error_info *e = cask_error();
	fprintf(stderr, BENCH_NAME ": %s: %s (%s)\n", what, e->code, e->message);
	exit(1);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

typedef struct worker {
	cask_client *c;   /* shared, or NULL: connect its own */
	long n;
} worker;

static void *
work(void *arg)
{
	worker *w = arg;
	cask_client *c = w->c;
	if (c == NULL && cask_connect(sock, &c) != 0)
		cdie("connect");
	cask_vol_info vi;
	for (long i = 0; i < w->n; i++)
		if (cask_vol_get(c, vol, &vi) != 0)
			cdie("vol_get");
	if (w->c == NULL)
		cask_disconnect(c);
	return NULL;
}

/* calls per second of nthreads threads, on one shared handle or one each */
static double
threaded(cask_client *shared)
{
	pthread_t t[64];
	worker w[64];
	double t0 = now();
	for (int i = 0; i < nthreads; i++) {
		w[i] = (worker){ shared, calls / nthreads };
		pthread_create(&t[i], NULL, work, &w[i]);
	}
	for (int i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	return (double)(calls / nthreads * nthreads) / (now() - t0);
}

int
main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc)
			sock = argv[++i];
		else if (strcmp(argv[i], "--vol") == 0 && i + 1 < argc)
			vol = argv[++i];
		else if (strcmp(argv[i], "--calls") == 0 && i + 1 < argc)
			calls = atol(argv[++i]);
		else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
			nthreads = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: api_bench --socket PATH --vol POOL/VOL [--calls N] [--threads T]\n");
			return 2;
		}
	}
	if (sock == NULL || vol == NULL || calls < 100 || nthreads < 1 || nthreads > 64) {
		fprintf(stderr, "api_bench: --socket and --vol are needed; --calls >= 100, --threads 1-64\n");
		return 2;
	}
	cask_client *c;
	if (cask_connect(sock, &c) != 0)
		cdie("connect");
	cask_vol_info vi;
	double *lat = malloc((size_t)calls * sizeof(double));
	if (lat == NULL)
		return 1;
	/* warm up (the first thousands of calls on a fresh daemon are slower) */
	for (long i = 0; i < calls / 5 || i < 2000; i++)
		if (cask_vol_get(c, vol, &vi) != 0)
			cdie("vol_get");
	double t0 = now();
	for (long i = 0; i < calls; i++) {
		double a = now();
		if (cask_vol_get(c, vol, &vi) != 0)
			cdie("vol_get");
		lat[i] = now() - a;
	}
	double total = now() - t0;
	qsort(lat, (size_t)calls, sizeof(double), cmp_double);
	double shared = threaded(c), own = threaded(NULL);

	double lt[5];
	size_t items = 0;
	for (int r = 0; r < 5; r++) {
		cask_snap_info *si;
		double a = now();
		if (cask_snap_list(c, vol, &si, &items) != 0)
			cdie("snap_list");
		lt[r] = now() - a;
		free(si);
	}
	qsort(lt, 5, sizeof(double), cmp_double);
	printf("{\"calls\": %ld, \"get_cps\": %.0f, \"get_median_us\": %.1f, \"get_p99_us\": %.1f, "
	       "\"threads\": %d, \"shared_cps\": %.0f, \"own_cps\": %.0f, \"list_items\": %zu, "
	       "\"list_median_ms\": %.2f}\n",
	    calls, (double)calls / total, lat[calls / 2] * 1e6, lat[calls * 99 / 100] * 1e6, nthreads, shared, own,
	    items, lt[2] * 1e3);
	free(lat);
	cask_disconnect(c);
	return 0;
}
