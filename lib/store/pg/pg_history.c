/* pg_history: the PostgreSQL backend's history operations: latest
 * verdicts per service and environment, baselines, waivers, invalidation,
 * rejudgements, service lists, history pages, metric trends and
 * percentiles from stored histograms. The answers are those of
 * sqlite_history.c to the byte (keys, order, nulls, errors), so the API
 * cannot tell the backends apart.
 *
 * One statement per operation where it can be (the loop's connection
 * waits on each round trip), written so the plan walks an index and stops
 * early: skip scans where SQLite has them, LIMITs that stop index walks,
 * lookups kept out of the planner's reach where a join would read a whole
 * table. Lists people read are sorted byte-wise (COLLATE "C"), as SQLite
 * sorts, whatever the database's collation.
 *
 * It must not decide policy (what a waiver means for a gate is the
 * judge's business) nor know HTTP.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/loadgen/hist.h"
#include "lib/store/pg/pg_internal.h"
#include "lib/util/json_text.h"
#include "lib/util/run_state.h"
#include "lib/util/util.h"

#define HIST_LIST_MAX     1000
#define HIST_SERVICES_MAX 1000
#define HIST_TREND_MAX    10000
/* Two writers numbering a run's rejudgements at once: one retries. */
#define REJUDGE_TRIES 3

/* The states a run never leaves (run_state_is_final), for SQL. */
#define FINAL_STATES "('passed', 'failed', 'error', 'cancelled', 'interrupted')"

/* The most parameters a statement here takes. */
#define PARAMS_MAX 10

/* pg_exec with every parameter made valid UTF-8 first. PostgreSQL refuses
 * invalid bytes (SQLSTATE 22021) where SQLite takes them: a lookup by a
 * name with such bytes (a query string's ?environment=%FF) finds nothing
 * there instead of failing, and text kept reads back with '?' for them,
 * as the run's own texts are stored (pg_runs.c), so both match here. */
static int exec_valid(struct store *st, const char *sql, int n, const char *const *params,
                      PGresult **ret_res, const char *what)
{
	json_t *holds[PARAMS_MAX] = {NULL};
	const char *valid[PARAMS_MAX] = {NULL};
	int r = 0;

	if (n < 0 || n > PARAMS_MAX)
		return -E2BIG;

	for (int i = 0; i < n && r == 0; i++) {
		valid[i] = params[i];
		if (!params[i])
			continue;
		holds[i] = store_json_string_lossy(params[i], strlen(params[i]));
		if (holds[i])
			valid[i] = json_string_value(holds[i]);
		else
			r = pg_oom(st);
	}
	if (r == 0)
		r = pg_exec(st, sql, n, valid, ret_res, what);
	for (int i = 0; i < n; i++)
		json_decref(holds[i]);
	return r;
}

/* The first max rows of res as a new array of objects, in reverse order
 * when backwards. */
static int rows_array(struct store *st, const PGresult *res, const struct store_col *cols, size_t n,
                      int max, bool backwards, json_t **ret)
{
	int rows = PQntuples(res) < max ? PQntuples(res) : max;
	json_t *arr = json_array(), *row;
	int r = arr ? 0 : pg_oom(st);

	for (int i = 0; r == 0 && i < rows; i++) {
		r = pg_row_to_json(st, res, backwards ? rows - 1 - i : i, 0, cols, n, &row);
		if (r == 0 && json_array_append_new(arr, row) < 0)
			r = pg_oom(st);
	}
	if (r < 0) {
		json_decref(arr);
		return r;
	}
	*ret = arr;
	return 0;
}

/* Runs a query and returns its rows (up to max) as an array. */
static int query_rows(struct store *st, const char *sql, int n, const char *const *params,
                      const struct store_col *cols, size_t ncols, int max, json_t **ret,
                      const char *what)
{
	PGresult *res = NULL;
	int r = exec_valid(st, sql, n, params, &res, what);

	if (r < 0)
		return r;
	r = rows_array(st, res, cols, ncols, max, false, ret);
	PQclear(res);
	return r;
}

/* ---- Latest verdicts (GET /v1/gates) -------------------------------- */

/* A decided run. Must imply the predicate of the partial index
 * runs_decided, or the planner cannot use it. */
#define DECIDED "state IN ('passed', 'failed', 'error') AND invalidated_at IS NULL"

/* A skip scan over runs_decided (service, environment, id): the
 * recursive part hops from one (service, environment) pair to the next
 * with one index seek (a row comparison is an index condition), then
 * each pair's newest run is one backward seek. Cost grows with the number
 * of pairs, not of runs: 2.5 ms for 100 pairs of 100k runs, where
 * DISTINCT ON reads and sorts every decided run (250-500 ms). */
