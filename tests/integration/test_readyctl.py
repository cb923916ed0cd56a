"""Integration: readyctl against the real readyd and demo target. The exit
code is the pipeline's contract (0 PASS, 1 FAIL, 2 ERROR/cancelled/timeout,
3 usage, connection or HTTP error), so every test asserts it, along with
what a human reads on stdout/stderr."""
import fcntl
import json
import os
import pty
import re
import shutil
import socket
import struct
import subprocess
import sys
import termios
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

READYCTL = os.environ.get('READYCTL_BIN', lib.READYCTL_BIN)


def http_spec(url, gate, service='ctl-api', timeout='20m'):
    return f"""apiVersion: readyd/v1
service: {service}
version: 2.4.0
environment: test
timeout: {timeout}
probes:
  - name: health
    type: http
    url: {url}
gates:
  - {gate}
"""


def free_port():
    """A loopback port nothing listens on (bound, noted, closed)."""
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


class ReadyctlTest(lib.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix='readyctl-test-')
        cls.demo = lib.DemoTarget(latency='1ms').__enter__()
        cls.slow = lib.DemoTarget(latency='3s').__enter__()
        cls.d = lib.Daemon().__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)
        cls.demo.__exit__(None, None, None)
        cls.slow.__exit__(None, None, None)
        cls.tmp.cleanup()

    def setUp(self):
        super().setUp()
        self.track(self.d)

    def ctl(self, *args, url=True, stdin=None, env=None, timeout=120):
        """Runs readyctl with a clean environment; --url the daemon unless
        url is False. Returns the CompletedProcess (text)."""
        e = {k: v for k, v in os.environ.items()
             if k not in ('READYD_URL', 'READYD_TOKEN', 'NO_COLOR')}
        e.update(env or {})
        argv = [READYCTL] + (['--url', self.d.url] if url else []) + list(args)
        return subprocess.run(argv, input=stdin, env=e, capture_output=True, text=True,
                              timeout=timeout)

    def spec_file(self, text, name='spec.yaml'):
        fd, path = tempfile.mkstemp(suffix='-' + name, dir=self.tmp.name)
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            f.write(text)
        return path

    def assertExit(self, p, code):
        self.assertEqual(p.returncode, code,
                         'exit %d, want %d\nstdout:\n%s\nstderr:\n%s'
                         % (p.returncode, code, p.stdout, p.stderr))

    def submit_id(self, spec, *flags):
        p = self.ctl('submit', *flags, self.spec_file(spec))
        self.assertExit(p, 0)
        return int(p.stdout.strip())

    def wait_running(self, run_id):
        for _ in range(250):
            run = self.d.get('/v1/runs/%d' % run_id).json
            if run['state'] == 'running':
                return run
            time.sleep(0.02)
        self.fail('run %d never started' % run_id)

    # submit --wait: exit code is the verdict

    def test_submit_wait_pass_exits_0(self):
        spec = http_spec(self.demo.url + '/healthz', 'health.status == 200')
        p = self.ctl('submit', '--wait', self.spec_file(spec))
        self.assertExit(p, 0)
        first = p.stdout.splitlines()[0]
        self.assertRegex(first, r'^run \d+ ctl-api 2\.4\.0 \(test\): PASS$')
        self.assertRegex(p.stdout, r'health\.status == 200\s+200\s+200\s+pass')
        # Not a TTY: progress as plain lines on stderr, never on stdout.
        self.assertRegex(p.stderr, r'run \d+: (queued|running|passed)')
        self.assertNotIn('\r', p.stderr)
        self.assertNotIn('\033[', p.stdout)

    def test_submit_wait_fail_exits_1(self):
        spec = http_spec(self.demo.url + '/healthz', 'health.status == 500')
        p = self.ctl('submit', '--wait', self.spec_file(spec))
        self.assertExit(p, 1)
        self.assertIn(': FAIL', p.stdout.splitlines()[0])
        self.assertRegex(p.stdout, r'health\.status == 500\s+200\s+500\s+fail\s+200 is not == 500')

    def test_submit_wait_error_exits_2(self):
        url = 'http://127.0.0.1:%d/' % free_port()
        p = self.ctl('submit', '--wait', self.spec_file(http_spec(url, 'health.status == 200')))
        self.assertExit(p, 2)
        self.assertIn(': ERROR', p.stdout.splitlines()[0])
        self.assertRegex(p.stdout, r'probe health: .+')

    def test_submit_wait_json_prints_final_run(self):
        spec = http_spec(self.demo.url + '/healthz', 'health.status == 200')
        p = self.ctl('--json', 'submit', '--wait', self.spec_file(spec))
        self.assertExit(p, 0)
        run = json.loads(p.stdout)
        self.assertEqual((run['state'], run['verdict']), ('passed', 'PASS'))

    def test_bad_spec_exits_3_with_path(self):
        spec = http_spec(self.demo.url + '/healthz', 'health.status == 200').replace(
            'url:', 'rul:')
        path = self.spec_file(spec)
        p = self.ctl('submit', '--wait', path)
        self.assertExit(p, 3)
        # Once, where an editor can jump to it: FILE:LINE: path: message.
        self.assertRegex(p.stderr, r'^%s:9: probes\[0\]\.rul: .+\n$' % re.escape(path))
        self.assertEqual(p.stderr.count('rul'), 1, p.stderr)
        self.assertEqual(p.stdout, '')
        p = self.ctl('submit', '-', stdin=spec)
        self.assertRegex(p.stderr, r'^<stdin>:9: probes\[0\]\.rul: ')

    def test_unparsable_spec_exits_3(self):
        path = self.spec_file('apiVersion: readyd/v1\nservice: [unclosed\nversion: 1\n')
        p = self.ctl('submit', path)
        self.assertExit(p, 3)
        # A syntax error has a line, not a field path ("service[0]").
        self.assertRegex(p.stderr, r'^%s:3: YAML syntax error: .+\n$' % re.escape(path))
        self.assertNotIn('[0]', p.stderr)

    def test_json_errors(self):
        # --json: every error is one JSON object on a line of stderr.
        spec = http_spec(self.demo.url + '/healthz', 'health.status == 200').replace(
            'url:', 'rul:')
        p = self.ctl('--json', 'submit', self.spec_file(spec))
        self.assertExit(p, 3)
        err = json.loads(p.stderr)
        self.assertEqual(err['status'], 422)
        self.assertEqual(err['problem']['errors'][0]['path'], 'probes[0].rul')
        self.assertEqual(err['problem']['errors'][0]['line'], 9)
        p = self.ctl('status', '--json', '999999')
        self.assertExit(p, 3)
        self.assertEqual(json.loads(p.stderr)['status'], 404)
        p = self.ctl('--json', 'sumbit', 'x.yaml')
        self.assertExit(p, 3)
        err = json.loads(p.stderr)
        self.assertIn("did you mean 'submit'", err['error'])
        p = self.ctl('--json', 'status', url=False, env={'READYD_URL': 'http://127.0.0.1:%d'
                                                          % free_port()})
        self.assertExit(p, 3)
        self.assertIn('error', json.loads(p.stderr.splitlines()[-1]))
        p = self.ctl('--json', 'status', '1', url=False,
                     env={'READYD_URL': 'http://127.0.0.1:%d' % free_port()})
        self.assertExit(p, 3)
        self.assertIn('error', json.loads(p.stderr.splitlines()[-1]))

    def test_live_load_stats_on_a_terminal(self):
        # While a load probe runs, `submit --wait` on a terminal shows its
        # requests/s, p99 and errors, from the run's progress (also on
        # GET /v1/runs/{id}, checked against docs/openapi.yaml by lib).
        spec = f"""apiVersion: readyd/v1
service: ctl-live
version: 1.0.0
environment: test
timeout: 1m
target:
  url: {self.demo.url}/healthz
probes:
  - name: load
    type: load
    mode: closed
    connections: 2
    duration: 3s
gates:
  - load.error_rate < 0.5
"""
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack('HHHH', 50, 250, 0, 0))
        env = {k: v for k, v in os.environ.items() if k not in ('READYD_TOKEN', 'NO_COLOR')}
        proc = subprocess.Popen([READYCTL, '--url', self.d.url, 'submit', '--wait',
                                 self.spec_file(spec)], env=env, stdout=subprocess.PIPE,
                                stderr=slave, text=True)
        os.close(slave)
        seen, live = b'', None
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
            runs = self.d.get('/v1/runs?service=ctl-live&limit=1').json['items']
            if live is None and runs:
                cur = (self.d.get('/v1/runs/%d' % runs[0]['id']).json.get('progress')
                       or {}).get('current') or {}
                live = cur if 'rps' in cur else None
        os.close(master)
        out, _ = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 0, seen.decode('utf-8', 'replace') + out)
        text = seen.decode('utf-8', 'replace')
        lines = re.findall(r'[^\r\n]*\d+ req/s p99 [0-9.e+-]+ ms \d+ errors', text)
        self.assertTrue(lines, text)
        print('live load line: %r (of %d)' % (re.sub(r'\x1b\[[0-9;]*[A-Za-z]', '', lines[-1]),
                                              len(lines)))
        if live is not None:  # polled while the probe ran (timing allowing)
            self.assertGreater(live['rps'], 0)
            self.assertEqual(live['errors'], 0)

    def test_typo_suggests_a_command(self):
        p = self.ctl('sumbit', 'spec.yaml', url=False)
        self.assertExit(p, 3)
        self.assertIn("unknown command 'sumbit'; did you mean 'submit'?", p.stderr)
        p = self.ctl('help', 'waviers', url=False)
        self.assertExit(p, 3)
        self.assertIn("did you mean 'waivers'?", p.stderr)
        p = self.ctl('frobnicate', url=False)
        self.assertExit(p, 3)
        self.assertNotIn('did you mean', p.stderr)

    def test_man_page_and_completion_cover_every_command(self):
        root = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
        overview = self.ctl('--help', url=False).stdout
        block = overview.split('Commands:\n', 1)[1].split('\n\n', 1)[0]
        commands = [line.split()[0] for line in block.splitlines()]
        self.assertGreaterEqual(len(commands), 14, commands)
        with open(os.path.join(root, 'docs', 'man', 'readyctl.1'), encoding='utf-8') as f:
            man = f.read()
        section = man.split('.SH COMMANDS', 1)[1].split('.SH ', 1)[0]
        for c in commands:
            self.assertRegex(section, r'\n\.B[IR]? "?%s\b' % c, c)
            self.assertExit(self.ctl('help', c, url=False), 0)
        exits = man.split('.SH EXIT STATUS', 1)[1].split('.SH ', 1)[0]
        for code in ('0', '1', '2', '3', '130'):
            self.assertIn('\n.B %s\n' % code, exits)
        self.assertIn('Examples:', overview)
        self.assertIn('Examples:', self.ctl('help', 'submit', url=False).stdout)
        # bash: the completion function offers the commands and options.
        script = os.path.join(root, 'cli', 'completion', 'readyctl.bash')

        def complete(*words):
            line = ('source %s; COMP_WORDS=(readyctl %s); COMP_CWORD=%d; _readyctl; '
                    'printf "%%s\\n" "${COMPREPLY[@]}"'
                    % (script, ' '.join("'%s'" % w for w in words), len(words)))
            return subprocess.run(['bash', '-c', line], capture_output=True, text=True,
                                  check=True).stdout.split()
        self.assertEqual(sorted(complete('')), sorted(commands + [
            '--url', '--token', '--cacert', '--json', '--help', '--version']))
        self.assertEqual(complete('su'), ['submit'])
        self.assertIn('--idempotency-key', complete('submit', '--'))
        self.assertEqual(complete('runs', '--state', 'fa'), ['failed'])
        self.assertEqual(complete('spec', ''), ['put', 'get', 'diff'])
        zsh_script = os.path.join(root, 'cli', 'completion', '_readyctl')
        with open(zsh_script, encoding='utf-8') as f:
            zsh = f.read()
        for c in commands:
            self.assertIn("'%s:" % c, zsh)
        if not shutil.which('zsh'):
            return
        # zsh: the function run by zsh itself, with _describe and
        # _arguments (compsys's, which need a completion widget) replaced
        # by functions that print what they were given.

        def zcomplete(*words):
            line = ('_describe() { print -l -- "${(@P)${@[-1]}}" }; '
                    '_arguments() { print -l -- "$@" }; '
                    'words=(readyctl %s); CURRENT=%d; source %s'
                    % (' '.join("'%s'" % w for w in words), len(words) + 1, zsh_script))
            return subprocess.run(['zsh', '-f', '-c', line], capture_output=True, text=True,
                                  check=True).stdout.splitlines()
        offered = [ln.split(':', 1)[0] for ln in zcomplete('') if not ln.startswith(('-', '('))]
        self.assertEqual(sorted(offered), sorted(commands))
        self.assertEqual([ln.split(':', 1)[0] for ln in zcomplete('spec', '')],
                         ['put', 'get', 'diff'])
        self.assertIn('--state[state]:state:(queued running passed failed error cancelled '
                      'interrupted)', zcomplete('runs', '--state', ''))

    # submit variants

    def test_submit_stdin_and_json_file(self):
        spec = http_spec(self.demo.url + '/healthz', 'health.status == 200')
        p = self.ctl('submit', '--wait', '-', stdin=spec)
        self.assertExit(p, 0)
        doc = json.dumps({'apiVersion': 'readyd/v1', 'service': 'ctl-json', 'version': '1',
                          'probes': [{'name': 'h', 'type': 'http',
                                      'url': self.demo.url + '/healthz'}],
                          'gates': ['h.ok == 1']})
        p = self.ctl('submit', '--wait', self.spec_file(doc, 'spec.json'))
        self.assertExit(p, 0)
        # --format overrides the file name.
        p = self.ctl('submit', '--format', 'json', '-', stdin=doc)
        self.assertExit(p, 0)
        self.assertRegex(p.stdout, r'^\d+\n$')

    def test_idempotency_key_returns_same_run(self):
        spec = http_spec(self.demo.url + '/healthz', 'health.status == 200')
        a = self.submit_id(spec, '--idempotency-key', 'ctl-deploy-1')
        b = self.submit_id(spec, '--idempotency-key', 'ctl-deploy-1')
        self.assertEqual(a, b)

    def test_wait_timeout_exits_2_and_run_continues(self):
        spec = http_spec(self.slow.url + '/v1/predict', 'health.status == 200')
        p = self.ctl('submit', '--wait', '--timeout', '1s', self.spec_file(spec))
        self.assertExit(p, 2)
        self.assertIn('continues on the server', p.stderr)
        run_id = int(p.stderr.split('readyctl status ')[-1].split()[0])
        # With --json the same notice is an event among the run's events.
        p = self.ctl('--json', 'submit', '--wait', '--timeout', '1s', self.spec_file(spec))
        self.assertExit(p, 2)
        last = json.loads(p.stderr.splitlines()[-1])
        self.assertEqual(last['event'], 'notice', p.stderr)
        self.assertIn('continues on the server', last['data']['message'])
        run = self.d.wait_run(run_id)
        self.assertEqual(run['verdict'], 'PASS', run)

    # status, report, runs, cancel

    def test_status_report_runs(self):
        spec = http_spec(self.demo.url + '/healthz', 'health.status == 200',
                         service='ctl-listed')
        run_id = self.submit_id(spec)
        p = self.ctl('status', '--wait', str(run_id))
        self.assertExit(p, 0)
        self.assertIn('PASS', p.stdout)

        p = self.ctl('status', str(run_id))
        self.assertExit(p, 0)
        self.assertIn('run %d ctl-listed 2.4.0 (test)' % run_id, p.stdout)
        self.assertRegex(p.stdout, r'state\s+passed')
        self.assertRegex(p.stdout, r'verdict\s+PASS')
        self.assertRegex(p.stdout, r'health\s+http\s+passed')

        p = self.ctl('status', '--json', str(run_id))
        self.assertExit(p, 0)
        self.assertEqual(json.loads(p.stdout)['id'], run_id)

        p = self.ctl('report', '--format', 'json', str(run_id))
        self.assertExit(p, 0)
        self.assertEqual(json.loads(p.stdout)['verdict'], 'PASS')

        p = self.ctl('report', str(run_id))  # the server's default format
        self.assertExit(p, 0)
        self.assertTrue(p.stdout)

        out = os.path.join(self.tmp.name, 'report-%d.json' % run_id)
        p = self.ctl('report', '--json', '-o', out, str(run_id))
        self.assertExit(p, 0)
        self.assertEqual(p.stdout, '')
        with open(out, encoding='utf-8') as f:
            self.assertEqual(json.load(f)['verdict'], 'PASS')
        name = 'report-%d.json' % run_id  # and no temporary name.json.XXXXXX left behind
        self.assertEqual([n for n in os.listdir(self.tmp.name) if n.startswith(name)], [name])

        p = self.ctl('runs', '--service', 'ctl-listed')
        self.assertExit(p, 0)
        self.assertRegex(p.stdout, r'(?m)^ID\s+SERVICE')
        self.assertRegex(p.stdout, r'(?m)^%d\s+ctl-listed\s+2\.4\.0\s+test\s+passed\s+PASS'
                         % run_id)

        p = self.ctl('--json', 'runs', '--service', 'ctl-listed', '--limit', '5')
        self.assertExit(p, 0)
        self.assertIn(run_id, [r['id'] for r in json.loads(p.stdout)['items']])

    def test_report_formats(self):
        spec = http_spec(self.demo.url + '/healthz', 'health.status == 500')
        run_id = self.submit_id(spec)
        self.d.wait_run(run_id)
        checks = {'junit': '<testsuite', 'md': 'FAIL', 'html': '<html'}
        for fmt, marker in checks.items():
            query = 'markdown' if fmt == 'md' else fmt
            if self.d.get('/v1/runs/%d/report?format=%s' % (run_id, query)).status == 400:
                continue  # this readyd does not render it yet; the API test covers that
            out = os.path.join(self.tmp.name, 'report-%d.%s' % (run_id, fmt))
            p = self.ctl('report', '--format', fmt, '-o', out, str(run_id))
            self.assertExit(p, 0)
            with open(out, encoding='utf-8') as f:
                self.assertIn(marker, f.read())
        p = self.ctl('report', '--format', 'junit', '999999')
        self.assertExit(p, 3)

    def test_runs_pagination_hint(self):
        spec = http_spec(self.demo.url + '/healthz', 'health.status == 200',
                         service='ctl-paged')
        ids = [self.submit_id(spec) for _ in range(2)]
        p = self.ctl('runs', '--service', 'ctl-paged', '--limit', '1')
        self.assertExit(p, 0)
        self.assertRegex(p.stdout, r'(?m)^%d\s' % ids[1])
        cursor = p.stderr.split("--cursor '")[1].split("'")[0]
        p = self.ctl('runs', '--service', 'ctl-paged', '--limit', '1', '--cursor', cursor)
        self.assertExit(p, 0)
        self.assertRegex(p.stdout, r'(?m)^%d\s' % ids[0])

    def test_cancel(self):
        spec = http_spec(self.slow.url + '/v1/predict', 'health.status == 200')
        run_id = self.submit_id(spec)
        self.wait_running(run_id)
        p = self.ctl('cancel', str(run_id))
        self.assertExit(p, 0)
        self.assertEqual(p.stdout.strip().split(': ')[0], 'run %d' % run_id)
        p = self.ctl('status', '--wait', str(run_id))
        self.assertExit(p, 2)
        self.assertIn('cancelled', p.stdout)
        p = self.ctl('cancel', str(run_id))  # already finished: 409
        self.assertExit(p, 3)
        self.assertTrue(p.stderr.startswith('readyctl: '), p.stderr)

    def test_unknown_run_exits_3(self):
        for args in (['status', '999999'], ['report', '999999'], ['cancel', '999999']):
            p = self.ctl(*args)
            self.assertExit(p, 3)
            self.assertTrue(p.stderr.startswith('readyctl: '), p.stderr)

    # errors that never reach a run

    def test_connection_refused_exits_3(self):
        url = 'http://127.0.0.1:%d' % free_port()
        for args in (['status', '1'], ['submit', self.spec_file('x: 1\n')], ['runs']):
            p = self.ctl('--url', url, *args, url=False)
            self.assertExit(p, 3)
            self.assertIn('readyctl: cannot connect to %s: Connection refused' % url, p.stderr)
        p = self.ctl('runs', url=False, env={'READYD_URL': url})
        self.assertExit(p, 3)
        self.assertIn(url, p.stderr)

    def test_env_url(self):
        p = self.ctl('runs', url=False, env={'READYD_URL': self.d.url})
        self.assertExit(p, 0)

    def test_usage_errors_exit_3(self):
        for args in ([], ['bogus'], ['status'], ['status', 'abc'], ['status', '0'],
                     ['status', '1', '2'], ['submit', '--nope', 'x.yaml'],
                     ['submit', '--timeout', '5s', 'x.yaml'], ['submit', '--wait'],
                     ['report', '--format', 'pdf', '1'], ['runs', '--limit', '0']):
            p = self.ctl(*args)
            self.assertExit(p, 3)
            self.assertTrue(p.stderr.startswith('readyctl: ') or p.stderr.startswith('Usage'),
                            (args, p.stderr))

    def test_help(self):
        p = self.ctl('--help', url=False)
        self.assertExit(p, 0)
        self.assertIn('submit', p.stdout)
        p = self.ctl('help', 'submit', url=False)
        self.assertExit(p, 0)
        self.assertIn('--idempotency-key', p.stdout)
        p = self.ctl('report', '--help', url=False)
        self.assertExit(p, 0)
        self.assertIn('--format', p.stdout)


if __name__ == '__main__':
    lib.main()
