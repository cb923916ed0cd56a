/* Unit tests for the reading of scanner output (lib/probe/scanreport.c):
 * the SARIF and Trivy fixtures in fixtures/scan/ give the counts written
 * into them, severities come from security-severity scores, levels and
 * rules' defaults, the most severe findings come first, and malformed,
 * foreign or oversized input is an error naming what is wrong, without
 * quoting it. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/probe/scanreport.h"

static char *load(const char *name, size_t *ret_len)
{
	const char *dir = getenv("READYD_FIXTURES");
	char path[4096];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof(path), "%s/scan/%s", dir ? dir : "tests/unit/fixtures", name);
	f = fopen(path, "rb");
	ck_assert_msg(f, "%s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(fread(buf, 1, (size_t)n, f), n);
	fclose(f);
	*ret_len = (size_t)n;
	return buf;
}

static json_t *parse_fixture(const char *name, enum scanreport_format fmt)
{
	size_t len;
	char *buf = load(name, &len), why[256] = "";
	json_t *o = NULL;

	ck_assert_msg(scanreport_parse(buf, len, fmt, &o, why, sizeof(why)) == 0, "%s: %s", name,
	              why);
	free(buf);
	return o;
}

static long count(json_t *o, const char *k)
{
	return (long)json_integer_value(json_object_get(o, k));
}

static void check_counts(json_t *o, long c, long h, long m, long l, long u, long t)
{
	ck_assert_int_eq(count(o, "critical"), c);
	ck_assert_int_eq(count(o, "high"), h);
	ck_assert_int_eq(count(o, "medium"), m);
	ck_assert_int_eq(count(o, "low"), l);
	ck_assert_int_eq(count(o, "unknown"), u);
	ck_assert_int_eq(count(o, "total"), t);
}

START_TEST(test_sarif_fixture)
{
	json_t *o = parse_fixture("findings.sarif", SCANREPORT_AUTO), *top, *rule;

	ck_assert_str_eq(json_string_value(json_object_get(o, "format")), "sarif");
	ck_assert_str_eq(json_string_value(json_object_get(o, "tool")), "examplescan");
	/* sql-injection x2 (9.8); reflected-xss (7.5, its kind "pass" result
	 * skipped) and unlisted-check (level error); weak-hash x3 (5.0);
	 * debug-enabled (default note); todo-comment (default none). */
	check_counts(o, 2, 2, 3, 1, 1, 9);
	rule = json_object_get(json_object_get(o, "by_rule"), "weak-hash");
	ck_assert_int_eq(count(rule, "count"), 3);
	ck_assert_str_eq(json_string_value(json_object_get(rule, "severity")), "medium");
	top = json_object_get(o, "top");
	ck_assert_int_eq(json_array_size(top), 9);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(top, 0), "id")),
	                 "sql-injection");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(top, 0), "location")),
	                 "app/db.py");
	ck_assert_int_eq(count(json_array_get(top, 0), "line"), 42);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(top, 2), "severity")),
	                 "high");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(top, 8), "severity")),
	                 "unknown");
	json_decref(o);

	o = parse_fixture("clean.sarif", SCANREPORT_SARIF);
	check_counts(o, 0, 0, 1, 1, 0, 2);
	json_decref(o);
}
END_TEST

START_TEST(test_trivy_fixture)
{
	json_t *o = parse_fixture("trivy.json", SCANREPORT_AUTO), *top;

	ck_assert_str_eq(json_string_value(json_object_get(o, "format")), "trivy");
	/* 6 vulnerabilities (one of each, HIGH twice), 2 failed
	 * misconfigurations (the PASS one skipped), 1 secret. */
	check_counts(o, 2, 3, 1, 2, 1, 9);
	top = json_object_get(o, "top");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(top, 0), "id")),
	                 "CVE-2099-0001");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(top, 0), "package")),
	                 "picklelib");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(top, 1), "kind")),
	                 "secret");
	ck_assert_int_eq(count(json_object_get(json_object_get(o, "by_rule"), "DS002"), "count"),
	                 1);
	ck_assert_ptr_null(json_object_get(json_object_get(o, "by_rule"), "DS001"));
	json_decref(o);
}
END_TEST

