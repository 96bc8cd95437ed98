import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';

/**
 * The target catalog: each target is a named, versioned build recipe plus the hardware it requires.
 * A recipe is the whole contract between Kiln and the compile driver: it pins the toolchain (torch
 * build and C++ compiler) and every inductor option. Changing anything in it must bump recipeVersion,
 * which changes the recipe hash and therefore every cache key built from it.
 */
export interface CompileRecipe {
  targetId: string;
  recipeVersion: number;
  device: 'cpu' | 'cuda';
  toolchain: {
    /** Exact torch build the worker must have, e.g. "2.13.0+cpu". */
    torch: string;
    /** C++ compiler inductor must use (inductor's cpp.cxx); never inherited from $CXX. */
    cxx: string;
  };
  inductorConfigs: Record<string, string | number | boolean>;
  /** Register classes that must not appear in the generated `.so` (checked with objdump). */
  forbiddenRegisters: string[];
  /** Tolerances of the compiled-vs-portable-graph check. */
  tolerance: { atol: number; rtol: number };
}

export interface TargetRequirement {
  os: 'linux';
  arch: 'x86_64';
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

export const TARGETS: readonly TargetDefinition[] = [
  // Inductor has no 128-bit x86 vector ISA, so v2 builds scalar kernels (simdlen 0); the compiler may
  // still auto-vectorise with SSE4.2, but never with AVX registers.
  cpuTarget(2, 0, ['ymm', 'zmm'], 'x86-64-v2 (SSE4.2)', 'Any x86-64 CPU since ~2009 (Nehalem, Bulldozer).'),
  cpuTarget(3, 256, ['zmm'], 'x86-64-v3 (AVX2/FMA)', 'Haswell (2013) and later, Zen 1 and later.'),
  cpuTarget(4, 512, [], 'x86-64-v4 (AVX-512)', 'Skylake-SP and later Xeons, Zen 4 and later.'),
];

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
