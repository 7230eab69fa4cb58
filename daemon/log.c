/*
 * log.c -- caskd's log: one line per event on stderr, with a UTC
 * timestamp and a level, written with a single write() so that lines
 * from different threads never interleave.
 *
 * Messages carry what clients sent (NBD export names, control-protocol
 * operation names and arguments, engine messages that quote them), so
 * the whole message is escaped here, at the one place every line passes
 * (util_escape: a newline becomes \n, ESC \x1b, a backslash \\, bytes
 * outside UTF-8 \xHH): a client can neither start a forged line nor send
 * escape sequences to whoever reads the log.  Call sites pass raw strings;
 * nothing else escapes them (that would double the backslashes).
 */
#include "log.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int log_level = LOG_INFO;

size_t
log_escape(char *out, size_t cap, const char *s, size_t len)
{
	return util_escape(out, cap, s, len);
}

void
log_msg(int level, const char *fmt, ...)
{
	static const char *names[] = { "error", "warn", "info", "debug" };
	if (level > log_level)
		return;
	char raw[1024], line[2048];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, names[level]);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	int cut = (size_t)m >= sizeof(raw);
	if (cut)
		m = (int)sizeof(raw) - 1; /* (a character cut in two shows as \xHH) */
	n += (int)log_escape(line + n, sizeof(line) - (size_t)n - 4, raw, (size_t)m);
	if (cut && (n < 3 || memcmp(line + n - 3, "...", 3) != 0)) {
		memcpy(line + n, "...", 3);
		n += 3;
	}
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
}
