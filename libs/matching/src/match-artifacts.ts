import type { ArtifactManifest, ArtifactPrecision, JsonValue } from '@kiln/contracts';
import { describeDeviceX86Level, describeX86Level, deviceX86Level, missingX86Flags } from './cpu-level.js';
import type { DeviceFingerprint } from './fingerprint.js';
import {
  compareDottedVersions,
  cudaMajorMinor,
  normalizeComputeCapability,
  normalizeDottedVersion,
  parseDottedVersion,
  parseTorchVersion,
} from './versions.js';

/** One compiled artifact the resolver may hand out, with the parts of its manifest that matter here. */
export interface Candidate {
  artifactId: string;
  targetId: string;
  /** `precision` is absent from manifests written before it existed: those are fp32. */
  manifest: Pick<ArtifactManifest, 'requires' | 'verification' | 'isaCheck' | 'timing'> & {
    precision?: ArtifactPrecision | null;
    /** What the build sandbox enforced (`build.sandbox`); only its `mode` and `missing` matter here. */
    build?: { sandbox?: Record<string, JsonValue> };
  };
}

/** Every precision an artifact may compute in. */
export const ARTIFACT_PRECISIONS: readonly ArtifactPrecision[] = ['fp32', 'bf16', 'fp16'];
/** What a request accepts when it says nothing: the portable graph's own fp32 numerics only. */
export const DEFAULT_ACCEPT_PRECISIONS: readonly ArtifactPrecision[] = ['fp32'];

export interface ResolveOptions {
  /**
   * Relative speedup difference treated as noise (default 0.15): an artifact slower than the fastest compatible
   * one by less than this factor counts as equally fast (see asFastAs). 0 ranks by exact measured speedup.
   */
  speedupTolerance?: number;
  /**
   * Precisions the caller accepts (default ['fp32']). A reduced-precision artifact (bf16, fp16) computes
   * different numbers than the portable graph, so it is only ever chosen when its precision is listed here.
   * fp32 is always accepted: it is what the portable fallback computes anyway.
   */
  acceptPrecisions?: readonly ArtifactPrecision[];
  /**
   * Accept artifacts built without the full build sandbox (a worker started with KILN_SANDBOX=insecure-local;
   * default false). A build that could escape its sandbox could have tampered with its own artifact, so these
   * are for the developer's own machine only: devices never get one unless their request asks.
   */
  acceptInsecureBuilds?: boolean;
}

export interface RankedArtifact {
  artifactId: string;
  targetId: string;
  /** Measured speedup over the portable graph on the build host; 0 when the manifest has no valid one. */
  speedup: number;
}

export interface Resolution {
  chosen: (RankedArtifact & { reasons: string[] }) | null;
  /** Always present: the portable graph (the original .pt2, run with torch.export.load) is always valid. */
  fallback: { kind: 'portable'; reason: string };
  /** Every compatible candidate, best first. */
  ranked: RankedArtifact[];
  /** Every incompatible candidate with every rule it fails, sorted by artifactId. */
  rejected: { artifactId: string; targetId: string; reasons: string[] }[];
}

export interface CandidateCheck {
  compatible: boolean;
  /** What holds, for explaining a choice ("glibc 2.36 ≥ 2.34"). */
  passed: string[];
  /** Every hard rule that fails, one reason each; empty when compatible. */
  failed: string[];
}

export const DEFAULT_SPEEDUP_TOLERANCE = 0.15;

const PORTABLE = 'run the portable graph (the original .pt2) with torch.export.load';

class RuleLog {
  readonly passed: string[] = [];
  readonly failed: string[] = [];
  pass(reason: string): void {
    this.passed.push(reason);
  }
  fail(reason: string): void {
    this.failed.push(reason);
  }
}

function fmt(n: number): string {
  return Number.isFinite(n) ? String(Number(n.toPrecision(3))) : String(n);
}

