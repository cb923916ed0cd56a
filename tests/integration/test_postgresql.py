"""Integration: readyd on PostgreSQL when the database goes away, on a
private cluster this file starts (scripts/pg-cluster) so it may stop it.

test_config_and_url: `database:` in readyd.yaml takes a postgresql:// URL
(--check-config too), no ./var is made for it, a malformed URL is refused
by --check-config, and a cluster that is not there stops the start with a
message that names the database without its password.

test_outage_while_a_run_executes: the cluster stopped at once (pg_ctl stop
-m immediate) while a run's probe is out: /readyz answers 503 naming
PostgreSQL, submits 503 problem+json with Retry-After, a stored run's GET
and a history page answer 503 within a short client timeout, /healthz
answers all along; the run ends during the outage and its end is kept in
memory, its write retried on a backoff. The cluster back after about 11 s:
/readyz is ready within a few seconds (the pending write is retried when
the server answers, not at the end of the backoff), the run is stored with
its verdict and the time it ended (also after a restart of readyd), new
runs pass, and reads on worker threads, whose connections the outage
broke, answer again.

test_hung_database: every PostgreSQL process stopped with SIGSTOP (a
server that hangs rather than refuses): each query of the loop gives up
at its 2 s deadline, so /healthz keeps answering and /readyz turns 503;
after SIGCONT readyd is ready again and takes runs.

test_slow_connect_under_traffic: a proxy in front of the cluster holds
each new connection 300 ms, longer than the 100 ms slice the loop gives a
reconnect at a time; while the cluster comes back, requests keep reading
the store every 50 ms. They fail (503) without throwing away the
connection being opened, and readyd is ready again within seconds.

Every test gives readyd a URL with a password (the cluster trusts local
connections, so any password works) and checks that it appears in no log
line and no answer (/readyz, /metrics, problems).
"""
import atexit
import datetime
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PG_CLUSTER = os.environ.get('PG_CLUSTER',
                            os.path.join(HERE, '..', '..', 'scripts', 'pg-cluster'))
PASSWORD = 'Pw-7rX-s3cret'
CONFIG = 'allowed_targets: ["127.0.0.1"]\n'
HISTORY = '/v1/services/pgsvc/history'
TRENDS = '/v1/services/pgsvc/trends?metric=up.latency_ms'


def spec(url, service='pgsvc'):
    return ('apiVersion: readyd/v1\nservice: %s\nversion: "1.0"\nprobes:\n'
            '  - name: up\n    type: http\n    url: %s/v1/predict\n'
            'gates:\n  - up.status == 200\n' % (service, url))


def with_password(url):
    u = urllib.parse.urlsplit(url)
    netloc = '%s:%s@%s' % (u.username, PASSWORD, u.hostname + ':%d' % u.port)
    return urllib.parse.urlunsplit((u.scheme, netloc, u.path, u.query, u.fragment))


def rfc3339_to_epoch(text):
    return datetime.datetime.fromisoformat(text.replace('Z', '+00:00')).timestamp()


class HealthWatch:
    """GET /healthz every 100 ms on a thread; the slowest answer and any
    that did not come within the client timeout."""

    def __init__(self, d, timeout=5.0):
        self.d, self.timeout = d, timeout
        self.slowest, self.failures, self.count = 0.0, [], 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        while not self.done.is_set():
            t = time.monotonic()
            try:
                r = self.d.get('/healthz', timeout=self.timeout)
                if r.status != 200:
                    self.failures.append('status %d' % r.status)
            except OSError as e:
                self.failures.append('%s after %.1f s' % (e, time.monotonic() - t))
            self.slowest = max(self.slowest, time.monotonic() - t)
            self.count += 1
            self.done.wait(0.1)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join(timeout=10.0)


