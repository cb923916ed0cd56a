/* spec: the readiness-spec validator (see spec.h, docs/spec.md). Both input
 * formats become one jansson tree (YAML through spec_yaml.c, JSON through
 * jansson), and one table-driven validator turns that tree into struct
 * spec: a field-descriptor table per object kind (spec_schema.h) says
 * which keys exist, their type, bounds, default and where they land in
 * the C structure. The top level, gates, requests and the checklist have
 * their tables here; each probe type has its fields and its rules across
 * them (finish) in its own table, lib/probe/probe_<type>.c, found through
 * the probe type registry.
 *
 * The first error wins and carries the path of the field at fault; on any
 * error nothing leaks. This module does no I/O and holds no policy about
 * which hosts a probe may reach (that is the daemon's allowlist).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/util/ere.h"
#include "lib/probe/jsonpath.h"
#include "lib/spec/spec.h"
#include "lib/spec/spec_schema.h"
#include "lib/spec/spec_yaml.h"
#include "lib/probe/probe.h"
#include "lib/util/suggest.h"
#include "lib/util/util.h"

#define NO_STORE         ((size_t)-1)
#define MAX_SHORT        128 /* service, environment, version */
#define MAX_METHOD       32
#define MAX_HEADER_NAME  256
#define MAX_HEADER_VALUE 8192
#define MAX_STATUSES     16
#define MAX_SLO_CONDS    8
#define MAX_AGE_MS       (36500LL * 86400 * 1000)
#define REDACTED         RD_REDACTED

/* --- validation context and errors --- */

struct spec_vctx {
	struct spec_error *err;
	const struct spec_srcmap *map;
	struct spec *spec;
	int obj_line; /* line of the innermost mapping, for nodes without one */
	int key_line; /* line of the field being read, for nodes without one */
};

/* The line to report for node: its own; for values without one (true,
 * false and null are shared singletons) the key's, else the mapping's. */
static int line_of(const struct spec_vctx *v, const json_t *node)
{
	int line = spec_srcmap_line(v->map, node);

	return line ? line : v->key_line ? v->key_line : v->obj_line;
}

static int vfail(struct spec_vctx *v, int line, const char *path, const char *fmt, va_list ap)
        __attribute__((format(printf, 4, 0)));

static int vfail(struct spec_vctx *v, int line, const char *path, const char *fmt, va_list ap)
{
	snprintf(v->err->path, sizeof(v->err->path), "%s", path);
	vsnprintf(v->err->message, sizeof(v->err->message), fmt, ap);
	v->err->line = line;
	return -EINVAL;
}

static int fail_line(struct spec_vctx *v, int line, const char *path, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static int fail_line(struct spec_vctx *v, int line, const char *path, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vfail(v, line, path, fmt, ap);
	va_end(ap);
	return r;
}

static int fail(struct spec_vctx *v, const json_t *node, const char *path, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* Records the error at path and returns -EINVAL, so callers can write
 * `return fail(...)`. The first error ends validation. */
static int fail(struct spec_vctx *v, const json_t *node, const char *path, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vfail(v, line_of(v, node), path, fmt, ap);
	va_end(ap);
	return r;
}

int spec_fail(struct spec_vctx *v, const json_t *node, const char *path, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vfail(v, line_of(v, node), path, fmt, ap);
	va_end(ap);
	return r;
}

const struct spec *spec_vctx_spec(const struct spec_vctx *v)
{
	return v->spec;
}

/* --- descriptors --- */

#define AT(base, off, type) ((type *)((char *)(base) + (off)))

/* FK_MODE stores enum load_mode through an int. */
_Static_assert(sizeof(enum load_mode) == sizeof(int), "enum load_mode is not int-sized");

static const struct spec_field *schema_find(const struct spec_schema *sc, const char *key)
{
	for (size_t i = 0; i < sc->n; i++) {
		if (!strcmp(sc->fields[i].key, key))
			return &sc->fields[i];
	}
	return NULL;
}

/* --- string checks (may normalise in place) --- */

static bool is_name_char(char c, const char *extra)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr(extra, c));
}

static int check_charset(const char *s, const char *extra, size_t max, char *msg, size_t len)
{
	size_t n = 0;

	for (const char *p = s; *p; p++, n++) {
		if (!is_name_char(*p, extra)) {
			snprintf(msg, len, "must match [A-Za-z0-9%s]{1,%zu}", extra, max);
			return -EINVAL;
		}
	}
	if (n > max) {
		snprintf(msg, len, "must match [A-Za-z0-9%s]{1,%zu}", extra, max);
		return -EINVAL;
	}
	return 0;
}

int spec_check_probe_name(char *s, char *msg, size_t len)
{
	return check_charset(s, "_-", SPEC_MAX_NAME, msg, len);
}

static int check_service_name(char *s, char *msg, size_t len)
{
	return check_charset(s, "._-", MAX_SHORT, msg, len);
}

static int check_item_name(const char *s, char *msg, size_t len)
{
	return check_charset(s, "._-", SPEC_MAX_NAME, msg, len);
}

static int check_no_ctl(const char *s, char *msg, size_t len)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			snprintf(msg, len, "must not contain control characters");
			return -EINVAL;
		}
	}
	return 0;
}

int spec_check_version(char *s, char *msg, size_t len)
{
	if (strlen(s) > MAX_SHORT) {
		snprintf(msg, len, "must be at most %d characters", MAX_SHORT);
		return -EINVAL;
	}
	return check_no_ctl(s, msg, len);
}

/* RFC 9110 tchar. */
static bool is_tchar(char c)
{
	return is_name_char(c, "!#$%&'*+-.^_`|~");
}

int spec_check_method(char *s, char *msg, size_t len)
{
	for (char *p = s; *p; p++) {
		if (!is_tchar(*p)) {
			snprintf(msg, len, "must be an HTTP method such as GET or POST");
			return -EINVAL;
		}
		*p = (char)toupper((unsigned char)*p);
	}
	if (strlen(s) > MAX_METHOD) {
		snprintf(msg, len, "must be at most %d characters", MAX_METHOD);
		return -EINVAL;
	}
	return 0;
}

static int check_port(const char *p, size_t n)
{
	int64_t port = 0;

	if (n == 0 || n > 5)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -EINVAL;
		port = port * 10 + (p[i] - '0');
	}
	return port >= 1 && port <= 65535 ? 0 : -EINVAL;
}

/* host[:port] or [v6]:port; the host must not be empty. */
static int check_hostport(const char *h, size_t n)
{
	const char *colon;

	if (n > 0 && h[0] == '[') {
		const char *close = memchr(h, ']', n);

		if (!close || close == h + 1)
			return -EINVAL;
		if ((size_t)(close + 1 - h) == n)
			return 0;
		if (close[1] != ':')
			return -EINVAL;
		return check_port(close + 2, n - (size_t)(close + 2 - h));
	}
	colon = memchr(h, ':', n);
	if (!colon)
		return n > 0 ? 0 : -EINVAL;
	if (colon == h)
		return -EINVAL;
	return check_port(colon + 1, n - (size_t)(colon + 1 - h));
}

static bool url_is_https(const char *s)
{
	return !strncasecmp(s, "https://", 8);
}

int spec_check_url(char *s, char *msg, size_t len)
{
	const char *auth, *at;
	size_t n;

	if (strncasecmp(s, "http://", 7) != 0 && !url_is_https(s))
		goto bad;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p <= 0x20 || *p == 0x7f)
			goto bad;
	}
	auth = strstr(s, "://") + 3;
	n = strcspn(auth, "/?#");
	/* userinfo@ is allowed (and redacted in reports); the host follows the last @. */
	while ((at = memchr(auth, '@', n)) != NULL) {
		n -= (size_t)(at + 1 - auth);
		auth = at + 1;
	}
	if (check_hostport(auth, n) < 0)
		goto bad;
	return 0;
bad:
	snprintf(msg, len, "must be an http:// or https:// URL with a host (and a valid port)");
	return -EINVAL;
}

int spec_check_hostname(char *s, char *msg, size_t len)
{
	if (strlen(s) > 253 || check_charset(s, ".-", 253, msg, len) < 0) {
		snprintf(msg, len, "must be a host name");
		return -EINVAL;
	}
	return 0;
}

static bool has_dotdot(const char *s)
{
	for (const char *p = s; (p = strstr(p, "..")) != NULL; p += 2) {
		if ((p == s || p[-1] == '/') && (p[2] == '\0' || p[2] == '/'))
			return true;
	}
	return false;
}

