import { ApiProperty } from '@nestjs/swagger';
import { IsIn, IsNotEmpty, IsOptional, IsString, MaxLength } from 'class-validator';

export class CreateTenantDto {
  @ApiProperty({ example: 'acme' }) @IsString() @IsNotEmpty() @MaxLength(200) name!: string;
}

export class CreateApiKeyDto {
  @ApiProperty({ enum: ['api', 'device'], default: 'api' }) @IsOptional() @IsIn(['api', 'device']) kind?:
    'api' | 'device';
  @ApiProperty({ required: false }) @IsOptional() @IsString() @MaxLength(200) name?: string;
}

export class ApiKeyResponseDto {
  @ApiProperty() id!: string;
  @ApiProperty() tenantId!: string;
  @ApiProperty({ enum: ['api', 'device'] }) kind!: string;
  @ApiProperty({ description: 'The key itself: shown once, stored only as a hash.' }) key!: string;
}

export class TenantResponseDto {
  @ApiProperty() id!: string;
  @ApiProperty() name!: string;
  @ApiProperty() createdAt!: string;
  @ApiProperty({ type: ApiKeyResponseDto }) apiKey!: ApiKeyResponseDto;
}
