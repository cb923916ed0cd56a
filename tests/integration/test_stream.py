"""Integration: model-serving measurements through the real readyd's load
probe against the demo target: streamed answers (/v1/completions, an
OpenAI-style SSE stream whose first-token delay, token gap and token count
the test sets) and request corpora (JSON Lines through allowed_paths, or
inline), checked against what the demo target says it served
(GET /admin/served). Each run is a few seconds."""
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402


def spec(url, probe, gates=''):
    return f"""apiVersion: readyd/v1
service: stream-test
version: 1.0.0
environment: test
timeout: 5m
target:
  url: {url}
  method: POST
  body: '{{"prompt":"hello","stream":true}}'
  timeout: 5s
probes:
{probe}
{gates}"""


def probe_of(run, name):
    return next(p for p in run['probes'] if p['name'] == name)


def show(what, m, keys):
    """Prints the measured figures, for the record of a run."""
    print('%s: %s' % (what, ', '.join('%s %s' % (k, m.get(k)) for k in keys)), file=sys.stderr)


def within(test, value, expect, frac, what):
    test.assertLess(abs(value - expect), frac * expect,
                    '%s %.3f, expected %.3f within %d %%' % (what, value, expect, frac * 100))


class StreamTest(lib.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.files = tempfile.mkdtemp(prefix='readyd-stream-files-')
        cls.d = lib.Daemon(config='allowed_paths: [%s]\n' % json.dumps(cls.files)).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)
        shutil.rmtree(cls.files, ignore_errors=True)

    def setUp(self):
        super().setUp()
        self.track(self.d)

    def demo(self, **flags):
        t = lib.DemoTarget(**flags).__enter__()
        self.addCleanup(t.__exit__, None, None, None)
        self.track(t)
        return t

    def served(self, t):
        r = lib.http('GET', t.url + '/admin/served')
        self.assertEqual(r.status, 200, r)
        return r.json

    def write(self, name, lines):
        path = os.path.join(self.files, name)
        with open(path, 'w', encoding='utf-8') as f:
            f.write(''.join(line + '\n' for line in lines))
        return path

    # --- streamed answers ---

    def test_stream_figures(self):
        first, gap, tokens = 50.0, 10.0, 20
        t = self.demo()
        url = t.url + '/v1/completions?first_ms=%g&gap_ms=%g&tokens=%d' % (first, gap, tokens)
        probe = """  - name: chat
    type: load
    mode: closed
    connections: 4
    duration: 3s
    stream: true
"""
        # ttft_p95_ms needs 200 answers by default, as p95_ms does.
        gates = ('gates:\n  - { expr: "chat.ttft_p95_ms < 300", min_samples: 30 }\n'
                 '  - chat.itl_p50_ms < 20\n  - chat.events_mean == 20\n')
        run = self.d.run_spec(spec(url, probe, gates), timeout=60)
        self.assertEqual(run['state'], 'passed', run)
        m = probe_of(run, 'chat')['metrics']
        show('sse 50/10/20', m, ('requests', 'ttfb_p50_ms', 'ttft_p50_ms', 'ttft_p95_ms',
                                 'itl_p50_ms', 'itl_p95_ms', 'p50_ms', 'events_mean',
                                 'output_tokens_per_s'))
        self.assertEqual(m['errors'], 0)
        self.assertGreater(m['requests'], 30)
        within(self, m['ttft_p50_ms'], first, 0.05, 'ttft p50')
        within(self, m['itl_p50_ms'], gap, 0.10, 'itl p50')
        # Headers go out at once: the first byte is not the first token.
        self.assertLess(m['ttfb_p50_ms'], 5)
        total = first + (tokens - 1) * gap
        within(self, m['p50_ms'], total + 2, 0.05, 'total latency p50')
        self.assertEqual(m['events_mean'], tokens)
        # (tokens - 1) per (last event - first event): the token gap's rate.
        within(self, m['output_tokens_per_s'], 1000.0 / gap, 0.10, 'output tokens/s')
        self.assertEqual(m['output_tokens'], tokens * m['requests'])
        self.assertEqual(m['distinct_requests'], 1)
        s = self.served(t)
        self.assertEqual(s['streams'], m['requests'] + m['warmup_requests'])
        self.assertEqual(s['tokens'], tokens * s['streams'])

    def test_plain_chunked_stream(self):
        # Not SSE: every read that brings body bytes is one event, and
        # without a token count one event is one token.
        first, gap, tokens = 50.0, 10.0, 20
        t = self.demo()
        url = t.url + '/v1/completions?format=text&first_ms=%g&gap_ms=%g&tokens=%d' % (
            first, gap, tokens)
        probe = """  - name: chat
    type: load
    mode: closed
    connections: 4
    duration: 3s
    stream: true
"""
        run = self.d.run_spec(spec(url, probe, 'gates:\n  - chat.itl_p50_ms < 20\n'),
                              timeout=60)
        self.assertEqual(run['state'], 'passed', run)
        m = probe_of(run, 'chat')['metrics']
        show('plain chunks 50/10/20', m, ('requests', 'ttfb_p50_ms', 'ttft_p50_ms',
                                          'itl_p50_ms', 'p50_ms', 'events_mean',
                                          'output_tokens', 'output_tokens_per_s'))
        self.assertEqual(m['errors'], 0)
        self.assertGreater(m['requests'], 30)
        self.assertLess(m['ttfb_p50_ms'], 5)
        within(self, m['ttft_p50_ms'], first, 0.05, 'ttft p50')
        within(self, m['itl_p50_ms'], gap, 0.10, 'itl p50')
        within(self, m['p50_ms'], first + (tokens - 1) * gap + 2, 0.05, 'total latency p50')
        # One event per read: two chunks that reach the engine in one read
        # (a stalled client) are one event, never more than were sent.
        self.assertLessEqual(m['events_mean'], tokens)
        self.assertGreater(m['events_mean'], tokens - 2)
        self.assertEqual(m['output_tokens'], round(m['events_mean'] * m['requests']))
        s = self.served(t)
        self.assertEqual(s['streams'], m['requests'] + m['warmup_requests'])

    def test_stream_rate_stall_corrected_ttft(self):
        # One connection at 50/s, answers of ~8 ms; a 500 ms stall holds
        # the request in flight, and the 25 due meanwhile wait for the
        # connection: from their intended time their first token is late,
        # from their actual send it is not.
        t = self.demo(stall_after='1500ms', stall_for='500ms')
        url = t.url + '/v1/completions?first_ms=5&gap_ms=1&tokens=3'
        probe = """  - name: chat
    type: load
    mode: rate
    rate: 50
    connections: 1
    duration: 4s
    stream: true
"""
        run = self.d.run_spec(spec(url, probe), timeout=60)
        self.assertEqual(run['state'], 'passed', run)
        m = probe_of(run, 'chat')['metrics']
        show('rate stall', m, ('requests', 'ttft_p50_ms', 'ttft_p99_ms', 'ttft_max_ms',
                               'ttft_p50_ms_uncorrected', 'ttft_p99_ms_uncorrected',
                               'ttft_max_ms_uncorrected'))
        self.assertEqual(m['requests'], 200)
        self.assertEqual(m['errors'], 0)
        self.assertGreater(m['ttft_p99_ms'], 300)
        self.assertLess(m['ttft_p99_ms_uncorrected'], 100)
        self.assertGreater(m['ttft_max_ms_uncorrected'], 400)  # the one held request
        within(self, m['ttft_p50_ms_uncorrected'], 5, 0.5, 'uncorrected ttft p50')

    # --- corpora ---

    def test_corpus_file_distinct_bodies(self):
        n = 1000
        path = self.write('prompts.jsonl', [
            json.dumps({'body': {'prompt': 'question %d' % i, 'max_tokens': 16}})
            for i in range(n)])
        t = self.demo()
        probe = f"""  - name: corpus
    type: load
    mode: closed
    connections: 4
    requests: {n}
    corpus:
      file: {path}
"""
        run = self.d.run_spec(spec(t.url + '/v1/predict', probe), timeout=60)
        self.assertEqual(run['state'], 'passed', run)
        m = probe_of(run, 'corpus')['metrics']
        self.assertEqual(m['requests'], n)
        self.assertEqual(m['errors'], 0)
        self.assertEqual(m['distinct_requests'], n)
        s = self.served(t)
        self.assertEqual(s['bodies'], n)
        self.assertEqual(s['distinct_bodies'], n)
        # The reports say how many distinct requests were sent.
        rid = run['id']
        md = self.d.get('/v1/runs/%d/report?format=markdown' % rid).body.decode()
        self.assertIn('distinct\\_requests %d' % n, md)
        html = self.d.get('/v1/runs/%d/report?format=html' % rid).body.decode()
        self.assertIn('distinct_requests=%d' % n, html)

    def weighted_run(self, t, seed):
        items = [{'body': 'prompt %d' % i, 'weight': 1 + i % 5} for i in range(50)]
        probe = f"""  - name: weighted
    type: load
    mode: closed
    connections: 1
    requests: 300
    corpus:
      order: weighted-random
      seed: {seed}
      items: {json.dumps(items)}
"""
        self.assertEqual(t.post('/admin/reset').status, 200)
        run = self.d.run_spec(spec(t.url + '/v1/predict', probe), timeout=60)
        self.assertEqual(run['state'], 'passed', run)
        m = probe_of(run, 'weighted')['metrics']
        s = self.served(t)
        self.assertEqual(s['bodies'], 300)
        self.assertEqual(s['distinct_bodies'], m['distinct_requests'])
        return s['body_sequence'], m['distinct_requests']

    def test_weighted_random_same_seed_same_sequence(self):
        t = self.demo()
        a, distinct = self.weighted_run(t, 7)
        b, _ = self.weighted_run(t, 7)
        c, _ = self.weighted_run(t, 8)
        self.assertEqual(a, b)
        self.assertNotEqual(a, c)
        self.assertGreater(distinct, 40)

    def test_corpus_bad_line_names_it(self):
        path = self.write('bad.jsonl', ['{"body": "a"}', '{"body": "b"}',
                                        '{"body": "c", "method": "post"}'])
        t = self.demo()
        probe = f"""  - name: bad
    type: load
    mode: closed
    requests: 10
    corpus:
      file: {path}
"""
        run = self.d.run_spec(spec(t.url + '/v1/predict', probe), timeout=60)
        p = probe_of(run, 'bad')
        self.assertEqual(p['state'], 'error', p)
        self.assertTrue(p['error'].startswith('corpus.file:3: method:'), p['error'])
        self.assertEqual(self.served(t)['bodies'], 0)

    def test_corpus_gone_or_bad_at_run_time_is_an_error_for_every_type(self):
        # Accepted at submit (inside allowed_paths), then missing or bad
        # when the probe reads it: ERROR naming the file, nothing sent,
        # for each type that drives the engine.
        t = self.demo()
        bad = self.write('bad-at-run.jsonl', ['{"body": "a", "weight": -1}'])
        missing = os.path.join(self.files, 'never-written.jsonl')
        probes = {
            'load': 'mode: closed\n    requests: 10',
            'capacity': 'slo: "error_rate < 0.5"\n    max_rate: 10',
            'compare': f'baseline: {t.url}/v1/predict\n    candidate: {t.url}/v1/predict\n'
                       '    mode: closed',
        }
        for kind, extra in probes.items():
            for path, start in ((missing, 'corpus.file ' + missing), (bad, 'corpus.file:1:')):
                with self.subTest(type=kind, path=path):
                    probe = ('  - name: c\n    type: %s\n    %s\n'
                             '    corpus:\n      file: %s\n' % (kind, extra, path))
                    run = self.d.run_spec(spec(t.url + '/v1/predict', probe), timeout=60)
                    p = probe_of(run, 'c')
                    self.assertEqual(p['state'], 'error', p)
                    self.assertEqual(run['verdict'], 'ERROR', run)
                    self.assertTrue(p['error'].startswith(start), p['error'])
        self.assertEqual(self.served(t)['bodies'], 0)

    def test_capacity_steps_send_the_corpus(self):
        n = 50
        path = self.write('capacity.jsonl', [
            json.dumps({'body': {'prompt': 'capacity %d' % i}}) for i in range(n)])
        t = self.demo()
        probe = f"""  - name: cap
    type: capacity
    slo: "error_rate < 0.5"
    min_rate: 100
    max_rate: 150
    step: 600ms
    connections: 8
    corpus:
      file: {path}
"""
        run = self.d.run_spec(spec(t.url + '/v1/predict', probe), timeout=60)
        p = probe_of(run, 'cap')
        self.assertEqual(p['state'], 'passed', p)
        self.assertGreaterEqual(p['metrics']['steps'], 2)
        self.assertEqual(p['metrics']['distinct_requests'], n)
        s = self.served(t)
        self.assertGreater(s['bodies'], n)
        self.assertEqual(s['distinct_bodies'], n)

    def test_compare_sides_get_the_same_corpus_sequence(self):
        items = [{'body': 'compare %d' % i, 'weight': 1 + i % 3} for i in range(200)]
        a, b = self.demo(), self.demo()
        probe = f"""  - name: cmp
    type: compare
    baseline: {a.url}/v1/predict
    candidate: {b.url}/v1/predict
    mode: rate
    rate: 100
    connections: 1
    segments: 6
    segment_duration: 300ms
    corpus:
      order: weighted-random
      seed: 11
      items: {json.dumps(items)}
"""
        run = self.d.run_spec(spec(a.url, probe), timeout=60)
        p = probe_of(run, 'cmp')
        self.assertEqual(p['state'], 'passed', p)
        sa, sb = self.served(a), self.served(b)
        self.assertEqual(sa['distinct_bodies'], p['metrics']['distinct_requests'])
        self.assertEqual(sb['distinct_bodies'], sa['distinct_bodies'])
        self.assertGreater(sa['distinct_bodies'], 20)
        # The same bodies in the same order on both sides.
        self.assertEqual(sa['bodies'], sb['bodies'])
        self.assertEqual(sa['body_sequence'], sb['body_sequence'])

    def test_corpus_outside_allowed_paths_refused_for_capacity_and_compare(self):
        t = self.demo()
        probes = {
            'capacity': 'slo: "error_rate < 0.5"\n    max_rate: 10',
            'compare': f'baseline: {t.url}\n    candidate: {t.url}\n    mode: closed',
        }
        for kind, extra in probes.items():
            with self.subTest(type=kind):
                probe = ('  - name: c\n    type: %s\n    %s\n'
                         '    corpus:\n      file: /etc/hostname\n' % (kind, extra))
                r = self.d.submit(spec(t.url, probe))
                self.assertEqual(r.status, 422, r)
                self.assertEqual(r.json['errors'][0]['path'], 'probes[0].corpus.file', r)
                self.assertIn('allowed_paths', r.json['errors'][0]['message'], r)

    def test_corpus_refused_at_submit(self):
        t = self.demo()
        cases = [
            ('corpus:\n      file: /etc/hostname', 'probes[0].corpus.file', 'allowed_paths'),
            ('corpus:\n      items: [{"body": "a"}, {"body": "b", "weight": 0}]',
             'probes[0].corpus.items[1].weight', 'must be a number'),
            ('corpus:\n      items: [{"body": "a", "colour": 1}]',
             'probes[0].corpus.items[0].colour', 'unknown field'),
            ('corpus:\n      items: [{"body": "a", "headers": {"Content-Length": "0"}}]',
             'probes[0].corpus.items[0].headers.Content-Length', 'the engine sets'),
            ('corpus:\n      order: weighted-random', 'probes[0].corpus', 'file or items'),
            ('token_key: n', 'probes[0].token_key', 'stream: true'),
        ]
        for extra, path, words in cases:
            with self.subTest(path=path):
                probe = '  - name: c\n    type: load\n    mode: closed\n    %s\n' % extra
                r = self.d.submit(spec(t.url, probe))
                self.assertEqual(r.status, 422, r)
                self.assertEqual(r.headers.get('Content-Type'), 'application/problem+json', r)
                self.assertEqual(r.json['errors'][0]['path'], path, r)
                self.assertIn(words, r.json['errors'][0]['message'], r)


if __name__ == '__main__':
    lib.main()
