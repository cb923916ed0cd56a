/* probe_load: the `load` probe: one run of the load engine (lib/loadgen)
 * with the probe's (or the target's) request, in closed or rate mode.
 * The engine runs on its own threads; this file stays on the main loop:
 * it copies progress from the engine's atomics into p->percent and
 * p->requests every 250 ms, and publishes the result's metrics and
 * details when the engine reports back through uv_async_send.
 *
 * Gates on this probe with `abort_on_fail` are watched on the same tick
 * over a sliding window of the engine's timeline (docs/spec.md "Gates"
 * says when such a gate "cannot be met"); the first that cannot ends the
 * engine early and the probe fails, naming the gate and the window.
 *
 * Before the engine starts, ca_file and corpus.file are read on the
 * threadpool through allowed_paths (lib/probe/probe_corpus.h turns the
 * corpus into the engine's).
 *
 * It must not touch the store or the API (the scheduler persists), and
 * must always end with probe_finish(), also when cancelled.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/loadgen/loadgen.h"
#include "lib/policy/policy.h"
#include "lib/probe/fanload.h"
#include "lib/probe/probe.h"
#include "lib/probe/reconcile.h"
#include "lib/prom/promapi.h"
#include "lib/probe/probe_corpus.h"
#include "lib/util/util.h"

#define LOAD_PROGRESS_MS        250
#define LOAD_ABORT_WINDOW_S     5   /* seconds of the sliding window */
#define LOAD_ABORT_MIN_REQUESTS 100 /* in the window, before it decides anything */
#define LOAD_LIVE_P99_S         3   /* seconds behind the live p99 of the progress */
#define LOAD_LIVE_TICKS         4   /* progress ticks (250 ms) between two live readings */

struct load_probe {
	struct probe *p;
	struct loadgen *lg;
	uv_timer_t progress;
	bool timer_open;
	bool cancelled;
	bool aborted; /* an abort_on_fail gate could no longer be met */
	unsigned ticks;
	enum probe_state state;
	char why[512];
	struct policy_file *file_read; /* ca_file or corpus.file being read off the loop */
	char *ca_pem;
	size_t ca_pem_len;
	/* server_latency: the measured window, and the queries after it */
	int64_t measure_start_ms, measure_end_ms;
	struct promapi_call *call;
	size_t quantile; /* the one being asked for */
	double server_ms[RECONCILE_QUANTILES];
	json_t *server; /* details.server_latency being built; owned until published */
	bool ca_done;   /* ca_file read (or none) */
	struct loadgen_corpus *corpus; /* corpus.file or corpus.items, parsed */
	/* `nodes`: this node's share is shard shard_i of nodes (1: all of
	 * it); job is the fan-out's while other nodes run theirs. */
	int nodes, shard_i;
	struct probe_fanout_job *job;
	bool started;    /* the engine was started (at started_ms) */
	bool collecting; /* this node's share ended; waiting for the others' */
	int64_t started_ms;
};

/* The engine's config for a load-type probe; shared with probe_capacity
 * through probe_load_config() (declared in loadgen.h's user, not here). */
static void load_config(const struct probe *p, struct loadgen_config *c)
{
	const struct spec_probe *sp = p->sp;

	*c = (struct loadgen_config){
	        .url = sp->url ? sp->url : p->spec->target.url,
	        .method = sp->method ? sp->method : p->spec->target.method,
	        .headers = sp->url ? sp->headers : p->spec->target.headers,
	        .n_headers = sp->url ? sp->n_headers : p->spec->target.n_headers,
	        .body = sp->url ? sp->body : p->spec->target.body,
	        .body_len = sp->url ? sp->body_len : p->spec->target.body_len,
	        .mode = sp->mode,
	        .rate = sp->rate,
	        .connections = sp->connections > 0 ? (int)sp->connections : 16,
	        .threads = sp->threads > 0 ? (int)sp->threads : 1,
	        .duration_ms = sp->requests > 0 ? 0 : sp->duration_ms,
	        .requests = sp->requests,
	        .warmup_ms = sp->warmup_ms,
	        .timeout_ms = p->spec->target.timeout_ms,
	        .insecure = sp->insecure,
	        .stream = sp->stream,
	        .token_key = sp->token_key,
	};
	if (c->duration_ms == 0 && c->requests == 0)
		c->duration_ms = 30000;
	http_client_get_policy(p->http, &c->policy, &c->policy_data); /* allowed_targets */
}

void probe_load_share(const struct spec_probe *sp, int i, int n, struct probe_load_share *ret)
{
	int64_t c = sp->connections > 0 ? sp->connections : 16;
	int64_t t = sp->threads > 0 ? sp->threads : 1;

	ret->connections = c / n + (i < c % n ? 1 : 0);
	/* Threads are each node's own cores: as many as asked, within its
	 * connections. */
	ret->threads = t < ret->connections ? t : ret->connections;
	ret->requests = sp->requests / n + (i < sp->requests % n ? 1 : 0);
	ret->rate = sp->rate / n;
	ret->stagger_ms = sp->mode == LOAD_MODE_RATE && sp->rate > 0
	                          ? (int64_t)llround((double)i * 1000.0 / sp->rate)
	                          : 0;
}

