import { proxyActivities } from '@temporalio/workflow';
import type { ScheduledActivities } from './scheduled.contracts.js';

// No task queue named: the activity runs on the workflow's own queue, which the schedule sets to the orchestrator's
// (the only worker with the DB and S3; build hosts never register these activities).
const { collectGarbage, sweepUploads, reconcileCompilations, dropExpiredTelemetry, publishQueueBacklog } =
  proxyActivities<ScheduledActivities>({
    startToCloseTimeout: '10 minutes',
    // A failed pass is retried a few times; the next scheduled run picks up whatever is left anyway.
    retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 5 },
  });

/** The GC schedule's action: one collection pass (the ledger's own locks keep it safe against publishes). */
export async function collectGarbageWorkflow(): Promise<{ objectsDeleted: number; blobsDeleted: number }> {
  return await collectGarbage();
}

/** The upload sweep schedule's action: one pass over uploads past their deadline. */
export async function sweepUploadsWorkflow(): Promise<number> {
  return await sweepUploads();
}

/** The reconcile schedule's action: start the compilations whose workflow start failed (Temporal down, a crash). */
export async function reconcileCompilationsWorkflow(): Promise<number> {
  return await reconcileCompilations();
}

/** The telemetry schedule's action: drop whole monthly partitions of device reports past the retention. */
export async function dropExpiredTelemetryWorkflow(): Promise<string[]> {
  return await dropExpiredTelemetry();
}

/** The backlog schedule's action: the build queues' backlogs, which scale the build pools (infra/terraform). */
export async function publishQueueBacklogWorkflow(): Promise<Record<string, number>> {
  return await publishQueueBacklog();
}
