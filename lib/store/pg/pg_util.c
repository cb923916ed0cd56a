/* pg_util: queries with a deadline, transactions, errors, parameters and
 * results for the PostgreSQL backend's files (pg_internal.h). Every libpq
 * failure becomes -errno here, once, with the server's message kept.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/store/pg/pg_internal.h"
#include "lib/util/json_text.h"
#include "lib/util/util.h"

struct pg_store *pg_of(struct store *st)
{
	return rd_container_of(st, struct pg_store, base);
}

void pg_set_errf(struct store *st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(pg_of(st)->errmsg, sizeof(pg_of(st)->errmsg), fmt, ap);
	va_end(ap);
	pg_of(st)->cause[0] = '\0';
}

int pg_oom(struct store *st)
{
	pg_set_errf(st, "Failed to build a result: out of memory");
	return -ENOMEM;
}

int pg_invalid(struct store *st, const char *what, const char *key)
{
	pg_set_errf(st, "Failed to save %s: '%s' is missing or of the wrong type", what, key);
	return -EINVAL;
}

/* SQLSTATE classes and codes onto -errno (PostgreSQL's appendix A). */
static int errno_from_sqlstate(const char *state)
{
	if (!state || strlen(state) != 5)
		return -EIO;
	if (!strcmp(state, "23505"))
		return -EEXIST;
	if (!strncmp(state, "23", 2) || !strncmp(state, "22", 2))
		return -EINVAL;
	if (!strcmp(state, "53100"))
		return -ENOSPC;
	if (!strcmp(state, "53200"))
		return -ENOMEM;
	if (!strcmp(state, "25006"))
		return -EROFS;
	/* Serialization failure, deadlock, lock not available: the database
	 * is busy, as SQLite's SQLITE_BUSY (a retry succeeds). */
	if (!strcmp(state, "40001") || !strcmp(state, "40P01") || !strcmp(state, "55P03"))
		return -EBUSY;
	if (!strcmp(state, "57014"))
		return -ETIMEDOUT;
	if (!strncmp(state, "08", 2) || !strcmp(state, "57P01") || !strcmp(state, "57P02") ||
	    !strcmp(state, "57P03"))
		return -ENOTCONN;
	return -EIO;
}

/* Keeps the server's message (first line) for a failed query. */
static int fail_with(struct store *st, const char *what, const char *msg, int e)
{
	struct pg_store *pg = pg_of(st);
	size_t n = strcspn(msg, "\n");

	snprintf(pg->cause, sizeof(pg->cause), "%.*s", (int)n, msg);
	snprintf(pg->errmsg, sizeof(pg->errmsg), "Failed to %.96s: %.400s", what, pg->cause);
	return e;
}

/* The connection is gone for good: drop it; pg_check_file reconnects. */
static void conn_drop(struct pg_store *pg)
{
	PQfinish(pg->conn);
	pg->conn = NULL;
	pg->in_tx = false;
}

/* Gives the connection up after a missed deadline: its state is unknown.
 * The query is not cancelled from here: PQcancel() opens a connection and
 * waits, without a deadline, for the server to close it, so a server that
 * hangs (stopped, swapping) would hang the loop with it. The server stops
 * the query itself: the session's statement_timeout is the same deadline
 * (session_setup in pg.c). */
static void conn_abandon(struct pg_store *pg)
{
	conn_drop(pg);
}

/* Waits until the answer is complete or the deadline passes. */
static int wait_answer(struct pg_store *pg, int64_t deadline)
{
	struct pollfd pfd = {.fd = PQsocket(pg->conn), .events = POLLIN};
	int64_t left;

	while (PQisBusy(pg->conn)) {
		left = deadline - rd_now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
			return -errno;
		if (!PQconsumeInput(pg->conn))
			return -ENOTCONN;
	}
	return 0;
}

