/* test-router: api/router.c and api/problem.c without a server. Every
 * route of the API is found by its method and a concrete path, with its
 * role; {id} and {name} capture only what they promise; a known path with
 * another method is a 405 naming the allowed methods, anything else a 404;
 * -errno from lib/ maps onto the documented statuses; problem+json bodies
 * have the RFC 9457 members and keep the extra ones. The kept answers
 * (api/respcache.c): found among thousands, least recently used evicted
 * first, a stale generation missed, counted. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "respcache.h"

static int route(const char *method, const char *path, struct api_match *m, char *allow,
                 size_t allowlen)
{
	memset(m, 0, sizeof(*m));
	return api_route(method, path, m, allow, allowlen);
}

/* Every route of the API: a concrete request, the pattern it must reach,
 * the role it requires and its captures. */
static const struct {
	const char *method, *path, *pattern;
	enum api_role role;
	int64_t id;
	const char *name;
} routes[] = {
        {"GET", "/healthz", "/healthz", API_ROLE_ANYONE, 0, ""},
        {"GET", "/readyz", "/readyz", API_ROLE_ANYONE, 0, ""},
        {"GET", "/metrics", "/metrics", API_ROLE_VIEWER, 0, ""},
        {"POST", "/v1/runs", "/v1/runs", API_ROLE_SUBMITTER, 0, ""},
        {"GET", "/v1/runs", "/v1/runs", API_ROLE_VIEWER, 0, ""},
        {"GET", "/v1/runs/42", "/v1/runs/{id}", API_ROLE_VIEWER, 42, ""},
        {"POST", "/v1/runs/7/cancel", "/v1/runs/{id}/cancel", API_ROLE_SUBMITTER, 7, ""},
        {"GET", "/v1/runs/9223372036854775807/report", "/v1/runs/{id}/report", API_ROLE_VIEWER,
         INT64_MAX, ""},
        {"GET", "/v1/runs/3/events", "/v1/runs/{id}/events", API_ROLE_VIEWER, 3, ""},
        {"GET", "/v1/gates", "/v1/gates", API_ROLE_VIEWER, 0, ""},
        {"POST", "/v1/runs/5/rejudge", "/v1/runs/{id}/rejudge", API_ROLE_SUBMITTER, 5, ""},
        {"POST", "/v1/runs/5/invalidate", "/v1/runs/{id}/invalidate", API_ROLE_SUBMITTER, 5, ""},
        {"GET", "/v1/services", "/v1/services", API_ROLE_VIEWER, 0, ""},
        {"GET", "/v1/services/model-a.v2_x/history", "/v1/services/{name}/history", API_ROLE_VIEWER,
         0, "model-a.v2_x"},
        {"GET", "/v1/services/m/trends", "/v1/services/{name}/trends", API_ROLE_VIEWER, 0, "m"},
        {"GET", "/v1/services/m/waivers", "/v1/services/{name}/waivers", API_ROLE_VIEWER, 0, "m"},
        {"POST", "/v1/services/m/waivers", "/v1/services/{name}/waivers", API_ROLE_ADMIN, 0, "m"},
        {"DELETE", "/v1/services/svc/waivers/12", "/v1/services/{name}/waivers/{id}",
         API_ROLE_ADMIN, 12, "svc"},
        {"PUT", "/v1/services/svc/specs/prod", "/v1/services/{name}/specs/{env}",
         API_ROLE_SUBMITTER, 0, "svc"},
        {"GET", "/v1/services/svc/specs/prod", "/v1/services/{name}/specs/{env}",
         API_ROLE_SUBMITTER, 0, "svc"},
        {"GET", "/v1/services/svc/specs", "/v1/services/{name}/specs", API_ROLE_VIEWER, 0, "svc"},
        {"POST", "/v1/services/svc/runs", "/v1/services/{name}/runs", API_ROLE_SUBMITTER, 0, "svc"},
        {"GET", "/v1/services/svc/gate", "/v1/services/{name}/gate", API_ROLE_SUBMITTER, 0, "svc"},
        {"POST", "/v1/hooks/flagger", "/v1/hooks/flagger", API_ROLE_SUBMITTER, 0, ""},
        {"POST", "/v1/alertmanager/webhook", "/v1/alertmanager/webhook", API_ROLE_NOTIFIER, 0, ""},
        {"GET", "/v1/alertmanager/notifications", "/v1/alertmanager/notifications", API_ROLE_ADMIN,
         0, ""},
        /* The web console decides access itself (session cookie, CSRF):
         * api/console.c, docs/security.md. */
        {"GET", "/", "/", API_ROLE_ANYONE, 0, ""},
        {"GET", "/board", "/board", API_ROLE_ANYONE, 0, ""},
        {"GET", "/login", "/login", API_ROLE_ANYONE, 0, ""},
        {"POST", "/login", "/login", API_ROLE_ANYONE, 0, ""},
        {"POST", "/logout", "/logout", API_ROLE_ANYONE, 0, ""},
        {"GET", "/static/console.css", "/static/{name}", API_ROLE_ANYONE, 0, "console.css"},
        {"GET", "/runs/4", "/runs/{id}", API_ROLE_ANYONE, 4, ""},
        {"GET", "/runs/4/events", "/runs/{id}/events", API_ROLE_ANYONE, 4, ""},
        {"GET", "/runs/4/report", "/runs/{id}/report", API_ROLE_ANYONE, 4, ""},
        {"POST", "/runs/4/cancel", "/runs/{id}/cancel", API_ROLE_ANYONE, 4, ""},
        {"POST", "/runs/4/invalidate", "/runs/{id}/invalidate", API_ROLE_ANYONE, 4, ""},
        {"POST", "/runs/4/waive", "/runs/{id}/waive", API_ROLE_ANYONE, 4, ""},
        {"POST", "/runs/4/rejudge", "/runs/{id}/rejudge", API_ROLE_ANYONE, 4, ""},
        {"GET", "/services/svc", "/services/{name}", API_ROLE_ANYONE, 0, "svc"},
        {"POST", "/services/svc/waivers/6/revoke", "/services/{name}/waivers/{id}/revoke",
         API_ROLE_ANYONE, 6, "svc"},
        {"GET", "/compare", "/compare", API_ROLE_ANYONE, 0, ""},
};

