/* pg_shard: the shards of a load probe fanned out over several nodes
 * (store_shard.h, migrations/postgresql/0003_raw_load_shards.sql). Claims
 * skip shards another node is claiming at the same moment (SKIP LOCKED);
 * every time is the database's clock (clock_timestamp()), so nodes never
 * compare their own clocks. Each operation is one statement. It must not
 * decide policy (how long a shard may stay silent: the scheduler's), log
 * above debug or know HTTP.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/store/pg/pg_internal.h"
#include "lib/store/store_shard.h"
#include "lib/util/json_text.h"
#include "lib/util/util.h"

/* The database's clock in ms; clock_timestamp() moves during a statement,
 * so a heartbeat says when it was written, not when its transaction began. */
#define NOW_MS "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"

static const struct store_col list_cols[] = {
        {"shard", COL_INT, true},      {"node", COL_TEXT, false},      {"state", COL_TEXT, true},
        {"start_at", COL_INT, false},  {"offset_ms", COL_REAL, false}, {"skew_ms", COL_INT, false},
        {"silent_ms", COL_INT, false}, {"requests", COL_INT, false},   {"stop", COL_BOOL, false},
        {"result", COL_JSON, false},   {"error", COL_TEXT, false},
};
static const struct store_col claim_cols[] = {
        {"run_id", COL_INT, true}, {"probe_idx", COL_INT, true}, {"shard", COL_INT, true},
        {"shards", COL_INT, true}, {"params", COL_JSON, true},   {"exec_spec", COL_TEXT, false},
};
static const struct store_col beat_cols[] = {
        {"start_at", COL_INT, false},
        {"stop", COL_BOOL, false},
        {"run_state", COL_TEXT, false},
};

static int pg_db_clock(struct store *st, int64_t *ret_ms)
{
	PGresult *res = NULL;
	int r = pg_exec(st, "SELECT " NOW_MS, 0, NULL, &res, "read the database's clock");

	if (r == 0)
		*ret_ms = pg_get_i64(res, 0, 0);
	PQclear(res);
	return r;
}

static int pg_nodes_alive(struct store *st, int64_t now_ms, int64_t within_ms, json_t **ret_ids)
{
	struct pg_num now, within;
	const char *p[] = {pg_i64(&now, now_ms), pg_i64(&within, within_ms)};
	PGresult *res = NULL;
	json_t *ids;
	int r = pg_exec(st,
	                "SELECT id FROM nodes WHERE heartbeat_at >= $1::bigint - $2::bigint "
	                "ORDER BY id",
	                2, p, &res, "list the nodes alive");

	ids = r == 0 ? json_array() : NULL;
	if (r == 0 && !ids)
		r = pg_oom(st);
	for (int i = 0; r == 0 && i < PQntuples(res); i++)
		if (json_array_append_new(ids, json_string(pg_get_text(res, i, 0))) < 0)
			r = pg_oom(st);
	PQclear(res);
	if (r < 0) {
		json_decref(ids);
		return r;
	}
	*ret_ids = ids;
	return 0;
}

static int pg_shards_create(struct store *st, int64_t run_id, size_t idx, const char *coordinator,
                            json_t *params)
{
	struct pg_num run, pidx, n;
	char *text = rd_json_dumps(params, JSON_COMPACT);
	const char *p[] = {pg_i64(&run, run_id), pg_i64(&pidx, (int64_t)idx), coordinator, text,
	                   pg_i64(&n, (int64_t)json_array_size(params) + 1)};
	int r;

	if (!text)
		return pg_oom(st);
	if (!coordinator || !json_is_array(params) || json_array_size(params) == 0) {
		free(text);
		return pg_invalid(st, "shards", !coordinator ? "coordinator" : "params");
	}
	r = pg_exec(
	        st,
	        "INSERT INTO raw_load_shards (run_id, probe_idx, shard, shards, coordinator, state, "
	        "params) SELECT $1::bigint, $2::int, e.i::int, $5::int, $3, 'queued', e.v::text "
	        "FROM json_array_elements($4::json) WITH ORDINALITY AS e(v, i)",
	        5, p, NULL, "queue the shards of a load");
	free(text);
	return r;
}