static const char gates_sql[] =
        "WITH RECURSIVE pairs(service, environment) AS ("
        " (SELECT service, environment FROM runs WHERE " DECIDED
        "  ORDER BY service, environment LIMIT 1)"
        " UNION ALL"
        " SELECT n.service, n.environment FROM pairs AS p CROSS JOIN LATERAL"
        " (SELECT service, environment FROM runs WHERE " DECIDED
        "  AND (service, environment) > (p.service, p.environment)"
        "  ORDER BY service, environment LIMIT 1) AS n) "
        "SELECT l.service, l.environment, l.verdict, l.id, l.version, l.finished_at "
        "FROM pairs AS p CROSS JOIN LATERAL"
        " (SELECT service, environment, verdict, id, version, finished_at FROM runs"
        "  WHERE " DECIDED " AND service = p.service AND environment = p.environment"
        "  ORDER BY id DESC LIMIT 1) AS l "
        "ORDER BY l.service COLLATE \"C\", l.environment COLLATE \"C\"";

int pg_gates_latest(struct store *st, json_t **ret_items)
{
	static const struct store_col cols[] = {
	        {"service", COL_TEXT, false}, {"environment", COL_TEXT, false},
	        {"verdict", COL_TEXT, false}, {"run_id", COL_INT, false},
	        {"version", COL_TEXT, false}, {"finished_at", COL_TIME, false},
	};
	struct pg_store *pg = pg_of(st);
	/* Dashboards poll this every second while it changes once per run:
	 * answer from the last result until pg_generation() moves (read
	 * before the query: a change during it is seen by the next call).
	 * Not on a reader: its generation never moves, others write. */
	bool cacheable = !pg->readonly;
	uint64_t gen = pg_generation(st);
	json_t *items = NULL;
	int r;

	if (cacheable && pg->gates.value && pg->gates.generation == gen) {
		items = json_deep_copy(pg->gates.value);
		if (!items)
			return pg_oom(st);
		*ret_items = items;
		return 0;
	}
	r = query_rows(st, gates_sql, 0, NULL, cols, RD_ARRAY_SIZE(cols), INT32_MAX, &items,
	               "read the latest verdicts");
	if (r < 0)
		return r;
	if (cacheable) {
		json_decref(pg->gates.value);
		pg->gates.value = json_deep_copy(items);
		pg->gates.generation = gen;
	}
	*ret_items = items;
	return 0;
}

/* ---- Baselines ------------------------------------------------------ */

/* The passed, valid runs of service $1 in environment $2 (but run $5)
 * where probe $3 published metric $4, with that probe's requests (rq) and
 * errors (er). A walk of runs_decided backwards, one primary key seek
 * into metrics per run. */
#define BASE_FROM                                                                                  \
	"FROM runs AS r JOIN metrics AS m ON m.run_id = r.id AND m.probe = $3 AND m.metric = $4 "  \
	"LEFT JOIN metrics AS rq ON rq.run_id = r.id AND rq.probe = $3 "                           \
	"AND rq.metric = 'requests' "                                                              \
	"LEFT JOIN metrics AS er ON er.run_id = r.id AND er.probe = $3 AND er.metric = 'errors' "  \
	"WHERE r.service = $1 AND r.environment = $2 AND r.state = 'passed' "                      \
	"AND r.invalidated_at IS NULL AND r.id <> $5 AND m.value IS NOT NULL "

/* Whether a candidate rests on enough samples (floor $6), counted as the
 * judge counts (lib/gate/judge.c): `requests`, less `errors` when $7
 * (successful requests), each truncated to an integer; a probe that
 * published no `requests` is not a sample metric: no floor applies. */
#define BASE_ENOUGH                                                                                \
	"($6::bigint <= 0 OR rq.value IS NULL OR trunc(rq.value) - CASE WHEN $7::boolean AND "     \
	"er.value IS NOT NULL THEN trunc(er.value) ELSE 0 END >= $6::bigint)"

/* Candidates newest first from below id $8, $9 at a time, each with
 * whether it rests on enough samples: a backward walk of runs_decided
 * that LIMIT stops. (Counting the passed-over ones in the same statement
 * made the planner read all of runs: 115 ms at 100k runs.) */
static const char baseline_sql[] = "SELECT r.id, m.value, " BASE_ENOUGH " " BASE_FROM
                                   "AND r.id < $8 ORDER BY r.id DESC LIMIT $9";

/* One batch of candidates: stops at the first on enough samples (*ret_found),
 * counting those passed over in got; *ret_below is where the next batch
 * starts, 0 when there is none. */
static int baseline_batch(struct store *st, const char **params, int64_t batch,
                          struct store_baseline_got *got, bool *ret_found, int64_t *ret_below)
{
	PGresult *res = NULL;
	int n, r = exec_valid(st, baseline_sql, 9, params, &res, "find a baseline");

	if (r < 0)
		return r;
	n = PQntuples(res);
	*ret_below = n == batch ? pg_get_i64(res, n - 1, 0) : 0;
	for (int i = 0; i < n && !*ret_found; i++) {
		if (!strcmp(pg_get_text(res, i, 2), "t")) {
			got->run_id = pg_get_i64(res, i, 0);
			got->value = pg_get_dbl(res, i, 1);
			*ret_found = true;
		} else if (got->skipped++ == 0) {
			got->skipped_newest = pg_get_i64(res, i, 0);
		}
	}
	PQclear(res);
	return 0;
}

