"""Integration: the compare probe (baseline against candidate in
alternating segments), capacity plans, and the infrastructure probe,
through the real readyd against the demo target. Expected numbers come
from the demo target's configuration, from arithmetic on the published
figures, or from this machine's own /proc, statvfs and sched_getaffinity.
The 20-run false-alarm statistics live in tests/unit/probe/test-probe-facts.c
(synthetic, exact) and bench/compare (real, long)."""
import http.server
import math
import os
import shutil
import stat
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402


def spec(probes, gates='', timeout='5m', target=None):
    tgt = f"target:\n  url: {target}\n  timeout: 5s\n" if target else ''
    return f"""apiVersion: readyd/v1
service: compare-test
version: 1.0.0
environment: test
timeout: {timeout}
{tgt}probes:
{probes}
{gates}"""


def compare_probe(base, cand, segments=10, seg='250ms', conns=8):
    return f"""  - name: cmp
    type: compare
    baseline: {base}/v1/predict
    candidate: {cand}/v1/predict
    mode: closed
    connections: {conns}
    segments: {segments}
    segment_duration: {seg}
"""


def report(what, m):
    print('%s: ' % what + ', '.join(
        'p%d_ratio %.4f [%.4f, %.4f] sig %s' % (q, m['p%d_ratio' % q], m['p%d_ratio_ci_low' % q],
                                               m['p%d_ratio_ci_high' % q],
                                               m['p%d_significant' % q])
        for q in (50, 95, 99)), file=sys.stderr)


def shortest(v):
    """A number as the reports print it: the shortest text that reads back."""
    return '%d' % v if float(v).is_integer() else repr(float(v))


def probe_of(run, name):
    return next(p for p in run['probes'] if p['name'] == name)


def gate_of(run, expr):
    return next(g for g in run['gates'] if g['expr'] == expr)


