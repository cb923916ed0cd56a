/* test-loadgen: the load engine's pure parts (URLs, request bytes,
 * schedule arithmetic, response parsing fed as bytes) and whole runs
 * against a tiny HTTP server on the test's private loop: counts, error
 * classes, reconnects, histogram totals, cancel and a clean loop close.
 * No wall-clock thresholds: only counts and exact values are asserted.
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "lib/loadgen/loadgen.h"

/* ---- URLs ---- */

static const struct {
	const char *url;
	int rc;
	bool tls;
	const char *host, *port, *path, *hostport;
} url_cases[] = {
        {"http://127.0.0.1:8080/v1/predict", 0, false, "127.0.0.1", "8080", "/v1/predict",
         "127.0.0.1:8080"},
        {"http://example.com", 0, false, "example.com", "80", "/", "example.com"},
        {"https://h/a?b=c#frag", 0, true, "h", "443", "/a?b=c", "h"},
        {"http://h?x=1", 0, false, "h", "80", "/?x=1", "h"},
        {"http://[::1]:9/p", 0, false, "::1", "9", "/p", "[::1]:9"},
        {"HTTP://H:1/", 0, false, "H", "1", "/", "H:1"},
        {"ftp://h/", -EINVAL},
        {"http://", -EINVAL},
        {"http://h:0/", -EINVAL},
        {"http://h:65536/", -EINVAL},
        {"http://h:12a/", -EINVAL},
        {"http://user@h/", -EINVAL},
        {"http://[::1/", -EINVAL},
        {"http://h/a b", -EINVAL},
};

START_TEST(test_url_parse)
{
	struct loadgen_url u;
	int rc = loadgen_url_parse(url_cases[_i].url, &u);

	ck_assert_int_eq(rc, url_cases[_i].rc);
	if (rc == 0) {
		ck_assert(u.tls == url_cases[_i].tls);
		ck_assert_str_eq(u.host, url_cases[_i].host);
		ck_assert_str_eq(u.port, url_cases[_i].port);
		ck_assert_str_eq(u.path, url_cases[_i].path);
		ck_assert_str_eq(u.hostport, url_cases[_i].hostport);
	}
}
END_TEST

/* ---- request bytes ---- */

static char *build(const char *method, struct spec_header *h, size_t n, const char *body, int *rc)
{
	struct loadgen_url u;
	char *buf = NULL, *s;
	size_t len = 0;

	ck_assert_int_eq(loadgen_url_parse("http://127.0.0.1:81/x?y", &u), 0);
	*rc = loadgen_build_request(&u, method, h, n, body, body ? strlen(body) : 0, &buf, &len);
	if (*rc < 0)
		return NULL;
	/* The request is len bytes with no NUL after them (the buffer may
	 * be exactly that size): copy, then terminate. */
	s = malloc(len + 1);
	ck_assert_ptr_nonnull(s);
	memcpy(s, buf, len);
	s[len] = '\0';
	free(buf);
	return s;
}

START_TEST(test_build_request)
{
	struct spec_header h[] = {{"Content-Type", "application/json"}, {"X-A", "b"}};
	struct spec_header host[] = {{"host", "other"}};
	struct spec_header bad[] = {{"X", "a\r\nInjected: 1"}};
	int rc;
	char *s;

	s = build(NULL, NULL, 0, NULL, &rc);
	ck_assert_str_eq(s, "GET /x?y HTTP/1.1\r\nHost: 127.0.0.1:81\r\n\r\n");
	free(s);
	s = build("POST", h, 2, "{\"a\":1}", &rc);
	ck_assert_str_eq(s, "POST /x?y HTTP/1.1\r\nHost: 127.0.0.1:81\r\nContent-Type: "
	                    "application/json\r\nX-A: b\r\nContent-Length: 7\r\n\r\n{\"a\":1}");
	free(s);
	s = build("POST", NULL, 0, NULL, &rc);
	ck_assert_str_eq(s,
	                 "POST /x?y HTTP/1.1\r\nHost: 127.0.0.1:81\r\nContent-Length: 0\r\n\r\n");
	free(s);
	s = build("GET", host, 1, NULL, &rc);
	ck_assert_str_eq(s, "GET /x?y HTTP/1.1\r\nhost: other\r\n\r\n");
	free(s);
	ck_assert_ptr_null(build("GET", bad, 1, NULL, &rc));
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_ptr_null(build("G T", NULL, 0, NULL, &rc));
	ck_assert_int_eq(rc, -EINVAL);
}
END_TEST

START_TEST(test_build_request_cap)
{
	struct loadgen_url u;
	size_t n = LOADGEN_MAX_REQUEST;
	char *body = malloc(n), *buf = NULL;
	size_t len;

	memset(body, 'a', n);
	ck_assert_int_eq(loadgen_url_parse("http://h/", &u), 0);
	ck_assert_int_eq(loadgen_build_request(&u, "POST", NULL, 0, body, n, &buf, &len), -E2BIG);
	ck_assert_int_eq(loadgen_build_request(&u, "POST", NULL, 0, body, n - 100, &buf, &len), 0);
	ck_assert_uint_gt(len, n - 100);
	free(buf);
	free(body);
}
END_TEST

/* ---- schedule ---- */

