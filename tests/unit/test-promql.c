/* Unit tests for lib/prom/promql: expressions parsed and written back in
 * canonical form, the threshold filters left out, the selectors and the
 * vector matches found, refusals with their position, label matchers on
 * their own, and the sentence explaining why two sides match nothing. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/prom/promql.h"

static char *roundtrip(const char *text, unsigned flags)
{
	struct promql_node *n = NULL;
	struct promql_error err;
	char *out;
	int r = promql_parse(text, strlen(text), &n, &err);

	ck_assert_msg(r == 0, "%s: %s at %zu", text, err.message, err.pos);
	out = promql_format(n, flags);
	ck_assert_ptr_nonnull(out);
	promql_free(n);
	return out;
}

/* text, its canonical form, and that without filters */
static const struct {
	const char *in, *out, *stripped;
} canon[] = {
        {"up", "up", "up"},
        {"up{job=\"a\",instance!=\"b\",}", "up{job=\"a\", instance!=\"b\"}", NULL},
        {"{__name__=~\"up|down\"}", "{__name__=~\"up|down\"}", NULL},
        {"rate(x_total{code=~\"5..\"}[5m])", "rate(x_total{code=~\"5..\"}[5m])", NULL},
        {"rate(inference_errors_total[5m]) / rate(inference_requests_total[5m]) > 0.05", NULL,
         "rate(inference_errors_total[5m]) / rate(inference_requests_total[5m])"},
        {"histogram_quantile(0.95, sum by (le) (rate(d_bucket[5m]))) > 0.5", NULL,
         "histogram_quantile(0.95, sum by (le) (rate(d_bucket[5m])))"},
        {"sum(rate(x[5m])) by (job, le)", "sum by (job, le) (rate(x[5m]))", NULL},
        {"count without (instance) (up)", "count without (instance) (up)", NULL},
        {"topk(5, x)", "topk(5, x)", NULL},
        {"a / on(job) group_left(team) b", "a / on(job) group_left(team) b", NULL},
        {"a * ignoring(code) group_right b", "a * ignoring(code) group_right() b", NULL},
        {"a > bool 2", "a > bool 2", "a > bool 2"},
        {"2 < a", "2 < a", "a"},
        {"a > b", "a > b", "a > b"},
        {"(a - b) > 3 and c < 1", NULL, "(a - b) and c"},
        {"x offset 5m", "x offset 5m", NULL},
        {"x[5m] offset -1h", "x[5m] offset -1h", NULL},
        {"max_over_time(rate(x[1m])[1h:5m] offset 1d)",
         "max_over_time(rate(x[1m])[1h:5m] offset 1d)", NULL},
        {"max_over_time(x[10m:])", "max_over_time(x[10m:])", NULL},
        {"x @ 1700000000", "x @ 1700000000", NULL},
        {"x @ start() offset 1m", "x offset 1m @ start()", NULL},
        {"-2 ^ 2", "-2 ^ 2", NULL},
        {"2 ^ 3 ^ 2", "2 ^ 3 ^ 2", NULL},
        {"a OR b AND c", "a or b and c", NULL},
        {"label_replace(up, \"x\", \"$1\", 'instance', `(.*)\\d`)",
         "label_replace(up, \"x\", \"$1\", \"instance\", \"(.*)\\\\d\")", NULL},
        {"x{a=\"q\\\"t\\n\\u00e9\\x41\"}", "x{a=\"q\\\"t\\n\xc3\xa9\x41\"}", NULL},
        {"job:requests:rate5m # a comment\n > 1e3", "job:requests:rate5m > 1e3",
         "job:requests:rate5m"},
        {"vector(1) > Inf", "vector(1) > Inf", "vector(1)"},
        {"scalar(x) > 0x1F", "scalar(x) > 0x1F", "scalar(x) > 0x1F"},
        {"absent(nope{job=\"x\"})", "absent(nope{job=\"x\"})", NULL},
};

START_TEST(test_canonical)
{
	char *out = roundtrip(canon[_i].in, 0), *again;

	ck_assert_str_eq(out, canon[_i].out ? canon[_i].out : canon[_i].in);
	again = roundtrip(out, 0); /* the canonical form reads back the same */
	ck_assert_str_eq(again, out);
	free(again);
	free(out);
	if (canon[_i].stripped) {
		out = roundtrip(canon[_i].in, PROMQL_FMT_NO_FILTERS);
		ck_assert_str_eq(out, canon[_i].stripped);
		free(out);
	}
}
END_TEST

