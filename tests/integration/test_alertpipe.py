"""Integration: the alert drill followed past Prometheus. A real
Prometheus (Debian) scrapes the demo target, evaluates an alert every
second and sends it to two real Alertmanagers: one routes it to readyd's
own webhook receiver (POST /v1/alertmanager/webhook with a notifier
token), the other to a webhook on a closed port; a third Alertmanager
gets nothing. Drills measure the time to firing, to Alertmanager and to
delivery, and fail naming the stage where the alert stops (not in
Alertmanager, not routed, silenced, inhibited, not delivered). Drills
carry their own traffic. The webhook itself refuses missing and wrong
tokens and malformed payloads. The alertmanager.yml docs/operations.md
gives operators, run by a real Alertmanager, sends a paging alert to
readyd and to the humans' receiver both."""
import contextlib
import hashlib
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

RULES = """groups:
  - name: drill
    interval: 1s
    rules:
      - alert: HighErrorRate
        expr: sum(rate(inference_errors_total[3s])) > 0
        for: 1s
        labels: { severity: page }
      # The same condition as a ticket, which Maintenance inhibits.
      - alert: ErrorsTicket
        expr: sum(rate(inference_errors_total[3s])) > 0
        for: 1s
        labels: { severity: ticket }
      - alert: Maintenance
        expr: vector(1)
"""
INHIBIT = [{'source_matchers': ['alertname="Maintenance"'],
            'target_matchers': ['severity="ticket"']}]

OPERATIONS_MD = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), 'docs', 'operations.md')

TOKENS = {'admin': 'adm-token-1', 'viewer': 'view-token-1', 'submitter': 'sub-token-1',
          'notifier': 'am-token-1'}


def config():
    lines = ['tokens:']
    for role, tok in TOKENS.items():
        lines.append('  - { name: %s, role: %s, hash: %s }'
                     % (role, role, hashlib.sha256(tok.encode()).hexdigest()))
    return '\n'.join(lines) + '\n'


def spec(probes, target):
    return ('apiVersion: readyd/v1\nservice: alertpipe\nversion: 1.0.0\n'
            'environment: test\ntimeout: 5m\ntarget: { url: "%s" }\nprobes:\n' % target
            + probes)


def active_alerts(prom, name):
    body = prom.api('/api/v1/alerts')
    return [a for a in body.get('data', {}).get('alerts', [])
            if a['labels'].get('alertname') == name]


def predict_count(demo):
    return lib.http('GET', demo.url + '/admin/delays').json['count']


