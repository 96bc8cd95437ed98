// The API's request and response shapes: the component schemas of its OpenAPI document, generated into
// ./generated/openapi.ts by openapi-typescript (`npm run generate:api-types`; apps/api/src/openapi-types.spec.ts
// fails when that file is out of date). What is written here is only the SDK's names for them, a few fields the
// document can only call "an object" typed by the contract they follow, and SDK-only types (the event stream).
// Types only (`@kiln/sdk/types`): the dashboard reads the API through them too.
import type { ArtifactManifest, BuildStatus, CompilationStatus, ErrorCode, Pt2Summary } from '@kiln/contracts';
import type { DeviceFingerprint, RankedArtifact, SpeedupBasis } from '@kiln/matching';
import type { components, operations, paths } from './generated/openapi.js';

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
/** The generated document types themselves, for typing a call the SDK has no method for. */
export type { components as ApiComponents, operations as ApiOperations, paths as ApiPaths };

type Schemas = components['schemas'];

/**
 * A generated schema with some fields typed more precisely than the document says: free-form objects whose shape
 * is a contract of @kiln/contracts or @kiln/matching. Each refined field must be one the schema has.
 */
type Refine<T, R extends { [K in keyof R]: K extends keyof T ? unknown : never }> = Omit<T, keyof R> & R;

/** Every error body: `{ error: { code, message, details? } }`. */
export type ErrorBody = Schemas['ErrorBody'];

export type Health = Schemas['HealthResponseDto'];
export type Target = Schemas['TargetResponseDto'];
export type Model = Schemas['ModelResponseDto'];
export type CreateModelRequest = Schemas['CreateModelDto'];
/** `storedSha256`/`storedSizeBytes`: the archive Kiln stores, the upload with its sample-input pickles emptied. */
export type ModelVersion = Refine<Schemas['ModelVersionResponseDto'], { summary: Pt2Summary }>;

export type BuildArtifactSummary = Schemas['BuildArtifactSummaryDto'];
export type Build = Schemas['BuildResponseDto'];
/** A target no worker serves right now: its build shows waiting_for_worker and fails with NO_WORKER if none comes. */
export type CompilationWarning = Schemas['CompilationWarningDto'];
export type Compilation = Schemas['CompilationResponseDto'];

/** An API key or device token, as listed (the secret itself is shown only when created or rotated). */
export type ApiKeySummary = Schemas['ApiKeySummaryDto'];
/** What a key may do (docs/security.md, "Roles"). */
export type ApiKeyRole = ApiKeySummary['role'];
/** PATCH /v1/keys/:id: rename, set an expiry (ISO 8601, in the future) or clear it ("never"). */
export type UpdateApiKeyRequest = Schemas['UpdateApiKeyDto'];
/** A new key with its secret: shown once, stored only as a hash. */
export type ApiKeyWithSecret = Schemas['ApiKeyResponseDto'];
export type RotatedApiKey = Schemas['RotatedApiKeyResponseDto'];
export type CreateApiKeyRequest = Schemas['CreateApiKeyDto'];

/** One mutation of the tenant's audit log (GET /v1/audit-events, owners only). */
export type AuditEvent = Schemas['AuditEventDto'];
export type AuditEventPage = Schemas['AuditEventPageDto'];

/** What a delete removed (DELETE /v1/models/:id, /v1/versions/:id, /v1/artifacts/:id). */
export type DeletionResult = Schemas['DeletionResponseDto'];
/** A tenant's retention policy: a version stays while either rule keeps it (null: that rule is off). */
export type RetentionPolicy = Schemas['RetentionPolicyDto'];
/** POST /v1/retention-policy/runs: what the policy would delete (dry run) or deleted. */
export type RetentionRun = Schemas['RetentionRunDto'];

