/* loadgen_merge: the results of several engines as one, for a load probe
 * fanned out over several readyd nodes (docs/scale-out.md "Load from
 * several nodes"). Each node's engine result travels as JSON (its
 * histograms serialized, its counters and its per-second timeline) and
 * the coordinating node merges them: histograms exactly (hist_merge, so
 * every percentile is the one of a histogram fed all samples), counters
 * summed, timelines added second by second (each second's percentiles
 * from the merge of its histograms, which engines keep with
 * keep_seconds).
 *
 * Pure: no I/O, no clocks, no logging; any thread, one result at a time.
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/loadgen/loadgen.h"
#include "lib/util/util.h"

/* The histograms of a result, by the name they travel under. */
static struct hist **hist_slot(struct loadgen_result *r, size_t i)
{
	struct hist **slots[] = {&r->latency, &r->latency_uncorrected, &r->failed, &r->ttfb,
	                         &r->ttft,    &r->ttft_uncorrected,    &r->itl};

	return slots[i];
}

static const char *const hist_names[] = {"latency", "latency_uncorrected", "failed", "ttfb",
                                         "ttft",    "ttft_uncorrected",    "itl"};
#define N_HISTS RD_ARRAY_SIZE(hist_names)

/* The counters, read and written by one table. */
#define U64(field)                                                                                 \
	{                                                                                          \
#field, offsetof(struct loadgen_result, field)                                     \
	}
static const struct {
	const char *name;
	size_t off;
} counters[] = {
        U64(requests),          U64(errors),    U64(warmup_requests), U64(unsent),
        U64(distinct_requests), U64(streamed),  U64(events),          U64(tokens),
        U64(decode_tokens),     U64(decode_ns),
};
#undef U64
#define COUNTER(r, i) (*(uint64_t *)((char *)(r) + counters[i].off))

