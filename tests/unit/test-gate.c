/* Unit tests for lib/gate: parsing, comparison, judging, verdicts. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/gate/gate.h"

static const struct {
	const char *text;
	const char *probe, *metric;
	enum gate_op op;
	enum gate_rhs rhs;
	double number;
} valid[] = {
        {"latency.p95_ms < 100", "latency", "p95_ms", GATE_OP_LT, GATE_RHS_NUMBER, 100},
        {"latency.p99_ms<=250", "latency", "p99_ms", GATE_OP_LE, GATE_RHS_NUMBER, 250},
        {"capacity.throughput_rps >= 1e2", "capacity", "throughput_rps", GATE_OP_GE,
         GATE_RHS_NUMBER, 100},
        {"alert-rules.missing == 0", "alert-rules", "missing", GATE_OP_EQ, GATE_RHS_NUMBER, 0},
        {"x.y != -3.5", "x", "y", GATE_OP_NE, GATE_RHS_NUMBER, -3.5},
        {"tls.version > 1.2", "tls", "version", GATE_OP_GT, GATE_RHS_NUMBER, 1.2},
        {"latency.p95_ms <= baseline * 1.10", "latency", "p95_ms", GATE_OP_LE,
         GATE_RHS_BASELINE_MUL, 1.10},
        {"latency.p95_ms <= baseline + 5", "latency", "p95_ms", GATE_OP_LE, GATE_RHS_BASELINE_ADD,
         5},
        {"latency.p95_ms <= baseline - 5", "latency", "p95_ms", GATE_OP_LE, GATE_RHS_BASELINE_ADD,
         -5},
        {"  a_b.c  <  baseline  ", "a_b", "c", GATE_OP_LT, GATE_RHS_BASELINE_MUL, 1},
};

START_TEST(test_parse_valid)
{
	struct gate_expr ex;
	char err[256] = "";

	ck_assert_int_eq(gate_parse(valid[_i].text, true, &ex, err, sizeof(err)), 0);
	ck_assert_str_eq(ex.probe, valid[_i].probe);
	ck_assert_str_eq(ex.metric, valid[_i].metric);
	ck_assert_int_eq(ex.op, valid[_i].op);
	ck_assert_int_eq(ex.rhs, valid[_i].rhs);
	ck_assert_double_eq_tol(ex.number, valid[_i].number, 1e-12);
}
END_TEST

static const struct {
	const char *text;
	const char *message_part;
} invalid[] = {
        {"", "PROBE.METRIC"},
        {"latency", "PROBE.METRIC"},
        {"latency.", "metric name"},
        {"latency.p95_ms", "one of <"},
        {"latency.p95_ms =< 3", "one of <"},
        {"latency.p95_ms < ", "a number or 'baseline'"},
        {"latency.p95_ms < abc", "a number or 'baseline'"},
        {"latency.p95_ms < 1 2", "unexpected"},
        {"latency.p95_ms < baseline / 2", "after 'baseline'"},
        {"latency.p95_ms < nan", "a number"},
        {"latency.p95_ms < inf", "a number"},
        {"latency.p95_ms < 1e999", "a number"},
        {"lat ency.p95_ms < 1", "PROBE.METRIC"},
        {"latency.p95-ms < 1", "one of <"},
};

START_TEST(test_parse_invalid)
{
	struct gate_expr ex;
	char err[256] = "";

	ck_assert_int_eq(gate_parse(invalid[_i].text, true, &ex, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, invalid[_i].message_part), "'%s': message '%s' lacks '%s'",
	              invalid[_i].text, err, invalid[_i].message_part);
}
END_TEST

START_TEST(test_parse_long_name)
{
	char text[200], err[256];
	struct gate_expr ex;

	memset(text, 'a', 100);
	snprintf(text + 100, sizeof(text) - 100, ".m < 1");
	ck_assert_int_eq(gate_parse(text, true, &ex, err, sizeof(err)), -EINVAL);
}
END_TEST

START_TEST(test_parse_slo)
{
	struct gate_expr c[4];
	char err[256];

	ck_assert_int_eq(gate_parse_slo("p95_ms < 100", c, 4, err, sizeof(err)), 1);
	ck_assert_str_eq(c[0].metric, "p95_ms");
	ck_assert_str_eq(c[0].probe, "");
	ck_assert_int_eq(
	        gate_parse_slo("p95_ms < 100 and error_rate < 0.01", c, 4, err, sizeof(err)), 2);
	ck_assert_str_eq(c[1].metric, "error_rate");
	ck_assert_double_eq(c[1].number, 0.01);
	ck_assert_int_eq(gate_parse_slo("p95_ms < 100 or x < 1", c, 4, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "'and'"));
	ck_assert_int_eq(gate_parse_slo("p95_ms < baseline", c, 4, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(gate_parse_slo("a < 1 and b < 2 and c < 3", c, 2, err, sizeof(err)),
	                 -EINVAL);
	ck_assert_int_eq(gate_parse_slo("lat.p95_ms < 1", c, 4, err, sizeof(err)), -EINVAL);
}
END_TEST

START_TEST(test_compare)
{
	ck_assert(gate_compare(1, GATE_OP_LT, 2));
	ck_assert(!gate_compare(2, GATE_OP_LT, 2));
	ck_assert(gate_compare(2, GATE_OP_LE, 2));
	ck_assert(gate_compare(3, GATE_OP_GT, 2));
	ck_assert(gate_compare(2, GATE_OP_GE, 2));
	ck_assert(gate_compare(2, GATE_OP_EQ, 2));
	ck_assert(gate_compare(1, GATE_OP_NE, 2));
	for (int op = GATE_OP_LT; op <= GATE_OP_NE; op++) {
		ck_assert(!gate_compare(NAN, op, 1));
		ck_assert(!gate_compare(1, op, NAN));
	}
}
END_TEST

/* Judges text against an input and checks outcome and a reason fragment. */
static json_t *judge(const char *text, bool advisory, int64_t min_samples,
                     const struct gate_input *in, enum gate_outcome want, const char *reason_part)
{
	struct gate_expr ex;
	enum gate_outcome o;
	char err[256];
	json_t *res;

	ck_assert_int_eq(gate_parse(text, true, &ex, err, sizeof(err)), 0);
	ck_assert_int_eq(gate_judge(text, &ex, advisory, min_samples, in, &res, &o), 0);
	ck_assert_msg(o == want, "%s: outcome %s, want %s (%s)", text, gate_outcome_to_string(o),
	              gate_outcome_to_string(want),
	              json_string_value(json_object_get(res, "reason")));
	ck_assert_str_eq(json_string_value(json_object_get(res, "outcome")),
	                 gate_outcome_to_string(want));
	ck_assert_msg(strstr(json_string_value(json_object_get(res, "reason")), reason_part),
	              "reason '%s' lacks '%s'", json_string_value(json_object_get(res, "reason")),
	              reason_part);
	ck_assert_str_eq(json_string_value(json_object_get(res, "expr")), text);
	return res;
}

