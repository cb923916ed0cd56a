/* store-faulty: a store backend that forwards every operation to
 * another one and refuses writes while told to (store-faulty.h). A
 * refused write touches nothing; its error stays visible through
 * store_errmsg()/store_errcause() until the next operation.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "lib/store/store_backend.h"
#include "lib/util/util.h"
#include "tests/unit/store-faulty.h"

struct faulty {
	struct store base;
	struct store *inner;
	int err;     /* < 0: writes fail with it */
	bool failed; /* the last operation was refused here */
	char cause[256];
	char msg[320];
};

static const struct store_ops faulty_ops;

static struct faulty *faulty(struct store *st)
{
	return rd_container_of(st, struct faulty, base);
}

static struct store *inner(struct store *st)
{
	return faulty(st)->inner;
}

static int refuse(struct store *st, const char *what)
{
	struct faulty *f = faulty(st);

	snprintf(f->msg, sizeof(f->msg), "Failed to %s: %s", what, f->cause);
	f->failed = true;
	return f->err;
}

struct store *store_faulty_wrap(struct store *in)
{
	struct faulty *f = calloc(1, sizeof(*f));

	if (!f) {
		store_free(in);
		return NULL;
	}
	f->base.ops = &faulty_ops;
	f->inner = in;
	return &f->base;
}

void store_faulty_refuse(struct store *st, int err, const char *cause)
{
	struct faulty *f = faulty(st);

	f->err = err;
	snprintf(f->cause, sizeof(f->cause), "%s", cause ? cause : "refused");
}

static void faulty_free(struct store *st)
{
	store_free(inner(st));
	free(faulty(st));
}

static const char *faulty_errmsg(struct store *st)
{
	return faulty(st)->failed ? faulty(st)->msg : store_errmsg(inner(st));
}

static const char *faulty_errcause(struct store *st)
{
	return faulty(st)->failed ? faulty(st)->cause : store_errcause(inner(st));
}

static int faulty_schema_version(struct store *st)
{
	faulty(st)->failed = false;
	return inner(st)->ops->schema_version(inner(st));
}

static int faulty_run_create(struct store *st, const struct store_run_new *rn, int64_t *ret_id,
                             bool *ret_existing)
{
	if (faulty(st)->err < 0)
		return refuse(st, "run create");
	faulty(st)->failed = false;
	return inner(st)->ops->run_create(inner(st), rn, ret_id, ret_existing);
}

static int faulty_run_find_by_key(struct store *st, const char *service, const char *key,
                                  const char *spec_json, int64_t *ret_id)
{
	faulty(st)->failed = false;
	return inner(st)->ops->run_find_by_key(inner(st), service, key, spec_json, ret_id);
}

static int faulty_run_update(struct store *st, int64_t id, const char *state, const char *verdict,
                             int64_t started_at, int64_t finished_at, const char *error)
{
	if (faulty(st)->err < 0)
		return refuse(st, "run update");
	faulty(st)->failed = false;
	return inner(st)->ops->run_update(inner(st), id, state, verdict, started_at, finished_at,
	                                  error);
}

static int faulty_probe_save(struct store *st, int64_t run_id, size_t idx, json_t *probe)
{
	if (faulty(st)->err < 0)
		return refuse(st, "probe save");
	faulty(st)->failed = false;
	return inner(st)->ops->probe_save(inner(st), run_id, idx, probe);
}

static int faulty_judgement_save(struct store *st, int64_t run_id, json_t *gates, json_t *checklist)
{
	if (faulty(st)->err < 0)
		return refuse(st, "judgement save");
	faulty(st)->failed = false;
	return inner(st)->ops->judgement_save(inner(st), run_id, gates, checklist);
}

static int faulty_run_spec(struct store *st, int64_t id, json_t **ret_spec)
{
	faulty(st)->failed = false;
	return inner(st)->ops->run_spec(inner(st), id, ret_spec);
}

static int faulty_runs_list(struct store *st, const struct store_filter *f, json_t **ret_items,
                            char **ret_next_cursor)
{
	faulty(st)->failed = false;
	return inner(st)->ops->runs_list(inner(st), f, ret_items, ret_next_cursor);
}

