import { Entity, Index, JoinColumn, ManyToOne, PrimaryColumn, type Relation } from 'typeorm';
import { ArtifactEntity } from './artifact.entity.js';
import { BlobEntity } from './blob.entity.js';

/**
 * Which blobs an artifact's manifest names: the references that keep a blob alive. Written in the transaction
 * that records the artifact; gone with the artifact (cascade). The foreign key to `blobs` refuses to delete a
 * referenced blob row, and its check locks the blob row against a concurrent sweep.
 */
@Entity({ name: 'artifact_blobs' })
@Index('ix_artifact_blobs_blob', ['tenantId', 'sha256'])
export class ArtifactBlobEntity {
  @PrimaryColumn('uuid', { name: 'artifact_id', primaryKeyConstraintName: 'pk_artifact_blobs' }) artifactId!: string;
  @PrimaryColumn('text', { primaryKeyConstraintName: 'pk_artifact_blobs' }) sha256!: string;
  @PrimaryColumn('uuid', { name: 'tenant_id', primaryKeyConstraintName: 'pk_artifact_blobs' }) tenantId!: string;
  @ManyToOne(() => ArtifactEntity, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'artifact_id', foreignKeyConstraintName: 'fk_artifact_blobs_artifact' })
  artifact?: Relation<ArtifactEntity>;
  @ManyToOne(() => BlobEntity, { onDelete: 'RESTRICT' })
  @JoinColumn([
    { name: 'tenant_id', referencedColumnName: 'tenantId', foreignKeyConstraintName: 'fk_artifact_blobs_blob' },
    { name: 'sha256', referencedColumnName: 'sha256', foreignKeyConstraintName: 'fk_artifact_blobs_blob' },
  ])
  blob?: Relation<BlobEntity>;
}
