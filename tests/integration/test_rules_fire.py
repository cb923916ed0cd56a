"""Integration: alerting rules that can never fire, and the gate on
alerts already firing, against a real Prometheus (Debian package) that
scrapes the real demo target. The four rules of the deployment checklist
use the demo target's series: HighLatency and LowThroughput can fire;
HighErrorRate divides two sides whose labels differ (the errors counter
has no `code` label) and GPUOutOfMemory asks for DCGM series nobody
exports, so those two never can, though Prometheus calls all four
healthy. One Prometheus for the file; every case takes seconds."""
import contextlib
import json
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

RULES = """groups:
  - name: checklist
    interval: 1s
    rules:
      - alert: HighLatency
        expr: histogram_quantile(0.95, sum by (le) (rate(inference_duration_seconds_bucket[5m]))) > 0.5
        labels: { severity: warning, service: demo }
      - alert: HighErrorRate
        expr: rate(inference_errors_total[5m]) / rate(inference_requests_total[5m]) > 0.05
        labels: { severity: critical, service: demo }
      - alert: LowThroughput
        expr: sum(rate(inference_requests_total[5m])) < 10
        labels: { severity: warning, service: demo }
      - alert: GPUOutOfMemory
        expr: DCGM_FI_DEV_FB_FREE / (DCGM_FI_DEV_FB_FREE + DCGM_FI_DEV_FB_USED) < 0.1
        labels: { severity: critical, service: demo }
  - name: fixed
    interval: 1s
    rules:
      - alert: HighErrorRateFixed
        expr: sum(rate(inference_errors_total[5m])) / sum(rate(inference_requests_total[5m])) > 0.05
        labels: { severity: critical, service: demo }
      # The same label names on both sides, values that differ today:
      # empty now, but not a rule that can never fire.
      - alert: CodeRatio
        expr: inference_requests_total{code="500"} / on(code) inference_requests_total{code="200"} > 1
        labels: { severity: critical, service: demo }
      # Selecting nothing is the point of absent() (no service label:
      # it fires here, for nobody's service).
      - alert: GPUExporterDown
        expr: absent(DCGM_FI_DEV_FB_FREE)
        labels: { severity: critical }
  - name: typos
    interval: 1s
    rules:
      - alert: ServerErrors
        expr: sum(rate(inference_requests_total{code="5xx"}[5m])) > 1
  # Valid PromQL past readyd's bounds: analysed by nobody, said so.
  - name: wide
    interval: 1s
    rules:
      - alert: ManySelectors
        expr: %s
      - alert: ManyMatchers
        expr: 'up{%s}'
""" % (' or '.join('up{job="j%d"}' % i for i in range(65)),
       ', '.join('l%d="v"' % i for i in range(65)))

CHECKLIST = ['HighLatency', 'HighErrorRate', 'LowThroughput', 'GPUOutOfMemory']