static int pg_shards_clear(struct store *st, int64_t run_id, size_t idx)
{
	struct pg_num run, pidx;
	const char *p[] = {pg_i64(&run, run_id), pg_i64(&pidx, (int64_t)idx)};

	return pg_exec(
	        st, "DELETE FROM raw_load_shards WHERE run_id = $1::bigint AND probe_idx = $2::int",
	        2, p, NULL, "clear the shards of a load");
}

static int pg_shards_list(struct store *st, int64_t run_id, size_t idx, json_t **ret_shards)
{
	struct pg_num run, pidx;
	const char *p[] = {pg_i64(&run, run_id), pg_i64(&pidx, (int64_t)idx)};
	PGresult *res = NULL;
	int r = pg_exec(
	        st,
	        "SELECT shard, node, state, start_at, offset_ms, started_at - start_at, " NOW_MS
	        " - heartbeat_at, requests, stop, result, error FROM raw_load_shards "
	        "WHERE run_id = $1::bigint AND probe_idx = $2::int ORDER BY shard",
	        2, p, &res, "read the shards of a load");

	if (r == 0)
		r = pg_rows_to_array(st, res, list_cols, RD_ARRAY_SIZE(list_cols), ret_shards);
	PQclear(res);
	return r;
}

/* statement_timestamp() is one value for every row of the statement. */
static int pg_shards_start(struct store *st, int64_t run_id, size_t idx, int64_t lead_ms,
                           int64_t *ret_start_at)
{
	struct pg_num run, pidx, lead;
	const char *p[] = {pg_i64(&run, run_id), pg_i64(&pidx, (int64_t)idx),
	                   pg_i64(&lead, lead_ms)};
	PGresult *res = NULL;
	int r = pg_exec(
	        st,
	        "UPDATE raw_load_shards SET start_at = (extract(epoch FROM statement_timestamp()) "
	        "* 1000)::bigint + $3::bigint WHERE run_id = $1::bigint AND probe_idx = "
	        "$2::int RETURNING start_at",
	        3, p, &res, "agree on the start of a load");

	if (r == 0 && PQntuples(res) == 0) {
		pg_set_errf(st, "Failed to agree on the start of a load: it has no shards");
		r = -ENOENT;
	}
	if (r == 0)
		*ret_start_at = pg_get_i64(res, 0, 0);
	PQclear(res);
	return r;
}

static int pg_shards_stop(struct store *st, int64_t run_id, size_t idx)
{
	struct pg_num run, pidx;
	const char *p[] = {pg_i64(&run, run_id), pg_i64(&pidx, (int64_t)idx)};

	return pg_exec(st,
	               "UPDATE raw_load_shards SET stop = true WHERE run_id = $1::bigint AND "
	               "probe_idx = $2::int AND NOT stop",
	               2, p, NULL, "stop the shards of a load");
}

/* clang-format off */
static const char claim_sql[] =
        "WITH c AS (SELECT s.run_id, s.probe_idx, s.shard FROM raw_load_shards s "
        " JOIN runs r ON r.id = s.run_id "
        " WHERE s.state = 'queued' AND NOT s.stop AND s.coordinator <> $1 "
        " AND r.state = 'running' AND NOT EXISTS (SELECT 1 FROM raw_load_shards o "
        "  WHERE o.run_id = s.run_id AND o.probe_idx = s.probe_idx AND o.node = $1) "
        " ORDER BY s.run_id, s.probe_idx, s.shard LIMIT 1 FOR UPDATE OF s SKIP LOCKED) "
        "UPDATE raw_load_shards s SET state = 'claimed', node = $1, heartbeat_at = " NOW_MS " "
        "FROM c, runs r WHERE s.run_id = c.run_id AND s.probe_idx = c.probe_idx "
        "AND s.shard = c.shard AND r.id = s.run_id "
        "RETURNING s.run_id, s.probe_idx, s.shard, s.shards, s.params, r.exec_spec";
/* clang-format on */