function checkPlatform(fp: DeviceFingerprint, req: Candidate['manifest']['requires'], log: RuleLog): void {
  if (fp.os === req.os && fp.arch === req.arch) {
    log.pass(`${req.os}/${req.arch} matches`);
    return;
  }
  if (fp.os !== req.os) log.fail(`built for ${req.os}; this device runs ${fp.os}`);
  if (fp.arch !== req.arch) log.fail(`built for ${req.arch} CPUs; this device is ${fp.arch}`);
}

/**
 * Precision: reduced-precision artifacts change numerics (bf16 keeps 8 bits of mantissa), so they are opt-in per
 * request. An unknown precision is refused: its numerics cannot be described to the caller.
 */
function checkPrecision(manifest: Candidate['manifest'], accept: ReadonlySet<string>, log: RuleLog): void {
  const precision = manifest.precision ?? 'fp32';
  if (!ARTIFACT_PRECISIONS.includes(precision)) {
    log.fail(`its manifest names an unknown precision ${JSON.stringify(precision)}`);
  } else if (precision === 'fp32') {
    return;
  } else if (accept.has(precision)) {
    log.pass(`computes in ${precision} (reduced precision), which this request accepts`);
  } else {
    log.fail(
      `computes in ${precision}: reduced precision changes the numbers it returns (verified only to a ${precision} ` +
        `tolerance against the fp32 portable graph); this request accepts ${[...accept].sort().join(', ')} — ` +
        `list "${precision}" in acceptPrecisions to allow it`,
    );
  }
}

/**
 * Build sandbox: an artifact whose manifest records the insecure-local opt-out was built by a worker that lacked
 * some wall of the sandbox (no network namespace, no memory limit, …), so the model it compiled could have reached
 * the host or altered the artifact. Refused unless the request accepts insecure builds. Manifests written before
 * the sandbox recorded its mode carry none and are judged by their other rules.
 */
function checkSandbox(manifest: Candidate['manifest'], acceptInsecure: boolean, log: RuleLog): void {
  const sandbox = manifest.build?.sandbox;
  if (!sandbox || sandbox.mode !== 'insecure-local') return;
  const missing = Array.isArray(sandbox.missing)
    ? sandbox.missing
        .map((m) => (m && typeof m === 'object' && !Array.isArray(m) && typeof m.wall === 'string' ? m.wall : null))
        .filter((w): w is string => w !== null)
    : [];
  const what = `built without the full build sandbox (KILN_SANDBOX=insecure-local; missing: ${missing.join(', ') || 'unknown'})`;
  if (acceptInsecure) log.pass(`${what}; this request accepts insecure builds`);
  else {
    log.fail(
      `${what}: a model compiled there could have tampered with its own artifact; ` +
        'set acceptInsecureBuilds to allow it (development only)',
    );
  }
}

function checkValidation(manifest: Candidate['manifest'], log: RuleLog): void {
  const v = manifest.verification;
  if (v?.passed === true) {
    log.pass(`verified against the portable graph (max abs error ${fmt(v.maxAbsError)})`);
  } else {
    const detail =
      v && Number.isFinite(v.maxAbsError) ? ` (max abs error ${fmt(v.maxAbsError)}, atol ${fmt(v.atol)})` : '';
    log.fail(`not verified: its outputs were not shown to match the portable graph${detail}`);
  }
  const isa = manifest.isaCheck;
  if (isa?.passed === true) {
    log.pass('ISA check passed');
  } else {
    const used = (isa?.forbidden ?? []).filter((r) => (isa?.counts?.[r] ?? 0) > 0);
    const detail = used.length > 0 ? `: uses forbidden ${used.map((r) => `${r} (${isa.counts[r]}x)`).join(', ')}` : '';
    log.fail(`failed the ISA check${detail}; it could crash with an illegal instruction`);
  }
}

