/* Unit tests for lib/sched: the run state machine on a private loop, with
 * a real store (":memory:"), a real HTTP client, and a local "silent"
 * server that accepts connections and never answers, so a probe can be
 * held in `running` for as long as a test needs. A store that refuses
 * writes (as on a full disk) is the real one wrapped by store-faulty,
 * which fails every write while told to. Every test ends with all
 * handles closed and uv_loop_close() == 0. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/net/http.h"
#include "lib/sched/sched.h"
#include "lib/spec/spec.h"
#include "lib/store/store.h"
#include "tests/unit/store-faulty.h"

struct silent_conn {
	uv_tcp_t tcp;
	struct silent_conn *next;
};

static uv_loop_t loop;
static struct store *st;
static struct http_client *http;
static struct sched *sched;
static uv_tcp_t server;
static uv_timer_t guard; /* keeps UV_RUN_ONCE from blocking in run_until_* */
static int server_port;
static struct silent_conn *conns;
static int shutdown_called;

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
	static char scratch[4096];

	*buf = uv_buf_init(scratch, sizeof(scratch));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	/* Swallow requests; never answer. */
}

static void on_connection(uv_stream_t *srv, int status)
{
	struct silent_conn *c = calloc(1, sizeof(*c));

	ck_assert_ptr_nonnull(c);
	uv_tcp_init(&loop, &c->tcp);
	ck_assert_int_eq(uv_accept(srv, (uv_stream_t *)&c->tcp), 0);
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	c->next = conns;
	conns = c;
}

static void start_silent_server(void)
{
	struct sockaddr_in sa;
	struct sockaddr_storage bound;
	int len = sizeof(bound);

	uv_ip4_addr("127.0.0.1", 0, &sa);
	uv_tcp_init(&loop, &server);
	ck_assert_int_eq(uv_tcp_bind(&server, (struct sockaddr *)&sa, 0), 0);
	ck_assert_int_eq(uv_listen((uv_stream_t *)&server, 16, on_connection), 0);
	uv_tcp_getsockname(&server, (struct sockaddr *)&bound, &len);
	server_port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
}

static void setup(void)
{
	char err[256];
	struct sched_config cfg = {.max_concurrent_runs = 1, .max_queued = 3};

	ck_assert_int_eq(uv_loop_init(&loop), 0);
	ck_assert_int_eq(store_open(":memory:", &st, err, sizeof(err)), 0);
	st = store_faulty_wrap(st);
	ck_assert_ptr_nonnull(st);
	ck_assert_int_eq(http_client_new(&loop, &http), 0);
	ck_assert_int_eq(sched_new(&loop, st, http, &cfg, &sched), 0);
	start_silent_server();
	uv_timer_init(&loop, &guard);
	conns = NULL;
	shutdown_called = 0;
}

static void on_shutdown(void *userdata)
{
	shutdown_called++;
}

static void free_conn(uv_handle_t *h)
{
	free(h->data);
}