class CompareTest(lib.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = lib.Daemon().__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)

    def setUp(self):
        super().setUp()
        self.track(self.d)

    def demo(self, **flags):
        t = lib.DemoTarget(**flags).__enter__()
        self.addCleanup(t.__exit__, None, None, None)
        self.track(t)
        return t

    def compare(self, base_ms, cand_ms, gates=''):
        a, b = self.demo(latency='%dms' % base_ms), self.demo(latency='%dms' % cand_ms)
        run = self.d.run_spec(spec(compare_probe(a.url, b.url), gates), timeout=90)
        p = probe_of(run, 'cmp')
        self.assertEqual(p['state'], 'passed', p)
        return run, p['metrics'], p['details']

    def test_identical_endpoints_are_not_significant(self):
        # Two real compares of equal targets; the 20-run rate is measured
        # in the unit test and bench/compare.
        for _ in range(2):
            run, m, d = self.compare(10, 10, gates='gates:\n  - cmp.significant == 0\n')
            report('identical', m)
            self.assertEqual(m['significant'], 0, m)
            # Two processes may differ by a fraction of a percent, which
            # the median's interval can resolve: less than min_effect.
            self.assertLess(abs(m['p50_ratio'] - 1), 0.05, m)
            self.assertEqual(m['min_effect'], 0.02)
            self.assertEqual(run['verdict'], 'PASS', run['gates'])
            # A B A B: segments alternate and each side got its share.
            ends = [row['endpoint'] for row in d['table']]
            self.assertEqual(ends, ['baseline', 'candidate'] * 10)
            self.assertEqual(m['pairs'], 10)
            self.assertEqual(m['confidence'], 0.95)
            self.assertEqual(sum(r['requests'] for r in d['table'] if r['endpoint'] == 'baseline'),
                             m['baseline_requests'])

    def test_slower_candidate_is_caught(self):
        gates = 'gates:\n  - cmp.significant == 0\n  - cmp.p50_ratio_ci_low <= 1.05\n'
        for _ in range(2):
            run, m, _ = self.compare(10, 12, gates=gates)
            report('slower', m)
            self.assertEqual(m['significant'], 1, m)
            self.assertLess(abs(m['p50_ratio'] / 1.2 - 1), 0.05, m)
            self.assertGreater(m['p50_ratio_ci_low'], 1, m)
            self.assertEqual(run['verdict'], 'FAIL')
            self.assertEqual(gate_of(run, 'cmp.significant == 0')['outcome'], 'fail')
            self.assertEqual(gate_of(run, 'cmp.p50_ratio_ci_low <= 1.05')['outcome'], 'fail')
            html = self.d.get('/v1/runs/%d/report?format=html' % run['id']).body.decode()
            table = html[html.index('id="compare-cmp"'):]
            self.assertIn('<td>p50</td><td>%.6g</td>' % m['baseline_p50_ms'], table)

    def test_error_rate_diff_and_throughput_ratio(self):
        # Same latency, a candidate that answers 500 to 20 % of requests, at
        # a fixed offered rate: each side's error rate is what its demo
        # target counted, and the candidate serves 0.8 of the baseline's
        # successful answers per second.
        a = self.demo(latency='2ms')
        b = self.demo(latency='2ms', errors='0.2')
        probe = f"""  - name: cmp
    type: compare
    baseline: {a.url}/v1/predict
    candidate: {b.url}/v1/predict
    mode: rate
    rate: 200
    connections: 4
    segments: 8
    segment_duration: 500ms
"""
        gates = 'gates:\n  - cmp.error_rate_diff <= 0.001\n  - cmp.throughput_ratio >= 0.95\n'
        run = self.d.run_spec(spec(probe, gates), timeout=90)
        p = probe_of(run, 'cmp')
        self.assertEqual(p['state'], 'passed', p)
        m, table = p['metrics'], p['details']['table']
        print('errors: error_rate_diff %.4f, throughput_ratio %.4f (%.1f / %.1f req/s)'
              % (m['error_rate_diff'], m['throughput_ratio'], m['candidate_throughput_rps'],
                 m['baseline_throughput_rps']), file=sys.stderr)
        served = {}
        for side, t in (('baseline', a), ('candidate', b)):
            d = lib.http('GET', t.url + '/admin/delays').json
            rows = [r for r in table if r['endpoint'] == side]
            self.assertEqual(sum(r['requests'] for r in rows), m[side + '_requests'])
            self.assertEqual(sum(r['errors'] for r in rows) / m[side + '_requests'],
                             m[side + '_error_rate'])
            # Every answer the engine counted, the target served (it may
            # have served a few the engine stopped waiting for).
            self.assertLessEqual(m[side + '_requests'], d['count'])
            self.assertLess(abs(m[side + '_error_rate'] - d['errors'] / d['count']), 0.01)
            served[side] = d
        self.assertEqual(served['baseline']['errors'], 0)
        self.assertEqual(m['baseline_error_rate'], 0)
        self.assertAlmostEqual(m['error_rate_diff'],
                               m['candidate_error_rate'] - m['baseline_error_rate'], places=12)
        # 800 requests a side: the binomial spread of 20 % is 1.4 points.
        self.assertLess(abs(m['error_rate_diff'] - 0.2), 0.06, m)
        self.assertAlmostEqual(m['throughput_ratio'],
                               m['candidate_throughput_rps'] / m['baseline_throughput_rps'],
                               places=12)
        # Successful answers, not all answers (1), nor inverted (1.25); host
        # stalls move each side's rate by a few percent.
        self.assertLess(abs(m['throughput_ratio'] / (1 - m['candidate_error_rate']) - 1), 0.1,
                        m)
        self.assertLess(abs(m['throughput_ratio'] - 0.8), 0.1, m)
        self.assertEqual(gate_of(run, 'cmp.error_rate_diff <= 0.001')['outcome'], 'fail')
        self.assertEqual(gate_of(run, 'cmp.throughput_ratio >= 0.95')['outcome'], 'fail')
        self.assertEqual(run['verdict'], 'FAIL')

    def test_unreachable_candidate_is_an_error(self):
        a = self.demo(latency='1ms')
        probe = compare_probe(a.url, 'http://127.0.0.1:1', segments=6, seg='100ms')
        run = self.d.run_spec(spec(probe, 'gates:\n  - cmp.significant == 0\n'), timeout=60)
        p = probe_of(run, 'cmp')
        self.assertEqual(p['state'], 'error', p)
        self.assertIn('cannot connect to the candidate', p['error'])
        self.assertEqual(run['verdict'], 'ERROR')

    def test_cancel_mid_compare(self):
        a, b = self.demo(latency='1ms'), self.demo(latency='1ms')
        r = self.d.submit(spec(compare_probe(a.url, b.url, segments=10, seg='5s')))
        self.assertEqual(r.status, 201, r)
        rid = r.json['id']
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            cur = (self.d.get('/v1/runs/%d' % rid).json.get('progress') or {}).get('current')
            if ((cur or {}).get('requests') or 0) > 0:
                break
            time.sleep(0.1)
        else:
            self.fail('no progress seen')
        t0 = time.monotonic()
        self.assertIn(self.d.request('POST', '/v1/runs/%d/cancel' % rid).status, (200, 202))
        run = self.d.wait_run(rid, timeout=20)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual(run['state'], 'cancelled', run)
        self.assertEqual(probe_of(run, 'cmp')['state'], 'cancelled')

    def current(self, rid):
        return (self.d.get('/v1/runs/%d' % rid).json.get('progress') or {}).get('current') or {}

    def until(self, cond, what, timeout=20):
        deadline = time.monotonic() + timeout
        while not cond():
            self.assertLess(time.monotonic(), deadline, what)
            time.sleep(0.1)

    def test_compare_takes_the_load_slot(self):
        # A compare drives load at both endpoints: a load probe submitted
        # meanwhile (max_concurrent_load 1) waits, then runs once it ends.
        a, b = self.demo(latency='1ms'), self.demo(latency='1ms')
        r = self.d.submit(spec(compare_probe(a.url, b.url, segments=10, seg='5s')))
        self.assertEqual(r.status, 201, r)
        cmp_id = r.json['id']
        current = self.current
        self.until(lambda: current(cmp_id).get('requests'), 'compare running')
        load = spec("""  - name: load
    type: load
    mode: closed
    connections: 1
    duration: 500ms
""", target=a.url + '/v1/predict')
        r = self.d.submit(load)
        self.assertEqual(r.status, 201, r)
        load_id = r.json['id']
        self.until(lambda: current(load_id).get('waiting') == 'waiting for a load slot',
                   'the load run waiting for the slot')
        self.assertEqual(self.d.get('/v1/runs/%d' % load_id).json['probes'][0]['state'],
                         'queued')
        self.assertIn(self.d.request('POST', '/v1/runs/%d/cancel' % cmp_id).status, (200, 202))
        run = self.d.wait_run(load_id, timeout=30)
        self.assertEqual(run['state'], 'passed', run)

    def test_bad_compare_specs(self):
        a = self.demo(latency='1ms')
        for body, path in (
                (compare_probe(a.url, a.url, segments=3), 'probes[0].segments'),
                (compare_probe(a.url, a.url).replace('    mode: closed\n', ''),
                 'probes[0].mode'),
                (compare_probe(a.url, 'ftp://x'), 'probes[0].candidate')):
            r = self.d.submit(spec(body))
            self.assertEqual(r.status, 422, r)
            self.assertIn(path, str(r.json), r.json)


