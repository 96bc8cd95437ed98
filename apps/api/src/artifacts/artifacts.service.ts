import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { KilnConfig } from '@kiln/config';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { ALL_MODELS, ArtifactEntity } from '@kiln/database';
import { ObjectStorage, objectKeys } from '@kiln/storage';
import { VersionsService } from '../versions/versions.service.js';
import type { ArtifactDownloadResponseDto, ArtifactResponseDto } from './artifacts.dto.js';

export const toArtifactResponse = (a: ArtifactEntity): ArtifactResponseDto => ({
  id: a.id,
  targetId: a.targetId,
  cacheKey: a.cacheKey,
  modelContentHash: a.modelContentHash,
  sizeBytes: a.sizeBytes,
  createdAt: a.createdAt.toISOString(),
  requires: a.manifest.requires,
  verification: a.manifest.verification,
  timing: a.manifest.timing,
  isaCheck: a.manifest.isaCheck,
  toolchain: a.manifest.toolchain,
  // The per-tensor index of weights parts stays in the signed manifest (devices read it there): a big model's list
  // of thousands of tensors would swell every artifact listing.
  parts: a.manifest.parts.map(({ tensors: _tensors, ...part }) => part),
  reproduction: a.manifest.reproduction ?? null,
  reuse: a.manifest.reuse ?? null,
});

export const ASSEMBLY_NOTE =
  'Copy the code part (a zip); add each weights part to it as a STORED entry at its "entry" path; ' +
  'load the result with torch._inductor.aoti_load_package. The kiln-runtime package does this for you.';

@Injectable()
export class ArtifactsService {
  constructor(
    @InjectRepository(ArtifactEntity) private readonly artifacts: Repository<ArtifactEntity>,
    private readonly versions: VersionsService,
    private readonly storage: ObjectStorage,
    private readonly config: KilnConfig,
  ) {}

  /** Artifacts are keyed by model content, so a re-upload of identical content shares them. */
  async listForVersion(tenantId: string, versionId: string): Promise<ArtifactResponseDto[]> {
    const version = await this.versions.require(tenantId, versionId);
    const rows = await this.artifacts.find({
      where: { tenantId, modelContentHash: version.contentHash },
      order: { targetId: 'ASC' },
    });
    return rows.map(toArtifactResponse);
  }

  async get(tenantId: string, artifactId: string): Promise<ArtifactResponseDto> {
    return toArtifactResponse(await this.require(tenantId, artifactId));
  }

  async require(tenantId: string, artifactId: string): Promise<ArtifactEntity> {
    const artifact = await this.artifacts.findOne({ where: { id: artifactId, tenantId } });
    if (!artifact) throw new KilnError(ErrorCode.NOT_FOUND, 'No such artifact.');
    return artifact;
  }

  /**
   * Short-lived presigned URLs for the manifest and each part; the bytes never pass through the API. A key with a
   * model scope (device tokens) only gets artifacts of a model it is enrolled for: an artifact belongs to every
   * model of the tenant with a version of its content (identical content shares artifacts).
   */
  async download(
    tenantId: string,
    artifactId: string,
    modelScope: readonly string[],
  ): Promise<ArtifactDownloadResponseDto> {
    const artifact = await this.require(tenantId, artifactId);
    if (!modelScope.includes(ALL_MODELS)) {
      const models = await this.artifacts.query<{ name: string }[]>(
        `SELECT DISTINCT m.name FROM model_versions v JOIN models m ON m.id = v.model_id
          WHERE v.tenant_id = $1 AND v.content_hash = $2`,
        [tenantId, artifact.modelContentHash],
      );
      if (!models.some((m) => modelScope.includes(m.name))) {
        throw new KilnError(
          ErrorCode.MODEL_NOT_ENROLLED,
          'This device token is not enrolled for the model this artifact was built from.',
        );
      }
    }
    const ttl = this.config.KILN_PRESIGN_TTL_S;
    const manifest = await this.storage.presignGet(artifact.manifestKey, ttl);
    const parts = await Promise.all(
      artifact.manifest.parts.map(async (p) => ({
        role: p.role,
        sha256: p.sha256,
        size: p.size,
        entry: p.entry,
        url: (
          await this.storage.presignGet(
            objectKeys.blob(tenantId, p.sha256),
            ttl,
            `${artifact.targetId}-${p.role}-${p.sha256.slice(0, 12)}${p.role === 'code' ? '.zip' : '.blob'}`,
          )
        ).url,
      })),
    );
    return {
      artifactId: artifact.id,
      targetId: artifact.targetId,
      expiresAt: manifest.expiresAt,
      manifestUrl: manifest.url,
      parts,
      assembly: ASSEMBLY_NOTE,
    };
  }
}