class AlertPipe(lib.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.stack = contextlib.ExitStack()
        try:
            cls.demo = cls.stack.enter_context(lib.DemoTarget())
            cls.daemon = cls.stack.enter_context(lib.Daemon(config=config()))
            cls.daemon.token = TOKENS['admin']
            hook = cls.daemon.url + '/v1/alertmanager/webhook'
            cls.am = cls.stack.enter_context(
                # A group_wait of 1s keeps the notification after the polls
                # that see the alert firing and in Alertmanager, so the
                # three stages show apart.
                lib.Alertmanager(webhook=hook, token=TOKENS['notifier'], receiver='readyd',
                                 inhibit_rules=INHIBIT, group_wait='1s'))
            # The other Alertmanager's receiver is down: nothing listens there.
            cls.am_down = cls.stack.enter_context(
                lib.Alertmanager(webhook='http://127.0.0.1:%d/hook' % lib.free_port(),
                                 token=TOKENS['notifier'], receiver='pager'))
            # A third one Prometheus does not send to.
            cls.am_unused = cls.stack.enter_context(lib.Alertmanager())
            cls.prom = cls.stack.enter_context(
                lib.Prometheus(rules=RULES, scrape_targets=[cls.demo.url],
                               alertmanagers=[cls.am.url, cls.am_down.url]))
            cls.prom.wait_for(lambda: cls.prom.query('up') == 1.0, what='demo target up')
            cls.prom.wait_for(cls.prom.rules_evaluated, what='rules evaluated')
        except BaseException:
            cls.stack.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()

    def setUp(self):
        super().setUp()
        for p in (self.daemon, self.am, self.am_down, self.am_unused, self.prom, self.demo):
            self.track(p)
        # A drill refuses an alert still active from an earlier test.
        self.prom.wait_for(lambda: not (active_alerts(self.prom, 'HighErrorRate')
                                        or active_alerts(self.prom, 'ErrorsTicket')),
                           timeout=60, what='HighErrorRate and ErrorsTicket inactive')

    def drill(self, am, extra='', traffic='    traffic: { rate: 50, connections: 4 }\n',
              alert='HighErrorRate', severity='page'):
        run = self.daemon.run_spec(spec(f"""  - name: drill
    type: alert-drill
    prometheus: {self.prom.url}
    alertmanager: {am.url}
    alert: {alert}
    labels: {{ severity: {severity} }}
    trigger: {{ method: POST, url: "{self.demo.url}/admin/fault?errors=0.5" }}
    clear: {{ method: POST, url: "{self.demo.url}/admin/fault?errors=0" }}
    within: 30s
    poll_interval: 250ms
{traffic}{extra}""", self.demo.url + '/v1/predict'), timeout=120)
        return run, run['probes'][0]

    def test_delivered_to_readyd_under_traffic(self):
        before = predict_count(self.demo)
        t0 = time.monotonic()
        run, p = self.drill(self.am, '    receiver: readyd\n    notify: true\n'
                                     '    notify_within: 20s\n')
        wall = time.monotonic() - t0
        sent = predict_count(self.demo) - before
        self.assertEqual((run['verdict'], p['state']), ('PASS', 'passed'), run)
        m = p['metrics']
        fire, am, notify = (m['seconds_to_fire'], m['seconds_to_alertmanager'],
                            m['seconds_to_notify'])
        print('\nseconds_to_fire %.3f seconds_to_alertmanager %.3f seconds_to_notify %.3f'
              % (fire, am, notify))
        self.assertGreater(fire, 1.0)  # `for: 1s` has to pass first
        self.assertLessEqual(fire, am)
        self.assertLessEqual(am, notify)
        self.assertLess(notify, 30)
        d = p['details']
        self.assertEqual(d['alertmanager']['state'], 'active')
        self.assertEqual(d['alertmanager']['receivers'], ['readyd'])
        self.assertEqual(d['notification']['receiver'], 'readyd')
        self.assertEqual(d['notification']['fingerprint'], d['alertmanager']['fingerprint'])
        # The notification is there for operators too, with who sent it.
        items = self.daemon.get('/v1/alertmanager/notifications').json['items']
        n = [i for i in items if i['id'] == d['notification']['id']]
        self.assertEqual(len(n), 1, items)
        self.assertEqual(n[0]['sender'], 'notifier')
        self.assertEqual(n[0]['payload']['alerts'][0]['labels']['alertname'], 'HighErrorRate')
        # The traffic ran for the whole drill at its rate, and the demo
        # target answered it: its own count rose by what readyd sent.
        secs = d['traffic']['seconds']
        print('traffic: %d requests (%d errors) in %.2f s, %.1f req/s, p95 %.2f ms; demo '
              'counted %d; the drill took %.2f s'
              % (m['traffic_requests'], m['traffic_errors'], secs, m['traffic_requests_rps'],
                 m['traffic_p95_ms'], sent, wall))
        # It ran from before the trigger until after the notification
        # (its measured window ends at the last request it sent: 20 ms apart).
        self.assertGreater(secs + 0.1, notify)
        self.assertLess(secs, wall + 1)
        self.assertAlmostEqual(m['traffic_requests'], 50 * secs, delta=50 * secs * 0.1 + 10)
        self.assertAlmostEqual(sent, m['traffic_requests'], delta=m['traffic_requests'] * 0.05 + 10)
        self.assertGreater(m['traffic_errors'], 0)  # the fault showed in the traffic
        self.assertLess(m['traffic_errors'], m['traffic_requests'])
        self.assertGreater(m['traffic_p95_ms'], 0)

    def test_receiver_down_not_delivered(self):
        t0 = time.monotonic()
        run, p = self.drill(self.am_down, '    notify: true\n    notify_within: 4s\n')
        self.assertLess(time.monotonic() - t0, 40)
        self.assertEqual((run['verdict'], p['state']), ('FAIL', 'failed'), run)
        print('\n%s: %s' % (run['verdict'], p['error']))
        self.assertEqual(p['details']['stage'], 'notify')
        self.assertRegex(p['error'], r'^not delivered: Alertmanager at %s had alert '
                                     r'HighErrorRate active for receiver pager, but no '
                                     r'notification of it reached readyd' % self.am_down.url)
        # The delivery the other Alertmanager made to receiver readyd does not count.
        self.assertIn('it did arrive for another receiver', p['error'])
        m = p['metrics']
        self.assertLessEqual(m['seconds_to_fire'], m['seconds_to_alertmanager'])
        self.assertNotIn('seconds_to_notify', m)
        self.assertEqual(p['details']['clear_status'], 200)

    def test_silenced(self):
        sid = self.am.silence({'alertname': 'HighErrorRate'})
        try:
            run, p = self.drill(self.am, '    receiver: readyd\n    notify: true\n'
                                         '    notify_within: 20s\n')
        finally:
            self.am.expire(sid)
        self.assertEqual((run['verdict'], p['state']), ('FAIL', 'failed'), run)
        print('\n%s: %s' % (run['verdict'], p['error']))
        self.assertEqual(p['details']['stage'], 'silenced')
        self.assertTrue(p['error'].startswith('silenced: Alertmanager at %s suppresses alert '
                                              'HighErrorRate' % self.am.url), p['error'])
        self.assertIn('by silence %s' % sid, p['error'])
        self.assertEqual(p['details']['alertmanager']['silenced_by'], [sid])
        self.assertIn('seconds_to_fire', p['metrics'])
        self.assertNotIn('seconds_to_alertmanager', p['metrics'])
        self.assertNotIn('seconds_to_notify', p['metrics'])

    def test_not_in_alertmanager(self):
        # Prometheus fires the alert but sends it elsewhere.
        run, p = self.drill(self.am_unused, '    notify: true\n    notify_within: 3s\n')
        self.assertEqual((run['verdict'], p['state']), ('FAIL', 'failed'), run)
        print('\n%s: %s' % (run['verdict'], p['error']))
        self.assertEqual(p['details']['stage'], 'alertmanager')
        self.assertEqual(p['error'], 'not in Alertmanager: alert HighErrorRate fired in '
                                     'Prometheus but did not reach Alertmanager at %s within 3s '
                                     "(is Prometheus' alerting.alertmanagers pointing at it?)"
                         % self.am_unused.url)
        self.assertIn('seconds_to_fire', p['metrics'])
        self.assertNotIn('seconds_to_alertmanager', p['metrics'])
        self.assertEqual(p['details']['clear_status'], 200)

    def test_traffic_takes_the_load_slot(self):
        # A load probe submitted while a drill with traffic runs waits for
        # it: two loads at once would falsify both.
        r = self.daemon.submit(spec(f"""  - name: drill
    type: alert-drill
    prometheus: {self.prom.url}
    alert: HighErrorRate
    trigger: {{ method: POST, url: "{self.demo.url}/admin/fault?errors=0.5" }}
    clear: {{ method: POST, url: "{self.demo.url}/admin/fault?errors=0" }}
    within: 30s
    poll_interval: 250ms
    traffic: {{ rate: 20, path: /v1/predict }}
""", self.demo.url + '/healthz'))
        self.assertEqual(r.status, 201, r)
        drill_id = r.json['id']
        deadline = time.monotonic() + 20
        while self.daemon.get('/v1/runs/%d' % drill_id).json['state'] == 'queued':
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        r = self.daemon.submit(spec("""  - name: load
    type: load
    mode: rate
    rate: 10
    duration: 1s
""", self.demo.url + '/v1/predict'))
        self.assertEqual(r.status, 201, r)
        load_id = r.json['id']
        waiting = False
        while not waiting and time.monotonic() < deadline:
            run = self.daemon.get('/v1/runs/%d' % load_id).json
            cur = (run.get('progress') or {}).get('current') or {}
            waiting = cur.get('waiting') == 'waiting for a load slot'
            if run['state'] in lib.FINAL_STATES:
                break
            time.sleep(0.05)
        drill = self.daemon.wait_run(drill_id, timeout=90)
        load = self.daemon.wait_run(load_id, timeout=60)
        self.assertTrue(waiting, load)
        self.assertEqual(drill['verdict'], 'PASS', drill)
        self.assertEqual(load['verdict'], 'PASS', load)
        self.assertGreaterEqual(load['probes'][0]['started_at'],
                                drill['probes'][0]['finished_at'])
        # `path` replaced the target's /healthz: the traffic made the errors.
        self.assertGreater(drill['probes'][0]['metrics']['traffic_errors'], 0)

    def test_inhibited(self):
        # Maintenance fires all the time; the inhibit rule mutes tickets.
        self.prom.wait_for(lambda: any(a['labels']['alertname'] == 'Maintenance' for a in
                                       lib.http('GET', self.am.url + '/api/v2/alerts').json),
                           timeout=30, what='Maintenance in Alertmanager')
        run, p = self.drill(self.am, '    notify: true\n    notify_within: 20s\n',
                            alert='ErrorsTicket', severity='ticket')
        self.assertEqual((run['verdict'], p['state']), ('FAIL', 'failed'), run)
        self.assertEqual(p['details']['stage'], 'inhibited')
        maint = [a for a in lib.http('GET', self.am.url + '/api/v2/alerts').json
                 if a['labels']['alertname'] == 'Maintenance']
        self.assertEqual(len(maint), 1, maint)
        self.assertTrue(p['error'].startswith(
            'inhibited: Alertmanager at %s suppresses alert ErrorsTicket because alert(s) %s '
            'inhibit it' % (self.am.url, maint[0]['fingerprint'])), p['error'])
        self.assertEqual(p['details']['alertmanager']['inhibited_by'], [maint[0]['fingerprint']])

    def test_alertmanager_down_errors_before_trigger(self):
        class Down:
            url = 'http://127.0.0.1:%d' % lib.free_port()
        run, p = self.drill(Down, '    notify: true\n', traffic='')
        self.assertEqual((run['verdict'], p['state']), ('ERROR', 'error'), run)
        self.assertIn('readyd could not follow it into Alertmanager; nothing was triggered',
                      p['error'])
        self.assertIn(Down.url + '/api/v2/alerts', p['error'])
        self.assertNotIn('trigger_status', p['details'])  # the fault was never sent

    def test_not_routed_to_receiver(self):
        run, p = self.drill(self.am, '    receiver: oncall\n')
        self.assertEqual((run['verdict'], p['state']), ('FAIL', 'failed'), run)
        self.assertEqual(p['details']['stage'], 'route')
        self.assertTrue(p['error'].startswith(
            'not routed to receiver oncall: Alertmanager at %s routes alert HighErrorRate '
            'to readyd' % self.am.url), p['error'])


class DocumentedAlertmanager(lib.Alertmanager):
    """An Alertmanager running the alertmanager.yml docs/operations.md
    gives operators, pointed at a readyd: only its URL and token file
    differ."""

    def __init__(self, readyd_url, token):
        super().__init__()
        with open(OPERATIONS_MD, encoding='utf-8') as f:
            m = re.search(r'```yaml\n# alertmanager.yml\n(.*?)```', f.read(), re.S)
        assert m, 'no alertmanager.yml in docs/operations.md'
        self.text = m.group(1)
        for doc, here in (('https://readyd.example:7411', readyd_url),
                          ('/etc/alertmanager/readyd-token',
                           self.write('readyd-token', token))):
            assert doc in self.text, doc
            self.text = self.text.replace(doc, here)

    def config(self):
        return self.text


class Webhook(lib.TestCase):
    """The receiver endpoint alone: tokens, payloads, bounds."""

    PAYLOAD = {
        'version': '4', 'groupKey': '{}:{alertname="X"}', 'status': 'firing',
        'receiver': 'readyd', 'groupLabels': {'alertname': 'X'},
        'commonLabels': {'alertname': 'X'}, 'commonAnnotations': {},
        'externalURL': 'http://am.example:9093', 'truncatedAlerts': 0,
        'alerts': [{'status': 'firing', 'labels': {'alertname': 'X', 'severity': 'page'},
                    'annotations': {}, 'startsAt': '2026-12-02T03:50:01.123456789Z',
                    'endsAt': '0001-01-01T00:00:00Z', 'generatorURL': 'http://p/graph',
                    'fingerprint': 'a1b2c3d4e5f60718'}],
    }

    @classmethod
    def setUpClass(cls):
        cls.daemon = lib.Daemon(config=config()).start()

    @classmethod
    def tearDownClass(cls):
        cls.daemon.__exit__(None, None, None)

    def post(self, body, token=TOKENS['notifier']):
        h = {'Content-Type': 'application/json'}
        if token:
            h['Authorization'] = 'Bearer ' + token
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        return self.daemon.request('POST', '/v1/alertmanager/webhook', body, h)

    def test_tokens(self):
        r = self.post(self.PAYLOAD, token=None)
        self.assertEqual(r.status, 401, r)
        self.assertEqual(r.headers['Content-Type'], 'application/problem+json')
        self.assertEqual(self.post(self.PAYLOAD, token='wrong').status, 401)
        for role in ('viewer', 'submitter'):
            r = self.post(self.PAYLOAD, token=TOKENS[role])
            self.assertEqual(r.status, 403, r)
            self.assertIn('needs the notifier role', r.json['detail'])
        r = self.post(self.PAYLOAD)
        self.assertEqual(r.status, 200, r)
        nid = r.json['id']
        self.assertEqual(self.post(self.PAYLOAD, token=TOKENS['admin']).status, 200)
        # The notifier token delivers and nothing else.
        h = {'Authorization': 'Bearer ' + TOKENS['notifier']}
        self.assertEqual(self.daemon.request('GET', '/v1/runs', headers=h).status, 403)
        self.assertEqual(self.daemon.request('GET', '/v1/alertmanager/notifications',
                                             headers=h).status, 403)
        h = {'Authorization': 'Bearer ' + TOKENS['viewer']}
        self.assertEqual(self.daemon.request('GET', '/v1/alertmanager/notifications',
                                             headers=h).status, 403)
        r = self.daemon.request('GET', '/v1/alertmanager/notifications?limit=1',
                                headers={'Authorization': 'Bearer ' + TOKENS['admin']})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.json['items']), 1)
        self.assertEqual(r.json['items'][0]['id'], nid + 1)  # newest first
        self.assertEqual(r.json['items'][0]['sender'], 'admin')
        self.assertEqual(r.json['items'][0]['payload'], self.PAYLOAD)

    def bad(self, mutate, path):
        body = json.loads(json.dumps(self.PAYLOAD))
        mutate(body)
        r = self.post(body)
        self.assertEqual(r.status, 422, r)
        self.assertEqual(r.headers['Content-Type'], 'application/problem+json')
        self.assertEqual(r.json['errors'][0]['path'], path, r.json)
        return r.json

    def test_malformed_payloads(self):
        self.bad(lambda b: b.update(version='3'), 'version')
        self.bad(lambda b: b.pop('receiver'), 'receiver')
        self.bad(lambda b: b.update(status='burning'), 'status')
        self.bad(lambda b: b.pop('alerts'), 'alerts')
        self.bad(lambda b: b.update(alerts=[]), 'alerts')
        self.bad(lambda b: b['alerts'][0].update(status=1), 'alerts[0].status')
        self.bad(lambda b: b['alerts'][0]['labels'].update(severity=3),
                 'alerts[0].labels.severity')
        self.bad(lambda b: b['alerts'][0]['labels'].pop('alertname'), 'alerts[0].labels')
        self.bad(lambda b: b['alerts'][0].update(startsAt='yesterday'), 'alerts[0].startsAt')
        self.bad(lambda b: b['alerts'].append('x'), 'alerts[1]')
        self.bad(lambda b: b.update(commonLabels=[]), 'commonLabels')
        p = self.bad(lambda b: b['alerts'][0].update(fingerprint=7), 'alerts[0].fingerprint')
        self.assertIn('must be a string', p['detail'])
        r = self.post('{"version": "4"')
        self.assertEqual(r.status, 422, r)
        self.assertEqual(r.json['errors'][0]['path'], '')
        r = self.post('[1, 2]')
        self.assertEqual(r.status, 422, r)
        # Bounded: a payload past 256 KiB is refused whole.
        big = json.loads(json.dumps(self.PAYLOAD))
        big['commonAnnotations'] = {'description': 'x' * (300 * 1024)}
        r = self.post(big)
        self.assertEqual(r.status, 413, r)

    def test_drill_fields_need_alertmanager(self):
        r = self.daemon.submit(spec("""  - name: drill
    type: alert-drill
    prometheus: http://127.0.0.1:9
    alert: X
    trigger: { url: "http://127.0.0.1:9/x" }
    notify: true
""", 'http://127.0.0.1:9/'), headers={'Authorization': 'Bearer ' + TOKENS['admin']})
        self.assertEqual(r.status, 422, r)
        self.assertEqual(r.json['errors'][0]['path'], 'probes[0].notify')

    def test_documented_alertmanager_config(self):
        # A paging alert reaches readyd and still the humans' receiver;
        # another alert only the humans'. readyd receives the delivery
        # with the token read from credentials_file.
        with DocumentedAlertmanager(self.daemon.url, TOKENS['notifier']) as am:
            self.track(am)
            now = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
            alerts = [{'labels': {'alertname': 'DocPage', 'severity': 'page'}, 'startsAt': now},
                      {'labels': {'alertname': 'DocTicket', 'severity': 'ticket'},
                       'startsAt': now}]
            r = lib.http('POST', am.url + '/api/v2/alerts', json.dumps(alerts).encode(),
                         {'Content-Type': 'application/json'}, timeout=10.0)
            self.assertEqual(r.status, 200, r)
            routed = {}
            deadline = time.monotonic() + 20
            while len(routed) < 2 and time.monotonic() < deadline:
                routed = {a['labels']['alertname']: sorted(x['name'] for x in a['receivers'])
                          for a in lib.http('GET', am.url + '/api/v2/alerts').json}
                time.sleep(0.1)
            print('\nthe documented route: DocPage to %s, DocTicket to %s'
                  % (routed.get('DocPage'), routed.get('DocTicket')))
            self.assertEqual(routed, {'DocPage': ['oncall', 'readyd'], 'DocTicket': ['oncall']})
            # The documented group_wait is 10s.
            admin = {'Authorization': 'Bearer ' + TOKENS['admin']}
            got = []
            deadline = time.monotonic() + 30
            while not got and time.monotonic() < deadline:
                items = self.daemon.request('GET', '/v1/alertmanager/notifications',
                                            headers=admin).json['items']
                got = [(i['sender'], i['payload']['receiver'],
                        sorted(a['labels']['alertname'] for a in i['payload']['alerts']))
                       for i in items
                       if i['payload']['alerts'][0]['labels']['alertname'].startswith('Doc')]
                time.sleep(0.25)
            self.assertEqual(got, [('notifier', 'readyd', ['DocPage'])])


if __name__ == '__main__':
    lib.main()
