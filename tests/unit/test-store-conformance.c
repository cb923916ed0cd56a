/* The store's conformance suite: what every backend behind store.h must
 * do, through store.h alone. Each test runs once per entry of backends[]
 * (SQLite on ":memory:" and on a temp file, and PostgreSQL when
 * READYD_TEST_PG_URL names a cluster): runs created, read, listed with
 * cursors, filters and token scopes, their state transitions and final states; probe
 * results and their metrics; trends (step buckets, decided runs only);
 * gate and checklist results; baselines (newest passed, not
 * invalidated, on enough samples); history pages; waivers created,
 * expired and revoked; idempotency keys (per service, same spec, one
 * run when two connections submit one key at once); the
 * audit trail; load measurements; retention; migrations applied,
 * recorded and a newer schema refused; health and file identity.
 * Backend-specific checks (the SQLite schema, WAL, query plans) live in
 * the backend's own tests, test-store-sqlite.c.
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/loadgen/hist.h"
#include "lib/policy/scope.h"
#include "lib/store/store.h"
#include "lib/util/util.h"
#include "tests/unit/store-fixture.h"

#define DAY (24LL * 3600 * 1000)

/* How the suite reaches one backend. */
struct conf_backend {
	const char *name;
	/* Where a fresh, empty store of this test lives: a path or a URL. */
	const char *(*where)(void);
	/* Whether reopening where finds what was stored. */
	bool persistent;
	/* Whether several readyd processes (nodes) may write it at once. */
	bool shared;
	/* What errmsg says when a value breaks one of the schema's checks. */
	const char *check_words;
	/* Makes the store at where look written by a newer readyd; NULL
	 * when the backend cannot be reached behind the store's back. */
	void (*make_newer)(const char *where);
	/* Rows of the long metrics table with this metric and value; NULL:
	 * not inspectable. */
	int64_t (*count_metric)(const char *where, const char *metric, double value);
	/* Stores a run with the key "held" from another connection and
	 * commits it only once create, started on st, waits for it; returns
	 * that run's id. NULL: the wait cannot be seen from outside. */
	int64_t (*key_held)(const char *where, void *(*create)(void *), void *arg);
	/* Stores version 1 of svc's spec in prod from another connection and
	 * commits it only once put, started on a thread, waits for it. NULL:
	 * the wait cannot be seen from outside. */
	void (*spec_held)(const char *where, void *(*put)(void *), void *arg);
};

/* ---- SQLite glue: the only code here that knows the backend ----------- */

static const char *sqlite_memory(void)
{
	return ":memory:";
}

static const char *sqlite_file(void)
{
	return db_file;
}

static sqlite3 *sqlite_raw(const char *path)
{
	sqlite3 *db = NULL;

	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	return db;
}

