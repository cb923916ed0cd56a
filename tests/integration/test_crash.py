"""Crash safety (issue 7): readyd killed with SIGKILL at random moments,
over and over, on the same database, and a full disk.

test_kill_loop: each round submits runs (fast http probes against a
quick demo target, slow ones against a 150 ms target so kills land
mid-probe and mid-write), waits a random 0..0.4 s (seeded PRNG; the seed
is printed and READYD_CRASH_SEED replays it), takes a snapshot of the
runs, SIGKILLs readyd, checks `PRAGMA integrity_check` with the daemon
stopped, restarts it and asserts: every run that was final in a snapshot
is still there, unchanged (its full JSON is compared at the end); no run
is left queued or running (those become `interrupted`); the API answers.
READYD_CRASH_KILLS sets the number of rounds (default 100).

test_disk_full: readyd's database on a 1 MiB tmpfs, filled up; runs must
fail with a clear error (507 at submit, or a stored error) and reads keep
answering. Skipped when mounting is not permitted.
"""
import os
import random
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
        mnt = tempfile.mkdtemp(prefix='readyd-full-')
        try:
            r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt],
                               capture_output=True, text=True)
        except OSError as e:
            r = None
            why = str(e)
        if r is None or r.returncode != 0:
            os.rmdir(mnt)
            self.skipTest('cannot mount a tmpfs here (%s): disk-full test skipped' % (
                why if r is None else r.stderr.strip()))
        try:
            with lib.DemoTarget(latency='1ms') as demo:
                self.disk_full(mnt, demo.url)
        finally:
            subprocess.run(['umount', mnt], check=False)
            os.rmdir(mnt)

    def disk_full(self, mnt, url):
        d = self.track(lib.Daemon())
        d.db = os.path.join(mnt, 'readyd.db')
        with d:
            done = d.run_spec(http_spec(url, 1))
            self.assertEqual(done['state'], 'passed', done)
            filler = os.path.join(mnt, 'filler')
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
            try:  # fill the file system to the last block
                for size in (65536, 4096, 512, 1):
                    while True:
                        try:
                            os.write(fd, b'\0' * size)
                        except OSError:
                            break
            finally:
                os.close(fd)
            refused = stored = 0
            for _ in range(20):
                r = d.submit(http_spec(url, 2))
                if r.status == 507:
                    self.assertEqual(r.headers['Content-Type'], 'application/problem+json')
                    self.assertTrue(r.json['detail'])
                    refused += 1
                elif r.status == 201:
                    run = d.wait_run(r.json['id'], timeout=30.0)
                    if run['state'] != 'passed':
                        self.assertTrue(run.get('error'), run)
                        stored += 1
                else:
                    self.fail('submit on a full disk: %r' % r)
                self.assertEqual(d.get('/healthz').status, 200)
                self.assertEqual(d.get('/v1/runs/%d' % done['id']).json, done)
            print('test_disk_full: %d refused with 507, %d stored as failed' % (refused, stored))
            self.assertGreater(refused + stored, 0, 'a full disk went unnoticed')
            r = d.get('/v1/runs?limit=10')
            self.assertEqual(r.status, 200, r)
            self.assertIsNone(d.proc.poll(), 'readyd died on a full disk')
            os.unlink(filler)
            after = d.run_spec(http_spec(url, 1))
            self.assertEqual(after['state'], 'passed', after)


if __name__ == '__main__':
    lib.main()
