"""Integration: three readyd nodes on one PostgreSQL database act as one
cluster (docs/scale-out.md). Runs submitted through one node are executed
by all of them, each recording its node; kept answers (/v1/gates) are the
same bytes from every node and follow writes made on another; an event
stream on one node follows a run another executes to its end; a cancel
sent to one node stops a run running on another; a node killed with
SIGKILL in the middle of a run has the run interrupted by another node
within the lease plus one check period, and a `resume: requeue` run it had
claimed but not started is executed by another node, and so is a run a
node stopped with SIGTERM had claimed but not started. max_concurrent_load
holds per target host across the nodes; a node stalled (SIGSTOP) or cut off
from the database past its lease stores nothing over the interruption
another node recorded (the fence).

Needs READYD_TEST_PG_URL (scripts/test starts a private cluster); skipped
without it."""
import calendar
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

PG_URL = os.environ.get('READYD_TEST_PG_URL', '')
LEASE_S = 3.0
CHECK_S = LEASE_S / 3  # every node looks for passed leases this often

CONFIG = """node_id: {node}
lease: 3s
scheduler:
  max_concurrent_runs: 3
  max_concurrent_load: 1
"""


def http_spec(url, service='cluster-api', version='1.0.0', extra=''):
    return f"""apiVersion: readyd/v1
service: {service}
version: {version}
environment: test
{extra}probes:
  - name: health
    type: http
    url: {url}
gates:
  - health.ok == 1
"""


def load_spec(demo, name, duration, rate, resume=''):
    return f"""apiVersion: readyd/v1
service: cluster-load
version: 1.0.0
environment: test
{resume}target:
  url: {demo}/v1/predict
probes:
  - name: {name}
    type: load
    mode: rate
    rate: {rate}
    connections: 2
    duration: {duration}
gates:
  - {name}.requests >= 1
"""


def psql(url, sql):
    subprocess.run(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', url, '-c', sql],
                   check=True, capture_output=True, timeout=60)


def database_url(name):
    u = urllib.parse.urlsplit(PG_URL)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, '/' + name, u.query, u.fragment))


def create_database():
    """A new, empty database on READYD_TEST_PG_URL's cluster; its URL."""
    name = 'readyd_cluster_%d_%d' % (os.getpid(), int(time.time() * 1000) % 1000000)
    psql(PG_URL, 'CREATE DATABASE %s TEMPLATE template0' % name)
    return database_url(name)


def drop_database(url):
    name = urllib.parse.urlsplit(url).path.lstrip('/')
    try:
        psql(database_url('postgres'), 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % name)
    except (subprocess.SubprocessError, OSError):
        pass


def node_daemon(name, db):
    """A readyd node on db; --db given last wins over the helper's own."""
    d = lib.Daemon(config=CONFIG.format(node=name), args=['--db', db])
    d.db = db
    d.own_db = False  # shared by the three nodes: dropped by the test
    return d


def start_nodes(names):
    """A fresh database and a readyd node on it for each name, or meson's
    skip without READYD_TEST_PG_URL: (db, {name: node})."""
    if not PG_URL:
        print('skipped: no READYD_TEST_PG_URL')
        sys.exit(77)
    db = create_database()
    return db, {name: node_daemon(name, db).__enter__() for name in names}


def stop_nodes(nodes, db):
    """Every node stopped (woken first if a test left it stopped), then db
    dropped; the first node that did not stop cleanly says why."""
    try:
        for d in nodes.values():
            if d.proc and d.proc.poll() is None:
                d.send_signal(signal.SIGCONT)
        failures = []
        for d in nodes.values():
            try:
                d.__exit__(None, None, None)
            except AssertionError as e:
                failures.append(e)
        if failures:
            raise failures[0]
    finally:
        drop_database(db)


def ms(rfc3339):
    """An RFC 3339 time of the API as ms since the epoch."""
    base, _, frac = rfc3339.rstrip('Z').partition('.')
    t = calendar.timegm(time.strptime(base, '%Y-%m-%dT%H:%M:%S'))
    return t * 1000 + int((frac or '0')[:3].ljust(3, '0'))