static void sqlite_make_newer(const char *path)
{
	sqlite3 *db = sqlite_raw(path);

	ck_assert_int_eq(sqlite3_exec(db,
	                              "INSERT INTO schema_migrations VALUES "
	                              "(999, '0999_future.sql', 1)",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(db);
}

static int64_t sqlite_count_metric(const char *path, const char *metric, double value)
{
	sqlite3 *db = sqlite_raw(path);
	sqlite3_stmt *s = NULL;
	int64_t n = -1;

	ck_assert_int_eq(sqlite3_prepare_v2(db,
	                                    "SELECT count(*) FROM metrics WHERE metric = ?1 AND "
	                                    "value = ?2",
	                                    -1, &s, NULL),
	                 SQLITE_OK);
	sqlite3_bind_text(s, 1, metric, -1, SQLITE_STATIC);
	sqlite3_bind_double(s, 2, value);
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return n;
}

/* ---- PostgreSQL glue ---------------------------------------------------
 * READYD_TEST_PG_URL names a database of a private cluster (scripts/test
 * starts one; scripts/pg-cluster). Each test gets a schema of its own,
 * made on the first where() of the test and selected through the URL's
 * search_path, so tests start empty without a database each. Without the
 * variable the PostgreSQL entry is left out (READYD_REQUIRE_PG=1: fail
 * instead). */

static char pg_url[2048];
static char pg_url_dir[PATH_MAX]; /* the tmp_dir pg_url was made for */

static PGconn *pg_raw(const char *url)
{
	PGconn *c = PQconnectdb(url);

	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	return c;
}

static void pg_run(PGconn *c, const char *sql)
{
	PGresult *res = PQexec(c, sql);

	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK ||
	                      PQresultStatus(res) == PGRES_TUPLES_OK,
	              "%s: %s", sql, PQresultErrorMessage(res));
	PQclear(res);
}

static unsigned schema_count;

/* READYD_TEST_PG_PARTITIONED set: every test's schema is migrated and its
 * metrics table partitioned (store_partition_metrics) before the test
 * opens it, so the whole suite runs again on the partitioned layout. */
static void pg_partition(const char *url)
{
	struct store *st = NULL;
	char err[256] = "";
	int64_t upto = 0;

	ck_assert_msg(store_open(url, &st, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(store_partition_metrics(st, &upto) == 0, "%s", store_errmsg(st));
	ck_assert_int_eq(upto, 1);
	ck_assert_int_eq(store_partition_metrics(st, &upto), 1);
	store_free(st);
}

static const char *pg_where(void)
{
	const char *base = getenv("READYD_TEST_PG_URL");
	char schema[80], sql[128];
	PGconn *c;

	if (strcmp(pg_url_dir, tmp_dir) == 0)
		return pg_url;
	/* A count too: the directory's suffix differs only in letters that
	 * may all map to '_' (the same process runs every test with
	 * CK_FORK=no). */
	snprintf(schema, sizeof(schema), "conf_%ld_%u_%.40s", (long)getpid(), ++schema_count,
	         strrchr(tmp_dir, '/') ? strrchr(tmp_dir, '/') + 1 : tmp_dir);
	for (char *p = schema; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
			*p = '_';
	c = pg_raw(base);
	snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", schema);
	pg_run(c, sql);
	PQfinish(c);
	snprintf(pg_url, sizeof(pg_url), "%s%coptions=-csearch_path%%3D%s", base,
	         strchr(base, '?') ? '&' : '?', schema);
	snprintf(pg_url_dir, sizeof(pg_url_dir), "%s", tmp_dir);
	if (getenv("READYD_TEST_PG_PARTITIONED"))
		pg_partition(pg_url);
	return pg_url;
}

static void pg_make_newer(const char *url)
{
	PGconn *c = pg_raw(url);

	pg_run(c, "INSERT INTO schema_migrations VALUES (999, '0999_future.sql', 1)");
	PQfinish(c);
}

static int64_t pg_count_metric(const char *url, const char *metric, double value)
{
	char v[40];
	const char *params[] = {metric, v};
	PGconn *c = pg_raw(url);
	PGresult *res;
	int64_t n = -1;

	snprintf(v, sizeof(v), "%.17g", value);
	res = PQexecParams(c, "SELECT count(*) FROM metrics WHERE metric = $1 AND value = $2", 2,
	                   NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	PQfinish(c);
	return n;
}

/* Whether a backend waits on the lock of this connection's transaction. */
static bool pg_someone_waits(PGconn *c)
{
	PGresult *res = PQexec(c, "SELECT count(*) FROM pg_locks AS w JOIN pg_locks AS h "
	                          "ON h.transactionid = w.transactionid WHERE NOT w.granted "
	                          "AND w.locktype = 'transactionid' AND h.granted "
	                          "AND h.pid = pg_backend_pid()");
	bool waits = PQresultStatus(res) == PGRES_TUPLES_OK && strcmp(PQgetvalue(res, 0, 0), "0");

	PQclear(res);
	return waits;
}

static int64_t pg_key_held(const char *url, void *(*create)(void *), void *arg)
{
	PGconn *c = pg_raw(url);
	PGresult *res;
	pthread_t t;
	int64_t id;
	int tries = 0;

	pg_run(c, "BEGIN");
	res = PQexec(c, "INSERT INTO runs (service, version, environment, state, spec, "
	                "created_at) VALUES ('svc', '1', 'prod', 'queued', '{}', 1) RETURNING id");
	ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
	id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	pg_run(c, "INSERT INTO idempotency_keys (service, key, run_id) "
	          "SELECT 'svc', 'held', max(id) FROM runs");
	ck_assert_int_eq(pthread_create(&t, NULL, create, arg), 0);
	while (!pg_someone_waits(c) && ++tries < 1000)
		usleep(2000);
	ck_assert_int_lt(tries, 1000);
	pg_run(c, "COMMIT");
	pthread_join(t, NULL);
	PQfinish(c);
	return id;
}

static void pg_spec_held(const char *url, void *(*put)(void *), void *arg)
{
	PGconn *c = pg_raw(url);
	pthread_t t;
	int tries = 0;

	pg_run(c, "BEGIN");
	pg_run(c, "INSERT INTO stored_specs (service, environment, version, format, text, doc, "
	          "created_at) VALUES ('svc', 'prod', 1, 'json', '{}', '{}', 1)");
	ck_assert_int_eq(pthread_create(&t, NULL, put, arg), 0);
	while (!pg_someone_waits(c) && ++tries < 1000)
		usleep(2000);
	ck_assert_int_lt(tries, 1000);
	pg_run(c, "COMMIT");
	pthread_join(t, NULL);
	PQfinish(c);
}

static const struct conf_backend backends[] = {
        {"sqlite :memory:", sqlite_memory, false, false, "CHECK constraint", NULL, NULL, NULL,
         NULL},
        {"sqlite file", sqlite_file, true, false, "CHECK constraint", sqlite_make_newer,
         sqlite_count_metric, NULL, NULL},
        {"postgresql", pg_where, true, true, "violates check constraint", pg_make_newer,
         pg_count_metric, pg_key_held, pg_spec_held},
};

/* Every entry, or all but PostgreSQL when no cluster was given. */
static int n_backends = (int)RD_ARRAY_SIZE(backends);
#define N_BACKENDS n_backends

/* Loop tests run _i over cases x backends: the backend is _i % N_BACKENDS,
 * the case _i / N_BACKENDS. */
static const struct conf_backend *conf_backend(int i)
{
	return &backends[i % N_BACKENDS];
}

static struct store *conf_open(int i)
{
	const struct conf_backend *b = conf_backend(i);
	struct store *st = NULL;
	char err[256] = "";
	int r = store_open(b->where(), &st, err, sizeof(err));

	ck_assert_msg(r == 0, "%s: store_open = %d: %s", b->name, r, err);
	return st;
}

/* A write through a reader connection: refused. */
static int add_run_fails_on_reader(struct store *rd)
{
	return store_run_invalidate(rd, 1, "no", T0);
}

/* ---- Migrations and health ------------------------------------------ */

START_TEST(test_migrations)
{
	const struct conf_backend *b = conf_backend(_i);
	struct store *st = conf_open(_i);
	int64_t id = create_run(st, "svc", "staging", NULL, 1, NULL);
	json_t *run;

	ck_assert_int_ge(store_schema_latest(st), 1);
	ck_assert_int_eq(store_schema_version(st), store_schema_latest(st));
	ck_assert_int_eq(store_check_file(st), 0);
	ck_assert_ptr_nonnull(store_errmsg(st));
	if (!b->persistent) {
		store_free(st);
		return;
	}
	store_free(st); /* reopening applies nothing and finds the run */
	st = conf_open(_i);
	ck_assert_int_eq(store_schema_version(st), store_schema_latest(st));
	run = get_run(st, id);
	ck_assert_str_eq(json_string_value(json_object_get(run, "service")), "svc");
	json_decref(run);
	store_free(st);
}
END_TEST

/* libpq quotes the part of a URL it cannot parse, which can be the
 * password: the message says what is wrong without it. No server is
 * needed: the URL is refused before connecting. */
START_TEST(test_pg_password_not_echoed)
{
	static const char *const urls[] = {
	        "postgresql://readyd:S3c%zzretPW@127.0.0.1:1/postgres",
	        "postgresql://readyd@127.0.0.1:1/postgres?password=%zzS3cretPW",
	};
	struct store *st = NULL;
	char err[512];

	for (size_t i = 0; i < RD_ARRAY_SIZE(urls); i++) {
		err[0] = '\0';
		ck_assert_int_lt(store_open(urls[i], &st, err, sizeof(err)), 0);
		ck_assert_ptr_null(st);
		ck_assert_msg(strstr(err, "percent-encoded") != NULL, "%s", err);
		ck_assert_msg(strstr(err, "S3c") == NULL, "%s", err);
	}
}
END_TEST

START_TEST(test_newer_schema_refused)
{
	const struct conf_backend *b = conf_backend(_i);
	struct store *st = conf_open(_i), *again = NULL;
	char err[256] = "";

	store_free(st);
	if (!b->make_newer)
		return;
	b->make_newer(b->where());
	ck_assert_int_eq(store_open(b->where(), &again, err, sizeof(err)), -EPROTONOSUPPORT);
	ck_assert_ptr_null(again);
	ck_assert_msg(strstr(err, "newer"), "%s", err);
}
END_TEST

/* ---- Runs ---------------------------------------------------------- */

/* The run resource of test_run_roundtrip, before and after its life. */
static const char roundtrip_queued[] =
        "{\"invalidated\": null, \"rejudgements\": [], \"changes\": [], " /* 0003, 0004 */
        "\"spec_version\": null, "                                        /* 0006 */
        "\"node\": null, "                                                /* 0008 */
        "\"service\": \"sentiment-api\", \"version\": \"2.4.0\", "
        "\"environment\": \"staging\", \"state\": \"queued\", \"verdict\": null, "
        "\"submitted_by\": \"ci-pipeline\", "
        "\"created_at\": \"2026-11-26T13:40:02.114Z\", \"started_at\": null, "
        "\"finished_at\": null, \"error\": null, "
        "\"probes\": ["
        " {\"name\": \"latency\", \"type\": \"load\", \"state\": \"queued\", "
        "  \"started_at\": null, \"finished_at\": null, \"metrics\": {}, "
        "  \"details\": null, \"error\": null},"
        " {\"name\": \"alert-rules\", \"type\": \"prometheus-rules\", "
        "  \"state\": \"queued\", \"started_at\": null, \"finished_at\": null, "
        "  \"metrics\": {}, \"details\": null, \"error\": null}], "
        "\"gates\": [], \"checklist\": []}";

static const char roundtrip_probe0[] =
        "{\"name\": \"latency\", \"type\": \"load\", \"state\": \"passed\", "
        "\"started_at\": 1795700402120, \"finished_at\": 1795700462120, "
        "\"metrics\": {\"requests\": 5120, \"p95_ms\": 40.33}, \"details\": null, "
        "\"error\": null}";

static const char roundtrip_probe1[] =
        "{\"name\": \"alert-rules\", \"type\": \"prometheus-rules\", "
        "\"state\": \"failed\", \"started_at\": 1795700462120, "
        "\"finished_at\": 1795700462500, "
        "\"metrics\": {\"rules\": 4, \"missing\": 1}, "
        "\"details\": {\"missing\": [\"GPUOutOfMemory\"]}, "
        "\"error\": \"1 required alert rule is missing: GPUOutOfMemory\"}";

/* gate_judge() objects; min_samples is not stored. */
static const char roundtrip_gates[] =
        "[{\"expr\": \"latency.p95_ms < 100\", \"metric\": \"latency.p95_ms\", "
        "\"op\": \"<\", \"threshold\": 100, \"value\": 40.33, \"samples\": 12000, "
        "\"baseline\": null, \"baseline_run\": null, \"advisory\": false, "
        "\"min_samples\": 1000, \"outcome\": \"pass\", \"reason\": \"40.33 < 100\"},"
        "{\"expr\": \"latency.p95_ms <= baseline * 1.10\", "
        "\"metric\": \"latency.p95_ms\", \"op\": \"<=\", \"threshold\": 41.8, "
        "\"value\": 40.33, \"samples\": 12000, \"baseline\": 38.0, "
        "\"baseline_run\": 7, \"advisory\": true, \"outcome\": \"pass\", "
        "\"reason\": \"40.33 <= 41.8 (baseline 38 from run 7 * 1.10)\"}]";

static const char roundtrip_checklist[] =
        "[{\"item\": \"runbook\", \"required\": true, "
        "\"evidence\": \"https://wiki.example/runbooks/sentiment-api\", "
        "\"outcome\": \"pass\", \"reason\": \"evidence given\"},"
        "{\"item\": \"load_test_signoff\", \"required\": false, "
        "\"evidence\": null, \"outcome\": \"fail\", "
        "\"reason\": \"no evidence given\"}]";

static const char roundtrip_final[] =
        "{\"invalidated\": null, \"rejudgements\": [], \"changes\": [], " /* 0003, 0004 */
        "\"spec_version\": null, "                                        /* 0006 */
        "\"node\": null, "                                                /* 0008 */
        "\"service\": \"sentiment-api\", \"version\": \"2.4.0\", "
        "\"environment\": \"staging\", \"state\": \"failed\", \"verdict\": \"FAIL\", "
        "\"submitted_by\": \"ci-pipeline\", "
        "\"created_at\": \"2026-11-26T13:40:02.114Z\", "
        "\"started_at\": \"2026-11-26T13:40:02.120Z\", "
        "\"finished_at\": \"2026-11-26T13:41:03.114Z\", \"error\": null, "
        "\"probes\": ["
        " {\"name\": \"latency\", \"type\": \"load\", \"state\": \"passed\", "
        "  \"started_at\": \"2026-11-26T13:40:02.120Z\", "
        "  \"finished_at\": \"2026-11-26T13:41:02.120Z\", "
        "  \"metrics\": {\"requests\": 5120, \"p95_ms\": 40.33}, "
        "  \"details\": null, \"error\": null},"
        " {\"name\": \"alert-rules\", \"type\": \"prometheus-rules\", "
        "  \"state\": \"failed\", \"started_at\": \"2026-11-26T13:41:02.120Z\", "
        "  \"finished_at\": \"2026-11-26T13:41:02.500Z\", "
        "  \"metrics\": {\"rules\": 4, \"missing\": 1}, "
        "  \"details\": {\"missing\": [\"GPUOutOfMemory\"]}, "
        "  \"error\": \"1 required alert rule is missing: GPUOutOfMemory\"}], "
        "\"gates\": ["
        " {\"expr\": \"latency.p95_ms < 100\", \"metric\": \"latency.p95_ms\", "
        "  \"op\": \"<\", \"threshold\": 100.0, \"value\": 40.33, \"samples\": 12000, "
        "  \"baseline\": null, \"baseline_run\": null, \"advisory\": false, "
        "  \"outcome\": \"pass\", \"reason\": \"40.33 < 100\", \"waiver\": null},"
        " {\"expr\": \"latency.p95_ms <= baseline * 1.10\", "
        "  \"metric\": \"latency.p95_ms\", \"op\": \"<=\", \"threshold\": 41.8, "
        "  \"value\": 40.33, \"samples\": 12000, \"baseline\": 38.0, "
        "  \"baseline_run\": 7, \"advisory\": true, \"outcome\": \"pass\", "
        "  \"reason\": \"40.33 <= 41.8 (baseline 38 from run 7 * 1.10)\", "
        "  \"waiver\": null}], "
        "\"checklist\": ["
        " {\"item\": \"runbook\", \"required\": true, "
        "  \"evidence\": \"https://wiki.example/runbooks/sentiment-api\", "
        "  \"outcome\": \"pass\", \"reason\": \"evidence given\"},"
        " {\"item\": \"load_test_signoff\", \"required\": false, \"evidence\": null, "
        "  \"outcome\": \"fail\", \"reason\": \"no evidence given\"}]}";

START_TEST(test_run_roundtrip)
{
	struct store *st = conf_open(_i);
	int64_t id = create_run(st, "sentiment-api", "staging", NULL, 2, NULL);
	json_t *run, *spec = NULL, *gates, *checklist;

	run = get_run(st, id);
	ck_assert_int_eq(json_integer_value(json_object_get(run, "id")), id);
	json_object_del(run, "id");
	assert_json_eq(run, roundtrip_queued);
	json_decref(run);

	ck_assert_int_eq(store_run_update(st, id, "running", NULL, T0 + 6, 0, NULL), 0);
	save_probe(st, id, 0, roundtrip_probe0);
	save_probe(st, id, 1, roundtrip_probe1);
	gates = load(roundtrip_gates);
	checklist = load(roundtrip_checklist);
	ck_assert_int_eq(store_judgement_save(st, id, gates, checklist), 0);
	json_decref(gates);
	json_decref(checklist);
	ck_assert_int_eq(store_run_update(st, id, "failed", "FAIL", 0, T0 + 61000, NULL), 0);

	run = get_run(st, id);
	ck_assert_int_eq(json_integer_value(json_object_get(run, "id")), id);
	json_object_del(run, "id");
	assert_json_eq(run, roundtrip_final);
	json_decref(run);

	ck_assert_int_eq(store_run_spec(st, id, &spec), 0);
	assert_json_eq(spec, "{\"apiVersion\": \"readyd/v1\", \"service\": \"x\"}");
	json_decref(spec);
	store_free(st);
}
END_TEST

START_TEST(test_run_update_fields)
{
	struct store *st = conf_open(_i);
	int64_t id = create_run(st, "svc", "prod", NULL, 0, NULL);
	json_t *run;

	ck_assert_int_eq(store_run_update(st, id, "error", "ERROR", T0 + 1, T0 + 2, "boom"), 0);
	/* verdict NULL keeps the stored verdict, times of 0 keep theirs, error
	 * NULL clears. */
	ck_assert_int_eq(store_run_update(st, id, "failed", NULL, 0, 0, NULL), 0);
	run = get_run(st, id);
	ck_assert_str_eq(json_string_value(json_object_get(run, "state")), "failed");
	ck_assert_str_eq(json_string_value(json_object_get(run, "verdict")), "ERROR");
	ck_assert_str_eq(json_string_value(json_object_get(run, "started_at")),
	                 "2026-11-26T13:40:02.115Z");
	ck_assert_str_eq(json_string_value(json_object_get(run, "finished_at")),
	                 "2026-11-26T13:40:02.116Z");
	ck_assert(json_is_null(json_object_get(run, "error")));
	json_decref(run);
	store_free(st);
}
END_TEST

START_TEST(test_idempotency_key)
{
	struct store *st = conf_open(_i);
	struct store_filter f = {.limit = 100};
	bool existing = true;
	int64_t a, b, c, d, other, id = 0;
	char *cursor = NULL;
	json_t *items;
	struct store_run_new rn = {.service = "svc",
	                           .version = "2.4.0",
	                           .environment = "staging",
	                           .idempotency_key = "key-1",
	                           .spec_json = "{\"apiVersion\":\"readyd/v1\",\"service\":\"y\"}",
	                           .created_at = T0};

	a = create_run(st, "svc", "staging", "key-1", 2, &existing);
	ck_assert(!existing);
	b = create_run(st, "svc", "prod", "key-1", 1, &existing);
	ck_assert(existing);
	ck_assert_int_eq(b, a);
	/* Keys are per service: another service's same key is another run. */
	other = create_run(st, "other", "prod", "key-1", 1, &existing);
	ck_assert(!existing);
	ck_assert_int_ne(other, a);
	/* The same key with a different spec is refused, nothing is added. */
	ck_assert_int_eq(store_run_create(st, &rn, &id, &existing), -EEXIST);
	ck_assert_int_eq(store_run_find_by_key(st, "svc", "key-1", rn.spec_json, &id), -EEXIST);
	ck_assert_int_eq(store_run_find_by_key(st, "svc", "key-1", NULL, &id), 0);
	ck_assert_int_eq(id, a);
	ck_assert_int_eq(store_run_find_by_key(st, "nope", "key-1", NULL, &id), -ENOENT);
	c = create_run(st, "svc", "staging", NULL, 2, &existing);
	ck_assert(!existing);
	d = create_run(st, "svc", "staging", NULL, 2, &existing);
	ck_assert(!existing);
	ck_assert_int_ne(c, a);
	ck_assert_int_ne(d, c);

	ck_assert_int_eq(store_runs_list(st, &f, &items, &cursor), 0);
	ck_assert_uint_eq(json_array_size(items), 4);
	ck_assert_ptr_null(cursor);
	json_decref(items);
	/* The retry did not add probes to the first run either. */
	items = get_run(st, a);
	ck_assert_uint_eq(json_array_size(json_object_get(items, "probes")), 2);
	ck_assert_str_eq(json_string_value(json_object_get(items, "service")), "svc");
	json_decref(items);
	store_free(st);
}
END_TEST

START_TEST(test_pagination)
{
	struct store *st = conf_open(_i);
	static const size_t want_pages[] = {7, 7, 7, 4};
	struct store_filter f = {.limit = 7};
	int64_t ids[25], prev = INT64_MAX;
	char *cursor = NULL, *next;
	size_t seen = 0, page = 0;
	json_t *items, *it;
	size_t i;

	for (i = 0; i < 25; i++)
		ids[i] = create_run(st, "svc", "staging", NULL, 1, NULL);
	do {
		f.cursor = cursor;
		ck_assert_int_eq(store_runs_list(st, &f, &items, &next), 0);
		ck_assert_uint_lt(page, 4);
		ck_assert_uint_eq(json_array_size(items), want_pages[page]);
		json_array_foreach (items, i, it) {
			int64_t id = json_integer_value(json_object_get(it, "id"));

			/* Newest first, no duplicates, no skips. */
			ck_assert_int_eq(id, ids[24 - seen]);
			ck_assert_int_lt(id, prev);
			ck_assert_ptr_null(json_object_get(it, "probes"));
			ck_assert_str_eq(json_string_value(json_object_get(it, "state")), "queued");
			prev = id;
			seen++;
		}
		json_decref(items);
		free(cursor);
		cursor = next;
		page++;
	} while (cursor);
	ck_assert_uint_eq(seen, 25);
	ck_assert_uint_eq(page, 4);

	/* A page that ends exactly at the last run has no next cursor. */
	f.cursor = NULL;
	f.limit = 25;
	ck_assert_int_eq(store_runs_list(st, &f, &items, &next), 0);
	ck_assert_uint_eq(json_array_size(items), 25);
	ck_assert_ptr_null(next);
	json_decref(items);
	store_free(st);
}
END_TEST

static const struct {
	int limit;
	size_t want;
	bool want_cursor;
} limit_cases[] = {
        {-5, 1, true}, {0, 1, true}, {1, 1, true}, {1000, 3, false}, {1000000, 3, false},
};

START_TEST(test_limit_clamp)
{
	struct store *st = conf_open(_i);
	struct store_filter f = {.limit = limit_cases[_i / N_BACKENDS].limit, .cursor = ""};
	char *cursor = NULL;
	json_t *items;

	for (int i = 0; i < 3; i++)
		create_run(st, "svc", "staging", NULL, 0, NULL);
	ck_assert_int_eq(store_runs_list(st, &f, &items, &cursor), 0);
	ck_assert_uint_eq(json_array_size(items), limit_cases[_i / N_BACKENDS].want);
	ck_assert(!!cursor == limit_cases[_i / N_BACKENDS].want_cursor);
	free(cursor);
	json_decref(items);
	store_free(st);
}
END_TEST

static const char *const bad_cursors[] = {
        "abc", "12x", "-1", "0", " 5", "+5", "5 ", "0x10", "99999999999999999999", "1e3",
};

START_TEST(test_bad_cursor)
{
	struct store *st = conf_open(_i);
	struct store_filter f = {.limit = 10, .cursor = bad_cursors[_i / N_BACKENDS]};
	json_t *items = (json_t *)&f;
	char *cursor = (char *)&f;

	create_run(st, "svc", "staging", NULL, 0, NULL);
	ck_assert_int_eq(store_runs_list(st, &f, &items, &cursor), -EINVAL);
	/* Out-parameters are untouched on failure. */
	ck_assert_ptr_eq(items, (json_t *)&f);
	ck_assert_ptr_eq(cursor, (char *)&f);
	ck_assert_ptr_nonnull(strstr(store_errmsg(st), "cursor"));
	store_free(st);
}
END_TEST

/* Runs of the filter test: service, environment, final state. */
static const struct {
	const char *service, *env, *state;
} filter_runs[] = {
        {"a", "staging", "queued"}, {"a", "prod", "running"}, {"b", "staging", "passed"},
        {"a", "staging", "passed"}, {"b", "prod", "failed"},  {"a", "prod", "passed"},
};

static const struct {
	const char *service, *env, *state;
	unsigned want; /* bit i: filter_runs[i] is listed */
} filter_cases[] = {
        {NULL, NULL, NULL, 0x3f},       {"a", NULL, NULL, 0x2b},       {"b", NULL, NULL, 0x14},
        {NULL, "prod", NULL, 0x32},     {NULL, NULL, "passed", 0x2c},  {"a", "staging", NULL, 0x09},
        {"a", NULL, "passed", 0x28},    {"a", "prod", "passed", 0x20}, {"c", NULL, NULL, 0},
        {NULL, "staging", "failed", 0},
};

START_TEST(test_filters)
{
	struct store *st = conf_open(_i);
	int64_t ids[RD_ARRAY_SIZE(filter_runs)];

	for (size_t i = 0; i < RD_ARRAY_SIZE(filter_runs); i++) {
		ids[i] = create_run(st, filter_runs[i].service, filter_runs[i].env, NULL, 0, NULL);
		ck_assert_int_eq(
		        store_run_update(st, ids[i], filter_runs[i].state, NULL, 0, 0, NULL), 0);
	}
	for (size_t c = 0; c < RD_ARRAY_SIZE(filter_cases); c++) {
		struct store_filter f = {
		        .service = filter_cases[c].service,
		        .environment = filter_cases[c].env,
		        .state = filter_cases[c].state,
		        .limit = 100,
		};
		unsigned got = 0;
		char *cursor = NULL;
		json_t *items, *it;
		size_t k;

		ck_assert_int_eq(store_runs_list(st, &f, &items, &cursor), 0);
		json_array_foreach (items, k, it) {
			int64_t id = json_integer_value(json_object_get(it, "id"));

			for (size_t i = 0; i < RD_ARRAY_SIZE(filter_runs); i++)
				got |= ids[i] == id ? 1u << i : 0;
		}
		ck_assert_msg(got == filter_cases[c].want, "case %zu: got 0x%x want 0x%x", c, got,
		              filter_cases[c].want);
		ck_assert_uint_eq(json_array_size(items),
		                  (size_t)__builtin_popcount(filter_cases[c].want));
		ck_assert_ptr_null(cursor);
		json_decref(items);
	}
	store_free(st);
}
END_TEST

/* Services of the scope test, and token scopes (lib/policy/scope.h) to
 * list them through: whatever a backend does in its query, a page lists
 * exactly the runs scope_allows() allows, newest first, full pages. */
static const char *const scoped_services[] = {
        "team-a-api", "team-a-db", "team-b-api", "billing", "billing-v2", "caf\xc3\xa9-api",
        "x.y",        "xzy",       "a*b",        "aXb",     "Team-A-api", "]ops",
};

static const char *const scopes[] = {
        "team-a-*",
        "team-a-*\nbilling",
        "*-api",
        "team-?-api",
        "[!t]*",
        "[a-c]*",
        "b\\illing",
        "nomatch",
        "caf?-api",
        "caf?"
        "?-api",
        "[[:alpha:]]illing",
        "[]x]*",
        "[abc",
        "x.y",
        "a\\*b",
        "*",
        "Team-*",
        "\nbilling\n",
        "[z-a]*\nx?y",
};

/* Every page of f (limit, scope set by the caller): the ids in order. */
static size_t list_all(struct store *st, struct store_filter *f, int64_t *ids, size_t max)
{
	char *cursor = NULL, *next = NULL;
	size_t n = 0, i;
	json_t *items, *it;

	do {
		f->cursor = cursor;
		ck_assert_msg(store_runs_list(st, f, &items, &next) == 0, "%s", store_errmsg(st));
		/* Every page but the last is full. */
		ck_assert(!next || json_array_size(items) == (size_t)f->limit);
		json_array_foreach (items, i, it) {
			ck_assert_uint_lt(n, max);
			ids[n++] = json_integer_value(json_object_get(it, "id"));
		}
		json_decref(items);
		free(cursor);
		cursor = next;
	} while (cursor);
	return n;
}

/* The runs of svc[] (newest last) scope lets through, newest first, as
 * every limit pages them. */
static void check_scope(struct store *st, const char *scope, const char *const *svc,
                        const int64_t *ids, size_t n)
{
	static const int limits[] = {2, 5, 1000};
	int64_t want[64], got[64];
	size_t n_want = 0, n_got;

	ck_assert_uint_le(n, RD_ARRAY_SIZE(want));
	for (size_t i = n; i-- > 0;)
		if (scope_allows(scope, svc[i]))
			want[n_want++] = ids[i];
	for (size_t l = 0; l < RD_ARRAY_SIZE(limits); l++) {
		struct store_filter f = {.limit = limits[l], .scope = scope};

		n_got = list_all(st, &f, got, n);
		ck_assert_msg(n_got == n_want, "scope '%s' limit %d: %zu runs, want %zu", scope,
		              limits[l], n_got, n_want);
		for (size_t i = 0; i < n_got; i++)
			ck_assert_int_eq(got[i], want[i]);
	}
	/* With a service filter too: only what both allow. */
	struct store_filter f = {.limit = 2, .scope = scope, .service = "team-a-api"};

	n_got = list_all(st, &f, got, n);
	ck_assert_uint_eq(n_got, scope_allows(scope, "team-a-api") ? 3 : 0);
}

START_TEST(test_scope_filter)
{
	enum { N = 3 * RD_ARRAY_SIZE(scoped_services) };
	struct store *st = conf_open(_i);
	const char *svc[N];
	int64_t ids[N];

	for (size_t i = 0; i < N; i++) {
		svc[i] = scoped_services[i % RD_ARRAY_SIZE(scoped_services)];
		ids[i] = create_run(st, svc[i], "staging", NULL, 0, NULL);
	}
	for (size_t k = 0; k < RD_ARRAY_SIZE(scopes); k++)
		check_scope(st, scopes[k], svc, ids, N);
	store_free(st);
}
END_TEST

/* Two connections create runs with the same key at the same moment:
 * one run each time, which both answer. */
struct key_racer {
	struct store *st;
	pthread_barrier_t *start;
	int64_t ids[20];
	bool existing[20];
	int errors[20];
};

static void *key_race(void *arg)
{
	static const char *const names[] = {"latency", "tls"}, *const types[] = {"load", "tls"};
	struct key_racer *kr = arg;
	char key[32];

	for (int i = 0; i < (int)RD_ARRAY_SIZE(kr->ids); i++) {
		struct store_run_new rn = {
		        .service = "svc",
		        .version = "1",
		        .environment = "prod",
		        .idempotency_key = key,
		        .spec_json = "{}",
		        .probe_names = names,
		        .probe_types = types,
		        .n_probes = 2,
		        .created_at = T0,
		};
		int r, tries = 0;

		snprintf(key, sizeof(key), "race-%d", i);
		pthread_barrier_wait(kr->start);
		/* A busy database (SQLite's lock) is worth a retry. */
		do
			r = store_run_create(kr->st, &rn, &kr->ids[i], &kr->existing[i]);
		while ((r == -EBUSY || r == -EAGAIN) && ++tries < 200);
		kr->errors[i] = r;
	}
	return NULL;
}

START_TEST(test_idempotency_race)
{
	struct store *a = conf_open(_i), *b;
	struct key_racer ka = {.st = a}, kb;
	struct store_filter f = {.limit = 1000};
	pthread_barrier_t start;
	pthread_t ta, tb;
	char *cursor = NULL;
	json_t *items, *run;

	if (!conf_backend(_i)->persistent) {
		store_free(a);
		return;
	}
	b = conf_open(_i);
	kb = (struct key_racer){.st = b};
	pthread_barrier_init(&start, NULL, 2);
	ka.start = kb.start = &start;
	ck_assert_int_eq(pthread_create(&ta, NULL, key_race, &ka), 0);
	ck_assert_int_eq(pthread_create(&tb, NULL, key_race, &kb), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	pthread_barrier_destroy(&start);
	for (size_t i = 0; i < RD_ARRAY_SIZE(ka.ids); i++) {
		ck_assert_msg(ka.errors[i] == 0 && kb.errors[i] == 0, "key %zu: %d, %d", i,
		              ka.errors[i], kb.errors[i]);
		ck_assert_int_eq(ka.ids[i], kb.ids[i]);
		ck_assert(ka.existing[i] != kb.existing[i]);
	}
	ck_assert_int_eq(store_runs_list(a, &f, &items, &cursor), 0);
	ck_assert_uint_eq(json_array_size(items), RD_ARRAY_SIZE(ka.ids));
	json_decref(items);
	run = get_run(b, ka.ids[0]);
	ck_assert_uint_eq(json_array_size(json_object_get(run, "probes")), 2);
	json_decref(run);
	store_free(b);
	store_free(a);
}
END_TEST

struct held_create {
	struct store *st;
	int64_t id;
	bool existing;
	int r;
};

static void *held_create(void *arg)
{
	struct held_create *hc = arg;
	struct store_run_new rn = {.service = "svc",
	                           .version = "1",
	                           .environment = "prod",
	                           .idempotency_key = "held",
	                           .spec_json = "{}",
	                           .created_at = T0};

	hc->r = store_run_create(hc->st, &rn, &hc->id, &hc->existing);
	return NULL;
}

/* A create whose key another connection is storing at that moment waits
 * for it and answers that run, as a retry would. */
START_TEST(test_idempotency_key_held)
{
	const struct conf_backend *b = conf_backend(_i);
	struct store *st = conf_open(_i);
	struct held_create hc = {.st = st};
	int64_t id;

	if (b->key_held) {
		id = b->key_held(b->where(), held_create, &hc);
		ck_assert_msg(hc.r == 0, "%d: %s", hc.r, store_errmsg(st));
		ck_assert(hc.existing);
		ck_assert_int_eq(hc.id, id);
	}
	store_free(st);
}
END_TEST

/* Reads of runs leave the generation alone; every write that changed
 * something moves it; a write that changed nothing (a retried key) need
 * not. */
static void assert_moved(struct store *st, uint64_t *gen, bool want)
{
	uint64_t now = store_generation(st);

	ck_assert_msg((now != *gen) == want, "generation %s", want ? "stood" : "moved");
	*gen = now;
}

START_TEST(test_generation_runs)
{
	struct store *st = conf_open(_i);
	struct store_filter f = {.limit = 10};
	uint64_t gen = store_generation(st);
	int64_t id = create_run(st, "svc", "prod", "gen-key", 1, NULL), found = 0;
	json_t *items, *spec,
	        *gates = load(
	                "[{\"expr\": \"a.x < 1\", \"outcome\": \"pass\", \"reason\": \"ok\"}]");
	char *cursor = NULL, service[32];

	assert_moved(st, &gen, true);
	ck_assert_int_eq(store_runs_list(st, &f, &items, &cursor), 0);
	json_decref(items);
	ck_assert_int_eq(store_run_spec(st, id, &spec), 0);
	json_decref(spec);
	ck_assert_int_eq(store_run_service(st, id, service, sizeof(service)), 0);
	ck_assert_int_eq(store_run_find_by_key(st, "svc", "gen-key", NULL, &found), 0);
	assert_moved(st, &gen, false);
	ck_assert_int_eq(store_run_update(st, id, "running", NULL, T0 + 1, 0, NULL), 0);
	assert_moved(st, &gen, true);
	save_probe(st, id, 0, "{\"name\": \"latency\", \"type\": \"load\", \"state\": \"passed\"}");
	assert_moved(st, &gen, true);
	ck_assert_int_eq(store_judgement_save(st, id, gates, NULL), 0);
	assert_moved(st, &gen, true);
	ck_assert_int_eq(store_runs_interrupt_stale(st, T0 + 2), 1);
	assert_moved(st, &gen, true);
	json_decref(gates);
	store_free(st);
}
END_TEST

/* Probe objects store_probe_save must refuse, with the field it names. */
static const struct {
	const char *probe;
	const char *field;
} bad_probes[] = {
        {"[1, 2]", "probe"},
        {"{\"type\": \"load\", \"state\": \"passed\"}", "name"},
        {"{\"name\": \"x\", \"state\": \"passed\"}", "type"},
        {"{\"name\": \"x\", \"type\": \"load\", \"state\": 3}", "state"},
        {"{\"name\": \"x\", \"type\": \"load\", \"state\": \"passed\", \"started_at\": \"now\"}",
         "started_at"},
        {"{\"name\": \"x\", \"type\": \"load\", \"state\": \"passed\", \"finished_at\": -5}",
         "finished_at"},
        {"{\"name\": \"x\", \"type\": \"load\", \"state\": \"passed\", \"metrics\": [1]}",
         "metrics"},
        {"{\"name\": \"x\", \"type\": \"load\", \"state\": \"passed\", "
         "\"metrics\": {\"p95_ms\": \"fast\"}}",
         "metrics"},
        {"{\"name\": \"x\", \"type\": \"load\", \"state\": \"passed\", \"error\": 1}", "error"},
        {"{\"name\": \"x\", \"type\": \"load\", \"state\": \"bogus\"}", NULL}, /* check_words */
};

START_TEST(test_probe_invalid)
{
	struct store *st = conf_open(_i);
	int64_t id = create_run(st, "svc", "staging", NULL, 1, NULL);
	json_t *p = load(bad_probes[_i / N_BACKENDS].probe), *run;
	const char *want = bad_probes[_i / N_BACKENDS].field;

	if (!want)
		want = conf_backend(_i)->check_words;

	ck_assert_int_eq(store_probe_save(st, id, 0, p), -EINVAL);
	ck_assert_msg(strstr(store_errmsg(st), want), "'%s' lacks '%s'", store_errmsg(st), want);
	json_decref(p);
	run = get_run(st, id);
	ck_assert_str_eq(json_string_value(json_object_get(
	                         json_array_get(json_object_get(run, "probes"), 0), "state")),
	                 "queued");
	json_decref(run);
	store_free(st);
}
END_TEST

/* ---- Judgement ----------------------------------------------------- */

/* Saves a checklist of the items in the JSON array items_json, expecting
 * r, then reads the items back: they must be want (space-separated). */
static void check_order(struct store *st, int64_t id, const char *items_json, int r,
                        const char *want)
{
	json_t *items = load(items_json), *list = json_array(), *run, *it;
	char got[256] = "";
	size_t i, len = 0;

	json_array_foreach (items, i, it)
		json_array_append_new(list,
		                      json_pack("{s:O, s:b, s:s, s:s}", "item", it, "required", 0,
		                                "outcome", "pass", "reason", "ok"));
	ck_assert_int_eq(store_judgement_save(st, id, NULL, list), r);
	run = get_run(st, id);
	json_array_foreach (json_object_get(run, "checklist"), i, it)
		len += (size_t)snprintf(got + len, sizeof(got) - len, "%s%s", i ? " " : "",
		                        json_string_value(json_object_get(it, "item")));
	ck_assert_str_eq(got, want);
	json_decref(run);
	json_decref(list);
	json_decref(items);
}

START_TEST(test_judgement_replace)
{
	struct store *st = conf_open(_i);
	int64_t id = create_run(st, "svc", "staging", NULL, 0, NULL);
	json_t *g1, *g2, *bad, *c1, *run;

	g1 = load("[{\"expr\": \"a.x < 1\", \"outcome\": \"error\", \"reason\": \"no data\"},"
	          " {\"expr\": \"a.y < 1\", \"value\": 0.5, \"threshold\": 1, \"outcome\": "
	          "\"pass\", \"reason\": \"0.5 < 1\"}]");
	g2 = load("[{\"expr\": \"a.z >= 3\", \"metric\": \"a.z\", \"op\": \">=\", "
	          "\"threshold\": 3, \"value\": 2, \"samples\": null, \"baseline\": null, "
	          "\"baseline_run\": null, \"advisory\": false, \"outcome\": \"fail\", "
	          "\"reason\": \"2 >= 3 does not hold\"}]");
	bad = load("[{\"expr\": \"a.q < 1\", \"outcome\": \"pass\", \"reason\": \"ok\"},"
	           " {\"expr\": \"a.r < 1\", \"reason\": \"no outcome\"}]");
	c1 = load("[{\"item\": \"runbook\", \"required\": true, \"evidence\": \"https://x\", "
	          "\"outcome\": \"pass\", \"reason\": \"evidence given\"}]");

	ck_assert_int_eq(store_judgement_save(st, id, g1, c1), 0);
	ck_assert_int_eq(store_judgement_save(st, id, g2, NULL), 0);
	/* A bad entry anywhere changes nothing. */
	ck_assert_int_eq(store_judgement_save(st, id, bad, NULL), -EINVAL);
	ck_assert_ptr_nonnull(strstr(store_errmsg(st), "outcome"));
	ck_assert_int_eq(store_judgement_save(st, id, NULL, NULL), 0);
	ck_assert_int_eq(store_judgement_save(st, id + 100, g1, NULL), -ENOENT);
	/* A missing run is reported before what is wrong with the entries. */
	ck_assert_int_eq(store_judgement_save(st, id + 100, bad, NULL), -ENOENT);

	run = get_run(st, id);
	assert_json_eq(json_object_get(run, "gates"),
	               "[{\"expr\": \"a.z >= 3\", \"metric\": \"a.z\", \"op\": \">=\", "
	               "\"threshold\": 3.0, \"value\": 2.0, \"samples\": null, "
	               "\"baseline\": null, \"baseline_run\": null, \"advisory\": false, "
	               "\"outcome\": \"fail\", \"reason\": \"2 >= 3 does not hold\", "
	               "\"waiver\": null}]");
	assert_json_eq(json_object_get(run, "checklist"),
	               "[{\"item\": \"runbook\", \"required\": true, \"evidence\": "
	               "\"https://x\", \"outcome\": \"pass\", \"reason\": \"evidence given\"}]");
	json_decref(run);

	/* Checklist items come back in the order of the last save; an item
	 * listed twice is refused and changes nothing. */
	check_order(st, id, "[\"zeta\", \"alpha\", \"runbook\"]", 0, "zeta alpha runbook");
	check_order(st, id, "[\"runbook\", \"mid\", \"zeta\"]", 0, "runbook mid zeta");
	check_order(st, id, "[\"a\", \"b\", \"a\"]", -EEXIST, "runbook mid zeta");

	/* An empty array clears. */
	json_decref(g2);
	g2 = json_array();
	ck_assert_int_eq(store_judgement_save(st, id, NULL, g2), 0);
	run = get_run(st, id);
	ck_assert_uint_eq(json_array_size(json_object_get(run, "checklist")), 0);
	ck_assert_uint_eq(json_array_size(json_object_get(run, "gates")), 1);
	json_decref(run);

	json_decref(g1);
	json_decref(g2);
	json_decref(bad);
	json_decref(c1);
	store_free(st);
}
END_TEST

/* ---- Recovery ------------------------------------------------------ */

/* The running run of test_interrupt_stale after start-up recovery. */
static const char interrupted_run[] =
        "{\"invalidated\": null, \"rejudgements\": [], \"changes\": [], " /* 0003, 0004 */
        "\"spec_version\": null, "                                        /* 0006 */
        "\"node\": null, "                                                /* 0008 */
        "\"service\": \"svc\", \"version\": \"2.4.0\", \"environment\": "
        "\"staging\", \"state\": \"interrupted\", \"verdict\": null, "
        "\"submitted_by\": \"ci-pipeline\", "
        "\"created_at\": \"2026-11-26T13:40:02.114Z\", "
        "\"started_at\": \"2026-11-26T13:40:02.115Z\", "
        "\"finished_at\": \"2026-11-26T14:40:02.114Z\", "
        "\"error\": \"readyd stopped while the run was running; results measured "
        "so far are kept\", "
        "\"probes\": ["
        " {\"name\": \"latency\", \"type\": \"load\", \"state\": \"passed\", "
        "  \"started_at\": \"2026-11-26T13:40:02.115Z\", "
        "  \"finished_at\": \"2026-11-26T13:40:03.000Z\", "
        "  \"metrics\": {\"p95_ms\": 12.5}, \"details\": null, \"error\": null},"
        " {\"name\": \"alert-rules\", \"type\": \"prometheus-rules\", "
        "  \"state\": \"interrupted\", "
        "  \"started_at\": \"2026-11-26T13:40:03.000Z\", "
        "  \"finished_at\": \"2026-11-26T14:40:02.114Z\", "
        "  \"metrics\": {\"rules\": 2}, \"details\": null, "
        "  \"error\": \"readyd stopped while the probe was running\"},"
        " {\"name\": \"tls\", \"type\": \"tls\", \"state\": \"interrupted\", "
        "  \"started_at\": null, \"finished_at\": null, \"metrics\": {}, "
        "  \"details\": null, "
        "  \"error\": \"readyd stopped while the probe was queued\"}], "
        "\"gates\": [], \"checklist\": []}";

START_TEST(test_interrupt_stale)
{
	struct store *st = conf_open(_i);
	int64_t running = create_run(st, "svc", "staging", NULL, 3, NULL);
	int64_t queued = create_run(st, "svc", "staging", NULL, 1, NULL);
	int64_t done = create_run(st, "svc", "staging", NULL, 1, NULL);
	int64_t now = T0 + 3600000;
	json_t *run;

	ck_assert_int_eq(store_run_update(st, running, "running", NULL, T0 + 1, 0, NULL), 0);
	save_probe(st, running, 0,
	           "{\"name\": \"latency\", \"type\": \"load\", \"state\": \"passed\", "
	           "\"started_at\": 1795700402115, \"finished_at\": 1795700403000, "
	           "\"metrics\": {\"p95_ms\": 12.5}}");
	save_probe(st, running, 1,
	           "{\"name\": \"alert-rules\", \"type\": \"prometheus-rules\", "
	           "\"state\": \"running\", \"started_at\": 1795700403000, "
	           "\"metrics\": {\"rules\": 2}}");
	ck_assert_int_eq(store_run_update(st, done, "passed", "PASS", T0 + 1, T0 + 2, NULL), 0);

	ck_assert_int_eq(store_runs_interrupt_stale(st, now), 2);

	run = get_run(st, running);
	json_object_del(run, "id");
	assert_json_eq(run, interrupted_run);
	json_decref(run);

	run = get_run(st, queued);
	ck_assert_str_eq(json_string_value(json_object_get(run, "state")), "interrupted");
	ck_assert_str_eq(json_string_value(json_object_get(run, "error")),
	                 "readyd stopped while the run was queued; results measured so far are "
	                 "kept");
	json_decref(run);
	run = get_run(st, done);
	ck_assert_str_eq(json_string_value(json_object_get(run, "state")), "passed");
	ck_assert(json_is_null(json_object_get(run, "error")));
	json_decref(run);

	/* What was measured before the interruption stays. */
	if (conf_backend(_i)->count_metric)
		ck_assert_int_eq(
		        conf_backend(_i)->count_metric(conf_backend(_i)->where(), "p95_ms", 12.5),
		        1);
	ck_assert_int_eq(store_runs_interrupt_stale(st, now + 1), 0);
	store_free(st);
}
END_TEST

/* ---- Read-only connections ----------------------------------------- */
/* ---- Errors -------------------------------------------------------- */

START_TEST(test_not_found_and_invalid)
{
	struct store *st = conf_open(_i);
	int64_t id = create_run(st, "svc", "staging", NULL, 1, NULL);
	json_t *out = NULL, *p = load("{\"name\": \"latency\", \"type\": \"load\", "
	                              "\"state\": \"passed\"}");
	struct store_run_new rn = {.service = "s", .version = "1", .spec_json = "{}"};
	int64_t new_id = 0;

	ck_assert_int_eq(store_run_get(st, id + 1, &out), -ENOENT);
	ck_assert_int_eq(store_run_spec(st, id + 1, &out), -ENOENT);
	ck_assert_ptr_null(out);
	ck_assert_int_eq(store_run_update(st, id + 1, "running", NULL, 0, 0, NULL), -ENOENT);
	ck_assert_int_eq(store_probe_save(st, id + 1, 0, p), -ENOENT);
	ck_assert_int_eq(store_run_update(st, id, "bogus", NULL, 0, 0, NULL), -EINVAL);
	ck_assert_ptr_nonnull(strstr(store_errmsg(st), conf_backend(_i)->check_words));
	ck_assert_int_eq(store_run_update(st, id, "failed", "MAYBE", 0, 0, NULL), -EINVAL);
	ck_assert_int_eq(store_run_update(st, id, NULL, NULL, 0, 0, NULL), -EINVAL);
	ck_assert_int_eq(store_run_create(st, &rn, &new_id, NULL), -EINVAL); /* environment */
	ck_assert_int_eq(new_id, 0);
	json_decref(p);
	store_free(st);
}
END_TEST

/* An error text quoting bytes a target sent must not make the run
 * unreadable: invalid UTF-8 comes back with '?' in place. */
START_TEST(test_invalid_utf8_error)
{
	struct store *st = conf_open(_i);
	int64_t id = create_run(st, "svc", "staging", NULL, 0, NULL);
	json_t *run;

	ck_assert_int_eq(store_run_update(st, id, "error", "ERROR", 0, T0 + 1,
	                                  "bad reply: \xff\xfe caf\xc3\xa9 \xe2\x82"),
	                 0);
	run = get_run(st, id);
	ck_assert_str_eq(json_string_value(json_object_get(run, "error")),
	                 "bad reply: ?? caf\xc3\xa9 ??");
	json_decref(run);
	store_free(st);
}
END_TEST

/* A probe's text carries a target's bytes: an error with invalid UTF-8
 * or a NUL, details with a NUL. Saving must not fail the probe, and the
 * run reads back whole; a metric named with a NUL is refused, not a crash. */
static void save_hostile(struct store *st, int64_t id, size_t idx, const char *what)
{
	json_t *p = json_pack("{s:s, s:s, s:s, s:I, s:I}", "name", what, "type", "http", "state",
	                      "failed", "started_at", (json_int_t)T0, "finished_at",
	                      (json_int_t)T0 + 1);
	json_t *m = json_object();

	if (!strcmp(what, "error"))
		json_object_set_new(p, "error", json_string_nocheck("bad \xff\xfe reply"));
	if (!strcmp(what, "nul_error"))
		json_object_set_new(p, "error", json_stringn("a\0b", 3));
	if (!strcmp(what, "nul_details"))
		json_object_set_new(p, "details",
		                    json_pack("{s:o}", "body", json_stringn("a\0b", 3)));
	if (!strcmp(what, "nul_metric"))
		json_object_setn_new(m, "p\0x", 3, json_real(1.5));
	json_object_set_new(m, "ok", json_integer(1));
	json_object_set_new(p, "metrics", m);
	/* No JSON text can name that metric: refused, not a crash. */
	if (!strcmp(what, "nul_metric"))
		ck_assert_int_lt(store_probe_save(st, id, idx, p), 0);
	else
		ck_assert_msg(store_probe_save(st, id, idx, p) == 0, "%s: %s", what,
		              store_errmsg(st));
	json_decref(p);
}

START_TEST(test_probe_hostile_bytes)
{
	static const char *const what[] = {"error", "nul_error", "nul_details", "nul_metric"};
	struct store *st = conf_open(_i);
	int64_t id = create_run(st, "svc", "staging", NULL, 0, NULL);
	json_t *run, *probes, *body;

	for (size_t i = 0; i < sizeof(what) / sizeof(what[0]); i++)
		save_hostile(st, id, i, what[i]);
	run = get_run(st, id);
	probes = json_object_get(run, "probes");
	ck_assert_uint_eq(json_array_size(probes), 3);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(probes, 0), "error")),
	                 "bad ?? reply");
	/* A NUL ends a C string; in details it is JSON's \u0000 and
	 * reads back whole. */
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(probes, 1), "error")),
	                 "a");
	body = json_object_get(json_object_get(json_array_get(probes, 2), "details"), "body");
	ck_assert_uint_eq(json_string_length(body), 3);
	ck_assert_mem_eq(json_string_value(body), "a\0b", 3);
	json_decref(run);
	store_free(st);
}
END_TEST

