// The GC schedule's workflow and its activity against the real Temporal dev server, PostgreSQL and S3 of the local
// stack (scripts/stack.sh start): a queued object deletion is collected by one run, on a task queue of this test's
// own; then the run's recorded history is replayed (determinism).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { DataSource } from 'typeorm';
import { loadKilnConfig } from '@kiln/config';
import { BlobLedger, objectStorageFor, UploadSweeper } from '@kiln/core';
import { kilnDataSourceOptions } from '@kiln/database';
import { COLLECT_GARBAGE_WORKFLOW, WORKFLOWS_PATH } from '@kiln/temporal';
import { ScheduledActivitiesService } from './scheduled.activities.js';

const config = loadKilnConfig();
const storage = objectStorageFor(config);
const ds = new DataSource(kilnDataSourceOptions(config.DATABASE_URL, { logging: false }));
const queue = `test-scheduled-${randomUUID().slice(0, 8)}`;
let connection: Connection;
let client: Client;
let nativeConnection: NativeConnection;
let worker: Worker;
let running: Promise<void>;

before(async () => {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  await ds.initialize();
  await ds.runMigrations();
  await storage.ensureBucket();
  const activities = new ScheduledActivitiesService(new BlobLedger(ds, storage), new UploadSweeper(ds, storage));
  nativeConnection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  worker = await Worker.create({
    connection: nativeConnection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: queue,
    workflowsPath: WORKFLOWS_PATH,
    activities: { collectGarbage: () => activities.collectGarbage() },
  });
  running = worker.run();
  connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
  client = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
});

after(async () => {
  worker.shutdown();
  await running;
  await nativeConnection.close();
  await connection.close();
  await ds.destroy();
  storage.client.destroy();
});

test('one run of the GC workflow deletes a queued S3 object and its queue row', async () => {
  const tenantId = randomUUID();
  const key = `tenants/${tenantId}/deleted/${randomUUID()}`;
  await storage.putBytes(key, Buffer.from('left over'));
  await ds.query(`INSERT INTO object_deletions (object_key, tenant_id) VALUES ($1, $2)`, [key, tenantId]);

  const handle = await client.workflow.start(COLLECT_GARBAGE_WORKFLOW, {
    taskQueue: queue,
    workflowId: `test-gc-${randomUUID()}`,
    args: [],
  });
  const result = (await handle.result()) as { objectsDeleted: number; blobsDeleted: number };

  // Other tests' leftovers may be collected in the same pass: at least this one was.
  assert.ok(result.objectsDeleted >= 1, JSON.stringify(result));
  assert.equal(await storage.size(key), null);
  const rows = await ds.query<unknown[]>(`SELECT 1 FROM object_deletions WHERE object_key = $1`, [key]);
  assert.equal(rows.length, 0);
  await Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH }, await handle.fetchHistory(), handle.workflowId);
});
