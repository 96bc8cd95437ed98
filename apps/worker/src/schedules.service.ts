import { Injectable, Logger } from '@nestjs/common';
import { Client, ScheduleAlreadyRunning, type ScheduleOptions } from '@temporalio/client';
import { KilnConfig } from '@kiln/config';
import {
  APPLY_RETENTION_WORKFLOW,
  COLLECT_GARBAGE_WORKFLOW,
  DROP_EXPIRED_TELEMETRY_WORKFLOW,
  GC_SCHEDULE_ID,
  ORCHESTRATOR_TASK_QUEUE,
  PUBLISH_QUEUE_BACKLOG_WORKFLOW,
  QUEUE_BACKLOG_SCHEDULE_ID,
  RECONCILE_COMPILATIONS_WORKFLOW,
  RECONCILE_SCHEDULE_ID,
  RETENTION_SCHEDULE_ID,
  SWEEP_UPLOADS_WORKFLOW,
  TELEMETRY_PARTITIONS_SCHEDULE_ID,
  UPLOAD_SWEEP_SCHEDULE_ID,
} from '@kiln/temporal';

/**
 * Creates (or brings up to date) the Temporal Schedules of Kiln's periodic jobs when the orchestrator starts. A
 * schedule fires once per interval for the whole deployment, however many API or worker replicas run, and each
 * run is visible in the Temporal UI (docs/decisions.md, "Periodic jobs on Temporal Schedules").
 */
@Injectable()
export class SchedulesService {
  private readonly logger = new Logger(SchedulesService.name);

  constructor(
    private readonly client: Client,
    private readonly config: KilnConfig,
  ) {}

  /** The schedules this deployment wants, from the config's intervals. */
  desired(): ScheduleOptions[] {
    return [
      this.every(GC_SCHEDULE_ID, COLLECT_GARBAGE_WORKFLOW, this.config.KILN_GC_INTERVAL_S),
      this.every(UPLOAD_SWEEP_SCHEDULE_ID, SWEEP_UPLOADS_WORKFLOW, this.config.KILN_UPLOAD_SWEEP_INTERVAL_S),
      this.every(RETENTION_SCHEDULE_ID, APPLY_RETENTION_WORKFLOW, this.config.KILN_RETENTION_INTERVAL_S),
      this.every(RECONCILE_SCHEDULE_ID, RECONCILE_COMPILATIONS_WORKFLOW, this.config.KILN_RECONCILE_INTERVAL_S),
      this.every(
        TELEMETRY_PARTITIONS_SCHEDULE_ID,
        DROP_EXPIRED_TELEMETRY_WORKFLOW,
        this.config.KILN_TELEMETRY_SWEEP_INTERVAL_S,
      ),
      this.every(QUEUE_BACKLOG_SCHEDULE_ID, PUBLISH_QUEUE_BACKLOG_WORKFLOW, this.config.KILN_BACKLOG_INTERVAL_S),
    ];
  }

  /** Idempotent: a schedule that already exists (another orchestrator replica, a restart) is updated instead. */
  async ensure(): Promise<string[]> {
    const ids: string[] = [];
    for (const options of this.desired()) {
      try {
        await this.client.schedule.create(options);
      } catch (err) {
        if (!(err instanceof ScheduleAlreadyRunning)) throw err;
        await this.client.schedule.getHandle(options.scheduleId).update((prev) => ({
          ...prev,
          spec: options.spec,
          action: { ...options.action, workflowId: `${options.scheduleId}-run` },
          policies: { ...prev.policies, ...options.policies },
        }));
      }
      ids.push(options.scheduleId);
    }
    this.logger.log(`Schedules in place: ${ids.join(', ')}`);
    return ids;
  }

  private every(scheduleId: string, workflowType: string, seconds: number): ScheduleOptions {
    return {
      scheduleId,
      spec: { intervals: [{ every: `${seconds} seconds` }] },
      action: {
        type: 'startWorkflow',
        workflowType,
        // The server appends the fire time: one id per run, each findable under the schedule in the UI.
        workflowId: `${scheduleId}-run`,
        taskQueue: ORCHESTRATOR_TASK_QUEUE,
        args: [],
      },
      policies: {
        // A run still going when the next is due: skip the new one (a pass over the same rows would only wait).
        overlap: 'SKIP',
        // After an outage, one catch-up run is enough: the next pass does all the work that piled up.
        catchupWindow: '1 minute',
      },
    };
  }
}
