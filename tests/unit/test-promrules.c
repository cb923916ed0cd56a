/* Unit tests for lib/promrules: Prometheus durations, a valid rule file,
 * and one invalid file per rule, each reported with its path (and line)
 * rather than stopping at the first problem. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/prom/promrules.h"

static const struct {
	const char *text;
	int ret;
	int64_t ms;
} durations[] = {
        {"0", 0, 0},           {"30s", 0, 30000},    {"5m", 0, 300000},
        {"1h30m", 0, 5400000}, {"500ms", 0, 500},    {"1m500ms", 0, 60500},
        {"2d", 0, 172800000},  {"1w", 0, 604800000}, {"1y", 0, 31536000000},
        {"", -EINVAL, 0},      {"5", -EINVAL, 0},    {"1.5s", -EINVAL, 0},
        {"30m1h", -EINVAL, 0}, {"1s1s", -EINVAL, 0}, {"-1s", -EINVAL, 0},
        {"1x", -EINVAL, 0},    {"s", -EINVAL, 0},    {"99999999999999999999y", -EINVAL, 0},
};

START_TEST(test_duration)
{
	int64_t ms = -1;

	ck_assert_int_eq(promrules_parse_duration(durations[_i].text, &ms), durations[_i].ret);
	ck_assert_int_eq(ms, durations[_i].ret == 0 ? durations[_i].ms : -1);
}
END_TEST

static const char good[] = "groups:\n"
                           "  - name: demo\n"
                           "    interval: 1s\n"
                           "    rules:\n"
                           "      - alert: HighErrorRate\n"
                           "        expr: rate(inference_errors_total[10s]) > 0.1\n"
                           "        for: 2s\n"
                           "        labels: { severity: page, tier: 1 }\n"
                           "        annotations: { summary: \"errors\" }\n"
                           "      - record: job:inference_requests:rate1m\n"
                           "        expr: sum(rate(inference_requests_total[1m]))\n"
                           "  - name: other\n"
                           "    limit: 10\n"
                           "    rules:\n"
                           "      - alert: GPUOutOfMemory\n"
                           "        expr: vector(0) > 1\n";

START_TEST(test_good)
{
	struct promrules_stats st;
	json_t *errs = NULL;

	ck_assert_int_eq(promrules_check(good, strlen(good), &errs, &st), 0);
	ck_assert_uint_eq(json_array_size(errs), 0);
	ck_assert_uint_eq(st.groups, 2);
	ck_assert_uint_eq(st.alerts, 2);
	ck_assert_uint_eq(st.records, 1);
	ck_assert_uint_eq(st.errors, 0);
	json_decref(errs);
}
END_TEST

/* One bad file per rule: the error path and a word of its message. */
static const struct {
	const char *text;
	const char *path;
	const char *needle;
	int line;
} bad[] = {
        {"groups:\n  - name: a\n    rules:\n      - expr: up\n", "groups[0].rules[0]",
         "must be set", 4},
        {"groups:\n  - name: a\n    rules:\n      - alert: A\n        record: b\n        expr: up\n",
         "groups[0].rules[0]", "only one", 4},
        {"groups:\n  - name: a\n    rules:\n      - alert: A\n", "groups[0].rules[0].expr",
         "'expr' must be set", 4},
        {"groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: up\n        for: 5\n",
         "groups[0].rules[0].for", "duration", 6},
        {"groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: up\n        for: 1.5m\n",
         "groups[0].rules[0].for", "duration", 6},
        {"groups:\n  - name: a\n    rules:\n      - record: 'bad name'\n        expr: up\n",
         "groups[0].rules[0].record", "metric name", 4},
        {"groups:\n  - name: a\n    rules:\n      - record: r\n        expr: up\n        for: 1m\n",
         "groups[0].rules[0].for", "recording rule", 4},
        {"groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: up\n        labels: [x]\n",
         "groups[0].rules[0].labels", "map", 6},
        {"groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: up\n        labels: "
         "{'1x': y}\n",
         "groups[0].rules[0].labels", "invalid labels name", 6},
        {"groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: up\n        "
         "annotations: {a: {b: c}}\n",
         "groups[0].rules[0].annotations", "must be a string", 6},
        {"groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: up\n        exp: x\n",
         "groups[0].rules[0]", "unknown field", 6},
        {"groups:\n  - name: a\n    rules: []\n  - name: a\n    rules: []\n", "groups[1].name",
         "used twice", 4},
        {"groups:\n  - rules: []\n", "groups[0].name", "non-empty 'name'", 2},
        {"groups:\n  - name: a\n    interval: soon\n", "groups[0].interval", "duration", 3},
        {"groups:\n  - name: a\n    limit: -1\n", "groups[0].limit", "non-negative", 3},
        {"groups: {}\n", "groups", "must be a list", 1},
        {"rules: []\n", "", "unknown field (allowed here: groups)", 1},
        {"- a\n", "", "map with a 'groups' list", 1},
        {"groups:\n  - name: a\n    rules:\n      - &x {alert: A, expr: up}\n", "", "", 0},
        {"groups: [\n", "", "", 0},
};

