/* report_html: the run as one self-contained HTML page (see report.h):
 * verdict banner, gate table, a latency percentile chart and a per-second
 * timeline chart per load probe, trend sparklines of the gated metrics,
 * probes and checklist. Inline CSS and SVG only: no script, no external
 * asset, so it can be archived as a CI artifact and opened offline.
 *
 * Pure. Every string from the run goes through svg_buf_esc() (text and
 * attribute safe), so a spec or error holding <script> renders as text.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/gate/gate.h"
#include "lib/report/report.h"
#include "lib/report/svg.h"
#include "lib/util/json_text.h"
#include "lib/util/util.h"

#define TIMELINE_MAX 600 /* points drawn; longer timelines are averaged down */

static const char css[] =
        "body{font-family:sans-serif;margin:24px;color:#24292f;background:#fff}"
        ".banner{padding:16px 20px;border-radius:6px;color:#fff;font-size:24px;"
        "font-weight:bold;margin-bottom:16px}"
        ".PASS{background:#1a7f37}.FAIL{background:#cf222e}.ERROR{background:#9a6700}"
        ".NONE{background:#57606a}"
        "table{border-collapse:collapse;margin:8px 0 20px}"
        "td,th{border:1px solid #d0d7de;padding:4px 8px;text-align:left;font-size:13px}"
        "th{background:#f6f8fa}.o-pass{color:#1a7f37}.o-fail{color:#cf222e}"
        ".o-error{color:#9a6700}.o-waived,.o-no-baseline{color:#57606a}"
        ".muted{color:#57606a}svg{display:block;margin:8px 0}";

static void esc(struct svg_buf *b, json_t *v)
{
	svg_buf_esc(b, json_string_value(v));
}

static void num(struct svg_buf *b, json_t *v)
{
	if (json_is_number(v)) {
		char buf[RD_DOUBLE_LEN];

		rd_fmt_double(json_number_value(v), buf, sizeof(buf));
		svg_buf_puts(b, buf);
	} else {
		svg_buf_puts(b, "n/a");
	}
}

static void banner(struct svg_buf *b, json_t *run)
{
	const char *v = json_string_value(json_object_get(run, "verdict"));
	enum verdict verdict;
	bool known = gate_verdict_from_string(v, &verdict) == 0;

	svg_buf_printf(b, "<div class=\"banner %s\" id=\"verdict\">", known ? v : "NONE");
	svg_buf_esc(b, v ? v : "NOT DECIDED");
	svg_buf_puts(b, " &#8212; ");
	esc(b, json_object_get(run, "service"));
	svg_buf_puts(b, " ");
	esc(b, json_object_get(run, "version"));
	svg_buf_puts(b, " (");
	esc(b, json_object_get(run, "environment"));
	svg_buf_printf(b, ")</div>\n<p class=\"muted\">Run %lld, state ",
	               (long long)json_integer_value(json_object_get(run, "id")));
	esc(b, json_object_get(run, "state"));
	svg_buf_puts(b, ", created ");
	esc(b, json_object_get(run, "created_at"));
	svg_buf_puts(b, ", finished ");
	esc(b, json_object_get(run, "finished_at"));
	svg_buf_puts(b, ".</p>\n");
	if (json_is_string(json_object_get(run, "error"))) {
		svg_buf_puts(b, "<p class=\"o-error\">Error: ");
		esc(b, json_object_get(run, "error"));
		svg_buf_puts(b, "</p>\n");
	}
	if (json_is_object(json_object_get(run, "invalidated"))) {
		svg_buf_puts(b, "<p class=\"o-error\" id=\"invalidated\">Invalidated at ");
		esc(b, json_object_get(json_object_get(run, "invalidated"), "at"));
		svg_buf_puts(b, ": ");
		esc(b, json_object_get(json_object_get(run, "invalidated"), "reason"));
		svg_buf_puts(b, " (excluded from baselines and trends).</p>\n");
	}
}

