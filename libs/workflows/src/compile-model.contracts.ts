// Types shared by the CompileModel workflow, the worker's activities and the API that starts it.
// Pure types and constants only: this file is bundled into Temporal's deterministic workflow sandbox.
import type { ArtifactManifest, BuildStatus, CompilationStatus, ErrorCode } from '@kiln/contracts';

/** The task queue of the orchestrator worker (workflows + bookkeeping activities). */
export const ORCHESTRATOR_TASK_QUEUE = 'kiln.orchestrator';
export const COMPILE_MODEL_WORKFLOW = 'compileModelWorkflow';
export const PROGRESS_QUERY = 'progress';
/**
 * Workflow updates a running build activity sends its own workflow: the only way a build host reaches the model it
 * compiles (a presigned GET) and the only place it may write (presigned PUTs into its build's staging prefix). The
 * host holds no S3 credentials, no signing key and no access to the artifact rows (docs/security.md).
 */
export const BUILD_MODEL_UPDATE = 'buildModel';
export const BUILD_UPLOADS_UPDATE = 'buildUploads';

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
  /**
   * Build each target twice and compare the parts (the compilation's `reproduce`). Absent in workflows started
   * before it existed: false.
   */
  reproduce?: boolean;
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
  /**
   * Run the driver a second time for the same job in a fresh job folder and compare the parts by sha256: identical
   * ⇒ the manifest's `reproduction` says so; different ⇒ BUILD_NOT_REPRODUCIBLE. Absent: false.
   */
  reproduce?: boolean;
}

/**
 * What a build host hands back: the manifest its driver wrote (unsigned; its parts uploaded to the build's staging
 * prefix) and the build log. Untrusted: publishArtifact checks every field and re-hashes every part before it signs.
 */
export interface BuildTargetResult {
  manifest: ArtifactManifest;
  log: string;
}

/** Runs on `build.<targetId>` queues, on hosts that can build and verify that target. */
export interface BuildActivities {
  buildTarget(input: BuildTargetInput): Promise<BuildTargetResult>;
}

export interface BuildModelRequest {
  buildId: string;
}

/** The model a build compiles: a short-lived presigned GET and what the bytes must hash to. */
export interface BuildModelGrant {
  url: string;
  sha256: string;
  size: number;
  contentHash: string;
  /**
   * A weights-only update (issue 17): the code part of an earlier artifact of the same tenant, model, target and
   * recipe, picked by the orchestrator. The driver reuses it when the code it generates equals the donor's, else
   * builds in full. Absent when there is no such artifact.
   */
  codeDonor?: CodeDonorGrant;
  /**
   * The latest inductor cache of the build's scope (tenant, target, recipe hash: issue 17 item 3), never another
   * tenant's. The driver restores it before compiling. Absent when the scope has none.
   */
  inductorCache?: InductorCacheGrant;
}

/** An inductor cache archive: a short-lived presigned GET and what the bytes must hash to. */
export interface InductorCacheGrant {
  url: string;
  sha256: string;
  size: number;
}

/** A donor's code part: a short-lived presigned GET, what the bytes must hash to, and the donor's cache key. */
export interface CodeDonorGrant {
  url: string;
  sha256: string;
  size: number;
  cacheKey: string;
}

export interface BuildUploadsRequest {
  buildId: string;
  parts: { sha256: string; size: number }[];
  /** The inductor cache the build packed for the next build of its scope (its manifest's inductorCache.stored). */
  inductorCache?: { sha256: string; size: number };
}

/** One presigned PUT per part the bucket does not hold yet; each binds the part's length and sha256. */
export interface BuildUploadsGrant {
  uploads: { sha256: string; url: string; headers: Record<string, string> }[];
  /** Parts already stored (content-addressed, verified when they were published): not uploaded again. */
  stored: string[];
  /** A presigned PUT for the inductor cache into the build's staging prefix (binds its length and sha256). */
  inductorCache?: { url: string; headers: Record<string, string> };
}

export interface PublishArtifactInput {
  tenantId: string;
  buildId: string;
  modelVersionId: string;
  targetId: string;
  cacheKey: string;
  /** What the compilation asked: the manifest's `reproduction.checked` must say the same (absent: false). */
  reproduce?: boolean;
  /**
   * The sha256 of the inductor cache the build's grant offered (null: none). The manifest's inductorCache.restored
   * must be it. Absent in workflows started before the field: null.
   */
  offeredInductorCache?: string | null;
  result: BuildTargetResult;
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
export interface BookkeepingActivities {
  /**
   * Of these task queues, the ones without a worker: none polled recently (DescribeTaskQueue pollers) and none is
   * running a build of the queue (a worker whose slots are all busy does not poll).
   */
  findQueuesWithoutWorkers(taskQueues: string[]): Promise<string[]>;
  updateBuild(update: BuildUpdate): Promise<void>;
  finishCompilation(input: { compilationId: string; cancelled: boolean }): Promise<CompilationStatus>;
}

/** The trusted half of each build, on the orchestrator queue: the only holder of the signing key and of S3. */
export interface PublishingActivities {
  /** The artifact already stored for this cache key (a finished earlier build), or null. */
  findCachedArtifact(input: { tenantId: string; cacheKey: string }): Promise<string | null>;
  /** Records a build answered from the cache. */
  finishCachedBuild(input: { buildId: string; artifactId: string }): Promise<void>;
  /** With `targetId`, the grant names a code donor for a weights-only update when the tenant has one. */
  grantModelDownload(input: { tenantId: string; modelVersionId: string; targetId?: string }): Promise<BuildModelGrant>;
  grantPartUploads(input: {
    tenantId: string;
    buildId: string;
    parts: BuildUploadsRequest['parts'];
    inductorCache?: BuildUploadsRequest['inductorCache'];
  }): Promise<BuildUploadsGrant>;
  /**
   * The trusted half of a build: checks the host's manifest against the build, re-hashes each staged part, stores
   * the parts content-addressed, writes the manifest once under its own hash, signs it and records the artifact
   * (one row per cache key: a concurrent twin's manifest never replaces the signed one). Returns the artifact id.
   */
  publishArtifact(input: PublishArtifactInput): Promise<string>;
}

/** Every activity of the orchestrator queue the CompileModel workflow calls. */
export type OrchestratorActivities = BookkeepingActivities & PublishingActivities;
