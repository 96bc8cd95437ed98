// Issue 16, item 2: retention policies, against the compiled API and orchestrator, real PostgreSQL, Temporal and S3.
//
// One model gets four versions; a channel points at the oldest. A policy "keep the last 1" must let exactly the two
// middle versions go: the newest is kept by the rule, the oldest by its channel. A dry run says so and changes
// nothing; a run deletes them (rows and S3 objects) and writes each delete to the audit log as `retention`. An age
// rule is previewed against a version made old in the database (nobody waits days). Bad policies are 400s.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import { DataSource } from 'typeorm';
import { loadKilnConfig } from '@kiln/config';
import { objectKeys } from '@kiln/storage';
import { RETENTION_SCHEDULE_ID } from '@kiln/temporal';
import {
  api,
  type ApiProcess,
  createTenant,
  fixture,
  startApi,
  storage,
  type TestTenant,
  WorkerProcess,
} from './support/kiln-harness.js';

interface RunBody {
  dryRun: boolean;
  rules: { keepLastVersions: number | null; maxAgeDays: number | null } | null;
  kept: number;
  versions: { versionId: string; number: number; outcome: string; reason?: string }[];
  collected: { objectsDeleted: number; blobsDeleted: number };
}

const config = loadKilnConfig();
const s3 = storage();
const db = new DataSource({ type: 'postgres', url: config.DATABASE_URL });
const orchestrator = new WorkerProcess({ KILN_WORKER_ROLES: 'orchestrator' });
let app: ApiProcess;
let tenant: TestTenant;

before(async () => {
  await db.initialize();
  app = await startApi();
  await orchestrator.start();
  tenant = await createTenant(app, 'retention-policy');
});

after(async () => {
  await orchestrator.stop();
  await app?.stop();
  await db.destroy();
  s3.client.destroy();
});

async function newModel(name: string, fixtures: string[]): Promise<{ modelId: string; versionIds: string[] }> {
  const model = await api(app).post('/v1/models').set(tenant.auth).send({ name }).expect(201);
  const modelId = (model.body as { id: string }).id;
  const versionIds: string[] = [];
  for (const f of fixtures) {
    const res = await api(app)
      .post(`/v1/models/${modelId}/versions?filename=${f}`)
      .set(tenant.auth)
      .set('Content-Type', 'application/octet-stream')
      .send(await fixture(f))
      .expect(201);
    versionIds.push((res.body as { id: string }).id);
  }
  return { modelId, versionIds };
}

async function run(body: Record<string, unknown>, status = 200): Promise<RunBody> {
  return (await api(app).post('/v1/retention-policy/runs').set(tenant.auth).send(body).expect(status)).body as RunBody;
}

const outcomes = (r: RunBody): string[] => r.versions.map((v) => `${v.versionId} ${v.outcome}`);

test('bad policies are 400 VALIDATION_FAILED; without a policy nothing is planned', async () => {
  await api(app).get('/v1/retention-policy').set(tenant.auth).expect(404);
  for (const body of [
    {},
    { keepLastVersions: null, maxAgeDays: null },
    { keepLastVersions: 0 },
    { maxAgeDays: -1 },
    { keepLastVersions: 1.5 },
    { keepLastVersions: '2' },
    { maxAgeDays: 36501 },
    { keepLastVersions: 1, extra: true },
  ]) {
    const res = await api(app).put('/v1/retention-policy').set(tenant.auth).send(body).expect(400);
    assert.equal((res.body as { error: { code: string } }).error.code, 'VALIDATION_FAILED', JSON.stringify(body));
  }
  await run({}, 400);
  await run({ dryRun: false, keepLastVersions: 1 }, 400);
  const none = await run({ dryRun: false });
  assert.deepEqual([none.rules, none.versions], [null, []]);
  await api(app).delete('/v1/retention-policy').set(tenant.auth).expect(404);
});

