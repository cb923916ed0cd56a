"""Integration: the plans PostgreSQL chooses for the queries dashboards and
SREs poll, at 100,000 runs and 1,000,000 metric rows, on a private cluster
this file starts (scripts/pg-cluster).

readyd's own queries are explained, not copies of them: the database is
set to load auto_explain into every session (as the cluster's superuser),
so each statement the daemon runs is logged with its plan as JSON in the
server's log. The test seeds the rows with SQL (generate_series), runs
ANALYZE, then asks each endpoint several shapes of question and reads the
plans logged meanwhile: none may read the runs or metrics table whole (a
Seq Scan), and none may sort more rows than a page holds; the trend and
gates answers must come from the indexes the migrations made
(metrics_trend, metrics_trend_any, runs_decided).

The same questions are then asked again after `readyd --partition-metrics`
turned metrics into a table partitioned by run id: the seeded rows are one
partition (metrics_before_N), and its copies of the trend indexes must
answer (no Seq Scan of it either); the empty new partitions may be read
any way.

Seeding 1M rows takes about 10-20 s on a 2-core machine; the conversion
and the checks are a few seconds each.
"""
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PG_CLUSTER = os.environ.get('PG_CLUSTER',
                            os.path.join(HERE, '..', '..', 'scripts', 'pg-cluster'))
RUNS = 100_000
METRICS_PER_RUN = 10
SERVICES = 50
T_END = 1_795_700_402_114  # 2026-11-26T13:40:02Z
# Sorting more than a page (or the buckets of one answer) is the sign of
# a plan that read a whole series to answer part of it.
SORT_ROWS_MAX = 2_500

SEED = """
INSERT INTO runs (id, service, version, environment, state, verdict, spec, created_at,
                  started_at, finished_at)
SELECT i, 'svc-' || lpad((i %% %(services)d)::text, 2, '0'), '1.' || i,
       CASE WHEN (i / %(services)d) %% 2 = 0 THEN 'staging' ELSE 'prod' END,
       CASE WHEN i %% 7 = 0 THEN 'failed' ELSE 'passed' END,
       CASE WHEN i %% 7 = 0 THEN 'FAIL' ELSE 'PASS' END, '{}',
       %(t0)d + i * 300000::bigint, %(t0)d + i * 300000::bigint,
       %(t0)d + i * 300000::bigint + 60000
FROM generate_series(1, %(runs)d) AS i;
SELECT setval(pg_get_serial_sequence('runs', 'id'), %(runs)d);
INSERT INTO metrics (run_id, service, environment, probe, metric, value, ts)
SELECT r.id, r.service, r.environment, 'latency', m.name, (r.id %% 1000) / 10.0 + m.k,
       r.finished_at
FROM runs r CROSS JOIN (SELECT k, 'p' || k || '_ms' AS name
                        FROM generate_series(1, %(per)d) AS k) m;
ANALYZE;
"""


def explained(log_text):
    """The JSON plans auto_explain wrote in log_text, with their query."""
    out, dec = [], json.JSONDecoder()
    pos = 0
    while True:
        at = log_text.find('duration:', pos)
        if at < 0:
            return out
        brace = log_text.find('{', at)
        if brace < 0:
            return out
        try:
            obj, end = dec.raw_decode(log_text, brace)
        except ValueError:
            pos = brace + 1
            continue
        if isinstance(obj, dict) and 'Plan' in obj:
            out.append(obj)
        pos = end


def nodes(plan, parent=None):
    """(node, its parent) for every node of a plan."""
    yield plan, parent
    for child in plan.get('Plans', []):
        yield from nodes(child, plan)


