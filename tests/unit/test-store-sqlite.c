/* Unit tests of the SQLite backend of the store (lib/store/sqlite/): the
 * schema every migration builds, migrations recorded once, databases it
 * refuses, WAL and read-only connections, the long metrics table, file
 * identity, SQLite's words in errors, the query plans of the hot
 * history queries, and trends against the SQL that defined them (GROUP
 * BY with a window) on data with every awkward value. What every backend must do is in
 * test-store-conformance.c. Tests that do not need a second connection
 * run twice (tcase loop index 0: ":memory:", 1: a file in a temp
 * directory); the rest use the file. A raw sqlite3 connection checks what
 * the store API does not expose.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/store/store.h"
#include "lib/store/store_backend.h"
#include "lib/store/sqlite/sqlite_migrations.h"
#include "lib/store/sqlite/sqlite.h"
#include "lib/util/json_text.h"
#include "lib/util/util.h"
#include "tests/unit/store-fixture.h"

/* The database of loop iteration i: 0 in memory, 1 the temp file. */
static const char *backend(int i)
{
	return i == 0 ? ":memory:" : db_file;
}

static struct store *open_ok(const char *path)
{
	struct store *st = NULL;
	char err[256] = "";
	int r = store_open(path, &st, err, sizeof(err));

	ck_assert_msg(r == 0, "store_open(%s) = %d: %s", path, r, err);
	return st;
}

static struct store *open_ro_ok(const char *path)
{
	struct store *st = NULL;
	char err[256] = "";
	int r = store_open_readonly(path, &st, err, sizeof(err));

	ck_assert_msg(r == 0, "store_open_readonly(%s) = %d: %s", path, r, err);
	return st;
}

static sqlite3 *raw_open(const char *path)
{
	sqlite3 *db = NULL;

	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	return db;
}

static void raw_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

	ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, msg ? msg : "?");
}

/* First column of the first row of sql as an integer; -1 for no row,
 * -2 for NULL. */
static int64_t raw_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s;
	int64_t v = -1;

	ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK, "%s: %s", sql,
	              sqlite3_errmsg(db));
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_type(s, 0) == SQLITE_NULL ? -2 : sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

static double raw_double(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s;
	double v = NAN;

	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_double(s, 0);
	sqlite3_finalize(s);
	return v;
}

/* ---- Migrations ---------------------------------------------------- */

START_TEST(test_migrate_empty)
{
	static const char *const objects[] = {
	        "table:runs",          "table:probe_results",     "table:metrics",
	        "table:gate_results",  "table:checklist_results", "table:schema_migrations",
	        "index:metrics_trend", "index:metrics_trend_any", "index:runs_by_service",
	        "index:runs_by_state", "table:idempotency_keys",  "table:stored_specs",
	};
	struct store *st = open_ok(backend(_i));
	char sql[256];
	sqlite3 *db;

	ck_assert_int_ge(store_n_migrations, 1);
	ck_assert_int_eq(store_schema_latest(st), store_n_migrations);
	ck_assert_int_eq(store_schema_version(st), store_n_migrations);
	if (_i == 1) {
		db = raw_open(db_file);
		for (size_t i = 0; i < sizeof(objects) / sizeof(objects[0]); i++) {
			const char *colon = strchr(objects[i], ':');

			snprintf(sql, sizeof(sql),
			         "SELECT count(*) FROM sqlite_master WHERE type = '%.*s' AND "
			         "name = '%s'",
			         (int)(colon - objects[i]), objects[i], colon + 1);
			ck_assert_msg(raw_int(db, sql) == 1, "missing %s", objects[i]);
		}
		ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM schema_migrations"),
		                 store_n_migrations);
		for (int v = 1; v <= store_n_migrations; v++) {
			snprintf(sql, sizeof(sql),
			         "SELECT count(*) FROM schema_migrations WHERE version = %d AND "
			         "name = '%s' AND applied_at > 0",
			         v, store_migrations[v - 1].name);
			ck_assert_msg(raw_int(db, sql) == 1, "migration %d not recorded", v);
		}
		ck_assert_int_eq(raw_int(db, "SELECT journal_mode = 'wal' FROM "
		                             "pragma_journal_mode"),
		                 1);
		sqlite3_close(db);
	}
	store_free(st);
}
END_TEST

START_TEST(test_reopen_is_noop)
{
	struct store *st = open_ok(db_file);
	int64_t id = create_run(st, "svc", "staging", NULL, 1, NULL);
	int64_t applied, applied2;
	sqlite3 *db;
	json_t *run;

	store_free(st);
	db = raw_open(db_file);
	applied = raw_int(db, "SELECT sum(applied_at) FROM schema_migrations");
	sqlite3_close(db);

	st = open_ok(db_file);
	ck_assert_int_eq(store_schema_version(st), store_n_migrations);
	run = get_run(st, id);
	ck_assert_str_eq(json_string_value(json_object_get(run, "service")), "svc");
	json_decref(run);
	store_free(st);

	db = raw_open(db_file);
	applied2 = raw_int(db, "SELECT sum(applied_at) FROM schema_migrations");
	ck_assert_int_eq(applied2, applied);
	ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM schema_migrations"), store_n_migrations);
	sqlite3_close(db);
}
END_TEST

