"""Integration: operations and security (docs/security.md). The auth matrix over
every compiled route (`readyd --list-routes`), SSRF refusals (loopback
only: 127.0.0.1 allowed, 127.0.0.2 refused with a listener there that
must see no connection), secret redaction in every response and the log,
limits, SIGHUP reload, SIGTERM drain, request ids and `hash-token`."""
import hashlib
import http.server
import json
import os
import signal
import socket
import sqlite3
import subprocess
import tempfile
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

TOKENS = {'viewer': 'tok-viewer-1', 'submitter': 'tok-submitter-1', 'admin': 'tok-admin-1',
          'notifier': 'tok-notifier-1'}
RANK = {'anyone': 0, 'viewer': 1, 'submitter': 2, 'admin': 3}


def allowed(have, need):
    """Roles are ordered, but notifier stands apart: it may only deliver
    Alertmanager notifications, which only admin may do besides it."""
    if need == 'anyone':
        return True
    if need == 'notifier':
        return have in ('notifier', 'admin')
    return have in RANK and RANK[have] >= RANK[need]
SECRET = 'Bearer s3cr3t-target-credential'


def sha(t):
    return hashlib.sha256(t.encode()).hexdigest()


def tokens_yaml(tokens):
    return 'tokens:\n' + ''.join(
        '  - {name: %s, hash: %s, role: %s}\n' % (role + '-bot', sha(tok), role)
        for role, tok in tokens.items())


def spec(url, extra='', probes=None, headers=''):
    return f"""apiVersion: readyd/v1
service: ops-api
version: 1.0.0
environment: test
timeout: 5m
probes:
  - name: health
    type: http
    url: {url}
{headers}{probes or ''}gates:
  - health.status == 200
{extra}"""


def bearer(tok):
    return {'Authorization': 'Bearer ' + tok}


class Listener:
    """Counts TCP connections on host:port (e.g. 127.0.0.2)."""

    def __init__(self, host):
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stop = False
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
                self.connections += 1
                c.close()
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close()


class Redirector(http.server.BaseHTTPRequestHandler):
    location = None

    def do_GET(self):  # noqa: N802
        self.send_response(302)
        self.send_header('Location', self.location)
        self.send_header('Content-Length', '0')
        self.end_headers()

    def log_message(self, *a):
        pass


