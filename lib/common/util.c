/*
 * util.c -- see util.h.
 */
#include "util.h"

#include <cask/errcodes.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

void
util_panic(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "cask: fatal: %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

#if !defined(NDEBUG) && defined(__GLIBC__)
#include <unistd.h>
/* The kernel's id of this thread, what glibc stores as a mutex's owner (not cached: fork). */
int
util_tid(void)
{
	return (int)gettid();
}
#endif

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	VERIFY(p != NULL);
	return p;
}

void *
xcalloc(size_t n, size_t m)
{
	void *p = calloc(n ? n : 1, m ? m : 1);
	VERIFY(p != NULL);
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	VERIFY(p != NULL);
	return p;
}

char *
xstrdup(const char *s)
{
	char *p = strdup(s);
	VERIFY(p != NULL);
	return p;
}

void *
xmalloc_aligned(size_t n)
{
	void *p = NULL;
	VERIFY0(posix_memalign(&p, 4096, n ? P2ROUNDUP(n, 4096) : 4096));
	return p;
}

static __thread char err_buf[512];
static __thread int err_errno;   /* the failure err_buf describes */
static __thread int err_ecode;   /* and its code */

int
err_set(int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err_buf, sizeof(err_buf), fmt, ap);
	va_end(ap);
	err_errno = err;
	err_ecode = ce_errcode_of_errno(err);
	return err;
}

int
err_setc(int code, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err_buf, sizeof(err_buf), fmt, ap);
	va_end(ap);
	err_errno = err;
	err_ecode = code;
	return err;
}

int
err_code(int err)
{
	if (err == 0)
		return CE_E_NONE;
	return err == err_errno ? err_ecode : (int)ce_errcode_of_errno(err);
}

int
err_last_code(void)
{
	return err_ecode;
}

const char *
err_get(void)
{
	return err_buf;
}

void
err_clear(void)
{
	err_buf[0] = '\0';
	err_errno = 0;
	err_ecode = CE_E_NONE;
}

uint64_t
util_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void
util_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, long ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(cv, mu, &ts);
}

uint64_t
util_random64(void)
{
	uint64_t v = 0;
	while (v == 0) {
		ssize_t n = getrandom(&v, sizeof(v), 0);
		VERIFY(n == (ssize_t)sizeof(v));
	}
	return v;
}

int
util_parse_size(const char *s, uint64_t *out)
{
	char *end;
	double v;
	uint64_t mult = 1;

	if (s == NULL || *s == '\0' || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || !(v >= 0))
		return -EINVAL;
	switch (toupper((unsigned char)*end)) {
	case '\0': break;
	case 'B': mult = 1; end++; break;
	case 'K': mult = 1ull << 10; end++; break;
	case 'M': mult = 1ull << 20; end++; break;
	case 'G': mult = 1ull << 30; end++; break;
	case 'T': mult = 1ull << 40; end++; break;
	case 'P': mult = 1ull << 50; end++; break;
	default: return -EINVAL;
	}
	if (mult > 1) {
		if (*end == 'i' && toupper((unsigned char)end[1]) == 'B')
			end += 2;
		else if (toupper((unsigned char)*end) == 'B')
			end++;
	}
	if (*end != '\0')
		return -EINVAL;
	v *= (double)mult;
	if (v >= 18446744073709551615.0 || v != floor(v))
		return -EINVAL;
	*out = (uint64_t)v;
	return 0;
}