/* Newest first; a candidate below the floor is passed over and counted,
 * so the gate can say that newer passes rested on too few samples. The
 * first batch is small: the newest candidate is nearly always the one. */
int pg_baseline_find(struct store *st, const struct store_baseline_want *w,
                     struct store_baseline_got *ret)
{
	struct pg_num ex, min, below, lim;
	const char *params[] = {w->service,
	                        w->environment,
	                        w->probe,
	                        w->metric,
	                        pg_i64(&ex, w->exclude_run_id),
	                        pg_i64(&min, w->min_samples),
	                        w->successes ? "true" : "false",
	                        NULL,
	                        NULL};
	struct store_baseline_got got = {0};
	int64_t from = INT64_MAX, batch = 8;
	bool found = false;
	int r = 0;

	while (r == 0 && !found && from > 0) {
		params[7] = pg_i64(&below, from);
		params[8] = pg_i64(&lim, batch);
		r = baseline_batch(st, params, batch, &got, &found, &from);
		batch = batch < 4096 ? batch * 8 : batch;
	}
	if (r < 0)
		return r;
	if (!found) {
		pg_set_errf(st, "no passed run of %s in %s has %s.%s%s", w->service, w->environment,
		            w->probe, w->metric, got.skipped ? " on enough samples" : "");
		r = -ENOENT;
	}
	*ret = got;
	return r;
}

/* ---- Waivers -------------------------------------------------------- */

#define WAIVER_SELECT                                                                              \
	"SELECT id, service, environment, expr, reason, approver, created_by, created_at, "        \
	"expires_at, revoked_at, (revoked_at IS NULL AND expires_at > $2) AS active "              \
	"FROM waivers "

static const struct store_col waiver_cols[] = {
        {"id", COL_INT, false},           {"service", COL_TEXT, false},
        {"environment", COL_TEXT, false}, {"expr", COL_TEXT, false},
        {"reason", COL_TEXT, false},      {"approver", COL_TEXT, false},
        {"created_by", COL_TEXT, false},  {"created_at", COL_TIME, false},
        {"expires_at", COL_TIME, false},  {"revoked_at", COL_TIME, false},
        {"active", COL_BOOL, false},
};

static int waiver_valid(struct store *st, const struct store_waiver_new *w)
{
	const char *bad = !w->service || !*w->service      ? "service"
	                  : !w->expr || !*w->expr          ? "expr"
	                  : !w->reason || !*w->reason      ? "reason"
	                  : !w->approver || !*w->approver  ? "approver"
	                  : w->expires_at <= w->created_at ? "expires_at"
	                                                   : NULL;

	if (!bad)
		return 0;
	pg_set_errf(st, "Failed to save a waiver: field '%s' is missing or invalid", bad);
	return -EINVAL;
}

int pg_waiver_create(struct store *st, const struct store_waiver_new *w, int64_t *ret_id)
{
	static const char sql[] = "INSERT INTO waivers (service, environment, expr, reason, "
	                          "approver, created_by, created_at, expires_at) "
	                          "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id";
	struct pg_num created, expires;
	const char *params[] = {w->service,
	                        w->environment,
	                        w->expr,
	                        w->reason,
	                        w->approver,
	                        w->created_by,
	                        pg_i64(&created, w->created_at),
	                        pg_i64(&expires, w->expires_at)};
	PGresult *res = NULL;
	int r = waiver_valid(st, w);

	if (r == 0)
		r = exec_valid(st, sql, 8, params, &res, "save a waiver");
	if (r < 0)
		return r;
	*ret_id = pg_get_i64(res, 0, 0);
	PQclear(res);
	return 0;
}

/* Runs a waiver SELECT on $1 service, $2 now_ms and, when id is not 0,
 * $3 id; each row gets "expired" (neither active nor revoked). */
static int waivers_query(struct store *st, const char *sql, const char *service, int64_t id,
                         int64_t now_ms, int max, json_t **ret_items)
{
	struct pg_num now, idn;
	const char *params[] = {service, pg_i64(&now, now_ms), pg_i64(&idn, id)};
	json_t *items = NULL, *w;
	size_t i;
	int r = query_rows(st, sql, id ? 3 : 2, params, waiver_cols, RD_ARRAY_SIZE(waiver_cols),
	                   max, &items, "read waivers");

	if (r < 0)
		return r;
	json_array_foreach (items, i, w) {
		bool expired = !json_is_true(json_object_get(w, "active")) &&
		               json_is_null(json_object_get(w, "revoked_at"));

		if (json_object_set_new(w, "expired", json_boolean(expired)) < 0) {
			json_decref(items);
			return pg_oom(st);
		}
	}
	*ret_items = items;
	return 0;
}

