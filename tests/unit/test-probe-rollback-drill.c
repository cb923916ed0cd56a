/* Unit tests for the rollback-drill probe's reading of a version_url
 * answer (lib/probe/probe_rollback_drill.c): plain text trimmed of white
 * space, the "version" string of a JSON object (not trimmed), bodies that
 * are JSON of another shape, exact comparison (case, length) and a
 * version longer than the one the probe keeps for its messages. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/probe/probe_rollback_drill.h"

#define SEEN_LEN 129 /* what the probe keeps: 128 characters */

static const struct {
	const char *body, *expect;
	bool match;
	const char *seen;
} cases[] = {
        {"v2", "v2", true, "v2"},
        {"v2\n", "v2", true, "v2"},
        {"  \t v2 \r\n", "v2", true, "v2"},
        {"1.4.2", "1.4.2", true, "1.4.2"},
        {"v2 build 7", "v2", false, "v2 build 7"},
        {"V2", "v2", false, "V2"},
        {"v22", "v2", false, "v22"},
        {"v", "v2", false, "v"},
        {"", "v2", false, ""},
        {" \n", "v2", false, ""},
        {"{\"version\": \"v2\"}", "v2", true, "v2"},
        {"{\"service\": \"shop\", \"version\": \"v1\", \"uptime\": 3}", "v2", false, "v1"},
        /* The JSON field is taken as it is, white space included. */
        {"{\"version\": \" v2 \"}", "v2", false, " v2 "},
        /* Not a version string: the body counts, as text. */
        {"{\"version\": 2}", "2", false, "{\"version\": 2}"},
        {"{\"name\": \"v2\"}", "v2", false, "{\"name\": \"v2\"}"},
        {"\"v2\"", "v2", false, "\"v2\""},
        {"[\"v2\"]", "v2", false, "[\"v2\"]"},
        {"{\"version\": \"v2\"} trailing", "v2", false, "{\"version\": \"v2\"} trailing"},
        /* A number as plain text is compared as text. */
        {"2.0\n", "2.0", true, "2.0"},
        {"2.0", "2", false, "2.0"},
};

START_TEST(test_matches)
{
	char seen[SEEN_LEN];
	bool m;

	memset(seen, 'Z', sizeof(seen));
	m = probe_rollback_drill_matches(cases[_i].body, strlen(cases[_i].body), cases[_i].expect,
	                                 seen, sizeof(seen));
	ck_assert_msg(m == cases[_i].match, "'%s' against '%s': %s", cases[_i].body,
	              cases[_i].expect, m ? "matched" : "no match");
	ck_assert_str_eq(seen, cases[_i].seen);
}
END_TEST

/* Only body_len bytes count: the answer is not NUL-terminated. */
START_TEST(test_body_len)
{
	char seen[SEEN_LEN];

	ck_assert(probe_rollback_drill_matches("v2v3", 2, "v2", seen, sizeof(seen)));
	ck_assert_str_eq(seen, "v2");
	ck_assert(!probe_rollback_drill_matches("v2", 1, "v2", seen, sizeof(seen)));
	ck_assert(!probe_rollback_drill_matches(NULL, 0, "v2", seen, sizeof(seen)));
	ck_assert_str_eq(seen, "");
}
END_TEST

/* A version longer than the probe keeps is not the expected one even when
 * its first 128 characters are (expect_version allows 128). */
START_TEST(test_long_version)
{
	char expect[129], body[200], json[256], seen[SEEN_LEN], small[4];

	memset(expect, 'a', 128);
	expect[128] = '\0';
	snprintf(body, sizeof(body), "%sb", expect);
	ck_assert(!probe_rollback_drill_matches(body, strlen(body), expect, seen, sizeof(seen)));
	ck_assert_str_eq(seen, expect);
	snprintf(json, sizeof(json), "{\"version\": \"%s\"}", body);
	ck_assert(!probe_rollback_drill_matches(json, strlen(json), expect, seen, sizeof(seen)));
	ck_assert_str_eq(seen, expect);
	ck_assert(probe_rollback_drill_matches(expect, 128, expect, seen, sizeof(seen)));
	/* seen is cut to fit, the comparison is not. */
	ck_assert(probe_rollback_drill_matches("v2.10", 5, "v2.10", small, sizeof(small)));
	ck_assert_str_eq(small, "v2.");
}
END_TEST

static Suite *rollback_suite(void)
{
	Suite *s = suite_create("probe-rollback-drill");
	TCase *tc = tcase_create("version");

	tcase_add_loop_test(tc, test_matches, 0, sizeof(cases) / sizeof(cases[0]));
	tcase_add_test(tc, test_body_len);
	tcase_add_test(tc, test_long_version);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(rollback_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
