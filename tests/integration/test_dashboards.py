"""Integration: the dashboard probe against a real Prometheus (Debian
package) scraping the demo target. After a short load, the example
dashboard (examples/model-serving-dashboard.json: latency p95,
requests/s, error rate, GPU utilization) names "GPU Utilization" as its
one panel without data (the demo target has no GPU metric) over the
load's own window, a gate on panels_without_data fails, template
variables are substituted (the dashboard's own defaults point elsewhere
and leave the panels empty), and the dashboard can come from Grafana's
HTTP API with a bearer token that is never shown back."""
import calendar
import contextlib
import http.server
import json
import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, 'examples', 'model-serving-dashboard.json')
TOKEN = 'grafana-secret-token-7f3a'


def load_example():
    with open(EXAMPLE, encoding='utf-8') as f:
        return json.load(f)


def ms(rfc3339):
    """An RFC 3339 time of the API as ms since the epoch."""
    base, _, frac = rfc3339.rstrip('Z').partition('.')
    t = calendar.timegm(time.strptime(base, '%Y-%m-%dT%H:%M:%S'))
    return t * 1000 + int((frac or '0')[:3].ljust(3, '0'))


def spec(probes, gates=()):
    text = 'apiVersion: readyd/v1\nservice: dash-test\nversion: 1.0.0\n'
    text += 'target: {url: "%s"}\n' % spec.target
    text += 'timeout: 5m\nprobes:\n' + probes
    if gates:
        text += 'gates:\n' + ''.join('  - %s\n' % json.dumps(g) for g in gates)
    return text


LOAD = """  - name: load
    type: load
    mode: closed
    connections: 4
    duration: 3s
"""


