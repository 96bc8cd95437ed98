import { ApiProperty } from '@nestjs/swagger';
import { IsInt, IsNotEmpty, IsOptional, IsString, Max, MaxLength, Min, ValidateIf } from 'class-validator';
import { ApiKeyResponseDto } from '../auth/keys.dto.js';

export class CreateTenantDto {
  @ApiProperty({ example: 'acme' }) @IsString() @IsNotEmpty() @MaxLength(200) name!: string;
}

export class TenantResponseDto {
  @ApiProperty() id!: string;
  @ApiProperty() name!: string;
  @ApiProperty() createdAt!: string;
  @ApiProperty({ type: ApiKeyResponseDto }) apiKey!: ApiKeyResponseDto;
}

const quotaDescription = (what: string): string =>
  `${what}; null goes back to the operator's default, absent leaves it as it is.`;

/** The tenant's own quotas and rate limit (PATCH semantics). */
export class UpdateTenantQuotasDto {
  @ApiProperty({
    required: false,
    nullable: true,
    type: Number,
    description: quotaDescription('Builds queued or running at once'),
  })
  @IsOptional()
  @ValidateIf((_o, v) => v !== null)
  @IsInt()
  @Min(1)
  @Max(1_000_000)
  concurrentBuilds?: number | null;

  @ApiProperty({
    required: false,
    nullable: true,
    type: Number,
    description: quotaDescription('Uploads started per hour'),
  })
  @IsOptional()
  @ValidateIf((_o, v) => v !== null)
  @IsInt()
  @Min(1)
  @Max(1_000_000)
  uploadsPerHour?: number | null;

  @ApiProperty({ required: false, nullable: true, type: Number, description: quotaDescription('Bytes stored') })
  @IsOptional()
  @ValidateIf((_o, v) => v !== null)
  @IsInt()
  @Min(1)
  storedBytes?: number | null;

  @ApiProperty({
    required: false,
    nullable: true,
    type: Number,
    description: quotaDescription('Requests per minute per key'),
  })
  @IsOptional()
  @ValidateIf((_o, v) => v !== null)
  @IsInt()
  @Min(1)
  @Max(100_000_000)
  rateLimitPerMinute?: number | null;
}

export class TenantQuotasResponseDto {
  @ApiProperty() tenantId!: string;
  @ApiProperty({ description: 'Builds queued or running at once (else 429 QUOTA_EXCEEDED)' }) concurrentBuilds!: number;
  @ApiProperty({ description: 'Uploads started per hour (else 429 QUOTA_EXCEEDED)' }) uploadsPerHour!: number;
  @ApiProperty({ description: 'Bytes stored (else 413 STORAGE_QUOTA_EXCEEDED)' }) storedBytes!: number;
  @ApiProperty({ description: 'Requests per minute per key (else 429 RATE_LIMITED)' }) rateLimitPerMinute!: number;
}
