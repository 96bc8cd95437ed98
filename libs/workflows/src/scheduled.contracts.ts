// Periodic jobs run by Temporal Schedules (one run per interval across every replica, visible in the Temporal UI).

/** Schedule ids are business ids: one schedule per job, created or updated when the orchestrator starts. */
export const GC_SCHEDULE_ID = 'kiln-gc-blobs';
export const COLLECT_GARBAGE_WORKFLOW = 'collectGarbageWorkflow';
export const UPLOAD_SWEEP_SCHEDULE_ID = 'kiln-sweep-uploads';
export const SWEEP_UPLOADS_WORKFLOW = 'sweepUploadsWorkflow';
export const RECONCILE_SCHEDULE_ID = 'kiln-reconcile-compilations';
export const RECONCILE_COMPILATIONS_WORKFLOW = 'reconcileCompilationsWorkflow';
export const TELEMETRY_PARTITIONS_SCHEDULE_ID = 'kiln-telemetry-partitions';
export const DROP_EXPIRED_TELEMETRY_WORKFLOW = 'dropExpiredTelemetryWorkflow';
export const QUEUE_BACKLOG_SCHEDULE_ID = 'kiln-queue-backlog';
export const PUBLISH_QUEUE_BACKLOG_WORKFLOW = 'publishQueueBacklogWorkflow';

/** The activities scheduled workflows run, on the orchestrator's task queue only (they need the DB and S3). */
export interface ScheduledActivities {
  /** One blob-ledger collection pass (deleted objects, unreferenced blobs); returns what it removed. */
  collectGarbage(): Promise<{ objectsDeleted: number; blobsDeleted: number }>;
  /** One pass of the expired-upload sweep (aborts their multipart uploads); returns how many it expired. */
  sweepUploads(): Promise<number>;
  /** Starts the workflows of compilations recorded as pending whose start failed; returns how many it started. */
  reconcileCompilations(): Promise<number>;
  /** Drops the monthly device-report partitions past KILN_TELEMETRY_RETENTION_DAYS; returns their names. */
  dropExpiredTelemetry(): Promise<string[]>;
  /** Measures every build queue's backlog and publishes it (metrics, CloudWatch); returns queue → tasks waiting. */
  publishQueueBacklog(): Promise<Record<string, number>>;
}
