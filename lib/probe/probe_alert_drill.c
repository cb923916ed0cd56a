/* probe_alert_drill: the `alert-drill` probe. Before touching the target it
 * checks that the drill can measure anything: Prometheus has an alerting
 * rule named `alert` (GET /api/v1/rules; a typo gets the nearest name),
 * that rule has been evaluated at least once (waiting for its group's
 * first evaluation, bounded), and no alert of that name whose labels match
 * `labels` is pending or firing yet (GET /api/v1/alerts). An alert that is
 * already active would "fire" at once and time nothing, so that is an
 * error, as is any of the others: readyd could not measure.
 *
 * Then it sends the `trigger` request (a fault injection), polls
 * /api/v1/alerts every `poll_interval` until a matching alert is firing or
 * `within` has passed, and publishes seconds_to_fire, measured from the
 * trigger's answer. Not firing in time is the service failing the drill
 * (failed). Then it always sends `clear` once the trigger was attempted --
 * also after an error, a failure or a cancel (bounded by a short timeout),
 * because a drill must not leave the fault behind -- and with
 * `wait_resolve` polls until no matching alert is left:
 * seconds_to_resolve, measured from the clear's answer.
 *
 * With `alertmanager` the drill follows the alert past Prometheus: once
 * firing it must appear in that Alertmanager's /api/v2/alerts as active
 * (not suppressed by a silence or an inhibition) and routed to
 * `receiver`; with `notify` it must then be delivered to readyd's own
 * webhook receiver (lib/prom/aminbox.h). Each stage publishes its time
 * from the trigger, and the drill fails naming the stage where the alert
 * stopped. A later stage's evidence is evidence of the earlier ones: a
 * notification that arrived before a poll saw the alert firing dates the
 * firing too, so seconds_to_fire <= seconds_to_alertmanager <=
 * seconds_to_notify always holds.
 *
 * With `traffic` a rate-mode run of the load engine (lib/loadgen) sends
 * the target's request from the start of the drill to its end, so alerts
 * on the service's own rates can fire; its figures are published beside
 * the drill's, and the probe takes the daemon's load slot.
 *
 * Phases run one at a time on the loop; the verdict is decided when it is
 * known and announced only after clear, the traffic and the timer are
 * done.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/loadgen/loadgen.h"
#include "lib/probe/probe.h"
#include "lib/prom/amapi.h"
#include "lib/prom/aminbox.h"
#include "lib/prom/promapi.h"
#include "lib/util/util.h"

#define DRILL_HOOK_TIMEOUT_MS   10000
#define DRILL_CANCEL_TIMEOUT_MS 5000 /* clear after a cancel must be quick */
/* A group evaluates within one interval of its start; this covers the
 * evaluation itself and the poll that sees it. */
#define DRILL_EVAL_MARGIN_MS 5000
/* Kept free of the pre-check's wait at the end of the probe's deadline:
 * the trigger, the clear and a last poll. */
#define DRILL_RESERVE_MS 15000
/* Default for the way from firing to Alertmanager and the receiver:
 * Alertmanager's own default group_wait is 30 s. */
#define DRILL_NOTIFY_WITHIN_MS (60 * 1000)
/* The inbox is local: checked often, so the drill ends soon after the
 * notification (its time is its arrival, not the check). */
#define DRILL_INBOX_TICK_MS 100
/* Notifications and Alertmanager alerts that started this long before the
 * trigger belong to an earlier episode of the alert (clocks of
 * Prometheus and readyd may differ a little). */
#define DRILL_CLOCK_SLACK_MS 10000

enum drill_phase {
	PH_RULES = 0, /* is the alert loaded and evaluated? */
	PH_BEFORE,    /* is a matching alert already active? */
	PH_AM_BEFORE, /* can Alertmanager be asked? */
	PH_TRIGGER,
	PH_WAIT_FIRE,
	PH_WAIT_AM,     /* is it active in Alertmanager, routed to the receiver? */
	PH_WAIT_NOTIFY, /* has it reached readyd's webhook? */
	PH_CLEAR,
	PH_WAIT_RESOLVE,
	PH_CLOSING,
};

struct drill {
	struct probe *p;
	uv_timer_t timer;
	struct http_request *req;  /* trigger or clear in flight */
	struct promapi_call *call; /* a rules or alerts poll in flight */
	enum drill_phase phase;
	uint64_t t_start, t_trigger, t_clear; /* monotonic ms */
	/* When each stage was first known reached (monotonic ms; 0: not yet). */
	uint64_t t_fire, t_am, t_notify;
	int64_t trigger_wall_ms;
	/* The receivers a notification may come from: `receiver`, else those
	 * Alertmanager routes the alert to (another Alertmanager's deliveries
	 * of the same alert do not count). Owned. */
	json_t *notify_receivers;
	struct loadgen *traffic; /* NULL: no traffic, or it could not start */
	bool traffic_done;
	int64_t fire_limit_ms;    /* `within`, or what the deadline leaves */
	enum probe_state outcome; /* PROBE_STATE_RUNNING: not decided yet */
	char *why;
	bool triggered, fired, cancelled;
	const char *last_state; /* static string: "inactive", "pending", "firing" */
	char others[256];       /* an excluded series that was firing, for the reason */
	json_int_t polls;
};

static uint64_t mono_ms(void)
{
	return uv_hrtime() / 1000000;
}

static double seconds_since(uint64_t t)
{
	return (double)(mono_ms() - t) / 1000.0;
}

/* Records the verdict; a later decision replaces an earlier one (a failed
 * clear turns a pass into an error, a cancel wins over everything). */
/* Messages name URLs: their credentials never get into one. */
static void redact_why(char **why)
{
	char *r = rd_url_redact_dup(*why);

	free(*why);
	*why = r;
}

