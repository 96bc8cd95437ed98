import {
  Column,
  CreateDateColumn,
  Entity,
  Index,
  JoinColumn,
  ManyToOne,
  PrimaryColumn,
  UpdateDateColumn,
  type Relation,
} from 'typeorm';
import { ModelEntity } from './model.entity.js';

export type UploadStatus = 'uploading' | 'completing' | 'completed' | 'failed' | 'aborted' | 'expired';
export type UploadChecksumAlgorithm = 'sha256' | 'md5';

const bigintAsNumber = { to: (v: number) => v, from: (v: string) => Number(v) };

/**
 * A presigned multipart upload of a .pt2: the client PUTs parts straight to S3, the API only plans, signs,
 * completes and validates. The version id is reserved when the upload starts (the object key is derived
 * from it); the version row itself exists only once the completed object passed validation.
 */
@Entity({ name: 'uploads' })
@Index('ix_uploads_tenant_created', ['tenantId', 'createdAt'])
@Index('ix_uploads_status_expires', ['status', 'expiresAt'])
@Index('ux_uploads_tenant_idempotency', ['tenantId', 'idempotencyKey'], {
  unique: true,
  where: '"idempotency_key" IS NOT NULL',
})
export class UploadEntity {
  @PrimaryColumn('uuid', { primaryKeyConstraintName: 'pk_uploads' }) id!: string;
  @Column({ name: 'tenant_id', type: 'uuid' }) tenantId!: string;
  @Column({ name: 'model_id', type: 'uuid' }) modelId!: string;
  @ManyToOne(() => ModelEntity, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'model_id', foreignKeyConstraintName: 'fk_uploads_model' })
  model?: Relation<ModelEntity>;
  /** The id the version gets once the upload completes and validates. */
  @Index('ux_uploads_version', { unique: true }) @Column({ name: 'version_id', type: 'uuid' }) versionId!: string;
  @Column({ name: 'object_key', type: 'text' }) objectKey!: string;
  /** S3's UploadId of the multipart upload. */
  @Column({ name: 's3_upload_id', type: 'text' }) s3UploadId!: string;
  @Column({ type: 'text', default: '' }) filename!: string;
  @Column({ name: 'size_bytes', type: 'bigint', transformer: bigintAsNumber }) sizeBytes!: number;
  @Column({ name: 'part_size', type: 'bigint', transformer: bigintAsNumber }) partSize!: number;
  @Column({ name: 'part_count', type: 'int' }) partCount!: number;
  @Column({ name: 'checksum_algorithm', type: 'text' }) checksumAlgorithm!: UploadChecksumAlgorithm;
  @Column({ type: 'text' }) status!: UploadStatus;
  /**
   * partNumber → base64 sha256 the client declared when it asked for that part's URL (the URL is signed
   * with it, so S3 verified the part against it). CompleteMultipartUpload of a SHA256 upload must repeat
   * each part's checksum, and not every S3 server reports them in ListParts (SeaweedFS does not).
   */
  @Column({ name: 'part_checksums', type: 'jsonb', default: () => "'{}'" }) partChecksums!: Record<string, string>;
  /** A client's Idempotency-Key: creating again with it returns this upload instead of a second one. */
  @Column({ name: 'idempotency_key', type: 'text', nullable: true }) idempotencyKey!: string | null;
  /** Why completion failed (a PT2_* or UPLOAD_* code); a retried complete answers with the same error. */
  @Column({ name: 'error_code', type: 'text', nullable: true }) errorCode!: string | null;
  @Column({ name: 'error_message', type: 'text', nullable: true }) errorMessage!: string | null;
  @Column({ name: 'expires_at', type: 'timestamptz' }) expiresAt!: Date;
  /** When a complete request took the upload; a later one may take it over once this is stale. */
  @Column({ name: 'completing_since', type: 'timestamptz', nullable: true }) completingSince!: Date | null;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' }) updatedAt!: Date;
  @Column({ name: 'finished_at', type: 'timestamptz', nullable: true }) finishedAt!: Date | null;
}
