import { isTransient, KilnAbortError } from './errors.js';

export interface RetryPolicy {
  /** Attempts after the first one (0: never retry). */
  retries: number;
  /** Ceiling of the first wait; each retry doubles it (times `factor`) up to `maxDelayMs`. */
  minDelayMs: number;
  maxDelayMs: number;
  factor: number;
}

export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = Object.freeze({
  retries: 6,
  minDelayMs: 250,
  maxDelayMs: 15_000,
  factor: 2,
});

/**
 * Exponential backoff with full jitter: a uniformly random wait in [0, min(max, min·factor^attempt)]
 * (attempt 0 = the first retry), so that many clients failing together do not retry together. A server's
 * Retry-After is a floor (capped at 60 s).
 */
export function backoffDelay(
  attempt: number,
  policy: RetryPolicy,
  random: () => number = Math.random,
  retryAfterMs?: number,
): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.minDelayMs * policy.factor ** attempt);
  const jittered = Math.floor(random() * ceiling);
  return retryAfterMs !== undefined ? Math.max(jittered, Math.min(retryAfterMs, 60_000)) : jittered;
}

export interface RetryOptions {
  policy?: RetryPolicy;
  signal?: AbortSignal;
  /** Which errors to retry (default: isTransient). */
  retryable?: (err: unknown) => boolean;
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  random?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** Runs `fn` until it succeeds, fails with a non-retryable error, or the retries are used up. */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  const policy = opts.policy ?? DEFAULT_RETRY_POLICY;
  const retryable = opts.retryable ?? isTransient;
  const sleep = opts.sleep ?? abortableSleep;
  for (let attempt = 0; ; attempt++) {
    throwIfAborted(opts.signal);
    try {
      return await fn(attempt);
    } catch (err) {
      if (opts.signal?.aborted) throw abortError(opts.signal);
      if (attempt >= policy.retries || !retryable(err)) throw err;
      const retryAfterMs = (err as { retryAfterMs?: number }).retryAfterMs;
      const delay = backoffDelay(attempt, policy, opts.random, retryAfterMs);
      opts.onRetry?.(err, attempt + 1, delay);
      await sleep(delay, opts.signal);
    }
  }
}

export function abortError(signal: AbortSignal): KilnAbortError {
  const reason: unknown = signal.reason;
  if (reason instanceof KilnAbortError) return reason;
  return new KilnAbortError(
    reason instanceof Error && reason.name !== 'AbortError'
      ? `Aborted: ${reason.message}`
      : 'The operation was aborted.',
    { cause: reason },
  );
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortError(signal);
}

/** setTimeout as a promise that rejects with KilnAbortError when the signal fires. */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortError(signal));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortError(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Retry-After (seconds or an HTTP date) in milliseconds, or undefined. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
