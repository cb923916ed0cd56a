/* sqlite: the SQLite backend of the store (store.h, store_backend.h):
 * the connection, the migration runner, runs and probe results; its
 * other files hold history, audit, load measurements, reports and
 * retention, and this one assembles their operations into the table
 * store.c dispatches through. Every SQLite result code is translated to
 * -errno here, once, and the SQLite message is kept for sqlite_errmsg().
 * Statements are prepared once per connection and cached; every statement
 * is reset as soon as its rows are read, because a pending SELECT would pin a WAL snapshot (readers
 * see old data, checkpoints stall).
 *
 * It must not know HTTP, log above debug, print, or decide policy (which
 * state may follow which is the scheduler's business): it stores what it
 * is given, after checking the shape.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/store/sqlite/sqlite_internal.h"
#include "lib/store/sqlite/sqlite_migrations.h"
#include "lib/store/store_cols.h"
#include "lib/util/run_state.h"
#include "lib/util/util.h"
#include "lib/util/json_text.h"

#define STORE_BUSY_TIMEOUT_MS 5000
/* Once open, the write connection is the loop's: another process holding
 * a write lock (a sqlite3 shell left in a transaction) must not stall
 * every request for the full busy timeout at each write. The write is
 * refused with -EBUSY instead; callers retry or answer 503. */
#define STORE_LOOP_BUSY_MS 100
#define STORE_LIST_MAX     1000
#define STORE_ERRMSG_MAX   512

/* The cached statements. Lists have their own cache (one per filter mix). */
enum stmt_id {
	ST_BEGIN_WRITE = 0,
	ST_BEGIN_READ,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_RUN_BY_KEY,
	ST_KEY_INSERT,
	ST_RUN_INSERT,
	ST_PROBE_INSERT,
	ST_RUN_UPDATE,
	ST_RUN_SCOPE,
	ST_PROBE_SAVE,
	ST_METRICS_DELETE,
	ST_METRIC_INSERT,
	ST_GATES_DELETE,
	ST_GATE_INSERT,
	ST_CHECKLIST_DELETE,
	ST_CHECK_INSERT,
	ST_RUN_GET,
	ST_PROBES_GET,
	ST_GATES_GET,
	ST_CHECKLIST_GET,
	ST_RUN_SPEC,
	ST_STALE_PROBES,
	ST_STALE_RUNS,
	_ST_MAX,
};

#define RUN_COLS                                                                                   \
	"id, service, version, environment, state, verdict, submitted_by, created_at, "            \
	"started_at, finished_at, error, spec_version, node"
#define GATE_COLS                                                                                  \
	"expr, metric, op, threshold, value, samples, baseline, baseline_run, advisory, outcome, " \
	"reason, waiver"
#define CHECK_COLS "item, required, evidence, outcome, reason"

static const char *const stmt_sql[_ST_MAX] = {
        [ST_BEGIN_WRITE] = "BEGIN IMMEDIATE",
        [ST_BEGIN_READ] = "BEGIN DEFERRED",
        [ST_COMMIT] = "COMMIT",
        [ST_ROLLBACK] = "ROLLBACK",
        [ST_RUN_BY_KEY] = "SELECT k.run_id, r.spec FROM idempotency_keys AS k "
                          "JOIN runs AS r ON r.id = k.run_id WHERE k.service = ?1 AND k.key = ?2",
        [ST_KEY_INSERT] = "INSERT INTO idempotency_keys (service, key, run_id) VALUES (?1, ?2, ?3)",
        [ST_RUN_INSERT] = "INSERT INTO runs (service, version, environment, state, submitted_by, "
                          "spec, created_at, spec_version, node) "
                          "VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6, ?7, ?8)",
        [ST_PROBE_INSERT] = "INSERT INTO probe_results (run_id, idx, name, type, state) "
                            "VALUES (?1, ?2, ?3, ?4, 'queued')",
        [ST_RUN_UPDATE] = "UPDATE runs SET state = ?2, verdict = COALESCE(?3, verdict), "
                          "started_at = COALESCE(?4, started_at), "
                          "finished_at = COALESCE(?5, finished_at), error = ?6 WHERE id = ?1",
        [ST_RUN_SCOPE] = "SELECT service, environment FROM runs WHERE id = ?1",
        [ST_PROBE_SAVE] = "INSERT OR REPLACE INTO probe_results (run_id, idx, name, type, state, "
                          "started_at, finished_at, metrics, details, error) "
                          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        [ST_METRICS_DELETE] = "DELETE FROM metrics WHERE run_id = ?1 AND probe = ?2",
        [ST_METRIC_INSERT] = "INSERT INTO metrics (run_id, service, environment, probe, metric, "
                             "value, ts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        [ST_GATES_DELETE] = "DELETE FROM gate_results WHERE run_id = ?1",
        [ST_GATE_INSERT] = "INSERT INTO gate_results (run_id, idx, " GATE_COLS ") "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        [ST_CHECKLIST_DELETE] = "DELETE FROM checklist_results WHERE run_id = ?1",
        [ST_CHECK_INSERT] = "INSERT INTO checklist_results (run_id, " CHECK_COLS ") "
                            "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        [ST_RUN_GET] = "SELECT " RUN_COLS " FROM runs WHERE id = ?1",
        [ST_PROBES_GET] = "SELECT name, type, state, started_at, finished_at, metrics, details, "
                          "error FROM probe_results WHERE run_id = ?1 ORDER BY idx",
        [ST_GATES_GET] = "SELECT " GATE_COLS " FROM gate_results WHERE run_id = ?1 ORDER BY idx",
        /* Checklist rows come back in the order they were saved. */
        [ST_CHECKLIST_GET] = "SELECT " CHECK_COLS " FROM checklist_results WHERE run_id = ?1 "
                             "ORDER BY rowid",
        [ST_RUN_SPEC] = "SELECT spec FROM runs WHERE id = ?1",
        /* Right-hand sides of SET see the old row, so `state` is the state
         * the probe was left in. */
        [ST_STALE_PROBES] =
                "UPDATE probe_results SET state = 'interrupted', "
                "finished_at = CASE WHEN state = 'running' THEN COALESCE(finished_at, ?1) "
                "ELSE finished_at END, "
                "error = COALESCE(error, 'readyd stopped while the probe was ' || state) "
                "WHERE state IN ('queued', 'running') AND run_id IN "
                "(SELECT id FROM runs WHERE state IN ('queued', 'running'))",
        [ST_STALE_RUNS] = "UPDATE runs SET state = 'interrupted', finished_at = ?1, "
                          "error = 'readyd stopped while the run was ' || state || "
                          "'; results measured so far are kept' "
                          "WHERE state IN ('queued', 'running')",
};

/* Filters of sqlite_runs_list(), as bits of the list statement cache. */
enum {
	LIST_SERVICE = 1 << 0,
	LIST_ENVIRONMENT = 1 << 1,
	LIST_STATE = 1 << 2,
	LIST_SCOPE = 1 << 3, /* a token's service patterns (sqlite_audit.c) */
	LIST_VARIANTS = 1 << 4,
};

/* The SQLite backend's connection; callers hold the interface handle. */
struct sqlite_store {
	struct store base;
	sqlite3 *db;
	int version;
	sqlite3_stmt *stmts[_ST_MAX];
	sqlite3_stmt *lists[LIST_VARIANTS];
	sqlite3_stmt *kept[SQLITE_KEPT_MAX]; /* sqlite_kept_stmt() */
	char errmsg[STORE_ERRMSG_MAX];
	char cause[STORE_ERRMSG_MAX]; /* SQLite's words alone, or "" */
	char *path;                   /* NULL for ":memory:" */
	dev_t dev;                    /* the file opened, for store_check_file */
	ino_t ino;
	struct sqlite_cache gates; /* GET /v1/gates, see sqlite_history.c */
};

static const struct store_ops sqlite_ops;