int spec_check_abs_path(char *s, char *msg, size_t len)
{
	if (s[0] != '/' || has_dotdot(s)) {
		snprintf(msg, len, "must be an absolute path without '..'");
		return -EINVAL;
	}
	return check_no_ctl(s, msg, len);
}

int spec_check_cgroup(char *s, char *msg, size_t len)
{
	if (has_dotdot(s)) {
		snprintf(msg, len, "must be a cgroup path without '..'");
		return -EINVAL;
	}
	return check_no_ctl(s, msg, len);
}

int spec_check_regex(char *s, char *msg, size_t len)
{
	return ere_check(s, msg, len);
}

int spec_check_slo(char *s, char *msg, size_t len)
{
	struct gate_expr conds[MAX_SLO_CONDS];
	char why[200];

	if (gate_parse_slo(s, conds, MAX_SLO_CONDS, why, sizeof(why)) < 0) {
		snprintf(msg, len,
		         "is not a valid SLO (e.g. \"p95_ms < 100 and error_rate < 0.01\"): %s",
		         why);
		return -EINVAL;
	}
	return 0;
}

/* --- scalar readers --- */

/* A string-typed value: a string, or a number as the user wrote it (the
 * YAML converter keeps the text of plain numbers; a JSON integer has only
 * one spelling; a JSON real does not keep its text, so it is refused). On
 * success the document node becomes that string, so doc says what the
 * spec means ("2.40", not 2.4). val must not be used afterwards. */
static int take_text(struct spec_vctx *v, json_t *parent, const char *key, size_t index,
                     json_t *val, const char *path, char **ret)
{
	const char *t = NULL;
	char num[32];
	char *copy;

	if (json_is_string(val))
		t = json_string_value(val);
	else if (json_is_number(val))
		t = spec_srcmap_text(v->map, val);
	if (!t && json_is_integer(val)) {
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(val));
		t = num;
	}
	if (!t && json_is_real(val))
		return fail(v, val, path,
		            "must be a string (quote it: JSON numbers lose their text)");
	if (!t)
		return fail(v, val, path, "must be a string");
	copy = strdup(t);
	if (!copy)
		return -ENOMEM;
	if (!json_is_string(val)) {
		json_t *str = json_string(copy);
		int r = !str  ? -1
		        : key ? json_object_set_new(parent, key, str)
		              : json_array_set_new(parent, index, str);

		if (r < 0) {
			free(copy);
			return -ENOMEM;
		}
	}
	*ret = copy;
	return 0;
}

static void join_choices(const char *const *choices, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; choices[i] && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "", choices[i]);
}

static int choice_index(const char *const *choices, const char *s)
{
	for (int i = 0; choices[i]; i++) {
		if (!strcmp(choices[i], s))
			return i;
	}
	return -1;
}

/* Validates s against f: emptiness, length, choices, check(). */
static int check_string(struct spec_vctx *v, const struct spec_field *f, int line, const char *path,
                        char *s)
{
	size_t max = f->max ? (size_t)f->max : SPEC_MAX_STRING;
	char msg[200];

	if (s[0] == '\0')
		return fail_line(v, line, path, "must not be empty");
	if (strlen(s) > max)
		return fail_line(v, line, path, "must be at most %zu bytes", max);
	if (f->choices && choice_index(f->choices, s) < 0) {
		join_choices(f->choices, msg, sizeof(msg));
		return fail_line(v, line, path, "must be one of: %s", msg);
	}
	if (f->check && f->check(s, msg, sizeof(msg)) < 0)
		return fail_line(v, line, path, "%s", msg);
	return 0;
}

static int read_string(struct spec_vctx *v, const struct spec_field *f, json_t *parent, json_t *val,
                       const char *path, void *base)
{
	int line = line_of(v, val); /* val may be replaced by its text */
	char *s = NULL;
	int r;

	r = take_text(v, parent, f->key, 0, val, path, &s);
	if (r == 0)
		r = check_string(v, f, line, path, s);
	if (r < 0 || f->off == NO_STORE) {
		free(s);
		return r;
	}
	free(*AT(base, f->off, char *));
	*AT(base, f->off, char *) = s;
	return 0;
}

static int read_body(struct spec_vctx *v, const struct spec_field *f, json_t *parent, json_t *val,
                     const char *path, void *base)
{
	int line = line_of(v, val);
	char *s;
	int r = take_text(v, parent, f->key, 0, val, path, &s);

	if (r < 0)
		return r;
	if (strlen(s) > SPEC_MAX_STRING) {
		free(s);
		return fail_line(v, line, path, "must be at most %d bytes", SPEC_MAX_STRING);
	}
	free(*AT(base, f->off, char *));
	*AT(base, f->off, char *) = s;
	*AT(base, f->count_off, size_t) = strlen(s);
	return 0;
}

static int duration_error(struct spec_vctx *v, const struct spec_field *f, const json_t *val,
                          const char *path)
{
	char lo[32], hi[32];

	if (!json_is_string(val))
		return fail(v, val, path,
		            "must be a duration such as '30s' (units: us, ms, s, m, h, d)");
	rd_format_duration(f->min, lo, sizeof(lo));
	rd_format_duration(f->max, hi, sizeof(hi));
	return fail(v, val, path, "must be a duration from %s to %s", lo, hi);
}

static int read_duration(struct spec_vctx *v, const struct spec_field *f, json_t *val,
                         const char *path, void *base)
{
	int64_t ms = 0;
	int r;

	if (!json_is_string(val))
		return duration_error(v, f, val, path);
	r = rd_parse_duration(json_string_value(val), &ms);
	if (r == -EINVAL)
		return fail(v, val, path,
		            "'%.32s' is not a duration such as '30s' (units: us, ms, s, m, h, d)",
		            json_string_value(val));
	if (r < 0 || ms < f->min || ms > f->max)
		return duration_error(v, f, val, path);
	*AT(base, f->off, int64_t) = ms;
	return 0;
}

static int read_date(struct spec_vctx *v, const struct spec_field *f, json_t *val, const char *path,
                     void *base)
{
	int64_t ms;

	if (!json_is_string(val) || rd_time_parse(json_string_value(val), &ms) < 0)
		return fail(v, val, path, "must be a date (2026-11-20) or an RFC 3339 time");
	*AT(base, f->off, int64_t) = ms;
	return 0;
}

static int read_int(struct spec_vctx *v, const struct spec_field *f, json_t *val, const char *path,
                    void *base)
{
	json_int_t n;

	if (!json_is_integer(val))
		goto bad;
	n = json_integer_value(val);
	if (n < f->min || n > f->max)
		goto bad;
	*AT(base, f->off, int64_t) = n;
	return 0;
bad:
	return fail(v, val, path, "must be an integer from %lld to %lld", (long long)f->min,
	            (long long)f->max);
}

static int read_number(struct spec_vctx *v, const struct spec_field *f, json_t *val,
                       const char *path, void *base)
{
	double d;

	if (!json_is_number(val))
		goto bad;
	d = json_number_value(val);
	if (!isfinite(d) || (f->gt_min ? d <= f->dmin : d < f->dmin) || d > f->dmax)
		goto bad;
	*AT(base, f->off, double) = d;
	return 0;
bad:
	if (f->gt_min)
		return fail(v, val, path, "must be a number greater than %g and at most %g",
		            f->dmin, f->dmax);
	return fail(v, val, path, "must be a number from %g to %g", f->dmin, f->dmax);
}

static int read_bool(struct spec_vctx *v, const struct spec_field *f, json_t *val, const char *path,
                     void *base)
{
	if (!json_is_boolean(val))
		return fail(v, val, path, "must be true or false");
	if (f->kind == FK_TRISTATE)
		*AT(base, f->off, int) = json_is_true(val);
	else
		*AT(base, f->off, bool) = json_is_true(val);
	return 0;
}

static int read_mode(struct spec_vctx *v, const struct spec_field *f, json_t *val, const char *path,
                     void *base)
{
	char msg[128];
	int i = json_is_string(val) ? choice_index(f->choices, json_string_value(val)) : -1;

	if (i < 0) {
		join_choices(f->choices, msg, sizeof(msg));
		return fail(v, val, path, "must be one of: %s", msg);
	}
	*AT(base, f->off, int) = i;
	return 0;
}

/* --- lists and maps --- */

