import { Column, CreateDateColumn, Entity, Index, JoinColumn, ManyToOne, PrimaryColumn, type Relation } from 'typeorm';
import type { Pt2Summary } from '@kiln/contracts';
import { ModelEntity } from './model.entity.js';

/** One validated upload of a model. Rejected uploads never get a row (and their bytes are deleted). */
@Entity({ name: 'model_versions' })
@Index('ux_model_versions_model_number', ['modelId', 'number'], { unique: true })
@Index('ix_model_versions_tenant_content', ['tenantId', 'contentHash'])
export class ModelVersionEntity {
  /** Chosen before the upload starts, because the object key is derived from it. */
  @PrimaryColumn('uuid', { primaryKeyConstraintName: 'pk_model_versions' }) id!: string;
  @Column({ name: 'tenant_id', type: 'uuid' }) tenantId!: string;
  @Column({ name: 'model_id', type: 'uuid' }) modelId!: string;
  @ManyToOne(() => ModelEntity, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'model_id', foreignKeyConstraintName: 'fk_model_versions_model' })
  model?: Relation<ModelEntity>;
  @Column({ type: 'int' }) number!: number;
  /** The stored object: the portable archive Kiln wrote from the upload (see storedSha256). */
  @Column({ name: 'object_key', type: 'text' }) objectKey!: string;
  /** Bytes of the uploaded file. */
  @Column({ name: 'size_bytes', type: 'bigint', transformer: { to: (v: number) => v, from: (v: string) => Number(v) } })
  sizeBytes!: number;
  /** sha256 of the uploaded file's bytes (what a client can check its upload against). */
  @Column({ name: 'file_sha256', type: 'text' }) fileSha256!: string;
  /**
   * sha256 and size of the object at objectKey: the uploaded archive rewritten without its sample-input pickles
   * (@kiln/pt2 writePortablePt2). Build workers and devices verify what they download against these.
   */
  @Column({ name: 'stored_sha256', type: 'text' }) storedSha256!: string;
  @Column({
    name: 'stored_size_bytes',
    type: 'bigint',
    transformer: { to: (v: number) => v, from: (v: string) => Number(v) },
  })
  storedSizeBytes!: number;
  /** sha256 of the model's canonical content (see @kiln/pt2): the cache identity. */
  @Column({ name: 'content_hash', type: 'text' }) contentHash!: string;
  @Column({ type: 'jsonb' }) summary!: Pt2Summary;
  @Column({ name: 'original_filename', type: 'text', default: '' }) originalFilename!: string;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
}
