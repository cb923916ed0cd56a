/* reconcile: client and server latency side by side (reconcile.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lib/probe/reconcile.h"
#include "lib/util/util.h"

const double reconcile_quantiles[RECONCILE_QUANTILES] = {0.5, 0.95, 0.99};

const char *reconcile_client_metric(double q)
{
	static const struct {
		double q;
		const char *name;
	} known[] = {{0.5, "p50_ms"},
	             {0.9, "p90_ms"},
	             {0.95, "p95_ms"},
	             {0.99, "p99_ms"},
	             {0.999, "p999_ms"}};

	for (size_t i = 0; i < RD_ARRAY_SIZE(known); i++)
		if (fabs(q - known[i].q) < 1e-9)
			return known[i].name;
	return NULL;
}

bool reconcile_tail_ok(double q, double samples)
{
	return isnan(samples) || samples * (1 - q) >= RECONCILE_MIN_TAIL - 1e-9;
}

double reconcile_gap_ratio(const double *qs, const double *client, const double *server, size_t n,
                           double samples, size_t *ret_worst)
{
	double worst = NAN, worst_dist = -1;

	for (size_t i = 0; i < n; i++) {
		double r, dist;

		if (!(client[i] > 0) || !(server[i] > 0) || !isfinite(client[i]) ||
		    !isfinite(server[i]) || !reconcile_tail_ok(qs[i], samples))
			continue;
		r = client[i] / server[i];
		dist = fabs(log(r));
		if (dist > worst_dist) {
			worst_dist = dist;
			worst = r;
			if (ret_worst)
				*ret_worst = i;
		}
	}
	return worst;
}

bool reconcile_flagged(double gap_ratio, double tolerance)
{
	if (!isfinite(gap_ratio))
		return false;
	return gap_ratio > 1 + tolerance || gap_ratio < 1 / (1 + tolerance);
}

static double metric(json_t *probe, const char *name)
{
	json_t *v = json_object_get(json_object_get(probe, "metrics"), name);

	return json_is_number(v) ? json_number_value(v) : NAN;
}

static json_t *find_probe(json_t *run, const char *name)
{
	json_t *p;
	size_t i;

	json_array_foreach (json_object_get(run, "probes"), i, p) {
		const char *n = json_string_value(json_object_get(p, "name"));

		if (name && n && !strcmp(n, name))
			return p;
	}
	return NULL;
}

/* The side-by-side numbers of an entry, the ratio and the flag. */
static void fill(json_t *e, const double *qs, const double *client, const double *server, size_t n,
                 double samples, double tolerance)
{
	size_t worst = 0;
	double gap = reconcile_gap_ratio(qs, client, server, n, samples, &worst);
	char key[32];

	for (size_t i = 0; i < n; i++) {
		const char *m = reconcile_client_metric(qs[i]);

		snprintf(key, sizeof(key), "client_%s", m);
		json_object_set_new(e, key,
		                    isfinite(client[i]) ? json_real(client[i]) : json_null());
		snprintf(key, sizeof(key), "server_%s", m);
		json_object_set_new(e, key,
		                    isfinite(server[i]) ? json_real(server[i]) : json_null());
	}
	json_object_set_new(e, "tolerance", json_real(tolerance));
	json_object_set_new(e, "gap_ratio", isfinite(gap) ? json_real(gap) : json_null());
	json_object_set_new(e, "gap_quantile", isfinite(gap) ? json_real(qs[worst]) : json_null());
	json_object_set_new(e, "flagged",
	                    isfinite(gap) ? json_boolean(reconcile_flagged(gap, tolerance))
	                                  : json_null());
}

static double tolerance_of(json_t *d)
{
	json_t *t = json_object_get(d, "tolerance");

	return json_is_number(t) ? json_number_value(t) : RECONCILE_DEFAULT_TOLERANCE;
}

/* The successful answers a load probe's latency percentiles come from
 * (NaN when it does not say). */
static double successes(json_t *probe)
{
	return metric(probe, "requests") - metric(probe, "errors");
}

/* A load probe with server_latency: its own client and server metrics. */
static json_t *entry_server_latency(json_t *probe, json_t *sl)
{
	double client[RECONCILE_QUANTILES], server[RECONCILE_QUANTILES];
	const char *name = json_string_value(json_object_get(probe, "name"));
	json_t *e;
	char key[32];

	for (size_t i = 0; i < RECONCILE_QUANTILES; i++) {
		const char *m = reconcile_client_metric(reconcile_quantiles[i]);

		client[i] = metric(probe, m);
		snprintf(key, sizeof(key), "server_%s", m);
		server[i] = metric(probe, key);
	}
	e = json_pack("{s:s?, s:s?, s:s, s:O?}", "client_probe", name, "server_query", name,
	              "source", "server_latency", "metric", json_object_get(sl, "metric"));
	if (!e)
		return NULL;
	fill(e, reconcile_quantiles, client, server, RECONCILE_QUANTILES, successes(probe),
	     tolerance_of(sl));
	if (json_object_get(sl, "error"))
		json_object_set(e, "error", json_object_get(sl, "error"));
	return e;
}

/* A prometheus-query probe with reconcile: its value against the load
 * probe it names, at one quantile. */
static json_t *entry_query(json_t *run, json_t *probe, json_t *rc)
{
	const char *with = json_string_value(json_object_get(rc, "with"));
	double q = json_number_value(json_object_get(rc, "quantile"));
	const char *unit = json_string_value(json_object_get(rc, "unit"));
	json_t *load = find_probe(run, with), *e;
	const char *m = reconcile_client_metric(q);
	double client = m ? metric(load, m) : NAN;
	double server = metric(probe, "value") * (unit && !strcmp(unit, "ms") ? 1 : 1000);

	e = json_pack("{s:s?, s:O?, s:s}", "client_probe", with, "server_query",
	              json_object_get(probe, "name"), "source", "prometheus-query");
	if (!e || !m)
		return e;
	fill(e, &q, &client, &server, 1, successes(load), tolerance_of(rc));
	if (!isfinite(server))
		json_object_set_new(
		        e, "error",
		        json_string(json_string_value(json_object_get(probe, "error"))
		                            ? json_string_value(json_object_get(probe, "error"))
		                            : "the query published no value"));
	else if (!isfinite(client))
		json_object_set_new(e, "error", json_string("the load probe published no latency"));
	return e;
}

json_t *reconcile_run(json_t *run)
{
	json_t *out = json_array(), *p;
	size_t i;

	if (!out)
		return NULL;
	json_array_foreach (json_object_get(run, "probes"), i, p) {
		json_t *d = json_object_get(p, "details"), *e = NULL;
		json_t *sl = json_object_get(d, "server_latency"),
		       *rc = json_object_get(d, "reconcile");

		if (json_is_object(sl))
			e = entry_server_latency(p, sl);
		else if (json_is_object(rc))
			e = entry_query(run, p, rc);
		else
			continue;
		if (!e || json_array_append_new(out, e) < 0) {
			json_decref(out);
			return NULL;
		}
	}
	return out;
}
