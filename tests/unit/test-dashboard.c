/* Unit tests for the dashboard probe's reading of a Grafana dashboard
 * (lib/probe/dashboard.c): panels nested in rows and legacy rows, which
 * targets count as Prometheus queries, template variables and built-ins
 * substituted in every spelling; and for the client/server latency
 * reconciliation (lib/probe/reconcile.c): gap_ratio, the flag, and the
 * entries built from a run's probes. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/probe/dashboard.h"
#include "lib/probe/reconcile.h"

static json_t *js(const char *text)
{
	json_error_t e;
	json_t *o = json_loads(text, 0, &e);

	ck_assert_msg(o, "%s", e.text);
	return o;
}

static const char *title(json_t *panels, size_t i)
{
	return json_string_value(json_object_get(json_array_get(panels, i), "title"));
}

START_TEST(test_panels)
{
	json_t *doc = js(
	        "{\"dashboard\": {\"title\": \"d\", \"panels\": ["
	        " {\"type\": \"text\", \"title\": \"Notes\"},"
	        " {\"type\": \"timeseries\", \"title\": \"A\", \"targets\": ["
	        "   {\"refId\": \"A\", \"expr\": \"up\"},"
	        "   {\"refId\": \"B\", \"expr\": \"hidden\", \"hide\": true},"
	        "   {\"refId\": \"C\", \"expr\": \"\"}]},"
	        " {\"type\": \"row\", \"title\": \"Row\", \"collapsed\": true, \"panels\": ["
	        "   {\"type\": \"stat\", \"title\": \"Nested\", \"targets\": [{\"expr\": \"x\"}]}]},"
	        " {\"type\": \"timeseries\", \"title\": \"Loki\", \"datasource\": {\"type\": \"loki\"},"
	        "  \"targets\": [{\"expr\": \"{job=\\\"a\\\"}\"}]},"
	        " {\"type\": \"timeseries\", \"title\": \"Mixed\", \"datasource\": {\"type\": \"loki\"},"
	        "  \"targets\": [{\"expr\": \"y\", \"datasource\": {\"type\": \"prometheus\","
	        "   \"uid\": \"p\"}}]}],"
	        " \"rows\": [{\"panels\": [{\"title\": \"Legacy\", \"targets\": [{\"expr\": \"z\"}]}]}]},"
	        " \"meta\": {}}");
	json_t *dash = dashboard_model(doc), *panels = NULL;

	ck_assert_ptr_nonnull(dash);
	ck_assert_int_eq(dashboard_panels(dash, &panels), 0);
	ck_assert_int_eq(json_array_size(panels), 4);
	ck_assert_str_eq(title(panels, 0), "A");
	ck_assert_int_eq(json_array_size(json_object_get(json_array_get(panels, 0), "targets")), 1);
	ck_assert_str_eq(title(panels, 1), "Nested");
	ck_assert_str_eq(title(panels, 2), "Mixed");
	ck_assert_str_eq(title(panels, 3), "Legacy");
	json_decref(panels);
	json_decref(doc);
	doc = js("{\"title\": \"no panels\"}");
	ck_assert_ptr_null(dashboard_model(doc));
	json_decref(doc);
}
END_TEST

static const struct dashboard_builtins b60 = {.range_ms = 60000, .scrape_ms = 1000};

static const struct {
	const char *in, *out;
} subs[] = {
        {"rate(x{instance=\"$instance\"}[5m])", "rate(x{instance=\"i:1\"}[5m])"},
        {"x{job=\"${job}\"}", "x{job=\"demo\"}"},
        {"x{job=\"${job:regex}\"}", "x{job=\"demo\"}"},
        {"x{job=\"[[job]]\"}", "x{job=\"demo\"}"},
        {"x{env=~\"$env\"}", "x{env=~\"a|b\"}"},
        {"rate(x[$__rate_interval])", "rate(x[4000ms])"},
        {"rate(x[$__interval])", "rate(x[1000ms])"},
        {"increase(x[$__range])", "increase(x[60000ms])"},
        {"x / $__range_s", "x / 60"},
        {"label_replace(x, \"a\", \"$1\", \"b\", \"(.*)\")",
         "label_replace(x, \"a\", \"$1\", \"b\", \"(.*)\")"},
        {"x{a=~\"^b$\"}", "x{a=~\"^b$\"}"},
        {"$", "$"},
        {"[[", "[["},
};

START_TEST(test_substitute)
{
	json_t *dash = js("{\"panels\": [], \"templating\": {\"list\": ["
	                  " {\"name\": \"job\", \"current\": {\"value\": \"default-job\"}},"
	                  " {\"name\": \"env\", \"current\": {\"value\": [\"a\", \"b\"]}}]}}");
	struct spec_label vars[] = {{"instance", "i:1"}, {"job", "demo"}};
	json_t *vals = dashboard_variables(dash, vars, 2);
	char *out = NULL, why[128] = "";

	ck_assert_int_eq(dashboard_substitute(subs[_i].in, vals, &b60, &out, why, sizeof(why)), 0);
	ck_assert_str_eq(out, subs[_i].out);
	free(out);
	json_decref(vals);
	json_decref(dash);
}
END_TEST

/* Grafana's "All" ($__all) takes allValue, else the options, else any
 * value: the literal $__all would match no series. */
