import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { LRUCache } from 'lru-cache';
import { InjectRepository } from '@nestjs/typeorm';
import { IsNull, Repository } from 'typeorm';
import { ApiKeyEntity, type ApiKeyKind } from '@kiln/database';
import type { AuthContext } from './auth-context.js';

const KEY_PREFIX: Record<ApiKeyKind, string> = { api: 'kiln', device: 'kdev' };

/**
 * API keys look like `kiln_<id>_<secret>` (device tokens `kdev_...`). Only the id part is stored in
 * clear (to find the row); the whole key is stored as a sha256 hash. Keys are 256-bit random, so a fast
 * hash is enough: there is nothing to brute-force.
 */
@Injectable()
export class ApiKeysService {
  /**
   * Every request authenticates, and devices resolve often: answers are cached for a short while, keyed by
   * the key's hash (never the key itself). A revoked key therefore stops working within AUTH_CACHE_TTL_MS.
   */
  private readonly cache = new LRUCache<string, { auth: AuthContext | null }>({ max: 50_000, ttl: AUTH_CACHE_TTL_MS });

  constructor(@InjectRepository(ApiKeyEntity) private readonly keys: Repository<ApiKeyEntity>) {}

  async create(tenantId: string, kind: ApiKeyKind, name: string): Promise<{ key: string; entity: ApiKeyEntity }> {
    const id = randomBytes(6).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    const prefix = `${KEY_PREFIX[kind]}_${id}`;
    const key = `${prefix}_${secret}`;
    const entity = await this.keys.save(
      this.keys.create({ tenantId, kind, name, prefix, keyHash: hashKey(key), revokedAt: null }),
    );
    return { key, entity };
  }

  /**
   * The cached answer for a key, without touching the database: the caller, null for a known-bad key, or
   * undefined when this key has not been checked recently (then call authenticate()).
   */
  cachedAuthentication(presented: string): AuthContext | null | undefined {
    return KEY_FORMAT.test(presented) ? this.cache.get(hashKey(presented))?.auth : null;
  }

  /** The caller of a presented key, or null when the key is unknown, malformed or revoked. */
  async authenticate(presented: string): Promise<AuthContext | null> {
    const match = KEY_FORMAT.exec(presented);
    if (!match) return null;
    const presentedHash = hashKey(presented);
    const cached = this.cache.get(presentedHash);
    if (cached) return cached.auth;
    const row = await this.keys.findOne({ where: { prefix: `${match[1]}_${match[2]}`, revokedAt: IsNull() } });
    let auth: AuthContext | null = null;
    if (row) {
      const a = Buffer.from(row.keyHash, 'hex');
      const b = Buffer.from(presentedHash, 'hex');
      if (a.length === b.length && timingSafeEqual(a, b))
        auth = { tenantId: row.tenantId, keyId: row.id, kind: row.kind };
    }
    this.cache.set(presentedHash, { auth });
    return auth;
  }
}

export const AUTH_CACHE_TTL_MS = 30_000;
const KEY_FORMAT = /^(kiln|kdev)_([0-9a-f]{12})_[A-Za-z0-9_-]{20,100}$/;

function hashKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}
