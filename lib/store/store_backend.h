/* store_backend: how a storage backend plugs in behind store.h. A backend
 * (lib/store/sqlite/ today) embeds struct store as a member of its own
 * connection object, points it at a constant table of operations and
 * returns it from its opener; store.c chooses the opener from the URL or
 * path and dispatches every store_*() call through the table. Nothing
 * but backends, store.c and tests that wrap a backend include this file.
 *
 * Each operation has the contract of the store_*() function of the same
 * name in store.h, with these differences: run_get fills only the run's
 * own fields and probes, gates and checklist (store.c adds run_history's
 * parts and the audit trail, all inside one read_begin/read_end), and
 * errmsg/errcause describe the last failed operation of this handle.
 * Every operation is mandatory except trend_points and the cluster's
 * fence and load slots (NULL: -ENOTSUP): a backend that reads
 * trends as C values sets it, and store_trend_text() then writes the
 * answer's text without a JSON tree; without it the text is serialised
 * from trend's tree.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/store/store.h"

struct store_shard_ops;

struct store_ops {
	const char *name; /* "sqlite": for messages */
	void (*free)(struct store *st);

	/* Schema, health and file identity. */
	int (*schema_version)(struct store *st);
	int (*schema_latest)(struct store *st);
	const char *(*errmsg)(struct store *st);
	const char *(*errcause)(struct store *st);
	int (*check_file)(struct store *st);
	int (*checkpoint)(struct store *st);
	uint64_t (*generation)(struct store *st);
	int (*reader_open)(struct store *st, struct store **ret_reader, char *err, size_t errlen);

	/* A consistent read of several operations: read_end gets r (0 or
	 * -errno so far) and returns r or its own error. */
	int (*read_begin)(struct store *st);
	int (*read_end)(struct store *st, int r);

	/* Runs, probe results, gate and checklist results. */
	int (*run_create)(struct store *st, const struct store_run_new *rn, int64_t *ret_id,
	                  bool *ret_existing);
	int (*run_find_by_key)(struct store *st, const char *service, const char *key,
	                       const char *spec_json, int64_t *ret_id);
	int (*run_update)(struct store *st, int64_t id, const char *state, const char *verdict,
	                  int64_t started_at, int64_t finished_at, const char *error);
	int (*probe_save)(struct store *st, int64_t run_id, size_t idx, json_t *probe);
	int (*judgement_save)(struct store *st, int64_t run_id, json_t *gates, json_t *checklist);
	int (*run_get)(struct store *st, int64_t id, json_t **ret_run);
	int (*run_spec)(struct store *st, int64_t id, json_t **ret_spec);
	int (*run_service)(struct store *st, int64_t id, char *buf, size_t len);
	int (*runs_list)(struct store *st, const struct store_filter *f, json_t **ret_items,
	                 char **ret_next_cursor);
	int (*runs_interrupt_stale)(struct store *st, int64_t now_ms);

	/* History: verdicts, baselines, waivers, invalidation, trends. run_history
	 * adds "invalidated" and "rejudgements" to a run read by run_get. */
	int (*run_history)(struct store *st, int64_t id, json_t *run);
	int (*gates_latest)(struct store *st, json_t **ret_items);
	int (*baseline_find)(struct store *st, const struct store_baseline_want *w,
	                     struct store_baseline_got *ret);
	int (*waiver_create)(struct store *st, const struct store_waiver_new *w, int64_t *ret_id);
	int (*waivers_list)(struct store *st, const char *service, int64_t now_ms,
	                    json_t **ret_items);
	int (*waiver_get)(struct store *st, const char *service, int64_t id, int64_t now_ms,
	                  json_t **ret_waiver);
	int (*waiver_revoke)(struct store *st, const char *service, int64_t id, int64_t now_ms);
	int (*waiver_find)(struct store *st, const char *service, const char *environment,
	                   const char *expr, int64_t now_ms, json_t **ret_waiver);
	int (*run_invalidate)(struct store *st, int64_t id, const char *reason, int64_t now_ms);
	int (*rejudgement_add)(struct store *st, int64_t run_id, json_t *gates, const char *verdict,
	                       const char *requested_by, int64_t now_ms, int64_t *ret_seq);
	int (*services_list)(struct store *st, json_t **ret_items);
	int (*history)(struct store *st, const struct store_history_filter *f, json_t **ret_items,
	               char **ret_next_cursor);
	int (*trend)(struct store *st, const struct store_trend_query *q, json_t **ret_points,
	             bool *ret_truncated);
	int (*trend_points)(struct store *st, const struct store_trend_query *q,
	                    struct store_trend_points *ret); /* optional */

	/* Reports and /metrics. */
	int (*metrics_snapshot)(struct store *st, json_t **ret_snap);

	/* Load engine measurements. */
	int (*probe_blob_save)(struct store *st, int64_t run_id, size_t idx, const char *name,
	                       const void *data, size_t len);
	int (*probe_blob_get)(struct store *st, int64_t run_id, size_t idx, const char *name,
	                      void **ret_data, size_t *ret_len);
	int (*probe_timeline_save)(struct store *st, int64_t run_id, size_t idx, json_t *timeline);
	int (*probe_timeline_get)(struct store *st, int64_t run_id, size_t idx,
	                          json_t **ret_timeline);

	/* Audit trail. */
	int (*audit_add)(struct store *st, const struct store_audit_new *a);
	int (*audit_list)(struct store *st, int64_t run_id, int64_t waiver_id,
	                  json_t **ret_changes);

	/* Stored specs. */
	int (*spec_put)(struct store *st, const struct store_spec_new *s, int64_t *ret_version);
	int (*spec_get)(struct store *st, const char *service, const char *environment,
	                int64_t version, json_t **ret_spec);
	int (*specs_list)(struct store *st, const char *service, json_t **ret_items);

	/* Retention. */
	int (*prune_raw)(struct store *st, int64_t before_ms, int batch);

	/* Several nodes on one database: -ENOTSUP when not shared. */
	bool shared;
	int (*node_beat)(struct store *st, const char *node, const char *version, int64_t now_ms,
	                 int64_t lease_ms, json_t **ret_held);
	int (*run_claim)(struct store *st, const char *node, int64_t lease_until, int max,
	                 json_t **ret_runs);
	int (*leases_expire)(struct store *st, int64_t now_ms, const char *node, json_t **ret_runs);
	int (*run_cancel_request)(struct store *st, int64_t id, int64_t now_ms);
	int (*run_release)(struct store *st, int64_t id, const char *node);
	bool (*queued_hint)(struct store *st);
	int (*fence)(struct store *st, const char *node);                             /* optional */
	int (*nodes_evict)(struct store *st, const char *self, json_t **ret_evicted); /* optional */
	int (*load_slot_take)(struct store *st, const char *host, int slot);          /* optional */
	int (*load_slot_release)(struct store *st, const char *host, int slot);       /* optional */
	int (*partition_metrics)(struct store *st, int64_t *ret_upto);                /* optional */
	/* Shards of a fanned-out load probe (store_shard.h); NULL: -ENOTSUP. */
	const struct store_shard_ops *shard;
};

