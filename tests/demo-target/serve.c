/* serve: the HTTP side of the demo target: routing, the /v1/predict
 * service path, /metrics, /version, /healthz. MHD runs one thread per
 * connection, so a delay is a plain sleep in that thread and never holds up
 * another connection. Two rules keep the numbers honest: the response is
 * queued on the handler's last call, never its first (queueing on the
 * first makes MHD 0.9.75 answer "Connection: close"), and a request's
 * delay is recorded before its answer is queued, so a client that has its
 * answers always finds them in /admin/delays.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "demo-target.h"

enum route {
	ROUTE_PREDICT,
	ROUTE_STREAM,
	ROUTE_METRICS,
	ROUTE_VERSION,
	ROUTE_HEALTHZ,
	ROUTE_ADMIN
};

static const struct {
	const char *path;
	enum route route;
	enum admin_route admin;
	const char *allow; /* also the Allow header of a 405 */
} routes[] = {
        {"/v1/predict", ROUTE_PREDICT, 0, "GET, POST"},
        {"/v1/completions", ROUTE_STREAM, 0, "GET, POST"},
        {"/metrics", ROUTE_METRICS, 0, "GET, HEAD"},
        {"/version", ROUTE_VERSION, 0, "GET, HEAD"},
        {"/healthz", ROUTE_HEALTHZ, 0, "GET, HEAD"},
        {"/admin/fault", ROUTE_ADMIN, ADMIN_FAULT, "POST"},
        {"/admin/rollback", ROUTE_ADMIN, ADMIN_ROLLBACK, "POST"},
        {"/admin/rollforward", ROUTE_ADMIN, ADMIN_ROLLFORWARD, "POST"},
        {"/admin/delays", ROUTE_ADMIN, ADMIN_DELAYS, "GET, HEAD"},
        {"/admin/reset", ROUTE_ADMIN, ADMIN_RESET, "POST"},
        {"/admin/served", ROUTE_ADMIN, ADMIN_SERVED, "GET, HEAD"},
};

struct request {
	int64_t arrival_ns;
	int route_index;      /* into routes[], -1: none */
	unsigned early;       /* 404, 405 or 413 decided before the last call */
	bool replied;         /* a 413 went out before the body (Expect: 100-continue) */
	size_t body_bytes;    /* read and thrown away */
	uint64_t body_hash;   /* FNV-1a of the body (state_body) */
	struct admission adm; /* /v1/predict and /v1/completions only */
};

/* Bodies are read and thrown away; past the 1 MiB cap the answer is 413,
 * but the rest is still drained (up to this much) so the client gets the
 * answer on a live connection instead of a reset in the middle of sending. */
#define MAX_DRAIN (64 * 1024 * 1024)

static enum MHD_Result reply_header(struct MHD_Connection *c, unsigned status, const char *type,
                                    const char *body, size_t len, const char *hname,
                                    const char *hvalue)
{
	struct MHD_Response *resp;
	enum MHD_Result r;

	resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type) != MHD_YES ||
	    (hname && MHD_add_response_header(resp, hname, hvalue) != MHD_YES)) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	r = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return r;
}

enum MHD_Result serve_reply(struct MHD_Connection *c, unsigned status, const char *type,
                            const char *body, size_t len)
{
	return reply_header(c, status, type, body, len, NULL, NULL);
}

static enum MHD_Result error_header(struct MHD_Connection *c, unsigned status, const char *message,
                                    const char *hname, const char *hvalue)
{
	json_t *o = json_pack("{s:s}", "error", message);
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	enum MHD_Result r = MHD_NO;

	if (text)
		r = reply_header(c, status, "application/json", text, strlen(text), hname, hvalue);
	free(text);
	json_decref(o);
	return r;
}

enum MHD_Result serve_error(struct MHD_Connection *c, unsigned status, const char *message)
{
	return error_header(c, status, message, NULL, NULL);
}

static bool method_allowed(const char *allow, const char *method)
{
	size_t mlen = strlen(method);
	const char *p = allow;

	while ((p = strstr(p, method)) != NULL) {
		if ((p == allow || p[-1] == ' ') && (p[mlen] == ',' || p[mlen] == '\0'))
			return true;
		p += mlen;
	}
	return false;
}

static int find_route(const char *url)
{
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (strcmp(url, routes[i].path) == 0)
			return (int)i;
	return -1;
}

