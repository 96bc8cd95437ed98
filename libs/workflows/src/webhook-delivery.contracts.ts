// Types shared by the webhook delivery workflow, its activities and whoever emits events (workflow-sandbox safe).

export const DELIVER_WEBHOOK_WORKFLOW = 'deliverWebhookWorkflow';

/** One workflow per delivery row: an emitter that starts it twice starts it once. */
export const deliverWebhookWorkflowId = (deliveryId: string): string => `webhook-delivery-${deliveryId}`;

/** The error type of a delivery that must not be retried (a destination the operator does not allow). */
export const WEBHOOK_NOT_RETRYABLE = 'WebhookNotRetryable';

export interface DeliverWebhookInput {
  deliveryId: string;
  /** Retries: the first wait, doubling each time, up to `maxAttempts` attempts in all (operator settings). */
  retryInitialSeconds: number;
  maxAttempts: number;
}

/** On the orchestrator queue. */
export interface WebhookDeliveryActivities {
  /** One attempt: POSTs the signed payload, records what came back; throws unless the receiver answered 2xx. */
  attemptWebhookDelivery(input: { deliveryId: string }): Promise<void>;
  /** Marks the delivery failed once no attempt is left (its last answer is already recorded). */
  failWebhookDelivery(input: { deliveryId: string }): Promise<void>;
}
