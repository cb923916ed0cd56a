/* Unit tests for the probe type registry (lib/probe/probe.h): every
 * built-in type is documented in docs/spec.md as its table declares it,
 * and a type declared in this file alone, registered at runtime, goes
 * through every part of readyd that reads the table: the spec parser, the
 * URL and local-file policies, the scheduler (a run to a verdict on a
 * private loop, with a real store), the Markdown report and the docs
 * check. Nothing outside this file knows the type "fake". */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/loadgen/hist.h"
#include "lib/loadgen/loadgen.h"
#include "lib/net/http.h"
#include "lib/policy/policy.h"
#include "lib/probe/fanload.h"
#include "lib/probe/probe.h"
#include "lib/report/report.h"
#include "lib/sched/sched.h"
#include "lib/spec/spec.h"
#include "lib/spec/spec_schema.h"
#include "lib/store/store.h"
#include "lib/util/util.h"

/* ---- the fake type: one table, as a probe_<type>.c declares it ---- */

static int fake_start(struct probe *p)
{
	/* Counts the letters of its URL: something to gate on. */
	if (probe_set_metric(p, "widgets", (double)strlen(p->sp->url)) < 0)
		return -ENOMEM;
	probe_finish(p, PROBE_STATE_PASSED, NULL);
	return 0;
}

static void fake_cancel(struct probe *p)
{
	probe_finish(p, PROBE_STATE_CANCELLED, NULL);
}

static void fake_free(struct probe *p)
{
	(void)p;
}

/* clang-format off */
static const struct spec_field fake_fields[] = {
	SPEC_F_COMMON,
	SPEC_F_URL(true),
	{.key = "fixture",  .kind = FK_STRING, .flags = SPEC_FIELD_FILE, .off = SPEC_P(ca_file),
	 .max = SPEC_MAX_TEXT, .check = spec_check_abs_path},
	/* A URL field no built-in type has; struct spec_probe is flat, so
	 * any char * member can hold it. */
	{.key = "callback", .kind = FK_STRING, .flags = SPEC_FIELD_URL, .off = SPEC_P(query),
	 .max = SPEC_MAX_URL, .check = spec_check_url},
};
/* clang-format on */

static const struct probe_metric_def fake_metrics[] = {
        {"widgets", "letters", PROBE_SAMPLES_NONE},
};

static const struct probe_type_def fake_type = {
        .name = "fake",
        .section = "Fakery",
        .fields = fake_fields,
        .n_fields = RD_ARRAY_SIZE(fake_fields),
        .deadline_fixed_ms = 5000,
        .metrics = fake_metrics,
        .n_metrics = RD_ARRAY_SIZE(fake_metrics),
        .ops = {.start = fake_start, .cancel = fake_cancel, .free = fake_free},
};

static enum probe_type fake_id;

/* Once per process (check may run the tests in one process or fork). */
static void register_fake(void)
{
	if (probe_type_from_string("fake", &fake_id) == 0)
		return;
	ck_assert_int_eq(probe_type_register(&fake_type, &fake_id), 0);
	ck_assert_int_eq(fake_id, _PROBE_TYPE_MAX);
}

#define HEAD "apiVersion: readyd/v1\nservice: s\nversion: '1'\n"

static struct spec *parse(const char *text)
{
	struct spec_error err;
	struct spec *s = NULL;

	ck_assert_msg(spec_parse(text, strlen(text), SPEC_FORMAT_YAML, &s, &err) == 0, "%s: %s",
	              err.path, err.message);
	return s;
}

static char *docs_spec_md(void)
{
	const char *fixtures = getenv("READYD_FIXTURES");
	char path[4096];
	char *text = calloc(1, 1024 * 1024);
	size_t len;
	FILE *f;

	ck_assert_ptr_nonnull(fixtures);
	ck_assert_ptr_nonnull(text);
	snprintf(path, sizeof(path), "%s/../../../docs/spec.md", fixtures);
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "%s", path);
	len = fread(text, 1, 1024 * 1024 - 1, f);
	ck_assert(len > 0 && feof(f));
	fclose(f);
	return text;
}

