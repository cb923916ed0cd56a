#!/usr/bin/env python3
"""check-demo-target: drives a real demo-target binary through every flag
and endpoint and checks its answers (python3 stdlib only).

usage: check-demo-target.py PATH/TO/demo-target [CHECK...]

Each check starts its own server on 127.0.0.1 port 0 (--port-file) and
stops it with a signal, expecting exit 0. Timing assertions lean on lower
bounds, which hold on any machine (a deadline sleep never ends early; a
request that arrived in a stall cannot finish before the stall ends); upper
bounds are loose, since a loaded CI box wakes threads late.
Exits 0 when every check passed, 1 otherwise.
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

BIN = None
SLACK_US = 40000  # loose upper bound on wake-up lateness under load


class Failure(Exception):
    pass


def expect(cond, msg):
    if not cond:
        raise Failure(msg)


class Response:
    def __init__(self, status, headers, body, will_close=False):
        self.status = status
        self.headers = headers
        self.body = body
        self.will_close = will_close  # the server ends the connection after it

    def header(self, name):
        return self.headers.get(name.lower())

    def json(self):
        return json.loads(self.body)


def read_response(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    return Response(r.status, hdrs, data, r.will_close)


class Target:
    """One demo-target process on an ephemeral port."""

    def __init__(self, *args, tls=False):
        self.dir = tempfile.mkdtemp(prefix="demo-target-check-")
        self.port_file = os.path.join(self.dir, "port")
        self.pid_file = os.path.join(self.dir, "pid")
        self.tls_port_file = os.path.join(self.dir, "tls-port")
        cmd = [BIN, "--port-file", self.port_file, "--pid-file", self.pid_file]
        cmd += list(args)
        if tls:
            cmd += ["--tls-port-file", self.tls_port_file]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.stderr = []
        self.where = self._wait_listening("listening on ")
        self.tls_where = self._wait_listening("listening (tls) on ") if tls else None
        threading.Thread(target=self._drain, daemon=True).start()
        with open(self.port_file) as f:
            text = f.read()
        expect(re.fullmatch(r"\d+\n", text), "port file is '%r'" % text)
        self.port = int(text)
        expect(self.where.endswith(":%d" % self.port),
               "stderr says %s, port file %d" % (self.where, self.port))
        with open(self.pid_file) as f:
            expect(int(f.read()) == self.proc.pid, "pid file does not hold the pid")
        if tls:
            with open(self.tls_port_file) as f:
                self.tls_port = int(f.read())
            expect(self.tls_where.endswith(":%d" % self.tls_port), "tls port mismatch")

    def _wait_listening(self, prefix):
        while True:
            line = self.proc.stderr.readline()
            if not line:
                self.proc.wait(5)
                raise Failure("exited %s before listening: %s"
                              % (self.proc.returncode, "".join(self.stderr)))
            self.stderr.append(line)
            if line.startswith(prefix):
                return line[len(prefix):].strip()

    def _drain(self):
        for line in self.proc.stderr:
            self.stderr.append(line)

    def conn(self, timeout=30):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def req(self, method, path, body=None, headers=None):
        c = self.conn()
        try:
            return read_response(c, method, path, body, headers)
        finally:
            c.close()

    def get_json(self, path):
        r = self.req("GET", path)
        expect(r.status == 200, "GET %s: %d" % (path, r.status))
        return r.json()

    def post_json(self, path, status=200):
        r = self.req("POST", path)
        expect(r.status == status, "POST %s: %d %s" % (path, r.status, r.body))
        return r.json()

    def delays(self):
        d = self.get_json("/admin/delays")
        expect(d["count"] == len(d["delays_us"]), "count != len(delays_us)")
        return d

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise Failure("did not exit within 10 s of signal %d" % sig)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
        time.sleep(0.05)  # let the drain thread take the last lines
        report = [l for l in self.stderr if "Sanitizer" in l or "runtime error" in l]
        expect(not report, "sanitizer report: " + "".join(report[:5]))
        expect(rc == 0, "exit code %d after signal %d: %s" % (rc, sig, "".join(self.stderr[-5:])))

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.stop()
        else:
            self.proc.kill()
            self.proc.wait()
            shutil.rmtree(self.dir, ignore_errors=True)


def predict_many(t, n, threads=1, headers=None, body=None):
    """n requests spread over `threads` keep-alive connections; returns a
    list of (status, sent, received) with monotonic times."""
    out, lock = [], threading.Lock()
    per = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]

    def worker(k):
        c = t.conn()
        mine = []
        for _ in range(k):
            sent = time.monotonic()
            r = read_response(c, "POST" if body else "GET", "/v1/predict", body, headers)
            mine.append((r.status, sent, time.monotonic()))
        c.close()
        with lock:
            out.extend(mine)

    ths = [threading.Thread(target=worker, args=(k,)) for k in per]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    expect(len(out) == n, "lost requests")
    return out


def parse_metrics(text):
    """Sample lines into {name{labels}: value}, plus the comment lines."""
    samples, comments = {}, []
    for line in text.splitlines():
        if line.startswith("#"):
            comments.append(line)
        elif line:
            key, value = line.rsplit(" ", 1)
            samples[key] = float(value)
    return samples, comments


# ---- checks ----

BAD_ARGS = [
    ["--latency", "10"], ["--latency", "10xs"], ["--latency", "-5ms"],
    ["--latency", "uniform:15ms-5ms"], ["--latency", "10ms:90,"],
    ["--latency", "10ms:0"], ["--latency", "exp:"], ["--latency", "2h"],
    ["--latency", " 10ms"], ["--errors", "1.5"], ["--errors", "nan"],
    ["--errors", "-0.1"], ["--errors", "0x1p-1"], ["--workers", "0"],
    ["--workers", "-1"], ["--workers", "5000"], ["--listen", "nope"],
    ["--listen", "127.0.0.1:70000"], ["--listen", "::1:80"],
    ["--tls-listen", "127.0.0.1:0"], ["--tls-cert", "x.pem"],
    ["--stall-after", "1s"], ["--stall-for", "1x"], ["--seed", "-1"],
    ["--seed", "18446744073709551616"], ["--omit-metric", "bogus"],
    ["--rate-limit", "0"], ["--rate-limit", "inf"], ["--tls-max-version", "1.1"],
    ["--version", "a b"], ["--version", ""], ["--auth-token", ""],
    ["--port", "1"], ["--bogus"], ["positional"], ["--latency"],
]


def check_cli_errors():
    for args in BAD_ARGS:
        p = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=10)
        expect(p.returncode == 2, "%s: exit %d, want 2" % (args, p.returncode))
        expect(p.stderr.strip() and "listening" not in p.stderr,
               "%s: no message on stderr" % args)
    p = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=10)
    expect(p.returncode == 0 and "--latency" in p.stdout, "--help")
    p = subprocess.run([BIN, "--tls-listen", "127.0.0.1:0", "--tls-cert", "/nonexistent",
                        "--tls-key", "/nonexistent"], capture_output=True, text=True,
                       timeout=10)
    expect(p.returncode == 1 and "/nonexistent" in p.stderr, "missing cert file")


def check_listen_busy():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    try:
        p = subprocess.run([BIN, "--listen", "127.0.0.1:%d" % port], capture_output=True,
                           text=True, timeout=10)
    finally:
        s.close()
    expect(p.returncode == 1 and "Failed to listen" in p.stderr,
           "busy port: exit %d %s" % (p.returncode, p.stderr))
    with Target("--listen", "localhost:0") as t:
        expect(t.req("GET", "/healthz").status == 200, "localhost listener")


def check_endpoints():
    with Target() as t:
        expect(t.where.startswith("127.0.0.1:"), "default listen " + t.where)
        r = t.req("GET", "/healthz")
        expect(r.status == 200 and r.body == b"ok\n", "healthz")
        expect(t.req("HEAD", "/healthz").status == 200, "HEAD healthz")
        expect(t.get_json("/version") == {"version": "2.4.0"}, "default version")
        for method in ("GET", "POST"):
            r = t.req(method, "/v1/predict", body=b'{"text":"ship it"}'
                      if method == "POST" else None)
            expect(r.status == 200 and r.header("content-type") == "application/json",
                   "predict %s: %d" % (method, r.status))
            expect(r.json() == {"label": "positive", "score": 0.93, "version": "2.4.0"},
                   "predict body %r" % r.body)
        for path in ("/nope", "/v1/predict/", "/", "/admin"):
            expect(t.req("GET", path).status == 404, "404 for " + path)
        for method, path, allow in (("DELETE", "/v1/predict", "GET, POST"),
                                    ("HEAD", "/v1/predict", "GET, POST"),
                                    ("POST", "/metrics", "GET, HEAD"),
                                    ("GET", "/admin/fault", "POST"),
                                    ("GET", "/admin/reset", "POST"),
                                    ("GET", "/admin/rollback", "POST"),
                                    ("POST", "/admin/delays", "GET, HEAD")):
            r = t.req(method, path)
            expect(r.status == 405 and r.header("allow") == allow,
                   "405 %s %s: %d %s" % (method, path, r.status, r.header("allow")))
        d = t.delays()
        expect(d["count"] == 2 and d["errors"] == 0 and d["truncated"] is False,
               "delays after two predicts: %r" % d)
        expect(t.post_json("/admin/reset") == {"reset": True}, "reset answer")
        expect(t.delays()["count"] == 0, "reset clears the record")


def check_keepalive_and_body():
    with Target() as t:
        c = t.conn()
        sequence = [("GET", "/v1/predict", None, 200), ("POST", "/v1/predict", b"x" * 1000, 200),
                    ("GET", "/nope", None, 404), ("DELETE", "/v1/predict", None, 405),
                    ("GET", "/metrics", None, 200), ("POST", "/admin/fault", None, 200),
                    ("GET", "/admin/delays", None, 200), ("GET", "/v1/predict", None, 200)]
        c.connect()
        first = c.sock
        for method, path, body, status in sequence:
            r = read_response(c, method, path, body)
            expect(r.status == status, "%s %s: %d" % (method, path, r.status))
            expect((r.header("connection") or "").lower() != "close" and not r.will_close,
                   "%s %s answered Connection: close" % (method, path))
            expect(c.sock is first, "connection not reused after %s %s" % (method, path))
        one_mib = b"a" * (1024 * 1024)
        r = read_response(c, "POST", "/v1/predict", one_mib)
        expect(r.status == 200, "1 MiB body: %d" % r.status)
        r = read_response(c, "POST", "/v1/predict", one_mib + b"a")
        expect(r.status == 413, "1 MiB + 1 body: %d" % r.status)
        c.close()
        d = t.delays()
        expect(d["count"] == 4, "413/404/405 must not be recorded: %r" % d["count"])


def check_metrics():
    with Target("--latency", "3ms", "--errors", "0.25", "--seed", "5") as t:
        res = predict_many(t, 60, threads=4)
        n500 = sum(1 for s, _, _ in res if s == 500)
        expect(0 < n500 < 60, "errors=0.25 gave %d of 60" % n500)
        d = t.delays()
        r = t.req("GET", "/metrics")
        expect(r.status == 200, "metrics status")
        expect(r.header("content-type") == "text/plain; version=0.0.4; charset=utf-8",
               "metrics content type " + str(r.header("content-type")))
        text = r.body.decode()
        s, comments = parse_metrics(text)
        for fam, typ in (("inference_requests_total", "counter"),
                         ("inference_errors_total", "counter"),
                         ("inference_duration_seconds", "histogram"),
                         ("demo_target_info", "gauge")):
            expect("# TYPE %s %s" % (fam, typ) in comments, "TYPE line of " + fam)
            expect(any(c.startswith("# HELP %s " % fam) for c in comments), "HELP of " + fam)
        expect(s['inference_requests_total{code="200"}'] == 60 - n500, "200 count")
        expect(s['inference_requests_total{code="500"}'] == n500, "500 count")
        expect(s["inference_errors_total"] == n500, "errors_total")
        expect(d["errors"] == n500 and d["count"] == 60, "delays errors/count")
        expect(s['demo_target_info{version="2.4.0"}'] == 1, "info gauge")
        check_histogram(s, d["delays_us"])
        check_openmetrics(t, n500)


def check_histogram(s, delays):
    bounds = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10"]
    prev = 0
    for b in bounds:
        v = s['inference_duration_seconds_bucket{le="%s"}' % b]
        want = sum(1 for x in delays if x <= float(b) * 1e6)
        expect(v == want, "bucket le=%s is %d, record says %d" % (b, v, want))
        expect(v >= prev, "buckets not cumulative")
        prev = v
    expect(s['inference_duration_seconds_bucket{le="+Inf"}'] == len(delays), "+Inf bucket")
    expect(s["inference_duration_seconds_count"] == len(delays), "_count")
    total = sum(delays)
    expect(abs(s["inference_duration_seconds_sum"] - total / 1e6) < 1e-9,
           "_sum %r vs record %r" % (s["inference_duration_seconds_sum"], total / 1e6))


def check_openmetrics(t, n500):
    accept = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
              "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
    r = t.req("GET", "/metrics", headers={"Accept": accept})
    expect(r.header("content-type").startswith("application/openmetrics-text; version=1.0.0"),
           "openmetrics content type " + str(r.header("content-type")))
    text = r.body.decode()
    expect(text.endswith("# EOF\n"), "openmetrics must end with # EOF")
    s, comments = parse_metrics(text)
    for line in ("# TYPE inference_requests counter", "# TYPE inference_errors counter",
                 "# TYPE inference_duration_seconds histogram", "# TYPE demo_target info"):
        expect(line in comments, "missing '%s'" % line)
    expect(not any(c.startswith("# TYPE") and "_total " in c for c in comments),
           "OpenMetrics TYPE lines must not name _total")
    expect(s["inference_errors_total"] == n500, "openmetrics errors sample")
    expect('inference_duration_seconds_bucket{le="1.0"}' in s, "canonical le in OM")
    r = t.req("GET", "/metrics", headers={"Accept": "application/openmetrics-text;q=0"})
    expect(r.header("content-type").startswith("text/plain"), "q=0 must not select OM")


def check_omit_metric():
    with Target("--omit-metric", "inference_errors_total", "--omit-metric",
                "demo_target_info", "--omit-metric", "inference_duration_seconds_bucket") as t:
        t.req("GET", "/v1/predict")
        for accept in ("text/plain", "application/openmetrics-text"):
            text = t.req("GET", "/metrics", headers={"Accept": accept}).body.decode()
            expect("inference_requests_total" in text, "requests family kept")
            for gone in ("inference_errors", "demo_target", "inference_duration_seconds"):
                expect(gone not in text, "%s should be omitted (%s)" % (gone, accept))


def check_fixed_latency():
    with Target("--latency", "20ms") as t:
        res = predict_many(t, 30, threads=1) + predict_many(t, 32, threads=8)
        for status, sent, got in res:
            expect(status == 200 and got - sent >= 0.020, "client saw %.4f s" % (got - sent))
        d = sorted(t.delays()["delays_us"])
        expect(len(d) == 62, "record size %d" % len(d))
        expect(d[0] >= 20000, "applied %d us < configured 20000" % d[0])
        expect(d[-1] < 20000 + SLACK_US, "applied %d us, far over 20000" % d[-1])
        expect(d[len(d) // 2] < 25000, "median applied %d us" % d[len(d) // 2])


def classify(delays, values_us):
    """Maps each applied delay to the configured value it came from: the
    largest value not above it (a sleep never ends early)."""
    out = []
    for x in delays:
        k = max([v for v in values_us if v <= x], default=None)
        expect(k is not None and x < k + SLACK_US,
               "delay %d us matches none of %r" % (x, values_us))
        out.append(k)
    return out


def check_mix():
    vals = [10000, 40000, 150000]
    with Target("--latency", "10ms:90,40ms:8,150ms:2", "--seed", "42") as t:
        predict_many(t, 400, threads=16)
        c = sorted(classify(t.delays()["delays_us"], vals))
    n10, n40, n150 = (c.count(v) for v in vals)
    expect(330 <= n10 <= 390 and 10 <= n40 <= 60 and 1 <= n150 <= 24,
           "mix counts %d/%d/%d of 400" % (n10, n40, n150))
    expect(c[199] == 10000 and c[int(0.95 * 400)] == 40000 and c[int(0.995 * 400)] == 150000,
           "percentiles p50/p95/p99.5 of the record do not match the mix")


def seeded_delays(*args, n=80, threads=1):
    with Target(*args) as t:
        predict_many(t, n, threads=threads)
        return t.delays()["delays_us"]


def sequential_delays(*args, n=80):
    return seeded_delays(*args, n=n)


def check_uniform():
    d = sequential_delays("--latency", "uniform:5ms-15ms", "--seed", "9")
    for x in d:
        expect(5000 <= x < 15000 + SLACK_US, "uniform delay %d out of range" % x)
    expect(min(d) < 7000 and max(d) > 13000, "uniform does not spread: %d..%d" % (min(d), max(d)))
    mean = sum(d) / len(d)
    expect(8500 < mean < 13500, "uniform:5ms-15ms mean %.0f us" % mean)


def check_seed():
    """Two values 49 ms apart, so late wake-ups cannot blur which was drawn.
    One PRNG stream: with 4 connections the order of draws changes, but
    not which 40 values were drawn."""
    def run(seed, threads=1):
        d = seeded_delays("--latency", "1ms:1,50ms:1", "--seed", seed, n=40, threads=threads)
        return classify(d, [1000, 50000])

    a, b, c = run("7"), run("7", threads=4), run("8")
    expect(0 < a.count(1000) < 40, "mix 1:1 drew one value only")
    expect(sorted(a) == sorted(b), "same seed, other connection count: other draws")
    expect(a != c, "different seeds, same sequence")
    expect(run("7") == a, "same seed, different sequence")


def check_exp():
    d = sequential_delays("--latency", "exp:5ms", "--seed", "3", n=200)
    mean = sum(d) / len(d)
    expect(3500 < mean < 7000, "exp:5ms mean %.0f us" % mean)
    expect(min(d) < 1000 and max(d) > 10000, "exp not exponential: %d..%d" % (min(d), max(d)))


def check_errors_and_fault():
    with Target("--errors", "0.3", "--seed", "3") as t:
        res = predict_many(t, 200, threads=8)
        n500 = sum(1 for s, _, _ in res if s == 500)
        expect(35 <= n500 <= 85, "errors=0.3 gave %d of 200" % n500)
        expect(t.delays()["errors"] == n500, "delays errors")
        r = t.req("GET", "/v1/predict")
        expect(r.status in (200, 500), "status")
        t.post_json("/admin/fault?errors=0")
        expect(all(s == 200 for s, _, _ in predict_many(t, 20)), "errors=0 still fails")
        t.post_json("/admin/fault?errors=1")
        r = t.req("GET", "/v1/predict")
        expect(r.status == 500 and r.json() == {"error": "injected fault"}, "errors=1 body")
        expect(all(s == 500 for s, _, _ in predict_many(t, 20)), "errors=1 still succeeds")
        check_fault_validation(t)


def check_fault_validation(t):
    before = t.post_json("/admin/fault")
    for q in ("errors=1.5", "errors=abc", "errors=", "errors", "bogus=1", "latency=10xs",
              "latency=uniform:9ms-1ms", "stall=forever", "auth=maybe", "rate_limit=0",
              "rate_limit=-3", "errors=0&latency=bad", "latency=5ms&auth=on"):
        r = t.req("POST", "/admin/fault?" + q)
        expect(r.status == 400 and "error" in r.json(), "fault?%s: %d" % (q, r.status))
    expect(t.post_json("/admin/fault") == before, "a rejected change changed settings")
    s = t.post_json("/admin/fault?latency=30ms&errors=0")
    expect(s["latency"] == "30ms" and s["errors"] == 0, "fault answer %r" % s)
    t.post_json("/admin/reset")
    predict_many(t, 5)
    expect(all(x >= 30000 for x in t.delays()["delays_us"]), "live latency=30ms")
    s = t.post_json("/admin/fault?latency=10ms:90,40ms:10")
    expect(s["latency"] == "10ms:90,40ms:10", "mix via query %r" % s["latency"])


def check_stall():
    with Target("--latency", "2ms", "--stall-after", "300ms", "--stall-for", "500ms") as t:
        expect(t.post_json("/admin/fault")["stall"]["state"] == "armed", "stall armed")
        # Each scheduled send has its own connection, so one held request
        # cannot keep the next one from being sent inside the window.
        offsets = [0.05, 0.1, 0.15, 0.2, 0.4, 0.5, 0.6, 0.7, 0.95, 1.05]
        conns = [t.conn() for _ in offsets]
        for c in conns:
            c.connect()
        res, lock = [], threading.Lock()
        t0 = time.monotonic()
        expect(t.req("GET", "/v1/predict").status == 200, "first request")

        def at(offset, c):
            time.sleep(max(0, t0 + offset - time.monotonic()))
            sent = time.monotonic()
            read_response(c, "GET", "/v1/predict")
            with lock:
                res.append((sent, time.monotonic()))
            c.close()

        ths = [threading.Thread(target=at, args=a) for a in zip(offsets, conns)]
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        held = [(s, g) for s, g in res if t0 + 0.35 <= s <= t0 + 0.75]
        expect(held, "no request sent inside the stall window")
        for s, g in held:
            expect(g >= t0 + 0.8, "request sent at +%.3f s answered at +%.3f s, before "
                   "the stall ended" % (s - t0, g - t0))
        expect(any(g - s < 0.2 for s, g in res if s < t0 + 0.25), "stalled before the window")
        expect(any(g - s < 0.2 for s, g in res if s > t0 + 0.9), "stalled after the window")
        expect(max(t.delays()["delays_us"]) >= 350000, "stall not in applied delays")
        check_live_stall(t)


def check_live_stall(t):
    sent = time.monotonic()
    s = t.post_json("/admin/fault?stall=300ms")
    expect(s["stall"]["state"] == "active" and 0 < s["stall"]["remaining_ms"] <= 300,
           "live stall answer %r" % s["stall"])
    r = t.req("GET", "/v1/predict")
    expect(r.status == 200 and time.monotonic() >= sent + 0.3, "live stall did not hold")
    t.post_json("/admin/fault?stall=10s")
    expect(t.post_json("/admin/fault?stall=0")["stall"]["state"] == "none", "stall=0")
    began = time.monotonic()
    t.req("GET", "/v1/predict")
    expect(time.monotonic() - began < 5, "stall=0 did not cancel the stall")


def check_workers():
    with Target("--workers", "2", "--latency", "50ms") as t:
        expect(t.post_json("/admin/fault")["workers"] == 2, "workers in settings")
        barrier = threading.Barrier(9)
        times, lock = [], threading.Lock()

        def one():
            c = t.conn()
            c.connect()
            barrier.wait()
            sent = time.monotonic()
            read_response(c, "GET", "/v1/predict")
            with lock:
                times.append(time.monotonic() - sent)
            c.close()

        ths = [threading.Thread(target=one) for _ in range(8)]
        for th in ths:
            th.start()
        barrier.wait()
        start = time.monotonic()
        for th in ths:
            th.join()
        wall = time.monotonic() - start
        expect(wall >= 0.2, "8 requests of 50 ms on 2 workers took %.3f s" % wall)
        expect(max(times) >= 0.15, "no request waited for a slot")
        d = t.delays()["delays_us"]
        expect(len(d) == 8 and min(d) >= 50000, "applied %r" % d)
        expect(max(d) < 50000 + SLACK_US, "slot wait counted as applied delay: %r" % d)


def check_auth():
    with Target("--auth-token", "s3cret") as t:
        r = t.req("GET", "/v1/predict")
        expect(r.status == 401 and (r.header("www-authenticate") or "").startswith("Bearer"),
               "missing token: %d %r" % (r.status, r.header("www-authenticate")))
        for h in ("Bearer wrong", "Basic czNjcmV0", "Bearer s3cretx", "Bearer"):
            r = t.req("GET", "/v1/predict", headers={"Authorization": h})
            expect(r.status == 401, "'%s' got %d" % (h, r.status))
        for h in ("Bearer s3cret", "bearer s3cret"):
            r = t.req("POST", "/v1/predict", b"{}", headers={"Authorization": h})
            expect(r.status == 200, "'%s' got %d" % (h, r.status))
        for path in ("/metrics", "/version", "/healthz", "/admin/delays"):
            expect(t.req("GET", path).status == 200, path + " must not need auth")
        expect(t.delays()["count"] == 2, "401s must not be recorded")
        expect(t.post_json("/admin/fault?auth=off")["auth"] == "off", "auth=off")
        expect(t.req("GET", "/v1/predict").status == 200, "auth=off still 401")
        t.post_json("/admin/fault?auth=on")
        expect(t.req("GET", "/v1/predict").status == 401, "auth=on not enforced")
    with Target() as t:
        r = t.req("POST", "/admin/fault?auth=on")
        expect(r.status == 400, "auth=on without a token: %d" % r.status)


def check_rate_limit():
    with Target("--rate-limit", "5") as t:
        c = t.conn()
        c.connect()
        sock, statuses = c.sock, []
        for _ in range(20):
            r = read_response(c, "GET", "/v1/predict")
            statuses.append(r.status)
            if r.status == 429:
                expect(r.header("retry-after") == "1", "429 without Retry-After: 1")
            expect(not r.will_close and c.sock is sock, "%d closed the connection" % r.status)
        n_ok = statuses.count(200)
        expect(5 <= n_ok <= 7 and statuses.count(429) == 20 - n_ok,
               "rate 5: %d of 20 passed" % n_ok)
        expect(statuses[:5] == [200] * 5, "burst of 5 not honoured: %r" % statuses)
        for _ in range(20):
            expect(read_response(c, "GET", "/admin/delays").status == 200, "admin limited")
        time.sleep(1.1)
        expect(read_response(c, "GET", "/v1/predict").status == 200, "no refill after 1 s")
        c.close()
        expect(t.post_json("/admin/fault?rate_limit=off")["rate_limit"] == "off", "off")
        expect(all(s == 200 for s, _, _ in predict_many(t, 30)), "rate_limit=off")
        expect(t.post_json("/admin/fault?rate_limit=2")["rate_limit"] == 2, "rate 2")
        n_ok = sum(1 for s, _, _ in predict_many(t, 10) if s == 200)
        expect(2 <= n_ok <= 3, "rate 2: %d of 10 passed" % n_ok)


def check_versions():
    with Target("--version", "3.0.0", "--previous-version", "2.9.9") as t:
        def reported():
            v = t.get_json("/version")["version"]
            p = t.req("GET", "/v1/predict").json()["version"]
            m = t.req("GET", "/metrics").body.decode()
            expect(p == v and ('demo_target_info{version="%s"} 1' % v) in m,
                   "versions disagree: %s %s" % (v, p))
            return v

        expect(reported() == "3.0.0", "--version")
        r = t.post_json("/admin/rollback", status=202)
        expect(r["rollback_to"] == "2.9.9", "rollback answer %r" % r)
        expect(reported() == "2.9.9", "rollback did not take effect")
        expect(t.post_json("/admin/rollforward")["version"] == "3.0.0", "rollforward")
        expect(reported() == "3.0.0", "rollforward did not take effect")
        sent = time.monotonic()
        t.post_json("/admin/rollback?delay=1s", status=202)
        if time.monotonic() - sent < 0.8:
            expect(reported() == "3.0.0", "delayed rollback took effect early")
        time.sleep(max(0, sent + 1.05 - time.monotonic()))
        expect(reported() == "2.9.9", "delayed rollback did not take effect")
        for q in ("/admin/rollback?delay=soon", "/admin/rollback?when=1s",
                  "/admin/rollforward?x=1", "/admin/reset?all=1", "/admin/delays?x=1"):
            r = t.req("POST" if "delays" not in q else "GET", q)
            expect(r.status == 400, "%s: %d" % (q, r.status))


def make_cert(d):
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "30", "-subj", "/CN=localhost"], check=True,
                   capture_output=True, timeout=60)
    return cert, key


def tls_version(port, min_version=None):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if min_version:
        ctx.minimum_version = min_version
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            return s.version()


def check_tls():
    if not shutil.which("openssl"):
        print("  (skipped: no openssl binary)")
        return
    d = tempfile.mkdtemp(prefix="demo-target-cert-")
    try:
        cert, key = make_cert(d)
        for maxv, want in (("1.2", "TLSv1.2"), ("1.3", "TLSv1.3")):
            with Target("--tls-listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key,
                        "--tls-max-version", maxv, tls=True) as t:
                expect(tls_version(t.tls_port) == want, "tls max %s" % maxv)
                ctx = ssl._create_unverified_context()
                c = http.client.HTTPSConnection("127.0.0.1", t.tls_port, context=ctx,
                                                timeout=10)
                for _ in range(3):
                    r = read_response(c, "GET", "/v1/predict")
                    expect(r.status == 200 and r.json()["version"] == "2.4.0", "https")
                c.close()
                expect(t.req("GET", "/healthz").status == 200, "plain beside tls")
                expect(t.delays()["count"] == 3, "tls requests share the record")
                if maxv == "1.2":
                    try:
                        tls_version(t.tls_port, ssl.TLSVersion.TLSv1_3)
                        raise Failure("a 1.2-only server accepted TLS 1.3")
                    except (ssl.SSLError, ConnectionError):
                        pass
    finally:
        shutil.rmtree(d, ignore_errors=True)


def check_signals():
    t = Target("--latency", "10s")
    th = threading.Thread(target=_swallow, args=(lambda: t.req("GET", "/v1/predict"),))
    th.start()
    time.sleep(0.3)
    began = time.monotonic()
    t.stop(signal.SIGTERM)
    expect(time.monotonic() - began < 3, "SIGTERM waited for a 10 s delay")
    th.join(10)
    t = Target()
    t.stop(signal.SIGINT)


def _swallow(fn):
    try:
        fn()
    except (OSError, http.client.HTTPException):
        pass


def check_stream():
    with Target("--stream-first", "20ms", "--stream-gap", "5ms", "--stream-tokens", "4") as t:
        t0 = time.monotonic()
        r = t.req("POST", "/v1/completions", body=b"prompt one")
        took = time.monotonic() - t0
        expect(r.status == 200, "completions: %d" % r.status)
        expect(r.header("content-type") == "text/event-stream", "content type")
        expect(r.header("transfer-encoding") == "chunked", "not chunked")
        events = [e for e in r.body.decode().split("\n\n") if e]
        expect(len(events) == 5 and events[-1] == "data: [DONE]", "events: %r" % events)
        expect('"usage":{"completion_tokens":4}' in events[3], "usage: %r" % events[3])
        expect('"usage"' not in events[2], "usage before the last token")
        expect(took >= 0.035, "4 tokens at 20ms + 3*5ms took %.3f s" % took)
        # Query parameters win over the settings; bad ones get 400.
        r = t.req("GET", "/v1/completions?first_ms=0&gap_ms=0&tokens=2")
        expect(r.body.count(b"data: ") == 3, "tokens=2: %r" % r.body)
        for q in ("first_ms=-1", "gap_ms=x", "tokens=100001", "tokens=1.5"):
            expect(t.req("GET", "/v1/completions?" + q).status == 400, "%s accepted" % q)
        t.post_json("/admin/fault?stream_tokens=1&stream_first=0")
        r = t.req("POST", "/v1/completions", body=b"prompt one")
        expect(r.body.count(b"data: ") == 2, "stream_tokens=1: %r" % r.body)
        for q in ("stream_tokens=-1", "stream_gap=soon"):
            t.post_json("/admin/fault?" + q, status=400)
        s = t.get_json("/admin/served")
        expect(s["streams"] == 3 and s["tokens"] == 4 + 2 + 1, "served %r" % s)
        # 3 streamed with bodies "prompt one", "", "prompt one"; the 400s too.
        expect(s["bodies"] == 7 and s["distinct_bodies"] == 2, "bodies %r" % s)
        t.post_json("/admin/reset")
        s = t.get_json("/admin/served")
        expect(s["bodies"] == 0 and s["streams"] == 0, "reset %r" % s)
        # format=text: the same tokens as plain chunks, no SSE framing.
        r = t.req("GET", "/v1/completions?format=text&tokens=3")
        expect(r.status == 200, "format=text: %d" % r.status)
        expect(r.header("content-type") == "text/plain; charset=utf-8", "text content type")
        expect(r.header("transfer-encoding") == "chunked", "text not chunked")
        expect(r.body == b"tok0 tok1 tok2 ", "text body %r" % r.body)
        expect(t.req("GET", "/v1/completions?format=sse&tokens=1").body.count(b"data: ") == 2,
               "format=sse")
        expect(t.req("GET", "/v1/completions?format=json").status == 400, "format=json accepted")
        s = t.get_json("/admin/served")
        expect(s["streams"] == 2 and s["tokens"] == 3 + 1, "served after text %r" % s)


CHECKS = [check_cli_errors, check_listen_busy, check_endpoints, check_keepalive_and_body,
          check_metrics, check_omit_metric, check_fixed_latency, check_mix,
          check_uniform, check_seed, check_exp, check_errors_and_fault, check_stall, check_workers,
          check_auth, check_rate_limit, check_versions, check_tls, check_signals, check_stream]


def main():
    global BIN
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    BIN = sys.argv[1]
    wanted = set(sys.argv[2:])
    failed = 0
    for check in CHECKS:
        if wanted and check.__name__ not in wanted:
            continue
        began = time.monotonic()
        try:
            check()
            print("ok   %-26s %.2f s" % (check.__name__, time.monotonic() - began))
        except Exception as e:  # a crash in a check is a failure, not an abort
            failed += 1
            print("FAIL %-26s %s: %s" % (check.__name__, type(e).__name__, e))
        sys.stdout.flush()
    print("%d checks failed" % failed if failed else "all checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
