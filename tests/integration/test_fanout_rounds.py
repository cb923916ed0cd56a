"""Integration: capacity and compare probes spread over three readyd nodes
on one PostgreSQL database (`nodes: 3`, docs/scale-out.md "Load from
several nodes"). Each capacity step and each compare segment is a round
every node takes a share of: the demo targets' own counts equal the sum
of what the nodes measured, step by step and side by side; the capacity
found is the demo target's known saturation and the compare's ratio the
known slowdown, as from one node; a node killed with SIGKILL during a
capacity step makes the probe an error naming it, the steps before kept;
a cancel through another node, or the death of the node executing the
run, leaves no node sending load.

Every expected number comes from the demo targets' configuration or
record (workers x 1000 / latency; 12 ms / 10 ms), never from timings of
this machine. Needs READYD_TEST_PG_URL (scripts/test starts a private
cluster); skipped without it."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from test_cluster import LEASE_S, ms, start_nodes, stop_nodes  # noqa: E402

NAMES = ('node-a', 'node-b', 'node-c')


def spec(service, probe, target=None):
    tgt = f"target:\n  url: {target}/v1/predict\n  timeout: 5s\n" if target else ''
    return f"""apiVersion: readyd/v1
service: {service}
version: 1.0.0
environment: test
timeout: 5m
{tgt}probes:
{probe}"""


def capacity_probe(nodes, step='1500ms', max_rate=300):
    return f"""  - name: cap
    type: capacity
    slo: "p95_ms < 100 and error_rate < 0.01"
    min_rate: 100
    max_rate: {max_rate}
    step: {step}
    connections: 33
    nodes: {nodes}
"""


def compare_probe(base, cand, connections, segments, segment_duration, nodes):
    return f"""  - name: cmp
    type: compare
    baseline: {base.url}/v1/predict
    candidate: {cand.url}/v1/predict
    mode: closed
    connections: {connections}
    segments: {segments}
    segment_duration: {segment_duration}
    nodes: {nodes}
"""


def count(demo):
    return lib.http('GET', demo.url + '/admin/delays').json['count']


def wait_count(test, demo, n, what):
    """Until demo answered at least n requests (60 s at most)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and count(demo) < n:
        time.sleep(0.1)
    test.assertGreaterEqual(count(demo), n, what)


