/* probe: the registry of probe types and the helpers every type shares
 * (metrics, finishing, JSON). Knows nothing of the store or the API. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Indexed by enum probe_type; registered types follow the built-in ones. */
static const struct probe_type_def *const builtin[_PROBE_TYPE_MAX] = {
        [PROBE_TYPE_LOAD] = &probe_type_load,
        [PROBE_TYPE_CAPACITY] = &probe_type_capacity,
        [PROBE_TYPE_HTTP] = &probe_type_http,
        [PROBE_TYPE_PROM_SCRAPE] = &probe_type_prom_scrape,
        [PROBE_TYPE_PROM_RULES] = &probe_type_prom_rules,
        [PROBE_TYPE_PROM_QUERY] = &probe_type_prom_query,
        [PROBE_TYPE_ALERT_DRILL] = &probe_type_alert_drill,
        [PROBE_TYPE_TLS] = &probe_type_tls,
        [PROBE_TYPE_AUTH] = &probe_type_auth,
        [PROBE_TYPE_RATE_LIMIT] = &probe_type_rate_limit,
        [PROBE_TYPE_RESOURCES] = &probe_type_resources,
        [PROBE_TYPE_ROLLBACK_DRILL] = &probe_type_rollback_drill,
        [PROBE_TYPE_DASHBOARD] = &probe_type_dashboard,
        [PROBE_TYPE_SCAN_REPORT] = &probe_type_scan_report,
        [PROBE_TYPE_PROM_ALERTS] = &probe_type_prom_alerts,
        [PROBE_TYPE_COMPARE] = &probe_type_compare,
        [PROBE_TYPE_INFRASTRUCTURE] = &probe_type_infrastructure,
};

#define MAX_EXTRA_TYPES 16
static const struct probe_type_def *extra[MAX_EXTRA_TYPES];
static size_t n_extra;

const struct probe_type_def *probe_type_get(enum probe_type t)
{
	if ((unsigned)t < _PROBE_TYPE_MAX)
		return builtin[t];
	if ((unsigned)t - _PROBE_TYPE_MAX < n_extra)
		return extra[(unsigned)t - _PROBE_TYPE_MAX];
	return NULL;
}

bool probe_drives_load(const struct spec_probe *sp)
{
	const struct probe_type_def *d = probe_type_get(sp->type);

	return d && (d->load || (d->load_when && d->load_when(sp)));
}

size_t probe_type_count(void)
{
	return _PROBE_TYPE_MAX + n_extra;
}

int probe_type_register(const struct probe_type_def *def, enum probe_type *ret)
{
	enum probe_type t;

	if (!def || !def->name || !def->fields || !def->ops.start || !def->ops.free)
		return -EINVAL;
	if (probe_type_from_string(def->name, &t) == 0)
		return -EEXIST;
	if (n_extra == MAX_EXTRA_TYPES)
		return -ENOSPC;
	extra[n_extra] = def;
	*ret = (enum probe_type)(_PROBE_TYPE_MAX + n_extra++);
	return 0;
}

const char *probe_type_to_string(enum probe_type t)
{
	const struct probe_type_def *d = probe_type_get(t);

	return d ? d->name : "unknown";
}

int probe_type_from_string(const char *s, enum probe_type *ret)
{
	for (size_t t = 0; s && t < probe_type_count(); t++) {
		if (!strcmp(probe_type_get((enum probe_type)t)->name, s)) {
			*ret = (enum probe_type)t;
			return 0;
		}
	}
	return -EINVAL;
}

const struct probe_metric_def *probe_type_metric(const struct probe_type_def *t, const char *name)
{
	for (size_t i = 0; t && name && i < t->n_metrics; i++)
		if (!strcmp(t->metrics[i].name, name))
			return &t->metrics[i];
	return NULL;
}

int64_t probe_type_deadline_ms(const struct spec *s, const struct spec_probe *sp)
{
	const struct probe_type_def *t = probe_type_get(sp->type);

	if (t && t->deadline_ms)
		return t->deadline_ms(s, sp);
	return t ? t->deadline_fixed_ms : 0;
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
