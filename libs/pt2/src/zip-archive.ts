import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import yauzl from 'yauzl';
import { ErrorCode, KilnError } from '@kiln/contracts';
import type { ByteSource } from './byte-source.js';
import { excerpt, pt2Error } from './errors.js';
import type { Pt2Limits } from './limits.js';

/** One stored file of the archive, with the top folder already stripped from its path. */
export interface ArchiveEntry {
  /** Path below the archive's top folder, e.g. `models/model.json`. */
  readonly path: string;
  readonly size: number;
  /** Offset of the local file header; entries are read in this order to keep reads sequential. */
  readonly offset: number;
  readonly crc32: number;
  readonly zipEntry: yauzl.Entry;
}

/**
 * Small reads (central directory records, local headers, marker files, configs) are served from one
 * cached window so that a ByteSource backed by ranged GETs pays one round trip per window, not one per
 * 46-byte record. Larger reads bypass the window and stream in `readChunkBytes` pieces (the window is
 * never larger than a chunk, so no read is ever larger than `readChunkBytes`).
 */
const WINDOW_BYTES = 1024 * 1024;

/** Marks a failure of the ByteSource itself (disk, network): not the uploader's fault, so not a PT2_* code. */
class SourceReadError extends Error {
  constructor(readonly original: unknown) {
    super(original instanceof Error ? original.message : String(original));
  }
}

/** yauzl asked for bytes past the end: some offset in the zip points beyond the file. */
class OutOfBoundsRead extends Error {}

class ByteSourceReader extends yauzl.RandomAccessReader {
  private window: { start: number; bytes: Buffer } | null = null;
  private readonly windowBytes: number;

  constructor(
    private readonly source: ByteSource,
    private readonly chunkBytes: number,
  ) {
    super();
    this.windowBytes = Math.min(WINDOW_BYTES, chunkBytes);
  }

  override _readStreamForRange(start: number, end: number): Readable {
    return Readable.from(this.chunks(start, end), { objectMode: false });
  }

  private async *chunks(start: number, end: number): AsyncGenerator<Buffer> {
    if (end > this.source.size) {
      throw new OutOfBoundsRead(`zip structure points at bytes ${start}..${end} of a ${this.source.size}-byte file`);
    }
    if (end - start <= this.windowBytes) {
      yield await this.readSmall(start, end);
      return;
    }
    for (let pos = start; pos < end; pos += this.chunkBytes) {
      yield await this.fetch(pos, Math.min(this.chunkBytes, end - pos));
    }
  }

  /** A small range through the window cache (the tail was just read by yauzl, so this costs no I/O). */
  async readRange(start: number, end: number): Promise<Buffer> {
    return end - start <= this.windowBytes ? this.readSmall(start, end) : this.fetch(start, end - start);
  }

  private async readSmall(start: number, end: number): Promise<Buffer> {
    const w = this.window;
    if (w && start >= w.start && end <= w.start + w.bytes.length) {
      return w.bytes.subarray(start - w.start, end - w.start);
    }
    const bytes = await this.fetch(start, Math.min(this.windowBytes, this.source.size - start));
    this.window = { start, bytes };
    return bytes.subarray(0, end - start);
  }

