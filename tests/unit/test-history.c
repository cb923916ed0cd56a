/* Unit tests of issue 5's decisions and history: every gate outcome
 * through judge_run_with() (pass, fail, error for a missing metric, NaN
 * and too few samples, advisory fail, baseline pass/fail/none, waived,
 * expired and revoked waivers, stale checklist evidence), canonical gate
 * text, and lib/store/store_history.c: baselines skip invalidated runs,
 * GET /v1/gates' query, waivers, invalidation, rejudgements, history
 * pages and trends, with the query plans of the hot queries.
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <limits.h>

#include "lib/gate/gate.h"
#include "lib/loadgen/hist.h"
#include "lib/gate/judge.h"
#include "lib/spec/spec.h"
#include "lib/store/sqlite/sqlite.h"
#include "lib/store/store.h"
#include "lib/util/util.h"

/* 2026-11-26T13:40:02.114Z */
#define T0  1795700402114LL
#define DAY (24LL * 3600 * 1000)

__attribute__((format(printf, 1, 2))) static struct spec *parse(const char *fmt, ...)
{
	char buf[4096];
	struct spec_error err;
	struct spec *s = NULL;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	ck_assert_msg(spec_parse(buf, strlen(buf), SPEC_FORMAT_YAML, &s, &err) == 0, "%s: %s",
	              err.path, err.message);
	return s;
}

#define SPEC_HEAD                                                                                  \
	"apiVersion: readyd/v1\nservice: svc\nversion: '1'\nenvironment: staging\n"                \
	"probes:\n  - name: latency\n    type: http\n    url: http://127.0.0.1:1/\n"

/* ---- Judge: one case per outcome --------------------------------------- */

struct lookup_case {
	bool has_baseline;
	double baseline;
	bool waiver;
};

static int fake_baseline(void *userdata, const char *probe, const char *metric, double *ret_value,
                         int64_t *ret_run)
{
	const struct lookup_case *c = userdata;

	if (!c->has_baseline)
		return -ENOENT;
	*ret_value = c->baseline;
	*ret_run = 41;
	return 0;
}

static int fake_waiver(void *userdata, const char *expr, json_t **ret_waiver)
{
	const struct lookup_case *c = userdata;

	if (!c->waiver)
		return -ENOENT;
	*ret_waiver = json_pack("{s:i, s:s, s:s, s:s}", "id", 7, "reason", "known slow disk",
	                        "approver", "alice", "expires_at", "2026-12-01T00:00:00.000Z");
	return 0;
}

static const struct {
	const char *name;
	const char *gate;    /* one YAML list item */
	const char *metrics; /* JSON object */
	struct lookup_case lk;
	const char *outcome;
	enum verdict verdict;
	const char *reason_part;
} judge_cases[] = {
        {"pass",
         "latency.p95_ms < 100",
         "{\"p95_ms\": 40, \"requests\": 5000}",
         {0},
         "pass",
         VERDICT_PASS,
         "40"},
        {"fail",
         "latency.p95_ms < 100",
         "{\"p95_ms\": 140, \"requests\": 5000}",
         {0},
         "fail",
         VERDICT_FAIL,
         "140"},
        {"missing metric",
         "latency.p95_ms < 100",
         "{\"requests\": 5000}",
         {0},
         "error",
         VERDICT_ERROR,
         "p95_ms"},
        {"NaN",
         "latency.p95_ms < 100",
         "{\"p95_ms\": null, \"requests\": 5000}",
         {0},
         "error",
         VERDICT_ERROR,
         "p95_ms"},
        {"too few samples",
         "{expr: 'latency.p99_ms < 100', min_samples: 1000}",
         "{\"p99_ms\": 40, \"requests\": 10}",
         {0},
         "error",
         VERDICT_ERROR,
         "10"},
        {"advisory fail",
         "{expr: 'latency.p95_ms < 100', advisory: true}",
         "{\"p95_ms\": 140, \"requests\": 5000}",
         {0},
         "fail",
         VERDICT_PASS,
         "advisory"},
        {"baseline pass",
         "latency.p95_ms <= baseline * 1.10",
         "{\"p95_ms\": 105, \"requests\": 5000}",
         {true, 100, false},
         "pass",
         VERDICT_PASS,
         "105"},
        {"baseline fail",
         "latency.p95_ms <= baseline * 1.10",
         "{\"p95_ms\": 120, \"requests\": 5000}",
         {true, 100, false},
         "fail",
         VERDICT_FAIL,
         "120"},
        {"no baseline",
         "latency.p95_ms <= baseline * 1.10",
         "{\"p95_ms\": 120, \"requests\": 5000}",
         {0},
         "no-baseline",
         VERDICT_PASS,
         "baseline"},
        {"waived",
         "latency.p95_ms < 100",
         "{\"p95_ms\": 140, \"requests\": 5000}",
         {false, 0, true},
         "waived",
         VERDICT_PASS,
         "underneath it fails: 140"},
        {"error is never waived",
         "latency.p95_ms < 100",
         "{\"requests\": 5000}",
         {false, 0, true},
         "error",
         VERDICT_ERROR,
         "p95_ms"},
};

