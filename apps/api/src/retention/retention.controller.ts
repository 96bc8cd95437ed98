import { Controller, Delete, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import { DeletionsService } from '@kiln/core';
import { Auth, type AuthContext, OWNERS, Roles } from '../auth/auth-context.js';
import { UuidParam } from '../common/uuid-param.js';
import { DeleteQueryDto, DeletionResponseDto } from './retention.dto.js';

/**
 * Deletes a model, a version or an artifact with everything that is only theirs, in PostgreSQL and S3; refused with
 * RESOURCE_IN_USE while a channel or a rollout points at it, unless `?force=true`.
 */
@ApiTags('retention')
@ApiBearerAuth()
@Controller('v1')
export class RetentionController {
  constructor(private readonly deletions: DeletionsService) {}

  @Delete('models/:modelId')
  @Roles(...OWNERS)
  @ApiOkResponse({ type: DeletionResponseDto })
  deleteModel(
    @Auth() auth: AuthContext,
    @UuidParam('modelId') modelId: string,
    @Query() query: DeleteQueryDto,
  ): Promise<DeletionResponseDto> {
    return this.deletions.deleteModel(auth.tenantId, modelId, query.force === 'true');
  }

  @Delete('versions/:versionId')
  @Roles(...OWNERS)
  @ApiOkResponse({ type: DeletionResponseDto })
  deleteVersion(
    @Auth() auth: AuthContext,
    @UuidParam('versionId') versionId: string,
    @Query() query: DeleteQueryDto,
  ): Promise<DeletionResponseDto> {
    return this.deletions.deleteVersion(auth.tenantId, versionId, query.force === 'true');
  }

  @Delete('artifacts/:artifactId')
  @Roles(...OWNERS)
  @ApiOkResponse({ type: DeletionResponseDto })
  deleteArtifact(
    @Auth() auth: AuthContext,
    @UuidParam('artifactId') artifactId: string,
    @Query() query: DeleteQueryDto,
  ): Promise<DeletionResponseDto> {
    return this.deletions.deleteArtifact(auth.tenantId, artifactId, query.force === 'true');
  }
}
