/* pg_runs: runs, probe results, gate and checklist results of the
 * PostgreSQL backend (store_backend.h), answering as the SQLite backend
 * does: the same JSON, the same order, the same errors. Each operation is
 * one statement (data-modifying CTEs), so it is atomic without a
 * transaction of its own and costs the loop one round trip.
 *
 * It must not know HTTP, log above debug, print, or decide policy (which
 * state may follow which is the scheduler's business): it stores what it
 * is given, after checking the shape. The schema's CHECK constraints
 * refuse unknown states, verdicts and outcomes.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/policy/scope.h"
#include "lib/store/pg/pg_internal.h"
#include "lib/util/json_text.h"
#include "lib/util/run_state.h"
#include "lib/util/util.h"

#define RUN_COLS                                                                                   \
	"id, service, version, environment, state, verdict, submitted_by, created_at, "            \
	"started_at, finished_at, error, spec_version, node"
#define LIST_MAX 1000
/* Rows read per round trip once a list's first batch fell short of a
 * page (scope patterns the query cannot express, see scope_regex). */
#define LIST_BATCH 1000
/* PostgreSQL takes at most 65535 parameters in one statement. */
#define PG_PARAMS_MAX 65535

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
        {"spec_version", COL_INT, false},
        {"node", COL_TEXT, false}, /* pg_cluster.c: the node that claimed it */
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
        {"reason", COL_TEXT, true},    {"waiver", COL_JSON, false},
};

static const struct store_col check_cols[] = {
        {"item", COL_TEXT, true},    {"required", COL_BOOL, true}, {"evidence", COL_TEXT, false},
        {"outcome", COL_TEXT, true}, {"reason", COL_TEXT, true},
};

/* s as valid UTF-8 in *ret: PostgreSQL refuses invalid bytes that SQLite
 * keeps and reads back as '?', so they become '?' on the way in and read
 * back the same. *ret_hold owns the copy (json_decref; NULL for NULL). */
static int text_valid(struct store *st, const char *s, json_t **ret_hold, const char **ret)
{
	*ret_hold = NULL;
	*ret = s;
	if (!s)
		return 0;
	*ret_hold = store_json_string_lossy(s, strlen(s));
	if (!*ret_hold)
		return pg_oom(st);
	*ret = json_string_value(*ret_hold);
	return 0;
}

static int no_such_run(struct store *st, int64_t id)
{
	pg_set_errf(st, "Failed to find run %" PRId64 ": no such run", id);
	return -ENOENT;
}

/* ---- Runs ---------------------------------------------------------- */

int pg_run_find_by_key(struct store *st, const char *service, const char *key,
                       const char *spec_json, int64_t *ret_id)
{
	const char *params[] = {service, key};
	const char *stored;
	PGresult *res = NULL;
	int r = pg_exec(st,
	                "SELECT k.run_id, r.spec FROM idempotency_keys AS k "
	                "JOIN runs AS r ON r.id = k.run_id WHERE k.service = $1 AND k.key = $2",
	                2, params, &res, "find a run");

	if (r < 0)
		return r;
	if (PQntuples(res) == 0) {
		r = -ENOENT;
	} else {
		stored = pg_get_text(res, 0, 1);
		if (spec_json && (!stored || strcmp(stored, spec_json) != 0)) {
			pg_set_errf(st, "the Idempotency-Key was used with a different spec");
			r = -EEXIST;
		} else {
			*ret_id = pg_get_i64(res, 0, 0);
		}
	}
	PQclear(res);
	return r;
}

/* The run, its queued probes and its key in one statement. The key goes
 * in first, under an id drawn for the run: when another connection holds
 * or has just committed the same key, ON CONFLICT skips the key, and with
 * it the run and its probes, and the statement answers no row (the
 * caller then reads the winner's run). Foreign keys are checked at the
 * end of the statement, when the run exists. A key already stored
 * answers its run and spec, as 'prior'. */
static const char run_create_sql[] =
        "WITH prior AS (SELECT k.run_id, r.spec FROM idempotency_keys AS k "
        " JOIN runs AS r ON r.id = k.run_id WHERE k.service = $1::text AND k.key = $8::text), "
        "new_id AS (SELECT nextval(pg_get_serial_sequence('runs', 'id')) AS id "
        " WHERE NOT EXISTS (SELECT 1 FROM prior)), "
        "new_key AS (INSERT INTO idempotency_keys (service, key, run_id) "
        " SELECT $1::text, $8::text, id FROM new_id WHERE $8::text IS NOT NULL "
        " ON CONFLICT (service, key) DO NOTHING RETURNING run_id), "
        "new_run AS (INSERT INTO runs (id, service, version, environment, state, submitted_by, "
        " spec, created_at, spec_version, exec_spec) "
        " SELECT id, $1::text, $2::text, $3::text, 'queued', $4::text, $5::text, $6::bigint, "
        " $7::integer, $10::text FROM new_id "
        " WHERE $8::text IS NULL OR EXISTS (SELECT 1 FROM new_key) RETURNING id), "
        "new_probes AS (INSERT INTO probe_results (run_id, idx, name, type, state) "
        " SELECT r.id, p.ord - 1, p.v ->> 0, p.v ->> 1, 'queued' FROM new_run AS r, "
        " json_array_elements($9::json) WITH ORDINALITY AS p (v, ord)) "
        "SELECT id, NULL FROM new_run UNION ALL SELECT run_id, spec FROM prior";

