import { Column, CreateDateColumn, Entity, Index, PrimaryColumn } from 'typeorm';

/**
 * S3 objects whose records are gone and which the collector still has to delete: written in the same transaction
 * that deletes the rows (so a crash between the commit and the S3 calls leaks nothing), removed once the object
 * is gone. A key ending in `/` is a prefix (a deleted build's staging folder): everything under it goes.
 */
@Entity({ name: 'object_deletions' })
@Index('ix_object_deletions_tenant', ['tenantId'])
export class ObjectDeletionEntity {
  @PrimaryColumn('text', { name: 'object_key', primaryKeyConstraintName: 'pk_object_deletions' }) objectKey!: string;
  @Column({ name: 'tenant_id', type: 'uuid' }) tenantId!: string;
  @CreateDateColumn({ name: 'enqueued_at', type: 'timestamptz' }) enqueuedAt!: Date;
}
