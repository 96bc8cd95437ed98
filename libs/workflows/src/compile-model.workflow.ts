import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  proxyActivities,
  defineQuery,
  defineUpdate,
  setHandler,
  TimeoutFailure,
} from '@temporalio/workflow';
import { ErrorCode, isErrorCode, NON_RETRYABLE_BUILD_ERRORS } from '@kiln/contracts';
import type {
  BuildActivities,
  BuildModelGrant,
  BuildModelRequest,
  BuildProgress,
  BuildUploadsGrant,
  BuildUploadsRequest,
  CompileModelInput,
  CompileModelResult,
  OrchestratorActivities,
  PlannedBuild,
} from './compile-model.contracts.js';
import {
  BUILD_MODEL_UPDATE,
  BUILD_UPLOADS_UPDATE,
  buildActivityId,
  ORCHESTRATOR_TASK_QUEUE,
  PROGRESS_QUERY,
} from './compile-model.contracts.js';

export const progressQuery = defineQuery<BuildProgress[]>(PROGRESS_QUERY);
export const buildModelUpdate = defineUpdate<BuildModelGrant, [BuildModelRequest]>(BUILD_MODEL_UPDATE);
export const buildUploadsUpdate = defineUpdate<BuildUploadsGrant, [BuildUploadsRequest]>(BUILD_UPLOADS_UPDATE);

function orchestratorActivities(taskQueue: string): OrchestratorActivities {
  return proxyActivities<OrchestratorActivities>({
    taskQueue,
    startToCloseTimeout: '30 seconds',
    retry: { initialInterval: '1 second', maximumInterval: '30 seconds', backoffCoefficient: 2 },
  });
}

/** publishArtifact re-reads every part from S3: minutes for a multi-GB model, so it heartbeats and has room. */
function publisher(input: CompileModelInput): Pick<OrchestratorActivities, 'publishArtifact'> {
  return proxyActivities<OrchestratorActivities>({
    taskQueue: input.orchestratorTaskQueue ?? ORCHESTRATOR_TASK_QUEUE,
    startToCloseTimeout: '1 hour',
    heartbeatTimeout: '1 minute',
    retry: {
      initialInterval: '2 seconds',
      maximumInterval: '1 minute',
      maximumAttempts: 5,
      nonRetryableErrorTypes: [ErrorCode.ARTIFACT_REJECTED],
    },
  });
}

/**
 * Compiles one model version for several targets: one build per target, each on its target's task queue,
 * all in parallel. A failing target never stops the others; each ends succeeded, cached, failed (with an
 * error code) or cancelled. Transient failures retry (the driver crashed, the worker died: its heartbeat
 * stops and the build moves to another attempt); deterministic ones (unsupported op, numeric mismatch) don't.
 */
export async function compileModelWorkflow(input: CompileModelInput): Promise<CompileModelResult> {
  const progress = new Map<string, BuildProgress>(
    input.builds.map((b) => [
      b.targetId,
      { targetId: b.targetId, status: 'queued', attempt: 0, errorCode: null, artifactId: null },
    ]),
  );
  setHandler(progressQuery, () => [...progress.values()]);
  const orchestrator = orchestratorActivities(input.orchestratorTaskQueue ?? ORCHESTRATOR_TASK_QUEUE);

  // A build host asks its workflow for what it may touch, and only while its build runs: the model to compile
  // (a presigned GET) and, once the driver succeeded, presigned PUTs for the parts into the build's staging prefix.
  const whileRunning = (buildId: string): void => {
    const build = input.builds.find((b) => b.buildId === buildId);
    if (!build || progress.get(build.targetId)?.status !== 'running') {
      throw new Error(`build ${buildId} is not running in this compilation`);
    }
  };
  // The inductor cache each build was last offered (its attempt's grant): publishArtifact checks that the manifest
  // restored that one and no other.
  const offeredCaches = new Map<string, string | null>();
  setHandler(
    buildModelUpdate,
    async (req: BuildModelRequest) => {
      const grant = await orchestrator.grantModelDownload({
        tenantId: input.tenantId,
        modelVersionId: input.modelVersionId,
        targetId: input.builds.find((b) => b.buildId === req.buildId)?.targetId,
      });
      offeredCaches.set(req.buildId, grant.inductorCache?.sha256 ?? null);
      return grant;
    },
    { validator: (req: BuildModelRequest) => whileRunning(req.buildId) },
  );
  setHandler(
    buildUploadsUpdate,
    (req: BuildUploadsRequest) =>
      orchestrator.grantPartUploads({
        tenantId: input.tenantId,
        buildId: req.buildId,
        parts: req.parts,
        ...(req.inductorCache ? { inductorCache: req.inductorCache } : {}),
      }),
    { validator: (req: BuildUploadsRequest) => whileRunning(req.buildId) },
  );

  let cancelled = false;
  try {
    const idleQueues = await orchestrator.findQueuesWithoutWorkers(input.builds.map((b) => b.taskQueue));
    const outcomes = await Promise.allSettled(
      input.builds.map((b) =>
        runBuild(input, orchestrator, b, idleQueues.includes(b.taskQueue), progress, offeredCaches),
      ),
    );
    cancelled = outcomes.some((o) => o.status === 'rejected' && isCancellation(o.reason));
    const unexpected = outcomes.find((o) => o.status === 'rejected' && !isCancellation(o.reason));
    if (unexpected && unexpected.status === 'rejected') throw unexpected.reason;
  } catch (err) {
    if (!isCancellation(err)) throw err;
    cancelled = true;
  }
  const status = await CancellationScope.nonCancellable(() =>
    orchestrator.finishCompilation({ compilationId: input.compilationId, cancelled }),
  );
  return { compilationId: input.compilationId, status, builds: [...progress.values()] };
}