static void teardown(void)
{
	sched_shutdown(sched, false, on_shutdown, NULL);
	http_client_free(http);
	for (struct silent_conn *c = conns, *next; c; c = next) {
		next = c->next;
		c->tcp.data = c;
		uv_close((uv_handle_t *)&c->tcp, free_conn);
	}
	uv_close((uv_handle_t *)&server, NULL);
	uv_close((uv_handle_t *)&guard, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	ck_assert_int_eq(shutdown_called, 1);
	sched_free(sched);
	store_free(st);
}

static struct spec *parse(const char *fmt, ...)
{
	char buf[4096];
	struct spec_error err;
	struct spec *s;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	ck_assert_msg(spec_parse(buf, strlen(buf), SPEC_FORMAT_YAML, &s, &err) == 0, "%s: %s",
	              err.path, err.message);
	return s;
}

/* A run whose only probe hangs on the silent server until cancelled. */
static struct spec *hanging_spec(const char *timeout)
{
	/* No probe timeout: the http probe's own default (10 s) is far longer
	 * than any test waits, so only cancel or the run deadline end it. */
	return parse("apiVersion: readyd/v1\nservice: s\nversion: '1'\ntimeout: %s\n"
	             "probes:\n  - name: hang\n    type: http\n"
	             "    url: http://127.0.0.1:%d/\n",
	             timeout, server_port);
}

static const char *state_of(int64_t id)
{
	static char state[32];
	json_t *run;

	ck_assert_int_eq(store_run_get(st, id, &run), 0);
	snprintf(state, sizeof(state), "%s", json_string_value(json_object_get(run, "state")));
	json_decref(run);
	return state;
}

static const char *probe_field(int64_t id, size_t idx, const char *field)
{
	static char value[256];
	json_t *run, *v;

	ck_assert_int_eq(store_run_get(st, id, &run), 0);
	v = json_object_get(json_array_get(json_object_get(run, "probes"), idx), field);
	snprintf(value, sizeof(value), "%s", json_is_string(v) ? json_string_value(v) : "(null)");
	json_decref(run);
	return value;
}

/* Runs the loop until the run's stored state is `want` (or fails the test
 * after many iterations: the guard timer keeps the loop from blocking). */
static void on_guard(uv_timer_t *t)
{
}

static void run_until_state(int64_t id, const char *want)
{
	uv_timer_start(&guard, on_guard, 10, 10);
	for (int i = 0; i < 2000 && strcmp(state_of(id), want) != 0; i++)
		uv_run(&loop, UV_RUN_ONCE);
	uv_timer_stop(&guard);
	ck_assert_str_eq(state_of(id), want);
}

static void run_until_probe_running(int64_t id)
{
	uv_timer_start(&guard, on_guard, 10, 10);
	for (int i = 0; i < 2000 && !conns; i++)
		uv_run(&loop, UV_RUN_ONCE);
	uv_timer_stop(&guard);
	ck_assert_str_eq(probe_field(id, 0, "state"), "running");
	ck_assert_ptr_nonnull(conns); /* the probe really connected */
}

START_TEST(test_refused_tls_probe_errors)
{
	int64_t id;
	bool existing;
	/* Nothing listens on port 1: the handshake is refused, an error. */
	struct spec *s =
	        parse("apiVersion: readyd/v1\nservice: s\nversion: '1'\n"
	              "probes:\n  - name: t\n    type: tls\n    url: https://127.0.0.1:1/\n"
	              "gates:\n  - t.version >= 1.3\n");

	ck_assert_int_eq(sched_submit(sched, s, NULL, NULL, &id, &existing), 0);
	ck_assert(!existing);
	run_until_state(id, "error");
	ck_assert_str_eq(probe_field(id, 0, "state"), "error");
	ck_assert_msg(strstr(probe_field(id, 0, "error"), "refused"), "%s",
	              probe_field(id, 0, "error"));
	ck_assert_int_eq(sched_active(sched), 0);
}
END_TEST

/* A background probe (resources) runs beside the later probes: both are
 * running at once; it is stopped after the last one and the run ends
 * after it. */
static struct spec *background_spec(const char *probe_timeout)
{
	return parse("apiVersion: readyd/v1\nservice: s\nversion: '1'\ntimeout: 10m\n"
	             "probes:\n  - name: res\n    type: resources\n    pid: %d\n"
	             "    interval: 10ms\n"
	             "  - name: hang\n    type: http\n    url: http://127.0.0.1:%d/\n"
	             "    timeout: %s\n",
	             (int)getpid(), server_port, probe_timeout);
}

/* Closes the silent server's connections: a hanging http probe then gets
 * an empty reply and ends as an error, without waiting for any clock. */
static void drop_conns(void)
{
	for (struct silent_conn *c = conns, *next; c; c = next) {
		next = c->next;
		c->tcp.data = c;
		uv_close((uv_handle_t *)&c->tcp, free_conn);
	}
	conns = NULL;
}

START_TEST(test_background_probe_stopped_after_last)
{
	int64_t id;
	bool existing;

	ck_assert_int_eq(sched_submit(sched, background_spec("10m"), NULL, NULL, &id, &existing),
	                 0);
	run_until_probe_running(id);
	ck_assert_str_eq(probe_field(id, 1, "state"), "running");
	ck_assert_str_eq(probe_field(id, 0, "state"), "running"); /* beside it */
	drop_conns();
	run_until_state(id, "error"); /* the hanging probe got an empty reply */
	ck_assert_str_eq(probe_field(id, 1, "state"), "error");
	ck_assert_str_eq(probe_field(id, 0, "state"), "passed");
	ck_assert_int_eq(sched_active(sched), 0);
}
END_TEST

START_TEST(test_background_probe_cancelled_with_run)
{
	int64_t id;
	bool existing;

	ck_assert_int_eq(sched_submit(sched, background_spec("10m"), NULL, NULL, &id, &existing),
	                 0);
	run_until_probe_running(id);
	ck_assert_str_eq(probe_field(id, 0, "state"), "running");
	ck_assert_int_eq(sched_cancel(sched, id), 0);
	run_until_state(id, "cancelled");
	ck_assert_str_eq(probe_field(id, 0, "state"), "cancelled");
	ck_assert_str_eq(probe_field(id, 1, "state"), "cancelled");
	ck_assert_int_eq(sched_active(sched), 0);
}
END_TEST

START_TEST(test_cancel_running_then_queued_starts)
{
	int64_t a, b;
	bool existing;

	ck_assert_int_eq(sched_submit(sched, hanging_spec("10m"), NULL, NULL, &a, &existing), 0);
	ck_assert_int_eq(sched_submit(sched, hanging_spec("10m"), NULL, NULL, &b, &existing), 0);
	run_until_probe_running(a);
	/* max_concurrent_runs = 1: the second waits. */
	ck_assert_str_eq(state_of(a), "running");
	ck_assert_str_eq(state_of(b), "queued");
	ck_assert_int_eq(sched_active(sched), 2);
	ck_assert_int_eq(sched_cancel(sched, a), 0);
	run_until_state(a, "cancelled");
	ck_assert_str_eq(probe_field(a, 0, "state"), "cancelled");
	run_until_state(b, "running");
	ck_assert_int_eq(sched_cancel(sched, a), -ENOENT); /* no longer active */
	ck_assert_int_eq(sched_cancel(sched, b), 0);
	run_until_state(b, "cancelled");
}
END_TEST

START_TEST(test_cancel_queued)
{
	int64_t a, b;
	bool existing;

	ck_assert_int_eq(sched_submit(sched, hanging_spec("10m"), NULL, NULL, &a, &existing), 0);
	ck_assert_int_eq(sched_submit(sched, hanging_spec("10m"), NULL, NULL, &b, &existing), 0);
	ck_assert_int_eq(sched_cancel(sched, b), 0);
	ck_assert_str_eq(state_of(b), "cancelled");
	ck_assert_str_eq(probe_field(b, 0, "state"), "cancelled");
	ck_assert_str_eq(probe_field(b, 0, "started_at"), "(null)");
}
END_TEST

START_TEST(test_run_deadline)
{
	int64_t id;
	bool existing;
	json_t *run;

	ck_assert_int_eq(sched_submit(sched, hanging_spec("1s"), NULL, NULL, &id, &existing), 0);
	run_until_state(id, "error");
	ck_assert_int_eq(store_run_get(st, id, &run), 0);
	ck_assert_str_eq(json_string_value(json_object_get(run, "verdict")), "ERROR");
	ck_assert_ptr_nonnull(
	        strstr(json_string_value(json_object_get(run, "error")), "timeout of 1s"));
	json_decref(run);
}
END_TEST

START_TEST(test_queue_limit_and_idempotency)
{
	int64_t ids[4], again;
	bool existing;

	for (int i = 0; i < 4; i++) {
		char key[8];

		snprintf(key, sizeof(key), "k%d", i);
		ck_assert_int_eq(
		        sched_submit(sched, hanging_spec("10m"), NULL, key, &ids[i], &existing), 0);
	}
	/* One running, three queued: the queue (max_queued = 3) is full. */
	ck_assert_int_eq(sched_submit(sched, hanging_spec("10m"), NULL, NULL, &again, &existing),
	                 -EAGAIN);
	ck_assert_int_eq(sched_submit(sched, hanging_spec("10m"), NULL, "k2", &again, &existing),
	                 0);
	ck_assert(existing);
	ck_assert_int_eq(again, ids[2]);
}
END_TEST

struct watch_log {
	int calls, finals;
	char last[32];
};

static void on_watch(void *userdata, int64_t run_id, const char *state, bool final)
{
	struct watch_log *log = userdata;

	log->calls++;
	log->finals += final;
	snprintf(log->last, sizeof(log->last), "%s", state);
}

START_TEST(test_watch_and_shutdown_interrupts)
{
	struct watch_log log = {0};
	struct sched_watch *w;
	int64_t id;
	bool existing;
	json_t *progress;

	ck_assert_int_eq(sched_submit(sched, hanging_spec("10m"), NULL, NULL, &id, &existing), 0);
	ck_assert_int_eq(sched_watch(sched, id, on_watch, &log, &w), 0);
	run_until_probe_running(id);
	ck_assert_int_eq(sched_progress(sched, id, &progress), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(progress, "probes_total")), 1);
	ck_assert_str_eq(
	        json_string_value(json_object_get(json_object_get(progress, "current"), "probe")),
	        "hang");
	json_decref(progress);
	sched_shutdown(sched, true, on_shutdown, NULL);
	ck_assert_int_eq(shutdown_called, 1);
	ck_assert_str_eq(state_of(id), "interrupted");
	ck_assert_str_eq(probe_field(id, 0, "state"), "interrupted");
	ck_assert_int_eq(log.finals, 1);
	ck_assert_str_eq(log.last, "interrupted");
	ck_assert_int_ge(log.calls, 2); /* probe start, then the end */
	ck_assert_int_eq(sched_watch(sched, id, on_watch, &log, &w), -ENOENT);
	shutdown_called = 0; /* teardown's shutdown must call back once more */
}
END_TEST