static void gate_row(struct svg_buf *b, json_t *run, json_t *g)
{
	const char *o = json_string_value(json_object_get(g, "outcome"));

	svg_buf_puts(b, "<tr><td>");
	svg_buf_esc(b, report_gate_section(run, g));
	svg_buf_puts(b, "</td><td><code>");
	esc(b, json_object_get(g, "expr"));
	svg_buf_puts(b, "</code></td><td>");
	num(b, json_object_get(g, "value"));
	svg_buf_puts(b, "</td><td>");
	esc(b, json_object_get(g, "op"));
	svg_buf_puts(b, " ");
	num(b, json_object_get(g, "threshold"));
	svg_buf_puts(b, "</td><td>");
	if (json_is_number(json_object_get(g, "baseline"))) {
		num(b, json_object_get(g, "baseline"));
		svg_buf_printf(b, " (run %lld)",
		               (long long)json_integer_value(json_object_get(g, "baseline_run")));
	}
	svg_buf_puts(b, "</td><td class=\"o-");
	svg_buf_esc(b, o ? o : "error");
	svg_buf_puts(b, "\">");
	svg_buf_esc(b, o ? o : "unknown");
	svg_buf_puts(b, json_is_true(json_object_get(g, "advisory")) ? " (advisory)" : "");
	svg_buf_puts(b, "</td><td>");
	esc(b, json_object_get(g, "reason"));
	svg_buf_puts(b, "</td></tr>\n");
}

static void gate_table(struct svg_buf *b, json_t *run)
{
	size_t i;
	json_t *g;

	svg_buf_puts(b, "<h2>Gates</h2>\n");
	if (json_array_size(json_object_get(run, "gates")) == 0) {
		svg_buf_puts(b, "<p class=\"muted\">No gates in the spec.</p>\n");
		return;
	}
	svg_buf_puts(b,
	             "<table id=\"gates\"><tr><th>Section</th><th>Gate</th><th>Value</th>"
	             "<th>Threshold</th><th>Baseline</th><th>Outcome</th><th>Reason</th></tr>\n");
	json_array_foreach (json_object_get(run, "gates"), i, g)
		gate_row(b, run, g);
	svg_buf_puts(b, "</table>\n");
}

static void percentile_chart(struct svg_buf *b, json_t *p)
{
	static const char *const keys[] = {"p50_ms", "p75_ms",  "p90_ms", "p95_ms",
	                                   "p99_ms", "p999_ms", "max_ms"};
	static const char *const labels[] = {"p50", "p75", "p90", "p95", "p99", "p99.9", "max"};
	const char *shown[7];
	double values[7];
	size_t n = 0;
	char title[160];
	json_t *m = json_object_get(p, "metrics");

	for (size_t i = 0; i < 7; i++) {
		json_t *v = json_object_get(m, keys[i]);

		if (!json_is_number(v))
			continue;
		shown[n] = labels[i];
		values[n++] = json_number_value(v);
	}
	if (n == 0) {
		svg_buf_puts(b, "<p class=\"muted\">No latency percentiles recorded.</p>\n");
		return;
	}
	snprintf(title, sizeof(title), "Latency percentiles of %s",
	         json_string_value(json_object_get(p, "name")));
	svg_bar_chart(b, title, shown, values, n, "ms");
}

/* A number from a timeline point by the first key present. */
static double point_value(json_t *pt, const char *const *keys)
{
	for (; *keys; keys++) {
		json_t *v = json_object_get(pt, *keys);

		if (json_is_number(v))
			return json_number_value(v);
	}
	return NAN;
}

/* Averages a timeline down to at most TIMELINE_MAX points. */
static size_t extract_series(json_t *tl, const char *const *keys, double *out)
{
	size_t n = json_array_size(tl), step = (n + TIMELINE_MAX - 1) / TIMELINE_MAX, k = 0;

	for (size_t i = 0; step && i < n; i += step, k++) {
		double sum = 0;
		size_t cnt = 0;

		for (size_t j = i; j < i + step && j < n; j++) {
			double v = point_value(json_array_get(tl, j), keys);

			if (isfinite(v))
				sum += v, cnt++;
		}
		out[k] = cnt ? sum / (double)cnt : NAN;
	}
	return k;
}

static void timeline_chart(struct svg_buf *b, json_t *p)
{
	static const char *const rps_keys[] = {"requests", "rps", "throughput_rps", NULL};
	static const char *const lat_keys[] = {"p99_ms", "p95_ms", "p50_ms", "mean_ms", NULL};
	json_t *tl = json_object_get(json_object_get(p, "details"), "timeline");
	double rps[TIMELINE_MAX], lat[TIMELINE_MAX];
	char title[160];
	size_t n;

	if (!json_is_array(tl) || json_array_size(tl) == 0) {
		svg_buf_puts(b, "<p class=\"muted timeline-none\">No timeline recorded for this "
		                "probe.</p>\n");
		return;
	}
	n = extract_series(tl, rps_keys, rps);
	extract_series(tl, lat_keys, lat);
	snprintf(title, sizeof(title), "Per-second requests (all answers) and p99 latency of %s",
	         json_string_value(json_object_get(p, "name")));
	svg_timeline_chart(b, title, rps, "requests/s", lat, "p99 ms (right axis)", n);
}

