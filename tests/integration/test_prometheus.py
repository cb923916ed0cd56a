"""Integration: the prometheus-scrape, prometheus-rules, prometheus-query
and alert-drill probes against a real Prometheus (Debian package) that
scrapes the demo target and evaluates alert rules every second, and the
plain http probe against a real Alertmanager. One Prometheus per class;
every case takes seconds."""
import contextlib
import json
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

RULES = """groups:
  - name: demo
    interval: 1s
    rules:
      - alert: HighLatency
        expr: histogram_quantile(0.95, sum(rate(inference_duration_seconds_bucket[10s])) by (le)) > 5
        for: 1m
      - alert: LowThroughput
        expr: sum(rate(inference_requests_total[10s])) < 0
        for: 1m
      - alert: HighErrorRate
        expr: sum(rate(inference_errors_total[5s])) > 0
        for: 2s
        labels: { severity: page }
      - alert: GPUOutOfMemory
        expr: vector(1) > 2
"""

# Parses (Prometheus loads it) but fails at every evaluation.
BROKEN_RULE = """      - alert: BrokenRegex
        expr: label_replace(up, "x", "$1", "instance", "(")
"""

ALL_ALERTS = ['HighLatency', 'LowThroughput', 'HighErrorRate', 'GPUOutOfMemory']


def spec(probes, gates=()):
    text = 'apiVersion: readyd/v1\nservice: prom-test\nversion: 1.0.0\nenvironment: test\n'
    text += 'timeout: 5m\nprobes:\n' + probes
    if gates:
        text += 'gates:\n' + ''.join('  - %s\n' % json.dumps(g) for g in gates)
    return text


def flow(items):
    return json.dumps(list(items))


class Traffic:
    """Requests to the demo target's /v1/predict in a thread (about 50/s),
    so injected faults show up as errors Prometheus can see."""

    def __init__(self, url):
        self.url = url + '/v1/predict'
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        while not self.stop.is_set():
            try:
                lib.http('GET', self.url, timeout=2.0)
            except OSError:
                pass
            self.stop.wait(0.02)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)


class PromBase(lib.TestCase):
    rules = RULES

    @classmethod
    def setUpClass(cls):
        cls.stack = contextlib.ExitStack()
        try:
            cls.demo = cls.stack.enter_context(lib.DemoTarget())
            cls.prom = cls.stack.enter_context(
                lib.Prometheus(rules=cls.rules, scrape_targets=[cls.demo.url]))
            cls.daemon = cls.stack.enter_context(lib.Daemon())
            cls.prom.wait_for(lambda: cls.prom.query('up') == 1.0, what='demo target up')
            cls.prom.wait_for(cls.prom.rules_evaluated, what='rules evaluated')
        except BaseException:
            cls.stack.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()

    def setUp(self):
        super().setUp()
        for p in (self.daemon, self.prom, self.demo):
            self.track(p)

    def run_probe(self, probe_yaml, gates=(), timeout=60.0):
        run = self.daemon.run_spec(spec(probe_yaml, gates), timeout=timeout)
        return run, run['probes'][0]