/* A list of 1..max distinct non-empty strings, each at most SPEC_MAX_TEXT bytes. */
static int read_strv(struct spec_vctx *v, json_t *arr, const char *path, size_t max, char ***ret_v,
                     size_t *ret_n)
{
	char ipath[sizeof(v->err->path)];
	size_t n = json_array_size(arr);
	char **sv;

	if (!json_is_array(arr) || n == 0 || n > max)
		return fail(v, arr, path, "must be a list of 1 to %zu strings", max);
	sv = calloc(n, sizeof(*sv));
	if (!sv)
		return -ENOMEM;
	free(*ret_v);
	*ret_v = sv;
	*ret_n = n;
	for (size_t i = 0; i < n; i++) {
		int line = line_of(v, json_array_get(arr, i)), r;

		spec_path_index(ipath, sizeof(ipath), path, i);
		r = take_text(v, arr, NULL, i, json_array_get(arr, i), ipath, &sv[i]);
		if (r < 0)
			return r;
		if (sv[i][0] == '\0' || strlen(sv[i]) > SPEC_MAX_TEXT)
			return fail_line(v, line, ipath,
			                 "must be a non-empty string of at most %d bytes",
			                 SPEC_MAX_TEXT);
		for (size_t j = 0; j < i; j++) {
			if (!strcmp(sv[i], sv[j]))
				return fail_line(v, line, ipath, "'%.64s' is listed twice", sv[i]);
		}
	}
	return 0;
}

/* A list of strings; each entry passes the field's check (file lists:
 * absolute paths without '..'). */
static int read_string_list(struct spec_vctx *v, const struct spec_field *f, json_t *val,
                            const char *path, void *base)
{
	char ipath[sizeof(v->err->path)], msg[200];
	char **sv;
	int r = read_strv(v, val, path, (size_t)f->max, AT(base, f->off, char **),
	                  AT(base, f->count_off, size_t));

	sv = *AT(base, f->off, char **);
	for (size_t i = 0; r == 0 && f->check && i < *AT(base, f->count_off, size_t); i++) {
		if (f->check(sv[i], msg, sizeof(msg)) < 0) {
			spec_path_index(ipath, sizeof(ipath), path, i);
			return fail(v, json_array_get(val, i), ipath, "%s", msg);
		}
	}
	return r;
}

static int read_status_list(struct spec_vctx *v, const struct spec_field *f, json_t *val,
                            const char *path, void *base)
{
	size_t n = json_array_size(val);
	int64_t *st;

	if (!json_is_array(val) || n == 0 || n > MAX_STATUSES)
		return fail(v, val, path, "must be a list of 1 to %d HTTP status codes",
		            MAX_STATUSES);
	st = calloc(n, sizeof(*st));
	if (!st)
		return -ENOMEM;
	free(*AT(base, f->off, int64_t *));
	*AT(base, f->off, int64_t *) = st;
	*AT(base, f->count_off, size_t) = n;
	for (size_t i = 0; i < n; i++) {
		json_t *it = json_array_get(val, i);
		char ipath[sizeof(v->err->path)];

		spec_path_index(ipath, sizeof(ipath), path, i);
		if (!json_is_integer(it) || json_integer_value(it) < 100 ||
		    json_integer_value(it) > 599)
			return fail(v, it, ipath, "must be an HTTP status code from 100 to 599");
		st[i] = json_integer_value(it);
	}
	return 0;
}

static bool is_token(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++) {
		if (!is_tchar(*s))
			return false;
	}
	return true;
}

/* Headers that frame or route the request (RFC 9110 7.6.1 and 7.2):
 * readyd's HTTP clients write them, and one from a spec beside theirs
 * would make a request that the target and a proxy in front of it read
 * differently (request smuggling). */
static bool is_framing_header(const char *name)
{
	static const char *const framing[] = {"host",       "content-length", "transfer-encoding",
	                                      "connection", "keep-alive",     "upgrade",
	                                      "te",         "trailer",        "proxy-connection"};

	for (size_t i = 0; i < RD_ARRAY_SIZE(framing); i++) {
		if (!strcasecmp(name, framing[i]))
			return true;
	}
	return false;
}

/* One header: a token name, a value without control characters (CR/LF
 * would let a spec inject headers or split the request). */
static int read_header(struct spec_vctx *v, json_t *obj, const char *name, json_t *val,
                       const char *path, struct spec_header *h)
{
	int line, r;

	v->key_line = spec_srcmap_key_line(v->map, obj, name);
	line = line_of(v, val);
	if (!is_token(name) || strlen(name) > MAX_HEADER_NAME)
		return fail(v, val, path, "header name must be an HTTP token (letters, digits, -)");
	if (is_framing_header(name))
		return fail(v, val, path,
		            "readyd sets this header itself (Host, Content-Length, "
		            "Transfer-Encoding, Connection and other hop-by-hop headers "
		            "cannot be given)");
	h->name = strdup(name);
	if (!h->name)
		return -ENOMEM;
	r = take_text(v, obj, name, 0, val, path, &h->value);
	if (r < 0)
		return r;
	for (const unsigned char *p = (const unsigned char *)h->value; *p; p++) {
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return fail_line(
			        v, line, path,
			        "header value must not contain control characters (CR/LF)");
	}
	if (strlen(h->value) > MAX_HEADER_VALUE)
		return fail_line(v, line, path, "header value longer than %d bytes",
		                 MAX_HEADER_VALUE);
	return 0;
}

static int read_headers(struct spec_vctx *v, const struct spec_field *f, json_t *val,
                        const char *path, void *base)
{
	size_t n = json_object_size(val), i = 0;
	struct spec_header *hs;
	const char *name;
	json_t *hv;

	if (!json_is_object(val) || n > SPEC_MAX_HEADERS)
		return fail(v, val, path, "must be a mapping of at most %d headers",
		            SPEC_MAX_HEADERS);
	hs = calloc(n ? n : 1, sizeof(*hs));
	if (!hs)
		return -ENOMEM;
	*AT(base, f->off, struct spec_header *) = hs;
	*AT(base, f->count_off, size_t) = n;
	json_object_foreach (val, name, hv) {
		char hpath[sizeof(v->err->path)];
		int r;

		spec_path_key(hpath, sizeof(hpath), path, name);
		r = read_header(v, val, name, hv, hpath, &hs[i]);
		if (r < 0)
			return r;
		for (size_t j = 0; j < i; j++) {
			if (!strcasecmp(hs[j].name, name))
				return fail(v, hv, hpath,
				            "duplicate header (names are case-insensitive)");
		}
		i++;
	}
	return 0;
}

/* alert-drill `labels`: Prometheus label names (not alertname, which is
 * `alert`) to exact, non-empty values: an empty value is an absent label
 * in Prometheus, so it could never match. */
static int read_label(struct spec_vctx *v, json_t *obj, const char *name, json_t *val,
                      const char *path, struct spec_label *l)
{
	bool ok = (isalpha((unsigned char)name[0]) || name[0] == '_') && strlen(name) <= 128;
	int r;

	for (const char *c = name; ok && *c; c++)
		ok = isalnum((unsigned char)*c) || *c == '_';
	if (!ok || strncmp(name, "__", 2) == 0)
		return fail(v, val, path,
		            "must be a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not __*)");
	if (strcmp(name, "alertname") == 0)
		return fail(v, val, path, "the alert's name goes in 'alert', not in 'labels'");
	l->name = strdup(name);
	if (!l->name)
		return -ENOMEM;
	r = take_text(v, obj, name, 0, val, path, &l->value);
	if (r < 0)
		return r;
	if (!l->value[0] || strlen(l->value) > SPEC_MAX_TEXT)
		return fail(v, val, path, "must be a non-empty string of at most %d bytes",
		            SPEC_MAX_TEXT);
	return 0;
}

static int read_labels(struct spec_vctx *v, const struct spec_field *f, json_t *val,
                       const char *path, void *base)
{
	size_t n = json_object_size(val), i = 0;
	struct spec_label *ls;
	const char *name;
	json_t *lv;

	if (!json_is_object(val) || n == 0 || n > SPEC_MAX_HEADERS)
		return fail(v, val, path, "must be a mapping of 1 to %d label: value entries",
		            SPEC_MAX_HEADERS);
	ls = calloc(n, sizeof(*ls));
	if (!ls)
		return -ENOMEM;
	*AT(base, f->off, struct spec_label *) = ls;
	*AT(base, f->count_off, size_t) = n;
	json_object_foreach (val, name, lv) {
		char lpath[sizeof(v->err->path)];
		int r;

		spec_path_key(lpath, sizeof(lpath), path, name);
		v->key_line = spec_srcmap_key_line(v->map, val, name);
		r = read_label(v, val, name, lv, lpath, &ls[i++]);
		if (r < 0)
			return r;
	}
	return 0;
}