/* ---- built-in types ---- */

START_TEST(test_builtin_types_documented)
{
	const struct probe_type_def *t = probe_type_get((enum probe_type)_i);
	char *md = docs_spec_md();
	char why[256] = "";

	ck_assert_ptr_nonnull(t);
	ck_assert_msg(probe_type_docs_check(t, md, why, sizeof(why)) == 0, "%s", why);
	free(md);
}
END_TEST

#define AUTH_DOC                                                                                   \
	"intro\n\n### auth\n\nWithout a probe `timeout`, the probe's deadline is `2m`.\n\n"        \
	"**Metrics published:** `unauthenticated_status`, `invalid_token_status`, `rejected` "     \
	"(1 when `both` were).%s\n\n## Next\n"

/* The check is not vacuous: a metric missing from a section, or a name
 * documented that the type does not publish, is reported. */
START_TEST(test_docs_check_finds_differences)
{
	const struct probe_type_def *auth = probe_type_get(PROBE_TYPE_AUTH);
	char md[1024], why[256];

	snprintf(md, sizeof(md), AUTH_DOC, "");
	ck_assert_msg(probe_type_docs_check(auth, md, why, sizeof(why)) == 0, "%s", why);
	snprintf(md, sizeof(md), AUTH_DOC, " Also `rejections`.");
	ck_assert_int_eq(probe_type_docs_check(auth, md, why, sizeof(why)), -EINVAL);
	ck_assert_msg(strstr(why, "`rejections`"), "%s", why);
	snprintf(md, sizeof(md), "%s", "\n### auth\n\n**Metrics published:** `rejected`.\n");
	ck_assert_int_eq(probe_type_docs_check(auth, md, why, sizeof(why)), -ENOENT);
	ck_assert_msg(strstr(why, "unauthenticated_status"), "%s", why);
}
END_TEST

/* The load table declares exactly what the engine publishes (a streamed
 * rate-mode result, which has every metric), plus what the probe adds:
 * `aborted`, the server side of `server_latency` (server_pNN_ms,
 * gap_ratio) and, spread over several nodes, `nodes`. */
START_TEST(test_load_table_matches_engine)
{
	struct loadgen_result r = {.requests = 10, .errors = 1, .elapsed_s = 1, .rate_kept = true};
	const struct probe_type_def *t = probe_type_get(PROBE_TYPE_LOAD);
	const char *name;
	json_t *m, *v;

	ck_assert_int_eq(hist_new(60000000, 3, &r.latency), 0);
	ck_assert_int_eq(hist_new(60000000, 3, &r.latency_uncorrected), 0);
	ck_assert_int_eq(hist_record(r.latency, 1000), 0);
	ck_assert_int_eq(hist_record(r.latency_uncorrected, 1000), 0);
	ck_assert_int_eq(hist_new(60000000, 3, &r.ttfb), 0);
	ck_assert_int_eq(hist_new(60000000, 3, &r.ttft), 0);
	ck_assert_int_eq(hist_new(60000000, 3, &r.ttft_uncorrected), 0);
	ck_assert_int_eq(hist_new(60000000, 3, &r.itl), 0);
	ck_assert_int_eq(loadgen_result_metrics(&r, &m), 0);
	json_object_foreach (m, name, v)
		ck_assert_msg(probe_type_metric(t, name), "load publishes %s, undeclared", name);
	for (size_t i = 0; i < t->n_metrics; i++)
		ck_assert_msg(json_object_get(m, t->metrics[i].name) ||
		                      !strcmp(t->metrics[i].name, "aborted") ||
		                      !strncmp(t->metrics[i].name, "server_", 7) ||
		                      !strcmp(t->metrics[i].name, "gap_ratio") ||
		                      !strcmp(t->metrics[i].name, "nodes"),
		              "load declares %s, never published", t->metrics[i].name);
	json_decref(m);
	hist_free(r.latency);
	hist_free(r.latency_uncorrected);
	hist_free(r.ttfb);
	hist_free(r.ttft);
	hist_free(r.ttft_uncorrected);
	hist_free(r.itl);
}
END_TEST

