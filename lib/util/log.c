/* log: logfmt lines on stderr (see log.h). One write(2) per event so lines
 * from the load-engine threads never interleave mid-line. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lib/util/log.h"
#include "lib/util/util.h"

static _Atomic int log_level = RD_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void rd_log_set_level(enum rd_log_level level)
{
	atomic_store(&log_level, (int)level);
}

enum rd_log_level rd_log_get_level(void)
{
	return (enum rd_log_level)atomic_load(&log_level);
}

int rd_log_level_parse(const char *s, enum rd_log_level *ret_level)
{
	for (size_t i = 0; i < RD_ARRAY_SIZE(level_names); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*ret_level = (enum rd_log_level)i;
			return 0;
		}
	}
	if (strcmp(s, "warning") == 0) {
		*ret_level = RD_LOG_WARN;
		return 0;
	}
	return -EINVAL;
}

/* Appends msg as a logfmt quoted value: quotes, backslashes and control
 * characters escaped, so one event stays one line whatever it contains. */
static size_t append_quoted(char *buf, size_t pos, size_t cap, const char *msg)
{
	if (pos < cap)
		buf[pos++] = '"';
	for (const unsigned char *p = (const unsigned char *)msg; *p && pos + 6 < cap; p++) {
		if (*p == '"' || *p == '\\') {
			buf[pos++] = '\\';
			buf[pos++] = (char)*p;
		} else if (*p == '\n') {
			buf[pos++] = '\\';
			buf[pos++] = 'n';
		} else if (*p < 0x20 || *p == 0x7f) {
			pos += (size_t)snprintf(buf + pos, cap - pos, "\\x%02x", *p);
		} else {
			buf[pos++] = (char)*p;
		}
	}
	if (pos < cap)
		buf[pos++] = '"';
	return pos;
}

void rd_log(enum rd_log_level level, const char *fields, const char *fmt, ...)
{
	char msg[2048], line[4608], ts[RD_TIME_LEN];
	size_t pos;
	va_list ap;
	int saved = errno;

	if ((int)level > atomic_load(&log_level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	rd_time_format(rd_now_ms(), ts);
	pos = (size_t)snprintf(line, sizeof(line), "ts=%s level=%s msg=", ts, level_names[level]);
	pos = append_quoted(line, pos, sizeof(line) - 2, msg);
	if (fields && *fields && pos + 2 < sizeof(line))
		pos += (size_t)snprintf(line + pos, sizeof(line) - pos - 1, " %s", fields);
	if (pos > sizeof(line) - 2)
		pos = sizeof(line) - 2;
	line[pos++] = '\n';
	(void)!write(STDERR_FILENO, line, pos);
	errno = saved;
}
