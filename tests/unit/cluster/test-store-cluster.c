/* test-store-cluster: the store's operations for several nodes on one
 * database (store.h, "Several nodes on one database"). On PostgreSQL
 * (READYD_TEST_PG_URL; each test in a schema of its own, reached by two
 * connections as two nodes would): claims oldest first, each run once,
 * never waiting for a run another connection holds; heartbeats renewing
 * leases and reporting cancels asked elsewhere; passed leases ending runs
 * (interrupted, or queued again with resume: requeue before any probe
 * started) and a starting node ending its previous life's runs; runs
 * a stopping node claimed but never started handed back; the
 * executable spec cleared with the run's end; other connections' writes
 * moving the generation through notifications, lease renewals not; a
 * fenced node's writes refused once its run is another node's; load
 * slots held by one session at a time and freed with it. On
 * SQLite: not shared, every operation -ENOTSUP, and the node that took a
 * run recorded at once.
 */
#include <check.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/store/store.h"
#include "lib/util/util.h"

#define T0    1795700402000LL
#define LEASE 3000

static char pg_url[2048];
static char schema[64];
static int schema_seq;

static PGconn *pg_raw(void)
{
	PGconn *c = PQconnectdb(pg_url);

	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	return c;
}

/* The first value of sql's answer on a connection of its own ("" for
 * none, NULL for SQL NULL). Static buffer. */
static const char *pg_value(const char *sql)
{
	static char buf[1024];
	PGconn *c = pg_raw();
	PGresult *res = PQexec(c, sql);
	const char *v = NULL;

	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql,
	              PQresultErrorMessage(res));
	if (PQntuples(res) == 0)
		v = "";
	else if (!PQgetisnull(res, 0, 0))
		v = PQgetvalue(res, 0, 0);
	if (v)
		snprintf(buf, sizeof(buf), "%s", v);
	PQclear(res);
	PQfinish(c);
	return v ? buf : NULL;
}

/* A fresh schema for this test; pg_url selects it. */
static void pg_setup(void)
{
	const char *base = getenv("READYD_TEST_PG_URL");
	char sql[128];
	PGconn *c = PQconnectdb(base);
	PGresult *res;

	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	snprintf(schema, sizeof(schema), "cluster_%ld_%d", (long)getpid(), ++schema_seq);
	snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", schema);
	res = PQexec(c, sql);
	ck_assert_int_eq(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);
	PQfinish(c);
	snprintf(pg_url, sizeof(pg_url), "%s%coptions=-csearch_path%%3D%s", base,
	         strchr(base, '?') ? '&' : '?', schema);
}

static void pg_teardown(void)
{
	char sql[128];
	PGconn *c = PQconnectdb(getenv("READYD_TEST_PG_URL"));

	snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", schema);
	if (PQstatus(c) == CONNECTION_OK)
		PQclear(PQexec(c, sql));
	PQfinish(c);
}

static struct store *node_open(void)
{
	struct store *st = NULL;
	char err[512];

	ck_assert_msg(store_open(pg_url, &st, err, sizeof(err)) == 0, "%s", err);
	ck_assert(store_shared(st));
	return st;
}

static const char *const probe_names[] = {"health", "later"};
static const char *const probe_types[] = {"http", "http"};

/* A queued run; exec NULL: stored without an executable spec. */
static int64_t add_run(struct store *st, const char *spec, const char *exec)
{
	struct store_run_new rn = {
	        .service = "svc",
	        .version = "1",
	        .environment = "test",
	        .spec_json = spec,
	        .probe_names = probe_names,
	        .probe_types = probe_types,
	        .n_probes = 2,
	        .created_at = T0,
	        .node = "ignored-when-shared",
	        .exec_spec_json = exec,
	};
	int64_t id = 0;
	bool existing = true;

	ck_assert_int_eq(store_run_create(st, &rn, &id, &existing), 0);
	ck_assert(!existing);
	return id;
}

static json_t *claim(struct store *st, const char *node, int max)
{
	json_t *runs = NULL;

	ck_assert_msg(store_run_claim(st, node, T0 + LEASE, max, &runs) == 0, "%s",
	              store_errmsg(st));
	return runs;
}

