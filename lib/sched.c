/* sched: runs and their probes on the main loop (see sched.h).
 *
 * A run's probes execute one after the other in spec order: drills change
 * the target (faults, rollbacks) and would falsify a concurrent load probe,
 * and sequential execution makes a run's numbers reproducible. Different
 * runs execute concurrently up to max_concurrent_runs, and load probes are
 * exclusive daemon-wide up to max_concurrent_load because two load tests on
 * one host falsify each other. Every transition is stored before watchers
 * hear of it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "judge.h"
#include "loadgen.h"
#include "log.h"
#include "metrics.h"
#include "probe.h"
#include "sched.h"
#include "util.h"

#define DEFAULT_PROBE_DEADLINE_MS (2 * 60 * 1000)
#define PROBE_DEADLINE_MARGIN_MS  (60 * 1000)

enum run_state {
	RUN_QUEUED = 0,
	RUN_RUNNING,
	RUN_PASSED,
	RUN_FAILED,
	RUN_ERROR,
	RUN_CANCELLED,
	RUN_INTERRUPTED,
};

static const char *const run_state_names[] = {
        "queued", "running", "passed", "failed", "error", "cancelled", "interrupted",
};

struct sched_watch {
	struct run *run;
	sched_watch_cb cb;
	void *userdata;
	struct sched_watch *next, *prev;
};

struct run {
	struct sched *s;
	struct run *next, *prev;
	int64_t id;
	struct spec *spec;
	enum run_state state;
	struct probe *probes;
	size_t n_probes;
	size_t cur;      /* first probe not yet processed */
	bool holds_load; /* the current probe holds a load slot */
	bool cancel_requested;
	bool interrupt; /* cancelled by shutdown: record as interrupted */
	bool deadline_hit;
	bool probe_deadline_hit;
	bool advancing, again;
	bool finalized;
	bool waiting_load;    /* the next probe waits for a load slot */
	int n_background;     /* background probes still running (probe_ops.stop) */
	bool background_stop; /* they were asked to stop */
	int64_t started_at;
	uv_timer_t deadline;
	uv_timer_t probe_timer;
	int open_handles;
	struct sched_watch *watches;
};

struct sched {
	uv_loop_t *loop;
	struct store *store;
	struct http_client *http;
	struct sched_config cfg;
	struct run *head, *tail;
	int n_queued, n_running, load_running;
	bool pumping, pump_again;
	void (*shutdown_cb)(void *userdata);
	void *shutdown_userdata;
};

static void run_advance(struct run *r);

static bool is_load_type(enum probe_type t)
{
	return t == PROBE_LOAD || t == PROBE_CAPACITY;
}

static void config_defaults(struct sched_config *c)
{
	if (c->max_concurrent_runs <= 0)
		c->max_concurrent_runs = 4;
	if (c->max_concurrent_load <= 0)
		c->max_concurrent_load = 1;
	if (c->max_queued <= 0)
		c->max_queued = 100;
}

int sched_new(uv_loop_t *loop, struct store *st, struct http_client *http,
              const struct sched_config *cfg, struct sched **ret_sched)
{
	struct sched *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->loop = loop;
	s->store = st;
	s->http = http;
	if (cfg)
		s->cfg = *cfg;
	config_defaults(&s->cfg);
	*ret_sched = s;
	return 0;
}

void sched_free(struct sched *s)
{
	free(s);
}

void sched_set_config(struct sched *s, const struct sched_config *cfg)
{
	s->cfg = *cfg;
	config_defaults(&s->cfg);
}

int sched_active(struct sched *s)
{
	return s->n_queued + s->n_running;
}

static struct run *find_run(struct sched *s, int64_t id)
{
	for (struct run *r = s->head; r; r = r->next)
		if (r->id == id && !r->finalized)
			return r;
	return NULL;
}

static void notify(struct run *r, bool final)
{
	struct sched_watch *w = r->watches, *next;

	for (; w; w = next) {
		next = w->next;
		w->cb(w->userdata, r->id, run_state_names[r->state], final);
	}
	if (!final)
		return;
	while (r->watches) {
		w = r->watches;
		r->watches = w->next;
		free(w);
	}
}

int sched_watch(struct sched *s, int64_t run_id, sched_watch_cb cb, void *userdata,
                struct sched_watch **ret_watch)
{
	struct run *r = find_run(s, run_id);
	struct sched_watch *w;