/* Sends what is buffered (large parameters) within the deadline. */
static int wait_flush(struct pg_store *pg, int64_t deadline)
{
	struct pollfd pfd = {.fd = PQsocket(pg->conn), .events = POLLIN | POLLOUT};
	int f;

	while ((f = PQflush(pg->conn)) == 1) {
		int64_t left = deadline - rd_now_ms();

		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
			return -errno;
		if ((pfd.revents & POLLIN) && !PQconsumeInput(pg->conn))
			return -ENOTCONN;
	}
	return f == 0 ? 0 : -ENOTCONN;
}

/* The last result of the query (all of them read: the connection is
 * ready for the next one), or NULL when the connection broke. */
static PGresult *last_result(struct pg_store *pg, int64_t deadline, int *ret_err)
{
	PGresult *res, *last = NULL;
	int r = 0;

	for (;;) {
		r = wait_answer(pg, deadline);
		if (r < 0)
			break;
		res = PQgetResult(pg->conn);
		if (!res)
			break;
		PQclear(last);
		last = res;
	}
	if (r < 0) {
		PQclear(last);
		last = NULL;
	}
	*ret_err = r;
	return last;
}

static int result_check(struct store *st, PGresult *res, const char *what)
{
	ExecStatusType s = PQresultStatus(res);

	if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK)
		return 0;
	/* The primary message alone: no "ERROR:  " severity prefix. */
	const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	return fail_with(st, what, m ? m : PQresultErrorMessage(res),
	                 errno_from_sqlstate(PQresultErrorField(res, PG_DIAG_SQLSTATE)));
}

static int lost(struct store *st, const char *what, int e)
{
	struct pg_store *pg = pg_of(st);
	char msg[PG_ERRMSG_MAX];

	if (e == -ETIMEDOUT) {
		snprintf(msg, sizeof(msg), "no answer from PostgreSQL within %d ms",
		         pg->deadline_ms);
		conn_abandon(pg);
		return fail_with(st, what, msg, -ETIMEDOUT);
	}
	snprintf(msg, sizeof(msg), "lost the connection to PostgreSQL: %s",
	         pg->conn ? PQerrorMessage(pg->conn) : "not connected");
	if (pg->conn)
		conn_drop(pg);
	return fail_with(st, what, msg, -ENOTCONN);
}

/* pg_check_file() is part way through opening a new connection, a slice
 * at a time: a query meanwhile fails without dropping it, or a server that
 * takes longer than a slice to answer a connect would never be reached
 * again while requests keep coming. */
static int reconnecting(struct store *st, const char *what)
{
	return fail_with(st, what, "reconnecting to PostgreSQL", -ENOTCONN);
}

int pg_exec_bin(struct store *st, const char *sql, int n, const char *const *params,
                const int *lengths, const int *formats, bool result_binary, PGresult **ret_res,
                const char *what)
{
	struct pg_store *pg = pg_of(st);
	int64_t deadline = rd_now_ms() + pg->deadline_ms;
	PGresult *res;
	int r;

	if (pg->conn && PQstatus(pg->conn) != CONNECTION_OK && PQstatus(pg->conn) != CONNECTION_BAD)
		return reconnecting(st, what);
	if (!pg->conn || PQstatus(pg->conn) != CONNECTION_OK)
		return lost(st, what, -ENOTCONN);
	/* Without parameters, the simple protocol: it takes several
	 * statements at once (migrations). */
	if (n == 0 && !result_binary ? !PQsendQuery(pg->conn, sql)
	                             : !PQsendQueryParams(pg->conn, sql, n, NULL, params, lengths,
	                                                  formats, result_binary ? 1 : 0))
		return lost(st, what, -ENOTCONN);
	r = wait_flush(pg, deadline);
	if (r < 0)
		return lost(st, what, r);
	res = last_result(pg, deadline, &r);
	if (!res)
		return lost(st, what, r < 0 ? r : -ENOTCONN);
	r = result_check(st, res, what);
	/* The server went away mid-query (a restart, a crash): libpq's own
	 * error carries no SQLSTATE, but the connection says it. */
	if (r < 0 && PQstatus(pg->conn) == CONNECTION_BAD) {
		PQclear(res);
		return lost(st, what, -ENOTCONN);
	}
	if (r < 0 || !ret_res) {
		if (r == 0 && pg_changed_rows(res) > 0)
			pg->generation++;
		PQclear(res);
		return r;
	}
	if (pg_changed_rows(res) > 0)
		pg->generation++;
	*ret_res = res;
	return 0;
}

