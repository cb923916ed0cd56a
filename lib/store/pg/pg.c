/* pg: the PostgreSQL backend of the store (pg.h): connecting, the
 * migration runner, health (a lost connection noticed and reopened
 * without blocking the loop), reader connections for worker threads, and
 * the table of operations store.c dispatches through; the operations
 * themselves live in pg_runs.c, pg_history.c and the other pg_*.c files.
 *
 * It must not know HTTP, log above debug, print, or decide policy. The
 * URL's password never appears in a message: messages name the server
 * by pg->display.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/store/pg/pg.h"
#include "lib/store/pg/pg_internal.h"
#include "lib/store/pg/pg_migrations.h"
#include "lib/store/pg/pg_dns.h"
#include "lib/util/util.h"

/* The loop's connection waits at most this long for one answer; a
 * reader (worker thread: trends, history) longer. */
#define PG_LOOP_DEADLINE_MS   2000
#define PG_READER_DEADLINE_MS 30000
/* A reconnect may take this long in all, in slices of PG_RECONNECT_SLICE_MS
 * per pg_check_file call, so no call blocks the loop longer. */
#define PG_CONNECT_TIMEOUT_S  10
#define PG_RECONNECT_SLICE_MS 100
/* One advisory lock key: migrations run on one node at a time. */
#define PG_MIGRATE_LOCK "7450023610432356609"

static const struct store_ops pg_ops;

/* ---- URLs --------------------------------------------------------------- */

/* Replaces from p up to the first of stop (or the end) by "***". */
static void redact_span(char *buf, size_t len, size_t from, const char *stop)
{
	size_t end = from + strcspn(buf + from, stop);
	char tail[1024];

	snprintf(tail, sizeof(tail), "%s", buf + end);
	snprintf(buf + from, len - from, "***%s", tail);
}

void pg_url_redact(const char *url, char *buf, size_t len)
{
	char *scheme, *at, *colon, *pw;

	snprintf(buf, len, "%s", url ? url : "");
	scheme = strstr(buf, "://");
	if (scheme) {
		at = strchr(scheme + 3, '@');
		colon = strchr(scheme + 3, ':');
		if (at && colon && colon < at &&
		    !memchr(scheme + 3, '/', (size_t)(at - scheme - 3)))
			redact_span(buf, len, (size_t)(colon + 1 - buf), "@");
	}
	for (pw = strstr(buf, "password="); pw; pw = strstr(pw + 1, "password="))
		redact_span(buf, len, (size_t)(pw + 9 - buf), "& ");
}

/* ---- Connecting --------------------------------------------------------- */

/* Keywords before "dbname" are defaults the URL may override; hostaddr
 * (an address pg_dns found for the URL's host name) comes after it, as
 * the URL never sets one when it is used. */
static PGconn *connect_start(struct pg_store *pg, bool blocking, const char *hostaddr)
{
	char timeout[16];
	const char *keys[] = {"connect_timeout", "application_name",           "keepalives",
	                      "keepalives_idle", "keepalives_interval",        "keepalives_count",
	                      "dbname",          hostaddr ? "hostaddr" : NULL, NULL};
	const char *vals[] = {timeout, "readyd", "1", "10", "5", "3", pg->conninfo, hostaddr, NULL};

	snprintf(timeout, sizeof(timeout), "%d", PG_CONNECT_TIMEOUT_S);
	return blocking ? PQconnectdbParams(keys, vals, 1) : PQconnectStartParams(keys, vals, 1);
}

/* The connection string's host when it is a name to look up before a
 * reconnect (one host, no hostaddr of its own); false otherwise. */
static bool host_to_look_up(const char *conninfo, char *host, size_t len)
{
	PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
	const char *name = NULL;
	bool addr = false;

	if (!opts)
		return false;
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (!strcmp(o->keyword, "host"))
			name = o->val;
		else if (!strcmp(o->keyword, "hostaddr") && o->val && *o->val)
			addr = true;
	}
	if (!addr && pg_dns_needed(name) && strlen(name) < len)
		snprintf(host, len, "%s", name);
	else
		addr = true;
	PQconninfoFree(opts);
	return !addr;
}

