/* metrics: readyd's own counters and histograms and the Prometheus text
 * exposition (see metrics.h). Label values are escaped as the format
 * requires (\\, \", \n); metric names are fixed here, never taken from
 * input.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/gate/gate.h"
#include "lib/report/metrics.h"
#include "lib/report/svg.h"
#include "lib/util/run_state.h"
#include "lib/util/util.h"
#include "lib/util/json_text.h"

/* Upper bounds of readyd_probe_duration_seconds and
 * readyd_run_duration_seconds: probes last from milliseconds (an http
 * check) to many minutes (a capacity search), runs up to their timeout. */
static const double duration_buckets[] = {0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600};
#define N_BUCKETS (sizeof(duration_buckets) / sizeof(duration_buckets[0]))

/* Upper bounds of readyd_http_request_duration_seconds: most answers take
 * a millisecond or less; long-polls and event streams take their wait. */
static const double http_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                      0.25,   0.5,   1,      2.5,   5,    10,    30};
#define N_HTTP_BUCKETS (sizeof(http_buckets) / sizeof(http_buckets[0]))

/* One histogram's counts; buckets are non-cumulative, summed when
 * rendered, and the bounds are the caller's. */
struct hist {
	uint64_t buckets[N_HTTP_BUCKETS];
	uint64_t count;
	double sum;
};
_Static_assert(N_BUCKETS <= N_HTTP_BUCKETS, "struct hist holds either set of bounds");

struct route_count {
	char method[8];
	char route[96];
	unsigned code;
	struct hist h;
};

struct type_hist {
	char type[32];
	struct hist h;
};

static struct {
	struct route_count routes[METRICS_MAX_ROUTES];
	size_t n_routes;
	uint64_t dropped_routes;
	struct type_hist types[METRICS_MAX_TYPES];
	size_t n_types;
	struct type_hist verdicts[METRICS_MAX_VERDICTS];
	size_t n_verdicts;
} reg;

static void hist_add(struct hist *h, const double *bounds, size_t n, double v)
{
	for (size_t i = 0; i < n; i++) {
		if (v <= bounds[i]) {
			h->buckets[i]++;
			break;
		}
	}
	h->count++;
	h->sum += v;
}

/* The histogram of name in a table of at most cap, added when missing;
 * NULL when the table is full. */
static struct type_hist *hist_of(struct type_hist *tab, size_t *n, size_t cap, const char *name)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp(tab[i].type, name) == 0)
			return &tab[i];
	if (*n == cap)
		return NULL;
	snprintf(tab[*n].type, sizeof(tab[*n].type), "%s", name);
	return &tab[(*n)++];
}

void metrics_reset(void)
{
	memset(&reg, 0, sizeof(reg));
}

static struct route_count *route_of(const char *method, const char *route, unsigned code)
{
	struct route_count *rc;

	for (size_t i = 0; i < reg.n_routes; i++) {
		rc = &reg.routes[i];
		if (rc->code == code && strcmp(rc->route, route) == 0 &&
		    strcmp(rc->method, method) == 0)
			return rc;
	}
	if (reg.n_routes == METRICS_MAX_ROUTES)
		return NULL;
	rc = &reg.routes[reg.n_routes++];
	snprintf(rc->method, sizeof(rc->method), "%s", method);
	snprintf(rc->route, sizeof(rc->route), "%s", route);
	rc->code = code;
	return rc;
}

/* The method label: a method readyd serves, else "other", so a client
 * sending made-up methods cannot fill the table and crowd out the
 * series of real routes. */
static const char *method_label(const char *method)
{
	static const char *const known[] = {"GET",    "HEAD",    "POST", "PUT",
	                                    "DELETE", "OPTIONS", "PATCH"};

	for (size_t i = 0; method && i < RD_ARRAY_SIZE(known); i++)
		if (strcmp(method, known[i]) == 0)
			return known[i];
	return "other";
}

