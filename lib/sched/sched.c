/* sched: runs and their probes on the main loop (see sched.h).
 *
 * A run's probes execute one after the other in spec order: drills change
 * the target (faults, rollbacks) and would falsify a concurrent load probe,
 * and sequential execution makes a run's numbers reproducible. Different
 * runs execute concurrently up to max_concurrent_runs, and load probes are
 * exclusive daemon-wide up to max_concurrent_load because two load tests on
 * one host falsify each other. Every transition is stored before watchers
 * hear of it.
 *
 * A write the store refuses (a full disk) is not lost and not announced:
 * the run is marked unsaved, its later writes wait, and a timer with
 * backoff writes the whole run again (resync_run) until the store takes
 * it. Meanwhile watchers hear nothing, a run that ended stays active
 * (findable, counted) until its final state is stored, and no queued run
 * starts. The store itself keeps showing the last state it accepted,
 * which is what a restart would find.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/gate/judge.h"
#include "lib/loadgen/loadgen.h"
#include "lib/util/assert.h"
#include "lib/util/log.h"
#include "lib/report/metrics.h"
#include "lib/probe/probe.h"
#include "lib/sched/sched.h"
#include "lib/sched/sched_internal.h"
#include "lib/util/run_state.h"
#include "lib/util/util.h"
#include "lib/util/json_text.h"

#define RETRY_FIRST_MS 1000
#define RETRY_MAX_MS   (30 * 1000)

static void run_advance(struct run *r);

static bool is_load_type(const struct spec_probe *sp)
{
	return probe_drives_load(sp);
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
	/* Runs still listed point back here: leak rather than use freed memory. */
	if (!s || !rd_assert(!s->head))
		return;
	sched_cluster_free(s);
	free(s);
}

void sched_set_inbox(struct sched *s, struct aminbox *inbox)
{
	s->inbox = inbox;
}

void sched_set_config(struct sched *s, const struct sched_config *cfg)
{
	s->cfg = *cfg;
	config_defaults(&s->cfg);
}

int sched_queue_limit(struct sched *s)
{
	return s->cfg.max_queued;
}

int sched_active(struct sched *s)
{
	return s->n_queued + s->n_running + s->n_unstored;
}

void sched_set_store_cb(struct sched *s, sched_store_cb cb, void *userdata)
{
	s->store_cb = cb;
	s->store_userdata = userdata;
}

int sched_store_status(struct sched *s, char *buf, size_t len)
{
	if (s->n_unsaved == 0)
		return 0;
	snprintf(buf, len, "cannot write run %lld: %s; %d write%s pending", (long long)s->err_run,
	         s->err_cause, s->n_unsaved, s->n_unsaved == 1 ? "" : "s");
	return s->store_err;
}

/* A run that ended is findable until its final state is stored. */
struct run *sched_find_run(struct sched *s, int64_t id)
{
	for (struct run *r = s->head; r; r = r->next)
		if (r->id == id && (!r->finalized || r->unsaved))
			return r;
	return NULL;
}

/* Watchers hear only of what is stored: an unsaved run's changes are
 * announced once resync_run() has caught up. */
static void sched_notify(struct run *r, bool final)
{
	struct sched_watch *w = r->watches, *next;

	if (r->unsaved)
		return;
	for (; w; w = next) {
		next = w->next;
		sched_notify_watch(w, r->id, run_state_to_string(r->state), final);
	}
	if (!final)
		return;
	while (r->watches) {
		w = r->watches;
		r->watches = w->next;
		free(w);
	}
}

void sched_notify_watch(struct sched_watch *w, int64_t id, const char *state, bool final)
{
	w->cb(w->userdata, id, state, final);
}

int sched_watch(struct sched *s, int64_t run_id, sched_watch_cb cb, void *userdata,
                struct sched_watch **ret_watch)
{
	struct run *r = sched_find_run(s, run_id);
	struct sched_watch *w;

	if (!r && sched_cluster_on(s))
		return sched_cluster_watch(s, run_id, cb, userdata, ret_watch);
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
	if (w->remote) {
		sched_cluster_unwatch(w);
		return;
	}
	if (w->prev)
		w->prev->next = w->next;
	else
		w->run->watches = w->next;
	if (w->next)
		w->next->prev = w->prev;
	free(w);
}

