"""Integration: verdicts that must not lie. Against a target that fails
most or all of its requests, percentiles count successful requests only,
an ungated probe that measured nothing cannot pass, and every reason says
what happened. The demo target injects the failures (--errors P)."""
import os
import sys

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


if __name__ == '__main__':
    lib.main()
