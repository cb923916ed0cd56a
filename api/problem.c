/* problem: RFC 9457 problem+json bodies. Every error readyd's API returns
 * goes through here, so every error has a status, a title and a detail
 * that says what to fix. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "api.h"

/* The reason phrases of RFC 9110 (and 6585, 4918 for 429, 431, 507):
 * a problem's title is its status's phrase. */
static const struct {
	unsigned status;
	const char *title;
} titles[] = {
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {402, "Payment Required"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {406, "Not Acceptable"},
        {407, "Proxy Authentication Required"},
        {408, "Request Timeout"},
        {409, "Conflict"},
        {410, "Gone"},
        {411, "Length Required"},
        {412, "Precondition Failed"},
        {413, "Content Too Large"},
        {414, "URI Too Long"},
        {415, "Unsupported Media Type"},
        {416, "Range Not Satisfiable"},
        {417, "Expectation Failed"},
        {421, "Misdirected Request"},
        {422, "Unprocessable Content"},
        {426, "Upgrade Required"},
        {428, "Precondition Required"},
        {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
        {505, "HTTP Version Not Supported"},
        {507, "Insufficient Storage"},
};

/* A status without a phrase of its own takes its class's. */
static const char *title_of(unsigned status)
{
	for (size_t i = 0; i < sizeof(titles) / sizeof(titles[0]); i++)
		if (titles[i].status == status)
			return titles[i].title;
	return status >= 500 ? "Server Error" : "Client Error";
}

json_t *api_problem_body(unsigned status, const char *detail, const char *instance, json_t *extra)
{
	json_t *o = json_pack("{s:s, s:s, s:i, s:s, s:s}", "type", "about:blank", "title",
	                      title_of(status), "status", (int)status, "detail", detail, "instance",
	                      instance);

	if (o && extra)
		json_object_update(o, extra);
	json_decref(extra);
	return o;
}

void api_problem(struct api_req *req, unsigned status, json_t *extra, const char *fmt, ...)
{
	char detail[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	api_reply_json(req, status, api_problem_body(status, detail, api_req_path(req), extra));
}

/* What each -errno from lib/ means to a client; anything else is a 500. */
static const struct api_errno_status errno_statuses[] = {
        {-ENOENT, 404, "not found", NULL},
        {-EAGAIN, 503, "the queue is full; retry later", "5"},
        {-EBUSY, 503, "the database is busy; retry", "1"},
        {-ESHUTDOWN, 503, "readyd is shutting down", NULL},
        {-ENOSPC, 507, "the database is full (disk space)", NULL},
        /* A database server that is down, unreachable or too slow. */
        {-ENOTCONN, 503, "the database does not answer; retry later", "5"},
        {-ETIMEDOUT, 503, "the database did not answer in time; retry later", "5"},
};

struct api_errno_status api_errno_status(int err)
{
	for (size_t i = 0; i < sizeof(errno_statuses) / sizeof(errno_statuses[0]); i++)
		if (errno_statuses[i].err == err)
			return errno_statuses[i];
	return (struct api_errno_status){err, 500, strerror(-err), NULL};
}

void api_problem_errno(struct api_req *req, int err, const char *what)
{
	struct api_errno_status st = api_errno_status(err);

	if (st.retry_after)
		api_reply_header(req, "Retry-After", st.retry_after);
	api_problem(req, st.status, NULL, "%s: %s", what, st.reason);
}
