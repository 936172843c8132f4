// Cloud Run → Worker pools → "Deploy container" (and "Edit and deploy new revision"): the
// seed's form with its Container(s), Volumes, Networking and Security sections. Create and
// Deploy call Cloud Run Admin v2 (`workerPools.create` / `patch`) and follow the operation;
// a refused deploy shows Google's message and, from the same call with `validateOnly=true`,
// every service identity rule it fails with its fix.

import { useEffect, useMemo, useState } from 'preact/hooks';
import { ApiError, Violation, asApiError, call, enc, get, post, sleep, waitOperation } from '../api';
import { CROSS_PROJECT_CONSTRAINT, REGIONS, accountProjectId, projectNumber, useApp } from '../context';
import { href } from '../router';
import { CheckState, CopyCommand, Dialog, ErrorBanner, Field, Loading, Notice, StateMark, Tabs, useAsync } from '../ui';
import { CreateServiceAccountForm, ServiceAccount, listAccounts } from './serviceaccounts';
import { poolPath, readiness, useTitle } from './workerpools';

/** Split a command line into words (quotes group, as a shell would). */
export function words(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quote: string | null = null;
  let started = false;
  for (const ch of s) {
    if (quote) {
      if (ch === quote) quote = null;
      else cur += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      started = true;
    } else if (/\s/.test(ch)) {
      if (started || cur) out.push(cur);
      cur = '';
      started = false;
    } else {
      cur += ch;
    }
  }
  if (started || cur) out.push(cur);
  return out;
}

