import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, NON_RETRYABLE_BUILD_ERRORS } from './error-codes.js';
import shared from './error-codes.json' with { type: 'json' };

/**
 * error-codes.json is the one definition of the codes and their retry policy; ErrorCode stays a literal object
 * here (the types of every caller need the literals, and the Temporal workflow bundle imports it), so this test
 * is what keeps the two equal. The Python driver and runtime check their codes against the same file.
 */
const service = shared.service as { code: string; retryBuild?: boolean; driver?: 'deterministic' | 'transient' }[];
const sorted = (codes: Iterable<string>) => [...codes].sort();

describe('error codes (error-codes.json)', () => {
  it('ErrorCode holds exactly the shared service codes, each named as itself', () => {
    assert.deepEqual(sorted(Object.values(ErrorCode)), sorted(service.map((c) => c.code)));
    for (const [name, code] of Object.entries(ErrorCode)) assert.equal(name, code);
  });

  it('NON_RETRYABLE_BUILD_ERRORS are exactly the codes with retryBuild false', () => {
    assert.deepEqual(
      sorted(NON_RETRYABLE_BUILD_ERRORS),
      sorted(service.filter((c) => c.retryBuild === false).map((c) => c.code)),
    );
  });

  it('no code the driver calls transient is one Temporal must never retry', () => {
    const contradictions = service.filter((c) => c.driver === 'transient' && c.retryBuild === false);
    assert.deepEqual(contradictions, []);
  });
});
