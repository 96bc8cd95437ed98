import { Column, CreateDateColumn, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';

/**
 * One mutation through the API: who (the key, its role, or the operator), what (method and route), on which ids
 * (the route's ids before, the ids the answer named after), how it ended (HTTP status), when and from where.
 * Append-only: a trigger refuses UPDATE and DELETE (migrations/1765000200000-AuditLog.ts), and nothing references a
 * tenant's other rows, so deleting a model leaves its audit records (the one trace a delete keeps).
 */
@Entity({ name: 'audit_events' })
@Index('ix_audit_events_tenant_at', ['tenantId', 'at', 'id'])
export class AuditEventEntity {
  @PrimaryGeneratedColumn('uuid', { primaryKeyConstraintName: 'pk_audit_events' }) id!: string;
  /** Null only for the operator's calls that name no tenant. */
  @Column({ name: 'tenant_id', type: 'uuid', nullable: true }) tenantId!: string | null;
  /** `key` (a tenant key) or `admin` (the operator's token). */
  @Column({ type: 'text' }) actor!: string;
  @Column({ name: 'key_id', type: 'uuid', nullable: true }) keyId!: string | null;
  @Column({ type: 'text', nullable: true }) role!: string | null;
  /** Method and route template: `DELETE /v1/models/:modelId`. */
  @Column({ type: 'text' }) action!: string;
  /** The ids the request named (route parameters). */
  @Column({ name: 'target_ids', type: 'jsonb', default: {} }) targetIds!: Record<string, string>;
  /** The ids the answer named (what was created or replaced). */
  @Column({ name: 'result_ids', type: 'jsonb', default: {} }) resultIds!: Record<string, string>;
  @Column({ type: 'int' }) status!: number;
  @Column({ name: 'error_code', type: 'text', nullable: true }) errorCode!: string | null;
  @Column({ type: 'text', default: '' }) ip!: string;
  @Column({ name: 'user_agent', type: 'text', default: '' }) userAgent!: string;
  @CreateDateColumn({ type: 'timestamptz' }) at!: Date;
}
