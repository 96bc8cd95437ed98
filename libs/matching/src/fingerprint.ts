import { cudaMajorMinor, normalizeComputeCapability, normalizeDottedVersion, parseTorchVersion } from './versions.js';

/**
 * What a fleet device tells the resolver about itself. docs/fingerprint.md documents every field, where
 * the device runtime reads it, and the versioning policy. Bump the version for any change an older
 * resolver would misread (a field removed, renamed, made required, or given a new meaning); optional
 * additions keep it, and resolvers drop fields they do not know. The JSON Schema of what a conforming runtime
 * sends is libs/contracts/src/schemas/fingerprint.schema.json; contract-vectors.spec.ts holds this validator, the
 * runtime's and the schema to the same vectors (test/fixtures/contracts/fingerprints.json).
 */
export const FINGERPRINT_SCHEMA_VERSION = 1;

export type FingerprintOs = 'linux' | 'windows' | 'darwin';
export type FingerprintArch = 'x86_64' | 'aarch64';
export type FingerprintLibc = 'glibc' | 'musl' | 'unknown';
export type X86Level = 1 | 2 | 3 | 4;

export interface FingerprintGpu {
  name: string;
  /** "major.minor", from torch.cuda.get_device_capability(i). */
  computeCapability: string;
  driverVersion?: string;
}

export interface DeviceFingerprint {
  schemaVersion: typeof FINGERPRINT_SCHEMA_VERSION;
  os: FingerprintOs;
  arch: FingerprintArch;
  /** e.g. { name: 'glibc', version: '2.36' } (gnu_get_libc_version). */
  libc: { name: FingerprintLibc; version: string | null };
  /** Highest GLIBCXX_ symbol version the device's libstdc++ provides, e.g. "3.4.30". */
  libstdcxx: { glibcxx: string | null };
  /** Linux /proc/cpuinfo flag names. When flags are sent they decide the level; x86Level is the fallback. */
  cpu: { model?: string; flags: string[]; x86Level?: X86Level };
  /** torch.__version__ and torch.version.cuda, e.g. "2.11.0+cu128" and "12.8", or "2.13.0+cpu" and null. */
  torch: { version: string; cuda: string | null };
  /** CUDA GPUs only (ROCm and MPS devices are not matched yet). */
  gpus: FingerprintGpu[];
  hostname?: string;
}

export type FingerprintValidation = { ok: true; value: DeviceFingerprint } | { ok: false; errors: string[] };

/** Caps that keep a hostile or broken fingerprint cheap to check and to log. */
export const FINGERPRINT_LIMITS = {
  /** Linux prints ~100-250 flags today. */
  maxCpuFlags: 1024,
  maxCpuFlagLength: 64,
  maxGpus: 64,
  maxNameLength: 256,
  maxVersionLength: 64,
  maxHostnameLength: 253,
  /** Errors reported for one fingerprint; the rest are summarised in one line. */
  maxErrors: 50,
} as const;

const OS_VALUES: readonly FingerprintOs[] = ['linux', 'windows', 'darwin'];
const LIBC_VALUES: readonly FingerprintLibc[] = ['glibc', 'musl', 'unknown'];
// platform.machine() says "AMD64" on Windows and "arm64" on macOS: accept those spellings, store one.
const ARCH_ALIASES: Record<string, FingerprintArch> = {
  x86_64: 'x86_64',
  amd64: 'x86_64',
  x64: 'x86_64',
  aarch64: 'aarch64',
  arm64: 'aarch64',
};
const CPU_FLAG = /^[a-z0-9_.-]+$/;

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Own properties only, so nothing inherited (a poisoned prototype) is ever read as a field. */
function field(obj: Json, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(obj, key) ? obj[key] : undefined;
}

function has(obj: Json, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(obj, key) && obj[key] !== undefined;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return v.length > 40 ? `a string of ${v.length} characters` : JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return `a value of type ${typeof v}`;
}

class Problems {
  private readonly list: string[] = [];
  /** Every problem found, including those past the cap (compare before/after to see if a part failed). */
  count = 0;

  add(path: string, message: string): void {
    if (this.list.length < FINGERPRINT_LIMITS.maxErrors) this.list.push(`${path}: ${message}`);
    this.count++;
  }

