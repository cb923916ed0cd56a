/* store: the interface of store.h dispatched to a backend (see
 * store_backend.h). It picks the backend from what store_open() is given,
 * calls the backend's operation for every store_*() function, and builds
 * the few things made of several operations: the run resource (run,
 * history and audit trail in one consistent read) and the judge's
 * lookups. It holds no data and must not know any backend's query
 * language.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/gate/judge.h"
#include "lib/loadgen/hist.h"
#include "lib/store/pg/pg.h"
#include "lib/store/sqlite/sqlite.h"
#include "lib/store/store.h"
#include "lib/store/store_backend.h"
#include "lib/util/json_text.h"

static bool is_postgresql(const char *where)
{
	return strncasecmp(where, "postgresql://", 13) == 0 ||
	       strncasecmp(where, "postgres://", 11) == 0 || pg_is_conninfo(where);
}

bool store_is_local_file(const char *where)
{
	return where && *where && strcmp(where, ":memory:") != 0 && !strstr(where, "://") &&
	       !pg_is_conninfo(where);
}

int store_where_check(const char *where, char *err, size_t errlen)
{
	if (!where || !*where) {
		snprintf(err, errlen, "no database given");
		return -EINVAL;
	}
	return is_postgresql(where) ? pg_url_check(where, err, errlen) : 0;
}

int store_open(const char *where, struct store **ret_store, char *err, size_t errlen)
{
	if (!where || !ret_store)
		return -EINVAL;
	if (is_postgresql(where))
		return pg_open(where, ret_store, err, errlen);
	return sqlite_open(where, ret_store, err, errlen);
}

int store_open_readonly(const char *where, struct store **ret_store, char *err, size_t errlen)
{
	if (!where || !ret_store)
		return -EINVAL;
	if (is_postgresql(where))
		return pg_open_readonly(where, ret_store, err, errlen);
	return sqlite_open_readonly(where, ret_store, err, errlen);
}

int store_reader_open(struct store *st, struct store **ret_reader, char *err, size_t errlen)
{
	if (!st || !ret_reader)
		return -EINVAL;
	return st->ops->reader_open(st, ret_reader, err, errlen);
}

void store_free(struct store *st)
{
	if (st)
		st->ops->free(st);
}

int store_schema_latest(struct store *st)
{
	return st->ops->schema_latest(st);
}

/* One read: a reader connection must not see the run from one commit
 * and its probes or history from the next. */
int store_run_get(struct store *st, int64_t id, json_t **ret_run)
{
	json_t *run = NULL, *changes = NULL;
	int r = st->ops->read_begin(st);

	if (r < 0)
		return r;
	r = st->ops->run_get(st, id, &run);
	if (r == 0)
		r = st->ops->run_history(st, id, run);
	if (r == 0)
		r = st->ops->audit_list(st, id, 0, &changes);
	if (r == 0 && json_object_set_new(run, "changes", changes) < 0)
		r = -ENOMEM;
	r = st->ops->read_end(st, r);
	if (r < 0) {
		json_decref(run);
		return r;
	}
	*ret_run = run;
	return 0;
}

int store_judge_baseline(void *userdata, const char *probe, const char *metric, int64_t min_samples,
                         bool successes, struct judge_baseline *ret)
{
	const struct store_judge_ctx *c = userdata;
	struct store_baseline_want w = {c->service, c->environment, probe,    metric,
	                                c->run_id,  min_samples,    successes};
	struct store_baseline_got got;
	int r = store_baseline_find(c->store, &w, &got);

	if (r == 0 || r == -ENOENT) {
		ret->value = got.value;
		ret->run = got.run_id;
		ret->skipped = got.skipped;
		ret->skipped_newest = got.skipped_newest;
	}
	return r;
}

int store_judge_waiver(void *userdata, const char *expr, json_t **ret_waiver)
{
	const struct store_judge_ctx *c = userdata;

	return store_waiver_find(c->store, c->service, c->environment, expr, c->now_ms, ret_waiver);
}

