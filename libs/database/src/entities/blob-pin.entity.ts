import { Column, Entity, Index, JoinColumn, ManyToOne, PrimaryColumn, type Relation } from 'typeorm';
import { BlobEntity } from './blob.entity.js';

/**
 * A holder's claim on a blob until `pinnedUntil`: while one is live the collector leaves the blob alone even when
 * nothing references it. The holder is a build: its grant told the build host the blob is stored (so the host
 * uploads nothing), and its publish is about to reference it. The build releases its pins once its artifact's
 * references are recorded; a pin of a build that died lapses by itself (the sweep's grace period).
 */
@Entity({ name: 'blob_pins' })
@Index('ix_blob_pins_pinned_until', ['pinnedUntil'])
export class BlobPinEntity {
  @PrimaryColumn('uuid', { name: 'tenant_id', primaryKeyConstraintName: 'pk_blob_pins' }) tenantId!: string;
  @PrimaryColumn('text', { primaryKeyConstraintName: 'pk_blob_pins' }) sha256!: string;
  @PrimaryColumn('text', { primaryKeyConstraintName: 'pk_blob_pins' }) holder!: string;
  @Column({ name: 'pinned_until', type: 'timestamptz' }) pinnedUntil!: Date;
  @ManyToOne(() => BlobEntity, { onDelete: 'CASCADE' })
  @JoinColumn([
    { name: 'tenant_id', referencedColumnName: 'tenantId', foreignKeyConstraintName: 'fk_blob_pins_blob' },
    { name: 'sha256', referencedColumnName: 'sha256', foreignKeyConstraintName: 'fk_blob_pins_blob' },
  ])
  blob?: Relation<BlobEntity>;
}
