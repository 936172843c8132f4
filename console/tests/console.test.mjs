// End-to-end: the seed's Console steps, in Debian's Chromium, against the real `runpool`
// binary. Each test starts its own server (a fresh world) and saves screenshots of its steps
// under console/test-results/.
//
// Run: node --test --test-concurrency=1 console/tests/   (scripts/test does, after cargo test)

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { join } from 'node:path';
import { RESULTS, browserForFile, shot, signIn, withServer } from './harness.mjs';

const POOLS = '/v2/projects/app-project/locations/us-central1/workerPools';
const AGENT = 'service-300000000001@serverless-robot-prod.iam.gserviceaccount.com';
const DEFAULT_COMPUTE = '300000000001-compute@developer.gserviceaccount.com';
const DEDICATED = 'wp-default@app-project.iam.gserviceaccount.com';
const actAsDenied = (email) =>
  `Permission 'iam.serviceaccounts.actAs' denied on service account ${email} (or it may not exist).`;

const openPage = browserForFile();

async function createAccount(s, project, id) {
  const admin = await s.token('admin@example.com');
  const [status, body] = await s.rest(admin, 'POST', `/v1/projects/${project}/serviceAccounts`, { accountId: id });
  assert.equal(status, 200, JSON.stringify(body));
  return body.email;
}

async function grantOnAccount(s, email, member, role) {
  const admin = await s.token('admin@example.com');
  const base = `/v1/projects/-/serviceAccounts/${email}`;
  const [, policy] = await s.rest(admin, 'POST', `${base}:getIamPolicy`, {});
  policy.bindings = [...(policy.bindings ?? []), { role, members: [member] }];
  const [status, body] = await s.rest(admin, 'POST', `${base}:setIamPolicy`, { policy });
  assert.equal(status, 200, JSON.stringify(body));
}

async function grantOnProject(s, project, member, role) {
  const admin = await s.token('admin@example.com');
  const [, policy] = await s.rest(admin, 'POST', `/v3/projects/${project}:getIamPolicy`, {});
  policy.bindings = [...(policy.bindings ?? []), { role, members: [member] }];
  const [status, body] = await s.rest(admin, 'POST', `/v3/projects/${project}:setIamPolicy`, { policy });
  assert.equal(status, 200, JSON.stringify(body));
}

/** A product page from the navigation menu. */
const nav = (page, name) => page.getByRole('navigation', { name: 'Products' }).getByRole('link', { name, exact: true });

/** Cloud Run → Worker pools → Deploy container, filled in; the Security tab opened. */
async function openDeployForm(page, name) {
  await nav(page, 'Worker pools').click();
  await page.getByRole('link', { name: 'Deploy container' }).click();
  await page.getByLabel('Worker pool name').fill(name);
  await page.getByLabel('Container command').fill('sleep');
  await page.getByLabel('Container arguments').fill('3600');
  await page.getByLabel('Number of instances').fill('1');
  await page.getByRole('button', { name: 'Container(s), Volumes, Networking, Security' }).click();
  await page.getByRole('tab', { name: 'Security' }).click();
}

/** Click Create (or Deploy) and wait until this attempt's progress has settled, one way or the other. */
async function clickCreate(page, button = 'Create') {
  const progress = page.locator('.progress');
  const n = (await progress.count()) ? Number(await progress.getAttribute('data-attempt')) : 0;
  await page.getByRole('button', { name: button, exact: true }).click();
  await page.locator(`.progress[data-attempt="${n + 1}"][data-busy="false"]`).waitFor({ timeout: 60_000 });
}