/* ---- Every other operation: straight to the backend ---------------- */

int store_schema_version(struct store *st)
{
	return st->ops->schema_version(st);
}

int store_run_create(struct store *st, const struct store_run_new *rn, int64_t *ret_id,
                     bool *ret_existing)
{
	return st->ops->run_create(st, rn, ret_id, ret_existing);
}

int store_run_find_by_key(struct store *st, const char *service, const char *key,
                          const char *spec_json, int64_t *ret_id)
{
	return st->ops->run_find_by_key(st, service, key, spec_json, ret_id);
}

int store_run_update(struct store *st, int64_t id, const char *state, const char *verdict,
                     int64_t started_at, int64_t finished_at, const char *error)
{
	return st->ops->run_update(st, id, state, verdict, started_at, finished_at, error);
}

int store_probe_save(struct store *st, int64_t run_id, size_t idx, json_t *probe)
{
	return st->ops->probe_save(st, run_id, idx, probe);
}

int store_judgement_save(struct store *st, int64_t run_id, json_t *gates, json_t *checklist)
{
	return st->ops->judgement_save(st, run_id, gates, checklist);
}

int store_run_spec(struct store *st, int64_t id, json_t **ret_spec)
{
	return st->ops->run_spec(st, id, ret_spec);
}

int store_runs_list(struct store *st, const struct store_filter *f, json_t **ret_items,
                    char **ret_next_cursor)
{
	return st->ops->runs_list(st, f, ret_items, ret_next_cursor);
}

int store_runs_interrupt_stale(struct store *st, int64_t now_ms)
{
	return st->ops->runs_interrupt_stale(st, now_ms);
}

int store_prune_raw(struct store *st, int64_t before_ms, int batch)
{
	return st->ops->prune_raw(st, before_ms, batch);
}

const char *store_errmsg(struct store *st)
{
	return st->ops->errmsg(st);
}

const char *store_errcause(struct store *st)
{
	return st->ops->errcause(st);
}

int store_check_file(struct store *st)
{
	return st->ops->check_file(st);
}

int store_checkpoint(struct store *st)
{
	return st->ops->checkpoint(st);
}

uint64_t store_generation(struct store *st)
{
	return st->ops->generation(st);
}

int store_gates_latest(struct store *st, json_t **ret_items)
{
	return st->ops->gates_latest(st, ret_items);
}

int store_baseline(struct store *st, const char *service, const char *environment,
                   const char *probe, const char *metric, int64_t exclude_run_id, double *ret_value,
                   int64_t *ret_run_id)
{
	struct store_baseline_want w = {service,        environment, probe, metric,
	                                exclude_run_id, 0,           false};
	struct store_baseline_got got;
	int r = st->ops->baseline_find(st, &w, &got);

	if (r == 0) {
		*ret_value = got.value;
		*ret_run_id = got.run_id;
	}
	return r;
}

int store_baseline_find(struct store *st, const struct store_baseline_want *w,
                        struct store_baseline_got *ret)
{
	return st->ops->baseline_find(st, w, ret);
}

int store_waiver_create(struct store *st, const struct store_waiver_new *w, int64_t *ret_id)
{
	return st->ops->waiver_create(st, w, ret_id);
}

int store_waivers_list(struct store *st, const char *service, int64_t now_ms, json_t **ret_items)
{
	return st->ops->waivers_list(st, service, now_ms, ret_items);
}

int store_waiver_get(struct store *st, const char *service, int64_t id, int64_t now_ms,
                     json_t **ret_waiver)
{
	return st->ops->waiver_get(st, service, id, now_ms, ret_waiver);
}

int store_waiver_revoke(struct store *st, const char *service, int64_t id, int64_t now_ms)
{
	return st->ops->waiver_revoke(st, service, id, now_ms);
}

