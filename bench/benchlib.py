"""Helpers the bench/ scripts share: start readyd and the demo target on
127.0.0.1 (ephemeral ports, temp databases), a private nginx that serves
given files with a given Content-Type, wrk runs parsed into numbers, and
/proc readings (open fds, RSS). Not a test: bench/ scripts import it.

Every bench prints one machine-readable line per result,
`RESULT {"bench": ..., ...}` (one JSON object), which bench/run-all
collects. Nothing here leaves loopback, and every child is bounded in
time: wrk by -d, readyd and nginx by the caller's `with` block.
"""
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import nginx  # noqa: E402
from nginx import free_port  # noqa: E402

ROOT = os.path.dirname(HERE)


def build_path(build, *parts):
    return os.path.join(build, *parts)


def result(bench, **fields):
    """Prints the machine-readable summary line bench/run-all parses."""
    fields = dict(bench=bench, **fields)
    print('RESULT ' + json.dumps(fields, sort_keys=True), flush=True)


def wait_port_file(path, proc, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path, encoding='ascii') as f:
                text = f.read().strip()
            if text:
                return int(text)
        except OSError:
            pass
        if proc.poll() is not None:
            raise RuntimeError('process exited with %s before it was ready' % proc.returncode)
        time.sleep(0.002)
    raise TimeoutError('%s did not appear within %ss' % (path, timeout))


class Readyd:
    """readyd on 127.0.0.1:0 with its database in tmp (kept across
    start/stop, removed by the caller). Log level warn: a benchmark should
    not measure debug logging."""

    def __init__(self, binary, tmp, config=None):
        self.binary = binary
        self.tmp = tmp
        self.db = os.path.join(tmp, 'readyd.db')
        self.config = config
        self.proc = None
        self.log_path = os.path.join(tmp, 'readyd.log')

    def start(self):
        port_file = os.path.join(self.tmp, 'readyd.port')
        if os.path.exists(port_file):
            os.unlink(port_file)
        argv = [self.binary, '--listen', '127.0.0.1:0', '--db', self.db,
                '--port-file', port_file, '--log-level', 'warn']
        if self.config is not None:
            cfg = os.path.join(self.tmp, 'readyd.yaml')
            with open(cfg, 'w', encoding='utf-8') as f:
                f.write(self.config)
            argv += ['--config', cfg]
        log = open(self.log_path, 'ab')
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        self.port = wait_port_file(port_file, self.proc)
        self.startup_s = time.perf_counter() - t0
        self.pid = self.proc.pid
        self.url = 'http://127.0.0.1:%d' % self.port
        return self

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.terminate()
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class DemoTarget:
    """tests/demo-target on 127.0.0.1:0 with the given flags."""

    def __init__(self, binary, tmp, *flags, nice=0):
        self.argv = [binary, '--listen', '127.0.0.1:0'] + list(flags)
        self.tmp = tmp
        self.nice = nice  # > 0: a stand-in for a service on another host

    def __enter__(self):
        port_file = os.path.join(self.tmp, 'demo.port')
        log = open(os.path.join(self.tmp, 'demo.log'), 'ab')
        self.proc = subprocess.Popen(self.argv + ['--port-file', port_file],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     preexec_fn=(lambda: os.nice(self.nice)) if self.nice
                                     else None)
        log.close()
        self.port = wait_port_file(port_file, self.proc)
        self.url = 'http://127.0.0.1:%d' % self.port
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


LOCATION = """        location = {path} {{ types {{ }} default_type {ctype};
            add_header Cache-Control no-store; alias {file}; }}"""


class StaticNginx(nginx.Nginx):
    """A private nginx (one worker, 127.0.0.1) serving files[path] =
    (bytes, content_type) at exact paths."""

    # nginx's usual static-file tuning, so the baseline is its best: the
    # file's fd and size cached, the body sent with sendfile(2).
    http_extra = """    etag off;
    open_file_cache max=64 inactive=600s;
    open_file_cache_valid 600s;
    sendfile on;"""

    def __init__(self, files, etag=False):
        self.files = files
        if etag:  # nginx's own ETag and 304s, for the revalidation case
            self.http_extra = self.http_extra.replace('etag off;', 'etag on;')

    def locations(self, tmp):
        locs = []
        for i, (path, (body, ctype)) in enumerate(sorted(self.files.items())):
            f = os.path.join(tmp, 'body%d' % i)
            with open(f, 'wb') as fh:
                fh.write(body)
            os.chmod(f, 0o644)
            locs.append(LOCATION.format(path=path, ctype=ctype.split(';')[0].strip(), file=f))
        return '\n'.join(locs)

    def __enter__(self):
        super().__enter__()
        self.url = self.url.rstrip('/')
        return self


