/* routes_services: services and what readyd remembers of them: the list
 * of services, a service's decisions over time (history), one metric
 * across runs (trends) and waivers (create, list, revoke). Reads and
 * writes go through lib/store (sqlite/sqlite_history.c); this file only parses
 * and validates requests and shapes replies.
 *
 * It must not judge gates (lib/judge applies waivers) nor query SQLite.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "lib/gate/gate.h"
#include "lib/util/json_text.h"
#include "lib/util/util.h"

#define HISTORY_DEFAULT_LIMIT 50
#define TREND_DEFAULT_LIMIT   500
#define TREND_MAX_LIMIT       10000
#define TREND_MAX_BUCKETS     10000 /* buckets a step may cut since..until into */
#define TREND_MAX_STEP_MS     (3660LL * 24 * 3600 * 1000) /* ten years */
#define WAIVER_TEXT_MAX       1024
#define WAIVER_NAME_MAX       128
#define WAIVER_MAX_MS         (366LL * 24 * 3600 * 1000) /* a waiver is temporary */

/* A query parameter, NULL when absent or empty. */
static const char *query(struct api_req *req, const char *key)
{
	const char *v = api_req_query(req, key);

	return v && *v ? v : NULL;
}

static bool name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > WAIVER_NAME_MAX)
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* 422 with one {path, message}. */
static void problem_field(struct api_req *req, const char *path, const char *message)
{
	api_problem(req, 422,
	            json_pack("{s:[{s:s, s:s}]}", "errors", "path", path, "message", message),
	            "%s: %s", path, message);
}

/* 400 naming the query parameter that is wrong, in the errors[] shape
 * of problem_field so clients read one form. */
__attribute__((format(printf, 3, 4))) static void
problem_param(struct api_req *req, const char *param, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	api_problem(req, 400,
	            json_pack("{s:[{s:s, s:s}]}", "errors", "path", param, "message", msg),
	            "%s: %s", param, msg);
}

static void get_services(struct api_req *req)
{
	json_t *items = NULL;
	int r = store_services_list(api_req_app(req)->store, &items);

	if (r < 0) {
		api_problem_errno(req, r, "cannot list services");
		return;
	}
	api_reply_json(req, 200, json_pack("{s:o}", "items", api_scope_items(req, items)));
}

static bool verdict_ok(const char *v)
{
	enum verdict verdict;

	return gate_verdict_from_string(v, &verdict) == 0;
}

/* Appends s (NULL: absent) to the key in buf as "<length>:<bytes>|", an
 * encoding no two different queries share; "-|" for NULL. */
static void key_add(char *buf, size_t len, size_t *off, const char *s)
{
	int n;

	if (*off >= len)
		return;
	n = s ? snprintf(buf + *off, len - *off, "%zu:%s|", strlen(s), s)
	      : snprintf(buf + *off, len - *off, "-|");
	*off = n < 0 || (size_t)n >= len - *off ? len : *off + (size_t)n;
}

/* The key ended: "" (answer not kept) when it did not fit. */
static const char *key_end(char *buf, size_t len, size_t off)
{
	if (off >= len)
		buf[0] = '\0';
	return buf;
}

/* A history read off the loop: the filter with copies of its strings. */
struct history_job {
	struct store_history_filter f;
	char *strs[4];
};

static void history_job_free(void *arg)
{
	struct history_job *j = arg;

	for (size_t i = 0; i < RD_ARRAY_SIZE(j->strs); i++)
		free(j->strs[i]);
	free(j);
}

static int history_read(struct store *st, void *arg, json_t **ret, char *err, size_t errlen)
{
	struct history_job *j = arg;
	json_t *items = NULL;
	char *next = NULL;
	int r = store_history(st, &j->f, &items, &next);

	if (r < 0) {
		snprintf(err, errlen, "%s", store_errmsg(st));
		return r;
	}
	*ret = json_pack("{s:s, s:o, s:s?}", "service", j->f.service, "items", items, "next_cursor",
	                 next);
	free(next);
	return *ret ? 0 : -ENOMEM;
}

/* A copy of s in *slot (NULL stays NULL); false on ENOMEM. */
static bool dup_into(char **slot, const char *s)
{
	*slot = s ? strdup(s) : NULL;
	return !s || *slot;
}

