/* server: libmicrohttpd on the main libuv loop. MHD runs without a thread
 * of its own (MHD_USE_EPOLL): its epoll fd is watched by a uv_poll_t and
 * MHD_get_timeout() re-arms a uv_timer_t after every MHD_run(), so all
 * request handling happens on the loop that owns the state. Handlers that
 * must wait suspend their connection (MHD_ALLOW_SUSPEND_RESUME).
 *
 * Responses are queued on the second or later call of the access handler:
 * with MHD 0.9.75, queueing on the first call makes every response
 * `Connection: close` (measured: 31k vs 145k req/s). The one exception is
 * a request refused from its headers (route, token, declared size) that
 * carries a body: it is answered on the first call, before the body is
 * read, and the connection closes (docs/security.md, "Hostile clients").
 *
 * Connections are capped in total and per client address, and a
 * connection with nothing in flight (no complete request yet, or idle
 * between requests) is closed after api.idle_timeout. Suspended
 * connections (long-polls, event streams) are not timed out by MHD.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "auth.h"
#include "linger.h"
#include "respcache.h"
#include "lib/util/log.h"
#include "lib/report/metrics.h"
#include "lib/policy/scope.h"
#include "lib/util/util.h"
#include "lib/util/json_text.h"

#define MAX_EXTRA_HEADERS 8

struct api_server {
	uv_loop_t *loop;
	struct MHD_Daemon *d;
	uv_poll_t poll;
	uv_timer_t timer;
	int open_handles;
	struct api_app *app;
	size_t max_body;
	int port;
	char host[INET6_ADDRSTRLEN];
	struct api_req *suspended; /* doubly linked through next/prev */
	/* live streaming responses */
	struct api_stream *streams;
	bool in_run, run_again;
	uint64_t next_request_id;
	struct linger_set lingers; /* refused connections draining (linger.c) */
	/* audit rows the store refused, oldest first, retried (api_audit) */
	struct pending_audit *audits, **audits_tail;
	uv_timer_t audit_timer;
	struct api_cache *cache; /* polled answers (respcache.c) */
};

struct api_req {
	struct api_server *srv;
	struct MHD_Connection *conn;
	char method[16];
	char *path;
	struct api_match match;
	char *body;
	size_t body_len, body_cap;
	bool too_large;
	bool dispatched;
	bool early; /* answered from the headers, body unread */
	bool suspended;
	struct MHD_Response *resp;
	unsigned status;
	api_cleanup_cb cleanup;
	void *cleanup_userdata;
	struct api_req *next, *prev;
	char request_id[65];
	char principal[AUTH_NAME_MAX + 1]; /* token name; "" when none */
	char scope[AUTH_SCOPE_MAX];        /* the token's services; "" for all */
	uint64_t start_ms;                 /* uv_now at arrival, for the log */
	uint64_t start_ns;                 /* uv_hrtime at arrival, for /metrics */
	size_t n_headers;
	char *headers[MAX_EXTRA_HEADERS][2];
	struct api_stream *stream; /* api_stream_start() */
};

static void server_run(struct api_server *srv);
static void on_timer(uv_timer_t *t);

struct api_app *api_req_app(struct api_req *req)
{
	return req->srv->app;
}

uv_loop_t *api_req_loop(struct api_req *req)
{
	return req->srv->loop;
}

const char *api_req_method(struct api_req *req)
{
	return req->method;
}

const char *api_req_path(struct api_req *req)
{
	return req->path;
}

int64_t api_req_id(struct api_req *req)
{
	return req->match.id;
}

const char *api_req_name(struct api_req *req)
{
	return req->match.name;
}

void api_req_set_who(struct api_req *req, const char *name, const char *scope)
{
	snprintf(req->principal, sizeof(req->principal), "%s", name ? name : "");
	snprintf(req->scope, sizeof(req->scope), "%s", scope ? scope : "");
}

const char *api_req_env(struct api_req *req)
{
	return req->match.env;
}

enum api_role api_req_role(struct api_req *req)
{
	return req->match.route ? req->match.route->role : API_ROLE_ANYONE;
}

const char *api_req_principal(struct api_req *req)
{
	return req->principal[0] ? req->principal : NULL;
}

const char *api_req_scope(struct api_req *req)
{
	return req->scope[0] ? req->scope : NULL;
}

bool api_req_sees(struct api_req *req, const char *service)
{
	return scope_allows(req->scope, service);
}

json_t *api_scope_items(struct api_req *req, json_t *items)
{
	json_t *out, *it;
	size_t i;

	if (!req->scope[0] || !items)
		return items;
	out = json_array();
	json_array_foreach (items, i, it) {
		if (out && api_req_sees(req, json_string_value(json_object_get(it, "service"))))
			json_array_append(out, it);
	}
	json_decref(items);
	return out;
}

/* An audit row the store refused (a full disk): the change it records
 * has happened (a cancel goes ahead even then), so the row is kept and
 * written later, in order, rather than lost. */
struct pending_audit {
	struct pending_audit *next;
	struct store_audit_new a; /* the strings below */
	char *action, *by, *service, *reason;
};

#define AUDIT_RETRY_MS 1000

static void pending_audit_free(struct pending_audit *p)
{
	free(p->action);
	free(p->by);
	free(p->service);
	free(p->reason);
	free(p);
}