static int faulty_runs_interrupt_stale(struct store *st, int64_t now_ms)
{
	if (faulty(st)->err < 0)
		return refuse(st, "runs interrupt stale");
	faulty(st)->failed = false;
	return inner(st)->ops->runs_interrupt_stale(inner(st), now_ms);
}

static int faulty_prune_raw(struct store *st, int64_t before_ms, int batch)
{
	if (faulty(st)->err < 0)
		return refuse(st, "prune raw");
	faulty(st)->failed = false;
	return inner(st)->ops->prune_raw(inner(st), before_ms, batch);
}

static int faulty_check_file(struct store *st)
{
	faulty(st)->failed = false;
	return inner(st)->ops->check_file(inner(st));
}

static int faulty_checkpoint(struct store *st)
{
	faulty(st)->failed = false;
	return inner(st)->ops->checkpoint(inner(st));
}

static uint64_t faulty_generation(struct store *st)
{
	return inner(st)->ops->generation(inner(st));
}

static int faulty_reader_open(struct store *st, struct store **ret_reader, char *err, size_t errlen)
{
	return inner(st)->ops->reader_open(inner(st), ret_reader, err, errlen);
}

static int faulty_gates_latest(struct store *st, json_t **ret_items)
{
	faulty(st)->failed = false;
	return inner(st)->ops->gates_latest(inner(st), ret_items);
}

static int faulty_baseline_find(struct store *st, const struct store_baseline_want *w,
                                struct store_baseline_got *ret)
{
	faulty(st)->failed = false;
	return inner(st)->ops->baseline_find(inner(st), w, ret);
}

static int faulty_waiver_create(struct store *st, const struct store_waiver_new *w, int64_t *ret_id)
{
	if (faulty(st)->err < 0)
		return refuse(st, "waiver create");
	faulty(st)->failed = false;
	return inner(st)->ops->waiver_create(inner(st), w, ret_id);
}

static int faulty_waivers_list(struct store *st, const char *service, int64_t now_ms,
                               json_t **ret_items)
{
	faulty(st)->failed = false;
	return inner(st)->ops->waivers_list(inner(st), service, now_ms, ret_items);
}

static int faulty_waiver_get(struct store *st, const char *service, int64_t id, int64_t now_ms,
                             json_t **ret_waiver)
{
	faulty(st)->failed = false;
	return inner(st)->ops->waiver_get(inner(st), service, id, now_ms, ret_waiver);
}

static int faulty_waiver_revoke(struct store *st, const char *service, int64_t id, int64_t now_ms)
{
	if (faulty(st)->err < 0)
		return refuse(st, "waiver revoke");
	faulty(st)->failed = false;
	return inner(st)->ops->waiver_revoke(inner(st), service, id, now_ms);
}

static int faulty_waiver_find(struct store *st, const char *service, const char *environment,
                              const char *expr, int64_t now_ms, json_t **ret_waiver)
{
	faulty(st)->failed = false;
	return inner(st)->ops->waiver_find(inner(st), service, environment, expr, now_ms,
	                                   ret_waiver);
}

static int faulty_run_invalidate(struct store *st, int64_t id, const char *reason, int64_t now_ms)
{
	if (faulty(st)->err < 0)
		return refuse(st, "run invalidate");
	faulty(st)->failed = false;
	return inner(st)->ops->run_invalidate(inner(st), id, reason, now_ms);
}

static int faulty_rejudgement_add(struct store *st, int64_t run_id, json_t *gates,
                                  const char *verdict, const char *requested_by, int64_t now_ms,
                                  int64_t *ret_seq)
{
	if (faulty(st)->err < 0)
		return refuse(st, "rejudgement add");
	faulty(st)->failed = false;
	return inner(st)->ops->rejudgement_add(inner(st), run_id, gates, verdict, requested_by,
	                                       now_ms, ret_seq);
}

static int faulty_services_list(struct store *st, json_t **ret_items)
{
	faulty(st)->failed = false;
	return inner(st)->ops->services_list(inner(st), ret_items);
}