/* A database written before idempotency keys were per service keeps
 * its keys, now under each run's service. */
START_TEST(test_migrate_idempotency_scope)
{
	sqlite3 *db = raw_open(db_file);
	struct store *st;
	bool existing = true;
	int64_t id = 0, other;
	char sql[256];

	raw_exec(db, "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT "
	             "NULL, applied_at INTEGER NOT NULL)");
	for (int v = 1; v <= 4; v++) {
		raw_exec(db, store_migrations[v - 1].sql);
		snprintf(sql, sizeof(sql), "INSERT INTO schema_migrations VALUES (%d, '%s', 1)", v,
		         store_migrations[v - 1].name);
		raw_exec(db, sql);
	}
	raw_exec(db, "INSERT INTO runs (id, service, version, environment, state, "
	             "idempotency_key, spec, created_at) VALUES (7, 'svc', '1', 'prod', "
	             "'passed', 'sha-1', '{\"apiVersion\":\"readyd/v1\",\"service\":\"x\"}', 1)");
	sqlite3_close(db);

	st = open_ok(db_file);
	ck_assert_int_eq(store_run_find_by_key(st, "svc", "sha-1", NULL, &id), 0);
	ck_assert_int_eq(id, 7);
	ck_assert_int_eq(create_run(st, "svc", "prod", "sha-1", 1, &existing), 7);
	ck_assert(existing);
	other = create_run(st, "other", "prod", "sha-1", 1, &existing);
	ck_assert(!existing);
	ck_assert_int_ne(other, 7);
	store_free(st);
	db = raw_open(db_file);
	ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM runs WHERE idempotency_key IS NOT NULL"),
	                 0);
	sqlite3_close(db);
}
END_TEST

/* Databases the store must refuse, and how. */
static const struct refuse_case {
	const char *setup_sql; /* NULL: write garbage bytes instead */
	bool readonly;
	int want;
	const char *want_msg;
} refuse_cases[] = {
        {"CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
         "applied_at INTEGER NOT NULL); "
         "INSERT INTO schema_migrations VALUES (999, '0999_future.sql', 1)",
         false, -EPROTONOSUPPORT, "version 999 is newer"},
        {"CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
         "applied_at INTEGER NOT NULL); "
         "INSERT INTO schema_migrations VALUES (999, '0999_future.sql', 1)",
         true, -EPROTONOSUPPORT, "version 999 is newer"},
        {"CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
         "applied_at INTEGER NOT NULL); "
         "INSERT INTO schema_migrations VALUES (1, '0001_other.sql', 1)",
         false, -EPROTONOSUPPORT, "'0001_other.sql'"},
        {"CREATE TABLE unrelated (x)", true, -EPROTONOSUPPORT, "version 0 is older"},
        {NULL, false, -EIO, "not a database"},
        {NULL, true, -EIO, "not a database"},
};

START_TEST(test_refused)
{
	const struct refuse_case *c = &refuse_cases[_i];
	struct store *st = NULL;
	char err[512] = "";
	sqlite3 *db;
	FILE *f;
	int r;

	if (c->setup_sql) {
		db = raw_open(db_file);
		raw_exec(db, c->setup_sql);
		sqlite3_close(db);
	} else {
		f = fopen(db_file, "w");
		ck_assert_ptr_nonnull(f);
		for (int i = 0; i < 256; i++)
			fputs("this is not a database, just text. ", f);
		fclose(f);
	}
	r = c->readonly ? store_open_readonly(db_file, &st, err, sizeof(err))
	                : store_open(db_file, &st, err, sizeof(err));
	ck_assert_int_eq(r, c->want);
	ck_assert_ptr_null(st);
	ck_assert_msg(strstr(err, c->want_msg), "message '%s' lacks '%s'", err, c->want_msg);
}
END_TEST

/* ---- Probes and metrics -------------------------------------------- */

/* The probes of test_probe_metrics after the last saves. */
static const char metrics_probes[] =
        "[{\"name\": \"latency\", \"type\": \"load\", \"state\": \"failed\", "
        "\"started_at\": \"2026-11-26T13:40:02.120Z\", "
        "\"finished_at\": \"2026-11-26T13:41:10.000Z\", "
        "\"metrics\": {\"requests\": 6000, \"p95_ms\": 41.5}, \"details\": null, "
        "\"error\": null},"
        "{\"name\": \"alert-rules\", \"type\": \"prometheus-rules\", "
        "\"state\": \"error\", \"started_at\": null, \"finished_at\": null, "
        "\"metrics\": {\"rules\": 0}, \"details\": null, \"error\": \"refused\"}]";