int pg_waivers_list(struct store *st, const char *service, int64_t now_ms, json_t **ret_items)
{
	return waivers_query(st, WAIVER_SELECT "WHERE service = $1 ORDER BY id DESC", service, 0,
	                     now_ms, HIST_LIST_MAX, ret_items);
}

int pg_waiver_get(struct store *st, const char *service, int64_t id, int64_t now_ms,
                  json_t **ret_waiver)
{
	json_t *items = NULL;
	int r = waivers_query(st, WAIVER_SELECT "WHERE service = $1 AND id = $3", service, id,
	                      now_ms, 1, &items);

	if (r < 0)
		return r;
	if (json_array_size(items) == 0) {
		json_decref(items);
		pg_set_errf(st, "service %s has no waiver %" PRId64, service, id);
		return -ENOENT;
	}
	*ret_waiver = json_incref(json_array_get(items, 0));
	json_decref(items);
	return 0;
}

/* One statement: a waiver revoked before keeps its first time. */
int pg_waiver_revoke(struct store *st, const char *service, int64_t id, int64_t now_ms)
{
	static const char sql[] = "UPDATE waivers SET revoked_at = COALESCE(revoked_at, $3) "
	                          "WHERE service = $1 AND id = $2 RETURNING id";
	struct pg_num idn, now;
	const char *params[] = {service, pg_i64(&idn, id), pg_i64(&now, now_ms)};
	PGresult *res = NULL;
	int r = exec_valid(st, sql, 3, params, &res, "revoke a waiver");

	if (r < 0)
		return r;
	if (PQntuples(res) == 0) {
		pg_set_errf(st, "service %s has no waiver %" PRId64, service, id);
		r = -ENOENT;
	}
	PQclear(res);
	return r;
}

int pg_waiver_find(struct store *st, const char *service, const char *environment, const char *expr,
                   int64_t now_ms, json_t **ret_waiver)
{
	/* The newest active waiver of this expression for this environment
	 * or for any; what a gate result records of it. */
	static const char sql[] =
	        "SELECT id, reason, approver, expires_at FROM waivers "
	        "WHERE service = $1 AND expr = $3 AND expires_at > $4 AND revoked_at IS NULL "
	        "AND (environment IS NULL OR environment = $2) ORDER BY id DESC LIMIT 1";
	static const struct store_col cols[] = {{"id", COL_INT, false},
	                                        {"reason", COL_TEXT, false},
	                                        {"approver", COL_TEXT, false},
	                                        {"expires_at", COL_TIME, false}};
	struct pg_num now;
	const char *params[] = {service, environment, expr, pg_i64(&now, now_ms)};
	json_t *items = NULL;
	int r = query_rows(st, sql, 4, params, cols, RD_ARRAY_SIZE(cols), 1, &items,
	                   "find a waiver");

	if (r < 0)
		return r;
	if (json_array_size(items) == 0) {
		json_decref(items);
		return -ENOENT;
	}
	*ret_waiver = json_incref(json_array_get(items, 0));
	json_decref(items);
	return 0;
}

/* ---- Invalidation and rejudgements ---------------------------------- */

/* Why a run could not be changed: -ENOENT (no such run), -EINPROGRESS
 * (still running), -EALREADY (already invalidated, when that matters), or
 * 0. Asked only after the change found no row. */
static int run_refusal(struct store *st, int64_t id, bool invalid_matters)
{
	struct pg_num idn;
	const char *params[] = {pg_i64(&idn, id)};
	PGresult *res = NULL;
	const char *state;
	int r = exec_valid(st, "SELECT state, invalidated_at IS NOT NULL FROM runs WHERE id = $1",
	                   1, params, &res, "read a run");

	if (r < 0)
		return r;
	state = PQntuples(res) ? pg_get_text(res, 0, 0) : NULL;
	if (!state) {
		pg_set_errf(st, "Failed to find run %" PRId64 ": no such run", id);
		r = -ENOENT;
	} else if (!run_state_string_is_final(state)) {
		pg_set_errf(st, "run %" PRId64 " is still %s: wait until it ends", id, state);
		r = -EINPROGRESS;
	} else if (invalid_matters && !strcmp(pg_get_text(res, 0, 1), "t")) {
		pg_set_errf(st, "run %" PRId64 " is already invalidated", id);
		r = -EALREADY;
	}
	PQclear(res);
	return r;
}

