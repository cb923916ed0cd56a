/* Unit tests for lib/promapi's readers of /api/v1/rules and /api/v1/alerts
 * answers, on answers recorded from a real Prometheus 2.42
 * (tests/unit/fixtures/prom-*.json): evaluated or not, the alert rule and
 * its nearest name, the state of the drilled series under label matchers,
 * and the labels as a reason shows them.
 *
 * And readyd as an Alertmanager receiver: lib/prom/aminbox.c's reader of
 * webhook payloads (a payload recorded from a real Alertmanager 0.25 in
 * fixtures/alertmanager-webhook.json, and every refusal with the path of
 * its field), its ring and what a drill matches there; and
 * lib/prom/amapi.c's reading of a recorded /api/v2/alerts answer
 * (alertmanager-v2-alerts.json: active, silenced and inhibited alerts,
 * routed to different receivers). */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/prom/amapi.h"
#include "lib/prom/aminbox.h"
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

/* --- Alertmanager: webhook payloads and /api/v2/alerts --- */

static char *read_fixture(const char *name, size_t *ret_len)
{
	const char *dir = getenv("READYD_FIXTURES");
	char path[4096];
	FILE *f;
	char *buf = malloc(1 << 20);
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", dir ? dir : "tests/unit/fixtures", name);
	f = fopen(path, "rb");
	ck_assert_msg(f, "%s", path);
	ck_assert_ptr_nonnull(buf);
	n = fread(buf, 1, (1 << 20) - 1, f);
	fclose(f);
	buf[n] = '\0';
	*ret_len = n;
	return buf;
}

static json_t *webhook_fixture(void)
{
	size_t len;
	char *buf = read_fixture("alertmanager-webhook.json", &len);
	json_t *doc = json_loadb(buf, len, 0, NULL);

	ck_assert_ptr_nonnull(doc);
	free(buf);
	return doc;
}

START_TEST(test_parse_recorded)
{
	size_t len;
	char *buf = read_fixture("alertmanager-webhook.json", &len);
	struct aminbox_error err;
	json_t *p = NULL;

	ck_assert_int_eq(aminbox_parse(buf, len, &p, &err), 0);
	ck_assert_str_eq(json_string_value(json_object_get(p, "receiver")), "readyd");
	json_decref(p);
	free(buf);
}
END_TEST

/* One change to the recorded payload, and the path its refusal names. */
static const struct {
	const char *pointer; /* "alerts.0.labels.severity": where to change */
	const char *json;    /* the new value; NULL: remove the key */
	const char *path;
} bad_cases[] = {
        {"version", "\"3\"", "version"},
        {"version", NULL, "version"},
        {"status", "\"burning\"", "status"},
        {"receiver", "\"\"", "receiver"},
        {"receiver", NULL, "receiver"},
        {"groupKey", "7", "groupKey"},
        {"groupKey", NULL, "groupKey"},
        {"externalURL", "[]", "externalURL"},
        {"groupLabels", "\"x\"", "groupLabels"},
        {"commonLabels.severity", "1", "commonLabels.severity"},
        {"commonAnnotations", "[]", "commonAnnotations"},
        {"alerts", NULL, "alerts"},
        {"alerts", "{}", "alerts"},
        {"alerts", "[]", "alerts"},
        {"alerts.0", "\"x\"", "alerts[0]"},
        {"alerts.0.status", NULL, "alerts[0].status"},
        {"alerts.0.labels", NULL, "alerts[0].labels"},
        {"alerts.0.labels.alertname", NULL, "alerts[0].labels"},
        {"alerts.0.labels.severity", "null", "alerts[0].labels.severity"},
        {"alerts.0.annotations", "7", "alerts[0].annotations"},
        {"alerts.0.startsAt", NULL, "alerts[0].startsAt"},
        {"alerts.0.startsAt", "\"yesterday\"", "alerts[0].startsAt"},
        {"alerts.0.endsAt", "\"soon\"", "alerts[0].endsAt"},
        {"alerts.0.generatorURL", "1", "alerts[0].generatorURL"},
        {"alerts.0.fingerprint", "false", "alerts[0].fingerprint"},
};

/* Sets (or removes) the value at a dotted pointer whose numeric steps
 * index arrays. */
static void mutate(json_t *doc, const char *pointer, const char *value)
{
	char buf[256], *step = buf, *dot;
	json_t *node = doc;

	snprintf(buf, sizeof(buf), "%s", pointer);
	while ((dot = strchr(step, '.')) != NULL) {
		*dot = '\0';
		node = json_is_array(node) ? json_array_get(node, strtoul(step, NULL, 10))
		                           : json_object_get(node, step);
		step = dot + 1;
	}
	if (json_is_array(node)) {
		ck_assert_ptr_nonnull(value);
		json_array_set_new(node, strtoul(step, NULL, 10),
		                   json_loads(value, JSON_DECODE_ANY, NULL));
	} else if (!value) {
		json_object_del(node, step);
	} else {
		json_object_set_new(node, step, json_loads(value, JSON_DECODE_ANY, NULL));
	}
}

