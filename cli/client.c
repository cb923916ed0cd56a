/* client: readyctl's HTTP client on the libcurl easy API. Blocking is
 * right for a CLI; one easy handle is reused so a long wait keeps its
 * connection. It turns transport failures into one sentence a human can
 * act on ("cannot connect to http://127.0.0.1:7411: Connection refused")
 * and problem+json bodies into `readyctl: title: detail` plus the paths.
 *
 * It must not decide exit codes or retry: the commands know whether a
 * request is safe to repeat.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lib/util/util.h"

struct body_buf {
	char *data;
	size_t len;
	size_t cap;
	bool too_big;
};

static bool valid_header_value(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static int check_base_url(const char *url)
{
	size_t len = strlen(url);

	if (len == 0 || len > CTL_MAX_URL || !valid_header_value(url))
		return -EINVAL;
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
		return -EINVAL;
	return 0;
}

int client_init(struct client *c, const char *url, const char *token, const char *cacert)
{
	size_t len;

	memset(c, 0, sizeof(*c));
	if (check_base_url(url) < 0) {
		fprintf(stderr,
		        "readyctl: invalid server URL '%s': expected http://HOST[:PORT] or https://...\n",
		        url);
		return -EINVAL;
	}
	if (token && (strlen(token) > CTL_MAX_TOKEN || !valid_header_value(token) || !*token)) {
		fprintf(stderr,
		        "readyctl: invalid token: empty, too long or contains control characters\n");
		return -EINVAL;
	}
	c->base_url = strdup(url);
	if (!c->base_url)
		goto nomem;
	len = strlen(c->base_url);
	while (len > 0 && c->base_url[len - 1] == '/')
		c->base_url[--len] = '\0';
	if (token && asprintf(&c->auth_header, "Authorization: Bearer %s", token) < 0) {
		c->auth_header = NULL;
		goto nomem;
	}
	if (cacert && !(c->cacert = strdup(cacert)))
		goto nomem;
	c->curl = curl_easy_init();
	if (!c->curl)
		goto nomem;
	return 0;
nomem:
	client_deinit(c);
	ctl_errorf("out of memory\n");
	return -ENOMEM;
}

void client_deinit(struct client *c)
{
	if (c->curl)
		curl_easy_cleanup(c->curl);
	free(c->base_url);
	free(c->auth_header);
	free(c->cacert);
	memset(c, 0, sizeof(*c));
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct body_buf *b = userdata;
	size_t n = size * nmemb;
	size_t cap;
	char *p;

	if (n > CTL_MAX_BODY - b->len) {
		b->too_big = true;
		return 0; /* makes curl fail with CURLE_WRITE_ERROR */
	}
	if (b->len + n + 1 > b->cap) {
		cap = b->cap ? b->cap : 16384;
		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->data, cap);
		if (!p)
			return 0;
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

static int on_xfer(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                   curl_off_t ulnow)
{
	const struct client *c = userdata;

	return c->abort_flag && *c->abort_flag ? 1 : 0;
}

static struct curl_slist *build_headers(const struct client *c, const struct request *req)
{
	struct curl_slist *h = NULL, *t;
	char line[512];

	snprintf(line, sizeof(line), "Accept: %s",
	         req->accept ? req->accept : "application/json, application/problem+json");
	if (!(t = curl_slist_append(h, line)))
		goto fail;
	h = t;
	if (c->auth_header) {
		if (!(t = curl_slist_append(h, c->auth_header)))
			goto fail;
		h = t;
	}
	if (req->body) {
		snprintf(line, sizeof(line), "Content-Type: %s", req->content_type);
		if (!(t = curl_slist_append(h, line)))
			goto fail;
		h = t;
		/* Small specs must not wait for a 100-continue round trip. */
		if (!(t = curl_slist_append(h, "Expect:")))
			goto fail;
		h = t;
	}
	if (req->idempotency_key) {
		snprintf(line, sizeof(line), "Idempotency-Key: %s", req->idempotency_key);
		if (!(t = curl_slist_append(h, line)))
			goto fail;
		h = t;
	}
	return h;
fail:
	curl_slist_free_all(h);
	return NULL;
}

static int setup_handle(struct client *c, const struct request *req, const char *url,
                        struct curl_slist *headers, struct body_buf *body)
{
	CURL *e = c->curl;
	CURLcode rc = CURLE_OK;

