"""fleet: many CD pipelines at once against one readyd, with every probe
family, cancels and a SIGKILL restart, and the checks that every run
ended in a state consistent with what it measured.

Shared by tests/integration/test_fleet.py (about a minute of pipelines)
and bench/fleet (tens of minutes, several kills, RSS and fd sampling).

The world: a healthy demo target (scraped by a real Prometheus that
evaluates alert rules), a demo target that fails half its requests, a
third one for alert drills (the drills inject faults there, so the
healthy one stays healthy), an Alertmanager when the binary is there,
and a port nobody listens on. Each pipeline is a thread that submits a
spec drawn (seeded) from SPEC_KINDS, sometimes cancels it at a random
moment, and follows it to the end; one pipeline uses `readyctl submit
--wait` and checks its exit code against the verdict. A poller asks
/healthz every 100 ms with a 1 s timeout. A killer freezes readyd
(SIGSTOP), reads the database as the kill will leave it, SIGKILLs it,
checks `PRAGMA integrity_check`, and starts it again on the same
database. Standard library only.
"""
import contextlib
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

import lib

FINAL = set(lib.FINAL_STATES)
SANITIZER_MARKS = ('AddressSanitizer', 'LeakSanitizer', 'runtime error:')

RULES = """groups:
  - name: fleet
    interval: 1s
    rules:
      - alert: HighErrorRate
        expr: sum(rate(inference_errors_total[5s])) > 0
        for: 2s
      - alert: GPUOutOfMemory
        expr: vector(1) > 2
"""


def integrity(db):
    con = sqlite3.connect(db)
    try:
        return [r[0] for r in con.execute('PRAGMA integrity_check')]
    finally:
        con.close()


def db_snapshot(db):
    """{run_id: (state, verdict, {probe idx: (state, metrics json)})} as
    committed in the database (WAL readers see the last commit even while
    the writer is frozen mid-transaction)."""
    con = sqlite3.connect('file:%s?mode=ro' % db, uri=True, timeout=30)
    try:
        runs = {rid: (st, v, {}) for rid, st, v in
                con.execute('SELECT id, state, verdict FROM runs')}
        for rid, idx, st, metrics in con.execute(
                'SELECT run_id, idx, state, metrics FROM probe_results'):
            if rid in runs:
                runs[rid][2][idx] = (st, json.loads(metrics))
        return runs
    finally:
        con.close()


def proc_status(pid):
    """(VmRSS in KiB, open fds, RssAnon in KiB) of a live process, or
    None. RssAnon is the process's own memory: VmRSS also counts the
    pages of its binary and libraries, which the kernel may drop."""
    try:
        with open('/proc/%d/status' % pid, encoding='ascii') as f:
            kb = {x.split(':')[0]: int(x.split()[1]) for x in f
                  if x.startswith(('VmRSS:', 'RssAnon:'))}
        return kb['VmRSS'], len(os.listdir('/proc/%d/fd' % pid)), kb['RssAnon']
    except (OSError, KeyError, ValueError):
        return None


def percentile(values, q):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


# ---- the specs ----------------------------------------------------------

def head(service, i, target=None, timeout='3m'):
    text = ('apiVersion: readyd/v1\nservice: fleet-%s\nversion: "1.%d"\n'
            'environment: fleet\ntimeout: %s\n' % (service, i, timeout))
    if target:
        text += 'target:\n  url: %s\n  timeout: 5s\n' % target
    return text


def gates(*exprs):
    return 'gates:\n' + ''.join('  - %s\n' % json.dumps(e) for e in exprs)


class World:
    """The peers the specs point at."""

    def __init__(self, ok, bad, drill, prom, am, dead, ok_pid):
        self.ok, self.bad, self.drill, self.prom, self.am, self.dead = (
            ok, bad, drill, prom, am, dead)
        self.ok_pid = ok_pid


def spec_load_closed(w, i):
    return head('load-closed', i, w.ok + '/v1/predict') + """probes:
  - name: lat
    type: load
    mode: closed
    connections: 2
    duration: 1s
  - name: health
    type: http
    url: %s/healthz
""" % w.ok + gates('lat.errors == 0', 'lat.requests > 0', 'health.status == 200')


def spec_load_watched(w, i):
    # resources is the background probe: it samples the demo target
    # while the load probe runs, and the run ends after it.
    return head('load-watched', i, w.ok + '/v1/predict') + """probes:
  - name: res
    type: resources
    pid: %d
    interval: 250ms
  - name: lat
    type: load
    mode: closed
    connections: 2
    duration: 1500ms
""" % w.ok_pid + gates('lat.errors == 0', 'res.samples >= 2', 'res.rss_mb_max > 0')


