import { Logger } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import { ModelVersionEntity, UploadEntity } from '@kiln/database';
import { ObjectStorage, objectKeys } from '@kiln/storage';

/** A complete request holds the upload this long; a retry after that takes over (the first one died). */
export const COMPLETE_LEASE_MS = 10 * 60_000;

/**
 * Aborts uploads past their deadline (S3 keeps, and bills, the parts of an unfinished upload until it is aborted),
 * and cleans up after complete requests that died and were never retried. Run by the `kiln-sweep-uploads` Temporal
 * Schedule on the orchestrator (every KILN_UPLOAD_SWEEP_INTERVAL_S), no longer by a timer in each API replica.
 */
export class UploadSweeper {
  private readonly logger = new Logger(UploadSweeper.name);

  constructor(
    private readonly dataSource: DataSource,
    private readonly storage: ObjectStorage,
  ) {}

  /** One pass (at most 100 uploads, oldest deadline first); returns how many it expired. */
  async sweepExpired(now = new Date()): Promise<number> {
    const uploads = this.dataSource.getRepository(UploadEntity);
    const expired = await uploads
      .createQueryBuilder('u')
      .where(`u.status = 'uploading' AND u.expires_at <= :now`, { now })
      .orWhere(`u.status = 'completing' AND u.expires_at <= :now AND u.completing_since < :stale`, {
        now,
        stale: new Date(now.getTime() - COMPLETE_LEASE_MS),
      })
      .orderBy('u.expires_at', 'ASC')
      .take(100)
      .getMany();
    let swept = 0;
    for (const upload of expired) {
      try {
        await this.storage.abortMultipartUpload(upload.objectKey, upload.s3UploadId);
        const version =
          upload.status === 'completing'
            ? await this.dataSource
                .getRepository(ModelVersionEntity)
                .findOne({ where: { id: upload.versionId, tenantId: upload.tenantId } })
            : null;
        if (upload.status === 'completing' && !version) {
          await this.storage.delete(upload.objectKey);
          // A complete that died after writing the portable archive but before recording the version.
          await this.storage.delete(objectKeys.portableModel(upload.tenantId, upload.versionId));
        }
        // Only if still as found: a complete that took over in the meantime keeps its upload.
        const res = await uploads.update(
          { id: upload.id, status: upload.status },
          // An expired upload releases its idempotency key: retrying with it starts afresh.
          { status: 'expired', finishedAt: new Date(), completingSince: null, idempotencyKey: null },
        );
        if (res.affected) swept++;
      } catch (err) {
        this.logger.warn(`Could not expire upload ${upload.id}: ${String(err)}`);
      }
    }
    if (swept > 0) this.logger.log(`Expired ${swept} unfinished upload(s).`);
    return swept;
  }
}
