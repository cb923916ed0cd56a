/* http: outgoing HTTP for probes. One CURLM per client, driven by the
 * client's libuv loop through libcurl's multi_socket API: each socket curl
 * wants watched gets one uv_poll_t, curl's single timeout is one
 * uv_timer_t. Every connection curl opens (redirects included) first
 * passes the client's policy callback, which is how allowed_targets (SSRF
 * control) is enforced.
 *
 * It must not: close a socket (curl owns them), block the loop, follow
 * anything but http/https, or call back a request that was cancelled.
 * The load engine does not use it (see docs/DESIGN.md, Architecture principles).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "lib/net/http.h"
#include "lib/policy/policy.h"

#define HTTP_DEFAULT_TIMEOUT_MS 30000
/* A TCP or TLS handshake slower than this is a failure on its own. */
#define HTTP_CONNECT_TIMEOUT_MS 10000
#define HTTP_MAX_TIMEOUT_MS     (3600 * 1000)
#define HTTP_MAX_REDIRS         5L
#define HTTP_MAX_URL            8192
#define HTTP_MAX_HEADERS        64
#define HTTP_MAX_HEADER_LEN     8192
#define HTTP_MAX_METHOD         32
/* Captured response header values; longer ones are truncated. */
#define HTTP_MAX_VALUE 256
#define HTTP_ADDR_LEN  (INET6_ADDRSTRLEN + 8)
/* Upper bound for http_options.max_body, so buffer sizes never overflow. */
#define HTTP_MAX_BODY_LIMIT ((size_t)1 << 30)

struct http_poll {
	struct http_client *client;
	LIST_ENTRY(http_poll) link;
	uv_poll_t poll;
	curl_socket_t fd;
};

struct http_request {
	struct http_client *client;
	LIST_ENTRY(http_request) link;
	CURL *easy;
	struct curl_slist *headers;
	char *req_body;
	http_done_cb cb;
	void *userdata;
	char *body;
	size_t body_len;
	size_t body_cap;
	size_t max_body;
	bool over_cap;
	bool oom;
	bool refused;
	bool completing;             /* out of the client's list, its callback running */
	struct policy_file *ca_read; /* ca_file being read off the loop */
	char *ca_path;
	char content_type[HTTP_MAX_VALUE];
	char retry_after[HTTP_MAX_VALUE];
	char refused_addr[HTTP_ADDR_LEN];
	char errbuf[CURL_ERROR_SIZE];
};

struct http_client {
	uv_loop_t *loop;
	CURLM *multi;
	uv_timer_t timer;
	http_policy_cb policy;
	void *policy_data;
	http_files_cb files;
	void *files_data;
	LIST_HEAD(, http_request) requests;
	LIST_HEAD(, http_poll) polls;
	/* uv handles not yet through their close callback: the timer and
	 * every poll. The client's memory goes with the last one. */
	unsigned open_handles;
	bool freeing;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Evaluates a setopt only while every earlier one succeeded, so a chain
 * of options needs one check at its end. */
#define EASY_SET(rc, easy, opt, val)                                                               \
	((rc) == CURLE_OK ? curl_easy_setopt((easy), (opt), (val)) : (rc))

static int setopt_errno(CURLcode rc)
{
	return rc == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EINVAL;
}

/* ---- uv handles ---- */

static void client_handle_closed(struct http_client *c)
{
	c->open_handles--;
	if (c->open_handles == 0 && c->freeing)
		free(c);
}

static void on_poll_close(uv_handle_t *h)
{
	struct http_poll *p = h->data;
	struct http_client *c = p->client;

	free(p);
	client_handle_closed(c);
}

static void on_timer_close(uv_handle_t *h)
{
	client_handle_closed(h->data);
}

static void poll_close(struct http_poll *p)
{
	LIST_REMOVE(p, link);
	uv_poll_stop(&p->poll);
	uv_close((uv_handle_t *)&p->poll, on_poll_close);
}

static struct http_poll *poll_new(struct http_client *c, curl_socket_t fd)
{
	struct http_poll *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	if (uv_poll_init_socket(c->loop, &p->poll, fd) < 0) {
		free(p);
		return NULL;
	}
	p->client = c;
	p->fd = fd;
	p->poll.data = p;
	c->open_handles++;
	LIST_INSERT_HEAD(&c->polls, p, link);
	return p;
}

/* ---- completion ---- */

static void format_addr(const struct sockaddr *sa, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, ntohs(in6->sin6_port));
	} else {
		snprintf(buf, len, "address of family %d", sa->sa_family);
	}
}