/* This node's share of a load spread over lp->nodes nodes. */
static void load_config_share(const struct load_probe *lp, struct loadgen_config *c)
{
	struct probe_load_share sh;

	if (lp->nodes <= 1)
		return;
	probe_load_share(lp->p->sp, lp->shard_i, lp->nodes, &sh);
	c->connections = (int)sh.connections;
	c->threads = (int)sh.threads;
	c->rate = sh.rate;
	if (c->requests > 0)
		c->requests = sh.requests;
}

/* ---- abort_on_fail ---- */

/* The q of "pNN_ms" (p999_ms: 99.9), or NaN for any other metric. */
static double metric_percentile(const char *metric)
{
	static const struct {
		const char *name;
		double q;
	} pct[] = {
	        {"p50_ms", 50}, {"p90_ms", 90}, {"p95_ms", 95}, {"p99_ms", 99}, {"p999_ms", 99.9}};

	for (size_t i = 0; i < sizeof(pct) / sizeof(pct[0]); i++)
		if (strcmp(metric, pct[i].name) == 0)
			return pct[i].q;
	return NAN;
}

/* Can the engine's figures so far tell that this gate cannot be met? Only
 * upper bounds against a number: `errors` never falls, and a rate or a
 * percentile that stayed too high for the whole window is taken as the
 * run's. Other gates are judged at the end as usual. */
static bool abort_watched(const struct probe *p, const struct spec_gate *g)
{
	const struct gate_expr *ex = &g->ex;

	if (!g->abort_on_fail || strcmp(ex->probe, p->sp->name) != 0 ||
	    ex->rhs != GATE_RHS_NUMBER || (ex->op != GATE_OP_LT && ex->op != GATE_OP_LE))
		return false;
	return strcmp(ex->metric, "errors") == 0 || strcmp(ex->metric, "error_rate") == 0 ||
	       !isnan(metric_percentile(ex->metric));
}

/* Enough successful answers that ten lie above the percentile (the
 * judge's own floor), and never fewer than LOAD_ABORT_MIN_REQUESTS. */
static uint64_t percentile_floor(double q)
{
	double n = ceil(10.0 / (1.0 - q / 100.0) - 1e-9);

	return n < LOAD_ABORT_MIN_REQUESTS ? LOAD_ABORT_MIN_REQUESTS : (uint64_t)n;
}

/* Returns true (and says why in lp->why) when gate g cannot be met. */
static bool gate_lost(struct load_probe *lp, const struct spec_gate *g)
{
	const struct gate_expr *ex = &g->ex;
	double q = metric_percentile(ex->metric), rate;
	struct loadgen_window w;
	uint64_t ok;

	if (loadgen_window(lp->lg, LOAD_ABORT_WINDOW_S, q, &w) < 0)
		return false;
	if (strcmp(ex->metric, "errors") == 0) {
		if (gate_compare((double)w.errors_total, ex->op, ex->number))
			return false;
		snprintf(lp->why, sizeof(lp->why),
		         "aborted: gate '%s' cannot be met: %llu errors already", g->expr,
		         (unsigned long long)w.errors_total);
		return true;
	}
	if (w.seconds < LOAD_ABORT_WINDOW_S || w.requests < LOAD_ABORT_MIN_REQUESTS)
		return false;
	if (strcmp(ex->metric, "error_rate") == 0) {
		rate = (double)w.errors / (double)w.requests;
		if (gate_compare(rate, ex->op, ex->number))
			return false;
		snprintf(lp->why, sizeof(lp->why),
		         "aborted: gate '%s' cannot be met: error_rate %.4g over the last %d s "
		         "(%llu errors in %llu requests)",
		         g->expr, rate, w.seconds, (unsigned long long)w.errors,
		         (unsigned long long)w.requests);
		return true;
	}
	ok = w.requests - w.errors;
	if (isnan(q) || w.errors > w.requests || ok < percentile_floor(q) ||
	    isnan(w.pct_min_second_ms) || gate_compare(w.pct_ms, ex->op, ex->number) ||
	    gate_compare(w.pct_min_second_ms, ex->op, ex->number))
		return false;
	snprintf(lp->why, sizeof(lp->why),
	         "aborted: gate '%s' cannot be met: %s %.4g over the last %d s (%llu answers), "
	         "and at least %.4g in each of those seconds",
	         g->expr, ex->metric, w.pct_ms, w.seconds, (unsigned long long)ok,
	         w.pct_min_second_ms);
	return true;
}

static void check_abort(struct load_probe *lp)
{
	const struct spec *spec = lp->p->spec;

	if (lp->aborted || lp->cancelled)
		return;
	for (size_t i = 0; i < spec->n_gates; i++) {
		if (!abort_watched(lp->p, &spec->gates[i]) || !gate_lost(lp, &spec->gates[i]))
			continue;
		lp->aborted = true;
		loadgen_end_early(lp->lg);
		if (lp->job)
			lp->p->fanout.ops->stop(lp->job);
		return;
	}
}

/* A live view of the run, read once a second: requests/s and errors so far
 * from the last complete second, p99 over the last LOAD_LIVE_P99_S seconds
 * (steadier than one second's; NaN without a successful answer). */
static void live_seconds(struct load_probe *lp)
{
	struct loadgen_window w;

	if (loadgen_window(lp->lg, 1, 99.0, &w) < 0 || w.seconds < 1)
		return;
	lp->p->live_rps = (double)w.requests;
	lp->p->live_errors = (int64_t)w.errors_total;
	if (loadgen_window(lp->lg, LOAD_LIVE_P99_S, 99.0, &w) == 0 && w.seconds > 0)
		lp->p->live_p99_ms = w.pct_ms;
}

