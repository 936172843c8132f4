// First-page load time of the console: a fresh browser context (empty cache) opens the link
// `runpool console` printed and waits until the first page is usable: the sign-in code traded,
// who you are shown, and the worker pools of the project listed. Prints the median and
// slowest of N runs, with the navigation timings and the bytes the page fetched.
//
//   RUNPOOL_BIN=target/release/runpool node console/scripts/first-load.mjs [N]

import { Server, browser } from '../tests/harness.mjs';

const runs = Number(process.argv[2] ?? 10);
const s = await Server.start();
const b = await browser();
const rows = [];
try {
  for (let i = 0; i < runs + 1; i++) {
    const link = s.signInLink('admin@example.com');
    const context = await b.newContext({ viewport: { width: 1360, height: 900 } });
    const page = await context.newPage();
    const t0 = performance.now();
    await page.goto(link);
    await page.getByTestId('whoami').filter({ hasText: 'admin@example.com' }).waitFor();
    await page.getByRole('heading', { name: 'Worker pools' }).waitFor();
    await page.locator('main .banner, main table').first().waitFor();
    const ready = performance.now() - t0;
    const nav = await page.evaluate(() => {
      const n = performance.getEntriesByType('navigation')[0];
      const res = performance.getEntriesByType('resource');
      return {
        dcl: n.domContentLoadedEventEnd,
        load: n.loadEventEnd,
        bytes: n.transferSize + res.reduce((a, r) => a + (r.transferSize || 0), 0),
        requests: res.length + 1,
      };
    });
    await context.close();
    // The first run warms the server and the browser; it is not counted.
    if (i > 0) rows.push({ ready, ...nav });
  }
} finally {
  await b.close();
  await s.stop();
}
const med = (k) => {
  const v = rows.map((r) => r[k]).sort((a, b) => a - b);
  return v[Math.floor(v.length / 2)];
};
const max = (k) => Math.max(...rows.map((r) => r[k]));
console.log(`first-page load over ${rows.length} cold runs (fresh context, empty cache), ${process.env.RUNPOOL_BIN ?? 'debug binary'}:`);
console.log(`  DOMContentLoaded   median ${med('dcl').toFixed(1)} ms, slowest ${max('dcl').toFixed(1)} ms`);
console.log(`  load               median ${med('load').toFixed(1)} ms, slowest ${max('load').toFixed(1)} ms`);
console.log(`  usable (signed in, worker pools listed)  median ${med('ready').toFixed(1)} ms, slowest ${max('ready').toFixed(1)} ms`);
console.log(`  ${med('requests')} requests, ${(med('bytes') / 1024).toFixed(1)} KiB transferred`);
