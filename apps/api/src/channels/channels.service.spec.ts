// ChannelsService's rules, in isolation: real PostgreSQL (a throwaway database), the webhook emitter a recorder.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { ErrorCode, KilnError } from '@kiln/contracts';
import type { WebhookEmitter } from '@kiln/core';
import { ChannelEntity, ChannelMoveEntity, ModelEntity, ModelVersionEntity, RolloutEntity } from '@kiln/database';
import type { AuthContext } from '../auth/auth-context.js';
import { ModelsService } from '../models/models.service.js';
import { createServiceDatabase, seedModel, type ServiceDatabase } from '../testing/service-database.js';
import { ChannelsService } from './channels.service.js';

let db: ServiceDatabase;
let service: ChannelsService;
const emitted: { tenantId: string; type: string; data: Record<string, unknown> }[] = [];

before(async () => {
  db = await createServiceDatabase();
  const { ds } = db;
  const emitter = {
    emit: (tenantId: string, type: string, data: Record<string, unknown>) => {
      emitted.push({ tenantId, type, data });
      return Promise.resolve();
    },
  } as unknown as WebhookEmitter;
  service = new ChannelsService(
    ds.getRepository(ChannelEntity),
    ds.getRepository(ChannelMoveEntity),
    ds.getRepository(ModelVersionEntity),
    ds,
    new ModelsService(ds.getRepository(ModelEntity), ds.getRepository(ModelVersionEntity)),
    emitter,
  );
});

after(async () => {
  await db?.destroy();
});

const authOf = (tenantId: string): AuthContext => ({ tenantId, keyId: randomUUID() }) as AuthContext;

async function refused(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(p, (err: unknown) => err instanceof KilnError && err.code === code);
}

test('names and version selectors are checked before anything is written', async () => {
  const m = await seedModel(db.ds);
  const auth = authOf(m.tenantId);
  for (const name of ['Prod', '-x', 'a/b', '', 'x'.repeat(64)]) {
    await refused(service.move(auth, m.modelId, name, { version: 1 }), ErrorCode.VALIDATION_FAILED);
  }
  await refused(service.move(auth, m.modelId, 'prod', {}), ErrorCode.VALIDATION_FAILED);
  await refused(
    service.move(auth, m.modelId, 'prod', { version: 1, versionId: m.versionIds[0] }),
    ErrorCode.VALIDATION_FAILED,
  );
  await refused(service.move(auth, m.modelId, 'prod', { version: 9 }), ErrorCode.NOT_FOUND);
  assert.equal(await db.ds.getRepository(ChannelEntity).countBy({ modelId: m.modelId }), 0);
});

test("another tenant's model and versions are not found, not moved", async () => {
  const mine = await seedModel(db.ds);
  const theirs = await seedModel(db.ds);
  await refused(service.move(authOf(mine.tenantId), theirs.modelId, 'prod', { version: 1 }), ErrorCode.NOT_FOUND);
  await refused(
    service.move(authOf(mine.tenantId), mine.modelId, 'prod', { versionId: theirs.versionIds[0] }),
    ErrorCode.NOT_FOUND,
  );
  await refused(service.history(mine.tenantId, theirs.modelId, 'prod'), ErrorCode.NOT_FOUND);
});

test('the first move creates the channel; each real move is recorded and emitted once; a no-op is neither', async () => {
  const m = await seedModel(db.ds, 3);
  const auth = authOf(m.tenantId);
  const before = emitted.length;
  const first = await service.move(auth, m.modelId, 'prod', { version: 1 });
  assert.deepEqual([first.name, first.versionNumber, first.versionId], ['prod', 1, m.versionIds[0]]);
  await service.move(auth, m.modelId, 'prod', { versionId: m.versionIds[0] });
  await service.move(auth, m.modelId, 'prod', { version: 3 });
  const events = emitted.slice(before);
  assert.deepEqual(
    events.map((e) => [e.type, e.data.fromVersionId, e.data.toVersionId, e.data.channel]),
    [
      ['channel.moved', null, m.versionIds[0], 'prod'],
      ['channel.moved', m.versionIds[0], m.versionIds[2], 'prod'],
    ],
  );
  const history = await service.history(m.tenantId, m.modelId, 'prod');
  assert.deepEqual(
    history.map((h) => [h.fromVersion, h.toVersion]),
    [
      [1, 3],
      [null, 1],
    ],
    'newest first, the no-op not recorded',
  );
  assert.deepEqual(
    (await service.list(m.tenantId, m.modelId)).map((c) => [c.name, c.versionNumber]),
    [['prod', 3]],
  );
});

test('a channel in a running or paused rollout is not moved by hand', async () => {
  const m = await seedModel(db.ds, 2);
  const auth = authOf(m.tenantId);
  await service.move(auth, m.modelId, 'prod', { version: 1 });
  const channel = await db.ds.getRepository(ChannelEntity).findOneByOrFail({ modelId: m.modelId, name: 'prod' });
  const rollout = await db.ds.getRepository(RolloutEntity).save({
    id: randomUUID(),
    tenantId: m.tenantId,
    modelId: m.modelId,
    channelId: channel.id,
    fromVersionId: m.versionIds[0],
    toVersionId: m.versionIds[1],
    stages: [10, 100],
    status: 'paused',
    gates: {} as RolloutEntity['gates'],
    workflowId: `rollout-${randomUUID()}`,
    createdByKeyId: auth.keyId,
    stageStartedAt: new Date(),
  });
  const before = emitted.length;
  await assert.rejects(
    service.move(auth, m.modelId, 'prod', { version: 2 }),
    (err: unknown) =>
      err instanceof KilnError &&
      err.code === ErrorCode.ROLLOUT_IN_PROGRESS &&
      (err.details as { rolloutId: string }).rolloutId === rollout.id,
  );
  assert.equal(emitted.length, before, 'nothing emitted');
  await db.ds.getRepository(RolloutEntity).update({ id: rollout.id }, { status: 'completed' });
  assert.equal((await service.move(auth, m.modelId, 'prod', { version: 2 })).versionNumber, 2);
});
