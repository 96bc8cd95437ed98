import { ApiKeyEntity } from './api-key.entity.js';
import { ArtifactEntity } from './artifact.entity.js';
import { BuildEntity } from './build.entity.js';
import { ChannelMoveEntity } from './channel-move.entity.js';
import { ChannelEntity } from './channel.entity.js';
import { CompilationEntity } from './compilation.entity.js';
import { ModelVersionEntity } from './model-version.entity.js';
import { ModelEntity } from './model.entity.js';
import { TenantEntity } from './tenant.entity.js';
import { UploadEntity } from './upload.entity.js';

export {
  ApiKeyEntity,
  ArtifactEntity,
  BuildEntity,
  ChannelEntity,
  ChannelMoveEntity,
  CompilationEntity,
  ModelEntity,
  ModelVersionEntity,
  TenantEntity,
  UploadEntity,
};
export { ALL_MODELS, type ApiKeyKind } from './api-key.entity.js';
export type { UploadChecksumAlgorithm, UploadStatus } from './upload.entity.js';

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
];