/* ---- the fake type ---- */

START_TEST(test_fake_parsed)
{
	struct spec_error err;
	struct spec *s;
	const char *bad = HEAD "probes:\n  - {name: f, type: fake, url: 'http://x/', nope: 1}\n";

	register_fake();
	s = parse(HEAD "probes:\n  - {name: f, type: fake, url: 'http://127.0.0.1:9/',"
	               " fixture: /etc/hostname}\n");
	ck_assert_int_eq(s->probes[0].type, fake_id);
	ck_assert_str_eq(probe_type_to_string(s->probes[0].type), "fake");
	ck_assert_str_eq(s->probes[0].ca_file, "/etc/hostname");
	spec_free(s);
	/* Its schema is the validator's: unknown fields and bad values fail. */
	ck_assert_int_eq(spec_parse(bad, strlen(bad), SPEC_FORMAT_YAML, &s, &err), -EINVAL);
	ck_assert_str_eq(err.path, "probes[0].nope");
	bad = HEAD "probes:\n  - {name: f, type: fake, url: 'http://x/', fixture: rel/path}\n";
	ck_assert_int_eq(spec_parse(bad, strlen(bad), SPEC_FORMAT_YAML, &s, &err), -EINVAL);
	ck_assert_str_eq(err.path, "probes[0].fixture");
}
END_TEST

struct outcome {
	int calls, err;
	char path[128], message[512];
};

static void on_checked(void *userdata, int err, const char *path, const char *message)
{
	struct outcome *o = userdata;

	o->calls++;
	o->err = err;
	snprintf(o->path, sizeof(o->path), "%s", path ? path : "");
	snprintf(o->message, sizeof(o->message), "%s", message ? message : "");
}

static struct outcome check_policy(const char *spec_text, const char *dir)
{
	json_t *entries = json_loads("[\"127.0.0.1\"]", 0, NULL);
	json_t *dirs = json_pack("[s]", dir);
	struct spec *s = parse(spec_text);
	struct outcome o = {0};
	struct policy *p;
	uv_loop_t loop;
	char err[256];

	ck_assert_int_eq(policy_new(entries, &p, err, sizeof(err)), 0);
	ck_assert_int_eq(policy_set_paths(p, dirs, err, sizeof(err)), 0);
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	ck_assert_int_eq(policy_check_spec(&loop, p, s, on_checked, &o, NULL), 0);
	policy_unref(p);
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	ck_assert_int_eq(o.calls, 1);
	spec_free(s);
	json_decref(entries);
	json_decref(dirs);
	return o;
}

/* Its URL fields lose their credentials in the stored spec. */
START_TEST(test_fake_redacted)
{
	struct spec *s;
	json_t *red;
	char *text;

	register_fake();
	s = parse(HEAD "probes:\n  - {name: f, type: fake, url: 'http://u:pw1@127.0.0.1:9/',"
	               " callback: 'http://u:pw2@127.0.0.1:9/hook'}\n");
	red = spec_to_json_redacted(s);
	ck_assert_ptr_nonnull(red);
	text = json_dumps(red, 0);
	ck_assert_msg(!strstr(text, "pw1") && !strstr(text, "pw2"), "%s", text);
	ck_assert_msg(strstr(text, "/hook"), "%s", text);
	free(text);
	json_decref(red);
	spec_free(s);
}
END_TEST

