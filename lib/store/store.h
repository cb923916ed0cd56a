/* store: the interface to readyd's storage of runs, probe results,
 * metrics, gate results, history, waivers, audit trail, idempotency keys
 * and load measurements. sched, api and the reports use only this header;
 * a backend implements it (lib/store/store_backend.h: a table of
 * operations) and store_open() picks the backend from what it is given.
 * Today the only backend is SQLite (lib/store/sqlite/): one write
 * connection, owned by the main loop thread (the only writer), read-only
 * connections for worker threads from store_open_readonly(). Schema
 * migrations are the backend's; each is applied once and recorded, and a
 * database newer than this binary is refused.
 *
 * The store speaks JSON (jansson) at its interface, shaped like the API's
 * resources, so api/ and report_* need no second model. Timestamps are ms
 * since the epoch in storage and RFC 3339 strings in JSON. It knows
 * nothing of HTTP.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct store;

/* Opens (creating if needed) the store named by where and migrates it:
 * a file path (":memory:" works) for the SQLite backend; a
 * "postgresql://" or "postgres://" URL for the PostgreSQL backend (an
 * existing database; -ENOTCONN when its server cannot be reached). On
 * failure returns -errno (-EPROTONOSUPPORT for a database newer than this
 * binary, -EIO for the backend's errors) and writes a sentence to err,
 * without the URL's password. Main thread. */
int store_open(const char *where, struct store **ret_store, char *err, size_t errlen);

/* A read-only connection to the same store for a worker thread; no
 * migrations. Not for ":memory:". */
int store_open_readonly(const char *where, struct store **ret_store, char *err, size_t errlen);

/* A read-only connection to the store st is connected to, for one
 * worker thread (each worker its own; close it with store_free on that
 * thread). It sees every write st committed before the call. -ENOTSUP
 * when the store has no second connection (":memory:"): read on st then.
 * Main thread or the worker. */
int store_reader_open(struct store *st, struct store **ret_reader, char *err, size_t errlen);

/* Whether where names a local database file (so its folder may be
 * created): not ":memory:", not a URL. */
bool store_is_local_file(const char *where);

/* Whether where can be opened as far as its form goes (a PostgreSQL URL
 * libpq can parse; nothing is connected to): 0, or -EINVAL with the
 * reason in err, without the URL's password. */
int store_where_check(const char *where, char *err, size_t errlen);

/* Closes the store; accepts NULL. */
void store_free(struct store *st);

/* Highest migration applied / known to this binary's backend. */
int store_schema_version(struct store *st);
int store_schema_latest(struct store *st);

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
	int64_t created_at;   /* ms */
	int64_t spec_version; /* the stored spec it came from; 0: none */
	/* The node that takes the run: recorded at once by a store only one
	 * node uses; a shared store (store_shared) records the node that
	 * claims it instead. NULL: none. */
	const char *node;
	/* The spec as submitted, credentials included, serialized: what the
	 * node that claims the run executes (a shared store keeps it until
	 * the run ends; others ignore it). NULL: none. */
	const char *exec_spec_json;
};

/* Inserts a run in state "queued" with one "queued" probe row per probe.
 * Idempotency keys are per service: with a key this service already has
 * and the same spec_json, inserts nothing, returns the existing run's id
 * and sets *ret_existing; with a different spec_json returns -EEXIST.
 * Returns 0 or -errno. */
int store_run_create(struct store *st, const struct store_run_new *rn, int64_t *ret_id,
                     bool *ret_existing);

/* The run of service created with this idempotency key: 0 and its id,
 * -ENOENT if none, -EEXIST if spec_json is given and differs from the
 * stored run's (redacted, serialized) spec. All borrowed. */
int store_run_find_by_key(struct store *st, const char *service, const char *key,
                          const char *spec_json, int64_t *ret_id);

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
 * spec_version (the stored spec's version, or null),
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
	const char *scope; /* a token's service patterns (lib/policy/scope.h); NULL: all */
};
int store_runs_list(struct store *st, const struct store_filter *f, json_t **ret_items,
                    char **ret_next_cursor);

