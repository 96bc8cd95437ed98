import {
  Column,
  CreateDateColumn,
  Entity,
  Index,
  JoinColumn,
  ManyToOne,
  PrimaryColumn,
  type Relation,
  UpdateDateColumn,
} from 'typeorm';
import { ChannelEntity } from './channel.entity.js';

export type RolloutStatus = 'running' | 'paused' | 'completed' | 'rolled_back';

/** Gate settings of one rollout (defaults from KilnConfig, overridable per rollout; docs/fleet.md). */
export interface RolloutGates {
  /** How long a stage must hold its gates before it is promoted. */
  holdSeconds: number;
  /** How often the gates are evaluated while a stage holds. */
  checkIntervalSeconds: number;
  /** A class breaks the error-rate gate when its failures / reports on the new version pass this share ... */
  maxErrorRate: number;
  /** ... with at least this many reports of the class in the stage (and the latency gate needs as many per arm). */
  minReports: number;
  /** A class breaks the latency gate when the new version is confidently slower than the previous by this factor. */
  maxLatencyRatio: number;
  /** A stage is promoted only after this many reports of the new version came in during it (0: time alone). */
  minReportsToPromote: number;
}

/** Per device class: still in the rollout, or rolled back (it gets the previous version) and why. */
export interface RolloutClassState {
  label: string;
  status: 'active' | 'rolled_back';
  reason: string | null;
  at: string;
}

/**
 * A staged move of a channel from one version to another: devices whose bucket (hash of rollout id and device id)
 * falls under the stage's percentage get the new version; the rest keep the previous one. The channel itself
 * points at the previous version until the rollout completes (then it is moved, with a channel move recorded).
 * Driven by a Temporal workflow (rolloutWorkflow, id `rollout-<id>`), which alone writes its status.
 */
@Entity({ name: 'rollouts' })
@Index('ix_rollouts_channel_created', ['channelId', 'createdAt'])
@Index('ux_rollouts_channel_active', ['channelId'], { unique: true, where: `status IN ('running', 'paused')` })
export class RolloutEntity {
  /** Chosen before the workflow starts: the workflow id is derived from it. */
  @PrimaryColumn('uuid', { primaryKeyConstraintName: 'pk_rollouts' }) id!: string;
  @Column({ name: 'tenant_id', type: 'uuid' }) tenantId!: string;
  @Column({ name: 'model_id', type: 'uuid' }) modelId!: string;
  @Column({ name: 'channel_id', type: 'uuid' }) channelId!: string;
  @ManyToOne(() => ChannelEntity, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'channel_id', foreignKeyConstraintName: 'fk_rollouts_channel' })
  channel?: Relation<ChannelEntity>;
  @Column({ name: 'from_version_id', type: 'uuid' }) fromVersionId!: string;
  @Column({ name: 'to_version_id', type: 'uuid' }) toVersionId!: string;
  /** Percentages, increasing, the last one 100. */
  @Column({ type: 'int', array: true }) stages!: number[];
  @Column({ name: 'stage_index', type: 'int', default: 0 }) stageIndex!: number;
  @Column({ type: 'text' }) status!: RolloutStatus;
  @Column({ type: 'jsonb' }) gates!: RolloutGates;
  @Column({ name: 'class_states', type: 'jsonb', default: {} }) classStates!: Record<string, RolloutClassState>;
  @Column({ name: 'workflow_id', type: 'text' }) workflowId!: string;
  @Column({ name: 'created_by_key_id', type: 'uuid' }) createdByKeyId!: string;
  @Column({ name: 'stage_started_at', type: 'timestamptz' }) stageStartedAt!: Date;
  @Column({ name: 'finished_at', type: 'timestamptz', nullable: true }) finishedAt!: Date | null;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' }) updatedAt!: Date;
}
