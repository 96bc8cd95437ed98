import { ErrorCode, type KilnError } from '@kiln/contracts';
import { excerpt, pt2Error } from './errors.js';

/**
 * The byte-level rules for the zip container, field by field, derived from the format (PKWARE APPNOTE 6.3)
 * and from what torch's writer (miniz, caffe2/serialize/inline_container.cc) produces. Every structure a
 * zip reader could use to find, name or size an entry is checked against the others, so that miniz (torch's
 * reader), Python's zipfile (torch's legacy fallback), yauzl (this validator) and any other tool see the same
 * entries with the same bytes, and no byte of the file is unaccounted for:
 *
 *   [local header + name + extra][data][data descriptor?] ... [central directory][zip64 end + locator?][end]
 *
 * with each entry starting exactly where the previous one ends, the first at byte 0 and the last ending where
 * the central directory starts. Pure functions over buffers; zip-archive.ts does the reading.
 */

export const SIGNATURE = {
  local: 0x04034b50,
  central: 0x02014b50,
  descriptor: 0x08074b50,
  end: 0x06054b50,
  zip64End: 0x06064b50,
  zip64Locator: 0x07064b50,
} as const;

export const LOCAL_HEADER_BYTES = 30;
export const CENTRAL_HEADER_BYTES = 46;
export const END_RECORD_BYTES = 22;
export const ZIP64_LOCATOR_BYTES = 20;
export const ZIP64_END_RECORD_BYTES = 56;

const FLAG_ENCRYPTED = 0x0001;
const FLAG_DATA_DESCRIPTOR = 0x0008;
const FLAG_STRONG_ENCRYPTION = 0x0040;
const FLAG_UTF8 = 0x0800;
const FLAG_MASKED_HEADERS = 0x2000;
/** The only general-purpose flags torch's writer sets: sizes in a data descriptor, UTF-8 names. */
const ALLOWED_FLAGS = FLAG_DATA_DESCRIPTOR | FLAG_UTF8;

/** 4.5 = zip64; higher versions mean features (AES, LZMA, strong encryption) torch never uses. */
const MAX_VERSION_NEEDED = 45;

const EXTRA_ZIP64 = 0x0001;
/** torch pads each local header with an extra field 'FB' full of 'Z' so that entry data is 64-byte aligned. */
const EXTRA_TORCH_PADDING = 0x4246;
const PADDING_BYTE = 0x5a;
const MAX_PADDING_BYTES = 64;

const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;

/** Longest central-directory record Kiln accepts: a 1 KiB name, a zip64 field, no comment. */
export const MAX_CENTRAL_RECORD_BYTES = CENTRAL_HEADER_BYTES + 1024 + 4 + 24;

/** A zip structure two readers could interpret differently, or bytes no structure accounts for. */
export function ambiguous(problem: string): KilnError {
  return pt2Error(
    ErrorCode.PT2_AMBIGUOUS_ZIP,
    `ambiguous zip structure: ${problem}; torch.export.save never writes this, and zip readers could disagree on what the archive holds`,
  );
}

function truncated(problem: string): KilnError {
  return pt2Error(ErrorCode.PT2_TRUNCATED, `damaged zip structure: ${problem}; the upload is cut short or corrupt`);
}

/** Where the central directory is, from the end records. */
export interface ZipEnvelope {
  directoryOffset: number;
  directorySize: number;
  entryCount: number;
}

/**
 * The end of the archive: the end record, and the zip64 end record and locator that torch always writes.
 * `tail` holds the last bytes of the file (up to 98). Python's zipfile finds the zip64 end record next to its
 * locator rather than where the locator points and shifts every offset when the central directory is not
 * where the end record says ("prepended data"), so everything must sit exactly where the other records say.
 */
