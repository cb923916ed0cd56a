/* loadgen_report: a finished run's result as the JSON the `load` and
 * `capacity` probes publish: metrics (what gates read), and details (the
 * timeline and histogram buckets for charts, and the serialized
 * histograms so a stored run can be re-judged exactly). Pure: no I/O, no
 * clocks; called on the main loop after the engine's threads are joined.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "lib/loadgen/loadgen_int.h"
#include "lib/util/util.h"

static int set_num(json_t *o, const char *name, double v)
{
	json_t *j = rd_json_number(v);

	return j && json_object_set_new(o, name, j) == 0 ? 0 : -ENOMEM;
}

static double ms_pct(const struct hist *h, double p)
{
	return hist_percentile(h, p) / 1000.0;
}

static int set_latency_named(json_t *o, const struct hist *h, const char *prefix,
                             const char *suffix)
{
	static const struct {
		const char *name;
		double p;
	} pcts[] = {{"p50_ms", 50}, {"p90_ms", 90},    {"p95_ms", 95},
	            {"p99_ms", 99}, {"p999_ms", 99.9}, {"max_ms", 100}};
	char name[64];
	int r = 0;

	for (size_t i = 0; i < RD_ARRAY_SIZE(pcts) && r == 0; i++) {
		snprintf(name, sizeof(name), "%s%s%s", prefix, pcts[i].name, suffix);
		r = set_num(o, name, ms_pct(h, pcts[i].p));
	}
	snprintf(name, sizeof(name), "%smean_ms%s", prefix, suffix);
	return r == 0 ? set_num(o, name, hist_mean(h) / 1000.0) : r;
}

static int set_latency(json_t *o, const struct hist *h, const char *suffix)
{
	return set_latency_named(o, h, "", suffix);
}

/* Stream mode: ttfb_*, ttft_* (corrected in rate mode, with
 * _uncorrected twins), itl_*, events_mean, output_tokens and
 * output_tokens_per_s (docs/MEASUREMENT.md defines each). */
static int set_stream(json_t *o, const struct loadgen_result *r)
{
	int e;

	e = set_latency_named(o, r->ttfb, "ttfb_", "");
	e = e ?: set_latency_named(o, r->ttft, "ttft_", "");
	if (e == 0 && r->ttft_uncorrected)
		e = set_latency_named(o, r->ttft_uncorrected, "ttft_", "_uncorrected");
	e = e ?: set_latency_named(o, r->itl, "itl_", "");
	e = e
	            ?: set_num(o, "events_mean",
	                       r->streamed ? (double)r->events / (double)r->streamed : NAN);
	e = e ?: set_num(o, "output_tokens", (double)r->tokens);
	return e
	               ?: set_num(o, "output_tokens_per_s",
	                          r->decode_ns
	                                  ? (double)r->decode_tokens / ((double)r->decode_ns / 1e9)
	                                  : NAN);
}

/* Rates over the measured window (warm-up excluded): throughput_rps
 * counts successful requests only, since a target answering errors fast
 * must not look fast; requests_rps counts every measured request. */
static int set_rates(json_t *o, const struct loadgen_result *r)
{
	uint64_t ok = r->requests - (r->errors < r->requests ? r->errors : r->requests);
	int e;

	e = set_num(o, "throughput_rps", r->elapsed_s > 0 ? (double)ok / r->elapsed_s : NAN);
	return e
	               ?: set_num(o, "requests_rps",
	                          r->elapsed_s > 0 ? (double)r->requests / r->elapsed_s : NAN);
}

static int set_counts(json_t *o, const struct loadgen_result *r)
{
	char name[64];
	int e;

	e = set_num(o, "requests", (double)r->requests);
	e = e ?: set_num(o, "errors", (double)r->errors);
	e = e
	            ?: set_num(o, "error_rate",
	                       r->requests ? (double)r->errors / (double)r->requests : NAN);
	e = e ?: set_rates(o, r);
	e = e ?: set_num(o, "warmup_requests", (double)r->warmup_requests);
	for (int i = 0; i < _LOADGEN_ERR_MAX && e == 0; i++) {
		snprintf(name, sizeof(name), "errors_%s", loadgen_error_to_string(i));
		e = set_num(o, name, (double)r->errors_by[i]);
	}
	return e;
}

static int set_schedule(json_t *o, const struct loadgen_result *r)
{
	int e;

	e = set_latency(o, r->latency_uncorrected, "_uncorrected");
	e = e ?: set_num(o, "schedule_lag_ms", r->schedule_lag_mean_ms);
	e = e ?: set_num(o, "schedule_lag_max_ms", r->schedule_lag_max_ms);
	e = e ?: set_num(o, "unsent", (double)r->unsent);
	e = e ?: set_num(o, "rate_kept", r->rate_kept ? 1 : 0);
	return e;
}