static void on_progress(uv_timer_t *t)
{
	struct load_probe *lp = t->data;

	loadgen_progress(lp->lg, &lp->p->requests, &lp->p->percent);
	if (lp->job)
		lp->p->requests += lp->p->fanout.ops->others_requests(lp->job);
	if (lp->ticks++ % LOAD_LIVE_TICKS == 0)
		live_seconds(lp);
	check_abort(lp);
}

/* Publishes and finishes once the progress timer is closed, so that
 * nothing of this probe is left on the loop when the scheduler frees it. */
static void on_timer_closed(uv_handle_t *h)
{
	struct load_probe *lp = h->data;

	lp->timer_open = false;
	if (lp->state == PROBE_STATE_ERRORED || lp->state == PROBE_STATE_FAILED)
		probe_finish(lp->p, lp->state, "%s", lp->why);
	else
		probe_finish(lp->p, lp->state, NULL);
}

static void publish(struct load_probe *lp, const struct loadgen_result *r)
{
	struct probe *p = lp->p;
	json_t *m = NULL, *d = NULL;

	if (loadgen_result_metrics(r, &m) < 0 || loadgen_result_details(r, &d) < 0) {
		json_decref(m);
		lp->state = PROBE_STATE_ERRORED;
		snprintf(lp->why, sizeof(lp->why), "out of memory while publishing the result");
		return;
	}
	json_decref(p->metrics);
	json_decref(p->details);
	p->metrics = m;
	p->details = d;
	if (probe_set_metric(p, "aborted", lp->aborted ? 1 : 0) < 0) {
		lp->state = PROBE_STATE_ERRORED;
		snprintf(lp->why, sizeof(lp->why), "out of memory while publishing the result");
		return;
	}
	p->requests = (int64_t)r->requests;
	p->percent = 100;
}

/* "all 764 measured requests failed (5xx: 764); no latency was measured" */
static void all_failed(const struct loadgen_result *r, char *buf, size_t len)
{
	size_t n = 0;
	int w;

	w = snprintf(buf, len, "all %llu measured requests failed (",
	             (unsigned long long)r->requests);
	n = w > 0 && (size_t)w < len ? (size_t)w : len - 1;
	for (int i = 0; i < _LOADGEN_ERR_MAX; i++) {
		if (!r->errors_by[i])
			continue;
		w = snprintf(buf + n, len - n, "%s%s: %llu", buf[n - 1] == '(' ? "" : ", ",
		             loadgen_error_to_string(i), (unsigned long long)r->errors_by[i]);
		n += w > 0 && (size_t)w < len - n ? (size_t)w : len - 1 - n;
	}
	snprintf(buf + n, len - n, "); no latency was measured");
}

static void judge_result(struct load_probe *lp, const struct loadgen_result *r)
{
	lp->state = PROBE_STATE_PASSED;
	if (r->cancelled || lp->cancelled) {
		lp->state = PROBE_STATE_CANCELLED;
	} else if (r->requests == 0) {
		lp->state = PROBE_STATE_ERRORED;
		snprintf(lp->why, sizeof(lp->why), "no request was measured");
	} else if (r->errors_by[LOADGEN_ERR_CONNECT] == r->requests) {
		/* Nothing was measured but failures to connect: the target's
		 * fault or the spec's (TLS trust), not a latency. */
		lp->state = PROBE_STATE_ERRORED;
		snprintf(lp->why, sizeof(lp->why), "cannot connect to %s%s%s%s",
		         lp->p->sp->url ? lp->p->sp->url : lp->p->spec->target.url,
		         r->connect_error[0] ? ": " : "", r->connect_error,
		         strncmp(r->connect_error, "TLS certificate", 15) == 0
		                 ? " (give ca_file, or insecure: true to skip verification)"
		                 : "");
	} else if (r->errors >= r->requests) {
		/* No successful answer: no latency, no throughput of the
		 * service; whether gated or not, nothing was measured. */
		lp->state = PROBE_STATE_ERRORED;
		all_failed(r, lp->why, sizeof(lp->why));
	} else if (lp->aborted) {
		lp->state = PROBE_STATE_FAILED; /* lp->why names the gate */
	}
}

/* ---- server_latency: the target's own histogram for the same window ---- */

static void server_send(struct load_probe *lp);

static void close_progress(struct load_probe *lp)
{
	uv_close((uv_handle_t *)&lp->progress, on_timer_closed);
}

/* The successful answers the client's percentiles come from. */
static double successes(const struct probe *p)
{
	json_t *r = json_object_get(p->metrics, "requests"),
	       *e = json_object_get(p->metrics, "errors");

	if (!json_is_number(r) || !json_is_number(e))
		return NAN;
	return json_number_value(r) - json_number_value(e);
}

/* The server side is published beside the client's: server_pNN_ms and
 * gap_ratio when every quantile came back, else the reason in details
 * (and a gate on them has no data). The load's own verdict is unchanged. */
