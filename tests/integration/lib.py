"""Helpers for readyd's integration tests: start the real readyd and the
demo target on 127.0.0.1 with ephemeral ports and temporary databases, and
speak HTTP to them. Standard library only.

Binaries come from the environment meson sets (READYD_BIN, DEMO_TARGET_BIN,
READYCTL_BIN); each process's stderr goes to a log file that is printed
when a test fails, so a failure says what the daemon said.

The store backend comes from READYD_TEST_BACKEND: sqlite (the default: a
file in the daemon's temp dir) or postgresql (a database of its own per
Daemon, created on the cluster READYD_TEST_PG_URL names; scripts/test
starts one). Without that cluster a postgresql run is skipped, or fails
when READYD_REQUIRE_PG=1. A test that cannot apply to a backend checks
lib.BACKEND and says why it skips.
"""
import atexit
import csv
import io
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

import openapi_check

READYD_BIN = os.environ.get('READYD_BIN', 'build/daemon/readyd')
DEMO_TARGET_BIN = os.environ.get('DEMO_TARGET_BIN', 'build/tests/demo-target/demo-target')
READYCTL_BIN = os.environ.get('READYCTL_BIN', 'build/cli/readyctl')

FINAL_STATES = ('passed', 'failed', 'error', 'cancelled', 'interrupted')

BACKEND = os.environ.get('READYD_TEST_BACKEND', 'sqlite')
PG_URL = os.environ.get('READYD_TEST_PG_URL', '')
SKIP = 77  # meson's exit status for a skipped test


def _check_backend():
    if BACKEND not in ('sqlite', 'postgresql'):
        sys.exit('READYD_TEST_BACKEND=%s: use sqlite or postgresql' % BACKEND)
    if BACKEND == 'postgresql' and not PG_URL:
        if os.environ.get('READYD_REQUIRE_PG') == '1':
            sys.exit('READYD_TEST_BACKEND=postgresql needs READYD_TEST_PG_URL '
                     '(scripts/pg-cluster start DIR prints one)')
        print('skipped: READYD_TEST_BACKEND=postgresql without READYD_TEST_PG_URL')
        sys.exit(SKIP)


_check_backend()


def psql_bin():
    """psql from PATH, else the newest Debian server install's."""
    found = shutil.which('psql')
    if found:
        return found
    root = '/usr/lib/postgresql'
    versions = sorted((v for v in os.listdir(root) if v.isdigit()), key=int) \
        if os.path.isdir(root) else []
    return os.path.join(root, versions[-1], 'bin', 'psql') if versions else 'psql'


def psql(url, sql, stdin=None, timeout=60.0):
    """Runs sql (one or more statements) on the database url names; returns
    psql's output (unaligned, tuples only). Raises on any error."""
    r = subprocess.run([psql_bin(), '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
                        '-d', url, '-c', sql], input=stdin, capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError('psql %s: %s' % (sql[:80], r.stderr.strip()))
    return r.stdout


def pg_database_url(base, name):
    """base (a postgresql:// URL) with its database replaced by name."""
    u = urllib.parse.urlsplit(base)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, '/' + name, u.query, u.fragment))


_pg_databases = [0]


def pg_create_database(base=None):
    """A new, empty database on base's cluster (READYD_TEST_PG_URL's by
    default); returns its URL."""
    base = base or PG_URL
    _pg_databases[0] += 1
    name = 'readyd_t%d_%d_%d' % (os.getpid(), int(time.time() * 1000) % 1000000,
                                 _pg_databases[0])
    psql(base, 'CREATE DATABASE %s TEMPLATE template0' % name)
    return pg_database_url(base, name)


def pg_drop_database(url):
    name = urllib.parse.urlsplit(url).path.lstrip('/')
    try:
        psql(pg_database_url(url, 'postgres'),
             'DROP DATABASE IF EXISTS %s WITH (FORCE)' % name, timeout=30.0)
    except (RuntimeError, OSError, subprocess.TimeoutExpired):
        pass  # a cluster that is gone takes its databases with it


