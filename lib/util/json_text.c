/* json_text: JSON text with shortest round-trip reals (see json_text.h).
 * jansson prints every real with one precision per dump (%.17g by
 * default), which shows 0.096 as 0.096000000000000002; this writer walks
 * the tree itself and prints each real in the fewest digits that read
 * back as the same double. Strings are escaped here exactly as jansson
 * escapes them, so text written piecewise with rd_jtext_* and text dumped
 * from a tree are the same bytes. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util/json_text.h"

/* Drops '+' and leading zeros from an exponent, in place. */
static void tidy_exponent(char *s)
{
	char *e = strchr(s, 'e'), *d;

	if (!e)
		return;
	d = e + 1;
	if (*d == '-')
		d++;
	else if (*d == '+')
		memmove(d, d + 1, strlen(d + 1) + 1);
	while (d[0] == '0' && d[1] != '\0')
		memmove(d, d + 1, strlen(d + 1) + 1);
}

/* Decimal digits of u, right-aligned ending at end; returns the first. */
static char *utoa_back(uint64_t u, char *end)
{
	do {
		*--end = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	return end;
}

static const double pow10_tab[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};

/* The common case without printf: |v| from 1e-4 to below 1e15 that is
 * exactly n / 10^d (correctly rounded, as strtod reads it) for some n of
 * at most 15 digits. That decimal is then the nearest 15-digit one to v,
 * so it is what %.15g prints, in fixed notation, and it reads back as v:
 * the same text as the printf path. -1 when v is not such a number. */
static int fmt_double_fast(double v, char *buf, size_t len)
{
	double a = fabs(v);
	char tmp[RD_DOUBLE_LEN], *end = tmp + sizeof(tmp), *p;
	uint64_t n = 0, ip;
	int d;

	if (!(a >= 1e-4 && a < 1e15))
		return -1;
	for (d = 0; d < 16; d++) {
		double x = a * pow10_tab[d];

		if (x >= 1e15)
			return -1;
		n = (uint64_t)llround(x);
		if ((double)n / pow10_tab[d] == a)
			break;
	}
	if (d == 16)
		return -1;
	p = end;
	ip = n;
	if (d > 0) {
		for (int i = 0; i < d; i++, ip /= 10)
			*--p = (char)('0' + ip % 10);
		*--p = '.';
	}
	p = utoa_back(ip, p);
	if (v < 0)
		*--p = '-';
	if ((size_t)(end - p) >= len)
		return -1;
	memcpy(buf, p, (size_t)(end - p));
	buf[end - p] = '\0';
	return (int)(end - p);
}

int rd_fmt_double(double v, char *buf, size_t len)
{
	char tmp[RD_DOUBLE_LEN];
	int n;

	if (isfinite(v) && (n = fmt_double_fast(v, buf, len)) >= 0)
		return n;
	if (isnan(v))
		return snprintf(buf, len, "NaN");
	if (isinf(v))
		return snprintf(buf, len, "%sInf", v < 0 ? "-" : "+");
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
		if (strtod(tmp, NULL) == v || prec == 17)
			break;
	}
	tidy_exponent(tmp);
	return snprintf(buf, len, "%s", tmp);
}

static void grow(struct rd_jtext *t, size_t n)
{
	size_t cap = t->cap ? t->cap : 256;
	char *b;

	while (cap < t->len + n + 1)
		cap *= 2;
	b = realloc(t->buf, cap);
	if (!b) {
		t->err = -ENOMEM;
		return;
	}
	t->buf = b;
	t->cap = cap;
}

void rd_jtext_raw(struct rd_jtext *t, const char *s, size_t n)
{
	if (t->err)
		return;
	if (t->len + n + 1 > t->cap) {
		grow(t, n);
		if (t->err)
			return;
	}
	memcpy(t->buf + t->len, s, n);
	t->len += n;
	t->buf[t->len] = '\0';
}

void rd_jtext_lit(struct rd_jtext *t, const char *s)
{
	if (s)
		rd_jtext_raw(t, s, strlen(s));
}

/* The length of the UTF-8 sequence at s (n bytes left) and its code
 * point, by jansson's rules (no overlong forms, no surrogates, nothing
 * past U+10FFFF); 0 when it is not one. */