export type Webhook = Schemas['WebhookDto'];
export type WebhookEventType = Webhook['events'][number];
/** `secret` signs every delivery (`Kiln-Signature`, docs/webhooks.md): shown once. */
export type CreatedWebhook = Schemas['CreatedWebhookDto'];
export type WebhookDelivery = Schemas['WebhookDeliveryDto'];

/** `url`: the event stream URL with the token, relative to the API. */
export type EventsToken = Schemas['CompilationEventsTokenResponseDto'];

/** One server-sent event of GET /v1/compilations/:id/events (the SDK's parse of the stream). */
export type CompilationEvent =
  | { event: 'compilation'; data: Compilation }
  | { event: 'end'; data: { id: string; status: CompilationStatus } }
  | { event: 'problem'; data: { code: string; message: string } };

export type BuildLog = Schemas['BuildLogResponseDto'];

export type Artifact = Refine<
  Schemas['ArtifactResponseDto'],
  Pick<ArtifactManifest, 'requires' | 'verification' | 'timing' | 'isaCheck' | 'toolchain' | 'parts'> & {
    reproduction: ArtifactManifest['reproduction'] | null;
    reuse: ArtifactManifest['reuse'] | null;
  }
>;
export type ArtifactPartDownload = Schemas['ArtifactPartDownloadDto'];
export type ArtifactDownload = Schemas['ArtifactDownloadResponseDto'];

export type Upload = Schemas['UploadResponseDto'];
export type UploadStatus = Upload['status'];
export type ChecksumAlgorithm = Upload['checksumAlgorithm'];
export type CreateUploadRequest = Schemas['CreateUploadDto'];
export type StoredPart = Schemas['StoredPartDto'];
export type UploadState = Refine<Schemas['UploadStatusResponseDto'], { version: ModelVersion | null }>;
export type PartChecksum = Schemas['PartChecksumDto'];
export type PresignedPart = Schemas['PresignedPartDto'];
export type PartUrls = Schemas['PartUrlsResponseDto'];

export type Channel = Schemas['ChannelResponseDto'];
export type ChannelMove = Schemas['ChannelMoveResponseDto'];

/** `model`: name or id; `name@channel` picks the version a channel points at. */
export type ResolveRequest = Refine<
  Schemas['ResolveRequestDto'],
  { fingerprint: DeviceFingerprint | Record<string, unknown> }
>;
export type ResolvedPart = Schemas['ResolvedPartDto'];
/** The channel's staged rollout as it applies to the device that resolved. */
export type RolloutAssignment = Schemas['RolloutAssignmentDto'];
export type Resolution = Schemas['ResolutionResponseDto'];
export type SigningKey = Schemas['SigningKeyDto'];

// --- fleet evidence (docs/fleet.md) ---------------------------------------------------------------------------

export type TelemetryLatency = Schemas['TelemetryLatencyDto'];
/** One device run, as kiln-device reports it. */
export type TelemetryReport = Schemas['TelemetryReportDto'];
/** POST /v1/telemetry: one device's reports (at most 100). */
export type TelemetryBatch = Refine<
  Schemas['TelemetryBatchDto'],
  { fingerprint: DeviceFingerprint | Record<string, unknown> }
>;
export type TelemetryAck = Schemas['TelemetryAckDto'];

export type RolloutGates = Schemas['RolloutGatesResponseDto'];
export type StartRolloutRequest = Schemas['StartRolloutDto'];
export type Rollout = Schemas['RolloutResponseDto'];
export type RolloutStatus = Rollout['status'];
export type RolloutEvent = Schemas['RolloutEventDto'];
export type RolloutClassState = Schemas['RolloutClassStateDto'];
export type RolloutStats = Schemas['RolloutStatsDto'];

export type FleetServing = Schemas['FleetServingDto'];
export type FleetEvidence = Schemas['FleetEvidenceDto'];
export type FleetClass = Schemas['FleetClassDto'];
/** GET /v1/models/:id/channels/:name/fleet */
export type FleetView = Schemas['FleetViewDto'];