/* The probes as [[name, type], ...]: one parameter for any count. */
static char *probes_json(const struct store_run_new *rn)
{
	json_t *arr = json_array();
	char *text = NULL;
	bool ok = arr != NULL;

	for (size_t i = 0; ok && i < rn->n_probes; i++)
		ok = json_array_append_new(
		             arr, json_pack("[ss]", rn->probe_names[i], rn->probe_types[i])) == 0;
	if (ok)
		text = rd_json_dumps(arr, JSON_COMPACT);
	json_decref(arr);
	return text;
}

/* One attempt; *ret_raced: the key went to a concurrent create. */
static int run_create_once(struct store *st, const struct store_run_new *rn, const char *by,
                           const char *probes, int64_t *ret_id, bool *ret_existing, bool *ret_raced)
{
	struct pg_num at, ver;
	const char *params[] = {rn->service,
	                        rn->version,
	                        rn->environment,
	                        by,
	                        rn->spec_json,
	                        pg_i64(&at, rn->created_at),
	                        rn->spec_version > 0 ? pg_i64(&ver, rn->spec_version) : NULL,
	                        rn->idempotency_key,
	                        probes,
	                        rn->exec_spec_json};
	PGresult *res = NULL;
	const char *stored;
	int r = pg_exec(st, run_create_sql, 10, params, &res, "create a run");

	if (r < 0)
		return r;
	*ret_raced = PQntuples(res) == 0;
	if (PQntuples(res) > 0) {
		stored = pg_get_text(res, 0, 1);
		*ret_existing = stored != NULL;
		*ret_id = pg_get_i64(res, 0, 0);
		if (stored && strcmp(stored, rn->spec_json) != 0) {
			pg_set_errf(st, "the Idempotency-Key was used with a different spec");
			r = -EEXIST;
		} else if (!stored) {
			pg_wrote(st);
		}
	}
	PQclear(res);
	return r;
}

int pg_run_create(struct store *st, const struct store_run_new *rn, int64_t *ret_id,
                  bool *ret_existing)
{
	bool existing = false, raced = false;
	json_t *hold = NULL;
	const char *by = NULL;
	char *probes = NULL;
	int64_t id = 0;
	int r;

	if (!store_run_new_valid(rn)) {
		pg_set_errf(st, "Failed to create a run: service, version, environment, spec, "
		                "creation time and every probe's name and type are required");
		return -EINVAL;
	}
	r = text_valid(st, rn->submitted_by, &hold, &by);
	probes = r == 0 ? probes_json(rn) : NULL;
	if (r == 0 && !probes)
		r = pg_oom(st);
	if (r == 0)
		r = run_create_once(st, rn, by, probes, &id, &existing, &raced);
	/* The concurrent create committed: its run answers, as a retry's. */
	if (r == 0 && raced) {
		r = pg_run_find_by_key(st, rn->service, rn->idempotency_key, rn->spec_json, &id);
		existing = true;
		if (r == -ENOENT) {
			pg_set_errf(st, "Failed to create a run: its Idempotency-Key was taken and "
			                "released meanwhile; retry");
			r = -EBUSY;
		}
	}
	json_decref(hold);
	free(probes);
	if (r < 0)
		return r;
	*ret_id = id;
	if (ret_existing)
		*ret_existing = existing;
	return 0;
}

int pg_run_update(struct store *st, int64_t id, const char *state, const char *verdict,
                  int64_t started_at, int64_t finished_at, const char *error)
{
	struct pg_num n_id, n_start, n_end;
	const char *params[7];
	PGresult *res = NULL;
	json_t *hold = NULL;
	int r;

	if (!state || started_at < 0 || finished_at < 0) {
		pg_set_errf(st, "Failed to update run %" PRId64 ": a state is required", id);
		return -EINVAL;
	}
	r = text_valid(st, error, &hold, &params[5]);
	if (r < 0)
		return r;
	params[0] = pg_i64(&n_id, id);
	params[1] = state;
	params[2] = verdict;
	params[3] = pg_time_opt(&n_start, started_at);
	params[4] = pg_time_opt(&n_end, finished_at);
	params[6] = pg_fence_param(st);
	r = pg_exec(st,
	            "UPDATE runs SET state = $2::text, verdict = COALESCE($3::text, verdict), "
	            "started_at = COALESCE($4::bigint, started_at), "
	            "finished_at = COALESCE($5::bigint, finished_at), error = $6::text "
	            "WHERE id = $1::bigint AND ($7::text IS NULL OR (node = $7::text AND "
	            "state = 'running'))",
	            7, params, &res, "update a run");
	json_decref(hold);
	if (r < 0)
		return r;
	if (pg_changed_rows(res) == 0 && params[6]) {
		r = pg_fence_refused(st, id, "the state");
	} else if (pg_changed_rows(res) == 0) {
		pg_set_errf(st, "Failed to update run %" PRId64 ": no such run", id);
		r = -ENOENT;
	}
	PQclear(res);
	return r;
}

/* ---- Probes -------------------------------------------------------- */

