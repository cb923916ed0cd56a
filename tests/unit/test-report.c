/* Unit tests of the report renderers (markdown, html, junit), the SVG
 * helpers they share, readyd's own /metrics exposition and the store
 * snapshot behind it. Renderers run on one fixed run JSON that holds
 * every gate outcome, a checklist, a load probe with and without a
 * timeline, and hostile text (markup, control characters, bad UTF-8)
 * that must come out inert.
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/report/metrics.h"
#include "lib/report/procstat.h"
#include "lib/report/report.h"
#include "lib/store/store.h"
#include "lib/report/svg.h"

static const char run_text[] =
        "{\"id\": 7, \"service\": \"svc<script>alert(1)</script>\", \"version\": \"2.4.0\","
        " \"environment\": \"staging\", \"state\": \"failed\", \"verdict\": \"FAIL\","
        " \"submitted_by\": \"ci\", \"created_at\": \"2026-11-26T13:40:02.114Z\","
        " \"started_at\": \"2026-11-26T13:40:02.120Z\","
        " \"finished_at\": \"2026-11-26T13:41:02.120Z\", \"error\": null,"
        " \"probes\": ["
        "  {\"name\": \"latency\", \"type\": \"load\", \"state\": \"passed\","
        "   \"metrics\": {\"requests\": 12000, \"p50_ms\": 10.5, \"p95_ms\": 40, \"p99_ms\": 150,"
        "    \"p999_ms\": 300, \"max_ms\": 420},"
        "   \"details\": {\"timeline\": [{\"requests\": 200, \"p99_ms\": 120},"
        "    {\"requests\": 210, \"p99_ms\": 160}, {\"requests\": 190, \"p99_ms\": 140}]},"
        "   \"error\": null},"
        "  {\"name\": \"capacity\", \"type\": \"load\", \"state\": \"passed\","
        "   \"metrics\": {\"throughput_rps\": 900, \"p50_ms\": 8}, \"details\": null,"
        "   \"error\": null},"
        "  {\"name\": \"tls\", \"type\": \"tls\", \"state\": \"error\", \"metrics\": {},"
        "   \"error\": \"handshake <b>failed</b>\\u0001 & \\\"quoted\\\"\"},"
        "  {\"name\": \"rollback\", \"type\": \"rollback-drill\", \"state\": \"passed\","
        "   \"metrics\": {\"seconds\": 12}, \"error\": null}"
        " ],"
        " \"gates\": ["
        "  {\"expr\": \"latency.p95_ms < 100\", \"metric\": \"latency.p95_ms\", \"op\": \"<\","
        "   \"threshold\": 100, \"value\": 40, \"samples\": 12000, \"baseline\": null,"
        "   \"baseline_run\": null, \"advisory\": false, \"outcome\": \"pass\","
        "   \"reason\": \"40 < 100\"},"
        "  {\"expr\": \"latency.p99_ms < 100\", \"metric\": \"latency.p99_ms\", \"op\": \"<\","
        "   \"threshold\": 100, \"value\": 150, \"samples\": 12000, \"baseline\": null,"
        "   \"baseline_run\": null, \"advisory\": false, \"outcome\": \"fail\","
        "   \"reason\": \"150 is not < 100 <script>x</script>\"},"
        "  {\"expr\": \"tls.version >= 1.3\", \"metric\": \"tls.version\", \"op\": \">=\","
        "   \"threshold\": 1.3, \"value\": null, \"samples\": -1, \"advisory\": false,"
        "   \"outcome\": \"error\", \"reason\": \"probe tls errored\"},"
        "  {\"expr\": \"latency.p50_ms <= baseline * 1.1\", \"metric\": \"latency.p50_ms\","
        "   \"op\": \"<=\", \"threshold\": 11, \"value\": 10.5, \"baseline\": 10,"
        "   \"baseline_run\": 3, \"advisory\": false, \"outcome\": \"pass\","
        "   \"reason\": \"10.5 <= 11\"},"
        "  {\"expr\": \"capacity.p50_ms < 5\", \"metric\": \"capacity.p50_ms\", \"op\": \"<\","
        "   \"threshold\": 5, \"value\": 8, \"advisory\": true, \"outcome\": \"fail\","
        "   \"reason\": \"8 is not < 5\"},"
        "  {\"expr\": \"rollback.seconds < 10\", \"metric\": \"rollback.seconds\","
        "   \"op\": \"<\", \"threshold\": 10, \"value\": 12, \"advisory\": false,"
        "   \"outcome\": \"waived\", \"reason\": \"12 is not < 10; waived\","
        "   \"waiver\": {\"id\": 4, \"reason\": \"slow disk\", \"approver\": \"alice\","
        "    \"expires_at\": \"2026-12-01T00:00:00.000Z\"}}"
        " ],"
        " \"checklist\": ["
        "  {\"item\": \"runbook\", \"required\": true, \"evidence\": \"https://wiki/rb?a=1&b=2\","
        "   \"outcome\": \"pass\", \"reason\": \"evidence given\"},"
        "  {\"item\": \"rollback_plan\", \"required\": true, \"evidence\": null,"
        "   \"outcome\": \"fail\", \"reason\": \"no evidence\"}"
        " ]"
        "}";

static json_t *fixture(void)
{
	json_error_t e;
	json_t *run = json_loads(run_text, 0, &e);

	ck_assert_msg(run != NULL, "fixture: %s at %d", e.text, e.position);
	return run;
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* No raw markup from the run, nor any C0 control except \n \t. */
static void assert_inert(const char *out)
{
	ck_assert_ptr_null(strstr(out, "<script"));
	ck_assert_ptr_null(strstr(out, "<b>"));
	for (const unsigned char *p = (const unsigned char *)out; *p; p++)
		ck_assert_msg(*p >= 0x20 || *p == '\n' || *p == '\t', "control byte %02x", *p);
}