static char *strdup_opt(const char *s, bool *ok)
{
	char *c = s ? strdup(s) : NULL;

	if (s && !c)
		*ok = false;
	return c;
}

static int audit_keep(struct api_server *srv, const struct store_audit_new *a)
{
	struct pending_audit *p = calloc(1, sizeof(*p));
	bool ok = p != NULL;

	if (!p)
		return -ENOMEM;
	p->action = strdup_opt(a->action, &ok);
	p->by = strdup_opt(a->by, &ok);
	p->service = strdup_opt(a->service, &ok);
	p->reason = strdup_opt(a->reason, &ok);
	if (!ok) {
		pending_audit_free(p);
		return -ENOMEM;
	}
	p->a = *a;
	p->a.action = p->action;
	p->a.by = p->by;
	p->a.service = p->service;
	p->a.reason = p->reason;
	*srv->audits_tail = p;
	srv->audits_tail = &p->next;
	return 0;
}

/* Whether a later try may succeed (a full disk, a lock), as opposed to
 * a row the store refuses as invalid, which no retry fixes. */
static bool audit_transient(int r)
{
	return r != -EINVAL && r != -ENOENT && r != -EEXIST;
}

/* Writes the kept rows, oldest first, until the store refuses one for a
 * passing reason; a row refused as invalid is reported and dropped. */
static int audit_flush(struct api_server *srv)
{
	struct pending_audit *p;
	int r;

	while ((p = srv->audits)) {
		r = store_audit_add(srv->app->store, &p->a);
		if (r < 0 && audit_transient(r))
			return r;
		if (r < 0)
			rd_log(RD_LOG_WARN, NULL, "Failed to record '%s' by %s: %s, ignoring",
			       p->action, p->by ? p->by : "-", store_errmsg(srv->app->store));
		srv->audits = p->next;
		if (!srv->audits)
			srv->audits_tail = &srv->audits;
		pending_audit_free(p);
	}
	return 0;
}

/* Shutdown: one last try, then what the store still refuses is lost,
 * said at error with what it was. */
static void audit_drop(struct api_server *srv)
{
	struct pending_audit *p;

	uv_timer_stop(&srv->audit_timer);
	if (audit_flush(srv) == 0)
		return;
	while ((p = srv->audits)) {
		srv->audits = p->next;
		rd_log(RD_LOG_ERROR, NULL,
		       "Failed to record '%s' by %s on %s (run %lld, waiver %lld): %s; lost",
		       p->action, p->by ? p->by : "-", p->service, (long long)p->a.run_id,
		       (long long)p->a.waiver_id, store_errmsg(srv->app->store));
		pending_audit_free(p);
	}
	srv->audits_tail = &srv->audits;
}

static void on_audit_timer(uv_timer_t *t)
{
	struct api_server *srv = t->data;

	if (audit_flush(srv) == 0)
		uv_timer_stop(t);
	else
		rd_log(RD_LOG_DEBUG, NULL, "Failed to record the pending changes: %s, retrying",
		       store_errmsg(srv->app->store));
}

void api_audit(struct api_req *req, const char *action, const char *service, int64_t run_id,
               int64_t waiver_id, const char *reason)
{
	struct api_server *srv = req->srv;
	struct store *st = srv->app->store;
	char buf[256];
	struct store_audit_new a = {
	        .action = action,
	        .by = api_req_principal(req),
	        .service = service,
	        .reason = reason,
	        .run_id = run_id,
	        .waiver_id = waiver_id,
	        .at = rd_now_ms(),
	};
	int r = 0;

	if (!service && run_id > 0 && (r = store_run_service(st, run_id, buf, sizeof(buf))) == 0)
		a.service = buf;
	if (r == 0)
		r = audit_flush(srv);
	if (r == 0)
		r = store_audit_add(st, &a);
	if (r == 0 || !a.service || !audit_transient(r))
		goto out;
	/* The change was made: keep its record until the store takes it. */
	rd_log(RD_LOG_WARN, NULL, "Failed to record '%s' by %s: %s, keeping it and retrying",
	       action, a.by ? a.by : "-", store_errmsg(st));
	if (audit_keep(srv, &a) == 0) {
		if (!uv_is_active((uv_handle_t *)&srv->audit_timer))
			uv_timer_start(&srv->audit_timer, on_audit_timer, AUDIT_RETRY_MS,
			               AUDIT_RETRY_MS);
		return;
	}
out:
	if (r < 0)
		rd_log(RD_LOG_WARN, NULL, "Failed to record '%s' by %s: %s, ignoring", action,
		       a.by ? a.by : "-", store_errmsg(st));
}

