import assert from 'node:assert/strict';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BufferByteSource, FileByteSource } from './byte-source.js';

describe('ByteSource implementations', () => {
  let dir: string;
  const bytes = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-pt2-'));
    await writeFile(join(dir, 'data.bin'), bytes);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('BufferByteSource reads exact ranges and refuses reads past the end', async () => {
    const source = new BufferByteSource(bytes);
    assert.equal(source.size, 1000);
    assert.deepEqual(await source.read(10, 5), bytes.subarray(10, 15));
    assert.equal((await source.read(1000, 0)).length, 0);
    await assert.rejects(source.read(998, 5), RangeError);
    await assert.rejects(source.read(-1, 1), RangeError);
  });

  it('FileByteSource reads exact ranges and refuses reads past the end', async () => {
    const source = await FileByteSource.open(join(dir, 'data.bin'));
    try {
      assert.equal(source.size, 1000);
      assert.deepEqual(await source.read(990, 10), bytes.subarray(990, 1000));
      await assert.rejects(source.read(995, 10), RangeError);
    } finally {
      await source.close();
    }
  });

  it('FileByteSource fails when the file shrinks under it', async () => {
    const path = join(dir, 'shrinks.bin');
    await writeFile(path, bytes);
    const source = await FileByteSource.open(path);
    try {
      await truncate(path, 100);
      await assert.rejects(source.read(50, 100), /unexpected end of file/);
    } finally {
      await source.close();
    }
  });

  it('FileByteSource refuses directories', async () => {
    await assert.rejects(FileByteSource.open(dir));
  });
});
