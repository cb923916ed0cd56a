/* promapi: a GET against Prometheus' HTTP API with the envelope checked
 * (see promapi.h). Every failure becomes one sentence naming the URL; the
 * probes decide what the failure means for their verdict. Must not keep
 * anything of the probe's spec past promapi_get(). Below the transport,
 * the readers of rules and alerts answers that the rules probe and the
 * alert drill share.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/prom/promapi.h"
#include "lib/util/util.h"

struct promapi_call {
	struct http_request *req;
	promapi_cb cb;
	void *userdata;
	char *url; /* base + path, for messages (the query string can be long) */
	bool raw;  /* no envelope: the whole answer is the data (Alertmanager) */
};

static bool unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

/* Appends s percent-encoded to out (which has room: 3 bytes per input). */
static size_t encode(char *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (unreserved(c)) {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	return o;
}

/* base (without a trailing slash) + path + "?k=v&..."; new string. */
static char *build_url(const char *base, const char *path, const char *const *params)
{
	size_t bl = strlen(base), need, o;
	char *url;

	while (bl > 0 && base[bl - 1] == '/')
		bl--;
	need = bl + strlen(path) + 2;
	for (size_t i = 0; params && params[i]; i += 2)
		need += strlen(params[i]) + 3 * strlen(params[i + 1]) + 2;
	url = malloc(need);
	if (!url)
		return NULL;
	memcpy(url, base, bl);
	o = bl + (size_t)snprintf(url + bl, need - bl, "%s", path);
	for (size_t i = 0; params && params[i]; i += 2) {
		o += (size_t)snprintf(url + o, need - o, "%c%s=", i == 0 ? '?' : '&', params[i]);
		o += encode(url + o, params[i + 1]);
	}
	url[o] = '\0';
	return url;
}

/* A short, printable excerpt of a body for messages. */
static void excerpt(const char *body, size_t len, char *out, size_t outlen)
{
	size_t o = 0;

	for (size_t i = 0; i < len && o + 4 < outlen && i < 120; i++)
		out[o++] = (body[i] >= 0x20 && body[i] < 0x7f) ? body[i] : ' ';
	if (len > 120 && o + 4 < outlen) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

json_t *promapi_envelope(json_t *doc, const char *url, long status_code, const char *body,
                         size_t body_len, char *msg, size_t len)
{
	const char *status = json_string_value(json_object_get(doc, "status"));
	json_t *data = json_object_get(doc, "data");
	char ex[160];

	if (status && strcmp(status, "error") == 0) {
		snprintf(msg, len, "Prometheus at %s answered HTTP %ld with an error: %s: %s", url,
		         status_code,
		         json_string_value(json_object_get(doc, "errorType")) ?: "error",
		         json_string_value(json_object_get(doc, "error")) ?: "(no message)");
		return NULL;
	}
	if (status_code != 200) {
		excerpt(body, body_len, ex, sizeof(ex));
		snprintf(msg, len, "GET %s answered HTTP %ld: %s", url, status_code, ex);
		return NULL;
	}
	if (!status || strcmp(status, "success") != 0 || !data) {
		excerpt(body, body_len, ex, sizeof(ex));
		snprintf(msg, len,
		         "GET %s: the answer is JSON but not a Prometheus API response "
		         "(want {\"status\": \"success\", \"data\": ...}): %s",
		         url, ex);
		return NULL;
	}
	return data;
}

static void on_response(void *userdata, const struct http_response *r)
{
	struct promapi_call *call = userdata;
	json_t *doc = NULL, *data = NULL;
	json_error_t jerr;
	char msg[768], ex[160];
	int err = 0;

	call->req = NULL;
	if (r->err != 0) {
		err = r->err;
		snprintf(msg, sizeof(msg), "GET %s: %s", call->url,
		         r->error ? r->error : strerror(-r->err));
	} else if (!(doc = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &jerr))) {
		err = r->status == 200 ? -EBADMSG : -EPROTO;
		excerpt(r->body, r->body_len, ex, sizeof(ex));
		snprintf(msg, sizeof(msg),
		         "GET %s answered HTTP %ld with a body that is not JSON (%s): %s",
		         call->url, r->status, jerr.text, ex);
	} else if (call->raw && r->status != 200) {
		err = -EPROTO;
		excerpt(r->body, r->body_len, ex, sizeof(ex));
		snprintf(msg, sizeof(msg), "GET %s answered HTTP %ld: %s", call->url, r->status,
		         ex);
	} else if (call->raw) {
		data = doc;
	} else if (!(data = promapi_envelope(doc, call->url, r->status, r->body, r->body_len, msg,
	                                     sizeof(msg)))) {
		err = -EPROTO;
	}
	call->cb(call->userdata, err, err ? NULL : data, err ? msg : NULL);
	json_decref(doc);
	free(call->url);
	free(call);
}

static int start_call(struct http_client *c, const struct spec_probe *sp, const char *base,
                      const char *path, const char *const *params, int64_t timeout_ms, bool raw,
                      promapi_cb cb, void *userdata, struct promapi_call **ret_call)
{
	struct promapi_call *call = calloc(1, sizeof(*call));
	struct http_options opt = {
	        .headers = sp->headers,
	        .n_headers = sp->n_headers,
	        .timeout_ms = timeout_ms > 0 ? timeout_ms : PROMAPI_DEFAULT_TIMEOUT_MS,
	        .insecure = sp->insecure,
	        .ca_file = sp->ca_file,
	        .max_body = PROMAPI_MAX_BODY,
	};
	char *full = NULL;
	int r = -ENOMEM;

	if (!call)
		return -ENOMEM;
	call->cb = cb;
	call->userdata = userdata;
	call->raw = raw;
	call->url = build_url(base, path, NULL);
	full = build_url(base, path, params);
	if (call->url) {
		/* For messages only: without credentials (docs/security.md). */
		char *shown = rd_url_redact_dup(call->url);

		free(call->url);
		call->url = shown;
	}
	if (!call->url || !full)
		goto fail;
	opt.url = full;
	r = http_request_start(c, &opt, on_response, call, &call->req);
	free(full);
	full = NULL;
	if (r < 0)
		goto fail;
	*ret_call = call;
	return 0;
fail:
	free(full);
	free(call->url);
	free(call);
	return r;
}

int promapi_get(struct http_client *c, const struct spec_probe *sp, const char *path,
                const char *const *params, int64_t timeout_ms, promapi_cb cb, void *userdata,
                struct promapi_call **ret_call)
{
	return start_call(c, sp, sp->prometheus, path, params, timeout_ms, false, cb, userdata,
	                  ret_call);
}

int promapi_get_json(struct http_client *c, const struct spec_probe *sp, const char *base,
                     const char *path, const char *const *params, int64_t timeout_ms, promapi_cb cb,
                     void *userdata, struct promapi_call **ret_call)
{
	return start_call(c, sp, base, path, params, timeout_ms, true, cb, userdata, ret_call);
}

void promapi_cancel(struct promapi_call *call)
{
	if (!call)
		return;
	http_request_cancel(call->req);
	free(call->url);
	free(call);
}

/* --- reading /api/v1/rules and /api/v1/alerts answers --- */

bool promapi_rule_evaluated(json_t *rule)
{
	const char *health = json_string_value(json_object_get(rule, "health"));
	const char *last = json_string_value(json_object_get(rule, "lastEvaluation"));

	if (health && strcmp(health, "unknown") == 0)
		return false;
	/* Go's zero time: the group has not run this rule yet. */
	return !(last && strncmp(last, "0001-01-01T", 11) == 0);
}

int64_t promapi_group_interval_ms(json_t *group)
{
	double s = json_number_value(json_object_get(group, "interval"));

	return s > 0 && s < 1e9 ? (int64_t)(s * 1000.0 + 0.5) : 0;
}

#define NAME_MAX_COMPARED 256

/* Optimal-string-alignment distance, case-insensitive, for "did you mean":
 * a swapped pair of neighbours counts as one edit. */
static size_t osa_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t rows[3][NAME_MAX_COMPARED + 1], *pp = rows[0], *prev = rows[1], *cur = rows[2];

	if (la > NAME_MAX_COMPARED || lb > NAME_MAX_COMPARED)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t best = prev[j - 1] + (tolower((unsigned char)a[i - 1]) !=
			                             tolower((unsigned char)b[j - 1]));

			if (prev[j] + 1 < best)
				best = prev[j] + 1;
			if (cur[j - 1] + 1 < best)
				best = cur[j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    pp[j - 2] + 1 < best)
				best = pp[j - 2] + 1;
			cur[j] = best;
		}
		size_t *t = pp;
		pp = prev;
		prev = cur;
		cur = t;
	}
	return prev[lb];
}

