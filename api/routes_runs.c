/* routes_runs: the run resource: submit, list, read (with long-poll),
 * cancel, report. Reads come from the store (every transition is stored
 * before it is announced), live progress from the scheduler; runs this
 * node's scheduler does not hold (ended, or executed by another node) and
 * their reports are read and rendered off the loop and kept
 * (api/offload.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "respcache.h"
#include "lib/policy/policy.h"
#include "lib/report/report.h"
#include "lib/spec/spec.h"
#include "lib/util/run_state.h"
#include "lib/util/util.h"
#include "lib/util/json_text.h"

#define LIST_DEFAULT_LIMIT  50
#define IDEMPOTENCY_KEY_MAX API_KEY_MAX

/* Progress of a run that is not active, derived from its stored probes. */
static json_t *stored_progress(json_t *run)
{
	json_t *probes = json_object_get(run, "probes"), *p;
	json_int_t done = 0;
	size_t i;

	json_array_foreach (probes, i, p) {
		const char *st = json_string_value(json_object_get(p, "state"));

		done += run_state_string_is_final(st);
	}
	return json_pack("{s:I, s:I, s:n, s:n}", "probes_done", done, "probes_total",
	                 (json_int_t)json_array_size(probes), "current", "eta_s");
}

/* Adds progress (stolen; NULL: derived from the stored probes), links
 * and the reconciliation to stored run id: the run resource. */
static void decorate_run(json_t *run, int64_t id, json_t *progress)
{
	json_t *links, *recon;
	char self[48], buf[80];

	if (!progress)
		progress = stored_progress(run);
	snprintf(self, sizeof(self), "/v1/runs/%lld", (long long)id);
	links = json_pack("{s:s}", "self", self);
	snprintf(buf, sizeof(buf), "%s/report", self);
	json_object_set_new(links, "report", json_string(buf));
	snprintf(buf, sizeof(buf), "%s/events", self);
	json_object_set_new(links, "events", json_string(buf));
	json_object_set_new(run, "progress", progress ? progress : json_null());
	json_object_set_new(run, "links", links ? links : json_null());
	recon = report_reconciliation(run);
	json_object_set_new(run, "reconciliation", recon ? recon : json_array());
}

/* The run resource: stored state + live progress + links. */
static int load_run(struct api_app *app, int64_t id, json_t **ret_run)
{
	json_t *run, *progress = NULL;
	int r = store_run_get(app->store, id, &run);

	if (r < 0)
		return r;
	if (sched_progress(app->sched, id, &progress) < 0)
		progress = NULL;
	decorate_run(run, id, progress);
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

int api_spec_format(const char *ct, enum spec_format *ret)
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

void api_problem_spec(struct api_req *req, int r, const struct spec_error *err)
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
	if (err->syntax)
		api_problem(req, 400, json_pack("{s:[o]}", "errors", e),
		            "the spec does not parse%s%.0d: %s", err->line > 0 ? " at line " : "",
		            err->line, err->message);
	else
		api_problem(req, 422, json_pack("{s:[o]}", "errors", e), "%s: %s",
		            err->path[0] ? err->path : "spec", err->message);
}

bool api_idempotency_key_ok(const char *k)
{
	size_t n = strlen(k);

	if (n == 0 || n > IDEMPOTENCY_KEY_MAX)
		return false;
	for (; *k; k++)
		if (*k < 0x21 || *k > 0x7e)
			return false;
	return true;
}