__attribute__((format(printf, 3, 4))) static void decide(struct drill *d, enum probe_state s,
                                                         const char *fmt, ...)
{
	va_list ap;

	d->outcome = s;
	free(d->why);
	d->why = NULL;
	if (fmt) {
		va_start(ap, fmt);
		if (vasprintf(&d->why, fmt, ap) < 0)
			d->why = NULL;
		va_end(ap);
		redact_why(&d->why);
	}
}

static void on_timer_closed(uv_handle_t *h)
{
	struct drill *d = h->data;
	struct probe *p = d->p;

	json_object_set_new(p->details, "polls", json_integer(d->polls));
	json_object_set_new(p->details, "last_state", json_string(d->last_state));
	/* probe_finish() may free d (ops->free): nothing of d after it. */
	if (d->why)
		probe_finish(p, d->outcome, "%s", d->why);
	else
		probe_finish(p, d->outcome, NULL);
}

static void close_timer(struct drill *d)
{
	uv_close((uv_handle_t *)&d->timer, on_timer_closed);
}

/* Ends the drill: the traffic first (its figures are part of the
 * result), then the timer, then probe_finish(). */
static void finish(struct drill *d)
{
	d->phase = PH_CLOSING;
	uv_timer_stop(&d->timer);
	if (d->traffic && !d->traffic_done) {
		if (d->cancelled)
			loadgen_cancel(d->traffic);
		else
			loadgen_end_early(d->traffic);
		return; /* on_traffic_done() closes the timer */
	}
	close_timer(d);
}

/* --- traffic: rate-mode load against the target for the whole drill --- */

/* The traffic's figures, under the names a gate reads (docs/spec.md). */
static void publish_traffic_metrics(struct drill *d, const struct loadgen_result *r)
{
	static const char *const names[][2] = {
	        {"requests", "traffic_requests"},     {"errors", "traffic_errors"},
	        {"error_rate", "traffic_error_rate"}, {"requests_rps", "traffic_requests_rps"},
	        {"p95_ms", "traffic_p95_ms"},
	};
	json_t *m = NULL, *t;

	if (loadgen_result_metrics(r, &m) < 0)
		return;
	for (size_t i = 0; i < RD_ARRAY_SIZE(names); i++) {
		json_t *v = json_object_get(m, names[i][0]);

		if (json_is_number(v))
			probe_set_metric(d->p, names[i][1], json_number_value(v));
	}
	json_decref(m);
	t = json_pack("{s:f, s:I, s:f, s:b}", "rate", d->p->sp->traffic.rate, "connections",
	              (json_int_t)d->p->sp->traffic.connections, "seconds", r->elapsed_s,
	              "rate_kept", r->rate_kept);
	if (t && r->connect_error[0])
		json_object_set_new(t, "connect_error", json_string(r->connect_error));
	if (t)
		json_object_set_new(d->p->details, "traffic", t);
}

/* A drill whose traffic never reached the target measured nothing of
 * the alerts that need it: an error, whatever the alert did. */
static void judge_traffic(struct drill *d, const struct loadgen_result *r)
{
	const char *url = d->p->spec->target.url;
	char *before;

	if (d->outcome != PROBE_STATE_PASSED && d->outcome != PROBE_STATE_FAILED)
		return;
	if (r->requests > 0 && r->errors_by[LOADGEN_ERR_CONNECT] < r->requests)
		return;
	before = d->why ? strdup(d->why) : NULL;
	if (r->requests == 0)
		decide(d, PROBE_STATE_ERRORED, "the traffic sent no request to %s%s%s", url,
		       before ? "; " : "", before ? before : "");
	else
		decide(d, PROBE_STATE_ERRORED,
		       "the traffic could not connect to %s%s%s, so alerts on the service's "
		       "rates had nothing to measure%s%s",
		       url, r->connect_error[0] ? ": " : "", r->connect_error, before ? "; " : "",
		       before ? before : "");
	free(before);
}

static void on_traffic_done(struct loadgen *lg, void *userdata)
{
	struct drill *d = userdata;
	const struct loadgen_result *r = loadgen_result(lg);

	d->traffic_done = true;
	publish_traffic_metrics(d, r);
	if (!r->cancelled)
		judge_traffic(d, r);
	if (d->phase == PH_CLOSING)
		close_timer(d);
}

/* The target's URL with its path (and query) replaced by path. */
static char *traffic_url(const char *target, const char *path)
{
	const char *host = strstr(target, "://");
	char *url = NULL;
	int n;

	if (!path || !host)
		return strdup(target);
	n = (int)((size_t)(host + 3 - target) + strcspn(host + 3, "/?#"));
	return asprintf(&url, "%.*s%s", n, target, path) < 0 ? NULL : url;
}

static int64_t drill_deadline(const struct spec *s, const struct spec_probe *sp);

/* Runs until the drill ends it (loadgen_end_early), at the latest at the
 * probe's deadline. */
static int start_traffic(struct drill *d, char *err, size_t len)
{
	const struct spec *s = d->p->spec;
	const struct spec_probe *sp = d->p->sp;
	char *url = traffic_url(s->target.url, sp->traffic.path);
	struct loadgen_config c = {
	        .url = url,
	        .method = s->target.method,
	        .headers = s->target.headers,
	        .n_headers = s->target.n_headers,
	        .body = s->target.body,
	        .body_len = s->target.body_len,
	        .mode = LOAD_MODE_RATE,
	        .rate = sp->traffic.rate,
	        .connections = sp->traffic.connections > 0 ? (int)sp->traffic.connections : 8,
	        .threads = 1,
	        .duration_ms = d->p->deadline_ms > 0 ? d->p->deadline_ms : drill_deadline(s, sp),
	        .timeout_ms = s->target.timeout_ms,
	        .insecure = sp->insecure,
	};
	int r;

	if (!url)
		return -ENOMEM;
	http_client_get_policy(d->p->http, &c.policy, &c.policy_data); /* allowed_targets */
	r = loadgen_new(&c, d->p->loop, on_traffic_done, d, &d->traffic, err, len);
	free(url);
	if (r == 0 && (r = loadgen_start(d->traffic)) < 0) {
		loadgen_free(d->traffic);
		d->traffic = NULL;
	}
	return r;
}