/* ---- A server that stops answering ---------------------------------- */

/* A TCP relay in front of the cluster that can go silent, as a server
 * behind a network partition does: it stops relaying and takes no new
 * connection (its backlog is full, so a connect waits for the kernel's
 * SYN retries rather than being refused). */
struct relay {
	int listen_fd, port, upstream_port;
	int fill[4];
	volatile bool silent, stop;
	pthread_t thread;
};

static void relay_pump(struct relay *rl, int a, int b)
{
	struct pollfd p[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
	char buf[8192];

	while (!rl->stop) {
		if (poll(p, 2, 50) <= 0 || rl->silent)
			continue;
		for (int i = 0; i < 2; i++) {
			ssize_t n = (p[i].revents & (POLLIN | POLLHUP))
			                    ? read(p[i].fd, buf, sizeof(buf))
			                    : 0;

			if (n > 0 && write(p[1 - i].fd, buf, (size_t)n) != n)
				return;
			if ((p[i].revents & (POLLIN | POLLHUP)) && n <= 0)
				return;
		}
	}
}

static void *relay_run(void *arg)
{
	struct relay *rl = arg;
	struct sockaddr_in up = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)rl->upstream_port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int c = accept(rl->listen_fd, NULL, NULL), u = socket(AF_INET, SOCK_STREAM, 0);

	if (c >= 0 && u >= 0 && connect(u, (struct sockaddr *)&up, sizeof(up)) == 0)
		relay_pump(rl, c, u);
	close(c);
	close(u);
	return NULL;
}

