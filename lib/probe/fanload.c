/* fanload: one round of a probe's load, from this node or spread over
 * several (fanload.h).
 *
 * Spread, a round goes: the fan-out queues the other nodes' shards with
 * the round in their params and agrees on a start (go), this node builds
 * its engine with its share and starts it at that time, and when its
 * engine is done the fan-out gathers the others' results (collect) for
 * the merge. A node lost before the start ends the round with nothing
 * measured; during the load, this node's share ends early and what every
 * node measured is merged and handed back under the error.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/probe/fanload.h"
#include "lib/util/util.h"

struct fanload {
	struct probe *p;
	struct loadgen_config cfg; /* strings borrowed from the caller */
	struct fanload_round rd;
	json_t *round; /* rd as JSON, for the other nodes */
	struct loadgen *lg;
	struct probe_fanout_job *job;
	uv_timer_t timer; /* the agreed start, or a deferred end */
	bool started;     /* the engine was started */
	bool collecting;  /* it is done; the other nodes' results are awaited */
	bool finished;    /* done ran (or runs from the timer) */
	int64_t started_ms;
	struct loadgen_result merged;
	json_t *nodes;
	char why[512];
	fanload_done_cb done;
	void *userdata;
};

static const char *const mode_names[] = {"closed", "rate"};

json_t *fanload_round_to_json(const struct fanload_round *rd)
{
	return json_pack("{s:i, s:s, s:f, s:I, s:I, s:s?}", "index", rd->index, "mode",
	                 mode_names[rd->mode == LOAD_MODE_RATE], "rate", rd->rate, "duration_ms",
	                 (json_int_t)rd->duration_ms, "warmup_ms", (json_int_t)rd->warmup_ms,
	                 "side", rd->side);
}

static void round_apply(struct spec_probe *sp, const struct fanload_round *rd)
{
	sp->mode = rd->mode;
	sp->rate = rd->mode == LOAD_MODE_RATE ? rd->rate : 0;
	sp->duration_ms = rd->duration_ms;
	sp->warmup_ms = rd->warmup_ms;
	sp->requests = 0;
}

void fanload_round_share(const struct spec_probe *sp, const struct fanload_round *rd, int i, int n,
                         struct probe_load_share *ret)
{
	struct spec_probe view = *sp; /* shallow: numbers only are changed */

	round_apply(&view, rd);
	probe_load_share(&view, i, n, ret);
}

/* The URL of side (NULL: the probe's own), or NULL when sp has none. */
static const char *side_url(const struct spec_probe *sp, const char *side)
{
	if (!side)
		return sp->url;
	if (!strcmp(side, "baseline"))
		return sp->baseline;
	if (!strcmp(side, "candidate"))
		return sp->candidate;
	return NULL;
}

int fanload_round_from_json(const json_t *round, struct fanload_round *ret)
{
	const char *mode = json_string_value(json_object_get(round, "mode"));
	json_t *side = json_object_get(round, "side");

	*ret = (struct fanload_round){
	        .index = (int)json_integer_value(json_object_get(round, "index")),
	        .mode = mode && !strcmp(mode, "rate") ? LOAD_MODE_RATE : LOAD_MODE_CLOSED,
	        .rate = json_number_value(json_object_get(round, "rate")),
	        .duration_ms = json_integer_value(json_object_get(round, "duration_ms")),
	        .warmup_ms = json_integer_value(json_object_get(round, "warmup_ms")),
	        .side = json_string_value(side),
	};
	if (!mode || (strcmp(mode, "rate") && strcmp(mode, "closed")) ||
	    (ret->mode == LOAD_MODE_RATE && !(ret->rate > 0)) || ret->duration_ms <= 0 ||
	    ret->warmup_ms < 0 || (side && !json_is_null(side) && !ret->side))
		return -EINVAL;
	return 0;
}

