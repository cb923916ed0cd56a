/* gate: parse criteria, judge one gate, combine outcomes into a verdict
 * (see gate.h). Strict on purpose: no input turns into a silent pass. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/gate/gate.h"
#include "lib/util/run_state.h"
#include "lib/util/util.h"
#include "lib/util/json_text.h"

static const char *const op_names[] = {"<", "<=", ">", ">=", "==", "!="};
static const char *const outcome_names[] = {"pass", "fail", "error", "waived", "no-baseline"};
static const char *const verdict_names[] = {"PASS", "FAIL", "ERROR"};

const char *gate_op_to_string(enum gate_op op)
{
	return op_names[op];
}

void gate_format(const struct gate_expr *ex, char *buf, size_t len)
{
	const char *op = gate_op_to_string(ex->op);
	const char *dot = ex->probe[0] ? "." : "";

	if (ex->rhs == GATE_RHS_BASELINE_MUL)
		snprintf(buf, len, "%s%s%s %s baseline * %.15g", ex->probe, dot, ex->metric, op,
		         ex->number);
	else if (ex->rhs == GATE_RHS_BASELINE_ADD)
		snprintf(buf, len, "%s%s%s %s baseline %c %.15g", ex->probe, dot, ex->metric, op,
		         ex->number < 0 ? '-' : '+', fabs(ex->number));
	else
		snprintf(buf, len, "%s%s%s %s %.15g", ex->probe, dot, ex->metric, op, ex->number);
}

const char *gate_outcome_to_string(enum gate_outcome o)
{
	return outcome_names[o];
}

const char *gate_verdict_to_string(enum verdict v)
{
	return verdict_names[v];
}

int gate_verdict_from_string(const char *s, enum verdict *ret_verdict)
{
	for (size_t i = 0; s && i < RD_ARRAY_SIZE(verdict_names); i++)
		if (strcmp(s, verdict_names[i]) == 0) {
			*ret_verdict = (enum verdict)i;
			return 0;
		}
	return -EINVAL;
}

int gate_outcome_from_string(const char *s, enum gate_outcome *ret_outcome)
{
	for (size_t i = 0; s && i < RD_ARRAY_SIZE(outcome_names); i++)
		if (strcmp(s, outcome_names[i]) == 0) {
			*ret_outcome = (enum gate_outcome)i;
			return 0;
		}
	return -EINVAL;
}

static void skip_space(const char **p)
{
	while (**p == ' ' || **p == '\t')
		(*p)++;
}

/* Copies a run of name characters into out; dash allowed in probe names. */
static int read_name(const char **p, bool dash, char out[GATE_NAME_MAX + 1])
{
	size_t n = 0;

	while ((**p >= 'a' && **p <= 'z') || (**p >= 'A' && **p <= 'Z') ||
	       (**p >= '0' && **p <= '9') || **p == '_' || (dash && **p == '-')) {
		if (n == GATE_NAME_MAX)
			return -ENAMETOOLONG;
		out[n++] = *(*p)++;
	}
	out[n] = '\0';
	return n > 0 ? 0 : -EINVAL;
}

static int read_op(const char **p, enum gate_op *ret)
{
	/* Two-character operators first so "<=" is not read as "<". */
	static const enum gate_op order[] = {GATE_OP_LE, GATE_OP_GE, GATE_OP_EQ,
	                                     GATE_OP_NE, GATE_OP_LT, GATE_OP_GT};

	for (size_t i = 0; i < RD_ARRAY_SIZE(order); i++) {
		size_t len = strlen(op_names[order[i]]);

		if (strncmp(*p, op_names[order[i]], len) == 0) {
			*p += len;
			*ret = order[i];
			return 0;
		}
	}
	return -EINVAL;
}

static int read_number(const char **p, double *ret)
{
	char *end;
	double v;

	if (!((**p >= '0' && **p <= '9') || **p == '-' || **p == '+' || **p == '.'))
		return -EINVAL;
	errno = 0;
	v = strtod(*p, &end);
	if (end == *p || errno == ERANGE || !isfinite(v))
		return -EINVAL;
	*p = end;
	*ret = v;
	return 0;
}

/* RHS: NUMBER | baseline | baseline (*|+|-) NUMBER */
static int read_rhs(const char **p, struct gate_expr *ex, char *err, size_t errlen)
{
	if (strncmp(*p, "baseline", 8) == 0) {
		char c;

		*p += 8;
		skip_space(p);
		ex->rhs = GATE_RHS_BASELINE_MUL;
		ex->number = 1.0;
		if (**p == '\0')
			return 0;
		c = *(*p)++;
		skip_space(p);
		if ((c != '*' && c != '+' && c != '-') || read_number(p, &ex->number) < 0) {
			snprintf(err, errlen,
			         "after 'baseline' expected '* FACTOR', '+ DELTA' or '- DELTA'");
			return -EINVAL;
		}
		if (c != '*')
			ex->rhs = GATE_RHS_BASELINE_ADD;
		if (c == '-')
			ex->number = -ex->number;
		return 0;
	}
	if (read_number(p, &ex->number) < 0) {
		snprintf(err, errlen, "expected a number or 'baseline' after the operator");
		return -EINVAL;
	}
	ex->rhs = GATE_RHS_NUMBER;
	return 0;
}

