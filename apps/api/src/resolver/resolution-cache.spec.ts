// ResolutionCache's rules with a clock moved by hand: shared misses, failures never cached, and nothing outliving the
// context (the database reads) it was made from, whichever way it is found.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ResolutionResponseDto } from './resolver.dto.js';
import { RESOLUTION_CACHE_TTL_MS, ResolutionCache } from './resolution-cache.js';

const TENANT = '00000000-0000-4000-8000-000000000001';
const BODY = '{"model":"m","fingerprint":{"schemaVersion":1}}';

function setup(): { cache: ResolutionCache<string>; clock: { now: () => number; t: number } } {
  const clock = { t: 1_000, now: () => clock.t };
  return { cache: new ResolutionCache<string>({ clock }), clock };
}

function answerFor(model: string, artifact: boolean): ResolutionResponseDto {
  return {
    model: { id: 'id', name: model },
    artifact: artifact ? { id: 'a' } : null,
  } as unknown as ResolutionResponseDto;
}

/** A loader that counts its calls. */
function counted<T>(make: () => Promise<T>): { load: () => Promise<T>; calls: () => number } {
  let calls = 0;
  return {
    load: () => {
      calls += 1;
      return make();
    },
    calls: () => calls,
  };
}

test('requests that miss one context or one answer together share one load and one computation', async () => {
  const { cache } = setup();
  const context = counted(() => Promise.resolve('ctx'));
  const a = cache.context('k', context.load);
  const b = cache.context('k', context.load);
  assert.equal(a, b);
  assert.equal(context.calls(), 1);
  const compute = counted(() => Promise.resolve(answerFor('m', true)));
  const [x, y] = await Promise.all([cache.answer('q', a, compute.load), cache.answer('q', a, compute.load)]);
  assert.equal(x, y);
  assert.equal(compute.calls(), 1);
  assert.deepEqual([x.modelName, x.outcome, x.json.toString()], ['m', 'artifact', JSON.stringify(x.answer)]);
});

test('failures are never cached: the next request loads and computes again', async () => {
  const { cache } = setup();
  const failing = counted(() => Promise.reject(new Error('no model')));
  await assert.rejects(cache.context('k', failing.load).context, /no model/);
  await assert.rejects(cache.context('k', failing.load).context, /no model/);
  assert.equal(failing.calls(), 2);
  const from = cache.context('k2', () => Promise.resolve('ctx'));
  const compute = counted(() => Promise.reject(new Error('presign failed')));
  await assert.rejects(cache.answer('q', from, compute.load), /presign failed/);
  await assert.rejects(cache.answer('q', from, compute.load), /presign failed/);
  assert.equal(compute.calls(), 2);
});

test('an answer expires with the context it was made from, not a TTL after it was computed', async () => {
  const { cache, clock } = setup();
  const context = counted(() => Promise.resolve('ctx'));
  const compute = counted(() => Promise.resolve(answerFor('m', false)));
  const from = cache.context('k', context.load);
  clock.t += RESOLUTION_CACHE_TTL_MS - 1_000;
  const first = await cache.answer('q', from, compute.load);
  assert.equal(first.expiresAt, from.expiresAt);
  clock.t = from.expiresAt;
  assert.equal(await cache.answer('q', cache.context('k', context.load), compute.load), first);
  assert.deepEqual([context.calls(), compute.calls()], [1, 1]);
  clock.t += 1;
  const fresh = cache.context('k', context.load);
  assert.notEqual(fresh, from);
  assert.notEqual(await cache.answer('q', fresh, compute.load), first);
  assert.deepEqual([context.calls(), compute.calls()], [2, 2]);
});

test('the fast path finds an answer by its exact body, synchronously, per tenant, until its context expires', async () => {
  const { cache, clock } = setup();
  const from = cache.context('k', () => Promise.resolve('ctx'));
  const resolution = await cache.answer('q', from, () => Promise.resolve(answerFor('m', true)));
  assert.equal(cache.answeredBody(TENANT, BODY), undefined);
  // Requests that miss one body together resolve it once.
  const resolve = counted(() => Promise.resolve(resolution));
  const pending = [cache.answerBody(TENANT, BODY, resolve.load), cache.answerBody(TENANT, BODY, resolve.load)];
  assert.equal(cache.answeredBody(TENANT, BODY), undefined, 'not answered yet');
  assert.deepEqual(await Promise.all(pending), [resolution, resolution]);
  assert.equal(resolve.calls(), 1);
  assert.equal(cache.answeredBody(TENANT, BODY), resolution);
  assert.equal(cache.answeredBody(TENANT, `${BODY} `), undefined, 'another body');
  assert.equal(cache.answeredBody('00000000-0000-4000-8000-000000000002', BODY), undefined, 'another tenant');
  clock.t = from.expiresAt;
  assert.equal(cache.answeredBody(TENANT, BODY), resolution);
  clock.t += 1;
  assert.equal(cache.answeredBody(TENANT, BODY), undefined);
  // An answer whose context has expired already is not remembered at all.
  assert.equal(await cache.answerBody(TENANT, BODY, () => Promise.resolve(resolution)), resolution);
  assert.equal(cache.answeredBody(TENANT, BODY), undefined);
});

test('a body that fails is not remembered: the next request tries again', async () => {
  const { cache } = setup();
  const failing = counted(() => Promise.reject(new Error('not valid JSON')));
  await assert.rejects(cache.answerBody(TENANT, '{', failing.load), /not valid JSON/);
  await assert.rejects(cache.answerBody(TENANT, '{', failing.load), /not valid JSON/);
  assert.equal(failing.calls(), 2);
});
