/* test-spec: the readiness-spec parser and validator. Valid specs (the
 * full example in YAML and in JSON, defaults, the scalar rules) must
 * parse to the expected structure; every invalid one must fail with the
 * path of the field at fault and a message that says what is wrong. Runs
 * clean under valgrind (no leaks on any error path). */
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/spec/spec.h"
#include "lib/spec/spec_schema.h"

/* A complete spec, as a pipeline submits it. */
static const char product_yaml[] =
        "apiVersion: readyd/v1\n"
        "service: sentiment-api\n"
        "version: 2.4.0\n"
        "environment: staging\n"
        "timeout: 20m\n"
        "target:\n"
        "  url: http://127.0.0.1:8080/v1/predict\n"
        "  method: POST\n"
        "  headers: { Content-Type: application/json }\n"
        "  body: '{\"text\": \"ship it\"}'\n"
        "  timeout: 2s\n"
        "probes:\n"
        "  - name: latency            # open model, fixed arrival rate (wrk2 style)\n"
        "    type: load\n"
        "    mode: rate\n"
        "    rate: 200                # requests per second\n"
        "    connections: 32\n"
        "    duration: 60s\n"
        "    warmup: 5s\n"
        "  - name: capacity           # closed model, N connections as fast as possible\n"
        "    type: load\n"
        "    mode: closed\n"
        "    connections: 64\n"
        "    duration: 30s\n"
        "  - name: max-sustainable    # search the highest rate that still meets an SLO\n"
        "    type: capacity\n"
        "    slo: \"p95_ms < 100\"\n"
        "    max_rate: 5000\n"
        "  - name: exposition\n"
        "    type: prometheus-scrape  # target's /metrics has the required families\n"
        "    url: http://127.0.0.1:8080/metrics\n"
        "    require: [inference_requests_total, inference_duration_seconds_bucket,\n"
        "              inference_errors_total]\n"
        "  - name: alert-rules\n"
        "    type: prometheus-rules   # rules loaded in Prometheus, healthy, named alerts exist\n"
        "    prometheus: http://127.0.0.1:9090\n"
        "    require: [HighLatency, LowThroughput, HighErrorRate, GPUOutOfMemory]\n"
        "  - name: live-errors\n"
        "    type: prometheus-query   # instant PromQL query, value used by a gate\n"
        "    prometheus: http://127.0.0.1:9090\n"
        "    query: sum(rate(inference_errors_total[5m])) / sum(rate(inference_requests_total[5m]))\n"
        "  - name: alert-drill        # inject a fault, measure time until the alert fires\n"
        "    type: alert-drill\n"
        "    prometheus: http://127.0.0.1:9090\n"
        "    alert: HighErrorRate\n"
        "    trigger: { method: POST, url: http://127.0.0.1:8080/admin/fault?errors=0.5 }\n"
        "    clear:   { method: POST, url: http://127.0.0.1:8080/admin/fault?errors=0 }\n"
        "    within: 2m\n"
        "  - name: alertmanager\n"
        "    type: http               # generic check: status, body contains, latency\n"
        "    url: http://127.0.0.1:9093/-/healthy\n"
        "    expect_status: 200\n"
        "  - name: tls\n"
        "    type: tls                # negotiated version, cipher, cert days left, hostname\n"
        "    url: https://127.0.0.1:8443/\n"
        "  - name: authn\n"
        "    type: auth               # unauthenticated request must get 401/403\n"
        "  - name: rate-limit\n"
        "    type: rate-limit         # a burst must be answered with 429 before N requests\n"
        "    burst: 500\n"
        "  - name: resources\n"
        "    type: resources          # CPU/RSS of a pid or cgroup during the load probes;\n"
        "    pid_file: /run/model.pid # GPU util/memory via nvidia-smi when present, else \"unavailable\"\n"
        "  - name: rollback-drill\n"
        "    type: rollback-drill     # call a rollback webhook, poll until the previous\n"
        "    trigger: { method: POST, url: http://127.0.0.1:8080/admin/rollback }\n"
        "    version_url: http://127.0.0.1:8080/version\n"
        "    expect_version: 2.3.9\n"
        "    within: 5m\n"
        "gates:                       # every line must hold for PASS\n"
        "  - latency.p95_ms < 100\n"
        "  - latency.p99_ms < 250\n"
        "  - latency.error_rate < 0.05\n"
        "  - capacity.throughput_rps >= 100\n"
        "  - max-sustainable.rate >= 500\n"
        "  - live-errors.value < 0.05\n"
        "  - alert-rules.missing == 0\n"
        "  - alert-drill.seconds_to_fire < 120\n"
        "  - tls.version >= 1.3\n"
        "  - tls.cert_days_left >= 14\n"
        "  - latency.p95_ms <= baseline * 1.10     # no worse than 10% vs last PASS of this service\n"
        "  - { expr: \"resources.cpu_percent < 70\", advisory: true }   # reported, never blocks\n"
        "checklist:                   # evidence for what no probe can measure\n"
        "  incident_response_plan: { evidence: \"https://wiki.example/ir/sentiment-api\" }\n"
        "  runbook:                { evidence: \"https://wiki.example/runbooks/sentiment-api\" }\n"
        "  rollback_plan:          { evidence: \"https://wiki.example/rollback\", tested: 2026-11-20 }\n"
        "  security_scan:          { evidence: \"https://ci.example/scan/812\", passed: true }\n"
        "  required: [incident_response_plan, runbook, rollback_plan, security_scan]\n";

/* The same document as JSON. */
static const char product_json[] =
        "{\n"
        " \"apiVersion\": \"readyd/v1\",\n"
        " \"service\": \"sentiment-api\",\n"
        " \"version\": \"2.4.0\",\n"
        " \"environment\": \"staging\",\n"
        " \"timeout\": \"20m\",\n"
        " \"target\": {\n"
        "  \"url\": \"http://127.0.0.1:8080/v1/predict\",\n"
        "  \"method\": \"POST\",\n"
        "  \"headers\": {\n"
        "   \"Content-Type\": \"application/json\"\n"
        "  },\n"
        "  \"body\": \"{\\\"text\\\": \\\"ship it\\\"}\",\n"
        "  \"timeout\": \"2s\"\n"
        " },\n"
        " \"probes\": [\n"
        "  {\n"
        "   \"name\": \"latency\",\n"
        "   \"type\": \"load\",\n"
        "   \"mode\": \"rate\",\n"
        "   \"rate\": 200,\n"
        "   \"connections\": 32,\n"
        "   \"duration\": \"60s\",\n"
        "   \"warmup\": \"5s\"\n"
        "  },\n"
        "  {\n"
        "   \"name\": \"capacity\",\n"
        "   \"type\": \"load\",\n"
        "   \"mode\": \"closed\",\n"
        "   \"connections\": 64,\n"
        "   \"duration\": \"30s\"\n"
        "  },\n"
        "  {\n"
        "   \"name\": \"max-sustainable\",\n"
        "   \"type\": \"capacity\",\n"
        "   \"slo\": \"p95_ms < 100\",\n"
        "   \"max_rate\": 5000\n"
        "  },\n"
        "  {\n"
        "   \"name\": \"exposition\",\n"
        "   \"type\": \"prometheus-scrape\",\n"
        "   \"url\": \"http://127.0.0.1:8080/metrics\",\n"
        "   \"require\": [\n"
        "    \"inference_requests_total\",\n"
        "    \"inference_duration_seconds_bucket\",\n"
        "    \"inference_errors_total\"\n"
        "   ]\n"
        "  },\n"
        "  {\n"
        "   \"name\": \"alert-rules\",\n"
        "   \"type\": \"prometheus-rules\",\n"
        "   \"prometheus\": \"http://127.0.0.1:9090\",\n"
        "   \"require\": [\n"
        "    \"HighLatency\",\n"
        "    \"LowThroughput\",\n"
        "    \"HighErrorRate\",\n"
        "    \"GPUOutOfMemory\"\n"
        "   ]\n"
        "  },\n"
        "  {\n"
        "   \"name\": \"live-errors\",\n"
        "   \"type\": \"prometheus-query\",\n"
        "   \"prometheus\": \"http://127.0.0.1:9090\",\n"
        "   \"query\": \"sum(rate(inference_errors_total[5m])) / sum(rate(inference_requests_total[5m]))\"\n"
        "  },\n"
        "  {\n"
        "   \"name\": \"alert-drill\",\n"
        "   \"type\": \"alert-drill\",\n"
        "   \"prometheus\": \"http://127.0.0.1:9090\",\n"
        "   \"alert\": \"HighErrorRate\",\n"
        "   \"trigger\": {\n"
        "    \"method\": \"POST\",\n"
        "    \"url\": \"http://127.0.0.1:8080/admin/fault?errors=0.5\"\n"
        "   },\n"
        "   \"clear\": {\n"
        "    \"method\": \"POST\",\n"
        "    \"url\": \"http://127.0.0.1:8080/admin/fault?errors=0\"\n"
        "   },\n"
        "   \"within\": \"2m\"\n"
        "  },\n"
        "  {\n"
        "   \"name\": \"alertmanager\",\n"
        "   \"type\": \"http\",\n"
        "   \"url\": \"http://127.0.0.1:9093/-/healthy\",\n"
        "   \"expect_status\": 200\n"
        "  },\n"
        "  {\n"
        "   \"name\": \"tls\",\n"
        "   \"type\": \"tls\",\n"
        "   \"url\": \"https://127.0.0.1:8443/\"\n"
        "  },\n"
        "  {\n"
        "   \"name\": \"authn\",\n"
        "   \"type\": \"auth\"\n"
        "  },\n"
        "  {\n"
        "   \"name\": \"rate-limit\",\n"
        "   \"type\": \"rate-limit\",\n"
        "   \"burst\": 500\n"
        "  },\n"
        "  {\n"
        "   \"name\": \"resources\",\n"
        "   \"type\": \"resources\",\n"
        "   \"pid_file\": \"/run/model.pid\"\n"
        "  },\n"
        "  {\n"
        "   \"name\": \"rollback-drill\",\n"
        "   \"type\": \"rollback-drill\",\n"
        "   \"trigger\": {\n"
        "    \"method\": \"POST\",\n"
        "    \"url\": \"http://127.0.0.1:8080/admin/rollback\"\n"
        "   },\n"
        "   \"version_url\": \"http://127.0.0.1:8080/version\",\n"
        "   \"expect_version\": \"2.3.9\",\n"
        "   \"within\": \"5m\"\n"
        "  }\n"
        " ],\n"
        " \"gates\": [\n"
        "  \"latency.p95_ms < 100\",\n"
        "  \"latency.p99_ms < 250\",\n"
        "  \"latency.error_rate < 0.05\",\n"
        "  \"capacity.throughput_rps >= 100\",\n"
        "  \"max-sustainable.rate >= 500\",\n"
        "  \"live-errors.value < 0.05\",\n"
        "  \"alert-rules.missing == 0\",\n"
        "  \"alert-drill.seconds_to_fire < 120\",\n"
        "  \"tls.version >= 1.3\",\n"
        "  \"tls.cert_days_left >= 14\",\n"
        "  \"latency.p95_ms <= baseline * 1.10\",\n"
        "  {\n"
        "   \"expr\": \"resources.cpu_percent < 70\",\n"
        "   \"advisory\": true\n"
        "  }\n"
        " ],\n"
        " \"checklist\": {\n"
        "  \"incident_response_plan\": {\n"
        "   \"evidence\": \"https://wiki.example/ir/sentiment-api\"\n"
        "  },\n"
        "  \"runbook\": {\n"
        "   \"evidence\": \"https://wiki.example/runbooks/sentiment-api\"\n"
        "  },\n"
        "  \"rollback_plan\": {\n"
        "   \"evidence\": \"https://wiki.example/rollback\",\n"
        "   \"tested\": \"2026-11-20\"\n"
        "  },\n"
        "  \"security_scan\": {\n"
        "   \"evidence\": \"https://ci.example/scan/812\",\n"
        "   \"passed\": true\n"
        "  },\n"
        "  \"required\": [\n"
        "   \"incident_response_plan\",\n"
        "   \"runbook\",\n"
        "   \"rollback_plan\",\n"
        "   \"security_scan\"\n"
        "  ]\n"
        " }\n"
        "}\n";

#define HEAD   "apiVersion: readyd/v1\nservice: svc\nversion: 1.0.0\n"
#define TARGET "target:\n  url: http://127.0.0.1:8080/\n"
#define TARGET_POST                                                                                \
	"target:\n  url: http://127.0.0.1:8080/predict\n  method: POST\n"                          \
	"  headers: {Content-Type: application/json, Authorization: Bearer s3cret}\n"              \
	"  body: '{\"x\": 1}'\n  timeout: 2s\n"
#define PROBES    "probes:\n"
#define HTTP_UP   "  - name: up\n    type: http\n    url: http://127.0.0.1:8080/health\n"
#define HTTP_SPEC HEAD PROBES HTTP_UP
#define JHEAD     "{\"apiVersion\": \"readyd/v1\", \"service\": \"svc\", \"version\": \"1.0.0\", "
#define JHTTP     "\"probes\": [{\"name\": \"up\", \"type\": \"http\", \"url\": \"http://h/\"}]"

static struct spec *parse_ok(const char *text, size_t len, enum spec_format fmt)
{
	struct spec_error err;
	struct spec *s = NULL;
	int r = spec_parse(text, len ? len : strlen(text), fmt, &s, &err);

	ck_assert_msg(r == 0, "expected success, got %d: %s: %s (line %d)", r, err.path,
	              err.message, err.line);
	ck_assert_ptr_nonnull(s);
	return s;
}

/* --- a whole-structure dump, so two parses can be compared field by field --- */