static struct sqlite_store *sq(struct store *st)
{
	return rd_container_of(st, struct sqlite_store, base);
}

static const struct store_col run_cols[] = {
        {"id", COL_INT, true},
        {"service", COL_TEXT, true},
        {"version", COL_TEXT, true},
        {"environment", COL_TEXT, true},
        {"state", COL_TEXT, true},
        {"verdict", COL_TEXT, false},
        {"submitted_by", COL_TEXT, false},
        {"created_at", COL_TIME, true},
        {"started_at", COL_TIME, false},
        {"finished_at", COL_TIME, false},
        {"error", COL_TEXT, false},
        {"spec_version", COL_INT, false}, /* 0006 */
        {"node", COL_TEXT, false},        /* 0008 */
};

static const struct store_col probe_cols[] = {
        {"name", COL_TEXT, true},         {"type", COL_TEXT, true},
        {"state", COL_TEXT, true},        {"started_at", COL_TIME, false},
        {"finished_at", COL_TIME, false}, {"metrics", COL_JSON, true},
        {"details", COL_JSON, false},     {"error", COL_TEXT, false},
};

static const struct store_col gate_cols[] = {
        {"expr", COL_TEXT, true},      {"metric", COL_TEXT, false},
        {"op", COL_TEXT, false},       {"threshold", COL_REAL, false},
        {"value", COL_REAL, false},    {"samples", COL_INT, false},
        {"baseline", COL_REAL, false}, {"baseline_run", COL_INT, false},
        {"advisory", COL_BOOL, false}, {"outcome", COL_TEXT, true},
        {"reason", COL_TEXT, true},    {"waiver", COL_JSON, false}, /* 0003 */
};

static const struct store_col check_cols[] = {
        {"item", COL_TEXT, true},    {"required", COL_BOOL, true}, {"evidence", COL_TEXT, false},
        {"outcome", COL_TEXT, true}, {"reason", COL_TEXT, true},
};

__attribute__((format(printf, 2, 3))) static void set_err(struct store *st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sq(st)->errmsg, sizeof(sq(st)->errmsg), fmt, ap);
	va_end(ap);
	sq(st)->cause[0] = '\0';
}

static int errno_from_sqlite(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_CONSTRAINT:
		/* A duplicate is "exists"; a failed CHECK, NOT NULL or foreign
		 * key means the caller handed in something invalid. */
		if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
			return -EEXIST;
		return -EINVAL;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
		return -EROFS;
	default:
		return -EIO;
	}
}

/* Records SQLite's message for a failed step and translates rc. */
static int db_fail(struct store *st, int rc, const char *what)
{
	set_err(st, "Failed to %s: %s", what, sqlite3_errmsg(sq(st)->db));
	snprintf(sq(st)->cause, sizeof(sq(st)->cause), "%s", sqlite3_errmsg(sq(st)->db));
	return errno_from_sqlite(rc);
}

static int oom(struct store *st)
{
	set_err(st, "Failed to build a result: out of memory");
	return -ENOMEM;
}

static int invalid(struct store *st, const char *what, const char *key)
{
	set_err(st, "Failed to save %s: field '%s' is missing or has the wrong type", what, key);
	return -EINVAL;
}

static int stmt_get(struct store *st, enum stmt_id id, sqlite3_stmt **ret)
{
	int rc;

	if (!sq(st)->stmts[id]) {
		rc = sqlite3_prepare_v3(sq(st)->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
		                        &sq(st)->stmts[id], NULL);
		if (rc != SQLITE_OK)
			return db_fail(st, rc, "prepare a statement");
	}
	*ret = sq(st)->stmts[id];
	return 0;
}

static void stmt_release(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

/* Steps a statement that returns no rows, then releases it. */
static int stmt_run(struct store *st, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);
	int r = rc == SQLITE_DONE ? 0 : db_fail(st, rc, what);

	stmt_release(s);
	return r;
}

static int bind_fail(struct store *st, sqlite3_stmt *s, int rc)
{
	int r = db_fail(st, rc, "bind a value");

	stmt_release(s);
	return r;
}

static int bind_text_opt(sqlite3_stmt *s, int idx, const char *v)
{
	return v ? sqlite3_bind_text(s, idx, v, -1, SQLITE_STATIC) : sqlite3_bind_null(s, idx);
}

/* A time of 0 is "not set". */
static int bind_time_opt(sqlite3_stmt *s, int idx, int64_t ms)
{
	return ms ? sqlite3_bind_int64(s, idx, ms) : sqlite3_bind_null(s, idx);
}

/* Runs one cached statement whose only parameter is the integer ?1. */
static int exec_with_int(struct store *st, enum stmt_id id, int64_t arg, const char *what)
{
	sqlite3_stmt *s = NULL;
	int rc, r;

	r = stmt_get(st, id, &s);
	if (r < 0)
		return r;
	rc = sqlite3_bind_int64(s, 1, arg);
	if (rc != SQLITE_OK)
		return bind_fail(st, s, rc);
	return stmt_run(st, s, what);
}

static int tx_begin(struct store *st, bool write)
{
	sqlite3_stmt *s = NULL;
	int r = stmt_get(st, write ? ST_BEGIN_WRITE : ST_BEGIN_READ, &s);

	return r < 0 ? r : stmt_run(st, s, "begin a transaction");
}

/* Leaves the message of the error that caused the rollback in place. */
static void tx_rollback(struct store *st)
{
	char saved[STORE_ERRMSG_MAX], cause[STORE_ERRMSG_MAX];
	sqlite3_stmt *s = NULL;

	if (sqlite3_get_autocommit(sq(st)->db))
		return;
	memcpy(saved, sq(st)->errmsg, sizeof(saved));
	memcpy(cause, sq(st)->cause, sizeof(cause));
	if (stmt_get(st, ST_ROLLBACK, &s) == 0)
		(void)stmt_run(st, s, "roll back");
	memcpy(sq(st)->errmsg, saved, sizeof(saved));
	memcpy(sq(st)->cause, cause, sizeof(cause));
}

/* Ends the transaction: COMMIT when r is 0, else ROLLBACK. Returns r, or
 * the COMMIT's error. */
static int tx_end(struct store *st, int r)
{
	sqlite3_stmt *s = NULL;

	if (r == 0) {
		r = stmt_get(st, ST_COMMIT, &s);
		if (r == 0)
			r = stmt_run(st, s, "commit");
	}
	if (r < 0)
		tx_rollback(st);
	return r;
}

/* ---- Migrations ---------------------------------------------------- */

