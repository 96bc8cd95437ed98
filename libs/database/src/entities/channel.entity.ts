import {
  Column,
  Entity,
  Index,
  JoinColumn,
  ManyToOne,
  PrimaryGeneratedColumn,
  type Relation,
  UpdateDateColumn,
} from 'typeorm';
import { ModelEntity } from './model.entity.js';
import { ModelVersionEntity } from './model-version.entity.js';

/** A named pointer (prod, canary, ...) from a model to one of its versions; devices resolve `model@channel`. */
@Entity({ name: 'channels' })
@Index('ux_channels_model_name', ['modelId', 'name'], { unique: true })
export class ChannelEntity {
  @PrimaryGeneratedColumn('uuid', { primaryKeyConstraintName: 'pk_channels' }) id!: string;
  @Column({ name: 'tenant_id', type: 'uuid' }) tenantId!: string;
  @Column({ name: 'model_id', type: 'uuid' }) modelId!: string;
  @ManyToOne(() => ModelEntity, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'model_id', foreignKeyConstraintName: 'fk_channels_model' })
  model?: Relation<ModelEntity>;
  @Column({ type: 'text' }) name!: string;
  @Column({ name: 'version_id', type: 'uuid' }) versionId!: string;
  @ManyToOne(() => ModelVersionEntity, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'version_id', foreignKeyConstraintName: 'fk_channels_version' })
  version?: Relation<ModelVersionEntity>;
  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' }) updatedAt!: Date;
}