int loadgen_result_metrics(const struct loadgen_result *r, json_t **ret_metrics)
{
	json_t *o = json_object();
	int e;

	if (!o)
		return -ENOMEM;
	e = set_counts(o, r);
	e = e ?: set_latency(o, r->latency, "");
	if (e == 0 && r->latency_uncorrected)
		e = set_schedule(o, r);
	e = e ?: set_num(o, "distinct_requests", (double)r->distinct_requests);
	if (e == 0 && r->ttft)
		e = set_stream(o, r);
	if (e < 0) {
		json_decref(o);
		return e;
	}
	*ret_metrics = o;
	return 0;
}

json_t *loadgen_base64(const uint8_t *buf, size_t len)
{
	char *b64 = malloc(4 * ((len + 2) / 3) + 1);
	json_t *j;

	if (!b64)
		return NULL;
	EVP_EncodeBlock((unsigned char *)b64, buf, (int)len);
	j = json_string(b64);
	free(b64);
	return j;
}

json_t *loadgen_hist_base64(const struct hist *h)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	json_t *j;

	if (hist_serialize(h, &buf, &len) < 0)
		return NULL;
	j = loadgen_base64(buf, len);
	free(buf);
	return j;
}

static json_t *timeline_json(const struct loadgen_result *r)
{
	size_t n =
	        r->n_seconds < LOADGEN_DETAILS_TIMELINE ? r->n_seconds : LOADGEN_DETAILS_TIMELINE;
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++) {
		const struct loadgen_second *s = &r->timeline[i];
		json_t *e = json_pack("{s:I, s:I, s:I, s:o, s:o}", "second", (json_int_t)i,
		                      "requests", (json_int_t)s->requests, "errors",
		                      (json_int_t)s->errors, "p50_ms", rd_json_number(s->p50_ms),
		                      "p99_ms", rd_json_number(s->p99_ms));

		if (!e || json_array_append_new(a, e) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static int bucket_cb(int64_t lo, int64_t hi, uint64_t count, void *userdata)
{
	json_t *e = json_pack("[I, I, I]", (json_int_t)lo, (json_int_t)hi, (json_int_t)count);

	return e && json_array_append_new(userdata, e) == 0 ? 0 : -ENOMEM;
}

static json_t *histograms_json(const struct loadgen_result *r)
{
	json_t *o = json_object();

	if (!o || json_object_set_new(o, "latency", loadgen_hist_base64(r->latency)) < 0 ||
	    json_object_set_new(o, "failed", loadgen_hist_base64(r->failed)) < 0 ||
	    (r->latency_uncorrected &&
	     json_object_set_new(o, "latency_uncorrected",
	                         loadgen_hist_base64(r->latency_uncorrected)) < 0) ||
	    (r->ttft && (json_object_set_new(o, "ttfb", loadgen_hist_base64(r->ttfb)) < 0 ||
	                 json_object_set_new(o, "ttft", loadgen_hist_base64(r->ttft)) < 0 ||
	                 json_object_set_new(o, "itl", loadgen_hist_base64(r->itl)) < 0)) ||
	    (r->ttft_uncorrected &&
	     json_object_set_new(o, "ttft_uncorrected", loadgen_hist_base64(r->ttft_uncorrected)) <
	             0)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int loadgen_result_details(const struct loadgen_result *r, json_t **ret_details)
{
	json_t *d = json_object(), *buckets = json_array();

	if (!d || !buckets || hist_iter(r->latency, bucket_cb, buckets) != 0 ||
	    json_object_set_new(d, "buckets", buckets) < 0) {
		json_decref(buckets);
		json_decref(d);
		return -ENOMEM;
	}
	if (json_object_set_new(d, "timeline", timeline_json(r)) < 0 ||
	    json_object_set_new(d, "histograms", histograms_json(r)) < 0 ||
	    json_object_set_new(d, "timeline_truncated",
	                        json_boolean(r->n_seconds > LOADGEN_DETAILS_TIMELINE)) < 0) {
		json_decref(d);
		return -ENOMEM;
	}
	if (r->latency_uncorrected && !r->rate_kept &&
	    json_object_set_new(d, "warning",
	                        json_string("the engine could not keep the requested rate: "
	                                    "see schedule_lag_ms and unsent; add connections "
	                                    "or threads")) < 0) {
		json_decref(d);
		return -ENOMEM;
	}
	*ret_details = d;
	return 0;
}

int loadgen_base64_decode(const char *b64, uint8_t **ret_buf, size_t *ret_len)
{
	size_t len = b64 ? strlen(b64) : 0;
	uint8_t *buf;
	int n;

	if (len == 0 || len % 4 != 0 || len > INT_MAX)
		return -EINVAL;
	buf = malloc(len / 4 * 3);
	if (!buf)
		return -ENOMEM;
	n = EVP_DecodeBlock(buf, (const unsigned char *)b64, (int)len);
	if (n < 0) {
		free(buf);
		return -EINVAL;
	}
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	for (size_t i = len; i > 0 && b64[i - 1] == '='; i--)
		n--;
	*ret_buf = buf;
	*ret_len = (size_t)n;
	return 0;
}
