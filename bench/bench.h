/*
 * bench.h -- what the C benchmarks share: a monotonic clock, a fast
 * deterministic random stream for incompressible data, and the one-line
 * fatal error. Each benchmark defines BENCH_NAME before including it.
 */
#ifndef CASK_BENCH_H
#define CASK_BENCH_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cask/engine.h"

static inline double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void
die(const char *what, int err)
{
	fprintf(stderr, BENCH_NAME ": %s: %s (%s)\n", what, strerror(err < 0 ? -err : err), ce_errmsg());
	exit(1);
}

static uint64_t rs = 88172645463325252ull;
static inline uint64_t
xr(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return rs;
}

/* n bytes (a multiple of 8) of incompressible data */
static inline void
fill_random(uint8_t *b, size_t n)
{
	for (size_t i = 0; i + 8 <= n; i += 8) {
		uint64_t r = xr();
		memcpy(b + i, &r, 8);
	}
}
#endif