static int exec_sql(struct store *st, const char *sql, const char *what)
{
	int rc = sqlite3_exec(sq(st)->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : db_fail(st, rc, what);
}

/* One-off query returning a single integer (0 when there is no row), with
 * an optional integer parameter ?1. */
static int query_int(struct store *st, const char *sql, int64_t arg, int64_t *ret)
{
	sqlite3_stmt *s = NULL;
	int rc, r = 0;

	rc = sqlite3_prepare_v2(sq(st)->db, sql, -1, &s, NULL);
	if (rc != SQLITE_OK)
		return db_fail(st, rc, "read the schema");
	if (sqlite3_bind_parameter_count(s) > 0)
		sqlite3_bind_int64(s, 1, arg);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*ret = sqlite3_column_int64(s, 0);
	else if (rc == SQLITE_DONE)
		*ret = 0;
	else
		r = db_fail(st, rc, "read the schema");
	sqlite3_finalize(s);
	return r;
}

/* The highest version recorded, 0 for a database never migrated. */
static int schema_read_version(struct store *st, int *ret_version)
{
	int64_t has_table = 0, v;
	int r;

	r = query_int(st,
	              "SELECT count(*) FROM sqlite_master "
	              "WHERE type = 'table' AND name = 'schema_migrations'",
	              0, &has_table);
	if (r < 0)
		return r;
	v = 0;
	if (has_table) {
		r = query_int(st, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", 0, &v);
		if (r < 0)
			return r;
	}
	*ret_version = (int)v;
	return 0;
}

static int schema_check_not_newer(struct store *st, int version)
{
	if (version <= store_n_migrations)
		return 0;
	set_err(st,
	        "database schema version %d is newer than this readyd (knows up to %d): "
	        "upgrade readyd or use another database",
	        version, store_n_migrations);
	return -EPROTONOSUPPORT;
}

/* Whether migration m is recorded; a different name under its version
 * means the database comes from another line of development. */
static int migration_recorded(struct store *st, const struct store_migration *m, bool *ret_recorded)
{
	const char *name;
	sqlite3_stmt *s = NULL;
	int rc, r = 0;

	rc = sqlite3_prepare_v2(sq(st)->db, "SELECT name FROM schema_migrations WHERE version = ?1",
	                        -1, &s, NULL);
	if (rc != SQLITE_OK)
		return db_fail(st, rc, "read the schema");
	sqlite3_bind_int(s, 1, m->version);
	rc = sqlite3_step(s);
	name = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(s, 0) : NULL;
	if (rc == SQLITE_ROW && (!name || strcmp(name, m->name) != 0)) {
		set_err(st,
		        "database migration %d is recorded as '%s' but this readyd's is '%s': "
		        "the database comes from a different readyd",
		        m->version, name ? name : "", m->name);
		r = -EPROTONOSUPPORT;
	} else if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
		*ret_recorded = rc == SQLITE_ROW;
	} else {
		r = db_fail(st, rc, "read the schema");
	}
	sqlite3_finalize(s);
	return r;
}

static int migration_record(struct store *st, const struct store_migration *m)
{
	sqlite3_stmt *s = NULL;
	int rc;

	rc = sqlite3_prepare_v2(sq(st)->db,
	                        "INSERT INTO schema_migrations (version, name, applied_at) "
	                        "VALUES (?1, ?2, ?3)",
	                        -1, &s, NULL);
	if (rc != SQLITE_OK)
		return db_fail(st, rc, "record a migration");
	sqlite3_bind_int(s, 1, m->version);
	sqlite3_bind_text(s, 2, m->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, rd_now_ms());
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : db_fail(st, rc, "record a migration");
}

/* Applies m in its own transaction unless already recorded. The check is
 * inside the write transaction, so two processes opening a fresh database
 * at once do not both apply it. */
static int migration_apply(struct store *st, const struct store_migration *m)
{
	char what[128];
	bool recorded = false;
	int r;

	r = tx_begin(st, true);
	if (r < 0)
		return r;
	r = migration_recorded(st, m, &recorded);
	if (r == 0 && !recorded) {
		snprintf(what, sizeof(what), "apply migration '%s'", m->name);
		r = exec_sql(st, m->sql, what);
		if (r == 0)
			r = migration_record(st, m);
	}
	return tx_end(st, r);
}

static int schema_migrate(struct store *st)
{
	int r, version;

	r = exec_sql(st,
	             "CREATE TABLE IF NOT EXISTS schema_migrations ("
	             "version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
	             "applied_at INTEGER NOT NULL)",
	             "create schema_migrations");
	if (r < 0)
		return r;
	r = schema_read_version(st, &version);
	if (r < 0)
		return r;
	r = schema_check_not_newer(st, version);
	if (r < 0)
		return r;
	for (int i = 0; i < store_n_migrations; i++) {
		r = migration_apply(st, &store_migrations[i]);
		if (r < 0)
			return r;
	}
	return schema_read_version(st, &sq(st)->version);
}

/* ---- Opening ------------------------------------------------------- */

static bool path_is_memory(const char *path)
{
	return strcmp(path, ":memory:") == 0 || path[0] == '\0';
}

static int db_open(struct store *st, const char *path, int flags)
{
	int rc;

	rc = sqlite3_open_v2(path, &sq(st)->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		set_err(st, "Failed to open database '%s': %s", path,
		        sq(st)->db ? sqlite3_errmsg(sq(st)->db) : sqlite3_errstr(rc));
		return errno_from_sqlite(rc);
	}
	sqlite3_extended_result_codes(sq(st)->db, 1);
	rc = sqlite3_busy_timeout(sq(st)->db, STORE_BUSY_TIMEOUT_MS);
	if (rc != SQLITE_OK)
		return db_fail(st, rc, "set the busy timeout");
	if (sqlite_scope_register(sq(st)->db) < 0)
		return db_fail(st, SQLITE_NOMEM, "register readyd_in_scope");
	return 0;
}

/* WAL lets read-only connections of worker threads read beside the
 * writer; a file system that cannot do WAL is refused rather than
 * silently serializing readers behind writes. */
static int db_enable_wal(struct store *st, const char *path)
{
	sqlite3_stmt *s = NULL;
	int rc, r = 0;

	rc = sqlite3_prepare_v2(sq(st)->db, "PRAGMA journal_mode = WAL", -1, &s, NULL);
	if (rc != SQLITE_OK)
		return db_fail(st, rc, "enable WAL");
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		r = db_fail(st, rc, "enable WAL");
	} else if (strcmp((const char *)sqlite3_column_text(s, 0), "wal") != 0) {
		set_err(st, "Failed to enable WAL on '%s': journal mode stayed '%s'", path,
		        (const char *)sqlite3_column_text(s, 0));
		r = -EIO;
	}
	sqlite3_finalize(s);
	return r;
}

/* The identity of the file just opened, for sqlite_check_file(). */
static int remember_file(struct store *st, const char *path)
{
	struct stat sb;

	if (stat(path, &sb) < 0) {
		int e = errno;

		set_err(st, "Failed to stat database '%s': %s", path, strerror(e));
		return -e;
	}
	sq(st)->path = strdup(path);
	if (!sq(st)->path)
		return oom(st);
	sq(st)->dev = sb.st_dev;
	sq(st)->ino = sb.st_ino;
	return 0;
}

static void copy_err(struct store *st, char *err, size_t errlen)
{
	if (err && errlen > 0)
		snprintf(err, errlen, "%s", sq(st)->errmsg);
}

