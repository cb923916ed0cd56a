/* test-http: lib/http against a real HTTP server on 127.0.0.1 (libmicrohttpd,
 * one thread per connection, ephemeral port), each case on a private
 * uv_loop_t that must close cleanly. The server never talks to anything
 * but loopback; the policy case refuses 127.0.0.2 before any connection.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <curl/curl.h>
#include <microhttpd.h>

#include "lib/net/http.h"
#include "lib/util/util.h"

#define SRV_MAX_UPLOAD (64 * 1024)

/* ---- test server ---- */

struct server {
	struct MHD_Daemon *d;
	uint16_t port;
	atomic_int connections;
	atomic_int requests;
	atomic_bool stopping;
	atomic_bool gate_open;
};

struct upload {
	char *data;
	size_t len;
};

static struct server srv;
static uv_loop_t loop;

static void srv_sleep_ms(int64_t ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Sleeps in small slices so teardown never waits for a sleeping handler. */
static void srv_wait(int64_t ms, bool until_gate)
{
	for (int64_t t = 0; t < ms && !atomic_load(&srv.stopping); t += 5) {
		if (until_gate && atomic_load(&srv.gate_open))
			return;
		srv_sleep_ms(5);
	}
}

static int64_t srv_arg(struct MHD_Connection *conn, const char *name, int64_t dflt)
{
	const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
	int64_t n;

	if (!v || rd_parse_int64(v, 0, 100000000, &n) < 0)
		return dflt;
	return n;
}

static enum MHD_Result srv_send(struct MHD_Connection *conn, unsigned status, void *buf, size_t len,
                                enum MHD_ResponseMemoryMode mode, const char *hname,
                                const char *hvalue)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(len, buf, mode);
	enum MHD_Result r;

	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", "text/plain");
	if (hname)
		MHD_add_response_header(resp, hname, hvalue);
	r = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return r;
}

static enum MHD_Result srv_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
	return srv_send(conn, status, (void *)text, strlen(text), MHD_RESPMEM_MUST_COPY, NULL,
	                NULL);
}

static enum MHD_Result srv_echo(struct MHD_Connection *conn, const char *method,
                                const struct upload *u)
{
	const char *xt = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Test");
	const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
	size_t len = u->len + 256;
	char *buf = malloc(len);
	int n;

	if (!buf)
		return MHD_NO;
	srv_wait(srv_arg(conn, "ms", 0), false);
	n = snprintf(buf, len, "method=%s\nx-test=%.100s\ncontent-type=%.100s\nbody=%.*s", method,
	             xt ? xt : "-", ct ? ct : "-", (int)u->len, u->data ? u->data : "");
	return srv_send(conn, 200, buf, (size_t)n, MHD_RESPMEM_MUST_FREE, NULL, NULL);
}

static enum MHD_Result srv_large(struct MHD_Connection *conn)
{
	size_t n = (size_t)srv_arg(conn, "n", 1000);
	char *buf = malloc(n ? n : 1);

	if (!buf)
		return MHD_NO;
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)('a' + i % 26);
	return srv_send(conn, 200, buf, n, MHD_RESPMEM_MUST_FREE, NULL, NULL);
}

static enum MHD_Result srv_route(struct MHD_Connection *conn, const char *url, const char *method,
                                 const struct upload *u)
{
	char text[64];

	if (strcmp(url, "/ok") == 0)
		return srv_text(conn, 200, "hello");
	if (strcmp(url, "/echo") == 0)
		return srv_echo(conn, method, u);
	if (strcmp(url, "/large") == 0)
		return srv_large(conn);
	if (strcmp(url, "/slow") == 0) {
		srv_wait(srv_arg(conn, "ms", 1000), false);
		return srv_text(conn, 200, "slow");
	}
	if (strcmp(url, "/gate") == 0) {
		srv_wait(60000, true);
		return srv_text(conn, 200, "gate");
	}
	if (strcmp(url, "/status") == 0) {
		int64_t code = srv_arg(conn, "code", 200);

		snprintf(text, sizeof(text), "status %lld", (long long)code);
		return srv_text(conn, (unsigned)code, text);
	}
	if (strcmp(url, "/retry") == 0)
		return srv_send(conn, 503, (void *)"busy", 4, MHD_RESPMEM_PERSISTENT, "Retry-After",
		                "120");
	if (strcmp(url, "/redirect") == 0) {
		const char *to = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "to");

		return srv_send(conn, 302, (void *)"moved", 5, MHD_RESPMEM_PERSISTENT, "Location",
		                to ? to : "/ok");
	}
	return srv_text(conn, 404, "not found");
}

