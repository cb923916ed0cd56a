/* report_json: the machine-readable report (see report.h). */
#include <string.h>

#include "lib/gate/gate.h"
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

json_t *report_json(json_t *run, json_t *spec)
{
	char now[RD_TIME_LEN];
	json_t *summary = summarize(run);

	if (!summary)
		return NULL;
	rd_time_format(rd_now_ms(), now);
	return json_pack("{s:s, s:s, s:O, s:O?, s:o, s:O}", "report_version", "1", "generated_at",
	                 now, "verdict", json_object_get(run, "verdict"), "spec", spec, "summary",
	                 summary, "run", run);
}
