/* Unit tests for lib/promtext: both exposition formats, family grouping,
 * escapes, timestamps, exemplars, `# EOF`, and the inputs Prometheus
 * refuses (each must fail with a line number, never crash). */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/prom/promtext.h"

#define T  PROMTEXT_TEXT
#define OM PROMTEXT_OPENMETRICS

static const char demo_text[] = "# HELP inference_requests_total Requests to /v1/predict.\n"
                                "# TYPE inference_requests_total counter\n"
                                "inference_requests_total 42\n"
                                "# HELP inference_duration_seconds Latency.\n"
                                "# TYPE inference_duration_seconds histogram\n"
                                "inference_duration_seconds_bucket{le=\"0.005\"} 1\n"
                                "inference_duration_seconds_bucket{le=\"+Inf\"} 3\n"
                                "inference_duration_seconds_sum 0.5\n"
                                "inference_duration_seconds_count 3\n"
                                "# TYPE rpc summary\n"
                                "rpc{quantile=\"0.5\"} 0.1\n"
                                "rpc_sum 1\n"
                                "rpc_count 10 1700000000000\n"
                                "untyped_thing{a=\"x\\\"y\\\\z\\n\",b=\"\",} NaN\n"
                                "  spaced_out  {  a = \"1\" , b=\"2\"  }   -Inf   123\n"
                                "# just a comment\n"
                                "\n";

static const char demo_om[] =
        "# TYPE inference_requests counter\n"
        "# HELP inference_requests Requests.\n"
        "inference_requests_total 42\n"
        "inference_requests_created 1.7e9\n"
        "# TYPE inference_duration_seconds histogram\n"
        "# UNIT inference_duration_seconds seconds\n"
        "inference_duration_seconds_bucket{le=\"1.0\"} 1 # {trace_id=\"abc\"} 0.4 1.7e9\n"
        "inference_duration_seconds_bucket{le=\"+Inf\"} 3\n"
        "inference_duration_seconds_sum 0.5\n"
        "inference_duration_seconds_count 3\n"
        "# TYPE demo_target info\n"
        "demo_target_info{version=\"2.4.0\"} 1\n"
        "# TYPE state stateset\n"
        "state{state=\"a\"} 1 1700000000.5\n"
        "# EOF\n";

START_TEST(test_text_families)
{
	struct promtext *pt = NULL;
	struct promtext_error err;
	const struct promtext_family *f;

	ck_assert_int_eq(promtext_parse(demo_text, strlen(demo_text), T, &pt, &err), 0);
	ck_assert_uint_eq(pt->n_families, 5);
	ck_assert_uint_eq(pt->n_samples, 10);
	f = promtext_find(pt, "inference_requests_total");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(f->type, PROMTEXT_COUNTER);
	ck_assert_str_eq(f->help, "Requests to /v1/predict.");
	ck_assert_ptr_eq(promtext_find(pt, "inference_requests"), f); /* without _total */
	f = promtext_find(pt, "inference_duration_seconds_bucket");
	ck_assert_ptr_nonnull(f);
	ck_assert_str_eq(f->name, "inference_duration_seconds");
	ck_assert_int_eq(f->type, PROMTEXT_HISTOGRAM);
	ck_assert_uint_eq(f->samples, 4);
	ck_assert_ptr_eq(promtext_find(pt, "inference_duration_seconds"), f);
	ck_assert_uint_eq(promtext_find(pt, "rpc_count")->samples, 3);
	ck_assert_int_eq(promtext_find(pt, "untyped_thing")->type, PROMTEXT_UNTYPED);
	ck_assert_ptr_nonnull(promtext_find(pt, "spaced_out"));
	ck_assert_ptr_null(promtext_find(pt, "inference_errors_total"));
	ck_assert_ptr_null(promtext_find(pt, "rpc_bucket")); /* summaries have no buckets */
	promtext_free(pt);
}
END_TEST

START_TEST(test_openmetrics_families)
{
	struct promtext *pt = NULL;
	struct promtext_error err;
	const struct promtext_family *f;

	ck_assert_int_eq(promtext_parse(demo_om, strlen(demo_om), OM, &pt, &err), 0);
	ck_assert_uint_eq(pt->n_families, 4);
	ck_assert_uint_eq(pt->n_samples, 8);
	f = promtext_find(pt, "inference_requests_total");
	ck_assert_ptr_nonnull(f);
	ck_assert_str_eq(f->name, "inference_requests");
	ck_assert_uint_eq(f->samples, 2);
	ck_assert_str_eq(promtext_find(pt, "inference_duration_seconds")->unit, "seconds");
	ck_assert_int_eq(promtext_find(pt, "demo_target_info")->type, PROMTEXT_INFO);
	ck_assert_int_eq(promtext_find(pt, "state")->type, PROMTEXT_STATESET);
	promtext_free(pt);
}
END_TEST

