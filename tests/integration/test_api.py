"""Integration: the real readyd and demo target over HTTP. Submit, long-poll
to the verdict, report, list, cancel, problem+json for bad input, restart
with history intact and interrupted runs marked."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402


def http_spec(url, gate, extra_probe='', service='demo-api', timeout='20m'):
    return f"""apiVersion: readyd/v1
service: {service}
version: 2.4.0
environment: test
timeout: {timeout}
probes:
  - name: health
    type: http
    url: {url}
{extra_probe}gates:
  - {gate}
"""


class ApiTest(lib.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.demo = lib.DemoTarget(latency='1ms').__enter__()
        cls.slow = lib.DemoTarget(latency='3s').__enter__()
        cls.d = lib.Daemon().__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)
        cls.demo.__exit__(None, None, None)
        cls.slow.__exit__(None, None, None)

    def setUp(self):
        super().setUp()
        self.track(self.d)

    def problem(self, r, status):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.headers['Content-Type'], 'application/problem+json')
        p = r.json
        self.assertEqual(p['status'], status)
        self.assertTrue(p['title'])
        self.assertTrue(p['detail'])
        return p

    def test_healthz(self):
        r = self.d.get('/healthz')
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json['status'], 'ok')
        self.assertTrue(r.headers['X-Request-Id'])
        r = self.d.get('/readyz')
        self.assertEqual(r.status, 200, r)
        self.assertGreaterEqual(r.json['schema_version'], 1)

    def test_pass_fail_error_verdicts(self):
        url = self.demo.url + '/healthz'
        run = self.d.run_spec(http_spec(url, 'health.status == 200'))
        self.assertEqual((run['state'], run['verdict']), ('passed', 'PASS'), run)
        g = run['gates'][0]
        self.assertEqual((g['outcome'], g['value'], g['threshold']), ('pass', 200, 200))
        self.assertEqual(run['probes'][0]['metrics']['status'], 200)
        self.assertEqual(run['probes'][0]['metrics']['ok'], 1)
        self.assertIsNotNone(run['started_at'])
        self.assertIsNotNone(run['finished_at'])

        run = self.d.run_spec(http_spec(url, 'health.status == 500'))
        self.assertEqual((run['state'], run['verdict']), ('failed', 'FAIL'), run)
        g = run['gates'][0]
        self.assertEqual((g['outcome'], g['value'], g['threshold']), ('fail', 200, 500))
        self.assertIn('200 is not == 500', g['reason'])

        run = self.d.run_spec(http_spec(url, 'health.p95_ms < 100'))
        self.assertEqual((run['state'], run['verdict']), ('error', 'ERROR'), run)
        g = run['gates'][0]
        self.assertEqual(g['outcome'], 'error')
        self.assertIsNone(g['value'])
        self.assertIn("did not publish metric 'p95_ms'", g['reason'])

    def test_advisory_gate_does_not_block(self):
        spec = http_spec(self.demo.url + '/healthz', 'health.status == 200') + \
            '  - { expr: "health.latency_ms < 0", advisory: true }\n'
        run = self.d.run_spec(spec)
        self.assertEqual(run['verdict'], 'PASS', run)
        self.assertEqual(run['gates'][1]['outcome'], 'fail')
        self.assertTrue(run['gates'][1]['advisory'])

    def test_probe_transport_error_is_error(self):
        # A port nothing listens on: bind, note it, close.
        import socket
        s = socket.socket()
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
        s.close()
        run = self.d.run_spec(http_spec('http://127.0.0.1:%d/' % port, 'health.status == 200'))
        self.assertEqual(run['verdict'], 'ERROR', run)
        self.assertEqual(run['probes'][0]['state'], 'error')
        self.assertTrue(run['probes'][0]['error'])
        self.assertIn('ended error', run['gates'][0]['reason'])

    def test_refused_second_probe_errors_the_run(self):
        extra = '  - name: tls\n    type: tls\n    url: https://127.0.0.1:1/\n'
        run = self.d.run_spec(http_spec(self.demo.url + '/healthz', 'health.status == 200',
                                        extra_probe=extra))
        self.assertEqual(run['verdict'], 'ERROR', run)
        self.assertEqual(run['probes'][1]['state'], 'error')
        # nothing listens on port 1: the probe is an error, so is the run
        self.assertIn('refused', run['probes'][1]['error'])

    def test_json_spec_and_report(self):
        spec = ('{"apiVersion": "readyd/v1", "service": "json-api", "version": "1.0",'
                ' "probes": [{"name": "h", "type": "http", "url": "%s/healthz",'
                ' "headers": {"Authorization": "Bearer s3cret"}}],'
                ' "gates": ["h.ok == 1"]}' % self.demo.url)
        r = self.d.submit(spec, 'application/json')
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.headers['Location'], '/v1/runs/%d' % r.json['id'])
        run = self.d.wait_run(r.json['id'])
        self.assertEqual(run['verdict'], 'PASS', run)
        rep = self.d.get('/v1/runs/%d/report' % run['id'])
        self.assertEqual(rep.status, 200, rep)
        body = rep.json
        self.assertEqual(body['verdict'], 'PASS')
        self.assertEqual(body['run']['id'], run['id'])
        self.assertEqual(body['summary']['gates_total'], 1)
        self.assertNotIn(b's3cret', rep.body)
        self.assertIn('<redacted>', rep.body.decode())
        self.problem(self.d.get('/v1/runs/%d/report?format=pdf' % run['id']), 400)

    def test_bad_specs_are_problems(self):
        url = self.demo.url + '/healthz'
        p = self.problem(self.d.submit(http_spec(url, 'health.status == 200').replace(
            'url:', 'rul:')), 422)
        self.assertEqual(p['errors'][0]['path'], 'probes[0].rul')
        p = self.problem(self.d.submit(http_spec(url, 'health.status == 200').replace(
            'type: http', 'type: htp')), 422)
        self.assertEqual(p['errors'][0]['path'], 'probes[0].type')
        p = self.problem(self.d.submit(http_spec(url, 'latncy.p95_ms < 1')), 422)
        self.assertEqual(p['errors'][0]['path'], 'gates[0]')
        p = self.problem(self.d.submit('apiVersion: [unclosed\n'), 400)
        self.assertGreater(p['errors'][0]['line'], 0)
        self.problem(self.d.submit('{"apiVersion": ', 'application/json'), 400)
        self.problem(self.d.submit('x: 1', 'text/plain'), 415)
        self.problem(self.d.submit('a' * (1024 * 1024 + 10)), 413)
        self.assertEqual(self.d.get('/healthz').status, 200)

    def test_routing_errors(self):
        self.problem(self.d.get('/v1/nothing'), 404)
        self.problem(self.d.get('/v1/runs/999999'), 404)
        self.problem(self.d.get('/v1/runs/abc'), 404)
        r = self.d.request('DELETE', '/v1/runs')
        p = self.problem(r, 405)
        self.assertIn('GET', r.headers['Allow'])
        self.assertIn('POST', p['detail'])
        self.problem(self.d.get('/v1/runs?limit=0'), 400)
        self.problem(self.d.get('/v1/runs?state=bogus'), 400)
        self.problem(self.d.get('/v1/runs?cursor=zz'), 400)

    def test_list_pagination_and_filters(self):
        url = self.demo.url + '/healthz'
        ids = []
        for _ in range(3):
            r = self.d.submit(http_spec(url, 'health.status == 200', service='paged'))
            self.assertEqual(r.status, 201, r)
            ids.append(r.json['id'])
        for i in ids:
            self.d.wait_run(i)
        r = self.d.get('/v1/runs?service=paged&limit=2')
        self.assertEqual(r.status, 200, r)
        page1 = r.json
        self.assertEqual([x['id'] for x in page1['items']], [ids[2], ids[1]])
        self.assertTrue(page1['next_cursor'])
        r = self.d.get('/v1/runs?service=paged&limit=2&cursor=' + page1['next_cursor'])
        page2 = r.json
        self.assertEqual([x['id'] for x in page2['items']], [ids[0]])
        self.assertIsNone(page2['next_cursor'])
        r = self.d.get('/v1/runs?service=paged&state=failed')
        self.assertEqual(r.json['items'], [])

    def test_idempotency_key(self):
        spec = http_spec(self.demo.url + '/healthz', 'health.status == 200')
        r1 = self.d.submit(spec, headers={'Idempotency-Key': 'deploy-812'})
        r2 = self.d.submit(spec, headers={'Idempotency-Key': 'deploy-812'})
        self.assertEqual(r1.status, 201, r1)
        self.assertEqual(r2.status, 200, r2)
        self.assertEqual(r1.json['id'], r2.json['id'])
        self.problem(self.d.submit(spec, headers={'Idempotency-Key': 'has space'}), 400)

    def test_long_poll_returns_on_change(self):
        spec = http_spec(self.slow.url + '/v1/predict', 'health.status == 200')
        r = self.d.submit(spec)
        run_id = r.json['id']
        self.problem(self.d.get('/v1/runs/%d?wait=forever' % run_id), 400)
        t0 = time.monotonic()
        r = self.d.get('/v1/runs/%d?wait=30s' % run_id)
        self.assertEqual(r.status, 200)
        # The run changes (probe start/end, final state) long before 30 s.
        self.assertLess(time.monotonic() - t0, 25)
        run = self.d.wait_run(run_id)
        self.assertEqual(run['verdict'], 'PASS', run)
        self.assertEqual(run['progress']['probes_done'], 1)

    def test_cancel(self):
        spec = http_spec(self.slow.url + '/v1/predict', 'health.status == 200')
        run_id = self.d.submit(spec).json['id']
        # Wait until the probe is running.
        for _ in range(100):
            run = self.d.get('/v1/runs/%d' % run_id).json
            if run['probes'][0]['state'] == 'running':
                break
            time.sleep(0.02)
        self.assertEqual(run['state'], 'running', run)
        self.assertEqual(run['progress']['current']['probe'], 'health')
        r = self.d.request('POST', '/v1/runs/%d/cancel' % run_id)
        self.assertIn(r.status, (200, 202), r)
        run = self.d.wait_run(run_id, timeout=10)
        self.assertEqual(run['state'], 'cancelled', run)
        self.assertIsNone(run['verdict'])
        self.assertEqual(run['probes'][0]['state'], 'cancelled')
        self.problem(self.d.request('POST', '/v1/runs/%d/cancel' % run_id), 409)
        self.problem(self.d.request('POST', '/v1/runs/999999/cancel'), 404)

    def test_probe_deadline(self):
        spec = http_spec(self.slow.url + '/v1/predict', 'health.status == 200').replace(
            '    url:', '    timeout: 500ms\n    url:')
        run = self.d.run_spec(spec)
        self.assertEqual(run['verdict'], 'ERROR', run)
        self.assertEqual(run['probes'][0]['state'], 'error')

    def test_run_timeout(self):
        spec = http_spec(self.slow.url + '/v1/predict', 'health.status == 200',
                         timeout='1s')
        run = self.d.run_spec(spec)
        self.assertEqual((run['state'], run['verdict']), ('error', 'ERROR'), run)
        self.assertIn('timeout of 1s', run['error'])


class RestartTest(lib.TestCase):
    def test_restart_keeps_history_and_marks_interrupted(self):
        # The same node_id across the restart (the port changes): on a
        # shared PostgreSQL database a node ends its previous life's runs
        # at start, others' only when their lease passes.
        with lib.DemoTarget(latency='1ms') as fast, lib.DemoTarget(latency='20s') as slow, \
                lib.Daemon(config='node_id: restart-test\n') as d:
            self.track(d)
            done = d.run_spec(http_spec(fast.url + '/healthz', 'health.status == 200'))
            self.assertEqual(done['verdict'], 'PASS')
            run_id = d.submit(http_spec(slow.url + '/v1/predict',
                                        'health.status == 200')).json['id']
            for _ in range(200):
                if d.get('/v1/runs/%d' % run_id).json['state'] == 'running':
                    break
                time.sleep(0.02)
            d.kill()
            d.start()
            run = d.get('/v1/runs/%d' % run_id).json
            self.assertEqual(run['state'], 'interrupted', run)
            self.assertEqual(run['probes'][0]['state'], 'interrupted')
            self.assertIn('stopped', run['error'])
            again = d.get('/v1/runs/%d' % done['id']).json
            self.assertEqual(again['verdict'], 'PASS')
            self.assertEqual(again['gates'], done['gates'])
            self.assertIn('interrupted', d.log())

    def test_sigterm_interrupts_and_exits_cleanly(self):
        with lib.DemoTarget(latency='20s') as slow, lib.Daemon() as d:
            self.track(d)
            run_id = d.submit(http_spec(slow.url + '/v1/predict',
                                        'health.status == 200')).json['id']
            for _ in range(200):
                if d.get('/v1/runs/%d' % run_id).json['state'] == 'running':
                    break
                time.sleep(0.02)
            t0 = time.monotonic()
            self.assertEqual(d.stop(signal.SIGTERM), 0)
            self.assertLess(time.monotonic() - t0, 10)
            self.assertIn('msg="stopped"', d.log())
            d.start()
            run = d.get('/v1/runs/%d' % run_id).json
            self.assertEqual(run['state'], 'interrupted', run)


if __name__ == '__main__':
    lib.main()
