/* http: outgoing HTTP for probes, on libcurl's multi_socket API driven by
 * a libuv loop (CURLMOPT_SOCKETFUNCTION -> uv_poll_t per socket,
 * CURLMOPT_TIMERFUNCTION -> one uv_timer_t; a 0 ms timeout fires at once).
 * TLS, HTTP/2, proxies and redirects come from libcurl. The load engine
 * does not use this (lib/loadgen has its own client, see docs/DESIGN.md).
 *
 * All functions: the loop's thread only.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "lib/spec/spec.h"

#define HTTP_MAX_BODY (8 * 1024 * 1024) /* default response body cap */

struct http_client;
struct http_request;

struct http_options {
	const char *method; /* NULL: GET (POST if body is set) */
	const char *url;
	const struct spec_header *headers;
	size_t n_headers;
	const char *body; /* NULL: none */
	size_t body_len;
	int64_t timeout_ms; /* whole request; 0: 30 s */
	bool insecure;      /* do not verify the peer's certificate or name */
	const char *ca_file;
	bool follow_redirects; /* at most 5 */
	size_t max_body;       /* 0: HTTP_MAX_BODY; longer bodies are an error */
};

struct http_response {
	int err;           /* 0, or -errno-like class: -ECONNREFUSED, -ETIMEDOUT,
	                    * -EPROTO, -EFBIG (body over the cap), -EIO */
	const char *error; /* curl's message when err != 0, else NULL */
	long status;       /* HTTP status, 0 if none */
	const char *body;  /* NUL-terminated (body_len excludes the NUL) */
	size_t body_len;
	double total_ms;          /* whole request as measured by libcurl */
	const char *content_type; /* or NULL */
	const char *retry_after;  /* Retry-After header value or NULL */
	const char *effective_url;
};

/* Called once per request that was not cancelled; resp and its strings are
 * borrowed for the duration of the call. */
typedef void (*http_done_cb)(void *userdata, const struct http_response *resp);

/* Opening socket policy: called with the resolved address of every
 * connection (also on redirects) before it is made; return 0 to allow,
 * -EPERM to refuse. NULL: allow all. */
typedef int (*http_policy_cb)(void *userdata, const struct sockaddr *addr, const char *host);

int http_client_new(uv_loop_t *loop, struct http_client **ret_client);

/* Cancels pending requests (their callbacks are not called) and closes
 * the handles; the client's memory is released from the close callbacks,
 * so the loop must run once more. NULL is fine. */
void http_client_free(struct http_client *c);

void http_client_set_policy(struct http_client *c, http_policy_cb cb, void *userdata);

/* The policy set above (NULLs if none), for engines that connect on their
 * own (lib/loadgen) and must apply the same allowlist. */
void http_client_get_policy(struct http_client *c, http_policy_cb *ret_cb, void **ret_userdata);

/* Local files: probes (and ca_file of requests) read them through the
 * policy this hook returns (lib/policy/policy.h, allowed_paths); borrowed for
 * the call, NULL allows no file. No hook: no file either. */
struct policy;
typedef struct policy *(*http_files_cb)(void *userdata);

void http_client_set_files(struct http_client *c, http_files_cb cb, void *userdata);

/* The current file policy (see above), borrowed: take a reference to keep
 * it past the current loop turn. NULL: no file may be read. */
struct policy *http_client_files(struct http_client *c);

/* Asks the client's policy about a connection a probe opens itself (the
 * tls probe's raw socket): 0 to allow, -EPERM to refuse. */
int http_client_check_addr(struct http_client *c, const struct sockaddr *addr, const char *host);

/* Starts a request. All of opt is copied. On success *ret_req (optional)
 * identifies it for http_request_cancel() until cb is called. */
int http_request_start(struct http_client *c, const struct http_options *opt, http_done_cb cb,
                       void *userdata, struct http_request **ret_req);

/* Aborts a request; its callback will not be called. */
void http_request_cancel(struct http_request *req);
