"""Integration: `readyd --partition-metrics` on a PostgreSQL database that
already holds runs. With readyd stopped, the metrics table becomes a table
partitioned by run id; after a restart, trends, history and gates answer
the same bytes as before, new runs' metrics land in the new partition
(read through tableoid), a second conversion says it is already done, and
the running node makes the partition after the newest run's range by
itself. Needs READYD_TEST_PG_URL; skipped without it. The plans of the
trend queries on a large partitioned table are checked in test_pg_plans.
"""
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

SERVICE = 'part-api'
RANGE = 1_000_000  # STORE_PARTITION_RUNS


def spec(url, version, environment='test'):
    return f"""apiVersion: readyd/v1
service: {SERVICE}
version: "{version}"
environment: {environment}
timeout: 2m
probes:
  - name: predict
    type: http
    url: {url}/v1/predict
    timeout: 5s
gates:
  - "predict.latency_ms < 1000"
"""


ANSWERS = [
    '/v1/gates',
    '/v1/services/%s/history' % SERVICE,
    '/v1/services/%s/history?environment=test&limit=2' % SERVICE,
    '/v1/services/%s/trends?metric=predict.latency_ms&environment=test' % SERVICE,
    '/v1/services/%s/trends?metric=predict.latency_ms' % SERVICE,
    '/v1/services/%s/trends?metric=predict.latency_ms&environment=test&step=1h' % SERVICE,
    '/v1/services/%s/trends?metric=predict.status&environment=prod' % SERVICE,
]


# The way back to one table, as docs/scale-out.md gives it.
UNDO = """
BEGIN;
ALTER TABLE metrics RENAME TO metrics_partitioned;
ALTER INDEX metrics_pkey RENAME TO metrics_partitioned_pkey;
ALTER INDEX metrics_trend RENAME TO metrics_partitioned_trend;
ALTER INDEX metrics_trend_any RENAME TO metrics_partitioned_trend_any;
CREATE TABLE metrics (LIKE metrics_partitioned,
    PRIMARY KEY (run_id, probe, metric),
    CONSTRAINT metrics_run_id_fkey FOREIGN KEY (run_id)
        REFERENCES runs (id) ON DELETE CASCADE);
INSERT INTO metrics SELECT * FROM metrics_partitioned;
CREATE INDEX metrics_trend ON metrics (service, probe, metric, environment, ts, run_id)
    INCLUDE (value);
CREATE INDEX metrics_trend_any ON metrics (service, probe, metric, ts, run_id)
    INCLUDE (value, environment);
DROP TABLE metrics_partitioned;
COMMIT;
"""


def partition_metrics(db):
    return subprocess.run([lib.READYD_BIN, '--db', db, '--partition-metrics'],
                          capture_output=True, text=True, timeout=120)


