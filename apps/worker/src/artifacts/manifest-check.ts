import { type ArtifactManifest, MANIFEST_VERSION } from '@kiln/contracts';
import type { CompileRecipe, TargetRequirement } from '@kiln/targets';

/** What a manifest must say about the build it came from. */
export interface ManifestExpectation {
  tenantId?: string;
  targetId: string;
  recipe: CompileRecipe;
  recipeHash: string;
  modelContentHash: string;
  cacheKey: string;
  requires: TargetRequirement;
  /**
   * Whether the compilation asked for a reproduction check. The orchestrator passes it: the manifest must then say
   * `reproduction.checked` the same, and a checked one `identical: true`. Undefined (the build host reading its
   * driver's manifest, before the worker writes the field): only the field's shape is checked, when present.
   */
  reproduce?: boolean;
  /**
   * The sha256 of the inductor cache the build's grant offered, null when it offered none: a manifest's
   * `inductorCache.restored` must be that one. Undefined (the build host reading its driver's manifest): only the
   * field's shape is checked, when present.
   */
  offeredInductorCache?: string | null;
}

/** Most parts an artifact may list: today two (code + weights); room for per-tensor weights, not for abuse. */
export const MAX_MANIFEST_PARTS = 64;
const SHA256_HEX = /^[0-9a-f]{64}$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Checks a manifest written by untrusted code (the driver in its sandbox, then the build host that hands it back)
 * against the build it claims to be: every identifying field is the build's, what it needs is the target's or
 * stricter, and its parts are well formed. Both sides run it: the build host before it uploads anything, the
 * orchestrator again before it signs (it trusts nothing the host says). Throws an Error saying what is wrong.
 */
export function checkManifest(m: unknown, job: ManifestExpectation): ArtifactManifest {
  if (!isObject(m)) throw new Error('manifest.json is not an object');
  if (m.manifestVersion !== MANIFEST_VERSION) throw new Error(`manifestVersion is ${String(m.manifestVersion)}`);
  const expect: [string, unknown][] = [
    ['target', job.targetId],
    ['recipeHash', job.recipeHash],
    ['modelContentHash', job.modelContentHash],
    ['cacheKey', job.cacheKey],
    ...(job.tenantId !== undefined ? ([['tenantId', job.tenantId]] as [string, unknown][]) : []),
  ];
  for (const [key, value] of expect) {
    if (m[key] !== value)
      throw new Error(`manifest ${key} is ${JSON.stringify(m[key])}, the job says ${JSON.stringify(value)}`);
  }
  for (const key of ['requires', 'toolchain', 'isaCheck', 'verification', 'timing', 'build']) {
    if (!isObject(m[key])) throw new Error(`manifest.${key} is missing`);
  }
  // What the artifact computes in and what it needs must be the job's: a bf16 artifact labelled fp32 would be
  // handed to devices that never accepted bf16, one labelled for another GPU or a lower CPU level would crash.
  const precision = job.recipe.precision ?? 'fp32';
  if ((m.precision ?? 'fp32') !== precision) {
    throw new Error(`manifest precision is ${JSON.stringify(m.precision)}, the recipe says ${precision}`);
  }
  m.precision = precision; // drivers from before the field wrote none: those builds were fp32
  const requires = m.requires as Record<string, unknown>;
  if (requires.computeCapability !== job.requires.computeCapability) {
    throw new Error(
      `manifest requires compute capability ${JSON.stringify(requires.computeCapability)}, the target ${JSON.stringify(job.requires.computeCapability)}`,
    );
  }
  if (requires.os !== job.requires.os || requires.arch !== job.requires.arch) {
    throw new Error(
      `manifest requires ${JSON.stringify(requires.os)}/${JSON.stringify(requires.arch)}, the target is ${job.requires.os}/${job.requires.arch}`,
    );
  }
  checkEmulation(m, job);
  const level = requires.x86Level;
  if (level !== null && (typeof level !== 'number' || !Number.isInteger(level))) {
    throw new Error(`manifest requires x86Level ${JSON.stringify(level)}`);
  }
  if (job.requires.x86Level !== null && (level === null || level < job.requires.x86Level)) {
    throw new Error(`manifest requires x86-64-v${String(level)}, below the target's v${job.requires.x86Level}`);
  }
  const parts = m.parts;
  if (!Array.isArray(parts) || parts.length === 0) throw new Error('manifest lists no parts');
  if (parts.length > MAX_MANIFEST_PARTS) throw new Error(`manifest lists ${parts.length} parts`);
  if (parts.filter((p) => isObject(p) && p.role === 'code').length !== 1) {
    throw new Error('manifest must list exactly one code part');
  }
  const seen = new Set<string>();
  for (const part of parts as unknown[]) {
    if (!isObject(part)) throw new Error('a part is not an object');
    const { role, sha256, size, entry } = part;
    if (role !== 'code' && role !== 'weights') throw new Error(`part role ${JSON.stringify(role)}`);
    if (typeof sha256 !== 'string' || !SHA256_HEX.test(sha256))
      throw new Error(`part sha256 ${JSON.stringify(sha256)}`);
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0)
      throw new Error(`part ${sha256}: bad size`);
    if (role === 'weights' && typeof entry !== 'string') throw new Error(`weights part ${sha256} has no entry`);
    if (part.tensors !== undefined) {
      if (role !== 'weights') throw new Error(`code part ${sha256} lists tensors`);
      checkTensorIndex(part.tensors, size, sha256);
    }
    if (seen.has(sha256)) throw new Error(`part ${sha256} is listed twice`);
    seen.add(sha256);
  }
  checkReproduction(m.reproduction, job.reproduce);
  checkInductorCache(m.inductorCache, job.offeredInductorCache);
  return m as unknown as ArtifactManifest;
}