def spec_load_rate(w, i):
    return head('load-rate', i, w.ok + '/v1/predict') + """probes:
  - name: lat
    type: load
    mode: rate
    rate: 40
    connections: 2
    duration: 2s
""" + gates('lat.error_rate < 0.05', 'lat.p50_ms < 2000')


def spec_load_fail(w, i):
    return head('load-bad', i, w.bad + '/v1/predict') + """probes:
  - name: lat
    type: load
    mode: closed
    connections: 2
    duration: 1s
""" + gates('lat.error_rate < 0.01')


def spec_capacity(w, i):
    return head('capacity', i, w.ok + '/v1/predict') + """probes:
  - name: cap
    type: capacity
    slo: "error_rate < 0.05"
    min_rate: 10
    max_rate: 40
    step: 1s
    connections: 4
""" + gates('cap.rate >= 10')


def spec_http_ok(w, i):
    text = head('http', i) + """probes:
  - name: health
    type: http
    url: %s/healthz
""" % w.ok
    exprs = ['health.status == 200', 'health.ok == 1']
    if w.am:
        text += '  - name: am\n    type: http\n    url: %s/-/healthy\n' % w.am
        exprs.append('am.ok == 1')
    return text + gates(*exprs)


def spec_http_dead(w, i):
    return head('http-dead', i) + """probes:
  - name: health
    type: http
    url: %s/healthz
""" % w.dead + gates('health.status == 200')


def spec_scrape(w, i):
    return head('scrape', i) + """probes:
  - name: expo
    type: prometheus-scrape
    url: %s/metrics
    require: ["inference_requests_total", "inference_errors_total"]
""" % w.ok + gates('expo.missing == 0')


def spec_scrape_missing(w, i):
    return head('scrape-missing', i) + """probes:
  - name: expo
    type: prometheus-scrape
    url: %s/metrics
    require: ["inference_requests_total", "fleet_never_exported_total"]
""" % w.ok + gates('expo.missing == 0')


def spec_rules_query(w, i):
    return head('prom', i) + """probes:
  - name: rules
    type: prometheus-rules
    prometheus: %s
    require: ["HighErrorRate", "GPUOutOfMemory"]
  - name: up
    type: prometheus-query
    prometheus: %s
    query: 'count(up{job="demo"} == 1)'
""" % (w.prom, w.prom) + gates('rules.missing == 0', 'up.value >= 1')


def spec_rules_missing(w, i):
    return head('prom-missing', i) + """probes:
  - name: rules
    type: prometheus-rules
    prometheus: %s
    require: ["HighErrorRate", "DiskFull"]
""" % w.prom + gates('rules.missing == 0')


def spec_query_empty(w, i):
    return head('query-empty', i) + """probes:
  - name: q
    type: prometheus-query
    prometheus: %s
    query: 'up{job="fleet-nobody"}'
""" % w.prom + gates('q.value >= 1')


def drill(w, alert, within):
    return """  - name: drill
    type: alert-drill
    prometheus: %s
    alert: %s
    trigger: { method: POST, url: "%s/admin/fault?errors=0.5" }
    clear: { method: POST, url: "%s/admin/fault?errors=0" }
    within: %s
    poll_interval: 250ms
""" % (w.prom, alert, w.drill, w.drill, within)


def spec_drill_never(w, i):
    # The alert can never fire: the probe fails after `within`, no gates.
    return head('drill-never', i) + 'probes:\n' + drill(w, 'GPUOutOfMemory', '2s')


def spec_drill_fire(w, i):
    # Fires unless another drill's clear lands first: any consistent end.
    return head('drill-fire', i) + 'probes:\n' + drill(w, 'HighErrorRate', '20s') + gates(
        'drill.seconds_to_fire < 20')


def spec_deadline(w, i):
    # The run's deadline ends the second drill halfway: ERROR.
    return (head('deadline', i, timeout='3s') + 'probes:\n' + drill(w, 'GPUOutOfMemory', '2s')
            + drill(w, 'GPUOutOfMemory', '2s').replace('name: drill', 'name: drill2'))