/* At start-up: every run left "running" or "queued" by a previous process
 * becomes "interrupted" (finished_at now, error says why), its running or
 * queued probes too; what was measured stays. Returns the count. */
int store_runs_interrupt_stale(struct store *st, int64_t now_ms);

/* Retention: deletes up to batch rows of raw per-run
 * data (tables named raw_* with a run_id column) of runs that finished
 * before before_ms, then, on SQLite, gives free pages back (incremental
 * vacuum; on PostgreSQL autovacuum makes the space reusable).
 * Returns the number of rows deleted (batch means: call again soon) or
 * -errno. Summaries, metrics and verdicts are kept. Main thread. */
int store_prune_raw(struct store *st, int64_t before_ms, int batch);

/* A sentence describing the last error of this handle. */
const char *store_errmsg(struct store *st);

/* The cause of the last error alone, in the backend's words ("database
 * or disk is full"), for callers that name the object themselves; the
 * whole sentence of store_errmsg() when there is no separate cause. */
const char *store_errcause(struct store *st);

/* Whether the path the database was opened from still names the open
 * file (same device and inode): 0, -ENOENT when it was deleted or
 * renamed away, -ESTALE when another file took its place, or stat's
 * -errno; store_errmsg() says which. Writes through the open connection
 * still succeed after a deletion but land in a file nobody can open
 * again, so the daemon checks this now and then. Always 0 for
 * ":memory:" and for a backend without a local file. Main thread. */
int store_check_file(struct store *st);

/* Copies the write-ahead log into the database file and truncates it,
 * so the open file alone holds every committed write (what an operator
 * copies out of /proc/PID/fd after the path was deleted). Never waits:
 * -EBUSY while another connection reads an older snapshot (call again
 * later). Main thread. */
int store_checkpoint(struct store *st);

/* A number that changes whenever this connection changes anything stored
 * (any committed write: a run finishing, a waiver, an invalidation, a
 * rejudgement, a stored spec, retention), never otherwise. What was read
 * at one generation may be served again while the generation is the
 * same: the API keeps the bytes of polled answers under it. Main thread
 * (the only writer). */
uint64_t store_generation(struct store *st);

/* ---- History ---- */

/* Latest decided (passed, failed, error), non-invalidated run per service
 * and environment: items [{service, environment, verdict, run_id,
 * version, finished_at}] ordered by service, environment. One index walk:
 * cheap enough to poll every second. New reference. */
int store_gates_latest(struct store *st, json_t **ret_items);

/* The baseline of probe.metric: its value in the newest passed,
 * non-invalidated run of service and environment other than
 * exclude_run_id that published it as a number. -ENOENT if none. */
int store_baseline(struct store *st, const char *service, const char *environment,
                   const char *probe, const char *metric, int64_t exclude_run_id, double *ret_value,
                   int64_t *ret_run_id);

/* A baseline that must itself rest on enough samples: the newest passed,
 * non-invalidated run (other than exclude_run_id) whose probe.metric is
 * a number and, when min_samples > 0 and the probe published `requests`,
 * was measured on at least min_samples of them (less `errors` when
 * successes is set, as the judge counts latency and throughput_rps).
 * Newer candidates below the floor are skipped and counted. Returns 0,
 * -ENOENT when none qualifies (ret still says how many were skipped), or
 * -errno. All borrowed. */
struct store_baseline_want {
	const char *service;
	const char *environment;
	const char *probe;
	const char *metric;
	int64_t exclude_run_id;
	int64_t min_samples; /* 0: no floor */
	bool successes;      /* count requests - errors */
};
struct store_baseline_got {
	double value;
	int64_t run_id;
	int64_t skipped;        /* newer passed runs below the floor */
	int64_t skipped_newest; /* the newest of them, 0 if none */
};
int store_baseline_find(struct store *st, const struct store_baseline_want *w,
                        struct store_baseline_got *ret);