async function runBuild(
  input: CompileModelInput,
  orchestrator: OrchestratorActivities,
  build: PlannedBuild,
  noWorkerYet: boolean,
  progress: Map<string, BuildProgress>,
  offeredCaches: Map<string, string | null>,
): Promise<void> {
  const state = progress.get(build.targetId)!;
  if (noWorkerYet) {
    state.status = 'waiting_for_worker';
    await orchestrator.updateBuild({ buildId: build.buildId, status: 'waiting_for_worker', fromStatuses: ['queued'] });
  } else {
    // The API found no worker when the compilation was created, and one has come since.
    await orchestrator.updateBuild({ buildId: build.buildId, status: 'queued', fromStatuses: ['waiting_for_worker'] });
  }
  const cachedArtifact = await orchestrator.findCachedArtifact({ tenantId: input.tenantId, cacheKey: build.cacheKey });
  if (cachedArtifact) {
    await orchestrator.finishCachedBuild({ buildId: build.buildId, artifactId: cachedArtifact });
    state.status = 'cached';
    state.artifactId = cachedArtifact;
    return;
  }
  const builder = proxyActivities<BuildActivities>({
    taskQueue: build.taskQueue,
    activityId: buildActivityId(build.buildId),
    // Tenants share build queues: with a fairness key per tenant, the server hands out a busy queue's tasks
    // round-robin between tenants instead of first-come-first-served (needs matching.enableFairness on the
    // server; docs/security.md, "Fair use"). No scheduleToStartTimeout: waiting behind other builds is not
    // "no worker"; watchForWorker() decides that from who polls the queue.
    priority: { fairnessKey: input.tenantId },
    startToCloseTimeout: `${input.buildTimeoutSeconds + 300} seconds`,
    // The activity heartbeats every few seconds while the compiler runs; silence means the worker died.
    heartbeatTimeout: '45 seconds',
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: {
      initialInterval: '5 seconds',
      backoffCoefficient: 2,
      maximumInterval: '2 minutes',
      maximumAttempts: 4,
      nonRetryableErrorTypes: [...NON_RETRYABLE_BUILD_ERRORS],
    },
  });
  const scope = new CancellationScope();
  const watch = { settled: false, noWorker: false };
  try {
    state.status = 'running';
    const running = scope.run(() =>
      builder.buildTarget({
        tenantId: input.tenantId,
        compilationId: input.compilationId,
        buildId: build.buildId,
        modelVersionId: input.modelVersionId,
        targetId: build.targetId,
        cacheKey: build.cacheKey,
        ...(input.reproduce ? { reproduce: true } : {}),
      }),
    );
    const watchdog = watchForWorker(input, orchestrator, build, noWorkerYet, watch, scope);
    let result: Awaited<typeof running>;
    try {
      result = await running;
    } finally {
      watch.settled = true;
      await watchdog;
    }
    // The trusted half: re-hash, store, sign, record (orchestrator queue; the host holds no key nor S3 credentials).
    state.artifactId = await publisher(input).publishArtifact({
      tenantId: input.tenantId,
      buildId: build.buildId,
      modelVersionId: input.modelVersionId,
      targetId: build.targetId,
      cacheKey: build.cacheKey,
      ...(input.reproduce ? { reproduce: true } : {}),
      offeredInductorCache: offeredCaches.get(build.buildId) ?? null,
      result,
    });
    state.status = 'succeeded';
  } catch (err) {
    if (isCancellation(err) && !watch.noWorker) {
      state.status = 'cancelled';
      await CancellationScope.nonCancellable(() =>
        orchestrator.updateBuild({ buildId: build.buildId, status: 'cancelled', errorCode: ErrorCode.CANCELLED }),
      );
      throw err;
    }
    const failure = watch.noWorker
      ? {
          code: ErrorCode.NO_WORKER,
          message: `No worker polled ${build.taskQueue} for ${input.waitForWorkerSeconds} s.`,
        }
      : describeBuildFailure(err);
    state.status = 'failed';
    state.errorCode = failure.code;
    await orchestrator.updateBuild({
      buildId: build.buildId,
      status: 'failed',
      errorCode: failure.code,
      errorMessage: failure.message,
    });
  }
}

