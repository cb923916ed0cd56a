/* pg_internal: what the PostgreSQL backend's files share and nobody
 * else: the connection object, queries with a deadline, transactions,
 * error translation, parameters and results. Not for api/ or the
 * scheduler: they use store.h.
 *
 * Every query goes through pg_exec(), which sends it, waits for the
 * answer at most the connection's deadline (the loop's connection must
 * never hang on a database that stopped answering) and turns a failure
 * into -errno with a message kept for pg_errmsg(). A query without
 * parameters may hold several statements (the simple protocol). A connection that
 * broke is not reopened here: queries fail fast with -ENOTCONN, and
 * pg_check_file() (called from a timer) reconnects without blocking.
 *
 * The schema (migrations/postgresql/) uses the SQLite backend's table and
 * column names; texts are bound and read as text, numbers as their
 * decimal text (pg_i64, pg_dbl), bytea in binary (pg_exec_bin).
 */
#pragma once

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/store/store.h"
#include "lib/store/store_backend.h"
#include "lib/store/store_cols.h"

#define PG_ERRMSG_MAX 512

/* A query result kept until the store's generation moves. */
struct pg_cache {
	json_t *value;
	uint64_t generation;
};

struct pg_store {
	struct store base;
	PGconn *conn;         /* NULL or broken: reconnecting */
	char *conninfo;       /* as given, password included: never printed */
	char *display;        /* conninfo with the password hidden */
	bool readonly;        /* a reader: default_transaction_read_only */
	bool in_tx;           /* between pg_tx_begin and pg_tx_end */
	int deadline_ms;      /* longest wait for one answer */
	int version;          /* schema version found at open */
	uint64_t generation;  /* moves with every change this handle made */
	int64_t reconnect_at; /* ms: next reconnect attempt (pg_check_file) */
	struct pg_dns *dns;   /* a reconnect's lookup of the host name, running */
	char hostaddr[48];    /* what it found; "" when libpq needs no lookup */
	char errmsg[PG_ERRMSG_MAX];
	char cause[PG_ERRMSG_MAX];
	struct pg_cache gates; /* GET /v1/gates */
	/* pg.c, pg_cluster.c: other nodes' writes, heard through LISTEN. */
	bool queued_heard; /* a run was queued since store_queued_hint */
	/* pg_cluster.c: the node whose runs' writes are fenced, or NULL. */
	char *fence_node;
	/* pg_partition.c: metrics is partitioned (read at open), and the
	 * lowest run id of the newest partition this handle made. */
	bool metrics_partitioned;
	int64_t partitions_upto;
};

struct pg_store *pg_of(struct store *st);

/* ---- Errors ---------------------------------------------------------- */

