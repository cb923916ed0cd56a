"""Integration: several pipelines at once on the default scheduler config
(max_concurrent_load: 1). Runs with load probes submitted together must
queue for the one load slot, say so in their progress, and all finish,
while the loop keeps answering /healthz within a second."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402


def load_spec(url, i, duration='1s'):
    return f"""apiVersion: readyd/v1
service: concurrent-{i}
version: 1.0.{i}
environment: test
timeout: 5m
target:
  url: {url}/v1/predict
  timeout: 5s
probes:
  - name: load
    type: load
    mode: closed
    connections: 2
    duration: {duration}
  - name: health
    type: http
    url: {url}/healthz
gates:
  - health.status == 200
"""


class HealthPoller(threading.Thread):
    """Asks /healthz every 100 ms and keeps the slowest answer (a timeout
    or an error counts as infinitely slow)."""

    def __init__(self, daemon):
        super().__init__(daemon=True)
        self.d = daemon
        self.stop_ev = threading.Event()
        self.worst = 0.0
        self.failures = []

    def run(self):
        while not self.stop_ev.is_set():
            t0 = time.monotonic()
            try:
                r = self.d.get('/healthz', timeout=1.0)
                if r.status != 200:
                    self.failures.append('status %d' % r.status)
            except Exception as e:  # noqa: BLE001 - any failure is the finding
                self.failures.append(repr(e))
            self.worst = max(self.worst, time.monotonic() - t0)
            self.stop_ev.wait(0.1)

    def finish(self):
        self.stop_ev.set()
        self.join(5)


class ConcurrencyTest(lib.TestCase):
    def run_many(self, n, duration='1s'):
        with lib.DemoTarget() as demo, lib.Daemon() as d:
            self.track(d)
            poll = HealthPoller(d)
            poll.start()
            ids = []
            for i in range(n):
                r = d.submit(load_spec(demo.url, i, duration), headers={})
                self.assertEqual(r.status, 201, r)
                ids.append(r.json['id'])
            saw_waiting = False
            deadline = time.monotonic() + 60 + 5 * n
            pending = set(ids)
            while pending and time.monotonic() < deadline:
                for rid in sorted(pending):
                    run = d.get('/v1/runs/%d' % rid, timeout=5).json
                    cur = (run.get('progress') or {}).get('current') or {}
                    if cur.get('waiting') == 'waiting for a load slot':
                        saw_waiting = True
                    if run['state'] in lib.FINAL_STATES:
                        pending.discard(rid)
                time.sleep(0.1)
            poll.finish()
            self.assertFalse(pending, 'runs never finished: %s' % sorted(pending))
            for rid in ids:
                run = d.get('/v1/runs/%d' % rid).json
                self.assertEqual(run['state'], 'passed', run)
                self.assertGreater(run['probes'][0]['metrics']['requests'], 0)
            self.assertTrue(saw_waiting, 'no run ever reported waiting for a load slot')
            self.assertEqual(poll.failures, [])
            self.assertLess(poll.worst, 1.0)
            # SIGTERM must still work after the queue drained.
            self.assertEqual(d.stop(), 0)

    def test_two_runs_with_load_probes(self):
        self.run_many(2)

    def test_ten_runs_with_load_probes(self):
        self.run_many(10)

    def test_cancel_a_run_waiting_for_the_load_slot(self):
        with lib.DemoTarget() as demo, lib.Daemon() as d:
            self.track(d)
            first = d.submit(load_spec(demo.url, 0, '3s')).json['id']
            second = d.submit(load_spec(demo.url, 1, '1s')).json['id']
            lib.Prometheus.wait_for(
                lambda: ((d.get('/v1/runs/%d' % second).json.get('progress') or {})
                         .get('current') or {}).get('waiting'),
                timeout=10, what='second run waiting for the load slot')
            self.assertEqual(d.request('POST', '/v1/runs/%d/cancel' % second).status, 202)
            run = d.wait_run(second, timeout=10)
            self.assertEqual(run['state'], 'cancelled')
            self.assertEqual(d.get('/healthz', timeout=1.0).status, 200)
            self.assertEqual(d.wait_run(first, timeout=30)['state'], 'passed')


if __name__ == '__main__':
    lib.main()
