/* probe_http: the generic `http` check: one request, expectations on the
 * status and the body (text, regex, JSON paths), publishes status,
 * latency_ms and ok. A transport failure is an error (nothing was
 * measured); an answer that misses an expectation is a failure (something
 * was measured and it is wrong). A JSON answer shaped like Alertmanager's
 * /api/v2/status (cluster.status and uptime) also publishes cluster_status
 * and uptime_s. It must not judge anything else: gates do. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util/ere.h"
#include "lib/probe/jsonpath.h"
#include "lib/probe/probe.h"
#include "lib/util/json_text.h"
#include "lib/util/util.h"

#define HTTP_PROBE_DEFAULT_TIMEOUT_MS 10000

struct http_probe {
	struct probe *p;
	struct http_request *req;
	struct ere_match *match; /* expect_body_regex on the threadpool */
	const char *why;         /* the first unmet expectation, or NULL */
	char buf[512];
};

static const char *probe_url(const struct probe *p)
{
	return p->sp->url ? p->sp->url : p->spec->target.url;
}

/* Returns NULL when the body contains the expected text, else why not. */
static const char *check_body(const struct spec_probe *sp, const struct http_response *r, char *why,
                              size_t len)
{
	if (sp->expect_body_contains && !strstr(r->body, sp->expect_body_contains)) {
		snprintf(why, len, "body does not contain \"%.200s\"", sp->expect_body_contains);
		return why;
	}
	return NULL;
}

/* One expect_json entry against the document. NULL when it holds. */
static const char *check_json_entry(json_t *doc, const char *path, const json_t *want, char *why,
                                    size_t len)
{
	char msg[256] = "";
	json_t *got = NULL;
	char *g, *w;
	int r = jsonpath_get(doc, path, &got, msg, sizeof(msg));

	if (r == -EINVAL) {
		snprintf(why, len, "expect_json path '%s' is invalid: %s", path, msg);
		return why;
	}
	if (r < 0) {
		snprintf(why, len, "%s: %s", path, msg);
		return why;
	}
	if (jsonpath_equal(got, want))
		return NULL;
	g = rd_json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);
	w = rd_json_dumps(want, JSON_COMPACT | JSON_ENCODE_ANY);
	snprintf(why, len, "%s is %.120s, expected %.120s", path, g ? g : "?", w ? w : "?");
	free(g);
	free(w);
	return why;
}

static const char *check_json(const struct spec_probe *sp, json_t *doc, char *why, size_t len)
{
	const char *path;
	json_t *want;

	if (!sp->expect_json)
		return NULL;
	if (!doc) {
		snprintf(why, len, "body is not JSON (expect_json needs it)");
		return why;
	}
	json_object_foreach (sp->expect_json, path, want) {
		if (check_json_entry(doc, path, want, why, len))
			return why;
	}
	return NULL;
}

/* Alertmanager's /api/v2/status, or anything shaped like it: the cluster
 * is healthy when "ready" or when clustering is "disabled" (a single
 * instance); "settling" and anything else is 0. uptime_s is from the
 * server's start (its `uptime` timestamp) to now. */
static void publish_cluster(struct probe *p, json_t *doc)
{
	json_t *cluster = json_object_get(doc, "cluster");
	const char *st = json_string_value(json_object_get(cluster, "status"));
	const char *up = json_string_value(json_object_get(doc, "uptime"));
	int64_t since;

	if (!st || !up)
		return;
	probe_set_metric(p, "cluster_status",
	                 strcmp(st, "ready") == 0 || strcmp(st, "disabled") == 0 ? 1 : 0);
	if (rd_time_parse(up, &since) == 0)
		probe_set_metric(p, "uptime_s", (double)(rd_now_ms() - since) / 1000.0);
}

static void conclude(struct http_probe *hp)
{
	struct probe *p = hp->p;

	probe_set_metric(p, "ok", hp->why ? 0 : 1);
	if (hp->why)
		probe_finish(p, PROBE_STATE_FAILED, "%s", hp->why);
	else
		probe_finish(p, PROBE_STATE_PASSED, NULL);
}

static void on_match(void *userdata, int result)
{
	struct http_probe *hp = userdata;

	hp->match = NULL;
	if (result == 0)
		snprintf(hp->buf, sizeof(hp->buf), "body (its first %d KiB) does not match /%s/",
		         ERE_MATCH_MAX / 1024, hp->p->sp->expect_body_regex);
	else if (result < 0)
		snprintf(hp->buf, sizeof(hp->buf), "expect_body_regex cannot be matched: %s",
		         strerror(-result));
	if (result != 1)
		hp->why = hp->buf;
	conclude(hp);
}