static void server_publish(struct load_probe *lp, const char *error)
{
	struct probe *p = lp->p;
	double client[RECONCILE_QUANTILES];
	double tol = p->sp->tolerance > 0 ? p->sp->tolerance : RECONCILE_DEFAULT_TOLERANCE;
	double gap;
	char key[32];

	json_object_set_new(lp->server, "tolerance", json_real(tol));
	if (error) {
		json_object_set_new(lp->server, "error", json_string(error));
	} else {
		for (size_t i = 0; i < RECONCILE_QUANTILES; i++) {
			const char *m = reconcile_client_metric(reconcile_quantiles[i]);
			json_t *c = json_object_get(p->metrics, m);

			client[i] = json_is_number(c) ? json_number_value(c) : NAN;
			snprintf(key, sizeof(key), "server_%s", m);
			probe_set_metric(p, key, lp->server_ms[i]);
		}
		gap = reconcile_gap_ratio(reconcile_quantiles, client, lp->server_ms,
		                          RECONCILE_QUANTILES, successes(p), NULL);
		if (isfinite(gap)) {
			probe_set_metric(p, "gap_ratio", gap);
			json_object_set_new(lp->server, "flagged",
			                    json_boolean(reconcile_flagged(gap, tol)));
		}
	}
	json_object_set_new(p->details, "server_latency", lp->server);
	lp->server = NULL;
	close_progress(lp);
}

static void on_server_answer(void *userdata, int err, json_t *data, const char *message)
{
	struct load_probe *lp = userdata;
	struct promapi_query_result res;
	char why[512];

	lp->call = NULL;
	if (err < 0) {
		server_publish(lp, message);
		return;
	}
	if (promapi_query_value(data, NULL, &res, why, sizeof(why)) < 0) {
		char msg[700];

		snprintf(msg, sizeof(msg), "the server's %g quantile: %s",
		         reconcile_quantiles[lp->quantile], why);
		server_publish(lp, msg);
		return;
	}
	lp->server_ms[lp->quantile] =
	        res.value *
	        (lp->p->sp->latency_unit && !strcmp(lp->p->sp->latency_unit, "ms") ? 1 : 1000);
	if (++lp->quantile < RECONCILE_QUANTILES)
		server_send(lp);
	else
		server_publish(lp, NULL);
}

/* histogram_quantile over the measured window, evaluated at its end. */
static void server_send(struct load_probe *lp)
{
	const struct spec_probe *sp = lp->p->sp;
	struct spec_probe prom = {.name = sp->name, .prometheus = sp->prometheus};
	int64_t window = lp->measure_end_ms - lp->measure_start_ms;
	char query[1024], s_end[32];
	const char *params[] = {"query", query, "time", s_end, NULL};
	int r;

	snprintf(query, sizeof(query),
	         "histogram_quantile(%g, sum by (le) (rate(%s_bucket{%s}[%lldms])))",
	         reconcile_quantiles[lp->quantile], sp->server_metric,
	         sp->server_selector ? sp->server_selector : "",
	         (long long)(window > 1000 ? window : 1000));
	snprintf(s_end, sizeof(s_end), "%.3f", (double)lp->measure_end_ms / 1000.0);
	json_array_append_new(json_object_get(lp->server, "queries"), json_string(query));
	r = promapi_get(lp->p->http, &prom, "/api/v1/query", params, PROMAPI_DEFAULT_TIMEOUT_MS,
	                on_server_answer, lp, &lp->call);
	if (r < 0)
		server_publish(lp, "cannot send the query to Prometheus");
}

static void server_start(struct load_probe *lp)
{
	lp->measure_end_ms = rd_now_ms();
	lp->server = json_pack("{s:s, s:[], s:I, s:I}", "metric", lp->p->sp->server_metric,
	                       "queries", "start_ms", (json_int_t)lp->measure_start_ms, "end_ms",
	                       (json_int_t)lp->measure_end_ms);
	if (!lp->server) {
		close_progress(lp);
		return;
	}
	uv_timer_stop(&lp->progress);
	lp->quantile = 0;
	server_send(lp);
}

/* ---- nodes: a share of another node's probe, or the merge of all ---- */

/* A shard hands its whole result back (lib/sched/sched_shard.c stores it
 * for the probe's node); that node judges the merge. */
static void shard_publish(struct load_probe *lp, const struct loadgen_result *r)
{
	struct probe *p = lp->p;
	json_t *res = NULL;

	lp->state = PROBE_STATE_PASSED;
	if (loadgen_result_to_json(r, &res) < 0) {
		lp->state = PROBE_STATE_ERRORED;
		snprintf(lp->why, sizeof(lp->why), "out of memory while publishing the result");
		return;
	}
	json_decref(p->details);
	p->details = json_pack("{s:o}", "shard_result", res);
	p->requests = (int64_t)r->requests;
	p->percent = 100;
}

static void on_fan_done(void *userdata, json_t *shards, const char *error)
{
	struct load_probe *lp = userdata;
	const struct loadgen_result *own = loadgen_result(lp->lg);
	struct loadgen_result m = {0};
	json_t *nodes = json_array();
	int e;

	lp->collecting = false;
	e = fanload_merge(shards, own, &m, nodes);
	/* A shard asked to end early reports itself cancelled; the probe is
	 * cancelled only when it was. */
	m.cancelled = lp->cancelled || own->cancelled;
	if (e < 0) {
		lp->state = PROBE_STATE_ERRORED;
		snprintf(lp->why, sizeof(lp->why), "cannot merge what the nodes measured: %s",
		         strerror(-e));
	} else {
		judge_result(lp, &m);
		publish(lp, &m);
		if (probe_set_metric(lp->p, "nodes", lp->nodes) == 0 && lp->p->details)
			json_object_set(lp->p->details, "nodes", nodes);
		if (error && lp->state != PROBE_STATE_CANCELLED) {
			lp->state = PROBE_STATE_ERRORED;
			snprintf(lp->why, sizeof(lp->why), "%s", error);
		}
	}
	json_decref(nodes);
	loadgen_result_deinit(&m);
	if (lp->p->sp->server_metric &&
	    (lp->state == PROBE_STATE_PASSED || lp->state == PROBE_STATE_FAILED))
		server_start(lp);
	else
		close_progress(lp);
}