static int parse_one(const char **p, bool want_probe, struct gate_expr *ex, char *err,
                     size_t errlen)
{
	const char *want = want_probe ? "PROBE.METRIC" : "METRIC";

	memset(ex, 0, sizeof(*ex));
	skip_space(p);
	if (want_probe) {
		if (read_name(p, true, ex->probe) < 0 || **p != '.') {
			snprintf(err, errlen, "expected %s OP VALUE, e.g. latency.p95_ms < 100",
			         want);
			return -EINVAL;
		}
		(*p)++;
	}
	if (read_name(p, false, ex->metric) < 0) {
		snprintf(err, errlen, "expected a metric name in %s OP VALUE", want);
		return -EINVAL;
	}
	skip_space(p);
	if (read_op(p, &ex->op) < 0) {
		snprintf(err, errlen, "expected one of < <= > >= == != after %s", want);
		return -EINVAL;
	}
	skip_space(p);
	if (read_rhs(p, ex, err, errlen) < 0)
		return -EINVAL;
	if (!want_probe && ex->rhs != GATE_RHS_NUMBER) {
		snprintf(err, errlen, "an SLO condition compares with a number, not 'baseline'");
		return -EINVAL;
	}
	skip_space(p);
	return 0;
}

int gate_parse(const char *s, bool want_probe, struct gate_expr *ret, char *err, size_t errlen)
{
	struct gate_expr ex;
	const char *p = s;

	if (parse_one(&p, want_probe, &ex, err, errlen) < 0)
		return -EINVAL;
	if (*p != '\0') {
		snprintf(err, errlen, "unexpected '%.16s' after the expression", p);
		return -EINVAL;
	}
	*ret = ex;
	return 0;
}

int gate_parse_slo(const char *s, struct gate_expr *ret, int max, char *err, size_t errlen)
{
	const char *p = s;
	int n = 0;

	for (;;) {
		if (n == max) {
			snprintf(err, errlen, "at most %d conditions joined by 'and'", max);
			return -EINVAL;
		}
		if (parse_one(&p, false, &ret[n], err, errlen) < 0)
			return -EINVAL;
		n++;
		if (*p == '\0')
			return n;
		if (strncmp(p, "and", 3) != 0 || (p[3] != ' ' && p[3] != '\t')) {
			snprintf(err, errlen, "expected 'and' or the end, got '%.16s'", p);
			return -EINVAL;
		}
		p += 3;
	}
}

bool gate_compare(double value, enum gate_op op, double threshold)
{
	if (isnan(value) || isnan(threshold))
		return false;
	switch (op) {
	case GATE_OP_LT:
		return value < threshold;
	case GATE_OP_LE:
		return value <= threshold;
	case GATE_OP_GT:
		return value > threshold;
	case GATE_OP_GE:
		return value >= threshold;
	case GATE_OP_EQ:
		return value == threshold;
	case GATE_OP_NE:
		return value != threshold;
	}
	return false;
}

/* Default sample floor for percentile metrics ("p95_ms", "p999_ms"): enough
 * requests that at least ten lie above the percentile (1000 for p99), so
 * the figure is measured rather than one unlucky request. The mean and
 * the maximum ("mean_ms", "max_ms" and their "_uncorrected" twins) get
 * the median's floor (20): one lucky answer among failures is not a
 * latency. throughput_rps (successful requests per second) gets the same
 * floor: a rate of a handful of successes among thousands of fast
 * errors is not a throughput. 0: no floor. */
#define MEAN_MAX_MIN_SAMPLES 20 /* as p50_ms: ten above the median */

/* Streamed answers' figures are percentiles like the latency's:
 * ttft_p95_ms needs what p95_ms needs. */
static const char *const pct_prefixes[] = {"ttfb_", "ttft_", "itl_"};

