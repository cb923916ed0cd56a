/* probe_alert_drill: the `alert-drill` probe. Sends the `trigger` request
 * (a fault injection), polls Prometheus' GET /api/v1/alerts every
 * `poll_interval` until `alert` is firing or `within` has passed, and
 * publishes seconds_to_fire, measured from the trigger's answer. Then it
 * always sends `clear` -- also after an error, a failure or a cancel
 * (bounded by a short timeout), because a drill must not leave the fault
 * behind -- and with `wait_resolve` polls until the alert is gone:
 * seconds_to_resolve, measured from the clear's answer.
 *
 * Phases run one at a time on the loop; the verdict is decided when it is
 * known and announced only after clear and the timer are done.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe.h"
#include "promapi.h"
#include "util.h"

#define DRILL_HOOK_TIMEOUT_MS   10000
#define DRILL_CANCEL_TIMEOUT_MS 5000 /* clear after a cancel must be quick */

enum drill_phase {
	PH_TRIGGER = 0,
	PH_WAIT_FIRE,
	PH_CLEAR,
	PH_WAIT_RESOLVE,
	PH_CLOSING,
};

struct drill {
	struct probe *p;
	uv_timer_t timer;
	struct http_request *req;  /* trigger or clear in flight */
	struct promapi_call *call; /* an alerts poll in flight */
	enum drill_phase phase;
	uint64_t t_trigger, t_clear; /* monotonic ms at the hooks' answers */
	enum probe_state outcome;    /* PROBE_RUNNING: not decided yet */
	char *why;
	bool fired, cancelled;
	const char *last_state; /* static string: "inactive", "pending", "firing" */
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

static void finish(struct drill *d)
{
	d->phase = PH_CLOSING;
	uv_timer_stop(&d->timer);
	uv_close((uv_handle_t *)&d->timer, on_timer_closed);
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

		if (d->outcome != PROBE_CANCELLED)
			decide(d, PROBE_ERRORED,
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

static void do_clear(struct drill *d)
{
	const struct spec_request *rq = d->p->sp->clear;
	int r;

	uv_timer_stop(&d->timer);
	if (!rq) {
		d->t_clear = mono_ms();
		start_resolve_wait(d);
		return;
	}
	d->phase = PH_CLEAR;
	r = send_hook(d, rq, on_clear);
	if (r < 0) {
		decide(d, d->cancelled ? PROBE_CANCELLED : PROBE_ERRORED,
		       "cannot send clear %s: %s; the fault may still be active", rq->url,
		       strerror(-r));
		finish(d);
	}
}

static void start_resolve_wait(struct drill *d)
{
	if (d->p->sp->wait_resolve_ms > 0 && d->fired && !d->cancelled &&
	    d->outcome != PROBE_ERRORED) {
		d->phase = PH_WAIT_RESOLVE;
		poll_alerts(d);
		return;
	}
	finish(d);
}

/* The named alert's state in data.alerts: "firing" wins over "pending";
 * absent is "inactive". NULL when the answer has no alerts list. */
static const char *alert_state(json_t *data, const char *name)
{
	json_t *alerts = json_object_get(data, "alerts"), *a;
	const char *state = "inactive";
	size_t i;

	if (!json_is_array(alerts))
		return NULL;
	json_array_foreach (alerts, i, a) {
		const char *n = json_string_value(
		        json_object_get(json_object_get(a, "labels"), "alertname"));
		const char *s = json_string_value(json_object_get(a, "state"));

		if (!n || !s || strcmp(n, name) != 0)
			continue;
		if (strcmp(s, "firing") == 0)
			return "firing";
		if (strcmp(s, "pending") == 0)
			state = "pending";
	}
	return state;
}

static void on_tick(uv_timer_t *t)
{
	poll_alerts(t->data);
}

/* Polls again after poll_interval, but never past the phase's limit. */
static void schedule(struct drill *d, int64_t limit_ms, int64_t elapsed_ms)
{
	int64_t delay = d->p->sp->poll_interval_ms > 0 ? d->p->sp->poll_interval_ms : 1000;

	if (limit_ms > 0 && limit_ms - elapsed_ms < delay)
		delay = limit_ms - elapsed_ms;
	uv_timer_start(&d->timer, on_tick, (uint64_t)(delay > 0 ? delay : 0), 0);
}

static void waiting_fire(struct drill *d, const char *state)
{
	const struct spec_probe *sp = d->p->sp;
	int64_t elapsed = (int64_t)(mono_ms() - d->t_trigger);
	char w[32];

	if (strcmp(state, "firing") == 0) {
		d->fired = true;
		probe_set_metric(d->p, "seconds_to_fire", seconds_since(d->t_trigger));
		decide(d, PROBE_PASSED, NULL);
		do_clear(d);
		return;
	}
	if (strcmp(state, "pending") == 0 && !json_object_get(d->p->details, "pending_after_s"))
		json_object_set_new(d->p->details, "pending_after_s",
		                    json_real(seconds_since(d->t_trigger)));
	if (sp->within_ms > 0 && elapsed >= sp->within_ms) {
		rd_format_duration(sp->within_ms, w, sizeof(w));
		decide(d, PROBE_FAILED,
		       "alert %s did not fire within %s (waited %.1f s after the trigger; its state "
		       "was %s)",
		       sp->alert, w, (double)elapsed / 1000.0, state);
		do_clear(d);
		return;
	}
	schedule(d, sp->within_ms, elapsed);
}

static void waiting_resolve(struct drill *d, const char *state)
{
	const struct spec_probe *sp = d->p->sp;
	int64_t elapsed = (int64_t)(mono_ms() - d->t_clear);
	char w[32];

	if (strcmp(state, "inactive") == 0) {
		probe_set_metric(d->p, "seconds_to_resolve", seconds_since(d->t_clear));
		finish(d);
		return;
	}
	if (elapsed >= sp->wait_resolve_ms) {
		rd_format_duration(sp->wait_resolve_ms, w, sizeof(w));
		decide(d, PROBE_FAILED,
		       "alert %s was still %s %.1f s after clear (wait_resolve %s)", sp->alert,
		       state, (double)elapsed / 1000.0, w);
		finish(d);
		return;
	}
	schedule(d, sp->wait_resolve_ms, elapsed);
}

static void on_alerts(void *userdata, int err, json_t *data, const char *message)
{
	struct drill *d = userdata;
	const char *state = err < 0 ? NULL : alert_state(data, d->p->sp->alert);

	d->call = NULL;
	d->polls++;
	if (!state) {
		decide(d, PROBE_ERRORED, "%s%s (while waiting for alert %s to %s)",
		       message ? message : d->p->sp->prometheus,
		       message ? "" : "/api/v1/alerts: the answer has no alerts list",
		       d->p->sp->alert, d->phase == PH_WAIT_FIRE ? "fire" : "resolve");
		if (d->phase == PH_WAIT_FIRE)
			do_clear(d);
		else
			finish(d);
		return;
	}
	d->last_state = state;
	if (d->phase == PH_WAIT_FIRE)
		waiting_fire(d, state);
	else
		waiting_resolve(d, state);
}

static void poll_alerts(struct drill *d)
{
	int r = promapi_get(d->p->http, d->p->sp, "/api/v1/alerts", NULL, 0, on_alerts, d,
	                    &d->call);

	if (r < 0) {
		decide(d, PROBE_ERRORED, "cannot ask %s for alerts: %s", d->p->sp->prometheus,
		       strerror(-r));
		if (d->phase == PH_WAIT_FIRE)
			do_clear(d);
		else
			finish(d);
	}
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
		decide(d, PROBE_ERRORED, "trigger %s %s failed: %s",
		       rq->method ? rq->method : "GET", rq->url, why);
		do_clear(d); /* it may have been half applied */
		return;
	}
	d->t_trigger = mono_ms();
	d->phase = PH_WAIT_FIRE;
	poll_alerts(d);
}

static int drill_start(struct probe *p)
{
	struct drill *d;
	int r;

	if (!p->sp->trigger || !p->sp->alert)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->p = p;
	d->outcome = PROBE_RUNNING;
	d->last_state = "inactive";
	if (!p->details)
		p->details = json_pack("{s:s}", "alert", p->sp->alert);
	r = p->details ? send_hook(d, p->sp->trigger, on_trigger) : -ENOMEM;
	if (r < 0) {
		free(d);
		return r;
	}
	uv_timer_init(p->loop, &d->timer);
	d->timer.data = d;
	p->impl = d;
	return 0;
}

static void drill_cancel(struct probe *p)
{
	struct drill *d = p->impl;

	if (!d) {
		probe_finish(p, PROBE_CANCELLED, NULL);
		return;
	}
	d->cancelled = true;
	decide(d, PROBE_CANCELLED, NULL);
	switch (d->phase) {
	case PH_TRIGGER:
		if (d->req)
			http_request_cancel(d->req);
		d->req = NULL;
		do_clear(d);
		break;
	case PH_WAIT_FIRE:
		promapi_cancel(d->call);
		d->call = NULL;
		do_clear(d);
		break;
	case PH_WAIT_RESOLVE:
		promapi_cancel(d->call);
		d->call = NULL;
		finish(d);
		break;
	default:
		break; /* clear is on its way (bounded), or the timer is closing */
	}
}

static void drill_free(struct probe *p)
{
	struct drill *d = p->impl;

	if (d)
		free(d->why);
	free(d);
	p->impl = NULL;
}

const struct probe_ops probe_alert_drill_ops = {
        .type = PROBE_ALERT_DRILL,
        .start = drill_start,
        .cancel = drill_cancel,
        .free = drill_free,
};