START_TEST(test_judge_outcomes)
{
	struct spec *s = parse(SPEC_HEAD "gates:\n  - %s\n", judge_cases[_i].gate);
	struct lookup_case lc = judge_cases[_i].lk;
	struct judge_lookup lk = {fake_baseline, fake_waiver, &lc};
	json_t *metrics = json_loads(judge_cases[_i].metrics, 0, NULL);
	struct judge_probe jp = {"latency", "passed", NULL, metrics};
	json_t *gates = NULL, *checklist = NULL, *g;
	enum verdict v;

	ck_assert_int_eq(judge_run_with(s, &jp, 1, &lk, T0, &gates, &checklist, &v), 0);
	g = json_array_get(gates, 0);
	ck_assert_msg(
	        !strcmp(json_string_value(json_object_get(g, "outcome")), judge_cases[_i].outcome),
	        "%s: outcome %s", judge_cases[_i].name,
	        json_string_value(json_object_get(g, "outcome")));
	ck_assert_int_eq(v, judge_cases[_i].verdict);
	ck_assert_msg(strstr(json_string_value(json_object_get(g, "reason")),
	                     judge_cases[_i].reason_part),
	              "%s: reason '%s'", judge_cases[_i].name,
	              json_string_value(json_object_get(g, "reason")));
	ck_assert_ptr_nonnull(json_object_get(g, "waiver"));
	if (!strcmp(judge_cases[_i].outcome, "waived")) {
		/* Still shows what failed, and which waiver let it through. */
		ck_assert_double_eq(json_number_value(json_object_get(g, "value")), 140);
		ck_assert_double_eq(json_number_value(json_object_get(g, "threshold")), 100);
		ck_assert_int_eq(
		        json_integer_value(json_object_get(json_object_get(g, "waiver"), "id")), 7);
	} else {
		ck_assert(json_is_null(json_object_get(g, "waiver")));
	}
	if (judge_cases[_i].lk.has_baseline) {
		ck_assert_double_eq(json_number_value(json_object_get(g, "baseline")), 100);
		ck_assert_int_eq(json_integer_value(json_object_get(g, "baseline_run")), 41);
	}
	json_decref(gates);
	json_decref(checklist);
	json_decref(metrics);
	spec_free(s);
}
END_TEST

static const struct {
	const char *name;
	const char *item; /* YAML mapping of one checklist item */
	const char *outcome;
	enum verdict verdict;
	const char *reason_part;
} check_cases[] = {
        {"fresh", "{evidence: 'https://x', tested: 2026-11-20, max_age: 90d}", "pass", VERDICT_PASS,
         "evidence given"},
        {"stale", "{evidence: 'https://x', tested: 2026-01-02, max_age: 90d}", "fail", VERDICT_FAIL,
         "stale"},
        {"did not pass", "{evidence: 'https://x', passed: false}", "fail", VERDICT_FAIL,
         "did not pass"},
        {"future date", "{evidence: 'https://x', tested: 2027-06-01}", "fail", VERDICT_FAIL,
         "future"},
};

START_TEST(test_checklist_evidence)
{
	struct spec *s = parse(SPEC_HEAD "checklist:\n  rollback_plan: %s\n  required: "
	                                 "[rollback_plan]\n",
	                       check_cases[_i].item);
	struct judge_probe jp = {"latency", "passed", NULL, NULL};
	json_t *gates = NULL, *checklist = NULL, *c;
	enum verdict v;

	ck_assert_int_eq(judge_run_with(s, &jp, 1, NULL, T0, &gates, &checklist, &v), 0);
	c = json_array_get(checklist, 0);
	ck_assert_str_eq(json_string_value(json_object_get(c, "outcome")), check_cases[_i].outcome);
	ck_assert_msg(strstr(json_string_value(json_object_get(c, "reason")),
	                     check_cases[_i].reason_part),
	              "%s: reason '%s'", check_cases[_i].name,
	              json_string_value(json_object_get(c, "reason")));
	ck_assert_int_eq(v, check_cases[_i].verdict);
	json_decref(gates);
	json_decref(checklist);
	spec_free(s);
}
END_TEST

static const struct {
	const char *a, *b;
} same_text[] = {
        {"latency.p95_ms<=baseline*1.10", "latency.p95_ms <= baseline * 1.1"},
        {"x.y  <  100", "x.y < 1e2"},
        {"x.y <= baseline - 5", "x.y<=baseline-5.0"},
        {"x.y != 0.1", "x.y != 0.10"},
};

START_TEST(test_gate_format_canonical)
{
	struct gate_expr ea, eb;
	char ta[256], tb[256], err[128];

	ck_assert_int_eq(gate_parse(same_text[_i].a, true, &ea, err, sizeof(err)), 0);
	ck_assert_int_eq(gate_parse(same_text[_i].b, true, &eb, err, sizeof(err)), 0);
	gate_format(&ea, ta, sizeof(ta));
	gate_format(&eb, tb, sizeof(tb));
	ck_assert_str_eq(ta, tb);
	/* The canonical text parses back to itself. */
	ck_assert_int_eq(gate_parse(ta, true, &eb, err, sizeof(err)), 0);
	gate_format(&eb, tb, sizeof(tb));
	ck_assert_str_eq(ta, tb);
}
END_TEST

