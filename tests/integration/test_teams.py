"""Integration: teams kept apart. Tokens with `services:` patterns see and
change only the runs, waivers, history, trends, gates, reports, events
and metrics of matching services (404 for the rest, exactly as for what
does not exist; lists filtered; a submission for another service is 403
with the path `service`); every change (cancel, invalidate, rejudge,
waiver create and revoke) is recorded with the token's name and shown in
the run, its reports and the waiver. SIGHUP reloads the scopes."""
import hashlib
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

TOKENS = {
    # name: (token, role, services or None)
    'team-a-ci': ('tok-a-ci', 'submitter', ['team-a-*']),
    'team-b-ci': ('tok-b-ci', 'submitter', ['team-b-*']),
    'team-a-lead': ('tok-a-lead', 'admin', ['team-a-*']),
    'team-b-lead': ('tok-b-lead', 'admin', ['team-b-*']),
    'root': ('tok-root', 'admin', None),
}


def config(tokens):
    lines = ['tokens:']
    for name, (tok, role, services) in tokens.items():
        entry = '  - {name: %s, hash: %s, role: %s' % (
            name, hashlib.sha256(tok.encode()).hexdigest(), role)
        if services is not None:
            entry += ', services: [%s]' % ', '.join('"%s"' % s for s in services)
        lines.append(entry + '}')
    return '\n'.join(lines) + '\nallowed_targets: ["127.0.0.1"]\n'


def spec(service, url):
    return f"""apiVersion: readyd/v1
service: {service}
version: 1.0.0
environment: test
probes:
  - name: health
    type: http
    url: {url}
gates:
  - health.status == 200
"""


def h(name, **extra):
    d = {'Authorization': 'Bearer ' + TOKENS[name][0], 'Content-Type': 'application/json'}
    d.update(extra)
    return d


