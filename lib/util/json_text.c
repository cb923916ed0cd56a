/* json_text: JSON text with shortest round-trip reals (see json_text.h).
 * jansson prints every real with one precision per dump (%.17g by
 * default), which shows 0.096 as 0.096000000000000002; this writer walks
 * the tree itself, lets jansson encode strings, and prints each real in
 * the fewest digits that read back as the same double. */
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

int rd_fmt_double(double v, char *buf, size_t len)
{
	char tmp[RD_DOUBLE_LEN];

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

struct out {
	char *buf;
	size_t len, cap;
	int failed;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->failed)
		return;
	if (o->len + n + 1 > o->cap) {
		size_t cap = o->cap ? o->cap : 256;
		char *b;

		while (cap < o->len + n + 1)
			cap *= 2;
		b = realloc(o->buf, cap);
		if (!b) {
			o->failed = -ENOMEM;
			return;
		}
		o->buf = b;
		o->cap = cap;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

/* A scalar other than a real, exactly as jansson writes it. */
static void put_scalar(struct out *o, const json_t *v, size_t flags)
{
	char *s = json_dumps(v, (flags & JSON_ENSURE_ASCII) | JSON_ENCODE_ANY);

	if (!s) {
		o->failed = -ENOMEM;
		return;
	}
	puts_(o, s);
	free(s);
}

static void put_real(struct out *o, double v)
{
	char buf[RD_DOUBLE_LEN];

	if (!isfinite(v)) {
		o->failed = -EINVAL; /* jansson refuses these too */
		return;
	}
	rd_fmt_double(v, buf, sizeof(buf));
	puts_(o, buf);
	if (!strpbrk(buf, ".e"))
		puts_(o, ".0");
}

static void newline(struct out *o, size_t flags, int depth)
{
	int n = (int)(flags & 0x1F) * depth;

	if (!(flags & 0x1F))
		return;
	puts_(o, "\n");
	for (int i = 0; i < n; i++)
		puts_(o, " ");
}

static void put_value(struct out *o, const json_t *v, size_t flags, int depth);

static int cmp_keys(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void put_object(struct out *o, const json_t *v, size_t flags, int depth)
{
	size_t n = json_object_size(v), i = 0;
	const char **keys = n ? calloc(n, sizeof(*keys)) : NULL;
	const char *key;
	json_t *val;

	if (n && !keys) {
		o->failed = -ENOMEM;
		return;
	}
	json_object_foreach ((json_t *)v, key, val)
		keys[i++] = key;
	if ((flags & JSON_SORT_KEYS) && n > 1)
		qsort(keys, n, sizeof(*keys), cmp_keys);
	puts_(o, "{");
	for (i = 0; i < n; i++) {
		json_t *k = json_string(keys[i]);

		if (i)
			puts_(o, (flags & JSON_COMPACT) || (flags & 0x1F) ? "," : ", ");
		newline(o, flags, depth + 1);
		if (!k) {
			o->failed = -ENOMEM;
			break;
		}
		put_scalar(o, k, flags);
		json_decref(k);
		puts_(o, (flags & JSON_COMPACT) ? ":" : ": ");
		put_value(o, json_object_get(v, keys[i]), flags, depth + 1);
	}
	if (n)
		newline(o, flags, depth);
	puts_(o, "}");
	free(keys);
}

static void put_array(struct out *o, const json_t *v, size_t flags, int depth)
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

static void put_value(struct out *o, const json_t *v, size_t flags, int depth)
{
	if (json_is_object(v))
		put_object(o, v, flags, depth);
	else if (json_is_array(v))
		put_array(o, v, flags, depth);
	else if (json_is_real(v))
		put_real(o, json_real_value(v));
	else
		put_scalar(o, v, flags);
}

char *rd_json_dumps(const json_t *v, size_t flags)
{
	struct out o = {0};

	if (!v || (!(flags & JSON_ENCODE_ANY) && !json_is_object(v) && !json_is_array(v)))
		return NULL;
	put_value(&o, v, flags, 0);
	if (o.failed) {
		free(o.buf);
		return NULL;
	}
	return o.buf;
}