/* ---- Store ------------------------------------------------------------ */

static struct store *open_mem(void)
{
	struct store *st = NULL;
	char err[256];

	ck_assert_msg(store_open(":memory:", &st, err, sizeof(err)) == 0, "%s", err);
	return st;
}

/* A finished run of svc/env whose probe "latency" published p95_ms. */
static int64_t add_run(struct store *st, const char *svc, const char *env, const char *version,
                       const char *state, double p95, int64_t at)
{
	static const char *const names[] = {"latency"}, *const types[] = {"http"};
	struct store_run_new rn = {svc, version, env, NULL, NULL, "{}", names, types, 1, at};
	const char *verdict = !strcmp(state, "passed")   ? "PASS"
	                      : !strcmp(state, "failed") ? "FAIL"
	                      : !strcmp(state, "error")  ? "ERROR"
	                                                 : NULL;
	json_t *p;
	int64_t id;

	ck_assert_int_eq(store_run_create(st, &rn, &id, NULL), 0);
	if (!strcmp(state, "running") || !strcmp(state, "queued")) {
		ck_assert_int_eq(store_run_update(st, id, state, NULL, at, 0, NULL), 0);
		return id;
	}
	p = json_pack("{s:s, s:s, s:s, s:I, s:I, s:{s:f, s:i}}", "name", "latency", "type", "http",
	              "state", "passed", "started_at", (json_int_t)at, "finished_at",
	              (json_int_t)(at + 1000), "metrics", "p95_ms", p95, "requests", 5000);
	ck_assert_int_eq(store_probe_save(st, id, 0, p), 0);
	json_decref(p);
	ck_assert_int_eq(store_run_update(st, id, state, verdict, at, at + 1000, NULL), 0);
	return id;
}

START_TEST(test_baseline_skips_invalidated)
{
	struct store *st = open_mem();
	int64_t a = add_run(st, "svc", "staging", "1", "passed", 50, T0);
	int64_t b = add_run(st, "svc", "staging", "2", "passed", 60, T0 + 1000 * 60);
	int64_t c = add_run(st, "svc", "staging", "3", "failed", 90, T0 + 2000 * 60);
	int64_t run = 0;
	double v = 0;

	add_run(st, "svc", "prod", "4", "passed", 10, T0 + 3000 * 60);     /* other env */
	add_run(st, "other", "staging", "5", "passed", 1, T0 + 4000 * 60); /* other svc */
	/* Newest passed of this service and environment: b (c failed). */
	ck_assert_int_eq(store_baseline(st, "svc", "staging", "latency", "p95_ms", c, &v, &run), 0);
	ck_assert_int_eq(run, b);
	ck_assert_double_eq(v, 60);
	/* A run is never its own baseline. */
	ck_assert_int_eq(store_baseline(st, "svc", "staging", "latency", "p95_ms", b, &v, &run), 0);
	ck_assert_int_eq(run, a);
	/* Invalidated: skipped. */
	ck_assert_int_eq(store_run_invalidate(st, b, "load generator was saturated", T0), 0);
	ck_assert_int_eq(store_baseline(st, "svc", "staging", "latency", "p95_ms", c, &v, &run), 0);
	ck_assert_int_eq(run, a);
	ck_assert_double_eq(v, 50);
	ck_assert_int_eq(store_run_invalidate(st, a, "bad", T0), 0);
	ck_assert_int_eq(store_baseline(st, "svc", "staging", "latency", "p95_ms", c, &v, &run),
	                 -ENOENT);
	ck_assert_int_eq(store_baseline(st, "svc", "staging", "latency", "nope", 0, &v, &run),
	                 -ENOENT);
	store_free(st);
}
END_TEST

/* Baselines through the judge, as the scheduler wires them. */
START_TEST(test_judge_with_store_baseline)
{
	struct store *st = open_mem();
	int64_t a = add_run(st, "svc", "staging", "1", "passed", 100, T0);
	int64_t cur = add_run(st, "svc", "staging", "2", "running", 0, T0 + 60000);
	struct store_judge_ctx ctx = {st, "svc", "staging", cur, T0 + 120000};
	struct judge_lookup lk = {store_judge_baseline, store_judge_waiver, &ctx};
	struct spec *s = parse(SPEC_HEAD "gates:\n  - latency.p95_ms <= baseline * 1.10\n");
	json_t *metrics = json_pack("{s:f, s:i}", "p95_ms", 120.0, "requests", 5000);
	struct judge_probe jp = {"latency", "passed", NULL, metrics};
	json_t *gates = NULL, *checklist = NULL, *g;
	enum verdict v;

	ck_assert_int_eq(judge_run_with(s, &jp, 1, &lk, ctx.now_ms, &gates, &checklist, &v), 0);
	g = json_array_get(gates, 0);
	ck_assert_str_eq(json_string_value(json_object_get(g, "outcome")), "fail");
	ck_assert_int_eq(json_integer_value(json_object_get(g, "baseline_run")), a);
	ck_assert_double_eq_tol(json_number_value(json_object_get(g, "threshold")), 110, 1e-9);
	ck_assert_int_eq(v, VERDICT_FAIL);
	json_decref(gates);
	json_decref(checklist);
	json_decref(metrics);
	spec_free(s);
	store_free(st);
}
END_TEST