/* A probe object from the caller, checked and serialized. */
struct probe_row {
	const char *name, *type, *state, *error;
	int64_t started_at, finished_at;
	json_t *metrics;    /* borrowed; an object (possibly empty) or NULL */
	char *metrics_text; /* owned */
	char *details_text; /* owned; NULL for no details */
	json_t *error_hold; /* owns error made valid UTF-8 */
};

static void probe_row_free(struct probe_row *pr)
{
	free(pr->metrics_text);
	free(pr->details_text);
	json_decref(pr->error_hold);
}

static const char *probe_bad_field(json_t *probe, struct probe_row *pr)
{
	json_t *metrics = json_object_get(probe, "metrics");
	json_t *error = json_object_get(probe, "error");

	if (!pr->name || !pr->type || !pr->state)
		return !pr->name ? "name" : !pr->type ? "type" : "state";
	if (!store_probe_time(probe, "started_at", &pr->started_at))
		return "started_at";
	if (!store_probe_time(probe, "finished_at", &pr->finished_at))
		return "finished_at";
	if (metrics && !json_is_null(metrics) && !store_probe_metrics_valid(metrics))
		return "metrics";
	if (!pr->error && error && !json_is_null(error))
		return "error";
	return NULL;
}

static int probe_row_parse(struct store *st, json_t *probe, struct probe_row *pr)
{
	json_t *details, *metrics;
	const char *bad;

	if (!json_is_object(probe)) {
		pg_set_errf(st, "Failed to save a probe: not a JSON object");
		return -EINVAL;
	}
	pr->name = json_string_value(json_object_get(probe, "name"));
	pr->type = json_string_value(json_object_get(probe, "type"));
	pr->state = json_string_value(json_object_get(probe, "state"));
	pr->error = json_string_value(json_object_get(probe, "error"));
	bad = probe_bad_field(probe, pr);
	if (bad)
		return pg_invalid(st, "a probe", bad);
	metrics = json_object_get(probe, "metrics");
	details = json_object_get(probe, "details");
	pr->metrics = json_is_object(metrics) ? metrics : NULL;
	pr->metrics_text = pr->metrics ? rd_json_dumps(pr->metrics, JSON_COMPACT) : strdup("{}");
	if (details && !json_is_null(details))
		pr->details_text = rd_json_dumps(details, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!pr->metrics_text || (details && !json_is_null(details) && !pr->details_text))
		return pg_oom(st);
	/* An error quoting a target's bytes: stored as run errors are. */
	return text_valid(st, pr->error, &pr->error_hold, &pr->error);
}

/* The probe's row replaced and, once it is final, its rows of the long
 * metrics table (what trends read) replaced: one per metric, NULL for a
 * metric that was not a finite number. Rows of metrics no longer
 * published go; the others are updated in place (a DELETE and an INSERT
 * of the same key cannot share one statement). No row of the run: no
 * row answered. */
static const char probe_save_sql[] =
        "WITH run AS (SELECT id, service, environment FROM runs WHERE id = $1::bigint "
        " AND ($13::text IS NULL OR (node = $13::text AND state = 'running')) FOR SHARE), "
        "probe AS (INSERT INTO probe_results (run_id, idx, name, type, state, started_at, "
        " finished_at, metrics, details, error) "
        " SELECT id, $2::integer, $3::text, $4::text, $5::text, $6::bigint, $7::bigint, "
        " $8::text, $9::text, $10::text FROM run "
        " ON CONFLICT (run_id, idx) DO UPDATE SET name = EXCLUDED.name, type = EXCLUDED.type, "
        " state = EXCLUDED.state, started_at = EXCLUDED.started_at, "
        " finished_at = EXCLUDED.finished_at, metrics = EXCLUDED.metrics, "
        " details = EXCLUDED.details, error = EXCLUDED.error RETURNING run_id), "
        "gone AS (DELETE FROM metrics WHERE $11::boolean AND run_id = $1::bigint "
        " AND probe = $3::text AND EXISTS (SELECT 1 FROM probe) "
        " AND metric NOT IN (SELECT key FROM json_each($8::json))), "
        "kept AS (INSERT INTO metrics (run_id, service, environment, probe, metric, value, ts) "
        " SELECT r.id, r.service, r.environment, $3::text, m.key, "
        " CASE WHEN json_typeof(m.value) = 'number' THEN m.value::text::double precision END, "
        " $12::bigint FROM run AS r, json_each($8::json) AS m "
        " WHERE $11::boolean AND EXISTS (SELECT 1 FROM probe) "
        " ON CONFLICT (run_id, probe, metric) DO UPDATE SET service = EXCLUDED.service, "
        " environment = EXCLUDED.environment, value = EXCLUDED.value, ts = EXCLUDED.ts) "
        "SELECT count(*) FROM probe";

static int probe_row_write(struct store *st, int64_t run_id, size_t idx, const struct probe_row *pr)
{
	struct pg_num n_run, n_idx, n_start, n_end, n_ts;
	const char *params[] = {
	        pg_i64(&n_run, run_id),
	        pg_i64(&n_idx, (int64_t)idx),
	        pr->name,
	        pr->type,
	        pr->state,
	        pg_time_opt(&n_start, pr->started_at),
	        pg_time_opt(&n_end, pr->finished_at),
	        pr->metrics_text,
	        pr->details_text,
	        pr->error,
	        run_state_string_is_final(pr->state) ? "true" : "false",
	        pg_i64(&n_ts, pr->finished_at ? pr->finished_at : rd_now_ms()),
	        pg_fence_param(st),
	};
	PGresult *res = NULL;
	int r = pg_exec(st, probe_save_sql, 13, params, &res, "save a probe");

	if (r < 0)
		return r;
	r = pg_get_i64(res, 0, 0) > 0 ? 0
	    : params[12]              ? pg_fence_refused(st, run_id, "a probe")
	                              : no_such_run(st, run_id);
	PQclear(res);
	if (r == 0)
		pg_wrote(st);
	return r;
}