static int faulty_history(struct store *st, const struct store_history_filter *f,
                          json_t **ret_items, char **ret_next_cursor)
{
	faulty(st)->failed = false;
	return inner(st)->ops->history(inner(st), f, ret_items, ret_next_cursor);
}

static int faulty_trend(struct store *st, const struct store_trend_query *q, json_t **ret_points,
                        bool *ret_truncated)
{
	faulty(st)->failed = false;
	return inner(st)->ops->trend(inner(st), q, ret_points, ret_truncated);
}

static int faulty_metrics_snapshot(struct store *st, json_t **ret_snap)
{
	faulty(st)->failed = false;
	return inner(st)->ops->metrics_snapshot(inner(st), ret_snap);
}

static int faulty_probe_blob_save(struct store *st, int64_t run_id, size_t idx, const char *name,
                                  const void *data, size_t len)
{
	if (faulty(st)->err < 0)
		return refuse(st, "probe blob save");
	faulty(st)->failed = false;
	return inner(st)->ops->probe_blob_save(inner(st), run_id, idx, name, data, len);
}

static int faulty_probe_blob_get(struct store *st, int64_t run_id, size_t idx, const char *name,
                                 void **ret_data, size_t *ret_len)
{
	faulty(st)->failed = false;
	return inner(st)->ops->probe_blob_get(inner(st), run_id, idx, name, ret_data, ret_len);
}

static int faulty_probe_timeline_save(struct store *st, int64_t run_id, size_t idx,
                                      json_t *timeline)
{
	if (faulty(st)->err < 0)
		return refuse(st, "probe timeline save");
	faulty(st)->failed = false;
	return inner(st)->ops->probe_timeline_save(inner(st), run_id, idx, timeline);
}

static int faulty_probe_timeline_get(struct store *st, int64_t run_id, size_t idx,
                                     json_t **ret_timeline)
{
	faulty(st)->failed = false;
	return inner(st)->ops->probe_timeline_get(inner(st), run_id, idx, ret_timeline);
}

static int faulty_audit_add(struct store *st, const struct store_audit_new *a)
{
	if (faulty(st)->err < 0)
		return refuse(st, "audit add");
	faulty(st)->failed = false;
	return inner(st)->ops->audit_add(inner(st), a);
}

static int faulty_audit_list(struct store *st, int64_t run_id, int64_t waiver_id,
                             json_t **ret_changes)
{
	faulty(st)->failed = false;
	return inner(st)->ops->audit_list(inner(st), run_id, waiver_id, ret_changes);
}

static int faulty_run_service(struct store *st, int64_t id, char *buf, size_t len)
{
	faulty(st)->failed = false;
	return inner(st)->ops->run_service(inner(st), id, buf, len);
}

static int faulty_spec_put(struct store *st, const struct store_spec_new *sn, int64_t *ret_version)
{
	if (faulty(st)->err < 0)
		return refuse(st, "spec put");
	faulty(st)->failed = false;
	return inner(st)->ops->spec_put(inner(st), sn, ret_version);
}

static int faulty_spec_get(struct store *st, const char *service, const char *environment,
                           int64_t version, json_t **ret_spec)
{
	faulty(st)->failed = false;
	return inner(st)->ops->spec_get(inner(st), service, environment, version, ret_spec);
}

static int faulty_specs_list(struct store *st, const char *service, json_t **ret_items)
{
	faulty(st)->failed = false;
	return inner(st)->ops->specs_list(inner(st), service, ret_items);
}

static int faulty_schema_latest(struct store *st)
{
	faulty(st)->failed = false;
	return inner(st)->ops->schema_latest(inner(st));
}

static int faulty_run_get(struct store *st, int64_t id, json_t **ret_run)
{
	faulty(st)->failed = false;
	return inner(st)->ops->run_get(inner(st), id, ret_run);
}

static int faulty_run_history(struct store *st, int64_t id, json_t *run)
{
	faulty(st)->failed = false;
	return inner(st)->ops->run_history(inner(st), id, run);
}