static void put(json_t *o, const char *key, json_t *v)
{
	ck_assert_ptr_nonnull(v);
	ck_assert_int_eq(json_object_set_new(o, key, v), 0);
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *dump_strv(char **v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static json_t *dump_headers(const struct spec_header *h, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_pack("[ss]", h[i].name, h[i].value));
	return a;
}

static json_t *dump_request(const struct spec_request *r)
{
	json_t *o;

	if (!r)
		return json_null();
	o = json_object();
	put(o, "method", str_or_null(r->method));
	put(o, "url", str_or_null(r->url));
	put(o, "headers", dump_headers(r->headers, r->n_headers));
	put(o, "body", str_or_null(r->body));
	put(o, "body_len", json_integer((json_int_t)r->body_len));
	put(o, "timeout_ms", json_integer(r->timeout_ms));
	return o;
}

static void dump_probe_load(json_t *o, const struct spec_probe *p)
{
	put(o, "mode", json_integer(p->mode));
	put(o, "rate", json_real(p->rate));
	put(o, "connections", json_integer(p->connections));
	put(o, "threads", json_integer(p->threads));
	put(o, "duration_ms", json_integer(p->duration_ms));
	put(o, "requests", json_integer(p->requests));
	put(o, "warmup_ms", json_integer(p->warmup_ms));
	put(o, "slo", str_or_null(p->slo));
	put(o, "max_rate", json_real(p->max_rate));
	put(o, "min_rate", json_real(p->min_rate));
	put(o, "required_rate", json_real(p->required_rate));
	put(o, "step_ms", json_integer(p->step_ms));
}

static void dump_probe_http(json_t *o, const struct spec_probe *p)
{
	put(o, "url", str_or_null(p->url));
	put(o, "method", str_or_null(p->method));
	put(o, "headers", dump_headers(p->headers, p->n_headers));
	put(o, "body", str_or_null(p->body));
	put(o, "body_len", json_integer((json_int_t)p->body_len));
	put(o, "expect_status", json_integer(p->expect_status));
	put(o, "expect_body_contains", str_or_null(p->expect_body_contains));
	put(o, "expect_body_regex", str_or_null(p->expect_body_regex));
	put(o, "expect_json", p->expect_json ? json_incref(p->expect_json) : json_null());
	put(o, "insecure", json_boolean(p->insecure));
	put(o, "ca_file", str_or_null(p->ca_file));
	put(o, "min_version", str_or_null(p->min_version));
	put(o, "servername", str_or_null(p->servername));
}

static json_t *dump_labels(const struct spec_label *l, size_t n)
{
	json_t *o = json_object();

	for (size_t i = 0; i < n; i++)
		put(o, l[i].name, json_string(l[i].value));
	return o;
}

static void dump_probe_other(json_t *o, const struct spec_probe *p)
{
	json_t *st = json_array();

	put(o, "prometheus", str_or_null(p->prometheus));
	put(o, "require", dump_strv(p->require, p->n_require));
	put(o, "rule_files", dump_strv(p->rule_files, p->n_rule_files));
	put(o, "can_fire", json_integer(p->can_fire));
	put(o, "matchers", dump_strv(p->matchers, p->n_matchers));
	put(o, "severities", dump_strv(p->severities, p->n_severities));
	put(o, "query", str_or_null(p->query));
	put(o, "range_ms", json_integer(p->range_ms));
	put(o, "function", str_or_null(p->function));
	put(o, "alert", str_or_null(p->alert));
	put(o, "labels", dump_labels(p->labels, p->n_labels));
	put(o, "trigger", dump_request(p->trigger));
	put(o, "clear", dump_request(p->clear));
	put(o, "restore", dump_request(p->restore));
	put(o, "within_ms", json_integer(p->within_ms));
	put(o, "wait_resolve_ms", json_integer(p->wait_resolve_ms));
	put(o, "poll_interval_ms", json_integer(p->poll_interval_ms));
	put(o, "version_url", str_or_null(p->version_url));
	put(o, "expect_version", str_or_null(p->expect_version));
	put(o, "burst", json_integer(p->burst));
	for (size_t i = 0; i < p->n_expect_statuses; i++)
		json_array_append_new(st, json_integer(p->expect_statuses[i]));
	put(o, "expect_statuses", st);
	put(o, "pid", json_integer(p->pid));
	put(o, "pid_file", str_or_null(p->pid_file));
	put(o, "cgroup", str_or_null(p->cgroup));
	put(o, "interval_ms", json_integer(p->interval_ms));
	put(o, "gpu_required", json_boolean(p->gpu_required));
}

static json_t *dump_probe(const struct spec_probe *p)
{
	json_t *o = json_object();

	put(o, "name", json_string(p->name));
	put(o, "type", json_string(probe_type_to_string(p->type)));
	put(o, "timeout_ms", json_integer(p->timeout_ms));
	dump_probe_load(o, p);
	dump_probe_http(o, p);
	dump_probe_other(o, p);
	return o;
}

static json_t *dump_gates(const struct spec *s)
{
	json_t *a = json_array();

	for (size_t i = 0; i < s->n_gates; i++) {
		const struct spec_gate *g = &s->gates[i];

		json_array_append_new(
		        a, json_pack("{s:s, s:s, s:s, s:i, s:i, s:f, s:b, s:b, s:I}", "expr",
		                     g->expr, "probe", g->ex.probe, "metric", g->ex.metric, "op",
		                     (int)g->ex.op, "rhs", (int)g->ex.rhs, "number", g->ex.number,
		                     "advisory", g->advisory, "abort_on_fail", g->abort_on_fail,
		                     "min_samples", (json_int_t)g->min_samples));
	}
	return a;
}

static json_t *dump_checklist(const struct spec_checklist *c)
{
	json_t *items = json_array();

	for (size_t i = 0; i < c->n_items; i++) {
		const struct spec_check_item *it = &c->items[i];

		json_array_append_new(items,
		                      json_pack("{s:s, s:o, s:I, s:I, s:i}", "item", it->item,
		                                "evidence", str_or_null(it->evidence), "tested_ms",
		                                (json_int_t)it->tested_ms, "max_age_ms",
		                                (json_int_t)it->max_age_ms, "passed", it->passed));
	}
	return json_pack("{s:o, s:o}", "items", items, "required",
	                 dump_strv(c->required, c->n_required));
}

static json_t *dump_spec(const struct spec *s)
{
	json_t *o = json_object(), *probes = json_array();

	put(o, "service", json_string(s->service));
	put(o, "version", json_string(s->version));
	put(o, "environment", json_string(s->environment));
	put(o, "timeout_ms", json_integer(s->timeout_ms));
	put(o, "has_target", json_boolean(s->has_target));
	put(o, "target", dump_request(s->has_target ? &s->target : NULL));
	for (size_t i = 0; i < s->n_probes; i++)
		json_array_append_new(probes, dump_probe(&s->probes[i]));
	put(o, "probes", probes);
	put(o, "gates", dump_gates(s));
	put(o, "checklist", dump_checklist(&s->checklist));
	return o;
}

static void assert_same_structure(const struct spec *a, const struct spec *b)
{
	json_t *da = dump_spec(a), *db = dump_spec(b);

	if (!json_equal(da, db)) {
		char *x = json_dumps(da, JSON_INDENT(1) | JSON_SORT_KEYS);
		char *y = json_dumps(db, JSON_INDENT(1) | JSON_SORT_KEYS);

		ck_abort_msg("structures differ:\n%s\n----\n%s", x, y);
	}
	json_decref(da);
	json_decref(db);
}

/* --- the full example --- */

static void check_product_top(const struct spec *s)
{
	ck_assert_str_eq(s->service, "sentiment-api");
	ck_assert_str_eq(s->version, "2.4.0");
	ck_assert_str_eq(s->environment, "staging");
	ck_assert_int_eq(s->timeout_ms, 20 * 60 * 1000);
	ck_assert(s->has_target);
	ck_assert_str_eq(s->target.method, "POST");
	ck_assert_str_eq(s->target.url, "http://127.0.0.1:8080/v1/predict");
	ck_assert_uint_eq(s->target.n_headers, 1);
	ck_assert_str_eq(s->target.headers[0].name, "Content-Type");
	ck_assert_str_eq(s->target.headers[0].value, "application/json");
	ck_assert_str_eq(s->target.body, "{\"text\": \"ship it\"}");
	ck_assert_uint_eq(s->target.body_len, strlen(s->target.body));
	ck_assert_int_eq(s->target.timeout_ms, 2000);
	ck_assert_uint_eq(s->n_probes, 13);
}

static void check_product_load(const struct spec *s)
{
	const struct spec_probe *p = &s->probes[0];

	ck_assert_str_eq(p->name, "latency");
	ck_assert_int_eq(p->type, PROBE_TYPE_LOAD);
	ck_assert_int_eq(p->mode, LOAD_MODE_RATE);
	ck_assert_double_eq(p->rate, 200);
	ck_assert_int_eq(p->connections, 32);
	ck_assert_int_eq(p->threads, 1);
	ck_assert_int_eq(p->duration_ms, 60000);
	ck_assert_int_eq(p->warmup_ms, 5000);
	/* load measures the target: its request is copied into the probe. */
	ck_assert_str_eq(p->url, s->target.url);
	ck_assert_str_eq(p->method, "POST");
	ck_assert_uint_eq(p->n_headers, 1);
	ck_assert_str_eq(p->body, s->target.body);
	p = &s->probes[1];
	ck_assert_int_eq(p->mode, LOAD_MODE_CLOSED);
	ck_assert_int_eq(p->connections, 64);
	ck_assert_int_eq(p->duration_ms, 30000);
	p = &s->probes[2];
	ck_assert_int_eq(p->type, PROBE_TYPE_CAPACITY);
	ck_assert_str_eq(p->slo, "p95_ms < 100");
	ck_assert_double_eq(p->max_rate, 5000);
	ck_assert_double_eq(p->min_rate, 1);
	ck_assert_int_eq(p->step_ms, 10000);
	ck_assert_int_eq(p->connections, 64);
	ck_assert_int_eq(p->threads, 1);
}

static void check_product_observability(const struct spec *s)
{
	const struct spec_probe *p = &s->probes[3];

	ck_assert_int_eq(p->type, PROBE_TYPE_PROM_SCRAPE);
	ck_assert_uint_eq(p->n_require, 3);
	ck_assert_str_eq(p->require[2], "inference_errors_total");
	p = &s->probes[4];
	ck_assert_int_eq(p->type, PROBE_TYPE_PROM_RULES);
	ck_assert_str_eq(p->prometheus, "http://127.0.0.1:9090");
	ck_assert_uint_eq(p->n_require, 4);
	p = &s->probes[5];
	ck_assert_int_eq(p->type, PROBE_TYPE_PROM_QUERY);
	ck_assert_str_eq(p->query, "sum(rate(inference_errors_total[5m])) / "
	                           "sum(rate(inference_requests_total[5m]))");
	ck_assert_int_eq(p->range_ms, 0);
	p = &s->probes[6];
	ck_assert_int_eq(p->type, PROBE_TYPE_ALERT_DRILL);
	ck_assert_str_eq(p->alert, "HighErrorRate");
	ck_assert_str_eq(p->trigger->method, "POST");
	ck_assert_str_eq(p->trigger->url, "http://127.0.0.1:8080/admin/fault?errors=0.5");
	ck_assert_str_eq(p->clear->url, "http://127.0.0.1:8080/admin/fault?errors=0");
	ck_assert_int_eq(p->within_ms, 120000);
	ck_assert_int_eq(p->poll_interval_ms, 1000);
	ck_assert_int_eq(p->wait_resolve_ms, 0);
	p = &s->probes[7];
	ck_assert_int_eq(p->type, PROBE_TYPE_HTTP);
	ck_assert_int_eq(p->expect_status, 200);
	ck_assert_str_eq(p->method, "GET");
}

static void check_product_security(const struct spec *s)
{
	const struct spec_probe *p = &s->probes[8];

	ck_assert_int_eq(p->type, PROBE_TYPE_TLS);
	ck_assert_str_eq(p->url, "https://127.0.0.1:8443/");
	p = &s->probes[9];
	ck_assert_int_eq(p->type, PROBE_TYPE_AUTH);
	ck_assert_str_eq(p->url, s->target.url);
	ck_assert_str_eq(p->method, "POST");
	ck_assert_uint_eq(p->n_expect_statuses, 2);
	ck_assert_int_eq(p->expect_statuses[0], 401);
	ck_assert_int_eq(p->expect_statuses[1], 403);
	p = &s->probes[10];
	ck_assert_int_eq(p->type, PROBE_TYPE_RATE_LIMIT);
	ck_assert_int_eq(p->burst, 500);
	ck_assert_str_eq(p->url, s->target.url);
	p = &s->probes[11];
	ck_assert_int_eq(p->type, PROBE_TYPE_RESOURCES);
	ck_assert_str_eq(p->pid_file, "/run/model.pid");
	ck_assert_int_eq(p->interval_ms, 1000);
	p = &s->probes[12];
	ck_assert_int_eq(p->type, PROBE_TYPE_ROLLBACK_DRILL);
	ck_assert_str_eq(p->trigger->url, "http://127.0.0.1:8080/admin/rollback");
	ck_assert_str_eq(p->version_url, "http://127.0.0.1:8080/version");
	ck_assert_str_eq(p->expect_version, "2.3.9");
	ck_assert_int_eq(p->within_ms, 5 * 60000);
	ck_assert_ptr_null(p->restore);
}

static void check_product_gates(const struct spec *s)
{
	const struct spec_checklist *c = &s->checklist;

	ck_assert_uint_eq(s->n_gates, 12);
	ck_assert_str_eq(s->gates[0].expr, "latency.p95_ms < 100");
	ck_assert_str_eq(s->gates[0].ex.probe, "latency");
	ck_assert_str_eq(s->gates[0].ex.metric, "p95_ms");
	ck_assert_int_eq(s->gates[0].ex.op, GATE_OP_LT);
	ck_assert_int_eq(s->gates[10].ex.rhs, GATE_RHS_BASELINE_MUL);
	ck_assert_double_eq_tol(s->gates[10].ex.number, 1.10, 1e-12);
	ck_assert(!s->gates[10].advisory);
	ck_assert(s->gates[11].advisory);
	ck_assert_str_eq(s->gates[11].ex.probe, "resources");
	ck_assert_uint_eq(c->n_items, 4);
	ck_assert_str_eq(c->items[2].item, "rollback_plan");
	ck_assert_int_eq(c->items[2].tested_ms, 1795132800000LL);
	ck_assert_int_eq(c->items[2].passed, -1);
	ck_assert_int_eq(c->items[3].passed, 1);
	ck_assert_str_eq(c->items[0].evidence, "https://wiki.example/ir/sentiment-api");
	ck_assert_uint_eq(c->n_required, 4);
	ck_assert_str_eq(c->required[3], "security_scan");
}

START_TEST(test_product_example_yaml)
{
	struct spec *s = parse_ok(product_yaml, 0, SPEC_FORMAT_YAML);

	check_product_top(s);
	check_product_load(s);
	check_product_observability(s);
	check_product_security(s);
	check_product_gates(s);
	ck_assert_ptr_eq(spec_find_probe(s, "tls"), &s->probes[8]);
	ck_assert_ptr_null(spec_find_probe(s, "nope"));
	spec_free(s);
}
END_TEST

START_TEST(test_product_example_json_equals_yaml)
{
	struct spec *y = parse_ok(product_yaml, 0, SPEC_FORMAT_YAML);
	struct spec *j = parse_ok(product_json, 0, SPEC_FORMAT_JSON);

	assert_same_structure(y, j);
	ck_assert(json_equal(y->doc, j->doc));
	spec_free(y);
	spec_free(j);
}
END_TEST

/* The redacted JSON form parses back (as JSON) to the same structure. */
START_TEST(test_product_round_trip)
{
	struct spec *y = parse_ok(product_yaml, 0, SPEC_FORMAT_YAML), *again;
	json_t *red = spec_to_json_redacted(y);
	char *text;

	ck_assert_ptr_nonnull(red);
	text = json_dumps(red, JSON_COMPACT);
	ck_assert_ptr_nonnull(text);
	again = parse_ok(text, 0, SPEC_FORMAT_JSON);
	assert_same_structure(y, again);
	free(text);
	json_decref(red);
	spec_free(again);
	spec_free(y);
}
END_TEST

/* The example parses as YAML whether or not it is JSON: JSON is YAML. */
START_TEST(test_json_text_as_yaml)
{
	struct spec *y = parse_ok(product_yaml, 0, SPEC_FORMAT_YAML);
	struct spec *j = parse_ok(product_json, 0, SPEC_FORMAT_YAML);

	assert_same_structure(y, j);
	spec_free(y);
	spec_free(j);
}
END_TEST

/* --- valid specs: defaults and the scalar rules --- */

static void chk_defaults(const struct spec *s)
{
	const struct spec_probe *p = &s->probes[0];

	ck_assert_str_eq(s->environment, "default");
	ck_assert_int_eq(s->timeout_ms, 30 * 60 * 1000);
	ck_assert_int_eq(p->mode, LOAD_MODE_CLOSED);
	ck_assert_int_eq(p->connections, 16);
	ck_assert_int_eq(p->threads, 1);
	ck_assert_int_eq(p->duration_ms, 30000);
	ck_assert_int_eq(p->requests, 0);
	ck_assert_int_eq(p->warmup_ms, 0);
	ck_assert_int_eq(p->timeout_ms, 0);
	ck_assert_str_eq(p->method, "GET");
	ck_assert_str_eq(s->target.method, "GET");
	ck_assert_int_eq(s->target.timeout_ms, 0);
	ck_assert_ptr_null(s->target.body);
	ck_assert_uint_eq(s->n_gates, 0);
}

static void chk_requests_only(const struct spec *s)
{
	ck_assert_int_eq(s->probes[0].duration_ms, 0);
	ck_assert_int_eq(s->probes[0].requests, 5000);
}

static void chk_version_240(const struct spec *s)
{
	ck_assert_str_eq(s->version, "2.40");
	/* doc says what the spec means: the string, not the number 2.4. */
	ck_assert_str_eq(json_string_value(json_object_get(s->doc, "version")), "2.40");
}

static void chk_version_3(const struct spec *s)
{
	ck_assert_str_eq(s->version, "3");
}

static void chk_version_digits(const struct spec *s)
{
	ck_assert_str_eq(s->version, "20261126123456789012345");
}

static void chk_version_plus(const struct spec *s)
{
	ck_assert_str_eq(s->version, "+1.0e3");
}

static void chk_prom_alerts(const struct spec *s)
{
	const struct spec_probe *p = &s->probes[0];

	ck_assert_uint_eq(p->n_matchers, 2);
	ck_assert_str_eq(p->matchers[1], "team=~'shop-.*'");
	ck_assert_uint_eq(p->n_severities, 1);
	ck_assert_str_eq(p->severities[0], "page");
	ck_assert_int_eq(s->probes[1].can_fire, 0);
	ck_assert_int_eq(s->probes[2].can_fire, -1); /* absent: analyse */
}

static void chk_yaml11_strings(const struct spec *s)
{
	ck_assert_str_eq(s->version, "012");
	ck_assert_str_eq(s->environment, "yes");
	ck_assert_str_eq(s->probes[0].require[0], "0x1F");
	ck_assert_str_eq(s->probes[0].require[1], "1_000");
	ck_assert_str_eq(s->probes[0].require[2], "on");
	ck_assert_str_eq(s->probes[0].require[3], "2026-11-20");
}

static void chk_min_version(const struct spec *s)
{
	ck_assert_str_eq(s->probes[0].min_version, "1.3");
	ck_assert_str_eq(s->probes[0].servername, "example.com");
}

static void chk_header_number(const struct spec *s)
{
	ck_assert_uint_eq(s->target.n_headers, 3);
	/* declaration order is kept */
	ck_assert_str_eq(s->target.headers[0].name, "Z-First");
	ck_assert_str_eq(s->target.headers[1].name, "X-Count");
	ck_assert_str_eq(s->target.headers[1].value, "05.50");
	ck_assert_str_eq(s->target.headers[2].name, "A-Last");
	ck_assert_str_eq(s->target.headers[2].value, "");
}

static void chk_tagged_str(const struct spec *s)
{
	ck_assert_str_eq(s->version, "1.10");
	ck_assert_str_eq(s->service, "svc");
	ck_assert_int_eq(s->probes[0].expect_status, 204);
}

static void chk_method_upper(const struct spec *s)
{
	ck_assert_str_eq(s->target.method, "POST");
	ck_assert_str_eq(s->probes[0].method, "PATCH");
}

static void chk_auth_inherits(const struct spec *s)
{
	const struct spec_probe *a = &s->probes[0], *b = &s->probes[1];

	ck_assert_str_eq(a->url, "http://127.0.0.1:8080/predict");
	ck_assert_str_eq(a->method, "POST");
	ck_assert_uint_eq(a->n_headers, 2);
	ck_assert_str_eq(a->body, "{\"x\": 1}");
	ck_assert_uint_eq(a->body_len, 8);
	/* a url of its own: nothing inherited, method GET */
	ck_assert_str_eq(b->url, "http://127.0.0.1:8080/health");
	ck_assert_str_eq(b->method, "GET");
	ck_assert_uint_eq(b->n_headers, 0);
	ck_assert_ptr_null(b->body);
	ck_assert_uint_eq(b->n_expect_statuses, 1);
	ck_assert_int_eq(b->expect_statuses[0], 404);
}

static void chk_load_override(const struct spec *s)
{
	const struct spec_probe *a = &s->probes[0], *b = &s->probes[1];

	ck_assert_str_eq(a->url, "http://127.0.0.1:8080/predict");
	ck_assert_str_eq(a->method, "POST");
	ck_assert_str_eq(a->body, "{\"x\": 2}");
	ck_assert_uint_eq(a->n_headers, 2);
	/* an explicit empty header map replaces the target's */
	ck_assert_uint_eq(b->n_headers, 0);
	ck_assert_str_eq(b->body, "{\"x\": 1}");
}

static void chk_null_is_absent(const struct spec *s)
{
	ck_assert_str_eq(s->environment, "default");
	ck_assert_int_eq(s->probes[0].expect_status, 200);
}

static void chk_bools(const struct spec *s)
{
	ck_assert(s->probes[0].insecure);
	ck_assert(!s->probes[1].insecure);
	ck_assert(s->probes[2].gpu_required);
}

static void chk_numbers(const struct spec *s)
{
	ck_assert_double_eq(s->probes[0].rate, 1000);
	ck_assert_double_eq(s->probes[1].rate, 0.5);
}

static void chk_checklist_only(const struct spec *s)
{
	const struct spec_check_item *it = &s->checklist.items[0];

	ck_assert_uint_eq(s->n_probes, 0);
	ck_assert(!s->has_target);
	ck_assert_str_eq(it->item, "runbook");
	ck_assert_int_eq(it->max_age_ms, 90LL * 86400 * 1000);
	ck_assert_int_eq(it->tested_ms, 1795132800000LL + 3600 * 1000);
	ck_assert_int_eq(it->passed, 0);
	ck_assert_uint_eq(s->checklist.n_required, 0);
}

static void chk_query_range(const struct spec *s)
{
	ck_assert_int_eq(s->probes[0].range_ms, 300000);
	ck_assert_str_eq(s->probes[0].function, "max");
	ck_assert_uint_eq(s->probes[0].n_rule_files, 0);
}

static void chk_resources(const struct spec *s)
{
	ck_assert_str_eq(s->probes[0].cgroup, "/system.slice/model.service");
	ck_assert_int_eq(s->probes[1].pid, 4242);
	ck_assert_int_eq(s->probes[1].interval_ms, 250);
}

static void chk_expect_json(const struct spec *s)
{
	const json_t *j = s->probes[0].expect_json;

	ck_assert_ptr_nonnull(j);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "$.status")), 1);
	ck_assert(json_is_object(json_object_get(j, "$.meta")));
	ck_assert_str_eq(s->probes[0].expect_body_regex, "^ok( [0-9]+)?$");
}

