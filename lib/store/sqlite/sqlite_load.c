/* sqlite_load: the load engine's measurements beside their probe
 * (migrations/0002_load.sql): serialized histograms, so a stored run's
 * percentiles can be recomputed exactly (rejudge), and the per-second
 * timeline. Same rules as sqlite.c (sqlite_internal.h): main thread for
 * the write connection, every SQLite code turned into -errno with a
 * sentence for sqlite_errmsg(). It neither parses nor checks histograms:
 * bytes in, the same bytes out.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/store/store.h"
#include "lib/store/sqlite/sqlite_internal.h"

#define STORE_BLOB_MAX (64 * 1024 * 1024)

static int prepare(struct store *st, const char *sql, sqlite3_stmt **ret)
{
	int rc = sqlite3_prepare_v2(sqlite_db(st), sql, -1, ret, NULL);

	return rc == SQLITE_OK ? 0 : sqlite_db_fail(st, rc, "prepare a statement");
}

static int blob_insert(struct store *st, int64_t run_id, size_t idx, const char *name,
                       const void *data, size_t len)
{
	sqlite3_stmt *s = NULL;
	int rc, r;

	r = prepare(st,
	            "INSERT OR REPLACE INTO raw_histograms (run_id, probe_idx, name, data) "
	            "VALUES (?1, ?2, ?3, ?4)",
	            &s);
	if (r < 0)
		return r;
	if ((rc = sqlite3_bind_int64(s, 1, run_id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 2, (int64_t)idx)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(s, 3, name, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_blob64(s, 4, data, len, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_step(s)) != SQLITE_DONE)
		r = sqlite_db_fail(st, rc, "save a histogram");
	sqlite3_finalize(s);
	return r;
}

int sqlite_probe_blob_save(struct store *st, int64_t run_id, size_t idx, const char *name,
                           const void *data, size_t len)
{
	int r;

	if (idx > INT32_MAX || len > STORE_BLOB_MAX || !name || !data) {
		sqlite_set_errf(st, "Failed to save a histogram: bad arguments");
		return -EINVAL;
	}
	r = sqlite_tx_begin(st, true);
	if (r < 0)
		return r;
	r = blob_insert(st, run_id, idx, name, data, len);
	return sqlite_tx_end(st, r);
}

static int blob_copy(sqlite3_stmt *s, void **ret_data, size_t *ret_len)
{
	const void *b = sqlite3_column_blob(s, 0);
	size_t n = (size_t)sqlite3_column_bytes(s, 0);
	void *copy = malloc(n ? n : 1);

	if (!copy)
		return -ENOMEM;
	if (n)
		memcpy(copy, b, n);
	*ret_data = copy;
	*ret_len = n;
	return 0;
}

int sqlite_probe_blob_get(struct store *st, int64_t run_id, size_t idx, const char *name,
                          void **ret_data, size_t *ret_len)
{
	sqlite3_stmt *s = NULL;
	int rc, r;

	r = prepare(st,
	            "SELECT data FROM raw_histograms WHERE run_id = ?1 AND probe_idx = ?2 "
	            "AND name = ?3",
	            &s);
	if (r < 0)
		return r;
	if ((rc = sqlite3_bind_int64(s, 1, run_id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 2, (int64_t)idx)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(s, 3, name, -1, SQLITE_STATIC)) != SQLITE_OK) {
		r = sqlite_db_fail(st, rc, "bind a value");
	} else {
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW)
			r = blob_copy(s, ret_data, ret_len);
		else if (rc == SQLITE_DONE)
			r = -ENOENT;
		else
			r = sqlite_db_fail(st, rc, "read a histogram");
	}
	sqlite3_finalize(s);
	return r;
}

static int bind_num_or_null(sqlite3_stmt *s, int col, json_t *v)
{
	if (!json_is_number(v) || isnan(json_number_value(v)))
		return sqlite3_bind_null(s, col);
	return sqlite3_bind_double(s, col, json_number_value(v));
}

static int timeline_row(struct store *st, sqlite3_stmt *s, int64_t run_id, size_t idx, json_t *e)
{
	json_t *sec = json_object_get(e, "second"), *req = json_object_get(e, "requests"),
	       *err = json_object_get(e, "errors");
	int rc;

	if (!json_is_integer(sec) || !json_is_integer(req) || !json_is_integer(err)) {
		sqlite_set_errf(st, "Failed to save a timeline: an entry lacks second, requests "
		                    "or errors");
		return -EINVAL;
	}
	if ((rc = sqlite3_bind_int64(s, 1, run_id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 2, (int64_t)idx)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 3, json_integer_value(sec))) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 4, json_integer_value(req))) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 5, json_integer_value(err))) != SQLITE_OK ||
	    (rc = bind_num_or_null(s, 6, json_object_get(e, "p50_ms"))) != SQLITE_OK ||
	    (rc = bind_num_or_null(s, 7, json_object_get(e, "p99_ms"))) != SQLITE_OK ||
	    (rc = sqlite3_step(s)) != SQLITE_DONE) {
		sqlite3_reset(s);
		return sqlite_db_fail(st, rc, "save a timeline second");
	}
	sqlite3_reset(s);
	return 0;
}

int sqlite_probe_timeline_save(struct store *st, int64_t run_id, size_t idx, json_t *timeline)
{
	sqlite3_stmt *s = NULL;
	json_t *e;
	size_t i;
	int r;

	if (idx > INT32_MAX || !json_is_array(timeline)) {
		sqlite_set_errf(st, "Failed to save a timeline: bad arguments");
		return -EINVAL;
	}
	r = sqlite_tx_begin(st, true);
	if (r < 0)
		return r;
	r = prepare(st,
	            "INSERT OR REPLACE INTO raw_timelines (run_id, probe_idx, second, requests, "
	            "errors, p50_ms, p99_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	            &s);
	json_array_foreach (timeline, i, e) {
		if (r < 0)
			break;
		r = timeline_row(st, s, run_id, idx, e);
	}
	sqlite3_finalize(s);
	return sqlite_tx_end(st, r);
}

static json_t *timeline_entry(sqlite3_stmt *s)
{
	json_t *e = json_pack("{s:I, s:I, s:I}", "second", (json_int_t)sqlite3_column_int64(s, 0),
	                      "requests", (json_int_t)sqlite3_column_int64(s, 1), "errors",
	                      (json_int_t)sqlite3_column_int64(s, 2));

	if (e) {
		json_object_set_new(e, "p50_ms",
		                    sqlite3_column_type(s, 3) == SQLITE_NULL
		                            ? json_null()
		                            : json_real(sqlite3_column_double(s, 3)));
		json_object_set_new(e, "p99_ms",
		                    sqlite3_column_type(s, 4) == SQLITE_NULL
		                            ? json_null()
		                            : json_real(sqlite3_column_double(s, 4)));
	}
	return e;
}

int sqlite_probe_timeline_get(struct store *st, int64_t run_id, size_t idx, json_t **ret_timeline)
{
	sqlite3_stmt *s = NULL;
	json_t *arr = json_array();
	int rc = SQLITE_DONE, r;

	if (!arr)
		return -ENOMEM;
	r = prepare(st,
	            "SELECT second, requests, errors, p50_ms, p99_ms FROM raw_timelines "
	            "WHERE run_id = ?1 AND probe_idx = ?2 ORDER BY second",
	            &s);
	if (r == 0 && ((rc = sqlite3_bind_int64(s, 1, run_id)) != SQLITE_OK ||
	               (rc = sqlite3_bind_int64(s, 2, (int64_t)idx)) != SQLITE_OK))
		r = sqlite_db_fail(st, rc, "bind a value");
	while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		json_t *e = timeline_entry(s);

		if (!e || json_array_append_new(arr, e) < 0)
			r = -ENOMEM;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = sqlite_db_fail(st, rc, "read a timeline");
	sqlite3_finalize(s);
	if (r < 0) {
		json_decref(arr);
		return r;
	}
	*ret_timeline = arr;
	return 0;
}
