// IAM & Admin → Organization policies, over Org Policy v2: a resource picker (organization,
// folders, projects), the constraints with their effective state, a constraint's page, and
// "Manage policy": Policy source (Inherit parent's policy / Override parent's policy /
// Google-managed default), "Add a rule", Enforcement On/Off, "Set policy".

import { useEffect, useState } from 'preact/hooks';
import { ApiError, asApiError, call, get, listAll, post } from '../api';
import { useApp } from '../context';
import { href, navigate, useRoute } from '../router';
import { ErrorBanner, Field, Grid, Loading, Notice, ReadState, useAsync } from '../ui';
import { useTitle } from './workerpools';

interface Node {
  name: string;
  label: string;
  kind: 'organization' | 'folder' | 'project';
  parent?: string;
  depth: number;
}

/** Organizations, folders and projects the user can see, as a tree in display order. */
async function hierarchy(): Promise<Node[]> {
  const [orgs, folders, projects] = await Promise.all([
    listAll<any>('/v3/organizations:search', 'organizations').catch(() => []),
    listAll<any>('/v3/folders:search', 'folders').catch(() => []),
    listAll<any>('/v3/projects:search', 'projects').catch(() => []),
  ]);
  const all: Node[] = [
    ...orgs.map((o) => ({ name: o.name, label: o.displayName ?? o.name, kind: 'organization' as const, depth: 0 })),
    ...folders.map((f) => ({ name: f.name, label: f.displayName ?? f.name, kind: 'folder' as const, parent: f.parent, depth: 0 })),
    ...projects.map((p) => ({ name: `projects/${p.projectId}`, label: p.projectId, kind: 'project' as const, parent: p.parent, depth: 0 })),
  ];
  const names = new Set(all.map((n) => n.name));
  const out: Node[] = [];
  const walk = (parent: string | undefined, depth: number) => {
    for (const n of all.filter((x) => (parent ? x.parent === parent : !x.parent || !names.has(x.parent)))) {
      if (out.includes(n)) continue;
      out.push({ ...n, depth });
      walk(n.name, depth + 1);
    }
  };
  walk(undefined, 0);
  return out;
}

function ResourcePicker({ value, onChange }: { value: string; onChange: (r: string) => void }) {
  const nodes = useAsync(hierarchy, []);
  return (
    <Field id="op-resource" label="Resource (organization, folder or project)">
      <select id="op-resource" value={value} onChange={(e) => onChange((e.target as HTMLSelectElement).value)}>
        {!nodes.data?.some((n) => n.name === value) ? <option value={value}>{value}</option> : null}
        {(nodes.data ?? []).map((n) => (
          <option key={n.name} value={n.name}>
            {'\u00a0\u00a0\u00a0'.repeat(n.depth)}
            {n.label} ({n.kind})
          </option>
        ))}
      </select>
    </Field>
  );
}

function short(constraintName: string): string {
  return constraintName.split('/constraints/').pop() ?? constraintName;
}

function effectiveText(p: any, boolean: boolean): string {
  const rules: any[] = p?.spec?.rules ?? [];
  if (boolean) return rules.some((r) => r.enforce === true) ? 'Enforced' : 'Not enforced';
  if (rules.some((r) => r.denyAll)) return 'Deny all';
  if (rules.some((r) => r.allowAll)) return 'Allow all';
  return rules.length ? 'Custom values' : 'Allow all';
}

function sourceText(p: any | undefined): string {
  if (!p) return "Inherit parent's policy";
  if (p.spec?.reset) return 'Google-managed default';
  if (p.spec?.inheritFromParent) return "Merge with parent's policy";
  return "Override parent's policy";
}

