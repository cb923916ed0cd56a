/* probe_rollback_drill: measures how long a rollback takes. Calls the
 * trigger, then polls version_url every poll_interval until it reports
 * expect_version (the "version" field of a JSON object, else the trimmed
 * body) and publishes seconds_to_rollback, counted from sending the
 * trigger. Not there within `within` is a failure that names the last
 * version seen; a trigger that fails, or a version_url that never answered,
 * is an error.
 *
 * Once the trigger was sent, the restore request (when given) is always
 * sent afterwards, also after a failure, an error or a cancel: the drill
 * must not leave the service rolled back. Polls that fail in between are
 * tolerated (a service restarting during a rollback may refuse them).
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/probe/probe.h"
#include "lib/probe/probe_rollback_drill.h"
#include "lib/util/util.h"

#define RB_DEFAULT_TIMEOUT_MS 10000
#define RB_MAX_BODY           (64 * 1024)
#define RB_MAX_VERSION        128

enum rb_phase { RB_TRIGGER = 0, RB_POLL, RB_RESTORE, RB_DONE };

struct rb_probe {
	struct probe *p;
	uv_timer_t timer;
	struct http_request *req;
	enum rb_phase phase;
	int64_t t0;
	bool timer_open, expired;
	int polls, poll_errors;
	char last_version[RB_MAX_VERSION + 1];
	char last_error[256];
	/* The outcome, reported once the restore request has finished. */
	enum probe_state outcome;
	char *message;
};

static void rb_restore(struct rb_probe *rb);