static struct history_job *history_job_new(const struct store_history_filter *f)
{
	struct history_job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	if (!dup_into(&j->strs[0], f->service) || !dup_into(&j->strs[1], f->environment) ||
	    !dup_into(&j->strs[2], f->verdict) || !dup_into(&j->strs[3], f->cursor)) {
		history_job_free(j);
		return NULL;
	}
	j->f = (struct store_history_filter){.service = j->strs[0],
	                                     .environment = j->strs[1],
	                                     .verdict = j->strs[2],
	                                     .cursor = j->strs[3],
	                                     .limit = f->limit};
	return j;
}

static void get_history(struct api_req *req)
{
	struct store_history_filter f = {
	        .service = api_req_name(req),
	        .environment = query(req, "environment"),
	        .verdict = query(req, "verdict"),
	        .cursor = query(req, "cursor"),
	        .limit = HISTORY_DEFAULT_LIMIT,
	};
	const char *limit = query(req, "limit");
	struct history_job *j;
	char key[API_KEY_BUF / 2], num[24];
	size_t off = 0;
	int64_t n;

	if (limit && rd_parse_int64(limit, 1, 1000, &n) < 0) {
		api_problem(req, 400, NULL, "limit must be an integer from 1 to 1000");
		return;
	}
	f.limit = limit ? (int)n : f.limit;
	if (f.verdict && !verdict_ok(f.verdict)) {
		api_problem(req, 400, NULL, "verdict must be one of PASS, FAIL, ERROR");
		return;
	}
	snprintf(num, sizeof(num), "%d", f.limit);
	key_add(key, sizeof(key), &off, "history");
	key_add(key, sizeof(key), &off, f.service);
	key_add(key, sizeof(key), &off, f.environment);
	key_add(key, sizeof(key), &off, f.verdict);
	key_add(key, sizeof(key), &off, f.cursor);
	key_add(key, sizeof(key), &off, num);
	if (api_reply_kept(req, key_end(key, sizeof(key), off)))
		return;
	j = history_job_new(&f);
	if (!j) {
		api_problem_errno(req, -ENOMEM, "cannot read the history");
		return;
	}
	api_read_off_loop(req, key, "cannot read the history", history_read, j, history_job_free);
}

/* A time bound: RFC 3339, or a duration meaning that long before now. */
static int parse_bound(const char *s, int64_t now_ms, int64_t *ret)
{
	int64_t d;

	if (rd_time_parse(s, ret) == 0)
		return 0;
	if (rd_parse_duration(s, &d) < 0 || d > now_ms)
		return -EINVAL;
	*ret = now_ms - d;
	return 0;
}

/* "PROBE.METRIC" into q's probe and metric (pointing into buf). */
static int parse_metric(const char *s, char *buf, size_t len, struct store_trend_query *q)
{
	char *dot;

	if (!s || strlen(s) >= len)
		return -EINVAL;
	snprintf(buf, len, "%s", s);
	dot = strchr(buf, '.');
	if (!dot || dot == buf || !dot[1] || strlen(dot + 1) > GATE_NAME_MAX ||
	    (size_t)(dot - buf) > GATE_NAME_MAX)
		return -EINVAL;
	*dot = '\0';
	q->probe = buf;
	q->metric = dot + 1;
	return 0;
}

/* step: a duration of at least 1 ms cutting since..until (until: now
 * when open) into at most TREND_MAX_BUCKETS buckets; without since the
 * bucket count is bounded by limit instead. Replies on error. */
static int trend_step(struct api_req *req, bool has_since, int64_t now, struct store_trend_query *q)
{
	const char *step = query(req, "step");
	int64_t end = q->until_ms < now ? q->until_ms : now;

	if (!step)
		return 0;
	if (rd_parse_duration(step, &q->step_ms) < 0 || q->step_ms < 1 ||
	    q->step_ms > TREND_MAX_STEP_MS) {
		problem_param(req, "step", "must be a duration from 1ms to 3660d, e.g. 1h or 1d");
		return -EINVAL;
	}
	if (has_since && end > q->since_ms &&
	    (end - q->since_ms) / q->step_ms >= TREND_MAX_BUCKETS) {
		problem_param(req, "step",
		              "%s cuts since..until into more than %d buckets: use a larger "
		              "step or a shorter window",
		              step, TREND_MAX_BUCKETS);
		return -EINVAL;
	}
	return 0;
}