export function parseEnvelope(tail: Buffer, size: number): ZipEnvelope {
  const end = tail.subarray(tail.length - END_RECORD_BYTES);
  if (end.length < END_RECORD_BYTES || end.readUInt32LE(0) !== SIGNATURE.end) {
    throw ambiguous('the archive has a zip comment or data after its end record');
  }
  if (end.readUInt16LE(20) !== 0) throw ambiguous('the archive has a zip comment');
  if (end.readUInt16LE(4) !== 0 || end.readUInt16LE(6) !== 0) {
    throw ambiguous('the end record names another disk (a split archive)');
  }
  const endValues = {
    entriesOnDisk: end.readUInt16LE(8),
    entries: end.readUInt16LE(10),
    directorySize: end.readUInt32LE(12),
    directoryOffset: end.readUInt32LE(16),
  };
  if (endValues.entriesOnDisk !== endValues.entries) {
    throw ambiguous(
      `the end record counts ${endValues.entriesOnDisk} entries on this disk but ${endValues.entries} in all`,
    );
  }
  let envelope: ZipEnvelope = {
    directoryOffset: endValues.directoryOffset,
    directorySize: endValues.directorySize,
    entryCount: endValues.entries,
  };
  let directoryEnd = size - END_RECORD_BYTES;

  const locatorAt = tail.length - END_RECORD_BYTES - ZIP64_LOCATOR_BYTES;
  if (locatorAt >= 0 && tail.readUInt32LE(locatorAt) === SIGNATURE.zip64Locator) {
    const recordAt = size - END_RECORD_BYTES - ZIP64_LOCATOR_BYTES - ZIP64_END_RECORD_BYTES;
    const tailStart = size - tail.length;
    const locator = tail.subarray(locatorAt, locatorAt + ZIP64_LOCATOR_BYTES);
    if (
      recordAt < 0 ||
      tailStart !== recordAt ||
      Number(locator.readBigUInt64LE(8)) !== recordAt ||
      tail.readUInt32LE(0) !== SIGNATURE.zip64End
    ) {
      throw ambiguous('the zip64 end record is not right before its locator');
    }
    if (locator.readUInt32LE(4) !== 0 || locator.readUInt32LE(16) !== 1) {
      throw ambiguous('the zip64 locator names another disk (a split archive)');
    }
    const record = tail.subarray(0, ZIP64_END_RECORD_BYTES);
    if (record.readBigUInt64LE(4) !== BigInt(ZIP64_END_RECORD_BYTES - 12)) {
      throw ambiguous('the zip64 end record has an extensible data sector');
    }
    if (record.readUInt16LE(14) > MAX_VERSION_NEEDED) {
      throw ambiguous(`the zip64 end record needs zip version ${record.readUInt16LE(14)}`);
    }
    if (record.readUInt32LE(16) !== 0 || record.readUInt32LE(20) !== 0) {
      throw ambiguous('the zip64 end record names another disk (a split archive)');
    }
    const entriesOnDisk = record.readBigUInt64LE(24);
    const entries = record.readBigUInt64LE(32);
    const directorySize = record.readBigUInt64LE(40);
    const directoryOffset = record.readBigUInt64LE(48);
    if (entriesOnDisk !== entries) {
      throw ambiguous(`the zip64 end record counts ${entriesOnDisk} entries on this disk but ${entries} in all`);
    }
    if (entries > BigInt(Number.MAX_SAFE_INTEGER) || directorySize > BigInt(size) || directoryOffset > BigInt(size)) {
      throw truncated('the zip64 end record points beyond the file');
    }
    // Readers that ignore zip64 use the 16/32-bit values: they must agree, or be the "see zip64" marker.
    const agree = (value: number, zip64: bigint, marker: number) => value === marker || BigInt(value) === zip64;
    if (
      !agree(endValues.entries, entries, U16_MAX) ||
      !agree(endValues.directorySize, directorySize, U32_MAX) ||
      !agree(endValues.directoryOffset, directoryOffset, U32_MAX)
    ) {
      throw ambiguous('the end record and the zip64 end record disagree on the central directory');
    }
    envelope = {
      directoryOffset: Number(directoryOffset),
      directorySize: Number(directorySize),
      entryCount: Number(entries),
    };
    directoryEnd = recordAt;
  } else if (
    endValues.entries === U16_MAX ||
    endValues.directorySize === U32_MAX ||
    endValues.directoryOffset === U32_MAX
  ) {
    throw ambiguous('the end record points to zip64 records that are not there');
  }
  if (envelope.directoryOffset + envelope.directorySize !== directoryEnd) {
    throw ambiguous(
      `the central directory (${envelope.directoryOffset} + ${envelope.directorySize} bytes) does not end where the end record starts (${directoryEnd})`,
    );
  }
  return envelope;
}

/** One central-directory record, every field as stored (zip64 values resolved). */
export interface CentralRecord {
  readonly index: number;
  readonly nameRaw: Buffer;
  readonly versionNeeded: number;
  readonly flags: number;
  readonly method: number;
  readonly crc32: number;
  readonly compressedSize: number;
  readonly uncompressedSize: number;
  readonly offset: number;
  /** The zip64 extra field's payload, or null; torch repeats it in the local header. */
  readonly zip64: Buffer | null;
  /** Sizes in the data descriptor are 8 bytes when the entry is a zip64 entry (APPNOTE 4.3.9.1). */
  readonly usesDataDescriptor: boolean;
}