static void capacity_row(struct svg_buf *b, size_t i, json_t *pt)
{
	svg_buf_printf(b, "<tr><td>%zu</td><td>", i + 1);
	num(b, json_object_get(pt, "rate"));
	svg_buf_puts(b, "</td><td>");
	num(b, json_object_get(pt, "delivered_rps"));
	svg_buf_puts(b, "</td><td>");
	num(b, json_object_get(pt, "p95_ms"));
	svg_buf_puts(b, "</td><td>");
	num(b, json_object_get(pt, "errors"));
	svg_buf_puts(b, json_is_true(json_object_get(pt, "pass"))
	                        ? "</td><td class=\"o-pass\">pass</td></tr>\n"
	                        : "</td><td class=\"o-fail\">fail</td></tr>\n");
}

/* A capacity search: every step as a table row, and delivered rate with
 * p95 per step as a chart. */
static void capacity_steps(struct svg_buf *b, json_t *p)
{
	json_t *pts = json_object_get(json_object_get(p, "details"), "points"), *pt;
	size_t i, n = json_array_size(pts);
	double delivered[TIMELINE_MAX], p95[TIMELINE_MAX];
	char title[160];

	if (n == 0)
		return;
	svg_buf_puts(b, "<table id=\"capacity-steps-");
	esc(b, json_object_get(p, "name"));
	svg_buf_puts(b, "\"><tr><th>Step</th><th>Offered req/s</th><th>Delivered req/s</th>"
	                "<th>p95 ms</th><th>Errors</th><th>SLO</th></tr>\n");
	json_array_foreach (pts, i, pt) {
		capacity_row(b, i, pt);
		if (i < TIMELINE_MAX) {
			json_t *d = json_object_get(pt, "delivered_rps"),
			       *q = json_object_get(pt, "p95_ms");

			delivered[i] = json_is_number(d) ? json_number_value(d) : NAN;
			p95[i] = json_is_number(q) ? json_number_value(q) : NAN;
		}
	}
	svg_buf_puts(b, "</table>\n");
	snprintf(title, sizeof(title), "Capacity search of %s: delivered req/s and p95 per step",
	         json_string_value(json_object_get(p, "name")));
	svg_timeline_chart(b, title, delivered, "delivered req/s", p95, "p95 ms (right axis)",
	                   n < TIMELINE_MAX ? n : TIMELINE_MAX);
}

/* A compare probe: each percentile of both sides, the ratio and its
 * interval. */
static void compare_table(struct svg_buf *b, json_t *p)
{
	static const char *const q[] = {"p50", "p95", "p99"};
	json_t *m = json_object_get(p, "metrics");
	char key[48];

	svg_buf_puts(b, "<table id=\"compare-");
	esc(b, json_object_get(p, "name"));
	svg_buf_puts(b, "\"><tr><th>Percentile</th><th>Baseline ms</th><th>Candidate ms</th>"
	                "<th>Ratio</th><th>Interval</th><th>Significant</th></tr>\n");
	for (size_t i = 0; i < RD_ARRAY_SIZE(q); i++) {
		svg_buf_printf(b, "<tr><td>%s</td><td>", q[i]);
		snprintf(key, sizeof(key), "baseline_%s_ms", q[i]);
		num(b, json_object_get(m, key));
		svg_buf_puts(b, "</td><td>");
		snprintf(key, sizeof(key), "candidate_%s_ms", q[i]);
		num(b, json_object_get(m, key));
		svg_buf_puts(b, "</td><td>");
		snprintf(key, sizeof(key), "%s_ratio", q[i]);
		num(b, json_object_get(m, key));
		svg_buf_puts(b, "</td><td>");
		snprintf(key, sizeof(key), "%s_ratio_ci_low", q[i]);
		num(b, json_object_get(m, key));
		svg_buf_puts(b, " .. ");
		snprintf(key, sizeof(key), "%s_ratio_ci_high", q[i]);
		num(b, json_object_get(m, key));
		svg_buf_puts(b, "</td><td>");
		snprintf(key, sizeof(key), "%s_significant", q[i]);
		num(b, json_object_get(m, key));
		svg_buf_puts(b, "</td></tr>\n");
	}
	svg_buf_puts(b, "</table>\n");
}

