import { Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Client } from '@temporalio/client';
import { DataSource, type EntityManager } from 'typeorm';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { ObjectStorage, objectKeys } from '@kiln/storage';
import { BlobLedger, type CollectionResult } from './blob-ledger.js';

/** What one delete removed, by kind. */
export interface DeletedCounts {
  models: number;
  versions: number;
  artifacts: number;
  channels: number;
  rollouts: number;
  compilations: number;
}

/** What one delete removed, and what the tenant's collection right after it removed from S3. */
export interface DeletionResult {
  deleted: DeletedCounts;
  collected: CollectionResult;
}

interface VersionRow {
  id: string;
  contentHash: string;
  objectKey: string;
  portableManifestKey: string;
}

/** What a delete must still do once its transaction committed: stop workflows, abort uploads. */
interface AfterCommit {
  workflowIds: string[];
  multipartUploads: { objectKey: string; uploadId: string }[];
}

interface Users {
  channels: { id: string; name: string; modelId: string; versionId: string }[];
  rollouts: { id: string; channelId: string; status: string }[];
}

const NO_COUNTS: DeletedCounts = { models: 0, versions: 0, artifacts: 0, channels: 0, rollouts: 0, compilations: 0 };
const ACTIVE_ROLLOUT = `status IN ('running', 'paused')`;
const UNFINISHED_COMPILATION = `status NOT IN ('succeeded', 'partial', 'failed', 'cancelled')`;
const UNFINISHED_UPLOAD = `status IN ('uploading', 'completing')`;

/**
 * Deletes a model, a version or an artifact with everything that is only theirs. One transaction removes the rows
 * (and queues their S3 objects in `object_deletions`, so a crash after the commit leaks nothing); then the workflows
 * working on them are terminated, unfinished multipart uploads aborted, and the tenant collected (BlobLedger): the
 * queued objects go, and every blob no artifact references any more. An artifact belongs to every version of its
 * content (identical content shares artifacts), so it goes with the last such version of the tenant.
 */