# name: (builder, expected verdict or None for "any, if consistent", weight)
SPEC_KINDS = {
    'load-closed': (spec_load_closed, 'PASS', 3),
    'load-rate': (spec_load_rate, 'PASS', 2),
    'load-watched': (spec_load_watched, 'PASS', 1),
    'load-fail': (spec_load_fail, 'FAIL', 2),
    # PASS on an idle machine; a starved client (ASan, a busy host) may not
    # keep even 10 req/s within the 5 ms mean lag, and says so: any end.
    'capacity': (spec_capacity, None, 1),
    'http-ok': (spec_http_ok, 'PASS', 4),
    'http-dead': (spec_http_dead, 'ERROR', 2),
    'scrape': (spec_scrape, 'PASS', 2),
    'scrape-missing': (spec_scrape_missing, 'FAIL', 2),
    'rules-query': (spec_rules_query, 'PASS', 3),
    'rules-missing': (spec_rules_missing, 'FAIL', 1),
    'query-empty': (spec_query_empty, 'ERROR', 1),
    'drill-never': (spec_drill_never, 'FAIL', 1),
    'drill-fire': (spec_drill_fire, None, 1),
    'deadline': (spec_deadline, 'ERROR', 1),
}

EXIT_OF_VERDICT = {'PASS': 0, 'FAIL': 1, 'ERROR': 2}


# ---- the run's consistency ---------------------------------------------

OPS = {'<': lambda a, b: a < b, '<=': lambda a, b: a <= b, '>': lambda a, b: a > b,
       '>=': lambda a, b: a >= b, '==': lambda a, b: a == b, '!=': lambda a, b: a != b}


def gate_problems(run):
    """Each gate's outcome against its own value and threshold, and its
    value against the probe's published metric."""
    out = []
    probes = {p['name']: p for p in run.get('probes') or []}
    for g in run.get('gates') or []:
        probe, _, metric = g['expr'].split(' ', 1)[0].partition('.')
        val, thr, op, outcome = g.get('value'), g.get('threshold'), g.get('op'), g['outcome']
        if outcome in ('pass', 'fail') and val is not None and thr is not None and op in OPS:
            holds = OPS[op](val, thr)
            if holds != (outcome == 'pass'):
                out.append('gate %r: %s but %s %s %s is %s' % (g['expr'], outcome, val, op,
                                                              thr, holds))
        published = (probes.get(probe) or {}).get('metrics', {}).get(metric)
        if outcome in ('pass', 'fail') and published is not None and val != published:
            out.append('gate %r judged %r, probe published %r' % (g['expr'], val, published))
    return out


def run_problems(run):
    """Why this final run is inconsistent with what it measured ([] if it
    is consistent)."""
    st, v = run['state'], run.get('verdict')
    probes = run.get('probes') or []
    pstates = [p['state'] for p in probes]
    blocking = [g['outcome'] for g in run.get('gates') or [] if not g.get('advisory')]
    out = gate_problems(run)
    if st not in FINAL:
        return ['state %s is not final' % st]
    for p in probes:
        det = p.get('details') or {}
        if (p['type'] == 'alert-drill' and det.get('trigger_status') and
                p['state'] != 'interrupted' and det.get('clear_status') != 200):
            out.append('drill %s %s without its clear: %s' % (p['name'], p['state'], det))
    if any(s in ('queued', 'running') for s in pstates):
        out.append('final run with probes %s' % pstates)
    if st == 'passed':
        if v != 'PASS' or any(s != 'passed' for s in pstates):
            out.append('passed with verdict %s, probes %s' % (v, pstates))
        if any(o not in ('pass', 'no-baseline', 'waived') for o in blocking):
            out.append('passed with gates %s' % blocking)
    elif st == 'failed':
        if v != 'FAIL' or 'error' in pstates or 'error' in blocking:
            out.append('failed with verdict %s, probes %s, gates %s' % (v, pstates, blocking))
        if 'failed' not in pstates and 'fail' not in blocking:
            out.append('failed, yet no probe failed and no gate failed: %s %s'
                       % (pstates, blocking))
    elif st == 'error':
        if v != 'ERROR':
            out.append('error with verdict %s' % v)
        if 'error' not in pstates and 'error' not in blocking and not run.get('error'):
            out.append('error, yet no probe or gate errored: %s %s' % (pstates, blocking))
    return out


# ---- the fleet ----------------------------------------------------------

class SubmitLock:
    """Many pipelines may POST at once (shared); the killer waits until
    none is POSTing and keeps new POSTs out while it kills (exclusive), so
    every submit either happened before the kill or after the restart."""

    def __init__(self):
        self.cv = threading.Condition()
        self.readers = 0
        self.writer = False

    def shared(self):
        lock = self

        class Ctx:
            def __enter__(self):
                with lock.cv:
                    lock.cv.wait_for(lambda: not lock.writer)
                    lock.readers += 1

            def __exit__(self, *exc):
                with lock.cv:
                    lock.readers -= 1
                    lock.cv.notify_all()
        return Ctx()

    def acquire(self):
        with self.cv:
            self.writer = True
            self.cv.wait_for(lambda: self.readers == 0)

    def release(self):
        with self.cv:
            self.writer = False
            self.cv.notify_all()


