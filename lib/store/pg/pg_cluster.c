/* pg_cluster: what lets several readyd nodes share one PostgreSQL
 * database (store.h, "Several nodes on one database"): node heartbeats
 * that renew the leases of the runs a node holds, claims of queued runs
 * (FOR UPDATE SKIP LOCKED, so nodes claiming at once never take the same
 * run and never wait for each other), the end of runs whose node stopped
 * beating, and cancels of runs another node executes.
 *
 * Each operation is one statement (one round trip on the loop's
 * connection) except a cancel, which is rare. It must not decide policy
 * (how often to beat, how long a lease is: the scheduler's), log above
 * debug or know HTTP.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/store/pg/pg_internal.h"
#include "lib/util/util.h"

/* One row of a claim or a beat as JSON. */
static const struct store_col held_cols[] = {
        {"id", COL_INT, true},
        {"cancel", COL_BOOL, false},
};
static const struct store_col claim_cols[] = {
        {"id", COL_INT, true},
        {"spec_version", COL_INT, false},
        {"exec_spec", COL_TEXT, true},
};
static const struct store_col expired_cols[] = {
        {"id", COL_INT, true},
        {"node", COL_TEXT, false},
        {"state", COL_TEXT, true},
};

/* A node that restarts under the same id after its lease passed starts a
 * new life: started_at says when. Runs it holds are only those still
 * running on it (another node may have ended them meanwhile). */
/* The database's clock in ms; clock_timestamp() moves during a
 * statement, so a beat says when it was written. */
#define DB_NOW_MS "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"

/* Ends session sql's CTE c selects (columns id, pid), as the one
 * statement: MATERIALIZED, so pg_terminate_backend runs on c's rows only. */
#define END_SESSIONS(select)                                                                       \
	"WITH c AS MATERIALIZED (" select ") SELECT id, pid FROM c WHERE "                         \
	"pg_terminate_backend(pid) ORDER BY id"

/* The session node's last beat recorded, if it is still there and not
 * this one: a session this node left when it reconnected (a network
 * blip), which would hold its load slots until the server gave up on it. */
static int end_previous_session(struct store *st, const char *node)
{
	const char *params[] = {node};

	return pg_exec(st,
	               END_SESSIONS("SELECT n.id, a.pid FROM nodes n JOIN pg_stat_activity a ON "
	                            "a.pid = n.backend_pid AND a.backend_start = "
	                            "n.backend_started WHERE n.id = $1 AND a.pid <> "
	                            "pg_backend_pid()"),
	               1, params, NULL, "end this node's previous session");
}

int pg_node_beat(struct store *st, const char *node, const char *version, int64_t now_ms,
                 int64_t lease_ms, json_t **ret_held)
{
	struct pg_num now, lease;
	const char *params[] = {node, pg_i64(&now, now_ms), version, pg_i64(&lease, lease_ms)};
	PGresult *res = NULL;
	int r;

	if (!node || !version || lease_ms <= 0)
		return pg_invalid(st, "a heartbeat",
		                  !node      ? "node"
		                  : !version ? "version"
		                             : "lease");
	r = end_previous_session(st, node);
	if (r < 0)
		return r;
	r = pg_exec(st,
	            "WITH beat AS (INSERT INTO nodes (id, started_at, heartbeat_at, version, "
	            "backend_pid, backend_started, session_until) VALUES ($1, $2::bigint, "
	            "$2::bigint, $3, pg_backend_pid(), (SELECT backend_start FROM "
	            "pg_stat_activity WHERE pid = pg_backend_pid()), " DB_NOW_MS " + $4::bigint) "
	            "ON CONFLICT (id) DO UPDATE SET "
	            "heartbeat_at = EXCLUDED.heartbeat_at, version = EXCLUDED.version, "
	            "backend_pid = EXCLUDED.backend_pid, backend_started = "
	            "EXCLUDED.backend_started, session_until = EXCLUDED.session_until, "
	            "started_at = CASE WHEN nodes.heartbeat_at < EXCLUDED.heartbeat_at - "
	            "$4::bigint THEN EXCLUDED.started_at ELSE nodes.started_at END) "
	            "UPDATE runs SET lease_until = $2::bigint + $4::bigint "
	            "WHERE node = $1 AND state = 'running' "
	            "RETURNING id, CASE WHEN cancel_requested_at IS NULL THEN 0 ELSE 1 END",
	            4, params, &res, "record a heartbeat");
	if (r == 0)
		r = pg_rows_to_array(st, res, held_cols, RD_ARRAY_SIZE(held_cols), ret_held);
	PQclear(res);
	return r;
}

