"""Integration: stored specs and the calls CD tools make. A spec is
stored per service and environment (versions 1, 2, ...; who and when),
read back, listed, refused like POST /v1/runs when invalid; a run is
started from it by service, environment and version, and history shows
which stored version judged it. Then the payloads Flagger's webhooks and
Argo Rollouts' web metric provider send are replayed against stored specs
that pass, fail, end in ERROR and pass slowly: Flagger gets 2xx on PASS
only (412 on FAIL, 502 on ERROR), non-2xx while the run is in progress
and 2xx once it passed, with one run per checksum; Argo's
successCondition and failureCondition are evaluated on the answers as
Argo evaluates them."""
import concurrent.futures
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

TOKENS = {
    # name: (token, role, services or None)
    'ci': ('tok-ci-secret', 'submitter', None),
    'hook': ('tok-hook-secret', 'submitter', ['shop-*']),
    'viewer': ('tok-viewer', 'viewer', None),
}


def config():
    lines = ['tokens:']
    for name, (tok, role, services) in TOKENS.items():
        entry = '  - {name: %s, hash: %s, role: %s' % (
            name, hashlib.sha256(tok.encode()).hexdigest(), role)
        if services is not None:
            entry += ', services: [%s]' % ', '.join('"%s"' % s for s in services)
        lines.append(entry + '}')
    return '\n'.join(lines) + '\nallowed_targets: ["127.0.0.1"]\n'


def stored(url, gate='predict.latency_ms < 1000', extra=''):
    """A stored spec: no service, environment or version (the path and
    each run give them)."""
    return f"""apiVersion: readyd/v1
timeout: 1m
{extra}probes:
  - name: predict
    type: http
    url: {url}/v1/predict
    timeout: 10s
gates:
  - "{gate}"
"""


def h(name='ci', **extra):
    d = {'Authorization': 'Bearer ' + TOKENS[name][0]}
    d.update(extra)
    return d


YAML = {'Content-Type': 'application/yaml'}
JSON = {'Content-Type': 'application/json'}


def argo_measure(body):
    """What Argo Rollouts makes of one web measurement with
    successCondition: result.verdict == "PASS" and failureCondition:
    result.verdict == "FAIL" || result.verdict == "ERROR"."""
    result = json.loads(body)
    success = result['verdict'] == 'PASS'
    failure = result['verdict'] == 'FAIL' or result['verdict'] == 'ERROR'
    if failure:
        return 'Failed'
    if success:
        return 'Successful'
    return 'Inconclusive'


