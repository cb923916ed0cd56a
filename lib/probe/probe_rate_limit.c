/* probe_rate_limit: proves that the service sheds a burst with 429. Sends
 * at most `burst` requests, RL_CONCURRENCY at a time and as fast as the
 * client goes, and stops at the first 429 Too Many Requests.
 *
 * Metrics: first_429_after is the number of requests answered with
 * something else than 429 (nothing new is sent after the first 429; those
 * in flight are awaited), or burst + 1 when no 429 came (the limit, if
 * any, lies beyond the burst); limited is 1 when a 429 came;
 * retry_after_present is 1 when that 429 carried Retry-After. Not limited
 * is a failure; a transport failure is an error.
 *
 * It must not exceed its burst or keep requests in flight after it ended.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/probe/probe.h"
#include "lib/util/util.h"

#define RL_CONCURRENCY        8
#define RL_DEFAULT_TIMEOUT_MS 10000

struct rl_probe;

struct rl_slot {
	struct rl_probe *rp;
	struct http_request *req;
};

struct rl_probe {
	struct probe *p;
	struct rl_slot slots[RL_CONCURRENCY];
	int64_t sent, answered; /* answered: with something other than 429 */
	int64_t n_2xx, n_other;
	int in_flight;
	bool limited, retry_after, stopping;
	int err;
	char *err_msg;
	int64_t err_status;
};

static void rl_cancel_all(struct rl_probe *rp)
{
	for (int i = 0; i < RL_CONCURRENCY; i++) {
		if (rp->slots[i].req)
			http_request_cancel(rp->slots[i].req);
		rp->slots[i].req = NULL;
	}
	rp->in_flight = 0;
}

static void rl_details(struct rl_probe *rp)
{
	json_t *d = json_pack("{s:I, s:I, s:I, s:I}", "sent", (json_int_t)rp->sent, "answered",
	                      (json_int_t)rp->answered, "status_2xx", (json_int_t)rp->n_2xx,
	                      "status_other", (json_int_t)rp->n_other);

	json_decref(rp->p->details);
	rp->p->details = d;
}

static void rl_conclude(struct rl_probe *rp)
{
	struct probe *p = rp->p;
	const struct spec_probe *sp = p->sp;

	rl_cancel_all(rp);
	rl_details(rp);
	if (rp->err) {
		probe_finish(p, PROBE_STATE_ERRORED, "%s %s: %s (after %lld requests)",
		             sp->method ? sp->method : "GET", sp->url,
		             rp->err_msg ? rp->err_msg : strerror(-rp->err),
		             (long long)rp->answered);
		return;
	}
	probe_set_metric(p, "limited", rp->limited ? 1 : 0);
	probe_set_metric(p, "first_429_after",
	                 (double)(rp->limited ? rp->answered : sp->burst + 1));
	probe_set_metric(p, "retry_after_present", rp->retry_after ? 1 : 0);
	if (!rp->limited)
		probe_finish(p, PROBE_STATE_FAILED, "no 429 in a burst of %lld requests",
		             (long long)sp->burst);
	else
		probe_finish(p, PROBE_STATE_PASSED, NULL);
}

static int rl_send(struct rl_slot *slot);

static void on_rl_response(void *userdata, const struct http_response *resp)
{
	struct rl_slot *slot = userdata;
	struct rl_probe *rp = slot->rp;

	slot->req = NULL;
	rp->in_flight--;
	if (resp->err != 0) {
		rp->err = resp->err;
		rp->err_msg = resp->error ? strdup(resp->error) : NULL;
		rl_conclude(rp);
		return;
	}
	if (resp->status == 429) {
		if (!rp->limited)
			rp->retry_after = resp->retry_after != NULL;
		rp->limited = true;
		rp->stopping = true;
	} else {
		rp->answered++;
		if (resp->status >= 200 && resp->status < 300)
			rp->n_2xx++;
		else
			rp->n_other++;
	}
	rp->p->requests = rp->sent;
	rp->p->percent = (int)(rp->sent * 100 / rp->p->sp->burst);
	if (!rp->stopping && rp->sent < rp->p->sp->burst) {
		int r = rl_send(slot);

		if (r < 0) {
			rp->err = r;
			rl_conclude(rp);
			return;
		}
	}
	/* After the first 429 nothing new is sent, but the requests already in
	 * flight are answered: with RL_CONCURRENCY in flight the order of
	 * answers is arbitrary, and counting all of them makes
	 * first_429_after the number the limiter let through. */
	if (rp->in_flight == 0)
		rl_conclude(rp);
}