static void chk_gate_object(const struct spec *s)
{
	const struct spec_gate *g = &s->gates[0];

	ck_assert(g->abort_on_fail);
	ck_assert_int_eq(g->min_samples, 500);
	ck_assert_int_eq(g->ex.rhs, GATE_RHS_BASELINE_ADD);
	ck_assert_double_eq(g->ex.number, -5);
}

static void chk_drills(const struct spec *s)
{
	const struct spec_probe *a = &s->probes[0], *r = &s->probes[1];

	ck_assert_int_eq(a->wait_resolve_ms, 60000);
	ck_assert_int_eq(a->poll_interval_ms, 500);
	ck_assert_ptr_null(a->clear);
	ck_assert_str_eq(a->trigger->method, "GET");
	ck_assert_int_eq(a->trigger->timeout_ms, 1500);
	ck_assert_uint_eq(a->n_labels, 2);
	ck_assert_str_eq(a->labels[0].name, "instance");
	ck_assert_str_eq(a->labels[0].value, "10.0.0.1:9090");
	ck_assert_str_eq(a->labels[1].name, "shard");
	ck_assert_str_eq(a->labels[1].value, "7"); /* a number, as written */
	ck_assert_uint_eq(r->n_labels, 0);
	ck_assert_str_eq(r->restore->url, "http://h/restore");
	ck_assert_str_eq(r->expect_version, "2.40");
}

static void chk_capacity(const struct spec *s)
{
	const struct spec_probe *p = &s->probes[0];

	ck_assert_double_eq(p->min_rate, 50);
	ck_assert_double_eq(p->required_rate, 400);
	ck_assert_int_eq(p->step_ms, 5000);
	ck_assert_str_eq(p->slo, "p99_ms < 250 and error_rate < 0.01");
}

static void chk_load_tls(const struct spec *s)
{
	const struct spec_probe *l = &s->probes[0], *c = &s->probes[1];

	ck_assert(l->insecure);
	ck_assert_ptr_null(l->ca_file);
	ck_assert(!c->insecure);
	ck_assert_str_eq(c->ca_file, "/etc/ca.pem");
	ck_assert_int_eq(c->warmup_ms, 500);
}

static void chk_tls_target(const struct spec *s)
{
	ck_assert_str_eq(s->probes[0].url, "https://[::1]:8443/x");
	ck_assert_ptr_null(s->probes[0].method);
}

struct valid_case {
	const char *name;
	enum spec_format fmt;
	const char *text;
	void (*check)(const struct spec *s);
};