START_TEST(test_route_found)
{
	struct api_match m;
	char allow[128];

	ck_assert_int_eq(route(routes[_i].method, routes[_i].path, &m, allow, sizeof(allow)), 0);
	ck_assert_ptr_nonnull(m.route);
	ck_assert_ptr_nonnull(m.route->handler);
	ck_assert_str_eq(m.route->method, routes[_i].method);
	ck_assert_str_eq(m.route->pattern, routes[_i].pattern);
	ck_assert_int_eq(m.route->role, routes[_i].role);
	ck_assert_int_eq(m.id, routes[_i].id);
	ck_assert_str_eq(m.name, routes[_i].name);
}
END_TEST

static void count_route(const struct api_route *r, void *userdata)
{
	(void)r;
	(*(size_t *)userdata)++;
}

/* The table above is every route: a route added without a line here
 * fails, so its role is reviewed. */
START_TEST(test_every_route_listed)
{
	size_t n = 0;

	api_routes_foreach(count_route, &n);
	ck_assert_uint_eq(n, sizeof(routes) / sizeof(routes[0]));
}
END_TEST

/* Two methods on one path are two handlers. */
START_TEST(test_method_picks_handler)
{
	struct api_match get, post;
	char allow[128];

	ck_assert_int_eq(route("GET", "/v1/runs", &get, allow, sizeof(allow)), 0);
	ck_assert_int_eq(route("POST", "/v1/runs", &post, allow, sizeof(allow)), 0);
	ck_assert(get.route->handler != post.route->handler);
	ck_assert_int_eq(route("GET", "/v1/services/a/waivers", &get, allow, sizeof(allow)), 0);
	ck_assert_int_eq(route("POST", "/v1/services/a/waivers", &post, allow, sizeof(allow)), 0);
	ck_assert(get.route->handler != post.route->handler);
}
END_TEST