/* Inputs that must be refused, and the line the error names. */
static const struct {
	enum promtext_format fmt;
	const char *text;
	size_t line;
	const char *needle; /* in the message */
} bad[] = {
        {T, "a{b=\"1\" 2\n", 1, "expected ','"},
        {T, "a{b=1} 2\n", 1, "quoted"},
        {T, "a{b=\"\\x\"} 2\n", 1, "escape"},
        {T, "a{b=\"1\",b=\"2\"} 3\n", 1, "duplicate label"},
        {T, "a{1b=\"1\"} 2\n", 1, "label name"},
        {T, "a{b=\"unterminated} 2\n", 1, "unterminated"},
        {T, "a 1x\n", 1, "bad value"},
        {T, "a 0x10\n", 1, "bad value"},
        {T, "a\n", 1, "blank before the value"},
        {T, "a 1 1.5\n", 1, "timestamp"},
        {T, "a 1 2 3\n", 1, "after the value"},
        {T, "ok 1\n9a 1\n", 2, "metric name"},
        {T, "# TYPE a counter\n# TYPE a gauge\n", 2, "second TYPE"},
        {T, "# TYPE a nonsense\n", 1, "unknown type"},
        {T, "# TYPE a info\n", 1, "unknown type"},
        {T, "# HELP a x\n# HELP a y\n", 2, "second HELP"},
        {T, "# HELP a bad \\q escape\n", 1, "escape"},
        {T, "a 1\n# TYPE a gauge\n", 2, "after its samples"},
        {T, "# TYPE h histogram\nh_bucket 1\n", 2, "'le'"},
        {T, "# TYPE h histogram\nh_bucket{le=\"x\"} 1\n", 2, "not a number"},
        {T, "# TYPE s summary\ns 1\n", 2, "'quantile'"},
        {T, "a 1\x00\n", 1, "NUL"},
        {T, "a{b=\"\xff\"} 1\n", 0, "UTF-8"},
        {OM, "a 1\n", 1, "EOF"},
        {OM, "# EOF\na 1\n", 2, "after '# EOF'"},
        {OM, "a  1\n# EOF\n", 1, "value"},
        {OM, "# TYPE a untyped\n# EOF\n", 1, "unknown type"},
        {OM, "# comment\n# EOF\n", 1, "comment other than"},
        {OM, "a 1\n\n# EOF\n", 2, "empty line"},
        {OM, "a{b=\"1\",} 1\n# EOF\n", 1, "trailing comma"},
        {OM, "# TYPE c counter\nc 1\n# EOF\n", 2, "does not fit"},
        {OM, "# TYPE a gauge\na 1\nb 1\na 2\n# EOF\n", 4, "interleaved"},
        {OM, "# TYPE a gauge\n# UNIT a seconds\n# EOF\n", 2, "unit"},
        {OM, "a 1 # {x=\"y\"} bad\n# EOF\n", 1, "bad value"},
        {OM, "a 1 # nope\n# EOF\n", 1, "exemplar"},
};

START_TEST(test_bad)
{
	struct promtext *pt = NULL;
	struct promtext_error err;
	/* The NUL case is the only one whose length strlen() cannot tell. */
	size_t len = strlen(bad[_i].text) + (strcmp(bad[_i].needle, "NUL") == 0 ? 2 : 0);
	int r = promtext_parse(bad[_i].text, len, bad[_i].fmt, &pt, &err);

	ck_assert_msg(r == -EINVAL, "case %d: got %d", _i, r);
	ck_assert_ptr_null(pt);
	ck_assert_uint_eq(err.line, bad[_i].line);
	ck_assert_msg(strstr(err.message, bad[_i].needle), "case %d: message '%s' lacks '%s'", _i,
	              err.message, bad[_i].needle);
}
END_TEST

START_TEST(test_content_type)
{
	ck_assert_int_eq(promtext_format_from_content_type(
	                         "application/openmetrics-text; version=1.0.0; charset=utf-8"),
	                 OM);
	ck_assert_int_eq(promtext_format_from_content_type("text/plain; version=0.0.4"), T);
	ck_assert_int_eq(promtext_format_from_content_type(NULL), T);
}
END_TEST

/* Many families: the index grows and lookups stay right; the caps hold. */
START_TEST(test_many_and_caps)
{
	size_t n = 5000, len = 0;
	char *buf = malloc(n * 40 + PROMTEXT_MAX_LINE + 16);
	struct promtext *pt = NULL;
	struct promtext_error err;

	ck_assert_ptr_nonnull(buf);
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(buf + len, 40, "m_%zu{i=\"%zu\"} %zu\n", i, i, i);
	ck_assert_int_eq(promtext_parse(buf, len, T, &pt, &err), 0);
	ck_assert_uint_eq(pt->n_families, n);
	ck_assert_uint_eq(promtext_find(pt, "m_4999")->samples, 1);
	ck_assert_ptr_null(promtext_find(pt, "m_5000"));
	promtext_free(pt);
	memset(buf, 'a', PROMTEXT_MAX_LINE + 1);
	ck_assert_int_eq(promtext_parse(buf, PROMTEXT_MAX_LINE + 1, T, &pt, &err), -E2BIG);
	ck_assert_int_eq(promtext_parse(buf, PROMTEXT_MAX_BYTES + 1, T, &pt, &err), -E2BIG);
	free(buf);
}
END_TEST

/* Every prefix of a valid exposition either parses or fails cleanly. */
START_TEST(test_prefixes)
{
	for (size_t n = 0; n <= strlen(demo_om); n++) {
		struct promtext *pt = NULL;
		struct promtext_error err;
		char *copy = malloc(n ? n : 1); /* exact size: ASan sees over-reads */
		int r;

		ck_assert_ptr_nonnull(copy);
		memcpy(copy, demo_om, n);
		r = promtext_parse(copy, n, OM, &pt, &err);
		ck_assert(r == 0 || r == -EINVAL);
		if (r == 0)
			ck_assert_uint_eq(n >= strlen(demo_om) - 1, 1);
		promtext_free(pt);
		free(copy);
	}
}
END_TEST

static Suite *promtext_suite(void)
{
	Suite *s = suite_create("promtext");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, test_text_families);
	tcase_add_test(tc, test_openmetrics_families);
	tcase_add_loop_test(tc, test_bad, 0, sizeof(bad) / sizeof(bad[0]));
	tcase_add_test(tc, test_content_type);
	tcase_add_test(tc, test_many_and_caps);
	tcase_add_test(tc, test_prefixes);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(promtext_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
