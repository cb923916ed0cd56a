/* pg_specs: stored specs on PostgreSQL (stored_specs of
 * migrations/postgresql/0001_init.sql): the spec a service is gated with
 * in one environment, one row per version, numbered 1, 2, 3... per
 * service and environment. The rows are kept as sent; what a run is built
 * from and who may read them is the API's business.
 *
 * Several nodes may put at once: the next number is taken and inserted in
 * one statement, and the primary key settles a race (see spec_insert).
 */
#include <errno.h>
#include <string.h>

#include "lib/store/pg/pg_internal.h"
#include "lib/util/util.h"

#define SPECS_LIST_MAX 10000 /* rows one list reads */
#define SPEC_PUT_TRIES 16    /* a put losing this many races in a row gives up */

static bool spec_new_valid(const struct store_spec_new *s)
{
	json_t *doc;
	bool ok;

	if (!s || !s->service || !s->environment || !s->format || !s->text || !s->doc_json ||
	    s->created_at <= 0 ||
	    (strcmp(s->format, "yaml") != 0 && strcmp(s->format, "json") != 0))
		return false;
	doc = json_loads(s->doc_json, 0, NULL);
	ok = json_is_object(doc);
	json_decref(doc);
	return ok;
}

/* Inserts s as 1 + the highest version so far, in one statement (its own
 * transaction, or a part of the caller's). A put that raced another to
 * the same number waits for it (the primary key), then finds its row:
 * DO NOTHING leaves no error and no aborted transaction, and *ret stays 0
 * so the caller tries again with a fresh snapshot (READ COMMITTED takes
 * one per statement) that sees the winner's version. */
static int spec_insert(struct store *st, const struct store_spec_new *s, int64_t *ret)
{
	static const char sql[] =
	        "INSERT INTO stored_specs (service, environment, version, "
	        "format, text, doc, created_by, created_at) "
	        "SELECT $1::text, $2::text, COALESCE(MAX(version), 0) + 1, $3::text, "
	        "$4::text, $5::text, $6::text, $7::bigint "
	        "FROM stored_specs WHERE service = $1 AND environment = $2 "
	        "ON CONFLICT (service, environment, version) DO NOTHING "
	        "RETURNING version";
	struct pg_num at;
	const char *params[] = {s->service,
	                        s->environment,
	                        s->format,
	                        s->text,
	                        s->doc_json,
	                        s->created_by,
	                        pg_i64(&at, s->created_at)};
	PGresult *res = NULL;
	int r = pg_exec(st, sql, 7, params, &res, "store a spec");

	if (r < 0)
		return r;
	*ret = PQntuples(res) == 1 ? pg_get_i64(res, 0, 0) : 0;
	PQclear(res);
	return 0;
}

int pg_spec_put(struct store *st, const struct store_spec_new *s, int64_t *ret_version)
{
	int64_t version = 0;
	int r = 0;

	if (!spec_new_valid(s)) {
		pg_set_errf(st, "Failed to store a spec: service, environment, format (yaml or "
		                "json), text, a JSON object and the creation time are required");
		return -EINVAL;
	}
	for (int i = 0; r == 0 && version == 0 && i < SPEC_PUT_TRIES; i++)
		r = spec_insert(st, s, &version);
	if (r < 0)
		return r;
	if (version == 0) {
		pg_set_errf(st, "Failed to store a spec: %d other puts to %s in %s came first",
		            SPEC_PUT_TRIES, s->service, s->environment);
		return -EBUSY;
	}
	*ret_version = version;
	return 0;
}

int pg_spec_get(struct store *st, const char *service, const char *environment, int64_t version,
                json_t **ret_spec)
{
	static const struct store_col cols[] = {
	        {"service", COL_TEXT, true},     {"environment", COL_TEXT, true},
	        {"version", COL_INT, true},      {"format", COL_TEXT, true},
	        {"text", COL_TEXT, true},        {"spec", COL_JSON, true},
	        {"created_by", COL_TEXT, false}, {"created_at", COL_TIME, true},
	};
	/* $3 = 0 picks the latest: the primary key walked backwards. */
	static const char sql[] =
	        "SELECT service, environment, version, format, text, doc, "
	        "created_by, created_at FROM stored_specs "
	        "WHERE service = $1 AND environment = $2 "
	        "AND ($3::bigint = 0 OR version = $3::bigint) ORDER BY version DESC LIMIT 1";
	struct pg_num v;
	const char *params[] = {service, environment, pg_i64(&v, version)};
	PGresult *res = NULL;
	int r;

	if (!service || !environment || version < 0) {
		pg_set_errf(st, "Failed to read a stored spec: service and environment "
		                "are required");
		return -EINVAL;
	}
	r = pg_exec(st, sql, 3, params, &res, "read a stored spec");
	if (r < 0)
		return r;
	if (PQntuples(res) == 0) {
		pg_set_errf(st, "no stored spec for %s in %s", service, environment);
		r = -ENOENT;
	} else {
		r = pg_row_to_json(st, res, 0, 0, cols, RD_ARRAY_SIZE(cols), ret_spec);
	}
	PQclear(res);
	return r;
}

/* Appends {version, created_by, created_at} of row i to the entry of its
 * environment, the last item of items or a new one. */
static int list_add(struct store *st, const PGresult *res, int i, json_t *items)
{
	static const struct store_col cols[] = {
	        {"version", COL_INT, true},
	        {"created_by", COL_TEXT, false},
	        {"created_at", COL_TIME, true},
	};
	const char *env = pg_get_text(res, i, 0);
	json_t *last = json_array_get(items, json_array_size(items) - 1), *v;
	int r;

	if (!last || strcmp(json_string_value(json_object_get(last, "environment")), env) != 0) {
		last = json_pack("{s:s, s:I, s:[]}", "environment", env, "latest",
		                 (json_int_t)pg_get_i64(res, i, 1), "versions");
		if (!last || json_array_append_new(items, last) < 0)
			return pg_oom(st);
	}
	r = pg_row_to_json(st, res, i, 1, cols, RD_ARRAY_SIZE(cols), &v);
	if (r == 0 && json_array_append_new(json_object_get(last, "versions"), v) < 0)
		r = pg_oom(st);
	return r;
}

int pg_specs_list(struct store *st, const char *service, json_t **ret_items)
{
	/* Environments in byte order, as SQLite sorts them, whatever the
	 * database's collation. */
	static const char sql[] = "SELECT environment, version, created_by, created_at "
	                          "FROM stored_specs WHERE service = $1 "
	                          "ORDER BY environment COLLATE \"C\", version DESC LIMIT $2";
	struct pg_num max;
	const char *params[] = {service, pg_i64(&max, SPECS_LIST_MAX)};
	PGresult *res = NULL;
	json_t *items;
	int r = pg_exec(st, sql, 2, params, &res, "list stored specs");

	if (r < 0)
		return r;
	items = json_array();
	r = items ? 0 : pg_oom(st);
	for (int i = 0; r == 0 && i < PQntuples(res); i++)
		r = list_add(st, res, i, items);
	PQclear(res);
	if (r < 0) {
		json_decref(items);
		return r;
	}
	*ret_items = items;
	return 0;
}
