import { createReadStream } from 'node:fs';
import { type FileHandle, open, rename, rm } from 'node:fs/promises';
import { crc32 } from 'node:zlib';

/**
 * Turns an artifact's parts back into one loadable AOTInductor package, as the manifest says: copy the code
 * zip and add each weights blob as a STORED entry at its `entry` path (data 64-byte aligned, like torch's own
 * writer and kiln_runtime.package_parts). The code zip's entries and central directory records are copied
 * byte for byte; only the new entries and the end records are written. Streams: memory stays flat.
 */
export async function assemblePackage(
  codeZipPath: string,
  weights: readonly { entry: string; path: string; size: number }[],
  outPath: string,
): Promise<void> {
  const tmp = `${outPath}.partial`;
  const code = await open(codeZipPath, 'r');
  const out = await open(tmp, 'w');
  try {
    const end = await readEndRecords(code);
    const names = await centralDirectoryNames(code, end);
    for (const w of weights) {
      checkWeightsEntry(w.entry);
      if (names.has(w.entry)) throw new Error(`weights entry ${w.entry} already exists in the code package`);
      names.add(w.entry);
    }
    let pos = await copyRange(code, out, 0, end.cdOffset, 0);
    const records: Buffer[] = [];
    for (const w of weights) {
      const written = await writeStoredEntry(out, pos, w.entry, w.path, w.size);
      records.push(written.centralRecord);
      pos = written.end;
    }
    const cdStart = pos;
    pos = await copyRange(code, out, end.cdOffset, end.cdSize, pos);
    for (const r of records) {
      await out.write(r, 0, r.length, pos);
      pos += r.length;
    }
    const tail = endRecords(end.entries + weights.length, pos - cdStart, cdStart);
    await out.write(tail, 0, tail.length, pos);
    await out.sync();
  } catch (err) {
    await out.close();
    await rm(tmp, { force: true });
    throw err;
  } finally {
    await code.close();
  }
  await out.close();
  await rename(tmp, outPath);
}

const WEIGHTS_BLOB_SUFFIX = '_weights.blob';
const ALIGNMENT = 64;
/** Extra-field id for alignment padding (the one Android's zipalign uses); readers skip unknown ids. */
const PADDING_EXTRA_ID = 0xd935;
const MAX32 = 0xffffffff;
const MAX16 = 0xffff;
/** 1980-01-01 00:00 in DOS format (time 0, date (0<<9)|(1<<5)|1), as kiln_runtime writes. */
const DOS_TIME = 0;
const DOS_DATE = 0x21;

/** A weights entry comes from a manifest: refuse anything that could land outside the package folder. */
export function checkWeightsEntry(entry: string): void {
  const parts = entry.split('/');
  if (
    !entry.endsWith(WEIGHTS_BLOB_SUFFIX) ||
    entry.startsWith('/') ||
    entry.includes('\\') ||
    parts.some((p) => p === '' || p === '.' || p === '..')
  ) {
    throw new Error(`bad weights entry path ${JSON.stringify(entry)}`);
  }
}

interface EndInfo {
  entries: number;
  cdSize: number;
  cdOffset: number;
}

async function readAt(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  const { bytesRead } = await handle.read(buf, 0, length, position);
  if (bytesRead !== length) throw new Error('code package: unexpected end of file');
  return buf;
}

async function readEndRecords(handle: FileHandle): Promise<EndInfo> {
  const { size } = await handle.stat();
  const tailLength = Math.min(size, 22 + MAX16);
  const tail = await readAt(handle, size - tailLength, tailLength);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === 0x06054b50 && i + 22 + tail.readUInt16LE(i + 20) === tail.length) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('code package: no end of central directory (not a zip?)');
  let entries = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  const locatorAt = size - tailLength + eocd - 20;
  if (locatorAt >= 0) {
    const locator = await readAt(handle, locatorAt, 20);
    if (locator.readUInt32LE(0) === 0x07064b50) {
      const z = await readAt(handle, Number(locator.readBigUInt64LE(8)), 56);
      if (z.readUInt32LE(0) !== 0x06064b50) throw new Error('code package: bad zip64 end record');
      entries = Number(z.readBigUInt64LE(32));
      cdSize = Number(z.readBigUInt64LE(40));
      cdOffset = Number(z.readBigUInt64LE(48));
    }
  }
  return { entries, cdSize, cdOffset };
}