static const struct {
	uint64_t idx;
	double rate;
	uint64_t ns;
} sched_cases[] = {
        {0, 200, 0},
        {1, 200, 5000000},
        {1, 3, 333333333},
        {2, 3, 666666667},
        {3, 3, 1000000000},
        {7, 0.5, 14000000000},
        {1000000000000ULL, 1000, 1000000000ULL * 1000000000ULL},
        {1000000000001ULL, 1000, 1000000000ULL * 1000000000ULL + 1000000},
        {5001, 5000, 1000200000},
};

START_TEST(test_intended)
{
	ck_assert_uint_eq(loadgen_intended_ns(sched_cases[_i].idx, sched_cases[_i].rate),
	                  sched_cases[_i].ns);
}
END_TEST

START_TEST(test_thread_split)
{
	/* Every index below total is sent by exactly one thread, once. */
	for (int n = 1; n <= 5; n++) {
		for (uint64_t total = 0; total < 23; total++) {
			int seen[23] = {0};
			uint64_t sum = 0;

			for (int j = 0; j < n; j++) {
				uint64_t share = loadgen_thread_share(total, j, n);

				sum += share;
				for (uint64_t k = 0; k < share; k++) {
					uint64_t idx = loadgen_thread_index(k, j, n);

					ck_assert_uint_lt(idx, total);
					seen[idx]++;
				}
			}
			ck_assert_uint_eq(sum, total);
			for (uint64_t i = 0; i < total; i++)
				ck_assert_int_eq(seen[i], 1);
		}
	}
}
END_TEST

/* ---- responses fed as bytes ---- */

static const struct {
	const char *bytes;
	bool head;
	int n; /* complete responses, or -EPROTO */
	int s0, s1;
} parse_cases[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false, 1, 200, 0},
        {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 503 No\r\nContent-Length: "
         "0\r\n\r\n",
         false, 2, 200, 503},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false, 1, 200,
         0},
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok", false, 0, 200, 0}, /* incomplete */
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true, 1, 200, 0},    /* HEAD: no body */
        {"HTTP/1.1 204 No Content\r\n\r\n", false, 1, 204, 0},
        {"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", false, 1, 404, 0},
        {"SMTP ready\r\n", false, -EPROTO, 0, 0},
        {"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false, -EPROTO, 0, 0},
        {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nok", false, -EPROTO, 0,
         0},
};

START_TEST(test_parse)
{
	int st[2] = {0, 0};
	int n = loadgen_parse_responses(parse_cases[_i].bytes, strlen(parse_cases[_i].bytes),
	                                parse_cases[_i].head, st, 2);

	ck_assert_int_eq(n, parse_cases[_i].n);
	if (n >= 0 && parse_cases[_i].s0)
		ck_assert_int_eq(st[0], parse_cases[_i].s0);
	if (n == 2)
		ck_assert_int_eq(st[1], parse_cases[_i].s1);
}
END_TEST

/* ---- whole runs against a server on the test's loop ---- */

struct server {
	uv_tcp_t listener;
	int port;
	const char *response;
	bool close_after; /* close the connection after each answer */
	int clients;
	uint64_t answered;
};

struct client {
	struct server *s;
	uv_tcp_t tcp;
	int match; /* bytes of "\r\n\r\n" matched so far */
	char buf[4096];
};

static void on_client_closed(uv_handle_t *h)
{
	struct client *c = h->data;

	c->s->clients--;
	free(c);
}

static void client_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
	struct client *c = h->data;

	*b = uv_buf_init(c->buf, sizeof(c->buf));
}

static void answer(struct client *c)
{
	uv_buf_t b = uv_buf_init((char *)c->s->response, (unsigned)strlen(c->s->response));

	/* Loopback takes a few dozen bytes at once. */
	ck_assert_int_eq(uv_try_write((uv_stream_t *)&c->tcp, &b, 1), (int)b.len);
	c->s->answered++;
}

static void client_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct client *c = st->data;
	static const char end[] = "\r\n\r\n";

	if (n < 0) {
		if (!uv_is_closing((uv_handle_t *)st))
			uv_close((uv_handle_t *)st, on_client_closed);
		return;
	}
	for (ssize_t i = 0; i < n; i++) {
		c->match = b->base[i] == end[c->match] ? c->match + 1 : (b->base[i] == '\r');
		if (c->match == 4) {
			c->match = 0;
			answer(c);
			if (c->s->close_after) {
				uv_close((uv_handle_t *)st, on_client_closed);
				return;
			}
		}
	}
}

static void on_conn(uv_stream_t *l, int status)
{
	struct server *s = l->data;
	struct client *c = calloc(1, sizeof(*c));

	ck_assert_ptr_nonnull(c);
	c->s = s;
	uv_tcp_init(l->loop, &c->tcp);
	c->tcp.data = c;
	s->clients++;
	ck_assert_int_eq(uv_accept(l, (uv_stream_t *)&c->tcp), 0);
	uv_read_start((uv_stream_t *)&c->tcp, client_alloc, client_read);
}