static void load_charts(struct svg_buf *b, json_t *run)
{
	size_t i, shown = 0;
	json_t *p;

	svg_buf_puts(b, "<h2>Performance</h2>\n");
	json_array_foreach (json_object_get(run, "probes"), i, p) {
		const char *t = json_string_value(json_object_get(p, "type"));

		if (!t || (strcmp(t, "load") != 0 && strcmp(t, "capacity") != 0 &&
		           strcmp(t, "compare") != 0))
			continue;
		svg_buf_puts(b, "<h3>");
		esc(b, json_object_get(p, "name"));
		svg_buf_puts(b, "</h3>\n");
		if (json_is_string(json_object_get(json_object_get(p, "details"), "warning"))) {
			svg_buf_puts(b, "<p class=\"o-fail warning\">Warning: ");
			esc(b, json_object_get(json_object_get(p, "details"), "warning"));
			svg_buf_puts(b, "</p>\n");
		}
		if (strcmp(t, "capacity") == 0) {
			capacity_steps(b, p);
		} else if (strcmp(t, "compare") == 0) {
			compare_table(b, p);
		} else {
			percentile_chart(b, p);
			timeline_chart(b, p);
		}
		shown++;
	}
	if (!shown)
		svg_buf_puts(b, "<p class=\"muted\">No load probes in this run.</p>\n");
}

static void trend_row(struct svg_buf *b, json_t *t)
{
	json_t *pts = json_object_get(t, "points");
	size_t n = json_array_size(pts);
	double *v;

	if (n > SVG_MAX_POINTS)
		n = SVG_MAX_POINTS;
	v = malloc((n ? n : 1) * sizeof(*v));
	if (!v) {
		b->oom = true;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *x = json_object_get(json_array_get(pts, i), "value");

		v[i] = json_is_number(x) ? json_number_value(x) : NAN;
	}
	svg_buf_puts(b, "<tr><td><code>");
	esc(b, json_object_get(t, "metric"));
	svg_buf_printf(b, "</code></td><td>%zu</td><td>", n);
	svg_sparkline(b, v, n, 160, 32);
	svg_buf_puts(b, "</td><td>");
	num(b, n ? json_object_get(json_array_get(pts, n - 1), "value") : NULL);
	svg_buf_puts(b, "</td></tr>\n");
	free(v);
}

static void trends_table(struct svg_buf *b, json_t *trends)
{
	size_t i;
	json_t *t;

	svg_buf_puts(b, "<h2>Trends over the last runs, up to this one</h2>\n");
	if (json_array_size(trends) == 0) {
		svg_buf_puts(b, "<p class=\"muted\">No history of gated metrics yet.</p>\n");
		return;
	}
	svg_buf_puts(b, "<table id=\"trends\"><tr><th>Metric</th><th>Runs</th><th>Trend</th>"
	                "<th>Last</th></tr>\n");
	json_array_foreach (trends, i, t)
		trend_row(b, t);
	svg_buf_puts(b, "</table>\n");
}

static void probe_table(struct svg_buf *b, json_t *run)
{
	size_t i;
	json_t *p;

	svg_buf_puts(b, "<h2>Probes</h2>\n<table id=\"probes\"><tr><th>Probe</th><th>Type</th>"
	                "<th>Section</th><th>State</th><th>Metrics</th><th>Error</th></tr>\n");
	json_array_foreach (json_object_get(run, "probes"), i, p) {
		const char *k;
		json_t *v;

		svg_buf_puts(b, "<tr><td>");
		esc(b, json_object_get(p, "name"));
		svg_buf_puts(b, "</td><td>");
		esc(b, json_object_get(p, "type"));
		svg_buf_puts(b, "</td><td>");
		svg_buf_esc(b,
		            report_section_of_type(json_string_value(json_object_get(p, "type"))));
		svg_buf_puts(b, "</td><td>");
		esc(b, json_object_get(p, "state"));
		svg_buf_puts(b, "</td><td>");
		json_object_foreach (json_object_get(p, "metrics"), k, v) {
			svg_buf_esc(b, k);
			svg_buf_puts(b, "=");
			num(b, v);
			svg_buf_puts(b, " ");
		}
		svg_buf_puts(b, "</td><td>");
		esc(b, json_object_get(p, "error"));
		svg_buf_puts(b, "</td></tr>\n");
	}
	svg_buf_puts(b, "</table>\n");
}

