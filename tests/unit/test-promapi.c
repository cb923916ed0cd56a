/* Unit tests for lib/promapi's readers of /api/v1/rules and /api/v1/alerts
 * answers, on answers recorded from a real Prometheus 2.42
 * (tests/unit/fixtures/prom-*.json): evaluated or not, the alert rule and
 * its nearest name, the state of the drilled series under label matchers,
 * and the labels as a reason shows them. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/prom/promapi.h"

/* The envelope's data of a fixture; the caller decrefs the returned root. */
static json_t *fixture(const char *name, json_t **ret_data)
{
	const char *dir = getenv("READYD_FIXTURES");
	char path[4096];
	json_error_t jerr;
	json_t *root;

	snprintf(path, sizeof(path), "%s/prom-%s.json", dir ? dir : "tests/unit/fixtures", name);
	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	ck_assert_msg(root, "%s: %s", path, jerr.text);
	*ret_data = json_object_get(root, "data");
	ck_assert_ptr_nonnull(*ret_data);
	return root;
}

static json_t *rule_at(json_t *data, size_t g, size_t r)
{
	return json_array_get(
	        json_object_get(json_array_get(json_object_get(data, "groups"), g), "rules"), r);
}

START_TEST(test_rule_evaluated)
{
	json_t *data, *root = fixture("rules-unevaluated", &data);
	json_t *groups = json_object_get(data, "groups");

	/* Right after start: health unknown, lastEvaluation Go's zero time. */
	ck_assert(!promapi_rule_evaluated(rule_at(data, 0, 0)));
	ck_assert(!promapi_rule_evaluated(rule_at(data, 0, 1)));
	ck_assert(!promapi_rule_evaluated(rule_at(data, 1, 0)));
	ck_assert(!promapi_rule_evaluated(json_array_get(groups, 1)));
	ck_assert_int_eq(promapi_group_interval_ms(json_array_get(groups, 0)), 1000);
	ck_assert_int_eq(promapi_group_interval_ms(json_array_get(groups, 1)), 30000);
	ck_assert_int_eq(promapi_group_interval_ms(rule_at(data, 0, 0)), 0);
	json_decref(root);

	root = fixture("rules-evaluated", &data);
	ck_assert(promapi_rule_evaluated(rule_at(data, 0, 0)));
	ck_assert(promapi_rule_evaluated(rule_at(data, 1, 0)));
	json_decref(root);
}
END_TEST

static const struct {
	const char *fixture, *name;
	size_t rules, unevaluated;
	int64_t interval_ms;
	const char *group, *closest;
} find_cases[] = {
        {"rules-unevaluated", "HighErrorRate", 1, 1, 1000, "demo", NULL},
        {"rules-unevaluated", "GPUOutOfMemory", 1, 1, 30000, "slow", NULL},
        {"rules-evaluated", "HighErrorRate", 1, 0, 0, "demo", NULL},
        {"rules-evaluated", "HighErrorRat", 0, 0, 0, NULL, "HighErrorRate"},
        {"rules-evaluated", "higherrorrate", 0, 0, 0, NULL, "HighErrorRate"},
        {"rules-evaluated", "HihgErrorRate", 0, 0, 0, NULL, "HighErrorRate"},
        {"rules-evaluated", "GPUOutOfMem", 0, 0, 0, NULL, NULL},
        /* A recording rule is not an alert, and is never suggested. */
        {"rules-evaluated", "job:requests:rate5s", 0, 0, 0, NULL, NULL},
        {"rules-evaluated", "job:requests:rate5", 0, 0, 0, NULL, NULL},
        {"rules-broken", "BrokenRegex", 1, 0, 0, "series", NULL},
};

START_TEST(test_find_alert_rule)
{
	json_t *data, *root = fixture(find_cases[_i].fixture, &data);
	struct promapi_alert_rule ar;

	ck_assert_int_eq(promapi_find_alert_rule(data, find_cases[_i].name, &ar), 0);
	ck_assert_uint_eq(ar.rules, find_cases[_i].rules);
	ck_assert_uint_eq(ar.unevaluated, find_cases[_i].unevaluated);
	ck_assert_int_eq(ar.unevaluated_interval_ms, find_cases[_i].interval_ms);
	ck_assert_pstr_eq(ar.group, find_cases[_i].group);
	ck_assert_pstr_eq(ar.closest, find_cases[_i].closest);
	json_decref(root);
}
END_TEST

START_TEST(test_find_alert_rule_bad_shape)
{
	const char *bad[] = {"{}", "{\"groups\": 3}", "{\"groups\": [{\"name\": \"g\"}]}",
	                     "{\"groups\": [{\"rules\": {}}]}"};
	struct promapi_alert_rule ar = {.rules = 7};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *data = json_loads(bad[i], 0, NULL);

		ck_assert_int_eq(promapi_find_alert_rule(data, "A", &ar), -EPROTO);
		ck_assert_uint_eq(ar.rules, 7); /* untouched on error */
		json_decref(data);
	}
}
END_TEST

