/* metrics: readyd's own counters and the Prometheus text exposition (see
 * metrics.h). Label values are escaped as the format requires (\\, \",
 * \n); metric names are fixed here, never taken from input.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lib/gate/gate.h"
#include "lib/report/metrics.h"
#include "lib/report/svg.h"
#include "lib/util/run_state.h"
#include "lib/util/util.h"

/* Upper bounds of readyd_probe_duration_seconds: probes last from
 * milliseconds (an http check) to many minutes (a capacity search). */
static const double duration_buckets[] = {0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800};
#define N_BUCKETS (sizeof(duration_buckets) / sizeof(duration_buckets[0]))

struct route_count {
	char method[8];
	char route[96];
	unsigned code;
	uint64_t n;
};

struct type_hist {
	char type[32];
	uint64_t buckets[N_BUCKETS]; /* non-cumulative; summed when rendered */
	uint64_t count;
	double sum;
};

static struct {
	struct route_count routes[METRICS_MAX_ROUTES];
	size_t n_routes;
	uint64_t dropped_routes;
	struct type_hist types[METRICS_MAX_TYPES];
	size_t n_types;
} reg;

void metrics_reset(void)
{
	memset(&reg, 0, sizeof(reg));
}

void metrics_http_request(const char *method, const char *route, unsigned code)
{
	struct route_count *rc;

	if (!route)
		route = "unmatched";
	if (!method)
		method = "";
	for (size_t i = 0; i < reg.n_routes; i++) {
		rc = &reg.routes[i];
		if (rc->code == code && strcmp(rc->route, route) == 0 &&
		    strcmp(rc->method, method) == 0) {
			rc->n++;
			return;
		}
	}
	if (reg.n_routes == METRICS_MAX_ROUTES) {
		reg.dropped_routes++;
		return;
	}
	rc = &reg.routes[reg.n_routes++];
	snprintf(rc->method, sizeof(rc->method), "%s", method);
	snprintf(rc->route, sizeof(rc->route), "%s", route);
	rc->code = code;
	rc->n = 1;
}

void metrics_probe_observe(const char *type, double seconds)
{
	struct type_hist *h = NULL;

	if (!type || !isfinite(seconds) || seconds < 0)
		return;
	for (size_t i = 0; i < reg.n_types && !h; i++)
		if (strcmp(reg.types[i].type, type) == 0)
			h = &reg.types[i];
	if (!h) {
		if (reg.n_types == METRICS_MAX_TYPES)
			return;
		h = &reg.types[reg.n_types++];
		snprintf(h->type, sizeof(h->type), "%s", type);
	}
	for (size_t i = 0; i < N_BUCKETS; i++) {
		if (seconds <= duration_buckets[i]) {
			h->buckets[i]++;
			break;
		}
	}
	h->count++;
	h->sum += seconds;
}

/* A label value: backslash, double quote and newline escaped. */
static void label(struct svg_buf *b, const char *s)
{
	for (; s && *s; s++) {
		if (*s == '\\')
			svg_buf_puts(b, "\\\\");
		else if (*s == '"')
			svg_buf_puts(b, "\\\"");
		else if (*s == '\n')
			svg_buf_puts(b, "\\n");
		else
			svg_buf_put(b, s, 1);
	}
}

static void head(struct svg_buf *b, const char *name, const char *type, const char *help)
{
	svg_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Prometheus wants +Inf/-Inf/NaN spelled so; %.17g keeps every digit. */
static void value(struct svg_buf *b, double v)
{
	if (isnan(v))
		svg_buf_puts(b, " NaN\n");
	else if (isinf(v))
		svg_buf_puts(b, v > 0 ? " +Inf\n" : " -Inf\n");
	else
		svg_buf_printf(b, " %.17g\n", v);
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
		               (unsigned long long)reg.routes[i].n);
	}
}

static void render_probe_hist(struct svg_buf *b)
{
	head(b, "readyd_probe_duration_seconds", "histogram",
	     "Wall time of finished probes, by probe type.");
	for (size_t i = 0; i < reg.n_types; i++) {
		const struct type_hist *h = &reg.types[i];
		uint64_t cum = 0;

		for (size_t k = 0; k < N_BUCKETS; k++) {
			cum += h->buckets[k];
			svg_buf_puts(b, "readyd_probe_duration_seconds_bucket{type=\"");
			label(b, h->type);
			svg_buf_printf(b, "\",le=\"%g\"} %llu\n", duration_buckets[k],
			               (unsigned long long)cum);
		}
		svg_buf_puts(b, "readyd_probe_duration_seconds_bucket{type=\"");
		label(b, h->type);
		svg_buf_printf(b, "\",le=\"+Inf\"} %llu\n", (unsigned long long)h->count);
		svg_buf_puts(b, "readyd_probe_duration_seconds_sum{type=\"");
		label(b, h->type);
		svg_buf_puts(b, "\"}");
		value(b, h->sum);
		svg_buf_puts(b, "readyd_probe_duration_seconds_count{type=\"");
		label(b, h->type);
		svg_buf_printf(b, "\"} %llu\n", (unsigned long long)h->count);
	}
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
	head(b, "readyd_queue_depth", "gauge", "Runs queued, waiting for a slot.");
	svg_buf_printf(b, "readyd_queue_depth %lld\n",
	               (long long)json_integer_value(
	                       json_object_get(by, run_state_to_string(RUN_QUEUED))));
	head(b, "readyd_db_size_bytes", "gauge", "Size of the SQLite database.");
	svg_buf_printf(b, "readyd_db_size_bytes %lld\n",
	               (long long)json_integer_value(json_object_get(snap, "db_size_bytes")));
}

static void svc_labels(struct svg_buf *b, json_t *g)
{
	svg_buf_puts(b, "{service=\"");
	label(b, json_string_value(json_object_get(g, "service")));
	svg_buf_puts(b, "\",environment=\"");
	label(b, json_string_value(json_object_get(g, "environment")));
	svg_buf_puts(b, "\"");
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
	     "Last measured value of each gated metric (PROBE.METRIC) of each service and "
	     "environment.");
	json_array_foreach (gates, i, g) {
		const char *metric;
		json_t *v;

		json_object_foreach (json_object_get(g, "values"), metric, v) {
			if (!json_is_number(v))
				continue;
			svg_buf_puts(b, "readyd_gate_metric_value");
			svc_labels(b, g);
			svg_buf_puts(b, ",metric=\"");
			label(b, metric);
			svg_buf_puts(b, "\"}");
			value(b, json_number_value(v));
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
	render_gates(&b, snap);
	return svg_buf_steal(&b, ret_len);
}
