/* metrics: readyd's own Prometheus metrics. A process-wide registry of
 * the counters only the running process knows (HTTP requests by route
 * and code, probe durations by type), and the renderer of the text
 * exposition format 0.0.4 for GET /metrics, which adds what the store
 * knows (runs by state, DB size, the last verdict and gated values of
 * every service and environment).
 *
 * Main loop thread only (the registry has no lock: only that thread
 * serves HTTP and finishes probes). It must not do I/O: callers pass the
 * store's numbers in.
 */
#pragma once

#include <jansson.h>
#include <stddef.h>

#define METRICS_MAX_ROUTES   256 /* distinct {route, code} series kept */
#define METRICS_MAX_TYPES    32  /* distinct probe types */
#define METRICS_MAX_VERDICTS 8   /* PASS, FAIL, ERROR and none */

/* Counts one answered HTTP request and observes how long it took from
 * arrival to answer. route is the route pattern ("/v1/runs/{id}"), never
 * the path, so the label set stays bounded; NULL counts as "unmatched".
 * Borrowed. */
void metrics_http_request(const char *method, const char *route, unsigned code, double seconds);

/* Observes one finished probe's duration. */
void metrics_probe_observe(const char *type, double seconds);

/* Adds a probe type's histogram at zero, so its series exist before its
 * first probe ends (rate() cannot see the increase of a series that
 * appears at 1). Borrowed. */
void metrics_probe_declare(const char *type);

/* Observes one ended run's duration from start to end; verdict NULL (a
 * cancelled or interrupted run) counts as "none". */
void metrics_run_observe(const char *verdict, double seconds);

/* Forgets everything counted (for tests). */
void metrics_reset(void);

/* The exposition. store_snap (borrowed, may be NULL) is what
 * store_metrics_snapshot() returns: {runs_by_state: {state: n},
 * db_size_bytes, gates: [{service, environment, verdict, finished_at,
 * values: {metric: number}}]}, to which the caller may add what the
 * process knows: queued_limit (integer), store_degraded (boolean) and
 * process: {cpu_seconds, resident_bytes, virtual_bytes, open_fds, max_fds,
 * start_time_seconds} (numbers; see procstat.h) and answer_cache:
 * {entries, bytes, max_bytes, hits, misses} (integers). version goes into
 * readyd_build_info.
 * Returns a new string (caller frees) or NULL on ENOMEM. */
char *metrics_render(json_t *store_snap, const char *version, size_t *ret_len);