void metrics_http_request(const char *method, const char *route, unsigned code, double seconds)
{
	struct route_count *rc = route_of(method_label(method), route ? route : "unmatched", code);

	if (!rc) {
		reg.dropped_routes++;
		return;
	}
	if (!isfinite(seconds) || seconds < 0)
		seconds = 0;
	hist_add(&rc->h, http_buckets, N_HTTP_BUCKETS, seconds);
}

void metrics_probe_observe(const char *type, double seconds)
{
	struct type_hist *h;

	if (!type || !isfinite(seconds) || seconds < 0)
		return;
	h = hist_of(reg.types, &reg.n_types, METRICS_MAX_TYPES, type);
	if (h)
		hist_add(&h->h, duration_buckets, N_BUCKETS, seconds);
}

void metrics_probe_declare(const char *type)
{
	if (type)
		(void)hist_of(reg.types, &reg.n_types, METRICS_MAX_TYPES, type);
}

void metrics_run_observe(const char *verdict, double seconds)
{
	struct type_hist *h;

	if (!isfinite(seconds) || seconds < 0)
		return;
	h = hist_of(reg.verdicts, &reg.n_verdicts, METRICS_MAX_VERDICTS,
	            verdict ? verdict : "none");
	if (h)
		hist_add(&h->h, duration_buckets, N_BUCKETS, seconds);
}

/* One character of a label value: backslash, double quote and newline
 * escaped. */
static void label_char(struct svg_buf *b, char c)
{
	if (c == '\\')
		svg_buf_puts(b, "\\\\");
	else if (c == '"')
		svg_buf_puts(b, "\\\"");
	else if (c == '\n')
		svg_buf_puts(b, "\\n");
	else
		svg_buf_put(b, &c, 1);
}

static void label(struct svg_buf *b, const char *s)
{
	for (; s && *s; s++)
		label_char(b, *s);
}

static void head(struct svg_buf *b, const char *name, const char *type, const char *help)
{
	svg_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Prometheus wants +Inf/-Inf/NaN spelled so (rd_fmt_double does); the
 * shortest form that reads back keeps every digit that matters. */
static void value(struct svg_buf *b, double v)
{
	char buf[RD_DOUBLE_LEN];

	rd_fmt_double(v, buf, sizeof(buf));
	svg_buf_printf(b, " %s\n", buf);
}

/* The le label of a bucket bound: %g is exact for the bounds above. */
static void hist_series(struct svg_buf *b, const char *name, const char *labels,
                        const double *bounds, size_t n, const struct hist *h)
{
	uint64_t cum = 0;

	for (size_t k = 0; k < n; k++) {
		cum += h->buckets[k];
		svg_buf_printf(b, "%s_bucket{%s,le=\"%g\"} %llu\n", name, labels, bounds[k],
		               (unsigned long long)cum);
	}
	svg_buf_printf(b, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels,
	               (unsigned long long)h->count);
	svg_buf_printf(b, "%s_sum{%s}", name, labels);
	value(b, h->sum);
	svg_buf_printf(b, "%s_count{%s} %llu\n", name, labels, (unsigned long long)h->count);
}

/* kv: name, value, name, value, ..., NULL. The label set without braces,
 * values escaped; a new string, NULL when out of memory. */
static char *labels_of(const char *const *kv)
{
	struct svg_buf l;

	svg_buf_init(&l);
	for (size_t i = 0; kv[i]; i += 2) {
		svg_buf_printf(&l, "%s%s=\"", i ? "," : "", kv[i]);
		label(&l, kv[i + 1]);
		svg_buf_puts(&l, "\"");
	}
	return svg_buf_steal(&l, NULL);
}

static void render_http(struct svg_buf *b)
{
	head(b, "readyd_http_requests_total", "counter",
	     "HTTP requests answered, by method, route pattern and status code.");
	for (size_t i = 0; i < reg.n_routes; i++) {
		svg_buf_puts(b, "readyd_http_requests_total{method=\"");
		label(b, reg.routes[i].method);
		svg_buf_puts(b, "\",route=\"");
		label(b, reg.routes[i].route);
		svg_buf_printf(b, "\",code=\"%u\"} %llu\n", reg.routes[i].code,
		               (unsigned long long)reg.routes[i].h.count);
	}
	head(b, "readyd_http_request_duration_seconds", "histogram",
	     "Time from a request's arrival to its answer, by method, route pattern and status "
	     "code.");
	for (size_t i = 0; i < reg.n_routes; i++) {
		const struct route_count *rc = &reg.routes[i];
		char code[16], *l;

		snprintf(code, sizeof(code), "%u", rc->code);
		l = labels_of((const char *const[]){"method", rc->method, "route", rc->route,
		                                    "code", code, NULL});
		if (l)
			hist_series(b, "readyd_http_request_duration_seconds", l, http_buckets,
			            N_HTTP_BUCKETS, &rc->h);
		free(l);
	}
}

static void render_hists(struct svg_buf *b, const char *name, const char *key,
                         const struct type_hist *tab, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char *l = labels_of((const char *const[]){key, tab[i].type, NULL});

		if (l)
			hist_series(b, name, l, duration_buckets, N_BUCKETS, &tab[i].h);
		free(l);
	}
}

