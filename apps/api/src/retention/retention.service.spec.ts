// RetentionService (@kiln/core) against real PostgreSQL: which versions its SQL hands the planner (rank per model,
// channels, active rollouts, running compilations), and how a run treats a delete refused meanwhile. The deletes
// themselves are a recorder here (their own rules are test/retention.e2e-spec.ts's).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { type DeletionsService, RetentionService } from '@kiln/core';
import { ChannelEntity, CompilationEntity } from '@kiln/database';
import { createServiceDatabase, seedModel, type ServiceDatabase } from '../testing/service-database.js';

let db: ServiceDatabase;
let service: RetentionService;
const deleted: string[] = [];
/** Versions whose delete answers RESOURCE_IN_USE (a channel moved to them after the plan). */
const inUse = new Set<string>();

before(async () => {
  db = await createServiceDatabase();
  const deletions = {
    deleteVersion: (_tenantId: string, versionId: string, force: boolean) => {
      assert.equal(force, false, 'retention never forces a delete');
      if (inUse.has(versionId)) return Promise.reject(new KilnError(ErrorCode.RESOURCE_IN_USE, 'in use'));
      deleted.push(versionId);
      return Promise.resolve({ deleted: {}, collected: { objectsDeleted: 2, blobsDeleted: 1 } });
    },
  } as unknown as DeletionsService;
  service = new RetentionService(db.ds, deletions);
});

after(async () => {
  await db?.destroy();
});

test('what points at a version or works on it keeps it; the rest beyond the newest N goes, per model', async () => {
  const m = await seedModel(db.ds, 5);
  const other = await seedModel(db.ds, 2);
  const [v1, v2, v3, v4, v5] = m.versionIds;
  await db.ds
    .getRepository(ChannelEntity)
    .save({ tenantId: m.tenantId, modelId: m.modelId, name: 'prod', versionId: v1 });
  await db.ds.getRepository(CompilationEntity).save({
    id: randomUUID(),
    tenantId: m.tenantId,
    modelVersionId: v2,
    targets: ['linux-x86_64-v2'],
    status: 'running',
    workflowId: `compile-${randomUUID()}`,
  });
  await db.ds.getRepository(CompilationEntity).save({
    id: randomUUID(),
    tenantId: m.tenantId,
    modelVersionId: v3,
    targets: ['linux-x86_64-v2'],
    status: 'succeeded',
    workflowId: `compile-${randomUUID()}`,
  });
  await service.setRules(m.tenantId, { keepLastVersions: 1, maxAgeDays: null });
  const plan = await service.run(m.tenantId, { dryRun: true });
  assert.deepEqual(
    plan.versions.map((v) => [v.versionId, v.number, v.outcome]),
    [
      [v3, 3, 'would_delete'],
      [v4, 4, 'would_delete'],
    ],
    'v5 is the newest, v1 has a channel, v2 a running compilation; a finished compilation keeps nothing',
  );
  assert.equal(plan.kept, 3);
  assert.deepEqual(deleted, [], 'a dry run deletes nothing');
  assert.deepEqual((await service.run(other.tenantId, { dryRun: true })).versions, [], 'no policy: nothing');

  inUse.add(v4);
  const run = await service.run(m.tenantId, { dryRun: false });
  assert.deepEqual(
    run.versions.map((v) => [v.versionId, v.outcome, v.reason]),
    [
      [v3, 'deleted', undefined],
      [v4, 'skipped', 'RESOURCE_IN_USE'],
    ],
  );
  assert.deepEqual(run.collected, { objectsDeleted: 2, blobsDeleted: 1 });
  assert.deepEqual(deleted, [v3]);
  const audit = await db.ds.query<{ actor: string; key_id: string | null; target_ids: { versionId: string } }[]>(
    `SELECT actor, key_id, target_ids FROM audit_events WHERE tenant_id = $1`,
    [m.tenantId],
  );
  assert.deepEqual(
    audit.map((a) => [a.actor, a.key_id, a.target_ids.versionId]),
    [['retention', null, v3]],
    'the delete made is audited, the refused one is not',
  );
  assert.ok(v5);
});

test('a policy needs a rule; runAll applies each tenant with one and counts what it deleted', async () => {
  const m = await seedModel(db.ds, 3);
  await assert.rejects(
    service.setRules(m.tenantId, { keepLastVersions: null, maxAgeDays: null }),
    (err: unknown) => err instanceof KilnError && err.code === ErrorCode.VALIDATION_FAILED,
  );
  await service.setRules(m.tenantId, { keepLastVersions: 2, maxAgeDays: null });
  const before = deleted.length;
  const summary = await service.runAll();
  assert.ok(summary.tenants >= 1 && summary.failed === 0, JSON.stringify(summary));
  assert.deepEqual(
    deleted.slice(before).filter((id) => m.versionIds.includes(id)),
    [m.versionIds[0]],
  );
  assert.equal(await service.removeRules(m.tenantId), true);
  assert.equal(await service.removeRules(m.tenantId), false);
});
