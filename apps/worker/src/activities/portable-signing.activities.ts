import { createHash } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { Repository } from 'typeorm';
import { ErrorCode } from '@kiln/contracts';
import { ModelEntity, ModelVersionEntity } from '@kiln/database';
import { portableManifestBytes } from '@kiln/signing';
import { ObjectStorage, objectKeys } from '@kiln/storage';
import type { PortableSigningActivities, SignPortableInput } from '@kiln/temporal';
import { ORCHESTRATOR_SIGNER, type OrchestratorSigner } from './orchestrator-signer.js';

/**
 * Signs the portable graph of a version (what devices fall back to), on the orchestrator: the bytes in S3 are
 * re-hashed first, so the signature only ever vouches for the archive the API validated and recorded.
 */
@Injectable()
export class PortableSigningActivitiesService implements PortableSigningActivities {
  constructor(
    @InjectRepository(ModelVersionEntity) private readonly versions: Repository<ModelVersionEntity>,
    @InjectRepository(ModelEntity) private readonly models: Repository<ModelEntity>,
    private readonly storage: ObjectStorage,
    @Inject(ORCHESTRATOR_SIGNER) private readonly signer: OrchestratorSigner,
  ) {}

  async signPortable(input: SignPortableInput): Promise<void> {
    const version = await this.versions.findOneBy({ id: input.versionId, tenantId: input.tenantId });
    if (!version) throw ApplicationFailure.nonRetryable(`no version ${input.versionId}`, ErrorCode.NOT_FOUND);
    if (version.portableSignature !== '') return;
    const model = await this.models.findOneByOrFail({ id: version.modelId, tenantId: input.tenantId });
    Context.current().heartbeat();
    const stored = await this.storage.hashObject(version.objectKey, Context.current().cancellationSignal);
    if (!stored || stored.sha256 !== version.storedSha256 || stored.size !== version.storedSizeBytes) {
      throw ApplicationFailure.nonRetryable(
        `the stored portable archive of version ${version.id} is not the one recorded at upload`,
        ErrorCode.MODEL_INTEGRITY_MISMATCH,
      );
    }
    const bytes = portableManifestBytes({
      tenantId: version.tenantId,
      modelId: version.modelId,
      modelName: model.name,
      versionId: version.id,
      versionNumber: version.number,
      // The signature binds the object devices download: the stored rewrite, not the uploaded file.
      file: { sha256: version.storedSha256, size: version.storedSizeBytes },
      contentHash: version.contentHash,
      guards: version.summary.guards ?? [],
      // Fixed by the version: a retried or repeated signing writes the same bytes (ed25519 is deterministic too).
      signedAt: version.createdAt.toISOString(),
    });
    const key = objectKeys.portableManifest(version.tenantId, version.id);
    await this.storage.putBytes(key, bytes, 'application/json');
    const { signature, keyId } = this.signer.get().signPortable(bytes);
    await this.versions.update(
      { id: version.id, portableSignature: '' },
      {
        portableManifestKey: key,
        portableManifestSha256: createHash('sha256').update(bytes).digest('hex'),
        portableSignature: signature,
        portableSigningKeyId: keyId,
      },
    );
    // Deleted while this signed (its delete may have collected before the object was written): leave nothing behind.
    if (!(await this.versions.existsBy({ id: version.id }))) await this.storage.delete(key);
  }
}