/* A path that matches no pattern is a 404, whatever the method; so is an
 * {id} or {name} segment that is not one. */
static const char *const not_found[] = {
        "//",
        "/runs/abc",
        "/static/a/b",
        "/v1",
        "/v1/",
        "/v1/runs/",
        "/v1/runs/abc",
        "/v1/runs/0",
        "/v1/runs/-1",
        "/v1/runs/+1",
        "/v1/runs/1.5",
        "/v1/runs/9223372036854775808",
        "/v1/runs/99999999999999999999999",
        "/v1/runs/1/",
        "/v1/runs/1/nope",
        "/v1/runs//cancel",
        "/v1/runs/1/cancel/x",
        "/v1/services/a b/history",
        "/v1/services/a%2Fb/history",
        "/v1/services//history",
        "/v1/services/svc/waivers/x",
        "/healthz/",
        "/HEALTHZ",
        "healthz",
        "",
};

START_TEST(test_not_found)
{
	struct api_match m;
	char allow[128];

	ck_assert_msg(route("GET", not_found[_i], &m, allow, sizeof(allow)) == -ENOENT, "%s",
	              not_found[_i]);
	ck_assert_msg(route("POST", not_found[_i], &m, allow, sizeof(allow)) == -ENOENT, "%s",
	              not_found[_i]);
	ck_assert_ptr_null(m.route);
}
END_TEST

/* {name} takes 1-128 of [A-Za-z0-9._-], no more. */
START_TEST(test_name_capture_bounds)
{
	struct api_match m;
	char allow[128], path[300], name[API_NAME_MAX + 2];

	memset(name, 'n', API_NAME_MAX);
	name[API_NAME_MAX] = '\0';
	snprintf(path, sizeof(path), "/v1/services/%s/history", name);
	ck_assert_int_eq(route("GET", path, &m, allow, sizeof(allow)), 0);
	ck_assert_str_eq(m.name, name);
	snprintf(path, sizeof(path), "/v1/services/%sn/history", name);
	ck_assert_int_eq(route("GET", path, &m, allow, sizeof(allow)), -ENOENT);
}
END_TEST

/* {env} captures beside {name}, with the same characters and bounds. */
START_TEST(test_env_capture)
{
	struct api_match m;
	char allow[128], path[400], env[API_NAME_MAX + 2];

	ck_assert_int_eq(route("PUT", "/v1/services/svc/specs/prod-eu.1", &m, allow, sizeof(allow)),
	                 0);
	ck_assert_str_eq(m.name, "svc");
	ck_assert_str_eq(m.env, "prod-eu.1");
	memset(env, 'e', API_NAME_MAX + 1);
	env[API_NAME_MAX + 1] = '\0';
	snprintf(path, sizeof(path), "/v1/services/svc/specs/%s", env);
	ck_assert_int_eq(route("GET", path, &m, allow, sizeof(allow)), -ENOENT);
	ck_assert_int_eq(route("GET", "/v1/services/svc/specs/a%20b", &m, allow, sizeof(allow)),
	                 -ENOENT);
}
END_TEST

/* A known path with a method it does not serve is a 405 whose Allow
 * lists every method the path has, each once. */
static const struct {
	const char *method, *path, *allow;
} not_allowed[] = {
        {"DELETE", "/v1/runs", "POST, GET"},
        {"PUT", "/v1/runs/1", "GET"},
        {"GET", "/v1/runs/1/cancel", "POST"},
        {"POST", "/healthz", "GET"},
        {"HEAD", "/metrics", "GET"},
        {"PATCH", "/v1/services/a/waivers", "GET, POST"},
        {"GET", "/v1/services/a/waivers/3", "DELETE"},
        {"get", "/v1/gates", "GET"},
};