/* Alerting rules as they are written in the wild: each must parse, and
 * its canonical form must read back the same. */
static const char *const wild[] = {
        "sum by (namespace) (kube_pod_status_phase{phase=~\"Pending|Unknown\"}) > 0",
        "(1 - node_filesystem_avail_bytes / node_filesystem_size_bytes) * 100 > 90",
        "predict_linear(node_filesystem_avail_bytes{fstype!=\"\"}[6h], 4*3600) < 0",
        "increase(x[1h]) > 0 unless on(job) y",
        "count by (job) (up == 0) / count by (job) (up) > 0.5",
        "absent(up{job=\"x\"} == 1)",
        "rate(x[5m:30s])",
        "sum without(instance)(rate(x[5m]))",
        "label_join(up, \"foo\", \",\", \"a\", \"b\")",
        "a * on(x) group_left b",
        "topk by (job) (3, x)",
        "quantile_over_time(0.9, x[5m])",
        "histogram_quantile(0.9, rate(x_bucket[5m])) > 1 and on() vector(1)",
        "sum(x) by (a) > 0",
        "x and on() (hour() > 8 < 17)",
        "{__name__=~\"job:.*\", job!=\"\"}",
        "time() - process_start_time_seconds > 3600",
        "x > -Inf",
        "1 - x < .5e-3",
        "ALERTS{alertstate=\"firing\", severity=~\"crit.*\"}",
        "count_values(\"version\", build_info) by (version)",
        "min_over_time(sum by (le) (rate(d_bucket[5m]))[30m:1m] @ end() offset 1h)",
        "group by (job) (up) unless ignoring (le) bottomk(1, x)",
        "max(x{a=\"\\\\d\"})",
};

START_TEST(test_wild)
{
	char *out = roundtrip(wild[_i], 0), *again = roundtrip(out, 0);

	ck_assert_str_eq(again, out);
	free(again);
	free(out);
}
END_TEST

START_TEST(test_top_bool)
{
	char *out = roundtrip("a > b", PROMQL_FMT_TOP_BOOL);

	ck_assert_str_eq(out, "a > bool b");
	free(out);
	out = roundtrip("a > 1", PROMQL_FMT_TOP_BOOL);
	ck_assert_str_eq(out, "a > 1");
	free(out);
}
END_TEST

static int collect(void *userdata, const struct promql_node *n)
{
	char *text = n->kind == PQ_SELECTOR ? promql_format_selector(n) : promql_format(n, 0);
	char *list = userdata;
	size_t o = strlen(list);

	ck_assert_ptr_nonnull(text);
	snprintf(list + o, 512 - o, "%s%s", o ? " | " : "", text); /* lists are char[512] */
	free(text);
	return 0;
}

START_TEST(test_selectors)
{
	static const char q[] = "sum(rate(a{x=\"1\"}[5m] offset 1h)) / on() b "
	                        "or absent(c) and d[5m:1m] unless absent_over_time(e[1m])";
	struct promql_node *n = NULL;
	char list[512] = "";

	ck_assert_int_eq(promql_parse(q, strlen(q), &n, NULL), 0);
	ck_assert_int_eq(promql_each_selector(n, collect, list), 0);
	ck_assert_str_eq(list, "a{x=\"1\"} | b | d");
	promql_free(n);
}
END_TEST

START_TEST(test_vector_matches)
{
	static const char q[] = "(a / (b * 2) + c) > 0.5 or d - e unless f and -g";
	struct promql_node *n = NULL;
	char list[512] = "";

	ck_assert_int_eq(promql_parse(q, strlen(q), &n, NULL), 0);
	ck_assert_int_eq(promql_each_vector_match(n, collect, list), 0);
	/* inner first; scalar sides, or and unless are not matches; and and
	 * unless bind alike, from the left */
	ck_assert_str_eq(list, "a / (b * 2) | a / (b * 2) + c | d - e | d - e unless f and -g");
	promql_free(n);
}
END_TEST

