/* routes_health: liveness and readiness for load balancers and systemd
 * probes. Cheap, unauthenticated, never touch more than they must. */
#include "api.h"

static void get_healthz(struct api_req *req)
{
	api_reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

/* Ready when the database answers (schema readable); 503 otherwise. */
static void get_readyz(struct api_req *req)
{
	struct api_app *app = api_req_app(req);
	int v = store_schema_version(app->store);

	if (app->draining) {
		api_problem(req, 503, NULL, "readyd is shutting down");
		return;
	}
	if (v <= 0) {
		api_problem(req, 503, NULL, "the database does not answer: %s",
		            store_errmsg(app->store));
		return;
	}
	api_reply_json(req, 200,
	               json_pack("{s:s, s:i, s:i}", "status", "ready", "schema_version", v,
	                         "active_runs", sched_active(app->sched)));
}

const struct api_route api_routes_health[] = {
        {"GET", "/healthz", get_healthz, API_ROLE_ANYONE},
        {"GET", "/readyz", get_readyz, API_ROLE_ANYONE},
        {NULL, NULL, NULL},
};
