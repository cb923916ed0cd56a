/* Unit tests for lib/promapi's reader of /api/v1/query and
 * /api/v1/query_range answers (the prometheus-query probe's value), on
 * answers recorded from a real Prometheus 2.42
 * (tests/unit/fixtures/prom-query-*.json): vector, matrix reduced by
 * min|max|avg|last, scalar, empty result, several series, NaN and
 * infinities sent as strings, and the "status": "error" envelope. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/prom/promapi.h"

/* A fixture's whole document; the caller decrefs it. */
static json_t *fixture(const char *name)
{
	const char *dir = getenv("READYD_FIXTURES");
	char path[4096];
	json_error_t jerr;
	json_t *root;

	snprintf(path, sizeof(path), "%s/prom-query-%s.json", dir ? dir : "tests/unit/fixtures",
	         name);
	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	ck_assert_msg(root, "%s: %s", path, jerr.text);
	return root;
}

/* Reads a fixture's answer with function; returns promapi_query_value's. */
static int read_answer(const char *name, const char *function, struct promapi_query_result *res,
                       char *why, size_t len, json_t **ret_root)
{
	json_t *root = fixture(name);
	json_t *data = json_object_get(root, "data");

	ck_assert_ptr_nonnull(data);
	*ret_root = root;
	why[0] = '\0';
	return promapi_query_value(data, function, res, why, len);
}

static const struct {
	const char *fixture, *function;
	double value;
	long points;
	const char *job; /* the series' job label; NULL: no series (scalar) */
} ok_cases[] = {
        {"vector", NULL, 1, 1, "self"},
        {"scalar", NULL, 1, -1, NULL},
        {"matrix", NULL, 1, 13, "self"},
        {"matrix", "last", 1, 13, "self"},
        {"matrix", "min", 0, 13, "self"},
        {"matrix", "max", 9, 13, "self"},
        {"matrix", "avg", 55.0 / 13.0, 13, "self"},
        /* Every other point is NaN: skipped, not averaged in. */
        {"matrix-nan", "avg", 5, 7, "self"},
        {"matrix-nan", "min", 1, 7, "self"},
        {"matrix-nan", "max", 9, 7, "self"},
        {"matrix-nan", "last", 1, 7, "self"},
};

START_TEST(test_value)
{
	struct promapi_query_result res;
	char why[512];
	json_t *root;
	int e = read_answer(ok_cases[_i].fixture, ok_cases[_i].function, &res, why, sizeof(why),
	                    &root);

	ck_assert_msg(e == 0, "%s/%s: %d %s", ok_cases[_i].fixture,
	              ok_cases[_i].function ? ok_cases[_i].function : "-", e, why);
	ck_assert_double_eq_tol(res.value, ok_cases[_i].value, 1e-9);
	ck_assert_int_eq(res.points, ok_cases[_i].points);
	if (ok_cases[_i].job)
		ck_assert_str_eq(json_string_value(json_object_get(res.series, "job")),
		                 ok_cases[_i].job);
	else
		ck_assert_ptr_null(res.series);
	json_decref(root);
}
END_TEST

static const struct {
	const char *fixture, *function;
	int err;
	const char *why; /* a part of the reason */
	long points;     /* what the probe publishes in details */
	bool has_series; /* the probe shows the series in details */
} bad_cases[] = {
        {"empty", NULL, -ERANGE, "no series (empty result)", -1, false},
        {"vector-several", NULL, -ERANGE, "returned 3 series, one expected", -1, false},
        {"matrix-several", "max", -ERANGE, "returned 3 series, one expected", -1, false},
        {"vector-nan", NULL, -ERANGE, "value is NaN", 1, true},
        {"vector-inf", NULL, -ERANGE, "value is +Inf", 1, true},
        {"vector-neginf", NULL, -ERANGE, "value is -Inf", 1, true},
        {"matrix-allnan", "avg", -ERANGE, "value is NaN", 0, true},
        {"matrix-allnan", "last", -ERANGE, "value is NaN", 0, true},
        /* A scalar NaN is no number either. */
        {"scalar-nan", NULL, -ERANGE, "value is NaN", -1, false},
};

