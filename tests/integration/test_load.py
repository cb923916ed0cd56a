"""Integration: the load engine through the real readyd (load and capacity
probes) and through readyd-load, against the demo target. Every expected
number comes from the demo target's own record of the delays it applied
(GET /admin/delays) or from arithmetic on its configuration, never from
timings of this machine. Runs are a few seconds each."""
import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

READYD_LOAD_BIN = os.environ.get('READYD_LOAD_BIN', 'build/cli/readyd-load')


def spec(url, probe, gates='', timeout='5m'):
    return f"""apiVersion: readyd/v1
service: load-test
version: 1.0.0
environment: test
timeout: {timeout}
target:
  url: {url}/v1/predict
  timeout: 5s
probes:
{probe}
{gates}"""


def nearest_rank(sorted_values, p):
    """The nearest-rank percentile, as lib/hist defines it."""
    rank = max(1, math.ceil(round(p / 100.0 * len(sorted_values), 6)))
    return sorted_values[rank - 1]


def probe_of(run, name):
    return next(p for p in run['probes'] if p['name'] == name)


class LoadTest(lib.TestCase):
    @classmethod
    def setUpClass(cls):
        # ca_file must lie in a directory readyd.yaml allows.
        cls.files = tempfile.mkdtemp(prefix='readyd-load-files-')
        cls.d = lib.Daemon(config='allowed_paths: [%s]\n' % json.dumps(cls.files)).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)
        shutil.rmtree(cls.files, ignore_errors=True)

    def setUp(self):
        super().setUp()
        self.track(self.d)

    def demo(self, **flags):
        t = lib.DemoTarget(**flags).__enter__()
        self.addCleanup(t.__exit__, None, None, None)
        self.track(t)
        return t

    def transport_floor_ms(self, connections):
        """p50 of answers with no applied delay: what loopback, the demo
        target's HTTP stack and thread wake-ups add on this machine right
        now, which the server's own record of delays cannot include."""
        z = self.demo()
        out = subprocess.run([READYD_LOAD_BIN, '--json', '-c', str(connections), '-n', '2000',
                              z.url + '/v1/predict'], capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        return json.loads(out.stdout)['p50_ms']

    def test_closed_mode_matches_server_record_and_passes_gates(self):
        floor = self.transport_floor_ms(4)
        t = self.demo(latency='10ms:90,40ms:8,150ms:2')
        self.assertEqual(t.post('/admin/reset').status, 200)
        probe = """  - name: latency
    type: load
    mode: closed
    connections: 4
    duration: 5s
"""
        gates = """gates:
  - latency.p95_ms < 100
  - latency.error_rate < 0.01
"""
        run = self.d.run_spec(spec(t.url, probe, gates), timeout=60)
        self.assertEqual(run['state'], 'passed', run)
        self.assertEqual(run['verdict'], 'PASS', run)
        m = probe_of(run, 'latency')['metrics']
        rec = lib.http('GET', t.url + '/admin/delays').json
        self.assertFalse(rec['truncated'])
        delays = sorted(rec['delays_us'])
        self.assertEqual(m['errors'], 0)
        # Every request the server answered was measured, and no other.
        self.assertEqual(m['requests'], len(delays))
        for name, p in (('p50_ms', 50), ('p95_ms', 95), ('p99_ms', 99)):
            want = nearest_rank(delays, p) / 1000.0
            # The brief's tolerance (3% or 0.3 ms) on top of the transport
            # floor; on a quiet machine the floor is a few tens of us.
            tol = max(0.03 * want, 0.3) + floor
            self.assertLess(abs(m[name] - want), tol, '%s: readyd %.3f, server %.3f, floor %.3f'
                            % (name, m[name], want, floor))
        self.assertGreater(m['throughput_rps'], 0)
        details = probe_of(run, 'latency')['details']
        self.assertNotIn('histograms', details)  # stored as rows, not in the resource
        self.assertEqual(sum(s['requests'] for s in details['timeline']), m['requests'])
        self.assertEqual(sum(b[2] for b in details['buckets']), m['requests'])
        db = sqlite3.connect('file:%s?mode=ro' % self.d.db, uri=True)
        try:
            rows = dict(db.execute('SELECT name, data FROM raw_histograms WHERE run_id = ?',
                                   (run['id'],)).fetchall())
            tl = db.execute('SELECT SUM(requests) FROM raw_timelines WHERE run_id = ?',
                            (run['id'],)).fetchone()[0]
        finally:
            db.close()
        self.assertEqual(sorted(rows), ['failed', 'latency'])
        self.assertEqual(rows['latency'][:4], b'RDHG')
        self.assertEqual(tl, m['requests'])

    def test_rate_mode_stall_is_corrected(self):
        rate, seconds, stall = 200, 6, 1.0
        t = self.demo(stall_after='2s', stall_for='1s')
        probe = f"""  - name: stalled
    type: load
    mode: rate
    rate: {rate}
    connections: 4
    duration: {seconds}s
"""
        run = self.d.run_spec(spec(t.url, probe), timeout=60)
        self.assertEqual(run['state'], 'passed', run)
        m = probe_of(run, 'stalled')['metrics']
        n = m['requests']
        self.assertEqual(n, rate * seconds)
        self.assertEqual(m['errors'], 0)
        # Requests intended during the stall wait until it ends: their
        # latency falls evenly from `stall` to 0, rate per second. The
        # p99 sample has n - rank samples above it.
        rank = math.ceil(0.99 * n)
        analytic_ms = 1000.0 * (stall - (n - rank) / rate)
        self.assertLess(abs(m['p99_ms'] - analytic_ms), 0.15 * analytic_ms,
                        'corrected p99 %.1f ms, analytic %.1f ms' % (m['p99_ms'], analytic_ms))
        # From the actual send only the 4 requests held by the server see
        # the stall; the others were sent after it.
        self.assertLess(m['p99_ms_uncorrected'], 100)
        self.assertGreater(m['max_ms_uncorrected'], 500)
        self.assertGreater(m['schedule_lag_max_ms'], 500)

    def test_capacity_finds_saturation(self):
        workers, latency_ms = 4, 20
        saturation = workers * 1000.0 / latency_ms  # 200 req/s
        t = self.demo(workers=workers, latency='%dms' % latency_ms)
        probe = """  - name: cap
    type: capacity
    slo: "p95_ms < 100 and error_rate < 0.01"
    min_rate: 100
    max_rate: 300
    required_rate: 100
    step: 1500ms
    connections: 32
"""
        run = self.d.run_spec(spec(t.url, probe), timeout=120)
        self.assertEqual(run['state'], 'passed', run)
        cap = probe_of(run, 'cap')
        rate = cap['metrics']['rate']
        self.assertLess(abs(rate - saturation), 0.10 * saturation, cap['details'])
        self.assertAlmostEqual(cap['metrics']['headroom'], rate / 100.0, places=6)
        self.assertGreater(len(cap['details']['points']), 3)
        # Above saturation the queue grows: some step there failed.
        self.assertTrue(any(not p['pass'] and p['rate'] >= saturation for p in cap['details']['points']),
                        cap['details'])

    def test_nodes_on_sqlite(self):
        """nodes above 1 needs several nodes on one PostgreSQL database: a
        SQLite readyd refuses it at submit, naming the field; a value that
        is no count is refused on any database; nodes: all is this node."""
        t = self.demo()
        cases = (('2', 'PostgreSQL'), ('0', '1 to 64'), ('some', 'or all'),
                 ('17', 'connections'))
        for value, words in cases:
            probe = """  - name: spread
    type: load
    mode: closed
    connections: 16
    requests: 50
    nodes: %s
""" % value
            r = self.d.submit(spec(t.url, probe))
            self.assertEqual(r.status, 422, (value, r))
            err = r.json['errors'][0]
            self.assertEqual(err['path'], 'probes[0].nodes', r.json)
            self.assertIn(words, err['message'])
        # capacity and compare take nodes by the same rules.
        others = ("""  - name: spread
    type: capacity
    slo: "p95_ms < 100"
    max_rate: 50
    step: 200ms
    connections: 16
    nodes: %s
""", """  - name: spread
    type: compare
    baseline: %s/v1/predict
    candidate: %s/v1/predict
    mode: closed
    connections: 16
    segments: 6
    segment_duration: 100ms
    nodes: %%s
""" % (t.url, t.url))
        for body in others:
            for value, words in cases:
                r = self.d.submit(spec(t.url, body % value))
                self.assertEqual(r.status, 422, (value, body, r))
                err = r.json['errors'][0]
                self.assertEqual(err['path'], 'probes[0].nodes', r.json)
                self.assertIn(words, err['message'])
        probe = """  - name: spread
    type: load
    mode: closed
    connections: 2
    requests: 50
    nodes: all
"""
        run = self.d.run_spec(spec(t.url, probe), timeout=60)
        self.assertEqual(run['state'], 'passed', run)
        m = probe_of(run, 'spread')['metrics']
        self.assertEqual(m['requests'], 50)
        self.assertEqual(lib.http('GET', t.url + '/admin/delays').json['count'], 50)

    def test_cancel_mid_probe_stops_engine(self):
        t = self.demo(latency='1ms')
        probe = """  - name: long
    type: load
    mode: closed
    connections: 4
    duration: 60s
"""
        r = self.d.submit(spec(t.url, probe))
        self.assertEqual(r.status, 201, r)
        rid = r.json['id']
        deadline = time.monotonic() + 20
        seen = None
        while time.monotonic() < deadline:
            run = self.d.get('/v1/runs/%d' % rid).json
            cur = (run.get('progress') or {}).get('current') or {}
            if (cur.get('requests') or 0) > 0:
                seen = cur
                break
            time.sleep(0.1)
        self.assertIsNotNone(seen, 'no progress seen')
        self.assertGreaterEqual(seen['percent'], 0)
        t0 = time.monotonic()
        self.assertIn(self.d.request('POST', '/v1/runs/%d/cancel' % rid).status, (200, 202))
        run = self.d.wait_run(rid, timeout=20)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual(run['state'], 'cancelled', run)
        self.assertEqual(probe_of(run, 'long')['state'], 'cancelled')
        self.assertEqual(self.d.get('/healthz').status, 200)

    def test_engine_threads_yield_to_the_loop(self):
        """scheduler.load_nice: the engine's threads, and only they, run
        at the configured nice value while a load probe runs; the loop
        and the daemon's other threads keep 0."""
        t = self.demo(latency='1ms')
        d = lib.Daemon(config='scheduler: { load_nice: 9 }\n').__enter__()
        self.addCleanup(d.__exit__, None, None, None)
        self.track(d)
        probe = """  - name: niced
    type: load
    mode: closed
    connections: 4
    threads: 2
    duration: 20s
"""
        r = d.submit(spec(t.url, probe))
        self.assertEqual(r.status, 201, r)
        rid = r.json['id']

        def nices():
            out = {}
            for tid in os.listdir('/proc/%d/task' % d.proc.pid):
                try:
                    with open('/proc/%d/task/%s/stat' % (d.proc.pid, tid)) as f:
                        fields = f.read().rsplit(')', 1)[1].split()
                except FileNotFoundError:
                    continue
                out[int(tid)] = int(fields[16])  # field 19 of stat: nice
            return out

        niced = {}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(niced) < 2:
            cur = (d.get('/v1/runs/%d' % rid).json.get('progress') or {}).get('current') or {}
            if (cur.get('requests') or 0) > 0:
                niced = {tid: n for tid, n in nices().items() if n != 0}
            time.sleep(0.1)
        self.assertEqual(sorted(niced.values()), [9, 9], niced)
        self.assertEqual(nices()[d.proc.pid], 0)  # the loop
        self.assertIn(d.request('POST', '/v1/runs/%d/cancel' % rid).status, (200, 202))
        self.assertEqual(d.wait_run(rid, timeout=20)['state'], 'cancelled')

    def test_readyd_load_cli_and_valgrind(self):
        t = self.demo(latency='1ms')
        argv = [READYD_LOAD_BIN, '--json', '-c', '4', '-n', '200', t.url + '/v1/predict']
        if shutil.which('valgrind') and not os.environ.get('ASAN_OPTIONS'):
            argv = ['valgrind', '--error-exitcode=99', '--leak-check=full',
                    '--errors-for-leak-kinds=definite,indirect', '--quiet'] + argv
        out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        r = json.loads(out.stdout)
        self.assertEqual(r['requests'], 200)
        self.assertEqual(r['errors'], 0)

    # --- https: the engine's OpenSSL path ---

    def tls_demo(self, **flags):
        tmp = tempfile.mkdtemp(prefix='readyd-load-tls-', dir=self.files)
        self.addCleanup(shutil.rmtree, tmp, True)
        cert, key = lib.make_cert(tmp, 'load', 30)
        t = lib.TlsDemo(tmp, cert, key, **flags).__enter__()
        self.addCleanup(t.__exit__, None, None, None)
        self.track(t)
        return t, cert

    def test_https_insecure_ca_file_and_untrusted(self):
        t, cert = self.tls_demo()
        probes = f"""  - name: insecure
    type: load
    mode: closed
    connections: 2
    requests: 300
    insecure: true
  - name: trusted
    type: load
    mode: rate
    rate: 200
    connections: 4
    duration: 1s
    ca_file: {cert}
  - name: cap
    type: capacity
    slo: "error_rate < 0.01"
    min_rate: 50
    max_rate: 100
    step: 500ms
    warmup: 100ms
    insecure: true
"""
        gates = """gates:
  - { expr: "insecure.error_rate < 0.01", abort_on_fail: true }
  - trusted.error_rate < 0.01
"""
        run = self.d.run_spec(spec(t.tls_url, probes, gates), timeout=60)
        self.assertEqual(run['verdict'], 'PASS', run)
        for name, want in (('insecure', 300), ('trusted', 200)):
            p = probe_of(run, name)
            self.assertEqual(p['state'], 'passed', p)
            self.assertEqual(p['metrics']['requests'], want, p)
            self.assertEqual(p['metrics']['errors'], 0, p)
            self.assertEqual(p['metrics']['aborted'], 0, p)
        cap = probe_of(run, 'cap')
        self.assertEqual(cap['state'], 'passed', cap)
        # Both steps held over https: the best step offered is the top one,
        # and the capacity is what that step delivered, within the tolerance.
        self.assertEqual(cap['metrics']['offered_rate'], 100, cap)
        self.assertGreaterEqual(cap['metrics']['rate'], 100 * (1 - cap['metrics']['tolerance']), cap)
        self.assertLessEqual(cap['metrics']['rate'], 100 * 1.01, cap)
        self.assertTrue(all(pt['pass'] and pt['requests'] > 0 for pt in cap['details']['points']),
                        cap['details'])
        # The same target without trust: every handshake fails verification,
        # nothing is measured, and the probe says why instead of a latency.
        untrusted = """  - name: untrusted
    type: load
    mode: closed
    connections: 2
    duration: 1s
"""
        run = self.d.run_spec(spec(t.tls_url, untrusted), timeout=60)
        self.assertEqual(run['verdict'], 'ERROR', run)
        p = probe_of(run, 'untrusted')
        self.assertEqual(p['state'], 'error', p)
        self.assertIn('TLS certificate verification failed: self-signed certificate', p['error'])
        self.assertIn('ca_file', p['error'])
        m = p['metrics']
        self.assertGreater(m['errors_connect'], 0, m)
        self.assertEqual(m['errors_connect'], m['requests'], m)

    # --- abort_on_fail ---

    def probe_seconds(self, p):
        fmt = lambda s: datetime.fromisoformat(s.replace('Z', '+00:00'))  # noqa: E731
        return (fmt(p['finished_at']) - fmt(p['started_at'])).total_seconds()

    def test_abort_on_fail_error_rate(self):
        t = self.demo(latency='1ms', errors='0.5')
        probe = """  - name: x
    type: load
    mode: closed
    connections: 4
    duration: 30s
"""
        gates = """gates:
  - { expr: "x.error_rate < 0.05", abort_on_fail: true }
"""
        run = self.d.run_spec(spec(t.url, probe, gates), timeout=90)
        self.assertEqual(run['verdict'], 'FAIL', run)
        p = probe_of(run, 'x')
        self.assertEqual(p['state'], 'failed', p)
        self.assertIn("aborted: gate 'x.error_rate < 0.05' cannot be met: error_rate", p['error'])
        self.assertIn('over the last 5 s', p['error'])
        m = p['metrics']
        self.assertEqual(m['aborted'], 1)
        self.assertGreater(m['error_rate'], 0.3, m)
        # Ended far before its 30 s: by its timestamps and by what it measured.
        self.assertLess(self.probe_seconds(p), 15, p)
        self.assertLess(len(p['details']['timeline']), 15, p['details']['timeline'])
        # The gate is judged on what was published, as usual.
        g = run['gates'][0]
        self.assertEqual(g['outcome'], 'fail', g)

    def test_abort_on_fail_latency_needs_the_whole_window(self):
        t = self.demo(latency='40ms')
        probe = """  - name: slow
    type: load
    mode: closed
    connections: 8
    duration: 30s
"""
        gates = """gates:
  - { expr: "slow.p50_ms < 20", abort_on_fail: true }
"""
        run = self.d.run_spec(spec(t.url, probe, gates), timeout=90)
        self.assertEqual(run['verdict'], 'FAIL', run)
        p = probe_of(run, 'slow')
        self.assertEqual(p['state'], 'failed', p)
        self.assertIn("gate 'slow.p50_ms < 20' cannot be met: p50_ms", p['error'])
        self.assertIn('in each of those seconds', p['error'])
        self.assertEqual(p['metrics']['aborted'], 1)
        self.assertLess(self.probe_seconds(p), 15, p)
        # No earlier than the window allows: five whole seconds were seen.
        self.assertGreaterEqual(len(p['details']['timeline']), 5, p['details']['timeline'])


if __name__ == '__main__':
    lib.main()