static const struct valid_case valid_cases[] = {
        {"defaults", SPEC_FORMAT_YAML,
         HEAD TARGET PROBES "  - {name: l, type: load, mode: closed}\n", chk_defaults},
        {"requests instead of duration", SPEC_FORMAT_YAML,
         HEAD TARGET PROBES "  - {name: l, type: load, mode: closed, requests: 5000, warmup: 1s}\n",
         chk_requests_only},
        {"plain 2.40 keeps its text", SPEC_FORMAT_YAML,
         "apiVersion: readyd/v1\nservice: svc\nversion: 2.40\n" PROBES HTTP_UP, chk_version_240},
        {"YAML integer version", SPEC_FORMAT_YAML,
         "apiVersion: readyd/v1\nservice: svc\nversion: 3\n" PROBES HTTP_UP, chk_version_3},
        {"JSON integer version", SPEC_FORMAT_JSON,
         "{\"apiVersion\": \"readyd/v1\", \"service\": \"svc\", \"version\": 3, " JHTTP "}",
         chk_version_3},
        {"digits past int64 keep text", SPEC_FORMAT_YAML,
         "apiVersion: readyd/v1\nservice: svc\nversion: 20261126123456789012345\n" PROBES HTTP_UP,
         chk_version_digits},
        {"signed exponent keeps text", SPEC_FORMAT_YAML,
         "apiVersion: readyd/v1\nservice: svc\nversion: +1.0e3\n" PROBES HTTP_UP, chk_version_plus},
        {"YAML 1.1 implicit types stay strings", SPEC_FORMAT_YAML,
         "apiVersion: readyd/v1\nservice: svc\nversion: 012\nenvironment: yes\n" PROBES
         "  - name: m\n    type: prometheus-scrape\n    url: http://h/metrics\n"
         "    require: [0x1F, 1_000, on, 2026-11-20]\n",
         chk_yaml11_strings},
        {"tls min_version 1.3", SPEC_FORMAT_YAML,
         HEAD PROBES "  - {name: t, type: tls, url: 'https://h/', min_version: 1.3, "
                     "servername: example.com}\n",
         chk_min_version},
        {"header values: numbers keep text, order kept", SPEC_FORMAT_YAML,
         HEAD "target:\n  url: http://h/\n  headers:\n    Z-First: a\n    X-Count: 05.50\n"
              "    A-Last: ''\n" PROBES HTTP_UP,
         chk_header_number},
        {"standard tags", SPEC_FORMAT_YAML,
         "apiVersion: readyd/v1\nservice: !!str svc\nversion: !!str 1.10\n" PROBES
         "  - {name: up, type: http, url: 'http://h/', expect_status: !!int 204}\n",
         chk_tagged_str},
        {"method upper-cased", SPEC_FORMAT_YAML,
         HEAD "target: {url: 'http://h/', method: post}\n" PROBES
              "  - {name: up, type: http, url: 'http://h/', method: patch}\n",
         chk_method_upper},
        {"auth/rate-limit inherit the target", SPEC_FORMAT_YAML,
         HEAD TARGET_POST PROBES "  - {name: a, type: auth}\n"
                                 "  - {name: b, type: auth, url: 'http://127.0.0.1:8080/health', "
                                 "expect_statuses: [404]}\n",
         chk_auth_inherits},
        {"load request overrides", SPEC_FORMAT_YAML,
         HEAD TARGET_POST PROBES
         "  - {name: a, type: load, mode: closed, request: {body: '{\"x\": 2}'}}\n"
         "  - {name: b, type: load, mode: closed, request: {headers: {}}}\n",
         chk_load_override},
        {"null and empty mean absent", SPEC_FORMAT_YAML,
         HEAD "environment:\ntimeout: ~\n" PROBES
              "  - {name: up, type: http, url: 'http://h/', expect_status: null}\n",
         chk_null_is_absent},
        {"booleans", SPEC_FORMAT_YAML,
         HEAD PROBES "  - {name: a, type: http, url: 'http://h/', insecure: TRUE}\n"
                     "  - {name: b, type: http, url: 'http://h/', insecure: False}\n"
                     "  - {name: c, type: resources, pid: 1, gpu_required: true}\n",
         chk_bools},
        {"floats: 1e3 and .5", SPEC_FORMAT_YAML,
         HEAD TARGET PROBES "  - {name: a, type: load, mode: rate, rate: 1e3}\n"
                            "  - {name: b, type: load, mode: rate, rate: .5}\n",
         chk_numbers},
        {"checklist only", SPEC_FORMAT_YAML,
         HEAD "checklist:\n  runbook:\n    evidence: https://wiki/rb\n"
              "    tested: 2026-11-20T01:00:00Z\n    max_age: 90d\n    passed: false\n",
         chk_checklist_only},
        {"range query", SPEC_FORMAT_YAML,
         HEAD PROBES "  - name: q\n    type: prometheus-query\n    prometheus: http://p:9090\n"
                     "    query: 'up == 1'\n    range: 5m\n    function: max\n",
         chk_query_range},
        {"resources by cgroup and pid", SPEC_FORMAT_YAML,
         HEAD PROBES "  - {name: a, type: resources, cgroup: /system.slice/model.service}\n"
                     "  - {name: b, type: resources, pid: 4242, interval: 250ms}\n",
         chk_resources},
        {"http expectations", SPEC_FORMAT_YAML,
         HEAD PROBES "  - name: up\n    type: http\n    url: http://h/\n"
                     "    expect_body_regex: '^ok( [0-9]+)?$'\n"
                     "    expect_json: {'$.status': 1, '$.meta': {a: [1, 2]}}\n",
         chk_expect_json},
        {"gate object", SPEC_FORMAT_YAML,
         HEAD TARGET PROBES "  - {name: l, type: load, mode: closed}\n"
                            "gates:\n  - expr: l.p99_ms < baseline - 5\n    abort_on_fail: true\n"
                            "    min_samples: 500\n",
         chk_gate_object},
        {"drills", SPEC_FORMAT_YAML,
         HEAD PROBES "  - name: a\n    type: alert-drill\n    prometheus: http://p/\n"
                     "    alert: A\n    trigger: {url: 'http://h/t', timeout: 1.5s}\n"
                     "    wait_resolve: 1m\n    poll_interval: 500ms\n"
                     "    labels: {instance: '10.0.0.1:9090', shard: 7}\n"
                     "  - name: r\n    type: rollback-drill\n    trigger: {url: 'http://h/r'}\n"
                     "    restore: {url: 'http://h/restore'}\n    version_url: http://h/v\n"
                     "    expect_version: 2.40\n    within: 1m\n",
         chk_drills},
        {"capacity bounds", SPEC_FORMAT_YAML,
         HEAD TARGET PROBES "  - {name: c, type: capacity, slo: 'p99_ms < 250 and error_rate < "
                            "0.01', max_rate: 500, min_rate: 50, required_rate: 400, step: 5s}\n",
         chk_capacity},
        {"load and capacity TLS options, capacity warmup", SPEC_FORMAT_YAML,
         HEAD "target: {url: 'https://127.0.0.1:8443/x'}\n" PROBES
              "  - {name: l, type: load, mode: closed, insecure: true}\n"
              "  - {name: c, type: capacity, slo: 'p99_ms < 250', max_rate: 500, step: 2s, "
              "warmup: 500ms, ca_file: /etc/ca.pem}\n",
         chk_load_tls},
        {"tls from an https target", SPEC_FORMAT_YAML,
         HEAD "target: {url: 'https://[::1]:8443/x'}\n" PROBES "  - {name: t, type: tls}\n",
         chk_tls_target},
        {"JSON with a byte order mark", SPEC_FORMAT_JSON, "\xef\xbb\xbf" JHEAD JHTTP "}", NULL},
        {"YAML comments, document markers", SPEC_FORMAT_YAML,
         "# readiness\n---\n" HTTP_SPEC "...\n", NULL},
        {"resume: requeue", SPEC_FORMAT_YAML, HTTP_SPEC "resume: requeue\n", NULL},
        {"resume: interrupt", SPEC_FORMAT_YAML, HTTP_SPEC "resume: interrupt\n", NULL},
        {"prometheus-alerts and can_fire", SPEC_FORMAT_YAML,
         HEAD PROBES "  - {name: a, type: prometheus-alerts, prometheus: 'http://p/', "
                     "matchers: ['service=\"x\"', \"team=~'shop-.*'\"], severities: [page]}\n"
                     "  - {name: r, type: prometheus-rules, prometheus: 'http://p/', "
                     "can_fire: false}\n"
                     "  - {name: r2, type: prometheus-rules, prometheus: 'http://p/'}\n",
         chk_prom_alerts},
};

START_TEST(test_valid)
{
	const struct valid_case *c = &valid_cases[_i];
	struct spec *s = parse_ok(c->text, 0, c->fmt);

	if (c->check)
		c->check(s);
	spec_free(s);
}
END_TEST

/* --- invalid specs: each fails with a path and a message that says why --- */

struct invalid_case {
	const char *name;
	enum spec_format fmt;
	const char *text;
	const char *path;    /* expected spec_error.path */
	const char *message; /* a substring of spec_error.message */
	int line;            /* expected line, 0: not checked */
	size_t len;          /* 0: strlen(text) */
};

#define R60             "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz01234567"
#define R600            R60 R60 R60 R60 R60 R60 R60 R60 R60 R60
#define Y               SPEC_FORMAT_YAML
#define J               SPEC_FORMAT_JSON
#define LOAD(extra)     HEAD TARGET PROBES "  - {name: l, type: load, mode: closed" extra "}\n"
#define RATE(extra)     HEAD TARGET PROBES "  - {name: l, type: load, mode: rate, rate: 10" extra "}\n"
#define ONE(probe)      HEAD TARGET PROBES "  - {name: p, " probe "}\n"
#define NOTARGET(probe) HEAD PROBES "  - {name: p, " probe "}\n"
#define GATES(g)                                                                                   \
	HEAD TARGET PROBES "  - {name: latency, type: load, mode: closed}\n"                       \
	                   "  - {name: up, type: http, url: 'http://h/'}\ngates:\n" g