static void server_start(uv_loop_t *loop, struct server *s)
{
	struct sockaddr_in a;
	struct sockaddr_storage got;
	int len = sizeof(got);

	uv_ip4_addr("127.0.0.1", 0, &a);
	ck_assert_int_eq(uv_tcp_init(loop, &s->listener), 0);
	s->listener.data = s;
	ck_assert_int_eq(uv_tcp_bind(&s->listener, (struct sockaddr *)&a, 0), 0);
	ck_assert_int_eq(uv_listen((uv_stream_t *)&s->listener, 128, on_conn), 0);
	uv_tcp_getsockname(&s->listener, (struct sockaddr *)&got, &len);
	s->port = ntohs(((struct sockaddr_in *)&got)->sin_port);
}

struct run {
	uv_loop_t loop;
	struct server srv;
	struct loadgen *lg;
	bool done;
	uv_timer_t cancel_timer;
};

static void on_done(struct loadgen *lg, void *userdata)
{
	struct run *r = userdata;

	r->done = true;
	uv_close((uv_handle_t *)&r->srv.listener, NULL);
}

static void run_engine(struct run *r, struct loadgen_config *cfg, bool with_server)
{
	char url[64], err[256];

	ck_assert_int_eq(uv_loop_init(&r->loop), 0);
	if (with_server) {
		server_start(&r->loop, &r->srv);
	} else {
		/* A port nobody listens on: bind one, read its number, close it. */
		server_start(&r->loop, &r->srv);
		uv_close((uv_handle_t *)&r->srv.listener, NULL);
		uv_run(&r->loop, UV_RUN_NOWAIT);
		uv_tcp_init(&r->loop, &r->srv.listener);
	}
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", r->srv.port);
	cfg->url = url;
	ck_assert_int_eq(loadgen_new(cfg, &r->loop, on_done, r, &r->lg, err, sizeof(err)), 0);
	ck_assert_int_eq(loadgen_start(r->lg), 0);
}

static void run_finish(struct run *r)
{
	ck_assert_int_eq(uv_run(&r->loop, UV_RUN_DEFAULT), 0);
	ck_assert(r->done);
	ck_assert(loadgen_result(r->lg)->cancelled);
	ck_assert(loadgen_result(r->lg)->clean);
	ck_assert_int_eq(r->srv.clients, 0);
	loadgen_free(r->lg);
	ck_assert_int_eq(uv_loop_close(&r->loop), 0);
}

