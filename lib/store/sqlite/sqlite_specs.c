/* sqlite_specs: stored specs (migrations/0006_stored_specs.sql): the spec
 * a service is gated with in one environment, one row per version. A new
 * version is the next number in the same write transaction, so two puts
 * never share one. The rows are kept as sent; what a run is built from
 * and who may read them is the API's business.
 *
 * Same rules as sqlite.c: main thread for the write connection, SQLite
 * codes turned into -errno with a message for sqlite_errmsg().
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "lib/store/sqlite/sqlite_internal.h"
#include "lib/util/util.h"

#define SPECS_LIST_MAX 10000 /* rows one list reads */

static int prepare(struct store *st, const char *sql, sqlite3_stmt **ret)
{
	int rc = sqlite3_prepare_v2(sqlite_db(st), sql, -1, ret, NULL);

	return rc == SQLITE_OK ? 0 : sqlite_db_fail(st, rc, "prepare a query");
}

static bool spec_new_valid(const struct store_spec_new *s)
{
	json_t *doc;
	bool ok;

	if (!s || !s->service || !s->environment || !s->format || !s->text || !s->doc_json ||
	    s->created_at <= 0 ||
	    (strcmp(s->format, "yaml") != 0 && strcmp(s->format, "json") != 0))
		return false;
	doc = json_loads(s->doc_json, 0, NULL);
	ok = json_is_object(doc);
	json_decref(doc);
	return ok;
}