int store_waiver_find(struct store *st, const char *service, const char *environment,
                      const char *expr, int64_t now_ms, json_t **ret_waiver)
{
	return st->ops->waiver_find(st, service, environment, expr, now_ms, ret_waiver);
}

int store_run_invalidate(struct store *st, int64_t id, const char *reason, int64_t now_ms)
{
	return st->ops->run_invalidate(st, id, reason, now_ms);
}

int store_rejudgement_add(struct store *st, int64_t run_id, json_t *gates, const char *verdict,
                          const char *requested_by, int64_t now_ms, int64_t *ret_seq)
{
	return st->ops->rejudgement_add(st, run_id, gates, verdict, requested_by, now_ms, ret_seq);
}

int store_services_list(struct store *st, json_t **ret_items)
{
	return st->ops->services_list(st, ret_items);
}

int store_history(struct store *st, const struct store_history_filter *f, json_t **ret_items,
                  char **ret_next_cursor)
{
	return st->ops->history(st, f, ret_items, ret_next_cursor);
}

int store_trend(struct store *st, const struct store_trend_query *q, json_t **ret_points,
                bool *ret_truncated)
{
	return st->ops->trend(st, q, ret_points, ret_truncated);
}

int store_trend_points(struct store *st, const struct store_trend_query *q,
                       struct store_trend_points *ret)
{
	return st->ops->trend_points ? st->ops->trend_points(st, q, ret) : -ENOTSUP;
}

int store_trend_text(struct store *st, const struct store_trend_query *q, struct rd_jtext *out,
                     bool *ret_truncated)
{
	struct store_trend_points p = {0};
	json_t *points = NULL;
	int r;

	if (st->ops->trend_points) {
		r = st->ops->trend_points(st, q, &p);
		if (r == 0) {
			store_trend_points_text(&p, out);
			*ret_truncated = p.truncated;
		}
		store_trend_points_free(&p);
	} else {
		r = st->ops->trend(st, q, &points, ret_truncated);
		if (r == 0)
			rd_jtext_json(out, points, JSON_COMPACT | JSON_ENSURE_ASCII);
		json_decref(points);
	}
	return r < 0 ? r : out->err;
}

/* "p95_ms" -> 95, "p999_ms" -> 99.9, "p50_ms" -> 50; -EINVAL otherwise. */
static int percentile_of(const char *metric, double *ret_p)
{
	const char *d = metric + 1;
	double q = 0;
	int digits = 0;

	if (metric[0] != 'p')
		return -EINVAL;
	for (; *d >= '0' && *d <= '9' && digits < 9; d++, digits++)
		q = q * 10 + (*d - '0');
	if (digits < 2 || strcmp(d, "_ms") != 0)
		return -EINVAL;
	q /= pow(10, digits);
	if (q <= 0 || q >= 1)
		return -EINVAL;
	*ret_p = q * 100.0;
	return 0;
}

/* Made of the backend's stored histogram (probe_blob_get), the same way
 * whichever backend holds it. */
int store_probe_percentile(struct store *st, int64_t run_id, size_t idx, const char *metric,
                           double *ret_ms)
{
	struct hist *h = NULL;
	void *buf = NULL;
	size_t len = 0;
	double p, v;
	int r = percentile_of(metric, &p);

	if (r == 0)
		r = st->ops->probe_blob_get(st, run_id, idx, "latency", &buf, &len);
	if (r == 0)
		r = hist_deserialize(buf, len, &h);
	free(buf);
	if (r < 0)
		return r;
	/* The histogram holds microseconds; metrics are milliseconds. */
	v = hist_percentile(h, p) / 1000.0;
	hist_free(h);
	if (isnan(v))
		return -ENOENT; /* an empty histogram has no percentiles */
	*ret_ms = v;
	return 0;
}

int store_metrics_snapshot(struct store *st, json_t **ret_snap)
{
	return st->ops->metrics_snapshot(st, ret_snap);
}

