/* log: one event per line on stderr, logfmt-shaped so journald and humans
 * both read it: `ts=... level=info msg="..." key=value`. lib/ code logs at
 * debug only (docs/style.md); api/ and daemon/ decide what is worth more.
 * The threshold is process-wide and set by daemon/ only; the main loop
 * thread and the load-engine threads may all log (one write(2) per line).
 */
#pragma once

#include <stdarg.h>

enum rd_log_level {
	RD_LOG_ERROR = 0,
	RD_LOG_WARN,
	RD_LOG_INFO,
	RD_LOG_DEBUG,
};

void rd_log_set_level(enum rd_log_level level);
enum rd_log_level rd_log_get_level(void);

/* "error", "warn", "info", "debug" -> level. Returns 0 or -EINVAL. */
int rd_log_level_parse(const char *s, enum rd_log_level *ret_level);

/* Logs msg (printf format) at level; extra logfmt fields may follow in
 * fields (already formatted, e.g. "run=42 probe=latency"), or NULL. */
void rd_log(enum rd_log_level level, const char *fields, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

#define log_error(...) rd_log(RD_LOG_ERROR, NULL, __VA_ARGS__)
#define log_warn(...)  rd_log(RD_LOG_WARN, NULL, __VA_ARGS__)
#define log_info(...)  rd_log(RD_LOG_INFO, NULL, __VA_ARGS__)
#define log_debug(...) rd_log(RD_LOG_DEBUG, NULL, __VA_ARGS__)
