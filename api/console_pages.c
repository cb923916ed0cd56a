/* console_pages: the web console's service page (history, waivers with
 * their revoke forms, trend charts with the gate's threshold and baseline
 * drawn in) and the comparison of two runs. Every string from a run or
 * spec is escaped by svg_buf_esc().
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "console.h"
#include "lib/report/report.h"
#include "lib/report/svg.h"
#include "lib/util/json_text.h"
#include "lib/util/run_state.h"
#include "lib/util/util.h"

#define HISTORY_ROWS 30
#define TREND_POINTS 30
#define TRENDS_MAX   12

json_t *console_load_run(struct api_req *req, const struct console_who *w, int64_t id)
{
	struct store *st = api_req_app(req)->store;
	json_t *run = NULL;
	char msg[64];
	int r = store_run_get(st, id, &run);

	if (r == 0 && api_req_sees(req, json_string_value(json_object_get(run, "service"))))
		return run;
	json_decref(run);
	snprintf(msg, sizeof(msg), "No run %lld.", (long long)id);
	console_error(req, w, r < 0 && r != -ENOENT ? 503 : 404, msg);
	return NULL;
}

/* ---- service page ---- */

static void history_row(struct svg_buf *b, struct store *st, json_t *h, json_t *older)
{
	long long id = (long long)json_integer_value(json_object_get(h, "run_id"));
	long long prev = (long long)json_integer_value(json_object_get(older, "run_id"));
	json_t *run = NULL, *used;

	svg_buf_printf(b,
	               "<tr><td data-label=\"Run\"><a href=\"/runs/%lld\">%lld</a></td>"
	               "<td data-label=\"Verdict\">",
	               id, id);
	console_verdict_badge(b, json_string_value(json_object_get(h, "verdict")));
	if (json_is_string(json_object_get(h, "invalidated_at")))
		svg_buf_puts(b, " <span class=\"tag\">&#8856; invalidated</span>");
	svg_buf_puts(b, "</td><td data-label=\"Version\">");
	svg_buf_esc(b, json_string_value(json_object_get(h, "version")));
	svg_buf_puts(b, "</td><td data-label=\"Environment\">");
	svg_buf_esc(b, json_string_value(json_object_get(h, "environment")));
	svg_buf_puts(b, "</td><td data-label=\"Submitted by\">");
	if (store_run_get(st, id, &run) == 0) {
		const char *by = json_string_value(json_object_get(run, "submitted_by"));

		svg_buf_esc(b, by ? by : "-");
		used = report_waivers_used(run);
		if (json_array_size(used) > 0)
			svg_buf_puts(b, " <span class=\"tag\">waived</span>");
		json_decref(used);
	}
	json_decref(run);
	svg_buf_puts(b, "</td><td data-label=\"Finished\">");
	console_age(b, json_string_value(json_object_get(h, "finished_at")));
	svg_buf_puts(b, "</td><td data-label=\"Compare\">");
	if (prev > 0)
		svg_buf_printf(b, "<a href=\"/compare?a=%lld&amp;b=%lld\">with run %lld</a>", prev,
		               id, prev);
	svg_buf_puts(b, "</td></tr>\n");
}

/* Points of a trend as chart points; labels and hrefs in strs (n*2 slots
 * of 64 bytes). */
static size_t trend_points(json_t *points, struct svg_point *pts, char (*strs)[64])
{
	json_t *p;
	size_t i, n = 0;

	json_array_foreach (points, i, p) {
		long long id = (long long)json_integer_value(json_object_get(p, "run_id"));

		if (n >= TREND_POINTS)
			break;
		snprintf(strs[2 * n], 64, "run %lld, %.40s", id,
		         json_string_value(json_object_get(p, "version")) ?: "");
		snprintf(strs[2 * n + 1], 64, "/runs/%lld", id);
		pts[n] = (struct svg_point){
		        json_number_value(json_object_get(p, "value")), strs[2 * n],
		        strs[2 * n + 1],
		        !json_is_string(json_object_get(p, "verdict")) ||
		                strcmp(json_string_value(json_object_get(p, "verdict")), "PASS") ==
		                        0};
		n++;
	}
	return n;
}