/* Replaces in buf every copy of the len bytes at secret by "***". */
static void scrub_span(char *buf, size_t cap, const char *secret, size_t len)
{
	char *hit;

	if (len == 0)
		return;
	for (hit = memmem(buf, strlen(buf), secret, len); hit;
	     hit = memmem(hit + 3, strlen(hit + 3), secret, len)) {
		char tail[PG_ERRMSG_MAX];

		snprintf(tail, sizeof(tail), "%s", hit + len);
		snprintf(hit, cap - (size_t)(hit - buf), "***%s", tail);
	}
}

/* libpq's complaint about a URL it cannot parse quotes the bad part
 * ("invalid percent-encoded token: ..."), which may be the password:
 * each password of url (user:PASSWORD@, password=...) is taken out of
 * buf. */
static void scrub_passwords(const char *url, char *buf, size_t cap)
{
	const char *scheme = strstr(url, "://"), *at, *colon, *pw;

	if (scheme) {
		at = strchr(scheme + 3, '@');
		colon = strchr(scheme + 3, ':');
		if (at && colon && colon < at &&
		    !memchr(scheme + 3, '/', (size_t)(at - scheme - 3)))
			scrub_span(buf, cap, colon + 1, (size_t)(at - colon - 1));
	}
	for (pw = strstr(url, "password="); pw; pw = strstr(pw + 1, "password="))
		scrub_span(buf, cap, pw + 9, strcspn(pw + 9, "& "));
}

static int conn_failed(struct store *st, PGconn *c, const char *what)
{
	struct pg_store *pg = pg_of(st);
	const char *m = c ? PQerrorMessage(c) : "out of memory";

	snprintf(pg->cause, sizeof(pg->cause), "%.*s", (int)strcspn(m, "\n"), m);
	scrub_passwords(pg->conninfo, pg->cause, sizeof(pg->cause));
	pg_set_errf(st, "Failed to %s PostgreSQL at '%s': %s", what, pg->display, pg->cause);
	return -ENOTCONN;
}

/* Notices (an IF NOT EXISTS that skipped) are not errors: lib/ prints
 * nothing, so libpq's default of writing them to stderr is turned off. */
