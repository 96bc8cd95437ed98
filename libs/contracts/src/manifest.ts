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
 * The JSON Schema of the document is schemas/artifact-manifest.schema.json: the worker's and the device's checks
 * run its vectors (test/fixtures/contracts/manifests.json), and a real build's manifest must pass it.
 */
export const MANIFEST_VERSION = 1;

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export type ArtifactPartRole = 'code' | 'weights';

/**
 * The numeric precision an artifact computes in. 'fp32' is the portable graph's own; 'bf16'/'fp16' artifacts are
 * reduced-precision variants (same interface, different numerics) that the resolver hands out only to devices
 * that accept them. Manifests written before this field existed are fp32.
 */
export type ArtifactPrecision = 'fp32' | 'bf16' | 'fp16';

export interface ArtifactPart {
  role: ArtifactPartRole;
  sha256: string;
  size: number;
  /** For `weights`: the zip entry path inside the code package where this blob belongs. */
  entry?: string;
  /**
   * For `weights`: every tensor's byte range in the blob, by offset, none overlapping, with the sha256 of its bytes;
   * every other byte is zero. A device that holds some of these tensors (from an earlier version) downloads only the
   * others and checks the whole part's sha256. Absent when the build could not index the blob.
   */
  tensors?: TensorRange[];
}

/** One tensor of a weights part (python/driver/kiln_driver/weights_layout.py writes them). */
export interface TensorRange {
  /** The constant's name in the generated code (e.g. `net_0_weight`). */
  name: string;
  offset: number;
  size: number;
  sha256: string;
}

export interface ArtifactRequirements {
  os: 'linux';
  arch: 'x86_64' | 'aarch64';
  /**
   * Minimum x86-64 micro-architecture level (2, 3, 4) the artifact's host code needs; null for none. Derived from
   * the machine code (`isaCheck.requiredX86Level`), never lower than the target's: GPU artifacts have host code
   * too (built for the build host's CPU on torch 2.11), so an sm90 artifact usually needs x86-64-v4.
   */
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
  /** The torch that generated the code (the build host's; for a cross build, not the one the artifact runs with). */
  torch: string;
  python: string;
  cxx: { path: string; version: string };
  cudaRuntime: string | null;
  inductorConfigs: Record<string, JsonValue>;
  /**
   * A cross build (kiln_driver/cross.py): the machine the code is for, the target architecture's torch it links
   * against (= `requires.torch`), the cross compiler inductor ran through Kiln's wrapper.
   */
  cross?: { arch: string; targetTorch: string; cxx: { path: string; version: string }; wrapper: string };
}

export interface IsaCheckResult {
  passed: boolean;
  /** Register classes that must not appear in the code (e.g. zmm for an x86-64-v3 build). */
  forbidden: string[];
  /** How often each register class appears in the disassembly of the `.so` (xmm, ymm, zmm, tmm, k). */
  counts: Record<string, number>;
  /**
   * Instructions that tell more than register classes: `avx512` (AVX-512-only: opmask registers k1-k7,
   * xmm/ymm16-31, EVEX-only mnemonics such as vpternlog on ymm), `v3Scalar` (BMI1/BMI2/LZCNT/MOVBE, x86-64-v3
   * instructions on general registers). Absent in manifests written before it existed.
   */
  evidence?: { avx512: number; v3Scalar: number };
  /**
   * The x86-64 level the host code needs: the highest of the target's level and what the machine code shows
   * (zmm, opmask or other AVX-512-only instructions ⇒ 4; ymm or v3 scalar instructions ⇒ 3). Copied to
   * `requires.x86Level`. Absent in manifests written before it existed.
   */
  requiredX86Level?: number | null;
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
  /**
   * A cross build's: the artifact and the portable graph ran under user-mode emulation (`emulator` emulating `cpu`)
   * with the target architecture's torch. Proves correctness on that machine type, never speed.
   */
  emulated?: { emulator: string; cpu: string; arch: string; torch: string };
  device: string;
  /**
   * The precision of the reference it was compared with: always the portable graph in fp32, also for bf16/fp16
   * artifacts (compared with their precision's tolerance). Absent in manifests written before it existed.
   */
  referencePrecision?: 'fp32';
  /** CUDA only: whether TF32 was allowed in matmuls/convolutions (never: Kiln verifies IEEE fp32). */
  tf32?: boolean;
}