START_TEST(test_fake_policed)
{
	char dir[] = "/tmp/readyd-registry-XXXXXX", inside[64], text[512];
	struct outcome o;

	register_fake();
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(inside, sizeof(inside), "%s/ca.pem", dir);
	/* Allowed host, file inside allowed_paths (need not exist yet). */
	snprintf(text, sizeof(text),
	         HEAD
	         "probes:\n  - {name: f, type: fake, url: 'http://127.0.0.1:9/', fixture: %s}\n",
	         inside);
	o = check_policy(text, dir);
	ck_assert_msg(o.err == 0, "%s: %s", o.path, o.message);
	/* Its URL field, to a host the allowlist does not list. */
	snprintf(text, sizeof(text),
	         HEAD
	         "probes:\n  - {name: f, type: fake, url: 'http://10.9.8.7:9/', fixture: %s}\n",
	         inside);
	o = check_policy(text, dir);
	ck_assert_int_eq(o.err, -EPERM);
	ck_assert_str_eq(o.path, "probes[0].url");
	/* Its own URL field, which no list in the policy names. */
	o = check_policy(HEAD "probes:\n  - {name: f, type: fake, url: 'http://127.0.0.1:9/',"
	                      " callback: 'http://10.9.8.7/hook'}\n",
	                 dir);
	ck_assert_int_eq(o.err, -EPERM);
	ck_assert_str_eq(o.path, "probes[0].callback");
	/* Its file field, outside allowed_paths. */
	o = check_policy(HEAD "probes:\n  - {name: f, type: fake, url: 'http://127.0.0.1:9/',"
	                      " fixture: /etc/hostname}\n",
	                 dir);
	ck_assert_int_eq(o.err, -EPERM);
	ck_assert_str_eq(o.path, "probes[0].fixture");
	rmdir(dir);
}
END_TEST

static void on_guard(uv_timer_t *t)
{
	(void)t;
}

static void on_shutdown(void *userdata)
{
	(*(int *)userdata)++;
}

