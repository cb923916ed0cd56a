"""Integration: the examples of docs/integrations/ work as written. Every
`readyctl` command line and every `curl` command in their code blocks is
run, in page order, against a real readyd and demo target, with the CI
variables they use set: each must exit 0 (the stored spec passes), the
`--junit` files must exist and be JUnit, and the replayed Flagger call
must answer 200 and the Argo call a PASS verdict."""
import glob
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'docs',
                    'integrations')
TOKEN = 'tok-integrations'

SPEC = """apiVersion: readyd/v1
timeout: 1m
probes:
  - name: predict
    type: http
    url: {url}/v1/predict
gates:
  - "predict.latency_ms < 2000"
"""


def code_blocks(text):
    return re.findall(r'^```[a-z]*\n(.*?)^```', text, re.S | re.M)


def commands(path):
    """The readyctl and curl commands of a page, in order (continuation
    lines joined; quoting as written for a shell)."""
    out = []
    with open(path, encoding='utf-8') as f:
        text = f.read()
    for block in code_blocks(text):
        block = block.replace('\\\n', ' ')
        for line in block.splitlines():
            # A whole line, a YAML list item or run:, or Jenkins' sh '...'.
            m = re.search(r"(?:^|- |run: |sh ')(readyctl [^'\n]*|curl .*)", line.strip())
            if m and not line.lstrip().startswith('#'):
                out.append(m.group(1).strip())
    return out


class IntegrationsDocsTest(lib.TestCase):
    def test_examples_run(self):
        pages = sorted(glob.glob(os.path.join(DOCS, '*.md')),
                       key=lambda p: (not p.endswith('README.md'), p))
        cfg = ('tokens:\n  - {name: ci, hash: %s, role: submitter, services: ["sentiment-*"]}\n'
               'allowed_targets: ["127.0.0.1"]\n' % hashlib.sha256(TOKEN.encode()).hexdigest())
        with lib.DemoTarget(latency='1ms') as demo, lib.Daemon(config=cfg) as d, \
                tempfile.TemporaryDirectory() as cwd:
            self.track(d)
            d.token = TOKEN
            with open(os.path.join(cwd, 'readiness.yaml'), 'w') as f:
                f.write(SPEC.format(url=demo.url))
            # Argo's and Flagger's calls read a stored spec for prod.
            r = d.request('PUT', '/v1/services/sentiment-api/specs/prod', SPEC.format(url=demo.url),
                          {'Content-Type': 'application/yaml'})
            self.assertEqual(r.status, 201, r)
            env = dict(os.environ, READYD_URL=d.url, READYD_TOKEN=TOKEN, VERSION='2.4.1',
                       GITHUB_SHA='0123456789abcdef', GITHUB_RUN_ID='77', GITHUB_RUN_ATTEMPT='1',
                       CI_COMMIT_SHORT_SHA='0123abcd', CI_JOB_ID='88',
                       GIT_COMMIT='fedcba9876543210', BUILD_TAG='jenkins-x-1',
                       PATH=os.path.dirname(os.path.abspath(lib.READYCTL_BIN)) + ':' +
                       os.environ['PATH'])
            ran = []
            for page in pages:
                for cmd in commands(page):
                    if cmd.startswith('curl'):
                        cmd = cmd.replace('https://readyd.example.internal', d.url)
                    p = subprocess.run(['bash', '-c', cmd], cwd=cwd, env=env, timeout=90,
                                       capture_output=True, text=True)
                    self.assertEqual(p.returncode, 0, '%s: %s\n%s%s' % (
                        os.path.basename(page), cmd, p.stdout, p.stderr))
                    ran.append((os.path.basename(page), cmd, p.stdout))
                    if '--junit readiness.xml' in cmd:
                        with open(os.path.join(cwd, 'readiness.xml')) as f:
                            xml = f.read()
                        self.assertIn('<testsuite', xml)
                        os.unlink(os.path.join(cwd, 'readiness.xml'))
            names = {page for page, _, _ in ran}
            self.assertEqual(names, {'README.md', 'argo-rollouts.md', 'flagger.md',
                                     'github-actions.md', 'gitlab-ci.md', 'jenkins.md'})
            for page, cmd, out in ran:
                if page == 'flagger.md':
                    self.assertEqual(out.strip(), '200', cmd)
                if page == 'argo-rollouts.md':
                    self.assertEqual(json.loads(out)['verdict'], 'PASS', cmd)
            # Each CI page ran one gate: a run per page plus README's.
            runs = d.get('/v1/runs?service=sentiment-api&limit=100').json['items']
            self.assertGreaterEqual(len(runs), 6)


if __name__ == '__main__':
    lib.main()