	if (!r)
		return -ENOENT;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->run = r;
	w->cb = cb;
	w->userdata = userdata;
	w->next = r->watches;
	if (r->watches)
		r->watches->prev = w;
	r->watches = w;
	*ret_watch = w;
	return 0;
}

void sched_unwatch(struct sched_watch *w)
{
	if (!w)
		return;
	if (w->prev)
		w->prev->next = w->next;
	else
		w->run->watches = w->next;
	if (w->next)
		w->next->prev = w->prev;
	free(w);
}

static void save_probe(struct run *r, size_t idx)
{
	json_t *pj = probe_to_json(&r->probes[idx]);
	int e = pj ? store_probe_save(r->s->store, r->id, idx, pj) : -ENOMEM;

	if (e < 0)
		rd_log(RD_LOG_DEBUG, NULL, "Failed to save probe %zu of run %lld: %s", idx,
		       (long long)r->id, strerror(-e));
	json_decref(pj);
}

static void save_state(struct run *r, const char *verdict, int64_t finished_at, const char *error)
{
	int e = store_run_update(r->s->store, r->id, run_state_names[r->state], verdict,
	                         r->started_at, finished_at, error);

	if (e < 0)
		rd_log(RD_LOG_DEBUG, NULL, "Failed to save state of run %lld: %s", (long long)r->id,
		       strerror(-e));
}

/* The probe's own deadline unless the spec sets one: long enough for what
 * the probe was asked to do, with a margin for connecting and draining. */
static int64_t probe_deadline_ms(const struct run *r, const struct spec_probe *sp)
{
	if (sp->timeout_ms > 0)
		return sp->timeout_ms;
	switch (sp->type) {
	case PROBE_LOAD:
		return sp->duration_ms + sp->warmup_ms + PROBE_DEADLINE_MARGIN_MS;
	case PROBE_CAPACITY:
		return r->spec->timeout_ms;
	case PROBE_ALERT_DRILL:
	case PROBE_ROLLBACK_DRILL:
		return sp->within_ms + sp->wait_resolve_ms + PROBE_DEADLINE_MARGIN_MS;
	default:
		return DEFAULT_PROBE_DEADLINE_MS;
	}
}

static void on_probe_deadline(uv_timer_t *t)
{
	struct run *r = rd_container_of(t, struct run, probe_timer);
	struct probe *p = &r->probes[r->cur];

	r->probe_deadline_hit = true;
	if (p->state == PROBE_RUNNING && p->ops)
		p->ops->cancel(p);
}

/* A background probe ended (stopped, cancelled or on its own). */
static void complete_background(struct run *r, struct probe *p)
{
	size_t idx = (size_t)(p - r->probes);

	if (p->state == PROBE_CANCELLED && r->interrupt)
		p->state = PROBE_INTERRUPTED;
	save_probe(r, idx);
	if (p->ops && p->ops->free)
		p->ops->free(p);
	r->n_background--;
	notify(r, false);
}

static void on_probe_done(struct probe *p)
{
	struct run *r = p->userdata;

	if (p->finished_at >= p->started_at && p->started_at > 0) /* for GET /metrics */
		metrics_probe_observe(probe_type_to_string(p->sp->type),
		                      (double)(p->finished_at - p->started_at) / 1000.0);
	if (p->background)
		complete_background(r, p);
	run_advance(r);
}

/* Asks the run's background probes to stop (once) or, on cancel, cancels
 * them; their done callbacks advance the run. */
static void stop_background(struct run *r, bool cancel)
{
	if (!cancel && r->background_stop)
		return;
	r->background_stop = true;
	for (size_t i = 0; i < r->n_probes; i++) {
		struct probe *p = &r->probes[i];

		if (p->background && p->state == PROBE_RUNNING)
			cancel ? p->ops->cancel(p) : p->ops->stop(p);
	}
}

/* Starts the current probe. Returns false when it must wait for a load slot. */
/* The window of the load probes that ran before probe i in this run, for
 * queries that compare client-side and server-side numbers ({{window}}). */