/* SQLite's words for a write its authorizer denies, as the daemon
 * would report them. */
static void store_refuse(bool refuse)
{
	store_faulty_refuse(st, refuse ? -EIO : 0, "not authorized");
}

struct store_log {
	int failures, recoveries;
	char last[512];
};

static void on_store(void *userdata, int err, const char *sentence)
{
	struct store_log *log = userdata;

	if (err < 0)
		log->failures++;
	else
		log->recoveries++;
	snprintf(log->last, sizeof(log->last), "%s", sentence);
}

static void run_until_refused(const struct store_log *sl)
{
	uv_timer_start(&guard, on_guard, 10, 10);
	for (int i = 0; i < 2000 && sl->failures == 0; i++)
		uv_run(&loop, UV_RUN_ONCE);
	uv_timer_stop(&guard);
	ck_assert_int_eq(sl->failures, 1);
}

/* A run whose end the store refuses is not announced and stays active;
 * no queued run starts and submits fail meanwhile; once the store takes
 * writes again the retry stores the end, announces it and the queue
 * moves. */
START_TEST(test_refused_end_kept_and_retried)
{
	struct watch_log log = {0};
	struct store_log sl = {0};
	struct sched_watch *w;
	int64_t a, b, other;
	bool existing;
	char why[256], want[128];
	int calls;

	sched_set_store_cb(sched, on_store, &sl);
	ck_assert_int_eq(sched_submit(sched, hanging_spec("10m"), NULL, NULL, &a, &existing), 0);
	ck_assert_int_eq(sched_submit(sched, hanging_spec("10m"), NULL, NULL, &b, &existing), 0);
	ck_assert_int_eq(sched_watch(sched, a, on_watch, &log, &w), 0);
	run_until_probe_running(a);
	calls = log.calls;
	store_refuse(true);
	drop_conns(); /* the probe gets an empty reply: the run ends */
	run_until_refused(&sl);
	ck_assert_str_eq(state_of(a), "running"); /* the last stored state */
	ck_assert_int_eq(log.calls, calls);       /* nothing announced */
	ck_assert_int_eq(log.finals, 0);
	ck_assert_int_eq(sched_active(sched), 2); /* a (ended, unstored) and b */
	ck_assert_int_eq(sched_store_status(sched, why, sizeof(why)), -EIO);
	snprintf(want, sizeof(want), "cannot write run %lld: not authorized; 1 write pending",
	         (long long)a);
	ck_assert_str_eq(why, want);
	snprintf(want, sizeof(want), "Failed to store 'run %lld': not authorized;", (long long)a);
	ck_assert_ptr_eq(strstr(sl.last, want), sl.last);
	ck_assert_int_eq(sched_submit(sched, hanging_spec("10m"), NULL, NULL, &other, &existing),
	                 -EIO);
	ck_assert_int_eq(sched_cancel(sched, a), -EALREADY); /* ended: nothing to cancel */
	ck_assert_str_eq(state_of(b), "queued");
	store_refuse(false);
	run_until_state(a, "error");
	ck_assert_str_eq(probe_field(a, 0, "state"), "error");
	ck_assert_int_eq(log.finals, 1);
	ck_assert_str_eq(log.last, "error");
	ck_assert_int_eq(sl.failures, 1); /* the retries are not reported */
	ck_assert_int_eq(sl.recoveries, 1);
	ck_assert_int_eq(sched_store_status(sched, why, sizeof(why)), 0);
	run_until_state(b, "running");
	ck_assert_int_eq(sched_active(sched), 1);
	sched_set_store_cb(sched, NULL, NULL); /* sl dies with this function */
}
END_TEST