static const struct {
	const char *in;
	size_t pos;
	const char *message;
} bad[] = {
        {"", 0, "unexpected end of expression"},
        {"rate(x[5m]", 10, "expected ',' or ')' after an argument"},
        {"x{a=\"b\"", 7, "expected ',' or '}' in a label matcher list"},
        {"x{a=b}", 4, "expected a string"},
        {"x{a~\"b\"}", 3, "expected one of = != =~ !~ after label a"},
        {"x{a=\"b}", 7, "unterminated string"},
        {"x{a=\"\\q\"}", 6, "unknown escape sequence in a string"},
        {"x[5]", 2, "expected a duration such as 5m or 1h30m"},
        {"x[5m] [1m]", 9, "a range [...] only follows a vector selector; use [range:step]"},
        {"a + ", 4, "unexpected end of expression"},
        {"a b", 2, "unexpected 'b' after the expression"},
        {"a + bool b", 8, "bool only modifies a comparison"},
        {"sum by (a b) (x)", 10, "expected ',' or ')' in a list of label names"},
        {"sum()", 5, "sum() needs an expression"},
        {"(x offset 1m) offset 1m", 14, "offset only follows a selector or subquery, once"},
        {"x @ soon", 4, "expected a timestamp, start() or end() after @"},
        {"{}", 2, "a vector selector needs a metric name or a matcher"},
        {"x $ y", 2, "unexpected '$' after the expression"},
};

START_TEST(test_bad)
{
	struct promql_node *n = (void *)1;
	struct promql_error err;

	ck_assert_int_eq(promql_parse(bad[_i].in, strlen(bad[_i].in), &n, &err), -EINVAL);
	ck_assert_ptr_null(n);
	ck_assert_str_eq(err.message, bad[_i].message);
	ck_assert_uint_eq(err.pos, bad[_i].pos);
}
END_TEST

START_TEST(test_depth)
{
	char q[400];
	struct promql_node *n = NULL;
	struct promql_error err;

	memset(q, '(', 200);
	memcpy(q + 200, "x", 2);
	ck_assert_int_eq(promql_parse(q, strlen(q), &n, &err), -EINVAL);
	ck_assert_str_eq(err.message, "the expression nests deeper than 64");
	ck_assert_int_eq(promql_parse("x\0y", 3, &n, &err), -EINVAL);
	ck_assert_uint_eq(err.pos, 1);
}
END_TEST

/* A chain of n terms "x+x+...+x": 2n - 1 nodes. */
static char *chain(size_t terms)
{
	char *q = malloc(2 * terms);

	ck_assert_ptr_nonnull(q);
	for (size_t i = 0; i < terms; i++)
		memcpy(q + 2 * i, i + 1 < terms ? "x+" : "x", 2);
	return q;
}

/* n matchers l="v" in one selector. */
static char *selector(size_t matchers)
{
	char *q = malloc(3 + 6 * matchers);

	ck_assert_ptr_nonnull(q);
	memcpy(q, "x{", 2);
	for (size_t i = 0; i < matchers; i++)
		memcpy(q + 2 + 6 * i, i + 1 < matchers ? "l=\"v\"," : "l=\"v\"}", 6);
	q[2 + 6 * matchers] = '\0';
	return q;
}

START_TEST(test_limits)
{
	struct promql_node *n = NULL;
	struct promql_error err;
	char *q = chain(PROMQL_MAX_NODES / 2);

	ck_assert_int_eq(promql_parse(q, strlen(q), &n, &err), 0);
	promql_free(n);
	free(q);
	q = chain(PROMQL_MAX_NODES / 2 + 1);
	ck_assert_int_eq(promql_parse(q, strlen(q), &n, &err), -EINVAL);
	ck_assert_ptr_null(n);
	ck_assert_str_eq(err.message, "the expression has more than 4096 operators and operands");
	ck_assert_uint_eq(err.pos, PROMQL_MAX_NODES); /* the 2049th x */
	free(q);
	q = selector(PROMQL_MAX_MATCHERS);
	ck_assert_int_eq(promql_parse(q, strlen(q), &n, &err), 0);
	ck_assert_uint_eq(n->n_matchers, PROMQL_MAX_MATCHERS);
	promql_free(n);
	free(q);
	q = selector(PROMQL_MAX_MATCHERS + 1);
	ck_assert_int_eq(promql_parse(q, strlen(q), &n, &err), -EINVAL);
	ck_assert_str_eq(err.message, "a selector has more than 64 label matchers");
	ck_assert_uint_eq(err.pos, 2 + 6 * PROMQL_MAX_MATCHERS); /* the 65th matcher */
	free(q);
}
END_TEST