class Record:
    """What a pipeline did with one run."""

    def __init__(self, kind, run_id, epoch, via='api'):
        self.kind, self.id, self.epoch, self.via = kind, run_id, epoch, via
        self.cancel_status = None
        self.cancel_epoch = None
        self.exit_code = None
        self.ctl_final = False
        self.end_epoch = None
        self.final = None


class Fleet:
    """Runs pipelines against a started Daemon for `seconds`, kills it at
    each of `kill_at` (seconds from the start), then lets every pipeline
    finish its last run. Results are attributes for the caller to check
    (check() lists every inconsistency)."""

    def __init__(self, daemon, world, seed, seconds, pipelines=4, kill_at=(),
                 cancel_p=0.15, readyctl=None, drain_s=120.0, sample=False, log=print):
        self.d, self.w, self.seed = daemon, world, seed
        self.seconds, self.n_pipelines, self.kill_at = seconds, pipelines, sorted(kill_at)
        self.cancel_p, self.readyctl, self.drain_s = cancel_p, readyctl, drain_s
        self.sample, self.log = sample, log
        self.lock = SubmitLock()
        self.epoch = 0  # kills so far
        self.window = 0  # odd while a deliberate restart is under way
        self.records, self.errors = [], []
        self.health_ms, self.health_failures = [], []
        self.health_at = []  # (seconds from the start, ms)
        self.snapshots = []  # (epoch before the kill, db snapshot)
        self.samples = []  # (t, rss KiB, fds)
        self.anon = []  # RssAnon KiB, beside each sample
        self.loads = []  # the host's 1-minute load average, every second
        self.kill_log = []
        self.reads = 0
        self.replays = 0
        self.mu = threading.Lock()
        self.stop = threading.Event()
        self.dead = threading.Event()  # readyd stopped answering: give up early
        self.t0 = None

    # -- HTTP that survives the restart window --
    def get_run(self, run_id, wait='5s'):
        deadline = time.monotonic() + self.drain_s + self.seconds
        while time.monotonic() < deadline and not self.dead.is_set():
            try:
                r = self.d.get('/v1/runs/%d?wait=%s' % (run_id, wait), timeout=15.0)
                if r.status == 200:
                    return r.json
                self.note('GET run %d: %r' % (run_id, r))
                return None
            except OSError:
                time.sleep(0.3)  # killed and restarting: ask again
        return None

    def note(self, msg):
        with self.mu:
            self.errors.append(msg)

    def follow(self, rec):
        deadline = time.monotonic() + self.drain_s + self.seconds
        while time.monotonic() < deadline and not self.dead.is_set():
            run = self.get_run(rec.id)
            if run is None:
                break
            if run['state'] in FINAL:
                rec.final, rec.end_epoch = run, self.epoch
                return
        self.note('run %d (%s) never became final' % (rec.id, rec.kind))

    # -- a pipeline --
    def pipeline(self, k):
        rng = random.Random(self.seed * 1000 + k)
        kinds = sorted(SPEC_KINDS)
        weights = [SPEC_KINDS[n][2] for n in kinds]
        first = kinds[k::self.n_pipelines]  # together the pipelines start with every kind
        n = 0
        while not self.stop.is_set() and time.monotonic() - self.t0 < self.seconds:
            kind = first[n] if n < len(first) else rng.choices(kinds, weights)[0]
            n += 1
            text = SPEC_KINDS[kind][0](self.w, k * 10000 + n)
            key = 'fleet-%d-%d-%d' % (self.seed, k, n) if rng.random() < 0.2 else None
            with self.lock.shared():
                epoch = self.epoch
                try:
                    r = self.d.submit(text, headers={'Idempotency-Key': key} if key else None)
                except OSError as e:
                    self.note('pipeline %d: submit failed: %r' % (k, e))
                    continue
            if r.status != 201:
                self.note('pipeline %d: submit %s: %r' % (k, kind, r))
                continue
            rec = Record(kind, r.json['id'], epoch)
            with self.mu:
                self.records.append(rec)
            if rng.random() < self.cancel_p:
                time.sleep(rng.uniform(0.0, 2.5))
                with self.lock.shared():
                    rec.cancel_epoch = self.epoch
                    try:
                        rec.cancel_status = self.d.request(
                            'POST', '/v1/runs/%d/cancel' % rec.id, timeout=15.0).status
                    except OSError as e:
                        self.note('cancel %d: %r' % (rec.id, e))
            self.follow(rec)
            if key:
                self.replay(rec, text, key)
            time.sleep(rng.uniform(0.0, 0.3))

    def replay(self, rec, text, key):
        """A pipeline that did not see the answer submits again with the
        same Idempotency-Key: the same run, not a second one, also after a
        restart."""
        with self.lock.shared():
            try:
                r = self.d.submit(text, headers={'Idempotency-Key': key})
            except OSError as e:
                self.note('replay of run %d: %r' % (rec.id, e))
                return
        if r.status != 200 or r.json.get('id') != rec.id:
            self.note('replay of run %d with its Idempotency-Key: %r' % (rec.id, r))
        self.replays += 1

    def ctl_pipeline(self):
        """`readyctl submit --wait` as a pipeline; the exit code must be
        the verdict's."""
        rng = random.Random(self.seed * 1000 + 999)
        kinds = [k for k in sorted(SPEC_KINDS) if SPEC_KINDS[k][1]]
        tmp = tempfile.mkdtemp(prefix='readyd-fleet-ctl-')
        try:
            self.ctl_loop(rng, kinds, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def readyctl_wait(self, path):
        """`readyctl submit --wait`: the finished process (returncode,
        stdout, stderr), or None when it took too long or readyd hung."""
        argv = [self.readyctl, '--url', self.d.url, '--json', 'submit', '--wait', '--timeout',
                '3m', path]
        with tempfile.TemporaryFile('w+') as out, tempfile.TemporaryFile('w+') as err:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    text=True)
            deadline = time.monotonic() + 240
            while proc.poll() is None:
                if self.dead.is_set() or time.monotonic() > deadline:
                    proc.kill()
                    proc.wait()
                    return None
                time.sleep(0.2)
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(argv, proc.returncode, out.read(), err.read())

    def ctl_loop(self, rng, kinds, tmp):
        n = 0
        while not self.stop.is_set() and time.monotonic() - self.t0 < self.seconds:
            kind = rng.choice(kinds)
            n += 1
            path = os.path.join(tmp, 'spec-%d.yaml' % n)
            with open(path, 'w', encoding='utf-8') as f:
                f.write(SPEC_KINDS[kind][0](self.w, 90000 + n))
            epoch = self.epoch
            p = self.readyctl_wait(path)
            if p is None:
                self.note('readyctl submit --wait %s did not return' % kind)
                continue
            try:
                run_id = json.loads(p.stdout)['id']
            except (ValueError, KeyError, TypeError):
                m = re.search(r'Run (\d+) continues', p.stderr)
                run_id = int(m.group(1)) if m else None
            if run_id is None:
                if self.epoch == epoch:
                    self.note('readyctl %s: exit %d, no run: %s %s'
                              % (kind, p.returncode, p.stdout[-300:], p.stderr[-300:]))
                continue
            rec = Record(kind, run_id, epoch, via='readyctl')
            rec.exit_code = p.returncode
            rec.ctl_final = bool(p.stdout.strip())  # it followed the run to its end
            with self.mu:
                self.records.append(rec)
            self.follow(rec)
            time.sleep(rng.uniform(0.0, 0.3))

    # -- the poller, the sampler and the killer --
    def poller(self):
        silent = 0
        while not self.stop.is_set():
            w0 = self.window
            t = time.monotonic()
            try:
                r = self.d.get('/healthz', timeout=1.0)
                ok = r.status == 200
                why = 'status %d' % r.status
            except OSError as e:
                ok, why = False, repr(e)
            dt = time.monotonic() - t
            if w0 % 2 == 0 and self.window == w0:  # not the deliberate restart
                self.health_ms.append(dt * 1000)
                self.health_at.append((round(t - self.t0, 1), round(dt * 1000, 1)))
                if not ok:
                    self.health_failures.append('%.1fs: %s' % (t - self.t0, why))
                silent = 0 if ok else silent + 1
                if silent >= 10:  # ten seconds and more without an answer: a hang
                    self.note('readyd stopped answering /healthz at %.1fs' % (t - self.t0))
                    self.dead.set()
                    self.stop.set()
            self.stop.wait(0.1)

    READS = ('/metrics', '/v1/gates', '/v1/runs?limit=50', '/v1/services', '/readyz',
             '/v1/services/fleet-load-closed/history?limit=20',
             '/v1/services/fleet-load-rate/trends?metric=lat.p99_ms&environment=fleet',
             '/v1/services/fleet-capacity/trends?metric=cap.rate&step=10s')
    FORMATS = ('json', 'markdown', 'html', 'junit')

    def reader(self):
        """A dashboard beside the pipelines: the other read endpoints and
        the reports of runs in every state, in every format, each asked
        while the fleet runs; anything but 200 is a finding."""
        rng = random.Random(self.seed * 1000 + 500)
        while not self.stop.is_set():
            with self.mu:
                ids = [r.id for r in self.records]
            if ids and rng.random() < 0.5:
                path = '/v1/runs/%d/report?format=%s' % (rng.choice(ids),
                                                         rng.choice(self.FORMATS))
            else:
                path = rng.choice(self.READS)
            w0 = self.window
            try:
                r = self.d.get(path, timeout=10.0)
                why = None if r.status == 200 else 'HTTP %d %r' % (r.status, r.body[:200])
            except OSError as e:
                why = repr(e)
            if why and w0 % 2 == 0 and self.window == w0:
                self.note('GET %s: %s' % (path, why))
            self.reads += 1
            self.stop.wait(0.2)

    def sampler(self):
        while not self.stop.is_set():
            proc = self.d.proc
            s = proc_status(proc.pid) if proc and proc.poll() is None else None
            if s:
                self.samples.append((round(time.monotonic() - self.t0, 1), s[0], s[1]))
                self.anon.append(s[2])
            self.loads.append(os.getloadavg()[0])
            self.stop.wait(1.0)

    def kill_once(self):
        self.lock.acquire()
        try:
            self.window += 1
            pid = self.d.proc.pid
            os.kill(pid, signal.SIGSTOP)
            snap = db_snapshot(self.d.db)
            self.d.kill()  # SIGKILL, reaped
            check = integrity(self.d.db)
            if check != ['ok']:
                self.note('integrity_check after kill %d: %s' % (self.epoch + 1, check))
            self.snapshots.append((self.epoch, snap))
            active = sorted(r for r, (st, _, _) in snap.items() if st not in FINAL)
            t = time.monotonic()
            self.epoch += 1
            self.restart_same_port()
            self.kill_log.append({'at_s': round(t - self.t0, 1), 'active': len(active),
                                  'restart_ms': round((time.monotonic() - t) * 1000)})
            self.log('fleet: kill %d at %.1fs with %d runs active (%s); restarted in %d ms'
                     % (self.epoch, t - self.t0, len(active), active[:12],
                        self.kill_log[-1]['restart_ms']))
        finally:
            self.window += 1
            self.lock.release()

    def restart_same_port(self):
        """Starts readyd again where it listened, as a supervisor would, so
        clients that retry (readyctl) find it again; another port if that
        one was taken meanwhile."""
        self.d.listen = '127.0.0.1:%d' % self.d.port
        try:
            self.d.start()
        except RuntimeError:
            self.note('restart on port %d failed; on a new port' % self.d.port)
            self.d.listen = '127.0.0.1:0'
            self.d.start()
        finally:
            self.d.listen = '127.0.0.1:0'

    def killer(self):
        for at in self.kill_at:
            if self.stop.wait(max(0.0, at - (time.monotonic() - self.t0))):
                return
            self.kill_once()

    def run(self):
        self.t0 = time.monotonic()
        threads = [threading.Thread(target=self.pipeline, args=(k,), daemon=True)
                   for k in range(self.n_pipelines)]
        if self.readyctl:
            threads.append(threading.Thread(target=self.ctl_pipeline, daemon=True))
        helpers = [threading.Thread(target=self.poller, daemon=True),
                   threading.Thread(target=self.reader, daemon=True),
                   threading.Thread(target=self.killer, daemon=True)]
        if self.sample:
            helpers.append(threading.Thread(target=self.sampler, daemon=True))
        for t in threads + helpers:
            t.start()
        limit = time.monotonic() + self.seconds + self.drain_s + 60
        for t in threads:
            t.join(max(1.0, limit - time.monotonic()))
            if t.is_alive():
                self.note('a pipeline did not finish within the drain time')
        self.stop.set()
        for t in helpers:
            t.join(30)
        self.elapsed = time.monotonic() - self.t0

    # -- the verdict on the fleet --
    def all_runs(self):
        runs, cursor = {}, None
        for _ in range(1000):
            path = '/v1/runs?limit=1000' + ('&cursor=' + cursor if cursor else '')
            r = self.d.get(path, timeout=30.0)
            if r.status != 200:
                raise AssertionError('list runs: %r' % r)
            for item in r.json['items']:
                runs[item['id']] = item
            cursor = r.json.get('next_cursor')
            if not cursor:
                return runs
        raise AssertionError('run list did not end')

    def check(self):
        """Every inconsistency found, as sentences ([] when all is well),
        and counts by final state."""
        probs = list(self.errors)
        if self.dead.is_set():
            return probs + ['healthz: %s' % f for f in self.health_failures[:10]], {}, {}
        listed = self.all_runs()
        full = {}
        for rid in sorted(listed):
            r = self.d.get('/v1/runs/%d' % rid, timeout=30.0)
            full[rid] = r.json if r.status == 200 else None
            if full[rid] is None:
                probs.append('GET run %d: %r' % (rid, r))
        for rid, run in full.items():
            if run is None:
                continue
            for p in run_problems(run):
                probs.append('run %d: %s' % (rid, p))
            probs += self.report_problems(run)
        probs += self.check_records(full)
        probs += self.check_kills(full)
        probs += self.metrics_problems(full)
        probs += ['healthz: %s' % f for f in self.health_failures[:10]]
        worst = max(self.health_ms or [0])
        if worst >= 1000:
            probs.append('healthz took %.0f ms' % worst)
        counts = {}
        for run in full.values():
            if run:
                counts[run['state']] = counts.get(run['state'], 0) + 1
        return probs, counts, full

    def metrics_problems(self, full):
        """/metrics counts the runs by state as the API lists them."""
        r = self.d.get('/metrics', timeout=30.0)
        if r.status != 200:
            return ['/metrics: %r' % r]
        got = {}
        for line in r.body.decode().splitlines():
            m = re.match(r'readyd_runs_total\{state="(\w+)"\} (\d+)$', line)
            if m:
                got[m.group(1)] = int(m.group(2))
            if line.startswith('readyd_runs_active ') and line.split()[1] != '0':
                return ['/metrics says %s runs active at the end' % line.split()[1]]
        want = {}
        for run in full.values():
            if run:
                want[run['state']] = want.get(run['state'], 0) + 1
        if {k: v for k, v in got.items() if v} != want:
            return ['/metrics counts %s, the API lists %s' % (got, want)]
        return []

    def report_problems(self, run):
        """Every report format of a final run renders, and the JUnit one
        shows the verdict (lib.junit_counts_agree)."""
        out = []
        for fmt in self.FORMATS:
            r = self.d.get('/v1/runs/%d/report?format=%s' % (run['id'], fmt), timeout=30.0)
            if r.status != 200 or not r.body:
                out.append('run %d: %s report: %r' % (run['id'], fmt, r))
            elif fmt == 'junit':
                root = ET.fromstring(r.body)
                suite = root if root.tag == 'testsuite' else root.find('testsuite')
                why = lib.junit_counts_agree(run, suite) if suite is not None else 'no suite'
                if why:
                    out.append('run %d: JUnit shows %s' % (run['id'], why))
        return out

    def check_records(self, full):
        probs = []
        for rec in self.records:
            run = full.get(rec.id)
            if run is None:
                probs.append('run %d (%s) missing from the list' % (rec.id, rec.kind))
                continue
            st, v = run['state'], run.get('verdict')
            killed_during = self.epoch > rec.epoch and rec.id in self.alive_at_kill()
            if rec.epoch == self.epoch and st == 'interrupted':
                probs.append('run %d submitted after the last restart was interrupted' % rec.id)
            if rec.cancel_status == 202:
                # Cancelled, or interrupted when a kill landed while it wound down.
                want = ('cancelled', 'interrupted') if killed_during else ('cancelled',)
                if st not in want:
                    probs.append('run %d: cancel answered 202, run ended %s' % (rec.id, st))
            elif rec.cancel_status not in (None, 202, 409) and not killed_during:
                probs.append('run %d: cancel answered %s' % (rec.id, rec.cancel_status))
            expect = SPEC_KINDS[rec.kind][1]
            if expect and rec.cancel_status is None and not killed_during and v != expect:
                probs.append('run %d (%s): verdict %s, expected %s; probes %s; gates %s' % (
                    rec.id, rec.kind, v, expect,
                    [(p['name'], p['state'], p.get('error'), p.get('metrics'))
                     for p in run['probes']],
                    [(g['expr'], g['outcome'], g.get('reason')) for g in run.get('gates', [])]))
            if rec.via == 'readyctl':
                # 2 also for cancelled and interrupted runs (no verdict).
                want = EXIT_OF_VERDICT.get(v, 2)
                if not rec.ctl_final and not killed_during:
                    probs.append('readyctl run %d: exit %s without the final run'
                                 % (rec.id, rec.exit_code))
                elif rec.ctl_final and rec.exit_code != want:
                    probs.append('readyctl run %d: exit %s, verdict %s (state %s)'
                                 % (rec.id, rec.exit_code, v, st))
        return probs

    def alive_at_kill(self):
        return {rid for _, snap in self.snapshots for rid, s in snap.items()
                if s[0] not in FINAL}

    def check_kills(self, full):
        probs = []
        for epoch, snap in self.snapshots:
            for rid, (st, v, probes) in snap.items():
                run = full.get(rid)
                if run is None:
                    probs.append('kill %d: run %d vanished' % (epoch + 1, rid))
                    continue
                if st in FINAL:
                    if (run['state'], run.get('verdict')) != (st, v):
                        probs.append('kill %d: final run %d was %s/%s, now %s/%s' % (
                            epoch + 1, rid, st, v, run['state'], run.get('verdict')))
                    continue
                if run['state'] != 'interrupted':
                    probs.append('kill %d: run %d was %s at the kill, now %s' % (
                        epoch + 1, rid, st, run['state']))
                now = {i: p for i, p in enumerate(run['probes'])}
                for idx, (pst, metrics) in probes.items():
                    if pst in FINAL and pst != 'interrupted':
                        p = now.get(idx) or {}
                        if (p.get('state'), p.get('metrics')) != (pst, metrics):
                            probs.append('kill %d: run %d probe %d was %s %s, now %s %s' % (
                                epoch + 1, rid, idx, pst, metrics, p.get('state'),
                                p.get('metrics')))
        return probs

    def summary(self):
        rss = [s[1] for s in self.samples]
        fds = [s[2] for s in self.samples]
        return {
            'records': len(self.records), 'reads': self.reads,
            'replays': self.replays, 'kills': len(self.kill_log), 'kill_log': self.kill_log,
            'healthz_samples': len(self.health_ms),
            'healthz_max_ms': round(max(self.health_ms or [0]), 1),
            'healthz_p99_ms': round(percentile(self.health_ms, 0.99) or 0, 1),
            'healthz_p50_ms': round(percentile(self.health_ms, 0.50) or 0, 1),
            'healthz_worst': sorted(self.health_at, key=lambda x: -x[1])[:5],
            'rss_kb': series(rss), 'fds': series(fds), 'rss_anon_kb': series(self.anon),
            'loadavg_mean': round(sum(self.loads) / len(self.loads), 2) if self.loads else None,
            'loadavg_max': round(max(self.loads), 2) if self.loads else None,
        }


