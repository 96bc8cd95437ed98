import { Body, Controller, Get, Param, Put } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import { Auth, type AuthContext, READERS, Roles, WRITERS } from '../auth/auth-context.js';
import { UuidParam } from '../common/uuid-param.js';
import { ChannelMoveResponseDto, ChannelResponseDto, MoveChannelDto } from './channels.dto.js';
import { ChannelsService } from './channels.service.js';

@ApiTags('channels')
@ApiBearerAuth()
@Controller('v1/models/:modelId/channels')
export class ChannelsController {
  constructor(private readonly channels: ChannelsService) {}

  @Get()
  @Roles(...READERS)
  @ApiOkResponse({ type: [ChannelResponseDto] })
  list(@Auth() auth: AuthContext, @UuidParam('modelId') modelId: string): Promise<ChannelResponseDto[]> {
    return this.channels.list(auth.tenantId, modelId);
  }

  /** Moves (or creates) a channel; every move is recorded with the key that made it. */
  @Put(':name')
  @Roles(...WRITERS)
  @ApiOkResponse({ type: ChannelResponseDto })
  move(
    @Auth() auth: AuthContext,
    @UuidParam('modelId') modelId: string,
    @Param('name') name: string,
    @Body() dto: MoveChannelDto,
  ): Promise<ChannelResponseDto> {
    return this.channels.move(auth, modelId, name, dto);
  }

  @Get(':name/history')
  @Roles(...READERS)
  @ApiOkResponse({ type: [ChannelMoveResponseDto] })
  history(
    @Auth() auth: AuthContext,
    @UuidParam('modelId') modelId: string,
    @Param('name') name: string,
  ): Promise<ChannelMoveResponseDto[]> {
    return this.channels.history(auth.tenantId, modelId, name);
  }
}
