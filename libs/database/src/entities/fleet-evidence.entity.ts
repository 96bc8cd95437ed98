import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

const bigintNumber = { to: (v: number) => v, from: (v: string) => Number(v) };

/**
 * What the devices of one class reported about one artifact, summed over all time: the resolver's evidence
 * (docs/fleet.md). One row per (tenant, subject, device class), where the subject is an artifact id, or
 * `portable:<versionId>` for runs the resolver sent to the portable graph. Updated by the same transaction that
 * stores the raw reports (INSERT ... ON CONFLICT DO UPDATE, adding), so it never disagrees with them; reads cost
 * one indexed lookup per artifact, whatever the number of reports.
 *
 * Speed is kept as sums of ln(speedup) (speedup = portable ms / artifact ms on the same device, same inputs) and
 * of their squares: a geometric mean and a log-normal interval come out of three numbers that add up exactly.
 */
@Entity({ name: 'fleet_evidence' })
@Index('ix_fleet_evidence_tenant_artifact', ['tenantId', 'artifactId'])
@Index('ix_fleet_evidence_tenant_model', ['tenantId', 'modelId'])
export class FleetEvidenceEntity {
  @PrimaryColumn('uuid', { name: 'tenant_id', primaryKeyConstraintName: 'pk_fleet_evidence' }) tenantId!: string;
  @PrimaryColumn('text', { primaryKeyConstraintName: 'pk_fleet_evidence' }) subject!: string;
  @PrimaryColumn('text', { name: 'device_class', primaryKeyConstraintName: 'pk_fleet_evidence' }) deviceClass!: string;
  @Column({ name: 'device_class_label', type: 'text' }) deviceClassLabel!: string;
  @Column({ name: 'model_id', type: 'uuid' }) modelId!: string;
  @Column({ name: 'artifact_id', type: 'uuid', nullable: true }) artifactId!: string | null;
  @Column({ type: 'bigint', default: 0, transformer: bigintNumber }) reports!: number;
  @Column({ type: 'bigint', default: 0, transformer: bigintNumber }) failures!: number;
  /** Failures by error code: { "LOAD_FAILED": 12 }. */
  @Column({ name: 'failure_codes', type: 'jsonb', default: {} }) failureCodes!: Record<string, number>;
  /** Runs the device could not complete for reasons that are not the artifact's (network, the API). */
  @Column({ name: 'other_errors', type: 'bigint', default: 0, transformer: bigintNumber }) otherErrors!: number;
  @Column({ name: 'speedup_samples', type: 'bigint', default: 0, transformer: bigintNumber }) speedupSamples!: number;
  @Column({ name: 'log_speedup_sum', type: 'double precision', default: 0 }) logSpeedupSum!: number;
  @Column({ name: 'log_speedup_sq_sum', type: 'double precision', default: 0 }) logSpeedupSqSum!: number;
  /** One fingerprint of the class as a device sent it (the dashboard resolves the class's choice with it). */
  @Column({ name: 'sample_fingerprint', type: 'jsonb' }) sampleFingerprint!: Record<string, unknown>;
  @Column({ name: 'first_report_at', type: 'timestamptz' }) firstReportAt!: Date;
  @Column({ name: 'last_report_at', type: 'timestamptz' }) lastReportAt!: Date;
}