START_TEST(test_method_not_allowed)
{
	struct api_match m;
	char allow[128];

	ck_assert_int_eq(
	        route(not_allowed[_i].method, not_allowed[_i].path, &m, allow, sizeof(allow)),
	        -EPERM);
	ck_assert_str_eq(allow, not_allowed[_i].allow);
	ck_assert_ptr_null(m.route);
}
END_TEST

/* -errno from lib/ to HTTP, in one place. */
static const struct {
	int err;
	unsigned status;
	const char *retry_after, *reason;
} statuses[] = {
        {-ENOENT, 404, NULL, "not found"},
        {-EAGAIN, 503, "5", "the queue is full; retry later"},
        {-EBUSY, 503, "1", "the database is busy; retry"},
        {-ESHUTDOWN, 503, NULL, "readyd is shutting down"},
        {-ENOSPC, 507, NULL, "the database is full (disk space)"},
        {-ENOTCONN, 503, "5", "the database does not answer; retry later"},
        {-ETIMEDOUT, 503, "5", "the database did not answer in time; retry later"},
        {-EIO, 500, NULL, "Input/output error"},
        {-ENOMEM, 500, NULL, "Cannot allocate memory"},
};

START_TEST(test_errno_status)
{
	struct api_errno_status st = api_errno_status(statuses[_i].err);

	ck_assert_uint_eq(st.status, statuses[_i].status);
	ck_assert_str_eq(st.reason, statuses[_i].reason);
	if (statuses[_i].retry_after)
		ck_assert_str_eq(st.retry_after, statuses[_i].retry_after);
	else
		ck_assert_ptr_null(st.retry_after);
}
END_TEST

START_TEST(test_problem_body_shape)
{
	json_t *o = api_problem_body(404, "run 7: not found", "/v1/runs/7", NULL);

	ck_assert_ptr_nonnull(o);
	ck_assert_uint_eq(json_object_size(o), 5);
	ck_assert_str_eq(json_string_value(json_object_get(o, "type")), "about:blank");
	ck_assert_str_eq(json_string_value(json_object_get(o, "title")), "Not Found");
	ck_assert_int_eq(json_integer_value(json_object_get(o, "status")), 404);
	ck_assert_str_eq(json_string_value(json_object_get(o, "detail")), "run 7: not found");
	ck_assert_str_eq(json_string_value(json_object_get(o, "instance")), "/v1/runs/7");
	json_decref(o);
}
END_TEST

/* Spec errors travel as "errors": [{path, message}] beside the members. */
START_TEST(test_problem_body_extra)
{
	json_t *extra = json_pack("{s:[{s:s, s:s}]}", "errors", "path", "probes[2].rate", "message",
	                          "must be a positive number");
	json_t *o = api_problem_body(422, "probes[2].rate: must be a positive number", "/v1/runs",
	                             extra);
	json_t *e;

	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(json_string_value(json_object_get(o, "title")), "Unprocessable Content");
	ck_assert_int_eq(json_integer_value(json_object_get(o, "status")), 422);
	e = json_array_get(json_object_get(o, "errors"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(e, "path")), "probes[2].rate");
	json_decref(o);
}
END_TEST

static const struct {
	unsigned status;
	const char *title;
} titles[] = {
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {405, "Method Not Allowed"},
        {409, "Conflict"},
        {413, "Content Too Large"},
        {415, "Unsupported Media Type"},
        {429, "Too Many Requests"},
        {500, "Internal Server Error"},
        {503, "Service Unavailable"},
        {507, "Insufficient Storage"},
        {406, "Not Acceptable"},
        {431, "Request Header Fields Too Large"},
        {418, "Client Error"},
        {599, "Server Error"},
};

START_TEST(test_problem_titles)
{
	json_t *o = api_problem_body(titles[_i].status, "d", "/", NULL);

	ck_assert_str_eq(json_string_value(json_object_get(o, "title")), titles[_i].title);
	json_decref(o);
}
END_TEST

/* 5000 small answers (more than the hash table starts with): each is
 * found under its own key and no other; past the cap the least recently
 * used go first, the one just asked for stays. */