class TeamsTest(lib.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.demo = lib.DemoTarget(latency='1ms').__enter__()
        cls.slow = lib.DemoTarget(latency='20s').__enter__()
        cls.d = lib.Daemon(config=config(TOKENS)).__enter__()
        cls.d.token = TOKENS['root'][0]  # for lib's wait_run
        cls.run_a = cls.submit('team-a-ci', 'team-a-api', cls.demo.url + '/healthz')
        cls.run_b = cls.submit('team-b-ci', 'team-b-api', cls.demo.url + '/healthz')
        for run_id in (cls.run_a, cls.run_b):
            cls.d.wait_run(run_id)

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)
        cls.slow.__exit__(None, None, None)
        cls.demo.__exit__(None, None, None)

    @classmethod
    def submit(cls, who, service, url):
        r = cls.d.request('POST', '/v1/runs', spec(service, url),
                          h(who, **{'Content-Type': 'application/yaml'}))
        if r.status != 201:
            raise AssertionError('submit %s as %s: %r' % (service, who, r))
        return r.json['id']

    def setUp(self):
        super().setUp()
        self.track(self.d)

    def call(self, who, method, path, body=None):
        if isinstance(body, dict):
            body = json.dumps(body)
        return self.d.request(method, path, body, h(who))

    def assert_hidden(self, r, like):
        """404, word for word what a missing resource of the same kind gets."""
        self.assertEqual(r.status, 404, r)
        self.assertEqual(r.status, like.status, like)
        self.assertEqual(r.json['title'], like.json['title'])

    def test_other_teams_runs_are_404(self):
        a = self.run_a
        missing = 10 ** 9
        for method, tail, body in [('GET', '', None), ('GET', '/report', None),
                                   ('GET', '/report?format=markdown', None),
                                   ('GET', '/events', None), ('POST', '/cancel', {}),
                                   ('POST', '/invalidate', {'reason': 'not yours'}),
                                   ('POST', '/rejudge', {'gates': ['health.status == 500']})]:
            with self.subTest(method=method, tail=tail):
                r = self.call('team-b-ci', method, '/v1/runs/%d%s' % (a, tail), body)
                like = self.call('team-b-ci', method, '/v1/runs/%d%s' % (missing, tail), body)
                self.assert_hidden(r, like)
                self.assertEqual(r.json['detail'],
                                 like.json['detail'].replace(str(missing), str(a)))
                self.assertNotIn('team-a', r.body.decode())
        # Nothing was changed by those attempts.
        run = self.call('root', 'GET', '/v1/runs/%d' % a).json
        self.assertIsNone(run['invalidated'])
        self.assertEqual(run['rejudgements'], [])
        self.assertEqual(run['changes'], [])
        # The owner sees its own.
        self.assertEqual(self.call('team-a-ci', 'GET', '/v1/runs/%d' % a).status, 200)

    def test_other_teams_services_are_404(self):
        for who, svc in (('team-b-ci', 'team-a-api'), ('team-b-lead', 'team-a-api'),
                         ('team-a-ci', 'team-b-api')):
            for method, tail, body in [
                    ('GET', '/history', None), ('GET', '/trends?metric=health.status', None),
                    ('GET', '/waivers', None),
                    ('POST', '/waivers', {'expr': 'health.status == 200', 'reason': 'x',
                                          'approver': 'x', 'expires': '1d'}),
                    ('DELETE', '/waivers/1', None)]:
                if method != 'GET' and not who.endswith('lead'):
                    continue
                with self.subTest(who=who, svc=svc, method=method, tail=tail):
                    r = self.call(who, method, '/v1/services/%s%s' % (svc, tail), body)
                    self.assertEqual(r.status, 404, r)
                    self.assertNotIn(svc, json.dumps(r.json.get('items', [])))
        items = self.call('team-a-ci', 'GET', '/v1/services/team-a-api/history').json['items']
        self.assertIn(self.run_a, [i['run_id'] for i in items])

    def test_lists_are_filtered(self):
        def services(who, path, key='service'):
            r = self.call(who, 'GET', path)
            self.assertEqual(r.status, 200, r)
            return {item[key] for item in r.json['items']}

        for path in ('/v1/runs?limit=1000', '/v1/gates', '/v1/services'):
            with self.subTest(path=path):
                self.assertEqual(services('team-a-ci', path), {'team-a-api'})
                self.assertEqual(services('team-b-ci', path), {'team-b-api'})
                self.assertTrue({'team-a-api', 'team-b-api'} <= services('root', path))
        # Pages stay full: the filter is in the query, not after it.
        r = self.call('team-a-ci', 'GET', '/v1/runs?limit=1')
        self.assertEqual([i['service'] for i in r.json['items']], ['team-a-api'])
        metrics_b = self.call('team-b-ci', 'GET', '/metrics').body.decode()
        metrics_root = self.call('root', 'GET', '/metrics').body.decode()
        self.assertIn('service="team-a-api"', metrics_root)
        self.assertIn('service="team-b-api"', metrics_b)
        self.assertNotIn('team-a-api', metrics_b)

    def test_submit_for_another_service_is_403(self):
        r = self.d.request('POST', '/v1/runs', spec('team-a-api', self.demo.url + '/healthz'),
                           h('team-b-ci', **{'Content-Type': 'application/yaml'}))
        self.assertEqual(r.status, 403, r)
        self.assertEqual(r.json['errors'][0]['path'], 'service')
        before = self.call('root', 'GET', '/v1/runs?service=team-a-api&limit=1000').json
        self.assertNotIn('team-b-ci', [i['submitted_by'] for i in before['items']])

    def test_idempotency_keys_are_per_service(self):
        # Keys were global: team A could take team B's predictable key (a
        # commit sha) and make B's submits 409.
        def post(who, service, key, url=self.demo.url + '/healthz'):
            return self.d.request('POST', '/v1/runs', spec(service, url),
                                  h(who, **{'Content-Type': 'application/yaml',
                                            'Idempotency-Key': key}))

        key = '3f2c9a1e7b4d'
        a = post('team-a-ci', 'team-a-api', key)
        self.assertEqual(a.status, 201, a)
        b = post('team-b-ci', 'team-b-api', key)
        self.assertEqual(b.status, 201, b)
        self.assertNotEqual(a.json['id'], b.json['id'])
        self.assertEqual(b.json['service'], 'team-b-api')
        # A retry with the same spec is the same run, for each team.
        for who, svc, first in (('team-b-ci', 'team-b-api', b), ('team-a-ci', 'team-a-api', a)):
            again = post(who, svc, key)
            self.assertEqual(again.status, 200, again)
            self.assertEqual(again.json['id'], first.json['id'])
        # The same key with another spec for the same service: 409, and why.
        other = post('team-b-ci', 'team-b-api', key, self.demo.url + '/v1/predict')
        self.assertEqual(other.status, 409, other)
        self.assertIn("Idempotency-Key '%s' was already used for service 'team-b-api' with a "
                      "different spec" % key, other.json['detail'])
        runs = self.call('root', 'GET', '/v1/runs?service=team-b-api&limit=1000').json
        self.assertEqual(sum(1 for i in runs['items'] if i['id'] == b.json['id']), 1)
        self.assertEqual(self.d.wait_run(b.json['id'])['verdict'], 'PASS')

    def test_changes_are_recorded_with_names(self):
        run_id = self.submit('team-a-ci', 'team-a-api', self.demo.url + '/healthz')
        self.d.wait_run(run_id)
        r = self.call('team-a-ci', 'POST', '/v1/runs/%d/rejudge' % run_id,
                      {'gates': ['health.status == 200']})
        self.assertEqual(r.status, 201, r)
        r = self.call('team-a-lead', 'POST', '/v1/runs/%d/invalidate' % run_id,
                      {'reason': 'probe pointed at the wrong host'})
        self.assertEqual(r.status, 200, r)
        slow_id = self.submit('team-a-ci', 'team-a-api', self.slow.url + '/v1/predict')
        r = self.call('team-a-ci', 'POST', '/v1/runs/%d/cancel' % slow_id,
                      {'reason': 'superseded by 1.0.1'})
        self.assertEqual(r.status, 202, r)

        run = self.call('team-a-ci', 'GET', '/v1/runs/%d' % run_id).json
        self.assertEqual([(c['action'], c['by']) for c in run['changes']],
                         [('rejudge', 'team-a-ci'), ('invalidate', 'team-a-lead')])
        self.assertEqual(run['changes'][1]['reason'], 'probe pointed at the wrong host')
        for c in run['changes']:
            self.assertRegex(c['at'], r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d')
        cancelled = self.call('team-a-ci', 'GET', '/v1/runs/%d' % slow_id).json
        self.assertEqual(cancelled['changes'],
                         [dict(cancelled['changes'][0], action='cancel', by='team-a-ci',
                               reason='superseded by 1.0.1')])
        report = self.call('team-a-ci', 'GET', '/v1/runs/%d/report' % run_id).json
        self.assertEqual(report['run']['changes'], run['changes'])
        md = self.call('team-a-ci', 'GET', '/v1/runs/%d/report?format=md' % run_id).body
        self.assertIn(b'## Changes', md)
        self.assertIn(b'invalidate by team-a-lead: probe pointed at the wrong host', md)

        w = self.call('team-a-lead', 'POST', '/v1/services/team-a-api/waivers',
                      {'expr': 'health.status == 200', 'reason': 'flaky check',
                       'approver': 'cto', 'expires': '1d'})
        self.assertEqual(w.status, 201, w)
        self.assertEqual([(c['action'], c['by'], c.get('reason')) for c in w.json['changes']],
                         [('waiver-create', 'team-a-lead', 'flaky check')])
        r = self.call('team-b-lead', 'DELETE',
                      '/v1/services/team-a-api/waivers/%d' % w.json['id'])
        self.assertEqual(r.status, 404, r)
        r = self.call('root', 'DELETE', '/v1/services/team-a-api/waivers/%d' % w.json['id'])
        self.assertEqual(r.status, 200, r)
        self.assertEqual([(c['action'], c['by']) for c in r.json['changes']],
                         [('waiver-create', 'team-a-lead'), ('waiver-revoke', 'root')])

    def test_cancel_reason_is_recorded_whole_or_refused(self):
        # 1023 ASCII bytes and a two-byte character: cut at 1024 bytes the
        # reason was invalid UTF-8 and vanished from the changes, while a
        # longer one was cut silently. Now it is taken whole or refused
        # (before anything is cancelled) with the path, as invalidate does.
        slow_id = self.submit('team-a-ci', 'team-a-api', self.slow.url + '/v1/predict')
        for bad, status in (({'reason': 'x' * 1025}, 422), ({'reason': 7}, 422),
                            ({'reason': ''}, 422), ('not json', 400)):
            r = self.call('team-a-ci', 'POST', '/v1/runs/%d/cancel' % slow_id, bad)
            self.assertEqual(r.status, status, r)
            if status == 422:
                self.assertEqual(r.json['errors'][0]['path'], 'reason', r)
        self.assertEqual(self.call('team-a-ci', 'GET', '/v1/runs/%d' % slow_id).json['state'],
                         'running')
        reason = 'a' * 1022 + '\u00e9'  # 1024 bytes in UTF-8
        r = self.call('team-a-ci', 'POST', '/v1/runs/%d/cancel' % slow_id, {'reason': reason})
        self.assertEqual(r.status, 202, r)
        run = self.d.wait_run(slow_id)
        self.assertEqual([(c['action'], c.get('reason')) for c in run['changes']],
                         [('cancel', reason)])
        r = self.call('team-a-ci', 'POST', '/v1/runs/%d/invalidate' % slow_id,
                      {'reason': 'y' * 1025})
        self.assertEqual(r.status, 422, r)
        self.assertIn('at most 1024 bytes', r.json['detail'])

    def test_sighup_reloads_scopes(self):
        tokens = dict(TOKENS)
        tokens['team-b-ci'] = ('tok-b-ci', 'submitter', ['team-b-*', 'team-a-api'])
        path = '/v1/runs/%d' % self.run_a
        self.assertEqual(self.call('team-b-ci', 'GET', path).status, 404)
        with open(os.path.join(self.d.tmpdir, 'readyd.yaml'), 'w', encoding='utf-8') as f:
            f.write(config(tokens))
        try:
            self.d.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while self.call('team-b-ci', 'GET', path).status != 200:
                self.assertLess(time.monotonic(), deadline, 'reload did not widen the scope')
                time.sleep(0.1)
        finally:
            with open(os.path.join(self.d.tmpdir, 'readyd.yaml'), 'w', encoding='utf-8') as f:
                f.write(config(TOKENS))
            self.d.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while self.call('team-b-ci', 'GET', path).status != 404:
                self.assertLess(time.monotonic(), deadline, 'reload did not narrow the scope')
                time.sleep(0.1)

    def test_bad_services_refused_at_load(self):
        bad = config(TOKENS).replace('services: ["team-a-*"]', 'services: []', 1)
        d = lib.Daemon(config=bad)
        with self.assertRaises(RuntimeError):
            d.start()
        self.assertIn('tokens[0].services', d.log())


if __name__ == '__main__':
    lib.main()