static int send_hook(struct drill *d, const struct spec_request *rq, http_done_cb cb)
{
	const struct spec_probe *sp = d->p->sp;
	int64_t t = rq->timeout_ms > 0 ? rq->timeout_ms : DRILL_HOOK_TIMEOUT_MS;
	struct http_options opt = {
	        .method = rq->method,
	        .url = rq->url,
	        .headers = rq->headers,
	        .n_headers = rq->n_headers,
	        .body = rq->body,
	        .body_len = rq->body_len,
	        .timeout_ms =
	                d->cancelled && t > DRILL_CANCEL_TIMEOUT_MS ? DRILL_CANCEL_TIMEOUT_MS : t,
	        .insecure = sp->insecure,
	        .ca_file = sp->ca_file,
	        .max_body = 64 * 1024,
	};

	return http_request_start(d->p->http, &opt, cb, d, &d->req);
}

/* Why a hook's answer is not a success, or NULL. */
static const char *hook_failed(const struct http_response *r, char *buf, size_t len)
{
	if (r->err != 0)
		return r->error ? r->error : strerror(-r->err);
	if (r->status < 200 || r->status > 299) {
		snprintf(buf, len, "answered HTTP %ld", r->status);
		return buf;
	}
	return NULL;
}

static void poll_alerts(struct drill *d);
static void poll_rules(struct drill *d);
static void send_trigger(struct drill *d);
static void poll_am(struct drill *d);
static void check_notify(struct drill *d);
static void start_resolve_wait(struct drill *d);

static void on_clear(void *userdata, const struct http_response *r)
{
	struct drill *d = userdata;
	const struct spec_request *rq = d->p->sp->clear;
	char buf[64];
	const char *why = hook_failed(r, buf, sizeof(buf));

	d->req = NULL;
	json_object_set_new(d->p->details, "clear_status", json_integer(r->status));
	if (why) {
		/* Keeps what was decided before (it is freed by decide()). */
		char *before = d->why ? strdup(d->why) : NULL;

		if (d->outcome != PROBE_STATE_CANCELLED)
			decide(d, PROBE_STATE_ERRORED,
			       "%s%sclear %s %s failed: %s; the fault may still be active",
			       before ? before : "", before ? "; " : "",
			       rq->method ? rq->method : "GET", rq->url, why);
		free(before);
		finish(d);
		return;
	}
	d->t_clear = mono_ms();
	start_resolve_wait(d);
}

/* Removes the fault once the trigger was attempted; before that there is
 * nothing to remove, and clear would undo a fault someone else set. */
static void do_clear(struct drill *d)
{
	const struct spec_request *rq = d->p->sp->clear;
	int r;

	uv_timer_stop(&d->timer);
	if (!d->triggered) {
		finish(d);
		return;
	}
	if (!rq) {
		d->t_clear = mono_ms();
		start_resolve_wait(d);
		return;
	}
	d->phase = PH_CLEAR;
	r = send_hook(d, rq, on_clear);
	if (r < 0) {
		decide(d, d->cancelled ? PROBE_STATE_CANCELLED : PROBE_STATE_ERRORED,
		       "cannot send clear %s: %s; the fault may still be active", rq->url,
		       strerror(-r));
		finish(d);
	}
}

static void start_resolve_wait(struct drill *d)
{
	if (d->p->sp->wait_resolve_ms > 0 && d->fired && !d->cancelled &&
	    d->outcome != PROBE_STATE_ERRORED) {
		d->phase = PH_WAIT_RESOLVE;
		poll_alerts(d);
		return;
	}
	finish(d);
}

static void on_tick(uv_timer_t *t)
{
	struct drill *d = t->data;

	if (d->phase == PH_RULES)
		poll_rules(d);
	else if (d->phase == PH_WAIT_AM)
		poll_am(d);
	else if (d->phase == PH_WAIT_NOTIFY)
		check_notify(d);
	else
		poll_alerts(d);
}

/* Polls again after poll_interval, but never past the phase's limit. */
static void schedule(struct drill *d, int64_t limit_ms, int64_t elapsed_ms)
{
	int64_t delay = d->p->sp->poll_interval_ms > 0 ? d->p->sp->poll_interval_ms : 1000;

	if (limit_ms > 0 && limit_ms - elapsed_ms < delay)
		delay = limit_ms - elapsed_ms;
	uv_timer_start(&d->timer, on_tick, (uint64_t)(delay > 0 ? delay : 0), 0);
}

/* How long after firing the alert has to reach Alertmanager and the
 * receiver; 0 without alertmanager. */
static int64_t notify_limit(const struct spec_probe *sp)
{
	if (!sp->alertmanager)
		return 0;
	return sp->notify_within_ms > 0 ? sp->notify_within_ms : DRILL_NOTIFY_WITHIN_MS;
}

/* Without `within`, the alert has until the probe's deadline, less what
 * clear and wait_resolve need: not firing by then is the service failing
 * the drill, which the probe must say itself before the deadline turns it
 * into "did not finish". */
static int64_t fire_limit(const struct drill *d)
{
	const struct probe *p = d->p;
	int64_t left;

	if (p->sp->within_ms > 0 || p->deadline_ms <= 0)
		return p->sp->within_ms;
	left = p->deadline_ms - (int64_t)(d->t_trigger - d->t_start) - p->sp->wait_resolve_ms -
	       notify_limit(p->sp) - DRILL_RESERVE_MS;
	return left >= 1000 ? left / 1000 * 1000 : 1000; /* whole seconds read better */
}

static void on_trigger(void *userdata, const struct http_response *r)
{
	struct drill *d = userdata;
	const struct spec_request *rq = d->p->sp->trigger;
	char buf[64];
	const char *why = hook_failed(r, buf, sizeof(buf));

	d->req = NULL;
	json_object_set_new(d->p->details, "trigger_status", json_integer(r->status));
	if (why) {
		decide(d, PROBE_STATE_ERRORED, "trigger %s %s failed: %s",
		       rq->method ? rq->method : "GET", rq->url, why);
		do_clear(d); /* it may have been half applied */
		return;
	}
	d->t_trigger = mono_ms();
	d->trigger_wall_ms = rd_now_ms();
	d->fire_limit_ms = fire_limit(d);
	d->phase = PH_WAIT_FIRE;
	poll_alerts(d);
}