/* Answers on the second call (queueing on the first one
 * closes every connection, and the sequential case counts connections). */
static enum MHD_Result srv_request(void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_data_size, void **con_cls)
{
	struct upload *u = *con_cls;

	if (!u) {
		u = calloc(1, sizeof(*u));
		if (!u)
			return MHD_NO;
		*con_cls = u;
		atomic_fetch_add(&srv.requests, 1);
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		char *nd;

		if (u->len + n > SRV_MAX_UPLOAD)
			return MHD_NO;
		nd = realloc(u->data, u->len + n);
		if (!nd)
			return MHD_NO;
		memcpy(nd + u->len, upload_data, n);
		u->data = nd;
		u->len += n;
		*upload_data_size = 0;
		return MHD_YES;
	}
	return srv_route(conn, url, method, u);
}

static void srv_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                          enum MHD_RequestTerminationCode toe)
{
	struct upload *u = *con_cls;

	if (u) {
		free(u->data);
		free(u);
		*con_cls = NULL;
	}
}

static void srv_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                       enum MHD_ConnectionNotificationCode toe)
{
	if (toe == MHD_CONNECTION_NOTIFY_STARTED)
		atomic_fetch_add(&srv.connections, 1);
}

static void setup(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	const union MHD_DaemonInfo *info;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	atomic_store(&srv.connections, 0);
	atomic_store(&srv.requests, 0);
	atomic_store(&srv.stopping, false);
	atomic_store(&srv.gate_open, false);
	srv.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
	                                 MHD_USE_POLL,
	                         0, NULL, NULL, srv_request, NULL, MHD_OPTION_SOCK_ADDR, &sin,
	                         MHD_OPTION_NOTIFY_COMPLETED, srv_completed, NULL,
	                         MHD_OPTION_NOTIFY_CONNECTION, srv_notify, NULL, MHD_OPTION_END);
	ck_assert_ptr_nonnull(srv.d);
	info = MHD_get_daemon_info(srv.d, MHD_DAEMON_INFO_BIND_PORT);
	ck_assert_ptr_nonnull(info);
	srv.port = info->port;
	ck_assert_int_eq(uv_loop_init(&loop), 0);
}

static void teardown(void)
{
	atomic_store(&srv.stopping, true);
	MHD_stop_daemon(srv.d);
	srv.d = NULL;
}

/* ---- client side helpers ---- */

struct result {
	int calls;
	int err;
	long status;
	size_t body_len;
	char body[512];
	char error[CURL_ERROR_SIZE];
	char content_type[64];
	char retry_after[64];
	char effective_url[256];
	bool pattern_ok; /* body is /large's a..z pattern */
};

static void copy_str(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src ? src : "");
}

static void record(struct result *res, const struct http_response *r)
{
	res->calls++;
	res->err = r->err;
	res->status = r->status;
	res->body_len = r->body_len;
	ck_assert_ptr_nonnull(r->body);
	ck_assert_int_eq(r->body[r->body_len], '\0');
	copy_str(res->body, sizeof(res->body), r->body);
	copy_str(res->error, sizeof(res->error), r->error);
	copy_str(res->content_type, sizeof(res->content_type), r->content_type);
	copy_str(res->retry_after, sizeof(res->retry_after), r->retry_after);
	copy_str(res->effective_url, sizeof(res->effective_url), r->effective_url);
	res->pattern_ok = true;
	for (size_t i = 0; i < r->body_len; i++)
		if (r->body[i] != (char)('a' + i % 26))
			res->pattern_ok = false;
	if (r->err != 0)
		ck_assert_ptr_nonnull(r->error);
	else
		ck_assert_ptr_null(r->error);
}

static void on_done(void *userdata, const struct http_response *r)
{
	record(userdata, r);
}

