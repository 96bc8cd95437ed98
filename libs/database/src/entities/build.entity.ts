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
import type { BuildStatus } from '@kiln/contracts';
import { CompilationEntity } from './compilation.entity.js';
import { ArtifactEntity } from './artifact.entity.js';

/** One target of a compilation: its status, progress, error and log. */
@Entity({ name: 'builds' })
@Index('ux_builds_compilation_target', ['compilationId', 'targetId'], { unique: true })
export class BuildEntity {
  @PrimaryGeneratedColumn('uuid', { primaryKeyConstraintName: 'pk_builds' }) id!: string;
  @Column({ name: 'tenant_id', type: 'uuid' }) tenantId!: string;
  @Column({ name: 'compilation_id', type: 'uuid' }) compilationId!: string;
  @ManyToOne(() => CompilationEntity, (c) => c.builds, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'compilation_id', foreignKeyConstraintName: 'fk_builds_compilation' })
  compilation?: Relation<CompilationEntity>;
  @Column({ name: 'target_id', type: 'text' }) targetId!: string;
  @Column({ name: 'cache_key', type: 'text' }) cacheKey!: string;
  @Column({ type: 'text' }) status!: BuildStatus;
  /** Latest phase the compile driver reported (loading, compiling, verifying, ...). */
  @Column({ type: 'text', nullable: true }) phase!: string | null;
  @Column({ type: 'int', default: 0 }) attempt!: number;
  /** The build worker running (or that ran) the latest attempt: its KILN_WORKER_ID (default `<pid>@<hostname>`). */
  @Column({ name: 'worker_id', type: 'text', nullable: true }) workerId!: string | null;
  @Column({ name: 'error_code', type: 'text', nullable: true }) errorCode!: string | null;
  @Column({ name: 'error_message', type: 'text', nullable: true }) errorMessage!: string | null;
  /** Tail of the compile driver's log (the full log of a failed build is rarely longer than this). */
  @Column({ type: 'text', default: '' }) log!: string;
  @Column({ name: 'artifact_id', type: 'uuid', nullable: true }) artifactId!: string | null;
  @ManyToOne(() => ArtifactEntity, { onDelete: 'SET NULL' })
  @JoinColumn({ name: 'artifact_id', foreignKeyConstraintName: 'fk_builds_artifact' })
  artifact?: Relation<ArtifactEntity> | null;
  @Column({ name: 'started_at', type: 'timestamptz', nullable: true }) startedAt!: Date | null;
  @Column({ name: 'finished_at', type: 'timestamptz', nullable: true }) finishedAt!: Date | null;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' }) updatedAt!: Date;
}