START_TEST(test_probe_metrics)
{
	struct store *st = open_ok(backend(_i));
	int64_t id = create_run(st, "svc", "staging", NULL, 2, NULL);
	sqlite3 *db = _i == 1 ? raw_open(db_file) : NULL;
	int64_t before, after;
	json_t *run;

	save_probe(st, id, 0,
	           "{\"name\": \"latency\", \"type\": \"load\", \"state\": \"running\", "
	           "\"started_at\": 1795700402120, \"metrics\": {\"requests\": 10}}");
	if (db)
		ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM metrics"), 0);
	save_probe(st, id, 0,
	           "{\"name\": \"latency\", \"type\": \"load\", \"state\": \"passed\", "
	           "\"started_at\": 1795700402120, \"finished_at\": 1795700462120, "
	           "\"metrics\": {\"requests\": 5120, \"p95_ms\": 40.33, \"p99_ms\": 150.4}}");
	if (db) {
		ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM metrics WHERE service = 'svc' "
		                             "AND environment = 'staging' AND probe = 'latency' "
		                             "AND ts = 1795700462120"),
		                 3);
		ck_assert_double_eq(raw_double(db, "SELECT value FROM metrics WHERE "
		                                   "metric = 'p95_ms'"),
		                    40.33);
	}
	/* A re-save replaces the probe's rows: p99_ms is gone. */
	save_probe(st, id, 0,
	           "{\"name\": \"latency\", \"type\": \"load\", \"state\": \"failed\", "
	           "\"started_at\": 1795700402120, \"finished_at\": 1795700470000, "
	           "\"metrics\": {\"requests\": 6000, \"p95_ms\": 41.5}}");
	before = rd_now_ms();
	save_probe(st, id, 1,
	           "{\"name\": \"alert-rules\", \"type\": \"prometheus-rules\", "
	           "\"state\": \"error\", \"metrics\": {\"rules\": 0}, \"error\": \"refused\"}");
	after = rd_now_ms();
	if (db) {
		ck_assert_int_eq(
		        raw_int(db, "SELECT count(*) FROM metrics WHERE probe = 'latency'"), 2);
		ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM metrics WHERE probe = 'latency' "
		                             "AND ts = 1795700470000"),
		                 2);
		ck_assert_double_eq(raw_double(db, "SELECT value FROM metrics WHERE "
		                                   "metric = 'p95_ms'"),
		                    41.5);
		/* Without finished_at, ts is the time of the save. */
		ck_assert_int_ge(raw_int(db, "SELECT ts FROM metrics WHERE metric = 'rules'"),
		                 before);
		ck_assert_int_le(raw_int(db, "SELECT ts FROM metrics WHERE metric = 'rules'"),
		                 after);
		sqlite3_close(db);
	}
	run = get_run(st, id);
	assert_json_eq(json_object_get(run, "probes"), metrics_probes);
	json_decref(run);
	store_free(st);
}
END_TEST

START_TEST(test_nan_metric)
{
	struct store *st = open_ok(backend(_i));
	int64_t id = create_run(st, "svc", "staging", NULL, 1, NULL);
	json_t *run, *metrics, *gates;

	/* jansson has no NaN: a probe that measured NaN publishes null. */
	ck_assert_ptr_null(json_real(NAN));
	ck_assert_ptr_null(json_real(INFINITY));
	save_probe(st, id, 0,
	           "{\"name\": \"latency\", \"type\": \"load\", \"state\": \"passed\", "
	           "\"finished_at\": 1795700462120, "
	           "\"metrics\": {\"p99_ms\": null, \"requests\": 3}}");
	run = get_run(st, id);
	metrics = json_object_get(json_array_get(json_object_get(run, "probes"), 0), "metrics");
	assert_json_eq(metrics, "{\"p99_ms\": null, \"requests\": 3}");
	json_decref(run);
	if (_i == 1) {
		sqlite3 *db = raw_open(db_file);

		ck_assert_int_eq(raw_int(db, "SELECT value FROM metrics WHERE metric = 'p99_ms'"),
		                 -2);
		ck_assert_int_eq(raw_int(db, "SELECT value FROM metrics WHERE metric = 'requests'"),
		                 3);
		/* SQLite can hold an infinity in a REAL column; JSON cannot. */
		gates = load("[{\"expr\": \"latency.p99_ms < 1\", \"value\": 2, "
		             "\"outcome\": \"fail\", \"reason\": \"2 < 1 does not hold\"}]");
		ck_assert_int_eq(store_judgement_save(st, id, gates, NULL), 0);
		json_decref(gates);
		raw_exec(db, "UPDATE gate_results SET value = 9e999");
		ck_assert_int_eq(raw_int(db, "SELECT value > 1e308 FROM gate_results"), 1);
		run = get_run(st, id);
		ck_assert(json_is_null(json_object_get(
		        json_array_get(json_object_get(run, "gates"), 0), "value")));
		json_decref(run);
		sqlite3_close(db);
	}
	store_free(st);
}
END_TEST

