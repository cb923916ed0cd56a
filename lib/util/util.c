/* util: time, durations, strict number parsing, URL redaction (see
 * util.h). Pure functions over the caller's buffers (rd_url_redact_dup
 * and rd_json_number allocate what they return); no global state. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/util/util.h"

int64_t rd_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* n as width decimal digits at p. */
static void put_digits(char *p, unsigned n, int width)
{
	for (int i = width - 1; i >= 0; i--, n /= 10)
		p[i] = (char)('0' + n % 10);
}

/* Years 0000 to 9999 without gmtime and printf: the days since the epoch
 * to a civil date (the proleptic Gregorian calendar in 400-year eras, as
 * gmtime counts), the same text as the general path below. */
static bool time_format_fast(int64_t ms, char buf[RD_TIME_LEN])
{
	int64_t days, rem, z, era, doe, yoe, doy, mp, y;
	unsigned d, m;

	if (ms < -62167219200000LL || ms > 253402300799999LL)
		return false;
	days = ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
	rem = ms - days * 86400000; /* 0 .. 86399999 */
	z = days + 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	y = yoe + era * 400 + (m <= 2);
	memcpy(buf, "0000-00-00T00:00:00.000Z", RD_TIME_LEN);
	put_digits(buf, (unsigned)y, 4);
	put_digits(buf + 5, m, 2);
	put_digits(buf + 8, d, 2);
	put_digits(buf + 11, (unsigned)(rem / 3600000), 2);
	put_digits(buf + 14, (unsigned)(rem / 60000 % 60), 2);
	put_digits(buf + 17, (unsigned)(rem / 1000 % 60), 2);
	put_digits(buf + 20, (unsigned)(rem % 1000), 3);
	return true;
}

void rd_time_format(int64_t ms, char buf[RD_TIME_LEN])
{
	time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
	int frac = (int)(ms - (int64_t)secs * 1000);
	struct tm tm;

	char tmp[64];

	if (time_format_fast(ms, buf))
		return;
	gmtime_r(&secs, &tm);
	/* Through a roomy buffer: the compiler cannot know tm's fields are small. */
	snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
	memcpy(buf, tmp, RD_TIME_LEN - 1);
	buf[RD_TIME_LEN - 1] = '\0';
}

static int parse_digits(const char **p, int n, int *ret)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if ((*p)[i] < '0' || (*p)[i] > '9')
			return -EINVAL;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*ret = v;
	return 0;
}

static int expect_char(const char **p, char c)
{
	if (**p != c)
		return -EINVAL;
	(*p)++;
	return 0;
}

/* Offset suffix: "Z", "+hh:mm" or "-hh:mm"; returns seconds east of UTC. */
static int parse_offset(const char **p, int *ret_secs)
{
	int sign, hh, mm;

	if (**p == 'Z' || **p == 'z') {
		(*p)++;
		*ret_secs = 0;
		return 0;
	}
	if (**p != '+' && **p != '-')
		return -EINVAL;
	sign = **p == '-' ? -1 : 1;
	(*p)++;
	if (parse_digits(p, 2, &hh) < 0 || expect_char(p, ':') < 0 || parse_digits(p, 2, &mm) < 0)
		return -EINVAL;
	if (hh > 23 || mm > 59)
		return -EINVAL;
	*ret_secs = sign * (hh * 3600 + mm * 60);
	return 0;
}

static bool date_valid(int y, int mon, int d)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	if (mon < 1 || mon > 12 || d < 1)
		return false;
	return d <= days[mon - 1] + (mon == 2 && leap);
}

