/* probe_capacity: the `capacity` probe: the highest request rate at which
 * the SLO still holds. Each step is a short rate-mode run of the load
 * engine (lib/loadgen) at one rate; the SLO's conditions (gate_parse_slo)
 * are checked on that step's metrics, and a step whose rate the engine
 * could not keep fails too (the rate was not offered, so it cannot be
 * claimed), and so does one whose delivered rate (successful answers per
 * second) fell more than CAP_TOLERANCE short of the offered rate: a
 * server that queues what it cannot serve may keep its latency under the
 * SLO for a short step while delivering less than was asked. The reported
 * capacity is the delivered rate of the best passing step. The search ramps up from min_rate by
 * doubling until a step fails or max_rate passes, then bisects between the last pass and the first
 * failure until they are within 3% (or 24 steps in all). A failing step is run once more before it
 * counts: one noisy second on a shared host must not halve the answer, while a real limit fails
 * twice.
 *
 * Every step sends the same corpus (lib/probe/probe_corpus.h) from the
 * start of the same sequence; ca_file and corpus.file are read once, off
 * the loop through allowed_paths, before the first step.
 *
 * Steps run one after another on the engine's threads; this file stays on
 * the main loop and never touches the store.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/loadgen/loadgen.h"
#include "lib/policy/policy.h"
#include "lib/probe/fanload.h"
#include "lib/probe/probe.h"
#include "lib/probe/probe_corpus.h"
#include "lib/util/util.h"

#define CAP_MAX_CONDS    8
#define CAP_MAX_STEPS    24
#define CAP_PRECISION    0.03
#define CAP_PROGRESS_MS  250
#define CAP_DEFAULT_STEP 10000
#define CAP_TOLERANCE    0.05 /* delivered may fall this much short of offered */

struct cap_probe {
	struct probe *p;
	struct gate_expr slo[CAP_MAX_CONDS];
	int n_slo;
	struct fanload *fl; /* the step running: from this node, or spread (`nodes`) */
	uv_timer_t progress;
	bool cancelled;
	bool confirming; /* the step running repeats a failure */
	int steps;
	int rounds;            /* steps started, confirmations included */
	double rate;           /* of the step running */
	double good, bad;      /* highest pass (0: none), lowest failure (0: none) */
	double good_delivered; /* the delivered rate of the step at good */
	bool any_ok;           /* some step got a successful answer */
	int nodes;             /* the most nodes a step ran on (1: this one) */
	json_t *points;
	enum probe_state state;
	char why[512];
	struct policy_file *file_read; /* ca_file or corpus.file being read off the loop */
	char *ca_pem;
	size_t ca_pem_len;
	bool ca_done;                  /* ca_file read (or none) */
	struct loadgen_corpus *corpus; /* corpus.file or corpus.items, parsed */
	uint64_t distinct;             /* the most distinct requests a step sent */
};

static void cap_config(const struct cap_probe *cp, double rate, struct loadgen_config *c)
{
	const struct probe *p = cp->p;
	const struct spec_probe *sp = p->sp;

	*c = (struct loadgen_config){
	        .url = sp->url,
	        .method = sp->method,
	        .headers = sp->headers,
	        .n_headers = sp->n_headers,
	        .body = sp->body,
	        .body_len = sp->body_len,
	        .mode = LOAD_MODE_RATE,
	        .rate = rate,
	        .connections = sp->connections > 0 ? (int)sp->connections : 64,
	        .threads = sp->threads > 0 ? (int)sp->threads : 1,
	        .duration_ms = sp->step_ms > 0 ? sp->step_ms : CAP_DEFAULT_STEP,
	        .warmup_ms = sp->warmup_ms,
	        .timeout_ms = p->spec->target.timeout_ms,
	        .insecure = sp->insecure,
	        .ca_pem = cp->ca_pem,
	        .ca_pem_len = cp->ca_pem_len,
	};
	probe_corpus_config(sp, cp->corpus, c);
	http_client_get_policy(p->http, &c->policy, &c->policy_data); /* allowed_targets */
}