/* A waiver; expr is the canonical gate expression (gate_format()).
 * environment NULL: any. All borrowed. */
struct store_waiver_new {
	const char *service;
	const char *environment;
	const char *expr;
	const char *reason;
	const char *approver;
	const char *created_by; /* token name, or NULL */
	int64_t created_at;     /* ms */
	int64_t expires_at;     /* ms, > created_at */
};
int store_waiver_create(struct store *st, const struct store_waiver_new *w, int64_t *ret_id);

/* Waivers of a service, newest first: {id, service, environment, expr,
 * reason, approver, created_by, created_at, expires_at, revoked_at,
 * active, expired} (active/expired as of now_ms). New reference. */
int store_waivers_list(struct store *st, const char *service, int64_t now_ms, json_t **ret_items);
int store_waiver_get(struct store *st, const char *service, int64_t id, int64_t now_ms,
                     json_t **ret_waiver);

/* Revokes (keeps the row, sets revoked_at). -ENOENT if the service has no
 * such waiver; revoking twice keeps the first time. */
int store_waiver_revoke(struct store *st, const char *service, int64_t id, int64_t now_ms);

/* The newest waiver active at now_ms for expr of service in environment
 * (or any environment): {id, reason, approver, expires_at}. -ENOENT. */
int store_waiver_find(struct store *st, const char *service, const char *environment,
                      const char *expr, int64_t now_ms, json_t **ret_waiver);

/* What the judge's lookups need (judge_baseline_cb, judge_waiver_cb):
 * pass &ctx as userdata to store_judge_baseline / store_judge_waiver. */
struct store_judge_ctx {
	struct store *store;
	const char *service;
	const char *environment;
	int64_t run_id; /* the run being judged: never its own baseline */
	int64_t now_ms; /* waivers active at this time */
};
struct judge_baseline;
int store_judge_baseline(void *userdata, const char *probe, const char *metric, int64_t min_samples,
                         bool successes, struct judge_baseline *ret);
int store_judge_waiver(void *userdata, const char *expr, json_t **ret_waiver);

/* Marks an ended run invalid (excluded from baselines, trends and
 * gates; still readable; the run resource shows invalidated {at, reason}).
 * -ENOENT, -EINPROGRESS (not ended), -EALREADY, -EINVAL (no reason). */
int store_run_invalidate(struct store *st, int64_t id, const char *reason, int64_t now_ms);

/* Stores a re-decision of an ended run beside its verdict (the run
 * resource lists them as rejudgements [{seq, created_at, requested_by,
 * verdict, gates}]). -ENOENT, -EINPROGRESS. */
int store_rejudgement_add(struct store *st, int64_t run_id, json_t *gates, const char *verdict,
                          const char *requested_by, int64_t now_ms, int64_t *ret_seq);

/* Services seen: [{service, environments [..], runs, last_run_at}]. */
int store_services_list(struct store *st, json_t **ret_items);

/* Decided runs of a service, newest first: [{run_id, version,
 * environment, spec_version, state, verdict, created_at, finished_at,
 * invalidated_at}] (spec_version null unless started from a stored spec).
 * Cursor and limit as store_runs_list(). */
struct store_history_filter {
	const char *service;
	const char *environment; /* NULL: any */
	const char *verdict;     /* "PASS" "FAIL" "ERROR", NULL: any */
	const char *cursor;
	int limit;
};
int store_history(struct store *st, const struct store_history_filter *f, json_t **ret_items,
                  char **ret_next_cursor);

/* One point per decided (verdict PASS or FAIL), non-invalidated run that
 * published probe.metric between since and until (ms, inclusive), oldest
 * first: [{run_id, time, version, value, verdict, environment}]; the
 * newest limit (1..10000) points, and *ret_truncated when older ones were
 * left out. Cancelled, interrupted, unfinished and ERROR runs are left
 * out, as from baselines. */