static int faulty_read_begin(struct store *st)
{
	faulty(st)->failed = false;
	return inner(st)->ops->read_begin(inner(st));
}

static int faulty_read_end(struct store *st, int r)
{
	faulty(st)->failed = false;
	return inner(st)->ops->read_end(inner(st), r);
}

static int faulty_node_beat(struct store *st, const char *node, const char *version, int64_t now_ms,
                            int64_t lease_ms, json_t **ret_held)
{
	faulty(st)->failed = false;
	return inner(st)->ops->node_beat(inner(st), node, version, now_ms, lease_ms, ret_held);
}

static int faulty_run_claim(struct store *st, const char *node, int64_t lease_until, int max,
                            json_t **ret_runs)
{
	faulty(st)->failed = false;
	return inner(st)->ops->run_claim(inner(st), node, lease_until, max, ret_runs);
}

static int faulty_leases_expire(struct store *st, int64_t now_ms, const char *node,
                                json_t **ret_runs)
{
	faulty(st)->failed = false;
	return inner(st)->ops->leases_expire(inner(st), now_ms, node, ret_runs);
}

static int faulty_run_cancel_request(struct store *st, int64_t id, int64_t now_ms)
{
	faulty(st)->failed = false;
	return inner(st)->ops->run_cancel_request(inner(st), id, now_ms);
}

static int faulty_run_release(struct store *st, int64_t id, const char *node)
{
	faulty(st)->failed = false;
	return inner(st)->ops->run_release(inner(st), id, node);
}

static bool faulty_queued_hint(struct store *st)
{
	return inner(st)->ops->queued_hint(inner(st));
}

static const struct store_ops faulty_ops = {
        .name = "faulty",
        .free = faulty_free,
        .schema_version = faulty_schema_version,
        .run_create = faulty_run_create,
        .run_find_by_key = faulty_run_find_by_key,
        .run_update = faulty_run_update,
        .probe_save = faulty_probe_save,
        .judgement_save = faulty_judgement_save,
        .run_spec = faulty_run_spec,
        .runs_list = faulty_runs_list,
        .runs_interrupt_stale = faulty_runs_interrupt_stale,
        .prune_raw = faulty_prune_raw,
        .errmsg = faulty_errmsg,
        .errcause = faulty_errcause,
        .check_file = faulty_check_file,
        .checkpoint = faulty_checkpoint,
        .generation = faulty_generation,
        .reader_open = faulty_reader_open,
        .gates_latest = faulty_gates_latest,
        .baseline_find = faulty_baseline_find,
        .waiver_create = faulty_waiver_create,
        .waivers_list = faulty_waivers_list,
        .waiver_get = faulty_waiver_get,
        .waiver_revoke = faulty_waiver_revoke,
        .waiver_find = faulty_waiver_find,
        .run_invalidate = faulty_run_invalidate,
        .rejudgement_add = faulty_rejudgement_add,
        .services_list = faulty_services_list,
        .history = faulty_history,
        .trend = faulty_trend,
        .metrics_snapshot = faulty_metrics_snapshot,
        .probe_blob_save = faulty_probe_blob_save,
        .probe_blob_get = faulty_probe_blob_get,
        .probe_timeline_save = faulty_probe_timeline_save,
        .probe_timeline_get = faulty_probe_timeline_get,
        .audit_add = faulty_audit_add,
        .audit_list = faulty_audit_list,
        .run_service = faulty_run_service,
        .schema_latest = faulty_schema_latest,
        .run_get = faulty_run_get,
        .run_history = faulty_run_history,
        .read_begin = faulty_read_begin,
        .read_end = faulty_read_end,
        .spec_put = faulty_spec_put,
        .spec_get = faulty_spec_get,
        .specs_list = faulty_specs_list,
        .node_beat = faulty_node_beat,
        .run_claim = faulty_run_claim,
        .leases_expire = faulty_leases_expire,
        .run_cancel_request = faulty_run_cancel_request,
        .run_release = faulty_run_release,
        .queued_hint = faulty_queued_hint,
};