START_TEST(test_scores)
{
	ck_assert_int_eq(scanreport_severity_of_score(10), SCANREPORT_CRITICAL);
	ck_assert_int_eq(scanreport_severity_of_score(9.0), SCANREPORT_CRITICAL);
	ck_assert_int_eq(scanreport_severity_of_score(8.9), SCANREPORT_HIGH);
	ck_assert_int_eq(scanreport_severity_of_score(7.0), SCANREPORT_HIGH);
	ck_assert_int_eq(scanreport_severity_of_score(6.9), SCANREPORT_MEDIUM);
	ck_assert_int_eq(scanreport_severity_of_score(4.0), SCANREPORT_MEDIUM);
	ck_assert_int_eq(scanreport_severity_of_score(3.9), SCANREPORT_LOW);
	ck_assert_int_eq(scanreport_severity_of_score(0.1), SCANREPORT_LOW);
	ck_assert_int_eq(scanreport_severity_of_score(0), SCANREPORT_UNKNOWN);
}
END_TEST

static const struct {
	const char *doc;
	enum scanreport_format fmt;
	int err;
	const char *why; /* a part of the message */
} bad[] = {
        {"", SCANREPORT_AUTO, -EINVAL, "not JSON"},
        {"{\"runs\": [", SCANREPORT_AUTO, -EINVAL, "not JSON"},
        {"{\"runs\": s3cr3t}", SCANREPORT_AUTO, -EINVAL, "not JSON (line 1, column"},
        {"[1, 2]", SCANREPORT_AUTO, -EINVAL, "neither SARIF"},
        {"{\"hello\": 1}", SCANREPORT_AUTO, -EINVAL, "neither SARIF"},
        {"{\"Results\": []}", SCANREPORT_SARIF, -EINVAL, "not a SARIF log"},
        {"{\"runs\": []}", SCANREPORT_TRIVY, -EINVAL, "not a Trivy"},
        {"{\"version\": \"s3cr3t\", \"runs\": []}", SCANREPORT_AUTO, -EINVAL, "2.1.0"},
        {"{\"runs\": {}}", SCANREPORT_AUTO, -EINVAL, "runs is missing or not an array"},
        {"{\"runs\": [{\"results\": []}]}", SCANREPORT_AUTO, -EINVAL, "runs[0].tool.driver"},
        {"{\"runs\": [{\"tool\": {\"driver\": {}}, \"results\": [{\"level\": \"s3cr3t\"}]}]}",
         SCANREPORT_AUTO, -EINVAL, "runs[0].results[0].level is not one of"},
        {"{\"runs\": [{\"tool\": {\"driver\": {}}, \"results\": [7]}]}", SCANREPORT_AUTO, -EINVAL,
         "runs[0].results[0] must be an object"},
        {"{\"runs\": [{\"tool\": {\"driver\": {\"rules\": [{\"id\": \"r\", \"properties\": "
         "{\"security-severity\": \"high\"}}]}}, \"results\": [{\"ruleId\": \"r\"}]}]}",
         SCANREPORT_AUTO, -EINVAL, "runs[0].tool.driver.rules[0].properties.security-severity"},
        {"{\"Results\": [{\"Vulnerabilities\": [{\"VulnerabilityID\": \"X\", \"Severity\": "
         "\"s3cr3t\"}]}]}",
         SCANREPORT_AUTO, -EINVAL, "Results[0].Vulnerabilities[0].Severity is not one of"},
        {"{\"Results\": [{\"Vulnerabilities\": [{\"Severity\": \"LOW\"}]}]}", SCANREPORT_AUTO,
         -EINVAL, "Results[0].Vulnerabilities[0].VulnerabilityID is missing"},
        {"{\"Results\": [{\"Secrets\": {}}]}", SCANREPORT_AUTO, -EINVAL,
         "Results[0].Secrets must be an array"},
        /* No data is never a clean report. */
        {"{\"runs\": []}", SCANREPORT_AUTO, -EINVAL, "runs is empty"},
        {"{\"runs\": [{\"tool\": {\"driver\": {}}}]}", SCANREPORT_AUTO, -EINVAL,
         "runs[0].results is missing or null"},
        {"{\"runs\": [{\"tool\": {\"driver\": {}}, \"results\": null}]}", SCANREPORT_AUTO, -EINVAL,
         "runs[0].results is missing or null"},
        {"{\"runs\": [{\"tool\": {\"driver\": {}}, \"invocations\": [{\"executionSuccessful\": "
         "false}], \"results\": []}]}",
         SCANREPORT_AUTO, -EINVAL, "runs[0].invocations[0].executionSuccessful is false"},
        {"{\"runs\": [{\"tool\": {\"driver\": {}}, \"results\": [{\"level\": \"error\"}]}], "
         "\"runs\": [{\"tool\": {\"driver\": {}}, \"results\": []}]}",
         SCANREPORT_AUTO, -EINVAL, "not JSON"},
        {"{\"runs\": [{\"tool\": {\"driver\": {}}, \"results\": []}], \"Results\": "
         "[{\"Vulnerabilities\": [{\"VulnerabilityID\": \"X\", \"Severity\": \"CRITICAL\"}]}]}",
         SCANREPORT_AUTO, -EINVAL, "neither SARIF"},
};

