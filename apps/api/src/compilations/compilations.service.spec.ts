// CompilationsService's rules, in isolation: real PostgreSQL (a throwaway database), Temporal a fake that records
// the workflows started and says which build queues have a worker.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, beforeEach, test } from 'node:test';
import type { Client } from '@temporalio/client';
import { KilnConfig } from '@kiln/config';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { CompilationStarter } from '@kiln/core';
import { ArtifactEntity, BuildEntity, CompilationEntity, ModelVersionEntity } from '@kiln/database';
import { cacheKey, findTarget, recipeHash, taskQueueFor } from '@kiln/targets';
import type { CompileModelInput } from '@kiln/temporal';
import { QuotasService } from '../fair-use/quotas.service.js';
import { createServiceDatabase, seedModel, type ServiceDatabase, V2_MANIFEST } from '../testing/service-database.js';
import type { VersionsService } from '../versions/versions.service.js';
import { CompilationsService } from './compilations.service.js';

const V2 = 'linux-x86_64-v2';
const V3 = 'linux-x86_64-v3';

let db: ServiceDatabase;
let service: CompilationsService;
let starter: CompilationStarter;
const started: { workflowId: string; input: CompileModelInput }[] = [];
/** Queues that have a poller, as Temporal would answer. */
const polled = new Set<string>();
let startFails = false;

before(async () => {
  db = await createServiceDatabase();
  const { ds } = db;
  const temporal = {
    options: { namespace: 'default' },
    workflowService: {
      describeTaskQueue: (req: { taskQueue: { name: string } }) =>
        Promise.resolve({ pollers: polled.has(req.taskQueue.name) ? [{ identity: 'w' }] : [] }),
      describeWorkflowExecution: () => Promise.resolve({ pendingActivities: [] }),
    },
    workflow: {
      start: (_type: string, opts: { workflowId: string; args: [CompileModelInput] }) => {
        if (startFails) return Promise.reject(new Error('Temporal is down'));
        started.push({ workflowId: opts.workflowId, input: opts.args[0] });
        return Promise.resolve({});
      },
    },
  } as unknown as Client;
  const versions = {
    require: async (tenantId: string, versionId: string) => {
      const v = await ds.getRepository(ModelVersionEntity).findOneBy({ id: versionId, tenantId });
      if (!v) throw new KilnError(ErrorCode.NOT_FOUND, 'No such version.');
      return v;
    },
  } as unknown as VersionsService;
  const config = Object.assign(new KilnConfig(), { KILN_QUOTA_CONCURRENT_BUILDS: 3 });
  starter = new CompilationStarter(ds, temporal, config);
  service = new CompilationsService(
    ds.getRepository(CompilationEntity),
    ds.getRepository(BuildEntity),
    ds.getRepository(ArtifactEntity),
    ds,
    versions,
    temporal,
    new QuotasService(ds, config),
    starter,
  );
});

beforeEach(() => {
  started.length = 0;
  polled.clear();
  startFails = false;
});

after(async () => {
  await db?.destroy();
});

async function refused(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(p, (err: unknown) => err instanceof KilnError && err.code === code);
}

test('unknown targets and versions of another tenant are refused; nothing is written', async () => {
  const m = await seedModel(db.ds, 1);
  const other = await seedModel(db.ds, 1);
  await assert.rejects(
    service.create(m.tenantId, m.versionIds[0], [V2, 'linux-sparc'], null),
    (err: unknown) =>
      err instanceof KilnError &&
      err.code === ErrorCode.UNKNOWN_TARGET &&
      JSON.stringify((err.details as { unknown: string[] }).unknown) === '["linux-sparc"]',
  );
  await refused(service.create(m.tenantId, other.versionIds[0], [V2], null), ErrorCode.NOT_FOUND);
  assert.equal(await db.ds.getRepository(CompilationEntity).countBy({ tenantId: m.tenantId }), 0);
  assert.deepEqual(started, []);
});

test('a build per target: queued where a worker polls, waiting_for_worker elsewhere; one workflow, running', async () => {
  const m = await seedModel(db.ds, 1);
  polled.add(taskQueueFor(V2));
  const { compilation, created } = await service.create(m.tenantId, m.versionIds[0], [V2, V3], null);
  assert.equal(created, true);
  assert.equal(compilation.status, 'running');
  const status = Object.fromEntries(compilation.builds.map((b) => [b.targetId, b.status]));
  assert.deepEqual(status, { [V2]: 'queued', [V3]: 'waiting_for_worker' });
  assert.equal(started.length, 1);
  assert.deepEqual(started[0].input.builds.map((b) => [b.targetId, b.taskQueue]).sort(), [
    [V2, taskQueueFor(V2)],
    [V3, taskQueueFor(V3)],
  ]);
  assert.equal(started[0].workflowId, `compile-${compilation.id}`);
});

