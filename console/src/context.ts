// What every page shares: the projects the signed-in principal can see (Resource Manager
// `projects.search`) and the one selected (`?project=` in the URL).

import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { ApiError } from './api';

export interface Project {
  name: string;
  projectId: string;
  displayName?: string;
  parent?: string;
  state?: string;
}

export interface Ctx {
  projects: Project[];
  project?: Project;
  projectsError?: ApiError;
  /** The signed-in principal, e.g. `user:alice@example.com`. */
  principal: string;
}

export const AppContext = createContext<Ctx>({ projects: [], principal: '' });

export const useApp = () => useContext(AppContext);

/** `300000000001` for `projects/300000000001`. */
export const projectNumber = (p?: Project) => p?.name.split('/')[1] ?? '';

/** The project that owns a service account, from its email (`a@PROJECT.iam.gserviceaccount.com`). */
export function accountProjectId(email: string): string {
  const m = /@([^.]+)\.iam\.gserviceaccount\.com$/.exec(email);
  return m ? m[1] : '';
}

/** `user:` or `serviceAccount:` for a bare email, as IAM names members. */
export function memberOf(principal: string): string {
  const p = principal.trim();
  if (!p || p.includes(':') || p === 'allUsers' || p === 'allAuthenticatedUsers') return p;
  return p.endsWith('.gserviceaccount.com') ? `serviceAccount:${p}` : `user:${p}`;
}

/** Cloud Run's service agent of a project: it mints the identity's tokens for the pool's instances. */
export const runServiceAgent = (projectNumber: string) =>
  `service-${projectNumber}@serverless-robot-prod.iam.gserviceaccount.com`;

export const CROSS_PROJECT_CONSTRAINT = 'iam.disableCrossProjectServiceAccountUsage';

export const REGIONS = [
  'us-central1', 'us-east1', 'us-east4', 'us-east5', 'us-south1', 'us-west1', 'us-west2', 'us-west3', 'us-west4',
  'northamerica-northeast1', 'northamerica-northeast2', 'northamerica-south1', 'southamerica-east1', 'southamerica-west1',
  'europe-central2', 'europe-north1', 'europe-north2', 'europe-southwest1', 'europe-west1', 'europe-west2', 'europe-west3',
  'europe-west4', 'europe-west6', 'europe-west8', 'europe-west9', 'europe-west10', 'europe-west12',
  'me-central1', 'me-central2', 'me-west1', 'africa-south1',
  'asia-east1', 'asia-east2', 'asia-northeast1', 'asia-northeast2', 'asia-northeast3', 'asia-south1', 'asia-south2',
  'asia-southeast1', 'asia-southeast2', 'asia-southeast3', 'australia-southeast1', 'australia-southeast2',
];