/**
 * Parses the whole central directory. Python's zipfile reads records until the directory's byte size is
 * used up, miniz and yauzl read `count` records: both must end at the same byte.
 */
export function parseCentralDirectory(bytes: Buffer, count: number): CentralRecord[] {
  const records: CentralRecord[] = [];
  let at = 0;
  for (let index = 0; index < count; index++) {
    if (at + CENTRAL_HEADER_BYTES > bytes.length || bytes.readUInt32LE(at) !== SIGNATURE.central) {
      throw ambiguous(`central directory record ${index} of ${count} is not where the records before it end`);
    }
    const nameLength = bytes.readUInt16LE(at + 28);
    const extraLength = bytes.readUInt16LE(at + 30);
    const commentLength = bytes.readUInt16LE(at + 32);
    const end = at + CENTRAL_HEADER_BYTES + nameLength + extraLength + commentLength;
    if (end > bytes.length) throw ambiguous(`central directory record ${index} runs past the directory`);
    const nameRaw = bytes.subarray(at + CENTRAL_HEADER_BYTES, at + CENTRAL_HEADER_BYTES + nameLength);
    const where = `central directory record ${index} (${excerpt(nameRaw.toString('latin1'), 80)})`;
    const versionNeeded = bytes.readUInt16LE(at + 6);
    const flags = bytes.readUInt16LE(at + 8);
    checkVersionAndFlags(where, versionNeeded, flags);
    if (commentLength !== 0) throw ambiguous(`${where} has a file comment`);
    const extras = parseExtraFields(
      bytes.subarray(at + CENTRAL_HEADER_BYTES + nameLength, at + CENTRAL_HEADER_BYTES + nameLength + extraLength),
      where,
      CENTRAL_EXTRA_IDS,
    );
    const zip64 = extras.get(EXTRA_ZIP64) ?? null;
    // Zip64 values replace exactly the fields that hold the 0xFFFFFFFF marker, in this order (APPNOTE 4.5.3);
    // readers that expect all of them, or fewer, would read other numbers.
    const fields = { uncompressed: bytes.readUInt32LE(at + 24), compressed: bytes.readUInt32LE(at + 20) };
    const offset32 = bytes.readUInt32LE(at + 42);
    const disk = bytes.readUInt16LE(at + 34);
    if (disk !== 0) throw ambiguous(`${where} starts on disk ${disk} (a split archive)`);
    const marked = [fields.uncompressed, fields.compressed, offset32].filter((v) => v === U32_MAX).length;
    if ((zip64?.length ?? 0) !== marked * 8) {
      throw ambiguous(
        `${where} has ${marked} zip64 marker field(s) but a zip64 extra field of ${zip64?.length ?? 0} bytes`,
      );
    }
    let z = 0;
    const zip64Value = (value: number): number => {
      if (value !== U32_MAX) return value;
      const v = zip64!.readBigUInt64LE(z);
      z += 8;
      if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw truncated(`${where} has an impossible size or offset`);
      return Number(v);
    };
    const uncompressedSize = zip64Value(fields.uncompressed);
    const compressedSize = zip64Value(fields.compressed);
    const offset = zip64Value(offset32);
    records.push({
      index,
      nameRaw,
      versionNeeded,
      flags,
      method: bytes.readUInt16LE(at + 10),
      crc32: bytes.readUInt32LE(at + 16),
      compressedSize,
      uncompressedSize,
      offset,
      zip64,
      usesDataDescriptor: (flags & FLAG_DATA_DESCRIPTOR) !== 0,
    });
    at = end;
  }
  if (at !== bytes.length) {
    throw ambiguous(`the central directory is ${bytes.length} bytes but its ${count} records take ${at}`);
  }
  return records;
}

const CENTRAL_EXTRA_IDS: ReadonlySet<number> = new Set([EXTRA_ZIP64]);
const LOCAL_EXTRA_IDS: ReadonlySet<number> = new Set([EXTRA_ZIP64, EXTRA_TORCH_PADDING]);