static int pg_shard_claim(struct store *st, const char *node, json_t **ret_shard)
{
	const char *p[] = {node};
	PGresult *res = NULL;
	json_t *shard = NULL;
	int r;

	if (!node)
		return pg_invalid(st, "a shard claim", "node");
	r = pg_exec(st, claim_sql, 1, p, &res, "claim a shard of a load");
	if (r == 0 && PQntuples(res) > 0)
		r = pg_row_to_json(st, res, 0, 0, claim_cols, RD_ARRAY_SIZE(claim_cols), &shard);
	PQclear(res);
	if (r == 0)
		*ret_shard = shard;
	return r;
}

static int pg_shard_beat(struct store *st, int64_t run_id, size_t idx, int shard, const char *node,
                         int64_t requests, int64_t started_at_ms, double offset_ms, json_t **ret)
{
	struct pg_num run, pidx, sh, req, started, off;
	const char *p[] = {pg_i64(&run, run_id),   pg_i64(&pidx, (int64_t)idx),
	                   pg_i64(&sh, shard),     node,
	                   pg_i64(&req, requests), pg_time_opt(&started, started_at_ms),
	                   pg_dbl(&off, offset_ms)};
	PGresult *res = NULL;
	int r = pg_exec(st,
	                "UPDATE raw_load_shards s SET heartbeat_at = " NOW_MS
	                ", requests = $5::bigint, "
	                "started_at = COALESCE(s.started_at, $6::bigint), offset_ms = "
	                "$7::double precision, state = CASE WHEN $6::bigint IS NULL THEN s.state "
	                "ELSE 'running' END WHERE run_id = $1::bigint AND probe_idx = $2::int AND "
	                "shard = $3::int AND node = $4 AND state IN ('claimed', 'running') "
	                "RETURNING start_at, stop, (SELECT state FROM runs WHERE id = s.run_id)",
	                7, p, &res, "beat for a shard of a load");

	if (r == 0 && PQntuples(res) == 0) {
		pg_set_errf(st, "Failed to beat for shard %d of run %lld: not node '%s''s", shard,
		            (long long)run_id, node);
		r = -ENOENT;
	}
	if (r == 0)
		r = pg_row_to_json(st, res, 0, 0, beat_cols, RD_ARRAY_SIZE(beat_cols), ret);
	PQclear(res);
	return r;
}

static int pg_shard_finish(struct store *st, int64_t run_id, size_t idx, int shard,
                           const char *node, const char *state, json_t *result, const char *error)
{
	struct pg_num run, pidx, sh, req;
	char *text = result ? rd_json_dumps(result, JSON_COMPACT) : NULL;
	json_t *n = json_object_get(result, "requests");
	const char *p[] = {pg_i64(&run, run_id),
	                   pg_i64(&pidx, (int64_t)idx),
	                   pg_i64(&sh, shard),
	                   node,
	                   state,
	                   text,
	                   error,
	                   json_is_integer(n) ? pg_i64(&req, json_integer_value(n)) : NULL};
	PGresult *res = NULL;
	int r;

	if (result && !text)
		return pg_oom(st);
	r = pg_exec(
	        st,
	        "UPDATE raw_load_shards SET state = $5, result = $6, error = $7, heartbeat_at = " NOW_MS
	        ", requests = COALESCE($8::bigint, requests) WHERE run_id = $1::bigint AND "
	        "probe_idx = $2::int AND shard = $3::int AND node = $4 AND state IN "
	        "('claimed', 'running')",
	        8, p, &res, "record the end of a shard");
	free(text);
	if (r == 0 && pg_changed_rows(res) == 0) {
		pg_set_errf(st, "Failed to record the end of shard %d of run %lld: not node '%s''s",
		            shard, (long long)run_id, node);
		r = -ENOENT;
	}
	PQclear(res);
	return r;
}

const struct store_shard_ops pg_shard_ops = {
        .db_clock = pg_db_clock,
        .alive = pg_nodes_alive,
        .create = pg_shards_create,
        .clear = pg_shards_clear,
        .list = pg_shards_list,
        .start = pg_shards_start,
        .stop = pg_shards_stop,
        .claim = pg_shard_claim,
        .beat = pg_shard_beat,
        .finish = pg_shard_finish,
};