START_TEST(test_matcher)
{
	struct promql_matcher m;
	struct promql_error err;

	ck_assert_int_eq(promql_parse_matcher(" service = \"checkout\" ", &m, &err), 0);
	ck_assert_str_eq(m.name, "service");
	ck_assert_int_eq(m.op, PQ_EQ);
	ck_assert_str_eq(m.value, "checkout");
	promql_matcher_clear(&m);
	ck_assert_int_eq(promql_parse_matcher("severity=~'crit.*'", &m, &err), 0);
	ck_assert_int_eq(m.op, PQ_RE);
	ck_assert_str_eq(m.value, "crit.*");
	promql_matcher_clear(&m);
	ck_assert_int_eq(promql_parse_matcher("team!~\"a\" x", &m, &err), -EINVAL);
	ck_assert_str_eq(err.message, "unexpected 'x' after the matcher");
	ck_assert_uint_eq(err.pos, 10);
	ck_assert_int_eq(promql_parse_matcher("9a=\"b\"", &m, &err), -EINVAL);
	ck_assert_str_eq(err.message, "expected a label name");
}
END_TEST

static char *explain(const char *q, const char *left, const char *right, bool names_differ)
{
	struct promql_node *n = NULL;
	json_t *l = json_loads(left, 0, NULL), *r = json_loads(right, 0, NULL);
	char buf[512];

	ck_assert_int_eq(promql_parse(q, strlen(q), &n, NULL), 0);
	ck_assert_int_eq(promql_explain_mismatch(n, l, r, buf, sizeof(buf)), names_differ);
	promql_free(n);
	json_decref(l);
	json_decref(r);
	return strdup(buf);
}

START_TEST(test_explain)
{
	char *s = explain("a / b", "[{\"metric\": {\"job\": \"d\", \"instance\": \"i\"}}]",
	                  "[{\"metric\": {\"__name__\": \"b\", \"job\": \"d\", \"instance\": "
	                  "\"i\", \"code\": \"200\"}}]",
	                  true);

	ck_assert_str_eq(s, "the sides of '/' match no series pair: only the right side has the "
	                    "label(s) code (match them with on(instance, job) or ignoring(code), "
	                    "or aggregate both sides with sum by (...))");
	free(s);
	s = explain("a / ignoring(x) b",
	            "[{\"metric\": {\"job\": \"d\", \"x\": \"1\", \"y\": \"2\"}}]",
	            "[{\"metric\": {\"job\": \"e\", \"z\": \"3\"}}]", true);
	ck_assert_str_eq(s, "the sides of '/' match no series pair: only the left side has the "
	                    "label(s) y and only the right side has the label(s) z (match them "
	                    "with on(job) or ignoring(y, z), or aggregate both sides with sum by "
	                    "(...))");
	free(s);
	s = explain("a and on(job) b", "[{\"metric\": {\"job\": \"d\", \"x\": \"1\"}}]",
	            "[{\"metric\": {\"job\": \"e\"}}]", false);
	ck_assert_str_eq(s, "the sides of 'and' match no series pair: both carry the labels (job) "
	                    "but no pair has equal values for all of them (match on fewer labels "
	                    "with on(...) or ignoring(...))");
	free(s);
}
END_TEST

static Suite *promql_suite(void)
{
	Suite *s = suite_create("promql");
	TCase *tc = tcase_create("parse");

	tcase_add_loop_test(tc, test_canonical, 0, sizeof(canon) / sizeof(canon[0]));
	tcase_add_loop_test(tc, test_wild, 0, sizeof(wild) / sizeof(wild[0]));
	tcase_add_test(tc, test_top_bool);
	tcase_add_test(tc, test_selectors);
	tcase_add_test(tc, test_vector_matches);
	tcase_add_loop_test(tc, test_bad, 0, sizeof(bad) / sizeof(bad[0]));
	tcase_add_test(tc, test_depth);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_matcher);
	tcase_add_test(tc, test_explain);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(promql_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
