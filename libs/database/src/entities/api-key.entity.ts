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

export type ApiKeyKind = 'api' | 'device';

/**
 * An API key, stored hashed: only `prefix` (to find the row) and the sha256 of the whole key are kept.
 * `api` keys can do everything within their tenant; `device` tokens can only resolve and download.
 */
@Entity({ name: 'api_keys' })
export class ApiKeyEntity {
  @PrimaryGeneratedColumn('uuid', { primaryKeyConstraintName: 'pk_api_keys' }) id!: string;
  @Index('ix_api_keys_tenant') @Column({ name: 'tenant_id', type: 'uuid' }) tenantId!: string;
  @ManyToOne(() => TenantEntity, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'tenant_id', foreignKeyConstraintName: 'fk_api_keys_tenant' })
  tenant?: Relation<TenantEntity>;
  @Index('ux_api_keys_prefix', { unique: true }) @Column({ type: 'text' }) prefix!: string;
  @Column({ name: 'key_hash', type: 'text' }) keyHash!: string;
  @Column({ type: 'text', default: 'api' }) kind!: ApiKeyKind;
  @Column({ type: 'text', default: '' }) name!: string;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
  @Column({ name: 'revoked_at', type: 'timestamptz', nullable: true }) revokedAt!: Date | null;
}
