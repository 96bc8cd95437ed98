import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { ApplicationFailure } from '@temporalio/common';
import { DataSource } from 'typeorm';
import { KilnConfig } from '@kiln/config';
import { postWebhook, WebhookDestinationPolicy, webhookSignature } from '@kiln/core';
import { WEBHOOK_NOT_RETRYABLE, type WebhookDeliveryActivities } from '@kiln/temporal';

interface DeliveryRow {
  id: string;
  status: string;
  eventType: string;
  payload: unknown;
  url: string | null;
  secret: string | null;
}

/** Delivers webhooks (deliverWebhookWorkflow): one signed POST per attempt, each attempt recorded on its row. */
@Injectable()
export class WebhookActivitiesService implements WebhookDeliveryActivities {
  private readonly policy: WebhookDestinationPolicy;

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly config: KilnConfig,
  ) {
    this.policy = new WebhookDestinationPolicy(config.KILN_WEBHOOK_ALLOWED_DESTINATIONS);
  }

  async attemptWebhookDelivery(input: { deliveryId: string }): Promise<void> {
    const [row] = await this.dataSource.query<DeliveryRow[]>(
      `SELECT d.id, d.status, d.event_type AS "eventType", d.payload, e.url, e.secret
         FROM webhook_deliveries d LEFT JOIN webhook_endpoints e ON e.id = d.endpoint_id WHERE d.id = $1`,
      [input.deliveryId],
    );
    // Gone with its endpoint, or already delivered (an activity retried after its success was recorded).
    if (!row || row.status === 'delivered' || row.url === null || row.secret === null) return;
    const body = JSON.stringify(row.payload);
    const timestamp = Math.floor(Date.now() / 1000);
    const result = await postWebhook(
      this.policy,
      row.url,
      {
        'Content-Type': 'application/json',
        'User-Agent': 'Kiln-Webhooks/1',
        'Kiln-Event': row.eventType,
        'Kiln-Delivery': row.id,
        'Kiln-Signature': webhookSignature(row.secret, timestamp, body),
      },
      body,
      this.config.KILN_WEBHOOK_TIMEOUT_MS,
    );
    await this.dataSource.query(
      `UPDATE webhook_deliveries SET attempts = attempts + 1, last_status_code = $2, last_error = $3,
              last_response_body = $4, last_attempt_at = now(),
              status = CASE WHEN $5 THEN 'delivered' ELSE status END,
              delivered_at = CASE WHEN $5 THEN now() ELSE delivered_at END
        WHERE id = $1`,
      [row.id, result.statusCode, result.error, result.responseBody, result.ok],
    );
    if (result.ok) return;
    if (result.forbidden) throw ApplicationFailure.create({ message: result.error ?? '', type: WEBHOOK_NOT_RETRYABLE });
    throw ApplicationFailure.retryable(result.error ?? 'delivery failed');
  }

  async failWebhookDelivery(input: { deliveryId: string }): Promise<void> {
    await this.dataSource.query(
      `UPDATE webhook_deliveries SET status = 'failed' WHERE id = $1 AND status = 'pending'`,
      [input.deliveryId],
    );
  }
}