const char *
util_fmt_size(uint64_t v, char *buf, size_t len)
{
	static const char units[] = "BKMGTPE";
	double d = (double)v;
	int u = 0;
	while (d >= 1024.0 && u < 6) {
		d /= 1024.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%lluB", (unsigned long long)v);
	else if (d < 10.0)
		snprintf(buf, len, "%.2f%c", d, units[u]);
	else if (d < 100.0)
		snprintf(buf, len, "%.1f%c", d, units[u]);
	else
		snprintf(buf, len, "%.0f%c", d, units[u]);
	return buf;
}

/* Bytes in the UTF-8 sequence at s[0..len), or 0 when it is not well formed (RFC 3629). */
static size_t
utf8_seq(const unsigned char *s, size_t len)
{
	unsigned char c = s[0];
	if (c < 0x80)
		return 1;
	size_t n;
	unsigned lo = 0x80, hi = 0xbf; /* the second byte's range */
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0; /* no overlong forms */
		else if (c == 0xed)
			hi = 0x9f; /* no surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f; /* nothing above U+10FFFF */
	} else
		return 0;
	if (len < n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

size_t
util_utf8_valid_prefix(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		size_t n = utf8_seq(u + i, len - i);
		if (n == 0)
			return i;
		i += n;
	}
	return len;
}

/* A code point that behaves as a control character on a terminal or in an editor. */
static int
cp_is_control(uint32_t cp)
{
	return (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 || (cp >= 0x202a && cp <= 0x202e) ||
	    (cp >= 0x2066 && cp <= 0x2069);
}

/* The escaped form of the character at s[0..len): its bytes in *piece (maybe esc), their count; *n input bytes. */
static size_t
escape_piece(const unsigned char *u, size_t len, char esc[12], const char **piece, size_t *n)
{
	unsigned char c = u[0];
	*n = utf8_seq(u, len);
	*piece = esc;
	if (*n == 0 || c == 0x7f || (*n == 1 && c < 0x20)) {
		*n = 1;
		if (c == '\n' || c == '\r' || c == '\t')
			return (size_t)snprintf(esc, 12, "\\%c", c == '\n' ? 'n' : c == '\r' ? 'r' : 't');
		return (size_t)snprintf(esc, 12, "\\x%02x", c);
	}
	if (c == '\\') {
		*piece = "\\\\";
		return 2;
	}
	uint32_t cp = *n == 1 ? c : *n == 2 ? c & 0x1fu : *n == 3 ? c & 0x0fu : c & 0x07u;
	for (size_t k = 1; k < *n; k++)
		cp = cp << 6 | (u[k] & 0x3fu);
	if (cp_is_control(cp))
		return (size_t)snprintf(esc, 12, "\\u{%04x}", (unsigned)cp);
	*piece = (const char *)u;
	return *n;
}

/* Whether the escaped form of u[0..len) fits in room bytes. */
static int
escape_fits(const unsigned char *u, size_t len, size_t room)
{
	size_t total = 0, i = 0, n;
	char esc[12];
	const char *piece;
	while (i < len) {
		total += escape_piece(u + i, len - i, esc, &piece, &n);
		if (total > room)
			return 0;
		i += n;
	}
	return 1;
}

size_t
util_escape(char *out, size_t cap, const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t o = 0, i = 0, n;
	int rest_fits = 0;
	if (cap == 0)
		return 0;
	while (i < len) {
		char esc[12];
		const char *piece;
		size_t pn = escape_piece(u + i, len - i, esc, &piece, &n);
		/* room for this piece and, if more follows, for "..." -- unless all the rest fits */
		if (!rest_fits && o + pn + (i + n < len ? 3 : 0) >= cap &&
		    !(rest_fits = escape_fits(u + i, len - i, cap - 1 - o))) {
			/* each earlier piece left room for the dots (but cap may be tiny) */
			size_t dots = cap - 1 - o < 3 ? cap - 1 - o : 3;
			memcpy(out + o, "...", dots);
			o += dots;
			break;
		}
		memcpy(out + o, piece, pn);
		o += pn;
		i += n;
	}
	out[o] = '\0';
	return o;
}

void
util_utf8_repair(char *s, size_t len)
{
	unsigned char *u = (unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		size_t n = utf8_seq(u + i, len - i);
		if (n == 0) {
			u[i] = '?';
			n = 1;
		}
		i += n;
	}
}

/* Durations of whole minutes (docs/manifests.md `every:`): "1h30m" <-> 90, 1m .. 366d. */
int
util_parse_minutes(const char *s, uint64_t *out)
{
	uint64_t total = 0;
	if (*s == '\0')
		return -1;
	while (*s) {
		if (!isdigit((unsigned char)*s))
			return -1;
		uint64_t n = 0;
		for (; isdigit((unsigned char)*s); s++) {
			n = n * 10 + (uint64_t)(*s - '0');
			if (n > 1000000)
				return -1;
		}
		uint64_t mul = *s == 'm' ? 1 : *s == 'h' ? 60 : *s == 'd' ? 1440 : *s == 'w' ? 10080 : 0;
		if (mul == 0)
			return -1;
		s++;
		total += n * mul;
		if (total > 366ull * 1440)
			return -1;
	}
	if (total == 0)
		return -1;
	*out = total;
	return 0;
}

const char *
util_fmt_minutes(uint64_t min, char *buf, size_t len)
{
	static const struct {
		uint64_t m;
		char u;
	} units[] = { { 10080, 'w' }, { 1440, 'd' }, { 60, 'h' }, { 1, 'm' } };
	size_t o = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < 4 && o < len; i++)
		if (min >= units[i].m) {
			o += (size_t)snprintf(buf + o, len - o, "%" PRIu64 "%c", min / units[i].m, units[i].u);
			min %= units[i].m;
		}
	return buf;
}
