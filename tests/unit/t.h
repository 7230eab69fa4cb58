/*
 * t.h -- the tiny harness every C test uses. A test is a program: exit 0
 * passes, 77 skips (with the reason on stdout), anything else fails.
 * CHECK prints the failing expression and location, and fails the test.
 */
#ifndef CASK_TEST_T_H
#define CASK_TEST_T_H
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cask/engine.h"

/* Not every test uses every helper below. */
#pragma GCC diagnostic ignored "-Wunused-function"

static int t_failures __attribute__((unused));

#define CHECK(c)                                                                   \
	do {                                                                       \
		if (!(c)) {                                                        \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #c); \
			t_failures++;                                              \
			exit(1);                                                   \
		}                                                                  \
	} while (0)
/* An engine call that must succeed; prints the error and its message. */
#define OK(e)                                                                      \
	do {                                                                       \
		long long r_ = (long long)(e);                                     \
		if (r_ < 0) {                                                      \
			fprintf(stderr, "FAIL %s:%d: %s = %lld (%s): %s\n", __FILE__,  \
			    __LINE__, #e, r_, strerror((int)-r_), ce_errmsg());    \
			exit(1);                                                   \
		}                                                                  \
	} while (0)
#define CHECK_ERR(e, want)                                                         \
	do {                                                                       \
		long long r_ = (long long)(e);                                     \
		if (r_ != (want)) {                                                \
			fprintf(stderr, "FAIL %s:%d: %s = %lld, want %lld (%s)\n",     \
			    __FILE__, __LINE__, #e, r_, (long long)(want), ce_errmsg()); \
			exit(1);                                                   \
		}                                                                  \
	} while (0)

static char t_dir[256];

static void
t_cleanup(void)
{
	if (t_dir[0] && !getenv("CASK_KEEP_TEST_DIR")) {
		char cmd[300];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "warning: could not remove %s\n", t_dir);
	}
}

/* XOR `len` bytes of the file at off with mask, in place (twice restores them): damage on demand. */
static void
t_flip(const char *path, uint64_t off, size_t len, uint8_t mask)
{
	FILE *f = fopen(path, "r+b");
	CHECK(f != NULL);
	uint8_t b[4096];
	CHECK(len <= sizeof(b));
	CHECK(fseek(f, (long)off, SEEK_SET) == 0 && fread(b, 1, len, f) == len);
	for (size_t i = 0; i < len; i++)
		b[i] ^= mask;
	CHECK(fseek(f, (long)off, SEEK_SET) == 0 && fwrite(b, 1, len, f) == len);
	CHECK(fflush(f) == 0 && fsync(fileno(f)) == 0 && fclose(f) == 0);
}

/* SHA-256 of a whole file: did a refused operation leave it untouched? */
static void
t_file_digest(const char *path, uint8_t out[32])
{
	FILE *f = fopen(path, "rb");
	CHECK(f != NULL);
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	static uint8_t buf[1 << 16];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		EVP_DigestUpdate(c, buf, n);
	unsigned len;
	EVP_DigestFinal_ex(c, out, &len);
	EVP_MD_CTX_free(c);
	fclose(f);
}

/* A private scratch directory, removed at exit (also on failure exits). */
static const char *
t_tmpdir(void)
{
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(t_dir, sizeof(t_dir), "%s/cask-test-XXXXXX", base);
	if (mkdtemp(t_dir) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
	atexit(t_cleanup);
	return t_dir;
}

static const char *
t_path(const char *name)
{
	static char buf[8][512];
	static int k;
	char *b = buf[k++ % 8];
	snprintf(b, 512, "%s/%s", t_dir, name);
	return b;
}

/*
 * Run `cask-debug check` (built next to the tests: BUILD/tests/../cask-debug)
 * on a pool file, its output in t_dir/check.out. When expect is not NULL
 * the output must contain it (grep pattern). Returns check's exit status,
 * or -1 when the expected text is missing.
 */
static int
t_debug_check(const char *argv0, const char *path, const char *expect)
{
	char cmd[1600];
	const char *slash = strrchr(argv0, '/');
	snprintf(cmd, sizeof(cmd), "%.*s/../cask-debug check '%s' > '%s/check.out' 2>&1",
	    slash ? (int)(slash - argv0) : 1, slash ? argv0 : ".", path, t_dir);
	int rc = system(cmd);
	rc = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
	snprintf(cmd, sizeof(cmd), "grep -q -- '%s' '%s/check.out'", expect ? expect : "", t_dir);
	if ((expect != NULL && system(cmd) != 0) || (expect == NULL && rc != 0)) {
		fprintf(stderr, "cask-debug check exited %d%s%s:\n", rc, expect ? " without naming " : "",
		    expect ? expect : "");
		snprintf(cmd, sizeof(cmd), "cat '%s/check.out' >&2", t_dir);
		if (system(cmd) != 0)
			return -1;
		if (expect != NULL)
			return -1;
	}
	return rc;
}

/* Snapshot VOL@SNAP's listing (fails the test if there is none); whether one exists. */
static int
t_snap_find(ce_pool *p, const char *name, ce_snap_info *out)
{
	ce_snap_info *l;
	size_t n;
	int found = 0;
	OK(ce_snap_list(p, NULL, &l, &n));
	for (size_t i = 0; i < n; i++)
		if (strcmp(l[i].name, name) == 0) {
			if (out != NULL)
				*out = l[i];
			found = 1;
		}
	free(l);
	return found;
}

static ce_snap_info
t_snap_info(ce_pool *p, const char *name)
{
	ce_snap_info r;
	memset(&r, 0, sizeof(r));
	CHECK(t_snap_find(p, name, &r));
	return r;
}

static int
t_snap_exists(ce_pool *p, const char *name)
{
	return t_snap_find(p, name, NULL);
}

/* The snapshot policy of p's volume vol (ce_sched_list): 1 and *out, or 0 when it has none. */
static inline int
t_policy_of(ce_pool *p, const char *vol, ce_sched *out)
{
	ce_sched_info *l;
	size_t n;
	OK(ce_sched_list(p, &l, &n));
	int found = 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(l[i].volume, vol) == 0) {
			*out = l[i].policy;
			found = 1;
		}
	free(l);
	return found;
}

/* Deterministic pattern: xorshift from a seed. */
static inline uint64_t
t_rand(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static void
t_fill(void *buf, size_t len, uint64_t seed)
{
	uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
	uint8_t *b = buf;
	for (size_t i = 0; i < len; i += 8) {
		uint64_t r = t_rand(&s);
		memcpy(b + i, &r, (len - i < 8 ? len - i : 8));
	}
}
#endif