  result(): string[] {
    const dropped = this.count - this.list.length;
    return dropped > 0 ? [...this.list, `... and ${dropped} more problems`] : this.list;
  }
}

/**
 * Characters as JSON Schema's maxLength and Python's len() count them: a character outside the Basic Multilingual
 * Plane (an emoji) is one, where String.length counts two UTF-16 code units.
 */
function codePoints(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

function readString(
  obj: Json,
  key: string,
  path: string,
  problems: Problems,
  maxLength: number,
  required: boolean,
): string | undefined {
  if (!has(obj, key)) {
    if (required) problems.add(path, 'is required');
    return undefined;
  }
  const v = field(obj, key);
  if (typeof v !== 'string') {
    problems.add(path, `must be a string, got ${describe(v)}`);
    return undefined;
  }
  const trimmed = v.trim();
  if (trimmed.length === 0) {
    problems.add(path, 'must not be empty');
    return undefined;
  }
  const length = codePoints(trimmed);
  if (length > maxLength) {
    problems.add(path, `must be at most ${maxLength} characters, got ${length}`);
    return undefined;
  }
  return trimmed;
}

/** A key that must be present, holding a dotted version or null. `undefined` means it was invalid. */
function readNullableDotted(obj: Json, key: string, path: string, problems: Problems): string | null | undefined {
  if (!has(obj, key)) {
    problems.add(path, 'is required (null when unknown)');
    return undefined;
  }
  if (field(obj, key) === null) return null;
  const raw = readString(obj, key, path, problems, FINGERPRINT_LIMITS.maxVersionLength, true);
  if (raw === undefined) return undefined;
  const normalized = normalizeDottedVersion(raw);
  if (normalized === null) problems.add(path, `must be a dotted version like "2.36", got ${describe(raw)}`);
  return normalized ?? undefined;
}

function readObject(obj: Json, key: string, path: string, problems: Problems): Json | undefined {
  const v = field(obj, key);
  if (v === undefined) {
    problems.add(path, 'is required');
    return undefined;
  }
  if (!isObject(v)) {
    problems.add(path, `must be an object, got ${describe(v)}`);
    return undefined;
  }
  return v;
}

function readEnum<T extends string>(
  obj: Json,
  key: string,
  path: string,
  problems: Problems,
  allowed: Record<string, T> | readonly T[],
): T | undefined {
  const raw = readString(obj, key, path, problems, FINGERPRINT_LIMITS.maxNameLength, true);
  if (raw === undefined) return undefined;
  const lower = raw.toLowerCase();
  const value = Array.isArray(allowed)
    ? (allowed as readonly T[]).find((a) => a === lower)
    : Object.prototype.hasOwnProperty.call(allowed, lower)
      ? (allowed as Record<string, T>)[lower]
      : undefined;
  if (value === undefined) {
    const names = Array.isArray(allowed) ? (allowed as readonly T[]) : Object.keys(allowed);
    problems.add(path, `must be one of ${names.join(', ')}, got ${describe(raw)}`);
  }
  return value;
}

function readCpu(
  fp: Json,
  arch: FingerprintArch | undefined,
  problems: Problems,
): DeviceFingerprint['cpu'] | undefined {
  const cpu = readObject(fp, 'cpu', 'cpu', problems);
  if (!cpu) return undefined;
  const before = problems.count;
  const out: DeviceFingerprint['cpu'] = { flags: [] };

  const model = readString(cpu, 'model', 'cpu.model', problems, FINGERPRINT_LIMITS.maxNameLength, false);
  if (model !== undefined) out.model = model;

  const flags = field(cpu, 'flags');
  if (!Array.isArray(flags)) {
    problems.add('cpu.flags', `must be an array of strings (empty when unknown), got ${describe(flags)}`);
  } else if (flags.length > FINGERPRINT_LIMITS.maxCpuFlags) {
    problems.add('cpu.flags', `must have at most ${FINGERPRINT_LIMITS.maxCpuFlags} entries, got ${flags.length}`);
  } else {
    const seen = new Set<string>();
    flags.forEach((f: unknown, i) => {
      const flag = typeof f === 'string' ? f.trim().toLowerCase() : undefined;
      if (flag === undefined || flag.length === 0 || flag.length > FINGERPRINT_LIMITS.maxCpuFlagLength) {
        problems.add(
          `cpu.flags[${i}]`,
          `must be a non-empty string of at most ${FINGERPRINT_LIMITS.maxCpuFlagLength} characters`,
        );
      } else if (!CPU_FLAG.test(flag)) {
        problems.add(`cpu.flags[${i}]`, `must be a /proc/cpuinfo flag name (a-z, 0-9, _ . -), got ${describe(f)}`);
      } else {
        seen.add(flag);
      }
    });
    // Sorted and de-duplicated: the flags are a set, and a canonical value keeps logs and caches stable.
    out.flags = [...seen].sort();
  }

  if (has(cpu, 'x86Level')) {
    const level = field(cpu, 'x86Level');
    if (level !== 1 && level !== 2 && level !== 3 && level !== 4) {
      problems.add('cpu.x86Level', `must be 1, 2, 3 or 4, got ${describe(level)}`);
    } else if (arch !== undefined && arch !== 'x86_64') {
      problems.add('cpu.x86Level', `applies to x86_64 only, but arch is ${arch}`);
    } else {
      out.x86Level = level;
    }
  }
  return problems.count === before ? out : undefined;
}

function readTorch(fp: Json, problems: Problems): DeviceFingerprint['torch'] | undefined {
  const torch = readObject(fp, 'torch', 'torch', problems);
  if (!torch) return undefined;
  const before = problems.count;

  const rawVersion = readString(torch, 'version', 'torch.version', problems, FINGERPRINT_LIMITS.maxVersionLength, true);
  const parsed = rawVersion === undefined ? null : parseTorchVersion(rawVersion);
  if (rawVersion !== undefined && parsed === null) {
    problems.add('torch.version', `must be torch.__version__ like "2.13.0+cpu", got ${describe(rawVersion)}`);
  }

  let cuda: string | null | undefined;
  if (!has(torch, 'cuda')) {
    problems.add('torch.cuda', 'is required (torch.version.cuda; null for CPU builds)');
  } else if (field(torch, 'cuda') === null) {
    cuda = null;
  } else {
    const raw = readString(torch, 'cuda', 'torch.cuda', problems, FINGERPRINT_LIMITS.maxVersionLength, true);
    cuda = raw === undefined ? undefined : cudaMajorMinor(raw);
    if (raw !== undefined && cuda === null) {
      problems.add('torch.cuda', `must be a CUDA version like "12.8", got ${describe(raw)}`);
      cuda = undefined;
    }
  }

  // torch.__version__ and torch.version.cuda come from the same build: a contradiction means a broken
  // runtime, and guessing which one is right could hand the device a CUDA artifact it cannot load.
  if (parsed && cuda !== undefined) {
    if (parsed.cuda !== null && cuda !== parsed.cuda) {
      problems.add(
        'torch.cuda',
        cuda === null
          ? `is null, but torch.version "${parsed.public}+${parsed.local}" is a CUDA ${parsed.cuda} build`
          : `is ${cuda}, but torch.version "${parsed.public}+${parsed.local}" is a CUDA ${parsed.cuda} build`,
      );
    } else if (parsed.local === 'cpu' && cuda !== null) {
      problems.add('torch.cuda', `is ${cuda}, but torch.version "${parsed.public}+cpu" is a CPU build`);
    }
  }
  if (problems.count !== before || !parsed || cuda === undefined) return undefined;
  return { version: parsed.local ? `${parsed.public}+${parsed.local}` : parsed.public, cuda };
}

function readGpus(fp: Json, problems: Problems): FingerprintGpu[] | undefined {
  const gpus = field(fp, 'gpus');
  if (!Array.isArray(gpus)) {
    problems.add('gpus', `must be an array (empty when the device has no CUDA GPU), got ${describe(gpus)}`);
    return undefined;
  }
  if (gpus.length > FINGERPRINT_LIMITS.maxGpus) {
    problems.add('gpus', `must have at most ${FINGERPRINT_LIMITS.maxGpus} entries, got ${gpus.length}`);
    return undefined;
  }
  const before = problems.count;
  const out: FingerprintGpu[] = [];
  gpus.forEach((g: unknown, i) => {
    const path = `gpus[${i}]`;
    if (!isObject(g)) {
      problems.add(path, `must be an object, got ${describe(g)}`);
      return;
    }
    const name = readString(g, 'name', `${path}.name`, problems, FINGERPRINT_LIMITS.maxNameLength, true);
    const rawCc = readString(
      g,
      'computeCapability',
      `${path}.computeCapability`,
      problems,
      FINGERPRINT_LIMITS.maxVersionLength,
      true,
    );
    const cc = rawCc === undefined ? null : normalizeComputeCapability(rawCc);
    if (rawCc !== undefined && cc === null) {
      problems.add(`${path}.computeCapability`, `must be "major.minor" like "9.0", got ${describe(rawCc)}`);
    }
    const driverVersion = readString(
      g,
      'driverVersion',
      `${path}.driverVersion`,
      problems,
      FINGERPRINT_LIMITS.maxVersionLength,
      false,
    );
    if (name !== undefined && cc !== null) {
      out.push(
        driverVersion === undefined ? { name, computeCapability: cc } : { name, computeCapability: cc, driverVersion },
      );
    }
  });
  return problems.count === before ? out : undefined;
}

/**
 * Structural check and normalisation of an untrusted fingerprint (parsed JSON). Returns every problem
 * found, each prefixed with its path, or a normalised copy: enum spellings lower-cased (arch aliases
 * folded), versions in canonical dotted form, CPU flags lower-cased, de-duplicated and sorted, unknown
 * fields dropped. Never throws.
 */
export function validateFingerprint(input: unknown): FingerprintValidation {
  if (!isObject(input)) return { ok: false, errors: [`fingerprint must be a JSON object, got ${describe(input)}`] };

  const version = field(input, 'schemaVersion');
  if (version === undefined) {
    return {
      ok: false,
      errors: [`schemaVersion: is required (this resolver understands schemaVersion ${FINGERPRINT_SCHEMA_VERSION})`],
    };
  }
  if (version !== FINGERPRINT_SCHEMA_VERSION) {
    // Nothing else is checked: the other fields of an unknown schema version may mean something else.
    const why =
      typeof version === 'number' && Number.isInteger(version) && version > FINGERPRINT_SCHEMA_VERSION
        ? 'the device runtime is newer than this resolver; update the resolver or send the fingerprint in an older schema'
        : `this resolver understands schemaVersion ${FINGERPRINT_SCHEMA_VERSION} only`;
    return { ok: false, errors: [`schemaVersion: unsupported schemaVersion ${describe(version)}: ${why}`] };
  }

  const problems = new Problems();
  const os = readEnum(input, 'os', 'os', problems, OS_VALUES);
  const arch = readEnum(input, 'arch', 'arch', problems, ARCH_ALIASES);

  let libc: DeviceFingerprint['libc'] | undefined;
  const libcObj = readObject(input, 'libc', 'libc', problems);
  if (libcObj) {
    const name = readEnum(libcObj, 'name', 'libc.name', problems, LIBC_VALUES);
    const v = readNullableDotted(libcObj, 'version', 'libc.version', problems);
    if (name !== undefined && v !== undefined) libc = { name, version: v };
  }

  let libstdcxx: DeviceFingerprint['libstdcxx'] | undefined;
  const cxxObj = readObject(input, 'libstdcxx', 'libstdcxx', problems);
  if (cxxObj) {
    const v = readNullableDotted(cxxObj, 'glibcxx', 'libstdcxx.glibcxx', problems);
    if (v !== undefined) libstdcxx = { glibcxx: v };
  }

  const cpu = readCpu(input, arch, problems);
  const torch = readTorch(input, problems);
  const gpus = readGpus(input, problems);
  const hostname = readString(input, 'hostname', 'hostname', problems, FINGERPRINT_LIMITS.maxHostnameLength, false);

  if (problems.count > 0 || !os || !arch || !libc || !libstdcxx || !cpu || !torch || !gpus) {
    return { ok: false, errors: problems.result() };
  }
  const value: DeviceFingerprint = {
    schemaVersion: FINGERPRINT_SCHEMA_VERSION,
    os,
    arch,
    libc,
    libstdcxx,
    cpu,
    torch,
    gpus,
  };
  if (hostname !== undefined) value.hostname = hostname;
  return { ok: true, value };
}
