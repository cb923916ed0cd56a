"""Integration: a load probe spread over three readyd nodes on one
PostgreSQL database (`nodes: 3`, docs/scale-out.md "Load from several
nodes"). The demo target's own count of the requests it answered equals
the sum of the nodes' counts and the probe's `requests`; the merged
percentiles agree with the demo target's record of the delays it applied
as closely as a one-node probe's do; a node killed with SIGKILL in the
middle of the probe makes it an error naming that node, with what the
other nodes measured kept; a cancel sent to any node stops all three; a
shard no node claims makes the probe an error before any load.

Every expected number comes from the demo target's record or the
arithmetic of the spec, never from timings of this machine. Needs
READYD_TEST_PG_URL (scripts/test starts a private cluster); skipped
without it."""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from test_cluster import LEASE_S, start_nodes, stop_nodes  # noqa: E402
from test_load import READYD_LOAD_BIN, nearest_rank  # noqa: E402

NAMES = ('node-a', 'node-b', 'node-c')


def load_spec(demo, nodes, duration, connections=6, service='fanout'):
    nodes_line = '    nodes: %s\n' % nodes if nodes is not None else ''
    return f"""apiVersion: readyd/v1
service: {service}
version: 1.0.0
environment: test
target:
  url: {demo}/v1/predict
  timeout: 5s
probes:
  - name: spread
    type: load
    mode: closed
    connections: {connections}
    duration: {duration}
{nodes_line}gates:
  - spread.requests >= 1
"""