static bool is_ssl_error(CURLcode rc)
{
	switch (rc) {
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CLIENTCERT:
	case CURLE_USE_SSL_FAILED:
		return true;
	default:
		return false;
	}
}

/* The one place a CURLcode becomes an errno class. Write errors and failed
 * connects caused by this module (cap, allocation, policy) are told apart
 * by the flags the callbacks left on the request. */
static int request_errno(const struct http_request *req, CURLcode rc)
{
	if (rc == CURLE_OK)
		return 0;
	if (rc == CURLE_WRITE_ERROR && req->over_cap)
		return -EFBIG;
	if (rc == CURLE_WRITE_ERROR && req->oom)
		return -ENOMEM;
	if (rc == CURLE_COULDNT_CONNECT && req->refused)
		return -EPERM;
	if (is_ssl_error(rc))
		return -EPROTO;
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_RESOLVE_HOST:
		return -EHOSTUNREACH;
	default:
		return -EIO;
	}
}

/* Our own words where curl's would only say "write error" or "failed to
 * connect"; otherwise curl's detailed buffer, else its generic text. */
static const char *request_message(struct http_request *req, CURLcode rc, int err)
{
	switch (err) {
	case 0:
		return NULL;
	case -EFBIG:
		snprintf(req->errbuf, sizeof(req->errbuf), "response body over the %zu-byte cap",
		         req->max_body);
		return req->errbuf;
	case -ENOMEM:
		snprintf(req->errbuf, sizeof(req->errbuf), "out of memory for the response body");
		return req->errbuf;
	case -EPERM:
		snprintf(req->errbuf, sizeof(req->errbuf), "connection to %s refused by policy",
		         req->refused_addr);
		return req->errbuf;
	default:
		return req->errbuf[0] ? req->errbuf : curl_easy_strerror(rc);
	}
}

static void response_fill(struct http_request *req, CURLcode rc, struct http_response *resp)
{
	curl_off_t total_us = 0;
	char *url = NULL;

	memset(resp, 0, sizeof(*resp));
	resp->err = request_errno(req, rc);
	resp->error = request_message(req, rc, resp->err);
	if (curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &resp->status) != CURLE_OK)
		resp->status = 0;
	resp->body = req->body ? req->body : "";
	resp->body_len = req->body_len;
	if (curl_easy_getinfo(req->easy, CURLINFO_TOTAL_TIME_T, &total_us) == CURLE_OK)
		resp->total_ms = (double)total_us / 1000.0;
	resp->content_type = req->content_type[0] ? req->content_type : NULL;
	resp->retry_after = req->retry_after[0] ? req->retry_after : NULL;
	if (curl_easy_getinfo(req->easy, CURLINFO_EFFECTIVE_URL, &url) == CURLE_OK)
		resp->effective_url = url;
}

static void request_free(struct http_request *req)
{
	policy_file_cancel(req->ca_read);
	free(req->ca_path);
	curl_easy_cleanup(req->easy);
	curl_slist_free_all(req->headers);
	free(req->req_body);
	free(req->body);
	free(req);
}

/* The handle leaves the multi before the callback, so the callback may
 * start requests (reusing the connection), cancel others or free the
 * client; the easy handle lives until after it, for effective_url. */