/* --- svg_buf_esc --- */

static const struct {
	const char *in, *out;
} esc_cases[] = {
        {"plain", "plain"},
        {"<script>&\"'", "&lt;script&gt;&amp;&quot;&#39;"},
        {"a\x01"
         "b\x7f"
         "c",
         "abc"},
        {"tab\tnl\n", "tab\tnl\n"},
        {"caf\xc3\xa9", "caf\xc3\xa9"},
        {"bad\xff"
         "x",
         "bad\xef\xbf\xbd"
         "x"},
        {"trunc\xe2\x82", "trunc\xef\xbf\xbd\xef\xbf\xbd"},
        {"overlong\xc0\xaf", "overlong\xef\xbf\xbd\xef\xbf\xbd"},
        {"", ""},
};

START_TEST(test_esc)
{
	struct svg_buf b;
	char *s;

	svg_buf_init(&b);
	svg_buf_esc(&b, esc_cases[_i].in);
	s = svg_buf_steal(&b, NULL);
	ck_assert_ptr_nonnull(s);
	ck_assert_str_eq(s, esc_cases[_i].out);
	free(s);
}
END_TEST

START_TEST(test_buf_grows)
{
	struct svg_buf b;
	size_t len = 0;
	char *s;

	svg_buf_init(&b);
	for (int i = 0; i < 10000; i++)
		svg_buf_printf(&b, "%04d", i % 10000);
	s = svg_buf_steal(&b, &len);
	ck_assert_uint_eq(len, 40000);
	ck_assert(strncmp(s + 39996, "9999", 4) == 0);
	free(s);
	ck_assert_ptr_null(b.data);
}
END_TEST

/* --- sections --- */

static const struct {
	const char *type, *section;
} section_cases[] = {
        {"load", "Performance"},
        {"capacity", "Performance"},
        {"resources", "Performance"},
        {"prometheus-scrape", "Monitoring"},
        {"prometheus-rules", "Monitoring"},
        {"prometheus-query", "Monitoring"},
        {"alert-drill", "Monitoring"},
        {"http", "Monitoring"},
        {"rollback-drill", "Rollback"},
        {"tls", "Security"},
        {"auth", "Security"},
        {"rate-limit", "Security"},
};

START_TEST(test_section)
{
	ck_assert_str_eq(report_section_of_type(section_cases[_i].type), section_cases[_i].section);
}
END_TEST

/* --- markdown --- */