static void set_load_window(struct run *r, size_t i)
{
	struct probe *p = &r->probes[i];

	p->window_start_ms = p->window_end_ms = 0;
	for (size_t k = 0; k < i; k++) {
		const struct probe *q = &r->probes[k];

		if (!is_load_type(q->sp->type) || q->started_at <= 0 || q->finished_at <= 0)
			continue;
		if (!p->window_start_ms || q->started_at < p->window_start_ms)
			p->window_start_ms = q->started_at;
		if (q->finished_at > p->window_end_ms)
			p->window_end_ms = q->finished_at;
	}
}

static bool load_slot_free(const struct sched *s)
{
	return s->load_running < s->cfg.max_concurrent_load;
}

static bool start_probe(struct run *r)
{
	struct probe *p = &r->probes[r->cur];
	int e;

	if (is_load_type(p->sp->type)) {
		if (!load_slot_free(r->s)) {
			if (!r->waiting_load) {
				r->waiting_load = true;
				notify(r, false);
			}
			return false;
		}
		r->s->load_running++;
		r->holds_load = true;
	}
	r->waiting_load = false;
	p->state = PROBE_RUNNING;
	p->started_at = rd_now_ms();
	r->probe_deadline_hit = false;
	save_probe(r, r->cur);
	notify(r, false);
	p->ops = probe_ops_find(p->sp->type);
	if (!p->ops) {
		probe_finish(p, PROBE_ERRORED, "probe type '%s' is not implemented in this readyd",
		             probe_type_to_string(p->sp->type));
		return true;
	}
	uv_timer_start(&r->probe_timer, on_probe_deadline, (uint64_t)probe_deadline_ms(r, p->sp),
	               0);
	set_load_window(r, r->cur);
	e = p->ops->start(p);
	if (e < 0)
		probe_finish(p, PROBE_ERRORED, "cannot start probe: %s", strerror(-e));
	return true;
}

/* Load probes hand over their serialized histograms (base64 in
 * details.histograms) and timeline (details.timeline); they are stored as
 * rows of migrations/0002_load.sql, where rejudging finds them, and the
 * base64 is kept out of the run resource. Failures are logged, not fatal:
 * the metrics are saved either way. */
static void save_load_measurements(struct run *r, size_t idx)
{
	struct probe *p = &r->probes[idx];
	json_t *hists = json_object_get(p->details, "histograms");
	json_t *tl = json_object_get(p->details, "timeline");
	const char *name;
	json_t *v;
	int e = 0;

	if (!is_load_type(p->sp->type) || !json_is_object(p->details))
		return;
	json_object_foreach (hists, name, v) {
		uint8_t *buf = NULL;
		size_t len = 0;

		e = loadgen_base64_decode(json_string_value(v), &buf, &len);
		if (e == 0)
			e = store_probe_blob_save(r->s->store, r->id, idx, name, buf, len);
		free(buf);
		if (e < 0)
			break;
	}
	if (e == 0 && json_is_array(tl))
		e = store_probe_timeline_save(r->s->store, r->id, idx, tl);
	if (e < 0)
		rd_log(RD_LOG_DEBUG, NULL,
		       "Failed to save the measurements of probe %zu of run %lld: %s", idx,
		       (long long)r->id, strerror(-e));
	else
		json_object_del(p->details, "histograms");
}

/* Records the end of the current probe and moves past it. */
static void complete_probe(struct run *r)
{
	struct probe *p = &r->probes[r->cur];
	char d[32];

	uv_timer_stop(&r->probe_timer);
	if (r->probe_deadline_hit && p->state == PROBE_CANCELLED) {
		rd_format_duration(probe_deadline_ms(r, p->sp), d, sizeof(d));
		p->state = PROBE_ERRORED;
		free(p->error);
		if (asprintf(&p->error, "probe did not finish within its deadline of %s", d) < 0)
			p->error = NULL;
	} else if (p->state == PROBE_CANCELLED && r->interrupt) {
		p->state = PROBE_INTERRUPTED;
	}
	if (r->holds_load) {
		r->holds_load = false;
		r->s->load_running--;
	}
	save_load_measurements(r, r->cur);
	save_probe(r, r->cur);
	if (p->ops && p->ops->free)
		p->ops->free(p);
	r->cur++;
	notify(r, false);
}

static void on_handle_closed(uv_handle_t *h)
{
	struct run *r = h->data;

	if (--r->open_handles > 0)
		return;
	for (size_t i = 0; i < r->n_probes; i++) {
		json_decref(r->probes[i].metrics);
		json_decref(r->probes[i].details);
		free(r->probes[i].error);
	}
	free(r->probes);
	spec_free(r->spec);
	free(r);
}