/* Every verdict from the start, at zero until observed: a series that
 * appears at 1 hides its first increase from rate(). */
static void render_verdicts(struct svg_buf *b)
{
	static const char *const known[] = {"PASS", "FAIL", "ERROR", "none"};
	struct type_hist all[METRICS_MAX_VERDICTS] = {{"", {{0}, 0, 0}}};
	size_t n = 0;

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		(void)hist_of(all, &n, METRICS_MAX_VERDICTS, known[i]);
	for (size_t i = 0; i < reg.n_verdicts; i++) {
		struct type_hist *h = hist_of(all, &n, METRICS_MAX_VERDICTS, reg.verdicts[i].type);

		if (h)
			h->h = reg.verdicts[i].h;
	}
	render_hists(b, "readyd_run_duration_seconds", "verdict", all, n);
}

static void render_probe_hist(struct svg_buf *b)
{
	head(b, "readyd_probe_duration_seconds", "histogram",
	     "Wall time of finished probes, by probe type.");
	render_hists(b, "readyd_probe_duration_seconds", "type", reg.types, reg.n_types);
	head(b, "readyd_run_duration_seconds", "histogram",
	     "Wall time of ended runs from start to end, by verdict (none: cancelled or "
	     "interrupted).");
	render_verdicts(b);
}

static void render_runs(struct svg_buf *b, json_t *snap)
{
	/* Final states only: a run stays in them, so the counter never goes
	 * down; queued and running are the gauges below. */
	json_t *by = json_object_get(snap, "runs_by_state");

	head(b, "readyd_runs_total", "counter", "Runs ended, by final state.");
	for (enum run_state st = 0; st < RUN_STATE_COUNT; st++) {
		const char *name = run_state_to_string(st);

		if (run_state_is_final(st))
			svg_buf_printf(b, "readyd_runs_total{state=\"%s\"} %lld\n", name,
			               (long long)json_integer_value(json_object_get(by, name)));
	}
	head(b, "readyd_runs_active", "gauge", "Runs running now.");
	svg_buf_printf(b, "readyd_runs_active %lld\n",
	               (long long)json_integer_value(
	                       json_object_get(by, run_state_to_string(RUN_RUNNING))));
	head(b, "readyd_runs_queued", "gauge", "Runs queued, waiting for a slot.");
	svg_buf_printf(b, "readyd_runs_queued %lld\n",
	               (long long)json_integer_value(
	                       json_object_get(by, run_state_to_string(RUN_QUEUED))));
	if (json_is_integer(json_object_get(snap, "queued_limit"))) {
		head(b, "readyd_runs_queued_limit", "gauge",
		     "Runs the queue holds (scheduler.max_queued); submits beyond are refused.");
		svg_buf_printf(
		        b, "readyd_runs_queued_limit %lld\n",
		        (long long)json_integer_value(json_object_get(snap, "queued_limit")));
	}
	head(b, "readyd_db_size_bytes", "gauge", "Size of the store's database.");
	svg_buf_printf(b, "readyd_db_size_bytes %lld\n",
	               (long long)json_integer_value(json_object_get(snap, "db_size_bytes")));
	if (json_is_boolean(json_object_get(snap, "store_degraded"))) {
		head(b, "readyd_store_degraded", "gauge",
		     "1 while the store cannot keep what it is given (a write pending, the "
		     "database file gone); /readyz says why.");
		svg_buf_printf(b, "readyd_store_degraded %d\n",
		               json_is_true(json_object_get(snap, "store_degraded")));
	}
}