static void url_for(char *buf, size_t len, const char *host, const char *path)
{
	snprintf(buf, len, "http://%s:%u%s", host, srv.port, path);
}

/* Runs the loop until *count reaches want; a loop with nothing left to
 * wait for before that is a failure, not a hang. */
static void run_until(const int *count, int want)
{
	while (*count < want) {
		int alive = uv_run(&loop, UV_RUN_ONCE);

		ck_assert_msg(alive || *count >= want, "loop ran dry at %d of %d", *count, want);
	}
}

static void finish(struct http_client *c)
{
	http_client_free(c);
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}

/* Starts opt on a new client and waits for its one callback. */
static void fetch(struct http_options *opt, struct result *res)
{
	struct http_client *c;

	ck_assert_int_eq(http_client_new(&loop, &c), 0);
	ck_assert_int_eq(http_request_start(c, opt, on_done, res, NULL), 0);
	run_until(&res->calls, 1);
	finish(c);
	ck_assert_int_eq(res->calls, 1);
}

static void fetch_path(const char *path, struct result *res)
{
	char url[256];
	struct http_options opt = {.url = url};

	url_for(url, sizeof(url), "127.0.0.1", path);
	fetch(&opt, res);
}

/* ---- cases ---- */

START_TEST(test_get_ok)
{
	struct result res = {0};
	char url[256];

	fetch_path("/ok", &res);
	url_for(url, sizeof(url), "127.0.0.1", "/ok");
	ck_assert_int_eq(res.err, 0);
	ck_assert_int_eq(res.status, 200);
	ck_assert_str_eq(res.body, "hello");
	ck_assert_uint_eq(res.body_len, 5);
	ck_assert_str_eq(res.content_type, "text/plain");
	ck_assert_str_eq(res.retry_after, "");
	ck_assert_str_eq(res.effective_url, url);
}
END_TEST

static const struct echo_case {
	const char *method;
	const char *body;
	const char *want;
} echo_cases[] = {
        {NULL, NULL, "method=GET\nx-test=v0\ncontent-type=-\nbody="},
        {NULL, "{\"a\":1}",
         "method=POST\nx-test=v1\ncontent-type=application/json\nbody={\"a\":1}"},
        {"POST", NULL, "method=POST\nx-test=v2\ncontent-type=application/json\nbody="},
        {"PUT", "put-data", "method=PUT\nx-test=v3\ncontent-type=application/json\nbody=put-data"},
        {"DELETE", NULL, "method=DELETE\nx-test=v4\ncontent-type=-\nbody="},
        {"GET", NULL, "method=GET\nx-test=v5\ncontent-type=-\nbody="},
};

START_TEST(test_echo)
{
	const struct echo_case *tc = &echo_cases[_i];
	char url[256], xt[16];
	struct spec_header hdrs[2] = {
	        {.name = "X-Test", .value = xt},
	        {.name = "Content-Type", .value = "application/json"},
	};
	struct http_options opt = {
	        .method = tc->method,
	        .url = url,
	        .headers = hdrs,
	        /* only send Content-Type where the case expects it echoed */
	        .n_headers = strstr(tc->want, "application/json") ? 2 : 1,
	        .body = tc->body,
	        .body_len = tc->body ? strlen(tc->body) : 0,
	};
	struct result res = {0};

	snprintf(xt, sizeof(xt), "v%d", _i);
	url_for(url, sizeof(url), "127.0.0.1", "/echo");
	fetch(&opt, &res);
	ck_assert_int_eq(res.err, 0);
	ck_assert_int_eq(res.status, 200);
	ck_assert_str_eq(res.body, tc->want);
}
END_TEST

START_TEST(test_head)
{
	char url[256];
	struct http_options opt = {.method = "HEAD", .url = url};
	struct result res = {0};

	url_for(url, sizeof(url), "127.0.0.1", "/ok");
	fetch(&opt, &res);
	ck_assert_int_eq(res.err, 0);
	ck_assert_int_eq(res.status, 200);
	ck_assert_uint_eq(res.body_len, 0);
	ck_assert_str_eq(res.content_type, "text/plain");
}
END_TEST

static const int status_cases[] = {200, 201, 404, 500, 503};

