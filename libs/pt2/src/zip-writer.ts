import { crc32 } from 'node:zlib';
import {
  CENTRAL_HEADER_BYTES,
  END_RECORD_BYTES,
  LOCAL_HEADER_BYTES,
  SIGNATURE,
  ZIP64_END_RECORD_BYTES,
  ZIP64_LOCATOR_BYTES,
} from './zip-layout.js';

/**
 * Writes a zip the way torch's writer (miniz in caffe2/serialize/inline_container.cc) does, so that what Kiln
 * stores loads like what torch.export.save wrote and passes the same validation: entries stored, in order,
 * each local header padded with an 'FB' extra field of 'Z's so that data starts 64-byte aligned, CRC-32 and
 * sizes in a data descriptor after the data (flags 0x0808), zip64 fields exactly where a size or offset reaches
 * 4 GiB (repeated in the local header, as miniz does), and always a zip64 end record and locator.
 */

const FLAGS = 0x0808;
const VERSION_NEEDED = 20;
const VERSION_NEEDED_ZIP64 = 45;
const ALIGNMENT = 64;
const U32_MAX = 0xffffffff;
const EXTRA_ZIP64 = 0x0001;
const EXTRA_TORCH_PADDING = 0x4246;

export interface WrittenEntry {
  nameRaw: Buffer;
  offset: number;
  size: number;
  crc32: number;
}

/** The zip64 payload miniz writes: only the fields that do not fit 32 bits, in APPNOTE order. */
function zip64Payload(size: number, offset: number): Buffer | null {
  const values = [...(size >= U32_MAX ? [size, size] : []), ...(offset >= U32_MAX ? [offset] : [])];
  if (values.length === 0) return null;
  const payload = Buffer.alloc(values.length * 8);
  values.forEach((v, i) => payload.writeBigUInt64LE(BigInt(v), i * 8));
  return payload;
}

function extraRecord(id: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(4);
  header.writeUInt16LE(id, 0);
  header.writeUInt16LE(payload.length, 2);
  return Buffer.concat([header, payload]);
}

/** Local header, name and extra field of an entry of `size` bytes written at `offset`. */
export function localHeaderBytes(nameRaw: Buffer, size: number, offset: number): Buffer {
  const zip64 = zip64Payload(size, offset);
  const zip64Extra = zip64 ? extraRecord(EXTRA_ZIP64, zip64) : Buffer.alloc(0);
  const unpadded = offset + LOCAL_HEADER_BYTES + nameRaw.length + zip64Extra.length + 4;
  const padding = Buffer.alloc((ALIGNMENT - (unpadded % ALIGNMENT)) % ALIGNMENT, 'Z');
  const extra = Buffer.concat([zip64Extra, extraRecord(EXTRA_TORCH_PADDING, padding)]);
  const fixed = Buffer.alloc(LOCAL_HEADER_BYTES);
  fixed.writeUInt32LE(SIGNATURE.local, 0);
  fixed.writeUInt16LE(zip64 ? VERSION_NEEDED_ZIP64 : VERSION_NEEDED, 4);
  fixed.writeUInt16LE(FLAGS, 6);
  // method 0 (stored), time and date 0, CRC-32 and sizes 0: they follow the data, in the descriptor.
  fixed.writeUInt16LE(nameRaw.length, 26);
  fixed.writeUInt16LE(extra.length, 28);
  return Buffer.concat([fixed, nameRaw, extra]);
}

export function descriptorBytes(entry: WrittenEntry): Buffer {
  const wide = zip64Payload(entry.size, entry.offset) !== null;
  const out = Buffer.alloc(wide ? 24 : 16);
  out.writeUInt32LE(SIGNATURE.descriptor, 0);
  out.writeUInt32LE(entry.crc32, 4);
  if (wide) {
    out.writeBigUInt64LE(BigInt(entry.size), 8);
    out.writeBigUInt64LE(BigInt(entry.size), 16);
  } else {
    out.writeUInt32LE(entry.size, 8);
    out.writeUInt32LE(entry.size, 12);
  }
  return out;
}

