import { Column, CreateDateColumn, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';
import type { ArtifactManifest } from '@kiln/contracts';

/**
 * A verified compiled artifact. Identified by its cache key (tenant + model content + target + recipe),
 * which is unique: a retried or repeated build can never create a second row for the same key.
 * Its bytes are content-addressed parts in S3 (see ArtifactManifest).
 */
@Entity({ name: 'artifacts' })
@Index('ux_artifacts_tenant_cache_key', ['tenantId', 'cacheKey'], { unique: true })
@Index('ix_artifacts_tenant_content', ['tenantId', 'modelContentHash'])
export class ArtifactEntity {
  @PrimaryGeneratedColumn('uuid', { primaryKeyConstraintName: 'pk_artifacts' }) id!: string;
  @Column({ name: 'tenant_id', type: 'uuid' }) tenantId!: string;
  @Column({ name: 'cache_key', type: 'text' }) cacheKey!: string;
  @Column({ name: 'model_content_hash', type: 'text' }) modelContentHash!: string;
  @Column({ name: 'target_id', type: 'text' }) targetId!: string;
  @Column({ name: 'recipe_hash', type: 'text' }) recipeHash!: string;
  @Column({ name: 'manifest_key', type: 'text' }) manifestKey!: string;
  @Column({ type: 'jsonb' }) manifest!: ArtifactManifest;
  /** sha256 of the manifest's exact bytes in S3 (the bytes the signature covers). */
  @Column({ name: 'manifest_sha256', type: 'text' }) manifestSha256!: string;
  /** ed25519 signature (base64) of the manifest bytes, by the build side's key `signingKeyId`. */
  @Column({ type: 'text' }) signature!: string;
  @Column({ name: 'signing_key_id', type: 'text' }) signingKeyId!: string;
  @Column({ name: 'size_bytes', type: 'bigint', transformer: { to: (v: number) => v, from: (v: string) => Number(v) } })
  sizeBytes!: number;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
}