/* Does the step meet every SLO condition? A missing figure never does. */
static bool step_passes(const struct cap_probe *cp, json_t *m, const char **ret_failed)
{
	for (int i = 0; i < cp->n_slo; i++) {
		json_t *v = json_object_get(m, cp->slo[i].metric);

		if (!json_is_number(v) ||
		    !gate_compare(json_number_value(v), cp->slo[i].op, cp->slo[i].number)) {
			*ret_failed = cp->slo[i].metric;
			return false;
		}
	}
	if (json_number_value(json_object_get(m, "rate_kept")) != 1) {
		*ret_failed = "rate_kept";
		return false;
	}
	if (!(json_number_value(json_object_get(m, "delivered_rps")) >=
	      cp->rate * (1 - CAP_TOLERANCE))) {
		*ret_failed = "delivered_rps";
		return false;
	}
	return true;
}

/* Successful answers per second over the step's measured window. */
static int set_delivered(json_t *m, const struct loadgen_result *r)
{
	double ok = (double)(r->requests - (r->errors < r->requests ? r->errors : r->requests));
	double v = r->elapsed_s > 0 ? ok / r->elapsed_s : 0;

	return json_object_set_new(m, "delivered_rps", json_real(v));
}

static void add_point(struct cap_probe *cp, json_t *m, bool pass, const char *failed, json_t *nodes)
{
	static const char *const keep[] = {"p50_ms",        "p95_ms",          "p99_ms",
	                                   "error_rate",    "throughput_rps",  "requests_rps",
	                                   "delivered_rps", "schedule_lag_ms", "rate_kept",
	                                   "requests",      "errors"};
	json_t *pt = json_pack("{s:f, s:b, s:s?}", "rate", cp->rate, "pass", pass, "failed_on",
	                       pass ? NULL : failed);

	for (size_t i = 0; pt && i < sizeof(keep) / sizeof(keep[0]); i++) {
		json_t *v = json_object_get(m, keep[i]);

		if (v)
			json_object_set(pt, keep[i], v);
	}
	if (pt && nodes)
		json_object_set(pt, "nodes", nodes);
	if (pt)
		json_array_append_new(cp->points, pt);
}

/* The next rate to try, or 0 when the search is over. */
static double next_rate(const struct cap_probe *cp)
{
	const struct spec_probe *sp = cp->p->sp;
	double next;

	if (cp->steps >= CAP_MAX_STEPS)
		return 0;
	if (cp->bad == 0) {
		/* Ramp: every step so far passed; the last one was cp->rate. */
		if (cp->rate >= sp->max_rate)
			return 0;
		next = cp->rate * 2;
		return next > sp->max_rate ? sp->max_rate : next;
	}
	if (cp->good == 0)
		return 0; /* even min_rate fails: the answer is 0 */
	if (cp->bad - cp->good <= CAP_PRECISION * cp->good)
		return 0;
	return (cp->good + cp->bad) / 2;
}

static void on_timer_closed(uv_handle_t *h)
{
	struct cap_probe *cp = h->data;

	if (cp->state == PROBE_STATE_ERRORED)
		probe_finish(cp->p, PROBE_STATE_ERRORED, "%s", cp->why);
	else
		probe_finish(cp->p, cp->state, NULL);
}

/* The plan on the measured capacity (docs/MEASUREMENT.md "Capacity
 * plans"): instances_needed, plan_feasible and, with max_instances,
 * plan_headroom. Without a capacity (0: even min_rate failed) no number
 * of instances carries the target: instances_needed is not published and
 * the plan is infeasible. */
static void publish_plan(struct probe *p, double capacity, json_t *details)
{
	const struct spec_plan *pl = &p->sp->plan;
	double per_instance = capacity * pl->target_utilization, need = NAN;
	bool feasible;

	if (per_instance > 0) {
		need = ceil(pl->target_rps / per_instance - 1e-9);
		if (need < (double)pl->min_instances)
			need = (double)pl->min_instances;
	}
	feasible = !isnan(need) && (pl->max_instances == 0 || need <= (double)pl->max_instances);
	probe_set_metric(p, "instances_needed", need);
	probe_set_metric(p, "plan_feasible", feasible);
	probe_set_metric(p, "capacity_per_instance", per_instance);
	if (pl->max_instances > 0)
		probe_set_metric(p, "plan_headroom",
		                 (double)pl->max_instances * per_instance / pl->target_rps - 1);
	json_object_set_new(details, "plan",
	                    json_pack("{s:f, s:f, s:I, s:I}", "target_rps", pl->target_rps,
	                              "target_utilization", pl->target_utilization, "min_instances",
	                              (json_int_t)pl->min_instances, "max_instances",
	                              (json_int_t)pl->max_instances));
}