/* Keeps cand as ret->closest when it is near enough to name to be a typo
 * of it and nearer than the one kept. */
static void consider(struct promapi_alert_rule *ret, size_t *best, const char *name,
                     const char *cand)
{
	size_t d = osa_distance(name, cand), limit = strlen(name) > 4 ? 2 : 1;

	if (d <= limit && d < *best) {
		*best = d;
		ret->closest = cand;
	}
}

static void count_alert_rule(struct promapi_alert_rule *ret, json_t *group, json_t *rule,
                             const char *gname)
{
	int64_t iv = promapi_group_interval_ms(group);

	ret->rules++;
	if (promapi_rule_evaluated(rule)) {
		if (!ret->group)
			ret->group = gname;
		return;
	}
	if (ret->unevaluated++ == 0)
		ret->group = gname;
	if (iv > ret->unevaluated_interval_ms)
		ret->unevaluated_interval_ms = iv;
}

int promapi_find_alert_rule(json_t *data, const char *name, struct promapi_alert_rule *ret)
{
	json_t *groups = json_object_get(data, "groups"), *g, *rule;
	struct promapi_alert_rule found = {0};
	size_t i, k, best = SIZE_MAX;

	if (!json_is_array(groups))
		return -EPROTO;
	json_array_foreach (groups, i, g) {
		json_t *rules = json_object_get(g, "rules");
		const char *gname = json_string_value(json_object_get(g, "name")) ?: "?";

		if (!json_is_array(rules))
			return -EPROTO;
		json_array_foreach (rules, k, rule) {
			const char *n = json_string_value(json_object_get(rule, "name"));
			const char *type = json_string_value(json_object_get(rule, "type"));

			if (!n || !type || strcmp(type, "alerting") != 0)
				continue;
			if (strcmp(n, name) == 0)
				count_alert_rule(&found, g, rule, gname);
			else
				consider(&found, &best, name, n);
		}
	}
	if (found.rules > 0)
		found.closest = NULL;
	*ret = found;
	return 0;
}

