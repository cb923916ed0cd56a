"""Integration: the web console's HTTP contract without a browser
(docs/console.md, docs/security.md): security headers on every page,
open mode without sign-in, sign-in cookie flags, CSRF refusals (403) on
every form, roles and team scopes applied to sessions, escaping of spec
values, the board fragment's ETag/304, re-judging a run from its page and
revoking a waiver from its service's page (CSRF, role, audit as the
session's token, escaping). tests/browser/ drives the same pages in
Chromium."""
import hashlib
import http.client
import os
import json
import re
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

TOKENS = {'viewer': 'c-viewer', 'submitter': 'c-submitter', 'admin': 'c-admin'}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'")
EVIL = '<img src=x onerror=alert(1)>'


def config(scoped=False):
    rows = ''.join('  - {name: %s-bot, hash: %s, role: %s}\n'
                   % (r, hashlib.sha256(t.encode()).hexdigest(), r) for r, t in TOKENS.items())
    rows += ('  - {name: team-a, hash: %s, role: admin, services: ["alpha*"]}\n'
             % hashlib.sha256(b'c-team-a').hexdigest())
    rows += ('  - {name: am, hash: %s, role: notifier}\n'
             % hashlib.sha256(b'c-notifier').hexdigest())
    return 'tokens:\n' + rows + 'allowed_targets: ["127.0.0.1"]\n'


def spec(url, service, version='1.0.0', status=200):
    return f"""apiVersion: readyd/v1
service: {service}
version: '{version}'
environment: prod
probes:
  - name: health
    type: http
    url: {url}/healthz
gates:
  - health.status == {status}
"""


def page(method, url, body=None, headers=None):
    """One request that does not follow redirects (the console answers
    303s) and bypasses lib.http: these are HTML pages, not the JSON API."""
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        c.request(method, u.path + ('?' + u.query if u.query else ''), body, headers or {})
        r = c.getresponse()
        return lib.Response(r.status, r.headers, r.read())
    finally:
        c.close()


def form(d):
    return urllib.parse.urlencode(d).encode()


FORM = {'Content-Type': 'application/x-www-form-urlencoded'}