static void finish(struct cap_probe *cp, enum probe_state state)
{
	struct probe *p = cp->p;
	const struct spec_probe *sp = p->sp;

	cp->state = state;
	if (state == PROBE_STATE_PASSED && !cp->any_ok) {
		/* Every answer of every step failed: nothing was measured. */
		state = cp->state = PROBE_STATE_ERRORED;
		snprintf(cp->why, sizeof(cp->why),
		         "no step got a successful answer (%d steps from %g req/s)", cp->steps,
		         sp->min_rate);
	}
	if (state == PROBE_STATE_PASSED) {
		probe_set_metric(p, "rate", cp->good_delivered);
		probe_set_metric(p, "offered_rate", cp->good);
		probe_set_metric(p, "tolerance", CAP_TOLERANCE);
		probe_set_metric(p, "steps", cp->steps);
		probe_set_metric(p, "distinct_requests", (double)cp->distinct);
		probe_set_metric(p, "nodes", cp->nodes);
		if (sp->required_rate > 0)
			probe_set_metric(p, "headroom", cp->good_delivered / sp->required_rate);
		p->percent = 100;
	}
	json_decref(p->details);
	p->details =
	        json_pack("{s:O, s:s, s:f, s:f, s:f, s:b}", "points", cp->points, "slo", sp->slo,
	                  "min_rate", sp->min_rate, "max_rate", sp->max_rate, "tolerance",
	                  CAP_TOLERANCE, "capacity_is_lower_bound", cp->bad == 0 && cp->good > 0);
	if (state == PROBE_STATE_PASSED && sp->plan.target_rps > 0 && p->details)
		publish_plan(p, cp->good_delivered, p->details);
	uv_close((uv_handle_t *)&cp->progress, on_timer_closed);
}

static int start_step(struct cap_probe *cp, double rate);

/* A step after which the search cannot go on (cp->why says why): no
 * connection could be made (no step can pass without one), or no memory
 * to judge it. Otherwise adds delivered_rps to m. */
static bool step_unusable(struct cap_probe *cp, const struct loadgen_result *r, json_t *m)
{
	if (r->requests > 0 && r->errors_by[LOADGEN_ERR_CONNECT] == r->requests) {
		snprintf(cp->why, sizeof(cp->why), "cannot connect to %s%s%s%s", cp->p->sp->url,
		         r->connect_error[0] ? ": " : "", r->connect_error,
		         strncmp(r->connect_error, "TLS certificate", 15) == 0
		                 ? " (give ca_file, or insecure: true to skip verification)"
		                 : "");
		return true;
	}
	if (set_delivered(m, r) < 0) {
		snprintf(cp->why, sizeof(cp->why), "out of memory while judging a step");
		return true;
	}
	return false;
}

/* A round that a node could not finish (error): what was measured is
 * kept as the step's point, and the probe is an error, never a capacity
 * found with less load than the step offered. */
static void step_lost(struct cap_probe *cp, const struct loadgen_result *r, json_t *nodes,
                      const char *error)
{
	json_t *m = NULL;

	if (r && loadgen_result_metrics(r, &m) == 0 && set_delivered(m, r) == 0)
		add_point(cp, m, false, "nodes", nodes);
	json_decref(m);
	snprintf(cp->why, sizeof(cp->why), "the step at %g req/s: %s", cp->rate, error);
}