/* The kept answers of polled reads (the snapshot's "answer_cache", which
 * the API adds): how often a poll was answered from them, and their size. */
static void render_cache(struct svg_buf *b, json_t *snap)
{
	static const struct {
		const char *key, *name, *type, *help;
	} fams[] = {
	        {"hits", "readyd_answer_cache_hits_total", "counter",
	         "Polled answers (gates, history, trends) served from their kept bytes."},
	        {"misses", "readyd_answer_cache_misses_total", "counter",
	         "Polled answers read from the store because none was kept for the query."},
	        {"entries", "readyd_answer_cache_entries", "gauge", "Answers kept."},
	        {"bytes", "readyd_answer_cache_bytes", "gauge", "Bytes of the answers kept."},
	        {"max_bytes", "readyd_answer_cache_max_bytes", "gauge",
	         "The cap on kept answers (api.cache_memory)."},
	};
	json_t *c = json_object_get(snap, "answer_cache"), *v;

	for (size_t i = 0; i < sizeof(fams) / sizeof(fams[0]); i++) {
		v = json_object_get(c, fams[i].key);
		if (!json_is_integer(v))
			continue;
		head(b, fams[i].name, fams[i].type, fams[i].help);
		svg_buf_printf(b, "%s %lld\n", fams[i].name, (long long)json_integer_value(v));
	}
}

/* The process_* families every Prometheus client library exports, from
 * the snapshot's "process" object (the caller read /proc). */
static void render_process(struct svg_buf *b, json_t *snap)
{
	static const struct {
		const char *key, *name, *type, *help;
	} fams[] = {
	        {"cpu_seconds", "process_cpu_seconds_total", "counter",
	         "Total user and system CPU time spent in seconds."},
	        {"resident_bytes", "process_resident_memory_bytes", "gauge",
	         "Resident memory size in bytes."},
	        {"virtual_bytes", "process_virtual_memory_bytes", "gauge",
	         "Virtual memory size in bytes."},
	        {"open_fds", "process_open_fds", "gauge", "Number of open file descriptors."},
	        {"max_fds", "process_max_fds", "gauge", "Maximum number of open file descriptors."},
	        {"start_time_seconds", "process_start_time_seconds", "gauge",
	         "Start time of the process since unix epoch in seconds."},
	};
	json_t *proc = json_object_get(snap, "process"), *v;

	for (size_t i = 0; i < sizeof(fams) / sizeof(fams[0]); i++) {
		v = json_object_get(proc, fams[i].key);
		if (!json_is_number(v))
			continue;
		head(b, fams[i].name, fams[i].type, fams[i].help);
		svg_buf_puts(b, fams[i].name);
		value(b, json_number_value(v));
	}
}

static void svc_labels(struct svg_buf *b, json_t *g)
{
	svg_buf_puts(b, "{service=\"");
	label(b, json_string_value(json_object_get(g, "service")));
	svg_buf_puts(b, "\",environment=\"");
	label(b, json_string_value(json_object_get(g, "environment")));
	svg_buf_puts(b, "\"");
}

/* Prometheus wants base units: a metric whose name ends in a unit other
 * than the base one is shown in the base one, renamed to match. */
