/* store: SQLite access and the migration runner. One write connection,
 * owned by the main loop thread (the only writer); read-only connections
 * for worker threads come from store_open_readonly(). WAL mode, foreign
 * keys on, busy timeout set. Migrations (migrations/NNNN_*.sql) are
 * embedded at build time, applied in order in one transaction each and
 * recorded in schema_migrations; a database newer than this binary is
 * refused.
 *
 * The store speaks JSON (jansson) at its interface, shaped like the API's
 * resources (PRODUCT.md "Resource shapes"), so api/ and report_* need no
 * second model. Timestamps are ms since the epoch in the database and
 * RFC 3339 strings in JSON. It knows nothing of HTTP.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct store;

/* Opens (creating if needed) the database at path (":memory:" works) and
 * migrates it. On failure returns -errno (-EPROTONOSUPPORT for a database
 * newer than this binary, -EIO for SQLite errors) and writes a sentence to
 * err. Main thread. */
int store_open(const char *path, struct store **ret_store, char *err, size_t errlen);

/* A read-only connection to the same file for a worker thread; no
 * migrations. Not for ":memory:". */
int store_open_readonly(const char *path, struct store **ret_store, char *err, size_t errlen);

void store_free(struct store *st);

/* Highest migration applied / embedded in this binary. */
int store_schema_version(struct store *st);
int store_schema_latest(void);

/* What a new run needs. All borrowed. */
struct store_run_new {
	const char *service;
	const char *version;
	const char *environment;
	const char *submitted_by;       /* NULL: anonymous */
	const char *idempotency_key;    /* NULL: none */
	const char *spec_json;          /* redacted spec, serialized */
	const char *const *probe_names; /* n_probes entries */
	const char *const *probe_types;
	size_t n_probes;
	int64_t created_at; /* ms */
};

/* Inserts a run in state "queued" with one "queued" probe row per probe.
 * With an idempotency key that already exists, inserts nothing, returns
 * the existing run's id and sets *ret_existing. Returns 0 or -errno. */
int store_run_create(struct store *st, const struct store_run_new *rn, int64_t *ret_id,
                     bool *ret_existing);

/* The run created with this idempotency key: 0 and its id, or -ENOENT. */
int store_run_find_by_key(struct store *st, const char *key, int64_t *ret_id);

/* Sets a run's state (and verdict, error: NULL leaves them NULL/unchanged
 * as documented below). started_at/finished_at of 0 leave the stored
 * value unchanged. verdict NULL keeps NULL. error NULL clears. */
int store_run_update(struct store *st, int64_t id, const char *state, const char *verdict,
                     int64_t started_at, int64_t finished_at, const char *error);

/* Saves probe idx of run id from a probe object shaped like the run
 * resource's probes[] entry: name, type, state, started_at, finished_at
 * (ms integers here, not strings), metrics {name: number}, details
 * (any JSON or null), error (string or null). When state is final
 * (passed, failed, error, cancelled, interrupted), each metric is also
 * written to the long metrics table for trends. Borrowed. */
int store_probe_save(struct store *st, int64_t run_id, size_t idx, json_t *probe);

/* Replaces the gate results of a run (array of gate_judge() objects) and
 * the checklist results (array of {item, required, evidence, outcome,
 * reason}). Borrowed. Either may be NULL to leave it. */
int store_judgement_save(struct store *st, int64_t run_id, json_t *gates, json_t *checklist);

/* The run as the API shows it: id, service, version, environment, state,
 * verdict, submitted_by, created_at, started_at, finished_at, error,
 * probes[], gates[], checklist[] (no progress, no links: callers add
 * those). -ENOENT if there is no such run. New reference. */
int store_run_get(struct store *st, int64_t id, json_t **ret_run);

/* The stored (redacted) spec of a run, as parsed JSON. New reference. */
int store_run_spec(struct store *st, int64_t id, json_t **ret_spec);

/* Run summaries, newest first. service/state NULL: any. cursor NULL or
 * "": from the newest; else as returned in *ret_next_cursor (NULL when
 * there is no further page; caller frees). limit 1..1000. A cursor that
 * does not parse is -EINVAL. Items have the run fields without probes,
 * gates and checklist. */
struct store_filter {
	const char *service;
	const char *environment;
	const char *state;
	const char *cursor;
	int limit;
};
int store_runs_list(struct store *st, const struct store_filter *f, json_t **ret_items,
                    char **ret_next_cursor);

/* At start-up: every run left "running" or "queued" by a previous process
 * becomes "interrupted" (finished_at now, error says why), its running or
 * queued probes too; what was measured stays. Returns the count. */
int store_runs_interrupt_stale(struct store *st, int64_t now_ms);

/* Writes a sentence describing the last SQLite error of this connection. */
const char *store_errmsg(struct store *st);