static void send_trigger(struct drill *d)
{
	int r;

	d->phase = PH_TRIGGER;
	d->triggered = true;
	r = send_hook(d, d->p->sp->trigger, on_trigger);
	if (r < 0) {
		decide(d, PROBE_STATE_ERRORED, "cannot send trigger %s: %s", d->p->sp->trigger->url,
		       strerror(-r));
		do_clear(d);
	}
}

/* --- before the trigger: the alert exists, was evaluated, is inactive --- */

/* How long the pre-check may wait for a first evaluation: the group's
 * interval and a margin, but never into the time the drill itself needs
 * before the probe's deadline. */
static int64_t eval_wait_limit(const struct drill *d, int64_t interval_ms)
{
	const struct probe *p = d->p;
	int64_t limit = interval_ms + DRILL_EVAL_MARGIN_MS, room;

	if (p->deadline_ms <= 0)
		return limit;
	room = p->deadline_ms - p->sp->within_ms - p->sp->wait_resolve_ms - notify_limit(p->sp) -
	       DRILL_RESERVE_MS;
	return room < limit ? (room > 0 ? room : 0) : limit;
}

static void refuse_unknown(struct drill *d, const char *message)
{
	const struct spec_probe *sp = d->p->sp;

	decide(d, PROBE_STATE_ERRORED, "%s%s (while checking that alert %s is loaded)",
	       message ? message : sp->prometheus,
	       message ? "" : "/api/v1/rules: the answer has no groups/rules lists", sp->alert);
	finish(d);
}

static void refuse_missing(struct drill *d, const struct promapi_alert_rule *ar)
{
	const struct spec_probe *sp = d->p->sp;

	decide(d, PROBE_STATE_ERRORED,
	       "no alerting rule named %s is loaded in Prometheus at %s%s%s%s; nothing was "
	       "triggered",
	       sp->alert, sp->prometheus, ar->closest ? " (did you mean " : "",
	       ar->closest ? ar->closest : "", ar->closest ? "?)" : "");
	finish(d);
}

/* The rule exists; waits for its first evaluation, then asks for alerts. */
static void rules_known(struct drill *d, const struct promapi_alert_rule *ar)
{
	const struct spec_probe *sp = d->p->sp;
	int64_t elapsed = (int64_t)(mono_ms() - d->t_start);
	int64_t limit = eval_wait_limit(d, ar->unevaluated_interval_ms);
	char iv[32];

	if (ar->unevaluated == 0) {
		d->phase = PH_BEFORE;
		poll_alerts(d);
		return;
	}
	if (elapsed < limit) {
		schedule(d, limit, elapsed);
		return;
	}
	rd_format_duration(ar->unevaluated_interval_ms, iv, sizeof(iv));
	decide(d, PROBE_STATE_ERRORED,
	       "alert %s (group %s, evaluated every %s) has not been evaluated yet after %.1f s%s, "
	       "so its state before the trigger is unknown and the drill cannot measure it; "
	       "nothing was triggered",
	       sp->alert, ar->group ? ar->group : "?", iv, (double)elapsed / 1000.0,
	       limit < ar->unevaluated_interval_ms + DRILL_EVAL_MARGIN_MS
	               ? " (all the probe's deadline leaves for waiting; raise its timeout)"
	               : "");
	finish(d);
}

static void on_rules(void *userdata, int err, json_t *data, const char *message)
{
	struct drill *d = userdata;
	struct promapi_alert_rule ar;

	d->call = NULL;
	d->polls++;
	if (err < 0 || promapi_find_alert_rule(data, d->p->sp->alert, &ar) < 0) {
		refuse_unknown(d, message);
		return;
	}
	if (ar.rules == 0) {
		refuse_missing(d, &ar);
		return;
	}
	rules_known(d, &ar);
}

static void poll_rules(struct drill *d)
{
	int r = promapi_get(d->p->http, d->p->sp, "/api/v1/rules", NULL, 0, on_rules, d, &d->call);

	if (r < 0) {
		decide(d, PROBE_STATE_ERRORED, "cannot ask %s for rules: %s", d->p->sp->prometheus,
		       strerror(-r));
		finish(d);
	}
}

/* A matching alert is active before the fault: firing, it would be
 * "measured" at once; pending, its condition already holds without the
 * fault and its `for` started before the trigger, so the time to fire
 * would be too short. Either way there is nothing to measure. */
static void refuse_active(struct drill *d, const struct promapi_alert_state *st)
{
	const struct spec_probe *sp = d->p->sp;
	char labels[512];

	promapi_format_labels(st->labels, labels, sizeof(labels));
	json_object_set_new(d->p->details, "active_before", json_deep_copy(st->labels));
	decide(d, PROBE_STATE_ERRORED,
	       "%s is already %s%s%s%s; the drill cannot measure it (%zu matching series "
	       "active before the trigger; clear the fault or wait until it resolves%s); "
	       "nothing was triggered",
	       sp->alert, st->state, labels[0] ? " for " : "", labels,
	       strcmp(st->state, "pending") == 0 ? ": its condition holds without the fault" : "",
	       st->matching, sp->n_labels ? "" : ", or pick another series with labels");
	finish(d);
}

static void before_trigger(struct drill *d, const struct promapi_alert_state *st)
{
	json_object_set_new(d->p->details, "state_before", json_string(st->state));
	if (st->matching > 0) {
		refuse_active(d, st);
	} else if (d->p->sp->alertmanager) {
		d->phase = PH_AM_BEFORE; /* the drill could not follow the alert there */
		poll_am(d);
	} else {
		send_trigger(d);
	}
}