export function OrgPoliciesList({ resource }: { resource: string }) {
  const { project } = useApp();
  const pid = project?.projectId ?? '';
  useTitle('Organization policies');
  const data = useAsync(async () => {
    const [constraints, policies] = await Promise.all([
      listAll<any>(`/v2/${resource}/constraints`, 'constraints'),
      listAll<any>(`/v2/${resource}/policies`, 'policies'),
    ]);
    const effective = await Promise.all(
      constraints.map((c) => get(`/v2/${resource}/policies/${short(c.name)}:getEffectivePolicy`).catch(() => null)),
    );
    return constraints.map((c, i) => ({
      c,
      policy: policies.find((p) => p.name.endsWith(`/policies/${short(c.name)}`)),
      effective: effective[i],
    }));
  }, [resource]);
  return (
    <section aria-labelledby="h-op">
      <h1 id="h-op" tabIndex={-1}>
        Organization policies
      </h1>
      <ResourcePicker value={resource} onChange={(r) => navigate(href(['orgpolicies'], { resource: r, project: pid }))} />
      <ReadState read={data} title={`Cannot list the policies of ${resource}`} loading="Loading constraints…" />
      {data.data ? (
        <Grid label="Constraints" columns={['Name', 'Constraint', 'Policy source', 'Effective']}>
          {data.data.map(({ c, policy, effective }) => (
            <tr key={c.name}>
              <td>
                <a href={href(['orgpolicies', short(c.name)], { resource, project: pid })}>{c.displayName}</a>
              </td>
              <td class="mono">{short(c.name)}</td>
              <td>{sourceText(policy)}</td>
              <td>{effective ? effectiveText(effective, !!c.booleanConstraint) : '?'}</td>
            </tr>
          ))}
        </Grid>
      ) : null}
    </section>
  );
}

function useConstraint(resource: string, constraint: string) {
  return useAsync(async () => {
    const constraints = await listAll<any>(`/v2/${resource}/constraints`, 'constraints');
    const c = constraints.find((x) => short(x.name) === constraint);
    if (!c) throw new ApiError(404, `Constraint 'constraints/${constraint}' was not found.`, 'NOT_FOUND');
    const policy = await get(`/v2/${resource}/policies/${constraint}`).catch((e) => {
      if (asApiError(e).httpStatus === 404) return null;
      throw e;
    });
    const effective = await get(`/v2/${resource}/policies/${constraint}:getEffectivePolicy`);
    return { c, policy, effective };
  }, [resource, constraint]);
}

export function ConstraintPage({ resource, constraint }: { resource: string; constraint: string }) {
  const { project } = useApp();
  const saved = useRoute().query.get('saved') === '1';
  const pid = project?.projectId ?? '';
  useTitle(constraint);
  const d = useConstraint(resource, constraint);
  const boolean = !!d.data?.c.booleanConstraint;
  return (
    <section aria-labelledby="h-constraint">
      <p class="crumbs">
        <a href={href(['orgpolicies'], { resource, project: pid })}>Organization policies</a> › {constraint}
      </p>
      <h1 id="h-constraint" tabIndex={-1}>
        {d.data?.c.displayName ?? constraint}
      </h1>
      <p class="mono muted">constraints/{constraint} · on {resource}</p>
      {saved ? <Notice kind="success">Policy set on {resource}.</Notice> : null}
      <ReadState read={d} title="Cannot read the policy" />
      {d.data ? (
        <>
          <p>{d.data.c.description}</p>
          <dl class="facts">
            <dt>Effective policy</dt>
            <dd>
              <strong data-testid="effective">{effectiveText(d.data.effective, boolean)}</strong>
            </dd>
            <dt>Policy source</dt>
            <dd>{sourceText(d.data.policy ?? undefined)}</dd>
            {d.data.policy ? (
              <>
                <dt>Rules at this resource</dt>
                <dd>
                  {(d.data.policy.spec?.rules ?? []).map((r: any, i: number) => (
                    <span key={i} class="chip">
                      Enforcement {r.enforce ? 'On' : 'Off'}
                    </span>
                  ))}
                </dd>
              </>
            ) : null}
            <dt>Default</dt>
            <dd>{d.data.c.constraintDefault === 'DENY' ? 'Enforced (Google-managed default)' : 'Not enforced (Google-managed default)'}</dd>
          </dl>
          <a class="button primary" href={href(['orgpolicies', constraint, 'edit'], { resource, project: pid })}>
            Manage policy
          </a>
        </>
      ) : null}
    </section>
  );
}

type Source = 'inherit' | 'override' | 'reset';

