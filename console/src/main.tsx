// The Runpool console: sign-in, the shell (project picker, who you are, navigation) and the
// pages. Everything it shows comes from the public REST APIs, called with the signed-in
// principal's token.

import { render } from 'preact';
import { useEffect, useErrorBoundary, useState } from 'preact/hooks';
import { get, listAll } from './api';
import { AppContext, Project } from './context';
import { href, navigate, useRoute } from './router';
import { emailOf, session, setSession, signInFromLocation, switchUser, useSession } from './session';
import './style.css';
import { Actions, Dialog, ErrorBanner, Field, Loading, ProjectSelect, useAsync } from './ui';
import { DeployPage } from './pages/deploy';
import { ConstraintPage, ManagePolicy, OrgPoliciesList } from './pages/orgpolicies';
import { CreateServiceAccountPage, ServiceAccountDetails, ServiceAccountsList } from './pages/serviceaccounts';
import { PoolDetails, WorkerPoolsList } from './pages/workerpools';

const PROJECT_KEY = 'runpool.console.project';

function App() {
  const s = useSession();
  const [signing, setSigning] = useState(location.hash.startsWith('#code='));
  const [signInError, setSignInError] = useState<unknown>(null);
  useEffect(() => {
    const attempt = () => {
      if (!location.hash.startsWith('#code=')) return;
      setSigning(true);
      signInFromLocation()
        .then(() => setSignInError(null), setSignInError)
        .finally(() => setSigning(false));
    };
    attempt();
    addEventListener('hashchange', attempt);
    return () => removeEventListener('hashchange', attempt);
  }, []);
  if (signing) return <Loading label="Signing in…" />;
  if (!s) return <SignedOut error={signInError} />;
  // A new principal gets fresh pages: nothing read as the previous one stays on screen.
  return <Shell key={s.principal} signInError={signInError} />;
}

function SignedOut({ error }: { error: unknown }) {
  useEffect(() => {
    document.title = 'Sign in – Runpool console';
  }, []);
  return (
    <main id="main" class="signed-out">
      <h1>Runpool console</h1>
      {error ? <ErrorBanner error={error} title="Sign-in failed" /> : null}
      <p>You are not signed in. In a terminal where the Runpool CLI is logged in, run:</p>
      <pre class="command">
        <code>runpool console</code>
      </pre>
      <p>
        and open the one-time link it prints (<code>--account EMAIL</code> picks another of the CLI’s accounts).
      </p>
    </main>
  );
}

function SwitchUser({ open, onClose }: { open: boolean; onClose: () => void }) {
  const [email, setEmail] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await switchUser(email);
      onClose();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog open={open} title="Switch to another simulated user" onClose={onClose}>
      <form class="form" onSubmit={submit} aria-label="Switch user">
        <p class="muted">
          With the server’s admin credential, the console can act as any simulated user (as <code>runpool auth login</code> does). What that user may
          do is decided by IAM.
        </p>
        <Field id="switch-email" label="User email">
          <input id="switch-email" type="email" required autoFocus value={email} onInput={(e) => setEmail((e.target as HTMLInputElement).value)} />
        </Field>
        {error ? <ErrorBanner error={error} title="Cannot switch user" /> : null}
        <Actions label="Switch" busy={busy} onCancel={onClose} />
      </form>
    </Dialog>
  );
}