/* --- after the trigger --- */

/* Publishes the time of every stage reached; a later stage's evidence
 * dates the earlier ones too (see the top of this file). */
static void publish_times(struct drill *d)
{
	uint64_t tn = d->t_notify, ta = d->t_am, tf = d->t_fire;

	if (tn && ta > tn)
		ta = tn;
	if (ta && tf > ta)
		tf = ta;
	if (tn && tf > tn)
		tf = tn;
	if (tf)
		probe_set_metric(d->p, "seconds_to_fire", (double)(tf - d->t_trigger) / 1000.0);
	if (ta)
		probe_set_metric(d->p, "seconds_to_alertmanager",
		                 (double)(ta - d->t_trigger) / 1000.0);
	if (tn)
		probe_set_metric(d->p, "seconds_to_notify", (double)(tn - d->t_trigger) / 1000.0);
}

static void pass(struct drill *d)
{
	publish_times(d);
	decide(d, PROBE_STATE_PASSED, NULL);
	do_clear(d);
}

/* The alert stopped at stage (details.stage) for the reason given. */
__attribute__((format(printf, 3, 4))) static void stage_fail(struct drill *d, const char *stage,
                                                             const char *fmt, ...)
{
	va_list ap;
	char *why = NULL;

	va_start(ap, fmt);
	if (vasprintf(&why, fmt, ap) < 0)
		why = NULL;
	va_end(ap);
	json_object_set_new(d->p->details, "stage", json_string(stage));
	publish_times(d);
	decide(d, PROBE_STATE_FAILED, "%s", why ? why : stage);
	free(why);
	do_clear(d);
}

static void after_fire(struct drill *d)
{
	if (!d->p->sp->alertmanager) {
		pass(d);
		return;
	}
	d->phase = PH_WAIT_AM;
	poll_am(d);
}

/* Milliseconds since the alert was seen firing, and what it has left to
 * reach Alertmanager and the receiver. */
static int64_t since_fire(const struct drill *d)
{
	return (int64_t)(mono_ms() - d->t_fire);
}

static void am_details(struct drill *d, const struct amapi_alert_state *st)
{
	json_t *o = json_pack("{s:s}", "state", st->state);
	json_t *recv = json_array();
	size_t i;
	json_t *r;

	json_array_foreach (json_object_get(st->alert, "receivers"), i, r)
		json_array_append(recv, json_object_get(r, "name"));
	if (o && st->fingerprint)
		json_object_set_new(o, "fingerprint", json_string(st->fingerprint));
	/* When Prometheus says it fired, on Prometheus' clock. */
	if (o && json_is_string(json_object_get(st->alert, "startsAt")))
		json_object_set(o, "starts_at", json_object_get(st->alert, "startsAt"));
	if (o && st->alert)
		json_object_set_new(o, "receivers", recv);
	else
		json_decref(recv);
	if (o && json_array_size(st->silenced_by))
		json_object_set(o, "silenced_by", st->silenced_by);
	if (o && json_array_size(st->inhibited_by))
		json_object_set(o, "inhibited_by", st->inhibited_by);
	if (o)
		json_object_set_new(d->p->details, "alertmanager", o);
}

static void am_active(struct drill *d, const struct amapi_alert_state *st)
{
	const struct spec_probe *sp = d->p->sp;
	char recv[512];

	amapi_format_receivers(st->alert, recv, sizeof(recv));
	if (!recv[0]) {
		stage_fail(d, "route",
		           "no route: Alertmanager at %s has alert %s active but routes it to no "
		           "receiver, so nobody is notified",
		           sp->alertmanager, sp->alert);
		return;
	}
	if (sp->receiver && !amapi_routed_to(st->alert, sp->receiver)) {
		stage_fail(d, "route",
		           "not routed to receiver %s: Alertmanager at %s routes alert %s to %s; "
		           "the route's matchers must send it to %s",
		           sp->receiver, sp->alertmanager, sp->alert, recv, sp->receiver);
		return;
	}
	d->t_am = mono_ms();
	d->notify_receivers =
	        sp->receiver
	                ? json_pack("[s]", sp->receiver)
	                : json_deep_copy(json_object_get(
	                          json_object_get(d->p->details, "alertmanager"), "receivers"));
	if (!sp->notify) {
		pass(d);
		return;
	}
	d->phase = PH_WAIT_NOTIFY;
	check_notify(d);
}

/* Suppressed: by a silence or by an inhibiting alert. Neither pages. */
static bool am_suppressed(struct drill *d, const struct amapi_alert_state *st)
{
	const struct spec_probe *sp = d->p->sp;
	char ids[512];

	if (json_array_size(st->silenced_by)) {
		amapi_format_list(st->silenced_by, ids, sizeof(ids));
		stage_fail(d, "silenced",
		           "silenced: Alertmanager at %s suppresses alert %s (fired in Prometheus "
		           "%.1f s after the trigger) by silence %s; no notification is sent "
		           "while it lasts",
		           sp->alertmanager, sp->alert, (double)(d->t_fire - d->t_trigger) / 1000.0,
		           ids);
		return true;
	}
	if (json_array_size(st->inhibited_by)) {
		amapi_format_list(st->inhibited_by, ids, sizeof(ids));
		stage_fail(d, "inhibited",
		           "inhibited: Alertmanager at %s suppresses alert %s because alert(s) %s "
		           "inhibit it (inhibit_rules); no notification is sent",
		           sp->alertmanager, sp->alert, ids);
		return true;
	}
	return false; /* suppressed without saying by what yet: ask again */
}

