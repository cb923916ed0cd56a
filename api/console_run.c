/* console_run: the web console's run page (live progress over SSE while
 * the run is active, then the report body report_html renders), its
 * report downloads and cancel form.
 *
 * An ended run only changes with what is stored, so its page's report
 * body and downloads are rendered on a worker thread with the worker's
 * read-only store connection (api/offload.c) and their bytes kept under
 * the store's generation: the report of a run with long load timelines
 * costs the loop nothing, and a page read again costs it a copy. What
 * depends on who is looking (the top bar, the forms and their CSRF token)
 * is added on the loop from a few facts kept beside the body. A run the
 * scheduler still holds is read and rendered on the loop, with its live
 * progress, and never kept. Every string from a run or spec is escaped by
 * svg_buf_esc().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "console.h"
#include "respcache.h"
#include "lib/report/report.h"
#include "lib/report/svg.h"
#include "lib/util/json_text.h"
#include "lib/util/run_state.h"
#include "lib/util/util.h"

static void live_panel(struct svg_buf *b, json_t *run, int64_t id)
{
	svg_buf_printf(b,
	               "<section class=\"live\" id=\"live\" data-run=\"%lld\">"
	               "<h2>Live progress</h2><p><span class=\"spinner\" aria-hidden=\"true\">"
	               "&#8635;</span> State <strong id=\"live-state\">",
	               (long long)id);
	svg_buf_esc(b, json_string_value(json_object_get(run, "state")));
	svg_buf_puts(b, "</strong>; probes done <span id=\"live-probes\">&#8211;</span>; "
	                "probe <strong id=\"live-probe\">&#8211;</strong> "
	                "<progress id=\"live-bar\" max=\"100\" value=\"0\"></progress> "
	                "<span id=\"live-percent\">0</span>%, <span id=\"live-requests\">0</span> "
	                "requests, p99 <span id=\"live-p99\">&#8211;</span> ms, ETA "
	                "<span id=\"live-eta\">&#8211;</span> s</p>"
	                "<p class=\"muted\" id=\"live-note\">Updates as the run goes "
	                "(needs JavaScript); without it, reload.</p></section>\n");
}

static void run_actions(struct svg_buf *b, const struct console_who *w, json_t *run, int64_t id)
{
	bool active = !run_state_string_is_final(json_string_value(json_object_get(run, "state")));

	svg_buf_printf(b,
	               "<nav class=\"actions\">Report as <a href=\"/runs/%lld/report?format=json\">"
	               "JSON</a> <a href=\"/runs/%lld/report?format=markdown\">Markdown</a> "
	               "<a href=\"/runs/%lld/report?format=junit\">JUnit</a> "
	               "<a href=\"/services/",
	               (long long)id, (long long)id, (long long)id);
	svg_buf_esc(b, json_string_value(json_object_get(run, "service")));
	svg_buf_puts(b, "\">Service history</a>");
	if (active && w->role >= API_ROLE_SUBMITTER) {
		svg_buf_printf(
		        b,
		        "<form method=\"post\" action=\"/runs/%lld/cancel\" class=\"inline\">"
		        "<input type=\"hidden\" name=\"csrf\" value=\"",
		        (long long)id);
		svg_buf_esc(b, w->csrf);
		svg_buf_puts(b, "\"><button type=\"submit\" id=\"cancel\" class=\"danger\">"
		                "Cancel run</button></form>");
	}
	svg_buf_puts(b, "</nav>\n");
}

/* The later decisions on the run (POST /v1/runs/{id}/rejudge), newest
 * last, each with its gates' outcomes. The run's own verdict stays. */
static void rejudgements(struct svg_buf *b, json_t *run)
{
	json_t *list = json_object_get(run, "rejudgements"), *j, *g;
	size_t i, k;

	if (json_array_size(list) == 0)
		return;
	svg_buf_puts(b, "<section id=\"rejudgements\"><h2>Rejudgements</h2><p class=\"muted\">"
	                "Later decisions from the run's stored measurements; its own verdict "
	                "stays.</p><table><thead><tr><th>#</th><th>Verdict</th><th>By</th>"
	                "<th>At</th><th>Gates</th></tr></thead><tbody>\n");
	json_array_foreach (list, i, j) {
		svg_buf_printf(b, "<tr><td data-label=\"#\">%lld</td><td data-label=\"Verdict\">",
		               (long long)json_integer_value(json_object_get(j, "seq")));
		console_verdict_badge(b, json_string_value(json_object_get(j, "verdict")));
		svg_buf_puts(b, "</td><td data-label=\"By\">");
		svg_buf_esc(b, json_string_value(json_object_get(j, "requested_by")) ?: "-");
		svg_buf_puts(b, "</td><td data-label=\"At\">");
		svg_buf_esc(b, json_string_value(json_object_get(j, "created_at")));
		svg_buf_puts(b, "</td><td data-label=\"Gates\"><ul>");
		json_array_foreach (json_object_get(j, "gates"), k, g) {
			svg_buf_puts(b, "<li><code>");
			svg_buf_esc(b, json_string_value(json_object_get(g, "expr")));
			svg_buf_puts(b, "</code> ");
			svg_buf_esc(b, json_string_value(json_object_get(g, "outcome")));
			svg_buf_puts(b, "</li>");
		}
		svg_buf_puts(b, "</ul></td></tr>\n");
	}
	svg_buf_puts(b, "</tbody></table></section>\n");
}

