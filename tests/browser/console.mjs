// console.mjs: the web console (docs/console.md) in a real Chromium through
// Playwright. test_console.py starts readyd and the demo target, seeds runs
// and passes their URLs, tokens and run ids in the environment. Every step
// asserts what a person would see; screenshots of each page at desktop and
// phone size go to $ARTIFACTS. Exits non-zero on the first failed check.
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import path from 'node:path';

const env = process.env;
const base = env.READYD_URL;
const desktop = { width: 1280, height: 800 };
const phone = { width: 390, height: 844 };

async function api(method, p, body, token, type = 'application/yaml') {
  const r = await fetch(base + p, {
    method,
    body,
    headers: { Authorization: 'Bearer ' + token, 'Content-Type': type },
  });
  return { status: r.status, json: await r.json() };
}

async function shots(page, name) {
  for (const [label, size] of [['desktop', desktop], ['phone', phone]]) {
    await page.setViewportSize(size);
    await page.screenshot({ path: path.join(env.ARTIFACTS, `${name}-${label}.png`) });
  }
  await page.setViewportSize(desktop);
}

function step(name) {
  console.log(`console.mjs: ${name}`);
}

const browser = await chromium.launch({
  executablePath: env.CHROMIUM_BIN || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
const context = await browser.newContext({ viewport: desktop });
const page = await context.newPage();
let dialogs = 0;
const cspErrors = [];
page.on('dialog', (d) => {
  dialogs++;
  d.dismiss();
});
page.on('console', (m) => {
  if (/Content Security Policy/i.test(m.text())) cspErrors.push(m.text());
});
page.setDefaultTimeout(20000);

try {
  step('signed out: / sends to the sign-in form');
  await page.goto(base + '/');
  assert.match(page.url(), /\/login$/);
  await shots(page, 'login');

  step('a wrong token is refused');
  await page.fill('#token', 'not-a-token');
  await page.click('button[type=submit]');
  await page.getByText('not one readyd knows').waitFor();

  step('sign in with the submitter token');
  await page.fill('#token', env.SUBMITTER_TOKEN);
  await page.click('button[type=submit]');
  await page.waitForURL(base + '/');
  const cookie = (await context.cookies()).find((c) => c.name === 'readyd_session');
  assert.ok(cookie, 'session cookie set');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
  assert.match(cookie.value, /^[0-9a-f]{64}$/);
  assert.match(await page.textContent('#whoami'), /submitter-bot \(submitter\)/);

  step('the board lists every seeded service with verdict text and reasons');
  const board = page.locator('#board');
  for (const svc of ['checkout', 'payments', 'search']) await board.getByText(svc, { exact: true }).waitFor();
  const failRow = board.locator('tr', { hasText: 'payments' });
  assert.match(await failRow.textContent(), /FAIL/);
  assert.match(await failRow.textContent(), /health\.status == 418/);
  assert.match(await board.locator('tr', { hasText: 'checkout' }).textContent(), /PASS/);

  step('a <script> in a version is shown as text, never run');
  const xssRow = board.locator('tr', { hasText: 'search' });
  assert.ok((await xssRow.textContent()).includes(env.XSS), 'version shown escaped');
  assert.equal(await page.locator('#board script').count(), 0);
  assert.equal(dialogs, 0);
  await shots(page, 'board');

  step('the filter form narrows the board');
  await page.fill('input[name=service]', 'pay');
  await page.click('form.filter button');
  await page.waitForURL(/service=pay/);
  assert.equal(await page.locator('#board tbody tr').count(), 1);
  assert.match(await page.textContent('#board'), /payments/);

  step('the service page draws trends with the threshold line');
  await page.goto(base + '/');
  await page.click('#board a[href="/services/checkout"]');
  await page.waitForURL(base + '/services/checkout');
  assert.ok((await page.locator('svg line.threshold').count()) >= 1, 'threshold line');
  assert.ok((await page.locator('svg line.baseline').count()) >= 1, 'baseline line');
  assert.match(await page.textContent('svg .threshold-label >> nth=1'), /threshold 500/);
  assert.ok((await page.locator('svg a.point').count()) >= 2, 'one dot per run');
  const href = await page.locator('svg a.point').first().getAttribute('href');
  assert.match(href, /^\/runs\/\d+$/);
  assert.equal(await page.locator('#history tbody tr').count(), 2);
  await shots(page, 'service');

  step('compare two runs: gates side by side, percentile curves overlaid');
  await page.goto(`${base}/compare?a=${env.RUN_PASS1}&b=${env.RUN_PASS2}`);
  await page.locator('#compare-gates').waitFor();
  assert.match(await page.textContent('#side-A'), /1\.0\.0/);
  assert.match(await page.textContent('#side-B'), /1\.1\.0/);
  assert.ok((await page.locator('svg polyline.series-a').count()) >= 1, 'curve A');
  assert.ok((await page.locator('svg polyline.series-b').count()) >= 1, 'curve B');
  await shots(page, 'compare');

  step('a run started through the API updates live on its page, then shows its verdict');
  const live = await api('POST', '/v1/runs', env.LIVE_SPEC, env.SUBMITTER_TOKEN);
  assert.equal(live.status, 201);
  await page.goto(`${base}/runs/${live.json.id}`);
  await page.locator('#live').waitFor();
  await page.evaluate(() => { window.notReloaded = true; });
  await page.waitForFunction(() => document.body.dataset.live === 'progress');
  assert.match(await page.textContent('#live-probe'), /latency/);
  // The live p99 shows before the run ends (it is 6 s long; one reading a second).
  await page.waitForFunction(() => {
    const e = document.getElementById('live-p99');
    return e && /^\d+\.\d\d$/.test(e.textContent);
  }, null, { timeout: 8000 });
  await shots(page, 'run-live');
  await page.waitForFunction(() => document.body.dataset.live === 'ended', null, { timeout: 30000 });
  assert.equal(await page.evaluate(() => window.notReloaded), true, 'no reload');
  assert.match(await page.textContent('#verdict'), /PASS/);
  assert.equal(await page.locator('#live').count(), 0);
  assert.ok(await page.locator('#gates').count(), 'report body');
  await shots(page, 'run');

  step('report downloads');
  const md = await page.request.get(`${base}/runs/${live.json.id}/report?format=markdown`);
  assert.equal(md.status(), 200);
  assert.match(await md.text(), /PASS/);

  step('invalidate a run from its page');
  await page.goto(`${base}/runs/${env.RUN_PASS1}`);
  await page.click('details.changes summary');
  await page.fill('#invalidate input[name=reason]', 'measured during an outage');
  await page.click('#invalidate button');
  await page.waitForURL(`${base}/runs/${env.RUN_PASS1}`);
  const inv = await api('GET', `/v1/runs/${env.RUN_PASS1}`, undefined, env.VIEWER_TOKEN);
  assert.equal(inv.json.invalidated.reason, 'measured during an outage');
  assert.equal(await page.locator('#invalidate').count(), 0);

  step('re-judge a failed run from its page with other gates');
  await page.goto(`${base}/runs/${env.RUN_FAIL}`);
  await page.click('details.changes summary');
  const gatesBox = page.locator('#rejudge textarea[name=gates]');
  assert.equal(await gatesBox.inputValue(), 'health.status == 418\nlatency.p95_ms < 500\n');
  await gatesBox.fill('health.status == 200\nlatency.p95_ms < 500');
  await page.click('#rejudge button');
  await page.waitForURL(`${base}/runs/${env.RUN_FAIL}`);
  await page.locator('#rejudgements').waitFor();
  assert.match(await page.textContent('#rejudgements'), /PASS[\s\S]*submitter-bot/);
  assert.match(await page.textContent('#verdict'), /FAIL/, 'the run keeps its own verdict');
  const rj = await api('GET', `/v1/runs/${env.RUN_FAIL}`, undefined, env.VIEWER_TOKEN);
  const last = rj.json.rejudgements[rj.json.rejudgements.length - 1];
  assert.equal(last.verdict, 'PASS');
  assert.equal(last.requested_by, 'submitter-bot');
  await shots(page, 'rejudged');

  step('a POST without the CSRF token is refused 403');
  const long = await api('POST', '/v1/runs', env.LONG_SPEC, env.SUBMITTER_TOKEN);
  assert.equal(long.status, 201);
  await page.goto(`${base}/runs/${long.json.id}`);
  const forged = await page.evaluate(async (id) => {
    const r = await fetch(`/runs/${id}/cancel`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'csrf=' + '0'.repeat(64),
    });
    return r.status;
  }, long.json.id);
  assert.equal(forged, 403);
  const still = await api('GET', `/v1/runs/${long.json.id}`, undefined, env.VIEWER_TOKEN);
  assert.ok(['queued', 'running'].includes(still.json.state), still.json.state);

  step('cancel from the console');
  await page.click('#cancel');
  await page.waitForFunction(() => document.body.dataset.live === 'ended' ||
    /CANCELLED|cancelled/.test(document.querySelector('main').textContent), null, { timeout: 30000 });
  await page.waitForFunction(() => !document.getElementById('live'), null, { timeout: 30000 });
  const after = await api('GET', `/v1/runs/${long.json.id}`, undefined, env.VIEWER_TOKEN);
  assert.equal(after.json.state, 'cancelled');
  const audit = JSON.stringify(after.json);
  assert.match(audit, /submitter-bot/);

  step('with JavaScript off, an admin revokes a waiver from the service page');
  const waive = (reason) => api('POST', '/v1/services/payments/waivers', JSON.stringify({
    expr: 'health.status == 418', reason, approver: 'sre', expires: '1d',
  }), env.ADMIN_TOKEN, 'application/json');
  const w1 = await waive('known teapot');
  const w2 = await waive('still waived');
  assert.equal(w1.status, 201);
  assert.equal(w2.status, 201);
  const noJs = await browser.newContext({ viewport: desktop, javaScriptEnabled: false });
  const admin = await noJs.newPage();
  admin.setDefaultTimeout(20000);
  await admin.goto(base + '/login');
  await admin.fill('#token', env.ADMIN_TOKEN);
  await admin.click('button[type=submit]');
  await admin.waitForURL(base + '/');
  await admin.goto(base + '/services/payments');
  await admin.locator(`#revoke-${w1.json.id}`).waitFor();
  const forgedRevoke = await noJs.request.post(
    `${base}/services/payments/waivers/${w1.json.id}/revoke`,
    { form: { csrf: '0'.repeat(64) }, maxRedirects: 0 });
  assert.equal(forgedRevoke.status(), 403);
  await admin.click(`#revoke-${w1.json.id}`);
  await admin.waitForURL(base + '/services/payments');
  assert.match(await admin.textContent(`#waiver-${w1.json.id}`), /revoked\)/);
  assert.equal(await admin.locator(`#revoke-${w1.json.id}`).count(), 0);
  assert.equal(await admin.locator(`#revoke-${w2.json.id}`).count(), 1);
  const ws = await api('GET', '/v1/services/payments/waivers', undefined, env.VIEWER_TOKEN);
  const revoked = ws.json.items.find((w) => w.id === w1.json.id);
  assert.equal(revoked.active, false);
  assert.ok(revoked.revoked_at, 'revoked_at set');
  await admin.screenshot({ path: path.join(env.ARTIFACTS, 'service-revoked-nojs-desktop.png') });
  await noJs.close();

  step('a viewer signs in and sees no cancel button');
  await page.click('header form.who button');
  await page.waitForURL(base + '/login');
  await page.fill('#token', env.VIEWER_TOKEN);
  await page.click('button[type=submit]');
  await page.waitForURL(base + '/');
  const active = await api('POST', '/v1/runs', env.LONG_SPEC, env.SUBMITTER_TOKEN);
  await page.goto(`${base}/runs/${active.json.id}`);
  assert.equal(await page.locator('#cancel').count(), 0);
  await api('POST', `/v1/runs/${active.json.id}/cancel`, '{}', env.SUBMITTER_TOKEN);

  step('nor a re-judge form, nor a revoke button');
  await page.goto(`${base}/runs/${env.RUN_FAIL}`);
  await page.locator('#rejudgements').waitFor();
  assert.equal(await page.locator('#rejudge').count(), 0);
  await page.goto(base + '/services/payments');
  await page.locator(`#waiver-${w2.json.id}`).waitFor();
  assert.equal(await page.locator('form.revoke').count(), 0);

  step('sign out ends the session');
  await page.click('header form.who button');
  await page.waitForURL(base + '/login');
  await page.goto(base + '/services/checkout');
  assert.match(page.url(), /\/login$/);

  assert.equal(dialogs, 0, 'no dialog fired');
  assert.deepEqual(cspErrors, [], 'no CSP violation');
  step('ok');
} finally {
  await browser.close();
}