def nginx_worker_pid(master_pid):
    """The one worker of a private nginx (its RSS is what serves)."""
    try:
        with open('/proc/%d/task/%d/children' % (master_pid, master_pid)) as f:
            kids = [int(x) for x in f.read().split()]
        return kids[0] if kids else None
    except OSError:
        return None


_UNIT = {'us': 1e-3, 'ms': 1.0, 's': 1e3, 'm': 60e3, 'h': 3600e3}


def _ms(text):
    m = re.match(r'([0-9.]+)(us|ms|s|m|h)$', text)
    return float(m.group(1)) * _UNIT[m.group(2)]


def parse_wrk(out):
    """wrk's text output as numbers: rps, requests, errors (socket errors
    plus non-2xx/3xx) and, with --latency, p50/p90/p99 in ms."""
    r = {'rps': float(re.search(r'Requests/sec:\s+([0-9.]+)', out).group(1)),
         'requests': int(re.search(r'(\d+) requests in', out).group(1)),
         'errors': 0}
    m = re.search(r'Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)', out)
    if m:
        r['errors'] += sum(int(x) for x in m.groups())
        r['socket_errors'] = dict(zip(('connect', 'read', 'write', 'timeout'),
                                      (int(x) for x in m.groups())))
    m = re.search(r'Non-2xx or 3xx responses: (\d+)', out)
    if m:
        r['errors'] += int(m.group(1))
        r['non2xx'] = int(m.group(1))
    for p in ('50', '90', '99'):
        m = re.search(r'^\s+%s(?:\.000)?%%\s+(\S+)' % p, out, re.M)
        if m:
            r['p%s_ms' % p] = _ms(m.group(1))
    return r


def wrk(url, conns, seconds, latency=False, threads=1, timeout_s=None, headers=()):
    argv = ['wrk', '-t%d' % threads, '-c%d' % conns, '-d%ds' % seconds]
    for h in headers:
        argv += ['-H', h]
    if latency:
        argv.append('--latency')
    if timeout_s:
        argv += ['--timeout', '%ds' % timeout_s]
    argv.append(url)
    out = subprocess.run(argv, check=True, capture_output=True, text=True,
                         timeout=seconds + 60).stdout
    return parse_wrk(out)


def need_wrk():
    if not shutil.which('wrk'):
        sys.exit('wrk not found (apt-get install wrk)')


def fd_count(pid, skip_prefix=None):
    """Open fds of pid; with skip_prefix, not those of files whose path
    starts with it (the database and its -wal/-shm: each worker thread's
    reader keeps its own, by design)."""
    n = 0
    for fd in os.listdir('/proc/%d/fd' % pid):
        if skip_prefix:
            try:
                if os.readlink('/proc/%d/fd/%s' % (pid, fd)).startswith(skip_prefix):
                    continue
            except OSError:
                continue  # closed meanwhile
        n += 1
    return n


def status_kb(pid, field):
    """A kB field of /proc/PID/status (VmRSS, VmHWM)."""
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    return None


T0 = 1767225600000  # 2026-01-01T00:00:00Z


def seed_runs(db, services=50, runs_per=4, envs=('staging', 'prod')):
    """Finished runs straight into a database readyd has migrated: enough
    that GET /v1/gates lists services x envs latest verdicts."""
    con = sqlite3.connect(db)
    rows, run_id = [], 0
    for s in range(services):
        for i in range(runs_per):
            run_id += 1
            env = envs[i % len(envs)]
            ts = T0 + i * 3600_000 + s * 1000
            state = 'failed' if (s + i) % 5 == 0 else 'passed'
            rows.append((run_id, 'svc-%02d' % s, '1.%d.0' % i, env, state,
                         'FAIL' if state == 'failed' else 'PASS', '{}', ts, ts, ts + 60000))
    with con:
        con.executemany('INSERT INTO runs (id, service, version, environment, state, verdict, '
                        'spec, created_at, started_at, finished_at) '
                        'VALUES (?,?,?,?,?,?,?,?,?,?)', rows)
    con.close()
    return run_id


def machine():
    """nproc, CPU model, memory, kernel, load average: for the report."""
    model = ''
    with open('/proc/cpuinfo') as f:
        for line in f:
            if line.startswith('model name'):
                model = line.split(':', 1)[1].strip()
                break
    mem_kb = 0
    with open('/proc/meminfo') as f:
        for line in f:
            if line.startswith('MemTotal:'):
                mem_kb = int(line.split()[1])
    return {'nproc': os.cpu_count(), 'cpu': model, 'mem_gib': round(mem_kb / 1048576, 1),
            'kernel': os.uname().release, 'loadavg': os.getloadavg()}
