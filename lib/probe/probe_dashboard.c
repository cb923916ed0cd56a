/* probe_dashboard: the `dashboard` probe. Takes a Grafana dashboard
 * (inline, from a file under allowed_paths, or from Grafana's HTTP API),
 * substitutes its template variables and Grafana's built-ins, runs every
 * Prometheus query of every panel against `prometheus` at the end of the
 * run's load window (instant, or a range query over the window) and
 * publishes how many panels show data. A dashboard whose panels stay
 * empty during a load test is a dashboard nobody can watch an incident
 * on; details name each empty panel and each failing query. The reading
 * of the dashboard is lib/probe/dashboard.c; this file is the I/O.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/probe/dashboard.h"
#include "lib/probe/docfetch.h"
#include "lib/probe/probe.h"
#include "lib/prom/promapi.h"
#include "lib/util/util.h"

#define DASH_MAX_BYTES      (8 * 1024 * 1024)
#define DASH_DEFAULT_RANGE  (5 * 60 * 1000)
#define DASH_DEFAULT_SCRAPE 15000
#define DASH_QUERY_TIMEOUT  10000

struct dash_probe {
	struct probe *p;
	struct docfetch *fetch;
	struct promapi_call *call;
	struct spec_probe prom; /* the probe's Prometheus settings without its headers */
	json_t *panels;         /* dashboard_panels(); owned */
	json_t *vals;           /* variables; owned */
	struct dashboard_builtins b;
	int64_t start_ms, end_ms;
	size_t panel, target; /* the query under way */
	size_t queries, failed;
	char *expr; /* the query under way after substitution; owned */
};

static void send_next(struct dash_probe *dp);

static void conclude(struct dash_probe *dp)
{
	struct probe *p = dp->p;
	json_t *panel, *empty = json_array();
	size_t i, with = 0;

	json_array_foreach (dp->panels, i, panel) {
		if (json_is_true(json_object_get(panel, "data")))
			with++;
		else
			json_array_append(empty, json_object_get(panel, "title"));
	}
	probe_set_metric(p, "panels", (double)json_array_size(dp->panels));
	probe_set_metric(p, "panels_with_data", (double)with);
	probe_set_metric(p, "panels_without_data", (double)(json_array_size(dp->panels) - with));
	probe_set_metric(p, "queries", (double)dp->queries);
	probe_set_metric(p, "queries_failed", (double)dp->failed);
	json_object_set_new(p->details, "empty_panels", empty);
	json_object_set(p->details, "panels", dp->panels);
	if (dp->failed == dp->queries) {
		json_t *q = json_array_get(
		        json_object_get(json_array_get(dp->panels, 0), "targets"), 0);

		probe_finish(p, PROBE_STATE_ERRORED,
		             "every query of the dashboard failed; the first: %s",
		             json_string_value(json_object_get(q, "error")));
		return;
	}
	probe_finish(p, PROBE_STATE_PASSED, NULL);
}

/* The target under way, and advancing to the next one. */
static json_t *current_target(struct dash_probe *dp)
{
	json_t *panel = json_array_get(dp->panels, dp->panel);

	return json_array_get(json_object_get(panel, "targets"), dp->target);
}

static void advance(struct dash_probe *dp)
{
	json_t *panel = json_array_get(dp->panels, dp->panel);

	free(dp->expr);
	dp->expr = NULL;
	if (++dp->target >= json_array_size(json_object_get(panel, "targets"))) {
		dp->target = 0;
		dp->panel++;
	}
	send_next(dp);
}

static void target_failed(struct dash_probe *dp, const char *why)
{
	json_object_set_new(current_target(dp), "error", json_string(why));
	dp->failed++;
	advance(dp);
}

static void on_answer(void *userdata, int err, json_t *data, const char *message)
{
	struct dash_probe *dp = userdata;
	json_t *t = current_target(dp);
	bool has = err == 0 && dashboard_has_data(data);

	dp->call = NULL;
	if (err < 0) {
		target_failed(dp, message);
		return;
	}
	json_object_set_new(t, "data", json_boolean(has));
	json_object_set_new(
	        t, "series",
	        json_integer((json_int_t)json_array_size(json_object_get(data, "result"))));
	if (has)
		json_object_set_new(json_array_get(dp->panels, dp->panel), "data", json_true());
	advance(dp);
}