START_TEST(test_parse_refusals)
{
	json_t *doc = webhook_fixture(), *p = NULL;
	struct aminbox_error err;
	char *text;

	mutate(doc, bad_cases[_i].pointer, bad_cases[_i].json);
	text = json_dumps(doc, 0);
	ck_assert_int_eq(aminbox_parse(text, strlen(text), &p, &err), -EINVAL);
	ck_assert_ptr_null(p);
	ck_assert_str_eq(err.path, bad_cases[_i].path);
	ck_assert_msg(err.message[0], "a refusal says why");
	free(text);
	json_decref(doc);
}
END_TEST

START_TEST(test_parse_not_json_and_too_big)
{
	struct aminbox_error err;
	json_t *p = NULL;
	char *big;

	ck_assert_int_eq(aminbox_parse("{\"version\": \"4\"", 16, &p, &err), -EINVAL);
	ck_assert_str_eq(err.path, "");
	ck_assert_int_eq(aminbox_parse("[1]", 3, &p, &err), -EINVAL);
	ck_assert_str_eq(err.path, "");
	ck_assert_int_eq(aminbox_parse(NULL, 0, &p, &err), -EINVAL);
	big = calloc(1, AMINBOX_MAX_BODY + 2);
	ck_assert_ptr_nonnull(big);
	memset(big, ' ', AMINBOX_MAX_BODY + 1);
	ck_assert_int_eq(aminbox_parse(big, AMINBOX_MAX_BODY + 1, &p, &err), -E2BIG);
	ck_assert_ptr_null(p);
	free(big);
}
END_TEST

static int64_t add_notification(struct aminbox *ib, const char *receiver, const char *severity,
                                const char *status, uint64_t mono)
{
	json_t *doc = webhook_fixture();

	json_object_set_new(doc, "receiver", json_string(receiver));
	mutate(doc, "alerts.0.labels.severity", severity);
	json_object_set_new(json_array_get(json_object_get(doc, "alerts"), 0), "status",
	                    json_string(status));
	return aminbox_add(ib, doc, 1000, "notifier", mono, 1000);
}

START_TEST(test_find)
{
	struct aminbox *ib;
	struct spec_label page = {"severity", "page"};
	json_t *readyd = json_pack("[s]", "readyd"), *pager = json_pack("[s, s]", "x", "pager");
	struct aminbox_query q = {.alertname = "HighErrorRate", .labels = &page, .n_labels = 1};
	struct aminbox_match m;

	ck_assert_int_eq(aminbox_new(0, &ib), 0);
	ck_assert_int_eq(aminbox_find(ib, &q, &m), -ENOENT);
	ck_assert_int_eq(add_notification(ib, "readyd", "\"page\"", "firing", 100), 1);
	ck_assert_int_eq(add_notification(ib, "pager", "\"ticket\"", "firing", 200), 2);
	ck_assert_int_eq(add_notification(ib, "pager", "\"page\"", "resolved", 300), 3);
	ck_assert_int_eq(add_notification(ib, "pager", "\"page\"", "firing", 400), 4);
	ck_assert_int_eq(aminbox_find(ib, &q, &m), 0);
	ck_assert_int_eq(m.id, 1);
	ck_assert_str_eq(m.receiver, "readyd");
	ck_assert_str_eq(m.fingerprint, "3eacacedc5464f06");
	ck_assert_uint_eq(m.mono_ms, 100);
	/* Arrived before the drill's trigger: not its notification. */
	q.since_mono_ms = 101;
	ck_assert_int_eq(aminbox_find(ib, &q, &m), 0);
	ck_assert_int_eq(m.id, 4);
	/* Another receiver's delivery does not count, but is counted. */
	q.since_mono_ms = 0;
	q.receivers = readyd;
	ck_assert_int_eq(aminbox_find(ib, &q, &m), 0);
	ck_assert_int_eq(m.id, 1);
	q.since_mono_ms = 101;
	ck_assert_int_eq(aminbox_find(ib, &q, &m), -ENOENT);
	ck_assert_uint_eq(aminbox_count_elsewhere(ib, &q), 1);
	q.receivers = pager;
	ck_assert_int_eq(aminbox_find(ib, &q, &m), 0);
	ck_assert_int_eq(m.id, 4);
	/* An alert that started long before the trigger: an earlier episode. */
	q.not_before_ms = 4102444800000; /* 2100-01-01 */
	ck_assert_int_eq(aminbox_find(ib, &q, &m), -ENOENT);
	q.not_before_ms = 0;
	q.alertname = "HighLatency";
	ck_assert_int_eq(aminbox_find(ib, &q, &m), -ENOENT);
	json_decref(readyd);
	json_decref(pager);
	aminbox_free(ib);
}
END_TEST

