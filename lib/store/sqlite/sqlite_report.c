/* sqlite_report: what GET /metrics needs from the store in one call (see
 * store.h, store_metrics_snapshot): run counts by state, the database
 * size and, per service and environment, the last verdict with the
 * values its gates measured. Walks indexes only (runs_by_state,
 * runs_decided through store_gates_latest, gate_results' primary key).
 *
 * It must not know the exposition format: lib/report/metrics.c renders.
 */
#include <errno.h>
#include <sqlite3.h>

#include "lib/store/store.h"
#include "lib/store/sqlite/sqlite_internal.h"

#define SNAPSHOT_MAX_SERVICES 1000 /* series per scrape stay bounded */

static int finish(struct store *st, sqlite3_stmt *s, int rc, const char *what)
{
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : sqlite_db_fail(st, rc, what);
}

static int runs_by_state(struct store *st, json_t *out)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(
	        sqlite_db(st), "SELECT state, COUNT(*) FROM runs GROUP BY state", -1, &s, NULL);

	if (rc != SQLITE_OK)
		return sqlite_db_fail(st, rc, "prepare a count of runs");
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *state = (const char *)sqlite3_column_text(s, 0);

		if (state &&
		    json_object_set_new(out, state, json_integer(sqlite3_column_int64(s, 1))))
			return finish(st, s, SQLITE_NOMEM, "count runs");
	}
	return finish(st, s, rc, "count runs");
}

static int db_size(struct store *st, json_int_t *ret)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(sqlite_db(st),
	                            "SELECT page_count * page_size FROM pragma_page_count(), "
	                            "pragma_page_size()",
	                            -1, &s, NULL);

	if (rc != SQLITE_OK)
		return sqlite_db_fail(st, rc, "prepare the database size");
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*ret = sqlite3_column_int64(s, 0);
		rc = SQLITE_DONE;
	}
	return finish(st, s, rc, "read the database size");
}

/* {metric: value} of the gates of one run (numbers only; first wins). */
static int gate_values(struct store *st, sqlite3_stmt *s, json_int_t run_id, json_t *out)
{
	int rc;

	sqlite3_reset(s);
	sqlite3_bind_int64(s, 1, run_id);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *metric = (const char *)sqlite3_column_text(s, 0);

		if (!metric || sqlite3_column_type(s, 1) != SQLITE_FLOAT ||
		    json_object_get(out, metric))
			continue;
		if (json_object_set_new(out, metric, json_real(sqlite3_column_double(s, 1))))
			return -ENOMEM;
	}
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : sqlite_db_fail(st, rc, "read gate values");
}

static int add_gate_values(struct store *st, json_t *gates)
{
	sqlite3_stmt *s = NULL;
	size_t i;
	json_t *g;
	int r = 0,
	    rc = sqlite3_prepare_v2(sqlite_db(st),
	                            "SELECT metric, value FROM gate_results WHERE run_id = ?1 "
	                            "AND metric IS NOT NULL ORDER BY idx",
	                            -1, &s, NULL);

	if (rc != SQLITE_OK)
		return sqlite_db_fail(st, rc, "prepare gate values");
	json_array_foreach (gates, i, g) {
		json_t *values = json_object();

		if (!values || json_object_set_new(g, "values", values)) {
			r = -ENOMEM;
			break;
		}
		r = gate_values(st, s, json_integer_value(json_object_get(g, "run_id")), values);
		if (r < 0)
			break;
	}
	sqlite3_finalize(s);
	return r;
}

int sqlite_metrics_snapshot(struct store *st, json_t **ret_snap)
{
	json_t *by = json_object(), *gates = NULL, *snap = NULL;
	json_int_t size = 0;
	int r;

	if (!by)
		return -ENOMEM;
	r = runs_by_state(st, by);
	if (r == 0)
		r = db_size(st, &size);
	if (r == 0)
		r = sqlite_gates_latest(st, &gates);
	while (r == 0 && json_array_size(gates) > SNAPSHOT_MAX_SERVICES)
		json_array_remove(gates, json_array_size(gates) - 1);
	if (r == 0)
		r = add_gate_values(st, gates);
	if (r == 0) {
		snap = json_pack("{s:O, s:I, s:O}", "runs_by_state", by, "db_size_bytes", size,
		                 "gates", gates);
		r = snap ? 0 : -ENOMEM;
	}
	json_decref(by);
	json_decref(gates);
	if (r == 0)
		*ret_snap = snap;
	return r;
}
