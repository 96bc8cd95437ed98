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
  compileWorkflowId,
  DROP_EXPIRED_TELEMETRY_WORKFLOW,
  GC_SCHEDULE_ID,
  ORCHESTRATOR_TASK_QUEUE,
  PUBLISH_QUEUE_BACKLOG_WORKFLOW,
  QUEUE_BACKLOG_SCHEDULE_ID,
  RECONCILE_COMPILATIONS_WORKFLOW,
  RECONCILE_SCHEDULE_ID,
  SWEEP_UPLOADS_WORKFLOW,
  TELEMETRY_PARTITIONS_SCHEDULE_ID,
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
const ALL_SCHEDULES = [
  GC_SCHEDULE_ID,
  UPLOAD_SWEEP_SCHEDULE_ID,
  RECONCILE_SCHEDULE_ID,
  TELEMETRY_PARTITIONS_SCHEDULE_ID,
];

before(async () => {
  await ds.initialize();
  connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
  client = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
  // Start from no schedules, so that those found below are the orchestrator's doing.
  for (const id of ALL_SCHEDULES) {
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

/**
 * A compilation recorded as pending a minute ago whose workflow was never started, as when Temporal was down at
 * the request or the API replica died between the insert and the start; returns its id.
 */
async function strandedCompilation(): Promise<string> {
  const tenantId = randomUUID();
  const modelId = randomUUID();
  const versionId = randomUUID();
  const id = randomUUID();
  await ds.query(`INSERT INTO tenants (id, name) VALUES ($1, $2)`, [tenantId, `stranded-${id.slice(0, 8)}`]);
  await ds.query(`INSERT INTO models (id, tenant_id, name) VALUES ($1, $2, 'm')`, [modelId, tenantId]);
  await ds.query(
    `INSERT INTO model_versions (id, tenant_id, model_id, number, object_key, size_bytes, file_sha256, stored_sha256,
       stored_size_bytes, content_hash, summary) VALUES ($1, $2, $3, 1, 'k', 1, $4, $4, 1, $4, '{}')`,
    [versionId, tenantId, modelId, 'a'.repeat(64)],
  );
  // A GPU target no worker of the suite polls: the started workflow waits for a worker instead of building.
  await ds.query(
    `INSERT INTO compilations (id, tenant_id, model_version_id, targets, status, workflow_id, created_at)
     VALUES ($1, $2, $3, $4, 'pending', $5, now() - interval '1 minute')`,
    [id, tenantId, versionId, ['linux-x86_64-cuda-sm90'], compileWorkflowId(id)],
  );
  await ds.query(
    `INSERT INTO builds (tenant_id, compilation_id, target_id, cache_key, status)
     VALUES ($1, $2, 'linux-x86_64-cuda-sm90', $3, 'waiting_for_worker')`,
    [tenantId, id, randomUUID()],
  );
  return id;
}

async function compilationStatus(id: string): Promise<string> {
  const rows = await ds.query<{ status: string }[]>(`SELECT status FROM compilations WHERE id = $1`, [id]);
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
  const stranded = await strandedCompilation();
  // With the old timers these intervals swept and collected within a second or so (the reconcile every 15 s).
  app = await startApi({ KILN_GC_INTERVAL_S: '1', KILN_UPLOAD_SWEEP_INTERVAL_S: '1', KILN_RECONCILE_INTERVAL_S: '1' });
  const uploadId = await expiredUpload(app);
  // A negative check: several of the intervals the API was given pass, and nothing is collected.
  await sleep(16_000);
  assert.equal(await isQueued(key), true, 'the API collected on its own');
  assert.equal(await compilationStatus(stranded), 'pending', 'the API reconciled on its own');
  assert.notEqual(await s3.size(key), null);
  assert.equal(await uploadStatus(uploadId), 'uploading', 'the API swept uploads on its own');
  for (const id of ALL_SCHEDULES) {
    await assert.rejects(client.schedule.getHandle(id).describe(), ScheduleNotFoundError, id);
  }
  await ds.query(`DELETE FROM compilations WHERE id = $1`, [stranded]);
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

test('the orchestrator reconciles on its schedule: a stranded compilation starts, its waiting build shows in the queue backlog', async () => {
  await orchestrator?.stop();
  orchestrator = new WorkerProcess({ KILN_WORKER_ROLES: 'orchestrator', KILN_RECONCILE_INTERVAL_S: '2' });
  await orchestrator.start();
  const reconcile = await client.schedule.getHandle(RECONCILE_SCHEDULE_ID).describe();
  assert.deepEqual(
    reconcile.spec.intervals?.map((i) => i.every),
    [2_000],
  );
  assert.equal(reconcile.action.type, 'startWorkflow');
  assert.equal(reconcile.action.workflowType, RECONCILE_COMPILATIONS_WORKFLOW);
  const telemetry = await client.schedule.getHandle(TELEMETRY_PARTITIONS_SCHEDULE_ID).describe();
  assert.equal(telemetry.action.type, 'startWorkflow');
  assert.equal(telemetry.action.workflowType, DROP_EXPIRED_TELEMETRY_WORKFLOW);
  assert.deepEqual(
    telemetry.spec.intervals?.map((i) => i.every),
    [config.KILN_TELEMETRY_SWEEP_INTERVAL_S * 1000],
  );

  // No trigger: the schedule fires by itself within a few intervals.
  const stranded = await strandedCompilation();
  await until(async () => (await compilationStatus(stranded)) !== 'pending', 'the scheduled reconcile');
  const workflow = client.workflow.getHandle(compileWorkflowId(stranded));
  assert.equal((await workflow.describe()).status.name, 'RUNNING');

  // Its build waits on a GPU queue nobody polls: the backlog schedule measures it, the orchestrator's /metrics shows it.
  const backlog = client.schedule.getHandle(QUEUE_BACKLOG_SCHEDULE_ID);
  assert.equal((await backlog.describe()).action.workflowType, PUBLISH_QUEUE_BACKLOG_WORKFLOW);
  const gpuQueue = /^kiln_build_queue_backlog\{queue="build\.linux-x86_64-cuda-sm90"\} ([0-9]+)$/m;
  await until(async () => {
    await backlog.trigger();
    await sleep(1_000);
    const text = await (await fetch(orchestrator!.metricsUrl)).text();
    return Number(gpuQueue.exec(text)?.[1] ?? 0) >= 1;
  }, 'the backlog of the GPU queue in /metrics');
  await workflow.terminate('test cleanup');
  await orchestrator.stop();
  orchestrator = undefined;
});
