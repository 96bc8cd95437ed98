import { ApiProperty } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsIn,
  IsInt,
  IsNumber,
  IsObject,
  IsOptional,
  IsString,
  IsUUID,
  Matches,
  Max,
  MaxLength,
  Min,
  ValidateNested,
  ValidateBy,
  type ValidationOptions,
} from 'class-validator';
import type { DeviceFingerprint } from '@kiln/matching';

/** Reports one batch may carry: a device flushes at most this many at a time (kiln-device queues the rest). */
export const MAX_REPORTS_PER_BATCH = 100;
/** Input sizes one report may time. */
export const MAX_LATENCY_ENTRIES = 8;
/** A device id: what kiln-device keeps in its cache folder (a UUID), or an operator's own stable name. */
export const DEVICE_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{7,127}$/;

const MAX_DIMS = 8;
const MAX_INPUTS = 16;

/** `[[8, 64], [8]]`: per input, its sizes (non-negative integers), bounded in count and rank. */
function IsInputShapes(options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'isInputShapes',
      validator: {
        validate: (value: unknown) =>
          Array.isArray(value) &&
          value.length <= MAX_INPUTS &&
          value.every(
            (shape) =>
              Array.isArray(shape) &&
              shape.length <= MAX_DIMS &&
              shape.every((d) => Number.isInteger(d) && (d as number) >= 0 && (d as number) <= 2 ** 31),
          ),
        defaultMessage: () =>
          `$property must list each input's sizes (at most ${MAX_INPUTS} inputs of at most ${MAX_DIMS} non-negative integers)`,
      },
    },
    options,
  );
}

export class TelemetryLatencyDto {
  @ApiProperty({
    type: 'array',
    items: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 2 ** 31 }, maxItems: MAX_DIMS },
    maxItems: MAX_INPUTS,
    example: [[8, 64]],
    description: 'The input sizes this entry timed, per input',
  })
  @IsInputShapes()
  inputShapes!: number[][];

  @ApiProperty({ required: false, description: "The artifact's median time for one call on the device (ms)" })
  @IsOptional()
  @IsNumber({ allowNaN: false, allowInfinity: false })
  @Min(0)
  @Max(1e7)
  artifactMs?: number;

  @ApiProperty({
    required: false,
    description: "The portable graph's median time for one call on the same inputs (ms)",
  })
  @IsOptional()
  @IsNumber({ allowNaN: false, allowInfinity: false })
  @Min(0)
  @Max(1e7)
  portableMs?: number;

  @ApiProperty({ description: 'Timed calls per model behind the medians' })
  @IsInt()
  @Min(1)
  @Max(100_000)
  runs!: number;
}

export class TelemetryReportDto {
  @ApiProperty({
    format: 'uuid',
    description:
      'A UUIDv7 the device made for this report (its first 48 bits are the device clock in ms): sending it again ' +
      'is harmless, the report is stored once. Reports older than 7 days or more than an hour ahead are refused.',
  })
  @IsUUID('7')
  reportId!: string;

  @ApiProperty({ format: 'uuid', description: 'model.id of the resolver answer' })
  @IsUUID()
  modelId!: string;

  @ApiProperty({ format: 'uuid', description: 'version.id of the resolver answer' })
  @IsUUID()
  versionId!: string;

  @ApiProperty({
    required: false,
    format: 'uuid',
    description: 'The artifact the resolver chose (none: the portable graph was chosen)',
  })
  @IsOptional()
  @IsUUID()
  artifactId?: string;

  @ApiProperty({ required: false, format: 'uuid', description: 'version.rollout.id of the resolver answer, if any' })
  @IsOptional()
  @IsUUID()
  rolloutId?: string;

  @ApiProperty({
    enum: ['artifact', 'portable', 'none'],
    description:
      'What produced the outputs in the end (portable after a failed artifact with --fallback; none: nothing ran)',
  })
  @IsIn(['artifact', 'portable', 'none'])
  ran!: 'artifact' | 'portable' | 'none';

  @ApiProperty({
    enum: ['ok', 'failed'],
    description: 'Whether what the resolver chose verified, loaded and ran right',
  })
  @IsIn(['ok', 'failed'])
  outcome!: 'ok' | 'failed';

  @ApiProperty({ required: false, enum: ['download', 'verify', 'load', 'run', 'compare'] })
  @IsOptional()
  @IsIn(['download', 'verify', 'load', 'run', 'compare'])
  failureStage?: string;

  @ApiProperty({ required: false, example: 'LOAD_FAILED', description: "The device runtime's error code" })
  @IsOptional()
  @IsString()
  @Matches(/^[A-Z][A-Z0-9_]{1,63}$/)
  errorCode?: string;

  @ApiProperty({ type: [TelemetryLatencyDto], maxItems: MAX_LATENCY_ENTRIES })
  @IsArray()
  @ArrayMaxSize(MAX_LATENCY_ENTRIES)
  @ValidateNested({ each: true })
  @Type(() => TelemetryLatencyDto)
  latency!: TelemetryLatencyDto[];
}

export class TelemetryBatchDto {
  @ApiProperty({
    example: '0193a7c2-5b1e-4f0a-9c3d-2e1f0a9b8c7d',
    description: 'The device id kiln-device keeps in its cache folder',
  })
  @IsString()
  @Matches(DEVICE_ID)
  deviceId!: string;

  @ApiProperty({
    description:
      "The device's fingerprint (docs/fingerprint.md) when it ran these: the server derives the device class from it",
    type: 'object',
    additionalProperties: true,
  })
  @IsObject()
  fingerprint!: DeviceFingerprint;

  @ApiProperty({ required: false, example: '0.2.0' })
  @IsOptional()
  @IsString()
  @MaxLength(64)
  runtimeVersion?: string;

  @ApiProperty({ type: [TelemetryReportDto], minItems: 1, maxItems: MAX_REPORTS_PER_BATCH })
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(MAX_REPORTS_PER_BATCH)
  @ValidateNested({ each: true })
  @Type(() => TelemetryReportDto)
  reports!: TelemetryReportDto[];
}

export class TelemetryRejectionDto {
  @ApiProperty() reportId!: string;
  @ApiProperty() reason!: string;
}

export class TelemetryAckDto {
  @ApiProperty({ description: 'Reports stored now' }) accepted!: number;
  @ApiProperty({ description: 'Reports already stored before (same reportId): nothing changed' }) duplicates!: number;
  @ApiProperty({
    type: [TelemetryRejectionDto],
    description: 'Reports refused, each with why (not retried by devices)',
  })
  rejected!: TelemetryRejectionDto[];
  @ApiProperty({ description: 'The device class the reports were counted under' }) deviceClass!: string;
}