class CapacityPlanTest(lib.TestCase):
    def test_instances_needed_and_headroom_follow_the_formula(self):
        with lib.Daemon() as d, lib.DemoTarget(workers=4, latency='20ms') as t:
            self.track(d)
            probe = f"""  - name: max-sustainable
    type: capacity
    slo: "p95_ms < 100 and error_rate < 0.01"
    min_rate: 120
    max_rate: 300
    step: 700ms
    connections: 32
    plan:
      target_rps: 1000
      target_utilization: 0.6
      min_instances: 2
      max_instances: 10
"""
            gates = 'gates:\n  - max-sustainable.instances_needed <= 10\n'
            run = d.run_spec(spec(probe, gates, target=t.url + '/v1/predict'), timeout=120)
            p = probe_of(run, 'max-sustainable')
            self.assertEqual(p['state'], 'passed', p)
            m = p['metrics']
            cap = m['rate']
            need = max(2, math.ceil(1000 / (cap * 0.6)))
            print('capacity %.1f req/s: instances_needed %s (formula %d), plan_headroom %.4f'
                  % (cap, m['instances_needed'], need, m['plan_headroom']), file=sys.stderr)
            self.assertEqual(m['instances_needed'], need)
            self.assertAlmostEqual(m['plan_headroom'], 10 * cap * 0.6 / 1000 - 1, places=9)
            self.assertEqual(m['plan_feasible'], 1 if need <= 10 else 0)
            self.assertEqual(gate_of(run, 'max-sustainable.instances_needed <= 10')['outcome'],
                             'pass' if need <= 10 else 'fail')
            self.assertEqual(p['details']['plan']['target_rps'], 1000)
            for pt in p['details']['points']:
                for k in ('rate', 'delivered_rps', 'p95_ms', 'errors', 'pass'):
                    self.assertIn(k, pt)
            md = d.get('/v1/runs/%d/report?format=markdown' % run['id']).body.decode()
            self.assertIn('| offered req/s | delivered req/s |', md)
            html = d.get('/v1/runs/%d/report?format=html' % run['id']).body.decode()
            self.assertIn('id="capacity-steps-max-sustainable"', html)
            steps = html[html.index('id="capacity-steps-max-sustainable"'):]
            self.assertIn('<svg', steps)
            # Every step of the search is a row: offered, delivered, p95, errors.
            steps = steps[:steps.index('</table>')]
            points = p['details']['points']
            self.assertEqual(steps.count('<tr><td>'), len(points))
            for i, pt in enumerate(points):
                self.assertIn('<tr><td>%d</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td>'
                              % (i + 1, shortest(pt['rate']), shortest(pt['delivered_rps']),
                                 shortest(pt['p95_ms']), shortest(pt['errors'])), steps)

    def test_plan_beyond_max_instances_is_infeasible(self):
        # max_rate is below what the target serves: two passing steps, and
        # a capacity that is a lower bound (said so in details).
        with lib.Daemon() as d, lib.DemoTarget(workers=2, latency='20ms') as t:
            self.track(d)
            probe = """  - name: cap
    type: capacity
    slo: "p95_ms < 100"
    min_rate: 20
    max_rate: 40
    step: 500ms
    plan: {target_rps: 5000, max_instances: 3}
"""
            run = d.run_spec(spec(probe, 'gates:\n  - cap.plan_feasible == 1\n',
                                  target=t.url + '/v1/predict'), timeout=120)
            p = probe_of(run, 'cap')
            m = p['metrics']
            self.assertTrue(p['details']['capacity_is_lower_bound'], p['details'])
            self.assertEqual(p['details']['plan']['target_utilization'], 0.7)
            self.assertEqual(m['instances_needed'], max(1, math.ceil(5000 / (m['rate'] * 0.7))))
            self.assertGreater(m['instances_needed'], 3)
            self.assertEqual(m['plan_feasible'], 0)
            self.assertAlmostEqual(m['plan_headroom'], 3 * m['rate'] * 0.7 / 5000 - 1, places=9)
            self.assertLess(m['plan_headroom'], 0)
            self.assertEqual(run['verdict'], 'FAIL')

    def test_bad_plans(self):
        with lib.Daemon() as d:
            self.track(d)
            base = """  - name: cap
    type: capacity
    slo: "p95_ms < 100"
    max_rate: 40
    plan: %s
"""
            for plan, path in (('{max_instances: 3}', 'probes[0].plan.target_rps'),
                               ('{target_rps: 10, target_utilization: 1.5}',
                                'probes[0].plan.target_utilization'),
                               ('{target_rps: 10, min_instances: 5, max_instances: 3}',
                                'probes[0].plan'),
                               ('{target_rps: 10, spare: 1}', 'probes[0].plan.spare')):
                r = d.submit(spec(base % plan, target='http://127.0.0.1:9/'))
                self.assertEqual(r.status, 422, r)
                self.assertIn(path, [e.get('path') for e in r.json.get('errors', [])] +
                              [r.json.get('path')], r.json)


