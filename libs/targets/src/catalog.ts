import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';

/**
 * The target catalog: each target is a named, versioned build recipe plus the hardware it requires.
 * A recipe is the whole contract between Kiln and the compile driver: it pins the toolchain (torch
 * build and C++ compiler) and every inductor option. Changing anything in it must bump recipeVersion,
 * which changes the recipe hash and therefore every cache key built from it.
 */
/**
 * Numeric precision the artifact computes in. Absent means 'fp32' (the portable graph's own precision):
 * leaving it out of fp32 recipes keeps their recipe hashes, and so every existing cache key, unchanged.
 */
export type RecipePrecision = 'fp32' | 'bf16' | 'fp16';

export interface CompileRecipe {
  targetId: string;
  recipeVersion: number;
  device: 'cpu' | 'cuda';
  /**
   * A reduced precision ('bf16', 'fp16') makes the driver cast the program's floating weights, buffers and
   * inputs before compiling; the artifact keeps the portable graph's interface (inputs and outputs in their
   * original dtypes) and is verified against the fp32 portable graph with `tolerance`. Such artifacts change
   * numerics, so the resolver hands them out only to devices that accept that precision.
   */
  precision?: RecipePrecision;
  toolchain: {
    /** Exact torch build the worker must have, e.g. "2.13.0+cpu". */
    torch: string;
    /** C++ compiler inductor must use (inductor's cpp.cxx); never inherited from $CXX. */
    cxx: string;
  };
  /**
   * A cross build: the worker's torch (toolchain.torch, on the build host's architecture) generates the code, the
   * cross compiler (toolchain.cxx) builds it against the TARGET architecture's torch (`targetTorch`, the build the
   * artifact is linked against and requires on the device), and the verifier runs it under user-mode emulation
   * (qemu) with that torch. Emulation proves correctness, not speed: such artifacts carry no speed figure.
   */
  cross?: CrossBuild;
  inductorConfigs: Record<string, string | number | boolean>;
  /**
   * Register classes that must not appear in the generated `.so` (checked with objdump). Whatever the list,
   * the driver derives the x86-64 level the host code really needs from the disassembly and records it as
   * the artifact's `requires.x86Level`.
   */
  forbiddenRegisters: string[];
  /** Tolerances of the compiled-vs-portable-graph check. */
  tolerance: { atol: number; rtol: number };
}

/** How a cross target is built and verified (see CompileRecipe.cross). */
export interface CrossBuild {
  /** The machine the artifact runs on ("aarch64"). */
  arch: 'aarch64';
  /** The machine that builds it ("x86_64"). */
  buildArch: 'x86_64';
  /** The toolchain folder the worker installs for it (`$KILN_HOME/toolchains/<name>`, scripts/setup.sh --cross). */
  toolchainName: string;
  /** Exact torch build of the target architecture the artifact links against and is verified with. */
  targetTorch: string;
  /** Inductor's vector ISA for the target, forced (its own check would dlopen target code on the build host). */
  vecIsa: 'neon';
  /** The CPU qemu emulates while verifying. */
  emulatedCpu: string;
}

export interface TargetRequirement {
  os: 'linux';
  arch: 'x86_64' | 'aarch64';
  /** Minimum x86-64 level the device CPU must reach. */
  x86Level: 2 | 3 | 4 | null;
  /** Exact compute capability of the device GPU. */
  computeCapability: string | null;
}

export interface TargetDefinition {
  id: string;
  title: string;
  description: string;
  requires: TargetRequirement;
  recipe: CompileRecipe;
}

/** CPU torch the x86 build workers run (pip install torch==2.13.0 takes the CPU wheel on these hosts). */
export const CPU_TORCH_BUILD = '2.13.0+cpu';

// Options every CPU target shares, and why:
// - cpp.dynamic_threads: otherwise scratch buffers are sized to the BUILD host's thread count and the
//   artifact corrupts memory on a device with more cores.
// - freezing + no weight prepack: constant folding gives ~1.5x, while prepacked oneDNN weights would tie
//   the artifact to the build CPU's ISA.
// - weights outside the .so as a binary blob: the blob becomes its own content-addressed part.
const CPU_COMMON = {
  'cpp.dynamic_threads': true,
  freezing: true,
  'cpp.weight_prepack': false,
  'aot_inductor.package_constants_in_so': false,
  'aot_inductor.package_constants_on_disk_format': 'binary_blob',
} as const;