int fanload_round_spec(struct spec_probe *sp, const json_t *round, char *why, size_t len)
{
	struct fanload_round rd;
	const char *url = NULL;
	char *copy;

	if (fanload_round_from_json(round, &rd) == 0)
		url = side_url(sp, rd.side);
	if (!url) {
		snprintf(why, len, "its round of probe '%s' is not one the probe could send",
		         sp->name);
		return -EINVAL;
	}
	copy = strdup(url);
	if (!copy || (!sp->method && !(sp->method = strdup("GET")))) {
		free(copy);
		snprintf(why, len, "out of memory");
		return -ENOMEM;
	}
	free(sp->url);
	sp->url = copy;
	round_apply(sp, &rd);
	sp->type = PROBE_TYPE_LOAD;
	sp->stream = false;
	return 0;
}

bool fanload_spread(const struct spec_probe *sp)
{
	return sp->nodes == SPEC_NODES_ALL || sp->nodes > 1;
}

/* ---- the merge ---- */

/* One node's line of details.nodes: what it measured (r, or without a
 * result the count it last reported), its clock's offset and how late
 * it started. */
static json_t *node_entry(json_t *s, const struct loadgen_result *r)
{
	json_t *e = json_pack("{s:O?, s:O?, s:O?, s:O?, s:O?}", "node", json_object_get(s, "node"),
	                      "shard", json_object_get(s, "shard"), "offset_ms",
	                      json_object_get(s, "offset_ms"), "start_skew_ms",
	                      json_object_get(s, "skew_ms"), "error", json_object_get(s, "error"));

	if (!e || !r) {
		if (e)
			json_object_set(e, "requests", json_object_get(s, "requests"));
		return e;
	}
	json_object_set_new(e, "requests", json_integer((json_int_t)r->requests));
	json_object_set_new(
	        e, "rps",
	        rd_json_number(r->elapsed_s > 0 ? (double)r->requests / r->elapsed_s : NAN));
	json_object_set_new(e, "p99_ms", rd_json_number(hist_percentile(r->latency, 99) / 1000.0));
	return e;
}

/* Adds shard s's result to m and its line to nodes. */
static int merge_shard(struct loadgen_result *m, json_t *s, const struct loadgen_result *own,
                       json_t *nodes)
{
	json_t *res = json_object_get(s, "result");
	struct loadgen_result r = {0};
	const struct loadgen_result *use = NULL;
	int e = 0;

	const char *state = json_string_value(json_object_get(s, "state"));

	if (json_integer_value(json_object_get(s, "shard")) == 0) {
		use = own;
	} else if (json_is_object(res)) {
		e = loadgen_result_from_json(res, &r);
		use = e == 0 ? &r : NULL;
	} else if (state && !strcmp(state, "done")) {
		e = -EPROTO; /* a share said done without what it measured */
	}
	if (e == 0 && use)
		e = loadgen_result_merge(m, use);
	if (e == 0 && json_array_append_new(nodes, node_entry(s, use)) < 0)
		e = -ENOMEM;
	loadgen_result_deinit(&r);
	return e;
}

int fanload_merge(json_t *shards, const struct loadgen_result *own, struct loadgen_result *m,
                  json_t *nodes)
{
	json_t *s;
	size_t i;
	int e = nodes ? 0 : -ENOMEM;

	json_array_foreach (shards, i, s)
		if (e == 0)
			e = merge_shard(m, s, own, nodes);
	return e;
}

/* ---- a round ---- */

static void end_job(struct fanload *fl)
{
	if (fl->job)
		fl->p->fanout.ops->end(fl->job);
	fl->job = NULL;
}

/* done, once. Nothing of fl is touched after it: the caller may free. */
static void finish(struct fanload *fl, const struct loadgen_result *r, json_t *nodes,
                   const char *error)
{
	if (fl->finished)
		return;
	fl->finished = true;
	fl->done(fl->userdata, r, nodes, error);
}

