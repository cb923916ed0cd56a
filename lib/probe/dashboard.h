/* dashboard: reading a Grafana dashboard (its JSON model) for the
 * dashboard probe (probe_dashboard.c): the panels and their Prometheus
 * queries, the template variables and their values, and the substitution
 * of variables ($var, ${var}, ${var:fmt}, [[var]]) and of Grafana's
 * built-ins ($__interval, $__rate_interval, $__range...) into a query.
 * Pure functions of the JSON, no I/O; any thread.
 */
#pragma once

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/spec/spec.h"

#define DASHBOARD_MAX_PANELS  200
#define DASHBOARD_MAX_QUERIES 400
#define DASHBOARD_MAX_EXPR    (16 * 1024)
#define DASHBOARD_STEPS       250 /* points of a range query, like a panel's width */

/* The dashboard of doc: doc itself, or doc.dashboard for an answer of
 * Grafana's GET /api/dashboards/uid/{uid} ({dashboard, meta}). NULL when
 * doc has neither panels nor rows. Borrowed. */
json_t *dashboard_model(json_t *doc);

/* The panels that query Prometheus, rows' nested panels and the legacy
 * rows[].panels included: a new array of
 *   {"title": "...", "id": n|null, "targets": [{"refId": "A", "expr": "..."}]}
 * in the dashboard's order. A target counts when it has a non-empty expr,
 * is not hidden and its datasource is absent, a string, or an object
 * whose type is "prometheus". Panels without such a target (text, rows)
 * are left out. Returns 0; -E2BIG over DASHBOARD_MAX_PANELS or
 * DASHBOARD_MAX_QUERIES; -ENOMEM. */
int dashboard_panels(json_t *dash, json_t **ret);

/* The template variables' values: templating.list[].current.value (a
 * string, or an array joined as a|b), overridden by vars (the spec's).
 * New object name -> string. */
json_t *dashboard_variables(json_t *dash, const struct spec_label *vars, size_t n_vars);

/* Grafana's built-ins for a window of range_ms with the target scraped
 * every scrape_ms. */
struct dashboard_builtins {
	int64_t range_ms;
	int64_t scrape_ms;
};

/* $__interval: max(range / DASHBOARD_STEPS, scrape interval), in ms. */
int64_t dashboard_interval_ms(const struct dashboard_builtins *b);

/* expr with every variable replaced. $__interval, $__interval_ms,
 * $__rate_interval (max($__interval + scrape, 4 * scrape)), $__range,
 * $__range_s, $__range_ms come from b; others from vals. On success
 * *ret is a new string. -ENOENT for a variable without a value (its
 * name in why), -E2BIG past DASHBOARD_MAX_EXPR, -ENOMEM. */
int dashboard_substitute(const char *expr, json_t *vals, const struct dashboard_builtins *b,
                         char **ret, char *why, size_t whylen);

/* Whether a query answer (the envelope's data) holds data: a scalar, a
 * string, a vector with a sample, a matrix with a point, NaN not
 * counting (what histogram_quantile gives for no traffic). */
bool dashboard_has_data(json_t *data);