static json_t *number_or_null(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

static double number_of(const json_t *v)
{
	return json_is_number(v) ? json_number_value(v) : NAN;
}

/* The seconds' histograms, when kept (their percentiles then merge
 * exactly), beside the timeline under a key of their own, which readers
 * that do not know it pass over: [base64 or null, ...]. */
static int timeline_hists_to_json(const struct loadgen_result *r, json_t *o)
{
	json_t *a;
	size_t i;

	for (i = 0; i < r->n_seconds && !r->timeline[i].hist; i++)
		;
	if (i == r->n_seconds)
		return 0;
	a = json_array();
	if (!a || json_object_set_new(o, "timeline_hists", a) < 0)
		return -ENOMEM;
	for (i = 0; i < r->n_seconds; i++) {
		const struct loadgen_second *s = &r->timeline[i];

		if (json_array_append_new(a, s->hist ? loadgen_base64(s->hist, s->hist_len)
		                                     : json_null()) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int timeline_to_json(const struct loadgen_result *r, json_t *o)
{
	json_t *tl = json_array();

	if (!tl || json_object_set_new(o, "timeline", tl) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < r->n_seconds; i++) {
		const struct loadgen_second *s = &r->timeline[i];

		if (json_array_append_new(tl, json_pack("[I, I, o, o]", (json_int_t)s->requests,
		                                        (json_int_t)s->errors,
		                                        number_or_null(s->p50_ms),
		                                        number_or_null(s->p99_ms))) < 0)
			return -ENOMEM;
	}
	return timeline_hists_to_json(r, o);
}

int loadgen_result_to_json(const struct loadgen_result *r, json_t **ret_json)
{
	json_t *o = json_object(), *by = json_array(), *h = json_object();
	int e = o && by && h ? 0 : -ENOMEM;

	if (e == 0 &&
	    (json_object_set(o, "errors_by", by) < 0 || json_object_set(o, "histograms", h) < 0))
		e = -ENOMEM;
	for (size_t i = 0; e == 0 && i < RD_ARRAY_SIZE(counters); i++)
		if (json_object_set_new(o, counters[i].name,
		                        json_integer((json_int_t)COUNTER(r, i))) < 0)
			e = -ENOMEM;
	for (int i = 0; e == 0 && i < _LOADGEN_ERR_MAX; i++)
		if (json_array_append_new(by, json_integer((json_int_t)r->errors_by[i])) < 0)
			e = -ENOMEM;
	for (size_t i = 0; e == 0 && i < N_HISTS; i++) {
		const struct hist *hh = *hist_slot((struct loadgen_result *)r, i);

		if (hh && json_object_set_new(h, hist_names[i], loadgen_hist_base64(hh)) < 0)
			e = -ENOMEM;
	}
	if (e == 0 && (json_object_set_new(o, "cancelled", json_boolean(r->cancelled)) < 0 ||
	               json_object_set_new(o, "clean", json_boolean(r->clean)) < 0 ||
	               json_object_set_new(o, "rate_kept", json_boolean(r->rate_kept)) < 0 ||
	               json_object_set_new(o, "ended_early", json_boolean(r->ended_early)) < 0 ||
	               json_object_set_new(o, "elapsed_s", json_real(r->elapsed_s)) < 0 ||
	               json_object_set_new(o, "schedule_lag_mean_ms",
	                                   number_or_null(r->schedule_lag_mean_ms)) < 0 ||
	               json_object_set_new(o, "schedule_lag_max_ms",
	                                   number_or_null(r->schedule_lag_max_ms)) < 0 ||
	               json_object_set_new(o, "connect_error", json_string(r->connect_error)) < 0))
		e = -ENOMEM;
	e = e ?: timeline_to_json(r, o);
	json_decref(by);
	json_decref(h);
	if (e < 0) {
		json_decref(o);
		return e;
	}
	*ret_json = o;
	return 0;
}

static int hists_from_json(const json_t *hs, struct loadgen_result *r)
{
	for (size_t i = 0; i < N_HISTS; i++) {
		const char *b64 = json_string_value(json_object_get(hs, hist_names[i]));
		uint8_t *buf = NULL;
		size_t len = 0;
		int e;

		if (!b64)
			continue;
		e = loadgen_base64_decode(b64, &buf, &len);
		if (e == 0)
			e = hist_deserialize(buf, len, hist_slot(r, i));
		free(buf);
		if (e < 0)
			return e;
	}
	return r->latency && r->failed ? 0 : -EINVAL;
}

static int timeline_from_json(const json_t *tl, struct loadgen_result *r)
{
	size_t n = json_array_size(tl);

	if (!json_is_array(tl) || n > LOADGEN_MAX_TIMELINE)
		return -EINVAL;
	if (n == 0)
		return 0;
	r->timeline = calloc(n, sizeof(*r->timeline));
	if (!r->timeline)
		return -ENOMEM;
	r->n_seconds = n;
	for (size_t i = 0; i < n; i++) {
		const json_t *s = json_array_get(tl, i);
		json_int_t req = json_integer_value(json_array_get(s, 0));
		json_int_t err = json_integer_value(json_array_get(s, 1));

		if (json_array_size(s) != 4 || req < 0 || err < 0 || err > req)
			return -EINVAL;
		r->timeline[i] = (struct loadgen_second){(uint64_t)req, (uint64_t)err,
		                                         number_of(json_array_get(s, 2)),
		                                         number_of(json_array_get(s, 3))};
	}
	return 0;
}

/* timeline_hists_to_json's array read back into r's seconds. A histogram
 * that does not read back is refused here, not found broken in the
 * middle of a merge. */
static int timeline_hists_from_json(const json_t *a, struct loadgen_result *r)
{
	if (!a)
		return 0;
	if (!json_is_array(a) || json_array_size(a) != r->n_seconds)
		return -EINVAL;
	for (size_t i = 0; i < r->n_seconds; i++) {
		const json_t *v = json_array_get(a, i);
		struct loadgen_second *sec = &r->timeline[i];
		struct hist *check = NULL;
		int e;

		if (json_is_null(v))
			continue;
		if (!json_is_string(v))
			return -EINVAL;
		e = loadgen_base64_decode(json_string_value(v), &sec->hist, &sec->hist_len);
		e = e ?: hist_deserialize(sec->hist, sec->hist_len, &check);
		hist_free(check);
		if (e < 0)
			return e;
	}
	return 0;
}

static int scalars_from_json(const json_t *j, struct loadgen_result *r)
{
	const json_t *by = json_object_get(j, "errors_by");
	const char *ce = json_string_value(json_object_get(j, "connect_error"));

	for (size_t i = 0; i < RD_ARRAY_SIZE(counters); i++) {
		const json_t *v = json_object_get(j, counters[i].name);

		if (!json_is_integer(v) || json_integer_value(v) < 0)
			return -EINVAL;
		COUNTER(r, i) = (uint64_t)json_integer_value(v);
	}
	if (json_array_size(by) != _LOADGEN_ERR_MAX || r->errors > r->requests)
		return -EINVAL;
	for (int i = 0; i < _LOADGEN_ERR_MAX; i++)
		r->errors_by[i] = (uint64_t)json_integer_value(json_array_get(by, (size_t)i));
	r->cancelled = json_is_true(json_object_get(j, "cancelled"));
	r->clean = json_is_true(json_object_get(j, "clean"));
	r->rate_kept = json_is_true(json_object_get(j, "rate_kept"));
	r->ended_early = json_is_true(json_object_get(j, "ended_early"));
	r->elapsed_s = number_of(json_object_get(j, "elapsed_s"));
	r->schedule_lag_mean_ms = number_of(json_object_get(j, "schedule_lag_mean_ms"));
	r->schedule_lag_max_ms = number_of(json_object_get(j, "schedule_lag_max_ms"));
	if (ce)
		snprintf(r->connect_error, sizeof(r->connect_error), "%s", ce);
	return isfinite(r->elapsed_s) && r->elapsed_s >= 0 ? 0 : -EINVAL;
}

int loadgen_result_from_json(const json_t *j, struct loadgen_result *ret_result)
{
	struct loadgen_result r = {0};
	int e;

	if (!json_is_object(j))
		return -EINVAL;
	e = scalars_from_json(j, &r);
	e = e ?: hists_from_json(json_object_get(j, "histograms"), &r);
	e = e ?: timeline_from_json(json_object_get(j, "timeline"), &r);
	e = e ?: timeline_hists_from_json(json_object_get(j, "timeline_hists"), &r);
	if (e < 0) {
		loadgen_result_deinit(&r);
		return e;
	}
	*ret_result = r;
	return 0;
}

/* dst's histogram gets src's counts; created empty on first use with
 * src's config, so results of the same engine build always merge. */
static int hist_merge_into(struct hist **dst, const struct hist *src)
{
	int e;

	if (!src)
		return 0;
	if (!*dst) {
		e = hist_new(hist_highest(src), hist_digits(src), dst);
		if (e < 0)
			return e;
	}
	return hist_merge(*dst, src);
}

/* d's histogram (its second's, serialized) gets s's: the merged second's
 * percentiles are then those of one histogram fed both nodes' samples. */
static int second_merge_exact(struct loadgen_second *d, const struct loadgen_second *s)
{
	struct hist *a = NULL, *b = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	int e = hist_deserialize(d->hist, d->hist_len, &a);

	e = e ?: hist_deserialize(s->hist, s->hist_len, &b);
	e = e ?: hist_merge(a, b);
	e = e ?: hist_serialize(a, &buf, &len);
	if (e == 0) {
		free(d->hist);
		d->hist = buf;
		d->hist_len = len;
		d->p50_ms = hist_count(a) ? hist_percentile(a, 50) / 1000.0 : NAN;
		d->p99_ms = hist_count(a) ? hist_percentile(a, 99) / 1000.0 : NAN;
	}
	hist_free(a);
	hist_free(b);
	return e;
}

/* Second i of every node is the same second since the agreed start: the
 * counts add up. The percentiles are merged exactly from the seconds'
 * histograms when every node kept them (keep_seconds); a second some node
 * sent without one (a node of an older version) keeps the larger of the
 * two numbers instead, an upper bound (docs/MEASUREMENT.md). */
static int second_merge(struct loadgen_second *d, const struct loadgen_second *s)
{
	bool empty = d->requests == 0 && !d->hist;

	d->requests += s->requests;
	d->errors += s->errors;
	if (s->requests == 0 && !s->hist)
		return 0;       /* nothing of that node in this second */
	if (empty && s->hist) { /* the first to reach this second */
		d->hist = malloc(s->hist_len);
		if (!d->hist)
			return -ENOMEM;
		memcpy(d->hist, s->hist, s->hist_len);
		d->hist_len = s->hist_len;
		d->p50_ms = s->p50_ms;
		d->p99_ms = s->p99_ms;
		return 0;
	}
	/* Histograms that do not merge (another node's settings) fall back. */
	if (d->hist && s->hist && second_merge_exact(d, s) == 0)
		return 0;
	free(d->hist); /* no longer exact */
	d->hist = NULL;
	d->hist_len = 0;
	d->p50_ms = isnan(d->p50_ms) || s->p50_ms > d->p50_ms ? s->p50_ms : d->p50_ms;
	d->p99_ms = isnan(d->p99_ms) || s->p99_ms > d->p99_ms ? s->p99_ms : d->p99_ms;
	return 0;
}

static int timeline_merge(struct loadgen_result *dst, const struct loadgen_result *src)
{
	struct loadgen_second *tl;
	size_t n = dst->n_seconds > src->n_seconds ? dst->n_seconds : src->n_seconds;

	if (n > dst->n_seconds) {
		tl = realloc(dst->timeline, n * sizeof(*tl));
		if (!tl)
			return -ENOMEM;
		for (size_t i = dst->n_seconds; i < n; i++)
			tl[i] = (struct loadgen_second){0, 0, NAN, NAN};
		dst->timeline = tl;
		dst->n_seconds = n;
	}
	for (size_t i = 0; i < src->n_seconds; i++) {
		int e = second_merge(&dst->timeline[i], &src->timeline[i]);

		if (e < 0)
			return e;
	}
	return 0;
}

static double max_of(double a, double b)
{
	return isnan(a) || b > a ? b : a;
}

/* The schedule lag's mean over every request of both. */
static double lag_mean(const struct loadgen_result *a, const struct loadgen_result *b)
{
	double n = (double)(a->requests + b->requests);

	if (isnan(a->schedule_lag_mean_ms) || a->requests == 0)
		return b->schedule_lag_mean_ms;
	if (isnan(b->schedule_lag_mean_ms) || b->requests == 0 || n == 0)
		return a->schedule_lag_mean_ms;
	return (a->schedule_lag_mean_ms * (double)a->requests +
	        b->schedule_lag_mean_ms * (double)b->requests) /
	       n;
}

static void scalars_merge(struct loadgen_result *dst, const struct loadgen_result *src, bool first)
{
	uint64_t distinct = dst->distinct_requests;

	dst->schedule_lag_mean_ms = first ? src->schedule_lag_mean_ms : lag_mean(dst, src);
	for (size_t i = 0; i < RD_ARRAY_SIZE(counters); i++)
		COUNTER(dst, i) += COUNTER(src, i);
	/* Every node sends the same requests (a corpus is dealt from its
	 * start on each), so the distinct ones are not added up. */
	dst->distinct_requests =
	        distinct > src->distinct_requests ? distinct : src->distinct_requests;
	for (int i = 0; i < _LOADGEN_ERR_MAX; i++)
		dst->errors_by[i] += src->errors_by[i];
	dst->cancelled = dst->cancelled || src->cancelled;
	dst->clean = first ? src->clean : dst->clean && src->clean;
	dst->rate_kept = first ? src->rate_kept : dst->rate_kept && src->rate_kept;
	dst->ended_early = dst->ended_early || src->ended_early;
	dst->elapsed_s = max_of(dst->elapsed_s, src->elapsed_s);
	dst->schedule_lag_max_ms =
	        first ? src->schedule_lag_max_ms
	              : max_of(dst->schedule_lag_max_ms, src->schedule_lag_max_ms);
	if (!dst->connect_error[0])
		memcpy(dst->connect_error, src->connect_error, sizeof(dst->connect_error));
}

int loadgen_result_merge(struct loadgen_result *dst, const struct loadgen_result *src)
{
	bool first = !dst->latency;
	int e = 0;

	for (size_t i = 0; e == 0 && i < N_HISTS; i++)
		e = hist_merge_into(hist_slot(dst, i), *hist_slot((struct loadgen_result *)src, i));
	e = e ?: timeline_merge(dst, src);
	if (e < 0)
		return e;
	scalars_merge(dst, src, first);
	return 0;
}

void loadgen_result_deinit(struct loadgen_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < N_HISTS; i++) {
		hist_free(*hist_slot(r, i));
		*hist_slot(r, i) = NULL;
	}
	for (size_t i = 0; r->timeline && i < r->n_seconds; i++)
		free(r->timeline[i].hist);
	free(r->timeline);
	r->timeline = NULL;
	r->n_seconds = 0;
}