/**
 * torch: the AOTInductor ABI is tied to the exact torch release, so the public versions (X.Y.Z plus any
 * pre/dev/post segment, without the local tag) must be equal. A GPU artifact also needs a CUDA build
 * of torch for the same CUDA major.minor as the build's, read from its "+cuXYZ" local tag; a build
 * torch without such a tag cannot be proven compatible and is refused. A CPU artifact runs on a CPU or
 * CUDA build of the same release.
 */
function checkTorch(fp: DeviceFingerprint, req: Candidate['manifest']['requires'], log: RuleLog): void {
  const build = parseTorchVersion(req.torch);
  const device = parseTorchVersion(fp.torch.version);
  if (!build) {
    log.fail(`its manifest names an unreadable torch build ${JSON.stringify(req.torch)}`);
    return;
  }
  if (!device) {
    log.fail(`this device's torch version ${JSON.stringify(fp.torch.version)} is unreadable`);
    return;
  }
  const publicOk = build.public === device.public;
  if (!publicOk) {
    log.fail(
      `built with torch ${build.public} (${req.torch}); this device runs torch ${device.public} (${fp.torch.version}): compiled artifacts need the exact torch release`,
    );
  }
  if (req.computeCapability === null) {
    if (publicOk) {
      const onCuda = fp.torch.cuda !== null ? ' (a CPU artifact also runs on this CUDA build)' : '';
      log.pass(`torch ${device.public} matches the build (${req.torch})${onCuda}`);
    }
    return;
  }
  const deviceCuda = fp.torch.cuda === null ? null : cudaMajorMinor(fp.torch.cuda);
  if (build.cuda === null) {
    log.fail(
      `GPU artifact built with torch ${req.torch}, which does not name its CUDA version (+cuXYZ): the device's CUDA torch cannot be proven compatible`,
    );
  } else if (deviceCuda === null) {
    log.fail(
      `needs a CUDA ${build.cuda} build of torch (like ${build.public}+${build.local}); this device's torch ${fp.torch.version} is not a CUDA build`,
    );
  } else if (deviceCuda !== build.cuda) {
    log.fail(
      `needs torch built for CUDA ${build.cuda}; this device's torch ${fp.torch.version} is built for CUDA ${deviceCuda}`,
    );
  } else if (publicOk) {
    log.pass(`torch ${device.public} for CUDA ${deviceCuda} matches the build (${req.torch})`);
  }
}

/**
 * glibc: Kiln's Linux artifacts are linked against glibc (as torch's own wheels are), so a Linux artifact
 * needs a glibc device even when it names no versioned GLIBC symbol; with one, the device's glibc must
 * be at least that version.
 */
function checkLibc(fp: DeviceFingerprint, req: Candidate['manifest']['requires'], log: RuleLog): void {
  if (req.os !== 'linux' && req.glibc === null) return;
  const need = req.glibc === null ? 'glibc' : `glibc ≥ ${req.glibc}`;
  if (fp.libc.name !== 'glibc') {
    const have =
      fp.libc.name === 'unknown' ? 'an unknown libc' : `${fp.libc.name}${fp.libc.version ? ` ${fp.libc.version}` : ''}`;
    log.fail(`needs ${need}; this device's libc is ${have}`);
    return;
  }
  if (req.glibc === null) {
    log.pass('glibc present (no versioned glibc symbol needed)');
    return;
  }
  const needed = parseDottedVersion(normalizeDottedVersion(req.glibc) ?? '');
  if (!needed) {
    log.fail(`its manifest names an unreadable glibc requirement ${JSON.stringify(req.glibc)}`);
    return;
  }
  const have = fp.libc.version === null ? null : parseDottedVersion(fp.libc.version);
  if (!have) log.fail(`needs ${need}; this device did not report its glibc version`);
  else if (compareDottedVersions(have, needed) < 0) log.fail(`needs ${need}; this device has glibc ${fp.libc.version}`);
  else log.pass(`glibc ${fp.libc.version} ≥ ${req.glibc}`);
}