/* The report part of the page: the same for every viewer. */
static void report_part(struct svg_buf *b, struct store *st, json_t *run)
{
	json_t *trends = api_report_trends(st, run);

	rejudgements(b, run);
	svg_buf_puts(b, "<div class=\"report\" id=\"report\">");
	report_html_body(b, run, trends);
	svg_buf_puts(b, "</div>");
	json_decref(trends);
}

/* What the page's actions and forms read of an ended run: a small copy
 * of run (service, state, invalidated, gates' expr and outcome) and the
 * stored spec's gates (borrowed spec, may be NULL) for the rejudge form.
 * New reference, NULL on ENOMEM. */
static json_t *run_facts(json_t *run, json_t *spec)
{
	json_t *gates = json_array(), *g, *f;
	size_t i;

	json_array_foreach (json_object_get(run, "gates"), i, g)
		json_array_append_new(gates,
		                      json_pack("{s:O?, s:O?}", "expr", json_object_get(g, "expr"),
		                                "outcome", json_object_get(g, "outcome")));
	f = json_pack("{s:O?, s:O?, s:O?, s:o, s:O?}", "service", json_object_get(run, "service"),
	              "state", json_object_get(run, "state"), "invalidated",
	              json_object_get(run, "invalidated"), "gates", gates, "spec_gates",
	              json_object_get(spec, "gates"));
	return f;
}

static const char *page_key(int64_t id, char *buf, size_t len)
{
	snprintf(buf, len, "console-run\n%lld", (long long)id);
	return buf;
}

struct run_job {
	int64_t id;
};

/* On a worker: the kept form of an ended run's page, its facts as one
 * line of JSON, a newline, then the report part. */
