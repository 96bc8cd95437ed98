// The workflow bundle's entry point (the worker's workflowsPath): workflow functions only.
export { buildModelUpdate, buildUploadsUpdate, compileModelWorkflow, progressQuery } from './compile-model.workflow.js';
export { signPortableWorkflow } from './portable-signing.workflow.js';
export {
  pauseRolloutUpdate,
  resumeRolloutUpdate,
  rollbackRolloutUpdate,
  rolloutStateQuery,
  rolloutWorkflow,
} from './rollout.workflow.js';
export { deliverWebhookWorkflow } from './webhook-delivery.workflow.js';
export { applyRetentionWorkflow } from './retention.workflow.js';
export {
  collectGarbageWorkflow,
  dropExpiredTelemetryWorkflow,
  publishQueueBacklogWorkflow,
  reconcileCompilationsWorkflow,
  sweepUploadsWorkflow,
} from './scheduled.workflow.js';