/** IAM → Service accounts → the account → Principals with access → Grant access → Save. */
async function grantInConsole(page, project, email, principal, roleName, roleTitle, name) {
  await page.getByLabel('Project', { exact: true }).selectOption(project);
  await nav(page, 'Service accounts').click();
  await page.getByRole('link', { name: email }).click();
  await page.getByRole('tab', { name: 'Principals with access' }).click();
  await page.getByRole('button', { name: 'Grant access' }).click();
  await page.getByLabel('New principals').fill(principal);
  await page.getByLabel('Select a role').fill(roleTitle);
  await page
    .getByRole('option')
    .filter({ has: page.locator('.option-sub', { hasText: new RegExp(`^${roleName.replace('.', '\\.')}$`) }) })
    .click();
  await shot(page, name, 'grant-access-filled');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByRole('status').filter({ hasText: `Granted` }).waitFor();
  await page.getByRole('table', { name: 'Principals with access' }).getByText(principal).first().waitFor();
  await shot(page, name, 'grant-access-saved');
}

describe('the web console', () => {
  test('the one-time link signs the browser in as the CLI account, once; an admin can switch users', async () => {
    await withServer(async (s) => {
      const page = await openPage();
      const link = s.signInLink('admin@example.com');
      await page.goto(link);
      await page.getByTestId('whoami').filter({ hasText: 'admin@example.com' }).waitFor();
      assert.ok(!page.url().includes('code='), `the code left the address bar: ${page.url()}`);
      await page.getByRole('heading', { name: 'Worker pools' }).waitFor();
      await shot(page, 'sign-in', 'signed-in');

      // A second use of the same link fails, and says why.
      const again = await openPage();
      await again.goto(link);
      await again.getByRole('alert').filter({ hasText: 'already used' }).waitFor();
      await shot(again, 'sign-in', 'second-use-refused');

      // `--account` picks another of the CLI's accounts.
      s.cli(['auth', 'login', 'dev@example.com'], { check: true });
      const devLink = s.cli(['console', '--no-browser', '--account', 'admin@example.com'], { check: true }).stdout.trim();
      const third = await openPage();
      await third.goto(devLink);
      await third.getByTestId('whoami').filter({ hasText: 'admin@example.com' }).waitFor();

      // The admin switches to a simulated user: the console then acts as that user.
      await page.getByRole('button', { name: 'Switch user' }).click();
      await page.getByLabel('User email').fill('dev@example.com');
      await page.getByRole('button', { name: 'Switch', exact: true }).click();
      await page.getByTestId('whoami').filter({ hasText: 'dev@example.com' }).waitFor();
      await shot(page, 'sign-in', 'switched-to-dev');
      assert.deepEqual([...page.errors, ...again.errors, ...third.errors], []);
    });
  });

  test('create an account from the Security tab while deploying; the details pane shows it', async () => {
    await withServer(async (s) => {
      const page = await openPage();
      await signIn(page, s, 'admin@example.com');
      await openDeployForm(page, 'wp-new');
      await shot(page, 'create-account', 'security-tab');
      await page.getByRole('button', { name: 'Create a new service account' }).click();
      const dialog = page.getByRole('dialog', { name: 'Create a new service account' });
      await dialog.getByLabel('Service account name').fill('Worker identity');
      assert.equal(await dialog.getByLabel('Service account ID').inputValue(), 'worker-identity');
      await shot(page, 'create-account', 'dialog');
      await dialog.getByRole('button', { name: 'Create', exact: true }).click();
      await dialog.waitFor({ state: 'hidden' });
      const email = 'worker-identity@app-project.iam.gserviceaccount.com';
      assert.equal(await page.getByLabel('Service account', { exact: true }).inputValue(), email);
      await shot(page, 'create-account', 'account-selected');

      await clickCreate(page);
      await page.getByRole('status').filter({ hasText: 'Worker pool wp-new deployed' }).waitFor();
      assert.equal(await page.locator('.progress li[data-state="ok"]').count() >= 2, true);
      await shot(page, 'create-account', 'deployed');

      // The details pane's Security tab shows the account, drawn and checked.
      await page.getByRole('link', { name: 'View worker pool wp-new' }).click();
      await page.getByRole('tab', { name: 'Security', selected: true }).waitFor();
      await page.getByTestId('identity-view').waitFor();
      assert.ok((await page.locator('.identity').textContent()).includes(email));
      assert.equal(await page.locator('li[data-check="actAs"]').getAttribute('data-state'), 'ok');
      assert.equal(await page.locator('li[data-check="constraint"]').getAttribute('data-state'), 'na');
      await shot(page, 'create-account', 'details-security');

      // Edit and deploy new revision: two instances now, same identity.
      await page.getByRole('link', { name: 'Edit and deploy new revision' }).click();
      assert.equal(await page.getByLabel('Worker pool name').isDisabled(), true);
      await page.getByLabel('Number of instances').fill('2');
      await page.getByRole('tab', { name: 'Security' }).click();
      assert.equal(await page.getByLabel('Service account', { exact: true }).inputValue(), email);
      await clickCreate(page, 'Deploy');
      await page.getByRole('status').filter({ hasText: 'Worker pool wp-new deployed' }).waitFor();
      await shot(page, 'create-account', 'new-revision-deployed');
      const [, edited] = await s.rest(await s.token('admin@example.com'), 'GET', `${POOLS}/wp-new`);
      assert.equal(edited.scaling.manualInstanceCount, 2);
      assert.equal(edited.template.serviceAccount, email);
      assert.match(edited.latestCreatedRevision, /wp-new-00002-/);

      // And the list names the pool with its account.
      await nav(page, 'Worker pools').click();
      await page.getByRole('table', { name: 'Worker pools' }).getByText(email).waitFor();
      await shot(page, 'create-account', 'list');

      // The API agrees: the pool runs as the new account.
      const [, pool] = await s.rest(await s.token('admin@example.com'), 'GET', `${POOLS}/wp-new`);
      assert.equal(pool.template.serviceAccount, email);
      assert.deepEqual(page.errors, []);
    });
  });

  test('a deployer without Service Account User sees the denial; a grant on Principals with access lets the deploy through', async () => {
    await withServer(async (s) => {
      const email = await createAccount(s, 'app-project', 'worker-sa');
      const dev = await openPage();
      await signIn(dev, s, 'dev@example.com');
      await openDeployForm(dev, 'wp-dev');
      await dev.getByLabel('Service account', { exact: true }).selectOption(email);
      await clickCreate(dev);
      await dev.getByRole('alert').filter({ hasText: actAsDenied(email) }).waitFor();
      await dev.locator('.preflight li[data-rule="ActAs"]').waitFor();
      await shot(dev, 'act-as', 'denied');

      const admin = await openPage();
      await signIn(admin, s, 'admin@example.com');
      await grantInConsole(admin, 'app-project', email, 'user:dev@example.com', 'roles/iam.serviceAccountUser', 'Service Account User', 'act-as');

      await clickCreate(dev);
      await dev.getByRole('status').filter({ hasText: 'Worker pool wp-dev deployed' }).waitFor();
      assert.equal(await dev.getByRole('alert').count(), 0);
      await shot(dev, 'act-as', 'deployed');
      const [, pool] = await s.rest(await s.token('admin@example.com'), 'GET', `${POOLS}/wp-dev`);
      assert.equal(pool.template.serviceAccount, email);
      assert.equal(pool.lastModifier, 'dev@example.com');
      assert.deepEqual([...dev.errors, ...admin.errors], []);
    });
  });

  test('a cross-project deploy fails until the org policy is off and the service agent is Token Creator', async () => {
    await withServer(async (s) => {
      const email = await createAccount(s, 'identity-project', 'shared-worker');
      await grantOnAccount(s, email, 'user:dev@example.com', 'roles/iam.serviceAccountUser');
      // What the pool's code may do as the account: pull work, write logs.
      await grantOnProject(s, 'app-project', `serviceAccount:${email}`, 'roles/pubsub.subscriber');
      await grantOnProject(s, 'app-project', `serviceAccount:${email}`, 'roles/logging.logWriter');
      const dev = await openPage();
      await signIn(dev, s, 'dev@example.com');
      await openDeployForm(dev, 'wp-cross');
      await dev.getByLabel('Service account', { exact: true }).selectOption(email);
      await clickCreate(dev);
      await dev.getByRole('alert').filter({ hasText: 'iam.disableCrossProjectServiceAccountUsage' }).waitFor();
      await dev.locator('.preflight li[data-rule="CrossProjectPolicy"]').waitFor();
      await dev.locator('.preflight li[data-rule="ServiceAgentTokenCreator"]').waitFor();
      await shot(dev, 'cross-project', 'both-rules-fail');

      // Organization policies: the account's project → the constraint → Manage policy →
      // Override parent's policy → Add a rule → Enforcement Off → Set policy.
      const admin = await openPage();
      await signIn(admin, s, 'admin@example.com');
      await nav(admin, 'Organization policies').click();
      await admin.getByLabel('Resource (organization, folder or project)').selectOption('projects/identity-project');
      await admin.getByRole('link', { name: 'Disable Cross-Project Service Account Usage' }).click();
      await admin.getByTestId('effective').filter({ hasText: /^Enforced$/ }).waitFor();
      await shot(admin, 'cross-project', 'constraint-enforced');
      await admin.getByRole('link', { name: 'Manage policy' }).click();
      await admin.getByLabel("Override parent's policy").check();
      await admin.getByRole('button', { name: 'Add a rule' }).click();
      await admin.getByLabel('Off', { exact: true }).check();
      await shot(admin, 'cross-project', 'manage-policy');
      await admin.getByRole('button', { name: 'Set policy' }).click();
      await admin.getByTestId('effective').filter({ hasText: 'Not enforced' }).waitFor();
      await admin.getByRole('status').filter({ hasText: 'Policy set on projects/identity-project' }).waitFor();
      await shot(admin, 'cross-project', 'constraint-off');

      // Still refused: the service agent cannot mint the account's tokens.
      await clickCreate(dev);
      await dev.getByRole('alert').filter({ hasText: 'Google Cloud Run Service Agent does not have permission' }).waitFor();
      await dev.locator('.preflight li[data-rule="ServiceAgentTokenCreator"]').waitFor();
      assert.equal(await dev.locator('.preflight li[data-rule="CrossProjectPolicy"]').count(), 0);
      await shot(dev, 'cross-project', 'agent-rule-fails');

      await grantInConsole(admin, 'identity-project', email, `serviceAccount:${AGENT}`, 'roles/iam.serviceAccountTokenCreator', 'Token Creator', 'cross-project');

      await clickCreate(dev);
      await dev.getByRole('status').filter({ hasText: 'Worker pool wp-cross deployed' }).waitFor();
      await shot(dev, 'cross-project', 'deployed');
      // The deployer's own view of the Security tab: what dev may not read shows as unknown.
      await dev.getByRole('link', { name: 'View worker pool wp-cross' }).click();
      await dev.getByTestId('identity-view').waitFor();
      assert.equal(await dev.locator('li[data-check="actAs"]').getAttribute('data-state'), 'ok');
      await shot(dev, 'cross-project', 'identity-view-as-dev');

      // The pool's Security tab: the identity view and the three conditions, all holding.
      await admin.getByLabel('Project', { exact: true }).selectOption('app-project');
      await nav(admin, 'Worker pools').click();
      await admin.getByRole('link', { name: 'wp-cross' }).click();
      await admin.getByRole('tab', { name: 'Security' }).click();
      await admin.getByTestId('identity-view').waitFor();
      for (const check of ['actAs', 'tokenCreator', 'constraint']) {
        assert.equal(await admin.locator(`li[data-check="${check}"]`).getAttribute('data-state'), 'ok', check);
      }
      const picture = await admin.getByTestId('identity-view').textContent();
      for (const role of ['roles/pubsub.subscriber', 'roles/logging.logWriter']) assert.ok(picture.includes(role), role);
      await shot(admin, 'cross-project', 'identity-view');
      // The picture alone, for the README (docs/identity-view.png is a copy of it).
      await admin.locator('.identity-view').screenshot({ path: join(RESULTS, 'identity-view.png') });
      assert.deepEqual([...dev.errors, ...admin.errors], []);
    });
  });

  test('a pool on the default compute account: its details pane recommends a dedicated service account', async () => {
    await withServer(async (s) => {
      const page = await openPage();
      await signIn(page, s, 'admin@example.com');
      // A command that runs (so the pool becomes Ready), and no service account: the default.
      await openDeployForm(page, 'wp-default');
      await page.getByRole('tab', { name: 'Container(s)' }).click();
      await page.getByLabel('Container command').fill('sh');
      await page.getByLabel('Container arguments').fill("-c 'sleep 3600'");
      await page.getByRole('tab', { name: 'Security' }).click();
      assert.equal(await page.getByLabel('Service account', { exact: true }).inputValue(), '');
      await clickCreate(page);
      await page.getByRole('status').filter({ hasText: 'Worker pool wp-default deployed' }).waitFor();
      const [, pool] = await s.rest(await s.token('admin@example.com'), 'GET', `${POOLS}/wp-default`);
      assert.equal(pool.template.serviceAccount, DEFAULT_COMPUTE);
      assert.deepEqual([pool.template.containers[0].command, pool.template.containers[0].args], [['sh'], ['-c', 'sleep 3600']]);

      // The details pane: Ready, and a Recommendations tab, reached from the keyboard.
      await page.getByRole('link', { name: 'View worker pool wp-default' }).click();
      await page.locator('#h-pool .pill.ok').filter({ hasText: 'Ready' }).waitFor({ timeout: 30_000 });
      const tab = page.getByRole('tab', { name: /^Recommendations \(\d+\)$/ });
      await tab.waitFor();
      await page.getByRole('tab', { selected: true }).focus();
      await page.keyboard.press('End');
      // The tab follows the address (a hashchange, handled asynchronously): wait for it.
      await page.getByRole('tab', { name: /^Recommendations \(\d+\)$/, selected: true }).waitFor();
      assert.match(await page.evaluate(() => document.activeElement?.textContent ?? ''), /^Recommendations/);
      assert.match(page.url(), /tab=recommendations/);

      // Cloud Run's identity recommendation, in words: why, the account, the roles, the commands.
      const rec = page.locator('.recs li[data-subtype="CREATE_DEDICATED_SERVICE_ACCOUNT"]');
      await rec.waitFor();
      const text = await rec.textContent();
      assert.match(text, /Worker pool wp-default runs as the default compute service account/);
      assert.ok(text.includes(DEFAULT_COMPUTE), text);
      assert.ok(text.includes(DEDICATED), text);
      assert.match(text, /Roles to add\s*None: its instances used no permissions/);
      const [status, listed] = await s.rest(
        await s.token('admin@example.com'),
        'GET',
        '/v1/projects/app-project/locations/us-central1/recommenders/google.run.service.IdentityRecommender/recommendations',
      );
      assert.equal(status, 200, JSON.stringify(listed));
      const mine = listed.recommendations.filter((r) => r.targetResources.includes(`//run.googleapis.com/${pool.name}`));
      assert.equal(mine.length, 1);
      const { overview } = mine[0].content;
      assert.equal(overview.recommendedServiceAccount, DEDICATED);
      assert.ok(overview.commands.length >= 2);
      for (const command of overview.commands) {
        await rec.getByRole('button', { name: `Copy command: ${command}`, exact: true }).waitFor();
      }
      assert.ok(overview.commands.some((c) => c.includes(`--service-account=${DEDICATED}`)));
      await shot(page, 'recommendations', 'identity-recommendation');
      await rec.screenshot({ path: join(RESULTS, 'identity-recommendation.png') });
      assert.deepEqual(page.errors, []);
    });
  });
});
