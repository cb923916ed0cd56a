"""Integration: the tls, auth, rate-limit, rollback-drill and resources
probes and the http probe's JSON expectations, against the real readyd and
demo target. Certificates are made at test time with the openssl CLI.
Every probe's failure modes (refused, bad input) must end as an ERROR with
a message that says what happened."""
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402


def spec(probes, gates=(), target=None, timeout='2m'):
    """A spec from probe YAML snippets (each a list of 'key: value' lines)."""
    out = ['apiVersion: readyd/v1', 'service: demo-api', 'version: 2.4.0',
           'environment: test', 'timeout: %s' % timeout]
    if target:
        out += ['target:', '  url: %s' % target]
    out.append('probes:')
    for p in probes:
        lines = p.strip('\n').split('\n')
        out.append('  - ' + lines[0].strip())
        out += ['    ' + ln.strip() for ln in lines[1:]]
    if gates:
        out.append('gates:')
        out += ['  - "%s"' % g for g in gates]
    return '\n'.join(out) + '\n'


def free_port():
    """A port nothing listens on (bound, then released)."""
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


# Certificates and the TLS demo target live in lib.py (test_load.py uses them too).
make_cert = lib.make_cert
TlsDemo = lib.TlsDemo


class StatusHandler(http.server.BaseHTTPRequestHandler):
    """Answers like Alertmanager's /api/v2/status."""
    body = b''

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