def wait_for_file(path, proc, timeout=15.0):
    """Wait until path exists and is non-empty; fail if proc dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and os.path.getsize(path) > 0:
            with open(path, encoding='ascii') as f:
                text = f.read().strip()
            if text:
                return text
        if proc.poll() is not None:
            raise RuntimeError('process exited with %s before it was ready' % proc.returncode)
        time.sleep(0.02)
    raise TimeoutError('%s did not appear within %ss' % (path, timeout))


class Process:
    """A child process with its stderr in a log file under a temp dir."""

    def __init__(self, name, tmpdir):
        self.name = name
        self.tmpdir = tmpdir
        self.log_path = os.path.join(tmpdir, name + '.log')
        self.proc = None

    def spawn(self, argv, env=None):
        """env: variables added to this process's environment."""
        log = open(self.log_path, 'ab')
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     env=dict(os.environ, **env) if env else None)
        log.close()

    def log(self):
        try:
            with open(self.log_path, encoding='utf-8', errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    SANITIZER_MARKS = ('ERROR: AddressSanitizer', 'ERROR: LeakSanitizer',
                       'runtime error:', 'WARNING: AddressSanitizer')

    def check_sanitizers(self):
        """Raises when the process's log holds a sanitizer report. Its stderr
        is the log, so under ASan/UBSan a leak at exit or an error anywhere
        in its life fails the test that owned it, not only a crash."""
        text = self.log()
        for mark in self.SANITIZER_MARKS:
            at = text.find(mark)
            if at >= 0:
                raise AssertionError('%s: sanitizer report in its log:\n%s'
                                     % (self.name, text[max(0, at - 200):at + 4000]))

    def send_signal(self, sig):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout=15.0):
        return self.proc.wait(timeout=timeout)

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


class DemoTarget(Process):
    """tests/demo-target on 127.0.0.1:0; keyword flags become --flag value
    (underscores to dashes; True for a bare flag)."""

    def __init__(self, tmpdir=None, **flags):
        self.own_tmp = tmpdir is None
        tmpdir = tmpdir or tempfile.mkdtemp(prefix='readyd-demo-')
        super().__init__('demo-target-%d' % id(self), tmpdir)
        self.flags = flags
        self.url = None

    def __enter__(self):
        port_file = os.path.join(self.tmpdir, 'demo-%d.port' % id(self))
        argv = [DEMO_TARGET_BIN, '--listen', '127.0.0.1:0', '--port-file', port_file]
        for k, v in self.flags.items():
            argv.append('--' + k.replace('_', '-'))
            if v is not True:
                argv.append(str(v))
        self.spawn(argv)
        self.port = int(wait_for_file(port_file, self.proc))
        self.url = 'http://127.0.0.1:%d' % self.port
        return self

    def __exit__(self, *exc):
        try:
            self.stop()
            self.check_sanitizers()
        finally:
            if self.own_tmp:
                shutil.rmtree(self.tmpdir, ignore_errors=True)

    def post(self, path):
        return http('POST', self.url + path, b'')


def openssl(*args):
    subprocess.run(['openssl'] + list(args), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def make_cert(d, name, days):
    """A self-signed EC certificate for localhost and 127.0.0.1, made with
    the openssl CLI; days may be negative (already expired). Returns
    (cert, key) paths in d."""
    key, cert = os.path.join(d, name + '.key'), os.path.join(d, name + '.pem')
    csr = os.path.join(d, name + '.csr')
    ext = os.path.join(d, name + '.ext')
    with open(ext, 'w', encoding='ascii') as f:
        f.write('subjectAltName=DNS:localhost,IP:127.0.0.1\n')
    openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key)
    openssl('req', '-new', '-key', key, '-subj', '/CN=localhost', '-out', csr)
    openssl('x509', '-req', '-in', csr, '-signkey', key, '-days', str(days), '-extfile', ext,
            '-out', cert)
    return cert, key


class TlsDemo(DemoTarget):
    """The demo target with a TLS listener too; .tls_url is
    https://127.0.0.1:port (.url stays the plain listener)."""

    def __init__(self, tmpdir, cert, key, max_version='1.3', **flags):
        # A fresh directory each: port files are named after id(self), which
        # Python reuses, and a stale file would name a dead port.
        tmpdir = tempfile.mkdtemp(dir=tmpdir)
        self.tls_port_file = os.path.join(tmpdir, 'tls.port')
        super().__init__(tmpdir, tls_listen='127.0.0.1:0', tls_cert=cert, tls_key=key,
                         tls_max_version=max_version, tls_port_file=self.tls_port_file,
                         **flags)

    def __enter__(self):
        super().__enter__()
        port = int(wait_for_file(self.tls_port_file, self.proc))
        self.tls_url = 'https://127.0.0.1:%d' % port
        return self


