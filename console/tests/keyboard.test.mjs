// Keyboard use and labelled controls: every control has an accessible name; the deploy form's
// sections, tabs, the role picker and dialogs work without a mouse; a failing page shows the
// error, never a blank screen.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { browserForFile, shot, signIn, withServer } from './harness.mjs';

const openPage = browserForFile();

/** Visible controls without an accessible name (label, aria-label(ledby), or text). */
async function unlabelled(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('input, select, textarea, button, a[href], [role="tab"], [role="combobox"]')]
      .filter((el) => el.offsetParent !== null && el.type !== 'hidden')
      .filter((el) => {
        const labelled = (el.labels && el.labels.length > 0) || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
        const text = (el.textContent || '').trim();
        return !(labelled || ((el.tagName === 'BUTTON' || el.tagName === 'A' || el.getAttribute('role') === 'tab') && text));
      })
      .map((el) => el.outerHTML.slice(0, 120)),
  );
}

test('every control is labelled and the seed’s steps work from the keyboard', async () => {
  await withServer(async (s) => {
    const page = await openPage();
    await signIn(page, s, 'admin@example.com');
    assert.deepEqual(await unlabelled(page), []);

    await page.getByRole('link', { name: 'Deploy container' }).focus();
    await page.keyboard.press('Enter');
    await page.getByLabel('Worker pool name').waitFor();
    // The page's heading takes focus on arrival (in an effect, after the form is drawn: wait
    // for it); the form's first field is one Tab away.
    await page.waitForFunction(() => document.activeElement?.id === 'h-deploy');
    await page.keyboard.press('Tab');
    await page.keyboard.type('wp-keys');
    await page.keyboard.press('Tab'); // Region
    await page.keyboard.press('Tab'); // Container image URL
    await page.keyboard.press('Tab'); // Container command
    await page.keyboard.type('sleep');
    await page.keyboard.press('Tab'); // Container arguments
    await page.keyboard.type('3600');
    assert.equal(await page.getByLabel('Container command').inputValue(), 'sleep');
    assert.equal(await page.getByLabel('Container arguments').inputValue(), '3600');

    const sections = page.getByRole('button', { name: 'Container(s), Volumes, Networking, Security' });
    await sections.focus();
    await page.keyboard.press('Enter');
    assert.equal(await sections.getAttribute('aria-expanded'), 'true');
    await page.keyboard.press('Tab'); // the selected tab (Security)
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Security');
    await page.keyboard.press('ArrowLeft');
    assert.equal(await page.getByRole('tab', { name: 'Networking' }).getAttribute('aria-selected'), 'true');
    await page.keyboard.press('Home');
    assert.equal(await page.getByRole('tab', { name: 'Container(s)' }).getAttribute('aria-selected'), 'true');
    await page.keyboard.press('End');
    assert.equal(await page.getByRole('tab', { name: 'Security' }).getAttribute('aria-selected'), 'true');
    assert.deepEqual(await unlabelled(page), []);

    // The new-account dialog: opens from the keyboard, Escape closes it, focus stays inside.
    await page.getByRole('button', { name: 'Create a new service account' }).focus();
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog', { name: 'Create a new service account' });
    await dialog.waitFor();
    assert.deepEqual(await unlabelled(page), []);
    await shot(page, 'keyboard', 'dialog');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });

    // Submit with Enter in a field: the pool deploys.
    await page.getByLabel('Worker pool name').press('Enter');
    await page.getByRole('status').filter({ hasText: 'Worker pool wp-keys deployed' }).waitFor();

    // The role picker: type, arrow down, Enter.
    await page.getByRole('navigation', { name: 'Products' }).getByRole('link', { name: 'Service accounts' }).click();
    await page.getByRole('link', { name: 'Create service account' }).click();
    const picker = page.getByLabel('Grant this service account access to the project (optional)');
    await picker.fill('run invoker');
    await picker.press('ArrowDown');
    await picker.press('ArrowUp');
    await picker.press('Enter');
    assert.match(await picker.inputValue(), /^Cloud Run > Cloud Run Invoker$/);
    assert.deepEqual(await unlabelled(page), []);

    // A page the user may not read shows Google's error in the page, not a blank screen.
    await page.goto(`${s.endpoint}/console/#/run/workerpools/us-central1/no-such-pool?project=app-project`);
    await page.getByRole('alert').filter({ hasText: 'NOT_FOUND' }).waitFor();
    await shot(page, 'keyboard', 'not-found-shown');
    // Signed out: instructions, not a blank page.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByText('runpool console', { exact: true }).waitFor();
    assert.deepEqual(page.errors, []);
  });
});
