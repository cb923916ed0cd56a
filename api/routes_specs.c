/* routes_specs: stored specs and runs started from them. A service keeps
 * the spec it is gated with per environment (PUT, versioned 1, 2, 3...;
 * who and when), and a pipeline or CD tool starts a run by naming the
 * service, environment and version alone (POST /v1/services/{svc}/runs).
 * The stored text is parsed again for every run, with the service and
 * environment of the path and the run's version, so a run of a stored
 * spec is validated, limited and allowlisted exactly as POST /v1/runs.
 *
 * Stored specs are not redacted (a run needs the target's credentials):
 * reading one needs the submitter role; the list shows versions only.
 * Reads and writes go through lib/store; no SQL here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "lib/policy/policy.h"
#include "lib/util/util.h"
#include "lib/util/json_text.h"

#define VERSION_MAX 128 /* spec.h: a run's version */

/* 422 with one {path, message}. */
static void problem_field(struct api_req *req, const char *path, const char *message)
{
	api_problem(req, 422,
	            json_pack("{s:[{s:s, s:s}]}", "errors", "path", path, "message", message),
	            "%s: %s", path, message);
}

static bool body_fits_limits(struct api_req *req, size_t len)
{
	const struct policy_limits *l = api_req_app(req)->limits;

	if (!l || !l->max_spec_bytes || (int64_t)len <= l->max_spec_bytes)
		return true;
	api_problem(req, 413, NULL, "the spec is larger than this server's limit of %lld bytes",
	            (long long)l->max_spec_bytes);
	return false;
}

/* The stored document: as validated, without the version (each run
 * names its own). New reference, NULL on ENOMEM. */
static char *stored_doc(const struct spec *spec)
{
	json_t *doc = json_deep_copy(spec->doc);
	char *text;

	if (!doc)
		return NULL;
	json_object_del(doc, "version");
	text = rd_json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(doc);
	return text;
}

static void reply_stored(struct api_req *req, unsigned status, const char *service,
                         const char *environment, int64_t version)
{
	json_t *spec;
	char loc[512];
	int r = store_spec_get(api_req_app(req)->store, service, environment, version, &spec);

	if (r < 0) {
		api_problem_errno(req, r, "stored spec");
		return;
	}
	snprintf(loc, sizeof(loc), "/v1/services/%s/specs/%s?version=%lld", service, environment,
	         (long long)version);
	api_reply_header(req, "Location", loc);
	api_reply_json(req, status, spec);
}

/* Parses, validates and keeps the spec; what is kept is what was sent. */
static void store_spec(struct api_req *req, enum spec_format fmt, const char *body, size_t len)
{
	struct api_app *app = api_req_app(req);
	struct spec_fill fill = {api_req_name(req), api_req_env(req), "0", NULL};
	struct spec_error err = {0};
	struct spec *spec = NULL;
	char *doc = NULL;
	int64_t version = 0;
	int r = spec_parse_fill(body, len, fmt, &fill, &spec, &err);

	if (r < 0) {
		api_problem_spec(req, r, &err);
		return;
	}
	if (app->limits && policy_check_limits(app->limits, spec, &err) < 0) {
		spec_free(spec);
		api_problem_spec(req, -EINVAL, &err);
		return;
	}
	doc = stored_doc(spec);
	spec_free(spec);
	if (!doc) {
		api_problem_errno(req, -ENOMEM, "spec");
		return;
	}
	struct store_spec_new sn = {
	        .service = fill.service,
	        .environment = fill.environment,
	        .format = fmt == SPEC_FORMAT_JSON ? "json" : "yaml",
	        .text = body,
	        .doc_json = doc,
	        .created_by = api_req_principal(req),
	        .created_at = rd_now_ms(),
	};
	r = store_spec_put(app->store, &sn, &version);
	free(doc);
	if (r < 0) {
		api_problem_errno(req, r, "cannot store the spec");
		return;
	}
	reply_stored(req, 201, fill.service, fill.environment, version);
}

static void put_spec(struct api_req *req)
{
	enum spec_format fmt;
	size_t len;
	const char *body = api_req_body(req, &len);

	if (api_spec_format(api_req_header(req, "Content-Type"), &fmt) < 0) {
		api_problem(req, 415, NULL,
		            "send the spec with Content-Type application/yaml or application/json");
		return;
	}
	if (!body_fits_limits(req, len))
		return;
	if (len > 0 && memchr(body, '\0', len)) {
		struct spec_error err = {.syntax = true};

		snprintf(err.message, sizeof(err.message), "the spec contains a NUL byte");
		api_problem_spec(req, -EINVAL, &err);
		return;
	}
	store_spec(req, fmt, body, len);
}

static void get_spec(struct api_req *req)
{
	const char *v = api_req_query(req, "version");
	int64_t version = 0;
	json_t *spec;
	int r;

	if (v && rd_parse_int64(v, 1, INT64_MAX, &version) < 0) {
		api_problem(req, 400,
		            json_pack("{s:[{s:s, s:s}]}", "errors", "path", "version", "message",
		                      "must be a positive integer"),
		            "version: must be a positive integer");
		return;
	}
	r = store_spec_get(api_req_app(req)->store, api_req_name(req), api_req_env(req), version,
	                   &spec);
	if (r == -ENOENT) {
		if (version)
			api_problem(req, 404, NULL,
			            "service %s has no version %lld of its spec for %s",
			            api_req_name(req), (long long)version, api_req_env(req));
		else
			api_problem(req, 404, NULL,
			            "service %s has no stored spec for %s; PUT one first",
			            api_req_name(req), api_req_env(req));
		return;
	}
	if (r < 0) {
		api_problem_errno(req, r, "cannot read the stored spec");
		return;
	}
	api_reply_json(req, 200, spec);
}