int sqlite_open(const char *path, struct store **ret_store, char *err, size_t errlen)
{
	struct sqlite_store *sqs;
	struct store *st;
	int r;

	if (!path || !ret_store)
		return -EINVAL;
	sqs = calloc(1, sizeof(*sqs));
	if (!sqs)
		return -ENOMEM;
	sqs->base.ops = &sqlite_ops;
	st = &sqs->base;
	r = db_open(st, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
	/* Effective only on a new, empty database (SQLite switches an existing
	 * one only with a VACUUM): lets retention give pages back in steps. */
	if (r == 0)
		r = exec_sql(st, "PRAGMA auto_vacuum = INCREMENTAL", "set auto_vacuum");
	if (r == 0 && !path_is_memory(path))
		r = db_enable_wal(st, path);
	/* FULL: a verdict reported to a pipeline must survive power loss. */
	if (r == 0)
		r = exec_sql(st, "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL",
		             "configure the database");
	if (r == 0)
		r = schema_migrate(st);
	if (r == 0 && !path_is_memory(path))
		r = remember_file(st, path);
	if (r == 0 && sqlite3_busy_timeout(sq(st)->db, STORE_LOOP_BUSY_MS) != SQLITE_OK)
		r = db_fail(st, SQLITE_MISUSE, "set the busy timeout");
	if (r < 0) {
		copy_err(st, err, errlen);
		sqlite_free(st);
		return r;
	}
	*ret_store = st;
	return 0;
}

static int readonly_check_version(struct store *st)
{
	int r = schema_read_version(st, &sq(st)->version);

	if (r < 0)
		return r;
	r = schema_check_not_newer(st, sq(st)->version);
	if (r < 0)
		return r;
	if (sq(st)->version < store_n_migrations) {
		set_err(st,
		        "database schema version %d is older than this readyd (needs %d): "
		        "open it read-write first to migrate it",
		        sq(st)->version, store_n_migrations);
		return -EPROTONOSUPPORT;
	}
	return 0;
}

int sqlite_open_readonly(const char *path, struct store **ret_store, char *err, size_t errlen)
{
	struct sqlite_store *sqs;
	struct store *st;
	int r;

	if (!path || !ret_store)
		return -EINVAL;
	if (path_is_memory(path)) {
		if (err && errlen > 0)
			snprintf(err, errlen, "an in-memory database has no second connection");
		return -EINVAL;
	}
	sqs = calloc(1, sizeof(*sqs));
	if (!sqs)
		return -ENOMEM;
	sqs->base.ops = &sqlite_ops;
	st = &sqs->base;
	r = db_open(st, path, SQLITE_OPEN_READONLY);
	if (r == 0)
		r = exec_sql(st, "PRAGMA query_only = ON", "configure the database");
	if (r == 0)
		r = readonly_check_version(st);
	if (r < 0) {
		copy_err(st, err, errlen);
		sqlite_free(st);
		return r;
	}
	*ret_store = st;
	return 0;
}

void sqlite_free(struct store *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < RD_ARRAY_SIZE(sq(st)->stmts); i++)
		sqlite3_finalize(sq(st)->stmts[i]);
	for (size_t i = 0; i < RD_ARRAY_SIZE(sq(st)->lists); i++)
		sqlite3_finalize(sq(st)->lists[i]);
	for (size_t i = 0; i < RD_ARRAY_SIZE(sq(st)->kept); i++)
		sqlite3_finalize(sq(st)->kept[i]);
	sqlite3_close_v2(sq(st)->db);
	json_decref(sq(st)->gates.value);
	free(sq(st)->path);
	free(sq(st));
}

/* Every write goes through this one connection (the main thread's), so
 * its count of changed rows moves exactly when something stored does. */
static uint64_t sqlite_generation(struct store *st)
{
	return (uint64_t)sqlite3_total_changes64(sq(st)->db);
}

/* sq(st)->path is set once at open and never changed: safe to read from
 * a worker while the main thread uses st. */
static int sqlite_reader_open(struct store *st, struct store **ret_reader, char *err, size_t errlen)
{
	if (!sq(st)->path) {
		if (err && errlen > 0)
			snprintf(err, errlen, "an in-memory database has no second connection");
		return -ENOTSUP;
	}
	return sqlite_open_readonly(sq(st)->path, ret_reader, err, errlen);
}

int sqlite_kept_stmt(struct store *st, enum sqlite_kept slot, const char *sql, sqlite3_stmt **ret)
{
	int rc;

	if (!sq(st)->kept[slot]) {
		rc = sqlite3_prepare_v3(sq(st)->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
		                        &sq(st)->kept[slot], NULL);
		if (rc != SQLITE_OK)
			return db_fail(st, rc, "prepare a query");
	}
	*ret = sq(st)->kept[slot];
	return 0;
}

struct sqlite_cache *sqlite_gates_cache(struct store *st)
{
	return &sq(st)->gates;
}

int sqlite_schema_version(struct store *st)
{
	return sq(st)->version;
}

int sqlite_schema_latest(struct store *st)
{
	(void)st;
	return store_n_migrations;
}

const char *sqlite_errmsg(struct store *st)
{
	return sq(st)->errmsg[0] ? sq(st)->errmsg : "no error";
}

const char *sqlite_errcause(struct store *st)
{
	return sq(st)->cause[0] ? sq(st)->cause : sqlite_errmsg(st);
}

int sqlite_check_file(struct store *st)
{
	struct stat sb;

	if (!sq(st)->path)
		return 0;
	if (stat(sq(st)->path, &sb) < 0) {
		int e = errno;

		if (e == ENOENT)
			set_err(st,
			        "the database file '%s' was deleted or renamed away while readyd "
			        "has it open",
			        sq(st)->path);
		else
			set_err(st, "cannot stat the database file '%s': %s", sq(st)->path,
			        strerror(e));
		return -e;
	}
	if (sb.st_dev != sq(st)->dev || sb.st_ino != sq(st)->ino) {
		set_err(st,
		        "the database file '%s' was replaced by another file while readyd has "
		        "the old one open",
		        sq(st)->path);
		return -ESTALE;
	}
	return 0;
}

/* Without a busy handler for the call: TRUNCATE would otherwise wait up
 * to the busy timeout for an outside reader (a sqlite3 shell) on the
 * loop thread; busy, it does what it can and the next call finishes. */
int sqlite_checkpoint(struct store *st)
{
	int rc;

	sqlite3_busy_timeout(sq(st)->db, 0);
	rc = sqlite3_wal_checkpoint_v2(sq(st)->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	sqlite3_busy_timeout(sq(st)->db, STORE_LOOP_BUSY_MS);
	return rc == SQLITE_OK ? 0 : db_fail(st, rc, "checkpoint the write-ahead log");
}

/* ---- Rows to JSON -------------------------------------------------- */

/* Column i of the current row as JSON, by kind. */
static int col_to_json(struct store *st, sqlite3_stmt *s, int i, const struct store_col *c,
                       json_t **ret)
{
	json_error_t jerr;
	double d;
	json_t *v;

	if (sqlite3_column_type(s, i) == SQLITE_NULL) {
		*ret = c->kind == COL_BOOL ? json_false() : json_null();
		return 0;
	}
	switch (c->kind) {
	case COL_INT:
		v = json_integer(sqlite3_column_int64(s, i));
		break;
	case COL_REAL:
		d = sqlite3_column_double(s, i);
		v = isfinite(d) ? json_real(d) : json_null();
		break;
	case COL_BOOL:
		v = json_boolean(sqlite3_column_int64(s, i) != 0);
		break;
	case COL_TIME:
		v = store_json_time(sqlite3_column_int64(s, i));
		break;
	case COL_JSON:
		v = json_loadb((const char *)sqlite3_column_text(s, i),
		               (size_t)sqlite3_column_bytes(s, i), JSON_DECODE_ANY | JSON_ALLOW_NUL,
		               &jerr);
		if (!v) {
			set_err(st, "Failed to read stored '%s': %s", c->key, jerr.text);
			return -EIO;
		}
		break;
	default:
		v = store_json_string_lossy((const char *)sqlite3_column_text(s, i),
		                            (size_t)sqlite3_column_bytes(s, i));
		break;
	}
	if (!v)
		return oom(st);
	*ret = v;
	return 0;
}

/* The current row, columns described by cols, as a new object. */
static int row_to_json(struct store *st, sqlite3_stmt *s, const struct store_col *cols, size_t n,
                       json_t **ret)
{
	json_t *obj = json_object(), *v;
	int r;

	if (!obj)
		return oom(st);
	for (size_t i = 0; i < n; i++) {
		r = col_to_json(st, s, (int)i, &cols[i], &v);
		if (r < 0) {
			json_decref(obj);
			return r;
		}
		if (json_object_set_new(obj, cols[i].key, v) < 0) {
			json_decref(obj);
			return oom(st);
		}
	}
	*ret = obj;
	return 0;
}

/* Every row of a cached statement taking the run id, as an array. */
static int rows_to_array(struct store *st, enum stmt_id id, int64_t run_id,
                         const struct store_col *cols, size_t n, json_t **ret)
{
	json_t *arr, *row;
	sqlite3_stmt *s = NULL;
	int rc, r;

	r = stmt_get(st, id, &s);
	if (r < 0)
		return r;
	rc = sqlite3_bind_int64(s, 1, run_id);
	if (rc != SQLITE_OK)
		return bind_fail(st, s, rc);
	arr = json_array();
	if (!arr)
		r = oom(st);
	while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		r = row_to_json(st, s, cols, n, &row);
		if (r == 0 && json_array_append_new(arr, row) < 0)
			r = oom(st);
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = db_fail(st, rc, "read a run");
	stmt_release(s);
	if (r < 0) {
		json_decref(arr);
		return r;
	}
	*ret = arr;
	return 0;
}

/* ---- JSON to rows -------------------------------------------------- */

/* Checks every field of obj against cols; what names the object. */
static int cols_validate(struct store *st, json_t *obj, const struct store_col *cols, size_t n,
                         const char *what)
{
	if (!json_is_object(obj)) {
		set_err(st, "Failed to save %s: not a JSON object", what);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!store_col_valid(&cols[i], json_object_get(obj, cols[i].key)))
			return invalid(st, what, cols[i].key);
	}
	return 0;
}