/* The port of "@host:port/..." (at to slash). */
static int url_port(const char *at, const char *slash)
{
	const char *colon = memchr(at, ':', (size_t)(slash - at));
	long port = colon ? strtol(colon + 1, NULL, 10) : 5432;

	ck_assert_int_gt(port, 0);
	return (int)port;
}

static void relay_start(struct relay *rl, int upstream_port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);

	memset(rl, 0, sizeof(*rl));
	rl->upstream_port = upstream_port;
	rl->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(rl->listen_fd, 0);
	ck_assert_int_eq(bind(rl->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(rl->listen_fd, 0), 0);
	ck_assert_int_eq(getsockname(rl->listen_fd, (struct sockaddr *)&a, &len), 0);
	rl->port = ntohs(a.sin_port);
	ck_assert_int_eq(pthread_create(&rl->thread, NULL, relay_run, rl), 0);
}

/* Silent from now on: nothing relayed, the backlog filled. */
static void relay_silence(struct relay *rl)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)rl->port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

	rl->silent = true;
	for (size_t i = 0; i < RD_ARRAY_SIZE(rl->fill); i++) {
		rl->fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		(void)connect(rl->fill[i], (struct sockaddr *)&a, sizeof(a));
	}
}

static void relay_stop(struct relay *rl)
{
	rl->stop = true;
	pthread_join(rl->thread, NULL);
	for (size_t i = 0; i < RD_ARRAY_SIZE(rl->fill); i++)
		close(rl->fill[i]);
	close(rl->listen_fd);
}

