import { Logger } from '@nestjs/common';
import type { DataSource, EntityManager } from 'typeorm';
import { ObjectStorage, objectKeys } from '@kiln/storage';

/** A content-addressed part as a manifest names it. */
export interface BlobPart {
  sha256: string;
  size: number;
}

/** What one collection removed. */
export interface CollectionResult {
  objectsDeleted: number;
  blobsDeleted: number;
}

/**
 * A blob an artifact is about to reference is gone (swept after its pin lapsed) or not the size it should be.
 * Nothing was recorded: publishing again (which pins and copies again) is the remedy.
 */
export class BlobGoneError extends Error {
  constructor(readonly sha256: string) {
    super(`blob ${sha256} is no longer stored (collected after its pin lapsed); publish again`);
  }
}

/** How many rows one collection pass takes at most (the next pass takes the rest). */
const COLLECT_BATCH = 500;

/**
 * The one place that decides when a content-addressed blob may leave S3 (docs/decisions.md, "Delete and garbage
 * collection"). The protocol, in three rules that together make a sweep safe against any concurrent publish:
 *
 * 1. **Pin before looking.** Whoever may rely on a blob existing (a build grant that tells a host "already stored",
 *    a publish about to skip copying it) first pins it for its build (`pin`): the row exists, and the sweep leaves
 *    it alone while a pin is live. The blob's object is only ever written after its row is pinned. The build
 *    releases its pins once its references are recorded (`release`); a dead build's pins lapse.
 * 2. **Reference under a lock, after checking S3.** The transaction that records an artifact locks the rows of its
 *    blobs (FOR SHARE), then checks that each object is in S3 with its size, then inserts the references
 *    (`reference`). A missing row or object aborts it with BlobGoneError: nothing is recorded.
 * 3. **Delete under a lock, after checking pins and references.** The sweep takes one row FOR UPDATE (SKIP
 *    LOCKED: never waits on a publish), then, in a new statement, checks that no live pin and no reference holds it,
 *    deletes the object, and deletes the row, all in that transaction.
 *
 * Rules 2 and 3 exclude each other on the row lock: either the reference commits first (then the sweep, which reads
 * references after its lock, sees it and keeps the blob; the foreign key would refuse the row's deletion anyway), or
 * the sweep commits first (then the publish finds the row or the object gone and records nothing). Pins are about
 * liveness, not safety: they keep a blob a build host was told about from being swept before its publish.
 */
export class BlobLedger {
  private readonly logger = new Logger(BlobLedger.name);

  constructor(
    private readonly dataSource: DataSource,
    private readonly storage: ObjectStorage,
  ) {}

  /**
   * Creates these blobs' rows if needed and pins them for `holder` (a build id) for `seconds` (extends the holder's
   * pin, never shortens it). One transaction: the upsert locks each row, so a sweep in flight is waited for and the
   * row it deleted is created again.
   */
  async pin(tenantId: string, holder: string, parts: readonly BlobPart[], seconds: number): Promise<void> {
    if (parts.length === 0) return;
    const sorted = [...new Map(parts.map((p) => [p.sha256, p])).values()].sort((x, y) =>
      x.sha256 < y.sha256 ? -1 : 1,
    );
    const shas = sorted.map((p) => p.sha256);
    await this.dataSource.transaction(async (tx) => {
      await tx.query(
        `INSERT INTO blobs (tenant_id, sha256, size_bytes)
         SELECT $1, p.sha256, p.size FROM unnest($2::text[], $3::bigint[]) AS p(sha256, size)
         ON CONFLICT (tenant_id, sha256) DO UPDATE SET size_bytes = EXCLUDED.size_bytes`,
        [tenantId, shas, sorted.map((p) => p.size)],
      );
      await tx.query(
        `INSERT INTO blob_pins (tenant_id, sha256, holder, pinned_until)
         SELECT $1, unnest($2::text[]), $3, now() + make_interval(secs => $4)
         ON CONFLICT (tenant_id, sha256, holder)
         DO UPDATE SET pinned_until = GREATEST(blob_pins.pinned_until, EXCLUDED.pinned_until)`,
        [tenantId, shas, holder, seconds],
      );
    });
  }

  /** Drops `holder`'s pins (its artifact's references are recorded, or it gave up). */
  async release(tenantId: string, holder: string): Promise<void> {
    await this.dataSource.query(`DELETE FROM blob_pins WHERE tenant_id = $1 AND holder = $2`, [tenantId, holder]);
  }

  /**
   * Inside the transaction that records an artifact: locks its blobs' rows until the commit, checks every object is
   * stored with its size, and records the artifact's references. Throws BlobGoneError when one is not.
   */
  async reference(
    manager: EntityManager,
    tenantId: string,
    artifactId: string,
    parts: readonly BlobPart[],
  ): Promise<void> {
    const shas = [...new Set(parts.map((p) => p.sha256))];
    const locked = await manager.query<{ sha256: string }[]>(
      `SELECT sha256 FROM blobs WHERE tenant_id = $1 AND sha256 = ANY($2::text[]) ORDER BY sha256 FOR SHARE`,
      [tenantId, shas],
    );
    const present = new Set(locked.map((r) => r.sha256));
    for (const part of parts) {
      if (!present.has(part.sha256)) throw new BlobGoneError(part.sha256);
      // Checked while the row is locked: no sweep can delete the object between this check and the commit.
      if ((await this.storage.size(objectKeys.blob(tenantId, part.sha256))) !== part.size) {
        throw new BlobGoneError(part.sha256);
      }
    }
    await manager.query(
      `INSERT INTO artifact_blobs (artifact_id, sha256, tenant_id) SELECT $1, unnest($2::text[]), $3
       ON CONFLICT DO NOTHING`,
      [artifactId, shas, tenantId],
    );
  }

