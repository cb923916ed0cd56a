/* probe_prom_query: the `prometheus-query` probe. Runs a PromQL query
 * against Prometheus' HTTP API, instant (/api/v1/query) or over a `range`
 * (/api/v1/query_range, reduced by `function` min|max|avg|last), and
 * publishes the one number as `value` for gates. Exactly one series must
 * come back: none, several, NaN or an infinity is an error that shows the
 * query, never a silent zero. {{window}}, {{start}} and {{end}} in the
 * query become the window of the run's earlier load probes, so the
 * server-side view of the same traffic can be compared with the client's.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/probe/probe.h"
#include "lib/probe/reconcile.h"
#include "lib/prom/promapi.h"
#include "lib/util/util.h"

#define QUERY_MAX_LEN     (64 * 1024)
#define QUERY_RANGE_STEPS 250 /* points per range query (Prometheus caps 11000) */

struct query_probe {
	struct probe *p;
	struct promapi_call *call;
	char *query; /* after substitution; owned */
	bool uses_window;
};

/* Replaces the placeholders; *ret_used says whether any was present. */
static int substitute(const struct probe *p, char **ret, bool *ret_used)
{
	static const char *const keys[] = {"{{window}}", "{{start}}", "{{end}}"};
	const char *q = p->sp->query;
	char vals[3][40];
	char *out = malloc(QUERY_MAX_LEN + 1);
	size_t o = 0;

	if (!out)
		return -ENOMEM;
	snprintf(vals[0], sizeof(vals[0]), "%" PRId64 "ms", p->window_end_ms - p->window_start_ms);
	snprintf(vals[1], sizeof(vals[1]), "%.3f", (double)p->window_start_ms / 1000.0);
	snprintf(vals[2], sizeof(vals[2]), "%.3f", (double)p->window_end_ms / 1000.0);
	*ret_used = false;
	while (*q) {
		size_t k = 0, add;

		while (k < RD_ARRAY_SIZE(keys) && strncmp(q, keys[k], strlen(keys[k])) != 0)
			k++;
		add = k < RD_ARRAY_SIZE(keys) ? strlen(vals[k]) : 1;
		if (o + add > QUERY_MAX_LEN) {
			free(out);
			return -E2BIG;
		}
		if (k < RD_ARRAY_SIZE(keys)) {
			memcpy(out + o, vals[k], add);
			q += strlen(keys[k]);
			*ret_used = true;
		} else {
			out[o] = *q++;
		}
		o += add;
	}
	out[o] = '\0';
	*ret = out;
	return 0;
}

static void on_answer(void *userdata, int err, json_t *data, const char *message)
{
	struct query_probe *qp = userdata;
	struct probe *p = qp->p;
	struct promapi_query_result res;
	char why[512];

	qp->call = NULL;
	if (err < 0) {
		probe_finish(p, PROBE_STATE_ERRORED, "%s (query: %s)", message, qp->query);
		return;
	}
	json_object_set_new(p->details, "result_type",
	                    json_string(json_string_value(json_object_get(data, "resultType"))));
	err = promapi_query_value(data, p->sp->function, &res, why, sizeof(why));
	if (res.series)
		json_object_set_new(p->details, "series", json_deep_copy(res.series));
	if (res.points >= 0)
		json_object_set_new(p->details, "points", json_integer((json_int_t)res.points));
	if (err < 0) {
		probe_finish(p, PROBE_STATE_ERRORED, "%s: %s (query: %s)", p->sp->prometheus, why,
		             qp->query);
		return;
	}
	probe_set_metric(p, "value", res.value);
	probe_finish(p, PROBE_STATE_PASSED, NULL);
}

/* Instant: at the window's end when the query refers to the window, else
 * now. Range: `range` up to that same end, in QUERY_RANGE_STEPS steps. */
static int send_query(struct query_probe *qp)
{
	struct probe *p = qp->p;
	int64_t end = qp->uses_window ? p->window_end_ms : rd_now_ms();
	int64_t step = p->sp->range_ms / QUERY_RANGE_STEPS;
	char s_start[32], s_end[32], s_step[32];
	const char *params[9] = {"query", qp->query};
	const char *path = "/api/v1/query";

	snprintf(s_end, sizeof(s_end), "%.3f", (double)end / 1000.0);
	snprintf(s_start, sizeof(s_start), "%.3f", (double)(end - p->sp->range_ms) / 1000.0);
	snprintf(s_step, sizeof(s_step), "%.3f", (double)(step < 1000 ? 1000 : step) / 1000.0);
	if (p->sp->range_ms > 0) {
		path = "/api/v1/query_range";
		params[2] = "start";
		params[3] = s_start;
		params[4] = "end";
		params[5] = s_end;
		params[6] = "step";
		params[7] = s_step;
	} else if (qp->uses_window) {
		params[2] = "time";
		params[3] = s_end;
	}
	json_object_set_new(p->details, "query", json_string(qp->query));
	if (p->sp->reconcile_with)
		json_object_set_new(p->details, "reconcile",
		                    json_pack("{s:s, s:f, s:s, s:f}", "with", p->sp->reconcile_with,
		                              "quantile", p->sp->reconcile_quantile, "unit",
		                              p->sp->latency_unit ? p->sp->latency_unit : "s",
		                              "tolerance",
		                              p->sp->tolerance > 0 ? p->sp->tolerance
		                                                   : RECONCILE_DEFAULT_TOLERANCE));
	return promapi_get(p->http, p->sp, path, params, p->sp->timeout_ms, on_answer, qp,
	                   &qp->call);
}