class GrafanaStub(http.server.BaseHTTPRequestHandler):
    """GET /api/dashboards/uid/model-serving as Grafana answers it, only
    with the bearer token."""
    dashboard = None
    seen_auth = []

    def do_GET(self):
        GrafanaStub.seen_auth.append(self.headers.get('Authorization'))
        if self.headers.get('Authorization') != 'Bearer ' + TOKEN:
            self.send_response(401)
            self.end_headers()
            return
        if self.path != '/api/dashboards/uid/model-serving':
            self.send_response(404)
            self.end_headers()
            return
        body = json.dumps({'dashboard': self.dashboard,
                           'meta': {'slug': 'model-serving', 'version': 1}}).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class TestDashboard(lib.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.stack = contextlib.ExitStack()
        try:
            cls.demo = cls.stack.enter_context(lib.DemoTarget(latency='5ms'))
            cls.prom = cls.stack.enter_context(lib.Prometheus(scrape_targets=[cls.demo.url]))
            cls.files = cls.stack.enter_context(tempfile.TemporaryDirectory())
            cls.dash_file = os.path.join(cls.files, 'dashboard.json')
            shutil.copy(EXAMPLE, cls.dash_file)
            cls.daemon = cls.stack.enter_context(
                lib.Daemon(config='allowed_paths: [%s]\n' % json.dumps(cls.files)))
            cls.prom.wait_for(lambda: cls.prom.query('up') == 1.0, what='demo target up')
            spec.target = cls.demo.url + '/v1/predict'
            cls.instance = '127.0.0.1:%d' % cls.demo.port
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

    def dash_probe(self, name, source, variables=True):
        text = f"""  - name: {name}
    type: dashboard
    prometheus: {self.prom.url}
    scrape_interval: 1s
{source}"""
        if variables:
            text += f'    variables: {{instance: "{self.instance}", job: demo}}\n'
        return text

    def panel(self, probe, title):
        return next(p for p in probe['details']['panels'] if p['title'] == title)

    def test_example_dashboard_names_the_empty_panel(self):
        run = self.daemon.run_spec(spec(
            LOAD + self.dash_probe('dash', f'    file: {self.dash_file}\n')
            + self.dash_probe('dash-defaults', f'    file: {self.dash_file}\n', False)
            + self.dash_probe('dash-range', f'    file: {self.dash_file}\n    query_type: range\n'),
            gates=['dash.panels_without_data == 0']), timeout=90)
        load, dash, defaults, ranged = run['probes']
        self.assertEqual(load['state'], 'passed', run)
        self.assertEqual(dash['state'], 'passed', run)
        m = dash['metrics']
        self.assertEqual((m['panels'], m['panels_with_data'], m['panels_without_data']),
                         (4, 3, 1), dash)
        self.assertEqual(dash['details']['empty_panels'], ['GPU Utilization'])
        self.assertEqual(m['queries'], 4)
        self.assertEqual(m['queries_failed'], 0)
        # The gate on empty panels fails the run, naming the value.
        self.assertEqual((run['state'], run['verdict']), ('failed', 'FAIL'), run)
        gate = run['gates'][0]
        self.assertEqual((gate['outcome'], gate['value']), ('fail', 1), gate)
        # $instance was substituted, and the panel using it has data.
        lat = self.panel(dash, 'Latency p95')
        self.assertTrue(lat['data'], lat)
        self.assertIn('instance="%s"' % self.instance, lat['targets'][0]['query'])
        self.assertNotIn('$', lat['targets'][0]['query'])
        self.assertRegex(lat['targets'][0]['query'], r'\[4000ms\]')  # $__rate_interval
        # The dashboard's own defaults (localhost:8080, model-server)
        # select nothing: every panel is empty.
        self.assertEqual(defaults['metrics']['panels_without_data'], 4, defaults)
        self.assertIn('instance="localhost:8080"',
                      self.panel(defaults, 'Latency p95')['targets'][0]['query'])
        # Over the whole window (range queries) the same panel is empty.
        self.assertEqual(ranged['details']['empty_panels'], ['GPU Utilization'], ranged)
        self.assertEqual(ranged['details']['window']['query_type'], 'range')
        # The queries look at the load's time, not the last `range` (5m).
        load_window = (ms(load['started_at']), ms(load['finished_at']))
        for p in (dash, defaults, ranged):
            w = p['details']['window']
            self.assertEqual((w['start_ms'], w['end_ms']), load_window, p['name'])
        print('\nload window %.3f s; panels %d, with data %d, without data %d: %s'
              % ((load_window[1] - load_window[0]) / 1000, m['panels'], m['panels_with_data'],
                 m['panels_without_data'], dash['details']['empty_panels']))
        md = self.daemon.get('/v1/runs/%d/report?format=markdown' % run['id']).body.decode()
        self.assertIn('panels\\_without\\_data 1', md)

    def test_inline_dashboard_and_failing_query(self):
        dash = load_example()
        dash['panels'].append({'id': 9, 'type': 'stat', 'title': 'Broken',
                               'targets': [{'refId': 'A', 'expr': 'sum(rate(x[5m]'}]})
        dash['panels'].append({'id': 10, 'type': 'stat', 'title': 'Undefined',
                               'targets': [{'refId': 'A', 'expr': 'up{x="$nope"}'}]})
        run = self.daemon.run_spec(spec(
            LOAD + self.dash_probe('dash', '    dashboard: %s\n' % json.dumps(json.dumps(dash)))),
            timeout=90)
        p = run['probes'][1]
        self.assertEqual(p['state'], 'passed', run)
        self.assertEqual((p['metrics']['panels'], p['metrics']['panels_without_data'],
                          p['metrics']['queries_failed']), (6, 3, 2), p)
        self.assertEqual(p['details']['empty_panels'],
                         ['GPU Utilization', 'Broken', 'Undefined'])
        self.assertIn('parse error', self.panel(p, 'Broken')['targets'][0]['error'])
        self.assertIn('$nope', self.panel(p, 'Undefined')['targets'][0]['error'])

    def test_from_grafana_api_with_token(self):
        GrafanaStub.dashboard = load_example()
        GrafanaStub.seen_auth = []
        srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), GrafanaStub)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        try:
            url = 'http://127.0.0.1:%d/api/dashboards/uid/model-serving' % srv.server_port
            run = self.daemon.run_spec(spec(LOAD + self.dash_probe(
                'dash', f'    url: {url}\n    headers: {{Authorization: "Bearer {TOKEN}"}}\n')),
                timeout=90)
        finally:
            srv.shutdown()
            srv.server_close()
        p = run['probes'][1]
        self.assertEqual(p['state'], 'passed', run)
        self.assertEqual(p['details']['title'], 'Model serving')
        self.assertEqual(p['details']['empty_panels'], ['GPU Utilization'])
        self.assertEqual(GrafanaStub.seen_auth, ['Bearer ' + TOKEN])
        # The token is never shown back: not in the run, not in its report.
        self.assertNotIn(TOKEN, json.dumps(run))
        for fmt in ('json', 'markdown', 'html', 'junit'):
            body = self.daemon.get('/v1/runs/%d/report?format=%s' % (run['id'], fmt)).body
            self.assertNotIn(TOKEN.encode(), body, fmt)

    def test_file_outside_allowed_paths_refused(self):
        r = self.daemon.submit(spec(self.dash_probe('dash', f'    file: {EXAMPLE}\n')))
        self.assertEqual(r.status, 422, r)
        self.assertIn('probes[0].file', json.dumps(r.json))

    def test_file_not_json_is_an_error(self):
        bad = os.path.join(self.files, 'not-a-dashboard.json')
        with open(bad, 'w') as f:
            f.write('{"panels": [secret-text')
        run = self.daemon.run_spec(spec(self.dash_probe('dash', f'    file: {bad}\n'),
                                        gates=['dash.panels_without_data == 0']))
        p = run['probes'][0]
        self.assertEqual((p['state'], run['verdict']), ('error', 'ERROR'), run)
        self.assertIn('not JSON (line 1, column', p['error'])
        self.assertNotIn('secret-text', p['error'])

    def test_no_source_is_a_spec_error(self):
        r = self.daemon.submit(spec(self.dash_probe('dash', '')))
        self.assertEqual(r.status, 422, r)
        self.assertIn('probes[0].dashboard', json.dumps(r.json))


if __name__ == '__main__':
    lib.main()