START_TEST(test_status)
{
	char path[64], want[64];
	struct result res = {0};

	snprintf(path, sizeof(path), "/status?code=%d", status_cases[_i]);
	snprintf(want, sizeof(want), "status %d", status_cases[_i]);
	fetch_path(path, &res);
	ck_assert_int_eq(res.err, 0);
	ck_assert_int_eq(res.status, status_cases[_i]);
	ck_assert_str_eq(res.body, want);
}
END_TEST

START_TEST(test_retry_after)
{
	struct result res = {0};

	fetch_path("/retry", &res);
	ck_assert_int_eq(res.err, 0);
	ck_assert_int_eq(res.status, 503);
	ck_assert_str_eq(res.retry_after, "120");
	ck_assert_str_eq(res.body, "busy");
}
END_TEST

START_TEST(test_redirect)
{
	char url[256], ok[256];
	struct http_options opt = {.url = url, .follow_redirects = true};
	struct result res = {0}, res2 = {0};

	url_for(url, sizeof(url), "127.0.0.1", "/redirect?to=/ok");
	url_for(ok, sizeof(ok), "127.0.0.1", "/ok");
	fetch(&opt, &res);
	ck_assert_int_eq(res.err, 0);
	ck_assert_int_eq(res.status, 200);
	ck_assert_str_eq(res.body, "hello");
	ck_assert_str_eq(res.effective_url, ok);

	ck_assert_int_eq(uv_loop_init(&loop), 0);
	opt.follow_redirects = false;
	fetch(&opt, &res2);
	ck_assert_int_eq(res2.err, 0);
	ck_assert_int_eq(res2.status, 302);
	ck_assert_str_eq(res2.body, "moved");
}
END_TEST

/* Only http and https, also as redirect targets: nothing is read. */
static const char *const proto_cases[] = {
        "file:///etc/passwd",
        "ftp://127.0.0.1:1/",
        "/redirect?to=file:///etc/passwd",
};

START_TEST(test_protocols)
{
	char url[256];
	struct http_options opt = {.url = url, .follow_redirects = true};
	struct result res = {0};

	if (proto_cases[_i][0] == '/')
		url_for(url, sizeof(url), "127.0.0.1", proto_cases[_i]);
	else
		copy_str(url, sizeof(url), proto_cases[_i]);
	fetch(&opt, &res);
	ck_assert_int_eq(res.err, -EIO);
	ck_assert_ptr_null(strstr(res.body, "root:"));
	ck_assert_int_eq(atomic_load(&srv.requests), proto_cases[_i][0] == '/' ? 1 : 0);
}
END_TEST

START_TEST(test_tls_to_plain_server)
{
	char url[256];
	struct http_options opt = {.url = url};
	struct result res = {0};

	snprintf(url, sizeof(url), "https://127.0.0.1:%u/ok", srv.port);
	fetch(&opt, &res);
	ck_assert_int_eq(res.err, -EPROTO);
	ck_assert_str_ne(res.error, "");
	ck_assert_int_eq(res.status, 0);
}
END_TEST

START_TEST(test_timeout)
{
	char url[256];
	struct http_options opt = {.url = url, .timeout_ms = 200};
	struct result res = {0};

	url_for(url, sizeof(url), "127.0.0.1", "/slow?ms=20000");
	fetch(&opt, &res);
	ck_assert_int_eq(res.err, -ETIMEDOUT);
	ck_assert_int_eq(res.status, 0);
}
END_TEST

START_TEST(test_connection_refused)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);
	char url[256];
	struct http_options opt = {.url = url};
	struct result res = {0};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", ntohs(sin.sin_port));
	fetch(&opt, &res);
	ck_assert_int_eq(res.err, -ECONNREFUSED);
	ck_assert_int_eq(res.status, 0);
}
END_TEST

START_TEST(test_body_cap)
{
	char url[256];
	struct http_options opt = {.url = url, .max_body = 1000};
	struct result res = {0};

	url_for(url, sizeof(url), "127.0.0.1", "/large?n=100000");
	fetch(&opt, &res);
	ck_assert_int_eq(res.err, -EFBIG);
	ck_assert_int_le(res.body_len, 1000);
	ck_assert_ptr_nonnull(strstr(res.error, "1000"));
}
END_TEST