static void request_complete(struct http_request *req, CURLcode rc)
{
	struct http_client *c = req->client;
	struct http_response resp;

	LIST_REMOVE(req, link);
	req->completing = true;
	curl_multi_remove_handle(c->multi, req->easy);
	response_fill(req, rc, &resp);
	req->cb(req->userdata, &resp);
	request_free(req);
}

/* Callbacks may free the client: its memory stays until the close
 * callbacks run, so checking `freeing` after each one is safe. */
static void process_done(struct http_client *c)
{
	CURLMsg *msg;
	int left;

	while (!c->freeing && (msg = curl_multi_info_read(c->multi, &left))) {
		CURLcode rc = msg->data.result;
		char *priv = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		if (curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv) != CURLE_OK ||
		    !priv)
			continue;
		request_complete((struct http_request *)priv, rc);
	}
}

/* ---- curl <-> libuv ---- */

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct http_poll *p = h->data;
	struct http_client *c = p->client;
	int flags = 0;
	int running;

	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	/* p may be closed from inside this call (CURL_POLL_REMOVE). */
	curl_multi_socket_action(c->multi, p->fd, flags, &running);
	process_done(c);
}

static void http_on_timer(uv_timer_t *t)
{
	struct http_client *c = t->data;
	int running;

	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	process_done(c);
}

static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct http_client *c = userp;
	struct http_poll *p = socketp;
	int events = 0;

	if (what == CURL_POLL_REMOVE) {
		if (p)
			poll_close(p);
		return 0;
	}
	if (!p) {
		p = poll_new(c, s);
		if (!p)
			return -1;
		curl_multi_assign(c->multi, s, p);
	}
	if (what & CURL_POLL_IN)
		events |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		events |= UV_WRITABLE;
	return uv_poll_start(&p->poll, events, on_poll) < 0 ? -1 : 0;
}

/* A 0 ms timeout is armed as 0 ms: a 1 ms floor (curl's multi-uv example)
 * cut one-connection throughput tenfold. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct http_client *c = userp;

	if (timeout_ms < 0)
		uv_timer_stop(&c->timer);
	else
		uv_timer_start(&c->timer, http_on_timer, (uint64_t)timeout_ms, 0);
	return 0;
}

/* ---- per-transfer callbacks ---- */

/* The host of the URL being connected: curl updates the effective URL
 * before it connects for a redirect. Through a proxy, addr is the proxy's
 * while host stays the target's. NULL on allocation failure. */
static char *request_host(struct http_request *req)
{
	char *url = NULL;
	char *host = NULL;
	char *copy = NULL;
	CURLU *u;

	if (curl_easy_getinfo(req->easy, CURLINFO_EFFECTIVE_URL, &url) != CURLE_OK || !url)
		return strdup("");
	u = curl_url();
	if (!u)
		return NULL;
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
		copy = strdup(host);
	else
		copy = strdup("");
	curl_free(host);
	curl_url_cleanup(u);
	return copy;
}

/* Fails closed: without the host, or on any non-zero answer, no socket. */
static bool policy_allows(struct http_request *req, const struct sockaddr *addr)
{
	struct http_client *c = req->client;
	char *host;
	int r;

	if (!c->policy)
		return true;
	host = request_host(req);
	if (!host)
		return false;
	r = c->policy(c->policy_data, addr, host);
	free(host);
	if (r == 0)
		return true;
	req->refused = true;
	format_addr(addr, req->refused_addr, sizeof(req->refused_addr));
	return false;
}

static curl_socket_t on_open_socket(void *clientp, curlsocktype purpose,
                                    struct curl_sockaddr *address)
{
	struct http_request *req = clientp;
	int fd;

	if (purpose != CURLSOCKTYPE_IPCXN || !policy_allows(req, &address->addr))
		return CURL_SOCKET_BAD;
	fd = socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
	return fd < 0 ? CURL_SOCKET_BAD : fd;
}

