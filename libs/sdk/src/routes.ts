import type { paths } from './generated/openapi.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/**
 * Every method and path of the API's OpenAPI document (./generated/openapi.ts): a path item's operation is
 * `never` (absent) for a method it lacks.
 */
export type DocumentedRoute = {
  [P in keyof paths]: {
    [M in HttpMethod]: paths[P][Lowercase<M>] extends { responses: unknown } ? { method: M; path: P } : never;
  }[HttpMethod];
}[keyof paths];

/** `GET /v1/health`: a documented route as one string. */
export type DocumentedRouteKey = {
  [P in keyof paths]: {
    [M in HttpMethod]: paths[P][Lowercase<M>] extends { responses: unknown } ? `${M} ${P}` : never;
  }[HttpMethod];
}[keyof paths];

/**
 * Every API route the SDK calls, in the OpenAPI document's notation. Typed against the generated document, so a
 * route or method the document lacks does not compile; test/sdk.e2e-spec.ts also checks this table against the
 * running API's /openapi.json in both directions, so a route added to the API without the SDK fails the tests.
 */
export const ROUTES = {
  health: { method: 'GET', path: '/v1/health' },
  listTargets: { method: 'GET', path: '/v1/targets' },
  createModel: { method: 'POST', path: '/v1/models' },
  listModels: { method: 'GET', path: '/v1/models' },
  getModel: { method: 'GET', path: '/v1/models/{modelId}' },
  uploadVersion: { method: 'POST', path: '/v1/models/{modelId}/versions' },
  listVersions: { method: 'GET', path: '/v1/models/{modelId}/versions' },
  getVersion: { method: 'GET', path: '/v1/versions/{versionId}' },
  createUpload: { method: 'POST', path: '/v1/models/{modelId}/uploads' },
  getUpload: { method: 'GET', path: '/v1/uploads/{uploadId}' },
  requestPartUrls: { method: 'POST', path: '/v1/uploads/{uploadId}/parts' },
  completeUpload: { method: 'POST', path: '/v1/uploads/{uploadId}/complete' },
  abortUpload: { method: 'DELETE', path: '/v1/uploads/{uploadId}' },
  createCompilation: { method: 'POST', path: '/v1/versions/{versionId}/compilations' },
  listCompilations: { method: 'GET', path: '/v1/compilations' },
  getCompilation: { method: 'GET', path: '/v1/compilations/{compilationId}' },
  getBuildLog: { method: 'GET', path: '/v1/compilations/{compilationId}/builds/{targetId}/log' },
  cancelCompilation: { method: 'POST', path: '/v1/compilations/{compilationId}/cancel' },
  createEventsToken: { method: 'POST', path: '/v1/compilations/{compilationId}/events-token' },
  streamCompilationEvents: { method: 'GET', path: '/v1/compilations/{compilationId}/events' },
  listArtifacts: { method: 'GET', path: '/v1/versions/{versionId}/artifacts' },
  getArtifact: { method: 'GET', path: '/v1/artifacts/{artifactId}' },
  getArtifactDownload: { method: 'GET', path: '/v1/artifacts/{artifactId}/download' },
  listChannels: { method: 'GET', path: '/v1/models/{modelId}/channels' },
  moveChannel: { method: 'PUT', path: '/v1/models/{modelId}/channels/{name}' },
  getChannelHistory: { method: 'GET', path: '/v1/models/{modelId}/channels/{name}/history' },
  resolve: { method: 'POST', path: '/v1/resolve' },
  listSigningKeys: { method: 'GET', path: '/v1/signing-keys' },
  listKeys: { method: 'GET', path: '/v1/keys' },
  createKey: { method: 'POST', path: '/v1/keys' },
  revokeKey: { method: 'DELETE', path: '/v1/keys/{keyId}' },
  rotateKey: { method: 'POST', path: '/v1/keys/{keyId}/rotate' },
  updateKey: { method: 'PATCH', path: '/v1/keys/{keyId}' },
  sendTelemetry: { method: 'POST', path: '/v1/telemetry' },
  startRollout: { method: 'POST', path: '/v1/models/{modelId}/channels/{name}/rollouts' },
  listRollouts: { method: 'GET', path: '/v1/models/{modelId}/channels/{name}/rollouts' },
  getRollout: { method: 'GET', path: '/v1/rollouts/{rolloutId}' },
  pauseRollout: { method: 'POST', path: '/v1/rollouts/{rolloutId}/pause' },
  resumeRollout: { method: 'POST', path: '/v1/rollouts/{rolloutId}/resume' },
  rollbackRollout: { method: 'POST', path: '/v1/rollouts/{rolloutId}/rollback' },
  getFleet: { method: 'GET', path: '/v1/models/{modelId}/channels/{name}/fleet' },
  deleteModel: { method: 'DELETE', path: '/v1/models/{modelId}' },
  deleteVersion: { method: 'DELETE', path: '/v1/versions/{versionId}' },
  deleteArtifact: { method: 'DELETE', path: '/v1/artifacts/{artifactId}' },
  listAuditEvents: { method: 'GET', path: '/v1/audit-events' },
  getRetentionPolicy: { method: 'GET', path: '/v1/retention-policy' },
  setRetentionPolicy: { method: 'PUT', path: '/v1/retention-policy' },
  deleteRetentionPolicy: { method: 'DELETE', path: '/v1/retention-policy' },
  runRetention: { method: 'POST', path: '/v1/retention-policy/runs' },
  createWebhook: { method: 'POST', path: '/v1/webhooks' },
  listWebhooks: { method: 'GET', path: '/v1/webhooks' },
  deleteWebhook: { method: 'DELETE', path: '/v1/webhooks/{webhookId}' },
  listWebhookDeliveries: { method: 'GET', path: '/v1/webhooks/{webhookId}/deliveries' },
  redeliverWebhook: { method: 'POST', path: '/v1/webhooks/{webhookId}/deliveries/{deliveryId}/redeliver' },
} as const satisfies Record<string, DocumentedRoute>;

export type RouteName = keyof typeof ROUTES;

/** Operator routes (admin token, not a tenant key): deliberately not part of the SDK. */
export const OPERATOR_ROUTES: readonly DocumentedRouteKey[] = [
  'POST /v1/admin/tenants',
  'GET /v1/admin/tenants/{tenantId}/keys',
  'POST /v1/admin/tenants/{tenantId}/keys',
  'DELETE /v1/admin/tenants/{tenantId}/keys/{keyId}',
  'POST /v1/admin/tenants/{tenantId}/keys/{keyId}/rotate',
  'GET /v1/admin/tenants/{tenantId}/quotas',
  'PATCH /v1/admin/tenants/{tenantId}/quotas',
];

/** `/v1/models/{modelId}` + `{ modelId: 'x' }` → `/v1/models/x` (each value URI-encoded). */
export function routePath(name: RouteName, params: Record<string, string> = {}): string {
  return ROUTES[name].path.replace(/\{(\w+)\}/g, (_m, key: string) => {
    const value = params[key];
    if (value === undefined) throw new TypeError(`route ${name} needs ${key}`);
    return encodeURIComponent(value);
  });
}