class FanoutTest(lib.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.db, cls.nodes = start_nodes(NAMES)
        cls.demo = lib.DemoTarget(latency='10ms:90,40ms:8,150ms:2').__enter__()

    @classmethod
    def tearDownClass(cls):
        try:
            stop_nodes(cls.nodes, cls.db)
        finally:
            cls.demo.__exit__(None, None, None)

    def transport_floor_ms(self, connections):
        """p50 of answers with no applied delay (as test_load measures it):
        what loopback and the demo target's stack add, which the server's
        own record of delays cannot include."""
        z = lib.DemoTarget().__enter__()
        try:
            out = subprocess.run([READYD_LOAD_BIN, '--json', '-c', str(connections), '-n',
                                  '2000', z.url + '/v1/predict'], capture_output=True,
                                 text=True, timeout=60)
        finally:
            z.__exit__(None, None, None)
        self.assertEqual(out.returncode, 0, out.stderr)
        return json.loads(out.stdout)['p50_ms']

    def measured(self, nodes):
        """Runs the probe through node A against a fresh demo record: the
        probe and the demo target's sorted delays."""
        a = self.nodes['node-a']
        self.assertEqual(self.demo.post('/admin/reset').status, 200)
        r = a.submit(load_spec(self.demo.url, nodes, '4s'))
        self.assertEqual(r.status, 201, r)
        run = a.wait_run(r.json['id'], timeout=90)
        self.assertEqual(run['state'], 'passed', run)
        rec = lib.http('GET', self.demo.url + '/admin/delays').json
        self.assertFalse(rec['truncated'])
        return run['probes'][0], sorted(rec['delays_us'])

    def deviations(self, m, delays):
        return {name: m[name] - nearest_rank(delays, p) / 1000.0
                for name, p in (('p50_ms', 50), ('p95_ms', 95), ('p99_ms', 99))}

    def test_1_three_nodes_add_up_and_merge_exactly(self):
        floor = self.transport_floor_ms(2)
        probe, delays = self.measured(3)
        m, d = probe['metrics'], probe['details']
        # Every request the demo target answered was measured by one of
        # the three nodes, and no other.
        self.assertEqual(m['errors'], 0)
        self.assertEqual(m['requests'], len(delays))
        self.assertEqual(m['nodes'], 3)
        per_node = {n['node']: n['requests'] for n in d['nodes']}
        self.assertEqual(sorted(per_node), sorted(NAMES), d['nodes'])
        self.assertTrue(all(v > 0 for v in per_node.values()), per_node)
        self.assertEqual(sum(per_node.values()), m['requests'])
        self.assertEqual(sum(s['requests'] for s in d['timeline']), m['requests'])
        for n in d['nodes']:
            self.assertIsInstance(n['offset_ms'], (int, float))
            self.assertIsInstance(n['start_skew_ms'], int)
            self.assertGreater(n['rps'], 0)
        print('nodes: %s' % ', '.join('%s %d requests, offset %.2f ms, start skew %d ms'
                                       % (n['node'], n['requests'], n['offset_ms'],
                                          n['start_skew_ms']) for n in d['nodes']))
        spread = self.deviations(m, delays)
        one, one_delays = self.measured(None)
        self.assertEqual(one['metrics']['requests'], len(one_delays))
        alone = self.deviations(one['metrics'], one_delays)
        print('readyd minus the demo target\'s record, ms: 3 nodes %s; 1 node %s; floor %.3f'
              % ({k: round(v, 3) for k, v in spread.items()},
                 {k: round(v, 3) for k, v in alone.items()}, floor))
        # The same tolerance as test_load's one-node probe against the
        # same record, each with the floor of its connections per node
        # (2 on each of three nodes, 6 on one): the merge adds no error
        # of its own.
        floor_one = self.transport_floor_ms(6)
        for name, p in (('p50_ms', 50), ('p95_ms', 95), ('p99_ms', 99)):
            for dev, recs, fl in ((spread[name], delays, floor),
                                  (alone[name], one_delays, floor_one)):
                want = nearest_rank(recs, p) / 1000.0
                self.assertLess(abs(dev), max(0.03 * want, 0.3) + fl, (name, dev, want, fl))

    def test_1b_rate_mode_splits_the_rate(self):
        """Rate mode: each node sends rate / 3 on its own schedule; together
        they send the spec's rate, and the target saw every request the
        probe counts."""
        a = self.nodes['node-a']
        self.assertEqual(self.demo.post('/admin/reset').status, 200)
        spec = load_spec(self.demo.url, 3, '2s', service='fanout-rate').replace(
            'mode: closed', 'mode: rate\n    rate: 150')
        r = a.submit(spec)
        self.assertEqual(r.status, 201, r)
        run = a.wait_run(r.json['id'], timeout=60)
        self.assertEqual(run['state'], 'passed', run)
        m, d = run['probes'][0]['metrics'], run['probes'][0]['details']
        seen = lib.http('GET', self.demo.url + '/admin/delays').json['count']
        print('rate 150 over 3 nodes for 2 s: %d requests (%s), rate_kept %s, unsent %s'
              % (m['requests'], ', '.join('%s %d' % (n['node'], n['requests'])
                                          for n in d['nodes']), m['rate_kept'], m['unsent']))
        self.assertEqual(m['requests'], seen)
        self.assertEqual(m['rate_kept'], 1)
        # 2 s at 50/s on each node: 100 sends each, 300 in all.
        self.assertTrue(all(95 <= n['requests'] <= 101 for n in d['nodes']), d['nodes'])
        self.assertLessEqual(abs(m['requests'] - 300), 6)

    def wait_going(self, d, run_id, count):
        """Until the probe runs and the demo target answered count requests."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            run = d.get('/v1/runs/%d' % run_id).json
            seen = lib.http('GET', self.demo.url + '/admin/delays').json['count']
            if run['probes'][0]['state'] == 'running' and seen > count:
                return run
            time.sleep(0.1)
        self.fail('the load never got going: %r' % run)

    def test_2_cancel_stops_every_node(self):
        """A cancel of the run, sent to any node, stops the load of all
        three: the demo target stops being asked."""
        a, b = self.nodes['node-a'], self.nodes['node-b']
        self.assertEqual(self.demo.post('/admin/reset').status, 200)
        r = a.submit(load_spec(self.demo.url, 3, '30s', service='fanout-cancel'))
        self.assertEqual(r.status, 201, r)
        run_id = r.json['id']
        self.wait_going(a, run_id, 300)
        r = b.request('POST', '/v1/runs/%d/cancel' % run_id, '{"reason": "fanout test"}',
                      {'Content-Type': 'application/json'})
        self.assertEqual(r.status, 202, r)
        run = a.wait_run(run_id, timeout=20)
        self.assertEqual((run['state'], run['probes'][0]['state']), ('cancelled', 'cancelled'))
        time.sleep(1.5)  # a shard's node learns of a stop within its 0.5 s beat
        before = lib.http('GET', self.demo.url + '/admin/delays').json['count']
        time.sleep(1.0)
        after = lib.http('GET', self.demo.url + '/admin/delays').json['count']
        self.assertEqual(before, after, 'some node still sends load after the cancel')

    def test_3_killed_shard_node_is_an_error_naming_it(self):
        a = self.nodes['node-a']
        self.assertEqual(self.demo.post('/admin/reset').status, 200)
        r = a.submit(load_spec(self.demo.url, 3, '30s', service='fanout-kill'))
        self.assertEqual(r.status, 201, r)
        run_id = r.json['id']
        run = self.wait_going(a, run_id, 300)
        coordinator = run['node']
        victim = next(n for n in NAMES if n != coordinator)
        self.nodes[victim].kill()
        killed = time.monotonic()
        run = self.nodes[coordinator].wait_run(run_id, timeout=60)
        took = time.monotonic() - killed
        probe = run['probes'][0]
        print('probe after SIGKILL of %s (coordinator %s): %s in %.2f s: %s'
              % (victim, coordinator, probe['state'], took, probe['error']))
        self.assertEqual(probe['state'], 'error', probe)
        self.assertEqual(run['state'], 'error')
        self.assertIn("node '%s'" % victim, probe['error'])
        self.assertLess(took, LEASE_S + 10)
        # What the nodes measured is kept: the two alive ones' results and
        # the last count the killed one reported.
        by_node = {n['node']: n for n in probe['details']['nodes']}
        self.assertEqual(sorted(by_node), sorted(NAMES))
        alive = [n for n in NAMES if n != victim]
        self.assertTrue(all(by_node[n]['requests'] > 0 for n in alive), by_node)
        self.assertGreater(by_node[victim]['requests'] or 0, 0, by_node)
        self.assertEqual(probe['metrics']['requests'],
                         sum(by_node[n]['requests'] for n in alive))
        self.assertLess(took, 30)  # the load was ended, not run to its end


    def test_4_unclaimed_shard_is_an_error_before_any_load(self):
        """A node alive by its heartbeat that does not claim its shard (its
        process is stopped): the probe is an error within the claim bound,
        and the target never saw a request: no smaller load."""
        # The two nodes test_3 left alive (which one it killed depends on
        # which node coordinated).
        a, c = [self.nodes[n] for n in NAMES if self.nodes[n].proc.poll() is None]
        # test_3's surviving shard may still have answers in flight when
        # its probe ends: the target is reset once its count stops moving.
        count = None
        for _ in range(60):
            now = lib.http('GET', self.demo.url + '/admin/delays').json['count']
            if now == count:
                break
            count = now
            time.sleep(0.5)
        self.assertEqual(self.demo.post('/admin/reset').status, 200)
        c.send_signal(signal.SIGSTOP)
        try:
            r = a.submit(load_spec(self.demo.url, 2, '5s', service='fanout-unclaimed'))
            self.assertEqual(r.status, 201, r)
            run = a.wait_run(r.json['id'], timeout=40)
        finally:
            c.send_signal(signal.SIGCONT)
        probe = run['probes'][0]
        print('nodes: 2 with one node stopped: %s: %s' % (probe['state'], probe['error']))
        self.assertEqual((run['state'], probe['state']), ('error', 'error'), run)
        self.assertTrue('not claimed by another node within 10 s' in probe['error'] or
                        'more nodes than are alive' in probe['error'], probe['error'])
        self.assertEqual(lib.http('GET', self.demo.url + '/admin/delays').json['count'], 0)


if __name__ == '__main__':
    lib.main()