static void on_engine_done(struct loadgen *lg, void *userdata)
{
	struct load_probe *lp = userdata;
	const struct loadgen_result *r = loadgen_result(lg);

	if (lp->p->shards > 0) {
		shard_publish(lp, r);
		close_progress(lp);
		return;
	}
	if (lp->job) {
		uv_timer_stop(&lp->progress);
		lp->collecting = true;
		lp->p->fanout.ops->collect(lp->job, lp->started_ms, on_fan_done);
		return;
	}
	judge_result(lp, r);
	publish(lp, r);
	if (lp->p->sp->server_metric &&
	    (lp->state == PROBE_STATE_PASSED || lp->state == PROBE_STATE_FAILED))
		server_start(lp);
	else
		close_progress(lp);
}

/* Starts the engine created by load_engine_start; its progress timer is
 * open, so a failure finishes through it. */
static void load_engine_go(struct load_probe *lp)
{
	struct probe *p = lp->p;
	int r = loadgen_start(lp->lg);

	if (r < 0) {
		lp->state = PROBE_STATE_ERRORED;
		snprintf(lp->why, sizeof(lp->why), "cannot start the load engine: %s",
		         strerror(-r));
		close_progress(lp);
		return;
	}
	lp->started = true;
	lp->started_ms = rd_now_ms();
	if (p->shards > 0)
		p->started_at = lp->started_ms; /* its start skew is read from it */
	p->percent = 0;
	p->requests = 0;
	lp->measure_start_ms = lp->started_ms + p->sp->warmup_ms;
	uv_timer_start(&lp->progress, on_progress, LOAD_PROGRESS_MS, LOAD_PROGRESS_MS);
}

static void on_start_due(uv_timer_t *t)
{
	load_engine_go(t->data);
}

/* Creates the engine (resolving, building requests) now and starts it
 * at start_ms (this node's clock; 0: at once): the time the nodes agreed
 * on. On failure lp stays p->impl (freed by free()). */
static int load_engine_start(struct load_probe *lp, int64_t start_ms)
{
	int64_t delay_ms;
	struct probe *p = lp->p;
	struct loadgen_config cfg;
	char err[256] = "";
	int r;

	load_config(p, &cfg);
	load_config_share(lp, &cfg);
	cfg.keep_seconds = lp->nodes > 1; /* the timelines merge exactly */
	cfg.ca_pem = lp->ca_pem;
	cfg.ca_pem_len = lp->ca_pem_len;
	probe_corpus_config(p->sp, lp->corpus, &cfg);
	r = loadgen_new(&cfg, p->loop, on_engine_done, lp, &lp->lg, err, sizeof(err));
	if (r < 0) {
		lp->lg = NULL;
		/* A config error deserves its words. */
		if (err[0])
			probe_finish(p, PROBE_STATE_ERRORED, "%s", err);
		else
			probe_finish(p, PROBE_STATE_ERRORED, "cannot start the load engine: %s",
			             strerror(-r));
		return 0;
	}
	uv_timer_init(p->loop, &lp->progress);
	lp->progress.data = lp;
	lp->timer_open = true;
	/* The loop's idea of now may be behind by what this turn took
	 * (creating the engine included): a timer counts from it. */
	uv_update_time(p->loop);
	delay_ms = start_ms > 0 ? start_ms - rd_now_ms() : 0;
	if (delay_ms > 0)
		uv_timer_start(&lp->progress, on_start_due, (uint64_t)delay_ms, 0);
	else
		load_engine_go(lp);
	return 0;
}

static void on_fan_go(void *userdata, int nodes, int64_t start_ms)
{
	struct load_probe *lp = userdata;

	lp->nodes = nodes;
	load_engine_start(lp, start_ms);
}

/* Before the start: nothing was measured, the probe is an error. During
 * the load: this node's share ends now and what every node measured is
 * merged and kept, under the error. */
static void on_fan_fail(void *userdata, const char *why)
{
	struct load_probe *lp = userdata;

	if (!lp->lg) {
		probe_finish(lp->p, PROBE_STATE_ERRORED, "%s", why);
	} else if (!lp->started) {
		lp->state = PROBE_STATE_ERRORED;
		snprintf(lp->why, sizeof(lp->why), "%s", why);
		uv_timer_stop(&lp->progress);
		close_progress(lp);
	} else {
		loadgen_end_early(lp->lg);
	}
}

/* The load as `nodes` says: this node's share of it, or all of it. */
static int load_begin(struct load_probe *lp)
{
	struct probe *p = lp->p;
	int64_t want = p->sp->nodes;
	struct probe_load_share sh;
	int r;

	lp->nodes = 1;
	if (p->shards > 0) {
		lp->nodes = p->shards;
		lp->shard_i = p->shard;
		probe_load_share(p->sp, p->shard, p->shards, &sh);
		return load_engine_start(lp, p->shard_start_ms + sh.stagger_ms);
	}
	if (want == 0 || want == 1 || (want == SPEC_NODES_ALL && !p->fanout.ops))
		return load_engine_start(lp, 0);
	if (!p->fanout.ops) {
		probe_finish(p, PROBE_STATE_ERRORED,
		             "nodes: %lld needs several readyd nodes on one PostgreSQL database",
		             (long long)want);
		return 0;
	}
	r = p->fanout.ops->begin(p, NULL, on_fan_go, on_fan_fail, lp, &lp->job);
	if (r < 0)
		probe_finish(p, PROBE_STATE_ERRORED, "cannot spread the load over nodes: %s",
		             strerror(-r));
	return 0;
}

