// The predefined roles (IAM `roles.list`) and a role picker with search, grouped the way
// Google's console groups them ("Service Accounts > Service Account User").

import { useEffect, useId, useMemo, useRef, useState } from 'preact/hooks';
import { listAll } from './api';

export interface Role {
  name: string;
  title?: string;
  description?: string;
  stage?: string;
}

let cache: Promise<Role[]> | null = null;

export function loadRoles(): Promise<Role[]> {
  cache ??= listAll<Role>('/v1/roles?pageSize=1000', 'roles').catch((e) => {
    cache = null;
    throw e;
  });
  return cache;
}

const GROUPS: Array<[RegExp, string]> = [
  [/^roles\/(owner|editor|viewer|browser)$/, 'Basic'],
  [/^roles\/iam\.serviceAccount/, 'Service Accounts'],
  [/^roles\/iam\.workloadIdentity/, 'Service Accounts'],
  [/^roles\/iam\./, 'IAM'],
  [/^roles\/run\./, 'Cloud Run'],
  [/^roles\/resourcemanager\./, 'Resource Manager'],
  [/^roles\/orgpolicy\./, 'Organization Policy'],
  [/^roles\/logging\./, 'Logging'],
  [/^roles\/storage\./, 'Cloud Storage'],
  [/^roles\/pubsub\./, 'Pub/Sub'],
  [/^roles\/compute\./, 'Compute Engine'],
  [/^roles\/cloudsql\./, 'Cloud SQL'],
  [/^roles\/secretmanager\./, 'Secret Manager'],
  [/^roles\/recommender\./, 'Recommender'],
];

/** The product group a role is listed under. */
export function roleGroup(name: string): string {
  for (const [re, g] of GROUPS) if (re.test(name)) return g;
  const m = /^roles\/([a-z0-9]+)\./i.exec(name);
  return m ? m[1].charAt(0).toUpperCase() + m[1].slice(1) : 'Custom';
}

/** `Service Account User` for `roles/iam.serviceAccountUser` (the name itself if unknown). */
export function useRoleTitles(): (name: string) => string {
  const [roles, setRoles] = useState<Role[]>([]);
  useEffect(() => {
    loadRoles().then(setRoles, () => setRoles([]));
  }, []);
  const byName = useMemo(() => new Map(roles.map((r) => [r.name, r.title ?? r.name])), [roles]);
  return (name) => byName.get(name) ?? name;
}

/**
 * "Select a role": a combobox with search over title and name. Arrow keys move through the
 * matches, Enter picks one, Escape closes the list.
 */
export function RolePicker({ id, value, onChange }: { id: string; value: string; onChange: (role: string) => void }) {
  const [roles, setRoles] = useState<Role[] | null>(null);
  const [error, setError] = useState('');
  const [text, setText] = useState('');
  const [open, setOpen] = useState(false);
  const [active, setActive] = useState(0);
  const listId = useId();
  const listRef = useRef<HTMLUListElement>(null);
  useEffect(() => {
    loadRoles().then(setRoles, (e) => setError(String(e.message ?? e)));
  }, []);
  useEffect(() => {
    const r = roles?.find((x) => x.name === value);
    if (r) setText(`${roleGroup(r.name)} > ${r.title ?? r.name}`);
  }, [value, roles]);
  const matches = useMemo(() => {
    if (!roles) return [];
    const words = text.toLowerCase().split(/[\s>]+/).filter(Boolean);
    const hay = (r: Role) => `${roleGroup(r.name)} ${r.title ?? ''} ${r.name}`.toLowerCase();
    return roles.filter((r) => words.every((w) => hay(r).includes(w))).slice(0, 50);
  }, [roles, text]);
  useEffect(() => {
    listRef.current?.querySelector('[aria-selected="true"]')?.scrollIntoView({ block: 'nearest' });
  }, [active]);
  const pick = (r: Role) => {
    onChange(r.name);
    setText(`${roleGroup(r.name)} > ${r.title ?? r.name}`);
    setOpen(false);
  };
  const onKey = (e: KeyboardEvent) => {
    if (e.key === 'ArrowDown') {
      e.preventDefault();
      setOpen(true);
      setActive((a) => Math.min(a + 1, matches.length - 1));
    } else if (e.key === 'ArrowUp') {
      e.preventDefault();
      setActive((a) => Math.max(a - 1, 0));
    } else if (e.key === 'Enter' && open && matches[active]) {
      e.preventDefault();
      pick(matches[active]);
    } else if (e.key === 'Escape') {
      setOpen(false);
    }
  };
  return (
    <div class="combobox">
      <input
        id={id}
        type="text"
        role="combobox"
        autocomplete="off"
        aria-autocomplete="list"
        aria-expanded={open}
        aria-controls={listId}
        aria-activedescendant={open && matches[active] ? `${listId}-${active}` : undefined}
        placeholder={roles ? 'Type to filter, e.g. Service Account User' : 'Loading roles…'}
        value={text}
        onInput={(e) => {
          setText((e.target as HTMLInputElement).value);
          setOpen(true);
          setActive(0);
          if (value) onChange('');
        }}
        onFocus={() => setOpen(true)}
        onBlur={() => setTimeout(() => setOpen(false), 150)}
        onKeyDown={onKey}
      />
      {error ? (
        <p class="hint error-text" role="alert">
          Cannot list roles: {error}
        </p>
      ) : null}
      <ul id={listId} role="listbox" ref={listRef} aria-label="Roles" hidden={!open || matches.length === 0}>
        {matches.map((r, i) => (
          <li
            key={r.name}
            id={`${listId}-${i}`}
            role="option"
            aria-selected={i === active}
            onMouseDown={(e) => {
              e.preventDefault();
              pick(r);
            }}
            onMouseEnter={() => setActive(i)}
          >
            <span class="option-title">
              {roleGroup(r.name)} &gt; {r.title ?? r.name}
            </span>
            <span class="option-sub">{r.name}</span>
          </li>
        ))}
      </ul>
    </div>
  );
}