static void on_step_done(void *userdata, const struct loadgen_result *r, json_t *nodes,
                         const char *error)
{
	struct cap_probe *cp = userdata;
	struct fanload *fl = cp->fl;
	const char *failed = "rate_kept";
	json_t *m = NULL;
	bool pass;
	double next, delivered;
	int n = nodes ? (int)json_array_size(nodes) : 1;

	cp->fl = NULL;
	if (cp->cancelled || (r && r->cancelled && !error)) {
		fanload_free(fl);
		finish(cp, PROBE_STATE_CANCELLED);
		return;
	}
	if (error || !r || loadgen_result_metrics(r, &m) < 0) {
		if (error)
			step_lost(cp, r, nodes, error);
		else
			snprintf(cp->why, sizeof(cp->why), "out of memory while judging a step");
		fanload_free(fl);
		finish(cp, PROBE_STATE_ERRORED);
		return;
	}
	if (step_unusable(cp, r, m)) {
		json_decref(m);
		fanload_free(fl);
		finish(cp, PROBE_STATE_ERRORED);
		return;
	}
	cp->any_ok = cp->any_ok || r->requests > r->errors;
	if (r->distinct_requests > cp->distinct)
		cp->distinct = r->distinct_requests;
	if (n > cp->nodes)
		cp->nodes = n;
	cp->steps++;
	pass = step_passes(cp, m, &failed);
	delivered = json_number_value(json_object_get(m, "delivered_rps"));
	add_point(cp, m, pass, failed, nodes);
	json_decref(m);
	fanload_free(fl);
	if (!pass && !cp->confirming && cp->steps < CAP_MAX_STEPS) {
		cp->confirming = true;
		if (start_step(cp, cp->rate) < 0)
			finish(cp, PROBE_STATE_ERRORED);
		return;
	}
	cp->confirming = false;
	if (pass) {
		cp->good = cp->rate;
		cp->good_delivered = delivered;
	} else
		cp->bad = cp->rate;
	next = next_rate(cp);
	if (next <= 0) {
		finish(cp, PROBE_STATE_PASSED);
		return;
	}
	if (start_step(cp, next) < 0)
		finish(cp, PROBE_STATE_ERRORED);
}

/* One step: a round of rate-mode load at rate, spread as `nodes` says. */
static int start_step(struct cap_probe *cp, double rate)
{
	struct loadgen_config cfg;
	struct fanload_round rd;

	cp->rate = rate;
	cap_config(cp, rate, &cfg);
	rd = (struct fanload_round){.index = cp->rounds++,
	                            .mode = LOAD_MODE_RATE,
	                            .rate = rate,
	                            .duration_ms = cfg.duration_ms,
	                            .warmup_ms = cfg.warmup_ms};
	return fanload_start(cp->p, &cfg, &rd, on_step_done, cp, &cp->fl, cp->why, sizeof(cp->why));
}

static void on_progress(uv_timer_t *t)
{
	struct cap_probe *cp = t->data;
	int64_t n = 0;
	int pct = 0;

	fanload_progress(cp->fl, &n, &pct);
	cp->p->requests = n;
	cp->p->percent = (cp->steps * 100 + pct) / CAP_MAX_STEPS;
}

/* The first step, and progress from then on. */
static void cap_begin(struct cap_probe *cp)
{
	const struct spec_probe *sp = cp->p->sp;

	if (start_step(cp, sp->min_rate > 0 ? sp->min_rate : 1) < 0) {
		finish(cp, PROBE_STATE_ERRORED);
		return;
	}
	uv_timer_start(&cp->progress, on_progress, CAP_PROGRESS_MS, CAP_PROGRESS_MS);
}

static int cap_prepare(struct cap_probe *cp);

/* ca_file arrives from the threadpool (allowed_paths, lib/policy/policy.h); every
 * step uses the same text. */
static void on_ca_read(void *userdata, int err, char *buf, size_t len, const char *why)
{
	struct cap_probe *cp = userdata;

	cp->file_read = NULL;
	if (err < 0) {
		snprintf(cp->why, sizeof(cp->why), "ca_file %.200s %s", cp->p->sp->ca_file, why);
		finish(cp, PROBE_STATE_ERRORED);
		return;
	}
	cp->ca_pem = buf;
	cp->ca_pem_len = len;
	cp->ca_done = true;
	cap_prepare(cp);
}

/* corpus.file arrives from the threadpool, as ca_file does. */
static void on_corpus_read(void *userdata, int err, char *buf, size_t len, const char *why)
{
	struct cap_probe *cp = userdata;

	cp->file_read = NULL;
	if (probe_corpus_read_done(cp->p->sp, err, buf, len, why, &cp->corpus, cp->why,
	                           sizeof(cp->why)) < 0) {
		finish(cp, PROBE_STATE_ERRORED);
		return;
	}
	cap_prepare(cp);
}