struct store_trend_query {
	const char *service;
	const char *probe;
	const char *metric;
	const char *environment; /* NULL: any */
	int64_t since_ms, until_ms;
	int limit;
	/* > 0: one bucket per step ms of ts (epoch-aligned), [{t, runs, min,
	 * max, avg, last, last_run_id, last_version}], the newest limit
	 * buckets, oldest first; "last" is the bucket's newest run. */
	int64_t step_ms;
	/* > 0: only runs with an id up to this one (a report's own run). */
	int64_t until_run;
};
int store_trend(struct store *st, const struct store_trend_query *q, json_t **ret_points,
                bool *ret_truncated);

/* The same points as C values (store_trend.c): a run's point, or a bucket
 * when the query has a step. A null number is NaN (non-finite values are
 * null in JSON too); a string is an offset into strings, 0 for null. */
struct store_trend_point {
	int64_t run_id;  /* bucket: last_run_id */
	int64_t time_ms; /* bucket: t, its start */
	int64_t runs;    /* bucket only */
	double value;    /* bucket: last */
	double min, max, avg;
	size_t version; /* bucket: last_version */
	size_t verdict, environment;
};
struct store_trend_points {
	struct store_trend_point *v; /* oldest first */
	size_t n, cap;
	bool buckets, truncated;
	char *strings; /* NUL-terminated strings; offset 0 is not one */
	size_t strings_len, strings_cap;
};
/* The string at off of p, NULL for 0. */
const char *store_trend_str(const struct store_trend_points *p, size_t off);
void store_trend_points_free(struct store_trend_points *p); /* its members */
/* store_trend's points from p: a new array, NULL on ENOMEM. */
json_t *store_trend_points_json(const struct store_trend_points *p);
/* Appends the JSON text of store_trend_points_json(p) to out, byte for
 * byte as rd_json_dumps(JSON_COMPACT | JSON_ENSURE_ASCII) writes it. */
struct rd_jtext;
void store_trend_points_text(const struct store_trend_points *p, struct rd_jtext *out);

/* store_trend into ret (zero it first; free with store_trend_points_free)
 * where the backend reads trends as C values; -ENOTSUP where it does not. */
int store_trend_points(struct store *st, const struct store_trend_query *q,
                       struct store_trend_points *ret);
/* store_trend's points as JSON text appended to out (as
 * store_trend_points_text), from whichever form the backend reads. */
int store_trend_text(struct store *st, const struct store_trend_query *q, struct rd_jtext *out,
                     bool *ret_truncated);

/* A percentile metric ("p95_ms", "p75_ms", "p999_ms") of probe idx of a
 * run, recomputed from its stored latency histogram (store_probe_blob_*),
 * in ms. -EINVAL for a metric that is not a percentile, -ENOENT without a
 * histogram (or an empty one). For rejudging with new percentiles. */
int store_probe_percentile(struct store *st, int64_t run_id, size_t idx, const char *metric,
                           double *ret_ms);

/* ---- Reports and /metrics ---- */

/* What GET /metrics shows from the store: {runs_by_state: {state: n},
 * db_size_bytes, gates: store_gates_latest() items (at most 1000) each
 * with values: {PROBE.METRIC: last measured value of its gates}}. New
 * reference. Main thread (or a read-only connection). */
int store_metrics_snapshot(struct store *st, json_t **ret_snap);

/* ---- Load engine measurements ---- */

/* Saves (replacing) the serialized histogram `name` ("latency",
 * "latency_uncorrected" or "failed": hist_serialize() bytes, borrowed) of
 * probe idx of run id, so percentiles can be recomputed exactly later.
 * Returns 0, -EINVAL (bad name or arguments), or -errno. Main thread. */
int store_probe_blob_save(struct store *st, int64_t run_id, size_t idx, const char *name,
                          const void *data, size_t len);

