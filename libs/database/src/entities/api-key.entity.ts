import {
  Column,
  CreateDateColumn,
  Entity,
  Index,
  JoinColumn,
  ManyToOne,
  PrimaryGeneratedColumn,
  type Relation,
} from 'typeorm';
import { TenantEntity } from './tenant.entity.js';

export type ApiKeyKind = 'api' | 'device';

/**
 * What a key may do (docs/security.md, "Roles", has the route-by-route matrix): `owner` everything of its tenant
 * (keys, members, deletes), `developer` upload, compile, channels and rollouts, `viewer` read, `device` resolve,
 * download and report telemetry. A `device` key is of kind `device` (prefix kdev_), every other role of kind `api`.
 */
export type ApiKeyRole = 'owner' | 'developer' | 'viewer' | 'device';
export const API_KEY_ROLES: readonly ApiKeyRole[] = ['owner', 'developer', 'viewer', 'device'];

/** The model scope that covers every model of the tenant. */
export const ALL_MODELS = '*';

/**
 * An API key, stored hashed: only `prefix` (to find the row) and the sha256 of the whole key are kept.
 * `api` keys can do everything within their tenant; `device` tokens can only resolve and download, and only
 * the models they were enrolled for (`modelScope`: model names, or `*` for all). A revoked or expired key is
 * refused at once by every API replica: a trigger NOTIFYs `kiln_api_keys` on each change, which evicts their
 * caches (migrations/1764860000000-KeyScopesAndQuotas.ts).
 */
@Entity({ name: 'api_keys' })
export class ApiKeyEntity {
  @PrimaryGeneratedColumn('uuid', { primaryKeyConstraintName: 'pk_api_keys' }) id!: string;
  @Index('ix_api_keys_tenant') @Column({ name: 'tenant_id', type: 'uuid' }) tenantId!: string;
  @ManyToOne(() => TenantEntity, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'tenant_id', foreignKeyConstraintName: 'fk_api_keys_tenant' })
  tenant?: Relation<TenantEntity>;
  @Index('ux_api_keys_prefix', { unique: true }) @Column({ type: 'text' }) prefix!: string;
  @Column({ name: 'key_hash', type: 'text' }) keyHash!: string;
  @Column({ type: 'text', default: 'api' }) kind!: ApiKeyKind;
  /** Keys made before roles existed became `owner` (api) or `device` (migrations/1765000100000-KeyRoles.ts). */
  @Column({ type: 'text', default: 'owner' }) role!: ApiKeyRole;
  @Column({ type: 'text', default: '' }) name!: string;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
  @Column({ name: 'revoked_at', type: 'timestamptz', nullable: true }) revokedAt!: Date | null;
  /** Model names this key may reach, or [`*`] for all of the tenant's models (enforced for device tokens). */
  @Column({ name: 'model_scope', type: 'text', array: true, default: () => "'{*}'" }) modelScope!: string[];
  /** Refused from then on: an expiry its owner gave it, or the end of a rotation's grace period. */
  @Column({ name: 'expires_at', type: 'timestamptz', nullable: true }) expiresAt!: Date | null;
  /** The key this one replaced (POST .../keys/:id/rotate). */
  @Column({ name: 'rotated_from_id', type: 'uuid', nullable: true }) rotatedFromId!: string | null;
  @ManyToOne(() => ApiKeyEntity, { onDelete: 'SET NULL' })
  @JoinColumn({ name: 'rotated_from_id', foreignKeyConstraintName: 'fk_api_keys_rotated_from' })
  rotatedFrom?: Relation<ApiKeyEntity> | null;
}