static void on_response(void *userdata, const struct http_response *r)
{
	struct http_probe *hp = userdata;
	struct probe *p = hp->p;
	const struct spec_probe *sp = p->sp;
	int64_t want = sp->expect_status ? sp->expect_status : 200;
	char url[RD_URL_TEXT_MAX];
	json_t *doc;
	int e;

	hp->req = NULL;
	if (r->err != 0) {
		probe_finish(p, PROBE_STATE_ERRORED, "%s %s: %s", sp->method ? sp->method : "GET",
		             rd_url_redact(probe_url(p), url, sizeof(url)),
		             r->error ? r->error : strerror(-r->err));
		return;
	}
	probe_set_metric(p, "status", (double)r->status);
	probe_set_metric(p, "latency_ms", r->total_ms);
	if (r->status != want) {
		snprintf(hp->buf, sizeof(hp->buf), "expected status %lld, got %ld", (long long)want,
		         r->status);
		hp->why = hp->buf;
	}
	doc = json_loadb(r->body, r->body_len, 0, NULL);
	if (json_is_object(doc))
		publish_cluster(p, doc);
	if (!hp->why)
		hp->why = check_body(sp, r, hp->buf, sizeof(hp->buf));
	if (!hp->why)
		hp->why = check_json(sp, doc, hp->buf, sizeof(hp->buf));
	json_decref(doc);
	if (hp->why || !sp->expect_body_regex)
		return conclude(hp);
	/* Matching can take far longer than the request did: never on the
	 * loop (lib/util/ere.h). */
	e = ere_match_async(p->loop, sp->expect_body_regex, r->body, r->body_len, on_match, hp,
	                    &hp->match);
	if (e < 0)
		probe_finish(p, PROBE_STATE_ERRORED, "cannot match expect_body_regex: %s",
		             strerror(-e));
}

static int http_probe_start(struct probe *p)
{
	const struct spec_probe *sp = p->sp;
	struct http_probe *hp;
	struct http_options opt = {
	        .method = sp->method,
	        .url = probe_url(p),
	        .headers = sp->headers,
	        .n_headers = sp->n_headers,
	        .body = sp->body,
	        .body_len = sp->body_len,
	        .timeout_ms = sp->timeout_ms ? sp->timeout_ms : HTTP_PROBE_DEFAULT_TIMEOUT_MS,
	        .insecure = sp->insecure,
	        .ca_file = sp->ca_file,
	};
	int r;

	if (!opt.url)
		return -EINVAL;
	hp = calloc(1, sizeof(*hp));
	if (!hp)
		return -ENOMEM;
	hp->p = p;
	p->impl = hp;
	r = http_request_start(p->http, &opt, on_response, hp, &hp->req);
	if (r < 0) {
		p->impl = NULL;
		free(hp);
	}
	return r;
}

static void http_probe_cancel(struct probe *p)
{
	struct http_probe *hp = p->impl;

	if (hp && hp->req) {
		http_request_cancel(hp->req);
		hp->req = NULL;
	}
	if (hp && hp->match) {
		ere_match_cancel(hp->match);
		hp->match = NULL;
	}
	probe_finish(p, PROBE_STATE_CANCELLED, NULL);
}

static void http_probe_free(struct probe *p)
{
	free(p->impl);
	p->impl = NULL;
}

/* --- the type: its spec fields, rules, metrics and ops --- */

/* One field per line, aligned by hand: read as a schema more than as
 * code. */
/* clang-format off */
static const struct spec_field fields[] = {
	SPEC_F_COMMON, SPEC_F_URL(true), SPEC_F_METHOD, SPEC_F_HEADERS, SPEC_F_BODY,
	{.key = "expect_status",        .kind = FK_INT, .off = SPEC_P(expect_status), .min = 100,
	 .max = 599, .def = 200},
	{.key = "expect_body_contains", .kind = FK_STRING, .off = SPEC_P(expect_body_contains),
	 .max = SPEC_MAX_TEXT},
	{.key = "expect_body_regex",    .kind = FK_STRING, .off = SPEC_P(expect_body_regex),
	 .max = ERE_MAX_PATTERN, .check = spec_check_regex},
	{.key = "expect_json",          .kind = FK_JSON, .off = SPEC_P(expect_json)},
	SPEC_F_TLS_CLIENT,
};
/* clang-format on */

static int finish_http(struct spec_vctx *v, json_t *obj, const char *path, struct spec_probe *p)
{
	return spec_str_default(&p->method, "GET");
}

static const struct probe_metric_def metrics[] = {
        {"status", "HTTP status", PROBE_SAMPLES_NONE},
        {"latency_ms", "ms", PROBE_SAMPLES_NONE},
        {"ok", "1", PROBE_SAMPLES_NONE},
        {"cluster_status", "1", PROBE_SAMPLES_NONE},
        {"uptime_s", "s", PROBE_SAMPLES_NONE},
};

const struct probe_type_def probe_type_http = {
        .name = "http",
        .section = "Monitoring",
        .fields = fields,
        .n_fields = RD_ARRAY_SIZE(fields),
        .finish = finish_http,
        .deadline_fixed_ms = PROBE_DEFAULT_DEADLINE_MS,
        .metrics = metrics,
        .n_metrics = RD_ARRAY_SIZE(metrics),
        .ops =
                {
                        .start = http_probe_start,
                        .cancel = http_probe_cancel,
                        .free = http_probe_free,
                },
};
