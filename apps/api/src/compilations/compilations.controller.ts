import { Body, Controller, Get, Headers, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBearerAuth,
  ApiCreatedResponse,
  ApiHeader,
  ApiOkResponse,
  ApiTags,
} from '@nestjs/swagger';
import type { Response } from 'express';
import { Auth, type AuthContext, READERS, Roles, WRITERS } from '../auth/auth-context.js';
import { UuidParam } from '../common/uuid-param.js';
import {
  BuildLogResponseDto,
  CompilationResponseDto,
  CreateCompilationDto,
  ListCompilationsQueryDto,
} from './compilations.dto.js';
import { CompilationsService } from './compilations.service.js';

@ApiTags('compilations')
@ApiBearerAuth()
@Controller('v1')
export class CompilationsController {
  constructor(private readonly compilations: CompilationsService) {}

  /** 201 with a new compilation, or 200 with the existing one for a repeated Idempotency-Key. */
  @Post('versions/:versionId/compilations')
  @Roles(...WRITERS)
  @ApiCreatedResponse({ type: CompilationResponseDto, description: 'A new compilation' })
  @ApiOkResponse({ type: CompilationResponseDto, description: 'The compilation of an Idempotency-Key used before' })
  @ApiHeader({
    name: 'Idempotency-Key',
    required: false,
    description: 'Retrying with the same key never starts a second compilation',
  })
  async create(
    @Auth() auth: AuthContext,
    @UuidParam('versionId') versionId: string,
    @Body() dto: CreateCompilationDto,
    @Headers('idempotency-key') idempotencyKey: string | undefined,
    @Res({ passthrough: true }) res: Response,
  ): Promise<CompilationResponseDto> {
    const key = idempotencyKey?.trim().slice(0, 200) || null;
    const { compilation, created } = await this.compilations.create(auth.tenantId, versionId, dto.targets, key, {
      reproduce: dto.reproduce ?? false,
    });
    res.status(created ? 201 : 200);
    return compilation;
  }

  @Get('compilations')
  @Roles(...READERS)
  @ApiOkResponse({ type: [CompilationResponseDto] })
  list(@Auth() auth: AuthContext, @Query() query: ListCompilationsQueryDto): Promise<CompilationResponseDto[]> {
    return this.compilations.list(auth.tenantId, query.versionId);
  }

  @Get('compilations/:compilationId')
  @Roles(...READERS)
  @ApiOkResponse({ type: CompilationResponseDto })
  get(@Auth() auth: AuthContext, @UuidParam('compilationId') id: string): Promise<CompilationResponseDto> {
    return this.compilations.get(auth.tenantId, id);
  }

  @Get('compilations/:compilationId/builds/:targetId/log')
  @Roles(...READERS)
  @ApiOkResponse({ type: BuildLogResponseDto })
  log(
    @Auth() auth: AuthContext,
    @UuidParam('compilationId') id: string,
    @Param('targetId') targetId: string,
  ): Promise<BuildLogResponseDto> {
    return this.compilations.log(auth.tenantId, id, targetId);
  }

  @Post('compilations/:compilationId/cancel')
  @Roles(...WRITERS)
  @HttpCode(202)
  @ApiAcceptedResponse({ type: CompilationResponseDto })
  cancel(@Auth() auth: AuthContext, @UuidParam('compilationId') id: string): Promise<CompilationResponseDto> {
    return this.compilations.cancel(auth.tenantId, id);
  }
}
