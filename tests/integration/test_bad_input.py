"""Hostile input against a running readyd: every spec in
tests/bad-input/specs/ and every raw request in tests/bad-input/requests/
(expectations in tests/bad-input/cases.json), plus big inputs generated
here (alias bombs, deep nesting, huge strings and headers, absurd query
strings, slowloris-style slow headers and bodies). Each must be answered
with a 4xx; those that reach readyd's handlers as problem+json with a
detail (spec errors: errors[0].path names the field). After every case
/healthz must still answer, and at the end the process must be alive with
no sanitizer report in its log.

Everything goes to 127.0.0.1, bounded in count and time (the slow cases
take a few seconds in all).
"""
import json
import os
import socket
import threading
import time

import lib

HERE = os.path.dirname(os.path.abspath(__file__))
BAD = os.path.join(HERE, '..', 'bad-input')
SANITIZER_MARKS = ('AddressSanitizer', 'LeakSanitizer', 'UndefinedBehaviorSanitizer',
                   'runtime error:')

# 400 (does not parse) and 422 (parses, invalid) both refuse a spec; which
# of the two a case gets is the spec module's call, and cases.json records
# what it answered when the case was written. What is asserted is that it
# is refused with a problem, a detail and, where cases.json names one, the
# path of the bad field.
SPEC_REFUSED = [400, 422]
HEAD = 'apiVersion: readyd/v1\nservice: svc\nversion: "1.0"\n'
PROBE = 'probes:\n  - name: up\n    type: http\n    url: http://127.0.0.1:9/health\n'


def raw_request(port, data, timeout=5.0, pace=None):
    """Sends data on a fresh connection (pace: (chunk, delay) to dribble
    it) and reads one answer. Returns (status, headers, body); status None
    if the connection closed without an answer."""
    s = socket.create_connection(('127.0.0.1', port), timeout=timeout)
    try:
        if pace:
            chunk, delay = pace
            for i in range(0, len(data), chunk):
                s.sendall(data[i:i + chunk])
                time.sleep(delay)
        else:
            s.sendall(data)
        return read_answer(s, timeout)
    finally:
        s.close()


def read_answer(s, timeout):
    buf = b''
    deadline = time.monotonic() + timeout
    head_end = -1
    while time.monotonic() < deadline:
        try:
            got = s.recv(65536)
        except (socket.timeout, ConnectionResetError):
            break
        if not got:
            break
        buf += got
        head_end = buf.find(b'\r\n\r\n')
        if head_end >= 0:
            status, headers = parse_head(buf[:head_end])
            length = int(headers.get('content-length', '0'))
            if len(buf) >= head_end + 4 + length:
                return status, headers, buf[head_end + 4:head_end + 4 + length]
    if head_end < 0:
        return None, {}, b''
    status, headers = parse_head(buf[:head_end])
    return status, headers, buf[head_end + 4:]