def meminfo_bytes(key):
    with open('/proc/meminfo', encoding='ascii') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


class InfrastructureTest(lib.TestCase):
    def infra_run(self, d, probe_extra='', gates=''):
        probe = '  - name: infra\n    type: infrastructure\n' + probe_extra
        return d.run_spec(spec(probe, gates), timeout=60)

    def test_local_facts_match_this_machine(self):
        with lib.Daemon() as d:
            self.track(d)
            run = self.infra_run(d, '    mounts: [/, /tmp]\n',
                                 'gates:\n  - infra.cpu_cores >= 1\n'
                                 '  - infra.gpu_memory_gib >= 80\n')
            p = probe_of(run, 'infra')
            self.assertEqual(p['state'], 'passed', p)
            m, det = p['metrics'], p['details']
            nproc = int(lib.subprocess.run(['nproc'], capture_output=True, text=True,
                                           check=True).stdout)
            print('infrastructure: %r' % m, file=sys.stderr)
            self.assertEqual(m['cpu_cores'], nproc)
            self.assertEqual(m['cpu_cores'], len(os.sched_getaffinity(0)))
            self.assertAlmostEqual(m['memory_gib'], meminfo_bytes('MemTotal') / 2**30, places=6)
            # MemAvailable moves from one read to the next.
            self.assertLess(abs(m['memory_available_gib'] -
                                meminfo_bytes('MemAvailable') / 2**30), 0.5)
            for i, mp in enumerate(['/', '/tmp']):
                st = os.statvfs(mp)
                free = st.f_bavail * st.f_frsize / 2**30
                self.assertEqual(det['mounts'][i]['mount'], mp)
                self.assertLess(abs(det['mounts'][i]['free_gib'] - free), 0.1)
                self.assertAlmostEqual(det['mounts'][i]['total_gib'],
                                       st.f_blocks * st.f_frsize / 2**30, places=6)
            self.assertEqual(m['disk_free_gib'], det['mounts'][0]['free_gib'])
            self.assertEqual(m['disk_free_gib_min'], min(x['free_gib'] for x in det['mounts']))
            # No GPU here: said so, no GPU metric, and a gate on one errs.
            self.assertIsNone(shutil.which('nvidia-smi'))
            self.assertEqual(det['gpu'], 'unavailable')
            self.assertIn('nvidia-smi', det['gpu_error'])
            self.assertNotIn('gpu_memory_gib', m)
            self.assertEqual(gate_of(run, 'infra.cpu_cores >= 1')['outcome'], 'pass')
            self.assertEqual(gate_of(run, 'infra.gpu_memory_gib >= 80')['outcome'], 'error')
            self.assertNotEqual(run['verdict'], 'PASS')

    def test_gpu_facts_from_nvidia_smi(self):
        # A stand-in nvidia-smi on the daemon's PATH prints what a
        # two-GPU host prints for the probe's query.
        bindir = tempfile.mkdtemp(prefix='readyd-fake-smi-')
        self.addCleanup(shutil.rmtree, bindir, True)
        smi = os.path.join(bindir, 'nvidia-smi')
        with open(smi, 'w', encoding='ascii') as f:
            f.write('#!/bin/sh\n'
                    'test "$1" = "--query-gpu=name,memory.total,memory.free" || exit 9\n'
                    'echo "NVIDIA H100 80GB HBM3, 81559, 81000"\n'
                    'echo "NVIDIA H100 80GB HBM3, 81559, 40960"\n')
        os.chmod(smi, stat.S_IRWXU)
        old = os.environ['PATH']
        os.environ['PATH'] = bindir + ':' + old
        try:
            d = lib.Daemon().__enter__()
        finally:
            os.environ['PATH'] = old
        try:
            self.track(d)
            run = self.infra_run(d, '', 'gates:\n  - infra.gpu_memory_gib >= 79\n'
                                        '  - infra.gpu_memory_free_gib >= 80\n')
        finally:
            d.__exit__(None, None, None)
        p = probe_of(run, 'infra')
        m = p['metrics']
        self.assertEqual(m['gpu_count'], 2)
        self.assertAlmostEqual(m['gpu_memory_gib'], 81559 / 1024, places=6)
        self.assertAlmostEqual(m['gpu_memory_free_gib'], 40960 / 1024, places=6)
        self.assertEqual(p['details']['gpu'][0]['model'], 'NVIDIA H100 80GB HBM3')
        self.assertEqual(gate_of(run, 'infra.gpu_memory_gib >= 79')['outcome'], 'pass')
        self.assertEqual(gate_of(run, 'infra.gpu_memory_free_gib >= 80')['outcome'], 'fail')

    def test_node_exporter_source(self):
        with lib.Daemon() as d, NodeExporter() as ne:
            self.track(d)
            run = self.infra_run(d, '    source: %s/metrics\n    mounts: [/, /var]\n' % ne.url,
                                 'gates:\n  - infra.cpu_cores >= 32\n'
                                 '  - infra.gpu_memory_gib >= 80\n')
        self.check_node_facts(run)

    def test_node_exporter_through_prometheus(self):
        with NodeExporter() as ne, lib.Prometheus(scrape_targets=[ne.url]) as prom, \
                lib.Daemon() as d:
            self.track(d)
            self.track(prom)
            instance = ne.url.split('://', 1)[1]
            prom.wait_for(lambda: prom.query('node_memory_MemTotal_bytes{instance="%s"}'
                                             % instance) is not None, what='first scrape')
            run = self.infra_run(d, '    prometheus: %s\n    instance: "%s"\n'
                                    '    mounts: [/, /var]\n' % (prom.url, instance),
                                 'gates:\n  - infra.cpu_cores >= 32\n'
                                 '  - infra.gpu_memory_gib >= 80\n')
        self.check_node_facts(run)

    def check_node_facts(self, run):
        p = probe_of(run, 'infra')
        self.assertEqual(p['state'], 'passed', p)
        m = p['metrics']
        self.assertEqual(m['cpu_cores'], 48)
        self.assertEqual(m['memory_gib'], 512)
        self.assertEqual(m['memory_available_gib'], 256)
        self.assertEqual(m['disk_free_gib'], 100)
        self.assertEqual(m['disk_free_gib_min'], 20)
        self.assertEqual(p['details']['mounts'][1]['total_gib'], 40)
        self.assertEqual(p['details']['gpu'], 'unavailable')
        self.assertEqual(gate_of(run, 'infra.cpu_cores >= 32')['outcome'], 'pass')
        self.assertEqual(gate_of(run, 'infra.gpu_memory_gib >= 80')['outcome'], 'error')