/* A query to a server gone silent ends at the deadline with -ETIMEDOUT:
 * giving the connection up must not wait on that server again (a
 * cancel request is a new connection to it, which would block until
 * the kernel gives up on the SYN, minutes later). */
START_TEST(test_pg_silent_server_deadline)
{
	const char *url = getenv("READYD_TEST_PG_URL") ? pg_where() : "", *at = strchr(url, '@'),
	           *slash;
	char relayed[2048];
	struct relay rl;
	struct store *st = NULL;
	char err[256] = "";
	int64_t id;
	json_t *run = NULL;

	if (!getenv("READYD_TEST_PG_URL"))
		return;
	ck_assert_ptr_nonnull(at);
	slash = strchr(at, '/');
	ck_assert_ptr_nonnull(slash);
	relay_start(&rl, url_port(at, slash));
	snprintf(relayed, sizeof(relayed), "%.*s@127.0.0.1:%d%s", (int)(at - url), url, rl.port,
	         slash);
	ck_assert_msg(store_open(relayed, &st, err, sizeof(err)) == 0, "%s", err);
	id = create_run(st, "svc", "staging", NULL, 0, NULL);
	relay_silence(&rl);
	ck_assert_int_eq(store_run_get(st, id, &run), -ETIMEDOUT);
	ck_assert_ptr_null(run);
	store_free(st);
	relay_stop(&rl);
}
END_TEST

/* ---- History, trends, load measurements ---------------------------- */

/* Replaces run's probe metrics with p95_ms measured on requests, errors. */
static void set_counts(struct store *st, int64_t run, double p95, int requests, int errors)
{
	json_t *p = json_pack("{s:s, s:s, s:s, s:I, s:I, s:{s:f, s:i, s:i}}", "name", "latency",
	                      "type", "load", "state", "passed", "started_at", (json_int_t)T0,
	                      "finished_at", (json_int_t)T0 + 1000, "metrics", "p95_ms", p95,
	                      "requests", requests, "errors", errors);

	ck_assert_int_eq(store_probe_save(st, run, 0, p), 0);
	json_decref(p);
}

/* A baseline rests on the floor, counted as the gate counts. */
START_TEST(test_baseline_floor)
{
	struct store *st = conf_open(_i);
	int64_t a = add_run(st, "svc", "staging", "1", "passed", 50, T0);
	int64_t b = add_run(st, "svc", "staging", "2", "passed", 9, T0 + 60000);
	int64_t c = add_run(st, "svc", "staging", "3", "passed", 8, T0 + 120000);
	struct store_baseline_want w = {"svc", "staging", "latency", "p95_ms", 0, 200, true};
	struct store_baseline_got got;

	set_counts(st, a, 50, 400, 0);
	set_counts(st, b, 9, 2000, 1983); /* 17 successes */
	set_counts(st, c, 8, 250, 100);   /* 150 successes, 250 requests */
	ck_assert_int_eq(store_baseline_find(st, &w, &got), 0);
	ck_assert_int_eq(got.run_id, a);
	ck_assert_double_eq(got.value, 50);
	ck_assert_int_eq(got.skipped, 2);
	ck_assert_int_eq(got.skipped_newest, c);
	/* Counting every request (not a latency metric): c has 250. */
	w.successes = false;
	ck_assert_int_eq(store_baseline_find(st, &w, &got), 0);
	ck_assert_int_eq(got.run_id, c);
	ck_assert_int_eq(got.skipped, 0);
	/* No floor: the newest. */
	w.min_samples = 0;
	ck_assert_int_eq(store_baseline_find(st, &w, &got), 0);
	ck_assert_int_eq(got.run_id, c);
	/* None enough: -ENOENT, and how many were passed over. */
	w.min_samples = 1000;
	w.successes = true;
	ck_assert_int_eq(store_baseline_find(st, &w, &got), -ENOENT);
	ck_assert_int_eq(got.skipped, 3);
	ck_assert_int_eq(got.skipped_newest, c);
	store_free(st);
}
END_TEST