class TestRulesQueryScrape(PromBase):

    def rules_probe(self, require, extra=''):
        return self.run_probe(f"""  - name: alert-rules
    type: prometheus-rules
    prometheus: {self.prom.url}
    require: {flow(require)}
{extra}""", gates=['alert-rules.missing == 0'])

    def test_required_alerts_present_pass(self):
        run, p = self.rules_probe(ALL_ALERTS)
        self.assertEqual((run['state'], p['state']), ('passed', 'passed'), run)
        self.assertEqual(p['metrics']['rules'], 4)
        self.assertEqual(p['metrics']['alerts'], 4)
        self.assertEqual(p['metrics']['missing'], 0)
        self.assertEqual(p['metrics']['unhealthy'], 0)
        self.assertEqual(p['details']['missing'], [])

    def test_missing_alert_fails_naming_it(self):
        run, p = self.rules_probe(ALL_ALERTS + ['DiskFull'])
        self.assertEqual((run['state'], run['verdict'], p['state']),
                         ('failed', 'FAIL', 'failed'), run)
        self.assertEqual(p['metrics']['missing'], 1)
        self.assertEqual(p['details']['missing'], ['DiskFull'])
        self.assertIn('DiskFull', p['error'])
        self.assertEqual(run['gates'][0]['outcome'], 'fail')

    def test_rule_files_validated(self):
        with tempfile.TemporaryDirectory() as d:
            good, bad = os.path.join(d, 'good.yml'), os.path.join(d, 'bad.yml')
            with open(good, 'w') as f:
                f.write(RULES)
            with open(bad, 'w') as f:
                f.write('groups:\n  - name: x\n    rules:\n      - alert: A\n        for: soon\n')
            run, p = self.rules_probe(ALL_ALERTS, f'    rule_files: {flow([good])}\n')
            self.assertEqual(p['state'], 'passed', run)
            self.assertEqual(p['metrics']['rule_file_errors'], 0)
            run, p = self.rules_probe(ALL_ALERTS, f'    rule_files: {flow([good, bad])}\n')
        self.assertEqual(p['state'], 'failed', run)
        self.assertEqual(p['metrics']['rule_file_errors'], 2)  # no expr, bad for
        files = p['details']['rule_files']
        self.assertEqual([f['error_count'] for f in files], [0, 2])
        paths = sorted(e['path'] for e in files[1]['errors'])
        self.assertEqual(paths, ['groups[0].rules[0].expr', 'groups[0].rules[0].for'])
        self.assertIn('bad.yml', p['error'])

    def query_probe(self, query, gates=(), extra=''):
        return self.run_probe(f"""  - name: q
    type: prometheus-query
    prometheus: {self.prom.url}
    query: {json.dumps(query)}
{extra}""", gates=gates)

    def test_query_value_drives_gate(self):
        run, p = self.query_probe('count(up{job="demo"} == 1)', ['q.value == 1'])
        self.assertEqual((run['verdict'], p['metrics']['value']), ('PASS', 1), run)
        self.assertEqual(run['gates'][0]['value'], 1)
        run, p = self.query_probe('count(up{job="demo"} == 1)', ['q.value > 1'])
        self.assertEqual((run['verdict'], p['state']), ('FAIL', 'passed'), run)
        self.assertEqual(run['gates'][0]['outcome'], 'fail')

    def test_range_query_with_function(self):
        run, p = self.query_probe('up{job="demo"} * 3', ['q.value == 3'],
                                  '    range: 5s\n    function: max\n')
        self.assertEqual(run['verdict'], 'PASS', run)
        self.assertEqual(p['details']['result_type'], 'matrix')
        self.assertGreaterEqual(p['details']['points'], 1)

    def test_query_error_modes(self):
        cases = [
            ('up{job="nope"}', 'no series (empty result)'),
            ('{__name__=~"inference_.*_total"}', 'returned 3 series'),
            ('vector(0) / vector(0)', 'value is NaN'),
            ('sum(rate(', 'bad_data'),
        ]
        for query, needle in cases:
            with self.subTest(query=query):
                run, p = self.query_probe(query, ['q.value < 1'])
                self.assertEqual((run['verdict'], p['state']), ('ERROR', 'error'), run)
                self.assertIn(needle, p['error'])
                self.assertIn(query, p['error'])  # the query is always shown

    def test_placeholders_need_a_load_window(self):
        run, p = self.query_probe('sum(rate(inference_requests_total[{{window}}]))')
        self.assertEqual(p['state'], 'error', run)
        self.assertIn('no load probe ran before', p['error'])

    def test_placeholders_use_the_load_window(self):
        text = spec(f"""  - name: latency
    type: load
    mode: rate
    rate: 50
    connections: 4
    duration: 3s
  - name: q
    type: prometheus-query
    prometheus: {self.prom.url}
    query: sum(increase(inference_requests_total[{{{{window}}}}] @ {{{{end}}}}))
""", ['q.value > 50'])
        text = text.replace('probes:\n', 'target:\n  url: %s/v1/predict\nprobes:\n' % self.demo.url)
        run = self.daemon.run_spec(text, timeout=60)
        load, q = run['probes']
        self.assertEqual(load['state'], 'passed', run)
        self.assertEqual((q['state'], run['verdict']), ('passed', 'PASS'), run)
        self.assertRegex(q['details']['query'], r'\[\d{4}ms\] @ 1\d{9}\.\d{3}\)\)$')
        self.assertLess(q['metrics']['value'], 400)

    def test_not_prometheus_errors(self):
        cases = [
            # refused: a port nobody listens on
            ('http://127.0.0.1:%d' % lib.free_port(), 'Couldn'),
            # JSON, but not the API's envelope: the demo target's /version
            (self.demo.url + '/version?x=', 'not a Prometheus API response'),
            # not JSON at all
            (self.demo.url + '/metrics?x=', 'not JSON'),
            # a 404 page
            (self.demo.url, 'HTTP 404'),
        ]
        for base, needle in cases:
            for ptype in ('prometheus-query', 'prometheus-rules'):
                with self.subTest(base=base, type=ptype):
                    run, p = self.run_probe(f"""  - name: q
    type: {ptype}
    prometheus: {json.dumps(base)}
""" + ('    query: up\n' if ptype == 'prometheus-query' else ''))
                    self.assertEqual((run['verdict'], p['state']), ('ERROR', 'error'), run)
                    self.assertIn(needle, p['error'])
                    self.assertIn('/api/v1/', p['error'])

    def scrape_probe(self, url, require):
        return self.run_probe(f"""  - name: expo
    type: prometheus-scrape
    url: {url}/metrics
    require: {flow(require)}
""", gates=['expo.missing == 0'])

    def test_scrape_demo_target(self):
        req = ['inference_requests_total', 'inference_errors_total',
               'inference_duration_seconds_bucket', 'inference_duration_seconds:histogram']
        run, p = self.scrape_probe(self.demo.url, req)
        self.assertEqual((run['verdict'], p['state']), ('PASS', 'passed'), run)
        self.assertEqual(p['metrics']['missing'], 0)
        self.assertGreaterEqual(p['metrics']['families'], 4)
        self.assertGreaterEqual(p['metrics']['samples'], 18)
        self.assertEqual(p['details']['format'], 'openmetrics')
        run, p = self.scrape_probe(self.demo.url, ['inference_requests_total:gauge'])
        self.assertEqual(p['state'], 'failed', run)
        self.assertEqual(p['details']['wrong_type'][0]['got'], 'counter')

    def test_scrape_omitted_family_fails(self):
        with lib.DemoTarget(omit_metric='inference_errors_total') as demo:
            run, p = self.scrape_probe(demo.url, ['inference_requests_total',
                                                  'inference_errors_total'])
        self.assertEqual((run['verdict'], p['state']), ('FAIL', 'failed'), run)
        self.assertEqual(p['details']['missing'], ['inference_errors_total'])
        self.assertIn('inference_errors_total', p['error'])

    def test_scrape_errors(self):
        run, p = self.scrape_probe('http://127.0.0.1:%d' % lib.free_port(), ['x'])
        self.assertEqual(p['state'], 'error', run)
        self.assertIn('/metrics', p['error'])
        run, p = self.run_probe(f"""  - name: expo
    type: prometheus-scrape
    url: {self.demo.url}/version
""")
        self.assertEqual(p['state'], 'error', run)
        self.assertIn('does not parse: line 1', p['error'])

    def test_alertmanager_healthy(self):
        with lib.Alertmanager() as am:
            run, p = self.run_probe(f"""  - name: am
    type: http
    url: {am.url}/-/healthy
    expect_status: 200
""", gates=['am.ok == 1'])
        self.assertEqual((run['verdict'], p['metrics']['status']), ('PASS', 200), run)


