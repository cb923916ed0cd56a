"""Integration: readyd watched like any service. A real Prometheus scrapes
a real readyd (with a viewer token, as an operator configures it) under
job "readyd" and loads contrib/prometheus/readyd-rules.yml; after a few
runs, every query of contrib/grafana/readyd.json (its template variables
resolved the way Grafana resolves them) must return a finite value, every
rule must evaluate without error, and the store-degraded alert's condition
must hold while the database file is gone, and readyd's own dashboard
probe must find data in every panel of that dashboard. /metrics must pass
`promtool check metrics`, the rule file `promtool check rules` and its
unit tests (`promtool test rules`, readyd-rules.test.yml)."""
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RULES = os.path.join(SRC, 'contrib', 'prometheus', 'readyd-rules.yml')
RULES_TEST = os.path.join(SRC, 'contrib', 'prometheus', 'readyd-rules.test.yml')
DASHBOARD = os.path.join(SRC, 'contrib', 'grafana', 'readyd.json')
PROMTOOL = shutil.which('promtool')
VIEWER, SUBMITTER = 'tok-monitoring-viewer', 'tok-monitoring-ci'
RATE_INTERVAL = '5m'  # what $__rate_interval becomes: the whole test


def sha(t):
    return hashlib.sha256(t.encode()).hexdigest()


CONFIG = """tokens:
  - { name: prometheus, role: viewer, hash: %s }
  - { name: ci, role: submitter, hash: %s }
""" % (sha(VIEWER), sha(SUBMITTER))


def spec(url, service, gate):
    return f"""apiVersion: readyd/v1
service: {service}
version: 1.0.0
environment: test
probes:
  - name: health
    type: http
    url: {url}/healthz
gates:
  - health.status == 200
  - {gate}
"""


# $__rate_interval is max($__interval + scrape_interval, 4 x scrape_interval):
# 75s makes it the 5m of RATE_INTERVAL, the test's whole length.
DASH_SPEC = """apiVersion: readyd/v1
service: checkout
version: 1.0.0
environment: dashboard
probes:
  - name: dash
    type: dashboard
    prometheus: {prom}
    scrape_interval: 75s
    dashboard: {dash}
    variables: {{job: readyd, instance: "{instance}", service: "checkout|search",
                 environment: test}}
gates:
  - dash.panels_without_data == 0
"""


class ScrapingPrometheus(lib.Prometheus):
    """Prometheus scraping readyd as docs/operations.md tells operators to:
    job "readyd", the viewer token as bearer credentials, readyd's rules."""

    def __init__(self, target, token, rules):
        super().__init__(rules=rules)
        self.target = target.split('://', 1)[-1]
        self.token = token

    def config(self):
        text = super().config().split('scrape_configs:')[0]
        return text + ('scrape_configs:\n  - job_name: readyd\n'
                       '    authorization: { credentials: %s }\n'
                       '    static_configs:\n      - targets: [%s]\n'
                       % (json.dumps(self.token), json.dumps(self.target)))

    def instant(self, expr):
        """The result vector of an instant query (raises on an error)."""
        body = self.api('/api/v1/query?query=' + urllib.parse.quote(expr))
        if body.get('status') != 'success':
            raise AssertionError('%s: %s' % (expr, body))
        return body['data']['result']

    def label_values(self, selector, label):
        body = self.api('/api/v1/series?' + urllib.parse.urlencode({'match[]': selector}))
        if body.get('status') != 'success':
            raise AssertionError('%s: %s' % (selector, body))
        return sorted({s[label] for s in body['data'] if label in s})


def finite(result):
    return [r for r in result if math.isfinite(float(r['value'][1]))]


def promql_regex(value):
    """A value as a regex inside a PromQL string, escaped as Grafana does:
    a backslash for the regex, doubled for the string."""
    return re.sub(r'([\\^$.|?*+()\[\]{}])', r'\\\\\1', value)


def substitute(expr, values):
    """Grafana's substitution: $var and ${var}; multi-value variables as a
    regex alternation (they are only used with =~)."""
    def one(m):
        name = m.group(1) or m.group(2)
        if name == '__rate_interval':
            return RATE_INTERVAL
        if name not in values:
            raise AssertionError('unknown variable $%s in %s' % (name, expr))
        return values[name]
    return re.sub(r'\$\{(\w+)\}|\$(\w+)', one, expr)


