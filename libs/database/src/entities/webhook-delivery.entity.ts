import {
  Column,
  CreateDateColumn,
  Entity,
  Index,
  JoinColumn,
  ManyToOne,
  PrimaryGeneratedColumn,
  type Relation,
} from 'typeorm';
import { WebhookEndpointEntity } from './webhook-endpoint.entity.js';

export type WebhookDeliveryStatus = 'pending' | 'delivered' | 'failed';

/**
 * One event sent (or being sent) to one endpoint: the exact payload, how many attempts, and what the last one got
 * back. A redelivery is a new row with the same event id (receivers deduplicate on it).
 */
@Entity({ name: 'webhook_deliveries' })
@Index('ix_webhook_deliveries_endpoint_created', ['endpointId', 'createdAt'])
export class WebhookDeliveryEntity {
  @PrimaryGeneratedColumn('uuid', { primaryKeyConstraintName: 'pk_webhook_deliveries' }) id!: string;
  @Column({ name: 'tenant_id', type: 'uuid' }) tenantId!: string;
  @Column({ name: 'endpoint_id', type: 'uuid' }) endpointId!: string;
  @ManyToOne(() => WebhookEndpointEntity, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'endpoint_id', foreignKeyConstraintName: 'fk_webhook_deliveries_endpoint' })
  endpoint?: Relation<WebhookEndpointEntity>;
  @Column({ name: 'event_id', type: 'uuid' }) eventId!: string;
  @Column({ name: 'event_type', type: 'text' }) eventType!: string;
  @Column({ type: 'jsonb' }) payload!: Record<string, unknown>;
  @Column({ type: 'text', default: 'pending' }) status!: WebhookDeliveryStatus;
  @Column({ type: 'int', default: 0 }) attempts!: number;
  @Column({ name: 'last_status_code', type: 'int', nullable: true }) lastStatusCode!: number | null;
  @Column({ name: 'last_error', type: 'text', nullable: true }) lastError!: string | null;
  @Column({ name: 'last_response_body', type: 'text', nullable: true }) lastResponseBody!: string | null;
  @Column({ name: 'last_attempt_at', type: 'timestamptz', nullable: true }) lastAttemptAt!: Date | null;
  @Column({ name: 'delivered_at', type: 'timestamptz', nullable: true }) deliveredAt!: Date | null;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
}
