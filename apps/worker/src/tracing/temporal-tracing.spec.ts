// The Temporal tracing wiring against the local stack's Temporal dev server (scripts/stack.sh start): a client with
// the OpenTelemetry interceptor and a worker with temporalTracingOptions put one workflow run and its activity in
// the caller's trace; and turning tracing on or off does not break replay, either way round (the workflow
// interceptors must add nothing to a history).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { Resource } from '@opentelemetry/resources';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { Client, Connection } from '@temporalio/client';
import { OpenTelemetryWorkflowClientInterceptor } from '@temporalio/interceptors-opentelemetry';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { loadKilnConfig } from '@kiln/config';
import { COLLECT_GARBAGE_WORKFLOW, WORKFLOWS_PATH } from '@kiln/temporal';
import type { KilnTracing } from '@kiln/tracing';
import { temporalTracingOptions } from './temporal-tracing.js';

const config = loadKilnConfig();
const exporter = new InMemorySpanExporter();
const spanProcessor = new SimpleSpanProcessor(exporter);
const resource = new Resource({ 'service.name': 'kiln-worker-test' });
const provider = new NodeTracerProvider({ resource, spanProcessors: [spanProcessor] });
const tracing: KilnTracing = { serviceName: 'kiln-worker-test', url: 'http://unused', resource, spanProcessor };
const tracedQueue = `test-traced-${randomUUID().slice(0, 8)}`;
const plainQueue = `test-untraced-${randomUUID().slice(0, 8)}`;
// The scheduled GC workflow: one activity, stubbed here (no database or S3 needed).
const activities = { collectGarbage: () => Promise.resolve({ objectsDeleted: 0, blobsDeleted: 0 }) };
let nativeConnection: NativeConnection;
let connection: Connection;
let tracedClient: Client;
let plainClient: Client;
let workers: Worker[] = [];
let running: Promise<unknown>;

before(async () => {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  provider.register();
  nativeConnection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  const common = { connection: nativeConnection, namespace: config.TEMPORAL_NAMESPACE, workflowsPath: WORKFLOWS_PATH };
  workers = [
    await Worker.create({ ...common, taskQueue: tracedQueue, activities, ...temporalTracingOptions(tracing, true) }),
    await Worker.create({ ...common, taskQueue: plainQueue, activities, ...temporalTracingOptions(null, true) }),
  ];
  running = Promise.all(workers.map((w) => w.run()));
  connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
  tracedClient = new Client({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    interceptors: { workflow: [new OpenTelemetryWorkflowClientInterceptor()] },
  });
  plainClient = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
});

after(async () => {
  for (const w of workers) w.shutdown();
  await running;
  await nativeConnection.close();
  await connection.close();
  await provider.shutdown();
});

test('without tracing, the options add nothing to a worker', () => {
  assert.deepEqual(temporalTracingOptions(null, true), {});
});

test("a workflow run and its activity join the starting caller's trace", async () => {
  const caller = provider.getTracer('test').startSpan('caller');
  const handle = await trace
    .getTracer('test')
    .startActiveSpan('request', {}, trace.setSpan(ROOT_CONTEXT, caller), async (request) => {
      try {
        return await tracedClient.workflow.start(COLLECT_GARBAGE_WORKFLOW, {
          taskQueue: tracedQueue,
          workflowId: `test-traced-gc-${randomUUID()}`,
          args: [],
        });
      } finally {
        request.end();
      }
    });
  await handle.result();
  caller.end();
  await spanProcessor.forceFlush();

  const spans = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === caller.spanContext().traceId);
  const byName = new Map(spans.map((s) => [s.name, s]));
  const start = byName.get(`StartWorkflow:${COLLECT_GARBAGE_WORKFLOW}`);
  const run = byName.get(`RunWorkflow:${COLLECT_GARBAGE_WORKFLOW}`);
  const scheduled = byName.get('StartActivity:collectGarbage');
  const activity = byName.get('RunActivity:collectGarbage');
  assert.ok(start && run && scheduled && activity, [...byName.keys()].join(', '));
  assert.equal(start.parentSpanId, byName.get('request')?.spanContext().spanId);
  assert.equal(run.parentSpanId, start.spanContext().spanId);
  assert.equal(scheduled.parentSpanId, run.spanContext().spanId);
  assert.equal(activity.parentSpanId, scheduled.spanContext().spanId);
  // Spans made inside the workflow sandbox reach the process's processor through the sink, with its resource.
  assert.equal(run.resource.attributes['service.name'], 'kiln-worker-test');

  // Replay with tracing and without it: the interceptors added no command to the history.
  const history = await handle.fetchHistory();
  await Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH }, history, handle.workflowId);
  await Worker.runReplayHistory(
    { workflowsPath: WORKFLOWS_PATH, ...temporalTracingOptions(tracing, true) },
    history,
    handle.workflowId,
  );
});

test('a history recorded without tracing replays on a worker with tracing on', async () => {
  const handle = await plainClient.workflow.start(COLLECT_GARBAGE_WORKFLOW, {
    taskQueue: plainQueue,
    workflowId: `test-untraced-gc-${randomUUID()}`,
    args: [],
  });
  await handle.result();
  await Worker.runReplayHistory(
    { workflowsPath: WORKFLOWS_PATH, ...temporalTracingOptions(tracing, true) },
    await handle.fetchHistory(),
    handle.workflowId,
  );
});
