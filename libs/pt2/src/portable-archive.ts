import { createHash } from 'node:crypto';
import { ErrorCode } from '@kiln/contracts';
import { classifyEntries } from './archive-layout.js';
import type { ByteSource } from './byte-source.js';
import { pt2Error } from './errors.js';
import { resolvePt2Limits, type Pt2Limits } from './limits.js';
import type { ValidatedPt2 } from './read-pt2.js';
import { Pt2Zip } from './zip-archive.js';
import { TorchStyleZipWriter } from './zip-writer.js';

/**
 * The archive Kiln stores for a validated upload: the portable graph devices fall back to, and what build workers
 * compile. It holds every entry of the upload, byte for byte and in the same order, except the sample inputs:
 * `data/sample_inputs/*` are torch.save pickles (torch.export.save always writes them, and torch.export.load
 * unpickles them, retrying with weights_only=False), so they are written empty, which torch reads as "no example
 * inputs". Everything else in a validated archive is raw bytes and JSON; the rewrite also drops whatever the zip
 * container carried besides the entries (the file is written anew in torch's layout by TorchStyleZipWriter).
 *
 * The content hash does not cover sample inputs, so it is the same before and after. Each copied content file is
 * hashed again on the way and must match what validation saw (`validated.contentFiles`), and every entry's CRC-32
 * is checked: if the source changed between validation and this copy, the copy fails rather than storing
 * something unvalidated.
 *
 * Yields the archive's bytes (pipe them to storage with `Readable.from`). Reads the source once, sequentially.
 */
export async function* writePortablePt2(
  source: ByteSource,
  validated: ValidatedPt2,
  limits?: Partial<Pt2Limits>,
): AsyncGenerator<Buffer> {
  const zip = await Pt2Zip.open(source, resolvePt2Limits(limits));
  try {
    const layout = classifyEntries(zip.entries.values());
    const sampleInputs = new Set(layout.sampleInputs.values());
    const writer = new TorchStyleZipWriter();
    const copied = new Set<string>();
    for (const entry of [...zip.entries.values()].sort((a, b) => a.offset - b.offset)) {
      const name = `${zip.root}/${entry.path}`;
      if (sampleInputs.has(entry)) {
        yield* writer.entry(name, 0, empty());
        continue;
      }
      const expected = validated.contentFiles.get(entry.path);
      const hash = expected === undefined ? null : createHash('sha256');
      yield* writer.entry(name, entry.size, hashing(zip.chunks(entry), hash));
      if (hash && hash.digest('hex') !== expected) throw changed(entry.path);
      copied.add(entry.path);
    }
    for (const path of validated.contentFiles.keys()) if (!copied.has(path)) throw changed(path);
    // Local headers and descriptors of the source were checked entry by entry above; the tiling check remains.
    await zip.finishLayout();
    yield* writer.finish();
  } finally {
    zip.close();
  }
}

function changed(path: string) {
  return pt2Error(ErrorCode.PT2_TRUNCATED, `${path} changed between validation and storage; upload the file again`, {
    entry: path,
  });
}

async function* hashing(
  chunks: AsyncIterable<Buffer>,
  hash: ReturnType<typeof createHash> | null,
): AsyncGenerator<Buffer> {
  for await (const chunk of chunks) {
    hash?.update(chunk);
    yield chunk;
  }
}

async function* empty(): AsyncGenerator<Buffer> {}