int api_idempotency_key_check(struct api_req *req, const char *key)
{
	static const char *const reserved[] = {"flagger:", "argo:"};

	if (!key)
		return 0;
	if (!api_idempotency_key_ok(key)) {
		api_problem(
		        req, 400, NULL,
		        "Idempotency-Key must be 1-%d printable ASCII characters without spaces",
		        IDEMPOTENCY_KEY_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (strncmp(key, reserved[i], strlen(reserved[i])) == 0) {
			api_problem(req, 422,
			            json_pack("{s:[{s:s, s:s}]}", "errors", "path",
			                      "Idempotency-Key", "message",
			                      "the prefixes flagger: and argo: are reserved for "
			                      "the deployment hooks"),
			            "Idempotency-Key: the prefix %s is reserved for the %.*s hook",
			            reserved[i], (int)strlen(reserved[i]) - 1, reserved[i]);
			return -EINVAL;
		}
	return 0;
}

/* Whether the caller's token may see run id (its service in scope). */
static bool sees_run(struct api_req *req, int64_t id)
{
	char service[256];

	if (!api_req_scope(req))
		return true;
	return store_run_service(api_req_app(req)->store, id, service, sizeof(service)) == 0 &&
	       api_req_sees(req, service);
}

/* While the store cannot keep a new run (disk full, database file gone),
 * submits are refused with the reason; a retry of an accepted submission
 * is still answered. True when req was answered. */
static bool refuse_degraded(struct api_req *req, const char *service, const char *key)
{
	struct api_app *app = api_req_app(req);
	char why[512];
	int64_t id;
	int e = api_store_problem(app, why, sizeof(why));

	if (e == 0 || (key && store_run_find_by_key(app->store, service, key, NULL, &id) == 0))
		return false;
	api_reply_header(req, "Retry-After", "30");
	if (e == -ENOSPC)
		api_problem(req, 507, NULL, "cannot queue the run: the database is full: %s", why);
	else
		api_problem(req, 503, NULL, "cannot queue the run: %s", why);
	return true;
}

/* What to do once the run is queued: NULL answers with the run resource
 * (201, or 200 for a retry), as POST /v1/runs. */
struct submit_then {
	api_submitted_cb cb;
	void *userdata;
};

/* Queues spec (stolen) as a run submitted by the caller's token. */
static void submit(struct api_req *req, struct spec *spec, const char *key,
                   const struct submit_then *then)
{
	struct api_app *app = api_req_app(req);
	char loc[48], service[129]; /* spec.h: [A-Za-z0-9._-]{1,128} */
	bool existing;
	int64_t id;
	int r;

	if (refuse_degraded(req, spec->service, key)) {
		spec_free(spec);
		return;
	}
	snprintf(service, sizeof(service), "%s", spec->service);
	r = sched_submit(app->sched, spec, api_req_principal(req), key, &id, &existing);
	if (r == -EEXIST) {
		api_problem(
		        req, 409, NULL,
		        "Idempotency-Key '%s' was already used for service '%s' with a different "
		        "spec; resend the same spec to get that run, or use a new key",
		        key, service);
		return;
	}
	if (r < 0) {
		api_problem_errno(req, r, "cannot queue the run");
		return;
	}
	if (existing && !sees_run(req, id)) {
		api_problem(req, 409, NULL, "this Idempotency-Key is taken; use another");
		return;
	}
	if (then->cb) {
		then->cb(req, then->userdata, id, existing);
		return;
	}
	snprintf(loc, sizeof(loc), "/v1/runs/%lld", (long long)id);
	api_reply_header(req, "Location", loc);
	reply_run(req, existing ? 200 : 201, id);
}

/* A submission waiting for the allowlist check of its URLs (names are
 * resolved off the loop, lib/policy/policy.h). */
struct pending_submit {
	struct api_req *req;
	struct spec *spec;
	char *key;
	struct policy_check *check;
	struct submit_then then;
	bool starting, have_result; /* the check may answer before it returns */
	int err;
	struct spec_error se;
};

static void pending_cleanup(struct api_req *req, void *userdata)
{
	struct pending_submit *ps = userdata;

	if (ps->check)
		policy_check_cancel(ps->check);
	spec_free(ps->spec);
	free(ps->key);
	free(ps);
}

/* Answers the submission; a suspended request's reply runs
 * pending_cleanup, which frees ps. */
static void pending_answer(struct pending_submit *ps)
{
	struct spec *spec = ps->spec;

	if (ps->err == 0) {
		ps->spec = NULL;
		submit(ps->req, spec, ps->key, &ps->then);
	} else if (ps->err != -EPERM) {
		api_problem_errno(ps->req, ps->err, "cannot check the spec's targets");
	} else {
		api_problem_spec(ps->req, -EINVAL, &ps->se);
	}
}

static void on_targets_checked(void *userdata, int err, const char *path, const char *message)
{
	struct pending_submit *ps = userdata;

	ps->check = NULL;
	ps->err = err;
	snprintf(ps->se.path, sizeof(ps->se.path), "%s", path);
	snprintf(ps->se.message, sizeof(ps->se.message), "%s", message);
	if (ps->starting) {
		ps->have_result = true; /* answered by check_targets, not suspended */
		return;
	}
	/* The request stays suspended but no longer for ps: the answer may
	 * suspend it again for its own reasons (a hook waiting for the run). */
	api_req_suspend(ps->req, NULL, NULL);
	pending_answer(ps);
	pending_cleanup(ps->req, ps);
}

static void check_targets(struct api_req *req, struct spec *spec, const char *key,
                          const struct submit_then *then)
{
	struct api_app *app = api_req_app(req);
	struct pending_submit *ps = calloc(1, sizeof(*ps));

	if (!ps || (key && !(ps->key = strdup(key)))) {
		free(ps);
		spec_free(spec);
		api_problem_errno(req, -ENOMEM, "spec");
		return;
	}
	ps->req = req;
	ps->spec = spec;
	ps->then = *then;
	ps->starting = true;
	if (policy_check_spec(api_req_loop(req), app->policy, spec, on_targets_checked, ps,
	                      &ps->check) < 0) {
		ps->have_result = true;
		ps->err = -ENOMEM;
		ps->check = NULL;
	}
	ps->starting = false;
	if (!ps->have_result) {
		api_req_suspend(req, pending_cleanup, ps);
		return;
	}
	pending_answer(ps);
	pending_cleanup(req, ps);
}

static void post_runs(struct api_req *req)
{
	struct api_app *app = api_req_app(req);
	const char *key = api_req_header(req, "Idempotency-Key");
	enum spec_format fmt;
	struct spec_error err = {0};
	struct spec *spec;
	size_t len;
	const char *body = api_req_body(req, &len);
	int r;

	if (api_spec_format(api_req_header(req, "Content-Type"), &fmt) < 0) {
		api_problem(req, 415, NULL,
		            "send the spec with Content-Type application/yaml or application/json");
		return;
	}
	if (api_idempotency_key_check(req, key) < 0)
		return;
	if (app->limits && app->limits->max_spec_bytes &&
	    (int64_t)len > app->limits->max_spec_bytes) {
		api_problem(req, 413, NULL,
		            "the spec is larger than this server's limit of %lld bytes",
		            (long long)app->limits->max_spec_bytes);
		return;
	}
	r = spec_parse(body, len, fmt, &spec, &err);
	if (r < 0) {
		api_problem_spec(req, r, &err);
		return;
	}
	if (!api_req_sees(req, spec->service)) {
		api_problem(req, 403,
		            json_pack("{s:[{s:s, s:s}]}", "errors", "path", "service", "message",
		                      "not a service this token may submit for"),
		            "service: this token may not submit runs for '%s'", spec->service);
		spec_free(spec);
		return;
	}
	api_submit_spec(req, spec, key, NULL, NULL);
}

/* A load from several nodes needs several nodes on one database: a
 * store only this process uses (SQLite) cannot run it, and says so at
 * submit rather than when the probe starts. */
static int check_nodes(struct api_app *app, const struct spec *spec, struct spec_error *err)
{
	if (store_shared(app->store))
		return 0;
	for (size_t i = 0; i < spec->n_probes; i++) {
		if (spec->probes[i].nodes <= 1)
			continue;
		snprintf(err->path, sizeof(err->path), "probes[%zu].nodes", i);
		snprintf(err->message, sizeof(err->message),
		         "%lld nodes need several readyd nodes on one PostgreSQL database "
		         "(docs/scale-out.md); this readyd's database is SQLite, one node: give "
		         "nodes: 1 or leave it out",
		         (long long)spec->probes[i].nodes);
		return -EINVAL;
	}
	return 0;
}

void api_submit_spec(struct api_req *req, struct spec *spec, const char *key, api_submitted_cb cb,
                     void *userdata)
{
	struct api_app *app = api_req_app(req);
	struct submit_then then = {cb, userdata};
	struct spec_error err = {0};

	if ((app->limits && policy_check_limits(app->limits, spec, &err) < 0) ||
	    check_nodes(app, spec, &err) < 0) {
		spec_free(spec);
		api_problem_spec(req, -EINVAL, &err);
		return;
	}
	if (app->policy) {
		check_targets(req, spec, key, &then); /* submits once every URL is allowed */
		return;
	}
	submit(req, spec, key, &then);
}

static bool valid_state(const char *s)
{
	enum run_state st;

	return run_state_from_string(s, &st) == 0;
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
	        .scope = api_req_scope(req),
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

/* On a worker, with its reader: a run the scheduler does not hold, so
 * everything it shows is stored. */
static int run_read(struct store *reader, void *arg, json_t **ret, char *err, size_t errlen)
{
	int64_t id = *(int64_t *)arg;
	json_t *run;
	int r = store_run_get(reader, id, &run);

	if (r < 0) {
		snprintf(err, errlen, "%s", store_errmsg(reader));
		return r;
	}
	decorate_run(run, id, NULL);
	*ret = run;
	return 0;
}

/* A run only its store can change (this scheduler does not hold it) is
 * read on a worker and its bytes kept under the store's generation, with
 * an ETag: a pipeline or dashboard polling it costs the loop a lookup,
 * whatever a load probe beside it is doing. */
static bool reply_stored_run(struct api_req *req, int64_t id)
{
	struct api_app *app = api_req_app(req);
	json_t *progress = NULL;
	int64_t *arg;
	char key[48], what[48];

	if (sched_progress(app->sched, id, &progress) == 0) {
		json_decref(progress);
		return false;
	}
	snprintf(key, sizeof(key), "run\n%lld", (long long)id);
	if (api_reply_kept(req, key))
		return true;
	arg = malloc(sizeof(*arg));
	if (!arg)
		return false;
	*arg = id;
	snprintf(what, sizeof(what), "run %lld", (long long)id);
	api_read_off_loop(req, key, what, run_read, arg, free);
	return true;
}

static void get_run(struct api_req *req)
{
	struct api_app *app = api_req_app(req);
	const char *wait_s = api_req_query(req, "wait");
	int64_t id = api_req_id(req), wait_ms;
	struct wait *w;
	json_t *run;
	int r;

	/* tests/bad-input: a bad ?wait= is a 400 whatever the run's
	 * state; it used to be ignored (200) once the run had ended. */
	if (wait_s && (rd_parse_duration(wait_s, &wait_ms) < 0 || wait_ms > API_MAX_WAIT_MS)) {
		api_problem(req, 400, NULL, "wait must be a duration up to 120s, e.g. wait=30s");
		return;
	}
	if (!wait_s && reply_stored_run(req, id))
		return;
	r = load_run(app, id, &run);
	if (r < 0 || !wait_s ||
	    run_state_string_is_final(json_string_value(json_object_get(run, "state")))) {
		if (r < 0)
			reply_run(req, 200, id);
		else
			api_reply_json(req, 200, run);
		return;
	}
	json_decref(run);
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

#define CANCEL_REASON_MAX 1024

/* The optional {"reason": "..."} of a cancel, for the audit trail, read
 * before anything is cancelled: a reason that cannot be recorded whole
 * (not a string, empty, over 1024 bytes) is refused, never cut or
 * dropped. 0 with *ret_reason NULL when none was given; -EINVAL after
 * replying. *ret_doc owns the reason. */
static int cancel_reason(struct api_req *req, json_t **ret_doc, const char **ret_reason)
{
	size_t len;
	const char *body = api_req_body(req, &len);
	json_t *doc = len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL) : NULL, *r;

	*ret_doc = doc;
	*ret_reason = NULL;
	if (len == 0)
		return 0;
	if (!json_is_object(doc)) {
		api_problem(req, 400, NULL, "the body must be a JSON object: {reason?}");
		return -EINVAL;
	}
	r = json_object_get(doc, "reason");
	if (!r)
		return 0;
	if (!json_is_string(r) || json_string_length(r) == 0 ||
	    json_string_length(r) > CANCEL_REASON_MAX) {
		api_problem(req, 422,
		            json_pack("{s:[{s:s, s:s}]}", "errors", "path", "reason", "message",
		                      "must be a string of 1 to 1024 bytes"),
		            "reason: must be a string of 1 to 1024 bytes");
		return -EINVAL;
	}
	*ret_reason = json_string_value(r);
	return 0;
}

static void post_cancel(struct api_req *req)
{
	struct api_app *app = api_req_app(req);
	int64_t id = api_req_id(req);
	const char *reason;
	json_t *run, *doc;
	int r = cancel_reason(req, &doc, &reason);

	if (r < 0) {
		json_decref(doc);
		return;
	}
	r = sched_cancel(app->sched, id);
	if (r == 0) {
		api_audit(req, "cancel", NULL, id, 0, reason);
		json_decref(doc);
		reply_run(req, 202, id);
		return;
	}
	json_decref(doc);
	if (r == -EALREADY) {
		api_problem(req, 409, NULL,
		            "run %lld already ended; its result waits for the database to take "
		            "it; nothing to cancel",
		            (long long)id);
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

/* Report formats: the ?format= names, and the media types Accept may ask
 * for (first listed is the Content-Type we answer with). */
enum report_format { REPORT_JSON, REPORT_MARKDOWN, REPORT_HTML, REPORT_JUNIT };

static const struct {
	const char *name, *alias;
	enum report_format fmt;
	const char *content_type;
	const char *media[3];
} report_formats[] = {
        /* clang-format off */
        {"json", NULL, REPORT_JSON, "application/json", {"application/json", NULL, NULL}},
        {"markdown", "md", REPORT_MARKDOWN, "text/markdown; charset=utf-8",
         {"text/markdown", "text/x-markdown", NULL}},
        {"html", NULL, REPORT_HTML, "text/html; charset=utf-8", {"text/html", NULL, NULL}},
        {"junit", NULL, REPORT_JUNIT, "application/xml; charset=utf-8",
         {"application/xml", "application/junit+xml", "text/xml"}},
        /* clang-format on */
};

#define REPORT_TRENDS_MAX   8  /* gated metrics with a sparkline */
#define REPORT_TREND_POINTS 30 /* runs per sparkline */

static int report_format_by_name(const char *s)
{
	for (size_t i = 0; i < RD_ARRAY_SIZE(report_formats); i++)
		if (strcmp(s, report_formats[i].name) == 0 ||
		    (report_formats[i].alias && strcmp(s, report_formats[i].alias) == 0))
			return (int)i;
	return -1;
}

/* One media range of Accept ("text/html;q=0.9") -> format index, -1 for
 * none; wildcards pick JSON (the complete report); *ret_q its weight. */
static int report_format_by_media(const char *range, size_t len, double *ret_q)
{
	char type[64];
	const char *semi = memchr(range, ';', len), *q;
	size_t tl = semi ? (size_t)(semi - range) : len;

	*ret_q = 1;
	/* strtod, not rd_parse_double: the number ends at ',' or ';'. */
	if (semi && (q = strstr(semi, "q=")) && q < range + len)
		*ret_q = strtod(q + 2, NULL);
	while (tl > 0 && range[tl - 1] == ' ')
		tl--;
	if (tl >= sizeof(type))
		return -1;
	memcpy(type, range, tl);
	type[tl] = '\0';
	if (strcmp(type, "*/*") == 0 || strcasecmp(type, "application/*") == 0)
		return 0;
	if (strcasecmp(type, "text/*") == 0)
		return 1;
	for (size_t i = 0; i < RD_ARRAY_SIZE(report_formats); i++)
		for (size_t m = 0; m < 3 && report_formats[i].media[m]; m++)
			if (strcasecmp(type, report_formats[i].media[m]) == 0)
				return (int)i;
	return -1;
}

/* The best format Accept allows (highest q, then first listed); JSON
 * without Accept; -1 when nothing acceptable is on offer. */
static int report_format_by_accept(const char *accept)
{
	int best = -1;
	double best_q = 0;

	if (!accept || !*accept)
		return 0;
	while (*accept) {
		size_t len = strcspn(accept, ",");
		double q;
		int f;

		while (len > 0 && *accept == ' ')
			accept++, len--;
		f = report_format_by_media(accept, len, &q);
		if (f >= 0 && q > best_q)
			best = f, best_q = q;
		accept += len;
		if (*accept == ',')
			accept++;
	}
	return best;
}

/* Sparkline data for the HTML report: the last runs' values of each
 * metric the run gates on, same service and environment, up to and
 * including this run (a report shows what was true of its own run, also
 * when read later; store_trend leaves undecided runs out). Best effort: a
 * failing query leaves that metric out, never the report. */
json_t *api_report_trends(struct store *st, json_t *run)
{
	json_t *out = json_array(), *g;
	size_t i;

	json_array_foreach (json_object_get(run, "gates"), i, g) {
		const char *metric = json_string_value(json_object_get(g, "metric"));
		const char *dot = metric ? strchr(metric, '.') : NULL;
		char probe[128];
		struct store_trend_query q = {
		        .service = json_string_value(json_object_get(run, "service")),
		        .environment = json_string_value(json_object_get(run, "environment")),
		        .since_ms = 0,
		        .until_ms = INT64_MAX,
		        .limit = REPORT_TREND_POINTS,
		        .until_run = json_integer_value(json_object_get(run, "id")),
		};
		json_t *points, *dup = NULL;
		bool truncated;
		size_t k;

		if (!out || json_array_size(out) >= REPORT_TRENDS_MAX)
			break;
		if (!dot || (size_t)(dot - metric) >= sizeof(probe))
			continue;
		json_array_foreach (out, k, dup) {
			if (strcmp(json_string_value(json_object_get(dup, "metric")), metric) == 0)
				break;
		}
		if (k < json_array_size(out))
			continue;
		memcpy(probe, metric, (size_t)(dot - metric));
		probe[dot - metric] = '\0';
		q.probe = probe;
		q.metric = dot + 1;
		if (store_trend(st, &q, &points, &truncated) < 0)
			continue;
		json_array_append_new(out,
		                      json_pack("{s:s, s:o}", "metric", metric, "points", points));
	}
	return out;
}

static char *render_report(struct store *st, enum report_format fmt, json_t *run, json_t *spec,
                           size_t *ret_len)
{
	json_t *trends, *rep;
	char *text = NULL;

	switch (fmt) {
	case REPORT_MARKDOWN:
		return report_markdown(run, spec, ret_len);
	case REPORT_JUNIT:
		return report_junit(run, spec, ret_len);
	case REPORT_HTML:
		trends = api_report_trends(st, run);
		text = report_html(run, spec, trends, ret_len);
		json_decref(trends);
		return text;
	case REPORT_JSON:
	default:
		rep = report_json(run, spec);
		text = rep ? rd_json_dumps(rep, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
		json_decref(rep);
		if (text)
			*ret_len = strlen(text);
		return text;
	}
}

/* The report of run (borrowed, decorated) in report_formats[f], read
 * from st: a new body with its Content-Type, NULL on ENOMEM. */
static struct api_body *report_body(struct store *st, int64_t id, int f, json_t *run)
{
	json_t *spec = NULL;
	struct api_body *b = NULL;
	size_t len = 0;
	char *text;

	if (store_run_spec(st, id, &spec) < 0)
		spec = NULL;
	text = render_report(st, report_formats[f].fmt, run, spec, &len);
	json_decref(spec);
	if (text)
		b = api_body_new(text, len);
	free(text);
	if (b)
		b->content_type = report_formats[f].content_type;
	return b;
}

struct report_job {
	int64_t id;
	int format; /* index into report_formats */
};

/* On a worker, with its reader: the report of a run the scheduler no
 * longer holds, so everything it shows is stored. */
static int report_read(struct store *reader, void *arg, struct api_body **ret, char *err,
                       size_t errlen)
{
	struct report_job *j = arg;
	json_t *run;
	int r = store_run_get(reader, j->id, &run);

	if (r < 0) {
		snprintf(err, errlen, "%s", store_errmsg(reader));
		return r;
	}
	decorate_run(run, j->id, NULL);
	*ret = report_body(reader, j->id, j->format, run);
	json_decref(run);
	return *ret ? 0 : -ENOMEM;
}

/* Which report format the request asks for; -1 after answering. */
static int report_format_of(struct api_req *req)
{
	const char *format = api_req_query(req, "format");
	int f = format ? report_format_by_name(format)
	               : report_format_by_accept(api_req_header(req, "Accept"));

	if (f < 0 && format)
		api_problem(req, 400, NULL,
		            "format must be one of json, markdown (or md), html, junit");
	else if (f < 0)
		api_problem(
		        req, 406, NULL,
		        "cannot answer with what Accept asks for; reports are application/json, "
		        "text/markdown, text/html or application/xml (JUnit); or use ?format=");
	return f;
}

/* A run the scheduler still holds (queued, running, or an end waiting
 * for the store) shows live progress: rendered here, on the loop, and
 * never kept. */
static void reply_live_report(struct api_req *req, int64_t id, int f)
{
	struct api_app *app = api_req_app(req);
	struct api_body *b;
	json_t *run;
	int r = load_run(app, id, &run);

	if (r < 0) {
		reply_run(req, 200, id);
		return;
	}
	b = report_body(app->store, id, f, run);
	json_decref(run);
	if (!b) {
		api_problem_errno(req, -ENOMEM, "report");
		return;
	}
	api_reply_header(req, "Vary", "Accept");
	api_reply_text(req, 200, b->content_type, b->data, b->len);
	api_body_unref(b);
}

/* A report of an ended run only changes with what is stored (an
 * invalidation, a rejudgement, the trends it draws): it is rendered on a
 * worker with the worker's reader, so a big one (long load timelines)
 * does not hold up the loop, and its bytes are kept under the store's
 * generation with an ETag, as the other polled answers. */
static void get_report(struct api_req *req)
{
	struct api_app *app = api_req_app(req);
	int64_t id = api_req_id(req);
	struct report_job *j;
	json_t *progress = NULL;
	char key[64], what[48];
	int f = report_format_of(req);

	if (f < 0)
		return;
	if (sched_progress(app->sched, id, &progress) == 0) {
		json_decref(progress);
		reply_live_report(req, id, f);
		return;
	}
	snprintf(key, sizeof(key), "report\n%lld\n%s", (long long)id, report_formats[f].name);
	api_reply_header(req, "Vary", "Accept");
	if (api_reply_kept(req, key))
		return;
	j = malloc(sizeof(*j));
	if (!j) {
		api_problem_errno(req, -ENOMEM, "report");
		return;
	}
	*j = (struct report_job){id, f};
	snprintf(what, sizeof(what), "run %lld", (long long)id);
	api_body_off_loop(req, key, what, report_read, NULL, j, free);
}

const struct api_route api_routes_runs[] = {
        {"POST", "/v1/runs", post_runs, API_ROLE_SUBMITTER},
        {"GET", "/v1/runs", get_runs, API_ROLE_VIEWER},
        {"GET", "/v1/runs/{id}", get_run, API_ROLE_VIEWER},
        {"POST", "/v1/runs/{id}/cancel", post_cancel, API_ROLE_SUBMITTER},
        {"GET", "/v1/runs/{id}/report", get_report, API_ROLE_VIEWER},
        {NULL, NULL, NULL},
};
