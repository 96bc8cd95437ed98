// Types shared by the CompileModel workflow, the worker's activities and the API that starts it.
// Pure types and constants only: this file is bundled into Temporal's deterministic workflow sandbox.
import type { BuildStatus, CompilationStatus, ErrorCode } from '@kiln/contracts';

/** The task queue of the orchestrator worker (workflows + bookkeeping activities). */
export const ORCHESTRATOR_TASK_QUEUE = 'kiln.orchestrator';
export const COMPILE_MODEL_WORKFLOW = 'compileModelWorkflow';
export const PROGRESS_QUERY = 'progress';

/** Workflow ids are business ids, so starting the same compilation twice is harmless. */
export const compileWorkflowId = (compilationId: string): string => `compile-${compilationId}`;

/**
 * The activity id of a build's compile activity in its workflow: the orchestrator finds it among the workflow's
 * pending activities to tell whether a worker is running it (a busy worker polls nobody).
 */
export const buildActivityId = (buildId: string): string => `build-${buildId}`;

export interface PlannedBuild {
  buildId: string;
  targetId: string;
  /** `build.<targetId>`: only workers that can build AND run this target poll it. */
  taskQueue: string;
  cacheKey: string;
}

export interface CompileModelInput {
  compilationId: string;
  tenantId: string;
  modelVersionId: string;
  builds: PlannedBuild[];
  /**
   * How long a build's queue may have no worker at all (no poller, no build of the target running) before the
   * build fails with NO_WORKER. Time spent waiting behind other builds in a busy queue does not count.
   */
  waitForWorkerSeconds: number;
  /** Upper bound of one compile attempt (the driver's own timeout is shorter). */
  buildTimeoutSeconds: number;
  /** Where the bookkeeping activities run; defaults to ORCHESTRATOR_TASK_QUEUE (tests isolate themselves). */
  orchestratorTaskQueue?: string;
}

export interface BuildProgress {
  targetId: string;
  status: BuildStatus;
  attempt: number;
  errorCode: ErrorCode | null;
  artifactId: string | null;
}

export interface CompileModelResult {
  compilationId: string;
  status: CompilationStatus;
  builds: BuildProgress[];
}

export interface BuildTargetInput {
  tenantId: string;
  compilationId: string;
  buildId: string;
  modelVersionId: string;
  targetId: string;
  cacheKey: string;
}

export interface BuildTargetResult {
  artifactId: string;
  cached: boolean;
}

/** Runs on `build.<targetId>` queues, on hosts that can build and verify that target. */
export interface BuildActivities {
  buildTarget(input: BuildTargetInput): Promise<BuildTargetResult>;
}

export interface BuildUpdate {
  buildId: string;
  status: BuildStatus;
  /** Only if the build is in one of these statuses now (e.g. queued ⇄ waiting_for_worker, never over running). */
  fromStatuses?: BuildStatus[];
  errorCode?: ErrorCode | null;
  errorMessage?: string | null;
}

/** Bookkeeping on the orchestrator queue. */
export interface OrchestratorActivities {
  /**
   * Of these task queues, the ones without a worker: none polled recently (DescribeTaskQueue pollers) and none is
   * running a build of the queue (a worker whose slots are all busy does not poll).
   */
  findQueuesWithoutWorkers(taskQueues: string[]): Promise<string[]>;
  updateBuild(update: BuildUpdate): Promise<void>;
  finishCompilation(input: { compilationId: string; cancelled: boolean }): Promise<CompilationStatus>;
}
