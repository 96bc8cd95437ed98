import { ApiProperty } from '@nestjs/swagger';
import { IsInt, IsOptional, IsUUID, Max, Min } from 'class-validator';
import { MAX_VERSION_NUMBER } from '../common/validation.js';

export class MoveChannelDto {
  @ApiProperty({ required: false, description: 'Version id to point at (or give `version`)' })
  @IsOptional()
  @IsUUID()
  versionId?: string;

  @ApiProperty({ required: false, description: 'Version number to point at' })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(MAX_VERSION_NUMBER)
  version?: number;
}

export class ChannelResponseDto {
  @ApiProperty() name!: string;
  @ApiProperty() modelId!: string;
  @ApiProperty() versionId!: string;
  @ApiProperty() versionNumber!: number;
  @ApiProperty() updatedAt!: string;
}

export class ChannelMoveResponseDto {
  @ApiProperty({ nullable: true, type: Number }) fromVersion!: number | null;
  @ApiProperty() toVersion!: number;
  @ApiProperty() movedByKeyId!: string;
  @ApiProperty() movedAt!: string;
}
