/* probe_http: the generic `http` check: one request, expectations on the
 * status and the body, publishes status, latency_ms and ok. A transport
 * failure is an error (nothing was measured); an answer that misses an
 * expectation is a failure (something was measured and it is wrong). */
#include <errno.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "probe.h"

#define HTTP_PROBE_DEFAULT_TIMEOUT_MS 10000

struct http_probe {
	struct probe *p;
	struct http_request *req;
};

static const char *probe_url(const struct probe *p)
{
	return p->sp->url ? p->sp->url : p->spec->target.url;
}

/* Returns NULL when every expectation holds, else what did not. */
static const char *check_body(const struct spec_probe *sp, const struct http_response *r, char *why,
                              size_t len)
{
	if (sp->expect_body_contains && !strstr(r->body, sp->expect_body_contains)) {
		snprintf(why, len, "body does not contain \"%s\"", sp->expect_body_contains);
		return why;
	}
	if (sp->expect_body_regex) {
		regex_t re;
		int rc = regcomp(&re, sp->expect_body_regex, REG_EXTENDED | REG_NOSUB);

		if (rc != 0) {
			snprintf(why, len, "expect_body_regex does not compile");
			return why;
		}
		rc = regexec(&re, r->body, 0, NULL, 0);
		regfree(&re);
		if (rc != 0) {
			snprintf(why, len, "body does not match /%s/", sp->expect_body_regex);
			return why;
		}
	}
	return NULL;
}

static void on_response(void *userdata, const struct http_response *r)
{
	struct http_probe *hp = userdata;
	struct probe *p = hp->p;
	const struct spec_probe *sp = p->sp;
	int64_t want = sp->expect_status ? sp->expect_status : 200;
	const char *why = NULL;
	char buf[512];

	hp->req = NULL;
	if (r->err != 0) {
		probe_finish(p, PROBE_ERRORED, "%s %s: %s", sp->method ? sp->method : "GET",
		             probe_url(p), r->error ? r->error : strerror(-r->err));
		return;
	}
	probe_set_metric(p, "status", (double)r->status);
	probe_set_metric(p, "latency_ms", r->total_ms);
	if (r->status != want) {
		snprintf(buf, sizeof(buf), "expected status %lld, got %ld", (long long)want,
		         r->status);
		why = buf;
	} else {
		why = check_body(sp, r, buf, sizeof(buf));
	}
	probe_set_metric(p, "ok", why ? 0 : 1);
	if (why)
		probe_finish(p, PROBE_FAILED, "%s", why);
	else
		probe_finish(p, PROBE_PASSED, NULL);
}

static int http_probe_start(struct probe *p)
{
	const struct spec_probe *sp = p->sp;
	struct http_probe *hp;
	struct http_options opt = {
	        .method = sp->method,
	        .url = probe_url(p),
	        .headers = sp->headers,
	        .n_headers = sp->n_headers,
	        .body = sp->body,
	        .body_len = sp->body_len,
	        .timeout_ms = sp->timeout_ms ? sp->timeout_ms : HTTP_PROBE_DEFAULT_TIMEOUT_MS,
	        .insecure = sp->insecure,
	        .ca_file = sp->ca_file,
	};
	int r;

	if (!opt.url)
		return -EINVAL;
	hp = calloc(1, sizeof(*hp));
	if (!hp)
		return -ENOMEM;
	hp->p = p;
	p->impl = hp;
	r = http_request_start(p->http, &opt, on_response, hp, &hp->req);
	if (r < 0) {
		p->impl = NULL;
		free(hp);
	}
	return r;
}

static void http_probe_cancel(struct probe *p)
{
	struct http_probe *hp = p->impl;

	if (hp && hp->req) {
		http_request_cancel(hp->req);
		hp->req = NULL;
	}
	probe_finish(p, PROBE_CANCELLED, NULL);
}

static void http_probe_free(struct probe *p)
{
	free(p->impl);
	p->impl = NULL;
}

const struct probe_ops probe_http_ops = {
        .type = PROBE_HTTP,
        .start = http_probe_start,
        .cancel = http_probe_cancel,
        .free = http_probe_free,
};