/* The next version of service/environment: 1 + the highest so far. */
static int next_version(struct store *st, const struct store_spec_new *n, int64_t *ret)
{
	sqlite3_stmt *s = NULL;
	int rc, r = prepare(st,
	                    "SELECT COALESCE(MAX(version), 0) + 1 FROM stored_specs "
	                    "WHERE service = ?1 AND environment = ?2",
	                    &s);

	if (r < 0)
		return r;
	sqlite3_bind_text(s, 1, n->service, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, n->environment, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*ret = sqlite3_column_int64(s, 0);
	else
		r = sqlite_db_fail(st, rc, "number a stored spec");
	sqlite3_finalize(s);
	return r;
}

static int insert(struct store *st, const struct store_spec_new *n, int64_t version)
{
	static const char sql[] = "INSERT INTO stored_specs (service, environment, version, "
	                          "format, text, doc, created_by, created_at) "
	                          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
	sqlite3_stmt *s = NULL;
	int rc, r = prepare(st, sql, &s);

	if (r < 0)
		return r;
	if ((rc = sqlite3_bind_text(s, 1, n->service, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(s, 2, n->environment, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 3, version)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(s, 4, n->format, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(s, 5, n->text, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(s, 6, n->doc_json, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = n->created_by ? sqlite3_bind_text(s, 7, n->created_by, -1, SQLITE_STATIC)
	                        : sqlite3_bind_null(s, 7)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 8, n->created_at)) != SQLITE_OK ||
	    (rc = sqlite3_step(s)) != SQLITE_DONE)
		r = sqlite_db_fail(st, rc, "store a spec");
	sqlite3_finalize(s);
	return r;
}

int sqlite_spec_put(struct store *st, const struct store_spec_new *s, int64_t *ret_version)
{
	int64_t version = 0;
	int r;

	if (!spec_new_valid(s)) {
		sqlite_set_errf(st,
		                "Failed to store a spec: service, environment, format (yaml or "
		                "json), text, a JSON object and the creation time are required");
		return -EINVAL;
	}
	r = sqlite_tx_begin(st, true);
	if (r < 0)
		return r;
	r = next_version(st, s, &version);
	if (r == 0)
		r = insert(st, s, version);
	r = sqlite_tx_end(st, r);
	if (r < 0)
		return r;
	*ret_version = version;
	return 0;
}

/* The row s stands on as the stored spec resource. */
static int row_to_spec(struct store *st, sqlite3_stmt *s, json_t **ret)
{
	char at[RD_TIME_LEN];
	json_t *doc, *o;

	doc = json_loads((const char *)sqlite3_column_text(s, 5), 0, NULL);
	if (!doc) {
		sqlite_set_errf(st, "Failed to read a stored spec: its document is not JSON");
		return -EIO;
	}
	rd_time_format(sqlite3_column_int64(s, 7), at);
	o = json_pack("{s:s, s:s, s:I, s:s, s:s, s:o, s:s?, s:s}", "service",
	              (const char *)sqlite3_column_text(s, 0), "environment",
	              (const char *)sqlite3_column_text(s, 1), "version",
	              (json_int_t)sqlite3_column_int64(s, 2), "format",
	              (const char *)sqlite3_column_text(s, 3), "text",
	              (const char *)sqlite3_column_text(s, 4), "spec", doc, "created_by",
	              (const char *)sqlite3_column_text(s, 6), "created_at", at);
	if (!o) {
		sqlite_set_errf(st, "Failed to build a result: out of memory");
		return -ENOMEM;
	}
	*ret = o;
	return 0;
}

int sqlite_spec_get(struct store *st, const char *service, const char *environment, int64_t version,
                    json_t **ret_spec)
{
	/* ?3 = 0 picks the latest: the primary key walked backwards. */
	static const char sql[] = "SELECT service, environment, version, format, text, doc, "
	                          "created_by, created_at FROM stored_specs "
	                          "WHERE service = ?1 AND environment = ?2 "
	                          "AND (?3 = 0 OR version = ?3) ORDER BY version DESC LIMIT 1";
	sqlite3_stmt *s = NULL;
	int rc, r;

	if (!service || !environment || version < 0) {
		sqlite_set_errf(st, "Failed to read a stored spec: service and environment "
		                    "are required");
		return -EINVAL;
	}
	r = prepare(st, sql, &s);
	if (r < 0)
		return r;
	sqlite3_bind_text(s, 1, service, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, environment, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, version);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		r = row_to_spec(st, s, ret_spec);
	} else if (rc == SQLITE_DONE) {
		sqlite_set_errf(st, "no stored spec for %s in %s", service, environment);
		r = -ENOENT;
	} else {
		r = sqlite_db_fail(st, rc, "read a stored spec");
	}
	sqlite3_finalize(s);
	return r;
}

/* Appends {version, created_by, created_at} of row s to the entry of its
 * environment, the last item of items or a new one. */
static int list_add(json_t *items, sqlite3_stmt *s)
{
	const char *env = (const char *)sqlite3_column_text(s, 0);
	json_t *last = json_array_get(items, json_array_size(items) - 1), *v;
	char at[RD_TIME_LEN];

	if (!last || strcmp(json_string_value(json_object_get(last, "environment")), env) != 0) {
		last = json_pack("{s:s, s:I, s:[]}", "environment", env, "latest",
		                 (json_int_t)sqlite3_column_int64(s, 1), "versions");
		if (!last || json_array_append_new(items, last) < 0)
			return -ENOMEM;
	}
	rd_time_format(sqlite3_column_int64(s, 3), at);
	v = json_pack("{s:I, s:s?, s:s}", "version", (json_int_t)sqlite3_column_int64(s, 1),
	              "created_by", (const char *)sqlite3_column_text(s, 2), "created_at", at);
	if (!v || json_array_append_new(json_object_get(last, "versions"), v) < 0)
		return -ENOMEM;
	return 0;
}

int sqlite_specs_list(struct store *st, const char *service, json_t **ret_items)
{
	static const char sql[] = "SELECT environment, version, created_by, created_at "
	                          "FROM stored_specs WHERE service = ?1 "
	                          "ORDER BY environment, version DESC LIMIT ?2";
	sqlite3_stmt *s = NULL;
	json_t *items = json_array();
	int rc = SQLITE_DONE, r = items ? prepare(st, sql, &s) : -ENOMEM;

	if (r == 0) {
		sqlite3_bind_text(s, 1, service, -1, SQLITE_STATIC);
		sqlite3_bind_int(s, 2, SPECS_LIST_MAX);
	}
	while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW)
		r = list_add(items, s);
	if (r == -ENOMEM)
		sqlite_set_errf(st, "Failed to build a result: out of memory");
	else if (r == 0 && rc != SQLITE_DONE)
		r = sqlite_db_fail(st, rc, "list stored specs");
	sqlite3_finalize(s);
	if (r < 0) {
		json_decref(items);
		return r;
	}
	*ret_items = items;
	return 0;
}
