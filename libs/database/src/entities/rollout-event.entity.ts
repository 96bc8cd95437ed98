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
import { RolloutEntity } from './rollout.entity.js';

export type RolloutEventKind =
  | 'started'
  | 'stage_started'
  | 'promoted'
  | 'paused'
  | 'resumed'
  | 'class_rolled_back'
  | 'halted'
  | 'rolled_back'
  | 'completed';

/** A rollout's history: every stage, promotion, gate breach, pause, resume and rollback, and who caused it. */
@Entity({ name: 'rollout_events' })
@Index('ix_rollout_events_rollout_at', ['rolloutId', 'at'])
export class RolloutEventEntity {
  @PrimaryGeneratedColumn('uuid', { primaryKeyConstraintName: 'pk_rollout_events' }) id!: string;
  @Column({ name: 'rollout_id', type: 'uuid' }) rolloutId!: string;
  @ManyToOne(() => RolloutEntity, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'rollout_id', foreignKeyConstraintName: 'fk_rollout_events_rollout' })
  rollout?: Relation<RolloutEntity>;
  @Column({ name: 'tenant_id', type: 'uuid' }) tenantId!: string;
  @Column({ type: 'text' }) kind!: RolloutEventKind;
  @Column({ name: 'stage_index', type: 'int' }) stageIndex!: number;
  @Column({ type: 'int' }) percent!: number;
  @Column({ name: 'device_class', type: 'text', nullable: true }) deviceClass!: string | null;
  /** Why: the gate and its figures, or the key that paused, resumed or rolled back. */
  @Column({ type: 'text' }) message!: string;
  @Column({ type: 'jsonb', default: {} }) detail!: Record<string, unknown>;
  /** `gate` for the workflow's own decisions, else the API key id that asked. */
  @Column({ type: 'text' }) actor!: string;
  @CreateDateColumn({ type: 'timestamptz' }) at!: Date;
}