class MonitoringTest(lib.TestCase):
    @classmethod
    def setUpClass(cls):
        if not PROMTOOL or not shutil.which(lib.Prometheus.binary):
            raise AssertionError('prometheus and promtool are needed (scripts/install-deps)')
        with open(RULES, encoding='utf-8') as f:
            rules = f.read()
        cls.demo = lib.DemoTarget(latency='1ms').__enter__()
        cls.d = lib.Daemon(config=CONFIG).__enter__()
        cls.d.token = SUBMITTER
        cls.prom = ScrapingPrometheus(cls.d.url, VIEWER, rules).__enter__()
        cls.prom.wait_for(lambda: cls.prom.query('up{job="readyd"}') == 1.0, timeout=30,
                          what='readyd scraped')
        # Runs after the first scrape, so every rate() sees them happen.
        cls.pass_run = cls.d.run_spec(spec(cls.demo.url, 'checkout', 'health.latency_ms < 5000'))
        cls.fail_run = cls.d.run_spec(spec(cls.demo.url, 'search', 'health.latency_ms < 0'))
        n = cls.pass_run['id']
        cls.prom.wait_for(
            lambda: cls.prom.query('sum(readyd_runs_total{job="readyd"})') == 2.0,
            timeout=30, what='runs %d and %d scraped' % (n, n + 1))
        time.sleep(2)  # two more scrapes: rates over both runs' ends
        # readyd's own dashboard probe on its own dashboard, in another
        # environment of checkout (the runs above stay the latest of theirs).
        with open(DASHBOARD, encoding='utf-8') as f:
            dash = f.read()
        cls.dash_run = cls.d.run_spec(DASH_SPEC.format(
            prom=cls.prom.url, dash=json.dumps(dash), instance=cls.prom.target))

    @classmethod
    def tearDownClass(cls):
        for p in (cls.prom, cls.d, cls.demo):
            p.__exit__(None, None, None)

    def test_runs_decided(self):
        self.assertEqual(self.pass_run['verdict'], 'PASS', self.pass_run)
        self.assertEqual(self.fail_run['verdict'], 'FAIL', self.fail_run)

    def test_metrics_pass_promtool(self):
        r = self.d.get('/metrics', headers={'Authorization': 'Bearer ' + VIEWER})
        self.assertEqual(r.status, 200, r)
        text = r.body.decode()
        for family in ('process_resident_memory_bytes', 'process_cpu_seconds_total',
                       'process_open_fds', 'process_max_fds', 'process_start_time_seconds',
                       'process_virtual_memory_bytes', 'readyd_http_request_duration_seconds',
                       'readyd_runs_queued', 'readyd_run_duration_seconds',
                       'readyd_store_degraded'):
            self.assertIn('# TYPE %s ' % family, text)
        self.assertIn('readyd_gate_metric_value{service="checkout",environment="test",'
                      'probe="health",metric="latency_seconds"}', text)
        self.assertIn('readyd_http_request_duration_seconds_bucket{method="POST",'
                      'route="/v1/runs",code="201",le="+Inf"} 3\n', text)
        self.assertIn('readyd_run_duration_seconds_count{verdict="FAIL"} 1\n', text)
        p = subprocess.run([PROMTOOL, 'check', 'metrics'], input=r.body, capture_output=True,
                           timeout=60)
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, b'', b''))

    def test_rules_file_passes_promtool(self):
        p = subprocess.run([PROMTOOL, 'check', 'rules', RULES], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn('SUCCESS: 10 rules found', p.stdout)
        # Each alert fires on the series that should trigger it and stays
        # quiet on a healthy readyd (readyd-rules.test.yml).
        p = subprocess.run([PROMTOOL, 'test', 'rules', RULES_TEST], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_rules_evaluate_on_readyd(self):
        self.prom.wait_for(self.prom.rules_evaluated, timeout=30, what='rules evaluated')
        groups = self.prom.api('/api/v1/rules')['data']['groups']
        rules = [r for g in groups for r in g['rules']]
        self.assertEqual(len(rules), 10)
        self.assertEqual([(r['name'], r.get('lastError')) for r in rules if r['health'] != 'ok'],
                         [])
        # The recording rules have data; no alert fires on a healthy readyd.
        for r in rules:
            if r['type'] == 'recording':
                self.prom.wait_for(lambda: self.prom.instant(r['name']), timeout=15,
                                   what='data for ' + r['name'])
        self.assertEqual([a['labels']['alertname'] for a in
                          self.prom.api('/api/v1/alerts')['data']['alerts']], [])

    def variables(self):
        """The dashboard's query variables resolved in order, each as
        Grafana would: label_values(SELECTOR, LABEL) over the series."""
        with open(DASHBOARD, encoding='utf-8') as f:
            dash = json.load(f)
        values = {}
        for v in dash['templating']['list']:
            if v['type'] == 'datasource':
                continue
            m = re.fullmatch(r'label_values\((.*), *(\w+)\)', v['query']['query'])
            self.assertIsNotNone(m, v)
            found = self.prom.label_values(substitute(m.group(1), values), m.group(2))
            self.assertTrue(found, 'variable $%s has no values' % v['name'])
            values[v['name']] = (found[0] if not v.get('multi')
                                 else '(' + '|'.join(promql_regex(x) for x in found) + ')')
        self.assertEqual(values['job'], 'readyd')
        self.assertEqual(values['service'], '(checkout|search)')
        self.assertEqual(values['instance'], '(%s)' % promql_regex(self.prom.target))
        return dash, values

    def test_dashboard_queries_return_data(self):
        dash, values = self.variables()
        checked, empty = 0, []
        for panel in dash['panels']:
            for t in panel.get('targets', []):
                expr = substitute(t['expr'], values)
                if not finite(self.prom.instant(expr)):
                    empty.append('%s: %s' % (panel['title'], expr))
                checked += 1
        self.assertEqual(empty, [])
        self.assertGreaterEqual(checked, 25)
        verdicts = {r['metric']['service']: r['metric']['verdict'] for r in self.prom.instant(
            substitute('readyd_gate_verdict{service=~"$service"} == 1', values))}
        self.assertEqual(verdicts, {'checkout': 'PASS', 'search': 'FAIL'})

    def test_own_dashboard_probe(self):
        # The dashboard probe, not the test, substitutes the variables and
        # runs every panel's queries: each panel has data.
        run = self.dash_run
        p = run['probes'][0]
        m = p['metrics']
        print('dashboard probe on contrib/grafana/readyd.json: panels %d, with data %d, '
              'queries %d, failed %d' % (m['panels'], m['panels_with_data'], m['queries'],
                                         m['queries_failed']))
        self.assertEqual((p['state'], p['details']['empty_panels']), ('passed', []), p)
        with open(DASHBOARD, encoding='utf-8') as f:
            panels = [x for x in json.load(f)['panels'] if x.get('targets')]  # rows left out
        self.assertEqual((m['panels'], m['panels_with_data'], m['queries'], m['queries_failed']),
                         (len(panels), len(panels),
                          sum(len(x['targets']) for x in panels), 0), p)
        self.assertEqual(run['verdict'], 'PASS', run)

    def test_store_degraded_alert_condition(self):
        """ReadydStoreDegraded's expression holds while the database file
        is renamed away, and stops holding once it is back."""
        with open(RULES, encoding='utf-8') as f:
            expr = re.search(r'alert: ReadydStoreDegraded\n\s+expr: (.*)\n', f.read()).group(1)
        self.assertEqual(self.prom.instant(expr), [])
        os.rename(self.d.db, self.d.db + '.moved')
        try:
            self.prom.wait_for(lambda: self.prom.instant(expr), timeout=20,
                               what='readyd_store_degraded == 1 in Prometheus')
        finally:
            os.rename(self.d.db + '.moved', self.d.db)
        self.prom.wait_for(lambda: not self.prom.instant(expr), timeout=20,
                           what='readyd_store_degraded back to 0')


if __name__ == '__main__':
    lib.main()
