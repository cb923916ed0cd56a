/* gate: the criteria language and the verdict. A gate is
 * `PROBE.METRIC OP RHS` where OP is one of < <= > >= == != and RHS is a
 * number, `baseline * FACTOR` or `baseline + DELTA` (DELTA may be negative
 * via `baseline - DELTA`). Evaluation never turns missing data into a
 * pass: a missing or NaN metric is an ERROR for that gate, with a reason.
 *
 * This module is pure: no I/O, no store. Callers hand in values through
 * a lookup callback.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define GATE_NAME_MAX 64

enum gate_op {
	GATE_OP_LT = 0,
	GATE_OP_LE,
	GATE_OP_GT,
	GATE_OP_GE,
	GATE_OP_EQ,
	GATE_OP_NE,
};

enum gate_rhs {
	GATE_RHS_NUMBER = 0,
	GATE_RHS_BASELINE_MUL, /* baseline * number */
	GATE_RHS_BASELINE_ADD, /* baseline + number (number may be < 0) */
};

struct gate_expr {
	char probe[GATE_NAME_MAX + 1]; /* "" for SLO conditions (metric only) */
	char metric[GATE_NAME_MAX + 1];
	enum gate_op op;
	enum gate_rhs rhs;
	double number;
};

enum gate_outcome {
	GATE_PASS = 0,
	GATE_FAIL,
	GATE_ERROR,
	GATE_WAIVED,
	GATE_NO_BASELINE,
};

enum verdict {
	VERDICT_PASS = 0,
	VERDICT_FAIL,
	VERDICT_ERROR,
};

const char *gate_op_to_string(enum gate_op op);
const char *gate_outcome_to_string(enum gate_outcome o);
const char *gate_verdict_to_string(enum verdict v); /* "PASS" "FAIL" "ERROR" */

/* The words back to the enums (for what the store and the API hand
 * back). Return 0 or -EINVAL (NULL or not one of the words). */
int gate_outcome_from_string(const char *s, enum gate_outcome *ret_outcome);
int gate_verdict_from_string(const char *s, enum verdict *ret_verdict);

/* Parses a gate expression ("latency.p95_ms <= baseline * 1.10"). With
 * want_probe false, parses an SLO condition without a probe ("p95_ms <
 * 100"). On error returns -EINVAL and writes a sentence to err. */
int gate_parse(const char *s, bool want_probe, struct gate_expr *ret, char *err, size_t errlen);

/* Parses "COND [and COND]..." (capacity SLOs) into up to max conditions.
 * Returns the count, or -EINVAL with err filled. */
int gate_parse_slo(const char *s, struct gate_expr *ret, int max, char *err, size_t errlen);

/* The canonical text of a parsed expression ("latency.p95_ms <= baseline
 * * 1.1"): equal expressions give equal text however they were spaced or
 * their numbers written, so waivers can match gates by text. */
void gate_format(const struct gate_expr *ex, char *buf, size_t len);

/* Holds `value OP threshold`? NaN never holds. */
bool gate_compare(double value, enum gate_op op, double threshold);

/* What a gate needs to be judged, gathered by the caller. */
struct gate_input {
	bool has_value; /* the probe published the metric */
	double value;
	int64_t samples;  /* requests behind the value, -1 if not a sample metric;
	                   * for latency metrics the successful requests only */
	int64_t requests; /* every measured request, failed or not (0: unknown) */
	const char
	        *probe_state; /* "passed", "failed", "error", "cancelled", NULL if no such probe */
	const char *probe_error; /* the probe's error message, or NULL */
	int baseline_err;        /* < 0: the baseline could not be read (not "none") */
	bool has_baseline;
	double baseline;
	int64_t baseline_run; /* 0 if none */
	/* Newer passed runs passed over as baselines: too few samples. */
	int64_t baseline_skipped;
	int64_t baseline_skipped_newest; /* 0 if none */
};

/* The sample floor a gate applies: min_samples when > 0, else the
 * metric's default (docs/spec.md, gates); 0: none. */
int64_t gate_min_samples(const char *metric, int64_t min_samples);

/* Judges one gate. Returns a new JSON object with the fields of the run
 * resource's `gates[]` entries (expr, metric, op, threshold, value,
 * samples, baseline, baseline_run, advisory, min_samples, outcome,
 * reason) and writes the outcome. -ENOMEM only. */
int gate_judge(const char *expr_text, const struct gate_expr *ex, bool advisory,
               int64_t min_samples, const struct gate_input *in, json_t **ret_result,
               enum gate_outcome *ret_outcome);

/* Combines outcomes into a verdict: ERROR if any probe errored or any
 * blocking gate is an error; else FAIL if any probe failed, any blocking
 * gate failed or any required checklist item failed; else PASS. */
struct verdict_input {
	int probes_error;
	int probes_failed;
	int gates_error;  /* blocking gates only */
	int gates_failed; /* blocking gates only */
	int checklist_failed;
};
enum verdict gate_verdict(const struct verdict_input *in);
