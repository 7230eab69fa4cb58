#ifndef CASK_DAEMON_LOG_H
#define CASK_DAEMON_LOG_H
/*
 * One line per event on stderr: time, level, message.  The message is
 * escaped as a whole (log_escape), so arguments that clients supplied are
 * passed as they are and can never start a line or carry a terminal escape.
 */
#include <stddef.h>
enum { LOG_ERR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };
extern int log_level;
/* s[0..len) with control characters, backslashes and non-UTF-8 bytes as \n, \x1b, \\ ...
 * escapes, NUL-terminated in out[0..cap), "..." when cut (util_escape). */
size_t log_escape(char *out, size_t cap, const char *s, size_t len);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#endif
