// A worker pool's Security tab: its service identity, drawn as a picture (deployer → actAs →
// account → the account's roles), and the seed's conditions for it as a checklist, each
// green or red with its fix. Every fact comes from a public API, read as the signed-in user:
// Policy Troubleshooter for "does X hold permission P on the account", Org Policy's
// effective policy for the constraint, and the IAM policies of the account's ancestry for
// its roles. What the user may not read is shown as unknown, never guessed.

import { useId } from 'preact/hooks';
import { ApiError, asApiError, enc, get, post } from '../api';
import {
  CROSS_PROJECT_CONSTRAINT,
  accountProjectId,
  memberOf,
  projectNumber,
  runServiceAgent,
  useApp,
} from '../context';
import { href } from '../router';
import { emailOf } from '../session';
import { CheckState, CopyCommand, ErrorBanner, Loading, StateMark, useAsync } from '../ui';

interface Check {
  state: CheckState;
  detail: string;
}

interface Grant {
  role: string;
  resource: string;
}

export interface Analysis {
  email: string;
  isDefault: boolean;
  account?: any;
  accountError?: ApiError;
  accountProject: string;
  poolProject: string;
  poolNumber: string;
  cross: boolean;
  deployer: string;
  deployerIsYou: boolean;
  agent: string;
  actAs: Check;
  tokenCreator: Check;
  constraint: Check;
  roles: Grant[];
  unreadable: Array<{ resource: string; message: string }>;
}

const ACCOUNT_RESOURCE = (email: string) => `//iam.googleapis.com/projects/-/serviceAccounts/${email}`;

/** Policy Troubleshooter: does `principal` hold `permission` on the account? */
async function troubleshoot(principal: string, email: string, permission: string): Promise<Check> {
  try {
    const v = await post('/v3/iam:troubleshoot', {
      accessTuple: { principal, fullResourceName: ACCOUNT_RESOURCE(email), permission },
    });
    const s = String(v.overallAccessState ?? '');
    if (s === 'CAN_ACCESS' || s === '1') return { state: 'ok', detail: `${principal} holds ${permission} on the account.` };
    if (s === 'CANNOT_ACCESS' || s === '2') return { state: 'fail', detail: `${principal} does not hold ${permission} on the account.` };
    return { state: 'unknown', detail: `You cannot read every policy that decides whether ${principal} holds ${permission}.` };
  } catch (e) {
    return { state: 'unknown', detail: `Policy Troubleshooter: ${asApiError(e).message}` };
  }
}

/** The resource's ancestry, from itself up to its organization, as far as the user may read. */
async function ancestry(projectId: string): Promise<Array<{ name: string; label: string }>> {
  const out: Array<{ name: string; label: string }> = [];
  try {
    const p = await get(`/v3/projects/${enc(projectId)}`);
    out.push({ name: `projects/${p.projectId}`, label: `project ${p.projectId}` });
    let parent: string = p.parent ?? '';
    for (let i = 0; parent && i < 12; i++) {
      if (parent.startsWith('organizations/')) {
        const o = await get(`/v3/${parent}`).catch(() => null);
        out.push({ name: parent, label: `organization ${o?.displayName ?? parent}` });
        break;
      }
      const f = await get(`/v3/${parent}`);
      out.push({ name: parent, label: `folder ${f.displayName ?? parent}` });
      parent = f.parent ?? '';
    }
  } catch {
    // What the user may not read ends the walk.
  }
  return out;
}