/* Waivers through the store: active waives, expired and revoked do not,
 * another environment does not, NULL environment is any. */
static const struct {
	const char *name;
	const char *env; /* of the waiver */
	int64_t created, expires;
	bool revoke;
	const char *outcome;
} waiver_cases[] = {
        {"active", "staging", T0 - DAY, T0 + DAY, false, "waived"},
        {"any environment", NULL, T0 - DAY, T0 + DAY, false, "waived"},
        {"expired", "staging", T0 - 2 * DAY, T0 - DAY, false, "fail"},
        {"revoked", "staging", T0 - DAY, T0 + DAY, true, "fail"},
        {"other environment", "prod", T0 - DAY, T0 + DAY, false, "fail"},
};

START_TEST(test_waivers_in_judge)
{
	struct store *st = open_mem();
	struct store_waiver_new w = {
	        "svc", waiver_cases[_i].env,     "latency.p95_ms < 100",  "known", "alice",
	        NULL,  waiver_cases[_i].created, waiver_cases[_i].expires};
	struct store_judge_ctx ctx = {st, "svc", "staging", 0, T0};
	struct judge_lookup lk = {store_judge_baseline, store_judge_waiver, &ctx};
	/* Written differently from the waiver: matched by canonical text. */
	struct spec *s = parse(SPEC_HEAD "gates:\n  - latency.p95_ms<1e2\n");
	json_t *metrics = json_pack("{s:f, s:i}", "p95_ms", 140.0, "requests", 5000);
	struct judge_probe jp = {"latency", "passed", NULL, metrics};
	json_t *gates = NULL, *checklist = NULL, *list = NULL, *g;
	enum verdict v;
	int64_t id;

	ck_assert_int_eq(store_waiver_create(st, &w, &id), 0);
	if (waiver_cases[_i].revoke)
		ck_assert_int_eq(store_waiver_revoke(st, "svc", id, T0 - 1), 0);
	ck_assert_int_eq(judge_run_with(s, &jp, 1, &lk, T0, &gates, &checklist, &v), 0);
	g = json_array_get(gates, 0);
	ck_assert_str_eq(json_string_value(json_object_get(g, "outcome")),
	                 waiver_cases[_i].outcome);
	ck_assert_int_eq(v,
	                 strcmp(waiver_cases[_i].outcome, "waived") ? VERDICT_FAIL : VERDICT_PASS);
	/* The list flags it. */
	ck_assert_int_eq(store_waivers_list(st, "svc", T0, &list), 0);
	ck_assert_int_eq(json_array_size(list), 1);
	ck_assert(json_is_true(json_object_get(json_array_get(list, 0), "active")) ==
	                  !strcmp(waiver_cases[_i].outcome, "waived") ||
	          !strcmp(waiver_cases[_i].name, "other environment"));
	ck_assert(json_is_true(json_object_get(json_array_get(list, 0), "expired")) ==
	          !strcmp(waiver_cases[_i].name, "expired"));
	json_decref(list);
	json_decref(gates);
	json_decref(checklist);
	json_decref(metrics);
	spec_free(s);
	store_free(st);
}
END_TEST

START_TEST(test_waiver_errors)
{
	struct store *st = open_mem();
	struct store_waiver_new w = {"svc", NULL, "a.b < 1", "r", "alice", NULL, T0, T0};
	json_t *x = NULL;
	int64_t id;

	ck_assert_int_eq(store_waiver_create(st, &w, &id), -EINVAL); /* expires == created */
	w.expires_at = T0 + 1;
	w.reason = "";
	ck_assert_int_eq(store_waiver_create(st, &w, &id), -EINVAL);
	ck_assert_int_eq(store_waiver_revoke(st, "svc", 99, T0), -ENOENT);
	w.reason = "r";
	ck_assert_int_eq(store_waiver_create(st, &w, &id), 0);
	ck_assert_int_eq(store_waiver_revoke(st, "other", id, T0), -ENOENT); /* not its service */
	ck_assert_int_eq(store_waiver_get(st, "svc", id, T0, &x), 0);
	ck_assert(json_is_null(json_object_get(x, "revoked_at")));
	json_decref(x);
	store_free(st);
}
END_TEST

