/* sqlite_history: the SQLite backend's history operations: latest
 * verdicts per service and environment, baselines, waivers, invalidation,
 * rejudgements, service lists, history pages and metric trends. Same
 * conventions as sqlite.c (0 / -errno, a sentence for sqlite_errmsg(), JSON
 * shaped like the API's resources, times RFC 3339 in JSON).
 *
 * Statements here are prepared per call and finalized before returning:
 * they are few and cheap to prepare next to the queries they run, and
 * finalizing means no SELECT is ever left pending (which would pin a WAL
 * snapshot). The trend statements, asked thousands of times by
 * dashboards, are the exception: kept prepared on their connection
 * (sqlite_kept_stmt) and reset after every use, which pins nothing
 * either. Every query is written so it walks an index; the unit tests
 * check the plans of the hot ones.
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
#include "lib/store/store.h"
#include "lib/store/store_backend.h"
#include "lib/store/sqlite/sqlite_internal.h"
#include "lib/util/run_state.h"
#include "lib/util/util.h"
#include "lib/util/json_text.h"

#define HIST_LIST_MAX     1000
#define HIST_SERVICES_MAX 1000
#define HIST_TREND_MAX    10000

/* How a result column becomes a JSON field. */
enum hkind {
	HK_INT = 0,
	HK_REAL, /* non-finite comes back as null */
	HK_TEXT,
	HK_TIME, /* ms in SQL, RFC 3339 in JSON */
	HK_JSON, /* serialized JSON in SQL */
};

struct hcol {
	const char *key;
	enum hkind kind;
};

static int oom(struct store *st)
{
	sqlite_set_errf(st, "Failed to build a result: out of memory");
	return -ENOMEM;
}

static int prepare(struct store *st, const char *sql, sqlite3_stmt **ret)
{
	int rc = sqlite3_prepare_v2(sqlite_db(st), sql, -1, ret, NULL);

	return rc == SQLITE_OK ? 0 : sqlite_db_fail(st, rc, "prepare a query");
}

static json_t *col_json(sqlite3_stmt *s, int i, enum hkind kind)
{
	char buf[RD_TIME_LEN];
	double d;

	if (sqlite3_column_type(s, i) == SQLITE_NULL)
		return json_null();
	switch (kind) {
	case HK_INT:
		return json_integer(sqlite3_column_int64(s, i));
	case HK_REAL:
		d = sqlite3_column_double(s, i);
		return isfinite(d) ? json_real(d) : json_null();
	case HK_TIME:
		rd_time_format(sqlite3_column_int64(s, i), buf);
		return json_string(buf);
	case HK_JSON:
		return json_loadb((const char *)sqlite3_column_text(s, i),
		                  (size_t)sqlite3_column_bytes(s, i), JSON_DECODE_ANY, NULL);
	default:
		return json_stringn((const char *)sqlite3_column_text(s, i),
		                    (size_t)sqlite3_column_bytes(s, i));
	}
}

/* The current row as a new object, columns 0..n-1 described by cols. */
static int row_json(struct store *st, sqlite3_stmt *s, const struct hcol *cols, size_t n,
                    json_t **ret)
{
	json_t *obj = json_object();

	if (!obj)
		return oom(st);
	for (size_t i = 0; i < n; i++) {
		json_t *v = col_json(s, (int)i, cols[i].kind);

		if (!v || json_object_set_new(obj, cols[i].key, v) < 0) {
			json_decref(obj);
			return oom(st);
		}
	}
	*ret = obj;
	return 0;
}

/* Steps s to the end, appending each row (up to max) to a new array;
 * *ret_more says whether rows were left. Finalizes s. */
static int rows_json(struct store *st, sqlite3_stmt *s, const struct hcol *cols, size_t n,
                     size_t max, json_t **ret, bool *ret_more)
{
	json_t *arr = json_array(), *row;
	int rc = SQLITE_DONE, r = arr ? 0 : oom(st);

	while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (json_array_size(arr) == max)
			break;
		r = row_json(st, s, cols, n, &row);
		if (r == 0 && json_array_append_new(arr, row) < 0)
			r = oom(st);
	}
	if (r == 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
		r = sqlite_db_fail(st, rc, "read rows");
	sqlite3_finalize(s);
	if (r < 0) {
		json_decref(arr);
		return r;
	}
	if (ret_more)
		*ret_more = rc == SQLITE_ROW;
	*ret = arr;
	return 0;
}

/* Runs a statement that returns no rows; finalizes it. */
static int exec_done(struct store *st, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);

	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : sqlite_db_fail(st, rc, what);
}

static int bind_text_opt(sqlite3_stmt *s, int idx, const char *v)
{
	return v ? sqlite3_bind_text(s, idx, v, -1, SQLITE_STATIC) : sqlite3_bind_null(s, idx);
}

