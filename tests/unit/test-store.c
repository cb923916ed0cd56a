/* Unit tests of lib/store: migrations, the run resource round trip, lists,
 * probe metrics, judgements, start-up recovery and read-only connections.
 * Tests that do not need a second connection run twice (tcase loop index
 * 0: ":memory:", 1: a file in a temp directory); the rest use the file.
 * A raw sqlite3 connection checks what the store API does not expose
 * (schema, the long metrics table).
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
#include "lib/store/sqlite/sqlite_migrations.h"
#include "lib/util/util.h"

/* 2026-11-26T13:40:02.114Z */
#define T0 1795700402114LL

static char tmp_dir[PATH_MAX];
static char db_file[PATH_MAX + 16];

static void tmp_setup(void)
{
	const char *base = getenv("TMPDIR");

	int n = snprintf(tmp_dir, sizeof(tmp_dir), "%s/test-store-XXXXXX",
	                 base && *base ? base : "/tmp");

	ck_assert(n > 0 && (size_t)n < sizeof(tmp_dir));
	ck_assert_ptr_nonnull(mkdtemp(tmp_dir));
	snprintf(db_file, sizeof(db_file), "%s/readyd.db", tmp_dir);
}

static void tmp_teardown(void)
{
	char path[PATH_MAX + 256];
	struct dirent *de;
	DIR *d = opendir(tmp_dir);

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmp_dir, de->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(tmp_dir);
}

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

static const char *const probe_names[] = {"latency", "alert-rules", "tls"};
static const char *const probe_types[] = {"load", "prometheus-rules", "tls"};

static int64_t create_run(struct store *st, const char *service, const char *env, const char *key,
                          size_t n_probes, bool *ret_existing)
{
	struct store_run_new rn = {
	        .service = service,
	        .version = "2.4.0",
	        .environment = env,
	        .submitted_by = "ci-pipeline",
	        .idempotency_key = key,
	        .spec_json = "{\"apiVersion\":\"readyd/v1\",\"service\":\"x\"}",
	        .probe_names = probe_names,
	        .probe_types = probe_types,
	        .n_probes = n_probes,
	        .created_at = T0,
	};
	bool existing = true;
	int64_t id = 0;
	int r = store_run_create(st, &rn, &id, &existing);

	ck_assert_msg(r == 0, "store_run_create = %d: %s", r, store_errmsg(st));
	ck_assert_int_gt(id, 0);
	if (ret_existing)
		*ret_existing = existing;
	return id;
}

static void assert_json_eq(json_t *got, const char *want_text)
{
	json_error_t jerr;
	json_t *want = json_loads(want_text, 0, &jerr);
	char *g, *w;

	ck_assert_msg(want != NULL, "bad expected JSON: %s", jerr.text);
	if (!json_equal(got, want)) {
		g = json_dumps(got, JSON_SORT_KEYS | JSON_INDENT(1));
		w = json_dumps(want, JSON_SORT_KEYS | JSON_INDENT(1));
		ck_abort_msg("JSON differs.\ngot:\n%s\nwant:\n%s", g, w);
	}
	json_decref(want);
}

static json_t *get_run(struct store *st, int64_t id)
{
	json_t *run = NULL;
	int r = store_run_get(st, id, &run);

	ck_assert_msg(r == 0, "store_run_get(%lld) = %d: %s", (long long)id, r, store_errmsg(st));
	return run;
}

static json_t *load(const char *text)
{
	json_error_t jerr;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);

	ck_assert_msg(j != NULL, "bad test JSON: %s", jerr.text);
	return j;
}

static void save_probe(struct store *st, int64_t run_id, size_t idx, const char *text)
{
	json_t *p = load(text);
	int r = store_probe_save(st, run_id, idx, p);

	ck_assert_msg(r == 0, "store_probe_save = %d: %s", r, store_errmsg(st));
	json_decref(p);
}

/* ---- Migrations ---------------------------------------------------- */