export function ManagePolicy({ resource, constraint }: { resource: string; constraint: string }) {
  const { project } = useApp();
  const pid = project?.projectId ?? '';
  useTitle(`Manage ${constraint}`);
  const d = useConstraint(resource, constraint);
  const [source, setSource] = useState<Source>('inherit');
  const [rules, setRules] = useState<Array<{ enforce: boolean }>>([]);
  const [init, setInit] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    if (!d.data || init) return;
    const p = d.data.policy;
    if (p?.spec?.reset) setSource('reset');
    else if (p) {
      setSource('override');
      setRules((p.spec?.rules ?? []).map((r: any) => ({ enforce: !!r.enforce })));
    }
    setInit(true);
  }, [d.data]);
  const name = `${resource}/policies/${constraint}`;
  const save = async (e: Event) => {
    e.preventDefault();
    setError(null);
    const existing = d.data?.policy;
    if (source === 'override' && rules.length === 0) {
      setError(new ApiError(0, 'Add a rule: an overriding policy needs at least one rule.', 'INVALID_ARGUMENT'));
      return;
    }
    setBusy(true);
    try {
      if (source === 'inherit') {
        if (existing) await call('DELETE', `/v2/${name}`);
      } else {
        const spec = source === 'reset' ? { reset: true } : { rules: rules.map((r) => ({ enforce: r.enforce })) };
        if (existing) await call('PATCH', `/v2/${existing.name}`, { name: existing.name, spec, etag: existing.etag });
        else await post(`/v2/${resource}/policies`, { name, spec });
      }
      navigate(href(['orgpolicies', constraint], { resource, project: pid, saved: '1' }));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  if (d.error) return <ErrorBanner error={d.error} title="Cannot read the policy" />;
  if (!d.data) return <Loading />;
  const boolean = !!d.data.c.booleanConstraint;
  return (
    <section aria-labelledby="h-manage">
      <p class="crumbs">
        <a href={href(['orgpolicies'], { resource, project: pid })}>Organization policies</a> ›{' '}
        <a href={href(['orgpolicies', constraint], { resource, project: pid })}>{constraint}</a> › Manage policy
      </p>
      <h1 id="h-manage" tabIndex={-1}>
        Manage policy: {d.data.c.displayName}
      </h1>
      <p class="mono muted">on {resource}</p>
      {!boolean ? <Notice kind="warning">This console edits boolean constraints only; use the API or the CLI for list constraints.</Notice> : null}
      <form class="form" onSubmit={save} aria-label="Manage policy">
        <fieldset>
          <legend>Policy source</legend>
          {(
            [
              ['inherit', "Inherit parent's policy"],
              ['override', "Override parent's policy"],
              ['reset', 'Google-managed default'],
            ] as Array<[Source, string]>
          ).map(([v, label]) => (
            <label class="check-label" key={v}>
              <input type="radio" name="source" value={v} checked={source === v} onChange={() => setSource(v)} />
              {label}
            </label>
          ))}
        </fieldset>
        {source === 'override' ? (
          <fieldset>
            <legend>Rules</legend>
            {rules.length === 0 ? <p class="muted">No rules yet.</p> : null}
            {rules.map((r, i) => (
              <fieldset key={i} class="rule">
                <legend>Rule {i + 1}: Enforcement</legend>
                <label class="check-label">
                  <input type="radio" name={`enforce-${i}`} checked={r.enforce} onChange={() => setRules(rules.map((x, j) => (j === i ? { enforce: true } : x)))} />
                  On
                </label>
                <label class="check-label">
                  <input type="radio" name={`enforce-${i}`} checked={!r.enforce} onChange={() => setRules(rules.map((x, j) => (j === i ? { enforce: false } : x)))} />
                  Off
                </label>
                <button type="button" class="small-button" aria-label={`Delete rule ${i + 1}`} onClick={() => setRules(rules.filter((_, j) => j !== i))}>
                  Delete rule
                </button>
              </fieldset>
            ))}
            <button type="button" class="button" disabled={!boolean || rules.length >= 1} onClick={() => setRules([...rules, { enforce: true }])}>
              Add a rule
            </button>
          </fieldset>
        ) : null}
        {error ? <ErrorBanner error={error} title="Cannot set the policy" /> : null}
        <div class="actions">
          <button type="submit" class="button primary" disabled={busy || !boolean}>
            {busy ? 'Setting…' : 'Set policy'}
          </button>
          <a class="button" href={href(['orgpolicies', constraint], { resource, project: pid })}>
            Cancel
          </a>
        </div>
      </form>
    </section>
  );
}
