import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { LRUCache } from 'lru-cache';
import pg from 'pg';
import { DataSource, IsNull, Repository } from 'typeorm';
import { KilnConfig } from '@kiln/config';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { ALL_MODELS, ApiKeyEntity, type ApiKeyKind, type ApiKeyRole, TenantEntity } from '@kiln/database';
import type { AuthContext } from './auth-context.js';

const KEY_PREFIX: Record<ApiKeyKind, string> = { api: 'kiln', device: 'kdev' };

/** The channel the api_keys and tenants triggers NOTIFY on (migrations/1764860000000-KeyScopesAndQuotas.ts). */
export const KEY_CHANGES_CHANNEL = 'kiln_api_keys';

interface CachedAuth {
  auth: AuthContext | null;
  /** Epoch ms after which the key is refused (end of a rotation's grace period), or null. */
  expiresAt: number | null;
}

/**
 * API keys look like `kiln_<id>_<secret>` (device tokens `kdev_...`). Only the id part is stored in
 * clear (to find the row); the whole key is stored as a sha256 hash. Keys are 256-bit random, so a fast
 * hash is enough: there is nothing to brute-force.
 *
 * Every request authenticates, and devices resolve often, so answers are cached (keyed by the key's hash,
 * never the key). A cached answer must never outlive a revocation: every change to a key or tenant row NOTIFYs
 * KEY_CHANGES_CHANNEL (a database trigger, so a revocation by any replica or by hand in SQL counts), and each
 * replica LISTENs and empties its cache on every notification. While the LISTEN connection is down the cache is
 * not used at all (each request asks the database) until it is back: a missed notification can never leave a
 * revoked key working.
 */
