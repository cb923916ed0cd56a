/* promapi: a GET against Prometheus' HTTP API with the envelope checked
 * (see promapi.h). Every failure becomes one sentence naming the URL; the
 * probes decide what the failure means for their verdict. Must not keep
 * anything of the probe's spec past promapi_get().
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promapi.h"

struct promapi_call {
	struct http_request *req;
	promapi_cb cb;
	void *userdata;
	char *url; /* base + path, for messages (the query string can be long) */
};

static bool unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

/* Appends s percent-encoded to out (which has room: 3 bytes per input). */
static size_t encode(char *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (unreserved(c)) {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	return o;
}

/* base (without a trailing slash) + path + "?k=v&..."; new string. */
static char *build_url(const char *base, const char *path, const char *const *params)
{
	size_t bl = strlen(base), need, o;
	char *url;

	while (bl > 0 && base[bl - 1] == '/')
		bl--;
	need = bl + strlen(path) + 2;
	for (size_t i = 0; params && params[i]; i += 2)
		need += strlen(params[i]) + 3 * strlen(params[i + 1]) + 2;
	url = malloc(need);
	if (!url)
		return NULL;
	memcpy(url, base, bl);
	o = bl + (size_t)snprintf(url + bl, need - bl, "%s", path);
	for (size_t i = 0; params && params[i]; i += 2) {
		o += (size_t)snprintf(url + o, need - o, "%c%s=", i == 0 ? '?' : '&', params[i]);
		o += encode(url + o, params[i + 1]);
	}
	url[o] = '\0';
	return url;
}

/* A short, printable excerpt of a body for messages. */
static void excerpt(const char *body, size_t len, char *out, size_t outlen)
{
	size_t o = 0;

	for (size_t i = 0; i < len && o + 4 < outlen && i < 120; i++)
		out[o++] = (body[i] >= 0x20 && body[i] < 0x7f) ? body[i] : ' ';
	if (len > 120 && o + 4 < outlen) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

/* Checks the envelope; returns data (borrowed from doc) or NULL with msg. */
static json_t *envelope(const struct promapi_call *call, const struct http_response *r, json_t *doc,
                        char *msg, size_t len)
{
	const char *status = json_string_value(json_object_get(doc, "status"));
	json_t *data = json_object_get(doc, "data");
	char ex[160];

	if (status && strcmp(status, "error") == 0) {
		snprintf(msg, len, "Prometheus at %s answered HTTP %ld with an error: %s: %s",
		         call->url, r->status,
		         json_string_value(json_object_get(doc, "errorType")) ?: "error",
		         json_string_value(json_object_get(doc, "error")) ?: "(no message)");
		return NULL;
	}
	if (r->status != 200) {
		excerpt(r->body, r->body_len, ex, sizeof(ex));
		snprintf(msg, len, "GET %s answered HTTP %ld: %s", call->url, r->status, ex);
		return NULL;
	}
	if (!status || strcmp(status, "success") != 0 || !data) {
		excerpt(r->body, r->body_len, ex, sizeof(ex));
		snprintf(msg, len,
		         "GET %s: the answer is JSON but not a Prometheus API response "
		         "(want {\"status\": \"success\", \"data\": ...}): %s",
		         call->url, ex);
		return NULL;
	}
	return data;
}

static void on_response(void *userdata, const struct http_response *r)
{
	struct promapi_call *call = userdata;
	json_t *doc = NULL, *data = NULL;
	json_error_t jerr;
	char msg[768], ex[160];
	int err = 0;

	call->req = NULL;
	if (r->err != 0) {
		err = r->err;
		snprintf(msg, sizeof(msg), "GET %s: %s", call->url,
		         r->error ? r->error : strerror(-r->err));
	} else if (!(doc = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &jerr))) {
		err = r->status == 200 ? -EBADMSG : -EPROTO;
		excerpt(r->body, r->body_len, ex, sizeof(ex));
		snprintf(msg, sizeof(msg),
		         "GET %s answered HTTP %ld with a body that is not JSON (%s): %s",
		         call->url, r->status, jerr.text, ex);
	} else if (!(data = envelope(call, r, doc, msg, sizeof(msg)))) {
		err = -EPROTO;
	}
	call->cb(call->userdata, err, err ? NULL : data, err ? msg : NULL);
	json_decref(doc);
	free(call->url);
	free(call);
}

int promapi_get(struct http_client *c, const struct spec_probe *sp, const char *path,
                const char *const *params, int64_t timeout_ms, promapi_cb cb, void *userdata,
                struct promapi_call **ret_call)
{
	struct promapi_call *call = calloc(1, sizeof(*call));
	struct http_options opt = {
	        .headers = sp->headers,
	        .n_headers = sp->n_headers,
	        .timeout_ms = timeout_ms > 0 ? timeout_ms : PROMAPI_DEFAULT_TIMEOUT_MS,
	        .insecure = sp->insecure,
	        .ca_file = sp->ca_file,
	        .max_body = PROMAPI_MAX_BODY,
	};
	char *full = NULL;
	int r = -ENOMEM;

	if (!call)
		return -ENOMEM;
	call->cb = cb;
	call->userdata = userdata;
	call->url = build_url(sp->prometheus, path, NULL);
	full = build_url(sp->prometheus, path, params);
	if (!call->url || !full)
		goto fail;
	opt.url = full;
	r = http_request_start(c, &opt, on_response, call, &call->req);
	free(full);
	full = NULL;
	if (r < 0)
		goto fail;
	*ret_call = call;
	return 0;
fail:
	free(full);
	free(call->url);
	free(call);
	return r;
}

void promapi_cancel(struct promapi_call *call)
{
	if (!call)
		return;
	http_request_cancel(call->req);
	free(call->url);
	free(call);
}