/* expect_json: JSONPath -> expected value. The paths are parsed now
 * (against null: only their syntax is checked) so a typo fails the spec,
 * not the run. */
static int read_json(struct spec_vctx *v, const struct spec_field *f, json_t *val, const char *path,
                     void *base)
{
	const char *key;
	json_t *it, *copy, *found;
	char kpath[sizeof(v->err->path)], why[160];

	if (!json_is_object(val) || json_object_size(val) == 0 ||
	    json_object_size(val) > SPEC_MAX_LIST)
		return fail(v, val, path, "must be a mapping of 1 to %d JSONPath -> value entries",
		            SPEC_MAX_LIST);
	json_object_foreach (val, key, it) {
		spec_path_key(kpath, sizeof(kpath), path, key);
		if (key[0] != '$')
			return fail(v, it, kpath,
			            "keys must be JSONPath expressions starting with '$'");
		if (jsonpath_get(json_null(), key, &found, why, sizeof(why)) == -EINVAL)
			return fail(v, it, kpath, "is not a valid path such as $.data.items[0]: %s",
			            why);
	}
	copy = json_deep_copy(val);
	if (!copy)
		return -ENOMEM;
	json_decref(*AT(base, f->off, json_t *));
	*AT(base, f->off, json_t *) = copy;
	return 0;
}

/* --- objects --- */

static int parse_object(struct spec_vctx *v, json_t *obj, const char *path,
                        const struct spec_schema *sc, void *base);

static int read_request(struct spec_vctx *v, const struct spec_field *f, json_t *val,
                        const char *path, void *base)
{
	struct spec_request **slot = AT(base, f->off, struct spec_request *);

	if (!*slot) {
		*slot = calloc(1, sizeof(**slot));
		if (!*slot)
			return -ENOMEM;
	}
	return parse_object(v, val, path, f->sub, *slot);
}

static int read_field(struct spec_vctx *v, const struct spec_field *f, json_t *obj, json_t *val,
                      const char *path, void *base)
{
	switch (f->kind) {
	case FK_SKIP:
		return 0;
	case FK_STRING:
		return read_string(v, f, obj, val, path, base);
	case FK_BODY:
		return read_body(v, f, obj, val, path, base);
	case FK_DURATION:
		return read_duration(v, f, val, path, base);
	case FK_DATE:
		return read_date(v, f, val, path, base);
	case FK_INT:
		return read_int(v, f, val, path, base);
	case FK_NUMBER:
		return read_number(v, f, val, path, base);
	case FK_BOOL:
	case FK_TRISTATE:
		return read_bool(v, f, val, path, base);
	case FK_MODE:
		return read_mode(v, f, val, path, base);
	case FK_STRING_LIST:
		return read_string_list(v, f, val, path, base);
	case FK_STATUS_LIST:
		return read_status_list(v, f, val, path, base);
	case FK_HEADERS:
		return read_headers(v, f, val, path, base);
	case FK_LABELS:
		return read_labels(v, f, val, path, base);
	case FK_REQUEST:
		return read_request(v, f, val, path, base);
	case FK_OBJECT:
		return parse_object(v, val, path, f->sub, AT(base, f->off, void));
	case FK_JSON:
		return read_json(v, f, val, path, base);
	case FK_CUSTOM:
		return f->custom(v, val, path, base);
	}
	return -EINVAL;
}

static int apply_default(const struct spec_field *f, void *base)
{
	switch (f->kind) {
	case FK_STRING:
		if (f->sdef && f->off != NO_STORE) {
			*AT(base, f->off, char *) = strdup(f->sdef);
			if (!*AT(base, f->off, char *))
				return -ENOMEM;
		}
		return 0;
	case FK_INT:
	case FK_DURATION:
		if (f->def)
			*AT(base, f->off, int64_t) = f->def;
		return 0;
	case FK_NUMBER:
		if (f->ddef != 0)
			*AT(base, f->off, double) = f->ddef;
		return 0;
	case FK_TRISTATE:
		*AT(base, f->off, int) = -1;
		return 0;
	default:
		return 0;
	}
}

static bool probe_type_has_key(const char *key)
{
	for (size_t t = 0; t < probe_type_count(); t++) {
		const struct probe_type_def *d = probe_type_get((enum probe_type)t);

		for (size_t i = 0; i < d->n_fields; i++)
			if (!strcmp(d->fields[i].key, key))
				return true;
	}
	return false;
}

static int unknown_key(struct spec_vctx *v, const json_t *val, const char *path,
                       const struct spec_schema *sc, const char *key)
{
	struct rd_suggest sg = {.word = key};
	char hint[96];

	for (size_t i = 0; i < sc->n; i++)
		rd_suggest_try(&sg, sc->fields[i].key);
	rd_suggest_text(&sg, hint, sizeof(hint));
	if (!sg.best && sc->probe && probe_type_has_key(key))
		return fail(v, val, path, "not a field of %s probes", sc->what);
	return fail(v, val, path, "unknown field%s", hint);
}

static int check_keys(struct spec_vctx *v, json_t *obj, const char *path,
                      const struct spec_schema *sc)
{
	char kpath[sizeof(v->err->path)];
	const char *key;
	json_t *val;

	json_object_foreach (obj, key, val) {
		if (schema_find(sc, key))
			continue;
		spec_path_key(kpath, sizeof(kpath), path, key);
		return unknown_key(v, val, kpath, sc, key);
	}
	return 0;
}

static int parse_fields(struct spec_vctx *v, json_t *obj, const char *path,
                        const struct spec_schema *sc, void *base)
{
	char fpath[sizeof(v->err->path)];
	int saved = v->key_line;

	for (size_t i = 0; i < sc->n; i++) {
		const struct spec_field *f = &sc->fields[i];
		json_t *val = json_object_get(obj, f->key);
		int r;

		spec_path_key(fpath, sizeof(fpath), path, f->key);
		v->key_line = spec_srcmap_key_line(v->map, obj, f->key);
		if (!val || json_is_null(val)) {
			if (f->required && sc->probe)
				return fail(v, obj, fpath, "missing (required for %s probes)",
				            sc->what);
			if (f->required)
				return fail(v, obj, fpath, "missing (required in %s)", sc->what);
			r = apply_default(f, base);
		} else {
			r = read_field(v, f, obj, val, fpath, base);
		}
		if (r < 0)
			return r;
	}
	v->key_line = saved;
	return 0;
}

/* Checks keys against the schema, then reads every field in table order
 * (so errors come out in a stable order) and fills defaults. */
static int parse_object(struct spec_vctx *v, json_t *obj, const char *path,
                        const struct spec_schema *sc, void *base)
{
	int saved = v->obj_line, line = spec_srcmap_line(v->map, obj), r;

	if (!json_is_object(obj))
		return fail(v, obj, path, "must be a mapping");
	if (line)
		v->obj_line = line;
	r = check_keys(v, obj, path, sc);
	if (r == 0)
		r = parse_fields(v, obj, path, sc, base);
	if (r == 0)
		v->obj_line = saved;
	return r;
}

/* --- schemas --- */

/* The tables are kept one field per line, aligned by hand: they are read
 * as a schema more than as code. */
/* clang-format off */
static const char *const api_versions[] = {"readyd/v1", NULL};
/* What becomes of a run whose node stopped (docs/scale-out.md). */
static const char *const resume_modes[] = {"interrupt", "requeue", NULL};

#define R(m) offsetof(struct spec_request, m)
#define MAXD SPEC_MAX_DURATION_MS

static const struct spec_field request_fields[] = {
	{.key = "method",  .kind = FK_STRING, .off = R(method), .sdef = "GET",
	 .check = spec_check_method},
	{.key = "url",     .kind = FK_STRING, .required = true, .flags = SPEC_FIELD_URL,
	 .off = R(url), .max = SPEC_MAX_URL, .check = spec_check_url},
	{.key = "headers", .kind = FK_HEADERS, .off = R(headers), .count_off = R(n_headers)},
	{.key = "body",    .kind = FK_BODY, .off = R(body), .count_off = R(body_len)},
	{.key = "timeout", .kind = FK_DURATION, .off = R(timeout_ms), .min = 1, .max = MAXD},
};
const struct spec_schema spec_request_schema = {
	"a request", request_fields, RD_ARRAY_SIZE(request_fields), false};

/* load/capacity `request`: what to send instead of the target's request,
 * written into the probe's own url/method/headers/body. */
static const struct spec_field override_fields[] = {
	SPEC_F_URL(false), SPEC_F_METHOD, SPEC_F_HEADERS, SPEC_F_BODY};
