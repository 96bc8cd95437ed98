import { randomBytes } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { KilnConfig } from '@kiln/config';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { WebhookDestinationError, WebhookDestinationPolicy, WebhookEmitter } from '@kiln/core';
import { WebhookDeliveryEntity, WebhookEndpointEntity } from '@kiln/database';
import type { CreateWebhookDto, CreatedWebhookDto, WebhookDeliveryDto, WebhookDto } from './webhooks.dto.js';

const toWebhook = (e: WebhookEndpointEntity): WebhookDto => ({
  id: e.id,
  url: e.url,
  events: e.events,
  description: e.description,
  createdAt: e.createdAt.toISOString(),
});

const toDelivery = (d: WebhookDeliveryEntity): WebhookDeliveryDto => ({
  id: d.id,
  eventId: d.eventId,
  eventType: d.eventType,
  status: d.status,
  attempts: d.attempts,
  lastStatusCode: d.lastStatusCode,
  lastError: d.lastError,
  lastResponseBody: d.lastResponseBody,
  lastAttemptAt: d.lastAttemptAt?.toISOString() ?? null,
  deliveredAt: d.deliveredAt?.toISOString() ?? null,
  createdAt: d.createdAt.toISOString(),
  payload: d.payload,
});

/** A tenant's webhook endpoints and their deliveries (the orchestrator delivers: deliverWebhookWorkflow). */
@Injectable()
export class WebhooksService {
  private readonly policy: WebhookDestinationPolicy;

  constructor(
    @InjectRepository(WebhookEndpointEntity) private readonly endpoints: Repository<WebhookEndpointEntity>,
    @InjectRepository(WebhookDeliveryEntity) private readonly deliveries: Repository<WebhookDeliveryEntity>,
    private readonly emitter: WebhookEmitter,
    config: KilnConfig,
  ) {
    this.policy = new WebhookDestinationPolicy(config.KILN_WEBHOOK_ALLOWED_DESTINATIONS);
  }

  async create(tenantId: string, dto: CreateWebhookDto): Promise<CreatedWebhookDto> {
    try {
      // What the URL alone says (scheme, credentials, a literal private address); names are checked again each time
      // a delivery resolves them.
      this.policy.checkUrl(dto.url);
    } catch (err) {
      if (!(err instanceof WebhookDestinationError)) throw err;
      throw new KilnError(ErrorCode.VALIDATION_FAILED, `This webhook URL is not allowed: ${err.message}.`);
    }
    const secret = `whsec_${randomBytes(32).toString('base64url')}`;
    const saved = await this.endpoints.save(
      this.endpoints.create({
        tenantId,
        url: dto.url,
        events: [...new Set(dto.events)],
        description: dto.description ?? '',
        secret,
      }),
    );
    return { ...toWebhook(saved), secret };
  }

  async list(tenantId: string): Promise<WebhookDto[]> {
    return (await this.endpoints.find({ where: { tenantId }, order: { createdAt: 'ASC' } })).map(toWebhook);
  }

  async remove(tenantId: string, webhookId: string): Promise<void> {
    const result = await this.endpoints.delete({ id: webhookId, tenantId });
    if (!result.affected) throw new KilnError(ErrorCode.NOT_FOUND, 'No such webhook.');
  }

  async listDeliveries(tenantId: string, webhookId: string): Promise<WebhookDeliveryDto[]> {
    await this.require(tenantId, webhookId);
    const rows = await this.deliveries.find({
      where: { tenantId, endpointId: webhookId },
      order: { createdAt: 'DESC' },
      take: 100,
    });
    return rows.map(toDelivery);
  }

  /** Sends a delivery's event again, as a new delivery with the same event id and payload. */
  async redeliver(tenantId: string, webhookId: string, deliveryId: string): Promise<WebhookDeliveryDto> {
    await this.require(tenantId, webhookId);
    const original = await this.deliveries.findOneBy({ id: deliveryId, tenantId, endpointId: webhookId });
    if (!original) throw new KilnError(ErrorCode.NOT_FOUND, 'No such delivery of this webhook.');
    const copy = await this.deliveries.save(
      this.deliveries.create({
        tenantId,
        endpointId: webhookId,
        eventId: original.eventId,
        eventType: original.eventType,
        payload: original.payload,
      }),
    );
    await this.emitter.dispatch(copy.id);
    return toDelivery(await this.deliveries.findOneByOrFail({ id: copy.id }));
  }

  private async require(tenantId: string, webhookId: string): Promise<void> {
    if (!(await this.endpoints.existsBy({ id: webhookId, tenantId }))) {
      throw new KilnError(ErrorCode.NOT_FOUND, 'No such webhook.');
    }
  }
}