static const struct invalid_case invalid_cases[] = {
        /* document level */
        {"empty", Y, "", "", "empty"},
        {"only a comment", Y, "# nothing\n", "", "document is empty"},
        {"not a mapping", Y, "- a\n- b\n", "", "must be a mapping", 1},
        {"JSON array", J, "[1, 2]", "", "must be a mapping"},
        {"YAML syntax error", Y, HEAD "probes: [a, b\n", "", "YAML syntax error", 5},
        {"JSON syntax error", J, "{\n\"service\": \"x\",\n}", "", "JSON syntax error", 3},
        {"NUL byte", Y, HEAD "\0x: 1\n", "", "NUL byte", 4, sizeof(HEAD "\0x: 1\n") - 1},
        {"NUL byte JSON", J, "{\"a\": \"\0\"}", "", "NUL byte", 1, 10},
        {"invalid UTF-8", Y, HEAD "environment: caf\xe9\n", "", "not valid UTF-8", 4},
        {"overlong UTF-8", J, "{\"service\": \"\xc0\xaf\"}", "", "not valid UTF-8", 1},
        {"UTF-8 surrogate", Y, "service: \xed\xa0\x80\n", "", "not valid UTF-8", 1},
        {"NUL escape in YAML string", Y, HEAD "environment: \"a\\0b\"\n", "environment", "NUL", 4},
        {"NUL escape in JSON string", J, JHEAD "\"environment\": \"a\\u0000b\"}", "",
         "JSON syntax error"},
        {"several documents", Y, HTTP_SPEC "---\nservice: other\n", "",
         "more than one YAML document", 8},
        {"anchor", Y, HEAD "environment: &e staging\n" PROBES HTTP_UP, "environment",
         "anchors and aliases are not supported", 4},
        {"alias", Y, "apiVersion: readyd/v1\nservice: &s svc\nversion: *s\n", "service",
         "anchors and aliases"},
        {"anchored mapping", Y, HEAD "target: &t {url: 'http://h/'}\n", "target",
         "anchors and aliases"},
        {"merge key", Y, HEAD TARGET PROBES "  - name: a\n    <<: {type: http}\n",
         "probes[0][\"<<\"]", "merge keys", 8},
        {"custom tag", Y, HEAD "environment: !env staging\n", "environment", "tag '!env'"},
        {"binary tag", Y, HEAD "environment: !!binary aGk=\n", "environment", "not supported"},
        {"tagged mapping", Y, HEAD "target: !!map {url: 'http://h/'}\n", "target", "not supported"},
        {"bad !!int", Y, HEAD "timeout: !!int 5m\n", "timeout", "not a valid !!int"},
        {"non-string key", Y, HEAD "1: x\n", "1", "mapping key '1' is not a string", 4},
        {"null key", Y, HEAD "~: x\n", "[\"~\"]", "is not a string"},
        {"sequence key", Y, HEAD "? [a, b]\n: c\n", "", "mapping keys must be strings"},
        {"duplicate key", Y, HEAD "service: other\n" PROBES HTTP_UP, "service", "duplicate key", 4},
        {"duplicate nested key", Y, HEAD PROBES HTTP_UP "    url: http://h/\n", "probes[0].url",
         "duplicate key", 8},
        {"duplicate key JSON", J, "{\"service\": \"a\",\n \"service\": \"b\"}", "",
         "duplicate object key", 2},
        {"resume unknown", Y, HTTP_SPEC "resume: retry\n", "resume",
         "must be one of: interrupt, requeue", 8},
        {"top-level unknown key", Y, HTTP_SPEC "servce: x\n", "servce",
         "unknown field (did you mean 'service'?)", 8},
        {"unknown key, no suggestion", Y, HTTP_SPEC "frobnicate: 1\n", "frobnicate",
         "unknown field"},
        {"apiVersion missing", Y, "service: svc\nversion: 1\n" PROBES HTTP_UP, "apiVersion",
         "missing"},
        {"apiVersion wrong", Y, "apiVersion: readyd/v2\nservice: svc\nversion: 1\n", "apiVersion",
         "must be one of: readyd/v1", 1},
        {"service missing", Y, "apiVersion: readyd/v1\nversion: 1\n", "service", "missing"},
        {"version missing", J, "{\"apiVersion\": \"readyd/v1\", \"service\": \"s\"}", "version",
         "missing"},
        {"service charset", Y, "apiVersion: readyd/v1\nservice: my service\nversion: 1\n",
         "service", "must match [A-Za-z0-9._-]{1,128}", 2},
        {"service empty", Y, "apiVersion: readyd/v1\nservice: ''\nversion: 1\n", "service",
         "must not be empty"},
        {"version control character", Y, "apiVersion: readyd/v1\nservice: s\nversion: \"1.0\\t\"\n",
         "version", "control characters", 3},
        {"version control character JSON", J,
         "{\"apiVersion\": \"readyd/v1\", \"service\": \"s\", \"version\": \"1\\n0\"}", "version",
         "control characters"},
        {"version as JSON real", J,
         "{\"apiVersion\": \"readyd/v1\", \"service\": \"s\", \"version\": 2.40}", "version",
         "quote it"},
        {"version as boolean", Y, "apiVersion: readyd/v1\nservice: s\nversion: true\n", "version",
         "must be a string", 3},
        {"environment charset", Y, HEAD "environment: 'prod/eu'\n", "environment", "must match"},
        {"nothing to check", Y, HEAD, "", "nothing to check"},
        {"run timeout too short", Y, HTTP_SPEC "timeout: 10ms\n", "timeout",
         "must be a duration from 1s to 1d"},
        {"run timeout too long", Y, HTTP_SPEC "timeout: 25h\n", "timeout", "from 1s to 1d"},
        {"run timeout not a duration", Y, HTTP_SPEC "timeout: 30\n", "timeout",
         "must be a duration such as '30s'"},
        {"run timeout bad unit", Y, HTTP_SPEC "timeout: 30x\n", "timeout",
         "'30x' is not a duration"},

        /* target and requests */
        {"target not a mapping", Y, HEAD "target: http://h/\n", "target", "must be a mapping"},
        {"target url missing", Y, HEAD "target: {method: GET}\n", "target.url", "missing"},
        {"bad URL scheme", Y, HEAD "target: {url: 'ftp://h/'}\n", "target.url",
         "must be an http:// or https:// URL"},
        {"URL without host", Y, HEAD "target: {url: 'http:///x'}\n", "target.url", "with a host"},
        {"URL with bad port", Y, HEAD "target: {url: 'http://h:99999/'}\n", "target.url",
         "valid port"},
        {"URL with space", Y, HEAD "target: {url: 'http://h/a b'}\n", "target.url", "URL"},
        {"method not a token", Y, HEAD "target: {url: 'http://h/', method: 'GE T'}\n",
         "target.method", "HTTP method"},
        {"header injection", Y,
         HEAD "target:\n  url: http://h/\n  headers: {X-Foo: \"a\\r\\nX-Evil: 1\"}\n",
         "target.headers.X-Foo", "control characters (CR/LF)", 6},
        {"header injection JSON", J,
         JHEAD "\"target\": {\"url\": \"http://h/\", \"headers\": {\"X-A\": \"a\\nb\"}}}",
         "target.headers.X-A", "CR/LF"},
        {"header name not a token", Y,
         HEAD "target:\n  url: http://h/\n  headers: {'Bad Name': x}\n",
         "target.headers[\"Bad Name\"]", "HTTP token"},
        {"header name case duplicate", Y,
         HEAD "target:\n  url: http://h/\n  headers: {Accept: a, accept: b}\n",
         "target.headers.accept", "duplicate header"},
        {"framing header Content-Length", Y,
         HEAD "target:\n  url: http://h/\n  headers: {Content-Length: '0'}\n",
         "target.headers.Content-Length", "readyd sets this header itself"},
        {"framing header transfer-encoding", Y,
         HEAD "target:\n  url: http://h/\n  headers: {transfer-encoding: chunked}\n",
         "target.headers.transfer-encoding", "readyd sets this header itself"},
        {"framing header Host in a probe", Y,
         ONE("type: http, url: 'http://h/', headers: {HOST: evil.example}"),
         "probes[0].headers.HOST", "readyd sets this header itself"},
        {"framing header Connection in a hook", Y,
         HEAD TARGET PROBES "  - {name: p, type: rollback-drill, version_url: 'http://h/v', "
                            "expect_version: '1', within: 1s, trigger: {url: 'http://h/t', "
                            "headers: {Connection: close}}}\n",
         "probes[0].trigger.headers.Connection", "readyd sets this header itself"},
        {"framing header in a load request", Y,
         LOAD(", request: {headers: {Transfer-Encoding: chunked}}"),
         "probes[0].request.headers.Transfer-Encoding", "readyd sets this header itself"},
        {"framing header JSON", J,
         JHEAD "\"target\": {\"url\": \"http://h/\", \"headers\": {\"content-length\": "
               "\"5\"}}}",
         "target.headers.content-length", "readyd sets this header itself"},
        {"header value NUL JSON", J,
         JHEAD "\"target\": {\"url\": \"http://h/\", \"headers\": {\"X-A\": \"a\\u0000b\"}}}", "",
         "NUL"},
        {"headers not a mapping", Y, HEAD "target: {url: 'http://h/', headers: [a]}\n",
         "target.headers", "must be a mapping"},
        {"header value a list", Y, HEAD "target: {url: 'http://h/', headers: {A: [1]}}\n",
         "target.headers.A", "must be a string"},
        {"request timeout zero", Y, HEAD "target: {url: 'http://h/', timeout: 0s}\n",
         "target.timeout", "from 1ms to 1d"},

        /* probes */
        {"probes not a list", Y, HEAD "probes: {a: 1}\n", "probes", "must be a list"},
        {"probe not a mapping", Y, HEAD "probes: [load]\n", "probes[0]", "must be a mapping"},
        {"unknown key in probe", Y,
         HEAD TARGET PROBES "  - name: a\n    type: load\n    mode: rate\n    rtae: 5\n",
         "probes[0].rtae", "unknown field (did you mean 'rate'?)", 10},
        {"field of another type", Y, ONE("type: http, url: 'http://h/', burst: 5"),
         "probes[0].burst", "not a field of 'http' probes"},
        {"probe type missing", Y, ONE("url: 'http://h/'"), "probes[0].type", "missing"},
        {"unknown probe type", Y, ONE("type: lod"), "probes[0].type",
         "unknown probe type 'lod' (did you mean 'load'?)"},
        {"unknown probe type, list", Y, ONE("type: frobnicate"), "probes[0].type",
         "(one of: load, capacity, http"},
        {"probe type not a string", Y, ONE("type: [load]"), "probes[0].type", "must be a string"},
        {"probe name missing", Y, HEAD PROBES "  - {type: http, url: 'http://h/'}\n",
         "probes[0].name", "missing (required for 'http' probes)"},
        {"probe key typo", Y, ONE("type: http, url: 'http://h/', name2: x"), "probes[0].name2",
         "unknown field (did you mean 'name'?)"},
        {"probe name charset", Y,
         HEAD PROBES "  - {name: 'bad name', type: http, url: 'http://h/'}\n", "probes[0].name",
         "must match [A-Za-z0-9_-]{1,64}"},
        {"probe name too long", Y,
         HEAD PROBES
         "  - {name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, "
         "type: http, url: 'http://h/'}\n",
         "probes[0].name", "{1,64}"},
        {"duplicate probe names", Y, HEAD PROBES HTTP_UP HTTP_UP, "probes[1].name",
         "duplicate probe name 'up' (also probes[0])", 8},
        {"probe timeout over run timeout", Y, ONE("type: http, url: 'http://h/', timeout: 31m"),
         "probes[0].timeout", "longer than the run's timeout (30m)"},

        /* load */
        {"load mode missing", Y, ONE("type: load"), "probes[0].mode",
         "missing (required for 'load' probes)"},
        {"load mode bad", Y, ONE("type: load, mode: open"), "probes[0].mode",
         "must be one of: closed, rate"},
        {"rate mode without rate", Y, ONE("type: load, mode: rate"), "probes[0].rate",
         "required when mode is rate"},
        {"closed mode with rate", Y, LOAD(", rate: 5"), "probes[0].rate",
         "only applies to mode: rate"},
        {"rate zero", Y, ONE("type: load, mode: rate, rate: 0"), "probes[0].rate",
         "greater than 0 and at most 1e+06"},
        {"rate huge", Y, ONE("type: load, mode: rate, rate: 2e6"), "probes[0].rate",
         "at most 1e+06"},
        {"rate a string", Y, ONE("type: load, mode: rate, rate: fast"), "probes[0].rate",
         "must be a number"},
        {"rate .nan", Y, ONE("type: load, mode: rate, rate: .nan"), "probes[0].rate",
         "must be a number"},
        {"rate .inf", Y, ONE("type: load, mode: rate, rate: .inf"), "probes[0].rate",
         "must be a number"},
        {"rate !!float .inf", Y, ONE("type: load, mode: rate, rate: !!float .inf"),
         "probes[0].rate", "only finite decimal numbers"},
        {"rate 1e999", Y, ONE("type: load, mode: rate, rate: 1e999"), "probes[0].rate",
         "out of range"},
        {"rate NaN JSON", J, JHEAD "\"probes\": [{\"name\": \"l\", \"rate\": NaN}]}", "",
         "JSON syntax error"},
        {"rate Infinity JSON", J, JHEAD "\"probes\": [{\"name\": \"l\", \"rate\": Infinity}]}", "",
         "JSON syntax error"},
        {"rate 1e999 JSON", J, JHEAD "\"probes\": [{\"name\": \"l\", \"rate\": 1e999}]}", "",
         "JSON syntax error"},
        {"connections wrong type", Y, LOAD(", connections: many"), "probes[0].connections",
         "must be an integer from 1 to 10000"},
        {"connections zero", Y, LOAD(", connections: 0"), "probes[0].connections",
         "must be an integer from 1 to 10000"},
        {"connections negative", Y, LOAD(", connections: -5"), "probes[0].connections",
         "from 1 to 10000"},
        {"connections too many", Y, LOAD(", connections: 10001"), "probes[0].connections",
         "from 1 to 10000"},
        {"connections fractional", Y, LOAD(", connections: 16.5"), "probes[0].connections",
         "must be an integer"},
        {"connections quoted", J,
         JHEAD "\"target\": {\"url\": \"http://h/\"}, \"probes\": [{\"name\": \"l\", \"type\": "
               "\"load\", \"mode\": \"closed\", \"connections\": \"16\"}]}",
         "probes[0].connections", "must be an integer"},
        {"integer overflow YAML", Y, LOAD(", requests: 99999999999999999999"), "probes[0].requests",
         "must be an integer from 1 to 1000000000"},
        {"integer overflow JSON", J,
         JHEAD "\"probes\": [{\"name\": \"l\", \"requests\": 99999999999999999999}]}", "",
         "JSON syntax error"},
        {"threads over max", Y, LOAD(", threads: 65"), "probes[0].threads", "from 1 to 64"},
        {"threads over connections", Y, LOAD(", connections: 2, threads: 4"), "probes[0].threads",
         "must not exceed connections (2)"},
        {"duration and requests", Y, LOAD(", duration: 10s, requests: 100"), "probes[0].requests",
         "not both"},
        {"bad duration", Y, LOAD(", duration: 10 s"), "probes[0].duration", "not a duration"},
        {"negative duration", Y, LOAD(", warmup: -1s"), "probes[0].warmup", "not a duration"},
        {"duration too long", Y, LOAD(", duration: 25h"), "probes[0].duration", "from 1ms to 1d"},
        {"warmup not shorter", Y, LOAD(", duration: 10s, warmup: 10s"), "probes[0].warmup",
         "must be shorter than duration (10s)"},
        {"warmup default duration", Y, LOAD(", warmup: 1m"), "probes[0].warmup",
         "shorter than duration (30s)"},
        {"load longer than run", Y,
         HEAD TARGET "timeout: 1m\n" PROBES
                     "  - {name: l, type: load, mode: closed, duration: 50s, warmup: 20s}\n",
         "probes[0].duration", "longer than the run's timeout (1m)"},
        {"load without target", Y, NOTARGET("type: load, mode: closed"), "probes[0]",
         "'load' probes need the spec's target"},
        {"load target with user-info", Y,
         HEAD "target: {url: 'http://u:pw@h/'}\n" PROBES
              "  - {name: l, type: load, mode: closed}\n",
         "target.url", "do not send credentials from the URL"},
        {"capacity request url with user-info", Y,
         HEAD TARGET PROBES "  - {name: c, type: capacity, slo: 'p95_ms < 100', max_rate: 10, "
                            "request: {url: 'http://tok@h/'}}\n",
         "probes[0].request.url", "Authorization header"},
        {"load request not a mapping", Y, LOAD(", request: x"), "probes[0].request",
         "must be a mapping"},
        {"load request unknown key", Y, LOAD(", request: {timeout: 1s}"),
         "probes[0].request.timeout", "unknown field"},

        /* capacity */
        {"capacity slo missing", Y, ONE("type: capacity, max_rate: 10"), "probes[0].slo",
         "missing (required for 'capacity' probes)"},
        {"capacity max_rate missing", Y, ONE("type: capacity, slo: 'p95_ms < 100'"),
         "probes[0].max_rate", "missing"},
        {"capacity bad slo", Y, ONE("type: capacity, slo: 'p95_ms <', max_rate: 10"),
         "probes[0].slo", "not a valid SLO"},
        {"capacity slo with probe", Y, ONE("type: capacity, slo: 'l.p95_ms < 5', max_rate: 10"),
         "probes[0].slo", "not a valid SLO"},
        {"capacity max_rate <= min_rate", Y,
         ONE("type: capacity, slo: 'p95_ms < 100', max_rate: 10, min_rate: 10"),
         "probes[0].max_rate", "greater than min_rate (10)"},
        {"capacity required over max", Y,
         ONE("type: capacity, slo: 'p95_ms < 100', max_rate: 10, required_rate: 20"),
         "probes[0].required_rate", "must not exceed max_rate"},
        {"capacity without target", Y, NOTARGET("type: capacity, slo: 'p95_ms < 1', max_rate: 10"),
         "probes[0]", "need the spec's target"},
        {"capacity warmup not shorter than step", Y,
         ONE("type: capacity, slo: 'p95_ms < 1', max_rate: 9, step: 2s, warmup: 2s"),
         "probes[0].warmup", "must be shorter than step (2s)"},
        {"load ca_file relative", Y, LOAD(", ca_file: ca.pem"), "probes[0].ca_file",
         "must be an absolute path"},
        {"capacity takes no mode", Y,
         ONE("type: capacity, slo: 'p95_ms < 1', max_rate: 9, mode: rate"), "probes[0].mode",
         "not a field of 'capacity' probes"},

        /* http */
        {"http url missing", Y, ONE("type: http"), "probes[0].url",
         "missing (required for 'http' probes)"},
        {"http bad status", Y, ONE("type: http, url: 'http://h/', expect_status: 700"),
         "probes[0].expect_status", "from 100 to 599"},
        {"http bad regex", Y, ONE("type: http, url: 'http://h/', expect_body_regex: '(['"),
         "probes[0].expect_body_regex", "not a valid POSIX extended regex"},
        {"http regex bomb", Y,
         ONE("type: http, url: 'http://h/', "
             "expect_body_regex: '(((a{0,30}){0,30}){0,30}){0,30}'"),
         "probes[0].expect_body_regex", "expand to more than 1000 elements"},
        {"http regex count over the cap", Y,
         ONE("type: http, url: 'http://h/', expect_body_regex: 'a{1,1000}'"),
         "probes[0].expect_body_regex", "repetition count is over 100"},
        {"http regex deep nesting", Y,
         ONE("type: http, url: 'http://h/', expect_body_regex: '(((((((((a)))))))))'"),
         "probes[0].expect_body_regex", "nest more than 8 deep"},
        {"http regex back-reference", Y,
         ONE("type: http, url: 'http://h/', expect_body_regex: '(a+)+\\1'"),
         "probes[0].expect_body_regex", "back-references"},
        {"http regex too long", Y,
         ONE("type: http, url: 'http://h/', expect_body_regex: '" R600 "'"),
         "probes[0].expect_body_regex", "512"},
        {"http expect_json key", Y, ONE("type: http, url: 'http://h/', expect_json: {status: 1}"),
         "probes[0].expect_json.status", "starting with '$'"},
        {"http expect_json bad path", Y,
         ONE("type: http, url: 'http://h/', expect_json: {'$.items[x]': 1}"),
         "probes[0].expect_json[\"$.items[x]\"]", "is not a valid path"},
        {"http expect_json list", Y, ONE("type: http, url: 'http://h/', expect_json: [1]"),
         "probes[0].expect_json", "must be a mapping"},
        {"http ca_file relative", Y, ONE("type: http, url: 'http://h/', ca_file: ca.pem"),
         "probes[0].ca_file", "absolute path"},
        {"http insecure not bool", Y, ONE("type: http, url: 'http://h/', insecure: yes"),
         "probes[0].insecure", "must be true or false"},

        /* prometheus-* */
        {"scrape url missing", Y, ONE("type: prometheus-scrape"), "probes[0].url", "missing"},
        {"scrape require not a list", Y,
         ONE("type: prometheus-scrape, url: 'http://h/', require: a"), "probes[0].require",
         "must be a list of 1 to 256 strings"},
        {"scrape require duplicate", Y,
         ONE("type: prometheus-scrape, url: 'http://h/', require: [a, b, a]"),
         "probes[0].require[2]", "'a' is listed twice"},
        {"scrape require empty entry", Y,
         ONE("type: prometheus-scrape, url: 'http://h/', require: [a, '']"), "probes[0].require[1]",
         "non-empty"},
        {"rules need prometheus", Y, ONE("type: prometheus-rules, require: [A]"),
         "probes[0].prometheus", "missing (required for 'prometheus-rules' probes)"},
        {"query needs prometheus", Y, ONE("type: prometheus-query, query: up"),
         "probes[0].prometheus", "missing"},
        {"query needs query", Y, ONE("type: prometheus-query, prometheus: 'http://p/'"),
         "probes[0].query", "missing"},
        {"query function without range", Y,
         ONE("type: prometheus-query, prometheus: 'http://p/', query: up, function: max"),
         "probes[0].function", "only applies to range queries"},
        {"query bad function", Y,
         ONE("type: prometheus-query, prometheus: 'http://p/', query: up, range: 1m, function: p50"),
         "probes[0].function", "must be one of: min, max, avg, last"},
        {"reconcile with no probe", Y,
         ONE("type: prometheus-query, prometheus: 'http://p/', query: up, "
             "reconcile: {with: nope, quantile: 0.95}"),
         "probes[0].reconcile.with", "no load probe named 'nope' before this probe"},
        {"reconcile with a later load", Y,
         HEAD TARGET PROBES "  - {name: q, type: prometheus-query, prometheus: 'http://p/', "
                            "query: up, reconcile: {with: l, quantile: 0.95}}\n"
                            "  - {name: l, type: load, mode: closed}\n",
         "probes[0].reconcile.with", "no load probe named 'l' before this probe"},
        {"reconcile with an http probe", Y,
         HEAD TARGET PROBES "  - {name: h, type: http, url: 'http://h/'}\n"
                            "  - {name: q, type: prometheus-query, prometheus: 'http://p/', "
                            "query: up, reconcile: {with: h, quantile: 0.95}}\n",
         "probes[1].reconcile.with", "no load probe named 'h'"},
        {"reconcile odd quantile", Y,
         HEAD TARGET PROBES "  - {name: l, type: load, mode: closed}\n"
                            "  - {name: q, type: prometheus-query, prometheus: 'http://p/', "
                            "query: up, reconcile: {with: l, quantile: 0.97}}\n",
         "probes[1].reconcile.quantile", "must be one a load probe publishes"},
        {"reconcile needs quantile", Y,
         ONE("type: prometheus-query, prometheus: 'http://p/', query: up, reconcile: {with: l}"),
         "probes[0].reconcile.quantile", "missing"},
        {"reconcile bad unit", Y,
         ONE("type: prometheus-query, prometheus: 'http://p/', query: up, "
             "reconcile: {with: l, quantile: 0.5, unit: us}"),
         "probes[0].reconcile.unit", "must be one of: s, ms"},
        {"server_latency needs metric", Y,
         ONE("type: load, mode: closed, server_latency: {prometheus: 'http://p/'}"),
         "probes[0].server_latency.metric", "missing"},
        {"server_latency needs prometheus", Y,
         ONE("type: load, mode: closed, server_latency: {metric: m}"),
         "probes[0].server_latency.prometheus", "missing"},
        {"server_latency bad metric", Y,
         ONE("type: load, mode: closed, server_latency: {prometheus: 'http://p/', "
             "metric: 'rate(m)'}"),
         "probes[0].server_latency.metric", "must be a Prometheus metric name"},
        {"server_latency selector with braces", Y,
         ONE("type: load, mode: closed, server_latency: {prometheus: 'http://p/', metric: m, "
             "selector: 'a=\"b\"}) or vector(1'}"),
         "probes[0].server_latency.selector", "no braces"},
        {"server_latency tolerance 0", Y,
         ONE("type: load, mode: closed, server_latency: {prometheus: 'http://p/', metric: m, "
             "tolerance: 0}"),
         "probes[0].server_latency.tolerance", ""},
        {"dashboard without source", Y, ONE("type: dashboard, prometheus: 'http://p/'"),
         "probes[0].dashboard", "give the dashboard inline, its file or its url"},
        {"dashboard two sources", Y,
         ONE("type: dashboard, prometheus: 'http://p/', url: 'http://g/', file: /d.json"),
         "probes[0].url", "give one of dashboard, file and url"},
        {"dashboard not a dashboard", Y,
         ONE("type: dashboard, prometheus: 'http://p/', dashboard: '{\"title\": 1}'"),
         "probes[0].dashboard", "must be a Grafana dashboard"},
        {"dashboard not JSON", Y,
         ONE("type: dashboard, prometheus: 'http://p/', dashboard: '{panels'"),
         "probes[0].dashboard", "must be a Grafana dashboard"},
        {"dashboard bad variable", Y,
         ONE("type: dashboard, prometheus: 'http://p/', dashboard: {panels: []}, "
             "variables: {'a-b': x}"),
         "probes[0].variables.a-b", ""},
        {"dashboard bad query_type", Y,
         ONE("type: dashboard, prometheus: 'http://p/', dashboard: {panels: []}, "
             "query_type: matrix"),
         "probes[0].query_type", "must be one of: instant, range"},
        {"dashboard relative file", Y,
         ONE("type: dashboard, prometheus: 'http://p/', file: d.json"), "probes[0].file", ""},
        {"scan-report without source", Y, ONE("type: scan-report"), "probes[0].file",
         "give the report's file"},
        {"scan-report two sources", Y, ONE("type: scan-report, file: /r.sarif, url: 'http://h/r'"),
         "probes[0].url", "give file or url, not both"},
        {"scan-report bad format", Y, ONE("type: scan-report, file: /r.sarif, format: xml"),
         "probes[0].format", "must be one of: auto, sarif, trivy"},

        /* drills */
        {"alert-drill needs prometheus", Y,
         ONE("type: alert-drill, alert: A, trigger: {url: 'http://h/'}"), "probes[0].prometheus",
         "missing"},
        {"alert-drill needs alert", Y,
         ONE("type: alert-drill, prometheus: 'http://p/', trigger: {url: 'http://h/'}"),
         "probes[0].alert", "missing"},
        {"alert-drill needs trigger", Y,
         ONE("type: alert-drill, prometheus: 'http://p/', alert: A"), "probes[0].trigger",
         "missing (required for 'alert-drill' probes)"},
        {"alert-drill trigger without url", Y,
         ONE("type: alert-drill, prometheus: 'http://p/', alert: A, trigger: {method: POST}"),
         "probes[0].trigger.url", "missing (required in a request)"},
        {"alert-drill labels not a mapping", Y,
         ONE("type: alert-drill, prometheus: 'http://p/', alert: A, trigger: {url: 'http://h/'}, "
             "labels: [instance]"),
         "probes[0].labels", "must be a mapping of 1 to 64 label: value entries"},
        {"alert-drill labels empty", Y,
         ONE("type: alert-drill, prometheus: 'http://p/', alert: A, trigger: {url: 'http://h/'}, "
             "labels: {}"),
         "probes[0].labels", "must be a mapping of 1 to 64"},
        {"alert-drill label bad name", Y,
         ONE("type: alert-drill, prometheus: 'http://p/', alert: A, trigger: {url: 'http://h/'}, "
             "labels: {1x: a}"),
         "probes[0].labels.1x", "must be a Prometheus label name"},
        {"alert-drill label reserved name", Y,
         ONE("type: alert-drill, prometheus: 'http://p/', alert: A, trigger: {url: 'http://h/'}, "
             "labels: {__name__: up}"),
         "probes[0].labels.__name__", "not __*"},
        {"alert-drill label alertname", Y,
         ONE("type: alert-drill, prometheus: 'http://p/', alert: A, trigger: {url: 'http://h/'}, "
             "labels: {alertname: B}"),
         "probes[0].labels.alertname", "goes in 'alert'"},
        {"alert-drill label empty value", Y,
         ONE("type: alert-drill, prometheus: 'http://p/', alert: A, trigger: {url: 'http://h/'}, "
             "labels: {instance: ''}"),
         "probes[0].labels.instance", "must be a non-empty string"},
        {"alert-drill label value not a string", Y,
         ONE("type: alert-drill, prometheus: 'http://p/', alert: A, trigger: {url: 'http://h/'}, "
             "labels: {instance: [a]}"),
         "probes[0].labels.instance", "must be a string"},
        {"labels only for alert-drill", Y,
         ONE("type: prometheus-rules, prometheus: 'http://p/', labels: {a: b}"), "probes[0].labels",
         "not a field of 'prometheus-rules' probes"},
        {"alert-drill within over run", Y,
         ONE("type: alert-drill, prometheus: 'http://p/', alert: A, trigger: {url: 'http://h/'}, "
             "within: 2h"),
         "probes[0].within", "longer than the run's timeout"},
        {"rollback needs trigger", Y,
         ONE("type: rollback-drill, version_url: 'http://h/v', expect_version: '1', within: 1m"),
         "probes[0].trigger", "missing"},
        {"rollback needs version_url", Y,
         ONE("type: rollback-drill, trigger: {url: 'http://h/'}, expect_version: '1', within: 1m"),
         "probes[0].version_url", "missing"},
        {"rollback needs expect_version", Y,
         ONE("type: rollback-drill, trigger: {url: 'http://h/'}, version_url: 'http://h/v', "
             "within: 1m"),
         "probes[0].expect_version", "missing"},
        {"rollback needs within", Y,
         ONE("type: rollback-drill, trigger: {url: 'http://h/'}, version_url: 'http://h/v', "
             "expect_version: 1.2.3"),
         "probes[0].within", "missing (required for 'rollback-drill' probes)"},

        /* tls, auth, rate-limit, resources */
        {"tls http url", Y, ONE("type: tls, url: 'http://h/'"), "probes[0].url",
         "must be an https:// URL"},
        {"tls http target", Y, ONE("type: tls"), "probes[0].url", "(the target's is not)"},
        {"tls no url", Y, NOTARGET("type: tls"), "probes[0]", "needs a url"},
        {"tls bad min_version", Y, ONE("type: tls, url: 'https://h/', min_version: 1.20"),
         "probes[0].min_version", "must be one of: 1.2, 1.3"},
        {"auth without target", Y, NOTARGET("type: auth"), "probes[0]", "needs a url"},
        {"auth bad status", Y, ONE("type: auth, expect_statuses: [401, 99]"),
         "probes[0].expect_statuses[1]", "from 100 to 599"},
        {"auth statuses empty", Y, ONE("type: auth, expect_statuses: []"),
         "probes[0].expect_statuses", "list of 1 to 16"},
        {"rate-limit without target", Y, NOTARGET("type: rate-limit"), "probes[0]", "needs a url"},
        {"rate-limit burst zero", Y, ONE("type: rate-limit, burst: 0"), "probes[0].burst",
         "from 1 to 100000"},
        {"resources needs one", Y, ONE("type: resources"), "probes[0]",
         "needs one of pid, pid_file or cgroup"},
        {"resources two given", Y, ONE("type: resources, pid: 5, cgroup: /a"), "probes[0].cgroup",
         "give only one of pid, pid_file and cgroup"},
        {"rule_files entry with '..'", Y,
         ONE("type: prometheus-rules, prometheus: 'http://p/', rule_files: [/a/r.yml, "
             "/a/../etc/shadow]"),
         "probes[0].rule_files[1]", "absolute path without '..'"},
        {"rule_files entry relative", Y,
         ONE("type: prometheus-rules, prometheus: 'http://p/', rule_files: [r.yml]"),
         "probes[0].rule_files[0]", "absolute path"},
        {"resources relative pid_file", Y, ONE("type: resources, pid_file: run/x.pid"),
         "probes[0].pid_file", "absolute path"},
        {"resources dotdot cgroup", Y, ONE("type: resources, cgroup: /a/../../etc"),
         "probes[0].cgroup", "without '..'"},
        {"resources pid range", Y, ONE("type: resources, pid: 0"), "probes[0].pid", "from 1 to"},

        /* gates */
        {"gates not a list", Y, GATES("  a: 1\n"), "gates", "must be a list"},
        {"gate syntax error", Y, GATES("  - latency.p95_ms <<< 5\n"), "gates[0]",
         "not a gate expression"},
        {"gate without probe", Y, GATES("  - p95_ms < 5\n"), "gates[0]", "not a gate expression"},
        {"gate bad baseline", Y, GATES("  - latency.p95_ms < baseline / 2\n"), "gates[0]",
         "after 'baseline'"},
        {"gate unknown probe", Y,
         GATES("  - latency.p95_ms < 100\n  - up.ok == 1\n  - latency.p99_ms < 5\n"
               "  - latncy.p95_ms < 100\n"),
         "gates[3]", "no probe named 'latncy' (did you mean 'latency'?)"},
        {"gate object without expr", Y, GATES("  - {advisory: true}\n"), "gates[0].expr",
         "missing"},
        {"gate object bad expr", Y, GATES("  - {expr: 'latency.p95_ms'}\n"), "gates[0].expr",
         "not a gate expression"},
        {"gate object typo", Y, GATES("  - {expr: 'latency.p95_ms < 5', advisary: true}\n"),
         "gates[0].advisary", "did you mean 'advisory'?"},
        {"gate a number", Y, GATES("  - 5\n"), "gates[0]", "must be an expression"},
        {"gate abort_on_fail on http", Y,
         GATES("  - {expr: 'up.latency_ms < 5', abort_on_fail: true}\n"), "gates[0].abort_on_fail",
         "only applies to gates on load probes"},
        {"gate min_samples zero", Y, GATES("  - {expr: 'latency.p99_ms < 5', min_samples: 0}\n"),
         "gates[0].min_samples", "from 1 to"},

        /* checklist */
        {"checklist not a mapping", Y, HTTP_SPEC "checklist: [a]\n", "checklist",
         "must be a mapping"},
        {"checklist required item missing", Y,
         HTTP_SPEC
         "checklist:\n  runbook: {evidence: x}\n  required: [runbook, runbok_v2, other]\n",
         "checklist.required[1]", "no checklist item named 'runbok_v2'"},
        {"checklist required suggestion", Y,
         HTTP_SPEC "checklist:\n  runbook: {evidence: x}\n  required: [runbok]\n",
         "checklist.required[0]", "(did you mean 'runbook'?)"},
        {"checklist item unknown field", Y, HTTP_SPEC "checklist:\n  runbook: {evidnce: x}\n",
         "checklist.runbook.evidnce", "did you mean 'evidence'?"},
        {"checklist item not a mapping", Y, HTTP_SPEC "checklist:\n  runbook: https://x\n",
         "checklist.runbook", "must be a mapping"},
        {"checklist bad date", Y, HTTP_SPEC "checklist:\n  rb: {tested: 2026-02-30}\n",
         "checklist.rb.tested", "must be a date"},
        {"checklist max_age without tested", Y, HTTP_SPEC "checklist:\n  rb: {max_age: 90d}\n",
         "checklist.rb.max_age", "needs 'tested'"},
        {"checklist passed not bool", Y, HTTP_SPEC "checklist:\n  rb: {passed: yes}\n",
         "checklist.rb.passed", "must be true or false"},
        {"checklist item name", Y, HTTP_SPEC "checklist:\n  'run book': {evidence: x}\n",
         "checklist[\"run book\"]", "item names must match"},
        {"checklist required duplicate", Y,
         HTTP_SPEC "checklist:\n  rb: {evidence: x}\n  required: [rb, rb]\n",
         "checklist.required[1]", "listed twice"},
        {"alerts matcher without quotes", Y,
         ONE("type: prometheus-alerts, prometheus: 'http://p/', matchers: ['a=\"b\"', 'c=d']"),
         "probes[0].matchers[1]", "(at byte 2: expected a string)"},
        {"alerts matcher regex refused", Y,
         ONE("type: prometheus-alerts, prometheus: 'http://p/', matchers: ['a=~\"(b\"']"),
         "probes[0].matchers[0]", "has a regular expression readyd refuses"},
        {"alerts severity names metrics", Y,
         ONE("type: prometheus-alerts, prometheus: 'http://p/', severities: [sev-1]"),
         "probes[0].severities[0]", "letters, digits or '_'"},
        {"can_fire not bool", Y,
         ONE("type: prometheus-rules, prometheus: 'http://p/', can_fire: 1"), "probes[0].can_fire",
         "must be true or false"},
        /* compare */
        {"compare rate mode without rate", Y,
         ONE("type: compare, baseline: 'http://a/', candidate: 'http://b/', mode: rate"),
         "probes[0].rate", "missing"},
        {"compare too few segments", Y,
         ONE("type: compare, baseline: 'http://a/', candidate: 'http://b/', mode: closed, "
             "segments: 5"),
         "probes[0].segments", ""},
        {"compare longer than the run", Y,
         "timeout: 10s\n" ONE("type: compare, baseline: 'http://a/', candidate: 'http://b/', "
                              "mode: closed, segment_duration: 1s"),
         "probes[0].segments", "longer than the run's timeout"},
        {"compare candidate not a URL", Y,
         ONE("type: compare, baseline: 'http://a/', candidate: b, mode: closed"),
         "probes[0].candidate", ""},
        /* capacity plan */
        {"plan without target_rps", Y,
         ONE("type: capacity, slo: 'p95_ms < 9', max_rate: 9, plan: {min_instances: 2}"),
         "probes[0].plan.target_rps", "missing"},
        {"plan utilization above 1", Y,
         ONE("type: capacity, slo: 'p95_ms < 9', max_rate: 9, plan: {target_rps: 9, "
             "target_utilization: 1.2}"),
         "probes[0].plan.target_utilization", ""},
        {"plan max below min", Y,
         ONE("type: capacity, slo: 'p95_ms < 9', max_rate: 9, plan: {target_rps: 9, "
             "min_instances: 4, max_instances: 2}"),
         "probes[0].plan", "max_instances must not be below min_instances"},
        /* infrastructure */
        {"infrastructure instance without prometheus", Y,
         ONE("type: infrastructure, instance: 'a:9100'"), "probes[0].instance",
         "only applies with prometheus"},
        {"infrastructure prometheus without instance", Y,
         ONE("type: infrastructure, prometheus: 'http://p/'"), "probes[0].instance", "missing"},
        {"infrastructure source and prometheus", Y,
         ONE("type: infrastructure, source: 'http://n/metrics', prometheus: 'http://p/', "
             "instance: n"),
         "probes[0].source", "not both"},
        {"infrastructure instance with a quote", Y,
         ONE("type: infrastructure, prometheus: 'http://p/', instance: 'a\"} or vector(1)'"),
         "probes[0].instance", "must not contain a quote"},
        {"infrastructure source a word", Y, ONE("type: infrastructure, source: remote"),
         "probes[0].source", "must be `local`"},
        {"infrastructure relative mount", Y, ONE("type: infrastructure, mounts: [/, var]"),
         "probes[0].mounts[1]", ""},
};