START_TEST(test_cache_many_keys)
{
	struct api_cache *c = NULL;
	struct api_cache_stats st;
	char key[32], body[32];

	ck_assert_int_eq(api_cache_new(1024 * 1024, &c), 0);
	for (int i = 0; i < 5000; i++) {
		struct api_body *b;

		snprintf(key, sizeof(key), "k%d", i);
		snprintf(body, sizeof(body), "{\"i\":%d}", i);
		b = api_body_new(body, strlen(body));
		ck_assert_ptr_nonnull(b);
		ck_assert_int_eq(api_cache_put(c, key, 7, b), 0);
		api_body_unref(b);
	}
	api_cache_stats(c, &st);
	ck_assert_uint_eq(st.entries, 5000);
	for (int i = 0; i < 5000; i += 7) {
		struct api_body *b;

		snprintf(key, sizeof(key), "k%d", i);
		snprintf(body, sizeof(body), "{\"i\":%d}", i);
		b = api_cache_get(c, key, 7);
		ck_assert_ptr_nonnull(b);
		ck_assert_str_eq(b->data, body);
		ck_assert_ptr_null(api_cache_get(c, key, 8)); /* a newer generation */
	}
	ck_assert_ptr_null(api_cache_get(c, "k5000", 7));
	api_cache_stats(c, &st);
	ck_assert_uint_eq(st.hits, (5000 + 6) / 7);
	ck_assert_uint_eq(st.misses, (5000 + 6) / 7 + 1);
	ck_assert_uint_eq(st.max_bytes, 1024 * 1024);
	api_cache_free(c);
}
END_TEST

START_TEST(test_cache_evicts_least_recent)
{
	static char big[100000];
	struct api_cache *c = NULL;
	struct api_cache_stats st;
	char key[32];

	memset(big, 'x', sizeof(big));
	ck_assert_int_eq(api_cache_new(450000, &c), 0); /* four bodies and their keys */
	for (int i = 0; i < 6; i++) {
		struct api_body *b = api_body_new(big, sizeof(big));

		snprintf(key, sizeof(key), "big%d", i);
		ck_assert_int_eq(api_cache_put(c, key, 1, b), 0);
		api_body_unref(b);
		if (i == 2) /* big0 becomes the most recently used */
			ck_assert_ptr_nonnull(api_cache_get(c, "big0", 1));
	}
	api_cache_stats(c, &st);
	ck_assert_uint_eq(st.entries, 4);
	ck_assert_uint_le(st.bytes, 450000);
	ck_assert_ptr_nonnull(api_cache_get(c, "big0", 1));
	ck_assert_ptr_null(api_cache_get(c, "big1", 1));
	ck_assert_ptr_null(api_cache_get(c, "big2", 1));
	for (int i = 3; i < 6; i++) {
		snprintf(key, sizeof(key), "big%d", i);
		ck_assert_ptr_nonnull(api_cache_get(c, key, 1));
	}
	api_cache_free(c);
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *router_suite(void)
{
	Suite *s = suite_create("router");
	TCase *tr = tcase_create("route"), *tp = tcase_create("problem");
	TCase *tc = tcase_create("respcache");

	tcase_add_loop_test(tr, test_route_found, 0, N(routes));
	tcase_add_test(tr, test_every_route_listed);
	tcase_add_test(tr, test_method_picks_handler);
	tcase_add_loop_test(tr, test_not_found, 0, N(not_found));
	tcase_add_test(tr, test_name_capture_bounds);
	tcase_add_test(tr, test_env_capture);
	tcase_add_loop_test(tr, test_method_not_allowed, 0, N(not_allowed));
	suite_add_tcase(s, tr);
	tcase_add_loop_test(tp, test_errno_status, 0, N(statuses));
	tcase_add_test(tp, test_problem_body_shape);
	tcase_add_test(tp, test_problem_body_extra);
	tcase_add_loop_test(tp, test_problem_titles, 0, N(titles));
	suite_add_tcase(s, tp);
	tcase_add_test(tc, test_cache_many_keys);
	tcase_add_test(tc, test_cache_evicts_least_recent);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(router_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