START_TEST(test_gates_latest)
{
	struct store *st = open_mem();
	json_t *items = NULL, *it;
	int64_t b2;

	add_run(st, "b", "prod", "1", "passed", 1, T0);
	b2 = add_run(st, "b", "prod", "2", "failed", 1, T0 + 1000);
	add_run(st, "b", "prod", "3", "running", 0, T0 + 2000); /* not decided: ignored */
	add_run(st, "a", "staging", "1", "error", 1, T0);
	add_run(st, "a", "prod", "1", "passed", 1, T0);
	int64_t a_new = add_run(st, "a", "prod", "2", "passed", 1, T0 + 5000);
	ck_assert_int_eq(store_run_invalidate(st, a_new, "wrong target", T0), 0);

	ck_assert_int_eq(store_gates_latest(st, &items), 0);
	ck_assert_int_eq(json_array_size(items), 3);
	it = json_array_get(items, 0); /* a/prod: the invalidated v2 does not count */
	ck_assert_str_eq(json_string_value(json_object_get(it, "service")), "a");
	ck_assert_str_eq(json_string_value(json_object_get(it, "environment")), "prod");
	ck_assert_str_eq(json_string_value(json_object_get(it, "version")), "1");
	it = json_array_get(items, 1);
	ck_assert_str_eq(json_string_value(json_object_get(it, "environment")), "staging");
	ck_assert_str_eq(json_string_value(json_object_get(it, "verdict")), "ERROR");
	it = json_array_get(items, 2);
	ck_assert_int_eq(json_integer_value(json_object_get(it, "run_id")), b2);
	ck_assert_str_eq(json_string_value(json_object_get(it, "verdict")), "FAIL");
	ck_assert(json_is_string(json_object_get(it, "finished_at")));
	json_decref(items);
	store_free(st);
}
END_TEST

/* A fresh migrated database file (the plans need the real schema). */
static sqlite3 *schema_db(char *path, size_t len)
{
	const char *base = getenv("TMPDIR");
	struct store *st = NULL;
	char err[256];
	sqlite3 *db = NULL;
	int fd;

	snprintf(path, len, "%s/test-history-XXXXXX", base && *base ? base : "/tmp");
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_msg(store_open(path, &st, err, sizeof(err)) == 0, "%s", err);
	store_free(st);
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	return db;
}

static void schema_db_close(sqlite3 *db, const char *path)
{
	char side[PATH_MAX + 8];

	sqlite3_close(db);
	unlink(path);
	snprintf(side, sizeof(side), "%s-wal", path);
	unlink(side);
	snprintf(side, sizeof(side), "%s-shm", path);
	unlink(side);
}

/* EXPLAIN QUERY PLAN of sql mentions index and scans no metrics table. */
static void assert_plan_uses(const char *sql, const char *index)
{
	char path[PATH_MAX], eqp[4096], plan[4096] = "";
	sqlite3 *db = schema_db(path, sizeof(path));
	sqlite3_stmt *s = NULL;
	size_t used = 0;

	ck_assert_uint_lt(strlen(sql) + 20, sizeof(eqp));
	snprintf(eqp, sizeof(eqp), "EXPLAIN QUERY PLAN %s", sql);
	ck_assert_int_eq(sqlite3_prepare_v2(db, eqp, -1, &s, NULL), SQLITE_OK);
	while (sqlite3_step(s) == SQLITE_ROW && used < sizeof(plan))
		used += (size_t)snprintf(plan + used, sizeof(plan) - used, "%s | ",
		                         (const char *)sqlite3_column_text(s, 3));
	sqlite3_finalize(s);
	schema_db_close(db, path);
	ck_assert_msg(strstr(plan, index), "plan does not use %s: %s", index, plan);
	ck_assert_msg(!strstr(plan, "SCAN m ") && !strstr(plan, "SCAN metrics"),
	              "plan scans metrics: %s", plan);
}

START_TEST(test_trend_plan_uses_index)
{
	assert_plan_uses(sqlite_trend_sql(true), "metrics_trend");
	assert_plan_uses(sqlite_trend_sql(false), "metrics_trend");
	assert_plan_uses(sqlite_trend_bucket_sql(true), "metrics_trend");
	assert_plan_uses(sqlite_trend_bucket_sql(true), "environment=? AND ts>? AND ts<?");
	assert_plan_uses(sqlite_trend_bucket_sql(false), "metrics_trend");
}
END_TEST

START_TEST(test_gates_plan_uses_index)
{
	assert_plan_uses(sqlite_gates_latest_sql(), "runs_decided");
	/* The skip scan: a seek to the next environment, not a walk. */
	assert_plan_uses(sqlite_gates_latest_sql(), "(service=? AND environment>?)");
}
END_TEST

START_TEST(test_trend_points)
{
	struct store *st = open_mem();
	int64_t ids[4];
	json_t *pts = NULL;
	bool truncated = true;
	struct store_trend_query q = {"svc", "latency", "p95_ms", "staging", 0, INT64_MAX, 100};

	for (int i = 0; i < 4; i++)
		ids[i] = add_run(st, "svc", "staging", i == 3 ? "4" : "x",
		                 i == 1 ? "failed" : "passed", 10.0 * (i + 1), T0 + i * 60000);
	add_run(st, "svc", "prod", "p", "passed", 99, T0 + 30000);
	ck_assert_int_eq(store_run_invalidate(st, ids[2], "noisy neighbour", T0), 0);
	ck_assert_int_eq(store_trend(st, &q, &pts, &truncated), 0);
	ck_assert(!truncated);
	ck_assert_int_eq(json_array_size(pts), 3); /* ids[2] invalidated */
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(pts, 0), "run_id")),
	                 ids[0]);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(pts, 1), "run_id")),
	                 ids[1]);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(pts, 2), "run_id")),
	                 ids[3]);
	ck_assert_double_eq(json_number_value(json_object_get(json_array_get(pts, 2), "value")),
	                    40);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(pts, 1), "verdict")),
	                 "FAIL");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(pts, 2), "version")),
	                 "4");
	json_decref(pts);
	/* The newest points when capped, still oldest first. */
	q.limit = 2;
	ck_assert_int_eq(store_trend(st, &q, &pts, &truncated), 0);
	ck_assert(truncated);
	ck_assert_int_eq(json_array_size(pts), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(pts, 0), "run_id")),
	                 ids[1]);
	json_decref(pts);
	/* Any environment; a time window. */
	q.environment = NULL;
	q.limit = 100;
	q.since_ms = T0 + 2000;
	q.until_ms = T0 + 61000 + 1000;
	ck_assert_int_eq(store_trend(st, &q, &pts, &truncated), 0);
	ck_assert_int_eq(json_array_size(pts), 2); /* prod at +30s (+1s) and ids[1] at +61s */
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(pts, 0), "environment")),
	                 "prod");
	json_decref(pts);
	store_free(st);
}
END_TEST