static int send_query(struct dash_probe *dp)
{
	char s_start[32], s_end[32], s_step[32];
	const char *params[9] = {"query", dp->expr, "time", s_end};
	const char *path = "/api/v1/query";

	snprintf(s_start, sizeof(s_start), "%.3f", (double)dp->start_ms / 1000.0);
	snprintf(s_end, sizeof(s_end), "%.3f", (double)dp->end_ms / 1000.0);
	snprintf(s_step, sizeof(s_step), "%.3f", (double)dashboard_interval_ms(&dp->b) / 1000.0);
	if (dp->p->sp->query_type && !strcmp(dp->p->sp->query_type, "range")) {
		path = "/api/v1/query_range";
		params[2] = "start";
		params[3] = s_start;
		params[4] = "end";
		params[5] = s_end;
		params[6] = "step";
		params[7] = s_step;
	}
	return promapi_get(dp->p->http, &dp->prom, path, params, DASH_QUERY_TIMEOUT, on_answer, dp,
	                   &dp->call);
}

static void send_next(struct dash_probe *dp)
{
	json_t *t, *panel = json_array_get(dp->panels, dp->panel);
	char why[256];
	int r;

	if (!panel) {
		conclude(dp);
		return;
	}
	t = current_target(dp);
	json_object_set_new(panel, "data",
	                    json_boolean(json_is_true(json_object_get(panel, "data"))));
	dp->queries++;
	r = dashboard_substitute(json_string_value(json_object_get(t, "expr")), dp->vals, &dp->b,
	                         &dp->expr, why, sizeof(why));
	if (r < 0) {
		target_failed(dp, r == -ENOMEM ? "out of memory" : why);
		return;
	}
	json_object_set_new(t, "query", json_string(dp->expr));
	r = send_query(dp);
	if (r < 0) {
		snprintf(why, sizeof(why), "cannot send the query: %s", strerror(-r));
		target_failed(dp, why);
	}
}

/* The time the queries look at: the run's load window, else the last
 * `range` (default 5m) before now. */
static void set_window(struct dash_probe *dp)
{
	struct probe *p = dp->p;

	if (p->window_end_ms > 0) {
		dp->start_ms = p->window_start_ms;
		dp->end_ms = p->window_end_ms;
	} else {
		dp->end_ms = rd_now_ms();
		dp->start_ms =
		        dp->end_ms - (p->sp->range_ms ? p->sp->range_ms : DASH_DEFAULT_RANGE);
	}
	dp->b.range_ms = dp->end_ms - dp->start_ms > 1000 ? dp->end_ms - dp->start_ms : 1000;
	dp->b.scrape_ms = p->sp->interval_ms ? p->sp->interval_ms : DASH_DEFAULT_SCRAPE;
}

static void run_dashboard(struct dash_probe *dp, json_t *doc)
{
	struct probe *p = dp->p;
	json_t *dash = dashboard_model(doc);
	int r;

	if (!dash) {
		probe_finish(p, PROBE_STATE_ERRORED,
		             "not a Grafana dashboard: no panels or rows (nor a dashboard object "
		             "holding them)");
		return;
	}
	json_object_set_new(p->details, "title", json_copy(json_object_get(dash, "title")));
	json_object_set_new(p->details, "uid", json_copy(json_object_get(dash, "uid")));
	r = dashboard_panels(dash, &dp->panels);
	if (r == 0)
		dp->vals = dashboard_variables(dash, p->sp->variables, p->sp->n_variables);
	if (r < 0 || !dp->vals) {
		probe_finish(p, PROBE_STATE_ERRORED, "cannot read the dashboard: %s",
		             r == -E2BIG ? "more than 200 panels or 400 queries"
		                         : strerror(ENOMEM));
		return;
	}
	if (json_array_size(dp->panels) == 0) {
		probe_finish(p, PROBE_STATE_ERRORED,
		             "the dashboard has no panel that queries Prometheus");
		return;
	}
	set_window(dp);
	json_object_set_new(p->details, "window",
	                    json_pack("{s:I, s:I, s:s}", "start_ms", (json_int_t)dp->start_ms,
	                              "end_ms", (json_int_t)dp->end_ms, "query_type",
	                              p->sp->query_type ? p->sp->query_type : "instant"));
	send_next(dp);
}

static void on_doc(void *userdata, int err, char *buf, size_t len, const char *why)
{
	struct dash_probe *dp = userdata;
	json_error_t jerr;
	json_t *doc;

	dp->fetch = NULL;
	if (err < 0) {
		probe_finish(dp->p, PROBE_STATE_ERRORED, "cannot read the dashboard: %s", why);
		return;
	}
	doc = json_loadb(buf, len, 0, &jerr);
	free(buf);
	if (!doc) {
		/* The position only: a file's content never appears in a message. */
		probe_finish(dp->p, PROBE_STATE_ERRORED,
		             "the dashboard is not JSON (line %d, column %d)", jerr.line,
		             jerr.column);
		return;
	}
	run_dashboard(dp, doc);
	json_decref(doc);
}

