/* routes_hooks: the shapes CD tools call readyd in. Both start a run of a
 * service's stored spec on their first call (routes_specs.c), find it
 * again on every later call through an Idempotency-Key derived from what
 * the tool sends, and answer from that run, waiting a bounded while for
 * it to end:
 *
 *  - POST /v1/hooks/flagger: Flagger's webhook payload {name, namespace,
 *    phase, checksum, metadata}. Flagger reads only the status: 200 on
 *    PASS; 412 on FAIL; 502 on ERROR (or a run that ended without a
 *    verdict); 503 with Retry-After while the run is queued or running,
 *    so Flagger calls again. Flagger cannot send headers, so the token
 *    may come as ?token= (docs/security.md).
 *  - GET /v1/services/{svc}/gate: for Argo Rollouts' web metric provider,
 *    always 200 with {verdict: PENDING|RUNNING|PASS|FAIL|ERROR, ...} for
 *    an AnalysisTemplate's successCondition and failureCondition.
 *
 * docs/integrations/ shows both configured. Never judges: the verdict is
 * the run's, read from the store.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "lib/util/run_state.h"
#include "lib/util/util.h"

#define HOOK_MAX_WAIT_MS     (55 * 1000) /* under Flagger's and Argo's timeouts */
#define FLAGGER_DEFAULT_WAIT (5 * 1000)
#define FLAGGER_CHECKSUM_MAX 64
#define FLAGGER_RETRY_AFTER  "10"
#define HOOK_VERSION_MAX     128

enum hook_kind { HOOK_FLAGGER, HOOK_ARGO };

static const enum hook_kind kind_flagger = HOOK_FLAGGER, kind_argo = HOOK_ARGO;

static void problem_field(struct api_req *req, unsigned status, const char *path,
                          const char *message)
{
	api_problem(req, status,
	            json_pack("{s:[{s:s, s:s}]}", "errors", "path", path, "message", message),
	            "%s: %s", path, message);
}

static bool name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	return n > 0 && n <= API_NAME_MAX &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* ?wait= as ms (default def); -EINVAL answered 400. */
static int hook_wait(struct api_req *req, int64_t def, int64_t *ret_ms)
{
	const char *w = api_req_query(req, "wait");

	*ret_ms = def;
	if (!w || !*w)
		return 0;
	if (rd_parse_duration(w, ret_ms) == 0 && *ret_ms <= HOOK_MAX_WAIT_MS)
		return 0;
	problem_field(req, 400, "wait", "must be a duration up to 55s, e.g. wait=20s");
	return -EINVAL;
}

/* The word a tool reads: the verdict of an ended run (ERROR for one that
 * ended without a verdict: cancelled, interrupted), PENDING while queued,
 * RUNNING while running. */
static const char *verdict_word(json_t *run)
{
	const char *state = json_string_value(json_object_get(run, "state"));
	const char *verdict = json_string_value(json_object_get(run, "verdict"));

	if (!run_state_string_is_final(state))
		return state && strcmp(state, "queued") == 0 ? "PENDING" : "RUNNING";
	return verdict ? verdict : "ERROR";
}

/* {verdict, state, run_id, service, environment, version, spec_version,
 * links}. Steals nothing; new reference. */
static json_t *gate_body(json_t *run)
{
	json_int_t id = json_integer_value(json_object_get(run, "id"));
	char self[48], report[64];

	snprintf(self, sizeof(self), "/v1/runs/%lld", (long long)id);
	snprintf(report, sizeof(report), "%s/report", self);
	return json_pack(
	        "{s:s, s:O, s:I, s:O, s:O, s:O, s:O, s:{s:s, s:s}}", "verdict", verdict_word(run),
	        "state", json_object_get(run, "state"), "run_id", id, "service",
	        json_object_get(run, "service"), "environment", json_object_get(run, "environment"),
	        "version", json_object_get(run, "version"), "spec_version",
	        json_object_get(run, "spec_version"), "links", "run", self, "report", report);
}

static void answer_flagger(struct api_req *req, json_t *body)
{
	const char *v = json_string_value(json_object_get(body, "verdict"));
	json_int_t id = json_integer_value(json_object_get(body, "run_id"));

	if (strcmp(v, "PASS") == 0) {
		api_reply_json(req, 200, body);
	} else if (strcmp(v, "FAIL") == 0) {
		api_problem(req, 412, body,
		            "run %lld failed its gates: the canary must not advance",
		            (long long)id);
	} else if (strcmp(v, "ERROR") == 0) {
		api_problem(req, 502, body,
		            "run %lld ended without a decision (ERROR): no data is never a pass",
		            (long long)id);
	} else {
		api_reply_header(req, "Retry-After", FLAGGER_RETRY_AFTER);
		api_problem(req, 503, body, "run %lld is %s; call again", (long long)id,
		            strcmp(v, "PENDING") == 0 ? "queued" : "running");
	}
}

