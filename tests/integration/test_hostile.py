"""Integration: hostile or careless specs get nowhere. Local files are
confined to readyd.yaml's allowed_paths (checked at submit and again when
read, never read on the loop, their text never echoed); regex bombs are
refused at once and matching never stalls the loop; credentials in URLs
never reach a response, a report, SSE, the log or the database."""
import http.server
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

SECRET = 's3cret'


def spec(probes, extra=''):
    return 'apiVersion: readyd/v1\nservice: hostile\nversion: "1.0"\nprobes:\n' + \
        ''.join('  - ' + p.replace('\n', '\n    ') + '\n' for p in probes) + extra


def rules_probe(*files, prom='http://127.0.0.1:9'):
    return ('name: rules\ntype: prometheus-rules\nprometheus: %s/\nrule_files: %s'
            % (prom, json.dumps(list(files))))


class SlowBody(http.server.BaseHTTPRequestHandler):
    """Answers after `delay` seconds with `body`."""
    body = b'ok'
    delay = 0.0

    def do_GET(self):  # noqa: N802
        time.sleep(self.delay)
        self.send_response(200)
        self.send_header('Content-Type', 'text/plain')
        self.send_header('Content-Length', str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *a):
        pass


class FakeProm(SlowBody):
    """/api/v1/rules of a Prometheus without rules, for any path."""
    body = b'{"status": "success", "data": {"groups": []}}'


def serve(handler):
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


class Healthz:
    """Polls /healthz every 100 ms from a thread; records the slowest
    answer (a timeout counts as 10 s)."""

    def __init__(self, d):
        self.d, self.worst, self.n, self.stop = d, 0.0, 0, False
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while not self.stop:
            t0 = time.monotonic()
            try:
                ok = lib.http('GET', self.d.url + '/healthz', timeout=10.0).status == 200
            except OSError:
                ok = False
            dt = time.monotonic() - t0 if ok else 10.0
            self.worst = max(self.worst, dt)
            self.n += 1
            time.sleep(0.1)

    def close(self):
        self.stop = True
        self.t.join()
        return self.worst


