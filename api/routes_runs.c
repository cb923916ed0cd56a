/* routes_runs: the run resource: submit, list, read (with long-poll),
 * cancel, report. Reads come from the store (every transition is stored
 * before it is announced), live progress from the scheduler. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "report.h"
#include "spec.h"
#include "util.h"

#define LIST_DEFAULT_LIMIT  50
#define IDEMPOTENCY_KEY_MAX 128

static const char *const run_states[] = {
        "queued", "running", "passed", "failed", "error", "cancelled", "interrupted",
};

static bool state_is_final(const char *state)
{
	return strcmp(state, "queued") != 0 && strcmp(state, "running") != 0;
}

/* Progress of a run that is not active, derived from its stored probes. */
static json_t *stored_progress(json_t *run)
{
	json_t *probes = json_object_get(run, "probes"), *p;
	json_int_t done = 0;
	size_t i;

	json_array_foreach(probes, i, p)
	{
		const char *st = json_string_value(json_object_get(p, "state"));

		done += st && state_is_final(st);
	}
	return json_pack("{s:I, s:I, s:n, s:n}", "probes_done", done, "probes_total",
	                 (json_int_t)json_array_size(probes), "current", "eta_s");
}

/* The run resource: stored state + live progress + links. */
static int load_run(struct api_app *app, int64_t id, json_t **ret_run)
{
	json_t *run, *progress = NULL, *links;
	char self[48], buf[80];
	int r = store_run_get(app->store, id, &run);

	if (r < 0)
		return r;
	if (sched_progress(app->sched, id, &progress) < 0)
		progress = stored_progress(run);
	snprintf(self, sizeof(self), "/v1/runs/%lld", (long long)id);
	links = json_pack("{s:s}", "self", self);
	snprintf(buf, sizeof(buf), "%s/report", self);
	json_object_set_new(links, "report", json_string(buf));
	snprintf(buf, sizeof(buf), "%s/events", self);
	json_object_set_new(links, "events", json_string(buf));
	json_object_set_new(run, "progress", progress ? progress : json_null());
	json_object_set_new(run, "links", links ? links : json_null());
	*ret_run = run;
	return 0;
}

static void reply_run(struct api_req *req, unsigned status, int64_t id)
{
	json_t *run;
	int r = load_run(api_req_app(req), id, &run);
	char what[48];

	if (r < 0) {
		snprintf(what, sizeof(what), "run %lld", (long long)id);
		api_problem_errno(req, r, what);
		return;
	}
	api_reply_json(req, status, run);
}

static int spec_format_of(const char *ct, enum spec_format *ret)
{
	static const struct {
		const char *type;
		enum spec_format fmt;
	} types[] = {
	        {"application/yaml", SPEC_FORMAT_YAML}, {"application/x-yaml", SPEC_FORMAT_YAML},
	        {"text/yaml", SPEC_FORMAT_YAML},        {"text/x-yaml", SPEC_FORMAT_YAML},
	        {"application/json", SPEC_FORMAT_JSON},
	};
	size_t n;

	if (!ct)
		return -EINVAL;
	n = strcspn(ct, "; \t");
	for (size_t i = 0; i < RD_ARRAY_SIZE(types); i++) {
		if (strlen(types[i].type) == n && strncasecmp(ct, types[i].type, n) == 0) {
			*ret = types[i].fmt;
			return 0;
		}
	}
	return -EINVAL;
}

static void problem_spec(struct api_req *req, int r, const struct spec_error *err)
{
	json_t *e;

	if (r == -E2BIG) {
		api_problem(req, 413, NULL, "the spec is larger than %d bytes", SPEC_MAX_BYTES);
		return;
	}
	if (r == -ENOMEM) {
		api_problem_errno(req, r, "spec");
		return;
	}
	e = json_pack("{s:s, s:s}", "path", err->path, "message", err->message);
	if (e && err->line > 0)
		json_object_set_new(e, "line", json_integer(err->line));
	if (err->path[0])
		api_problem(req, 422, json_pack("{s:[o]}", "errors", e), "%s: %s", err->path,
		            err->message);
	else
		api_problem(req, 400, json_pack("{s:[o]}", "errors", e), "%s%s%.0d: %s",
		            err->line > 0 ? "spec syntax error at line " : "spec", "", err->line,
		            err->message);
}

