"""Crash safety: readyd killed with SIGKILL at random moments,
over and over, on the same database, and a full disk.

test_kill_loop: each round submits runs (fast http probes against a
quick demo target, slow ones against a 150 ms target so kills land
mid-probe and mid-write), waits a random 0..0.4 s (seeded PRNG; its seed
is printed and READYD_CRASH_SEED replays it), takes a snapshot of the
runs, SIGKILLs readyd, checks `PRAGMA integrity_check` with the daemon
stopped, restarts it and asserts: every run that was final in a snapshot
is still there, unchanged (its full JSON is compared at the end); no run
is left queued or running (those become `interrupted`); the API answers.
READYD_CRASH_KILLS sets the number of rounds (default 100).

test_disk_full: readyd's database on a 1 MiB tmpfs, filled up; runs must
fail with a clear error (507 at submit, or a stored error) and reads keep
answering. Then a run that ends while the disk is full: it is not
announced (GET, long-poll) until it is stored, /readyz is 503 naming the
run and SQLite's reason, and once the disk has room again the final state
lands (checked in the SQLite file and after a restart: `passed`, not
interrupted) and /readyz is 200. A cancel made while the disk is full is
recorded in the run's changes once it has room. Skipped when mounting is
not permitted, except under CI (CI set), where it fails.

test_db_deleted, test_db_renamed: the database file deleted, or renamed
away, under a running readyd: /readyz turns 503 naming the file within
the check interval, submits and changes (invalidate, rejudge, waivers)
are refused with 503, reads keep answering;
a renamed file put back makes readyd ready again.
"""
import json
import os
import random
import socket
import sqlite3
import subprocess
import tempfile
import time

import lib

KILLS = int(os.environ.get('READYD_CRASH_KILLS', '100'))
FINAL = set(lib.FINAL_STATES)


def http_spec(url, n_probes, name='svc'):
    probes = ''.join('  - name: p%d\n    type: http\n    url: %s/v1/predict\n' % (i, url)
                     for i in range(n_probes))
    return ('apiVersion: readyd/v1\nservice: %s\nversion: "1.0"\nprobes:\n%s' % (name, probes))


def integrity(db):
    con = sqlite3.connect(db)
    try:
        return [r[0] for r in con.execute('PRAGMA integrity_check')]
    finally:
        con.close()


