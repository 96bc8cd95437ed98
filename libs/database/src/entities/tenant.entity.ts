import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';

const bigintAsNumber = {
  to: (v: number | null) => v,
  from: (v: string | null) => (v === null ? null : Number(v)),
};

/**
 * A customer account. Every other record carries its tenant id and every query is scoped by it. The quota and
 * rate-limit columns override the operator's defaults (KILN_QUOTA_*, KILN_RATE_LIMIT_PER_MINUTE) when set.
 */
@Entity({ name: 'tenants' })
export class TenantEntity {
  @PrimaryGeneratedColumn('uuid', { primaryKeyConstraintName: 'pk_tenants' }) id!: string;
  @Column({ type: 'text' }) name!: string;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
  @Column({ name: 'quota_concurrent_builds', type: 'int', nullable: true }) quotaConcurrentBuilds!: number | null;
  @Column({ name: 'quota_uploads_per_hour', type: 'int', nullable: true }) quotaUploadsPerHour!: number | null;
  @Column({ name: 'quota_stored_bytes', type: 'bigint', nullable: true, transformer: bigintAsNumber })
  quotaStoredBytes!: number | null;
  @Column({ name: 'rate_limit_per_minute', type: 'int', nullable: true }) rateLimitPerMinute!: number | null;
}
