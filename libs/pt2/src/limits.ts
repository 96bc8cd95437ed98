/**
 * Bounds on what readPt2 accepts. Every limit exists so that a hostile upload costs bounded time and
 * memory in the API process; the defaults are generous for real exports (a 7B-parameter LLM has a few
 * hundred weight files and a model JSON in the tens of MiB).
 */
export interface Pt2Limits {
  /** Zip entries in the archive (checked against the central directory's count before listing). */
  maxEntries: number;
  /** Bytes of any single entry. */
  maxEntryBytes: number;
  /** Sum of the bytes of all entries. */
  maxTotalBytes: number;
  /** Bytes of any entry read into memory and parsed: the model JSON, configs, marker files. */
  maxJsonBytes: number;
  /** Nesting depth of parsed JSON documents (walkers are iterative, this bounds pathological input). */
  maxJsonDepth: number;
  /** Graph nodes, counting the nodes of nested (higher-order op) subgraphs too. */
  maxNodes: number;
  /** Characters of one shape expression (`expr_str`). */
  maxExprLength: number;
  /** Call nesting depth of one shape expression. */
  maxExprDepth: number;
  /** Operator namespaces accepted in `torch.ops.<namespace>.*` node targets. */
  allowedOpNamespaces: readonly string[];
  /**
   * Size of each read while streaming large entries; keeps memory flat and reads few and large. A few reads
   * are in flight at once through the zip library's streams: over S3, a 5 GB sweep peaked at ~82 MiB of
   * buffers with 8 MiB reads, ~53 MiB with 4 MiB, in about the same time; 2 MiB and 1 MiB took 1.3x and 1.9x
   * as long (bench/README.md, "Uploads").
   */
  readChunkBytes: number;
}

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

export const DEFAULT_PT2_LIMITS: Readonly<Pt2Limits> = Object.freeze({
  maxEntries: 20_000,
  maxEntryBytes: 16 * GiB,
  maxTotalBytes: 64 * GiB,
  maxJsonBytes: 128 * MiB,
  maxJsonDepth: 512,
  maxNodes: 250_000,
  maxExprLength: 16_384,
  maxExprDepth: 64,
  allowedOpNamespaces: Object.freeze(['aten', 'prims', 'higher_order']),
  readChunkBytes: 4 * MiB,
});

/** Merges caller overrides onto the defaults; a nonsensical override is a programming error, not a bad upload. */
export function resolvePt2Limits(overrides: Partial<Pt2Limits> = {}): Pt2Limits {
  const limits: Pt2Limits = { ...DEFAULT_PT2_LIMITS, ...overrides };
  for (const key of Object.keys(limits) as (keyof Pt2Limits)[]) {
    const value = limits[key];
    if (key === 'allowedOpNamespaces') {
      if (
        !Array.isArray(value) ||
        !value.every((ns) => typeof ns === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(ns))
      ) {
        throw new TypeError('Pt2Limits.allowedOpNamespaces must be a list of identifiers');
      }
    } else if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
      throw new TypeError(`Pt2Limits.${key} must be a positive integer, got ${String(value)}`);
    }
  }
  return limits;
}
