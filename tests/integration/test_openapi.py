"""Integration: docs/openapi.yaml is checked, and checking it catches what
it should. lib.http() validates every answer of every test's daemon
against the document (tests/integration/openapi_check.py); here real
answers of a real readyd, captured once, are altered the way a careless
change would alter them (a renamed field, a field the document does not
know, a wrong type, an undeclared status) and the check must refuse each,
naming the request, the JSON path and the place in the document. The
document itself must lint clean with Redocly CLI (scripts/install-deps
installs it under .cache/node; in CI its absence is a failure)."""
import copy
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
import openapi_check  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
REDOCLY = os.path.join(ROOT, '.cache', 'node', 'node_modules', '.bin', 'redocly')

SPEC = """apiVersion: readyd/v1
service: oa-api
version: "1.0"
environment: test
timeout: 1m
probes:
  - name: predict
    type: http
    url: {url}/v1/predict
gates:
  - "predict.latency_ms < 10000"
"""


class OpenAPITest(lib.TestCase):
    @classmethod
    def setUpClass(cls):
        if not openapi_check.available():
            raise AssertionError('python3-yaml and python3-jsonschema are needed')
        cls.demo = lib.DemoTarget(latency='1ms').__enter__()
        cls.d = lib.Daemon().__enter__()
        cls.run_ = cls.d.run_spec(SPEC.format(url=cls.demo.url))
        cls.spec = openapi_check.spec()

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)
        cls.demo.__exit__(None, None, None)

    def setUp(self):
        super().setUp()
        self.track(self.d)

    def check(self, method, path, status, body, ctype='application/json'):
        return self.spec.check(method, self.d.url + path, status, ctype,
                               json.dumps(body).encode())

    def assertRefused(self, problems, *fragments):
        self.assertTrue(problems, 'the check accepted it')
        text = '\n'.join(problems)
        for f in fragments:
            self.assertIn(f, text)

    def test_real_answers_pass(self):
        run_id = self.run_['id']
        for path in ('/v1/runs/%d' % run_id, '/v1/runs', '/v1/gates', '/v1/services',
                     '/v1/services/oa-api/history',
                     '/v1/services/oa-api/trends?metric=predict.latency_ms',
                     '/v1/services/oa-api/trends?metric=predict.latency_ms&step=1d',
                     '/v1/runs/%d/report?format=json' % run_id):
            r = self.d.get(path)  # lib.http() has checked it already
            self.assertEqual(r.status, 200, r)
            self.assertEqual(self.check('GET', path, 200, r.json), [], path)

    def test_renamed_field_is_refused(self):
        run = self.d.get('/v1/runs/%d' % self.run_['id']).json
        bad = copy.deepcopy(run)
        bad['verdikt'] = bad.pop('verdict')
        self.assertRefused(self.check('GET', '/v1/runs/1', 200, bad),
                           'GET /v1/runs/1 -> 200', "'verdict' is a required property",
                           "'verdikt' was unexpected",
                           '#/components/schemas/Run')
        # Deep inside: a gate's outcome renamed.
        bad = copy.deepcopy(run)
        bad['gates'][0]['result'] = bad['gates'][0].pop('outcome')
        self.assertRefused(self.check('GET', '/v1/runs/1', 200, bad), '$.gates[0]',
                           "'result' was unexpected", '#/components/schemas/Gate')
        # A probe's field of the wrong type.
        bad = copy.deepcopy(run)
        bad['probes'][0]['started_at'] = 1796161322.032
        self.assertRefused(self.check('GET', '/v1/runs/1', 200, bad),
                           '$.probes[0].started_at')
        # A time that is not RFC 3339.
        bad = copy.deepcopy(run)
        bad['created_at'] = '2026-12-02 03:41:40'
        self.assertRefused(self.check('GET', '/v1/runs/1', 200, bad), '$.created_at',
                           'date-time')

    def test_event_stream(self):
        # Each event's data is checked against its schema (x-events).
        path = '/v1/runs/%d/events' % self.run_['id']
        r = self.d.get(path)  # an ended run: one `end` event, checked by lib
        self.assertEqual(r.status, 200, r)
        self.assertIn(b'event: end\n', r.body)
        ctype = r.headers['Content-Type']
        self.assertEqual(self.spec.check('GET', self.d.url + path, 200, ctype, r.body), [])
        bad = r.body.replace(b'"verdict":', b'"verdikt":', 1)
        self.assertRefused(self.spec.check('GET', self.d.url + path, 200, ctype, bad),
                           'event 0 (end)', "'verdikt' was unexpected")
        bad = b'id: 1\nevent: state\ndata: {"id":1,"state":"sleeping"}\n\n: ping\n\n' \
              b'id: 2\nevent: gossip\ndata: {}\n\n'
        self.assertRefused(self.spec.check('GET', self.d.url + path, 200, ctype, bad),
                           "event 0 (state)", "'sleeping' is not one of",
                           "event 1 'gossip' is not one of")

    def test_live_event_stream(self):
        # A run followed from the start: state, probe, progress (with a load
        # probe's live second) and end events, each checked by lib.http().
        spec = """apiVersion: readyd/v1
service: oa-live
version: "1.0"
environment: test
timeout: 1m
target:
  url: %s/healthz
probes:
  - name: load
    type: load
    mode: closed
    connections: 2
    duration: 2s
""" % self.demo.url
        r = self.d.submit(spec)
        self.assertEqual(r.status, 201, r)
        body = self.d.get('/v1/runs/%d/events' % r.json['id'], timeout=60).body
        for name in (b'state', b'probe', b'progress', b'end'):
            self.assertIn(b'event: ' + name + b'\n', body)
        self.assertIn(b'"rps":', body)

    def test_trends_shapes(self):
        path = '/v1/services/oa-api/trends?metric=predict.latency_ms'
        runs = self.d.get(path).json
        buckets = self.d.get(path + '&step=1h').json
        self.assertIsNone(runs['step'])
        self.assertEqual(buckets['step'], '1h')
        # Each point is exactly one of the two shapes: a run point with a
        # bucket's field is neither.
        bad = copy.deepcopy(runs)
        bad['points'][0]['runs'] = 1
        self.assertRefused(self.check('GET', path, 200, bad), '$.points[0]')
        bad = copy.deepcopy(buckets)
        bad['step'] = 3600
        self.assertRefused(self.check('GET', path, 200, bad), '$.step')

    def test_statuses_and_types(self):
        # A status the operation does not declare.
        self.assertRefused(self.check('GET', '/v1/gates', 418, {}),
                           'status 418 is not a response of',
                           '#/paths/~1v1~1gates/get/responses')
        # The right status with the wrong content type.
        self.assertRefused(self.check('GET', '/v1/gates', 200, {'items': []}, 'text/plain'),
                           "Content-Type 'text/plain' is not declared")
        # A problem whose title is not its status's phrase, and one with a
        # field Problem does not have.
        p = {'type': 'about:blank', 'title': 'Error', 'status': 406, 'detail': 'd'}
        self.assertRefused(self.check('GET', '/v1/runs/1/report', 406, p,
                                      'application/problem+json'), "'Not Acceptable'")
        p = {'type': 'about:blank', 'title': 'Not Found', 'status': 404, 'detail': 'd',
             'hint': 'x'}
        self.assertRefused(self.check('GET', '/v1/runs/1', 404, p, 'application/problem+json'),
                           "'hint' was unexpected")
        # A path no operation has is a 404 problem, nothing else.
        self.assertRefused(self.check('GET', '/v1/nothing', 200, {}), 'no operation')
        r = self.d.get('/v1/nothing')
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json['title'], 'Not Found')

    def test_numbers_are_shortest(self):
        # jansson's default %.17g wrote 0.096 as 0.096000000000000002; the
        # answer, what is stored, and the reports carry the shortest form
        # that reads back as the same double.
        gates = ['predict.latency_ms < 0.096', 'predict.latency_ms > 1e-7',
                 'predict.latency_ms < 1796161322.032']
        r = self.d.request('POST', '/v1/runs/%d/rejudge' % self.run_['id'],
                           json.dumps({'gates': gates}), {'Content-Type': 'application/json'})
        self.assertEqual(r.status, 201, r)
        text = r.body.decode()
        for want in ('"threshold":0.096,', '"threshold":1e-7,',
                     '"threshold":1796161322.032,'):
            self.assertIn(want, text)
        stored = self.d.get('/v1/runs/%d' % self.run_['id']).body.decode()
        self.assertIn('"threshold":0.096,', stored)
        self.assertNotIn('0000000', stored)
        # Trends are written off the loop into kept bytes: the same form.
        for q in ('', '&step=1d'):
            r = self.d.get('/v1/services/oa-api/trends?metric=predict.latency_ms' + q)
            values = [v for p in r.json['points'] for k, v in p.items()
                      if isinstance(v, float) and k != 'runs']
            self.assertTrue(values, r)
            for v in values:
                self.assertIn(':%r' % v, r.body.decode(), q)
        for fmt in ('json', 'markdown', 'junit', 'html'):
            body = self.d.get('/v1/runs/%d/report?format=%s' % (self.run_['id'], fmt)).body
            self.assertNotIn(b'0.096000000000000002', body, fmt)
            self.assertNotIn(b'1796161322.0320001', body, fmt)

    def test_every_operation_is_complete(self):
        ids = []
        for path, item in self.spec.doc['paths'].items():
            for method, op in item.items():
                if method not in openapi_check.METHODS:
                    continue
                where = '%s %s' % (method.upper(), path)
                self.assertIn('operationId', op, where)
                ids.append(op['operationId'])
                codes = set(op['responses'])
                if op.get('security', self.spec.doc['security']):
                    self.assertLessEqual({'401', '403', '429'}, codes, where)
                self.assertLessEqual({'413', '431'}, codes, where)
        self.assertEqual(len(ids), len(set(ids)), 'operationIds are unique')

    def test_examples_match_their_schemas(self):
        # An example in the document is an answer too: it must validate.
        seen = 0
        for path, item in self.spec.doc['paths'].items():
            for method, op in item.items():
                if method not in openapi_check.METHODS:
                    continue
                for status, resp in op['responses'].items():
                    resp = self.spec.resolve(resp)
                    for ctype, media in (resp.get('content') or {}).items():
                        values = [media['example']] if 'example' in media else []
                        values += [e['value'] for e in media.get('examples', {}).values()]
                        for v in values:
                            seen += 1
                            url = self.d.url + path.replace('{id}', '1').replace(
                                '{name}', 'x')
                            body = v.encode() if isinstance(v, str) else json.dumps(v).encode()
                            self.assertEqual(self.spec.check(
                                method.upper(), url, int(status), ctype, body), [],
                                (method, path, status))
        self.assertGreaterEqual(seen, 4)

    def test_lint(self):
        if not os.path.exists(REDOCLY):
            if os.environ.get('CI') == 'true':
                self.fail('Redocly CLI is missing (scripts/install-deps installs it)')
            self.skipTest('Redocly CLI is not installed (scripts/install-deps)')
        node = shutil.which('node')
        self.assertTrue(node, 'node is missing')
        p = subprocess.run([REDOCLY, 'lint', '--format=stylish',
                            os.path.join(ROOT, 'docs', 'openapi.yaml')],
                           cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
        out = p.stdout + p.stderr
        self.assertEqual(p.returncode, 0, out)
        self.assertNotIn(' error ', out, out)
        self.assertNotIn(' warning ', out, out)


if __name__ == '__main__':
    lib.main()
