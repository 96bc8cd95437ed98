import { Column, CreateDateColumn, Entity, PrimaryColumn } from 'typeorm';

const bigintAsNumber = { to: (v: number) => v, from: (v: string) => Number(v) };

/**
 * The ledger of a tenant's content-addressed blobs (`tenants/<t>/blobs/sha256/<sha>`): one row per blob that
 * exists or may be about to. A blob's object is written only while its row exists and is pinned (BlobPinEntity),
 * and deleted only by the collector while it holds the row's lock and finds no live pin and no reference
 * (ArtifactBlobEntity, whose foreign key keeps a referenced row from being deleted at all). docs/decisions.md,
 * "Tenant governance", says why this is safe against a concurrent publish.
 */
@Entity({ name: 'blobs' })
export class BlobEntity {
  @PrimaryColumn('uuid', { name: 'tenant_id', primaryKeyConstraintName: 'pk_blobs' }) tenantId!: string;
  @PrimaryColumn('text', { primaryKeyConstraintName: 'pk_blobs' }) sha256!: string;
  @Column({ name: 'size_bytes', type: 'bigint', transformer: bigintAsNumber }) sizeBytes!: number;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
}