export async function analyse(pool: any, you: string, poolProject: string, poolNumber: string): Promise<Analysis> {
  const requested: string = pool.template?.serviceAccount ?? '';
  const isDefault = !requested;
  const email = requested || `${poolNumber}-compute@developer.gserviceaccount.com`;
  const deployer: string = pool.lastModifier || emailOf(you);
  const deployerIsYou = memberOf(deployer) === you;
  const agent = runServiceAgent(poolNumber);

  const account = await get(`/v1/projects/-/serviceAccounts/${enc(email)}`).then(
    (a) => ({ a, e: undefined }),
    (e) => ({ a: undefined, e: asApiError(e) }),
  );
  const accountProject: string = account.a?.projectId ?? (accountProjectId(email) || (isDefault ? poolProject : ''));
  const cross = accountProject !== '' && accountProject !== poolProject;

  const actAsP = troubleshoot(deployer, email, 'iam.serviceAccounts.actAs').then(async (c) => {
    if (c.state !== 'unknown' || !deployerIsYou) return c;
    // The troubleshooter needs policies you may not read; you can always test your own access.
    try {
      const v = await post(`/v1/projects/-/serviceAccounts/${enc(email)}:testIamPermissions`, {
        permissions: ['iam.serviceAccounts.actAs'],
      });
      return (v.permissions ?? []).includes('iam.serviceAccounts.actAs')
        ? { state: 'ok' as const, detail: 'You hold iam.serviceAccounts.actAs on the account.' }
        : { state: 'fail' as const, detail: 'You do not hold iam.serviceAccounts.actAs on the account.' };
    } catch {
      return c;
    }
  });
  const agentP = troubleshoot(agent, email, 'iam.serviceAccounts.getAccessToken');
  const constraintP: Promise<Check> = cross
    ? get(`/v2/projects/${enc(accountProject)}/policies/${CROSS_PROJECT_CONSTRAINT}:getEffectivePolicy`).then(
        (p) => {
          const enforced = (p.spec?.rules ?? []).some((r: any) => r.enforce === true);
          return enforced
            ? { state: 'fail', detail: `Enforced on project ${accountProject} (by default, or set on it or an ancestor).` }
            : { state: 'ok', detail: `Not enforced on project ${accountProject}.` };
        },
        (e) => ({ state: 'unknown', detail: `Cannot read the effective policy: ${asApiError(e).message}` }),
      )
    : Promise.resolve({ state: 'na', detail: 'Not needed: the account is in the pool’s own project.' });

  const resources = new Map<string, string>();
  const chains = await Promise.all([ancestry(accountProject || poolProject), ancestry(poolProject)]);
  for (const r of chains.flat()) resources.set(r.name, r.label);
  const roles: Grant[] = [];
  const unreadable: Array<{ resource: string; message: string }> = [];
  await Promise.all(
    [...resources].map(async ([name, label]) => {
      try {
        const policy = await post(`/v3/${name}:getIamPolicy`, { options: { requestedPolicyVersion: 3 } });
        for (const b of policy.bindings ?? []) {
          if ((b.members ?? []).includes(`serviceAccount:${email}`)) roles.push({ role: b.role, resource: label });
        }
      } catch (e) {
        unreadable.push({ resource: label, message: asApiError(e).message });
      }
    }),
  );
  roles.sort((a, b) => a.resource.localeCompare(b.resource) || a.role.localeCompare(b.role));
  const [actAs, tokenCreator, constraint] = await Promise.all([actAsP, agentP, constraintP]);
  return {
    email,
    isDefault,
    account: account.a,
    accountError: account.e,
    accountProject,
    poolProject,
    poolNumber,
    cross,
    deployer,
    deployerIsYou,
    agent,
    actAs,
    tokenCreator,
    constraint,
    roles,
    unreadable,
  };
}

export function IdentityPanel({ pool }: { pool: any }) {
  const { project, principal } = useApp();
  const pid = project?.projectId ?? '';
  const a = useAsync(
    async () => {
      let number = projectNumber(project);
      if (!number) number = ((await get(`/v3/projects/${enc(pid)}`)).name as string).split('/')[1];
      return analyse(pool, principal, pid, number);
    },
    [pool.etag, pid, principal],
  );
  const email = pool.template?.serviceAccount;
  return (
    <div class="identity">
      <h2>Service account</h2>
      <p>
        <span class="mono">{email || 'Default compute service account'}</span>
        {email ? (
          <>
            {' '}
            · <a href={href(['iam', 'serviceaccounts', email], { project: accountProjectId(email) || pid })}>Open the service account</a>
          </>
        ) : null}
      </p>
      <p class="muted">
        The worker pool’s instances call Google APIs as this account (its <em>service identity</em>). To attach it, the
        deployer needs <code>iam.serviceAccounts.actAs</code> on it; Cloud Run’s service agent mints its tokens.
      </p>
      {a.error ? <ErrorBanner error={a.error} title="Cannot examine the service identity" /> : null}
      {a.loading && !a.data ? <Loading label="Examining the service identity…" /> : null}
      {a.data ? (
        <>
          <IdentityDiagram a={a.data} />
          <Checklist a={a.data} />
          <button type="button" class="button" onClick={a.reload}>
            Check again
          </button>
        </>
      ) : null}
    </div>
  );
}

