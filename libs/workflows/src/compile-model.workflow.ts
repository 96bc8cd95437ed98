import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  proxyActivities,
  defineQuery,
  setHandler,
  TimeoutFailure,
} from '@temporalio/workflow';
import { ErrorCode, NON_RETRYABLE_BUILD_ERRORS } from '@kiln/contracts';
import type {
  BuildActivities,
  BuildProgress,
  CompileModelInput,
  CompileModelResult,
  OrchestratorActivities,
  PlannedBuild,
} from './compile-model.contracts.js';
import { ORCHESTRATOR_TASK_QUEUE, PROGRESS_QUERY } from './compile-model.contracts.js';

export const progressQuery = defineQuery<BuildProgress[]>(PROGRESS_QUERY);

function orchestratorActivities(taskQueue: string): OrchestratorActivities {
  return proxyActivities<OrchestratorActivities>({
    taskQueue,
    startToCloseTimeout: '30 seconds',
    retry: { initialInterval: '1 second', maximumInterval: '30 seconds', backoffCoefficient: 2 },
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

  let cancelled = false;
  try {
    const idleQueues = await orchestrator.findQueuesWithoutWorkers(input.builds.map((b) => b.taskQueue));
    const outcomes = await Promise.allSettled(
      input.builds.map((b) => runBuild(input, orchestrator, b, idleQueues.includes(b.taskQueue), progress)),
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
): Promise<void> {
  const state = progress.get(build.targetId)!;
  if (noWorkerYet) {
    state.status = 'waiting_for_worker';
    await orchestrator.updateBuild({ buildId: build.buildId, status: 'waiting_for_worker' });
  }
  const builder = proxyActivities<BuildActivities>({
    taskQueue: build.taskQueue,
    // A target whose workers are all offline must not wait forever.
    scheduleToStartTimeout: `${input.waitForWorkerSeconds} seconds`,
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
  try {
    state.status = 'running';
    const result = await builder.buildTarget({
      tenantId: input.tenantId,
      compilationId: input.compilationId,
      buildId: build.buildId,
      modelVersionId: input.modelVersionId,
      targetId: build.targetId,
      cacheKey: build.cacheKey,
    });
    state.status = result.cached ? 'cached' : 'succeeded';
    state.artifactId = result.artifactId;
  } catch (err) {
    if (isCancellation(err)) {
      state.status = 'cancelled';
      await CancellationScope.nonCancellable(() =>
        orchestrator.updateBuild({ buildId: build.buildId, status: 'cancelled', errorCode: ErrorCode.CANCELLED }),
      );
      throw err;
    }
    const failure = describeBuildFailure(err);
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

function isErrorCode(type: string): type is ErrorCode {
  return Object.values(ErrorCode).includes(type as ErrorCode);
}