export function centralRecordBytes(entry: WrittenEntry): Buffer {
  const zip64 = zip64Payload(entry.size, entry.offset);
  const extra = zip64 ? extraRecord(EXTRA_ZIP64, zip64) : Buffer.alloc(0);
  const fixed = Buffer.alloc(CENTRAL_HEADER_BYTES);
  const size32 = Math.min(entry.size, U32_MAX);
  fixed.writeUInt32LE(SIGNATURE.central, 0);
  fixed.writeUInt16LE(zip64 ? VERSION_NEEDED_ZIP64 : VERSION_NEEDED, 4); // made by: MS-DOS, zip 2.0/4.5
  fixed.writeUInt16LE(zip64 ? VERSION_NEEDED_ZIP64 : VERSION_NEEDED, 6);
  fixed.writeUInt16LE(FLAGS, 8);
  fixed.writeUInt32LE(entry.crc32, 16);
  fixed.writeUInt32LE(size32, 20);
  fixed.writeUInt32LE(size32, 24);
  fixed.writeUInt16LE(entry.nameRaw.length, 28);
  fixed.writeUInt16LE(extra.length, 30);
  fixed.writeUInt32LE(Math.min(entry.offset, U32_MAX), 42);
  return Buffer.concat([fixed, entry.nameRaw, extra]);
}

/** The zip64 end record, its locator and the end record, after a directory of `count` records. */
export function endRecordsBytes(count: number, directoryOffset: number, directorySize: number): Buffer {
  const zip64End = Buffer.alloc(ZIP64_END_RECORD_BYTES);
  zip64End.writeUInt32LE(SIGNATURE.zip64End, 0);
  zip64End.writeBigUInt64LE(BigInt(ZIP64_END_RECORD_BYTES - 12), 4);
  zip64End.writeUInt16LE(VERSION_NEEDED_ZIP64, 12);
  zip64End.writeUInt16LE(VERSION_NEEDED_ZIP64, 14);
  zip64End.writeBigUInt64LE(BigInt(count), 24);
  zip64End.writeBigUInt64LE(BigInt(count), 32);
  zip64End.writeBigUInt64LE(BigInt(directorySize), 40);
  zip64End.writeBigUInt64LE(BigInt(directoryOffset), 48);
  const locator = Buffer.alloc(ZIP64_LOCATOR_BYTES);
  locator.writeUInt32LE(SIGNATURE.zip64Locator, 0);
  locator.writeBigUInt64LE(BigInt(directoryOffset + directorySize), 8);
  locator.writeUInt32LE(1, 16);
  const end = Buffer.alloc(END_RECORD_BYTES);
  end.writeUInt32LE(SIGNATURE.end, 0);
  end.writeUInt16LE(Math.min(count, 0xffff), 8);
  end.writeUInt16LE(Math.min(count, 0xffff), 10);
  end.writeUInt32LE(Math.min(directorySize, U32_MAX), 12);
  end.writeUInt32LE(Math.min(directoryOffset, U32_MAX), 16);
  return Buffer.concat([zip64End, locator, end]);
}

/**
 * Produces an archive entry by entry, as a sequence of chunks (pull it with `for await` or
 * `Readable.from`). The caller knows each entry's size up front; the CRC-32 is computed on the way.
 */
export class TorchStyleZipWriter {
  private offset = 0;
  private readonly written: WrittenEntry[] = [];

  /** Yields the entry's header, its data (as given) and its descriptor; throws if `data` is not `size` bytes. */
  async *entry(name: string, size: number, data: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    const nameRaw = Buffer.from(name, 'utf8');
    const offset = this.offset;
    const header = localHeaderBytes(nameRaw, size, offset);
    yield header;
    let crc = 0;
    let length = 0;
    for await (const chunk of data) {
      crc = crc32(chunk, crc);
      length += chunk.length;
      if (length > size) throw new Error(`${name}: more than the announced ${size} bytes`);
      yield chunk;
    }
    if (length !== size) throw new Error(`${name}: ${length} bytes instead of the announced ${size}`);
    const entry = { nameRaw, offset, size, crc32: crc };
    const descriptor = descriptorBytes(entry);
    yield descriptor;
    this.written.push(entry);
    this.offset += header.length + size + descriptor.length;
  }

  /** The central directory and end records. */
  *finish(): Generator<Buffer> {
    const directoryOffset = this.offset;
    const records = this.written.map(centralRecordBytes);
    yield* records;
    const directorySize = records.reduce((n, r) => n + r.length, 0);
    yield endRecordsBytes(this.written.length, directoryOffset, directorySize);
  }
}

/** A whole archive in memory (tests, small archives). */
export async function writeTorchStyleZip(files: readonly { name: string; data: Buffer }[]): Promise<Buffer> {
  const writer = new TorchStyleZipWriter();
  const chunks: Buffer[] = [];
  for (const file of files) {
    for await (const chunk of writer.entry(file.name, file.data.length, once(file.data))) chunks.push(chunk);
  }
  for (const chunk of writer.finish()) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function* once(data: Buffer): AsyncGenerator<Buffer> {
  if (data.length > 0) yield data;
}
