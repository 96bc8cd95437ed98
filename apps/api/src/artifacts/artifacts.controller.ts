import { Controller, Get } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import { Auth, type AuthContext, EVERY_ROLE, READERS, Roles } from '../auth/auth-context.js';
import { UuidParam } from '../common/uuid-param.js';
import { ArtifactDownloadResponseDto, ArtifactResponseDto } from './artifacts.dto.js';
import { ArtifactsService } from './artifacts.service.js';

@ApiTags('artifacts')
@ApiBearerAuth()
@Controller('v1')
export class ArtifactsController {
  constructor(private readonly artifacts: ArtifactsService) {}

  @Get('versions/:versionId/artifacts')
  @Roles(...READERS)
  @ApiOkResponse({ type: [ArtifactResponseDto] })
  listForVersion(@Auth() auth: AuthContext, @UuidParam('versionId') versionId: string): Promise<ArtifactResponseDto[]> {
    return this.artifacts.listForVersion(auth.tenantId, versionId);
  }

  @Get('artifacts/:artifactId')
  @Roles(...READERS)
  @ApiOkResponse({ type: ArtifactResponseDto })
  get(@Auth() auth: AuthContext, @UuidParam('artifactId') artifactId: string): Promise<ArtifactResponseDto> {
    return this.artifacts.get(auth.tenantId, artifactId);
  }

  @Get('artifacts/:artifactId/download')
  @Roles(...EVERY_ROLE)
  @ApiOkResponse({ type: ArtifactDownloadResponseDto })
  download(
    @Auth() auth: AuthContext,
    @UuidParam('artifactId') artifactId: string,
  ): Promise<ArtifactDownloadResponseDto> {
    return this.artifacts.download(auth.tenantId, artifactId, auth.modelScope);
  }
}
