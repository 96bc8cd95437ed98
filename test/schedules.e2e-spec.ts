// Issue 15, item 5: periodic jobs on Temporal Schedules, against the compiled API and orchestrator worker, real
// PostgreSQL, SeaweedFS and Temporal. An API process alone no longer collects garbage (its timer is gone); the
// orchestrator creates the GC schedule when it starts (and updates it when started again with another interval);
// triggering the schedule collects a queued object deletion.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { Client, Connection, ScheduleNotFoundError } from '@temporalio/client';
import { DataSource } from 'typeorm';
import { loadKilnConfig } from '@kiln/config';
import { kilnDataSourceOptions } from '@kiln/database';
import {
  COLLECT_GARBAGE_WORKFLOW,
  GC_SCHEDULE_ID,
  ORCHESTRATOR_TASK_QUEUE,
  SWEEP_UPLOADS_WORKFLOW,
  UPLOAD_SWEEP_SCHEDULE_ID,
} from '@kiln/temporal';
import { api, type ApiProcess, createTenant, startApi, storage, WorkerProcess } from './support/kiln-harness.js';

const config = loadKilnConfig();
const s3 = storage();
const ds = new DataSource(kilnDataSourceOptions(config.DATABASE_URL, { logging: false }));
let connection: Connection;
let client: Client;
let app: ApiProcess | undefined;
let orchestrator: WorkerProcess | undefined;

before(async () => {
  await ds.initialize();
  connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
  client = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
  // Start from no schedules, so that those found below are the orchestrator's doing.
  for (const id of [GC_SCHEDULE_ID, UPLOAD_SWEEP_SCHEDULE_ID]) {
    await client.schedule
      .getHandle(id)
      .delete()
      .catch((err: unknown) => {
        if (!(err instanceof ScheduleNotFoundError)) throw err;
      });
  }
});

after(async () => {
  await app?.close();
  await orchestrator?.stop();
  await connection.close();
  await ds.destroy();
  s3.client.destroy();
});

/** An S3 object queued for deletion, as a delete leaves one; returns its key. */
async function queuedDeletion(): Promise<string> {
  const tenantId = randomUUID();
  const key = `tenants/${tenantId}/deleted/${randomUUID()}`;
  await s3.putBytes(key, Buffer.from('left over'));
  await ds.query(`INSERT INTO object_deletions (object_key, tenant_id) VALUES ($1, $2)`, [key, tenantId]);
  return key;
}

async function isQueued(key: string): Promise<boolean> {
  return (await ds.query<unknown[]>(`SELECT 1 FROM object_deletions WHERE object_key = $1`, [key])).length > 0;
}

/** A multipart upload started through the API, then put past its deadline (as the clock would); returns its id. */
async function expiredUpload(running: ApiProcess): Promise<string> {
  const tenant = await createTenant(running, `schedules-${randomUUID().slice(0, 8)}`);
  const model = await api(running).post('/v1/models').set(tenant.auth).send({ name: 'swept' }).expect(201);
  const res = await api(running)
    .post(`/v1/models/${(model.body as { id: string }).id}/uploads`)
    .set(tenant.auth)
    .send({ filename: 'swept.pt2', sizeBytes: 6 * 1024 * 1024 })
    .expect(201);
  const uploadId = (res.body as { uploadId: string }).uploadId;
  await ds.query(`UPDATE uploads SET expires_at = now() - interval '1 minute' WHERE id = $1`, [uploadId]);
  return uploadId;
}

async function uploadStatus(uploadId: string): Promise<string> {
  const rows = await ds.query<{ status: string }[]>(`SELECT status FROM uploads WHERE id = $1`, [uploadId]);
  return rows[0].status;
}

async function until(done: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`${what}: not after 60 s`);
    await sleep(250);
  }
}

test('an API process alone sweeps and collects nothing on a timer, and creates no schedule', async () => {
  const key = await queuedDeletion();
  // With the old timers these intervals swept and collected within a second or so.
  app = await startApi({ KILN_GC_INTERVAL_S: '1', KILN_UPLOAD_SWEEP_INTERVAL_S: '1' });
  const uploadId = await expiredUpload(app);
  // A negative check: several of the intervals the API was given pass, and nothing is collected.
  await sleep(5_000);
  assert.equal(await isQueued(key), true, 'the API collected on its own');
  assert.notEqual(await s3.size(key), null);
  assert.equal(await uploadStatus(uploadId), 'uploading', 'the API swept uploads on its own');
  await assert.rejects(client.schedule.getHandle(GC_SCHEDULE_ID).describe(), ScheduleNotFoundError);
  await assert.rejects(client.schedule.getHandle(UPLOAD_SWEEP_SCHEDULE_ID).describe(), ScheduleNotFoundError);
  await ds.query(`DELETE FROM object_deletions WHERE object_key = $1`, [key]);
  await s3.delete(key);
});

test('the orchestrator creates the upload sweep schedule; triggering it expires an upload past its deadline', async () => {
  orchestrator = new WorkerProcess({ KILN_WORKER_ROLES: 'orchestrator', KILN_UPLOAD_SWEEP_INTERVAL_S: '3600' });
  await orchestrator.start();
  const handle = client.schedule.getHandle(UPLOAD_SWEEP_SCHEDULE_ID);
  const described = await handle.describe();
  assert.deepEqual(
    described.spec.intervals?.map((i) => i.every),
    [3_600_000],
  );
  assert.equal(described.policies.overlap, 'SKIP');
  assert.equal(described.action.type, 'startWorkflow');
  assert.equal(described.action.workflowType, SWEEP_UPLOADS_WORKFLOW);
  assert.equal(described.action.taskQueue, ORCHESTRATOR_TASK_QUEUE);

  const uploadId = await expiredUpload(app!);
  await handle.trigger();
  await until(async () => (await uploadStatus(uploadId)) === 'expired', 'the triggered sweep');
  await app!.close();
  app = undefined;
  await orchestrator.stop();
  orchestrator = undefined;
});

test('the orchestrator creates the GC schedule; triggering it collects a queued deletion', async () => {
  // An hour: the schedule does not fire by itself during the test; only the trigger runs it.
  orchestrator = new WorkerProcess({ KILN_WORKER_ROLES: 'orchestrator', KILN_GC_INTERVAL_S: '3600' });
  await orchestrator.start();

  const handle = client.schedule.getHandle(GC_SCHEDULE_ID);
  const described = await handle.describe();
  assert.deepEqual(
    described.spec.intervals?.map((i) => i.every),
    [3_600_000],
  );
  assert.equal(described.policies.overlap, 'SKIP');
  assert.equal(described.action.type, 'startWorkflow');
  assert.equal(described.action.workflowType, COLLECT_GARBAGE_WORKFLOW);
  assert.equal(described.action.taskQueue, ORCHESTRATOR_TASK_QUEUE);

  const key = await queuedDeletion();
  await handle.trigger();
  await until(async () => !(await isQueued(key)), 'the triggered collection');
  assert.equal(await s3.size(key), null);
  const after = await handle.describe();
  assert.ok(after.info.recentActions.length >= 1, 'the run is recorded under the schedule');

  // Started again with another interval (a restart, a second orchestrator): the schedule is updated, not duplicated.
  await orchestrator.stop();
  orchestrator = new WorkerProcess({ KILN_WORKER_ROLES: 'orchestrator', KILN_GC_INTERVAL_S: '1800' });
  await orchestrator.start();
  assert.deepEqual(
    (await handle.describe()).spec.intervals?.map((i) => i.every),
    [1_800_000],
  );
});
