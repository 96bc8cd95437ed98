import { ApiProperty } from '@nestjs/swagger';
import {
  ArrayMaxSize,
  IsArray,
  IsBoolean,
  IsIn,
  IsInt,
  IsNotEmpty,
  IsObject,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
} from 'class-validator';
import type { ArtifactPrecision } from '@kiln/contracts';
import {
  ARTIFACT_PRECISIONS,
  DEFAULT_UNMEASURED_ARTIFACT_POLICY,
  type DeviceFingerprint,
  UNMEASURED_ARTIFACT_POLICIES,
  type UnmeasuredArtifactPolicy,
} from '@kiln/matching';
import { MAX_VERSION_NUMBER } from '../common/validation.js';
import { DEVICE_ID } from '../telemetry/telemetry.dto.js';

export class ResolveRequestDto {
  @ApiProperty({
    example: 'resnet-edge@prod',
    description: 'Model name or id; `name@channel` picks the version a channel points at.',
  })
  @IsString()
  @IsNotEmpty()
  @MaxLength(200)
  model!: string;

  @ApiProperty({ required: false, description: 'Version number (default: the channel in `model`, else the latest)' })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(MAX_VERSION_NUMBER)
  version?: number;

  @ApiProperty({ required: false, description: 'Channel name (same as `model@channel`)' })
  @IsOptional()
  @IsString()
  @Matches(/^[a-z0-9][a-z0-9._-]{0,62}$/)
  channel?: string;

  @ApiProperty({
    description: 'The device fingerprint (docs/fingerprint.md), schemaVersion 1',
    type: 'object',
    additionalProperties: true,
  })
  @IsObject()
  fingerprint!: DeviceFingerprint;

  @ApiProperty({
    required: false,
    example: '0193a7c2-5b1e-4f0a-9c3d-2e1f0a9b8c7d',
    description:
      'The device id kiln-device keeps in its cache folder. During a staged rollout of the channel it decides, with ' +
      'the rollout id, whether this device gets the new version (a device without one keeps the previous version).',
  })
  @IsOptional()
  @IsString()
  @Matches(DEVICE_ID)
  deviceId?: string;

  @ApiProperty({
    required: false,
    type: [String],
    enum: ARTIFACT_PRECISIONS,
    example: ['fp32', 'bf16'],
    description:
      'Precisions this device accepts (default ["fp32"]). Reduced-precision artifacts (bf16, fp16) return ' +
      'different numbers than the portable graph, so they are only chosen when listed here; fp32 is always accepted.',
  })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(ARTIFACT_PRECISIONS.length)
  @IsIn(ARTIFACT_PRECISIONS, { each: true })
  acceptPrecisions?: ArtifactPrecision[];

  @ApiProperty({
    required: false,
    default: false,
    description:
      'Also accept artifacts built without the full build sandbox (a worker run with KILN_SANDBOX=insecure-local, ' +
      'for development only). Default false: such artifacts are rejected with the reason, whatever else fits.',
  })
  @IsOptional()
  @IsBoolean()
  acceptInsecureBuilds?: boolean;

  @ApiProperty({
    required: false,
    enum: UNMEASURED_ARTIFACT_POLICIES,
    default: DEFAULT_UNMEASURED_ARTIFACT_POLICY,
    description:
      'Artifacts whose speed was never measured (cross builds verified under emulation, e.g. linux-aarch64) and ' +
      'that devices of this class have not timed yet: "serve" (default) serves them over the portable graph, ' +
      '"evidence-only" serves the portable graph until devices report their speed. The reasons name the policy.',
  })
  @IsOptional()
  @IsIn(UNMEASURED_ARTIFACT_POLICIES)
  unmeasuredArtifacts?: UnmeasuredArtifactPolicy;
}

export class ResolvedPartDto {
  @ApiProperty({ enum: ['code', 'weights'] }) role!: string;
  @ApiProperty() sha256!: string;
  @ApiProperty() size!: number;
  @ApiProperty({ required: false }) entry?: string;
  @ApiProperty() url!: string;
}

export class ResolvedArtifactDto {
  @ApiProperty() id!: string;
  @ApiProperty() targetId!: string;
  @ApiProperty({ description: 'sha256 of the manifest bytes (what the signature covers)' }) sha256!: string;
  @ApiProperty({ description: 'Total bytes of all parts' }) size!: number;
  @ApiProperty({ description: 'ed25519 signature (base64) of "kiln-artifact-manifest-v1\\n" + manifest bytes' })
  signature!: string;
  @ApiProperty() signingKeyId!: string;
  @ApiProperty() manifestUrl!: string;
  @ApiProperty({ type: [ResolvedPartDto] }) parts!: ResolvedPartDto[];
  @ApiProperty() expiresAt!: string;
  @ApiProperty() speedup!: number;
  @ApiProperty({ enum: ['device', 'build-host'] }) basis!: 'device' | 'build-host';
  @ApiProperty({ nullable: true, type: [Number], minItems: 2, maxItems: 2 }) speedupCi!: [number, number] | null;
  @ApiProperty({ type: [String] }) reasons!: string[];
}