/* Runs without an executable spec (none was stored) are never claimed:
 * there is nothing to execute. */
int pg_run_claim(struct store *st, const char *node, int64_t lease_until, int max,
                 json_t **ret_runs)
{
	struct pg_num until, n;
	const char *params[] = {node, pg_i64(&until, lease_until), pg_i64(&n, max)};
	PGresult *res = NULL;
	int r;

	if (!node || max <= 0)
		return pg_invalid(st, "a claim", !node ? "node" : "max");
	r = pg_exec(st,
	            "WITH claimed AS (UPDATE runs SET state = 'running', node = $1, "
	            "lease_until = $2::bigint, cancel_requested_at = NULL WHERE id IN "
	            "(SELECT id FROM runs WHERE state = 'queued' AND exec_spec IS NOT NULL "
	            "ORDER BY id LIMIT $3::int FOR UPDATE SKIP LOCKED) "
	            "RETURNING id, spec_version, exec_spec) "
	            "SELECT id, spec_version, exec_spec FROM claimed ORDER BY id",
	            3, params, &res, "claim queued runs");
	if (r == 0 && PQntuples(res) > 0)
		pg_wrote(st); /* the UPDATE is in a CTE: pg_exec did not count it */
	if (r == 0)
		r = pg_rows_to_array(st, res, claim_cols, RD_ARRAY_SIZE(claim_cols), ret_runs);
	PQclear(res);
	return r;
}

/* RFC 3339 (UTC, seconds) of a ms column, in SQL. */
#define PG_RFC3339(col)                                                                            \
	"to_char(to_timestamp(" col " / 1000.0) AT TIME ZONE 'UTC', "                              \
	"'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* Runs another node is ending at this moment are skipped (SKIP LOCKED):
 * that node's statement ends them. A node starting ends the runs its
 * previous life held without waiting for their lease ($2). A run is
 * queued again only when its spec asks for it and no probe started, so
 * no measurement is lost or taken twice. */
/* clang-format off */
static const char expire_sql[] =
        "WITH dead AS (SELECT r.id, r.node, n.heartbeat_at, "
        " COALESCE(r.spec::json ->> 'resume' = 'requeue' AND NOT EXISTS (SELECT 1 FROM "
        " probe_results p WHERE p.run_id = r.id AND p.state <> 'queued'), false) AS requeue "
        " FROM runs r LEFT JOIN nodes n ON n.id = r.node "
        " WHERE r.state = 'running' AND (r.lease_until < $1::bigint OR r.node = $2::text) "
        " ORDER BY r.id FOR UPDATE OF r SKIP LOCKED), "
        "probes AS (UPDATE probe_results p SET state = 'interrupted', "
        " finished_at = CASE WHEN p.state = 'running' THEN COALESCE(p.finished_at, $1::bigint) "
        " ELSE p.finished_at END, "
        " error = COALESCE(p.error, 'node ''' || COALESCE(d.node, '?') || "
        " ''' stopped while the probe was ' || p.state) "
        " FROM dead d WHERE p.run_id = d.id AND NOT d.requeue "
        " AND p.state IN ('queued', 'running')), "
        "ended AS (UPDATE runs r SET "
        " state = CASE WHEN d.requeue THEN 'queued' ELSE 'interrupted' END, "
        " node = CASE WHEN d.requeue THEN NULL ELSE r.node END, lease_until = NULL, "
        " started_at = CASE WHEN d.requeue THEN NULL ELSE r.started_at END, "
        " finished_at = CASE WHEN d.requeue THEN NULL ELSE $1::bigint END, "
        " error = CASE WHEN d.requeue THEN NULL ELSE 'node ''' || COALESCE(d.node, '?') || "
        " CASE WHEN d.node = $2::text "
        "  THEN ''' stopped while the run was running and started again' "
        "  ELSE ''' stopped renewing its lease (last heard from at ' || "
        "   COALESCE(" PG_RFC3339("d.heartbeat_at") ", 'never') || ', lease ended at ' || "
        "   " PG_RFC3339("r.lease_until") " || ')' END || "
        " '; results measured so far are kept' END "
        " FROM dead d WHERE r.id = d.id RETURNING r.id, d.node, r.state) "
        "SELECT id, node, state FROM ended ORDER BY id";
