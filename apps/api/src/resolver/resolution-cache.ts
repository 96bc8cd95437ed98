import { LRUCache, type Perf } from 'lru-cache';
import type { ResolutionResponseDto } from './resolver.dto.js';

/**
 * How long what the resolver read from the database may be reused: a channel move, a new artifact, fleet evidence
 * or a rollout step reaches devices within this time. Presigned URLs in a cached answer stay valid far longer
 * (KILN_PRESIGN_TTL_S).
 */
export const RESOLUTION_CACHE_TTL_MS = 5_000;

/** An answer as both routes send it: the DTO (Nest serialises it) and its JSON, serialised once (the fast path). */
export class CachedResolution {
  readonly json: Buffer;
  /** The model the answer is about: a device token enrolled for other models never gets it. */
  readonly modelName: string;
  /** For kiln_resolve_decisions_total: whether a compiled artifact was chosen or only the portable graph. */
  readonly outcome: 'artifact' | 'portable';

  constructor(
    readonly answer: ResolutionResponseDto,
    /** When the database reads it was made from expire (the cache's clock). */
    readonly expiresAt: number,
  ) {
    this.json = Buffer.from(JSON.stringify(answer));
    this.modelName = answer.model.name;
    this.outcome = answer.artifact ? 'artifact' : 'portable';
  }
}

/** A context (one model reference's database reads) and when it expires, with everything made from it. */
export interface CachedContext<Context> {
  readonly context: Promise<Context>;
  readonly expiresAt: number;
}

interface AnswerEntry {
  /** A promise, so requests that miss one answer together share one computation (presigning is the costly part). */
  readonly promise: Promise<CachedResolution>;
  /** Set once answered: the fast path's cache hit reads it synchronously (no promise per request). */
  settled?: CachedResolution;
}

/**
 * The resolver's one cache, used by the documented route (through ResolverService) and by the fast path in front of
 * Nest. What it holds and how it expires, in one rule: everything is made from a **context**, the database reads for
 * one model reference (model, version, artifacts, fleet evidence, rollouts; ResolverService.loadContext), and
 * nothing outlives the context it was made from, RESOLUTION_CACHE_TTL_MS after the read began. There is no other
 * invalidation (as before: a change in the database reaches devices within that time), and failures are never
 * cached.
 *
 * Two kinds of entry, in two stores because they are two kinds of thing with their own bounds:
 * - contexts, keyed by (tenant, model reference): database reads shared by every device of that model;
 * - answers, keyed by what an answer depends on (the context's key, the normalised fingerprint, the options, the
 *   rollout arm), and found a second way by the fast path: by the exact request body that was answered with it, so
 *   that identical devices' identical requests cost one hash lookup, without parsing or validating anything. Both
 *   keys lead to the same answer, which expires with its context.
 */
export class ResolutionCache<Context = unknown> {
  private readonly contexts: LRUCache<string, CachedContext<Context>>;
  private readonly answers: LRUCache<string, AnswerEntry>;
  private readonly clock: Perf;

  /** `clock` is for tests, which move time by hand. */
  constructor(options: { clock?: Perf } = {}) {
    this.clock = options.clock ?? performance;
    // With a clock of its own the cache must read it on every lookup; by default lru-cache reuses a reading for 1 ms.
    const timing = { perf: this.clock, ...(options.clock ? { ttlResolution: 0 } : {}) };
    this.contexts = new LRUCache({ max: 10_000, ttl: RESOLUTION_CACHE_TTL_MS, ...timing });
    // The bound of the two answer caches this one replaces (the service's and the fast path's), together.
    this.answers = new LRUCache({ max: 100_000, ttl: RESOLUTION_CACHE_TTL_MS, ...timing });
  }

  /** The context cached under `key`, or the one `load` starts (concurrent misses share it). */
  context(key: string, load: () => Promise<Context>): CachedContext<Context> {
    const found = this.contexts.get(key);
    if (found) return found;
    const entry: CachedContext<Context> = {
      context: load(),
      expiresAt: this.clock.now() + RESOLUTION_CACHE_TTL_MS,
    };
    this.contexts.set(key, entry);
    // Errors (an unknown model, ...) are answered, not cached.
    entry.context.catch(() => this.forget(this.contexts, key, entry));
    return entry;
  }

  /** The answer cached under `key`, or the one `compute` makes from `from` (concurrent misses share it). */
  answer(
    key: string,
    from: CachedContext<Context>,
    compute: () => Promise<ResolutionResponseDto>,
  ): Promise<CachedResolution> {
    const requestKey = `request\0${key}`;
    const found = this.answers.get(requestKey);
    if (found) return found.promise;
    const entry: AnswerEntry = {
      promise: compute().then((answer) => {
        entry.settled = new CachedResolution(answer, from.expiresAt);
        return entry.settled;
      }),
    };
    // A context that expired while this request waited for it still answers this request, but is not reused.
    if (this.remember(requestKey, entry, from.expiresAt)) {
      entry.promise.catch(() => this.forget(this.answers, requestKey, entry));
    }
    return entry.promise;
  }

  /** The fast path's cache hit: the answer this tenant's identical request body got, synchronously, or nothing. */
  answeredBody(tenantId: string, body: string): CachedResolution | undefined {
    return this.answers.get(bodyKey(tenantId, body))?.settled;
  }

  /**
   * The answer to this tenant's exact request body: remembered, in flight (requests that miss one body together wait
   * for one `resolve`, which parses and validates it once), or the one `resolve` makes. Found this way until the
   * context it was made from expires.
   */
  answerBody(tenantId: string, body: string, resolve: () => Promise<CachedResolution>): Promise<CachedResolution> {
    const key = bodyKey(tenantId, body);
    const found = this.answers.get(key);
    if (found) return found.promise;
    const entry: AnswerEntry = {
      promise: resolve().then((resolution) => {
        entry.settled = resolution;
        // Until now it waited under the default TTL: from here on, the life its context has left (unless it waited
        // longer than that TTL and a newer request took its place).
        if (this.answers.peek(key) === entry) this.remember(key, entry, resolution.expiresAt);
        return resolution;
      }),
    };
    this.answers.set(key, entry);
    entry.promise.catch(() => this.forget(this.answers, key, entry));
    return entry.promise;
  }

  private remember(key: string, entry: AnswerEntry, expiresAt: number): boolean {
    const ttl = expiresAt - this.clock.now();
    // lru-cache reads a ttl of 0 as "never expires".
    if (ttl <= 0) {
      this.forget(this.answers, key, entry);
      return false;
    }
    this.answers.set(key, entry, { ttl });
    return true;
  }

  private forget<V extends object>(store: LRUCache<string, V>, key: string, entry: V): void {
    // Only this entry: a newer one under the same key stays.
    if (store.peek(key) === entry) store.delete(key);
  }
}

/**
 * The hot path's key, built exactly as before the cache was shared. It cannot meet a request key: those start with
 * `request`, these with a tenant id (a UUID).
 */
function bodyKey(tenantId: string, body: string): string {
  return `${tenantId}\0${body}`;
}