START_TEST(test_baseline_skips_invalidated)
{
	struct store *st = conf_open(_i);
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

START_TEST(test_waiver_errors)
{
	struct store *st = conf_open(_i);
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

/* The generation moves with every write (the API serves kept answers
 * while it stands still) and never on a read; a reader connection sees
 * what was written before it opened, and what is written after. */
START_TEST(test_generation_and_reader)
{
	const struct conf_backend *b = conf_backend(_i);
	struct store *st = conf_open(_i), *rd = NULL;
	json_t *items = NULL;
	char err[256] = "";
	uint64_t g0, g1;
	int64_t id;
	int r;

	g0 = store_generation(st);
	id = add_run(st, "gen", "prod", "1", "passed", 1, T0);
	g1 = store_generation(st);
	ck_assert_uint_ne(g1, g0);
	ck_assert_int_eq(store_gates_latest(st, &items), 0);
	json_decref(items);
	ck_assert_uint_eq(store_generation(st), g1);
	ck_assert_int_eq(store_run_invalidate(st, id, "wrong target", T0), 0);
	ck_assert_uint_ne(store_generation(st), g1);
	g1 = store_generation(st);
	r = store_reader_open(st, &rd, err, sizeof(err));
	if (!b->persistent) {
		ck_assert_int_eq(r, -ENOTSUP);
		ck_assert_ptr_null(rd);
		store_free(st);
		return;
	}
	ck_assert_msg(r == 0, "store_reader_open = %d: %s", r, err);
	ck_assert_int_eq(store_gates_latest(rd, &items), 0);
	ck_assert_int_eq(json_array_size(items), 0); /* the only run is invalidated */
	json_decref(items);
	add_run(st, "gen", "prod", "2", "passed", 1, T0 + 1);
	ck_assert_int_eq(store_gates_latest(rd, &items), 0);
	ck_assert_int_eq(json_array_size(items), 1);
	json_decref(items);
	ck_assert_int_lt(add_run_fails_on_reader(rd), 0);
	ck_assert_uint_ne(store_generation(st), g1);
	store_free(rd);
	store_free(st);
}
END_TEST

START_TEST(test_gates_latest)
{
	struct store *st = conf_open(_i);
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
	/* The answer is kept between writes, never across one. */
	ck_assert_int_eq(store_run_invalidate(st, b2, "wrong target", T0), 0);
	ck_assert_int_eq(store_gates_latest(st, &items), 0);
	it = json_array_get(items, 2);
	ck_assert_str_eq(json_string_value(json_object_get(it, "version")), "1");
	json_decref(items);
	b2 = add_run(st, "b", "prod", "4", "error", 1, T0 + 3000);
	ck_assert_int_eq(store_gates_latest(st, &items), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(items, 2), "run_id")),
	                 b2);
	json_decref(items);
	store_free(st);
}
END_TEST

START_TEST(test_trend_points)
{
	struct store *st = conf_open(_i);
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
	struct store *st = conf_open(_i);
	int64_t ids[RD_ARRAY_SIZE(bucket_runs)];
	struct store_trend_query q = {"svc",
	                              "latency",
	                              "p95_ms",
	                              bucket_cases[_i / N_BACKENDS].env,
	                              bucket_cases[_i / N_BACKENDS].since,
	                              INT64_MAX,
	                              bucket_cases[_i / N_BACKENDS].limit,
	                              bucket_cases[_i / N_BACKENDS].step};
	json_t *pts = NULL;
	bool truncated = !bucket_cases[_i / N_BACKENDS].truncated;

	for (size_t i = 0; i < RD_ARRAY_SIZE(bucket_runs); i++) {
		ids[i] = add_run(st, "svc", bucket_runs[i].env, bucket_runs[i].version,
		                 bucket_runs[i].state, bucket_runs[i].value, bucket_runs[i].at);
		if (bucket_runs[i].invalid)
			ck_assert_int_eq(store_run_invalidate(st, ids[i], "bad", T0 + DAY), 0);
	}
	add_run(st, "other", "staging", "x", "passed", 1000, H0); /* another service */
	ck_assert_int_eq(store_trend(st, &q, &pts, &truncated), 0);
	ck_assert_msg(json_array_size(pts) == bucket_cases[_i / N_BACKENDS].n, "%s: %zu buckets",
	              bucket_cases[_i / N_BACKENDS].name, json_array_size(pts));
	ck_assert(truncated == bucket_cases[_i / N_BACKENDS].truncated);
	for (size_t k = 0; k < 2; k++) {
		const struct bucket_want *w = &bucket_cases[_i / N_BACKENDS].want[k];

		assert_bucket(json_array_get(pts, w->idx), w, ids);
	}
	json_decref(pts);
	store_free(st);
}
END_TEST

START_TEST(test_trend_bucket_bounds)
{
	struct store *st = conf_open(_i);
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

/* Buckets of extreme values: an average whose squares would overflow,
 * and one whose sum does (null, as any non-finite number). */
START_TEST(test_trend_bucket_extremes)
{
	struct store *st = conf_open(_i);
	struct store_trend_query q = {"svc", "latency", "p95_ms", "staging",
	                              0,     INT64_MAX, 100,      HOUR};
	bool truncated = true;
	json_t *pts = NULL, *b;

	add_run(st, "svc", "staging", "1", "passed", 1e300, H0);
	add_run(st, "svc", "staging", "2", "passed", 1e-7, H0 + 60000);
	add_run(st, "svc", "staging", "3", "passed", 1.5e308, H0 + HOUR);
	add_run(st, "svc", "staging", "4", "passed", 1.5e308, H0 + HOUR + 60000);
	ck_assert_int_eq(store_trend(st, &q, &pts, &truncated), 0);
	ck_assert_uint_eq(json_array_size(pts), 2);
	b = json_array_get(pts, 0);
	ck_assert_double_eq(json_number_value(json_object_get(b, "avg")), 5e299);
	ck_assert_double_eq(json_number_value(json_object_get(b, "min")), 1e-7);
	b = json_array_get(pts, 1);
	ck_assert(json_is_null(json_object_get(b, "avg")));
	ck_assert_double_eq(json_number_value(json_object_get(b, "max")), 1.5e308);
	json_decref(pts);
	store_free(st);
}
END_TEST

START_TEST(test_history_pages)
{
	struct store *st = conf_open(_i);
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
	struct store *st = conf_open(_i);
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
	struct store *st = conf_open(_i);
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

/* The scheduler stores a load probe's histograms and timeline; the
 * bytes come back unchanged and go with their run. */
START_TEST(test_load_roundtrip)
{
	const char *names[] = {"latency"}, *types[] = {"load"};
	struct store_run_new rn = {.service = "s",
	                           .version = "1",
	                           .environment = "e",
	                           .spec_json = "{}",
	                           .probe_names = names,
	                           .probe_types = types,
	                           .n_probes = 1,
	                           .created_at = 1};
	const uint8_t bytes[] = {'R', 'D', 'H', 'G', 0, 1, 2, 255};
	json_t *tl = json_pack("[{s:i, s:i, s:i, s:f, s:n}]", "second", 0, "requests", 5, "errors",
	                       1, "p50_ms", 1.5, "p99_ms"),
	       *got;
	struct store *st = conf_open(_i);
	int64_t id;
	bool existing;
	void *data = NULL;
	size_t len = 0;

	ck_assert_int_eq(store_run_create(st, &rn, &id, &existing), 0);
	ck_assert_int_eq(store_probe_blob_save(st, id, 0, "latency", bytes, sizeof(bytes)), 0);
	ck_assert_int_eq(store_probe_blob_get(st, id, 0, "latency", &data, &len), 0);
	ck_assert_uint_eq(len, sizeof(bytes));
	ck_assert_mem_eq(data, bytes, len);
	free(data);
	ck_assert_int_eq(store_probe_blob_get(st, id, 0, "failed", &data, &len), -ENOENT);
	ck_assert_int_eq(store_probe_blob_save(st, id, 0, "bogus", bytes, 1), -EINVAL);
	ck_assert_int_lt(store_probe_blob_save(st, id + 1, 0, "latency", bytes, 1), 0);
	ck_assert_int_eq(store_probe_timeline_save(st, id, 0, tl), 0);
	ck_assert_int_eq(store_probe_timeline_get(st, id, 0, &got), 0);
	ck_assert_uint_eq(json_array_size(got), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(got, 0), "requests")),
	                 5);
	ck_assert(json_is_null(json_object_get(json_array_get(got, 0), "p99_ms")));
	json_decref(got);
	json_decref(tl);
	store_free(st);
}
END_TEST

/* The whole JSON of the history operations, key order included (what the
 * API serves is this text): every backend writes the same bytes. */
static void assert_json_text(json_t *got, const char *want)
{
	char *text = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);

	ck_assert_ptr_nonnull(text);
	ck_assert_str_eq(text, want);
	free(text);
}

START_TEST(test_history_json)
{
	struct store *st = conf_open(_i);
	struct store_history_filter f = {"svc", NULL, NULL, NULL, 10};
	struct store_trend_query q = {"svc", "latency", "p95_ms", NULL, 0, INT64_MAX, 100, 0};
	struct store_waiver_new w = {"svc", NULL,    "latency.p95_ms < 10", "slow", "alice", NULL,
	                             T0,    T0 + DAY};
	json_t *gates = json_pack("[{s:s}]", "outcome", "pass"), *v = NULL;
	bool truncated = true;
	char *next = NULL;
	int64_t seq = 0, wid = 0;

	ck_assert_int_eq(add_run(st, "svc", "staging", "1", "passed", 12.5, T0), 1);
	ck_assert_int_eq(add_run(st, "svc", "prod", "2", "failed", 7, T0 + 60000), 2);
	ck_assert_int_eq(add_run(st, "svc", "staging", "3", "passed", 20, T0 + 120000), 3);
	ck_assert_int_eq(store_run_invalidate(st, 3, "bad", T0 + DAY), 0);
	ck_assert_int_eq(store_rejudgement_add(st, 1, gates, "FAIL", NULL, T0 + DAY, &seq), 0);
	ck_assert_int_eq(store_waiver_create(st, &w, &wid), 0);

	ck_assert_int_eq(store_gates_latest(st, &v), 0);
	assert_json_text(v, "[{\"service\":\"svc\",\"environment\":\"prod\",\"verdict\":\"FAIL\","
	                    "\"run_id\":2,\"version\":\"2\","
	                    "\"finished_at\":\"2026-11-26T13:41:03.114Z\"},"
	                    "{\"service\":\"svc\",\"environment\":\"staging\",\"verdict\":\"PASS\","
	                    "\"run_id\":1,\"version\":\"1\","
	                    "\"finished_at\":\"2026-11-26T13:40:03.114Z\"}]");
	json_decref(v);
	f.limit = 1;
	ck_assert_int_eq(store_history(st, &f, &v, &next), 0);
	assert_json_text(v, "[{\"run_id\":3,\"version\":\"3\",\"environment\":\"staging\","
	                    "\"state\":\"passed\",\"verdict\":\"PASS\","
	                    "\"created_at\":\"2026-11-26T13:42:02.114Z\","
	                    "\"finished_at\":\"2026-11-26T13:42:03.114Z\","
	                    "\"invalidated_at\":\"2026-11-27T13:40:02.114Z\","
	                    "\"spec_version\":null}]");
	ck_assert_str_eq(next, "3");
	free(next);
	json_decref(v);
	ck_assert_int_eq(store_trend(st, &q, &v, &truncated), 0);
	assert_json_text(v, "[{\"run_id\":1,\"time\":\"2026-11-26T13:40:03.114Z\","
	                    "\"version\":\"1\",\"value\":12.5,\"verdict\":\"PASS\","
	                    "\"environment\":\"staging\"},"
	                    "{\"run_id\":2,\"time\":\"2026-11-26T13:41:03.114Z\","
	                    "\"version\":\"2\",\"value\":7.0,\"verdict\":\"FAIL\","
	                    "\"environment\":\"prod\"}]");
	json_decref(v);
	q.step_ms = DAY;
	ck_assert_int_eq(store_trend(st, &q, &v, &truncated), 0);
	assert_json_text(v, "[{\"t\":\"2026-11-26T00:00:00.000Z\",\"runs\":2,\"min\":7.0,"
	                    "\"max\":12.5,\"avg\":9.75,\"last\":7.0,\"last_run_id\":2,"
	                    "\"last_version\":\"2\"}]");
	json_decref(v);
	ck_assert_int_eq(store_waivers_list(st, "svc", T0 + 1, &v), 0);
	assert_json_text(v, "[{\"id\":1,\"service\":\"svc\",\"environment\":null,"
	                    "\"expr\":\"latency.p95_ms < 10\",\"reason\":\"slow\","
	                    "\"approver\":\"alice\",\"created_by\":null,"
	                    "\"created_at\":\"2026-11-26T13:40:02.114Z\","
	                    "\"expires_at\":\"2026-11-27T13:40:02.114Z\",\"revoked_at\":null,"
	                    "\"active\":true,\"expired\":false}]");
	json_decref(v);
	ck_assert_int_eq(store_waiver_find(st, "svc", "prod", w.expr, T0 + 1, &v), 0);
	assert_json_text(v, "{\"id\":1,\"reason\":\"slow\",\"approver\":\"alice\","
	                    "\"expires_at\":\"2026-11-27T13:40:02.114Z\"}");
	json_decref(v);
	ck_assert_int_eq(store_services_list(st, &v), 0);
	assert_json_text(v, "[{\"service\":\"svc\",\"environments\":[\"prod\",\"staging\"],"
	                    "\"runs\":3,\"last_run_at\":\"2026-11-26T13:42:02.114Z\"}]");
	json_decref(v);
	v = get_run(st, 1);
	assert_json_text(json_object_get(v, "rejudgements"),
	                 "[{\"seq\":1,\"created_at\":\"2026-11-27T13:40:02.114Z\","
	                 "\"requested_by\":null,\"verdict\":\"FAIL\","
	                 "\"gates\":[{\"outcome\":\"pass\"}]}]");
	json_decref(v);
	v = get_run(st, 3);
	assert_json_text(json_object_get(v, "invalidated"),
	                 "{\"at\":\"2026-11-27T13:40:02.114Z\",\"reason\":\"bad\"}");
	json_decref(v);
	json_decref(gates);
	store_free(st);
}
END_TEST