void sched_report(struct sched *s, int err, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (s->store_cb)
		s->store_cb(s->store_userdata, err, msg);
	else
		rd_log(RD_LOG_DEBUG, NULL, "%s", msg);
}

static void sched_flush_and_pump(uv_timer_t *t);

static void arm_retry(struct sched *s)
{
	if (s->retry_closed)
		return;
	if (!s->retry_init) {
		uv_timer_init(s->loop, &s->retry);
		s->retry.data = s;
		s->retry_init = true;
		s->backoff_ms = RETRY_FIRST_MS;
	}
	if (!uv_is_active((uv_handle_t *)&s->retry))
		uv_timer_start(&s->retry, sched_flush_and_pump, s->backoff_ms, 0);
}

/* A write of run r failed with the transient e: the run's later writes
 * wait for resync_run(), its watchers for the store. The first refusal
 * of a spell is reported; the retries are not. */
static void sched_store_failed(struct run *r, int e)
{
	struct sched *s = r->s;
	bool first = s->n_unsaved == 0;

	s->store_err = e;
	s->err_run = r->id;
	snprintf(s->err_cause, sizeof(s->err_cause), "%s", store_errcause(s->store));
	if (!r->unsaved) {
		r->unsaved = true;
		s->n_unsaved++;
	}
	if (first)
		sched_report(s, e,
		             "Failed to store 'run %lld': %s; keeping it in memory and retrying "
		             "(every %d-%d s) until the database takes it",
		             (long long)r->id, s->err_cause, RETRY_FIRST_MS / 1000,
		             RETRY_MAX_MS / 1000);
	arm_retry(s);
}

/* A shared store refused a write of r because the run is no longer this
 * node's (store_fence): its lease passed and another node ended it. The
 * run stops here (sched_pump cancels it, not this deep in the state
 * machine) and nothing more of it is written, not even again. */
static void fence_refused(struct run *r)
{
	if (r->lost)
		return;
	r->lost = true;
	sched_report(r->s, -ESTALE,
	             "Failed to store 'run %lld': %s; stopping it here without storing",
	             (long long)r->id, store_errmsg(r->s->store));
}

/* What a retry cannot fix (a write the store refuses as invalid, a run
 * row that is gone) is reported and skipped, so one bad row cannot keep
 * the scheduler degraded forever. Returns e if it is worth retrying. */
static int check_write(struct run *r, int e)
{
	if (e == -ESTALE) {
		fence_refused(r);
		return 0;
	}
	if (e == 0 || (e != -EINVAL && e != -ENOENT && e != -EEXIST))
		return e;
	sched_report(r->s, e, "Failed to store 'run %lld': %s, ignoring", (long long)r->id,
	             store_errmsg(r->s->store));
	return 0;
}

static int write_probe(struct run *r, size_t idx)
{
	json_t *pj;
	int e;

	if (r->lost)
		return 0;
	pj = probe_to_json(&r->probes[idx]);
	e = pj ? store_probe_save(r->s->store, r->id, idx, pj) : -ENOMEM;

	if (e < 0)
		rd_log(RD_LOG_DEBUG, NULL, "Failed to save probe %zu of run %lld: %s", idx,
		       (long long)r->id, store_errmsg(r->s->store));
	json_decref(pj);
	return check_write(r, e);
}

/* The run's row: its final state once decided, else where it is now. */
static int write_state(struct run *r)
{
	int e;

	if (r->lost)
		return 0;
	e = store_run_update(r->s->store, r->id, run_state_to_string(r->state), r->verdict,
	                     r->started_at, r->decided ? r->finished_at : 0, r->error);
	if (e < 0)
		rd_log(RD_LOG_DEBUG, NULL, "Failed to save state of run %lld: %s", (long long)r->id,
		       store_errmsg(r->s->store));
	return check_write(r, e);
}

/* A run whose lease was lost belongs to another node's record now:
 * nothing of it is written any more. */
static void sched_save_probe(struct run *r, size_t idx)
{
	int e = r->unsaved || r->lost ? 0 : write_probe(r, idx);

	if (e < 0)
		sched_store_failed(r, e);
}

