import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsBoolean, IsIn, IsInt, IsOptional, Max, Min } from 'class-validator';

/** DELETE ...?force=true: also delete the channels and rollouts that point at what is deleted. */
export class DeleteQueryDto {
  @ApiPropertyOptional({
    enum: ['true', 'false'],
    description: 'Delete even when a channel or a rollout points at it (they are deleted with it); default false',
  })
  @IsOptional()
  @IsIn(['true', 'false'])
  force?: 'true' | 'false';
}

export class DeletedCountsDto {
  @ApiProperty() models!: number;
  @ApiProperty() versions!: number;
  @ApiProperty() artifacts!: number;
  @ApiProperty() channels!: number;
  @ApiProperty() rollouts!: number;
  @ApiProperty() compilations!: number;
}

export class CollectedDto {
  @ApiProperty({ description: 'S3 objects of the deleted records removed (portable graphs, manifests, uploads)' })
  objectsDeleted!: number;
  @ApiProperty({ description: 'Content-addressed blobs nothing references any more, removed' })
  blobsDeleted!: number;
}

export class DeletionResponseDto {
  @ApiProperty({ type: DeletedCountsDto }) deleted!: DeletedCountsDto;
  @ApiProperty({
    type: CollectedDto,
    description: "What this tenant's collection removed from S3 right after the delete (a later one takes the rest)",
  })
  collected!: CollectedDto;
}

/** PUT /v1/retention-policy: at least one rule; a rule left out (or null) keeps nothing by itself. */
export class RetentionRulesDto {
  @ApiPropertyOptional({
    type: Number,
    nullable: true,
    minimum: 1,
    maximum: 100000,
    description: "Keep each model's newest N versions (by version number)",
  })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(100000)
  keepLastVersions?: number | null;

  @ApiPropertyOptional({
    type: Number,
    nullable: true,
    minimum: 1,
    maximum: 36500,
    description: 'Keep versions younger than D days',
  })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(36500)
  maxAgeDays?: number | null;
}

export class RetentionPolicyDto {
  @ApiProperty({ type: Number, nullable: true }) keepLastVersions!: number | null;
  @ApiProperty({ type: Number, nullable: true }) maxAgeDays!: number | null;
}

/** POST /v1/retention-policy/runs. */
export class RetentionRunRequestDto extends RetentionRulesDto {
  @ApiProperty({
    description:
      'true: only say which versions the policy would delete (nothing changes); false: delete them now. With ' +
      'keepLastVersions or maxAgeDays, a dry run previews those rules instead of the saved policy.',
  })
  @IsBoolean()
  dryRun!: boolean;
}

export class RetentionVersionDto {
  @ApiProperty({ format: 'uuid' }) versionId!: string;
  @ApiProperty({ format: 'uuid' }) modelId!: string;
  @ApiProperty() modelName!: string;
  @ApiProperty() number!: number;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({
    enum: ['would_delete', 'deleted', 'skipped'],
    description: 'skipped: a channel, rollout or compilation took it up after the plan (see reason)',
  })
  outcome!: 'would_delete' | 'deleted' | 'skipped';
  @ApiPropertyOptional({ description: 'For skipped: the error code the delete answered' }) reason?: string;
}

export class RetentionRunDto {
  @ApiProperty() dryRun!: boolean;
  @ApiProperty({ type: RetentionPolicyDto, nullable: true, description: 'The rules applied; null: no policy' })
  rules!: RetentionPolicyDto | null;
  @ApiProperty({ description: 'Versions the policy keeps' }) kept!: number;
  @ApiProperty({ type: [RetentionVersionDto], description: 'Versions it would delete (dry run) or tried to' })
  versions!: RetentionVersionDto[];
  @ApiProperty({ type: CollectedDto }) collected!: CollectedDto;
}