static int64_t item_id(json_t *arr, size_t i)
{
	return json_integer_value(json_object_get(json_array_get(arr, i), "id"));
}

static json_t *run_of(struct store *st, int64_t id)
{
	json_t *run = NULL;

	ck_assert_int_eq(store_run_get(st, id, &run), 0);
	return run;
}

static void assert_run(struct store *st, int64_t id, const char *state, const char *node)
{
	json_t *run = run_of(st, id);

	ck_assert_str_eq(json_string_value(json_object_get(run, "state")), state);
	if (node)
		ck_assert_str_eq(json_string_value(json_object_get(run, "node")), node);
	else
		ck_assert(json_is_null(json_object_get(run, "node")));
	json_decref(run);
}

START_TEST(test_claim_oldest_first_once)
{
	struct store *a = node_open(), *b = node_open();
	int64_t r1 = add_run(a, "{}", "{\"x\":1}"), r2 = add_run(b, "{}", "{\"x\":2}");
	int64_t r3 = add_run(a, "{}", "{\"x\":3}"), bare = add_run(a, "{}", NULL);
	json_t *got_a = claim(a, "node-a", 2), *got_b = claim(b, "node-b", 5);

	ck_assert_int_eq(json_array_size(got_a), 2);
	ck_assert_int_eq(item_id(got_a, 0), r1);
	ck_assert_int_eq(item_id(got_a, 1), r2);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(got_a, 1), "exec_spec")),
	                 "{\"x\":2}");
	ck_assert(json_is_null(json_object_get(json_array_get(got_a, 0), "spec_version")));
	/* The run without an executable spec is never claimed. */
	ck_assert_int_eq(json_array_size(got_b), 1);
	ck_assert_int_eq(item_id(got_b, 0), r3);
	assert_run(b, r1, "running", "node-a");
	assert_run(a, r3, "running", "node-b");
	assert_run(a, bare, "queued", NULL);
	json_decref(got_a);
	json_decref(got_b);
	got_a = claim(a, "node-a", 4);
	ck_assert_int_eq(json_array_size(got_a), 0);
	json_decref(got_a);
	store_free(a);
	store_free(b);
}
END_TEST

/* A run another connection holds locked (being claimed) is skipped, not
 * waited for: the claim answers at once with the next one. */
START_TEST(test_claim_skips_locked)
{
	struct store *a = node_open();
	int64_t r1 = add_run(a, "{}", "{}"), r2 = add_run(a, "{}", "{}");
	PGconn *c = pg_raw();
	char sql[128];
	json_t *got;
	PGresult *res = PQexec(c, "BEGIN");

	PQclear(res);
	snprintf(sql, sizeof(sql), "SELECT id FROM runs WHERE id = %lld FOR UPDATE", (long long)r1);
	res = PQexec(c, sql);
	ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
	PQclear(res);
	got = claim(a, "node-a", 2);
	ck_assert_int_eq(json_array_size(got), 1);
	ck_assert_int_eq(item_id(got, 0), r2);
	json_decref(got);
	PQclear(PQexec(c, "ROLLBACK"));
	PQfinish(c);
	got = claim(a, "node-a", 2);
	ck_assert_int_eq(item_id(got, 0), r1);
	json_decref(got);
	store_free(a);
}
END_TEST