static const char ok_response[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
static const char close_response[] =
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok";

static const struct {
	const char *name;
	enum load_mode mode;
	int connections, threads;
	const char *response;
	bool close_after;
	int64_t requests;
	int err_class; /* -1: none */
} run_cases[] = {
        {"closed", LOAD_MODE_CLOSED, 4, 1, ok_response, false, 500, -1},
        {"closed-2-threads", LOAD_MODE_CLOSED, 5, 2, ok_response, false, 501, -1},
        {"rate", LOAD_MODE_RATE, 4, 2, ok_response, false, 300, -1},
        {"reconnect", LOAD_MODE_CLOSED, 2, 1, close_response, true, 100, -1},
        {"5xx", LOAD_MODE_CLOSED, 2, 1, "HTTP/1.1 503 No\r\nContent-Length: 0\r\n\r\n", false, 50,
         LOADGEN_ERR_5XX},
        {"4xx", LOAD_MODE_CLOSED, 2, 1, "HTTP/1.1 404 No\r\nContent-Length: 0\r\n\r\n", false, 50,
         LOADGEN_ERR_4XX},
        {"protocol", LOAD_MODE_CLOSED, 2, 1, "HTTX/9 what\r\n\r\n", false, 20,
         LOADGEN_ERR_PROTOCOL},
};

START_TEST(test_run)
{
	struct run r = {0};
	struct loadgen_config cfg = {
	        .mode = run_cases[_i].mode,
	        .rate = 2000,
	        .connections = run_cases[_i].connections,
	        .threads = run_cases[_i].threads,
	        .requests = run_cases[_i].requests,
	        .timeout_ms = 5000,
	};
	const struct loadgen_result *res;
	int e = run_cases[_i].err_class;
	uint64_t n = (uint64_t)run_cases[_i].requests;

	r.srv.response = run_cases[_i].response;
	r.srv.close_after = run_cases[_i].close_after;
	run_engine(&r, &cfg, true);
	ck_assert_int_eq(uv_run(&r.loop, UV_RUN_DEFAULT), 0);
	res = loadgen_result(r.lg);
	ck_assert(!res->cancelled);
	ck_assert(res->clean);
	if (e == LOADGEN_ERR_PROTOCOL) {
		/* A garbled answer kills the connection; each one is an error. */
		ck_assert_uint_eq(res->errors, res->requests);
		ck_assert_uint_eq(res->errors_by[e], res->requests);
		ck_assert_uint_ge(res->requests, n);
	} else {
		ck_assert_uint_eq(res->requests, n);
		ck_assert_uint_eq(res->errors, e < 0 ? 0 : n);
		if (e >= 0)
			ck_assert_uint_eq(res->errors_by[e], n);
	}
	ck_assert_uint_eq(hist_count(res->latency) + hist_count(res->failed), res->requests);
	if (res->latency_uncorrected)
		ck_assert_uint_eq(hist_count(res->latency_uncorrected), hist_count(res->latency));
	ck_assert(cfg.mode == LOAD_MODE_CLOSED || res->unsent == 0);
	{
		uint64_t tl = 0;

		for (size_t i = 0; i < res->n_seconds; i++)
			tl += res->timeline[i].requests;
		ck_assert_uint_eq(tl, res->requests);
	}
	if (e != LOADGEN_ERR_PROTOCOL)
		ck_assert_uint_eq(r.srv.answered, n);
	r.done = true;
	ck_assert_int_eq(r.srv.clients, 0);
	loadgen_free(r.lg);
	ck_assert_int_eq(uv_loop_close(&r.loop), 0);
}
END_TEST

START_TEST(test_metrics_json)
{
	struct run r = {0};
	struct loadgen_config cfg = {.mode = LOAD_MODE_RATE,
	                             .rate = 1000,
	                             .connections = 2,
	                             .threads = 1,
	                             .requests = 100};
	json_t *m, *d;
	struct hist *h;
	const char *b64;

	r.srv.response = ok_response;
	run_engine(&r, &cfg, true);
	ck_assert_int_eq(uv_run(&r.loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(loadgen_result_metrics(loadgen_result(r.lg), &m), 0);
	ck_assert(json_number_value(json_object_get(m, "requests")) == 100);
	ck_assert(json_number_value(json_object_get(m, "error_rate")) == 0);
	ck_assert(json_is_number(json_object_get(m, "p99_ms_uncorrected")));
	ck_assert(json_number_value(json_object_get(m, "unsent")) == 0);
	ck_assert_int_eq(loadgen_result_details(loadgen_result(r.lg), &d), 0);
	b64 = json_string_value(json_object_get(json_object_get(d, "histograms"), "latency"));
	ck_assert_ptr_nonnull(b64);
	{
		/* The stored histogram decodes to the same counts. */
		size_t len = strlen(b64);
		uint8_t *raw = malloc(len);
		int n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)len);

		ck_assert_int_gt(n, 0);
		while (n > 0 && len > 0 && b64[len - 1] == '=') {
			n--;
			len--;
		}
		ck_assert_int_eq(hist_deserialize(raw, (size_t)n, &h), 0);
		ck_assert_uint_eq(hist_count(h), 100);
		hist_free(h);
		free(raw);
	}
	json_decref(m);
	json_decref(d);
	ck_assert_int_eq(r.srv.clients, 0);
	loadgen_free(r.lg);
	ck_assert_int_eq(uv_loop_close(&r.loop), 0);
}
END_TEST

static void on_cancel_timer(uv_timer_t *t)
{
	struct run *r = t->data;

	loadgen_cancel(r->lg);
	loadgen_cancel(r->lg); /* twice is fine */
	uv_close((uv_handle_t *)t, NULL);
}

START_TEST(test_cancel)
{
	struct run r = {0};
	struct loadgen_config cfg = {.mode = _i ? LOAD_MODE_RATE : LOAD_MODE_CLOSED,
	                             .rate = 500,
	                             .connections = 4,
	                             .threads = 2,
	                             .duration_ms = 3600 * 1000};

	r.srv.response = ok_response;
	run_engine(&r, &cfg, true);
	uv_timer_init(&r.loop, &r.cancel_timer);
	r.cancel_timer.data = &r;
	uv_timer_start(&r.cancel_timer, on_cancel_timer, 100, 0);
	run_finish(&r);
}
END_TEST

START_TEST(test_cancel_result)
{
	/* Cancelled at once: the result says so and nothing leaks. */
	struct run r = {0};
	struct loadgen_config cfg = {.connections = 3, .threads = 3, .duration_ms = 3600 * 1000};

	r.srv.response = ok_response;
	run_engine(&r, &cfg, true);
	loadgen_cancel(r.lg);
	ck_assert_int_eq(uv_run(&r.loop, UV_RUN_DEFAULT), 0);
	ck_assert(loadgen_result(r.lg)->cancelled);
	ck_assert(loadgen_result(r.lg)->clean);
	loadgen_free(r.lg);
	ck_assert_int_eq(uv_loop_close(&r.loop), 0);
}
END_TEST

START_TEST(test_connect_refused)
{
	struct run r = {0};
	struct loadgen_config cfg = {.connections = 2, .threads = 1, .duration_ms = 300};
	const struct loadgen_result *res;

	run_engine(&r, &cfg, false);
	ck_assert_int_eq(uv_run(&r.loop, UV_RUN_DEFAULT), 0);
	res = loadgen_result(r.lg);
	ck_assert_uint_gt(res->errors_by[LOADGEN_ERR_CONNECT], 0);
	ck_assert_uint_eq(res->errors, res->errors_by[LOADGEN_ERR_CONNECT]);
	ck_assert_uint_eq(hist_count(res->latency), 0);
	loadgen_free(r.lg);
	ck_assert_int_eq(uv_loop_close(&r.loop), 0);
}
END_TEST

static const struct {
	enum load_mode mode;
	int64_t requests, duration_ms;
} refused_cases[] = {
        {LOAD_MODE_CLOSED, 6, 0},
        {LOAD_MODE_RATE, 6, 0},
        {LOAD_MODE_RATE, 0, 300}, /* no connection to send on: ends at its end */
};

START_TEST(test_connect_refused_ends)
{
	/* A target that refuses every connection still ends the run, and the
	 * result says why. By `requests`, failed connects take the place of
	 * requests. */
	struct run r = {0};
	struct loadgen_config cfg = {.mode = refused_cases[_i].mode,
	                             .rate = 100,
	                             .connections = 2,
	                             .threads = 1,
	                             .requests = refused_cases[_i].requests,
	                             .duration_ms = refused_cases[_i].duration_ms,
	                             .timeout_ms = 3600 * 1000};
	const struct loadgen_result *res;

	run_engine(&r, &cfg, false);
	ck_assert_int_eq(uv_run(&r.loop, UV_RUN_DEFAULT), 0);
	res = loadgen_result(r.lg);
	ck_assert(!res->cancelled);
	ck_assert(res->clean);
	if (cfg.requests > 0)
		ck_assert_uint_eq(res->requests, 6);
	else
		ck_assert(!res->rate_kept && res->unsent > 0);
	ck_assert_uint_gt(res->requests, 0);
	ck_assert_uint_eq(res->errors_by[LOADGEN_ERR_CONNECT], res->requests);
	ck_assert_str_eq(res->connect_error, "connection refused");
	loadgen_free(r.lg);
	ck_assert_int_eq(uv_loop_close(&r.loop), 0);
}
END_TEST

struct early {
	struct run r;
	struct loadgen_window w;
};

static void on_early_timer(uv_timer_t *t)
{
	struct early *e = t->data;

	ck_assert_int_eq(loadgen_window(e->r.lg, 2, 50, &e->w), 0);
	if (e->w.seconds == 0) {
		/* A slow start (sanitizers): no complete second yet, look again. */
		uv_timer_start(t, on_early_timer, 100, 0);
		return;
	}
	loadgen_end_early(e->r.lg);
	loadgen_end_early(e->r.lg); /* twice is fine */
	uv_close((uv_handle_t *)t, NULL);
}

START_TEST(test_end_early)
{
	/* An hour-long run ended early: complete, not cancelled, nothing
	 * counted as unsent, every request answered and measured; the window
	 * read before saw answers and no errors. */
	struct early e = {0};
	struct loadgen_config cfg = {.mode = _i ? LOAD_MODE_RATE : LOAD_MODE_CLOSED,
	                             .rate = 500,
	                             .connections = 4,
	                             .threads = 2,
	                             .duration_ms = 3600 * 1000};
	const struct loadgen_result *res;
	struct loadgen_window w;
	uint64_t tl = 0;

	e.r.srv.response = ok_response;
	run_engine(&e.r, &cfg, true);
	/* Before the clock: nothing complete yet; bad arguments refused. */
	ck_assert_int_eq(loadgen_window(e.r.lg, 5, NAN, &w), 0);
	ck_assert_int_eq(w.seconds, 0);
	ck_assert_int_eq(loadgen_window(e.r.lg, 0, NAN, &w), -EINVAL);
	ck_assert_int_eq(loadgen_window(e.r.lg, LOADGEN_WINDOW_MAX + 1, NAN, &w), -EINVAL);
	ck_assert_int_eq(loadgen_window(e.r.lg, 5, 101, &w), -EINVAL);
	uv_timer_init(&e.r.loop, &e.r.cancel_timer);
	e.r.cancel_timer.data = &e;
	uv_timer_start(&e.r.cancel_timer, on_early_timer, 1500, 0);
	ck_assert_int_eq(uv_run(&e.r.loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_ge(e.w.seconds, 1);
	ck_assert_uint_gt(e.w.requests, 0);
	ck_assert_uint_eq(e.w.errors, 0);
	ck_assert_uint_eq(e.w.errors_total, 0);
	ck_assert(!isnan(e.w.pct_ms) && e.w.pct_ms > 0);
	ck_assert(!isnan(e.w.pct_min_second_ms) && e.w.pct_min_second_ms <= e.w.pct_ms * 1.02);
	res = loadgen_result(e.r.lg);
	ck_assert(!res->cancelled);
	ck_assert(res->ended_early);
	ck_assert(res->clean);
	ck_assert_uint_eq(res->unsent, 0);
	ck_assert_uint_eq(res->errors, 0);
	ck_assert_uint_eq(res->requests, e.r.srv.answered);
	ck_assert(res->elapsed_s < 3600);
	for (size_t i = 0; i < res->n_seconds; i++)
		tl += res->timeline[i].requests;
	ck_assert_uint_eq(tl, res->requests);
	ck_assert_int_eq(e.r.srv.clients, 0);
	loadgen_free(e.r.lg);
	ck_assert_int_eq(uv_loop_close(&e.r.loop), 0);
}
END_TEST

static const struct {
	struct loadgen_config cfg;
} bad_configs[] = {
        {{.url = "http://h/", .connections = 0, .threads = 1, .duration_ms = 1}},
        {{.url = "http://h/", .connections = 2, .threads = 3, .duration_ms = 1}},
        {{.url = "http://h/", .connections = 1, .threads = 1}},
        {{.url = "http://h/", .connections = 1, .threads = 1, .duration_ms = 1, .requests = 1}},
        {{.url = "http://h/",
          .mode = LOAD_MODE_RATE,
          .connections = 1,
          .threads = 1,
          .duration_ms = 1}},
        {{.url = "gopher://h/", .connections = 1, .threads = 1, .duration_ms = 1}},
};

START_TEST(test_bad_config)
{
	uv_loop_t loop;
	struct loadgen *lg = NULL;
	char err[256] = "";

	ck_assert_int_eq(uv_loop_init(&loop), 0);
	ck_assert_int_eq(
	        loadgen_new(&bad_configs[_i].cfg, &loop, NULL, NULL, &lg, err, sizeof(err)),
	        -EINVAL);
	ck_assert_ptr_null(lg);
	ck_assert(err[0] != '\0');
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* ---- results of several engines merged (loadgen_merge.c) ---- */

static uint64_t xorshift(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* A result as a node's engine would have it: n answers of latencies
 * drawn around base_us (every shard differs), some failures, a timeline. */
static void shard_result(struct loadgen_result *r, struct hist *all, uint64_t seed, int n,
                         int64_t base_us, size_t seconds)
{
	uint64_t x = seed;

	*r = (struct loadgen_result){
	        .clean = true, .rate_kept = seed != 3, .elapsed_s = 1.5 * seed};
	ck_assert_int_eq(hist_new(HIST_HIGHEST_DEFAULT, HIST_DIGITS_DEFAULT, &r->latency), 0);
	ck_assert_int_eq(hist_new(HIST_HIGHEST_DEFAULT, HIST_DIGITS_DEFAULT, &r->failed), 0);
	for (int i = 0; i < n; i++) {
		int64_t v = base_us + (int64_t)(xorshift(&x) % (uint64_t)(base_us * 3));

		if (i % 97 == 0) { /* a tail */
			v *= 40;
		}
		ck_assert_int_eq(hist_record(r->latency, v), 0);
		ck_assert_int_eq(hist_record(all, v), 0);
	}
	ck_assert_int_eq(hist_record_n(r->failed, 5000, seed), 0);
	r->requests = (uint64_t)n + seed;
	r->errors = seed;
	r->errors_by[LOADGEN_ERR_5XX] = seed;
	r->schedule_lag_mean_ms = NAN;
	r->schedule_lag_max_ms = NAN;
	r->n_seconds = seconds;
	r->timeline = calloc(seconds, sizeof(*r->timeline));
	for (size_t i = 0; i < seconds; i++)
		r->timeline[i] =
		        (struct loadgen_second){10 * seed + i, i % 2, 1.0 * (double)seed, NAN};
}

START_TEST(test_merge_exact)
{
	static const double pcts[] = {0, 1, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99, 100};
	struct loadgen_result shards[3], merged = {0};
	struct hist *all;
	uint8_t *a = NULL, *b = NULL;
	size_t alen = 0, blen = 0;
	double naive_p99 = 0;

	ck_assert_int_eq(hist_new(HIST_HIGHEST_DEFAULT, HIST_DIGITS_DEFAULT, &all), 0);
	shard_result(&shards[0], all, 1, 5000, 800, 3);
	shard_result(&shards[1], all, 2, 3000, 20000, 5);
	shard_result(&shards[2], all, 3, 1234, 150, 4);
	for (int i = 0; i < 3; i++) {
		struct loadgen_result back;
		json_t *j = NULL;

		/* Every shard travels as JSON, as between nodes. */
		ck_assert_int_eq(loadgen_result_to_json(&shards[i], &j), 0);
		ck_assert_int_eq(loadgen_result_from_json(j, &back), 0);
		ck_assert_int_eq(loadgen_result_merge(&merged, &back), 0);
		naive_p99 += hist_percentile(back.latency, 99) / 3;
		loadgen_result_deinit(&back);
		json_decref(j);
	}
	/* The merge is the histogram fed every sample: the same bytes, so
	 * the same percentiles, mean, min and max. */
	ck_assert_int_eq(hist_serialize(merged.latency, &a, &alen), 0);
	ck_assert_int_eq(hist_serialize(all, &b, &blen), 0);
	ck_assert_uint_eq(alen, blen);
	ck_assert_int_eq(memcmp(a, b, alen), 0);
	for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++)
		ck_assert(hist_percentile(merged.latency, pcts[i]) ==
		          hist_percentile(all, pcts[i]));
	ck_assert(hist_mean(merged.latency) == hist_mean(all));
	/* What averaging the nodes' own p99s would have said is not it. */
	ck_assert(naive_p99 != hist_percentile(all, 99));
	ck_assert_uint_eq(hist_count(merged.failed), 1 + 2 + 3);
	ck_assert_uint_eq(merged.requests, 5000 + 3000 + 1234 + 6);
	ck_assert_uint_eq(merged.errors, 6);
	ck_assert_uint_eq(merged.errors_by[LOADGEN_ERR_5XX], 6);
	ck_assert(merged.elapsed_s == 4.5);
	ck_assert(!merged.rate_kept);
	ck_assert(merged.clean);
	/* Second i of every node added up; the longest timeline decides. */
	ck_assert_uint_eq(merged.n_seconds, 5);
	ck_assert_uint_eq(merged.timeline[0].requests, 10 + 20 + 30);
	ck_assert_uint_eq(merged.timeline[4].requests, 20 + 4);
	ck_assert_uint_eq(merged.timeline[3].errors, 2); /* shards 2 and 3 reach it */
	ck_assert(merged.timeline[0].p50_ms == 3.0);
	ck_assert(isnan(merged.timeline[0].p99_ms));
	free(a);
	free(b);
	hist_free(all);
	loadgen_result_deinit(&merged);
	for (int i = 0; i < 3; i++)
		loadgen_result_deinit(&shards[i]);
}
END_TEST

/* Per-second timelines whose seconds carry their histograms (the engine's
 * keep_seconds) merge exactly: each merged second's p50 and p99 are those
 * of one histogram fed every node's samples of that second. A node whose
 * seconds carry none (an older version) makes those seconds the larger of
 * the numbers, and drops their histogram. */
static void second_samples(struct loadgen_second *sec, struct hist *all, uint64_t *x, int64_t base,
                           int n)
{
	struct hist *h;

	ck_assert_int_eq(hist_new(HIST_HIGHEST_DEFAULT, 2, &h), 0);
	for (int i = 0; i < n; i++) {
		int64_t v = base + (int64_t)(xorshift(x) % (uint64_t)(base * 4));

		ck_assert_int_eq(hist_record(h, v), 0);
		ck_assert_int_eq(hist_record(all, v), 0);
	}
	*sec = (struct loadgen_second){(uint64_t)n, 0, hist_percentile(h, 50) / 1000.0,
	                               hist_percentile(h, 99) / 1000.0};
	ck_assert_int_eq(hist_serialize(h, &sec->hist, &sec->hist_len), 0);
	hist_free(h);
}

START_TEST(test_merge_seconds_exact)
{
	static const int64_t base[3] = {900, 15000, 4000}; /* us: nodes that differ */
	struct loadgen_result shards[3], merged = {0}, old = {0};
	struct hist *all[4];
	uint64_t x = 12345;

	for (int t = 0; t < 4; t++)
		ck_assert_int_eq(hist_new(HIST_HIGHEST_DEFAULT, 2, &all[t]), 0);
	for (int i = 0; i < 3; i++) {
		shards[i] =
		        (struct loadgen_result){.clean = true, .rate_kept = true, .elapsed_s = 4};
		ck_assert_int_eq(
		        hist_new(HIST_HIGHEST_DEFAULT, HIST_DIGITS_DEFAULT, &shards[i].latency), 0);
		ck_assert_int_eq(
		        hist_new(HIST_HIGHEST_DEFAULT, HIST_DIGITS_DEFAULT, &shards[i].failed), 0);
		shards[i].n_seconds = 4;
		shards[i].timeline = calloc(4, sizeof(struct loadgen_second));
		for (int t = 0; t < 4; t++)
			second_samples(&shards[i].timeline[t], all[t], &x, base[i], 200 + 50 * i);
	}
	for (int i = 0; i < 3; i++) {
		struct loadgen_result back;
		json_t *j = NULL;

		ck_assert_int_eq(loadgen_result_to_json(&shards[i], &j), 0);
		ck_assert_int_eq(loadgen_result_from_json(j, &back), 0);
		ck_assert_ptr_nonnull(back.timeline[0].hist);
		ck_assert_int_eq(loadgen_result_merge(&merged, &back), 0);
		loadgen_result_deinit(&back);
		json_decref(j);
	}
	for (int t = 0; t < 4; t++) {
		ck_assert_uint_eq(merged.timeline[t].requests, 200 + 250 + 300);
		ck_assert_ptr_nonnull(merged.timeline[t].hist);
		ck_assert(merged.timeline[t].p50_ms == hist_percentile(all[t], 50) / 1000.0);
		ck_assert(merged.timeline[t].p99_ms == hist_percentile(all[t], 99) / 1000.0);
		/* the largest node's p99 (the fallback) is not it */
		ck_assert(merged.timeline[t].p99_ms != shards[1].timeline[t].p99_ms);
	}
	/* A node that had nothing in a second leaves it exact. */
	{
		struct loadgen_result quiet = {.clean = true, .elapsed_s = 1};

		ck_assert_int_eq(
		        hist_new(HIST_HIGHEST_DEFAULT, HIST_DIGITS_DEFAULT, &quiet.latency), 0);
		ck_assert_int_eq(hist_new(HIST_HIGHEST_DEFAULT, HIST_DIGITS_DEFAULT, &quiet.failed),
		                 0);
		quiet.n_seconds = 4;
		quiet.timeline = calloc(4, sizeof(struct loadgen_second));
		for (int t = 0; t < 4; t++)
			quiet.timeline[t] = (struct loadgen_second){0, 0, NAN, NAN};
		ck_assert_int_eq(loadgen_result_merge(&merged, &quiet), 0);
		for (int t = 0; t < 4; t++) {
			ck_assert_ptr_nonnull(merged.timeline[t].hist);
			ck_assert(merged.timeline[t].p99_ms ==
			          hist_percentile(all[t], 99) / 1000.0);
		}
		loadgen_result_deinit(&quiet);
	}
	/* A node without the seconds' histograms: those seconds are the larger. */
	old = (struct loadgen_result){.clean = true, .elapsed_s = 1};
	ck_assert_int_eq(hist_new(HIST_HIGHEST_DEFAULT, HIST_DIGITS_DEFAULT, &old.latency), 0);
	ck_assert_int_eq(hist_new(HIST_HIGHEST_DEFAULT, HIST_DIGITS_DEFAULT, &old.failed), 0);
	old.n_seconds = 1;
	old.timeline = calloc(1, sizeof(struct loadgen_second));
	old.timeline[0] = (struct loadgen_second){10, 0, 1000.0, 2000.0};
	ck_assert_int_eq(loadgen_result_merge(&merged, &old), 0);
	ck_assert_ptr_null(merged.timeline[0].hist);
	ck_assert(merged.timeline[0].p99_ms == 2000.0);
	ck_assert_ptr_nonnull(merged.timeline[1].hist);
	for (int t = 0; t < 4; t++)
		hist_free(all[t]);
	loadgen_result_deinit(&old);
	loadgen_result_deinit(&merged);
	for (int i = 0; i < 3; i++)
		loadgen_result_deinit(&shards[i]);
}
END_TEST

/* What another node hands back is untrusted: anything but a result is
 * refused, never merged. */
START_TEST(test_merge_bad_json)
{
	static const char *const bad[] = {
	        "[]",
	        "{}",
	        "{\"requests\": -1}",
	};
	struct loadgen_result r, ok;
	json_t *j = NULL, *h;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *v = json_loads(bad[i], 0, NULL);

		ck_assert_int_eq(loadgen_result_from_json(v, &r), -EINVAL);
		json_decref(v);
	}
	ck_assert_int_eq(hist_new(HIST_HIGHEST_DEFAULT, HIST_DIGITS_DEFAULT, &ok.latency), 0);
	ok = (struct loadgen_result){.latency = ok.latency};
	ck_assert_int_eq(hist_new(HIST_HIGHEST_DEFAULT, HIST_DIGITS_DEFAULT, &ok.failed), 0);
	ck_assert_int_eq(loadgen_result_to_json(&ok, &j), 0);
	ck_assert_int_eq(loadgen_result_from_json(j, &r), 0);
	loadgen_result_deinit(&r);
	h = json_object_get(j, "histograms");
	json_object_set_new(h, "latency", json_string("UkRIRw==")); /* a cut histogram */
	ck_assert_int_eq(loadgen_result_from_json(j, &r), -EINVAL);
	json_object_set_new(json_object_get(j, "histograms"), "latency", json_null());
	ck_assert_int_eq(loadgen_result_from_json(j, &r), -EINVAL); /* none */
	/* A second whose histogram is no histogram, or not text, or seconds
	 * that do not match the timeline's. */
	json_object_set_new(json_object_get(j, "histograms"), "latency",
	                    loadgen_hist_base64(ok.latency));
	json_object_set_new(j, "timeline", json_pack("[[i, i, f, f]]", 1, 0, 1.0, 1.0));
	json_object_set_new(j, "timeline_hists", json_pack("[s]", "UkRIRw=="));
	ck_assert_int_eq(loadgen_result_from_json(j, &r), -EINVAL);
	json_object_set_new(j, "timeline_hists", json_pack("[i]", 7));
	ck_assert_int_eq(loadgen_result_from_json(j, &r), -EINVAL);
	json_object_set_new(j, "timeline_hists", json_pack("[n, n]"));
	ck_assert_int_eq(loadgen_result_from_json(j, &r), -EINVAL);
	json_object_set_new(j, "timeline_hists", json_pack("[n]"));
	ck_assert_int_eq(loadgen_result_from_json(j, &r), 0);
	loadgen_result_deinit(&r);
	json_decref(j);
	loadgen_result_deinit(&ok);
}
END_TEST

static Suite *loadgen_suite(void)
{
	Suite *s = suite_create("loadgen");
	TCase *tc = tcase_create("pure");
	TCase *te = tcase_create("engine");

	tcase_add_loop_test(tc, test_url_parse, 0, sizeof(url_cases) / sizeof(url_cases[0]));
	tcase_add_test(tc, test_build_request);
	tcase_add_test(tc, test_build_request_cap);
	tcase_add_loop_test(tc, test_intended, 0, sizeof(sched_cases) / sizeof(sched_cases[0]));
	tcase_add_test(tc, test_thread_split);
	tcase_add_loop_test(tc, test_parse, 0, sizeof(parse_cases) / sizeof(parse_cases[0]));
	tcase_add_loop_test(tc, test_bad_config, 0, sizeof(bad_configs) / sizeof(bad_configs[0]));
	tcase_add_test(tc, test_merge_exact);
	tcase_add_test(tc, test_merge_seconds_exact);
	tcase_add_test(tc, test_merge_bad_json);
	suite_add_tcase(s, tc);
	tcase_set_timeout(te, 60);
	tcase_add_loop_test(te, test_run, 0, sizeof(run_cases) / sizeof(run_cases[0]));
	tcase_add_test(te, test_metrics_json);
	tcase_add_loop_test(te, test_cancel, 0, 2);
	tcase_add_test(te, test_cancel_result);
	tcase_add_test(te, test_connect_refused);
	tcase_add_loop_test(te, test_connect_refused_ends, 0,
	                    sizeof(refused_cases) / sizeof(refused_cases[0]));
	tcase_add_loop_test(te, test_end_early, 0, 2);
	suite_add_tcase(s, te);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(loadgen_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
