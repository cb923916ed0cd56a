/* report_json: the machine-readable report (see report.h). */
#include <stdio.h>
#include <string.h>

#include "lib/gate/gate.h"
#include "lib/probe/reconcile.h"
#include "lib/report/report.h"
#include "lib/util/util.h"

/* Counts of gate outcomes, and of blocking gates that did not hold. */
static json_t *summarize(json_t *run)
{
	json_t *counts = json_object(), *gates = json_object_get(run, "gates");
	json_int_t blocking_bad = 0, checklist_failed = 0;
	size_t i;
	json_t *g;

	if (!counts)
		return NULL;
	json_array_foreach (gates, i, g) {
		const char *o = json_string_value(json_object_get(g, "outcome"));
		json_int_t n;

		if (!o)
			continue;
		n = json_integer_value(json_object_get(counts, o));
		json_object_set_new(counts, o, json_integer(n + 1));
		if (!json_is_true(json_object_get(g, "advisory")) &&
		    (strcmp(o, gate_outcome_to_string(GATE_FAIL)) == 0 ||
		     strcmp(o, gate_outcome_to_string(GATE_ERROR)) == 0))
			blocking_bad++;
	}
	json_array_foreach (json_object_get(run, "checklist"), i, g) {
		const char *o = json_string_value(json_object_get(g, "outcome"));

		if (o && strcmp(o, gate_outcome_to_string(GATE_FAIL)) == 0 &&
		    json_is_true(json_object_get(g, "required")))
			checklist_failed++;
	}
	return json_pack("{s:o, s:I, s:I, s:I}", "gate_outcomes", counts, "gates_total",
	                 (json_int_t)json_array_size(gates), "blocking_not_held", blocking_bad,
	                 "checklist_failed", checklist_failed);
}

json_t *report_reconciliation(json_t *run)
{
	json_t *r = json_object_get(run, "reconciliation");

	return json_is_array(r) ? json_incref(r) : reconcile_run(run);
}

/* " p95 40.1 ms client / 20.3 ms server" for each quantile both have. */
static size_t quantiles_text(json_t *e, char *buf, size_t len)
{
	static const char *const qs[] = {"p50", "p90", "p95", "p99", "p999"};
	size_t n = 0;
	char key[32];

	for (size_t i = 0; i < RD_ARRAY_SIZE(qs) && n < len; i++) {
		json_t *c, *s;
		int w;

		snprintf(key, sizeof(key), "client_%s_ms", qs[i]);
		c = json_object_get(e, key);
		snprintf(key, sizeof(key), "server_%s_ms", qs[i]);
		s = json_object_get(e, key);
		if (!c && !s)
			continue;
		w = snprintf(buf + n, len - n, "%s %s ", n ? "," : "", qs[i]);
		n += w > 0 ? (size_t)w : 0;
		if (n >= len)
			break;
		w = json_is_number(c) ? snprintf(buf + n, len - n, "%.4g ms", json_number_value(c))
		                      : snprintf(buf + n, len - n, "n/a");
		n += w > 0 ? (size_t)w : 0;
		if (n >= len)
			break;
		w = json_is_number(s) ? snprintf(buf + n, len - n, " client / %.4g ms server",
		                                 json_number_value(s))
		                      : snprintf(buf + n, len - n, " client / n/a server");
		n += w > 0 ? (size_t)w : 0;
	}
	return n < len ? n : len - 1;
}

void report_reconcile_text(json_t *e, char *buf, size_t len)
{
	const char *metric = json_string_value(json_object_get(e, "metric"));
	json_t *gap = json_object_get(e, "gap_ratio"), *fl = json_object_get(e, "flagged");
	double tol = json_number_value(json_object_get(e, "tolerance"));
	size_t n;
	int w;

	w = snprintf(buf, len, "%s vs %s (%s%s%s):",
	             json_string_value(json_object_get(e, "client_probe")) ?: "?",
	             json_string_value(json_object_get(e, "server_query")) ?: "?",
	             json_string_value(json_object_get(e, "source")) ?: "?", metric ? " " : "",
	             metric ? metric : "");
	n = w > 0 && (size_t)w < len ? (size_t)w : len - 1;
	n += quantiles_text(e, buf + n, len - n);
	if (json_is_number(gap))
		snprintf(buf + n, len - n, "; gap_ratio %.3g at p%g: %s (tolerance %g %%)",
		         json_number_value(gap),
		         json_number_value(json_object_get(e, "gap_quantile")) * 100,
		         json_is_true(fl) ? "FLAGGED" : "agree", tol * 100);
	else
		snprintf(buf + n, len - n, "; no gap_ratio: %s",
		         json_string_value(json_object_get(e, "error"))
		                 ?: "a side published no latency");
}

json_t *report_json(json_t *run, json_t *spec)
{
	char now[RD_TIME_LEN];
	json_t *summary = summarize(run), *recon = report_reconciliation(run);

	if (!summary || !recon) {
		json_decref(summary);
		json_decref(recon);
		return NULL;
	}
	rd_time_format(rd_now_ms(), now);
	return json_pack("{s:s, s:s, s:O, s:O?, s:o, s:o, s:O}", "report_version", "1",
	                 "generated_at", now, "verdict", json_object_get(run, "verdict"), "spec",
	                 spec, "summary", summary, "reconciliation", recon, "run", run);
}