/* A refused write in the middle of a run: the run goes on in memory
 * (its next probe starts) without a word to watchers; the retry writes
 * all of it and announces it, and the run is still running. */
START_TEST(test_refused_mid_run_caught_up)
{
	struct watch_log log = {0};
	struct store_log sl = {0};
	struct sched_watch *w;
	int64_t id;
	bool existing;
	int calls;
	struct spec *spec = parse("apiVersion: readyd/v1\nservice: s\nversion: '1'\ntimeout: 10m\n"
	                          "probes:\n"
	                          "  - name: a\n    type: http\n    url: http://127.0.0.1:%d/\n"
	                          "  - name: b\n    type: http\n    url: http://127.0.0.1:%d/\n",
	                          server_port, server_port);

	sched_set_store_cb(sched, on_store, &sl);
	ck_assert_int_eq(sched_submit(sched, spec, NULL, NULL, &id, &existing), 0);
	ck_assert_int_eq(sched_watch(sched, id, on_watch, &log, &w), 0);
	run_until_probe_running(id);
	calls = log.calls;
	store_refuse(true);
	drop_conns(); /* a ends; b starts and hangs */
	run_until_refused(&sl);
	uv_timer_start(&guard, on_guard, 10, 10);
	for (int i = 0; i < 2000 && !conns; i++)
		uv_run(&loop, UV_RUN_ONCE);
	uv_timer_stop(&guard);
	ck_assert_ptr_nonnull(conns);                             /* b really runs */
	ck_assert_str_eq(probe_field(id, 0, "state"), "running"); /* as last stored */
	ck_assert_str_eq(probe_field(id, 1, "state"), "queued");
	ck_assert_int_eq(log.calls, calls);
	store_refuse(false);
	uv_timer_start(&guard, on_guard, 10, 10);
	for (int i = 0; i < 2000 && sl.recoveries == 0; i++)
		uv_run(&loop, UV_RUN_ONCE);
	uv_timer_stop(&guard);
	ck_assert_int_eq(sl.recoveries, 1);
	ck_assert_str_eq(probe_field(id, 0, "state"), "error");
	ck_assert_str_eq(probe_field(id, 1, "state"), "running");
	ck_assert_str_eq(state_of(id), "running");
	ck_assert_int_eq(log.calls, calls + 1); /* one announcement of the caught-up state */
	ck_assert_int_eq(log.finals, 0);
	ck_assert_str_eq(log.last, "running");
	sched_unwatch(w); /* log and sl die with this function */
	sched_set_store_cb(sched, NULL, NULL);
}
END_TEST