/* One trend chart for gate g of the newest run. */
static void trend_chart(struct svg_buf *b, struct store *st, json_t *run, json_t *g)
{
	const char *metric = json_string_value(json_object_get(g, "metric"));
	const char *dot = metric ? strchr(metric, '.') : NULL;
	static struct svg_point pts[TREND_POINTS];
	static char strs[2 * TREND_POINTS][64];
	char probe[128], title[300];
	json_t *points = NULL, *th = json_object_get(g, "threshold"),
	       *bl = json_object_get(g, "baseline");
	bool truncated;
	double base;
	int64_t base_run;
	struct store_trend_query q = {
	        .service = json_string_value(json_object_get(run, "service")),
	        .environment = json_string_value(json_object_get(run, "environment")),
	        .until_ms = INT64_MAX,
	        .limit = TREND_POINTS,
	};
	size_t n;

	if (!dot || (size_t)(dot - metric) >= sizeof(probe))
		return;
	memcpy(probe, metric, (size_t)(dot - metric));
	probe[dot - metric] = '\0';
	q.probe = probe;
	q.metric = dot + 1;
	if (store_trend(st, &q, &points, &truncated) < 0)
		return;
	n = trend_points(points, pts, strs);
	snprintf(title, sizeof(title), "%s (%s)", metric, q.environment ? q.environment : "");
	svg_buf_puts(b, "<figure class=\"trend\"><figcaption><code>");
	svg_buf_esc(b, json_string_value(json_object_get(g, "expr")));
	svg_buf_puts(b, "</code></figcaption>");
	if (json_is_number(bl))
		base = json_number_value(bl);
	else if (store_baseline(st, q.service, q.environment, probe, q.metric, 0, &base,
	                        &base_run) < 0)
		base = NAN;
	svg_trend_chart(b, title, pts, n, json_is_number(th) ? json_number_value(th) : NAN, base,
	                "");
	svg_buf_puts(b, "</figure>\n");
	json_decref(points);
}

static void trend_section(struct svg_buf *b, struct store *st, json_t *history)
{
	json_t *run = NULL, *g, *seen = json_object();
	size_t i, drawn = 0;

	svg_buf_puts(b, "<h2>Trends of the gated metrics</h2>\n");
	if (json_array_size(history) == 0 ||
	    store_run_get(st,
	                  json_integer_value(json_object_get(json_array_get(history, 0), "run_id")),
	                  &run) < 0) {
		svg_buf_puts(b, "<p class=\"muted\">No decided run yet.</p>");
		json_decref(seen);
		return;
	}
	json_array_foreach (json_object_get(run, "gates"), i, g) {
		const char *m = json_string_value(json_object_get(g, "metric"));

		if (!m || json_object_get(seen, m) || drawn >= TRENDS_MAX)
			continue;
		json_object_set_new(seen, m, json_true());
		trend_chart(b, st, run, g);
		drawn++;
	}
	json_decref(seen);
	json_decref(run);
}

static void waivers_section(struct svg_buf *b, const struct console_who *w, struct store *st,
                            const char *svc)
{
	json_t *items = NULL, *wv;
	size_t i;

	if (store_waivers_list(st, svc, rd_now_ms(), &items) < 0 || json_array_size(items) == 0) {
		json_decref(items);
		return;
	}
	svg_buf_puts(b, "<h2>Waivers</h2><ul class=\"waivers\" id=\"waivers\">");
	json_array_foreach (items, i, wv) {
		bool active = json_is_true(json_object_get(wv, "active"));
		int64_t id = json_integer_value(json_object_get(wv, "id"));

		svg_buf_printf(b, "<li id=\"waiver-%lld\"><code>", (long long)id);
		svg_buf_esc(b, json_string_value(json_object_get(wv, "expr")));
		svg_buf_puts(b, "</code> ");
		svg_buf_esc(b, json_string_value(json_object_get(wv, "reason")));
		svg_buf_puts(b, " (approved by ");
		svg_buf_esc(b, json_string_value(json_object_get(wv, "approver")));
		svg_buf_puts(b, active                                              ? "; active)"
		                : json_is_string(json_object_get(wv, "revoked_at")) ? "; revoked)"
		                                                                    : "; expired)");
		if (active)
			console_waiver_revoke_form(b, w, svc, id);
		svg_buf_puts(b, "</li>");
	}
	svg_buf_puts(b, "</ul>\n");
	json_decref(items);
}

