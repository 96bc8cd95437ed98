import { infiniteQueryOptions, QueryClient, queryOptions, skipToken, useQuery } from '@tanstack/react-query';
import { ApiError, type ApiClient } from './client.js';
import type {
  ApiKeySummary,
  Artifact,
  ArtifactDownload,
  AuditEventPage,
  BuildLog,
  Channel,
  ChannelMove,
  Compilation,
  FleetView,
  Model,
  ModelVersion,
  RetentionPolicy,
  Target,
  Webhook,
  WebhookDelivery,
} from './types.js';

declare module '@tanstack/react-query' {
  // Every call goes through ApiClient, which throws ApiError (or the abort error TanStack Query itself cancelled
  // with): the pages show its code and message as the API wrote them.
  interface Register {
    defaultError: ApiError;
  }
}

/**
 * Every query key of the dashboard. Keys nest the way the API's resources do, so that invalidating a prefix
 * refreshes everything below it: `keys.model(id)` covers that model's versions, channels, channel histories and
 * fleets; `keys.compilations` covers every list and every single compilation.
 */
export const queryKeys = {
  models: ['models'] as const,
  modelList: () => [...queryKeys.models, 'list'] as const,
  model: (modelId: string) => [...queryKeys.models, 'detail', modelId] as const,
  modelVersions: (modelId: string) => [...queryKeys.model(modelId), 'versions'] as const,
  channels: (modelId: string) => [...queryKeys.model(modelId), 'channels'] as const,
  channelHistory: (modelId: string, channel: string) => [...queryKeys.channels(modelId), channel, 'history'] as const,
  fleet: (modelId: string, channel: string) => [...queryKeys.channels(modelId), channel, 'fleet'] as const,
  versions: ['versions'] as const,
  version: (versionId: string) => [...queryKeys.versions, versionId] as const,
  artifacts: (versionId: string) => [...queryKeys.version(versionId), 'artifacts'] as const,
  artifactDownload: (artifactId: string) => ['artifacts', artifactId, 'download'] as const,
  compilations: ['compilations'] as const,
  compilationLists: () => [...queryKeys.compilations, 'list'] as const,
  compilationList: (filter: { versionId?: string }) => [...queryKeys.compilationLists(), filter] as const,
  compilation: (compilationId: string) => [...queryKeys.compilations, 'detail', compilationId] as const,
  buildLog: (compilationId: string, targetId: string) =>
    [...queryKeys.compilation(compilationId), 'builds', targetId, 'log'] as const,
  targets: ['targets'] as const,
  apiKeys: ['keys'] as const,
  auditEvents: (filter: AuditFilter) => ['audit-events', filter] as const,
  retentionPolicy: ['retention-policy'] as const,
  webhooks: ['webhooks'] as const,
  webhookDeliveries: (webhookId: string) => [...queryKeys.webhooks, webhookId, 'deliveries'] as const,
};

export interface AuditFilter {
  action: string;
  targetId: string;
}

/** Retry what may pass next time (the network, a 5xx); an answer about the request itself (4xx) will not change. */
export function shouldRetry(failureCount: number, error: ApiError): boolean {
  if (!(error instanceof ApiError)) return false;
  const transient = error.code === 'NETWORK' || error.status >= 500;
  return transient && failureCount < 2;
}

/**
 * The dashboard's cache. Data is stale at once (every page shows what it has and asks again when it mounts, as the
 * hand-written hook did), but nothing refetches on window focus: a page is refreshed by its own mutations, by the
 * live compilation stream or by its polling, not by the user switching windows.
 */
export function createQueryClient(): QueryClient {
  return new QueryClient({
    defaultOptions: {
      queries: { retry: shouldRetry, refetchOnWindowFocus: false },
      mutations: { retry: false },
    },
  });
}

export const modelListQuery = (api: ApiClient) =>
  queryOptions({
    queryKey: queryKeys.modelList(),
    queryFn: ({ signal }) => api.get<Model[]>('/v1/models', { signal }),
  });

export const modelQuery = (api: ApiClient, modelId: string) =>
  queryOptions({
    queryKey: queryKeys.model(modelId),
    queryFn: ({ signal }) => api.get<Model>(`/v1/models/${modelId}`, { signal }),
  });

/** A model's versions; no model chosen (the playground before a pick) is no query at all. */
export const modelVersionsQuery = (api: ApiClient, modelId: string) =>
  queryOptions({
    queryKey: queryKeys.modelVersions(modelId),
    queryFn: modelId
      ? ({ signal }) => api.get<ModelVersion[]>(`/v1/models/${modelId}/versions`, { signal })
      : skipToken,
  });

export const channelsQuery = (api: ApiClient, modelId: string) =>
  queryOptions({
    queryKey: queryKeys.channels(modelId),
    queryFn: modelId ? ({ signal }) => api.get<Channel[]>(`/v1/models/${modelId}/channels`, { signal }) : skipToken,
  });

export const channelHistoryQuery = (api: ApiClient, modelId: string, channel: string | null) =>
  queryOptions({
    queryKey: queryKeys.channelHistory(modelId, channel ?? ''),
    queryFn: channel
      ? ({ signal }) =>
          api.get<ChannelMove[]>(`/v1/models/${modelId}/channels/${encodeURIComponent(channel)}/history`, { signal })
      : skipToken,
  });