/* The bytes saved above: *ret_data is a new malloc'd buffer the caller
 * frees. -ENOENT when there is none. */
int store_probe_blob_get(struct store *st, int64_t run_id, size_t idx, const char *name,
                         void **ret_data, size_t *ret_len);

/* Saves a load probe's per-second timeline: an array (borrowed) of
 * {second, requests, errors, p50_ms, p99_ms} with p50/p99 null for a
 * second without successful answers. */
int store_probe_timeline_save(struct store *st, int64_t run_id, size_t idx, json_t *timeline);

/* The timeline saved above, ordered by second (empty if none). New reference. */
int store_probe_timeline_get(struct store *st, int64_t run_id, size_t idx, json_t **ret_timeline);

/* ---- Audit trail and scopes ---- */

/* One change made through the API. action: "cancel", "invalidate",
 * "rejudge", "waiver-create", "waiver-revoke". by: the token's name, or
 * NULL. run_id or waiver_id: 0 when not about one. All borrowed. */
struct store_audit_new {
	const char *action;
	const char *by;
	const char *service;
	const char *reason; /* NULL: none */
	int64_t run_id;
	int64_t waiver_id;
	int64_t at; /* ms */
};
int store_audit_add(struct store *st, const struct store_audit_new *a);

/* The changes of a run (run_id > 0) or else of a waiver, oldest first:
 * [{action, by, at, reason?}]. The run resource carries its own as
 * "changes". New reference. */
int store_audit_list(struct store *st, int64_t run_id, int64_t waiver_id, json_t **ret_changes);

/* The service of run id into buf. -ENOENT if there is no such run. */
int store_run_service(struct store *st, int64_t id, char *buf, size_t len);

/* ---- Stored specs ---- */

/* A spec a service is gated with in one environment. All borrowed. */
struct store_spec_new {
	const char *service;
	const char *environment;
	const char *format;     /* "yaml" or "json": what text is */
	const char *text;       /* as sent, for reading back and diffs */
	const char *doc_json;   /* the validated document, serialized JSON */
	const char *created_by; /* token name, or NULL */
	int64_t created_at;     /* ms */
};

/* Stores s as the next version (1 for the first) of its service and
 * environment, in one transaction. 0 and the version, -EINVAL for a
 * missing field or a doc_json that is not a JSON object, or -errno. */
int store_spec_put(struct store *st, const struct store_spec_new *s, int64_t *ret_version);

/* A stored spec: {service, environment, version, format, text, spec (the
 * document, parsed), created_by, created_at}; version 0 is the latest.
 * -ENOENT when there is none. New reference. */
int store_spec_get(struct store *st, const char *service, const char *environment, int64_t version,
                   json_t **ret_spec);

/* The stored specs of a service by environment: [{environment, latest,
 * versions: [{version, created_by, created_at}] newest first}] ordered by
 * environment; [] when none. New reference. */
int store_specs_list(struct store *st, const char *service, json_t **ret_items);

/* ---- Several nodes on one database (docs/scale-out.md) ----
 *
 * A shared store (PostgreSQL) lets several readyd nodes use one database:
 * runs are queued in it and claimed by nodes, a claimed run carries a
 * lease its node renews, and any node ends the runs of a node whose lease
 * passed. A store only one process uses (SQLite) answers -ENOTSUP to
 * every operation of this part. Times are ms; main thread. */

/* Whether several nodes may use this store at once (cluster mode). */
bool store_shared(struct store *st);

/* The node's heartbeat: records node (borrowed, its readyd version too)
 * as alive at now_ms and renews until now_ms + lease_ms the lease of
 * every run it holds. *ret_held (new reference) lists those runs,
 * [{id, cancel}] with cancel true when another node asked to cancel it
 * (store_run_cancel_request): a run this node executes that is missing
 * from the list is no longer its own (its lease passed). */
int store_node_beat(struct store *st, const char *node, const char *version, int64_t now_ms,
                    int64_t lease_ms, json_t **ret_held);

