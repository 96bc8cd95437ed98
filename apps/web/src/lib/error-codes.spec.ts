import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ErrorCode } from '@kiln/contracts';
import { explainError } from './error-codes.js';

describe('error code explanations', () => {
  test('refused uploads and failed builds are explained; unknown codes are not guessed at', () => {
    for (const code of [
      ErrorCode.PT2_NOT_ZIP,
      ErrorCode.PT2_PICKLED_DATA,
      ErrorCode.NO_WORKER,
      ErrorCode.COMPILE_FAILED,
    ]) {
      assert.ok(explainError(code)?.length, code);
    }
    assert.equal(explainError('SOMETHING_NEW'), null);
  });

  test('every PT2_* code has an explanation (the upload dialog shows it next to the message)', () => {
    const missing = Object.values(ErrorCode).filter((c) => c.startsWith('PT2_') && !explainError(c));
    assert.deepEqual(missing, []);
  });
});