static int load_prepare(struct load_probe *lp);

/* ca_file arrives from the threadpool (allowed_paths, lib/policy/policy.h). */
static void on_ca_read(void *userdata, int err, char *buf, size_t len, const char *why)
{
	struct load_probe *lp = userdata;

	lp->file_read = NULL;
	if (err < 0) {
		probe_finish(lp->p, PROBE_STATE_ERRORED, "ca_file %s %s", lp->p->sp->ca_file, why);
		return;
	}
	lp->ca_pem = buf;
	lp->ca_pem_len = len;
	lp->ca_done = true;
	load_prepare(lp);
}

/* corpus.file arrives from the threadpool, as ca_file does. */
static void on_corpus_read(void *userdata, int err, char *buf, size_t len, const char *why)
{
	struct load_probe *lp = userdata;
	char msg[360] = "";

	lp->file_read = NULL;
	if (probe_corpus_read_done(lp->p->sp, err, buf, len, why, &lp->corpus, msg, sizeof(msg)) <
	    0) {
		probe_finish(lp->p, PROBE_STATE_ERRORED, "%s", msg);
		return;
	}
	load_prepare(lp);
}

/* What the engine needs before it starts, read off the loop one at a
 * time: ca_file, then the corpus; then the engine starts. */
static int load_prepare(struct load_probe *lp)
{
	struct probe *p = lp->p;
	const struct spec_corpus *cp = &p->sp->corpus;
	char msg[360] = "";

	if (p->sp->ca_file && !lp->ca_done)
		return policy_read_file_async(p->loop, http_client_files(p->http), p->sp->ca_file,
		                              POLICY_MAX_FILE_SIZE, on_ca_read, lp, &lp->file_read);
	if (cp->file && !lp->corpus)
		return policy_read_file_async(p->loop, http_client_files(p->http), cp->file,
		                              POLICY_MAX_FILE_SIZE, on_corpus_read, lp,
		                              &lp->file_read);
	if (cp->items && !lp->corpus &&
	    probe_corpus_parse(p->sp, NULL, 0, &lp->corpus, msg, sizeof(msg)) < 0) {
		probe_finish(p, PROBE_STATE_ERRORED, "%s", msg);
		return 0;
	}
	return load_begin(lp);
}

static int load_probe_start(struct probe *p)
{
	struct load_probe *lp = calloc(1, sizeof(*lp));

	if (!lp)
		return -ENOMEM;
	lp->p = p;
	p->impl = lp;
	return load_prepare(lp);
}

static void load_probe_cancel(struct probe *p)
{
	struct load_probe *lp = p->impl;

	if (!lp) {
		probe_finish(p, PROBE_STATE_CANCELLED, NULL);
		return;
	}
	lp->cancelled = true;
	if (lp->collecting || (lp->lg && !lp->started)) { /* waiting for other nodes */
		if (lp->job)
			p->fanout.ops->end(lp->job);
		lp->job = NULL;
		lp->collecting = false;
		lp->state = PROBE_STATE_CANCELLED;
		uv_timer_stop(&lp->progress);
		close_progress(lp);
		return;
	}
	if (lp->call || lp->server) { /* the engine is done; asking Prometheus */
		promapi_cancel(lp->call);
		lp->call = NULL;
		json_decref(lp->server);
		lp->server = NULL;
		lp->state = PROBE_STATE_CANCELLED;
		close_progress(lp);
		return;
	}
	if (!lp->lg) { /* still reading a file, or the engine never started */
		if (lp->job)
			p->fanout.ops->end(lp->job);
		lp->job = NULL;
		policy_file_cancel(lp->file_read);
		lp->file_read = NULL;
		probe_finish(p, PROBE_STATE_CANCELLED, NULL);
		return;
	}
	/* Every node's share stops; this node's merges nothing more. */
	if (lp->job)
		p->fanout.ops->end(lp->job);
	lp->job = NULL;
	/* The engine stops its threads and reports; finishing follows from there. */
	loadgen_cancel(lp->lg);
}

static void load_probe_free(struct probe *p)
{
	struct load_probe *lp = p->impl;

	if (!lp)
		return;
	if (lp->job)
		p->fanout.ops->end(lp->job);
	policy_file_cancel(lp->file_read);
	promapi_cancel(lp->call);
	json_decref(lp->server);
	loadgen_free(lp->lg);
	free(lp->ca_pem);
	loadgen_corpus_free(lp->corpus);
	free(lp);
	p->impl = NULL;
}

/* --- the type: its spec fields, rules, metrics and ops --- */

/* A histogram's base name: [a-zA-Z_:][a-zA-Z0-9_:]*, without _bucket. */
static int check_metric_name(char *s, char *msg, size_t len)
{
	size_t n = strlen(s);
	bool ok = isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':';

	for (const char *c = s; ok && *c; c++)
		ok = isalnum((unsigned char)*c) || *c == '_' || *c == ':';
	if (!ok) {
		snprintf(msg, len,
		         "must be a Prometheus metric name such as "
		         "inference_duration_seconds");
		return -EINVAL;
	}
	if (n > 7 && !strcmp(s + n - 7, "_bucket"))
		s[n - 7] = '\0'; /* the histogram's name is wanted; accept its series' */
	return 0;
}