static int bind_fail(struct store *st, sqlite3_stmt *s, int rc)
{
	int r = sqlite_db_fail(st, rc, "bind a value");

	sqlite3_finalize(s);
	return r;
}

/* ---- Latest verdicts (GET /v1/gates) -------------------------------- */

/* A decided run, for alias a. Must match the WHERE of index runs_decided
 * word for word, or the index cannot be named. */
#define DECIDED_AS(a) a ".state IN ('passed', 'failed', 'error') AND " a ".invalidated_at IS NULL"

/* A skip scan over the partial index runs_decided (service, environment,
 * id): the recursive part hops from one (service, environment) pair to the
 * next with two index seeks, then each pair's newest run is one more seek.
 * Cost grows with the number of pairs, not of runs (GROUP BY over the
 * index took ~90 ms at 100k runs; this takes under 1 ms). The index is
 * named because the planner, without statistics, prefers runs_by_state. */
static const char gates_sql[] =
        "WITH RECURSIVE pairs(id) AS ("
        " SELECT (SELECT f.id FROM runs AS f INDEXED BY runs_decided WHERE " DECIDED_AS(
                "f") " ORDER BY f.service, f.environment LIMIT 1)"
                     " UNION ALL"
                     " SELECT COALESCE("
                     "  (SELECT e.id FROM runs AS e INDEXED BY runs_decided WHERE " DECIDED_AS(
                             "e") "   AND e.service = p.service AND e.environment > p.environment"
                                  "   ORDER BY e.environment LIMIT 1),"
                                  "  (SELECT s.id FROM runs AS s INDEXED BY runs_decided WHERE " DECIDED_AS(
                                          "s") "   AND s.service > p.service ORDER BY s.service, s.environment LIMIT 1))"
                                               " FROM pairs JOIN runs AS p ON p.id = pairs.id) "
                                               "SELECT r.service, r.environment, r.verdict, r.id, r.version, r.finished_at "
                                               "FROM pairs JOIN runs AS p ON p.id = pairs.id "
                                               "JOIN runs AS r ON r.id = (SELECT MAX(l.id) FROM runs AS l INDEXED BY runs_decided "
                                               " WHERE " DECIDED_AS(
                                                       "l") " AND l.service = p.service AND l.environment = p.environment) "
                                                            "ORDER BY r.service, r.environment";

const char *sqlite_gates_latest_sql(void)
{
	return gates_sql;
}

int sqlite_gates_latest(struct store *st, json_t **ret_items)
{
	static const struct hcol cols[] = {
	        {"service", HK_TEXT}, {"environment", HK_TEXT}, {"verdict", HK_TEXT},
	        {"run_id", HK_INT},   {"version", HK_TEXT},     {"finished_at", HK_TIME},
	};
	struct sqlite_cache *cache = sqlite_gates_cache(st);
	int64_t changes = sqlite3_total_changes64(sqlite_db(st));
	sqlite3_stmt *s = NULL;
	json_t *items;
	int r;

	/* Dashboards poll this every second while it changes once per run:
	 * answer from the last result until any row of the database changes
	 * (all writes go through this one connection). Not on a read-only
	 * connection: its own count never moves, others write. */
	bool cacheable = !sqlite3_db_readonly(sqlite_db(st), "main");

	if (cacheable && cache->value && cache->changes == changes) {
		items = json_deep_copy(cache->value);
		if (!items)
			return -ENOMEM;
		*ret_items = items;
		return 0;
	}
	r = prepare(st, gates_sql, &s);
	if (r < 0)
		return r;
	r = rows_json(st, s, cols, RD_ARRAY_SIZE(cols), SIZE_MAX, &items, NULL);
	if (r < 0)
		return r;
	if (cacheable) {
		json_decref(cache->value);
		cache->value = json_deep_copy(items);
		cache->changes = changes;
	}
	*ret_items = items;
	return 0;
}

/* ---- Baselines ------------------------------------------------------ */

/* The sample count behind a candidate's value, counted as the judge
 * counts (lib/gate/judge.c): `requests`, less `errors` for a metric of
 * successful requests; -1 when the probe published no `requests` (not a
 * sample metric: no floor applies). */
static int64_t candidate_samples(sqlite3_stmt *s, bool successes)
{
	int64_t n;

	if (sqlite3_column_type(s, 2) == SQLITE_NULL)
		return -1;
	n = (int64_t)sqlite3_column_double(s, 2);
	if (successes && sqlite3_column_type(s, 3) != SQLITE_NULL)
		n -= (int64_t)sqlite3_column_double(s, 3);
	return n < 0 ? 0 : n;
}

