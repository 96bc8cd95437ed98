import { Body, Controller, Delete, Get, Headers, HttpCode, Post, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiHeader, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { Auth, type AuthContext, READERS, Roles, WRITERS } from '../auth/auth-context.js';
import { UuidParam } from '../common/uuid-param.js';
import { ModelVersionResponseDto } from '../versions/versions.dto.js';
import { UploadIdParam } from './upload-id-param.js';
import {
  CompleteUploadDto,
  CreateUploadDto,
  PartUrlsResponseDto,
  RequestPartUrlsDto,
  UploadResponseDto,
  UploadStatusResponseDto,
} from './uploads.dto.js';
import { UploadsService } from './uploads.service.js';

/**
 * Presigned multipart uploads for files of any size (docs/sdk.md): create → part URLs → PUT parts to S3 →
 * complete (validated like the direct upload) or abort. The API never sees the bytes.
 */
@ApiTags('uploads')
@ApiBearerAuth()
@Controller('v1')
export class UploadsController {
  constructor(private readonly uploads: UploadsService) {}

  /** 201 with a new upload, or 200 with the existing one for a repeated Idempotency-Key. */
  @Post('models/:modelId/uploads')
  @Roles(...WRITERS)
  @ApiHeader({
    name: 'Idempotency-Key',
    required: false,
    description: 'Retrying with the same key returns the same upload (resume it) instead of starting another',
  })
  @ApiCreatedResponse({ type: UploadResponseDto })
  async create(
    @Auth() auth: AuthContext,
    @UuidParam('modelId') modelId: string,
    @Body() dto: CreateUploadDto,
    @Headers('idempotency-key') idempotencyKey: string | undefined,
    @Res({ passthrough: true }) res: Response,
  ): Promise<UploadResponseDto> {
    const key = idempotencyKey?.trim().slice(0, 200) || null;
    const { upload, created } = await this.uploads.create(auth.tenantId, modelId, dto, key);
    res.status(created ? 201 : 200);
    return upload;
  }

  @Get('uploads/:uploadId')
  @Roles(...READERS)
  @ApiOkResponse({ type: UploadStatusResponseDto })
  get(@Auth() auth: AuthContext, @UploadIdParam() uploadId: string): Promise<UploadStatusResponseDto> {
    return this.uploads.get(auth.tenantId, uploadId);
  }

  @Post('uploads/:uploadId/parts')
  @Roles(...WRITERS)
  @HttpCode(200)
  @ApiOkResponse({ type: PartUrlsResponseDto })
  partUrls(
    @Auth() auth: AuthContext,
    @UploadIdParam() uploadId: string,
    @Body() dto: RequestPartUrlsDto,
  ): Promise<PartUrlsResponseDto> {
    return this.uploads.partUrls(auth.tenantId, uploadId, dto);
  }

  @Post('uploads/:uploadId/complete')
  @Roles(...WRITERS)
  @HttpCode(200)
  @ApiOkResponse({ type: ModelVersionResponseDto })
  complete(
    @Auth() auth: AuthContext,
    @UploadIdParam() uploadId: string,
    @Body() dto: CompleteUploadDto,
  ): Promise<ModelVersionResponseDto> {
    return this.uploads.complete(auth.tenantId, uploadId, dto);
  }

  @Delete('uploads/:uploadId')
  @Roles(...WRITERS)
  @ApiOkResponse({ type: UploadResponseDto })
  abort(@Auth() auth: AuthContext, @UploadIdParam() uploadId: string): Promise<UploadResponseDto> {
    return this.uploads.abort(auth.tenantId, uploadId);
  }
}
