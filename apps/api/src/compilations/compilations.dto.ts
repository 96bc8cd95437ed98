import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import {
  ArrayMaxSize,
  ArrayMinSize,
  ArrayUnique,
  IsArray,
  IsBoolean,
  IsOptional,
  IsString,
  IsUUID,
  Matches,
} from 'class-validator';
import type { BuildStatus, CompilationStatus } from '@kiln/contracts';

export class CreateCompilationDto {
  @ApiProperty({ example: ['linux-x86_64-v3', 'linux-x86_64-v4'], description: 'Target ids from GET /v1/targets' })
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(32)
  @ArrayUnique()
  @IsString({ each: true })
  @Matches(/^[a-z0-9][a-z0-9._-]{0,63}$/, { each: true })
  targets!: string[];

  @ApiPropertyOptional({
    default: false,
    description:
      'Build each target twice, the second time in a fresh sandbox with fresh caches, and compare the parts by sha256. ' +
      'Identical: the manifest says reproduction {checked: true, builds: 2, identical: true}. Different: the build ' +
      'fails with BUILD_NOT_REPRODUCIBLE (details.parts holds both hashes). A build takes about twice as long. ' +
      'Targets already built (answered from the cache) are not built again, so not checked.',
  })
  @IsOptional()
  @IsBoolean()
  reproduce?: boolean;
}

/** GET /v1/compilations?versionId= (a version id is a uuid: anything else is refused with VALIDATION_FAILED). */
export class ListCompilationsQueryDto {
  @ApiPropertyOptional({ format: 'uuid', description: 'Only the compilations of this version' })
  @IsOptional()
  @IsUUID()
  versionId?: string;
}

export class BuildArtifactSummaryDto {
  @ApiProperty() id!: string;
  @ApiProperty() sizeBytes!: number;
  @ApiProperty() speedup!: number;
  @ApiProperty() maxAbsError!: number;
}

export class BuildResponseDto {
  @ApiProperty() targetId!: string;
  @ApiProperty({ enum: ['queued', 'waiting_for_worker', 'running', 'succeeded', 'cached', 'failed', 'cancelled'] })
  status!: BuildStatus;
  @ApiProperty({
    nullable: true,
    type: String,
    description: 'Latest compile phase (loading, compiling, verifying, ...)',
  })
  phase!: string | null;
  @ApiProperty() attempt!: number;
  @ApiProperty({ nullable: true, type: String }) errorCode!: string | null;
  @ApiProperty({ nullable: true, type: String }) errorMessage!: string | null;
  @ApiProperty({ nullable: true, type: BuildArtifactSummaryDto }) artifact!: BuildArtifactSummaryDto | null;
  @ApiProperty({ nullable: true, type: String }) startedAt!: string | null;
  @ApiProperty({ nullable: true, type: String }) finishedAt!: string | null;
}

export class CompilationWarningDto {
  @ApiProperty() targetId!: string;
  @ApiProperty({ enum: ['NO_WORKER'], description: 'NO_WORKER: no worker serves this target right now' }) code!: string;
  @ApiProperty() message!: string;
}

export class CompilationResponseDto {
  @ApiProperty() id!: string;
  @ApiProperty() modelVersionId!: string;
  @ApiProperty({ enum: ['pending', 'running', 'succeeded', 'partial', 'failed', 'cancelled'] })
  status!: CompilationStatus;
  @ApiProperty({ type: [String] }) targets!: string[];
  @ApiProperty({ description: "Whether its builds are built twice and compared (the request's reproduce)" })
  reproduce!: boolean;
  @ApiProperty({ type: [BuildResponseDto] }) builds!: BuildResponseDto[];
  @ApiProperty() createdAt!: string;
  @ApiProperty({ nullable: true, type: String }) finishedAt!: string | null;
  @ApiProperty({
    type: [CompilationWarningDto],
    description: 'Targets no worker serves right now (their builds show waiting_for_worker)',
  })
  warnings!: CompilationWarningDto[];
}

export class BuildLogResponseDto {
  @ApiProperty() targetId!: string;
  @ApiProperty() log!: string;
}

export class CompilationEventsTokenResponseDto {
  @ApiProperty({ description: 'Opens GET /v1/compilations/:id/events?token= for this compilation only' })
  token!: string;
  @ApiProperty() expiresAt!: string;
  @ApiProperty({ description: 'The event stream URL with the token, relative to the API' }) url!: string;
}