/* One statement when it succeeds; a second one says why it did not. */
int pg_run_invalidate(struct store *st, int64_t id, const char *reason, int64_t now_ms)
{
	static const char sql[] = "UPDATE runs SET invalidated_at = $2, invalid_reason = $3 "
	                          "WHERE id = $1 AND invalidated_at IS NULL "
	                          "AND state IN " FINAL_STATES " RETURNING id";
	struct pg_num idn, now;
	const char *params[] = {pg_i64(&idn, id), pg_i64(&now, now_ms), reason};
	PGresult *res = NULL;
	int r;

	if (!reason || !*reason) {
		pg_set_errf(st, "Failed to invalidate run %" PRId64 ": a reason is required", id);
		return -EINVAL;
	}
	r = exec_valid(st, sql, 3, params, &res, "invalidate a run");
	if (r < 0)
		return r;
	if (PQntuples(res) == 0) {
		r = run_refusal(st, id, true);
		if (r == 0) { /* it changed between the two statements */
			pg_set_errf(st, "run %" PRId64 " is already invalidated", id);
			r = -EALREADY;
		}
	}
	PQclear(res);
	return r;
}

/* The next number of the run's rejudgements, taken in the INSERT itself;
 * no row when the run is missing or not over. */
static const char rejudge_sql[] =
        "INSERT INTO judgements (run_id, seq, created_at, requested_by, gates, verdict) "
        "SELECT r.id, COALESCE((SELECT MAX(j.seq) FROM judgements AS j "
        "WHERE j.run_id = r.id), 0) + 1, $2, $3, $4, $5 FROM runs AS r "
        "WHERE r.id = $1 AND r.state IN " FINAL_STATES " RETURNING seq";

int pg_rejudgement_add(struct store *st, int64_t run_id, json_t *gates, const char *verdict,
                       const char *requested_by, int64_t now_ms, int64_t *ret_seq)
{
	char *text = json_is_array(gates) ? rd_json_dumps(gates, JSON_COMPACT) : NULL;
	struct pg_num idn, now;
	const char *params[] = {pg_i64(&idn, run_id), pg_i64(&now, now_ms), requested_by, text,
	                        verdict};
	PGresult *res = NULL;
	int r = -EEXIST;

	if (!text) {
		if (json_is_array(gates))
			return pg_oom(st);
		pg_set_errf(st, "Failed to save a rejudgement: 'gates' is not an array");
		return -EINVAL;
	}
	/* A concurrent rejudgement of the same run took the number: the
	 * next statement sees it and takes the one after. */
	for (int i = 0; i < REJUDGE_TRIES && r == -EEXIST; i++)
		r = exec_valid(st, rejudge_sql, 5, params, &res, "save a rejudgement");
	free(text);
	if (r < 0)
		return r;
	if (PQntuples(res) == 0)
		r = run_refusal(st, run_id, false);
	else
		*ret_seq = pg_get_i64(res, 0, 0);
	PQclear(res);
	return r;
}

/* "invalidated" ({at, reason} or null) and "rejudgements" of run id, in
 * one query: the run's row joined with its judgements. */
int pg_run_history(struct store *st, int64_t id, json_t *run)
{
	static const struct store_col inv_cols[] = {{"at", COL_TIME, false},
	                                            {"reason", COL_TEXT, false}};
	static const struct store_col cols[] = {
	        {"seq", COL_INT, false},           {"created_at", COL_TIME, false},
	        {"requested_by", COL_TEXT, false}, {"verdict", COL_TEXT, false},
	        {"gates", COL_JSON, false},
	};
	static const char sql[] =
	        "SELECT j.seq, j.created_at, j.requested_by, j.verdict, j.gates, "
	        "r.invalidated_at, r.invalid_reason FROM (SELECT $1::bigint AS id) AS x "
	        "LEFT JOIN runs AS r ON r.id = x.id AND r.invalidated_at IS NOT NULL "
	        "LEFT JOIN judgements AS j ON j.run_id = x.id ORDER BY j.seq";
	struct pg_num idn;
	const char *params[] = {pg_i64(&idn, id)};
	PGresult *res = NULL;
	json_t *inv = NULL, *arr = NULL;
	int r = exec_valid(st, sql, 1, params, &res, "read a run's rejudgements");

	if (r < 0)
		return r;
	if (pg_null(res, 0, 5))
		inv = json_null();
	else
		r = pg_row_to_json(st, res, 0, 5, inv_cols, RD_ARRAY_SIZE(inv_cols), &inv);
	/* Without judgements the one row is all NULL on their side. */
	if (r == 0)
		r = rows_array(st, res, cols, RD_ARRAY_SIZE(cols),
		               pg_null(res, 0, 0) ? 0 : INT32_MAX, false, &arr);
	PQclear(res);
	if (r < 0) {
		json_decref(inv);
		return r;
	}
	if (json_object_set_new(run, "invalidated", inv) < 0) {
		json_decref(arr);
		return pg_oom(st);
	}
	return json_object_set_new(run, "rejudgements", arr) < 0 ? pg_oom(st) : 0;
}

/* ---- Services, history, trends --------------------------------------- */

