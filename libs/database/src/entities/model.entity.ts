import {
  Column,
  CreateDateColumn,
  Entity,
  Index,
  JoinColumn,
  ManyToOne,
  PrimaryGeneratedColumn,
  UpdateDateColumn,
  type Relation,
} from 'typeorm';
import { TenantEntity } from './tenant.entity.js';

/** A named model of a tenant; its uploads are versions. */
@Entity({ name: 'models' })
@Index('ux_models_tenant_name', ['tenantId', 'name'], { unique: true })
export class ModelEntity {
  @PrimaryGeneratedColumn('uuid', { primaryKeyConstraintName: 'pk_models' }) id!: string;
  @Column({ name: 'tenant_id', type: 'uuid' }) tenantId!: string;
  @ManyToOne(() => TenantEntity, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'tenant_id', foreignKeyConstraintName: 'fk_models_tenant' })
  tenant?: Relation<TenantEntity>;
  @Column({ type: 'text' }) name!: string;
  @Column({ type: 'text', default: '' }) description!: string;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' }) updatedAt!: Date;
}