int pg_probe_save(struct store *st, int64_t run_id, size_t idx, json_t *probe)
{
	struct probe_row pr = {0};
	int r;

	/* Probe indexes are small (the spec caps probes); this keeps the
	 * cast to a SQL integer honest. */
	if (idx > INT32_MAX) {
		pg_set_errf(st, "Failed to save a probe: index %zu is out of range", idx);
		return -EINVAL;
	}
	r = probe_row_parse(st, probe, &pr);
	if (r == 0)
		r = probe_row_write(st, run_id, idx, &pr);
	probe_row_free(&pr);
	return r;
}

/* ---- Judgement ----------------------------------------------------- */

/* Checks every field of obj against cols; what names the object. */
static int cols_validate(struct store *st, json_t *obj, const struct store_col *cols, size_t n,
                         const char *what)
{
	if (!json_is_object(obj)) {
		pg_set_errf(st, "Failed to save %s: not a JSON object", what);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!store_col_valid(&cols[i], json_object_get(obj, cols[i].key)))
			return pg_invalid(st, what, cols[i].key);
	}
	return 0;
}

static int array_validate(struct store *st, json_t *arr, const struct store_col *cols, size_t n,
                          const char *what)
{
	json_t *item;
	size_t i;
	int r;

	if (!arr)
		return 0;
	if (!json_is_array(arr)) {
		pg_set_errf(st, "Failed to save %s: not a JSON array", what);
		return -EINVAL;
	}
	json_array_foreach (arr, i, item) {
		r = cols_validate(st, item, cols, n, what);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Checklist items are its key: a repeated one is refused as a second
 * insert of the same key would be. */
static int checklist_unique(struct store *st, json_t *arr)
{
	const char *a, *b;

	for (size_t i = 0; i < json_array_size(arr); i++) {
		a = json_string_value(json_object_get(json_array_get(arr, i), "item"));
		for (size_t j = 0; j < i; j++) {
			b = json_string_value(json_object_get(json_array_get(arr, j), "item"));
			if (strcmp(a, b) == 0) {
				pg_set_errf(st,
				            "Failed to save a checklist result: item '%.64s' is "
				            "listed twice",
				            a);
				return -EEXIST;
			}
		}
	}
	return 0;
}

/* Parameters of a judgement statement: $1 is the run, $2 the fenced node
 * (store_fence; NULL: none); the rest are kept
 * here as the statement's text is written. */
struct jparams {
	const char **v;
	struct pg_num *nums;
	char **owned;
	int n, cap;
};

static void jparams_free(struct jparams *p)
{
	for (int i = 0; i < p->n; i++)
		free(p->owned[i]);
	free(p->v);
	free(p->nums);
	free(p->owned);
}

static int jparams_init(struct store *st, struct jparams *p, int cap)
{
	*p = (struct jparams){.cap = cap};
	p->v = calloc((size_t)cap, sizeof(*p->v));
	p->nums = calloc((size_t)cap, sizeof(*p->nums));
	p->owned = calloc((size_t)cap, sizeof(*p->owned));
	if (!p->v || !p->nums || !p->owned) {
		jparams_free(p);
		return pg_oom(st);
	}
	return 0;
}

static const char *col_cast(const struct store_col *c)
{
	switch (c->kind) {
	case COL_INT:
	case COL_TIME:
		return "bigint";
	case COL_REAL:
		return "double precision";
	case COL_BOOL:
		return "integer";
	default:
		return "text";
	}
}

/* Writes "(idx, $a::type, $b::type, ...)" for obj's columns and adds
 * their parameters. */
static int jrow(struct store *st, FILE *sql, struct jparams *p, json_t *obj, size_t idx,
                const struct store_col *cols, size_t n)
{
	int first = p->n;
	int r = pg_cols_params(st, obj, cols, n, p->v + first, p->nums + first, p->owned + first);

	if (r < 0)
		return r;
	p->n += (int)n;
	fprintf(sql, "%s(%zu", idx ? ", " : "", idx);
	for (size_t i = 0; i < n; i++)
		fprintf(sql, ", $%d::%s", first + (int)i + 1, col_cast(&cols[i]));
	fputc(')', sql);
	return 0;
}

static void col_list(FILE *sql, const char *prefix, const struct store_col *cols, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(sql, "%s%s%s", i ? ", " : "", prefix, cols[i].key);
}

static void col_updates(FILE *sql, const struct store_col *cols, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(sql, "%s%s = EXCLUDED.%s", i ? ", " : "", cols[i].key, cols[i].key);
}

/* One table's rows replaced: the CTEs <t>_gone (rows not in arr) and
 * <t>_new (arr's rows, updated in place where their key exists). gate
 * rows are keyed by position, checklist rows by item (their position
 * keeps the order they were saved in). */
static int jtable(struct store *st, FILE *sql, struct jparams *p, json_t *arr, bool gates)
{
	const char *table = gates ? "gate_results" : "checklist_results";
	const struct store_col *cols = gates ? gate_cols : check_cols;
	size_t n = gates ? RD_ARRAY_SIZE(gate_cols) : RD_ARRAY_SIZE(check_cols);
	int first = p->n + 1;
	int r = 0;

	fprintf(sql,
	        ", %c_gone AS (DELETE FROM %s WHERE run_id = $1::bigint AND "
	        "EXISTS (SELECT 1 FROM run) AND ",
	        table[0], table);
	if (gates)
		fprintf(sql, "idx >= %zu)", json_array_size(arr));
	else
		fputs("item <> ALL (ARRAY[", sql);
	for (size_t i = 0; !gates && i < json_array_size(arr); i++)
		fprintf(sql, "%s$%zu::text", i ? ", " : "", first + i * n);
	if (!gates)
		fputs("]::text[]))", sql);
	if (json_array_size(arr) == 0)
		return 0;
	fprintf(sql, ", %c_new AS (INSERT INTO %s (run_id, idx, ", table[0], table);
	col_list(sql, "", cols, n);
	fputs(") SELECT r.id, v.idx, ", sql);
	col_list(sql, "v.", cols, n);
	fputs(" FROM run AS r, (VALUES ", sql);
	for (size_t i = 0; r == 0 && i < json_array_size(arr); i++)
		r = jrow(st, sql, p, json_array_get(arr, i), i, cols, n);
	fputs(") AS v (idx, ", sql);
	col_list(sql, "", cols, n);
	fprintf(sql, ") ON CONFLICT (run_id, %s) DO UPDATE SET idx = EXCLUDED.idx, ",
	        gates ? "idx" : "item");
	col_updates(sql, cols, n);
	fputc(')', sql);
	return r;
}

/* The whole replacement as one statement: what it deletes and inserts
 * depends on the run's row (CTE run), so a missing run changes nothing
 * and answers 0. */
static int judgement_sql(struct store *st, int64_t run_id, json_t *gates, json_t *checklist,
                         char **ret_sql, struct jparams *p)
{
	size_t len = 0;
	char *text = NULL;
	FILE *sql = open_memstream(&text, &len);
	int r = sql ? 0 : pg_oom(st);

	if (r == 0) {
		p->v[p->n] = pg_i64(&p->nums[p->n], run_id);
		p->n++;
		p->v[p->n] = pg_fence_param(st);
		p->n++;
		fputs("WITH run AS (SELECT id FROM runs WHERE id = $1::bigint AND ($2::text IS NULL "
		      "OR (node = $2::text AND state = 'running')) FOR UPDATE)",
		      sql);
	}
	if (r == 0 && gates)
		r = jtable(st, sql, p, gates, true);
	if (r == 0 && checklist)
		r = jtable(st, sql, p, checklist, false);
	if (sql) {
		fputs(" SELECT count(*) FROM run", sql);
		if (fclose(sql) != 0 && r == 0)
			r = pg_oom(st);
	}
	if (r < 0) {
		free(text);
		return r;
	}
	*ret_sql = text;
	return 0;
}

static int judgement_check(struct store *st, json_t *gates, json_t *checklist)
{
	size_t n_params = 2 + json_array_size(gates) * RD_ARRAY_SIZE(gate_cols) +
	                  json_array_size(checklist) * RD_ARRAY_SIZE(check_cols);
	int r = array_validate(st, gates, gate_cols, RD_ARRAY_SIZE(gate_cols), "a gate result");

	if (r == 0)
		r = array_validate(st, checklist, check_cols, RD_ARRAY_SIZE(check_cols),
		                   "a checklist result");
	if (r == 0 && checklist)
		r = checklist_unique(st, checklist);
	if (r == 0 && n_params > PG_PARAMS_MAX) {
		pg_set_errf(st, "Failed to save a judgement: too many gate and checklist results");
		r = -EINVAL;
	}
	return r;
}

/* Whether the run exists, for errors found before the statement: a
 * missing run is reported first, as one read inside the write would. */
static int run_require(struct store *st, int64_t run_id)
{
	struct pg_num n;
	const char *params[] = {pg_i64(&n, run_id)};
	PGresult *res = NULL;
	int r = pg_exec(st, "SELECT 1 FROM runs WHERE id = $1::bigint", 1, params, &res,
	                "find a run");

	if (r < 0)
		return r;
	r = PQntuples(res) > 0 ? 0 : no_such_run(st, run_id);
	PQclear(res);
	return r;
}

int pg_judgement_save(struct store *st, int64_t run_id, json_t *gates, json_t *checklist)
{
	struct jparams p;
	PGresult *res = NULL;
	char *sql = NULL;
	int r = judgement_check(st, gates, checklist);

	if (r < 0) {
		char saved[PG_ERRMSG_MAX];
		int found;

		snprintf(saved, sizeof(saved), "%s", pg_errmsg(st));
		found = run_require(st, run_id);
		if (found < 0)
			return found;
		pg_set_errf(st, "%s", saved);
		return r;
	}
	r = jparams_init(st, &p,
	                 2 + (int)(json_array_size(gates) * RD_ARRAY_SIZE(gate_cols) +
	                           json_array_size(checklist) * RD_ARRAY_SIZE(check_cols)));
	if (r < 0)
		return r;
	r = judgement_sql(st, run_id, gates, checklist, &sql, &p);
	if (r == 0)
		r = pg_exec(st, sql, p.n, p.v, &res, "save a judgement");
	if (r == 0) {
		r = pg_get_i64(res, 0, 0) > 0 ? 0
		    : pg_fence_param(st)      ? pg_fence_refused(st, run_id, "the judgement")
		                              : no_such_run(st, run_id);
		if (r == 0 && (gates || checklist))
			pg_wrote(st);
		PQclear(res);
	}
	free(sql);
	jparams_free(&p);
	return r;
}

/* ---- Reading runs -------------------------------------------------- */

/* The run and its probes, gates and checklist in one round trip: rows of
 * 15 text columns, part (0 run, 1 probe, 2 gate, 3 checklist) and
 * position first, then the part's columns as its table describes them
 * (numbers as text read back exactly: PostgreSQL writes the shortest
 * text of a double that reads back as it). */
static const char run_get_sql[] =
        "SELECT 0 AS part, 0 AS idx, id::text, service, version, environment, state, verdict, "
        " submitted_by, created_at::text, started_at::text, finished_at::text, error, "
        " spec_version::text, node FROM runs WHERE id = $1::bigint "
        "UNION ALL SELECT 1, idx, name, type, state, started_at::text, finished_at::text, "
        " metrics, details, error, NULL, NULL, NULL, NULL, NULL FROM probe_results "
        " WHERE run_id = $1::bigint "
        "UNION ALL SELECT 2, idx, expr, metric, op, threshold::text, value::text, "
        " samples::text, baseline::text, baseline_run::text, advisory::text, outcome, reason, "
        " waiver, NULL FROM gate_results WHERE run_id = $1::bigint "
        "UNION ALL SELECT 3, idx, item, required::text, evidence, outcome, reason, NULL, NULL, "
        " NULL, NULL, NULL, NULL, NULL, NULL FROM checklist_results WHERE run_id = $1::bigint "
        "ORDER BY part, idx";

static const struct {
	const char *key;
	const struct store_col *cols;
	size_t n;
} run_parts[] = {
        {NULL, run_cols, RD_ARRAY_SIZE(run_cols)},
        {"probes", probe_cols, RD_ARRAY_SIZE(probe_cols)},
        {"gates", gate_cols, RD_ARRAY_SIZE(gate_cols)},
        {"checklist", check_cols, RD_ARRAY_SIZE(check_cols)},
};

static int run_from_rows(struct store *st, const PGresult *res, json_t **ret_run)
{
	json_t *run = NULL, *row;
	int r = 0;

	r = pg_row_to_json(st, res, 0, 2, run_cols, RD_ARRAY_SIZE(run_cols), &run);
	for (size_t k = 1; r == 0 && k < RD_ARRAY_SIZE(run_parts); k++)
		if (json_object_set_new(run, run_parts[k].key, json_array()) < 0)
			r = pg_oom(st);
	for (int i = 1; r == 0 && i < PQntuples(res); i++) {
		size_t part = (size_t)pg_get_i64(res, i, 0);

		if (part < 1 || part >= RD_ARRAY_SIZE(run_parts))
			continue;
		r = pg_row_to_json(st, res, i, 2, run_parts[part].cols, run_parts[part].n, &row);
		if (r == 0 &&
		    json_array_append_new(json_object_get(run, run_parts[part].key), row) < 0)
			r = pg_oom(st);
	}
	if (r < 0) {
		json_decref(run);
		return r;
	}
	*ret_run = run;
	return 0;
}

/* Inside read_begin/read_end (store.c adds the history around it). */
int pg_run_get(struct store *st, int64_t id, json_t **ret_run)
{
	struct pg_num n;
	const char *params[] = {pg_i64(&n, id)};
	PGresult *res = NULL;
	int r = pg_exec(st, run_get_sql, 1, params, &res, "read a run");

	if (r < 0)
		return r;
	if (PQntuples(res) == 0 || pg_get_i64(res, 0, 0) != 0)
		r = no_such_run(st, id);
	else
		r = run_from_rows(st, res, ret_run);
	PQclear(res);
	return r;
}

int pg_run_spec(struct store *st, int64_t id, json_t **ret_spec)
{
	static const struct store_col spec_col = {"spec", COL_JSON, true};
	struct pg_num n;
	const char *params[] = {pg_i64(&n, id)};
	PGresult *res = NULL;
	int r = pg_exec(st, "SELECT spec FROM runs WHERE id = $1::bigint", 1, params, &res,
	                "read a run");

	if (r < 0)
		return r;
	r = PQntuples(res) > 0 ? pg_col_to_json(st, res, 0, 0, &spec_col, ret_spec)
	                       : no_such_run(st, id);
	PQclear(res);
	return r;
}

int pg_run_service(struct store *st, int64_t id, char *buf, size_t len)
{
	struct pg_num n;
	const char *params[] = {pg_i64(&n, id)};
	PGresult *res = NULL;
	int r = pg_exec(st, "SELECT service FROM runs WHERE id = $1::bigint", 1, params, &res,
	                "read a run");

	if (r < 0)
		return r;
	if (PQntuples(res) > 0) {
		snprintf(buf, len, "%s", pg_get_text(res, 0, 0));
	} else {
		pg_set_errf(st, "no run %" PRId64, id);
		r = -ENOENT;
	}
	PQclear(res);
	return r;
}

/* ---- Listing runs -------------------------------------------------- */

/* A token's scope (fnmatch(3) patterns, lib/policy/scope.h) as one
 * anchored regular expression (PostgreSQL's ARE) for the list's WHERE, so
 * the database skips other services and a page is read in one round
 * trip. Every row the query lets through is checked again with
 * scope_allows(), the one definition of a scope, and the expression only
 * has to let through at least what the patterns match. It is exact for
 * ASCII names ('*' any text, '?' one character, '\' quoting, simple
 * brackets); a pattern using anything else (character classes,
 * collating symbols, an unclosed bracket, bytes beyond ASCII) becomes
 * "anything", and services beyond ASCII (where '?' is one byte to
 * fnmatch and one character to PostgreSQL) always pass the query: the
 * list then reads further batches until its page is full. */

/* A bracket expression's inside when both syntaxes read it alike:
 * printable ASCII without '\\' or '[', ranges in order, none chained. */
static bool bracket_plain(const char *s, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		unsigned char c = (unsigned char)s[k];

		if (c < 0x20 || c > 0x7e || c == '\\' || c == '[')
			return false;
		if (c != '-' || k == 0 || k == n - 1)
			continue;
		if (s[k - 1] == '-' || s[k + 1] == '-' || s[k - 1] > s[k + 1] ||
		    (k >= 2 && s[k - 2] == '-'))
			return false;
	}
	return true;
}

/* Writes the bracket expression at p[*i] ('[') to out; false when it is
 * not a plain one. *i ends after its ']'. */
static bool bracket_to_are(const char *p, size_t n, size_t *i, FILE *out)
{
	size_t start = *i + 1, end;
	bool neg = start < n && (p[start] == '!' || p[start] == '^');

	if (neg)
		start++;
	end = start < n && p[start] == ']' ? start + 1 : start;
	while (end < n && p[end] != ']')
		end++;
	if (end >= n || !bracket_plain(p + start, end - start))
		return false;
	fprintf(out, "[%s%.*s]", neg ? "^" : "", (int)(end - start), p + start);
	*i = end + 1;
	return true;
}

/* One pattern of n bytes as "^...$"; false when it is not exact. */
static bool glob_to_are(const char *p, size_t n, FILE *out)
{
	size_t i = 0;
	unsigned char c;

	fputc('^', out);
	while (i < n) {
		c = (unsigned char)p[i];
		if (c == '[') {
			if (!bracket_to_are(p, n, &i, out))
				return false;
			continue;
		}
		if (c == '\\') {
			if (++i >= n)
				return false;
			c = (unsigned char)p[i];
		} else if (c == '*' || c == '?') {
			fputs(c == '*' ? ".*" : ".", out);
			i++;
			continue;
		}
		if (c < 0x20 || c > 0x7e)
			return false;
		/* ARE: '\' before a character that is not alphanumeric is
		 * that character. */
		fprintf(out, "%s%c",
		        (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		                ? ""
		                : "\\",
		        c);
		i++;
	}
	fputc('$', out);
	return true;
}

/* The scope's expression: "^a$|^b.*$", or "^.*$" when a pattern is not
 * exact. New string, or NULL when out of memory. */
static char *scope_regex(const char *scope)
{
	size_t len = 0, n;
	char *text = NULL;
	FILE *out = open_memstream(&text, &len);
	bool exact = true;

	if (!out)
		return NULL;
	for (const char *s = scope; *s && exact; s += n + (s[n] == '\n')) {
		n = strcspn(s, "\n");
		if (s != scope)
			fputc('|', out);
		exact = glob_to_are(s, n, out);
	}
	if (fclose(out) != 0 || !exact) {
		free(text);
		return exact ? NULL : strdup("^.*$");
	}
	return text;
}

/* The list query for f's filters: $1 the cursor, then the filters' and
 * the scope's parameters in that order, then the row count. Each mix of
 * filters gets its own text, so the planner can use the service and
 * state indexes. */
static char *list_sql(const struct store_filter *f)
{
	size_t len = 0;
	char *text = NULL;
	FILE *sql = open_memstream(&text, &len);
	int n = 1;

	if (!sql)
		return NULL;
	fputs("SELECT " RUN_COLS " FROM runs WHERE id < $1::bigint", sql);
	if (f->service)
		fprintf(sql, " AND service = $%d::text", ++n);
	if (f->environment)
		fprintf(sql, " AND environment = $%d::text", ++n);
	if (f->state)
		fprintf(sql, " AND state = $%d::text", ++n);
	if (scope_limited(f->scope))
		fprintf(sql,
		        " AND (service ~ $%d::text OR octet_length(service) <> length(service))",
		        ++n);
	fprintf(sql, " ORDER BY id DESC LIMIT $%d::integer", ++n);
	if (fclose(sql) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

static int list_cursor(struct store *st, const char *cursor, int64_t *ret_below)
{
	if (!cursor || cursor[0] == '\0') {
		*ret_below = INT64_MAX;
		return 0;
	}
	if (rd_parse_int64(cursor, 1, INT64_MAX, ret_below) < 0) {
		pg_set_errf(st,
		            "Failed to list runs: cursor '%.64s' is not one this server gave out",
		            cursor);
		return -EINVAL;
	}
	return 0;
}

/* Where a list stands between batches. */
struct list_state {
	const struct store_filter *f;
	const char *sql, *regex;
	int limit;
	int64_t below; /* the next batch reads ids below this */
	int64_t last;  /* the id of the last item taken */
	bool more;     /* a further item exists */
	bool done;     /* nothing left to read */
	json_t *items;
};

/* Reads one batch of up to want rows below ls->below and takes the rows
 * the scope allows, up to the page's size. */
static int list_batch(struct store *st, struct list_state *ls, int want)
{
	struct pg_num n_below, n_want;
	const char *params[6];
	PGresult *res = NULL;
	json_t *row;
	int n = 0, r;

	params[n++] = pg_i64(&n_below, ls->below);
	if (ls->f->service)
		params[n++] = ls->f->service;
	if (ls->f->environment)
		params[n++] = ls->f->environment;
	if (ls->f->state)
		params[n++] = ls->f->state;
	if (ls->regex)
		params[n++] = ls->regex;
	params[n++] = pg_i64(&n_want, want);
	r = pg_exec(st, ls->sql, n, params, &res, "list runs");
	ls->done = r == 0 && PQntuples(res) < want;
	for (int i = 0; r == 0 && i < PQntuples(res) && !ls->more; i++) {
		const char *service = pg_get_text(res, i, 1);

		ls->below = pg_get_i64(res, i, 0);
		if (!scope_allows(ls->f->scope, service))
			continue;
		if ((int)json_array_size(ls->items) == ls->limit) {
			ls->more = true;
			break;
		}
		r = pg_row_to_json(st, res, i, 0, run_cols, RD_ARRAY_SIZE(run_cols), &row);
		if (r == 0 && json_array_append_new(ls->items, row) < 0)
			r = pg_oom(st);
		ls->last = ls->below;
	}
	PQclear(res);
	return r;
}

static int list_read(struct store *st, struct list_state *ls)
{
	/* One row more than asked tells whether there is a next page. */
	int r = list_batch(st, ls, ls->limit + 1);

	while (r == 0 && !ls->more && !ls->done)
		r = list_batch(st, ls, LIST_BATCH);
	return r;
}

int pg_runs_list(struct store *st, const struct store_filter *f, json_t **ret_items,
                 char **ret_next_cursor)
{
	struct list_state ls = {
	        .f = f,
	        .limit = f->limit < 1          ? 1
	                 : f->limit > LIST_MAX ? LIST_MAX
	                                       : f->limit,
	};
	char *sql = NULL, *regex = NULL, *cursor = NULL;
	int r = list_cursor(st, f->cursor, &ls.below);

	if (r < 0)
		return r;
	sql = list_sql(f);
	regex = scope_limited(f->scope) ? scope_regex(f->scope) : NULL;
	ls.items = json_array();
	if (!sql || !ls.items || (scope_limited(f->scope) && !regex))
		r = pg_oom(st);
	ls.sql = sql;
	ls.regex = regex;
	if (r == 0)
		r = list_read(st, &ls);
	if (r == 0 && ls.more && asprintf(&cursor, "%" PRId64, ls.last) < 0) {
		cursor = NULL;
		r = pg_oom(st);
	}
	free(sql);
	free(regex);
	if (r < 0) {
		json_decref(ls.items);
		return r;
	}
	*ret_items = ls.items;
	*ret_next_cursor = cursor;
	return 0;
}

/* ---- Recovery ------------------------------------------------------ */

/* Runs and probes a previous process left queued or running, in one
 * statement: the runs are locked and read first, so the probes' update
 * finds them by their old state; right-hand sides of SET see the old row,
 * so `state` is the state each was left in. */
static const char interrupt_sql[] =
        "WITH stale AS (SELECT id FROM runs WHERE state IN ('queued', 'running') FOR UPDATE), "
        "probes AS (UPDATE probe_results SET state = 'interrupted', "
        " finished_at = CASE WHEN state = 'running' THEN COALESCE(finished_at, $1::bigint) "
        " ELSE finished_at END, "
        " error = COALESCE(error, 'readyd stopped while the probe was ' || state) "
        " WHERE state IN ('queued', 'running') AND run_id IN (SELECT id FROM stale)), "
        "done AS (UPDATE runs SET state = 'interrupted', finished_at = $1::bigint, "
        " error = 'readyd stopped while the run was ' || state || "
        " '; results measured so far are kept' "
        " WHERE id IN (SELECT id FROM stale) RETURNING id) "
        "SELECT count(*) FROM done";

int pg_runs_interrupt_stale(struct store *st, int64_t now_ms)
{
	struct pg_num n;
	const char *params[] = {pg_i64(&n, now_ms)};
	PGresult *res = NULL;
	int64_t count;
	int r = pg_exec(st, interrupt_sql, 1, params, &res, "interrupt runs");

	if (r < 0)
		return r;
	count = pg_get_i64(res, 0, 0);
	PQclear(res);
	if (count > 0)
		pg_wrote(st);
	return count > INT32_MAX ? INT32_MAX : (int)count;
}
