// The scheduled jobs' workflows and their activities against the real Temporal dev server, PostgreSQL and S3 of the
// local stack (scripts/stack.sh start), each run on a task queue of this test's own: a queued object deletion is
// collected; a compilation whose workflow start failed is started; an expired month of device reports is dropped.
// Each run's recorded history is replayed (determinism).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { DataSource } from 'typeorm';
import type { PutMetricDataCommandInput } from '@aws-sdk/client-cloudwatch';
import { KilnConfig, loadKilnConfig } from '@kiln/config';
import { BlobLedger, CompilationStarter, objectStorageFor, TelemetryPartitions, UploadSweeper } from '@kiln/core';
import { TARGETS, taskQueueFor } from '@kiln/targets';
import { BuildEntity, CompilationEntity, kilnDataSourceOptions, ModelEntity, TenantEntity } from '@kiln/database';
import {
  COLLECT_GARBAGE_WORKFLOW,
  COMPILE_MODEL_WORKFLOW,
  compileWorkflowId,
  DROP_EXPIRED_TELEMETRY_WORKFLOW,
  PUBLISH_QUEUE_BACKLOG_WORKFLOW,
  RECONCILE_COMPILATIONS_WORKFLOW,
  WORKFLOWS_PATH,
} from '@kiln/temporal';
import { WorkerMetrics } from '../metrics/worker-metrics.js';
import { QueueBacklogPublisher } from './queue-backlog.js';
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
const metrics = new WorkerMetrics();
let backlog: QueueBacklogPublisher;
/** What the publisher sent to "CloudWatch". */
const cloudwatch: PutMetricDataCommandInput[] = [];

before(async () => {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  await ds.initialize();
  await ds.runMigrations();
  await storage.ensureBucket();
  connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
  client = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
  backlog = new QueueBacklogPublisher(
    client,
    Object.assign(new KilnConfig(), { KILN_CLOUDWATCH_NAMESPACE: 'KilnTest' }),
    metrics,
  );
  backlog.usePutMetricData((command) => {
    cloudwatch.push(command.input);
    return Promise.resolve({});
  });
  const activities = new ScheduledActivitiesService(
    new BlobLedger(ds, storage),
    new UploadSweeper(ds, storage),
    new CompilationStarter(ds, client, config),
    new TelemetryPartitions(ds),
    config,
    backlog,
  );
  nativeConnection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  worker = await Worker.create({
    connection: nativeConnection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: queue,
    workflowsPath: WORKFLOWS_PATH,
    activities: {
      collectGarbage: () => activities.collectGarbage(),
      reconcileCompilations: () => activities.reconcileCompilations(),
      dropExpiredTelemetry: () => activities.dropExpiredTelemetry(),
      publishQueueBacklog: () => activities.publishQueueBacklog(),
    },
  });
  running = worker.run();
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

/** Runs one scheduled workflow on this test's queue, replays its history, and returns its result. */
async function runOnce<T>(workflowType: string): Promise<T> {
  const handle = await client.workflow.start(workflowType, {
    taskQueue: queue,
    workflowId: `test-scheduled-${randomUUID()}`,
    args: [],
  });
  const result = (await handle.result()) as T;
  await Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH }, await handle.fetchHistory(), handle.workflowId);
  return result;
}