START_TEST(test_judge_pass_fail)
{
	struct gate_input in = {
	        .has_value = true, .value = 40.33, .samples = 12000, .probe_state = "passed"};
	json_t *r;

	r = judge("latency.p95_ms < 100", false, 0, &in, GATE_PASS, "40.33 < 100");
	ck_assert_double_eq(json_number_value(json_object_get(r, "value")), 40.33);
	ck_assert_double_eq(json_number_value(json_object_get(r, "threshold")), 100);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "samples")), 12000);
	ck_assert_str_eq(json_string_value(json_object_get(r, "metric")), "latency.p95_ms");
	ck_assert_str_eq(json_string_value(json_object_get(r, "op")), "<");
	json_decref(r);
	r = judge("latency.p95_ms < 10", false, 0, &in, GATE_FAIL, "40.33 is not < 10");
	json_decref(r);
	r = judge("latency.p95_ms < 10", true, 0, &in, GATE_FAIL, "advisory");
	ck_assert(json_is_true(json_object_get(r, "advisory")));
	json_decref(r);
}
END_TEST

START_TEST(test_judge_missing_and_nan)
{
	struct gate_input none = {.samples = -1};
	struct gate_input not_published = {.samples = -1, .probe_state = "passed"};
	struct gate_input errored = {
	        .samples = -1, .probe_state = "error", .probe_error = "connection refused"};
	struct gate_input nan = {
	        .has_value = true, .value = NAN, .samples = -1, .probe_state = "passed"};
	struct gate_input failed = {.samples = -1,
	                            .probe_state = "failed",
	                            .probe_error = "alert HighErrorRate did not fire within 3s"};
	json_t *r;

	r = judge("latency.p95_ms < 100", false, 0, &none, GATE_ERROR, "no probe named");
	ck_assert(json_is_null(json_object_get(r, "value")));
	json_decref(r);
	json_decref(judge("latency.p95_ms < 100", false, 0, &not_published, GATE_ERROR,
	                  "did not publish metric 'p95_ms'"));
	json_decref(judge("latency.p95_ms < 100", false, 0, &errored, GATE_ERROR,
	                  "connection refused"));
	json_decref(judge("latency.p95_ms < 100", false, 0, &nan, GATE_ERROR, "NaN"));
	/* A probe that failed the service explains its missing metric: fail,
	 * not error (readyd did find out). */
	r = judge("drill.seconds_to_fire < 120", false, 0, &failed, GATE_FAIL,
	          "probe 'drill' failed, so drill.seconds_to_fire has no value: alert "
	          "HighErrorRate did not fire within 3s");
	ck_assert(json_is_null(json_object_get(r, "value")));
	json_decref(r);
	/* Missing data never passes, whatever the operator. */
	json_decref(judge("latency.errors != 1", false, 0, &nan, GATE_ERROR, "NaN"));
}
END_TEST

