// IAM → Service accounts: list, create, an account's details and its "Principals with
// access" tab (Grant access: principal, role, Save; and removal), over IAM v1.

import { useState } from 'preact/hooks';
import { ApiError, asApiError, enc, get, listAll, post } from '../api';
import { Project, memberOf, useApp } from '../context';
import { RolePicker, useRoleTitles } from '../roles';
import { href, navigate, useRoute } from '../router';
import { Actions, Dialog, ErrorBanner, Field, Grid, Loading, Notice, PageHead, ProjectSelect, ReadState, Tabs, useAsync } from '../ui';
import { useTitle } from './workerpools';

export interface ServiceAccount {
  name: string;
  email: string;
  projectId: string;
  uniqueId?: string;
  displayName?: string;
  description?: string;
  disabled?: boolean;
}

/** A valid account ID from a display name: 6–30 of [a-z0-9-], starting with a letter. */
export function accountIdFrom(name: string): string {
  let id = name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^[^a-z]+/, '')
    .replace(/-+/g, '-')
    .slice(0, 30)
    .replace(/-+$/, '');
  if (id && id.length < 6) id = `${id}-sa`.padEnd(6, '0');
  return id;
}

export function listAccounts(projectId: string): Promise<ServiceAccount[]> {
  return listAll<ServiceAccount>(`/v1/projects/${enc(projectId)}/serviceAccounts?pageSize=100`, 'accounts');
}

/** Add `member` to `role` on an IAM policy (read, modify, write with its etag). */
export async function grant(resource: string, member: string, role: string): Promise<void> {
  const policy = await post(`${resource}:getIamPolicy`, { options: { requestedPolicyVersion: 3 } });
  const bindings: any[] = policy.bindings ?? [];
  const b = bindings.find((x) => x.role === role && !x.condition);
  if (b) {
    if (!b.members.includes(member)) b.members.push(member);
  } else {
    bindings.push({ role, members: [member] });
  }
  await post(`${resource}:setIamPolicy`, { policy: { ...policy, bindings } });
}

/** The create form: in IAM's page, and in the deploy form's Security section. */
export function CreateServiceAccountForm({
  projectId,
  projects,
  onCreated,
  onCancel,
  idPrefix,
}: {
  projectId: string;
  projects?: Project[];
  onCreated: (a: ServiceAccount) => void;
  onCancel: () => void;
  idPrefix: string;
}) {
  const [proj, setProj] = useState(projectId);
  const [name, setName] = useState('');
  const [id, setId] = useState('');
  const [idEdited, setIdEdited] = useState(false);
  const [description, setDescription] = useState('');
  const [role, setRole] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const accountId = idEdited ? id : accountIdFrom(name);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const a = await post<ServiceAccount>(`/v1/projects/${enc(proj)}/serviceAccounts`, {
        accountId,
        serviceAccount: { displayName: name, description },
      });
      if (role) await grant(`/v3/projects/${enc(proj)}`, `serviceAccount:${a.email}`, role);
      onCreated(a);
    } catch (err) {
      setError(asApiError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form onSubmit={submit} class="form" aria-label="Create service account">
      {projects && projects.length > 0 ? (
        <Field id={`${idPrefix}-project`} label="Project">
          <ProjectSelect id={`${idPrefix}-project`} projects={projects} value={proj} onChange={setProj} />
        </Field>
      ) : null}
      <Field id={`${idPrefix}-name`} label="Service account name">
        <input id={`${idPrefix}-name`} type="text" required value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
      </Field>
      <Field id={`${idPrefix}-id`} label="Service account ID" hint={`Email: ${accountId || 'ID'}@${proj}.iam.gserviceaccount.com`}>
        <input
          id={`${idPrefix}-id`}
          type="text"
          required
          pattern="[a-z][a-z0-9\-]{4,28}[a-z0-9]"
          aria-describedby={`${idPrefix}-id-hint`}
          value={accountId}
          onInput={(e) => {
            setIdEdited(true);
            setId((e.target as HTMLInputElement).value);
          }}
        />
      </Field>
      <Field id={`${idPrefix}-desc`} label="Service account description">
        <input id={`${idPrefix}-desc`} type="text" value={description} onInput={(e) => setDescription((e.target as HTMLInputElement).value)} />
      </Field>
      <Field
        id={`${idPrefix}-role`}
        label="Grant this service account access to the project (optional)"
        hint="Only for what the worker pool calls; a pool that calls no Google API needs no role."
      >
        <RolePicker id={`${idPrefix}-role`} value={role} onChange={setRole} />
      </Field>
      {error ? <ErrorBanner error={error} title="Cannot create the service account" /> : null}
      <Actions label={busy ? 'Creating…' : 'Create'} busy={busy} onCancel={onCancel} />
    </form>
  );
}

