"""Integration: the prometheus-scrape, prometheus-rules, prometheus-query
and alert-drill probes against a real Prometheus (Debian package) that
scrapes the demo target and evaluates alert rules every second, and the
plain http probe against a real Alertmanager. One Prometheus per class;
every case takes seconds."""
import contextlib
import copy
import http.server
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


class PromBase(lib.TestCase):
    rules = RULES

    @classmethod
    def setUpClass(cls):
        cls.stack = contextlib.ExitStack()
        try:
            cls.demo = cls.stack.enter_context(lib.DemoTarget())
            cls.prom = cls.stack.enter_context(
                lib.Prometheus(rules=cls.rules, scrape_targets=[cls.demo.url]))
            # rule_files must lie in a directory readyd.yaml allows.
            cls.files = cls.stack.enter_context(tempfile.TemporaryDirectory())
            cls.daemon = cls.stack.enter_context(
                lib.Daemon(config='allowed_paths: [%s]\n' % json.dumps(cls.files)))
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
        with tempfile.TemporaryDirectory(dir=self.files) as d:
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

    def setUp(self):
        super().setUp()
        # A drill refuses an alert that is still active from an earlier test.
        self.prom.wait_for(lambda: not active_alerts(self.prom, 'HighErrorRate'),
                           timeout=60, what='HighErrorRate inactive')

    def test_drill_without_within_fails_before_the_deadline(self):
        # No `within`: the alert has what the deadline leaves after clear;
        # not firing is still the service failing, not "did not finish".
        t0 = time.monotonic()
        run, p = self.run_probe(f"""  - name: drill
    type: alert-drill
    prometheus: {self.prom.url}
    alert: GPUOutOfMemory
    trigger: {{ method: POST, url: "{self.demo.url}/admin/fault?errors=0.5" }}
    clear: {{ method: POST, url: "{self.demo.url}/admin/fault?errors=0" }}
    timeout: 20s
    poll_interval: 250ms
""", gates=['drill.seconds_to_fire < 60'])
        self.assertLess(time.monotonic() - t0, 15)
        self.assertEqual((run['verdict'], p['state']), ('FAIL', 'failed'), run)
        self.assertRegex(p['error'], r"^alert GPUOutOfMemory did not fire within [45]s \(what "
                                     r"the probe's deadline leaves; no within set\)")
        self.assertEqual(p['details']['clear_status'], 200)

    def test_drill_misspelled_alert_errors_before_trigger(self):
        t0 = time.monotonic()
        run, p = self.drill('HighErrorRat', '20s')
        self.assertLess(time.monotonic() - t0, 15)  # not the 20 s of `within`
        self.assertEqual((run['verdict'], p['state']), ('ERROR', 'error'), run)
        self.assertIn('no alerting rule named HighErrorRat is loaded', p['error'])
        self.assertIn('(did you mean HighErrorRate?)', p['error'])
        self.assertIn('nothing was triggered', p['error'])
        self.assertNotIn('trigger_status', p['details'])  # the fault was never sent
        self.assertNotIn('clear_status', p['details'])
        run, p = self.drill('DiskFull', '20s')
        self.assertEqual(p['state'], 'error', run)
        self.assertIn('no alerting rule named DiskFull', p['error'])
        self.assertNotIn('did you mean', p['error'])
        # A recording rule or nothing at all is not an alert either.
        self.assertNotIn('trigger_status', p['details'])

    def test_drill_refuses_alert_already_firing(self):
        with lib.Traffic(self.demo.url):
            try:
                self.demo.post('/admin/fault?errors=0.5')
                self.prom.wait_for(
                    lambda: 'firing' in active_alerts(self.prom, 'HighErrorRate').values(),
                    timeout=30, what='HighErrorRate firing before the drill')
                t0 = time.monotonic()
                run, p = self.drill('HighErrorRate', '20s')
            finally:
                self.demo.post('/admin/fault?errors=0')
        self.assertLess(time.monotonic() - t0, 15)
        self.assertEqual((run['verdict'], p['state']), ('ERROR', 'error'), run)
        # sum() keeps only the rule's own labels.
        self.assertIn('HighErrorRate is already firing for severity="page"; the drill cannot '
                      'measure it', p['error'])
        self.assertNotIn('seconds_to_fire', p['metrics'])
        self.assertNotIn('trigger_status', p['details'])
        self.assertEqual(p['details']['state_before'], 'firing')
        self.assertEqual(p['details']['active_before'],
                         {'alertname': 'HighErrorRate', 'severity': 'page'})
        self.assertEqual(run['gates'][0]['outcome'], 'error')

    def test_drill_fires_and_resolves(self):
        with lib.Traffic(self.demo.url):
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
        # The service failed the drill: FAIL, not ERROR, and the gate on
        # the metric it could not publish fails with the probe's reason.
        self.assertEqual((run['verdict'], p['state']), ('FAIL', 'failed'), run)
        self.assertIn('did not fire within 3s', p['error'])
        self.assertNotIn('seconds_to_fire', p['metrics'])
        self.assertEqual(run['gates'][0]['outcome'], 'fail', run)
        self.assertIn('did not fire within 3s', run['gates'][0]['reason'])
        self.assertEqual(p['details']['state_before'], 'inactive')
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

    def test_drill_prometheus_down_errors_before_trigger(self):
        run, p = self.run_probe(f"""  - name: drill
    type: alert-drill
    prometheus: http://127.0.0.1:{lib.free_port()}
    alert: HighErrorRate
    trigger: {{ method: POST, url: "{self.demo.url}/admin/fault?errors=0.5" }}
    clear: {{ method: POST, url: "{self.demo.url}/admin/fault?errors=0" }}
    within: 10s
""")
        self.assertEqual(p['state'], 'error', run)
        self.assertIn('/api/v1/rules', p['error'])
        self.assertIn("Couldn't connect", p['error'])
        # Nothing was triggered, so there is nothing to clear.
        self.assertNotIn('trigger_status', p['details'])
        self.assertNotIn('clear_status', p['details'])
        self.assertFalse(self.fault_active())


