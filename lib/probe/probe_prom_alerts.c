/* probe_prom_alerts: the `prometheus-alerts` probe. Before a deploy: is
 * any alert of this service already firing or pending? Asks Prometheus
 * for its active alerts (GET /api/v1/alerts), keeps those whose labels
 * hold every `matchers` entry (`service="checkout"`, also != =~ !~) and
 * whose `severity` label is one of `severities` (default critical,
 * warning), and publishes firing and pending, the same per severity
 * (firing_critical, pending_warning, ...) and other (active alerts of
 * the matchers at another severity, or none). Alerts are listed in the
 * details. None active is 0, a pass; any counted alert fails the probe
 * with a sentence naming them; an answer it cannot get or read is an
 * error.
 *
 * Regular-expression matchers are POSIX extended, anchored at both ends
 * as Prometheus anchors them, checked when the spec is read
 * (lib/util/ere.h) and matched on the threadpool.
 */
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/probe/probe.h"
#include "lib/prom/promapi.h"
#include "lib/prom/promql.h"
#include "lib/util/ere.h"
#include "lib/util/util.h"

#define DEFAULT_SEVERITIES                                                                         \
	{                                                                                          \
		"critical", "warning"                                                              \
	}
#define MAX_LISTED 50 /* alerts in the details; all are counted */

struct sev_count {
	char *name; /* a copy: the worker must not read the spec */
	double firing, pending;
};

struct matcher {
	struct promql_matcher m;
	regex_t re;
	bool compiled;
};

struct alerts_probe {
	struct probe *p;
	struct promapi_call *call;
	uv_work_t work;
	json_t *data;       /* the answer, read by the worker */
	struct matcher *ms; /* compiled when the probe starts (ERE-capped: fast) */
	size_t n_ms;
	/* what the worker fills */
	struct sev_count *sev;
	size_t n_sev;
	double firing, pending, other;
	json_t *listed; /* [{alertname, state, severity, active_at, labels}] */
	char first[512];
	int work_err;
	bool working, orphaned;
};

static const char *const default_severities[] = DEFAULT_SEVERITIES;

static bool matcher_holds(const struct matcher *m, json_t *labels)
{
	const char *v = json_string_value(json_object_get(labels, m->m.name)) ?: "";
	bool eq;

	switch (m->m.op) {
	case PQ_EQ:
		return strcmp(v, m->m.value) == 0;
	case PQ_NE:
		return strcmp(v, m->m.value) != 0;
	default:
		eq = regexec(&m->re, v, 0, NULL, 0) == 0;
		return m->m.op == PQ_RE ? eq : !eq;
	}
}

/* The spec's matchers, parsed and compiled; the spec checked them. */
static int compile(const struct spec_probe *sp, struct matcher *ms)
{
	for (size_t i = 0; i < sp->n_matchers; i++) {
		char *anchored = NULL;
		int r = promql_parse_matcher(sp->matchers[i], &ms[i].m, NULL);

		if (r < 0)
			return r;
		if (ms[i].m.op != PQ_RE && ms[i].m.op != PQ_NRE)
			continue;
		if (asprintf(&anchored, "^(%s)$", ms[i].m.value) < 0)
			return -ENOMEM;
		r = regcomp(&ms[i].re, anchored, REG_EXTENDED | REG_NOSUB);
		free(anchored);
		if (r != 0)
			return -EINVAL;
		ms[i].compiled = true;
	}
	return 0;
}

static void release_matchers(struct matcher *ms, size_t n)
{
	for (size_t i = 0; ms && i < n; i++) {
		promql_matcher_clear(&ms[i].m);
		if (ms[i].compiled)
			regfree(&ms[i].re);
	}
	free(ms);
}

static struct sev_count *find_sev(struct alerts_probe *ap, const char *severity)
{
	for (size_t i = 0; severity && i < ap->n_sev; i++)
		if (strcmp(ap->sev[i].name, severity) == 0)
			return &ap->sev[i];
	return NULL;
}

/* Counts one active alert that the matchers select. */
static int count_alert(struct alerts_probe *ap, json_t *a, json_t *labels, bool firing)
{
	const char *name = json_string_value(json_object_get(labels, "alertname")) ?: "?";
	const char *severity = json_string_value(json_object_get(labels, "severity"));
	struct sev_count *sc = find_sev(ap, severity);
	size_t o = strlen(ap->first);

	if (!sc) {
		ap->other++;
		return 0;
	}
	*(firing ? &sc->firing : &sc->pending) += 1;
	*(firing ? &ap->firing : &ap->pending) += 1;
	if (o < 300)
		snprintf(ap->first + o, sizeof(ap->first) - o, "%s%s (%s, %s)", o ? ", " : "", name,
		         firing ? "firing" : "pending", severity);
	if (json_array_size(ap->listed) >= MAX_LISTED)
		return 0;
	return json_array_append_new(ap->listed,
	                             json_pack("{s:s, s:s, s:s, s:s?, s:O}", "alertname", name,
	                                       "state", firing ? "firing" : "pending", "severity",
	                                       severity, "active_at",
	                                       json_string_value(json_object_get(a, "activeAt")),
	                                       "labels", labels)) < 0
	               ? -ENOMEM
	               : 0;
}

