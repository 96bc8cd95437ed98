import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { type HashedPart, partRanges } from './upload-core/part-plan.js';
import { ResumeStore } from './resume-state.js';
import { hashParts, openUploadSource } from './upload-source.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-source-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function collect(gen: AsyncGenerator<HashedPart, string>): Promise<{ parts: HashedPart[]; whole: string }> {
  const parts: HashedPart[] = [];
  for (;;) {
    const r = await gen.next();
    if (r.done) return { parts, whole: r.value };
    parts.push(r.value);
  }
}

test('files, buffers and streams hash to the same per-part and whole-file sha256', async () => {
  const bytes = randomBytes(3 * 1024 * 1024 + 123);
  const file = path.join(dir, 'm.pt2');
  await writeFile(file, bytes);
  const ranges = partRanges(bytes.length, 1024 * 1024, 4);
  const expected = ranges.map((r) =>
    createHash('sha256')
      .update(bytes.subarray(r.offset, r.offset + r.size))
      .digest('base64'),
  );
  const wholeExpected = createHash('sha256').update(bytes).digest('hex');

  const sources = [
    await openUploadSource(file),
    await openUploadSource(bytes),
    await openUploadSource(Readable.from([bytes.subarray(0, 1000), bytes.subarray(1000)])),
  ];
  for (const source of sources) {
    const { parts, whole } = await collect(hashParts(source, ranges));
    assert.deepEqual(
      parts.map((p) => p.sha256),
      expected,
    );
    assert.equal(whole, wholeExpected);
    assert.equal(source.size, bytes.length);
  }
  assert.equal(sources[0].filename, 'm.pt2');
  assert.ok(sources[0].mtimeMs !== null && sources[1].mtimeMs === null && sources[2].mtimeMs === null);
  // A stream is spooled to a temporary file, removed on close.
  const spool = sources[2].path!;
  assert.ok(existsSync(spool));
  for (const s of sources) await s.close();
  assert.ok(!existsSync(spool));
  assert.ok(existsSync(file));
});

test('resume records are found only for the same API, model, path, size and mtime', async () => {
  const store = new ResumeStore(path.join(dir, 'state'));
  const key = { baseUrl: 'http://x', modelId: 'm', path: '/a.pt2', size: 10, mtimeMs: 5 };
  await store.save({ version: 1, uploadId: 'u1', createdAt: '', ...key });
  assert.equal((await store.load(key))?.uploadId, 'u1');
  assert.equal(await store.load({ ...key, mtimeMs: 6 }), null);
  assert.equal(await store.load({ ...key, baseUrl: 'http://y' }), null);
  await store.remove(key);
  assert.equal(await store.load(key), null);
});