/* ---- Trend buckets (?step=) ---------------------------------------- */

#define HOUR (3600LL * 1000)
#define H0   (T0 - T0 % HOUR) /* 2026-11-26T13:00:00Z */

/* Runs of the bucket tests; a metric's ts is its run's at + 1 s. */
static const struct {
	const char *env, *version, *state;
	double value;
	int64_t at;
	bool invalid;
} bucket_runs[] = {
        {"staging", "a", "passed", 10, H0 - 1000, false}, /* ts H0: a bucket's first ms */
        {"staging", "b", "passed", 30, H0 + 10 * 60000, false},
        {"staging", "c", "failed", 20, H0 + 20 * 60000, false},
        {"staging", "d", "passed", 5, H0 - 2000, false}, /* newer id, older ts: bucket -1h */
        {"staging", "e", "passed", 50, H0 + HOUR, true}, /* invalidated: no bucket +1h */
        {"prod", "f", "passed", 7, H0 + 2 * HOUR, false},
        {"staging", "g", "failed", 9, H0 + 2 * HOUR + 60000, false},
        {"staging", "h", "passed", 15, H0 + 5 * 60000, false}, /* newest id, not last */
};

/* One expected bucket: index idx of the result. last is a bucket_runs
 * index. */
struct bucket_want {
	size_t idx;
	int64_t t;
	int runs;
	double min, max, avg, last;
	size_t last_run;
};

static const struct {
	const char *name;
	int64_t step, since;
	const char *env;
	int limit;
	size_t n;
	bool truncated;
	struct bucket_want want[2];
} bucket_cases[] = {
        {"hourly, one environment",
         HOUR,
         0,
         "staging",
         100,
         3,
         false,
         {{0, H0 - HOUR, 1, 5, 5, 5, 5, 3}, {1, H0, 4, 10, 30, 18.75, 20, 2}}},
        {"hourly, any environment: last by time",
         HOUR,
         0,
         NULL,
         100,
         3,
         false,
         {{2, H0 + 2 * HOUR, 2, 7, 9, 8, 9, 6}, {1, H0, 4, 10, 30, 18.75, 20, 2}}},
        {"daily: one bucket from 00:00 UTC",
         24 * HOUR,
         0,
         NULL,
         100,
         1,
         false,
         {{0, H0 - 13 * HOUR, 7, 5, 30, 96 / 7.0, 9, 6},
          {0, H0 - 13 * HOUR, 7, 5, 30, 96 / 7.0, 9, 6}}},
        {"capped: the newest buckets, oldest first",
         HOUR,
         0,
         "staging",
         2,
         2,
         true,
         {{0, H0, 4, 10, 30, 18.75, 20, 2}, {1, H0 + 2 * HOUR, 1, 9, 9, 9, 9, 6}}},
        {"since cuts inside a bucket",
         HOUR,
         H0 + 1,
         "staging",
         100,
         2,
         false,
         {{0, H0, 3, 15, 30, 65 / 3.0, 20, 2}, {1, H0 + 2 * HOUR, 1, 9, 9, 9, 9, 6}}},
        {"a step of 1 ms: a bucket per run",
         1,
         0,
         "staging",
         100,
         6,
         false,
         {{0, H0 - 1000, 1, 5, 5, 5, 5, 3}, {1, H0, 1, 10, 10, 10, 10, 0}}},
};

static void assert_bucket(json_t *b, const struct bucket_want *w, const int64_t *ids)
{
	char t[RD_TIME_LEN];

	rd_time_format(w->t, t);
	ck_assert_str_eq(json_string_value(json_object_get(b, "t")), t);
	ck_assert_int_eq(json_integer_value(json_object_get(b, "runs")), w->runs);
	ck_assert_double_eq(json_number_value(json_object_get(b, "min")), w->min);
	ck_assert_double_eq(json_number_value(json_object_get(b, "max")), w->max);
	ck_assert_double_eq_tol(json_number_value(json_object_get(b, "avg")), w->avg, 1e-9);
	ck_assert_double_eq(json_number_value(json_object_get(b, "last")), w->last);
	ck_assert_int_eq(json_integer_value(json_object_get(b, "last_run_id")), ids[w->last_run]);
	ck_assert_str_eq(json_string_value(json_object_get(b, "last_version")),
	                 bucket_runs[w->last_run].version);
}