test('keep the last 1: a dry run lists the two middle versions, a run deletes exactly them, a channel keeps the oldest', async () => {
  const m = await newModel('kept-by-policy', ['mlp.pt2', 'mlp-retrained.pt2', 'cnn.pt2', 'pair.pt2']);
  const [oldest, second, third, newest] = m.versionIds;
  await api(app).put(`/v1/models/${m.modelId}/channels/prod`).set(tenant.auth).send({ versionId: oldest }).expect(200);
  const saved = await api(app).put('/v1/retention-policy').set(tenant.auth).send({ keepLastVersions: 1 }).expect(200);
  assert.deepEqual(saved.body, { keepLastVersions: 1, maxAgeDays: null });
  assert.deepEqual((await api(app).get('/v1/retention-policy').set(tenant.auth).expect(200)).body, saved.body);

  const dry = await run({ dryRun: true });
  assert.deepEqual(outcomes(dry), [`${second} would_delete`, `${third} would_delete`]);
  assert.equal(dry.kept, 2);
  for (const id of m.versionIds) await api(app).get(`/v1/versions/${id}`).set(tenant.auth).expect(200);

  const keysBefore = await s3.listKeys(`tenants/${tenant.id}/`);
  assert.ok(
    keysBefore.some((k) => k.includes(second)),
    'the second version has objects before the run',
  );
  const done = await run({ dryRun: false });
  assert.deepEqual(outcomes(done), [`${second} deleted`, `${third} deleted`]);
  assert.ok(done.collected.objectsDeleted > 0, 'their objects were collected');

  for (const id of [second, third]) await api(app).get(`/v1/versions/${id}`).set(tenant.auth).expect(404);
  for (const id of [oldest, newest]) await api(app).get(`/v1/versions/${id}`).set(tenant.auth).expect(200);
  const keysAfter = await s3.listKeys(`tenants/${tenant.id}/`);
  for (const id of [second, third]) {
    assert.deepEqual(
      keysAfter.filter((k) => k.includes(id)),
      [],
      `no object of ${id} remains`,
    );
    assert.equal(await s3.size(objectKeys.modelVersion(tenant.id, id)), null);
  }
  assert.ok(keysAfter.some((k) => k.includes(newest)) && keysAfter.some((k) => k.includes(oldest)));

  // Each delete is in the audit log, as the retention job acting for the key that asked.
  const audit = (
    await api(app).get('/v1/audit-events').query({ action: 'DELETE /v1/versions' }).set(tenant.auth).expect(200)
  ).body as { events: { actor: string; role: string; targetIds: Record<string, string>; status: number }[] };
  assert.deepEqual(
    audit.events
      .filter((e) => e.actor === 'retention')
      .map((e) => e.targetIds.versionId)
      .sort(),
    [second, third].sort(),
  );
  assert.ok(audit.events.every((e) => e.role === 'owner' && e.status === 200));

  // Run again: nothing more goes.
  assert.deepEqual((await run({ dryRun: false })).versions, []);
});

test('an age rule is previewed without saving it; only old versions nothing points at would go', async () => {
  const m = await newModel('aged', ['mlp.pt2', 'cnn.pt2']);
  const [old, young] = m.versionIds;
  await db.query(`UPDATE model_versions SET created_at = now() - interval '10 days' WHERE id = $1`, [old]);
  const preview = await run({ dryRun: true, maxAgeDays: 5 });
  assert.deepEqual(preview.rules, { keepLastVersions: null, maxAgeDays: 5 });
  assert.ok(outcomes(preview).includes(`${old} would_delete`), JSON.stringify(preview));
  assert.ok(!outcomes(preview).some((o) => o.startsWith(young)));
  // The saved policy is unchanged by the preview, and under it (keep the last 1) the old version is the one to go.
  assert.deepEqual((await api(app).get('/v1/retention-policy').set(tenant.auth).expect(200)).body, {
    keepLastVersions: 1,
    maxAgeDays: null,
  });
  // A channel now points at it: a run keeps it.
  await api(app).put(`/v1/models/${m.modelId}/channels/edge`).set(tenant.auth).send({ versionId: old }).expect(200);
  const kept = await run({ dryRun: false });
  assert.deepEqual(kept.versions, []);
  await api(app).get(`/v1/versions/${old}`).set(tenant.auth).expect(200);

  await api(app).delete('/v1/retention-policy').set(tenant.auth).expect(204);
  await api(app).get('/v1/retention-policy').set(tenant.auth).expect(404);
});

test('the orchestrator schedules the retention pass on Temporal; a pass applies every policy, audited as scheduled', async () => {
  const connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
  try {
    const client = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
    const schedule = client.schedule.getHandle(RETENTION_SCHEDULE_ID);
    const described = await schedule.describe();
    assert.equal(described.action.type, 'startWorkflow');
    assert.deepEqual(
      described.spec.intervals?.map((i) => i.every),
      [config.KILN_RETENTION_INTERVAL_S * 1000],
      'every KILN_RETENTION_INTERVAL_S',
    );

    const m = await newModel('scheduled', ['mlp.pt2', 'cnn.pt2', 'pair.pt2']);
    await api(app).put('/v1/retention-policy').set(tenant.auth).send({ keepLastVersions: 2 }).expect(200);
    const before = (await schedule.describe()).info.recentActions.length;
    await schedule.trigger();
    const until = Date.now() + 60_000;
    while ((await api(app).get(`/v1/versions/${m.versionIds[0]}`).set(tenant.auth)).status !== 404) {
      assert.ok(Date.now() < until, 'the scheduled pass deleted the oldest version within a minute');
      await sleep(500);
    }
    for (const id of m.versionIds.slice(1)) await api(app).get(`/v1/versions/${id}`).set(tenant.auth).expect(200);
    assert.ok((await schedule.describe()).info.recentActions.length > before, 'the schedule started the pass');
    const audit = (
      await api(app).get('/v1/audit-events').query({ targetId: m.versionIds[0] }).set(tenant.auth).expect(200)
    ).body as { events: { actor: string; keyId: string | null; action: string }[] };
    assert.deepEqual(
      audit.events.filter((e) => e.action.startsWith('DELETE')).map((e) => [e.actor, e.keyId, e.action]),
      [['retention', null, 'DELETE /v1/versions/:versionId']],
      'one delete of it, by the schedule (no key)',
    );
  } finally {
    await api(app).delete('/v1/retention-policy').set(tenant.auth);
    await connection.close();
  }
});