int pg_services_list(struct store *st, json_t **ret_items)
{
	static const struct store_col cols[] = {
	        {"service", COL_TEXT, false},
	        {"environments", COL_JSON, false},
	        {"runs", COL_INT, false},
	        {"last_run_at", COL_TIME, false},
	};
	/* An index-only walk of runs_by_service; byte order, as SQLite's. */
	static const char sql[] =
	        "SELECT service, json_agg(DISTINCT environment COLLATE \"C\" "
	        "ORDER BY environment COLLATE \"C\")::text, count(*), max(created_at) "
	        "FROM runs GROUP BY service ORDER BY service COLLATE \"C\" LIMIT 1000";

	return query_rows(st, sql, 0, NULL, cols, RD_ARRAY_SIZE(cols), HIST_SERVICES_MAX, ret_items,
	                  "list services");
}

static int history_cursor(struct store *st, const char *cursor, int64_t *ret_below)
{
	if (!cursor || !*cursor) {
		*ret_below = INT64_MAX;
		return 0;
	}
	if (rd_parse_int64(cursor, 1, INT64_MAX, ret_below) == 0)
		return 0;
	pg_set_errf(st, "cursor '%.64s' is not one this server gave out", cursor);
	return -EINVAL;
}

/* Decided runs only (a history of decisions); invalidated ones stay,
 * flagged. $1 service, $2 verdict or NULL (the statement is planned with
 * its parameters' values, so an absent filter folds away), $3 the cursor
 * (ids below it), $4 the page's rows, then the environment. With one, a
 * backward walk of runs_by_service (service, environment, id) from the
 * cursor. */
#define HISTORY_COLS                                                                               \
	"SELECT id, version, environment, state, verdict, created_at, finished_at, "               \
	"invalidated_at, spec_version FROM runs WHERE service = $1 AND verdict IS NOT NULL "       \
	"AND ($2::text IS NULL OR verdict = $2) AND id < $3 "
static const char history_env_sql[] = HISTORY_COLS "AND environment = $5 ORDER BY id DESC LIMIT $4";

/* Without one, the same walk in each environment of the service (found
 * by a skip scan of the same index), the pages merged: the cost grows with
 * the environments and the page, not with the runs, whatever the planner
 * knows of the table (ids alone walk the primary key through every
 * service's runs: 100 ms when the service has none of a verdict). */
static const char history_any_sql[] =
        "WITH RECURSIVE envs(environment) AS ("
        " (SELECT environment FROM runs WHERE service = $1 ORDER BY environment LIMIT 1)"
        " UNION ALL"
        " SELECT n.environment FROM envs AS e CROSS JOIN LATERAL"
        " (SELECT environment FROM runs WHERE service = $1 AND environment > e.environment"
        "  ORDER BY environment LIMIT 1) AS n) "
        "SELECT h.* FROM envs AS e CROSS JOIN LATERAL (" HISTORY_COLS
        " AND environment = e.environment ORDER BY id DESC LIMIT $4) AS h "
        "ORDER BY h.id DESC LIMIT $4";

int pg_history(struct store *st, const struct store_history_filter *f, json_t **ret_items,
               char **ret_next_cursor)
{
	static const struct store_col cols[] = {
	        {"run_id", COL_INT, false},       {"version", COL_TEXT, false},
	        {"environment", COL_TEXT, false}, {"state", COL_TEXT, false},
	        {"verdict", COL_TEXT, false},     {"created_at", COL_TIME, false},
	        {"finished_at", COL_TIME, false}, {"invalidated_at", COL_TIME, false},
	        {"spec_version", COL_INT, false},
	};
	int limit = f->limit < 1 ? 1 : f->limit > HIST_LIST_MAX ? HIST_LIST_MAX : f->limit;
	struct pg_num below, lim;
	/* One more than a page: is there a next one? */
	const char *params[] = {f->service, f->verdict, NULL, pg_i64(&lim, limit + 1),
	                        f->environment};
	PGresult *res = NULL;
	json_t *items = NULL;
	char *cursor = NULL;
	int64_t b;
	int r = history_cursor(st, f->cursor, &b);

	if (r < 0)
		return r;
	params[2] = pg_i64(&below, b);
	r = exec_valid(st, f->environment ? history_env_sql : history_any_sql,
	               f->environment ? 5 : 4, params, &res, "read the history");
	if (r == 0)
		r = rows_array(st, res, cols, RD_ARRAY_SIZE(cols), limit, false, &items);
	if (r == 0 && PQntuples(res) > limit &&
	    asprintf(&cursor, "%" PRId64, pg_get_i64(res, limit - 1, 0)) < 0) {
		json_decref(items);
		r = pg_oom(st);
	}
	PQclear(res);
	if (r < 0)
		return r;
	*ret_items = items;
	*ret_next_cursor = cursor;
	return 0;
}

/* The points of a trend: probe $2's metric $3 of service $1 between $4
 * and $5 (ms), from runs no newer than $7 (a report's trend stops at its
 * own run), $6 rows; the environment last when there is one. With one, a
 * range of the covering index metrics_trend, without, of
 * metrics_trend_any; both are ordered by (ts, run_id), so a walk
 * backwards is newest first and LIMIT stops it without a sort.
 *
 * Each point's run is looked up by primary key: only runs decided by a
 * verdict the measurements stand behind (PASS or FAIL; not cancelled,
 * interrupted, unfinished or ERROR) and not invalidated count. OFFSET 0
 * keeps that lookup a subquery run per point: flattened into a join,
 * the planner may read the whole runs table for a hash join instead
 * (54 ms at 100k runs, against 2 ms for 1000 points). */
