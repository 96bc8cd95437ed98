// The API's request and response shapes, as the OpenAPI document at /openapi.json describes them
// (apps/api/src/**/*.dto.ts). test/sdk.e2e-spec.ts checks the routes of both against the real app. Types only
// (`@kiln/sdk/types`): the dashboard reads the API through them too.
import type { ArtifactManifest, BuildStatus, CompilationStatus, ErrorCode, Pt2Summary } from '@kiln/contracts';
import type { DeviceFingerprint, RankedArtifact, SpeedupBasis } from '@kiln/matching';

export type {
  ArtifactManifest,
  BuildStatus,
  CompilationStatus,
  DeviceFingerprint,
  ErrorCode,
  Pt2Summary,
  RankedArtifact,
  SpeedupBasis,
};

/** Every error body: `{ error: { code, message, details? } }`. */
export interface ErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

export interface Health {
  status: 'ok' | 'degraded';
  postgres: string;
  s3: string;
  temporal: string;
}

export interface Target {
  id: string;
  title: string;
  description: string;
  requires: {
    os: string;
    arch: string;
    x86Level: number | null;
    computeCapability: string | null;
    [key: string]: unknown;
  };
  recipeVersion: number;
  workerOnline: boolean;
}

export interface Model {
  id: string;
  name: string;
  description: string;
  createdAt: string;
  latestVersion: number | null;
}

export interface CreateModelRequest {
  name: string;
  description?: string;
}

export interface ModelVersion {
  id: string;
  modelId: string;
  number: number;
  sizeBytes: number;
  fileSha256: string;
  /** sha256 and size of the archive Kiln stores: the upload with its sample-input pickles emptied. */
  storedSha256: string;
  storedSizeBytes: number;
  contentHash: string;
  originalFilename: string;
  createdAt: string;
  summary: Pt2Summary;
}

export interface BuildArtifactSummary {
  id: string;
  sizeBytes: number;
  speedup: number;
  maxAbsError: number;
}

export interface Build {
  targetId: string;
  status: BuildStatus;
  phase: string | null;
  attempt: number;
  errorCode: string | null;
  errorMessage: string | null;
  artifact: BuildArtifactSummary | null;
  startedAt: string | null;
  finishedAt: string | null;
}

/** A target no worker serves right now: its build shows waiting_for_worker and fails with NO_WORKER if none comes. */
export interface CompilationWarning {
  targetId: string;
  code: 'NO_WORKER';
  message: string;
}

export interface Compilation {
  id: string;
  modelVersionId: string;
  status: CompilationStatus;
  targets: string[];
  builds: Build[];
  createdAt: string;
  finishedAt: string | null;
  /** Said from the moment the compilation is created: targets no worker serves. */
  warnings: CompilationWarning[];
}

/** An API key or device token, as listed (the secret itself is shown only when created or rotated). */
export interface ApiKeySummary {
  id: string;
  tenantId: string;
  kind: 'api' | 'device';
  /** What the key may do (docs/security.md, "Roles"). */
  role: ApiKeyRole;
  name: string;
  /** Public part of the key (`kiln_<id>`, `kdev_<id>`): tells keys apart, proves nothing. */
  prefix: string;
  /** Model names the key may reach (device tokens are enrolled for some), or ['*']. */
  models: string[];
  createdAt: string;
  revokedAt: string | null;
  /** Refused from then on (an expiry its owner gave it, or the end of a rotation's grace period). */
  expiresAt: string | null;
  rotatedFromId: string | null;
}

export type ApiKeyRole = 'owner' | 'developer' | 'viewer' | 'device';

/** PATCH /v1/keys/:id: rename, set an expiry (ISO 8601, in the future) or clear it ("never"). */
export interface UpdateApiKeyRequest {
  name?: string;
  expiresAt?: string;
}