@Injectable()
export class ApiKeysService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(ApiKeysService.name);
  private readonly cache = new LRUCache<string, CachedAuth>({ max: 50_000, ttl: AUTH_CACHE_TTL_MS });
  private listener: pg.Client | null = null;
  private listening = false;
  private stopped = false;
  private reconnectTimer?: NodeJS.Timeout;
  /** Bumped by every eviction, so an answer read before a change is never cached after it. */
  private evictions = 0;

  constructor(
    @InjectRepository(ApiKeyEntity) private readonly keys: Repository<ApiKeyEntity>,
    @InjectRepository(TenantEntity) private readonly tenants: Repository<TenantEntity>,
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly config: KilnConfig,
  ) {}

  async onModuleInit(): Promise<void> {
    await this.listen();
  }

  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    this.listening = false;
    await this.listener?.end().catch(() => undefined);
  }

  /** Whether answers may come from the cache: only while key changes are being heard. */
  get cacheTrusted(): boolean {
    return this.listening;
  }

  private async listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.config.DATABASE_URL });
    const lost = (why: unknown): void => {
      if (this.listener !== client) return;
      this.listening = false;
      this.listener = null;
      this.evictAll();
      client.end().catch(() => undefined);
      if (this.stopped) return;
      this.logger.warn(
        `Lost the key-change listener (${String(why)}); keys are checked in the database until it is back.`,
      );
      this.reconnectTimer = setTimeout(() => void this.listen(), 1000);
      this.reconnectTimer.unref();
    };
    client.on('notification', () => this.evictAll());
    client.on('error', lost);
    client.on('end', () => lost('connection ended'));
    this.listener = client;
    try {
      await client.connect();
      await client.query(`LISTEN ${KEY_CHANGES_CHANNEL}`);
      // Whatever changed while nobody listened is forgotten with the cache.
      this.evictAll();
      this.listening = true;
    } catch (err) {
      lost(err);
    }
  }

  /** Forgets every cached answer on this replica (the others hear the database's notification). */
  evictAll(): void {
    this.evictions++;
    this.cache.clear();
  }

  async create(
    tenantId: string,
    spec: {
      role: ApiKeyRole;
      name: string;
      modelScope: string[];
      expiresAt?: Date | null;
      rotatedFromId?: string | null;
    },
    repo: Repository<ApiKeyEntity> = this.keys,
  ): Promise<{ key: string; entity: ApiKeyEntity }> {
    const kind: ApiKeyKind = spec.role === 'device' ? 'device' : 'api';
    const id = randomBytes(6).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    const prefix = `${KEY_PREFIX[kind]}_${id}`;
    const key = `${prefix}_${secret}`;
    const entity = await repo.save(
      repo.create({
        tenantId,
        kind,
        role: spec.role,
        name: spec.name,
        prefix,
        keyHash: hashKey(key),
        revokedAt: null,
        expiresAt: spec.expiresAt ?? null,
        modelScope: spec.modelScope,
        rotatedFromId: spec.rotatedFromId ?? null,
      }),
    );
    return { key, entity };
  }

  /**
   * A new key from a request. The role says what it may do; `kind` is the spelling from before roles (`device` is
   * the device role, `api` an owner unless a role is given). Device tokens must name the models they are enrolled
   * for (or `*`); other roles reach every model.
   */
  async issue(
    tenantId: string,
    request: { kind?: ApiKeyKind; role?: ApiKeyRole; name?: string; models?: string[]; expiresInSeconds?: number },
  ): Promise<{ key: string; entity: ApiKeyEntity }> {
    const role: ApiKeyRole = request.role ?? (request.kind === 'device' ? 'device' : 'owner');
    if (request.kind && (request.kind === 'device') !== (role === 'device')) {
      throw new KilnError(
        ErrorCode.VALIDATION_FAILED,
        `kind "${request.kind}" and role "${role}" disagree: device tokens have the device role, API keys another.`,
      );
    }
    const models = request.models;
    if (role === 'device' && !models) {
      throw new KilnError(
        ErrorCode.VALIDATION_FAILED,
        'A device token is enrolled for specific models: give "models" (model names, or ["*"] for every model).',
      );
    }
    if (role !== 'device' && models && !(models.length === 1 && models[0] === ALL_MODELS)) {
      throw new KilnError(ErrorCode.VALIDATION_FAILED, 'API keys reach every model of the tenant: omit "models".');
    }
    if (models && models.length > 1 && models.includes(ALL_MODELS)) {
      throw new KilnError(ErrorCode.VALIDATION_FAILED, '"*" already means every model: give it alone.');
    }
    if (!(await this.tenants.existsBy({ id: tenantId }))) throw new KilnError(ErrorCode.NOT_FOUND, 'No such tenant.');
    const expiresAt =
      request.expiresInSeconds === undefined ? null : new Date(Date.now() + request.expiresInSeconds * 1000);
    return this.create(tenantId, { role, name: request.name ?? '', modelScope: models ?? [ALL_MODELS], expiresAt });
  }

  /** Renames a key and sets its expiry, or clears it (`never`); a key already revoked or expired cannot be revived. */
  async update(tenantId: string, keyId: string, change: { name?: string; expiresAt?: string }): Promise<ApiKeyEntity> {
    const row = await this.require(tenantId, keyId);
    if (change.expiresAt !== undefined && (row.revokedAt || (row.expiresAt && row.expiresAt.getTime() <= Date.now()))) {
      throw new KilnError(ErrorCode.CONFLICT, 'This key is revoked or expired; create a new one instead.');
    }
    const expiresAt =
      change.expiresAt === undefined ? undefined : change.expiresAt === 'never' ? null : new Date(change.expiresAt);
    if (expiresAt && expiresAt.getUTCFullYear() > 9999) {
      throw new KilnError(ErrorCode.VALIDATION_FAILED, '"expiresAt" must be before the year 10000.');
    }
    if (expiresAt && expiresAt.getTime() <= Date.now()) {
      throw new KilnError(ErrorCode.VALIDATION_FAILED, '"expiresAt" must be in the future (revoke the key instead).');
    }
    const values = {
      ...(change.name === undefined ? {} : { name: change.name }),
      ...(expiresAt === undefined ? {} : { expiresAt }),
    };
    if (Object.keys(values).length === 0) return row;
    await this.keys.update({ tenantId, id: keyId }, values);
    this.evictAll();
    return this.require(tenantId, keyId);
  }

  list(tenantId: string): Promise<ApiKeyEntity[]> {
    return this.keys.find({ where: { tenantId }, order: { createdAt: 'ASC' } });
  }

  async require(tenantId: string, keyId: string): Promise<ApiKeyEntity> {
    const row = await this.keys.findOne({ where: { tenantId, id: keyId } });
    if (!row) throw new KilnError(ErrorCode.NOT_FOUND, 'No such key.');
    return row;
  }

  /** Revokes a key for good; every replica refuses it from the next request on. Revoking twice is harmless. */
  async revoke(tenantId: string, keyId: string): Promise<ApiKeyEntity> {
    await this.require(tenantId, keyId);
    await this.keys.update({ tenantId, id: keyId, revokedAt: IsNull() }, { revokedAt: new Date() });
    this.evictAll();
    return this.require(tenantId, keyId);
  }

  /**
   * Replaces a key by a new one of the same role, name and model scope. The old key is revoked at once, or, with
   * a grace period, refused from `now + graceSeconds` on (so a fleet can switch without a gap).
   */
  async rotate(
    tenantId: string,
    keyId: string,
    graceSeconds: number,
  ): Promise<{ key: string; entity: ApiKeyEntity; previous: ApiKeyEntity }> {
    const created = await this.dataSource.transaction(async (tx) => {
      const repo = tx.getRepository(ApiKeyEntity);
      const old = await repo.findOne({ where: { tenantId, id: keyId }, lock: { mode: 'pessimistic_write' } });
      if (!old) throw new KilnError(ErrorCode.NOT_FOUND, 'No such key.');
      if (old.revokedAt || (old.expiresAt && old.expiresAt.getTime() <= Date.now())) {
        throw new KilnError(ErrorCode.CONFLICT, 'This key is revoked or expired; create a new one instead.');
      }
      const now = Date.now();
      await repo.update(
        { id: old.id },
        graceSeconds > 0 ? { expiresAt: new Date(now + graceSeconds * 1000) } : { revokedAt: new Date(now) },
      );
      return this.create(
        tenantId,
        { role: old.role, name: old.name, modelScope: old.modelScope, rotatedFromId: old.id },
        repo,
      );
    });
    this.evictAll();
    return { ...created, previous: await this.require(tenantId, keyId) };
  }

  /**
   * The cached answer for a key, without touching the database: the caller, null for a known-bad key, or
   * undefined when this key has not been checked recently or the cache cannot be trusted (then call authenticate()).
   */
  cachedAuthentication(presented: string): AuthContext | null | undefined {
    if (!KEY_FORMAT.test(presented)) return null;
    if (!this.listening) return undefined;
    const hit = this.cache.get(hashKey(presented));
    if (!hit) return undefined;
    return hit.expiresAt !== null && hit.expiresAt <= Date.now() ? null : hit.auth;
  }

  /** The caller of a presented key, or null when the key is unknown, malformed, revoked or expired. */
  async authenticate(presented: string): Promise<AuthContext | null> {
    const match = KEY_FORMAT.exec(presented);
    if (!match) return null;
    const cached = this.cachedAuthentication(presented);
    if (cached !== undefined) return cached;
    // Read whether the cache is trusted before the query: a notification during the query clears the cache,
    // and this answer (possibly older than that change) must then not be stored.
    const trusted = this.listening;
    const generation = this.evictions;
    const presentedHash = hashKey(presented);
    const row = await this.keys.findOne({ where: { prefix: `${match[1]}_${match[2]}`, revokedAt: IsNull() } });
    let auth: AuthContext | null = null;
    let expiresAt: number | null = null;
    if (row && (!row.expiresAt || row.expiresAt.getTime() > Date.now())) {
      const a = Buffer.from(row.keyHash, 'hex');
      const b = Buffer.from(presentedHash, 'hex');
      if (a.length === b.length && timingSafeEqual(a, b)) {
        const tenant = await this.tenants.findOne({ where: { id: row.tenantId } });
        if (tenant) {
          auth = {
            tenantId: row.tenantId,
            keyId: row.id,
            kind: row.kind,
            role: row.role,
            modelScope: row.modelScope.length > 0 ? row.modelScope : [ALL_MODELS],
            rateLimitPerMinute: tenant.rateLimitPerMinute ?? this.config.KILN_RATE_LIMIT_PER_MINUTE,
          };
          expiresAt = row.expiresAt?.getTime() ?? null;
        }
      }
    }
    if (trusted && this.listening && generation === this.evictions) this.cache.set(presentedHash, { auth, expiresAt });
    return auth;
  }
}

/** Upper bound of a cached answer's age (changes evict at once; this only bounds memory of idle keys). */
export const AUTH_CACHE_TTL_MS = 60_000;
const KEY_FORMAT = /^(kiln|kdev)_([0-9a-f]{12})_[A-Za-z0-9_-]{20,100}$/;

function hashKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}
