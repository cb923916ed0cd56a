"""Integration: a fleet of CD pipelines against one readyd, every feature
at once (tests/integration/fleet.py has the design).

Four pipelines plus one `readyctl submit --wait` pipeline submit load
(closed and rate), capacity, http, prometheus-scrape, prometheus-rules,
prometheus-query and alert-drill specs for READYD_FLEET_SECONDS (default
45) on the default scheduler config, some meant to FAIL and some to ERROR,
cancel some at seeded random moments, while readyd is SIGKILLed once and
started again on the same database. Then: every run is final and
consistent with what it measured, cancels took, runs alive at the kill
are interrupted with their finished probes kept, runs after the restart
were not interrupted, readyctl's exit code is the verdict's, /healthz
always answered within 1 s outside the restart window, the database
passes `PRAGMA integrity_check`, and the log has no sanitizer report.
READYD_FLEET_SEED replays a seed (printed).
"""
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fleet  # noqa: E402
import lib  # noqa: E402

SECONDS = float(os.environ.get('READYD_FLEET_SECONDS', '45'))
SEED = int(os.environ.get('READYD_FLEET_SEED', '20261202'))


class FleetTest(lib.TestCase):
    def test_fleet(self):
        rng = random.Random(SEED)
        kill_at = SECONDS * rng.uniform(0.35, 0.55)
        print('test_fleet seed=%d seconds=%.0f kill at %.1fs (READYD_FLEET_SEED replays)'
              % (SEED, SECONDS, kill_at))
        with fleet.Stack() as world, lib.Daemon() as d:
            self.track(d)
            f = fleet.Fleet(d, world, SEED, SECONDS, pipelines=4, kill_at=[kill_at],
                            readyctl=lib.READYCTL_BIN, drain_s=150.0)
            f.run()
            problems, counts, full = f.check()
            s = f.summary()
            print('test_fleet: %d runs in %.0fs %s; kills %s; healthz p99 %.1f ms max %.1f ms'
                  % (len(full), f.elapsed, counts, s['kill_log'], s['healthz_p99_ms'],
                     s['healthz_max_ms']))
            self.assertEqual(problems, [])
            busy = self.stop_while_busy(d, world)
            self.assertEqual(fleet.integrity(d.db), ['ok'])
            for mark in fleet.SANITIZER_MARKS:
                self.assertNotIn(mark, d.log())
        # The fleet exercised what it claims to.
        self.assertEqual(len(f.kill_log), 1)
        self.assertGreater(f.kill_log[0]['active'], 0, 'the kill found no run in flight')
        self.assertGreater(counts.get('interrupted', 0), 0)
        self.assertGreater(counts.get('cancelled', 0), 0)
        for state in ('passed', 'failed', 'error'):
            self.assertGreater(counts.get(state, 0), 0, state)
        after = [r for r in f.records if r.epoch == 1 and r.final]
        self.assertGreater(len(after), 0, 'no run was submitted after the restart')
        self.assertEqual(sorted({r.kind for r in f.records}), sorted(fleet.SPEC_KINDS))
        self.assertGreater(f.replays, 0, 'no submit was replayed with its Idempotency-Key')
        ctl = [r for r in f.records if r.via == 'readyctl']
        self.assertGreater(len(ctl), 0, 'the readyctl pipeline submitted nothing')

        self.assertGreater(busy, 0)

    def stop_while_busy(self, d, world):
        """SIGTERM while a load probe, a drill and queued runs are in
        flight: exit 0, and after a start every one of them is interrupted
        with what it measured kept, and the drill's fault was cleared."""
        ids = [d.submit(fleet.SPEC_KINDS[k][0](world, 99000 + i)).json['id']
               for i, k in enumerate(('drill-fire', 'load-rate', 'load-closed', 'http-ok'))]
        lib.Prometheus.wait_for(
            lambda: d.get('/v1/runs/%d' % ids[1]).json['state'] == 'running',
            timeout=60, what='the load run running')
        running = [i for i in ids if d.get('/v1/runs/%d' % i).json['state'] == 'running']
        self.assertEqual(d.stop(), 0)
        d.start()
        for rid in ids:
            run = d.get('/v1/runs/%d' % rid).json
            if rid in running:
                self.assertEqual(run['state'], 'interrupted', run)
            self.assertEqual(fleet.run_problems(run), [], run)
        drill = d.get('/v1/runs/%d' % ids[0]).json['probes'][0]
        print('test_fleet: SIGTERM with runs %s running; the drill %s, details %s'
              % (running, drill['state'], drill.get('details')))
        if drill['state'] == 'interrupted' and drill.get('details', {}).get('trigger_status'):
            self.assertEqual(drill['details'].get('clear_status'), 200, drill)
        self.assertEqual(d.stop(), 0)
        return len(running)


if __name__ == '__main__':
    lib.main()
