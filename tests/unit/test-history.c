/* Unit tests of decisions: every gate outcome through judge_run_with()
 * (pass, fail, error for a missing metric, NaN and too few samples,
 * advisory fail, baseline pass/fail/none, waived, expired and revoked
 * waivers, stale checklist evidence), canonical gate text, and the
 * judge's baseline and waiver lookups on a real store. The store's own
 * history operations are in test-store-conformance.c.
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <limits.h>

#include "lib/gate/gate.h"
#include "lib/loadgen/hist.h"
#include "lib/gate/judge.h"
#include "lib/spec/spec.h"
#include "lib/store/store.h"
#include "lib/util/util.h"
#include "tests/unit/store-fixture.h"

#define DAY (24LL * 3600 * 1000)

__attribute__((format(printf, 1, 2))) static struct spec *parse(const char *fmt, ...)
{
	char buf[4096];
	struct spec_error err;
	struct spec *s = NULL;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	ck_assert_msg(spec_parse(buf, strlen(buf), SPEC_FORMAT_YAML, &s, &err) == 0, "%s: %s",
	              err.path, err.message);
	return s;
}

#define SPEC_HEAD                                                                                  \
	"apiVersion: readyd/v1\nservice: svc\nversion: '1'\nenvironment: staging\n"                \
	"target: {url: 'http://127.0.0.1:1/'}\n"                                                   \
	"probes:\n  - name: latency\n    type: load\n    mode: closed\n    requests: 100\n"

/* ---- Judge: one case per outcome --------------------------------------- */

struct lookup_case {
	bool has_baseline;
	double baseline;
	bool waiver;
};

static int fake_baseline(void *userdata, const char *probe, const char *metric, int64_t min_samples,
                         bool successes, struct judge_baseline *ret)
{
	const struct lookup_case *c = userdata;

	if (!c->has_baseline)
		return -ENOENT;
	ret->value = c->baseline;
	ret->run = 41;
	ret->skipped = 0;
	ret->skipped_newest = 0;
	return 0;
}

static int fake_waiver(void *userdata, const char *expr, json_t **ret_waiver)
{
	const struct lookup_case *c = userdata;

	if (!c->waiver)
		return -ENOENT;
	*ret_waiver = json_pack("{s:i, s:s, s:s, s:s}", "id", 7, "reason", "known slow disk",
	                        "approver", "alice", "expires_at", "2026-12-01T00:00:00.000Z");
	return 0;
}

static const struct {
	const char *name;
	const char *gate;    /* one YAML list item */
	const char *metrics; /* JSON object */
	struct lookup_case lk;
	const char *outcome;
	enum verdict verdict;
	const char *reason_part;
} judge_cases[] = {
        {"pass",
         "latency.p95_ms < 100",
         "{\"p95_ms\": 40, \"requests\": 5000}",
         {0},
         "pass",
         VERDICT_PASS,
         "40"},
        {"fail",
         "latency.p95_ms < 100",
         "{\"p95_ms\": 140, \"requests\": 5000}",
         {0},
         "fail",
         VERDICT_FAIL,
         "140"},
        {"missing metric",
         "latency.p95_ms < 100",
         "{\"requests\": 5000}",
         {0},
         "error",
         VERDICT_ERROR,
         "p95_ms"},
        {"NaN",
         "latency.p95_ms < 100",
         "{\"p95_ms\": null, \"requests\": 5000}",
         {0},
         "error",
         VERDICT_ERROR,
         "p95_ms"},
        {"too few samples",
         "{expr: 'latency.p99_ms < 100', min_samples: 1000}",
         "{\"p99_ms\": 40, \"requests\": 10}",
         {0},
         "error",
         VERDICT_ERROR,
         "10"},
        {"advisory fail",
         "{expr: 'latency.p95_ms < 100', advisory: true}",
         "{\"p95_ms\": 140, \"requests\": 5000}",
         {0},
         "fail",
         VERDICT_PASS,
         "advisory"},
        {"baseline pass",
         "latency.p95_ms <= baseline * 1.10",
         "{\"p95_ms\": 105, \"requests\": 5000}",
         {true, 100, false},
         "pass",
         VERDICT_PASS,
         "105"},
        {"baseline fail",
         "latency.p95_ms <= baseline * 1.10",
         "{\"p95_ms\": 120, \"requests\": 5000}",
         {true, 100, false},
         "fail",
         VERDICT_FAIL,
         "120"},
        {"no baseline",
         "latency.p95_ms <= baseline * 1.10",
         "{\"p95_ms\": 120, \"requests\": 5000}",
         {0},
         "no-baseline",
         VERDICT_PASS,
         "baseline"},
        {"waived",
         "latency.p95_ms < 100",
         "{\"p95_ms\": 140, \"requests\": 5000}",
         {false, 0, true},
         "waived",
         VERDICT_PASS,
         "underneath it fails: 140"},
        {"error is never waived",
         "latency.p95_ms < 100",
         "{\"requests\": 5000}",
         {false, 0, true},
         "error",
         VERDICT_ERROR,
         "p95_ms"},
};

