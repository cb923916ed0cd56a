/* routes_metrics: GET /metrics, readyd's own metrics in the Prometheus
 * text exposition format 0.0.4 (lib/report/metrics.h renders; the store gives
 * run counts, DB size and the last verdict and gated values per service
 * and environment). Who may scrape it is the auth layer's business
 * (public_metrics in readyd.yaml).
 *
 * It must stay cheap: Prometheus scrapes it every few seconds, so it
 * reads indexes only (store_metrics_snapshot) and keeps no state.
 */
#include <errno.h>
#include <stdlib.h>

#include "api.h"
#include "lib/report/metrics.h"

#ifndef READYD_VERSION
#define READYD_VERSION "unknown"
#endif

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