function cpuTarget(
  level: 2 | 3 | 4,
  simdlen: number,
  forbiddenRegisters: string[],
  title: string,
  description: string,
): TargetDefinition {
  const id = `linux-x86_64-v${level}`;
  return {
    id,
    title,
    description,
    requires: { os: 'linux', arch: 'x86_64', x86Level: level, computeCapability: null },
    recipe: {
      targetId: id,
      recipeVersion: 1,
      device: 'cpu',
      toolchain: { torch: CPU_TORCH_BUILD, cxx: 'g++' },
      inductorConfigs: { 'cpp.march': `x86-64-v${level}`, 'cpp.simdlen': simdlen, ...CPU_COMMON },
      forbiddenRegisters,
      tolerance: { atol: 1e-4, rtol: 1e-3 },
    },
  };
}

export const CPU_TARGETS: readonly TargetDefinition[] = [
  // Inductor has no 128-bit x86 vector ISA, so v2 builds scalar kernels (simdlen 0); the compiler may
  // still auto-vectorise with SSE4.2, but never with AVX registers.
  cpuTarget(2, 0, ['ymm', 'zmm'], 'x86-64-v2 (SSE4.2)', 'Any x86-64 CPU since ~2009 (Nehalem, Bulldozer).'),
  cpuTarget(3, 256, ['zmm'], 'x86-64-v3 (AVX2/FMA)', 'Haswell (2013) and later, Zen 1 and later.'),
  cpuTarget(4, 512, [], 'x86-64-v4 (AVX-512)', 'Skylake-SP and later Xeons, Zen 4 and later.'),
];

/**
 * The CUDA torch the GPU build workers run. torch 2.11 has no `cpp.march`: the host-side C++ of a CUDA artifact
 * (the wrapper `.so` that launches the kernels) is compiled with -march=native for the build host's CPU, so the
 * driver derives `requires.x86Level` from its machine code (AVX-512 on the H100 hosts seen so far, i.e. v4).
 */
export const CUDA_TORCH_BUILD = '2.11.0+cu130';

// Options every CUDA target shares, and why:
// - freezing: constant folding (batch norm into conv weights, transposed weights precomputed); on CUDA there is
//   no CPU-ISA-specific weight prepacking to worry about.
// - weights outside the .so as a binary blob, as for the CPU targets (checked on torch 2.11 + H100): one
//   content-addressed weights part, loaded by the AOTI loader from beside the .so.
// - no cpp.march (unknown to torch 2.11, the driver would refuse it); the required x86 level is derived instead.
const CUDA_COMMON = {
  freezing: true,
  'aot_inductor.package_constants_in_so': false,
  'aot_inductor.package_constants_on_disk_format': 'binary_blob',
} as const;

/** Compute capability "9.0" → "sm90", the suffix of the target id. */
export function smName(computeCapability: string): string {
  return `sm${computeCapability.replace('.', '')}`;
}

function cudaTarget(computeCapability: string, gpus: string, precision: 'fp32' | 'bf16' = 'fp32'): TargetDefinition {
  const base = `linux-x86_64-cuda-${smName(computeCapability)}`;
  const id = precision === 'fp32' ? base : `${base}-${precision}`;
  const recipe: CompileRecipe = {
    targetId: id,
    recipeVersion: 1,
    device: 'cuda',
    toolchain: { torch: CUDA_TORCH_BUILD, cxx: 'g++' },
    inductorConfigs: { ...CUDA_COMMON },
    forbiddenRegisters: [],
    // fp32: the verifier turns TF32 off (torch.backends.{cuda.matmul,cudnn}.allow_tf32 = False) for both the
    // portable graph and the artifact, so fp32 means IEEE fp32 and the CPU targets' tolerance holds (max abs
    // error ~1e-7 on the fixtures). bf16 keeps 8 bits of mantissa (relative step 2^-8 ≈ 0.004) and its errors
    // add up over layers: compared with the fp32 portable graph, outputs of order 1 differ by up to a few 1e-2.
    tolerance: precision === 'fp32' ? { atol: 1e-4, rtol: 1e-3 } : { atol: 1e-1, rtol: 5e-2 },
  };
  if (precision !== 'fp32') recipe.precision = precision;
  return {
    id,
    title:
      precision === 'fp32'
        ? `CUDA sm_${smName(computeCapability).slice(2)} (${gpus})`
        : `CUDA sm_${smName(computeCapability).slice(2)}, ${precision} (${gpus})`,
    description:
      precision === 'fp32'
        ? `GPUs of compute capability ${computeCapability} (${gpus}); built and verified on such a GPU.`
        : `GPUs of compute capability ${computeCapability} (${gpus}), computing in ${precision}: faster, ` +
          `numerics differ from fp32 (verified with a ${precision} tolerance); resolved only for devices that ` +
          `accept ${precision}.`,
    requires: { os: 'linux', arch: 'x86_64', x86Level: null, computeCapability },
    recipe,
  };
}