START_TEST(test_substitute_all)
{
	json_t *dash =
	        js("{\"panels\": [], \"templating\": {\"list\": ["
	           " {\"name\": \"a\", \"allValue\": \".+\", \"current\": {\"value\": \"$__all\"}},"
	           " {\"name\": \"b\", \"current\": {\"value\": [\"$__all\"]}, \"options\": ["
	           "  {\"value\": \"$__all\"}, {\"value\": \"x\"}, {\"value\": \"y\"}]},"
	           " {\"name\": \"c\", \"current\": {\"value\": \"$__all\"}}]}}");
	json_t *vals = dashboard_variables(dash, NULL, 0);
	char *out = NULL, why[128] = "";

	ck_assert_int_eq(dashboard_substitute("m{a=~\"$a\",b=~\"$b\",c=~\"$c\"}", vals, &b60, &out,
	                                      why, sizeof(why)),
	                 0);
	ck_assert_str_eq(out, "m{a=~\".+\",b=~\"x|y\",c=~\".*\"}");
	free(out);
	json_decref(vals);
	json_decref(dash);
}
END_TEST

START_TEST(test_substitute_unknown)
{
	json_t *vals = json_object();
	char *out = NULL, why[128] = "";
	struct dashboard_builtins wide = {.range_ms = 86400000, .scrape_ms = 15000};

	ck_assert_int_eq(
	        dashboard_substitute("x{a=\"$missing\"}", vals, &b60, &out, why, sizeof(why)),
	        -ENOENT);
	ck_assert_ptr_null(out);
	ck_assert_ptr_nonnull(strstr(why, "$missing"));
	/* A long window: $__interval follows the window, not the scrape. */
	ck_assert_int_eq(dashboard_interval_ms(&wide), 86400000 / DASHBOARD_STEPS);
	ck_assert_int_eq(
	        dashboard_substitute("[$__rate_interval]", vals, &wide, &out, why, sizeof(why)), 0);
	ck_assert_str_eq(out, "[360600ms]"); /* 345.6s + 15s beats 4 x 15s */
	free(out);
	json_decref(vals);
}
END_TEST

START_TEST(test_has_data)
{
	json_t *v = js("{\"resultType\": \"vector\", \"result\": [{\"metric\": {}, "
	               "\"value\": [1, \"2\"]}]}");
	json_t *e = js("{\"resultType\": \"vector\", \"result\": []}");
	json_t *m = js("{\"resultType\": \"matrix\", \"result\": [{\"metric\": {}, "
	               "\"values\": []}]}");
	json_t *s = js("{\"resultType\": \"scalar\", \"result\": [1, \"2\"]}");
	json_t *nan = js("{\"resultType\": \"vector\", \"result\": [{\"metric\": {}, "
	                 "\"value\": [1, \"NaN\"]}]}");
	json_t *mnan = js("{\"resultType\": \"matrix\", \"result\": [{\"metric\": {}, "
	                  "\"values\": [[1, \"NaN\"], [2, \"0\"]]}]}");

	ck_assert(dashboard_has_data(v));
	ck_assert(!dashboard_has_data(e));
	ck_assert(!dashboard_has_data(m));
	ck_assert(dashboard_has_data(s));
	ck_assert(!dashboard_has_data(nan));
	ck_assert(dashboard_has_data(mnan)); /* a zero is data */
	json_decref(nan);
	json_decref(mnan);
	json_decref(v);
	json_decref(e);
	json_decref(m);
	json_decref(s);
}
END_TEST

START_TEST(test_gap_ratio)
{
	const double qs[3] = {0.5, 0.95, 0.99};
	double client[3] = {20, 60, 70}, server[3] = {20, 20, 65}, agree[3] = {21, 58, 66};
	size_t worst = 9;

	ck_assert(fabs(reconcile_gap_ratio(qs, client, server, 3, NAN, &worst) - 3.0) < 1e-9);
	ck_assert_int_eq(worst, 1);
	ck_assert(reconcile_flagged(3.0, 0.2));
	ck_assert(fabs(reconcile_gap_ratio(qs, client, agree, 3, NAN, &worst) - 70.0 / 66.0) <
	          1e-9);
	ck_assert(!reconcile_flagged(70.0 / 66.0, 0.2));
	ck_assert(reconcile_flagged(1.0 / 1.3, 0.2)); /* the server slower: also a gap */
	ck_assert(!reconcile_flagged(1.19, 0.2));
	ck_assert(reconcile_flagged(1.21, 0.2));
	ck_assert(!reconcile_flagged(1.21, 0.5));
	server[0] = server[1] = server[2] = NAN;
	ck_assert(isnan(reconcile_gap_ratio(qs, client, server, 3, NAN, NULL)));
	ck_assert(!reconcile_flagged(NAN, 0.2));
}
END_TEST