class PlansTest(lib.TestCase):
    @classmethod
    def setUpClass(cls):
        if lib.BACKEND != 'postgresql' and not os.environ.get('READYD_TEST_PG_URL'):
            if os.environ.get('READYD_REQUIRE_PG') != '1':
                raise unittest.SkipTest('no PostgreSQL (READYD_TEST_PG_URL unset)')
        cls.tmp = tempfile.mkdtemp(prefix='readyd-plans-')
        cls.dir = os.path.join(cls.tmp, 'pg')
        r = subprocess.run([PG_CLUSTER, 'start', cls.dir], capture_output=True, text=True,
                           timeout=120)
        if r.returncode != 0:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise RuntimeError('no PostgreSQL cluster: %s' % r.stderr.strip())
        atexit.register(cls.remove_cluster)
        base = r.stdout.strip()
        cls.url = lib.pg_create_database(base)
        db = urllib.parse.urlsplit(cls.url).path.lstrip('/')
        su = urllib.parse.urlsplit(base)._replace(netloc='postgres@' +
                                                  urllib.parse.urlsplit(base).hostname +
                                                  ':%d' % urllib.parse.urlsplit(base).port)
        cls.su_url = lib.pg_database_url(urllib.parse.urlunsplit(su), db)
        cls.log = cls.server_log()

    @classmethod
    def server_log(cls):
        for p in (os.path.join(cls.dir, 'server.log'),
                  os.path.join(cls.dir, 'home', 'server.log')):
            if os.path.exists(p):
                return p
        raise RuntimeError('no server.log under %s' % cls.dir)

    @classmethod
    def remove_cluster(cls):
        subprocess.run([PG_CLUSTER, 'stop', cls.dir, '--remove'], timeout=120)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def tearDownClass(cls):
        cls.remove_cluster()

    def seed(self):
        with lib.Daemon(db=self.url) as d:  # migrates the empty database
            self.assertEqual(d.get('/healthz').status, 200)
        t = time.monotonic()
        lib.psql(self.url, SEED % dict(services=SERVICES, runs=RUNS, per=METRICS_PER_RUN,
                                        t0=T_END - RUNS * 300000), timeout=600)
        print('\nseeded %d runs, %d metric rows in %.1f s' % (RUNS, RUNS * METRICS_PER_RUN,
                                                           time.monotonic() - t))
        for sql in ("ALTER DATABASE %s SET session_preload_libraries = 'auto_explain'",
                    "ALTER DATABASE %s SET auto_explain.log_min_duration = 0",
                    "ALTER DATABASE %s SET auto_explain.log_format = 'json'"):
            lib.psql(self.su_url, sql % urllib.parse.urlsplit(self.url).path.lstrip('/'))

    def plans_of(self, d, path):
        """The plans logged while readyd answered path (200 required)."""
        with open(self.log, encoding='utf-8', errors='replace') as f:
            f.seek(0, os.SEEK_END)
            start = f.tell()
        r = d.get(path)
        self.assertEqual(r.status, 200, (path, r))
        with open(self.log, encoding='utf-8', errors='replace') as f:
            f.seek(start)
            plans = explained(f.read())
        self.assertTrue(plans, 'no plan logged for %s' % path)
        return plans

    def check(self, path, plans, want_index=None):
        used = set()
        for p in plans:
            for n, parent in nodes(p['Plan']):
                rel = n.get('Relation Name') or ''
                whole = rel in ('runs', 'metrics') or rel.startswith('metrics_before_')
                self.assertFalse(n['Node Type'] == 'Seq Scan' and whole,
                                 '%s: reads %s whole:\n%s' % (path, rel, p['Query Text']))
                # A sort under a Limit is a top-N: it keeps the limit's
                # rows, whatever the estimate of its input.
                if n['Node Type'] == 'Sort' and (parent or {}).get('Node Type') != 'Limit':
                    self.assertLessEqual(n['Plan Rows'], SORT_ROWS_MAX,
                                         '%s: sorts %d rows:\n%s' % (path, n['Plan Rows'],
                                                                     p['Query Text']))
                if n.get('Index Name'):
                    used.add(n['Index Name'])
        if want_index:
            self.assertIn(want_index, used, '%s used %s' % (path, sorted(used)))
        print('%s: %d statements, indexes %s' % (path, len(plans), ', '.join(sorted(used))))

    def test_polled_queries_use_their_indexes(self):
        self.seed()
        rows = int(lib.psql(self.url, 'SELECT count(*) FROM metrics').strip())
        self.assertEqual(rows, RUNS * METRICS_PER_RUN)
        trend = '/v1/services/svc-07/trends?metric=latency.p5_ms'
        shapes = [
            ('/v1/gates', 'runs_decided'),
            ('/v1/services/svc-07/history?limit=50', None),
            ('/v1/services/svc-07/history?environment=prod&limit=50', 'runs_by_service'),
            ('/v1/runs?service=svc-07&limit=50', None),
            (trend + '&environment=prod&limit=500', 'metrics_trend'),
            (trend + '&limit=100', 'metrics_trend_any'),
            (trend + '&environment=prod&since=2026-10-27T13:40:02Z', 'metrics_trend'),
            (trend + '&environment=prod&step=1d', 'metrics_trend'),
            (trend + '&step=1h', None),
        ]
        with lib.Daemon(db=self.url) as d:
            for path, index in shapes:
                self.check(path, self.plans_of(d, path), index)
            # Stopped here: the check of every run's JUnit report at the
            # end of the block would read the 100,000 seeded runs.
            d.stop()

        t = time.monotonic()
        p = subprocess.run([lib.READYD_BIN, '--db', self.url, '--partition-metrics'],
                           capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, 0, p.stderr)
        print('partitioned %d metric rows in %.1f s' % (rows, time.monotonic() - t))
        lib.psql(self.url, 'ANALYZE', timeout=600)
        old = 'metrics_before_%d' % (RUNS + 1)
        with lib.Daemon(db=self.url) as d:
            for path, index in shapes:
                if index and index.startswith('metrics_'):
                    index = old + index[len('metrics'):]
                self.check(path, self.plans_of(d, path), index)
            d.stop()


if __name__ == '__main__':
    lib.main()