  /** Queues S3 objects for deletion in the caller's transaction (a key ending in `/` is a prefix). */
  async enqueueDeletions(manager: EntityManager, tenantId: string, keys: readonly string[]): Promise<void> {
    const own = [...new Set(keys.filter((k) => k !== '' && k.startsWith(`tenants/${tenantId}/`)))];
    if (own.length === 0) return;
    await manager.query(
      `INSERT INTO object_deletions (object_key, tenant_id) SELECT unnest($1::text[]), $2 ON CONFLICT DO NOTHING`,
      [own, tenantId],
    );
  }

  /**
   * Deletes the queued objects and sweeps unreferenced blobs whose pin lapsed (of one tenant, or all). Safe to run
   * anywhere and any number of times at once: every step locks what it removes and skips what another holds.
   */
  async collect(tenantId?: string): Promise<CollectionResult> {
    const result: CollectionResult = { objectsDeleted: 0, blobsDeleted: 0 };
    // Lapsed pins of blobs that stay (referenced) would pile up: a pin that lapsed holds nothing.
    await this.dataSource.query(
      `DELETE FROM blob_pins WHERE pinned_until < now() AND ($1::uuid IS NULL OR tenant_id = $1)`,
      [tenantId ?? null],
    );
    for (;;) {
      const deleted = await this.deleteQueuedObjects(tenantId);
      result.objectsDeleted += deleted;
      if (deleted < COLLECT_BATCH) break;
    }
    for (;;) {
      const candidates = await this.dataSource.query<{ tenantId: string; sha256: string }[]>(
        `SELECT tenant_id AS "tenantId", sha256 FROM blobs b
          WHERE ($1::uuid IS NULL OR tenant_id = $1)
            AND NOT EXISTS (SELECT 1 FROM artifact_blobs r WHERE r.tenant_id = b.tenant_id AND r.sha256 = b.sha256)
            AND NOT EXISTS (SELECT 1 FROM blob_pins p
                             WHERE p.tenant_id = b.tenant_id AND p.sha256 = b.sha256 AND p.pinned_until >= now())
          LIMIT ${COLLECT_BATCH}`,
        [tenantId ?? null],
      );
      let swept = 0;
      for (const c of candidates) if (await this.sweep(c.tenantId, c.sha256)) swept++;
      result.blobsDeleted += swept;
      if (candidates.length < COLLECT_BATCH || swept === 0) break;
    }
    return result;
  }

  /** Deletes one blob if it is (still) unpinned and unreferenced; false when it was kept. Rule 3 above. */
  async sweep(tenantId: string, sha256: string): Promise<boolean> {
    return this.dataSource.transaction(async (tx) => {
      const row = await tx.query<unknown[]>(
        `SELECT sha256 FROM blobs WHERE tenant_id = $1 AND sha256 = $2 FOR UPDATE SKIP LOCKED`,
        [tenantId, sha256],
      );
      if (row.length === 0) return false;
      // New statements after the lock: they see every pin and reference committed before the lock was granted (and
      // none can be added while it is held: both take the row's lock, through the upsert or the foreign key).
      const held = await tx.query<unknown[]>(
        `SELECT 1 FROM artifact_blobs WHERE tenant_id = $1 AND sha256 = $2
         UNION ALL
         SELECT 1 FROM blob_pins WHERE tenant_id = $1 AND sha256 = $2 AND pinned_until >= now()
         LIMIT 1`,
        [tenantId, sha256],
      );
      if (held.length > 0) return false;
      await this.storage.delete(objectKeys.blob(tenantId, sha256));
      // Its lapsed pins go with it (cascade).
      await tx.query(`DELETE FROM blobs WHERE tenant_id = $1 AND sha256 = $2`, [tenantId, sha256]);
      return true;
    });
  }

  private async deleteQueuedObjects(tenantId: string | undefined): Promise<number> {
    const queued = await this.dataSource.query<{ objectKey: string }[]>(
      `SELECT object_key AS "objectKey" FROM object_deletions WHERE ($1::uuid IS NULL OR tenant_id = $1)
        ORDER BY enqueued_at LIMIT ${COLLECT_BATCH}`,
      [tenantId ?? null],
    );
    let deleted = 0;
    for (const { objectKey } of queued) {
      try {
        // A manifest key names its bytes: should a later build have written the very same bytes and recorded an
        // artifact with them, the object is that artifact's now.
        const live = await this.dataSource.query<unknown[]>(`SELECT 1 FROM artifacts WHERE manifest_key = $1 LIMIT 1`, [
          objectKey,
        ]);
        if (live.length === 0) {
          const keys = objectKey.endsWith('/') ? await this.storage.listKeys(objectKey) : [objectKey];
          for (const key of keys) await this.storage.delete(key);
        }
        await this.dataSource.query(`DELETE FROM object_deletions WHERE object_key = $1`, [objectKey]);
        deleted++;
      } catch (err) {
        // Left queued: the next collection tries again.
        this.logger.warn(`could not delete ${objectKey}: ${(err as Error).message}`);
      }
    }
    return deleted;
  }
}