static void sched_save_state(struct run *r)
{
	int e = r->unsaved || r->lost ? 0 : write_state(r);

	if (e < 0)
		sched_store_failed(r, e);
}

/* The probe's own deadline unless the spec sets one: its type's default
 * (lib/probe/probe_<type>.c). */
static int64_t sched_probe_deadline_ms(const struct run *r, const struct spec_probe *sp)
{
	if (sp->timeout_ms > 0)
		return sp->timeout_ms;
	return probe_type_deadline_ms(r->spec, sp);
}

static void on_probe_deadline(uv_timer_t *t)
{
	struct run *r = rd_container_of(t, struct run, probe_timer);
	struct probe *p = &r->probes[r->cur];

	r->probe_deadline_hit = true;
	if (p->state == PROBE_STATE_RUNNING && p->ops)
		p->ops->cancel(p);
}

/* Frees what the probe's type holds, once the probe has ended. One still
 * running has handles on the loop: it is leaked rather than freed under
 * them, and recorded as an error, which makes its run one. */
static void sched_probe_release(struct probe *p)
{
	if (!rd_assert(p->state != PROBE_STATE_RUNNING && p->state != PROBE_STATE_QUEUED)) {
		p->state = PROBE_STATE_ERRORED;
		free(p->error);
		p->error = strdup("internal error: the probe was released before it ended");
		return;
	}
	if (p->ops && p->ops->free)
		p->ops->free(p);
}

/* A background probe ended (stopped, cancelled or on its own). */
static void complete_background(struct run *r, struct probe *p)
{
	size_t idx = (size_t)(p - r->probes);

	if (p->state == PROBE_STATE_CANCELLED && r->interrupt)
		p->state = PROBE_STATE_INTERRUPTED;
	sched_probe_release(p);
	sched_save_probe(r, idx);
	r->n_background--;
	sched_notify(r, false);
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

		if (p->background && p->state == PROBE_STATE_RUNNING)
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

		if (!is_load_type(q->sp) || q->started_at <= 0 || q->finished_at <= 0)
			continue;
		if (!p->window_start_ms || q->started_at < p->window_start_ms)
			p->window_start_ms = q->started_at;
		if (q->finished_at > p->window_end_ms)
			p->window_end_ms = q->finished_at;
	}
}

static bool sched_load_slot_free(const struct sched *s)
{
	return s->load_running < s->cfg.max_concurrent_load;
}

static bool start_probe(struct run *r)
{
	struct probe *p = &r->probes[r->cur];
	int e;

	if (is_load_type(p->sp)) {
		bool here = sched_load_slot_free(r->s);

		if (!here)
			r->load_retry_at = 0; /* waits for a slot of this node first */
		if (!here || !sched_cluster_load_take(r->s, r)) {
			if (!r->waiting_load) {
				r->waiting_load = true;
				sched_notify(r, false);
			}
			return false;
		}
		r->s->load_running++;
		r->holds_load = true;
	}
	r->waiting_load = false;
	p->state = PROBE_STATE_RUNNING;
	p->started_at = rd_now_ms();
	r->probe_deadline_hit = false;
	sched_save_probe(r, r->cur);
	if (r->lost) {
		/* Refused by the fence: the run is another node's now. */
		p->state = PROBE_STATE_CANCELLED;
		p->finished_at = p->started_at;
		r->cancel_requested = true;
		return true;
	}
	sched_notify(r, false);
	p->ops = &probe_type_get(p->sp->type)->ops;
	p->deadline_ms = sched_probe_deadline_ms(r, p->sp);
	uv_timer_start(&r->probe_timer, on_probe_deadline, (uint64_t)p->deadline_ms, 0);
	set_load_window(r, r->cur);
	sched_shard_attach(r->s, p, r->id, r->cur);
	e = p->ops->start(p);
	if (e < 0)
		probe_finish(p, PROBE_STATE_ERRORED, "cannot start probe: %s", strerror(-e));
	return true;
}

/* Load probes hand over their serialized histograms (base64 in
 * details.histograms) and timeline (details.timeline); they are stored as
 * rows of migrations/0002_load.sql, where rejudging finds them, and the
 * base64 is kept out of the run resource. Saving again replaces. */