static int64_t default_min_samples(const char *metric)
{
	double q;
	int digits = 0;
	const char *p;

	for (size_t i = 0; i < sizeof(pct_prefixes) / sizeof(pct_prefixes[0]); i++)
		if (strncmp(metric, pct_prefixes[i], strlen(pct_prefixes[i])) == 0) {
			metric += strlen(pct_prefixes[i]);
			break;
		}
	p = metric + 1;

	if (strcmp(metric, "mean_ms") == 0 || strcmp(metric, "mean_ms_uncorrected") == 0 ||
	    strcmp(metric, "max_ms") == 0 || strcmp(metric, "max_ms_uncorrected") == 0 ||
	    strcmp(metric, "throughput_rps") == 0)
		return MEAN_MAX_MIN_SAMPLES;
	if (metric[0] != 'p' || !(*p >= '0' && *p <= '9'))
		return 0;
	for (q = 0; *p >= '0' && *p <= '9'; p++, digits++)
		q = q * 10 + (*p - '0');
	if (strncmp(p, "_ms", 3) != 0 || digits < 2)
		return 0;
	/* p50 -> 0.50, p999 -> 0.999 */
	q /= pow(10, digits);
	if (q <= 0 || q >= 1)
		return 0;
	return (int64_t)ceil(10.0 / (1.0 - q) - 1e-9);
}

int64_t gate_min_samples(const char *metric, int64_t min_samples)
{
	return min_samples > 0 ? min_samples : default_min_samples(metric);
}

static void fmt_num(double v, char *buf, size_t len)
{
	rd_fmt_double(v, buf, len);
}

struct judgement {
	enum gate_outcome outcome;
	double threshold; /* NaN: unknown */
	char reason[512];
};

static void judge_missing(const struct gate_expr *ex, const struct gate_input *in,
                          struct judgement *j)
{
	enum run_state ps = RUN_ERROR;

	j->outcome = GATE_ERROR;
	if (in->probe_state && run_state_from_string(in->probe_state, &ps) < 0)
		ps = RUN_ERROR; /* a word nobody knows: no value came of it */
	if (!in->probe_state)
		snprintf(j->reason, sizeof(j->reason), "no probe named '%s' ran", ex->probe);
	else if (ps != RUN_PASSED && ps != RUN_FAILED)
		snprintf(j->reason, sizeof(j->reason),
		         "probe '%s' ended %s%s%s, so %s.%s has no value", ex->probe,
		         in->probe_state, in->probe_error ? ": " : "",
		         in->probe_error ? in->probe_error : "", ex->probe, ex->metric);
	else if (ps == RUN_FAILED && in->probe_error) {
		/* The probe judged the service and found it failing (an alert that
		 * did not fire has no seconds_to_fire): the gate fails with it. */
		j->outcome = GATE_FAIL;
		snprintf(j->reason, sizeof(j->reason),
		         "probe '%s' failed, so %s.%s has no value: %s", ex->probe, ex->probe,
		         ex->metric, in->probe_error);
	} else
		snprintf(j->reason, sizeof(j->reason), "probe '%s' did not publish metric '%s'",
		         ex->probe, ex->metric);
}

/* Why a metric has no value: say what was measured, not just "NaN". */
static void judge_nan(const struct gate_expr *ex, const struct gate_input *in, struct judgement *j)
{
	j->outcome = GATE_ERROR;
	if (in->samples == 0 && in->requests > 0)
		snprintf(j->reason, sizeof(j->reason),
		         "%s.%s has no value: all %lld measured requests failed, so no latency "
		         "was measured",
		         ex->probe, ex->metric, (long long)in->requests);
	else if (in->samples == 0)
		snprintf(j->reason, sizeof(j->reason),
		         "%s.%s has no value: no request was measured", ex->probe, ex->metric);
	else
		snprintf(j->reason, sizeof(j->reason),
		         "%s.%s has no value: the probe could not compute it (NaN)", ex->probe,
		         ex->metric);
}

/* Too few samples: an ERROR that says how many there were, and how many
 * requests failed when failures are what left too few. */
static void judge_too_few(const struct gate_expr *ex, int64_t min_samples,
                          const struct gate_input *in, struct judgement *j)
{
	j->outcome = GATE_ERROR;
	if (in->requests > in->samples)
		snprintf(j->reason, sizeof(j->reason),
		         "%s: only %lld successful requests; at least %lld are needed "
		         "(min_samples; %lld of %lld measured requests failed)",
		         ex->metric, (long long)in->samples, (long long)min_samples,
		         (long long)(in->requests - in->samples), (long long)in->requests);
	else
		snprintf(j->reason, sizeof(j->reason),
		         "%s.%s measured on %lld requests; at least %lld are needed (min_samples)",
		         ex->probe, ex->metric, (long long)in->samples, (long long)min_samples);
}

/* A baseline older than the newest pass: say which run it came from and
 * why the newer ones were not used. */