START_TEST(test_beat_renews_and_reports_cancels)
{
	struct store *a = node_open(), *b = node_open();
	int64_t r1 = add_run(a, "{}", "{}"), r2 = add_run(a, "{}", "{}");
	json_t *held = NULL;
	char sql[160];

	json_decref(claim(a, "node-a", 1));
	ck_assert_int_eq(store_node_beat(a, "node-a", "0.1.0", T0 + 1000, LEASE, &held), 0);
	ck_assert_int_eq(json_array_size(held), 1);
	ck_assert_int_eq(item_id(held, 0), r1);
	ck_assert(json_is_false(json_object_get(json_array_get(held, 0), "cancel")));
	json_decref(held);
	snprintf(sql, sizeof(sql), "SELECT lease_until FROM runs WHERE id = %lld", (long long)r1);
	ck_assert_str_eq(pg_value(sql), "1795700406000");
	ck_assert_str_eq(pg_value("SELECT version || ' ' || heartbeat_at FROM nodes"),
	                 "0.1.0 1795700403000");

	/* A cancel asked on node b: the run node a executes is marked; the
	 * queued one is cancelled at once, with its probes. */
	ck_assert_int_eq(store_run_cancel_request(b, r1, T0 + 1500), 1);
	ck_assert_int_eq(store_run_cancel_request(b, r2, T0 + 1500), 0);
	assert_run(b, r2, "cancelled", NULL);
	held = run_of(b, r2);
	ck_assert_str_eq(json_string_value(json_object_get(
	                         json_array_get(json_object_get(held, "probes"), 1), "state")),
	                 "cancelled");
	json_decref(held);
	ck_assert_int_eq(store_node_beat(a, "node-a", "0.1.0", T0 + 2000, LEASE, &held), 0);
	ck_assert(json_is_true(json_object_get(json_array_get(held, 0), "cancel")));
	json_decref(held);
	ck_assert_int_eq(store_run_cancel_request(b, r2, T0 + 1600), -EALREADY);
	ck_assert_int_eq(store_run_cancel_request(b, 999, T0 + 1600), -ENOENT);

	/* Once ended, the run is no longer held. */
	ck_assert_int_eq(store_run_update(a, r1, "cancelled", NULL, 0, T0 + 2500, "cancelled"), 0);
	ck_assert_int_eq(store_node_beat(a, "node-a", "0.1.0", T0 + 3000, LEASE, &held), 0);
	ck_assert_int_eq(json_array_size(held), 0);
	json_decref(held);
	store_free(a);
	store_free(b);
}
END_TEST

static void probe_started(struct store *st, int64_t id)
{
	json_t *p = json_pack("{s:s, s:s, s:s, s:I, s:{}, s:n, s:n}", "name", "health", "type",
	                      "http", "state", "running", "started_at", (json_int_t)(T0 + 10),
	                      "metrics", "details", "error");

	ck_assert_int_eq(store_probe_save(st, id, 0, p), 0);
	json_decref(p);
}

START_TEST(test_expire_interrupts_or_requeues)
{
	struct store *a = node_open(), *b = node_open();
	const char *requeue = "{\"resume\":\"requeue\"}";
	int64_t plain = add_run(a, "{}", "{\"s\":1}"), fresh = add_run(a, requeue, "{\"s\":2}");
	int64_t started = add_run(a, requeue, "{\"s\":3}");
	json_t *held = NULL, *ended = NULL, *run;
	char sql[160];

	json_decref(claim(a, "node-a", 3));
	ck_assert_int_eq(store_node_beat(a, "node-a", "0.1.0", T0, LEASE, &held), 0);
	json_decref(held);
	probe_started(a, plain);
	probe_started(a, started);

	/* Not before the lease passed. */
	ck_assert_int_eq(store_leases_expire(b, T0 + LEASE, NULL, &ended), 0);
	ck_assert_int_eq(json_array_size(ended), 0);
	json_decref(ended);

	ck_assert_int_eq(store_leases_expire(b, T0 + LEASE + 1, NULL, &ended), 0);
	ck_assert_int_eq(json_array_size(ended), 3);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(ended, 1), "state")),
	                 "queued");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(ended, 0), "node")),
	                 "node-a");
	json_decref(ended);

	run = run_of(b, plain);
	ck_assert_str_eq(json_string_value(json_object_get(run, "state")), "interrupted");
	ck_assert_str_eq(json_string_value(json_object_get(run, "error")),
	                 "node 'node-a' stopped renewing its lease (last heard from at "
	                 "2026-11-26T13:40:02Z, lease ended at 2026-11-26T13:40:05Z); results "
	                 "measured so far are kept");
	ck_assert_str_eq(json_string_value(json_object_get(
	                         json_array_get(json_object_get(run, "probes"), 0), "state")),
	                 "interrupted");
	json_decref(run);
	assert_run(b, started, "interrupted", "node-a");
	/* Nothing had started: back in the queue, with its executable spec. */
	assert_run(b, fresh, "queued", NULL);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM runs WHERE exec_spec IS NOT NULL");
	ck_assert_str_eq(pg_value(sql), "1");
	held = claim(b, "node-b", 5);
	ck_assert_int_eq(json_array_size(held), 1);
	ck_assert_int_eq(item_id(held, 0), fresh);
	json_decref(held);
	store_free(a);
	store_free(b);
}
END_TEST