function checkLibstdcxx(fp: DeviceFingerprint, req: Candidate['manifest']['requires'], log: RuleLog): void {
  if (req.glibcxx === null) return;
  const needed = parseDottedVersion(normalizeDottedVersion(req.glibcxx) ?? '');
  if (!needed) {
    log.fail(`its manifest names an unreadable GLIBCXX requirement ${JSON.stringify(req.glibcxx)}`);
    return;
  }
  const need = `libstdc++ with GLIBCXX_${req.glibcxx}`;
  const have = fp.libstdcxx.glibcxx === null ? null : parseDottedVersion(fp.libstdcxx.glibcxx);
  if (!have) log.fail(`needs ${need}; this device did not report its libstdc++ (GLIBCXX) version`);
  else if (compareDottedVersions(have, needed) < 0) {
    log.fail(`needs ${need}; this device's libstdc++ provides up to GLIBCXX_${fp.libstdcxx.glibcxx}`);
  } else log.pass(`GLIBCXX ${fp.libstdcxx.glibcxx} ≥ ${req.glibcxx}`);
}

function checkCpuLevel(fp: DeviceFingerprint, req: Candidate['manifest']['requires'], log: RuleLog): void {
  const needed = req.x86Level;
  if (needed === null) return;
  if (!Number.isInteger(needed) || needed < 1 || needed > 4) {
    log.fail(`its manifest names an unknown x86-64 level ${JSON.stringify(needed)}`);
    return;
  }
  if (fp.arch !== 'x86_64') {
    log.fail(`needs an ${describeX86Level(needed)} CPU; this device is ${fp.arch}`);
    return;
  }
  const device = deviceX86Level(fp);
  if (device.level >= needed) {
    log.pass(`x86-64-v${needed} ≤ this CPU's ${describeDeviceX86Level(device)}`);
    return;
  }
  const missing = device.source === 'flags' ? `: missing ${missingX86Flags(fp.cpu.flags, needed).join(', ')}` : '';
  log.fail(`needs ${describeX86Level(needed)}; this CPU is ${describeDeviceX86Level(device)}${missing}`);
}

function checkGpu(fp: DeviceFingerprint, req: Candidate['manifest']['requires'], log: RuleLog): void {
  if (req.computeCapability === null) return;
  const needed = normalizeComputeCapability(req.computeCapability);
  if (!needed) {
    log.fail(`its manifest names an unreadable compute capability ${JSON.stringify(req.computeCapability)}`);
    return;
  }
  // Exact match only: AOTInductor builds cubins for the build GPU's own architecture (sm_90a code, for
  // instance, runs on 9.0 alone), so "newer" is not "compatible".
  const gpu = fp.gpus.find((g) => normalizeComputeCapability(g.computeCapability) === needed);
  if (gpu) {
    log.pass(`GPU ${gpu.name} has compute capability ${needed}`);
    return;
  }
  const have =
    fp.gpus.length === 0
      ? 'this device has no CUDA GPU'
      : `this device's GPUs: ${fp.gpus.map((g) => `${g.name} (${g.computeCapability})`).join(', ')}`;
  log.fail(
    `needs a GPU of compute capability ${needed} (code built for sm_${needed.replace('.', '')} runs only there); ${have}`,
  );
}

/** Every hard rule for one candidate, each failing one with its own reason. */
export function checkCandidate(
  fp: DeviceFingerprint,
  candidate: Candidate,
  acceptPrecisions: readonly ArtifactPrecision[] = DEFAULT_ACCEPT_PRECISIONS,
  acceptInsecureBuilds = false,
): CandidateCheck {
  const log = new RuleLog();
  const accept = new Set<string>(['fp32', ...acceptPrecisions]);
  const req = candidate.manifest.requires;
  // Hardware first: it is what a reader of an explanation looks for first.
  checkPlatform(fp, req, log);
  checkCpuLevel(fp, req, log);
  checkGpu(fp, req, log);
  checkTorch(fp, req, log);
  checkLibc(fp, req, log);
  checkLibstdcxx(fp, req, log);
  checkPrecision(candidate.manifest, accept, log);
  checkValidation(candidate.manifest, log);
  checkSandbox(candidate.manifest, acceptInsecureBuilds, log);
  return { compatible: log.failed.length === 0, passed: log.passed, failed: log.failed };
}

