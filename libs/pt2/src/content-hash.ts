import { createHash } from 'node:crypto';

/** Identifies the definition below; bump it if the definition ever changes, so old hashes never match new ones. */
export const CONTENT_HASH_DOMAIN = 'kiln.pt2.content.v1';

export interface ContentFile {
  /** Path below the archive's top folder, e.g. `data/weights/weight_0`. */
  path: string;
  size: number;
  sha256: Buffer;
}

/**
 * The model's identity for caching, independent of the zip container.
 *
 *   contentHash = hex(sha256(
 *     utf8("kiln.pt2.content.v1") || 0x00 ||
 *     for each file F in S, sorted by the UTF-8 bytes of F.path:
 *       u64be(byteLength(F.path)) || utf8(F.path) || u64be(F.size) || sha256(F.bytes)
 *   ))
 *
 * where S = { models/<m>.json, data/weights/<m>_weights_config.json,
 *             data/constants/<m>_constants_config.json }
 *         ∪ { data/weights/<f>, data/constants/<f> : f is a path_name in those configs },
 * paths relative to the top folder, bytes exactly as stored (JSON is not re-serialized: parsing into
 * JS numbers would make two programs that differ only in a large integer hash alike).
 *
 * Not included, on purpose: the top folder name, entry order, `.data/serialization_id` (random per
 * save), `.data/version`, `archive_*`/`byteorder` markers, sample inputs (a pickle Kiln replaces) and
 * `extra/*` (user metadata that does not change the compiled code). Hashing each file separately lets
 * the reader stream entries in archive order while the combination stays order-independent.
 */
export function combineContentHash(files: readonly ContentFile[]): string {
  const sorted = [...files].sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
  const hash = createHash('sha256');
  hash.update(CONTENT_HASH_DOMAIN, 'utf8');
  hash.update(Buffer.from([0]));
  for (const file of sorted) {
    const path = Buffer.from(file.path, 'utf8');
    hash.update(u64be(path.length));
    hash.update(path);
    hash.update(u64be(file.size));
    hash.update(file.sha256);
  }
  return hash.digest('hex');
}

function u64be(value: number): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64BE(BigInt(value));
  return out;
}