class HostileTest(lib.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='readyd-hostile-')
        cls.allowed = os.path.join(cls.tmp, 'allowed')
        os.mkdir(cls.allowed)
        cls.d = lib.Daemon(config='allowed_paths: [%s]\n' % json.dumps(cls.allowed)).__enter__()

        cls.prom_srv = serve(FakeProm)
        cls.prom = 'http://127.0.0.1:%d' % cls.prom_srv.server_address[1]

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)
        cls.prom_srv.shutdown()
        cls.prom_srv.server_close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        super().setUp()
        self.track(self.d)

    def assert_refused(self, r, path, words=None):
        self.assertEqual(r.status, 422, r)
        self.assertEqual(r.json['errors'][0]['path'], path, r)
        if words:
            self.assertIn(words, r.json['errors'][0]['message'], r)

    def file(self, name, text):
        path = os.path.join(self.allowed, name)
        with open(path, 'w', encoding='utf-8') as f:
            f.write(text)
        return path

    # --- item 1: local files are confined ---

    def test_files_outside_allowed_paths_refused_at_submit(self):
        link = os.path.join(self.allowed, 'shadow-link.yml')
        if not os.path.lexists(link):
            os.symlink('/etc/shadow', link)
        escape = os.path.join(self.allowed, 'sub')
        os.makedirs(escape, exist_ok=True)
        dir_link = os.path.join(escape, 'etc')
        if not os.path.lexists(dir_link):
            os.symlink('/etc', dir_link)
        cases = [
            (rules_probe('/etc/shadow'), 'probes[0].rule_files[0]'),
            (rules_probe(self.file('ok.yml', 'groups: []\n'), link), 'probes[0].rule_files[1]'),
            (rules_probe(os.path.join(dir_link, 'passwd')), 'probes[0].rule_files[0]'),
            ('name: res\ntype: resources\npid_file: /proc/self/stat', 'probes[0].pid_file'),
            ('name: t\ntype: tls\nurl: https://127.0.0.1:9/\nca_file: /etc/hostname',
             'probes[0].ca_file'),
            ('name: h\ntype: http\nurl: https://127.0.0.1:9/\nca_file: %s' % link,
             'probes[0].ca_file'),
        ]
        for probe, path in cases:
            with self.subTest(path=path, probe=probe):
                self.assert_refused(self.d.submit(spec([probe])), path, 'allowed_paths')
        # '..' never even reaches the file system.
        self.assert_refused(self.d.submit(spec([rules_probe(self.allowed + '/../x.yml')])),
                            'probes[0].rule_files[0]', "without '..'")

    def test_no_allowed_paths_no_files(self):
        d = self.track(lib.Daemon().start())
        try:
            pid = self.file('svc.pid', '%d\n' % os.getpid())
            r = d.submit(spec(['name: res\ntype: resources\npid_file: %s' % pid]))
            self.assert_refused(r, 'probes[0].pid_file', 'lists no allowed_paths')
        finally:
            d.stop()

    def test_rule_file_text_never_echoed(self):
        secret_rules = self.file('creds.yml', 'root:*:19000:0:99999:7:::\n'
                                 'basic_auth: {password: %s-pw}\n' % SECRET)
        bad = self.file('bad.yml', 'groups:\n  - name: %s-group\n    rules:\n'
                        '      - {alert: A, expr: up, %s-key: x}\n' % (SECRET, SECRET))
        r = self.d.submit(spec([rules_probe(secret_rules, bad, prom=self.prom)]))
        self.assertEqual(r.status, 201, r)
        run = self.d.wait_run(r.json['id'])
        p = run['probes'][0]
        files = p['details']['rule_files']
        self.assertEqual([f['file'] for f in files], [secret_rules, bad])
        self.assertGreater(files[0]['error_count'], 0, files)
        self.assertGreater(files[1]['error_count'], 0, files)
        self.assertEqual(files[1]['errors'][0]['line'], 4, files)
        text = json.dumps(run)
        for word in (SECRET, 'root:', '19000'):
            self.assertNotIn(word, text)

    def test_ca_file_read_through_the_policy(self):
        cert, key = lib.make_cert(self.allowed, 'ca', 30)
        with lib.TlsDemo(self.tmp, cert, key) as t:
            self.track(t)
            probes = ['name: h\ntype: http\nurl: %s/healthz\nca_file: %s' % (t.tls_url, cert),
                      'name: scrape\ntype: prometheus-scrape\nurl: %s/metrics\nca_file: %s'
                      % (t.tls_url, cert),
                      'name: tls\ntype: tls\nurl: %s/\nca_file: %s' % (t.tls_url, cert),
                      'name: l\ntype: load\nmode: closed\nconnections: 1\nrequests: 20\n'
                      'ca_file: %s' % cert]
            gates = 'gates:\n  - tls.chain_ok == 1\n  - l.errors == 0\n'
            run = self.d.run_spec(spec(probes, gates).replace(
                'probes:', 'target: {url: "%s/healthz"}\nprobes:' % t.tls_url), timeout=60)
            self.assertEqual(run['verdict'], 'PASS', run)
            # The same file turned into a FIFO: each reader says so, at once.
            os.unlink(cert)
            os.mkfifo(cert)
            hz = Healthz(self.d)
            r = self.d.submit(spec(probes[:3]))
            self.assert_refused(r, 'probes[0].ca_file', 'not a regular file')
            worst = hz.close()
            self.assertLess(worst, 1.0)

    # --- item 2: nothing blocks the loop ---

    def test_fifo_refused_and_loop_never_blocks(self):
        fifo = os.path.join(self.allowed, 'rules.fifo')
        if not os.path.exists(fifo):
            os.mkfifo(fifo)
        hz = Healthz(self.d)
        try:
            t0 = time.monotonic()
            self.assert_refused(self.d.submit(spec([rules_probe(fifo)])),
                                'probes[0].rule_files[0]', 'not a regular file')
            self.assert_refused(self.d.submit(spec(['name: res\ntype: resources\n'
                                                    'pid_file: %s' % fifo])),
                                'probes[0].pid_file', 'not a regular file')
            self.assertLess(time.monotonic() - t0, 5.0)
            # Checked again when read: a file that becomes a FIFO after the
            # submit is refused then, and the loop goes on.
            srv = serve(type('Slow', (SlowBody,), {'delay': 1.5}))
            swap = self.file('swap.yml', 'groups: []\n')
            pid_swap = self.file('swap.pid', '%d\n' % os.getpid())
            ca_swap = self.file('swap.pem', 'not yet a certificate\n')
            r = self.d.submit(spec(['name: slow\ntype: http\nurl: http://127.0.0.1:%d/'
                                    % srv.server_address[1], rules_probe(swap, prom=self.prom),
                                    'name: res\ntype: resources\npid_file: %s' % pid_swap,
                                    'name: h\ntype: http\nurl: https://127.0.0.1:9/\n'
                                    'ca_file: %s' % ca_swap]))
            self.assertEqual(r.status, 201, r)
            for path in (swap, pid_swap, ca_swap):
                os.unlink(path)
                os.mkfifo(path)
            run = self.d.wait_run(r.json['id'], timeout=30)
            srv.shutdown()
            srv.server_close()
            rules, res = run['probes'][1], run['probes'][2]
        finally:
            worst = hz.close()
        self.assertEqual(rules['state'], 'failed', rules)
        self.assertIn('not a regular file', rules['error'], rules)
        self.assertEqual(res['state'], 'error', res)
        self.assertIn('not a regular file', res['error'], res)
        h = run['probes'][3]
        self.assertEqual(h['state'], 'error', h)
        self.assertIn('ca_file %s is not a regular file' % ca_swap, h['error'], h)
        self.assertLess(worst, 1.0, 'a /healthz answer took %.2f s' % worst)
        self.assertGreater(hz.n, 10)

    # --- item 3: regexes ---

    def test_regex_bomb_refused_fast(self):
        hz = Healthz(self.d)
        t0 = time.monotonic()
        r = self.d.submit(spec(['name: h\ntype: http\nurl: http://127.0.0.1:9/\n'
                                'expect_body_regex: "(((a{0,30}){0,30}){0,30}){0,30}"']))
        took = time.monotonic() - t0
        worst = hz.close()
        self.assert_refused(r, 'probes[0].expect_body_regex', 'expand to more than')
        self.assertLess(took, 1.0)
        self.assertLess(worst, 1.0)

    def test_regex_matching_never_blocks_the_loop(self):
        srv = serve(type('Big', (SlowBody,), {'body': b'ab' * (512 * 1024)}))
        hz = Healthz(self.d)
        try:
            run = self.d.run_spec(spec(['name: h\ntype: http\nurl: http://127.0.0.1:%d/\n'
                                        'timeout: 60s\n'
                                        'expect_body_regex: "(.*a.*b.*a.*b.*a.*b){1,10}x"'
                                        % srv.server_address[1]]), timeout=90)
        finally:
            worst = hz.close()
            srv.shutdown()
            srv.server_close()
        p = run['probes'][0]
        self.assertEqual(p['state'], 'failed', p)
        self.assertIn('does not match', p['error'])
        # The match keeps one of the machine's cores busy for seconds (on
        # the threadpool): the bound leaves room for that, while a match on
        # the loop would hold /healthz for minutes.
        self.assertLess(worst, 2.0, 'a /healthz answer took %.2f s' % worst)


