/* reconcile: the client's latency (a load probe's percentiles) next to
 * the server's (its own histogram, read from Prometheus) for the same
 * window, and whether they disagree by more than a tolerance. The load
 * probe's `server_latency` publishes gap_ratio with it; the run's
 * `reconciliation` array is built from the stored probes with
 * reconcile_run() for the API and every report. Pure; any thread.
 * docs/MEASUREMENT.md "Client and server latency" defines gap_ratio.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#define RECONCILE_DEFAULT_TOLERANCE 0.2
#define RECONCILE_QUANTILES         3 /* 0.5, 0.95, 0.99 */

/* The quantiles the load probe's server_latency asks for, and the
 * metric names of each side ("p95_ms", "server_p95_ms"). */
extern const double reconcile_quantiles[RECONCILE_QUANTILES];

/* "p95_ms" for 0.95 (also 0.9 -> p90_ms, 0.999 -> p999_ms), NULL for a
 * quantile a load probe does not publish. Static string. */
const char *reconcile_client_metric(double q);

/* A quantile is compared only when at least this many of the client's
 * answers lie beyond it: a p99 of 300 answers rests on 3 of them, and
 * the server's histogram places those within a bucket that may span
 * 50-100 ms, so their ratio says nothing about a gap. */
#define RECONCILE_MIN_TAIL 10

/* Whether samples answers leave RECONCILE_MIN_TAIL beyond quantile q
 * (true when samples is unknown: NaN). */
bool reconcile_tail_ok(double q, double samples);

/* gap_ratio over the quantiles qs[i] present on both sides (client[i]
 * and server[i] > 0; NaN: absent) whose tail holds enough of the
 * client's `samples` successful answers (reconcile_tail_ok): client /
 * server at the quantile where they disagree most (the ratio furthest
 * from 1, either way). Returns that ratio and its index in *ret_worst,
 * or NaN when no quantile qualifies. */
double reconcile_gap_ratio(const double *qs, const double *client, const double *server, size_t n,
                           double samples, size_t *ret_worst);

/* gap_ratio beyond 1 + tolerance, or below 1 / (1 + tolerance). */
bool reconcile_flagged(double gap_ratio, double tolerance);

/* The run's reconciliation entries, from run.probes (as the store gives
 * them): one per load probe with details.server_latency, one per
 * prometheus-query probe with details.reconcile. New array (empty when
 * none), NULL on ENOMEM. */
json_t *reconcile_run(json_t *run);