int pg_exec(struct store *st, const char *sql, int n, const char *const *params, PGresult **ret_res,
            const char *what)
{
	return pg_exec_bin(st, sql, n, params, NULL, NULL, false, ret_res, what);
}

/* PQcmdTuples also counts the rows a SELECT returned: only the tags of
 * commands that change rows count, so reads leave the generation alone. */
int64_t pg_changed_rows(PGresult *res)
{
	static const char *const writes[] = {"INSERT ", "UPDATE ", "DELETE ", "MERGE "};
	const char *status = PQcmdStatus(res), *t;

	for (size_t i = 0; status && i < RD_ARRAY_SIZE(writes); i++) {
		if (strncmp(status, writes[i], strlen(writes[i])) == 0) {
			t = PQcmdTuples(res);
			return t && *t ? strtoll(t, NULL, 10) : 0;
		}
	}
	return 0;
}

int pg_tx_begin(struct store *st, bool write)
{
	int r = pg_exec(st,
	                write ? "BEGIN ISOLATION LEVEL READ COMMITTED, READ WRITE"
	                      : "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
	                0, NULL, NULL, "begin a transaction");

	if (r == 0)
		pg_of(st)->in_tx = true;
	return r;
}

/* Leaves the message of the error that caused the rollback in place. */
static void tx_rollback(struct store *st)
{
	struct pg_store *pg = pg_of(st);
	char saved[PG_ERRMSG_MAX], cause[PG_ERRMSG_MAX];

	if (!pg->in_tx || !pg->conn)
		return;
	memcpy(saved, pg->errmsg, sizeof(saved));
	memcpy(cause, pg->cause, sizeof(cause));
	(void)pg_exec(st, "ROLLBACK", 0, NULL, NULL, "roll back");
	memcpy(pg->errmsg, saved, sizeof(saved));
	memcpy(pg->cause, cause, sizeof(cause));
}

int pg_tx_end(struct store *st, int r)
{
	if (r == 0)
		r = pg_exec(st, "COMMIT", 0, NULL, NULL, "commit");
	if (r < 0)
		tx_rollback(st);
	pg_of(st)->in_tx = false;
	return r;
}

int pg_read_begin(struct store *st)
{
	return pg_tx_begin(st, false);
}

int pg_read_end(struct store *st, int r)
{
	return pg_tx_end(st, r);
}

/* ---- Parameters -------------------------------------------------------- */

const char *pg_i64(struct pg_num *b, int64_t v)
{
	snprintf(b->s, sizeof(b->s), "%" PRId64, v);
	return b->s;
}

const char *pg_dbl(struct pg_num *b, double v)
{
	if (!isfinite(v))
		return NULL;
	snprintf(b->s, sizeof(b->s), "%.17g", v);
	return b->s;
}

const char *pg_time_opt(struct pg_num *b, int64_t ms)
{
	return ms ? pg_i64(b, ms) : NULL;
}

/* One field's parameter (see pg_cols_params). */
static int col_param(json_t *v, const struct store_col *c, const char **ret, struct pg_num *num,
                     char **ret_owned)
{
	*ret_owned = NULL;
	if (c->kind == COL_BOOL) {
		*ret = json_is_true(v) ? "1" : "0";
	} else if (!v || json_is_null(v)) {
		*ret = NULL;
	} else if (c->kind == COL_TEXT) {
		*ret = json_string_value(v);
	} else if (c->kind == COL_REAL) {
		*ret = pg_dbl(num, json_number_value(v));
	} else if (c->kind == COL_JSON) {
		*ret_owned = rd_json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		if (!*ret_owned)
			return -ENOMEM;
		*ret = *ret_owned;
	} else {
		*ret = pg_i64(num, json_integer_value(v));
	}
	return 0;
}