/* Sets the sentence pg_errmsg() returns (and clears the cause). */
void pg_set_errf(struct store *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int pg_oom(struct store *st);
/* "Failed to save <what>: <key> is missing or of the wrong type": -EINVAL. */
int pg_invalid(struct store *st, const char *what, const char *key);

/* ---- Queries ---------------------------------------------------------- */

/* Runs sql with n text parameters ($1..$n; a NULL entry is SQL NULL).
 * what is "<verb> <object>" for the message ("read a run"). On success
 * *ret_res (when ret_res is not NULL) is the result, which the caller
 * PQclear()s. Errors: -ENOTCONN (no connection), -ETIMEDOUT (no answer
 * within the deadline; the connection is dropped), -EEXIST (unique),
 * -EINVAL (check, not null, foreign key, bad value), -ENOSPC (disk
 * full), -EROFS (a write through a reader), -EBUSY (serialization,
 * deadlock), -EIO otherwise. */
int pg_exec(struct store *st, const char *sql, int n, const char *const *params, PGresult **ret_res,
            const char *what);

/* pg_exec with per-parameter lengths and formats (1: binary, for bytea)
 * and a binary or text result (result_binary). */
int pg_exec_bin(struct store *st, const char *sql, int n, const char *const *params,
                const int *lengths, const int *formats, bool result_binary, PGresult **ret_res,
                const char *what);

/* The number of rows the last INSERT/UPDATE/DELETE result changed (0
 * for any other statement: a write inside a WITH of a SELECT is not
 * counted and does not move the generation; make the write the statement,
 * with RETURNING, or call pg_wrote()). */
int64_t pg_changed_rows(PGresult *res);

/* BEGIN (write: READ WRITE; else REPEATABLE READ, READ ONLY) / COMMIT
 * when r is 0, else ROLLBACK; pg_tx_end returns r or COMMIT's error and
 * keeps the first error's message. */
int pg_tx_begin(struct store *st, bool write);
int pg_tx_end(struct store *st, int r);

/* ---- Parameters --------------------------------------------------------- */

/* Room for one number as text. */
struct pg_num {
	char s[40];
};

const char *pg_i64(struct pg_num *b, int64_t v);
/* NULL (SQL NULL) for NaN and infinities: stored as SQLite stores them. */
const char *pg_dbl(struct pg_num *b, double v);
/* NULL for 0: "not set" times. */
const char *pg_time_opt(struct pg_num *b, int64_t ms);

/* Parameters for obj's fields as described by cols (validated first with
 * store_col_valid): params[i] points into obj, into nums[i] or into a
 * string that *ret_owned[i] holds (free each with free()). */
int pg_cols_params(struct store *st, json_t *obj, const struct store_col *cols, size_t n,
                   const char **params, struct pg_num *nums, char **ret_owned);

/* ---- Results ---------------------------------------------------------- */

bool pg_null(const PGresult *res, int row, int col);
int64_t pg_get_i64(const PGresult *res, int row, int col);      /* 0 when NULL */
double pg_get_dbl(const PGresult *res, int row, int col);       /* NaN when NULL */
const char *pg_get_text(const PGresult *res, int row, int col); /* NULL when NULL */

/* Column col of row as JSON, by kind (null for SQL NULL, false for an
 * absent bool). New reference in *ret. */
int pg_col_to_json(struct store *st, const PGresult *res, int row, int col,
                   const struct store_col *c, json_t **ret);

/* Columns first.. of row described by cols as a new object. */
int pg_row_to_json(struct store *st, const PGresult *res, int row, int first,
                   const struct store_col *cols, size_t n, json_t **ret);

/* Every row of res as an array of objects (columns 0.. by cols). */
int pg_rows_to_array(struct store *st, const PGresult *res, const struct store_col *cols, size_t n,
                     json_t **ret);

/* ---- The operations (store_backend.h), each in the file of its part ---- */

/* pg.c: connection, schema, health. */
void pg_free(struct store *st);
int pg_schema_version(struct store *st);
int pg_schema_latest(struct store *st);
const char *pg_errmsg(struct store *st);
const char *pg_errcause(struct store *st);
int pg_check_file(struct store *st);
int pg_checkpoint(struct store *st);
uint64_t pg_generation(struct store *st);
int pg_reader_open(struct store *st, struct store **ret_reader, char *err, size_t errlen);
int pg_read_begin(struct store *st);
int pg_read_end(struct store *st, int r);

/* pg_runs.c: runs, probe results, gate and checklist results. */
int pg_run_create(struct store *st, const struct store_run_new *rn, int64_t *ret_id,
                  bool *ret_existing);
int pg_run_find_by_key(struct store *st, const char *service, const char *key,
                       const char *spec_json, int64_t *ret_id);
int pg_run_update(struct store *st, int64_t id, const char *state, const char *verdict,
                  int64_t started_at, int64_t finished_at, const char *error);
int pg_probe_save(struct store *st, int64_t run_id, size_t idx, json_t *probe);
int pg_judgement_save(struct store *st, int64_t run_id, json_t *gates, json_t *checklist);
int pg_run_get(struct store *st, int64_t id, json_t **ret_run);
int pg_run_spec(struct store *st, int64_t id, json_t **ret_spec);
int pg_run_service(struct store *st, int64_t id, char *buf, size_t len);
int pg_runs_list(struct store *st, const struct store_filter *f, json_t **ret_items,
                 char **ret_next_cursor);
int pg_runs_interrupt_stale(struct store *st, int64_t now_ms);

/* pg_history.c: verdicts, baselines, waivers, invalidation, trends. */
int pg_run_history(struct store *st, int64_t id, json_t *run);
int pg_gates_latest(struct store *st, json_t **ret_items);
int pg_baseline_find(struct store *st, const struct store_baseline_want *w,
                     struct store_baseline_got *ret);
int pg_waiver_create(struct store *st, const struct store_waiver_new *w, int64_t *ret_id);
int pg_waivers_list(struct store *st, const char *service, int64_t now_ms, json_t **ret_items);
int pg_waiver_get(struct store *st, const char *service, int64_t id, int64_t now_ms,
                  json_t **ret_waiver);
int pg_waiver_revoke(struct store *st, const char *service, int64_t id, int64_t now_ms);
int pg_waiver_find(struct store *st, const char *service, const char *environment, const char *expr,
                   int64_t now_ms, json_t **ret_waiver);
int pg_run_invalidate(struct store *st, int64_t id, const char *reason, int64_t now_ms);
int pg_rejudgement_add(struct store *st, int64_t run_id, json_t *gates, const char *verdict,
                       const char *requested_by, int64_t now_ms, int64_t *ret_seq);
int pg_services_list(struct store *st, json_t **ret_items);
int pg_history(struct store *st, const struct store_history_filter *f, json_t **ret_items,
               char **ret_next_cursor);
int pg_trend(struct store *st, const struct store_trend_query *q, json_t **ret_points,
             bool *ret_truncated);
int pg_trend_points(struct store *st, const struct store_trend_query *q,
                    struct store_trend_points *ret);

/* pg_report.c, pg_load.c, pg_audit.c, pg_specs.c, pg_retention.c. */
int pg_metrics_snapshot(struct store *st, json_t **ret_snap);
int pg_probe_blob_save(struct store *st, int64_t run_id, size_t idx, const char *name,
                       const void *data, size_t len);
int pg_probe_blob_get(struct store *st, int64_t run_id, size_t idx, const char *name,
                      void **ret_data, size_t *ret_len);
int pg_probe_timeline_save(struct store *st, int64_t run_id, size_t idx, json_t *timeline);
int pg_probe_timeline_get(struct store *st, int64_t run_id, size_t idx, json_t **ret_timeline);
int pg_audit_add(struct store *st, const struct store_audit_new *a);
int pg_audit_list(struct store *st, int64_t run_id, int64_t waiver_id, json_t **ret_changes);
int pg_spec_put(struct store *st, const struct store_spec_new *s, int64_t *ret_version);
int pg_spec_get(struct store *st, const char *service, const char *environment, int64_t version,
                json_t **ret_spec);
int pg_specs_list(struct store *st, const char *service, json_t **ret_items);
int pg_prune_raw(struct store *st, int64_t before_ms, int batch);

/* ---- pg_runs.c -------------------------------------------------------- */

/* Moves the generation: for a statement whose main query is a SELECT
 * (its writes in CTEs), which pg_exec counts as changing nothing. */
void pg_wrote(struct store *st);
/* pg_cluster.c: several nodes on one database (store.h). */
int pg_node_beat(struct store *st, const char *node, const char *version, int64_t now_ms,
                 int64_t lease_ms, json_t **ret_held);
int pg_run_claim(struct store *st, const char *node, int64_t lease_until, int max,
                 json_t **ret_runs);
int pg_leases_expire(struct store *st, int64_t now_ms, const char *node, json_t **ret_runs);
int pg_nodes_evict(struct store *st, const char *self, json_t **ret_evicted);
int pg_run_cancel_request(struct store *st, int64_t id, int64_t now_ms);
int pg_run_release(struct store *st, int64_t id, const char *node);
bool pg_queued_hint(struct store *st);
int pg_fence(struct store *st, const char *node);
int pg_load_slot_take(struct store *st, const char *host, int slot);
int pg_load_slot_release(struct store *st, const char *host, int slot);
/* The fenced node as a parameter (NULL: none, which every fenced
 * statement reads as "no fence"), and the error of a fenced write of
 * run_id that changed nothing: -ESTALE when the run is another node's
 * or has ended, -ENOENT when there is no such run. */
const char *pg_fence_param(struct store *st);
/* The fence as an SQL condition on run id and node n (parameter texts
 * such as "$1"): true without a fence, else while the run is running on
 * n, whose row it locks (FOR SHARE) so no other node ends the run before
 * the statement commits. */
#define PG_FENCE_OK(id, n)                                                                         \
	"(" n "::text IS NULL OR EXISTS (SELECT 1 FROM runs f WHERE f.id = " id "::bigint "        \
	"AND f.node = " n "::text AND f.state = 'running' FOR SHARE))"
int pg_fence_refused(struct store *st, int64_t run_id, const char *what);
/* pg_shard.c: shards of a load fanned out over several nodes (store_shard.h). */
extern const struct store_shard_ops pg_shard_ops;
/* pg_partition.c: metrics partitioned by ranges of this many run ids. */
#define PG_PARTITION_RUNS STORE_PARTITION_RUNS
/* Whether metrics is a partitioned table. */
int pg_metrics_partitioned(struct store *st, bool *ret);
/* store_partition_metrics (store.h). */
int pg_partition_metrics(struct store *st, int64_t *ret_upto);
/* From pg_check_file: the partition after the newest run's range made
 * when it is missing; never waits long for a lock, errors ignored. */
void pg_partitions_ahead(struct store *st);
/* pg.c: reads the notifications the server already sent (never waits):
 * each moves the generation; a "queued" one sets queued_heard. */
void pg_notifies_drain(struct store *st);
