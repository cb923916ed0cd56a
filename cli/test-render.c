/* test-render: unit tests of readyctl's pure logic, the parts a pipeline
 * depends on without a server: how a run maps to an exit code (a missing
 * or odd verdict must never become 0), when a run counts as finished, how
 * server strings are sanitised, and the exact progress and table text.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static json_t *run_from(const char *text)
{
	json_error_t err;
	json_t *run = json_loads(text, 0, &err);

	ck_assert_msg(run != NULL, "bad fixture %s: %s", text, err.text);
	return run;
}

static const struct {
	const char *run;
	bool finished;
	int code;
} exit_cases[] = {
        {"{\"state\":\"passed\",\"verdict\":\"PASS\"}", true, CTL_EXIT_PASS},
        {"{\"state\":\"failed\",\"verdict\":\"FAIL\"}", true, CTL_EXIT_FAIL},
        {"{\"state\":\"error\",\"verdict\":\"ERROR\"}", true, CTL_EXIT_ERROR},
        {"{\"state\":\"cancelled\",\"verdict\":null}", true, CTL_EXIT_ERROR},
        {"{\"state\":\"interrupted\",\"verdict\":null}", true, CTL_EXIT_ERROR},
        /* A cancelled run is an error even if a verdict slipped through. */
        {"{\"state\":\"cancelled\",\"verdict\":\"PASS\"}", true, CTL_EXIT_ERROR},
        {"{\"state\":\"error\",\"verdict\":\"PASS\"}", true, CTL_EXIT_ERROR},
        {"{\"state\":\"passed\"}", true, CTL_EXIT_PASS},
        {"{\"state\":\"failed\",\"verdict\":null}", true, CTL_EXIT_FAIL},
        {"{\"state\":\"passed\",\"verdict\":\"MAYBE\"}", true, CTL_EXIT_ERROR},
        {"{\"state\":\"passed\",\"verdict\":\"pass\"}", true, CTL_EXIT_ERROR},
        {"{\"state\":\"queued\",\"verdict\":null}", false, CTL_EXIT_ERROR},
        {"{\"state\":\"running\",\"verdict\":null}", false, CTL_EXIT_ERROR},
        /* States added later: final only once decided. */
        {"{\"state\":\"judging\",\"verdict\":null}", false, CTL_EXIT_ERROR},
        {"{\"state\":\"archived\",\"verdict\":\"FAIL\"}", true, CTL_EXIT_FAIL},
        {"{}", false, CTL_EXIT_ERROR},
        {"{\"state\":42,\"verdict\":true}", false, CTL_EXIT_ERROR},
};

START_TEST(test_exit_codes)
{
	json_t *run = run_from(exit_cases[_i].run);

	ck_assert_msg(run_is_finished(run) == exit_cases[_i].finished, "finished? %s",
	              exit_cases[_i].run);
	ck_assert_int_eq(run_exit_code(run), exit_cases[_i].code);
	json_decref(run);
}
END_TEST

static const struct {
	const char *in;
	size_t len;
	const char *out;
} clean_cases[] = {
        {"plain", 16, "plain"},
        {"a\033[31mred", 16, "a?[31mred"},
        {"tab\there", 16, "tab here"},
        {"nl\r\nx\x7f", 16, "nl??x?"},
        {"abcdefghij", 8, "abcdefg"},
        {"abcde\xc3\xa9", 8, "abcde\xc3\xa9"},        /* fits exactly */
        {"abcdef\xc3\xa9", 8, "abcdef"},              /* é cut in half */
        {"abcd\xe2\x82\xac!", 8, "abcd\xe2\x82\xac"}, /* € fits */
        {"abcde\xe2\x82\xac", 8, "abcde"},            /* € cut */
        {NULL, 8, ""},
        {"x", 1, ""},
};

START_TEST(test_clean)
{
	char buf[32];

	memset(buf, 'Z', sizeof(buf));
	render_clean(clean_cases[_i].in, buf, clean_cases[_i].len);
	ck_assert_str_eq(buf, clean_cases[_i].out);
}
END_TEST