function checkVersionAndFlags(where: string, versionNeeded: number, flags: number): void {
  if ((flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION | FLAG_MASKED_HEADERS)) !== 0) {
    throw pt2Error(ErrorCode.PT2_COMPRESSED_ENTRY, `${where} is encrypted; .pt2 entries are stored as is`);
  }
  if ((flags & ~ALLOWED_FLAGS) !== 0) {
    throw ambiguous(`${where} sets general purpose flags 0x${flags.toString(16)} (torch sets only 0x0808)`);
  }
  if ((versionNeeded & 0xff) > MAX_VERSION_NEEDED) {
    throw ambiguous(`${where} needs zip version ${versionNeeded & 0xff} (features torch never uses)`);
  }
}

/**
 * Extra fields: a sequence of (id, length, data) records that must fill the field exactly, each id at most
 * once, and only ids torch writes. Anything else (Info-ZIP Unicode path 0x7075, timestamps, NTFS/Unix
 * attributes, AES 0x9901, unknown ids) is a second opinion about the entry that some reader might follow.
 */
function parseExtraFields(raw: Buffer, where: string, allowed: ReadonlySet<number>): Map<number, Buffer> {
  const fields = new Map<number, Buffer>();
  let at = 0;
  while (at < raw.length) {
    if (at + 4 > raw.length) throw ambiguous(`${where}: its extra field ends in the middle of a record`);
    const id = raw.readUInt16LE(at);
    const length = raw.readUInt16LE(at + 2);
    if (at + 4 + length > raw.length) throw ambiguous(`${where}: an extra field record runs past the extra field`);
    if (!allowed.has(id)) throw ambiguous(`${where} has an extra field 0x${id.toString(16).padStart(4, '0')}`);
    if (fields.has(id)) throw ambiguous(`${where} has the extra field 0x${id.toString(16).padStart(4, '0')} twice`);
    fields.set(id, raw.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  return fields;
}

export interface LocalHeaderLayout {
  /** First byte of the entry's data. */
  dataStart: number;
}

/** Bytes of the local header's variable part, from its fixed 30 bytes. */
export function localVariableLength(fixed: Buffer): number {
  return fixed.readUInt16LE(26) + fixed.readUInt16LE(28);
}

/**
 * The local header must say what the central directory says: miniz takes the data's position from it,
 * Python's zipfile compares its name, streaming unzippers (and anything reading the file front to back)
 * believe it entirely. `fixed` is its first 30 bytes, `variable` the name and extra field that follow.
 */
export function checkLocalHeader(
  record: CentralRecord,
  name: string,
  fixed: Buffer,
  variable: Buffer,
): LocalHeaderLayout {
  const where = `the local header of ${excerpt(name)}`;
  if (fixed.readUInt32LE(0) !== SIGNATURE.local) {
    throw ambiguous(`${excerpt(name)}: no local header where the central directory says it starts`);
  }
  const flags = fixed.readUInt16LE(6);
  checkVersionAndFlags(where, fixed.readUInt16LE(4), flags);
  if (flags !== record.flags) {
    throw ambiguous(`${where} has flags 0x${flags.toString(16)}, the central directory 0x${record.flags.toString(16)}`);
  }
  const method = fixed.readUInt16LE(8);
  if (method !== record.method) {
    throw ambiguous(`${where} says compression method ${method}, the central directory ${record.method}`);
  }
  const nameLength = fixed.readUInt16LE(26);
  if (nameLength !== record.nameRaw.length || !variable.subarray(0, nameLength).equals(record.nameRaw)) {
    throw ambiguous(
      `${where} names '${excerpt(variable.subarray(0, nameLength).toString('latin1'))}', the central directory '${excerpt(name)}'`,
    );
  }
  const extras = parseExtraFields(variable.subarray(nameLength), where, LOCAL_EXTRA_IDS);
  const padding = extras.get(EXTRA_TORCH_PADDING);
  if (padding && (padding.length > MAX_PADDING_BYTES || padding.some((b) => b !== PADDING_BYTE))) {
    throw ambiguous(`${where} has alignment padding that is not what torch writes (up to 64 'Z' bytes)`);
  }

  const crc = fixed.readUInt32LE(14);
  const compressed = fixed.readUInt32LE(18);
  const uncompressed = fixed.readUInt32LE(22);
  const localZip64 = extras.get(EXTRA_ZIP64);
  let zip64Sizes: { uncompressed: bigint; compressed: bigint } | null = null;
  if (localZip64 !== undefined) {
    if (record.zip64 !== null && localZip64.length === record.zip64.length) {
      // miniz repeats the central directory's fields, with the compressed size still 0 when the sizes follow the
      // data (it writes the header before the data): each must be the central directory's value, or that 0.
      const sizeFields = zip64SizeFieldCount(record);
      for (let i = 0; i < localZip64.length; i += 8) {
        const local = localZip64.readBigUInt64LE(i);
        const central = record.zip64.readBigUInt64LE(i);
        if (local !== central && !(local === 0n && record.usesDataDescriptor && i / 8 < sizeFields)) {
          throw ambiguous(`${where} has a zip64 field that disagrees with the central directory`);
        }
      }
    } else if (localZip64.length === 16 && compressed === U32_MAX && uncompressed === U32_MAX) {
      // APPNOTE 4.5.3: a local zip64 field holds both sizes, marked 0xFFFFFFFF in the header.
      zip64Sizes = { uncompressed: localZip64.readBigUInt64LE(0), compressed: localZip64.readBigUInt64LE(8) };
    } else {
      throw ambiguous(`${where} has a zip64 field that disagrees with the central directory`);
    }
  }
  if (record.usesDataDescriptor && crc === 0 && compressed === 0 && uncompressed === 0) {
    // APPNOTE 4.4.4: with a data descriptor the header's CRC and sizes are zero; the descriptor holds them.
  } else {
    const sizeAgrees = (value: number, zip64: bigint | undefined, actual: number) =>
      value === U32_MAX ? zip64 === BigInt(actual) : value === actual;
    if (
      crc !== record.crc32 ||
      !sizeAgrees(compressed, zip64Sizes?.compressed, record.compressedSize) ||
      !sizeAgrees(uncompressed, zip64Sizes?.uncompressed, record.uncompressedSize)
    ) {
      throw ambiguous(`${where} gives another CRC-32 or size than the central directory`);
    }
  }
  return { dataStart: record.offset + LOCAL_HEADER_BYTES + variable.length };
}

/** How many of the central zip64 payload's leading fields are sizes (uncompressed, then compressed). */
function zip64SizeFieldCount(record: CentralRecord): number {
  return (record.uncompressedSize >= U32_MAX ? 1 : 0) + (record.compressedSize >= U32_MAX ? 1 : 0);
}

/** Bytes of the data descriptor that follows an entry's data (0 when there is none). */
export function descriptorLength(record: CentralRecord): number {
  if (!record.usesDataDescriptor) return 0;
  return record.zip64 !== null ? 24 : 16;
}

/**
 * The data descriptor (torch writes one after every entry, with its signature) must repeat the central
 * directory's CRC-32 and sizes: it is the only thing between one entry's data and the next local header.
 */
export function checkDescriptor(record: CentralRecord, name: string, bytes: Buffer): void {
  const where = `the data descriptor of ${excerpt(name)}`;
  if (bytes.readUInt32LE(0) !== SIGNATURE.descriptor) {
    throw ambiguous(`${where} is missing or has no signature`);
  }
  const wide = bytes.length === 24;
  const compressed = wide ? bytes.readBigUInt64LE(8) : BigInt(bytes.readUInt32LE(8));
  const uncompressed = wide ? bytes.readBigUInt64LE(16) : BigInt(bytes.readUInt32LE(12));
  if (
    bytes.readUInt32LE(4) !== record.crc32 ||
    compressed !== BigInt(record.compressedSize) ||
    uncompressed !== BigInt(record.uncompressedSize)
  ) {
    throw ambiguous(`${where} gives another CRC-32 or size than the central directory`);
  }
}

/**
 * Every byte before the central directory belongs to exactly one entry: the first starts at 0, each starts where
 * the previous one ends (its descriptor included), the last ends where the directory starts. No polyglot prefix,
 * no hidden bytes between entries, no overlapping entries (which also defeats overlap-based zip bombs).
 */
export function checkContiguous(
  spans: readonly { name: string; start: number; end: number }[],
  directoryOffset: number,
): void {
  const sorted = [...spans].sort((a, b) => a.start - b.start);
  let expected = 0;
  for (const span of sorted) {
    if (span.start < expected) {
      throw ambiguous(`entry ${excerpt(span.name)} overlaps the entry before it`);
    }
    if (span.start > expected) {
      throw ambiguous(
        expected === 0
          ? `${span.start} bytes precede the first entry`
          : `${span.start - expected} bytes lie between entries, before ${excerpt(span.name)}`,
      );
    }
    expected = span.end;
  }
  if (expected !== directoryOffset) {
    throw ambiguous(
      expected > directoryOffset
        ? 'the last entry overlaps the central directory'
        : `${directoryOffset - expected} bytes lie between the last entry and the central directory`,
    );
  }
}