const struct spec_schema spec_override_schema = {
	"a request", override_fields, RD_ARRAY_SIZE(override_fields), false};

#define G(m) offsetof(struct spec_gate, m)
static const struct spec_field gate_fields[] = {
	{.key = "expr",          .kind = FK_STRING, .required = true, .off = G(expr), .max = 1024},
	{.key = "advisory",      .kind = FK_BOOL, .off = G(advisory)},
	{.key = "abort_on_fail", .kind = FK_BOOL, .off = G(abort_on_fail)},
	{.key = "min_samples",   .kind = FK_INT, .off = G(min_samples), .min = 1,
	 .max = 1000000000},
};
static const struct spec_schema gate_schema = {
	"a gate", gate_fields, RD_ARRAY_SIZE(gate_fields), false};

#define C(m) offsetof(struct spec_check_item, m)
static const struct spec_field item_fields[] = {
	{.key = "evidence", .kind = FK_STRING, .off = C(evidence), .max = SPEC_MAX_TEXT},
	{.key = "tested",   .kind = FK_DATE, .off = C(tested_ms)},
	{.key = "max_age",  .kind = FK_DURATION, .off = C(max_age_ms), .min = 1, .max = MAX_AGE_MS},
	{.key = "passed",   .kind = FK_TRISTATE, .off = C(passed)},
};
static const struct spec_schema item_schema = {
	"a checklist item", item_fields, RD_ARRAY_SIZE(item_fields), false};

static int parse_probes(struct spec_vctx *v, json_t *val, const char *path, void *base);
static int parse_gates(struct spec_vctx *v, json_t *val, const char *path, void *base);
static int parse_checklist(struct spec_vctx *v, json_t *val, const char *path, void *base);

#define S(m) offsetof(struct spec, m)
/* Order matters: target before probes (they inherit from it), probes
 * before gates (gates name probes). */
static const struct spec_field top_fields[] = {
	{.key = "apiVersion",  .kind = FK_STRING, .required = true, .off = NO_STORE,
	 .choices = api_versions},
	{.key = "service",     .kind = FK_STRING, .required = true, .off = S(service),
	 .check = check_service_name},
	{.key = "version",     .kind = FK_STRING, .required = true, .off = S(version),
	 .check = spec_check_version},
	{.key = "environment", .kind = FK_STRING, .off = S(environment), .sdef = "default",
	 .check = check_service_name},
	{.key = "timeout",     .kind = FK_DURATION, .off = S(timeout_ms), .min = 1000,
	 .max = MAXD, .def = 30 * 60 * 1000},
	{.key = "resume",      .kind = FK_STRING, .off = NO_STORE, .choices = resume_modes},
	{.key = "target",      .kind = FK_OBJECT, .off = S(target), .sub = &spec_request_schema},
	{.key = "probes",      .kind = FK_CUSTOM, .custom = parse_probes},
	{.key = "gates",       .kind = FK_CUSTOM, .custom = parse_gates},
	{.key = "checklist",   .kind = FK_CUSTOM, .custom = parse_checklist},
};
static const struct spec_schema top_schema = {
	"the spec", top_fields, RD_ARRAY_SIZE(top_fields), false};
/* clang-format on */

/* --- cross-field rules, per probe type --- */

/* Like fail(), for the field key of the mapping obj at path. */
int spec_fail_at(struct spec_vctx *v, const json_t *obj, const char *path, const char *key,
                 const char *fmt, ...)
{
	char fpath[sizeof(v->err->path)];
	int line = spec_srcmap_line(v->map, json_object_get(obj, key));
	va_list ap;
	int r;

	if (!line)
		line = spec_srcmap_key_line(v->map, obj, key);
	if (!line)
		line = line_of(v, obj);
	spec_path_key(fpath, sizeof(fpath), path, key);
	va_start(ap, fmt);
	r = vfail(v, line, fpath, fmt, ap);
	va_end(ap);
	return r;
}

static bool has_target(const struct spec *s)
{
	return s->target.url != NULL;
}

static int copy_headers(const struct spec_header *src, size_t n, struct spec_header **ret,
                        size_t *ret_n)
{
	struct spec_header *h = calloc(n ? n : 1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	*ret = h;
	*ret_n = n;
	for (size_t i = 0; i < n; i++) {
		h[i].name = strdup(src[i].name);
		h[i].value = strdup(src[i].value);
		if (!h[i].name || !h[i].value)
			return -ENOMEM;
	}
	return 0;
}

static int copy_str(const char *src, char **ret)
{
	if (!src || *ret)
		return 0;
	*ret = strdup(src);
	return *ret ? 0 : -ENOMEM;
}

int spec_str_default(char **slot, const char *src)
{
	return copy_str(src, slot);
}

/* The probe's effective request (docs/spec.md, "Requests"): with a url of
 * its own, it stands alone (method GET unless given); without one, it is
 * the target's request with the fields the probe gives replacing the
 * target's. src is the mapping that holds those fields, or NULL. */
int spec_inherit_target(struct spec_vctx *v, const json_t *src, const char *path,
                        struct spec_probe *p)
{
	const struct spec_request *t = &v->spec->target;
	int r;

	if (p->url)
		return copy_str("GET", &p->method);
	if (!has_target(v->spec))
		return fail(v, src, path, "needs a url: give the probe a url or the spec a target");
	r = copy_str(t->url, &p->url);
	if (r == 0)
		r = copy_str(t->method, &p->method);
	if (r == 0 && !(src && json_object_get(src, "headers")) && !p->headers)
		r = copy_headers(t->headers, t->n_headers, &p->headers, &p->n_headers);
	if (r == 0 && !p->body && t->body) {
		p->body = malloc(t->body_len + 1);
		if (!p->body)
			return -ENOMEM;
		memcpy(p->body, t->body, t->body_len + 1);
		p->body_len = t->body_len;
	}
	return r;
}

#define USERINFO_LOAD                                                                              \
	"'%s' probes do not send credentials from the URL; give an Authorization header "          \
	"(Basic with base64 of user:password) instead"

/* "scheme://user[:password]@host..." */
static bool url_has_userinfo(const char *url)
{
	const char *auth = strstr(url, "://");
	size_t n;

	if (!auth)
		return false;
	auth += 3;
	n = strcspn(auth, "/?#");
	return memchr(auth, '@', n) != NULL;
}

/* load and capacity always measure the spec's target (its per-request
 * timeout is theirs); `request` may change what is sent. The load engine
 * sends exactly the headers given, so credentials in the URL would be
 * silently dropped: they are refused, pointing at the header instead. */
int spec_load_request(struct spec_vctx *v, json_t *obj, const char *path, struct spec_probe *p)
{
	json_t *req = json_object_get(obj, "request");
	char rpath[sizeof(v->err->path)];
	int r;

	if (p->threads > p->connections)
		return spec_fail_at(v, obj, path, "threads", "must not exceed connections (%lld)",
		                    (long long)p->connections);
	if (!has_target(v->spec))
		return fail(v, obj, path, "'%s' probes need the spec's target",
		            probe_type_to_string(p->type));
	r = spec_inherit_target(v, req, path, p);
	if (r < 0 || !url_has_userinfo(p->url))
		return r;
	if (json_object_get(req, "url")) {
		spec_path_key(rpath, sizeof(rpath), path, "request");
		return spec_fail_at(v, req, rpath, "url", USERINFO_LOAD,
		                    probe_type_to_string(p->type));
	}
	return fail_line(v, 0, "target.url", USERINFO_LOAD, probe_type_to_string(p->type));
}

/* Rules every type shares: nothing may outlast the run. */
static int finish_common(struct spec_vctx *v, json_t *obj, const char *path, struct spec_probe *p)
{
	char t[32];

	rd_format_duration(v->spec->timeout_ms, t, sizeof(t));
	if (p->timeout_ms > v->spec->timeout_ms)
		return spec_fail_at(v, obj, path, "timeout",
		                    "is longer than the run's timeout (%s)", t);
	if (p->within_ms > v->spec->timeout_ms)
		return spec_fail_at(v, obj, path, "within", "is longer than the run's timeout (%s)",
		                    t);
	return 0;
}

/* --- probes, gates, checklist --- */

static int unknown_type(struct spec_vctx *v, const json_t *t, const char *path)
{
	struct rd_suggest sg = {.word = json_is_string(t) ? json_string_value(t) : ""};
	char hint[200];

	if (!json_is_string(t))
		return fail(v, t, path, "must be a string");
	for (size_t i = 0; i < probe_type_count(); i++)
		rd_suggest_try(&sg, probe_type_get((enum probe_type)i)->name);
	rd_suggest_text(&sg, hint, sizeof(hint));
	if (!sg.best) {
		char list[180];
		size_t used = 0;

		list[0] = '\0';
		for (size_t i = 0; i < probe_type_count() && used < sizeof(list); i++)
			used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s",
			                         i ? ", " : "",
			                         probe_type_get((enum probe_type)i)->name);
		snprintf(hint, sizeof(hint), " (one of: %s)", list);
	}
	return fail(v, t, path, "unknown probe type '%.32s'%s", sg.word, hint);
}