static void am_waiting(struct drill *d, const struct amapi_alert_state *st)
{
	const struct spec_probe *sp = d->p->sp;
	int64_t elapsed = since_fire(d), limit = notify_limit(sp);
	char w[32];

	if (elapsed < limit) {
		schedule(d, limit, elapsed);
		return;
	}
	rd_format_duration(limit, w, sizeof(w));
	if (strcmp(st->state, "absent") == 0)
		stage_fail(d, "alertmanager",
		           "not in Alertmanager: alert %s fired in Prometheus but did not reach "
		           "Alertmanager at %s within %s (is Prometheus' alerting.alertmanagers "
		           "pointing at it?)",
		           sp->alert, sp->alertmanager, w);
	else
		stage_fail(d, "alertmanager",
		           "Alertmanager at %s holds alert %s but its state was still %s %s after "
		           "it fired",
		           sp->alertmanager, sp->alert, st->state, w);
}

static void on_am(void *userdata, int err, json_t *data, const char *message)
{
	struct drill *d = userdata;
	const struct spec_probe *sp = d->p->sp;
	struct amapi_alert_state st;

	d->call = NULL;
	d->polls++;
	if (err < 0 || amapi_alert_state(data, sp->alert, sp->labels, sp->n_labels,
	                                 d->trigger_wall_ms - DRILL_CLOCK_SLACK_MS, &st) < 0) {
		publish_times(d);
		decide(d, PROBE_STATE_ERRORED, "%s%s (alert %s%s)",
		       message ? message : sp->alertmanager,
		       message ? "" : "/api/v2/alerts: the answer is not a list of alerts",
		       sp->alert,
		       d->triggered ? " fired in Prometheus; readyd could not follow it into "
		                      "Alertmanager"
		                    : ": readyd could not follow it into Alertmanager; nothing was "
		                      "triggered");
		do_clear(d); /* only finishes before the trigger */
		return;
	}
	if (d->phase == PH_AM_BEFORE) {
		send_trigger(d);
		return;
	}
	am_details(d, &st);
	if (strcmp(st.state, "active") == 0)
		am_active(d, &st);
	else if (strcmp(st.state, "suppressed") != 0 || !am_suppressed(d, &st))
		am_waiting(d, &st);
}

static void poll_am(struct drill *d)
{
	const struct spec_probe *sp = d->p->sp;
	char filter[300];
	const char *params[] = {"filter", filter, NULL};
	int r;

	snprintf(filter, sizeof(filter), "alertname=\"%s\"", sp->alert);
	r = promapi_get_json(d->p->http, sp, sp->alertmanager, "/api/v2/alerts", params, 0, on_am,
	                     d, &d->call);
	if (r < 0) {
		publish_times(d);
		decide(d, PROBE_STATE_ERRORED, "cannot ask %s for alerts: %s", sp->alertmanager,
		       strerror(-r));
		do_clear(d);
	}
}

static void not_delivered(struct drill *d, const struct aminbox_query *q)
{
	const struct spec_probe *sp = d->p->sp;
	size_t elsewhere = d->p->inbox ? aminbox_count_elsewhere(d->p->inbox, q) : 0;
	json_t *recv = json_object_get(json_object_get(d->p->details, "alertmanager"), "receivers");
	char w[32], names[512] = "";

	amapi_format_list(recv, names, sizeof(names));
	rd_format_duration(notify_limit(sp), w, sizeof(w));
	stage_fail(d, "notify",
	           "not delivered: Alertmanager at %s had alert %s active for receiver %s, but "
	           "no notification of it reached readyd's webhook within %s after it fired "
	           "(is the receiver's webhook down or not readyd's "
	           "/v1/alertmanager/webhook with a notifier token? Alertmanager logs "
	           "\"Notify attempt failed\" then)%s",
	           sp->alertmanager, sp->alert, names[0] ? names : "?", w,
	           elsewhere ? "; it did arrive for another receiver" : "");
}

/* Looks for the notification in readyd's own inbox; its time is when it
 * arrived, whenever this check runs. */
static void check_notify(struct drill *d)
{
	const struct spec_probe *sp = d->p->sp;
	struct aminbox_query q = {
	        .alertname = sp->alert,
	        .labels = sp->labels,
	        .n_labels = sp->n_labels,
	        .receivers = d->notify_receivers,
	        .since_mono_ms = d->t_trigger,
	        .not_before_ms = d->trigger_wall_ms - DRILL_CLOCK_SLACK_MS,
	};
	struct aminbox_match m;
	int64_t elapsed = since_fire(d), limit = notify_limit(sp), delay;

	if (d->p->inbox && aminbox_find(d->p->inbox, &q, &m) == 0) {
		d->t_notify = m.mono_ms;
		json_object_set_new(d->p->details, "notification",
		                    json_pack("{s:I, s:s*, s:s*, s:s*}", "id", (json_int_t)m.id,
		                              "receiver", m.receiver, "fingerprint", m.fingerprint,
		                              "group_key", m.group_key));
		pass(d);
		return;
	}
	if (elapsed >= limit) {
		not_delivered(d, &q);
		return;
	}
	delay = limit - elapsed < DRILL_INBOX_TICK_MS ? limit - elapsed : DRILL_INBOX_TICK_MS;
	uv_timer_start(&d->timer, on_tick, (uint64_t)delay, 0);
}

static void waiting_fire(struct drill *d, const struct promapi_alert_state *st)
{
	const struct spec_probe *sp = d->p->sp;
	int64_t elapsed = (int64_t)(mono_ms() - d->t_trigger);
	char w[32];

	if (strcmp(st->state, "firing") == 0) {
		d->fired = true;
		d->t_fire = mono_ms();
		after_fire(d);
		return;
	}
	if (strcmp(st->state, "pending") == 0 && !json_object_get(d->p->details, "pending_after_s"))
		json_object_set_new(d->p->details, "pending_after_s",
		                    json_real(seconds_since(d->t_trigger)));
	if (st->other_labels && !d->others[0])
		promapi_format_labels(st->other_labels, d->others, sizeof(d->others));
	if (d->fire_limit_ms > 0 && elapsed >= d->fire_limit_ms) {
		rd_format_duration(d->fire_limit_ms, w, sizeof(w));
		json_object_set_new(d->p->details, "stage", json_string("fire"));
		decide(d, PROBE_STATE_FAILED,
		       "alert %s did not fire within %s%s (waited %.1f s after the trigger; its "
		       "state was %s)%s%s",
		       sp->alert, w,
		       sp->within_ms > 0 ? ""
		                         : " (what the probe's deadline leaves; no within set)",
		       (double)elapsed / 1000.0, st->state,
		       d->others[0] ? "; it was active for a series the labels exclude: " : "",
		       d->others);
		do_clear(d);
		return;
	}
	schedule(d, d->fire_limit_ms, elapsed);
}

