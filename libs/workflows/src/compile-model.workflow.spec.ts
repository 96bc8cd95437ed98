// The CompileModel workflow against a real Temporal dev server (scripts/stack.sh starts one), with fake
// activities on task queues unique to this test: fan-out, per-target outcomes, retry policy, cancellation
// and the progress query. Ends by replaying a recorded history to prove the workflow is deterministic.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { loadKilnConfig } from '@kiln/config';
import type { ArtifactManifest, BuildStatus, CompilationStatus } from '@kiln/contracts';
import {
  COMPILE_MODEL_WORKFLOW,
  type BuildTargetInput,
  type BuildTargetResult,
  type BuildUpdate,
  type CompileModelInput,
  type CompileModelResult,
  PROGRESS_QUERY,
  type PublishArtifactInput,
  WORKFLOWS_PATH,
} from '@kiln/temporal';

const config = loadKilnConfig();
const run = randomUUID().slice(0, 8);
const queues = {
  orchestrator: `test-orchestrator-${run}`,
  ok: `test-build-ok-${run}`,
  unsupported: `test-build-unsupported-${run}`,
  flaky: `test-build-flaky-${run}`,
  slow: `test-build-slow-${run}`,
  busy: `test-build-busy-${run}`,
  nobody: `test-build-nobody-${run}`,
};

const updates: BuildUpdate[] = [];
const attempts = new Map<string, number>();
let slowCancelled = false;

// What a build host hands back; publishArtifact (faked below) is what turns it into an artifact.
const built = (input: BuildTargetInput): BuildTargetResult => ({
  manifest: { cacheKey: input.cacheKey } as ArtifactManifest,
  log: `built ${input.buildId}`,
});
const published: string[] = [];

/** What each build's activities were told about a reproduction check, by build id. */
const reproduceSeen = new Map<string, { build?: boolean; publish?: boolean }>();

const buildTarget = async (input: BuildTargetInput): Promise<BuildTargetResult> => {
  const ctx = Context.current();
  attempts.set(input.targetId, ctx.info.attempt);
  reproduceSeen.set(input.buildId, { ...reproduceSeen.get(input.buildId), build: input.reproduce });
  switch (input.targetId) {
    case 'ok':
      return built(input);
    case 'unreproducible':
      // Thrown retryable here: the workflow's retry policy alone must stop it.
      throw ApplicationFailure.retryable('a second build gave other bytes', 'BUILD_NOT_REPRODUCIBLE');
    case 'unsupported':
      throw ApplicationFailure.nonRetryable('aten.frobnicate has no lowering', 'UNSUPPORTED_OP');
    case 'flaky':
      if (ctx.info.attempt < 2) throw ApplicationFailure.retryable('driver crashed', 'DRIVER_CRASHED');
      return built(input);
    case 'busy':
      // A build that keeps the queue's only slot for longer than waitForWorkerSeconds.
      for (let i = 0; i < 40; i++) {
        ctx.heartbeat();
        await ctx.sleep(200);
      }
      return built(input);
    case 'slow':
      // Heartbeats carry the cancellation to the activity, like the real compile activity.
      for (;;) {
        ctx.heartbeat();
        try {
          await ctx.sleep(200);
        } catch (err) {
          slowCancelled = true;
          throw err;
        }
      }
    default:
      throw new Error(`unexpected target ${input.targetId}`);
  }
};

const orchestratorActivities = {
  findQueuesWithoutWorkers: async (taskQueues: string[]) => taskQueues.filter((q) => q === queues.nobody),
  updateBuild: async (update: BuildUpdate) => {
    updates.push(update);
  },
  finishCompilation: async (input: { compilationId: string; cancelled: boolean }): Promise<CompilationStatus> =>
    input.cancelled ? 'cancelled' : 'partial',
  findCachedArtifact: async (input: { cacheKey: string }) => (input.cacheKey === 'cached' ? 'artifact-cached' : null),
  finishCachedBuild: async (input: { buildId: string; artifactId: string }) => {
    updates.push({ buildId: input.buildId, status: 'cached' });
  },
  publishArtifact: async (input: PublishArtifactInput) => {
    published.push(input.buildId);
    reproduceSeen.set(input.buildId, { ...reproduceSeen.get(input.buildId), publish: input.reproduce });
    if (input.result.log !== `built ${input.buildId}`) throw new Error("publishArtifact got another build's result");
    return `artifact-${input.buildId}`;
  },
};

let nativeConnection: NativeConnection;
let connection: Connection;
let client: Client;
const workers: Worker[] = [];
const running: Promise<void>[] = [];