/* A node starting ends what its previous life held, lease or not. */
START_TEST(test_expire_own_previous_life)
{
	struct store *a = node_open();
	int64_t r1 = add_run(a, "{}", "{}"), r2 = add_run(a, "{}", "{}");
	json_t *ended = NULL;

	json_decref(claim(a, "node-a", 1));
	json_decref(claim(a, "node-b", 1));
	ck_assert_int_eq(store_leases_expire(a, T0, "node-a", &ended), 0);
	ck_assert_int_eq(json_array_size(ended), 1);
	ck_assert_int_eq(item_id(ended, 0), r1);
	json_decref(ended);
	ended = run_of(a, r1);
	ck_assert_str_eq(json_string_value(json_object_get(ended, "error")),
	                 "node 'node-a' stopped while the run was running and started again; "
	                 "results measured so far are kept");
	json_decref(ended);
	assert_run(a, r2, "running", "node-b");
	store_free(a);
}
END_TEST

/* A stopping node hands back what it claimed and has not started: only
 * its own, only before a probe started. */
START_TEST(test_release)
{
	struct store *a = node_open();
	int64_t r1 = add_run(a, "{}", "{\"s\":1}"), r2 = add_run(a, "{}", "{\"s\":2}");
	json_t *got;

	json_decref(claim(a, "node-a", 2));
	probe_started(a, r2);
	ck_assert_int_eq(store_run_release(a, r1, "node-b"), -EBUSY);
	ck_assert_int_eq(store_run_release(a, r2, "node-a"), -EBUSY);
	ck_assert_int_eq(store_run_release(a, r1, "node-a"), 0);
	assert_run(a, r1, "queued", NULL);
	got = claim(a, "node-b", 2);
	ck_assert_int_eq(json_array_size(got), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(got, 0), "exec_spec")),
	                 "{\"s\":1}");
	json_decref(got);
	store_free(a);
}
END_TEST

/* Waits (bounded by the test's timeout) until b has heard of a's writes. */
static uint64_t generation_moved(struct store *b, uint64_t from)
{
	uint64_t g;

	while ((g = store_generation(b)) == from)
		usleep(10 * 1000);
	return g;
}

START_TEST(test_notifications)
{
	struct store *a = node_open(), *b = node_open();
	uint64_t g = store_generation(b), step;
	json_t *held = NULL;
	int64_t id;

	(void)store_queued_hint(b);
	id = add_run(a, "{}", "{}");
	g = generation_moved(b, g);
	ck_assert(store_queued_hint(b));
	ck_assert(!store_queued_hint(b));
	json_decref(claim(a, "node-a", 1));
	g = generation_moved(b, g);
	ck_assert(!store_queued_hint(b));

	/* A beat renewing a lease notifies nobody: the next write's
	 * notification is the only one b hears (notifications arrive in
	 * commit order). */
	ck_assert_int_eq(store_node_beat(a, "node-a", "0.1.0", T0 + 500, LEASE, &held), 0);
	ck_assert_int_eq(json_array_size(held), 1);
	json_decref(held);
	ck_assert_int_eq(store_run_update(a, id, "passed", "PASS", T0 + 1, T0 + 900, NULL), 0);
	ck_assert_uint_eq(generation_moved(b, g), g + 1);
	ck_assert_str_eq(pg_value("SELECT count(*) FROM runs WHERE exec_spec IS NULL"), "1");
	g = g + 1;

	/* Nor does a lease check that finds nothing to end (its UPDATEs
	 * match no row): a queued run moves b's generation as much after
	 * one as without (b has heard everything before the run once it
	 * heard the run: notifications arrive in commit order). */
	(void)add_run(a, "{}", "{}");
	while (!store_queued_hint(b))
		usleep(10 * 1000);
	step = store_generation(b) - g;
	g += step;
	ck_assert_int_eq(store_leases_expire(a, T0 + 600, NULL, &held), 0);
	ck_assert_int_eq(json_array_size(held), 0);
	json_decref(held);
	(void)add_run(a, "{}", "{}");
	while (!store_queued_hint(b))
		usleep(10 * 1000);
	ck_assert_uint_eq(store_generation(b) - g, step);
	store_free(a);
	store_free(b);
}
END_TEST

