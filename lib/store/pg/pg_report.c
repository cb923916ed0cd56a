/* pg_report: what GET /metrics needs from the PostgreSQL store in one call
 * (store.h, store_metrics_snapshot): run counts by state, the database
 * size and, per service and environment, the last verdict (pg_gates_latest)
 * with the values its gates measured. Three round trips whatever the
 * number of services: the counts with the size, the latest verdicts, and
 * the gate values of all their runs at once (gate_results' primary key).
 *
 * It must not know the exposition format: lib/report/metrics.c renders.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "lib/store/pg/pg_internal.h"

#define SNAPSHOT_MAX_SERVICES 1000 /* series per scrape stay bounded */
#define ID_TEXT_MAX           21   /* "-9223372036854775808" and a comma */

/* {state: n} in state order (as SQLite's GROUP BY gives them) and the
 * size of the whole database, which the first row carries (state NULL):
 * a database shared with others counts theirs too. */
static int counts_and_size(struct store *st, json_t *by, json_int_t *ret_size)
{
	static const char sql[] = "SELECT NULL, pg_database_size(current_database()) "
	                          "UNION ALL (SELECT state, count(*) FROM runs GROUP BY state "
	                          "ORDER BY state COLLATE \"C\")";
	PGresult *res = NULL;
	int r = pg_exec(st, sql, 0, NULL, &res, "count runs");

	if (r < 0)
		return r;
	for (int i = 0; r == 0 && i < PQntuples(res); i++) {
		if (pg_null(res, i, 0))
			*ret_size = pg_get_i64(res, i, 1);
		else if (json_object_set_new(by, pg_get_text(res, i, 0),
		                             json_integer(pg_get_i64(res, i, 1))) < 0)
			r = pg_oom(st);
	}
	PQclear(res);
	return r;
}

/* The run ids of gates as a bigint[] literal, "{1,2,3}". Caller frees. */
static char *run_ids(json_t *gates)
{
	size_t cap = json_array_size(gates) * ID_TEXT_MAX + 3, len = 1, i;
	char *text = malloc(cap);
	json_t *g;

	if (!text)
		return NULL;
	text[0] = '{';
	json_array_foreach (gates, i, g)
		len += (size_t)snprintf(text + len, cap - len, "%s%" PRId64, i ? "," : "",
		                        (int64_t)json_integer_value(json_object_get(g, "run_id")));
	snprintf(text + len, cap - len, "}");
	return text;
}

/* The values object of each gate entry, keyed by its run id (a run is
 * the latest of one service and environment only). */
static int values_by_run(struct store *st, json_t *gates, json_t *by_run)
{
	char id[ID_TEXT_MAX + 1];
	json_t *g, *values;
	size_t i;

	json_array_foreach (gates, i, g) {
		values = json_object();
		snprintf(id, sizeof(id), "%" PRId64,
		         (int64_t)json_integer_value(json_object_get(g, "run_id")));
		if (!values || json_object_set_new(g, "values", values) < 0 ||
		    json_object_set(by_run, id, values) < 0)
			return pg_oom(st);
	}
	return 0;
}

/* Fills each gate entry's values: {metric: value} of its run's gates,
 * numbers only, the first gate of a metric winning (idx order). */
static int add_gate_values(struct store *st, json_t *gates)
{
	static const char sql[] = "SELECT run_id, metric, value FROM gate_results "
	                          "WHERE run_id = ANY($1::bigint[]) AND metric IS NOT NULL "
	                          "AND value IS NOT NULL ORDER BY run_id, idx";
	json_t *by_run = json_object(), *values;
	const char *params[1] = {NULL};
	PGresult *res = NULL;
	char *ids = run_ids(gates);
	int r = by_run && ids ? values_by_run(st, gates, by_run) : pg_oom(st);

	params[0] = ids;
	if (r == 0 && json_array_size(gates) > 0)
		r = pg_exec(st, sql, 1, params, &res, "read gate values");
	for (int i = 0; r == 0 && res && i < PQntuples(res); i++) {
		const char *metric = pg_get_text(res, i, 1);

		values = json_object_get(by_run, pg_get_text(res, i, 0));
		if (!values || json_object_get(values, metric))
			continue;
		if (json_object_set_new(values, metric, json_real(pg_get_dbl(res, i, 2))) < 0)
			r = pg_oom(st);
	}
	PQclear(res);
	free(ids);
	json_decref(by_run);
	return r;
}

int pg_metrics_snapshot(struct store *st, json_t **ret_snap)
{
	json_t *by = json_object(), *gates = NULL, *snap = NULL;
	json_int_t size = 0;
	int r;

	if (!by)
		return pg_oom(st);
	r = counts_and_size(st, by, &size);
	if (r == 0)
		r = pg_gates_latest(st, &gates);
	while (r == 0 && json_array_size(gates) > SNAPSHOT_MAX_SERVICES)
		json_array_remove(gates, json_array_size(gates) - 1);
	if (r == 0)
		r = add_gate_values(st, gates);
	if (r == 0) {
		snap = json_pack("{s:O, s:I, s:O}", "runs_by_state", by, "db_size_bytes", size,
		                 "gates", gates);
		r = snap ? 0 : pg_oom(st);
	}
	json_decref(by);
	json_decref(gates);
	if (r == 0)
		*ret_snap = snap;
	return r;
}