export class PortableFallbackDto {
  @ApiProperty({ enum: ['portable'] }) kind!: 'portable';
  @ApiProperty({ description: 'The uploaded .pt2; load with torch.export.load' }) url!: string;
  @ApiProperty() sha256!: string;
  @ApiProperty() size!: number;
  @ApiProperty() expiresAt!: string;
  @ApiProperty() reason!: string;
  @ApiProperty({
    description:
      'The signed manifest of the portable graph: binds the .pt2 (sha256, size) to tenant, model and version, ' +
      'with the model content hash every artifact manifest carries. Devices check it before reading the file.',
  })
  manifestUrl!: string;
  @ApiProperty({ description: 'sha256 of the manifest bytes' }) manifestSha256!: string;
  @ApiProperty({ description: 'ed25519 signature (base64) of "kiln-portable-manifest-v1\\n" + manifest bytes' })
  signature!: string;
  @ApiProperty() signingKeyId!: string;
}

export class RejectedArtifactDto {
  @ApiProperty() artifactId!: string;
  @ApiProperty() targetId!: string;
  @ApiProperty({ type: [String] }) reasons!: string[];
}

export class RankedArtifactDto {
  @ApiProperty() artifactId!: string;
  @ApiProperty() targetId!: string;
  @ApiProperty({ description: 'Speedup over the portable graph it is ranked by (see basis)' }) speedup!: number;
  @ApiProperty({
    enum: ['device', 'build-host'],
    description: 'device: measured on devices of the requesting class; build-host: the build host timing',
  })
  basis!: 'device' | 'build-host';
  @ApiProperty({
    nullable: true,
    type: [Number],
    minItems: 2,
    maxItems: 2,
    description: '95 % interval of speedup; null when unknown',
  })
  speedupCi!: [number, number] | null;
}

export class DeviceClassDto {
  @ApiProperty({ example: 'dc-4f2a9c1be07d3a55' }) key!: string;
  @ApiProperty({ example: 'linux x86_64 · x86-64-v3 · AMD EPYC 7B13 · torch 2.13.0+cpu · no GPU' }) label!: string;
}

export class RolloutAssignmentDto {
  @ApiProperty() id!: string;
  @ApiProperty({ enum: ['running', 'paused', 'completed'] }) status!: string;
  @ApiProperty() stageIndex!: number;
  @ApiProperty({ description: 'Percent of devices the current stage covers' }) percent!: number;
  @ApiProperty({ enum: ['new', 'previous'], description: 'Which version this device got' }) arm!: 'new' | 'previous';
  @ApiProperty({ description: 'Why, in words' }) reason!: string;
}

export class ModelRefDto {
  @ApiProperty() id!: string;
  @ApiProperty() name!: string;
}

export class ResolvedVersionDto {
  @ApiProperty() id!: string;
  @ApiProperty() number!: number;
  @ApiProperty({ enum: ['version', 'channel', 'latest'], description: 'What chose the version' })
  selectedBy!: 'version' | 'channel' | 'latest';
  @ApiProperty({ nullable: true, type: String, description: 'The channel that chose it, if one did' })
  channel!: string | null;
}

export class ResolutionResponseDto {
  @ApiProperty({ type: ModelRefDto }) model!: ModelRefDto;
  @ApiProperty({ type: ResolvedVersionDto }) version!: ResolvedVersionDto;
  @ApiProperty({ type: DeviceClassDto, description: 'The class fleet evidence is read for (docs/fleet.md)' })
  deviceClass!: DeviceClassDto;
  @ApiProperty({
    nullable: true,
    type: RolloutAssignmentDto,
    description: 'Set while the channel is in a staged rollout',
  })
  rollout!: RolloutAssignmentDto | null;
  @ApiProperty({ nullable: true, type: ResolvedArtifactDto }) artifact!: ResolvedArtifactDto | null;
  @ApiProperty({ type: PortableFallbackDto }) fallback!: PortableFallbackDto;
  @ApiProperty({ type: [RankedArtifactDto] }) ranked!: RankedArtifactDto[];
  @ApiProperty({ type: [RejectedArtifactDto] }) rejected!: RejectedArtifactDto[];
}

export class SigningKeyDto {
  @ApiProperty() keyId!: string;
  @ApiProperty({ enum: ['ed25519'] }) algorithm!: string;
  @ApiProperty({ description: 'Raw 32-byte public key, base64' }) publicKey!: string;
  @ApiProperty() publicKeyPem!: string;
}