/* Every write of a claimed run through a fenced handle, with the code
 * it returns. */
static void fenced_writes(struct store *st, int64_t id, const char *state, int want)
{
	json_t *probe = json_pack("{s:s, s:s, s:s, s:I, s:I, s:{s:f}, s:n, s:n}", "name", "health",
	                          "type", "http", "state", state, "started_at",
	                          (json_int_t)(T0 + 10), "finished_at", (json_int_t)(T0 + 20),
	                          "metrics", "ok", 1.0, "details", "error");
	json_t *gates = json_pack("[{s:s, s:s, s:s}]", "expr", "health.ok == 1", "outcome", "pass",
	                          "reason", "1 == 1");
	json_t *tl = json_pack("[{s:i, s:i, s:i, s:f, s:f}]", "second", 0, "requests", 5, "errors",
	                       0, "p50_ms", 1.0, "p99_ms", 2.0);
	static const unsigned char blob[] = {1, 2, 3};

	ck_assert_int_eq(store_probe_save(st, id, 0, probe), want);
	ck_assert_int_eq(store_judgement_save(st, id, gates, NULL), want);
	ck_assert_int_eq(store_probe_blob_save(st, id, 0, "latency", blob, sizeof(blob)), want);
	ck_assert_int_eq(store_probe_timeline_save(st, id, 0, tl), want);
	ck_assert_int_eq(store_run_update(st, id, "running", NULL, T0 + 1, 0, NULL), want);
	json_decref(probe);
	json_decref(gates);
	json_decref(tl);
}

/* A fenced node writes a run only while it holds it: once another node
 * ended the run (its lease passed), every write is refused, -ESTALE, and
 * changes nothing. */
START_TEST(test_fence)
{
	struct store *a = node_open(), *b = node_open();
	int64_t id = add_run(a, "{}", "{\"s\":1}");
	json_t *ended = NULL;
	char sql[200];

	ck_assert_int_eq(store_fence(a, "node-a"), 0);
	json_decref(claim(a, "node-a", 1));
	fenced_writes(a, id, "running", 0);
	ck_assert_int_eq(store_leases_expire(b, T0 + LEASE + 1, NULL, &ended), 0);
	ck_assert_int_eq(json_array_size(ended), 1);
	json_decref(ended);
	snprintf(sql, sizeof(sql),
	         "SELECT (SELECT count(*) FROM gate_results) || ',' || (SELECT state FROM "
	         "probe_results WHERE idx = 0) || ',' || (SELECT count(*) FROM raw_timelines)");
	ck_assert_str_eq(pg_value(sql), "1,interrupted,1");
	fenced_writes(a, id, "passed", -ESTALE);
	ck_assert_ptr_nonnull(strstr(store_errmsg(a), "node 'node-a' no longer holds it"));
	ck_assert_str_eq(pg_value(sql), "1,interrupted,1");
	ck_assert_int_eq(store_run_update(a, id, "passed", "PASS", T0 + 1, T0 + 900, NULL),
	                 -ESTALE);
	assert_run(b, id, "interrupted", "node-a");
	ck_assert_int_eq(store_run_update(a, id + 100, "passed", "PASS", T0, T0, NULL), -ENOENT);
	/* Without the fence, as a single node writes. */
	ck_assert_int_eq(store_fence(a, NULL), 0);
	ck_assert_int_eq(store_run_update(a, id, "passed", "PASS", T0 + 1, T0 + 900, NULL), 0);
	store_free(a);
	store_free(b);
}
END_TEST