async function centralDirectoryNames(handle: FileHandle, end: EndInfo): Promise<Set<string>> {
  const cd = await readAt(handle, end.cdOffset, end.cdSize);
  const names = new Set<string>();
  let p = 0;
  for (let i = 0; i < end.entries; i++) {
    if (cd.readUInt32LE(p) !== 0x02014b50) throw new Error('code package: bad central directory record');
    const nameLength = cd.readUInt16LE(p + 28);
    const extraLength = cd.readUInt16LE(p + 30);
    const commentLength = cd.readUInt16LE(p + 32);
    names.add(cd.toString('utf8', p + 46, p + 46 + nameLength));
    p += 46 + nameLength + extraLength + commentLength;
  }
  return names;
}

async function copyRange(from: FileHandle, to: FileHandle, start: number, length: number, at: number): Promise<number> {
  const buf = Buffer.allocUnsafe(1024 * 1024);
  let done = 0;
  while (done < length) {
    const n = Math.min(buf.length, length - done);
    const { bytesRead } = await from.read(buf, 0, n, start + done);
    if (bytesRead === 0) throw new Error('code package: unexpected end of file');
    await to.write(buf, 0, bytesRead, at + done);
    done += bytesRead;
  }
  return at + length;
}

async function writeStoredEntry(
  out: FileHandle,
  offset: number,
  name: string,
  blobPath: string,
  size: number,
): Promise<{ end: number; centralRecord: Buffer }> {
  const nameBytes = Buffer.from(name, 'utf8');
  const zip64 = size >= MAX32;
  const zip64Extra = zip64 ? 20 : 0;
  const fixed = 30 + nameBytes.length + zip64Extra;
  const pad = ((-(offset + fixed + 4) % ALIGNMENT) + ALIGNMENT) % ALIGNMENT;
  const header = Buffer.alloc(fixed + 4 + pad);
  header.writeUInt32LE(0x04034b50, 0);
  header.writeUInt16LE(zip64 ? 45 : 20, 4);
  header.writeUInt16LE(0x0800, 6); // UTF-8 name
  header.writeUInt16LE(0, 8); // stored
  header.writeUInt16LE(DOS_TIME, 10);
  header.writeUInt16LE(DOS_DATE, 12);
  header.writeUInt32LE(0, 14); // crc-32, patched below
  header.writeUInt32LE(zip64 ? MAX32 : size, 18);
  header.writeUInt32LE(zip64 ? MAX32 : size, 22);
  header.writeUInt16LE(nameBytes.length, 26);
  header.writeUInt16LE(zip64Extra + 4 + pad, 28);
  nameBytes.copy(header, 30);
  let p = 30 + nameBytes.length;
  if (zip64) {
    header.writeUInt16LE(1, p);
    header.writeUInt16LE(16, p + 2);
    header.writeBigUInt64LE(BigInt(size), p + 4);
    header.writeBigUInt64LE(BigInt(size), p + 12);
    p += 20;
  }
  header.writeUInt16LE(PADDING_EXTRA_ID, p);
  header.writeUInt16LE(pad, p + 2);
  await out.write(header, 0, header.length, offset);

  let crc = 0;
  let pos = offset + header.length;
  let copied = 0;
  for await (const chunk of createReadStream(blobPath, { highWaterMark: 1024 * 1024 })) {
    const bytes = chunk as Buffer;
    crc = crc32(bytes, crc);
    await out.write(bytes, 0, bytes.length, pos);
    pos += bytes.length;
    copied += bytes.length;
  }
  if (copied !== size) throw new Error(`${blobPath}: ${copied} bytes, the manifest says ${size}`);
  const crcBytes = Buffer.alloc(4);
  crcBytes.writeUInt32LE(crc >>> 0, 0);
  await out.write(crcBytes, 0, 4, offset + 14);

  const offset64 = offset >= MAX32;
  const cdExtraFields = [...(zip64 ? [size, size] : []), ...(offset64 ? [offset] : [])];
  const cdExtra = cdExtraFields.length ? 4 + 8 * cdExtraFields.length : 0;
  const record = Buffer.alloc(46 + nameBytes.length + cdExtra);
  record.writeUInt32LE(0x02014b50, 0);
  record.writeUInt16LE((3 << 8) | 45, 4); // made by: unix, zip 4.5
  record.writeUInt16LE(zip64 || offset64 ? 45 : 20, 6);
  record.writeUInt16LE(0x0800, 8);
  record.writeUInt16LE(0, 10);
  record.writeUInt16LE(DOS_TIME, 12);
  record.writeUInt16LE(DOS_DATE, 14);
  record.writeUInt32LE(crc >>> 0, 16);
  record.writeUInt32LE(zip64 ? MAX32 : size, 20);
  record.writeUInt32LE(zip64 ? MAX32 : size, 24);
  record.writeUInt16LE(nameBytes.length, 28);
  record.writeUInt16LE(cdExtra, 30);
  record.writeUInt16LE(0, 32); // comment
  record.writeUInt16LE(0, 34); // disk
  record.writeUInt16LE(0, 36); // internal attributes
  record.writeUInt32LE((0o100644 << 16) >>> 0, 38); // a regular file, rw-r--r--
  record.writeUInt32LE(offset64 ? MAX32 : offset, 42);
  nameBytes.copy(record, 46);
  if (cdExtra) {
    let q = 46 + nameBytes.length;
    record.writeUInt16LE(1, q);
    record.writeUInt16LE(8 * cdExtraFields.length, q + 2);
    q += 4;
    for (const v of cdExtraFields) {
      record.writeBigUInt64LE(BigInt(v), q);
      q += 8;
    }
  }
  return { end: pos, centralRecord: record };
}

