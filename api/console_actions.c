/* console_actions: the web console's changes, as POST forms that carry
 * the session's CSRF token. On an ended run's page: invalidate (the
 * submitter role, a reason), re-judge (the submitter role, the gates one
 * a line, as POST /v1/runs/{id}/rejudge takes them) and waive a failing
 * gate (the admin role, reason, approver and hours; the gate's expression
 * is taken from the run, never from the form). On a service's page:
 * revoke an active waiver (the admin role). Each is recorded in the audit
 * trail with the token's name, as the API records it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "console.h"
#include "lib/report/svg.h"
#include "lib/spec/spec.h"
#include "lib/util/json_text.h"
#include "lib/util/run_state.h"
#include "lib/util/util.h"

#define TEXT_MAX        1024
#define WAIVE_HOURS_MAX (366 * 24)
#define GATES_FORM_MAX  (64 * 1024) /* bytes of the rejudge form's gates */
#define GATES_ROWS_MAX  16          /* rows the gates box opens with */

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

/* One gate a line: the stored spec's gates as written there (a mapping as
 * JSON), or else the expressions the run was judged on. */
static void rejudge_lines(struct svg_buf *b, json_t *run)
{
	json_t *gates = json_object_get(run, "spec_gates"), *g;
	bool from_spec = json_is_array(gates);
	size_t i;
	char *text;

	json_array_foreach (from_spec ? gates : json_object_get(run, "gates"), i, g) {
		if (json_is_string(g)) {
			svg_buf_esc(b, json_string_value(g));
		} else if (from_spec) {
			text = rd_json_dumps(g, JSON_COMPACT);
			svg_buf_esc(b, text);
			free(text);
		} else {
			svg_buf_esc(b, json_string_value(json_object_get(g, "expr")));
		}
		svg_buf_puts(b, "\n");
	}
}