/* Label matchers go inside {} of the query: no braces or brackets of
 * their own, so the query stays the one written here. */
static int check_selector(char *s, char *msg, size_t len)
{
	if (strpbrk(s, "{}[]()")) {
		snprintf(msg, len, "must be label matchers such as job=\"demo\" (no braces)");
		return -EINVAL;
	}
	return 0;
}

/* One field per line, aligned by hand: read as a schema more than as
 * code. */
static int check_token_key(char *s, char *msg, size_t len)
{
	if (strlen(s) > LG_TOKEN_KEY_MAX || strchr(s, '"')) {
		snprintf(msg, len, "must be a JSON key of 1..64 bytes without '\"'");
		return -EINVAL;
	}
	return 0;
}

/* One field per line, aligned by hand: read as a schema more than as
 * code. */

/* clang-format off */
static const char *const mode_names[] = {"closed", "rate", NULL};
static const char *const unit_names[] = {"s", "ms", NULL};
static const struct spec_field server_latency_fields[] = {
	SPEC_F_PROMETHEUS,
	{.key = "metric",    .kind = FK_STRING, .required = true, .off = SPEC_P(server_metric),
	 .max = 200, .check = check_metric_name},
	{.key = "selector",  .kind = FK_STRING, .off = SPEC_P(server_selector), .max = 1024,
	 .check = check_selector},
	{.key = "unit",      .kind = FK_STRING, .off = SPEC_P(latency_unit), .choices = unit_names},
	{.key = "tolerance", .kind = FK_NUMBER, .off = SPEC_P(tolerance), .dmin = 0,
	 .gt_min = true, .dmax = 100},
};
static const struct spec_schema server_latency_schema = {
	"a load probe's server_latency", server_latency_fields,
	RD_ARRAY_SIZE(server_latency_fields), false,
};
static const struct spec_field fields[] = {
	SPEC_F_COMMON,
	{.key = "mode",     .kind = FK_MODE, .required = true, .off = SPEC_P(mode),
	 .choices = mode_names},
	{.key = "rate",     .kind = FK_NUMBER, .off = SPEC_P(rate), .gt_min = true,
	 .dmax = SPEC_MAX_RATE},
	SPEC_F_CONNECTIONS(16),
	SPEC_F_THREADS,
	{.key = "duration", .kind = FK_DURATION, .off = SPEC_P(duration_ms), .min = 1,
	 .max = SPEC_MAXD},
	{.key = "requests", .kind = FK_INT, .off = SPEC_P(requests), .min = 1, .max = 1000000000},
	{.key = "warmup",   .kind = FK_DURATION, .off = SPEC_P(warmup_ms), .min = 0,
	 .max = SPEC_MAXD},
	SPEC_F_REQUEST,
	SPEC_F_TLS_CLIENT,
	{.key = "server_latency", .kind = FK_OBJECT, .flags = SPEC_FIELD_NESTED, .off = 0,
	 .sub = &server_latency_schema},
	PROBE_F_CORPUS,
	{.key = "stream",   .kind = FK_BOOL, .off = SPEC_P(stream)},
	{.key = "token_key", .kind = FK_STRING, .off = SPEC_P(token_key), .max = 64,
	 .check = check_token_key},
	PROBE_F_NODES,
};
/* clang-format on */

static int finish_load(struct spec_vctx *v, json_t *obj, const char *path, struct spec_probe *p)
{
	char a[32], b[32];

	if (p->mode == LOAD_MODE_RATE && p->rate == 0)
		return spec_fail_at(v, obj, path, "rate", "missing (required when mode is rate)");
	if (p->mode == LOAD_MODE_CLOSED && p->rate > 0)
		return spec_fail_at(
		        v, obj, path, "rate",
		        "only applies to mode: rate (closed mode sends as fast as answers come)");
	if (p->duration_ms && p->requests)
		return spec_fail_at(v, obj, path, "requests",
		                    "give duration or requests, not both");
	if (!p->duration_ms && !p->requests)
		p->duration_ms = 30000;
	rd_format_duration(p->duration_ms, a, sizeof(a));
	if (p->duration_ms && p->warmup_ms >= p->duration_ms)
		return spec_fail_at(v, obj, path, "warmup", "must be shorter than duration (%s)",
		                    a);
	if (probe_corpus_finish(v, obj, path, p) < 0)
		return -EINVAL;
	if (fanload_check_nodes(v, obj, path, p) < 0)
		return -EINVAL;
	if (p->nodes > 0 && p->requests > 0 && p->nodes > p->requests)
		return spec_fail_at(v, obj, path, "nodes", "must not exceed requests (%lld)",
		                    (long long)p->requests);
	if (p->token_key && !p->stream)
		return spec_fail_at(v, obj, path, "token_key", "only applies with stream: true");
	rd_format_duration(spec_vctx_spec(v)->timeout_ms, b, sizeof(b));
	if (p->warmup_ms + p->duration_ms > spec_vctx_spec(v)->timeout_ms)
		return spec_fail_at(v, obj, path, "duration",
		                    "warmup + duration is longer than the run's timeout (%s)", b);
	return spec_load_request(v, obj, path, p);
}

/* Long enough for what it was asked to do, with a margin for connecting
 * and draining. */