/**
 * A cross build (recipe.cross) is verified under emulation with the target architecture's torch, and emulation says
 * nothing of speed: its manifest must say it was emulated, require that torch, and claim no speed figure (a build
 * host that invented one would get its artifact ranked by it). A native build must not claim emulation.
 */
function checkEmulation(m: Record<string, unknown>, job: ManifestExpectation): void {
  const verification = m.verification as Record<string, unknown>;
  const timing = m.timing as Record<string, unknown>;
  const requires = m.requires as Record<string, unknown>;
  const cross = job.recipe.cross;
  if (!cross) {
    if (verification.emulated !== undefined) throw new Error('manifest of a native build says it was emulated');
    if (timing.method === 'unmeasured') throw new Error('manifest of a native build has no speed measurement');
    return;
  }
  const emulated = verification.emulated;
  if (!isObject(emulated) || emulated.arch !== cross.arch || emulated.torch !== cross.targetTorch) {
    throw new Error(
      `manifest of a ${cross.arch} cross build must say it was verified under emulation with torch ${cross.targetTorch}`,
    );
  }
  if (requires.torch !== cross.targetTorch) {
    throw new Error(
      `manifest requires torch ${JSON.stringify(requires.torch)}, the cross build links against ${cross.targetTorch}`,
    );
  }
  const claims = ['speedup', 'eagerMs', 'compiledMs'].filter((k) => timing[k] !== 0);
  if (timing.method !== 'unmeasured' || claims.length > 0 || timing.speedupCi !== undefined) {
    throw new Error('manifest of a cross build verified under emulation claims a speed measurement');
  }
}

/** Most tensors one weights part may list (the schema's maxItems): a bigger index would make the manifest too big. */
export const MAX_PART_TENSORS = 16384;
const TENSOR_NAME = /^[A-Za-z0-9_.]{1,400}$/;

/**
 * A weights part's per-tensor index (issue 17, item 1): by offset, none overlapping, inside the part. A device copies
 * the tensors it holds into these ranges and asks the server for the others; it checks the whole part's sha256 in
 * the end, so a wrong index costs bandwidth, but one pointing outside the part must never be signed.
 */
