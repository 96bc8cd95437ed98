import { type Client, ScheduleOverlapPolicy } from '@temporalio/client';
import { APPLY_RETENTION_WORKFLOW, ORCHESTRATOR_TASK_QUEUE, RETENTION_SCHEDULE_ID } from '@kiln/temporal';

/**
 * Creates the retention schedule, or brings an existing one to this orchestrator's interval. Every orchestrator does
 * this at start (idempotent: the schedule id is fixed); Temporal then starts one pass per interval, skipping a pass
 * while the previous one still runs, whichever orchestrator picks it up.
 */
export async function ensureRetentionSchedule(client: Client, intervalS: number): Promise<void> {
  const spec = { intervals: [{ every: `${intervalS} seconds` }] };
  const action = {
    type: 'startWorkflow' as const,
    workflowType: APPLY_RETENTION_WORKFLOW,
    taskQueue: ORCHESTRATOR_TASK_QUEUE,
    workflowId: `${RETENTION_SCHEDULE_ID}-run`,
    args: [] as [],
  };
  const policies = { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' };
  const handle = client.schedule.getHandle(RETENTION_SCHEDULE_ID);
  try {
    await handle.describe();
  } catch {
    try {
      await client.schedule.create({ scheduleId: RETENTION_SCHEDULE_ID, spec, action, policies });
      return;
    } catch (err) {
      // Another orchestrator created it in between: update it below like any existing one.
      if ((err as Error).name !== 'ScheduleAlreadyRunning') throw err;
    }
  }
  await handle.update((previous) => ({ ...previous, spec, action, policies }));
}