class PartitionTest(lib.TestCase):
    @classmethod
    def setUpClass(cls):
        if not lib.PG_URL:
            if os.environ.get('READYD_REQUIRE_PG') == '1':
                raise RuntimeError('READYD_REQUIRE_PG=1 but READYD_TEST_PG_URL is not set')
            raise unittest.SkipTest('no PostgreSQL (READYD_TEST_PG_URL unset)')

    def partitions(self, d):
        return sorted(r[0] for r in d.select(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'metrics'::regclass"))

    def test_convert_with_runs_then_keep_partitions_ahead(self):
        db = lib.pg_create_database()
        try:
            self.convert_and_check(db)
        finally:
            lib.pg_drop_database(db)

    def convert_and_check(self, db):
        with lib.DemoTarget(latency='5ms') as t, lib.Daemon(db=db) as d:
            self.track(d)
            runs = [d.run_spec(spec(t.url, '1.%d' % i, env))
                    for i, env in enumerate(('test', 'test', 'prod', 'test'))]
            self.assertTrue(all(r['verdict'] == 'PASS' for r in runs), runs)
            before = {p: d.get(p).body for p in ANSWERS}
            for p, body in before.items():
                self.assertIn(SERVICE.encode(), body, p)
            d.stop()

            plain = d.select("SELECT relkind FROM pg_class WHERE relname = 'metrics'")
            self.assertEqual(plain, [('r',)])
            rows = d.select('SELECT count(*) FROM metrics')[0][0]
            self.assertGreater(rows, 0)
            top = max(r['id'] for r in runs)

            p = partition_metrics(db)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn('partitioned: runs below %d' % (top + 1), p.stdout)
            again = partition_metrics(db)
            self.assertEqual(again.returncode, 0, again.stderr)
            self.assertIn('already partitioned', again.stdout)

            self.assertEqual(d.select("SELECT relkind FROM pg_class WHERE relname = 'metrics'"),
                             [('p',)])
            old, first = 'metrics_before_%d' % (top + 1), 'metrics_from_%d' % (top + 1)
            self.assertEqual(self.partitions(d),
                             sorted([old, first, 'metrics_from_%d' % RANGE, 'metrics_default']))
            # Every row kept, all in the old table, which kept its indexes
            # (attached to the partitioned table's, not built again).
            self.assertEqual(d.select('SELECT tableoid::regclass::text, count(*) FROM metrics '
                                      'GROUP BY 1'), [(old, rows)])
            self.assertEqual(sorted(r[0] for r in d.select(
                "SELECT indexrelid::regclass::text FROM pg_index "
                "WHERE indrelid = '%s'::regclass" % old)),
                sorted([old + '_pkey', old + '_trend', old + '_trend_any']))
            # Its key and foreign key became the partitioned table's (no
            # second foreign key to check against runs).
            self.assertEqual(d.select(
                "SELECT conname, contype, conparentid <> 0 FROM pg_constraint "
                "WHERE conrelid = '%s'::regclass ORDER BY conname" % old),
                [(old + '_pkey', 'p', 't'), (old + '_run_id_fkey', 'f', 't')])

            d.start()
            for path, body in before.items():
                self.assertEqual(d.get(path).body, body, path)

            new = d.run_spec(spec(t.url, '2.0'))
            self.assertEqual(new['verdict'], 'PASS', new)
            self.assertEqual(d.select('SELECT DISTINCT tableoid::regclass::text FROM metrics '
                                      'WHERE run_id = ?', (new['id'],)), [(first,)])
            trend = d.get(ANSWERS[3]).json
            self.assertEqual([p['run_id'] for p in trend['points']][-1:] +
                             [len(trend['points'])],
                             [new['id'], 4])

            # A run id in the next range (as a year of runs would bring):
            # the running node makes the partition after it within a few
            # health checks, and a new run's rows land in the range's
            # partition, never the default one.
            far = RANGE + RANGE // 2
            d.insert_rows('runs', ('id', 'service', 'version', 'environment', 'state',
                                   'verdict', 'spec', 'created_at', 'started_at',
                                   'finished_at'),
                          [(far, 'other', '1', 'test', 'passed', 'PASS', '{}', 1, 1, 2)])
            want = 'metrics_from_%d' % (2 * RANGE)
            deadline = time.monotonic() + 20
            while want not in self.partitions(d) and time.monotonic() < deadline:
                time.sleep(0.2)
            self.assertIn(want, self.partitions(d))
            newer = d.run_spec(spec(t.url, '3.0'))
            self.assertGreater(newer['id'], far)
            self.assertEqual(d.select('SELECT DISTINCT tableoid::regclass::text FROM metrics '
                                      'WHERE run_id = ?', (newer['id'],)),
                             [('metrics_from_%d' % RANGE,)])
            self.assertEqual(d.select('SELECT count(*) FROM metrics_default'), [(0,)])

            # Undone as documented: one plain table with 0001's names,
            # the same rows, the same answers.
            after = {p: d.get(p).body for p in ANSWERS}
            rows = d.select('SELECT count(*) FROM metrics')[0][0]
            d.stop()
            lib.psql(db, UNDO)
            self.assertEqual(d.select("SELECT relkind FROM pg_class WHERE relname = 'metrics'"),
                             [('r',)])
            self.assertEqual(sorted(r[0] for r in d.select(
                "SELECT conname FROM pg_constraint WHERE conrelid = 'metrics'::regclass")),
                ['metrics_pkey', 'metrics_run_id_fkey'])
            self.assertEqual(d.select('SELECT count(*) FROM metrics'), [(rows,)])
            d.start()
            for path, body in after.items():
                self.assertEqual(d.get(path).body, body, path)
            self.assertEqual(d.run_spec(spec(t.url, '4.0'))['verdict'], 'PASS')


if __name__ == '__main__':
    lib.main()