static void hook_answer(struct api_req *req, enum hook_kind kind, int64_t run_id)
{
	json_t *run, *body;
	char what[48];
	int r = store_run_get(api_req_app(req)->store, run_id, &run);

	if (r < 0) {
		snprintf(what, sizeof(what), "run %lld", (long long)run_id);
		api_problem_errno(req, r, what);
		return;
	}
	body = gate_body(run);
	json_decref(run);
	if (!body)
		api_problem_errno(req, -ENOMEM, "answer");
	else if (kind == HOOK_ARGO)
		api_reply_json(req, 200, body);
	else
		answer_flagger(req, body);
}

/* A hook waiting for its run to end, at most wait_ms. */
struct hook_wait {
	struct api_req *req;
	enum hook_kind kind;
	int64_t run_id;
	struct sched_watch *watch;
	uv_timer_t *timer;
};

static void on_timer_closed(uv_handle_t *h)
{
	free(h);
}

static void wait_cleanup(struct api_req *req, void *userdata)
{
	struct hook_wait *w = userdata;

	sched_unwatch(w->watch);
	uv_timer_stop(w->timer);
	uv_close((uv_handle_t *)w->timer, on_timer_closed);
	free(w);
}

static void on_wait_timeout(uv_timer_t *t)
{
	struct hook_wait *w = t->data;

	hook_answer(w->req, w->kind, w->run_id); /* runs wait_cleanup */
}

static void on_run_changed(void *userdata, int64_t run_id, const char *state, bool final)
{
	struct hook_wait *w = userdata;

	if (!final)
		return;
	w->watch = NULL; /* the scheduler frees it after we return */
	hook_answer(w->req, w->kind, run_id);
}

/* Answers from run id now when it has ended or nothing is to be waited
 * for, else when it ends or wait_ms have passed. */
static void hook_follow(struct api_req *req, enum hook_kind kind, int64_t id, int64_t wait_ms)
{
	struct api_app *app = api_req_app(req);
	struct hook_wait *w = wait_ms > 0 ? calloc(1, sizeof(*w)) : NULL;

	if (w)
		w->timer = malloc(sizeof(*w->timer));
	if (!w || !w->timer || sched_watch(app->sched, id, on_run_changed, w, &w->watch) < 0) {
		/* No wait asked, out of memory, or the run is not active. */
		if (w)
			free(w->timer);
		free(w);
		hook_answer(req, kind, id);
		return;
	}
	w->req = req;
	w->kind = kind;
	w->run_id = id;
	uv_timer_init(api_req_loop(req), w->timer);
	w->timer->data = w;
	uv_timer_start(w->timer, on_wait_timeout, (uint64_t)wait_ms, 0);
	api_req_suspend(req, wait_cleanup, w);
}

/* api_submitted_cb: the run exists; follow it. The wait was checked
 * before the run was started, so reading it again cannot fail. */
static void on_submitted(struct api_req *req, void *userdata, int64_t run_id, bool existing)
{
	enum hook_kind kind = *(const enum hook_kind *)userdata;
	int64_t wait_ms;

	(void)existing;
	if (hook_wait(req, kind == HOOK_FLAGGER ? FLAGGER_DEFAULT_WAIT : 0, &wait_ms) == 0)
		hook_follow(req, kind, run_id, wait_ms);
}

/* The run of key, or a new run of the stored spec (start) under it. */
static void hook_run(struct api_req *req, const struct api_stored_run *sr, bool start,
                     const enum hook_kind *kind)
{
	int64_t id;
	int r = store_run_find_by_key(api_req_app(req)->store, sr->service, sr->key, NULL, &id);

	if (r == 0) {
		on_submitted(req, (void *)kind, id, true);
	} else if (r != -ENOENT) {
		api_problem_errno(req, r, "cannot look the run up");
	} else if (!start) {
		api_problem(req, 404, NULL,
		            "no run of %s %s in %s yet; call without start=false to start one",
		            sr->service, sr->version, sr->environment);
	} else {
		api_run_stored(req, sr, on_submitted, (void *)kind);
	}
}

/* ---- Flagger ---- */

/* A string of the Flagger payload: metadata[key] when given, else the
 * top-level fallback key. NULL when neither is a string. */
static const char *flagger_field(json_t *body, const char *key, const char *fallback,
                                 const char **ret_path)
{
	json_t *v = json_object_get(json_object_get(body, "metadata"), key);

	*ret_path = key;
	if (json_is_string(v))
		return json_string_value(v);
	*ret_path = fallback;
	return fallback ? json_string_value(json_object_get(body, fallback)) : NULL;
}