static int write_measurements(struct run *r, size_t idx)
{
	struct probe *p = &r->probes[idx];
	json_t *hists = json_object_get(p->details, "histograms");
	json_t *tl = json_object_get(p->details, "timeline");
	const char *name;
	json_t *v;
	int e = 0;

	if (r->lost || !is_load_type(p->sp) || !json_is_object(p->details))
		return 0;
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
	if (e < 0) {
		rd_log(RD_LOG_DEBUG, NULL,
		       "Failed to save the measurements of probe %zu of run %lld: %s", idx,
		       (long long)r->id, store_errmsg(r->s->store));
		return check_write(r, e);
	}
	json_object_del(p->details, "histograms");
	return 0;
}

/* Records the end of the current probe and moves past it. */
static void complete_probe(struct run *r)
{
	struct probe *p = &r->probes[r->cur];
	char d[32];
	int e;

	uv_timer_stop(&r->probe_timer);
	if (r->probe_deadline_hit && p->state == PROBE_STATE_CANCELLED) {
		rd_format_duration(sched_probe_deadline_ms(r, p->sp), d, sizeof(d));
		p->state = PROBE_STATE_ERRORED;
		free(p->error);
		if (asprintf(&p->error, "probe did not finish within its deadline of %s", d) < 0)
			p->error = NULL;
	} else if (p->state == PROBE_STATE_CANCELLED && r->interrupt) {
		p->state = PROBE_STATE_INTERRUPTED;
	}
	if (r->holds_load) {
		r->holds_load = false;
		r->s->load_running--;
		sched_cluster_load_release(r->s, r);
	}
	sched_probe_release(p);
	if (!r->unsaved && !r->lost && (e = write_measurements(r, r->cur)) < 0)
		sched_store_failed(r, e);
	sched_save_probe(r, r->cur);
	r->cur++;
	sched_notify(r, false);
}

static void sched_on_handle_closed(uv_handle_t *h)
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
	free(r->error);
	json_decref(r->gates);
	json_decref(r->checklist);
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

/* The verdict, with the gate and checklist results kept in the run for
 * storing. */
static void sched_judge(struct run *r, enum verdict *ret_verdict)
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
	/* Baselines and waivers come from the store (docs/DESIGN.md). */
	struct store_judge_ctx ctx = {r->s->store, r->spec->service, r->spec->environment, r->id,
	                              rd_now_ms()};
	struct judge_lookup lk = {store_judge_baseline, store_judge_waiver, &ctx};

	if (judge_run_with(r->spec, jp, r->n_probes, &lk, ctx.now_ms, &gates, &checklist,
	                   ret_verdict) == 0) {
		r->gates = gates;
		r->checklist = checklist;
	} else {
		json_decref(gates);
		json_decref(checklist);
	}
	free(jp);
}

static int write_judgement(struct run *r)
{
	int e;

	if (r->lost || (!r->gates && !r->checklist))
		return 0;
	e = store_judgement_save(r->s->store, r->id, r->gates, r->checklist);
	if (e < 0)
		rd_log(RD_LOG_DEBUG, NULL, "Failed to save the judgement of run %lld: %s",
		       (long long)r->id, store_errmsg(r->s->store));
	return check_write(r, e);
}

/* Moves the run to state to, if the run state machine allows the move.
 * A move it does not allow is a bug: the caller fails the run. */
static bool sched_run_move(struct run *r, enum run_state to)
{
	if (!rd_assert(run_state_can_move(r->state, to)))
		return false;
	r->state = to;
	return true;
}