/* Names with bytes that are not UTF-8 (a query string's %FF) find
 * nothing: no backend fails on them. */
START_TEST(test_lookup_invalid_utf8)
{
	struct store *st = conf_open(_i);
	struct store_history_filter f = {"svc",
	                                 "st\xff"
	                                 "aging",
	                                 NULL, NULL, 10};
	struct store_trend_query q = {"svc", "latency", "p95_ms", "\xfe", 0, INT64_MAX, 100, 0};
	struct store_baseline_want w = {"svc", "staging\xc3", "latency", "p95_ms", 0, 0, false};
	struct store_baseline_got got;
	json_t *v = NULL;
	char *next = NULL;
	bool truncated = true;

	add_run(st, "svc", "staging", "1", "passed", 10, T0);
	ck_assert_int_eq(store_history(st, &f, &v, &next), 0);
	ck_assert_uint_eq(json_array_size(v), 0);
	ck_assert_ptr_null(next);
	json_decref(v);
	ck_assert_int_eq(store_trend(st, &q, &v, &truncated), 0);
	ck_assert_uint_eq(json_array_size(v), 0);
	json_decref(v);
	q.step_ms = 1000;
	q.environment = NULL;
	q.metric = "p95\xe2\x82";
	ck_assert_int_eq(store_trend(st, &q, &v, &truncated), 0);
	ck_assert_uint_eq(json_array_size(v), 0);
	json_decref(v);
	ck_assert_int_eq(store_baseline_find(st, &w, &got), -ENOENT);
	ck_assert_int_eq(store_waiver_find(st, "svc", "staging", "a\xff < 1", T0, &v), -ENOENT);
	ck_assert_int_eq(store_waivers_list(st, "svc\xff", T0, &v), 0);
	ck_assert_uint_eq(json_array_size(v), 0);
	json_decref(v);
	store_free(st);
}
END_TEST

/* Nothing saved, or nothing that could be: none found, not an error. */
START_TEST(test_load_none)
{
	struct store *st = conf_open(_i);
	int64_t id = create_run(st, "svc", "staging", NULL, 1, NULL);
	size_t huge = (size_t)INT32_MAX + 1, len = 0;
	void *data = NULL;
	json_t *tl = NULL;

	ck_assert_int_eq(store_probe_blob_get(st, id, 1, "latency", &data, &len), -ENOENT);
	ck_assert_int_eq(store_probe_blob_get(st, id, huge, "latency", &data, &len), -ENOENT);
	ck_assert_int_eq(store_probe_timeline_get(st, id, 0, &tl), 0);
	ck_assert_uint_eq(json_array_size(tl), 0);
	json_decref(tl);
	ck_assert_int_eq(store_probe_timeline_get(st, id, huge, &tl), 0);
	ck_assert_uint_eq(json_array_size(tl), 0);
	json_decref(tl);
	store_free(st);
}
END_TEST

/* A histogram of a long, wide load test is megabytes: every byte value,
 * zeros included, comes back as saved, and a second save replaces it. */
START_TEST(test_load_big_blob)
{
	struct store *st = conf_open(_i);
	int64_t id = create_run(st, "svc", "staging", NULL, 1, NULL);
	size_t n = 5 * 1024 * 1024, len = 0;
	uint8_t *bytes = malloc(n);
	uint32_t x = 2463534242u; /* xorshift32: the same bytes every run */
	void *data = NULL;

	ck_assert_ptr_nonnull(bytes);
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		bytes[i] = i % 4096 < 16 ? (uint8_t)(i % 2 ? 0 : 255) : (uint8_t)x;
	}
	ck_assert_int_eq(store_probe_blob_save(st, id, 0, "latency", bytes, n - 1), 0);
	ck_assert_int_eq(store_probe_blob_save(st, id, 0, "latency", bytes, n), 0);
	ck_assert_int_eq(store_probe_blob_get(st, id, 0, "latency", &data, &len), 0);
	ck_assert_uint_eq(len, n);
	ck_assert(memcmp(data, bytes, n) == 0);
	free(data);
	free(bytes);
	store_free(st);
}
END_TEST

/* ---- Waivers, audit trail, retention -------------------------------- */

START_TEST(test_waiver_lifecycle)
{
	struct store *st = conf_open(_i);
	struct store_waiver_new w = {
	        "svc", "staging", "latency.p95_ms < 100", "known slow disk", "alice", "ci",
	        T0,    T0 + DAY};
	int64_t a, b;
	json_t *found = NULL, *items = NULL;

	ck_assert_int_eq(store_waiver_create(st, &w, &a), 0);
	w.environment = NULL; /* any environment */
	w.expires_at = T0 + 2 * DAY;
	ck_assert_int_eq(store_waiver_create(st, &w, &b), 0);
	ck_assert_int_gt(b, a);
	ck_assert_int_eq(store_waiver_find(st, "svc", "staging", w.expr, T0 + 1, &found), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(found, "id")), b); /* newest */
	json_decref(found);
	/* a expires; b still waives in any environment */
	ck_assert_int_eq(store_waiver_find(st, "svc", "prod", w.expr, T0 + DAY + 1, &found), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(found, "id")), b);
	json_decref(found);
	ck_assert_int_eq(store_waiver_revoke(st, "svc", b, T0 + DAY + 2), 0);
	ck_assert_int_eq(store_waiver_find(st, "svc", "staging", w.expr, T0 + DAY + 3, &found),
	                 -ENOENT);
	ck_assert_int_eq(store_waivers_list(st, "svc", T0 + DAY + 3, &items), 0);
	ck_assert_uint_eq(json_array_size(items), 2);
	ck_assert(json_is_false(json_object_get(json_array_get(items, 0), "active")));
	ck_assert(json_is_false(json_object_get(json_array_get(items, 1), "active")));
	ck_assert(json_is_true(json_object_get(json_array_get(items, 1), "expired")));
	json_decref(items);
	store_free(st);
}
END_TEST

START_TEST(test_audit_trail)
{
	struct store *st = conf_open(_i);
	int64_t id = create_run(st, "svc", "staging", NULL, 1, NULL), wid;
	struct store_waiver_new w = {"svc", NULL,    "latency.p95_ms < 100", "r", "alice", "ci",
	                             T0,    T0 + DAY};
	struct store_audit_new a = {"cancel", "ci", "svc", "wrong version", id, 0, T0 + 5};
	json_t *changes = NULL, *run;

	ck_assert_int_eq(store_waiver_create(st, &w, &wid), 0);
	ck_assert_int_eq(store_audit_add(st, &a), 0);
	a = (struct store_audit_new){"invalidate", NULL, "svc", NULL, id, 0, T0 + 6};
	ck_assert_int_eq(store_audit_add(st, &a), 0);
	a = (struct store_audit_new){"waiver-revoke", "ops", "svc", NULL, 0, wid, T0 + 7};
	ck_assert_int_eq(store_audit_add(st, &a), 0);
	ck_assert_int_eq(store_audit_list(st, id, 0, &changes), 0);
	assert_json_eq(changes,
	               "[{\"action\": \"cancel\", \"by\": \"ci\", "
	               "\"at\": \"2026-11-26T13:40:02.119Z\", \"reason\": \"wrong version\"},"
	               " {\"action\": \"invalidate\", \"by\": null, "
	               "\"at\": \"2026-11-26T13:40:02.120Z\"}]");
	run = get_run(st, id);
	ck_assert(json_equal(json_object_get(run, "changes"), changes));
	json_decref(run);
	json_decref(changes);
	ck_assert_int_eq(store_audit_list(st, 0, wid, &changes), 0);
	ck_assert_uint_eq(json_array_size(changes), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(changes, 0), "action")),
	                 "waiver-revoke");
	json_decref(changes);
	store_free(st);
}
END_TEST

/* Raw measurements of runs finished before the cut go; summaries stay. */
/* store_partition_metrics: SQLite does not partition; on PostgreSQL the
 * rows so far stay where trends find them, a second call finds it done,
 * and a probe saved again after the conversion (the upsert of its
 * metrics) and a new run's metrics land in the partitioned table. */
START_TEST(test_partition_metrics)
{
	struct store *st = conf_open(_i);
	struct store_trend_query q = {"svc", "latency", "p95_ms", "staging", 0, INT64_MAX, 100};
	json_t *before = NULL, *after = NULL, *p;
	bool truncated = true;
	int64_t a, b, c, upto = 0;
	int r;

	a = add_run(st, "svc", "staging", "1", "passed", 10, T0);
	b = add_run(st, "svc", "staging", "2", "passed", 20, T0 + 60000);
	ck_assert_int_eq(store_trend(st, &q, &before, &truncated), 0);
	r = store_partition_metrics(st, &upto);
	if (!conf_backend(_i)->shared) {
		ck_assert_int_eq(r, -ENOTSUP);
		json_decref(before);
		store_free(st);
		return;
	}
	/* The partitioned pass converted the schema before the test. */
	ck_assert_int_eq(r, getenv("READYD_TEST_PG_PARTITIONED") ? 1 : 0);
	if (r == 0)
		ck_assert_int_eq(upto, b + 1);
	ck_assert_int_eq(store_partition_metrics(st, &upto), 1);
	ck_assert_int_eq(store_trend(st, &q, &after, &truncated), 0);
	ck_assert(json_equal(before, after));
	json_decref(after);
	p = json_pack("{s:s, s:s, s:s, s:I, s:I, s:{s:f}}", "name", "latency", "type", "http",
	              "state", "passed", "started_at", (json_int_t)T0, "finished_at",
	              (json_int_t)(T0 + 1000), "metrics", "p95_ms", 15.0);
	ck_assert_int_eq(store_probe_save(st, a, 0, p), 0);
	json_decref(p);
	c = add_run(st, "svc", "staging", "3", "passed", 30, T0 + 120000);
	ck_assert_int_eq(store_trend(st, &q, &after, &truncated), 0);
	ck_assert_int_eq(json_array_size(after), 3);
	ck_assert_double_eq(json_number_value(json_object_get(json_array_get(after, 0), "value")),
	                    15);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(after, 2), "run_id")),
	                 c);
	json_decref(before);
	json_decref(after);
	store_free(st);
}
END_TEST

START_TEST(test_prune_raw)
{
	struct store *st = conf_open(_i);
	int64_t old = add_run(st, "svc", "staging", "1", "passed", 10, T0);
	int64_t recent = add_run(st, "svc", "staging", "2", "passed", 20, T0 + DAY);
	const uint8_t bytes[] = {'R', 'D', 'H', 'G', 0, 1};
	void *data = NULL;
	size_t len = 0;
	json_t *run;
	int r;

	ck_assert_int_eq(store_probe_blob_save(st, old, 0, "latency", bytes, sizeof(bytes)), 0);
	ck_assert_int_eq(store_probe_blob_save(st, recent, 0, "latency", bytes, sizeof(bytes)), 0);
	r = store_prune_raw(st, T0 + DAY / 2, 100);
	ck_assert_int_eq(r, 1);
	ck_assert_int_eq(store_prune_raw(st, T0 + DAY / 2, 100), 0);
	ck_assert_int_eq(store_probe_blob_get(st, old, 0, "latency", &data, &len), -ENOENT);
	ck_assert_int_eq(store_probe_blob_get(st, recent, 0, "latency", &data, &len), 0);
	free(data);
	run = get_run(st, old); /* the summary and its metrics stay */
	ck_assert_str_eq(json_string_value(json_object_get(run, "verdict")), "PASS");
	ck_assert_double_eq(
	        json_number_value(json_object_get(
	                json_object_get(json_array_get(json_object_get(run, "probes"), 0),
	                                "metrics"),
	                "p95_ms")),
	        10);
	json_decref(run);
	store_free(st);
}
END_TEST

/* ---- Stored specs -------------------------------------------------- */

static int64_t put_spec(struct store *st, const char *env, const char *text, const char *by,
                        int64_t at)
{
	struct store_spec_new sn = {
	        .service = "svc",
	        .environment = env,
	        .format = "yaml",
	        .text = text,
	        .doc_json = "{\"apiVersion\": \"readyd/v1\", \"service\": \"svc\"}",
	        .created_by = by,
	        .created_at = at,
	};
	int64_t version = 0;
	int r = store_spec_put(st, &sn, &version);

	ck_assert_msg(r == 0, "store_spec_put = %d: %s", r, store_errmsg(st));
	return version;
}