static int baseline_bind(struct store *st, sqlite3_stmt *s, const struct store_baseline_want *w)
{
	int rc;

	if ((rc = sqlite3_bind_text(s, 1, w->service, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(s, 2, w->environment, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(s, 3, w->probe, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(s, 4, w->metric, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 5, w->exclude_run_id)) != SQLITE_OK)
		return bind_fail(st, s, rc);
	return 0;
}

/* Newest first; a candidate below the floor is passed over and counted,
 * so the gate can say that newer passes rested on too few samples. */
int sqlite_baseline_find(struct store *st, const struct store_baseline_want *w,
                         struct store_baseline_got *ret)
{
	static const char sql[] =
	        "SELECT m.value, r.id, rq.value, er.value FROM runs AS r JOIN metrics AS m "
	        "ON m.run_id = r.id AND m.probe = ?3 AND m.metric = ?4 "
	        "LEFT JOIN metrics AS rq ON rq.run_id = r.id AND rq.probe = ?3 "
	        "AND rq.metric = 'requests' "
	        "LEFT JOIN metrics AS er ON er.run_id = r.id AND er.probe = ?3 "
	        "AND er.metric = 'errors' "
	        "WHERE r.service = ?1 AND r.environment = ?2 AND r.state = 'passed' "
	        "AND r.invalidated_at IS NULL AND r.id <> ?5 AND m.value IS NOT NULL "
	        "ORDER BY r.id DESC";
	struct store_baseline_got got = {0};
	sqlite3_stmt *s = NULL;
	int rc, r = prepare(st, sql, &s);

	if (r < 0 || (r = baseline_bind(st, s, w)) < 0)
		return r;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int64_t n = candidate_samples(s, w->successes);

		if (w->min_samples <= 0 || n < 0 || n >= w->min_samples)
			break;
		if (got.skipped++ == 0)
			got.skipped_newest = sqlite3_column_int64(s, 1);
	}
	if (rc == SQLITE_ROW) {
		got.value = sqlite3_column_double(s, 0);
		got.run_id = sqlite3_column_int64(s, 1);
	} else if (rc == SQLITE_DONE) {
		sqlite_set_errf(st, "no passed run of %s in %s has %s.%s%s", w->service,
		                w->environment, w->probe, w->metric,
		                got.skipped ? " on enough samples" : "");
		r = -ENOENT;
	} else {
		r = sqlite_db_fail(st, rc, "find a baseline");
	}
	sqlite3_finalize(s);
	if (r == 0 || r == -ENOENT)
		*ret = got;
	return r;
}

/* ---- Waivers -------------------------------------------------------- */

#define WAIVER_SELECT                                                                              \
	"SELECT id, service, environment, expr, reason, approver, created_by, created_at, "        \
	"expires_at, revoked_at, (revoked_at IS NULL AND expires_at > ?2) AS active FROM waivers "

static const struct hcol waiver_cols[] = {
        {"id", HK_INT},          {"service", HK_TEXT},    {"environment", HK_TEXT},
        {"expr", HK_TEXT},       {"reason", HK_TEXT},     {"approver", HK_TEXT},
        {"created_by", HK_TEXT}, {"created_at", HK_TIME}, {"expires_at", HK_TIME},
        {"revoked_at", HK_TIME}, {"active", HK_INT},
};

/* active comes out of SQL as 0/1: make it a boolean, and add expired. */
static void waiver_flags(json_t *w)
{
	bool active = json_integer_value(json_object_get(w, "active")) != 0;
	bool revoked = !json_is_null(json_object_get(w, "revoked_at"));

	json_object_set_new(w, "active", json_boolean(active));
	json_object_set_new(w, "expired", json_boolean(!active && !revoked));
}

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
	sqlite_set_errf(st, "Failed to save a waiver: field '%s' is missing or invalid", bad);
	return -EINVAL;
}

int sqlite_waiver_create(struct store *st, const struct store_waiver_new *w, int64_t *ret_id)
{
	static const char sql[] = "INSERT INTO waivers (service, environment, expr, reason, "
	                          "approver, created_by, created_at, expires_at) "
	                          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
	sqlite3_stmt *s = NULL;
	int rc, r = waiver_valid(st, w);

	if (r == 0)
		r = prepare(st, sql, &s);
	if (r < 0)
		return r;
	if ((rc = sqlite3_bind_text(s, 1, w->service, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = bind_text_opt(s, 2, w->environment)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(s, 3, w->expr, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(s, 4, w->reason, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(s, 5, w->approver, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = bind_text_opt(s, 6, w->created_by)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 7, w->created_at)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 8, w->expires_at)) != SQLITE_OK)
		return bind_fail(st, s, rc);
	r = exec_done(st, s, "save a waiver");
	if (r == 0)
		*ret_id = sqlite3_last_insert_rowid(sqlite_db(st));
	return r;
}

/* Runs a waiver SELECT bound to ?1 service (text or id) and ?2 now_ms. */
static int waivers_query(struct store *st, const char *sql, const char *service, int64_t id,
                         int64_t now_ms, size_t max, json_t **ret_items)
{
	sqlite3_stmt *s = NULL;
	json_t *items, *w;
	size_t i;
	int rc, r = prepare(st, sql, &s);

	if (r < 0)
		return r;
	if ((rc = sqlite3_bind_text(s, 1, service, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 2, now_ms)) != SQLITE_OK ||
	    (id && (rc = sqlite3_bind_int64(s, 3, id)) != SQLITE_OK))
		return bind_fail(st, s, rc);
	r = rows_json(st, s, waiver_cols, RD_ARRAY_SIZE(waiver_cols), max, &items, NULL);
	if (r < 0)
		return r;
	json_array_foreach (items, i, w)
		waiver_flags(w);
	*ret_items = items;
	return 0;
}

int sqlite_waivers_list(struct store *st, const char *service, int64_t now_ms, json_t **ret_items)
{
	return waivers_query(st, WAIVER_SELECT "WHERE service = ?1 ORDER BY id DESC", service, 0,
	                     now_ms, HIST_LIST_MAX, ret_items);
}

int sqlite_waiver_get(struct store *st, const char *service, int64_t id, int64_t now_ms,
                      json_t **ret_waiver)
{
	json_t *items = NULL;
	int r = waivers_query(st, WAIVER_SELECT "WHERE service = ?1 AND id = ?3", service, id,
	                      now_ms, 1, &items);

	if (r < 0)
		return r;
	if (json_array_size(items) == 0) {
		json_decref(items);
		sqlite_set_errf(st, "service %s has no waiver %" PRId64, service, id);
		return -ENOENT;
	}
	*ret_waiver = json_incref(json_array_get(items, 0));
	json_decref(items);
	return 0;
}

int sqlite_waiver_revoke(struct store *st, const char *service, int64_t id, int64_t now_ms)
{
	static const char sql[] = "UPDATE waivers SET revoked_at = ?3 "
	                          "WHERE service = ?1 AND id = ?2 AND revoked_at IS NULL";
	sqlite3_stmt *s = NULL;
	json_t *w = NULL;
	int rc, r = sqlite_waiver_get(st, service, id, now_ms, &w);

	json_decref(w);
	if (r == 0)
		r = prepare(st, sql, &s);
	if (r < 0)
		return r;
	if ((rc = sqlite3_bind_text(s, 1, service, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 2, id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 3, now_ms)) != SQLITE_OK)
		return bind_fail(st, s, rc);
	return exec_done(st, s, "revoke a waiver");
}

int sqlite_waiver_find(struct store *st, const char *service, const char *environment,
                       const char *expr, int64_t now_ms, json_t **ret_waiver)
{
	/* The newest active waiver of this expression for this environment
	 * or for any; what a gate result records of it. */
	static const char sql[] =
	        "SELECT id, reason, approver, expires_at FROM waivers "
	        "WHERE service = ?1 AND expr = ?3 AND expires_at > ?4 AND revoked_at IS NULL "
	        "AND (environment IS NULL OR environment = ?2) ORDER BY id DESC LIMIT 1";
	static const struct hcol cols[] = {{"id", HK_INT},
	                                   {"reason", HK_TEXT},
	                                   {"approver", HK_TEXT},
	                                   {"expires_at", HK_TIME}};
	sqlite3_stmt *s = NULL;
	json_t *items = NULL;
	int rc, r = prepare(st, sql, &s);

	if (r < 0)
		return r;
	if ((rc = sqlite3_bind_text(s, 1, service, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(s, 2, environment, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(s, 3, expr, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 4, now_ms)) != SQLITE_OK)
		return bind_fail(st, s, rc);
	r = rows_json(st, s, cols, RD_ARRAY_SIZE(cols), 1, &items, NULL);
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

/* The run's state and whether it is invalidated; -ENOENT if none. */
static int run_status(struct store *st, int64_t id, char *state, size_t len, bool *ret_invalid)
{
	sqlite3_stmt *s = NULL;
	int rc, r = prepare(st, "SELECT state, invalidated_at FROM runs WHERE id = ?1", &s);

	if (r < 0)
		return r;
	sqlite3_bind_int64(s, 1, id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		snprintf(state, len, "%s", (const char *)sqlite3_column_text(s, 0));
		*ret_invalid = sqlite3_column_type(s, 1) != SQLITE_NULL;
	} else if (rc == SQLITE_DONE) {
		sqlite_set_errf(st, "Failed to find run %" PRId64 ": no such run", id);
		r = -ENOENT;
	} else {
		r = sqlite_db_fail(st, rc, "read a run");
	}
	sqlite3_finalize(s);
	return r;
}

/* 0 if run id exists and has ended; -ENOENT, or -EINPROGRESS if not. */
static int run_ended(struct store *st, int64_t id, bool *ret_invalid)
{
	char state[32];
	enum run_state rs;
	int r = run_status(st, id, state, sizeof(state), ret_invalid);

	if (r == 0 && run_state_from_string(state, &rs) == 0 && !run_state_is_final(rs)) {
		sqlite_set_errf(st, "run %" PRId64 " is still %s: wait until it ends", id, state);
		r = -EINPROGRESS;
	}
	return r;
}

static int invalidate_write(struct store *st, int64_t id, const char *reason, int64_t now_ms)
{
	sqlite3_stmt *s = NULL;
	int rc, r = prepare(
	                st,
	                "UPDATE runs SET invalidated_at = ?2, invalid_reason = ?3 WHERE id = ?1",
	                &s);

	if (r < 0)
		return r;
	if ((rc = sqlite3_bind_int64(s, 1, id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 2, now_ms)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(s, 3, reason, -1, SQLITE_STATIC)) != SQLITE_OK)
		return bind_fail(st, s, rc);
	return exec_done(st, s, "invalidate a run");
}

int sqlite_run_invalidate(struct store *st, int64_t id, const char *reason, int64_t now_ms)
{
	bool invalid = false;
	int r;

	if (!reason || !*reason) {
		sqlite_set_errf(st, "Failed to invalidate run %" PRId64 ": a reason is required",
		                id);
		return -EINVAL;
	}
	r = sqlite_tx_begin(st, true);
	if (r < 0)
		return r;
	r = run_ended(st, id, &invalid);
	if (r == 0 && invalid) {
		sqlite_set_errf(st, "run %" PRId64 " is already invalidated", id);
		r = -EALREADY;
	}
	if (r == 0)
		r = invalidate_write(st, id, reason, now_ms);
	return sqlite_tx_end(st, r);
}

static int rejudgement_insert(struct store *st, int64_t run_id, const char *gates_text,
                              const char *verdict, const char *requested_by, int64_t now_ms)
{
	static const char sql[] =
	        "INSERT INTO judgements (run_id, seq, created_at, requested_by, gates, verdict) "
	        "VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM judgements WHERE run_id = ?1), "
	        "?2, ?3, ?4, ?5)";
	sqlite3_stmt *s = NULL;
	int rc, r = prepare(st, sql, &s);

	if (r < 0)
		return r;
	if ((rc = sqlite3_bind_int64(s, 1, run_id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 2, now_ms)) != SQLITE_OK ||
	    (rc = bind_text_opt(s, 3, requested_by)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(s, 4, gates_text, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(s, 5, verdict, -1, SQLITE_STATIC)) != SQLITE_OK)
		return bind_fail(st, s, rc);
	return exec_done(st, s, "save a rejudgement");
}

/* The value of one integer query on ?1 = id. */
static int query_id_int(struct store *st, const char *sql, int64_t id, int64_t *ret)
{
	sqlite3_stmt *s = NULL;
	int rc, r = prepare(st, sql, &s);

	if (r < 0)
		return r;
	sqlite3_bind_int64(s, 1, id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*ret = sqlite3_column_int64(s, 0);
	else
		r = sqlite_db_fail(st, rc, "read a value");
	sqlite3_finalize(s);
	return r;
}

int sqlite_rejudgement_add(struct store *st, int64_t run_id, json_t *gates, const char *verdict,
                           const char *requested_by, int64_t now_ms, int64_t *ret_seq)
{
	char *text = json_is_array(gates) ? rd_json_dumps(gates, JSON_COMPACT) : NULL;
	bool invalid = false;
	int64_t seq = 0;
	int r;

	if (!text)
		return json_is_array(gates) ? oom(st) : -EINVAL;
	r = sqlite_tx_begin(st, true);
	if (r == 0) {
		r = run_ended(st, run_id, &invalid);
		if (r == 0)
			r = rejudgement_insert(st, run_id, text, verdict, requested_by, now_ms);
		if (r == 0)
			r = query_id_int(st, "SELECT MAX(seq) FROM judgements WHERE run_id = ?1",
			                 run_id, &seq);
		r = sqlite_tx_end(st, r);
	}
	free(text);
	if (r == 0)
		*ret_seq = seq;
	return r;
}

static int decorate_invalidated(struct store *st, int64_t id, json_t *run)
{
	static const struct hcol cols[] = {{"at", HK_TIME}, {"reason", HK_TEXT}};
	sqlite3_stmt *s = NULL;
	json_t *rows = NULL, *inv;
	int r = prepare(st,
	                "SELECT invalidated_at, invalid_reason FROM runs "
	                "WHERE id = ?1 AND invalidated_at IS NOT NULL",
	                &s);

	if (r < 0)
		return r;
	sqlite3_bind_int64(s, 1, id);
	r = rows_json(st, s, cols, RD_ARRAY_SIZE(cols), 1, &rows, NULL);
	if (r < 0)
		return r;
	inv = json_array_size(rows) ? json_incref(json_array_get(rows, 0)) : json_null();
	json_decref(rows);
	return json_object_set_new(run, "invalidated", inv) < 0 ? oom(st) : 0;
}

int sqlite_run_history(struct store *st, int64_t id, json_t *run)
{
	static const struct hcol cols[] = {
	        {"seq", HK_INT},      {"created_at", HK_TIME}, {"requested_by", HK_TEXT},
	        {"verdict", HK_TEXT}, {"gates", HK_JSON},
	};
	sqlite3_stmt *s = NULL;
	json_t *arr = NULL;
	int r = decorate_invalidated(st, id, run);

	if (r == 0)
		r = prepare(st,
		            "SELECT seq, created_at, requested_by, verdict, gates FROM judgements "
		            "WHERE run_id = ?1 ORDER BY seq",
		            &s);
	if (r < 0)
		return r;
	sqlite3_bind_int64(s, 1, id);
	r = rows_json(st, s, cols, RD_ARRAY_SIZE(cols), SIZE_MAX, &arr, NULL);
	if (r < 0)
		return r;
	return json_object_set_new(run, "rejudgements", arr) < 0 ? oom(st) : 0;
}

/* ---- Services, history, trends --------------------------------------- */

int sqlite_services_list(struct store *st, json_t **ret_items)
{
	static const struct hcol cols[] = {
	        {"service", HK_TEXT},
	        {"environments", HK_JSON},
	        {"runs", HK_INT},
	        {"last_run_at", HK_TIME},
	};
	/* runs_by_service makes the GROUP BY an index walk. */
	static const char sql[] =
	        "SELECT service, json_group_array(DISTINCT environment), COUNT(*), "
	        "MAX(created_at) FROM runs GROUP BY service ORDER BY service LIMIT ?1";
	sqlite3_stmt *s = NULL;
	int r = prepare(st, sql, &s);

	if (r < 0)
		return r;
	sqlite3_bind_int(s, 1, HIST_SERVICES_MAX);
	return rows_json(st, s, cols, RD_ARRAY_SIZE(cols), HIST_SERVICES_MAX, ret_items, NULL);
}

static int history_cursor(struct store *st, const char *cursor, int64_t *ret_below)
{
	if (!cursor || !*cursor) {
		*ret_below = INT64_MAX;
		return 0;
	}
	if (rd_parse_int64(cursor, 1, INT64_MAX, ret_below) == 0)
		return 0;
	sqlite_set_errf(st, "cursor '%.64s' is not one this server gave out", cursor);
	return -EINVAL;
}

static int history_bind(sqlite3_stmt *s, const struct store_history_filter *f, int64_t below,
                        int limit)
{
	int rc;

	if ((rc = sqlite3_bind_text(s, 1, f->service, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = bind_text_opt(s, 2, f->environment)) != SQLITE_OK ||
	    (rc = bind_text_opt(s, 3, f->verdict)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 4, below)) != SQLITE_OK)
		return rc;
	return sqlite3_bind_int(s, 5, limit + 1); /* one more: is there a next page? */
}

int sqlite_history(struct store *st, const struct store_history_filter *f, json_t **ret_items,
                   char **ret_next_cursor)
{
	static const struct hcol cols[] = {
	        {"run_id", HK_INT},       {"version", HK_TEXT},        {"environment", HK_TEXT},
	        {"state", HK_TEXT},       {"verdict", HK_TEXT},        {"created_at", HK_TIME},
	        {"finished_at", HK_TIME}, {"invalidated_at", HK_TIME}, {"spec_version", HK_INT},
	};
	/* Decided runs only (a history of decisions); invalidated ones stay,
	 * flagged. Walks runs_by_service backwards from the cursor. */
	static const char sql[] =
	        "SELECT id, version, environment, state, verdict, created_at, finished_at, "
	        "invalidated_at, spec_version FROM runs WHERE service = ?1 AND verdict IS NOT NULL "
	        "AND (?2 IS NULL OR environment = ?2) AND (?3 IS NULL OR verdict = ?3) "
	        "AND id < ?4 ORDER BY id DESC LIMIT ?5";
	int limit = f->limit < 1 ? 1 : f->limit > HIST_LIST_MAX ? HIST_LIST_MAX : f->limit;
	sqlite3_stmt *s = NULL;
	json_t *items = NULL;
	char *cursor = NULL;
	int64_t below;
	bool more = false;
	int rc, r = history_cursor(st, f->cursor, &below);

	if (r == 0)
		r = prepare(st, sql, &s);
	if (r < 0)
		return r;
	rc = history_bind(s, f, below, limit);
	if (rc != SQLITE_OK)
		return bind_fail(st, s, rc);
	r = rows_json(st, s, cols, RD_ARRAY_SIZE(cols), (size_t)limit, &items, &more);
	if (r < 0)
		return r;
	if (more) {
		json_t *last = json_array_get(items, json_array_size(items) - 1);

		if (asprintf(&cursor, "%" JSON_INTEGER_FORMAT,
		             json_integer_value(json_object_get(last, "run_id"))) < 0) {
			json_decref(items);
			return oom(st);
		}
	}
	*ret_items = items;
	*ret_next_cursor = cursor;
	return 0;
}

/* The runs a trend shows: decided by a verdict the measurements stand
 * behind (PASS or FAIL; not cancelled, interrupted, unfinished or ERROR),
 * not invalidated, and no newer than run ?9 (a report's trend stops at
 * its own run). */
#define TREND_RUNS "r.verdict IN ('PASS', 'FAIL') AND r.invalidated_at IS NULL AND m.run_id <= ?9"

/* The trend statement: with an environment the whole WHERE is a range of
 * the covering index metrics_trend; without, a range of metrics_trend_any
 * (service, probe, metric, ts), read newest first so LIMIT stops the walk
 * (no sort; equal times newest run first). Both indexes hold run_id and value: the only other
 * lookup is the run, by rowid. Named, so the plan does not depend on statistics. */
static const char trend_sql_env[] =
        "SELECT m.run_id, m.ts, r.version, m.value, r.verdict, m.environment "
        "FROM metrics AS m INDEXED BY metrics_trend JOIN runs AS r ON r.id = m.run_id "
        "WHERE m.service = ?1 AND m.probe = ?2 AND m.metric = ?3 AND m.environment = ?4 "
        "AND m.ts >= ?5 AND m.ts <= ?6 AND " TREND_RUNS " "
        "ORDER BY m.ts DESC, m.run_id DESC LIMIT ?7";
static const char trend_sql_any[] =
        "SELECT m.run_id, m.ts, r.version, m.value, r.verdict, m.environment "
        "FROM metrics AS m INDEXED BY metrics_trend_any JOIN runs AS r ON r.id = m.run_id "
        "WHERE m.service = ?1 AND m.probe = ?2 AND m.metric = ?3 "
        "AND m.ts >= ?5 AND m.ts <= ?6 AND " TREND_RUNS " "
        "ORDER BY m.ts DESC, m.run_id DESC LIMIT ?7";

const char *sqlite_trend_sql(bool with_environment)
{
	return with_environment ? trend_sql_env : trend_sql_any;
}

/* The bucketed trend: the same range of the same index, every row newest
 * first (no LIMIT, no sort, no grouping in SQL); trend_fold() cuts it into
 * epoch-aligned buckets of ts / step (a 1d bucket starts at 00:00 UTC) as
 * it comes and stops after the newest limit + 1, so one walk of the index
 * answers. A bucket's first row is its newest run (by ts, then id): its
 * "last". */
#define TREND_WALK(index, where)                                                                   \
	"SELECT m.ts, m.run_id, m.value, r.version "                                               \
	"FROM metrics AS m INDEXED BY " index " JOIN runs AS r ON r.id = m.run_id "                \
	"WHERE m.service = ?1 AND m.probe = ?2 AND m.metric = ?3 " where                           \
	" AND m.ts >= ?5 AND m.ts <= ?6 AND " TREND_RUNS " ORDER BY m.ts DESC, m.run_id DESC"
static const char trend_buckets_env[] = TREND_WALK("metrics_trend", "AND m.environment = ?4");
static const char trend_buckets_any[] = TREND_WALK("metrics_trend_any", "");

const char *sqlite_trend_bucket_sql(bool with_environment)
{
	return with_environment ? trend_buckets_env : trend_buckets_any;
}

/* Column i as a trend number: NaN for NULL and non-finite (null in JSON). */
static double col_number(sqlite3_stmt *s, int i)
{
	double d;

	if (sqlite3_column_type(s, i) == SQLITE_NULL)
		return NAN;
	d = sqlite3_column_double(s, i);
	return isfinite(d) ? d : NAN;
}

/* Column i copied among p's strings (NULL stays null). */
static int col_str(struct store_trend_points *p, sqlite3_stmt *s, int i, size_t *ret)
{
	const char *t = (const char *)sqlite3_column_text(s, i);

	return store_trend_str_add(p, t, t ? (size_t)sqlite3_column_bytes(s, i) : 0, ret);
}

/* The current row of the point statement as a point of p. */
static int trend_point_row(struct store_trend_points *p, sqlite3_stmt *s)
{
	struct store_trend_point *pt = store_trend_point_add(p);

	if (!pt)
		return -ENOMEM;
	pt->run_id = sqlite3_column_int64(s, 0);
	pt->time_ms = sqlite3_column_int64(s, 1);
	pt->value = col_number(s, 3);
	if (col_str(p, s, 2, &pt->version) < 0 || col_str(p, s, 4, &pt->verdict) < 0 ||
	    col_str(p, s, 5, &pt->environment) < 0)
		return -ENOMEM;
	return 0;
}

/* A bucket being summed (the last point of p while open): AVG's sum and
 * count of the non-null values; the point holds COUNT(*), MIN and MAX. */
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

/* Adds the current walk row (ts, run_id, value, version) to its bucket,
 * ending the bucket before when the row starts a new one. 1 when the row
 * would start bucket limit + 1 (the walk stops: truncated), 0, -ENOMEM. */
static int trend_fold(struct store_trend_points *p, struct bucket_sum *a, sqlite3_stmt *s,
                      int64_t step, int limit)
{
	int64_t b = sqlite3_column_int64(s, 0) / step;
	struct store_trend_point *pt;

	if (!a->open || b != a->b) {
		bucket_end(p, a);
		if (p->n == (size_t)limit)
			return 1;
		if (!(pt = store_trend_point_add(p)))
			return -ENOMEM;
		*a = (struct bucket_sum){.open = true, .b = b};
		pt->time_ms = b * step;
		pt->run_id = sqlite3_column_int64(s, 1);
		pt->value = col_number(s, 2);
		pt->min = pt->max = NAN;
		if (col_str(p, s, 3, &pt->version) < 0)
			return -ENOMEM;
	}
	pt = &p->v[p->n - 1];
	pt->runs++;
	if (sqlite3_column_type(s, 2) != SQLITE_NULL) {
		double d = sqlite3_column_double(s, 2); /* +-Inf count, as in SQL */

		a->sum += d;
		a->values++;
		pt->min = isnan(pt->min) || d < pt->min ? d : pt->min;
		pt->max = isnan(pt->max) || d > pt->max ? d : pt->max;
	}
	return 0;
}

static int trend_bind(struct store *st, sqlite3_stmt *s, const struct store_trend_query *q,
                      int limit)
{
	int rc, r = 0;

	if ((rc = sqlite3_bind_text(s, 1, q->service, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(s, 2, q->probe, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(s, 3, q->metric, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (q->environment &&
	     (rc = sqlite3_bind_text(s, 4, q->environment, -1, SQLITE_STATIC)) != SQLITE_OK) ||
	    (rc = sqlite3_bind_int64(s, 5, q->since_ms)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 6, q->until_ms)) != SQLITE_OK ||
	    (q->step_ms == 0 && (rc = sqlite3_bind_int(s, 7, limit + 1)) != SQLITE_OK) ||
	    (rc = sqlite3_bind_int64(s, 9, q->until_run > 0 ? q->until_run : INT64_MAX)) !=
	            SQLITE_OK)
		r = sqlite_db_fail(st, rc, "bind a value");
	return r;
}

/* Steps s to its end (or the limit) into p, newest first. */
static int trend_walk(struct store *st, sqlite3_stmt *s, const struct store_trend_query *q,
                      int limit, struct store_trend_points *p)
{
	struct bucket_sum a = {0};
	int rc = SQLITE_DONE, r = 0;

	while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (q->step_ms > 0) {
			r = trend_fold(p, &a, s, q->step_ms, limit);
		} else if (p->n == (size_t)limit) {
			r = 1; /* the (limit + 1)th point: older ones were left out */
		} else {
			r = trend_point_row(p, s);
		}
	}
	bucket_end(p, &a);
	p->truncated = r == 1;
	if (r < 0)
		return oom(st);
	if (r == 0 && rc != SQLITE_DONE)
		return sqlite_db_fail(st, rc, "read a trend");
	return 0;
}

int sqlite_trend_points(struct store *st, const struct store_trend_query *q,
                        struct store_trend_points *ret)
{
	bool env = q->environment != NULL, buckets = q->step_ms > 0;
	int limit = q->limit < 1 ? 1 : q->limit > HIST_TREND_MAX ? HIST_TREND_MAX : q->limit;
	sqlite3_stmt *s = NULL;
	int r;

	if (q->step_ms < 0) {
		sqlite_set_errf(st, "Failed to read a trend: negative step");
		return -EINVAL;
	}
	r = sqlite_kept_stmt(st,
	                     buckets ? (env ? SQLITE_KEPT_BUCKETS_ENV : SQLITE_KEPT_BUCKETS_ANY)
	                             : (env ? SQLITE_KEPT_TREND_ENV : SQLITE_KEPT_TREND_ANY),
	                     buckets ? sqlite_trend_bucket_sql(env) : sqlite_trend_sql(env), &s);
	if (r < 0)
		return r;
	ret->buckets = buckets;
	r = trend_bind(st, s, q, limit);
	if (r == 0)
		r = trend_walk(st, s, q, limit, ret);
	sqlite3_reset(s); /* kept prepared: ends the read, pins nothing */
	sqlite3_clear_bindings(s);
	if (r < 0) {
		store_trend_points_free(ret);
		return r;
	}
	store_trend_points_reverse(ret);
	return 0;
}

int sqlite_trend(struct store *st, const struct store_trend_query *q, json_t **ret_points,
                 bool *ret_truncated)
{
	struct store_trend_points p = {0};
	int r = sqlite_trend_points(st, q, &p);

	if (r < 0)
		return r;
	*ret_points = store_trend_points_json(&p);
	*ret_truncated = p.truncated;
	store_trend_points_free(&p);
	return *ret_points ? 0 : oom(st);
}

/* ---- Percentiles from stored histograms ------------------------------ */