START_TEST(test_judge_outcomes)
{
	struct spec *s = parse(SPEC_HEAD "gates:\n  - %s\n", judge_cases[_i].gate);
	struct lookup_case lc = judge_cases[_i].lk;
	struct judge_lookup lk = {fake_baseline, fake_waiver, &lc};
	json_t *metrics = json_loads(judge_cases[_i].metrics, 0, NULL);
	struct judge_probe jp = {"latency", "passed", NULL, metrics};
	json_t *gates = NULL, *checklist = NULL, *g;
	enum verdict v;

	ck_assert_int_eq(judge_run_with(s, &jp, 1, &lk, T0, &gates, &checklist, &v), 0);
	g = json_array_get(gates, 0);
	ck_assert_msg(
	        !strcmp(json_string_value(json_object_get(g, "outcome")), judge_cases[_i].outcome),
	        "%s: outcome %s", judge_cases[_i].name,
	        json_string_value(json_object_get(g, "outcome")));
	ck_assert_int_eq(v, judge_cases[_i].verdict);
	ck_assert_msg(strstr(json_string_value(json_object_get(g, "reason")),
	                     judge_cases[_i].reason_part),
	              "%s: reason '%s'", judge_cases[_i].name,
	              json_string_value(json_object_get(g, "reason")));
	ck_assert_ptr_nonnull(json_object_get(g, "waiver"));
	if (!strcmp(judge_cases[_i].outcome, "waived")) {
		/* Still shows what failed, and which waiver let it through. */
		ck_assert_double_eq(json_number_value(json_object_get(g, "value")), 140);
		ck_assert_double_eq(json_number_value(json_object_get(g, "threshold")), 100);
		ck_assert_int_eq(
		        json_integer_value(json_object_get(json_object_get(g, "waiver"), "id")), 7);
	} else {
		ck_assert(json_is_null(json_object_get(g, "waiver")));
	}
	if (judge_cases[_i].lk.has_baseline) {
		ck_assert_double_eq(json_number_value(json_object_get(g, "baseline")), 100);
		ck_assert_int_eq(json_integer_value(json_object_get(g, "baseline_run")), 41);
	}
	json_decref(gates);
	json_decref(checklist);
	json_decref(metrics);
	spec_free(s);
}
END_TEST

static const struct {
	const char *name;
	const char *item; /* YAML mapping of one checklist item */
	const char *outcome;
	enum verdict verdict;
	const char *reason_part;
} check_cases[] = {
        {"fresh", "{evidence: 'https://x', tested: 2026-11-20, max_age: 90d}", "pass", VERDICT_PASS,
         "evidence given"},
        {"stale", "{evidence: 'https://x', tested: 2026-01-02, max_age: 90d}", "fail", VERDICT_FAIL,
         "stale"},
        {"did not pass", "{evidence: 'https://x', passed: false}", "fail", VERDICT_FAIL,
         "did not pass"},
        {"future date", "{evidence: 'https://x', tested: 2027-06-01}", "fail", VERDICT_FAIL,
         "future"},
};

