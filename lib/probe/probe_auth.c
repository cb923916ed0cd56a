/* probe_auth: proves that the service refuses strangers. Two requests go
 * to the url (or the target's request) at once: one with every credential
 * header removed, one with those removed and a bearer token that cannot be
 * valid. Both must be answered with one of expect_statuses (default 401,
 * 403). A transport failure is an error (nothing was measured); an answer
 * that lets a request in is a failure.
 *
 * This probe must never send the spec's real credentials: it exists to
 * check what happens without them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/probe/probe.h"
#include "lib/util/util.h"

#define AUTH_DEFAULT_TIMEOUT_MS 10000
#define AUTH_INVALID_TOKEN      "Bearer readyd-invalid-token-0000000000000000"

enum { AUTH_ANON = 0, AUTH_BAD_TOKEN, AUTH_N };

struct auth_probe;

struct auth_req {
	struct auth_probe *ap;
	struct http_request *req;
	long status;
	bool done;
};

struct auth_probe {
	struct probe *p;
	struct auth_req r[AUTH_N];
	struct spec_header *headers; /* the spec's headers without secrets */
	size_t n_headers;
	int err; /* first transport failure */
	char *err_msg;
	int pending;
};

static const char *const auth_what[AUTH_N] = {"without credentials", "with an invalid token"};

static bool status_rejected(const struct spec_probe *sp, long status)
{
	for (size_t i = 0; i < sp->n_expect_statuses; i++)
		if (sp->expect_statuses[i] == status)
			return true;
	return false;
}

static void statuses_text(const struct spec_probe *sp, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sp->n_expect_statuses && off < len; i++) {
		int n = snprintf(buf + off, len - off, "%s%lld", i ? " or " : "",
		                 (long long)sp->expect_statuses[i]);
		if (n < 0)
			return;
		off += (size_t)n;
	}
}

static void auth_conclude(struct auth_probe *ap)
{
	struct probe *p = ap->p;
	const struct spec_probe *sp = p->sp;
	bool anon_ok, token_ok;
	char want[128];

	if (ap->err) {
		probe_finish(p, PROBE_STATE_ERRORED, "%s %s: %s", sp->method ? sp->method : "GET",
		             sp->url, ap->err_msg ? ap->err_msg : strerror(-ap->err));
		return;
	}
	anon_ok = status_rejected(sp, ap->r[AUTH_ANON].status);
	token_ok = status_rejected(sp, ap->r[AUTH_BAD_TOKEN].status);
	probe_set_metric(p, "unauthenticated_status", (double)ap->r[AUTH_ANON].status);
	probe_set_metric(p, "invalid_token_status", (double)ap->r[AUTH_BAD_TOKEN].status);
	probe_set_metric(p, "rejected", anon_ok && token_ok ? 1 : 0);
	statuses_text(sp, want, sizeof(want));
	if (!anon_ok || !token_ok) {
		int i = anon_ok ? AUTH_BAD_TOKEN : AUTH_ANON;

		probe_finish(p, PROBE_STATE_FAILED, "request %s was answered %ld, expected %s",
		             auth_what[i], ap->r[i].status, want);
		return;
	}
	probe_finish(p, PROBE_STATE_PASSED, NULL);
}

static void on_auth_response(void *userdata, const struct http_response *resp)
{
	struct auth_req *ar = userdata;
	struct auth_probe *ap = ar->ap;

	ar->req = NULL;
	ar->done = true;
	ar->status = resp->status;
	if (resp->err != 0 && !ap->err) {
		ap->err = resp->err;
		ap->err_msg = resp->error ? strdup(resp->error) : NULL;
	}
	if (--ap->pending == 0)
		auth_conclude(ap);
}

/* The spec's headers minus credentials, plus one slot for the bad token. */
static int strip_credentials(struct auth_probe *ap)
{
	const struct spec_probe *sp = ap->p->sp;

	ap->headers = calloc(sp->n_headers + 1, sizeof(*ap->headers));
	if (!ap->headers)
		return -ENOMEM;
	for (size_t i = 0; i < sp->n_headers; i++)
		if (!spec_header_is_secret(sp->headers[i].name))
			ap->headers[ap->n_headers++] = sp->headers[i];
	return 0;
}