static const struct {
	const char *json;
	const char *out;
} value_cases[] = {
        {"null", "-"},    {"200", "200"},           {"40.33", "40.33"},
        {"100.0", "100"}, {"0.001234", "0.001234"}, {"12345678.9", "12345679"},
        {"true", "true"}, {"\"1.3\"", "1.3"},       {"[1,2]", "[1,2]"},
};

START_TEST(test_value)
{
	json_t *v = json_loads(value_cases[_i].json, JSON_DECODE_ANY, NULL);
	char buf[64];

	ck_assert_ptr_nonnull(v);
	render_value(v, buf, sizeof(buf));
	ck_assert_str_eq(buf, value_cases[_i].out);
	json_decref(v);
	render_value(NULL, buf, sizeof(buf));
	ck_assert_str_eq(buf, "-");
}
END_TEST

static const struct {
	const char *run;
	bool tty;
	const char *line;
} progress_cases[] = {
        {"{\"id\":42,\"state\":\"running\",\"progress\":{\"probes_done\":1,\"probes_total\":5,"
         "\"current\":{\"probe\":\"latency\",\"percent\":43,\"requests\":5120},\"eta_s\":41}}",
         false, "run 42: running, probe 2/5 latency 43%"},
        {"{\"id\":42,\"state\":\"running\",\"progress\":{\"probes_done\":1,\"probes_total\":5,"
         "\"current\":{\"probe\":\"latency\",\"percent\":43,\"requests\":5120},\"eta_s\":41}}",
         true, "run 42 running [#####...............] probe 2/5 latency 43% 5120 req eta 41s"},
        {"{\"id\":7,\"state\":\"queued\",\"progress\":{\"probes_done\":0,\"probes_total\":3,"
         "\"current\":null}}",
         false, "run 7: queued, 0/3 probes done"},
        {"{\"id\":7,\"state\":\"passed\",\"progress\":{\"probes_done\":3,\"probes_total\":3}}",
         true, "run 7 passed [####################] 3/3 probes done"},
        /* Out-of-range numbers from a buggy server are clamped, not trusted. */
        {"{\"id\":7,\"state\":\"running\",\"progress\":{\"probes_done\":9,\"probes_total\":3,"
         "\"current\":{\"probe\":\"x\\u001b\",\"percent\":250}}}",
         false, "run 7: running, probe 3/3 x? 100%"},
        {"{\"state\":\"running\"}", false, "run -1: running"},
        /* A running load probe's last second, on a terminal only (a CI log
         * gets one line per real change, not one per second). */
        {"{\"id\":9,\"state\":\"running\",\"progress\":{\"probes_done\":0,\"probes_total\":1,"
         "\"current\":{\"probe\":\"load\",\"percent\":50,\"requests\":800,\"rps\":412,"
         "\"p99_ms\":12.5,\"errors\":3}}}",
         true,
         "run 9 running [##########..........] probe 1/1 load 50% 800 req 412 req/s p99 12.5 ms "
         "3 errors"},
        {"{\"id\":9,\"state\":\"running\",\"progress\":{\"probes_done\":0,\"probes_total\":1,"
         "\"current\":{\"probe\":\"load\",\"percent\":50,\"requests\":800,\"rps\":412,"
         "\"p99_ms\":null,\"errors\":3}}}",
         false, "run 9: running, probe 1/1 load 50%"},
};

START_TEST(test_progress)
{
	json_t *run = run_from(progress_cases[_i].run);
	char line[256];

	render_progress(run, progress_cases[_i].tty, line, sizeof(line));
	ck_assert_str_eq(line, progress_cases[_i].line);
	/* A short buffer truncates instead of overflowing. */
	render_progress(run, progress_cases[_i].tty, line, 10);
	ck_assert_uint_le(strlen(line), 9);
	json_decref(run);
}
END_TEST

