import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { writeVerifiedModel } from './verified-download.js';

const dir = await mkdtemp(join(tmpdir(), 'kiln-verified-'));
after(() => rm(dir, { recursive: true, force: true }));

const model = Buffer.from('PK\u0003\u0004 the validated model bytes '.repeat(1000));
const expected = { sha256: createHash('sha256').update(model).digest('hex'), size: model.length };
const chunked = (bytes: Buffer) => Readable.from([bytes.subarray(0, 1000), bytes.subarray(1000)]);

async function refused(body: Buffer, message: RegExp): Promise<void> {
  const dest = join(dir, `m-${Math.random()}.pt2`);
  await assert.rejects(writeVerifiedModel(chunked(body), dest, expected), (err: unknown) => {
    assert.ok(err instanceof KilnError, String(err));
    assert.equal(err.code, ErrorCode.MODEL_INTEGRITY_MISMATCH);
    assert.match(err.message, message);
    return true;
  });
  assert.equal(existsSync(dest), false, 'the unverified file is removed');
}

describe('writeVerifiedModel', () => {
  it('writes the object when sha256 and size are the recorded ones', async () => {
    const dest = join(dir, 'ok.pt2');
    await writeVerifiedModel(chunked(model), dest, expected);
    assert.ok((await readFile(dest)).equals(model));
  });

  it('refuses an object with one byte changed', async () => {
    const swapped = Buffer.from(model);
    swapped[5000] ^= 0x20;
    await refused(swapped, /sha256 is [0-9a-f]{64}, not the [0-9a-f]{64} validated at upload/);
  });

  it('refuses a shorter object, and stops reading a longer one at the recorded size', async () => {
    await refused(
      model.subarray(0, model.length - 1),
      new RegExp(`is ${model.length - 1} bytes, not the ${model.length}`),
    );
    await refused(Buffer.concat([model, Buffer.from('more')]), /larger than the \d+ bytes validated at upload/);
  });
});
