import { ApiKeyEntity } from './api-key.entity.js';
import { ArtifactBlobEntity } from './artifact-blob.entity.js';
import { AuditEventEntity } from './audit-event.entity.js';
import { ArtifactEntity } from './artifact.entity.js';
import { BlobPinEntity } from './blob-pin.entity.js';
import { BlobEntity } from './blob.entity.js';
import { BuildEntity } from './build.entity.js';
import { ChannelMoveEntity } from './channel-move.entity.js';
import { ChannelEntity } from './channel.entity.js';
import { CompilationEntity } from './compilation.entity.js';
import { FleetEvidenceEntity } from './fleet-evidence.entity.js';
import { ModelVersionEntity } from './model-version.entity.js';
import { ModelEntity } from './model.entity.js';
import { ObjectDeletionEntity } from './object-deletion.entity.js';
import { RetentionPolicyEntity } from './retention-policy.entity.js';
import { RolloutEventEntity } from './rollout-event.entity.js';
import { RolloutStatsEntity } from './rollout-stats.entity.js';
import { RolloutEntity } from './rollout.entity.js';
import { TelemetryReportEntity } from './telemetry-report.entity.js';
import { TenantEntity } from './tenant.entity.js';
import { UploadEntity } from './upload.entity.js';
import { WebhookDeliveryEntity } from './webhook-delivery.entity.js';
import { WebhookEndpointEntity } from './webhook-endpoint.entity.js';

export {
  WebhookDeliveryEntity,
  WebhookEndpointEntity,
  RetentionPolicyEntity,
  ApiKeyEntity,
  ArtifactBlobEntity,
  AuditEventEntity,
  ArtifactEntity,
  BlobEntity,
  BlobPinEntity,
  BuildEntity,
  ChannelEntity,
  ChannelMoveEntity,
  CompilationEntity,
  FleetEvidenceEntity,
  ModelEntity,
  ModelVersionEntity,
  ObjectDeletionEntity,
  RolloutEntity,
  RolloutEventEntity,
  RolloutStatsEntity,
  TelemetryReportEntity,
  TenantEntity,
  UploadEntity,
};
export { ALL_MODELS, API_KEY_ROLES, type ApiKeyKind, type ApiKeyRole } from './api-key.entity.js';
export type { UploadChecksumAlgorithm, UploadStatus } from './upload.entity.js';
export type { WebhookDeliveryStatus } from './webhook-delivery.entity.js';
export type { RolloutClassState, RolloutGates, RolloutStatus } from './rollout.entity.js';
export type { RolloutEventKind } from './rollout-event.entity.js';
export type { RolloutArm } from './rollout-stats.entity.js';
export type { TelemetryLatency, TelemetryOutcome, TelemetryRan } from './telemetry-report.entity.js';

export const ENTITIES = [
  TenantEntity,
  ApiKeyEntity,
  ModelEntity,
  ModelVersionEntity,
  CompilationEntity,
  BuildEntity,
  ArtifactEntity,
  ChannelEntity,
  ChannelMoveEntity,
  UploadEntity,
  TelemetryReportEntity,
  FleetEvidenceEntity,
  RolloutEntity,
  RolloutEventEntity,
  RolloutStatsEntity,
  BlobEntity,
  BlobPinEntity,
  ArtifactBlobEntity,
  ObjectDeletionEntity,
  AuditEventEntity,
  RetentionPolicyEntity,
  WebhookEndpointEntity,
  WebhookDeliveryEntity,
];