START_TEST(test_judge_min_samples)
{
	struct gate_input in = {
	        .has_value = true, .value = 5, .samples = 999, .probe_state = "passed"};
	json_t *r;

	/* p99 needs 1000 samples by default; p95 200; p50 20; p999 10000. */
	r = judge("latency.p99_ms < 100", false, 0, &in, GATE_ERROR, "at least 1000");
	ck_assert_int_eq(json_integer_value(json_object_get(r, "min_samples")), 1000);
	json_decref(r);
	in.samples = 1000;
	json_decref(judge("latency.p99_ms < 100", false, 0, &in, GATE_PASS, "5 < 100"));
	in.samples = 199;
	json_decref(judge("latency.p95_ms < 100", false, 0, &in, GATE_ERROR, "at least 200"));
	in.samples = 9999;
	json_decref(judge("latency.p999_ms < 100", false, 0, &in, GATE_ERROR, "at least 10000"));
	/* mean_ms and max_ms (and their twins) have the median's floor, 20. */
	in.samples = 19;
	r = judge("latency.mean_ms < 100", false, 0, &in, GATE_ERROR, "at least 20");
	ck_assert_int_eq(json_integer_value(json_object_get(r, "min_samples")), 20);
	json_decref(r);
	json_decref(judge("latency.max_ms_uncorrected < 100", false, 0, &in, GATE_ERROR,
	                  "at least 20"));
	in.samples = 20;
	json_decref(judge("latency.max_ms < 100", false, 0, &in, GATE_PASS, "5 < 100"));
	/* Streamed answers' percentiles have the latency's floors. */
	in.samples = 199;
	json_decref(judge("chat.ttft_p95_ms < 100", false, 0, &in, GATE_ERROR, "at least 200"));
	json_decref(judge("chat.itl_p95_ms < 100", false, 0, &in, GATE_ERROR, "at least 200"));
	in.samples = 19;
	json_decref(judge("chat.ttfb_mean_ms < 100", false, 0, &in, GATE_ERROR, "at least 20"));
	json_decref(judge("chat.ttft_p50_ms_uncorrected < 100", false, 0, &in, GATE_ERROR,
	                  "at least 20"));
	json_decref(judge("chat.events_mean < 100", false, 0, &in, GATE_PASS, "5 < 100"));
	/* Explicit min_samples wins; other metrics have no floor. */
	in.samples = 10;
	json_decref(judge("latency.p99_ms < 100", false, 5, &in, GATE_PASS, "5 < 100"));
	json_decref(judge("latency.error_rate < 100", false, 0, &in, GATE_PASS, "5 < 100"));
	json_decref(judge("latency.p95_ms < 100", false, 50, &in, GATE_ERROR, "at least 50"));
	/* Not a request-count metric: samples unknown, no floor applies. */
	in.samples = -1;
	json_decref(judge("latency.p99_ms < 100", false, 0, &in, GATE_PASS, "5 < 100"));
}
END_TEST

