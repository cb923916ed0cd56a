"""Integration: a hostile or careless API client gets an honest answer.
A target override that no probe of a stored spec would send to is
refused (a run judged on another URL would pass for the canary); made-up
HTTP methods cannot crowd the series of real routes out of /metrics."""
import hashlib
import json
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

TOKEN = 'tok-hostile-hooks'
YAML = {'Content-Type': 'application/yaml'}
JSON = {'Content-Type': 'application/json'}


def config():
    return ('tokens:\n  - {name: ci, hash: %s, role: submitter}\n'
            'allowed_targets: ["127.0.0.1"]\n' % hashlib.sha256(TOKEN.encode()).hexdigest())


def auth(**extra):
    return dict({'Authorization': 'Bearer ' + TOKEN}, **extra)


class HostileApiTest(lib.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.t = lib.DemoTarget(latency='1ms').__enter__()
        cls.d = lib.Daemon(config=config()).__enter__()
        cls.d.token = TOKEN

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)
        cls.t.__exit__(None, None, None)

    def setUp(self):
        super().setUp()
        self.track(self.d)

    def put(self, service, env, text):
        r = self.d.request('PUT', '/v1/services/%s/specs/%s' % (service, env), text,
                           auth(**YAML))
        self.assertEqual(r.status, 201, r)

    def test_target_override_no_probe_measures_is_refused(self):
        # Every probe has a url of its own: a target override changes nothing
        # that is measured, and the run would pass on the stable URL.
        self.put('own-url', 'prod', f"""apiVersion: readyd/v1
timeout: 1m
probes:
  - name: predict
    type: http
    url: {self.t.url}/v1/predict
    timeout: 10s
gates:
  - predict.latency_ms < 10000
""")
        canary = 'http://127.0.0.1:1/v1/predict'
        before = self.d.get('/v1/runs?service=own-url').json['items']
        r = self.d.request('POST', '/v1/services/own-url/runs',
                           json.dumps({'version': '1', 'environment': 'prod', 'target': canary}),
                           auth(**JSON))
        self.assertEqual(r.status, 422, r)
        self.assertEqual(r.json['errors'][0]['path'], 'target', r)
        r = lib.http('POST', self.d.url + '/v1/hooks/flagger?token=' + TOKEN,
                     json.dumps({'name': 'own-url', 'namespace': 'prod', 'checksum': 'c1',
                                 'metadata': {'target': canary, 'wait': '30s'}}).encode(), JSON)
        self.assertEqual(r.status, 422, r)
        self.assertEqual(r.json['errors'][0]['path'], 'target', r)
        self.assertEqual(self.d.get('/v1/runs?service=own-url').json['items'], before)
        # Without the override the stored spec still runs.
        r = self.d.request('POST', '/v1/services/own-url/runs',
                           json.dumps({'version': '1', 'environment': 'prod'}), auth(**JSON))
        self.assertEqual(r.status, 201, r)

    def test_hook_idempotency_prefixes_reserved(self):
        # The Flagger and Argo hooks key their runs flagger:ENV:CHECKSUM and
        # argo:ENV:KEY: a client may not create the run a hook will find.
        spec = f"""apiVersion: readyd/v1
service: reserved
environment: prod
version: '1'
timeout: 1m
probes:
  - name: predict
    type: http
    url: {self.t.url}/v1/predict
gates:
  - predict.latency_ms < 10000
"""
        self.put('reserved', 'prod', spec)
        stored = json.dumps({'version': '1', 'environment': 'prod'})
        for key in ('flagger:prod:c1', 'argo:prod:1', 'argo:'):
            for path, body, headers in (('/v1/runs', spec, YAML),
                                        ('/v1/services/reserved/runs', stored, JSON)):
                r = self.d.request('POST', path, body, auth(**headers, **{'Idempotency-Key': key}))
                self.assertEqual(r.status, 422, (path, key, r))
                self.assertEqual(r.json['errors'][0]['path'], 'Idempotency-Key', r)
        self.assertEqual(self.d.get('/v1/runs?service=reserved').json['items'], [])
        # The hook itself still keys its run so; a key that merely contains
        # the word is the client's own.
        r = lib.http('POST', self.d.url + '/v1/hooks/flagger?token=' + TOKEN,
                     json.dumps({'name': 'reserved', 'namespace': 'prod',
                                 'checksum': 'c1'}).encode(), JSON)
        self.assertIn(r.status, (200, 202), r)
        r = self.d.request('POST', '/v1/services/reserved/runs', stored,
                           auth(**JSON, **{'Idempotency-Key': 'ci:flagger:prod:c1'}))
        self.assertEqual(r.status, 201, r)

    def test_target_override_measured_by_a_target_probe(self):
        # A probe without a url of its own sends to the override.
        self.put('uses-target', 'prod', f"""apiVersion: readyd/v1
timeout: 1m
target:
  url: http://127.0.0.1:1/v1/predict
probes:
  - name: predict
    type: load
    mode: closed
    requests: 5
gates:
  - predict.errors == 0
""")
        r = self.d.request('POST', '/v1/services/uses-target/runs',
                           json.dumps({'version': '1', 'environment': 'prod',
                                       'target': self.t.url + '/v1/predict'}), auth(**JSON))
        self.assertEqual(r.status, 201, r)
        run = self.d.wait_run(r.json['id'], timeout=60)
        self.assertEqual(run['state'], 'passed', run)

    def test_made_up_methods_do_not_crowd_out_metrics(self):
        port = int(self.d.url.rsplit(':', 1)[1])
        for i in range(300):
            with socket.create_connection(('127.0.0.1', port)) as s:
                s.sendall(b'M%05d /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' % i)
                while s.recv(4096):
                    pass
        self.assertEqual(self.d.get('/v1/runs').status, 200)
        text = self.d.request('GET', '/metrics', None, auth()).body.decode()
        series = {line.split(' ')[0] for line in text.splitlines() if line.startswith('readyd_http_requests_total')}
        self.assertIn('readyd_http_requests_total{method="GET",route="/v1/runs",code="200"}', series)
        self.assertIn('readyd_http_requests_total{method="other",route="unmatched",code="404"}', series)
        self.assertLess(len(series), 20, sorted(series)[:20])


if __name__ == '__main__':
    lib.main()
