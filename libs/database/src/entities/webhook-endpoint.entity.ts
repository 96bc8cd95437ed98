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
import { TenantEntity } from './tenant.entity.js';

/**
 * A tenant's webhook: where to POST which events. The secret signs every delivery (HMAC-SHA256, docs/webhooks.md);
 * it is shown once when the endpoint is registered and never again (it must be kept to sign, so it is not hashed).
 */
@Entity({ name: 'webhook_endpoints' })
@Index('ix_webhook_endpoints_tenant', ['tenantId'])
export class WebhookEndpointEntity {
  @PrimaryGeneratedColumn('uuid', { primaryKeyConstraintName: 'pk_webhook_endpoints' }) id!: string;
  @Column({ name: 'tenant_id', type: 'uuid' }) tenantId!: string;
  @ManyToOne(() => TenantEntity, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'tenant_id', foreignKeyConstraintName: 'fk_webhook_endpoints_tenant' })
  tenant?: Relation<TenantEntity>;
  @Column({ type: 'text' }) url!: string;
  @Column({ type: 'text', array: true }) events!: string[];
  @Column({ type: 'text', default: '' }) description!: string;
  @Column({ type: 'text' }) secret!: string;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
}