/* What the steps need, read off the loop one at a time: ca_file, then the
 * corpus; then the first step. */
static int cap_prepare(struct cap_probe *cp)
{
	const struct spec_probe *sp = cp->p->sp;
	const char *what = sp->ca_file && !cp->ca_done ? "ca_file" : "corpus.file";
	int r = 0;

	if (sp->ca_file && !cp->ca_done)
		r = policy_read_file_async(cp->p->loop, http_client_files(cp->p->http), sp->ca_file,
		                           POLICY_MAX_FILE_SIZE, on_ca_read, cp, &cp->file_read);
	else if (sp->corpus.file && !cp->corpus)
		r = policy_read_file_async(cp->p->loop, http_client_files(cp->p->http),
		                           sp->corpus.file, POLICY_MAX_FILE_SIZE, on_corpus_read,
		                           cp, &cp->file_read);
	else if (sp->corpus.items && !cp->corpus &&
	         probe_corpus_parse(sp, NULL, 0, &cp->corpus, cp->why, sizeof(cp->why)) < 0) {
		finish(cp, PROBE_STATE_ERRORED);
		return 0;
	} else {
		cap_begin(cp);
		return 0;
	}
	if (r < 0) {
		snprintf(cp->why, sizeof(cp->why), "cannot read %s: %s", what, strerror(-r));
		finish(cp, PROBE_STATE_ERRORED);
	}
	return 0;
}

static int cap_probe_start(struct probe *p)
{
	struct cap_probe *cp = calloc(1, sizeof(*cp));
	char err[256];

	if (!cp)
		return -ENOMEM;
	cp->p = p;
	p->impl = cp;
	cp->n_slo = gate_parse_slo(p->sp->slo, cp->slo, CAP_MAX_CONDS, err, sizeof(err));
	cp->points = json_array();
	if (cp->n_slo < 0 || !cp->points) {
		int r = cp->n_slo < 0 ? -EINVAL : -ENOMEM;

		json_decref(cp->points);
		free(cp);
		p->impl = NULL;
		return r;
	}
	uv_timer_init(p->loop, &cp->progress);
	cp->progress.data = cp;
	p->percent = 0;
	p->requests = 0;
	return cap_prepare(cp);
}

static void cap_probe_cancel(struct probe *p)
{
	struct cap_probe *cp = p->impl;

	if (!cp) {
		probe_finish(p, PROBE_STATE_CANCELLED, NULL);
		return;
	}
	cp->cancelled = true;
	fanload_cancel(cp->fl); /* its end finishes the probe */
	if (cp->file_read) {
		policy_file_cancel(cp->file_read);
		cp->file_read = NULL;
		finish(cp, PROBE_STATE_CANCELLED);
	}
}

static void cap_probe_free(struct probe *p)
{
	struct cap_probe *cp = p->impl;

	if (!cp)
		return;
	policy_file_cancel(cp->file_read);
	fanload_free(cp->fl);
	json_decref(cp->points);
	free(cp->ca_pem);
	loadgen_corpus_free(cp->corpus);
	free(cp);
	p->impl = NULL;
}

/* --- the type: its spec fields, rules, metrics and ops --- */

/* One field per line, aligned by hand: read as a schema more than as
 * code. */
/* clang-format off */
#define PL(m) offsetof(struct spec_plan, m)
static const struct spec_field plan_fields[] = {
	{.key = "target_rps",         .kind = FK_NUMBER, .required = true, .off = PL(target_rps),
	 .gt_min = true, .dmax = 1e12},
	{.key = "target_utilization", .kind = FK_NUMBER, .off = PL(target_utilization),
	 .gt_min = true, .dmax = 1, .ddef = 0.7},
	{.key = "min_instances",      .kind = FK_INT, .off = PL(min_instances), .min = 1,
	 .max = 1000000, .def = 1},
	{.key = "max_instances",      .kind = FK_INT, .off = PL(max_instances), .min = 1,
	 .max = 1000000},
};
static const struct spec_schema plan_schema = {
	"a capacity plan", plan_fields, RD_ARRAY_SIZE(plan_fields), false};

