// Cloud Run → Worker pools: the list (Cloud Run Admin API v1, which lists every region in
// one call, as Google's console does) and a pool's details pane (v2).

import { useEffect, useState } from 'preact/hooks';
import { call, enc, get, waitOperation } from '../api';
import { useApp } from '../context';
import { href, navigate, useRoute } from '../router';
import { Actions, Dialog, ErrorBanner, Grid, Loading, Notice, PageHead, ReadState, Tabs, formatTime, useAsync } from '../ui';
import { IdentityPanel } from './identity';
import { Recommendations, useRecommendations } from './recommendations';

export function useTitle(t: string) {
  useEffect(() => {
    document.title = `${t} – Runpool console`;
  }, [t]);
}

/** A pool's `Ready` condition in words. */
export function readiness(pool: any): { state: 'ok' | 'fail' | 'running'; text: string } {
  const c = pool?.terminalCondition;
  if (!c) return { state: 'running', text: 'Deploying' };
  if (c.state === 'CONDITION_SUCCEEDED') return { state: 'ok', text: 'Ready' };
  if (c.state === 'CONDITION_FAILED') return { state: 'fail', text: c.message || 'Failed' };
  return { state: 'running', text: c.message || 'Starting instances' };
}

export function WorkerPoolsList() {
  const { project } = useApp();
  useTitle('Worker pools');
  const pid = project?.projectId ?? '';
  const pools = useAsync(
    () => (pid ? get(`/apis/run.googleapis.com/v1/namespaces/${enc(pid)}/workerpools`) : Promise.resolve({ items: [] })),
    [pid],
  );
  const items: any[] = pools.data?.items ?? [];
  return (
    <section aria-labelledby="h-pools">
      <PageHead id="h-pools" title="Worker pools" action="Deploy container" to={href(['run', 'workerpools', 'create'], { project: pid })} />
      <p class="muted">Cloud Run worker pools in {pid || 'no project'}: long-running instances that pull work, with a service identity.</p>
      <ReadState read={pools} title="Cannot list worker pools" loading="Loading worker pools…" />
      {pools.data && items.length === 0 ? <Notice>No worker pools in {pid} yet. Click Deploy container to create one.</Notice> : null}
      {items.length > 0 ? (
        <Grid label="Worker pools" columns={['Status', 'Name', 'Region', 'Service account', 'Last deployed by', 'Created']}>
          {items.map((p) => {
            const region = p.metadata.labels?.['cloud.googleapis.com/location'] ?? '';
            const ready = (p.status?.conditions ?? []).find((c: any) => c.type === 'Ready');
            const ok = ready?.status === 'True';
            return (
              <tr key={`${region}/${p.metadata.name}`}>
                <td>
                  <span class={`pill ${ok ? 'ok' : 'running'}`}>{ok ? 'Ready' : ready?.message || 'Not ready'}</span>
                </td>
                <td>
                  <a href={href(['run', 'workerpools', region, p.metadata.name], { project: pid })}>{p.metadata.name}</a>
                </td>
                <td>{region}</td>
                <td class="mono">{p.spec?.template?.spec?.serviceAccountName || 'Default compute service account'}</td>
                <td>{p.metadata.annotations?.['serving.knative.dev/lastModifier']}</td>
                <td>{formatTime(p.metadata.creationTimestamp)}</td>
              </tr>
            );
          })}
        </Grid>
      ) : null}
    </section>
  );
}

export function poolPath(project: string, region: string, name: string) {
  return `/v2/projects/${enc(project)}/locations/${enc(region)}/workerPools/${enc(name)}`;
}

