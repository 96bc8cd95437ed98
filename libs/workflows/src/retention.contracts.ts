// Types shared by the scheduled retention workflow, its activity and the orchestrator that schedules it
// (workflow-sandbox safe).

export const APPLY_RETENTION_WORKFLOW = 'applyRetentionWorkflow';

/** The Temporal Schedule that runs it: one per Temporal namespace, created or updated by every orchestrator. */
export const RETENTION_SCHEDULE_ID = 'kiln-retention';

export interface RetentionRunSummary {
  tenants: number;
  deleted: number;
  failed: number;
}

/** On the orchestrator queue (it holds the database, S3 and the deletes). */
export interface RetentionActivities {
  /** Applies every tenant's retention policy (RetentionService.runAll in @kiln/core). */
  applyRetentionPolicies(): Promise<RetentionRunSummary>;
}