static int rl_send(struct rl_slot *slot)
{
	struct rl_probe *rp = slot->rp;
	const struct spec_probe *sp = rp->p->sp;
	struct http_options opt = {
	        .method = sp->method,
	        .url = sp->url,
	        .headers = sp->headers,
	        .n_headers = sp->n_headers,
	        .body = sp->body,
	        .body_len = sp->body_len,
	        .timeout_ms = sp->timeout_ms ? sp->timeout_ms : RL_DEFAULT_TIMEOUT_MS,
	        .insecure = sp->insecure,
	        .ca_file = sp->ca_file,
	        .max_body = 64 * 1024,
	};
	int r = http_request_start(rp->p->http, &opt, on_rl_response, slot, &slot->req);

	if (r < 0)
		return r;
	rp->sent++;
	rp->in_flight++;
	return 0;
}

static void rl_probe_free(struct probe *p)
{
	struct rl_probe *rp = p->impl;

	if (!rp)
		return;
	free(rp->err_msg);
	free(rp);
	p->impl = NULL;
}

static void rl_probe_cancel(struct probe *p)
{
	struct rl_probe *rp = p->impl;

	if (rp) {
		rp->stopping = true;
		rl_cancel_all(rp);
	}
	probe_finish(p, PROBE_STATE_CANCELLED, NULL);
}

static int rl_probe_start(struct probe *p)
{
	struct rl_probe *rp;

	if (!p->sp->url || p->sp->burst < 1)
		return -EINVAL;
	rp = calloc(1, sizeof(*rp));
	if (!rp)
		return -ENOMEM;
	rp->p = p;
	p->impl = rp;
	p->requests = 0;
	p->percent = 0;
	for (int i = 0; i < RL_CONCURRENCY && rp->sent < p->sp->burst; i++) {
		int r;

		rp->slots[i].rp = rp;
		r = rl_send(&rp->slots[i]);
		if (r < 0) {
			rl_cancel_all(rp);
			rl_probe_free(p);
			return r;
		}
	}
	return 0;
}

/* --- the type: its spec fields, rules, metrics and ops --- */

/* One field per line, aligned by hand: read as a schema more than as
 * code. */
/* clang-format off */
static const struct spec_field fields[] = {
	SPEC_F_COMMON, SPEC_F_URL(false), SPEC_F_METHOD, SPEC_F_HEADERS, SPEC_F_BODY,
	{.key = "burst", .kind = FK_INT, .off = SPEC_P(burst), .min = 1, .max = 100000, .def = 100},
	SPEC_F_TLS_CLIENT,
};
/* clang-format on */

static int finish_rate_limit(struct spec_vctx *v, json_t *obj, const char *path,
                             struct spec_probe *p)
{
	return spec_inherit_target(v, obj, path, p);
}

static const struct probe_metric_def metrics[] = {
        {"first_429_after", "requests", PROBE_SAMPLES_NONE},
        {"limited", "1", PROBE_SAMPLES_NONE},
        {"retry_after_present", "1", PROBE_SAMPLES_NONE},
};

const struct probe_type_def probe_type_rate_limit = {
        .name = "rate-limit",
        .section = "Security",
        .fields = fields,
        .n_fields = RD_ARRAY_SIZE(fields),
        .finish = finish_rate_limit,
        .deadline_fixed_ms = PROBE_DEFAULT_DEADLINE_MS,
        .metrics = metrics,
        .n_metrics = RD_ARRAY_SIZE(metrics),
        .ops =
                {
                        .start = rl_probe_start,
                        .cancel = rl_probe_cancel,
                        .free = rl_probe_free,
                },
};