/**
 * GPU targets. Each needs a build worker with a GPU of exactly that compute capability: Triton compiles the
 * kernels for the build GPU (sm_90a on Hopper, which runs on 9.0 only). Only sm90 (H100/H200) is built here;
 * sm80 (A100), sm86 (A10/A40/RTX 30xx) and sm89 (L4/L40S/RTX 40xx) are one worker pool each, planned in
 * infra/README.md: adding one is a line below plus that pool.
 */
export const CUDA_TARGETS: readonly TargetDefinition[] = [
  cudaTarget('9.0', 'H100, H200'),
  cudaTarget('9.0', 'H100, H200', 'bf16'),
];

/**
 * The aarch64 torch the cross builds link against: PyPI's only aarch64 torch 2.13.0 is a CUDA build. Its CPU
 * code is what a CPU artifact calls, so the artifact requires torch 2.13.0 on the device, CUDA build or not.
 */
export const AARCH64_TORCH_BUILD = '2.13.0+cu130';

/**
 * ARM targets, cross-built by the x86 workers that installed the aarch64 toolchain (scripts/setup.sh --cross) and
 * verified under qemu-aarch64 (docs/cross-targets.md). armv8-a with NEON (128-bit vectors) runs on every 64-bit
 * ARM Linux device (Graviton, Jetson, Raspberry Pi 4/5, Ampere); the ISA check forbids SVE registers.
 */
export const AARCH64_TARGETS: readonly TargetDefinition[] = [
  {
    id: 'linux-aarch64',
    title: 'aarch64 (armv8-a, NEON)',
    description:
      'Any 64-bit ARM Linux device (Graviton, Ampere, Jetson, Raspberry Pi 4/5). Cross-built on x86 and verified ' +
      'under qemu-aarch64: correct, speed not measured.',
    requires: { os: 'linux', arch: 'aarch64', x86Level: null, computeCapability: null },
    recipe: {
      targetId: 'linux-aarch64',
      recipeVersion: 1,
      device: 'cpu',
      toolchain: { torch: CPU_TORCH_BUILD, cxx: 'aarch64-linux-gnu-g++' },
      cross: {
        arch: 'aarch64',
        buildArch: 'x86_64',
        toolchainName: 'linux-aarch64',
        targetTorch: AARCH64_TORCH_BUILD,
        vecIsa: 'neon',
        emulatedCpu: 'neoverse-n1',
      },
      inductorConfigs: { 'cpp.march': 'armv8-a', 'cpp.simdlen': 128, ...CPU_COMMON },
      forbiddenRegisters: ['sve'],
      tolerance: { atol: 1e-4, rtol: 1e-3 },
    },
  },
];

/** Every target of the catalog: the x86 CPU targets, the GPU targets, then the cross-built ARM targets. */
export const TARGETS: readonly TargetDefinition[] = [...CPU_TARGETS, ...CUDA_TARGETS, ...AARCH64_TARGETS];

/** The precision a recipe computes in ('fp32' when it names none). */
export function recipePrecision(recipe: CompileRecipe): RecipePrecision {
  return recipe.precision ?? 'fp32';
}

export function findTarget(id: string): TargetDefinition | undefined {
  return TARGETS.find((t) => t.id === id);
}

export function taskQueueFor(targetId: string): string {
  return `build.${targetId}`;
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Hash of the recipe's canonical JSON (RFC 8785), so key order never changes it. */
export function recipeHash(recipe: CompileRecipe): string {
  return sha256Hex(canonicalize(recipe) ?? '');
}

/**
 * Identical model content + target + recipe (which pins the toolchain) ⇒ identical key ⇒ never compiled
 * twice. The tenant is part of the key on purpose: sharing compiled artifacts across tenants would tell
 * one tenant what another uploaded, and let a crafted upload poison another tenant's cache.
 */
export function cacheKey(input: { tenantId: string; modelContentHash: string; recipe: CompileRecipe }): string {
  return sha256Hex(
    canonicalize({
      v: 1,
      tenant: input.tenantId,
      model: input.modelContentHash,
      target: input.recipe.targetId,
      recipe: recipeHash(input.recipe),
    }) ?? '',
  );
}
