// The per-key rate limiter with two "replicas" (two services) sharing the real PostgreSQL counter: together they
// never let more than the limit through, each answers synchronously while it holds a lease, and a spent key is
// refused with a Retry-After within the window.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { DataSource } from 'typeorm';
import { loadKilnConfig } from '@kiln/config';
import { kilnDataSourceOptions } from '@kiln/database';
import { RateLimitService } from './rate-limit.service.js';

let ds: DataSource;

before(async () => {
  ds = new DataSource(kilnDataSourceOptions(loadKilnConfig().DATABASE_URL, { logging: false }));
  await ds.initialize();
  await ds.runMigrations();
});

after(async () => {
  await ds?.destroy();
});

test('two replicas together let exactly the limit through at most, and refuse the rest with Retry-After', async () => {
  const replicas = [new RateLimitService(ds), new RateLimitService(ds)];
  const key = randomUUID();
  const limit = 100;
  let allowed = 0;
  const refusals: number[] = [];
  for (let i = 0; i < 300; i++) {
    const decision = await replicas[i % 2].take(key, limit);
    if (decision.allowed) allowed++;
    else refusals.push(decision.retryAfterSeconds);
  }
  // Leases of 2 (1/50 of 100): what a replica leased and did not spend may be lost, never more than one lease each.
  assert.ok(allowed <= limit, `${allowed} allowed`);
  assert.ok(allowed >= limit - 2 * 2, `${allowed} allowed`);
  assert.ok(refusals.every((s) => s >= 1 && s <= 60));
  // Another key is not affected.
  assert.deepEqual(await replicas[0].take(randomUUID(), limit), { allowed: true });
});

test('while a replica holds a lease it answers synchronously (the resolver hot path stays promise-free)', async () => {
  const service = new RateLimitService(ds);
  const key = randomUUID();
  const first = service.take(key, 5000);
  assert.ok(first instanceof Promise, 'the first request of a window takes a lease from PostgreSQL');
  assert.deepEqual(await first, { allowed: true });
  const next = service.take(key, 5000);
  assert.ok(!(next instanceof Promise));
  assert.deepEqual(next, { allowed: true });
});