START_TEST(test_readonly)
{
	struct store *w = open_ok(db_file), *ro, *bad = NULL;
	struct store_filter f = {.limit = 10};
	struct store_run_new rn = {
	        .service = "s",
	        .version = "1",
	        .environment = "e",
	        .spec_json = "{}",
	        .created_at = T0,
	};
	int64_t first, second, id = 0;
	char *cursor = NULL, err[256] = "";
	json_t *run, *items;

	first = create_run(w, "svc", "staging", NULL, 1, NULL);
	ro = open_ro_ok(db_file);
	ck_assert_int_eq(store_schema_version(ro), store_n_migrations);
	run = get_run(ro, first);
	json_decref(run);

	/* WAL: the reader sees what the writer commits while both are open. */
	second = create_run(w, "svc", "prod", NULL, 2, NULL);
	ck_assert_int_eq(store_run_update(w, first, "running", NULL, T0 + 5, 0, NULL), 0);
	run = get_run(ro, second);
	ck_assert_uint_eq(json_array_size(json_object_get(run, "probes")), 2);
	json_decref(run);
	run = get_run(ro, first);
	ck_assert_str_eq(json_string_value(json_object_get(run, "state")), "running");
	json_decref(run);
	ck_assert_int_eq(store_runs_list(ro, &f, &items, &cursor), 0);
	ck_assert_uint_eq(json_array_size(items), 2);
	json_decref(items);

	ck_assert_int_eq(store_run_create(ro, &rn, &id, NULL), -EROFS);
	ck_assert_int_eq(id, 0);
	ck_assert_int_eq(store_run_update(ro, first, "failed", NULL, 0, 0, NULL), -EROFS);
	ck_assert_int_eq(store_runs_interrupt_stale(ro, T0), -EROFS);
	run = get_run(w, first);
	ck_assert_str_eq(json_string_value(json_object_get(run, "state")), "running");
	json_decref(run);

	ck_assert_int_eq(store_open_readonly(":memory:", &bad, err, sizeof(err)), -EINVAL);
	ck_assert_int_ne(store_open_readonly("/nonexistent/dir/readyd.db", &bad, err, sizeof(err)),
	                 0);
	ck_assert_ptr_null(bad);
	store_free(ro);
	store_free(w);
}
END_TEST

/* The daemon compares the path with the open file now and then: a
 * database deleted or renamed away under readyd takes writes nobody will
 * find again. */
START_TEST(test_file_identity)
{
	struct store *st = open_ok(db_file), *mem = open_ok(":memory:");
	char moved[sizeof(db_file) + 8];
	FILE *f;

	snprintf(moved, sizeof(moved), "%s.moved", db_file);
	ck_assert_int_eq(store_check_file(st), 0);
	ck_assert_int_eq(rename(db_file, moved), 0);
	ck_assert_int_eq(store_check_file(st), -ENOENT);
	ck_assert_ptr_nonnull(strstr(store_errmsg(st), db_file));
	ck_assert_ptr_nonnull(strstr(store_errmsg(st), "deleted or renamed away"));
	/* Still writable through the open handle, and checkpointed into it. */
	create_run(st, "svc", "staging", NULL, 1, NULL);
	ck_assert_int_eq(store_checkpoint(st), 0);
	ck_assert_int_eq(rename(moved, db_file), 0);
	ck_assert_int_eq(store_check_file(st), 0);
	ck_assert_int_eq(rename(db_file, moved), 0);
	f = fopen(db_file, "w"); /* another file takes the name */
	ck_assert_ptr_nonnull(f);
	fclose(f);
	ck_assert_int_eq(store_check_file(st), -ESTALE);
	ck_assert_ptr_nonnull(strstr(store_errmsg(st), "replaced by another file"));
	ck_assert_int_eq(unlink(db_file), 0);
	ck_assert_int_eq(rename(moved, db_file), 0);
	ck_assert_int_eq(store_check_file(mem), 0);
	store_free(mem);
	store_free(st);
}
END_TEST

/* The cause alone, for callers that name the object themselves. */
START_TEST(test_errcause)
{
	struct store *st = open_ok(backend(_i));
	int64_t id = create_run(st, "svc", "staging", NULL, 1, NULL);

	ck_assert_int_eq(store_run_update(st, id, "bogus", NULL, 0, 0, NULL), -EINVAL);
	ck_assert_ptr_nonnull(strstr(store_errmsg(st), "Failed to update a run: "));
	ck_assert_ptr_eq(strstr(store_errcause(st), "CHECK constraint failed"), store_errcause(st));
	ck_assert_int_eq(store_run_update(st, id, NULL, NULL, 0, 0, NULL), -EINVAL);
	ck_assert_str_eq(store_errcause(st), store_errmsg(st)); /* no separate cause */
	store_free(st);
}
END_TEST

/* ---- Query plans ---------------------------------------------------- */

/* A fresh migrated database file (the plans need the real schema). */
static sqlite3 *plan_db(char *path, size_t len)
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

