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
  /**
   * The signed manifest of the portable graph (the uploaded .pt2 itself, which devices fall back to): S3 key, the
   * sha256 of its exact bytes, the ed25519 signature over them and the key id. Written when the version is recorded
   * (apps/api/src/versions/portable-signing.service.ts); empty for versions recorded before the fallback was signed,
   * which the resolver signs on first use.
   */
  @Column({ name: 'portable_manifest_key', type: 'text', default: '' }) portableManifestKey!: string;
  @Column({ name: 'portable_manifest_sha256', type: 'text', default: '' }) portableManifestSha256!: string;
  @Column({ name: 'portable_signature', type: 'text', default: '' }) portableSignature!: string;
  @Column({ name: 'portable_signing_key_id', type: 'text', default: '' }) portableSigningKeyId!: string;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
}