#define TREND_FROM(env)                                                                            \
	"FROM metrics AS m CROSS JOIN LATERAL (SELECT version, verdict FROM runs "                 \
	"WHERE id = m.run_id AND verdict IN ('PASS', 'FAIL') AND invalidated_at IS NULL "          \
	"OFFSET 0) AS r WHERE m.service = $1 AND m.probe = $2 AND m.metric = $3 " env              \
	"AND m.ts >= $4 AND m.ts <= $5 AND m.run_id <= $7 "

#define TREND_POINTS(env)                                                                          \
	"SELECT m.run_id, m.ts, r.version, m.value, r.verdict, m.environment " TREND_FROM(         \
	        env) "ORDER BY m.ts DESC, m.run_id DESC LIMIT $6"

/* Buckets are folded here from the same walk, as sqlite_history.c folds
 * them (the same sums in the same order give the same bits; SQL's avg()
 * also fails on values whose squares overflow). The walk goes in chunks
 * of $6 rows below ($8 ts, $9 run_id), a range of the same index, and
 * stops once the newest limit + 1 buckets are seen. */
#define TREND_WALK(env)                                                                            \
	"SELECT m.ts, m.run_id, m.value, r.version " TREND_FROM(                                   \
	        env) "AND (m.ts, m.run_id) < ($8, $9) ORDER BY m.ts DESC, m.run_id DESC LIMIT $6"

static const char *const trend_sql[2][2] = {
        /* [buckets][environment] */
        {TREND_POINTS(""), TREND_POINTS("AND m.environment = $8 ")},
        {TREND_WALK(""), TREND_WALK("AND m.environment = $10 ")},
};

/* Column col as a trend number: NaN for NULL and non-finite. */
static double trend_number(const PGresult *res, int row, int col)
{
	double d = pg_get_dbl(res, row, col);

	return isfinite(d) ? d : NAN;
}

/* Column col copied among p's strings (NULL stays null). */
static int trend_str(struct store_trend_points *p, const PGresult *res, int row, int col,
                     size_t *ret)
{
	const char *t = pg_get_text(res, row, col);

	return store_trend_str_add(p, t, t ? (size_t)PQgetlength(res, row, col) : 0, ret);
}

/* Row row of the point statement as a point of p. */
static int trend_point_row(struct store_trend_points *p, const PGresult *res, int row)
{
	struct store_trend_point *pt = store_trend_point_add(p);

	if (!pt)
		return -ENOMEM;
	pt->run_id = pg_get_i64(res, row, 0);
	pt->time_ms = pg_get_i64(res, row, 1);
	pt->value = trend_number(res, row, 3);
	if (trend_str(p, res, row, 2, &pt->version) < 0 ||
	    trend_str(p, res, row, 4, &pt->verdict) < 0 ||
	    trend_str(p, res, row, 5, &pt->environment) < 0)
		return -ENOMEM;
	return 0;
}

/* A bucket being summed (the last point of p while open): avg's sum and
 * count of the non-null values; the point holds the count, min and max. */
struct bucket_sum {
	bool open;
	int64_t b;
	double sum;
	int64_t values;
};

static void bucket_end(struct store_trend_points *p, struct bucket_sum *a)
{
	struct store_trend_point *pt;

	if (!a->open)
		return;
	pt = &p->v[p->n - 1];
	pt->avg = a->values ? a->sum / (double)a->values : NAN;
	if (!isfinite(pt->avg))
		pt->avg = NAN;
	a->open = false;
}

/* Adds walk row row (ts, run_id, value, version) to its bucket, ending
 * the bucket before when the row starts a new one. 1 when the row would
 * start bucket limit + 1 (the walk stops: truncated), 0, -ENOMEM. */
static int trend_fold(struct store_trend_points *p, struct bucket_sum *a, const PGresult *res,
                      int row, int64_t step, int limit)
{
	int64_t b = pg_get_i64(res, row, 0) / step;
	struct store_trend_point *pt;

	if (!a->open || b != a->b) {
		bucket_end(p, a);
		if (p->n == (size_t)limit)
			return 1;
		if (!(pt = store_trend_point_add(p)))
			return -ENOMEM;
		*a = (struct bucket_sum){.open = true, .b = b};
		pt->time_ms = b * step;
		pt->run_id = pg_get_i64(res, row, 1);
		pt->value = trend_number(res, row, 2);
		pt->min = pt->max = NAN;
		if (trend_str(p, res, row, 3, &pt->version) < 0)
			return -ENOMEM;
	}
	pt = &p->v[p->n - 1];
	pt->runs++;
	if (!pg_null(res, row, 2)) {
		double d = pg_get_dbl(res, row, 2);

		a->sum += d;
		a->values++;
		pt->min = isnan(pt->min) || d < pt->min ? d : pt->min;
		pt->max = isnan(pt->max) || d > pt->max ? d : pt->max;
	}
	return 0;
}

