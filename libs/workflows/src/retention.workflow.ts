import { proxyActivities } from '@temporalio/workflow';
import { ORCHESTRATOR_TASK_QUEUE } from './compile-model.contracts.js';
import type { RetentionActivities, RetentionRunSummary } from './retention.contracts.js';

/**
 * One scheduled pass of every tenant's retention policy. A Temporal Schedule starts it (RETENTION_SCHEDULE_ID, overlap
 * SKIP), so one pass runs per interval however many orchestrators or API replicas there are.
 */
export async function applyRetentionWorkflow(): Promise<RetentionRunSummary> {
  const { applyRetentionPolicies } = proxyActivities<RetentionActivities>({
    taskQueue: ORCHESTRATOR_TASK_QUEUE,
    // Deletes one version at a time, each with its collection: a large backlog takes a while.
    startToCloseTimeout: '1 hour',
    retry: { initialInterval: '10 seconds', maximumInterval: '5 minutes', maximumAttempts: 5 },
  });
  return await applyRetentionPolicies();
}