START_TEST(test_trend_buckets)
{
	struct store *st = open_mem();
	int64_t ids[RD_ARRAY_SIZE(bucket_runs)];
	struct store_trend_query q = {"svc",
	                              "latency",
	                              "p95_ms",
	                              bucket_cases[_i].env,
	                              bucket_cases[_i].since,
	                              INT64_MAX,
	                              bucket_cases[_i].limit,
	                              bucket_cases[_i].step};
	json_t *pts = NULL;
	bool truncated = !bucket_cases[_i].truncated;

	for (size_t i = 0; i < RD_ARRAY_SIZE(bucket_runs); i++) {
		ids[i] = add_run(st, "svc", bucket_runs[i].env, bucket_runs[i].version,
		                 bucket_runs[i].state, bucket_runs[i].value, bucket_runs[i].at);
		if (bucket_runs[i].invalid)
			ck_assert_int_eq(store_run_invalidate(st, ids[i], "bad", T0 + DAY), 0);
	}
	add_run(st, "other", "staging", "x", "passed", 1000, H0); /* another service */
	ck_assert_int_eq(store_trend(st, &q, &pts, &truncated), 0);
	ck_assert_msg(json_array_size(pts) == bucket_cases[_i].n, "%s: %zu buckets",
	              bucket_cases[_i].name, json_array_size(pts));
	ck_assert(truncated == bucket_cases[_i].truncated);
	for (size_t k = 0; k < 2; k++) {
		const struct bucket_want *w = &bucket_cases[_i].want[k];

		assert_bucket(json_array_get(pts, w->idx), w, ids);
	}
	json_decref(pts);
	store_free(st);
}
END_TEST

START_TEST(test_trend_bucket_bounds)
{
	struct store *st = open_mem();
	struct store_trend_query q = {"svc", "latency", "p95_ms", NULL, 0, INT64_MAX, 100, -1};
	json_t *pts = NULL, *b;
	bool truncated = true;

	add_run(st, "svc", "staging", "1", "passed", 1, T0);
	ck_assert_int_eq(store_trend(st, &q, &pts, &truncated), -EINVAL); /* negative step */
	/* A step longer than all of time: one bucket starting at the epoch,
	 * and no overflow computing its start. */
	q.step_ms = INT64_MAX;
	ck_assert_int_eq(store_trend(st, &q, &pts, &truncated), 0);
	ck_assert_int_eq(json_array_size(pts), 1);
	b = json_array_get(pts, 0);
	ck_assert_str_eq(json_string_value(json_object_get(b, "t")), "1970-01-01T00:00:00.000Z");
	ck_assert_int_eq(json_integer_value(json_object_get(b, "runs")), 1);
	json_decref(pts);
	/* No metric in range: no buckets, not an error. */
	q.step_ms = HOUR;
	q.since_ms = T0 + DAY;
	ck_assert_int_eq(store_trend(st, &q, &pts, &truncated), 0);
	ck_assert_int_eq(json_array_size(pts), 0);
	ck_assert(!truncated);
	json_decref(pts);
	store_free(st);
}
END_TEST

START_TEST(test_history_pages)
{
	struct store *st = open_mem();
	struct store_history_filter f = {"svc", NULL, NULL, NULL, 2};
	json_t *items = NULL;
	char *next = NULL;
	int64_t ids[5];

	for (int i = 0; i < 5; i++)
		ids[i] = add_run(st, "svc", i == 4 ? "prod" : "staging", "v",
		                 i % 2 ? "failed" : "passed", 1, T0 + i);
	add_run(st, "svc", "staging", "q", "running", 0, T0 + 9); /* no verdict yet */
	ck_assert_int_eq(store_history(st, &f, &items, &next), 0);
	ck_assert_int_eq(json_array_size(items), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(items, 0), "run_id")),
	                 ids[4]);
	ck_assert_ptr_nonnull(next);
	json_decref(items);
	f.cursor = next;
	ck_assert_int_eq(store_history(st, &f, &items, &next), 0);
	free((char *)f.cursor);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(items, 0), "run_id")),
	                 ids[2]);
	json_decref(items);
	free(next);
	f.cursor = NULL;
	f.verdict = "FAIL";
	f.environment = "staging";
	f.limit = 10;
	ck_assert_int_eq(store_history(st, &f, &items, &next), 0);
	ck_assert_int_eq(json_array_size(items), 2); /* ids[3], ids[1] */
	ck_assert_ptr_null(next);
	json_decref(items);
	f.cursor = "bogus";
	ck_assert_int_eq(store_history(st, &f, &items, &next), -EINVAL);
	store_free(st);
}
END_TEST