START_TEST(test_markdown)
{
	static const char *const order[] = {"**Verdict: FAIL**", "\n## Performance\n",
	                                    "\n## Monitoring\n", "\n## Incident response\n",
	                                    "\n## Rollback\n",   "\n## Security\n",
	                                    "\n## Checklist\n",  "\n## Waivers\n"};
	json_t *run = fixture();
	size_t len;
	char *md = report_markdown(run, NULL, &len);
	const char *at = md, *perf, *sec;

	ck_assert_ptr_nonnull(md);
	ck_assert_uint_eq(len, strlen(md));
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		const char *p = strstr(at, order[i]);

		ck_assert_msg(p != NULL, "missing or out of order: %s", order[i]);
		at = p;
	}
	/* Gates sit in their probe's section, with value vs threshold. */
	perf = strstr(md, "## Performance");
	sec = strstr(md, "## Security");
	ck_assert(strstr(md, "**FAIL** latency.p99\\_ms") > perf);
	ck_assert(strstr(md, "**FAIL** latency.p99\\_ms") < strstr(md, "## Monitoring"));
	ck_assert_ptr_nonnull(strstr(md, "value 150 vs &lt; 100"));
	ck_assert_ptr_nonnull(strstr(md, "(baseline 10 from run 3)"));
	ck_assert_ptr_nonnull(strstr(md, "**FAIL** (advisory) capacity.p50\\_ms"));
	ck_assert_ptr_nonnull(strstr(md, "**WAIVED** rollback.seconds"));
	ck_assert(strstr(sec, "**ERROR** tls.version") != NULL);
	ck_assert(strstr(md, "**ERROR** tls.version") > sec);
	ck_assert_ptr_nonnull(strstr(md, "- [x] runbook (required, **PASS**)"));
	ck_assert_ptr_nonnull(strstr(md, "- [ ] rollback\\_plan (required, **FAIL**)"));
	ck_assert_ptr_nonnull(strstr(md, "approved by alice"));
	ck_assert_ptr_nonnull(strstr(md, "&lt;script&gt;"));
	assert_inert(md);
	free(md);
	json_decref(run);
}
END_TEST

START_TEST(test_markdown_empty_run)
{
	json_t *run = json_pack("{s:I, s:s, s:s, s:s, s:s, s:n, s:[], s:[], s:[]}", "id",
	                        (json_int_t)1, "service", "a", "version", "1", "environment", "e",
	                        "state", "queued", "verdict", "probes", "gates", "checklist");
	char *md = report_markdown(run, NULL, NULL);

	ck_assert_ptr_nonnull(md);
	ck_assert_ptr_nonnull(strstr(md, "**Verdict: not decided**"));
	ck_assert_uint_eq(count(md, "_Nothing in this run covers this section._"), 5);
	ck_assert_ptr_nonnull(strstr(md, "_No checklist items in the spec._"));
	ck_assert_ptr_null(strstr(md, "## Waivers"));
	ck_assert_ptr_null(strstr(md, "## Client and server latency"));
	free(md);
	json_decref(run);
}
END_TEST

/* --- client and server latency --- */

static const char recon_run[] =
        "{\"id\": 3, \"service\": \"s\", \"version\": \"1\", \"environment\": \"e\","
        " \"state\": \"passed\", \"verdict\": \"PASS\", \"gates\": [], \"checklist\": [],"
        " \"probes\": ["
        "  {\"name\": \"queued\", \"type\": \"load\", \"state\": \"passed\", \"metrics\":"
        "   {\"p50_ms\": 60.3, \"p95_ms\": 62.3, \"p99_ms\": 65.4, \"server_p50_ms\": 17.5,"
        "    \"server_p95_ms\": 24.2, \"server_p99_ms\": 24.9, \"gap_ratio\": 3.45},"
        "   \"details\": {\"server_latency\": {\"metric\": \"inference_duration_seconds\","
        "    \"tolerance\": 0.2}}},"
        "  {\"name\": \"direct\", \"type\": \"load\", \"state\": \"passed\", \"metrics\":"
        "   {\"p50_ms\": 17.8, \"p95_ms\": 23.5, \"p99_ms\": 24.0, \"server_p50_ms\": 17.5,"
        "    \"server_p95_ms\": 24.3, \"server_p99_ms\": 24.9, \"gap_ratio\": 0.97},"
        "   \"details\": {\"server_latency\": {\"metric\": \"m\", \"tolerance\": 0.2}}},"
        "  {\"name\": \"nodata\", \"type\": \"load\", \"state\": \"passed\", \"metrics\":"
        "   {\"p50_ms\": 1}, \"details\": {\"server_latency\": {\"metric\": \"m\","
        "    \"error\": \"no series <b>\"}}}]}";