static void plan_db_close(sqlite3 *db, const char *path)
{
	char side[PATH_MAX + 8];

	sqlite3_close(db);
	unlink(path);
	snprintf(side, sizeof(side), "%s-wal", path);
	unlink(side);
	snprintf(side, sizeof(side), "%s-shm", path);
	unlink(side);
}

/* EXPLAIN QUERY PLAN of sql, its rows joined by " | ", into plan. */
static void plan_of(const char *sql, char *plan, size_t len)
{
	char path[PATH_MAX], eqp[4096];
	sqlite3 *db = plan_db(path, sizeof(path));
	sqlite3_stmt *s = NULL;
	size_t used = 0;

	ck_assert_uint_lt(strlen(sql) + 20, sizeof(eqp));
	snprintf(eqp, sizeof(eqp), "EXPLAIN QUERY PLAN %s", sql);
	ck_assert_int_eq(sqlite3_prepare_v2(db, eqp, -1, &s, NULL), SQLITE_OK);
	plan[0] = '\0';
	while (sqlite3_step(s) == SQLITE_ROW && used < len)
		used += (size_t)snprintf(plan + used, len - used, "%s | ",
		                         (const char *)sqlite3_column_text(s, 3));
	sqlite3_finalize(s);
	plan_db_close(db, path);
}

/* EXPLAIN QUERY PLAN of sql mentions index and scans no metrics table. */
static void assert_plan_uses(const char *sql, const char *index)
{
	char plan[4096];

	plan_of(sql, plan, sizeof(plan));
	ck_assert_msg(strstr(plan, index), "plan does not use %s: %s", index, plan);
	ck_assert_msg(!strstr(plan, "SCAN m ") && !strstr(plan, "SCAN metrics"),
	              "plan scans metrics: %s", plan);
}

/* EXPLAIN QUERY PLAN of sql does not mention what. */
static void assert_plan_lacks(const char *sql, const char *what)
{
	char plan[4096];

	plan_of(sql, plan, sizeof(plan));
	ck_assert_msg(!strstr(plan, what), "plan has %s: %s", what, plan);
}

START_TEST(test_trend_plan_uses_index)
{
	assert_plan_uses(sqlite_trend_sql(true), "COVERING INDEX metrics_trend (");
	assert_plan_uses(sqlite_trend_sql(false), "COVERING INDEX metrics_trend_any (");
	/* Newest points straight off the index: LIMIT stops the walk. */
	assert_plan_lacks(sqlite_trend_sql(true), "TEMP B-TREE");
	assert_plan_lacks(sqlite_trend_sql(false), "TEMP B-TREE");
	assert_plan_uses(sqlite_trend_bucket_sql(true), "metrics_trend");
	assert_plan_uses(sqlite_trend_bucket_sql(true), "environment=? AND ts>? AND ts<?");
	assert_plan_uses(sqlite_trend_bucket_sql(false), "COVERING INDEX metrics_trend_any (");
	/* Buckets from one walk of the index too: no window, no grouping sort. */
	assert_plan_lacks(sqlite_trend_bucket_sql(true), "TEMP B-TREE");
	assert_plan_lacks(sqlite_trend_bucket_sql(false), "TEMP B-TREE");
}
END_TEST

START_TEST(test_gates_plan_uses_index)
{
	assert_plan_uses(sqlite_gates_latest_sql(), "runs_decided");
	/* The skip scan: a seek to the next environment, not a walk. */
	assert_plan_uses(sqlite_gates_latest_sql(), "(service=? AND environment>?)");
}
END_TEST

/* ---- Trends against their SQL definition ---------------------------- */

/* The bucketed trend as one SQL statement (?7 limit + 1, ?8 step): what
 * the folding walk replaced, kept here as the definition it must match. */
#define ORACLE_BUCKETS(index, where)                                                               \
	"SELECT b * ?8, COUNT(*), MIN(v), MAX(v), AVG(v), MAX(v) FILTER (WHERE rn = 1), "          \
	"MAX(run_id) FILTER (WHERE rn = 1), MAX(version) FILTER (WHERE rn = 1) FROM ("             \
	" SELECT m.ts / ?8 AS b, m.value AS v, m.run_id AS run_id, r.version AS version,"          \
	" ROW_NUMBER() OVER (PARTITION BY m.ts / ?8 ORDER BY m.ts DESC, m.run_id DESC) AS rn"      \
	" FROM metrics AS m INDEXED BY " index " JOIN runs AS r ON r.id = m.run_id"                \
	" WHERE m.service = ?1 AND m.probe = ?2 AND m.metric = ?3 " where                          \
	" AND m.ts >= ?5 AND m.ts <= ?6 AND r.verdict IN ('PASS', 'FAIL') AND "                    \
	"r.invalidated_at IS NULL AND m.run_id <= ?9) GROUP BY b ORDER BY b DESC LIMIT ?7"