START_TEST(test_stored_spec_versions)
{
	struct store *st = conf_open(_i);
	json_t *spec = NULL, *items = NULL;

	ck_assert_int_eq(store_spec_get(st, "svc", "staging", 0, &spec), -ENOENT);
	ck_assert_int_eq(put_spec(st, "staging", "text: one\n", "ci", T0), 1);
	ck_assert_int_eq(put_spec(st, "staging", "text: two\n", NULL, T0 + 1), 2);
	ck_assert_int_eq(put_spec(st, "prod", "text: p\n", "ci", T0 + 2), 1); /* per environment */
	ck_assert_int_eq(store_spec_get(st, "svc", "staging", 0, &spec), 0);
	assert_json_eq(spec, "{\"service\": \"svc\", \"environment\": \"staging\", \"version\": 2, "
	                     "\"format\": \"yaml\", \"text\": \"text: two\\n\", "
	                     "\"spec\": {\"apiVersion\": \"readyd/v1\", \"service\": \"svc\"}, "
	                     "\"created_by\": null, \"created_at\": \"2026-11-26T13:40:02.115Z\"}");
	json_decref(spec);
	ck_assert_int_eq(store_spec_get(st, "svc", "staging", 1, &spec), 0);
	ck_assert_str_eq(json_string_value(json_object_get(spec, "text")), "text: one\n");
	ck_assert_str_eq(json_string_value(json_object_get(spec, "created_by")), "ci");
	json_decref(spec);
	ck_assert_int_eq(store_spec_get(st, "svc", "staging", 3, &spec), -ENOENT);
	ck_assert_int_eq(store_spec_get(st, "other", "staging", 0, &spec), -ENOENT);
	ck_assert_int_eq(store_specs_list(st, "svc", &items), 0);
	assert_json_eq(
	        items,
	        "[{\"environment\": \"prod\", \"latest\": 1, \"versions\": [{\"version\": 1, "
	        "\"created_by\": \"ci\", \"created_at\": \"2026-11-26T13:40:02.116Z\"}]}, "
	        "{\"environment\": \"staging\", \"latest\": 2, \"versions\": ["
	        "{\"version\": 2, \"created_by\": null, "
	        "\"created_at\": \"2026-11-26T13:40:02.115Z\"}, "
	        "{\"version\": 1, \"created_by\": \"ci\", "
	        "\"created_at\": \"2026-11-26T13:40:02.114Z\"}]}]");
	json_decref(items);
	ck_assert_int_eq(store_specs_list(st, "other", &items), 0);
	ck_assert_int_eq(json_array_size(items), 0);
	json_decref(items);
	store_free(st);
}
END_TEST

/* What store_spec_put must refuse, and leave nothing behind for. */
static const struct store_spec_new bad_specs[] = {
        {NULL, "e", "yaml", "t", "{}", NULL, T0},   {"svc", NULL, "yaml", "t", "{}", NULL, T0},
        {"svc", "e", "toml", "t", "{}", NULL, T0},  {"svc", "e", "yaml", NULL, "{}", NULL, T0},
        {"svc", "e", "yaml", "t", "[1]", NULL, T0}, {"svc", "e", "json", "t", "not json", NULL, T0},
        {"svc", "e", "yaml", "t", "{}", NULL, 0},
};

START_TEST(test_stored_spec_invalid)
{
	struct store *st = conf_open(_i / (int)RD_ARRAY_SIZE(bad_specs));
	int64_t version = 0;
	json_t *spec = NULL;

	ck_assert_int_eq(store_spec_put(st, &bad_specs[_i % RD_ARRAY_SIZE(bad_specs)], &version),
	                 -EINVAL);
	ck_assert_int_eq(version, 0);
	ck_assert_int_eq(store_spec_get(st, "svc", "e", 0, &spec), -ENOENT);
	store_free(st);
}
END_TEST

/* Nodes sharing one store put specs of one service and environment at
 * once: every put gets a version, and no two the same one. */
#define RACE_NODES 4
#define RACE_PUTS  25

struct race_node {
	struct store *st;
	pthread_barrier_t *start;
	int64_t versions[RACE_PUTS];
	int failed; /* the first error, 0 when none */
};

static void *race_puts(void *arg)
{
	struct race_node *node = arg;
	struct store_spec_new sn = {"svc", "prod", "json", "{}", "{}", NULL, T0};

	pthread_barrier_wait(node->start);
	for (int i = 0; i < RACE_PUTS && !node->failed; i++)
		node->failed = store_spec_put(node->st, &sn, &node->versions[i]);
	return NULL;
}

START_TEST(test_stored_spec_race)
{
	struct race_node nodes[RACE_NODES] = {{0}};
	pthread_t threads[RACE_NODES];
	pthread_barrier_t start;
	bool seen[RACE_NODES * RACE_PUTS + 1] = {false};
	json_t *spec = NULL;

	if (!conf_backend(_i)->shared)
		return;
	ck_assert_int_eq(pthread_barrier_init(&start, NULL, RACE_NODES), 0);
	for (int n = 0; n < RACE_NODES; n++) {
		nodes[n].st = conf_open(_i);
		nodes[n].start = &start;
	}
	for (int n = 0; n < RACE_NODES; n++)
		ck_assert_int_eq(pthread_create(&threads[n], NULL, race_puts, &nodes[n]), 0);
	for (int n = 0; n < RACE_NODES; n++)
		ck_assert_int_eq(pthread_join(threads[n], NULL), 0);
	for (int n = 0; n < RACE_NODES; n++) {
		ck_assert_msg(nodes[n].failed == 0, "node %d: store_spec_put = %d: %s", n,
		              nodes[n].failed, store_errmsg(nodes[n].st));
		for (int i = 0; i < RACE_PUTS; i++) {
			int64_t v = nodes[n].versions[i];

			ck_assert_int_ge(v, 1);
			ck_assert_int_le(v, RACE_NODES * RACE_PUTS);
			ck_assert_msg(!seen[v], "version %lld given twice", (long long)v);
			seen[v] = true;
			ck_assert(i == 0 || v > nodes[n].versions[i - 1]);
		}
	}
	ck_assert_int_eq(store_spec_get(nodes[0].st, "svc", "prod", 0, &spec), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(spec, "version")),
	                 RACE_NODES * RACE_PUTS);
	json_decref(spec);
	for (int n = 0; n < RACE_NODES; n++)
		store_free(nodes[n].st);
	pthread_barrier_destroy(&start);
}
END_TEST

/* A put that meets another node's put of the same version, not yet
 * committed, waits for it and takes the next version. */
struct held_put {
	struct store *st;
	int r;
	int64_t version;
};

static void *held_put(void *arg)
{
	struct held_put *hp = arg;
	struct store_spec_new sn = {"svc", "prod", "json", "{}", "{}", NULL, T0};

	hp->r = store_spec_put(hp->st, &sn, &hp->version);
	return NULL;
}

START_TEST(test_stored_spec_held)
{
	const struct conf_backend *b = conf_backend(_i);
	struct held_put hp = {conf_open(_i), -1, 0};

	if (b->spec_held) {
		b->spec_held(b->where(), held_put, &hp);
		ck_assert_msg(hp.r == 0, "store_spec_put = %d: %s", hp.r, store_errmsg(hp.st));
		ck_assert_int_eq(hp.version, 2);
	}
	store_free(hp.st);
}
END_TEST

/* A run keeps the stored spec version it was started from; the run
 * resource, the runs list and the history show it (null without one). */
START_TEST(test_run_spec_version)
{
	struct store *st = conf_open(_i);
	static const char *const names[] = {"p"}, *const types[] = {"http"};
	struct store_run_new rn = {
	        .service = "svc",
	        .version = "3.1",
	        .environment = "prod",
	        .spec_json = "{}",
	        .probe_names = names,
	        .probe_types = types,
	        .n_probes = 1,
	        .created_at = T0,
	        .spec_version = 7,
	};
	struct store_filter lf = {.service = "svc", .limit = 10};
	struct store_history_filter hf = {"svc", NULL, NULL, NULL, 10};
	int64_t id = 0, whole = create_run(st, "svc", "prod", NULL, 1, NULL);
	json_t *run, *items;
	char *next = NULL;

	ck_assert_int_eq(store_run_create(st, &rn, &id, NULL), 0);
	ck_assert_int_eq(store_run_update(st, id, "passed", "PASS", T0 + 1, T0 + 2, NULL), 0);
	ck_assert_int_eq(store_run_update(st, whole, "passed", "PASS", T0 + 1, T0 + 2, NULL), 0);
	run = get_run(st, id);
	ck_assert_int_eq(json_integer_value(json_object_get(run, "spec_version")), 7);
	json_decref(run);
	run = get_run(st, whole);
	ck_assert(json_is_null(json_object_get(run, "spec_version")));
	json_decref(run);
	ck_assert_int_eq(store_runs_list(st, &lf, &items, &next), 0);
	ck_assert_int_eq(
	        json_integer_value(json_object_get(json_array_get(items, 0), "spec_version")), 7);
	json_decref(items);
	ck_assert_int_eq(store_history(st, &hf, &items, &next), 0);
	ck_assert_int_eq(json_array_size(items), 2);
	ck_assert_int_eq(
	        json_integer_value(json_object_get(json_array_get(items, 0), "spec_version")), 7);
	ck_assert(json_is_null(json_object_get(json_array_get(items, 1), "spec_version")));
	json_decref(items);
	store_free(st);
}
END_TEST

static Suite *conformance_suite(void)
{
	Suite *s = suite_create("store-conformance");
	TCase *tc = tcase_create("schema");

	tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
	tcase_add_loop_test(tc, test_migrations, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_newer_schema_refused, 0, N_BACKENDS);
	tcase_add_test(tc, test_pg_password_not_echoed);
	suite_add_tcase(s, tc);

	tc = tcase_create("runs");
	tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
	tcase_add_loop_test(tc, test_run_roundtrip, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_run_update_fields, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_idempotency_key, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_pagination, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_limit_clamp, 0, N_BACKENDS * (int)RD_ARRAY_SIZE(limit_cases));
	tcase_add_loop_test(tc, test_bad_cursor, 0, N_BACKENDS * (int)RD_ARRAY_SIZE(bad_cursors));
	tcase_add_loop_test(tc, test_filters, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_scope_filter, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_idempotency_race, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_idempotency_key_held, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_generation_runs, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_probe_invalid, 0, N_BACKENDS * (int)RD_ARRAY_SIZE(bad_probes));
	tcase_add_loop_test(tc, test_judgement_replace, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_interrupt_stale, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_not_found_and_invalid, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_invalid_utf8_error, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_probe_hostile_bytes, 0, N_BACKENDS);
	tcase_add_test(tc, test_pg_silent_server_deadline);
	tcase_add_loop_test(tc, test_load_roundtrip, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_load_big_blob, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_load_none, 0, N_BACKENDS);
	suite_add_tcase(s, tc);

	tc = tcase_create("history");
	tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
	tcase_add_loop_test(tc, test_baseline_skips_invalidated, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_baseline_floor, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_waiver_errors, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_gates_latest, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_generation_and_reader, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_trend_points, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_trend_buckets, 0,
	                    N_BACKENDS * (int)RD_ARRAY_SIZE(bucket_cases));
	tcase_add_loop_test(tc, test_trend_bucket_bounds, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_trend_bucket_extremes, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_history_pages, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_invalidate_and_rejudge, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_percentile_from_histogram, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_waiver_lifecycle, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_history_json, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_lookup_invalid_utf8, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_audit_trail, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_prune_raw, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_partition_metrics, 0, N_BACKENDS);
	suite_add_tcase(s, tc);

	tc = tcase_create("specs");
	tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
	tcase_add_loop_test(tc, test_stored_spec_versions, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_stored_spec_invalid, 0,
	                    N_BACKENDS * (int)RD_ARRAY_SIZE(bad_specs));
	tcase_add_loop_test(tc, test_stored_spec_race, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_stored_spec_held, 0, N_BACKENDS);
	tcase_add_loop_test(tc, test_run_spec_version, 0, N_BACKENDS);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;

	if (!getenv("READYD_TEST_PG_URL") || !*getenv("READYD_TEST_PG_URL")) {
		if (getenv("READYD_REQUIRE_PG") && !strcmp(getenv("READYD_REQUIRE_PG"), "1")) {
			fprintf(stderr, "READYD_REQUIRE_PG=1 but READYD_TEST_PG_URL is not set\n");
			return EXIT_FAILURE;
		}
		fprintf(stderr, "READYD_TEST_PG_URL not set: PostgreSQL left out\n");
		if (getenv("READYD_TEST_PG_PARTITIONED"))
			return 77; /* the partitioned pass has nothing to run */
		n_backends--;
	}
	sr = srunner_create(conformance_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