function input(builds: { targetId: string; queue: string }[], waitForWorkerSeconds = 60): CompileModelInput {
  return {
    compilationId: randomUUID(),
    tenantId: randomUUID(),
    modelVersionId: randomUUID(),
    builds: builds.map((b) => ({ buildId: randomUUID(), targetId: b.targetId, taskQueue: b.queue, cacheKey: 'k' })),
    waitForWorkerSeconds,
    buildTimeoutSeconds: 60,
    orchestratorTaskQueue: queues.orchestrator,
  };
}

before(async () => {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  nativeConnection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
  client = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
  const common = { connection: nativeConnection, namespace: config.TEMPORAL_NAMESPACE };
  workers.push(
    await Worker.create({
      ...common,
      taskQueue: queues.orchestrator,
      workflowsPath: WORKFLOWS_PATH,
      activities: orchestratorActivities,
    }),
  );
  for (const q of [queues.ok, queues.unsupported, queues.flaky, queues.slow]) {
    workers.push(await Worker.create({ ...common, taskQueue: q, activities: { buildTarget } }));
  }
  // One slot, like a build worker with KILN_WORKER_BUILD_CONCURRENCY=1.
  workers.push(
    await Worker.create({
      ...common,
      taskQueue: queues.busy,
      activities: { buildTarget },
      maxConcurrentActivityTaskExecutions: 1,
    }),
  );
  running.push(...workers.map((w) => w.run()));
});

after(async () => {
  for (const w of workers) w.shutdown();
  await Promise.all(running);
  await nativeConnection.close();
  await connection.close();
});