static void on_deferred_end(uv_timer_t *t)
{
	struct fanload *fl = t->data;

	finish(fl, NULL, NULL, fl->why[0] ? fl->why : NULL);
}

/* Ends the round from a timer turn with nothing measured. */
static void end_later(struct fanload *fl, const char *why)
{
	if (why && !fl->why[0])
		snprintf(fl->why, sizeof(fl->why), "%s", why);
	uv_timer_stop(&fl->timer);
	uv_timer_start(&fl->timer, on_deferred_end, 0, 0);
}

static void on_collected(void *userdata, json_t *shards, const char *error)
{
	struct fanload *fl = userdata;
	const struct loadgen_result *own = loadgen_result(fl->lg);
	int e;

	fl->nodes = json_array();
	e = fanload_merge(shards, own, &fl->merged, fl->nodes);
	fl->merged.cancelled = own->cancelled;
	end_job(fl);
	if (e < 0) {
		snprintf(fl->why, sizeof(fl->why), "cannot merge what the nodes measured: %s",
		         strerror(-e));
		finish(fl, own, NULL, fl->why);
		return;
	}
	finish(fl, &fl->merged, fl->nodes, error);
}

static void on_engine_done(struct loadgen *lg, void *userdata)
{
	struct fanload *fl = userdata;

	if (fl->job) {
		fl->collecting = true;
		fl->p->fanout.ops->collect(fl->job, fl->started_ms, on_collected);
		return;
	}
	finish(fl, loadgen_result(lg), NULL, fl->why[0] ? fl->why : NULL);
}

static void go_now(struct fanload *fl)
{
	int r = loadgen_start(fl->lg);

	if (r < 0) {
		end_job(fl);
		snprintf(fl->why, sizeof(fl->why), "cannot start the load engine: %s",
		         strerror(-r));
		end_later(fl, NULL);
		return;
	}
	fl->started = true;
	fl->started_ms = rd_now_ms();
}

static void on_start_due(uv_timer_t *t)
{
	go_now(t->data);
}

/* The engine of this node's share (of nodes in all), started at start_ms
 * (this node's clock; 0: now). */
static int engine_start(struct fanload *fl, int nodes, int64_t start_ms)
{
	struct loadgen_config cfg = fl->cfg;
	struct probe_load_share sh = {0};
	int64_t delay;
	int r;

	if (nodes > 1) {
		fanload_round_share(fl->p->sp, &fl->rd, 0, nodes, &sh);
		cfg.connections = (int)sh.connections;
		cfg.threads = (int)sh.threads;
		cfg.rate = sh.rate;
		cfg.keep_seconds = true; /* the timelines merge exactly */
	}
	r = loadgen_new(&cfg, fl->p->loop, on_engine_done, fl, &fl->lg, fl->why, sizeof(fl->why));
	if (r < 0) {
		fl->lg = NULL;
		if (!fl->why[0])
			snprintf(fl->why, sizeof(fl->why), "cannot start the load engine: %s",
			         strerror(-r));
		return r;
	}
	uv_update_time(fl->p->loop); /* creating the engine took time; a timer counts from it */
	delay = start_ms > 0 ? start_ms + sh.stagger_ms - rd_now_ms() : 0;
	if (delay > 0)
		uv_timer_start(&fl->timer, on_start_due, (uint64_t)delay, 0);
	else
		go_now(fl);
	return 0;
}

static void on_go(void *userdata, int nodes, int64_t start_ms)
{
	struct fanload *fl = userdata;

	if (engine_start(fl, nodes, start_ms) < 0) {
		end_job(fl); /* the other shards end too */
		end_later(fl, NULL);
	}
}

/* Before this node's engine started: nothing measured, the round is an
 * error now. During it: this share ends early, the merge says the rest. */
static void on_fail(void *userdata, const char *why)
{
	struct fanload *fl = userdata;

	snprintf(fl->why, sizeof(fl->why), "%s", why);
	if (fl->started) {
		loadgen_end_early(fl->lg);
		return;
	}
	end_job(fl);
	end_later(fl, NULL);
}