/* A declared body over the cap. */
static bool declared_too_large(struct MHD_Connection *c)
{
	const char *cl =
	        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	unsigned long long n;
	char *end;

	if (!cl)
		return false;
	errno = 0;
	n = strtoull(cl, &end, 10);
	return errno == ERANGE || n > DT_MAX_BODY;
}

/* A client that sent "Expect: 100-continue" has not sent its body yet, so
 * a 413 can go out at once without a reset racing the answer. */
static bool expects_continue(struct MHD_Connection *c)
{
	const char *e = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);

	return e && strcasecmp(e, "100-continue") == 0;
}

static struct request *request_begin(struct state *st, struct MHD_Connection *c, const char *url,
                                     const char *method)
{
	int64_t arrival = dt_now_ns();
	struct request *rq = calloc(1, sizeof(*rq));
	const char *auth;

	if (!rq)
		return NULL;
	rq->arrival_ns = arrival;
	rq->body_hash = DT_FNV_BASIS;
	rq->route_index = find_route(url);
	if (rq->route_index < 0)
		rq->early = MHD_HTTP_NOT_FOUND;
	else if (!method_allowed(routes[rq->route_index].allow, method))
		rq->early = MHD_HTTP_METHOD_NOT_ALLOWED;
	else if (declared_too_large(c))
		rq->early = MHD_HTTP_CONTENT_TOO_LARGE;
	else if (routes[rq->route_index].route == ROUTE_PREDICT ||
	         routes[rq->route_index].route == ROUTE_STREAM) {
		auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
		                                   MHD_HTTP_HEADER_AUTHORIZATION);
		state_admit(st, arrival, auth, &rq->adm);
	}
	return rq;
}

static enum MHD_Result reply_early(struct MHD_Connection *c, const struct request *rq)
{
	switch (rq->early) {
	case MHD_HTTP_NOT_FOUND:
		return serve_error(c, rq->early, "no such endpoint");
	case MHD_HTTP_METHOD_NOT_ALLOWED:
		return error_header(c, rq->early, "method not allowed", MHD_HTTP_HEADER_ALLOW,
		                    routes[rq->route_index].allow);
	default:
		return serve_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body over 1 MiB");
	}
}

/* Stall, worker slot, delay, then the answer. The applied delay is the
 * time from arrival to now, less the wait for a worker slot. */
static enum MHD_Result predict_serve(struct state *st, struct MHD_Connection *c,
                                     const struct request *rq)
{
	char body[128], version[DT_MAX_VERSION + 1];
	int64_t base = rq->adm.hold_until_ns ? rq->adm.hold_until_ns : rq->arrival_ns;
	int64_t wait_ns, applied_us;
	int n;

	if (rq->adm.hold_until_ns && state_sleep_until(st, rq->adm.hold_until_ns) < 0)
		return MHD_NO;
	if (state_slot_acquire(st, &wait_ns) < 0)
		return MHD_NO;
	if (state_sleep_until(st, base + wait_ns + rq->adm.delay_ns) < 0) {
		state_slot_release(st);
		return MHD_NO;
	}
	applied_us = (dt_now_ns() - rq->arrival_ns - wait_ns) / DT_NS_PER_US;
	state_slot_release(st);
	state_record(st, applied_us, rq->adm.fail);
	if (rq->adm.fail)
		return serve_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "injected fault");
	state_version(st, version);
	n = snprintf(body, sizeof(body),
	             "{\"label\":\"positive\",\"score\":0.93,\"version\":\"%s\"}", version);
	return serve_reply(c, MHD_HTTP_OK, "application/json", body, (size_t)n);
}

/* A streamed completion: the stall (if any) holds it before its headers;
 * the latency distribution does not apply (the stream has its own times). */
static enum MHD_Result completions_serve(struct state *st, struct MHD_Connection *c,
                                         const struct request *rq)
{
	struct stream_params p;
	char err[160];

	state_stream_params(st, &p);
	if (stream_params_from_query(c, &p, err, sizeof(err)) < 0)
		return serve_error(c, MHD_HTTP_BAD_REQUEST, err);
	if (rq->adm.hold_until_ns && state_sleep_until(st, rq->adm.hold_until_ns) < 0)
		return MHD_NO;
	if (rq->adm.fail) {
		state_record(st, 0, true);
		return serve_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "injected fault");
	}
	return stream_serve(st, c, &p);
}