class Traffic:
    """Steady requests to a demo target's /v1/predict in a thread (one per
    `interval` seconds), so faults a drill injects become errors that
    Prometheus sees. A context manager; stops within one request."""

    def __init__(self, url, interval=0.02):
        self.url = url + '/v1/predict'
        self.interval = interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        while not self.stop.is_set():
            try:
                http('GET', self.url, timeout=2.0)
            except OSError:
                pass
            self.stop.wait(self.interval)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return 'Response(%d, %r)' % (self.status, self.body[:500])


# Base URLs of the running daemons the tests started, to the Daemon; every
# answer one of them gives through http() is checked against
# docs/openapi.yaml (tests/integration/openapi_check.py).
DAEMONS = {}
API_CHECKED = [0]


def _check_api(method, url, resp):
    base = '/'.join(url.split('/', 3)[:3])
    d = DAEMONS.get(base)
    if d is None:
        return
    if threading.current_thread() is not threading.main_thread():
        # Checked when the daemon's test ends: a pure-Python schema check
        # on a worker thread holds the GIL, and would slow the other
        # threads' requests (and the latencies some tests measure).
        d.api_deferred.append((method, url, resp.status, resp.headers, resp.body))
        return
    problems = openapi_check.check(method, url, resp.status, resp.headers, resp.body)
    API_CHECKED[0] += 1
    if problems:
        d.api_mismatches += problems
        d.api_reported = len(d.api_mismatches)
        raise AssertionError('answer does not match docs/openapi.yaml:\n' +
                             '\n'.join(problems))


def _count_checked():
    path = os.environ.get('READYD_API_CHECKED')
    if path and API_CHECKED[0]:
        with open(path, 'a', encoding='utf-8') as f:
            f.write('%s %d\n' % (os.path.basename(sys.argv[0]), API_CHECKED[0]))


atexit.register(_count_checked)