	curl_easy_reset(e);
	c->errbuf[0] = '\0';
	rc |= curl_easy_setopt(e, CURLOPT_URL, url);
	rc |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	rc |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	rc |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
	rc |= curl_easy_setopt(e, CURLOPT_USERAGENT, "readyctl/" READYD_VERSION);
	rc |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
	rc |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, CTL_CONNECT_TIMEOUT_S);
	rc |= curl_easy_setopt(e, CURLOPT_TIMEOUT,
	                       req->timeout_s ? req->timeout_s : CTL_REQUEST_TIMEOUT_S);
	rc |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	rc |= curl_easy_setopt(e, CURLOPT_WRITEDATA, body);
	rc |= curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)CTL_MAX_BODY);
	/* Compressed reports are much smaller; curl inflates what it can. */
	rc |= curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	if (c->cacert)
		rc |= curl_easy_setopt(e, CURLOPT_CAINFO, c->cacert);
	if (c->abort_flag) {
		rc |= curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_xfer);
		rc |= curl_easy_setopt(e, CURLOPT_XFERINFODATA, c);
		rc |= curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
	}
	/* POST and PUT send their body the same way; PUT names itself. */
	if (strcmp(req->method, "POST") == 0 || strcmp(req->method, "PUT") == 0) {
		rc |= curl_easy_setopt(e, CURLOPT_POST, 1L);
		rc |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body ? req->body : "");
		rc |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
		                       (curl_off_t)(req->body ? req->body_len : 0));
	}
	if (strcmp(req->method, "POST") != 0 && strcmp(req->method, "GET") != 0)
		rc |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
	return rc == CURLE_OK ? 0 : -EINVAL;
}

/* Connection-level failures may heal (daemon restarting, network blip);
 * everything else (TLS, bad URL, oversized body) will not. */
static bool is_retryable(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return true;
	default:
		return false;
	}
}

static int transport_error(struct client *c, CURLcode rc, const struct body_buf *body)
{
	long os_errno = 0;
	const char *why = c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);

	curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &os_errno);
	c->retryable = is_retryable(rc);
	if (body->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
		snprintf(c->message, sizeof(c->message),
		         "response from %s is larger than %u MiB, refusing it", c->base_url,
		         CTL_MAX_BODY / (1024 * 1024));
		return -EFBIG;
	}
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
		snprintf(c->message, sizeof(c->message), "cannot connect to %s: %s", c->base_url,
		         os_errno ? strerror((int)os_errno) : why);
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
		snprintf(c->message, sizeof(c->message), "cannot resolve the host of %s: %s",
		         c->base_url, why);
		return -EHOSTUNREACH;
	case CURLE_OPERATION_TIMEDOUT:
		snprintf(c->message, sizeof(c->message), "request to %s timed out: %s", c->base_url,
		         why);
		return -ETIMEDOUT;
	case CURLE_ABORTED_BY_CALLBACK:
		snprintf(c->message, sizeof(c->message), "interrupted");
		return -EINTR;
	case CURLE_OUT_OF_MEMORY:
		snprintf(c->message, sizeof(c->message), "out of memory");
		return -ENOMEM;
	default:
		snprintf(c->message, sizeof(c->message), "request to %s failed: %s", c->base_url,
		         why);
		return -EIO;
	}
}

static int copy_meta(struct client *c, struct response *r)
{
	struct curl_header *h = NULL;
	char *ct = NULL;

	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &r->status);
	if (curl_easy_getinfo(c->curl, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct &&
	    !(r->content_type = strdup(ct)))
		return -ENOMEM;
	if (curl_easy_header(c->curl, "Location", 0, CURLH_HEADER, -1, &h) == CURLHE_OK &&
	    !(r->location = strdup(h->value)))
		return -ENOMEM;
	return 0;
}

int client_send(struct client *c, const struct request *req, struct response *ret_resp)
{
	struct body_buf body = {0};
	struct response r = {0};
	struct curl_slist *headers = NULL;
	char url[CTL_MAX_URL + 1024];
	CURLcode rc;
	int ret;

	c->message[0] = '\0';
	c->retryable = false;
	if (snprintf(url, sizeof(url), "%s%s", c->base_url, req->path) >= (int)sizeof(url)) {
		snprintf(c->message, sizeof(c->message), "request URL too long");
		return -ENAMETOOLONG;
	}
	headers = build_headers(c, req);
	ret = headers ? setup_handle(c, req, url, headers, &body) : -ENOMEM;
	if (ret < 0) {
		snprintf(c->message, sizeof(c->message), "cannot set up the request: %s",
		         strerror(-ret));
		goto out;
	}
	rc = curl_easy_perform(c->curl);
	if (rc != CURLE_OK) {
		ret = transport_error(c, rc, &body);
		goto out;
	}
	r.body = body.data ? body.data : strdup("");
	body.data = NULL;
	r.len = body.len;
	ret = r.body ? copy_meta(c, &r) : -ENOMEM;
	if (ret < 0) {
		snprintf(c->message, sizeof(c->message), "out of memory");
		response_free(&r);
		goto out;
	}
	*ret_resp = r;
out:
	curl_slist_free_all(headers);
	free(body.data);
	return ret;
}

void response_free(struct response *r)
{
	free(r->body);
	free(r->content_type);
	free(r->location);
	memset(r, 0, sizeof(*r));
}

bool response_ok(const struct response *r)
{
	return r->status >= 200 && r->status < 300;
}