export function ServiceAccountsList() {
  const { project } = useApp();
  const pid = project?.projectId ?? '';
  useTitle('Service accounts');
  const accounts = useAsync(() => (pid ? listAccounts(pid) : Promise.resolve([])), [pid]);
  return (
    <section aria-labelledby="h-sas">
      <PageHead
        id="h-sas"
        title="Service accounts"
        action="Create service account"
        to={href(['iam', 'serviceaccounts', 'create'], { project: pid })}
      />
      <p class="muted">Service accounts of project {pid}.</p>
      <ReadState read={accounts} title="Cannot list service accounts" loading="Loading service accounts…" />
      {accounts.data ? (
        <Grid label="Service accounts" columns={['Email', 'Status', 'Name', 'Description']}>
          {accounts.data.map((a) => (
            <tr key={a.email}>
              <td>
                <a href={href(['iam', 'serviceaccounts', a.email], { project: pid })}>{a.email}</a>
              </td>
              <td>{a.disabled ? 'Disabled' : 'Enabled'}</td>
              <td>{a.displayName}</td>
              <td>{a.description}</td>
            </tr>
          ))}
        </Grid>
      ) : null}
    </section>
  );
}

export function CreateServiceAccountPage() {
  const { project, projects } = useApp();
  const pid = project?.projectId ?? '';
  useTitle('Create service account');
  return (
    <section aria-labelledby="h-create-sa">
      <p class="crumbs">
        <a href={href(['iam', 'serviceaccounts'], { project: pid })}>Service accounts</a> › Create
      </p>
      <h1 id="h-create-sa" tabIndex={-1}>
        Create service account
      </h1>
      <CreateServiceAccountForm
        idPrefix="csa"
        projectId={pid}
        projects={projects}
        onCreated={(a) => navigate(href(['iam', 'serviceaccounts', a.email], { project: a.projectId }))}
        onCancel={() => navigate(href(['iam', 'serviceaccounts'], { project: pid }))}
      />
    </section>
  );
}

export function ServiceAccountDetails({ email }: { email: string }) {
  const { project } = useApp();
  const route = useRoute();
  const pid = project?.projectId ?? '';
  useTitle(email);
  const base = `/v1/projects/-/serviceAccounts/${enc(email)}`;
  const acct = useAsync(() => get<ServiceAccount>(base), [base]);
  const tab = route.query.get('tab') ?? 'details';
  const setTab = (t: string) => navigate(href(['iam', 'serviceaccounts', email], { project: pid, tab: t }));
  const [stateError, setStateError] = useState<unknown>(null);
  const toggle = async () => {
    setStateError(null);
    try {
      await post(`${base}:${acct.data?.disabled ? 'enable' : 'disable'}`);
      acct.reload();
    } catch (e) {
      setStateError(e);
    }
  };
  return (
    <section aria-labelledby="h-sa">
      <p class="crumbs">
        <a href={href(['iam', 'serviceaccounts'], { project: pid })}>Service accounts</a> › {email}
      </p>
      <h1 id="h-sa" tabIndex={-1}>
        {acct.data?.displayName || email}
      </h1>
      <p class="mono muted">{email}</p>
      {acct.error ? <ErrorBanner error={acct.error} title="Cannot read the service account" /> : null}
      <Tabs
        label="Service account"
        tabs={[
          { id: 'details', label: 'Details' },
          { id: 'permissions', label: 'Principals with access' },
        ]}
        active={tab}
        onSelect={setTab}
      >
        {tab === 'details' ? (
          acct.data ? (
            <>
              <dl class="facts">
                <dt>Email</dt>
                <dd class="mono">{acct.data.email}</dd>
                <dt>Unique ID</dt>
                <dd class="mono">{acct.data.uniqueId}</dd>
                <dt>Name</dt>
                <dd>{acct.data.displayName}</dd>
                <dt>Description</dt>
                <dd>{acct.data.description}</dd>
                <dt>Project</dt>
                <dd>{acct.data.projectId}</dd>
                <dt>Status</dt>
                <dd>{acct.data.disabled ? 'Disabled' : 'Enabled'}</dd>
              </dl>
              <button type="button" class="button" onClick={toggle}>
                {acct.data.disabled ? 'Enable service account' : 'Disable service account'}
              </button>
              {stateError ? <ErrorBanner error={stateError} /> : null}
            </>
          ) : acct.loading ? (
            <Loading />
          ) : null
        ) : (
          <PrincipalsWithAccess email={email} />
        )}
      </Tabs>
    </section>
  );
}

