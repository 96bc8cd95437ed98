import { ActivityFailure, proxyActivities } from '@temporalio/workflow';
import { ORCHESTRATOR_TASK_QUEUE } from './compile-model.contracts.js';
import {
  type DeliverWebhookInput,
  WEBHOOK_NOT_RETRYABLE,
  type WebhookDeliveryActivities,
} from './webhook-delivery.contracts.js';

/**
 * Delivers one webhook: Temporal retries the attempt with exponential backoff (a receiver that is down for a while
 * still gets it; a crash of the orchestrator loses nothing), then records the failure when no attempt is left.
 */
export async function deliverWebhookWorkflow(input: DeliverWebhookInput): Promise<void> {
  const { attemptWebhookDelivery } = proxyActivities<WebhookDeliveryActivities>({
    taskQueue: ORCHESTRATOR_TASK_QUEUE,
    // One HTTP request with its own timeout (KILN_WEBHOOK_TIMEOUT_MS), plus reading the rows.
    startToCloseTimeout: '2 minutes',
    retry: {
      initialInterval: `${input.retryInitialSeconds} seconds`,
      backoffCoefficient: 2,
      maximumInterval: '1 hour',
      maximumAttempts: input.maxAttempts,
      nonRetryableErrorTypes: [WEBHOOK_NOT_RETRYABLE],
    },
  });
  const { failWebhookDelivery } = proxyActivities<WebhookDeliveryActivities>({
    taskQueue: ORCHESTRATOR_TASK_QUEUE,
    startToCloseTimeout: '1 minute',
    retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
  });
  try {
    await attemptWebhookDelivery({ deliveryId: input.deliveryId });
  } catch (err) {
    if (!(err instanceof ActivityFailure)) throw err;
    await failWebhookDelivery({ deliveryId: input.deliveryId });
  }
}
