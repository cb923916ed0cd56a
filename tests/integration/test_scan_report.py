"""Integration: the scan-report probe reads the SARIF and Trivy fixtures
(tests/unit/fixtures/scan/, written for these tests) from a directory
readyd.yaml allows, or over HTTP, and publishes the counts written into
them; a gate `critical == 0` fails on a report with a critical finding
and passes on one without; a path outside allowed_paths is refused at
submit; a malformed report is an ERROR naming what is wrong."""
import contextlib
import functools
import http.server
import json
import os
import shutil
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, 'tests', 'unit', 'fixtures', 'scan')
COUNTS = ('critical', 'high', 'medium', 'low', 'unknown', 'total')


def spec(probe, gates=()):
    text = 'apiVersion: readyd/v1\nservice: scan-test\nversion: 1.0.0\nprobes:\n' + probe
    if gates:
        text += 'gates:\n' + ''.join('  - %s\n' % json.dumps(g) for g in gates)
    return text


def scan(source, fmt=None):
    text = '  - name: scan\n    type: scan-report\n    %s\n' % source
    if fmt:
        text += '    format: %s\n' % fmt
    return text


class QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class TestScanReport(lib.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.stack = contextlib.ExitStack()
        try:
            cls.files = cls.stack.enter_context(tempfile.TemporaryDirectory())
            for name in os.listdir(FIXTURES):
                shutil.copy(os.path.join(FIXTURES, name), cls.files)
            with open(os.path.join(cls.files, 'broken.sarif'), 'w') as f:
                f.write('{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}},'
                        ' "results": [{"ruleId": "a", "level": "fatal"}]}]}')
            cls.daemon = cls.stack.enter_context(
                lib.Daemon(config='allowed_paths: [%s]\n' % json.dumps(cls.files)))
        except BaseException:
            cls.stack.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()

    def setUp(self):
        super().setUp()
        self.track(self.daemon)

    def path(self, name):
        return os.path.join(self.files, name)

    def counts(self, probe):
        return tuple(probe['metrics'][k] for k in COUNTS)

    def test_sarif_counts_and_critical_gate_fails(self):
        run = self.daemon.run_spec(spec(scan('file: ' + self.path('findings.sarif')),
                                        gates=['scan.critical == 0']))
        p = run['probes'][0]
        self.assertEqual(p['state'], 'passed', run)
        self.assertEqual(self.counts(p), (2, 2, 3, 1, 1, 9))
        self.assertEqual(p['details']['format'], 'sarif')
        self.assertEqual(p['details']['tool'], 'examplescan')
        self.assertEqual(p['details']['by_rule']['sql-injection'],
                         {'severity': 'critical', 'count': 2})
        top = p['details']['top']
        self.assertEqual([f['severity'] for f in top[:2]], ['critical', 'critical'])
        self.assertEqual(top[0]['location'], 'app/db.py')
        self.assertEqual((run['state'], run['verdict']), ('failed', 'FAIL'), run)
        self.assertEqual((run['gates'][0]['outcome'], run['gates'][0]['value']), ('fail', 2))

    def test_trivy_counts(self):
        run = self.daemon.run_spec(spec(scan('file: ' + self.path('trivy.json'), 'trivy'),
                                        gates=['scan.high <= 3']))
        p = run['probes'][0]
        self.assertEqual(self.counts(p), (2, 3, 1, 2, 1, 9), p)
        self.assertEqual(p['details']['format'], 'trivy')
        self.assertEqual(p['details']['top'][0]['id'], 'CVE-2099-0001')
        self.assertEqual(p['details']['top'][0]['package'], 'picklelib')
        self.assertNotIn('DS001', p['details']['by_rule'])  # a check that passed
        self.assertEqual(run['verdict'], 'PASS', run)

    def test_clean_report_passes_critical_gate(self):
        run = self.daemon.run_spec(spec(scan('file: ' + self.path('clean.sarif')),
                                        gates=['scan.critical == 0', 'scan.high == 0']))
        self.assertEqual(self.counts(run['probes'][0]), (0, 0, 1, 1, 0, 2))
        self.assertEqual(run['verdict'], 'PASS', run)

    def test_over_http(self):
        handler = functools.partial(QuietFiles, directory=FIXTURES)
        srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        try:
            run = self.daemon.run_spec(spec(scan(
                'url: http://127.0.0.1:%d/trivy.json' % srv.server_port)))
        finally:
            srv.shutdown()
            srv.server_close()
        self.assertEqual(self.counts(run['probes'][0]), (2, 3, 1, 2, 1, 9), run)

    def test_path_outside_allowed_paths_refused(self):
        r = self.daemon.submit(spec(scan('file: ' + os.path.join(FIXTURES, 'findings.sarif'))))
        self.assertEqual(r.status, 422, r)
        self.assertIn('probes[0].file', json.dumps(r.json))
        self.assertIn('allowed_paths', json.dumps(r.json))

    def test_malformed_report_is_an_error(self):
        run = self.daemon.run_spec(spec(scan('file: ' + self.path('broken.sarif')),
                                        gates=['scan.critical == 0']))
        p = run['probes'][0]
        self.assertEqual((p['state'], run['verdict']), ('error', 'ERROR'), run)
        self.assertIn("runs[0].results[0].level is not one of", p['error'])
        self.assertEqual(run['gates'][0]['outcome'], 'error')

    def test_wrong_format_is_an_error(self):
        run = self.daemon.run_spec(spec(scan('file: ' + self.path('trivy.json'), 'sarif')))
        p = run['probes'][0]
        self.assertEqual(p['state'], 'error', run)
        self.assertIn('not a SARIF log', p['error'])


if __name__ == '__main__':
    lib.main()
