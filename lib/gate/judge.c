/* judge: gates + checklist + probe outcomes -> verdict (see judge.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lib/gate/judge.h"
#include "lib/probe/probe.h"
#include "lib/util/run_state.h"
#include "lib/util/util.h"

static const struct judge_probe *find_probe(const struct judge_probe *probes, size_t n,
                                            const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(probes[i].name, name) == 0)
			return &probes[i];
	return NULL;
}

/* The sample count behind a metric, as its probe type declares it
 * (lib/probe/probe_<type>.c): the probe's `requests`, or those minus
 * `errors` for a latency metric, since failed requests have no latency in
 * its histogram; none for a metric that does not count anything. */
static void gather_samples(const struct spec_probe *sp, const char *metric, json_t *metrics,
                           struct gate_input *in)
{
	const struct probe_metric_def *m =
	        sp ? probe_type_metric(probe_type_get(sp->type), metric) : NULL;
	json_t *req = metrics ? json_object_get(metrics, "requests") : NULL;
	json_t *err = metrics ? json_object_get(metrics, "errors") : NULL;

	if (!m || m->samples == PROBE_SAMPLES_NONE || !json_is_number(req))
		return;
	in->requests = (int64_t)json_number_value(req);
	in->samples = in->requests;
	if (json_is_number(err) && m->samples == PROBE_SAMPLES_SUCCESSES)
		in->samples -= (int64_t)json_number_value(err);
	if (in->samples < 0)
		in->samples = 0;
}

/* The baseline must rest on as many samples as the gate asks of the
 * value it is compared with, counted the same way: a lax earlier run
 * measured on a handful of successes cannot set the bar. */
static void gather_baseline(const struct spec_gate *g, const struct spec_probe *sp,
                            judge_baseline_cb baseline, void *userdata, struct gate_input *in)
{
	const struct probe_metric_def *m =
	        sp ? probe_type_metric(probe_type_get(sp->type), g->ex.metric) : NULL;
	struct judge_baseline b = {0};
	int r = baseline(userdata, g->ex.probe, g->ex.metric,
	                 gate_min_samples(g->ex.metric, g->min_samples),
	                 m && m->samples == PROBE_SAMPLES_SUCCESSES, &b);

	/* "No earlier pass" holds visibly; failing to look is an error. */
	if (r == 0) {
		in->has_baseline = true;
		in->baseline = b.value;
		in->baseline_run = b.run;
	} else if (r != -ENOENT) {
		in->baseline_err = r;
		return;
	}
	in->baseline_skipped = b.skipped;
	in->baseline_skipped_newest = b.skipped_newest;
}

static void gather_input(const struct spec_gate *g, const struct spec_probe *sp,
                         const struct judge_probe *jp, judge_baseline_cb baseline, void *userdata,
                         struct gate_input *in)
{
	json_t *v;

	memset(in, 0, sizeof(*in));
	in->samples = -1;
	if (!jp)
		return;
	in->probe_state = jp->state;
	in->probe_error = jp->error;
	v = jp->metrics ? json_object_get(jp->metrics, g->ex.metric) : NULL;
	if (json_is_number(v)) {
		in->has_value = true;
		in->value = json_number_value(v);
	} else if (json_is_null(v)) {
		/* Published but not computable (NaN): judged as NaN, an error. */
		in->has_value = true;
		in->value = NAN;
	}
	gather_samples(sp, g->ex.metric, jp->metrics, in);
	if (g->ex.rhs != GATE_RHS_NUMBER && baseline)
		gather_baseline(g, sp, baseline, userdata, in);
}

/* A failing gate with an active waiver becomes "waived": the reason
 * still says what failed underneath, and the waiver is recorded. */
static int apply_waiver(const struct spec_gate *g, const struct judge_lookup *lk, json_t *res,
                        enum gate_outcome *o)
{
	char expr[2 * GATE_NAME_MAX + 96], reason[512];
	const char *was = json_string_value(json_object_get(res, "reason"));
	json_t *w = NULL;

	if (*o != GATE_FAIL || !lk || !lk->waiver)
		return json_object_set_new(res, "waiver", json_null()) < 0 ? -ENOMEM : 0;
	gate_format(&g->ex, expr, sizeof(expr));
	if (lk->waiver(lk->userdata, expr, &w) < 0)
		return json_object_set_new(res, "waiver", json_null()) < 0 ? -ENOMEM : 0;
	snprintf(reason, sizeof(reason),
	         "waived by %s until %s (waiver %" JSON_INTEGER_FORMAT
	         ": %s); underneath it fails: %s",
	         json_string_value(json_object_get(w, "approver")),
	         json_string_value(json_object_get(w, "expires_at")),
	         json_integer_value(json_object_get(w, "id")),
	         json_string_value(json_object_get(w, "reason")), was ? was : "");
	*o = GATE_WAIVED;
	if (json_object_set_new(res, "waiver", w) < 0 ||
	    json_object_set_new(res, "outcome", json_string(gate_outcome_to_string(GATE_WAIVED))) <
	            0 ||
	    json_object_set_new(res, "reason", json_string(reason)) < 0)
		return -ENOMEM;
	return 0;
}