class FanoutRoundsTest(lib.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.db, cls.nodes = start_nodes(NAMES)

    @classmethod
    def tearDownClass(cls):
        stop_nodes(cls.nodes, cls.db)

    def demo(self, **flags):
        t = lib.DemoTarget(**flags).__enter__()
        self.addCleanup(t.__exit__, None, None, None)
        return t

    def test_1_capacity_steps_spread_over_three_nodes(self):
        """The saturation of a server with 4 workers of 20 ms is 200 req/s;
        three nodes offering each step together find it as one node does,
        and every request of every step is one the target answered."""
        workers, latency_ms = 4, 20
        saturation = workers * 1000.0 / latency_ms
        t = self.demo(workers=workers, latency='%dms' % latency_ms)
        a = self.nodes['node-a']
        r = a.submit(spec('rounds-capacity', capacity_probe(3), t.url))
        self.assertEqual(r.status, 201, r)
        run = a.wait_run(r.json['id'], timeout=240)
        self.assertEqual(run['state'], 'passed', run)
        p = run['probes'][0]
        m, points = p['metrics'], p['details']['points']
        print('capacity over 3 nodes: %.1f req/s (saturation %.0f), %d steps: %s'
              % (m['rate'], saturation, len(points),
                 '; '.join('%g req/s %s %s' % (pt['rate'], 'pass' if pt['pass'] else 'fail',
                                                 '+'.join(str(n['requests'])
                                                          for n in pt['nodes']))
                           for pt in points)))
        # For the record (no bound on it): what agreeing each round cost.
        took = ms(p['finished_at']) - ms(p['started_at'])
        print('%d rounds of 1.5 s in %.1f s: %.2f s per round besides its load'
              % (len(points), took / 1000.0, took / 1000.0 / len(points) - 1.5))
        self.assertEqual(m['nodes'], 3)
        self.assertLess(abs(m['rate'] - saturation), 0.10 * saturation, points)
        self.assertTrue(any(not pt['pass'] and pt['rate'] >= saturation for pt in points))
        for pt in points:
            by_node = {n['node']: n['requests'] for n in pt['nodes']}
            self.assertEqual(sorted(by_node), sorted(NAMES), pt)
            self.assertTrue(all(v > 0 for v in by_node.values()), pt)
            self.assertEqual(sum(by_node.values()), pt['requests'], pt)
        # Every request the target answered was measured in some step by
        # one of the nodes (no warmup: every request is measured).
        self.assertEqual(sum(pt['requests'] for pt in points), count(t))

    def test_2_compare_segments_spread_over_three_nodes(self):
        """A candidate 20 % slower (12 ms vs 10 ms), both loaded by three
        nodes segment by segment: each side's requests are exactly what its
        target answered, A B A B holds, and the ratio is the known one."""
        base, cand = self.demo(latency='10ms'), self.demo(latency='12ms')
        probe = compare_probe(base, cand, 9, 6, '500ms', 3)
        a = self.nodes['node-b']
        r = a.submit(spec('rounds-compare', probe))
        self.assertEqual(r.status, 201, r)
        run = a.wait_run(r.json['id'], timeout=240)
        self.assertEqual(run['state'], 'passed', run)
        p = run['probes'][0]
        m, table = p['metrics'], p['details']['table']
        print('compare over 3 nodes: p50_ratio %.4f [%.4f, %.4f], baseline %d candidate %d '
              'requests' % (m['p50_ratio'], m['p50_ratio_ci_low'], m['p50_ratio_ci_high'],
                            m['baseline_requests'], m['candidate_requests']))
        self.assertEqual(m['nodes'], 3)
        self.assertEqual([row['endpoint'] for row in table], ['baseline', 'candidate'] * 6)
        for row in table:
            self.assertEqual(sorted(n['node'] for n in row['nodes']), sorted(NAMES), row)
            self.assertEqual(sum(n['requests'] for n in row['nodes']), row['requests'], row)
        self.assertEqual(m['baseline_requests'], count(base))
        self.assertEqual(m['candidate_requests'], count(cand))
        self.assertEqual(m['significant'], 1, m)
        self.assertLess(abs(m['p50_ratio'] / 1.2 - 1), 0.05, m)

    def test_2b_cancel_mid_compare_stops_every_node(self):
        """A cancel sent to another node in the middle of a spread compare:
        the probe is cancelled and no node sends to either side after it."""
        base, cand = self.demo(latency='2ms'), self.demo(latency='2ms')
        probe = compare_probe(base, cand, 6, 20, '2s', 3)
        a, c = self.nodes['node-a'], self.nodes['node-c']
        r = a.submit(spec('rounds-cancel', probe))
        self.assertEqual(r.status, 201, r)
        run_id = r.json['id']
        wait_count(self, cand, 200, 'the candidate was never loaded')
        r = c.request('POST', '/v1/runs/%d/cancel' % run_id, '{"reason": "rounds test"}',
                      {'Content-Type': 'application/json'})
        self.assertEqual(r.status, 202, r)
        run = a.wait_run(run_id, timeout=30)
        self.assertEqual((run['state'], run['probes'][0]['state']), ('cancelled', 'cancelled'))
        time.sleep(1.5)  # a shard's node learns of a stop within its 0.5 s beat
        before = (count(base), count(cand))
        time.sleep(1.0)
        self.assertEqual(before, (count(base), count(cand)),
                         'some node still sends load after the cancel')

    def test_3_killed_node_during_a_step_is_an_error_naming_it(self):
        """A node killed in the middle of a capacity step: the probe is an
        error naming it (never a capacity measured on a smaller load), and
        the steps before it are kept."""
        t = self.demo(workers=64, latency='5ms')
        a = self.nodes['node-a']
        r = a.submit(spec('rounds-kill', capacity_probe(3, step='8s', max_rate=3000), t.url))
        self.assertEqual(r.status, 201, r)
        run_id = r.json['id']
        # Past the first step (100 req/s for 8 s: 800 requests), into the second.
        wait_count(self, t, 1000, 'the second step never began')
        run = a.get('/v1/runs/%d' % run_id).json
        coordinator = run['node']
        victim = next(n for n in NAMES if n != coordinator)
        self.nodes[victim].kill()
        killed = time.monotonic()
        run = self.nodes[coordinator].wait_run(run_id, timeout=60)
        took = time.monotonic() - killed
        p = run['probes'][0]
        print('capacity after SIGKILL of %s (coordinator %s): %s in %.2f s: %s'
              % (victim, coordinator, p['state'], took, p['error']))
        self.assertEqual((run['state'], p['state']), ('error', 'error'), p)
        self.assertIn("node '%s'" % victim, p['error'])
        self.assertLess(took, LEASE_S + 10)
        points = p['details']['points']
        self.assertTrue(points[0]['pass'], points)
        self.assertLessEqual(abs(points[0]['requests'] - 800), 3, points[0])
        self.assertEqual(points[-1]['failed_on'], 'nodes', points)
        self.assertNotIn('rate', p['metrics'])

    def test_4_killed_coordinator_leaves_no_load_behind(self):
        """The node executing a spread compare killed mid-segment: another
        node interrupts the run at its lease, and the surviving node's
        share stops with it: no load is left running for nobody."""
        alive = [self.nodes[n] for n in NAMES if self.nodes[n].proc.poll() is None]
        self.assertEqual(len(alive), 2)
        base, cand = self.demo(latency='2ms'), self.demo(latency='2ms')
        probe = compare_probe(base, cand, 4, 10, '3s', 2)
        r = alive[0].submit(spec('rounds-orphan', probe))
        self.assertEqual(r.status, 201, r)
        run_id = r.json['id']
        wait_count(self, cand, 200, 'the candidate was never loaded')
        coordinator = alive[0].get('/v1/runs/%d' % run_id).json['node']
        other = next(d for d in alive if self.nodes[coordinator] is not d)
        self.nodes[coordinator].kill()
        killed = time.monotonic()
        run = other.wait_run(run_id, timeout=LEASE_S + 15)
        took = time.monotonic() - killed
        self.assertEqual(run['state'], 'interrupted', run)
        time.sleep(2.0)  # the survivor's share learns within its 0.5 s beat
        before = (count(base), count(cand))
        time.sleep(1.5)
        after = (count(base), count(cand))
        print('coordinator %s killed: run %s %.2f s later; requests after that %s -> %s'
              % (coordinator, run['state'], took, before, after))
        self.assertEqual(before, after, 'a node still sends load for a run nobody executes')


if __name__ == '__main__':
    lib.main()
