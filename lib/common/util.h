/*
 * util.h -- small helpers shared by every cask component: invariant
 * checks that print the failing values, alignment arithmetic, and the
 * thread-local error detail that library calls leave for their caller.
 */
#ifndef CASK_COMMON_UTIL_H
#define CASK_COMMON_UTIL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define P2ROUNDUP(x, a) ((((x) + (a) - 1) / (a)) * (a))
#define P2ALIGN(x, a) (((x) / (a)) * (a))
#define IS_P2(x) ((x) != 0 && (((x) & ((x) - 1)) == 0))

_Noreturn void util_panic(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* VERIFY: an invariant that must hold in every build. */
#define VERIFY(c)                                                           \
	do {                                                                \
		if (__builtin_expect(!(c), 0))                              \
			util_panic(__FILE__, __LINE__, "VERIFY(%s) failed", #c); \
	} while (0)
/* VERIFY3U: compare two unsigned values and print both on failure. */
#define VERIFY3U(a, op, b)                                                  \
	do {                                                                \
		uint64_t va_ = (uint64_t)(a), vb_ = (uint64_t)(b);          \
		if (__builtin_expect(!(va_ op vb_), 0))                     \
			util_panic(__FILE__, __LINE__,                      \
			    "VERIFY3U(%s %s %s) failed (%llu %s %llu)", #a, \
			    #op, #b, (unsigned long long)va_, #op,          \
			    (unsigned long long)vb_);                       \
	} while (0)
#define VERIFY0(e)                                                          \
	do {                                                                \
		long long ve_ = (long long)(e);                             \
		if (__builtin_expect(ve_ != 0, 0))                          \
			util_panic(__FILE__, __LINE__,                      \
			    "VERIFY0(%s) failed (%lld)", #e, ve_);          \
	} while (0)
/*
 * ASSERT: an invariant checked in debug and sanitizer builds (not in the
 * release build, -DNDEBUG). ASSERT_HELD(m): this thread holds mutex m, from
 * the owner glibc records in every default mutex (elsewhere: unchecked).
 */
#ifdef NDEBUG
#define ASSERT(c) ((void)0)
#define ASSERT3U(a, op, b) ((void)0)
#define ASSERT_HELD(m) ((void)0)
#else
#define ASSERT(c) VERIFY(c)
#define ASSERT3U(a, op, b) VERIFY3U(a, op, b)
#if defined(__GLIBC__)
int util_tid(void);
#define ASSERT_HELD(m) VERIFY3U((m)->__data.__owner, ==, util_tid())
#else
#define ASSERT_HELD(m) ((void)(m))
#endif
#endif

/* Allocation that cannot fail silently: out of memory is fatal. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* Sector-aligned buffer for direct IO; free with free(). */
void *xmalloc_aligned(size_t n);

/*
 * Error detail: a library call that fails returns -errno and may leave a
 * one-line explanation here for its caller (per thread), and with it the
 * failure's stable code (cask/errcodes.h). err_set gives the code its
 * errno says; err_setc names a specific one, for a condition whose errno
 * other conditions share (CE_E_HELD is an EBUSY). Callers branch on the
 * code, never on the message.
 */
int err_set(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int err_setc(int code, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
const char *err_get(void);
/*
 * The code of failure err: the one the last err_set/err_setc on this
 * thread gave, when it set this errno; else what err says by itself (so a
 * failure returned without a message still has a code). CE_E_NONE for 0.
 */
int err_code(int err);
/* The code of this thread's last failure (CE_E_NONE after err_clear). */
int err_last_code(void);
void err_clear(void);

uint64_t util_now_ns(void);
/* pthread_cond_timedwait for at most ms milliseconds (cv on CLOCK_REALTIME, the default). */
void util_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, long ms);
uint64_t util_random64(void); /* from getrandom(), never 0 */

/* Parse "512", "4K", "1.5G", "2TiB" into bytes. 0 or -EINVAL. */
int util_parse_size(const char *s, uint64_t *out);
/* Durations of whole minutes, 1m .. 366d (manifests' and cask schedule's `every`): "1h30m" -> 90: 0, or -1. */
int util_parse_minutes(const char *s, uint64_t *out);
/* 90 -> "1h30m" (weeks, days, hours, minutes). */
const char *util_fmt_minutes(uint64_t min, char *buf, size_t len);
/* Format bytes as "1.50G"; buf of at least 16 bytes. */
const char *util_fmt_size(uint64_t v, char *buf, size_t len);

/*
 * The length of the longest prefix of s[0..len) that is well-formed UTF-8
 * (len when all of it is).
 */
size_t util_utf8_valid_prefix(const char *s, size_t len);
/* Replace every byte of s[0..len) that is not part of well-formed UTF-8 with '?'. */
void util_utf8_repair(char *s, size_t len);
/*
 * s[0..len) as text that cannot end or forge a line or drive a terminal
 * (caskd's log, daemon/log.c): a backslash becomes \\, \n \r \t stay
 * readable as \n \r \t, every other control byte (C0, DEL), every byte
 * outside well-formed UTF-8 and a NUL become \xHH; code points that act
 * as controls (C1 U+0080-U+009F, the line and paragraph separators
 * U+2028/2029, the bidirectional overrides U+202A-202E, U+2066-2069)
 * become \u{HHHH}.  Other UTF-8 and printable ASCII are kept.  The result
 * is NUL-terminated in out[0..cap) (cap >= 1), cut only between escapes,
 * and ends in "..." when s did not fit.  Returns the length written.
 */
size_t util_escape(char *out, size_t cap, const char *s, size_t len);

#endif