static const char *const oracle_versions[] = {
        "1.0",
        "v\"2\"",
        "back\\slash",
        "caf\xc3\xa9",
        "\xf0\x9f\x9a\x80 rocket",
        "tab\there\n",
        "\x01ctl",
        "a/b",
        "",
};
static const char *const oracle_states[][2] = {
        {"passed", "PASS"}, {"failed", "FAIL"}, {"error", "ERROR"}, {"cancelled", NULL}};

/* 400 runs of one metric over about four days, ts often shared, values
 * NULL, +-Inf, huge, tiny, whole and not; some invalidated, some not
 * decided, one other environment and one other metric beside. */
static void oracle_seed(sqlite3 *db)
{
	sqlite3_stmt *r, *m;
	uint64_t x = 0x9E3779B97F4A7C15ULL;

	ck_assert_int_eq(sqlite3_prepare_v2(db,
	                                    "INSERT INTO runs (id, service, version, environment, "
	                                    "state, verdict, spec, created_at, invalidated_at) "
	                                    "VALUES (?1, 'svc', ?2, ?3, ?4, ?5, '{}', ?6, ?7)",
	                                    -1, &r, NULL),
	                 SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db,
	                                    "INSERT INTO metrics (run_id, service, environment, "
	                                    "probe, metric, value, ts) VALUES (?1, 'svc', ?2, "
	                                    "'latency', ?3, ?4, ?5)",
	                                    -1, &m, NULL),
	                 SQLITE_OK);
	raw_exec(db, "BEGIN");
	for (int id = 1; id <= 400; id++) {
		static const double odd[] = {INFINITY, -INFINITY, 1e300, -1e300, 5e-324,       1e-7,
		                             0.1,      1.0 / 3.0, -0.0,  1e15,   123456789.125};
		const char *env = x % 5 == 0 ? "prod" : "staging";
		int64_t ts = T0 + (int64_t)(x % 4000) * 90000 + (x % 3 == 0 ? 0 : 1);
		const char *const *st = oracle_states[(x >> 8) % 4];

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		sqlite3_bind_int(r, 1, id);
		sqlite3_bind_text(r, 2, oracle_versions[x % RD_ARRAY_SIZE(oracle_versions)], -1,
		                  SQLITE_STATIC);
		sqlite3_bind_text(r, 3, env, -1, SQLITE_STATIC);
		sqlite3_bind_text(r, 4, st[0], -1, SQLITE_STATIC);
		if (st[1])
			sqlite3_bind_text(r, 5, st[1], -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(r, 5);
		sqlite3_bind_int64(r, 6, ts);
		if ((x >> 20) % 13 == 0)
			sqlite3_bind_int64(r, 7, ts);
		else
			sqlite3_bind_null(r, 7);
		ck_assert_int_eq(sqlite3_step(r), SQLITE_DONE);
		sqlite3_reset(r);
		sqlite3_clear_bindings(r);
		for (int k = 0; k < 2; k++) {
			sqlite3_bind_int(m, 1, id);
			sqlite3_bind_text(m, 2, env, -1, SQLITE_STATIC);
			sqlite3_bind_text(m, 3, k ? "other" : "p95_ms", -1, SQLITE_STATIC);
			switch ((x >> 30) % 6) {
			case 0: /* NULL */
				break;
			case 1:
				sqlite3_bind_double(m, 4, odd[(x >> 40) % RD_ARRAY_SIZE(odd)]);
				break;
			case 2:
				sqlite3_bind_double(m, 4, (double)((x >> 34) % 500));
				break;
			default:
				sqlite3_bind_double(m, 4, (double)((x >> 34) % 100000) / 997.0);
				break;
			}
			sqlite3_bind_int64(m, 5, ts);
			ck_assert_int_eq(sqlite3_step(m), SQLITE_DONE);
			sqlite3_reset(m);
			sqlite3_clear_bindings(m);
		}
	}
	raw_exec(db, "COMMIT");
	sqlite3_finalize(r);
	sqlite3_finalize(m);
}

/* The oracle's answer as the tree the old code built: its columns in the
 * order of the answer's members, non-finite reals null. */
