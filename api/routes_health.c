/* routes_health: liveness and readiness for load balancers and systemd
 * probes. Cheap, unauthenticated, never touch more than they must.
 * Readiness means new runs can be taken and kept: the database answers,
 * its file is still the one readyd writes to, and no write is pending. */
#include <errno.h>
#include <stdio.h>

#include "api.h"

int api_store_problem(struct api_app *app, char *buf, size_t len)
{
	char why[400];
	int e;

	if (app->db_problem) {
		snprintf(buf, len, "store: %s", app->db_problem);
		return -ESTALE;
	}
	e = sched_store_status(app->sched, why, sizeof(why));
	if (e < 0)
		snprintf(buf, len, "store: %s", why);
	return e;
}

static void get_healthz(struct api_req *req)
{
	api_reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

/* 503 while draining, when the database does not answer, and while the
 * store is degraded (the detail says why). */
static void get_readyz(struct api_req *req)
{
	struct api_app *app = api_req_app(req);
	int v = store_schema_version(app->store);
	char why[512];

	if (app->draining) {
		api_problem(req, 503, NULL, "readyd is shutting down");
		return;
	}
	if (v <= 0) {
		api_problem(req, 503, NULL, "the database does not answer: %s",
		            store_errmsg(app->store));
		return;
	}
	if (api_store_problem(app, why, sizeof(why)) < 0) {
		api_problem(req, 503, json_pack("{s:i}", "active_runs", sched_active(app->sched)),
		            "%s", why);
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