static void say_skipped(const struct gate_expr *ex, int64_t min_samples,
                        const struct gate_input *in, struct judgement *j)
{
	size_t n = strlen(j->reason);

	snprintf(j->reason + n, sizeof(j->reason) - n,
	         " (baseline from run %lld: %lld newer passed run%s, the newest run %lld, had "
	         "fewer than %lld samples behind %s.%s)",
	         (long long)in->baseline_run, (long long)in->baseline_skipped,
	         in->baseline_skipped > 1 ? "s" : "", (long long)in->baseline_skipped_newest,
	         (long long)min_samples, ex->probe, ex->metric);
}

static void judge_value(const struct gate_expr *ex, bool advisory, int64_t min_samples,
                        const struct gate_input *in, struct judgement *j)
{
	char v[32], t[32];

	if (isnan(in->value)) {
		judge_nan(ex, in, j);
		return;
	}
	if (min_samples > 0 && in->samples >= 0 && in->samples < min_samples) {
		judge_too_few(ex, min_samples, in, j);
		return;
	}
	if (ex->rhs == GATE_RHS_NUMBER)
		j->threshold = ex->number;
	else if (in->baseline_err < 0) {
		j->outcome = GATE_ERROR;
		snprintf(j->reason, sizeof(j->reason), "cannot read the baseline: %s",
		         strerror(-in->baseline_err));
		return;
	} else if (!in->has_baseline) {
		j->outcome = GATE_NO_BASELINE;
		if (in->baseline_skipped > 0)
			snprintf(
			        j->reason, sizeof(j->reason),
			        "no baseline: %lld earlier passed run%s (newest run %lld) had fewer "
			        "than %lld samples behind %s.%s (min_samples); holds",
			        (long long)in->baseline_skipped,
			        in->baseline_skipped > 1 ? "s" : "",
			        (long long)in->baseline_skipped_newest, (long long)min_samples,
			        ex->probe, ex->metric);
		else
			snprintf(j->reason, sizeof(j->reason),
			         "no baseline: no earlier passed run of this service and "
			         "environment; holds");
		return;
	} else if (ex->rhs == GATE_RHS_BASELINE_MUL)
		j->threshold = in->baseline * ex->number;
	else
		j->threshold = in->baseline + ex->number;
	fmt_num(in->value, v, sizeof(v));
	fmt_num(j->threshold, t, sizeof(t));
	if (gate_compare(in->value, ex->op, j->threshold)) {
		j->outcome = GATE_PASS;
		snprintf(j->reason, sizeof(j->reason), "%s %s %s", v, gate_op_to_string(ex->op), t);
	} else {
		j->outcome = GATE_FAIL;
		snprintf(j->reason, sizeof(j->reason), "%s is not %s %s%s", v,
		         gate_op_to_string(ex->op), t,
		         advisory ? " (advisory: does not block)" : "");
	}
	if (in->has_baseline && in->baseline_skipped > 0)
		say_skipped(ex, min_samples, in, j);
}

static json_t *num_or_null(bool have, double v)
{
	return have ? rd_json_number(v) : json_null();
}

int gate_judge(const char *expr_text, const struct gate_expr *ex, bool advisory,
               int64_t min_samples, const struct gate_input *in, json_t **ret_result,
               enum gate_outcome *ret_outcome)
{
	struct judgement j = {.threshold = NAN};
	char metric[2 * GATE_NAME_MAX + 2];
	json_t *o;

	if (min_samples <= 0)
		min_samples = default_min_samples(ex->metric);
	if (ex->rhs == GATE_RHS_NUMBER)
		j.threshold = ex->number;
	if (!in->has_value)
		judge_missing(ex, in, &j);
	else
		judge_value(ex, advisory, min_samples, in, &j);

	snprintf(metric, sizeof(metric), "%s.%s", ex->probe, ex->metric);
	o = json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:b, s:I, s:s, s:s}", "expr",
	              expr_text, "metric", metric, "op", gate_op_to_string(ex->op), "threshold",
	              num_or_null(true, j.threshold), "value",
	              num_or_null(in->has_value, in->value), "samples",
	              in->samples >= 0 ? json_integer(in->samples) : json_null(), "baseline",
	              num_or_null(in->has_baseline, in->baseline), "baseline_run",
	              in->baseline_run > 0 ? json_integer(in->baseline_run) : json_null(),
	              "advisory", advisory, "min_samples", (json_int_t)min_samples, "outcome",
	              gate_outcome_to_string(j.outcome), "reason", j.reason);
	if (!o)
		return -ENOMEM;
	*ret_result = o;
	*ret_outcome = j.outcome;
	return 0;
}

enum verdict gate_verdict(const struct verdict_input *in)
{
	if (in->probes_error > 0 || in->gates_error > 0)
		return VERDICT_ERROR;
	if (in->probes_failed > 0 || in->gates_failed > 0 || in->checklist_failed > 0)
		return VERDICT_FAIL;
	return VERDICT_PASS;
}