/** One mutation of the tenant's audit log (GET /v1/audit-events, owners only). */
export interface AuditEvent {
  id: string;
  at: string;
  /** `retention`: a delete the retention policy made (keyId: the key that ran it; null when scheduled). */
  actor: 'key' | 'admin' | 'retention';
  keyId: string | null;
  role: string | null;
  /** Method and route template: `DELETE /v1/models/:modelId`. */
  action: string;
  targetIds: Record<string, string>;
  resultIds: Record<string, string>;
  status: number;
  errorCode: string | null;
  ip: string;
  userAgent: string;
}

export interface AuditEventPage {
  events: AuditEvent[];
  nextCursor: string | null;
}

/** What a delete removed (DELETE /v1/models/:id, /v1/versions/:id, /v1/artifacts/:id). */
export interface DeletionResult {
  deleted: {
    models: number;
    versions: number;
    artifacts: number;
    channels: number;
    rollouts: number;
    compilations: number;
  };
  collected: { objectsDeleted: number; blobsDeleted: number };
}

/** A tenant's retention policy: a version stays while either rule keeps it (null: that rule is off). */
export interface RetentionPolicy {
  keepLastVersions: number | null;
  maxAgeDays: number | null;
}

/** POST /v1/retention-policy/runs: what the policy would delete (dry run) or deleted. */
export interface RetentionRun {
  dryRun: boolean;
  rules: RetentionPolicy | null;
  kept: number;
  versions: {
    versionId: string;
    modelId: string;
    modelName: string;
    number: number;
    createdAt: string;
    outcome: 'would_delete' | 'deleted' | 'skipped';
    reason?: string;
  }[];
  collected: { objectsDeleted: number; blobsDeleted: number };
}

export type WebhookEventType =
  'compilation.finished' | 'build.failed' | 'channel.moved' | 'rollout.halted' | 'artifact.quarantined';

export interface Webhook {
  id: string;
  url: string;
  events: WebhookEventType[];
  description: string;
  createdAt: string;
}

export interface CreatedWebhook extends Webhook {
  /** Signs every delivery (`Kiln-Signature`, docs/webhooks.md): shown once. */
  secret: string;
}

export interface WebhookDelivery {
  id: string;
  eventId: string;
  eventType: WebhookEventType;
  status: 'pending' | 'delivered' | 'failed';
  attempts: number;
  lastStatusCode: number | null;
  lastError: string | null;
  lastResponseBody: string | null;
  lastAttemptAt: string | null;
  deliveredAt: string | null;
  createdAt: string;
  payload: Record<string, unknown>;
}

export interface ApiKeyWithSecret extends ApiKeySummary {
  /** The key itself: shown once, stored only as a hash. */
  key: string;
}

export interface RotatedApiKey extends ApiKeyWithSecret {
  previous: ApiKeySummary;
}

export interface CreateApiKeyRequest {
  kind?: 'api' | 'device';
  /** Default: owner (device for kind "device"). */
  role?: ApiKeyRole;
  /** Refused after this many seconds (default: never). */
  expiresInSeconds?: number;
  name?: string;
  /** Required for device tokens: the model names it is enrolled for, or ['*'] for every model. */
  models?: string[];
}

export interface EventsToken {
  token: string;
  expiresAt: string;
  /** The event stream URL with the token, relative to the API. */
  url: string;
}

/** One server-sent event of GET /v1/compilations/:id/events. */
export type CompilationEvent =
  | { event: 'compilation'; data: Compilation }
  | { event: 'end'; data: { id: string; status: CompilationStatus } }
  | { event: 'problem'; data: { code: string; message: string } };

export interface BuildLog {
  targetId: string;
  log: string;
}

export interface Artifact {
  id: string;
  targetId: string;
  cacheKey: string;
  modelContentHash: string;
  sizeBytes: number;
  createdAt: string;
  requires: ArtifactManifest['requires'];
  verification: ArtifactManifest['verification'];
  timing: ArtifactManifest['timing'];
  isaCheck: ArtifactManifest['isaCheck'];
  toolchain: ArtifactManifest['toolchain'];
  parts: ArtifactManifest['parts'];
}

export interface ArtifactPartDownload {
  role: 'code' | 'weights';
  sha256: string;
  size: number;
  entry?: string;
  url: string;
}

