/* sqlite_retention: pruning raw per-run data (retention.raw_days) in small
 * batches, so the main loop is never held for long by one DELETE, and
 * giving freed pages back with incremental vacuum instead of VACUUM.
 *
 * Which tables are "raw" is a naming convention, so a migration can add
 * one without touching this file: every table whose name starts with
 * `raw_` and that has a `run_id` column referencing runs(id). Summaries,
 * metrics, gate results and verdicts are never touched.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/store/sqlite/sqlite_internal.h"

#define RAW_TABLES_MAX 16
#define TABLE_NAME_MAX 64

/* The raw_* tables, by name. Names come from sqlite_master, are checked
 * to be plain identifiers, and only then pasted into SQL. */
static int raw_tables(struct store *st, char names[RAW_TABLES_MAX][TABLE_NAME_MAX + 1],
                      size_t *ret_n)
{
	sqlite3_stmt *s = NULL;
	size_t n = 0;
	int rc = sqlite3_prepare_v2(sqlite_db(st),
	                            "SELECT name FROM sqlite_master WHERE type = 'table' AND "
	                            "name LIKE 'raw\\_%' ESCAPE '\\' ORDER BY name",
	                            -1, &s, NULL);

	if (rc != SQLITE_OK)
		return sqlite_db_fail(st, rc, "list raw tables");
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && n < RAW_TABLES_MAX) {
		const char *name = (const char *)sqlite3_column_text(s, 0);

		if (!name || strlen(name) > TABLE_NAME_MAX ||
		    strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(name))
			continue;
		snprintf(names[n++], TABLE_NAME_MAX + 1, "%s", name);
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sqlite_db_fail(st, rc, "list raw tables");
	*ret_n = n;
	return 0;
}

static int prune_table(struct store *st, const char *table, int64_t before_ms, int batch)
{
	char sql[512];
	sqlite3_stmt *s = NULL;
	int rc;

	snprintf(sql, sizeof(sql),
	         "DELETE FROM %s WHERE rowid IN (SELECT x.rowid FROM %s x JOIN runs r ON "
	         "r.id = x.run_id WHERE r.finished_at IS NOT NULL AND r.finished_at < ?1 LIMIT ?2)",
	         table, table);
	rc = sqlite3_prepare_v2(sqlite_db(st), sql, -1, &s, NULL);
	if (rc != SQLITE_OK)
		return sqlite_db_fail(st, rc, "prune raw data");
	sqlite3_bind_int64(s, 1, before_ms);
	sqlite3_bind_int(s, 2, batch);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return sqlite_db_fail(st, rc, "prune raw data");
	return sqlite3_changes(sqlite_db(st));
}

int sqlite_prune_raw(struct store *st, int64_t before_ms, int batch)
{
	char names[RAW_TABLES_MAX][TABLE_NAME_MAX + 1];
	size_t n = 0;
	int total = 0, r;

	if (batch <= 0 || (r = raw_tables(st, names, &n)) < 0)
		return batch <= 0 ? -EINVAL : r;
	for (size_t i = 0; i < n && total < batch; i++) {
		r = prune_table(st, names[i], before_ms, batch - total);
		if (r < 0)
			return r;
		total += r;
	}
	/* Only a database created with auto_vacuum=INCREMENTAL gives pages
	 * back; on others this is a no-op (docs/operations.md). */
	if (total > 0 && sqlite3_exec(sqlite_db(st), "PRAGMA incremental_vacuum(256)", NULL, NULL,
	                              NULL) != SQLITE_OK)
		sqlite_set_errf(st, "incremental vacuum failed, ignoring");
	return total;
}