/* The final state, verdict and error of a run whose probes are done. */
static void sched_decide(struct run *r)
{
	char msg[128], d[32];
	const char *error = NULL;
	enum run_state to;
	enum verdict v;

	if (r->broken) {
		to = RUN_ERROR;
		r->verdict = gate_verdict_to_string(VERDICT_ERROR);
		error = "internal error: an invariant of the scheduler broke (see the log)";
	} else if (r->deadline_hit) {
		rd_format_duration(r->spec->timeout_ms, d, sizeof(d));
		snprintf(msg, sizeof(msg), "run did not finish within its timeout of %s", d);
		to = RUN_ERROR;
		r->verdict = gate_verdict_to_string(VERDICT_ERROR);
		error = msg;
	} else if (r->cancel_requested) {
		to = r->interrupt ? RUN_INTERRUPTED : RUN_CANCELLED;
		error = r->interrupt ? "readyd shut down while the run was in progress"
		                     : "cancelled on request";
	} else {
		sched_judge(r, &v);
		r->verdict = gate_verdict_to_string(v);
		to = v == VERDICT_PASS ? RUN_PASSED : v == VERDICT_FAIL ? RUN_FAILED : RUN_ERROR;
	}
	if (!sched_run_move(r, to)) {
		snprintf(msg, sizeof(msg), "internal error: a %s run cannot become %s",
		         run_state_to_string(r->state), run_state_to_string(to));
		r->state = RUN_ERROR;
		r->verdict = gate_verdict_to_string(VERDICT_ERROR);
		error = msg;
	}
	r->error = error ? strdup(error) : NULL;
	r->finished_at = rd_now_ms();
	r->decided = true;
}

/* Announces the stored end of a run and lets it go. */
static void end_run(struct run *r)
{
	if (r->claimed)
		sched_cluster_kick(r->s);
	sched_notify(r, true);
	unlink_run(r);
	uv_close((uv_handle_t *)&r->deadline, sched_on_handle_closed);
	uv_close((uv_handle_t *)&r->probe_timer, sched_on_handle_closed);
}

static void sched_finalize(struct run *r)
{
	struct sched *s = r->s;
	int e;

	/* A second end would count the run out of its queue or slot twice. */
	if (!rd_assert(!r->finalized))
		return;
	r->finalized = true;
	uv_timer_stop(&r->deadline);
	uv_timer_stop(&r->probe_timer);
	for (size_t i = r->cur; i < r->n_probes; i++) {
		r->probes[i].state = r->interrupt ? PROBE_STATE_INTERRUPTED : PROBE_STATE_CANCELLED;
		sched_save_probe(r, i);
	}
	if (r->state == RUN_QUEUED)
		s->n_queued--;
	else
		s->n_running--;
	sched_decide(r);
	if (r->started_at > 0 && r->finished_at >= r->started_at) /* for GET /metrics */
		metrics_run_observe(r->verdict, (double)(r->finished_at - r->started_at) / 1000.0);
	if (!r->unsaved && !r->lost && (e = write_judgement(r)) < 0)
		sched_store_failed(r, e);
	sched_save_state(r);
	if (r->unsaved) {
		s->n_unstored++; /* ends once stored: sched_flush() */
		return;
	}
	end_run(r);
}

/* Writes all of run r again, from memory: every probe (with a load
 * probe's measurements), the judgement and the run's row last, so a crash
 * half way leaves the run unfinished in the database (interrupted at the
 * next start), never finished with parts missing. Every write replaces. */
static int resync_run(struct run *r)
{
	int e = 0;

	for (size_t i = 0; e == 0 && i < r->n_probes; i++) {
		if (i < r->cur)
			e = write_measurements(r, i);
		if (e == 0)
			e = write_probe(r, i);
	}
	if (e == 0 && r->decided)
		e = write_judgement(r);
	if (e == 0)
		e = write_state(r);
	return e;
}

/* Writes every run the store lags behind on, announcing what landed.
 * Returns the number still unsaved. */
static int sched_flush(struct sched *s)
{
	struct run *r, *next;
	int e;

	for (r = s->head; r; r = next) {
		next = r->next;
		if (!r->unsaved)
			continue;
		e = resync_run(r);
		if (e < 0) {
			sched_store_failed(r, e);
			continue;
		}
		r->unsaved = false;
		s->n_unsaved--;
		if (!r->decided) {
			sched_notify(r, false);
			continue;
		}
		s->n_unstored--;
		end_run(r);
	}
	return s->n_unsaved;
}

static void sched_flush_and_pump(uv_timer_t *t)
{
	struct sched *s = t->data;
	int before = s->n_unsaved;

	s->backoff_ms = s->backoff_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : s->backoff_ms * 2;
	if (before > 0 && sched_flush(s) == 0) {
		s->backoff_ms = RETRY_FIRST_MS;
		sched_report(
		        s, 0,
		        "stored the pending writes of %d run%s: the database takes writes again",
		        before, before == 1 ? "" : "s");
	}
	sched_pump(s);
}