static const struct promapi_alert_state_case {
	const char *fixture;
	const char *label, *value; /* one matcher, or none */
	const char *state;
	size_t matching, others;
	const char *instance, *other_instance; /* of labels / other_labels */
} state_cases[] = {
        {"alerts-firing", NULL, NULL, "firing", 1, 0, "127.0.0.1:36445", NULL},
        {"alerts-firing", "severity", "page", "firing", 1, 0, "127.0.0.1:36445", NULL},
        {"alerts-firing", "instance", "127.0.0.1:1", "inactive", 0, 1, NULL, "127.0.0.1:36445"},
        {"alerts-firing", "zone", "a", "inactive", 0, 1, NULL, "127.0.0.1:36445"},
        {"alerts-pending", NULL, NULL, "pending", 1, 0, "127.0.0.1:36445", NULL},
        /* Firing wins over pending; matchers pick one series. */
        {"alerts-two-series", NULL, NULL, "firing", 2, 0, "127.0.0.1:34525", NULL},
        {"alerts-two-series", "instance", "127.0.0.1:37771", "pending", 1, 1, "127.0.0.1:37771",
         "127.0.0.1:34525"},
        {"alerts-two-series", "instance", "127.0.0.1:34525", "firing", 1, 1, "127.0.0.1:34525",
         "127.0.0.1:37771"},
        /* Exact values only: no prefix, no regex. */
        {"alerts-two-series", "instance", "127.0.0.1:3", "inactive", 0, 2, NULL, "127.0.0.1:34525"},
};

START_TEST(test_alert_state)
{
	const struct promapi_alert_state_case *c = &state_cases[_i];
	json_t *data, *root = fixture(c->fixture, &data);
	struct spec_label m = {(char *)c->label, (char *)c->value};
	struct promapi_alert_state st;

	ck_assert_int_eq(promapi_alert_state(data, "HighErrorRate", &m, c->label ? 1 : 0, &st), 0);
	ck_assert_str_eq(st.state, c->state);
	ck_assert_uint_eq(st.matching, c->matching);
	ck_assert_uint_eq(st.others, c->others);
	ck_assert_pstr_eq(json_string_value(json_object_get(st.labels, "instance")), c->instance);
	ck_assert_pstr_eq(json_string_value(json_object_get(st.other_labels, "instance")),
	                  c->other_instance);
	/* Another alert's name never matches. */
	ck_assert_int_eq(promapi_alert_state(data, "HighErrorRat", NULL, 0, &st), 0);
	ck_assert_str_eq(st.state, "inactive");
	ck_assert_uint_eq(st.matching + st.others, 0);
	json_decref(root);
}
END_TEST

START_TEST(test_alert_state_bad_shape)
{
	json_t *data = json_loads("{\"alerts\": {}}", 0, NULL);
	struct promapi_alert_state st = {.matching = 9};

	ck_assert_int_eq(promapi_alert_state(data, "A", NULL, 0, &st), -EPROTO);
	ck_assert_uint_eq(st.matching, 9);
	json_decref(data);
	data = json_loads("{\"alerts\": []}", 0, NULL);
	ck_assert_int_eq(promapi_alert_state(data, "A", NULL, 0, &st), 0);
	ck_assert_str_eq(st.state, "inactive");
	json_decref(data);
}
END_TEST

START_TEST(test_format_labels)
{
	json_t *data, *root = fixture("alerts-firing", &data);
	json_t *labels =
	        json_object_get(json_array_get(json_object_get(data, "alerts"), 0), "labels");
	char buf[256], small[30];

	promapi_format_labels(labels, buf, sizeof(buf));
	ck_assert_str_eq(buf, "instance=\"127.0.0.1:36445\", job=\"demo\", severity=\"page\"");
	/* Too small: whole labels only, never half of one. */
	promapi_format_labels(labels, small, sizeof(small));
	ck_assert_str_eq(small, "instance=\"127.0.0.1:36445\"");
	promapi_format_labels(NULL, buf, sizeof(buf));
	ck_assert_str_eq(buf, "");
	json_decref(root);
}
END_TEST

static Suite *promapi_suite(void)
{
	Suite *s = suite_create("promapi");
	TCase *tc = tcase_create("readers");

	tcase_add_test(tc, test_rule_evaluated);
	tcase_add_loop_test(tc, test_find_alert_rule, 0,
	                    sizeof(find_cases) / sizeof(find_cases[0]));
	tcase_add_test(tc, test_find_alert_rule_bad_shape);
	tcase_add_loop_test(tc, test_alert_state, 0, sizeof(state_cases) / sizeof(state_cases[0]));
	tcase_add_test(tc, test_alert_state_bad_shape);
	tcase_add_test(tc, test_format_labels);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(promapi_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