static json_t *run_to_end(struct spec *spec)
{
	struct sched_config cfg = {.max_concurrent_runs = 1, .max_queued = 3};
	struct http_client *http;
	struct sched *sched;
	struct store *st;
	uv_timer_t guard;
	uv_loop_t loop;
	json_t *run = NULL;
	int64_t id;
	bool existing;
	int shut = 0;
	char err[256];

	ck_assert_int_eq(uv_loop_init(&loop), 0);
	ck_assert_int_eq(store_open(":memory:", &st, err, sizeof(err)), 0);
	ck_assert_int_eq(http_client_new(&loop, &http), 0);
	ck_assert_int_eq(sched_new(&loop, st, http, &cfg, &sched), 0);
	uv_timer_init(&loop, &guard);
	uv_timer_start(&guard, on_guard, 10, 10);
	ck_assert_int_eq(sched_submit(sched, spec, NULL, NULL, &id, &existing), 0);
	for (int i = 0; i < 2000 && sched_active(sched) > 0; i++)
		uv_run(&loop, UV_RUN_ONCE);
	ck_assert_int_eq(sched_active(sched), 0);
	ck_assert_int_eq(store_run_get(st, id, &run), 0);
	sched_shutdown(sched, false, on_shutdown, &shut);
	http_client_free(http);
	uv_close((uv_handle_t *)&guard, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	ck_assert_int_eq(shut, 1);
	sched_free(sched);
	store_free(st);
	return run;
}

START_TEST(test_fake_scheduled_and_reported)
{
	struct spec *s;
	json_t *run, *probe;
	char *md;
	size_t len;

	register_fake();
	s = parse(HEAD "probes:\n  - {name: gadget, type: fake, url: 'http://127.0.0.1:9/'}\n"
	               "gates:\n  - gadget.widgets == 19\n");
	run = run_to_end(s);
	probe = json_array_get(json_object_get(run, "probes"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(probe, "type")), "fake");
	ck_assert_str_eq(json_string_value(json_object_get(probe, "state")), "passed");
	ck_assert_str_eq(json_string_value(json_object_get(run, "verdict")), "PASS");
	ck_assert_str_eq(report_section_of_type("fake"), "Fakery");
	md = report_markdown(run, NULL, &len);
	ck_assert_ptr_nonnull(md);
	ck_assert_msg(strstr(md, "\n## Fakery\n"), "%s", md);
	ck_assert_msg(strstr(strstr(md, "\n## Fakery\n"), "gadget"), "%s", md);
	free(md);
	json_decref(run);
}
END_TEST

START_TEST(test_fake_docs_checked)
{
	char *md = docs_spec_md();
	char why[256];

	register_fake();
	ck_assert_int_eq(probe_type_docs_check(&fake_type, md, why, sizeof(why)), -ENOENT);
	ck_assert_msg(strstr(why, "no section '### fake'"), "%s", why);
	free(md);
	md = strdup("## Probes\n\n### fake\n\nWithout a probe `timeout`, the probe's deadline "
	            "is `5s`.\n\n**Metrics published:** none yet.\n");
	ck_assert_int_eq(probe_type_docs_check(&fake_type, md, why, sizeof(why)), -ENOENT);
	ck_assert_msg(strstr(why, "`widgets` is not documented"), "%s", why);
	free(md);
}
END_TEST

START_TEST(test_register_refuses_duplicates)
{
	struct probe_type_def again = fake_type;
	enum probe_type t;

	register_fake();
	ck_assert_int_eq(probe_type_register(&fake_type, &t), -EEXIST);
	again.name = "http";
	ck_assert_int_eq(probe_type_register(&again, &t), -EEXIST);
	again.name = "fake2";
	again.fields = NULL;
	ck_assert_int_eq(probe_type_register(&again, &t), -EINVAL);
}
END_TEST

/* The shares of a load spread over n nodes add up to the spec's load:
 * every connection and request is some node's, every node has at least
 * one connection, and the rate is split evenly. */
START_TEST(test_load_shares_add_up)
{
	for (int64_t c = 1; c <= 40; c++)
		for (int n = 1; n <= c && n <= SPEC_MAX_NODES; n++) {
			struct spec_probe sp = {
			        .connections = c, .threads = 4, .requests = 1000 + c, .rate = 300};
			int64_t conns = 0, reqs = 0;
			double rate = 0;

			for (int i = 0; i < n; i++) {
				struct probe_load_share sh;

				probe_load_share(&sp, i, n, &sh);
				ck_assert_int_ge(sh.connections, 1);
				ck_assert_int_ge(sh.threads, 1);
				ck_assert_int_le(sh.threads, sh.connections);
				ck_assert_int_le(sh.connections, c / n + 1);
				conns += sh.connections;
				reqs += sh.requests;
				rate += sh.rate;
			}
			ck_assert_int_eq(conns, c);
			ck_assert_int_eq(reqs, 1000 + c);
			ck_assert(fabs(rate - 300) < 1e-9);
		}
}
END_TEST

/* A round of a capacity or compare probe, as another node reads it back:
 * the same round, the load probe it turns the node's copy of the spec
 * into (the side's URL, the round's numbers), and the same shares as the
 * coordinator computes from its own spec; a round the probe could not
 * have sent is refused. */
START_TEST(test_round_read_back_and_shared_alike)
{
	struct spec_probe cmp = {.name = "cmp",
	                         .type = PROBE_TYPE_COMPARE,
	                         .connections = 10,
	                         .threads = 2,
	                         .segments = 6,
	                         .baseline = "http://127.0.0.1:1/a",
	                         .candidate = "http://127.0.0.1:2/b"};
	struct fanload_round rd = {.index = 3,
	                           .mode = LOAD_MODE_RATE,
	                           .rate = 250,
	                           .duration_ms = 1500,
	                           .warmup_ms = 200,
	                           .side = "candidate"},
	                     back;
	struct spec_probe node = cmp;
	json_t *j = fanload_round_to_json(&rd);
	char why[256];

	ck_assert_ptr_nonnull(j);
	ck_assert_int_eq(fanload_round_from_json(j, &back), 0);
	ck_assert_int_eq(back.index, 3);
	ck_assert_int_eq(back.mode, LOAD_MODE_RATE);
	ck_assert(back.rate == 250);
	ck_assert_int_eq(back.duration_ms, 1500);
	ck_assert_int_eq(back.warmup_ms, 200);
	ck_assert_str_eq(back.side, "candidate");

	node.url = NULL;
	node.method = NULL;
	ck_assert_int_eq(fanload_round_spec(&node, j, why, sizeof(why)), 0);
	ck_assert_int_eq(node.type, PROBE_TYPE_LOAD);
	ck_assert_str_eq(node.url, cmp.candidate);
	ck_assert_str_eq(node.method, "GET");
	ck_assert_int_eq(node.mode, LOAD_MODE_RATE);
	ck_assert(node.rate == 250);
	ck_assert_int_eq(node.duration_ms, 1500);
	ck_assert_int_eq(node.requests, 0);
	for (int n = 2; n <= 4; n++)
		for (int i = 0; i < n; i++) {
			struct probe_load_share there, here;

			probe_load_share(&node, i, n, &there);
			fanload_round_share(&cmp, &rd, i, n, &here);
			ck_assert_int_eq(there.connections, here.connections);
			ck_assert_int_eq(there.threads, here.threads);
			ck_assert(there.rate == here.rate);
			ck_assert_int_eq(there.stagger_ms, here.stagger_ms);
		}
	free(node.url);
	free(node.method);
	json_decref(j);

	static const char *const bad[] = {
	        "{\"mode\": \"rate\", \"rate\": 0, \"duration_ms\": 1000, \"warmup_ms\": 0}",
	        "{\"mode\": \"burst\", \"rate\": 5, \"duration_ms\": 1000, \"warmup_ms\": 0}",
	        "{\"mode\": \"closed\", \"duration_ms\": 0, \"warmup_ms\": 0}",
	        "{\"mode\": \"closed\", \"duration_ms\": 1000, \"warmup_ms\": 0, "
	        "\"side\": \"elsewhere\"}",
	        "{\"mode\": \"closed\", \"duration_ms\": 1000, \"warmup_ms\": 0, \"side\": 7}",
	        "[]",
	};
	for (size_t i = 0; i < RD_ARRAY_SIZE(bad); i++) {
		json_t *b = json_loads(bad[i], 0, NULL);

		node = cmp;
		node.url = NULL;
		ck_assert_ptr_nonnull(b);
		ck_assert_int_eq(fanload_round_spec(&node, b, why, sizeof(why)), -EINVAL);
		ck_assert_ptr_null(node.url);
		ck_assert_int_eq(node.type, PROBE_TYPE_COMPARE);
		json_decref(b);
	}
}
END_TEST

static Suite *registry_suite(void)
{
	Suite *s = suite_create("probe-registry");
	TCase *tc = tcase_create("registry");

	tcase_add_loop_test(tc, test_builtin_types_documented, 0, _PROBE_TYPE_MAX);
	tcase_add_test(tc, test_docs_check_finds_differences);
	tcase_add_test(tc, test_load_table_matches_engine);
	tcase_add_test(tc, test_fake_parsed);
	tcase_add_test(tc, test_fake_policed);
	tcase_add_test(tc, test_fake_redacted);
	tcase_add_test(tc, test_fake_scheduled_and_reported);
	tcase_add_test(tc, test_fake_docs_checked);
	tcase_add_test(tc, test_register_refuses_duplicates);
	tcase_add_test(tc, test_load_shares_add_up);
	tcase_add_test(tc, test_round_read_back_and_shared_alike);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(registry_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
