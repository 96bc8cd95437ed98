import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isTransient, KilnAbortError, KilnApiError, KilnNetworkError, KilnStorageError } from './errors.js';
import { abortableSleep, backoffDelay, DEFAULT_RETRY_POLICY, parseRetryAfter, withRetry } from './retry.js';

const policy = { retries: 4, minDelayMs: 100, maxDelayMs: 1000, factor: 2 };

test('backoff: full jitter under an exponentially growing, capped ceiling', () => {
  assert.equal(
    backoffDelay(0, policy, () => 0.999999),
    99,
  );
  assert.equal(
    backoffDelay(2, policy, () => 0.5),
    200,
  );
  assert.equal(
    backoffDelay(10, policy, () => 0.999999),
    999,
  );
  assert.equal(
    backoffDelay(3, policy, () => 0),
    0,
  );
  // Retry-After is a floor, capped at a minute.
  assert.equal(
    backoffDelay(0, policy, () => 0, 5000),
    5000,
  );
  assert.equal(
    backoffDelay(0, policy, () => 0, 3_600_000),
    60_000,
  );
});

test('transient: network errors, 429, 502/503/504, SERVICE_UNAVAILABLE, S3 5xx; never Kiln INTERNAL or 4xx', () => {
  assert.ok(isTransient(new KilnNetworkError('reset')));
  for (const status of [429, 502, 503, 504]) assert.ok(isTransient(new KilnApiError(status, `HTTP_${status}`, 'x')));
  assert.ok(isTransient(new KilnApiError(503, 'SERVICE_UNAVAILABLE', 'x')));
  assert.ok(!isTransient(new KilnApiError(500, 'INTERNAL', 'bug')));
  assert.ok(!isTransient(new KilnApiError(422, 'PT2_TRUNCATED', 'x')));
  assert.ok(!isTransient(new KilnApiError(404, 'UPLOAD_NOT_FOUND', 'x')));
  assert.ok(isTransient(new KilnStorageError(503, 'SlowDown', 'x')));
  assert.ok(isTransient(new KilnStorageError(500, 'InternalError', 'x')));
  assert.ok(!isTransient(new KilnStorageError(400, 'BadDigest', 'x')));
  assert.ok(!isTransient(new Error('anything else')));
});

test('fair use: rate limits and short quota waits are retried; an hour-long quota wait and the storage quota are not', () => {
  assert.ok(isTransient(new KilnApiError(429, 'RATE_LIMITED', 'x', undefined, 2_000)));
  assert.ok(isTransient(new KilnApiError(429, 'QUOTA_EXCEEDED', 'builds', undefined, 30_000)));
  assert.ok(!isTransient(new KilnApiError(429, 'QUOTA_EXCEEDED', 'uploads per hour', undefined, 3_000_000)));
  assert.ok(!isTransient(new KilnApiError(413, 'STORAGE_QUOTA_EXCEEDED', 'x')));
});

test('withRetry retries transient failures with the policy, then gives up with the last error', async () => {
  const delays: number[] = [];
  let calls = 0;
  const result = await withRetry(
    async () => {
      calls++;
      if (calls < 3) throw new KilnApiError(503, 'SERVICE_UNAVAILABLE', 'down');
      return 'ok';
    },
    { policy, random: () => 0.5, sleep: async (ms) => void delays.push(ms) },
  );
  assert.equal(result, 'ok');
  assert.deepEqual(delays, [50, 100]);

  calls = 0;
  await assert.rejects(
    withRetry(
      async () => {
        calls++;
        throw new KilnNetworkError('refused');
      },
      { policy, sleep: async () => undefined },
    ),
    KilnNetworkError,
  );
  assert.equal(calls, policy.retries + 1);

  calls = 0;
  await assert.rejects(
    withRetry(
      async () => {
        calls++;
        throw new KilnApiError(409, 'CONFLICT', 'no');
      },
      { policy, sleep: async () => undefined },
    ),
    /no/,
  );
  assert.equal(calls, 1);
});

test('an aborted signal stops retrying and sleeping with KilnAbortError', async () => {
  const controller = new AbortController();
  const pending = withRetry(
    async () => {
      throw new KilnNetworkError('refused');
    },
    { policy: { ...DEFAULT_RETRY_POLICY, minDelayMs: 10_000 }, signal: controller.signal },
  );
  setTimeout(() => controller.abort(), 20);
  await assert.rejects(pending, KilnAbortError);
  await assert.rejects(abortableSleep(10, AbortSignal.abort()), (e: Error) => e.name === 'AbortError');
});

test('Retry-After in seconds or as a date', () => {
  assert.equal(parseRetryAfter('3'), 3000);
  assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4000), 6000);
  assert.equal(parseRetryAfter(null), undefined);
  assert.equal(parseRetryAfter('soon'), undefined);
});
