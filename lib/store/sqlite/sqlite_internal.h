/* store_internal: what store.c shares with its sibling files in lib/
 * (store_history.c) and nobody else: the connection, error reporting and
 * transactions. Not for api/ or the scheduler: they use store.h. Same
 * rules as store.c: main thread for the write connection, every SQLite
 * code turned into -errno with a message kept for store_errmsg().
 */
#pragma once

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/store/store.h"

/* The connection; statements prepared on it must be finalized or reset
 * before returning (a pending SELECT pins a WAL snapshot). */
sqlite3 *store_db(struct store *st);

/* A query result kept until the database changes: valid while changes
 * equals sqlite3_total_changes64() of the (only) write connection. */
struct store_cache {
	json_t *value;
	int64_t changes;
};
struct store_cache *store_gates_cache(struct store *st);

/* Sets the sentence store_errmsg() returns. */
void store_set_errf(struct store *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Keeps SQLite's message for a failed call and maps rc onto -errno. */
int store_db_fail(struct store *st, int rc, const char *what);

/* BEGIN (IMMEDIATE when write) / COMMIT when r is 0, else ROLLBACK;
 * store_tx_end returns r or COMMIT's error. */
int store_tx_begin(struct store *st, bool write);
int store_tx_end(struct store *st, int r);

/* Adds the history parts of a run resource (invalidated, rejudgements)
 * inside store_run_get's read transaction. store_history.c. */
int store_history_decorate(struct store *st, int64_t id, json_t *run);

/* The audit trail of a run as its "changes" array ({action, by, at,
 * reason?}), inside store_run_get's read transaction. store_audit.c. */
int store_audit_decorate(struct store *st, int64_t id, json_t *run);

/* Registers readyd_in_scope(service, scope) on a connection. */
int store_scope_register(sqlite3 *db);