export function unwords(ws: string[] = []): string {
  return ws.map((w) => (w === '' || /[\s"']/.test(w) ? `'${w.replace(/'/g, `'"'"'`)}'` : w)).join(' ');
}

const OTHER = '__other__';

interface Form {
  id: string;
  region: string;
  image: string;
  command: string;
  args: string;
  instances: number;
  containerName: string;
  env: Array<{ name: string; value: string }>;
  volumes: Array<{ name: string; sizeLimit: string; mountPath: string }>;
  vpc: { enabled: boolean; network: string; subnetwork: string; egress: string };
  sa: string;
  otherEmail: string;
}

const NEW_FORM: Form = {
  id: '',
  region: 'us-central1',
  image: 'us-docker.pkg.dev/cloudrun/container/worker-pool:latest',
  command: '',
  args: '',
  instances: 1,
  containerName: '',
  env: [],
  volumes: [],
  vpc: { enabled: false, network: 'default', subnetwork: '', egress: 'PRIVATE_RANGES_ONLY' },
  sa: '',
  otherEmail: '',
};

function fromPool(p: any, region: string): Form {
  const t = p.template ?? {};
  const c = t.containers?.[0] ?? {};
  const ni = t.vpcAccess?.networkInterfaces?.[0];
  const mounts: any[] = c.volumeMounts ?? [];
  return {
    id: p.name.split('/').pop(),
    region,
    image: c.image ?? '',
    command: unwords(c.command),
    args: unwords(c.args),
    instances: p.scaling?.manualInstanceCount ?? 1,
    containerName: c.name ?? '',
    env: (c.env ?? []).map((e: any) => ({ name: e.name, value: e.value ?? '' })),
    volumes: (t.volumes ?? []).map((v: any) => ({
      name: v.name,
      sizeLimit: v.emptyDir?.sizeLimit ?? '',
      mountPath: mounts.find((m) => m.name === v.name)?.mountPath ?? '',
    })),
    vpc: {
      enabled: !!ni,
      network: ni?.network ?? 'default',
      subnetwork: ni?.subnetwork ?? '',
      egress: t.vpcAccess?.egress ?? 'PRIVATE_RANGES_ONLY',
    },
    sa: t.serviceAccount ?? '',
    otherEmail: '',
  };
}

/** The v2 `WorkerPool` body for the form (over the current pool, when editing). */
function toPool(f: Form, base?: any): any {
  const pool = base ? JSON.parse(JSON.stringify(base)) : {};
  const t = (pool.template ??= {});
  const containers = t.containers?.length ? t.containers : [{}];
  const c = containers[0];
  c.image = f.image.trim();
  c.command = words(f.command);
  c.args = words(f.args);
  if (f.containerName) c.name = f.containerName;
  else delete c.name;
  c.env = f.env.filter((e) => e.name.trim()).map((e) => ({ name: e.name.trim(), value: e.value }));
  const vols = f.volumes.filter((v) => v.name.trim());
  c.volumeMounts = vols.filter((v) => v.mountPath.trim()).map((v) => ({ name: v.name.trim(), mountPath: v.mountPath.trim() }));
  t.containers = containers;
  t.volumes = vols.map((v) => ({ name: v.name.trim(), emptyDir: { medium: 'MEMORY', ...(v.sizeLimit ? { sizeLimit: v.sizeLimit } : {}) } }));
  if (f.vpc.enabled) {
    t.vpcAccess = {
      networkInterfaces: [{ network: f.vpc.network, ...(f.vpc.subnetwork ? { subnetwork: f.vpc.subnetwork } : {}) }],
      egress: f.vpc.egress,
    };
  } else {
    delete t.vpcAccess;
  }
  t.serviceAccount = f.sa === OTHER ? f.otherEmail.trim() : f.sa;
  pool.scaling = { ...(pool.scaling ?? {}), manualInstanceCount: Number(f.instances) };
  return pool;
}

interface Step {
  label: string;
  state: CheckState;
  detail?: string;
}

const RULES: Record<string, string> = {
  Exists: 'The service account must exist, and you must be able to see it',
  Enabled: 'The service account must be enabled',
  ActAs: 'You need Service Account User (iam.serviceAccounts.actAs) on the service account',
  CrossProjectPolicy: `${CROSS_PROJECT_CONSTRAINT} must not be enforced on the service account’s project`,
  ServiceAgentTokenCreator: 'The Cloud Run service agent needs Service Account Token Creator on the service account',
};

/** Where in the console each rule is fixed. */
function fixLink(v: Violation, pid: string): { href: string; label: string } | null {
  const email = v.subject;
  const ap = accountProjectId(email) || pid;
  switch (v.type) {
    case 'ActAs':
    case 'ServiceAgentTokenCreator':
      return { href: href(['iam', 'serviceaccounts', email], { project: ap, tab: 'permissions' }), label: 'Open the account’s Principals with access tab' };
    case 'CrossProjectPolicy':
      return {
        href: href(['orgpolicies', CROSS_PROJECT_CONSTRAINT], { resource: `projects/${ap}`, project: pid }),
        label: `Open ${CROSS_PROJECT_CONSTRAINT} on project ${ap}`,
      };
    case 'Enabled':
      return { href: href(['iam', 'serviceaccounts', email], { project: ap }), label: 'Open the service account' };
    case 'Exists':
      return { href: href(['iam', 'serviceaccounts'], { project: ap }), label: 'Open Service accounts' };
    default:
      return null;
  }
}

export function PreflightFailures({ violations, pid }: { violations: Violation[]; pid: string }) {
  return (
    <section class="preflight" aria-labelledby="h-preflight">
      <h2 id="h-preflight">
        Why this deploy fails: {violations.length} service identity rule{violations.length === 1 ? '' : 's'}, each with its fix
      </h2>
      <ol>
        {violations.map((v) => {
          const i = v.description.lastIndexOf(' Fix: ');
          const message = i >= 0 ? v.description.slice(0, i) : v.description;
          const command = i >= 0 ? v.description.slice(i + 6) : '';
          const link = fixLink(v, pid);
          return (
            <li key={v.type} class="check fail" data-rule={v.type}>
              <StateMark state="fail" />
              <div>
                <p class="check-title">{RULES[v.type] ?? v.type}</p>
                <p class="small">{message}</p>
                <div class="fix">
                  <p>
                    <strong>Fix:</strong> {link ? <a href={link.href}>{link.label}</a> : null}
                    {command ? ', or run:' : null}
                  </p>
                  {command ? <CopyCommand command={command} /> : null}
                </div>
              </div>
            </li>
          );
        })}
      </ol>
    </section>
  );
}

interface ItemField<T> {
  key: keyof T & string;
  label: string;
  placeholder?: string;
}

const ENV_FIELDS: ItemField<Form['env'][number]>[] = [
  { key: 'name', label: 'Name' },
  { key: 'value', label: 'Value' },
];

const VOLUME_FIELDS: ItemField<Form['volumes'][number]>[] = [
  { key: 'name', label: 'Volume name' },
  { key: 'sizeLimit', label: 'Size limit', placeholder: 'e.g. 256Mi' },
  { key: 'mountPath', label: 'Mount path', placeholder: '/cache' },
];

/** Item `i` of a list in the form (an environment variable, a volume): a text input for each of its fields, and Remove. */
function ItemRow<T extends Record<string, string>>({
  items,
  i,
  noun,
  fields,
  onChange,
}: {
  items: T[];
  i: number;
  noun: string;
  fields: ItemField<T>[];
  onChange: (items: T[]) => void;
}) {
  return (
    <div class="row">
      {fields.map((f) => (
        <label key={f.key}>
          {f.label} {i + 1}
          <input
            type="text"
            placeholder={f.placeholder}
            value={items[i][f.key]}
            onInput={(e) => onChange(items.map((x, j) => (j === i ? { ...x, [f.key]: (e.target as HTMLInputElement).value } : x)))}
          />
        </label>
      ))}
      <button type="button" class="small-button" aria-label={`Remove ${noun} ${i + 1}`} onClick={() => onChange(items.filter((_, j) => j !== i))}>
        Remove
      </button>
    </div>
  );
}

export function DeployPage({ region, name }: { region?: string; name?: string }) {
  const { project, projects } = useApp();
  const pid = project?.projectId ?? '';
  const editing = !!name;
  useTitle(editing ? `Edit worker pool ${name}` : 'Deploy container');
  const existing = useAsync(
    () => (editing ? get(poolPath(pid, region!, name!)) : Promise.resolve(null)),
    [pid, region, name],
  );
  const [form, setForm] = useState<Form>(NEW_FORM);
  const [loaded, setLoaded] = useState(!editing);
  useEffect(() => {
    if (editing && existing.data && !loaded) {
      setForm(fromPool(existing.data, region!));
      setLoaded(true);
    }
  }, [existing.data]);
  const [expanded, setExpanded] = useState(editing);
  const [section, setSection] = useState('security');
  const [creatingAccount, setCreatingAccount] = useState(false);
  const [steps, setSteps] = useState<Step[]>([]);
  const [busy, setBusy] = useState(false);
  const [attempt, setAttempt] = useState(0);
  const [error, setError] = useState<ApiError | null>(null);
  const [preflight, setPreflight] = useState<Violation[]>([]);
  const [deployed, setDeployed] = useState<{ region: string; id: string; ready: string } | null>(null);

  // The accounts the user can see, project by project (a project whose accounts the user may
  // not list is named, with the API's reason).
  const [extra, setExtra] = useState<ServiceAccount[]>([]);
  const accounts = useAsync(async () => {
    const results = await Promise.allSettled(projects.map((p) => listAccounts(p.projectId)));
    const groups: Array<{ project: string; accounts: ServiceAccount[] }> = [];
    const denied: Array<{ project: string; message: string }> = [];
    results.forEach((r, i) => {
      const p = projects[i].projectId;
      if (r.status === 'fulfilled') groups.push({ project: p, accounts: r.value });
      else denied.push({ project: p, message: asApiError(r.reason).message });
    });
    return { groups, denied };
  }, [projects.map((p) => p.projectId).join(',')]);
  const groups = useMemo(() => {
    const g = (accounts.data?.groups ?? []).map((x) => ({ ...x, accounts: [...x.accounts] }));
    for (const a of extra) {
      let grp = g.find((x) => x.project === a.projectId);
      if (!grp) g.push((grp = { project: a.projectId, accounts: [] }));
      if (!grp.accounts.some((b) => b.email === a.email)) grp.accounts.push(a);
    }
    return g;
  }, [accounts.data, extra]);
  const known = groups.some((g) => g.accounts.some((a) => a.email === form.sa));
  // An account the user cannot list (e.g. another project's) is entered by email.
  useEffect(() => {
    if (loaded && accounts.data && form.sa && form.sa !== OTHER && !known) {
      setForm((f) => ({ ...f, otherEmail: f.sa, sa: OTHER }));
    }
  }, [loaded, accounts.data, known]);

  const set = <K extends keyof Form>(k: K, v: Form[K]) => setForm((f) => ({ ...f, [k]: v }));
  const parent = `/v2/projects/${enc(pid)}/locations/${enc(form.region)}`;
  const path = `${parent}/workerPools/${enc(form.id)}`;

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setAttempt((n) => n + 1);
    setError(null);
    setPreflight([]);
    setDeployed(null);
    const body = toPool(form, editing ? existing.data : undefined);
    const st: Step[] = [
      { label: editing ? `Deploying a new revision of ${form.id}` : `Creating worker pool ${form.id}`, state: 'running' },
      { label: 'Waiting for the operation to finish', state: 'pending' },
      { label: 'Starting instances', state: 'pending' },
    ];
    const show = () => setSteps(st.map((s) => ({ ...s })));
    show();
    let at = 0;
    try {
      // “Deploy new revision”: a new revision even when only scaling changed, as Google's console does.
      const op = editing ? await call('PATCH', `${path}?forceNewRevision=true`, body) : await post(`${parent}/workerPools?workerPoolId=${enc(form.id)}`, body);
      st[0] = { ...st[0], state: 'ok', detail: `Operation ${op.name.split('/').pop()}` };
      st[1].state = 'running';
      at = 1;
      show();
      const pool = await waitOperation(op);
      st[1] = { ...st[1], state: 'ok', detail: `Revision ${(pool?.latestCreatedRevision ?? '').split('/').pop()}` };
      st[2].state = 'running';
      at = 2;
      show();
      let r = readiness(pool);
      for (let i = 0; r.state === 'running' && i < 20; i++) {
        await sleep(500);
        r = readiness(await get(path));
      }
      st[2] = {
        ...st[2],
        state: r.state === 'running' ? 'pending' : r.state,
        detail: r.state === 'running' ? 'Still starting; the details page follows it.' : r.text,
      };
      show();
      setDeployed({ region: form.region, id: form.id, ready: r.text });
    } catch (err) {
      const ae = asApiError(err);
      st[at] = { ...st[at], state: 'fail', detail: `${ae.status}: see below` };
      for (let i = at + 1; i < st.length; i++) st[i].state = 'pending';
      show();
      setError(ae);
      if (at === 0) {
        // The same request as a preflight lists every identity rule the deploy fails.
        try {
          if (editing) await call('PATCH', `${path}?forceNewRevision=true&validateOnly=true`, body);
          else await post(`${parent}/workerPools?workerPoolId=${enc(form.id)}&validateOnly=true`, body);
        } catch (pe) {
          setPreflight(asApiError(pe).violations);
        }
      }
    } finally {
      setBusy(false);
    }
  };

  if (editing && existing.error) return <ErrorBanner error={existing.error} title={`Cannot read worker pool ${name}`} />;
  if (editing && !loaded) return <Loading label={`Loading worker pool ${name}…`} />;
  const n = projectNumber(project);
  return (
    <section aria-labelledby="h-deploy">
      <p class="crumbs">
        <a href={href(['run', 'workerpools'], { project: pid })}>Worker pools</a> › {editing ? `${name} › Edit` : 'Deploy container'}
      </p>
      <h1 id="h-deploy" tabIndex={-1}>
        {editing ? `Edit and deploy new revision: ${name}` : 'Deploy container'}
      </h1>
      <form class="form" onSubmit={submit} aria-label={editing ? 'Edit worker pool' : 'Create worker pool'}>
        <Field id="wp-name" label="Worker pool name" hint="Lowercase letters, digits and hyphens; starts with a letter.">
          <input
            id="wp-name"
            type="text"
            required
            pattern="[a-z]([a-z0-9\-]{0,47}[a-z0-9])?"
            disabled={editing}
            aria-describedby="wp-name-hint"
            value={form.id}
            onInput={(e) => set('id', (e.target as HTMLInputElement).value)}
          />
        </Field>
        <Field id="wp-region" label="Region">
          <select id="wp-region" disabled={editing} value={form.region} onChange={(e) => set('region', (e.target as HTMLSelectElement).value)}>
            {REGIONS.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </Field>
        <Field id="wp-image" label="Container image URL">
          <input id="wp-image" type="text" required value={form.image} onInput={(e) => set('image', (e.target as HTMLInputElement).value)} />
        </Field>
        <Field id="wp-command" label="Container command" hint="Leave blank to use the image’s entrypoint. Runpool runs it as the instance’s process.">
          <input
            id="wp-command"
            type="text"
            aria-describedby="wp-command-hint"
            value={form.command}
            onInput={(e) => set('command', (e.target as HTMLInputElement).value)}
          />
        </Field>
        <Field id="wp-args" label="Container arguments">
          <input id="wp-args" type="text" value={form.args} onInput={(e) => set('args', (e.target as HTMLInputElement).value)} />
        </Field>
        <Field id="wp-instances" label="Number of instances">
          <input
            id="wp-instances"
            type="number"
            min={0}
            max={1000}
            required
            value={form.instances}
            onInput={(e) => set('instances', Number((e.target as HTMLInputElement).value))}
          />
        </Field>

        <button type="button" class="disclosure" aria-expanded={expanded} aria-controls="wp-sections" onClick={() => setExpanded(!expanded)}>
          <span aria-hidden="true">{expanded ? '▾' : '▸'}</span> Container(s), Volumes, Networking, Security
        </button>
        <div id="wp-sections" hidden={!expanded}>
          <Tabs
            label="Worker pool configuration"
            tabs={[
              { id: 'containers', label: 'Container(s)' },
              { id: 'volumes', label: 'Volumes' },
              { id: 'networking', label: 'Networking' },
              { id: 'security', label: 'Security' },
            ]}
            active={section}
            onSelect={setSection}
          >
            {section === 'containers' ? (
              <div>
                <Field id="wp-cname" label="Container name">
                  <input id="wp-cname" type="text" value={form.containerName} onInput={(e) => set('containerName', (e.target as HTMLInputElement).value)} />
                </Field>
                <fieldset>
                  <legend>Environment variables</legend>
                  {form.env.map((_, i) => (
                    <ItemRow key={i} items={form.env} i={i} noun="variable" fields={ENV_FIELDS} onChange={(env) => set('env', env)} />
                  ))}
                  <button type="button" class="button" onClick={() => set('env', [...form.env, { name: '', value: '' }])}>
                    Add variable
                  </button>
                </fieldset>
              </div>
            ) : null}
            {section === 'volumes' ? (
              <fieldset>
                <legend>In-memory volumes</legend>
                {form.volumes.length === 0 ? <p class="muted">No volumes.</p> : null}
                {form.volumes.map((_, i) => (
                  <ItemRow key={i} items={form.volumes} i={i} noun="volume" fields={VOLUME_FIELDS} onChange={(volumes) => set('volumes', volumes)} />
                ))}
                <button type="button" class="button" onClick={() => set('volumes', [...form.volumes, { name: '', sizeLimit: '', mountPath: '' }])}>
                  Add volume
                </button>
              </fieldset>
            ) : null}
            {section === 'networking' ? (
              <fieldset>
                <legend>VPC</legend>
                <label class="check-label">
                  <input type="checkbox" checked={form.vpc.enabled} onChange={(e) => set('vpc', { ...form.vpc, enabled: (e.target as HTMLInputElement).checked })} />
                  Connect to a VPC for outbound traffic
                </label>
                {form.vpc.enabled ? (
                  <>
                    <Field id="wp-network" label="Network">
                      <input id="wp-network" type="text" value={form.vpc.network} onInput={(e) => set('vpc', { ...form.vpc, network: (e.target as HTMLInputElement).value })} />
                    </Field>
                    <Field id="wp-subnet" label="Subnet">
                      <input id="wp-subnet" type="text" value={form.vpc.subnetwork} onInput={(e) => set('vpc', { ...form.vpc, subnetwork: (e.target as HTMLInputElement).value })} />
                    </Field>
                    <Field id="wp-egress" label="Traffic routing">
                      <select id="wp-egress" value={form.vpc.egress} onChange={(e) => set('vpc', { ...form.vpc, egress: (e.target as HTMLSelectElement).value })}>
                        <option value="PRIVATE_RANGES_ONLY">Route only requests to private IPs to the VPC</option>
                        <option value="ALL_TRAFFIC">Route all traffic to the VPC</option>
                      </select>
                    </Field>
                  </>
                ) : null}
              </fieldset>
            ) : null}
            {section === 'security' ? (
              <div>
                <Field
                  id="wp-sa"
                  label="Service account"
                  hint={`The worker pool’s service identity. Default: ${n ? `${n}-compute@developer.gserviceaccount.com` : 'the project’s default compute account'}.`}
                >
                  <select id="wp-sa" aria-describedby="wp-sa-hint" value={form.sa} onChange={(e) => set('sa', (e.target as HTMLSelectElement).value)}>
                    <option value="">Default compute service account</option>
                    {groups.map((g) => (
                      <optgroup key={g.project} label={`Project ${g.project}`}>
                        {g.accounts.map((a) => (
                          <option key={a.email} value={a.email}>
                            {a.displayName ? `${a.displayName} (${a.email})` : a.email}
                          </option>
                        ))}
                      </optgroup>
                    ))}
                    <option value={OTHER}>Enter a service account email…</option>
                  </select>
                </Field>
                {form.sa === OTHER ? (
                  <Field id="wp-sa-email" label="Service account email">
                    <input
                      id="wp-sa-email"
                      type="email"
                      required
                      placeholder="NAME@PROJECT.iam.gserviceaccount.com"
                      value={form.otherEmail}
                      onInput={(e) => set('otherEmail', (e.target as HTMLInputElement).value)}
                    />
                  </Field>
                ) : null}
                {accounts.loading ? <Loading label="Loading service accounts…" /> : null}
                {accounts.data?.denied.length ? (
                  <p class="hint">
                    You cannot list the accounts of {accounts.data.denied.map((d) => d.project).join(', ')} ({accounts.data.denied[0].message}); enter
                    such an account by email.
                  </p>
                ) : null}
                <button type="button" class="button" onClick={() => setCreatingAccount(true)}>
                  Create a new service account
                </button>
              </div>
            ) : null}
          </Tabs>
        </div>

        <div class="actions">
          <button type="submit" class="button primary" disabled={busy}>
            {editing ? 'Deploy' : 'Create'}
          </button>
          <a class="button" href={editing ? href(['run', 'workerpools', region!, name!], { project: pid }) : href(['run', 'workerpools'], { project: pid })}>
            Cancel
          </a>
        </div>
      </form>

      {steps.length ? (
        <section class="progress" aria-labelledby="h-progress" data-attempt={attempt} data-busy={String(busy)}>
          <h2 id="h-progress">{editing ? 'Deploying' : 'Creating'}</h2>
          <ol role="status" aria-live="polite">
            {steps.map((s, i) => (
              <li key={i} class={`step ${s.state}`} data-state={s.state}>
                <StateMark state={s.state} />
                <span>{s.label}</span>
                {s.detail ? <span class="muted small"> — {s.detail}</span> : null}
              </li>
            ))}
          </ol>
        </section>
      ) : null}
      {error ? <ErrorBanner error={error} title={editing ? 'Deploy failed' : 'Create failed'} /> : null}
      {preflight.length ? <PreflightFailures violations={preflight} pid={pid} /> : null}
      {deployed ? (
        <Notice kind="success">
          Worker pool {deployed.id} deployed ({deployed.ready}).{' '}
          <a href={href(['run', 'workerpools', deployed.region, deployed.id], { project: pid, tab: 'security' })}>View worker pool {deployed.id}</a>
        </Notice>
      ) : null}

      <Dialog open={creatingAccount} title="Create a new service account" onClose={() => setCreatingAccount(false)}>
        <CreateServiceAccountForm
          idPrefix="dsa"
          projectId={pid}
          projects={projects}
          onCancel={() => setCreatingAccount(false)}
          onCreated={(a) => {
            setExtra((x) => [...x, a]);
            setForm((f) => ({ ...f, sa: a.email }));
            setCreatingAccount(false);
          }}
        />
      </Dialog>
    </section>
  );
}