static size_t utf8_next(const unsigned char *s, size_t n, unsigned *ret)
{
	unsigned c = s[0], u;
	size_t len = c < 0x80 ? 1 : c < 0xC2 ? 0 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF5 ? 4 : 0;

	if (len == 0 || len > n)
		return 0;
	if (len == 1) {
		*ret = c;
		return 1;
	}
	u = c & (0x3F >> (len - 1));
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		u = (u << 6) | (s[i] & 0x3F);
	}
	if ((len == 3 && (u < 0x800 || (u >= 0xD800 && u <= 0xDFFF))) ||
	    (len == 4 && (u < 0x10000 || u > 0x10FFFF)))
		return 0;
	*ret = u;
	return len;
}

/* The escape of code point u, as jansson writes it. */
static void put_escape(struct rd_jtext *t, unsigned u)
{
	static const char hex[] = "0123456789ABCDEF";
	char seq[13];
	size_t n = 0;

	switch (u) {
	case '\\':
		rd_jtext_raw(t, "\\\\", 2);
		return;
	case '"':
		rd_jtext_raw(t, "\\\"", 2);
		return;
	case '\b':
		rd_jtext_raw(t, "\\b", 2);
		return;
	case '\f':
		rd_jtext_raw(t, "\\f", 2);
		return;
	case '\n':
		rd_jtext_raw(t, "\\n", 2);
		return;
	case '\r':
		rd_jtext_raw(t, "\\r", 2);
		return;
	case '\t':
		rd_jtext_raw(t, "\\t", 2);
		return;
	case '/':
		rd_jtext_raw(t, "\\/", 2);
		return;
	default:
		break;
	}
	if (u >= 0x10000) { /* a UTF-16 surrogate pair */
		u -= 0x10000;
		put_escape(t, 0xD800 | (u >> 10));
		put_escape(t, 0xDC00 | (u & 0x3FF));
		return;
	}
	seq[n++] = '\\';
	seq[n++] = 'u';
	for (int shift = 12; shift >= 0; shift -= 4)
		seq[n++] = hex[(u >> shift) & 0xF];
	rd_jtext_raw(t, seq, n);
}

void rd_jtext_strn(struct rd_jtext *t, const char *s, size_t n, size_t flags)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n, *run = p;

	rd_jtext_raw(t, "\"", 1);
	while (p < end && !t->err) {
		unsigned u;
		size_t len = utf8_next(p, (size_t)(end - p), &u);

		if (len == 0) {
			t->err = -EINVAL;
			return;
		}
		if (u == '\\' || u == '"' || u < 0x20 ||
		    ((flags & JSON_ESCAPE_SLASH) && u == '/') ||
		    ((flags & JSON_ENSURE_ASCII) && u > 0x7F)) {
			rd_jtext_raw(t, (const char *)run, (size_t)(p - run));
			put_escape(t, u);
			run = p + len;
		}
		p += len;
	}
	rd_jtext_raw(t, (const char *)run, (size_t)(p - run));
	rd_jtext_raw(t, "\"", 1);
}

void rd_jtext_str(struct rd_jtext *t, const char *s)
{
	if (s)
		rd_jtext_strn(t, s, strlen(s), JSON_ENSURE_ASCII);
	else
		rd_jtext_raw(t, "null", 4);
}

void rd_jtext_int(struct rd_jtext *t, int64_t v)
{
	char tmp[24], *end = tmp + sizeof(tmp), *p;

	/* the magnitude as unsigned, so INT64_MIN too */
	p = utoa_back(v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, end);
	if (v < 0)
		*--p = '-';
	rd_jtext_raw(t, p, (size_t)(end - p));
}

void rd_jtext_real(struct rd_jtext *t, double v)
{
	char buf[RD_DOUBLE_LEN];
	int n;

	if (!isfinite(v)) {
		if (!t->err)
			t->err = -EINVAL; /* jansson refuses these too */
		return;
	}
	n = rd_fmt_double(v, buf, sizeof(buf));
	rd_jtext_raw(t, buf, (size_t)n);
	if (!memchr(buf, '.', (size_t)n) && !memchr(buf, 'e', (size_t)n))
		rd_jtext_raw(t, ".0", 2);
}