/* A type's schema, as the validator reads it. */
static void probe_schema(const struct probe_type_def *def, struct spec_schema *sc, char *what,
                         size_t len)
{
	snprintf(what, len, "'%s'", def->name);
	sc->what = what;
	sc->fields = def->fields;
	sc->n = def->n_fields;
	sc->probe = true;
}

static int parse_probe(struct spec_vctx *v, json_t *obj, const char *path, struct spec_probe *p)
{
	char tpath[sizeof(v->err->path)], what[SPEC_MAX_NAME + 3];
	const struct probe_type_def *def;
	struct spec_schema sc;
	json_t *t;
	int r;

	if (!json_is_object(obj))
		return fail(v, obj, path, "must be a mapping (a probe)");
	spec_path_key(tpath, sizeof(tpath), path, "type");
	t = json_object_get(obj, "type");
	if (!t || json_is_null(t))
		return fail(v, obj, tpath, "missing (every probe needs a type)");
	if (!json_is_string(t) || probe_type_from_string(json_string_value(t), &p->type) < 0)
		return unknown_type(v, t, tpath);
	def = probe_type_get(p->type);
	probe_schema(def, &sc, what, sizeof(what));
	r = parse_object(v, obj, path, &sc, p);
	if (r == 0)
		r = finish_common(v, obj, path, p);
	if (r == 0 && def->finish)
		r = def->finish(v, obj, path, p);
	return r;
}

static int parse_probes(struct spec_vctx *v, json_t *val, const char *path, void *base)
{
	struct spec *s = base;
	size_t n = json_array_size(val);

	if (!json_is_array(val) || n > SPEC_MAX_PROBES)
		return fail(v, val, path, "must be a list of at most %d probes", SPEC_MAX_PROBES);
	s->probes = calloc(n ? n : 1, sizeof(*s->probes));
	if (!s->probes)
		return -ENOMEM;
	s->n_probes = n;
	for (size_t i = 0; i < n; i++) {
		json_t *it = json_array_get(val, i);
		char ipath[sizeof(v->err->path)];
		int r;

		spec_path_index(ipath, sizeof(ipath), path, i);
		r = parse_probe(v, it, ipath, &s->probes[i]);
		if (r < 0)
			return r;
		for (size_t j = 0; j < i; j++) {
			if (!strcmp(s->probes[i].name, s->probes[j].name))
				return spec_fail_at(v, it, ipath, "name",
				                    "duplicate probe name '%s' (also probes[%zu])",
				                    s->probes[j].name, j);
		}
	}
	return 0;
}

static int gate_probe(struct spec_vctx *v, json_t *it, const char *path, struct spec_gate *g)
{
	const struct spec_probe *p = spec_find_probe(v->spec, g->ex.probe);
	struct rd_suggest sg = {.word = g->ex.probe};
	char hint[96];

	if (!p) {
		for (size_t i = 0; i < v->spec->n_probes; i++)
			rd_suggest_try(&sg, v->spec->probes[i].name);
		rd_suggest_text(&sg, hint, sizeof(hint));
		return fail(v, it, path, "no probe named '%s'%s", g->ex.probe, hint);
	}
	if (g->abort_on_fail && p->type != PROBE_TYPE_LOAD)
		return spec_fail_at(v, it, path, "abort_on_fail",
		                    "only applies to gates on load probes");
	return 0;
}

static int parse_gate(struct spec_vctx *v, json_t *it, const char *path, struct spec_gate *g)
{
	char epath[sizeof(v->err->path)];
	char why[200];
	int r;

	snprintf(epath, sizeof(epath), "%s", path);
	if (json_is_string(it)) {
		g->expr = strdup(json_string_value(it));
		if (!g->expr)
			return -ENOMEM;
	} else if (json_is_object(it)) {
		r = parse_object(v, it, path, &gate_schema, g);
		if (r < 0)
			return r;
		spec_path_key(epath, sizeof(epath), path, "expr");
	} else {
		return fail(
		        v, it, path,
		        "must be an expression (\"latency.p95_ms < 100\") or a mapping with expr");
	}
	if (strlen(g->expr) > 1024)
		return fail(v, it, epath, "must be at most 1024 bytes");
	if (gate_parse(g->expr, true, &g->ex, why, sizeof(why)) < 0)
		return fail(v, it, epath, "not a gate expression: %s", why);
	return gate_probe(v, it, path, g);
}