START_TEST(test_checklist_evidence)
{
	struct spec *s = parse(SPEC_HEAD "checklist:\n  rollback_plan: %s\n  required: "
	                                 "[rollback_plan]\n",
	                       check_cases[_i].item);
	struct judge_probe jp = {"latency", "passed", NULL, NULL};
	json_t *gates = NULL, *checklist = NULL, *c;
	enum verdict v;

	ck_assert_int_eq(judge_run_with(s, &jp, 1, NULL, T0, &gates, &checklist, &v), 0);
	c = json_array_get(checklist, 0);
	ck_assert_str_eq(json_string_value(json_object_get(c, "outcome")), check_cases[_i].outcome);
	ck_assert_msg(strstr(json_string_value(json_object_get(c, "reason")),
	                     check_cases[_i].reason_part),
	              "%s: reason '%s'", check_cases[_i].name,
	              json_string_value(json_object_get(c, "reason")));
	ck_assert_int_eq(v, check_cases[_i].verdict);
	json_decref(gates);
	json_decref(checklist);
	spec_free(s);
}
END_TEST

static const struct {
	const char *a, *b;
} same_text[] = {
        {"latency.p95_ms<=baseline*1.10", "latency.p95_ms <= baseline * 1.1"},
        {"x.y  <  100", "x.y < 1e2"},
        {"x.y <= baseline - 5", "x.y<=baseline-5.0"},
        {"x.y != 0.1", "x.y != 0.10"},
};

START_TEST(test_gate_format_canonical)
{
	struct gate_expr ea, eb;
	char ta[256], tb[256], err[128];

	ck_assert_int_eq(gate_parse(same_text[_i].a, true, &ea, err, sizeof(err)), 0);
	ck_assert_int_eq(gate_parse(same_text[_i].b, true, &eb, err, sizeof(err)), 0);
	gate_format(&ea, ta, sizeof(ta));
	gate_format(&eb, tb, sizeof(tb));
	ck_assert_str_eq(ta, tb);
	/* The canonical text parses back to itself. */
	ck_assert_int_eq(gate_parse(ta, true, &eb, err, sizeof(err)), 0);
	gate_format(&eb, tb, sizeof(tb));
	ck_assert_str_eq(ta, tb);
}
END_TEST

/* ---- Store ------------------------------------------------------------ */

static struct store *open_mem(void)
{
	struct store *st = NULL;
	char err[256];

	ck_assert_msg(store_open(":memory:", &st, err, sizeof(err)) == 0, "%s", err);
	return st;
}

START_TEST(test_judge_with_store_baseline)
{
	struct store *st = open_mem();
	int64_t a = add_run(st, "svc", "staging", "1", "passed", 100, T0);
	int64_t cur = add_run(st, "svc", "staging", "2", "running", 0, T0 + 60000);
	struct store_judge_ctx ctx = {st, "svc", "staging", cur, T0 + 120000};
	struct judge_lookup lk = {store_judge_baseline, store_judge_waiver, &ctx};
	struct spec *s = parse(SPEC_HEAD "gates:\n  - latency.p95_ms <= baseline * 1.10\n");
	json_t *metrics = json_pack("{s:f, s:i}", "p95_ms", 120.0, "requests", 5000);
	struct judge_probe jp = {"latency", "passed", NULL, metrics};
	json_t *gates = NULL, *checklist = NULL, *g;
	enum verdict v;

	ck_assert_int_eq(judge_run_with(s, &jp, 1, &lk, ctx.now_ms, &gates, &checklist, &v), 0);
	g = json_array_get(gates, 0);
	ck_assert_str_eq(json_string_value(json_object_get(g, "outcome")), "fail");
	ck_assert_int_eq(json_integer_value(json_object_get(g, "baseline_run")), a);
	ck_assert_double_eq_tol(json_number_value(json_object_get(g, "threshold")), 110, 1e-9);
	ck_assert_int_eq(v, VERDICT_FAIL);
	json_decref(gates);
	json_decref(checklist);
	json_decref(metrics);
	spec_free(s);
	store_free(st);
}
END_TEST

