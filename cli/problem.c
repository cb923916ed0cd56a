/* problem: what readyctl says when the server did not answer with success,
 * and JSON decoding of responses. Problem documents (RFC 9457) become
 * `readyctl: <title>: <detail>` followed by one `  <path>: <message>` line
 * per entry of errors[], so a spec author sees every field to fix at once.
 * Anything else is summarised by status and a short, sanitised excerpt.
 *
 * It must not decide exit codes; callers do.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define EXCERPT_MAX 200

static bool is_json_type(const char *ct)
{
	return ct && (strncmp(ct, "application/problem+json", 24) == 0 ||
	              strncmp(ct, "application/json", 16) == 0);
}

static void print_problem_errors(const json_t *errors)
{
	char path[256], msg[512];
	size_t i;
	json_t *e;

	if (!json_is_array(errors))
		return;
	json_array_foreach (errors, i, e) {
		render_clean(json_string_value(json_object_get(e, "path")), path, sizeof(path));
		render_clean(json_string_value(json_object_get(e, "message")), msg, sizeof(msg));
		if (path[0])
			fprintf(stderr, "  %s: %s\n", path, msg);
		else
			fprintf(stderr, "  %s\n", msg);
	}
}

/* The problem document r carries, or NULL. New reference. */
static json_t *problem_doc(const struct response *r)
{
	json_t *doc;

	if (!is_json_type(r->content_type))
		return NULL;
	doc = json_loadb(r->body, r->len, 0, NULL);
	if (!json_is_object(doc) || !json_is_string(json_object_get(doc, "title"))) {
		json_decref(doc);
		return NULL;
	}
	return doc;
}

/* With --json: {"error": detail, "status": N, "problem": doc}. */
static void json_problem(long status, json_t *doc, const char *file)
{
	const char *detail = json_string_value(json_object_get(doc, "detail"));
	json_t *o = json_pack("{s:s, s:I, s:O}", "error",
	                      detail ? detail : json_string_value(json_object_get(doc, "title")),
	                      "status", (json_int_t)status, "problem", doc);

	if (o && file)
		json_object_set_new(o, "file", json_string(file));
	ctl_error_json(o);
}

/* Returns true if r carried a problem document and it was printed. */
static bool print_problem(const struct response *r)
{
	char title[256], detail[1024];
	json_t *doc = problem_doc(r);

	if (!doc)
		return false;
	if (ctl_json_errors) {
		json_problem(r->status, doc, NULL);
		json_decref(doc);
		return true;
	}
	render_clean(json_string_value(json_object_get(doc, "title")), title, sizeof(title));
	render_clean(json_string_value(json_object_get(doc, "detail")), detail, sizeof(detail));
	if (detail[0])
		fprintf(stderr, "readyctl: %s: %s\n", title, detail);
	else
		fprintf(stderr, "readyctl: %s (HTTP %ld)\n", title, r->status);
	print_problem_errors(json_object_get(doc, "errors"));
	json_decref(doc);
	return true;
}

/* Each errors[] entry once, as FILE:LINE: path: message (the form
 * compilers use, so editors jump to it). False when there is none. */
static bool print_spec_errors(const json_t *errors, const char *file)
{
	char name[512], path[256], msg[512];
	size_t i;
	json_t *e;

	if (json_array_size(errors) == 0)
		return false;
	render_clean(file, name, sizeof(name));
	json_array_foreach (errors, i, e) {
		json_int_t line = json_integer_value(json_object_get(e, "line"));

		render_clean(json_string_value(json_object_get(e, "path")), path, sizeof(path));
		render_clean(json_string_value(json_object_get(e, "message")), msg, sizeof(msg));
		fprintf(stderr, "%s", name);
		if (line > 0)
			fprintf(stderr, ":%lld", (long long)line);
		fprintf(stderr, ": %s%s%s\n", path, path[0] ? ": " : "", msg);
	}
	return true;
}

void client_print_spec_error(const struct client *c, const struct response *r, const char *file)
{
	json_t *doc = problem_doc(r);
	bool done = false;

	if (doc && ctl_json_errors) {
		json_problem(r->status, doc, file);
		done = true;
	} else if (doc && (r->status == 400 || r->status == 422)) {
		done = print_spec_errors(json_object_get(doc, "errors"), file);
	}
	json_decref(doc);
	if (!done)
		client_print_http_error(c, r);
}

void client_print_http_error(const struct client *c, const struct response *r)
{
	char excerpt[EXCERPT_MAX + 1];
	size_t n = 0;

	if (print_problem(r))
		return;
	while (n < r->len && n < EXCERPT_MAX && r->body[n] != '\n' && r->body[n] != '\r')
		n++;
	memcpy(excerpt, r->body, n);
	excerpt[n] = '\0';
	render_clean(excerpt, excerpt, sizeof(excerpt));
	if (n > 0)
		ctl_errorf("HTTP %ld from %s: %s%s\n", r->status, c->base_url, excerpt,
		           n < r->len ? "..." : "");
	else
		ctl_errorf("HTTP %ld from %s (empty body)\n", r->status, c->base_url);
}

json_t *response_json(const struct client *c, const struct response *r)
{
	json_error_t err;
	json_t *doc;

	doc = json_loadb(r->body, r->len, 0, &err);
	if (!doc) {
		ctl_errorf("invalid JSON from %s: %s (line %d)\n", c->base_url, err.text, err.line);
		return NULL;
	}
	if (!json_is_object(doc)) {
		ctl_errorf("unexpected JSON from %s: expected an object\n", c->base_url);
		json_decref(doc);
		return NULL;
	}
	return doc;
}

json_t *client_get_json(struct client *c, const struct request *req)
{
	struct response r;
	json_t *doc;

	if (client_send(c, req, &r) < 0) {
		ctl_errorf("%s\n", c->message);
		return NULL;
	}
	if (!response_ok(&r)) {
		client_print_http_error(c, &r);
		response_free(&r);
		return NULL;
	}
	doc = response_json(c, &r);
	response_free(&r);
	return doc;
}
