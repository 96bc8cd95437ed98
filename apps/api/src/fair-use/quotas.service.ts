import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource, EntityManager } from 'typeorm';
import { KilnConfig } from '@kiln/config';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { TenantEntity } from '@kiln/database';

export interface TenantQuotas {
  concurrentBuilds: number;
  uploadsPerHour: number;
  storedBytes: number;
  rateLimitPerMinute: number;
}

/** Builds that hold or wait for a worker (a quota counts them until they end). */
const ACTIVE_BUILD_STATUSES = ['queued', 'waiting_for_worker', 'running'];
/** When a builds quota is hit, how long a client should wait before it asks again. */
const BUILDS_RETRY_AFTER_S = 30;

/**
 * Per-tenant quotas, each the tenant's own value (tenants.quota_*) or the operator's default (KILN_QUOTA_*):
 * - builds in flight (queued, waiting for a worker, running): a compilation that would go past it is refused
 *   with 429 QUOTA_EXCEEDED and Retry-After (builds end, so waiting helps);
 * - uploads started per hour (direct uploads and multipart uploads): 429 QUOTA_EXCEEDED, Retry-After = when the
 *   oldest upload of the hour leaves the window;
 * - stored bytes (model versions, artifacts, unfinished multipart uploads): 413 STORAGE_QUOTA_EXCEEDED (waiting
 *   does not help: delete something or ask the operator).
 * The builds check and the insert it guards run in one transaction under a per-tenant advisory lock, so two
 * concurrent compilations cannot both slip under the quota; upload checks run under the same lock when the upload
 * starts (a direct upload of unknown length is checked again against the storage quota once stored).
 */
@Injectable()
export class QuotasService {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly config: KilnConfig,
  ) {}

  async quotasOf(tenantId: string, manager: EntityManager = this.dataSource.manager): Promise<TenantQuotas> {
    const tenant = await manager.findOne(TenantEntity, { where: { id: tenantId } });
    return {
      concurrentBuilds: tenant?.quotaConcurrentBuilds ?? this.config.KILN_QUOTA_CONCURRENT_BUILDS,
      uploadsPerHour: tenant?.quotaUploadsPerHour ?? this.config.KILN_QUOTA_UPLOADS_PER_HOUR,
      storedBytes: tenant?.quotaStoredBytes ?? this.config.KILN_QUOTA_STORED_BYTES,
      rateLimitPerMinute: tenant?.rateLimitPerMinute ?? this.config.KILN_RATE_LIMIT_PER_MINUTE,
    };
  }

  /** Serialises quota checks of one tenant until the end of the transaction `tx` belongs to. */
  async lockTenant(tx: EntityManager, tenantId: string): Promise<void> {
    await tx.query(`SELECT pg_advisory_xact_lock(hashtextextended($1, 10))`, [`quota:${tenantId}`]);
  }

  /** Call inside the transaction that inserts `adding` new builds, after lockTenant(). */
  async assertBuildsFit(tx: EntityManager, tenantId: string, adding: number): Promise<void> {
    if (adding === 0) return;
    const { concurrentBuilds } = await this.quotasOf(tenantId, tx);
    const [{ count }] = await tx.query<{ count: string }[]>(
      `SELECT count(*) AS count FROM builds WHERE tenant_id = $1 AND status = ANY($2)`,
      [tenantId, ACTIVE_BUILD_STATUSES],
    );
    const active = Number(count);
    if (active + adding > concurrentBuilds) {
      throw new KilnError(
        ErrorCode.QUOTA_EXCEEDED,
        `This tenant has ${active} build(s) queued or running and may have at most ${concurrentBuilds}; ` +
          `this compilation adds ${adding}. Retry when some have finished.`,
        {
          quota: 'concurrentBuilds',
          limit: concurrentBuilds,
          used: active,
          requested: adding,
          retryAfterSeconds: BUILDS_RETRY_AFTER_S,
        },
      );
    }
  }

  /**
   * Call before an upload starts storing anything, inside a transaction holding lockTenant(). `bytes` is what the
   * upload will store when known (Content-Length, the multipart plan), else 0 (then checked again once stored).
   */
  async assertUploadFits(tx: EntityManager, tenantId: string, bytes: number): Promise<void> {
    const quotas = await this.quotasOf(tenantId, tx);
    const [started] = await tx.query<{ count: string; oldest: Date | null }[]>(
      `SELECT count(*) AS count, min(created_at) AS oldest FROM (
         SELECT created_at FROM model_versions WHERE tenant_id = $1 AND created_at > now() - interval '1 hour'
         UNION ALL
         SELECT created_at FROM uploads WHERE tenant_id = $1 AND status <> 'completed' AND created_at > now() - interval '1 hour'
       ) recent`,
      [tenantId],
    );
    const count = Number(started.count);
    if (count >= quotas.uploadsPerHour) {
      const oldest = started.oldest ? new Date(started.oldest).getTime() : Date.now();
      const retryAfterSeconds = Math.max(1, Math.ceil((oldest + 3600_000 - Date.now()) / 1000));
      throw new KilnError(
        ErrorCode.QUOTA_EXCEEDED,
        `This tenant started ${count} upload(s) in the last hour and may start at most ${quotas.uploadsPerHour}.`,
        { quota: 'uploadsPerHour', limit: quotas.uploadsPerHour, used: count, retryAfterSeconds },
      );
    }
    await this.assertStorageFits(tx, tenantId, bytes, quotas.storedBytes);
  }

  /** Whether `bytes` more fit in the tenant's storage quota (checked again after a stream of unknown length). */
  async assertStorageFits(manager: EntityManager, tenantId: string, bytes: number, limit?: number): Promise<void> {
    const storedLimit = limit ?? (await this.quotasOf(tenantId, manager)).storedBytes;
    const used = await this.storedBytes(manager, tenantId);
    if (used + bytes > storedLimit) {
      throw new KilnError(
        ErrorCode.STORAGE_QUOTA_EXCEEDED,
        `This tenant stores ${used} bytes and may store at most ${storedLimit}; this upload adds ${bytes}.`,
        { quota: 'storedBytes', limit: storedLimit, used, requested: bytes },
      );
    }
  }

  async storedBytes(manager: EntityManager, tenantId: string): Promise<number> {
    const [row] = await manager.query<{ total: string }[]>(
      `SELECT
         (SELECT coalesce(sum(size_bytes), 0) FROM model_versions WHERE tenant_id = $1)
       + (SELECT coalesce(sum(size_bytes), 0) FROM artifacts WHERE tenant_id = $1)
       + (SELECT coalesce(sum(size_bytes), 0) FROM uploads WHERE tenant_id = $1 AND status IN ('uploading', 'completing'))
         AS total`,
      [tenantId],
    );
    return Number(row.total);
  }
}