START_TEST(test_reconciliation)
{
	json_t *run = json_loads(recon_run, 0, NULL), *rep;
	char *md, *html, *junit;

	ck_assert_ptr_nonnull(run);
	md = report_markdown(run, NULL, NULL);
	html = report_html(run, NULL, NULL, NULL);
	junit = report_junit(run, NULL, NULL);
	rep = report_json(run, NULL);
	ck_assert_ptr_nonnull(strstr(md, "## Client and server latency"));
	ck_assert_ptr_nonnull(strstr(
	        md,
	        "- **FLAGGED** queued vs queued (server\\_latency inference\\_duration\\_seconds): "
	        "p50 60.3 ms client / 17.5 ms server, p95 62.3 ms client / 24.2 ms server, "
	        "p99 65.4 ms client / 24.9 ms server; gap\\_ratio 3.45 at p50: FLAGGED"));
	ck_assert_ptr_nonnull(strstr(md, "- direct vs direct (server\\_latency m):"));
	ck_assert_ptr_nonnull(strstr(md, "gap\\_ratio 0.964 at p99: agree (tolerance 20 %)"));
	ck_assert_ptr_nonnull(strstr(md, "no gap\\_ratio: no series &lt;b&gt;"));
	ck_assert_ptr_nonnull(strstr(html, "<table id=\"reconciliation\">"));
	ck_assert_uint_eq(count(html, ">FLAGGED</td>"), 1);
	ck_assert_ptr_nonnull(strstr(html, ">no data</td>"));
	ck_assert_ptr_null(strstr(html, "<b>"));
	ck_assert_ptr_nonnull(strstr(junit, "<property name=\"reconciliation.queued.queued\" "
	                                    "value=\"queued vs queued"));
	ck_assert_ptr_nonnull(strstr(junit, "no series &lt;b&gt;"));
	ck_assert_int_eq(json_array_size(json_object_get(rep, "reconciliation")), 3);
	ck_assert(json_is_true(json_object_get(
	        json_array_get(json_object_get(rep, "reconciliation"), 0), "flagged")));
	json_decref(rep);
	free(md);
	free(html);
	free(junit);
	json_decref(run);
}
END_TEST

/* --- junit --- */

START_TEST(test_junit)
{
	json_t *run = fixture();
	char *x = report_junit(run, NULL, NULL);

	ck_assert_ptr_nonnull(x);
	ck_assert(strncmp(x,
	                  "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n"
	                  "  <testsuite ",
	                  65) == 0);
	/* 4 probes + 6 gates + 2 checklist items; p99 and rollback_plan fail,
	 * the tls probe and its gate error; the advisory failure and the
	 * waiver do not count but are properties. */
	ck_assert_ptr_nonnull(
	        strstr(x, "tests=\"12\" failures=\"2\" errors=\"2\" time=\"60.000\""));
	ck_assert_uint_eq(count(x, "<testcase "), 12);
	ck_assert_uint_eq(count(x, "<failure "), 2);
	ck_assert_uint_eq(count(x, "<error "), 2);
	ck_assert_ptr_nonnull(strstr(x, "package=\"readyd.svc&lt;script&gt;"));
	ck_assert_ptr_nonnull(strstr(x, "id=\"0\""));
	ck_assert_ptr_nonnull(strstr(x, "hostname=\""));
	ck_assert_ptr_nonnull(strstr(x, "name=\"latency.p99_ms &lt; 100\" time=\"0.000\""));
	ck_assert_ptr_nonnull(strstr(x, "message=\"value 150 vs &lt; 100: 150 is not &lt; 100 "
	                                "&lt;script&gt;x&lt;/script&gt;\""));
	ck_assert_ptr_nonnull(strstr(x, "classname=\"gates.Security\" name=\"tls.version &gt;= "
	                                "1.3\""));
	ck_assert_ptr_nonnull(strstr(x, "classname=\"probes.Security\" name=\"tls (tls)\""));
	ck_assert_ptr_nonnull(strstr(x, "<error type=\"error\" message=\"probe error: handshake "
	                                "&lt;b&gt;failed&lt;/b&gt; &amp; &quot;quoted&quot;\""));
	ck_assert_ptr_nonnull(strstr(x, "<property name=\"advisory\" value=\"capacity.p50_ms "
	                                "&lt; 5: fail: value 8 vs &lt; 5"));
	ck_assert_ptr_nonnull(strstr(x, "<property name=\"waived\" value=\"rollback.seconds"));
	ck_assert_ptr_nonnull(strstr(x, "gate capacity.p50_ms &lt; 5: advisory, fail: value 8"));
	ck_assert_ptr_nonnull(strstr(x, "https://wiki/rb?a=1&amp;b=2"));
	ck_assert_ptr_nonnull(strstr(x, "probe tls: handshake &lt;b&gt;failed&lt;/b&gt; &amp; "
	                                "&quot;quoted&quot;"));
	ck_assert_ptr_nonnull(strstr(x, "timestamp=\"2026-11-26T13:40:02\""));
	/* Order the strict schema wants: properties, cases, out, err. */
	ck_assert(strstr(x, "</properties>") < strstr(x, "<testcase "));
	ck_assert(strstr(x, "</testcase>") < strstr(x, "<system-out>"));
	ck_assert(strstr(x, "</system-out>") < strstr(x, "<system-err>"));
	assert_inert(x);
	free(x);
	json_decref(run);
}
END_TEST