/** A median and its confidence interval (distribution-free, from order statistics). */
export interface MedianWithInterval {
  median: number;
  /** [low, high] at `TimingResult.confidence`. */
  ci: [number, number];
}

/** The timing distribution on one input size (timing method `interleaved-median-ci`). */
export interface TimingPerInput {
  inputShapes: number[][];
  /** Timed pairs (one eager and one compiled call each, in alternating order). */
  samples: number;
  /** Pairs run before sampling, until the per-pair ratio stopped moving. */
  warmupPairs: number;
  eagerMs: MedianWithInterval;
  compiledMs: MedianWithInterval;
  /** Of the per-pair ratios eager / compiled. */
  speedup: MedianWithInterval;
}

/** What the noise guard saw while timing (driver: kiln_driver/timing.py). */
export interface TimingNoise {
  /** /proc/pressure/cpu "some" share of wall time while measuring (0..1); null where PSI is unavailable. */
  cpuPressure: number | null;
  /** 1-minute load average per CPU when measuring ended; null where unknown. */
  loadPerCpu: number | null;
  /** How long the build waited for the host's timing lock (other builds compiling or timing). */
  lockWaitMs: number;
  /** Measurement attempts (a noisy one is measured again, up to a limit). */
  attempts: number;
  /** Why the last attempt counts as noisy; empty when it was quiet. */
  reasons: string[];
}

export interface TimingResult {
  /**
   * The portable graph's time for one call (ExportedProgram.module()); on CUDA, synchronized. Calls are
   * interleaved with the compiled artifact's, under the build host's timing lock. Method `interleaved-median-ci`:
   * the median on the first input size (the export's); manifests without `method`: best of `runs`.
   */
  eagerMs: number;
  /** The compiled artifact's time for one call (same protocol). */
  compiledMs: number;
  /** eager / compiled: the median per-pair ratio on the first input size (older manifests: ratio of the bests). */
  speedup: number;
  /** Interleaved rounds measured (fewer than the job asked when `truncated`). */
  runs: number;
  threads: number;
  inputShapes: number[][];
  /**
   * The host timing lock during the measurement: `exclusive` (no other build compiled or timed meanwhile),
   * `contended` (the bounded wait for it ran out and the measurement went on beside other builds: noisier),
   * `none` (no lock on that host). Absent in manifests written before it existed.
   */
  lock?: 'exclusive' | 'contended' | 'none';
  /** Seconds the build waited for the lock (at most the job's `timing.lockWaitSeconds`). */
  lockWaitS?: number;
  /** The measurement's time budget (`timing.maxSeconds`) ended it before `runs` rounds. */
  truncated?: boolean;
  /**
   * Absent in manifests written before the timing method was recorded (best-of-N, one input size). `unmeasured`: no
   * speed figure (a cross build verified under emulation); every number is 0 and `reason` says why. The resolver
   * ranks such an artifact above the portable graph only by its policy for unmeasured artifacts or on device evidence.
   */
  method?: 'interleaved-median-ci' | 'unmeasured';
  /** Why the speed was not measured (`method: 'unmeasured'`). */
  reason?: string;
  /** Confidence interval of `speedup` at `confidence`. */
  speedupCi?: [number, number];
  confidence?: number;
  /**
   * True when the host was noisy while timing (CPU pressure, load, the lock contended) even after re-measuring,
   * or the interval stayed wide: the resolver then treats the figure as a guess, never as proof of slowness.
   */
  uncertain?: boolean;
  noise?: TimingNoise;
  /** The distribution per verified input size, the first being the one `speedup` is taken from. */
  perInput?: TimingPerInput[];
}

export interface BuildGpu {
  name: string;
  /** "9.0" */
  computeCapability: string;
  /** NVIDIA kernel driver version ("580.159.04"), from /proc/driver/nvidia/version; null when unreadable. */
  driverVersion: string | null;
  /** CUDA version the driver supports (cuDriverGetVersion, "13.0"); null when unknown. */
  cudaDriverVersion: string | null;
  /** CUDA runtime torch was built with (torch.version.cuda, "13.0"). */
  cudaRuntime: string | null;
  /** GPUs visible to the build (1 when the worker pins the job to one GPU with CUDA_VISIBLE_DEVICES). */
  visibleDevices: number;
  /** CUDA_VISIBLE_DEVICES as the job saw it; null when unset. */
  cudaVisibleDevices: string | null;
}

