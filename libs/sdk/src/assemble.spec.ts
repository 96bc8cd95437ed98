import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { crc32 } from 'node:zlib';
import yauzl from 'yauzl';
import yazl from 'yazl';
import { assemblePackage, checkWeightsEntry } from './assemble.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-assemble-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function writeZip(file: string, entries: Record<string, Buffer>): Promise<void> {
  const zip = new yazl.ZipFile();
  for (const [name, data] of Object.entries(entries)) zip.addBuffer(data, name, { compress: false });
  zip.end();
  await new Promise<void>((resolve, reject) => {
    zip.outputStream.pipe(createWriteStream(file)).on('close', resolve).on('error', reject);
  });
}

interface ReadEntry {
  name: string;
  data: Buffer;
  crc: number;
  dataOffset: number;
}

async function readZip(file: string): Promise<ReadEntry[]> {
  const bytes = await readFile(file);
  const zip = await yauzl.fromBufferPromise(bytes, { lazyEntries: true });
  const listed = await new Promise<yauzl.Entry[]>((resolve, reject) => {
    const all: yauzl.Entry[] = [];
    zip.on('entry', (e: yauzl.Entry) => {
      all.push(e);
      zip.readEntry();
    });
    zip.on('end', () => resolve(all));
    zip.on('error', reject);
    zip.readEntry();
  });
  const entries: ReadEntry[] = [];
  for (const entry of listed) {
    const stream = await zip.openReadStreamPromise(entry);
    const chunks: Buffer[] = [];
    for await (const c of stream) chunks.push(c as Buffer);
    const local = entry.relativeOffsetOfLocalHeader;
    const dataOffset = local + 30 + bytes.readUInt16LE(local + 26) + bytes.readUInt16LE(local + 28);
    entries.push({ name: entry.fileName, data: Buffer.concat(chunks), crc: entry.crc32, dataOffset });
  }
  zip.close();
  return entries;
}

test('the code zip keeps its entries byte for byte; each blob is appended stored, 64-byte aligned, with its CRC', async () => {
  const code = path.join(dir, 'code.zip');
  const so = randomBytes(10_001);
  await writeZip(code, {
    'model/data/aotinductor/model/x.wrapper.so': so,
    'model/data/aotinductor/model/x.cpp': Buffer.from('int x;'),
  });
  const blobs = [randomBytes(3_000_017), randomBytes(5)];
  const parts = await Promise.all(
    blobs.map(async (b, i) => {
      const p = path.join(dir, `blob${i}`);
      await writeFile(p, b);
      return { entry: `model/data/aotinductor/model/w${i}_weights.blob`, path: p, size: b.length };
    }),
  );
  const out = path.join(dir, 'assembled.pt2');
  await assemblePackage(code, parts, out);

  const entries = await readZip(out);
  assert.deepEqual(
    entries.map((e) => e.name),
    [
      'model/data/aotinductor/model/x.wrapper.so',
      'model/data/aotinductor/model/x.cpp',
      'model/data/aotinductor/model/w0_weights.blob',
      'model/data/aotinductor/model/w1_weights.blob',
    ],
  );
  assert.deepEqual(entries[0].data, so);
  for (const [i, blob] of blobs.entries()) {
    const e = entries[2 + i];
    assert.deepEqual(e.data, blob);
    assert.equal(e.crc, crc32(blob) >>> 0);
    assert.equal(e.dataOffset % 64, 0);
  }
  // Python's zipfile (what torch's package helpers use next to miniz) agrees, CRCs included.
  const check = execFileSync('python3', [
    '-c',
    'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); print(z.testzip(), len(z.namelist()))',
    out,
  ]).toString();
  assert.equal(check.trim(), 'None 4');
});

test('weights entries from a manifest must stay inside the package and not replace an entry', async () => {
  for (const bad of [
    '/abs/x_weights.blob',
    'a/../x_weights.blob',
    'a\\x_weights.blob',
    'a/x.so',
    'a//x_weights.blob',
  ]) {
    assert.throws(() => checkWeightsEntry(bad), /bad weights entry/);
  }
  checkWeightsEntry('model/data/aotinductor/model/abc_weights.blob');
  const code = path.join(dir, 'dup.zip');
  await writeZip(code, { 'm/x_weights.blob': Buffer.from('a') });
  const blob = path.join(dir, 'b');
  await writeFile(blob, 'b');
  await assert.rejects(
    assemblePackage(code, [{ entry: 'm/x_weights.blob', path: blob, size: 1 }], path.join(dir, 'o.pt2')),
    /already exists/,
  );
});
