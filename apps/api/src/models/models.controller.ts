import { Body, Controller, Get, HttpCode, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import { Auth, type AuthContext, READERS, Roles, WRITERS } from '../auth/auth-context.js';
import { UuidParam } from '../common/uuid-param.js';
import { CreateModelDto, ModelResponseDto } from './models.dto.js';
import { ModelsService } from './models.service.js';

@ApiTags('models')
@ApiBearerAuth()
@Controller('v1/models')
export class ModelsController {
  constructor(private readonly models: ModelsService) {}

  @Post()
  @Roles(...WRITERS)
  @HttpCode(201)
  @ApiCreatedResponse({ type: ModelResponseDto })
  create(@Auth() auth: AuthContext, @Body() dto: CreateModelDto): Promise<ModelResponseDto> {
    return this.models.create(auth.tenantId, dto);
  }

  @Get()
  @Roles(...READERS)
  @ApiOkResponse({ type: [ModelResponseDto] })
  list(@Auth() auth: AuthContext): Promise<ModelResponseDto[]> {
    return this.models.list(auth.tenantId);
  }

  @Get(':modelId')
  @Roles(...READERS)
  @ApiOkResponse({ type: ModelResponseDto })
  get(@Auth() auth: AuthContext, @UuidParam('modelId') modelId: string): Promise<ModelResponseDto> {
    return this.models.get(auth.tenantId, modelId);
  }
}
