// The browser tests' harness: start the real `runpool serve` on a free port with a world of
// its own (as the Rust integration tests do), drive the real CLI against it (`auth login`,
// `console`), and drive Debian's Chromium with playwright-core.
//
// RUNPOOL_BIN names the binary (default: the debug build in CARGO_TARGET_DIR or ./target);
// CHROMIUM its browser (default /usr/bin/chromium). Screenshots go to console/test-results/.

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../..');
export const RESULTS = resolve(here, '../test-results');

export const BIN =
  process.env.RUNPOOL_BIN || join(resolve(repo, process.env.CARGO_TARGET_DIR || 'target'), 'debug', 'runpool');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** The flags Chromium needs on a closed network (no background connections to Google). */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** The world of the seed's cross-project story (as in crates/cli/tests/workerpools_api.rs). */
export const WORLD = `
organizations:
  - domain: example.com
    id: "100000000001"
    iam:
      - role: roles/owner
        members: [user:admin@example.com]
      - role: roles/resourcemanager.organizationAdmin
        members: [user:admin@example.com]
      - role: roles/resourcemanager.folderAdmin
        members: [user:admin@example.com]
      - role: roles/orgpolicy.policyAdmin
        members: [user:admin@example.com]
      - role: roles/browser
        members: [user:dev@example.com]
      - role: roles/iam.serviceAccountViewer
        members: [user:dev@example.com]
    folders:
      - displayName: shared
        id: "200000000001"
        projects: [{projectId: identity-project, number: "300000000002"}]
    projects:
      - projectId: app-project
        number: "300000000001"
        iam:
          - role: roles/run.developer
            members: [user:dev@example.com]
`;

export class Server {
  /** Start `runpool serve --port 0 --ephemeral --world FILE`; resolves once it listens. */
  static async start(world = WORLD) {
    const dir = mkdtempSync(join(tmpdir(), 'runpool-console-test-'));
    const worldFile = join(dir, 'world.yaml');
    writeFileSync(worldFile, world);
    const env = {
      ...process.env,
      RUNPOOL_CONFIG: join(dir, 'config'),
      HOME: dir,
      RUST_LOG: process.env.RUST_LOG || 'warn',
    };
    for (const k of ['RUNPOOL_ADMIN_CREDENTIAL', 'RUNPOOL_CORE_PROJECT', 'RUNPOOL_CORE_ACCOUNT', 'RUNPOOL_CORE_API_ENDPOINT', 'DISPLAY', 'WAYLAND_DISPLAY']) {
      delete env[k];
    }
    const child = spawn(BIN, ['serve', '--port', '0', '--ephemeral', '--world', worldFile], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const endpoint = await new Promise((ok, fail) => {
      let out = '';
      const timer = setTimeout(() => fail(new Error(`runpool serve did not start; stderr:\n${stderr}`)), 60_000);
      child.stdout.on('data', (d) => {
        out += d;
        const m = /Listening on (http:\/\/\S+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          ok(m[1]);
        }
      });
      child.on('exit', (code) => fail(new Error(`runpool serve exited (${code}); stderr:\n${stderr}`)));
    });
    const s = new Server(child, endpoint, dir, env);
    s.cli(['config', 'set', 'api_endpoint', endpoint], { check: true });
    return s;
  }

  constructor(child, endpoint, dir, env) {
    this.child = child;
    this.endpoint = endpoint;
    this.dir = dir;
    this.env = env;
  }

  /** Run the `runpool` CLI against this server. */
  cli(args, { check = false } = {}) {
    const r = spawnSync(BIN, args, { env: this.env, encoding: 'utf8', timeout: 60_000 });
    const out = { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
    if (check && out.code !== 0) throw new Error(`runpool ${args.join(' ')} failed:\n${out.stderr}`);
    return out;
  }

  /** `runpool auth login EMAIL` then `runpool console`: the one-time sign-in link. */
  signInLink(email, extra = []) {
    this.cli(['auth', 'login', email], { check: true });
    const r = this.cli(['console', '--no-browser', ...extra], { check: true });
    const url = r.stdout.trim();
    if (!url.startsWith(`${this.endpoint}/console/#code=`)) throw new Error(`unexpected console link: ${url}`);
    return url;
  }

  adminCredential() {
    const port = new URL(this.endpoint).port;
    const record = JSON.parse(readFileSync(join(this.env.RUNPOOL_CONFIG, 'servers', `${port}.json`), 'utf8'));
    return readFileSync(record.adminCredentialFile, 'utf8').trim();
  }

  /** A simulated user's access token, minted as `auth login` mints it. */
  async token(email) {
    const r = await fetch(`${this.endpoint}/runpool/v1/tokens`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${this.adminCredential()}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ principal: email }),
    });
    if (!r.ok) throw new Error(`mint ${email}: ${r.status} ${await r.text()}`);
    return (await r.json()).access_token;
  }

  /** A REST call as `token` (plain HTTP, no browser): [status, body]. */
  async rest(token, method, path, body) {
    const r = await fetch(`${this.endpoint}${path}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await r.text();
    return [r.status, text ? JSON.parse(text) : {}];
  }

  /** Stop gracefully (SIGTERM: the runtime stops the pools' instances), then clean up. */
  async stop() {
    if (this.child.exitCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGTERM');
      const t = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Launch Chromium with a fresh profile; every page error fails the test that collects them. */
export async function browser() {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

/**
 * One Chromium for the calling test file: launched before its tests, closed after them. Call it
 * at the file's top level; the function it returns opens a new page in that browser (newPage).
 */
export function browserForFile() {
  let b;
  before(async () => {
    b = await browser();
  });
  after(async () => {
    await b?.close();
  });
  return () => newPage(b);
}

/** Run `fn(server)` against a fresh server (Server.start), stopping it whatever happens. */
export async function withServer(fn, world = WORLD) {
  const s = await Server.start(world);
  try {
    return await fn(s);
  } finally {
    await s.stop();
  }
}

/** A new page that records uncaught errors and console errors into `page.errors`. */
export async function newPage(b) {
  const context = await b.newContext({ viewport: { width: 1360, height: 900 } });
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  return page;
}

let shotCount = 0;
/** Save a full-page screenshot as a test artifact. */
export async function shot(page, test, step) {
  mkdirSync(RESULTS, { recursive: true });
  shotCount += 1;
  const file = join(RESULTS, `${test}--${String(shotCount).padStart(2, '0')}-${step}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Sign the page in with a fresh `runpool console` link for `email`. */
export async function signIn(page, server, email) {
  await page.goto(server.signInLink(email));
  try {
    await page.getByTestId('whoami').filter({ hasText: email }).waitFor({ timeout: 15_000 });
  } catch (e) {
    await shot(page, 'sign-in-failure', email);
    const text = await page.evaluate(() => document.body.innerText).catch(() => '');
    throw new Error(`signing in as ${email} failed at ${page.url()}; the page says:\n${text}\npage errors: ${page.errors}\n${e}`);
  }
}
