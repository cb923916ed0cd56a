/* problem: RFC 9457 problem+json bodies. Every error readyd's API returns
 * goes through here, so every error has a status, a title and a detail
 * that says what to fix. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "api.h"

static const struct {
	unsigned status;
	const char *title;
} titles[] = {
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {409, "Conflict"},
        {413, "Content Too Large"},
        {415, "Unsupported Media Type"},
        {422, "Unprocessable Content"},
        {429, "Too Many Requests"},
        {500, "Internal Server Error"},
        {503, "Service Unavailable"},
        {507, "Insufficient Storage"},
};

static const char *title_of(unsigned status)
{
	for (size_t i = 0; i < sizeof(titles) / sizeof(titles[0]); i++)
		if (titles[i].status == status)
			return titles[i].title;
	return "Error";
}

void api_problem(struct api_req *req, unsigned status, json_t *extra, const char *fmt, ...)
{
	char detail[1024];
	va_list ap;
	json_t *o;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	o = json_pack("{s:s, s:s, s:i, s:s, s:s}", "type", "about:blank", "title", title_of(status),
	              "status", (int)status, "detail", detail, "instance", api_req_path(req));
	if (o && extra)
		json_object_update(o, extra);
	json_decref(extra);
	api_reply_json(req, status, o);
}

void api_problem_errno(struct api_req *req, int err, const char *what)
{
	switch (err) {
	case -ENOENT:
		api_problem(req, 404, NULL, "%s: not found", what);
		break;
	case -EAGAIN:
		api_reply_header(req, "Retry-After", "5");
		api_problem(req, 503, NULL, "%s: the queue is full; retry later", what);
		break;
	case -EBUSY:
		api_reply_header(req, "Retry-After", "1");
		api_problem(req, 503, NULL, "%s: the database is busy; retry", what);
		break;
	case -ESHUTDOWN:
		api_problem(req, 503, NULL, "%s: readyd is shutting down", what);
		break;
	case -ENOSPC:
		api_problem(req, 507, NULL, "%s: the database is full (disk space)", what);
		break;
	default:
		api_problem(req, 500, NULL, "%s: %s", what, strerror(-err));
		break;
	}
}
