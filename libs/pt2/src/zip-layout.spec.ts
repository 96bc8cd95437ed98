import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { BufferByteSource } from './byte-source.js';
import { readPt2 } from './read-pt2.js';
import { loadFixture } from './testing/archive-fixtures.js';
import { craftEntriesOf, craftWith, craftZip, extraField, type CraftEntry } from './testing/zip-crafter.js';
import { writeTorchStyleZip } from './zip-writer.js';

// Every case below is one field of one zip structure set to something torch's writer never produces; each must
// be refused with a PT2_* code before anything else looks at the archive's contents.
const mlp = await loadFixture('mlp');
const read = (archive: Buffer) => readPt2(new BufferByteSource(archive));

async function refused(archive: Buffer | Promise<Buffer>, code: ErrorCode, message?: RegExp): Promise<void> {
  await assert.rejects(read(await archive), (err: unknown) => {
    assert.ok(err instanceof KilnError, `expected KilnError(${code}), got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return true;
  });
}

const WEIGHT = 'data/weights/weight_0';
const SERIALIZATION_ID = '.data/serialization_id';
const SAMPLE_INPUTS = 'data/sample_inputs/model.pt';
const pickle = Buffer.from([0x80, 0x04, 0x95, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x4b, 0x2a, 0x2e]);

describe('torch-style zips (the layout Kiln writes and torch writes)', () => {
  it('a re-crafted fixture is accepted and keeps its content hash', async () => {
    const original = await read(mlp);
    const crafted = await read(craftZip(await craftEntriesOf(mlp)));
    assert.equal(crafted.contentHash, original.contentHash);
    const written = await read(await writeTorchStyleZip(await craftEntriesOf(mlp)));
    assert.equal(written.contentHash, original.contentHash);
  });
});

describe('PT2_AMBIGUOUS_ZIP: local headers must agree with the central directory', () => {
  it('refuses a local header that names the entry differently (same length, and with a NUL)', async () => {
    await refused(
      craftWith(mlp, SERIALIZATION_ID, { localNameRaw: Buffer.from('mlp/.data/serialization_xx') }),
      ErrorCode.PT2_AMBIGUOUS_ZIP,
      /local header of mlp\/\.data\/serialization_id names 'mlp\/\.data\/serialization_xx'/,
    );
    await refused(
      craftWith(mlp, 'models/model.json', { localNameRaw: Buffer.from('mlp/models/model\0json') }),
      ErrorCode.PT2_AMBIGUOUS_ZIP,
      /names 'mlp\/models\/model\\u0000json'/,
    );
    // A longer local name shifts where miniz finds the data: miniz and the central directory disagree.
    await refused(
      craftWith(mlp, WEIGHT, { localNameRaw: Buffer.from('mlp/data/weights/weight_0.pkl') }),
      ErrorCode.PT2_AMBIGUOUS_ZIP,
      /names 'mlp\/data\/weights\/weight_0\.pkl'/,
    );
  });

  it('refuses other flags, another compression method, or another version in the local header', async () => {
    await refused(
      craftWith(mlp, SAMPLE_INPUTS, { localFlags: 0x0800 }),
      ErrorCode.PT2_AMBIGUOUS_ZIP,
      /has flags 0x800, the central directory 0x808/,
    );
    await refused(
      craftWith(mlp, WEIGHT, { localMethod: 8 }),
      ErrorCode.PT2_AMBIGUOUS_ZIP,
      /says compression method 8, the central directory 0/,
    );
    await refused(
      craftWith(mlp, WEIGHT, { localVersionNeeded: 63 }),
      ErrorCode.PT2_AMBIGUOUS_ZIP,
      /needs zip version 63/,
    );
  });

  it('refuses a CRC-32 or sizes in the local header that differ from the central directory', async () => {
    await refused(
      craftWith(mlp, 'archive_format', { localCrc: 0x12345678, localSizes: { compressed: 3, uncompressed: 3 } }),
      ErrorCode.PT2_AMBIGUOUS_ZIP,
      /local header of mlp\/archive_format gives another CRC-32 or size/,
    );
    const entries = await craftEntriesOf(mlp);
    const format = entries.find((e) => e.name.endsWith('archive_format'))!;
    // Without a data descriptor (flags 0x0800), the header must carry the real values.
    Object.assign(format, {
      localFlags: 0x0800,
      centralFlags: 0x0800,
      descriptor: null,
      localCrc: 0,
      localSizes: { compressed: 3, uncompressed: 4 },
    });
    await refused(craftZip(entries), ErrorCode.PT2_AMBIGUOUS_ZIP, /gives another CRC-32 or size/);
  });

  it('refuses a data descriptor that is missing, unsigned, or gives other values', async () => {
    await refused(
      craftWith(mlp, 'byteorder', { descriptor: null }),
      ErrorCode.PT2_AMBIGUOUS_ZIP,
      /data descriptor of mlp\/byteorder is missing/,
    );
    const fake = Buffer.alloc(16);
    fake.writeUInt32LE(0x08074b50, 0);
    fake.writeUInt32LE(0xdeadbeef, 4);
    fake.writeUInt32LE(6, 8);
    fake.writeUInt32LE(6, 12);
    await refused(
      craftWith(mlp, 'byteorder', { descriptor: fake }),
      ErrorCode.PT2_AMBIGUOUS_ZIP,
      /data descriptor of mlp\/byteorder gives another CRC-32 or size/,
    );
  });
});

describe('PT2_AMBIGUOUS_ZIP: no byte outside an entry', () => {
  it('refuses bytes between entries (a pickle hidden between two entries)', async () => {
    await refused(
      craftWith(mlp, 'models/model.json', { before: pickle }),
      ErrorCode.PT2_AMBIGUOUS_ZIP,
      /14 bytes lie between entries, before models\/model\.json/,
    );
  });

  it('refuses bytes between the last entry and the central directory', async () => {
    await refused(
      craftZip(await craftEntriesOf(mlp), { beforeDirectory: pickle }),
      ErrorCode.PT2_AMBIGUOUS_ZIP,
      /14 bytes lie between the last entry and the central directory/,
    );
  });

  it('refuses two directory records pointing at overlapping bytes', async () => {
    const entries = await craftEntriesOf(mlp);
    // A second name for weight_0's local header: the same bytes listed twice.
    entries.push({ name: 'mlp/extra/alias', data: Buffer.alloc(0), centralOffset: 0 });
    await refused(craftZip(entries), ErrorCode.PT2_AMBIGUOUS_ZIP);
  });

  it('refuses alignment padding that carries data', async () => {
    const padding = Buffer.concat([extraField(0x4246, Buffer.concat([pickle, Buffer.alloc(10, 0x5a)]))]);
    await refused(
      craftWith(mlp, 'byteorder', { localExtra: padding }),
      ErrorCode.PT2_AMBIGUOUS_ZIP,
      /alignment padding that is not what torch writes/,
    );
  });
});

describe('PT2_AMBIGUOUS_ZIP: extra fields, comments, disks, zip64', () => {
  it('refuses extra fields torch does not write, malformed or repeated ones', async () => {
    // Info-ZIP Unicode Path: a second name some readers prefer over the header's.
    const unicodePath = extraField(0x7075, Buffer.concat([Buffer.from([1, 0, 0, 0, 0]), Buffer.from('mlp/evil')]));
    await refused(
      craftWith(mlp, 'byteorder', { centralExtra: unicodePath }),
      ErrorCode.PT2_AMBIGUOUS_ZIP,
      /has an extra field 0x7075/,
    );
    await refused(
      craftWith(mlp, 'byteorder', { localExtra: extraField(0x5455, Buffer.from([1, 0, 0, 0, 0])) }),
      ErrorCode.PT2_AMBIGUOUS_ZIP,
      /local header of mlp\/byteorder has an extra field 0x5455/,
    );
    const runsPast = extraField(0x0001, Buffer.alloc(8)).subarray(0, 6);
    await refused(
      craftWith(mlp, 'byteorder', { centralExtra: runsPast }),
      ErrorCode.PT2_AMBIGUOUS_ZIP,
      /runs past the extra field/,
    );
    const twice = Buffer.concat([extraField(0x4246, Buffer.alloc(2, 0x5a)), extraField(0x4246, Buffer.alloc(2, 0x5a))]);
    await refused(craftWith(mlp, 'byteorder', { localExtra: twice }), ErrorCode.PT2_AMBIGUOUS_ZIP, /twice/);
  });

  it('refuses a zip64 field that does not match the 0xFFFFFFFF markers', async () => {
    // A zip64 offset although the 32-bit offset is real: readers that read zip64 blindly take another offset.
    const extra = extraField(0x0001, Buffer.alloc(8));
    await refused(
      craftWith(mlp, 'byteorder', { centralExtra: extra }),
      ErrorCode.PT2_AMBIGUOUS_ZIP,
      /0 zip64 marker field\(s\) but a zip64 extra field of 8 bytes/,
    );
  });

  it('refuses file comments, an archive comment, split-archive disk numbers', async () => {
    await refused(
      craftWith(mlp, 'byteorder', { comment: Buffer.from('hello') }),
      ErrorCode.PT2_AMBIGUOUS_ZIP,
      /has a file comment/,
    );
    await refused(craftWith(mlp, 'byteorder', { diskNumberStart: 1 }), ErrorCode.PT2_AMBIGUOUS_ZIP, /starts on disk 1/);
    const entries = await craftEntriesOf(mlp);
    await refused(
      craftZip(entries, {
        patchEnd: (end) => end.writeUInt16LE(end.readUInt16LE(end.length - 22 + 8) - 1, end.length - 22 + 8),
      }),
      ErrorCode.PT2_AMBIGUOUS_ZIP,
      /entries on this disk/,
    );
    await refused(
      craftZip(entries, { patchEnd: (end) => end.writeUInt32LE(1, 56 + 4) }),
      ErrorCode.PT2_AMBIGUOUS_ZIP,
      /zip64 locator names another disk/,
    );
    await refused(
      craftZip(entries, { patchEnd: (end) => end.writeUInt32LE(2, 16) }),
      ErrorCode.PT2_AMBIGUOUS_ZIP,
      /split over disks/,
    );
  });

  it('refuses an end record that disagrees with the zip64 end record', async () => {
    const entries = await craftEntriesOf(mlp);
    // The 32-bit directory offset one lower than the zip64 one: zip64-unaware readers look elsewhere.
    await refused(
      craftZip(entries, {
        patchEnd: (end) => end.writeUInt32LE(end.readUInt32LE(end.length - 22 + 16) - 1, end.length - 22 + 16),
      }),
      ErrorCode.PT2_AMBIGUOUS_ZIP,
      /end record and the zip64 end record disagree/,
    );
  });

  it('refuses encryption (PT2_COMPRESSED_ENTRY) and flag bits torch never sets', async () => {
    await refused(craftWith(mlp, WEIGHT, { centralFlags: 0x0809, localFlags: 0x0809 }), ErrorCode.PT2_COMPRESSED_ENTRY);
    await refused(craftWith(mlp, WEIGHT, { centralFlags: 0x0848, localFlags: 0x0848 }), ErrorCode.PT2_COMPRESSED_ENTRY);
    await refused(
      craftWith(mlp, WEIGHT, { centralFlags: 0x080a, localFlags: 0x080a }),
      ErrorCode.PT2_AMBIGUOUS_ZIP,
      /general purpose flags 0x80a/,
    );
    await refused(
      craftWith(mlp, WEIGHT, { centralVersionNeeded: 51 }),
      ErrorCode.PT2_AMBIGUOUS_ZIP,
      /needs zip version 51/,
    );
  });
});

describe('PT2_BAD_ENTRY_NAME: characters names may not hold', () => {
  const withName = async (nameRaw: Buffer): Promise<Buffer> => {
    const entries: CraftEntry[] = await craftEntriesOf(mlp);
    entries.push({ name: 'x', nameRaw, data: Buffer.from('plain text') });
    return craftZip(entries);
  };
  const cases: [string, RegExp][] = [
    ['mlp/extra/a\u0000b', /control characters/],
    ['mlp/extra/a\u0085b', /control characters/],
    ['mlp/extra/readme\u202Etxt.exe', /U\+202E/],
    ['mlp/extra/zero\u200Bwidth', /U\+200B/],
    ['mlp/extra/line\u2028break', /U\+2028/],
    ['mlp/extra/private\uE000use', /U\+E000/],
    ['mlp/extra/a:stream', /U\+003A/],
    ['mlp/extra/what?', /U\+003F/],
    ['mlp/extra/pipe|d', /U\+007C/],
    ['mlp/extra/trailing.', /ends with a dot or space/],
    ['mlp/extra/ leading', /starts with a space/],
  ];
  for (const [name, message] of cases) {
    it(JSON.stringify(name), async () => {
      await refused(withName(Buffer.from(name, 'utf8')), ErrorCode.PT2_BAD_ENTRY_NAME, message);
    });
  }

  it('refuses two names that are one file after Unicode normalization', async () => {
    const entries: CraftEntry[] = await craftEntriesOf(mlp);
    entries.push({ name: 'mlp/extra/caf\u00e9', data: Buffer.from('a') });
    entries.push({ name: 'mlp/extra/cafe\u0301', data: Buffer.from('b') });
    await refused(craftZip(entries), ErrorCode.PT2_BAD_ENTRY_NAME, /appears twice/);
  });
});
