/* loadgen_corpus: request corpora for the load engine, read from JSON
 * Lines (a file the operator allowed) or from a JSON array (a spec's
 * inline items) into struct loadgen_request entries the engine prebuilds.
 * Every error names where it is: the line ("12: body: ...") or the item
 * ("[3].method: ..."). Errors about a file never quote its text (a key,
 * a header name, a JSON token): the file is the operator's, the spec
 * author only names it. Pure: no I/O, no clocks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/loadgen/loadgen.h"
#include "lib/util/json_text.h"

#define MAX_PATH    4000 /* fits struct loadgen_url.path */
#define MAX_METHOD  32
#define MAX_HEADERS 64
#define MAX_WEIGHT  1e9

static void item_free(struct loadgen_request *q)
{
	for (size_t i = 0; q->headers && i < q->n_headers; i++) {
		free(q->headers[i].name);
		free(q->headers[i].value);
	}
	free((void *)q->headers);
	free((void *)q->method);
	free((void *)q->path);
	free((void *)q->body);
}

void loadgen_corpus_free(struct loadgen_corpus *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		item_free(&c->items[i]);
	free(c->items);
	free(c);
}

static int bad(char *err, size_t errlen, const char *field, const char *msg)
{
	snprintf(err, errlen, "%s: %s", field, msg);
	return -EINVAL;
}

#define MAX_HEADER_VALUE 8192

static bool is_token(const char *s)
{
	static const char tchar[] = "!#$%&'*+-.^_`|~0123456789"
	                            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

	return *s && strlen(s) <= 256 && strspn(s, tchar) == strlen(s);
}

/* As the spec's own headers: the engine writes these itself, and one
 * from a corpus beside them would frame the request differently for
 * the target and a proxy in front of it (request smuggling). */
static bool is_framing(const char *name)
{
	static const char *const framing[] = {"host",       "content-length", "transfer-encoding",
	                                      "connection", "keep-alive",     "upgrade",
	                                      "te",         "trailer",        "proxy-connection"};

	for (size_t i = 0; i < sizeof(framing) / sizeof(framing[0]); i++)
		if (strcasecmp(name, framing[i]) == 0)
			return true;
	return false;
}

static bool clean_value(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return false;
	return strlen(s) <= MAX_HEADER_VALUE;
}

static int read_method(const json_t *v, struct loadgen_request *q, char *err, size_t errlen)
{
	const char *s = json_string_value(v);

	if (!s || !*s || strlen(s) > MAX_METHOD ||
	    strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(s))
		return bad(err, errlen, "method", "must be an upper-case HTTP method");
	q->method = strdup(s);
	return q->method ? 0 : -ENOMEM;
}

static int read_path(const json_t *v, struct loadgen_request *q, char *err, size_t errlen)
{
	const char *s = json_string_value(v);

	if (!s || s[0] != '/' || strlen(s) > MAX_PATH || strpbrk(s, "#") || !clean_value(s) ||
	    strpbrk(s, " \t"))
		return bad(err, errlen, "path",
		           "must be a path and query starting with '/', without blanks or '#'");
	q->path = strdup(s);
	return q->path ? 0 : -ENOMEM;
}