  private async fetch(offset: number, length: number): Promise<Buffer> {
    let bytes: Buffer;
    try {
      bytes = await this.source.read(offset, length);
    } catch (err) {
      throw new SourceReadError(err);
    }
    if (bytes.length !== length) {
      throw new SourceReadError(
        new Error(`ByteSource returned ${bytes.length} bytes for a ${length}-byte read at ${offset}`),
      );
    }
    return bytes;
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Unix file type bits of `externalFileAttributes >>> 16` when the entry was made on Unix or macOS. */
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const UNIX_HOSTS = new Set([3, 19]);
const MSDOS_DIRECTORY = 0x10;
const MAX_NAME_BYTES = 1024;
const LOCAL_HEADER_BYTES = 30;

/**
 * A validated view of a `.pt2` zip: every entry is a stored, unencrypted regular file with a clean
 * name under one top folder, sizes are within limits, and entries neither overlap nor run past EOF.
 */
export class Pt2Zip {
  private constructor(
    private readonly zipfile: yauzl.ZipFile,
    readonly root: string,
    readonly entries: ReadonlyMap<string, ArchiveEntry>,
    readonly totalBytes: number,
  ) {}

  static async open(source: ByteSource, limits: Pt2Limits): Promise<Pt2Zip> {
    const reader = new ByteSourceReader(source, limits.readChunkBytes);
    let zipfile: yauzl.ZipFile;
    try {
      zipfile = await yauzl.fromRandomAccessReaderPromise(reader, source.size, {
        lazyEntries: true,
        autoClose: false,
        decodeStrings: true,
        validateEntrySizes: true,
        strictFileNames: true,
      });
    } catch (err) {
      throw await openFailure(err, source);
    }
    try {
      const envelope = await readEnvelope(reader, source.size);
      const listed = await listEntries(zipfile, source, limits, envelope);
      return new Pt2Zip(zipfile, listed.root, listed.entries, listed.totalBytes);
    } catch (err) {
      zipfile.close();
      throw toKilnError(err, 'central directory');
    }
  }

  /** Reads a whole entry into memory (only for small entries: markers, JSON), checking its CRC-32. */
  async read(entry: ArchiveEntry, maxBytes: number): Promise<Buffer> {
    if (entry.size > maxBytes) {
      throw pt2Error(
        ErrorCode.PT2_ENTRY_TOO_LARGE,
        `${entry.path} is ${entry.size} bytes; entries parsed in memory are limited to ${maxBytes} bytes`,
        { entry: entry.path, size: entry.size, limit: maxBytes },
      );
    }
    const out = Buffer.allocUnsafe(entry.size);
    let filled = 0;
    await this.stream(entry, (chunk) => {
      chunk.copy(out, filled);
      filled += chunk.length;
    });
    return out;
  }

  /** Streams an entry through sha256 in chunks, so multi-GB weights keep memory flat. */
  async sha256(entry: ArchiveEntry): Promise<Buffer> {
    const hash = createHash('sha256');
    await this.stream(entry, (chunk) => hash.update(chunk));
    return hash.digest();
  }

  /** The first bytes of an entry, to recognise pickles and nested zips by their magic numbers. */
  async head(entry: ArchiveEntry, length: number): Promise<Buffer> {
    const end = Math.min(length, entry.size);
    const chunks: Buffer[] = [];
    try {
      const stream = await this.zipfile.openReadStreamPromise(entry.zipEntry, { start: 0, end });
      for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
    } catch (err) {
      throw toKilnError(err, entry.path);
    }
    return Buffer.concat(chunks);
  }

  close(): void {
    this.zipfile.close();
  }

  private async stream(entry: ArchiveEntry, onChunk: (chunk: Buffer) => void): Promise<void> {
    let crc = 0;
    try {
      const stream = await this.zipfile.openReadStreamPromise(entry.zipEntry);
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        crc = crc32(chunk, crc);
        onChunk(chunk);
      }
    } catch (err) {
      throw toKilnError(err, entry.path);
    }
    // Neither yauzl nor torch's loader (checked: 2.13 loads weights with a bad CRC) verifies CRCs, so a
    // corrupted upload would otherwise compile with silently wrong weights.
    if (crc !== entry.crc32) {
      throw pt2Error(ErrorCode.PT2_TRUNCATED, `${entry.path}: data does not match its CRC-32; the upload is corrupt`, {
        entry: entry.path,
      });
    }
  }
}

async function listEntries(
  zipfile: yauzl.ZipFile,
  source: ByteSource,
  limits: Pt2Limits,
  envelope: ZipEnvelope,
): Promise<{ root: string; entries: Map<string, ArchiveEntry>; totalBytes: number }> {
  // Checked before listing, so a central directory claiming millions of entries costs nothing.
  if (zipfile.entryCount > limits.maxEntries) {
    throw pt2Error(
      ErrorCode.PT2_TOO_MANY_ENTRIES,
      `archive has ${zipfile.entryCount} entries, more than the limit of ${limits.maxEntries}`,
      { entries: zipfile.entryCount, limit: limits.maxEntries },
    );
  }
  if (zipfile.entryCount === 0) throw pt2Error(ErrorCode.PT2_MISSING_ENTRY, 'archive has no entries');

  const listed: { name: string; entry: yauzl.Entry }[] = [];
  // Lower-cased: miniz (torch's reader) can look names up case-insensitively.
  const names = new Set<string>();
  let totalBytes = 0;
  let directoryBytes = 0;
  for await (const entry of zipfile.eachEntry()) {
    const name = checkEntry(entry, source, limits);
    if (names.has(name.toLowerCase()))
      throw badName(name, 'appears twice in the archive (names compared ignoring case)');
    names.add(name.toLowerCase());
    directoryBytes += CENTRAL_HEADER_BYTES + entry.fileNameLength + entry.extraFieldLength + entry.fileCommentLength;
    totalBytes += entry.uncompressedSize;
    if (totalBytes > limits.maxTotalBytes) {
      throw pt2Error(
        ErrorCode.PT2_ENTRY_TOO_LARGE,
        `entries add up to more than the limit of ${limits.maxTotalBytes} bytes (at ${excerpt(name)})`,
        { limit: limits.maxTotalBytes },
      );
    }
    listed.push({ name, entry });
  }

  // Python's zipfile parses records until it has consumed the directory's byte size, whatever the
  // count says; miniz and yauzl go by the count. Both must see the same records.
  if (directoryBytes !== envelope.directorySize) {
    throw ambiguous(
      `the central directory is ${envelope.directorySize} bytes but its ${listed.length} records take ${directoryBytes}`,
    );
  }

  // Stored entries cannot hold more bytes than the file; more means sizes lie or entries overlap.
  if (totalBytes > source.size) {
    throw pt2Error(
      ErrorCode.PT2_TRUNCATED,
      `entries claim ${totalBytes} bytes but the archive is only ${source.size} bytes; sizes are wrong or entries overlap`,
    );
  }
  const byOffset = [...listed].sort(
    (a, b) => a.entry.relativeOffsetOfLocalHeader - b.entry.relativeOffsetOfLocalHeader,
  );
  // Anything before the first entry (a script, a pickle) would make the file a polyglot.
  if (byOffset[0].entry.relativeOffsetOfLocalHeader !== 0) {
    throw ambiguous(`${byOffset[0].entry.relativeOffsetOfLocalHeader} bytes precede the first entry`);
  }
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1].entry;
    const minEnd = prev.relativeOffsetOfLocalHeader + LOCAL_HEADER_BYTES + prev.fileNameLength + prev.compressedSize;
    if (minEnd > byOffset[i].entry.relativeOffsetOfLocalHeader) {
      throw pt2Error(
        ErrorCode.PT2_TRUNCATED,
        `entries ${excerpt(byOffset[i - 1].name)} and ${excerpt(byOffset[i].name)} overlap in the archive`,
      );
    }
  }

  // torch.export.save puts everything under one folder (the file stem, or `archive/`); strip it.
  const root = listed[0].name.split('/')[0];
  const entries = new Map<string, ArchiveEntry>();
  for (const { name, entry } of listed) {
    const slash = name.indexOf('/');
    if (slash < 0 || name.slice(0, slash) !== root) {
      throw badName(
        name,
        `is not under the archive's top folder '${excerpt(root)}/'; all entries must share one top folder`,
      );
    }
    const path = name.slice(slash + 1);
    entries.set(path, {
      path,
      size: entry.uncompressedSize,
      offset: entry.relativeOffsetOfLocalHeader,
      crc32: entry.crc32,
      zipEntry: entry,
    });
  }
  return { root, entries, totalBytes };
}