class StoredSpecsTest(lib.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fast = lib.DemoTarget(latency='1ms').__enter__()
        cls.slow = lib.DemoTarget(latency='2s').__enter__()
        cls.d = lib.Daemon(config=config()).__enter__()
        cls.d.token = TOKENS['ci'][0]
        # shop-api: passes in prod, fails in failing, passes slowly in slow,
        # ends in ERROR in broken (its target is a closed port).
        for env, url, gate in (('prod', cls.fast.url, 'predict.latency_ms < 1000'),
                               ('failing', cls.fast.url, 'predict.latency_ms < 0.0001'),
                               ('slow', cls.slow.url, 'predict.latency_ms < 9000'),
                               ('broken', 'http://127.0.0.1:1', 'predict.latency_ms < 1000')):
            r = cls.d.request('PUT', '/v1/services/shop-api/specs/' + env,
                              stored(url, gate), dict(h(), **YAML))
            assert r.status == 201, r

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)
        cls.fast.__exit__(None, None, None)
        cls.slow.__exit__(None, None, None)

    def setUp(self):
        super().setUp()
        self.track(self.d)

    def runs_of(self, service):
        r = self.d.get('/v1/runs?service=%s&limit=1000' % service)
        self.assertEqual(r.status, 200, r)
        return r.json['items']

    # ---- the stored spec resource ----

    def test_1_versions_who_and_when(self):
        path = '/v1/services/books/specs/staging'
        v1 = stored(self.fast.url)
        v2 = stored(self.fast.url, 'predict.latency_ms < 500')
        r = self.d.request('PUT', path, v1, dict(h(), **YAML))
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json['version'], 1)
        self.assertEqual(r.json['created_by'], 'ci')
        self.assertEqual(r.json['spec']['service'], 'books')
        self.assertEqual(r.json['spec']['environment'], 'staging')
        self.assertNotIn('version', r.json['spec'])
        self.assertEqual(r.headers['Location'], path + '?version=1')
        r = self.d.request('PUT', path, v2, dict(h(), **YAML))
        self.assertEqual((r.status, r.json['version']), (201, 2), r)
        latest = self.d.get(path, headers=h())
        self.assertEqual((latest.status, latest.json['version']), (200, 2))
        self.assertEqual(latest.json['text'], v2)
        self.assertEqual(latest.json['format'], 'yaml')
        old = self.d.get(path + '?version=1', headers=h())
        self.assertEqual((old.status, old.json['text']), (200, v1))
        self.assertEqual(self.d.get(path + '?version=3', headers=h()).status, 404)
        self.assertEqual(self.d.get(path + '?version=x', headers=h()).status, 400)
        lst = self.d.get('/v1/services/books/specs', headers=h('viewer'))
        self.assertEqual(lst.status, 200, lst)
        self.assertEqual([(e['environment'], e['latest'], [v['version'] for v in e['versions']])
                          for e in lst.json['items']], [('staging', 2, [2, 1])])
        # The text may hold the target's credentials: viewers list, never read.
        self.assertEqual(self.d.get(path, headers=h('viewer')).status, 403)
        # A token scoped to other services sees no such service.
        self.assertEqual(self.d.get(path, headers=h('hook')).status, 404)
        r = self.d.request('PUT', path, v1, dict(h('hook'), **YAML))
        self.assertEqual(r.status, 404, r)

    def test_2_refused_like_post_runs(self):
        bad = stored(self.fast.url, 'predict.latency_ms <')
        r = self.d.request('PUT', '/v1/services/books/specs/staging', bad, dict(h(), **YAML))
        whole = bad.replace('timeout: 1m', 'service: books\nversion: "1"\ntimeout: 1m')
        ref = self.d.submit(whole, headers=h())
        self.assertEqual(r.status, 422, r)
        self.assertEqual(ref.status, 422, ref)
        # The same error; the whole spec has two more lines above it.
        mine, theirs = r.json['errors'], ref.json['errors']
        self.assertEqual(mine[0]['line'] + 2, theirs[0]['line'])
        for e in mine + theirs:
            del e['line']
        self.assertEqual(mine, theirs)
        self.assertEqual(r.json['errors'][0]['path'], 'gates[0]')
        # A service or environment other than the path's is refused.
        for field, value in (('service', 'other'), ('environment', 'prod')):
            text = stored(self.fast.url).replace('timeout: 1m', '%s: %s\ntimeout: 1m' % (field, value))
            r = self.d.request('PUT', '/v1/services/books/specs/staging', text, dict(h(), **YAML))
            self.assertEqual(r.status, 422, r)
            self.assertEqual(r.json['errors'][0]['path'], field)
            self.assertIn('leave it out', r.json['errors'][0]['message'])
        # The same values are fine; so is JSON.
        text = stored(self.fast.url).replace('timeout: 1m', 'service: books\ntimeout: 1m')
        r = self.d.request('PUT', '/v1/services/books/specs/json', text, dict(h(), **YAML))
        self.assertEqual(r.status, 201, r)
        doc = {'apiVersion': 'readyd/v1', 'probes': [
            {'name': 'p', 'type': 'http', 'url': self.fast.url + '/healthz'}]}
        r = self.d.request('PUT', '/v1/services/books/specs/json', json.dumps(doc),
                           dict(h(), **JSON))
        self.assertEqual((r.status, r.json['format'], r.json['version']), (201, 'json', 2), r)
        r = self.d.request('PUT', '/v1/services/books/specs/json', 'x', dict(h(), **{'Content-Type': 'text/plain'}))
        self.assertEqual(r.status, 415, r)

    def test_3_run_from_the_stored_spec(self):
        body = json.dumps({'version': '2.4.1', 'environment': 'prod'})
        r = self.d.request('POST', '/v1/services/shop-api/runs', body,
                           dict(h(), **JSON, **{'Idempotency-Key': 'deploy-241'}))
        self.assertEqual(r.status, 201, r)
        run = self.d.wait_run(r.json['id'])
        self.assertEqual((run['verdict'], run['version'], run['environment'], run['spec_version']),
                         ('PASS', '2.4.1', 'prod', 1))
        again = self.d.request('POST', '/v1/services/shop-api/runs', body,
                               dict(h(), **JSON, **{'Idempotency-Key': 'deploy-241'}))
        self.assertEqual((again.status, again.json['id']), (200, run['id']), again)
        hist = self.d.get('/v1/services/shop-api/history?environment=prod').json['items']
        self.assertEqual([(i['run_id'], i['spec_version']) for i in hist if i['run_id'] == run['id']],
                         [(run['id'], 1)])
        # A run submitted whole has no stored version.
        whole = stored(self.fast.url).replace('timeout: 1m', 'service: whole\nversion: "1"\ntimeout: 1m')
        w = self.d.run_spec(whole)
        self.assertIsNone(w['spec_version'])
        for bad, path in (({'environment': 'prod'}, 'version'),
                          ({'version': '1', 'labels': {}}, 'labels'),
                          ({'version': 7}, 'version'),
                          ({'version': '1', 'environment': 'prod', 'target': 'ftp://x'}, 'target.url')):
            r = self.d.request('POST', '/v1/services/shop-api/runs', json.dumps(bad), dict(h(), **JSON))
            self.assertEqual(r.status, 422, (bad, r))
            self.assertEqual(r.json['errors'][0]['path'], path, r)
        r = self.d.request('POST', '/v1/services/shop-api/runs',
                           json.dumps({'version': '1', 'environment': 'nowhere'}), dict(h(), **JSON))
        self.assertEqual(r.status, 404, r)
        self.assertIn('PUT /v1/services/shop-api/specs/nowhere', r.json['detail'])

    def test_4_target_override(self):
        # The stored target is a closed port; the run's target replaces it.
        text = stored(self.fast.url, 'hit.error_rate == 0', extra='target:\n  url: http://127.0.0.1:1/v1/predict\n')
        text = text.replace('  - name: predict\n    type: http\n    url: %s/v1/predict\n    timeout: 10s\n' % self.fast.url,
                            '  - name: hit\n    type: load\n    mode: closed\n    requests: 5\n    connections: 1\n')
        r = self.d.request('PUT', '/v1/services/shop-load/specs/prod', text, dict(h(), **YAML))
        self.assertEqual(r.status, 201, r)
        body = {'version': '1', 'environment': 'prod', 'target': self.fast.url + '/v1/predict'}
        r = self.d.request('POST', '/v1/services/shop-load/runs', json.dumps(body), dict(h(), **JSON))
        self.assertEqual(r.status, 201, r)
        self.assertEqual(self.d.wait_run(r.json['id'])['verdict'], 'PASS')
        # Still allowlisted: a target outside allowed_targets is refused.
        body['target'] = 'http://192.0.2.1/'
        r = self.d.request('POST', '/v1/services/shop-load/runs', json.dumps(body), dict(h(), **JSON))
        self.assertEqual(r.status, 422, r)

    # ---- Flagger ----

    def flagger(self, checksum, env, wait='0s', token='hook', metadata=None, name='shop-api'):
        payload = {'name': name, 'namespace': 'shop', 'phase': 'Progressing',
                   'checksum': checksum,
                   'metadata': metadata if metadata is not None else {'environment': env, 'version': '3.0.' + checksum[-1]}}
        q = {'wait': wait}
        if token:
            q['token'] = TOKENS[token][0]
        return lib.http('POST', self.d.url + '/v1/hooks/flagger?' + urllib.parse.urlencode(q),
                        json.dumps(payload).encode(), JSON)

    def test_5_flagger_pass_fail(self):
        before = len(self.runs_of('shop-api'))
        r = self.flagger('abc1', 'prod', wait='30s')
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json['verdict'], r.json['version'], r.json['spec_version']), ('PASS', '3.0.1', 1))
        r = self.flagger('abc2', 'failing', wait='30s')
        self.assertEqual(r.status, 412, r)
        self.assertEqual(r.json['verdict'], 'FAIL')
        # A second call with the same checksum answers from the same run.
        again = self.flagger('abc2', 'failing', wait='30s')
        self.assertEqual((again.status, again.json['run_id']), (412, r.json['run_id']))
        self.assertEqual(len(self.runs_of('shop-api')), before + 2)

    def test_5b_flagger_error(self):
        # A run that ends in ERROR is not a PASS: 502, never 2xx.
        r = self.flagger('err1', 'broken', wait='30s')
        self.assertEqual((r.status, r.json['verdict'], r.json['state']), (502, 'ERROR', 'error'), r)
        again = self.flagger('err1', 'broken', wait='30s')
        self.assertEqual((again.status, again.json['run_id']), (502, r.json['run_id']))

    def test_6_flagger_in_progress_then_pass(self):
        before = len(self.runs_of('shop-api'))
        r = self.flagger('slow1', 'slow', wait='0s')
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.headers['Retry-After'], '10')
        self.assertIn(r.json['verdict'], ('PENDING', 'RUNNING'))
        run_id = r.json['run_id']
        deadline = time.monotonic() + 30
        statuses = [r.status]
        while r.status == 503 and time.monotonic() < deadline:
            time.sleep(0.5)
            r = self.flagger('slow1', 'slow', wait='1s')
            statuses.append(r.status)
            self.assertEqual(r.json['run_id'], run_id)
        self.assertEqual(r.status, 200, (statuses, r))
        self.assertEqual(len(self.runs_of('shop-api')), before + 1)

    def test_6b_flagger_concurrent_first_calls_start_one_run(self):
        # Flagger may retry while the first call is still resolving the
        # spec's targets: every call with one checksum must get one run.
        before = len(self.runs_of('shop-api'))
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: self.flagger('race1', 'prod', wait='30s'), range(8)))
        self.assertEqual({a.status for a in answers}, {200}, answers)
        self.assertEqual(len({a.json['run_id'] for a in answers}), 1)
        self.assertEqual(len(self.runs_of('shop-api')), before + 1)

    def test_7_flagger_defaults_and_auth(self):
        # Without metadata: name -> service, namespace -> environment.
        text = stored(self.fast.url)
        r = self.d.request('PUT', '/v1/services/shop-web/specs/shop', text, dict(h(), **YAML))
        self.assertEqual(r.status, 201, r)
        r = self.flagger('def1', None, wait='30s', metadata={}, name='shop-web')
        self.assertEqual((r.status, r.json['environment'], r.json['version']), (200, 'shop', 'def1'), r)
        self.assertEqual(self.flagger('def1', None, token=None, metadata={}, name='shop-web').status, 401)
        # The hook token is scoped to shop-*: another service does not exist for it.
        r = self.flagger('def1', None, metadata={}, name='books')
        self.assertEqual(r.status, 404, r)
        # ?token= is for the hook route only.
        r = lib.http('GET', self.d.url + '/v1/runs?token=' + TOKENS['ci'][0])
        self.assertEqual(r.status, 401, r)
        bad = lib.http('POST', self.d.url + '/v1/hooks/flagger?token=' + TOKENS['ci'][0],
                       b'{"name": "shop-api", "namespace": "x"}', JSON)
        self.assertEqual(bad.status, 422, bad)
        self.assertEqual(bad.json['errors'][0]['path'], 'checksum')
        # readyd logs no query strings, so no token.
        self.assertNotIn('tok-hook-secret', self.d.log())
        self.assertNotIn('tok-ci-secret', self.d.log())

    # ---- Argo Rollouts ----

    def argo(self, env, version, **q):
        q.update(environment=env, version=version)
        return lib.http('GET', self.d.url + '/v1/services/shop-api/gate?' + urllib.parse.urlencode(q),
                        headers=h('hook'))

    def test_8_argo_running_then_pass_and_fail(self):
        before = len(self.runs_of('shop-api'))
        r = self.argo('slow', '4.0.0')
        self.assertEqual(r.status, 200, r)
        self.assertIn(r.json['verdict'], ('PENDING', 'RUNNING'))
        self.assertEqual(argo_measure(r.body), 'Inconclusive')
        seen = [r.json['verdict']]
        deadline = time.monotonic() + 30
        while argo_measure(r.body) == 'Inconclusive' and time.monotonic() < deadline:
            time.sleep(0.5)
            r = self.argo('slow', '4.0.0', wait='2s')
            seen.append(r.json['verdict'])
        self.assertEqual(argo_measure(r.body), 'Successful', seen)
        r = self.argo('failing', '4.0.0', wait='30s')
        self.assertEqual((r.status, r.json['verdict'], argo_measure(r.body)), (200, 'FAIL', 'Failed'))
        r = self.argo('broken', '4.0.0', wait='30s')
        self.assertEqual((r.status, r.json['verdict'], argo_measure(r.body)), (200, 'ERROR', 'Failed'))
        self.assertEqual(len(self.runs_of('shop-api')), before + 3)
        # start=false never starts one.
        r = self.argo('prod', '9.9.9', start='false')
        self.assertEqual(r.status, 404, r)
        self.assertEqual(len(self.runs_of('shop-api')), before + 3)
        r = lib.http('GET', self.d.url + '/v1/services/shop-api/gate?environment=prod',
                     headers=h('hook'))
        self.assertEqual((r.status, r.json['errors'][0]['path']), (400, 'version'))

    # ---- readyctl ----

    def ctl(self, *args, token='ci', stdin=None):
        env = dict(os.environ, READYD_URL=self.d.url, READYD_TOKEN=TOKENS[token][0])
        return subprocess.run([lib.READYCTL_BIN] + list(args), env=env, input=stdin,
                              capture_output=True, text=True, timeout=60)

    def test_9_readyctl_spec_and_run(self):
        with tempfile.TemporaryDirectory() as tmp:
            f = os.path.join(tmp, 'readiness.yaml')
            for gate in ('predict.latency_ms < 1000', 'predict.latency_ms < 0.0001'):
                with open(f, 'w') as fh:
                    fh.write(stored(self.fast.url, gate))
                p = self.ctl('spec', 'put', 'cli-api', 'prod', f)
                self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout, 'stored cli-api prod version 2\n')
            p = self.ctl('spec', 'get', 'cli-api', 'prod', '--version', '1')
            self.assertEqual((p.returncode, p.stdout), (0, stored(self.fast.url)), p.stderr)
            p = self.ctl('spec', 'diff', 'cli-api', 'prod')
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout, (
                '--- cli-api/prod version 1\n+++ cli-api/prod version 2\n'
                '@@ -6,4 +6,4 @@\n     url: %s/v1/predict\n     timeout: 10s\n gates:\n'
                '-  - "predict.latency_ms < 1000"\n+  - "predict.latency_ms < 0.0001"\n')
                % self.fast.url)
            self.assertEqual(self.ctl('spec', 'diff', 'cli-api', 'prod', '2', '2').stdout, '')
            # Version 2 fails: exit 1, and the JUnit file is written.
            junit = os.path.join(tmp, 'r.xml')
            p = self.ctl('run', 'cli-api', '5.0', '--env', 'prod', '--wait', '--junit', junit)
            self.assertEqual(p.returncode, 1, p.stderr)
            with open(junit) as fh:
                self.assertIn('<testsuite', fh.read())
            # Version 1 back as version 3 passes.
            with open(f, 'w') as fh:
                fh.write(stored(self.fast.url))
            self.assertEqual(self.ctl('spec', 'put', 'cli-api', 'prod', f).returncode, 0)
            p = self.ctl('run', 'cli-api', '5.1', '--env', 'prod', '--wait')
            self.assertEqual(p.returncode, 0, p.stderr)
            runs = [r for r in self.runs_of('cli-api')]
            self.assertEqual([(r['version'], r['spec_version'], r['verdict']) for r in runs],
                             [('5.1', 3, 'PASS'), ('5.0', 2, 'FAIL')])
            # No stored spec, a spec for another service, a viewer reading text: exit 3.
            p = self.ctl('run', 'cli-api', '1', '--env', 'nowhere')
            self.assertEqual(p.returncode, 3)
            self.assertIn('no stored spec', p.stderr)
            with open(f, 'w') as fh:
                fh.write(stored(self.fast.url).replace('timeout: 1m', 'service: x\ntimeout: 1m'))
            p = self.ctl('spec', 'put', 'cli-api', 'prod', f)
            self.assertEqual(p.returncode, 3)
            self.assertIn('service:', p.stderr)
            self.assertEqual(self.ctl('spec', 'get', 'cli-api', 'prod', token='viewer').returncode, 3)
            self.assertEqual(self.ctl('spec', 'get', 'cli-api', 'prod', '--version', '9').returncode, 3)
            self.assertEqual(self.ctl('spec', 'frob').returncode, 3)


if __name__ == '__main__':
    lib.main()
