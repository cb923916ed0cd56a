/* pg_partition: the metrics table partitioned by run id, as an operator's
 * one-off conversion (readyd --partition-metrics), and partitions kept
 * ahead of new runs by every node's health timer.
 *
 * Run ids only grow, so a range of run ids is a range of time, and the
 * partition key is the first column of the primary key (run_id, probe,
 * metric): the upsert of pg_runs.c and both trend indexes work unchanged
 * on the partitioned table. The layout after the conversion:
 *
 *   metrics_before_<N>   every row of the table before the conversion
 *                        (run ids below N = the highest run id then + 1)
 *   metrics_from_<lo>    run ids lo .. the next multiple of
 *                        PG_PARTITION_RUNS, then one partition per
 *                        PG_PARTITION_RUNS run ids
 *   metrics_default      anything else (empty unless a partition was
 *                        missing), so an insert never fails for want of
 *                        a partition
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/store/pg/pg_internal.h"

/* The same key as pg.c's migrations: a conversion never runs alongside a
 * migration or another conversion. */
#define PG_MIGRATE_LOCK "7450023610432356609"
/* A node waits this long for the locks a new partition needs (on the
 * parent and the default partition) before trying again at its next
 * health check: a long trend read never holds the loop up. */
#define PG_PARTITION_LOCK_WAIT_MS 200

static int read_i64(struct store *st, const char *sql, const char *what, int64_t *ret)
{
	PGresult *res = NULL;
	int r = pg_exec(st, sql, 0, NULL, &res, what);

	if (r < 0)
		return r;
	*ret = PQntuples(res) ? pg_get_i64(res, 0, 0) : 0;
	PQclear(res);
	return 0;
}

int pg_metrics_partitioned(struct store *st, bool *ret)
{
	int64_t n = 0;
	int r = read_i64(st,
	                 "SELECT count(*) FROM pg_partitioned_table "
	                 "WHERE partrelid = to_regclass('metrics')",
	                 "read the metrics table's layout", &n);

	if (r == 0)
		*ret = n > 0;
	return r;
}

/* The next multiple of PG_PARTITION_RUNS above id. */
static int64_t range_end(int64_t id)
{
	return (id / PG_PARTITION_RUNS + 1) * PG_PARTITION_RUNS;
}

/* The partition of run ids [lo, hi), unless a table of its name exists. */
static int partition_create(struct store *st, int64_t lo, int64_t hi)
{
	char sql[320];

	snprintf(sql, sizeof(sql),
	         "CREATE TABLE IF NOT EXISTS metrics_from_%lld PARTITION OF metrics "
	         "FOR VALUES FROM (%lld) TO (%lld)",
	         (long long)lo, (long long)lo, (long long)hi);
	return pg_exec(st, sql, 0, NULL, NULL, "create a partition of metrics");
}

/* The statements of the conversion, after the lock and the checks: the
 * old table renamed with its indexes and constraints (the partitioned
 * table takes their names), the partitioned table made as 0001 made the
 * plain one, and the old table attached. The CHECK constraint, valid
 * before the ATTACH, spares the ATTACH a second scan of the table. */