void sched_store_retry(struct sched *s)
{
	if (s->n_unsaved == 0 || !s->retry_init || s->retry_closed)
		return;
	s->backoff_ms = RETRY_FIRST_MS / 2; /* doubled back to the first step */
	uv_timer_stop(&s->retry);
	uv_timer_start(&s->retry, sched_flush_and_pump, 0, 0);
}

/* Stopping: runs whose end the store still refuses keep their last
 * stored state (a restart marks them interrupted); waiting longer would
 * hold the process up for as long as the disk stays full. */
static void abandon_unstored(struct sched *s)
{
	struct run *r, *next;

	for (r = s->head; r; r = next) {
		next = r->next;
		if (!r->unsaved || !r->decided)
			continue;
		sched_report(
		        s, s->store_err,
		        "Failed to store 'run %lld': %s; readyd is stopping, so the run keeps its "
		        "last stored state and reads as interrupted after a restart",
		        (long long)r->id, s->err_cause);
		r->unsaved = false;
		s->n_unsaved--;
		s->n_unstored--;
		end_run(r);
	}
}

/* Whether every run left has ended and waits only for the store. */
static bool only_unstored(const struct sched *s)
{
	for (const struct run *r = s->head; r; r = r->next)
		if (!r->decided || !r->unsaved)
			return false;
	return s->head != NULL;
}

/* One pass of the run's state machine; see run_advance. */
static void sched_step(struct run *r)
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
			sched_finalize(r);
			return;
		}
		p = &r->probes[r->cur];
		if (p->state == PROBE_STATE_QUEUED) {
			if (r->cancel_requested) {
				if (r->n_background > 0)
					return; /* cancelled; waits for them */
				sched_finalize(r);
				return;
			}
			if (!start_probe(r))
				return; /* waits for a load slot */
		}
		if (p->state == PROBE_STATE_RUNNING && p->ops->stop && !p->background) {
			/* Runs beside the later probes, bounded by the run's deadline. */
			uv_timer_stop(&r->probe_timer);
			p->background = true;
			r->n_background++;
			r->cur++;
			sched_notify(r, false);
			continue;
		}
		if (p->state == PROBE_STATE_RUNNING)
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
		sched_step(r);
	} while (r->again && !r->finalized);
	r->advancing = false;
	sched_pump(r->s);
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
	if (!sched_run_move(r, RUN_RUNNING))
		r->broken = true;
	r->started_at = rd_now_ms();
	sched_save_state(r);
	uv_timer_start(&r->deadline, on_run_deadline, (uint64_t)r->spec->timeout_ms, 0);
}

/* Starts queued runs while there is room, and lets runs that wait for a
 * load slot try again once one is free. Runs start in submission order.
 * A run still waiting is left alone: advancing it would only pump again,
 * and a pump that re-arms itself with nothing changed spins the loop. */
static void sched_pump_once(struct sched *s)
{
	struct run *r, *next;

	for (r = s->head; r; r = next) {
		next = r->next;
		if (r->finalized || r->advancing)
			continue;
		if (r->lost && !r->decided && !r->cancel_requested) {
			sched_cancel(s, r->id); /* a write was fenced off: fence_refused */
			continue;
		}
		if (r->state == RUN_QUEUED) {
			/* No new run while the store refuses writes. */
			if (s->n_running >= s->cfg.max_concurrent_runs || s->shutdown_cb ||
			    s->n_unsaved > 0)
				continue;
			start_run(r);
			run_advance(r);
		} else if (r->cur < r->n_probes && r->probes[r->cur].state == PROBE_STATE_QUEUED) {
			/* A cancelled run is advanced by sched_cancel and by its
			 * background probes' done callbacks, not from here. */
			if (r->cancel_requested || (r->waiting_load && !sched_load_slot_free(s)) ||
			    (r->waiting_load && r->load_retry_at > rd_now_ms()))
				continue;
			run_advance(r);
		}
	}
}

