import { ApiProperty } from '@nestjs/swagger';
import {
  ArrayMaxSize,
  ArrayMinSize,
  ArrayUnique,
  IsArray,
  IsIn,
  IsInt,
  IsISO8601,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
  ValidateIf,
} from 'class-validator';
import { API_KEY_ROLES, type ApiKeyEntity, type ApiKeyRole } from '@kiln/database';

/** A model name (as POST /v1/models accepts it) or `*` for every model of the tenant. */
const MODEL_SCOPE_ENTRY = /^(\*|[A-Za-z0-9][A-Za-z0-9._-]{0,199})$/;

export class CreateApiKeyDto {
  @ApiProperty({
    enum: ['api', 'device'],
    required: false,
    description: 'Before roles: `device` is the device role, `api` (default) an owner unless `role` says otherwise',
  })
  @IsOptional()
  @IsIn(['api', 'device'])
  kind?: 'api' | 'device';

  @ApiProperty({
    enum: API_KEY_ROLES,
    required: false,
    description:
      'What the key may do (docs/security.md, "Roles"): owner (keys, deletes, everything), developer (upload, ' +
      'compile, channels, rollouts), viewer (read), device (resolve, download, telemetry). Default: owner, or ' +
      'device for kind "device".',
  })
  @IsOptional()
  @IsIn(API_KEY_ROLES)
  role?: ApiKeyRole;

  @ApiProperty({ required: false, description: 'Refused after this many seconds (default: never); 60 s to 10 years' })
  @IsOptional()
  @IsInt()
  @Min(60)
  @Max(10 * 365 * 24 * 3600)
  expiresInSeconds?: number;

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

export class UpdateApiKeyDto {
  @ApiProperty({ required: false }) @IsOptional() @IsString() @MaxLength(200) name?: string;

  @ApiProperty({
    required: false,
    type: String,
    description: 'When the key stops working: an ISO 8601 date-time in the future, or "never"',
    example: '2027-01-01T00:00:00Z',
  })
  @IsOptional()
  @IsString()
  @ValidateIf((dto: UpdateApiKeyDto) => dto.expiresAt !== 'never')
  @IsISO8601({ strict: true }, { message: 'expiresAt must be an ISO 8601 date-time or "never"' })
  expiresAt?: string;
}

export class ApiKeySummaryDto {
  @ApiProperty() id!: string;
  @ApiProperty() tenantId!: string;
  @ApiProperty({ enum: ['api', 'device'] }) kind!: string;
  @ApiProperty({ enum: API_KEY_ROLES }) role!: string;
  @ApiProperty() name!: string;
  @ApiProperty({ description: 'Public part of the key (kiln_<id> / kdev_<id>): tells keys apart, proves nothing' })
  prefix!: string;
  @ApiProperty({ type: [String], description: 'Model names the key may reach, or ["*"]' }) models!: string[];
  @ApiProperty() createdAt!: string;
  @ApiProperty({ nullable: true, type: String }) revokedAt!: string | null;
  @ApiProperty({
    nullable: true,
    type: String,
    description: 'Refused from then on (an expiry its owner gave it, or a rotation grace period)',
  })
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
    role: k.role,
    name: k.name,
    prefix: k.prefix,
    models: k.modelScope,
    createdAt: k.createdAt.toISOString(),
    revokedAt: k.revokedAt?.toISOString() ?? null,
    expiresAt: k.expiresAt?.toISOString() ?? null,
    rotatedFromId: k.rotatedFromId,
  };
}