/** The account's own IAM policy: who may act as it, mint its tokens, manage it. */
function PrincipalsWithAccess({ email }: { email: string }) {
  const base = `/v1/projects/-/serviceAccounts/${enc(email)}`;
  const policy = useAsync(() => post(`${base}:getIamPolicy`, { options: { requestedPolicyVersion: 3 } }), [base]);
  const title = useRoleTitles();
  const [granting, setGranting] = useState(false);
  const [principal, setPrincipal] = useState('');
  const [role, setRole] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState('');
  const [removing, setRemoving] = useState<{ member: string; role: string } | null>(null);

  const rows: Array<{ member: string; role: string; condition?: string }> = [];
  for (const b of policy.data?.bindings ?? []) {
    for (const m of b.members ?? []) rows.push({ member: m, role: b.role, condition: b.condition?.title });
  }
  rows.sort((a, b) => a.member.localeCompare(b.member) || a.role.localeCompare(b.role));

  const save = async (e: Event) => {
    e.preventDefault();
    setError(null);
    setDone('');
    const members = principal
      .split(/[\s,]+/)
      .map(memberOf)
      .filter(Boolean);
    if (members.length === 0 || !role) {
      setError(new ApiError(0, 'Enter at least one principal and select a role.', 'INVALID_ARGUMENT'));
      return;
    }
    setBusy(true);
    try {
      for (const m of members) await grant(base, m, role);
      setDone(`Granted ${title(role)} (${role}) to ${members.join(', ')}.`);
      setGranting(false);
      setPrincipal('');
      setRole('');
      policy.reload();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const remove = async () => {
    if (!removing) return;
    setError(null);
    setDone('');
    try {
      const p = await post(`${base}:getIamPolicy`, { options: { requestedPolicyVersion: 3 } });
      const bindings = (p.bindings ?? [])
        .map((b: any) => (b.role === removing.role ? { ...b, members: b.members.filter((m: string) => m !== removing.member) } : b))
        .filter((b: any) => b.members.length > 0);
      await post(`${base}:setIamPolicy`, { policy: { ...p, bindings } });
      setDone(`Removed ${title(removing.role)} from ${removing.member}.`);
      setRemoving(null);
      policy.reload();
    } catch (err) {
      setRemoving(null);
      setError(err);
    }
  };

  return (
    <div>
      <div class="page-head">
        <h2>Principals with access to this service account</h2>
        <button type="button" class="button primary" onClick={() => setGranting(true)} aria-expanded={granting}>
          Grant access
        </button>
      </div>
      {done ? <Notice kind="success">{done}</Notice> : null}
      {error ? <ErrorBanner error={error} /> : null}
      {granting ? (
        <form class="form panel" onSubmit={save} aria-label="Grant access">
          <h3>Grant access to {email}</h3>
          <Field id="grant-principal" label="New principals" hint="e.g. user:dev@example.com, group:devs@example.com, serviceAccount:…, or an email">
            <input
              id="grant-principal"
              type="text"
              aria-describedby="grant-principal-hint"
              value={principal}
              onInput={(e) => setPrincipal((e.target as HTMLInputElement).value)}
            />
          </Field>
          <Field id="grant-role" label="Select a role">
            <RolePicker id="grant-role" value={role} onChange={setRole} />
          </Field>
          <Actions label={busy ? 'Saving…' : 'Save'} busy={busy} onCancel={() => setGranting(false)} />
        </form>
      ) : null}
      <ReadState read={policy} title="Cannot read who has access" />
      {policy.data && rows.length === 0 ? <Notice>No principal holds a role on this account itself (roles may still be inherited from its project, folders or organization).</Notice> : null}
      {rows.length > 0 ? (
        <Grid label="Principals with access" columns={['Principal', 'Role', <span class="sr-only">Actions</span>]}>
          {rows.map((r) => (
            <tr key={`${r.member}|${r.role}`}>
              <td class="mono">{r.member}</td>
              <td>
                {title(r.role)} <span class="muted small mono">{r.role}</span>
                {r.condition ? <span class="chip">condition: {r.condition}</span> : null}
              </td>
              <td>
                <button
                  type="button"
                  class="small-button"
                  aria-label={`Remove ${r.role} from ${r.member}`}
                  onClick={() => setRemoving({ member: r.member, role: r.role })}
                >
                  Remove
                </button>
              </td>
            </tr>
          ))}
        </Grid>
      ) : null}
      <Dialog open={removing !== null} title="Remove access?" onClose={() => setRemoving(null)}>
        <p>
          Remove <strong>{removing ? title(removing.role) : ''}</strong> from <span class="mono">{removing?.member}</span>?
        </p>
        <Actions kind="danger" label="Remove" onClick={remove} onCancel={() => setRemoving(null)} />
      </Dialog>
    </div>
  );
}