const char *api_req_query(struct api_req *req, const char *key)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *api_req_header(struct api_req *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *api_req_body(struct api_req *req, size_t *ret_len)
{
	*ret_len = req->body_len;
	return req->body ? req->body : "";
}

void api_reply_header(struct api_req *req, const char *name, const char *value)
{
	char *n, *v;

	if (req->n_headers == MAX_EXTRA_HEADERS)
		return;
	n = strdup(name);
	v = strdup(value);
	if (!n || !v) {
		free(n);
		free(v);
		return;
	}
	req->headers[req->n_headers][0] = n;
	req->headers[req->n_headers][1] = v;
	req->n_headers++;
}

static void run_cleanup(struct api_req *req)
{
	api_cleanup_cb cb = req->cleanup;

	req->cleanup = NULL;
	if (cb)
		cb(req, req->cleanup_userdata);
}

static void unlink_suspended(struct api_req *req)
{
	if (req->prev)
		req->prev->next = req->next;
	else
		req->srv->suspended = req->next;
	if (req->next)
		req->next->prev = req->prev;
	req->next = req->prev = NULL;
}

/* Queues resp (taken) as req's answer with the common headers, and
 * resumes req if it was parked. */
static void reply_response(struct api_req *req, unsigned status, const char *content_type,
                           struct MHD_Response *resp, const char *cache_control)
{
	if (content_type)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	MHD_add_response_header(resp, "X-Request-Id", req->request_id);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, cache_control);
	for (size_t i = 0; i < req->n_headers; i++)
		MHD_add_response_header(resp, req->headers[i][0], req->headers[i][1]);
	req->resp = resp;
	req->status = status;
	if (req->suspended) {
		req->suspended = false;
		unlink_suspended(req);
		run_cleanup(req);
		MHD_resume_connection(req->conn);
		server_run(req->srv);
	}
}

/* Takes ownership of body (malloc'd, len bytes). */
static void reply(struct api_req *req, unsigned status, const char *content_type, char *body,
                  size_t len)
{
	struct MHD_Response *resp;

	if (req->resp) { /* a second reply is a bug in a handler; keep the first */
		free(body);
		return;
	}
	resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return;
	}
	reply_response(req, status, content_type, resp, "no-store");
}

void api_reply_text(struct api_req *req, unsigned status, const char *content_type,
                    const char *body, size_t len)
{
	char *copy = malloc(len + 1);

	if (!copy)
		return;
	memcpy(copy, body, len);
	reply(req, status, content_type, copy, len);
}

void api_reply_json(struct api_req *req, unsigned status, json_t *json)
{
	const char *ct = status >= 400 ? "application/problem+json" : "application/json";
	char *text = json ? rd_json_dumps(json, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL, *out;
	size_t len;

	json_decref(json);
	if (!text) {
		static const char oom[] = "{\"title\":\"Internal Server Error\",\"status\":500,"
		                          "\"detail\":\"out of memory\"}";

		api_reply_text(req, 500, "application/problem+json", oom, sizeof(oom) - 1);
		return;
	}
	len = strlen(text);
	/* Newline-terminated, so `curl` output ends cleanly in a terminal. */
	out = malloc(len + 2);
	if (out) {
		memcpy(out, text, len);
		out[len++] = '\n';
		out[len] = '\0';
	}
	free(text);
	if (out)
		reply(req, status, ct, out, len);
}

/* ---- polled answers from their kept bytes (respcache.c) ---- */

static void body_release(void *cls)
{
	api_body_unref(rd_container_of((char *)cls, struct api_body, data[0]));
}

/* Whether the client's If-None-Match names etag (or is "*"). */
static bool etag_matches(struct api_req *req, const char *etag)
{
	const char *inm = api_req_header(req, MHD_HTTP_HEADER_IF_NONE_MATCH);
	size_t n = strlen(etag);

	if (!inm)
		return false;
	for (const char *p = inm; *p;) {
		p += strspn(p, " \t,");
		if (*p == '*')
			return true;
		if (strncmp(p, "W/", 2) == 0)
			p += 2;
		if (strncmp(p, etag, n) == 0 &&
		    (p[n] == '\0' || p[n] == ',' || p[n] == ' ' || p[n] == '\t'))
			return true;
		p += strcspn(p, ",");
	}
	return false;
}

/* 200 with b's bytes (shared with the cache, not copied), or 304 when the
 * client already has them. */
static void reply_body(struct api_req *req, struct api_body *b)
{
	struct MHD_Response *resp;
	bool same = etag_matches(req, b->etag);

	if (req->resp)
		return;
	if (same) {
		resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	} else {
		resp = MHD_create_response_from_buffer_with_free_callback_cls(
		        b->len, b->data, body_release, b->data);
		if (resp)
			api_body_ref(b);
	}
	if (!resp)
		return;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, b->etag);
	reply_response(req, same ? MHD_HTTP_NOT_MODIFIED : 200,
	               same              ? NULL
	               : b->content_type ? b->content_type
	                                 : "application/json",
	               resp, "no-cache");
}

