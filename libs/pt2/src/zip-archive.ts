import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import yauzl from 'yauzl';
import { ErrorCode, KilnError } from '@kiln/contracts';
import type { ByteSource } from './byte-source.js';
import { excerpt, pt2Error } from './errors.js';
import type { Pt2Limits } from './limits.js';
import {
  ambiguous,
  type CentralRecord,
  checkContiguous,
  checkDescriptor,
  checkLocalHeader,
  descriptorLength,
  END_RECORD_BYTES,
  LOCAL_HEADER_BYTES,
  localVariableLength,
  MAX_CENTRAL_RECORD_BYTES,
  parseCentralDirectory,
  parseEnvelope,
  SIGNATURE,
  ZIP64_END_RECORD_BYTES,
  ZIP64_LOCATOR_BYTES,
  type ZipEnvelope,
} from './zip-layout.js';

/** One stored file of the archive, with the top folder already stripped from its path. */
export interface ArchiveEntry {
  /** Path below the archive's top folder, e.g. `models/model.json`. */
  readonly path: string;
  readonly size: number;
  /** Offset of the local file header; entries are read in this order to keep reads sequential. */
  readonly offset: number;
  readonly crc32: number;
  readonly zipEntry: yauzl.Entry;
  /** The central-directory record as stored, for the layout checks (zip-layout.ts). */
  readonly record: CentralRecord;
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