/* Client and server latency side by side, when the run compared them. */
static void reconciliation_table(struct svg_buf *b, json_t *run)
{
	json_t *rec = report_reconciliation(run), *e;
	char line[1024];
	size_t i;

	if (json_array_size(rec) > 0)
		svg_buf_puts(b,
		             "<h2>Client and server latency</h2>\n<table id=\"reconciliation\">"
		             "<tr><th>Client</th><th>Server</th><th>Gap ratio</th><th>Flagged</th>"
		             "<th>Side by side</th></tr>\n");
	json_array_foreach (rec, i, e) {
		json_t *fl = json_object_get(e, "flagged");

		report_reconcile_text(e, line, sizeof(line));
		svg_buf_puts(b, "<tr><td>");
		esc(b, json_object_get(e, "client_probe"));
		svg_buf_puts(b, "</td><td>");
		esc(b, json_object_get(e, "server_query"));
		svg_buf_puts(b, "</td><td>");
		num(b, json_object_get(e, "gap_ratio"));
		svg_buf_printf(b, "</td><td class=\"%s\">%s</td><td>",
		               json_is_true(fl)    ? "o-fail"
		               : json_is_false(fl) ? "o-pass"
		                                   : "o-error",
		               json_is_true(fl)    ? "FLAGGED"
		               : json_is_false(fl) ? "no"
		                                   : "no data");
		svg_buf_esc(b, line);
		svg_buf_puts(b, "</td></tr>\n");
	}
	if (json_array_size(rec) > 0)
		svg_buf_puts(b, "</table>\n");
	json_decref(rec);
}

static void checklist_table(struct svg_buf *b, json_t *run)
{
	size_t i;
	json_t *c;

	svg_buf_puts(b, "<h2>Checklist</h2>\n");
	if (json_array_size(json_object_get(run, "checklist")) == 0) {
		svg_buf_puts(b, "<p class=\"muted\">No checklist items in the spec.</p>\n");
		return;
	}
	svg_buf_puts(b, "<table id=\"checklist\"><tr><th>Item</th><th>Required</th>"
	                "<th>Evidence</th><th>Outcome</th><th>Reason</th></tr>\n");
	json_array_foreach (json_object_get(run, "checklist"), i, c) {
		const char *o = json_string_value(json_object_get(c, "outcome"));

		svg_buf_puts(b, "<tr><td>");
		esc(b, json_object_get(c, "item"));
		svg_buf_printf(b, "</td><td>%s</td><td>",
		               json_is_true(json_object_get(c, "required")) ? "yes" : "no");
		esc(b, json_object_get(c, "evidence"));
		svg_buf_puts(b, "</td><td class=\"o-");
		svg_buf_esc(b, o ? o : "error");
		svg_buf_puts(b, "\">");
		svg_buf_esc(b, o);
		svg_buf_puts(b, "</td><td>");
		esc(b, json_object_get(c, "reason"));
		svg_buf_puts(b, "</td></tr>\n");
	}
	svg_buf_puts(b, "</table>\n");
}

static void waivers_list(struct svg_buf *b, json_t *run)
{
	json_t *ws = report_waivers_used(run), *w;
	size_t i;

	if (!ws)
		b->oom = true;
	if (json_array_size(ws) == 0) {
		json_decref(ws);
		return;
	}
	svg_buf_puts(b, "<h2>Waivers used</h2>\n<ul id=\"waivers\">\n");
	json_array_foreach (ws, i, w) {
		svg_buf_puts(b, "<li><code>");
		esc(b, json_object_get(w, "expr"));
		svg_buf_puts(b, "</code>: ");
		esc(b, json_object_get(w, "reason"));
		svg_buf_puts(b, " (approved by ");
		esc(b, json_object_get(w, "approver"));
		svg_buf_puts(b, ", expires ");
		esc(b, json_object_get(w, "expires_at"));
		svg_buf_puts(b, ")</li>\n");
	}
	svg_buf_puts(b, "</ul>\n");
	json_decref(ws);
}

const char *report_html_css(void)
{
	return css;
}

void report_html_body(struct svg_buf *b, json_t *run, json_t *trends)
{
	banner(b, run);
	gate_table(b, run);
	load_charts(b, run);
	trends_table(b, trends);
	probe_table(b, run);
	reconciliation_table(b, run);
	checklist_table(b, run);
	waivers_list(b, run);
}

char *report_html(json_t *run, json_t *spec, json_t *trends, size_t *ret_len)
{
	struct svg_buf b;

	(void)spec;
	svg_buf_init(&b);
	svg_buf_puts(&b,
	             "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
	             "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
	             "style-src 'unsafe-inline'; img-src data:\"><title>Readiness report: ");
	esc(&b, json_object_get(run, "service"));
	svg_buf_puts(&b, " ");
	esc(&b, json_object_get(run, "version"));
	svg_buf_printf(&b, "</title><style>%s</style></head><body>\n", css);
	report_html_body(&b, run, trends);
	svg_buf_puts(&b, "</body></html>\n");
	return svg_buf_steal(&b, ret_len);
}