START_TEST(test_ring)
{
	struct aminbox *ib;
	json_t *list;

	ck_assert_int_eq(aminbox_new(3, &ib), 0);
	for (int i = 1; i <= 5; i++)
		ck_assert_int_eq(add_notification(ib, "readyd", "\"page\"", "firing", (uint64_t)i),
		                 i);
	ck_assert_uint_eq(aminbox_held(ib), 3);
	ck_assert_int_eq(aminbox_received(ib), 5);
	list = aminbox_list(ib, 10, 0);
	ck_assert_uint_eq(json_array_size(list), 3);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(list, 0), "id")), 5);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(list, 2), "id")), 3);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 0), "received_at")),
	                 "1970-01-01T00:00:01.000Z");
	json_decref(list);
	list = aminbox_list(ib, 1, 0);
	ck_assert_uint_eq(json_array_size(list), 1);
	json_decref(list);
	list = aminbox_list(ib, 10, 4);
	ck_assert_uint_eq(json_array_size(list), 1);
	json_decref(list);
	/* Bytes are bounded too: a large payload pushes out older ones. */
	ck_assert_int_eq(aminbox_add(ib, json_object(), AMINBOX_MAX_HELD_BYTES - 1500, NULL, 6, 0),
	                 6);
	ck_assert_uint_eq(aminbox_held(ib), 2);
	ck_assert_int_eq(aminbox_add(ib, json_object(), AMINBOX_MAX_HELD_BYTES, NULL, 7, 0), 7);
	ck_assert_uint_eq(aminbox_held(ib), 1);
	list = aminbox_list(ib, 10, 0);
	ck_assert_ptr_null(json_object_get(json_array_get(list, 0), "sender"));
	json_decref(list);
	aminbox_free(ib);
	aminbox_free(NULL);
}
END_TEST

/* --- Alertmanager's /api/v2/alerts --- */

static json_t *alerts_fixture(void)
{
	size_t len;
	char *buf = read_fixture("alertmanager-v2-alerts.json", &len);
	json_t *doc = json_loadb(buf, len, 0, NULL);

	ck_assert_ptr_nonnull(doc);
	free(buf);
	return doc;
}

static const struct {
	const char *instance; /* NULL: no matcher */
	const char *state;
	const char *receivers;
	const char *silenced, *inhibited;
} am_cases[] = {
        {"a:1", "active", "pager", "", ""},
        {"b:1", "suppressed", "readyd", "624ce0f5-4feb-4ce4-bb8d-9c2a011e3a1c", ""},
        {"c:1", "suppressed", "readyd", "", "149f2f03dfced7ca"},
        {"d:1", "absent", "", "", ""},
        {NULL, "active", "pager", "", ""}, /* the most advanced of three */
};

START_TEST(test_am_state)
{
	json_t *doc = alerts_fixture();
	struct spec_label m = {"instance", (char *)am_cases[_i].instance};
	struct amapi_alert_state st;
	char buf[256];

	ck_assert_int_eq(
	        amapi_alert_state(doc, "HighErrorRate", &m, am_cases[_i].instance ? 1 : 0, 0, &st),
	        0);
	ck_assert_str_eq(st.state, am_cases[_i].state);
	ck_assert_uint_eq(st.matching, am_cases[_i].instance ? (st.alert ? 1 : 0) : 3);
	amapi_format_receivers(st.alert, buf, sizeof(buf));
	ck_assert_str_eq(buf, am_cases[_i].receivers);
	if (st.alert)
		ck_assert(amapi_routed_to(st.alert, am_cases[_i].receivers));
	ck_assert(!amapi_routed_to(st.alert, "oncall"));
	amapi_format_list(st.silenced_by, buf, sizeof(buf));
	ck_assert_str_eq(buf, am_cases[_i].silenced);
	amapi_format_list(st.inhibited_by, buf, sizeof(buf));
	ck_assert_str_eq(buf, am_cases[_i].inhibited);
	json_decref(doc);
}
END_TEST

START_TEST(test_am_state_old_episode_and_bad_shape)
{
	json_t *doc = alerts_fixture(), *obj = json_object();
	struct amapi_alert_state st;

	/* Every alert of the recording started before 2100. */
	ck_assert_int_eq(amapi_alert_state(doc, "HighErrorRate", NULL, 0, 4102444800000, &st), 0);
	ck_assert_str_eq(st.state, "absent");
	ck_assert_int_eq(amapi_alert_state(obj, "HighErrorRate", NULL, 0, 0, &st), -EPROTO);
	json_decref(obj);
	json_decref(doc);
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
	tc = tcase_create("alertmanager");
	tcase_add_test(tc, test_parse_recorded);
	tcase_add_loop_test(tc, test_parse_refusals, 0, sizeof(bad_cases) / sizeof(bad_cases[0]));
	tcase_add_test(tc, test_parse_not_json_and_too_big);
	tcase_add_test(tc, test_find);
	tcase_add_test(tc, test_ring);
	tcase_add_loop_test(tc, test_am_state, 0, sizeof(am_cases) / sizeof(am_cases[0]));
	tcase_add_test(tc, test_am_state_old_episode_and_bad_shape);
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