def active_alerts(prom, name):
    """{instance or '': state} of the alerts named name Prometheus lists."""
    alerts = prom.api('/api/v1/alerts').get('data', {}).get('alerts', [])
    return {a['labels'].get('instance', ''): a['state'] for a in alerts
            if a['labels'].get('alertname') == name}


SERIES_RULES = """groups:
  - name: series
    interval: 1s
    rules:
      - alert: HighErrorRate
        expr: rate(inference_errors_total[5s]) > 0
        for: 2s
      - alert: AlwaysPending
        expr: vector(1) > 0
        for: 1h
"""


class TestDrillSeries(lib.TestCase):
    """Two demo targets behind one Prometheus, an alert per instance: one
    instance's alert is already firing while the drill runs on the other."""

    @classmethod
    def setUpClass(cls):
        cls.stack = contextlib.ExitStack()
        try:
            cls.a = cls.stack.enter_context(lib.DemoTarget())
            cls.b = cls.stack.enter_context(lib.DemoTarget())
            cls.prom = cls.stack.enter_context(
                lib.Prometheus(rules=SERIES_RULES, scrape_targets=[cls.a.url, cls.b.url]))
            cls.daemon = cls.stack.enter_context(lib.Daemon())
            cls.prom.wait_for(lambda: cls.prom.query('count(up == 1)') == 2.0,
                              what='both demo targets up')
            cls.prom.wait_for(cls.prom.rules_evaluated, what='rules evaluated')
        except BaseException:
            cls.stack.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()

    def setUp(self):
        super().setUp()
        for p in (self.daemon, self.prom, self.a, self.b):
            self.track(p)

    def drill(self, alert, within, labels=None, errors='0.5', extra=''):
        b = self.b.url
        text = spec(f"""  - name: drill
    type: alert-drill
    prometheus: {self.prom.url}
    alert: {alert}
    trigger: {{ method: POST, url: "{b}/admin/fault?errors={errors}" }}
    clear: {{ method: POST, url: "{b}/admin/fault?errors=0" }}
    within: {within}
    poll_interval: 250ms
""" + (f'    labels: {json.dumps(labels)}\n' if labels else '') + extra,
                    ['drill.seconds_to_fire < 60'])
        run = self.daemon.run_spec(text, timeout=120)
        return run, run['probes'][0]

    def b_fault_active(self):
        return 500 in [lib.http('GET', self.b.url + '/v1/predict').status for _ in range(40)]

    def test_labels_pick_the_series_another_one_already_firing(self):
        a_inst, b_inst = self.a.url[len('http://'):], self.b.url[len('http://'):]
        with lib.Traffic(self.a.url), lib.Traffic(self.b.url):
            try:
                self.a.post('/admin/fault?errors=0.5')
                self.prom.wait_for(
                    lambda: active_alerts(self.prom, 'HighErrorRate').get(a_inst) == 'firing',
                    timeout=30, what='HighErrorRate firing for instance a')
                # Without labels every series counts: a's alert is firing
                # already, so there is nothing to measure.
                run0, p0 = self.drill('HighErrorRate', '30s')
                # With labels, only b's series counts, before and after.
                run1, p1 = self.drill('HighErrorRate', '30s', {'instance': b_inst},
                                      extra='    wait_resolve: 40s\n')
                # b's fault that injects nothing: a keeps firing, b never.
                run2, p2 = self.drill('HighErrorRate', '3s', {'instance': b_inst}, errors='0')
            finally:
                self.a.post('/admin/fault?errors=0')

        self.assertEqual((run0['verdict'], p0['state']), ('ERROR', 'error'), run0)
        self.assertIn('HighErrorRate is already firing for instance="%s", job="demo"; '
                      'the drill cannot measure it' % a_inst, p0['error'])
        self.assertIn('pick another series with labels', p0['error'])
        self.assertNotIn('trigger_status', p0['details'])
        self.assertNotIn('seconds_to_fire', p0['metrics'])

        self.assertEqual((run1['verdict'], p1['state']), ('PASS', 'passed'), run1)
        self.assertEqual(p1['details']['labels'], {'instance': b_inst})
        self.assertEqual(p1['details']['state_before'], 'inactive')
        self.assertGreater(p1['metrics']['seconds_to_fire'], 2.0)  # `for: 2s` first
        # Resolved although a's series still fires: only b's counts.
        self.assertGreater(p1['metrics']['seconds_to_resolve'], 0)
        self.assertEqual(p1['details']['clear_status'], 200)

        self.assertEqual((run2['verdict'], p2['state']), ('FAIL', 'failed'), run2)
        self.assertIn('did not fire within 3s', p2['error'])
        self.assertIn('it was active for a series the labels exclude: instance="%s"' % a_inst,
                      p2['error'])
        self.assertFalse(self.b_fault_active())

    def test_pending_before_trigger_refused(self):
        run, p = self.drill('AlwaysPending', '5s')
        self.assertEqual((run['verdict'], p['state']), ('ERROR', 'error'), run)
        self.assertIn('AlwaysPending is already pending: its condition holds without the '
                      'fault; the drill cannot measure it', p['error'])
        self.assertNotIn('trigger_status', p['details'])
        self.assertEqual(p['details']['state_before'], 'pending')


FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        'unit', 'fixtures')


def fixture(name):
    """An answer recorded from a real Prometheus 2.42 (tests/unit/fixtures)."""
    with open(os.path.join(FIXTURES, 'prom-%s.json' % name), encoding='utf-8') as f:
        return json.load(f)


class FakePrometheus:
    """127.0.0.1:0 answering paths from .answers (a JSON document, or a
    callable returning (status, document)); every request is recorded as
    (method, path). For states a real Prometheus shows only by chance or
    never on demand: a group that is never evaluated, an API that breaks
    halfway through a drill."""

    def __init__(self):
        self.answers = {}
        self.requests = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def answer(self):
                path = self.path.split('?', 1)[0]
                fake.requests.append((self.command, path))
                a = fake.answers.get(path)
                status, doc = a() if callable(a) else (200 if a is not None else 404, a)
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = answer

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = 'http://127.0.0.1:%d' % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def posts(self):
        return [path for method, path in self.requests if method == 'POST']


def every_interval(rules, seconds):
    rules = copy.deepcopy(rules)
    for g in rules['data']['groups']:
        g['interval'] = seconds
    return rules


class TestFakePrometheus(lib.TestCase):
    """Rules and drills against FakePrometheus."""

    @classmethod
    def setUpClass(cls):
        cls.daemon = lib.Daemon().start()

    @classmethod
    def tearDownClass(cls):
        cls.daemon.__exit__(None, None, None)

    def setUp(self):
        super().setUp()
        self.track(self.daemon)
        self.fake = FakePrometheus().__enter__()
        self.addCleanup(self.fake.__exit__, None, None, None)

    def run_probe(self, probe_yaml, gates=()):
        run = self.daemon.run_spec(spec(probe_yaml, gates), timeout=90)
        return run, run['probes'][0]

    def rules_probe(self):
        # The fake has no query API: whether the rules can fire is asked
        # of a real Prometheus (test_rules_fire.py).
        return self.run_probe(f"""  - name: alert-rules
    type: prometheus-rules
    prometheus: {self.fake.url}
    require: [HighErrorRate]
    can_fire: false
""", ['alert-rules.unhealthy == 0'])

    def test_rules_never_evaluated_fail_in_words(self):
        # Every rule stays "unknown": the probe waits the groups' interval
        # (1 s) and a margin for a first evaluation, then says so.
        self.fake.answers['/api/v1/rules'] = every_interval(fixture('rules-unevaluated'), 1)
        t0 = time.monotonic()
        run, p = self.rules_probe()
        self.assertGreater(time.monotonic() - t0, 5.5)
        self.assertEqual((run['verdict'], p['state']), ('FAIL', 'failed'), run)
        self.assertEqual(p['error'],
                         '3 rules were not evaluated yet after waiting %.1f s for the first '
                         'evaluation (health unknown; first: HighErrorRate in group demo, '
                         'which evaluates every 1s)' % p['details']['waited_s'])
        self.assertGreaterEqual(p['details']['waited_s'], 6.0)
        self.assertGreater(p['details']['polls'], 5)
        self.assertEqual(p['metrics']['unevaluated'], 3)
        self.assertEqual(p['metrics']['unhealthy'], 0)
        self.assertEqual([u['rule'] for u in p['details']['unevaluated']],
                         ['HighErrorRate', 'job:requests:rate5s', 'GPUOutOfMemory'])

    def test_rules_unhealthy_without_message_in_words(self):
        rules = fixture('rules-evaluated')
        demo, slow = rules['data']['groups']
        demo['rules'][0].update(health='err', lastError='')
        slow['rules'][0]['health'] = 'flaky'
        self.fake.answers['/api/v1/rules'] = rules
        run, p = self.rules_probe()
        self.assertEqual((run['verdict'], p['state']), ('FAIL', 'failed'), run)
        self.assertEqual(p['error'],
                         "unhealthy rule HighErrorRate in group demo reports health 'err' and "
                         "no error message; unhealthy rule GPUOutOfMemory in group slow "
                         "reports health 'flaky' and no error message")
        self.fake.answers['/api/v1/rules'] = fixture('rules-broken')
        run, p = self.rules_probe()
        self.assertEqual(p['error'],
                         'unhealthy rule BrokenRegex in group series fails to evaluate: '
                         'invalid regular expression in label_replace(): (')

    def drill(self, within='5s'):
        self.fake.answers['/trigger'] = self.fake.answers['/clear'] = {}
        return self.run_probe(f"""  - name: drill
    type: alert-drill
    prometheus: {self.fake.url}
    alert: HighErrorRate
    trigger: {{ method: POST, url: "{self.fake.url}/trigger" }}
    clear: {{ method: POST, url: "{self.fake.url}/clear" }}
    within: {within}
    poll_interval: 200ms
""", ['drill.seconds_to_fire < 60'])

    def test_drill_waits_for_first_evaluation_then_refuses(self):
        self.fake.answers['/api/v1/rules'] = every_interval(fixture('rules-unevaluated'), 1)
        self.fake.answers['/api/v1/alerts'] = {'status': 'success', 'data': {'alerts': []}}
        t0 = time.monotonic()
        run, p = self.drill()
        self.assertGreater(time.monotonic() - t0, 5.5)
        self.assertEqual((run['verdict'], p['state']), ('ERROR', 'error'), run)
        self.assertIn('alert HighErrorRate (group demo, evaluated every 1s) has not been '
                      'evaluated yet after', p['error'])
        self.assertIn('its state before the trigger is unknown', p['error'])
        self.assertEqual(self.fake.posts(), [])  # neither trigger nor clear

    def test_drill_evaluated_rule_measures(self):
        # The same answers once the rule has been evaluated: the drill runs.
        self.fake.answers['/api/v1/rules'] = fixture('rules-evaluated')
        firing = fixture('alerts-firing')

        def alerts():
            fired = '/trigger' in self.fake.posts()
            return 200, firing if fired else {'status': 'success', 'data': {'alerts': []}}
        self.fake.answers['/api/v1/alerts'] = alerts
        run, p = self.drill()
        self.assertEqual((run['verdict'], p['state']), ('PASS', 'passed'), run)
        self.assertEqual(self.fake.posts(), ['/trigger', '/clear'])
        self.assertLess(p['metrics']['seconds_to_fire'], 5)

    def test_drill_prometheus_breaks_after_trigger_still_clears(self):
        self.fake.answers['/api/v1/rules'] = fixture('rules-evaluated')

        def alerts():
            if '/trigger' in self.fake.posts():
                return 503, {'status': 'error', 'errorType': 'unavailable', 'error': 'down'}
            return 200, {'status': 'success', 'data': {'alerts': []}}
        self.fake.answers['/api/v1/alerts'] = alerts
        run, p = self.drill()
        self.assertEqual((run['verdict'], p['state']), ('ERROR', 'error'), run)
        self.assertIn('/api/v1/alerts', p['error'])
        self.assertIn('waiting for it to fire', p['error'])
        self.assertEqual(p['details']['clear_status'], 200)
        self.assertEqual(self.fake.posts(), ['/trigger', '/clear'])