START_TEST(test_body_at_cap_and_large)
{
	char url[256];
	struct http_options opt = {.url = url, .max_body = 1000};
	struct result res = {0}, res2 = {0};

	url_for(url, sizeof(url), "127.0.0.1", "/large?n=1000");
	fetch(&opt, &res);
	ck_assert_int_eq(res.err, 0);
	ck_assert_uint_eq(res.body_len, 1000);
	ck_assert(res.pattern_ok);

	ck_assert_int_eq(uv_loop_init(&loop), 0);
	opt.max_body = 0;
	url_for(url, sizeof(url), "127.0.0.1", "/large?n=3000000");
	fetch(&opt, &res2);
	ck_assert_int_eq(res2.err, 0);
	ck_assert_uint_eq(res2.body_len, 3000000);
	ck_assert(res2.pattern_ok);
}
END_TEST

#define N_CONCURRENT 50

START_TEST(test_concurrent)
{
	static struct result res[N_CONCURRENT];
	struct http_client *c;
	char url[256], xt[N_CONCURRENT][16], want[64];
	struct spec_header hdr[N_CONCURRENT];
	int done = 0;

	memset(res, 0, sizeof(res));
	url_for(url, sizeof(url), "127.0.0.1", "/echo?ms=50");
	ck_assert_int_eq(http_client_new(&loop, &c), 0);
	for (int i = 0; i < N_CONCURRENT; i++) {
		struct http_options opt = {.url = url, .headers = &hdr[i], .n_headers = 1};

		snprintf(xt[i], sizeof(xt[i]), "r%d", i);
		hdr[i] = (struct spec_header){.name = "X-Test", .value = xt[i]};
		ck_assert_int_eq(http_request_start(c, &opt, on_done, &res[i], NULL), 0);
	}
	for (;;) {
		int alive = uv_run(&loop, UV_RUN_ONCE);

		done = 0;
		for (int i = 0; i < N_CONCURRENT; i++)
			done += res[i].calls;
		if (done == N_CONCURRENT)
			break;
		ck_assert_msg(alive, "loop ran dry at %d of %d", done, N_CONCURRENT);
	}
	for (int i = 0; i < N_CONCURRENT; i++) {
		snprintf(want, sizeof(want), "x-test=r%d\n", i);
		ck_assert_int_eq(res[i].calls, 1);
		ck_assert_int_eq(res[i].err, 0);
		ck_assert_int_eq(res[i].status, 200);
		ck_assert_ptr_nonnull(strstr(res[i].body, want));
	}
	finish(c);
}
END_TEST

static void on_tick(uv_timer_t *t)
{
}

static void on_tick_closed(uv_handle_t *h)
{
	*(bool *)h->data = true;
}

/* Turns the loop until the server has seen n requests (so they are in
 * flight, held in their handlers); a 5 ms tick keeps the loop turning. */
static void wait_server_requests(int n)
{
	uv_timer_t tick;
	bool closed = false;

	ck_assert_int_eq(uv_timer_init(&loop, &tick), 0);
	tick.data = &closed;
	ck_assert_int_eq(uv_timer_start(&tick, on_tick, 5, 5), 0);
	while (atomic_load(&srv.requests) < n)
		uv_run(&loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&tick, on_tick_closed);
	while (!closed)
		uv_run(&loop, UV_RUN_ONCE);
}

/* Requests 1-3 wait at the server's gate; request 0's callback cancels
 * request 2 and opens the gate, so request 2's answer would come with
 * those of 1 and 3. */
struct cancel_ctx {
	struct result res[4];
	struct http_request *req[4];
	int done;
};

static struct cancel_ctx cx;

static void on_cancel_done(void *userdata, const struct http_response *r)
{
	struct result *res = userdata;

	record(res, r);
	cx.done++;
	if (res == &cx.res[0]) {
		http_request_cancel(cx.req[2]);
		/* cancelling from inside a callback twice, or self, is harmless */
		http_request_cancel(cx.req[0]);
		atomic_store(&srv.gate_open, true);
	}
}

