import { Column, Entity, JoinColumn, OneToOne, PrimaryColumn, type Relation, UpdateDateColumn } from 'typeorm';
import { TenantEntity } from './tenant.entity.js';

/**
 * A tenant's retention policy (a tenant without one keeps every version). A version is kept while it is among its
 * model's newest `keepLastVersions`, or younger than `maxAgeDays` (either rule keeps it when both are set), and
 * always while a channel or an active rollout points at it or a compilation of it is still running. The values are
 * validated at the edge (PUT /v1/retention-policy): at least one rule, each at least 1.
 */
@Entity({ name: 'retention_policies' })
export class RetentionPolicyEntity {
  @PrimaryColumn('uuid', { name: 'tenant_id', primaryKeyConstraintName: 'pk_retention_policies' }) tenantId!: string;
  @OneToOne(() => TenantEntity, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'tenant_id', foreignKeyConstraintName: 'fk_retention_policies_tenant' })
  tenant?: Relation<TenantEntity>;
  @Column({ name: 'keep_last_versions', type: 'int', nullable: true }) keepLastVersions!: number | null;
  @Column({ name: 'max_age_days', type: 'int', nullable: true }) maxAgeDays!: number | null;
  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' }) updatedAt!: Date;
}