static int run_page_read(struct store *reader, void *arg, struct api_body **ret, char *err,
                         size_t errlen)
{
	struct run_job *j = arg;
	json_t *run = NULL, *spec = NULL, *facts = NULL;
	struct svg_buf b;
	char *text = NULL;
	size_t len = 0;
	int r = store_run_get(reader, j->id, &run);

	if (r < 0) {
		snprintf(err, errlen, "%s", store_errmsg(reader));
		return r;
	}
	if (store_run_spec(reader, j->id, &spec) < 0)
		spec = NULL;
	facts = run_facts(run, spec);
	text = facts ? rd_json_dumps(facts, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
	json_decref(facts);
	json_decref(spec);
	if (!text) {
		json_decref(run);
		return -ENOMEM;
	}
	svg_buf_init(&b);
	svg_buf_puts(&b, text);
	svg_buf_puts(&b, "\n");
	report_part(&b, reader, run);
	free(text);
	json_decref(run);
	text = svg_buf_steal(&b, &len);
	*ret = text ? api_body_new(text, len) : NULL;
	free(text);
	return *ret ? 0 : -ENOMEM;
}

static void page_frame(struct svg_buf *b, const struct console_who *w, int64_t id)
{
	char title[64];

	snprintf(title, sizeof(title), "Run %lld", (long long)id);
	svg_buf_init(b);
	console_page_begin(b, w, title);
}

/* The page of an ended run from its kept bytes (borrowed). */
static void reply_kept_page(struct api_req *req, const struct console_who *w, int64_t id,
                            const struct api_body *kept)
{
	const char *nl = memchr(kept->data, '\n', kept->len);
	json_t *facts = nl ? json_loadb(kept->data, (size_t)(nl - kept->data), 0, NULL) : NULL;
	struct svg_buf b;

	if (!facts) {
		api_problem_errno(req, -ENOMEM, "console page");
		return;
	}
	page_frame(&b, w, id);
	run_actions(&b, w, facts, id);
	console_run_forms(&b, w, facts, id);
	svg_buf_put(&b, nl + 1, kept->len - (size_t)(nl + 1 - kept->data));
	console_page_end(&b);
	json_decref(facts);
	console_reply_page(req, 200, &b);
}

static void run_page_done(struct api_req *req, void *arg, uint64_t generation, int r,
                          const char *err, struct api_body *b)
{
	struct run_job *j = arg;
	struct console_who w;
	char key[48], msg[64];

	/* Who is looking again: the session may have ended meanwhile. */
	if (!console_who(req, &w)) {
		api_body_unref(b);
		return;
	}
	if (r < 0) {
		snprintf(msg, sizeof(msg), "No run %lld.", (long long)j->id);
		console_error(req, &w, r == -ENOENT ? 404 : 503, msg);
		return;
	}
	api_kept_put(req, page_key(j->id, key, sizeof(key)), generation, b);
	reply_kept_page(req, &w, j->id, b);
	api_body_unref(b);
}

/* The page of a run the scheduler holds: its live state, on the loop. */
static void reply_live_page(struct api_req *req, const struct console_who *w, int64_t id)
{
	struct svg_buf b;
	json_t *run = console_load_run(req, w, id);

	if (!run)
		return;
	page_frame(&b, w, id);
	run_actions(&b, w, run, id);
	if (!run_state_string_is_final(json_string_value(json_object_get(run, "state"))))
		live_panel(&b, run, id);
	console_run_forms(&b, w, run, id);
	report_part(&b, api_req_app(req)->store, run);
	console_page_end(&b);
	json_decref(run);
	console_reply_page(req, 200, &b);
}

/* Whether run id exists within the caller's scope; false after answering. */
static bool run_in_scope(struct api_req *req, const struct console_who *w, int64_t id)
{
	char service[256], msg[64];
	int r = store_run_service(api_req_app(req)->store, id, service, sizeof(service));

	if (r == 0 && api_req_sees(req, service))
		return true;
	snprintf(msg, sizeof(msg), "No run %lld.", (long long)id);
	console_error(req, w, r < 0 && r != -ENOENT ? 503 : 404, msg);
	return false;
}

/* Whether the scheduler still holds run id (its progress is live). */
static bool run_is_live(struct api_req *req, int64_t id)
{
	json_t *progress = NULL;

	if (sched_progress(api_req_app(req)->sched, id, &progress) < 0)
		return false;
	json_decref(progress);
	return true;
}

void console_get_run(struct api_req *req)
{
	struct console_who w;
	int64_t id = api_req_id(req);
	struct api_body *kept;
	struct run_job *j;
	char key[48];

	if (!console_who(req, &w))
		return;
	if (run_is_live(req, id)) {
		reply_live_page(req, &w, id);
		return;
	}
	if (!run_in_scope(req, &w, id))
		return;
	kept = api_kept_get(req, page_key(id, key, sizeof(key)));
	if (kept) {
		reply_kept_page(req, &w, id, kept);
		api_body_unref(kept);
		return;
	}
	j = malloc(sizeof(*j));
	if (!j) {
		api_problem_errno(req, -ENOMEM, "console page");
		return;
	}
	j->id = id;
	api_body_off_loop(req, "", "console page", run_page_read, run_page_done, j, free);
}

/* The run's SSE stream for the page's script: same events as GET
 * /v1/runs/{id}/events, under the console's session. */
void console_get_run_events(struct api_req *req)
{
	struct console_who w;
	json_t *run;

	if (!console_who(req, &w) || !(run = console_load_run(req, &w, api_req_id(req))))
		return;
	json_decref(run);
	api_events_serve(req);
}

/* ---- report downloads ---- */

enum download { DOWNLOAD_JSON, DOWNLOAD_MARKDOWN, DOWNLOAD_JUNIT };

static const struct {
	const char *name, *content_type;
} downloads[] = {
        [DOWNLOAD_JSON] = {"json", "application/json"},
        [DOWNLOAD_MARKDOWN] = {"markdown", "text/markdown; charset=utf-8"},
        [DOWNLOAD_JUNIT] = {"junit", "application/xml; charset=utf-8"},
};

/* The download of run (borrowed, as stored) and spec (may be NULL) in
 * format d: a new body, NULL on ENOMEM. JSON is the API's report,
 * indented for reading. */
static struct api_body *download_body(enum download d, json_t *run, json_t *spec)
{
	struct api_body *b = NULL;
	json_t *doc;
	char *text = NULL;
	size_t len = 0;

	if (d == DOWNLOAD_MARKDOWN) {
		text = report_markdown(run, spec, &len);
	} else if (d == DOWNLOAD_JUNIT) {
		text = report_junit(run, spec, &len);
	} else {
		doc = report_json(run, spec);
		text = doc ? rd_json_dumps(doc, JSON_INDENT(2)) : NULL;
		len = text ? strlen(text) : 0;
		json_decref(doc);
	}
	if (text)
		b = api_body_new(text, len);
	free(text);
	if (b)
		b->content_type = downloads[d].content_type;
	return b;
}

struct download_job {
	int64_t id;
	enum download d;
};

static int download_read(struct store *reader, void *arg, struct api_body **ret, char *err,
                         size_t errlen)
{
	struct download_job *j = arg;
	json_t *run = NULL, *spec = NULL;
	int r = store_run_get(reader, j->id, &run);

	if (r < 0) {
		snprintf(err, errlen, "%s", store_errmsg(reader));
		return r;
	}
	if (store_run_spec(reader, j->id, &spec) < 0)
		spec = NULL;
	*ret = download_body(j->d, run, spec);
	json_decref(run);
	json_decref(spec);
	return *ret ? 0 : -ENOMEM;
}

static const char *download_key(const struct download_job *j, char *buf, size_t len)
{
	snprintf(buf, len, "console-report\n%lld\n%s", (long long)j->id, downloads[j->d].name);
	return buf;
}

/* A download is a file to keep, not a page: no-store as every console
 * answer, the bytes taken from what is kept. */
static void reply_download(struct api_req *req, const struct api_body *b)
{
	api_reply_header(req, "X-Content-Type-Options", "nosniff");
	api_reply_text(req, 200, b->content_type, b->data, b->len);
}

static void download_done(struct api_req *req, void *arg, uint64_t generation, int r,
                          const char *err, struct api_body *b)
{
	struct download_job *j = arg;
	struct console_who w;
	char key[64];

	if (!console_who(req, &w)) {
		api_body_unref(b);
		return;
	}
	if (r < 0) {
		snprintf(key, sizeof(key), "No run %lld.", (long long)j->id);
		console_error(req, &w, r == -ENOENT ? 404 : 503, key);
		return;
	}
	api_kept_put(req, download_key(j, key, sizeof(key)), generation, b);
	reply_download(req, b);
	api_body_unref(b);
}

static void download_live(struct api_req *req, const struct console_who *w,
                          const struct download_job *dj)
{
	json_t *run = console_load_run(req, w, dj->id), *spec = NULL;
	struct api_body *b;

	if (!run)
		return;
	if (store_run_spec(api_req_app(req)->store, dj->id, &spec) < 0)
		spec = NULL;
	b = download_body(dj->d, run, spec);
	json_decref(run);
	json_decref(spec);
	if (!b) {
		api_problem_errno(req, -ENOMEM, "report");
		return;
	}
	reply_download(req, b);
	api_body_unref(b);
}

void console_get_run_report(struct api_req *req)
{
	const char *f = api_req_query(req, "format");
	struct download_job dj = {api_req_id(req), DOWNLOAD_JSON}, *j;
	struct console_who w;
	struct api_body *kept;
	char key[64];

	if (!console_who(req, &w))
		return;
	if (f && strcmp(f, "markdown") == 0)
		dj.d = DOWNLOAD_MARKDOWN;
	else if (f && strcmp(f, "junit") == 0)
		dj.d = DOWNLOAD_JUNIT;
	if (run_is_live(req, dj.id)) {
		download_live(req, &w, &dj);
		return;
	}
	if (!run_in_scope(req, &w, dj.id))
		return;
	kept = api_kept_get(req, download_key(&dj, key, sizeof(key)));
	if (kept) {
		reply_download(req, kept);
		api_body_unref(kept);
		return;
	}
	j = malloc(sizeof(*j));
	if (!j) {
		api_problem_errno(req, -ENOMEM, "report");
		return;
	}
	*j = dj;
	api_body_off_loop(req, "", "report", download_read, download_done, j, free);
}

void console_post_cancel(struct api_req *req)
{
	struct console_who w;
	int64_t id = api_req_id(req);
	json_t *run;
	char to[48];
	int r;

	if (!console_who(req, &w) || !console_csrf_ok(req, &w))
		return;
	if (w.role < API_ROLE_SUBMITTER) {
		console_error(req, &w, 403, "Cancelling needs the submitter role.");
		return;
	}
	if (!(run = console_load_run(req, &w, id)))
		return;
	json_decref(run);
	r = sched_cancel(api_req_app(req)->sched, id);
	if (r < 0) {
		console_error(req, &w, 409, "The run has already ended; nothing to cancel.");
		return;
	}
	api_audit(req, "cancel", NULL, id, 0, "cancelled from the web console");
	snprintf(to, sizeof(to), "/runs/%lld", (long long)id);
	api_reply_header(req, "Location", to);
	api_reply_header(req, "X-Content-Type-Options", "nosniff");
	api_reply_text(req, 303, "text/plain; charset=utf-8", "see other\n", 10);
}