static int dash_start(struct probe *p)
{
	struct dash_probe *dp = calloc(1, sizeof(*dp));

	if (!dp)
		return -ENOMEM;
	dp->p = p;
	dp->prom = (struct spec_probe){.name = p->sp->name,
	                               .prometheus = p->sp->prometheus,
	                               .insecure = p->sp->insecure,
	                               .ca_file = p->sp->ca_file};
	p->impl = dp;
	if (!p->details)
		p->details = json_object();
	if (!p->details)
		return -ENOMEM;
	if (p->sp->dashboard) {
		run_dashboard(dp, p->sp->dashboard);
		return 0;
	}
	return docfetch_start(p, p->sp->file, p->sp->url, DASH_MAX_BYTES, on_doc, dp, &dp->fetch);
}

static void dash_cancel(struct probe *p)
{
	struct dash_probe *dp = p->impl;

	if (dp) {
		docfetch_cancel(dp->fetch);
		dp->fetch = NULL;
		promapi_cancel(dp->call);
		dp->call = NULL;
	}
	probe_finish(p, PROBE_STATE_CANCELLED, NULL);
}

static void dash_free(struct probe *p)
{
	struct dash_probe *dp = p->impl;

	if (!dp)
		return;
	json_decref(dp->panels);
	json_decref(dp->vals);
	free(dp->expr);
	free(dp);
	p->impl = NULL;
}

/* --- the type: its spec fields, rules, metrics and ops --- */

/* `dashboard`: the model inline, as a mapping or as a string of JSON
 * (exported from Grafana and pasted). */
static int read_dashboard(struct spec_vctx *v, json_t *val, const char *path, void *base)
{
	struct spec_probe *sp = base;
	json_t *doc = NULL;

	if (json_is_string(val))
		doc = json_loads(json_string_value(val), 0, NULL);
	else if (json_is_object(val))
		doc = json_deep_copy(val);
	if (!doc || !dashboard_model(doc)) {
		json_decref(doc);
		return spec_fail(
		        v, val, path,
		        "must be a Grafana dashboard (a mapping, or a string of JSON, with "
		        "panels or rows)");
	}
	json_decref(sp->dashboard);
	sp->dashboard = doc;
	return 0;
}

/* clang-format off */
static const char *const query_types[] = {"instant", "range", NULL};
static const struct spec_field fields[] = {
	SPEC_F_COMMON, SPEC_F_PROMETHEUS, SPEC_F_URL(false), SPEC_F_HEADERS,
	{.key = "dashboard",  .kind = FK_CUSTOM, .custom = read_dashboard},
	{.key = "file",       .kind = FK_STRING, .flags = SPEC_FIELD_FILE, .off = SPEC_P(file),
	 .max = SPEC_MAX_TEXT, .check = spec_check_abs_path},
	{.key = "variables",  .kind = FK_LABELS, .off = SPEC_P(variables),
	 .count_off = SPEC_P(n_variables)},
	{.key = "query_type", .kind = FK_STRING, .off = SPEC_P(query_type), .choices = query_types},
	{.key = "range",      .kind = FK_DURATION, .off = SPEC_P(range_ms), .min = 1000,
	 .max = SPEC_MAXD},
	{.key = "scrape_interval", .kind = FK_DURATION, .off = SPEC_P(interval_ms), .min = 1,
	 .max = 3600 * 1000},
	SPEC_F_TLS_CLIENT,
};
/* clang-format on */

static int finish_dash(struct spec_vctx *v, json_t *obj, const char *path, struct spec_probe *p)
{
	int n = (p->dashboard != NULL) + (p->file != NULL) + (p->url != NULL);

	if (n == 0)
		return spec_fail_at(v, obj, path, "dashboard",
		                    "missing: give the dashboard inline, its file or its url");
	if (n > 1)
		return spec_fail_at(v, obj, path, p->url ? "url" : "file",
		                    "give one of dashboard, file and url");
	return 0;
}

static const struct probe_metric_def metrics[] = {
        {"panels", "panels", PROBE_SAMPLES_NONE},
        {"panels_with_data", "panels", PROBE_SAMPLES_NONE},
        {"panels_without_data", "panels", PROBE_SAMPLES_NONE},
        {"queries", "queries", PROBE_SAMPLES_NONE},
        {"queries_failed", "queries", PROBE_SAMPLES_NONE},
};

const struct probe_type_def probe_type_dashboard = {
        .name = "dashboard",
        .section = "Monitoring",
        .fields = fields,
        .n_fields = RD_ARRAY_SIZE(fields),
        .finish = finish_dash,
        .deadline_fixed_ms = PROBE_DEFAULT_DEADLINE_MS,
        .metrics = metrics,
        .n_metrics = RD_ARRAY_SIZE(metrics),
        .ops =
                {
                        .start = dash_start,
                        .cancel = dash_cancel,
                        .free = dash_free,
                },
};
