"""Integration: verdicts that must not lie. Against a target that fails
most or all of its requests, percentiles count successful requests only,
an ungated probe that measured nothing cannot pass, and every reason says
what happened. The demo target injects the failures (--errors P)."""
import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402


def spec(url, probe, gates='', service='verdicts'):
    return f"""apiVersion: readyd/v1
service: {service}
version: 1.0.0
environment: test
timeout: 5m
target:
  url: {url}/v1/predict
  timeout: 5s
probes:
{probe}
{gates}"""


def probe_of(run, name):
    return next(p for p in run['probes'] if p['name'] == name)


LOAD = """  - name: l
    type: load
    mode: closed
    connections: 4
    requests: %d
"""


class VerdictTest(lib.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = lib.Daemon().__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)

    def setUp(self):
        super().setUp()
        self.track(self.d)

    def demo(self, **flags):
        t = lib.DemoTarget(**flags).__enter__()
        self.addCleanup(t.__exit__, None, None, None)
        self.track(t)
        return t

    def test_mean_and_max_need_samples_too(self):
        # 1999 of 2000 requests failed: the one that got through made
        # mean_ms and max_ms 'pass' (there was no floor for them), and
        # the probe, no longer all-failed, passed: the run was PASS.
        t = self.demo(errors=0.998, seed=7)
        run = self.d.run_spec(spec(t.url, LOAD % 2000,
                                   'gates:\n  - l.mean_ms < 1000\n  - l.max_ms < 1000\n'))
        m = probe_of(run, 'l')['metrics']
        ok = m['requests'] - m['errors']
        self.assertGreater(ok, 0, m)
        self.assertLess(ok, 20, m)
        self.assertEqual(run['verdict'], 'ERROR', run['gates'])
        for g in run['gates']:
            self.assertEqual(g['outcome'], 'error', g)
            self.assertEqual(g['samples'], ok, g)
            self.assertIn('only %d successful requests; at least 20 are needed' % ok,
                          g['reason'])

    def test_throughput_counts_successful_requests(self):
        # 1996 of 2000 requests failed, answered fast: throughput_rps was
        # every answer per second (tens of thousands) and a
        # `throughput_rps > 10` gate passed.
        t = self.demo(errors=0.998, seed=7)
        run = self.d.run_spec(spec(t.url, LOAD % 2000, 'gates:\n  - l.throughput_rps > 10\n'))
        m = probe_of(run, 'l')['metrics']
        ok = m['requests'] - m['errors']
        self.assertLess(ok, 20, m)
        self.assertEqual(run['verdict'], 'ERROR', (m, run['gates']))
        self.assertGreater(m['requests_rps'], 10 * m['throughput_rps'], m)
        self.assertAlmostEqual(m['throughput_rps'], m['requests_rps'] * ok / m['requests'],
                               delta=0.01 * m['requests_rps'] * ok / m['requests'] + 0.01)
        g = run['gates'][0]
        self.assertEqual(run['verdict'], 'ERROR', run['gates'])
        self.assertEqual((g['outcome'], g['samples']), ('error', ok), g)
        self.assertIn('only %d successful requests; at least 20 are needed' % ok, g['reason'])

    def test_throughput_and_request_rate_side_by_side(self):
        t = self.demo(errors=0.5, seed=3)
        run = self.d.run_spec(spec(t.url, LOAD % 600,
                                   'gates:\n  - l.throughput_rps > 0\n'))
        m = probe_of(run, 'l')['metrics']
        ok = m['requests'] - m['errors']
        self.assertGreater(ok, 200, m)
        self.assertLess(ok, 400, m)
        self.assertAlmostEqual(m['throughput_rps'] / m['requests_rps'], ok / m['requests'],
                               delta=0.001)
        self.assertEqual(run['gates'][0]['samples'], ok, run['gates'])
        self.assertEqual(run['verdict'], 'PASS', run['gates'])

    def test_baseline_must_rest_on_enough_samples(self):
        # A PASS whose p95_ms rested on ~20 successes out of 400 (its own
        # gates were lax) became the baseline of `p95_ms <= baseline * 1.10`.
        svc = 'baseline-floor'
        good, bad = self.demo(latency='1ms'), self.demo(errors=0.95, seed=5)
        lax = 'gates:\n  - l.error_rate < 1\n'
        strict = 'gates:\n  - l.p95_ms <= baseline * 1.10\n'

        def run(t, gates):
            r = self.d.run_spec(spec(t.url, LOAD % 400, gates, service=svc))
            self.assertEqual(r['verdict'], 'PASS', r['gates'])
            return r

        weak1 = run(bad, lax)
        m = probe_of(weak1, 'l')['metrics']
        self.assertLess(m['requests'] - m['errors'], 200, m)
        self.assertIsNotNone(m['p95_ms'], m)
        first = self.d.run_spec(spec(good.url, LOAD % 400, strict, service=svc))
        g = first['gates'][0]
        self.assertEqual((g['outcome'], g['baseline_run']), ('no-baseline', None), g)
        self.assertEqual(first['verdict'], 'PASS', g)
        self.assertIn('1 earlier passed run (newest run %d) had fewer than 200 samples '
                      'behind l.p95_ms' % weak1['id'], g['reason'])
        weak2 = run(bad, lax)
        later = self.d.run_spec(spec(good.url, LOAD % 400, strict, service=svc))
        g = later['gates'][0]
        self.assertEqual(g['baseline_run'], first['id'], g)
        self.assertEqual(g['baseline'], probe_of(first, 'l')['metrics']['p95_ms'], g)
        self.assertIn('(baseline from run %d: 1 newer passed run, the newest run %d, had '
                      'fewer than 200 samples behind l.p95_ms)' % (first['id'], weak2['id']),
                      g['reason'])
        # Rejudging uses the same rule.
        r = self.d.request('POST', '/v1/runs/%d/rejudge' % later['id'],
                           body=json.dumps({'gates': ['l.p95_ms <= baseline * 1.10']}).encode(),
                           headers={'Content-Type': 'application/json'})
        self.assertEqual(r.status, 201, r)
        rg = r.json['gates'][0]
        self.assertEqual(rg['baseline_run'], first['id'], rg)

    def test_percentile_samples_are_successful_requests(self):
        t = self.demo(errors=0.97)
        run = self.d.run_spec(spec(t.url, LOAD % 1530, 'gates:\n  - l.p99_ms < 25\n'))
        m = probe_of(run, 'l')['metrics']
        ok = m['requests'] - m['errors']
        self.assertEqual(m['requests'], 1530)
        self.assertGreater(ok, 0, m)
        self.assertLess(ok, 1000, m)
        g = run['gates'][0]
        self.assertEqual(g['samples'], ok, g)
        self.assertEqual(g['outcome'], 'error', g)
        self.assertIn('p99_ms: only %d successful requests; at least 1000 are needed' % ok,
                      g['reason'])
        self.assertEqual(run['verdict'], 'ERROR', run)

    def test_error_rate_samples_are_all_requests(self):
        t = self.demo(errors=0.5)
        run = self.d.run_spec(spec(t.url, LOAD % 400, 'gates:\n'
                                   '  - { expr: "l.error_rate < 1", min_samples: 400 }\n'
                                   '  - { expr: "l.p50_ms < 5000", min_samples: 400 }\n'))
        m = probe_of(run, 'l')['metrics']
        er, p50 = run['gates']
        self.assertEqual(er['samples'], 400, er)
        self.assertEqual(er['outcome'], 'pass', er)
        self.assertEqual(p50['samples'], 400 - m['errors'], p50)
        self.assertEqual(p50['outcome'], 'error', p50)

    def test_ungated_probe_with_no_successful_request_is_an_error(self):
        t = self.demo(errors=1)
        run = self.d.run_spec(spec(t.url, LOAD % 300))
        p = probe_of(run, 'l')
        self.assertEqual(p['metrics']['error_rate'], 1, p)
        self.assertEqual(p['state'], 'error', p)
        self.assertIn('all 300 measured requests failed (5xx: 300)', p['error'])
        self.assertEqual(run['verdict'], 'ERROR', run)

    def test_nan_reason_says_every_request_failed(self):
        t = self.demo(errors=1)
        run = self.d.run_spec(spec(t.url, LOAD % 200, 'gates:\n  - l.p99_ms < 25\n'))
        g = run['gates'][0]
        self.assertEqual(g['outcome'], 'error', g)
        self.assertNotIn('nothing was measured', g['reason'])
        self.assertIn('all 200 measured requests failed', g['reason'])
        self.assertEqual(run['verdict'], 'ERROR', run)


    # ---- JUnit shows the verdict ----

    def junit(self, run_id):
        r = self.d.get('/v1/runs/%d/report?format=junit' % run_id)
        self.assertEqual(r.status, 200, r)
        if lib.XMLLINT:
            lint = subprocess.run([lib.XMLLINT, '--noout', '--schema', lib.JUNIT_XSD, '-'],
                                  input=r.body, capture_output=True, check=False)
            self.assertEqual(lint.returncode, 0, lint.stderr.decode() + r.body.decode())
        root = ET.fromstring(r.body)
        self.assertEqual(root.tag, 'testsuites')
        suite = root.find('testsuite')
        cases = suite.findall('testcase')
        self.assertEqual(int(suite.get('tests')), len(cases))
        self.assertEqual(int(suite.get('failures')),
                         sum(c.find('failure') is not None for c in cases))
        self.assertEqual(int(suite.get('errors')),
                         sum(c.find('error') is not None for c in cases))
        return suite, {(c.get('classname'), c.get('name')): c for c in cases}

    def test_junit_failed_http_probe_is_a_failure(self):
        t = self.demo()
        probe = """  - name: health
    type: http
    url: %s/healthz
    expect_body_contains: "this text is not there"
""" % t.url
        run = self.d.run_spec(spec(t.url, probe, 'gates:\n  - health.status == 200\n'))
        self.assertEqual(run['verdict'], 'FAIL', run)
        self.assertEqual(run['gates'][0]['outcome'], 'pass', run)
        suite, cases = self.junit(run['id'])
        self.assertEqual(int(suite.get('failures')), 1)
        self.assertEqual(int(suite.get('errors')), 0)
        failure = cases[('probes.Monitoring', 'health (http)')].find('failure')
        self.assertIn('this text is not there', failure.get('message'))
        self.assertIsNone(cases[('gates.Monitoring', 'health.status == 200')].find('failure'))

    def test_junit_ungated_failed_scrape_is_a_failure(self):
        t = self.demo()
        probe = """  - name: metrics
    type: prometheus-scrape
    url: %s/metrics
    require: [no_such_family_total]
""" % t.url
        run = self.d.run_spec(spec(t.url, probe))
        self.assertEqual(run['verdict'], 'FAIL', run)
        suite, cases = self.junit(run['id'])
        self.assertEqual(int(suite.get('failures')), 1)
        self.assertIsNotNone(
            cases[('probes.Monitoring', 'metrics (prometheus-scrape)')].find('failure'))

    def test_junit_cancelled_run_is_an_error(self):
        t = self.demo(latency='1ms')
        probe = """  - name: long
    type: load
    mode: closed
    connections: 2
    duration: 60s
"""
        r = self.d.submit(spec(t.url, probe))
        self.assertEqual(r.status, 201, r)
        run_id = r.json['id']
        deadline = time.monotonic() + 30
        while self.d.get('/v1/runs/%d' % run_id).json['state'] != 'running':
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        self.assertIn(self.d.request('POST', '/v1/runs/%d/cancel' % run_id).status, (200, 202))
        run = self.d.wait_run(run_id)
        self.assertEqual(run['state'], 'cancelled', run)
        suite, cases = self.junit(run_id)
        self.assertGreater(int(suite.get('tests')), 0)
        self.assertGreater(int(suite.get('errors')), 0)
        err = cases[('run', 'verdict')].find('error')
        self.assertEqual(err.get('type'), 'cancelled')
        self.assertIn('cancelled on request', err.get('message'))

    def test_junit_pass_advisory_failure_is_visible(self):
        t = self.demo()
        probe = LOAD % 50
        gates = ('gates:\n  - l.error_rate == 0\n'
                 '  - { expr: "l.requests > 1000000", advisory: true }\n')
        run = self.d.run_spec(spec(t.url, probe, gates))
        self.assertEqual(run['verdict'], 'PASS', run)
        suite, cases = self.junit(run['id'])
        self.assertEqual((int(suite.get('failures')), int(suite.get('errors'))), (0, 0))
        self.assertGreater(float(suite.get('time')), 0)
        props = {p.get('name'): p.get('value') for p in suite.find('properties')}
        self.assertEqual(props['verdict'], 'PASS')
        self.assertIn('l.requests > 1000000: fail', props['advisory'])
        self.assertIn('advisory, fail', suite.find('system-out').text)


    # ---- capacity claims only what was delivered ----

    def test_capacity_reports_a_delivered_rate(self):
        workers, latency_ms = 4, 20
        ceiling = workers * 1000.0 / latency_ms  # 200 req/s, never more
        t = self.demo(workers=workers, latency='%dms' % latency_ms)
        probe = """  - name: cap
    type: capacity
    slo: "p95_ms < 100 and error_rate < 0.01"
    min_rate: 100
    max_rate: 300
    step: 1500ms
    connections: 32
"""
        run = self.d.run_spec(spec(t.url, probe), timeout=180)
        self.assertEqual(run['state'], 'passed', run)
        cap = probe_of(run, 'cap')
        m, points = cap['metrics'], cap['details']['points']
        tol = m['tolerance']
        self.assertEqual(tol, cap['details']['tolerance'])
        self.assertTrue(0 < tol <= 0.1, m)
        for p in points:
            if p['pass']:
                self.assertGreaterEqual(p['delivered_rps'], p['rate'] * (1 - tol), p)
            elif p['delivered_rps'] < p['rate'] * (1 - tol) and p['rate_kept'] == 1:
                self.assertIn(p['failed_on'], ('delivered_rps', 'p95_ms', 'error_rate'), p)
        passing = [p for p in points if p['pass']]
        best = max(passing, key=lambda p: p['rate'])
        self.assertEqual(m['offered_rate'], best['rate'], points)
        self.assertAlmostEqual(m['rate'], best['delivered_rps'], places=6)
        self.assertLessEqual(m['rate'], ceiling, points)
        self.assertGreater(m['rate'], 0.8 * ceiling, points)


    def test_capacity_without_any_successful_answer_is_an_error(self):
        t = self.demo(errors=1)
        probe = """  - name: cap
    type: capacity
    slo: "error_rate < 0.5"
    min_rate: 50
    max_rate: 100
    step: 300ms
    connections: 4
"""
        run = self.d.run_spec(spec(t.url, probe), timeout=60)
        cap = probe_of(run, 'cap')
        self.assertEqual(cap['state'], 'error', cap)
        self.assertIn('no step got a successful answer', cap['error'])
        self.assertNotIn('rate', cap['metrics'] or {}, cap)
        self.assertEqual(run['verdict'], 'ERROR', run)

    # ---- trends show decided runs; a report shows its own run ----

    def cancel_running(self, spec_text):
        r = self.d.submit(spec_text)
        self.assertEqual(r.status, 201, r)
        run_id = r.json['id']
        deadline = time.monotonic() + 30
        while True:
            run = self.d.get('/v1/runs/%d' % run_id).json
            if run['state'] == 'running' and run['progress']['current'] and \
                    run['progress']['current'].get('requests', 0) > 0:
                break
            self.assertLess(time.monotonic(), deadline, run)
            time.sleep(0.02)
        self.d.request('POST', '/v1/runs/%d/cancel' % run_id)
        run = self.d.wait_run(run_id)
        self.assertEqual(run['state'], 'cancelled', run)
        return run

    def test_trends_and_report_trends_use_decided_runs_up_to_the_report(self):
        t = self.demo(latency='1ms')
        svc = 'trend-svc'
        gate = 'gates:\n  - l.requests >= 1\n'
        first = self.d.run_spec(spec(t.url, LOAD % 50, gate, service=svc))
        self.assertEqual(first['verdict'], 'PASS', first)
        long_probe = """  - name: l
    type: load
    mode: closed
    connections: 1
    duration: 60s
"""
        cancelled = self.cancel_running(spec(t.url, long_probe, gate, service=svc))
        later = self.d.run_spec(spec(t.url, LOAD % 70, gate, service=svc))
        self.assertEqual(later['verdict'], 'PASS', later)

        pts = self.d.get('/v1/services/%s/trends?metric=l.requests' % svc).json['points']
        self.assertEqual([p['run_id'] for p in pts], [first['id'], later['id']], pts)
        self.assertNotIn(cancelled['id'], [p['run_id'] for p in pts])

        html = self.d.get('/v1/runs/%d/report?format=html' % first['id']).body.decode()
        row = re.search(r'<table id="trends">.*?</tr>\n(<tr>.*?</tr>)', html, re.S).group(1)
        cells = re.findall(r'<td>(.*?)</td>', row, re.S)
        self.assertEqual(cells[1], '1', row)  # one run: the report's own
        self.assertEqual(cells[-1], '50', row)  # its value, not the later 70
        html = self.d.get('/v1/runs/%d/report?format=html' % later['id']).body.decode()
        row = re.search(r'<table id="trends">.*?</tr>\n(<tr>.*?</tr>)', html, re.S).group(1)
        cells = re.findall(r'<td>(.*?)</td>', row, re.S)
        self.assertEqual((cells[1], cells[-1]), ('2', '70'), row)

    def test_invalidated_run_says_so_everywhere(self):
        t = self.demo()
        run = self.d.run_spec(spec(t.url, LOAD % 50, 'gates:\n  - l.errors == 0\n',
                                   service='inval-svc'))
        r = self.d.request('POST', '/v1/runs/%d/invalidate' % run['id'],
                           json.dumps({'reason': 'wrong build deployed'}),
                           {'Content-Type': 'application/json'})
        self.assertEqual(r.status, 200, r)
        for fmt in ('markdown', 'html', 'junit', 'json'):
            body = self.d.get('/v1/runs/%d/report?format=%s' % (run['id'], fmt)).body.decode()
            self.assertIn('nvalidated', body, fmt)
            self.assertIn('wrong build deployed', body, fmt)
        suite, _ = self.junit(run['id'])
        props = {p.get('name'): p.get('value') for p in suite.find('properties')}
        self.assertIn('wrong build deployed', props['invalidated'])
        out = subprocess.run([lib.READYCTL_BIN, '--url', self.d.url, 'status', str(run['id'])],
                             capture_output=True, text=True, timeout=30, check=False)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r'invalidated .*: wrong build deployed')

    # ---- reports keep the engine's warning ----

    def test_rate_warning_in_markdown_and_html(self):
        t = self.demo(latency='20ms')
        probe = """  - name: r
    type: load
    mode: rate
    rate: 200
    connections: 1
    duration: 1s
"""
        run = self.d.run_spec(spec(t.url, probe))
        p = probe_of(run, 'r')
        self.assertEqual(p['metrics']['rate_kept'], 0, p)
        warning = 'the engine could not keep the requested rate'
        self.assertIn(warning, p['details']['warning'])
        for fmt in ('markdown', 'html'):
            body = self.d.get('/v1/runs/%d/report?format=%s' % (run['id'], fmt)).body.decode()
            self.assertIn(warning, body, fmt)


if __name__ == '__main__':
    lib.main()
