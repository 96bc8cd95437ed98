import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { kilnValidationPipe } from '../common/validation.js';
import { ResolveRequestDto } from './resolver.dto.js';

const pipe = kilnValidationPipe();
const base = { model: 'resnet-edge@prod', fingerprint: { schemaVersion: 1 } };

async function parse(body: Record<string, unknown>): Promise<ResolveRequestDto> {
  return (await pipe.transform(body, { type: 'body', metatype: ResolveRequestDto })) as ResolveRequestDto;
}

describe('ResolveRequestDto.acceptPrecisions', () => {
  it('is optional (the resolver then accepts fp32 only)', async () => {
    assert.equal((await parse(base)).acceptPrecisions, undefined);
  });

  it('takes known precisions', async () => {
    assert.deepEqual((await parse({ ...base, acceptPrecisions: ['fp32', 'bf16'] })).acceptPrecisions, ['fp32', 'bf16']);
  });

  it('refuses unknown precisions and non-lists with VALIDATION_FAILED', async () => {
    for (const acceptPrecisions of [['int8'], 'bf16', ['fp32', 'bf16', 'fp16', 'fp32']]) {
      await assert.rejects(
        parse({ ...base, acceptPrecisions }),
        (err: unknown) =>
          err instanceof KilnError && err.code === ErrorCode.VALIDATION_FAILED && /acceptPrecisions/.test(err.message),
      );
    }
  });
});
