"""Integration: verdicts that must not lie. Against a target that fails
most or all of its requests, percentiles count successful requests only,
an ungated probe that measured nothing cannot pass, and every reason says
what happened. The demo target injects the failures (--errors P)."""
import os
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


if __name__ == '__main__':
    lib.main()