describe('CompileModel workflow', () => {
  test('fans out per target; one failure does not stop the others; only transient errors retry', async () => {
    const args = input([
      { targetId: 'ok', queue: queues.ok },
      { targetId: 'unsupported', queue: queues.unsupported },
      { targetId: 'flaky', queue: queues.flaky },
    ]);
    const handle = await client.workflow.start(COMPILE_MODEL_WORKFLOW, {
      taskQueue: queues.orchestrator,
      workflowId: `compile-${args.compilationId}`,
      args: [args],
    });
    const result = (await handle.result()) as CompileModelResult;
    const byTarget = Object.fromEntries(result.builds.map((b) => [b.targetId, b]));
    assert.equal(byTarget.ok.status, 'succeeded');
    assert.equal(byTarget.flaky.status, 'succeeded');
    // A build succeeds once the orchestrator published what the host handed back, and only then.
    assert.equal(byTarget.ok.artifactId, `artifact-${args.builds[0].buildId}`);
    assert.ok(published.includes(args.builds[0].buildId) && published.includes(args.builds[2].buildId));
    assert.ok(!published.includes(args.builds[1].buildId), 'a failed build publishes nothing');
    assert.equal(byTarget.unsupported.status, 'failed');
    assert.equal(byTarget.unsupported.errorCode, 'UNSUPPORTED_OP');
    assert.equal(attempts.get('unsupported'), 1, 'a deterministic failure is not retried');
    assert.equal(attempts.get('flaky'), 2, 'a transient failure is retried');
    const failedUpdate = updates.find((u) => u.buildId === args.builds[1].buildId && u.status === 'failed');
    assert.deepEqual(
      { status: failedUpdate?.status, code: failedUpdate?.errorCode },
      { status: 'failed', code: 'UNSUPPORTED_OP' },
    );

    // Starting the same compilation again is harmless: the workflow id is the business id.
    await assert.rejects(
      client.workflow.start(COMPILE_MODEL_WORKFLOW, {
        taskQueue: queues.orchestrator,
        workflowId: `compile-${args.compilationId}`,
        args: [args],
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
      }),
      /already started|AlreadyStarted/i,
    );

    // Replaying the recorded history with the current workflow code must not hit non-determinism.
    const history = await handle.fetchHistory();
    await Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH }, history, handle.workflowId);
  });

  test('a cache key with an artifact already is answered from the cache: no build runs', async () => {
    const args = input([{ targetId: 'unsupported', queue: queues.unsupported }]);
    args.builds[0].cacheKey = 'cached';
    const before = attempts.get('unsupported');
    attempts.delete('unsupported');
    const result = (await client.workflow.execute(COMPILE_MODEL_WORKFLOW, {
      taskQueue: queues.orchestrator,
      workflowId: `compile-${args.compilationId}`,
      args: [args],
    })) as CompileModelResult;
    assert.deepEqual(
      { status: result.builds[0].status, artifactId: result.builds[0].artifactId },
      { status: 'cached', artifactId: 'artifact-cached' },
    );
    assert.equal(attempts.get('unsupported'), undefined, 'the build activity never ran');
    if (before !== undefined) attempts.set('unsupported', before);
  });

  test('reproduce reaches the build activity and the publisher; BUILD_NOT_REPRODUCIBLE is not retried', async () => {
    const plain = input([{ targetId: 'ok', queue: queues.ok }]);
    await client.workflow.execute(COMPILE_MODEL_WORKFLOW, {
      taskQueue: queues.orchestrator,
      workflowId: `compile-${plain.compilationId}`,
      args: [plain],
    });
    assert.deepEqual(reproduceSeen.get(plain.builds[0].buildId), { build: undefined, publish: undefined });

    const args = {
      ...input([
        { targetId: 'ok', queue: queues.ok },
        { targetId: 'unreproducible', queue: queues.ok },
      ]),
      reproduce: true,
    };
    const result = (await client.workflow.execute(COMPILE_MODEL_WORKFLOW, {
      taskQueue: queues.orchestrator,
      workflowId: `compile-${args.compilationId}`,
      args: [args],
    })) as CompileModelResult;
    assert.deepEqual(reproduceSeen.get(args.builds[0].buildId), { build: true, publish: true });
    const failed = result.builds.find((b) => b.targetId === 'unreproducible')!;
    assert.deepEqual(
      { status: failed.status, code: failed.errorCode },
      { status: 'failed', code: 'BUILD_NOT_REPRODUCIBLE' },
    );
    assert.equal(attempts.get('unreproducible'), 1, 'not retried');
    assert.ok(!published.includes(args.builds[1].buildId), 'nothing published');
  });

  test('a target without workers shows waiting_for_worker, then fails with NO_WORKER', async () => {
    const args = input([{ targetId: 'nobody', queue: queues.nobody }], 2);
    const handle = await client.workflow.start(COMPILE_MODEL_WORKFLOW, {
      taskQueue: queues.orchestrator,
      workflowId: `compile-${args.compilationId}`,
      args: [args],
    });
    const result = (await handle.result()) as CompileModelResult;
    const statuses = updates.filter((u) => u.buildId === args.builds[0].buildId).map((u) => u.status);
    assert.deepEqual(statuses, ['waiting_for_worker', 'failed']);
    assert.equal(result.builds[0].errorCode, 'NO_WORKER');
  });

  test('waiting behind other builds in a busy queue is not NO_WORKER', async () => {
    // Two compilations on a queue with one slot: the second waits ~8 s behind the first, longer than the 5 s
    // a build may go without a worker. The queue has a worker all along, so both succeed.
    const first = input([{ targetId: 'busy', queue: queues.busy }], 5);
    const second = input([{ targetId: 'busy', queue: queues.busy }], 5);
    const handles = [];
    for (const args of [first, second]) {
      handles.push(
        await client.workflow.start(COMPILE_MODEL_WORKFLOW, {
          taskQueue: queues.orchestrator,
          workflowId: `compile-${args.compilationId}`,
          args: [args],
        }),
      );
    }
    const results = (await Promise.all(handles.map((h) => h.result()))) as CompileModelResult[];
    assert.deepEqual(
      results.map((r) => ({ status: r.builds[0].status, code: r.builds[0].errorCode })),
      [
        { status: 'succeeded', code: null },
        { status: 'succeeded', code: null },
      ],
    );
  });

  test('cancel stops running builds and reports cancelled; progress is queryable while it runs', async () => {
    const args = input([
      { targetId: 'slow', queue: queues.slow },
      { targetId: 'ok', queue: queues.ok },
    ]);
    const handle = await client.workflow.start(COMPILE_MODEL_WORKFLOW, {
      taskQueue: queues.orchestrator,
      workflowId: `compile-${args.compilationId}`,
      args: [args],
    });
    let progress: { targetId: string; status: BuildStatus }[] = [];
    for (let i = 0; i < 100; i++) {
      progress = await handle.query<{ targetId: string; status: BuildStatus }[]>(PROGRESS_QUERY);
      if (progress.find((p) => p.targetId === 'ok')?.status === 'succeeded') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(progress.find((p) => p.targetId === 'slow')?.status, 'running');
    await handle.cancel();
    const result: unknown = await handle.result().catch((err: unknown) => err);
    assert.ok(!(result instanceof WorkflowFailedError), `workflow should end normally, got ${String(result)}`);
    const r = result as CompileModelResult;
    assert.equal(r.status, 'cancelled');
    assert.equal(r.builds.find((b) => b.targetId === 'slow')?.status, 'cancelled');
    assert.equal(r.builds.find((b) => b.targetId === 'ok')?.status, 'succeeded');
    assert.ok(slowCancelled, 'the running activity received the cancellation');
  });
});