/* key with the caller's scope: a scoped token's answer is kept apart. */
static int scoped_key(struct api_req *req, const char *key, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s\n%s", key, req->scope);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

uint64_t api_req_generation(struct api_req *req)
{
	return store_generation(req->srv->app->store);
}

json_t *api_req_cache_stats(struct api_req *req)
{
	struct api_cache_stats s;

	if (!req->srv->cache)
		return NULL;
	api_cache_stats(req->srv->cache, &s);
	return json_pack("{s:I, s:I, s:I, s:I, s:I}", "entries", (json_int_t)s.entries, "bytes",
	                 (json_int_t)s.bytes, "max_bytes", (json_int_t)s.max_bytes, "hits",
	                 (json_int_t)s.hits, "misses", (json_int_t)s.misses);
}

struct api_body *api_kept_get(struct api_req *req, const char *key)
{
	char k[API_KEY_BUF];
	struct api_body *b;

	if (!req->srv->cache || !key[0] || scoped_key(req, key, k, sizeof(k)) < 0)
		return NULL;
	b = api_cache_get(req->srv->cache, k, api_req_generation(req));
	return b ? api_body_ref(b) : NULL;
}

void api_kept_put(struct api_req *req, const char *key, uint64_t generation, struct api_body *b)
{
	char k[API_KEY_BUF];

	if (b && req->srv->cache && key[0] && scoped_key(req, key, k, sizeof(k)) == 0)
		api_cache_put(req->srv->cache, k, generation, b);
}

bool api_reply_kept(struct api_req *req, const char *key)
{
	struct api_body *b = api_kept_get(req, key);

	if (!b)
		return false;
	reply_body(req, b);
	api_body_unref(b);
	return true;
}

struct api_body *api_body_of_json(json_t *json)
{
	char *text = json ? rd_json_dumps(json, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
	struct api_body *b = NULL;
	size_t len;

	json_decref(json);
	if (text) {
		len = strlen(text);
		text[len] = '\n'; /* as api_reply_json: the NUL becomes the newline */
		b = api_body_new(text, len + 1);
		free(text);
	}
	return b;
}

void api_reply_body_kept(struct api_req *req, const char *key, uint64_t generation,
                         struct api_body *b)
{
	if (!b) {
		api_problem_errno(req, -ENOMEM, "reply");
		return;
	}
	api_kept_put(req, key, generation, b);
	reply_body(req, b);
	api_body_unref(b);
}

void api_reply_json_kept(struct api_req *req, const char *key, uint64_t generation, json_t *json)
{
	api_reply_body_kept(req, key, generation, api_body_of_json(json));
}

void api_req_suspend(struct api_req *req, api_cleanup_cb cleanup, void *userdata)
{
	req->cleanup = cleanup;
	req->cleanup_userdata = userdata;
	if (req->suspended)
		return; /* a new owner of a parked request */
	req->suspended = true;
	req->next = req->srv->suspended;
	if (req->next)
		req->next->prev = req;
	req->srv->suspended = req;
}

/* --- streaming responses (api_stream_*, for Server-Sent Events) ---
 *
 * The body comes from a buffer the handler fills over time. When MHD asks
 * for data and the buffer is empty, the content reader suspends the
 * connection (MHD then neither polls nor times it out: no busy loop) and
 * a later write resumes it. The stream is shared by the request and the
 * MHD response, whichever goes last frees it; after the request ended
 * (client gone, server stopping) writes fail with -EPIPE.
 */
struct api_stream {
	struct api_req *req; /* NULL once the request has ended */
	struct api_server *srv;
	char *buf;
	size_t len, off, cap;
	bool ended, paused;
	int refs;
	struct api_stream *next, *prev; /* srv->streams */
};

static void stream_unref(struct api_stream *s)
{
	if (--s->refs > 0)
		return;
	free(s->buf);
	free(s);
}

static void stream_unref_cb(void *cls)
{
	stream_unref(cls);
}

/* Resumes a paused stream. MHD runs on the next loop iteration, never
 * from here: a write may come from deep inside a scheduler callback, and
 * running MHD there could end the request (client gone) and free the
 * writer's state under its feet. */
static void stream_wake(struct api_stream *s)
{
	if (!s->paused || !s->req)
		return;
	s->paused = false;
	MHD_resume_connection(s->req->conn);
	if (s->srv->in_run)
		s->srv->run_again = true;
	else
		uv_timer_start(&s->srv->timer, on_timer, 0, 0);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct api_stream *s = cls;
	size_t n;

	if (!s->req)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (s->off == s->len) {
		s->off = s->len = 0;
		if (s->ended)
			return MHD_CONTENT_READER_END_OF_STREAM;
		s->paused = true;
		MHD_suspend_connection(s->req->conn);
		return 0;
	}
	n = s->len - s->off < max ? s->len - s->off : max;
	memcpy(out, s->buf + s->off, n);
	s->off += n;
	return (ssize_t)n;
}

/* The request ended: the stream outlives it only for the MHD response. */
static void stream_detach(struct api_req *req)
{
	struct api_stream *s = req->stream;

	if (!s)
		return;
	req->stream = NULL;
	s->req = NULL;
	if (s->prev)
		s->prev->next = s->next;
	else
		s->srv->streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
	stream_unref(s);
}

struct api_stream *api_stream_start(struct api_req *req, const char *content_type,
                                    api_cleanup_cb cleanup, void *userdata)
{
	struct api_stream *s;
	struct MHD_Response *resp;

	if (req->resp || req->suspended || req->stream)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s,
	                                         stream_unref_cb);
	if (!resp) {
		free(s);
		return NULL;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	MHD_add_response_header(resp, "X-Request-Id", req->request_id);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no"); /* proxies: do not batch */
	for (size_t i = 0; i < req->n_headers; i++)
		MHD_add_response_header(resp, req->headers[i][0], req->headers[i][1]);
	s->req = req;
	s->srv = req->srv;
	s->refs = 2; /* the request and the response */
	s->next = req->srv->streams;
	if (s->next)
		s->next->prev = s;
	req->srv->streams = s;
	req->stream = s;
	req->resp = resp;
	req->status = 200;
	req->cleanup = cleanup;
	req->cleanup_userdata = userdata;
	return s;
}

int api_stream_write(struct api_stream *s, const char *data, size_t len)
{
	size_t pending;

	if (!s->req || s->ended)
		return -EPIPE;
	pending = s->len - s->off;
	if (len > API_STREAM_MAX_BUFFER - pending)
		return -ENOBUFS;
	if (s->off > 0) { /* keep the unsent bytes at the front */
		memmove(s->buf, s->buf + s->off, pending);
		s->len = pending;
		s->off = 0;
	}
	if (s->len + len > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		char *b;

		while (cap < s->len + len)
			cap *= 2;
		b = realloc(s->buf, cap);
		if (!b)
			return -ENOMEM;
		s->buf = b;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, data, len);
	s->len += len;
	stream_wake(s);
	return 0;
}

void api_stream_end(struct api_stream *s)
{
	if (!s->req || s->ended)
		return;
	s->ended = true;
	stream_wake(s);
}

static void req_free(struct api_req *req)
{
	if (req->suspended)
		unlink_suspended(req);
	run_cleanup(req);
	stream_detach(req);
	if (req->resp)
		MHD_destroy_response(req->resp);
	for (size_t i = 0; i < req->n_headers; i++) {
		free(req->headers[i][0]);
		free(req->headers[i][1]);
	}
	free(req->path);
	free(req->body);
	free(req);
}

/* The client's X-Request-Id when it is sane (1-64 of [A-Za-z0-9._:-]),
 * so a pipeline can follow its request through our log; else our own. */
static void set_request_id(struct api_req *req, const char *client)
{
	size_t n = client ? strlen(client) : 0;
	bool ok = n > 0 && n < sizeof(req->request_id);

	for (size_t i = 0; ok && i < n; i++) {
		char c = client[i];

		ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		     c == '.' || c == '_' || c == ':' || c == '-';
	}
	if (ok)
		snprintf(req->request_id, sizeof(req->request_id), "%s", client);
	else
		snprintf(req->request_id, sizeof(req->request_id), "%016llx",
		         (unsigned long long)++req->srv->next_request_id);
}

static struct api_req *req_new(struct api_server *srv, struct MHD_Connection *conn,
                               const char *method, const char *url)
{
	struct api_req *req = calloc(1, sizeof(*req));
	const char *cl;

	if (!req)
		return NULL;
	req->srv = srv;
	req->conn = conn;
	snprintf(req->method, sizeof(req->method), "%s", method);
	req->path = strdup(url);
	if (!req->path) {
		free(req);
		return NULL;
	}
	set_request_id(req, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id"));
	req->start_ms = uv_now(srv->loop);
	req->start_ns = uv_hrtime();
	cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl) {
		int64_t n;

		if (rd_parse_int64(cl, 0, INT64_MAX, &n) == 0 && (uint64_t)n > srv->max_body)
			req->too_large = true;
	}
	return req;
}

static int append_body(struct api_req *req, const char *data, size_t len)
{
	if (req->too_large || len > req->srv->max_body - req->body_len) {
		req->too_large = true;
		return 0;
	}
	if (req->body_len + len + 1 > req->body_cap) {
		size_t cap = req->body_cap ? req->body_cap : 4096;
		char *b;

		while (cap < req->body_len + len + 1)
			cap *= 2;
		b = realloc(req->body, cap);
		if (!b)
			return -ENOMEM;
		req->body = b;
		req->body_cap = cap;
	}
	memcpy(req->body + req->body_len, data, len);
	req->body_len += len;
	req->body[req->body_len] = '\0';
	return 0;
}

/* The Authorization header, or on a route that takes one (query_token)
 * the ?token= query parameter as a bearer token in buf. NULL: neither. A
 * token too long for buf is left out (an unknown token: 401). */
static const char *authorization(struct api_req *req, char *buf, size_t len)
{
	const char *h = api_req_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
	const char *t = api_req_query(req, "token");

	if (h || !req->match.route->query_token || !t || !*t)
		return h;
	if ((size_t)snprintf(buf, len, "Bearer %s", t) >= len)
		return NULL;
	return buf;
}

/* The route's role against the caller's token (api/auth.h). GET
 * /metrics may be public by configuration. False when answered. */
static bool authorize(struct api_req *req)
{
	struct auth *a = req->srv->app->auth;
	enum api_role need = api_req_role(req);
	struct auth_who who = {NULL, ""};
	char retry[16], bearer[AUTH_TOKEN_MAX + 8];
	int retry_s = 1, r;

	if (need != API_ROLE_ANYONE && strcmp(req->path, "/metrics") == 0 && auth_public_metrics(a))
		need = API_ROLE_ANYONE;
	r = auth_check(a, authorization(req, bearer, sizeof(bearer)), need, uv_now(req->srv->loop),
	               &who, &retry_s);
	if (r == 0) {
		snprintf(req->principal, sizeof(req->principal), "%s", who.name ? who.name : "");
		snprintf(req->scope, sizeof(req->scope), "%s", who.scope ? who.scope : "");
		return true;
	}
	if (r == -EACCES) {
		api_reply_header(req, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"readyd\"");
		api_problem(req, 401, NULL,
		            "send Authorization: Bearer TOKEN with a token "
		            "from readyd.yaml (see readyd hash-token)");
	} else if (r == -EPERM) {
		api_problem(req, 403, NULL, "%s %s needs the %s role", req->method, req->path,
		            auth_role_to_string(need));
	} else {
		snprintf(retry, sizeof(retry), "%d", retry_s);
		api_reply_header(req, "Retry-After", retry);
		api_problem(req, 429, NULL, "this token is over its request rate; retry in %d s",
		            retry_s);
	}
	return false;
}

/* Route, token and declared size, decided from the headers alone, before
 * a byte of the body is read. False when answered (404, 405, 401, 403,
 * 429 or 413). */
static bool admit(struct api_req *req)
{
	char allow[64];
	const char *method = strcmp(req->method, "HEAD") == 0 ? "GET" : req->method;
	int r = api_route(method, req->path, &req->match, allow, sizeof(allow));

	if (r == -ENOENT) {
		api_problem(req, 404, NULL, "no resource at %s; see docs/openapi.yaml", req->path);
	} else if (r == -EPERM) {
		api_reply_header(req, "Allow", allow);
		api_problem(req, 405, NULL, "%s is not allowed on %s; allowed: %s", req->method,
		            req->path, allow);
	} else if (!authorize(req)) {
		return false; /* answered 401, 403 or 429 */
	} else if (req->too_large) {
		api_problem(req, 413, NULL, "request body is larger than the limit of %zu bytes",
		            req->srv->max_body);
	} else {
		return true;
	}
	return false;
}

/* A token limited to some services sees nothing of the others: a run or
 * service outside its scope is answered exactly like one that does not
 * exist, so names do not leak. Every route under /v1/runs/{id} and
 * /v1/services/{name} is covered here, before its handler. False when
 * answered. */
static bool in_scope(struct api_req *req)
{
	const char *pattern = req->match.route->pattern;
	char service[256], what[48];
	int r;

	if (!req->scope[0])
		return true;
	if (strncmp(pattern, "/v1/runs/{id}", 13) == 0) {
		r = store_run_service(req->srv->app->store, req->match.id, service,
		                      sizeof(service));
		if (r == 0 && scope_allows(req->scope, service))
			return true;
		snprintf(what, sizeof(what), "run %lld", (long long)req->match.id);
		api_problem_errno(req, r < 0 && r != -ENOENT ? r : -ENOENT, what);
		return false;
	}
	if (strncmp(pattern, "/v1/services/{name}", 19) == 0 &&
	    !scope_allows(req->scope, req->match.name)) {
		api_problem(req, 404, NULL, "no service %s", req->match.name);
		return false;
	}
	return true;
}

/* While the database file is gone or replaced (app->db_problem), what is
 * written into the open file is lost at the next start: a route marked
 * store_change (invalidate, rejudge, waivers, stored specs, runs started
 * from them) is refused like a submit, rather than acknowledged and then
 * forgotten. False when answered. */
static bool can_keep_change(struct api_req *req)
{
	const char *why = req->srv->app->db_problem;

	if (!why || !req->match.route->store_change)
		return true;
	api_reply_header(req, "Retry-After", "30");
	api_problem(req, 503, NULL, "cannot keep this change: store: %s", why);
	return false;
}

/* Once the whole request is in: the handler, unless admit() answered or
 * a body without Content-Length outgrew the cap. */
static void dispatch(struct api_req *req)
{
	if (req->resp)
		return;
	if (req->too_large)
		api_problem(req, 413, NULL, "request body is larger than the limit of %zu bytes",
		            req->srv->max_body);
	else if (in_scope(req) && can_keep_change(req))
		req->match.route->handler(req);
}

/* A body follows the headers: Content-Length > 0 or chunked. */
static bool has_body(struct api_req *req)
{
	const char *cl = api_req_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);

	if (api_req_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING))
		return true;
	return cl && strcmp(cl, "0") != 0;
}