/* Checks one case; on a mismatch writes why and returns false. */
static bool invalid_case_holds(const struct invalid_case *c, char *why, size_t len)
{
	struct spec_error err;
	struct spec *s = NULL;
	int r = spec_parse(c->text, c->len ? c->len : strlen(c->text), c->fmt, &s, &err);

	spec_free(s);
	if (r != -EINVAL)
		snprintf(why, len, "%s: expected -EINVAL, got %d", c->name, r);
	else if (strcmp(err.path, c->path) != 0)
		snprintf(why, len, "%s: path '%s', expected '%s' (%s)", c->name, err.path, c->path,
		         err.message);
	else if (!strstr(err.message, c->message))
		snprintf(why, len, "%s: message '%s' lacks '%s'", c->name, err.message, c->message);
	else if (c->line && err.line != c->line)
		snprintf(why, len, "%s: line %d, expected %d", c->name, err.line, c->line);
	else
		return true;
	return false;
}

/* One test for the whole table rather than a loop test: under valgrind
 * every forked test pays for a leak check, and this table is long. Every
 * failing case is reported, not only the first. */
START_TEST(test_invalid)
{
	char report[16384] = "", why[600];
	size_t used = 0;
	int failed = 0;

	for (size_t i = 0; i < sizeof(invalid_cases) / sizeof(invalid_cases[0]); i++) {
		if (invalid_case_holds(&invalid_cases[i], why, sizeof(why)))
			continue;
		failed++;
		if (used < sizeof(report))
			used += (size_t)snprintf(report + used, sizeof(report) - used, "\n  %s",
			                         why);
	}
	ck_assert_msg(failed == 0, "%d invalid case(s) did not fail as expected:%s", failed,
	              report);
}
END_TEST

