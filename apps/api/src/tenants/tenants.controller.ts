import { Body, Controller, HttpCode, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiTags } from '@nestjs/swagger';
import { AdminOnly } from '../auth/auth-context.js';
import { UuidParam } from '../common/uuid-param.js';
import { ApiKeyResponseDto, CreateApiKeyDto, CreateTenantDto, TenantResponseDto } from './tenants.dto.js';
import { TenantsService } from './tenants.service.js';

/** Operator endpoints (admin token): create tenants and issue their keys. */
@ApiTags('admin')
@ApiBearerAuth()
@AdminOnly()
@Controller('v1/admin/tenants')
export class TenantsController {
  constructor(private readonly tenants: TenantsService) {}

  @Post()
  @HttpCode(201)
  @ApiCreatedResponse({ type: TenantResponseDto })
  create(@Body() dto: CreateTenantDto): Promise<TenantResponseDto> {
    return this.tenants.create(dto.name);
  }

  @Post(':tenantId/keys')
  @HttpCode(201)
  @ApiCreatedResponse({ type: ApiKeyResponseDto })
  createKey(@UuidParam('tenantId') tenantId: string, @Body() dto: CreateApiKeyDto): Promise<ApiKeyResponseDto> {
    return this.tenants.createKey(tenantId, dto.kind ?? 'api', dto.name ?? '');
  }
}