static int auth_send(struct auth_probe *ap, int which)
{
	const struct spec_probe *sp = ap->p->sp;
	struct spec_header *h = ap->headers;
	size_t n = ap->n_headers;
	struct http_options opt = {
	        .method = sp->method,
	        .url = sp->url,
	        .body = sp->body,
	        .body_len = sp->body_len,
	        .timeout_ms = sp->timeout_ms ? sp->timeout_ms : AUTH_DEFAULT_TIMEOUT_MS,
	        .insecure = sp->insecure,
	        .ca_file = sp->ca_file,
	        .max_body = 64 * 1024,
	};

	if (which == AUTH_BAD_TOKEN) {
		h[n].name = "Authorization";
		h[n].value = AUTH_INVALID_TOKEN;
		n++;
	}
	opt.headers = h;
	opt.n_headers = n;
	ap->r[which].ap = ap;
	return http_request_start(ap->p->http, &opt, on_auth_response, &ap->r[which],
	                          &ap->r[which].req);
}

static void auth_probe_cancel(struct probe *p)
{
	struct auth_probe *ap = p->impl;

	for (int i = 0; ap && i < AUTH_N; i++) {
		if (ap->r[i].req)
			http_request_cancel(ap->r[i].req);
		ap->r[i].req = NULL;
	}
	probe_finish(p, PROBE_STATE_CANCELLED, NULL);
}

static void auth_probe_free(struct probe *p)
{
	struct auth_probe *ap = p->impl;

	if (!ap)
		return;
	free(ap->headers);
	free(ap->err_msg);
	free(ap);
	p->impl = NULL;
}

static int auth_probe_start(struct probe *p)
{
	struct auth_probe *ap;
	int r;

	if (!p->sp->url || p->sp->n_expect_statuses == 0)
		return -EINVAL;
	ap = calloc(1, sizeof(*ap));
	if (!ap)
		return -ENOMEM;
	ap->p = p;
	p->impl = ap;
	r = strip_credentials(ap);
	if (r < 0)
		goto fail;
	ap->pending = AUTH_N;
	r = auth_send(ap, AUTH_ANON);
	if (r < 0)
		goto fail;
	/* http_request_start copies the options, so the header slot the bad
	 * token uses is never seen by the first request. */
	r = auth_send(ap, AUTH_BAD_TOKEN);
	if (r < 0) {
		http_request_cancel(ap->r[AUTH_ANON].req);
		goto fail;
	}
	return 0;
fail:
	auth_probe_free(p);
	return r;
}

/* --- the type: its spec fields, rules, metrics and ops --- */

/* One field per line, aligned by hand: read as a schema more than as
 * code. */
/* clang-format off */
static const struct spec_field fields[] = {
	SPEC_F_COMMON, SPEC_F_URL(false), SPEC_F_METHOD, SPEC_F_HEADERS, SPEC_F_BODY,
	{.key = "expect_statuses", .kind = FK_STATUS_LIST, .off = SPEC_P(expect_statuses),
	 .count_off = SPEC_P(n_expect_statuses)},
	SPEC_F_TLS_CLIENT,
};
/* clang-format on */

static int finish_auth(struct spec_vctx *v, json_t *obj, const char *path, struct spec_probe *p)
{
	if (!p->expect_statuses) {
		p->expect_statuses = calloc(2, sizeof(*p->expect_statuses));
		if (!p->expect_statuses)
			return -ENOMEM;
		p->expect_statuses[0] = 401;
		p->expect_statuses[1] = 403;
		p->n_expect_statuses = 2;
	}
	return spec_inherit_target(v, obj, path, p);
}

static const struct probe_metric_def metrics[] = {
        {"unauthenticated_status", "HTTP status", PROBE_SAMPLES_NONE},
        {"invalid_token_status", "HTTP status", PROBE_SAMPLES_NONE},
        {"rejected", "1", PROBE_SAMPLES_NONE},
};

const struct probe_type_def probe_type_auth = {
        .name = "auth",
        .section = "Security",
        .fields = fields,
        .n_fields = RD_ARRAY_SIZE(fields),
        .finish = finish_auth,
        .deadline_fixed_ms = PROBE_DEFAULT_DEADLINE_MS,
        .metrics = metrics,
        .n_metrics = RD_ARRAY_SIZE(metrics),
        .ops =
                {
                        .start = auth_probe_start,
                        .cancel = auth_probe_cancel,
                        .free = auth_probe_free,
                },
};
