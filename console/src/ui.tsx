// Small shared pieces: loading state of an API read, Google's error shown in the page, tabs
// and dialogs that work from the keyboard.

import type { ComponentChildren, JSX } from 'preact';
import { useCallback, useEffect, useId, useRef, useState } from 'preact/hooks';
import { ApiError, asApiError } from './api';
import type { Project } from './context';

export interface Async<T> {
  data?: T;
  error?: ApiError;
  loading: boolean;
  reload: () => void;
}

/** Run `fn` when `deps` change; its answer, its error (as Google's), and a way to run it again. */
export function useAsync<T>(fn: () => Promise<T>, deps: unknown[]): Async<T> {
  const [state, setState] = useState<{ data?: T; error?: ApiError; loading: boolean }>({ loading: true });
  const [n, setN] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ data: s.data, loading: true }));
    fn().then(
      (data) => live && setState({ data, loading: false }),
      (e) => live && setState({ error: asApiError(e), loading: false }),
    );
    return () => {
      live = false;
    };
  }, [...deps, n]);
  const reload = useCallback(() => setN((x) => x + 1), []);
  return { ...state, reload };
}

/** Google's error, as the API answered it: status, message (and the request that failed). */
export function ErrorBanner({ error, title }: { error: unknown; title?: string }) {
  const e = asApiError(error);
  return (
    <div class="banner error" role="alert">
      <p class="banner-title">
        {title ?? 'The request failed'}
        {e.status && e.status !== 'UNKNOWN' ? (
          <span class="chip">
            {e.status}
            {e.httpStatus ? ` · ${e.httpStatus}` : ''}
          </span>
        ) : null}
      </p>
      <p class="message">{e.message}</p>
      {e.request ? <p class="muted small">Request: {e.request}</p> : null}
    </div>
  );
}

/** An API read's error (as Google's, under `title`) and, until its first answer, `loading`. */
export function ReadState({ read, title, loading }: { read: Async<unknown>; title?: string; loading?: string }) {
  return (
    <>
      {read.error ? <ErrorBanner error={read.error} title={title} /> : null}
      {read.loading && !read.data ? <Loading label={loading} /> : null}
    </>
  );
}

export function Notice({ kind = 'info', children }: { kind?: 'info' | 'success' | 'warning'; children: ComponentChildren }) {
  return (
    <div class={`banner ${kind}`} role="status">
      {children}
    </div>
  );
}

export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <p class="loading" role="status">
      <span class="spinner" aria-hidden="true" />
      {label}
    </p>
  );
}

export type CheckState = 'ok' | 'fail' | 'unknown' | 'na' | 'running' | 'pending';

const ICON: Record<CheckState, [string, string]> = {
  ok: ['✓', 'Holds'],
  fail: ['✗', 'Fails'],
  unknown: ['?', 'Unknown'],
  na: ['–', 'Not needed'],
  running: ['…', 'In progress'],
  pending: ['○', 'Waiting'],
};

/** A state mark that says what it means in words too (not by colour alone). */
export function StateMark({ state, label }: { state: CheckState; label?: string }) {
  const [icon, text] = ICON[state];
  return (
    <span class={`mark ${state}`}>
      <span aria-hidden="true">{icon}</span>
      <span class="sr-only">{label ?? text}</span>
    </span>
  );
}

export interface TabSpec {
  id: string;
  label: string;
}

/** WAI-ARIA tabs: arrow keys, Home and End move between them. */
export function Tabs({
  tabs,
  active,
  onSelect,
  label,
  children,
}: {
  tabs: TabSpec[];
  active: string;
  onSelect: (id: string) => void;
  label: string;
  children: ComponentChildren;
}) {
  const base = useId();
  const refs = useRef<Record<string, HTMLButtonElement | null>>({});
  const onKey = (e: KeyboardEvent) => {
    const i = tabs.findIndex((t) => t.id === active);
    let j = -1;
    if (e.key === 'ArrowRight') j = (i + 1) % tabs.length;
    else if (e.key === 'ArrowLeft') j = (i - 1 + tabs.length) % tabs.length;
    else if (e.key === 'Home') j = 0;
    else if (e.key === 'End') j = tabs.length - 1;
    if (j < 0) return;
    e.preventDefault();
    onSelect(tabs[j].id);
    refs.current[tabs[j].id]?.focus();
  };
  return (
    <div class="tabs">
      <div role="tablist" aria-label={label} onKeyDown={onKey}>
        {tabs.map((t) => (
          <button
            key={t.id}
            ref={(el) => {
              refs.current[t.id] = el;
            }}
            role="tab"
            type="button"
            id={`${base}-tab-${t.id}`}
            aria-selected={t.id === active}
            aria-controls={`${base}-panel`}
            tabIndex={t.id === active ? 0 : -1}
            onClick={() => onSelect(t.id)}
          >
            {t.label}
          </button>
        ))}
      </div>
      <div role="tabpanel" id={`${base}-panel`} aria-labelledby={`${base}-tab-${active}`} tabIndex={0} class="tabpanel">
        {children}
      </div>
    </div>
  );
}