static int judge_gates(const struct spec *spec, const struct judge_probe *probes, size_t n,
                       const struct judge_lookup *lk, json_t *out, struct verdict_input *vi)
{
	judge_baseline_cb baseline = lk ? lk->baseline : NULL;
	void *userdata = lk ? lk->userdata : NULL;

	for (size_t i = 0; i < spec->n_gates; i++) {
		const struct spec_gate *g = &spec->gates[i];
		struct gate_input in;
		enum gate_outcome o;
		json_t *res;

		gather_input(g, spec_find_probe(spec, g->ex.probe),
		             find_probe(probes, n, g->ex.probe), baseline, userdata, &in);
		if (gate_judge(g->expr, &g->ex, g->advisory, g->min_samples, &in, &res, &o) < 0)
			return -ENOMEM;
		if (apply_waiver(g, lk, res, &o) < 0) {
			json_decref(res);
			return -ENOMEM;
		}
		if (json_array_append_new(out, res) < 0)
			return -ENOMEM;
		if (g->advisory)
			continue;
		vi->gates_error += o == GATE_ERROR;
		vi->gates_failed += o == GATE_FAIL;
	}
	return 0;
}

static bool is_required(const struct spec_checklist *cl, const char *item)
{
	for (size_t i = 0; i < cl->n_required; i++)
		if (strcmp(cl->required[i], item) == 0)
			return true;
	return false;
}

/* Returns NULL if the item's evidence holds, else why not (in buf). */
static const char *check_item(const struct spec_check_item *it, int64_t now_ms, char *buf,
                              size_t len)
{
	char when[RD_TIME_LEN], age[32];

	if (!it->evidence || !*it->evidence)
		return "no evidence given";
	if (it->passed == 0)
		return "evidence says it did not pass";
	if (it->tested_ms > now_ms + 24LL * 3600 * 1000)
		return "tested date is in the future";
	if (it->max_age_ms > 0 && it->tested_ms == 0)
		return "max_age is set but no tested date is given";
	if (it->max_age_ms > 0 && now_ms - it->tested_ms > it->max_age_ms) {
		rd_time_format(it->tested_ms, when);
		rd_format_duration(it->max_age_ms, age, sizeof(age));
		snprintf(buf, len, "evidence is stale: tested %.10s, more than %s ago", when, age);
		return buf;
	}
	return NULL;
}

static int judge_checklist(const struct spec_checklist *cl, int64_t now_ms, json_t *out,
                           struct verdict_input *vi)
{
	for (size_t i = 0; i < cl->n_items; i++) {
		const struct spec_check_item *it = &cl->items[i];
		bool required = is_required(cl, it->item);
		char buf[256];
		const char *why = check_item(it, now_ms, buf, sizeof(buf));
		char *evidence = rd_url_redact_dup(it->evidence); /* may link with a token */
		json_t *o;

		if (it->evidence && !evidence)
			return -ENOMEM;
		o = json_pack("{s:s, s:b, s:s?, s:s, s:s}", "item", it->item, "required", required,
		              "evidence", evidence, "outcome",
		              gate_outcome_to_string(why ? GATE_FAIL : GATE_PASS), "reason",
		              why ? why : "evidence given");
		free(evidence);
		if (!o || json_array_append_new(out, o) < 0)
			return -ENOMEM;
		if (why && required)
			vi->checklist_failed++;
	}
	return 0;
}

int judge_run(const struct spec *spec, const struct judge_probe *probes, size_t n,
              judge_baseline_cb baseline, void *userdata, int64_t now_ms, json_t **ret_gates,
              json_t **ret_checklist, enum verdict *ret_verdict)
{
	struct judge_lookup lk = {.baseline = baseline, .userdata = userdata};

	return judge_run_with(spec, probes, n, &lk, now_ms, ret_gates, ret_checklist, ret_verdict);
}

int judge_run_with(const struct spec *spec, const struct judge_probe *probes, size_t n,
                   const struct judge_lookup *lk, int64_t now_ms, json_t **ret_gates,
                   json_t **ret_checklist, enum verdict *ret_verdict)
{
	struct verdict_input vi = {0};
	json_t *gates = json_array(), *checklist = json_array();

	if (!gates || !checklist)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		enum run_state ps;

		if (run_state_from_string(probes[i].state, &ps) < 0)
			continue;
		vi.probes_error += ps == RUN_ERROR || ps == RUN_CANCELLED || ps == RUN_INTERRUPTED;
		vi.probes_failed += ps == RUN_FAILED;
	}
	if (judge_gates(spec, probes, n, lk, gates, &vi) < 0 ||
	    judge_checklist(&spec->checklist, now_ms, checklist, &vi) < 0)
		goto fail;
	*ret_gates = gates;
	*ret_checklist = checklist;
	*ret_verdict = gate_verdict(&vi);
	return 0;
fail:
	json_decref(gates);
	json_decref(checklist);
	return -ENOMEM;
}
