/* routes_gates: decisions. GET /v1/gates (latest verdict per service and
 * environment: the dashboard's call, polled every second, so one store
 * query and nothing else), POST /v1/runs/{id}/rejudge (a new decision
 * from stored data, kept beside the original verdict) and POST
 * /v1/runs/{id}/invalidate (out of baselines, trends and gates; still
 * readable).
 *
 * Rejudging reuses the spec validator for the new gates (so errors carry
 * paths like gates[1].expr) and lib/judge for the decision; it must not
 * measure anything nor change the run's own verdict.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "lib/gate/judge.h"
#include "lib/spec/spec.h"
#include "lib/util/run_state.h"
#include "lib/util/json_text.h"
#include "lib/util/util.h"

#define REASON_MAX 1024

/* Answered from its kept bytes while nothing stored changed (a dashboard
 * polls it every second; it changes once per run), with an ETag for 304s.
 * The key takes the caller's scope (api_reply_kept): a scoped token's
 * answer is filtered and kept apart. */
static void get_gates(struct api_req *req)
{
	uint64_t generation = api_req_generation(req);
	json_t *items = NULL;
	int r;

	if (api_reply_kept(req, "gates"))
		return;
	r = store_gates_latest(api_req_app(req)->store, &items);
	if (r < 0) {
		api_problem_errno(req, r, "cannot read the gates");
		return;
	}
	api_reply_json_kept(req, "gates", generation,
	                    json_pack("{s:o}", "items", api_scope_items(req, items)));
}

/* The request body as a JSON object, or NULL after replying 400. */
static json_t *body_object(struct api_req *req, const char *shape)
{
	size_t len;
	const char *buf = api_req_body(req, &len);
	json_t *body = json_loadb(buf ? buf : "", len, JSON_REJECT_DUPLICATES, NULL);

	if (json_is_object(body))
		return body;
	json_decref(body);
	api_problem(req, 400, NULL, "the body must be a JSON object: %s", shape);
	return NULL;
}

/* Replies for the -errno of a store call on run id. */
static void problem_run(struct api_req *req, int r, const char *what)
{
	struct store *st = api_req_app(req)->store;

	if (r == -EINPROGRESS || r == -EALREADY)
		api_problem(req, 409, NULL, "%s", store_errmsg(st));
	else
		api_problem_errno(req, r, what);
}

static void post_invalidate(struct api_req *req)
{
	json_t *body = body_object(req, "{reason}");
	json_t *reason = json_object_get(body, "reason");
	int r;

	if (!body)
		return;
	if (!json_is_string(reason) || json_string_length(reason) == 0 ||
	    json_string_length(reason) > REASON_MAX) {
		api_problem(req, 422,
		            json_pack("{s:[{s:s, s:s}]}", "errors", "path", "reason", "message",
		                      "required: a string of 1 to 1024 bytes"),
		            json_string_length(reason) > REASON_MAX
		                    ? "reason: at most 1024 bytes"
		                    : "reason: required: say why the run must not count");
	} else {
		r = store_run_invalidate(api_req_app(req)->store, api_req_id(req),
		                         json_string_value(reason), rd_now_ms());
		if (r < 0) {
			problem_run(req, r, "cannot invalidate the run");
		} else {
			api_audit(req, "invalidate", NULL, api_req_id(req), 0,
			          json_string_value(reason));
			json_t *run = NULL;

			r = store_run_get(api_req_app(req)->store, api_req_id(req), &run);
			if (r < 0)
				api_problem_errno(req, r, "cannot read the run");
			else
				api_reply_json(req, 200, run);
		}
	}
	json_decref(body);
}

/* The run's stored spec with its gates replaced by gates, validated like
 * a submission: 0, -EINVAL with the path and message in err, or another
 * -errno with what failed in err->message. */
static int rejudge_spec(struct store *st, int64_t id, json_t *gates, struct spec **ret_spec,
                        struct spec_error *err)
{
	json_t *doc = NULL;
	char *text;
	int r = store_run_spec(st, id, &doc);

	if (r < 0) {
		snprintf(err->message, sizeof(err->message), "cannot read the run's spec");
		return r;
	}
	json_object_set(doc, "gates", gates);
	text = rd_json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	if (!text) {
		snprintf(err->message, sizeof(err->message), "rejudge");
		return -ENOMEM;
	}
	r = spec_parse(text, strlen(text), SPEC_FORMAT_JSON, ret_spec, err);
	free(text);
	if (r < 0 && r != -EINVAL)
		snprintf(err->message, sizeof(err->message), "rejudge");
	return r;
}

/* Percentile gates of load probes are judged on the percentile recomputed
 * from the stored histogram, so a rejudge may ask for one the run never
 * published (p75_ms). metrics of the run's probes are replaced by copies
 * that carry them; recomputed lists "probe.metric" of each. */
static int recompute_percentiles(struct store *st, int64_t id, const struct spec *spec, json_t *run,
                                 json_t *recomputed)
{
	json_t *probes = json_object_get(run, "probes");

	for (size_t g = 0; g < spec->n_gates; g++) {
		const struct gate_expr *ex = &spec->gates[g].ex;
		json_t *p, *copy;
		size_t i;
		double ms;

		json_array_foreach (probes, i, p) {
			if (strcmp(json_string_value(json_object_get(p, "name")), ex->probe) != 0 ||
			    store_probe_percentile(st, id, i, ex->metric, &ms) < 0)
				continue;
			copy = json_deep_copy(json_object_get(p, "metrics"));
			if (!copy || json_object_set_new(copy, ex->metric, json_real(ms)) < 0 ||
			    json_object_set_new(p, "metrics", copy) < 0 ||
			    json_array_append_new(recomputed,
			                          json_sprintf("%s.%s", ex->probe, ex->metric)) < 0)
				return -ENOMEM;
		}
	}
	return 0;
}

