import { Body, Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import { Auth, type AuthContext, READERS, Roles, WRITERS } from '../auth/auth-context.js';
import { UuidParam } from '../common/uuid-param.js';
import { RolloutControlDto, RolloutResponseDto, StartRolloutDto } from './rollouts.dto.js';
import { RolloutsService } from './rollouts.service.js';

@ApiTags('rollouts')
@ApiBearerAuth()
@Controller('v1')
export class RolloutsController {
  constructor(private readonly rollouts: RolloutsService) {}

  /** Moves the channel to a version in stages (10 % → 50 % → 100 % by default), gated by what devices report. */
  @Post('models/:modelId/channels/:name/rollouts')
  @Roles(...WRITERS)
  @ApiCreatedResponse({ type: RolloutResponseDto })
  start(
    @Auth() auth: AuthContext,
    @UuidParam('modelId') modelId: string,
    @Param('name') name: string,
    @Body() dto: StartRolloutDto,
  ): Promise<RolloutResponseDto> {
    return this.rollouts.start(auth, modelId, name, dto);
  }

  /** The channel's rollouts, newest first, each with its history. */
  @Get('models/:modelId/channels/:name/rollouts')
  @Roles(...READERS)
  @ApiOkResponse({ type: [RolloutResponseDto] })
  list(
    @Auth() auth: AuthContext,
    @UuidParam('modelId') modelId: string,
    @Param('name') name: string,
  ): Promise<RolloutResponseDto[]> {
    return this.rollouts.list(auth.tenantId, modelId, name);
  }

  @Get('rollouts/:rolloutId')
  @Roles(...READERS)
  @ApiOkResponse({ type: RolloutResponseDto })
  get(@Auth() auth: AuthContext, @UuidParam('rolloutId') id: string): Promise<RolloutResponseDto> {
    return this.rollouts.get(auth.tenantId, id);
  }

  /** Stops promotion (devices keep what they have) until resumed. */
  @Post('rollouts/:rolloutId/pause')
  @Roles(...WRITERS)
  @HttpCode(200)
  @ApiOkResponse({ type: RolloutResponseDto })
  pause(
    @Auth() auth: AuthContext,
    @UuidParam('rolloutId') id: string,
    @Body() dto: RolloutControlDto,
  ): Promise<RolloutResponseDto> {
    return this.rollouts.control(auth, id, 'pause', dto);
  }

  /** Goes on from the stage it was paused at (the stage's hold starts over). */
  @Post('rollouts/:rolloutId/resume')
  @Roles(...WRITERS)
  @HttpCode(200)
  @ApiOkResponse({ type: RolloutResponseDto })
  resume(
    @Auth() auth: AuthContext,
    @UuidParam('rolloutId') id: string,
    @Body() dto: RolloutControlDto,
  ): Promise<RolloutResponseDto> {
    return this.rollouts.control(auth, id, 'resume', dto);
  }

  /** Every device gets the previous version again; the channel stays where it was. */
  @Post('rollouts/:rolloutId/rollback')
  @Roles(...WRITERS)
  @HttpCode(200)
  @ApiOkResponse({ type: RolloutResponseDto })
  rollback(
    @Auth() auth: AuthContext,
    @UuidParam('rolloutId') id: string,
    @Body() dto: RolloutControlDto,
  ): Promise<RolloutResponseDto> {
    return this.rollouts.control(auth, id, 'rollback', dto);
  }
}