void console_get_service(struct api_req *req)
{
	const char *svc = api_req_name(req);
	struct store *st = api_req_app(req)->store;
	struct store_history_filter f = {.service = svc, .limit = HISTORY_ROWS};
	struct console_who w;
	struct svg_buf b;
	json_t *history = NULL, *h;
	char *next = NULL;
	size_t i;

	if (!console_who(req, &w))
		return;
	if (!api_req_sees(req, svc) || store_history(st, &f, &history, &next) < 0) {
		console_error(req, &w, 404, "No such service.");
		return;
	}
	free(next);
	svg_buf_init(&b);
	console_page_begin(&b, &w, svc);
	svg_buf_puts(&b, "<h1>");
	svg_buf_esc(&b, svc);
	svg_buf_puts(&b, "</h1>\n");
	trend_section(&b, st, history);
	waivers_section(&b, &w, st, svc);
	svg_buf_puts(&b, "<h2>History</h2><table class=\"history\" id=\"history\"><thead><tr>"
	                 "<th>Run</th><th>Verdict</th><th>Version</th><th>Environment</th>"
	                 "<th>Submitted by</th><th>Finished</th><th></th></tr></thead><tbody>\n");
	json_array_foreach (history, i, h)
		history_row(&b, st, h, json_array_get(history, i + 1));
	svg_buf_puts(&b, "</tbody></table>\n");
	console_page_end(&b);
	json_decref(history);
	console_reply_page(req, 200, &b);
}

/* ---- compare ---- */

static void compare_head(struct svg_buf *b, json_t *run, const char *side)
{
	long long id = (long long)json_integer_value(json_object_get(run, "id"));

	svg_buf_printf(b,
	               "<div class=\"side\" id=\"side-%s\"><h2>%s: <a href=\"/runs/%lld\">run %lld"
	               "</a></h2><p>",
	               side, side, id, id);
	console_verdict_badge(b, json_string_value(json_object_get(run, "verdict")));
	svg_buf_puts(b, "</p><p>");
	svg_buf_esc(b, json_string_value(json_object_get(run, "service")));
	svg_buf_puts(b, " ");
	svg_buf_esc(b, json_string_value(json_object_get(run, "version")));
	svg_buf_puts(b, " (");
	svg_buf_esc(b, json_string_value(json_object_get(run, "environment")));
	svg_buf_puts(b, ")</p></div>");
}

static json_t *gate_by_expr(json_t *run, const char *expr)
{
	json_t *g;
	size_t i;

	json_array_foreach (json_object_get(run, "gates"), i, g) {
		const char *e = json_string_value(json_object_get(g, "expr"));

		if (e && expr && strcmp(e, expr) == 0)
			return g;
	}
	return NULL;
}

static void gate_cell(struct svg_buf *b, json_t *g)
{
	json_t *v = json_object_get(g, "value");
	char num[RD_DOUBLE_LEN];

	svg_buf_puts(b, "<td>");
	if (json_is_number(v)) {
		rd_fmt_double(json_number_value(v), num, sizeof(num));
		svg_buf_printf(b, "%s ", num);
	}
	svg_buf_esc(b, g ? json_string_value(json_object_get(g, "outcome")) : "-");
	svg_buf_puts(b, "</td>");
}