/* clang-format on */

int pg_leases_expire(struct store *st, int64_t now_ms, const char *node, json_t **ret_runs)
{
	struct pg_num now;
	const char *params[] = {pg_i64(&now, now_ms), node};
	PGresult *res = NULL;
	int r = pg_exec(st, expire_sql, 2, params, &res, "end runs of nodes that stopped");

	if (r == 0 && PQntuples(res) > 0)
		pg_wrote(st);
	if (r == 0)
		r = pg_rows_to_array(st, res, expired_cols, RD_ARRAY_SIZE(expired_cols), ret_runs);
	PQclear(res);
	return r;
}

/* The sessions of nodes whose last beat vouched for them until a time now
 * past on the database's clock (each node's own lease: nodes with other
 * settings or clocks are judged alike), as that beat recorded them,
 * ended: their session locks (load slots) are freed. Never self's. */
static const struct store_col evicted_cols[] = {
        {"node", COL_TEXT, true},
        {"pid", COL_INT, true},
};

int pg_nodes_evict(struct store *st, const char *self, json_t **ret_evicted)
{
	const char *params[] = {self};
	PGresult *res = NULL;
	int r;

	if (!self)
		return pg_invalid(st, "an eviction", "node");
	r = pg_exec(st,
	            END_SESSIONS("SELECT n.id, a.pid FROM nodes n JOIN pg_stat_activity a ON "
	                         "a.pid = n.backend_pid AND a.backend_start = n.backend_started "
	                         "WHERE n.session_until < " DB_NOW_MS " AND n.id <> $1 AND "
	                         "a.pid <> pg_backend_pid()"),
	            1, params, &res, "end the sessions of nodes that stopped");
	if (r == 0)
		r = pg_rows_to_array(st, res, evicted_cols, RD_ARRAY_SIZE(evicted_cols),
		                     ret_evicted);
	PQclear(res);
	return r;
}

/* A queued run nobody claimed yet: cancelled here, with its probes, as
 * the scheduler cancels a queued run of its own. */
static int cancel_queued(struct store *st, const char *const *params, bool *ret_done)
{
	PGresult *res = NULL;
	int r = pg_exec(st,
	                "WITH q AS (UPDATE runs SET state = 'cancelled', finished_at = $2::bigint, "
	                "error = 'cancelled on request' WHERE id = $1::bigint AND state = "
	                "'queued' RETURNING id), "
	                "p AS (UPDATE probe_results SET state = 'cancelled' WHERE run_id IN "
	                "(SELECT id FROM q) AND state = 'queued') "
	                "SELECT count(*) FROM q",
	                2, params, &res, "cancel a queued run");

	if (r == 0)
		*ret_done = pg_get_i64(res, 0, 0) > 0;
	if (r == 0 && *ret_done)
		pg_wrote(st);
	PQclear(res);
	return r;
}

/* Separate statements on purpose: the second sees a claim that committed
 * while the first waited for the row, so a run being claimed is marked
 * for its new node rather than missed. */
int pg_run_cancel_request(struct store *st, int64_t id, int64_t now_ms)
{
	struct pg_num idb, now;
	const char *params[] = {pg_i64(&idb, id), pg_i64(&now, now_ms)};
	PGresult *res = NULL;
	bool done = false;
	int r = cancel_queued(st, params, &done);

	if (r < 0 || done)
		return r;
	r = pg_exec(
	        st,
	        "WITH m AS (UPDATE runs SET cancel_requested_at = COALESCE(cancel_requested_at, "
	        "$2::bigint) WHERE id = $1::bigint AND state = 'running' RETURNING id) "
	        "SELECT (SELECT count(*) FROM m), (SELECT state FROM runs WHERE id = $1::bigint)",
	        2, params, &res, "ask for a cancel");
	if (r == 0 && pg_get_i64(res, 0, 0) > 0) {
		pg_wrote(st);
		r = 1;
	} else if (r == 0 && pg_null(res, 0, 1)) {
		pg_set_errf(st, "Failed to cancel run %lld: no such run", (long long)id);
		r = -ENOENT;
	} else if (r == 0) {
		pg_set_errf(st, "Failed to cancel run %lld: it has ended (%s)", (long long)id,
		            pg_get_text(res, 0, 1));
		r = -EALREADY;
	}
	PQclear(res);
	return r;
}