class ConsoleTest(lib.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.demo = lib.DemoTarget(latency='1ms').__enter__()
        cls.d = lib.Daemon(config=config()).__enter__()
        cls.d.token = TOKENS['admin']
        cls.runs = {}
        for svc, st in (('alpha-api', 200), ('beta-api', 418)):
            r = cls.d.submit(spec(cls.demo.url, svc, EVIL, st))
            assert r.status == 201, r
            cls.runs[svc] = cls.d.wait_run(r.json['id'])['id']

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)
        cls.demo.__exit__(None, None, None)

    def setUp(self):
        super().setUp()
        self.track(self.d)

    def login(self, token):
        r = page('POST', self.d.url + '/login', form({'token': token}), FORM)
        self.assertEqual(r.status, 303, r)
        cookie = r.headers['Set-Cookie']
        self.assertRegex(cookie, r'^readyd_session=[0-9a-f]{64}; ')
        for flag in ('HttpOnly', 'SameSite=Strict', 'Path=/'):
            self.assertIn(flag, cookie)
        return {'Cookie': cookie.split(';')[0]}

    def get(self, path, cookie):
        return page('GET', self.d.url + path, None, dict(cookie))

    def csrf(self, path, cookie):
        m = re.search(r'name="csrf" value="([0-9a-f]{64})"', self.get(path, cookie).body.decode())
        self.assertTrue(m, path)
        return m.group(1)

    def test_signed_out_goes_to_login_and_bad_token_is_refused(self):
        for path in ('/', '/board', '/services/alpha-api', '/runs/1', '/compare?a=1&b=1'):
            r = self.get(path, {})
            self.assertEqual((r.status, r.headers.get('Location')), (303, '/login'), path)
        # An unknown token, and a notifier's (it may only deliver alerts).
        for tok in ('nope', 'c-notifier'):
            r = page('POST', self.d.url + '/login', form({'token': tok}), FORM)
            self.assertEqual(r.status, 422, tok)
            self.assertNotIn('Set-Cookie', r.headers)
        self.assertEqual(self.get('/', {'Cookie': 'readyd_session=' + 'a' * 64}).status, 303)

    def test_headers_and_escaping(self):
        c = self.login(TOKENS['viewer'])
        for path in ('/', '/services/beta-api', '/runs/%d' % self.runs['beta-api'],
                     '/compare?a=%d&b=%d' % (self.runs['alpha-api'], self.runs['beta-api'])):
            r = self.get(path, c)
            self.assertEqual(r.status, 200, path)
            self.assertTrue(r.headers['Content-Security-Policy'].startswith(CSP), path)
            self.assertEqual(r.headers['X-Content-Type-Options'], 'nosniff')
            self.assertTrue(r.headers['Content-Type'].startswith('text/html'))
            body = r.body.decode()
            self.assertNotIn(EVIL, body, path)
            self.assertIn('&lt;img src=x onerror=alert(1)&gt;', body, path)
            # No inline script, style or handler: the CSP would block them.
            self.assertNotRegex(body, r'<script>|<style|<[^>]*\s(style|on[a-z]+)=', path)
        board = self.get('/', c).body.decode()
        self.assertIn('health.status == 418', board)
        self.assertIn('&#10006;', board)  # a shape beside the FAIL text

    def test_report_download_numbers_are_shortest(self):
        # The download is the API's JSON report: every real in the shortest
        # form that reads back as the same double (not %.17g's
        # 1.2150000000000001), as GET /v1/runs/{id}/report writes it.
        c = self.login(TOKENS['viewer'])
        r = self.get('/runs/%d/report?format=json' % self.runs['alpha-api'], c)
        self.assertEqual(r.status, 200, r)
        # The JSON parser hands over each real's text as written; a
        # pattern over the text would also catch digits inside strings
        # (a time's ":06.400").
        reals = []
        json.loads(r.body, parse_float=lambda t: reals.append(t) or float(t))
        self.assertTrue(reals, r)
        for t in reals:
            self.assertLessEqual(len(t.lstrip('-')), len(repr(float(t)).lstrip('-')) + 2, t)

    def test_board_fragment_etag(self):
        c = self.login(TOKENS['viewer'])
        r = self.get('/board', c)
        self.assertEqual(r.status, 200)
        etag = r.headers['ETag']
        r2 = self.get('/board', dict(c, **{'If-None-Match': etag}))
        self.assertEqual(r2.status, 304)
        self.assertEqual(self.get('/board?service=zzz', dict(c, **{'If-None-Match': etag})).status,
                         200)

    def test_csrf_and_roles(self):
        run = self.runs['beta-api']
        viewer, admin = self.login(TOKENS['viewer']), self.login(TOKENS['admin'])
        for action, fields in (('invalidate', {'reason': 'x'}),
                               ('waive', {'gate': '0', 'reason': 'x', 'approver': 'y',
                                          'hours': '1'}),
                               ('cancel', {})):
            for extra in ({}, {'csrf': '0' * 64}):
                r = page('POST', '%s/runs/%d/%s' % (self.d.url, run, action),
                             form(dict(fields, **extra)), dict(FORM, **admin))
                self.assertEqual(r.status, 403, (action, extra))
        r = page('POST', self.d.url + '/logout', b'', dict(FORM, **admin))
        self.assertEqual(r.status, 403)
        # A viewer's session with its own CSRF token still may not invalidate.
        tok = self.csrf('/', viewer)
        r = page('POST', '%s/runs/%d/invalidate' % (self.d.url, run),
                     form({'csrf': tok, 'reason': 'x'}), dict(FORM, **viewer))
        self.assertEqual(r.status, 403)
        self.assertIsNone(self.d.get('/v1/runs/%d' % run).json.get('invalidated'))
        # The admin waives the failing gate through the form.
        tok = self.csrf('/runs/%d' % run, admin)
        r = page('POST', '%s/runs/%d/waive' % (self.d.url, run),
                     form({'csrf': tok, 'gate': '0', 'reason': 'known flake', 'approver': 'sre',
                           'hours': '2'}), dict(FORM, **admin))
        self.assertEqual(r.status, 303, r)
        ws = self.d.get('/v1/services/beta-api/waivers').json['items']
        self.assertEqual([(w['expr'], w['reason'], w['created_by']) for w in ws],
                         [('health.status == 418', 'known flake', 'admin-bot')])
        # Sign-out ends the session.
        r = page('POST', self.d.url + '/logout', form({'csrf': tok}), dict(FORM, **admin))
        self.assertEqual(r.status, 303)
        self.assertEqual(self.get('/', admin).status, 303)

    def post(self, path, fields, cookie):
        return page('POST', self.d.url + path, form(fields), dict(FORM, **cookie))

    def audit(self, action):
        return self.d.select('SELECT actor, run_id, waiver_id FROM audit WHERE action = ? '
                             'ORDER BY id', (action,))

    def test_rejudge_from_the_run_page(self):
        run = self.runs['beta-api']
        viewer, sub = self.login(TOKENS['viewer']), self.login(TOKENS['submitter'])
        path = '/runs/%d' % run
        # The form offers the spec's gates to edit; a viewer has no form.
        body = self.get(path, sub).body.decode()
        m = re.search(r'<form method="post" action="/runs/%d/rejudge" id="rejudge">.*?'
                      r'<textarea name="gates"[^>]*>([^<]*)</textarea>' % run, body, re.S)
        self.assertTrue(m, body)
        self.assertEqual(m.group(1), 'health.status == 418\n')
        self.assertNotIn('id="rejudge"', self.get(path, viewer).body.decode())
        gates = 'health.status == 200\n{"expr": "health.status < 500", "advisory": true}\n'
        # Forged (no token, a wrong token) and the viewer's own token: 403.
        for extra, who in (({}, sub), ({'csrf': '0' * 64}, sub),
                           ({'csrf': self.csrf('/', viewer)}, viewer)):
            r = self.post(path + '/rejudge', dict(extra, gates=gates), who)
            self.assertEqual(r.status, 403, (extra, r))
        self.assertEqual(self.d.get('/v1/runs/%d' % run).json['rejudgements'], [])
        tok = self.csrf(path, sub)
        # A gate that does not validate: 422 naming its path, escaped.
        r = self.post(path + '/rejudge', {'csrf': tok, 'gates': '<b>x.y < 1'}, sub)
        self.assertEqual(r.status, 422, r)
        self.assertIn('gates[0]', r.body.decode())
        self.assertNotIn('<b>x', r.body.decode())
        r = self.post(path + '/rejudge', {'csrf': tok, 'gates': '{"expr": 1'}, sub)
        self.assertEqual(r.status, 422, r)
        r = self.post(path + '/rejudge', {'csrf': tok, 'gates': gates}, sub)
        self.assertEqual((r.status, r.headers['Location']), (303, path), r)
        doc = self.d.get('/v1/runs/%d' % run).json
        self.assertEqual(doc['verdict'], 'FAIL')  # the run keeps its own verdict
        j = doc['rejudgements'][-1]
        self.assertEqual((j['verdict'], j['requested_by']), ('PASS', 'submitter-bot'), j)
        self.assertEqual([(g['expr'], g['advisory']) for g in j['gates']],
                         [('health.status == 200', False), ('health.status < 500', True)])
        self.assertIn(('submitter-bot', run, None), self.audit('rejudge'))
        page_after = self.get(path, sub).body.decode()
        self.assertIn('id="rejudgements"', page_after)
        self.assertRegex(page_after, r'submitter-bot')

    def test_revoke_a_waiver_from_the_service_page(self):
        admin, sub, viewer = (self.login(TOKENS[r]) for r in ('admin', 'submitter', 'viewer'))
        r = self.d.request('POST', '/v1/services/alpha-api/waivers', json.dumps({
            'expr': 'health.status == 200', 'reason': EVIL, 'approver': 'sre',
            'expires': '1d'}), {'Content-Type': 'application/json'})
        self.assertEqual(r.status, 201, r)
        wid = r.json['id']
        path = '/services/alpha-api'
        body = self.get(path, admin).body.decode()
        self.assertIn('action="/services/alpha-api/waivers/%d/revoke"' % wid, body)
        self.assertIn('id="revoke-%d"' % wid, body)
        self.assertNotIn(EVIL, body)
        for who in (sub, viewer):  # listed, but no form below the admin role
            b = self.get(path, who).body.decode()
            self.assertIn('id="waiver-%d"' % wid, b)
            self.assertNotIn('/revoke"', b)
        action = '%s/waivers/%d/revoke' % (path, wid)
        for extra, who in (({}, admin), ({'csrf': '0' * 64}, admin),
                           ({'csrf': self.csrf('/', sub)}, sub),
                           ({'csrf': self.csrf('/', viewer)}, viewer)):
            r = self.post(action, extra, who)
            self.assertEqual(r.status, 403, (extra, r))
        self.assertTrue(self.d.get('/v1/services/alpha-api/waivers').json['items'][0]['active'])
        tok = self.csrf(path, admin)
        r = self.post('/services/alpha-api/waivers/999999/revoke', {'csrf': tok}, admin)
        self.assertEqual(r.status, 404, r)
        r = self.post(action, {'csrf': tok}, admin)
        self.assertEqual((r.status, r.headers['Location']), (303, path), r)
        w = [x for x in self.d.get('/v1/services/alpha-api/waivers').json['items']
             if x['id'] == wid][0]
        self.assertFalse(w['active'])
        self.assertIsNotNone(w['revoked_at'])
        self.assertIn(('admin-bot', None, wid), self.audit('waiver-revoke'))
        b = self.get(path, admin).body.decode()
        self.assertIn('revoked)', b)
        self.assertNotIn('id="revoke-%d"' % wid, b)

    def test_team_scope(self):
        c = self.login('c-team-a')
        board = self.get('/', c).body.decode()
        self.assertIn('alpha-api', board)
        self.assertNotIn('beta-api', board)
        self.assertEqual(self.get('/services/beta-api', c).status, 404)
        self.assertEqual(self.get('/runs/%d' % self.runs['beta-api'], c).status, 404)
        self.assertEqual(self.get('/runs/%d' % self.runs['alpha-api'], c).status, 200)
        # Nor change another team's run or waiver.
        tok = self.csrf('/', c)
        r = self.post('/runs/%d/rejudge' % self.runs['beta-api'],
                      {'csrf': tok, 'gates': 'health.status == 200'}, c)
        self.assertEqual(r.status, 404, r)
        r = self.post('/services/beta-api/waivers/1/revoke', {'csrf': tok}, c)
        self.assertEqual(r.status, 404, r)


class OpenModeTest(lib.TestCase):
    def test_open_mode_needs_no_sign_in_but_forms_need_csrf(self):
        with lib.DemoTarget(latency='1ms') as demo, \
                lib.Daemon(config='allowed_targets: ["127.0.0.1"]\n') as d:
            self.track(d)
            run = d.run_spec(spec(demo.url, 'open-api'))['id']
            r = page('GET', d.url + '/', None, {})
            self.assertEqual(r.status, 200)
            self.assertIn('open mode', r.body.decode())
            self.assertEqual(page('GET', d.url + '/login', None, {}).status, 303)
            r = page('POST', '%s/runs/%d/invalidate' % (d.url, run),
                         form({'reason': 'x'}), FORM)
            self.assertEqual(r.status, 403)


if __name__ == '__main__':
    lib.main()