class TestAlertDrill(PromBase):

    def drill(self, alert, within, extra=''):
        return self.run_probe(f"""  - name: drill
    type: alert-drill
    prometheus: {self.prom.url}
    alert: {alert}
    trigger: {{ method: POST, url: "{self.demo.url}/admin/fault?errors=0.5" }}
    clear: {{ method: POST, url: "{self.demo.url}/admin/fault?errors=0" }}
    within: {within}
    poll_interval: 250ms
{extra}""", gates=['drill.seconds_to_fire < 60'], timeout=90)

    def fault_active(self):
        codes = [lib.http('GET', self.demo.url + '/v1/predict').status for _ in range(40)]
        return 500 in codes

    def test_drill_fires_and_resolves(self):
        with Traffic(self.demo.url):
            run, p = self.drill('HighErrorRate', '45s', '    wait_resolve: 45s\n')
        self.assertEqual((run['verdict'], p['state']), ('PASS', 'passed'), run)
        fire = p['metrics']['seconds_to_fire']
        self.assertGreater(fire, 2.0)  # `for: 2s` has to pass first
        self.assertLess(fire, 45)
        self.assertGreater(p['metrics']['seconds_to_resolve'], 0)
        self.assertEqual(p['details']['trigger_status'], 200)
        self.assertEqual(p['details']['clear_status'], 200)
        self.assertIsNotNone(p['details'].get('pending_after_s'))
        self.assertFalse(self.fault_active())  # clear was sent

    def test_drill_never_fires_fails_within(self):
        t0 = time.monotonic()
        run, p = self.drill('GPUOutOfMemory', '3s')
        self.assertLess(time.monotonic() - t0, 20)
        self.assertEqual((run['verdict'], p['state']), ('ERROR', 'failed'), run)
        self.assertIn('did not fire within 3s', p['error'])
        self.assertNotIn('seconds_to_fire', p['metrics'])
        self.assertEqual(p['details']['clear_status'], 200)
        self.assertFalse(self.fault_active())

    def test_drill_cancel_still_clears(self):
        r = self.daemon.submit(spec(f"""  - name: drill
    type: alert-drill
    prometheus: {self.prom.url}
    alert: GPUOutOfMemory
    trigger: {{ method: POST, url: "{self.demo.url}/admin/fault?errors=0.5" }}
    clear: {{ method: POST, url: "{self.demo.url}/admin/fault?errors=0" }}
    within: 60s
"""))
        self.assertEqual(r.status, 201, r)
        run_id = r.json['id']
        lib.Prometheus.wait_for(self.fault_active, timeout=10, what='fault injected')
        self.assertEqual(self.daemon.request('POST', '/v1/runs/%d/cancel' % run_id).status, 202)
        run = self.daemon.wait_run(run_id, timeout=30)
        self.assertEqual(run['probes'][0]['state'], 'cancelled', run)
        self.assertEqual(run['probes'][0]['details']['clear_status'], 200)
        self.assertFalse(self.fault_active())

    def test_drill_prometheus_down_errors_and_clears(self):
        run, p = self.run_probe(f"""  - name: drill
    type: alert-drill
    prometheus: http://127.0.0.1:{lib.free_port()}
    alert: HighErrorRate
    trigger: {{ method: POST, url: "{self.demo.url}/admin/fault?errors=0.5" }}
    clear: {{ method: POST, url: "{self.demo.url}/admin/fault?errors=0" }}
    within: 10s
""")
        self.assertEqual(p['state'], 'error', run)
        self.assertIn('/api/v1/alerts', p['error'])
        self.assertEqual(p['details']['clear_status'], 200)
        self.assertFalse(self.fault_active())


class TestBrokenRule(PromBase):
    rules = RULES + BROKEN_RULE

    def test_unhealthy_rule_fails(self):
        run, p = self.run_probe(f"""  - name: alert-rules
    type: prometheus-rules
    prometheus: {self.prom.url}
    require: {flow(ALL_ALERTS)}
""", gates=['alert-rules.unhealthy == 0'])
        self.assertEqual((run['verdict'], p['state']), ('FAIL', 'failed'), run)
        self.assertEqual(p['metrics']['unhealthy'], 1)
        self.assertEqual(p['metrics']['missing'], 0)
        bad = p['details']['unhealthy'][0]
        self.assertEqual((bad['rule'], bad['group'], bad['health']), ('BrokenRegex', 'demo', 'err'))
        self.assertIn('invalid regular expression', bad['error'])
        self.assertIn('BrokenRegex', p['error'])


if __name__ == '__main__':
    lib.main()