static void compare_gates(struct svg_buf *b, json_t *a, json_t *c)
{
	json_t *g;
	size_t i;

	svg_buf_puts(b, "<h2>Gates</h2><table id=\"compare-gates\"><thead><tr><th>Gate</th>"
	                "<th>A</th><th>B</th></tr></thead><tbody>");
	json_array_foreach (json_object_get(a, "gates"), i, g) {
		const char *e = json_string_value(json_object_get(g, "expr"));

		svg_buf_puts(b, "<tr><td><code>");
		svg_buf_esc(b, e);
		svg_buf_puts(b, "</code></td>");
		gate_cell(b, g);
		gate_cell(b, gate_by_expr(c, e));
		svg_buf_puts(b, "</tr>");
	}
	json_array_foreach (json_object_get(c, "gates"), i, g) {
		const char *e = json_string_value(json_object_get(g, "expr"));

		if (gate_by_expr(a, e))
			continue;
		svg_buf_puts(b, "<tr><td><code>");
		svg_buf_esc(b, e);
		svg_buf_puts(b, "</code></td><td>-</td>");
		gate_cell(b, g);
		svg_buf_puts(b, "</tr>");
	}
	svg_buf_puts(b, "</tbody></table>\n");
}

static json_t *probe_by_name(json_t *run, const char *name)
{
	json_t *p;
	size_t i;

	json_array_foreach (json_object_get(run, "probes"), i, p) {
		const char *n = json_string_value(json_object_get(p, "name"));

		if (n && name && strcmp(n, name) == 0)
			return p;
	}
	return NULL;
}

/* Percentile curves of the probes both runs have, overlaid. */
static void compare_curves(struct svg_buf *b, json_t *a, json_t *c)
{
	static const char *const keys[] = {"p50_ms", "p75_ms",  "p90_ms", "p95_ms",
	                                   "p99_ms", "p999_ms", "max_ms"};
	static const char *const labels[] = {"p50", "p75", "p90", "p95", "p99", "p99.9", "max"};
	json_t *p;
	size_t i;

	json_array_foreach (json_object_get(a, "probes"), i, p) {
		json_t *q = probe_by_name(c, json_string_value(json_object_get(p, "name")));
		double va[7], vc[7];
		const char *shown[7];
		size_t n = 0;
		char title[200];

		for (size_t k = 0; k < 7; k++) {
			json_t *x = json_object_get(json_object_get(p, "metrics"), keys[k]);
			json_t *y = json_object_get(json_object_get(q, "metrics"), keys[k]);

			if (!json_is_number(x) && !json_is_number(y))
				continue; /* a percentile neither run has */
			shown[n] = labels[k];
			va[n] = json_is_number(x) ? json_number_value(x) : NAN;
			vc[n++] = json_is_number(y) ? json_number_value(y) : NAN;
		}
		if (!q || n == 0)
			continue;
		snprintf(title, sizeof(title), "Latency percentiles of %s",
		         json_string_value(json_object_get(p, "name")));
		svg_buf_puts(b, "<figure class=\"curves\">");
		svg_lines_chart(b, title, shown, n, va, "A", vc, "B", "ms");
		svg_buf_puts(b, "</figure>\n");
	}
}

void console_get_compare(struct api_req *req)
{
	const char *qa = api_req_query(req, "a"), *qb = api_req_query(req, "b");
	int64_t ia = 0, ib = 0;
	struct console_who w;
	struct svg_buf b;
	json_t *a, *c;

	if (!console_who(req, &w))
		return;
	if (!qa || !qb || rd_parse_int64(qa, 1, INT64_MAX, &ia) < 0 ||
	    rd_parse_int64(qb, 1, INT64_MAX, &ib) < 0) {
		console_error(req, &w, 400, "Give two run ids: /compare?a=ID&b=ID.");
		return;
	}
	if (!(a = console_load_run(req, &w, ia)))
		return;
	if (!(c = console_load_run(req, &w, ib))) {
		json_decref(a);
		return;
	}
	svg_buf_init(&b);
	console_page_begin(&b, &w, "Compare");
	svg_buf_puts(&b, "<h1>Compare</h1><div class=\"sides\">");
	compare_head(&b, a, "A");
	compare_head(&b, c, "B");
	svg_buf_puts(&b, "</div>");
	compare_gates(&b, a, c);
	compare_curves(&b, a, c);
	console_page_end(&b);
	json_decref(a);
	json_decref(c);
	console_reply_page(req, 200, &b);
}