static int convert(struct store *st, int64_t upto)
{
	char sql[512];
	int r = 0;
	long long n = (long long)upto;

/* One statement, its format a literal (the old table's name has n in
 * it), after the previous one succeeded. */
#define STEP(fmt)                                                                                  \
	do {                                                                                       \
		if (r == 0) {                                                                      \
			snprintf(sql, sizeof(sql), fmt, n);                                        \
			r = pg_exec(st, sql, 0, NULL, NULL, "partition the metrics table");        \
		}                                                                                  \
	} while (0)

/* One statement without n. */
#define PLAIN(stmt)                                                                                \
	do {                                                                                       \
		if (r == 0)                                                                        \
			r = pg_exec(st, stmt, 0, NULL, NULL, "partition the metrics table");       \
	} while (0)

	STEP("ALTER TABLE metrics RENAME TO metrics_before_%1$lld");
	STEP("ALTER TABLE metrics_before_%1$lld RENAME CONSTRAINT metrics_pkey "
	     "TO metrics_before_%1$lld_pkey");
	STEP("ALTER TABLE metrics_before_%1$lld RENAME CONSTRAINT metrics_run_id_fkey "
	     "TO metrics_before_%1$lld_run_id_fkey");
	STEP("ALTER INDEX metrics_trend RENAME TO metrics_before_%1$lld_trend");
	STEP("ALTER INDEX metrics_trend_any RENAME TO metrics_before_%1$lld_trend_any");
	PLAIN("CREATE TABLE metrics ("
	      " run_id BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,"
	      " service TEXT NOT NULL, environment TEXT NOT NULL, probe TEXT NOT NULL,"
	      " metric TEXT NOT NULL, value DOUBLE PRECISION, ts BIGINT NOT NULL,"
	      " PRIMARY KEY (run_id, probe, metric)) PARTITION BY RANGE (run_id)");
	PLAIN("CREATE INDEX metrics_trend ON metrics "
	      "(service, probe, metric, environment, ts, run_id) INCLUDE (value)");
	PLAIN("CREATE INDEX metrics_trend_any ON metrics "
	      "(service, probe, metric, ts, run_id) INCLUDE (value, environment)");
	STEP("ALTER TABLE metrics_before_%1$lld ADD CONSTRAINT metrics_before_%1$lld_range "
	     "CHECK (run_id < %1$lld)");
	STEP("ALTER TABLE metrics ATTACH PARTITION metrics_before_%1$lld "
	     "FOR VALUES FROM (MINVALUE) TO (%1$lld)");
	STEP("ALTER TABLE metrics_before_%1$lld DROP CONSTRAINT metrics_before_%1$lld_range");
	PLAIN("CREATE TABLE metrics_default PARTITION OF metrics DEFAULT");
#undef STEP
#undef PLAIN
	/* Run ids from upto to the end of its range (none when upto starts
	 * a range), and the whole range after. */
	if (r == 0 && upto < range_end(upto - 1))
		r = partition_create(st, upto, range_end(upto - 1));
	if (r == 0)
		r = partition_create(st, range_end(upto - 1),
		                     range_end(upto - 1) + PG_PARTITION_RUNS);
	return r;
}

int pg_partition_metrics(struct store *st, int64_t *ret_upto)
{
	struct pg_store *pg = pg_of(st);
	int saved = pg->deadline_ms;
	bool done = false;
	int64_t top = 0;
	int r;

	/* One scan of the table (the CHECK constraint) under an exclusive
	 * lock: this may take minutes on a large table, not the loop's
	 * deadline. */
	pg->deadline_ms = 24 * 3600 * 1000;
	r = pg_tx_begin(st, true);
	if (r == 0)
		r = pg_exec(st, "SET LOCAL statement_timeout = 0", 0, NULL, NULL,
		            "configure the session");
	if (r == 0)
		r = pg_exec(st, "SELECT pg_advisory_xact_lock(" PG_MIGRATE_LOCK ")", 0, NULL, NULL,
		            "lock the schema");
	if (r == 0)
		r = pg_metrics_partitioned(st, &done);
	if (r == 0 && !done)
		r = pg_exec(st, "LOCK TABLE metrics IN ACCESS EXCLUSIVE MODE", 0, NULL, NULL,
		            "lock the metrics table");
	/* Every row of metrics now belongs to a committed run: the newest
	 * run's id bounds them. Runs created from here on land in the new
	 * partitions. */
	if (r == 0 && !done)
		r = read_i64(st, "SELECT COALESCE(max(id), 0) FROM runs", "read the newest run",
		             &top);
	if (r == 0 && !done)
		r = convert(st, top + 1);
	r = pg_tx_end(st, r);
	pg->deadline_ms = saved;
	if (r < 0)
		return r;
	pg->metrics_partitioned = true;
	if (done)
		return 1;
	pg->partitions_upto = range_end(top);
	if (ret_upto)
		*ret_upto = top + 1;
	return 0;
}

/* The health timer's part (pg_check_file): a partition for the range
 * after the newest run's, made once per range. Failures (a lock not had
 * in time, another node making the same partition) are left for the
 * next check: until then the current partition or the default one takes
 * the rows. */
void pg_partitions_ahead(struct store *st)
{
	struct pg_store *pg = pg_of(st);
	int64_t top = 0, lo;
	char sql[400];

	if (!pg->metrics_partitioned || pg->readonly ||
	    read_i64(st, "SELECT COALESCE(max(id), 0) FROM runs", "read the newest run", &top) < 0)
		return;
	lo = range_end(top);
	if (lo <= pg->partitions_upto)
		return;
	snprintf(sql, sizeof(sql),
	         "SET LOCAL lock_timeout = %d; "
	         "CREATE TABLE IF NOT EXISTS metrics_from_%lld PARTITION OF metrics "
	         "FOR VALUES FROM (%lld) TO (%lld)",
	         PG_PARTITION_LOCK_WAIT_MS, (long long)lo, (long long)lo,
	         (long long)(lo + PG_PARTITION_RUNS));
	if (pg_exec(st, sql, 0, NULL, NULL, "create a partition of metrics") == 0)
		pg->partitions_upto = lo;
}
