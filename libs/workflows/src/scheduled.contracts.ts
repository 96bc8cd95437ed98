// Periodic jobs run by Temporal Schedules (one run per interval across every replica, visible in the Temporal UI).

/** Schedule ids are business ids: one schedule per job, created or updated when the orchestrator starts. */
export const GC_SCHEDULE_ID = 'kiln-gc-blobs';
export const COLLECT_GARBAGE_WORKFLOW = 'collectGarbageWorkflow';
export const UPLOAD_SWEEP_SCHEDULE_ID = 'kiln-sweep-uploads';
export const SWEEP_UPLOADS_WORKFLOW = 'sweepUploadsWorkflow';

/** The activities scheduled workflows run, on the orchestrator's task queue only (they need the DB and S3). */
export interface ScheduledActivities {
  /** One blob-ledger collection pass (deleted objects, unreferenced blobs); returns what it removed. */
  collectGarbage(): Promise<{ objectsDeleted: number; blobsDeleted: number }>;
  /** One pass of the expired-upload sweep (aborts their multipart uploads); returns how many it expired. */
  sweepUploads(): Promise<number>;
}
