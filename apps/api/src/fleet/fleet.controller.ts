import { Controller, Get, Param } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import { Auth, type AuthContext, READERS, Roles } from '../auth/auth-context.js';
import { UuidParam } from '../common/uuid-param.js';
import { FleetViewDto } from './fleet.dto.js';
import { FleetService } from './fleet.service.js';

@ApiTags('fleet')
@ApiBearerAuth()
@Controller('v1/models/:modelId/channels/:name/fleet')
export class FleetController {
  constructor(private readonly fleet: FleetService) {}

  /** Per device class: what it runs, on-device speedup next to the build host's, failures, and the rollout. */
  @Get()
  @Roles(...READERS)
  @ApiOkResponse({ type: FleetViewDto })
  view(
    @Auth() auth: AuthContext,
    @UuidParam('modelId') modelId: string,
    @Param('name') name: string,
  ): Promise<FleetViewDto> {
    return this.fleet.view(auth.tenantId, modelId, name);
  }
}