/* Binds v serialized; SQLite frees the text (also on failure). */
static int bind_json(sqlite3_stmt *s, int idx, json_t *v)
{
	char *text = rd_json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

	return text ? sqlite3_bind_text(s, idx, text, -1, free) : SQLITE_NOMEM;
}

/* Binds obj's fields (validated) to parameters first, first + 1, ... */
static int cols_bind(sqlite3_stmt *s, int first, json_t *obj, const struct store_col *cols,
                     size_t n)
{
	json_t *v;
	int rc, idx;

	for (size_t i = 0; i < n; i++) {
		v = json_object_get(obj, cols[i].key);
		idx = first + (int)i;
		if (cols[i].kind == COL_BOOL)
			rc = sqlite3_bind_int(s, idx, json_is_true(v));
		else if (!v || json_is_null(v))
			rc = sqlite3_bind_null(s, idx);
		else if (cols[i].kind == COL_TEXT)
			rc = sqlite3_bind_text(s, idx, json_string_value(v),
			                       (int)json_string_length(v), SQLITE_STATIC);
		else if (cols[i].kind == COL_REAL)
			rc = sqlite3_bind_double(s, idx, json_number_value(v));
		else if (cols[i].kind == COL_JSON)
			rc = bind_json(s, idx, v);
		else
			rc = sqlite3_bind_int64(s, idx, json_integer_value(v));
		if (rc != SQLITE_OK)
			return rc;
	}
	return SQLITE_OK;
}

/* ---- Runs ---------------------------------------------------------- */

int sqlite_run_find_by_key(struct store *st, const char *service, const char *key,
                           const char *spec_json, int64_t *ret_id)
{
	sqlite3_stmt *s = NULL;
	const char *stored;
	int rc, r;

	r = stmt_get(st, ST_RUN_BY_KEY, &s);
	if (r < 0)
		return r;
	if ((rc = sqlite3_bind_text(s, 1, service, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(s, 2, key, -1, SQLITE_STATIC)) != SQLITE_OK)
		return bind_fail(st, s, rc);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		stored = (const char *)sqlite3_column_text(s, 1);
		r = 0;
		if (spec_json && (!stored || strcmp(stored, spec_json) != 0)) {
			set_err(st, "the Idempotency-Key was used with a different spec");
			r = -EEXIST;
		} else {
			*ret_id = sqlite3_column_int64(s, 0);
		}
	} else {
		r = rc == SQLITE_DONE ? -ENOENT : db_fail(st, rc, "find a run");
	}
	stmt_release(s);
	return r;
}