static int read_headers(const json_t *v, struct loadgen_request *q, bool quote, char *err,
                        size_t errlen)
{
	struct spec_header *h;
	const char *name;
	json_t *val;
	size_t n = 0;

	if (!json_is_object(v) || json_object_size(v) > MAX_HEADERS)
		return bad(err, errlen, "headers", "must be an object of at most 64 strings");
	h = calloc(json_object_size(v) + 1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	q->headers = h;
	json_object_foreach ((json_t *)v, name, val) {
		const char *s = json_string_value(val);

		if (!is_token(name) || !s || !clean_value(s)) {
			snprintf(err, errlen, "headers%s%.64s: %s", quote ? "." : "",
			         quote ? name : "",
			         "names must be HTTP tokens and values strings of at most 8192 "
			         "bytes without control characters");
			return -EINVAL;
		}
		if (is_framing(name)) {
			snprintf(err, errlen, "headers%s%.64s: %s", quote ? "." : "",
			         quote ? name : "",
			         "the engine sets Host, Content-Length, Transfer-Encoding, "
			         "Connection and other hop-by-hop headers itself");
			return -EINVAL;
		}
		h[n].name = strdup(name);
		h[n].value = strdup(s);
		q->n_headers = ++n;
		if (!h[n - 1].name || !h[n - 1].value)
			return -ENOMEM;
	}
	return 0;
}

static int read_body(const json_t *v, struct loadgen_request *q, char *err, size_t errlen)
{
	char *s;

	if (json_is_string(v)) {
		q->body_len = json_string_length(v);
		s = malloc(q->body_len + 1);
		if (s)
			memcpy(s, json_string_value(v), q->body_len + 1);
	} else {
		s = rd_json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		q->body_len = s ? strlen(s) : 0;
	}
	if (!s)
		return -ENOMEM;
	q->body = s;
	if (q->body_len > LOADGEN_MAX_REQUEST - 64 * 1024)
		return bad(err, errlen, "body", "is over 1 MiB");
	return 0;
}

static int read_weight(const json_t *v, struct loadgen_request *q, char *err, size_t errlen)
{
	double w = json_number_value(v);

	if (!json_is_number(v) || !(w > 0 && w <= MAX_WEIGHT))
		return bad(err, errlen, "weight", "must be a number > 0 and <= 1e9");
	q->weight = w;
	return 0;
}

/* One request object into q (zeroed); err gets "field: message"; quote:
 * the message may name an unknown key or a header. */
static int read_item(const json_t *o, struct loadgen_request *q, bool quote, char *err,
                     size_t errlen)
{
	const char *key;
	json_t *v;
	int r = 0;

	if (!json_is_object(o))
		return bad(err, errlen, "request", "must be an object with a body");
	json_object_foreach ((json_t *)o, key, v) {
		if (strcmp(key, "method") == 0)
			r = read_method(v, q, err, errlen);
		else if (strcmp(key, "path") == 0)
			r = read_path(v, q, err, errlen);
		else if (strcmp(key, "headers") == 0)
			r = read_headers(v, q, quote, err, errlen);
		else if (strcmp(key, "body") == 0)
			r = read_body(v, q, err, errlen);
		else if (strcmp(key, "weight") == 0)
			r = read_weight(v, q, err, errlen);
		else
			r = bad(err, errlen, quote ? key : "request",
			        quote ? "unknown field (body, method, path, headers, weight)"
			              : "has an unknown field (body, method, path, headers, weight)");
		if (r < 0)
			return r;
	}
	return 0;
}

static int corpus_new(size_t cap, struct loadgen_corpus **ret)
{
	struct loadgen_corpus *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->items = calloc(cap ? cap : 1, sizeof(*c->items));
	if (!c->items) {
		free(c);
		return -ENOMEM;
	}
	*ret = c;
	return 0;
}

static size_t count_lines(const char *buf, size_t len)
{
	size_t n = 1;

	for (size_t i = 0; i < len; i++)
		n += buf[i] == '\n';
	return n;
}

static bool blank_line(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

/* Line `line` (1-based) of s..s+n into the next item of c. */
static int parse_line(struct loadgen_corpus *c, const char *s, size_t n, size_t line, char *err,
                      size_t errlen)
{
	char why[256] = "";
	json_error_t je;
	json_t *o;
	int r;

	if (c->n >= LOADGEN_MAX_CORPUS) {
		snprintf(err, errlen, "%zu: more than %d requests", line, LOADGEN_MAX_CORPUS);
		return -E2BIG;
	}
	o = json_loadb(s, n, JSON_REJECT_DUPLICATES, &je);
	if (!o) {
		snprintf(err, errlen, "%zu: not JSON (column %d)", line, je.column);
		return -EINVAL;
	}
	r = read_item(o, &c->items[c->n], false, why, sizeof(why));
	c->n++; /* freed with the corpus, complete or not */
	json_decref(o);
	if (r == -EINVAL)
		snprintf(err, errlen, "%zu: %s", line, why);
	return r;
}

int loadgen_corpus_parse_jsonl(const char *buf, size_t len, struct loadgen_corpus **ret, char *err,
                               size_t errlen)
{
	size_t lines = count_lines(buf, len), line = 0, off = 0;
	struct loadgen_corpus *c = NULL;
	int r = 0;

	r = corpus_new(lines < LOADGEN_MAX_CORPUS ? lines : LOADGEN_MAX_CORPUS, &c);
	while (r == 0 && off < len) {
		const char *s = buf + off, *nl = memchr(s, '\n', len - off);
		size_t n = nl ? (size_t)(nl - s) : len - off;

		line++;
		off += n + (nl ? 1 : 0);
		if (!blank_line(s, n))
			r = parse_line(c, s, n, line, err, errlen);
	}
	if (r == 0 && c->n == 0) {
		snprintf(err, errlen, "1: no request in the file");
		r = -EINVAL;
	}
	if (r < 0) {
		loadgen_corpus_free(c);
		return r;
	}
	*ret = c;
	return 0;
}

int loadgen_corpus_from_json(const json_t *items, struct loadgen_corpus **ret, char *err,
                             size_t errlen)
{
	size_t n = json_array_size(items);
	struct loadgen_corpus *c = NULL;
	char why[256] = "";
	int r;

	if (!json_is_array(items) || n == 0 || n > LOADGEN_MAX_CORPUS) {
		snprintf(err, errlen, ": must be a list of 1..%d requests", LOADGEN_MAX_CORPUS);
		return -EINVAL;
	}
	r = corpus_new(n, &c);
	for (size_t i = 0; r == 0 && i < n; i++) {
		r = read_item(json_array_get(items, i), &c->items[i], true, why, sizeof(why));
		c->n++;
		if (r == -EINVAL)
			snprintf(err, errlen, "[%zu].%s", i, why);
	}
	if (r < 0) {
		loadgen_corpus_free(c);
		return r;
	}
	*ret = c;
	return 0;
}