/* Load slots are per host (any case) and slot, held by one session at a
 * time, and freed with the session that held them. */
START_TEST(test_load_slots)
{
	struct store *a = node_open(), *b = node_open();

	ck_assert_int_eq(store_load_slot_take(a, "Demo.Example", 0), 1);
	ck_assert_int_eq(store_load_slot_take(b, "demo.example", 0), 0);
	ck_assert_int_eq(store_load_slot_take(b, "other.example", 0), 1);
	ck_assert_int_eq(store_load_slot_take(b, "demo.example", 1), 1);
	ck_assert_int_eq(store_load_slot_take(a, "demo.example", 1), 0);
	ck_assert_int_eq(store_load_slot_release(a, "demo.example", 0), 0);
	ck_assert_int_eq(store_load_slot_take(b, "demo.example", 0), 1);
	ck_assert_int_eq(store_load_slot_release(a, "demo.example", 0), 0); /* not held */
	store_free(b);
	/* The server ends the session a moment after the client left. */
	for (int i = 0; i < 100 && store_load_slot_take(a, "demo.example", 0) == 0; i++)
		usleep(50 * 1000);
	ck_assert_int_eq(store_load_slot_take(a, "demo.example", 0), 1);
	ck_assert_int_eq(store_load_slot_take(a, "demo.example", 1), 1);
	ck_assert_int_eq(store_load_slot_take(a, NULL, 0), -EINVAL);
	store_free(a);
}
END_TEST

static void beat(struct store *st, const char *node, int64_t lease_ms)
{
	json_t *held = NULL;

	ck_assert_msg(store_node_beat(st, node, "v", T0, lease_ms, &held) == 0, "%s",
	              store_errmsg(st));
	json_decref(held);
}

/* Sessions ended until one is (or 5 s passed). */
static json_t *evict_until_one(struct store *st, const char *self)
{
	json_t *gone = NULL;

	for (int i = 0; i < 100; i++) {
		json_decref(gone);
		gone = NULL;
		ck_assert_int_eq(store_nodes_evict(st, self, &gone), 0);
		if (json_array_size(gone) > 0)
			break;
		usleep(50 * 1000);
	}
	return gone;
}

static void wait_slot(struct store *st, const char *host)
{
	for (int i = 0; i < 100 && store_load_slot_take(st, host, 0) == 0; i++)
		usleep(50 * 1000);
	ck_assert_int_eq(store_load_slot_take(st, host, 0), 1);
}

/* A node silent past its own lease whose session lives on keeps its load
 * slots until another node ends that session: then they are free. Only
 * a session a beat recorded, never the caller's own, not while the beat
 * vouches for it (on the database's clock, with the beating node's
 * lease), and a node that reconnected ends the session it left. */
START_TEST(test_evict_frees_load_slots)
{
	struct store *a = node_open(), *b = node_open(), *b2;
	json_t *gone = NULL;

	beat(a, "node-a", 400);
	beat(b, "node-b", 60000);
	ck_assert_int_eq(store_load_slot_take(a, "demo.example", 0), 1);
	ck_assert_int_eq(store_load_slot_take(b, "demo.example", 0), 0);

	ck_assert_int_eq(store_nodes_evict(b, "node-b", &gone), 0);
	ck_assert_int_eq(json_array_size(gone), 0); /* a's beat still vouches */
	json_decref(gone);
	ck_assert_int_eq(store_load_slot_take(b, "demo.example", 0), 0);

	gone = evict_until_one(b, "node-b"); /* a's, never b's own */
	ck_assert_int_eq(json_array_size(gone), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(gone, 0), "node")),
	                 "node-a");
	ck_assert_int_gt(json_integer_value(json_object_get(json_array_get(gone, 0), "pid")), 0);
	json_decref(gone);
	wait_slot(b, "demo.example"); /* the server frees the session's locks */
	ck_assert_int_eq(store_nodes_evict(b, "node-b", &gone), 0);
	ck_assert_int_eq(json_array_size(gone), 0); /* the session recorded is gone */
	json_decref(gone);
	ck_assert_int_eq(store_nodes_evict(b, NULL, &gone), -EINVAL);

	/* node-b reconnects (a new session beats for it): its first beat ends
	 * the session it left, and the slot that session held is free. */
	b2 = node_open();
	ck_assert_int_eq(store_load_slot_take(b2, "demo.example", 0), 0);
	beat(b2, "node-b", 60000);
	wait_slot(b2, "demo.example");
	store_free(b);
	store_free(b2);
	store_free(a);
}
END_TEST