int pg_run_release(struct store *st, int64_t id, const char *node)
{
	struct pg_num idb;
	const char *params[] = {pg_i64(&idb, id), node};
	PGresult *res = NULL;
	int r = pg_exec(st,
	                "UPDATE runs r SET state = 'queued', node = NULL, lease_until = NULL, "
	                "started_at = NULL, error = NULL WHERE id = $1::bigint AND node = $2::text "
	                "AND state = 'running' AND NOT EXISTS (SELECT 1 FROM probe_results p "
	                "WHERE p.run_id = r.id AND p.state <> 'queued')",
	                2, params, &res, "hand a run back to the queue");

	if (r == 0 && pg_changed_rows(res) == 0) {
		pg_set_errf(st, "Failed to hand run %lld back: not a run node '%s' holds unstarted",
		            (long long)id, node);
		r = -EBUSY;
	}
	PQclear(res);
	return r;
}

bool pg_queued_hint(struct store *st)
{
	struct pg_store *pg = pg_of(st);
	bool heard;

	pg_notifies_drain(st);
	heard = pg->queued_heard;
	pg->queued_heard = false;
	return heard;
}

/* ---- Fencing ---------------------------------------------------------- */

int pg_fence(struct store *st, const char *node)
{
	struct pg_store *pg = pg_of(st);
	char *copy = node ? strdup(node) : NULL;

	if (node && !copy)
		return pg_oom(st);
	free(pg->fence_node);
	pg->fence_node = copy;
	return 0;
}

const char *pg_fence_param(struct store *st)
{
	return pg_of(st)->fence_node;
}

/* Only after a fenced statement changed nothing: one more read says why,
 * so the common path stays one round trip. */
int pg_fence_refused(struct store *st, int64_t run_id, const char *what)
{
	struct pg_num idb;
	const char *params[] = {pg_i64(&idb, run_id)};
	const char *fence = pg_fence_param(st);
	PGresult *res = NULL;
	int r = pg_exec(st, "SELECT state, node FROM runs WHERE id = $1::bigint", 1, params, &res,
	                "find a run");

	if (r < 0)
		return r;
	if (PQntuples(res) == 0) {
		pg_set_errf(st, "Failed to save %s of run %lld: no such run", what,
		            (long long)run_id);
		r = -ENOENT;
	} else {
		pg_set_errf(st,
		            "Failed to save %s of run %lld: node '%s' no longer holds it (it is "
		            "%s, node '%s')",
		            what, (long long)run_id, fence ? fence : "?", pg_get_text(res, 0, 0),
		            pg_null(res, 0, 1) ? "none" : pg_get_text(res, 0, 1));
		r = -ESTALE;
	}
	PQclear(res);
	return r;
}

/* ---- Load slots --------------------------------------------------------- */

/* Session advisory locks keyed on (a hash of the host, the slot): the
 * two-key form, apart from the one-key lock of the migrations. Two hosts
 * whose names hash alike share their slots, which errs on the side of
 * less load. A session keeps its locks until it ends, so a node that dies
 * or loses the server frees them with it. */
#define LOAD_SLOT_KEY "hashtext('readyd load slot ' || lower($1::text)), $2::integer"

static int load_slot_exec(struct store *st, const char *sql, const char *host, int slot,
                          const char *what)
{
	struct pg_num n;
	const char *params[] = {host, pg_i64(&n, slot)};
	PGresult *res = NULL;
	int r;

	if (!host || slot < 0)
		return pg_invalid(st, "a load slot", !host ? "host" : "slot");
	r = pg_exec(st, sql, 2, params, &res, what);
	if (r == 0)
		r = strcmp(pg_get_text(res, 0, 0) ? pg_get_text(res, 0, 0) : "f", "t") == 0 ? 1 : 0;
	PQclear(res);
	return r;
}

int pg_load_slot_take(struct store *st, const char *host, int slot)
{
	return load_slot_exec(st, "SELECT pg_try_advisory_lock(" LOAD_SLOT_KEY ")", host, slot,
	                      "take a load slot");
}

/* 0 (not an error) when the session no longer held it: a reconnect
 * ended the old session and its locks with it. */
int pg_load_slot_release(struct store *st, const char *host, int slot)
{
	int r = load_slot_exec(st, "SELECT pg_advisory_unlock(" LOAD_SLOT_KEY ")", host, slot,
	                       "release a load slot");

	return r < 0 ? r : 0;
}