const END_RECORD_BYTES = 22;
const ZIP64_LOCATOR_BYTES = 20;
const ZIP64_END_RECORD_BYTES = 56;
const CENTRAL_HEADER_BYTES = 46;

interface ZipEnvelope {
  directoryOffset: number;
  directorySize: number;
}

/**
 * torch.export.load reads the archive with two zip parsers: miniz (PyTorchFileReader) and, when that
 * fails with a RuntimeError (any deserialization error), Python's zipfile for the legacy format, which
 * torch.load()s `serialized_state_dict.pt`. The parsers disagree on ambiguous archives: Python shifts
 * all offsets when the central directory is not where the end record says ("prepended data"), and
 * finds the zip64 end record next to its locator rather than where the locator points. So require the
 * unambiguous layout torch writes: no comment, nothing after the end record, the (zip64) end record
 * right after the central directory, and the directory ending exactly where the end records begin.
 */
async function readEnvelope(reader: ByteSourceReader, size: number): Promise<ZipEnvelope> {
  const tailStart = Math.max(0, size - END_RECORD_BYTES - ZIP64_LOCATOR_BYTES - ZIP64_END_RECORD_BYTES);
  const tail = await reader.readRange(tailStart, size);
  const end = tail.subarray(tail.length - END_RECORD_BYTES);
  if (end.readUInt32LE(0) !== 0x06054b50 || end.readUInt16LE(20) !== 0) {
    throw ambiguous('the archive has a zip comment or data after its end record');
  }
  let directorySize = end.readUInt32LE(12);
  let directoryOffset = end.readUInt32LE(16);
  let directoryEnd = size - END_RECORD_BYTES;
  const locatorAt = tail.length - END_RECORD_BYTES - ZIP64_LOCATOR_BYTES;
  if (locatorAt >= 0 && tail.readUInt32LE(locatorAt) === 0x07064b50) {
    const recordAt = size - END_RECORD_BYTES - ZIP64_LOCATOR_BYTES - ZIP64_END_RECORD_BYTES;
    const pointsAt = Number(tail.readBigUInt64LE(locatorAt + 8));
    if (tailStart !== recordAt || pointsAt !== recordAt || tail.readUInt32LE(0) !== 0x06064b50) {
      throw ambiguous('the zip64 end record is not right before its locator');
    }
    if (tail.readBigUInt64LE(4) !== BigInt(ZIP64_END_RECORD_BYTES - 12)) {
      throw ambiguous('the zip64 end record has an extensible data sector');
    }
    directorySize = Number(tail.readBigUInt64LE(40));
    directoryOffset = Number(tail.readBigUInt64LE(48));
    directoryEnd = recordAt;
  }
  if (directoryOffset + directorySize !== directoryEnd) {
    throw ambiguous(
      `the central directory (${directoryOffset} + ${directorySize} bytes) does not end where the end record starts (${directoryEnd})`,
    );
  }
  return { directoryOffset, directorySize };
}