function Checklist({ a }: { a: Analysis }) {
  const { project } = useApp();
  const pid = project?.projectId ?? '';
  const acctHref = href(['iam', 'serviceaccounts', a.email], { project: a.accountProject || pid, tab: 'permissions' });
  const items = [
    {
      id: 'actAs',
      title: `The deployer (${a.deployer}) has Service Account User (roles/iam.serviceAccountUser) on ${a.email}`,
      check: a.actAs,
      command: `runpool iam service-accounts add-iam-policy-binding ${a.email} --member=${memberOf(a.deployer)} --role=roles/iam.serviceAccountUser`,
      link: { href: acctHref, label: 'Grant it on the account’s Principals with access tab' },
    },
    {
      id: 'tokenCreator',
      title: `The Cloud Run service agent (${a.agent}) has Service Account Token Creator (roles/iam.serviceAccountTokenCreator) on ${a.email}`,
      check: a.tokenCreator,
      command: `runpool iam service-accounts add-iam-policy-binding ${a.email} --member=serviceAccount:${a.agent} --role=roles/iam.serviceAccountTokenCreator`,
      link: { href: acctHref, label: 'Grant it on the account’s Principals with access tab' },
    },
    {
      id: 'constraint',
      title: `${CROSS_PROJECT_CONSTRAINT} is not enforced on the account’s project (${a.accountProject || 'unknown'})`,
      check: a.constraint,
      command: `runpool resource-manager org-policies disable-enforce ${CROSS_PROJECT_CONSTRAINT} --project=${a.accountProject}`,
      link: {
        href: href(['orgpolicies', CROSS_PROJECT_CONSTRAINT], { resource: `projects/${a.accountProject}`, project: pid }),
        label: 'Turn it off on the Organization policies page',
      },
    },
  ];
  return (
    <section aria-labelledby="h-checks" class="checklist">
      <h2 id="h-checks">
        {a.cross
          ? `Cross-project service account: the three conditions (the account lives in ${a.accountProject}, the pool in ${a.poolProject})`
          : 'Service identity conditions'}
      </h2>
      <ol>
        {items.map((it) => (
          <li key={it.id} class={`check ${it.check.state}`} data-check={it.id} data-state={it.check.state}>
            <StateMark state={it.check.state} />
            <div>
              <p class="check-title">{it.title}</p>
              <p class="muted small">{it.check.detail}</p>
              {it.check.state === 'fail' || it.check.state === 'unknown' ? (
                <div class="fix">
                  <p>
                    <strong>Fix:</strong> <a href={it.link.href}>{it.link.label}</a>, or run:
                  </p>
                  <CopyCommand command={it.command} />
                </div>
              ) : null}
            </div>
          </li>
        ))}
      </ol>
    </section>
  );
}

const COLOR: Record<CheckState, string> = {
  ok: '#137333',
  fail: '#c5221f',
  unknown: '#5f6368',
  na: '#5f6368',
  running: '#1a73e8',
  pending: '#5f6368',
};
const MARK: Record<CheckState, string> = { ok: '✓', fail: '✗', unknown: '?', na: '–', running: '…', pending: '○' };
const WORD: Record<CheckState, string> = {
  ok: 'holds',
  fail: 'fails',
  unknown: 'unknown',
  na: 'not needed',
  running: 'checking',
  pending: 'waiting',
};

/** An email on one or two lines (split before the `@`) so it fits its box. */
function emailLines(email: string, max = 40): string[] {
  if (email.length <= max) return [email];
  const i = email.indexOf('@');
  return i > 0 ? [email.slice(0, i), email.slice(i)] : [email];
}

/** A line of SVG text squeezed to `width` when it is longer (6.4 px per character at 12 px). */
function Line({ x, y, text, width, cls }: { x: number; y: number; text: string; width: number; cls?: string }) {
  const tooLong = text.length * 6.4 > width;
  return (
    <text x={x} y={y} class={cls} {...(tooLong ? { textLength: width, lengthAdjust: 'spacingAndGlyphs' } : {})}>
      {text}
    </text>
  );
}

function Box({
  x,
  y,
  w,
  h,
  kind,
  title,
  lines,
  state,
}: {
  x: number;
  y: number;
  w: number;
  h: number;
  kind: string;
  title: string;
  lines: string[];
  state?: CheckState;
}) {
  return (
    <g class={`node ${kind}`}>
      <rect x={x} y={y} width={w} height={h} rx={8} stroke={state ? COLOR[state] : undefined} />
      <text x={x + 12} y={y + 20} class="node-title">
        {title}
      </text>
      {lines.map((l, i) => (
        <Line key={i} x={x + 12} y={y + 40 + i * 17} text={l} width={w - 24} />
      ))}
    </g>
  );
}

/** A principal's box in the left column, at height `y`: its arrow's state colours it. */
function PrincipalBox(p: { y: number; kind: string; title: string; lines: string[]; state: CheckState }) {
  return <Box x={10} w={300} h={96} {...p} />;
}

function Arrow({ d, state, label, lx, ly, id }: { d: string; state: CheckState; label: string; lx: number; ly: number; id: string }) {
  return (
    <g class={`edge ${state}`}>
      <path d={d} fill="none" stroke={COLOR[state]} stroke-width={2} stroke-dasharray={state === 'fail' ? '6 4' : undefined} marker-end={`url(#${id}-${state})`} />
      <text x={lx} y={ly} text-anchor="middle" fill={COLOR[state]} class="edge-label">
        {label} {MARK[state]}
      </text>
    </g>
  );
}

