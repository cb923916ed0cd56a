/* console_actions: the web console's changes to an ended run, as POST
 * forms on its page that carry the session's CSRF token: invalidate (the
 * submitter role, a reason) and waive a failing gate (the admin role,
 * reason, approver and hours; the gate's expression is taken from the
 * run, never from the form). Each is recorded in the audit trail with the
 * token's name, as the API records it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "console.h"
#include "lib/report/svg.h"
#include "lib/util/run_state.h"
#include "lib/util/util.h"

#define TEXT_MAX        1024
#define WAIVE_HOURS_MAX (366 * 24)

static void csrf_field(struct svg_buf *b, const struct console_who *w)
{
	svg_buf_puts(b, "<input type=\"hidden\" name=\"csrf\" value=\"");
	svg_buf_esc(b, w->csrf);
	svg_buf_puts(b, "\">");
}

static void waive_form(struct svg_buf *b, const struct console_who *w, int64_t id, size_t idx,
                       json_t *g)
{
	svg_buf_printf(b,
	               "<form method=\"post\" action=\"/runs/%lld/waive\" class=\"waive\">"
	               "<input type=\"hidden\" name=\"gate\" value=\"%zu\"><code>",
	               (long long)id, idx);
	svg_buf_esc(b, json_string_value(json_object_get(g, "expr")));
	svg_buf_puts(b, "</code> <label>Reason <input name=\"reason\" required></label> "
	                "<label>Approver <input name=\"approver\" required></label> "
	                "<label>Hours <input name=\"hours\" type=\"number\" min=\"1\" "
	                "max=\"8784\" value=\"24\" required></label>");
	csrf_field(b, w);
	svg_buf_puts(b, "<button type=\"submit\">Waive</button></form>");
}

void console_run_forms(struct svg_buf *b, const struct console_who *w, json_t *run, int64_t id)
{
	json_t *g;
	size_t i;
	bool any = false;

	if (!run_state_string_is_final(json_string_value(json_object_get(run, "state"))) ||
	    w->role < API_ROLE_SUBMITTER)
		return;
	svg_buf_puts(b, "<details class=\"changes\"><summary>Change this run</summary>");
	if (!json_is_object(json_object_get(run, "invalidated"))) {
		svg_buf_printf(b,
		               "<form method=\"post\" action=\"/runs/%lld/invalidate\" "
		               "id=\"invalidate\"><label>Reason <input name=\"reason\" required "
		               "maxlength=\"1024\"></label>",
		               (long long)id);
		csrf_field(b, w);
		svg_buf_puts(b, "<button type=\"submit\">Invalidate (leave out of baselines, "
		                "trends and gates)</button></form>");
	}
	json_array_foreach (json_object_get(run, "gates"), i, g) {
		const char *o = json_string_value(json_object_get(g, "outcome"));

		if (w->role < API_ROLE_ADMIN || !o || strcmp(o, "fail") != 0)
			continue;
		if (!any)
			svg_buf_puts(b, "<h3>Waive a failing gate (for the next runs)</h3>");
		any = true;
		waive_form(b, w, id, i, g);
	}
	svg_buf_puts(b, "</details>\n");
}

/* A form field into buf, or an error page; false when answered. */
static bool field(struct api_req *req, const struct console_who *w, const char *key, char *buf,
                  size_t len)
{
	size_t blen = 0;
	const char *body = api_req_body(req, &blen);
	char msg[96];

	if (console_form_get(body, blen, key, buf, len) == 0 && buf[0])
		return true;
	snprintf(msg, sizeof(msg), "The form needs %s (at most %zu bytes).", key, len - 1);
	console_error(req, w, 422, msg);
	return false;
}

static void back_to_run(struct api_req *req, int64_t id)
{
	char to[48];

	snprintf(to, sizeof(to), "/runs/%lld", (long long)id);
	api_reply_header(req, "Location", to);
	api_reply_header(req, "X-Content-Type-Options", "nosniff");
	api_reply_text(req, 303, "text/plain; charset=utf-8", "see other\n", 10);
}

/* The signed-in caller with CSRF token, role need and the run in scope;
 * the run (new reference) or NULL after answering. */
static json_t *action_run(struct api_req *req, struct console_who *w, enum api_role need)
{
	json_t *run = NULL;
	int r;

	if (!console_who(req, w) || !console_csrf_ok(req, w))
		return NULL;
	if (w->role < need) {
		console_error(req, w, 403, "Your token's role cannot make this change.");
		return NULL;
	}
	r = store_run_get(api_req_app(req)->store, api_req_id(req), &run);
	if (r == 0 && api_req_sees(req, json_string_value(json_object_get(run, "service"))))
		return run;
	json_decref(run);
	console_error(req, w, 404, "No such run.");
	return NULL;
}

void console_post_invalidate(struct api_req *req)
{
	struct console_who w;
	char reason[TEXT_MAX + 1];
	int64_t id = api_req_id(req);
	json_t *run = action_run(req, &w, API_ROLE_SUBMITTER);
	int r;

	if (!run)
		return;
	json_decref(run);
	if (!field(req, &w, "reason", reason, sizeof(reason)))
		return;
	r = store_run_invalidate(api_req_app(req)->store, id, reason, rd_now_ms());
	if (r < 0) {
		console_error(req, &w, r == -EINPROGRESS || r == -EALREADY ? 409 : 503,
		              store_errmsg(api_req_app(req)->store));
		return;
	}
	api_audit(req, "invalidate", NULL, id, 0, reason);
	back_to_run(req, id);
}

void console_post_waive(struct api_req *req)
{
	struct console_who w;
	char reason[TEXT_MAX + 1], approver[AUTH_NAME_MAX * 2], hours[16], gate[16];
	int64_t id = api_req_id(req), h = 0, gi = -1, wid = 0, now = rd_now_ms();
	json_t *run = action_run(req, &w, API_ROLE_ADMIN), *g;
	struct store_waiver_new nw = {0};
	int r;

	if (!run)
		return;
	if (!field(req, &w, "reason", reason, sizeof(reason)) ||
	    !field(req, &w, "approver", approver, sizeof(approver)) ||
	    !field(req, &w, "hours", hours, sizeof(hours)) ||
	    !field(req, &w, "gate", gate, sizeof(gate))) {
		json_decref(run);
		return;
	}
	if (rd_parse_int64(hours, 1, WAIVE_HOURS_MAX, &h) < 0 ||
	    rd_parse_int64(gate, 0, 4096, &gi) < 0 ||
	    !(g = json_array_get(json_object_get(run, "gates"), (size_t)gi))) {
		console_error(req, &w, 422,
		              "Hours must be 1 to 8784 and the gate one of the run's.");
		json_decref(run);
		return;
	}
	nw = (struct store_waiver_new){
	        .service = json_string_value(json_object_get(run, "service")),
	        .environment = json_string_value(json_object_get(run, "environment")),
	        .expr = json_string_value(json_object_get(g, "expr")),
	        .reason = reason,
	        .approver = approver,
	        .created_by = api_req_principal(req),
	        .created_at = now,
	        .expires_at = now + h * 3600 * 1000,
	};
	r = store_waiver_create(api_req_app(req)->store, &nw, &wid);
	if (r == 0)
		api_audit(req, "waiver-create", nw.service, 0, wid, reason);
	json_decref(run);
	if (r < 0)
		console_error(req, &w, 503, "The waiver could not be saved.");
	else
		back_to_run(req, id);
}
