// Recommender (`recommender.googleapis.com/v1`, `google.iam.policy.Recommender`): where the
// server answers it, the recommendations that concern a pool or its service account. Where it
// does not (an older server, or no permission), the pool page simply shows no tab for them.

import { useEffect, useState } from 'preact/hooks';
import { enc, get } from '../api';
import { Notice } from '../ui';

export interface Recommendation {
  name: string;
  description?: string;
  priority?: string;
  recommenderSubtype?: string;
  stateInfo?: { state?: string };
  content?: { operationGroups?: Array<{ operations?: Array<Record<string, unknown>> }> };
}

export function useRecommendations(project: string, pool: any): { available: boolean; items: Recommendation[] } {
  const [state, setState] = useState<{ available: boolean; items: Recommendation[] }>({ available: false, items: [] });
  const account = pool?.template?.serviceAccount ?? '';
  const poolName = pool?.name ?? '';
  useEffect(() => {
    if (!project || !poolName) return;
    let live = true;
    get(`/v1/projects/${enc(project)}/locations/global/recommenders/google.iam.policy.Recommender/recommendations`).then(
      (v) => {
        const all: Recommendation[] = v.recommendations ?? [];
        const id = poolName.split('/').pop() ?? '';
        const mine = all.filter((r) => {
          const text = JSON.stringify(r);
          return (account && text.includes(account)) || text.includes(poolName) || (id && text.includes(`workerPools/${id}`));
        });
        if (live) setState({ available: true, items: mine });
      },
      () => live && setState({ available: false, items: [] }),
    );
    return () => {
      live = false;
    };
  }, [project, poolName, account]);
  return state;
}

export function Recommendations({ items }: { items: Recommendation[] }) {
  if (items.length === 0) return <Notice>No recommendations for this worker pool or its service account.</Notice>;
  return (
    <ul class="recs">
      {items.map((r) => (
        <li key={r.name}>
          <p>
            <strong>{r.description ?? r.recommenderSubtype}</strong>{' '}
            {r.priority ? <span class="chip">{r.priority}</span> : null}
            {r.stateInfo?.state ? <span class="chip">{r.stateInfo.state}</span> : null}
          </p>
          {(r.content?.operationGroups ?? []).flatMap((g, i) =>
            (g.operations ?? []).map((op, j) => (
              <pre key={`${i}-${j}`} class="mono small">
                {JSON.stringify(op, null, 2)}
              </pre>
            )),
          )}
        </li>
      ))}
    </ul>
  );
}