/* Latency rests on successful requests: the reasons say how many failed. */
START_TEST(test_judge_failed_requests)
{
	struct gate_input few = {.has_value = true,
	                         .value = 0.3,
	                         .samples = 41,
	                         .requests = 1530,
	                         .probe_state = "passed"};
	struct gate_input all_failed = {.has_value = true,
	                                .value = NAN,
	                                .samples = 0,
	                                .requests = 764,
	                                .probe_state = "error"};
	struct gate_input nothing = {
	        .has_value = true, .value = NAN, .samples = 0, .probe_state = "error"};

	json_decref(judge("l.p99_ms < 25", false, 0, &few, GATE_ERROR,
	                  "p99_ms: only 41 successful requests; at least 1000 are needed "
	                  "(min_samples; 1489 of 1530 measured requests failed)"));
	json_decref(judge("l.p99_ms < 25", false, 0, &all_failed, GATE_ERROR,
	                  "l.p99_ms has no value: all 764 measured requests failed"));
	json_decref(
	        judge("l.p99_ms < 25", false, 0, &nothing, GATE_ERROR, "no request was measured"));
}
END_TEST

START_TEST(test_judge_baseline)
{
	struct gate_input in = {
	        .has_value = true, .value = 105, .samples = -1, .probe_state = "passed"};
	json_t *r;

	r = judge("latency.p95_ms <= baseline * 1.10", false, 0, &in, GATE_NO_BASELINE,
	          "no baseline");
	ck_assert(json_is_null(json_object_get(r, "baseline")));
	json_decref(r);
	in.has_baseline = true;
	in.baseline = 100;
	in.baseline_run = 7;
	r = judge("latency.p95_ms <= baseline * 1.10", false, 0, &in, GATE_PASS, "105 <= 110");
	ck_assert_int_eq(json_integer_value(json_object_get(r, "baseline_run")), 7);
	ck_assert_double_eq(json_number_value(json_object_get(r, "baseline")), 100);
	json_decref(r);
	json_decref(judge("latency.p95_ms <= baseline * 1.04", false, 0, &in, GATE_FAIL,
	                  "105 is not <= 104"));
	json_decref(judge("latency.p95_ms <= baseline + 5", false, 0, &in, GATE_PASS, "<= 105"));
	json_decref(judge("latency.p95_ms <= baseline - 1", false, 0, &in, GATE_FAIL, "99"));
	/* A baseline that could not be read is an error, never "no baseline". */
	in.has_baseline = false;
	in.baseline_err = -EIO;
	json_decref(judge("latency.p95_ms <= baseline * 1.10", false, 0, &in, GATE_ERROR,
	                  "cannot read the baseline"));
}
END_TEST

START_TEST(test_verdict)
{
	struct verdict_input ok = {0}, v;

	ck_assert_int_eq(gate_verdict(&ok), VERDICT_PASS);
	v = ok, v.gates_failed = 1;
	ck_assert_int_eq(gate_verdict(&v), VERDICT_FAIL);
	v = ok, v.checklist_failed = 1;
	ck_assert_int_eq(gate_verdict(&v), VERDICT_FAIL);
	v = ok, v.probes_failed = 1;
	ck_assert_int_eq(gate_verdict(&v), VERDICT_FAIL);
	v = ok, v.gates_error = 1, v.gates_failed = 3;
	ck_assert_int_eq(gate_verdict(&v), VERDICT_ERROR);
	v = ok, v.probes_error = 1;
	ck_assert_int_eq(gate_verdict(&v), VERDICT_ERROR);
	ck_assert_str_eq(gate_verdict_to_string(VERDICT_FAIL), "FAIL");
}
END_TEST

static Suite *gate_suite(void)
{
	Suite *s = suite_create("gate");
	TCase *tc = tcase_create("parse");

	tcase_add_loop_test(tc, test_parse_valid, 0, sizeof(valid) / sizeof(valid[0]));
	tcase_add_loop_test(tc, test_parse_invalid, 0, sizeof(invalid) / sizeof(invalid[0]));
	tcase_add_test(tc, test_parse_long_name);
	tcase_add_test(tc, test_parse_slo);
	tcase_add_test(tc, test_compare);
	suite_add_tcase(s, tc);
	tc = tcase_create("judge");
	tcase_add_test(tc, test_judge_pass_fail);
	tcase_add_test(tc, test_judge_missing_and_nan);
	tcase_add_test(tc, test_judge_min_samples);
	tcase_add_test(tc, test_judge_failed_requests);
	tcase_add_test(tc, test_judge_baseline);
	tcase_add_test(tc, test_verdict);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(gate_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
