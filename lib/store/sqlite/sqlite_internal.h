/* sqlite_internal: what the SQLite backend's files share and nobody
 * else: the connection, error reporting, transactions, and each file's
 * operations for the table in sqlite.c. Not for api/ or the scheduler:
 * they use store.h. Main thread for the write connection; every SQLite
 * code turned into -errno with a message kept for sqlite_errmsg().
 */
#pragma once

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/store/sqlite/sqlite.h"
#include "lib/store/store.h"
#include "lib/store/store_backend.h"

/* The connection; statements prepared on it must be finalized or reset
 * before returning (a pending SELECT pins a WAL snapshot). */
sqlite3 *sqlite_db(struct store *st);

/* A query result kept until the database changes: valid while changes
 * equals sqlite3_total_changes64() of the (only) write connection. */
struct sqlite_cache {
	json_t *value;
	int64_t changes;
};
struct sqlite_cache *sqlite_gates_cache(struct store *st);

/* Statements of the history file kept prepared on a connection (the
 * trend statements: prepared once per worker's reader, not per request).
 * Reset and unbound after every use, so none pins a snapshot; finalized
 * when the connection closes. */
enum sqlite_kept {
	SQLITE_KEPT_TREND_ENV = 0,
	SQLITE_KEPT_TREND_ANY,
	SQLITE_KEPT_BUCKETS_ENV,
	SQLITE_KEPT_BUCKETS_ANY,
	SQLITE_KEPT_MAX,
};
/* The statement of slot, prepared from sql on first use. */
int sqlite_kept_stmt(struct store *st, enum sqlite_kept slot, const char *sql, sqlite3_stmt **ret);

/* Sets the sentence sqlite_errmsg() returns. */
void sqlite_set_errf(struct store *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Keeps SQLite's message for a failed call and maps rc onto -errno. */
int sqlite_db_fail(struct store *st, int rc, const char *what);

/* BEGIN (IMMEDIATE when write) / COMMIT when r is 0, else ROLLBACK;
 * store_tx_end returns r or COMMIT's error. */
int sqlite_tx_begin(struct store *st, bool write);
int sqlite_tx_end(struct store *st, int r);

/* BEGIN DEFERRED / COMMIT: the read_begin and read_end operations. */
int sqlite_read_begin(struct store *st);
int sqlite_read_end(struct store *st, int r);

/* The operations of the table (store_backend.h), each in the file of its
 * part: runs in sqlite.c, history in sqlite_history.c, and so on. */
void sqlite_free(struct store *st);
int sqlite_schema_version(struct store *st);
int sqlite_run_create(struct store *st, const struct store_run_new *rn, int64_t *ret_id,
                      bool *ret_existing);
int sqlite_run_find_by_key(struct store *st, const char *service, const char *key,
                           const char *spec_json, int64_t *ret_id);
int sqlite_run_update(struct store *st, int64_t id, const char *state, const char *verdict,
                      int64_t started_at, int64_t finished_at, const char *error);
int sqlite_probe_save(struct store *st, int64_t run_id, size_t idx, json_t *probe);
int sqlite_judgement_save(struct store *st, int64_t run_id, json_t *gates, json_t *checklist);
int sqlite_run_spec(struct store *st, int64_t id, json_t **ret_spec);
int sqlite_runs_list(struct store *st, const struct store_filter *f, json_t **ret_items,
                     char **ret_next_cursor);
int sqlite_runs_interrupt_stale(struct store *st, int64_t now_ms);
int sqlite_prune_raw(struct store *st, int64_t before_ms, int batch);
const char *sqlite_errmsg(struct store *st);
const char *sqlite_errcause(struct store *st);
int sqlite_check_file(struct store *st);
int sqlite_checkpoint(struct store *st);
int sqlite_gates_latest(struct store *st, json_t **ret_items);
int sqlite_baseline_find(struct store *st, const struct store_baseline_want *w,
                         struct store_baseline_got *ret);
int sqlite_waiver_create(struct store *st, const struct store_waiver_new *w, int64_t *ret_id);
int sqlite_waivers_list(struct store *st, const char *service, int64_t now_ms, json_t **ret_items);
int sqlite_waiver_get(struct store *st, const char *service, int64_t id, int64_t now_ms,
                      json_t **ret_waiver);
int sqlite_waiver_revoke(struct store *st, const char *service, int64_t id, int64_t now_ms);
int sqlite_waiver_find(struct store *st, const char *service, const char *environment,
                       const char *expr, int64_t now_ms, json_t **ret_waiver);
int sqlite_run_invalidate(struct store *st, int64_t id, const char *reason, int64_t now_ms);
int sqlite_rejudgement_add(struct store *st, int64_t run_id, json_t *gates, const char *verdict,
                           const char *requested_by, int64_t now_ms, int64_t *ret_seq);
int sqlite_services_list(struct store *st, json_t **ret_items);
int sqlite_history(struct store *st, const struct store_history_filter *f, json_t **ret_items,
                   char **ret_next_cursor);
int sqlite_trend_points(struct store *st, const struct store_trend_query *q,
                        struct store_trend_points *ret);
int sqlite_trend(struct store *st, const struct store_trend_query *q, json_t **ret_points,
                 bool *ret_truncated);
int sqlite_metrics_snapshot(struct store *st, json_t **ret_snap);
int sqlite_probe_blob_save(struct store *st, int64_t run_id, size_t idx, const char *name,
                           const void *data, size_t len);
int sqlite_probe_blob_get(struct store *st, int64_t run_id, size_t idx, const char *name,
                          void **ret_data, size_t *ret_len);
int sqlite_probe_timeline_save(struct store *st, int64_t run_id, size_t idx, json_t *timeline);
int sqlite_probe_timeline_get(struct store *st, int64_t run_id, size_t idx, json_t **ret_timeline);
int sqlite_audit_add(struct store *st, const struct store_audit_new *a);
int sqlite_audit_list(struct store *st, int64_t run_id, int64_t waiver_id, json_t **ret_changes);
int sqlite_run_service(struct store *st, int64_t id, char *buf, size_t len);
int sqlite_schema_latest(struct store *st);
int sqlite_run_get(struct store *st, int64_t id, json_t **ret_run);
int sqlite_run_history(struct store *st, int64_t id, json_t *run);
int sqlite_spec_put(struct store *st, const struct store_spec_new *s, int64_t *ret_version);
int sqlite_spec_get(struct store *st, const char *service, const char *environment, int64_t version,
                    json_t **ret_spec);
int sqlite_specs_list(struct store *st, const char *service, json_t **ret_items);

/* Registers readyd_in_scope(service, scope) on a connection. */
int sqlite_scope_register(sqlite3 *db);