int pg_cols_params(struct store *st, json_t *obj, const struct store_col *cols, size_t n,
                   const char **params, struct pg_num *nums, char **ret_owned)
{
	for (size_t i = 0; i < n; i++)
		ret_owned[i] = NULL;
	for (size_t i = 0; i < n; i++) {
		if (col_param(json_object_get(obj, cols[i].key), &cols[i], &params[i], &nums[i],
		              &ret_owned[i]) < 0) {
			for (size_t j = 0; j < i; j++)
				free(ret_owned[j]);
			return pg_oom(st);
		}
	}
	return 0;
}

/* ---- Results ----------------------------------------------------------- */

bool pg_null(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) != 0;
}

int64_t pg_get_i64(const PGresult *res, int row, int col)
{
	return pg_null(res, row, col) ? 0 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

double pg_get_dbl(const PGresult *res, int row, int col)
{
	return pg_null(res, row, col) ? NAN : strtod(PQgetvalue(res, row, col), NULL);
}

const char *pg_get_text(const PGresult *res, int row, int col)
{
	return pg_null(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

int pg_col_to_json(struct store *st, const PGresult *res, int row, int col,
                   const struct store_col *c, json_t **ret)
{
	const char *text = PQgetvalue(res, row, col);
	size_t len = (size_t)PQgetlength(res, row, col);
	json_error_t jerr;
	double d;
	json_t *v;

	if (pg_null(res, row, col)) {
		*ret = c->kind == COL_BOOL ? json_false() : json_null();
		return 0;
	}
	switch (c->kind) {
	case COL_INT:
		v = json_integer(strtoll(text, NULL, 10));
		break;
	case COL_REAL:
		d = strtod(text, NULL);
		v = isfinite(d) ? json_real(d) : json_null();
		break;
	case COL_BOOL:
		v = json_boolean(strcmp(text, "0") != 0 && strcmp(text, "f") != 0);
		break;
	case COL_TIME:
		v = store_json_time(strtoll(text, NULL, 10));
		break;
	case COL_JSON:
		v = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
		if (!v) {
			pg_set_errf(st, "Failed to read stored '%s': %s", c->key, jerr.text);
			return -EIO;
		}
		break;
	default:
		v = store_json_string_lossy(text, len);
		break;
	}
	if (!v)
		return pg_oom(st);
	*ret = v;
	return 0;
}

int pg_row_to_json(struct store *st, const PGresult *res, int row, int first,
                   const struct store_col *cols, size_t n, json_t **ret)
{
	json_t *obj = json_object(), *v;
	int r;

	if (!obj)
		return pg_oom(st);
	for (size_t i = 0; i < n; i++) {
		r = pg_col_to_json(st, res, row, first + (int)i, &cols[i], &v);
		if (r < 0) {
			json_decref(obj);
			return r;
		}
		if (json_object_set_new(obj, cols[i].key, v) < 0) {
			json_decref(obj);
			return pg_oom(st);
		}
	}
	*ret = obj;
	return 0;
}

int pg_rows_to_array(struct store *st, const PGresult *res, const struct store_col *cols, size_t n,
                     json_t **ret)
{
	json_t *arr = json_array(), *row;
	int r = arr ? 0 : pg_oom(st);

	for (int i = 0; r == 0 && i < PQntuples(res); i++) {
		r = pg_row_to_json(st, res, i, 0, cols, n, &row);
		if (r == 0 && json_array_append_new(arr, row) < 0)
			r = pg_oom(st);
	}
	if (r < 0) {
		json_decref(arr);
		return r;
	}
	*ret = arr;
	return 0;
}

/* ---- pg_runs.c -------------------------------------------------------- */

void pg_wrote(struct store *st)
{
	pg_of(st)->generation++;
}
