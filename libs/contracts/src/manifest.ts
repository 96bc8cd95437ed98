/**
 * The manifest the compile driver writes for each artifact. It is stored in S3 next to the artifact's
 * parts, copied into Postgres, and is what the resolver matches device fingerprints against.
 *
 * An artifact is a list of content-addressed parts. Today an AOTInductor artifact has two:
 *  - `code`: the AOTInductor package (zip) holding the `.so`, generated sources and metadata,
 *    WITHOUT the weights blob;
 *  - `weights`: the raw weights blob (`*_weights.blob`) that belongs at `entry` inside that package.
 * Parts are stored once per content hash, so identical weights across targets are stored once.
 * To load: copy the code zip, add each weights part as a stored entry at its `entry` path, then
 * `aoti_load_package` the result (the device runtime and the driver's verifier both do exactly this).
 */
export const MANIFEST_VERSION = 1;

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export type ArtifactPartRole = 'code' | 'weights';

export interface ArtifactPart {
  role: ArtifactPartRole;
  sha256: string;
  size: number;
  /** For `weights`: the zip entry path inside the code package where this blob belongs. */
  entry?: string;
}

export interface ArtifactRequirements {
  os: 'linux';
  arch: 'x86_64' | 'aarch64';
  /** Minimum x86-64 micro-architecture level (2, 3, 4) for CPU code; null for none. */
  x86Level: number | null;
  /** Exact CUDA compute capability (e.g. "9.0") for GPU code; null for CPU artifacts. */
  computeCapability: string | null;
  /** Exact torch build the device must run (e.g. "2.13.0+cpu"). */
  torch: string;
  /** Highest GLIBC_x.y symbol version the `.so` needs (read off the binary). */
  glibc: string | null;
  /** Highest GLIBCXX_x.y.z symbol version the `.so` needs. */
  glibcxx: string | null;
}

export interface ArtifactToolchain {
  torch: string;
  python: string;
  cxx: { path: string; version: string };
  cudaRuntime: string | null;
  inductorConfigs: Record<string, JsonValue>;
}

export interface IsaCheckResult {
  passed: boolean;
  /** Register classes that must not appear in the code (e.g. zmm for an x86-64-v3 build). */
  forbidden: string[];
  /** How often each register class appears in the disassembly of the `.so`. */
  counts: Record<string, number>;
}

/** A dynamic dim whose accepted range in the compiled artifact is narrower than the program declares. */
export interface NarrowedDim {
  /** User input index, and dim within it. */
  input: number;
  dim: number;
  symbol: string;
  /** [min, max] the program declares (null = unbounded). */
  declared: [number | null, number | null];
  /** [min, max] the compiled artifact accepts. */
  accepted: [number | null, number | null];
  exampleSize: number;
}

/**
 * Inductor can specialise dynamic dims around the example size while compiling (e.g. a conv picking a
 * backend by batch size), so an artifact may accept fewer sizes than the program. Such an artifact is
 * verified on the sizes it accepts; the device runtime runs the portable graph for the others.
 */
export interface InputRanges {
  narrowed: boolean;
  dims: NarrowedDim[];
}

export interface VerificationResult {
  passed: boolean;
  atol: number;
  rtol: number;
  maxAbsError: number;
  maxRelError: number;
  /** The input shapes the compiled artifact and the portable graph were compared on. */
  inputShapes: number[][][];
  /** True when the artifact was assembled from its parts and loaded in a fresh process. */
  freshProcess: boolean;
  device: string;
}

export interface TimingResult {
  /** Median wall time of one call of the portable graph (ExportedProgram.module()). */
  eagerMs: number;
  /** Median wall time of one call of the compiled artifact. */
  compiledMs: number;
  speedup: number;
  runs: number;
  threads: number;
  inputShapes: number[][];
}

export interface ArtifactManifest {
  manifestVersion: typeof MANIFEST_VERSION;
  target: string;
  recipeHash: string;
  modelContentHash: string;
  cacheKey: string;
  format: 'aoti-package-parts';
  parts: ArtifactPart[];
  requires: ArtifactRequirements;
  toolchain: ArtifactToolchain;
  isaCheck: IsaCheckResult;
  inputRanges: InputRanges;
  verification: VerificationResult;
  timing: TimingResult;
  build: {
    compileSeconds: number;
    host: { cpuModel: string; x86Level: number | null; gpuName: string | null; driverVersion: string | null };
    /** What the sandbox enforced for this compile (network off, memory limit, uid, ...). */
    sandbox: Record<string, JsonValue>;
    finishedAt: string;
  };
}
