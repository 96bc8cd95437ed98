import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { LRUCache } from 'lru-cache';
import { RateLimiterMemory, RateLimiterPostgres, RateLimiterRes } from 'rate-limiter-flexible';
import type { DataSource } from 'typeorm';
import { ErrorCode, KilnError } from '@kiln/contracts';

export type RateLimitDecision = { allowed: true } | { allowed: false; retryAfterSeconds: number };

/** The limit counts requests per fixed window of this length. */
const WINDOW_S = 60;
/** A replica takes this share of a key's limit from the shared counter at a time (see RateLimitService). */
const LEASE_SHARE = 1 / 50;

interface Lease {
  /** Requests this replica may still let through without asking the database. */
  remaining: number;
  /** When the window the lease belongs to ends (epoch ms). */
  windowEndsAt: number;
  /** Refused until then (epoch ms): the shared counter said the window is used up. */
  blockedUntil: number;
  /** A lease being taken from the database; concurrent requests of the key wait for it instead of taking more. */
  pending: Promise<void> | null;
}

/**
 * Per-key API rate limits (KILN_RATE_LIMIT_PER_MINUTE, or the tenant's own), answered with 429 + Retry-After.
 *
 * The count lives in PostgreSQL (rate-limiter-flexible's RateLimiterPostgres on the `rate_limits` table), so the
 * limit holds across every API replica. Asking the database on each request would cap the resolver (tens of
 * thousands of requests a second per replica, bench/resolver-throughput.ts) at the database's write rate, so a
 * replica leases a share of the window (1/50 of the limit, at least 1) from the shared counter in one atomic
 * upsert and spends it in memory, synchronously. Leased points count as used, so all replicas together never
 * let more than the limit through; what a replica leased and did not spend is lost for that window (a key may be
 * refused up to one lease per replica early). Once the shared counter says the window is spent, the key is
 * refused from memory until the window ends: a flood costs no database work. If PostgreSQL fails, an in-memory
 * limiter takes over per replica (rate-limiter-flexible's insuranceLimiter).
 */
@Injectable()
export class RateLimitService {
  private readonly leases = new LRUCache<string, Lease>({ max: 100_000, ttl: (WINDOW_S + 5) * 1000 });
  private readonly limiters = new Map<number, RateLimiterPostgres>();

  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  /**
   * Takes one request of this key's budget. Synchronous while the replica holds a lease (the resolver's hot path
   * stays free of promises); a promise when a new lease must come from the database.
   */
  take(keyId: string, limitPerMinute: number): RateLimitDecision | Promise<RateLimitDecision> {
    const now = Date.now();
    const lease = this.leases.get(keyId);
    if (lease) {
      if (lease.blockedUntil > now) return refused(lease.blockedUntil - now);
      if (lease.remaining > 0 && now < lease.windowEndsAt) {
        lease.remaining--;
        return ALLOWED;
      }
      if (lease.pending) return lease.pending.then(() => this.take(keyId, limitPerMinute));
    }
    const next: Lease = lease ?? { remaining: 0, windowEndsAt: 0, blockedUntil: 0, pending: null };
    if (!lease) this.leases.set(keyId, next);
    const pending = this.renew(keyId, limitPerMinute, next);
    next.pending = pending;
    return pending.then(
      () => {
        next.pending = null;
        return this.take(keyId, limitPerMinute);
      },
      (err: unknown) => {
        next.pending = null;
        throw err;
      },
    );
  }

  /** take(), throwing RATE_LIMITED (429, Retry-After) when refused. */
  async check(keyId: string, limitPerMinute: number): Promise<void> {
    const decision = await this.take(keyId, limitPerMinute);
    if (!decision.allowed) throw rateLimited(decision.retryAfterSeconds);
  }

  private async renew(keyId: string, limit: number, lease: Lease): Promise<void> {
    const size = Math.max(1, Math.floor(limit * LEASE_SHARE));
    const now = Date.now();
    let res: RateLimiterRes;
    try {
      res = await this.limiter(limit).consume(keyId, size);
    } catch (rejection) {
      if (!(rejection instanceof RateLimiterRes)) throw rejection;
      res = rejection;
    }
    // What was left of the window before this lease: all of the lease, part of it, or nothing.
    const granted = Math.min(size, Math.max(0, limit - (res.consumedPoints - size)));
    lease.windowEndsAt = now + res.msBeforeNext;
    lease.remaining = granted;
    lease.blockedUntil = granted === 0 ? now + res.msBeforeNext : 0;
  }

  private limiter(points: number): RateLimiterPostgres {
    let limiter = this.limiters.get(points);
    if (!limiter) {
      const driver = this.dataSource.driver as unknown as { master: unknown };
      limiter = new RateLimiterPostgres({
        storeClient: driver.master,
        storeType: 'pool',
        tableName: 'rate_limits',
        tableCreated: true,
        keyPrefix: 'key',
        points,
        duration: WINDOW_S,
        insuranceLimiter: new RateLimiterMemory({ keyPrefix: 'key', points, duration: WINDOW_S }),
      });
      this.limiters.set(points, limiter);
    }
    return limiter;
  }
}

const ALLOWED: RateLimitDecision = { allowed: true };

function refused(ms: number): RateLimitDecision {
  return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(ms / 1000)) };
}

export function rateLimited(retryAfterSeconds: number): KilnError {
  return new KilnError(ErrorCode.RATE_LIMITED, `Too many requests with this key; retry after ${retryAfterSeconds} s.`, {
    retryAfterSeconds,
  });
}