START_TEST(test_invalidate_and_rejudge)
{
	struct store *st = open_mem();
	int64_t done = add_run(st, "svc", "staging", "1", "failed", 1, T0);
	int64_t live = add_run(st, "svc", "staging", "2", "running", 0, T0 + 1);
	json_t *gates =
	        json_pack("[{s:s, s:s}]", "expr", "latency.p95_ms < 200", "outcome", "pass");
	json_t *run = NULL, *rj, *services = NULL;
	int64_t seq = 0;

	ck_assert_int_eq(store_run_invalidate(st, live, "x", T0), -EINPROGRESS);
	ck_assert_int_eq(store_run_invalidate(st, 999, "x", T0), -ENOENT);
	ck_assert_int_eq(store_run_invalidate(st, done, "", T0), -EINVAL);
	ck_assert_int_eq(store_rejudgement_add(st, live, gates, "PASS", NULL, T0, &seq),
	                 -EINPROGRESS);
	ck_assert_int_eq(store_rejudgement_add(st, done, gates, "PASS", "ci", T0, &seq), 0);
	ck_assert_int_eq(seq, 1);
	ck_assert_int_eq(store_rejudgement_add(st, done, gates, "PASS", "ci", T0 + 5, &seq), 0);
	ck_assert_int_eq(seq, 2);
	ck_assert_int_eq(store_run_get(st, done, &run), 0);
	ck_assert(json_is_null(json_object_get(run, "invalidated")));
	ck_assert_str_eq(json_string_value(json_object_get(run, "verdict")), "FAIL"); /* kept */
	rj = json_object_get(run, "rejudgements");
	ck_assert_int_eq(json_array_size(rj), 2);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(rj, 1), "verdict")),
	                 "PASS");
	ck_assert_int_eq(json_array_size(json_object_get(json_array_get(rj, 0), "gates")), 1);
	json_decref(run);
	ck_assert_int_eq(store_run_invalidate(st, done, "wrong build", T0), 0);
	ck_assert_int_eq(store_run_invalidate(st, done, "again", T0), -EALREADY);
	ck_assert_int_eq(store_run_get(st, done, &run), 0);
	ck_assert_str_eq(
	        json_string_value(json_object_get(json_object_get(run, "invalidated"), "reason")),
	        "wrong build");
	json_decref(run);
	ck_assert_int_eq(store_services_list(st, &services), 0);
	ck_assert_int_eq(json_array_size(services), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(services, 0), "runs")),
	                 2);
	json_decref(services);
	json_decref(gates);
	store_free(st);
}
END_TEST

/* Percentiles a run never published, from its stored histogram. */
START_TEST(test_percentile_from_histogram)
{
	struct store *st = open_mem();
	int64_t id = add_run(st, "svc", "staging", "1", "passed", 1, T0);
	struct hist *h = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	double ms = 0;

	ck_assert_int_eq(store_probe_percentile(st, id, 0, "p75_ms", &ms), -ENOENT);
	ck_assert_int_eq(hist_new(60LL * 1000 * 1000, 3, &h), 0);
	for (int64_t v = 1; v <= 1000; v++)
		ck_assert_int_eq(hist_record(h, v * 1000), 0); /* 1..1000 ms */
	ck_assert_int_eq(hist_serialize(h, &buf, &len), 0);
	ck_assert_int_eq(store_probe_blob_save(st, id, 0, "latency", buf, len), 0);
	ck_assert_int_eq(store_probe_percentile(st, id, 0, "p75_ms", &ms), 0);
	ck_assert_double_eq_tol(ms, 750, 1);
	ck_assert_int_eq(store_probe_percentile(st, id, 0, "p999_ms", &ms), 0);
	ck_assert_double_eq_tol(ms, 999, 1);
	ck_assert_int_eq(store_probe_percentile(st, id, 0, "mean_ms", &ms), -EINVAL);
	ck_assert_int_eq(store_probe_percentile(st, id, 0, "p5_ms", &ms), -EINVAL);
	free(buf);
	hist_free(h);
	store_free(st);
}
END_TEST

static Suite *history_suite(void)
{
	Suite *s = suite_create("history");
	TCase *tc = tcase_create("judge");

	tcase_add_loop_test(tc, test_judge_outcomes, 0, (int)RD_ARRAY_SIZE(judge_cases));
	tcase_add_loop_test(tc, test_checklist_evidence, 0, (int)RD_ARRAY_SIZE(check_cases));
	tcase_add_loop_test(tc, test_gate_format_canonical, 0, (int)RD_ARRAY_SIZE(same_text));
	suite_add_tcase(s, tc);
	tc = tcase_create("store");
	tcase_add_test(tc, test_baseline_skips_invalidated);
	tcase_add_test(tc, test_judge_with_store_baseline);
	tcase_add_loop_test(tc, test_waivers_in_judge, 0, (int)RD_ARRAY_SIZE(waiver_cases));
	tcase_add_test(tc, test_waiver_errors);
	tcase_add_test(tc, test_gates_latest);
	tcase_add_test(tc, test_trend_plan_uses_index);
	tcase_add_test(tc, test_gates_plan_uses_index);
	tcase_add_test(tc, test_trend_points);
	tcase_add_loop_test(tc, test_trend_buckets, 0, (int)RD_ARRAY_SIZE(bucket_cases));
	tcase_add_test(tc, test_trend_bucket_bounds);
	tcase_add_test(tc, test_history_pages);
	tcase_add_test(tc, test_invalidate_and_rejudge);
	tcase_add_test(tc, test_percentile_from_histogram);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(history_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