static bool checksum_ok(const char *c)
{
	size_t n = c ? strlen(c) : 0;

	if (n == 0 || n > FLAGGER_CHECKSUM_MAX)
		return false;
	for (; *c; c++)
		if (*c < 0x21 || *c > 0x7e)
			return false;
	return true;
}

/* The payload as a run: -EINVAL when answered. key is buf. */
static int flagger_read(struct api_req *req, json_t *body, struct api_stored_run *sr, char *buf,
                        size_t len)
{
	const char *checksum = json_string_value(json_object_get(body, "checksum"));
	const char *path, *version;

	if (!json_is_object(body)) {
		api_problem(req, 400, NULL,
		            "the body must be Flagger's webhook payload: a JSON object "
		            "{name, namespace, phase, checksum, metadata}");
		return -EINVAL;
	}
	if (json_object_get(body, "metadata") &&
	    !json_is_object(json_object_get(body, "metadata"))) {
		problem_field(req, 422, "metadata", "must be an object of strings");
		return -EINVAL;
	}
	if (!checksum_ok(checksum)) {
		problem_field(req, 422, "checksum", "must be 1 to 64 printable characters");
		return -EINVAL;
	}
	sr->service = flagger_field(body, "service", "name", &path);
	if (!name_ok(sr->service)) {
		problem_field(req, 422, path, "must be a service name: [A-Za-z0-9._-]{1,128}");
		return -EINVAL;
	}
	sr->environment = flagger_field(body, "environment", "namespace", &path);
	if (!name_ok(sr->environment)) {
		problem_field(req, 422, path, "must be an environment name: [A-Za-z0-9._-]{1,128}");
		return -EINVAL;
	}
	version = flagger_field(body, "version", NULL, &path);
	sr->version = version ? version : checksum;
	sr->target_url = flagger_field(body, "target", NULL, &path);
	snprintf(buf, len, "flagger:%s:%s", sr->environment, checksum);
	sr->key = buf;
	return 0;
}

static void post_flagger(struct api_req *req)
{
	struct api_stored_run sr = {0};
	char key[API_NAME_MAX + FLAGGER_CHECKSUM_MAX + 16];
	int64_t wait_ms;
	size_t len;
	const char *body = api_req_body(req, &len);
	json_t *doc = len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL) : NULL;

	if (hook_wait(req, FLAGGER_DEFAULT_WAIT, &wait_ms) == 0 &&
	    flagger_read(req, doc, &sr, key, sizeof(key)) == 0) {
		if (!api_req_sees(req, sr.service))
			api_problem(req, 404, NULL, "no service %s", sr.service);
		else
			hook_run(req, &sr, true, &kind_flagger);
	}
	json_decref(doc);
}

/* ---- Argo Rollouts ---- */

static void get_gate(struct api_req *req)
{
	struct api_stored_run sr = {.service = api_req_name(req)};
	const char *env = api_req_query(req, "environment");
	const char *key = api_req_query(req, "key");
	const char *start = api_req_query(req, "start");
	char buf[2 * API_NAME_MAX + 16];
	int64_t wait_ms;

	sr.environment = env && *env ? env : "default";
	sr.version = api_req_query(req, "version");
	sr.target_url = api_req_query(req, "target");
	if (sr.target_url && !*sr.target_url)
		sr.target_url = NULL;
	if (hook_wait(req, 0, &wait_ms) < 0)
		return;
	if (!name_ok(sr.environment)) {
		problem_field(req, 400, "environment", "must be [A-Za-z0-9._-]{1,128}");
	} else if (!sr.version || !*sr.version || strlen(sr.version) > HOOK_VERSION_MAX) {
		problem_field(req, 400, "version", "required: the version being rolled out");
	} else if (key && !api_idempotency_key_ok(key)) {
		problem_field(req, 400, "key", "must be 1-128 printable characters without spaces");
	} else if (start && strcmp(start, "true") != 0 && strcmp(start, "false") != 0) {
		problem_field(req, 400, "start", "must be true or false");
	} else {
		snprintf(buf, sizeof(buf), "argo:%s:%s", sr.environment, key ? key : sr.version);
		sr.key = buf;
		hook_run(req, &sr, !start || strcmp(start, "true") == 0, &kind_argo);
	}
}

const struct api_route api_routes_hooks[] = {
        {"POST", "/v1/hooks/flagger", post_flagger, API_ROLE_SUBMITTER, .query_token = true,
         .store_change = true},
        {"GET", "/v1/services/{name}/gate", get_gate, API_ROLE_SUBMITTER},
        {NULL, NULL, NULL},
};