static int query_start(struct probe *p)
{
	struct query_probe *qp = calloc(1, sizeof(*qp));
	int r;

	if (!qp)
		return -ENOMEM;
	qp->p = p;
	p->impl = qp;
	if (!p->details)
		p->details = json_object();
	r = p->details ? substitute(p, &qp->query, &qp->uses_window) : -ENOMEM;
	if (r == 0 && qp->uses_window && p->window_end_ms <= 0) {
		probe_finish(
		        p, PROBE_STATE_ERRORED,
		        "the query uses {{window}}, {{start}} or {{end}} but no load probe ran "
		        "before this probe in the run (query: %s)",
		        p->sp->query);
		return 0;
	}
	if (r == 0)
		r = send_query(qp);
	if (r < 0) {
		free(qp->query);
		p->impl = NULL;
		free(qp);
	}
	return r;
}

static void query_cancel(struct probe *p)
{
	struct query_probe *qp = p->impl;

	if (qp) {
		promapi_cancel(qp->call);
		qp->call = NULL;
	}
	probe_finish(p, PROBE_STATE_CANCELLED, NULL);
}

static void query_free(struct probe *p)
{
	struct query_probe *qp = p->impl;

	if (qp)
		free(qp->query);
	free(qp);
	p->impl = NULL;
}

/* --- the type: its spec fields, rules, metrics and ops --- */

/* One field per line, aligned by hand: read as a schema more than as
 * code. */
/* clang-format off */
static const char *const function_names[] = {"min", "max", "avg", "last", NULL};
static const char *const unit_names[] = {"s", "ms", NULL};
static const struct spec_field reconcile_fields[] = {
	{.key = "with",      .kind = FK_STRING, .required = true, .off = SPEC_P(reconcile_with),
	 .check = spec_check_probe_name},
	{.key = "quantile",  .kind = FK_NUMBER, .required = true,
	 .off = SPEC_P(reconcile_quantile), .dmin = 0, .gt_min = true, .dmax = 1},
	{.key = "unit",      .kind = FK_STRING, .off = SPEC_P(latency_unit), .choices = unit_names},
	{.key = "tolerance", .kind = FK_NUMBER, .off = SPEC_P(tolerance), .dmin = 0,
	 .gt_min = true, .dmax = 100},
};
static const struct spec_schema reconcile_schema = {
	"a prometheus-query probe's reconcile", reconcile_fields, RD_ARRAY_SIZE(reconcile_fields),
	false,
};
static const struct spec_field fields[] = {
	SPEC_F_COMMON, SPEC_F_PROMETHEUS, SPEC_F_HEADERS,
	{.key = "query",    .kind = FK_STRING, .required = true, .off = SPEC_P(query),
	 .max = SPEC_MAX_TEXT},
	{.key = "range",    .kind = FK_DURATION, .off = SPEC_P(range_ms), .min = 1,
	 .max = SPEC_MAXD},
	{.key = "function", .kind = FK_STRING, .off = SPEC_P(function), .choices = function_names},
	{.key = "reconcile", .kind = FK_OBJECT, .flags = SPEC_FIELD_NESTED, .off = 0,
	 .sub = &reconcile_schema},
	SPEC_F_TLS_CLIENT,
};
/* clang-format on */

/* reconcile names an earlier load probe and a quantile it publishes. */
static int check_reconcile(struct spec_vctx *v, json_t *obj, const char *path, struct spec_probe *p)
{
	const struct spec_probe *load = spec_find_probe(spec_vctx_spec(v), p->reconcile_with);
	char rpath[256];

	snprintf(rpath, sizeof(rpath), "%s.reconcile", path);
	if (!load || load->type != PROBE_TYPE_LOAD)
		return spec_fail_at(v, json_object_get(obj, "reconcile"), rpath, "with",
		                    "no load probe named '%s' before this probe",
		                    p->reconcile_with);
	if (!reconcile_client_metric(p->reconcile_quantile))
		return spec_fail_at(
		        v, json_object_get(obj, "reconcile"), rpath, "quantile",
		        "must be one a load probe publishes: 0.5, 0.9, 0.95, 0.99, 0.999");
	return 0;
}

static int finish_query(struct spec_vctx *v, json_t *obj, const char *path, struct spec_probe *p)
{
	if (p->function && !p->range_ms)
		return spec_fail_at(v, obj, path, "function",
		                    "only applies to range queries (give range too)");
	return p->reconcile_with ? check_reconcile(v, obj, path, p) : 0;
}

static const struct probe_metric_def metrics[] = {
        {"value", "the query's", PROBE_SAMPLES_NONE},
};

const struct probe_type_def probe_type_prom_query = {
        .name = "prometheus-query",
        .section = "Monitoring",
        .fields = fields,
        .n_fields = RD_ARRAY_SIZE(fields),
        .finish = finish_query,
        .deadline_fixed_ms = PROBE_DEFAULT_DEADLINE_MS,
        .metrics = metrics,
        .n_metrics = RD_ARRAY_SIZE(metrics),
        .ops =
                {
                        .start = query_start,
                        .cancel = query_cancel,
                        .free = query_free,
                },
};