/* A run whose other cases do not show its end gets a "run" case. */
START_TEST(test_junit_run_case)
{
	static const struct {
		const char *state, *verdict, *error, *want;
	} cases[] = {
	        {"cancelled", NULL, "cancelled on request",
	         "<error type=\"cancelled\" "
	         "message=\"run cancelled: cancelled "
	         "on request\""},
	        {"running", NULL, NULL,
	         "<error type=\"running\" message=\"run running: no "
	         "verdict\""},
	        {"error", "ERROR", "run did not finish within its timeout of 1s",
	         "<error type=\"error\" message=\"run error: run did not finish"},
	        {"failed", "FAIL", NULL, "<failure type=\"failed\" message=\"run failed\""},
	        {"passed", "PASS", NULL, NULL},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *run =
		        json_pack("{s:I, s:s, s:s, s:s, s:s, s:s?, s:s?, s:[], s:[], s:[]}", "id",
		                  (json_int_t)1, "service", "s", "version", "1", "environment", "e",
		                  "state", cases[i].state, "verdict", cases[i].verdict, "error",
		                  cases[i].error, "probes", "gates", "checklist");
		char *x = report_junit(run, NULL, NULL);

		ck_assert_ptr_nonnull(x);
		if (cases[i].want)
			ck_assert_msg(strstr(x, cases[i].want), "%s: %s", cases[i].state, x);
		else
			ck_assert_ptr_null(strstr(x, "classname=\"run\""));
		ck_assert_ptr_nonnull(strstr(x, "timestamp=\"1970-01-01T00:00:00\""));
		free(x);
		json_decref(run);
	}
}
END_TEST

/* --- html --- */

START_TEST(test_html)
{
	json_t *run = fixture();
	json_t *trends = json_pack("[{s:s, s:[{s:I, s:f}, {s:I, s:f}, {s:I, s:n}, {s:I, s:f}]}]",
	                           "metric", "latency.p95_ms", "points", "run_id", (json_int_t)1,
	                           "value", 30.0, "run_id", (json_int_t)2, "value", 35.0, "run_id",
	                           (json_int_t)3, "value", "run_id", (json_int_t)7, "value", 40.0);
	char *h = report_html(run, NULL, trends, NULL);

	ck_assert_ptr_nonnull(h);
	ck_assert(strncmp(h, "<!DOCTYPE html>", 15) == 0);
	ck_assert_ptr_nonnull(strstr(h, "<div class=\"banner FAIL\" id=\"verdict\">FAIL"));
	/* latency: 5 percentile bars + 3 timeline bars; capacity: 1 bar, no timeline. */
	ck_assert_uint_eq(count(h, "class=\"chart\""), 3);
	ck_assert_uint_eq(count(h, "<rect class=\"bar\""), 5 + 3 + 1);
	ck_assert_uint_eq(count(h, "<polyline class=\"line\""), 1);
	ck_assert_uint_eq(count(h, "timeline-none"), 1);
	/* The sparkline breaks at the null point: two polylines. */
	ck_assert_uint_eq(count(h, "class=\"sparkline\""), 1);
	ck_assert_uint_eq(count(h, "<polyline class=\"spark\""), 2);
	ck_assert_uint_eq(count(h, "<tr><td>"), 6 + 1 + 4 + 2);
	ck_assert_ptr_nonnull(strstr(h, "svc&lt;script&gt;alert(1)&lt;/script&gt;"));
	ck_assert_ptr_nonnull(strstr(h, "<ul id=\"waivers\">\n<li><code>rollback.seconds &lt; 10"
	                                "</code>: slow disk (approved by alice"));
	ck_assert_ptr_null(strstr(h, "src="));
	ck_assert_ptr_null(strstr(h, "href="));
	assert_inert(h);
	free(h);
	json_decref(trends);
	json_decref(run);
}
END_TEST

START_TEST(test_html_no_trends)
{
	json_t *run = fixture();
	char *h = report_html(run, NULL, NULL, NULL);

	ck_assert_ptr_nonnull(h);
	ck_assert_ptr_nonnull(strstr(h, "No history of gated metrics yet."));
	ck_assert_uint_eq(count(h, "class=\"sparkline\""), 0);
	free(h);
	json_decref(run);
}
END_TEST