int fanload_start(struct probe *p, const struct loadgen_config *cfg, const struct fanload_round *rd,
                  fanload_done_cb done, void *userdata, struct fanload **ret, char *why, size_t len)
{
	struct fanload *fl = calloc(1, sizeof(*fl));
	int r = 0;

	if (!fl) {
		snprintf(why, len, "out of memory");
		return -ENOMEM;
	}
	*fl = (struct fanload){.p = p, .cfg = *cfg, .rd = *rd, .done = done, .userdata = userdata};
	uv_timer_init(p->loop, &fl->timer);
	fl->timer.data = fl;
	*ret = fl;
	if (!fanload_spread(p->sp) || (p->sp->nodes == SPEC_NODES_ALL && !p->fanout.ops)) {
		r = engine_start(fl, 1, 0);
	} else if (!p->fanout.ops) {
		snprintf(fl->why, sizeof(fl->why),
		         "nodes: %lld needs several readyd nodes on one PostgreSQL database",
		         (long long)p->sp->nodes);
		r = -ENOTSUP;
	} else {
		fl->round = fanload_round_to_json(rd);
		r = fl->round ? p->fanout.ops->begin(p, fl->round, on_go, on_fail, fl, &fl->job)
		              : -ENOMEM;
		if (r < 0)
			snprintf(fl->why, sizeof(fl->why), "cannot spread the load over nodes: %s",
			         strerror(-r));
	}
	if (r < 0) {
		snprintf(why, len, "%s", fl->why);
		fanload_free(fl);
		*ret = NULL;
	}
	return r;
}

void fanload_progress(const struct fanload *fl, int64_t *ret_requests, int *ret_percent)
{
	*ret_requests = 0;
	*ret_percent = 0;
	if (fl && fl->lg && fl->started)
		loadgen_progress(fl->lg, ret_requests, ret_percent);
	if (fl && fl->job)
		*ret_requests += fl->p->fanout.ops->others_requests(fl->job);
}

void fanload_cancel(struct fanload *fl)
{
	if (!fl || fl->finished)
		return;
	end_job(fl); /* every other node's share stops */
	if (fl->started && !fl->collecting)
		loadgen_cancel(fl->lg); /* its done ends the round */
	else
		end_later(fl, "cancelled");
}

static void on_timer_closed(uv_handle_t *h)
{
	struct fanload *fl = h->data;

	loadgen_result_deinit(&fl->merged);
	json_decref(fl->nodes);
	json_decref(fl->round);
	free(fl);
}

void fanload_free(struct fanload *fl)
{
	if (!fl)
		return;
	fl->finished = true;
	end_job(fl);
	loadgen_free(fl->lg);
	fl->lg = NULL;
	uv_close((uv_handle_t *)&fl->timer, on_timer_closed);
}

/* ---- the spec field ---- */

int fanload_read_nodes(struct spec_vctx *v, json_t *val, const char *path, void *base)
{
	struct spec_probe *p = base;
	const char *s = json_string_value(val);

	if (s && strcmp(s, "all") == 0) {
		p->nodes = SPEC_NODES_ALL;
		return 0;
	}
	if (!json_is_integer(val) || json_integer_value(val) < 1 ||
	    json_integer_value(val) > SPEC_MAX_NODES)
		return spec_fail(v, val, path, "must be an integer from 1 to %d, or all",
		                 SPEC_MAX_NODES);
	p->nodes = json_integer_value(val);
	return 0;
}

int fanload_check_nodes(struct spec_vctx *v, json_t *obj, const char *path,
                        const struct spec_probe *p)
{
	if (p->nodes > p->connections)
		return spec_fail_at(v, obj, path, "nodes",
		                    "must not exceed connections (%lld): each node needs one",
		                    (long long)p->connections);
	return 0;
}