/** Zip64 end record + locator + end record (torch always writes the zip64 pair too). */
function endRecords(entries: number, cdSize: number, cdOffset: number): Buffer {
  const buf = Buffer.alloc(56 + 20 + 22);
  const z = cdOffset + cdSize;
  buf.writeUInt32LE(0x06064b50, 0);
  buf.writeBigUInt64LE(44n, 4);
  buf.writeUInt16LE((3 << 8) | 45, 12);
  buf.writeUInt16LE(45, 14);
  buf.writeUInt32LE(0, 16);
  buf.writeUInt32LE(0, 20);
  buf.writeBigUInt64LE(BigInt(entries), 24);
  buf.writeBigUInt64LE(BigInt(entries), 32);
  buf.writeBigUInt64LE(BigInt(cdSize), 40);
  buf.writeBigUInt64LE(BigInt(cdOffset), 48);
  buf.writeUInt32LE(0x07064b50, 56);
  buf.writeUInt32LE(0, 60);
  buf.writeBigUInt64LE(BigInt(z), 64);
  buf.writeUInt32LE(1, 72);
  const e = 76;
  buf.writeUInt32LE(0x06054b50, e);
  buf.writeUInt16LE(0, e + 4);
  buf.writeUInt16LE(0, e + 6);
  buf.writeUInt16LE(Math.min(entries, MAX16), e + 8);
  buf.writeUInt16LE(Math.min(entries, MAX16), e + 10);
  buf.writeUInt32LE(Math.min(cdSize, MAX32), e + 12);
  buf.writeUInt32LE(Math.min(cdOffset, MAX32), e + 16);
  buf.writeUInt16LE(0, e + 20);
  return buf;
}
