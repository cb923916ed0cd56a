/* Unit tests for lib/jsonpath: the http probe's "$.a.b[0]" paths, their
 * syntax errors, missing steps and number-aware equality. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/probe/jsonpath.h"

static const char doc_text[] =
        "{\"status\": \"ok\", \"data\": {\"items\": [{\"name\": \"a\"}, {\"name\": \"b\", "
        "\"n\": 2}], \"empty\": []}, \"x-y\": {\"k_1\": null}, \"n\": 1.0}";

static const struct {
	const char *path;
	int ret;
	const char *want; /* JSON of the value, or a fragment of the message */
} cases[] = {
        {"$", 0, "{"},
        {"$.status", 0, "\"ok\""},
        {"$.data.items[1].name", 0, "\"b\""},
        {"$.data.items[1].n", 0, "2"},
        {"$.data.items[0]", 0, "{\"name\":\"a\"}"},
        {"$.x-y.k_1", 0, "null"},
        {"$.nope", -ENOENT, "no key 'nope'"},
        {"$.data.items[2].name", -ENOENT, "index 2 is past the end (size 2)"},
        {"$.data.empty[0]", -ENOENT, "past the end"},
        {"$.status.x", -ENOENT, "not an object"},
        {"$.data[0]", -ENOENT, "not an array"},
        {"$.nope[x]", -EINVAL, "bad index 'x'"}, /* syntax wins over missing */
        {"status", -EINVAL, "starts with '$'"},
        {"$.", -EINVAL, "empty key"},
        {"$..a", -EINVAL, "empty key"},
        {"$[-1]", -EINVAL, "bad index '-1'"},
        {"$[+1]", -EINVAL, "bad index"},
        {"$[1", -EINVAL, "bad index"},
        {"$[]", -EINVAL, "bad index"},
        {"$x", -EINVAL, "expected '.' or '['"},
        {"$[99999999999]", -EINVAL, "bad index"},
};

START_TEST(test_get)
{
	json_t *doc = json_loads(doc_text, 0, NULL), *v = NULL;
	char why[256] = "";
	int r;

	ck_assert_ptr_nonnull(doc);
	r = jsonpath_get(doc, cases[_i].path, &v, why, sizeof(why));
	ck_assert_msg(r == cases[_i].ret, "%s: %d (%s)", cases[_i].path, r, why);
	if (r == 0) {
		char *got = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

		ck_assert_ptr_nonnull(got);
		ck_assert_msg(strncmp(got, cases[_i].want, strlen(cases[_i].want)) == 0, "%s: %s",
		              cases[_i].path, got);
		free(got);
	} else {
		ck_assert_ptr_null(v); /* untouched on error */
		ck_assert_msg(strstr(why, cases[_i].want), "%s: '%s'", cases[_i].path, why);
	}
	json_decref(doc);
}
END_TEST

START_TEST(test_bounds)
{
	json_t *doc = json_object(), *v = NULL;
	char path[JSONPATH_MAX_LEN + 8], why[256];
	size_t i, off = 1;

	/* JSONPATH_MAX_STEPS + 1 steps */
	path[0] = '$';
	for (i = 0; i <= JSONPATH_MAX_STEPS; i++)
		off += (size_t)snprintf(path + off, sizeof(path) - off, ".a");
	ck_assert_int_eq(jsonpath_get(doc, path, &v, why, sizeof(why)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "steps"));
	memset(path, 'a', sizeof(path) - 1);
	path[0] = '$';
	path[1] = '.';
	path[sizeof(path) - 1] = '\0';
	ck_assert_int_eq(jsonpath_get(doc, path, &v, NULL, 0), -EINVAL);
	ck_assert_ptr_null(v);
	json_decref(doc);
}
END_TEST

START_TEST(test_equal)
{
	json_t *i1 = json_integer(1), *r1 = json_real(1.0), *r15 = json_real(1.5);
	json_t *s1 = json_string("1"), *o1 = json_pack("{s:i}", "a", 1);
	json_t *o2 = json_pack("{s:i}", "a", 1);

	ck_assert(jsonpath_equal(i1, r1));
	ck_assert(!jsonpath_equal(i1, r15));
	ck_assert(!jsonpath_equal(i1, s1));
	ck_assert(jsonpath_equal(o1, o2));
	json_decref(i1);
	json_decref(r1);
	json_decref(r15);
	json_decref(s1);
	json_decref(o1);
	json_decref(o2);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("jsonpath");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_get, 0, (int)(sizeof(cases) / sizeof(cases[0])));
	tcase_add_test(tc, test_bounds);
	tcase_add_test(tc, test_equal);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