static void unlink_run(struct run *r)
{
	struct sched *s = r->s;

	if (r->prev)
		r->prev->next = r->next;
	else
		s->head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		s->tail = r->prev;
}

static void judge(struct run *r, enum verdict *ret_verdict)
{
	struct judge_probe *jp = calloc(r->n_probes, sizeof(*jp));
	json_t *gates = NULL, *checklist = NULL;

	*ret_verdict = VERDICT_ERROR;
	if (!jp)
		return;
	for (size_t i = 0; i < r->n_probes; i++) {
		jp[i].name = r->probes[i].sp->name;
		jp[i].state = probe_state_to_string(r->probes[i].state);
		jp[i].error = r->probes[i].error;
		jp[i].metrics = r->probes[i].metrics;
	}
	/* Baselines and waivers come from the store (issue 5). */
	struct store_judge_ctx ctx = {r->s->store, r->spec->service, r->spec->environment, r->id,
	                              rd_now_ms()};
	struct judge_lookup lk = {store_judge_baseline, store_judge_waiver, &ctx};

	if (judge_run_with(r->spec, jp, r->n_probes, &lk, ctx.now_ms, &gates, &checklist,
	                   ret_verdict) == 0)
		store_judgement_save(r->s->store, r->id, gates, checklist);
	json_decref(gates);
	json_decref(checklist);
	free(jp);
}

static void finalize(struct run *r)
{
	struct sched *s = r->s;
	const char *verdict = NULL, *error = NULL;
	char msg[128], d[32];
	enum verdict v;

	r->finalized = true;
	uv_timer_stop(&r->deadline);
	uv_timer_stop(&r->probe_timer);
	for (size_t i = r->cur; i < r->n_probes; i++) {
		r->probes[i].state = r->interrupt ? PROBE_INTERRUPTED : PROBE_CANCELLED;
		save_probe(r, i);
	}
	if (r->state == RUN_QUEUED)
		s->n_queued--;
	else
		s->n_running--;
	if (r->deadline_hit) {
		rd_format_duration(r->spec->timeout_ms, d, sizeof(d));
		snprintf(msg, sizeof(msg), "run did not finish within its timeout of %s", d);
		r->state = RUN_ERROR;
		verdict = "ERROR";
		error = msg;
	} else if (r->cancel_requested) {
		r->state = r->interrupt ? RUN_INTERRUPTED : RUN_CANCELLED;
		error = r->interrupt ? "readyd shut down while the run was in progress"
		                     : "cancelled on request";
	} else {
		judge(r, &v);
		verdict = verdict_to_string(v);
		r->state = v == VERDICT_PASS   ? RUN_PASSED
		           : v == VERDICT_FAIL ? RUN_FAILED
		                               : RUN_ERROR;
	}
	save_state(r, verdict, rd_now_ms(), error);
	notify(r, true);
	unlink_run(r);
	uv_close((uv_handle_t *)&r->deadline, on_handle_closed);
	uv_close((uv_handle_t *)&r->probe_timer, on_handle_closed);
}

static void pump(struct sched *s);

/* One pass of the run's state machine; see run_advance. */
static void step(struct run *r)
{
	for (;;) {
		struct probe *p;

		if (r->finalized)
			return;
		if (r->cur == r->n_probes) {
			if (r->n_background > 0) {
				stop_background(r, false);
				return; /* their done callbacks advance the run */
			}
			finalize(r);
			return;
		}
		p = &r->probes[r->cur];
		if (p->state == PROBE_QUEUED) {
			if (r->cancel_requested) {
				if (r->n_background > 0)
					return; /* cancelled; waits for them */
				finalize(r);
				return;
			}
			if (!start_probe(r))
				return; /* waits for a load slot */
		}
		if (p->state == PROBE_RUNNING && p->ops->stop && !p->background) {
			/* Runs beside the later probes, bounded by the run's deadline. */
			uv_timer_stop(&r->probe_timer);
			p->background = true;
			r->n_background++;
			r->cur++;
			notify(r, false);
			continue;
		}
		if (p->state == PROBE_RUNNING)
			return; /* its done callback advances the run */
		complete_probe(r);
	}
}

/* Re-entrancy guard: probes may finish synchronously from start() or
 * cancel(), which calls back into here; the outer call loops instead. */
