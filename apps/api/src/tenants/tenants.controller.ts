import { Body, Controller, Delete, Get, HttpCode, Patch, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import { ApiKeysService } from '../auth/api-keys.service.js';
import { AdminOnly } from '../auth/auth-context.js';
import {
  ApiKeyResponseDto,
  ApiKeySummaryDto,
  CreateApiKeyDto,
  RotateApiKeyDto,
  RotatedApiKeyResponseDto,
  toApiKeySummary,
} from '../auth/keys.dto.js';
import { UuidParam } from '../common/uuid-param.js';
import { CreateTenantDto, TenantQuotasResponseDto, TenantResponseDto, UpdateTenantQuotasDto } from './tenants.dto.js';
import { TenantsService } from './tenants.service.js';

/** Operator endpoints (admin token): create tenants, issue, revoke and rotate their keys, set their quotas. */
@ApiTags('admin')
@ApiBearerAuth()
@AdminOnly()
@Controller('v1/admin/tenants')
export class TenantsController {
  constructor(
    private readonly tenants: TenantsService,
    private readonly keys: ApiKeysService,
  ) {}

  @Post()
  @HttpCode(201)
  @ApiCreatedResponse({ type: TenantResponseDto })
  create(@Body() dto: CreateTenantDto): Promise<TenantResponseDto> {
    return this.tenants.create(dto.name);
  }

  @Get(':tenantId/keys')
  @ApiOkResponse({ type: [ApiKeySummaryDto] })
  async listKeys(@UuidParam('tenantId') tenantId: string): Promise<ApiKeySummaryDto[]> {
    await this.tenants.require(tenantId);
    return (await this.keys.list(tenantId)).map(toApiKeySummary);
  }

  @Post(':tenantId/keys')
  @HttpCode(201)
  @ApiCreatedResponse({ type: ApiKeyResponseDto })
  async createKey(@UuidParam('tenantId') tenantId: string, @Body() dto: CreateApiKeyDto): Promise<ApiKeyResponseDto> {
    const { key, entity } = await this.keys.issue(tenantId, dto);
    return { ...toApiKeySummary(entity), key };
  }

  @Delete(':tenantId/keys/:keyId')
  @ApiOkResponse({ type: ApiKeySummaryDto })
  async revokeKey(
    @UuidParam('tenantId') tenantId: string,
    @UuidParam('keyId') keyId: string,
  ): Promise<ApiKeySummaryDto> {
    return toApiKeySummary(await this.keys.revoke(tenantId, keyId));
  }

  @Post(':tenantId/keys/:keyId/rotate')
  @HttpCode(201)
  @ApiCreatedResponse({ type: RotatedApiKeyResponseDto })
  async rotateKey(
    @UuidParam('tenantId') tenantId: string,
    @UuidParam('keyId') keyId: string,
    @Body() dto: RotateApiKeyDto,
  ): Promise<RotatedApiKeyResponseDto> {
    const { key, entity, previous } = await this.keys.rotate(tenantId, keyId, dto.graceSeconds ?? 0);
    return { ...toApiKeySummary(entity), key, previous: toApiKeySummary(previous) };
  }

  @Get(':tenantId/quotas')
  @ApiOkResponse({ type: TenantQuotasResponseDto })
  quotas(@UuidParam('tenantId') tenantId: string): Promise<TenantQuotasResponseDto> {
    return this.tenants.quotasOf(tenantId);
  }

  @Patch(':tenantId/quotas')
  @ApiOkResponse({ type: TenantQuotasResponseDto })
  updateQuotas(
    @UuidParam('tenantId') tenantId: string,
    @Body() dto: UpdateTenantQuotasDto,
  ): Promise<TenantQuotasResponseDto> {
    return this.tenants.updateQuotas(tenantId, dto);
  }
}