static bool valid_idempotency_key(const char *k)
{
	size_t n = strlen(k);

	if (n == 0 || n > IDEMPOTENCY_KEY_MAX)
		return false;
	for (; *k; k++)
		if (*k < 0x21 || *k > 0x7e)
			return false;
	return true;
}

static void post_runs(struct api_req *req)
{
	struct api_app *app = api_req_app(req);
	const char *key = api_req_header(req, "Idempotency-Key");
	enum spec_format fmt;
	struct spec_error err = {0};
	struct spec *spec;
	char loc[48];
	bool existing;
	int64_t id;
	size_t len;
	const char *body = api_req_body(req, &len);
	int r;

	if (spec_format_of(api_req_header(req, "Content-Type"), &fmt) < 0) {
		api_problem(req, 415, NULL,
		            "send the spec with Content-Type application/yaml or application/json");
		return;
	}
	if (key && !valid_idempotency_key(key)) {
		api_problem(
		        req, 400, NULL,
		        "Idempotency-Key must be 1-%d printable ASCII characters without spaces",
		        IDEMPOTENCY_KEY_MAX);
		return;
	}
	r = spec_parse(body, len, fmt, &spec, &err);
	if (r < 0) {
		problem_spec(req, r, &err);
		return;
	}
	r = sched_submit(app->sched, spec, NULL, key, &id, &existing);
	if (r < 0) {
		api_problem_errno(req, r, "cannot queue the run");
		return;
	}
	snprintf(loc, sizeof(loc), "/v1/runs/%lld", (long long)id);
	api_reply_header(req, "Location", loc);
	reply_run(req, existing ? 200 : 201, id);
}

static bool valid_state(const char *s)
{
	for (size_t i = 0; i < RD_ARRAY_SIZE(run_states); i++)
		if (strcmp(s, run_states[i]) == 0)
			return true;
	return false;
}

/* An empty query parameter means "not given". */
static const char *query(struct api_req *req, const char *key)
{
	const char *v = api_req_query(req, key);

	return v && *v ? v : NULL;
}

static void get_runs(struct api_req *req)
{
	struct store_filter f = {
	        .service = query(req, "service"),
	        .environment = query(req, "environment"),
	        .state = query(req, "state"),
	        .cursor = query(req, "cursor"),
	        .limit = LIST_DEFAULT_LIMIT,
	};
	const char *limit = query(req, "limit");
	char *next = NULL;
	json_t *items;
	int64_t n;
	int r;

	if (limit && rd_parse_int64(limit, 1, 1000, &n) < 0) {
		api_problem(req, 400, NULL, "limit must be an integer from 1 to 1000");
		return;
	}
	if (limit)
		f.limit = (int)n;
	if (f.state && !valid_state(f.state)) {
		api_problem(req, 400, NULL,
		            "state must be one of queued, running, passed, failed, error, "
		            "cancelled, interrupted");
		return;
	}
	r = store_runs_list(api_req_app(req)->store, &f, &items, &next);
	if (r == -EINVAL) {
		api_problem(req, 400, NULL, "cursor is not one this server returned");
		return;
	}
	if (r < 0) {
		api_problem_errno(req, r, "cannot list runs");
		return;
	}
	api_reply_json(req, 200, json_pack("{s:o, s:s?}", "items", items, "next_cursor", next));
	free(next);
}

/* A long-poll in progress: answered on the run's next change or at the
 * timeout, whichever comes first. */
struct wait {
	struct api_req *req;
	struct sched_watch *watch;
	uv_timer_t *timer;
	int64_t id;
};

static void on_timer_closed(uv_handle_t *h)
{
	free(h);
}