static void notice_ignore(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* The session's settings: the server gives up on a query when readyd
 * would, a reader cannot write, and doubles come back as text that reads
 * back to the same bits (whatever the server's default). */
static int session_setup(struct store *st)
{
	struct pg_store *pg = pg_of(st);
	char sql[200];

	PQsetNoticeProcessor(pg->conn, notice_ignore, NULL);
	snprintf(sql, sizeof(sql),
	         "SET statement_timeout = %d; SET default_transaction_read_only = %s; "
	         "SET extra_float_digits = 3%s",
	         pg->deadline_ms, pg->readonly ? "on" : "off",
	         pg->readonly ? "" : "; LISTEN readyd_changed");
	/* What other nodes wrote while this connection was down was not
	 * heard: kept answers are dropped and queued runs looked for. */
	pg->generation++;
	pg->queued_heard = true;
	return pg_exec(st, sql, 0, NULL, NULL, "configure the session");
}

static int connect_now(struct store *st)
{
	struct pg_store *pg = pg_of(st);

	pg->conn = connect_start(pg, true, NULL);
	if (!pg->conn || PQstatus(pg->conn) != CONNECTION_OK) {
		int r = conn_failed(st, pg->conn, "connect to");

		PQfinish(pg->conn);
		pg->conn = NULL;
		return r;
	}
	return session_setup(st);
}

/* ---- Schema ----------------------------------------------------------- */

/* The highest version recorded; 0 for a database never migrated. */
static int schema_read_version(struct store *st, int *ret_version)
{
	PGresult *res = NULL;
	int r = pg_exec(st,
	                "SELECT CASE WHEN to_regclass('schema_migrations') IS NULL THEN 0 ELSE "
	                "(SELECT COALESCE(MAX(version), 0) FROM schema_migrations) END",
	                0, NULL, &res, "read the schema");

	if (r < 0)
		return r;
	*ret_version = (int)pg_get_i64(res, 0, 0);
	PQclear(res);
	return 0;
}

static int schema_check_not_newer(struct store *st, int version)
{
	if (version <= pg_n_migrations)
		return 0;
	pg_set_errf(st,
	            "database schema version %d is newer than this readyd (knows up to %d): "
	            "upgrade readyd or use another database",
	            version, pg_n_migrations);
	return -EPROTONOSUPPORT;
}

/* Whether m is recorded; another name under its version means the
 * database comes from a different readyd. */
static int migration_recorded(struct store *st, const struct store_migration *m, bool *ret)
{
	struct pg_num v;
	const char *params[] = {pg_i64(&v, m->version)};
	PGresult *res = NULL;
	const char *name;
	int r = pg_exec(st, "SELECT name FROM schema_migrations WHERE version = $1", 1, params,
	                &res, "read the schema");

	if (r < 0)
		return r;
	name = PQntuples(res) ? pg_get_text(res, 0, 0) : NULL;
	if (PQntuples(res) && (!name || strcmp(name, m->name) != 0)) {
		pg_set_errf(st,
		            "database migration %d is recorded as '%s' but this readyd's is '%s': "
		            "the database comes from a different readyd",
		            m->version, name ? name : "", m->name);
		r = -EPROTONOSUPPORT;
	}
	*ret = PQntuples(res) > 0;
	PQclear(res);
	return r;
}

static int migration_apply(struct store *st, const struct store_migration *m)
{
	struct pg_num v, at;
	const char *params[3];
	char what[128];
	bool recorded = false;
	int r = migration_recorded(st, m, &recorded);

	if (r < 0 || recorded)
		return r;
	snprintf(what, sizeof(what), "apply migration '%s'", m->name);
	r = pg_exec(st, m->sql, 0, NULL, NULL, what);
	if (r < 0)
		return r;
	params[0] = pg_i64(&v, m->version);
	params[1] = m->name;
	params[2] = pg_i64(&at, rd_now_ms());
	return pg_exec(st,
	               "INSERT INTO schema_migrations (version, name, applied_at) "
	               "VALUES ($1, $2, $3)",
	               3, params, NULL, "record a migration");
}

/* All in one transaction under one advisory lock: two nodes starting on
 * a fresh database at once do not both migrate, and a failed migration
 * leaves nothing behind (PostgreSQL's DDL is transactional). */
static int schema_migrate(struct store *st)
{
	int r = pg_tx_begin(st, true), version = 0;

	if (r == 0)
		r = pg_exec(st, "SELECT pg_advisory_xact_lock(" PG_MIGRATE_LOCK ")", 0, NULL, NULL,
		            "lock the schema");
	if (r == 0)
		r = pg_exec(st,
		            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY "
		            "KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
		            0, NULL, NULL, "create schema_migrations");
	if (r == 0)
		r = schema_read_version(st, &version);
	if (r == 0)
		r = schema_check_not_newer(st, version);
	for (int i = 0; r == 0 && i < pg_n_migrations; i++)
		r = migration_apply(st, &pg_migrations[i]);
	r = pg_tx_end(st, r);
	return r < 0 ? r : schema_read_version(st, &pg_of(st)->version);
}

static int readonly_check_version(struct store *st)
{
	struct pg_store *pg = pg_of(st);
	int r = schema_read_version(st, &pg->version);

	if (r == 0)
		r = schema_check_not_newer(st, pg->version);
	if (r == 0 && pg->version < pg_n_migrations) {
		pg_set_errf(st,
		            "database schema version %d is older than this readyd (needs %d): "
		            "open it read-write first to migrate it",
		            pg->version, pg_n_migrations);
		r = -EPROTONOSUPPORT;
	}
	return r;
}

/* ---- Opening ----------------------------------------------------------- */

static struct pg_store *pg_new(const char *url, bool readonly)
{
	struct pg_store *pg = calloc(1, sizeof(*pg));
	char shown[1024];

	if (!pg)
		return NULL;
	pg->base.ops = &pg_ops;
	pg->readonly = readonly;
	pg->deadline_ms = readonly ? PG_READER_DEADLINE_MS : PG_LOOP_DEADLINE_MS;
	pg_url_redact(url, shown, sizeof(shown));
	pg->conninfo = strdup(url);
	pg->display = strdup(shown);
	if (!pg->conninfo || !pg->display) {
		free(pg->conninfo);
		free(pg->display);
		free(pg);
		return NULL;
	}
	return pg;
}

static int open_common(const char *url, bool readonly, struct store **ret_store, char *err,
                       size_t errlen)
{
	struct pg_store *pg;
	int r;

	if (!url || !ret_store)
		return -EINVAL;
	pg = pg_new(url, readonly);
	if (!pg)
		return -ENOMEM;
	r = connect_now(&pg->base);
	if (r == 0)
		r = readonly ? readonly_check_version(&pg->base) : schema_migrate(&pg->base);
	if (r == 0 && !readonly)
		r = pg_metrics_partitioned(&pg->base, &pg->metrics_partitioned);
	if (r < 0) {
		if (err && errlen > 0)
			snprintf(err, errlen, "%s", pg->errmsg);
		pg_free(&pg->base);
		return r;
	}
	*ret_store = &pg->base;
	return 0;
}

int pg_open(const char *url, struct store **ret_store, char *err, size_t errlen)
{
	return open_common(url, false, ret_store, err, errlen);
}

int pg_open_readonly(const char *url, struct store **ret_store, char *err, size_t errlen)
{
	return open_common(url, true, ret_store, err, errlen);
}

void pg_free(struct store *st)
{
	struct pg_store *pg;

	if (!st)
		return;
	pg = pg_of(st);
	PQfinish(pg->conn);
	pg_dns_drop(pg->dns);
	json_decref(pg->gates.value);
	free(pg->fence_node);
	free(pg->conninfo);
	free(pg->display);
	free(pg);
}

/* conninfo is set once at open and never changed: safe to read from a
 * worker while the main thread uses st. */
int pg_reader_open(struct store *st, struct store **ret_reader, char *err, size_t errlen)
{
	return pg_open_readonly(pg_of(st)->conninfo, ret_reader, err, errlen);
}

/* ---- Health ------------------------------------------------------------ */

/* The first part of a reconnect: the host's name looked up on a thread
 * (pg_dns.c), never here. 0 with pg->hostaddr set (or left empty when
 * libpq needs no lookup), -EINPROGRESS while it runs, -ENOTCONN when it
 * failed or outlived the reconnect's time. */
static int reconnect_lookup(struct store *st)
{
	struct pg_store *pg = pg_of(st);
	char host[PG_DNS_HOST_MAX], why[320];
	int r;

	if (!pg->dns) {
		pg->hostaddr[0] = '\0';
		if (!host_to_look_up(pg->conninfo, host, sizeof(host)))
			return 0;
		r = pg_dns_start(host, &pg->dns);
		if (r < 0) {
			pg_set_errf(st, "Failed to look up the host of '%s': %s", pg->display,
			            strerror(-r));
			return -ENOTCONN;
		}
		pg->reconnect_at = rd_now_ms() + PG_CONNECT_TIMEOUT_S * 1000;
	}
	r = pg_dns_result(pg->dns, pg->hostaddr, sizeof(pg->hostaddr), why, sizeof(why));
	if (r == -EINPROGRESS && rd_now_ms() < pg->reconnect_at)
		return r;
	pg_dns_drop(pg->dns);
	pg->dns = NULL;
	if (r == 0)
		return 0;
	pg->hostaddr[0] = '\0';
	if (r == -EINPROGRESS)
		snprintf(why, sizeof(why), "the name was not resolved within %d s",
		         PG_CONNECT_TIMEOUT_S);
	pg_set_errf(st, "Failed to reconnect to PostgreSQL at '%s': %s", pg->display, why);
	return -ENOTCONN;
}

/* Drives a non-blocking connect for at most one slice. -EINPROGRESS: not
 * yet; the next call goes on. */
static int reconnect_step(struct store *st)
{
	struct pg_store *pg = pg_of(st);
	int64_t deadline = rd_now_ms() + PG_RECONNECT_SLICE_MS;
	PostgresPollingStatusType ps = PGRES_POLLING_WRITING;
	int r;

	if (!pg->conn) {
		r = reconnect_lookup(st);
		if (r < 0)
			return r;
		pg->conn = connect_start(pg, false, pg->hostaddr[0] ? pg->hostaddr : NULL);
		pg->reconnect_at = rd_now_ms() + PG_CONNECT_TIMEOUT_S * 1000;
		if (!pg->conn || PQstatus(pg->conn) == CONNECTION_BAD)
			goto failed;
	}
	while (PQstatus(pg->conn) != CONNECTION_OK) {
		struct pollfd pfd = {.fd = PQsocket(pg->conn),
		                     .events = ps == PGRES_POLLING_READING ? POLLIN : POLLOUT};
		int64_t left = deadline - rd_now_ms();

		if (left <= 0 || poll(&pfd, 1, (int)left) == 0)
			return rd_now_ms() < pg->reconnect_at
			               ? -EINPROGRESS
			               : conn_failed(st, pg->conn, "reconnect to");
		ps = PQconnectPoll(pg->conn);
		if (ps == PGRES_POLLING_FAILED)
			goto failed;
	}
	return session_setup(st);
failed:
	conn_failed(st, pg->conn, "reconnect to");
	PQfinish(pg->conn);
	pg->conn = NULL;
	return -ENOTCONN;
}

/* The loop's timer asks this every few seconds: a broken connection is
 * reopened (a slice at a time); a live one answers a ping. */
int pg_check_file(struct store *st)
{
	struct pg_store *pg = pg_of(st);
	int r;

	if (pg->conn && PQstatus(pg->conn) == CONNECTION_OK && !pg->in_tx) {
		r = pg_exec(st, "SELECT 1", 0, NULL, NULL, "reach PostgreSQL");
		if (r == 0)
			pg_partitions_ahead(st);
		return r;
	}
	if (pg->conn && PQstatus(pg->conn) == CONNECTION_BAD) {
		PQfinish(pg->conn);
		pg->conn = NULL;
	}
	r = reconnect_step(st);
	if (r == -EINPROGRESS) {
		pg_set_errf(st, "reconnecting to PostgreSQL at '%s'", pg->display);
		return -ENOTCONN;
	}
	if (r < 0 && pg->conn) {
		PQfinish(pg->conn);
		pg->conn = NULL;
	}
	return r;
}

/* Nothing to fold back: PostgreSQL keeps its own write-ahead log. */
int pg_checkpoint(struct store *st)
{
	(void)st;
	return 0;
}

/* Other nodes' writes arrive as notifications on the loop's connection
 * (LISTEN in session_setup; the triggers of migrations/postgresql/):
 * reading them costs no round trip. A broken connection is left to
 * pg_check_file. */
void pg_notifies_drain(struct store *st)
{
	struct pg_store *pg = pg_of(st);
	PGnotify *n;

	if (!pg->conn || pg->readonly || PQstatus(pg->conn) != CONNECTION_OK ||
	    !PQconsumeInput(pg->conn))
		return;
	while ((n = PQnotifies(pg->conn))) {
		pg->generation++;
		if (n->extra && strcmp(n->extra, "queued") == 0)
			pg->queued_heard = true;
		PQfreemem(n);
	}
}

uint64_t pg_generation(struct store *st)
{
	pg_notifies_drain(st);
	return pg_of(st)->generation;
}

int pg_schema_version(struct store *st)
{
	return pg_of(st)->version;
}

int pg_schema_latest(struct store *st)
{
	(void)st;
	return pg_n_migrations;
}

const char *pg_errmsg(struct store *st)
{
	return pg_of(st)->errmsg[0] ? pg_of(st)->errmsg : "no error";
}

const char *pg_errcause(struct store *st)
{
	return pg_of(st)->cause[0] ? pg_of(st)->cause : pg_errmsg(st);
}

static const struct store_ops pg_ops = {
        .name = "postgresql",
        .free = pg_free,
        .schema_version = pg_schema_version,
        .schema_latest = pg_schema_latest,
        .errmsg = pg_errmsg,
        .errcause = pg_errcause,
        .check_file = pg_check_file,
        .checkpoint = pg_checkpoint,
        .generation = pg_generation,
        .reader_open = pg_reader_open,
        .read_begin = pg_read_begin,
        .read_end = pg_read_end,
        .run_create = pg_run_create,
        .run_find_by_key = pg_run_find_by_key,
        .run_update = pg_run_update,
        .probe_save = pg_probe_save,
        .judgement_save = pg_judgement_save,
        .run_get = pg_run_get,
        .run_spec = pg_run_spec,
        .run_service = pg_run_service,
        .runs_list = pg_runs_list,
        .runs_interrupt_stale = pg_runs_interrupt_stale,
        .run_history = pg_run_history,
        .gates_latest = pg_gates_latest,
        .baseline_find = pg_baseline_find,
        .waiver_create = pg_waiver_create,
        .waivers_list = pg_waivers_list,
        .waiver_get = pg_waiver_get,
        .waiver_revoke = pg_waiver_revoke,
        .waiver_find = pg_waiver_find,
        .run_invalidate = pg_run_invalidate,
        .rejudgement_add = pg_rejudgement_add,
        .services_list = pg_services_list,
        .history = pg_history,
        .trend = pg_trend,
        .trend_points = pg_trend_points,
        .metrics_snapshot = pg_metrics_snapshot,
        .probe_blob_save = pg_probe_blob_save,
        .probe_blob_get = pg_probe_blob_get,
        .probe_timeline_save = pg_probe_timeline_save,
        .probe_timeline_get = pg_probe_timeline_get,
        .audit_add = pg_audit_add,
        .audit_list = pg_audit_list,
        .spec_put = pg_spec_put,
        .spec_get = pg_spec_get,
        .specs_list = pg_specs_list,
        .prune_raw = pg_prune_raw,
        .shared = true,
        .node_beat = pg_node_beat,
        .run_claim = pg_run_claim,
        .leases_expire = pg_leases_expire,
        .nodes_evict = pg_nodes_evict,
        .run_cancel_request = pg_run_cancel_request,
        .run_release = pg_run_release,
        .queued_hint = pg_queued_hint,
        .fence = pg_fence,
        .load_slot_take = pg_load_slot_take,
        .load_slot_release = pg_load_slot_release,
        .shard = &pg_shard_ops,
        .partition_metrics = pg_partition_metrics,
};

/* ---- pg.c: checking a URL before use (readyd --check-config) ---------- */

/* Replaces every occurrence of secret (n bytes) in buf by "***". */
static void hide_secret(char *buf, size_t len, const char *secret, size_t n)
{
	char tail[PG_ERRMSG_MAX], *p = buf, *at;

	if (n == 0)
		return;
	while ((at = memmem(p, strlen(p), secret, n))) {
		snprintf(tail, sizeof(tail), "%s", at + n);
		snprintf(at, len - (size_t)(at - buf), "***%s", tail);
		p = at + 3 < buf + len ? at + 3 : buf + len - 1;
	}
}

/* What of url may be secret (user:PASSWORD@, password=VALUE), hidden
 * from msg. */
static void hide_url_secrets(const char *url, char *msg, size_t len)
{
	const char *s = strstr(url, "://"), *at, *colon, *pw;

	if (s) {
		s += 3;
		at = strchr(s, '@');
		colon = strchr(s, ':');
		if (at && colon && colon < at && !memchr(s, '/', (size_t)(at - s)))
			hide_secret(msg, len, colon + 1, (size_t)(at - colon - 1));
	}
	for (pw = strstr(url, "password="); pw; pw = strstr(pw + 1, "password="))
		hide_secret(msg, len, pw + 9, strcspn(pw + 9, "& "));
}

bool pg_is_conninfo(const char *s)
{
	PQconninfoOption *opts;

	if (!s || strstr(s, "://") || !strchr(s, '=') || s[0] == '/' || s[0] == '.')
		return false;
	opts = PQconninfoParse(s, NULL);
	if (!opts)
		return false;
	PQconninfoFree(opts);
	return true;
}

int pg_url_check(const char *url, char *err, size_t errlen)
{
	char *why = NULL;
	PQconninfoOption *opts = PQconninfoParse(url, &why);

	if (opts) {
		PQconninfoFree(opts);
		return 0;
	}
	if (err && errlen > 0) {
		snprintf(err, errlen, "%.*s", why ? (int)strcspn(why, "\n") : 13,
		         why ? why : "out of memory");
		hide_url_secrets(url, err, errlen);
	}
	PQfreemem(why);
	return -EINVAL;
}