def spec(probes, gates=()):
    text = 'apiVersion: readyd/v1\nservice: demo\nversion: 1.0.0\nenvironment: test\n'
    text += 'timeout: 5m\nprobes:\n' + probes
    if gates:
        text += 'gates:\n' + ''.join('  - %s\n' % json.dumps(g) for g in gates)
    return text


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class FireBase(lib.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.stack = contextlib.ExitStack()
        try:
            cls.demo = cls.stack.enter_context(lib.DemoTarget())
            cls.prom = cls.stack.enter_context(
                lib.Prometheus(rules=RULES, scrape_targets=[cls.demo.url]))
            cls.daemon = cls.stack.enter_context(lib.Daemon())
            # rate() over the counters needs two scrapes of each series.
            cls.prom.wait_for(
                lambda: cls.prom.query('count(rate(inference_requests_total[5m]))') == 2.0,
                what='two scrapes of the demo target')
            cls.prom.wait_for(cls.prom.rules_evaluated, what='rules evaluated')
            cls.prom.wait_for(lambda: cls.prom.query(
                'count(ALERTS{alertname="LowThroughput", alertstate="firing"})') == 1.0,
                what='LowThroughput firing')
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

    def run_probe(self, probe_yaml, gates=()):
        run = self.daemon.run_spec(spec(probe_yaml, gates), timeout=60)
        return run, run['probes'][0]


class TestCannotFire(FireBase):

    def rules(self, require, prometheus=None):
        return self.run_probe(f"""  - name: alerting
    type: prometheus-rules
    prometheus: {prometheus or self.prom.url}
    require: {json.dumps(require)}
""", ['alerting.cannot_fire == 0'])

    def test_checklist_rules_two_cannot_fire(self):
        run, p = self.rules(CHECKLIST)
        self.assertEqual((run['verdict'], p['state']), ('FAIL', 'failed'), run)
        self.assertEqual(p['metrics']['unhealthy'], 0)  # Prometheus calls them healthy
        self.assertEqual(p['metrics']['cannot_fire'], 2)
        self.assertEqual(p['metrics']['analysed'], 4)
        self.assertEqual(p['metrics']['not_analysed'], 0)
        gate = run['gates'][0]
        self.assertEqual((gate['expr'], gate['outcome']), ('alerting.cannot_fire == 0', 'fail'))
        by_rule = {}
        for f in p['details']['cannot_fire']:
            by_rule.setdefault(f['rule'], []).append(f)
        print('\ncannot_fire %d of %d analysed' % (p['metrics']['cannot_fire'],
                                                  p['metrics']['analysed']))
        for rule in CHECKLIST:
            for f in by_rule.get(rule, [{'reason': 'can fire'}]):
                where = f.get('selector') or f.get('expression')
                print('  %s: %s%s' % (rule, f['reason'], ' [%s]' % where if where else ''))
        self.assertEqual(sorted(by_rule), ['GPUOutOfMemory', 'HighErrorRate'])
        [err] = by_rule['HighErrorRate']
        self.assertEqual(err['expression'],
                         'rate(inference_errors_total[5m]) / rate(inference_requests_total[5m])')
        self.assertEqual(err['reason'],
                         "the sides of '/' match no series pair: only the right side has the "
                         "label(s) code (match them with on(instance, job) or ignoring(code), "
                         "or aggregate both sides with sum by (...))")
        self.assertEqual([f['selector'] for f in by_rule['GPUOutOfMemory']],
                         ['DCGM_FI_DEV_FB_FREE', 'DCGM_FI_DEV_FB_USED'])
        self.assertEqual(by_rule['GPUOutOfMemory'][0]['reason'],
                         'no series matches DCGM_FI_DEV_FB_FREE now or in the last 1h')
        self.assertIn('alert HighErrorRate (group checklist) cannot fire: the sides of', p['error'])
        self.assertIn('alert GPUOutOfMemory (group checklist) cannot fire: no series matches '
                      'DCGM_FI_DEV_FB_FREE', p['error'])

    def test_fixed_rule_can_fire(self):
        # sum() on both sides: one series each, no labels to differ.
        run, p = self.rules(['HighLatency', 'HighErrorRateFixed', 'LowThroughput',
                             'CodeRatio', 'GPUExporterDown'])
        self.assertEqual((run['verdict'], p['state']), ('PASS', 'passed'), run)
        print('\nwith sum() on both sides: cannot_fire %d of %d analysed'
              % (p['metrics']['cannot_fire'], p['metrics']['analysed']))
        self.assertEqual(p['metrics']['cannot_fire'], 0)
        self.assertEqual(p['metrics']['analysed'], 5)
        self.assertEqual(run['gates'][0]['outcome'], 'pass')
        self.assertEqual(p['details']['cannot_fire'], [])

    def test_label_value_typo_named(self):
        run, p = self.rules(['ServerErrors'])
        self.assertEqual((run['verdict'], p['metrics']['cannot_fire']), ('FAIL', 1), run)
        [f] = p['details']['cannot_fire']
        self.assertEqual(f['selector'], 'inference_requests_total{code="5xx"}')
        self.assertEqual(f['reason'], 'no series matches inference_requests_total{code="5xx"} '
                                      'now or in the last 1h; inference_requests_total has '
                                      'series, but none with these label values')

    def test_rules_past_bounds_not_analysed(self):
        run, p = self.rules(['ManySelectors', 'ManyMatchers'])
        self.assertEqual((p['metrics']['analysed'], p['metrics']['not_analysed']), (0, 2), run)
        reasons = {r['rule']: r['reason'] for r in p['details']['not_analysed']}
        self.assertEqual(reasons['ManySelectors'],
                         'its expr has more than 64 selectors and vector operations')
        # Prometheus serves the expr in its own spelling: the byte varies.
        self.assertRegex(reasons['ManyMatchers'],
                         r'^readyd cannot parse its expr at byte [1-9][0-9]*: a selector has '
                         r'more than 64 label matchers$')

    def test_can_fire_off_publishes_nothing(self):
        run, p = self.run_probe(f"""  - name: alerting
    type: prometheus-rules
    prometheus: {self.prom.url}
    require: {json.dumps(CHECKLIST)}
    can_fire: false
""", ['alerting.missing == 0'])
        self.assertEqual((run['verdict'], p['state']), ('PASS', 'passed'), run)
        self.assertNotIn('cannot_fire', p['metrics'])


class TestAlertsGate(FireBase):
    """LowThroughput (severity warning, service demo) fires: the demo
    target serves no traffic here. Nothing else does."""

    def alerts(self, matchers, severities=None, prometheus=None, gates=('alerts.firing == 0',)):
        extra = '    severities: %s\n' % json.dumps(severities) if severities else ''
        return self.run_probe(f"""  - name: alerts
    type: prometheus-alerts
    prometheus: {prometheus or self.prom.url}
    matchers: {json.dumps(matchers)}
{extra}""", list(gates))

    def test_firing_alert_fails_naming_it(self):
        run, p = self.alerts(['service="demo"'], gates=['alerts.firing == 0',
                                                         'alerts.firing_warning == 0'])
        self.assertEqual((run['verdict'], p['state']), ('FAIL', 'failed'), run)
        m = p['metrics']
        self.assertEqual((m['firing'], m['pending'], m['other']), (1, 0, 0))
        self.assertEqual((m['firing_warning'], m['firing_critical']), (1, 0))
        self.assertEqual(p['error'], '1 alert is already active: LowThroughput (firing, warning)')
        [a] = p['details']['alerts']
        self.assertEqual((a['alertname'], a['state'], a['severity']),
                         ('LowThroughput', 'firing', 'warning'))
        self.assertEqual(a['labels']['service'], 'demo')
        self.assertEqual([g['outcome'] for g in run['gates']], ['fail', 'fail'])

    def test_regex_matchers_select_too(self):
        run, p = self.alerts(['service=~"de.*"', 'alertname!~"High.*"'])
        self.assertEqual(p['metrics']['firing'], 1, run)
        run, p = self.alerts(['service=~"de"'])  # anchored, as in Prometheus
        self.assertEqual(p['metrics']['firing'], 0, run)

    def test_none_firing_passes_with_zero(self):
        # Only critical alerts count: the warning is `other`.
        run, p = self.alerts(['service="demo"'], ['critical'],
                             gates=['alerts.firing == 0', 'alerts.firing_critical == 0',
                                    'alerts.pending == 0'])
        self.assertEqual((run['verdict'], p['state']), ('PASS', 'passed'), run)
        self.assertEqual((p['metrics']['firing'], p['metrics']['pending']), (0, 0))
        self.assertEqual(p['metrics']['other'], 1)
        self.assertEqual(p['details']['alerts'], [])
        # Another service: no alert at all is zero, not an error.
        run, p = self.alerts(['service="checkout"'])
        self.assertEqual((run['verdict'], p['state']), ('PASS', 'passed'), run)
        self.assertEqual((p['metrics']['firing'], p['metrics']['other']), (0, 0))

    def test_prometheus_unreachable_errors(self):
        down = 'http://127.0.0.1:%d' % free_port()
        run, p = self.alerts(['service="demo"'], prometheus=down)
        self.assertEqual((run['verdict'], p['state']), ('ERROR', 'error'), run)
        self.assertIn('/api/v1/alerts', p['error'])
        self.assertEqual(run['gates'][0]['outcome'], 'error')

    def test_bad_matcher_is_refused_with_its_path(self):
        r = self.daemon.submit(spec(f"""  - name: alerts
    type: prometheus-alerts
    prometheus: {self.prom.url}
    matchers: ['service="demo"', 'severity=critical']
"""))
        self.assertEqual(r.status, 422, r)
        self.assertIn('probes[0].matchers[1]', r.json['detail'])
        self.assertIn('is not a label matcher such as service="checkout" (at byte 9: '
                      'expected a string)', r.json['detail'])


if __name__ == '__main__':
    lib.main()