static void rb_set_outcome(struct rb_probe *rb, enum probe_state st, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void rb_set_outcome(struct rb_probe *rb, enum probe_state st, const char *fmt, ...)
{
	char *redacted;
	va_list ap;

	rb->outcome = st;
	free(rb->message);
	rb->message = NULL;
	if (!fmt)
		return;
	va_start(ap, fmt);
	if (vasprintf(&rb->message, fmt, ap) < 0)
		rb->message = NULL;
	va_end(ap);
	/* Messages name URLs: their credentials never get into one. */
	redacted = rd_url_redact_dup(rb->message);
	free(rb->message);
	rb->message = redacted;
}

static void rb_finish(struct rb_probe *rb)
{
	json_t *d;

	rb->phase = RB_DONE;
	uv_timer_stop(&rb->timer);
	d = json_pack("{s:i, s:i, s:s?}", "polls", rb->polls, "poll_errors", rb->poll_errors,
	              "last_version", rb->last_version[0] ? rb->last_version : NULL);
	json_decref(rb->p->details);
	rb->p->details = d;
	if (rb->message)
		probe_finish(rb->p, rb->outcome, "%s", rb->message);
	else
		probe_finish(rb->p, rb->outcome, NULL);
}

bool probe_rollback_drill_matches(const char *body, size_t body_len, const char *expect, char *seen,
                                  size_t len)
{
	json_t *doc = body ? json_loadb(body, body_len, 0, NULL) : NULL;
	json_t *v = json_is_object(doc) ? json_object_get(doc, "version") : NULL;
	const char *s = body ? body : "";
	size_t n = body ? body_len : 0;
	bool match;

	if (json_is_string(v)) {
		s = json_string_value(v);
		n = json_string_length(v);
	} else {
		while (n > 0 && isspace((unsigned char)*s)) {
			s++;
			n--;
		}
		while (n > 0 && isspace((unsigned char)s[n - 1]))
			n--;
	}
	/* On the whole version: a longer one is not the expected one, even
	 * when what fits in seen equals it. */
	match = n == strlen(expect) && memcmp(s, expect, n) == 0;
	snprintf(seen, len, "%.*s", (int)(n < len ? n : len - 1), s);
	json_decref(doc);
	return match;
}

static int rb_send(struct rb_probe *rb, const struct spec_request *rq, http_done_cb cb)
{
	const struct spec_probe *sp = rb->p->sp;
	struct http_options opt = {
	        .method = rq->method,
	        .url = rq->url,
	        .headers = rq->headers,
	        .n_headers = rq->n_headers,
	        .body = rq->body,
	        .body_len = rq->body_len,
	        .timeout_ms = rq->timeout_ms ? rq->timeout_ms : RB_DEFAULT_TIMEOUT_MS,
	        .insecure = sp->insecure,
	        .ca_file = sp->ca_file,
	        .max_body = RB_MAX_BODY,
	};

	return http_request_start(rb->p->http, &opt, cb, rb, &rb->req);
}

static void rb_poll(struct rb_probe *rb);

static void on_poll_timer(uv_timer_t *t)
{
	rb_poll(t->data);
}

static void rb_poll_again(struct rb_probe *rb)
{
	int64_t left = rb->t0 + rb->p->sp->within_ms - rd_now_ms();
	int64_t wait = rb->p->sp->poll_interval_ms;

	if (left <= 0) {
		rb->expired = true;
		if (rb->last_version[0])
			rb_set_outcome(rb, PROBE_STATE_FAILED,
			               "version is still '%s' after %.1f s (expected '%s')",
			               rb->last_version, (double)rb->p->sp->within_ms / 1000,
			               rb->p->sp->expect_version);
		else
			rb_set_outcome(rb, PROBE_STATE_ERRORED,
			               "%s never answered within %.1f s: %s",
			               rb->p->sp->version_url, (double)rb->p->sp->within_ms / 1000,
			               rb->last_error);
		rb_restore(rb);
		return;
	}
	/* The last poll happens at the deadline, not after it. */
	uv_timer_start(&rb->timer, on_poll_timer, (uint64_t)(wait < left ? wait : left), 0);
}

static void on_version(void *userdata, const struct http_response *r)
{
	struct rb_probe *rb = userdata;
	const struct spec_probe *sp = rb->p->sp;

	rb->req = NULL;
	rb->polls++;
	if (r->err != 0 || r->status < 200 || r->status > 299) {
		rb->poll_errors++;
		if (r->err != 0)
			snprintf(rb->last_error, sizeof(rb->last_error), "%s",
			         r->error ? r->error : strerror(-r->err));
		else
			snprintf(rb->last_error, sizeof(rb->last_error), "status %ld", r->status);
		rb_poll_again(rb);
		return;
	}
	if (probe_rollback_drill_matches(r->body, r->body_len, sp->expect_version, rb->last_version,
	                                 sizeof(rb->last_version))) {
		probe_set_metric(rb->p, "seconds_to_rollback",
		                 (double)(rd_now_ms() - rb->t0) / 1000.0);
		rb_set_outcome(rb, PROBE_STATE_PASSED, NULL);
		rb_restore(rb);
		return;
	}
	rb_poll_again(rb);
}

static void rb_poll(struct rb_probe *rb)
{
	const struct spec_probe *sp = rb->p->sp;
	struct spec_request rq = {
	        .method = "GET",
	        .url = sp->version_url,
	        .headers = sp->headers,
	        .n_headers = sp->n_headers,
	};
	int64_t left = rb->t0 + sp->within_ms - rd_now_ms();
	int e;

	rb->phase = RB_POLL;
	/* A poll never outlives the drill's window by more than a second. */
	rq.timeout_ms = left > 0 && left + 1000 < RB_DEFAULT_TIMEOUT_MS ? left + 1000 : 0;
	e = rb_send(rb, &rq, on_version);
	if (e < 0) {
		rb_set_outcome(rb, PROBE_STATE_ERRORED, "cannot poll %s: %s", sp->version_url,
		               strerror(-e));
		rb_restore(rb);
	}
}

static void on_trigger(void *userdata, const struct http_response *r)
{
	struct rb_probe *rb = userdata;
	const struct spec_request *t = rb->p->sp->trigger;

	rb->req = NULL;
	if (r->err != 0) {
		rb_set_outcome(rb, PROBE_STATE_ERRORED, "trigger %s %s: %s", t->method, t->url,
		               r->error ? r->error : strerror(-r->err));
		rb_restore(rb);
		return;
	}
	if (r->status < 200 || r->status > 299) {
		rb_set_outcome(rb, PROBE_STATE_ERRORED, "trigger %s %s answered %ld", t->method,
		               t->url, r->status);
		rb_restore(rb);
		return;
	}
	rb_poll(rb);
}

static void on_restore(void *userdata, const struct http_response *r)
{
	struct rb_probe *rb = userdata;
	const struct spec_request *rs = rb->p->sp->restore;

	rb->req = NULL;
	/* A failed restore leaves the service rolled back: that is an error
	 * unless the drill already ended in one (or was cancelled). */
	if ((r->err != 0 || r->status < 200 || r->status > 299) &&
	    (rb->outcome == PROBE_STATE_PASSED || rb->outcome == PROBE_STATE_FAILED)) {
		char what[160];

		if (r->err != 0)
			snprintf(what, sizeof(what), "%s", r->error ? r->error : "failed");
		else
			snprintf(what, sizeof(what), "answered %ld", r->status);
		rb_set_outcome(rb, PROBE_STATE_ERRORED, "restore %s %s: %s (the drill itself %s)",
		               rs->method, rs->url, what,
		               rb->outcome == PROBE_STATE_PASSED ? "passed" : "failed");
	}
	rb_finish(rb);
}

/* Sends the restore request if there is one, then finishes. */
static void rb_restore(struct rb_probe *rb)
{
	const struct spec_request *rs = rb->p->sp->restore;

	uv_timer_stop(&rb->timer);
	if (rs && rb->phase != RB_RESTORE) {
		rb->phase = RB_RESTORE;
		if (rb_send(rb, rs, on_restore) == 0)
			return;
	}
	rb_finish(rb);
}

static void rb_probe_cancel(struct probe *p)
{
	struct rb_probe *rb = p->impl;

	if (!rb || rb->phase == RB_DONE || rb->phase == RB_RESTORE)
		return; /* the restore in flight finishes the probe */
	if (rb->req)
		http_request_cancel(rb->req);
	rb->req = NULL;
	/* A trigger in flight may have reached the service: restore too. */
	rb_set_outcome(rb, PROBE_STATE_CANCELLED, NULL);
	rb_restore(rb);
}

static void on_rb_closed(uv_handle_t *h)
{
	struct rb_probe *rb = h->data;

	free(rb->message);
	free(rb);
}

static void rb_probe_free(struct probe *p)
{
	struct rb_probe *rb = p->impl;

	if (!rb)
		return;
	p->impl = NULL;
	if (rb->req)
		http_request_cancel(rb->req);
	uv_close((uv_handle_t *)&rb->timer, on_rb_closed);
}

static int rb_probe_start(struct probe *p)
{
	struct rb_probe *rb;
	int e;

	if (!p->sp->trigger || !p->sp->version_url || !p->sp->expect_version ||
	    p->sp->within_ms <= 0 || p->sp->poll_interval_ms <= 0)
		return -EINVAL;
	rb = calloc(1, sizeof(*rb));
	if (!rb)
		return -ENOMEM;
	rb->p = p;
	e = uv_timer_init(p->loop, &rb->timer);
	if (e < 0) {
		free(rb);
		return e;
	}
	rb->timer.data = rb;
	p->impl = rb;
	rb->phase = RB_TRIGGER;
	rb->t0 = rd_now_ms();
	snprintf(rb->last_error, sizeof(rb->last_error), "no answer yet");
	e = rb_send(rb, p->sp->trigger, on_trigger);
	if (e < 0) {
		rb_probe_free(p);
		return e;
	}
	return 0;
}

/* --- the type: its spec fields, rules, metrics and ops --- */

/* One field per line, aligned by hand: read as a schema more than as
 * code. */
/* clang-format off */
static const struct spec_field fields[] = {
	SPEC_F_COMMON,
	SPEC_F_HOOK("trigger", trigger, true),
	SPEC_F_HOOK("restore", restore, false),
	{.key = "version_url",    .kind = FK_STRING, .required = true, .flags = SPEC_FIELD_URL,
	 .off = SPEC_P(version_url), .max = SPEC_MAX_URL, .check = spec_check_url},
	{.key = "expect_version", .kind = FK_STRING, .required = true,
	 .off = SPEC_P(expect_version), .check = spec_check_version},
	SPEC_F_WITHIN(true),
	SPEC_F_POLL,
	SPEC_F_HEADERS,
	SPEC_F_TLS_CLIENT,
};
/* clang-format on */

static int64_t rollback_deadline(const struct spec *s, const struct spec_probe *sp)
{
	(void)s;
	return sp->within_ms + PROBE_DEADLINE_MARGIN_MS;
}

static const struct probe_metric_def metrics[] = {
        {"seconds_to_rollback", "s", PROBE_SAMPLES_NONE},
};

const struct probe_type_def probe_type_rollback_drill = {
        .name = "rollback-drill",
        .section = "Rollback",
        .fields = fields,
        .n_fields = RD_ARRAY_SIZE(fields),
        .deadline_ms = rollback_deadline,
        .deadline_doc = "`within + 60s`",
        .metrics = metrics,
        .n_metrics = RD_ARRAY_SIZE(metrics),
        .ops =
                {
                        .start = rb_probe_start,
                        .cancel = rb_probe_cancel,
                        .free = rb_probe_free,
                },
};
