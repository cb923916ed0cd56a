/* store_shard: dispatch of store_shard.h to the backend's shard
 * operations; a backend without them (SQLite: one node) is -ENOTSUP.
 */
#include <errno.h>

#include "lib/store/store_backend.h"
#include "lib/store/store_shard.h"

static const struct store_shard_ops *ops_of(struct store *st)
{
	return st->ops->shard;
}

int store_db_clock(struct store *st, int64_t *ret_ms)
{
	return ops_of(st) ? ops_of(st)->db_clock(st, ret_ms) : -ENOTSUP;
}

int store_nodes_alive(struct store *st, int64_t now_ms, int64_t within_ms, json_t **ret_ids)
{
	return ops_of(st) ? ops_of(st)->alive(st, now_ms, within_ms, ret_ids) : -ENOTSUP;
}

int store_shards_create(struct store *st, int64_t run_id, size_t idx, const char *coordinator,
                        json_t *params)
{
	return ops_of(st) ? ops_of(st)->create(st, run_id, idx, coordinator, params) : -ENOTSUP;
}

int store_shards_clear(struct store *st, int64_t run_id, size_t idx)
{
	return ops_of(st) ? ops_of(st)->clear(st, run_id, idx) : -ENOTSUP;
}

int store_shards_list(struct store *st, int64_t run_id, size_t idx, json_t **ret_shards)
{
	return ops_of(st) ? ops_of(st)->list(st, run_id, idx, ret_shards) : -ENOTSUP;
}

int store_shards_start(struct store *st, int64_t run_id, size_t idx, int64_t lead_ms,
                       int64_t *ret_start_at)
{
	return ops_of(st) ? ops_of(st)->start(st, run_id, idx, lead_ms, ret_start_at) : -ENOTSUP;
}

int store_shards_stop(struct store *st, int64_t run_id, size_t idx)
{
	return ops_of(st) ? ops_of(st)->stop(st, run_id, idx) : -ENOTSUP;
}

int store_shard_claim(struct store *st, const char *node, json_t **ret_shard)
{
	return ops_of(st) ? ops_of(st)->claim(st, node, ret_shard) : -ENOTSUP;
}

int store_shard_beat(struct store *st, int64_t run_id, size_t idx, int shard, const char *node,
                     int64_t requests, int64_t started_at_ms, double offset_ms, json_t **ret)
{
	return ops_of(st) ? ops_of(st)->beat(st, run_id, idx, shard, node, requests, started_at_ms,
	                                     offset_ms, ret)
	                  : -ENOTSUP;
}

int store_shard_finish(struct store *st, int64_t run_id, size_t idx, int shard, const char *node,
                       const char *state, json_t *result, const char *error)
{
	return ops_of(st) ? ops_of(st)->finish(st, run_id, idx, shard, node, state, result, error)
	                  : -ENOTSUP;
}
