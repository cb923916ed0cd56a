/* probe: the registry of probe types and the helpers every type shares
 * (metrics, finishing, JSON). Knows nothing of the store or the API. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "lib/probe/probe.h"
#include "lib/util/assert.h"
#include "lib/util/util.h"

static const char *const state_names[] = {
        "queued", "running", "passed", "failed", "error", "cancelled", "interrupted",
};

const char *probe_state_to_string(enum probe_state s)
{
	return state_names[s];
}

static const struct probe_ops *const registry[] = {
        &probe_http_ops,        &probe_load_ops,       &probe_capacity_ops,
        &probe_prom_scrape_ops, &probe_prom_rules_ops, &probe_prom_query_ops,
        &probe_alert_drill_ops, &probe_tls_ops,        &probe_auth_ops,
        &probe_rate_limit_ops,  &probe_resources_ops,  &probe_rollback_drill_ops,
};

const struct probe_ops *probe_ops_find(enum probe_type t)
{
	/* Stubs (no start) are listed too: they are "not implemented". */
	for (size_t i = 0; i < RD_ARRAY_SIZE(registry); i++)
		if (registry[i]->type == t && registry[i]->start)
			return registry[i];
	return NULL;
}

int probe_set_metric(struct probe *p, const char *name, double value)
{
	json_t *v;

	if (!p->metrics) {
		p->metrics = json_object();
		if (!p->metrics)
			return -ENOMEM;
	}
	/* JSON has no NaN: a metric that could not be computed is null, which
	 * gates treat as missing (an error), never as a pass. */
	v = rd_json_number(value);
	if (!v || json_object_set_new(p->metrics, name, v) < 0)
		return -ENOMEM;
	return 0;
}

void probe_finish(struct probe *p, enum probe_state state, const char *fmt, ...)
{
	/* A probe ends once: the first end was recorded and reported; a second
	 * is a bug in the type, and in report mode the first end stands. */
	if (!rd_assert(!p->finishing))
		return;
	p->finishing = true;
	p->state = state;
	p->finished_at = rd_now_ms();
	if (fmt) {
		va_list ap;
		char *msg = NULL;

		va_start(ap, fmt);
		if (vasprintf(&msg, fmt, ap) < 0)
			msg = NULL;
		va_end(ap);
		free(p->error);
		/* Every probe message is formatted here: URLs in it lose their
		 * credentials (docs/security.md). */
		p->error = rd_url_redact_dup(msg);
		free(msg);
	}
	if (p->done)
		p->done(p);
}

static json_t *ms_or_null(int64_t ms)
{
	return ms > 0 ? json_integer(ms) : json_null();
}

json_t *probe_to_json(const struct probe *p)
{
	json_t *metrics = p->metrics ? json_incref(p->metrics) : json_object();
	json_t *details = p->details ? json_incref(p->details) : json_null();

	return json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:s?}", "name", p->sp->name, "type",
	                 probe_type_to_string(p->sp->type), "state",
	                 probe_state_to_string(p->state), "started_at", ms_or_null(p->started_at),
	                 "finished_at", ms_or_null(p->finished_at), "metrics", metrics, "details",
	                 details, "error", p->error);
}