START_TEST(test_cancel)
{
	struct http_client *c;
	char gate[256], ok[256];
	struct http_options opt = {.url = gate};

	memset(&cx, 0, sizeof(cx));
	url_for(gate, sizeof(gate), "127.0.0.1", "/gate");
	url_for(ok, sizeof(ok), "127.0.0.1", "/ok");
	ck_assert_int_eq(http_client_new(&loop, &c), 0);
	for (int i = 1; i < 4; i++)
		ck_assert_int_eq(
		        http_request_start(c, &opt, on_cancel_done, &cx.res[i], &cx.req[i]), 0);
	wait_server_requests(3);
	opt.url = ok;
	ck_assert_int_eq(http_request_start(c, &opt, on_cancel_done, &cx.res[0], &cx.req[0]), 0);
	run_until(&cx.done, 3);
	ck_assert_int_eq(cx.res[0].status, 200);
	ck_assert_int_eq(cx.res[1].status, 200);
	ck_assert_str_eq(cx.res[1].body, "gate");
	ck_assert_int_eq(cx.res[3].status, 200);
	ck_assert_int_eq(cx.res[2].calls, 0);
	finish(c);
	ck_assert_int_eq(cx.res[2].calls, 0);
	ck_assert_int_eq(cx.done, 3);
}
END_TEST

START_TEST(test_cancel_before_run)
{
	struct http_client *c;
	struct http_request *req;
	char url[256];
	struct http_options opt = {.url = url};
	struct result a = {0}, b = {0};

	url_for(url, sizeof(url), "127.0.0.1", "/ok");
	ck_assert_int_eq(http_client_new(&loop, &c), 0);
	ck_assert_int_eq(http_request_start(c, &opt, on_done, &a, &req), 0);
	ck_assert_int_eq(http_request_start(c, &opt, on_done, &b, NULL), 0);
	http_request_cancel(req);
	run_until(&b.calls, 1);
	ck_assert_int_eq(b.status, 200);
	finish(c);
	ck_assert_int_eq(a.calls, 0);
}
END_TEST

/* ---- policy ---- */

#define POLICY_LOG 4

struct policy_log {
	int calls;
	char hosts[POLICY_LOG][64];
	char addrs[POLICY_LOG][INET_ADDRSTRLEN];
};

static int refuse_127_0_0_2(void *userdata, const struct sockaddr *sa, const char *host)
{
	struct policy_log *pl = userdata;
	const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

	if (sa->sa_family != AF_INET)
		return -EPERM;
	if (pl->calls < POLICY_LOG) {
		copy_str(pl->hosts[pl->calls], sizeof(pl->hosts[0]), host);
		inet_ntop(AF_INET, &in->sin_addr, pl->addrs[pl->calls], sizeof(pl->addrs[0]));
	}
	pl->calls++;
	return in->sin_addr.s_addr == htonl(0x7f000002) ? -EPERM : 0;
}

static const struct policy_case {
	const char *host;
	const char *redirect_host; /* NULL: no redirect, "": to /ok on the same server */
	int want_err;
	int want_requests; /* seen by the server */
	const char *hosts[2];
} policy_cases[] = {
        {"127.0.0.2", NULL, -EPERM, 0, {"127.0.0.2", NULL}},
        {"127.0.0.1", "127.0.0.2", -EPERM, 1, {"127.0.0.1", "127.0.0.2"}},
        {"127.0.0.1", "", 0, 2, {"127.0.0.1", NULL}},
};

static void policy_url(const struct policy_case *tc, char *url, size_t len)
{
	if (!tc->redirect_host)
		url_for(url, len, tc->host, "/ok");
	else if (!tc->redirect_host[0])
		url_for(url, len, tc->host, "/redirect?to=/ok");
	else
		snprintf(url, len, "http://%s:%u/redirect?to=http://%s:%u/ok", tc->host, srv.port,
		         tc->redirect_host, srv.port);
}