/* A quantile whose tail holds fewer than RECONCILE_MIN_TAIL answers is
 * shown but not compared: 300 answers leave 3 beyond p99, 15 beyond
 * p95. The server's p99 read high inside a wide bucket is no gap. */
START_TEST(test_gap_ratio_thin_tail)
{
	const double qs[3] = {0.5, 0.95, 0.99};
	double client[3] = {36, 45.9, 66.3}, server[3] = {37.9, 49.6, 89.8};
	size_t worst = 9;
	double gap;

	gap = reconcile_gap_ratio(qs, client, server, 3, NAN, &worst);
	ck_assert_int_eq(worst, 2);
	ck_assert(reconcile_flagged(gap, 0.2));
	gap = reconcile_gap_ratio(qs, client, server, 3, 300, &worst);
	ck_assert_int_eq(worst, 1);
	ck_assert(fabs(gap - 45.9 / 49.6) < 1e-9);
	ck_assert(!reconcile_flagged(gap, 0.2));
	ck_assert(reconcile_tail_ok(0.99, 1000));
	ck_assert(!reconcile_tail_ok(0.99, 999));
	ck_assert(reconcile_tail_ok(0.5, 20));
	ck_assert(!reconcile_tail_ok(0.5, 19));
	ck_assert(isnan(reconcile_gap_ratio(qs, client, server, 3, 5, NULL)));
}
END_TEST

START_TEST(test_reconcile_run)
{
	json_t *run = js(
	        "{\"probes\": ["
	        " {\"name\": \"load\", \"type\": \"load\", \"metrics\": {\"p50_ms\": 50, \"p95_ms\": "
	        "  60, \"p99_ms\": 62, \"server_p50_ms\": 20, \"server_p95_ms\": 20, "
	        "  \"server_p99_ms\": 21, \"gap_ratio\": 3}, \"details\": {\"server_latency\": "
	        "  {\"metric\": \"m\", \"tolerance\": 0.2}}},"
	        " {\"name\": \"srv\", \"type\": \"prometheus-query\", \"metrics\": {\"value\": 0.057},"
	        "  \"details\": {\"reconcile\": {\"with\": \"load\", \"quantile\": 0.95, \"unit\": "
	        "  \"s\", \"tolerance\": 0.2}}},"
	        " {\"name\": \"gone\", \"type\": \"prometheus-query\", \"metrics\": {}, \"error\": "
	        "  \"no series\", \"details\": {\"reconcile\": {\"with\": \"load\", \"quantile\": "
	        "  0.99}}},"
	        " {\"name\": \"other\", \"type\": \"http\", \"metrics\": {}}]}");
	json_t *rec = reconcile_run(run), *e;

	ck_assert_int_eq(json_array_size(rec), 3);
	e = json_array_get(rec, 0);
	ck_assert_str_eq(json_string_value(json_object_get(e, "client_probe")), "load");
	ck_assert(json_is_true(json_object_get(e, "flagged")));
	ck_assert(fabs(json_number_value(json_object_get(e, "gap_ratio")) - 3.0) < 1e-9);
	ck_assert(fabs(json_number_value(json_object_get(e, "server_p99_ms")) - 21) < 1e-9);
	e = json_array_get(rec, 1);
	ck_assert_str_eq(json_string_value(json_object_get(e, "server_query")), "srv");
	ck_assert(fabs(json_number_value(json_object_get(e, "server_p95_ms")) - 57) < 1e-9);
	ck_assert(json_is_false(json_object_get(e, "flagged"))); /* 60 / 57 */
	e = json_array_get(rec, 2);
	ck_assert(json_is_null(json_object_get(e, "flagged")));
	ck_assert_str_eq(json_string_value(json_object_get(e, "error")), "no series");
	json_decref(rec);
	json_decref(run);
}
END_TEST

static Suite *dashboard_suite(void)
{
	Suite *s = suite_create("dashboard");
	TCase *tc = tcase_create("dashboard");

	tcase_add_test(tc, test_panels);
	tcase_add_loop_test(tc, test_substitute, 0, (int)(sizeof(subs) / sizeof(subs[0])));
	tcase_add_test(tc, test_substitute_unknown);
	tcase_add_test(tc, test_substitute_all);
	tcase_add_test(tc, test_has_data);
	tcase_add_test(tc, test_gap_ratio);
	tcase_add_test(tc, test_gap_ratio_thin_tail);
	tcase_add_test(tc, test_reconcile_run);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(dashboard_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
