import { Body, Controller, Delete, Get, HttpCode, Patch, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import { UuidParam } from '../common/uuid-param.js';
import { ApiKeysService } from './api-keys.service.js';
import { Auth, type AuthContext, OWNERS, Roles } from './auth-context.js';
import {
  ApiKeyResponseDto,
  ApiKeySummaryDto,
  CreateApiKeyDto,
  RotateApiKeyDto,
  RotatedApiKeyResponseDto,
  toApiKeySummary,
  UpdateApiKeyDto,
} from './keys.dto.js';

/**
 * A tenant's own keys, managed by its owners: issue keys of any role (device tokens enrolled for some models), list,
 * rename, give an expiry, revoke (refused by every replica from the next request on) and rotate.
 */
@ApiTags('keys')
@ApiBearerAuth()
@Controller('v1/keys')
export class KeysController {
  constructor(private readonly keys: ApiKeysService) {}

  @Get()
  @Roles(...OWNERS)
  @ApiOkResponse({ type: [ApiKeySummaryDto] })
  async list(@Auth() auth: AuthContext): Promise<ApiKeySummaryDto[]> {
    return (await this.keys.list(auth.tenantId)).map(toApiKeySummary);
  }

  @Post()
  @Roles(...OWNERS)
  @HttpCode(201)
  @ApiCreatedResponse({ type: ApiKeyResponseDto })
  async create(@Auth() auth: AuthContext, @Body() dto: CreateApiKeyDto): Promise<ApiKeyResponseDto> {
    const { key, entity } = await this.keys.issue(auth.tenantId, dto);
    return { ...toApiKeySummary(entity), key };
  }

  @Patch(':keyId')
  @Roles(...OWNERS)
  @ApiOkResponse({ type: ApiKeySummaryDto })
  async update(
    @Auth() auth: AuthContext,
    @UuidParam('keyId') keyId: string,
    @Body() dto: UpdateApiKeyDto,
  ): Promise<ApiKeySummaryDto> {
    return toApiKeySummary(await this.keys.update(auth.tenantId, keyId, dto));
  }

  @Delete(':keyId')
  @Roles(...OWNERS)
  @ApiOkResponse({ type: ApiKeySummaryDto })
  async revoke(@Auth() auth: AuthContext, @UuidParam('keyId') keyId: string): Promise<ApiKeySummaryDto> {
    return toApiKeySummary(await this.keys.revoke(auth.tenantId, keyId));
  }

  @Post(':keyId/rotate')
  @Roles(...OWNERS)
  @HttpCode(201)
  @ApiCreatedResponse({ type: RotatedApiKeyResponseDto })
  async rotate(
    @Auth() auth: AuthContext,
    @UuidParam('keyId') keyId: string,
    @Body() dto: RotateApiKeyDto,
  ): Promise<RotatedApiKeyResponseDto> {
    const { key, entity, previous } = await this.keys.rotate(auth.tenantId, keyId, dto.graceSeconds ?? 0);
    return { ...toApiKeySummary(entity), key, previous: toApiKeySummary(previous) };
  }
}
