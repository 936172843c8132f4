// Who the console acts as. A session is an access token of one principal (plus a refresh
// token), obtained by trading the one-time code of `runpool console` at
// `/runpool/v1/console/sessions`, or, for the holder of the server's admin credential, minted
// for another simulated user at `/runpool/v1/tokens` (as `runpool auth login` does). It is
// kept in sessionStorage: one browser tab, gone when the tab closes.

import { useEffect, useState } from 'preact/hooks';

export interface Session {
  accessToken: string;
  refreshToken?: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
  /** `user:alice@example.com` or `serviceAccount:…` */
  principal: string;
  /** Present when the session may switch to another simulated user. */
  adminCredential?: string;
}

const KEY = 'runpool.console.session';
let current: Session | null = load();
const listeners = new Set<() => void>();

function load(): Session | null {
  try {
    const text = sessionStorage.getItem(KEY);
    return text ? (JSON.parse(text) as Session) : null;
  } catch {
    return null;
  }
}

export function session(): Session | null {
  return current;
}

export function setSession(s: Session | null) {
  current = s;
  if (s) sessionStorage.setItem(KEY, JSON.stringify(s));
  else sessionStorage.removeItem(KEY);
  listeners.forEach((l) => l());
}

/** Re-render when the session changes (sign-in, switch user, sign-out). */
export function useSession(): Session | null {
  const [, bump] = useState(0);
  useEffect(() => {
    const l = () => bump((n) => n + 1);
    listeners.add(l);
    return () => {
      listeners.delete(l);
    };
  }, []);
  return current;
}

/** The email of a member (`user:a@b` → `a@b`). */
export function emailOf(member: string): string {
  const i = member.indexOf(':');
  return i >= 0 ? member.slice(i + 1) : member;
}

interface TokenAnswer {
  access_token: string;
  expires_in: number;
  refresh_token?: string;
  principal?: string;
  admin_credential?: string;
  error?: string;
  error_description?: string;
}

async function postJson(path: string, body: unknown, bearer?: string): Promise<TokenAnswer> {
  let res: Response;
  try {
    res = await fetch(path, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        ...(bearer ? { Authorization: `Bearer ${bearer}` } : {}),
      },
      body: JSON.stringify(body),
    });
  } catch (e) {
    throw new Error(`Cannot reach the Runpool server: ${(e as Error).message}`);
  }
  const v = (await res.json().catch(() => ({}))) as TokenAnswer & {
    error?: unknown;
  };
  if (!res.ok) {
    const err = v.error as unknown;
    if (err && typeof err === 'object' && 'message' in err) throw new Error(String((err as { message: string }).message));
    throw new Error(v.error_description || (typeof err === 'string' ? err : `HTTP ${res.status}`));
  }
  return v;
}

/**
 * If the page was opened with `#code=…` (the link `runpool console` printed), trade the code
 * for a session, once, and take the code out of the address bar and history.
 */
export async function signInFromLocation(): Promise<void> {
  const m = /^#code=([A-Za-z0-9_-]+)/.exec(location.hash);
  if (!m) return;
  history.replaceState(null, '', `${location.pathname}#/`);
  const v = await postJson('/runpool/v1/console/sessions', { code: m[1] });
  setSession({
    accessToken: v.access_token,
    refreshToken: v.refresh_token,
    expiresAt: Date.now() + v.expires_in * 1000,
    principal: v.principal ?? '',
    adminCredential: v.admin_credential,
  });
}

/** Admin only: a session of another simulated user (`/runpool/v1/tokens`). */
export async function switchUser(email: string): Promise<void> {
  const s = current;
  if (!s?.adminCredential) throw new Error('Switching users needs the server’s admin credential.');
  const v = await postJson('/runpool/v1/tokens', { principal: email.trim() }, s.adminCredential);
  setSession({
    accessToken: v.access_token,
    refreshToken: v.refresh_token,
    expiresAt: Date.now() + v.expires_in * 1000,
    principal: `user:${email.trim().toLowerCase()}`,
    adminCredential: s.adminCredential,
  });
}

/** A valid access token, refreshed through `/token` (refresh grant) when it is about to expire. */
export async function accessToken(): Promise<string | null> {
  const s = current;
  if (!s) return null;
  if (s.expiresAt - Date.now() > 60_000 || !s.refreshToken) return s.accessToken;
  const res = await fetch('/token', {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: s.refreshToken }),
  }).catch(() => null);
  if (!res?.ok) return s.accessToken;
  const v = (await res.json()) as TokenAnswer;
  setSession({ ...s, accessToken: v.access_token, expiresAt: Date.now() + v.expires_in * 1000 });
  return v.access_token;
}
