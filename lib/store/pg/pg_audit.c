/* pg_audit: the audit trail on PostgreSQL (the audit table of
 * migrations/postgresql/0001_init.sql): changes made through the API,
 * recorded and read back per run or per waiver, oldest first. One
 * statement each, so no transaction of its own: inside store_run_get's
 * read it sees the same snapshot as the run.
 *
 * It must not decide who may see a change: that is the API's business.
 */
#include <errno.h>

#include "lib/store/pg/pg_internal.h"
#include "lib/util/util.h"

int pg_audit_add(struct store *st, const struct store_audit_new *a)
{
	static const char sql[] = "INSERT INTO audit (at, action, actor, service, run_id, "
	                          "waiver_id, reason) VALUES ($1, $2, $3, $4, $5, $6, $7)";
	struct pg_num at, run, waiver;
	const char *params[] = {
	        pg_i64(&at, a->at),
	        a->action,
	        a->by,
	        a->service,
	        a->run_id > 0 ? pg_i64(&run, a->run_id) : NULL,
	        a->waiver_id > 0 ? pg_i64(&waiver, a->waiver_id) : NULL,
	        a->reason,
	};

	return pg_exec(st, sql, 7, params, NULL, "record a change");
}

/* One audit row as {action, by, at, reason?}: reason only when given. */
static int audit_row(struct store *st, const PGresult *res, int row, json_t **ret)
{
	static const struct store_col cols[] = {
	        {"action", COL_TEXT, true}, {"by", COL_TEXT, false}, {"at", COL_TIME, true}};
	static const struct store_col reason = {"reason", COL_TEXT, false};
	json_t *o, *v;
	int r = pg_row_to_json(st, res, row, 0, cols, RD_ARRAY_SIZE(cols), &o);

	if (r < 0 || pg_null(res, row, 3)) {
		if (r == 0)
			*ret = o;
		return r;
	}
	r = pg_col_to_json(st, res, row, 3, &reason, &v);
	if (r == 0 && json_object_set_new(o, "reason", v) < 0)
		r = pg_oom(st);
	if (r < 0) {
		json_decref(o);
		return r;
	}
	*ret = o;
	return 0;
}

int pg_audit_list(struct store *st, int64_t run_id, int64_t waiver_id, json_t **ret_changes)
{
	/* Both use their partial index (audit_by_run, audit_by_waiver). */
	const char *sql = run_id > 0 ? "SELECT action, actor, at, reason FROM audit "
	                               "WHERE run_id = $1 ORDER BY id"
	                             : "SELECT action, actor, at, reason FROM audit "
	                               "WHERE waiver_id = $1 ORDER BY id";
	struct pg_num id;
	const char *params[] = {pg_i64(&id, run_id > 0 ? run_id : waiver_id)};
	PGresult *res = NULL;
	json_t *arr, *row;
	int r = pg_exec(st, sql, 1, params, &res, "read the changes");

	if (r < 0)
		return r;
	arr = json_array();
	r = arr ? 0 : pg_oom(st);
	for (int i = 0; r == 0 && i < PQntuples(res); i++) {
		r = audit_row(st, res, i, &row);
		if (r == 0 && json_array_append_new(arr, row) < 0)
			r = pg_oom(st);
	}
	PQclear(res);
	if (r < 0) {
		json_decref(arr);
		return r;
	}
	*ret_changes = arr;
	return 0;
}
