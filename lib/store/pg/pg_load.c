/* pg_load: the load engine's measurements beside their probe on
 * PostgreSQL (raw_histograms, raw_timelines of
 * migrations/postgresql/0001_init.sql): serialized histograms, so a
 * stored run's percentiles can be recomputed exactly (rejudge), and the
 * per-second timeline.
 *
 * Histograms travel as bytea in binary both ways (pg_exec_bin): no hex
 * text to double their size. It neither parses nor checks them: bytes in,
 * the same bytes out. Each save is one statement, so one round trip and
 * its own transaction, fenced as the run's other writes (store_fence).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/store/pg/pg_internal.h"
#include "lib/util/json_text.h"
#include "lib/util/util.h"

#define STORE_BLOB_MAX (64 * 1024 * 1024)

int pg_probe_blob_save(struct store *st, int64_t run_id, size_t idx, const char *name,
                       const void *data, size_t len)
{
	static const char sql[] =
	        "INSERT INTO raw_histograms (run_id, probe_idx, name, data) "
	        "SELECT $1::bigint, $2::integer, $3::text, $4::bytea "
	        "WHERE " PG_FENCE_OK("$1", "$5") " "
	                                         "ON CONFLICT (run_id, probe_idx, name) "
	                                         "DO UPDATE SET data = EXCLUDED.data";
	struct pg_num run, pidx;
	const char *params[5];
	int lengths[5] = {0, 0, 0, (int)len, 0}, formats[5] = {0, 0, 0, 1, 0};
	PGresult *res = NULL;
	int r;

	if (idx > INT32_MAX || len > STORE_BLOB_MAX || !name || !data) {
		pg_set_errf(st, "Failed to save a histogram: bad arguments");
		return -EINVAL;
	}
	params[0] = pg_i64(&run, run_id);
	params[1] = pg_i64(&pidx, (int64_t)idx);
	params[2] = name;
	params[3] = data;
	params[4] = pg_fence_param(st);
	r = pg_exec_bin(st, sql, 5, params, lengths, formats, false, &res, "save a histogram");
	if (r == 0 && params[4] && pg_changed_rows(res) == 0)
		r = pg_fence_refused(st, run_id, "a histogram");
	PQclear(res);
	return r;
}

int pg_probe_blob_get(struct store *st, int64_t run_id, size_t idx, const char *name,
                      void **ret_data, size_t *ret_len)
{
	static const char sql[] = "SELECT data FROM raw_histograms WHERE run_id = $1 "
	                          "AND probe_idx = $2 AND name = $3";
	struct pg_num run, pidx;
	const char *params[] = {pg_i64(&run, run_id), pg_i64(&pidx, (int64_t)idx), name};
	PGresult *res = NULL;
	size_t n;
	void *copy;
	int r;

	if (idx > INT32_MAX || !name) /* none saved: as SQLite finds none */
		return -ENOENT;
	r = pg_exec_bin(st, sql, 3, params, NULL, NULL, true, &res, "read a histogram");
	if (r < 0)
		return r;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return -ENOENT;
	}
	n = (size_t)PQgetlength(res, 0, 0);
	copy = malloc(n ? n : 1);
	if (copy && n)
		memcpy(copy, PQgetvalue(res, 0, 0), n);
	PQclear(res);
	if (!copy)
		return pg_oom(st);
	*ret_data = copy;
	*ret_len = n;
	return 0;
}

/* A timeline's percentile: a number, or null (not measured, NaN). */
static json_t *num_or_null(json_t *v)
{
	if (!json_is_number(v) || !isfinite(json_number_value(v)))
		return json_null();
	return json_real(json_number_value(v));
}

/* The timeline as rows [second, requests, errors, p50_ms, p99_ms], each
 * entry checked as SQLite's backend checks it. */
