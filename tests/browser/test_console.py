"""Browser: the web console (docs/console.md) in a real Chromium, driven by
Playwright (console.mjs). This file starts the real readyd (with tokens)
and the demo target on 127.0.0.1, seeds runs through the API (passing and
failing services, a version holding <script>), runs the node script with
the URLs and tokens in its environment, and checks each screenshot it
saved is a real picture (decoded here; more than a handful of colours).

Without Chromium or tests/browser/node_modules the test is skipped, except
under CI=true where that is a failure."""
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'integration'))
import lib  # noqa: E402

CHROMIUM = os.environ.get('CHROMIUM_BIN', '/usr/bin/chromium')
NODE = shutil.which('node')
PLAYWRIGHT = os.path.join(HERE, 'node_modules', 'playwright-core')
TOKENS = {'viewer': 'console-viewer-tok', 'submitter': 'console-submitter-tok',
          'admin': 'console-admin-tok'}
XSS = '<script>alert("pwned")</script>'


def tokens_yaml():
    return 'tokens:\n' + ''.join(
        '  - {name: %s-bot, hash: %s, role: %s}\n'
        % (role, hashlib.sha256(tok.encode()).hexdigest(), role)
        for role, tok in TOKENS.items())


def spec(url, service, version, p95='500', health='200', duration='1s'):
    return f"""apiVersion: readyd/v1
service: {service}
version: '{version}'
environment: prod
target:
  url: {url}/v1/predict
  timeout: 5s
probes:
  - name: health
    type: http
    url: {url}/healthz
  - name: latency
    type: load
    mode: closed
    connections: 1
    duration: {duration}
gates:
  - health.status == {health}
  - latency.p95_ms < {p95}
"""


def png_colours(path):
    """Distinct pixel colours of an 8-bit RGB/RGBA non-interlaced PNG."""
    with open(path, 'rb') as f:
        data = f.read()
    assert data[:8] == b'\x89PNG\r\n\x1a\n', path
    pos, idat, width = 8, b'', 0
    while pos < len(data):
        n, kind = struct.unpack('>I4s', data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b'IHDR':
            width, height, depth, ctype, _, _, interlace = struct.unpack('>IIBBBBB', body)
            assert depth == 8 and ctype in (2, 6) and not interlace, (depth, ctype)
            bpp = 3 if ctype == 2 else 4
        elif kind == b'IDAT':
            idat += body
        pos += 12 + n
    raw, stride, prev, colours = zlib.decompress(idat), width * bpp, None, set()
    for y in range(height):
        ft, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        prev = prev or bytearray(stride)
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if ft == 1:
                line[i] = (line[i] + a) & 255
            elif ft == 2:
                line[i] = (line[i] + b) & 255
            elif ft == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ft == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        if y % 4 == 0:
            colours.update(bytes(line[i:i + 3]) for i in range(0, stride, bpp * 2))
        prev = line
    return len(colours)


class ConsoleBrowserTest(lib.TestCase):
    def setUp(self):
        super().setUp()
        missing = [w for w, ok in (('chromium', os.access(CHROMIUM, os.X_OK)),
                                   ('node', NODE), ('playwright-core', os.path.isdir(PLAYWRIGHT)))
                   if not ok]
        if missing:
            msg = 'missing %s (run scripts/install-deps)' % ', '.join(missing)
            if os.environ.get('CI') == 'true':
                self.fail(msg)
            self.skipTest(msg)

    def seed(self, d, demo):
        sub = {'Authorization': 'Bearer ' + TOKENS['submitter']}
        ids = {}
        for key, s in (('pass1', spec(demo.url, 'checkout', '1.0.0')),
                       ('pass2', spec(demo.url, 'checkout', '1.1.0')),
                       ('fail', spec(demo.url, 'payments', '7.0.0', health='418')),
                       ('xss', spec(demo.url, 'search', XSS))):
            r = d.submit(s, headers=sub)
            self.assertEqual(r.status, 201, r)
            ids[key] = r.json['id']
            d.wait_run(ids[key], timeout=60)
        return ids

    def test_console(self):
        artifacts = os.environ.get('BROWSER_ARTIFACTS') or tempfile.mkdtemp(
            prefix='readyd-browser-')
        os.makedirs(artifacts, exist_ok=True)
        cfg = tokens_yaml() + 'allowed_targets: ["127.0.0.1"]\n'
        with lib.DemoTarget(latency='2ms') as demo, lib.Daemon(config=cfg) as d:
            self.track(d)
            d.token = TOKENS['submitter']
            ids = self.seed(d, demo)
            env = dict(os.environ, READYD_URL=d.url, DEMO_URL=demo.url,
                       VIEWER_TOKEN=TOKENS['viewer'], SUBMITTER_TOKEN=TOKENS['submitter'],
                       ADMIN_TOKEN=TOKENS['admin'],
                       CHROMIUM_BIN=CHROMIUM, ARTIFACTS=artifacts, XSS=XSS,
                       RUN_PASS1=str(ids['pass1']), RUN_PASS2=str(ids['pass2']),
                       RUN_FAIL=str(ids['fail']),
                       LIVE_SPEC=spec(demo.url, 'checkout', '1.2.0', duration='6s'),
                       LONG_SPEC=spec(demo.url, 'checkout', '9.9.9', duration='60s'))
            p = subprocess.run([NODE, os.path.join(HERE, 'console.mjs')], env=env,
                               capture_output=True, text=True, timeout=150)
            sys.stderr.write(p.stdout + p.stderr)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr + d.log())
        shots = sorted(f for f in os.listdir(artifacts) if f.endswith('.png'))
        self.assertGreaterEqual(len(shots), 10, shots)
        for f in shots:
            with self.subTest(screenshot=f):
                self.assertGreater(png_colours(os.path.join(artifacts, f)), 8, f)


if __name__ == '__main__':
    unittest.main()