SLOW_RULES = RULES.replace('interval: 1s', 'interval: 30s')


def rules_unevaluated(prom):
    groups = prom.api('/api/v1/rules').get('data', {}).get('groups', [])
    return any(r.get('health') == 'unknown' for g in groups for r in g['rules'])


class TestRulesFirstEvaluation(lib.TestCase):
    """A fresh Prometheus whose rules have not been evaluated yet: every
    rule says health "unknown" until its group's first evaluation."""

    @classmethod
    def setUpClass(cls):
        cls.daemon = lib.Daemon().start()

    @classmethod
    def tearDownClass(cls):
        cls.daemon.__exit__(None, None, None)

    def setUp(self):
        super().setUp()
        self.track(self.daemon)

    def fresh(self, rules):
        """A Prometheus just started, its rules still unevaluated (a group
        is first evaluated at an offset within its interval, so now and
        then that happens before we look: then another one)."""
        for _ in range(3):
            prom = lib.Prometheus(rules=rules).__enter__()
            if rules_unevaluated(prom):
                self.addCleanup(prom.__exit__, None, None, None)
                self.track(prom)
                return prom
            prom.__exit__(None, None, None)
        self.fail('every fresh Prometheus had evaluated its rules already')

    def rules_probe(self, prom, extra=''):
        run = self.daemon.run_spec(spec(f"""  - name: alert-rules
    type: prometheus-rules
    prometheus: {prom.url}
    require: {flow(ALL_ALERTS)}
{extra}""", ['alert-rules.missing == 0']), timeout=90)
        return run, run['probes'][0]

    def test_rules_waits_for_first_evaluation(self):
        # This Prometheus scrapes nothing, so no rule could ever fire;
        # the case is about the wait.
        prom = self.fresh(SLOW_RULES)
        run, p = self.rules_probe(prom, '    can_fire: false\n')
        self.assertEqual((run['verdict'], p['state']), ('PASS', 'passed'), run)
        self.assertEqual(p['metrics']['unhealthy'], 0)
        self.assertEqual(p['metrics']['unevaluated'], 0)
        self.assertLess(p['details']['waited_s'], 36)  # 30 s interval + 5 s margin

    def test_rules_deadline_shorter_than_interval_errors_in_words(self):
        for _ in range(3):
            prom = self.fresh(RULES.replace('interval: 1s', 'interval: 5m'))
            run, p = self.rules_probe(prom, '    timeout: 6s\n')
            if rules_unevaluated(prom):
                break  # the group was not evaluated meanwhile: the case holds
        self.assertEqual((run['verdict'], p['state']), ('ERROR', 'error'), run)
        self.assertIn('4 rules were not evaluated yet after waiting', p['error'])
        self.assertIn('which evaluates every 5m), all the probe\'s deadline leaves for '
                      'waiting: raise its timeout above the group\'s interval', p['error'])
        self.assertGreater(p['details']['waited_s'], 4.0)
        self.assertEqual(p['metrics']['unevaluated'], 4)


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