function ambiguous(problem: string): KilnError {
  return pt2Error(
    ErrorCode.PT2_TRUNCATED,
    `damaged or ambiguous zip structure: ${problem}; torch.export.save never writes this`,
  );
}

/** Validates one central-directory record and returns its name. */
function checkEntry(entry: yauzl.Entry, source: ByteSource, limits: Pt2Limits): string {
  let name: string;
  try {
    name = utf8.decode(entry.fileNameRaw);
  } catch {
    throw badName(entry.fileName, 'is not valid UTF-8');
  }
  // torch's reader (miniz) uses the raw name bytes; yauzl may take the name from an Info-ZIP Unicode
  // Path extra field or decode it as CP437. If the two disagree, we would validate a different name
  // from the one torch reads.
  if (name !== entry.fileName) throw badName(name, 'has a name that zip readers decode differently');
  checkEntryName(name);

  const host = entry.versionMadeBy >>> 8;
  const fileType = (entry.externalFileAttributes >>> 16) & S_IFMT;
  if (UNIX_HOSTS.has(host) && fileType !== 0 && fileType !== S_IFREG) {
    throw badName(name, fileType === S_IFLNK ? 'is a symbolic link' : 'is not a regular file');
  }
  if ((entry.externalFileAttributes & MSDOS_DIRECTORY) !== 0) throw badName(name, 'is a directory entry');

  if ((entry.generalPurposeBitFlag & 0x1) !== 0) {
    throw pt2Error(ErrorCode.PT2_COMPRESSED_ENTRY, `${excerpt(name)} is encrypted; .pt2 entries must be stored as is`, {
      entry: name,
    });
  }
  // torch.export.save stores every entry uncompressed (and 64-byte aligned); compression is only a way
  // to make a small upload expand into a huge one.
  if (entry.compressionMethod !== 0) {
    throw pt2Error(
      ErrorCode.PT2_COMPRESSED_ENTRY,
      `${excerpt(name)} is compressed (method ${entry.compressionMethod}); .pt2 entries must be stored uncompressed, as torch.export.save writes them`,
      { entry: name, compressionMethod: entry.compressionMethod },
    );
  }
  if (entry.uncompressedSize > limits.maxEntryBytes) {
    throw pt2Error(
      ErrorCode.PT2_ENTRY_TOO_LARGE,
      `${excerpt(name)} is ${entry.uncompressedSize} bytes, more than the limit of ${limits.maxEntryBytes} bytes per entry`,
      { entry: name, size: entry.uncompressedSize, limit: limits.maxEntryBytes },
    );
  }
  if (
    entry.relativeOffsetOfLocalHeader + LOCAL_HEADER_BYTES + entry.fileNameLength + entry.compressedSize >
    source.size
  ) {
    throw pt2Error(
      ErrorCode.PT2_TRUNCATED,
      `${excerpt(name)} runs past the end of the archive; the upload is cut short`,
      {
        entry: name,
      },
    );
  }
  return name;
}

