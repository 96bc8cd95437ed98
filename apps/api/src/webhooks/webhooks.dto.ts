import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { ArrayMaxSize, ArrayMinSize, IsIn, IsOptional, IsString, MaxLength } from 'class-validator';
import { WEBHOOK_EVENTS, type WebhookEventType } from '@kiln/core';

export class CreateWebhookDto {
  @ApiProperty({
    description:
      'Where to POST the events: http(s), no credentials; a public address unless the operator allows it ' +
      '(KILN_WEBHOOK_ALLOWED_DESTINATIONS)',
    example: 'https://ci.example.com/kiln-events',
  })
  @IsString()
  @MaxLength(2048)
  url!: string;

  @ApiProperty({ enum: WEBHOOK_EVENTS, isArray: true, description: 'The events this endpoint receives' })
  @ArrayMinSize(1)
  @ArrayMaxSize(WEBHOOK_EVENTS.length)
  @IsIn(WEBHOOK_EVENTS, { each: true })
  events!: WebhookEventType[];

  @ApiPropertyOptional() @IsOptional() @IsString() @MaxLength(200) description?: string;
}

export class WebhookDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty() url!: string;
  @ApiProperty({ enum: WEBHOOK_EVENTS, isArray: true }) events!: string[];
  @ApiProperty() description!: string;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
}

export class CreatedWebhookDto extends WebhookDto {
  @ApiProperty({
    description:
      'Signs every delivery (Kiln-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">): shown once, ' +
      'keep it where the receiver can read it',
  })
  secret!: string;
}

export class WebhookDeliveryDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ format: 'uuid', description: 'The event (the same in a redelivery): deduplicate on it' })
  eventId!: string;
  @ApiProperty({ enum: WEBHOOK_EVENTS }) eventType!: string;
  @ApiProperty({ enum: ['pending', 'delivered', 'failed'] }) status!: string;
  @ApiProperty() attempts!: number;
  @ApiProperty({ type: Number, nullable: true }) lastStatusCode!: number | null;
  @ApiProperty({ type: String, nullable: true }) lastError!: string | null;
  @ApiProperty({ type: String, nullable: true, description: "The first KiB of the receiver's last answer" })
  lastResponseBody!: string | null;
  @ApiProperty({ type: String, nullable: true, format: 'date-time' }) lastAttemptAt!: string | null;
  @ApiProperty({ type: String, nullable: true, format: 'date-time' }) deliveredAt!: string | null;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ type: 'object', additionalProperties: true, description: 'The body that is sent' })
  payload!: Record<string, unknown>;
}
