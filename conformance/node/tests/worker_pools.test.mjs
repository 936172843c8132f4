// Google's Node.js client for Cloud Run (@google-cloud/run) against a live Runpool server, as
// a user runs an app written for Google Cloud: `eval "$(runpool env)"; node app.mjs`. The app
// (apps/create_worker_pool.mjs) sets no option; it reaches the server by Google's host name,
// on its default transport (gRPC over TLS, through the server's proxy), with Application
// Default Credentials (the authorized-user file `runpool env` names, whose refresh token the
// server's token endpoint trades).
//
// RUNPOOL_BIN names the binary (default: the workspace's debug build).
import {test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import {spawn, execFileSync} from 'node:child_process';
import {mkdtempSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join, dirname} from 'node:path';
import {fileURLToPath} from 'node:url';
import {createInterface} from 'node:readline';

const here = dirname(fileURLToPath(import.meta.url));
const bin = process.env.RUNPOOL_BIN ?? join(here, '../../../target/debug/runpool');
const config = mkdtempSync(join(tmpdir(), 'runpool-node-'));
const PARENT = 'projects/demo-project/locations/us-central1';
let server;

function runpool(...args) {
  return execFileSync(bin, args, {env: {...process.env, RUNPOOL_CONFIG: config}, encoding: 'utf8'});
}

/// What `runpool --account ACCOUNT env` exports, as an environment.
function exported(account) {
  const env = {};
  for (const line of runpool('--account', account, 'env').split('\n')) {
    const m = line.match(/^export ([A-Z_a-z]+)='(.*)'$/);
    if (m) env[m[1]] = m[2].replaceAll(`'\\''`, `'`);
  }
  return env;
}

/// Run the app in a shell set up as `eval "$(runpool env)"` sets it up; its JSON line.
function app(account, id) {
  const env = {PATH: process.env.PATH, HOME: process.env.HOME, ...exported(account)};
  const out = execFileSync(process.execPath, [join(here, '../apps/create_worker_pool.mjs'), PARENT, id],
                           {env, encoding: 'utf8', timeout: 60_000});
  return JSON.parse(out.trim().split('\n').pop());
}

before(async () => {
  server = spawn(bin, ['serve', '--port', '0', '--ephemeral', '--instance-isolation', 'none'],
                 {env: {...process.env, RUNPOOL_CONFIG: config}, stdio: ['ignore', 'pipe', 'inherit']});
  const endpoint = await new Promise((resolve, reject) => {
    const lines = createInterface({input: server.stdout});
    lines.on('line', l => {
      const m = l.match(/Listening on (http:\/\/\S+)/);
      if (m) resolve(m[1]);
    });
    server.on('exit', code => reject(new Error(`runpool serve exited (${code})`)));
  });
  runpool('config', 'set', 'api_endpoint', endpoint);
  runpool('auth', 'login', 'admin@example.com');
  runpool('auth', 'login', 'alice@example.com', '--no-activate');
});

after(async () => {
  if (server && server.exitCode === null) {
    const exited = new Promise(r => server.on('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  rmSync(config, {recursive: true, force: true});
});

test('createWorkerPool on the default transport finishes its operation and the pool is there', () => {
  const r = app('admin@example.com', 'node-pool');
  assert.equal(r.error, undefined, JSON.stringify(r));
  const name = `${PARENT}/workerPools/node-pool`;
  assert.equal(r.pool.name, name);
  assert.match(r.pool.uid, /^[0-9a-f-]{36}$/);
  assert.equal(r.pool.generation, '1');
  assert.equal(r.pool.latestCreatedRevision, `${name}/revisions/node-pool-00001-${r.pool.latestCreatedRevision.slice(-3)}`);
  // No account given: the project's default compute service account, as on Cloud Run.
  assert.match(r.pool.serviceAccount, /^\d+-compute@developer\.gserviceaccount\.com$/);
  assert.match(r.operation.name, /^projects\/demo-project\/locations\/us-central1\/operations\/[0-9a-f-]+$/);
  assert.equal(r.got.name, name);
  assert.ok(r.got.etag);
  assert.deepEqual(r.listed, [name]);
});

test("a caller without run.workerPools.create gets Google's PERMISSION_DENIED and its ErrorInfo", () => {
  const r = app('alice@example.com', 'not-allowed');
  assert.ok(r.error, JSON.stringify(r));
  assert.equal(r.error.code, 7, 'grpc-status PERMISSION_DENIED');
  assert.match(r.error.details, /^Permission 'run\.workerpools\.create' denied on resource/);
  assert.equal(r.error.reason, 'IAM_PERMISSION_DENIED');
  assert.equal(r.error.domain, 'run.googleapis.com');
  assert.equal(r.error.metadata.permission, 'run.workerpools.create');
});