export interface ArtifactDownload {
  artifactId: string;
  targetId: string;
  expiresAt: string;
  manifestUrl: string;
  parts: ArtifactPartDownload[];
  assembly: string;
}

export type UploadStatus = 'uploading' | 'completing' | 'completed' | 'failed' | 'aborted' | 'expired';
export type ChecksumAlgorithm = 'sha256' | 'md5';

export interface CreateUploadRequest {
  filename: string;
  sizeBytes: number;
  partSizeBytes?: number;
  checksumAlgorithm?: ChecksumAlgorithm;
}

export interface Upload {
  uploadId: string;
  modelId: string;
  versionId: string;
  filename: string;
  sizeBytes: number;
  partSize: number;
  partCount: number;
  checksumAlgorithm: ChecksumAlgorithm;
  status: UploadStatus;
  expiresAt: string;
  createdAt: string;
  error: { code: string; message: string } | null;
}

export interface StoredPart {
  partNumber: number;
  size: number;
  etag: string;
  sha256?: string;
}

export interface UploadState extends Upload {
  parts: StoredPart[];
  uploadedBytes: number;
  version: ModelVersion | null;
}

export interface PartChecksum {
  partNumber: number;
  sha256?: string;
  md5?: string;
}

export interface PresignedPart {
  partNumber: number;
  offset: number;
  size: number;
  url: string;
  headers: Record<string, string>;
  expiresAt: string;
}

export interface PartUrls {
  uploadId: string;
  parts: PresignedPart[];
}

export interface Channel {
  name: string;
  modelId: string;
  versionId: string;
  versionNumber: number;
  updatedAt: string;
}

export interface ChannelMove {
  fromVersion: number | null;
  toVersion: number;
  movedByKeyId: string;
  movedAt: string;
}

export interface ResolveRequest {
  /** Model name or id; `name@channel` picks the version a channel points at. */
  model: string;
  version?: number;
  channel?: string;
  fingerprint: DeviceFingerprint | Record<string, unknown>;
  /** The device's stable id (kiln-device keeps one in its cache folder): places it in or out of a rollout. */
  deviceId?: string;
}

export interface ResolvedPart {
  role: 'code' | 'weights';
  sha256: string;
  size: number;
  entry?: string;
  url: string;
}

/** The channel's staged rollout as it applies to the device that resolved. */
export interface RolloutAssignment {
  id: string;
  status: 'running' | 'paused' | 'completed';
  stageIndex: number;
  percent: number;
  arm: 'new' | 'previous';
  reason: string;
}

export interface Resolution {
  model: { id: string; name: string };
  version: { id: string; number: number; selectedBy: 'version' | 'channel' | 'latest'; channel: string | null };
  /** The device class fleet evidence was read for (docs/fleet.md). */
  deviceClass: { key: string; label: string };
  rollout: RolloutAssignment | null;
  artifact: {
    id: string;
    targetId: string;
    sha256: string;
    size: number;
    signature: string;
    signingKeyId: string;
    manifestUrl: string;
    parts: ResolvedPart[];
    expiresAt: string;
    speedup: number;
    basis: SpeedupBasis;
    speedupCi: [number, number] | null;
    reasons: string[];
  } | null;
  fallback: {
    kind: 'portable';
    url: string;
    sha256: string;
    size: number;
    expiresAt: string;
    reason: string;
    /** The signed manifest binding the .pt2 to tenant, model and version. */
    manifestUrl: string;
    manifestSha256: string;
    signature: string;
    signingKeyId: string;
  };
  ranked: RankedArtifact[];
  rejected: { artifactId: string; targetId: string; reasons: string[] }[];
}

export interface SigningKey {
  keyId: string;
  algorithm: 'ed25519';
  publicKey: string;
  publicKeyPem: string;
}

// --- fleet evidence (docs/fleet.md) ---------------------------------------------------------------------------

export interface TelemetryLatency {
  inputShapes: number[][];
  artifactMs?: number;
  portableMs?: number;
  runs: number;
}

