import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { BufferByteSource } from './byte-source.js';
import { writePortablePt2 } from './portable-archive.js';
import { readPt2, validatePt2 } from './read-pt2.js';
import { loadFixture, Pt2Files, unzip, type FixtureName } from './testing/archive-fixtures.js';

const VENV_PYTHON = resolve(dirname(fileURLToPath(import.meta.url)), '../../../.kiln/venv/bin/python');

async function portable(archive: Buffer, validatedFrom: Buffer = archive): Promise<Buffer> {
  const validated = await validatePt2(new BufferByteSource(validatedFrom));
  const chunks: Buffer[] = [];
  for await (const chunk of writePortablePt2(new BufferByteSource(archive), validated)) chunks.push(chunk);
  return Buffer.concat(chunks);
}

describe('writePortablePt2: the archive Kiln stores', () => {
  for (const name of ['mlp', 'cnn', 'transformer', 'pair'] as FixtureName[]) {
    it(`${name}: same entries and content hash, sample inputs emptied, passes validation`, async () => {
      const original = await loadFixture(name);
      const stored = await portable(original);
      const [before, after] = [await unzip(original), await unzip(stored)];
      assert.deepEqual(
        after.map((e) => e.name),
        before.map((e) => e.name),
      );
      for (const [i, entry] of after.entries()) {
        if (entry.name.includes('/data/sample_inputs/')) {
          // torch.save output is a zip (PK\3\4) of pickles: gone.
          assert.equal(before[i].data.readUInt32LE(0), 0x04034b50);
          assert.equal(entry.data.length, 0, entry.name);
        } else {
          assert.ok(entry.data.equals(before[i].data), entry.name);
        }
      }
      assert.equal(
        (await readPt2(new BufferByteSource(stored))).contentHash,
        (await readPt2(new BufferByteSource(original))).contentHash,
      );
      // Rewriting the stored archive again changes nothing: the rewrite is canonical.
      assert.ok((await portable(stored)).equals(stored));
    });
  }

  it('refuses to store content other than what was validated', async () => {
    const validatedFrom = await loadFixture('mlp');
    const files = await Pt2Files.from(validatedFrom);
    const weight = Buffer.from(files.get('data/weights/weight_0'));
    weight[7] ^= 1;
    const swapped = await files.set('data/weights/weight_0', weight).build();
    await assert.rejects(portable(swapped, validatedFrom), (err: unknown) => {
      assert.ok(err instanceof KilnError);
      assert.equal(err.code, ErrorCode.PT2_TRUNCATED);
      assert.match(err.message, /data\/weights\/weight_0 changed between validation and storage/);
      return true;
    });
  });

  it('torch.export.load reads the stored archive without sample inputs and runs it', async (t) => {
    if (!existsSync(VENV_PYTHON)) {
      t.skip(`no ${VENV_PYTHON} (scripts/setup.sh installs it): cannot load the archive with torch`);
      return;
    }
    const dir = await mkdtemp(join(tmpdir(), 'kiln-portable-'));
    try {
      const path = join(dir, 'mlp.pt2');
      await writeFile(path, await portable(await loadFixture('mlp')));
      const out = execFileSync(
        VENV_PYTHON,
        [
          '-c',
          'import sys, torch; ep = torch.export.load(sys.argv[1]); assert ep.example_inputs is None; ' +
            'print(tuple(ep.module()(torch.randn(3, 64)).shape))',
          path,
        ],
        { encoding: 'utf8' },
      );
      assert.equal(out.trim(), '(3, 10)');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
