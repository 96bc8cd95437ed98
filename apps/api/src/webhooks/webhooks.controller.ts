import { Body, Controller, Delete, Get, HttpCode, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import { Auth, type AuthContext, OWNERS, Roles } from '../auth/auth-context.js';
import { UuidParam } from '../common/uuid-param.js';
import { CreatedWebhookDto, CreateWebhookDto, WebhookDeliveryDto, WebhookDto } from './webhooks.dto.js';
import { WebhooksService } from './webhooks.service.js';

/**
 * Webhooks (owners): endpoints that get the tenant's events as signed POSTs, retried with backoff, each delivery
 * visible with its last answer and sendable again (docs/webhooks.md).
 */
@ApiTags('webhooks')
@ApiBearerAuth()
@Controller('v1/webhooks')
export class WebhooksController {
  constructor(private readonly webhooks: WebhooksService) {}

  @Post()
  @Roles(...OWNERS)
  @HttpCode(201)
  @ApiCreatedResponse({ type: CreatedWebhookDto })
  create(@Auth() auth: AuthContext, @Body() dto: CreateWebhookDto): Promise<CreatedWebhookDto> {
    return this.webhooks.create(auth.tenantId, dto);
  }

  @Get()
  @Roles(...OWNERS)
  @ApiOkResponse({ type: [WebhookDto] })
  list(@Auth() auth: AuthContext): Promise<WebhookDto[]> {
    return this.webhooks.list(auth.tenantId);
  }

  @Delete(':webhookId')
  @Roles(...OWNERS)
  @HttpCode(204)
  @ApiNoContentResponse({ description: 'Removed, with its deliveries: nothing more is sent to it' })
  async remove(@Auth() auth: AuthContext, @UuidParam('webhookId') webhookId: string): Promise<void> {
    await this.webhooks.remove(auth.tenantId, webhookId);
  }

  @Get(':webhookId/deliveries')
  @Roles(...OWNERS)
  @ApiOkResponse({ type: [WebhookDeliveryDto], description: 'The last 100, newest first' })
  deliveries(@Auth() auth: AuthContext, @UuidParam('webhookId') webhookId: string): Promise<WebhookDeliveryDto[]> {
    return this.webhooks.listDeliveries(auth.tenantId, webhookId);
  }

  @Post(':webhookId/deliveries/:deliveryId/redeliver')
  @Roles(...OWNERS)
  @HttpCode(201)
  @ApiCreatedResponse({ type: WebhookDeliveryDto, description: 'The new delivery (same event id and payload)' })
  redeliver(
    @Auth() auth: AuthContext,
    @UuidParam('webhookId') webhookId: string,
    @UuidParam('deliveryId') deliveryId: string,
  ): Promise<WebhookDeliveryDto> {
    return this.webhooks.redeliver(auth.tenantId, webhookId, deliveryId);
  }
}
