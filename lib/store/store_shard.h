/* store_shard: the shards of a load probe fanned out over several readyd
 * nodes (spec `nodes:`, docs/scale-out.md "Load from several nodes"), in
 * a shared store (store_shared). The node executing the run (the
 * coordinator) runs shard 0 itself and queues shards 1..n-1 here; each is
 * claimed by another node, at most one shard of a probe per node. Start
 * times, heartbeats and the silence of a shard are on the database's
 * clock, so no two nodes' clocks are compared. A store without a cluster
 * (SQLite) answers -ENOTSUP to every call.
 *
 * Main loop thread; each call is one bounded statement (the store's
 * deadline). Pointers are borrowed unless said otherwise.
 */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "lib/store/store.h"

/* The database's clock now, in ms since the epoch. */
int store_db_clock(struct store *st, int64_t *ret_ms);

/* The ids of the nodes whose last heartbeat (their own clocks) is at
 * most within_ms before now_ms, sorted: ["a", "b"]. New reference. */
int store_nodes_alive(struct store *st, int64_t now_ms, int64_t within_ms, json_t **ret_ids);

/* Queues shards 1..json_array_size(params) of probe idx of run_id, each
 * with its params (an object: that shard's share of the load), of
 * json_array_size(params) + 1 shards in all; coordinator names the node
 * that runs shard 0. -EEXIST when the probe has shards already. */
int store_shards_create(struct store *st, int64_t run_id, size_t idx, const char *coordinator,
                        json_t *params);

/* Deletes every shard of the probe: an earlier round's, ended and
 * merged, before the next round's are queued. */
int store_shards_clear(struct store *st, int64_t run_id, size_t idx);

/* Every shard of the probe, by shard: [{shard, node, state ("queued",
 * "claimed", "running", "done", "failed"), start_at, offset_ms, skew_ms
 * (started_at - start_at), silent_ms (database now - last heartbeat),
 * requests, stop, result (the JSON the node handed back, or null),
 * error}]; absent numbers are null. New reference. */
int store_shards_list(struct store *st, int64_t run_id, size_t idx, json_t **ret_shards);

/* Sets the agreed start of every shard of the probe to the database's
 * clock plus lead_ms; *ret_start_at is it. */
int store_shards_start(struct store *st, int64_t run_id, size_t idx, int64_t lead_ms,
                       int64_t *ret_start_at);

/* Asks every shard of the probe to end (a cancel, or another shard
 * failed): its node ends its load and hands back what it measured. */
int store_shards_stop(struct store *st, int64_t run_id, size_t idx);

/* Claims for node the oldest queued shard of a running run that another
 * node coordinates and of whose probe node holds no shard yet.
 * *ret_shard (new reference) is {run_id, probe_idx, shard, shards,
 * params, exec_spec} (the run's spec to execute, credentials included),
 * or NULL when there is none. */
int store_shard_claim(struct store *st, const char *node, json_t **ret_shard);

/* node's heartbeat for its shard: requests measured so far, and once it
 * started, when (started_at_ms, ms on the database's clock; 0: not yet)
 * and its clock's offset. *ret (new reference) is {start_at (null until
 * agreed), stop, run_state}; -ENOENT when the shard is not node's any
 * more (or not claimed or running). */
int store_shard_beat(struct store *st, int64_t run_id, size_t idx, int shard, const char *node,
                     int64_t requests, int64_t started_at_ms, double offset_ms, json_t **ret);

/* node's shard ended: state "done" with result (the engine's result as
 * loadgen_result_to_json gives it) or "failed" with error (result NULL).
 * -ENOENT when the shard is not node's. */
int store_shard_finish(struct store *st, int64_t run_id, size_t idx, int shard, const char *node,
                       const char *state, json_t *result, const char *error);
