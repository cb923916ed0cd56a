/* report: renders a stored run for people and machines. The input is the
 * run resource as store_run_get() returns it (plus its stored spec); the
 * output a new document. Pure: no store, no I/O; any thread (reports of
 * big runs may be rendered on a worker).
 */
#pragma once

#include <jansson.h>

/* The JSON report: the run, its (redacted) spec, a summary of gate and
 * checklist outcomes, and when it was generated. run and spec borrowed;
 * spec may be NULL. New reference, NULL on ENOMEM. */
json_t *report_json(json_t *run, json_t *spec);

/* The human and CI renderings. Each returns a new NUL-terminated string
 * the caller frees (and its length in *ret_len when not NULL), or NULL on
 * ENOMEM. run and spec borrowed; spec may be NULL. All text from the run
 * is escaped for the output format: a spec or an error message holding
 * markup renders as text.
 *
 * Markdown: the readiness_report.md shape: verdict first, then sections
 * Performance, Monitoring, Incident response, Rollback, Security,
 * Checklist (and Waivers when the run used any). */
char *report_markdown(json_t *run, json_t *spec, size_t *ret_len);

/* HTML: one self-contained page (inline CSS and SVG, no script, no
 * external reference): verdict banner, gate table, latency percentile
 * and per-second timeline charts of load probes, trend sparklines.
 * trends (borrowed, may be NULL) is an array of {metric, points: [{run_id,
 * version, value, at}]} oldest first, as store_report_trends() gives. */
char *report_html(json_t *run, json_t *spec, json_t *trends, size_t *ret_len);

/* The body of report_html() (banner to waivers, no <html>/<head>) appended
 * to b, for pages that bring their own head and stylesheet (the web
 * console); report_html_css() is the stylesheet report_html() inlines. */
struct svg_buf;
void report_html_body(struct svg_buf *b, json_t *run, json_t *trends);
const char *report_html_css(void);

/* JUnit XML: one <testsuite>, one <testcase> per gate and per checklist
 * item; failing and erroring ones carry value vs threshold and reason. */
char *report_junit(json_t *run, json_t *spec, size_t *ret_len);

/* The run's client/server latency reconciliation: run.reconciliation
 * when the run carries it (the API adds it), else built from its probes
 * (lib/probe/reconcile.h). New reference; an empty array when none; NULL
 * on ENOMEM. */
json_t *report_reconciliation(json_t *run);

/* One reconciliation entry as a line of plain text (not escaped):
 * "load vs load (server_latency inference_duration_seconds): p50 12.1 ms
 * client / 10.2 ms server, ...; gap_ratio 3.01 at p95: FLAGGED (beyond
 * 20 %)". Truncated to fit len (> 0). */
void report_reconcile_text(json_t *entry, char *buf, size_t len);

/* The report section a probe type belongs to ("Performance",
 * "Monitoring", "Rollback", "Security"), and the section of a gate (by
 * the type of the probe it names in run). Static strings. */
const char *report_section_of_type(const char *probe_type);
const char *report_gate_section(json_t *run, json_t *gate);

/* The waivers a run's judgement used: [{expr, id, reason, approver,
 * expires_at}] from its gates' `waiver` objects, in gate order. New
 * reference (an empty array when none), NULL on ENOMEM. */
json_t *report_waivers_used(json_t *run);