@Injectable()
export class DeletionsService {
  private readonly logger = new Logger(DeletionsService.name);

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly ledger: BlobLedger,
    private readonly storage: ObjectStorage,
    private readonly temporal: Client,
  ) {}

  async deleteModel(tenantId: string, modelId: string, force: boolean): Promise<DeletionResult> {
    return this.run(tenantId, async (tx) => {
      const model = await tx.query<unknown[]>(`SELECT id FROM models WHERE id = $1 AND tenant_id = $2 FOR UPDATE`, [
        modelId,
        tenantId,
      ]);
      if (model.length === 0) throw new KilnError(ErrorCode.NOT_FOUND, 'No such model.');
      const users = await this.users(tx, tenantId, `c.model_id = $2`, `r.model_id = $2`, modelId);
      refuseInUse(users, force, 'model');
      const versions = await this.lockVersions(tx, `model_id = $1`, modelId);
      const uploads = await tx.query<{ objectKey: string; uploadId: string; unfinished: boolean }[]>(
        `SELECT object_key AS "objectKey", s3_upload_id AS "uploadId", ${UNFINISHED_UPLOAD} AS unfinished
           FROM uploads WHERE model_id = $1`,
        [modelId],
      );
      const result = await this.removeVersions(tx, tenantId, versions, users, uploads);
      // Its channels, moves, rollouts and uploads go with it (foreign keys, ON DELETE CASCADE); the rest went above.
      await tx.query(`DELETE FROM telemetry_reports WHERE tenant_id = $1 AND model_id = $2`, [tenantId, modelId]);
      await tx.query(`DELETE FROM fleet_evidence WHERE tenant_id = $1 AND model_id = $2`, [tenantId, modelId]);
      await tx.query(`DELETE FROM models WHERE id = $1`, [modelId]);
      result.counts.models = 1;
      return result;
    });
  }

  async deleteVersion(tenantId: string, versionId: string, force: boolean): Promise<DeletionResult> {
    return this.run(tenantId, async (tx) => {
      const versions = await this.lockVersions(tx, `id = $1 AND tenant_id = $2`, versionId, tenantId);
      if (versions.length === 0) throw new KilnError(ErrorCode.NOT_FOUND, 'No such version.');
      const users = await this.users(
        tx,
        tenantId,
        `c.version_id = $2`,
        `(r.from_version_id = $2 OR r.to_version_id = $2)`,
        versionId,
      );
      refuseInUse(users, force, 'version');
      const uploads = await tx.query<{ objectKey: string; uploadId: string; unfinished: boolean }[]>(
        `SELECT object_key AS "objectKey", s3_upload_id AS "uploadId", ${UNFINISHED_UPLOAD} AS unfinished
           FROM uploads WHERE version_id = $1`,
        [versionId],
      );
      const result = await this.removeVersions(tx, tenantId, versions, users, uploads);
      await tx.query(`DELETE FROM uploads WHERE version_id = $1`, [versionId]);
      return result;
    });
  }

  async deleteArtifact(tenantId: string, artifactId: string, force: boolean): Promise<DeletionResult> {
    return this.run(tenantId, async (tx) => {
      const rows = await tx.query<{ contentHash: string }[]>(
        `SELECT model_content_hash AS "contentHash" FROM artifacts WHERE id = $1 AND tenant_id = $2 FOR UPDATE`,
        [artifactId, tenantId],
      );
      if (rows.length === 0) throw new KilnError(ErrorCode.NOT_FOUND, 'No such artifact.');
      // A channel or a rollout reaches an artifact through any version of its content.
      const ofContent = `(SELECT id FROM model_versions WHERE tenant_id = $1 AND content_hash = $2)`;
      const users = await this.users(
        tx,
        tenantId,
        `c.version_id IN ${ofContent}`,
        `(r.from_version_id IN ${ofContent} OR r.to_version_id IN ${ofContent})`,
        rows[0].contentHash,
      );
      refuseInUse(users, force, 'artifact');
      // Forced, the channels and rollouts stay: they point at versions, which devices then get compiled otherwise
      // (another artifact, or the portable graph) until the version is compiled again.
      const removed = await this.removeArtifacts(tx, tenantId, `id = $2`, artifactId);
      await this.ledger.enqueueDeletions(tx, tenantId, removed.keys);
      return { counts: { ...NO_COUNTS, artifacts: 1 }, after: { workflowIds: [], multipartUploads: [] } };
    });
  }

  /** One delete: its transaction, then what must follow the commit, then the tenant's collection. */
  private async run(
    tenantId: string,
    work: (tx: EntityManager) => Promise<{ counts: DeletedCounts; after: AfterCommit }>,
  ): Promise<DeletionResult> {
    const { counts, after } = await this.dataSource.transaction(work);
    for (const workflowId of after.workflowIds) {
      // Already finished or never started: nothing to stop. A workflow that outlives this fails at its next step:
      // publishing re-reads the version under a lock (PublishingActivitiesService.record).
      await this.temporal.workflow
        .getHandle(workflowId)
        .terminate('its model, version or artifact was deleted')
        .catch(() => undefined);
    }
    for (const upload of after.multipartUploads) {
      await this.storage.abortMultipartUpload(upload.objectKey, upload.uploadId).catch((err: unknown) => {
        this.logger.warn(`Could not abort upload ${upload.uploadId}: ${String(err)}`);
      });
    }
    const collected = await this.ledger.collect(tenantId).catch((err: unknown) => {
      // The rows are gone and their objects queued: the periodic collection finishes the job.
      this.logger.warn(`Collection after a delete failed: ${String(err)}`);
      return { objectsDeleted: 0, blobsDeleted: 0 };
    });
    return { deleted: counts, collected };
  }

  private async lockVersions(tx: EntityManager, where: string, ...params: unknown[]): Promise<VersionRow[]> {
    return await tx.query<VersionRow[]>(
      `SELECT id, content_hash AS "contentHash", object_key AS "objectKey",
              portable_manifest_key AS "portableManifestKey"
         FROM model_versions WHERE ${where} ORDER BY id FOR UPDATE`,
      params,
    );
  }

  /** The channels that point at, and the rollouts that move to or from, what is to be deleted (all rollouts). */
  private async users(
    tx: EntityManager,
    tenantId: string,
    channelWhere: string,
    rolloutWhere: string,
    param: string,
  ): Promise<Users> {
    const channels = await tx.query<Users['channels']>(
      `SELECT c.id, c.name, c.model_id AS "modelId", c.version_id AS "versionId" FROM channels c
        WHERE c.tenant_id = $1 AND ${channelWhere} ORDER BY c.id FOR UPDATE`,
      [tenantId, param],
    );
    const rollouts = await tx.query<Users['rollouts']>(
      `SELECT r.id, r.channel_id AS "channelId", r.status FROM rollouts r
        WHERE r.tenant_id = $1 AND ${rolloutWhere} ORDER BY r.id FOR UPDATE`,
      [tenantId, param],
    );
    return { channels, rollouts };
  }

  /** Removes the channels and rollouts of `users`; returns the rollouts removed and the workflows to stop. */
  private async removeChannelsAndRollouts(
    tx: EntityManager,
    tenantId: string,
    users: Users,
  ): Promise<{ rolloutIds: string[]; workflowIds: string[] }> {
    const channelIds = users.channels.map((c) => c.id);
    // Every rollout of a removed channel goes with it (cascade), and so does any rollout to or from what is deleted.
    const rollouts = await tx.query<{ id: string; workflowId: string; active: boolean }[]>(
      `SELECT id, workflow_id AS "workflowId", ${ACTIVE_ROLLOUT} AS active FROM rollouts
        WHERE tenant_id = $1 AND (id = ANY($2::uuid[]) OR channel_id = ANY($3::uuid[]))`,
      [tenantId, users.rollouts.map((r) => r.id), channelIds],
    );
    const rolloutIds = rollouts.map((r) => r.id);
    await tx.query(`DELETE FROM rollout_stats WHERE rollout_id = ANY($1::uuid[])`, [rolloutIds]);
    await tx.query(`DELETE FROM telemetry_reports WHERE tenant_id = $1 AND rollout_id = ANY($2::uuid[])`, [
      tenantId,
      rolloutIds,
    ]);
    await tx.query(`DELETE FROM rollouts WHERE id = ANY($1::uuid[])`, [rolloutIds]);
    await tx.query(`DELETE FROM channels WHERE id = ANY($1::uuid[])`, [channelIds]);
    return { rolloutIds, workflowIds: rollouts.filter((r) => r.active).map((r) => r.workflowId) };
  }

  /**
   * Removes versions with their compilations, builds, telemetry and fleet evidence, then the artifacts no version of
   * the tenant has the content of any more, and queues every S3 object of theirs.
   */
  private async removeVersions(
    tx: EntityManager,
    tenantId: string,
    versions: VersionRow[],
    users: Users,
    uploads: { objectKey: string; uploadId: string; unfinished: boolean }[],
  ): Promise<{ counts: DeletedCounts; after: AfterCommit }> {
    const versionIds = versions.map((v) => v.id);
    const removed = await this.removeChannelsAndRollouts(tx, tenantId, users);
    const compilations = await tx.query<{ id: string; workflowId: string; unfinished: boolean }[]>(
      `SELECT id, workflow_id AS "workflowId", ${UNFINISHED_COMPILATION} AS unfinished FROM compilations
        WHERE tenant_id = $1 AND model_version_id = ANY($2::uuid[])`,
      [tenantId, versionIds],
    );
    const builds = await tx.query<{ id: string }[]>(`SELECT id FROM builds WHERE compilation_id = ANY($1::uuid[])`, [
      compilations.map((c) => c.id),
    ]);
    await tx.query(`DELETE FROM telemetry_reports WHERE tenant_id = $1 AND version_id = ANY($2::uuid[])`, [
      tenantId,
      versionIds,
    ]);
    await tx.query(`DELETE FROM fleet_evidence WHERE tenant_id = $1 AND subject = ANY($2::text[])`, [
      tenantId,
      versionIds.map((id) => `portable:${id}`),
    ]);
    // Compilations and their builds go with their version (cascade).
    await tx.query(`DELETE FROM model_versions WHERE id = ANY($1::uuid[])`, [versionIds]);
    const hashes = [...new Set(versions.map((v) => v.contentHash))];
    const artifactKeys = await this.removeArtifacts(
      tx,
      tenantId,
      `model_content_hash = ANY($2::text[])
       AND NOT EXISTS (SELECT 1 FROM model_versions v WHERE v.tenant_id = a.tenant_id AND v.content_hash = a.model_content_hash)`,
      hashes,
    );
    await this.ledger.enqueueDeletions(tx, tenantId, [
      ...versions.flatMap((v) => [
        v.objectKey,
        v.portableManifestKey,
        objectKeys.modelVersion(tenantId, v.id),
        objectKeys.portableModel(tenantId, v.id),
        objectKeys.portableManifest(tenantId, v.id),
      ]),
      ...uploads.map((u) => u.objectKey),
      ...builds.map((b) => objectKeys.staging(tenantId, b.id)),
      ...artifactKeys.keys,
    ]);
    return {
      counts: {
        models: 0,
        versions: versions.length,
        artifacts: artifactKeys.count,
        channels: users.channels.length,
        rollouts: removed.rolloutIds.length,
        compilations: compilations.length,
      },
      after: {
        workflowIds: [...removed.workflowIds, ...compilations.filter((c) => c.unfinished).map((c) => c.workflowId)],
        multipartUploads: uploads.filter((u) => u.unfinished),
      },
    };
  }

  /** Deletes artifacts (their blob references go with them) and their evidence; returns their manifest keys. */
  private async removeArtifacts(
    tx: EntityManager,
    tenantId: string,
    where: string,
    param: unknown,
  ): Promise<{ count: number; keys: string[] }> {
    const [deleted] = await tx.query<[{ id: string; manifestKey: string }[], number]>(
      `DELETE FROM artifacts a WHERE a.tenant_id = $1 AND ${where} RETURNING a.id, a.manifest_key AS "manifestKey"`,
      [tenantId, param],
    );
    await tx.query(`DELETE FROM fleet_evidence WHERE tenant_id = $1 AND artifact_id = ANY($2::uuid[])`, [
      tenantId,
      deleted.map((a) => a.id),
    ]);
    return { count: deleted.length, keys: deleted.map((a) => a.manifestKey) };
  }
}

function refuseInUse(users: Users, force: boolean, what: string): void {
  const activeRollouts = users.rollouts.filter((r) => r.status === 'running' || r.status === 'paused');
  if (force || (users.channels.length === 0 && activeRollouts.length === 0)) return;
  throw new KilnError(
    ErrorCode.RESOURCE_IN_USE,
    `This ${what} is in use: ${users.channels.length} channel(s) and ${activeRollouts.length} active rollout(s) ` +
      `point at it. Move or delete them first, or delete with ?force=true (which deletes them too).`,
    {
      channels: users.channels.map((c) => ({ id: c.id, name: c.name, modelId: c.modelId, versionId: c.versionId })),
      rollouts: activeRollouts.map((r) => ({ id: r.id, channelId: r.channelId, status: r.status })),
    },
  );
}
