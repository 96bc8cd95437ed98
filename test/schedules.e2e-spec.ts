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
import { COLLECT_GARBAGE_WORKFLOW, GC_SCHEDULE_ID, ORCHESTRATOR_TASK_QUEUE } from '@kiln/temporal';
import { type ApiProcess, startApi, storage, WorkerProcess } from './support/kiln-harness.js';

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
  // Start from no schedule, so that the one found below is the orchestrator's doing.
  await client.schedule
    .getHandle(GC_SCHEDULE_ID)
    .delete()
    .catch((err: unknown) => {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
    });
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

test('an API process alone collects nothing on a timer, and creates no schedule', async () => {
  const key = await queuedDeletion();
  // With the old timer this interval collected the row within a second or so.
  app = await startApi({ KILN_GC_INTERVAL_S: '1' });
  // A negative check: several of the intervals the API was given pass, and nothing is collected.
  await sleep(5_000);
  assert.equal(await isQueued(key), true, 'the API collected on its own');
  assert.notEqual(await s3.size(key), null);
  await assert.rejects(client.schedule.getHandle(GC_SCHEDULE_ID).describe(), ScheduleNotFoundError);
  await app.close();
  app = undefined;
  await ds.query(`DELETE FROM object_deletions WHERE object_key = $1`, [key]);
  await s3.delete(key);
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
  const deadline = Date.now() + 60_000;
  while ((await isQueued(key)) && Date.now() < deadline) await sleep(250);
  assert.equal(await isQueued(key), false, 'the triggered run did not collect the queued deletion');
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