int rd_time_parse(const char *s, int64_t *ret_ms)
{
	const char *p = s;
	int y, mon, d, hh = 0, mm = 0, ss = 0, off = 0, ms = 0;
	struct tm tm = {0};

	if (!s || parse_digits(&p, 4, &y) < 0 || expect_char(&p, '-') < 0 ||
	    parse_digits(&p, 2, &mon) < 0 || expect_char(&p, '-') < 0 ||
	    parse_digits(&p, 2, &d) < 0 || !date_valid(y, mon, d))
		return -EINVAL;
	if (*p != '\0') {
		if ((*p != 'T' && *p != 't' && *p != ' ') || (p++, parse_digits(&p, 2, &hh) < 0) ||
		    expect_char(&p, ':') < 0 || parse_digits(&p, 2, &mm) < 0 ||
		    expect_char(&p, ':') < 0 || parse_digits(&p, 2, &ss) < 0)
			return -EINVAL;
		if (hh > 23 || mm > 59 || ss > 60)
			return -EINVAL;
		if (*p == '.') {
			int scale = 100;

			p++;
			if (*p < '0' || *p > '9')
				return -EINVAL;
			for (; *p >= '0' && *p <= '9'; p++, scale /= 10)
				ms += (*p - '0') * scale;
		}
		if (parse_offset(&p, &off) < 0 || *p != '\0')
			return -EINVAL;
	}
	tm.tm_year = y - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = d;
	tm.tm_hour = hh;
	tm.tm_min = mm;
	tm.tm_sec = ss;
	*ret_ms = ((int64_t)timegm(&tm) - off) * 1000 + ms;
	return 0;
}

static const struct {
	const char *suffix;
	double ms;
} duration_units[] = {
        {"us", 0.001}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
};

int rd_parse_duration(const char *s, int64_t *ret_ms)
{
	char *end;
	double v, ms;

	if (!s || !((*s >= '0' && *s <= '9') || *s == '.'))
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || !isfinite(v) || v < 0)
		return -EINVAL;
	for (size_t i = 0; i < RD_ARRAY_SIZE(duration_units); i++) {
		if (strcmp(end, duration_units[i].suffix) != 0)
			continue;
		ms = v * duration_units[i].ms;
		if (ms >= 9.2e15)
			return -ERANGE;
		if (v > 0 && llround(ms) == 0)
			return -EINVAL;
		*ret_ms = llround(ms);
		return 0;
	}
	return -EINVAL;
}

void rd_format_duration(int64_t ms, char *buf, size_t len)
{
	if (ms % 86400000 == 0 && ms >= 86400000)
		snprintf(buf, len, "%lldd", (long long)(ms / 86400000));
	else if (ms % 3600000 == 0 && ms >= 3600000)
		snprintf(buf, len, "%lldh", (long long)(ms / 3600000));
	else if (ms % 60000 == 0 && ms >= 60000)
		snprintf(buf, len, "%lldm", (long long)(ms / 60000));
	else if (ms >= 1000)
		snprintf(buf, len, "%gs", (double)ms / 1000.0);
	else
		snprintf(buf, len, "%lldms", (long long)ms);
}

int rd_parse_int64(const char *s, int64_t min, int64_t max, int64_t *ret)
{
	char *end;
	long long v;

	if (!s || *s == '\0' || *s == ' ' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end != '\0')
		return -EINVAL;
	if (errno == ERANGE || v < min || v > max)
		return -ERANGE;
	*ret = v;
	return 0;
}

int rd_parse_double(const char *s, double *ret)
{
	char *end;
	double v;

	if (!s || *s == '\0' || *s == ' ')
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (*end != '\0')
		return -EINVAL;
	if (errno == ERANGE || !isfinite(v))
		return -ERANGE;
	*ret = v;
	return 0;
}

bool rd_memeq_ct(const void *a, const void *b, size_t len)
{
	const volatile unsigned char *x = a, *y = b;
	unsigned char diff = 0;

	for (size_t i = 0; i < len; i++)
		diff |= x[i] ^ y[i];
	return diff == 0;
}

json_t *rd_json_number(double v)
{
	if (!isfinite(v))
		return json_null();
	if (v == floor(v) && fabs(v) < 9007199254740992.0)
		return json_integer((json_int_t)v);
	return json_real(v);
}

