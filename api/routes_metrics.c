/* routes_metrics: GET /metrics, readyd's own metrics in the Prometheus
 * text exposition format 0.0.4 (lib/report/metrics.h renders; the store gives
 * run counts, DB size and the last verdict and gated values per service
 * and environment). Who may scrape it is the auth layer's business
 * (public_metrics in readyd.yaml).
 *
 * It must stay cheap: Prometheus scrapes it every few seconds, so it
 * reads indexes only (store_metrics_snapshot), a few small /proc files
 * (procstat) and keeps no state.
 */
#include <errno.h>
#include <stdlib.h>

#include "api.h"
#include "lib/probe/probe.h"
#include "lib/report/metrics.h"
#include "lib/report/procstat.h"

#ifndef READYD_VERSION
#define READYD_VERSION "unknown"
#endif

/* What the process knows beside the store: the queue's size, whether the
 * store is degraded (as /readyz says) and the process_* numbers. */
static void add_process(struct api_app *app, json_t *snap)
{
	struct procstat ps;
	char why[512];

	for (size_t t = 0; t < probe_type_count(); t++) {
		const struct probe_type_def *def = probe_type_get((enum probe_type)t);

		if (def)
			metrics_probe_declare(def->name);
	}
	json_object_set_new(snap, "queued_limit", json_integer(sched_queue_limit(app->sched)));
	json_object_set_new(snap, "store_degraded",
	                    json_boolean(api_store_problem(app, why, sizeof(why)) < 0));
	if (procstat_read(&ps) < 0)
		return;
	json_object_set_new(snap, "process",
	                    json_pack("{s:f, s:f, s:f, s:f, s:f, s:f}", "cpu_seconds",
	                              ps.cpu_seconds, "resident_bytes", ps.resident_bytes,
	                              "virtual_bytes", ps.virtual_bytes, "open_fds", ps.open_fds,
	                              "max_fds", ps.max_fds, "start_time_seconds",
	                              ps.start_time_seconds));
}

static void get_metrics(struct api_req *req)
{
	struct api_app *app = api_req_app(req);
	json_t *snap = NULL;
	size_t len = 0;
	char *text;
	int r = store_metrics_snapshot(app->store, &snap);

	if (r < 0) {
		api_problem_errno(req, r, "metrics snapshot");
		return;
	}
	/* A scoped token sees the per-service series of its services only. */
	if (api_req_scope(req))
		json_object_set_new(
		        snap, "gates",
		        api_scope_items(req, json_incref(json_object_get(snap, "gates"))));
	add_process(app, snap);
	json_object_set_new(snap, "answer_cache", api_req_cache_stats(req));
	text = metrics_render(snap, READYD_VERSION, &len);
	json_decref(snap);
	if (!text) {
		api_problem_errno(req, -ENOMEM, "metrics");
		return;
	}
	api_reply_text(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
	free(text);
}

const struct api_route api_routes_metrics[] = {
        {"GET", "/metrics", get_metrics, API_ROLE_VIEWER},
        {NULL, NULL, NULL},
};