static json_t *oracle_buckets(sqlite3 *db, const struct store_trend_query *q, int limit,
                              bool *ret_truncated)
{
	static const char *const keys[] = {"t",   "runs", "min",         "max",
	                                   "avg", "last", "last_run_id", "last_version"};
	sqlite3_stmt *s;
	json_t *arr = json_array();
	const char *sql = q->environment ? ORACLE_BUCKETS("metrics_trend", "AND m.environment = ?4")
	                                 : ORACLE_BUCKETS("metrics_trend_any", "");

	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	sqlite3_bind_text(s, 1, q->service, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, q->probe, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, q->metric, -1, SQLITE_STATIC);
	if (q->environment)
		sqlite3_bind_text(s, 4, q->environment, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 5, q->since_ms);
	sqlite3_bind_int64(s, 6, q->until_ms);
	sqlite3_bind_int(s, 7, limit + 1);
	sqlite3_bind_int64(s, 8, q->step_ms);
	sqlite3_bind_int64(s, 9, q->until_run > 0 ? q->until_run : INT64_MAX);
	while (sqlite3_step(s) == SQLITE_ROW) {
		json_t *o = json_object();
		char t[RD_TIME_LEN];

		rd_time_format(sqlite3_column_int64(s, 0), t);
		json_object_set_new(o, keys[0], json_string(t));
		json_object_set_new(o, keys[1], json_integer(sqlite3_column_int64(s, 1)));
		for (int i = 2; i <= 5; i++) {
			double d = sqlite3_column_double(s, i);

			json_object_set_new(o, keys[i],
			                    sqlite3_column_type(s, i) == SQLITE_NULL || !isfinite(d)
			                            ? json_null()
			                            : json_real(d));
		}
		json_object_set_new(o, keys[6], json_integer(sqlite3_column_int64(s, 6)));
		json_object_set_new(o, keys[7],
		                    json_string((const char *)sqlite3_column_text(s, 7)));
		json_array_insert_new(arr, 0, o);
	}
	sqlite3_finalize(s);
	*ret_truncated = json_array_size(arr) > (size_t)limit;
	if (*ret_truncated)
		json_array_remove(arr, 0);
	return arr;
}

/* got equals want member for member; avg within a relative 1e-12 (a sum
 * in another order may differ in its last bit). */
static void assert_same_buckets(json_t *got, json_t *want, const char *what)
{
	ck_assert_msg(json_array_size(got) == json_array_size(want), "%s: %zu buckets, want %zu",
	              what, json_array_size(got), json_array_size(want));
	for (size_t i = 0; i < json_array_size(got); i++) {
		json_t *g = json_array_get(got, i), *w = json_array_get(want, i);
		double ga = json_number_value(json_object_get(g, "avg"));
		double wa = json_number_value(json_object_get(w, "avg"));
		char *gt, *wt;

		ck_assert_msg(fabs(ga - wa) <= 1e-12 * fabs(wa) ||
		                      (json_is_null(json_object_get(g, "avg")) &&
		                       json_is_null(json_object_get(w, "avg"))),
		              "%s: bucket %zu avg %.17g, want %.17g", what, i, ga, wa);
		json_object_set(g, "avg", json_object_get(w, "avg"));
		gt = rd_json_dumps(g, JSON_COMPACT | JSON_ENSURE_ASCII);
		wt = rd_json_dumps(w, JSON_COMPACT | JSON_ENSURE_ASCII);
		ck_assert_msg(strcmp(gt, wt) == 0, "%s: bucket %zu\n got %s\nwant %s", what, i, gt,
		              wt);
		free(gt);
		free(wt);
	}
}

static const struct oracle_case {
	const char *env;
	int64_t step, since_off, until_off;
	int limit;
	int64_t until_run;
} oracle_cases[] = {
        {NULL, 0, 0, INT64_MAX, 10000, 0},
        {"staging", 0, 0, INT64_MAX, 37, 0},
        {"prod", 0, 3600000, 86400000, 10000, 0},
        {NULL, 0, 0, INT64_MAX, 5, 300},
        {NULL, 3600000, 0, INT64_MAX, 10000, 0},
        {"staging", 3600000, 0, INT64_MAX, 10000, 0},
        {NULL, 86400000, 0, INT64_MAX, 10000, 0},
        {"staging", 86400000, 0, INT64_MAX, 2, 0},
        {NULL, 1, 0, INT64_MAX, 10000, 0},
        {NULL, 1, 0, INT64_MAX, 17, 0},
        {"prod", 7 * 86400000LL, 0, INT64_MAX, 10000, 0},
        {NULL, INT64_MAX, 0, INT64_MAX, 10000, 0},
        {NULL, 900000, 7200000, 2 * 86400000, 10000, 250},
        {"staging", 1800000, 0, INT64_MAX, 1, 0},
};

/* Every case: the text store_trend_text writes is byte for byte the tree
 * store_trend builds, dumped; buckets equal the SQL definition's. */
START_TEST(test_trend_matches_definition)
{
	const struct oracle_case *c = &oracle_cases[_i];
	struct store *st = open_ok(db_file);
	sqlite3 *db = raw_open(db_file);
	struct store_trend_query q = {"svc",
	                              "latency",
	                              "p95_ms",
	                              c->env,
	                              T0 + c->since_off,
	                              c->until_off == INT64_MAX ? INT64_MAX : T0 + c->until_off,
	                              c->limit,
	                              c->step,
	                              c->until_run};
	struct rd_jtext text = {0};
	json_t *tree = NULL, *want;
	bool trunc_tree = false, trunc_text = true, trunc_want = false;
	char *dumped, what[64];

	snprintf(what, sizeof(what), "case %d", _i);
	oracle_seed(db);
	ck_assert_int_eq(store_trend(st, &q, &tree, &trunc_tree), 0);
	ck_assert_int_eq(store_trend_text(st, &q, &text, &trunc_text), 0);
	dumped = rd_json_dumps(tree, JSON_COMPACT | JSON_ENSURE_ASCII);
	ck_assert_str_eq(text.buf, dumped);
	ck_assert(trunc_tree == trunc_text);
	ck_assert_uint_gt(json_array_size(tree), 0);
	if (c->step > 0) {
		want = oracle_buckets(db, &q, c->limit, &trunc_want);
		assert_same_buckets(tree, want, what);
		ck_assert(trunc_tree == trunc_want);
		json_decref(want);
	}
	free(dumped);
	free(text.buf);
	json_decref(tree);
	sqlite3_close(db);
	store_free(st);
}
END_TEST