/* ---- redaction ---- */

/* A bounded writer that keeps counting past its end, so one pass can
 * measure what a second one writes. */
struct out {
	char *buf;
	size_t cap, n;
};

static void put(struct out *w, const char *s, size_t n)
{
	if (w->cap > 0 && w->n < w->cap - 1) {
		size_t room = w->cap - 1 - w->n;

		memcpy(w->buf + w->n, s, n < room ? n : room);
	}
	w->n += n;
}

static bool url_end(char c)
{
	return c == '\0' || c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '"' ||
	       c == '\'' || c == '<' || c == '>' || c == '`';
}

static bool secret_param(const char *name, size_t n)
{
	static const char *const parts[] = {"token", "key", "secret",     "passw",  "pwd",
	                                    "auth",  "sig", "credential", "session"};
	char low[64];

	if (n >= sizeof(low))
		n = sizeof(low) - 1;
	for (size_t i = 0; i < n; i++)
		low[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
	low[n] = '\0';
	for (size_t i = 0; i < RD_ARRAY_SIZE(parts); i++)
		if (strstr(low, parts[i]))
			return true;
	return false;
}

/* The authority after "://": user-info hidden. Returns where it ends. */
static const char *redact_authority(struct out *w, const char *a)
{
	size_t n = 0;
	const char *at = NULL, *colon;

	while (!url_end(a[n]) && a[n] != '/' && a[n] != '?' && a[n] != '#') {
		if (a[n] == '@')
			at = a + n;
		n++;
	}
	if (!at) {
		put(w, a, n);
		return a + n;
	}
	colon = memchr(a, ':', (size_t)(at - a));
	if (colon)
		put(w, a, (size_t)(colon + 1 - a));
	put(w, RD_REDACTED, strlen(RD_REDACTED));
	put(w, at, (size_t)(a + n - at));
	return a + n;
}

/* Path, then a query whose credential-like values are hidden. */
static const char *redact_rest(struct out *w, const char *p)
{
	size_t n = 0;

	while (!url_end(p[n]) && p[n] != '?' && p[n] != '#')
		n++;
	put(w, p, n);
	p += n;
	if (*p != '?')
		return p;
	put(w, "?", 1);
	p++;
	while (!url_end(*p) && *p != '#') {
		const char *eq;

		n = 0;
		while (!url_end(p[n]) && p[n] != '#' && p[n] != '&')
			n++;
		eq = memchr(p, '=', n);
		if (eq && secret_param(p, (size_t)(eq - p))) {
			put(w, p, (size_t)(eq + 1 - p));
			put(w, RD_REDACTED, strlen(RD_REDACTED));
		} else {
			put(w, p, n);
		}
		p += n;
		if (*p == '&')
			put(w, p++, 1);
	}
	return p;
}

static size_t redact(const char *text, struct out *w)
{
	const char *p = text, *sep;

	while ((sep = strstr(p, "://")) != NULL) {
		put(w, p, (size_t)(sep + 3 - p));
		p = redact_authority(w, sep + 3);
		p = redact_rest(w, p);
	}
	put(w, p, strlen(p));
	if (w->cap > 0)
		w->buf[w->n < w->cap ? w->n : w->cap - 1] = '\0';
	return w->n;
}

char *rd_url_redact(const char *text, char *buf, size_t len)
{
	struct out w = {.buf = buf, .cap = len};

	if (len == 0)
		return buf;
	redact(text ? text : "", &w);
	return buf;
}

char *rd_url_redact_dup(const char *text)
{
	struct out w = {0};
	size_t n;
	char *copy;

	if (!text)
		return NULL;
	n = redact(text, &w);
	copy = malloc(n + 1);
	if (!copy)
		return NULL;
	w = (struct out){.buf = copy, .cap = n + 1};
	redact(text, &w);
	return copy;
}