/**
 * While a build is pending, asks every little while whether its queue has a worker at all (a poller, or a build of
 * the queue running: a worker whose slots are all busy polls nobody). Only a queue without one for
 * waitForWorkerSeconds in a row fails the build with NO_WORKER (then its activity is cancelled); time spent
 * behind other builds in a busy queue never counts. The build shows waiting_for_worker while its queue has none.
 */
async function watchForWorker(
  input: CompileModelInput,
  orchestrator: OrchestratorActivities,
  build: PlannedBuild,
  noWorkerYet: boolean,
  watch: { settled: boolean; noWorker: boolean },
  scope: CancellationScope,
): Promise<void> {
  const every = Math.min(60, Math.max(5, Math.floor(input.waitForWorkerSeconds / 6)));
  let idleSince: number | null = noWorkerYet ? Date.now() : null;
  try {
    for (;;) {
      if (await condition(() => watch.settled, `${every} seconds`)) return;
      const idle = (await orchestrator.findQueuesWithoutWorkers([build.taskQueue])).length > 0;
      if (watch.settled) return;
      if (!idle) {
        if (idleSince !== null) {
          idleSince = null;
          await orchestrator.updateBuild({
            buildId: build.buildId,
            status: 'queued',
            fromStatuses: ['waiting_for_worker'],
          });
        }
        continue;
      }
      if (idleSince === null) {
        idleSince = Date.now();
        await orchestrator.updateBuild({
          buildId: build.buildId,
          status: 'waiting_for_worker',
          fromStatuses: ['queued'],
        });
      }
      if (Date.now() - idleSince >= input.waitForWorkerSeconds * 1000) {
        watch.noWorker = true;
        scope.cancel();
        return;
      }
    }
  } catch (err) {
    // The whole compilation was cancelled: the build's own handling reports it.
    if (!isCancellation(err)) throw err;
  }
}

/** Turns what Temporal reports about a failed activity into Kiln's error code and message. */
export function describeBuildFailure(err: unknown): { code: ErrorCode; message: string } {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure && cause.type && isErrorCode(cause.type)) {
    return { code: cause.type, message: cause.message };
  }
  if (cause instanceof TimeoutFailure) {
    switch (cause.timeoutType) {
      case 'SCHEDULE_TO_START':
        return { code: ErrorCode.NO_WORKER, message: 'No worker for this target picked the build up in time.' };
      case 'START_TO_CLOSE':
      case 'SCHEDULE_TO_CLOSE':
        return { code: ErrorCode.COMPILE_TIMEOUT, message: 'The build ran past its time limit.' };
      case 'HEARTBEAT':
        return { code: ErrorCode.DRIVER_CRASHED, message: 'The build worker stopped responding, on every attempt.' };
      case undefined:
        break;
    }
  }
  const message = cause instanceof Error ? cause.message : String(cause);
  return { code: ErrorCode.INTERNAL, message };
}