static int timeline_rows(struct store *st, json_t *timeline, json_t **ret)
{
	json_t *rows = json_array(), *e, *row;
	size_t i;

	if (!rows)
		return pg_oom(st);
	json_array_foreach (timeline, i, e) {
		json_t *sec = json_object_get(e, "second"), *req = json_object_get(e, "requests"),
		       *err = json_object_get(e, "errors");

		if (!json_is_integer(sec) || !json_is_integer(req) || !json_is_integer(err)) {
			json_decref(rows);
			pg_set_errf(st,
			            "Failed to save a timeline: an entry lacks second, requests "
			            "or errors");
			return -EINVAL;
		}
		row = json_pack("[O, O, O, o, o]", sec, req, err,
		                num_or_null(json_object_get(e, "p50_ms")),
		                num_or_null(json_object_get(e, "p99_ms")));
		if (!row || json_array_append_new(rows, row) < 0) {
			json_decref(rows);
			return pg_oom(st);
		}
	}
	*ret = rows;
	return 0;
}

int pg_probe_timeline_save(struct store *st, int64_t run_id, size_t idx, json_t *timeline)
{
	/* The whole timeline in one statement. A second given twice: the
	 * later entry wins, as SQLite's INSERT OR REPLACE of each in turn
	 * (ON CONFLICT may not touch one row twice in one statement). */
	static const char sql[] =
	        "INSERT INTO raw_timelines (run_id, probe_idx, second, requests, errors, p50_ms, "
	        "p99_ms) SELECT DISTINCT ON (second) $1::bigint, $2::integer, second, requests, "
	        "errors, p50_ms, p99_ms FROM (SELECT (e->>0)::integer AS second, "
	        "(e->>1)::bigint AS requests, (e->>2)::bigint AS errors, "
	        "(e->>3)::double precision AS p50_ms, (e->>4)::double precision AS p99_ms, n "
	        "FROM json_array_elements($3::json) WITH ORDINALITY AS t(e, n)) x "
	        "WHERE " PG_FENCE_OK(
	                "$1",
	                "$4") " ORDER BY second, n DESC "
	                      "ON CONFLICT (run_id, probe_idx, second) DO UPDATE SET requests = "
	                      "EXCLUDED.requests, errors = EXCLUDED.errors, p50_ms = EXCLUDED.p50_ms, "
	                      "p99_ms = EXCLUDED.p99_ms";
	struct pg_num run, pidx;
	const char *params[4];
	PGresult *res = NULL;
	json_t *rows = NULL;
	char *text;
	int r;

	if (idx > INT32_MAX || !json_is_array(timeline)) {
		pg_set_errf(st, "Failed to save a timeline: bad arguments");
		return -EINVAL;
	}
	r = timeline_rows(st, timeline, &rows);
	if (r < 0 || json_array_size(rows) == 0) {
		json_decref(rows);
		return r;
	}
	text = rd_json_dumps(rows, JSON_COMPACT);
	json_decref(rows);
	if (!text)
		return pg_oom(st);
	params[0] = pg_i64(&run, run_id);
	params[1] = pg_i64(&pidx, (int64_t)idx);
	params[2] = text;
	params[3] = pg_fence_param(st);
	r = pg_exec(st, sql, 4, params, &res, "save a timeline");
	free(text);
	if (r == 0 && params[3] && pg_changed_rows(res) == 0)
		r = pg_fence_refused(st, run_id, "a timeline");
	PQclear(res);
	return r;
}

int pg_probe_timeline_get(struct store *st, int64_t run_id, size_t idx, json_t **ret_timeline)
{
	static const struct store_col cols[] = {
	        {"second", COL_INT, true},   {"requests", COL_INT, true}, {"errors", COL_INT, true},
	        {"p50_ms", COL_REAL, false}, {"p99_ms", COL_REAL, false},
	};
	static const char sql[] = "SELECT second, requests, errors, p50_ms, p99_ms FROM "
	                          "raw_timelines WHERE run_id = $1 AND probe_idx = $2 "
	                          "ORDER BY second";
	struct pg_num run, pidx;
	const char *params[] = {pg_i64(&run, run_id), pg_i64(&pidx, (int64_t)idx)};
	PGresult *res = NULL;
	int r;

	if (idx > INT32_MAX) { /* none saved (probe_idx is an INTEGER) */
		*ret_timeline = json_array();
		return *ret_timeline ? 0 : pg_oom(st);
	}
	r = pg_exec(st, sql, 2, params, &res, "read a timeline");
	if (r < 0)
		return r;
	r = pg_rows_to_array(st, res, cols, RD_ARRAY_SIZE(cols), ret_timeline);
	PQclear(res);
	return r;
}
