/* sched_shard: a load probe spread over several readyd nodes (spec
 * `nodes:`, docs/scale-out.md "Load from several nodes"), both sides of
 * it, through the shared store (lib/store/store_shard.h):
 *
 * - the coordinator (the node executing the run) lends its load probe a
 *   fan-out job (probe.h, struct probe_fanout_ops): it queues one shard
 *   per other node, waits until each is claimed (a bound: a shard nobody
 *   claims is an error, never a smaller load), agrees on a start time on
 *   the database's clock, watches the shards' heartbeats during the
 *   load, and gathers their results for the probe to merge;
 * - every node's cluster tick claims shards of other nodes' probes (one
 *   per probe and node), measures its clock's offset to the database's,
 *   runs its share with the load probe's own code at the agreed time,
 *   beats while it runs, ends when asked (or when the run has ended) and
 *   hands its engine's result back.
 *
 * Every store call is one bounded statement on a timer of the loop; a
 * store error skips a step until the next one, within the bounds above.
 * Main loop thread only.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/probe/fanload.h"
#include "lib/sched/sched_internal.h"
#include "lib/store/store_shard.h"
#include "lib/util/log.h"
#include "lib/util/json_text.h"
#include "lib/util/util.h"

#define CLAIM_WAIT_MS  10000 /* a shard no node claimed within it fails the probe */
#define START_LEAD_MS  1500  /* the agreed start: the database's clock plus this */
#define POLL_CLAIM_MS  100   /* the coordinator waiting for claims */
#define POLL_RUN_MS    500   /* the coordinator watching shards during the load */
#define POLL_END_MS    200   /* the coordinator waiting for results */
#define END_GRACE_MS   15000 /* a live shard's result, past this node's own end */
#define WORK_WAIT_MS   100   /* a shard waiting for the agreed start */
#define WORK_BEAT_MS   500   /* a shard's heartbeat while it runs */
#define SHARD_CLAIM_MS 1000  /* looking for shards without having heard of one */

/* This node's wall clock, to the microsecond, in ms. */
static double wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* This node's clock minus the database's. The database read its clock
 * somewhere within a round trip; taking the midpoint errs by at most half
 * of it, so of OFFSET_SAMPLES round trips the shortest is kept (as NTP
 * does). */
#define OFFSET_SAMPLES 3
static int clock_offset(struct store *st, double *ret_offset)
{
	double best_rtt = INFINITY, best = 0;

	for (int i = 0; i < OFFSET_SAMPLES; i++) {
		double t0 = wall_ms(), t1;
		int64_t db;
		int e = store_db_clock(st, &db);

		t1 = wall_ms();
		if (e < 0)
			return e;
		if (t1 - t0 < best_rtt) {
			best_rtt = t1 - t0;
			best = (t0 + t1) / 2.0 - (double)db;
		}
	}
	*ret_offset = best;
	return 0;
}

/* ==== The coordinator ================================================= */

enum job_phase { JOB_INIT, JOB_CLAIMING, JOB_RUNNING, JOB_COLLECTING, JOB_DONE };

struct probe_fanout_job {
	struct sched *s;
	struct probe *p;
	int64_t run_id;
	size_t idx;
	enum job_phase phase;
	int nodes;
	bool has_shards; /* rows were queued (to stop at the end) */
	bool ended;      /* job_end ran (perhaps from a callback of this job) */
	bool failed;     /* why says what; the other shards were asked to end */
	char why[512];
	double offset_ms;
	int64_t start_at; /* the database's clock */
	int64_t own_started_ms;
	int64_t others;   /* requests the other shards last reported */
	int64_t deadline; /* of the phase, this node's clock */
	json_t *round;    /* of a probe that runs several (fanload.h); NULL: the whole probe */
	probe_fanout_go_cb go;
	probe_fanout_fail_cb fail;
	probe_fanout_done_cb done;
	void *userdata;
	uv_timer_t timer;
};

static void job_closed(uv_handle_t *h)
{
	struct probe_fanout_job *j = h->data;

	json_decref(j->round);
	free(j);
}