static const char bound_help[] = "since and until must be RFC 3339 times or durations "
                                 "before now (\"30d\"), with since <= until";

/* Fills q from the query string; on error replies and returns -EINVAL. */
static int trend_query(struct api_req *req, char *buf, size_t len, struct store_trend_query *q)
{
	const char *since = query(req, "since"), *until = query(req, "until");
	const char *limit = query(req, "limit");
	int64_t now = rd_now_ms(), n;

	q->service = api_req_name(req);
	q->environment = query(req, "environment");
	q->until_ms = INT64_MAX;
	q->limit = TREND_DEFAULT_LIMIT;
	if (parse_metric(query(req, "metric"), buf, len, q) < 0) {
		problem_param(req, "metric", "must be PROBE.METRIC, e.g. latency.p95_ms");
		return -EINVAL;
	}
	if (since && parse_bound(since, now, &q->since_ms) < 0) {
		problem_param(req, "since", "%s", bound_help);
		return -EINVAL;
	}
	if ((until && parse_bound(until, now, &q->until_ms) < 0) || q->since_ms > q->until_ms) {
		problem_param(req, "until", "%s", bound_help);
		return -EINVAL;
	}
	if (limit && rd_parse_int64(limit, 1, TREND_MAX_LIMIT, &n) < 0) {
		problem_param(req, "limit", "must be an integer from 1 to %d", TREND_MAX_LIMIT);
		return -EINVAL;
	}
	q->limit = limit ? (int)n : q->limit;
	return trend_step(req, since != NULL, now, q);
}

/* A trend read off the loop: the query, the answer's fixed members and
 * copies of the strings they point to. */
struct trend_job {
	struct store_trend_query q;
	char *strs[6]; /* service probe metric environment metric-param step-param */
};

static void trend_job_free(void *arg)
{
	struct trend_job *j = arg;

	for (size_t i = 0; i < RD_ARRAY_SIZE(j->strs); i++)
		free(j->strs[i]);
	free(j);
}

/* The answer's members before the points, in the order of its schema. */
static void trend_head(struct rd_jtext *out, const struct trend_job *j)
{
	rd_jtext_lit(out, "{\"service\":");
	rd_jtext_str(out, j->q.service);
	rd_jtext_lit(out, ",\"metric\":");
	rd_jtext_str(out, j->strs[4]);
	rd_jtext_lit(out, ",\"probe\":");
	rd_jtext_str(out, j->q.probe);
	rd_jtext_lit(out, ",\"environment\":");
	rd_jtext_str(out, j->q.environment);
	rd_jtext_lit(out, ",\"step\":");
	rd_jtext_str(out, j->strs[5]);
	rd_jtext_lit(out, ",\"points\":");
}

/* {service, metric, probe, environment, step, points, truncated} written
 * as text, without a tree: a trend may have 10,000 points. */
static int trend_read(struct store *st, void *arg, struct rd_jtext *out, char *err, size_t errlen)
{
	struct trend_job *j = arg;
	bool truncated = false;
	int r;

	trend_head(out, j);
	r = store_trend_text(st, &j->q, out, &truncated);
	if (r < 0) {
		snprintf(err, errlen, "%s", out->err ? "cannot write the trend" : store_errmsg(st));
		return r == -EINVAL ? -EIO
		                    : r; /* the query was validated: not the caller's fault */
	}
	rd_jtext_lit(out, truncated ? ",\"truncated\":true}" : ",\"truncated\":false}");
	return out->err;
}

static struct trend_job *trend_job_new(struct api_req *req, const struct store_trend_query *q)
{
	struct trend_job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	if (!dup_into(&j->strs[0], q->service) || !dup_into(&j->strs[1], q->probe) ||
	    !dup_into(&j->strs[2], q->metric) || !dup_into(&j->strs[3], q->environment) ||
	    !dup_into(&j->strs[4], query(req, "metric")) ||
	    !dup_into(&j->strs[5], query(req, "step"))) {
		trend_job_free(j);
		return NULL;
	}
	j->q = *q;
	j->q.service = j->strs[0];
	j->q.probe = j->strs[1];
	j->q.metric = j->strs[2];
	j->q.environment = j->strs[3];
	return j;
}

