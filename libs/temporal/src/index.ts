// What code outside the workflow sandbox needs to talk to Temporal about Kiln's workflows.
import { fileURLToPath } from 'node:url';
import type { Client } from '@temporalio/client';
import proto from '@temporalio/proto';

// @temporalio/proto is CommonJS: its namespaces are reachable through the default export only.
const { temporal } = proto;

export * from '@kiln/workflows/contracts';
export * from '@kiln/workflows/rollout-contracts';

/** The workflow bundle entry, for Worker.create({ workflowsPath }) and bundleWorkflowCode. */
export const WORKFLOWS_PATH = fileURLToPath(import.meta.resolve('@kiln/workflows'));

/**
 * Which of these activity task queues have had a poller recently (the server keeps pollers seen in the
 * last few minutes). Used to show "waiting for a worker" instead of a silent hang.
 */
export async function queuesWithPollers(client: Client, taskQueues: string[]): Promise<Set<string>> {
  const answers = await Promise.all(
    taskQueues.map(async (name) => {
      const res = await client.workflowService.describeTaskQueue({
        namespace: client.options.namespace,
        taskQueue: { name, kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
        taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
      });
      return [name, (res.pollers ?? []).length > 0] as const;
    }),
  );
  return new Set(answers.filter(([, has]) => has).map(([name]) => name));
}