class ClusterTest(lib.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.db, cls.nodes = start_nodes(('node-a', 'node-b', 'node-c'))
        cls.demo = lib.DemoTarget().__enter__()

    @classmethod
    def tearDownClass(cls):
        try:
            stop_nodes(cls.nodes, cls.db)
        finally:
            cls.demo.__exit__(None, None, None)

    def node(self, name):
        return self.nodes[name]

    def others(self, name):
        return [d for n, d in sorted(self.nodes.items()) if n != name]

    def alive(self):
        return [d for _, d in sorted(self.nodes.items()) if d.proc.poll() is None]

    def submit(self, d, spec):
        r = d.submit(spec)
        self.assertEqual(r.status, 201, r)
        return r.json['id']

    def wait_state(self, d, run_id, cond, timeout=30.0, what='state'):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = d.get('/v1/runs/%d' % run_id).json
            if cond(run):
                return run
            time.sleep(0.05)
        self.fail('run %d: no %s within %ss: %r' % (run_id, what, timeout, run))

    def wait_running(self, d, run_id):
        return self.wait_state(d, run_id, lambda r: r['state'] == 'running' and r['node'],
                               what='node running it')

    def slow_url(self, first_ms):
        return '%s/v1/completions?first_ms=%d&tokens=1' % (self.demo.url, first_ms)

    def test_1_runs_spread_over_every_node(self):
        """30 runs submitted through node A: each recorded with the node that
        executed it, every node executed some, all pass."""
        a = self.node('node-a')
        ids = [self.submit(a, http_spec(self.slow_url(300), version='1.0.%d' % i))
               for i in range(30)]
        runs = [a.wait_run(i, timeout=60) for i in ids]
        self.assertEqual([r['state'] for r in runs], ['passed'] * 30)
        by_node = {}
        for r in runs:
            self.assertIn(r['node'], self.nodes)
            by_node[r['node']] = by_node.get(r['node'], 0) + 1
        self.assertEqual(sorted(by_node), sorted(self.nodes), by_node)
        waits = sorted(ms(r['started_at']) - ms(r['created_at']) for r in runs)
        print('runs by node: %s; claim latency (created -> started) ms: '
              'min %d, median %d, max %d' % (by_node, waits[0], waits[len(waits) // 2],
                                             waits[-1]))
        listed = a.get('/v1/runs?service=cluster-api&limit=50').json['items']
        self.assertEqual({r['id']: r['node'] for r in listed if r['id'] in ids},
                         {r['id']: r['node'] for r in runs})

    def gates(self):
        out = []
        for d in self.alive():
            r = d.get('/v1/gates')
            self.assertEqual(r.status, 200, r)
            out.append((r.body, r.headers.get('ETag')))
        return out

    def test_2_gates_same_from_every_node(self):
        """/v1/gates: the same bytes and ETag from every node, also after a
        run executed by one node changes them (each node's kept answer
        moves with the others' writes)."""
        first = self.gates()
        self.assertEqual(len(set(first)), 1, first)
        self.assertIsNotNone(first[0][1])
        a = self.node('node-a')
        run_id = self.submit(a, http_spec(self.demo.url + '/healthz', service='cluster-gated'))
        run = a.wait_run(run_id)
        self.assertEqual(run['state'], 'passed')
        deadline = time.monotonic() + 5
        while True:
            after = self.gates()
            items = [json.loads(body)['items'] for body, _ in after]
            seen = [any(i['run_id'] == run_id for i in it) for it in items]
            if all(seen) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(seen, [True] * len(after), 'executed by %s' % run['node'])
        self.assertEqual(len(set(after)), 1, after)
        self.assertNotEqual(after[0], first[0])

    def test_3_events_follow_a_run_of_another_node(self):
        """An event stream on one node follows a run another node executes,
        through its probe and state events, to its end event."""
        a = self.node('node-a')
        run_id = self.submit(a, http_spec(self.slow_url(2500), service='cluster-sse'))
        run = self.wait_running(a, run_id)
        watcher = self.others(run['node'])[0]
        body = watcher.get('/v1/runs/%d/events' % run_id, timeout=30).body.decode()
        events = [line[7:] for line in body.splitlines() if line.startswith('event: ')]
        self.assertEqual(events[-1], 'end', body)
        self.assertIn('probe', events)
        end = json.loads(body.rstrip().splitlines()[-1][6:])
        self.assertEqual((end['state'], end['node']), ('passed', run['node']))
        # The probe's end came as its own event before the end.
        probes = [json.loads(line[6:]) for line, prev in
                  zip(body.splitlines()[1:], body.splitlines()) if prev == 'event: probe']
        self.assertEqual(probes[-1]['probe']['state'], 'passed', body)

    def test_4_cancel_through_another_node(self):
        """A cancel sent to one node stops a run running on another at that
        node's next beat."""
        a = self.node('node-a')
        run_id = self.submit(a, http_spec(self.slow_url(30000), service='cluster-cancel'))
        run = self.wait_running(a, run_id)
        other = self.others(run['node'])[0]
        t0 = time.monotonic()
        r = other.request('POST', '/v1/runs/%d/cancel' % run_id, '{"reason": "cluster test"}',
                          {'Content-Type': 'application/json'})
        self.assertEqual(r.status, 202, r)
        run = other.wait_run(run_id, timeout=10)
        took = time.monotonic() - t0
        print('cancel sent to %s stopped the run on %s in %.2f s'
              % (other.config.split()[1], run['node'], took))
        self.assertEqual(run['state'], 'cancelled')
        self.assertEqual(run['probes'][0]['state'], 'cancelled')
        self.assertEqual(run['changes'][0]['action'], 'cancel')
        self.assertLess(took, CHECK_S + 2)

    def claimed_by(self, victim, spec):
        """A run submitted to victim and claimed by it: every other node is
        stopped until it is."""
        paused = self.others(self.name_of(victim))
        for d in paused:
            d.send_signal(signal.SIGSTOP)
        try:
            run_id = self.submit(victim, spec)
            self.wait_state(victim, run_id, lambda r: r['node'] == self.name_of(victim),
                            what='claim by %s' % self.name_of(victim))
        finally:
            for d in paused:
                d.send_signal(signal.SIGCONT)
        return run_id

    def name_of(self, d):
        return [n for n, x in self.nodes.items() if x is d][0]

    def test_4b_load_slots_cluster_wide(self):
        """max_concurrent_load 1 on every node: three runs with a load probe
        at the same target host, each claimed by another node at once, drive
        load one after the other (no two load windows overlap), the ones
        waiting say so in their progress, and all three finish."""
        spec = lambda i: load_spec(self.demo.url, 'slot', '2s', 10).replace(
            'version: 1.0.0', 'version: 2.0.%d' % i)
        order = ['node-a', 'node-b', 'node-c']
        ids = {n: self.claimed_by(self.node(n), spec(i)) for i, n in enumerate(order)}
        waiting = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(waiting) < 2:
            for n, run_id in ids.items():
                cur = self.node(n).get('/v1/runs/%d' % run_id).json['progress']['current']
                w = (cur or {}).get('waiting', '')
                if w.startswith('waiting for a load slot: other nodes hold every slot of '):
                    waiting[n] = w
            if all(self.node(n).get('/v1/runs/%d' % i).json['state'] != 'running'
                   for n, i in ids.items()):
                break
            time.sleep(0.05)
        runs = [self.node('node-a').wait_run(i, timeout=60) for i in ids.values()]
        self.assertEqual([r['state'] for r in runs], ['passed'] * 3, runs)
        self.assertEqual(sorted(r['node'] for r in runs), order)
        windows = sorted((ms(r['probes'][0]['started_at']), ms(r['probes'][0]['finished_at']),
                          r['node']) for r in runs)
        print('load windows (ms after the first): %s; waiting seen on %s' % (
            [(s - windows[0][0], e - windows[0][0], n) for s, e, n in windows],
            sorted(waiting)))
        for before, after in zip(windows, windows[1:]):
            self.assertGreaterEqual(after[0], before[1], windows)
        self.assertGreaterEqual(len(waiting), 1, 'no run said it waits for a slot')
        self.assertIn('127.0.0.1', list(waiting.values())[0])

    def test_4c_stalled_node_writes_nothing(self):
        """A node stopped (SIGSTOP) past its lease has its run interrupted by
        another node; woken (SIGCONT) after its probe's answer came, it
        stores nothing of the run: the run stays interrupted, naming it."""
        victim = self.node('node-a')
        run_id = self.claimed_by(victim, http_spec(self.slow_url(4000), service='cluster-stall'))
        self.wait_state(victim, run_id, lambda r: r['probes'][0]['state'] == 'running',
                        what='probe running')
        victim.send_signal(signal.SIGSTOP)
        try:
            b = self.node('node-b')
            run = self.wait_state(b, run_id, lambda r: r['state'] != 'running',
                                  timeout=LEASE_S + CHECK_S + 5, what='interruption')
            self.assertEqual(run['state'], 'interrupted', run)
            time.sleep(max(0.0, 4.5 - LEASE_S - CHECK_S))  # the answer has come meanwhile
        finally:
            victim.send_signal(signal.SIGCONT)
        time.sleep(2.0)  # the probe's end and the run's, had they been stored
        run = self.node('node-b').get('/v1/runs/%d' % run_id).json
        self.assertEqual((run['state'], run['node']), ('interrupted', 'node-a'), run)
        self.assertIn("node 'node-a' stopped renewing its lease", run['error'])
        self.assertEqual(run['probes'][0]['state'], 'interrupted', run)
        self.assertIsNone(run['verdict'], run)
        self.assertEqual(victim.get('/healthz').status, 200)

    def test_4d_cut_off_node_fenced(self):
        """A node cut off from PostgreSQL past its lease has its run
        interrupted by another node; its probe ends meanwhile and the write
        is kept for later. When the node reaches the database again, that
        write is refused (the run is no longer its own) and logged: the run
        stays interrupted, naming the node."""
        port = urllib.parse.urlsplit(self.db).port
        proxy = lib.TcpProxy(port)
        u = urllib.parse.urlsplit(self.db)
        via = urllib.parse.urlunsplit((u.scheme, u.netloc.replace(':%d' % port,
                                                                   ':%d' % proxy.port),
                                       u.path, u.query, u.fragment))
        victim = node_daemon('node-d', via).__enter__()
        self.nodes['node-d'] = victim
        try:
            self.cut_off(victim, proxy)
        finally:
            proxy.heal()
            del self.nodes['node-d']
            victim.__exit__(None, None, None)
            proxy.close()

    def cut_off(self, victim, proxy):
        run_id = self.claimed_by(victim, http_spec(self.slow_url(5000), service='cluster-cut'))
        self.wait_state(victim, run_id, lambda r: r['probes'][0]['state'] == 'running',
                        what='probe running')
        proxy.cut()
        b = self.node('node-b')
        run = self.wait_state(b, run_id, lambda r: r['state'] != 'running',
                              timeout=LEASE_S + CHECK_S + 5, what='interruption')
        self.assertEqual(run['state'], 'interrupted', run)
        time.sleep(2.0)  # the probe's answer (5 s) has come; its write waits
        proxy.heal()
        deadline = time.monotonic() + 15
        while 'no longer holds it' not in victim.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        run = b.get('/v1/runs/%d' % run_id).json
        self.assertEqual((run['state'], run['node']), ('interrupted', 'node-d'), run)
        self.assertIn("node 'node-d' stopped renewing its lease", run['error'])
        self.assertEqual(run['probes'][0]['state'], 'interrupted', run)
        self.assertIn("node 'node-d' no longer holds it", victim.log())

    def test_4e_stalled_node_frees_its_load_slot(self):
        """A node stopped (SIGSTOP) while it drives load keeps its host's
        load slot in its database session, which the server keeps open:
        once its lease has passed another node ends that session, and a run
        waiting for the slot on a third node goes on and passes (without
        it, the waiting run would wait until its own timeout). Woken, the
        stopped node reconnects by itself."""
        victim, b = self.node('node-a'), self.node('node-b')
        held = self.claimed_by(victim, load_spec(self.demo.url, 'hold', '30s', 10).replace(
            'version: 1.0.0', 'version: 3.0.1'))
        self.wait_state(victim, held, lambda r: r['probes'][0]['state'] == 'running',
                        what='load running')
        waiting = self.claimed_by(b, load_spec(self.demo.url, 'next', '1s', 10).replace(
            'version: 1.0.0', 'version: 3.0.2'))
        self.wait_state(b, waiting, lambda r: ((r['progress'] or {}).get('current') or {}).get(
            'waiting', '').startswith('waiting for a load slot'), what='wait for the slot')
        victim.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            run = self.wait_state(b, waiting, lambda r: r['state'] != 'running',
                                  timeout=LEASE_S + CHECK_S + 8, what='end of the waiting run')
            took = time.monotonic() - stopped
        finally:
            victim.send_signal(signal.SIGCONT)
        print('run waiting for the slot of a stopped node: %s %.2f s after SIGSTOP (lease %.0f s)'
              % (run['state'], took, LEASE_S))
        self.assertEqual(run['state'], 'passed', run)
        self.assertIn("node 'node-a' stopped renewing its lease: its database session",
                      ''.join(d.log() for d in self.others('node-a')))
        run = self.wait_state(b, held, lambda r: r['state'] != 'running', timeout=10,
                              what='interruption')
        print('held run %s %.2f s after SIGSTOP' % (run['state'], time.monotonic() - stopped))
        self.assertEqual((run['state'], run['node']), ('interrupted', 'node-a'), run)
        deadline = time.monotonic() + 20
        while victim.get('/readyz').status != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertEqual(victim.get('/readyz').status, 200, victim.log()[-2000:])

    def test_5_killed_node(self):
        """SIGKILL of the node executing a long run: another node interrupts
        it within the lease plus one check period, never leaving it
        running; a resume: requeue run the dead node had claimed but not
        started (waiting for its load slot) is executed by another node."""
        victim = self.node('node-c')
        paused = self.others('node-c')
        for d in paused:  # only the victim claims while these are stopped
            d.send_signal(signal.SIGSTOP)
        try:
            long_id = self.submit(victim, load_spec(self.demo.url, 'long', '30s', 5))
            self.wait_state(victim, long_id, lambda r: r['probes'][0]['state'] == 'running',
                            what='load probe running')
            requeue_id = self.submit(victim, load_spec(self.demo.url, 'quick', '1s', 20,
                                                       resume='resume: requeue\n'))
            waiting = self.wait_state(
                victim, requeue_id,
                lambda r: r['state'] == 'running' and (r['progress']['current'] or {}).get(
                    'waiting') == 'waiting for a load slot', what='claim waiting for load')
        finally:
            for d in paused:
                d.send_signal(signal.SIGCONT)
        self.assertEqual((waiting['node'], waiting['probes'][0]['state']), ('node-c', 'queued'))
        time.sleep(0.5)  # the victim is half way through its long probe
        victim.kill()
        killed = time.monotonic()
        a = self.node('node-a')
        states = set()
        run = self.wait_state(a, long_id, lambda r: states.add(r['state']) or
                              r['state'] != 'running', timeout=LEASE_S + CHECK_S + 5,
                              what='end after the kill')
        took = time.monotonic() - killed
        print('run %d of the killed node: %s %.2f s after SIGKILL (lease %.0f s, check '
              'every %.1f s)' % (long_id, run['state'], took, LEASE_S, CHECK_S))
        self.assertEqual(states, {'running', 'interrupted'})
        self.assertEqual(run['state'], 'interrupted')
        self.assertIn("node 'node-c' stopped renewing its lease", run['error'])
        self.assertEqual(run['probes'][0]['state'], 'interrupted')
        self.assertEqual(run['node'], 'node-c')
        self.assertLess(took, LEASE_S + CHECK_S + 1.0)
        done = a.wait_run(requeue_id, timeout=30)
        self.assertEqual(done['state'], 'passed', done)
        self.assertIn(done['node'], ('node-a', 'node-b'))
        self.assertGreaterEqual(done['probes'][0]['metrics']['requests'], 1)


    def test_6_stopped_node_hands_back(self):
        """SIGTERM of a node: the run it claimed but had not started (waiting
        for its load slot) goes back to the queue and another node
        executes it; the run it was executing ends interrupted."""
        victim, other = self.node('node-b'), self.node('node-a')
        other.send_signal(signal.SIGSTOP)
        try:
            long_id = self.submit(victim, load_spec(self.demo.url, 'long', '30s', 5))
            self.wait_state(victim, long_id, lambda r: r['probes'][0]['state'] == 'running',
                            what='load probe running')
            waiting_id = self.submit(victim, load_spec(self.demo.url, 'quick', '1s', 20))
            self.wait_state(
                victim, waiting_id,
                lambda r: r['node'] == 'node-b' and (r['progress']['current'] or {}).get(
                    'waiting') == 'waiting for a load slot', what='claim waiting for load')
        finally:
            other.send_signal(signal.SIGCONT)
        self.assertEqual(victim.stop(), 0)
        run = other.wait_run(long_id, timeout=10)
        self.assertEqual(run['state'], 'interrupted')
        self.assertIn('shut down', run['error'])
        done = other.wait_run(waiting_id, timeout=30)
        self.assertEqual((done['state'], done['node']), ('passed', 'node-a'), done)
        self.assertIn('handed back to the queue', victim.log())


if __name__ == '__main__':
    lib.main()
