// Routing on the URL fragment (`#/run/workerpools?project=p`): the server serves one page,
// and a fragment never reaches it (nor a Referer), which keeps the sign-in code private too.

import { useEffect, useState } from 'preact/hooks';

export interface Route {
  /** Path segments, decoded: `#/run/workerpools/us-central1/wp` → ['run', 'workerpools', 'us-central1', 'wp'] */
  parts: string[];
  query: URLSearchParams;
}

export function parse(hash: string): Route {
  const h = hash.replace(/^#\/?/, '');
  const [path, q = ''] = h.split('?', 2);
  return {
    parts: path.split('/').filter(Boolean).map(decodeURIComponent),
    query: new URLSearchParams(q),
  };
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parse(location.hash));
  useEffect(() => {
    const on = () => setRoute(parse(location.hash));
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

/** `#/a/b?x=1` from segments and query values (empty values are left out). */
export function href(parts: string[], query: Record<string, string | undefined | null> = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v) q.set(k, v);
  const qs = q.toString();
  return `#/${parts.map(encodeURIComponent).join('/')}${qs ? `?${qs}` : ''}`;
}

export function navigate(to: string) {
  location.hash = to.replace(/^#/, '');
}