static void job_fail(struct probe_fanout_job *j, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void job_fail(struct probe_fanout_job *j, const char *fmt, ...)
{
	va_list ap;

	if (j->failed)
		return;
	j->failed = true;
	va_start(ap, fmt);
	vsnprintf(j->why, sizeof(j->why), fmt, ap);
	va_end(ap);
	if (j->has_shards && store_shards_stop(j->s->store, j->run_id, j->idx) < 0)
		rd_log(RD_LOG_DEBUG, NULL, "Failed to stop the shards of run %lld: %s",
		       (long long)j->run_id, store_errmsg(j->s->store));
	if (j->phase != JOB_COLLECTING) {
		j->phase = j->phase == JOB_RUNNING ? JOB_RUNNING : JOB_DONE;
		j->fail(j->userdata, j->why);
	}
}

/* Each other shard's params: the round it runs a share of (NULL: the
 * whole probe), and its share for the record (its node computes the
 * same from the spec and the round). */
static json_t *shard_params(const struct probe *p, int n, json_t *round)
{
	json_t *a = json_array();
	struct fanload_round rd = {0};

	if (round && fanload_round_from_json(round, &rd) < 0) {
		json_decref(a);
		return NULL;
	}
	for (int i = 1; a && i < n; i++) {
		struct probe_load_share sh;

		if (round)
			fanload_round_share(p->sp, &rd, i, n, &sh);
		else
			probe_load_share(p->sp, i, n, &sh);
		if (json_array_append_new(a, json_pack("{s:I, s:I, s:I, s:f, s:O?}", "connections",
		                                       (json_int_t)sh.connections, "threads",
		                                       (json_int_t)sh.threads, "requests",
		                                       (json_int_t)sh.requests, "rate", sh.rate,
		                                       "round", round)) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/* How many nodes: as asked, or every node alive. */
static int job_count(struct probe_fanout_job *j, int64_t now)
{
	struct sched *s = j->s;
	json_t *alive = NULL;
	char *names;
	int n, e = store_nodes_alive(s->store, now, s->cl.lease_ms, &alive);

	if (e < 0)
		return e;
	n = (int)json_array_size(alive);
	if (j->p->sp->nodes == SPEC_NODES_ALL) {
		j->nodes = n < 1 ? 1 : n;
		if (j->nodes > j->p->sp->connections)
			j->nodes = (int)j->p->sp->connections;
	} else if (j->p->sp->nodes > n) {
		names = rd_json_dumps(alive, JSON_COMPACT);
		job_fail(j, "nodes: %lld asks for more nodes than are alive: %d (%s)",
		         (long long)j->p->sp->nodes, n, names ? names : "?");
		free(names);
	} else {
		j->nodes = (int)j->p->sp->nodes;
	}
	json_decref(alive);
	return 0;
}

static void job_init(struct probe_fanout_job *j, int64_t now)
{
	json_t *params;
	int e = clock_offset(j->s->store, &j->offset_ms);

	e = e ?: job_count(j, now);
	if (e < 0 && !j->failed && now < j->deadline)
		return; /* the store refused: again at the next tick */
	if (e < 0 || j->failed) {
		if (!j->failed)
			job_fail(j, "cannot spread the load over nodes: %s",
			         store_errmsg(j->s->store));
		return;
	}
	/* An earlier round's shards, all ended and merged, make way (also
	 * for a round this node runs alone: none of theirs is this round's). */
	if (j->round && store_shards_clear(j->s->store, j->run_id, j->idx) < 0) {
		if (now >= j->deadline)
			job_fail(j, "cannot clear the last round's shards: %s",
			         store_errmsg(j->s->store));
		return;
	}
	if (j->nodes <= 1) { /* this node alone: it starts now */
		j->phase = JOB_RUNNING;
		j->go(j->userdata, 1, now);
		return;
	}
	params = shard_params(j->p, j->nodes, j->round);
	e = params ? store_shards_create(j->s->store, j->run_id, j->idx, j->s->cl.node, params)
	           : -ENOMEM;
	json_decref(params);
	if (e < 0) {
		job_fail(j, "cannot queue the shards of the load: %s", store_errmsg(j->s->store));
		return;
	}
	j->has_shards = true;
	j->phase = JOB_CLAIMING;
	j->deadline = now + CLAIM_WAIT_MS;
}

static void job_claiming(struct probe_fanout_job *j, int64_t now)
{
	json_t *shards = NULL, *sh;
	size_t i;
	int queued = 0, first = 0;

	if (store_shards_list(j->s->store, j->run_id, j->idx, &shards) < 0) {
		if (now >= j->deadline)
			job_fail(j, "cannot read the shards of the load: %s",
			         store_errmsg(j->s->store));
		return;
	}
	json_array_foreach (shards, i, sh)
		if (!strcmp(json_string_value(json_object_get(sh, "state")), "queued") &&
		    queued++ == 0)
			first = (int)json_integer_value(json_object_get(sh, "shard"));
	json_decref(shards);
	if (queued > 0 && now >= j->deadline) {
		job_fail(
		        j,
		        "shard %d of %d was not claimed by another node within %d s (%d unclaimed): "
		        "fewer nodes took a share than nodes: asks for",
		        first, j->nodes, CLAIM_WAIT_MS / 1000, queued);
		return;
	}
	if (queued > 0)
		return;
	if (clock_offset(j->s->store, &j->offset_ms) < 0 ||
	    store_shards_start(j->s->store, j->run_id, j->idx, START_LEAD_MS, &j->start_at) < 0) {
		if (now >= j->deadline + CLAIM_WAIT_MS)
			job_fail(j, "cannot agree on the start of the load: %s",
			         store_errmsg(j->s->store));
		return;
	}
	j->phase = JOB_RUNNING;
	j->go(j->userdata, j->nodes, j->start_at + (int64_t)llround(j->offset_ms));
}

/* A shard that failed, or whose node has been silent for a lease: why
 * names it; NULL when every shard is well. */
static bool shard_lost(struct probe_fanout_job *j, json_t *sh, char *why, size_t len)
{
	const char *node = json_string_value(json_object_get(sh, "node"));
	const char *state = json_string_value(json_object_get(sh, "state"));
	json_t *silent = json_object_get(sh, "silent_ms");

	if (!strcmp(state, "failed")) {
		snprintf(why, len, "node '%s' could not run its share of the load: %s",
		         node ? node : "?", json_string_value(json_object_get(sh, "error")));
		return true;
	}
	if (strcmp(state, "done") && json_is_integer(silent) &&
	    json_integer_value(silent) > j->s->cl.lease_ms) {
		snprintf(why, len,
		         "node '%s' stopped during the load (no heartbeat for %.1f s); what every "
		         "node measured until then is kept",
		         node ? node : "?", (double)json_integer_value(silent) / 1000.0);
		return true;
	}
	return false;
}

static void job_running(struct probe_fanout_job *j)
{
	json_t *shards = NULL, *sh;
	size_t i;
	char why[512];

	if (j->failed || !j->has_shards ||
	    store_shards_list(j->s->store, j->run_id, j->idx, &shards) < 0)
		return;
	j->others = 0;
	json_array_foreach (shards, i, sh)
		j->others += json_integer_value(json_object_get(sh, "requests"));
	json_array_foreach (shards, i, sh)
		if (shard_lost(j, sh, why, sizeof(why))) {
			job_fail(j, "%s", why);
			break;
		}
	json_decref(shards);
}

/* The shards as the probe gets them, this node's first. */
static json_t *job_result(struct probe_fanout_job *j, json_t *shards)
{
	json_t *all = json_array();
	json_t *own = json_pack("{s:i, s:s, s:f}", "shard", 0, "node", j->s->cl.node, "offset_ms",
	                        j->offset_ms);

	if (own && j->start_at > 0) /* agreed with other nodes */
		json_object_set_new(own, "skew_ms",
		                    json_integer(j->own_started_ms -
		                                 (int64_t)llround(j->offset_ms) - j->start_at));

	if (!all || json_array_append_new(all, own) < 0 || json_array_extend(all, shards) < 0) {
		json_decref(all);
		return NULL;
	}
	return all;
}

static void job_collecting(struct probe_fanout_job *j, int64_t now)
{
	json_t *shards = NULL, *sh, *all;
	size_t i;
	int pending = 0;
	char why[512];
	const char *pending_node = NULL;

	if (!j->has_shards) {
		shards = json_array(); /* this node alone */
	} else if (store_shards_list(j->s->store, j->run_id, j->idx, &shards) < 0) {
		if (now < j->deadline)
			return;
		shards = json_array();
		if (!j->failed) { /* never a smaller load passed off as the whole */
			j->failed = true;
			snprintf(j->why, sizeof(j->why),
			         "cannot read the other nodes' results within %d s of the end: %s",
			         END_GRACE_MS / 1000, store_errmsg(j->s->store));
		}
	}
	json_array_foreach (shards, i, sh) {
		const char *state = json_string_value(json_object_get(sh, "state"));

		if (shard_lost(j, sh, why, sizeof(why)) && !j->failed) {
			j->failed = true;
			snprintf(j->why, sizeof(j->why), "%s", why);
		} else if (strcmp(state, "done") && strcmp(state, "failed") &&
		           !shard_lost(j, sh, why, sizeof(why))) {
			pending++;
			pending_node = json_string_value(json_object_get(sh, "node"));
		}
	}
	if (pending > 0 && now < j->deadline) {
		json_decref(shards);
		return;
	}
	if (pending > 0 && !j->failed) {
		j->failed = true;
		snprintf(j->why, sizeof(j->why),
		         "node '%s' did not hand back its share's result within %d s of the end",
		         pending_node ? pending_node : "?", END_GRACE_MS / 1000);
	}
	j->phase = JOB_DONE;
	uv_timer_stop(&j->timer);
	all = job_result(j, shards);
	json_decref(shards);
	if (!all && !j->failed) {
		j->failed = true;
		snprintf(j->why, sizeof(j->why), "out of memory while merging the nodes' results");
	}
	if (!all)
		all = json_array(); /* empty: the probe keeps only its own */
	j->done(j->userdata, all, j->failed ? j->why : NULL);
	json_decref(all);
}

static void on_job_tick(uv_timer_t *t)
{
	struct probe_fanout_job *j = t->data;
	int64_t now = rd_now_ms();

	switch (j->phase) {
	case JOB_INIT:
		job_init(j, now);
		break;
	case JOB_CLAIMING:
		job_claiming(j, now);
		break;
	case JOB_RUNNING:
		job_running(j);
		break;
	case JOB_COLLECTING:
		job_collecting(j, now);
		return;
	case JOB_DONE:
		break;
	}
	if (j->ended) /* the probe ended it from a callback: its timer is closing */
		return;
	if (j->phase == JOB_DONE)
		uv_timer_stop(&j->timer);
	else if (j->phase != JOB_RUNNING || j->has_shards)
		uv_timer_start(&j->timer, on_job_tick,
		               j->phase == JOB_RUNNING ? POLL_RUN_MS : POLL_CLAIM_MS, 0);
}

static int job_begin(struct probe *p, json_t *round, probe_fanout_go_cb go,
                     probe_fanout_fail_cb fail, void *userdata, struct probe_fanout_job **ret_job)
{
	struct sched *s = p->fanout.ctx;
	struct probe_fanout_job *j = calloc(1, sizeof(*j));

	if (!j)
		return -ENOMEM;
	*j = (struct probe_fanout_job){.deadline = rd_now_ms() + CLAIM_WAIT_MS,
	                               .s = s,
	                               .p = p,
	                               .run_id = p->fanout.run_id,
	                               .idx = p->fanout.idx,
	                               .round = json_incref(round),
	                               .go = go,
	                               .fail = fail,
	                               .userdata = userdata};
	uv_timer_init(s->loop, &j->timer);
	j->timer.data = j;
	uv_timer_start(&j->timer, on_job_tick, 0, 0); /* never calls back from inside begin */
	*ret_job = j;
	return 0;
}

/* How long after the agreed start the last shard begins (rate mode). */
static int64_t last_stagger_ms(const struct probe_fanout_job *j)
{
	struct fanload_round rd;
	struct probe_load_share sh = {0};

	if (j->nodes <= 1)
		return 0;
	if (j->round && fanload_round_from_json(j->round, &rd) == 0)
		fanload_round_share(j->p->sp, &rd, j->nodes - 1, j->nodes, &sh);
	else if (!j->round)
		probe_load_share(j->p->sp, j->nodes - 1, j->nodes, &sh);
	return sh.stagger_ms;
}

static void job_collect(struct probe_fanout_job *j, int64_t started_ms, probe_fanout_done_cb done)
{
	j->own_started_ms = started_ms;
	j->done = done;
	j->phase = JOB_COLLECTING;
	/* The last shard starts, so ends, its stagger after this one. */
	j->deadline = rd_now_ms() + END_GRACE_MS + last_stagger_ms(j);
	uv_timer_start(&j->timer, on_job_tick, 0, POLL_END_MS);
}

static void job_stop(struct probe_fanout_job *j)
{
	if (j->has_shards && store_shards_stop(j->s->store, j->run_id, j->idx) < 0)
		rd_log(RD_LOG_DEBUG, NULL, "Failed to stop the shards of run %lld: %s",
		       (long long)j->run_id, store_errmsg(j->s->store));
}

static int64_t job_others_requests(const struct probe_fanout_job *j)
{
	return j->others;
}

static void job_end(struct probe_fanout_job *j)
{
	if (!j)
		return;
	j->ended = true;
	if (j->has_shards && j->phase != JOB_DONE &&
	    store_shards_stop(j->s->store, j->run_id, j->idx) < 0)
		rd_log(RD_LOG_DEBUG, NULL, "Failed to stop the shards of run %lld: %s",
		       (long long)j->run_id, store_errmsg(j->s->store));
	uv_close((uv_handle_t *)&j->timer, job_closed);
}

static const struct probe_fanout_ops fanout_ops = {
        .begin = job_begin,
        .collect = job_collect,
        .stop = job_stop,
        .others_requests = job_others_requests,
        .end = job_end,
};

void sched_shard_attach(struct sched *s, struct probe *p, int64_t run_id, size_t idx)
{
	if (!sched_cluster_on(s) ||
	    (p->sp->type != PROBE_TYPE_LOAD && p->sp->type != PROBE_TYPE_CAPACITY &&
	     p->sp->type != PROBE_TYPE_COMPARE))
		return;
	p->fanout = (struct probe_fanout){&fanout_ops, s, run_id, idx};
}

/* ==== A shard of another node's probe ================================= */

struct shard_work {
	struct shard_work *next;
	struct sched *s;
	int64_t run_id;
	size_t idx;
	int shard, shards;
	struct spec *spec;
	struct probe p;
	double offset_ms;
	bool started;  /* the probe was started */
	bool finished; /* the probe finished: its result is to be handed back */
	bool reported; /* it was (or nothing more is to be written) */
	bool stopping; /* asked to end */
	bool shutdown; /* by its own node stopping: a failure, not a smaller load */
	bool closing;
	uv_timer_t timer;
};

struct sched_shards {
	struct shard_work *works;
	uint64_t gen;
	int64_t next_claim;
	bool closed;
};

static void work_unlink(struct sched *s, struct shard_work *w)
{
	for (struct shard_work **pp = &s->cl.shards->works; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			return;
		}
}

static void work_closed(uv_handle_t *h)
{
	struct shard_work *w = h->data;

	if (w->p.ops && w->p.ops->free)
		w->p.ops->free(&w->p);
	json_decref(w->p.metrics);
	json_decref(w->p.details);
	free(w->p.error);
	spec_free(w->spec);
	free(w);
}

/* The node's part ends: the shard's row says how, once. */
static void work_report(struct shard_work *w, const char *state, json_t *result, const char *error)
{
	struct sched *s = w->s;

	w->reported = true;
	if (store_shard_finish(s->store, w->run_id, w->idx, w->shard, s->cl.node, state, result,
	                       error) < 0)
		rd_log(RD_LOG_DEBUG, NULL, "Failed to hand back shard %d of run %lld: %s", w->shard,
		       (long long)w->run_id, store_errmsg(s->store));
}

static void work_close(struct shard_work *w)
{
	if (w->closing)
		return;
	w->closing = true;
	work_unlink(w->s, w);
	uv_close((uv_handle_t *)&w->timer, work_closed);
}

static void on_work_tick(uv_timer_t *t);

static void on_work_probe_done(struct probe *p)
{
	struct shard_work *w = p->userdata;

	w->finished = true;
	if (!w->closing)
		uv_timer_start(&w->timer, on_work_tick, 0,
		               0); /* reported outside the probe's call */
}

static void work_finish(struct shard_work *w)
{
	json_t *res = json_object_get(w->p.details, "shard_result");

	if (!w->reported && w->shutdown)
		work_report(w, "failed", json_is_object(res) ? res : NULL,
		            "it was stopped during the load");
	else if (!w->reported && json_is_object(res))
		work_report(w, "done", res, NULL);
	else if (!w->reported)
		work_report(w, "failed", NULL, w->p.error ? w->p.error : "no result");
	work_close(w);
}

static void work_start(struct shard_work *w, int64_t start_at)
{
	struct probe *p = &w->p;
	int e;

	p->shard_start_ms = start_at + (int64_t)llround(w->offset_ms);
	p->ops = &probe_type_get(p->sp->type)->ops;
	p->state = PROBE_STATE_RUNNING;
	p->started_at = rd_now_ms();
	w->started = true;
	e = p->ops->start(p);
	if (e < 0)
		probe_finish(p, PROBE_STATE_ERRORED, "cannot start its share: %s", strerror(-e));
}

/* Beats, and learns the agreed start or that the shard must end. */
static void on_work_tick(uv_timer_t *t)
{
	struct shard_work *w = t->data;
	struct probe *p = &w->p;
	json_t *got = NULL;
	int64_t started_db = 0, start_at;
	int e;

	if (w->finished) {
		work_finish(w);
		return;
	}
	if (w->started && p->requests >= 0) { /* the engine started, at p->started_at */
		struct probe_load_share sh;

		probe_load_share(p->sp, w->shard, w->shards, &sh); /* late on purpose */
		started_db = p->started_at - (int64_t)llround(w->offset_ms) - sh.stagger_ms;
	}
	e = store_shard_beat(w->s->store, w->run_id, w->idx, w->shard, w->s->cl.node,
	                     p->requests > 0 ? p->requests : 0, started_db, w->offset_ms, &got);
	if (e == -ENOENT ||
	    (e == 0 &&
	     (json_is_true(json_object_get(got, "stop")) ||
	      strcmp(json_string_value(json_object_get(got, "run_state")) ?: "", "running")))) {
		w->reported = e == -ENOENT; /* not this node's any more: nothing to write */
		if (!w->started) {
			if (!w->reported)
				work_report(w, "failed", NULL, "ended before it started");
			work_close(w);
		} else if (!w->stopping) {
			w->stopping = true;
			p->ops->cancel(p);
		}
	} else if (e == 0 && !w->started && json_is_integer(json_object_get(got, "start_at"))) {
		start_at = json_integer_value(json_object_get(got, "start_at"));
		work_start(w, start_at);
	}
	json_decref(got);
	if (!w->closing && !w->finished)
		uv_timer_start(&w->timer, on_work_tick, w->started ? WORK_BEAT_MS : WORK_WAIT_MS,
		               0);
}

/* The claimed shard's probe, as its run's spec says; -EINVAL with why
 * when this node cannot run it. */
static int work_spec(struct shard_work *w, json_t *claim, char *why, size_t len)
{
	const char *text = json_string_value(json_object_get(claim, "exec_spec"));
	json_t *round = json_object_get(json_object_get(claim, "params"), "round");
	struct spec_error se = {0};
	int e = text ? spec_parse(text, strlen(text), SPEC_FORMAT_JSON, &w->spec, &se) : -EINVAL;

	if (e < 0) {
		snprintf(why, len, "node cannot execute its run's spec: %s%s%s", se.path,
		         se.path[0] ? ": " : "", se.message[0] ? se.message : strerror(-e));
		return e;
	}
	if (w->idx >= w->spec->n_probes) {
		snprintf(why, len, "its run has no probe %zu", w->idx);
		return -EINVAL;
	}
	/* A round of a probe that runs several is a load probe of its own. */
	if (json_is_object(round))
		return fanload_round_spec(&w->spec->probes[w->idx], round, why, len);
	if (w->spec->probes[w->idx].type != PROBE_TYPE_LOAD) {
		snprintf(why, len, "probe %zu of its run is not a load probe", w->idx);
		return -EINVAL;
	}
	return 0;
}

static void work_new(struct sched *s, json_t *claim)
{
	struct shard_work *w = calloc(1, sizeof(*w));
	char why[600] = "out of memory";
	int e = w ? 0 : -ENOMEM;

	if (!w)
		return; /* the coordinator sees the shard go silent */
	w->s = s;
	w->run_id = json_integer_value(json_object_get(claim, "run_id"));
	w->idx = (size_t)json_integer_value(json_object_get(claim, "probe_idx"));
	w->shard = (int)json_integer_value(json_object_get(claim, "shard"));
	w->shards = (int)json_integer_value(json_object_get(claim, "shards"));
	uv_timer_init(s->loop, &w->timer);
	w->timer.data = w;
	w->next = s->cl.shards->works;
	s->cl.shards->works = w;
	e = work_spec(w, claim, why, sizeof(why));
	if (e == 0 && clock_offset(s->store, &w->offset_ms) < 0) {
		snprintf(why, sizeof(why), "cannot read the database's clock: %s",
		         store_errmsg(s->store));
		e = -EIO;
	}
	if (e < 0) {
		work_report(w, "failed", NULL, why);
		work_close(w);
		return;
	}
	w->p = (struct probe){.loop = s->loop,
	                      .http = s->http,
	                      .spec = w->spec,
	                      .sp = &w->spec->probes[w->idx],
	                      .percent = -1,
	                      .requests = -1,
	                      .live_rps = -1,
	                      .live_p99_ms = NAN,
	                      .live_errors = -1,
	                      .done = on_work_probe_done,
	                      .userdata = w,
	                      .shard = w->shard,
	                      .shards = w->shards};
	sched_report(s, 0,
	             "run %lld: shard %d of %d of probe '%s' claimed, offset to the "
	             "database's clock %.1f ms",
	             (long long)w->run_id, w->shard, w->shards, w->p.sp->name, w->offset_ms);
	uv_timer_start(&w->timer, on_work_tick, 0, 0);
}

void sched_shard_tick(struct sched *s, int64_t now)
{
	struct sched_shards *sh = s->cl.shards;
	uint64_t gen = store_generation(s->store);
	json_t *claim = NULL;

	if (!sh) {
		sh = s->cl.shards = calloc(1, sizeof(*sh));
		if (!sh)
			return;
	}
	if (sh->closed || s->shutdown_cb || (gen == sh->gen && now < sh->next_claim))
		return;
	sh->gen = gen;
	sh->next_claim = now + SHARD_CLAIM_MS;
	if (store_shard_claim(s->store, s->cl.node, &claim) < 0) {
		rd_log(RD_LOG_DEBUG, NULL, "Failed to claim a shard: %s", store_errmsg(s->store));
		return;
	}
	if (claim) {
		work_new(s, claim);
		sh->next_claim = now; /* perhaps another, at the next tick */
	}
	json_decref(claim);
}

/* Shards still running end as cancelled; their probes finish later. */
void sched_shard_close(struct sched *s)
{
	struct sched_shards *sh = s->cl.shards;

	if (!sh)
		return;
	sh->closed = true;
	for (struct shard_work *w = sh->works, *next; w; w = next) {
		next = w->next;
		if (w->started && !w->finished && !w->stopping) {
			w->stopping = true;
			w->shutdown = true;
			w->p.ops->cancel(&w->p);
		} else if (!w->started || w->finished) {
			if (!w->reported)
				work_report(w, "failed", NULL, "its node stopped");
			work_close(w);
		}
	}
}

void sched_shard_free(struct sched *s)
{
	free(s->cl.shards);
	s->cl.shards = NULL;
}