def parse_head(head):
    lines = head.decode('latin-1').split('\r\n')
    status = int(lines[0].split(' ')[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(':')
        headers[k.strip().lower()] = v.strip()
    return status, headers


class BadInputTest(lib.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = lib.Daemon().__enter__()
        # Run 1 exists, so the request corpus's /v1/runs/1?wait=... cases
        # reach the parameter checks (port 9 refuses: the run ends at once).
        r = cls.d.submit(HEAD + PROBE)
        assert r.status == 201 and r.json['id'] == 1, r
        with open(os.path.join(BAD, 'cases.json'), encoding='utf-8') as f:
            cls.cases = json.load(f)

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)

    def setUp(self):
        super().setUp()
        self.track(self.d)

    def tearDown(self):
        self.assert_alive()

    def assert_alive(self):
        self.assertIsNone(self.d.proc.poll(), 'readyd exited')
        r = self.d.get('/healthz', timeout=10.0)
        self.assertEqual(r.status, 200, r)
        log = self.d.log()
        for mark in SANITIZER_MARKS:
            self.assertNotIn(mark, log)

    def assert_status(self, status, want, body, what):
        """want: a status, or a list of acceptable ones (None: closed
        without an answer, which libmicrohttpd does for some garbage)."""
        wants = want if isinstance(want, list) else [want]
        self.assertIn(status, wants, '%s: %r' % (what, body[:300]))

    def assert_problem(self, status, headers, body, want, what):
        self.assert_status(status, want, body, what)
        self.assertEqual(headers.get('content-type') if isinstance(headers, dict)
                         else headers['Content-Type'], 'application/problem+json', what)
        p = json.loads(body)
        self.assertEqual(p['status'], status, what)
        self.assertTrue(p.get('detail'), what)
        return p

    def submit(self, body, ctype, want, path, what):
        r = self.d.submit(body, ctype)
        p = self.assert_problem(r.status, r.headers, r.body, want, what)
        if r.status in (400, 422):
            self.assertTrue(p.get('errors'), what)
            if path is not None:
                self.assertEqual(p['errors'][0]['path'], path, '%s: %r' % (what, p))
        return p

    # --- the stored corpus ---

    def test_spec_corpus(self):
        specs = self.cases['specs']
        self.assertGreaterEqual(len(specs), 50)
        for name in sorted(specs):
            with self.subTest(spec=name):
                with open(os.path.join(BAD, 'specs', name), 'rb') as f:
                    body = f.read()
                ctype = 'application/json' if name.endswith('.json') else 'application/yaml'
                c = specs[name]
                self.submit(body, ctype, SPEC_REFUSED, c['path'], name)
                self.assertEqual(self.d.get('/healthz').status, 200)

    def test_request_corpus(self):
        reqs = self.cases['requests']
        self.assertGreaterEqual(len(reqs), 30)
        for name in sorted(reqs):
            with self.subTest(request=name):
                with open(os.path.join(BAD, 'requests', name), 'rb') as f:
                    data = f.read()
                c = reqs[name]
                status, headers, body = raw_request(self.d.port, data)
                self.assert_status(status, c['status'], body, name)
                if c['problem'] or (c['problem'] is None and
                                    headers.get('content-type') == 'application/problem+json'):
                    self.assert_problem(status, headers, body, c['status'], name)
                self.assertEqual(self.d.get('/healthz').status, 200)

    # --- generated: too big to store ---

    def test_alias_bomb(self):
        lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
        for i in range(1, 10):
            lines.append('a%d: &a%d [%s]' % (i, i, ','.join(['*a%d' % (i - 1)] * 9)))
        self.submit('\n'.join(lines) + '\n', 'application/yaml', SPEC_REFUSED, 'a0', 'billion laughs')

    def test_deep_nesting(self):
        for depth in (33, 1000, 100000):
            self.submit('x: ' + '[' * depth + ']' * depth + '\n', 'application/yaml', SPEC_REFUSED,
                        None, 'yaml flow depth %d' % depth)
            self.submit('{"x": ' + '[' * depth + ']' * depth + '}', 'application/json', SPEC_REFUSED,
                        None, 'json depth %d' % depth)
        block = ''.join('%sk:\n' % (' ' * i) for i in range(200)) + ' ' * 200 + 'k: 1\n'
        self.submit(block, 'application/yaml', SPEC_REFUSED, None, 'yaml block depth 200')

    def test_huge_strings(self):
        big = 'a' * (70 * 1024)  # above SPEC_MAX_STRING, below the body cap
        self.submit(HEAD + PROBE + '    expect_body_contains: "%s"\n' % big, 'application/yaml', SPEC_REFUSED, 'probes[0].expect_body_contains', 'huge string')
        self.submit(HEAD + PROBE + '    x%s: 1\n' % big, 'application/yaml', SPEC_REFUSED,
                    None, 'huge key')
        self.submit(HEAD + 'probes:\n  - name: %s\n    type: http\n    url: http://h/\n'
                    % ('n' * 65), 'application/yaml', SPEC_REFUSED, 'probes[0].name', 'long name')
        r = self.d.submit('a' * (1024 * 1024 + 1), 'application/yaml')
        self.assert_problem(r.status, r.headers, r.body, 413, 'body over the cap')

    def test_too_many(self):
        probes = ''.join('  - name: p%d\n    type: http\n    url: http://127.0.0.1:9/\n' % i
                         for i in range(65))
        self.submit(HEAD + 'probes:\n' + probes, 'application/yaml', SPEC_REFUSED, 'probes', '65 probes')
        headers = ''.join('      X-%d: v\n' % i for i in range(65))
        self.submit(HEAD + PROBE + '    headers:\n' + headers, 'application/yaml', SPEC_REFUSED,
                    'probes[0].headers', '65 headers')
        gates = ''.join('  - up.status == %d\n' % i for i in range(257))
        self.submit(HEAD + PROBE + 'gates:\n' + gates, 'application/yaml', SPEC_REFUSED, 'gates',
                    '257 gates')

    def test_huge_request_headers(self):
        pad = 'a' * (200 * 1024)
        status, _, _ = raw_request(self.d.port, (
            'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n' % pad).encode())
        self.assertIn(status, (413, 431, None))
        many = ''.join('X-%d: v\r\n' % i for i in range(5000))
        status, _, _ = raw_request(self.d.port, (
            'GET /healthz HTTP/1.1\r\nHost: x\r\n%s\r\n' % many).encode())
        self.assertIn(status, (413, 431, None))
        status, _, _ = raw_request(self.d.port, (
            'GET /%s HTTP/1.1\r\nHost: x\r\n\r\n' % pad).encode())
        self.assertIn(status, (413, 414, 431, None))

    def test_absurd_query(self):
        # More arguments than a connection's memory holds: libmicrohttpd
        # gives up on the request; the connection must end soon (it used
        # to hang until the 60 s connection timeout), never crash readyd.
        for n in (400, 3000):
            many = '&'.join('limit=%d' % i for i in range(n))
            t0 = time.monotonic()
            status, _, _ = raw_request(self.d.port, (
                'GET /v1/runs?%s HTTP/1.1\r\nHost: x\r\n\r\n' % many).encode(), timeout=30.0)
            self.assertIn(status, (400, 414, 431, None))
            self.assertLess(time.monotonic() - t0, 20.0, 'connection held for %d arguments' % n)
        r = self.d.get('/v1/runs?limit=' + '9' * 4000)
        self.assert_problem(r.status, r.headers, r.body, 400, 'long limit')
        r = self.d.get('/v1/runs?limit=1e3')
        self.assert_problem(r.status, r.headers, r.body, 400, 'float limit')
        r = self.d.get('/v1/runs/1?wait=' + '9' * 500 + 's')
        self.assertIn(r.status, (400, 404), r)

    def test_slow_clients(self):
        """Slowloris: headers and a body dribbled over ~2 s, and a crowd
        of connections that never finish, while /healthz keeps answering."""
        spec = (HEAD + PROBE + '    expect_status: 9999\n').encode()
        req = ('POST /v1/runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/yaml\r\n'
               'Content-Length: %d\r\n\r\n' % len(spec)).encode() + spec
        results = []
        t = threading.Thread(target=lambda: results.append(
            raw_request(self.d.port, req, timeout=10.0, pace=(max(1, len(req) // 20), 0.1))))
        t.start()
        idle = []
        try:
            for _ in range(50):
                s = socket.create_connection(('127.0.0.1', self.d.port), timeout=5.0)
                s.sendall(b'POST /v1/runs HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nab')
                idle.append(s)
            for _ in range(5):
                self.assertEqual(self.d.get('/healthz', timeout=5.0).status, 200)
                time.sleep(0.3)
        finally:
            for s in idle:
                s.close()
            t.join(15.0)
        self.assertEqual(len(results), 1)
        status, headers, body = results[0]
        p = self.assert_problem(status, headers, body, SPEC_REFUSED, 'slow body')
        self.assertEqual(p['errors'][0]['path'], 'probes[0].expect_status')


if __name__ == '__main__':
    lib.main()