/**
 * Whether the build host built the artifact a second time and compared the parts (issue 17, item 4; the compilation's
 * `reproduce`). The worker writes it, never the driver: `{ checked: false }` when the compilation did not ask,
 * `{ checked: true, builds: 2, identical: true }` when a second sandboxed driver run, in a fresh job folder with
 * fresh caches, gave every part (code and weights) with the same sha256. A difference fails the build with
 * BUILD_NOT_REPRODUCIBLE, so a published manifest never says `identical: false`. It is the build host's claim, like
 * `verification` (docs/security.md). Absent in manifests written before it existed: not checked.
 */
export type ArtifactReproduction = { checked: false } | { checked: true; builds: number; identical: boolean };

/** Why a build named a code donor but compiled its code anew (kiln_driver/reuse.py). */
export type ReuseFallbackCode =
  'DONOR_NOT_REUSABLE' | 'DONOR_OTHER_RECIPE' | 'CODEGEN_FAILED' | 'NO_WEIGHTS' | 'SOURCES_DIFFER';

/**
 * A weights-only update (issue 17): the job named an earlier artifact's code part. `reused`: the code part is the
 * donor's, byte for byte (parts[0].sha256 === codeFrom), and only the weights are new; the artifact was verified
 * and timed like any build. Otherwise `fallback` says why the code was compiled anew.
 */
export interface ArtifactReuse {
  codeFrom: string;
  donorCacheKey: string;
  reused: boolean;
  fallback: { code: ReuseFallbackCode; message: string } | null;
  /** The code generation without C++ compile (also spent on a fallback; included in build.compileSeconds). */
  codegenSeconds: number;
}

/** An inductor cache archive (a zip of the cache folder), by content. */
export interface InductorCacheArchive {
  sha256: string;
  bytes: number;
}

/**
 * Per-tenant inductor caches (issue 17 item 3): the cache of the build's scope (tenant, target, recipe hash) restored
 * before compiling (the orchestrator checks it is the one it offered), and the one this build stored for the next.
 * `ignored`: why an offered cache was not restored (the build ran without it). A cache never changes the code.
 */
export interface ArtifactInductorCache {
  restored: InductorCacheArchive | null;
  stored: InductorCacheArchive | null;
  ignored?: string;
}

export interface ArtifactManifest {
  manifestVersion: typeof MANIFEST_VERSION;
  /**
   * The tenant it was built for. Signed with the rest, so a device can check that an artifact belongs to the
   * tenant of the version it resolved (with `modelContentHash`, against the version's signed portable manifest).
   * Absent in manifests written before it existed.
   */
  tenantId?: string;
  target: string;
  recipeHash: string;
  modelContentHash: string;
  cacheKey: string;
  format: 'aoti-package-parts';
  /** What the artifact computes in (the recipe's precision; 'fp32' for all CPU targets). */
  precision: ArtifactPrecision;
  parts: ArtifactPart[];
  requires: ArtifactRequirements;
  toolchain: ArtifactToolchain;
  isaCheck: IsaCheckResult;
  inputRanges: InputRanges;
  verification: VerificationResult;
  timing: TimingResult;
  /** Whether the parts were reproduced by a second build (absent in manifests written before it existed). */
  reproduction?: ArtifactReproduction;

  /** Present when the job named a code donor (absent in other manifests and in those written before it). */
  reuse?: ArtifactReuse;
  /** Present when the worker gave the job a cache scope (absent in other manifests and in those written before it). */
  inductorCache?: ArtifactInductorCache;
  build: {
    compileSeconds: number;
    host: { cpuModel: string; x86Level: number | null; gpuName: string | null; driverVersion: string | null };
    /**
     * The GPU the artifact was built and verified on, as the driver itself saw it (null for CPU builds). The
     * kernels are compiled for exactly this compute capability. Absent in manifests written before it existed.
     */
    gpu?: BuildGpu | null;
    /** What the sandbox enforced for this compile (network off, memory limit, uid, ...). */
    sandbox: Record<string, JsonValue>;
    finishedAt: string;
  };
}