static enum MHD_Result queue_pending(struct api_req *req)
{
	enum MHD_Result ret = MHD_queue_response(req->conn, req->status, req->resp);

	MHD_destroy_response(req->resp);
	req->resp = NULL;
	return ret;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
	struct api_server *srv = cls;
	struct api_req *req = *con_cls;

	if (!req) {
		req = req_new(srv, conn, method, url);
		if (!req)
			return MHD_NO;
		*con_cls = req;
		/* A refused request with a body is answered now, unread: a
		 * hostile client must not make us buffer what it may not send.
		 * Queueing on the first call closes the connection afterwards,
		 * which is what we want (the unread body must not be parsed as
		 * the next request). Otherwise answer on the next call. */
		if (!admit(req) && has_body(req)) {
			req->dispatched = req->early = true;
			return queue_pending(req);
		}
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		/* A request answered from its headers never buffers a body. */
		if (!req->dispatched && !req->resp &&
		    append_body(req, upload_data, *upload_data_size) < 0)
			return MHD_NO;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (!req->dispatched) {
		req->dispatched = true;
		dispatch(req);
		if (!req->resp && req->suspended) {
			MHD_suspend_connection(conn);
			return MHD_YES;
		}
		if (!req->resp)
			api_problem(req, 500, NULL, "the handler for %s %s gave no answer",
			            req->method, req->path);
	}
	if (req->resp)
		return queue_pending(req);
	return MHD_YES;
}

/* One line per request: method and path in the quoted message (the path
 * is the client's), the rest as fields. Never headers or bodies. */
static void log_request(struct api_req *req, enum MHD_RequestTerminationCode toe)
{
	char fields[256];

	snprintf(fields, sizeof(fields), "request_id=%s status=%u duration_ms=%llu token=%s%s",
	         req->request_id, req->status,
	         (unsigned long long)(uv_now(req->srv->loop) - req->start_ms),
	         req->principal[0] ? req->principal : "-",
	         toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=true");
	rd_log(RD_LOG_INFO, fields, "%s %s", req->method, req->path);
}

/* The client of a request refused unread may still be sending: keep
 * draining so that closing does not reset the answer away (linger.c). */
static void linger_conn(struct api_server *srv, struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
	        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	int r;

	if (!ci)
		return;
	r = linger_add(&srv->lingers, ci->connect_fd);
	if (r < 0)
		rd_log(RD_LOG_DEBUG, NULL, "Failed to linger on a refused connection: %s, ignoring",
		       strerror(-r));
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct api_req *req = *con_cls;

	if (req) {
		if (req->early)
			linger_conn(req->srv, conn);
		log_request(req, toe);
		if (req->dispatched) /* the route pattern, never the path: bounded labels */
			metrics_http_request(
			        req->method, req->match.route ? req->match.route->pattern : NULL,
			        req->status, (double)(uv_hrtime() - req->start_ns) / 1e9);
		req_free(req);
	}
	*con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	rd_log(RD_LOG_DEBUG, "component=mhd", "%s", msg);
}

static void on_timer(uv_timer_t *t)
{
	server_run(rd_container_of(t, struct api_server, timer));
}

/* Lets MHD do all it can without blocking, then re-arms the timer from
 * MHD_get_timeout(). Guarded: a handler inside MHD_run may answer another,
 * suspended request, which resumes it and asks for another run. */
static void server_run(struct api_server *srv)
{
	MHD_UNSIGNED_LONG_LONG to;

	if (srv->in_run) {
		srv->run_again = true;
		return;
	}
	srv->in_run = true;
	do {
		srv->run_again = false;
		MHD_run(srv->d);
	} while (srv->run_again);
	srv->in_run = false;
	/* tests/bad-input: libmicrohttpd 0.9.75 can leave a
	 * connection with work to do and no event to come (a query string
	 * with more arguments than the connection's memory holds: it logs a
	 * 431 and waits), which held the client until the 60 s connection
	 * timeout. Running MHD at least once a second bounds that to 1 s. */
	if (MHD_get_timeout(srv->d, &to) != MHD_YES || to > 1000)
		to = 1000;
	uv_timer_start(&srv->timer, on_timer, (uint64_t)to, 0);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	server_run(rd_container_of(h, struct api_server, poll));
}

/* "HOST:PORT" or "[V6]:PORT" -> sockaddr; the host may be a name. */
static int resolve_listen(const char *listen, struct sockaddr_storage *ret_sa, char *err,
                          size_t errlen)
{
	char host[256];
	const char *colon = strrchr(listen, ':');
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
	size_t hl;
	int64_t port;
	int r;

	if (!colon || rd_parse_int64(colon + 1, 0, 65535, &port) < 0) {
		snprintf(err, errlen, "listen address '%s' is not HOST:PORT", listen);
		return -EINVAL;
	}
	hl = (size_t)(colon - listen);
	if (hl >= 2 && listen[0] == '[' && listen[hl - 1] == ']')
		listen++, hl -= 2;
	if (hl == 0 || hl >= sizeof(host)) {
		snprintf(err, errlen, "listen address '%s' has no host", listen);
		return -EINVAL;
	}
	memcpy(host, listen, hl);
	host[hl] = '\0';
	r = getaddrinfo(host, NULL, &hints, &res);
	if (r != 0) {
		snprintf(err, errlen, "cannot resolve listen host '%s': %s", host, gai_strerror(r));
		return -EHOSTUNREACH;
	}
	memcpy(ret_sa, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	if (ret_sa->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ret_sa)->sin6_port = htons((uint16_t)port);
	else
		((struct sockaddr_in *)ret_sa)->sin_port = htons((uint16_t)port);
	return 0;
}

static int start_daemon(struct api_server *srv, const struct api_config *cfg,
                        const struct sockaddr_storage *sa, char *err, size_t errlen)
{
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	struct MHD_OptionItem opts[12];
	size_t n = 0;

	if (cfg->listen_fd >= 0) {
		opts[n++] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, cfg->listen_fd, NULL};
	} else {
		if (sa->ss_family == AF_INET6)
			flags |= MHD_USE_IPv6;
		opts[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, (void *)sa};
	}
	opts[n++] =
	        (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT,
	                                cfg->max_connections ? cfg->max_connections : 1024, NULL};
	if (cfg->connection_memory)
		opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT,
		                                    (intptr_t)cfg->connection_memory, NULL};
	opts[n++] = (struct MHD_OptionItem){
	        MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	        cfg->per_ip_connections ? cfg->per_ip_connections : API_DEFAULT_PER_IP, NULL};
	opts[n++] = (struct MHD_OptionItem){
	        MHD_OPTION_CONNECTION_TIMEOUT,
	        cfg->idle_timeout_s ? cfg->idle_timeout_s : API_DEFAULT_IDLE_TIMEOUT_S, NULL};
	if (cfg->tls_cert_pem && cfg->tls_key_pem) {
		flags |= MHD_USE_TLS;
		opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0,
		                                    (void *)cfg->tls_cert_pem};
		opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0,
		                                    (void *)cfg->tls_key_pem};
	}
	opts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
	srv->d = MHD_start_daemon(flags, 0, NULL, NULL, on_access, srv, MHD_OPTION_NOTIFY_COMPLETED,
	                          on_completed, srv, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv,
	                          MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	if (!srv->d) {
		snprintf(err, errlen, "cannot listen on %s: %s",
		         cfg->listen_fd >= 0 ? "the inherited socket" : cfg->listen,
		         errno ? strerror(errno) : "libmicrohttpd refused to start");
		return -EADDRINUSE;
	}
	return 0;
}