static const struct spec_field fields[] = {
	SPEC_F_COMMON,
	{.key = "slo",           .kind = FK_STRING, .required = true, .off = SPEC_P(slo),
	 .max = 1024, .check = spec_check_slo},
	{.key = "max_rate",      .kind = FK_NUMBER, .required = true, .off = SPEC_P(max_rate),
	 .gt_min = true, .dmax = SPEC_MAX_RATE},
	{.key = "min_rate",      .kind = FK_NUMBER, .off = SPEC_P(min_rate), .gt_min = true,
	 .dmax = SPEC_MAX_RATE, .ddef = 1},
	{.key = "required_rate", .kind = FK_NUMBER, .off = SPEC_P(required_rate), .gt_min = true,
	 .dmax = SPEC_MAX_RATE},
	{.key = "step",          .kind = FK_DURATION, .off = SPEC_P(step_ms), .min = 1,
	 .max = SPEC_MAXD,	 .def = 10000},
	{.key = "warmup",        .kind = FK_DURATION, .off = SPEC_P(warmup_ms), .min = 0,
	 .max = SPEC_MAXD},
	{.key = "plan",          .kind = FK_OBJECT, .off = SPEC_P(plan), .sub = &plan_schema},
	SPEC_F_CONNECTIONS(64),
	SPEC_F_THREADS,
	SPEC_F_REQUEST,
	SPEC_F_TLS_CLIENT,
	PROBE_F_CORPUS,
	PROBE_F_NODES,
};
/* clang-format on */

static int finish_capacity(struct spec_vctx *v, json_t *obj, const char *path, struct spec_probe *p)
{
	if (p->max_rate <= p->min_rate)
		return spec_fail_at(v, obj, path, "max_rate", "must be greater than min_rate (%g)",
		                    p->min_rate);
	if (p->required_rate > p->max_rate)
		return spec_fail_at(v, obj, path, "required_rate", "must not exceed max_rate (%g)",
		                    p->max_rate);
	if (p->plan.max_instances && p->plan.max_instances < p->plan.min_instances)
		return spec_fail_at(v, obj, path, "plan",
		                    "max_instances must not be below min_instances (%lld)",
		                    (long long)p->plan.min_instances);
	if (p->warmup_ms >= p->step_ms) {
		char a[32];

		rd_format_duration(p->step_ms, a, sizeof(a));
		return spec_fail_at(v, obj, path, "warmup", "must be shorter than step (%s)", a);
	}
	if (probe_corpus_finish(v, obj, path, p) < 0 || fanload_check_nodes(v, obj, path, p) < 0)
		return -EINVAL;
	return spec_load_request(v, obj, path, p);
}

/* The search takes as many steps as it needs: the run bounds it. */
static int64_t capacity_deadline(const struct spec *s, const struct spec_probe *sp)
{
	(void)sp;
	return s->timeout_ms;
}

static const struct probe_metric_def metrics[] = {
        {"rate", "requests/s", PROBE_SAMPLES_NONE},
        {"offered_rate", "requests/s", PROBE_SAMPLES_NONE},
        {"tolerance", "1", PROBE_SAMPLES_NONE},
        {"headroom", "1", PROBE_SAMPLES_NONE},
        {"steps", "steps", PROBE_SAMPLES_NONE},
        {"distinct_requests", "requests", PROBE_SAMPLES_NONE},
        {"instances_needed", "instances", PROBE_SAMPLES_NONE},
        {"plan_feasible", "1", PROBE_SAMPLES_NONE},
        {"plan_headroom", "1", PROBE_SAMPLES_NONE},
        {"capacity_per_instance", "requests/s", PROBE_SAMPLES_NONE},
        {"nodes", "nodes", PROBE_SAMPLES_NONE},
};

const struct probe_type_def probe_type_capacity = {
        .name = "capacity",
        .section = "Performance",
        .fields = fields,
        .n_fields = RD_ARRAY_SIZE(fields),
        .finish = finish_capacity,
        .deadline_ms = capacity_deadline,
        .deadline_doc = "the run's `timeout`",
        .load = true,
        .metrics = metrics,
        .n_metrics = RD_ARRAY_SIZE(metrics),
        .ops =
                {
                        .start = cap_probe_start,
                        .cancel = cap_probe_cancel,
                        .free = cap_probe_free,
                },
};
