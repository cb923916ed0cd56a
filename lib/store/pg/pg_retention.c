/* pg_retention: pruning raw per-run data (retention.raw_days) on
 * PostgreSQL in small batches, so no DELETE holds the loop's connection
 * (or row locks) for long.
 *
 * Which tables are "raw" is a naming convention, as on SQLite: every
 * table of the store's schema whose name starts with `raw_` and that has
 * a `run_id` column referencing runs(id). Summaries, metrics, gate
 * results and verdicts are never touched.
 *
 * There is no counterpart to SQLite's incremental vacuum: autovacuum marks
 * the deleted rows' space free for new rows of the same table, which is
 * what a store that keeps writing needs; the files barely shrink (only
 * VACUUM FULL gives everything back, under a lock no running readyd
 * should wait on).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/store/pg/pg_internal.h"

#define RAW_TABLES_MAX 16
#define TABLE_NAME_MAX 63 /* NAMEDATALEN - 1 */

/* The raw_* tables the search path finds, by name. Names are checked to
 * be plain identifiers, and only then pasted into SQL. */
static int raw_tables(struct store *st, char names[RAW_TABLES_MAX][TABLE_NAME_MAX + 1],
                      size_t *ret_n)
{
	static const char sql[] = "SELECT c.relname FROM pg_class c JOIN pg_attribute a "
	                          "ON a.attrelid = c.oid AND a.attname = 'run_id' "
	                          "AND NOT a.attisdropped WHERE c.relkind IN ('r', 'p') "
	                          "AND c.relname LIKE 'raw\\_%' AND pg_table_is_visible(c.oid) "
	                          "ORDER BY c.relname COLLATE \"C\"";
	PGresult *res = NULL;
	size_t n = 0;
	int r = pg_exec(st, sql, 0, NULL, &res, "list raw tables");

	if (r < 0)
		return r;
	for (int i = 0; i < PQntuples(res) && n < RAW_TABLES_MAX; i++) {
		const char *name = pg_get_text(res, i, 0);

		if (!name || strlen(name) > TABLE_NAME_MAX ||
		    strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(name))
			continue;
		snprintf(names[n++], TABLE_NAME_MAX + 1, "%s", name);
	}
	PQclear(res);
	*ret_n = n;
	return 0;
}

/* Deletes up to batch rows of table whose run finished before before_ms,
 * addressed by ctid (raw tables have no common key); returns the count.
 *
 * The walk starts from runs, not from the raw table: most ticks find
 * nothing to prune, and a join the planner is free to shape scans the
 * whole raw table for that (dozens of rows per run, a timeline a second).
 * So runs from the oldest one with raw rows left (the raw table's primary
 * key leads with run_id: one index probe) are read, each probing the raw
 * table's key; OFFSET 0 keeps the planner from flattening the probe back
 * into a join. 50,000 runs, 300,000 timeline rows, nothing to prune:
 * 8 ms, against 140 ms for the scan. */
static int prune_table(struct store *st, const char *table, int64_t before_ms, int batch)
{
	struct pg_num before, limit;
	const char *params[] = {pg_i64(&before, before_ms), pg_i64(&limit, batch)};
	char sql[640];
	PGresult *res = NULL;
	int64_t n;
	int r;

	snprintf(sql, sizeof(sql),
	         "DELETE FROM %s WHERE ctid = ANY(ARRAY(SELECT x.ctid FROM runs r "
	         "CROSS JOIN LATERAL (SELECT y.ctid FROM %s y WHERE y.run_id = r.id OFFSET 0) x "
	         "WHERE r.id >= (SELECT min(run_id) FROM %s) AND r.finished_at < $1 LIMIT $2))",
	         table, table, table);
	r = pg_exec(st, sql, 2, params, &res, "prune raw data");
	if (r < 0)
		return r;
	n = pg_changed_rows(res);
	PQclear(res);
	return (int)n;
}

int pg_prune_raw(struct store *st, int64_t before_ms, int batch)
{
	char names[RAW_TABLES_MAX][TABLE_NAME_MAX + 1];
	size_t n = 0;
	int total = 0, r;

	if (batch <= 0) {
		pg_set_errf(st, "Failed to prune raw data: the batch must be positive");
		return -EINVAL;
	}
	r = raw_tables(st, names, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n && total < batch; i++) {
		r = prune_table(st, names[i], before_ms, batch - total);
		if (r < 0)
			return r;
		total += r;
	}
	return total;
}