/* Waivers through the store: active waives, expired and revoked do not,
 * another environment does not, NULL environment is any. */
static const struct {
	const char *name;
	const char *env; /* of the waiver */
	int64_t created, expires;
	bool revoke;
	const char *outcome;
} waiver_cases[] = {
        {"active", "staging", T0 - DAY, T0 + DAY, false, "waived"},
        {"any environment", NULL, T0 - DAY, T0 + DAY, false, "waived"},
        {"expired", "staging", T0 - 2 * DAY, T0 - DAY, false, "fail"},
        {"revoked", "staging", T0 - DAY, T0 + DAY, true, "fail"},
        {"other environment", "prod", T0 - DAY, T0 + DAY, false, "fail"},
};

START_TEST(test_waivers_in_judge)
{
	struct store *st = open_mem();
	struct store_waiver_new w = {
	        "svc", waiver_cases[_i].env,     "latency.p95_ms < 100",  "known", "alice",
	        NULL,  waiver_cases[_i].created, waiver_cases[_i].expires};
	struct store_judge_ctx ctx = {st, "svc", "staging", 0, T0};
	struct judge_lookup lk = {store_judge_baseline, store_judge_waiver, &ctx};
	/* Written differently from the waiver: matched by canonical text. */
	struct spec *s = parse(SPEC_HEAD "gates:\n  - latency.p95_ms<1e2\n");
	json_t *metrics = json_pack("{s:f, s:i}", "p95_ms", 140.0, "requests", 5000);
	struct judge_probe jp = {"latency", "passed", NULL, metrics};
	json_t *gates = NULL, *checklist = NULL, *list = NULL, *g;
	enum verdict v;
	int64_t id;

	ck_assert_int_eq(store_waiver_create(st, &w, &id), 0);
	if (waiver_cases[_i].revoke)
		ck_assert_int_eq(store_waiver_revoke(st, "svc", id, T0 - 1), 0);
	ck_assert_int_eq(judge_run_with(s, &jp, 1, &lk, T0, &gates, &checklist, &v), 0);
	g = json_array_get(gates, 0);
	ck_assert_str_eq(json_string_value(json_object_get(g, "outcome")),
	                 waiver_cases[_i].outcome);
	ck_assert_int_eq(v,
	                 strcmp(waiver_cases[_i].outcome, "waived") ? VERDICT_FAIL : VERDICT_PASS);
	/* The list flags it. */
	ck_assert_int_eq(store_waivers_list(st, "svc", T0, &list), 0);
	ck_assert_int_eq(json_array_size(list), 1);
	ck_assert(json_is_true(json_object_get(json_array_get(list, 0), "active")) ==
	                  !strcmp(waiver_cases[_i].outcome, "waived") ||
	          !strcmp(waiver_cases[_i].name, "other environment"));
	ck_assert(json_is_true(json_object_get(json_array_get(list, 0), "expired")) ==
	          !strcmp(waiver_cases[_i].name, "expired"));
	json_decref(list);
	json_decref(gates);
	json_decref(checklist);
	json_decref(metrics);
	spec_free(s);
	store_free(st);
}
END_TEST

static Suite *history_suite(void)
{
	Suite *s = suite_create("history");
	TCase *tc = tcase_create("judge");

	tcase_add_loop_test(tc, test_judge_outcomes, 0, (int)RD_ARRAY_SIZE(judge_cases));
	tcase_add_loop_test(tc, test_checklist_evidence, 0, (int)RD_ARRAY_SIZE(check_cases));
	tcase_add_loop_test(tc, test_gate_format_canonical, 0, (int)RD_ARRAY_SIZE(same_text));
	suite_add_tcase(s, tc);
	tc = tcase_create("store");
	tcase_add_test(tc, test_judge_with_store_baseline);
	tcase_add_loop_test(tc, test_waivers_in_judge, 0, (int)RD_ARRAY_SIZE(waiver_cases));
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(history_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
