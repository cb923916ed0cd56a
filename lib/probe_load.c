/* probe_load: the `load` probe: one run of the load engine (lib/loadgen)
 * with the probe's (or the target's) request, in closed or rate mode.
 * The engine runs on its own threads; this file stays on the main loop:
 * it copies progress from the engine's atomics into p->percent and
 * p->requests every 250 ms, and publishes the result's metrics and
 * details when the engine reports back through uv_async_send.
 *
 * It must not touch the store or the API (the scheduler persists), and
 * must always end with probe_finish(), also when cancelled.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"
#include "probe.h"

#define LOAD_PROGRESS_MS 250

struct load_probe {
	struct probe *p;
	struct loadgen *lg;
	uv_timer_t progress;
	bool timer_open;
	bool cancelled;
	enum probe_state state;
	char why[256];
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
	        .ca_file = sp->ca_file,
	};
	if (c->duration_ms == 0 && c->requests == 0)
		c->duration_ms = 30000;
	http_client_get_policy(p->http, &c->policy, &c->policy_data); /* allowed_targets */
}

static void on_progress(uv_timer_t *t)
{
	struct load_probe *lp = t->data;

	loadgen_progress(lp->lg, &lp->p->requests, &lp->p->percent);
}

/* Publishes and finishes once the progress timer is closed, so that
 * nothing of this probe is left on the loop when the scheduler frees it. */
static void on_timer_closed(uv_handle_t *h)
{
	struct load_probe *lp = h->data;

	lp->timer_open = false;
	if (lp->state == PROBE_ERRORED)
		probe_finish(lp->p, PROBE_ERRORED, "%s", lp->why);
	else
		probe_finish(lp->p, lp->state, NULL);
}

static void publish(struct load_probe *lp, const struct loadgen_result *r)
{
	struct probe *p = lp->p;
	json_t *m = NULL, *d = NULL;

	if (loadgen_result_metrics(r, &m) < 0 || loadgen_result_details(r, &d) < 0) {
		json_decref(m);
		lp->state = PROBE_ERRORED;
		snprintf(lp->why, sizeof(lp->why), "out of memory while publishing the result");
		return;
	}
	json_decref(p->metrics);
	json_decref(p->details);
	p->metrics = m;
	p->details = d;
	p->requests = (int64_t)r->requests;
	p->percent = 100;
}

static void judge_result(struct load_probe *lp, const struct loadgen_result *r)
{
	lp->state = PROBE_PASSED;
	if (r->cancelled || lp->cancelled) {
		lp->state = PROBE_CANCELLED;
	} else if (r->requests == 0) {
		lp->state = PROBE_ERRORED;
		snprintf(lp->why, sizeof(lp->why), "no request was measured");
	} else if (r->errors_by[LOADGEN_ERR_CONNECT] == r->requests) {
		lp->state = PROBE_ERRORED;
		snprintf(lp->why, sizeof(lp->why), "cannot connect to %s",
		         lp->p->sp->url ? lp->p->sp->url : lp->p->spec->target.url);
	}
}

static void on_engine_done(struct loadgen *lg, void *userdata)
{
	struct load_probe *lp = userdata;
	const struct loadgen_result *r = loadgen_result(lg);

	judge_result(lp, r);
	publish(lp, r);
	uv_close((uv_handle_t *)&lp->progress, on_timer_closed);
}

static int load_probe_start(struct probe *p)
{
	struct loadgen_config cfg;
	struct load_probe *lp = calloc(1, sizeof(*lp));
	char err[256] = "";
	int r;

	if (!lp)
		return -ENOMEM;
	lp->p = p;
	p->impl = lp;
	load_config(p, &cfg);
	r = loadgen_new(&cfg, p->loop, on_engine_done, lp, &lp->lg, err, sizeof(err));
	if (r == 0)
		r = loadgen_start(lp->lg);
	if (r < 0) {
		loadgen_free(lp->lg);
		free(lp);
		p->impl = NULL;
		/* The scheduler reports strerror(r); a config error deserves its words. */
		if (err[0]) {
			probe_finish(p, PROBE_ERRORED, "%s", err);
			return 0;
		}
		return r;
	}
	p->percent = 0;
	p->requests = 0;
	uv_timer_init(p->loop, &lp->progress);
	lp->progress.data = lp;
	lp->timer_open = true;
	uv_timer_start(&lp->progress, on_progress, LOAD_PROGRESS_MS, LOAD_PROGRESS_MS);
	return 0;
}

static void load_probe_cancel(struct probe *p)
{
	struct load_probe *lp = p->impl;

	if (!lp) {
		probe_finish(p, PROBE_CANCELLED, NULL);
		return;
	}
	/* The engine stops its threads and reports; finishing follows from there. */
	lp->cancelled = true;
	loadgen_cancel(lp->lg);
}

static void load_probe_free(struct probe *p)
{
	struct load_probe *lp = p->impl;

	if (!lp)
		return;
	loadgen_free(lp->lg);
	free(lp);
	p->impl = NULL;
}

const struct probe_ops probe_load_ops = {
        .type = PROBE_LOAD,
        .start = load_probe_start,
        .cancel = load_probe_cancel,
        .free = load_probe_free,
};