/* Claims for node up to max queued runs, oldest first, skipping runs
 * another node is claiming at the same moment: each becomes running on
 * node with a lease until lease_until. *ret_runs (new reference) is
 * [{id, spec_version, exec_spec}] with the spec to execute (serialized,
 * credentials included; spec_version null unless from a stored spec);
 * [] when none is queued. */
int store_run_claim(struct store *st, const char *node, int64_t lease_until, int max,
                    json_t **ret_runs);

/* Ends the runs whose lease passed before now_ms (their node stopped
 * beating) and, when node is not NULL, every run node holds (node is
 * starting: they are its previous life's): each becomes interrupted,
 * with an error naming the node and its last beat, and its unfinished
 * probes too; a run whose spec says resume: requeue and that has not
 * started a probe is queued again for another node instead. *ret_runs
 * (new reference): [{id, node, state}], state being what the run became. */
int store_leases_expire(struct store *st, int64_t now_ms, const char *node, json_t **ret_runs);

/* Ends the database sessions of nodes other than self whose last
 * heartbeat's lease (their own lease, from the database's clock when the
 * beat was written) has passed on the database's clock: a node that
 * stopped without its session ending would keep its load slots (session
 * locks) until the server gave up on it. A heartbeat (store_node_beat)
 * likewise ends its own node's previous session, left by a reconnect.
 * *ret_evicted (new reference) is [{node, pid}], one per session ended.
 * -ENOTSUP on a store only this process uses. */
int store_nodes_evict(struct store *st, const char *self, json_t **ret_evicted);

/* Cancels run id on behalf of a node that does not execute it: a queued
 * run is cancelled at once (returns 0); a running one is marked for its
 * node, which cancels it at its next beat (returns 1). -ENOENT: no such
 * run; -EALREADY: it has ended. */
int store_run_cancel_request(struct store *st, int64_t id, int64_t now_ms);

/* Puts run id, which node claimed but never started (no probe started),
 * back in the queue for another node: node is stopping. -EBUSY when it
 * is not node's to give back (another node's, ended, or measuring). */
int store_run_release(struct store *st, int64_t id, const char *node);

/* Fences this handle's writes of runs for node (borrowed, copied), the
 * node that executes them: from then on store_run_update,
 * store_probe_save, store_judgement_save, store_probe_blob_save and
 * store_probe_timeline_save of a run write only while the run is running
 * on node, checked in the writing statement itself; otherwise they write
 * nothing and return -ESTALE (another node ended the run after this
 * node's lease on it passed). NULL lifts the fence. */
int store_fence(struct store *st, const char *node);

/* Load slots shared by every node: slot (0..) of target host host
 * (borrowed), taken on this handle's database session until released or
 * until the session ends (a node that dies or loses its connection frees
 * its slots). Never waits: 1 when taken, 0 when another session holds
 * it. A session may take a slot it already holds again: the caller keeps
 * track of its own. */
int store_load_slot_take(struct store *st, const char *host, int slot);
int store_load_slot_release(struct store *st, const char *host, int slot);

/* The operator's one-off conversion of the metrics table (what trends
 * read) into a table partitioned by ranges of run ids, in one
 * transaction (docs/scale-out.md): the rows so far become one partition
 * (run ids below *ret_upto), new runs land in new partitions, which
 * every node then keeps one range ahead of the newest run. 0 when
 * converted, 1 when it already was, -ENOTSUP for a backend that does not
 * partition (SQLite), else -errno. Reads the whole table once under an
 * exclusive lock: stop the nodes first. */
int store_partition_metrics(struct store *st, int64_t *ret_upto);
/* The run ids of one partition after the conversion. */
#define STORE_PARTITION_RUNS 1000000

/* Whether some node queued a run since the last call (never waits, no
 * round trip: it reads what the server already sent). False when unsure. */
bool store_queued_hint(struct store *st);
