/* routes_alertmanager: readyd as an Alertmanager receiver.
 * POST /v1/alertmanager/webhook takes the payload of Alertmanager's
 * webhook integration (version "4") from a token with the notifier (or
 * admin) role, checks it strictly (lib/prom/aminbox.c names the bad
 * field's path) and keeps it in the daemon's in-memory ring, where alert
 * drills with `notify` look for their alert. GET
 * /v1/alertmanager/notifications lists what arrived, newest first, for
 * operators (admin: notifications are not scoped to a service).
 *
 * Nothing here is stored in the database: a notification is evidence for
 * a drill running now, and the drill's result (stored with its run) says
 * what arrived.
 */
#include <errno.h>
#include <stdlib.h>
#include <uv.h>

#include "api.h"
#include "lib/prom/aminbox.h"
#include "lib/util/util.h"

#define LIST_DEFAULT 50

static void post_webhook(struct api_req *req)
{
	struct aminbox *ib = api_req_app(req)->inbox;
	struct aminbox_error err;
	json_t *payload = NULL;
	size_t len = 0;
	const char *body = api_req_body(req, &len);
	int64_t id;
	int r;

	if (!ib) {
		api_problem(req, 503, NULL, "this readyd keeps no Alertmanager notifications");
		return;
	}
	r = aminbox_parse(body, len, &payload, &err);
	if (r == -E2BIG) {
		api_problem(req, 413, NULL, "%s", err.message);
		return;
	}
	if (r < 0 && r != -EINVAL) {
		api_problem_errno(req, r, "notification");
		return;
	}
	if (r < 0) {
		api_problem(req, 422,
		            json_pack("{s:[{s:s, s:s}]}", "errors", "path", err.path, "message",
		                      err.message),
		            "%s: %s", err.path[0] ? err.path : "payload", err.message);
		return;
	}
	/* The same monotonic clock as the drills' (milliseconds of uv_hrtime). */
	id = aminbox_add(ib, payload, len, api_req_principal(req), uv_hrtime() / 1000000,
	                 rd_now_ms());
	if (id < 0) {
		api_problem_errno(req, (int)id, "notification");
		return;
	}
	api_reply_json(req, 200, json_pack("{s:I}", "id", (json_int_t)id));
}

static void get_notifications(struct api_req *req)
{
	struct aminbox *ib = api_req_app(req)->inbox;
	const char *limit_s = api_req_query(req, "limit");
	const char *after_s = api_req_query(req, "after");
	int64_t limit = LIST_DEFAULT, after = 0;
	json_t *items;

	if (limit_s && rd_parse_int64(limit_s, 1, AMINBOX_DEFAULT_CAPACITY, &limit) < 0) {
		api_problem(req, 400, NULL, "limit must be a whole number from 1 to %d",
		            AMINBOX_DEFAULT_CAPACITY);
		return;
	}
	if (after_s && rd_parse_int64(after_s, 0, INT64_MAX, &after) < 0) {
		api_problem(req, 400, NULL, "after must be a notification id (a whole number)");
		return;
	}
	items = ib ? aminbox_list(ib, (size_t)limit, after) : json_array();
	if (!items) {
		api_problem_errno(req, -ENOMEM, "notifications");
		return;
	}
	api_reply_json(req, 200,
	               json_pack("{s:o, s:I}", "items", items, "received",
	                         (json_int_t)(ib ? aminbox_received(ib) : 0)));
}

const struct api_route api_routes_alertmanager[] = {
        {"POST", "/v1/alertmanager/webhook", post_webhook, API_ROLE_NOTIFIER},
        {"GET", "/v1/alertmanager/notifications", get_notifications, API_ROLE_ADMIN},
        {NULL, NULL, NULL},
};