static int key_insert(struct store *st, const struct store_run_new *rn, int64_t run_id)
{
	sqlite3_stmt *s = NULL;
	int rc, r;

	r = stmt_get(st, ST_KEY_INSERT, &s);
	if (r < 0)
		return r;
	if ((rc = sqlite3_bind_text(s, 1, rn->service, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(s, 2, rn->idempotency_key, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 3, run_id)) != SQLITE_OK)
		return bind_fail(st, s, rc);
	return stmt_run(st, s, "keep an idempotency key");
}

static int run_insert(struct store *st, const struct store_run_new *rn, int64_t *ret_id)
{
	sqlite3_stmt *s = NULL;
	int rc, r;

	r = stmt_get(st, ST_RUN_INSERT, &s);
	if (r < 0)
		return r;
	if ((rc = sqlite3_bind_text(s, 1, rn->service, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(s, 2, rn->version, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(s, 3, rn->environment, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = bind_text_opt(s, 4, rn->submitted_by)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(s, 5, rn->spec_json, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 6, rn->created_at)) != SQLITE_OK ||
	    (rc = rn->spec_version > 0 ? sqlite3_bind_int64(s, 7, rn->spec_version)
	                               : sqlite3_bind_null(s, 7)) != SQLITE_OK ||
	    (rc = bind_text_opt(s, 8, rn->node)) != SQLITE_OK)
		return bind_fail(st, s, rc);
	r = stmt_run(st, s, "insert a run");
	if (r == 0)
		*ret_id = sqlite3_last_insert_rowid(sq(st)->db);
	return r;
}

static int probes_insert(struct store *st, int64_t run_id, const struct store_run_new *rn)
{
	sqlite3_stmt *s = NULL;
	int rc, r;

	r = stmt_get(st, ST_PROBE_INSERT, &s);
	for (size_t i = 0; r == 0 && i < rn->n_probes; i++) {
		if ((rc = sqlite3_bind_int64(s, 1, run_id)) != SQLITE_OK ||
		    (rc = sqlite3_bind_int64(s, 2, (int64_t)i)) != SQLITE_OK ||
		    (rc = sqlite3_bind_text(s, 3, rn->probe_names[i], -1, SQLITE_STATIC)) !=
		            SQLITE_OK ||
		    (rc = sqlite3_bind_text(s, 4, rn->probe_types[i], -1, SQLITE_STATIC)) !=
		            SQLITE_OK)
			return bind_fail(st, s, rc);
		r = stmt_run(st, s, "insert a probe");
	}
	return r;
}

int sqlite_run_create(struct store *st, const struct store_run_new *rn, int64_t *ret_id,
                      bool *ret_existing)
{
	bool existing = false;
	int64_t id = 0;
	int r;

	if (!store_run_new_valid(rn)) {
		set_err(st, "Failed to create a run: service, version, environment, spec, "
		            "creation time and every probe's name and type are required");
		return -EINVAL;
	}
	r = tx_begin(st, true);
	if (r < 0)
		return r;
	if (rn->idempotency_key) {
		r = sqlite_run_find_by_key(st, rn->service, rn->idempotency_key, rn->spec_json,
		                           &id);
		existing = r == 0;
		if (r == -ENOENT)
			r = 0;
	}
	if (r == 0 && !existing) {
		r = run_insert(st, rn, &id);
		if (r == 0)
			r = probes_insert(st, id, rn);
		if (r == 0 && rn->idempotency_key)
			r = key_insert(st, rn, id);
	}
	r = tx_end(st, r);
	if (r < 0)
		return r;
	*ret_id = id;
	if (ret_existing)
		*ret_existing = existing;
	return 0;
}

int sqlite_run_update(struct store *st, int64_t id, const char *state, const char *verdict,
                      int64_t started_at, int64_t finished_at, const char *error)
{
	sqlite3_stmt *s = NULL;
	int rc, r;

	if (!state || started_at < 0 || finished_at < 0) {
		set_err(st, "Failed to update run %" PRId64 ": a state is required", id);
		return -EINVAL;
	}
	r = stmt_get(st, ST_RUN_UPDATE, &s);
	if (r < 0)
		return r;
	if ((rc = sqlite3_bind_int64(s, 1, id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(s, 2, state, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = bind_text_opt(s, 3, verdict)) != SQLITE_OK ||
	    (rc = bind_time_opt(s, 4, started_at)) != SQLITE_OK ||
	    (rc = bind_time_opt(s, 5, finished_at)) != SQLITE_OK ||
	    (rc = bind_text_opt(s, 6, error)) != SQLITE_OK)
		return bind_fail(st, s, rc);
	r = stmt_run(st, s, "update a run");
	if (r == 0 && sqlite3_changes(sq(st)->db) == 0) {
		set_err(st, "Failed to update run %" PRId64 ": no such run", id);
		return -ENOENT;
	}
	return r;
}

/* The run's service and environment, duplicated: SQLite's strings die
 * with the statement's reset. -ENOENT if there is no such run. */
static int run_scope(struct store *st, int64_t run_id, char **ret_service, char **ret_env)
{
	sqlite3_stmt *s = NULL;
	char *svc = NULL, *env = NULL;
	int rc, r;

	r = stmt_get(st, ST_RUN_SCOPE, &s);
	if (r < 0)
		return r;
	rc = sqlite3_bind_int64(s, 1, run_id);
	if (rc != SQLITE_OK)
		return bind_fail(st, s, rc);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		svc = strdup((const char *)sqlite3_column_text(s, 0));
		env = strdup((const char *)sqlite3_column_text(s, 1));
		r = svc && env ? 0 : oom(st);
	} else if (rc == SQLITE_DONE) {
		set_err(st, "Failed to find run %" PRId64 ": no such run", run_id);
		r = -ENOENT;
	} else {
		r = db_fail(st, rc, "find a run");
	}
	stmt_release(s);
	if (r < 0) {
		free(svc);
		free(env);
		return r;
	}
	*ret_service = svc;
	*ret_env = env;
	return 0;
}

/* ---- Probes -------------------------------------------------------- */

/* A probe object from the caller, checked and serialized. */
struct probe_row {
	const char *name, *type, *state, *error;
	int64_t started_at, finished_at;
	json_t *metrics;    /* borrowed; an object (possibly empty) or NULL */
	char *metrics_text; /* owned */
	char *details_text; /* owned; NULL for no details */
};

static void probe_row_free(struct probe_row *pr)
{
	free(pr->metrics_text);
	free(pr->details_text);
}

static int probe_row_parse(struct store *st, json_t *probe, struct probe_row *pr)
{
	json_t *details, *metrics;
	const char *bad = NULL;

	if (!json_is_object(probe)) {
		set_err(st, "Failed to save a probe: not a JSON object");
		return -EINVAL;
	}
	pr->name = json_string_value(json_object_get(probe, "name"));
	pr->type = json_string_value(json_object_get(probe, "type"));
	pr->state = json_string_value(json_object_get(probe, "state"));
	pr->error = json_string_value(json_object_get(probe, "error"));
	metrics = json_object_get(probe, "metrics");
	details = json_object_get(probe, "details");
	if (!pr->name || !pr->type || !pr->state)
		bad = !pr->name ? "name" : !pr->type ? "type" : "state";
	else if (!store_probe_time(probe, "started_at", &pr->started_at))
		bad = "started_at";
	else if (!store_probe_time(probe, "finished_at", &pr->finished_at))
		bad = "finished_at";
	else if (metrics && !json_is_null(metrics) && !store_probe_metrics_valid(metrics))
		bad = "metrics";
	else if (!pr->error && json_object_get(probe, "error") &&
	         !json_is_null(json_object_get(probe, "error")))
		bad = "error";
	if (bad)
		return invalid(st, "a probe", bad);
	pr->metrics = json_is_object(metrics) ? metrics : NULL;
	pr->metrics_text = pr->metrics ? rd_json_dumps(pr->metrics, JSON_COMPACT) : strdup("{}");
	if (details && !json_is_null(details))
		pr->details_text = rd_json_dumps(details, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!pr->metrics_text || (details && !json_is_null(details) && !pr->details_text))
		return oom(st);
	return 0;
}

static int probe_row_write(struct store *st, int64_t run_id, size_t idx, const struct probe_row *pr)
{
	sqlite3_stmt *s = NULL;
	int rc, r;

	r = stmt_get(st, ST_PROBE_SAVE, &s);
	if (r < 0)
		return r;
	if ((rc = sqlite3_bind_int64(s, 1, run_id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 2, (int64_t)idx)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(s, 3, pr->name, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(s, 4, pr->type, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(s, 5, pr->state, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = bind_time_opt(s, 6, pr->started_at)) != SQLITE_OK ||
	    (rc = bind_time_opt(s, 7, pr->finished_at)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(s, 8, pr->metrics_text, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = bind_text_opt(s, 9, pr->details_text)) != SQLITE_OK ||
	    (rc = bind_text_opt(s, 10, pr->error)) != SQLITE_OK)
		return bind_fail(st, s, rc);
	return stmt_run(st, s, "save a probe");
}

static int metrics_delete(struct store *st, int64_t run_id, const char *probe)
{
	sqlite3_stmt *s = NULL;
	int rc, r;

	r = stmt_get(st, ST_METRICS_DELETE, &s);
	if (r < 0)
		return r;
	if ((rc = sqlite3_bind_int64(s, 1, run_id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(s, 2, probe, -1, SQLITE_STATIC)) != SQLITE_OK)
		return bind_fail(st, s, rc);
	return stmt_run(st, s, "delete metrics");
}

/* Replaces the probe's rows in the long metrics table: one per metric,
 * NULL for a metric that was not a finite number. */
static int metrics_write(struct store *st, int64_t run_id, const struct probe_row *pr)
{
	char *svc = NULL, *env = NULL;
	int64_t ts = pr->finished_at ? pr->finished_at : rd_now_ms();
	const char *key;
	sqlite3_stmt *s = NULL;
	json_t *v;
	int rc, r;

	r = run_scope(st, run_id, &svc, &env);
	if (r == 0)
		r = metrics_delete(st, run_id, pr->name);
	if (r == 0 && pr->metrics)
		r = stmt_get(st, ST_METRIC_INSERT, &s);
	if (r < 0 || !pr->metrics)
		goto out;
	json_object_foreach (pr->metrics, key, v) {
		if ((rc = sqlite3_bind_int64(s, 1, run_id)) != SQLITE_OK ||
		    (rc = sqlite3_bind_text(s, 2, svc, -1, SQLITE_STATIC)) != SQLITE_OK ||
		    (rc = sqlite3_bind_text(s, 3, env, -1, SQLITE_STATIC)) != SQLITE_OK ||
		    (rc = sqlite3_bind_text(s, 4, pr->name, -1, SQLITE_STATIC)) != SQLITE_OK ||
		    (rc = sqlite3_bind_text(s, 5, key, -1, SQLITE_STATIC)) != SQLITE_OK ||
		    (rc = json_is_number(v) ? sqlite3_bind_double(s, 6, json_number_value(v))
		                            : sqlite3_bind_null(s, 6)) != SQLITE_OK ||
		    (rc = sqlite3_bind_int64(s, 7, ts)) != SQLITE_OK) {
			r = bind_fail(st, s, rc);
			goto out;
		}
		r = stmt_run(st, s, "save a metric");
		if (r < 0)
			goto out;
	}
out:
	free(svc);
	free(env);
	return r;
}

/* Fails with -ENOENT (and a message) unless the run exists. */
static int run_require(struct store *st, int64_t run_id)
{
	char *svc = NULL, *env = NULL;
	int r = run_scope(st, run_id, &svc, &env);

	free(svc);
	free(env);
	return r;
}

int sqlite_probe_save(struct store *st, int64_t run_id, size_t idx, json_t *probe)
{
	struct probe_row pr = {0};
	int r;

	/* Probe indexes are small (the spec caps probes); this keeps the
	 * cast to a SQL integer honest. */
	if (idx > INT32_MAX) {
		set_err(st, "Failed to save a probe: index %zu is out of range", idx);
		return -EINVAL;
	}
	r = probe_row_parse(st, probe, &pr);
	if (r < 0)
		goto out;
	r = tx_begin(st, true);
	if (r < 0)
		goto out;
	r = run_require(st, run_id);
	if (r == 0)
		r = probe_row_write(st, run_id, idx, &pr);
	if (r == 0 && run_state_string_is_final(pr.state))
		r = metrics_write(st, run_id, &pr);
	r = tx_end(st, r);
out:
	probe_row_free(&pr);
	return r;
}

/* ---- Judgement ----------------------------------------------------- */

static int judgement_insert(struct store *st, sqlite3_stmt *s, int64_t run_id, size_t idx,
                            json_t *item, bool gates)
{
	int rc;

	if ((rc = sqlite3_bind_int64(s, 1, run_id)) != SQLITE_OK ||
	    (gates && (rc = sqlite3_bind_int64(s, 2, (int64_t)idx)) != SQLITE_OK) ||
	    (rc = gates ? cols_bind(s, 3, item, gate_cols, RD_ARRAY_SIZE(gate_cols))
	                : cols_bind(s, 2, item, check_cols, RD_ARRAY_SIZE(check_cols))) !=
	            SQLITE_OK)
		return bind_fail(st, s, rc);
	return stmt_run(st, s, gates ? "save a gate result" : "save a checklist result");
}

/* Deletes the run's gate (or checklist) rows and inserts arr's objects. */
static int judgement_replace(struct store *st, int64_t run_id, json_t *arr, bool gates)
{
	const char *what = gates ? "a gate result" : "a checklist result";
	sqlite3_stmt *s = NULL;
	json_t *item;
	size_t i;
	int r;

	if (!json_is_array(arr)) {
		set_err(st, "Failed to save %s: not a JSON array", what);
		return -EINVAL;
	}
	json_array_foreach (arr, i, item) {
		r = gates ? cols_validate(st, item, gate_cols, RD_ARRAY_SIZE(gate_cols), what)
		          : cols_validate(st, item, check_cols, RD_ARRAY_SIZE(check_cols), what);
		if (r < 0)
			return r;
	}
	r = exec_with_int(st, gates ? ST_GATES_DELETE : ST_CHECKLIST_DELETE, run_id,
	                  "delete results");
	if (r == 0)
		r = stmt_get(st, gates ? ST_GATE_INSERT : ST_CHECK_INSERT, &s);
	for (i = 0; r == 0 && i < json_array_size(arr); i++)
		r = judgement_insert(st, s, run_id, i, json_array_get(arr, i), gates);
	return r;
}

int sqlite_judgement_save(struct store *st, int64_t run_id, json_t *gates, json_t *checklist)
{
	int r;

	r = tx_begin(st, true);
	if (r < 0)
		return r;
	r = run_require(st, run_id);
	if (r == 0 && gates)
		r = judgement_replace(st, run_id, gates, true);
	if (r == 0 && checklist)
		r = judgement_replace(st, run_id, checklist, false);
	return tx_end(st, r);
}

/* ---- Reading runs -------------------------------------------------- */

static int run_row(struct store *st, int64_t id, json_t **ret_run)
{
	sqlite3_stmt *s = NULL;
	int rc, r;

	r = stmt_get(st, ST_RUN_GET, &s);
	if (r < 0)
		return r;
	rc = sqlite3_bind_int64(s, 1, id);
	if (rc != SQLITE_OK)
		return bind_fail(st, s, rc);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		r = row_to_json(st, s, run_cols, RD_ARRAY_SIZE(run_cols), ret_run);
	} else if (rc == SQLITE_DONE) {
		set_err(st, "Failed to find run %" PRId64 ": no such run", id);
		r = -ENOENT;
	} else {
		r = db_fail(st, rc, "read a run");
	}
	stmt_release(s);
	return r;
}

/* Adds probes[], gates[] and checklist[] to run. */
static int run_add_children(struct store *st, int64_t id, json_t *run)
{
	static const struct {
		const char *key;
		enum stmt_id stmt;
		const struct store_col *cols;
		size_t n;
	} children[] = {
	        {"probes", ST_PROBES_GET, probe_cols, RD_ARRAY_SIZE(probe_cols)},
	        {"gates", ST_GATES_GET, gate_cols, RD_ARRAY_SIZE(gate_cols)},
	        {"checklist", ST_CHECKLIST_GET, check_cols, RD_ARRAY_SIZE(check_cols)},
	};
	json_t *arr = NULL;
	int r;

	for (size_t i = 0; i < RD_ARRAY_SIZE(children); i++) {
		r = rows_to_array(st, children[i].stmt, id, children[i].cols, children[i].n, &arr);
		if (r < 0)
			return r;
		if (json_object_set_new(run, children[i].key, arr) < 0)
			return oom(st);
	}
	return 0;
}

/* Inside read_begin/read_end (store.c adds the history around it). */
int sqlite_run_get(struct store *st, int64_t id, json_t **ret_run)
{
	json_t *run = NULL;
	int r = run_row(st, id, &run);

	if (r == 0)
		r = run_add_children(st, id, run);
	if (r < 0) {
		json_decref(run);
		return r;
	}
	*ret_run = run;
	return 0;
}

int sqlite_run_spec(struct store *st, int64_t id, json_t **ret_spec)
{
	json_t *spec = NULL;
	sqlite3_stmt *s = NULL;
	int rc, r;

	r = stmt_get(st, ST_RUN_SPEC, &s);
	if (r < 0)
		return r;
	rc = sqlite3_bind_int64(s, 1, id);
	if (rc != SQLITE_OK)
		return bind_fail(st, s, rc);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		static const struct store_col spec_col = {"spec", COL_JSON, true};

		r = col_to_json(st, s, 0, &spec_col, &spec);
	} else if (rc == SQLITE_DONE) {
		set_err(st, "Failed to find run %" PRId64 ": no such run", id);
		r = -ENOENT;
	} else {
		r = db_fail(st, rc, "read a run");
	}
	stmt_release(s);
	if (r < 0)
		return r;
	*ret_spec = spec;
	return 0;
}

/* The list statement for one mix of filters. Each mix gets its own SQL
 * (rather than `?2 IS NULL OR service = ?2`) so the planner can use the
 * service and state indexes. */
static int list_stmt(struct store *st, unsigned mask, sqlite3_stmt **ret)
{
	char sql[512];
	int rc;

	if (!sq(st)->lists[mask]) {
		snprintf(sql, sizeof(sql),
		         "SELECT " RUN_COLS " FROM runs WHERE id < ?1%s%s%s%s "
		         "ORDER BY id DESC LIMIT ?5",
		         mask & LIST_SERVICE ? " AND service = ?2" : "",
		         mask & LIST_ENVIRONMENT ? " AND environment = ?3" : "",
		         mask & LIST_STATE ? " AND state = ?4" : "",
		         mask & LIST_SCOPE ? " AND readyd_in_scope(service, ?6)" : "");
		rc = sqlite3_prepare_v3(sq(st)->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
		                        &sq(st)->lists[mask], NULL);
		if (rc != SQLITE_OK)
			return db_fail(st, rc, "prepare a statement");
	}
	*ret = sq(st)->lists[mask];
	return 0;
}

static int list_bind(sqlite3_stmt *s, const struct store_filter *f, int64_t below, int limit)
{
	int rc;

	if ((rc = sqlite3_bind_int64(s, 1, below)) != SQLITE_OK ||
	    (f->service && (rc = sqlite3_bind_text(s, 2, f->service, -1, SQLITE_STATIC))) ||
	    (f->environment && (rc = sqlite3_bind_text(s, 3, f->environment, -1, SQLITE_STATIC))) ||
	    (f->state && (rc = sqlite3_bind_text(s, 4, f->state, -1, SQLITE_STATIC))) ||
	    (f->scope && *f->scope && (rc = sqlite3_bind_text(s, 6, f->scope, -1, SQLITE_STATIC))))
		return rc;
	/* One row more than asked tells whether there is a next page. */
	return sqlite3_bind_int(s, 5, limit + 1);
}

/* Reads up to limit rows into items; *ret_last is the id of the last one
 * and *ret_more whether a further row exists. */
static int list_read(struct store *st, sqlite3_stmt *s, int limit, json_t *items, int64_t *ret_last,
                     bool *ret_more)
{
	int n = 0, rc, r = 0;
	json_t *row;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == limit)
			break;
		r = row_to_json(st, s, run_cols, RD_ARRAY_SIZE(run_cols), &row);
		if (r == 0 && json_array_append_new(items, row) < 0)
			r = oom(st);
		if (r < 0)
			return r;
		*ret_last = sqlite3_column_int64(s, 0);
		n++;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(st, rc, "list runs");
	*ret_more = rc == SQLITE_ROW;
	return 0;
}

static int list_cursor(struct store *st, const char *cursor, int64_t *ret_below)
{
	if (!cursor || cursor[0] == '\0') {
		*ret_below = INT64_MAX;
		return 0;
	}
	if (rd_parse_int64(cursor, 1, INT64_MAX, ret_below) < 0) {
		set_err(st, "Failed to list runs: cursor '%.64s' is not one this server gave out",
		        cursor);
		return -EINVAL;
	}
	return 0;
}

int sqlite_runs_list(struct store *st, const struct store_filter *f, json_t **ret_items,
                     char **ret_next_cursor)
{
	unsigned mask = (f->service ? LIST_SERVICE : 0) | (f->environment ? LIST_ENVIRONMENT : 0) |
	                (f->state ? LIST_STATE : 0) | (f->scope && *f->scope ? LIST_SCOPE : 0);
	int limit = f->limit < 1 ? 1 : f->limit > STORE_LIST_MAX ? STORE_LIST_MAX : f->limit;
	int64_t below, last = 0;
	char *cursor = NULL;
	bool more = false;
	sqlite3_stmt *s = NULL;
	json_t *items;
	int rc, r;

	r = list_cursor(st, f->cursor, &below);
	if (r == 0)
		r = list_stmt(st, mask, &s);
	if (r < 0)
		return r;
	rc = list_bind(s, f, below, limit);
	if (rc != SQLITE_OK)
		return bind_fail(st, s, rc);
	items = json_array();
	r = items ? list_read(st, s, limit, items, &last, &more) : oom(st);
	stmt_release(s);
	if (r == 0 && more && asprintf(&cursor, "%" PRId64, last) < 0) {
		cursor = NULL;
		r = oom(st);
	}
	if (r < 0) {
		json_decref(items);
		return r;
	}
	*ret_items = items;
	*ret_next_cursor = cursor;
	return 0;
}

int sqlite_runs_interrupt_stale(struct store *st, int64_t now_ms)
{
	int r, count = 0;

	r = tx_begin(st, true);
	if (r < 0)
		return r;
	/* Probes first: their statement finds the runs by their old state. */
	r = exec_with_int(st, ST_STALE_PROBES, now_ms, "interrupt probes");
	if (r == 0) {
		r = exec_with_int(st, ST_STALE_RUNS, now_ms, "interrupt runs");
		count = sqlite3_changes(sq(st)->db);
	}
	r = tx_end(st, r);
	return r < 0 ? r : count;
}

/* ---- For the backend's other files (sqlite_internal.h) ------------ */

sqlite3 *sqlite_db(struct store *st)
{
	return sq(st)->db;
}

void sqlite_set_errf(struct store *st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sq(st)->errmsg, sizeof(sq(st)->errmsg), fmt, ap);
	va_end(ap);
	sq(st)->cause[0] = '\0';
}

int sqlite_db_fail(struct store *st, int rc, const char *what)
{
	return db_fail(st, rc, what);
}

int sqlite_tx_begin(struct store *st, bool write)
{
	return tx_begin(st, write);
}

int sqlite_tx_end(struct store *st, int r)
{
	return tx_end(st, r);
}

int sqlite_read_begin(struct store *st)
{
	return tx_begin(st, false);
}

int sqlite_read_end(struct store *st, int r)
{
	return tx_end(st, r);
}

/* ---- Several nodes: a SQLite file has one user ------------------------ */

static int not_shared(struct store *st)
{
	sqlite_set_errf(st, "a SQLite database is used by one readyd only: no cluster");
	return -ENOTSUP;
}

static int sqlite_node_beat(struct store *st, const char *node, const char *version, int64_t now_ms,
                            int64_t lease_ms, json_t **ret_held)
{
	(void)node, (void)version, (void)now_ms, (void)lease_ms, (void)ret_held;
	return not_shared(st);
}

static int sqlite_run_claim(struct store *st, const char *node, int64_t lease_until, int max,
                            json_t **ret_runs)
{
	(void)node, (void)lease_until, (void)max, (void)ret_runs;
	return not_shared(st);
}

static int sqlite_leases_expire(struct store *st, int64_t now_ms, const char *node,
                                json_t **ret_runs)
{
	(void)now_ms, (void)node, (void)ret_runs;
	return not_shared(st);
}

static int sqlite_run_cancel_request(struct store *st, int64_t id, int64_t now_ms)
{
	(void)id, (void)now_ms;
	return not_shared(st);
}

static int sqlite_run_release(struct store *st, int64_t id, const char *node)
{
	(void)id, (void)node;
	return not_shared(st);
}

static bool sqlite_queued_hint(struct store *st)
{
	(void)st;
	return false;
}

static const struct store_ops sqlite_ops = {
        .name = "sqlite",
        .read_begin = sqlite_read_begin,
        .read_end = sqlite_read_end,
        .free = sqlite_free,
        .schema_version = sqlite_schema_version,
        .run_create = sqlite_run_create,
        .run_find_by_key = sqlite_run_find_by_key,
        .run_update = sqlite_run_update,
        .probe_save = sqlite_probe_save,
        .judgement_save = sqlite_judgement_save,
        .run_spec = sqlite_run_spec,
        .runs_list = sqlite_runs_list,
        .runs_interrupt_stale = sqlite_runs_interrupt_stale,
        .prune_raw = sqlite_prune_raw,
        .errmsg = sqlite_errmsg,
        .errcause = sqlite_errcause,
        .check_file = sqlite_check_file,
        .checkpoint = sqlite_checkpoint,
        .generation = sqlite_generation,
        .reader_open = sqlite_reader_open,
        .gates_latest = sqlite_gates_latest,
        .baseline_find = sqlite_baseline_find,
        .waiver_create = sqlite_waiver_create,
        .waivers_list = sqlite_waivers_list,
        .waiver_get = sqlite_waiver_get,
        .waiver_revoke = sqlite_waiver_revoke,
        .waiver_find = sqlite_waiver_find,
        .run_invalidate = sqlite_run_invalidate,
        .rejudgement_add = sqlite_rejudgement_add,
        .services_list = sqlite_services_list,
        .history = sqlite_history,
        .trend = sqlite_trend,
        .trend_points = sqlite_trend_points,
        .metrics_snapshot = sqlite_metrics_snapshot,
        .probe_blob_save = sqlite_probe_blob_save,
        .probe_blob_get = sqlite_probe_blob_get,
        .probe_timeline_save = sqlite_probe_timeline_save,
        .probe_timeline_get = sqlite_probe_timeline_get,
        .audit_add = sqlite_audit_add,
        .audit_list = sqlite_audit_list,
        .run_service = sqlite_run_service,
        .schema_latest = sqlite_schema_latest,
        .run_get = sqlite_run_get,
        .run_history = sqlite_run_history,
        .spec_put = sqlite_spec_put,
        .spec_get = sqlite_spec_get,
        .specs_list = sqlite_specs_list,
        .shared = false,
        .node_beat = sqlite_node_beat,
        .run_claim = sqlite_run_claim,
        .leases_expire = sqlite_leases_expire,
        .run_cancel_request = sqlite_run_cancel_request,
        .run_release = sqlite_run_release,
        .queued_hint = sqlite_queued_hint,
};