static bool body_reserve(struct http_request *req, size_t need)
{
	size_t cap = req->body_cap ? req->body_cap : 4096;
	char *nb;

	if (need <= req->body_cap)
		return true;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	if (cap > req->max_body + 1)
		cap = req->max_body + 1;
	nb = realloc(req->body, cap);
	if (!nb)
		return false;
	req->body = nb;
	req->body_cap = cap;
	return true;
}

/* Returning less than given makes curl fail the transfer with
 * CURLE_WRITE_ERROR; the flags say why. */
static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
	struct http_request *req = userp;
	size_t n = size * nmemb;

	if (n > req->max_body - req->body_len) {
		req->over_cap = true;
		return 0;
	}
	if (!body_reserve(req, req->body_len + n + 1)) {
		req->oom = true;
		return 0;
	}
	memcpy(req->body + req->body_len, data, n);
	req->body_len += n;
	req->body[req->body_len] = '\0';
	return n;
}

/* If line is "name: value" (name case-insensitive), copies the trimmed
 * value into out, truncated to fit. */
static void header_capture(const char *line, size_t len, const char *name, char *out, size_t outlen)
{
	size_t nlen = strlen(name);
	const char *v;
	size_t vlen;

	if (len <= nlen || line[nlen] != ':' || strncasecmp(line, name, nlen) != 0)
		return;
	v = line + nlen + 1;
	vlen = len - nlen - 1;
	while (vlen > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		vlen--;
	}
	while (vlen > 0 && strchr(" \t\r\n", v[vlen - 1]))
		vlen--;
	if (vlen >= outlen)
		vlen = outlen - 1;
	memcpy(out, v, vlen);
	out[vlen] = '\0';
}

/* Every response (1xx, each redirect hop, the final one) starts with its
 * status line: only the last response's headers and body are kept. */
static size_t on_header(char *line, size_t size, size_t nmemb, void *userp)
{
	struct http_request *req = userp;
	size_t len = size * nmemb;

	if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
		req->content_type[0] = '\0';
		req->retry_after[0] = '\0';
		req->body_len = 0;
		if (req->body)
			req->body[0] = '\0';
		return len;
	}
	header_capture(line, len, "content-type", req->content_type, sizeof(req->content_type));
	header_capture(line, len, "retry-after", req->retry_after, sizeof(req->retry_after));
	return len;
}

/* ---- request setup ---- */

static bool is_token(const char *s, size_t max)
{
	size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	                     "!#$%&'*+-.^_`|~");

	return n > 0 && n <= max && s[n] == '\0';
}

static int options_check(const struct http_options *opt)
{
	if (!opt->url || strnlen(opt->url, HTTP_MAX_URL + 1) > HTTP_MAX_URL)
		return -EINVAL;
	if (opt->method && !is_token(opt->method, HTTP_MAX_METHOD))
		return -EINVAL;
	if (opt->method && strcmp(opt->method, "HEAD") == 0 && opt->body)
		return -EINVAL;
	if (opt->timeout_ms < 0 || opt->timeout_ms > HTTP_MAX_TIMEOUT_MS)
		return -EINVAL;
	if (opt->n_headers > HTTP_MAX_HEADERS || (opt->n_headers && !opt->headers))
		return -EINVAL;
	if (opt->body && opt->body_len > HTTP_MAX_BODY)
		return -EFBIG;
	return 0;
}

/* "Name: value"; an empty value is sent as "Name;" because curl reads
 * "Name:" as "remove this header". CR/LF would smuggle headers: refused. */
static int header_append(struct http_request *req, const struct spec_header *h)
{
	char line[HTTP_MAX_HEADER_LEN];
	struct curl_slist *l;
	int n;

	if (!h->name || !h->value || !is_token(h->name, HTTP_MAX_HEADER_LEN) ||
	    strpbrk(h->value, "\r\n"))
		return -EINVAL;
	if (h->value[0])
		n = snprintf(line, sizeof(line), "%s: %s", h->name, h->value);
	else
		n = snprintf(line, sizeof(line), "%s;", h->name);
	if (n < 0 || (size_t)n >= sizeof(line))
		return -EINVAL;
	l = curl_slist_append(req->headers, line);
	if (!l)
		return -ENOMEM;
	req->headers = l;
	return 0;
}