static void rejudge_form(struct svg_buf *b, const struct console_who *w, json_t *run, int64_t id)
{
	size_t n = json_array_size(json_object_get(run, "gates")) + 1;

	svg_buf_printf(b,
	               "<form method=\"post\" action=\"/runs/%lld/rejudge\" id=\"rejudge\">"
	               "<h3>Re-judge</h3><p class=\"muted\">A new decision from the run's stored "
	               "measurements with today's baselines and waivers; the run keeps its own "
	               "verdict.</p><label>Gates, one a line: an expression, or a mapping as "
	               "JSON <textarea name=\"gates\" rows=\"%zu\" required>",
	               (long long)id, n < GATES_ROWS_MAX ? n : GATES_ROWS_MAX);
	rejudge_lines(b, run);
	svg_buf_puts(b, "</textarea></label>");
	csrf_field(b, w);
	svg_buf_puts(b, "<button type=\"submit\">Re-judge</button></form>");
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
	rejudge_form(b, w, run, id);
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

/* The rejudge form's gates, one a line (blank lines skipped): a line
 * starting with '{' is a mapping in JSON, any other an expression. A new
 * array, or NULL with why in msg. */
static json_t *gates_of_text(char *text, char *msg, size_t len)
{
	json_t *gates = json_array(), *g;
	char *line = text, *end;

	while (gates && line && *line) {
		end = strchr(line, '\n');
		if (end)
			*end = '\0';
		line += strspn(line, " \t\r");
		for (size_t n = strlen(line); n > 0 && strchr(" \t\r", line[n - 1]); n--)
			line[n - 1] = '\0';
		g = line[0] == '{' ? json_loads(line, JSON_REJECT_DUPLICATES, NULL)
		    : line[0]      ? json_string(line)
		                   : NULL;
		if (line[0] && !json_is_object(g) && !json_is_string(g)) {
			snprintf(msg, len, "gates[%zu]: %s", json_array_size(gates),
			         line[0] == '{' ? "a line starting with { must be a JSON mapping"
			                        : "not valid UTF-8");
			json_decref(g);
			json_decref(gates);
			return NULL;
		}
		if (g && json_array_append_new(gates, g) < 0) {
			json_decref(gates);
			gates = NULL;
		}
		line = end ? end + 1 : NULL;
	}
	if (!gates)
		snprintf(msg, len, "Out of memory.");
	return gates;
}

/* Answers a failed api_rejudge. */
static void rejudge_failed(struct api_req *req, const struct console_who *w, int r,
                           const struct spec_error *se)
{
	char msg[600];

	if (r == -EINVAL) {
		snprintf(msg, sizeof(msg), "%s: %s", se->path, se->message);
		console_error(req, w, 422, msg);
	} else if (r == -EINPROGRESS || r == -EALREADY) {
		console_error(req, w, 409, store_errmsg(api_req_app(req)->store));
	} else {
		snprintf(msg, sizeof(msg), "%s: %s", se->message, strerror(-r));
		console_error(req, w, 503, msg);
	}
}

void console_post_rejudge(struct api_req *req)
{
	struct console_who w;
	int64_t id = api_req_id(req);
	json_t *run = action_run(req, &w, API_ROLE_SUBMITTER), *gates = NULL, *out = NULL;
	char *text = NULL, msg[160];
	struct spec_error se;
	int r;

	if (!run)
		return;
	if (!run_state_string_is_final(json_string_value(json_object_get(run, "state")))) {
		console_error(req, &w, 409, "The run has not ended yet; re-judge it once it has.");
		goto out;
	}
	text = malloc(GATES_FORM_MAX + 1);
	if (!text) {
		api_problem_errno(req, -ENOMEM, "rejudge");
		goto out;
	}
	if (!field(req, &w, "gates", text, GATES_FORM_MAX + 1))
		goto out;
	gates = gates_of_text(text, msg, sizeof(msg));
	if (!gates) {
		console_error(req, &w, 422, msg);
		goto out;
	}
	r = api_rejudge(req, run, gates, &out, &se);
	if (r < 0)
		rejudge_failed(req, &w, r, &se);
	else
		back_to_run(req, id);
out:
	json_decref(out);
	json_decref(gates);
	json_decref(run);
	free(text);
}

void console_waiver_revoke_form(struct svg_buf *b, const struct console_who *w, const char *service,
                                int64_t id)
{
	if (w->role < API_ROLE_ADMIN)
		return;
	svg_buf_puts(b, " <form method=\"post\" class=\"inline revoke\" action=\"/services/");
	svg_buf_esc(b, service);
	svg_buf_printf(b, "/waivers/%lld/revoke\">", (long long)id);
	csrf_field(b, w);
	svg_buf_printf(b,
	               "<button type=\"submit\" class=\"danger\" id=\"revoke-%lld\">Revoke"
	               "</button></form>",
	               (long long)id);
}

void console_post_waiver_revoke(struct api_req *req)
{
	struct console_who w;
	const char *svc = api_req_name(req);
	int64_t id = api_req_id(req);
	char to[API_NAME_MAX + 16];
	int r;

	if (!console_who(req, &w) || !console_csrf_ok(req, &w))
		return;
	if (w.role < API_ROLE_ADMIN) {
		console_error(req, &w, 403, "Revoking a waiver needs the admin role.");
		return;
	}
	r = api_req_sees(req, svc)
	            ? store_waiver_revoke(api_req_app(req)->store, svc, id, rd_now_ms())
	            : -ENOENT;
	if (r < 0) {
		console_error(req, &w, r == -ENOENT ? 404 : 503,
		              r == -ENOENT ? "No such waiver."
		                           : "The waiver could not be revoked.");
		return;
	}
	api_audit(req, "waiver-revoke", svc, 0, id, NULL);
	snprintf(to, sizeof(to), "/services/%s", svc);
	api_reply_header(req, "Location", to);
	api_reply_header(req, "X-Content-Type-Options", "nosniff");
	api_reply_text(req, 303, "text/plain; charset=utf-8", "see other\n", 10);
}