static void get_specs(struct api_req *req)
{
	json_t *items;
	int r = store_specs_list(api_req_app(req)->store, api_req_name(req), &items);

	if (r < 0) {
		api_problem_errno(req, r, "cannot list the stored specs");
		return;
	}
	api_reply_json(req, 200,
	               json_pack("{s:s, s:o}", "service", api_req_name(req), "items", items));
}

/* Whether a probe sends its requests to the target: an override of
 * target.url that no probe uses would let a run pass on what it did not
 * measure. */
static bool target_measured(const struct spec *spec)
{
	for (size_t i = 0; i < spec->n_probes; i++)
		if (spec->probes[i].url && strcmp(spec->probes[i].url, spec->target.url) == 0)
			return true;
	return false;
}

void api_run_stored(struct api_req *req, const struct api_stored_run *sr, api_submitted_cb cb,
                    void *userdata)
{
	struct spec_fill fill = {sr->service, sr->environment, sr->version, sr->target_url};
	struct spec_error err = {0};
	struct spec *spec = NULL;
	enum spec_format fmt;
	const char *text, *format;
	json_int_t version;
	json_t *stored;
	int r = store_spec_get(api_req_app(req)->store, sr->service, sr->environment, 0, &stored);

	if (r == -ENOENT) {
		api_problem(
		        req, 404, NULL,
		        "service %s has no stored spec for %s; PUT /v1/services/%s/specs/%s first",
		        sr->service, sr->environment, sr->service, sr->environment);
		return;
	}
	if (r < 0) {
		api_problem_errno(req, r, "cannot read the stored spec");
		return;
	}
	text = json_string_value(json_object_get(stored, "text"));
	format = json_string_value(json_object_get(stored, "format"));
	version = json_integer_value(json_object_get(stored, "version"));
	fmt = format && strcmp(format, "json") == 0 ? SPEC_FORMAT_JSON : SPEC_FORMAT_YAML;
	r = text ? spec_parse_fill(text, strlen(text), fmt, &fill, &spec, &err) : -EIO;
	json_decref(stored);
	if (r == -EIO) {
		api_problem_errno(req, r, "cannot read the stored spec");
		return;
	}
	if (r < 0) {
		api_problem_spec(req, r, &err);
		return;
	}
	if (sr->target_url && !target_measured(spec)) {
		spec_free(spec);
		problem_field(req, "target",
		              "no probe of the stored spec measures the target (each has a url of "
		              "its own): the override would measure nothing");
		return;
	}
	spec->stored_version = version;
	api_submit_spec(req, spec, sr->key, cb, userdata);
}

/* A string member of the request body: absent -> NULL; present and not a
 * non-empty string of at most max bytes -> 422 (answered, *ret_bad). */
static const char *body_string(struct api_req *req, json_t *body, const char *key, size_t max,
                               bool *ret_bad)
{
	json_t *v = json_object_get(body, key);
	char msg[80];

	if (!v || *ret_bad)
		return NULL;
	if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) <= max &&
	    !memchr(json_string_value(v), '\0', json_string_length(v)))
		return json_string_value(v);
	snprintf(msg, sizeof(msg), "must be a string of 1 to %zu bytes", max);
	problem_field(req, key, msg);
	*ret_bad = true;
	return NULL;
}

/* {version, environment?, target?}: nothing else. 0, or -EINVAL answered. */
static int read_run_body(struct api_req *req, json_t *body, struct api_stored_run *sr)
{
	static const char *const keys[] = {"version", "environment", "target"};
	bool bad = false;
	const char *k;
	json_t *v;

	if (!json_is_object(body)) {
		api_problem(req, 400, NULL,
		            "the body must be a JSON object: {version, environment?, target?}");
		return -EINVAL;
	}
	json_object_foreach (body, k, v) {
		size_t i = 0;

		while (i < RD_ARRAY_SIZE(keys) && strcmp(keys[i], k) != 0)
			i++;
		if (i == RD_ARRAY_SIZE(keys)) {
			problem_field(req, k,
			              "unknown field; a run of a stored spec takes "
			              "version, environment and target");
			return -EINVAL;
		}
	}
	sr->version = body_string(req, body, "version", VERSION_MAX, &bad);
	sr->environment = body_string(req, body, "environment", API_NAME_MAX, &bad);
	sr->target_url = body_string(req, body, "target", SPEC_MAX_STRING, &bad);
	if (!bad && !sr->version) {
		problem_field(req, "version", "required: the version this run judges");
		bad = true;
	}
	if (!sr->environment)
		sr->environment = "default";
	return bad ? -EINVAL : 0;
}

static void post_service_runs(struct api_req *req)
{
	struct api_stored_run sr = {.service = api_req_name(req)};
	const char *key = api_req_header(req, "Idempotency-Key");
	size_t len;
	const char *body = api_req_body(req, &len);
	json_t *doc = len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL) : NULL;

	if (api_idempotency_key_check(req, key) < 0) {
		json_decref(doc);
		return;
	}
	if (read_run_body(req, doc, &sr) == 0) {
		sr.key = key;
		api_run_stored(req, &sr, NULL, NULL);
	}
	json_decref(doc);
}

const struct api_route api_routes_specs[] = {
        {"PUT", "/v1/services/{name}/specs/{env}", put_spec, API_ROLE_SUBMITTER,
         .store_change = true},
        {"GET", "/v1/services/{name}/specs/{env}", get_spec, API_ROLE_SUBMITTER},
        {"GET", "/v1/services/{name}/specs", get_specs, API_ROLE_VIEWER},
        {"POST", "/v1/services/{name}/runs", post_service_runs, API_ROLE_SUBMITTER,
         .store_change = true},
        {NULL, NULL, NULL},
};