static void run_advance(struct run *r)
{
	if (r->advancing) {
		r->again = true;
		return;
	}
	r->advancing = true;
	do {
		r->again = false;
		step(r);
	} while (r->again && !r->finalized);
	r->advancing = false;
	pump(r->s);
}

static void on_run_deadline(uv_timer_t *t)
{
	struct run *r = rd_container_of(t, struct run, deadline);

	r->deadline_hit = true;
	sched_cancel(r->s, r->id);
}

static void start_run(struct run *r)
{
	struct sched *s = r->s;

	s->n_queued--;
	s->n_running++;
	r->state = RUN_RUNNING;
	r->started_at = rd_now_ms();
	save_state(r, NULL, 0, NULL);
	uv_timer_start(&r->deadline, on_run_deadline, (uint64_t)r->spec->timeout_ms, 0);
}

/* Starts queued runs while there is room, and lets runs that wait for a
 * load slot try again once one is free. Runs start in submission order.
 * A run still waiting is left alone: advancing it would only pump again,
 * and a pump that re-arms itself with nothing changed spins the loop. */
static void pump_once(struct sched *s)
{
	struct run *r, *next;

	for (r = s->head; r; r = next) {
		next = r->next;
		if (r->finalized || r->advancing)
			continue;
		if (r->state == RUN_QUEUED) {
			if (s->n_running >= s->cfg.max_concurrent_runs || s->shutdown_cb)
				continue;
			start_run(r);
			run_advance(r);
		} else if (r->cur < r->n_probes && r->probes[r->cur].state == PROBE_QUEUED) {
			/* A cancelled run is advanced by sched_cancel and by its
			 * background probes' done callbacks, not from here. */
			if (r->cancel_requested || (r->waiting_load && !load_slot_free(s)))
				continue;
			run_advance(r);
		}
	}
}

/* Guarded like run_advance: finishing runs pump, and pumping finishes runs. */
static void pump(struct sched *s)
{
	if (s->pumping) {
		s->pump_again = true;
		return;
	}
	s->pumping = true;
	do {
		s->pump_again = false;
		pump_once(s);
	} while (s->pump_again);
	s->pumping = false;
	if (s->shutdown_cb && !s->head) {
		void (*cb)(void *) = s->shutdown_cb;

		s->shutdown_cb = NULL;
		cb(s->shutdown_userdata);
	}
}

static int new_run(struct sched *s, struct spec *spec, struct run **ret_run)
{
	struct run *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->probes = calloc(spec->n_probes, sizeof(*r->probes));
	if (!r->probes) {
		free(r);
		return -ENOMEM;
	}
	r->s = s;
	r->spec = spec;
	r->n_probes = spec->n_probes;
	for (size_t i = 0; i < r->n_probes; i++) {
		struct probe *p = &r->probes[i];

		p->loop = s->loop;
		p->http = s->http;
		p->spec = spec;
		p->sp = &spec->probes[i];
		p->percent = -1;
		p->requests = -1;
		p->done = on_probe_done;
		p->userdata = r;
	}
	uv_timer_init(s->loop, &r->deadline);
	uv_timer_init(s->loop, &r->probe_timer);
	r->deadline.data = r;
	r->probe_timer.data = r;
	r->open_handles = 2;
	*ret_run = r;
	return 0;
}

static int store_new_run(struct sched *s, const struct spec *spec, const char *submitted_by,
                         const char *idempotency_key, int64_t *ret_id, bool *ret_existing)
{
	const char **names = calloc(spec->n_probes + 1, sizeof(*names));
	const char **types = calloc(spec->n_probes + 1, sizeof(*types));
	json_t *redacted = spec_to_json_redacted(spec);
	char *text = redacted ? json_dumps(redacted, JSON_COMPACT) : NULL;
	int e = -ENOMEM;

	if (names && types && text) {
		struct store_run_new rn = {
		        .service = spec->service,
		        .version = spec->version,
		        .environment = spec->environment,
		        .submitted_by = submitted_by,
		        .idempotency_key = idempotency_key,
		        .spec_json = text,
		        .probe_names = names,
		        .probe_types = types,
		        .n_probes = spec->n_probes,
		        .created_at = rd_now_ms(),
		};

		for (size_t i = 0; i < spec->n_probes; i++) {
			names[i] = spec->probes[i].name;
			types[i] = probe_type_to_string(spec->probes[i].type);
		}
		e = store_run_create(s->store, &rn, ret_id, ret_existing);
	}
	free(names);
	free(types);
	free(text);
	json_decref(redacted);
	return e;
}