test('the reconcile workflow starts a compilation whose start failed, and leaves a fresh one to its request', async () => {
  const tenant = await ds.getRepository(TenantEntity).save({ name: `sched-${randomUUID().slice(0, 8)}` });
  const model = await ds.getRepository(ModelEntity).save({ tenantId: tenant.id, name: 'm' });
  const versionId = randomUUID();
  await ds.query(
    `INSERT INTO model_versions (id, tenant_id, model_id, number, object_key, size_bytes, file_sha256, stored_sha256,
       stored_size_bytes, content_hash, summary) VALUES ($1, $2, $3, 1, 'k', 1, $4, $4, 1, $4, '{}')`,
    [versionId, tenant.id, model.id, 'a'.repeat(64)],
  );
  /** A pending compilation with one queued build, as the API writes it before starting the workflow. */
  const pending = async (ageSeconds: number): Promise<string> => {
    const id = randomUUID();
    await ds.getRepository(CompilationEntity).insert({
      id,
      tenantId: tenant.id,
      modelVersionId: versionId,
      targets: ['linux-x86_64-v2'],
      status: 'pending',
      workflowId: compileWorkflowId(id),
    });
    await ds.query(`UPDATE compilations SET created_at = now() - make_interval(secs => $2) WHERE id = $1`, [
      id,
      ageSeconds,
    ]);
    await ds.getRepository(BuildEntity).insert({
      tenantId: tenant.id,
      compilationId: id,
      targetId: 'linux-x86_64-v2',
      cacheKey: randomUUID(),
      status: 'queued',
    });
    return id;
  };
  const stale = await pending(60);
  const fresh = await pending(0);

  const started = await runOnce<number>(RECONCILE_COMPILATIONS_WORKFLOW);

  assert.ok(started >= 1, `started ${started}`);
  const status = async (id: string) => (await ds.getRepository(CompilationEntity).findOneByOrFail({ id })).status;
  assert.equal(await status(stale), 'running');
  assert.equal(await status(fresh), 'pending', 'younger than 5 s: its own request may still be starting it');
  // Its CompileModel workflow exists in Temporal (no orchestrator polls here: it is ended, not run).
  const workflow = client.workflow.getHandle(compileWorkflowId(stale));
  assert.equal((await workflow.describe()).type, COMPILE_MODEL_WORKFLOW);
  await workflow.terminate('test cleanup');
  await assert.rejects(client.workflow.getHandle(compileWorkflowId(fresh)).describe(), WorkflowNotFoundError);
  await ds.query(`DELETE FROM compilations WHERE id = ANY($1)`, [[stale, fresh]]);
});

test('the telemetry workflow drops a month of device reports past the retention, and keeps this month', async () => {
  const partitions = new TelemetryPartitions(ds);
  const old = '2001-01';
  const now = new Date().toISOString().slice(0, 7);
  await partitions.ensure([old, now]);
  const exists = async (month: string) =>
    (await ds.query<unknown[]>(`SELECT 1 FROM pg_class WHERE relname = $1`, [TelemetryPartitions.partitionName(month)]))
      .length > 0;
  assert.ok(await exists(old));

  const dropped = await runOnce<string[]>(DROP_EXPIRED_TELEMETRY_WORKFLOW);

  assert.ok(dropped.includes(TelemetryPartitions.partitionName(old)), JSON.stringify(dropped));
  assert.equal(await exists(old), false);
  assert.equal(await exists(now), true);
});

test('the backlog workflow measures every build queue and publishes it as a gauge and to CloudWatch', async () => {
  const result = await runOnce<Record<string, number>>(PUBLISH_QUEUE_BACKLOG_WORKFLOW);

  const queues = [...new Set(TARGETS.map((t) => taskQueueFor(t.id)))].sort();
  assert.deepEqual(Object.keys(result).sort(), queues);
  assert.ok(
    Object.values(result).every((n) => Number.isInteger(n) && n >= 0),
    JSON.stringify(result),
  );
  const gauge = await metrics.queueBacklog.get();
  assert.deepEqual(Object.fromEntries(gauge.values.map((v) => [v.labels.queue, v.value])), result);
  // One datum per queue, zeros included (the scale-in alarm needs them), in the configured namespace.
  assert.equal(cloudwatch.length, 1);
  assert.equal(cloudwatch[0].Namespace, 'KilnTest');
  assert.deepEqual(
    Object.fromEntries(
      (cloudwatch[0].MetricData ?? []).map((d) => {
        assert.equal(d.MetricName, 'BuildQueueBacklog');
        assert.equal(d.Unit, 'Count');
        assert.equal(d.Dimensions?.[0].Name, 'Queue');
        return [d.Dimensions?.[0].Value, d.Value];
      }),
    ),
    result,
  );
});