class OpsTest(lib.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.demo = lib.DemoTarget(latency='1ms').__enter__()
        cfg = tokens_yaml(TOKENS) + 'allowed_targets: ["127.0.0.1"]\n'
        cls.d = lib.Daemon(config=cfg)
        cls.d.token = TOKENS['admin']  # for lib's helpers (wait_run)
        cls.d.__enter__()
        cls.routes = json.loads(subprocess.check_output([lib.READYD_BIN, '--list-routes']))

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)
        cls.demo.__exit__(None, None, None)

    def setUp(self):
        super().setUp()
        self.track(self.d)

    def submit(self, text, tok='submitter', **kw):
        return self.d.submit(text, headers=bearer(TOKENS[tok]), **kw)

    def assert_refused(self, r, path):
        self.assertEqual(r.status, 422, r)
        self.assertEqual(r.json['errors'][0]['path'], path, r)

    def test_hash_token(self):
        out = subprocess.run([lib.READYD_BIN, 'hash-token'], input=b'abc\n',
                             capture_output=True, check=True).stdout.decode().strip()
        self.assertEqual(out, sha('abc'))
        r = subprocess.run([lib.READYD_BIN, 'hash-token'], input=b'', capture_output=True)
        self.assertEqual(r.returncode, 2)

    def test_auth_matrix(self):
        run_id = self.submit(spec(self.demo.url + '/healthz')).json['id']
        ids = {'{id}': str(run_id), '{name}': 'ops-api', '{env}': 'staging'}
        idents = [('none', None), ('bad', 'not-a-token')] + list(TOKENS.items())
        for route in self.routes:
            path = route['path']
            for k, v in ids.items():
                path = path.replace(k, v)
            need = route['role']
            if path.startswith('/v1/'):
                self.assertNotEqual(need, 'anyone', 'route %s has no role' % route)
            for ident, tok in idents:
                if route['method'] == 'DELETE' and ident == 'admin':
                    continue  # would delete a waiver other cases expect
                with self.subTest(route=route, ident=ident):
                    h = bearer(tok) if tok else {}
                    h['Content-Type'] = 'application/json'
                    r = lib.http(route['method'], self.d.url + path,
                                 b'{}' if route['method'] != 'GET' else None, h)
                    if allowed(ident, need):
                        self.assertNotIn(r.status, (401, 403, 429), r)
                    elif tok is None or ident == 'bad':
                        self.assertEqual(r.status, 401, r)
                        self.assertTrue(r.headers['WWW-Authenticate'].startswith('Bearer'))
                    else:
                        self.assertEqual(r.status, 403, r)

    def test_submitted_by_is_token_name(self):
        run = self.submit(spec(self.demo.url + '/healthz')).json
        self.assertEqual(run['submitted_by'], 'submitter-bot')

    def test_ssrf_refused_at_submit(self):
        lst = Listener('127.0.0.2')
        try:
            url2 = 'http://127.0.0.2:%d/' % lst.port
            self.assert_refused(self.submit(spec(url2)), 'probes[0].url')
            self.assert_refused(self.submit(spec('http://169.254.169.254/latest/meta-data/')),
                                'probes[0].url')
            load = spec(url2).replace('probes:\n', 'target: {url: "%s"}\nprobes:\n' % url2, 1) \
                .replace('  - name: health\n    type: http\n    url: %s\n' % url2,
                         '  - {name: health, type: load, mode: closed, connections: 1, '
                         'duration: 1s}\n')
            self.assert_refused(self.submit(load), 'target.url')
            r = self.submit(spec('file:///etc/passwd'))
            self.assertEqual(r.status, 422, r)
            self.assertIn('probes[0].url', r.body.decode())
            time.sleep(0.2)
            self.assertEqual(lst.connections, 0)
        finally:
            lst.close()

    def test_ssrf_embedded_ipv4_refused(self):
        # IPv6 forms of a refused IPv4 address: refused with an empty
        # allowlist too (where every other address is allowed), and
        # forms of 127.0.0.2 are as unlisted as 127.0.0.2 itself.
        lst = Listener('127.0.0.2')
        d = self.track(lib.Daemon().start())
        try:
            for host in ('[64:ff9b::169.254.169.254]', '[::a9fe:a9fe]',
                         '[::ffff:169.254.169.254]', '[64:ff9b::a9fe:a9fe]',
                         '[2002:a9fe:a9fe::1]', '[64:ff9b:1::a9fe:a9fe]'):
                with self.subTest(host=host):
                    r = d.submit(spec('http://%s/latest/meta-data/' % host))
                    self.assert_refused(r, 'probes[0].url')
            for host in ('[::127.0.0.2]', '[::ffff:127.0.0.2]', '[64:ff9b::127.0.0.2]'):
                with self.subTest(host=host):
                    self.assert_refused(self.submit(spec('http://%s:%d/' % (host, lst.port))),
                                        'probes[0].url')
            time.sleep(0.2)
            self.assertEqual(lst.connections, 0)
        finally:
            d.stop()
            lst.close()

    def test_redirect_is_not_followed_to_refused_host(self):
        # No probe type follows redirects today; lib/http's own suite
        # (test-http: test_policy) shows a followed redirect to a refused
        # address is refused by the same hook this daemon installs.
        lst = Listener('127.0.0.2')
        Redirector.location = 'http://127.0.0.2:%d/' % lst.port
        srv = http.server.HTTPServer(('127.0.0.1', 0), Redirector)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        try:
            text = spec('http://127.0.0.1:%d/' % srv.server_address[1])
            r = self.submit(text)
            self.assertEqual(r.status, 201, r)
            run = self.d.wait_run(r.json['id'], timeout=30)
            self.assertNotEqual(run['verdict'], 'PASS', run)
            time.sleep(0.2)
            self.assertEqual(lst.connections, 0)
        finally:
            srv.shutdown()
            srv.server_close()
            lst.close()

    def test_redaction(self):
        hdr = '    headers: { Authorization: "%s", X-Api-Key: k3y-value }\n' % SECRET
        r = self.submit(spec(self.demo.url + '/healthz', headers=hdr))
        self.assertEqual(r.status, 201, r)
        run_id = r.json['id']
        bodies = [r.body, self.d.wait_run(run_id) and b'']
        for p in ('/v1/runs/%d' % run_id, '/v1/runs/%d/report' % run_id, '/v1/runs',
                  '/v1/runs/%d/report?format=json' % run_id):
            bodies.append(self.d.get(p, headers=bearer(TOKENS['viewer'])).body)
        for fmt in ('md', 'html', 'junit'):
            bodies.append(self.d.get('/v1/runs/%d/report?format=%s' % (run_id, fmt),
                                     headers=bearer(TOKENS['viewer'])).body)
        for b in bodies + [self.d.log().encode()]:
            self.assertNotIn(b's3cr3t', b)
            self.assertNotIn(b'k3y-value', b)

    def test_request_id_echoed_and_logged(self):
        r = self.d.get('/healthz', headers={'X-Request-Id': 'pipeline-42.a'})
        self.assertEqual(r.headers['X-Request-Id'], 'pipeline-42.a')
        r = self.d.get('/healthz', headers={'X-Request-Id': 'bad id\x7f'})
        self.assertNotEqual(r.headers['X-Request-Id'], 'bad id')
        for _ in range(50):
            if 'request_id=pipeline-42.a status=200' in self.d.log():
                break
            time.sleep(0.02)
        self.assertIn('msg="GET /healthz" request_id=pipeline-42.a status=200', self.d.log())

    def test_rate_limit_429(self):
        cfg = tokens_yaml(TOKENS) + 'rate_limit: {requests_per_second: 1, burst: 2}\n'
        with lib.Daemon(config=cfg) as d:
            self.track(d)
            st = [d.get('/v1/runs', headers=bearer(TOKENS['viewer'])).status for _ in range(4)]
            self.assertIn(429, st)
            r = d.get('/v1/runs', headers=bearer(TOKENS['viewer']))
            if r.status == 429:
                self.assertGreaterEqual(int(r.headers['Retry-After']), 1)

    def test_limits(self):
        cfg = ('limits: {max_probes: 1, max_spec_bytes: 2048, max_run_duration: 10m, '
               'max_load_connections: 8}\napi: {max_body: 4096}\n'
               'scheduler: {max_queued: 1, max_concurrent_runs: 1}\n')
        with lib.DemoTarget(latency='3s') as slow, lib.Daemon(config=cfg) as d:
            self.track(d)
            two = spec(self.demo.url + '/healthz', probes='  - {name: b, type: http, url: %s}\n'
                       % (self.demo.url + '/healthz'))
            self.assert_refused(d.submit(two), 'probes')
            self.assert_refused(d.submit(spec(self.demo.url + '/healthz').replace(
                'timeout: 5m', 'timeout: 1h')), 'timeout')
            big = spec(self.demo.url + '/healthz') + '# ' + 'x' * 3000 + '\n'
            self.assertEqual(d.submit(big).status, 413)
            self.assertEqual(d.submit(big + 'y' * 5000).status, 413)
            load = spec(self.demo.url + '/healthz', probes='').replace(
                '    type: http', '    type: load\n    connections: 64\n    duration: 1s')
            self.assertEqual(d.submit(load).status, 422)
            s = spec(slow.url + '/v1/predict')
            statuses = [d.submit(s).status for _ in range(3)]
            self.assertIn(503, statuses, statuses)

    def test_tokenless_non_loopback_refused(self):
        tmp = self.d.tmpdir
        r = subprocess.run([os.path.abspath(lib.READYD_BIN), '--listen', '0.0.0.0:0', '--db', ':memory:'],
                           capture_output=True, timeout=20, cwd=tmp)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b'allow_unauthenticated', r.stderr)

    def test_postgresql_unreachable(self):
        """A PostgreSQL URL whose server is not there (a free port): readyd
        exits 1 at once naming the database, creates nothing, and never
        logs the URL's password."""
        tmp = tempfile.mkdtemp(dir=self.d.tmpdir)
        port = lib.free_port()
        r = subprocess.run([os.path.abspath(lib.READYD_BIN), '--listen', '127.0.0.1:0', '--db',
                            'postgresql://readyd:s3cret@127.0.0.1:%d/readyd' % port],
                           capture_output=True, timeout=20, cwd=tmp)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(b"Failed to open database 'postgresql://readyd:<redacted>@127.0.0.1:%d/"
                      b"readyd': Failed to connect to PostgreSQL" % port, r.stderr)
        self.assertNotIn(b's3cret', r.stderr)
        self.assertEqual(os.listdir(tmp), [])

    def test_sighup_reload(self):
        new = {'viewer': 'fresh-viewer-token'}
        with lib.Daemon(config=tokens_yaml(TOKENS)) as d:
            self.track(d)
            self.assertEqual(d.get('/v1/runs', headers=bearer(new['viewer'])).status, 401)
            cfg = os.path.join(d.tmpdir, 'readyd.yaml')
            with open(cfg, 'w', encoding='utf-8') as f:
                f.write(tokens_yaml(TOKENS) +
                        '  - {name: fresh, hash: %s, role: viewer}\n' % sha(new['viewer']))
            d.send_signal(signal.SIGHUP)
            ok = False
            for _ in range(100):
                if d.get('/v1/runs', headers=bearer(new['viewer'])).status == 200:
                    ok = True
                    break
                time.sleep(0.05)
            self.assertTrue(ok, 'new token not accepted after SIGHUP')
            with open(cfg, 'w', encoding='utf-8') as f:
                f.write('tokens: [ {name: broken} ]\n')
            d.send_signal(signal.SIGHUP)
            for _ in range(100):
                if 'keeping the old one' in d.log():
                    break
                time.sleep(0.05)
            self.assertIn('keeping the old one', d.log())
            self.assertEqual(d.get('/v1/runs', headers=bearer(new['viewer'])).status, 200)

    def test_sigterm_finish_policy(self):
        cfg = 'shutdown: {runs: finish, timeout: 5s}\n'
        with lib.DemoTarget(latency='1s') as slow, lib.Daemon(config=cfg) as d:
            self.track(d)
            run_id = d.submit(spec(slow.url + '/v1/predict')).json['id']
            for _ in range(200):
                if d.get('/v1/runs/%d' % run_id).json['state'] == 'running':
                    break
                time.sleep(0.02)
            d.send_signal(signal.SIGTERM)
            time.sleep(0.1)
            self.assertEqual(d.submit(spec(slow.url + '/v1/predict')).status, 503)
            self.assertEqual(d.get('/readyz').status, 503)
            t0 = time.monotonic()
            self.assertEqual(d.wait(timeout=15), 0)
            self.assertLess(time.monotonic() - t0, 10)
            d.start()
            run = d.get('/v1/runs/%d' % run_id).json
            self.assertEqual(run['state'], 'passed', run)

    def test_sigterm_during_load_probe_interrupts(self):
        text = spec(self.demo.url + '/healthz').replace(
            'probes:\n', 'target: {url: "%s/v1/predict"}\nprobes:\n' % self.demo.url, 1) \
            .replace('  - name: health\n    type: http\n    url: %s/healthz\n' % self.demo.url,
                     '  - {name: health, type: load, mode: closed, connections: 2, '
                     'duration: 30s}\n')
        with lib.Daemon() as d:
            self.track(d)
            r = d.submit(text)
            self.assertEqual(r.status, 201, r)
            run_id = r.json['id']
            for _ in range(250):
                if d.get('/v1/runs/%d' % run_id).json['state'] == 'running':
                    break
                time.sleep(0.02)
            time.sleep(0.5)
            t0 = time.monotonic()
            self.assertEqual(d.stop(signal.SIGTERM), 0)
            self.assertLess(time.monotonic() - t0, 10)
            d.start()
            run = d.get('/v1/runs/%d' % run_id).json
            self.assertEqual(run['state'], 'interrupted', run)

    def test_connection_memory_limit(self):
        # api.connection_memory caps what one connection may buffer: a
        # request whose headers do not fit is not served.
        with lib.Daemon(config='api: {connection_memory: 8192}\n') as d:
            self.track(d)
            try:
                big = d.get('/healthz', headers={'X-Filler': 'x' * 12000}, timeout=10)
                self.assertNotEqual(big.status, 200, big)
            except OSError:
                pass  # closed without an answer: also refused
            self.assertEqual(d.get('/healthz').status, 200)

    def test_connection_limit(self):
        # api.max_connections: with the limit taken by idle connections, a
        # further connection gets no answer (MHD accepts and closes it); once
        # they go, the API answers again. Connections are accepted in arrival
        # order, so the idle ones always count first.
        with lib.Daemon(config='api: {max_connections: 4}\n') as d:
            self.track(d)
            idle = [socket.create_connection(('127.0.0.1', d.port), timeout=5)
                    for _ in range(4)]
            try:
                time.sleep(0.3)
                extra = socket.create_connection(('127.0.0.1', d.port), timeout=5)
                try:
                    extra.sendall(b'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')
                    try:
                        answer = extra.recv(4096)
                    except (ConnectionResetError, socket.timeout):
                        answer = b''
                    self.assertFalse(answer.startswith(b'HTTP/1.1 200'), answer)
                finally:
                    extra.close()
            finally:
                for c in idle:
                    c.close()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    if d.get('/healthz', timeout=2).status == 200:
                        break
                except OSError:
                    time.sleep(0.1)
            self.assertEqual(d.get('/healthz').status, 200)

    def test_sd_notify_and_socket_activation(self):
        tmp = self.d.tmpdir
        path = os.path.join(tmp, 'notify.sock')
        ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ns.bind(path)
        ns.settimeout(5)
        ls = socket.socket()
        ls.bind(('127.0.0.1', 0))
        ls.listen(8)
        port = ls.getsockname()[1]
        env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC='200000', LISTEN_FDS='1')
        # sh moves the socket to fd 3 (SD_LISTEN_FDS_START) and execs readyd
        # with its own pid as LISTEN_PID, as systemd would.
        fd = ls.fileno()
        script = 'exec 3<&%d %d<&-; LISTEN_PID=$$ exec "$0" "$@"' % (fd, fd)
        argv = ['sh', '-c', script, os.path.abspath(lib.READYD_BIN),
                '--db', os.path.join(tmp, 'act.db'), '--listen', '127.0.0.1:1']
        log = open(os.path.join(tmp, 'act.log'), 'wb')
        proc = subprocess.Popen(argv, env=env, pass_fds=(fd,), stderr=log)
        log.close()
        try:
            got = []
            try:
                while not any('WATCHDOG=1' in m for m in got):
                    got.append(ns.recv(4096).decode())
            except socket.timeout:
                with open(os.path.join(tmp, 'act.log'), encoding='utf-8') as f:
                    self.fail('no WATCHDOG=1; got %r; log:\n%s' % (got, f.read()))
            self.assertTrue(got[0].startswith('READY=1'), got)
            self.assertIn('127.0.0.1:%d' % port, got[0])
            self.assertEqual(lib.http('GET', 'http://127.0.0.1:%d/healthz' % port).status, 200)
            proc.send_signal(signal.SIGTERM)
            while not any('STOPPING=1' in m for m in got):
                got.append(ns.recv(4096).decode())
            self.assertEqual(proc.wait(timeout=15), 0)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            ns.close()
            ls.close()

    def test_tls(self):
        tmp = self.d.tmpdir
        key, crt = os.path.join(tmp, 'k.pem'), os.path.join(tmp, 'c.pem')
        r = subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
                            'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', crt,
                            '-days', '1', '-subj', '/CN=127.0.0.1',
                            '-addext', 'subjectAltName=IP:127.0.0.1'], capture_output=True)
        if r.returncode != 0:
            self.skipTest('openssl cannot make a certificate: %r' % r.stderr)
        cfg = 'tls: {cert: %s, key: %s}\n' % (crt, key)
        with lib.Daemon(config=cfg) as d:
            self.track(d)
            url = 'https://127.0.0.1:%d' % d.port
            ok = subprocess.run([lib.READYCTL_BIN, '--url', url, '--cacert', crt, 'runs'],
                                capture_output=True, timeout=30)
            self.assertEqual(ok.returncode, 0, ok)
            bad = subprocess.run([lib.READYCTL_BIN, '--url', url, 'runs'],
                                 capture_output=True, timeout=30)
            self.assertNotEqual(bad.returncode, 0, bad)


    def test_retention_prunes_raw_rows_only(self):
        with lib.Daemon(config='retention: {raw_days: 1}\n') as d:
            self.track(d)
            run = d.run_spec(spec(self.demo.url + '/healthz'))
            d.stop()
            db = sqlite3.connect(d.db)
            old = int((time.time() - 3 * 86400) * 1000)
            db.execute('UPDATE runs SET finished_at = ? WHERE id = ?', (old, run['id']))
            db.execute('CREATE TABLE raw_samples (run_id INTEGER REFERENCES runs (id), v REAL)')
            db.executemany('INSERT INTO raw_samples VALUES (?, ?)',
                           [(run['id'], float(i)) for i in range(1200)])
            db.commit()
            self.assertEqual(db.execute('PRAGMA auto_vacuum').fetchone()[0], 2)
            db.close()
            d.start()
            for _ in range(100):
                if 'retention: pruned' in d.log() and \
                        d.log().count('retention: pruned') >= 3:
                    break
                time.sleep(0.05)
            db = sqlite3.connect(d.db)
            n = db.execute('SELECT count(*) FROM raw_samples').fetchone()[0]
            db.close()
            self.assertEqual(n, 0)
            again = d.get('/v1/runs/%d' % run['id']).json
            self.assertEqual(again['verdict'], 'PASS')
            self.assertEqual(again['probes'], run['probes'])


if __name__ == '__main__':
    lib.main()