static void waiting_resolve(struct drill *d, const struct promapi_alert_state *st)
{
	const struct spec_probe *sp = d->p->sp;
	int64_t elapsed = (int64_t)(mono_ms() - d->t_clear);
	char w[32];

	if (strcmp(st->state, "inactive") == 0) {
		probe_set_metric(d->p, "seconds_to_resolve", seconds_since(d->t_clear));
		finish(d);
		return;
	}
	if (elapsed >= sp->wait_resolve_ms) {
		rd_format_duration(sp->wait_resolve_ms, w, sizeof(w));
		decide(d, PROBE_STATE_FAILED,
		       "alert %s was still %s %.1f s after clear (wait_resolve %s)", sp->alert,
		       st->state, (double)elapsed / 1000.0, w);
		finish(d);
		return;
	}
	schedule(d, sp->wait_resolve_ms, elapsed);
}

static const char *phase_doing(enum drill_phase ph)
{
	switch (ph) {
	case PH_BEFORE:
		return "checking it is not active before the trigger";
	case PH_WAIT_FIRE:
		return "waiting for it to fire";
	default:
		return "waiting for it to resolve";
	}
}

static void alerts_failed(struct drill *d, const char *message)
{
	const struct spec_probe *sp = d->p->sp;

	decide(d, PROBE_STATE_ERRORED, "%s%s (alert %s, %s)", message ? message : sp->prometheus,
	       message ? "" : "/api/v1/alerts: the answer has no alerts list", sp->alert,
	       phase_doing(d->phase));
	if (d->phase == PH_WAIT_FIRE)
		do_clear(d);
	else
		finish(d);
}

static void on_alerts(void *userdata, int err, json_t *data, const char *message)
{
	struct drill *d = userdata;
	const struct spec_probe *sp = d->p->sp;
	struct promapi_alert_state st;

	d->call = NULL;
	d->polls++;
	if (err < 0 || promapi_alert_state(data, sp->alert, sp->labels, sp->n_labels, &st) < 0) {
		alerts_failed(d, message);
		return;
	}
	d->last_state = st.state;
	if (d->phase == PH_BEFORE)
		before_trigger(d, &st);
	else if (d->phase == PH_WAIT_FIRE)
		waiting_fire(d, &st);
	else
		waiting_resolve(d, &st);
}

static void poll_alerts(struct drill *d)
{
	int r = promapi_get(d->p->http, d->p->sp, "/api/v1/alerts", NULL, 0, on_alerts, d,
	                    &d->call);

	if (r < 0) {
		decide(d, PROBE_STATE_ERRORED, "cannot ask %s for alerts: %s", d->p->sp->prometheus,
		       strerror(-r));
		if (d->phase == PH_WAIT_FIRE)
			do_clear(d);
		else
			finish(d);
	}
}

/* The matchers as an object for details; NULL without any. */
static json_t *labels_json(const struct spec_probe *sp)
{
	json_t *o = sp->n_labels ? json_object() : NULL;

	for (size_t i = 0; o && i < sp->n_labels; i++)
		if (json_object_set_new(o, sp->labels[i].name, json_string(sp->labels[i].value)) <
		    0) {
			json_decref(o);
			return NULL;
		}
	return o;
}

static int drill_start(struct probe *p)
{
	struct drill *d;
	char err[256] = "";
	int r;

	if (!p->sp->trigger || !p->sp->alert)
		return -EINVAL;
	if (!p->details)
		p->details = json_pack("{s:s, s:o*}", "alert", p->sp->alert, "labels",
		                       labels_json(p->sp));
	d = p->details ? calloc(1, sizeof(*d)) : NULL;
	if (!d)
		return -ENOMEM;
	d->p = p;
	d->outcome = PROBE_STATE_RUNNING;
	d->last_state = "inactive";
	d->t_start = mono_ms();
	uv_timer_init(p->loop, &d->timer);
	d->timer.data = d;
	p->impl = d;
	d->phase = PH_RULES;
	if (p->sp->notify && !p->inbox) {
		decide(d, PROBE_STATE_ERRORED,
		       "notify: this readyd keeps no Alertmanager notifications to wait for");
		finish(d);
		return 0;
	}
	if (p->sp->traffic.rate > 0 && (r = start_traffic(d, err, sizeof(err))) < 0) {
		decide(d, PROBE_STATE_ERRORED, "cannot start the traffic: %s",
		       err[0] ? err : strerror(-r));
		finish(d);
		return 0;
	}
	poll_rules(d); /* on failure it finishes the probe itself */
	return 0;
}

static void drill_cancel(struct probe *p)
{
	struct drill *d = p->impl;

	if (!d) {
		probe_finish(p, PROBE_STATE_CANCELLED, NULL);
		return;
	}
	d->cancelled = true;
	decide(d, PROBE_STATE_CANCELLED, NULL);
	switch (d->phase) {
	case PH_RULES:
	case PH_BEFORE:
	case PH_AM_BEFORE:
		promapi_cancel(d->call);
		d->call = NULL;
		finish(d);
		break;
	case PH_TRIGGER:
		if (d->req)
			http_request_cancel(d->req);
		d->req = NULL;
		do_clear(d);
		break;
	case PH_WAIT_FIRE:
	case PH_WAIT_AM:
		promapi_cancel(d->call);
		d->call = NULL;
		do_clear(d);
		break;
	case PH_WAIT_NOTIFY:
		do_clear(d);
		break;
	case PH_WAIT_RESOLVE:
		promapi_cancel(d->call);
		d->call = NULL;
		finish(d);
		break;
	case PH_CLOSING:
		if (d->traffic && !d->traffic_done)
			loadgen_cancel(d->traffic); /* instead of waiting for answers */
		break;
	default:
		break; /* clear is on its way (bounded) */
	}
}