static int request_set_headers(struct http_request *req, const struct http_options *opt)
{
	int r;

	for (size_t i = 0; i < opt->n_headers; i++) {
		r = header_append(req, &opt->headers[i]);
		if (r < 0)
			return r;
	}
	if (!req->headers)
		return 0;
	return curl_easy_setopt(req->easy, CURLOPT_HTTPHEADER, req->headers) == CURLE_OK ? 0
	                                                                                 : -EINVAL;
}

/* NULL: GET, or POST with a body. GET/POST/HEAD map to curl's own modes so
 * redirects behave as curl documents; other methods are custom. */
static int request_set_method(struct http_request *req, const struct http_options *opt)
{
	const char *m = opt->method;
	CURL *e = req->easy;
	CURLcode rc = CURLE_OK;

	if (opt->body) {
		req->req_body = malloc(opt->body_len ? opt->body_len : 1);
		if (!req->req_body)
			return -ENOMEM;
		memcpy(req->req_body, opt->body, opt->body_len);
		rc = EASY_SET(rc, e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)opt->body_len);
		rc = EASY_SET(rc, e, CURLOPT_POSTFIELDS, req->req_body);
	}
	if (!m) {
		/* default: GET without a body, POST with one */
	} else if (strcmp(m, "GET") == 0) {
		rc = opt->body ? EASY_SET(rc, e, CURLOPT_CUSTOMREQUEST, m)
		               : EASY_SET(rc, e, CURLOPT_HTTPGET, 1L);
	} else if (strcmp(m, "POST") == 0) {
		if (!opt->body) {
			rc = EASY_SET(rc, e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
			rc = EASY_SET(rc, e, CURLOPT_POSTFIELDS, "");
		}
	} else if (strcmp(m, "HEAD") == 0) {
		rc = EASY_SET(rc, e, CURLOPT_NOBODY, 1L);
	} else {
		rc = EASY_SET(rc, e, CURLOPT_CUSTOMREQUEST, m);
	}
	return rc == CURLE_OK ? 0 : setopt_errno(rc);
}