static int select_alerts(struct alerts_probe *ap, const struct matcher *ms, size_t n_ms)
{
	json_t *alerts = json_object_get(ap->data, "alerts"), *a;
	size_t i, k;

	if (!json_is_array(alerts))
		return -EPROTO;
	json_array_foreach (alerts, i, a) {
		json_t *labels = json_object_get(a, "labels");
		const char *state = json_string_value(json_object_get(a, "state")) ?: "";
		bool firing = strcmp(state, "firing") == 0, holds = json_is_object(labels);
		int r;

		if (!firing && strcmp(state, "pending") != 0)
			continue;
		for (k = 0; holds && k < n_ms; k++)
			holds = matcher_holds(&ms[k], labels);
		if (holds && (r = count_alert(ap, a, labels, firing)) < 0)
			return r;
	}
	return 0;
}

static void alerts_work(uv_work_t *w)
{
	struct alerts_probe *ap = w->data;

	ap->work_err = select_alerts(ap, ap->ms, ap->n_ms);
}

static void alerts_release(struct alerts_probe *ap)
{
	json_decref(ap->data);
	json_decref(ap->listed);
	release_matchers(ap->ms, ap->n_ms);
	for (size_t i = 0; ap->sev && i < ap->n_sev; i++)
		free(ap->sev[i].name);
	free(ap->sev);
	free(ap);
}

static void publish(struct alerts_probe *ap)
{
	struct probe *p = ap->p;
	char name[96];

	probe_set_metric(p, "firing", ap->firing);
	probe_set_metric(p, "pending", ap->pending);
	probe_set_metric(p, "other", ap->other);
	for (size_t i = 0; i < ap->n_sev; i++) {
		snprintf(name, sizeof(name), "firing_%s", ap->sev[i].name);
		probe_set_metric(p, name, ap->sev[i].firing);
		snprintf(name, sizeof(name), "pending_%s", ap->sev[i].name);
		probe_set_metric(p, name, ap->sev[i].pending);
	}
	p->details = json_pack("{s:O}", "alerts", ap->listed);
}

static void alerts_done(uv_work_t *w, int status)
{
	struct alerts_probe *ap = w->data;
	struct probe *p = ap->p;
	int r = status < 0 ? status : ap->work_err;
	double n = ap->firing + ap->pending;

	ap->working = false;
	if (ap->orphaned)
		return alerts_release(ap);
	if (p->finishing)
		return;
	if (r == -EPROTO)
		return probe_finish(p, PROBE_STATE_ERRORED,
		                    "%s/api/v1/alerts: the answer has no alerts list; is this a "
		                    "Prometheus server?",
		                    p->sp->prometheus);
	if (r < 0)
		return probe_finish(p, PROBE_STATE_ERRORED, "cannot read the alerts: %s",
		                    strerror(-r));
	publish(ap);
	if (n == 0)
		return probe_finish(p, PROBE_STATE_PASSED, NULL);
	probe_finish(p, PROBE_STATE_FAILED, "%.0f alert%s already active: %s%s", n,
	             n == 1 ? " is" : "s are", ap->first, strlen(ap->first) >= 300 ? ", ..." : "");
}

static void on_alerts(void *userdata, int err, json_t *data, const char *message)
{
	struct alerts_probe *ap = userdata;
	int r;

	ap->call = NULL;
	if (err < 0)
		return probe_finish(ap->p, PROBE_STATE_ERRORED, "%s", message);
	ap->data = json_incref(data); /* only the worker reads it now */
	ap->work.data = ap;
	r = uv_queue_work(ap->p->loop, &ap->work, alerts_work, alerts_done);
	if (r < 0)
		return probe_finish(ap->p, PROBE_STATE_ERRORED, "cannot read the alerts: %s",
		                    uv_strerror(r));
	ap->working = true;
}

