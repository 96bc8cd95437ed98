// What code outside the workflow sandbox needs to talk to Temporal about Kiln's workflows.
import { fileURLToPath } from 'node:url';
import type { Client } from '@temporalio/client';
import proto from '@temporalio/proto';
import { In, type Repository } from 'typeorm';
import type { BuildEntity } from '@kiln/database';
import { taskQueueFor } from '@kiln/targets';
import { buildActivityId, compileWorkflowId } from '@kiln/workflows/contracts';

// @temporalio/proto is CommonJS: its namespaces are reachable through the default export only.
const { temporal } = proto;

export * from '@kiln/workflows/contracts';
export * from '@kiln/workflows/rollout-contracts';
export * from '@kiln/workflows/portable-signing-contracts';
export * from '@kiln/workflows/webhook-delivery-contracts';
export * from '@kiln/workflows/retention-contracts';
export * from '@kiln/workflows/scheduled-contracts';

/** The workflow bundle entry, for Worker.create({ workflowsPath }) and bundleWorkflowCode. */
export const WORKFLOWS_PATH = fileURLToPath(import.meta.resolve('@kiln/workflows'));

/** DescribeTaskQueue of one activity task queue (its pollers; with reportStats, its backlog too). */
function describeActivityQueue(client: Client, name: string, options: { reportStats?: boolean } = {}) {
  return client.workflowService.describeTaskQueue({
    namespace: client.options.namespace,
    taskQueue: { name, kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
    taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    ...options,
  });
}

/**
 * Which of these activity task queues have had a poller recently (the server keeps pollers seen in the
 * last few minutes, matching.PollerHistoryTTL). Used to show "waiting for a worker" instead of a silent hang.
 * A worker whose slots are all busy does not poll, so a busy queue drops out of this after that window:
 * queuesWithWorkers() also counts queues with a build running.
 */
export async function queuesWithPollers(client: Client, taskQueues: string[]): Promise<Set<string>> {
  const answers = await Promise.all(
    taskQueues.map(async (name) => {
      const res = await describeActivityQueue(client, name);
      return [name, (res.pollers ?? []).length > 0] as const;
    }),
  );
  return new Set(answers.filter(([, has]) => has).map(([name]) => name));
}

/**
 * Tasks waiting on each of these activity task queues (DescribeTaskQueue's approximate backlog count): what the build
 * pools scale on. A queue Temporal has never seen answers 0.
 */
export async function queueBacklogs(client: Client, taskQueues: string[]): Promise<Map<string, number>> {
  const answers = await Promise.all(
    taskQueues.map(async (name) => {
      const res = await describeActivityQueue(client, name, { reportStats: true });
      return [name, Number(res.stats?.approximateBacklogCount ?? 0)] as const;
    }),
  );
  return new Map(answers);
}

/** A build the database says is running: its workflow, the queue it runs on and its activity id there. */
export interface RunningBuildRef {
  taskQueue: string;
  workflowId: string;
  activityId: string;
}

/**
 * Which of these activity task queues have a worker: a poller seen recently, or one of `running` (builds the
 * database says are running on them) that Temporal confirms is started by a worker right now. A started activity
 * whose worker died stops heartbeating and goes back to scheduled after its heartbeat timeout, so this never
 * counts a dead worker for longer than that.
 */
export async function queuesWithWorkers(
  client: Client,
  taskQueues: string[],
  running: RunningBuildRef[],
): Promise<Set<string>> {
  const served = await queuesWithPollers(client, taskQueues);
  const started = temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED;
  for (const build of running) {
    if (served.has(build.taskQueue) || !taskQueues.includes(build.taskQueue)) continue;
    try {
      const res = await client.workflowService.describeWorkflowExecution({
        namespace: client.options.namespace,
        execution: { workflowId: build.workflowId },
      });
      if ((res.pendingActivities ?? []).some((a) => a.activityId === build.activityId && a.state === started)) {
        served.add(build.taskQueue);
      }
    } catch {
      // A workflow that ended or vanished runs nothing.
    }
  }
  return served;
}

/** The builds the database says are running on these queues (most recently started first), for queuesWithWorkers. */
export async function runningBuildsOn(
  builds: Repository<BuildEntity>,
  taskQueues: string[],
): Promise<RunningBuildRef[]> {
  const targets = taskQueues.filter((q) => q.startsWith('build.')).map((q) => q.slice('build.'.length));
  if (targets.length === 0) return [];
  const rows = await builds.find({
    where: { targetId: In(targets), status: 'running' },
    order: { startedAt: 'DESC' },
    take: 10 * targets.length,
  });
  return rows.map((b) => ({
    taskQueue: taskQueueFor(b.targetId),
    workflowId: compileWorkflowId(b.compilationId),
    activityId: buildActivityId(b.id),
  }));
}