/* Points written as text equal their tree dumped for values a trend may
 * hold: null and non-finite numbers, the extremes of a double, strings
 * needing escapes, null strings; an empty series is []. */
START_TEST(test_trend_text_equals_tree)
{
	static const double vals[] = {NAN,    INFINITY,  -INFINITY, 1.7976931348623157e308,
	                              5e-324, -0.0,      0.0,       1e15,
	                              1e-5,   0.1 + 0.2, 42.0,      -123.456};
	struct store_trend_points p = {0};
	struct rd_jtext t = {0};
	json_t *tree;
	char *dumped;

	store_trend_points_text(&p, &t);
	ck_assert_str_eq(t.buf, "[]");
	free(t.buf);
	for (int buckets = 0; buckets < 2; buckets++) {
		p = (struct store_trend_points){.buckets = buckets};
		for (size_t i = 0; i < RD_ARRAY_SIZE(vals); i++) {
			struct store_trend_point *pt = store_trend_point_add(&p);
			const char *v = oracle_versions[i % RD_ARRAY_SIZE(oracle_versions)];

			ck_assert_ptr_nonnull(pt);
			*pt = (struct store_trend_point){.run_id = (int64_t)i * 1000003 - 5,
			                                 .time_ms = T0 - (int64_t)i * 999,
			                                 .runs = (int64_t)i,
			                                 .value = vals[i],
			                                 .min = vals[(i + 3) % 12],
			                                 .max = vals[(i + 5) % 12],
			                                 .avg = vals[(i + 7) % 12]};
			ck_assert_int_eq(store_trend_str_add(&p, i % 4 == 3 ? NULL : v, strlen(v),
			                                     &pt->version),
			                 0);
			ck_assert_int_eq(
			        store_trend_str_add(&p, i % 2 ? "FAIL" : "PASS", 4, &pt->verdict),
			        0);
			ck_assert_int_eq(store_trend_str_add(&p, "st\"g", 4, &pt->environment), 0);
		}
		tree = store_trend_points_json(&p);
		dumped = rd_json_dumps(tree, JSON_COMPACT | JSON_ENSURE_ASCII);
		t = (struct rd_jtext){0};
		store_trend_points_text(&p, &t);
		ck_assert_int_eq(t.err, 0);
		ck_assert_str_eq(t.buf, dumped);
		free(t.buf);
		free(dumped);
		json_decref(tree);
		store_trend_points_free(&p);
	}
	/* A version that is not UTF-8 fails the text, as it fails the tree. */
	p = (struct store_trend_points){0};
	ck_assert_int_eq(store_trend_str_add(&p, "\xff", 1, &store_trend_point_add(&p)->version),
	                 0);
	t = (struct rd_jtext){0};
	store_trend_points_text(&p, &t);
	ck_assert_int_eq(t.err, -EINVAL);
	ck_assert_ptr_null(store_trend_points_json(&p));
	free(t.buf);
	store_trend_points_free(&p);
}
END_TEST

static Suite *store_suite(void)
{
	Suite *s = suite_create("store-sqlite");
	TCase *tc;

	tc = tcase_create("migrations");
	tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
	tcase_add_loop_test(tc, test_migrate_empty, 0, 2);
	tcase_add_test(tc, test_reopen_is_noop);
	tcase_add_test(tc, test_migrate_idempotency_scope);
	tcase_add_loop_test(tc, test_refused, 0, (int)RD_ARRAY_SIZE(refuse_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("runs");
	tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
	tcase_add_loop_test(tc, test_errcause, 0, 2);
	tcase_add_test(tc, test_file_identity);
	suite_add_tcase(s, tc);

	tc = tcase_create("probes");
	tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
	tcase_add_loop_test(tc, test_probe_metrics, 0, 2);
	tcase_add_loop_test(tc, test_nan_metric, 0, 2);
	suite_add_tcase(s, tc);

	tc = tcase_create("readonly");
	tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
	tcase_add_test(tc, test_readonly);
	tcase_add_test(tc, test_trend_plan_uses_index);
	tcase_add_test(tc, test_gates_plan_uses_index);
	suite_add_tcase(s, tc);

	tc = tcase_create("trends");
	tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
	tcase_add_loop_test(tc, test_trend_matches_definition, 0, (int)RD_ARRAY_SIZE(oracle_cases));
	tcase_add_test(tc, test_trend_text_equals_tree);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(store_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
