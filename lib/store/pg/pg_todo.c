/* pg_todo: operations of the PostgreSQL backend not written yet: each
 * answers -ENOSYS with a message. Each is removed from here when its
 * pg_*.c file implements it. */
#include <errno.h>

#include "lib/store/pg/pg_internal.h"

#define TODO(st) (pg_set_errf((st), "not implemented for PostgreSQL: %s", __func__), -ENOSYS)

int pg_run_history(struct store *st, int64_t id, json_t *run)
{
	(void)id;
	(void)run;
	return TODO(st);
}

int pg_gates_latest(struct store *st, json_t **ret_items)
{
	(void)ret_items;
	return TODO(st);
}

int pg_baseline_find(struct store *st, const struct store_baseline_want *w,
                     struct store_baseline_got *ret)
{
	(void)w;
	(void)ret;
	return TODO(st);
}

int pg_waiver_create(struct store *st, const struct store_waiver_new *w, int64_t *ret_id)
{
	(void)w;
	(void)ret_id;
	return TODO(st);
}

int pg_waivers_list(struct store *st, const char *service, int64_t now_ms, json_t **ret_items)
{
	(void)service;
	(void)now_ms;
	(void)ret_items;
	return TODO(st);
}

int pg_waiver_get(struct store *st, const char *service, int64_t id, int64_t now_ms,
                  json_t **ret_waiver)
{
	(void)service;
	(void)id;
	(void)now_ms;
	(void)ret_waiver;
	return TODO(st);
}

int pg_waiver_revoke(struct store *st, const char *service, int64_t id, int64_t now_ms)
{
	(void)service;
	(void)id;
	(void)now_ms;
	return TODO(st);
}

int pg_waiver_find(struct store *st, const char *service, const char *environment, const char *expr,
                   int64_t now_ms, json_t **ret_waiver)
{
	(void)service;
	(void)environment;
	(void)expr;
	(void)now_ms;
	(void)ret_waiver;
	return TODO(st);
}

int pg_run_invalidate(struct store *st, int64_t id, const char *reason, int64_t now_ms)
{
	(void)id;
	(void)reason;
	(void)now_ms;
	return TODO(st);
}

int pg_rejudgement_add(struct store *st, int64_t run_id, json_t *gates, const char *verdict,
                       const char *requested_by, int64_t now_ms, int64_t *ret_seq)
{
	(void)run_id;
	(void)gates;
	(void)verdict;
	(void)requested_by;
	(void)now_ms;
	(void)ret_seq;
	return TODO(st);
}

int pg_services_list(struct store *st, json_t **ret_items)
{
	(void)ret_items;
	return TODO(st);
}

int pg_history(struct store *st, const struct store_history_filter *f, json_t **ret_items,
               char **ret_next_cursor)
{
	(void)f;
	(void)ret_items;
	(void)ret_next_cursor;
	return TODO(st);
}

int pg_trend(struct store *st, const struct store_trend_query *q, json_t **ret_points,
             bool *ret_truncated)
{
	(void)q;
	(void)ret_points;
	(void)ret_truncated;
	return TODO(st);
}

int pg_probe_percentile(struct store *st, int64_t run_id, size_t idx, const char *metric,
                        double *ret_ms)
{
	(void)run_id;
	(void)idx;
	(void)metric;
	(void)ret_ms;
	return TODO(st);
}

int pg_metrics_snapshot(struct store *st, json_t **ret_snap)
{
	(void)ret_snap;
	return TODO(st);
}

int pg_probe_blob_save(struct store *st, int64_t run_id, size_t idx, const char *name,
                       const void *data, size_t len)
{
	(void)run_id;
	(void)idx;
	(void)name;
	(void)data;
	(void)len;
	return TODO(st);
}

int pg_probe_blob_get(struct store *st, int64_t run_id, size_t idx, const char *name,
                      void **ret_data, size_t *ret_len)
{
	(void)run_id;
	(void)idx;
	(void)name;
	(void)ret_data;
	(void)ret_len;
	return TODO(st);
}

int pg_probe_timeline_save(struct store *st, int64_t run_id, size_t idx, json_t *timeline)
{
	(void)run_id;
	(void)idx;
	(void)timeline;
	return TODO(st);
}

int pg_probe_timeline_get(struct store *st, int64_t run_id, size_t idx, json_t **ret_timeline)
{
	(void)run_id;
	(void)idx;
	(void)ret_timeline;
	return TODO(st);
}

int pg_audit_add(struct store *st, const struct store_audit_new *a)
{
	(void)a;
	return TODO(st);
}

int pg_audit_list(struct store *st, int64_t run_id, int64_t waiver_id, json_t **ret_changes)
{
	(void)run_id;
	(void)waiver_id;
	(void)ret_changes;
	return TODO(st);
}

int pg_spec_put(struct store *st, const struct store_spec_new *s, int64_t *ret_version)
{
	(void)s;
	(void)ret_version;
	return TODO(st);
}

int pg_spec_get(struct store *st, const char *service, const char *environment, int64_t version,
                json_t **ret_spec)
{
	(void)service;
	(void)environment;
	(void)version;
	(void)ret_spec;
	return TODO(st);
}

int pg_specs_list(struct store *st, const char *service, json_t **ret_items)
{
	(void)service;
	(void)ret_items;
	return TODO(st);
}

int pg_prune_raw(struct store *st, int64_t before_ms, int batch)
{
	(void)before_ms;
	(void)batch;
	return TODO(st);
}