function Shell({ signInError }: { signInError: unknown }) {
  const s = session()!;
  const route = useRoute();
  const [switching, setSwitching] = useState(false);
  const who = useAsync(() => get('/tokeninfo'), [s.accessToken]);
  const projects = useAsync(() => listAll<Project>('/v3/projects:search', 'projects'), []);
  const list = projects.data ?? [];
  const wanted = route.query.get('project') ?? localStorage.getItem(PROJECT_KEY) ?? '';
  const project = list.find((p) => p.projectId === wanted) ?? list[0];
  useEffect(() => {
    if (project) localStorage.setItem(PROJECT_KEY, project.projectId);
  }, [project?.projectId]);
  const pathKey = route.parts.join('/');
  useEffect(() => {
    (document.querySelector('main h1') as HTMLElement | null)?.focus({ preventScroll: true });
  }, [pathKey]);
  const email = who.data?.email ?? emailOf(s.principal);
  const setProject = (pid: string) => {
    // A page of one resource belongs to its project: go to the product's list instead.
    if (route.parts[0] === 'orgpolicies') navigate(href(['orgpolicies'], { project: pid, resource: `projects/${pid}` }));
    else navigate(href(route.parts.length ? route.parts.slice(0, 2) : ['run', 'workerpools'], { project: pid }));
  };
  const pid = project?.projectId ?? '';
  const nav = [
    { group: 'Cloud Run', items: [{ label: 'Worker pools', to: href(['run', 'workerpools'], { project: pid }), match: 'run' }] },
    {
      group: 'IAM & Admin',
      items: [
        { label: 'Service accounts', to: href(['iam', 'serviceaccounts'], { project: pid }), match: 'iam' },
        { label: 'Organization policies', to: href(['orgpolicies'], { project: pid, resource: pid ? `projects/${pid}` : undefined }), match: 'orgpolicies' },
      ],
    },
  ];
  return (
    <AppContext.Provider value={{ projects: list, project, projectsError: projects.error, principal: s.principal }}>
      <header class="topbar">
        <a class="brand" href={href(['run', 'workerpools'], { project: pid })}>
          Runpool console
        </a>
        <label class="project-picker">
          <span>Project</span>
          <ProjectSelect label="Project" empty="No project" projects={list} value={pid} onChange={setProject} />
        </label>
        <div class="who">
          <span>
            Signed in as <strong data-testid="whoami">{email}</strong>
          </span>
          {s.adminCredential ? (
            <button type="button" class="small-button" onClick={() => setSwitching(true)}>
              Switch user
            </button>
          ) : null}
          <button
            type="button"
            class="small-button"
            onClick={() => {
              setSession(null);
              navigate('#/');
            }}
          >
            Sign out
          </button>
        </div>
      </header>
      <div class="layout">
        <nav aria-label="Products">
          {nav.map((g) => (
            <div key={g.group}>
              <p class="nav-group">{g.group}</p>
              <ul>
                {g.items.map((i) => (
                  <li key={i.label}>
                    <a href={i.to} aria-current={route.parts[0] === i.match && (i.match !== 'iam' || route.parts[1] === 'serviceaccounts') ? 'page' : undefined}>
                      {i.label}
                    </a>
                  </li>
                ))}
              </ul>
            </div>
          ))}
        </nav>
        <main id="main">
          {signInError ? <ErrorBanner error={signInError} title="Sign-in failed; you are still signed in as before" /> : null}
          {who.error ? <ErrorBanner error={who.error} title="The server no longer accepts this session: run `runpool console` again" /> : null}
          {projects.error ? <ErrorBanner error={projects.error} title="Cannot list your projects" /> : null}
          {projects.loading && !projects.data ? <Loading label="Loading projects…" /> : <PageBoundary key={pathKey} />}
        </main>
      </div>
      <SwitchUser open={switching} onClose={() => setSwitching(false)} />
    </AppContext.Provider>
  );
}

/** A page that throws shows what went wrong, never a blank screen. */
function PageBoundary() {
  const [error, reset] = useErrorBoundary();
  if (error) {
    return (
      <>
        <ErrorBanner error={error} title="This page failed to render" />
        <button type="button" class="button" onClick={reset}>
          Try again
        </button>
      </>
    );
  }
  return <Page />;
}

function Page() {
  const { parts, query } = useRoute();
  const [a, b, c, d, e] = parts;
  if (a === 'run' && b === 'workerpools') {
    if (!c) return <WorkerPoolsList />;
    if (c === 'create') return <DeployPage />;
    if (d && e === 'edit') return <DeployPage region={c} name={d} />;
    if (d) return <PoolDetails key={`${c}/${d}`} region={c} name={d} />;
  }
  if (a === 'iam' && b === 'serviceaccounts') {
    if (!c) return <ServiceAccountsList />;
    if (c === 'create') return <CreateServiceAccountPage />;
    return <ServiceAccountDetails key={c} email={c} />;
  }
  if (a === 'orgpolicies') {
    const pid = query.get('project') ?? localStorage.getItem(PROJECT_KEY) ?? '';
    const resource = query.get('resource') ?? (pid ? `projects/${pid}` : '');
    if (!resource) return <ErrorBanner error={new Error('Pick a resource: no project is selected.')} />;
    if (!b) return <OrgPoliciesList resource={resource} />;
    if (c === 'edit') return <ManagePolicy key={`${resource}/${b}`} resource={resource} constraint={b} />;
    return <ConstraintPage key={`${resource}/${b}`} resource={resource} constraint={b} />;
  }
  return <Redirect to={href(['run', 'workerpools'], { project: query.get('project') })} />;
}

function Redirect({ to }: { to: string }) {
  useEffect(() => {
    history.replaceState(null, '', `${location.pathname}${to}`);
    dispatchEvent(new HashChangeEvent('hashchange'));
  }, [to]);
  return <Loading />;
}

addEventListener('unhandledrejection', (e) => console.error('Unhandled:', e.reason));

render(<App />, document.getElementById('app')!);