static void wait_cleanup(struct api_req *req, void *userdata)
{
	struct wait *w = userdata;

	sched_unwatch(w->watch);
	uv_timer_stop(w->timer);
	uv_close((uv_handle_t *)w->timer, on_timer_closed);
	free(w);
}

static void on_wait_timeout(uv_timer_t *t)
{
	struct wait *w = t->data;

	reply_run(w->req, 200, w->id); /* runs wait_cleanup */
}

static void on_run_changed(void *userdata, int64_t run_id, const char *state, bool final)
{
	struct wait *w = userdata;

	if (final)
		w->watch = NULL; /* the scheduler frees it after we return */
	reply_run(w->req, 200, run_id);
}

static void get_run(struct api_req *req)
{
	struct api_app *app = api_req_app(req);
	const char *wait_s = api_req_query(req, "wait");
	int64_t id = api_req_id(req), wait_ms;
	struct wait *w;
	json_t *run;
	int r = load_run(app, id, &run);

	if (r < 0 || !wait_s || state_is_final(json_string_value(json_object_get(run, "state")))) {
		if (r < 0)
			reply_run(req, 200, id);
		else
			api_reply_json(req, 200, run);
		return;
	}
	json_decref(run);
	if (rd_parse_duration(wait_s, &wait_ms) < 0 || wait_ms > API_MAX_WAIT_MS) {
		api_problem(req, 400, NULL, "wait must be a duration up to 120s, e.g. wait=30s");
		return;
	}
	w = calloc(1, sizeof(*w));
	if (w)
		w->timer = malloc(sizeof(*w->timer));
	if (!w || !w->timer || sched_watch(app->sched, id, on_run_changed, w, &w->watch) < 0) {
		/* Out of memory, or the run ended meanwhile: answer now. */
		if (w)
			free(w->timer);
		free(w);
		reply_run(req, 200, id);
		return;
	}
	w->req = req;
	w->id = id;
	uv_timer_init(api_req_loop(req), w->timer);
	w->timer->data = w;
	uv_timer_start(w->timer, on_wait_timeout, (uint64_t)wait_ms, 0);
	api_req_suspend(req, wait_cleanup, w);
}

static void post_cancel(struct api_req *req)
{
	struct api_app *app = api_req_app(req);
	int64_t id = api_req_id(req);
	json_t *run;
	int r = sched_cancel(app->sched, id);

	if (r == 0) {
		reply_run(req, 202, id);
		return;
	}
	r = store_run_get(app->store, id, &run);
	if (r < 0) {
		reply_run(req, 200, id); /* 404 or the store's error */
		return;
	}
	api_problem(req, 409, NULL, "run %lld already ended (%s); nothing to cancel", (long long)id,
	            json_string_value(json_object_get(run, "state")));
	json_decref(run);
}

static void get_report(struct api_req *req)
{
	struct api_app *app = api_req_app(req);
	const char *format = api_req_query(req, "format");
	int64_t id = api_req_id(req);
	json_t *run, *spec = NULL, *rep;
	int r;

	if (format && strcmp(format, "json") != 0) {
		api_problem(req, 400, NULL, "format must be json");
		return;
	}
	r = load_run(app, id, &run);
	if (r < 0) {
		reply_run(req, 200, id);
		return;
	}
	if (store_run_spec(app->store, id, &spec) < 0)
		spec = NULL;
	rep = report_json(run, spec);
	json_decref(run);
	json_decref(spec);
	if (!rep) {
		api_problem_errno(req, -ENOMEM, "report");
		return;
	}
	api_reply_json(req, 200, rep);
}

const struct api_route api_routes_runs[] = {
        {"POST", "/v1/runs", post_runs},
        {"GET", "/v1/runs", get_runs},
        {"GET", "/v1/runs/{id}", get_run},
        {"POST", "/v1/runs/{id}/cancel", post_cancel},
        {"GET", "/v1/runs/{id}/report", get_report},
        {NULL, NULL, NULL},
};
