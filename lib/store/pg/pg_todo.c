/* pg_todo: operations of the PostgreSQL backend not written yet: each
 * answers -ENOSYS with a message. Each is removed from here when its
 * pg_*.c file implements it. */
#include <errno.h>

#include "lib/store/pg/pg_internal.h"

#define TODO(st) (pg_set_errf((st), "not implemented for PostgreSQL: %s", __func__), -ENOSYS)

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