START_TEST(test_svg_bar_nan)
{
	struct svg_buf b;
	const char *labels[] = {"a", "b"};
	double v[] = {NAN, 2};
	char *s;

	svg_buf_init(&b);
	svg_bar_chart(&b, "t<x>", labels, v, 2, "ms");
	s = svg_buf_steal(&b, NULL);
	ck_assert_ptr_nonnull(strstr(s, ">n/a<"));
	ck_assert_ptr_nonnull(strstr(s, "<title>t&lt;x&gt;</title>"));
	ck_assert_ptr_null(strstr(s, "nan"));
	ck_assert_ptr_null(strstr(s, "inf"));
	free(s);
}
END_TEST

/* --- /metrics --- */

START_TEST(test_metrics_render)
{
	json_t *snap = json_pack(
	        "{s:{s:i, s:i, s:i}, s:I, s:[{s:s, s:s, s:s, s:I, s:s, s:{s:f, s:f}}]}",
	        "runs_by_state", "passed", 3, "running", 1, "queued", 2, "db_size_bytes",
	        (json_int_t)4096, "gates", "service", "a\"b\\c\nd", "environment", "prod",
	        "verdict", "FAIL", "run_id", (json_int_t)9, "finished_at",
	        "2026-11-26T13:40:02.000Z", "values", "latency.p95_ms", 40.5, "tls.version", 1.3);
	char *t;

	metrics_reset();
	metrics_http_request("GET", "/v1/runs/{id}", 200, 0.002);
	metrics_http_request("GET", "/v1/runs/{id}", 200, 0.002);
	metrics_http_request("GET", NULL, 404, 0.0001);
	metrics_probe_observe("load", 0.3);
	metrics_probe_observe("load", 45);
	metrics_probe_observe("load", 1e9);
	metrics_run_observe("PASS", 42);
	metrics_run_observe(NULL, 0.2);
	t = metrics_render(snap, "1.2.3", NULL);
	ck_assert_ptr_nonnull(t);
	ck_assert_ptr_nonnull(strstr(t, "readyd_build_info{version=\"1.2.3\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(t, "# TYPE readyd_http_requests_total counter\n"));
	ck_assert_ptr_nonnull(
	        strstr(t, "readyd_http_requests_total{method=\"GET\",route=\"/v1/runs/{id}\","
	                  "code=\"200\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(t, "route=\"unmatched\",code=\"404\"} 1\n"));
	ck_assert_ptr_nonnull(
	        strstr(t, "readyd_probe_duration_seconds_bucket{type=\"load\",le=\"0.5\"} 1\n"));
	ck_assert_ptr_nonnull(
	        strstr(t, "readyd_probe_duration_seconds_bucket{type=\"load\",le=\"60\"} 2\n"));
	ck_assert_ptr_nonnull(
	        strstr(t, "readyd_probe_duration_seconds_bucket{type=\"load\",le=\"+Inf\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(t, "readyd_probe_duration_seconds_count{type=\"load\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(t, "readyd_runs_total{state=\"passed\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(t, "readyd_runs_total{state=\"failed\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(t, "readyd_runs_active 1\n"));
	ck_assert_ptr_nonnull(strstr(t, "readyd_runs_queued 2\n"));
	/* Request durations by route pattern, cumulative buckets. */
	ck_assert_ptr_nonnull(strstr(t, "# TYPE readyd_http_request_duration_seconds histogram\n"));
	ck_assert_ptr_nonnull(strstr(t,
	                             "readyd_http_request_duration_seconds_bucket{method=\"GET\","
	                             "route=\"/v1/runs/{id}\",code=\"200\",le=\"0.001\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(t,
	                             "readyd_http_request_duration_seconds_bucket{method=\"GET\","
	                             "route=\"/v1/runs/{id}\",code=\"200\",le=\"0.0025\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(t, "readyd_http_request_duration_seconds_count{method=\"GET\","
	                                "route=\"unmatched\",code=\"404\"} 1\n"));
	/* Run durations by verdict. */
	ck_assert_ptr_nonnull(
	        strstr(t, "readyd_run_duration_seconds_bucket{verdict=\"PASS\",le=\"30\"} 0\n"));
	ck_assert_ptr_nonnull(
	        strstr(t, "readyd_run_duration_seconds_bucket{verdict=\"PASS\",le=\"60\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(t, "readyd_run_duration_seconds_count{verdict=\"none\"} 1\n"));
	/* A verdict not seen yet is there at zero, so rate() sees its first. */
	ck_assert_ptr_nonnull(
	        strstr(t, "readyd_run_duration_seconds_count{verdict=\"ERROR\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(t, "readyd_db_size_bytes 4096\n"));
	ck_assert_ptr_nonnull(strstr(t, "readyd_gate_verdict{service=\"a\\\"b\\\\c\\nd\","
	                                "environment=\"prod\",verdict=\"FAIL\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(t, "environment=\"prod\",verdict=\"PASS\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(t, "readyd_gate_last_run_timestamp_seconds{service=\"a\\\"b"
	                                "\\\\c\\nd\",environment=\"prod\"} 1795700402\n"));
	/* Gated values in base units, the unit in the name, not in a label;
	 * 40.5 ms / 1000 in its shortest form, not %.17g's 0.040500000000000001. */
	ck_assert_ptr_nonnull(strstr(t, "probe=\"latency\",metric=\"p95_seconds\"} 0.0405\n"));
	ck_assert_ptr_nonnull(strstr(t, "probe=\"tls\",metric=\"version\"} 1.3\n"));
	ck_assert_ptr_null(strstr(t, "_ms\""));
	/* Without the process' part, its families are left out. */
	ck_assert_ptr_null(strstr(t, "process_"));
	ck_assert_ptr_null(strstr(t, "readyd_store_degraded"));
	/* Every family has HELP and TYPE. */
	ck_assert_uint_eq(count(t, "# HELP "), count(t, "# TYPE "));
	ck_assert_uint_eq(count(t, "# TYPE "), 12);
	free(t);
	/* With it: the process_* families and the store's state. */
	json_object_set_new(snap, "store_degraded", json_true());
	json_object_set_new(snap, "queued_limit", json_integer(100));
	json_object_set_new(snap, "process",
	                    json_pack("{s:f, s:f, s:f, s:f, s:f, s:f}", "cpu_seconds", 1.5,
	                              "resident_bytes", 4096.0, "virtual_bytes", 8192.0, "open_fds",
	                              7.0, "max_fds", 1024.0, "start_time_seconds", 1795700402.0));
	t = metrics_render(snap, "1.2.3", NULL);
	ck_assert_ptr_nonnull(strstr(
	        t, "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1.5\n"));
	ck_assert_ptr_nonnull(strstr(t, "process_resident_memory_bytes 4096\n"));
	ck_assert_ptr_nonnull(strstr(t, "process_virtual_memory_bytes 8192\n"));
	ck_assert_ptr_nonnull(strstr(t, "process_open_fds 7\n"));
	ck_assert_ptr_nonnull(strstr(t, "process_max_fds 1024\n"));
	ck_assert_ptr_nonnull(strstr(t, "process_start_time_seconds 1795700402\n"));
	ck_assert_ptr_nonnull(strstr(t, "readyd_store_degraded 1\n"));
	ck_assert_ptr_nonnull(strstr(t, "readyd_runs_queued_limit 100\n"));
	ck_assert_uint_eq(count(t, "# TYPE "), 20);
	free(t);
	json_decref(snap);
	metrics_reset();
}
END_TEST

START_TEST(test_metrics_route_cap)
{
	char route[32], *t;

	metrics_reset();
	for (int i = 0; i < METRICS_MAX_ROUTES + 10; i++) {
		snprintf(route, sizeof(route), "/r%d", i);
		metrics_http_request("GET", route, 200, 0.001);
	}
	t = metrics_render(NULL, "x", NULL);
	ck_assert_uint_eq(count(t, "readyd_http_requests_total{"), METRICS_MAX_ROUTES);
	free(t);
	metrics_reset();
}
END_TEST

/* /proc/PID/stat as proc(5) has it; the name holds spaces and a ')'. */
START_TEST(test_procstat_parse)
{
	const char *line = "4242 (ready d) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 "
	                   "250 50 0 0 20 0 3 0 123400 26300416 3337 18446744073709551615 1 1 0 "
	                   "0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n";
	struct procstat ps = {0};

	ck_assert_int_eq(procstat_parse_stat(line, 100, 4096, 1795700000.0, &ps), 0);
	ck_assert_double_eq_tol(ps.cpu_seconds, 3.0, 1e-9);
	ck_assert_double_eq_tol(ps.start_time_seconds, 1795700000.0 + 1234.0, 1e-6);
	ck_assert_double_eq_tol(ps.virtual_bytes, 26300416.0, 0.5);
	ck_assert_double_eq_tol(ps.resident_bytes, 3337.0 * 4096.0, 0.5);
	ck_assert_int_eq(procstat_parse_stat("4242 (readyd S 1", 100, 4096, 0, &ps), -EINVAL);
	ck_assert_int_eq(procstat_parse_stat("4242 (readyd) S 1 2 3", 100, 4096, 0, &ps), -EINVAL);
	ck_assert_int_eq(procstat_parse_stat(line, 0, 4096, 0, &ps), -EINVAL);
	/* This process, read for real: numbers a live process must have. */
	ck_assert_int_eq(procstat_read(&ps), 0);
	ck_assert_double_gt(ps.resident_bytes, 0);
	ck_assert_double_ge(ps.virtual_bytes, ps.resident_bytes);
	ck_assert_double_ge(ps.open_fds, 3);
	ck_assert_double_gt(ps.start_time_seconds, 1.5e9);
}
END_TEST

/* --- store snapshot --- */

static int64_t add_run(struct store *st, const char *svc, const char *state, const char *verdict,
                       double p95)
{
	const char *names[] = {"latency"}, *types[] = {"load"};
	struct store_run_new rn = {.service = svc,
	                           .version = "1.0",
	                           .environment = "prod",
	                           .spec_json = "{}",
	                           .probe_names = names,
	                           .probe_types = types,
	                           .n_probes = 1,
	                           .created_at = 1795700402000LL};
	json_t *gates = json_pack("[{s:s, s:s, s:s, s:f, s:f, s:b, s:s, s:s}]", "expr",
	                          "latency.p95_ms < 100", "metric", "latency.p95_ms", "op", "<",
	                          "threshold", 100.0, "value", p95, "advisory", 0, "outcome",
	                          "pass", "reason", "ok");
	int64_t id;
	bool existing;

	ck_assert_int_eq(store_run_create(st, &rn, &id, &existing), 0);
	ck_assert_int_eq(store_run_update(st, id, "running", NULL, 1795700402000LL, 0, NULL), 0);
	ck_assert_int_eq(store_judgement_save(st, id, gates, NULL), 0);
	ck_assert_int_eq(store_run_update(st, id, state, verdict, 0, 1795700403000LL, NULL), 0);
	json_decref(gates);
	return id;
}

START_TEST(test_store_snapshot)
{
	struct store *st;
	char err[256];
	json_t *snap, *g;

	ck_assert_int_eq(store_open(":memory:", &st, err, sizeof(err)), 0);
	add_run(st, "a", "passed", "PASS", 40);
	add_run(st, "a", "failed", "FAIL", 140);
	add_run(st, "b", "passed", "PASS", 10);
	ck_assert_int_eq(store_metrics_snapshot(st, &snap), 0);
	ck_assert_int_eq(json_integer_value(
	                         json_object_get(json_object_get(snap, "runs_by_state"), "passed")),
	                 2);
	ck_assert_int_gt(json_integer_value(json_object_get(snap, "db_size_bytes")), 0);
	ck_assert_uint_eq(json_array_size(json_object_get(snap, "gates")), 2);
	g = json_array_get(json_object_get(snap, "gates"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(g, "service")), "a");
	ck_assert_str_eq(json_string_value(json_object_get(g, "verdict")), "FAIL");
	ck_assert(json_number_value(json_object_get(json_object_get(g, "values"),
	                                            "latency.p95_ms")) == 140.0);
	json_decref(snap);
	store_free(st);
}
END_TEST

static Suite *report_suite(void)
{
	Suite *s = suite_create("report");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, test_esc, 0, sizeof(esc_cases) / sizeof(esc_cases[0]));
	tcase_add_test(tc, test_buf_grows);
	tcase_add_loop_test(tc, test_section, 0, sizeof(section_cases) / sizeof(section_cases[0]));
	tcase_add_test(tc, test_markdown);
	tcase_add_test(tc, test_markdown_empty_run);
	tcase_add_test(tc, test_junit);
	tcase_add_test(tc, test_reconciliation);
	tcase_add_test(tc, test_junit_run_case);
	tcase_add_test(tc, test_html);
	tcase_add_test(tc, test_html_no_trends);
	tcase_add_test(tc, test_svg_bar_nan);
	tcase_add_test(tc, test_metrics_render);
	tcase_add_test(tc, test_procstat_parse);
	tcase_add_test(tc, test_metrics_route_cap);
	tcase_add_test(tc, test_store_snapshot);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(report_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
