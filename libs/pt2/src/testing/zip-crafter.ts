/**
 * Test support: builds zips byte by byte in torch's layout (zip-writer.ts), with any field of any structure
 * overridden, to craft the hostile archives the zip-layout tests need. Never imported by the library itself.
 */
import { crc32 } from 'node:zlib';
import {
  centralRecordBytes,
  descriptorBytes,
  endRecordsBytes,
  localHeaderBytes,
  type WrittenEntry,
} from '../zip-writer.js';
import { unzip } from './archive-fixtures.js';

export interface CraftEntry {
  /** Full name, top folder included. */
  name: string;
  data: Buffer;
  /** Raw name bytes for both headers (names no zip library would write). */
  nameRaw?: Buffer;
  /** Raw name bytes for the local header only. */
  localNameRaw?: Buffer;
  localFlags?: number;
  centralFlags?: number;
  localMethod?: number;
  localVersionNeeded?: number;
  centralVersionNeeded?: number;
  /** CRC-32 and sizes written into the local header (torch writes zeros, as the descriptor follows). */
  localCrc?: number;
  localSizes?: { compressed: number; uncompressed: number };
  /** Replaces the local extra field (torch: 'FB' padding, plus zip64 when needed). */
  localExtra?: Buffer;
  /** Replaces the central extra field (torch: zip64 when needed, else nothing). */
  centralExtra?: Buffer;
  /** Replaces the 32-bit sizes and offset of the central record (e.g. 0xffffffff markers). */
  centralSizes?: { compressed: number; uncompressed: number };
  centralOffset?: number;
  centralCrc?: number;
  comment?: Buffer;
  diskNumberStart?: number;
  /** Replaces the data descriptor; null writes none. */
  descriptor?: Buffer | null;
  /** Bytes written before this entry's local header (offsets stay consistent). */
  before?: Buffer;
}

export interface CraftOptions {
  /** Bytes between the last entry and the central directory. */
  beforeDirectory?: Buffer;
  /** Edits the final end records (zip64 end record, locator, end record: the last 98 bytes). */
  patchEnd?: (tail: Buffer) => void;
}

export function extraField(id: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(4);
  header.writeUInt16LE(id, 0);
  header.writeUInt16LE(payload.length, 2);
  return Buffer.concat([header, payload]);
}

export function craftZip(entries: readonly CraftEntry[], options: CraftOptions = {}): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    if (e.before) {
      parts.push(e.before);
      offset += e.before.length;
    }
    const nameRaw = e.nameRaw ?? Buffer.from(e.name, 'utf8');
    const written: WrittenEntry = { nameRaw, offset, size: e.data.length, crc32: crc32(e.data) };
    let local = localHeaderBytes(e.localNameRaw ?? nameRaw, e.data.length, offset);
    const localName = e.localNameRaw ?? nameRaw;
    if (e.localExtra) {
      local = Buffer.concat([local.subarray(0, 30 + localName.length), e.localExtra]);
      local.writeUInt16LE(e.localExtra.length, 28);
    }
    if (e.localVersionNeeded !== undefined) local.writeUInt16LE(e.localVersionNeeded, 4);
    if (e.localFlags !== undefined) local.writeUInt16LE(e.localFlags, 6);
    if (e.localMethod !== undefined) local.writeUInt16LE(e.localMethod, 8);
    if (e.localCrc !== undefined) local.writeUInt32LE(e.localCrc, 14);
    if (e.localSizes) {
      local.writeUInt32LE(e.localSizes.compressed, 18);
      local.writeUInt32LE(e.localSizes.uncompressed, 22);
    }
    const descriptor = e.descriptor === undefined ? descriptorBytes(written) : e.descriptor;
    parts.push(local, e.data, ...(descriptor ? [descriptor] : []));
    offset += local.length + e.data.length + (descriptor?.length ?? 0);

    let record = centralRecordBytes(written);
    if (e.centralExtra || e.comment) {
      const extra = e.centralExtra ?? record.subarray(46 + nameRaw.length);
      const comment = e.comment ?? Buffer.alloc(0);
      record = Buffer.concat([record.subarray(0, 46 + nameRaw.length), extra, comment]);
      record.writeUInt16LE(extra.length, 30);
      record.writeUInt16LE(comment.length, 32);
    }
    if (e.centralVersionNeeded !== undefined) record.writeUInt16LE(e.centralVersionNeeded, 6);
    if (e.centralFlags !== undefined) record.writeUInt16LE(e.centralFlags, 8);
    if (e.centralCrc !== undefined) record.writeUInt32LE(e.centralCrc, 16);
    if (e.centralSizes) {
      record.writeUInt32LE(e.centralSizes.compressed, 20);
      record.writeUInt32LE(e.centralSizes.uncompressed, 24);
    }
    if (e.diskNumberStart !== undefined) record.writeUInt16LE(e.diskNumberStart, 34);
    if (e.centralOffset !== undefined) record.writeUInt32LE(e.centralOffset, 42);
    central.push(record);
  }
  if (options.beforeDirectory) {
    parts.push(options.beforeDirectory);
    offset += options.beforeDirectory.length;
  }
  const directorySize = central.reduce((n, r) => n + r.length, 0);
  const end = endRecordsBytes(entries.length, offset, directorySize);
  options.patchEnd?.(end);
  return Buffer.concat([...parts, ...central, end]);
}

/** A real fixture's entries (names with the top folder), ready to edit and craft again. */
export async function craftEntriesOf(archive: Buffer): Promise<CraftEntry[]> {
  return (await unzip(archive)).map(({ name, data }) => ({ name, data }));
}

/** Re-crafts an archive with `edit` applied to the entry whose name ends with `suffix`. */
export async function craftWith(
  archive: Buffer,
  suffix: string,
  edit: Partial<CraftEntry>,
  options: CraftOptions = {},
): Promise<Buffer> {
  const entries = await craftEntriesOf(archive);
  const target = entries.find((e) => e.name.endsWith(suffix));
  if (!target) throw new Error(`no entry ending with ${suffix}`);
  Object.assign(target, edit);
  return craftZip(entries, options);
}
