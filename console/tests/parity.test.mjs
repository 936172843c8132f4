// The console adds nothing to the API: every request it makes with a user's token is the
// public REST call, and the API refuses it exactly when it refuses the same request sent by
// curl. The test walks the console as a user who may do little, records every request the
// page sends (with its bearer token and body) and the answer it got, then sends each one again
// with curl and compares: status, and Google's error status and message.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { browserForFile, shot, signIn, withServer } from './harness.mjs';

const openPage = browserForFile();

/** The same request with curl (plain HTTP, outside the browser; `.ci/run` installs curl). */
function curl(r) {
  const args = ['-s', '-X', r.method, '-H', `Authorization: ${r.authorization}`, '-w', '\n%{http_code}'];
  if (r.body !== null) args.push('-H', 'Content-Type: application/json', '--data-binary', r.body);
  args.push(r.url);
  const out = execFileSync('curl', args, { encoding: 'utf8' });
  const i = out.lastIndexOf('\n');
  return { status: Number(out.slice(i + 1)), text: out.slice(0, i) };
}

const errorOf = (text) => {
  try {
    const e = JSON.parse(text).error;
    return e && typeof e === 'object' ? { status: e.status, message: e.message } : null;
  } catch {
    return null;
  }
};

test('a request the console makes with a user’s token is refused exactly when the same request from curl is', async () => {
  await withServer(async (s) => {
    const admin = await s.token('admin@example.com');
    const [st, sa] = await s.rest(admin, 'POST', '/v1/projects/app-project/serviceAccounts', { accountId: 'worker-sa' });
    assert.equal(st, 200);

    const page = await openPage();
    const seen = [];
    page.on('requestfinished', async (req) => {
      const url = new URL(req.url());
      if (url.pathname.startsWith('/console')) return;
      const res = await req.response();
      const headers = await req.allHeaders();
      seen.push({
        method: req.method(),
        url: req.url(),
        path: url.pathname + url.search,
        authorization: headers.authorization ?? '',
        body: req.postData(),
        status: res.status(),
        text: await res.text().catch(() => ''),
      });
    });
    await signIn(page, s, 'dev@example.com');
    // The errors the page showed, step by step.
    const shownErrors = [];
    const snap = async () => {
      shownErrors.push(...(await page.locator('.banner.error .message').allTextContents()));
    };
    const nav = (name) => page.getByRole('navigation', { name: 'Products' }).getByRole('link', { name, exact: true });

    // Deploy with an account dev may not act as: the actAs denial, then the preflight's.
    await page.getByRole('link', { name: 'Deploy container' }).click();
    await page.getByLabel('Worker pool name').fill('wp-parity');
    await page.getByLabel('Container command').fill('sleep');
    await page.getByLabel('Container arguments').fill('3600');
    await page.getByRole('button', { name: 'Container(s), Volumes, Networking, Security' }).click();
    await page.getByRole('tab', { name: 'Security' }).click();
    await page.getByLabel('Service account', { exact: true }).selectOption(sa.email);
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await page.locator('.preflight').waitFor();
    await shot(page, 'parity', 'deploy-denied');
    await snap();

    // Grant access on the account: dev may not set its policy.
    await nav('Service accounts').click();
    await page.getByRole('link', { name: sa.email }).click();
    await page.getByRole('tab', { name: 'Principals with access' }).click();
    await page.getByRole('button', { name: 'Grant access' }).click();
    await page.getByLabel('New principals').fill('user:dev@example.com');
    await page.getByLabel('Select a role').fill('Service Account User');
    await page.getByRole('option').filter({ has: page.locator('.option-sub', { hasText: /^roles\/iam\.serviceAccountUser$/ }) }).click();
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('alert').first().waitFor();
    await shot(page, 'parity', 'grant-denied');
    await snap();

    // Organization policies of app-project: dev may not even list them.
    await nav('Organization policies').click();
    await page.getByRole('heading', { name: 'Organization policies' }).waitFor();
    await page.getByRole('alert').first().waitFor();
    await shot(page, 'parity', 'org-policies-denied');
    await snap();
    await page.waitForLoadState('networkidle');

    // Every API request went out with dev's own token (the admin credential only ever to
    // /runpool/v1/tokens, which this session never called), and to a public API.
    const api = seen.filter((r) => !r.path.startsWith('/runpool/v1/console/sessions'));
    const tokens = new Set(api.map((r) => r.authorization));
    assert.equal(tokens.size, 1, [...tokens].join(', '));
    const [, info] = await s.rest([...tokens][0].replace(/^Bearer /, ''), 'GET', '/tokeninfo');
    assert.equal(info.email, 'dev@example.com');
    for (const r of api) assert.match(r.path, /^\/(v1|v2|v3|apis|tokeninfo)/, `${r.method} ${r.path}`);

    // Replay: every read (GET, and the read-only POST verbs), and every refused request (a
    // refusal wrote nothing, so it can be sent again as it was). Accepted writes are left
    // out: a second create would rightly conflict.
    const readOnly = /:(getIamPolicy|testIamPermissions|troubleshoot)$/;
    const replayed = api.filter((r) => r.method === 'GET' || r.status >= 400 || readOnly.test(r.path.split('?')[0]));
    const refused = replayed.filter((r) => r.status >= 400);
    assert.ok(refused.length >= 3, `refused requests: ${refused.map((r) => `${r.method} ${r.path} ${r.status}`).join('; ')}`);
    assert.ok(
      refused.some((r) => errorOf(r.text)?.message?.startsWith("Permission 'iam.serviceaccounts.actAs' denied")),
      'the actAs denial is among them',
    );
    assert.ok(refused.some((r) => r.path.endsWith(':setIamPolicy') || r.path.endsWith(':getIamPolicy')), 'a policy change is among them');
    assert.ok(refused.some((r) => r.path.startsWith('/v2/projects/app-project/constraints')), 'the org policy list is among them');
    const rows = [];
    for (const r of replayed) {
      const c = curl(r);
      rows.push(`${r.method} ${r.path}: console ${r.status}, curl ${c.status}`);
      assert.equal(c.status, r.status, `${r.method} ${r.path}`);
      assert.deepEqual(errorOf(c.text), errorOf(r.text), `${r.method} ${r.path}`);
    }
    // The page showed refusals as the API worded them, and no error of its own making.
    const messages = new Set(refused.map((r) => errorOf(r.text)?.message));
    assert.ok(shownErrors.length >= 3, shownErrors.join('\n'));
    for (const m of shownErrors) assert.ok(messages.has(m), `shown but not the API's: ${m}`);
    assert.ok(shownErrors.some((m) => m.startsWith("Permission 'iam.serviceaccounts.actAs' denied")));
    assert.ok(shownErrors.some((m) => m.includes('setIamPolicy')));
    assert.ok(shownErrors.some((m) => m.includes('orgpolicy.')));
    console.log(`replayed ${rows.length} requests with curl:\n  ${rows.join('\n  ')}`);
    assert.deepEqual(page.errors, []);
  });
});
