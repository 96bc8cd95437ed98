import { createHash } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { ModelVersionEntity } from '@kiln/database';
import { ArtifactSigner } from '@kiln/signing';
import { ObjectStorage, objectKeys } from '@kiln/storage';
import { portableManifestBytes } from './portable-manifest.js';

export interface PortableSignature {
  portableManifestKey: string;
  portableManifestSha256: string;
  portableSignature: string;
  portableSigningKeyId: string;
}

/**
 * Signs the portable graph of a version: the one signing step of the API, kept apart on purpose. Compiled
 * artifacts are signed by the build side (libs/signing, today in the build activity); the portable .pt2 never
 * passes through a build, it is stored by the API when a version is recorded, so its manifest is signed where it
 * is recorded (VersionsService.createFromStoredObject calls sign() in the transaction that numbers the version).
 * Versions recorded before this existed are signed on first use by the resolver (ensureSigned). If artifact
 * signing moves to an orchestrator activity that alone holds the key, this service becomes a call to it.
 */
@Injectable()
export class PortableSigningService {
  constructor(
    private readonly signer: ArtifactSigner,
    private readonly storage: ObjectStorage,
    @InjectRepository(ModelVersionEntity) private readonly versions: Repository<ModelVersionEntity>,
  ) {}

  /** Writes the manifest of this version's .pt2 to S3 and signs its bytes; returns the columns to record. */
  async sign(version: {
    tenantId: string;
    modelId: string;
    modelName: string;
    versionId: string;
    versionNumber: number;
    fileSha256: string;
    sizeBytes: number;
    contentHash: string;
    guards: string[];
    /** Defaults to now. */
    signedAt?: Date;
  }): Promise<PortableSignature> {
    const bytes = portableManifestBytes({
      tenantId: version.tenantId,
      modelId: version.modelId,
      modelName: version.modelName,
      versionId: version.versionId,
      versionNumber: version.versionNumber,
      file: { sha256: version.fileSha256, size: version.sizeBytes },
      contentHash: version.contentHash,
      guards: version.guards,
      signedAt: (version.signedAt ?? new Date()).toISOString(),
    });
    const key = objectKeys.portableManifest(version.tenantId, version.versionId);
    await this.storage.putBytes(key, bytes, 'application/json');
    const { signature, keyId } = this.signer.signPortable(bytes);
    return {
      portableManifestKey: key,
      portableManifestSha256: createHash('sha256').update(bytes).digest('hex'),
      portableSignature: signature,
      portableSigningKeyId: keyId,
    };
  }

  /** A version recorded before portable signing existed gets its signed manifest now (once: the row keeps it). */
  async ensureSigned(version: ModelVersionEntity, modelName: string): Promise<ModelVersionEntity> {
    if (version.portableSignature !== '') return version;
    const signed = await this.sign({
      tenantId: version.tenantId,
      modelId: version.modelId,
      modelName,
      versionId: version.id,
      versionNumber: version.number,
      fileSha256: version.storedSha256,
      sizeBytes: version.storedSizeBytes,
      contentHash: version.contentHash,
      guards: version.summary.guards ?? [],
      // Deterministic bytes (ed25519 signatures are too): two resolvers signing at once write the same object.
      signedAt: version.createdAt,
    });
    await this.versions.update({ id: version.id, portableSignature: '' }, signed);
    return Object.assign(version, signed);
  }
}