class SecretsTest(lib.TestCase):
    """A password in URL user-info reaches no output at all."""

    def test_userinfo_never_leaks(self):
        demo = self.track(lib.DemoTarget(latency='1ms').__enter__())
        self.addCleanup(demo.__exit__, None, None, None)
        d = self.track(lib.Daemon().start())
        self.addCleanup(d.stop)
        port = demo.url.rsplit(':', 1)[1]
        up = 'http://user:%s@127.0.0.1:%s' % (SECRET, port)   # reachable
        down = 'http://user:%s@127.0.0.1:9' % SECRET          # refused
        probes = [
            'name: reach\ntype: http\nurl: %s/healthz?token=%s-q\nexpect_status: 201' % (up, SECRET),
            'name: down\ntype: http\nurl: %s/x' % down,
            'name: scrape\ntype: prometheus-scrape\nurl: %s/metrics\nrequire: [nope]' % down,
            'name: query\ntype: prometheus-query\nprometheus: %s/\nquery: up' % down,
            'name: rules\ntype: prometheus-rules\nprometheus: %s/' % down,
            'name: drill\ntype: alert-drill\nprometheus: %s/\nalert: A\n'
            'trigger: {url: "%s/t"}\nwithin: 1s' % (down, down),
            'name: rb\ntype: rollback-drill\ntrigger: {method: POST, url: "%s/t"}\n'
            'version_url: %s/version\nexpect_version: "9"\nwithin: 1s' % (down, up),
            'name: auth\ntype: auth\nurl: %s/x' % down,
            'name: rl\ntype: rate-limit\nurl: %s/x\nburst: 3' % down,
            'name: tls\ntype: tls\nurl: https://user:%s@127.0.0.1:9/' % SECRET,
        ]
        gates = ('gates:\n' + ''.join('  - %s.%s\n' % g for g in (
            ('reach', 'status == 200'), ('down', 'status == 200'), ('query', 'value > 0'),
            ('tls', 'version >= 1.2'))) +
            'checklist:\n  runbook: {evidence: "https://wiki:%s@docs.example/r?access_token=%s-t",'
            ' passed: true}\n' % (SECRET, SECRET))
        bodies = []
        r = d.submit(spec(probes, gates))
        self.assertEqual(r.status, 201, r)
        bodies.append(r.body)
        run_id = r.json['id']
        run = d.wait_run(run_id, timeout=60)
        self.assertIn('<redacted>', json.dumps(run))
        self.assertIn('user:<redacted>@127.0.0.1:9', run['probes'][1]['error'])
        # Refused at submit: the answers do not echo the password either.
        r = d.submit(spec(['name: l\ntype: load\nmode: closed\nduration: 1s'],
                          ).replace('probes:', 'target: {url: "%s/"}\nprobes:' % up))
        self.assertEqual(r.status, 422, r)
        self.assertEqual(r.json['errors'][0]['path'], 'target.url', r)
        bodies.append(r.body)
        r = d.submit(spec(['name: m\ntype: http\nurl: http://u:%s@169.254.169.254/' % SECRET]))
        self.assertEqual(r.status, 422, r)
        bodies.append(r.body)
        for path in ('/v1/runs/%d' % run_id, '/v1/runs', '/v1/gates',
                     '/v1/services/hostile/history', '/v1/runs/%d/events' % run_id):
            bodies.append(d.get(path, timeout=20).body)
        for fmt in ('json', 'md', 'html', 'junit'):
            bodies.append(d.get('/v1/runs/%d/report?format=%s' % (run_id, fmt)).body)
        d.stop()
        bodies.append(d.log().encode())
        for name in os.listdir(d.tmpdir):
            if name.startswith('readyd.db'):
                with open(os.path.join(d.tmpdir, name), 'rb') as f:
                    bodies.append(f.read())
        self.assertGreater(len(bodies), 12)
        for b in bodies:
            self.assertNotIn(SECRET.encode(), b, b[:2000])


if __name__ == '__main__':
    lib.main()