static void record_address(struct api_server *srv, const struct sockaddr_storage *sa)
{
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);

	srv->port = info ? info->port : 0;
	if (sa->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, srv->host,
		          sizeof(srv->host));
	else if (sa->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, srv->host,
		          sizeof(srv->host));
	else
		snprintf(srv->host, sizeof(srv->host), "inherited");
}

static void on_closed(uv_handle_t *h)
{
	struct api_server *srv = h->data;

	if (--srv->open_handles == 0) {
		api_cache_free(srv->cache);
		free(srv);
	}
}

int api_server_new(uv_loop_t *loop, const struct api_config *cfg, struct api_app *app,
                   struct api_server **ret_srv, char *err, size_t errlen)
{
	struct sockaddr_storage sa = {0};
	const union MHD_DaemonInfo *info;
	struct api_server *srv;
	int r;

	if (cfg->listen_fd < 0 && (r = resolve_listen(cfg->listen, &sa, err, errlen)) < 0)
		return r;
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	srv->loop = loop;
	srv->app = app;
	srv->max_body = cfg->max_body ? cfg->max_body : API_DEFAULT_MAX_BODY;
	linger_set_init(&srv->lingers, loop);
	srv->audits_tail = &srv->audits;
	if (api_cache_new(cfg->cache_memory ? cfg->cache_memory : API_CACHE_DEFAULT_BYTES,
	                  &srv->cache) < 0)
		srv->cache = NULL; /* answers are then computed every time */
	r = start_daemon(srv, cfg, &sa, err, errlen);
	if (r < 0) {
		api_cache_free(srv->cache);
		free(srv);
		return r;
	}
	if (cfg->listen_fd >= 0) { /* socket activation: name the inherited address */
		socklen_t sl = sizeof(sa);

		if (getsockname(cfg->listen_fd, (struct sockaddr *)&sa, &sl) < 0)
			sa.ss_family = AF_UNSPEC;
	}
	record_address(srv, &sa);
	info = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_EPOLL_FD);
	uv_timer_init(loop, &srv->timer);
	uv_timer_init(loop, &srv->audit_timer);
	srv->timer.data = srv->audit_timer.data = srv;
	r = uv_poll_init(loop, &srv->poll, info->epoll_fd);
	if (r < 0) {
		snprintf(err, errlen, "cannot watch the HTTP server's epoll fd: %s",
		         uv_strerror(r));
		MHD_stop_daemon(srv->d);
		srv->open_handles = 2;
		uv_close((uv_handle_t *)&srv->timer, on_closed);
		uv_close((uv_handle_t *)&srv->audit_timer, on_closed);
		return r;
	}
	srv->open_handles = 3;
	uv_poll_start(&srv->poll, UV_READABLE, on_poll);
	server_run(srv);
	*ret_srv = srv;
	return 0;
}

int api_server_port(struct api_server *srv)
{
	return srv->port;
}

const char *api_server_host(struct api_server *srv)
{
	return srv->host;
}

void api_server_free(struct api_server *srv)
{
	if (!srv)
		return;
	/* MHD refuses to stop with suspended connections: answer them first. */
	while (srv->suspended)
		api_problem(srv->suspended, 503, NULL, "readyd is shutting down; retry later");
	/* Streams end (their handlers' cleanups run when MHD closes them). */
	for (struct api_stream *s = srv->streams; s; s = s->next) {
		s->ended = true;
		if (s->paused) {
			s->paused = false;
			MHD_resume_connection(s->req->conn);
		}
	}
	uv_poll_stop(&srv->poll);
	uv_timer_stop(&srv->timer);
	MHD_stop_daemon(srv->d);
	linger_set_deinit(&srv->lingers);
	audit_drop(srv);
	srv->poll.data = srv;
	srv->timer.data = srv;
	uv_close((uv_handle_t *)&srv->poll, on_closed);
	uv_close((uv_handle_t *)&srv->timer, on_closed);
	uv_close((uv_handle_t *)&srv->audit_timer, on_closed);
}