/* The stored probes of run as the judge sees them (borrowed from run). */
static struct judge_probe *stored_probes(json_t *run, size_t *ret_n)
{
	json_t *probes = json_object_get(run, "probes"), *p;
	size_t i, n = json_array_size(probes);
	struct judge_probe *jp = calloc(n ? n : 1, sizeof(*jp));

	if (!jp)
		return NULL;
	json_array_foreach (probes, i, p) {
		jp[i].name = json_string_value(json_object_get(p, "name"));
		jp[i].state = json_string_value(json_object_get(p, "state"));
		jp[i].error = json_string_value(json_object_get(p, "error"));
		jp[i].metrics = json_object_get(p, "metrics");
		if (!jp[i].name || !jp[i].state) {
			free(jp);
			return NULL;
		}
	}
	*ret_n = n;
	return jp;
}

/* Judges spec against run's stored probes and stores the decision as
 * the caller's: 0 and the rejudgement (new reference), or -errno. */
static int rejudge(struct api_req *req, json_t *run, const struct spec *spec, json_t **ret)
{
	struct store *st = api_req_app(req)->store;
	struct store_judge_ctx ctx = {st, spec->service, spec->environment,
	                              json_integer_value(json_object_get(run, "id")), rd_now_ms()};
	struct judge_lookup lk = {store_judge_baseline, store_judge_waiver, &ctx};
	json_t *gates = NULL, *checklist = NULL, *recomputed = json_array();
	struct judge_probe *jp = NULL;
	enum verdict v;
	int64_t seq = 0;
	size_t n = 0;
	char at[RD_TIME_LEN];
	int r = recomputed ? recompute_percentiles(st, ctx.run_id, spec, run, recomputed) : -ENOMEM;

	if (r == 0)
		jp = stored_probes(run, &n);
	r = jp ? 0 : -ENOMEM;
	if (r == 0)
		r = judge_run_with(spec, jp, n, &lk, ctx.now_ms, &gates, &checklist, &v);
	if (r == 0)
		r = store_rejudgement_add(st, ctx.run_id, gates, gate_verdict_to_string(v),
		                          api_req_principal(req), ctx.now_ms, &seq);
	free(jp);
	if (r < 0) {
		json_decref(recomputed);
		json_decref(gates);
		json_decref(checklist);
		return r;
	}
	api_audit(req, "rejudge", spec->service, ctx.run_id, 0, NULL);
	rd_time_format(ctx.now_ms, at);
	*ret = json_pack("{s:I, s:I, s:s, s:s, s:O?, s:o, s:o, s:o}", "run_id",
	                 (json_int_t)ctx.run_id, "seq", (json_int_t)seq, "created_at", at,
	                 "verdict", gate_verdict_to_string(v), "original_verdict",
	                 json_object_get(run, "verdict"), "gates", gates, "checklist", checklist,
	                 "recomputed_from_histograms", recomputed);
	return *ret ? 0 : -ENOMEM;
}

int api_rejudge(struct api_req *req, json_t *run, json_t *gates, json_t **ret,
                struct spec_error *err)
{
	struct spec *spec = NULL;
	int64_t id = json_integer_value(json_object_get(run, "id"));
	int r;

	memset(err, 0, sizeof(*err));
	r = rejudge_spec(api_req_app(req)->store, id, gates, &spec, err);
	if (r == 0) {
		r = rejudge(req, run, spec, ret);
		if (r < 0)
			snprintf(err->message, sizeof(err->message), "cannot rejudge the run");
	}
	spec_free(spec);
	return r;
}

static void post_rejudge(struct api_req *req)
{
	json_t *body = body_object(req, "{gates: [...]}"), *run = NULL, *out = NULL;
	struct spec_error se;
	const char *state;
	int r;

	if (!body)
		return;
	if (!json_is_array(json_object_get(body, "gates"))) {
		api_problem(req, 422,
		            json_pack("{s:[{s:s, s:s}]}", "errors", "path", "gates", "message",
		                      "required: a list of gates, as in a spec"),
		            "gates: required: a list of gates, as in a spec");
		goto out;
	}
	r = store_run_get(api_req_app(req)->store, api_req_id(req), &run);
	if (r < 0) {
		api_problem_errno(req, r, "cannot read the run");
		goto out;
	}
	state = json_string_value(json_object_get(run, "state"));
	if (!run_state_string_is_final(state)) {
		api_problem(req, 409, NULL, "run %lld is still %s: wait until it ends",
		            (long long)api_req_id(req), state ? state : "unknown");
		goto out;
	}
	r = api_rejudge(req, run, json_object_get(body, "gates"), &out, &se);
	if (r == -EINVAL)
		api_problem(req, 422,
		            json_pack("{s:[{s:s, s:s}]}", "errors", "path", se.path, "message",
		                      se.message),
		            "%s: %s", se.path, se.message);
	else if (r < 0)
		problem_run(req, r, se.message);
	else
		api_reply_json(req, 201, out);
out:
	json_decref(run);
	json_decref(body);
}

const struct api_route api_routes_gates[] = {
        {"GET", "/v1/gates", get_gates, API_ROLE_VIEWER},
        {"POST", "/v1/runs/{id}/rejudge", post_rejudge, API_ROLE_SUBMITTER, .store_change = true},
        {"POST", "/v1/runs/{id}/invalidate", post_invalidate, API_ROLE_SUBMITTER,
         .store_change = true},
        {NULL, NULL, NULL},
};