START_TEST(test_bad)
{
	struct promrules_stats st;
	json_t *errs = NULL, *e;

	ck_assert_int_eq(promrules_check(bad[_i].text, strlen(bad[_i].text), &errs, &st), 0);
	ck_assert_msg(json_array_size(errs) >= 1, "case %d: no error", _i);
	ck_assert_uint_eq(st.errors, json_array_size(errs));
	e = json_array_get(errs, 0);
	if (bad[_i].line == 0) { /* YAML-level refusal: the converter's message */
		json_decref(errs);
		return;
	}
	ck_assert_str_eq(json_string_value(json_object_get(e, "path")), bad[_i].path);
	ck_assert_msg(strstr(json_string_value(json_object_get(e, "message")), bad[_i].needle),
	              "case %d: '%s'", _i, json_string_value(json_object_get(e, "message")));
	ck_assert_int_eq(json_integer_value(json_object_get(e, "line")), bad[_i].line);
	json_decref(errs);
}
END_TEST

/* Errors are all collected, the list is capped, the count is not. */
START_TEST(test_many_errors)
{
	size_t cap = 200 * 64, len = 0;
	char *buf = malloc(cap);
	struct promrules_stats st;
	json_t *errs = NULL;

	ck_assert_ptr_nonnull(buf);
	len += (size_t)snprintf(buf, cap, "groups:\n  - name: a\n    rules:\n");
	for (int i = 0; i < 150; i++)
		len += (size_t)snprintf(buf + len, cap - len, "      - alert: A%d\n", i);
	ck_assert_int_eq(promrules_check(buf, len, &errs, &st), 0);
	ck_assert_uint_eq(json_array_size(errs), PROMRULES_MAX_ERRORS);
	ck_assert_uint_eq(st.errors, 150);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(errs, 0), "line")), 4);
	json_decref(errs);
	free(buf);
}
END_TEST

/* A file that is not a rule file at all (a password database, a config
 * with credentials): the errors name paths and lines, never its text. */
static const char *const not_rules[] = {
        "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n",
        "root: s3cretHash\nadmin: {password: hunter2, 'k 3y': v4lue}\n",
        "groups:\n  - name: s3cretGroup\n    rules:\n      - alert: hunter2\n        expr: up\n"
        "        labels: {'bad name s3cret': hunter2}\n        annotations: {a: [hunter2]}\n"
        "  - name: s3cretGroup\n    rules: [{record: 'hunter2 x', expr: up}]\n",
        "groups:\n  - name: a\n    limit: !!int s3cret\n",
        "groups:\n  - name: a\n    rules: [{alert: A, expr: up, for: 99999999999999999999s3cret}]\n",
        "groups:\n  - {name: a, hunter2: s3cret, ? [x] : y}\n",
};

START_TEST(test_no_echo)
{
	struct promrules_stats st;
	json_t *errs = NULL;
	char *text;

	ck_assert_int_eq(promrules_check(not_rules[_i], strlen(not_rules[_i]), &errs, &st), 0);
	ck_assert_uint_ge(st.errors, 1);
	text = json_dumps(errs, JSON_COMPACT);
	ck_assert_ptr_nonnull(text);
	for (const char *const *w = (const char *const[]){"root", "19000", "s3cret", "hunter2",
	                                                  "v4lue", "daemon", NULL};
	     *w; w++)
		ck_assert_msg(!strstr(text, *w), "case %d: '%s' echoed: %s", _i, *w, text);
	free(text);
	json_decref(errs);
}
END_TEST

START_TEST(test_file)
{
	char path[] = "/tmp/test-promrules-XXXXXX";
	int fd = mkstemp(path);
	struct promrules_stats st;
	json_t *errs = NULL;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, good, strlen(good)), (int)strlen(good));
	close(fd);
	ck_assert_int_eq(promrules_check_file(path, &errs, &st), 0);
	ck_assert_uint_eq(json_array_size(errs), 0);
	ck_assert_uint_eq(st.alerts, 2);
	json_decref(errs);
	ck_assert_int_eq(truncate(path, PROMRULES_MAX_BYTES + 1), 0);
	ck_assert_int_eq(promrules_check_file(path, &errs, &st), -EFBIG);
	unlink(path);
	ck_assert_int_eq(promrules_check_file(path, &errs, &st), -ENOENT);
}
END_TEST

static Suite *promrules_suite(void)
{
	Suite *s = suite_create("promrules");
	TCase *tc = tcase_create("check");

	tcase_add_loop_test(tc, test_duration, 0, sizeof(durations) / sizeof(durations[0]));
	tcase_add_test(tc, test_good);
	tcase_add_loop_test(tc, test_bad, 0, sizeof(bad) / sizeof(bad[0]));
	tcase_add_loop_test(tc, test_no_echo, 0, sizeof(not_rules) / sizeof(not_rules[0]));
	tcase_add_test(tc, test_many_errors);
	tcase_add_test(tc, test_file);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(promrules_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