int store_probe_blob_save(struct store *st, int64_t run_id, size_t idx, const char *name,
                          const void *data, size_t len)
{
	return st->ops->probe_blob_save(st, run_id, idx, name, data, len);
}

int store_probe_blob_get(struct store *st, int64_t run_id, size_t idx, const char *name,
                         void **ret_data, size_t *ret_len)
{
	return st->ops->probe_blob_get(st, run_id, idx, name, ret_data, ret_len);
}

int store_probe_timeline_save(struct store *st, int64_t run_id, size_t idx, json_t *timeline)
{
	return st->ops->probe_timeline_save(st, run_id, idx, timeline);
}

int store_probe_timeline_get(struct store *st, int64_t run_id, size_t idx, json_t **ret_timeline)
{
	return st->ops->probe_timeline_get(st, run_id, idx, ret_timeline);
}

int store_audit_add(struct store *st, const struct store_audit_new *a)
{
	return st->ops->audit_add(st, a);
}

int store_audit_list(struct store *st, int64_t run_id, int64_t waiver_id, json_t **ret_changes)
{
	return st->ops->audit_list(st, run_id, waiver_id, ret_changes);
}

int store_run_service(struct store *st, int64_t id, char *buf, size_t len)
{
	return st->ops->run_service(st, id, buf, len);
}

int store_spec_put(struct store *st, const struct store_spec_new *s, int64_t *ret_version)
{
	return st->ops->spec_put(st, s, ret_version);
}

int store_spec_get(struct store *st, const char *service, const char *environment, int64_t version,
                   json_t **ret_spec)
{
	return st->ops->spec_get(st, service, environment, version, ret_spec);
}

int store_specs_list(struct store *st, const char *service, json_t **ret_items)
{
	return st->ops->specs_list(st, service, ret_items);
}

/* ---- Several nodes on one database ---------------------------------- */

bool store_shared(struct store *st)
{
	return st->ops->shared;
}

int store_node_beat(struct store *st, const char *node, const char *version, int64_t now_ms,
                    int64_t lease_ms, json_t **ret_held)
{
	return st->ops->node_beat(st, node, version, now_ms, lease_ms, ret_held);
}

int store_run_claim(struct store *st, const char *node, int64_t lease_until, int max,
                    json_t **ret_runs)
{
	return st->ops->run_claim(st, node, lease_until, max, ret_runs);
}

int store_leases_expire(struct store *st, int64_t now_ms, const char *node, json_t **ret_runs)
{
	return st->ops->leases_expire(st, now_ms, node, ret_runs);
}

int store_run_cancel_request(struct store *st, int64_t id, int64_t now_ms)
{
	return st->ops->run_cancel_request(st, id, now_ms);
}

int store_run_release(struct store *st, int64_t id, const char *node)
{
	return st->ops->run_release(st, id, node);
}

bool store_queued_hint(struct store *st)
{
	return st->ops->queued_hint(st);
}

int store_nodes_evict(struct store *st, const char *self, json_t **ret_evicted)
{
	return st->ops->nodes_evict ? st->ops->nodes_evict(st, self, ret_evicted) : -ENOTSUP;
}

int store_fence(struct store *st, const char *node)
{
	return st->ops->fence ? st->ops->fence(st, node) : -ENOTSUP;
}

int store_load_slot_take(struct store *st, const char *host, int slot)
{
	return st->ops->load_slot_take ? st->ops->load_slot_take(st, host, slot) : -ENOTSUP;
}

int store_load_slot_release(struct store *st, const char *host, int slot)
{
	return st->ops->load_slot_release ? st->ops->load_slot_release(st, host, slot) : -ENOTSUP;
}

int store_partition_metrics(struct store *st, int64_t *ret_upto)
{
	return st->ops->partition_metrics ? st->ops->partition_metrics(st, ret_upto) : -ENOTSUP;
}