test('an Idempotency-Key answers the first compilation again, and starts nothing more', async () => {
  const m = await seedModel(db.ds, 1);
  const key = `idem-${randomUUID()}`;
  const first = await service.create(m.tenantId, m.versionIds[0], [V2], key);
  const again = await service.create(m.tenantId, m.versionIds[0], [V2, V3], key);
  assert.deepEqual([again.created, again.compilation.id], [false, first.compilation.id]);
  assert.equal(started.length, 1);
  // Another tenant's same key is its own.
  const other = await seedModel(db.ds, 1);
  assert.equal((await service.create(other.tenantId, other.versionIds[0], [V2], key)).created, true);
});

/** A model of one version whose v2 artifact is already built (so a compilation of it is answered from the cache). */
async function seedBuiltModel() {
  const m = await seedModel(db.ds, 1);
  const version = await db.ds.getRepository(ModelVersionEntity).findOneByOrFail({ id: m.versionIds[0] });
  const recipe = findTarget(V2)!.recipe;
  const artifact = await db.ds.getRepository(ArtifactEntity).save({
    tenantId: m.tenantId,
    cacheKey: cacheKey({ tenantId: m.tenantId, modelContentHash: version.contentHash, recipe }),
    modelContentHash: version.contentHash,
    targetId: V2,
    recipeHash: recipeHash(recipe),
    manifestKey: 'k',
    manifest: V2_MANIFEST,
    manifestSha256: 'd'.repeat(64),
    signature: 's',
    signingKeyId: 'key',
    sizeBytes: 1,
  });
  return { m, artifact };
}

test('a target whose artifact exists is answered from the cache: no build runs, no workflow starts', async () => {
  const { m, artifact } = await seedBuiltModel();
  const { compilation } = await service.create(m.tenantId, m.versionIds[0], [V2], null);
  assert.equal(compilation.status, 'succeeded');
  assert.deepEqual(
    compilation.builds.map((b) => [b.status, b.artifact?.id]),
    [['cached', artifact.id]],
  );
  assert.deepEqual(started, []);
});

test('reproduce is recorded on the compilation and reaches the workflow, also when the reconciler starts it', async () => {
  const m = await seedModel(db.ds, 2);
  polled.add(taskQueueFor(V2));
  const plain = await service.create(m.tenantId, m.versionIds[0], [V2], null);
  assert.equal(plain.compilation.reproduce, false);
  assert.equal(started[0].input.reproduce, undefined);
  startFails = true;
  const { compilation } = await service.create(m.tenantId, m.versionIds[1], [V2], null, { reproduce: true });
  assert.equal(compilation.reproduce, true);
  assert.equal((await service.get(m.tenantId, compilation.id)).reproduce, true);
  startFails = false;
  await db.ds.query(`UPDATE compilations SET created_at = now() - interval '1 minute' WHERE id = $1`, [compilation.id]);
  assert.equal(await starter.reconcilePending(), 1);
  assert.equal(started[1].input.reproduce, true);
});

test('a target already built is answered from the cache with reproduce too: nothing is built, so nothing checked', async () => {
  const { m, artifact } = await seedBuiltModel();
  const { compilation } = await service.create(m.tenantId, m.versionIds[0], [V2], null, { reproduce: true });
  assert.equal(compilation.status, 'succeeded');
  assert.deepEqual(
    compilation.builds.map((b) => [b.status, b.artifact?.id]),
    [['cached', artifact.id]],
  );
  assert.deepEqual(started, []);
});

test('builds beyond the concurrent-build quota are refused whole (QUOTA_EXCEEDED)', async () => {
  const m = await seedModel(db.ds, 2);
  await service.create(m.tenantId, m.versionIds[0], [V2, V3], null);
  await refused(service.create(m.tenantId, m.versionIds[1], [V2, V3], null), ErrorCode.QUOTA_EXCEEDED);
  assert.equal(await db.ds.getRepository(CompilationEntity).countBy({ tenantId: m.tenantId }), 1);
});

test('with Temporal down the compilation stays pending, and the reconcile pass starts it once it is back', async () => {
  const m = await seedModel(db.ds, 1);
  startFails = true;
  const { compilation } = await service.create(m.tenantId, m.versionIds[0], [V2], null);
  assert.equal(compilation.status, 'pending');
  startFails = false;
  await starter.reconcilePending();
  assert.equal(started.length, 0, 'not before it is 5 s old (a request may still be starting it)');
  await db.ds.query(`UPDATE compilations SET created_at = now() - interval '1 minute' WHERE id = $1`, [compilation.id]);
  assert.equal(await starter.reconcilePending(), 1);
  assert.deepEqual(
    started.map((s) => s.workflowId),
    [`compile-${compilation.id}`],
  );
  assert.equal((await service.get(m.tenantId, compilation.id)).status, 'running');
});