START_TEST(test_no_value)
{
	struct promapi_query_result res;
	char why[512];
	json_t *root;
	int e = read_answer(bad_cases[_i].fixture, bad_cases[_i].function, &res, why, sizeof(why),
	                    &root);

	ck_assert_msg(e == bad_cases[_i].err, "%s: %d (%s)", bad_cases[_i].fixture, e, why);
	ck_assert_msg(strstr(why, bad_cases[_i].why), "%s: '%s'", bad_cases[_i].fixture, why);
	ck_assert_int_eq(res.points, bad_cases[_i].points);
	ck_assert(!!res.series == bad_cases[_i].has_series);
	json_decref(root);
}
END_TEST

/* Answers that are not the API's shape: -EPROTO with a reason, never a
 * value and never an unwritten reason. */
static const struct {
	const char *data, *why;
} malformed_cases[] = {
        {"{}", "no resultType/result"},
        {"{\"resultType\": \"vector\"}", "no resultType/result"},
        {"{\"resultType\": \"string\", \"result\": [1, \"a\"]}", "result type 'string'"},
        {"{\"resultType\": \"scalar\", \"result\": [1]}", "scalar result is malformed"},
        {"{\"resultType\": \"scalar\", \"result\": [1, 2]}", "scalar result is malformed"},
        {"{\"resultType\": \"vector\", \"result\": [{\"metric\": {\"a\": \"b\"}, "
         "\"value\": [1, \"x1\"]}]}",
         "series {\"a\":\"b\"} has a malformed value"},
        {"{\"resultType\": \"matrix\", \"result\": [{\"metric\": {}, "
         "\"values\": [[1, \"1\"], [2]]}]}",
         "series {} has a malformed value"},
        {"{\"resultType\": \"matrix\", \"result\": [{\"metric\": {}}]}",
         "series {} has a malformed value"},
};

START_TEST(test_malformed)
{
	struct promapi_query_result res;
	char why[512];
	json_t *data = json_loads(malformed_cases[_i].data, 0, NULL);

	ck_assert_ptr_nonnull(data);
	memset(why, 'Z', sizeof(why));
	ck_assert_int_eq(promapi_query_value(data, "max", &res, why, sizeof(why)), -EPROTO);
	ck_assert_ptr_nonnull(memchr(why, '\0', sizeof(why)));
	ck_assert_msg(strstr(why, malformed_cases[_i].why), "'%s'", why);
	ck_assert_int_eq(res.points, -1);
	json_decref(data);
}
END_TEST

START_TEST(test_envelope)
{
	json_t *root = fixture("error"), *ok = fixture("vector");
	char *body = json_dumps(root, JSON_COMPACT);
	char msg[768];

	/* Prometheus answers a bad query with HTTP 400 and status error. */
	ck_assert_ptr_null(promapi_envelope(root, "http://p/api/v1/query", 400, body, strlen(body),
	                                    msg, sizeof(msg)));
	ck_assert_msg(strstr(msg, "HTTP 400 with an error: bad_data: invalid parameter"), "%s",
	              msg);
	ck_assert_ptr_nonnull(strstr(msg, "http://p/api/v1/query"));
	ck_assert_ptr_null(promapi_envelope(root, "u", 200, body, strlen(body), msg, sizeof(msg)));
	ck_assert_ptr_nonnull(strstr(msg, "with an error: bad_data"));
	ck_assert_ptr_eq(promapi_envelope(ok, "u", 200, "", 0, msg, sizeof(msg)),
	                 json_object_get(ok, "data"));
	ck_assert_ptr_null(promapi_envelope(ok, "u", 503, "busy", 4, msg, sizeof(msg)));
	ck_assert_str_eq(msg, "GET u answered HTTP 503: busy");
	free(body);
	json_decref(root);
	json_decref(ok);
	root = json_loads("{\"data\": {}}", 0, NULL);
	ck_assert_ptr_null(promapi_envelope(root, "u", 200, "{}", 2, msg, sizeof(msg)));
	ck_assert_ptr_nonnull(strstr(msg, "not a Prometheus API response"));
	json_decref(root);
}
END_TEST

static Suite *promquery_suite(void)
{
	Suite *s = suite_create("promquery");
	TCase *tc = tcase_create("answers");

	tcase_add_loop_test(tc, test_value, 0, sizeof(ok_cases) / sizeof(ok_cases[0]));
	tcase_add_loop_test(tc, test_no_value, 0, sizeof(bad_cases) / sizeof(bad_cases[0]));
	tcase_add_loop_test(tc, test_malformed, 0,
	                    sizeof(malformed_cases) / sizeof(malformed_cases[0]));
	tcase_add_test(tc, test_envelope);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(promquery_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
