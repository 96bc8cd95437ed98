import { Column, Entity, PrimaryColumn } from 'typeorm';

const bigintNumber = { to: (v: number) => v, from: (v: string) => Number(v) };

/** Which version a device of a rollout resolved to: the new one, or the one the channel held before. */
export type RolloutArm = 'new' | 'previous';

/**
 * What one rollout's devices reported, per stage, device class and arm: what the rollout gates read. Updated in
 * the same transaction as the raw reports (docs/fleet.md). The stage is the rollout's stage when the report came
 * in; the arm is the version the report is about, compared with the rollout's (never what the device claims).
 * Latency is ln(ms) of what ran, on the device, summed with its squares, so that the two arms of one class can be
 * compared with an interval.
 */
@Entity({ name: 'rollout_stats' })
export class RolloutStatsEntity {
  @PrimaryColumn('uuid', { name: 'rollout_id', primaryKeyConstraintName: 'pk_rollout_stats' }) rolloutId!: string;
  @PrimaryColumn('int', { name: 'stage_index', primaryKeyConstraintName: 'pk_rollout_stats' }) stageIndex!: number;
  @PrimaryColumn('text', { name: 'device_class', primaryKeyConstraintName: 'pk_rollout_stats' }) deviceClass!: string;
  @PrimaryColumn('text', { primaryKeyConstraintName: 'pk_rollout_stats' }) arm!: RolloutArm;
  @Column({ name: 'tenant_id', type: 'uuid' }) tenantId!: string;
  @Column({ name: 'device_class_label', type: 'text' }) deviceClassLabel!: string;
  @Column({ type: 'bigint', default: 0, transformer: bigintNumber }) reports!: number;
  @Column({ type: 'bigint', default: 0, transformer: bigintNumber }) failures!: number;
  @Column({ name: 'failure_codes', type: 'jsonb', default: {} }) failureCodes!: Record<string, number>;
  @Column({ name: 'latency_samples', type: 'bigint', default: 0, transformer: bigintNumber }) latencySamples!: number;
  @Column({ name: 'log_ms_sum', type: 'double precision', default: 0 }) logMsSum!: number;
  @Column({ name: 'log_ms_sq_sum', type: 'double precision', default: 0 }) logMsSqSum!: number;
  @Column({ name: 'last_report_at', type: 'timestamptz' }) lastReportAt!: Date;
}