class PostgresqlTest(lib.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='readyd-pgt-')
        cls.cluster_dir = os.path.join(cls.tmp, 'pg')
        r = subprocess.run([PG_CLUSTER, 'start', cls.cluster_dir], capture_output=True,
                           text=True, timeout=120)
        if r.returncode != 0:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            msg = 'no PostgreSQL cluster: %s' % r.stderr.strip()
            if os.environ.get('READYD_REQUIRE_PG') == '1':
                raise RuntimeError(msg)
            raise unittest.SkipTest(msg)
        cls.base = r.stdout.strip()
        # Stopped even when the test is stopped (meson's timeout sends
        # SIGTERM): a cluster must not outlive its test.
        atexit.register(cls.remove_cluster)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))

    @classmethod
    def remove_cluster(cls):
        subprocess.run([PG_CLUSTER, 'stop', cls.cluster_dir, '--remove'], timeout=120)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def tearDownClass(cls):
        cls.remove_cluster()

    def setUp(self):
        super().setUp()
        self.answers = []  # (what, status, headers, body) of every answer checked

    def cluster(self, cmd, *opts):
        r = subprocess.run([PG_CLUSTER, cmd, self.cluster_dir] + list(opts),
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)

    def tearDown(self):
        # A failed test must not leave the next one a stopped cluster.
        for pid in self.postgres_pids():
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass  # a backend that ended since it was listed
        self.cluster('start')

    def postgres_pids(self):
        """The postmaster and its children (empty when it is not running)."""
        home = os.path.join(self.cluster_dir, 'home')
        home = os.readlink(home) if os.path.islink(home) else self.cluster_dir
        try:
            with open(os.path.join(home, 'data', 'postmaster.pid'), encoding='ascii') as f:
                master = int(f.readline())
        except (OSError, ValueError):
            return []
        out = subprocess.run(['ps', '-o', 'pid=', '--ppid', str(master)], capture_output=True,
                             text=True).stdout
        return [master] + [int(p) for p in out.split()]

    def daemon(self):
        url = with_password(lib.pg_create_database(self.base))
        return self.track(lib.Daemon(config=CONFIG, db=url))

    def call(self, d, method, path, body=None, timeout=5.0, headers=None):
        """One request within timeout (failing the test when it does not
        answer), kept for the password check."""
        t = time.monotonic()
        try:
            r = d.request(method, path, body, headers, timeout=timeout)
        except OSError as e:
            self.fail('%s %s: no answer within %.1f s (%s)' % (method, path, timeout, e))
        self.answers.append(('%s %s' % (method, path), r.status, str(r.headers), r.body))
        r.took = time.monotonic() - t
        return r

    def wait_readyz(self, d, status, timeout):
        t0 = time.monotonic()
        while True:
            r = self.call(d, 'GET', '/readyz')
            if r.status == status:
                return r, time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                self.fail('/readyz still %r after %.0f s' % (r, timeout))
            time.sleep(0.1)

    def assert_no_password(self, *logs):
        for what, status, headers, body in self.answers:
            self.assertNotIn(PASSWORD, headers, what)
            self.assertNotIn(PASSWORD.encode(), body, what)
        for log in logs:
            self.assertNotIn(PASSWORD, log)
        print('password: absent from %d answers and %d log(s) (%d bytes)' % (
            len(self.answers), len(logs), sum(len(x) for x in logs)))

    def assert_unavailable(self, r, what):
        self.assertEqual(r.status, 503, '%s: %r' % (what, r))
        self.assertEqual(r.headers['Content-Type'], 'application/problem+json', what)
        self.assertIn('Retry-After', r.headers, what)

    # ---- configuration -----------------------------------------------

    def readyd(self, cwd, *args):
        return subprocess.run([os.path.abspath(lib.READYD_BIN)] + list(args), cwd=cwd,
                              capture_output=True, text=True, timeout=60)

    def test_config_and_url(self):
        work = tempfile.mkdtemp(dir=self.tmp)
        url = with_password(lib.pg_create_database(self.base))
        cfg = os.path.join(work, 'readyd.yaml')
        with open(cfg, 'w', encoding='utf-8') as f:
            f.write('database: %s\nlisten: 127.0.0.1:0\n' % url)
        r = self.readyd(work, '--config', cfg, '--check-config')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('configuration OK', r.stdout)
        self.assertNotIn(PASSWORD, r.stdout + r.stderr)

        port_file = os.path.join(self.tmp, 'config.port')
        p = self.track(lib.Process('readyd-config', self.tmp))
        p.spawn([os.path.abspath(lib.READYD_BIN), '--config', cfg, '--port-file', port_file])
        try:
            port = int(lib.wait_for_file(port_file, p.proc))
            r = lib.http('GET', 'http://127.0.0.1:%d/readyz' % port, timeout=5.0)
            self.assertEqual(r.status, 200, r)
            self.assertGreaterEqual(r.json['schema_version'], 1)
        finally:
            self.assertEqual(p.stop(), 0)
        self.assertEqual(sorted(os.listdir(work)), ['readyd.yaml'],
                         'a file or ./var was made for a database URL')
        p.check_sanitizers()

        # libpq's key=value form selects PostgreSQL too (no SQLite file of
        # that name), its password as hidden as a URL's.
        fresh = lib.pg_create_database(self.base)
        u = urllib.parse.urlsplit(with_password(fresh))
        kv = 'host=%s port=%d dbname=%s user=%s password=%s' % (
            u.hostname, u.port, u.path.lstrip('/'), u.username, u.password)
        os.unlink(port_file)
        p = self.track(lib.Process('readyd-kv', self.tmp))
        p.spawn([os.path.abspath(lib.READYD_BIN), '--db', kv, '--listen', '127.0.0.1:0',
                 '--port-file', port_file])
        try:
            port = int(lib.wait_for_file(port_file, p.proc))
            r = lib.http('GET', 'http://127.0.0.1:%d/readyz' % port, timeout=5.0)
            self.assertEqual(r.status, 200, r)
            self.assertGreaterEqual(r.json['schema_version'], 1)
            self.assertNotIn(PASSWORD, r.body.decode())
        finally:
            self.assertEqual(p.stop(), 0)
        self.assertNotIn(PASSWORD, p.log())
        self.assertEqual(lib.psql(fresh, 'SELECT count(*) FROM runs').strip(), '0')

        # Malformed: refused by --check-config, password not repeated.
        bad = url + '?no_such_setting=1'
        r = self.readyd(work, '--db', bad, '--check-config')
        self.assertEqual(r.returncode, 2, r)
        self.assertIn('no_such_setting', r.stderr)
        self.assertNotIn(PASSWORD, r.stdout + r.stderr)

        # Nobody there: the start fails at once, naming the database.
        gone = with_password('postgresql://readyd@127.0.0.1:%d/readyd' % lib.free_port())
        r = self.readyd(work, '--db', gone, '--listen', '127.0.0.1:0')
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("Failed to open database 'postgresql://", r.stderr)
        self.assertNotIn(PASSWORD, r.stdout + r.stderr)
        self.assertEqual(sorted(os.listdir(work)), ['readyd.yaml'])

    # ---- the cluster stopped -----------------------------------------

    def test_outage_while_a_run_executes(self):
        with lib.DemoTarget(latency='1ms') as fast, lib.DemoTarget(latency='3s') as slow:
            d = self.daemon()
            with d:
                self.outage(d, fast.url, slow.url)
                log = d.log()
            self.assert_no_password(log)

    def offloaded_reads(self, d, n=6):
        """n history and trend reads at once (they run on worker threads,
        each with a reader connection of its own); their statuses."""
        paths = [HISTORY, TRENDS] * (n // 2)
        out = [None] * len(paths)

        def one(i):
            try:
                out[i] = self.call(d, 'GET', paths[i], timeout=10.0).status
            except AssertionError as e:
                out[i] = str(e)
        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(paths))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        d.check_api_answers()
        return out

    def outage(self, d, fast, slow):
        stored = d.run_spec(spec(fast))
        self.assertEqual(stored['verdict'], 'PASS', stored)
        self.assertEqual(self.offloaded_reads(d), [200] * 6)
        r = self.call(d, 'POST', '/v1/runs', spec(slow),
                      headers={'Content-Type': 'application/yaml'})
        self.assertEqual(r.status, 201, r)
        rid = r.json['id']
        while self.call(d, 'GET', '/v1/runs/%d' % rid).json['probes'][0]['state'] != 'running':
            time.sleep(0.05)
        probe_out = time.monotonic()
        with HealthWatch(d) as health:
            self.cluster('stop', '--immediate')
            problem, took = self.wait_readyz(d, 503, 10.0)
            print('outage: /readyz 503 %.1f s after the stop: %s' % (took, problem.json['detail']))
            self.assertIn('PostgreSQL', problem.json['detail'])
            r = self.call(d, 'POST', '/v1/runs', spec(fast),
                          headers={'Content-Type': 'application/yaml'})
            self.assert_unavailable(r, 'submit')
            self.assertIn('PostgreSQL', r.json['detail'])
            r = self.call(d, 'GET', '/v1/runs/%d' % stored['id'], timeout=3.0)
            print('outage: GET of a stored run: %d in %.2f s' % (r.status, r.took))
            self.assert_unavailable(r, 'GET run')
            r = self.call(d, 'GET', HISTORY, timeout=3.0)
            self.assert_unavailable(r, 'GET history')
            r = self.call(d, 'GET', '/metrics', timeout=3.0)
            self.assertIn(r.status, (200, 503), r)
            # The slow probe ends 3 s after it went out, during the outage;
            # its end is refused, and retried after 1, 2, 4 and 8 s. The
            # cluster comes back between the third and the fourth retry:
            # readyd retries at once rather than at the end of its backoff.
            time.sleep(max(0.0, probe_out + 11.0 - time.monotonic()))
            back_at = time.time()
            self.cluster('start')
            _, took = self.wait_readyz(d, 200, 15.0)
            print('outage: /readyz 200 %.1f s after the cluster was back' % took)
            self.assertLess(took, 4.0)
            r = self.call(d, 'GET', '/v1/runs/%d' % rid)
            self.assertEqual(r.status, 200, r)
            run = r.json
            self.assertEqual((run['state'], run['verdict']), ('passed', 'PASS'), run)
            self.assertLess(rfc3339_to_epoch(run['finished_at']), back_at,
                            'the run should have ended during the outage')
            again = d.run_spec(spec(fast))
            self.assertEqual(again['verdict'], 'PASS', again)
            # Readers that lost the server are replaced, not kept broken.
            self.assertEqual(self.offloaded_reads(d, 12), [200] * 12)
        print('outage: /healthz answered %d times, slowest %.2f s' % (health.count,
                                                                      health.slowest))
        self.assertEqual(health.failures, [])
        self.assertLess(health.slowest, 2.0)
        self.call(d, 'GET', '/metrics')
        d.restart()
        run = self.call(d, 'GET', '/v1/runs/%d' % rid).json
        self.assertEqual((run['state'], run['verdict']), ('passed', 'PASS'), run)

    def test_reconnect_never_waits_for_the_resolver(self):
        # The database is named by a host name that resolves in 4 s once
        # the cluster has gone (tests/integration/slowdns.c, preloaded).
        # libpq would look it up inside the connect call on the loop; the
        # lookup runs on a thread of its own instead, so /healthz answers
        # throughout, and readyd is back once the name resolves.
        lib_path = os.environ.get('SLOWDNS_LIB')
        if not lib_path:
            self.skipTest('SLOWDNS_LIB not set (run through meson)')
        name = 'db.readyd.test'
        delay = os.path.join(self.tmp, 'dns-delay')
        u = urllib.parse.urlsplit(with_password(lib.pg_create_database(self.base)))
        url = urllib.parse.urlunsplit((u.scheme, '%s:%s@%s:%d' % (u.username, u.password, name,
                                                                  u.port), u.path, '', ''))
        env = {'LD_PRELOAD': lib_path, 'SLOWDNS_NAME': name, 'SLOWDNS_DELAY': delay,
               'ASAN_OPTIONS': os.environ.get('ASAN_OPTIONS', '') +
               ':verify_asan_link_order=0'}
        with lib.DemoTarget(latency='1ms') as fast:
            d = self.track(lib.Daemon(config=CONFIG, db=url, env=env))
            with d:
                self.assertEqual(d.run_spec(spec(fast.url))['verdict'], 'PASS')
                with open(delay, 'w') as f:
                    f.write('4\n')
                with HealthWatch(d) as health:
                    self.cluster('stop', '--immediate')
                    self.wait_readyz(d, 503, 10.0)
                    self.cluster('start')
                    _, took = self.wait_readyz(d, 200, 30.0)
                print('slow resolver: /readyz 200 %.1f s after the cluster was back; '
                      '/healthz answered %d times, slowest %.2f s'
                      % (took, health.count, health.slowest))
                self.assertGreaterEqual(took, 3.0, 'the lookup took 4 s')
                self.assertEqual(health.failures, [])
                self.assertLess(health.slowest, 1.0)
                os.unlink(delay)
                self.assertEqual(d.run_spec(spec(fast.url))['verdict'], 'PASS')
                log = d.log()
            self.assert_no_password(log)

    # ---- the cluster hung ----------------------------------------------

    def test_hung_database(self):
        with lib.DemoTarget(latency='1ms') as fast:
            d = self.daemon()
            with d:
                self.hang(d, fast.url)
                log = d.log()
            self.assert_no_password(log)

    def hang(self, d, fast):
        self.assertEqual(d.run_spec(spec(fast))['verdict'], 'PASS')
        pids = self.postgres_pids()
        self.assertGreater(len(pids), 1, 'no postgres processes found')
        with HealthWatch(d) as health:
            try:
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGSTOP)
                    except ProcessLookupError:
                        pass
                problem, took = self.wait_readyz(d, 503, 12.0)
                print('hang: /readyz 503 %.1f s after SIGSTOP: %s' % (took,
                                                                      problem.json['detail']))
                self.assertIn('PostgreSQL', problem.json['detail'])
                r = self.call(d, 'POST', '/v1/runs', spec(fast),
                              headers={'Content-Type': 'application/yaml'})
                self.assert_unavailable(r, 'submit')
            finally:
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGCONT)
                    except ProcessLookupError:
                        pass
            _, took = self.wait_readyz(d, 200, 20.0)
            print('hang: /readyz 200 %.1f s after SIGCONT' % took)
            self.assertLess(took, 12.0)
            self.assertEqual(d.run_spec(spec(fast))['verdict'], 'PASS')
        print('hang: /healthz answered %d times, slowest %.2f s' % (health.count,
                                                                    health.slowest))
        self.assertEqual(health.failures, [])
        self.assertLess(health.slowest, 3.5)
        self.call(d, 'GET', '/metrics')

    # ---- a server slow to accept ------------------------------------------

    def test_slow_connect_under_traffic(self):
        with lib.DemoTarget(latency='1ms') as fast:
            port = urllib.parse.urlsplit(self.base).port
            proxy = lib.TcpProxy(port)
            try:
                db = lib.pg_create_database(self.base).replace(':%d/' % port,
                                                               ':%d/' % proxy.port)
                d = self.track(lib.Daemon(config=CONFIG, db=with_password(db)))
                with d:
                    self.slow_connect(d, proxy, fast.url)
                    log = d.log()
            finally:
                proxy.close()
            self.assert_no_password(log)

    def slow_connect(self, d, proxy, fast):
        """A reconnect takes longer than one of the loop's 100 ms slices
        while requests keep reading the store: those requests fail, but do
        not throw away the connection being opened, so readyd gets back."""
        stored = d.run_spec(spec(fast))
        proxy.delay = 0.3
        self.cluster('stop', '--immediate')
        self.wait_readyz(d, 503, 10.0)
        done, statuses = threading.Event(), []

        def traffic():
            while not done.is_set():
                statuses.append(self.call(d, 'GET', '/v1/runs/%d' % stored['id']).status)
                done.wait(0.05)
        t = threading.Thread(target=traffic, daemon=True)
        t.start()
        try:
            self.cluster('start')
            _, took = self.wait_readyz(d, 200, 20.0)
        finally:
            done.set()
            t.join(timeout=10.0)
        print('slow connect: /readyz 200 %.1f s after the cluster was back, %d reads '
              'meanwhile' % (took, len(statuses)))
        self.assertLess(took, 10.0)
        self.assertEqual(set(statuses) - {200, 503}, set())
        self.assertEqual(self.call(d, 'GET', '/v1/runs/%d' % stored['id']).status, 200)
        self.assertEqual(d.run_spec(spec(fast))['verdict'], 'PASS')


if __name__ == '__main__':
    lib.main()