static void drill_free(struct probe *p)
{
	struct drill *d = p->impl;

	if (d) {
		free(d->why);
		loadgen_free(d->traffic);
		json_decref(d->notify_receivers);
	}
	free(d);
	p->impl = NULL;
}

/* --- the type: its spec fields, rules, metrics and ops --- */

/* The request path of `traffic`: absolute, printable, no spaces. */
static int check_traffic_path(char *s, char *msg, size_t len)
{
	if (s[0] != '/') {
		snprintf(msg, len, "must start with '/' (it replaces the target's path)");
		return -EINVAL;
	}
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (*c <= 0x20 || *c == 0x7f || *c == '#') {
			snprintf(msg, len,
			         "must be a path and query without spaces, controls or '#'");
			return -EINVAL;
		}
	}
	return 0;
}

/* One field per line, aligned by hand: read as a schema more than as
 * code. */
/* clang-format off */
#define T(m) offsetof(struct spec_traffic, m)
static const struct spec_field traffic_fields[] = {
	{.key = "rate", .kind = FK_NUMBER, .required = true, .off = T(rate), .gt_min = true,
	 .dmax = SPEC_MAX_RATE},
	{.key = "connections", .kind = FK_INT, .off = T(connections), .min = 1,
	 .max = SPEC_MAX_CONNECTIONS, .def = 8},
	{.key = "path", .kind = FK_STRING, .off = T(path), .max = 4096,
	 .check = check_traffic_path},
};
static const struct spec_schema traffic_schema = {
	"the traffic of an alert drill", traffic_fields, RD_ARRAY_SIZE(traffic_fields), false};
static const struct spec_field fields[] = {
	SPEC_F_COMMON, SPEC_F_PROMETHEUS, SPEC_F_HEADERS,
	{.key = "alert", .kind = FK_STRING, .required = true, .off = SPEC_P(alert), .max = 256,
	 .check = spec_check_version},
	SPEC_F_HOOK("trigger", trigger, true),
	SPEC_F_HOOK("clear", clear, false),
	{.key = "labels", .kind = FK_LABELS, .off = SPEC_P(labels), .count_off = SPEC_P(n_labels)},
	SPEC_F_WITHIN(false),
	{.key = "wait_resolve", .kind = FK_DURATION, .off = SPEC_P(wait_resolve_ms), .min = 1,
	 .max = SPEC_MAXD},
	SPEC_F_POLL,
	SPEC_F_TLS_CLIENT,
	{.key = "alertmanager", .kind = FK_STRING, .flags = SPEC_FIELD_URL,
	 .off = SPEC_P(alertmanager), .max = SPEC_MAX_URL, .check = spec_check_url},
	{.key = "receiver", .kind = FK_STRING, .off = SPEC_P(receiver), .max = 256},
	{.key = "notify", .kind = FK_BOOL, .off = SPEC_P(notify)},
	{.key = "notify_within", .kind = FK_DURATION, .off = SPEC_P(notify_within_ms), .min = 1,
	 .max = SPEC_MAXD},
	{.key = "traffic", .kind = FK_OBJECT, .off = SPEC_P(traffic), .sub = &traffic_schema},
};
/* clang-format on */

/* Adds several alert-drill rules across fields. */
static int finish_drill(struct spec_vctx *v, json_t *obj, const char *path, struct spec_probe *p)
{
	static const char *const needs_am[] = {"receiver", "notify", "notify_within"};

	for (size_t i = 0; !p->alertmanager && i < RD_ARRAY_SIZE(needs_am); i++)
		if (json_object_get(obj, needs_am[i]))
			return spec_fail_at(
			        v, obj, path, needs_am[i],
			        "needs alertmanager (the Alertmanager the drill follows "
			        "the alert into)");
	if (p->traffic.rate > 0 && !spec_vctx_spec(v)->target.url)
		return spec_fail_at(v, obj, path, "traffic",
		                    "needs the spec's target (the traffic sends its request)");
	return 0;
}

static bool drill_drives_load(const struct spec_probe *sp)
{
	return sp->traffic.rate > 0;
}

static int64_t drill_deadline(const struct spec *s, const struct spec_probe *sp)
{
	(void)s;
	return sp->within_ms + sp->wait_resolve_ms + notify_limit(sp) + PROBE_DEADLINE_MARGIN_MS;
}

static const struct probe_metric_def metrics[] = {
        {"seconds_to_fire", "s", PROBE_SAMPLES_NONE},
        {"seconds_to_resolve", "s", PROBE_SAMPLES_NONE},
        {"seconds_to_alertmanager", "s", PROBE_SAMPLES_NONE},
        {"seconds_to_notify", "s", PROBE_SAMPLES_NONE},
        {"traffic_requests", "requests", PROBE_SAMPLES_NONE},
        {"traffic_errors", "requests", PROBE_SAMPLES_NONE},
        {"traffic_error_rate", "1", PROBE_SAMPLES_NONE},
        {"traffic_requests_rps", "requests/s", PROBE_SAMPLES_NONE},
        {"traffic_p95_ms", "ms", PROBE_SAMPLES_NONE},
};

const struct probe_type_def probe_type_alert_drill = {
        .name = "alert-drill",
        .section = "Monitoring",
        .fields = fields,
        .n_fields = RD_ARRAY_SIZE(fields),
        .finish = finish_drill,
        .deadline_ms = drill_deadline,
        .deadline_doc = "`within + wait_resolve + notify_within + 60s` (`notify_within` "
                        "only with `alertmanager`)",
        .load_when = drill_drives_load,
        .metrics = metrics,
        .n_metrics = RD_ARRAY_SIZE(metrics),
        .ops =
                {
                        .start = drill_start,
                        .cancel = drill_cancel,
                        .free = drill_free,
                },
};