export function IdentityDiagram({ a }: { a: Analysis }) {
  const id = useId().replace(/[^a-zA-Z0-9_-]/g, '');
  const rolesShown = a.roles.length + a.unreadable.length || 1;
  const rolesH = 36 + rolesShown * 34;
  const H = Math.max(40 + rolesH, a.cross ? 330 : 310) + 20;
  const acctLines = [
    ...emailLines(a.email),
    a.account ? `in project ${a.accountProject}` : a.accountError ? `cannot read: ${a.accountError.status}` : '',
    a.cross ? 'cross-project' : 'same project as the pool',
  ].filter(Boolean);
  const summary = `Deployer ${a.deployer} ${WORD[a.actAs.state]} actAs on ${a.email}; Cloud Run service agent token creator ${WORD[a.tokenCreator.state]}; ${
    a.cross ? `cross-project constraint ${WORD[a.constraint.state]}; ` : ''
  }the account holds ${a.roles.length} role(s).`;
  return (
    <figure class="identity-view">
      <svg viewBox={`0 0 1150 ${H}`} role="img" aria-labelledby={`${id}-t ${id}-d`} data-testid="identity-view">
        <title id={`${id}-t`}>Identity view of the worker pool’s service account</title>
        <desc id={`${id}-d`}>{summary}</desc>
        <defs>
          {(Object.keys(COLOR) as CheckState[]).map((s) => (
            <marker key={s} id={`${id}-${s}`} viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
              <path d="M 0 0 L 10 5 L 0 10 z" fill={COLOR[s]} />
            </marker>
          ))}
        </defs>
        <PrincipalBox
          y={40}
          kind="deployer"
          title="Deployer"
          lines={[...emailLines(a.deployer), a.deployerIsYou ? '(you)' : '(deployed the latest revision)']}
          state={a.actAs.state}
        />
        <Arrow id={id} d="M 310 88 L 448 88" state={a.actAs.state} label="actAs" lx={379} ly={78} />
        <text x={379} y={106} text-anchor="middle" class="edge-sub">
          Service Account User
        </text>
        <Box x={450} y={40} w={330} h={144} kind="account" title="Service account (service identity)" lines={acctLines} />
        <Arrow id={id} d="M 780 88 L 848 88" state={a.roles.length ? 'ok' : 'na'} label="roles" lx={814} ly={78} />
        <g class="node roles">
          <rect x={850} y={40} width={290} height={rolesH} rx={8} />
          <text x={862} y={60} class="node-title">
            Its roles (as a principal)
          </text>
          {a.roles.map((g, i) => (
            <g key={`${g.resource}-${g.role}`}>
              <Line x={862} y={84 + i * 34} text={g.role} width={266} cls="role" />
              <Line x={862} y={99 + i * 34} text={`on ${g.resource}`} width={266} cls="edge-sub" />
            </g>
          ))}
          {a.unreadable.map((u, i) => (
            <g key={u.resource}>
              <Line x={862} y={84 + (a.roles.length + i) * 34} text={`? cannot read the policy of`} width={266} cls="role unknown" />
              <Line x={862} y={99 + (a.roles.length + i) * 34} text={u.resource} width={266} cls="edge-sub" />
            </g>
          ))}
          {rolesShown === 1 && a.roles.length === 0 && a.unreadable.length === 0 ? (
            <Line x={862} y={84} text="None: fine for a pool that calls no Google API" width={266} cls="edge-sub" />
          ) : null}
        </g>
        <PrincipalBox y={200} kind="agent" title="Cloud Run service agent" lines={emailLines(a.agent)} state={a.tokenCreator.state} />
        <Arrow id={id} d="M 310 248 L 500 248 L 500 186" state={a.tokenCreator.state} label="Token Creator" lx={400} ly={238} />
        {a.cross ? (
          <>
            <Box
              x={560}
              y={220}
              w={340}
              h={96}
              kind="policy"
              title={`Org policy on project ${a.accountProject}`}
              lines={[CROSS_PROJECT_CONSTRAINT, a.constraint.state === 'ok' ? 'Not enforced' : a.constraint.state === 'fail' ? 'Enforced' : 'Unknown']}
              state={a.constraint.state}
            />
            <Arrow id={id} d="M 650 218 L 650 186" state={a.constraint.state} label="" lx={650} ly={200} />
            <text x={664} y={206} class="edge-label" fill={COLOR[a.constraint.state]}>
              allows cross-project use {MARK[a.constraint.state]}
            </text>
          </>
        ) : null}
      </svg>
      <figcaption class="muted small">
        Deployer → actAs → service account → its roles. Green holds, red fails (dashed), grey unknown or not needed.
      </figcaption>
    </figure>
  );
}