/** One device run, as kiln-device reports it. */
export interface TelemetryReport {
  /** A UUIDv7 made by the device: a report sent twice is stored once. */
  reportId: string;
  modelId: string;
  versionId: string;
  artifactId?: string;
  rolloutId?: string;
  ran: 'artifact' | 'portable' | 'none';
  outcome: 'ok' | 'failed';
  failureStage?: 'download' | 'verify' | 'load' | 'run' | 'compare';
  errorCode?: string;
  latency: TelemetryLatency[];
}

/** POST /v1/telemetry: one device's reports (at most 100). */
export interface TelemetryBatch {
  deviceId: string;
  fingerprint: DeviceFingerprint | Record<string, unknown>;
  runtimeVersion?: string;
  reports: TelemetryReport[];
}

export interface TelemetryAck {
  accepted: number;
  duplicates: number;
  rejected: { reportId: string; reason: string }[];
  deviceClass: string;
}

export interface RolloutGates {
  holdSeconds: number;
  checkIntervalSeconds: number;
  maxErrorRate: number;
  minReports: number;
  maxLatencyRatio: number;
  minReportsToPromote: number;
}

export interface StartRolloutRequest {
  versionId?: string;
  version?: number;
  /** Percent of devices per stage, increasing, ending at 100. */
  stages?: number[];
  gates?: Partial<RolloutGates>;
}

export type RolloutStatus = 'running' | 'paused' | 'completed' | 'rolled_back';

export interface RolloutEvent {
  kind:
    | 'started'
    | 'stage_started'
    | 'promoted'
    | 'paused'
    | 'resumed'
    | 'class_rolled_back'
    | 'halted'
    | 'rolled_back'
    | 'completed';
  stageIndex: number;
  percent: number;
  deviceClass: string | null;
  message: string;
  detail: Record<string, unknown>;
  /** `gate` for the rollout's own decisions, else the API key id that asked. */
  actor: string;
  at: string;
}

export interface RolloutClassState {
  deviceClass: string;
  label: string;
  status: 'active' | 'rolled_back';
  reason: string | null;
  at: string;
}

export interface RolloutStats {
  stageIndex: number;
  deviceClass: string;
  label: string;
  arm: 'new' | 'previous';
  reports: number;
  failures: number;
  failureCodes: Record<string, number>;
  latencyMs: number | null;
}

export interface Rollout {
  id: string;
  modelId: string;
  channel: string;
  status: RolloutStatus;
  fromVersion: number;
  toVersion: number;
  stages: number[];
  stageIndex: number;
  percent: number;
  gates: RolloutGates;
  classes: RolloutClassState[];
  events: RolloutEvent[];
  stats: RolloutStats[];
  createdByKeyId: string;
  createdAt: string;
  stageStartedAt: string;
  finishedAt: string | null;
}

export interface FleetServing {
  arm: 'current' | 'new' | 'previous';
  versionNumber: number;
  artifactId: string | null;
  /** null: the portable graph. */
  targetId: string | null;
  basis: SpeedupBasis | null;
  speedup: number | null;
  reasons: string[];
}

export interface FleetEvidence {
  artifactId: string | null;
  /** Target id, or "portable". */
  targetId: string;
  versions: number[];
  reports: number;
  failures: number;
  failureCodes: Record<string, number>;
  otherErrors: number;
  quarantined: boolean;
  deviceSpeedup: number | null;
  deviceSpeedupCi: [number, number] | null;
  deviceSamples: number;
  buildHostSpeedup: number | null;
  buildHostSpeedupCi: [number, number] | null;
  lastReportAt: string;
}

export interface FleetClass {
  deviceClass: string;
  label: string;
  reports: number;
  failures: number;
  lastReportAt: string;
  rolloutStatus: 'active' | 'rolled_back' | null;
  rolloutReason: string | null;
  serves: FleetServing[];
  evidence: FleetEvidence[];
}

/** GET /v1/models/:id/channels/:name/fleet */
export interface FleetView {
  model: { id: string; name: string };
  channel: string;
  versionNumber: number;
  rollout: Rollout | null;
  classes: FleetClass[];
}
