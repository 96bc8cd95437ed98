import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsISO8601, IsOptional, IsString, IsUUID, Matches, Max, MaxLength, Min } from 'class-validator';

/** GET /v1/audit-events: filters and the page (newest first; `cursor` from the previous page's `nextCursor`). */
export class ListAuditEventsQueryDto {
  @ApiPropertyOptional({ format: 'uuid', description: 'Only what this key did' })
  @IsOptional()
  @IsUUID()
  keyId?: string;

  @ApiPropertyOptional({ description: 'Only this action, or those starting with it: `DELETE`, `POST /v1/keys`' })
  @IsOptional()
  @IsString()
  @MaxLength(200)
  action?: string;

  @ApiPropertyOptional({ format: 'uuid', description: 'Only events that named this id (before or after)' })
  @IsOptional()
  @IsUUID()
  targetId?: string;

  @ApiPropertyOptional({ description: 'From this time on (ISO 8601)' })
  @IsOptional()
  @IsISO8601({ strict: true })
  since?: string;

  @ApiPropertyOptional({ description: 'Before this time (ISO 8601)' })
  @IsOptional()
  @IsISO8601({ strict: true })
  until?: string;

  @ApiPropertyOptional({ minimum: 1, maximum: 500, default: 100 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(500)
  limit?: number;

  @ApiPropertyOptional({ description: "The previous page's nextCursor" })
  @IsOptional()
  @IsString()
  @Matches(/^[A-Za-z0-9_-]{1,200}$/)
  cursor?: string;
}

export class AuditEventDto {
  @ApiProperty() id!: string;
  @ApiProperty() at!: string;
  @ApiProperty({
    enum: ['key', 'admin', 'retention'],
    description:
      'key: a tenant key; admin: the operator token; retention: a delete by the retention policy (keyId: the key that ran it, null when scheduled)',
  })
  actor!: string;
  @ApiProperty({ nullable: true, type: String }) keyId!: string | null;
  @ApiProperty({ nullable: true, type: String }) role!: string | null;
  @ApiProperty({ example: 'DELETE /v1/models/:modelId' }) action!: string;
  @ApiProperty({ type: 'object', additionalProperties: { type: 'string' }, description: 'The ids the request named' })
  targetIds!: Record<string, string>;
  @ApiProperty({ type: 'object', additionalProperties: { type: 'string' }, description: 'The ids the answer named' })
  resultIds!: Record<string, string>;
  @ApiProperty() status!: number;
  @ApiProperty({ nullable: true, type: String }) errorCode!: string | null;
  @ApiProperty({ description: 'Where the request came from (client address)' }) ip!: string;
  @ApiProperty() userAgent!: string;
}

export class AuditEventPageDto {
  @ApiProperty({ type: [AuditEventDto] }) events!: AuditEventDto[];
  @ApiProperty({ nullable: true, type: String, description: 'Pass as `cursor` for the next (older) page' })
  nextCursor!: string | null;
}
