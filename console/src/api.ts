// Every call the console makes goes through `call`: one of Google's public REST APIs on this
// server, with the signed-in principal's bearer token, exactly as a client library or the CLI
// would send it. Nothing here decides anything: a refusal is the API's, shown as it came.

import { accessToken } from './session';

export interface Violation {
  type: string;
  subject: string;
  description: string;
}

/** A failed call, carrying Google's error body (`{"error": {code, message, status, details}}`). */
export class ApiError extends Error {
  constructor(
    readonly httpStatus: number,
    message: string,
    readonly status: string,
    readonly details: Array<Record<string, unknown>> = [],
    readonly request = '',
  ) {
    super(message);
  }

  /** `PreconditionFailure` violations (the deploy preflight's failed rules). */
  get violations(): Violation[] {
    return this.details
      .filter((d) => String(d['@type']).endsWith('google.rpc.PreconditionFailure'))
      .flatMap((d) => (d.violations as Violation[]) ?? []);
  }

  /** `ErrorInfo.reason`, e.g. `IAM_PERMISSION_DENIED`. */
  get reason(): string | undefined {
    const info = this.details.find((d) => String(d['@type']).endsWith('google.rpc.ErrorInfo'));
    return info ? String(info.reason) : undefined;
  }
}

export function asApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new ApiError(0, msg, 'UNKNOWN');
}

/** Call a REST method; resolves to the decoded JSON answer or rejects with an [`ApiError`]. */
export async function call<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  const token = await accessToken();
  if (!token) {
    throw new ApiError(401, 'You are signed out. Run `runpool console` in a terminal to sign in.', 'UNAUTHENTICATED');
  }
  const headers: Record<string, string> = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, `Cannot reach the Runpool server (${(e as Error).message}). Is \`runpool serve\` running?`, 'UNAVAILABLE', [], `${method} ${path}`);
  }
  const text = await res.text();
  let json: any = {};
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const err = json?.error;
    if (err && typeof err === 'object') {
      throw new ApiError(res.status, String(err.message ?? text), String(err.status ?? res.status), err.details ?? [], `${method} ${path}`);
    }
    throw new ApiError(res.status, json?.error_description ?? (text || res.statusText), String(err ?? res.status), [], `${method} ${path}`);
  }
  return json as T;
}

export const get = <T = any>(path: string) => call<T>('GET', path);
export const post = <T = any>(path: string, body: unknown = {}) => call<T>('POST', path, body);

/** Every item of a paged list (`nextPageToken`). */
export async function listAll<T>(path: string, field: string, max = 5000): Promise<T[]> {
  const out: T[] = [];
  let token = '';
  do {
    const sep = path.includes('?') ? '&' : '?';
    const page = await get<any>(`${path}${token ? `${sep}pageToken=${encodeURIComponent(token)}` : ''}`);
    out.push(...((page[field] as T[]) ?? []));
    token = page.nextPageToken ?? '';
  } while (token && out.length < max);
  return out;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Operation {
  name: string;
  done?: boolean;
  error?: { code: number; message: string; details?: Array<Record<string, unknown>> };
  response?: any;
  metadata?: any;
}

/** HTTP status of a `google.rpc.Code`. */
const HTTP: Record<number, [number, string]> = {
  3: [400, 'INVALID_ARGUMENT'],
  5: [404, 'NOT_FOUND'],
  6: [409, 'ALREADY_EXISTS'],
  7: [403, 'PERMISSION_DENIED'],
  9: [400, 'FAILED_PRECONDITION'],
  10: [409, 'ABORTED'],
  13: [500, 'INTERNAL'],
  16: [401, 'UNAUTHENTICATED'],
};

/** Poll a long-running operation (`GET /v2/{name}`) until it is done; its response, or its error. */
export async function waitOperation(op: Operation, onPoll?: (op: Operation) => void): Promise<any> {
  let cur = op;
  for (let i = 0; !cur.done; i++) {
    await sleep(Math.min(250 * (i + 1), 2000));
    cur = await get<Operation>(`/v2/${cur.name}`);
    onPoll?.(cur);
  }
  if (cur.error) {
    const [http, status] = HTTP[cur.error.code] ?? [500, 'UNKNOWN'];
    throw new ApiError(http, cur.error.message, status, cur.error.details ?? []);
  }
  return cur.response;
}

export const enc = encodeURIComponent;
