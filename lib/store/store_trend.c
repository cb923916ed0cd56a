/* store_trend: a trend's points as C values (struct store_trend_points),
 * shared by every backend that reads them so: the strings they point
 * into, and the two forms of the answer, a JSON tree (store_trend) and
 * JSON text written straight into a buffer (store_trend_text, what GET
 * /v1/services/{name}/trends sends). Both write the same members in the
 * same order, so the text is byte for byte rd_json_dumps of the tree; a
 * unit test holds them to that.
 *
 * It must not query a database nor know HTTP.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/store/store.h"
#include "lib/store/store_backend.h"
#include "lib/util/json_text.h"
#include "lib/util/util.h"

const char *store_trend_str(const struct store_trend_points *p, size_t off)
{
	return off ? p->strings + off : NULL;
}

void store_trend_points_free(struct store_trend_points *p)
{
	free(p->v);
	free(p->strings);
	p->v = NULL;
	p->strings = NULL;
	p->n = p->cap = p->strings_len = p->strings_cap = 0;
}

/* A new zeroed point at the end of p; NULL on ENOMEM. */
struct store_trend_point *store_trend_point_add(struct store_trend_points *p)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 64;
		struct store_trend_point *v = realloc(p->v, cap * sizeof(*v));

		if (!v)
			return NULL;
		p->v = v;
		p->cap = cap;
	}
	memset(&p->v[p->n], 0, sizeof(p->v[0]));
	return &p->v[p->n++];
}

/* A copy of n bytes of s in p's strings: its offset, 0 for s NULL, or
 * -ENOMEM. */
int store_trend_str_add(struct store_trend_points *p, const char *s, size_t n, size_t *ret)
{
	if (!s) {
		*ret = 0;
		return 0;
	}
	if (p->strings_len + n + 2 > p->strings_cap) {
		size_t cap = p->strings_cap ? p->strings_cap : 1024;
		char *b;

		while (cap < p->strings_len + n + 2)
			cap *= 2;
		b = realloc(p->strings, cap);
		if (!b)
			return -ENOMEM;
		p->strings = b;
		p->strings_cap = cap;
		if (p->strings_len == 0)
			p->strings[p->strings_len++] = '\0'; /* offset 0 means null */
	}
	*ret = p->strings_len;
	memcpy(p->strings + p->strings_len, s, n);
	p->strings[p->strings_len + n] = '\0';
	p->strings_len += n + 1;
	return 0;
}

/* Oldest first, for a backend that read newest first. */
void store_trend_points_reverse(struct store_trend_points *p)
{
	for (size_t i = 0; i < p->n / 2; i++) {
		struct store_trend_point t = p->v[i];

		p->v[i] = p->v[p->n - 1 - i];
		p->v[p->n - 1 - i] = t;
	}
}

/* ---- The tree -------------------------------------------------------- */

static json_t *real_or_null(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

static json_t *str_or_null(const struct store_trend_points *p, size_t off)
{
	return off ? json_string(p->strings + off) : json_null();
}

static json_t *time_json(int64_t ms)
{
	char buf[RD_TIME_LEN];

	rd_time_format(ms, buf);
	return json_string(buf);
}

/* json_pack's "o" steals even on failure, so NULL members fail the pack. */
static json_t *point_json(const struct store_trend_points *p, const struct store_trend_point *pt)
{
	if (p->buckets)
		return json_pack("{s:o, s:I, s:o, s:o, s:o, s:o, s:I, s:o}", "t",
		                 time_json(pt->time_ms), "runs", (json_int_t)pt->runs, "min",
		                 real_or_null(pt->min), "max", real_or_null(pt->max), "avg",
		                 real_or_null(pt->avg), "last", real_or_null(pt->value),
		                 "last_run_id", (json_int_t)pt->run_id, "last_version",
		                 str_or_null(p, pt->version));
	return json_pack("{s:I, s:o, s:o, s:o, s:o, s:o}", "run_id", (json_int_t)pt->run_id, "time",
	                 time_json(pt->time_ms), "version", str_or_null(p, pt->version), "value",
	                 real_or_null(pt->value), "verdict", str_or_null(p, pt->verdict),
	                 "environment", str_or_null(p, pt->environment));
}

json_t *store_trend_points_json(const struct store_trend_points *p)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < p->n; i++) {
		if (json_array_append_new(arr, point_json(p, &p->v[i])) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

/* ---- The text -------------------------------------------------------- */

static void text_real(struct rd_jtext *t, const char *key, double v)
{
	rd_jtext_lit(t, key);
	if (isfinite(v))
		rd_jtext_real(t, v);
	else
		rd_jtext_raw(t, "null", 4);
}

static void text_time(struct rd_jtext *t, const char *key, int64_t ms)
{
	char buf[RD_TIME_LEN];

	rd_time_format(ms, buf);
	rd_jtext_lit(t, key);
	rd_jtext_str(t, buf);
}

static void text_point(struct rd_jtext *t, const struct store_trend_points *p,
                       const struct store_trend_point *pt)
{
	if (p->buckets) {
		text_time(t, "{\"t\":", pt->time_ms);
		rd_jtext_lit(t, ",\"runs\":");
		rd_jtext_int(t, pt->runs);
		text_real(t, ",\"min\":", pt->min);
		text_real(t, ",\"max\":", pt->max);
		text_real(t, ",\"avg\":", pt->avg);
		text_real(t, ",\"last\":", pt->value);
		rd_jtext_lit(t, ",\"last_run_id\":");
		rd_jtext_int(t, pt->run_id);
		rd_jtext_lit(t, ",\"last_version\":");
		rd_jtext_str(t, store_trend_str(p, pt->version));
	} else {
		rd_jtext_lit(t, "{\"run_id\":");
		rd_jtext_int(t, pt->run_id);
		text_time(t, ",\"time\":", pt->time_ms);
		rd_jtext_lit(t, ",\"version\":");
		rd_jtext_str(t, store_trend_str(p, pt->version));
		text_real(t, ",\"value\":", pt->value);
		rd_jtext_lit(t, ",\"verdict\":");
		rd_jtext_str(t, store_trend_str(p, pt->verdict));
		rd_jtext_lit(t, ",\"environment\":");
		rd_jtext_str(t, store_trend_str(p, pt->environment));
	}
	rd_jtext_raw(t, "}", 1);
}

void store_trend_points_text(const struct store_trend_points *p, struct rd_jtext *out)
{
	rd_jtext_raw(out, "[", 1);
	for (size_t i = 0; i < p->n && !out->err; i++) {
		if (i)
			rd_jtext_raw(out, ",", 1);
		text_point(out, p, &p->v[i]);
	}
	rd_jtext_raw(out, "]", 1);
}