def http(method, url, body=None, headers=None, timeout=60.0):
    """One HTTP request; any status comes back as a Response (no raising),
    except that an answer of a test's daemon that docs/openapi.yaml does not
    describe raises AssertionError (recorded for the Daemon's exit when the
    request was made on another thread)."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            resp = Response(r.status, r.headers, r.read())
            final = r.geturl()
    except urllib.error.HTTPError as e:
        resp = Response(e.code, e.headers, e.read())
        final = e.geturl() or url
    if final != url:
        # urllib followed a redirect (the console's 303 to /login): the
        # answer is that of a GET of where it led.
        method, url = 'GET', final
    _check_api(method, url, resp)
    return resp


class TcpProxy:
    """127.0.0.1:port in front of another loopback port (a database server):
    each new connection is held back `delay` seconds before it is passed on
    (a server far away, or slow to accept), then bytes flow both ways until
    either side closes. cut() closes every connection and refuses new ones
    (this client is cut off while others are not); heal() lets them through
    again."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.delay = 0.0
        self.is_cut = False
        self.lock = threading.Lock()
        self.socks = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self.connect, args=(client,), daemon=True).start()

    def connect(self, client):
        time.sleep(self.delay)
        if self.is_cut:
            client.close()
            return
        try:
            upstream = socket.create_connection(('127.0.0.1', self.target_port), timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        with self.lock:
            self.socks += [client, upstream]
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=self.pump, args=(a, b), daemon=True).start()

    @staticmethod
    def pump(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            TcpProxy.shut(s)

    def cut(self):
        self.is_cut = True
        with self.lock:
            socks, self.socks = self.socks, []
        for s in socks:
            TcpProxy.shut(s)

    @staticmethod
    def shut(s):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()

    def heal(self):
        self.is_cut = False

    def close(self):
        self.cut()
        self.sock.close()


class Daemon(Process):
    """The real readyd on 127.0.0.1:0 with a database of its own: a file in
    a temp dir, or a new PostgreSQL database (lib.BACKEND; db= names
    another). restart() keeps the database, and so does leaving the with
    block of a Daemon given a tmpdir; kill() is SIGKILL."""

    def __init__(self, tmpdir=None, config=None, args=(), db=None, env=None):
        self.own_tmp = tmpdir is None
        tmpdir = tmpdir or tempfile.mkdtemp(prefix='readyd-test-')
        super().__init__('readyd', tmpdir)
        self.own_db = db is None and BACKEND == 'postgresql'
        if db is None and BACKEND == 'sqlite':
            db = os.path.join(tmpdir, 'readyd.db')
        self.db = db  # a path or URL; None: a PostgreSQL database made at start
        self.config = config
        self.args = list(args)
        self.env = env
        self.url = None
        self.listen = '127.0.0.1:0'  # a restart may set the port it had
        self.api_mismatches = []  # answers docs/openapi.yaml does not describe
        self.api_reported = 0  # of which raised already
        self.api_deferred = []  # answers received on other threads, not checked yet

    def start(self):
        port_file = os.path.join(self.tmpdir, 'readyd.port')
        if os.path.exists(port_file):
            os.unlink(port_file)
        if self.db is None:
            self.db = pg_create_database()
        argv = [READYD_BIN, '--listen', self.listen, '--db', self.db,
                '--port-file', port_file, '--log-level', 'debug'] + self.args
        if self.config is not None:
            cfg = os.path.join(self.tmpdir, 'readyd.yaml')
            with open(cfg, 'w', encoding='utf-8') as f:
                f.write(self.config)
            argv += ['--config', cfg]
        self.spawn(argv, self.env)
        self.port = int(wait_for_file(port_file, self.proc))
        self.url = 'http://127.0.0.1:%d' % self.port
        DAEMONS[self.url] = self
        return self

    def __enter__(self):
        return self.start()

    def check_api_answers(self):
        """Checks the answers worker threads received, and raises for those
        that did not match docs/openapi.yaml."""
        deferred, self.api_deferred = self.api_deferred, []
        for method, url, status, headers, body in deferred:
            self.api_mismatches += openapi_check.check(method, url, status, headers, body)
            API_CHECKED[0] += 1
        late = self.api_mismatches[self.api_reported:]
        self.api_reported = len(self.api_mismatches)
        if late:
            raise AssertionError('answers do not match docs/openapi.yaml:\n' +
                                 '\n'.join(late[:20]))

    def __exit__(self, *exc):
        try:
            if self.proc and self.proc.poll() is None:
                check_junit_reports(self)
        finally:
            try:
                self.stop()
                self.check_sanitizers()
                self.check_api_answers()
            finally:
                if self.own_tmp:
                    shutil.rmtree(self.tmpdir, ignore_errors=True)
                    if self.own_db and self.db:
                        pg_drop_database(self.db)

    def restart(self):
        self.stop()
        return self.start()

    def select(self, sql, params=()):
        """The rows of a query ('?' placeholders) on the daemon's database,
        whichever the backend, as sqlite3 gives them: on PostgreSQL, values
        that are integers come back as ints and NULL as None (other values
        as text; a value may not hold a newline)."""
        if not self.db.startswith('postgresql://'):
            con = sqlite3.connect(self.db)
            try:
                return con.execute(sql, params).fetchall()
            finally:
                con.close()
        pieces, args = sql.split('?'), []
        query = pieces[0]
        for i, rest in enumerate(pieces[1:]):
            query += ":'p%d'" % i + rest
            args += ['-v', 'p%d=%s' % (i, params[i])]
        r = subprocess.run([psql_bin(), '-X', '-q', '-A', '-t', '-F', '\x1f', '-P', 'null=\\N',
                            '-v', 'ON_ERROR_STOP=1'] + args + ['-d', self.db],
                           input=query + ';\n', capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError('psql %s: %s' % (sql[:80], r.stderr.strip()))

        def value(v):
            if v == '\\N':
                return None
            return int(v) if v.lstrip('-').isdigit() else v
        return [tuple(value(v) for v in line.split('\x1f'))
                for line in r.stdout.split('\n') if line]

    def insert_rows(self, table, columns, rows):
        """rows (tuples of columns' values) straight into the daemon's
        migrated database, whichever the backend: seeding what the API
        would take too long to make. Stop the daemon first on SQLite. An
        identity column given explicitly (runs.id) moves past the rows."""
        if not self.db.startswith('postgresql://'):
            con = sqlite3.connect(self.db)
            with con:
                con.executemany('INSERT INTO %s (%s) VALUES (%s)' % (
                    table, ', '.join(columns), ', '.join('?' * len(columns))), rows)
            con.close()
            return
        buf = io.StringIO()
        csv.writer(buf, lineterminator='\n').writerows(
            ['\\N' if v is None else v for v in row] for row in rows)
        sql = "COPY %s (%s) FROM STDIN WITH (FORMAT csv, NULL '\\N')" % (
            table, ', '.join(columns))
        psql(self.db, sql, stdin=buf.getvalue(), timeout=120.0)
        if 'id' in columns:
            psql(self.db, "SELECT setval(pg_get_serial_sequence('%s', 'id'), "
                 "(SELECT max(id) FROM %s))" % (table, table))

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    token = None  # a bearer token the helpers send when a test sets one

    def request(self, method, path, body=None, headers=None, timeout=60.0):
        if isinstance(body, str):
            body = body.encode('utf-8')
        if self.token and 'Authorization' not in (headers or {}):
            headers = dict(headers or {}, Authorization='Bearer ' + self.token)
        return http(method, self.url + path, body, headers, timeout)

    def get(self, path, **kw):
        return self.request('GET', path, **kw)

    def submit(self, spec, content_type='application/yaml', headers=None):
        h = {'Content-Type': content_type}
        h.update(headers or {})
        return self.request('POST', '/v1/runs', spec, h)

    def wait_run(self, run_id, timeout=60.0):
        """Long-polls until the run is final; returns the run JSON."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.get('/v1/runs/%d?wait=10s' % run_id)
            if r.status != 200:
                raise AssertionError('GET run %d: %r' % (run_id, r))
            run = r.json
            if run['state'] in FINAL_STATES:
                return run
        raise TimeoutError('run %d did not finish within %ss' % (run_id, timeout))

    def run_spec(self, spec, timeout=60.0):
        r = self.submit(spec)
        if r.status != 201:
            raise AssertionError('submit: %r' % r)
        return self.wait_run(r.json['id'], timeout)


JUNIT_XSD = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'junit-strict.xsd')
XMLLINT = shutil.which('xmllint')


def _all_runs(d):
    """Every run of the daemon (all pages), or None when it cannot be listed
    (a token the test did not hand over, a daemon that is going away)."""
    runs, cursor = [], ''
    while True:
        try:
            r = d.get('/v1/runs?limit=200' + ('&cursor=' + urllib.parse.quote(cursor)
                                              if cursor else ''), timeout=10.0)
        except OSError:
            return None  # e.g. a TLS-only listener the plain helpers do not speak
        if r.status != 200:
            return None
        runs += r.json['items']
        cursor = r.json.get('next_cursor')
        if not cursor:
            return runs


def junit_counts_agree(run, suite):
    """None if the JUnit suite shows the run's verdict, else why not."""
    failures, errors = int(suite.get('failures')), int(suite.get('errors'))
    verdict, state = run.get('verdict'), run['state']
    if verdict == 'PASS' and failures + errors != 0:
        return 'PASS with %d failures and %d errors' % (failures, errors)
    if verdict != 'PASS' and failures + errors == 0:
        return '%s (%s) without a failure or an error' % (verdict, state)
    if verdict == 'FAIL' and failures == 0:
        return 'FAIL without a failure'
    if (verdict == 'ERROR' or state in ('cancelled', 'interrupted')) and errors == 0:
        return '%s (%s) without an error' % (verdict, state)
    return None


def check_junit_reports(d):
    """The JUnit report of every ended run of d validates against the strict
    schema (tests/integration/junit-strict.xsd) and its counts agree with the
    verdict. One xmllint for all of them. Raises AssertionError, which fails
    the test (or class) that owns the daemon."""
    import xml.etree.ElementTree as ET
    runs = _all_runs(d)
    if not runs:
        return
    tmp = tempfile.mkdtemp(prefix='readyd-junit-')
    try:
        files, problems = [], []
        for run in runs:
            if run['state'] not in FINAL_STATES:
                continue
            r = d.get('/v1/runs/%d/report?format=junit' % run['id'], timeout=30.0)
            if r.status in (401, 403, 404):
                continue  # a token scoped away from this run, or a run deleted meanwhile
            if r.status != 200:
                problems.append('run %d: junit report: %r' % (run['id'], r))
                continue
            path = os.path.join(tmp, 'run-%d.xml' % run['id'])
            with open(path, 'wb') as f:
                f.write(r.body)
            files.append(path)
            root = ET.fromstring(r.body)
            suite = root if root.tag == 'testsuite' else root.find('testsuite')
            why = junit_counts_agree(run, suite) if suite is not None else 'no <testsuite>'
            if why:
                problems.append('run %d: junit shows %s' % (run['id'], why))
        if files:
            if not XMLLINT:
                raise AssertionError('xmllint is missing (Debian libxml2-utils; '
                                     'scripts/install-deps installs it): the JUnit '
                                     'files cannot be checked')
            lint = subprocess.run([XMLLINT, '--noout', '--schema', JUNIT_XSD] + files,
                                  capture_output=True, text=True, check=False)
            if lint.returncode != 0:
                problems.append('xmllint --schema junit-strict.xsd:\n' + lint.stderr[-4000:])
        if problems:
            raise AssertionError('JUnit reports do not show the verdicts:\n' +
                                 '\n'.join(problems))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def free_port():
    """A port that was free a moment ago (bind to 0, close). Racy by nature:
    the Prometheus helpers retry on 'address already in use'."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]
    finally:
        s.close()


class _PromServer(Process):
    """Common part of Prometheus and Alertmanager: a Debian binary on
    127.0.0.1 with an ephemeral port, started from a temp config and
    waited for until /-/ready answers 200."""

    binary = None
    attempts = 3

    def __init__(self, name, tmpdir=None):
        self.own_tmp = tmpdir is None
        tmpdir = tmpdir or tempfile.mkdtemp(prefix='readyd-%s-' % name)
        super().__init__(name, tmpdir)
        self.url = None

    def argv(self, port):
        raise NotImplementedError

    def write(self, name, text):
        path = os.path.join(self.tmpdir, name)
        with open(path, 'w', encoding='utf-8') as f:
            f.write(text)
        return path

    def __enter__(self):
        for _ in range(self.attempts):
            port = free_port()
            self.spawn(self.argv(port))
            self.url = 'http://127.0.0.1:%d' % port
            if self._wait_ready():
                return self
            self.stop()
        raise RuntimeError('%s did not become ready:\n%s' % (self.name, self.log()[-4000:]))

    def _wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False  # e.g. the port was taken meanwhile: retry
            try:
                if http('GET', self.url + '/-/ready', timeout=2.0).status == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def __exit__(self, *exc):
        try:
            self.stop()
            self.check_sanitizers()
        finally:
            if self.own_tmp:
                shutil.rmtree(self.tmpdir, ignore_errors=True)

    def api(self, path):
        """GET an API path; returns the JSON body (any status)."""
        return http('GET', self.url + path, timeout=10.0).json


class Prometheus(_PromServer):
    """The Debian `prometheus` on 127.0.0.1, scraping scrape_targets
    ('host:port' or URLs) every second and evaluating `rules` (the text of
    one rule file, or None) every second.

        with Prometheus(rules=RULES, scrape_targets=[demo.url]) as prom:
            prom.wait_for(lambda: prom.query('up') == 1.0)
    """

    binary = os.environ.get('PROMETHEUS_BIN', 'prometheus')

    def __init__(self, rules=None, scrape_targets=(), tmpdir=None, alertmanagers=()):
        super().__init__('prometheus', tmpdir)
        self.rules = rules
        self.targets = [t.split('://', 1)[-1].rstrip('/') for t in scrape_targets]
        # Alertmanager URLs Prometheus sends its alerts to.
        self.alertmanagers = [t.split('://', 1)[-1].rstrip('/') for t in alertmanagers]

    def config(self):
        lines = ['global:', '  scrape_interval: 1s', '  scrape_timeout: 1s',
                 '  evaluation_interval: 1s']
        if self.alertmanagers:
            lines += ['alerting:', '  alertmanagers:', '    - static_configs:',
                      '        - targets: %s' % json.dumps(self.alertmanagers)]
        if self.rules is not None:
            self.rules_path = self.write('rules.yml', self.rules)
            lines += ['rule_files:', '  - %s' % json.dumps(self.rules_path)]
        lines += ['scrape_configs:', '  - job_name: demo',
                  '    static_configs:', '      - targets: %s' % json.dumps(self.targets)]
        return '\n'.join(lines) + '\n'

    def argv(self, port):
        cfg = self.write('prometheus.yml', self.config())
        # An alert sent before the Alertmanagers are discovered is lost
        # until its resend (1m by default): resend every second.
        resend = ['--rules.alert.resend-delay=1s'] if self.alertmanagers else []
        return [self.binary, '--config.file=' + cfg,
                '--web.listen-address=127.0.0.1:%d' % port,
                '--storage.tsdb.path=' + os.path.join(self.tmpdir, 'data-%d' % port),
                '--log.level=warn'] + resend

    def query(self, expr):
        """An instant query's single value as a float, or None."""
        q = urllib.parse.quote(expr)
        body = self.api('/api/v1/query?query=' + q)
        result = body.get('data', {}).get('result', [])
        if body.get('status') != 'success' or len(result) != 1:
            return None
        return float(result[0]['value'][1])

    def rules_evaluated(self):
        """True once every loaded rule has been evaluated at least once."""
        groups = self.api('/api/v1/rules').get('data', {}).get('groups', [])
        rules = [r for g in groups for r in g['rules']]
        return bool(rules) and all(r.get('health') != 'unknown' for r in rules)

    @staticmethod
    def wait_for(cond, timeout=30.0, what='condition'):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return
            time.sleep(0.2)
        raise TimeoutError('%s did not hold within %ss' % (what, timeout))


class Alertmanager(_PromServer):
    """The Debian `prometheus-alertmanager` on 127.0.0.1, clustering off.
    Without webhook, one receiver that sends nothing. With webhook (a URL,
    e.g. a readyd's /v1/alertmanager/webhook) every alert goes to the
    receiver named `receiver`, whose webhook sends the bearer `token`
    (http_config.authorization), grouped by alertname with tiny waits so
    a notification follows an alert within about a second.

        with Alertmanager(webhook=d.url + '/v1/alertmanager/webhook',
                          token='t0k3n') as am:
            prom = Prometheus(rules=..., alertmanagers=[am.url])
    """

    binary = os.environ.get('ALERTMANAGER_BIN', 'prometheus-alertmanager')

    def __init__(self, tmpdir=None, webhook=None, token=None, receiver='readyd',
                 inhibit_rules=(), group_wait='100ms'):
        super().__init__('alertmanager', tmpdir)
        self.webhook = webhook
        self.token = token
        self.receiver = receiver
        self.inhibit_rules = list(inhibit_rules)  # as in alertmanager.yml
        self.group_wait = group_wait

    def config(self):
        if not self.webhook:
            return 'route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n'
        hook = {'url': self.webhook, 'send_resolved': True, 'max_alerts': 0}
        if self.token:
            hook['http_config'] = {'authorization': {'credentials': self.token}}
        cfg = {
            'route': {'receiver': self.receiver, 'group_by': ['alertname'],
                      'group_wait': self.group_wait, 'group_interval': '1s',
                      'repeat_interval': '1h'},
            'receivers': [{'name': self.receiver, 'webhook_configs': [hook]}],
        }
        if self.inhibit_rules:
            cfg['inhibit_rules'] = self.inhibit_rules
        return json.dumps(cfg, indent=1) + '\n'  # JSON is YAML

    def silence(self, matchers, minutes=10, comment='readyd test'):
        """Creates a silence through the API (matchers: {name: value});
        returns its id."""
        now = time.time()
        body = {'matchers': [{'name': k, 'value': v, 'isRegex': False, 'isEqual': True}
                             for k, v in matchers.items()],
                'startsAt': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now - 1)),
                'endsAt': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now + 60 * minutes)),
                'createdBy': 'readyd-tests', 'comment': comment}
        r = http('POST', self.url + '/api/v2/silences', json.dumps(body).encode(),
                 {'Content-Type': 'application/json'}, timeout=10.0)
        if r.status != 200:
            raise AssertionError('create silence: %r' % r)
        return r.json['silenceID']

    def expire(self, silence_id):
        r = http('DELETE', self.url + '/api/v2/silence/' + silence_id, timeout=10.0)
        if r.status != 200:
            raise AssertionError('expire silence: %r' % r)

    def argv(self, port):
        cfg = self.write('alertmanager.yml', self.config())
        return [self.binary, '--config.file=' + cfg,
                '--web.listen-address=127.0.0.1:%d' % port,
                '--cluster.listen-address=',
                '--storage.path=' + os.path.join(self.tmpdir, 'am-%d' % port),
                '--log.level=warn']


class TestCase(unittest.TestCase):
    """Prints the logs of the processes a test registered when it fails."""

    def setUp(self):
        self.processes = []

    def track(self, proc):
        self.processes.append(proc)
        return proc

    def run(self, result=None):
        result = result or self.defaultTestResult()
        failures = len(result.failures) + len(result.errors)
        super().run(result)
        if len(result.failures) + len(result.errors) > failures:
            for p in getattr(self, 'processes', []):
                print('----- %s log -----\n%s' % (p.name, p.log()[-8000:]))
        return result


def main():
    unittest.main(verbosity=2)