static int64_t load_deadline(const struct spec *s, const struct spec_probe *sp)
{
	(void)s;
	return sp->duration_ms + sp->warmup_ms + PROBE_DEADLINE_MARGIN_MS;
}

/* A streaming histogram's figures, named as the latency's. */
#define STREAM_LATENCY(pre, suf)                                                                   \
	{pre "p50_ms" suf, "ms", PROBE_SAMPLES_SUCCESSES},                                         \
	        {pre "p90_ms" suf, "ms", PROBE_SAMPLES_SUCCESSES},                                 \
	        {pre "p95_ms" suf, "ms", PROBE_SAMPLES_SUCCESSES},                                 \
	        {pre "p99_ms" suf, "ms", PROBE_SAMPLES_SUCCESSES},                                 \
	        {pre "p999_ms" suf, "ms", PROBE_SAMPLES_SUCCESSES},                                \
	        {pre "max_ms" suf, "ms", PROBE_SAMPLES_SUCCESSES},                                 \
	{                                                                                          \
		pre "mean_ms" suf, "ms", PROBE_SAMPLES_SUCCESSES                                   \
	}

static const struct probe_metric_def metrics[] = {
        {"requests", "requests", PROBE_SAMPLES_REQUESTS},
        {"errors", "requests", PROBE_SAMPLES_REQUESTS},
        {"error_rate", "1", PROBE_SAMPLES_REQUESTS},
        {"throughput_rps", "requests/s", PROBE_SAMPLES_SUCCESSES},
        {"requests_rps", "requests/s", PROBE_SAMPLES_REQUESTS},
        {"p50_ms", "ms", PROBE_SAMPLES_SUCCESSES},
        {"p90_ms", "ms", PROBE_SAMPLES_SUCCESSES},
        {"p95_ms", "ms", PROBE_SAMPLES_SUCCESSES},
        {"p99_ms", "ms", PROBE_SAMPLES_SUCCESSES},
        {"p999_ms", "ms", PROBE_SAMPLES_SUCCESSES},
        {"max_ms", "ms", PROBE_SAMPLES_SUCCESSES},
        {"mean_ms", "ms", PROBE_SAMPLES_SUCCESSES},
        {"errors_connect", "requests", PROBE_SAMPLES_REQUESTS},
        {"errors_timeout", "requests", PROBE_SAMPLES_REQUESTS},
        {"errors_io", "requests", PROBE_SAMPLES_REQUESTS},
        {"errors_protocol", "requests", PROBE_SAMPLES_REQUESTS},
        {"errors_4xx", "requests", PROBE_SAMPLES_REQUESTS},
        {"errors_5xx", "requests", PROBE_SAMPLES_REQUESTS},
        {"warmup_requests", "requests", PROBE_SAMPLES_REQUESTS},
        {"p50_ms_uncorrected", "ms", PROBE_SAMPLES_SUCCESSES},
        {"p90_ms_uncorrected", "ms", PROBE_SAMPLES_SUCCESSES},
        {"p95_ms_uncorrected", "ms", PROBE_SAMPLES_SUCCESSES},
        {"p99_ms_uncorrected", "ms", PROBE_SAMPLES_SUCCESSES},
        {"p999_ms_uncorrected", "ms", PROBE_SAMPLES_SUCCESSES},
        {"max_ms_uncorrected", "ms", PROBE_SAMPLES_SUCCESSES},
        {"mean_ms_uncorrected", "ms", PROBE_SAMPLES_SUCCESSES},
        {"schedule_lag_ms", "ms", PROBE_SAMPLES_REQUESTS},
        {"schedule_lag_max_ms", "ms", PROBE_SAMPLES_REQUESTS},
        {"unsent", "requests", PROBE_SAMPLES_REQUESTS},
        {"rate_kept", "1", PROBE_SAMPLES_REQUESTS},
        {"aborted", "1", PROBE_SAMPLES_REQUESTS},
        {"server_p50_ms", "ms", PROBE_SAMPLES_NONE},
        {"server_p95_ms", "ms", PROBE_SAMPLES_NONE},
        {"server_p99_ms", "ms", PROBE_SAMPLES_NONE},
        {"gap_ratio", "1", PROBE_SAMPLES_SUCCESSES},
        {"distinct_requests", "requests", PROBE_SAMPLES_REQUESTS},
        {"nodes", "nodes", PROBE_SAMPLES_NONE},
        STREAM_LATENCY("ttfb_", ""),
        STREAM_LATENCY("ttft_", ""),
        STREAM_LATENCY("ttft_", "_uncorrected"),
        STREAM_LATENCY("itl_", ""),
        {"events_mean", "events", PROBE_SAMPLES_SUCCESSES},
        {"output_tokens", "tokens", PROBE_SAMPLES_SUCCESSES},
        {"output_tokens_per_s", "tokens/s", PROBE_SAMPLES_SUCCESSES},
};

const struct probe_type_def probe_type_load = {
        .name = "load",
        .section = "Performance",
        .fields = fields,
        .n_fields = RD_ARRAY_SIZE(fields),
        .finish = finish_load,
        .deadline_ms = load_deadline,
        .deadline_doc = "`warmup + duration + 60s`",
        .load = true,
        .metrics = metrics,
        .n_metrics = RD_ARRAY_SIZE(metrics),
        .ops =
                {
                        .start = load_probe_start,
                        .cancel = load_probe_cancel,
                        .free = load_probe_free,
                },
};
