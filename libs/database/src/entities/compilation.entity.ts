import {
  Column,
  CreateDateColumn,
  Entity,
  Index,
  JoinColumn,
  ManyToOne,
  OneToMany,
  PrimaryColumn,
  UpdateDateColumn,
  type Relation,
} from 'typeorm';
import type { CompilationStatus } from '@kiln/contracts';
import { ModelVersionEntity } from './model-version.entity.js';
import { BuildEntity } from './build.entity.js';

/** A request to compile one model version for a list of targets; one Temporal workflow runs it. */
@Entity({ name: 'compilations' })
@Index('ix_compilations_tenant_created', ['tenantId', 'createdAt'])
@Index('ux_compilations_tenant_idempotency', ['tenantId', 'idempotencyKey'], {
  unique: true,
  where: '"idempotency_key" IS NOT NULL',
})
export class CompilationEntity {
  @PrimaryColumn('uuid', { primaryKeyConstraintName: 'pk_compilations' }) id!: string;
  @Column({ name: 'tenant_id', type: 'uuid' }) tenantId!: string;
  @Index('ix_compilations_version') @Column({ name: 'model_version_id', type: 'uuid' }) modelVersionId!: string;
  @ManyToOne(() => ModelVersionEntity, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'model_version_id', foreignKeyConstraintName: 'fk_compilations_version' })
  modelVersion?: Relation<ModelVersionEntity>;
  @Column({ type: 'text', array: true }) targets!: string[];
  @Column({ type: 'text' }) status!: CompilationStatus;
  @Column({ name: 'workflow_id', type: 'text' }) workflowId!: string;
  @Column({ name: 'idempotency_key', type: 'text', nullable: true }) idempotencyKey!: string | null;
  /** Build each target twice and compare the parts (builds answered from the cache are not checked). */
  @Column({ type: 'boolean', default: false }) reproduce!: boolean;
  @OneToMany(() => BuildEntity, (b) => b.compilation) builds?: Relation<BuildEntity>[];
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' }) updatedAt!: Date;
  @Column({ name: 'finished_at', type: 'timestamptz', nullable: true }) finishedAt!: Date | null;
}