/** Rules for a full entry name (top folder included). */
export function checkEntryName(name: string): void {
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) throw badName(name, `is longer than ${MAX_NAME_BYTES} bytes`);
  // C0 controls (NUL included), DEL and C1 controls: invisible in logs, meaningful to some filesystems.
  if (hasControlCharacters(name)) throw badName(name, 'contains control characters');
  if (name.includes('\\')) throw badName(name, 'contains a backslash');
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) throw badName(name, 'is an absolute path');
  if (name.endsWith('/')) throw badName(name, 'is a directory entry');
  for (const segment of name.split('/')) {
    if (segment === '..') throw badName(name, "contains a '..' segment");
    if (segment === '.' || segment === '') throw badName(name, "contains an empty or '.' segment");
  }
}

function hasControlCharacters(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const code = name.charCodeAt(i);
    if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) return true;
  }
  return false;
}

function badName(name: string, problem: string): KilnError {
  return pt2Error(ErrorCode.PT2_BAD_ENTRY_NAME, `entry '${excerpt(name)}' ${problem}`, { entry: excerpt(name, 300) });
}

/** The archive could not even be opened: tell "not a zip" from "a zip cut short" by its first bytes. */
async function openFailure(err: unknown, source: ByteSource): Promise<Error> {
  if (err instanceof SourceReadError) return asError(err.original);
  const reason = err instanceof Error ? err.message : String(err);
  let head: Buffer = Buffer.alloc(0);
  if (source.size >= 4) {
    try {
      head = await source.read(0, 4);
    } catch (readErr) {
      return asError(readErr);
    }
  }
  // Every zip torch writes starts with a local file header (PK\3\4).
  if (head.equals(Buffer.from([0x50, 0x4b, 0x03, 0x04]))) {
    return pt2Error(
      ErrorCode.PT2_TRUNCATED,
      `archive starts like a zip but its end (central directory) is missing or damaged; the upload is probably cut short (${excerpt(reason)})`,
    );
  }
  return pt2Error(
    ErrorCode.PT2_NOT_ZIP,
    `not a zip archive; a .pt2 from torch.export.save is a zip (${excerpt(reason)})`,
  );
}

/**
 * Maps errors raised while reading the zip structure to PT2_* codes. ByteSource failures are returned
 * unchanged (the caller should retry or report an internal error, not blame the upload).
 */
function toKilnError(err: unknown, where: string): Error {
  if (err instanceof KilnError) return err;
  if (err instanceof SourceReadError) return asError(err.original);
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof OutOfBoundsRead) {
    return pt2Error(ErrorCode.PT2_TRUNCATED, `${excerpt(where)}: ${message}; the upload is cut short or damaged`);
  }
  // yauzl's own name checks (strictFileNames) fire before ours for these three.
  if (/^(invalid characters in fileName|absolute path|invalid relative path)/.test(message)) {
    return pt2Error(ErrorCode.PT2_BAD_ENTRY_NAME, `entry name rejected: ${excerpt(message)}`);
  }
  if (/encryption|unsupported compression method/.test(message)) {
    return pt2Error(ErrorCode.PT2_COMPRESSED_ENTRY, `${excerpt(where)}: ${excerpt(message)}`);
  }
  return pt2Error(ErrorCode.PT2_TRUNCATED, `${excerpt(where)}: damaged or cut-short zip data (${excerpt(message)})`);
}

function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}