static enum MHD_Result predict_finish(struct state *st, struct MHD_Connection *c,
                                      const struct request *rq)
{
	state_body(st, rq->body_hash);
	switch (rq->adm.outcome) {
	case ADMIT_AUTH_MISSING:
		return error_header(c, MHD_HTTP_UNAUTHORIZED, "missing bearer token",
		                    MHD_HTTP_HEADER_WWW_AUTHENTICATE,
		                    "Bearer realm=\"demo-target\"");
	case ADMIT_AUTH_WRONG:
		return error_header(c, MHD_HTTP_UNAUTHORIZED, "invalid bearer token",
		                    MHD_HTTP_HEADER_WWW_AUTHENTICATE,
		                    "Bearer realm=\"demo-target\", error=\"invalid_token\"");
	case ADMIT_RATE_LIMITED:
		return error_header(c, MHD_HTTP_TOO_MANY_REQUESTS, "rate limited",
		                    MHD_HTTP_HEADER_RETRY_AFTER, "1");
	case ADMIT_OK:
		break;
	}
	if (routes[rq->route_index].route == ROUTE_STREAM)
		return completions_serve(st, c, rq);
	return predict_serve(st, c, rq);
}

static enum MHD_Result metrics_serve(struct state *st, struct MHD_Connection *c)
{
	const char *accept =
	        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
	bool om = accept && expo_wants_openmetrics(accept);
	struct expo_snapshot snap;
	enum MHD_Result r;
	char *text;
	size_t len;

	state_expo_snapshot(st, &snap);
	if (expo_render(&snap, state_omit_mask(st), om, &text, &len) < 0)
		return MHD_NO;
	r = serve_reply(c, MHD_HTTP_OK,
	                om ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
	                   : "text/plain; version=0.0.4; charset=utf-8",
	                text, len);
	free(text);
	return r;
}

static enum MHD_Result request_finish(struct state *st, struct MHD_Connection *c,
                                      const struct request *rq)
{
	char body[128], version[DT_MAX_VERSION + 1];
	int n;

	if (rq->early)
		return reply_early(c, rq);
	switch (routes[rq->route_index].route) {
	case ROUTE_PREDICT:
	case ROUTE_STREAM:
		return predict_finish(st, c, rq);
	case ROUTE_METRICS:
		return metrics_serve(st, c);
	case ROUTE_VERSION:
		state_version(st, version);
		n = snprintf(body, sizeof(body), "{\"version\":\"%s\"}", version);
		return serve_reply(c, MHD_HTTP_OK, "application/json", body, (size_t)n);
	case ROUTE_HEALTHZ:
		return serve_reply(c, MHD_HTTP_OK, "text/plain; charset=utf-8", "ok\n", 3);
	case ROUTE_ADMIN:
		break;
	}
	return admin_handle(st, c, routes[rq->route_index].admin);
}

enum MHD_Result serve_access(void *cls, struct MHD_Connection *c, const char *url,
                             const char *method, const char *version, const char *upload_data,
                             size_t *upload_data_size, void **req_cls)
{
	struct state *st = cls;
	struct request *rq = *req_cls;

	if (!rq) {
		rq = request_begin(st, c, url, method);
		if (!rq)
			return MHD_NO;
		*req_cls = rq;
		if (rq->early != MHD_HTTP_CONTENT_TOO_LARGE || !expects_continue(c))
			return MHD_YES; /* answer on a later call: keeps keep-alive */
		rq->replied = true;
		return reply_early(c, rq);
	}
	if (rq->replied)
		return MHD_YES;
	if (*upload_data_size) {
		rq->body_bytes += *upload_data_size;
		if (rq->body_bytes <= DT_MAX_BODY)
			rq->body_hash = dt_fnv1a(rq->body_hash, upload_data, *upload_data_size);
		*upload_data_size = 0;
		if (rq->body_bytes > DT_MAX_BODY && !rq->early)
			rq->early = MHD_HTTP_CONTENT_TOO_LARGE;
		return rq->body_bytes <= MAX_DRAIN ? MHD_YES : MHD_NO;
	}
	return request_finish(st, c, rq);
}

void serve_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                     enum MHD_RequestTerminationCode toe)
{
	free(*req_cls);
	*req_cls = NULL;
}