def series(values):
    """start / peak / end, plus the first and last tenth's medians (to say
    whether a quantity grows rather than jitters)."""
    if not values:
        return None
    tenth = max(1, len(values) // 10)
    return {'start': values[0], 'peak': max(values), 'end': values[-1],
            'first_tenth_median': percentile(values[:tenth], 0.5),
            'last_tenth_median': percentile(values[-tenth:], 0.5), 'samples': len(values)}


class Stack:
    """The world started: three demo targets, Prometheus scraping the
    healthy one and the drill one, Alertmanager when installed, steady
    traffic on the drill target, and a dead port.

        with Stack() as w: ...  (w is a World)
    """

    def __init__(self, alertmanager=True):
        self.alertmanager = alertmanager
        self.procs = []

    def __enter__(self):
        self.stack = contextlib.ExitStack()
        try:
            ok = self.stack.enter_context(lib.DemoTarget(latency='2ms'))
            bad = self.stack.enter_context(lib.DemoTarget(errors='0.5'))
            drill = self.stack.enter_context(lib.DemoTarget())
            prom = self.stack.enter_context(
                lib.Prometheus(rules=RULES, scrape_targets=[ok.url, drill.url]))
            am = None
            if self.alertmanager and shutil.which(lib.Alertmanager.binary):
                am = self.stack.enter_context(lib.Alertmanager())
            self.procs = [p for p in (ok, bad, drill, prom, am) if p]
            self.stack.enter_context(lib.Traffic(drill.url, interval=0.05))
            prom.wait_for(lambda: prom.query('count(up == 1)') == 2.0, timeout=60,
                          what='demo targets up')
            prom.wait_for(prom.rules_evaluated, timeout=60, what='rules evaluated')
        except BaseException:
            self.stack.close()
            raise
        return World(ok.url, bad.url, drill.url, prom.url, am.url if am else None,
                     'http://127.0.0.1:%d' % lib.free_port(), ok.proc.pid)

    def __exit__(self, *exc):
        self.stack.close()
