"""Integration: history, trends, gates, waivers, rejudge and invalidate
against the real readyd and demo targets of different latencies. Three
runs of one service make a history and a three-point trend in order;
GET /v1/gates shows the newest verdict; a waiver turns the failing gate
into "waived"; rejudging re-decides a stored run without measuring; an
invalidated run leaves gates, trends and baselines. With ?step= the same
three runs come back as buckets whose numbers match the per-run points;
readyctl lists and revokes waivers."""
import datetime
import json
import os
import pty
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

SERVICE = 'hist-api'


def spec(url, version, gates=('predict.latency_ms < 100',)):
    lines = ''.join('  - "%s"\n' % g for g in gates)
    return f"""apiVersion: readyd/v1
service: {SERVICE}
version: "{version}"
environment: test
timeout: 2m
probes:
  - name: predict
    type: http
    url: {url}/v1/predict
    timeout: 5s
gates:
{lines}"""


class HistoryTest(lib.TestCase):
    @classmethod
    def setUpClass(cls):
        # Latencies far apart so the order of the trend is unambiguous
        # even on a loaded machine; 150 ms stays well under the timeout.
        cls.targets = [lib.DemoTarget(latency=l).__enter__()
                       for l in ('1ms', '40ms', '150ms')]
        cls.d = lib.Daemon().__enter__()
        cls.runs = []
        for i, t in enumerate(cls.targets):
            cls.runs.append(cls.d.run_spec(spec(t.url, '1.%d' % i)))

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)
        for t in cls.targets:
            t.__exit__(None, None, None)

    def setUp(self):
        super().setUp()
        self.track(self.d)

    def post(self, path, body):
        return self.d.request('POST', path, json.dumps(body),
                              {'Content-Type': 'application/json'})

    def problem(self, r, status, path=None):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.headers['Content-Type'], 'application/problem+json')
        if path is not None:
            self.assertEqual(r.json['errors'][0]['path'], path, r)
        return r.json

    def test_1_history_and_trend_in_order(self):
        self.assertEqual([r['verdict'] for r in self.runs], ['PASS', 'PASS', 'FAIL'])
        ids = [r['id'] for r in self.runs]
        h = self.d.get('/v1/services/%s/history' % SERVICE).json
        self.assertEqual([i['run_id'] for i in h['items']], ids[::-1])
        self.assertEqual([i['verdict'] for i in h['items']], ['FAIL', 'PASS', 'PASS'])
        page = self.d.get('/v1/services/%s/history?limit=2' % SERVICE).json
        self.assertEqual(len(page['items']), 2)
        rest = self.d.get('/v1/services/%s/history?limit=2&cursor=%s'
                          % (SERVICE, page['next_cursor'])).json
        self.assertEqual([i['run_id'] for i in rest['items']], [ids[0]])
        fails = self.d.get('/v1/services/%s/history?verdict=FAIL' % SERVICE).json
        self.assertEqual([i['run_id'] for i in fails['items']], [ids[2]])

        t = self.d.get('/v1/services/%s/trends?metric=predict.latency_ms&environment=test'
                       % SERVICE)
        self.assertEqual(t.status, 200, t)
        pts = t.json['points']
        self.assertEqual([p['run_id'] for p in pts], ids)
        self.assertEqual([p['version'] for p in pts], ['1.0', '1.1', '1.2'])
        self.assertLess(pts[0]['value'], pts[1]['value'])
        self.assertLess(pts[1]['value'], pts[2]['value'])
        self.assertGreaterEqual(pts[2]['value'], 150)
        self.assertEqual(pts[2]['verdict'], 'FAIL')

        g = self.d.get('/v1/gates').json['items']
        mine = [i for i in g if i['service'] == SERVICE]
        self.assertEqual(len(mine), 1)
        self.assertEqual(mine[0]['run_id'], ids[2])
        self.assertEqual(mine[0]['verdict'], 'FAIL')
        self.assertEqual(mine[0]['version'], '1.2')

        s = self.d.get('/v1/services').json['items']
        self.assertIn({'service': SERVICE, 'environments': ['test'], 'runs': 3,
                       'last_run_at': self.runs[2]['created_at']}, s)

    def trend(self, extra=''):
        return self.d.get('/v1/services/%s/trends?metric=predict.latency_ms&environment=test%s'
                          % (SERVICE, extra))

    def test_1b_trend_buckets_match_the_points(self):
        pts = self.trend().json['points']
        self.assertEqual(len(pts), 3)
        for step, ms in (('1ms', 1), ('1d', 86400000), ('3660d', 3660 * 86400000)):
            # The expected buckets, from the per-run points' times.
            want = {}
            for p in pts:
                t = datetime.datetime.strptime(p['time'], '%Y-%m-%dT%H:%M:%S.%fZ')
                t = t.replace(tzinfo=datetime.timezone.utc)
                want.setdefault(int(t.timestamp() * 1000) // ms * ms, []).append(p)
            r = self.trend('&step=' + step)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json['step'], step)
            self.assertFalse(r.json['truncated'])
            got = r.json['points']
            self.assertEqual(len(got), len(want), (step, got))
            for b, start in zip(got, sorted(want)):
                ps = want[start]
                vals = [p['value'] for p in ps]
                t = datetime.datetime.fromtimestamp(start / 1000, datetime.timezone.utc)
                self.assertEqual(b['t'], t.strftime('%Y-%m-%dT%H:%M:%S.') +
                                 '%03dZ' % (start % 1000))
                self.assertEqual(b['runs'], len(ps))
                self.assertEqual(b['min'], min(vals))
                self.assertEqual(b['max'], max(vals))
                self.assertAlmostEqual(b['avg'], sum(vals) / len(vals))
                self.assertEqual(b['last'], ps[-1]['value'])
                self.assertEqual(b['last_run_id'], ps[-1]['run_id'])
                self.assertEqual(b['last_version'], ps[-1]['version'])
        # 1 ms buckets: one per run, in run order.
        got = self.trend('&step=1ms').json['points']
        self.assertEqual([b['last_run_id'] for b in got], [r['id'] for r in self.runs])
        capped = self.trend('&step=1ms&limit=2').json
        self.assertTrue(capped['truncated'])
        self.assertEqual([b['last_run_id'] for b in capped['points']],
                         [r['id'] for r in self.runs[1:]])
        # Invalid steps name the parameter.
        for bad in ('0s', 'abc', '-1h', '3661d', '1ms&since=30d'):
            self.problem(self.trend('&step=' + bad), 400, 'step')
        self.assertEqual(self.trend('&step=1h&since=30d').status, 200)  # 720 buckets
        self.problem(self.d.get('/v1/services/x/trends?metric=nodot&step=1h'), 400, 'metric')

    def test_2_rejudge_changes_the_decision_without_measuring(self):
        run3 = self.runs[2]['id']
        r = self.post('/v1/runs/%d/rejudge' % run3, {'gates': ['predict.latency_ms < 1000']})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json['verdict'], 'PASS')
        self.assertEqual(r.json['original_verdict'], 'FAIL')
        # Same measurement as the run stored.
        stored = self.d.get('/v1/runs/%d' % run3).json
        self.assertEqual(r.json['gates'][0]['value'],
                         stored['probes'][0]['metrics']['latency_ms'])
        self.assertEqual(stored['verdict'], 'FAIL')  # the original stays
        self.assertEqual(stored['rejudgements'][-1]['verdict'], 'PASS')
        # Baseline: the newest passed run other than this one (run 2).
        r = self.post('/v1/runs/%d/rejudge' % run3,
                      {'gates': ['predict.latency_ms <= baseline * 1.5']})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json['gates'][0]['baseline_run'], self.runs[1]['id'])
        self.assertEqual(r.json['verdict'], 'FAIL')
        # Validated like a spec, with the path.
        self.problem(self.post('/v1/runs/%d/rejudge' % run3, {'gates': ['nope.x < 1']}),
                     422, 'gates[0]')
        self.problem(self.post('/v1/runs/%d/rejudge' % run3, {'gates': 'x'}), 422, 'gates')
        self.problem(self.post('/v1/runs/999999/rejudge', {'gates': []}), 404)

    def test_3_waiver_then_invalidate(self):
        base = '/v1/services/%s/waivers' % SERVICE
        self.problem(self.post(base, {'expr': 'predict.latency_ms <', 'reason': 'r',
                                      'approver': 'a', 'expires': '1d'}), 422, 'expr')
        self.problem(self.post(base, {'expr': 'predict.latency_ms < 100', 'reason': 'r',
                                      'expires': '1d'}), 422, 'approver')
        self.problem(self.post(base, {'expr': 'predict.latency_ms < 100', 'reason': 'r',
                                      'approver': 'a', 'expires': '2020-01-01T00:00:00Z'}),
                     422, 'expires')
        r = self.post(base, {'expr': 'predict.latency_ms<100', 'reason': 'GPU node degraded',
                             'approver': 'alice', 'expires': '1d', 'environment': 'test'})
        self.assertEqual(r.status, 201, r)
        wid = r.json['id']
        self.assertTrue(r.json['active'])
        self.assertEqual(r.json['expr'], 'predict.latency_ms < 100')

        run4 = self.d.run_spec(spec(self.targets[2].url, '1.3'))
        self.assertEqual(run4['verdict'], 'PASS')
        gate = run4['gates'][0]
        self.assertEqual(gate['outcome'], 'waived')
        self.assertEqual(gate['waiver']['id'], wid)
        self.assertEqual(gate['waiver']['approver'], 'alice')
        self.assertGreaterEqual(gate['value'], 150)
        self.assertIn('underneath it fails', gate['reason'])

        r = self.d.request('DELETE', '%s/%d' % (base, wid))
        self.assertEqual(r.status, 200, r)
        self.assertFalse(r.json['active'])
        listed = self.d.get(base).json['items']
        self.assertEqual(listed[0]['id'], wid)
        self.assertIsNotNone(listed[0]['revoked_at'])
        self.problem(self.d.request('DELETE', '%s/999999' % base), 404)

        g = [i for i in self.d.get('/v1/gates').json['items'] if i['service'] == SERVICE]
        self.assertEqual(g[0]['run_id'], run4['id'])
        r = self.post('/v1/runs/%d/invalidate' % run4['id'], {'reason': 'wrong target'})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json['invalidated']['reason'], 'wrong target')
        self.problem(self.post('/v1/runs/%d/invalidate' % run4['id'], {'reason': 'x'}), 409)
        self.problem(self.post('/v1/runs/%d/invalidate' % run4['id'], {}), 422, 'reason')
        g = [i for i in self.d.get('/v1/gates').json['items'] if i['service'] == SERVICE]
        self.assertEqual(g[0]['run_id'], self.runs[2]['id'])
        t = self.d.get('/v1/services/%s/trends?metric=predict.latency_ms' % SERVICE).json
        self.assertNotIn(run4['id'], [p['run_id'] for p in t['points']])

    def ctl(self, *args):
        env = dict(os.environ, READYD_URL=self.d.url)
        env.pop('READYD_TOKEN', None)
        return subprocess.run([lib.READYCTL_BIN] + list(args), env=env, capture_output=True,
                              text=True, timeout=60)

    def test_5_readyctl(self):
        ids = [r['id'] for r in self.runs]
        p = self.ctl('gates')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r'%s\s+test\s+FAIL\s+1\.2\s+%d' % (SERVICE, ids[2]))
        p = self.ctl('history', SERVICE, '--limit', '2')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('--cursor', p.stderr)
        p = self.ctl('trends', SERVICE, 'predict.latency_ms', '--environment', 'test')
        self.assertEqual(p.returncode, 0, p.stderr)
        rows = [l.split()[1] for l in p.stdout.splitlines()[1:] if l.strip()]
        self.assertEqual(rows[:3], [str(i) for i in ids])  # oldest first
        self.assertNotIn('\u2581', p.stdout)  # no sparkline off a terminal
        p = self.ctl('rejudge', str(ids[2]), 'predict.latency_ms < 100000')
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn('PASS (original verdict FAIL)', p.stdout)
        p = self.ctl('rejudge', str(ids[0]), 'predict.latency_ms < 0')
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        p = self.ctl('waive', SERVICE, 'predict.latency_ms < 7', '--reason', 'r',
                     '--approver', 'bob', '--expires', '2h')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('predict.latency_ms < 7 until', p.stdout)
        wid = int(p.stdout.split()[1].rstrip(':'))
        p = self.ctl('waivers', SERVICE)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r'\n%d\s+-\s+predict\.latency_ms < 7\s+bob\s+\S+\s+active'
                         % wid)
        p = self.ctl('unwaive', SERVICE, str(wid))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('waiver %d revoked' % wid, p.stdout)
        p = self.ctl('waivers', SERVICE)
        self.assertRegex(p.stdout, r'\n%d\s.*revoked' % wid)
        p = self.ctl('unwaive', SERVICE, '999999')
        self.assertEqual(p.returncode, 3)
        p = self.ctl('unwaive', SERVICE, 'x')
        self.assertEqual(p.returncode, 3)
        p = self.ctl('trends', SERVICE, 'predict.latency_ms', '--environment', 'test',
                     '--step', '3660d')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('LAST VERSION', p.stdout)
        self.assertRegex(p.stdout, r'\n\S+\s+3\s')  # one bucket of the three runs
        p = self.ctl('waive', SERVICE, 'predict.latency_ms <', '--reason', 'r',
                     '--approver', 'bob', '--expires', '2h')
        self.assertEqual(p.returncode, 3)
        self.assertIn('expr', p.stderr)
        p = self.ctl('invalidate', str(ids[0]))
        self.assertEqual(p.returncode, 3)  # --reason is required
        # On a terminal a sparkline follows the table.
        master, slave = pty.openpty()
        env = dict(os.environ, READYD_URL=self.d.url, NO_COLOR='1')
        env.pop('READYD_TOKEN', None)
        proc = subprocess.run([lib.READYCTL_BIN, 'trends', SERVICE, 'predict.latency_ms',
                               '--environment', 'test'], env=env, stdout=slave,
                              stderr=subprocess.PIPE, timeout=60)
        os.close(slave)
        out = b''
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        os.close(master)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn('\u2581', out.decode('utf-8'))  # the lowest bar: run 1
        self.assertIn('\u2588', out.decode('utf-8'))  # the highest: run 3
        p = self.ctl('help', 'trends')
        self.assertEqual(p.returncode, 0)
        self.assertIn('PROBE.METRIC', p.stdout)

    def test_4_bad_queries(self):
        self.assertEqual(self.d.get('/v1/services/%s/trends' % SERVICE).status, 400)
        self.assertEqual(self.d.get('/v1/services/%s/trends?metric=nodot' % SERVICE).status,
                         400)
        self.assertEqual(self.d.get('/v1/services/%s/trends?metric=a.b&since=yesterday'
                                    % SERVICE).status, 400)
        self.assertEqual(self.d.get('/v1/services/%s/history?verdict=MAYBE'
                                    % SERVICE).status, 400)
        self.assertEqual(self.d.get('/v1/services/%s/history?cursor=zz' % SERVICE).status,
                         400)
        empty = self.d.get('/v1/services/none/trends?metric=a.b&since=30d')
        self.assertEqual(empty.status, 200, empty)
        self.assertEqual(empty.json['points'], [])


if __name__ == '__main__':
    lib.main()