/* The operations of store_shard.h, with their contracts. */
struct store_shard_ops {
	int (*db_clock)(struct store *st, int64_t *ret_ms);
	int (*alive)(struct store *st, int64_t now_ms, int64_t within_ms, json_t **ret_ids);
	int (*create)(struct store *st, int64_t run_id, size_t idx, const char *coordinator,
	              json_t *params);
	int (*clear)(struct store *st, int64_t run_id, size_t idx);
	int (*list)(struct store *st, int64_t run_id, size_t idx, json_t **ret_shards);
	int (*start)(struct store *st, int64_t run_id, size_t idx, int64_t lead_ms,
	             int64_t *ret_start_at);
	int (*stop)(struct store *st, int64_t run_id, size_t idx);
	int (*claim)(struct store *st, const char *node, json_t **ret_shard);
	int (*beat)(struct store *st, int64_t run_id, size_t idx, int shard, const char *node,
	            int64_t requests, int64_t started_at_ms, double offset_ms, json_t **ret);
	int (*finish)(struct store *st, int64_t run_id, size_t idx, int shard, const char *node,
	              const char *state, json_t *result, const char *error);
};

/* Filling a struct store_trend_points (store_trend.c), for trend_points:
 * a new zeroed point at the end (NULL on ENOMEM); a copy of n bytes of s
 * among the strings, its offset in *ret (0 for s NULL), or -ENOMEM; the
 * points turned oldest first for a backend that read newest first. */
struct store_trend_point *store_trend_point_add(struct store_trend_points *p);
int store_trend_str_add(struct store_trend_points *p, const char *s, size_t n, size_t *ret);
void store_trend_points_reverse(struct store_trend_points *p);

/* The part of every backend's connection object that store.c sees. */
struct store {
	const struct store_ops *ops;
};
