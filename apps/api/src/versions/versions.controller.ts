import { Controller, Get, HttpCode, Post, Query, Req } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiBody,
  ApiConsumes,
  ApiCreatedResponse,
  ApiOkResponse,
  ApiQuery,
  ApiTags,
} from '@nestjs/swagger';
import type { Request } from 'express';
import { Auth, type AuthContext, READERS, Roles, WRITERS } from '../auth/auth-context.js';
import { UuidParam } from '../common/uuid-param.js';
import { ModelVersionResponseDto } from './versions.dto.js';
import { VersionsService } from './versions.service.js';

@ApiTags('versions')
@ApiBearerAuth()
@Controller('v1')
export class VersionsController {
  constructor(private readonly versions: VersionsService) {}

  @Post('models/:modelId/versions')
  @Roles(...WRITERS)
  @HttpCode(201)
  @ApiConsumes('application/octet-stream')
  @ApiBody({
    description: 'The .pt2 file written by torch.export.save, as the raw body.',
    schema: { type: 'string', format: 'binary' },
  })
  @ApiQuery({ name: 'filename', required: false })
  @ApiCreatedResponse({ type: ModelVersionResponseDto })
  upload(
    @Auth() auth: AuthContext,
    @UuidParam('modelId') modelId: string,
    @Req() req: Request,
    @Query('filename') filename?: string,
  ): Promise<ModelVersionResponseDto> {
    const length = req.headers['content-length'];
    return this.versions.upload(auth.tenantId, modelId, req, {
      contentType: req.headers['content-type'],
      contentLength: length === undefined ? null : Number(length),
      filename: (filename ?? '').slice(0, 255),
    });
  }

  @Get('models/:modelId/versions')
  @Roles(...READERS)
  @ApiOkResponse({ type: [ModelVersionResponseDto] })
  list(@Auth() auth: AuthContext, @UuidParam('modelId') modelId: string): Promise<ModelVersionResponseDto[]> {
    return this.versions.list(auth.tenantId, modelId);
  }

  @Get('versions/:versionId')
  @Roles(...READERS)
  @ApiOkResponse({ type: ModelVersionResponseDto })
  get(@Auth() auth: AuthContext, @UuidParam('versionId') versionId: string): Promise<ModelVersionResponseDto> {
    return this.versions.get(auth.tenantId, versionId);
  }
}