START_TEST(test_migrate_empty)
{
	static const char *const objects[] = {
	        "table:runs",          "table:probe_results",     "table:metrics",
	        "table:gate_results",  "table:checklist_results", "table:schema_migrations",
	        "index:metrics_trend", "index:runs_by_service",   "index:runs_by_state",
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

/* ---- Runs ---------------------------------------------------------- */

/* The run resource of test_run_roundtrip, before and after its life. */
static const char roundtrip_queued[] =
        "{\"invalidated\": null, \"rejudgements\": [], \"changes\": [], " /* 0003, 0004 */
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
	struct store *st = open_ok(backend(_i));
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
	struct store *st = open_ok(backend(_i));
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
	struct store *st = open_ok(backend(_i));
	struct store_filter f = {.limit = 100};
	bool existing = true;
	int64_t a, b, c, d;
	char *cursor = NULL;
	json_t *items;

	a = create_run(st, "svc", "staging", "key-1", 2, &existing);
	ck_assert(!existing);
	b = create_run(st, "other", "prod", "key-1", 1, &existing);
	ck_assert(existing);
	ck_assert_int_eq(b, a);
	c = create_run(st, "svc", "staging", NULL, 2, &existing);
	ck_assert(!existing);
	d = create_run(st, "svc", "staging", NULL, 2, &existing);
	ck_assert(!existing);
	ck_assert_int_ne(c, a);
	ck_assert_int_ne(d, c);

	ck_assert_int_eq(store_runs_list(st, &f, &items, &cursor), 0);
	ck_assert_uint_eq(json_array_size(items), 3);
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
	struct store *st = open_ok(backend(_i));
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
	struct store *st = open_ok(backend(_i % 2));
	struct store_filter f = {.limit = limit_cases[_i / 2].limit, .cursor = ""};
	char *cursor = NULL;
	json_t *items;

	for (int i = 0; i < 3; i++)
		create_run(st, "svc", "staging", NULL, 0, NULL);
	ck_assert_int_eq(store_runs_list(st, &f, &items, &cursor), 0);
	ck_assert_uint_eq(json_array_size(items), limit_cases[_i / 2].want);
	ck_assert(!!cursor == limit_cases[_i / 2].want_cursor);
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
	struct store *st = open_ok(":memory:");
	struct store_filter f = {.limit = 10, .cursor = bad_cursors[_i]};
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
	struct store *st = open_ok(backend(_i));
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
        {"{\"name\": \"x\", \"type\": \"load\", \"state\": \"bogus\"}", "CHECK constraint"},
};

START_TEST(test_probe_invalid)
{
	struct store *st = open_ok(":memory:");
	int64_t id = create_run(st, "svc", "staging", NULL, 1, NULL);
	json_t *p = load(bad_probes[_i].probe), *run;

	ck_assert_int_eq(store_probe_save(st, id, 0, p), -EINVAL);
	ck_assert_msg(strstr(store_errmsg(st), bad_probes[_i].field), "'%s' lacks '%s'",
	              store_errmsg(st), bad_probes[_i].field);
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

START_TEST(test_judgement_replace)
{
	struct store *st = open_ok(backend(_i));
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
	struct store *st = open_ok(backend(_i));
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

	if (_i == 1) {
		sqlite3 *db = raw_open(db_file);

		ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM metrics WHERE metric = "
		                             "'p95_ms' AND value = 12.5"),
		                 1);
		sqlite3_close(db);
	}
	ck_assert_int_eq(store_runs_interrupt_stale(st, now + 1), 0);
	store_free(st);
}
END_TEST

/* ---- Read-only connections ----------------------------------------- */

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

/* ---- Errors -------------------------------------------------------- */

START_TEST(test_not_found_and_invalid)
{
	struct store *st = open_ok(backend(_i));
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
	ck_assert_ptr_nonnull(strstr(store_errmsg(st), "CHECK constraint"));
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
	struct store *st = open_ok(backend(_i));
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

static Suite *store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc;

	tc = tcase_create("migrations");
	tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
	tcase_add_loop_test(tc, test_migrate_empty, 0, 2);
	tcase_add_test(tc, test_reopen_is_noop);
	tcase_add_loop_test(tc, test_refused, 0, (int)RD_ARRAY_SIZE(refuse_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("runs");
	tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
	tcase_add_loop_test(tc, test_run_roundtrip, 0, 2);
	tcase_add_loop_test(tc, test_run_update_fields, 0, 2);
	tcase_add_loop_test(tc, test_idempotency_key, 0, 2);
	tcase_add_loop_test(tc, test_pagination, 0, 2);
	tcase_add_loop_test(tc, test_limit_clamp, 0, 2 * (int)RD_ARRAY_SIZE(limit_cases));
	tcase_add_loop_test(tc, test_bad_cursor, 0, (int)RD_ARRAY_SIZE(bad_cursors));
	tcase_add_loop_test(tc, test_filters, 0, 2);
	tcase_add_loop_test(tc, test_not_found_and_invalid, 0, 2);
	tcase_add_loop_test(tc, test_invalid_utf8_error, 0, 2);
	tcase_add_loop_test(tc, test_errcause, 0, 2);
	tcase_add_test(tc, test_file_identity);
	suite_add_tcase(s, tc);

	tc = tcase_create("probes");
	tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
	tcase_add_loop_test(tc, test_probe_metrics, 0, 2);
	tcase_add_loop_test(tc, test_nan_metric, 0, 2);
	tcase_add_loop_test(tc, test_probe_invalid, 0, (int)RD_ARRAY_SIZE(bad_probes));
	tcase_add_loop_test(tc, test_judgement_replace, 0, 2);
	tcase_add_loop_test(tc, test_interrupt_stale, 0, 2);
	suite_add_tcase(s, tc);

	tc = tcase_create("readonly");
	tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
	tcase_add_test(tc, test_readonly);
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