static const struct {
	const char *suffix, *base;
	double factor;
} unit_map[] = {
        {"_ms", "_seconds", 0.001},
        {"_s", "_seconds", 1},
        {"_percent", "_ratio", 0.01},
};

/* One readyd_gate_metric_value series: "PROBE.METRIC" split into the
 * probe and metric labels, the metric in base units. */
static void gate_value(struct svg_buf *b, json_t *g, const char *gated, double v)
{
	const char *dot = strchr(gated, '.'), *metric = dot ? dot + 1 : gated;
	size_t mlen = strlen(metric), plen = dot ? (size_t)(dot - gated) : 0;
	const char *base = NULL;

	for (size_t k = 0; k < sizeof(unit_map) / sizeof(unit_map[0]) && !base; k++) {
		size_t sl = strlen(unit_map[k].suffix);

		if (mlen > sl && strcmp(metric + mlen - sl, unit_map[k].suffix) == 0) {
			base = unit_map[k].base;
			mlen -= sl;
			v *= unit_map[k].factor;
		}
	}
	svg_buf_puts(b, "readyd_gate_metric_value");
	svc_labels(b, g);
	svg_buf_puts(b, ",probe=\"");
	for (size_t k = 0; k < plen; k++)
		label_char(b, gated[k]);
	svg_buf_puts(b, "\",metric=\"");
	for (size_t k = 0; k < mlen; k++)
		label_char(b, metric[k]);
	svg_buf_printf(b, "%s\"}", base ? base : "");
	value(b, v);
}

/* One series per verdict, 1 for the current one: Prometheus' "state set"
 * convention, so `readyd_gate_verdict{verdict="FAIL"} == 1` alerts. */
static void render_gates(struct svg_buf *b, json_t *snap)
{
	json_t *gates = json_object_get(snap, "gates"), *g;
	size_t i;

	head(b, "readyd_gate_verdict", "gauge",
	     "Last verdict of each service and environment: 1 for the current verdict.");
	json_array_foreach (gates, i, g) {
		const char *v = json_string_value(json_object_get(g, "verdict"));

		for (enum verdict k = VERDICT_PASS; k <= VERDICT_ERROR; k++) {
			svg_buf_puts(b, "readyd_gate_verdict");
			svc_labels(b, g);
			svg_buf_printf(b, ",verdict=\"%s\"} %d\n", gate_verdict_to_string(k),
			               v && strcmp(v, gate_verdict_to_string(k)) == 0);
		}
	}
	head(b, "readyd_gate_last_run_timestamp_seconds", "gauge",
	     "End time of the last decided run of each service and environment.");
	json_array_foreach (gates, i, g) {
		int64_t ms;

		if (rd_time_parse(json_string_value(json_object_get(g, "finished_at")), &ms) < 0)
			continue;
		svg_buf_puts(b, "readyd_gate_last_run_timestamp_seconds");
		svc_labels(b, g);
		svg_buf_puts(b, "}");
		value(b, (double)ms / 1000.0);
	}
	head(b, "readyd_gate_metric_value", "gauge",
	     "Last measured value of each gated metric of each service and environment, in "
	     "base units (_ms and _s as _seconds, _percent as _ratio).");
	json_array_foreach (gates, i, g) {
		const char *metric;
		json_t *v;

		json_object_foreach (json_object_get(g, "values"), metric, v) {
			if (json_is_number(v))
				gate_value(b, g, metric, json_number_value(v));
		}
	}
}

char *metrics_render(json_t *snap, const char *version, size_t *ret_len)
{
	struct svg_buf b;

	svg_buf_init(&b);
	head(&b, "readyd_build_info", "gauge", "Always 1; the version is a label.");
	svg_buf_puts(&b, "readyd_build_info{version=\"");
	label(&b, version);
	svg_buf_puts(&b, "\"} 1\n");
	render_http(&b);
	render_probe_hist(&b);
	render_runs(&b, snap);
	render_process(&b, snap);
	render_cache(&b, snap);
	render_gates(&b, snap);
	return svg_buf_steal(&b, ret_len);
}