/**
 * Whether a measured speedup counts as "as fast as" the fastest compatible one: slower than it by less than a
 * factor of (1 + tolerance), or equal to it (so a tolerance of 0 keeps exactly the fastest). Relative to the
 * fastest of the whole set, not pairwise: "within the tolerance" is not transitive (1.00 ~ 1.14 ~ 1.28 but
 * 1.00 ≁ 1.28), and a pairwise comparison would make the answer depend on candidate order. Build-host timings
 * are noisy (a few cores shared with other builds), so among these the most specific artifact wins: on an
 * AVX-512 host, v4 unless v3 or v2 was measured faster by more than the tolerance.
 */
export function asFastAs(speedup: number, fastest: number, tolerance: number): boolean {
  return speedup === fastest || speedup * (1 + tolerance) > fastest;
}

interface RankEntry {
  candidate: Candidate;
  check: CandidateCheck;
  speedup: number;
  /** 1 when asFastAs the fastest compatible artifact, else 0. */
  tier: number;
  gpu: number;
  x86Level: number;
  tieKey: string;
}

function validSpeedup(s: number | undefined): number {
  return typeof s === 'number' && Number.isFinite(s) && s > 0 ? s : 0;
}

function codeUnitCompare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Total order, best first. Those as fast as the fastest (within the tolerance) come first, by specificity (a GPU
 * artifact over a CPU one, then the higher x86 level: it uses more of the device), then by the raw measured
 * speedup (the best remaining evidence); the rest follow by measured speedup, then specificity. Then artifactId
 * and targetId, then the explanation text: code-unit string comparison, not localeCompare, so the order is the
 * same in every locale.
 */
function compareEntries(a: RankEntry, b: RankEntry): number {
  const bySpecificity = b.gpu - a.gpu || b.x86Level - a.x86Level;
  return (
    b.tier - a.tier ||
    (a.tier === 1 ? bySpecificity || b.speedup - a.speedup : b.speedup - a.speedup || bySpecificity) ||
    codeUnitCompare(a.candidate.artifactId, b.candidate.artifactId) ||
    codeUnitCompare(a.candidate.targetId, b.candidate.targetId) ||
    codeUnitCompare(a.tieKey, b.tieKey)
  );
}

function specificity(e: RankEntry): string {
  const req = e.candidate.manifest.requires;
  if (req.computeCapability !== null) return `GPU (compute capability ${req.computeCapability})`;
  return req.x86Level !== null ? `x86-64-v${req.x86Level}` : 'no x86 level';
}

function speedText(e: RankEntry): string {
  return e.speedup > 0 ? `${fmt(e.speedup)}x` : 'unmeasured';
}

function whyChosen(best: RankEntry, next: RankEntry | undefined, tolerance: number): string[] {
  const reasons: string[] = [];
  const measured =
    best.speedup > 0 ? `${speedText(best)} measured over eager on the build host` : 'no valid speedup measurement';
  if (!next) {
    reasons.push(`only compatible artifact: ${measured}`);
  } else if (next.tier !== best.tier) {
    reasons.push(`fastest compatible: ${measured} (next: ${next.candidate.targetId} at ${speedText(next)})`);
  } else {
    const within = tolerance > 0 ? ` within the ${fmt(tolerance * 100)}% speedup tolerance` : '';
    const noisy = tolerance > 0 && best.speedup > 0 ? ' (build-host timings are noisy)' : '';
    reasons.push(
      `fastest compatible${within}: ${measured}; ${next.candidate.targetId} at ${speedText(next)} counts as equally fast${noisy}`,
    );
    if (best.gpu !== next.gpu || best.x86Level !== next.x86Level) {
      reasons.push(`preferred as more specific: ${specificity(best)} over ${specificity(next)}`);
    } else if (best.speedup !== next.speedup) {
      reasons.push('preferred for the higher measured speedup among equally specific artifacts');
    } else {
      reasons.push(`tie broken by artifactId (${best.candidate.artifactId} before ${next.candidate.artifactId})`);
    }
  }
  if (best.speedup > 0 && best.speedup < 1) {
    reasons.push(`note: measured slower than the portable graph on the build host (${speedText(best)})`);
  }
  return [...reasons, ...best.check.passed];
}