/* --- caps --- */

static void expect_error(const char *text, size_t len, enum spec_format fmt, int want,
                         const char *path, const char *message)
{
	struct spec_error err;
	struct spec *s = NULL;
	int r = spec_parse(text, len, fmt, &s, &err);

	ck_assert_int_eq(r, want);
	ck_assert_ptr_null(s);
	/* "prefix*" matches any path that starts with prefix */
	if (path[0] && path[strlen(path) - 1] == '*')
		ck_assert_msg(!strncmp(err.path, path, strlen(path) - 1), "path %s", err.path);
	else
		ck_assert_str_eq(err.path, path);
	ck_assert_msg(strstr(err.message, message), "message '%s' lacks '%s'", err.message,
	              message);
}

/* A document nested one level deeper than allowed, in a field that would
 * otherwise be free-form (expect_json), so only the cap can refuse it. */
static char *nested(enum spec_format fmt, int levels)
{
	size_t cap = 4096 + (size_t)levels * 16, n = 0;
	char *b = malloc(cap);

	ck_assert_ptr_nonnull(b);
	if (fmt == SPEC_FORMAT_JSON)
		n += (size_t)snprintf(b + n, cap - n,
		                      "%s\"probes\": [{\"name\": \"up\", \"type\": "
		                      "\"http\", \"url\": \"http://h/\", \"expect_json\": {\"$\": ",
		                      JHEAD);
	else
		n += (size_t)snprintf(b + n, cap - n,
		                      "%s  - {name: up, type: http, url: "
		                      "'http://h/', expect_json: {'$': ",
		                      HEAD PROBES);
	for (int i = 0; i < levels; i++)
		b[n++] = '[';
	for (int i = 0; i < levels; i++)
		b[n++] = ']';
	snprintf(b + n, cap - n, "%s", fmt == SPEC_FORMAT_JSON ? "}}]}" : "}}\n");
	return b;
}

START_TEST(test_depth)
{
	/* root + probes + probe + expect_json = 4 levels before the lists */
	int fits = SPEC_MAX_DEPTH - 4;
	char *ok_y = nested(SPEC_FORMAT_YAML, fits), *ok_j = nested(SPEC_FORMAT_JSON, fits);
	char *bad_y = nested(SPEC_FORMAT_YAML, fits + 1);
	char *bad_j = nested(SPEC_FORMAT_JSON, fits + 1);
	char *bomb = nested(SPEC_FORMAT_YAML, 100000);

	spec_free(parse_ok(ok_y, 0, SPEC_FORMAT_YAML));
	spec_free(parse_ok(ok_j, 0, SPEC_FORMAT_JSON));
	expect_error(bad_y, strlen(bad_y), SPEC_FORMAT_YAML, -EINVAL,
	             "probes[0].expect_json[\"$\"][0][0]*", "nesting deeper than 32 levels");
	expect_error(bad_j, strlen(bad_j), SPEC_FORMAT_JSON, -EINVAL, "",
	             "nesting deeper than 32 levels");
	expect_error(bomb, strlen(bomb), SPEC_FORMAT_YAML, -EINVAL,
	             "probes[0].expect_json[\"$\"][0][0]*", "nesting deeper");
	free(ok_y);
	free(ok_j);
	free(bad_y);
	free(bad_j);
	free(bomb);
}
END_TEST

START_TEST(test_oversized)
{
	size_t len = SPEC_MAX_BYTES + 1;
	char *big = malloc(len);

	ck_assert_ptr_nonnull(big);
	memset(big, '#', len);
	expect_error(big, len, SPEC_FORMAT_YAML, -E2BIG, "", "larger than");
	expect_error(big, len, SPEC_FORMAT_JSON, -E2BIG, "", "larger than");
	free(big);
}
END_TEST

START_TEST(test_long_string)
{
	size_t len = SPEC_MAX_STRING + 1, cap = len + 256;
	char *b = malloc(cap);
	int n;

	ck_assert_ptr_nonnull(b);
	n = snprintf(b, cap, HEAD PROBES HTTP_UP "    body: ");
	memset(b + n, 'x', len);
	b[n + len] = '\0';
	expect_error(b, strlen(b), SPEC_FORMAT_YAML, -EINVAL, "probes[0].body",
	             "string longer than 65536 bytes");
	free(b);
}
END_TEST

/* head, then count items "pre<i>post", then tail. */
static char *repeat(const char *head, const char *pre, const char *post, int count,
                    const char *tail)
{
	size_t cap =
	        strlen(head) + strlen(tail) + (size_t)count * (strlen(pre) + strlen(post) + 12) + 1;
	char *b = malloc(cap);
	size_t n;

	ck_assert_ptr_nonnull(b);
	n = (size_t)snprintf(b, cap, "%s", head);
	for (int i = 0; i < count; i++)
		n += (size_t)snprintf(b + n, cap - n, "%s%d%s", pre, i, post);
	snprintf(b + n, cap - n, "%s", tail);
	return b;
}

START_TEST(test_list_caps)
{
	const char *pre = "  - {name: p", *post = ", type: http, url: 'http://h/'}\n";
	char *ok = repeat(HEAD PROBES, pre, post, SPEC_MAX_PROBES, "");
	char *probes = repeat(HEAD PROBES, pre, post, SPEC_MAX_PROBES + 1, "");
	char *headers = repeat(HEAD "target:\n  url: http://h/\n  headers:\n", "    X-", ": v\n",
	                       SPEC_MAX_HEADERS + 1, PROBES HTTP_UP);
	char *gates =
	        repeat(HTTP_SPEC "gates:\n", "  - up.latency_ms < ", "\n", SPEC_MAX_GATES + 1, "");

	spec_free(parse_ok(ok, 0, SPEC_FORMAT_YAML));
	expect_error(probes, strlen(probes), SPEC_FORMAT_YAML, -EINVAL, "probes",
	             "at most 64 probes");
	expect_error(headers, strlen(headers), SPEC_FORMAT_YAML, -EINVAL, "target.headers",
	             "at most 64 headers");
	expect_error(gates, strlen(gates), SPEC_FORMAT_YAML, -EINVAL, "gates", "at most 256 gates");
	free(ok);
	free(probes);
	free(headers);
	free(gates);
}
END_TEST