  /** Any range, in reads of at most a chunk (the central directory can be larger than the window). */
  async readChunked(start: number, end: number): Promise<Buffer> {
    if (end - start <= this.windowBytes) return this.readSmall(start, end);
    const parts: Buffer[] = [];
    for (let pos = start; pos < end; pos += this.chunkBytes) {
      parts.push(await this.fetch(pos, Math.min(this.chunkBytes, end - pos)));
    }
    return Buffer.concat(parts);
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

/** Where an entry's bytes lie, once its local header (and data descriptor) have been checked. */
interface EntrySpan {
  dataStart: number;
  /** End of the entry: data plus data descriptor. Set once the descriptor has been checked. */
  end?: number;
}

/**
 * A validated view of a `.pt2` zip: every entry is a stored, unencrypted regular file with a clean
 * name under one top folder, sizes are within limits, and entries neither overlap nor run past EOF.
 * The byte-level layout (local headers, data descriptors, no bytes between entries) is checked as entries
 * are read, and for all entries by `finishLayout()`, which the caller runs before trusting the archive.
 */
export class Pt2Zip {
  private readonly spans = new Map<ArchiveEntry, EntrySpan>();

  private constructor(
    private readonly reader: ByteSourceReader,
    private readonly zipfile: yauzl.ZipFile,
    private readonly directoryOffset: number,
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
      // Checked before listing, so a central directory claiming millions of entries costs nothing.
      if (envelope.entryCount > limits.maxEntries) {
        throw pt2Error(
          ErrorCode.PT2_TOO_MANY_ENTRIES,
          `archive has ${envelope.entryCount} entries, more than the limit of ${limits.maxEntries}`,
          { entries: envelope.entryCount, limit: limits.maxEntries },
        );
      }
      if (envelope.entryCount === 0) throw pt2Error(ErrorCode.PT2_MISSING_ENTRY, 'archive has no entries');
      if (zipfile.entryCount !== envelope.entryCount) {
        throw ambiguous(`zip readers find ${zipfile.entryCount} or ${envelope.entryCount} entries`);
      }
      if (envelope.directorySize > envelope.entryCount * MAX_CENTRAL_RECORD_BYTES) {
        throw ambiguous(
          `the central directory is ${envelope.directorySize} bytes for ${envelope.entryCount} entries (names up to ${MAX_NAME_BYTES} bytes, no comments)`,
        );
      }
      const directory = await reader.readChunked(
        envelope.directoryOffset,
        envelope.directoryOffset + envelope.directorySize,
      );
      const records = parseCentralDirectory(directory, envelope.entryCount);
      const listed = await listEntries(zipfile, source, limits, records);
      return new Pt2Zip(reader, zipfile, envelope.directoryOffset, listed.root, listed.entries, listed.totalBytes);
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
    await this.stream(entry, (chunk) => {
      hash.update(chunk);
    });
    return hash.digest();
  }

  /**
   * The first bytes of an entry, to recognise pickles and nested zips by their magic numbers. The whole
   * entry is read, so that its CRC-32 is checked too.
   */
  async head(entry: ArchiveEntry, length: number): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let kept = 0;
    await this.stream(entry, (chunk) => {
      if (kept >= length) return;
      chunks.push(chunk.subarray(0, length - kept));
      kept += Math.min(chunk.length, length - kept);
    });
    return Buffer.concat(chunks);
  }

  /**
   * Checks the local header and data descriptor of every entry not read yet, then that the entries tile the
   * file up to the central directory without a gap. Call once the entries the caller needs have been read.
   */
  async finishLayout(): Promise<void> {
    const ordered = [...this.entries.values()].sort((a, b) => a.offset - b.offset);
    const spans: { name: string; start: number; end: number }[] = [];
    try {
      for (const entry of ordered) {
        const span = await this.localHeader(entry);
        const end = span.end ?? (await this.descriptor(entry, span));
        spans.push({ name: entry.path, start: entry.offset, end });
      }
      checkContiguous(spans, this.directoryOffset);
    } catch (err) {
      throw toKilnError(err, 'zip layout');
    }
  }

  close(): void {
    this.zipfile.close();
  }

  private async localHeader(entry: ArchiveEntry): Promise<EntrySpan> {
    const known = this.spans.get(entry);
    if (known) return known;
    const start = entry.offset;
    if (start + LOCAL_HEADER_BYTES > this.directoryOffset) throw truncatedEntry(entry);
    const fixed = await this.reader.readRange(start, start + LOCAL_HEADER_BYTES);
    const variableEnd = start + LOCAL_HEADER_BYTES + localVariableLength(fixed);
    if (fixed.readUInt32LE(0) === SIGNATURE.local && variableEnd + entry.size > this.directoryOffset) {
      throw truncatedEntry(entry);
    }
    const variable =
      variableEnd <= this.directoryOffset
        ? await this.reader.readRange(start + LOCAL_HEADER_BYTES, variableEnd)
        : Buffer.alloc(0);
    const { dataStart } = checkLocalHeader(entry.record, `${this.root}/${entry.path}`, fixed, variable);
    const span: EntrySpan = { dataStart };
    this.spans.set(entry, span);
    return span;
  }

  /** Checks the data descriptor after the entry's data; returns where the entry ends. */
  private async descriptor(entry: ArchiveEntry, span: EntrySpan): Promise<number> {
    const dataEnd = span.dataStart + entry.size;
    const length = descriptorLength(entry.record);
    if (dataEnd + length > this.directoryOffset) throw truncatedEntry(entry);
    if (length > 0) {
      checkDescriptor(
        entry.record,
        `${this.root}/${entry.path}`,
        await this.reader.readRange(dataEnd, dataEnd + length),
      );
    }
    span.end = dataEnd + length;
    return span.end;
  }

  private async stream(entry: ArchiveEntry, onChunk: (chunk: Buffer) => void | Promise<void>): Promise<void> {
    for await (const chunk of this.chunks(entry)) await onChunk(chunk);
  }

  /**
   * An entry's bytes as they are read; the CRC-32 is checked after the last chunk (a consumer that writes
   * them somewhere must discard what it wrote when this throws). Reads are chunked (`readChunkBytes`).
   */
  async *chunks(entry: ArchiveEntry): AsyncGenerator<Buffer> {
    let crc = 0;
    try {
      // Read through the reader's window first, so yauzl's own read of the header costs nothing.
      const span = await this.localHeader(entry);
      const stream = await this.zipfile.openReadStreamPromise(entry.zipEntry);
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        crc = crc32(chunk, crc);
        yield chunk;
      }
      if (span.end === undefined) await this.descriptor(entry, span);
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

function truncatedEntry(entry: ArchiveEntry): KilnError {
  return pt2Error(
    ErrorCode.PT2_TRUNCATED,
    `${excerpt(entry.path)} runs past the end of the entries (into the central directory or beyond); the upload is cut short or damaged`,
    { entry: entry.path },
  );
}

async function listEntries(
  zipfile: yauzl.ZipFile,
  source: ByteSource,
  limits: Pt2Limits,
  records: readonly CentralRecord[],
): Promise<{ root: string; entries: Map<string, ArchiveEntry>; totalBytes: number }> {
  const listed: { name: string; entry: yauzl.Entry; record: CentralRecord }[] = [];
  // Lower-cased and NFC-normalized: miniz (torch's reader) can look names up case-insensitively, and file
  // systems fold case or normalize Unicode, so `A` and `a`, or `é` composed and decomposed, are one file.
  const names = new Set<string>();
  let totalBytes = 0;
  for await (const entry of zipfile.eachEntry()) {
    const record = records[listed.length];
    // yauzl parsed the same bytes; a difference would mean the two parses drifted apart.
    if (
      !record ||
      !record.nameRaw.equals(entry.fileNameRaw) ||
      record.offset !== entry.relativeOffsetOfLocalHeader ||
      record.uncompressedSize !== entry.uncompressedSize ||
      record.compressedSize !== entry.compressedSize
    ) {
      throw ambiguous(`central directory record ${listed.length} reads differently in two parsers`);
    }
    const name = checkEntry(entry, source, limits);
    const folded = name.normalize('NFC').toLowerCase();
    if (names.has(folded)) {
      throw badName(name, 'appears twice in the archive (names compared ignoring case and Unicode normalization)');
    }
    names.add(folded);
    totalBytes += entry.uncompressedSize;
    if (totalBytes > limits.maxTotalBytes) {
      throw pt2Error(
        ErrorCode.PT2_ENTRY_TOO_LARGE,
        `entries add up to more than the limit of ${limits.maxTotalBytes} bytes (at ${excerpt(name)})`,
        { limit: limits.maxTotalBytes },
      );
    }
    listed.push({ name, entry, record });
  }

  // Stored entries cannot hold more bytes than the file; more means sizes lie or entries overlap.
  if (totalBytes > source.size) {
    throw pt2Error(
      ErrorCode.PT2_TRUNCATED,
      `entries claim ${totalBytes} bytes but the archive is only ${source.size} bytes; sizes are wrong or entries overlap`,
    );
  }

  // torch.export.save puts everything under one folder (the file stem, or `archive/`); strip it.
  const root = listed[0].name.split('/')[0];
  const entries = new Map<string, ArchiveEntry>();
  for (const { name, entry, record } of listed) {
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
      record,
    });
  }
  return { root, entries, totalBytes };
}

/** The end records (see parseEnvelope): read from the last bytes of the file. */
async function readEnvelope(reader: ByteSourceReader, size: number): Promise<ZipEnvelope> {
  const tailStart = Math.max(0, size - END_RECORD_BYTES - ZIP64_LOCATOR_BYTES - ZIP64_END_RECORD_BYTES);
  return parseEnvelope(await reader.readRange(tailStart, size), size);
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

/**
 * Characters no entry name may hold, anywhere: C0/C1 controls (NUL included) and DEL; Unicode format
 * characters (bidirectional overrides like U+202E that make `cod.exe` read `exe.doc`, zero-width joiners and
 * spaces that make two names look alike), line and paragraph separators, surrogates, private-use and
 * unassigned code points; and the characters Windows file systems refuse or treat as syntax (`\ : * ? " < > |`:
 * a backslash is a path separator there, a colon opens an alternate data stream).
 */
const FORBIDDEN_NAME_CHARACTERS = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\\:*?"<>|]/u;

/** Rules for a full entry name (top folder included). */
export function checkEntryName(name: string): void {
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) throw badName(name, `is longer than ${MAX_NAME_BYTES} bytes`);
  if (hasControlCharacters(name)) throw badName(name, 'contains control characters');
  if (name.includes('\\')) throw badName(name, 'contains a backslash');
  const forbidden = FORBIDDEN_NAME_CHARACTERS.exec(name);
  if (forbidden) {
    const code = forbidden[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
    throw badName(name, `contains the character U+${code}, which entry names may not hold`);
  }
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) throw badName(name, 'is an absolute path');
  if (name.endsWith('/')) throw badName(name, 'is a directory entry');
  for (const segment of name.split('/')) {
    if (segment === '..') throw badName(name, "contains a '..' segment");
    if (segment === '.' || segment === '') throw badName(name, "contains an empty or '.' segment");
    // Windows drops trailing dots and spaces: `model.json.` and `model.json` would be one file there.
    if (/[. ]$/.test(segment) || segment.startsWith(' ')) {
      throw badName(name, 'has a segment that starts with a space or ends with a dot or space');
    }
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
  if (/^multi-disk zip files are not supported/.test(reason))
    return ambiguous('the archive claims to be split over disks');
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
