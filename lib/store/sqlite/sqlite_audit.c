/* sqlite_audit: the audit trail (migrations/0004_audit.sql) and what
 * scoped tokens need from the store: a run's service, and the SQL
 * function readyd_in_scope(service, scope) that filters lists by a
 * token's service patterns (lib/policy/scope.h) inside the query, so pages
 * stay full and cursors stay right.
 *
 * Same rules as sqlite.c: main thread for the write connection, SQLite
 * codes turned into -errno with a message for sqlite_errmsg().
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "lib/policy/scope.h"
#include "lib/store/sqlite/sqlite_internal.h"
#include "lib/util/util.h"

static int prepare(struct store *st, const char *sql, sqlite3_stmt **ret)
{
	int rc = sqlite3_prepare_v2(sqlite_db(st), sql, -1, ret, NULL);

	return rc == SQLITE_OK ? 0 : sqlite_db_fail(st, rc, "prepare a query");
}

static int bind_opt(sqlite3_stmt *s, int i, const char *v)
{
	return v ? sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(s, i);
}

static int bind_id(sqlite3_stmt *s, int i, int64_t v)
{
	return v > 0 ? sqlite3_bind_int64(s, i, v) : sqlite3_bind_null(s, i);
}

int sqlite_audit_add(struct store *st, const struct store_audit_new *a)
{
	static const char sql[] = "INSERT INTO audit (at, action, actor, service, run_id, "
	                          "waiver_id, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
	sqlite3_stmt *s = NULL;
	int rc, r = prepare(st, sql, &s);

	if (r < 0)
		return r;
	if ((rc = sqlite3_bind_int64(s, 1, a->at)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(s, 2, a->action, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = bind_opt(s, 3, a->by)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(s, 4, a->service, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = bind_id(s, 5, a->run_id)) != SQLITE_OK ||
	    (rc = bind_id(s, 6, a->waiver_id)) != SQLITE_OK ||
	    (rc = bind_opt(s, 7, a->reason)) != SQLITE_OK ||
	    (rc = sqlite3_step(s)) != SQLITE_DONE) {
		r = sqlite_db_fail(st, rc, "record a change");
		sqlite3_finalize(s);
		return r;
	}
	sqlite3_finalize(s);
	return 0;
}

/* One audit row as {action, by, at, reason?}. */
static json_t *audit_row(sqlite3_stmt *s)
{
	char at[RD_TIME_LEN];
	json_t *o;

	rd_time_format(sqlite3_column_int64(s, 2), at);
	o = json_pack("{s:s, s:s?, s:s}", "action", (const char *)sqlite3_column_text(s, 0), "by",
	              (const char *)sqlite3_column_text(s, 1), "at", at);
	if (o && sqlite3_column_type(s, 3) != SQLITE_NULL)
		json_object_set_new(o, "reason",
		                    json_string((const char *)sqlite3_column_text(s, 3)));
	return o;
}

int sqlite_audit_list(struct store *st, int64_t run_id, int64_t waiver_id, json_t **ret_changes)
{
	const char *sql = run_id > 0 ? "SELECT action, actor, at, reason FROM audit "
	                               "WHERE run_id = ?1 ORDER BY id"
	                             : "SELECT action, actor, at, reason FROM audit "
	                               "WHERE waiver_id = ?1 ORDER BY id";
	sqlite3_stmt *s = NULL;
	json_t *arr = json_array(), *row;
	int rc = SQLITE_DONE, r = arr ? prepare(st, sql, &s) : -ENOMEM;

	if (r == 0)
		sqlite3_bind_int64(s, 1, run_id > 0 ? run_id : waiver_id);
	while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		row = audit_row(s);
		if (!row || json_array_append_new(arr, row) < 0)
			r = -ENOMEM;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = sqlite_db_fail(st, rc, "read the changes");
	sqlite3_finalize(s);
	if (r < 0) {
		json_decref(arr);
		return r;
	}
	*ret_changes = arr;
	return 0;
}

int sqlite_run_service(struct store *st, int64_t id, char *buf, size_t len)
{
	sqlite3_stmt *s = NULL;
	int rc, r = prepare(st, "SELECT service FROM runs WHERE id = ?1", &s);

	if (r < 0)
		return r;
	sqlite3_bind_int64(s, 1, id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		snprintf(buf, len, "%s", (const char *)sqlite3_column_text(s, 0));
	else if (rc == SQLITE_DONE)
		sqlite_set_errf(st, "no run %" PRId64, id);
	r = rc == SQLITE_ROW    ? 0
	    : rc == SQLITE_DONE ? -ENOENT
	                        : sqlite_db_fail(st, rc, "read a run");
	sqlite3_finalize(s);
	return r;
}

static void sql_in_scope(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const char *service = (const char *)sqlite3_value_text(argv[0]);
	const char *scope = (const char *)sqlite3_value_text(argv[1]);

	sqlite3_result_int(ctx, scope_allows(scope, service));
}

int sqlite_scope_register(sqlite3 *db)
{
	int rc = sqlite3_create_function_v2(db, "readyd_in_scope", 2,
	                                    SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, sql_in_scope,
	                                    NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : -ENOMEM;
}