export const fleetQuery = (api: ApiClient, modelId: string, channel: string) =>
  queryOptions({
    queryKey: queryKeys.fleet(modelId, channel),
    queryFn: ({ signal }) =>
      api.get<FleetView>(`/v1/models/${modelId}/channels/${encodeURIComponent(channel)}/fleet`, { signal }),
  });

export const versionQuery = (api: ApiClient, versionId: string) =>
  queryOptions({
    queryKey: queryKeys.version(versionId),
    queryFn: versionId ? ({ signal }) => api.get<ModelVersion>(`/v1/versions/${versionId}`, { signal }) : skipToken,
  });

export const artifactsQuery = (api: ApiClient, versionId: string) =>
  queryOptions({
    queryKey: queryKeys.artifacts(versionId),
    queryFn: ({ signal }) => api.get<Artifact[]>(`/v1/versions/${versionId}/artifacts`, { signal }),
  });

export const artifactDownloadQuery = (api: ApiClient, artifactId: string) =>
  queryOptions({
    queryKey: queryKeys.artifactDownload(artifactId),
    queryFn: ({ signal }) => api.get<ArtifactDownload>(`/v1/artifacts/${artifactId}/download`, { signal }),
  });

export const compilationListQuery = (api: ApiClient, filter: { versionId?: string } = {}) =>
  queryOptions({
    queryKey: queryKeys.compilationList(filter),
    queryFn: ({ signal }) =>
      api.get<Compilation[]>(filter.versionId ? `/v1/compilations?versionId=${filter.versionId}` : '/v1/compilations', {
        signal,
      }),
  });

export const compilationQuery = (api: ApiClient, compilationId: string) =>
  queryOptions({
    queryKey: queryKeys.compilation(compilationId),
    queryFn: ({ signal }) => api.get<Compilation>(`/v1/compilations/${compilationId}`, { signal }),
  });

export const buildLogQuery = (api: ApiClient, compilationId: string, targetId: string) =>
  queryOptions({
    queryKey: queryKeys.buildLog(compilationId, targetId),
    queryFn: ({ signal }) =>
      api.get<BuildLog>(`/v1/compilations/${compilationId}/builds/${encodeURIComponent(targetId)}/log`, { signal }),
  });

export const targetsQuery = (api: ApiClient) =>
  queryOptions({
    queryKey: queryKeys.targets,
    queryFn: ({ signal }) => api.get<Target[]>('/v1/targets', { signal }),
  });

export const apiKeysQuery = (api: ApiClient) =>
  queryOptions({
    queryKey: queryKeys.apiKeys,
    queryFn: ({ signal }) => api.get<ApiKeySummary[]>('/v1/keys', { signal }),
  });

const AUDIT_PAGE_SIZE = 50;

function auditEventsPath(filter: AuditFilter, cursor?: string): string {
  const q = new URLSearchParams({ limit: String(AUDIT_PAGE_SIZE) });
  if (filter.action) q.set('action', filter.action);
  if (filter.targetId) q.set('targetId', filter.targetId);
  if (cursor) q.set('cursor', cursor);
  return `/v1/audit-events?${q.toString()}`;
}

/** The audit log, newest first, a page of events at a time (each page names the cursor of the next). */
export const auditEventsQuery = (api: ApiClient, filter: AuditFilter) =>
  infiniteQueryOptions({
    queryKey: queryKeys.auditEvents(filter),
    queryFn: ({ signal, pageParam }) => api.get<AuditEventPage>(auditEventsPath(filter, pageParam), { signal }),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (page) => page.nextCursor ?? undefined,
  });

/** The policy, or null when the tenant has none (the API answers 404 then). */
export const retentionPolicyQuery = (api: ApiClient) =>
  queryOptions({
    queryKey: queryKeys.retentionPolicy,
    queryFn: ({ signal }) =>
      api.get<RetentionPolicy>('/v1/retention-policy', { signal }).catch((err: unknown) => {
        if (err instanceof ApiError && err.status === 404) return null;
        throw err;
      }),
  });

export const webhooksQuery = (api: ApiClient) =>
  queryOptions({
    queryKey: queryKeys.webhooks,
    queryFn: ({ signal }) => api.get<Webhook[]>('/v1/webhooks', { signal }),
  });

export const webhookDeliveriesQuery = (api: ApiClient, webhookId: string) =>
  queryOptions({
    queryKey: queryKeys.webhookDeliveries(webhookId),
    queryFn: ({ signal }) => api.get<WebhookDelivery[]>(`/v1/webhooks/${webhookId}/deliveries`, { signal }),
  });

export interface VersionWithModel {
  version: ModelVersion | undefined;
  model: Model | undefined;
  error: ApiError | null;
  /** Asks again for whichever of the two failed. */
  refetch: () => void;
}

/** A version and its model (the titles and crumbs of the version, artifacts and compilation pages). */
export function useVersionWithModel(api: ApiClient, versionId: string | undefined): VersionWithModel {
  const version = useQuery(versionQuery(api, versionId ?? ''));
  const modelId = version.data?.modelId;
  const model = useQuery({ ...modelQuery(api, modelId ?? ''), enabled: modelId !== undefined });
  return {
    version: version.data,
    model: model.data,
    error: version.error ?? model.error,
    refetch: () => void (version.error ? version.refetch() : model.refetch()),
  };
}