static int parse_gates(struct spec_vctx *v, json_t *val, const char *path, void *base)
{
	struct spec *s = base;
	size_t n = json_array_size(val);

	if (!json_is_array(val) || n > SPEC_MAX_GATES)
		return fail(v, val, path, "must be a list of at most %d gates", SPEC_MAX_GATES);
	s->gates = calloc(n ? n : 1, sizeof(*s->gates));
	if (!s->gates)
		return -ENOMEM;
	s->n_gates = n;
	for (size_t i = 0; i < n; i++) {
		char ipath[sizeof(v->err->path)];
		int r;

		spec_path_index(ipath, sizeof(ipath), path, i);
		r = parse_gate(v, json_array_get(val, i), ipath, &s->gates[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_item(struct spec_vctx *v, const char *name, json_t *it, const char *path,
                      struct spec_check_item *ci)
{
	char msg[128];
	int r;

	if (check_item_name(name, msg, sizeof(msg)) < 0)
		return fail(v, it, path, "item names %s", msg);
	ci->item = strdup(name);
	if (!ci->item)
		return -ENOMEM;
	r = parse_object(v, it, path, &item_schema, ci);
	if (r < 0)
		return r;
	if (ci->max_age_ms && !ci->tested_ms)
		return spec_fail_at(v, it, path, "max_age",
		                    "needs 'tested' (the date the evidence is from)");
	return 0;
}

static int check_required(struct spec_vctx *v, const char *path, const struct spec_checklist *cl)
{
	for (size_t i = 0; i < cl->n_required; i++) {
		struct rd_suggest sg = {.word = cl->required[i]};
		char ipath[sizeof(v->err->path)], hint[96];
		bool found = false;

		for (size_t j = 0; j < cl->n_items && !found; j++) {
			found = !strcmp(cl->items[j].item, cl->required[i]);
			rd_suggest_try(&sg, cl->items[j].item);
		}
		if (found)
			continue;
		rd_suggest_text(&sg, hint, sizeof(hint));
		spec_path_index(ipath, sizeof(ipath), path, i);
		return fail(v, NULL, ipath, "no checklist item named '%.64s'%s", cl->required[i],
		            hint);
	}
	return 0;
}

static int parse_checklist(struct spec_vctx *v, json_t *val, const char *path, void *base)
{
	struct spec_checklist *cl = &((struct spec *)base)->checklist;
	char ipath[sizeof(v->err->path)];
	json_t *req, *it;
	const char *name;
	size_t n, i = 0;
	int r;

	if (!json_is_object(val))
		return fail(v, val, path, "must be a mapping of items (and 'required')");
	req = json_object_get(val, "required");
	n = json_object_size(val) - (req ? 1 : 0);
	if (n > SPEC_MAX_LIST)
		return fail(v, val, path, "at most %d items", SPEC_MAX_LIST);
	cl->items = calloc(n ? n : 1, sizeof(*cl->items));
	if (!cl->items)
		return -ENOMEM;
	cl->n_items = n;
	json_object_foreach (val, name, it) {
		if (!strcmp(name, "required"))
			continue;
		spec_path_key(ipath, sizeof(ipath), path, name);
		r = parse_item(v, name, it, ipath, &cl->items[i++]);
		if (r < 0)
			return r;
	}
	if (!req || json_is_null(req))
		return 0;
	spec_path_key(ipath, sizeof(ipath), path, "required");
	r = read_strv(v, req, ipath, SPEC_MAX_LIST, &cl->required, &cl->n_required);
	return r < 0 ? r : check_required(v, ipath, cl);
}

/* --- the whole document --- */

static int validate(json_t *doc, const struct spec_srcmap *map, struct spec_error *err,
                    struct spec **ret)
{
	struct spec *s = calloc(1, sizeof(*s));
	struct spec_vctx v = {.err = err, .map = map, .spec = s, .obj_line = 0};
	int r;

	if (!s)
		return -ENOMEM;
	if (!json_is_object(doc))
		r = fail(&v, doc, "",
		         "a spec must be a mapping (apiVersion, service, version, ...)");
	else
		r = parse_object(&v, doc, "", &top_schema, s);
	if (r == 0 && s->n_probes == 0 && s->checklist.n_items == 0)
		r = fail(&v, doc, "", "nothing to check: give probes or checklist items");
	if (r < 0) {
		spec_free(s);
		return r;
	}
	s->has_target = has_target(s);
	s->doc = json_incref(doc);
	*ret = s;
	return 0;
}

static int doc_error(struct spec_error *err, int line, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int doc_error(struct spec_error *err, int line, const char *fmt, ...)
{
	va_list ap;

	err->path[0] = '\0';
	err->syntax = true;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	err->line = line;
	return -EINVAL;
}

static int line_at(const char *buf, size_t off)
{
	int line = 1;

	for (size_t i = 0; i < off; i++)
		line += buf[i] == '\n';
	return line;
}

/* Byte-level checks both formats share, so their errors read the same. */
static int check_bytes(const char *buf, size_t len, struct spec_error *err)
{
	const char *nul = memchr(buf, '\0', len);
	size_t bad;

	if (nul)
		return doc_error(err, line_at(buf, (size_t)(nul - buf)),
		                 "the spec contains a NUL byte");
	if (!spec_utf8_valid(buf, len, &bad))
		return doc_error(err, line_at(buf, bad), "the spec is not valid UTF-8");
	return 0;
}

/* jansson nests up to 2048 levels; the spec allows SPEC_MAX_DEPTH, and
 * checking before parsing keeps a depth bomb from costing anything. */
static int json_check_depth(const char *buf, size_t len, struct spec_error *err)
{
	bool in_str = false, esc = false;
	int depth = 0;

	for (size_t i = 0; i < len; i++) {
		char c = buf[i];

		if (in_str) {
			if (esc)
				esc = false;
			else if (c == '\\')
				esc = true;
			else if (c == '"')
				in_str = false;
		} else if (c == '"') {
			in_str = true;
		} else if (c == '[' || c == '{') {
			if (++depth > SPEC_MAX_DEPTH)
				return doc_error(err, line_at(buf, i),
				                 "nesting deeper than %d levels", SPEC_MAX_DEPTH);
		} else if (c == ']' || c == '}') {
			depth--;
		}
	}
	return 0;
}

static int parse_json(const char *buf, size_t len, json_t **ret, struct spec_error *err)
{
	json_error_t jerr;
	json_t *doc;
	int r;

	/* A UTF-8 byte order mark is harmless; jansson does not skip it. */
	if (len >= 3 && !memcmp(buf, "\xef\xbb\xbf", 3)) {
		buf += 3;
		len -= 3;
	}
	r = json_check_depth(buf, len, err);
	if (r < 0)
		return r;
	doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		if (json_error_code(&jerr) == json_error_out_of_memory)
			return -ENOMEM;
		return doc_error(err, jerr.line > 0 ? jerr.line : 0, "JSON syntax error: %s",
		                 jerr.text);
	}
	*ret = doc;
	return 0;
}

/* A top-level key the caller fixes: set when absent; when present it must
 * already be want (must_match) or is replaced. */
static int fill_key(json_t *doc, const struct spec_srcmap *map, const char *key, const char *want,
                    bool must_match, const char *where, struct spec_error *err)
{
	json_t *have = json_object_get(doc, key);

	if (!want)
		return 0;
	if (have && must_match && json_is_string(have) && strcmp(json_string_value(have), want)) {
		snprintf(err->path, sizeof(err->path), "%s", key);
		snprintf(err->message, sizeof(err->message),
		         "must be '%.128s', the %s in the request path (or leave it out)", want,
		         where);
		err->line = spec_srcmap_key_line(map, doc, key);
		err->syntax = false;
		return -EINVAL;
	}
	if (have && must_match)
		return 0; /* the right value, or a wrong type validation names */
	return json_object_set_new(doc, key, json_string(want)) < 0 ? -ENOMEM : 0;
}

/* target.url replaced by url (a target {url} made when there is none). */
static int fill_target(json_t *doc, const char *url)
{
	json_t *t = json_object_get(doc, "target");

	if (!url)
		return 0;
	if (!t) {
		t = json_object();
		if (!t || json_object_set_new(doc, "target", t) < 0)
			return -ENOMEM;
	}
	if (!json_is_object(t))
		return 0; /* validation says what target must be */
	return json_object_set_new(t, "url", json_string(url)) < 0 ? -ENOMEM : 0;
}

static int apply_fill(json_t *doc, const struct spec_srcmap *map, const struct spec_fill *fill,
                      struct spec_error *err)
{
	int r;

	if (!fill || !json_is_object(doc))
		return 0;
	r = fill_key(doc, map, "service", fill->service, true, "service", err);
	if (r == 0)
		r = fill_key(doc, map, "environment", fill->environment, true, "environment", err);
	if (r == 0)
		r = fill_key(doc, map, "version", fill->version, false, "version", err);
	if (r == 0)
		r = fill_target(doc, fill->target_url);
	return r;
}

int spec_parse(const char *buf, size_t len, enum spec_format fmt, struct spec **ret_spec,
               struct spec_error *err)
{
	return spec_parse_fill(buf, len, fmt, NULL, ret_spec, err);
}

int spec_parse_fill(const char *buf, size_t len, enum spec_format fmt, const struct spec_fill *fill,
                    struct spec **ret_spec, struct spec_error *err)
{
	struct spec_error scratch;
	struct spec_srcmap *map = NULL;
	json_t *doc = NULL;
	int r;

	if (!err)
		err = &scratch;
	memset(err, 0, sizeof(*err));
	if (len > SPEC_MAX_BYTES) {
		doc_error(err, 0, "the spec is larger than %d bytes", SPEC_MAX_BYTES);
		return -E2BIG;
	}
	if (!buf || len == 0)
		return doc_error(err, 0, "the spec is empty");
	r = check_bytes(buf, len, err);
	if (r < 0)
		return r;
	if (fmt == SPEC_FORMAT_JSON)
		r = parse_json(buf, len, &doc, err);
	else if (fmt == SPEC_FORMAT_YAML)
		r = spec_yaml_parse(buf, len, &doc, &map, err);
	else
		r = doc_error(err, 0, "unknown spec format");
	if (r == 0)
		r = apply_fill(doc, map, fill, err);
	if (r == 0)
		r = validate(doc, map, err, ret_spec);
	json_decref(doc);
	spec_srcmap_free(map);
	return r;
}

/* --- walking a probe's fields by what they name --- */

struct walk {
	unsigned flags;
	spec_walk_cb cb;
	void *userdata;
};

static int walk_fields(const struct walk *w, const struct spec_field *fs, size_t n,
                       const void *base, const char *prefix);

static int walk_field(const struct walk *w, const struct spec_field *f, const void *base,
                      const char *prefix)
{
	char path[128];
	int r = 0;

	snprintf(path, sizeof(path), "%s%s", prefix, f->key);
	if (f->kind == FK_REQUEST) {
		const void *sub = *AT(base, f->off, const void *);

		snprintf(path, sizeof(path), "%s%s.", prefix, f->key);
		return sub ? walk_fields(w, f->sub->fields, f->sub->n, sub, path) : 0;
	}
	if (f->kind == FK_OBJECT && f->off == 0) { /* the parent's own fields */
		if (f->flags & SPEC_FIELD_NESTED) {
			snprintf(path, sizeof(path), "%s%s.", prefix, f->key);
			return walk_fields(w, f->sub->fields, f->sub->n, base, path);
		}
		return walk_fields(w, f->sub->fields, f->sub->n, base, prefix);
	}
	if (f->kind == FK_OBJECT) { /* a nested mapping: "corpus.file" */
		snprintf(path, sizeof(path), "%s%s.", prefix, f->key);
		return walk_fields(w, f->sub->fields, f->sub->n, AT(base, f->off, const char),
		                   path);
	}
	if (!(f->flags & w->flags))
		return 0;
	if ((f->flags & SPEC_FIELD_WORD) && *AT(base, f->off, const char *) &&
	    !strstr(*AT(base, f->off, const char *), "://"))
		return 0; /* a word such as `local`, not a place */
	if (f->kind == FK_STRING && *AT(base, f->off, const char *))
		return w->cb(w->userdata, path, *AT(base, f->off, const char *));
	if (f->kind == FK_STRING_LIST) {
		char *const *sv = *AT(base, f->off, char *const *);

		for (size_t j = 0; r == 0 && sv && j < *AT(base, f->count_off, size_t); j++) {
			snprintf(path, sizeof(path), "%s%s[%zu]", prefix, f->key, j);
			r = w->cb(w->userdata, path, sv[j]);
		}
	}
	return r;
}

static int walk_fields(const struct walk *w, const struct spec_field *fs, size_t n,
                       const void *base, const char *prefix)
{
	int r = 0;

	for (size_t i = 0; r == 0 && i < n; i++)
		r = walk_field(w, &fs[i], base, prefix);
	return r;
}

int spec_probe_walk(const struct spec_probe *sp, unsigned flags, spec_walk_cb cb, void *userdata)
{
	const struct probe_type_def *t = probe_type_get(sp->type);
	struct walk w = {flags, cb, userdata};

	return t ? walk_fields(&w, t->fields, t->n_fields, sp, "") : 0;
}

/* --- lookup, free --- */

const struct spec_probe *spec_find_probe(const struct spec *s, const char *name)
{
	for (size_t i = 0; s && name && i < s->n_probes; i++) {
		if (s->probes[i].name && !strcmp(s->probes[i].name, name))
			return &s->probes[i];
	}
	return NULL;
}

static void free_headers(struct spec_header *h, size_t n)
{
	for (size_t i = 0; h && i < n; i++) {
		free(h[i].name);
		free(h[i].value);
	}
	free(h);
}

static void free_labels(struct spec_label *l, size_t n)
{
	for (size_t i = 0; l && i < n; i++) {
		free(l[i].name);
		free(l[i].value);
	}
	free(l);
}

static void free_strv(char **sv, size_t n)
{
	for (size_t i = 0; sv && i < n; i++)
		free(sv[i]);
	free(sv);
}

static void request_deinit(struct spec_request *r)
{
	free(r->method);
	free(r->url);
	free_headers(r->headers, r->n_headers);
	free(r->body);
}

static void request_free(struct spec_request *r)
{
	if (!r)
		return;
	request_deinit(r);
	free(r);
}

static void probe_deinit(struct spec_probe *p)
{
	char *strings[] = {p->name,
	                   p->slo,
	                   p->url,
	                   p->method,
	                   p->body,
	                   p->expect_body_contains,
	                   p->expect_body_regex,
	                   p->ca_file,
	                   p->min_version,
	                   p->servername,
	                   p->prometheus,
	                   p->query,
	                   p->function,
	                   p->alert,
	                   p->version_url,
	                   p->expect_version,
	                   p->pid_file,
	                   p->cgroup,
	                   p->reconcile_with,
	                   p->latency_unit,
	                   p->server_metric,
	                   p->server_selector,
	                   p->query_type,
	                   p->file,
	                   p->format,
	                   p->corpus.file,
	                   p->token_key,
	                   p->alertmanager,
	                   p->receiver,
	                   p->traffic.path,
	                   p->baseline,
	                   p->candidate,
	                   p->source,
	                   p->instance};

	for (size_t i = 0; i < RD_ARRAY_SIZE(strings); i++)
		free(strings[i]);
	free_headers(p->headers, p->n_headers);
	free_labels(p->labels, p->n_labels);
	free_labels(p->variables, p->n_variables);
	json_decref(p->expect_json);
	json_decref(p->dashboard);
	json_decref(p->corpus.items);
	free_strv(p->require, p->n_require);
	free_strv(p->rule_files, p->n_rule_files);
	free_strv(p->matchers, p->n_matchers);
	free_strv(p->severities, p->n_severities);
	free_strv(p->mounts, p->n_mounts);
	request_free(p->trigger);
	request_free(p->clear);
	request_free(p->restore);
	free(p->expect_statuses);
}

void spec_free(struct spec *s)
{
	if (!s)
		return;
	free(s->service);
	free(s->version);
	free(s->environment);
	request_deinit(&s->target);
	for (size_t i = 0; s->probes && i < s->n_probes; i++)
		probe_deinit(&s->probes[i]);
	free(s->probes);
	for (size_t i = 0; s->gates && i < s->n_gates; i++)
		free(s->gates[i].expr);
	free(s->gates);
	for (size_t i = 0; s->checklist.items && i < s->checklist.n_items; i++) {
		free(s->checklist.items[i].item);
		free(s->checklist.items[i].evidence);
	}
	free(s->checklist.items);
	free_strv(s->checklist.required, s->checklist.n_required);
	json_decref(s->doc);
	free(s);
}

/* --- redaction --- */

bool spec_header_is_secret(const char *name)
{
	static const char *const exact[] = {"authorization", "proxy-authorization", "cookie",
	                                    "set-cookie"};
	static const char *const parts[] = {"token", "key", "secret", "password", "auth"};

	if (!name)
		return false;
	for (size_t i = 0; i < RD_ARRAY_SIZE(exact); i++) {
		if (!strcasecmp(name, exact[i]))
			return true;
	}
	for (size_t i = 0; i < RD_ARRAY_SIZE(parts); i++) {
		if (strcasestr(name, parts[i]))
			return true;
	}
	return false;
}

static int redact_headers(json_t *obj, const char *key)
{
	json_t *h = json_object_get(obj, key), *val;
	const char *name;

	if (!json_is_object(h))
		return 0;
	json_object_foreach (h, name, val) {
		if (spec_header_is_secret(name) &&
		    json_object_set_new(h, name, json_string(REDACTED)) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* Each request of a list: its header map. */
static int redact_requests(json_t *list)
{
	size_t i;
	json_t *it;
	int r = 0;

	json_array_foreach (list, i, it) {
		r = redact_headers(it, "headers");
		if (r < 0)
			break;
	}
	return r;
}

/* A URL field through the one redaction rule (util.h): user-info and
 * credential-like query values. */
static int redact_url(json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));
	char *out;
	int r;

	if (!s)
		return 0;
	out = rd_url_redact_dup(s);
	if (!out)
		return -ENOMEM;
	r = strcmp(out, s) == 0 ? 0 : json_object_set_new(obj, key, json_string(out));
	free(out);
	return r < 0 ? -ENOMEM : 0;
}

/* Redacts a mapping read with these fields: every field marked as a URL,
 * every header map, and the mappings nested in it, as the schema (the
 * probe type's table for a probe) says. */
static int redact_fields(json_t *obj, const struct spec_field *fs, size_t n)
{
	int r = 0;

	if (!json_is_object(obj))
		return 0;
	for (size_t i = 0; r == 0 && i < n; i++) {
		const struct spec_field *f = &fs[i];

		if (f->flags & SPEC_FIELD_URL)
			r = redact_url(obj, f->key);
		else if (f->kind == FK_HEADERS)
			r = redact_headers(obj, f->key);
		else if (f->flags & SPEC_FIELD_REQUESTS)
			r = redact_requests(json_object_get(obj, f->key));
		else if (f->kind == FK_REQUEST || f->kind == FK_OBJECT)
			r = redact_fields(json_object_get(obj, f->key), f->sub->fields, f->sub->n);
	}
	return r;
}

static int redact_probe(json_t *p, const struct spec_probe *sp)
{
	const struct probe_type_def *t = probe_type_get(sp->type);

	return t ? redact_fields(p, t->fields, t->n_fields) : 0;
}

/* Checklist evidence is free text that often links somewhere. */
static int redact_checklist(json_t *cl)
{
	const char *name;
	json_t *it;

	if (!json_is_object(cl))
		return 0;
	json_object_foreach (cl, name, it) {
		if (json_is_object(it) && redact_url(it, "evidence") < 0)
			return -ENOMEM;
	}
	return 0;
}

json_t *spec_to_json_redacted(const struct spec *s)
{
	json_t *copy, *probes;
	int r;

	if (!s || !s->doc)
		return NULL;
	copy = json_deep_copy(s->doc);
	if (!copy)
		return NULL;
	r = redact_fields(json_object_get(copy, "target"), spec_request_schema.fields,
	                  spec_request_schema.n);
	probes = json_object_get(copy, "probes");
	for (size_t i = 0; r == 0 && i < json_array_size(probes) && i < s->n_probes; i++)
		r = redact_probe(json_array_get(probes, i), &s->probes[i]);
	if (r == 0)
		r = redact_checklist(json_object_get(copy, "checklist"));
	if (r < 0) {
		json_decref(copy);
		return NULL;
	}
	return copy;
}