/* The trend's key: every input of the answer, bounds as resolved (a
 * bound given as a duration moves with the clock, so is never reused). */
static const char *trend_key(struct api_req *req, const struct store_trend_query *q, char *key,
                             size_t len)
{
	char num[4][24];
	size_t off = 0;

	snprintf(num[0], sizeof(num[0]), "%lld", (long long)q->since_ms);
	snprintf(num[1], sizeof(num[1]), "%lld", (long long)q->until_ms);
	snprintf(num[2], sizeof(num[2]), "%d", q->limit);
	snprintf(num[3], sizeof(num[3]), "%lld", (long long)q->step_ms);
	key_add(key, len, &off, "trends");
	key_add(key, len, &off, q->service);
	key_add(key, len, &off, query(req, "metric"));
	key_add(key, len, &off, q->environment);
	key_add(key, len, &off, query(req, "step"));
	for (size_t i = 0; i < RD_ARRAY_SIZE(num); i++)
		key_add(key, len, &off, num[i]);
	return key_end(key, len, off);
}

static void get_trends(struct api_req *req)
{
	struct store_trend_query q = {0};
	char buf[2 * GATE_NAME_MAX + 2], key[API_KEY_BUF / 2];
	struct trend_job *j;

	if (trend_query(req, buf, sizeof(buf), &q) < 0)
		return;
	if (api_reply_kept(req, trend_key(req, &q, key, sizeof(key))))
		return;
	j = trend_job_new(req, &q);
	if (!j) {
		api_problem_errno(req, -ENOMEM, "cannot read the trend");
		return;
	}
	api_read_text_off_loop(req, key, "cannot read the trend", trend_read, j, trend_job_free);
}

/* ---- Waivers -------------------------------------------------------- */

/* A text field: required, 1..max bytes. Returns the value or NULL after
 * replying. */
static const char *waiver_text(struct api_req *req, json_t *body, const char *key, size_t max)
{
	json_t *v = json_object_get(body, key);
	char msg[96];

	if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) <= max)
		return json_string_value(v);
	snprintf(msg, sizeof(msg), "required: a string of 1 to %zu bytes", max);
	problem_field(req, key, msg);
	return NULL;
}

/* expires: RFC 3339 in the future, or a duration from now ("7d"). */
static int waiver_expires(struct api_req *req, json_t *body, int64_t now, int64_t *ret)
{
	const char *s = json_string_value(json_object_get(body, "expires"));
	int64_t d;

	if (s && rd_time_parse(s, ret) == 0) {
		if (*ret > now && *ret - now <= WAIVER_MAX_MS)
			return 0;
	} else if (s && rd_parse_duration(s, &d) == 0 && d > 0 && d <= WAIVER_MAX_MS) {
		*ret = now + d;
		return 0;
	}
	problem_field(req, "expires",
	              "required: a future RFC 3339 time or a duration such as \"7d\", "
	              "at most 366 days ahead");
	return -EINVAL;
}

/* The canonical expression of body.expr into buf; replies on error. */
static int waiver_expr(struct api_req *req, json_t *body, char *buf, size_t len)
{
	const char *s = waiver_text(req, body, "expr", WAIVER_TEXT_MAX);
	struct gate_expr ex;
	char why[200], msg[240];

	if (!s)
		return -EINVAL;
	if (gate_parse(s, true, &ex, why, sizeof(why)) < 0) {
		snprintf(msg, sizeof(msg), "not a gate expression: %s", why);
		problem_field(req, "expr", msg);
		return -EINVAL;
	}
	gate_format(&ex, buf, len);
	return 0;
}

/* Validates body into w (pointing into body and expr); replies on error. */
static int waiver_parse(struct api_req *req, json_t *body, char *expr, size_t len,
                        struct store_waiver_new *w)
{
	json_t *env = json_object_get(body, "environment");