/**
 * The fastest compiled artifact this device can safely run, with the reasons it won, every other
 * compatible one ranked, every incompatible one with all the rules it fails, and the portable graph as
 * the fallback that is always valid. Pure and deterministic: the answer does not depend on the order
 * of `candidates`.
 */
export function resolveArtifact(
  fp: DeviceFingerprint,
  candidates: readonly Candidate[],
  opts: ResolveOptions = {},
): Resolution {
  const tolerance = opts.speedupTolerance ?? DEFAULT_SPEEDUP_TOLERANCE;
  if (!Number.isFinite(tolerance) || tolerance < 0) {
    throw new RangeError(`speedupTolerance must be a finite number ≥ 0, got ${tolerance}`);
  }
  const acceptPrecisions = opts.acceptPrecisions ?? DEFAULT_ACCEPT_PRECISIONS;
  const unknown = acceptPrecisions.filter((p) => !ARTIFACT_PRECISIONS.includes(p));
  if (unknown.length > 0) {
    throw new RangeError(
      `acceptPrecisions: unknown precision(s) ${unknown.join(', ')}; known: ${ARTIFACT_PRECISIONS.join(', ')}`,
    );
  }

  const compatible: RankEntry[] = [];
  const rejected: Resolution['rejected'] = [];
  for (const candidate of candidates) {
    const check = checkCandidate(fp, candidate, acceptPrecisions, opts.acceptInsecureBuilds === true);
    if (!check.compatible) {
      rejected.push({ artifactId: candidate.artifactId, targetId: candidate.targetId, reasons: check.failed });
      continue;
    }
    const req = candidate.manifest.requires;
    const speedup = validSpeedup(candidate.manifest.timing?.speedup);
    compatible.push({
      candidate,
      check,
      speedup,
      tier: 0,
      gpu: req.computeCapability !== null ? 1 : 0,
      x86Level: req.x86Level ?? 0,
      tieKey: check.passed.join('\n'),
    });
  }
  const fastest = Math.max(0, ...compatible.map((e) => e.speedup));
  for (const e of compatible) e.tier = asFastAs(e.speedup, fastest, tolerance) ? 1 : 0;
  compatible.sort(compareEntries);
  rejected.sort(
    (a, b) =>
      codeUnitCompare(a.artifactId, b.artifactId) ||
      codeUnitCompare(a.targetId, b.targetId) ||
      codeUnitCompare(a.reasons.join('\n'), b.reasons.join('\n')),
  );

  const ranked = compatible.map((e) => ({
    artifactId: e.candidate.artifactId,
    targetId: e.candidate.targetId,
    speedup: e.speedup,
  }));
  const [best, next] = compatible;
  if (best) {
    return {
      chosen: { ...ranked[0], reasons: whyChosen(best, next, tolerance) },
      fallback: {
        kind: 'portable',
        reason: `if ${best.candidate.artifactId} fails to download, verify or load, ${PORTABLE}: it is always a valid answer`,
      },
      ranked,
      rejected,
    };
  }
  const reason =
    candidates.length === 0
      ? `no compiled artifacts to choose from; ${PORTABLE}`
      : `no compiled artifact fits this device: ${rejected.length} rejected (see rejected); ${PORTABLE}`;
  return { chosen: null, fallback: { kind: 'portable', reason }, ranked, rejected };
}
