import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type ArtifactPart, ErrorCode, KilnError, NON_RETRYABLE_BUILD_ERRORS } from '@kiln/contracts';
import { checkReproduced, compareBuilds } from './reproduction.js';

const h = (c: string): string => c.repeat(64);
const ENTRY = 'model/data/aotinductor/model/x.wrapper_weights.blob';
const parts = (code: string, weights: string, weightsSize = 400): ArtifactPart[] => [
  { role: 'code', sha256: h(code), size: 100 },
  { role: 'weights', sha256: h(weights), size: weightsSize, entry: ENTRY },
];

describe('reproduction check (two builds of one job)', () => {
  it('identical parts: no difference, and the log line names each part and its sha256', () => {
    assert.deepEqual(compareBuilds(parts('a', 'b'), parts('a', 'b')), []);
    assert.equal(
      checkReproduced(parts('a', 'b'), [...parts('a', 'b')].reverse()),
      `reproduced: code part identical (sha256 ${h('a')}), weights part identical (sha256 ${h('b')})`,
    );
  });

  it('another code part: BUILD_NOT_REPRODUCIBLE with both hashes in details.parts', () => {
    let thrown: unknown;
    try {
      checkReproduced(parts('a', 'b'), parts('c', 'b'));
    } catch (err) {
      thrown = err;
    }
    assert.ok(thrown instanceof KilnError);
    assert.equal(thrown.code, ErrorCode.BUILD_NOT_REPRODUCIBLE);
    assert.deepEqual(thrown.details, { parts: [{ role: 'code', first: h('a'), second: h('c') }] });
    assert.ok(thrown.message.includes(`code part sha256 ${h('a')} then sha256 ${h('c')}`), thrown.message);
  });

  it('weights parts count too: another hash, another size, or a part only one build has', () => {
    assert.deepEqual(compareBuilds(parts('a', 'b'), parts('a', 'd')), [
      { role: 'weights', entry: ENTRY, first: h('b'), second: h('d') },
    ]);
    assert.deepEqual(compareBuilds(parts('a', 'b'), parts('a', 'b', 401)), [
      { role: 'weights', entry: ENTRY, first: h('b'), second: h('b') },
    ]);
    const extra: ArtifactPart = { role: 'weights', sha256: h('e'), size: 1, entry: 'model/data/y_weights.blob' };
    assert.deepEqual(compareBuilds(parts('a', 'b'), [...parts('a', 'b'), extra]), [
      { role: 'weights', entry: extra.entry, first: null, second: h('e') },
    ]);
    assert.deepEqual(compareBuilds(parts('a', 'b'), parts('a', 'b').slice(0, 1)), [
      { role: 'weights', entry: ENTRY, first: h('b'), second: null },
    ]);
    assert.throws(
      () => checkReproduced(parts('a', 'b'), parts('a', 'd')),
      (err: unknown) => err instanceof KilnError && err.code === ErrorCode.BUILD_NOT_REPRODUCIBLE,
    );
  });

  it('BUILD_NOT_REPRODUCIBLE is not retried (a rebuild would only roll the dice again)', () => {
    assert.ok(NON_RETRYABLE_BUILD_ERRORS.includes(ErrorCode.BUILD_NOT_REPRODUCIBLE));
  });
});
