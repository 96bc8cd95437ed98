import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional } from 'class-validator';

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