export function PoolDetails({ region, name }: { region: string; name: string }) {
  const { project } = useApp();
  const route = useRoute();
  const pid = project?.projectId ?? '';
  useTitle(`Worker pool ${name}`);
  const path = poolPath(pid, region, name);
  const pool = useAsync(() => get(path), [path]);
  const recs = useRecommendations(pid, pool.data);
  const [deleting, setDeleting] = useState(false);
  const [deleteError, setDeleteError] = useState<unknown>(null);
  const tab = route.query.get('tab') ?? 'overview';
  const setTab = (t: string) => navigate(href(['run', 'workerpools', region, name], { project: pid, tab: t }));
  // While instances start, look again every two seconds (at most a minute).
  const [polls, setPolls] = useState(0);
  const ready = readiness(pool.data);
  useEffect(() => {
    if (!pool.data || ready.state !== 'running' || polls > 30) return;
    const t = setTimeout(() => {
      setPolls((n) => n + 1);
      pool.reload();
    }, 2000);
    return () => clearTimeout(t);
  }, [pool.data, ready.state, polls]);

  if (pool.error && !pool.data) {
    return (
      <section>
        <h1 tabIndex={-1}>Worker pool {name}</h1>
        <ErrorBanner error={pool.error} title={`Cannot read worker pool ${name}`} />
        <p>
          <a href={href(['run', 'workerpools'], { project: pid })}>Back to worker pools</a>
        </p>
      </section>
    );
  }
  if (!pool.data) return <Loading label={`Loading worker pool ${name}…`} />;
  const p = pool.data;
  const c = p.template?.containers?.[0] ?? {};
  const tabs = [
    { id: 'overview', label: 'Overview' },
    { id: 'revisions', label: 'Revisions' },
    { id: 'security', label: 'Security' },
    ...(recs.available ? [{ id: 'recommendations', label: `Recommendations (${recs.items.length})` }] : []),
  ];
  const remove = async () => {
    setDeleteError(null);
    try {
      const op = await call('DELETE', path);
      await waitOperation(op);
      navigate(href(['run', 'workerpools'], { project: pid }));
    } catch (e) {
      setDeleteError(e);
    }
  };
  return (
    <section aria-labelledby="h-pool" class="details-pane">
      <p class="crumbs">
        <a href={href(['run', 'workerpools'], { project: pid })}>Worker pools</a> › {name}
      </p>
      <div class="page-head">
        <h1 id="h-pool" tabIndex={-1}>
          {name} <span class={`pill ${ready.state}`}>{ready.state === 'ok' ? 'Ready' : ready.state === 'fail' ? 'Failed' : 'Deploying'}</span>
        </h1>
        <div class="actions">
          <a class="button primary" href={href(['run', 'workerpools', region, name, 'edit'], { project: pid })}>
            Edit and deploy new revision
          </a>
          <button type="button" class="button danger" onClick={() => setDeleting(true)}>
            Delete
          </button>
        </div>
      </div>
      <p class="muted">
        Region {region} · Revision {(p.latestCreatedRevision ?? '').split('/').pop()} · Last deployed by {p.lastModifier} on {formatTime(p.updateTime)}
      </p>
      {pool.error ? <ErrorBanner error={pool.error} /> : null}
      <Tabs label="Worker pool details" tabs={tabs} active={tab} onSelect={setTab}>
        {tab === 'overview' ? (
          <dl class="facts">
            <dt>Status</dt>
            <dd>{ready.text}</dd>
            <dt>Container image</dt>
            <dd class="mono">{c.image}</dd>
            <dt>Command</dt>
            <dd class="mono">{(c.command ?? []).join(' ') || '(image entrypoint)'}</dd>
            <dt>Arguments</dt>
            <dd class="mono">{(c.args ?? []).join(' ') || '(none)'}</dd>
            <dt>Instances</dt>
            <dd>{p.scaling?.manualInstanceCount ?? 1}</dd>
            <dt>Service account</dt>
            <dd class="mono">{p.template?.serviceAccount || 'Default compute service account'}</dd>
            <dt>Created by</dt>
            <dd>
              {p.creator} on {formatTime(p.createTime)}
            </dd>
          </dl>
        ) : null}
        {tab === 'revisions' ? <Revisions path={path} /> : null}
        {tab === 'security' ? <IdentityPanel pool={p} /> : null}
        {tab === 'recommendations' ? <Recommendations items={recs.items} /> : null}
      </Tabs>
      <Dialog open={deleting} title={`Delete worker pool ${name}?`} onClose={() => setDeleting(false)}>
        <p>Its instances stop and its revisions are deleted.</p>
        {deleteError ? <ErrorBanner error={deleteError} /> : null}
        <Actions kind="danger" label="Delete" onClick={remove} onCancel={() => setDeleting(false)} />
      </Dialog>
    </section>
  );
}

function Revisions({ path }: { path: string }) {
  const revs = useAsync(() => get(`${path}/revisions`), [path]);
  if (revs.error) return <ErrorBanner error={revs.error} title="Cannot list revisions" />;
  if (!revs.data) return <Loading />;
  const items: any[] = revs.data.revisions ?? [];
  return (
    <Grid label="Revisions" columns={['Revision', 'Service account', 'Image', 'Deployed']}>
      {items.map((r) => (
        <tr key={r.name}>
          <td class="mono">{r.name.split('/').pop()}</td>
          <td class="mono">{r.serviceAccount}</td>
          <td class="mono">{r.containers?.[0]?.image}</td>
          <td>{formatTime(r.createTime)}</td>
        </tr>
      ))}
    </Grid>
  );
}