static CURLcode request_set_callbacks(struct http_request *req)
{
	CURL *e = req->easy;
	CURLcode rc = CURLE_OK;

	rc = EASY_SET(rc, e, CURLOPT_PRIVATE, req);
	rc = EASY_SET(rc, e, CURLOPT_ERRORBUFFER, req->errbuf);
	rc = EASY_SET(rc, e, CURLOPT_WRITEFUNCTION, on_body);
	rc = EASY_SET(rc, e, CURLOPT_WRITEDATA, req);
	rc = EASY_SET(rc, e, CURLOPT_HEADERFUNCTION, on_header);
	rc = EASY_SET(rc, e, CURLOPT_HEADERDATA, req);
	rc = EASY_SET(rc, e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
	rc = EASY_SET(rc, e, CURLOPT_OPENSOCKETDATA, req);
	return rc;
}

static int request_set_transport(struct http_request *req, const struct http_options *opt)
{
	int64_t timeout = opt->timeout_ms ? opt->timeout_ms : HTTP_DEFAULT_TIMEOUT_MS;
	int64_t connect = timeout < HTTP_CONNECT_TIMEOUT_MS ? timeout : HTTP_CONNECT_TIMEOUT_MS;
	CURL *e = req->easy;
	CURLcode rc = request_set_callbacks(req);

	rc = EASY_SET(rc, e, CURLOPT_URL, opt->url);
	rc = EASY_SET(rc, e, CURLOPT_NOSIGNAL, 1L);
	rc = EASY_SET(rc, e, CURLOPT_PROTOCOLS_STR, "http,https");
	rc = EASY_SET(rc, e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	rc = EASY_SET(rc, e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	rc = EASY_SET(rc, e, CURLOPT_ACCEPT_ENCODING, NULL);
	rc = EASY_SET(rc, e, CURLOPT_TIMEOUT_MS, (long)timeout);
	rc = EASY_SET(rc, e, CURLOPT_CONNECTTIMEOUT_MS, (long)connect);
	rc = EASY_SET(rc, e, CURLOPT_FOLLOWLOCATION, opt->follow_redirects ? 1L : 0L);
	rc = EASY_SET(rc, e, CURLOPT_MAXREDIRS, HTTP_MAX_REDIRS);
	if (opt->insecure) {
		rc = EASY_SET(rc, e, CURLOPT_SSL_VERIFYPEER, 0L);
		rc = EASY_SET(rc, e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	return rc == CURLE_OK ? 0 : setopt_errno(rc);
}

static int request_new(struct http_client *c, const struct http_options *opt, http_done_cb cb,
                       void *userdata, struct http_request **ret_req)
{
	struct http_request *req = calloc(1, sizeof(*req));
	int r;

	if (!req)
		return -ENOMEM;
	req->client = c;
	req->cb = cb;
	req->userdata = userdata;
	req->max_body = opt->max_body ? opt->max_body : HTTP_MAX_BODY;
	if (req->max_body > HTTP_MAX_BODY_LIMIT)
		req->max_body = HTTP_MAX_BODY_LIMIT;
	req->easy = curl_easy_init();
	if (!req->easy) {
		r = -ENOMEM;
		goto fail;
	}
	r = request_set_transport(req, opt);
	if (r >= 0)
		r = request_set_method(req, opt);
	if (r >= 0)
		r = request_set_headers(req, opt);
	if (r < 0)
		goto fail;
	*ret_req = req;
	return 0;
fail:
	request_free(req);
	return r;
}

/* ---- public ---- */

int http_client_new(uv_loop_t *loop, struct http_client **ret_client)
{
	struct http_client *c;
	CURLMcode mc = CURLM_OK;
	int r;

	if (!loop || !ret_client)
		return -EINVAL;
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != CURLE_OK)
		return curl_init_rc == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EIO;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->loop = loop;
	LIST_INIT(&c->requests);
	LIST_INIT(&c->polls);
	c->multi = curl_multi_init();
	if (!c->multi) {
		free(c);
		return -ENOMEM;
	}
	mc = curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
	if (mc == CURLM_OK)
		mc = curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	if (mc == CURLM_OK)
		mc = curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	if (mc == CURLM_OK)
		mc = curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
	r = mc == CURLM_OK ? uv_timer_init(loop, &c->timer) : -EINVAL;
	if (r < 0) {
		curl_multi_cleanup(c->multi);
		free(c);
		return r;
	}
	c->timer.data = c;
	c->open_handles = 1;
	*ret_client = c;
	return 0;
}

void http_client_free(struct http_client *c)
{
	struct http_request *req;
	struct http_poll *p;

	if (!c || c->freeing)
		return;
	c->freeing = true;
	while ((req = LIST_FIRST(&c->requests))) {
		LIST_REMOVE(req, link);
		curl_multi_remove_handle(c->multi, req->easy);
		request_free(req);
	}
	/* Idle cached connections may still be watched. Stop watching while
	 * their fds are open, then let curl close them without telling us. */
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, NULL);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, NULL);
	while ((p = LIST_FIRST(&c->polls)))
		poll_close(p);
	curl_multi_cleanup(c->multi);
	c->multi = NULL;
	uv_close((uv_handle_t *)&c->timer, on_timer_close);
}

void http_client_set_policy(struct http_client *c, http_policy_cb cb, void *userdata)
{
	c->policy = cb;
	c->policy_data = userdata;
}

int http_client_check_addr(struct http_client *c, const struct sockaddr *addr, const char *host)
{
	return c && c->policy ? c->policy(c->policy_data, addr, host) : 0;
}

void http_client_set_files(struct http_client *c, http_files_cb cb, void *userdata)
{
	c->files = cb;
	c->files_data = userdata;
}

struct policy *http_client_files(struct http_client *c)
{
	return c && c->files ? c->files(c->files_data) : NULL;
}

static int request_add(struct http_request *req)
{
	CURLMcode mc = curl_multi_add_handle(req->client->multi, req->easy);

	if (mc != CURLM_OK)
		return mc == CURLM_OUT_OF_MEMORY ? -ENOMEM : -EIO;
	return 0;
}

/* Ends a request that never reached curl, as curl's failures end. */
static void request_fail(struct http_request *req, int err, const char *message)
{
	struct http_response resp = {.err = err, .error = message, .body = ""};

	LIST_REMOVE(req, link);
	req->completing = true;
	req->cb(req->userdata, &resp);
	request_free(req);
}

/* The CA bundle arrives from the threadpool (reading a file on the loop
 * could block it: allowed_paths, lib/policy/policy.h); curl gets a copy. */
static void on_ca_read(void *userdata, int err, char *buf, size_t len, const char *why)
{
	struct http_request *req = userdata;
	struct curl_blob blob = {.data = buf, .len = len, .flags = CURL_BLOB_COPY};
	char msg[CURL_ERROR_SIZE];
	int r;

	req->ca_read = NULL;
	if (err < 0) {
		snprintf(msg, sizeof(msg), "ca_file %.200s %s", req->ca_path, why);
		snprintf(req->errbuf, sizeof(req->errbuf), "%s", msg);
		return request_fail(req, err == -EACCES ? -EPERM : -EIO, req->errbuf);
	}
	r = curl_easy_setopt(req->easy, CURLOPT_CAINFO_BLOB, &blob) == CURLE_OK ? 0 : -EIO;
	free(buf);
	if (r == 0)
		r = request_add(req);
	if (r < 0) {
		snprintf(req->errbuf, sizeof(req->errbuf), "cannot use ca_file %.200s: %s",
		         req->ca_path, strerror(-r));
		request_fail(req, r, req->errbuf);
	}
}

static int request_read_ca(struct http_request *req, const char *ca_file)
{
	struct http_client *c = req->client;

	req->ca_path = strdup(ca_file);
	if (!req->ca_path)
		return -ENOMEM;
	return policy_read_file_async(c->loop, http_client_files(c), ca_file, POLICY_MAX_FILE_SIZE,
	                              on_ca_read, req, &req->ca_read);
}

int http_request_start(struct http_client *c, const struct http_options *opt, http_done_cb cb,
                       void *userdata, struct http_request **ret_req)
{
	struct http_request *req;
	int r;

	if (!c || !opt || !cb)
		return -EINVAL;
	if (c->freeing)
		return -ESHUTDOWN;
	r = options_check(opt);
	if (r < 0)
		return r;
	r = request_new(c, opt, cb, userdata, &req);
	if (r < 0)
		return r;
	r = opt->ca_file ? request_read_ca(req, opt->ca_file) : request_add(req);
	if (r < 0) {
		request_free(req);
		return r;
	}
	LIST_INSERT_HEAD(&c->requests, req, link);
	if (ret_req)
		*ret_req = req;
	return 0;
}

void http_request_cancel(struct http_request *req)
{
	if (!req || req->completing)
		return;
	LIST_REMOVE(req, link);
	curl_multi_remove_handle(req->client->multi, req->easy);
	request_free(req);
}

void http_client_get_policy(struct http_client *c, http_policy_cb *ret_cb, void **ret_userdata)
{
	*ret_cb = c ? c->policy : NULL;
	*ret_userdata = c ? c->policy_data : NULL;
}