function checkTensorIndex(tensors: unknown, partSize: number, sha256: string): void {
  if (!Array.isArray(tensors)) throw new Error(`weights part ${sha256}: tensors is not a list`);
  if (tensors.length > MAX_PART_TENSORS) throw new Error(`weights part ${sha256} lists ${tensors.length} tensors`);
  let end = 0;
  for (const [i, t] of (tensors as unknown[]).entries()) {
    const where = `weights part ${sha256}, tensors[${i}]`;
    if (!isObject(t)) throw new Error(`${where} is not an object`);
    const { name, offset, size } = t;
    if (typeof name !== 'string' || !TENSOR_NAME.test(name)) throw new Error(`${where}: bad name`);
    if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0)
      throw new Error(`${where}: bad offset`);
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 1) throw new Error(`${where}: bad size`);
    if (typeof t.sha256 !== 'string' || !SHA256_HEX.test(t.sha256)) throw new Error(`${where}: bad sha256`);
    if (offset < end) throw new Error(`${where} starts at ${offset}, inside the tensor before it`);
    end = offset + size;
    if (end > partSize) throw new Error(`${where} ends at ${end}, past the part's ${partSize} bytes`);
  }
}

/** `reproduction` is absent, `{ checked: false }` or `{ checked: true, builds >= 2, identical }`, and says what was asked. */
function checkReproduction(r: unknown, reproduce: boolean | undefined): void {
  if (r === undefined) {
    // A build host from before the field wrote none; it cannot have checked what was asked.
    if (reproduce === true) throw new Error('manifest.reproduction is missing, and the compilation asked for it');
    return;
  }
  if (!isObject(r) || typeof r.checked !== 'boolean') throw new Error('manifest.reproduction is malformed');
  if (r.checked) {
    if (typeof r.builds !== 'number' || !Number.isInteger(r.builds) || r.builds < 2) {
      throw new Error(`manifest.reproduction.builds is ${JSON.stringify(r.builds)}`);
    }
    if (typeof r.identical !== 'boolean') throw new Error('manifest.reproduction.identical is not a boolean');
  }
  if (reproduce === undefined) return;
  if (r.checked !== reproduce) {
    throw new Error(
      `manifest.reproduction.checked is ${String(r.checked)}, the compilation asked ${String(reproduce)}`,
    );
  }
  // A difference fails the build on the host (BUILD_NOT_REPRODUCIBLE): nothing that says so is ever signed.
  if (r.checked && r.identical !== true) throw new Error('manifest.reproduction says the rebuild differed');
}

/**
 * `inductorCache` is absent or `{ restored, stored, ignored? }`, each archive null or `{ sha256, bytes }`, and the
 * restored one is the cache the grant offered: a build that claims another tenant's (or any other) cache is refused.
 */
function checkInductorCache(c: unknown, offered: string | null | undefined): void {
  if (c === undefined) return;
  if (!isObject(c)) throw new Error('manifest.inductorCache is malformed');
  for (const key of ['restored', 'stored'] as const) {
    const a = c[key];
    if (a === null) continue;
    if (!isObject(a) || typeof a.sha256 !== 'string' || !SHA256_HEX.test(a.sha256)) {
      throw new Error(`manifest.inductorCache.${key} is malformed`);
    }
    if (typeof a.bytes !== 'number' || !Number.isSafeInteger(a.bytes) || a.bytes < 1) {
      throw new Error(`manifest.inductorCache.${key}.bytes is ${JSON.stringify(a.bytes)}`);
    }
  }
  if (c.ignored !== undefined && typeof c.ignored !== 'string') throw new Error('manifest.inductorCache.ignored');
  const restored = (c.restored as { sha256: string } | null)?.sha256 ?? null;
  if (offered !== undefined && restored !== null && restored !== offered) {
    throw new Error(`manifest.inductorCache.restored is ${restored}, the build was offered ${offered ?? 'no cache'}`);
  }
}
