// queuesWithWorkers() against a real Temporal dev server of its own, started with a short poller memory
// (matching.PollerHistoryTTL=3s instead of minutes) so that what happens to a busy worker shows in seconds: a
// worker whose only slot is taken stops polling and drops out of DescribeTaskQueue's pollers, yet its queue has
// a worker. That is what NO_WORKER must not mistake for "nobody serves this target".
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { Context } from '@temporalio/activity';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { loadKilnConfig } from '@kiln/config';
import {
  buildActivityId,
  COMPILE_MODEL_WORKFLOW,
  type CompileModelInput,
  compileWorkflowId,
  queuesWithPollers,
  queuesWithWorkers,
  WORKFLOWS_PATH,
} from './index.js';

const config = loadKilnConfig();
const run = randomUUID().slice(0, 8);
const queues = { orchestrator: `qw-orch-${run}`, busy: `qw-busy-${run}`, nobody: `qw-nobody-${run}` };
let server: ChildProcess;
let nativeConnection: NativeConnection;
let connection: Connection;
let client: Client;
const workers: Worker[] = [];
const running: Promise<void>[] = [];
let releaseBuild: () => void = () => undefined;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as { port: number };
  await new Promise((resolve) => s.close(resolve));
  return port;
}

before(async () => {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const port = await freePort();
  const temporal = path.join(path.dirname(config.resolvePath(config.KILN_PYTHON)), 'temporal');
  server = spawn(
    temporal,
    [
      'server',
      'start-dev',
      '--headless',
      '--ip',
      '127.0.0.1',
      '--port',
      String(port),
      '--ui-port',
      String(await freePort()),
      '--log-level',
      'error',
      '--dynamic-config-value',
      'matching.PollerHistoryTTL="3s"',
    ],
    { stdio: 'ignore' },
  );
  const address = `127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      connection = await Connection.connect({ address, connectTimeout: 1000 });
      await connection.workflowService.getSystemInfo({});
      break;
    } catch (err) {
      if (i > 60) throw err;
      await sleep(500);
    }
  }
  nativeConnection = await NativeConnection.connect({ address });
  client = new Client({ connection, namespace: 'default' });
  workers.push(
    await Worker.create({
      connection: nativeConnection,
      taskQueue: queues.orchestrator,
      workflowsPath: WORKFLOWS_PATH,
      activities: {
        findQueuesWithoutWorkers: async () => [],
        updateBuild: async () => undefined,
        finishCompilation: async () => 'succeeded',
        findCachedArtifact: async () => null,
        publishArtifact: async () => 'a',
      },
    }),
    // One slot, taken by a build that runs (heartbeating) until the test lets it finish.
    await Worker.create({
      connection: nativeConnection,
      taskQueue: queues.busy,
      maxConcurrentActivityTaskExecutions: 1,
      activities: {
        buildTarget: async () => {
          const ctx = Context.current();
          const done = new Promise<void>((resolve) => (releaseBuild = resolve));
          const beat = setInterval(() => ctx.heartbeat(), 1000);
          await done;
          clearInterval(beat);
          return { manifest: {}, log: '' };
        },
      },
    }),
  );
  running.push(...workers.map((w) => w.run()));
});

after(async () => {
  releaseBuild();
  for (const w of workers) w.shutdown();
  await Promise.allSettled(running);
  await nativeConnection?.close();
  await connection?.close();
  server?.kill('SIGTERM');
});

test('a queue whose only worker is busy has a worker; a queue nobody polls has none', async () => {
  const compilationId = randomUUID();
  const buildId = randomUUID();
  const input: CompileModelInput = {
    compilationId,
    tenantId: randomUUID(),
    modelVersionId: randomUUID(),
    builds: [{ buildId, targetId: 'busy', taskQueue: queues.busy, cacheKey: 'k' }],
    waitForWorkerSeconds: 600,
    buildTimeoutSeconds: 600,
    orchestratorTaskQueue: queues.orchestrator,
  };
  const handle = await client.workflow.start(COMPILE_MODEL_WORKFLOW, {
    taskQueue: queues.orchestrator,
    workflowId: compileWorkflowId(compilationId),
    args: [input],
  });
  const busy = {
    taskQueue: queues.busy,
    workflowId: compileWorkflowId(compilationId),
    activityId: buildActivityId(buildId),
  };
  // A build "running" on the nobody queue per the database, whose activity no worker ever started.
  const stale = { taskQueue: queues.nobody, workflowId: compileWorkflowId(compilationId), activityId: 'build-none' };

  // Wait until the busy worker has dropped out of the pollers (its slot is taken, so it polls nobody).
  let polled = true;
  for (let i = 0; i < 60 && polled; i++) {
    await sleep(1000);
    polled = (await queuesWithPollers(client, [queues.busy])).has(queues.busy);
  }
  assert.equal(polled, false, 'the busy worker still shows as a poller: the premise of this test does not hold');

  const served = await queuesWithWorkers(client, [queues.busy, queues.nobody], [busy, stale]);
  assert.deepEqual([...served], [queues.busy]);
  // Without the running build, the busy queue would look as empty as the nobody queue.
  assert.deepEqual([...(await queuesWithWorkers(client, [queues.busy, queues.nobody], []))], []);

  releaseBuild();
  await handle.result();
});