/* The newest limit + 1 points, newest first, into p. */
static int trend_read_points(struct store *st, const char **params, int n, bool env, int limit,
                             struct store_trend_points *p)
{
	struct pg_num lim;
	PGresult *res = NULL;
	int r;

	params[5] = pg_i64(&lim, limit + 1);
	r = exec_valid(st, trend_sql[0][env], n, params, &res, "read a trend");
	for (int i = 0; r == 0 && i < PQntuples(res) && i < limit; i++)
		r = trend_point_row(p, res, i) < 0 ? pg_oom(st) : 0;
	if (r == 0)
		p->truncated = PQntuples(res) > limit;
	PQclear(res);
	return r;
}

/* Where a bucket walk is: the next chunk's size and the row it goes on
 * below (the texts of $6, $8 and $9). */
struct trend_cursor {
	int64_t chunk;
	struct pg_num lim, ts, id;
};

/* One chunk of the bucket walk, folded into p; *ret_more when the chunk
 * was full and the walk goes on below its last row; 1 when limit + 1
 * buckets were seen. */
static int trend_walk_chunk(struct store *st, const char **params, int n, bool env,
                            struct trend_cursor *c, const struct store_trend_query *q, int limit,
                            struct bucket_sum *a, struct store_trend_points *p, bool *ret_more)
{
	PGresult *res = NULL;
	int rows, r;

	params[5] = pg_i64(&c->lim, c->chunk);
	r = exec_valid(st, trend_sql[1][env], n, params, &res, "read a trend");
	if (r < 0)
		return r;
	rows = PQntuples(res);
	for (int i = 0; r == 0 && i < rows; i++)
		r = trend_fold(p, a, res, i, q->step_ms, limit);
	*ret_more = r == 0 && rows == c->chunk;
	if (*ret_more) {
		params[7] = pg_i64(&c->ts, pg_get_i64(res, rows - 1, 0));
		params[8] = pg_i64(&c->id, pg_get_i64(res, rows - 1, 1));
	}
	PQclear(res);
	return r < 0 ? pg_oom(st) : r;
}

/* The newest limit + 1 buckets, newest first, into p: chunks of 1024 rows
 * and growing, so a short trend is one round trip and a long one few. */
static int trend_read_buckets(struct store *st, const char **params, int n, bool env,
                              const struct store_trend_query *q, int limit,
                              struct store_trend_points *p)
{
	struct trend_cursor c = {.chunk = 1024};
	struct bucket_sum a = {0};
	bool more = true;
	int r = 0;

	params[7] = pg_i64(&c.ts, INT64_MAX);
	params[8] = pg_i64(&c.id, INT64_MAX);
	while (r == 0 && more) {
		r = trend_walk_chunk(st, params, n, env, &c, q, limit, &a, p, &more);
		c.chunk = c.chunk < 65536 ? c.chunk * 4 : c.chunk;
	}
	bucket_end(p, &a);
	p->truncated = r == 1;
	return r < 0 ? r : 0;
}

int pg_trend_points(struct store *st, const struct store_trend_query *q,
                    struct store_trend_points *ret)
{
	bool env = q->environment != NULL, buckets = q->step_ms > 0;
	int limit = q->limit < 1 ? 1 : q->limit > HIST_TREND_MAX ? HIST_TREND_MAX : q->limit;
	struct pg_num since, until, last;
	const char *params[10] = {q->service,
	                          q->probe,
	                          q->metric,
	                          pg_i64(&since, q->since_ms),
	                          pg_i64(&until, q->until_ms),
	                          NULL,
	                          pg_i64(&last, q->until_run > 0 ? q->until_run : INT64_MAX)};
	int n = buckets ? 9 : 7, r;

	if (q->step_ms < 0) {
		pg_set_errf(st, "Failed to read a trend: negative step");
		return -EINVAL;
	}
	if (env)
		params[n++] = q->environment;
	ret->buckets = buckets;
	r = buckets ? trend_read_buckets(st, params, n, env, q, limit, ret)
	            : trend_read_points(st, params, n, env, limit, ret);
	if (r < 0) {
		store_trend_points_free(ret);
		return r;
	}
	store_trend_points_reverse(ret); /* read newest first: oldest first */
	return 0;
}

int pg_trend(struct store *st, const struct store_trend_query *q, json_t **ret_points,
             bool *ret_truncated)
{
	struct store_trend_points p = {0};
	int r = pg_trend_points(st, q, &p);

	if (r < 0)
		return r;
	*ret_points = store_trend_points_json(&p);
	*ret_truncated = p.truncated;
	store_trend_points_free(&p);
	return *ret_points ? 0 : pg_oom(st);
}