START_TEST(test_sqlite_not_shared)
{
	struct store *st = NULL;
	struct store_run_new rn = {
	        .service = "svc",
	        .version = "1",
	        .environment = "test",
	        .spec_json = "{}",
	        .created_at = T0,
	        .node = "web-3:7411",
	        .exec_spec_json = "{}",
	};
	json_t *out = NULL;
	int64_t id = 0;
	bool existing;
	char err[256];

	ck_assert_int_eq(store_open(":memory:", &st, err, sizeof(err)), 0);
	ck_assert(!store_shared(st));
	ck_assert_int_eq(store_node_beat(st, "n", "v", T0, LEASE, &out), -ENOTSUP);
	ck_assert_int_eq(store_run_claim(st, "n", T0, 1, &out), -ENOTSUP);
	ck_assert_int_eq(store_leases_expire(st, T0, NULL, &out), -ENOTSUP);
	ck_assert_int_eq(store_run_cancel_request(st, 1, T0), -ENOTSUP);
	ck_assert_int_eq(store_run_release(st, 1, "n"), -ENOTSUP);
	ck_assert(!store_queued_hint(st));
	ck_assert_int_eq(store_fence(st, "n"), -ENOTSUP);
	ck_assert_int_eq(store_load_slot_take(st, "h", 0), -ENOTSUP);
	ck_assert_int_eq(store_load_slot_release(st, "h", 0), -ENOTSUP);
	ck_assert_int_eq(store_nodes_evict(st, "n", NULL), -ENOTSUP);
	ck_assert_ptr_null(out);
	ck_assert_int_eq(store_run_create(st, &rn, &id, &existing), 0);
	out = run_of(st, id);
	ck_assert_str_eq(json_string_value(json_object_get(out, "node")), "web-3:7411");
	json_decref(out);
	store_free(st);
}
END_TEST

static Suite *cluster_suite(bool pg)
{
	Suite *s = suite_create("store-cluster");
	TCase *tc = tcase_create("sqlite");

	tcase_add_test(tc, test_sqlite_not_shared);
	suite_add_tcase(s, tc);
	if (!pg)
		return s;
	tc = tcase_create("postgresql");
	tcase_add_checked_fixture(tc, pg_setup, pg_teardown);
	tcase_add_test(tc, test_claim_oldest_first_once);
	tcase_add_test(tc, test_claim_skips_locked);
	tcase_add_test(tc, test_beat_renews_and_reports_cancels);
	tcase_add_test(tc, test_expire_interrupts_or_requeues);
	tcase_add_test(tc, test_expire_own_previous_life);
	tcase_add_test(tc, test_release);
	tcase_add_test(tc, test_notifications);
	tcase_add_test(tc, test_fence);
	tcase_add_test(tc, test_load_slots);
	tcase_add_test(tc, test_evict_frees_load_slots);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	const char *url = getenv("READYD_TEST_PG_URL");
	bool pg = url && *url;
	SRunner *sr;
	int failed;

	if (!pg && getenv("READYD_REQUIRE_PG") && !strcmp(getenv("READYD_REQUIRE_PG"), "1")) {
		fprintf(stderr, "READYD_REQUIRE_PG=1 but READYD_TEST_PG_URL is not set\n");
		return EXIT_FAILURE;
	}
	if (!pg)
		fprintf(stderr, "READYD_TEST_PG_URL not set: PostgreSQL left out\n");
	sr = srunner_create(cluster_suite(pg));
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