# What node_exporter prints on a 48-core host with 512 GiB, for the
# families the probe reads (and a few it must ignore).
NODE_TEXT = ('# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.\n'
             '# TYPE node_cpu_seconds_total counter\n'
             + ''.join('node_cpu_seconds_total{cpu="%d",mode="%s"} 12.5\n' % (c, mode)
                       for c in range(48) for mode in ('idle', 'user', 'system'))
             + '# TYPE node_memory_MemTotal_bytes gauge\n'
             'node_memory_MemTotal_bytes 5.49755813888e+11\n'
             '# TYPE node_memory_MemAvailable_bytes gauge\n'
             'node_memory_MemAvailable_bytes 2.74877906944e+11\n'
             '# TYPE node_filesystem_avail_bytes gauge\n'
             'node_filesystem_avail_bytes{device="/dev/sda1",fstype="ext4",mountpoint="/"} '
             '1.073741824e+11\n'
             'node_filesystem_avail_bytes{device="/dev/sdb1",fstype="xfs",mountpoint="/var"} '
             '2.147483648e+10\n'
             'node_filesystem_avail_bytes{device="tmpfs",fstype="tmpfs",mountpoint="/run"} 1\n'
             '# TYPE node_filesystem_size_bytes gauge\n'
             'node_filesystem_size_bytes{device="/dev/sda1",fstype="ext4",mountpoint="/"} '
             '2.147483648e+11\n'
             'node_filesystem_size_bytes{device="/dev/sdb1",fstype="xfs",mountpoint="/var"} '
             '4.294967296e+10\n'
             '# TYPE node_load1 gauge\n'
             'node_load1 0.5\n')


class NodeExporter:
    """A stand-in node_exporter on 127.0.0.1:0 serving NODE_TEXT at /metrics."""

    def __enter__(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = NODE_TEXT.encode()
                self.send_response(200 if self.path == '/metrics' else 404)
                self.send_header('Content-Type', 'text/plain; version=0.0.4')
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = 'http://127.0.0.1:%d' % self.server.server_address[1]
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


if __name__ == '__main__':
    lib.main()
