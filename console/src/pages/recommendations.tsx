// Recommender (`recommender.googleapis.com/v1`): where the server answers it, the
// recommendations that concern a pool or its service account. Cloud Run's identity recommender
// (`google.run.service.IdentityRecommender`, at the pool's region) targets the pool itself; the
// IAM recommender (`google.iam.policy.Recommender`, global) those that name the pool or its
// account. Where neither answers (an older server, or no permission), the pool page simply
// shows no tab for them.

import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { enc, get } from '../api';
import { CopyCommand, Notice } from '../ui';

export interface Recommendation {
  name: string;
  description?: string;
  priority?: string;
  recommenderSubtype?: string;
  stateInfo?: { state?: string };
  targetResources?: string[];
  content?: {
    overview?: Record<string, unknown>;
    operationGroups?: Array<{ operations?: Array<Record<string, unknown>> }>;
  };
}

const recommendations = (project: string, location: string, recommender: string) =>
  get(`/v1/projects/${enc(project)}/locations/${enc(location)}/recommenders/${recommender}/recommendations`).then(
    (v) => (v.recommendations ?? []) as Recommendation[],
  );

export function useRecommendations(project: string, pool: any): { available: boolean; items: Recommendation[] } {
  const [state, setState] = useState<{ available: boolean; items: Recommendation[] }>({ available: false, items: [] });
  const account = pool?.template?.serviceAccount ?? '';
  const poolName = pool?.name ?? '';
  useEffect(() => {
    if (!project || !poolName) return;
    let live = true;
    // projects/P/locations/L/workerPools/ID
    const [, , , location = '', , id = ''] = poolName.split('/');
    Promise.allSettled([
      recommendations(project, location, 'google.run.service.IdentityRecommender').then((all) =>
        all.filter((r) => (r.targetResources ?? []).includes(`//run.googleapis.com/${poolName}`)),
      ),
      recommendations(project, 'global', 'google.iam.policy.Recommender').then((all) =>
        all.filter((r) => {
          const text = JSON.stringify(r);
          return (account && text.includes(account)) || text.includes(poolName) || (id && text.includes(`workerPools/${id}`));
        }),
      ),
    ]).then((answers) => {
      if (!live) return;
      const items = answers.flatMap((a) => (a.status === 'fulfilled' ? a.value : []));
      setState({ available: answers.some((a) => a.status === 'fulfilled'), items });
    });
    return () => {
      live = false;
    };
  }, [project, poolName, account]);
  return state;
}

const strings = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : []);

/** The overview's facts, as the recommender spells them, in words. */
function Overview({ overview }: { overview: Record<string, unknown> }) {
  const o = overview;
  const used = strings(o.exercisedPermissions);
  const roles = strings(o.addedRoles);
  const deployers = strings(o.deployers);
  const rows: Array<[string, ComponentChildren]> = [];
  if (o.currentServiceAccount) rows.push(['Current service account', <span class="mono">{String(o.currentServiceAccount)}</span>]);
  if (o.recommendedServiceAccount) rows.push(['Recommended service account', <span class="mono">{String(o.recommendedServiceAccount)}</span>]);
  if (o.member) rows.push(['Principal', <span class="mono">{String(o.member)}</span>]);
  if (o.removedRole) rows.push(['Role to remove', <span class="mono">{String(o.removedRole)}</span>]);
  if ('addedRoles' in o) {
    rows.push([
      'Roles to add',
      roles.length ? (
        <span class="mono">{roles.join(', ')}</span>
      ) : 'exercisedPermissions' in o ? (
        `None: its instances used no permissions in the last ${o.minimumObservationPeriodInDays ?? 90} days`
      ) : (
        'None'
      ),
    ]);
  }
  if (used.length) rows.push(['Permissions its instances used', <span class="mono">{used.join(', ')}</span>]);
  if (deployers.length) rows.push(['Deployers who may act as it', <span class="mono">{deployers.join(', ')}</span>]);
  if (rows.length === 0) return null;
  return (
    <dl class="facts">
      {rows.map(([k, v]) => [<dt key={`${k}-t`}>{k}</dt>, <dd key={`${k}-d`}>{v}</dd>])}
    </dl>
  );
}

export function Recommendations({ items }: { items: Recommendation[] }) {
  if (items.length === 0) return <Notice>No recommendations for this worker pool or its service account.</Notice>;
  return (
    <ul class="recs">
      {items.map((r) => {
        const ops = (r.content?.operationGroups ?? []).flatMap((g) => g.operations ?? []);
        const commands = strings(r.content?.overview?.commands);
        return (
          <li key={r.name} data-subtype={r.recommenderSubtype}>
            <p>
              <strong>{r.description ?? r.recommenderSubtype}</strong>{' '}
              {r.recommenderSubtype ? <span class="chip mono">{r.recommenderSubtype}</span> : null}
              {r.priority ? <span class="chip">{r.priority}</span> : null}
              {r.stateInfo?.state ? <span class="chip">{r.stateInfo.state}</span> : null}
            </p>
            {r.content?.overview ? <Overview overview={r.content.overview} /> : null}
            {commands.length ? (
              <div class="fix">
                <p>Apply it with these commands:</p>
                {commands.map((c) => (
                  <CopyCommand key={c} command={c} />
                ))}
              </div>
            ) : null}
            {ops.length ? (
              <details>
                <summary>Operations ({ops.length})</summary>
                {ops.map((op, i) => (
                  <pre key={i} class="mono small">
                    {JSON.stringify(op, null, 2)}
                  </pre>
                ))}
              </details>
            ) : null}
          </li>
        );
      })}
    </ul>
  );
}