class CrashTest(lib.TestCase):
    def list_runs(self, d):
        """Every run as the list endpoint shows it: {id: summary}."""
        runs, cursor = {}, None
        for _ in range(100):
            path = '/v1/runs?limit=1000' + ('&cursor=' + cursor if cursor else '')
            r = d.get(path, timeout=20.0)
            self.assertEqual(r.status, 200, r)
            for item in r.json['items']:
                runs[item['id']] = item
            cursor = r.json.get('next_cursor')
            if not cursor:
                return runs
        self.fail('run list did not end')

    def full(self, d, run_id):
        r = d.get('/v1/runs/%d' % run_id, timeout=20.0)
        self.assertEqual(r.status, 200, r)
        return r.json

    def test_kill_loop(self):
        seed = int(os.environ.get('READYD_CRASH_SEED', str(int(time.time() * 1000) % 2**31)))
        print('test_crash seed=%d kills=%d (READYD_CRASH_SEED replays)' % (seed, KILLS))
        rng = random.Random(seed)
        with lib.DemoTarget(latency='1ms') as fast, lib.DemoTarget(latency='150ms') as slow:
            d = self.track(lib.Daemon())
            with d:
                self.kill_rounds(d, rng, fast.url, slow.url)

    def kill_rounds(self, d, rng, fast, slow):
        final_summary = {}  # id -> list item when first seen final
        final_full = {}  # id -> GET /v1/runs/{id} when first seen final
        interrupted = 0
        for round_no in range(KILLS):
            for _ in range(rng.randint(1, 3)):
                url, n = (fast, rng.randint(1, 4)) if rng.random() < 0.6 else (slow, 3)
                r = d.submit(http_spec(url, n, 'svc%d' % rng.randint(0, 2)))
                self.assertEqual(r.status, 201, r)
            time.sleep(rng.uniform(0.0, 0.4))
            snap = self.list_runs(d)
            for rid, item in snap.items():
                if item['state'] in FINAL and rid not in final_summary:
                    final_summary[rid] = item
                    if len(final_full) < 400:  # bound the test's own work
                        final_full[rid] = self.full(d, rid)
            d.kill()
            check = integrity(d.db)
            self.assertEqual(check, ['ok'], 'round %d: %s' % (round_no, check))
            d.start()
            after = self.list_runs(d)
            for rid, item in final_summary.items():
                self.assertIn(rid, after, 'round %d: final run %d lost' % (round_no, rid))
                self.assertEqual(after[rid], item, 'round %d: run %d changed' % (round_no, rid))
            for rid, item in after.items():
                self.assertIn(item['state'], FINAL,
                              'round %d: run %d left %s' % (round_no, rid, item['state']))
                if rid not in final_summary and item['state'] == 'interrupted':
                    interrupted += 1
            self.assertEqual(d.get('/healthz').status, 200)
        for rid, run in final_full.items():
            self.assertEqual(self.full(d, rid), run, 'run %d changed' % rid)
        print('test_crash: %d kills, %d finished runs kept, %d interrupted' % (
            KILLS, len(final_summary), interrupted))
        for mark in ('AddressSanitizer', 'LeakSanitizer', 'runtime error:'):
            self.assertNotIn(mark, d.log())
        self.assertGreater(interrupted, 0, 'no kill landed while a run was active')
        self.assertGreater(len(final_summary), 0)

    def test_disk_full(self):
        self.on_tmpfs(self.disk_full)

    def test_disk_full_run_ends(self):
        self.on_tmpfs(self.run_ends_while_full)

    def test_outside_write_lock_does_not_stall_the_api(self):
        # A sqlite3 shell left in a write transaction: each write of
        # readyd waited the 5 s busy timeout on the loop, so /healthz took
        # 5 s per write while /readyz said ready. Now the write is refused
        # at once: a submit is 503 'busy', a run's end waits in memory
        # (/readyz 503) and lands once the lock is gone.
        with lib.DemoTarget(latency='1s') as demo:
            d = self.track(lib.Daemon())
            with d:
                self.assertEqual(d.run_spec(http_spec(demo.url, 1))['state'], 'passed')
                r = d.submit(http_spec(demo.url, 1))
                self.assertEqual(r.status, 201, r)
                rid = r.json['id']
                con = sqlite3.connect(d.db, timeout=0, isolation_level=None)
                con.execute('BEGIN IMMEDIATE')
                slowest = 0.0
                t0 = time.monotonic()
                r = d.submit(http_spec(demo.url, 1))
                took = time.monotonic() - t0
                self.assertEqual(r.status, 503, r)
                self.assertIn('busy', r.json['detail'])
                while d.get('/readyz').status == 200:
                    self.assertLess(time.monotonic() - t0, 20.0, 'the locked write went unnoticed')
                    t = time.monotonic()
                    self.assertEqual(d.get('/healthz').status, 200)
                    slowest = max(slowest, time.monotonic() - t)
                    time.sleep(0.05)
                for _ in range(20):
                    t = time.monotonic()
                    self.assertEqual(d.get('/healthz').status, 200)
                    slowest = max(slowest, time.monotonic() - t)
                print('test_outside_write_lock: submit refused in %.2f s, slowest /healthz '
                      '%.2f s' % (took, slowest))
                self.assertLess(took, 2.0)
                self.assertLess(slowest, 2.0)
                con.execute('ROLLBACK')
                con.close()
                self.wait_ready(d, 45.0)
                self.assertEqual(d.wait_run(rid, timeout=10.0)['state'], 'passed')

    def test_disk_full_cancel_is_recorded(self):
        self.on_tmpfs(self.cancel_while_full)

    def cancel_while_full(self, mnt):
        # A cancel goes ahead on a full disk (a load test must be
        # stoppable), so its record in the run's changes must not be the
        # write that is dropped: it lands once the disk has room.
        with lib.DemoTarget(latency='20s') as slow:
            d = self.track(lib.Daemon())
            d.db = os.path.join(mnt, 'readyd.db')
            with d:
                r = d.submit(http_spec(slow.url, 1))
                self.assertEqual(r.status, 201, r)
                rid = r.json['id']
                t0 = time.monotonic()
                while self.full(d, rid)['probes'][0]['state'] != 'running':
                    self.assertLess(time.monotonic() - t0, 15.0, 'the probe did not start')
                    time.sleep(0.05)
                filler = self.fill(mnt)
                r = d.request('POST', '/v1/runs/%d/cancel' % rid,
                              json.dumps({'reason': 'stop the drill'}))
                self.assertEqual(r.status, 202, r)
                self.wait_degraded(d, 20.0)
                os.unlink(filler)
                self.wait_ready(d, 45.0)
                run = d.wait_run(rid, timeout=10.0)
                self.assertEqual(run['state'], 'cancelled', run)
                self.assertEqual([(c['action'], c.get('reason')) for c in run['changes']],
                                 [('cancel', 'stop the drill')], run['changes'])
                d.restart()
                self.assertEqual(len(self.full(d, rid)['changes']), 1)

    def on_tmpfs(self, body):
        mnt = tempfile.mkdtemp(prefix='readyd-full-')
        try:
            r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt],
                               capture_output=True, text=True)
        except OSError as e:
            r = None
            why = str(e)
        if r is None or r.returncode != 0:
            os.rmdir(mnt)
            msg = 'cannot mount a tmpfs here (%s)' % (why if r is None else r.stderr.strip())
            # CI runs as root: there a disk-full test that did not run is a failure.
            if os.environ.get('CI'):
                self.fail(msg)
            self.skipTest(msg + ': disk-full test skipped')
        try:
            body(mnt)
        finally:
            subprocess.run(['umount', mnt], check=False)
            os.rmdir(mnt)

    @staticmethod
    def fill(mnt):
        """Fills the file system to the last byte; returns the file."""
        filler = os.path.join(mnt, 'filler')
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            for size in (65536, 4096, 512, 1):
                while True:
                    try:
                        os.write(fd, b'\0' * size)
                    except OSError:
                        break
        finally:
            os.close(fd)
        return filler

    def disk_full(self, mnt):
        with lib.DemoTarget(latency='1ms') as demo:
            self.disk_full_refuses(mnt, demo.url)

    def disk_full_refuses(self, mnt, url):
        d = self.track(lib.Daemon())
        d.db = os.path.join(mnt, 'readyd.db')
        with d:
            done = d.run_spec(http_spec(url, 1))
            self.assertEqual(done['state'], 'passed', done)
            filler = self.fill(mnt)
            refused, accepted = 0, []
            for _ in range(20):
                r = d.submit(http_spec(url, 2))
                if r.status == 507:
                    self.assertEqual(r.headers['Content-Type'], 'application/problem+json')
                    self.assertIn('full', r.json['detail'])
                    refused += 1
                elif r.status == 201:
                    # Stored as queued; what follows waits for room.
                    accepted.append(r.json['id'])
                else:
                    self.fail('submit on a full disk: %r' % r)
                self.assertEqual(d.get('/healthz').status, 200)
                self.assertEqual(d.get('/v1/runs/%d' % done['id']).json, done)
            print('test_disk_full: %d refused with 507, %d accepted' % (refused, len(accepted)))
            self.assertGreater(refused, 0, 'a full disk went unnoticed')
            r = d.get('/v1/runs?limit=10')
            self.assertEqual(r.status, 200, r)
            self.assertIsNone(d.proc.poll(), 'readyd died on a full disk')
            os.unlink(filler)
            self.wait_ready(d, 60.0)
            for rid in accepted:  # nothing accepted is lost
                self.assertEqual(d.wait_run(rid, timeout=60.0)['state'], 'passed')
            after = d.run_spec(http_spec(url, 1))
            self.assertEqual(after['state'], 'passed', after)

    def wait_ready(self, d, timeout):
        """Polls /readyz until 200; returns the seconds it took."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            r = d.get('/readyz')
            if r.status == 200:
                return time.monotonic() - t0
            time.sleep(0.2)
        self.fail('readyz still %r after %.0f s' % (d.get('/readyz'), timeout))

    def wait_degraded(self, d, timeout):
        """Polls /readyz until 503; returns the problem and the seconds it took."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            r = d.get('/readyz')
            if r.status == 503:
                self.assertEqual(r.headers['Content-Type'], 'application/problem+json')
                return r.json, time.monotonic() - t0
            self.assertEqual(r.status, 200, r)
            time.sleep(0.1)
        self.fail('readyz still 200 after %.0f s: %r' % (timeout, d.get('/readyz')))

    def run_ends_while_full(self, mnt):
        # The probe answers after 2 s: long enough to fill the disk while
        # it runs, so the run's end is the write the disk refuses.
        with lib.DemoTarget(latency='2s') as demo:
            d = self.track(lib.Daemon())
            d.db = os.path.join(mnt, 'readyd.db')
            with d:
                self.ends_while_full(d, mnt, demo.url)

    def ends_while_full(self, d, mnt, url):
        r = d.submit(http_spec(url, 1))
        self.assertEqual(r.status, 201, r)
        rid = r.json['id']
        t0 = time.monotonic()
        while self.full(d, rid)['probes'][0]['state'] != 'running':
            self.assertLess(time.monotonic() - t0, 15.0, 'the probe did not start')
            time.sleep(0.05)
        filler = self.fill(mnt)
        problem, took = self.wait_degraded(d, 20.0)
        print('test_disk_full_run_ends: readyz 503 %.1f s after the disk filled: %s' % (
            took, problem['detail']))
        self.assertIn('store: cannot write run %d' % rid, problem['detail'])
        self.assertIn('database or disk is full', problem['detail'])
        self.assertIn('1 write pending', problem['detail'])
        self.assertEqual(problem['active_runs'], 1, problem)
        # Not announced: the API shows the last stored state, and a
        # long-poll ends at its timeout, not with a final state.
        self.assertEqual(self.full(d, rid)['state'], 'running')
        r = d.get('/v1/runs/%d?wait=2s' % rid)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json['state'], 'running', r)
        self.assertIn('waits for the database', r.json['progress']['current']['waiting'])
        # The run has ended: a cancel now cannot change it, and must not
        # be acknowledged (202) nor recorded in its changes.
        r = d.request('POST', '/v1/runs/%d/cancel' % rid, json.dumps({'reason': 'late'}))
        self.assertEqual(r.status, 409, r)
        self.assertIn('already ended', r.json['detail'])
        events = self.Events(d, rid)
        self.assertNotIn('end', [name for name, _ in events.read(2.0)])
        r = d.submit(http_spec(url, 1))
        self.assertEqual(r.status, 507, r)
        self.assertIn('cannot write run %d' % rid, r.json['detail'])
        self.assertIn("Failed to store 'run %d': database or disk is full" % rid, d.log())
        said = [l for l in d.log().splitlines() if "Failed to store 'run %d'" % rid in l]
        self.assertEqual(len(said), 1, said)  # once, not at every retry
        self.assertIn('level=error', said[0])
        os.unlink(filler)
        took = self.wait_ready(d, 45.0)
        print('test_disk_full_run_ends: readyz 200 %.1f s after the disk was freed' % took)
        ends = [data for name, data in events.read(10.0) if name == 'end']
        events.close()
        self.assertEqual([e['state'] for e in ends], ['passed'])
        run = d.wait_run(rid, timeout=5.0)
        self.assertEqual(run['state'], 'passed', run)
        self.assertEqual(run['verdict'], 'PASS', run)
        self.assertEqual(run['changes'], [], run)
        con = sqlite3.connect(d.db)
        try:
            row = con.execute('SELECT state, verdict, finished_at FROM runs WHERE id = ?',
                              (rid,)).fetchone()
        finally:
            con.close()
        self.assertEqual(row[:2], ('passed', 'PASS'), row)
        self.assertIsNotNone(row[2])
        d.restart()
        after = self.full(d, rid)
        self.assertEqual(after['state'], 'passed', after)
        self.assertIsNone(after['error'], after)
        self.assertEqual(d.stop(), 0)
        self.no_sanitizer_reports(d)

    def no_sanitizer_reports(self, d):
        for mark in ('AddressSanitizer', 'LeakSanitizer', 'runtime error:'):
            self.assertNotIn(mark, d.log())

    class Events:
        """GET /v1/runs/{id}/events over a raw HTTP/1.0 socket (no chunking:
        the body is the stream, closed at its end)."""

        def __init__(self, d, rid):
            self.sock = socket.create_connection(('127.0.0.1', d.port), timeout=10.0)
            self.sock.sendall(b'GET /v1/runs/%d/events HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n'
                              % rid)
            self.buf = b''
            self.closed = False

        def read(self, seconds):
            """(name, data) of the events that arrive within seconds, or
            until the stream ends."""
            deadline = time.monotonic() + seconds
            while not self.closed and time.monotonic() < deadline:
                self.sock.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    chunk = self.sock.recv(65536)
                except (socket.timeout, TimeoutError):
                    break
                self.closed = not chunk
                self.buf += chunk
            body = self.buf.split(b'\r\n\r\n', 1)[-1].decode()
            out = []
            for block in body.split('\n\n'):
                fields = dict(l.split(': ', 1) for l in block.splitlines() if ': ' in l)
                if 'event' in fields and 'data' in fields:
                    out.append((fields['event'], json.loads(fields['data'])))
            return out

        def close(self):
            self.sock.close()

    def test_db_deleted(self):
        self.db_vanishes(lambda db: os.unlink(db), put_back=None)

    def test_db_renamed(self):
        self.db_vanishes(lambda db: os.rename(db, db + '.moved'),
                         put_back=lambda db: os.rename(db + '.moved', db))

    def changes_refused(self, d, run_id):
        """Changes written into a file that is gone would be lost at the
        next start: they were acknowledged (200, 201) and then forgotten.
        Now each is refused with 503 and the reason, and nothing changed."""
        waiver = {'expr': 'p0.status == 200', 'reason': 'r', 'approver': 'a',
                  'expires': '1h'}
        for method, path, body in (
                ('POST', '/v1/runs/%d/invalidate' % run_id, {'reason': 'gone'}),
                ('POST', '/v1/runs/%d/rejudge' % run_id, {'gates': ['p0.status == 200']}),
                ('POST', '/v1/services/svc/waivers', waiver),
                ('DELETE', '/v1/services/svc/waivers/1', None),
                ('PUT', '/v1/services/svc/specs/prod', {'probes': []})):
            r = d.request(method, path, json.dumps(body) if body else None,
                          {'Content-Type': 'application/json'})
            self.assertEqual(r.status, 503, (method, path, r))
            self.assertIn(d.db, r.json['detail'])
            self.assertEqual(r.headers['Retry-After'], '30')
        run = self.full(d, run_id)
        self.assertIsNone(run['invalidated'], run)
        self.assertEqual(run['rejudgements'], [], run)
        self.assertEqual(d.get('/v1/services/svc/waivers').json['items'], [])
        specs = d.get('/v1/services/svc/specs')
        self.assertEqual(specs.status, 200, specs)
        self.assertEqual(specs.json['items'], [], specs.json)
        # What writes nothing to the store goes ahead: the Alertmanager
        # receiver keeps notifications in memory, so a drill's page still
        # arrives while the file is gone.
        fixture = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'unit',
                               'fixtures', 'alertmanager-webhook.json')
        with open(fixture, 'rb') as f:
            r = d.request('POST', '/v1/alertmanager/webhook', f.read(),
                          {'Content-Type': 'application/json'})
        self.assertEqual(r.status, 200, r)
        got = d.get('/v1/alertmanager/notifications').json
        self.assertEqual(len(got['items']), 1, got)

    def recover_from_proc(self, d, done):
        """The runbook's recovery: the deleted file, copied out of
        /proc/PID/fd, holds every stored run (the WAL was checkpointed)."""
        fds = '/proc/%d/fd' % d.proc.pid
        open_db = [os.path.join(fds, fd) for fd in os.listdir(fds)
                   if os.readlink(os.path.join(fds, fd)) == d.db + ' (deleted)']
        self.assertEqual(len(open_db), 1, os.listdir(fds))
        copy = os.path.join(d.tmpdir, 'recovered.db')
        with open(open_db[0], 'rb') as src, open(copy, 'wb') as dst:
            dst.write(src.read())
        self.assertEqual(integrity(copy), ['ok'])
        con = sqlite3.connect(copy)
        try:
            row = con.execute('SELECT state, verdict FROM runs WHERE id = ?',
                              (done['id'],)).fetchone()
        finally:
            con.close()
        self.assertEqual(row, ('passed', 'PASS'))

    def db_vanishes(self, remove, put_back):
        with lib.DemoTarget(latency='1ms') as demo:
            d = self.track(lib.Daemon())
            with d:
                done = d.run_spec(http_spec(demo.url, 1))
                self.assertEqual(d.get('/readyz').status, 200)
                remove(d.db)
                problem, took = self.wait_degraded(d, 10.0)
                print('readyz 503 %.1f s after the database file went: %s' % (
                    took, problem['detail']))
                self.assertIn(d.db, problem['detail'])
                self.assertIn('deleted or renamed away', problem['detail'])
                r = d.submit(http_spec(demo.url, 1))
                self.assertEqual(r.status, 503, r)
                self.assertEqual(r.headers['Content-Type'], 'application/problem+json')
                self.assertIn(d.db, r.json['detail'])
                self.assertEqual(self.full(d, done['id'])['state'], 'passed')
                self.changes_refused(d, done['id'])
                self.assertEqual(d.log().count("Failed to keep database '%s'" % d.db), 1)
                if put_back is None:
                    self.recover_from_proc(d, done)
                    # Stopping now loses the open file: said at error.
                    self.assertEqual(d.stop(), 0)
                    said = [l for l in d.log().splitlines() if 'received Terminated while' in l]
                    self.assertEqual(len(said), 1, d.log()[-2000:])
                    self.assertIn('level=error', said[0])
                    self.assertIn('is lost unless the open file was copied out', said[0])
                if put_back:
                    put_back(d.db)
                    self.wait_ready(d, 10.0)
                    after = d.run_spec(http_spec(demo.url, 1))
                    self.assertEqual(after['state'], 'passed', after)
                self.assertEqual(d.stop(), 0)
                self.no_sanitizer_reports(d)


if __name__ == '__main__':
    lib.main()
