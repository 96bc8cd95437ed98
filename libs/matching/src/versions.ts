/**
 * Version strings the matcher compares: glibc / GLIBCXX symbol versions (dotted numbers) and torch
 * builds (PEP 440 public version + local tag). Kept tiny and dependency-free because the Python device
 * runtime mirrors exactly these rules: both run the shared vectors of test/fixtures/contracts/versions.json.
 */

const DOTTED = /^\d{1,9}(\.\d{1,9}){0,5}$/;

/** Numeric components of a dotted version ("2.36" → [2, 36]); null when it is not purely dotted numbers. */
export function parseDottedVersion(version: string): number[] | null {
  const trimmed = version.trim();
  return DOTTED.test(trimmed) ? trimmed.split('.').map(Number) : null;
}

/**
 * Canonical dotted form: surrounding spaces and a `GLIBC_` / `GLIBCXX_` symbol-version prefix removed,
 * leading zeros dropped ("GLIBCXX_3.4.030" → "3.4.30"). Null when it is not a dotted version.
 */
export function normalizeDottedVersion(version: string): string | null {
  const parts = parseDottedVersion(version.trim().replace(/^GLIBC(XX)?_/i, ''));
  return parts ? parts.join('.') : null;
}

/**
 * Numeric, component-wise comparison; missing components count as 0, so "2.34" equals "2.34.0" and
 * "3.4.30" > "3.4.9" (a string comparison would get that one wrong).
 */
export function compareDottedVersions(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

export interface TorchVersion {
  /** The PEP 440 public version, lower-cased: "2.13.0", "2.6.0a0", "2.7.0.dev20250301". */
  public: string;
  /** The local tag after "+", lower-cased: "cpu", "cu128", "rocm6.2", "ecf3bae40a.nv25.01"; null when absent. */
  local: string | null;
  /** CUDA major.minor named by a `cuXYZ` segment of the local tag ("cu128" → "12.8"); null when none. */
  cuda: string | null;
}

// Release X.Y[.Z...], optional pre-release (a/b/rc), post and dev segments, optional local tag. This is
// the canonical PEP 440 shape torch prints; the non-canonical spellings PEP 440 also allows (e.g.
// "2.13.0-rc1") never appear in torch.__version__ and are refused rather than guessed at.
const TORCH_VERSION =
  /^(\d+(?:\.\d+)+(?:(?:a|b|rc)\d+)?(?:\.post\d+)?(?:\.dev\d+)?)(?:\+([a-z0-9]+(?:\.[a-z0-9]+)*))?$/;
// cu128 → 12.8, cu118 → 11.8, cu92 → 9.2: the last digit is the minor version (how torch names wheels).
const CUDA_LOCAL_SEGMENT = /^cu(\d+)(\d)$/;

/** Splits a torch version into public part, local tag and the CUDA version its local tag names. */
export function parseTorchVersion(version: string): TorchVersion | null {
  const m = TORCH_VERSION.exec(version.trim().toLowerCase());
  if (!m) return null;
  const local = m[2] ?? null;
  let cuda: string | null = null;
  for (const segment of local?.split('.') ?? []) {
    const cu = CUDA_LOCAL_SEGMENT.exec(segment);
    if (cu) {
      // Leading zeros dropped as text: Number() would round a major beyond 2^53.
      cuda = `${cu[1].replace(/^0+(?=\d)/, '')}.${cu[2]}`;
      break;
    }
  }
  return { public: m[1], local, cuda };
}

/** "12.8.1" → "12.8"; null when not a dotted version with at least major.minor. */
export function cudaMajorMinor(version: string): string | null {
  const parts = parseDottedVersion(version);
  return parts && parts.length >= 2 ? `${parts[0]}.${parts[1]}` : null;
}

/** Compute capability in canonical "major.minor" form ("09.0" → "9.0"); null when malformed. */
export function normalizeComputeCapability(cc: string): string | null {
  const parts = parseDottedVersion(cc);
  return parts && parts.length === 2 ? parts.join('.') : null;
}