START_TEST(test_bad_input)
{
	char why[256] = "";
	json_t *o = NULL;
	int r = scanreport_parse(bad[_i].doc, strlen(bad[_i].doc), bad[_i].fmt, &o, why,
	                         sizeof(why));

	ck_assert_msg(r == bad[_i].err, "case %d: %d (%s)", _i, r, why);
	ck_assert_msg(strstr(why, bad[_i].why), "case %d: '%s' lacks '%s'", _i, why, bad[_i].why);
	/* A message never quotes the report (it may be any file allowed). */
	ck_assert_msg(!strstr(why, "s3cr3t"), "case %d quotes the input: %s", _i, why);
	ck_assert_ptr_null(o);
}
END_TEST

/* Over the cap: refused before parsing, whatever the bytes. */
START_TEST(test_oversized)
{
	size_t len = SCANREPORT_MAX_BYTES + 1;
	char *buf = malloc(len), why[256] = "";
	json_t *o = NULL;

	ck_assert_ptr_nonnull(buf);
	memset(buf, ' ', len);
	ck_assert_int_eq(scanreport_parse(buf, len, SCANREPORT_AUTO, &o, why, sizeof(why)), -EFBIG);
	ck_assert_ptr_nonnull(strstr(why, "more than"));
	free(buf);
}
END_TEST

/* Many findings: counts stay exact, the list of top findings is capped and
 * holds the most severe, earliest first. */
START_TEST(test_top_bounded)
{
	char *doc = malloc(1 << 20), why[256] = "";
	size_t n = 0;
	json_t *o = NULL, *top;

	ck_assert_ptr_nonnull(doc);
	n += (size_t)snprintf(doc + n, 1000, "{\"Results\": [{\"Vulnerabilities\": [");
	for (int i = 0; i < 500; i++)
		n += (size_t)snprintf(doc + n, 1000,
		                      "%s{\"VulnerabilityID\": \"CVE-%d\", \"Severity\": \"%s\"}",
		                      i ? "," : "", i, i == 400 ? "CRITICAL" : "LOW");
	n += (size_t)snprintf(doc + n, 1000, "]}]}");
	ck_assert_int_eq(scanreport_parse(doc, n, SCANREPORT_AUTO, &o, why, sizeof(why)), 0);
	check_counts(o, 1, 0, 0, 499, 0, 500);
	top = json_object_get(o, "top");
	ck_assert_int_eq(json_array_size(top), SCANREPORT_MAX_TOP);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(top, 0), "id")),
	                 "CVE-400");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(top, 1), "id")), "CVE-0");
	ck_assert_int_eq(json_object_size(json_object_get(o, "by_rule")), SCANREPORT_MAX_RULES);
	ck_assert(json_is_true(json_object_get(o, "rules_truncated")));
	json_decref(o);
	free(doc);
}
END_TEST

static Suite *scanreport_suite(void)
{
	Suite *s = suite_create("scanreport");
	TCase *tc = tcase_create("scanreport");

	tcase_add_test(tc, test_sarif_fixture);
	tcase_add_test(tc, test_trivy_fixture);
	tcase_add_test(tc, test_scores);
	tcase_add_loop_test(tc, test_bad_input, 0, (int)(sizeof(bad) / sizeof(bad[0])));
	tcase_add_test(tc, test_oversized);
	tcase_add_test(tc, test_top_bounded);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(scanreport_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