/* Stopping does not wait for a store that keeps refusing: the run keeps
 * its last stored state (a restart marks it interrupted). */
START_TEST(test_refused_end_given_up_at_shutdown)
{
	struct store_log sl = {0};
	int64_t id;
	bool existing;

	sched_set_store_cb(sched, on_store, &sl);
	ck_assert_int_eq(sched_submit(sched, hanging_spec("10m"), NULL, NULL, &id, &existing), 0);
	run_until_probe_running(id);
	store_refuse(true);
	drop_conns();
	run_until_refused(&sl);
	sched_shutdown(sched, true, on_shutdown, NULL);
	ck_assert_int_eq(shutdown_called, 1);
	ck_assert_int_eq(sched_active(sched), 0);
	ck_assert_int_eq(sl.failures, 2);
	ck_assert_ptr_nonnull(strstr(sl.last, "readyd is stopping"));
	store_refuse(false);
	ck_assert_str_eq(state_of(id), "running");
	sched_set_store_cb(sched, NULL, NULL);
	shutdown_called = 0; /* teardown's shutdown must call back once more */
}
END_TEST

static Suite *sched_suite(void)
{
	Suite *s = suite_create("sched");
	TCase *tc = tcase_create("runs");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_refused_tls_probe_errors);
	tcase_add_test(tc, test_cancel_running_then_queued_starts);
	tcase_add_test(tc, test_cancel_queued);
	tcase_add_test(tc, test_run_deadline);
	tcase_add_test(tc, test_queue_limit_and_idempotency);
	tcase_add_test(tc, test_watch_and_shutdown_interrupts);
	tcase_add_test(tc, test_background_probe_stopped_after_last);
	tcase_add_test(tc, test_background_probe_cancelled_with_run);
	tcase_add_test(tc, test_refused_end_kept_and_retried);
	tcase_add_test(tc, test_refused_end_given_up_at_shutdown);
	tcase_add_test(tc, test_refused_mid_run_caught_up);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(sched_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
