import { ApiProperty } from '@nestjs/swagger';
import {
  ArrayMaxSize,
  ArrayMinSize,
  ArrayUnique,
  IsArray,
  IsIn,
  IsInt,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
} from 'class-validator';
import type { ApiKeyEntity } from '@kiln/database';

/** A model name (as POST /v1/models accepts it) or `*` for every model of the tenant. */
const MODEL_SCOPE_ENTRY = /^(\*|[A-Za-z0-9][A-Za-z0-9._-]{0,199})$/;

export class CreateApiKeyDto {
  @ApiProperty({ enum: ['api', 'device'], default: 'api' })
  @IsOptional()
  @IsIn(['api', 'device'])
  kind?: 'api' | 'device';

  @ApiProperty({ required: false }) @IsOptional() @IsString() @MaxLength(200) name?: string;

  @ApiProperty({
    required: false,
    type: [String],
    example: ['resnet-edge'],
    description:
      'Device tokens: the models this token is enrolled for (names), or ["*"] for every model of the tenant; ' +
      'required for device tokens. API keys reach every model (omit it, or ["*"]).',
  })
  @IsOptional()
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(1000)
  @ArrayUnique()
  @IsString({ each: true })
  @Matches(MODEL_SCOPE_ENTRY, { each: true, message: 'each model must be a model name or "*"' })
  models?: string[];
}

export class RotateApiKeyDto {
  @ApiProperty({
    required: false,
    default: 0,
    description: 'Seconds the old key keeps working after the rotation (default 0: refused at once); at most 7 days.',
  })
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(7 * 24 * 3600)
  graceSeconds?: number;
}

export class ApiKeySummaryDto {
  @ApiProperty() id!: string;
  @ApiProperty() tenantId!: string;
  @ApiProperty({ enum: ['api', 'device'] }) kind!: string;
  @ApiProperty() name!: string;
  @ApiProperty({ description: 'Public part of the key (kiln_<id> / kdev_<id>): tells keys apart, proves nothing' })
  prefix!: string;
  @ApiProperty({ type: [String], description: 'Model names the key may reach, or ["*"]' }) models!: string[];
  @ApiProperty() createdAt!: string;
  @ApiProperty({ nullable: true, type: String }) revokedAt!: string | null;
  @ApiProperty({ nullable: true, type: String, description: 'Refused from then on (a rotation grace period)' })
  expiresAt!: string | null;
  @ApiProperty({ nullable: true, type: String, description: 'The key this one replaced' }) rotatedFromId!:
    string | null;
}

export class ApiKeyResponseDto extends ApiKeySummaryDto {
  @ApiProperty({ description: 'The key itself: shown once, stored only as a hash.' }) key!: string;
}

export class RotatedApiKeyResponseDto extends ApiKeyResponseDto {
  @ApiProperty({ type: ApiKeySummaryDto, description: 'The key that was replaced (revoked, or expiring)' })
  previous!: ApiKeySummaryDto;
}

export function toApiKeySummary(k: ApiKeyEntity): ApiKeySummaryDto {
  return {
    id: k.id,
    tenantId: k.tenantId,
    kind: k.kind,
    name: k.name,
    prefix: k.prefix,
    models: k.modelScope,
    createdAt: k.createdAt.toISOString(),
    revokedAt: k.revokedAt?.toISOString() ?? null,
    expiresAt: k.expiresAt?.toISOString() ?? null,
    rotatedFromId: k.rotatedFromId,
  };
}