static int alerts_start(struct probe *p)
{
	const struct spec_probe *sp = p->sp;
	struct alerts_probe *ap = calloc(1, sizeof(*ap));
	size_t n = sp->n_severities ? sp->n_severities : RD_ARRAY_SIZE(default_severities);
	int r;

	if (!ap)
		return -ENOMEM;
	ap->p = p;
	ap->sev = calloc(n, sizeof(*ap->sev));
	ap->listed = json_array();
	if (!ap->sev || !ap->listed) {
		alerts_release(ap);
		return -ENOMEM;
	}
	ap->n_sev = n;
	for (size_t i = 0; i < n; i++)
		if (!(ap->sev[i].name = strdup(sp->n_severities ? sp->severities[i]
		                                                : default_severities[i]))) {
			alerts_release(ap);
			return -ENOMEM;
		}
	ap->ms = calloc(sp->n_matchers + 1, sizeof(*ap->ms));
	ap->n_ms = sp->n_matchers;
	r = ap->ms ? compile(sp, ap->ms) : -ENOMEM;
	if (r == 0)
		r = promapi_get(p->http, sp, "/api/v1/alerts", NULL, sp->timeout_ms, on_alerts, ap,
		                &ap->call);
	if (r < 0) {
		alerts_release(ap);
		return r;
	}
	p->impl = ap;
	return 0;
}

static void alerts_cancel(struct probe *p)
{
	struct alerts_probe *ap = p->impl;

	if (ap) {
		promapi_cancel(ap->call);
		ap->call = NULL;
	}
	probe_finish(p, PROBE_STATE_CANCELLED, NULL);
}

static void alerts_free(struct probe *p)
{
	struct alerts_probe *ap = p->impl;

	p->impl = NULL;
	if (ap && ap->working)
		ap->orphaned = true; /* alerts_done releases it */
	else if (ap)
		alerts_release(ap);
}

/* --- the type: its spec fields, rules, metrics and ops --- */

/* A label matcher as PromQL writes one; a regular expression must pass
 * the ERE caps (lib/util/ere.h). */
static int check_matcher(char *s, char *msg, size_t len)
{
	struct promql_matcher m;
	struct promql_error err;
	char why[200];
	int r = promql_parse_matcher(s, &m, &err);

	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		snprintf(msg, len,
		         "is not a label matcher such as service=\"checkout\" (at byte %zu: %s)",
		         err.pos, err.message);
		return -EINVAL;
	}
	if ((m.op == PQ_RE || m.op == PQ_NRE) && ere_check(m.value, why, sizeof(why)) < 0) {
		snprintf(msg, len, "has a regular expression readyd refuses: %s", why);
		r = -EINVAL;
	}
	promql_matcher_clear(&m);
	return r;
}

/* A severity becomes part of metric names (firing_<severity>). */
static int check_severity(char *s, char *msg, size_t len)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64 ||
	    strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	              "0123456789_") != n) {
		snprintf(msg, len, "must be 1 to 64 letters, digits or '_' (it names metrics)");
		return -EINVAL;
	}
	return 0;
}

/* One field per line, aligned by hand: read as a schema more than as
 * code. */
/* clang-format off */
static const struct spec_field fields[] = {
	SPEC_F_COMMON, SPEC_F_PROMETHEUS, SPEC_F_HEADERS,
	{.key = "matchers",   .kind = FK_STRING_LIST, .off = SPEC_P(matchers),
	 .count_off = SPEC_P(n_matchers), .max = SPEC_MAX_LIST, .check = check_matcher},
	{.key = "severities", .kind = FK_STRING_LIST, .off = SPEC_P(severities),
	 .count_off = SPEC_P(n_severities), .max = 16, .check = check_severity},
	SPEC_F_TLS_CLIENT,
};
/* clang-format on */

static const struct probe_metric_def metrics[] = {
        {"firing", "alerts", PROBE_SAMPLES_NONE},
        {"pending", "alerts", PROBE_SAMPLES_NONE},
        {"other", "alerts", PROBE_SAMPLES_NONE},
        {"firing_critical", "alerts", PROBE_SAMPLES_NONE},
        {"firing_warning", "alerts", PROBE_SAMPLES_NONE},
        {"pending_critical", "alerts", PROBE_SAMPLES_NONE},
        {"pending_warning", "alerts", PROBE_SAMPLES_NONE},
};

const struct probe_type_def probe_type_prom_alerts = {
        .name = "prometheus-alerts",
        .section = "Monitoring",
        .fields = fields,
        .n_fields = RD_ARRAY_SIZE(fields),
        .deadline_fixed_ms = PROBE_DEFAULT_DEADLINE_MS,
        .metrics = metrics,
        .n_metrics = RD_ARRAY_SIZE(metrics),
        .ops =
                {
                        .start = alerts_start,
                        .cancel = alerts_cancel,
                        .free = alerts_free,
                },
};