class ProbesTest(lib.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='readyd-probes-')
        # ca_file and pid_file must lie in a directory readyd.yaml allows.
        cls.d = lib.Daemon(config='allowed_paths: [%s]\n' % json.dumps(cls.tmp)).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        super().setUp()
        self.track(self.d)

    def run_ok(self, text, timeout=60.0):
        return self.d.run_spec(text, timeout)

    def probe(self, run, i=0):
        return run['probes'][i]

    def assert_error(self, run, *needles):
        p = self.probe(run)
        self.assertEqual(p['state'], 'error', run)
        self.assertEqual(run['verdict'], 'ERROR', run)
        for n in needles:
            self.assertIn(n, p['error'])

    # --- tls ---

    def test_tls_versions_and_certificates(self):
        cert, key = make_cert(self.tmp, 'valid', 30)
        with TlsDemo(self.tmp, cert, key, max_version='1.2') as t12, \
                TlsDemo(self.tmp, cert, key) as t13:
            self.track(t12)
            self.track(t13)
            run = self.run_ok(spec(['name: tls\ntype: tls\nurl: %s/healthz\nmin_version: "1.3"'
                                    % t12.tls_url], ['tls.version >= 1.3']))
            p = self.probe(run)
            self.assertEqual((run['verdict'], p['state']), ('FAIL', 'failed'), run)
            self.assertEqual(p['metrics']['version'], 1.2)
            self.assertIn('negotiated TLS 1.2, below min_version 1.3', p['error'])
            g = run['gates'][0]
            self.assertEqual((g['outcome'], g['value']), ('fail', 1.2), g)

            run = self.run_ok(spec(['name: tls\ntype: tls\nurl: %s/\nmin_version: "1.3"\n'
                                    'ca_file: %s' % (t13.tls_url, cert)],
                                   ['tls.version >= 1.3', 'tls.cert_days_left > 14',
                                    'tls.chain_ok == 1', 'tls.hostname_ok == 1']))
            p = self.probe(run)
            self.assertEqual(run['verdict'], 'PASS', run)
            self.assertEqual(p['metrics']['version'], 1.3)
            self.assertGreater(p['metrics']['cert_days_left'], 29.9)
            self.assertLess(p['metrics']['cert_days_left'], 30.1)
            self.assertTrue(p['details']['cipher'].startswith('TLS_'), p['details'])

            # A host name goes through the resolver (localhost may be ::1
            # first, where nothing listens: the next address is tried).
            run = self.run_ok(spec(['name: tls\ntype: tls\nurl: %s/\nca_file: %s'
                                    % (t13.tls_url.replace('127.0.0.1', 'localhost'), cert)],
                                   ['tls.hostname_ok == 1', 'tls.chain_ok == 1']))
            self.assertEqual(run['verdict'], 'PASS', run)
            self.assertEqual(self.probe(run)['details']['servername'], 'localhost')

            # Without the CA the self-signed chain does not verify, but the
            # handshake completes and the rest is measured; a wrong name
            # is measured too.
            run = self.run_ok(spec(['name: tls\ntype: tls\nurl: %s/\nservername: other.example'
                                    % t13.tls_url]))
            m = self.probe(run)['metrics']
            self.assertEqual(self.probe(run)['state'], 'passed', run)
            self.assertEqual((m['chain_ok'], m['hostname_ok']), (0, 0), m)

    def test_tls_soon_expiring_and_expired(self):
        for days, lo, hi in ((1, 0.99, 1.01), (-1, -1.01, -0.99)):
            cert, key = make_cert(self.tmp, 'days%d' % days, days)
            with TlsDemo(self.tmp, cert, key) as t:
                self.track(t)
                run = self.run_ok(spec(['name: tls\ntype: tls\nurl: %s/\nca_file: %s'
                                        % (t.tls_url, cert)], ['tls.cert_days_left > 7']))
                p = self.probe(run)
                self.assertEqual(p['state'], 'passed', run)
                self.assertGreater(p['metrics']['cert_days_left'], lo, p)
                self.assertLess(p['metrics']['cert_days_left'], hi, p)
                self.assertEqual(run['verdict'], 'FAIL', run)
                if days < 0:
                    self.assertEqual(p['metrics']['chain_ok'], 0)
                    self.assertIn('expired', p['details']['verify_result'])

    def test_tls_errors(self):
        run = self.run_ok(spec(['name: tls\ntype: tls\nurl: https://127.0.0.1:%d/'
                                % free_port()]))
        self.assert_error(run, 'connect to 127.0.0.1:', 'refused')
        # A plain HTTP server is not TLS: the handshake fails, reported.
        with lib.DemoTarget() as t:
            self.track(t)
            run = self.run_ok(spec(['name: tls\ntype: tls\nurl: https://127.0.0.1:%d/'
                                    % t.port]))
            self.assert_error(run, 'TLS handshake with 127.0.0.1:')
        # A server that accepts and says nothing: the probe's timeout.
        s = socket.socket()
        s.bind(('127.0.0.1', 0))
        s.listen(1)
        try:
            run = self.run_ok(spec(['name: tls\ntype: tls\ntimeout: 1s\n'
                                    'url: https://127.0.0.1:%d/' % s.getsockname()[1]]))
            self.assert_error(run, 'TLS handshake with 127.0.0.1:', 'timed out after 0.9 s')
        finally:
            s.close()

    # --- auth ---

    def test_auth_on_and_off(self):
        gates = ['auth.rejected == 1']
        with lib.DemoTarget(auth_token='s3cret-token') as on, lib.DemoTarget() as off:
            self.track(on)
            text = 'name: auth\ntype: auth\nurl: %s/v1/predict\nheaders: {Authorization: "Bearer s3cret-token"}'
            run = self.run_ok(spec([text % on.url], gates))
            p = self.probe(run)
            self.assertEqual((run['verdict'], p['state']), ('PASS', 'passed'), run)
            self.assertEqual(p['metrics'], {'unauthenticated_status': 401,
                                            'invalid_token_status': 401, 'rejected': 1})
            run = self.run_ok(spec([text % off.url], gates))
            p = self.probe(run)
            self.assertEqual((run['verdict'], p['state']), ('FAIL', 'failed'), run)
            self.assertEqual(p['metrics']['unauthenticated_status'], 200)
            self.assertEqual(p['metrics']['rejected'], 0)
            self.assertIn('without credentials was answered 200, expected 401 or 403',
                          p['error'])
            # The target's request is used when the probe has no url.
            run = self.run_ok(spec(['name: auth\ntype: auth'], gates,
                                   target=on.url + '/v1/predict'))
            self.assertEqual(run['verdict'], 'PASS', run)

    def test_auth_refused(self):
        run = self.run_ok(spec(['name: auth\ntype: auth\nurl: http://127.0.0.1:%d/'
                                % free_port()]))
        self.assert_error(run, 'GET http://127.0.0.1:')

    # --- rate-limit ---

    def test_rate_limit_on_and_off(self):
        gates = ['rl.limited == 1']
        with lib.DemoTarget(rate_limit=5) as on, lib.DemoTarget() as off:
            self.track(on)
            text = 'name: rl\ntype: rate-limit\nburst: 40\nurl: %s/v1/predict'
            run = self.run_ok(spec([text % on.url], gates))
            p = self.probe(run)
            self.assertEqual((run['verdict'], p['state']), ('PASS', 'passed'), run)
            m = p['metrics']
            self.assertEqual((m['limited'], m['retry_after_present']), (1, 1), m)
            # A full bucket of 5 plus what refills while the burst runs.
            self.assertGreaterEqual(m['first_429_after'], 5, m)
            self.assertLess(m['first_429_after'], 40, m)
            self.assertLessEqual(p['details']['sent'], 40)

            run = self.run_ok(spec([text % off.url], gates))
            p = self.probe(run)
            self.assertEqual((run['verdict'], p['state']), ('FAIL', 'failed'), run)
            self.assertEqual(p['metrics'], {'limited': 0, 'first_429_after': 41,
                                            'retry_after_present': 0})
            self.assertEqual(p['details']['sent'], 40)
            self.assertIn('no 429 in a burst of 40 requests', p['error'])

    def test_rate_limit_refused(self):
        run = self.run_ok(spec(['name: rl\ntype: rate-limit\nburst: 5\n'
                                'url: http://127.0.0.1:%d/' % free_port()]))
        self.assert_error(run, 'GET http://127.0.0.1:')

    # --- rollback-drill ---

    def drill(self, url, trigger, expect='2.3.9', within='10s', restore=True, gate=True):
        text = ('name: rb\ntype: rollback-drill\n'
                'trigger: {method: POST, url: "%s%s"}\n'
                'version_url: %s/version\nexpect_version: "%s"\nwithin: %s\n'
                'poll_interval: 200ms' % (url, trigger, url, expect, within))
        if restore:
            text += '\nrestore: {method: POST, url: "%s/admin/rollforward"}' % url
        return spec([text], ['rb.seconds_to_rollback < 300'] if gate else [])

    def test_rollback_drill(self):
        with lib.DemoTarget() as t:
            self.track(t)
            run = self.run_ok(self.drill(t.url, '/admin/rollback?delay=1s'))
            p = self.probe(run)
            self.assertEqual((run['verdict'], p['state']), ('PASS', 'passed'), run)
            self.assertGreaterEqual(p['metrics']['seconds_to_rollback'], 1.0)
            self.assertLess(p['metrics']['seconds_to_rollback'], 5.0)
            self.assertEqual(p['details']['last_version'], '2.3.9')
            # restore rolled the target forward again
            self.assertEqual(lib.http('GET', t.url + '/version').json['version'], '2.4.0')

            # The version never changes: a failure naming what was seen.
            # (A gate on seconds_to_rollback would be ERROR here: no rollback
            # happened, so there is no time to judge.)
            run = self.run_ok(self.drill(t.url, '/admin/rollforward', within='1s', gate=False))
            p = self.probe(run)
            self.assertEqual((run['verdict'], p['state']), ('FAIL', 'failed'), run)
            self.assertIn("version is still '2.4.0' after 1.0 s (expected '2.3.9')",
                          p['error'])
            self.assertNotIn('seconds_to_rollback', p['metrics'])

            # A trigger that is not 2xx is an error, and restore still runs.
            t.post('/admin/rollback')
            run = self.run_ok(self.drill(t.url, '/nope'))
            self.assert_error(run, 'trigger POST', 'answered 404')
            self.assertEqual(lib.http('GET', t.url + '/version').json['version'], '2.4.0')

    def test_rollback_refused(self):
        run = self.run_ok(self.drill('http://127.0.0.1:%d' % free_port(), '/x',
                                     restore=False))
        self.assert_error(run, 'trigger POST http://127.0.0.1:')

    # --- resources ---

    def test_resources_by_pid_file(self):
        pid_file = os.path.join(self.tmp, 'demo.pid')
        with lib.DemoTarget(pid_file=pid_file, latency='5ms') as t:
            self.track(t)
            probes = ['name: res\ntype: resources\npid_file: %s\ninterval: 100ms' % pid_file]
            probes += ['name: h%d\ntype: http\nurl: %s/v1/predict' % (i, t.url)
                       for i in range(8)]
            probes.append('name: rb\ntype: rollback-drill\n'
                          'trigger: {method: POST, url: "%s/admin/rollback?delay=600ms"}\n'
                          'restore: {method: POST, url: "%s/admin/rollforward"}\n'
                          'version_url: %s/version\nexpect_version: "2.3.9"\nwithin: 5s\n'
                          'poll_interval: 100ms' % (t.url, t.url, t.url))
            run = self.run_ok(spec(probes, ['res.rss_mb_max < 4096',
                                            'res.cpu_percent_max < 1000']))
            p = self.probe(run)
            self.assertEqual((run['verdict'], p['state']), ('PASS', 'passed'), run)
            m = p['metrics']
            # sampled while the later probes ran (at least the 600 ms drill)
            self.assertGreaterEqual(m['samples'], 5, m)
            self.assertGreater(m['rss_mb_max'], 0.1)
            self.assertGreaterEqual(m['cpu_percent_avg'], 0)
            self.assertGreaterEqual(m['cpu_percent_max'], m['cpu_percent_avg'])
            self.assertEqual(p['details']['source'], 'process %d (from %s)' % (t.proc.pid,
                                                                              pid_file))
            if shutil.which('nvidia-smi') is None:
                self.assertEqual(p['details']['gpu'], 'unavailable')
                self.assertNotIn('gpu_util_max', m)
            # it ended after the last probe (RFC 3339 UTC strings sort by time)
            self.assertGreaterEqual(p['finished_at'], run['probes'][-1]['finished_at'])

    def test_resources_during_load(self):
        pid_file = os.path.join(self.tmp, 'demo-load.pid')
        with lib.DemoTarget(pid_file=pid_file, latency='1ms') as t:
            self.track(t)
            probes = ['name: res\ntype: resources\npid_file: %s\ninterval: 100ms' % pid_file,
                      'name: load\ntype: load\nmode: closed\nconnections: 4\nduration: 1500ms']
            run = self.run_ok(spec(probes, ['res.cpu_percent_max > 0', 'load.error_rate < 0.01'],
                                   target=t.url + '/v1/predict'))
            self.assertEqual(run['verdict'], 'PASS', run)
            res, load = run['probes']
            self.assertGreater(load['metrics']['requests'], 100, load)
            # ~15 samples during the 1.5 s of load, and the target was busy
            self.assertGreaterEqual(res['metrics']['samples'], 10, res)
            self.assertGreater(res['metrics']['cpu_percent_max'], 1, res)
            self.assertGreaterEqual(res['finished_at'], load['finished_at'])

    def test_resources_errors_and_vanished(self):
        run = self.run_ok(spec(['name: res\ntype: resources\npid_file: %s/none.pid'
                                % self.tmp]))
        self.assert_error(run, 'none.pid cannot be resolved: No such file or directory')
        not_pid = os.path.join(self.tmp, 'not-a-pid')
        with open(not_pid, 'w') as f:
            f.write('s3cret-text-of-the-file\n')
        run = self.run_ok(spec(['name: res\ntype: resources\npid_file: %s\n' % not_pid]))
        self.assert_error(run, 'does not hold a process id')
        self.assertNotIn('s3cret-text', json.dumps(run))
        run = self.run_ok(spec(['name: res\ntype: resources\ncgroup: /readyd-no-such-group']))
        self.assert_error(run, 'cgroup /readyd-no-such-group cannot be read')
        run = self.run_ok(spec(['name: res\ntype: resources\npid: 1\ngpu_required: true']))
        if shutil.which('nvidia-smi') is None:
            self.assert_error(run, 'gpu_required, but nvidia-smi is not in PATH')

        # A process that exits while sampled: what was measured is kept.
        proc = subprocess.Popen(['sleep', '0.6'])
        try:
            probes = ['name: res\ntype: resources\npid: %d\ninterval: 100ms' % proc.pid,
                      'name: wait\ntype: rollback-drill\n'
                      'trigger: {method: GET, url: "%s/healthz"}\n'
                      'version_url: %s/healthz\nexpect_version: never\nwithin: 1500ms\n'
                      'poll_interval: 100ms' % (self.d.url, self.d.url)]
            run = self.run_ok(spec(probes))
        finally:
            proc.wait()
        p = self.probe(run)
        self.assertEqual(p['state'], 'passed', run)
        self.assertIn('went away', p['details']['note'])
        self.assertGreaterEqual(p['metrics']['samples'], 2)

    def test_resources_fake_gpu(self):
        bindir = os.path.join(self.tmp, 'bin')
        os.makedirs(bindir, exist_ok=True)
        smi = os.path.join(bindir, 'nvidia-smi')
        with open(smi, 'w', encoding='ascii') as f:
            f.write('#!/bin/sh\necho "37, 1024, 4096"\necho "81, 3072, 4096"\n')
        os.chmod(smi, 0o755)
        old = os.environ['PATH']
        os.environ['PATH'] = bindir + ':' + old
        try:
            d = self.track(lib.Daemon().start())
        finally:
            os.environ['PATH'] = old
        try:
            run = d.run_spec(spec(['name: res\ntype: resources\npid: %d\ninterval: 100ms'
                                   '\ngpu_required: true' % d.proc.pid,
                                   'name: wait\ntype: rollback-drill\n'
                                   'trigger: {method: GET, url: "%s/healthz"}\n'
                                   'version_url: %s/healthz\nexpect_version: never\n'
                                   'within: 700ms\npoll_interval: 100ms' % (d.url, d.url)]))
        finally:
            d.__exit__(None, None, None)
        p = self.probe(run)
        self.assertEqual(p['state'], 'passed', run)
        self.assertEqual(p['metrics']['gpu_util_max'], 81)
        self.assertEqual(p['metrics']['gpu_mem_used_pct_max'], 75)
        self.assertEqual(p['details']['gpu'], 'nvidia-smi')

    # --- http: expect_json and cluster status ---

    def test_http_expect_json(self):
        with lib.DemoTarget() as t:
            self.track(t)
            base = 'name: v\ntype: http\nurl: %s/version\n' % t.url
            run = self.run_ok(spec([base + 'expect_json: {"$.version": "2.4.0"}'],
                                   ['v.ok == 1']))
            self.assertEqual(run['verdict'], 'PASS', run)
            run = self.run_ok(spec([base + 'expect_json: {"$.version": "9.9"}'],
                                   ['v.ok == 1']))
            p = self.probe(run)
            self.assertEqual(p['state'], 'failed', run)
            self.assertIn('$.version is "2.4.0", expected "9.9"', p['error'])
            # Numbers in the message as written, not jansson's %.17g
            # (0.93000000000000005).
            run = self.run_ok(spec(['name: v\ntype: http\nurl: %s/v1/predict\n'
                                    'expect_json: {"$.score": 0.1}' % t.url]))
            self.assertIn('$.score is 0.93, expected 0.1', self.probe(run)['error'])
            run = self.run_ok(spec([base + 'expect_json: {"$.build[0]": 1}']))
            self.assertIn("$.build[0]: no key 'build'", self.probe(run)['error'])
            run = self.run_ok(spec(['name: v\ntype: http\nurl: %s/metrics\n'
                                    'expect_json: {"$.a": 1}' % t.url]))
            self.assertIn('body is not JSON', self.probe(run)['error'])

    def test_http_cluster_status(self):
        # Alertmanager writes nanoseconds
        up = time.strftime('%Y-%m-%dT%H:%M:%S.123456789Z', time.gmtime(time.time() - 120))
        StatusHandler.body = json.dumps({
            'cluster': {'status': 'ready', 'peers': [{'name': 'a'}]},
            'uptime': up, 'versionInfo': {'version': '0.25.0'}}).encode()
        srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), StatusHandler)
        th = threading.Thread(target=srv.serve_forever, daemon=True)
        th.start()
        try:
            url = 'http://127.0.0.1:%d/api/v2/status' % srv.server_address[1]
            run = self.run_ok(spec(['name: am\ntype: http\nurl: %s\n'
                                    'expect_json: {"$.cluster.peers[0].name": "a"}' % url],
                                   ['am.cluster_status == 1', 'am.uptime_s > 60']))
            self.assertEqual(run['verdict'], 'PASS', run)
            m = self.probe(run)['metrics']
            self.assertGreater(m['uptime_s'], 110)
            self.assertLess(m['uptime_s'], 200)
            StatusHandler.body = json.dumps({'cluster': {'status': 'settling'},
                                             'uptime': up}).encode()
            run = self.run_ok(spec(['name: am\ntype: http\nurl: %s' % url],
                                   ['am.cluster_status == 1']))
            self.assertEqual(run['verdict'], 'FAIL', run)
            self.assertEqual(self.probe(run)['metrics']['cluster_status'], 0)
        finally:
            srv.shutdown()
            srv.server_close()


if __name__ == '__main__':
    lib.main()
