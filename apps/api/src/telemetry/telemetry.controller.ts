import { Body, Controller, HttpCode, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import { Auth, type AuthContext, Roles } from '../auth/auth-context.js';
import { NotAudited } from '../audit/not-audited.js';
import { TelemetryAckDto, TelemetryBatchDto } from './telemetry.dto.js';
import { TelemetryService } from './telemetry.service.js';

@ApiTags('telemetry')
@Controller('v1')
export class TelemetryController {
  constructor(private readonly telemetry: TelemetryService) {}

  /**
   * What a device's runs did (kiln-device sends these unless told not to): per run, the artifact or the portable
   * graph, whether it verified, loaded and ran, and on-device latency. Batched (one device, up to 100 reports),
   * idempotent per reportId. The resolver ranks artifacts for a device class by these; rollout gates read them.
   */
  @Post('telemetry')
  @HttpCode(200)
  @ApiBearerAuth()
  @ApiOkResponse({ type: TelemetryAckDto })
  // Not viewers: a report changes what the resolver serves and what rollout gates decide.
  @Roles('owner', 'developer', 'device')
  // Reports are stored as they came (telemetry_reports): auditing each would double a device's stream.
  @NotAudited()
  ingest(@Auth() auth: AuthContext, @Body() dto: TelemetryBatchDto): Promise<TelemetryAckDto> {
    return this.telemetry.ingest(auth.tenantId, dto, auth.modelScope);
  }
}