/** A modal dialog (`<dialog>`): focus stays inside, Escape closes it. */
export function Dialog({
  open,
  title,
  onClose,
  children,
}: {
  open: boolean;
  title: string;
  onClose: () => void;
  children: ComponentChildren;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const id = useId();
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  return (
    <dialog ref={ref} aria-labelledby={id} onClose={onClose} onCancel={onClose}>
      <h2 id={id}>{title}</h2>
      {open ? children : null}
    </dialog>
  );
}

/** A command to copy, e.g. the `runpool` command that fixes a failed rule. */
export function CopyCommand({ command }: { command: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <div class="command">
      <code>{command}</code>
      <button
        type="button"
        class="small-button"
        aria-label={`Copy command: ${command}`}
        onClick={() => {
          navigator.clipboard?.writeText(command).then(
            () => setCopied(true),
            () => setCopied(false),
          );
        }}
      >
        {copied ? 'Copied' : 'Copy'}
      </button>
    </div>
  );
}

/** A labelled form field: the label names the control for assistive technology and tests. */
export function Field({
  label,
  hint,
  children,
  id,
}: {
  label: string;
  hint?: string;
  id: string;
  children: JSX.Element;
}) {
  return (
    <div class="field">
      <label for={id}>{label}</label>
      {children}
      {hint ? (
        <p class="hint" id={`${id}-hint`}>
          {hint}
        </p>
      ) : null}
    </div>
  );
}

export function formatTime(t?: string): string {
  if (!t) return '';
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? t : d.toLocaleString();
}

/** A list page's heading, with its primary action: a link to `to`. */
export function PageHead({ id, title, action, to }: { id: string; title: string; action: string; to: string }) {
  return (
    <div class="page-head">
      <h1 id={id} tabIndex={-1}>
        {title}
      </h1>
      <a class="button primary" href={to}>
        {action}
      </a>
    </div>
  );
}

/** A table (`label` names it) with a header row of `columns`; `children` are its rows. */
export function Grid({ label, columns, children }: { label: string; columns: ComponentChildren[]; children: ComponentChildren }) {
  return (
    <table class="grid" aria-label={label}>
      <thead>
        <tr>
          {columns.map((c, i) => (
            <th key={i} scope="col">
              {c}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>{children}</tbody>
    </table>
  );
}

/**
 * A form's or a dialog's buttons: its action (`label`; a submit button, or with `onClick` a
 * plain one) in `kind`'s style, then Cancel.
 */
export function Actions({
  label,
  onCancel,
  onClick,
  busy,
  kind = 'primary',
}: {
  label: string;
  onCancel: () => void;
  onClick?: () => void;
  busy?: boolean;
  kind?: 'primary' | 'danger';
}) {
  return (
    <div class="actions">
      <button type={onClick ? 'button' : 'submit'} class={`button ${kind}`} disabled={busy} onClick={onClick}>
        {label}
      </button>
      <button type="button" class="button" onClick={onCancel}>
        Cancel
      </button>
    </div>
  );
}

/** A `<select>` of the projects' IDs; `empty`, if given, is its one option when there is none. */
export function ProjectSelect({
  projects,
  value,
  onChange,
  id,
  label,
  empty,
}: {
  projects: Project[];
  value: string;
  onChange: (projectId: string) => void;
  id?: string;
  label?: string;
  empty?: string;
}) {
  return (
    <select id={id} value={value} onChange={(e) => onChange((e.target as HTMLSelectElement).value)} aria-label={label}>
      {empty !== undefined && projects.length === 0 ? <option value="">{empty}</option> : null}
      {projects.map((p) => (
        <option key={p.projectId} value={p.projectId}>
          {p.projectId}
        </option>
      ))}
    </select>
  );
}