/* Guarded like run_advance: finishing runs pump, and pumping finishes runs. */
void sched_pump(struct sched *s)
{
	if (s->pumping) {
		s->pump_again = true;
		return;
	}
	s->pumping = true;
	do {
		s->pump_again = false;
		sched_pump_once(s);
	} while (s->pump_again);
	s->pumping = false;
	if (s->shutdown_cb && s->abandon && only_unstored(s)) {
		sched_flush(s); /* a last try */
		abandon_unstored(s);
	}
	if (s->shutdown_cb && !s->head) {
		void (*cb)(void *) = s->shutdown_cb;

		s->shutdown_cb = NULL;
		if (s->retry_init && !s->retry_closed)
			uv_close((uv_handle_t *)&s->retry, NULL);
		s->retry_closed = true;
		sched_cluster_close(s);
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
	r->load_slot = -1;
	for (size_t i = 0; i < r->n_probes; i++) {
		struct probe *p = &r->probes[i];

		p->loop = s->loop;
		p->http = s->http;
		p->inbox = s->inbox;
		p->spec = spec;
		p->sp = &spec->probes[i];
		p->percent = -1;
		p->requests = -1;
		p->live_rps = -1;
		p->live_p99_ms = NAN;
		p->live_errors = -1;
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

/* The spec as stored (redacted, serialized): also what a retry with the
 * same Idempotency-Key must match. New string, or NULL. */
static char *sched_spec_text(const struct spec *spec)
{
	json_t *redacted = spec_to_json_redacted(spec);
	char *text = redacted ? rd_json_dumps(redacted, JSON_COMPACT) : NULL;

	json_decref(redacted);
	return text;
}

/* The spec to execute, credentials included, for the node that claims
 * the run (cluster mode only: a run this node queues itself executes
 * from memory). New string, or NULL. */
static char *sched_exec_text(const struct sched *s, const struct spec *spec)
{
	return sched_cluster_on(s) ? rd_json_dumps(spec->doc, JSON_COMPACT) : NULL;
}

static int sched_store_new_run(struct sched *s, const struct spec *spec, const char *text,
                               const char *submitted_by, const char *idempotency_key,
                               int64_t *ret_id, bool *ret_existing)
{
	const char **names = calloc(spec->n_probes + 1, sizeof(*names));
	const char **types = calloc(spec->n_probes + 1, sizeof(*types));
	char *exec = sched_exec_text(s, spec);
	int e = -ENOMEM;

	if (names && types && (exec || !sched_cluster_on(s))) {
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
		        .spec_version = spec->stored_version,
		        .node = s->cl.node,
		        .exec_spec_json = exec,
		};

		for (size_t i = 0; i < spec->n_probes; i++) {
			names[i] = spec->probes[i].name;
			types[i] = probe_type_to_string(spec->probes[i].type);
		}
		e = store_run_create(s->store, &rn, ret_id, ret_existing);
	}
	free(names);
	free(types);
	free(exec);
	return e;
}

int sched_enqueue(struct sched *s, int64_t id, struct spec *spec, struct run **ret_run)
{
	struct run *r;
	int e = new_run(s, spec, &r);

	if (e < 0)
		return e;
	r->id = id;
	r->state = RUN_QUEUED;
	r->prev = s->tail;
	if (s->tail)
		s->tail->next = r;
	else
		s->head = r;
	s->tail = r;
	s->n_queued++;
	*ret_run = r;
	return 0;
}

/* Stores the run, or finds it again by its idempotency key. */
static int sched_store_submit(struct sched *s, const struct spec *spec, const char *submitted_by,
                              const char *idempotency_key, int64_t *ret_id, bool *ret_existing)
{
	char *text = sched_spec_text(spec);
	int e;

	if (!text)
		return -ENOMEM;
	/* A retry of a submission that was accepted is answered even when the
	 * queue is full now: the pipeline's run exists. */
	e = idempotency_key
	            ? store_run_find_by_key(s->store, spec->service, idempotency_key, text, ret_id)
	            : -ENOENT;
	if (e == 0) {
		*ret_existing = true;
	} else if (e == -ENOENT && s->n_unsaved > 0) {
		e = s->store_err;
	} else if (e == -ENOENT && s->n_queued >= s->cfg.max_queued) {
		e = -EAGAIN;
	} else if (e == -ENOENT) {
		e = sched_store_new_run(s, spec, text, submitted_by, idempotency_key, ret_id,
		                        ret_existing);
	}
	free(text);
	return e;
}

/* In cluster mode the run waits in the shared queue for whichever node
 * claims it first (this one at once when it has room). */
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
	e = sched_store_submit(s, spec, submitted_by, idempotency_key, &id, &existing);
	if (e < 0 || existing || sched_cluster_on(s)) {
		spec_free(spec);
		if (e == 0) {
			*ret_id = id;
			*ret_existing = existing;
			if (!existing)
				sched_cluster_kick(s);
		}
		return e;
	}
	e = sched_enqueue(s, id, spec, &r);
	if (e < 0) {
		spec_free(spec);
		store_run_update(s->store, id, run_state_to_string(RUN_ERROR),
		                 gate_verdict_to_string(VERDICT_ERROR), 0, rd_now_ms(),
		                 "out of memory while queueing the run");
		return e;
	}
	*ret_id = id;
	*ret_existing = false;
	sched_pump(s);
	return 0;
}

int sched_cancel(struct sched *s, int64_t id)
{
	struct run *r = sched_find_run(s, id);
	struct probe *p;

	if (!r && sched_cluster_on(s))
		return sched_cluster_cancel(s, id);
	if (!r)
		return -ENOENT;
	if (r->decided)
		return -EALREADY; /* ended; its end waits for the store */
	if (r->cancel_requested)
		return 0;
	r->cancel_requested = true;
	if (r->n_background > 0)
		stop_background(r, true);
	p = r->cur < r->n_probes ? &r->probes[r->cur] : NULL;
	if (p && p->state == PROBE_STATE_RUNNING && p->ops)
		p->ops->cancel(p); /* its done callback finalizes the run */
	else
		run_advance(r);
	return 0;
}

/* A load probe's live reading, once it has one: rps of its last complete
 * second, p99_ms of its last seconds (null without a successful answer)
 * and errors so far. The web console and readyctl both show these. */
static void live_progress(json_t *cur, const struct probe *p)
{
	if (!cur || p->live_errors < 0 || p->live_rps < 0)
		return;
	json_object_set_new(cur, "rps", rd_json_number(p->live_rps));
	json_object_set_new(cur, "p99_ms", rd_json_number(p->live_p99_ms));
	json_object_set_new(cur, "errors", json_integer(p->live_errors));
}

int sched_progress(struct sched *s, int64_t id, json_t **ret_progress)
{
	struct run *r = sched_find_run(s, id);
	json_t *o, *cur = json_null();
	const struct probe *p;

	if (!r)
		return -ENOENT;
	p = r->cur < r->n_probes ? &r->probes[r->cur] : NULL;
	if (p && p->state == PROBE_STATE_RUNNING) {
		cur = json_pack("{s:s, s:o, s:o}", "probe", p->sp->name, "percent",
		                p->percent >= 0 ? json_integer(p->percent) : json_null(),
		                "requests",
		                p->requests >= 0 ? json_integer(p->requests) : json_null());
		live_progress(cur, p);
	}
	if (r->waiting_load && p && r->load_retry_at > 0)
		cur = json_pack("{s:s, s:s+}", "probe", p->sp->name, "waiting",
		                "waiting for a load slot: other nodes hold every slot of ",
		                r->load_host[0] ? r->load_host : "its target");
	else if (r->waiting_load && p)
		cur = json_pack("{s:s, s:s}", "probe", p->sp->name, "waiting",
		                "waiting for a load slot");
	if (r->decided) {
		json_decref(cur);
		cur = json_pack("{s:s}", "waiting",
		                "the run has ended; its result waits for the database to take it");
	}
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
	s->abandon = true;
	for (r = s->head; r; r = next) {
		next = r->next;
		r->interrupt = interrupt && !sched_cluster_release(s, r);
		sched_cancel(s, r->id);
	}
	sched_pump(s);
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
		r->interrupt = !sched_cluster_release(s, r);
		sched_cancel(s, r->id);
	}
	sched_pump(s);
}