	w->service = api_req_name(req);
	w->created_by = api_req_principal(req);
	w->created_at = rd_now_ms();
	if (waiver_expr(req, body, expr, len) < 0)
		return -EINVAL;
	w->expr = expr;
	if (!(w->reason = waiver_text(req, body, "reason", WAIVER_TEXT_MAX)) ||
	    !(w->approver = waiver_text(req, body, "approver", WAIVER_NAME_MAX)) ||
	    waiver_expires(req, body, w->created_at, &w->expires_at) < 0)
		return -EINVAL;
	if (env && !json_is_null(env) && !name_ok(json_string_value(env))) {
		problem_field(req, "environment",
		              "must be an environment name ([A-Za-z0-9._-], 1 to 128) or null");
		return -EINVAL;
	}
	w->environment = json_string_value(env);
	return 0;
}

/* A waiver with its audit trail ("changes"). */
static int waiver_get(struct store *st, const char *service, int64_t id, json_t **ret)
{
	json_t *w = NULL, *changes = NULL;
	int r = store_waiver_get(st, service, id, rd_now_ms(), &w);

	if (r == 0)
		r = store_audit_list(st, 0, id, &changes);
	if (r == 0 && json_object_set_new(w, "changes", changes) < 0)
		r = -ENOMEM;
	if (r < 0) {
		json_decref(w);
		return r;
	}
	*ret = w;
	return 0;
}

static void post_waiver(struct api_req *req)
{
	struct api_app *app = api_req_app(req);
	struct store_waiver_new w = {0};
	char expr[2 * GATE_NAME_MAX + 96], loc[192];
	json_t *body, *created = NULL;
	size_t len;
	const char *buf = api_req_body(req, &len);
	int64_t id;
	int r;

	body = json_loadb(buf ? buf : "", len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(body)) {
		json_decref(body);
		api_problem(req, 400, NULL,
		            "the body must be a JSON object: {expr, reason, approver, expires, "
		            "environment?}");
		return;
	}
	r = waiver_parse(req, body, expr, sizeof(expr), &w);
	if (r == 0) {
		r = store_waiver_create(app->store, &w, &id);
		if (r == 0) {
			api_audit(req, "waiver-create", w.service, 0, id, w.reason);
			r = waiver_get(app->store, w.service, id, &created);
		}
		if (r < 0) {
			api_problem_errno(req, r, "cannot save the waiver");
		} else {
			snprintf(loc, sizeof(loc), "/v1/services/%s/waivers/%lld", w.service,
			         (long long)id);
			api_reply_header(req, "Location", loc);
			api_reply_json(req, 201, created);
		}
	}
	json_decref(body);
}

static void get_waivers(struct api_req *req)
{
	json_t *items = NULL;
	int r = store_waivers_list(api_req_app(req)->store, api_req_name(req), rd_now_ms(), &items);

	if (r < 0) {
		api_problem_errno(req, r, "cannot list waivers");
		return;
	}
	api_reply_json(req, 200, json_pack("{s:o}", "items", items));
}

static void delete_waiver(struct api_req *req)
{
	struct api_app *app = api_req_app(req);
	json_t *w = NULL;
	int r = store_waiver_revoke(app->store, api_req_name(req), api_req_id(req), rd_now_ms());

	if (r == 0) {
		api_audit(req, "waiver-revoke", api_req_name(req), 0, api_req_id(req), NULL);
		r = waiver_get(app->store, api_req_name(req), api_req_id(req), &w);
	}
	if (r < 0) {
		api_problem_errno(req, r, "cannot revoke the waiver");
		return;
	}
	api_reply_json(req, 200, w);
}

const struct api_route api_routes_services[] = {
        {"GET", "/v1/services", get_services, API_ROLE_VIEWER},
        {"GET", "/v1/services/{name}/history", get_history, API_ROLE_VIEWER},
        {"GET", "/v1/services/{name}/trends", get_trends, API_ROLE_VIEWER},
        {"GET", "/v1/services/{name}/waivers", get_waivers, API_ROLE_VIEWER},
        {"POST", "/v1/services/{name}/waivers", post_waiver, API_ROLE_ADMIN, .store_change = true},
        {"DELETE", "/v1/services/{name}/waivers/{id}", delete_waiver, API_ROLE_ADMIN,
         .store_change = true},
        {NULL, NULL, NULL},
};