int sched_submit(struct sched *s, struct spec *spec, const char *submitted_by,
                 const char *idempotency_key, int64_t *ret_id, bool *ret_existing)
{
	struct run *r;
	bool existing = false;
	int64_t id;
	int e;

	if (s->shutdown_cb) {
		spec_free(spec);
		return -ESHUTDOWN;
	}
	/* A retry of a submission that was accepted is answered even when the
	 * queue is full now: the pipeline's run exists. */
	if (idempotency_key && store_run_find_by_key(s->store, idempotency_key, &id) == 0) {
		spec_free(spec);
		*ret_id = id;
		*ret_existing = true;
		return 0;
	}
	if (s->n_queued >= s->cfg.max_queued) {
		spec_free(spec);
		return -EAGAIN;
	}
	e = store_new_run(s, spec, submitted_by, idempotency_key, &id, &existing);
	if (e < 0 || existing) {
		spec_free(spec);
		if (e == 0) {
			*ret_id = id;
			*ret_existing = true;
		}
		return e;
	}
	e = new_run(s, spec, &r);
	if (e < 0) {
		spec_free(spec);
		store_run_update(s->store, id, "error", "ERROR", 0, rd_now_ms(),
		                 "out of memory while queueing the run");
		return e;
	}
	r->id = id;
	r->state = RUN_QUEUED;
	r->prev = s->tail;
	if (s->tail)
		s->tail->next = r;
	else
		s->head = r;
	s->tail = r;
	s->n_queued++;
	*ret_id = id;
	*ret_existing = false;
	pump(s);
	return 0;
}

int sched_cancel(struct sched *s, int64_t id)
{
	struct run *r = find_run(s, id);
	struct probe *p;

	if (!r)
		return -ENOENT;
	if (r->cancel_requested)
		return 0;
	r->cancel_requested = true;
	if (r->n_background > 0)
		stop_background(r, true);
	p = r->cur < r->n_probes ? &r->probes[r->cur] : NULL;
	if (p && p->state == PROBE_RUNNING && p->ops)
		p->ops->cancel(p); /* its done callback finalizes the run */
	else
		run_advance(r);
	return 0;
}

int sched_progress(struct sched *s, int64_t id, json_t **ret_progress)
{
	struct run *r = find_run(s, id);
	json_t *o, *cur = json_null();
	const struct probe *p;

	if (!r)
		return -ENOENT;
	p = r->cur < r->n_probes ? &r->probes[r->cur] : NULL;
	if (p && p->state == PROBE_RUNNING) {
		cur = json_pack("{s:s, s:o, s:o}", "probe", p->sp->name, "percent",
		                p->percent >= 0 ? json_integer(p->percent) : json_null(),
		                "requests",
		                p->requests >= 0 ? json_integer(p->requests) : json_null());
	}
	if (r->waiting_load && p)
		cur = json_pack("{s:s, s:s}", "probe", p->sp->name, "waiting",
		                "waiting for a load slot");
	o = json_pack("{s:I, s:I, s:o, s:n}", "probes_done", (json_int_t)r->cur, "probes_total",
	              (json_int_t)r->n_probes, "current", cur ? cur : json_null(), "eta_s");
	if (!o)
		return -ENOMEM;
	*ret_progress = o;
	return 0;
}

void sched_shutdown(struct sched *s, bool interrupt, void (*cb)(void *userdata), void *userdata)
{
	struct run *r, *next;

	s->shutdown_cb = cb;
	s->shutdown_userdata = userdata;
	for (r = s->head; r; r = next) {
		next = r->next;
		r->interrupt = interrupt;
		sched_cancel(s, r->id);
	}
	pump(s);
}

void sched_drain(struct sched *s, void (*cb)(void *userdata), void *userdata)
{
	struct run *r, *next;

	s->shutdown_cb = cb;
	s->shutdown_userdata = userdata;
	for (r = s->head; r; r = next) {
		next = r->next;
		if (r->state != RUN_QUEUED)
			continue;
		r->interrupt = true;
		sched_cancel(s, r->id);
	}
	pump(s);
}