/* A scalar other than a real, exactly as jansson writes it. */
static void put_scalar(struct rd_jtext *o, const json_t *v, size_t flags)
{
	switch (json_typeof(v)) {
	case JSON_STRING:
		rd_jtext_strn(o, json_string_value(v), json_string_length(v), flags);
		break;
	case JSON_INTEGER:
		rd_jtext_int(o, json_integer_value(v));
		break;
	case JSON_TRUE:
		rd_jtext_raw(o, "true", 4);
		break;
	case JSON_FALSE:
		rd_jtext_raw(o, "false", 5);
		break;
	default:
		rd_jtext_raw(o, "null", 4);
		break;
	}
}

static void puts_(struct rd_jtext *o, const char *s)
{
	rd_jtext_lit(o, s);
}

static void newline(struct rd_jtext *o, size_t flags, int depth)
{
	int n = (int)(flags & 0x1F) * depth;

	if (!(flags & 0x1F))
		return;
	puts_(o, "\n");
	for (int i = 0; i < n; i++)
		puts_(o, " ");
}

static void put_value(struct rd_jtext *o, const json_t *v, size_t flags, int depth);

static int cmp_keys(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void put_object(struct rd_jtext *o, const json_t *v, size_t flags, int depth)
{
	size_t n = json_object_size(v), i = 0;
	const char **keys = n ? calloc(n, sizeof(*keys)) : NULL;
	const char *key;
	json_t *val;

	if (n && !keys) {
		o->err = -ENOMEM;
		return;
	}
	json_object_foreach ((json_t *)v, key, val)
		keys[i++] = key;
	if ((flags & JSON_SORT_KEYS) && n > 1)
		qsort(keys, n, sizeof(*keys), cmp_keys);
	puts_(o, "{");
	for (i = 0; i < n; i++) {
		if (i)
			puts_(o, (flags & JSON_COMPACT) || (flags & 0x1F) ? "," : ", ");
		newline(o, flags, depth + 1);
		rd_jtext_strn(o, keys[i], strlen(keys[i]), flags);
		puts_(o, (flags & JSON_COMPACT) ? ":" : ": ");
		put_value(o, json_object_get(v, keys[i]), flags, depth + 1);
	}
	if (n)
		newline(o, flags, depth);
	puts_(o, "}");
	free(keys);
}

static void put_array(struct rd_jtext *o, const json_t *v, size_t flags, int depth)
{
	size_t n = json_array_size(v);

	puts_(o, "[");
	for (size_t i = 0; i < n; i++) {
		if (i)
			puts_(o, (flags & JSON_COMPACT) || (flags & 0x1F) ? "," : ", ");
		newline(o, flags, depth + 1);
		put_value(o, json_array_get(v, i), flags, depth + 1);
	}
	if (n)
		newline(o, flags, depth);
	puts_(o, "]");
}

static void put_value(struct rd_jtext *o, const json_t *v, size_t flags, int depth)
{
	/* A key holding a NUL finds no value by its C string: such an
	 * object cannot be written. */
	if (!v)
		o->err = -EINVAL;
	else if (json_is_object(v))
		put_object(o, v, flags, depth);
	else if (json_is_array(v))
		put_array(o, v, flags, depth);
	else if (json_is_real(v))
		rd_jtext_real(o, json_real_value(v));
	else
		put_scalar(o, v, flags);
}

char *rd_json_dumps(const json_t *v, size_t flags)
{
	struct rd_jtext o = {0};

	if (!v || (!(flags & JSON_ENCODE_ANY) && !json_is_object(v) && !json_is_array(v)))
		return NULL;
	put_value(&o, v, flags, 0);
	if (!o.err && !o.buf)
		rd_jtext_raw(&o, "", 0); /* cannot happen: every value writes something */
	if (o.err) {
		free(o.buf);
		return NULL;
	}
	return o.buf;
}

void rd_jtext_json(struct rd_jtext *t, const json_t *v, size_t flags)
{
	if (!v) {
		if (!t->err)
			t->err = -EINVAL;
		return;
	}
	put_value(t, v, flags, 0);
}