/* Every matcher holds exactly on labels. */
static bool labels_match(json_t *labels, const struct spec_label *match, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *v = json_string_value(json_object_get(labels, match[i].name));

		if (!v || strcmp(v, match[i].value) != 0)
			return false;
	}
	return true;
}

int promapi_alert_state(json_t *data, const char *name, const struct spec_label *match,
                        size_t n_match, struct promapi_alert_state *ret)
{
	json_t *alerts = json_object_get(data, "alerts"), *a;
	struct promapi_alert_state st = {.state = "inactive"};
	size_t i;

	if (!json_is_array(alerts))
		return -EPROTO;
	json_array_foreach (alerts, i, a) {
		json_t *labels = json_object_get(a, "labels");
		const char *n = json_string_value(json_object_get(labels, "alertname"));
		const char *s = json_string_value(json_object_get(a, "state"));
		bool firing = s && strcmp(s, "firing") == 0;

		if (!n || !s || strcmp(n, name) != 0 || (!firing && strcmp(s, "pending") != 0))
			continue;
		if (!labels_match(labels, match, n_match)) {
			if (st.others++ == 0 || firing)
				st.other_labels = labels;
			continue;
		}
		st.matching++;
		if (firing && strcmp(st.state, "firing") != 0) {
			st.state = "firing";
			st.labels = labels;
		} else if (!firing && strcmp(st.state, "inactive") == 0) {
			st.state = "pending";
			st.labels = labels;
		}
	}
	*ret = st;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void promapi_format_labels(json_t *labels, char *buf, size_t len)
{
	const char *names[64], *k;
	size_t n = 0, o = 0;
	json_t *v;

	buf[0] = '\0';
	json_object_foreach (labels, k, v)
		if (n < RD_ARRAY_SIZE(names) && strcmp(k, "alertname") != 0 && json_is_string(v))
			names[n++] = k;
	qsort(names, n, sizeof(names[0]), cmp_str);
	for (size_t i = 0; i < n && o < len; i++) {
		int w = snprintf(buf + o, len - o, "%s%s=\"%s\"", i ? ", " : "", names[i],
		                 json_string_value(json_object_get(labels, names[i])));

		if (w < 0 || (size_t)w >= len - o) {
			buf[o] = '\0'; /* a label cut in half would mislead */
			break;
		}
		o += (size_t)w;
	}
}

/* --- reading /api/v1/query and /api/v1/query_range answers --- */

/* A sample [time, "value"]: "1.5", "NaN", "+Inf", "-Inf". */
static int sample_value(json_t *pair, double *ret)
{
	const char *s = json_string_value(json_array_get(pair, 1));

	if (!s)
		return -EPROTO;
	if (strcmp(s, "NaN") == 0) {
		*ret = NAN;
		return 0;
	}
	if (strcmp(s, "+Inf") == 0 || strcmp(s, "-Inf") == 0) {
		*ret = s[0] == '+' ? INFINITY : -INFINITY;
		return 0;
	}
	return rd_parse_double(s, ret) < 0 ? -EPROTO : 0;
}

/* min|max|avg|last over a matrix series' points; NaN points are skipped. */
static int reduce(const char *fn, json_t *values, double *ret, long *ret_points)
{
	double acc = NAN, v;
	size_t i;
	long n = 0;
	json_t *pair;

	if (!json_is_array(values))
		return -EPROTO;
	json_array_foreach (values, i, pair) {
		if (sample_value(pair, &v) < 0)
			return -EPROTO;
		if (isnan(v))
			continue;
		if (n == 0 || !fn || strcmp(fn, "last") == 0)
			acc = v;
		else if (strcmp(fn, "min") == 0)
			acc = fmin(acc, v);
		else if (strcmp(fn, "max") == 0)
			acc = fmax(acc, v);
		else
			acc += v;
		n++;
	}
	if (fn && strcmp(fn, "avg") == 0 && n > 0)
		acc /= (double)n;
	*ret = acc;
	*ret_points = n;
	return 0;
}

/* -ERANGE with the reason when the value is not a finite number (points
 * 0: a matrix whose points were all NaN; -1: a scalar, which has none). */
static int query_finite(const struct promapi_query_result *ret, char *why, size_t len)
{
	if (ret->points != 0 && isfinite(ret->value))
		return 0;
	snprintf(why, len, "the query's value is %s",
	         ret->points == 0 || isnan(ret->value) ? "NaN"
	         : ret->value > 0                      ? "+Inf"
	                                               : "-Inf");
	return -ERANGE;
}

static int query_one_series(json_t *result, const char *type, const char *function,
                            struct promapi_query_result *ret, char *why, size_t len)
{
	json_t *one;
	char *labels;
	int e;

	if (json_array_size(result) != 1) {
		snprintf(
		        why, len,
		        json_array_size(result) == 0
		                ? "the query returned no series (empty result)"
		                : "the query returned %zu series, one expected (aggregate it, e.g. "
		                  "with sum() or max())",
		        json_array_size(result));
		return -ERANGE;
	}
	one = json_array_get(result, 0);
	ret->series = json_object_get(one, "metric");
	if (strcmp(type, "vector") == 0) {
		e = sample_value(json_object_get(one, "value"), &ret->value);
		if (e == 0)
			ret->points = 1;
	} else {
		e = reduce(function, json_object_get(one, "values"), &ret->value, &ret->points);
	}
	if (e < 0) {
		labels = json_dumps(ret->series, JSON_COMPACT | JSON_SORT_KEYS);
		snprintf(why, len, "series %s has a malformed value", labels ? labels : "{}");
		free(labels);
		return -EPROTO;
	}
	return query_finite(ret, why, len);
}

int promapi_query_value(json_t *data, const char *function, struct promapi_query_result *ret,
                        char *why, size_t len)
{
	const char *type = json_string_value(json_object_get(data, "resultType"));
	json_t *result = json_object_get(data, "result");

	*ret = (struct promapi_query_result){.value = NAN, .series = NULL, .points = -1};
	if (!type || !result) {
		snprintf(why, len, "the answer has no resultType/result");
		return -EPROTO;
	}
	if (strcmp(type, "scalar") == 0) {
		if (sample_value(result, &ret->value) < 0) {
			snprintf(why, len, "the scalar result is malformed");
			return -EPROTO;
		}
		return query_finite(ret, why, len);
	}
	if (strcmp(type, "vector") != 0 && strcmp(type, "matrix") != 0) {
		snprintf(why, len, "result type '%s' is not a number", type);
		return -EPROTO;
	}
	return query_one_series(result, type, function, ret, why, len);
}