START_TEST(test_policy)
{
	const struct policy_case *tc = &policy_cases[_i];
	struct policy_log pl = {0};
	struct http_client *c;
	char url[256], want[128];
	struct http_options opt = {.url = url, .follow_redirects = true};
	struct result res = {0};
	int n_hosts = tc->hosts[1] ? 2 : 1;

	policy_url(tc, url, sizeof(url));
	ck_assert_int_eq(http_client_new(&loop, &c), 0);
	http_client_set_policy(c, refuse_127_0_0_2, &pl);
	ck_assert_int_eq(http_request_start(c, &opt, on_done, &res, NULL), 0);
	run_until(&res.calls, 1);
	finish(c);
	ck_assert_int_eq(res.err, tc->want_err);
	ck_assert_int_eq(atomic_load(&srv.requests), tc->want_requests);
	ck_assert_int_eq(pl.calls, n_hosts);
	for (int i = 0; i < n_hosts; i++) {
		ck_assert_str_eq(pl.hosts[i], tc->hosts[i]);
		ck_assert_str_eq(pl.addrs[i], tc->hosts[i]);
	}
	if (tc->want_err) {
		snprintf(want, sizeof(want), "connection to 127.0.0.2:%u refused by policy",
		         srv.port);
		ck_assert_str_eq(res.error, want);
	} else {
		ck_assert_str_eq(res.body, "hello");
	}
}
END_TEST

/* ---- lifetime and re-entrancy ---- */

