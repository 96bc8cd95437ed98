import { Column, CreateDateColumn, Entity, Index, PrimaryColumn } from 'typeorm';

/** What a run used: the compiled artifact the resolver chose, or the portable graph. */
export type TelemetryRan = 'artifact' | 'portable';
export type TelemetryOutcome = 'ok' | 'failed';

/** On-device latency of one input size: the artifact (when it ran) and the portable graph, medians in ms. */
export interface TelemetryLatency {
  inputShapes: number[][];
  artifactMs: number | null;
  portableMs: number | null;
  runs: number;
}

/**
 * One device run as the device reported it (POST /v1/telemetry), kept raw for audits and the dashboard's recent
 * failures. The table is PARTITIONED BY RANGE (report_id), one partition per month: report ids are UUIDv7, whose
 * first 48 bits are the device's clock in ms, so the id both deduplicates (primary key: a report sent twice is
 * stored once) and places the row in its month. Old months are dropped whole (KILN_TELEMETRY_RETENTION_DAYS).
 * Nothing reads this table on a hot path: the resolver and the rollout gates read the rollups
 * (FleetEvidenceEntity, RolloutStatsEntity), updated in the same transaction as the insert. docs/fleet.md.
 */
@Entity({ name: 'telemetry_reports' })
@Index('ix_telemetry_reports_tenant_version', ['tenantId', 'versionId'])
export class TelemetryReportEntity {
  @PrimaryColumn('uuid', { name: 'report_id', primaryKeyConstraintName: 'pk_telemetry_reports' }) reportId!: string;
  @Column({ name: 'tenant_id', type: 'uuid' }) tenantId!: string;
  @Column({ name: 'device_id', type: 'text' }) deviceId!: string;
  @Column({ name: 'device_class', type: 'text' }) deviceClass!: string;
  @Column({ name: 'model_id', type: 'uuid' }) modelId!: string;
  @Column({ name: 'version_id', type: 'uuid' }) versionId!: string;
  @Column({ name: 'artifact_id', type: 'uuid', nullable: true }) artifactId!: string | null;
  @Column({ type: 'text' }) ran!: TelemetryRan;
  @Column({ type: 'text' }) outcome!: TelemetryOutcome;
  @Column({ name: 'failure_stage', type: 'text', nullable: true }) failureStage!: string | null;
  @Column({ name: 'error_code', type: 'text', nullable: true }) errorCode!: string | null;
  @Column({ type: 'jsonb' }) latency!: TelemetryLatency[];
  @Column({ name: 'rollout_id', type: 'uuid', nullable: true }) rolloutId!: string | null;
  @Column({ name: 'rollout_stage', type: 'int', nullable: true }) rolloutStage!: number | null;
  @Column({ name: 'rollout_arm', type: 'text', nullable: true }) rolloutArm!: string | null;
  @Column({ name: 'runtime_version', type: 'text', default: '' }) runtimeVersion!: string;
  @CreateDateColumn({ name: 'received_at', type: 'timestamptz' }) receivedAt!: Date;
}
