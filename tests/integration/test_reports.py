"""Integration: reports, Server-Sent Events and /metrics on the real readyd
with the demo target. The JUnit report validates with xmllint and has one
testcase per gate and checklist item; the Markdown report has the
sections; the HTML report renders in headless Chromium with its SVG charts
(screenshot not blank, SVG elements in the DOM) and markup from a spec
stays inert; the event stream delivers state, probe, progress and end in
order and closes; a real Prometheus scrapes /metrics and the gate gauge is
queryable. Each run is a couple of seconds of load."""
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
XMLLINT = shutil.which('xmllint')
PROMETHEUS = shutil.which(os.environ.get('PROMETHEUS_BIN', 'prometheus'))

EVIL = '<script>alert(1)</script>'


def spec(url, duration='2s', p95='1000'):
    return f"""apiVersion: readyd/v1
service: report-demo
version: 1.0.0
environment: test
target:
  url: {url}/v1/predict
  timeout: 5s
probes:
  - name: health
    type: http
    url: {url}/healthz
    expect_status: 200
  - name: latency
    type: load
    mode: closed
    connections: 2
    duration: {duration}
gates:
  - health.status == 200
  - latency.p95_ms < {p95}
  - latency.error_rate < 0.5
  - {{ expr: "latency.p50_ms < 0.001", advisory: true }}
checklist:
  runbook: {{ evidence: "https://wiki.example/runbook?a=1&b=2" }}
  security_scan: {{ evidence: "{EVIL}" }}
  rollback_plan: {{ }}
  required: [runbook, rollback_plan]
"""


def png_non_white(path):
    """Counts non-white pixels of an 8-bit RGB(A) PNG (stdlib only)."""
    with open(path, 'rb') as f:
        data = f.read()
    assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
    pos, idat, width = 8, b'', 0
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], 'big')
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if kind == b'IHDR':
            width, height = int.from_bytes(body[0:4], 'big'), int.from_bytes(body[4:8], 'big')
            depth, ctype = body[8], body[9]
            assert depth == 8 and ctype in (2, 6), 'unexpected PNG format'
            bpp = 3 if ctype == 2 else 4
        elif kind == b'IDAT':
            idat += body
        pos += 12 + n
    raw, stride = zlib.decompress(idat), width * bpp
    prev, count, i = bytearray(stride), 0, 0
    for _ in range(height):
        ftype, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):  # undo the PNG filters
            a = line[x - bpp] if x >= bpp else 0
            b, c = prev[x], prev[x - bpp] if x >= bpp else 0
            if ftype == 1:
                line[x] = (line[x] + a) & 255
            elif ftype == 2:
                line[x] = (line[x] + b) & 255
            elif ftype == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        for x in range(0, stride, bpp):
            if line[x] < 240 or line[x + 1] < 240 or line[x + 2] < 240:
                count += 1
        prev = line
    return count


def chromium(args, tmp):
    """Runs headless Chromium, no sandbox and no network: every host name
    resolves to nothing, so the page (file://) is all it can load."""
    argv = [CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
            '--no-first-run', '--disable-background-networking',
            '--disable-component-update', '--disable-sync', '--disable-default-apps',
            '--disable-extensions', '--no-pings', '--dns-prefetch-disable', '--no-proxy-server',
            '--disable-features=AsyncDns,DnsOverHttps,MediaRouter,OptimizationHints,Translate',
            '--host-resolver-rules=MAP * ~NOTFOUND',
            '--user-data-dir=' + tempfile.mkdtemp(dir=tmp)] + args
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=120,
                          check=False)