static char *print_to_string(void (*fn)(FILE *, const json_t *, bool), const json_t *arg,
                             bool color)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	ck_assert_ptr_nonnull(f);
	fn(f, arg, color);
	ck_assert_int_eq(fclose(f), 0);
	return text;
}

START_TEST(test_gate_table)
{
	json_t *gates = run_from(
	        "[{\"expr\":\"latency.p95_ms < 100\",\"value\":140.5,"
	        "\"threshold\":100,\"outcome\":\"fail\",\"reason\":\"140.5 is not < 100\"},"
	        "{\"expr\":\"cpu < 70\",\"value\":null,\"threshold\":70,"
	        "\"outcome\":\"error\",\"advisory\":true,\"reason\":\"no data\"}]");
	char *text = print_to_string(render_gates, gates, false);

	ck_assert_str_eq(
	        text,
	        "GATE                  VALUE  THRESHOLD  OUTCOME           REASON\n"
	        "latency.p95_ms < 100  140.5  100        fail              140.5 is not < 100\n"
	        "cpu < 70              -      70         error (advisory)  no data\n");
	free(text);
	text = print_to_string(render_gates, gates, true);
	ck_assert_ptr_nonnull(strstr(text, "\033[31mfail\033[0m"));
	ck_assert_ptr_nonnull(strstr(text, "\033[33merror (advisory)\033[0m"));
	free(text);
	json_decref(gates);
}
END_TEST

/* readyctl spec diff: the hunks diff -u prints for the same texts
 * (expected outputs made with GNU diff 3.x, headers left out). */
static const struct {
	const char *a, *b, *want;
} diff_cases[] = {
        {"a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n", "a\nb\nc\nD\ne\nf\ng\nh\ni\nj\nk\n",
         "@@ -1,10 +1,11 @@\n a\n b\n c\n-d\n+D\n e\n f\n g\n h\n i\n j\n+k\n"},
        {"x\n", "y\n", "@@ -1 +1 @@\n-x\n+y\n"},
        {"1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n16\n17\n18\n19\n20\n",
         "1\nX\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n16\n17\n18\n20\n",
         "@@ -1,5 +1,5 @@\n 1\n-2\n+X\n 3\n 4\n 5\n@@ -16,5 +16,4 @@\n 16\n 17\n 18\n-19\n 20\n"},
        {"a\n", "a\nb\n", "@@ -1 +1,2 @@\n a\n+b\n"},
        {"a\nb\n", "b\n", "@@ -1,2 +1 @@\n-a\n b\n"},
        {"", "a\n", "@@ -0,0 +1 @@\n+a\n"},
        {"same\n", "same\n", ""},
};

START_TEST(test_linediff)
{
	char *out = NULL, *body;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	bool differ = false;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(linediff_print(f, "A", diff_cases[_i].a, "B", diff_cases[_i].b, &differ),
	                 0);
	fclose(f);
	ck_assert_int_eq(differ, diff_cases[_i].want[0] != '\0');
	if (differ) {
		ck_assert(strncmp(out, "--- A\n+++ B\n", 12) == 0);
		body = out + 12;
	} else {
		body = out;
	}
	ck_assert_str_eq(body, diff_cases[_i].want);
	free(out);
}
END_TEST

static Suite *render_suite(void)
{
	Suite *s = suite_create("readyctl-render");
	TCase *tc = tcase_create("render");

	tcase_add_loop_test(tc, test_exit_codes, 0, sizeof(exit_cases) / sizeof(exit_cases[0]));
	tcase_add_loop_test(tc, test_clean, 0, sizeof(clean_cases) / sizeof(clean_cases[0]));
	tcase_add_loop_test(tc, test_value, 0, sizeof(value_cases) / sizeof(value_cases[0]));
	tcase_add_loop_test(tc, test_progress, 0,
	                    sizeof(progress_cases) / sizeof(progress_cases[0]));
	tcase_add_test(tc, test_gate_table);
	tcase_add_loop_test(tc, test_linediff, 0, sizeof(diff_cases) / sizeof(diff_cases[0]));
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(render_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