START_TEST(test_free_in_flight)
{
	struct http_client *c;
	char url[256];
	struct http_options opt = {.url = url};
	struct result res[3] = {0};

	url_for(url, sizeof(url), "127.0.0.1", "/gate");
	ck_assert_int_eq(http_client_new(&loop, &c), 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(http_request_start(c, &opt, on_done, &res[i], NULL), 0);
	wait_server_requests(3);
	finish(c);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(res[i].calls, 0);
}
END_TEST

START_TEST(test_free_before_run)
{
	struct http_client *c;
	char url[256];
	struct http_options opt = {.url = url};
	struct result res[3] = {0};

	url_for(url, sizeof(url), "127.0.0.1", "/ok");
	ck_assert_int_eq(http_client_new(&loop, &c), 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(http_request_start(c, &opt, on_done, &res[i], NULL), 0);
	finish(c);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(res[i].calls, 0);
	http_client_free(NULL);
}
END_TEST

struct free_ctx {
	struct http_client *c;
	struct result res;
};

static void on_done_free_client(void *userdata, const struct http_response *r)
{
	struct free_ctx *fx = userdata;

	record(&fx->res, r);
	http_client_free(fx->c);
}

START_TEST(test_free_from_callback)
{
	struct free_ctx fx = {0};
	char gate[256], ok[256];
	struct http_options opt = {.url = gate};
	struct result res[2] = {0};

	url_for(gate, sizeof(gate), "127.0.0.1", "/gate");
	url_for(ok, sizeof(ok), "127.0.0.1", "/ok");
	ck_assert_int_eq(http_client_new(&loop, &fx.c), 0);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(http_request_start(fx.c, &opt, on_done, &res[i], NULL), 0);
	wait_server_requests(2);
	opt.url = ok;
	ck_assert_int_eq(http_request_start(fx.c, &opt, on_done_free_client, &fx, NULL), 0);
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	ck_assert_int_eq(fx.res.calls, 1);
	ck_assert_int_eq(fx.res.status, 200);
	ck_assert_int_eq(res[0].calls, 0);
	ck_assert_int_eq(res[1].calls, 0);
}
END_TEST

/* Each callback starts the next request on the same client: the
 * connection is reused, and curl's 0 ms timeouts must fire at once for
 * this to go at full speed; the count is what is asserted. */
#define N_SEQ 300

struct seq_ctx {
	struct http_client *c;
	struct http_options opt;
	int done;
	int ok;
};

static void on_seq_done(void *userdata, const struct http_response *r)
{
	struct seq_ctx *s = userdata;

	s->done++;
	if (r->err == 0 && r->status == 200 && strcmp(r->body, "hello") == 0)
		s->ok++;
	if (s->done < N_SEQ)
		ck_assert_int_eq(http_request_start(s->c, &s->opt, on_seq_done, s, NULL), 0);
}

START_TEST(test_sequential_one_connection)
{
	char url[256];
	struct seq_ctx s = {.opt = {.url = url}};

	url_for(url, sizeof(url), "127.0.0.1", "/ok");
	ck_assert_int_eq(http_client_new(&loop, &s.c), 0);
	ck_assert_int_eq(http_request_start(s.c, &s.opt, on_seq_done, &s, NULL), 0);
	run_until(&s.done, N_SEQ);
	finish(s.c);
	ck_assert_int_eq(s.done, N_SEQ);
	ck_assert_int_eq(s.ok, N_SEQ);
	ck_assert_int_eq(atomic_load(&srv.requests), N_SEQ);
	ck_assert_int_eq(atomic_load(&srv.connections), 1);
}
END_TEST

/* ---- argument checks ---- */

static const struct spec_header crlf_header = {.name = "X-A", .value = "b\r\nX-Evil: 1"};
static const struct spec_header bad_name = {.name = "X A", .value = "b"};
static const struct spec_header many_headers[65];

static const struct invalid_case {
	struct http_options opt;
	int want;
} invalid_cases[] = {
        {{.url = NULL}, -EINVAL},
        {{.url = "http://127.0.0.1/", .method = "GE T"}, -EINVAL},
        {{.url = "http://127.0.0.1/", .method = ""}, -EINVAL},
        {{.url = "http://127.0.0.1/", .method = "HEAD", .body = "x", .body_len = 1}, -EINVAL},
        {{.url = "http://127.0.0.1/", .timeout_ms = -1}, -EINVAL},
        {{.url = "http://127.0.0.1/", .headers = &crlf_header, .n_headers = 1}, -EINVAL},
        {{.url = "http://127.0.0.1/", .headers = &bad_name, .n_headers = 1}, -EINVAL},
        {{.url = "http://127.0.0.1/", .headers = many_headers, .n_headers = 65}, -EINVAL},
        {{.url = "http://127.0.0.1/", .body = "x", .body_len = HTTP_MAX_BODY + 1}, -EFBIG},
};

START_TEST(test_invalid)
{
	struct http_client *c;
	struct http_request *req = (struct http_request *)&req;
	struct result res = {0};

	ck_assert_int_eq(http_client_new(&loop, &c), 0);
	ck_assert_int_eq(http_request_start(c, &invalid_cases[_i].opt, on_done, &res, &req),
	                 invalid_cases[_i].want);
	ck_assert_ptr_eq(req, (struct http_request *)&req);
	finish(c);
	ck_assert_int_eq(res.calls, 0);
}
END_TEST

static Suite *http_suite(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("client");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_get_ok);
	tcase_add_loop_test(tc, test_echo, 0, (int)RD_ARRAY_SIZE(echo_cases));
	tcase_add_test(tc, test_head);
	tcase_add_loop_test(tc, test_status, 0, (int)RD_ARRAY_SIZE(status_cases));
	tcase_add_test(tc, test_retry_after);
	tcase_add_test(tc, test_redirect);
	tcase_add_loop_test(tc, test_protocols, 0, (int)RD_ARRAY_SIZE(proto_cases));
	tcase_add_test(tc, test_tls_to_plain_server);
	tcase_add_test(tc, test_timeout);
	tcase_add_test(tc, test_connection_refused);
	tcase_add_test(tc, test_body_cap);
	tcase_add_test(tc, test_body_at_cap_and_large);
	tcase_add_test(tc, test_concurrent);
	tcase_add_test(tc, test_cancel);
	tcase_add_test(tc, test_cancel_before_run);
	tcase_add_loop_test(tc, test_policy, 0, (int)RD_ARRAY_SIZE(policy_cases));
	tcase_add_test(tc, test_free_in_flight);
	tcase_add_test(tc, test_free_before_run);
	tcase_add_test(tc, test_free_from_callback);
	tcase_add_test(tc, test_sequential_one_connection);
	tcase_add_loop_test(tc, test_invalid, 0, (int)RD_ARRAY_SIZE(invalid_cases));
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	static const char *const proxies[] = {"http_proxy", "https_proxy", "HTTPS_PROXY",
	                                      "all_proxy",  "ALL_PROXY",   "no_proxy"};
	SRunner *sr;
	int failed;

	/* Loopback must be reached directly whatever the environment says. */
	for (size_t i = 0; i < RD_ARRAY_SIZE(proxies); i++)
		unsetenv(proxies[i]);
	sr = srunner_create(http_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
