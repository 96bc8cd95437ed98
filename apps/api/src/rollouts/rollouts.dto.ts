import { ApiProperty } from '@nestjs/swagger';
import type { RolloutEventKind } from '@kiln/database';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsInt,
  IsNumber,
  IsOptional,
  IsString,
  IsUUID,
  Max,
  MaxLength,
  Min,
  ValidateNested,
} from 'class-validator';
import { MAX_VERSION_NUMBER } from '../common/validation.js';

/** Per-rollout overrides of the gate defaults (KILN_ROLLOUT_*; docs/fleet.md). */
export class RolloutGatesDto {
  @ApiProperty({ required: false, description: 'Seconds a stage must hold its gates before promotion' })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(30 * 86_400)
  holdSeconds?: number;

  @ApiProperty({ required: false, description: 'Seconds between gate checks' })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(86_400)
  checkIntervalSeconds?: number;

  @ApiProperty({
    required: false,
    description: 'Share of failed runs of the new version (per class) that breaks the error gate',
  })
  @IsOptional()
  @IsNumber({ allowNaN: false, allowInfinity: false })
  @Min(0)
  @Max(1)
  maxErrorRate?: number;

  @ApiProperty({ required: false, description: 'Reports of a class a gate needs before it judges the class' })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(1_000_000)
  minReports?: number;

  @ApiProperty({
    required: false,
    description: 'New vs previous latency (same class, same stage) that breaks the latency gate',
  })
  @IsOptional()
  @IsNumber({ allowNaN: false, allowInfinity: false })
  @Min(1)
  @Max(100)
  maxLatencyRatio?: number;

  @ApiProperty({
    required: false,
    description: 'Reports of the new version a stage needs before promotion (0: time alone)',
  })
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(1_000_000)
  minReportsToPromote?: number;
}

export class StartRolloutDto {
  @ApiProperty({ required: false, description: 'The version to roll out (or give `version`)' })
  @IsOptional()
  @IsUUID()
  versionId?: string;

  @ApiProperty({ required: false, description: 'Its number' })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(MAX_VERSION_NUMBER)
  version?: number;

  @ApiProperty({
    required: false,
    type: [Number],
    example: [10, 50, 100],
    description: 'Percent of devices per stage, increasing, ending at 100 (default KILN_ROLLOUT_STAGES)',
  })
  @IsOptional()
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(10)
  @IsInt({ each: true })
  @Min(1, { each: true })
  @Max(100, { each: true })
  stages?: number[];

  @ApiProperty({ required: false, type: RolloutGatesDto })
  @IsOptional()
  @ValidateNested()
  @Type(() => RolloutGatesDto)
  gates?: RolloutGatesDto;
}

export class RolloutControlDto {
  @ApiProperty({ required: false, description: 'Why (kept in the rollout history)' })
  @IsOptional()
  @IsString()
  @MaxLength(500)
  reason?: string;
}

export class RolloutGatesResponseDto {
  @ApiProperty() holdSeconds!: number;
  @ApiProperty() checkIntervalSeconds!: number;
  @ApiProperty() maxErrorRate!: number;
  @ApiProperty() minReports!: number;
  @ApiProperty() maxLatencyRatio!: number;
  @ApiProperty() minReportsToPromote!: number;
}

export class RolloutClassStateDto {
  @ApiProperty() deviceClass!: string;
  @ApiProperty() label!: string;
  @ApiProperty({ enum: ['active', 'rolled_back'] }) status!: string;
  @ApiProperty({ nullable: true, type: String }) reason!: string | null;
  @ApiProperty() at!: string;
}

/** Every kind of rollout event (RolloutEventKind of @kiln/database), for the document. */
export const ROLLOUT_EVENT_KINDS = [
  'started',
  'stage_started',
  'promoted',
  'paused',
  'resumed',
  'class_rolled_back',
  'halted',
  'rolled_back',
  'completed',
] as const satisfies readonly RolloutEventKind[];

export class RolloutEventDto {
  @ApiProperty({ enum: ROLLOUT_EVENT_KINDS }) kind!: RolloutEventKind;
  @ApiProperty() stageIndex!: number;
  @ApiProperty() percent!: number;
  @ApiProperty({ nullable: true, type: String }) deviceClass!: string | null;
  @ApiProperty() message!: string;
  @ApiProperty({ type: 'object', additionalProperties: true }) detail!: Record<string, unknown>;
  @ApiProperty({ description: '`gate` for the rollout’s own decisions, else the API key id that asked' })
  actor!: string;
  @ApiProperty() at!: string;
}

export class RolloutStatsDto {
  @ApiProperty() stageIndex!: number;
  @ApiProperty() deviceClass!: string;
  @ApiProperty() label!: string;
  @ApiProperty({ enum: ['new', 'previous'] }) arm!: string;
  @ApiProperty() reports!: number;
  @ApiProperty() failures!: number;
  @ApiProperty({ type: 'object', additionalProperties: { type: 'integer' } }) failureCodes!: Record<string, number>;
  @ApiProperty({ nullable: true, type: Number, description: 'Geometric mean on-device latency of what ran (ms)' })
  latencyMs!: number | null;
}

export class RolloutResponseDto {
  @ApiProperty() id!: string;
  @ApiProperty() modelId!: string;
  @ApiProperty() channel!: string;
  @ApiProperty({ enum: ['running', 'paused', 'completed', 'rolled_back'] }) status!: string;
  @ApiProperty() fromVersion!: number;
  @ApiProperty() toVersion!: number;
  @ApiProperty({ type: [Number] }) stages!: number[];
  @ApiProperty() stageIndex!: number;
  @ApiProperty({ description: 'Percent of devices the current stage covers' }) percent!: number;
  @ApiProperty({ type: RolloutGatesResponseDto }) gates!: RolloutGatesResponseDto;
  @ApiProperty({ type: [RolloutClassStateDto] }) classes!: RolloutClassStateDto[];
  @ApiProperty({ type: [RolloutEventDto], description: 'History, oldest first' }) events!: RolloutEventDto[];
  @ApiProperty({ type: [RolloutStatsDto] }) stats!: RolloutStatsDto[];
  @ApiProperty() createdByKeyId!: string;
  @ApiProperty() createdAt!: string;
  @ApiProperty() stageStartedAt!: string;
  @ApiProperty({ nullable: true, type: String }) finishedAt!: string | null;
}