class ReportsTest(lib.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='readyd-reports-')
        cls.demo = lib.DemoTarget(latency='1ms').__enter__()
        cls.d = lib.Daemon().__enter__()
        # Two runs: the second report has a trend of two points.
        cls.d.run_spec(spec(cls.demo.url, duration='1s'))
        cls.the_run = cls.d.run_spec(spec(cls.demo.url, duration='1s'))

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)
        cls.demo.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        super().setUp()
        self.track(self.d)

    def report(self, query='', headers=None):
        return self.d.get('/v1/runs/%d/report%s' % (self.the_run['id'], query), headers=headers)

    def test_run_measured(self):
        self.assertEqual(self.the_run['verdict'], 'FAIL', self.the_run)  # rollback_plan has no evidence
        load = [p for p in self.the_run['probes'] if p['name'] == 'latency'][0]
        self.assertEqual(load['state'], 'passed', load)
        self.assertIn('timeline', load['details'])

    def test_junit_valid_one_case_per_gate_and_item(self):
        r = self.report('?format=junit')
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.headers['Content-Type'].startswith('application/xml'))
        self.assertIsNotNone(XMLLINT, 'xmllint is missing (scripts/install-deps)')
        lint = subprocess.run([XMLLINT, '--noout', '--schema', lib.JUNIT_XSD, '-'],
                              input=r.body, capture_output=True, check=False)
        self.assertEqual(lint.returncode, 0, lint.stderr)
        suite = ET.fromstring(r.body).find('testsuite')
        cases = suite.findall('testcase')
        run = self.the_run
        self.assertEqual(len(cases),
                         len(run['probes']) + len(run['gates']) + len(run['checklist']))
        self.assertEqual(int(suite.get('tests')), len(cases))
        gate_names = [c.get('name') for c in cases if c.get('classname').startswith('gates.')]
        self.assertEqual(gate_names, [g['expr'] for g in run['gates']])
        probe_names = [c.get('name') for c in cases if c.get('classname').startswith('probes.')]
        self.assertEqual(probe_names, ['%s (%s)' % (p['name'], p['type']) for p in run['probes']])
        failing = [c for c in cases if c.find('failure') is not None]
        self.assertEqual([c.get('name') for c in failing], ['rollback_plan'])
        self.assertEqual(int(suite.get('failures')), 1)
        self.assertIn(EVIL, suite.find('system-out').text)  # escaped, so it parses back

    def test_formats_by_accept(self):
        cases = [('application/json', 'application/json'),
                 ('text/markdown', 'text/markdown'),
                 ('text/html', 'text/html'),
                 ('application/junit+xml', 'application/xml'),
                 ('application/xml', 'application/xml'),
                 ('image/png;q=0.9, text/html;q=0.5', 'text/html'),
                 ('text/markdown;q=0.2, text/html', 'text/html'),
                 ('*/*', 'application/json')]
        for accept, ctype in cases:
            r = self.report(headers={'Accept': accept})
            self.assertEqual(r.status, 200, (accept, r))
            self.assertTrue(r.headers['Content-Type'].startswith(ctype), (accept, r.headers))
        r = self.report(headers={'Accept': 'image/png'})
        self.assertEqual(r.status, 406, r)
        self.assertIn('text/markdown', r.json['detail'])
        self.assertEqual(r.json['title'], 'Not Acceptable')
        r = self.report('?format=pdf')
        self.assertEqual(r.status, 400, r)
        self.assertIn('junit', r.json['detail'])
        r = self.report('?format=md', headers={'Accept': 'image/png'})
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.headers['Content-Type'].startswith('text/markdown'))
        self.assertEqual(self.report('?format=json').json['run']['id'], self.the_run['id'])
        self.assertEqual(self.d.get('/v1/runs/999999/report?format=html').status, 404)

    def test_markdown_sections(self):
        md = self.report('?format=markdown').body.decode('utf-8')
        self.assertTrue(md.startswith('# Readiness report: report-demo 1.0.0 (test)'), md[:200])
        self.assertIn('**Verdict: FAIL**', md.split('\n## ')[0])
        heads = [line for line in md.splitlines() if line.startswith('## ')]
        self.assertEqual(heads, ['## Performance', '## Monitoring', '## Incident response',
                                 '## Rollback', '## Security', '## Checklist'])
        perf = md.split('## Performance')[1].split('## Monitoring')[0]
        self.assertIn('**PASS** latency.p95\\_ms &lt; 1000: value ', perf)
        self.assertIn('**FAIL** (advisory) latency.p50\\_ms', perf)
        self.assertIn('health.status == 200', md.split('## Monitoring')[1].split('## Incident')[0])
        self.assertIn('- [ ] rollback\\_plan (required, **FAIL**)', md)
        self.assertNotIn('<script', md)

    @unittest.skipUnless(CHROMIUM, 'chromium is not installed')
    def test_html_renders_in_chromium(self):
        r = self.report('?format=html')
        self.assertEqual(r.status, 200, r)
        html = r.body.decode('utf-8')
        self.assertNotIn(EVIL, html)
        self.assertNotIn('src=', html)
        path = os.path.join(self.tmp, 'report.html')
        with open(path, 'w', encoding='utf-8') as f:
            f.write(html)
        shot = os.path.join(self.tmp, 'report.png')
        # One start does both (a start of Chromium takes seconds).
        out = chromium(['--screenshot=' + shot, '--window-size=1200,2000', '--dump-dom',
                        'file://' + path], self.tmp)
        dom = out.stdout.decode('utf-8')
        self.assertTrue(os.path.exists(shot), out.stderr[-2000:])
        # A blank page has no non-white pixel; ours has a banner and charts.
        self.assertGreater(png_non_white(shot), 20000)
        self.assertIn('id="verdict"', dom)
        self.assertEqual(dom.count('class="chart"'), 2)  # percentiles + timeline
        self.assertGreater(dom.count('<rect class="bar"'), 3)
        self.assertIn('<polyline class="line"', dom)
        self.assertIn('class="sparkline"', dom)
        self.assertIn('<polyline class="spark"', dom)
        self.assertNotIn('<script', dom)  # the spec's markup stayed text
        self.assertIn('&lt;script&gt;alert(1)&lt;/script&gt;', dom)

    def events(self, run_id, timeout=60):
        """Reads an event stream to its end: [(event, data)], comments."""
        conn = http.client.HTTPConnection('127.0.0.1', self.d.port, timeout=timeout)
        conn.request('GET', '/v1/runs/%d/events' % run_id)
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.getheader('Content-Type'), 'text/event-stream')
        events, name, data, ids = [], None, None, []
        for raw in resp:  # ends when the server ends the stream
            line = raw.decode('utf-8').rstrip('\n')
            if line.startswith('event: '):
                name = line[7:]
            elif line.startswith('data: '):
                data = json.loads(line[6:])
            elif line.startswith('id: '):
                ids.append(int(line[4:]))
            elif line == '' and name:
                events.append((name, data))
                name = data = None
        conn.close()
        self.assertEqual(ids, list(range(1, len(ids) + 1)))
        return events

    def test_sse_in_order_until_end(self):
        r = self.d.submit(spec(self.demo.url, duration='3s'))
        self.assertEqual(r.status, 201, r)
        run_id = r.json['id']
        events = self.events(run_id)
        names = [e[0] for e in events]
        self.assertEqual(names[-1], 'end', names)
        self.assertEqual(names.count('end'), 1)
        end = events[-1][1]
        self.assertEqual(end['id'], run_id)
        self.assertIn(end['state'], lib.FINAL_STATES)
        self.assertEqual(end['verdict'], 'FAIL')
        self.assertIn('state', names)
        self.assertIn('running', [d['state'] for n, d in events if n == 'state'])
        # Probe events: health starts and ends before latency starts and ends.
        probes = [(d['probe']['name'], d['probe']['state']) for n, d in events if n == 'probe']
        finished = [p for p in probes if p[1] not in ('queued', 'running')]
        self.assertEqual([p[0] for p in finished], ['health', 'latency'], probes)
        self.assertLess(probes.index(('latency', 'running')), probes.index(finished[1]))
        progress = [i for i, (n, _) in enumerate(events) if n == 'progress']
        self.assertGreaterEqual(len(progress), 1, names)  # every second of a 3 s load
        start = names.index('probe', probes.index(('latency', 'running')))
        self.assertTrue(all(start < i < len(events) - 1 for i in progress))
        self.assertEqual(events[progress[0]][1]['current']['probe'], 'latency')

    def test_sse_finished_run_gets_end_at_once(self):
        events = self.events(self.the_run['id'], timeout=10)
        self.assertEqual([e[0] for e in events], ['end'])
        self.assertEqual(events[0][1]['verdict'], 'FAIL')
        self.assertEqual(self.d.get('/v1/runs/999999/events').status, 404)

    def test_metrics_text(self):
        r = self.d.get('/metrics')
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.headers['Content-Type'].startswith('text/plain; version=0.0.4'))
        text = r.body.decode('utf-8')
        for family in ('readyd_http_requests_total', 'readyd_runs_total', 'readyd_runs_active',
                       'readyd_runs_queued', 'readyd_probe_duration_seconds',
                       'readyd_db_size_bytes', 'readyd_build_info', 'readyd_gate_verdict',
                       'readyd_gate_last_run_timestamp_seconds', 'readyd_gate_metric_value'):
            self.assertIn('# TYPE %s ' % family, text)
        self.assertIn('readyd_gate_verdict{service="report-demo",environment="test",'
                      'verdict="FAIL"} 1', text)
        self.assertIn('route="/v1/runs/{id}/report"', text)
        self.assertNotIn('route="/v1/runs/%d' % self.the_run['id'], text)
        self.assertIn('readyd_probe_duration_seconds_count{type="load"}', text)

    def readyctl(self, *args):
        return subprocess.run([lib.READYCTL_BIN, '--url', self.d.url] + list(args),
                              capture_output=True, timeout=120, check=False)

    def test_readyctl_submit_wait_saves_artifacts(self):
        spec_file = os.path.join(self.tmp, 'spec.yaml')
        with open(spec_file, 'w', encoding='utf-8') as f:
            f.write(spec(self.demo.url, duration='1s'))
        junit = os.path.join(self.tmp, 'junit.xml')
        html = os.path.join(self.tmp, 'out.html')
        p = self.readyctl('submit', '--wait', '--junit', junit, '--report', html,
                          '--format', 'html', spec_file)
        self.assertEqual(p.returncode, 1, p.stderr)  # FAIL: rollback_plan
        self.assertIn(b'FAIL', p.stdout)
        self.assertIn(b'latency.p95_ms', p.stdout)  # the verdict table
        suite = ET.parse(junit).getroot().find('testsuite')
        self.assertEqual(len(suite.findall('testcase')), 2 + 4 + 3)  # probes, gates, items
        with open(html, encoding='utf-8') as f:
            self.assertIn('class="chart"', f.read())
        md = os.path.join(self.tmp, 'out.md')
        p = self.readyctl('--json', 'submit', '--wait', '--report', md, spec_file)
        self.assertEqual(p.returncode, 1, p.stderr)
        run = json.loads(p.stdout)  # stdout: the final run only
        self.assertEqual(run['verdict'], 'FAIL')
        events = [json.loads(line) for line in p.stderr.decode().splitlines()
                  if line.startswith('{')]
        self.assertEqual(events[-1]['event'], 'end', p.stderr)
        self.assertEqual(events[-1]['data']['id'], run['id'])
        self.assertIn('probe', [e['event'] for e in events])
        with open(md, encoding='utf-8') as f:
            self.assertIn('## Checklist', f.read())
        p = self.readyctl('submit', '--junit', junit, spec_file)
        self.assertEqual(p.returncode, 3)
        self.assertIn(b'--wait', p.stderr)

    @unittest.skipUnless(PROMETHEUS, 'prometheus is not installed')
    def test_prometheus_scrapes_metrics(self):
        with lib.Prometheus(scrape_targets=[self.d.url]) as prom:
            self.track(prom)
            q = 'readyd_gate_verdict{service="report-demo",environment="test",verdict="FAIL"}'
            prom.wait_for(lambda: prom.query(q) == 1.0, what='gate gauge in Prometheus')
            self.assertEqual(prom.query('up'), 1.0)
            self.assertEqual(
                prom.query('readyd_gate_verdict{service="report-demo",verdict="PASS"}'), 0.0)
            v = prom.query('readyd_gate_metric_value{probe="latency",metric="p95_seconds"}')
            self.assertIsNotNone(v)
            self.assertGreater(v, 0)


if __name__ == '__main__':
    lib.main()