/* --- redaction --- */

static const struct {
	const char *name;
	bool secret;
} secret_names[] = {
        {"Authorization", true},   {"proxy-authorization", true},
        {"Cookie", true},          {"SET-COOKIE", true},
        {"X-Api-Key", true},       {"X-Auth-Token", true},
        {"X-Client-Secret", true}, {"X-Password", true},
        {"X-Upstream-Auth", true}, {"Content-Type", false},
        {"Accept", false},         {"X-Request-Id", false},
        {"User-Agent", false},
};

START_TEST(test_header_is_secret)
{
	ck_assert_msg(spec_header_is_secret(secret_names[_i].name) == secret_names[_i].secret, "%s",
	              secret_names[_i].name);
}
END_TEST

static const char redact_yaml[] = HEAD
        "target:\n  url: https://user:pa55@127.0.0.1:8443/predict\n"
        "  headers: {Authorization: Bearer t0k3n, Content-Type: application/json, "
        "X-Api-Key: k3y}\n" PROBES
        "  - {name: l, type: load, mode: closed, request: {url: 'http://h/l', headers: {Cookie: "
        "c00kie}}}\n"
        "  - {name: h, type: http, url: 'http://h/', headers: {X-Auth-Token: abc, Accept: a}}\n"
        "  - name: d\n    type: alert-drill\n    prometheus: http://admin:pr0m@p:9090/\n"
        "    alert: A\n    headers: {Authorization: Basic eA==}\n"
        "    trigger: {url: 'http://h/t', headers: {X-Secret: s3}}\n"
        "    clear: {url: 'http://h/c', headers: {Proxy-Authorization: px}}\n"
        "  - name: r\n    type: rollback-drill\n    trigger: {url: 'http://h/r'}\n"
        "    restore: {url: 'http://h/s', headers: {Set-Cookie: sc}}\n"
        "    version_url: http://v:w0rd@h/v\n    expect_version: '1'\n    within: 1m\n"
        "checklist:\n  runbook: {evidence: 'see https://bob:ev1dence@wiki/r?access_token=qz9'}\n";

static const char *at(json_t *root, const char *pointer)
{
	/* a tiny "a/b/0/c" walker: enough for the assertions below */
	char buf[256];
	json_t *cur = root;
	char *tok = buf;

	snprintf(buf, sizeof(buf), "%s", pointer);
	while (tok && cur) {
		char *slash = strchr(tok, '/');

		if (slash)
			*slash = '\0';
		if (json_is_array(cur))
			cur = json_array_get(cur, strtoul(tok, NULL, 10));
		else
			cur = json_object_get(cur, tok);
		tok = slash ? slash + 1 : NULL;
	}
	ck_assert_msg(json_is_string(cur), "no string at %s", pointer);
	return json_string_value(cur);
}

/* A corpus's inline requests carry headers too. */
START_TEST(test_redaction_corpus)
{
	struct spec *s =
	        parse_ok(HEAD "target: {url: 'http://127.0.0.1:9/'}\n" PROBES
	                      "  - {name: c, type: load, mode: closed, corpus: {items: [{body: "
	                      "a, headers: {Authorization: Bearer c0rpus, Accept: b}}]}}\n",
	                 0, SPEC_FORMAT_YAML);
	json_t *red = spec_to_json_redacted(s);
	char *text = json_dumps(red, JSON_COMPACT);

	ck_assert_str_eq(at(red, "probes/0/corpus/items/0/headers/Authorization"), "<redacted>");
	ck_assert_str_eq(at(red, "probes/0/corpus/items/0/headers/Accept"), "b");
	ck_assert_msg(!strstr(text, "c0rpus"), "leaked: %s", text);
	free(text);
	json_decref(red);
	spec_free(s);
}
END_TEST

START_TEST(test_redaction)
{
	struct spec *s = parse_ok(redact_yaml, 0, SPEC_FORMAT_YAML);
	json_t *red = spec_to_json_redacted(s);
	char *text;

	ck_assert_ptr_nonnull(red);
	ck_assert_str_eq(at(red, "target/headers/Authorization"), "<redacted>");
	ck_assert_str_eq(at(red, "target/headers/X-Api-Key"), "<redacted>");
	ck_assert_str_eq(at(red, "target/headers/Content-Type"), "application/json");
	ck_assert_str_eq(at(red, "target/url"), "https://user:<redacted>@127.0.0.1:8443/predict");
	ck_assert_str_eq(at(red, "probes/0/request/headers/Cookie"), "<redacted>");
	ck_assert_str_eq(at(red, "probes/1/headers/X-Auth-Token"), "<redacted>");
	ck_assert_str_eq(at(red, "probes/1/headers/Accept"), "a");
	ck_assert_str_eq(at(red, "probes/2/headers/Authorization"), "<redacted>");
	ck_assert_str_eq(at(red, "probes/2/prometheus"), "http://admin:<redacted>@p:9090/");
	ck_assert_str_eq(at(red, "probes/2/trigger/headers/X-Secret"), "<redacted>");
	ck_assert_str_eq(at(red, "probes/2/clear/headers/Proxy-Authorization"), "<redacted>");
	ck_assert_str_eq(at(red, "probes/3/restore/headers/Set-Cookie"), "<redacted>");
	ck_assert_str_eq(at(red, "probes/3/version_url"), "http://v:<redacted>@h/v");
	ck_assert_str_eq(at(red, "probes/3/trigger/url"), "http://h/r");
	ck_assert_str_eq(at(red, "checklist/runbook/evidence"),
	                 "see https://bob:<redacted>@wiki/r?access_token=<redacted>");
	/* no secret survives anywhere in the redacted text */
	text = json_dumps(red, JSON_COMPACT);
	ck_assert_ptr_nonnull(text);
	for (const char *const *w =
	             (const char *const[]){"t0k3n", "k3y", "c00kie", "abc", "eA==", "s3", "px",
	                                   "sc\"", "pa55", "pr0m", "w0rd", "ev1dence", "qz9", NULL};
	     *w; w++)
		ck_assert_msg(!strstr(text, *w), "'%s' leaked: %s", *w, text);
	free(text);
	/* the structure and spec->doc keep the real values */
	ck_assert_str_eq(s->target.headers[0].value, "Bearer t0k3n");
	ck_assert_str_eq(at(s->doc, "target/headers/Authorization"), "Bearer t0k3n");
	ck_assert_str_eq(s->probes[0].headers[0].value, "c00kie");
	ck_assert_str_eq(s->probes[2].trigger->headers[0].value, "s3");
	json_decref(red);
	spec_free(s);
}
END_TEST

/* --- small contracts --- */

START_TEST(test_probe_type_names)
{
	for (int t = 0; t < _PROBE_TYPE_MAX; t++) {
		enum probe_type back;

		ck_assert_int_eq(probe_type_from_string(probe_type_to_string(t), &back), 0);
		ck_assert_int_eq(back, t);
	}
	ck_assert_int_eq(probe_type_from_string("Load", &(enum probe_type){0}), -EINVAL);
	ck_assert_int_eq(probe_type_from_string(NULL, &(enum probe_type){0}), -EINVAL);
	ck_assert_str_eq(probe_type_to_string(PROBE_TYPE_PROM_SCRAPE), "prometheus-scrape");
}
END_TEST

START_TEST(test_free_null_and_no_err)
{
	struct spec *s = (struct spec *)0x1;

	spec_free(NULL);
	ck_assert_ptr_null(spec_to_json_redacted(NULL));
	ck_assert_ptr_null(spec_find_probe(NULL, "x"));
	/* err may be NULL; *ret_spec is untouched on failure */
	ck_assert_int_eq(spec_parse("x: [", 4, SPEC_FORMAT_YAML, &s, NULL), -EINVAL);
	ck_assert_ptr_eq(s, (struct spec *)0x1);
}
END_TEST

/* An error in a YAML spec names the line of the offending value. */
START_TEST(test_error_lines)
{
	static const char text[] = HEAD TARGET PROBES "  - name: a\n    type: load\n"
	                                              "    mode: closed\n\n    connections: 0\n";
	struct spec_error err;
	struct spec *s = NULL;

	ck_assert_int_eq(spec_parse(text, strlen(text), SPEC_FORMAT_YAML, &s, &err), -EINVAL);
	ck_assert_str_eq(err.path, "probes[0].connections");
	ck_assert_int_eq(err.line, 11);
}
END_TEST

/* A stored spec: service and environment from the path (absent: set;
 * equal: fine; different: an error at that field, with its line), the
 * version from the run (always replaced), the target's URL replaced. */
static const char stored_text[] = "apiVersion: readyd/v1\n"
                                  "%s"
                                  "target:\n  url: http://127.0.0.1:1/\n"
                                  "probes:\n  - name: hit\n    type: load\n"
                                  "    mode: closed\n    requests: 5\n";

static int parse_stored(const char *extra, const struct spec_fill *fill, struct spec **ret,
                        struct spec_error *err)
{
	char text[512];

	snprintf(text, sizeof(text), stored_text, extra);
	return spec_parse_fill(text, strlen(text), SPEC_FORMAT_YAML, fill, ret, err);
}

START_TEST(test_parse_fill)
{
	struct spec_fill fill = {"svc", "prod", "2.4.1", "http://127.0.0.1:8080/v1"};
	struct spec_error err;
	struct spec *s = NULL;

	ck_assert_int_eq(parse_stored("", &fill, &s, &err), 0);
	ck_assert_str_eq(s->service, "svc");
	ck_assert_str_eq(s->environment, "prod");
	ck_assert_str_eq(s->version, "2.4.1");
	ck_assert_str_eq(s->target.url, "http://127.0.0.1:8080/v1");
	ck_assert_str_eq(s->probes[0].url, "http://127.0.0.1:8080/v1");
	spec_free(s);
	ck_assert_int_eq(
	        parse_stored("service: svc\nenvironment: prod\nversion: old\n", &fill, &s, &err),
	        0);
	ck_assert_str_eq(s->version, "2.4.1");
	spec_free(s);
	s = NULL;
	ck_assert_int_eq(parse_stored("service: svc\nenvironment: staging\n", &fill, &s, &err),
	                 -EINVAL);
	ck_assert_ptr_null(s);
	ck_assert_str_eq(err.path, "environment");
	ck_assert_int_eq(err.line, 3);
	ck_assert(!err.syntax);
	ck_assert_int_eq(parse_stored("service: other\n", &fill, &s, &err), -EINVAL);
	ck_assert_str_eq(err.path, "service");
	/* A wrong type is still validation's to name; a bad URL too. */
	ck_assert_int_eq(parse_stored("service: [1]\n", &fill, &s, &err), -EINVAL);
	ck_assert_str_eq(err.path, "service");
	fill.target_url = "ftp://x";
	ck_assert_int_eq(parse_stored("", &fill, &s, &err), -EINVAL);
	ck_assert_str_eq(err.path, "target.url");
	/* Without a fill, the spec must name its service and version. */
	ck_assert_int_eq(parse_stored("", NULL, &s, &err), -EINVAL);
}
END_TEST

static int count_url(void *userdata, const char *path, const char *value)
{
	(void)value;
	ck_assert_str_eq(path, "source");
	++*(int *)userdata;
	return 0;
}

/* `source: local` names no place; `source: URL` does (for the policy). */
START_TEST(test_infrastructure_source_walk)
{
	static const char *const texts[] = {
	        HEAD PROBES "  - {name: i, type: infrastructure}\n",
	        HEAD PROBES "  - {name: i, type: infrastructure, source: local}\n",
	        HEAD PROBES
	        "  - {name: i, type: infrastructure, source: 'http://n:9100/metrics'}\n",
	};
	for (int i = 0; i < 3; i++) {
		struct spec *s = NULL;
		struct spec_error err;
		int n = 0;

		ck_assert_int_eq(spec_parse(texts[i], strlen(texts[i]), SPEC_FORMAT_YAML, &s, &err),
		                 0);
		ck_assert_str_eq(s->probes[0].source, i < 2 ? "local" : "http://n:9100/metrics");
		spec_probe_walk(&s->probes[0], SPEC_FIELD_URL, count_url, &n);
		ck_assert_int_eq(n, i < 2 ? 0 : 1);
		spec_free(s);
	}
}
END_TEST

static Suite *spec_suite(void)
{
	Suite *s = suite_create("spec");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, test_product_example_yaml);
	tcase_add_test(tc, test_product_example_json_equals_yaml);
	tcase_add_test(tc, test_product_round_trip);
	tcase_add_test(tc, test_json_text_as_yaml);
	tcase_add_loop_test(tc, test_valid, 0, (int)(sizeof(valid_cases) / sizeof(valid_cases[0])));
	tcase_add_test(tc, test_invalid);
	tcase_add_test(tc, test_depth);
	tcase_add_test(tc, test_oversized);
	tcase_add_test(tc, test_long_string);
	tcase_add_test(tc, test_list_caps);
	tcase_add_test(tc, test_error_lines);
	tcase_add_test(tc, test_parse_fill);
	tcase_add_test(tc, test_infrastructure_source_walk);
	suite_add_tcase(s, tc);

	tc = tcase_create("redaction");
	tcase_add_loop_test(tc, test_header_is_secret, 0,
	                    (int)(sizeof(secret_names) / sizeof(secret_names[0])));
	tcase_add_test(tc, test_redaction);
	tcase_add_test(tc, test_redaction_corpus);
	suite_add_tcase(s, tc);

	tc = tcase_create("contracts");
	tcase_add_test(tc, test_probe_type_names);
	tcase_add_test(tc, test_free_null_and_no_err);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(spec_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
