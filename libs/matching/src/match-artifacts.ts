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

/**
 * What devices of one class reported about one artifact (the API reads it from its rollup table; docs/fleet.md).
 * Only outcomes that are the artifact's fault count as failures (it failed to verify, load or run, or computed
 * other numbers than the portable graph); a device that could not download it is not evidence against it.
 */
export interface ArtifactEvidence {
  /** Runs that tried this artifact. */
  reports: number;
  /** Of those, the ones where it failed to verify, load or run, or disagreed with the portable graph. */
  failures: number;
  /** Failures by error code (LOAD_FAILED, SIGNATURE_INVALID, OUTPUT_MISMATCH, ...). */
  failureCodes: Record<string, number>;
  /** Successful runs that timed both the artifact and the portable graph on the device. */
  speedupSamples: number;
  /** Mean of ln(portable ms / artifact ms) over those runs. */
  logSpeedupMean: number;
  /** Sample variance of ln(speedup) (0 with fewer than two samples). */
  logSpeedupVariance: number;
}

/** When evidence counts, and how much (defaults: DEFAULT_EVIDENCE_POLICY, documented in docs/fleet.md). */
export interface EvidencePolicy {
  /** Device-measured speedups rank an artifact once this many runs of the class timed it. */
  minSpeedupSamples: number;
  /** Quarantine for a class: at least this many failures ... */
  quarantineMinFailures: number;
  /** ... making up at least this share of the class's runs of the artifact. */
  quarantineFailureRate: number;
  /** Two-sided normal quantile of the device intervals (1.96: 95 %). */
  z: number;
  /** Floor of the per-run spread of ln(speedup): a handful of identical figures is no proof of zero variance. */
  minLogSd: number;
}

export const DEFAULT_EVIDENCE_POLICY: EvidencePolicy = {
  minSpeedupSamples: 5,
  quarantineMinFailures: 3,
  quarantineFailureRate: 0.25,
  z: 1.96,
  minLogSd: 0.05,
};

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
  /**
   * What devices of the requesting device's class reported, per artifactId. When given (the API always gives
   * it, empty for a class never seen), every answer says which evidence decided; absent, only build-host figures
   * exist (the playground, old callers).
   */
  evidence?: ReadonlyMap<string, ArtifactEvidence>;
  /** The requesting device's class label, for the reasons. */
  deviceClass?: string;
  evidencePolicy?: Partial<EvidencePolicy>;
  /**
   * What to do with a compatible artifact whose speed was never measured (a cross build verified under emulation:
   * manifest `timing.method` `unmeasured`) and that devices of this class have not timed yet (fewer than
   * `evidencePolicy.minSpeedupSamples` runs):
   * - 'serve' (default): serve it over the portable graph: AOTInductor code is the faster path on the targets Kiln
   *   builds, it was verified correct under emulation, and the devices' reports then rank it by real figures;
   * - 'evidence-only': serve the portable graph until devices of this class report the artifact's speed.
   * Either way the answer's reasons name the policy.
   */
  unmeasuredArtifacts?: UnmeasuredArtifactPolicy;
}

export type UnmeasuredArtifactPolicy = 'serve' | 'evidence-only';
export const UNMEASURED_ARTIFACT_POLICIES: readonly UnmeasuredArtifactPolicy[] = ['serve', 'evidence-only'];
export const DEFAULT_UNMEASURED_ARTIFACT_POLICY: UnmeasuredArtifactPolicy = 'serve';

/** Whether the build host measured no speed for this artifact (emulated cross builds), and how it was verified. */
function unmeasuredSpeed(candidate: Candidate): string | null {
  const timing = candidate.manifest.timing as { method?: string } | undefined;
  if (timing?.method !== 'unmeasured') return null;
  const emulated = (candidate.manifest.verification as { emulated?: { emulator?: string; cpu?: string } }).emulated;
  return emulated
    ? `verified under emulation (${emulated.emulator ?? 'an emulator'}, ${emulated.cpu ?? 'an emulated CPU'}): correct, speed unmeasured`
    : 'speed unmeasured on the build host';
}

/** Where a ranked speedup comes from. */
export type SpeedupBasis = 'device' | 'build-host';

export interface RankedArtifact {
  artifactId: string;
  targetId: string;
  /**
   * Speedup over the portable graph the artifact is ranked by: measured on devices of the requesting class when
   * enough of them reported (`basis: 'device'`), else on the build host; 0 when there is no valid figure.
   */
  speedup: number;
  basis: SpeedupBasis;
  /** Its confidence interval; null when unknown (build-host figures written before intervals were recorded). */
  speedupCi: [number, number] | null;
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
  estimate: SpeedEstimate;
  /** 1 when asFastAs the fastest compatible artifact, else 0. */
  tier: number;
  gpu: number;
  x86Level: number;
  tieKey: string;
}

function validSpeedup(s: number | undefined): number {
  return typeof s === 'number' && Number.isFinite(s) && s > 0 ? s : 0;
}

/** The speed figure an artifact is ranked by for this device, with its interval and where it comes from. */
interface SpeedEstimate {
  speedup: number;
  ci: [number, number] | null;
  basis: SpeedupBasis;
  /** A build-host figure marked `uncertain` (or without an interval): never proof that the artifact is slower. */
  uncertain: boolean;
  /** Device runs that timed it (0 for build-host figures). */
  samples: number;
}

function validInterval(ci: unknown, speedup: number): [number, number] | null {
  if (!Array.isArray(ci) || ci.length !== 2) return null;
  const [lo, hi] = ci as unknown[];
  if (typeof lo !== 'number' || typeof hi !== 'number' || !(lo > 0) || !(hi >= lo) || !Number.isFinite(hi)) return null;
  return speedup > 0 && lo <= speedup * (1 + 1e-9) && hi * (1 + 1e-9) >= speedup ? [lo, hi] : null;
}

function estimateSpeed(
  candidate: Candidate,
  evidence: ArtifactEvidence | undefined,
  policy: EvidencePolicy,
): SpeedEstimate {
  if (
    evidence &&
    evidence.speedupSamples >= policy.minSpeedupSamples &&
    Number.isFinite(evidence.logSpeedupMean) &&
    Number.isFinite(evidence.logSpeedupVariance)
  ) {
    const n = evidence.speedupSamples;
    const sd = Math.max(Math.sqrt(Math.max(evidence.logSpeedupVariance, 0)), policy.minLogSd);
    const half = (policy.z * sd) / Math.sqrt(n);
    const mean = evidence.logSpeedupMean;
    return {
      speedup: Math.exp(mean),
      ci: [Math.exp(mean - half), Math.exp(mean + half)],
      basis: 'device',
      uncertain: false,
      samples: n,
    };
  }
  const timing = candidate.manifest.timing;
  const speedup = validSpeedup(timing?.speedup);
  const ci = speedup > 0 ? validInterval(timing?.speedupCi, speedup) : null;
  return { speedup, ci, basis: 'build-host', uncertain: ci === null || timing?.uncertain === true, samples: 0 };
}

/** What one class's evidence says about an artifact, as the resolver reads it (for views: the fleet dashboard). */
export function readEvidence(
  evidence: ArtifactEvidence,
  policy: Partial<EvidencePolicy> = {},
): { quarantined: boolean; speedup: { value: number; ci: [number, number]; samples: number } | null } {
  const p = { ...DEFAULT_EVIDENCE_POLICY, ...policy };
  const fake: Candidate = {
    artifactId: '',
    targetId: '',
    manifest: {} as Candidate['manifest'],
  };
  const e = estimateSpeed(fake, evidence, p);
  return {
    quarantined: quarantined(evidence, p),
    speedup: e.basis === 'device' && e.ci ? { value: e.speedup, ci: e.ci, samples: e.samples } : null,
  };
}

/** Failures of this artifact on this class pass the quarantine threshold. */
function quarantined(evidence: ArtifactEvidence | undefined, policy: EvidencePolicy): boolean {
  return (
    evidence !== undefined &&
    evidence.reports > 0 &&
    evidence.failures >= policy.quarantineMinFailures &&
    evidence.failures / evidence.reports >= policy.quarantineFailureRate
  );
}

function describeCodes(codes: Record<string, number>): string {
  const entries = Object.entries(codes)
    .filter(([, n]) => n > 0)
    .sort(([a, x], [b, y]) => y - x || codeUnitCompare(a, b));
  return entries.length > 0 ? ` (${entries.map(([code, n]) => `${code} ×${n}`).join(', ')})` : '';
}

function fmtCi(ci: [number, number] | null, confidence = '95%'): string {
  return ci ? ` (${confidence} CI ${fmt(ci[0])}–${fmt(ci[1])})` : '';
}

/** Where a figure comes from, in words: "3.1x on 12 runs of this device class (95% CI 2.9–3.3)". */
function describeEstimate(e: SpeedEstimate): string {
  if (e.speedup <= 0) return 'no valid speedup measurement';
  if (e.basis === 'device')
    return `${fmt(e.speedup)}x over the portable graph on ${e.samples} runs of this device class${fmtCi(e.ci)}`;
  const guess = e.uncertain && e.ci !== null ? '; the build host was noisy: a guess' : '';
  return `${fmt(e.speedup)}x measured over eager on the build host${fmtCi(e.ci)}${guess}`;
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

function whyChosen(
  best: RankEntry,
  next: RankEntry | undefined,
  tolerance: number,
  fastest: number,
  evidenceLine: string | null,
): string[] {
  const reasons: string[] = [];
  const measured = describeEstimate(best.estimate);
  if (!next) {
    reasons.push(`only compatible artifact: ${measured}`);
  } else if (next.tier !== best.tier) {
    reasons.push(`fastest compatible: ${measured} (next: ${next.candidate.targetId} at ${speedText(next)})`);
  } else {
    if (asFastAs(next.speedup, fastest, tolerance) && asFastAs(best.speedup, fastest, tolerance)) {
      const within = tolerance > 0 ? ` within the ${fmt(tolerance * 100)}% speedup tolerance` : '';
      const noisy = tolerance > 0 && best.speedup > 0 ? ' (build-host timings are noisy)' : '';
      reasons.push(
        `fastest compatible${within}: ${measured}; ${next.candidate.targetId} at ${speedText(next)} counts as equally fast${noisy}`,
      );
    } else {
      reasons.push(
        `as fast as the fastest compatible within the measurements' uncertainty: ${measured}; ` +
          `${next.candidate.targetId} at ${speedText(next)}${fmtCi(next.estimate.ci)} cannot be told apart from it`,
      );
    }
    if (best.gpu !== next.gpu || best.x86Level !== next.x86Level) {
      reasons.push(`preferred as more specific: ${specificity(best)} over ${specificity(next)}`);
    } else if (best.speedup !== next.speedup) {
      reasons.push('preferred for the higher measured speedup among equally specific artifacts');
    } else {
      reasons.push(`tie broken by artifactId (${best.candidate.artifactId} before ${next.candidate.artifactId})`);
    }
  }
  if (best.speedup > 0 && best.speedup < 1) {
    reasons.push(
      best.estimate.basis === 'device'
        ? `note: measured slower than the portable graph on devices of this class (${speedText(best)}), not confidently: its interval reaches 1x`
        : `note: measured slower than the portable graph on the build host (${speedText(best)})`,
    );
  }
  if (evidenceLine) reasons.push(evidenceLine);
  return [...reasons, ...best.check.passed];
}

/** The "which evidence decided" line of an answer that was given fleet evidence. */
function evidenceSummary(
  best: RankEntry,
  evidence: ArtifactEvidence | undefined,
  policy: EvidencePolicy,
  deviceClass: string,
): string {
  const cls = deviceClass ? `device class "${deviceClass}"` : 'this device class';
  if (best.estimate.basis === 'device') {
    const build = validSpeedup(best.candidate.manifest.timing?.speedup);
    const buildText = build > 0 ? `; the build host measured ${fmt(build)}x, which device evidence overrides` : '';
    return `evidence: device reports decided (${evidence?.reports ?? 0} runs of ${best.candidate.targetId} on ${cls}, ${evidence?.failures ?? 0} failed${buildText})`;
  }
  const have = evidence?.speedupSamples ?? 0;
  return `evidence: the build-host figure decided (${cls} has ${have} timed run${have === 1 ? '' : 's'} of it; ${policy.minSpeedupSamples} needed before device figures rank it)`;
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

  const policy: EvidencePolicy = { ...DEFAULT_EVIDENCE_POLICY, ...opts.evidencePolicy };
  const cls = opts.deviceClass ? `device class "${opts.deviceClass}"` : 'this device class';

  const compatible: RankEntry[] = [];
  const rejected: Resolution['rejected'] = [];
  let refusedByEvidence = 0;
  for (const candidate of candidates) {
    const check = checkCandidate(fp, candidate, acceptPrecisions, opts.acceptInsecureBuilds === true);
    if (!check.compatible) {
      rejected.push({ artifactId: candidate.artifactId, targetId: candidate.targetId, reasons: check.failed });
      continue;
    }
    const evidence = opts.evidence?.get(candidate.artifactId);
    const estimate = estimateSpeed(candidate, evidence, policy);
    const refusals: string[] = [];
    if (evidence && quarantined(evidence, policy)) {
      refusals.push(
        `quarantined for ${cls}: ${evidence.failures} of ${evidence.reports} runs on such devices failed to verify, ` +
          `load or run it${describeCodes(evidence.failureCodes)}; other classes are not affected`,
      );
    }
    if (estimate.speedup > 0 && estimate.ci !== null && !estimate.uncertain && estimate.ci[1] < 1) {
      const where = estimate.basis === 'device' ? `on ${estimate.samples} runs of ${cls}` : 'on the build host';
      refusals.push(
        `confidently slower than the portable graph ${where}: ${fmt(estimate.speedup)}x${fmtCi(estimate.ci)}; ` +
          'the portable graph is served instead',
      );
    }
    const unmeasured = estimate.basis === 'device' ? null : unmeasuredSpeed(candidate);
    const unmeasuredPolicy = opts.unmeasuredArtifacts ?? DEFAULT_UNMEASURED_ARTIFACT_POLICY;
    if (unmeasured !== null) {
      const have = evidence?.speedupSamples ?? 0;
      if (unmeasuredPolicy === 'evidence-only') {
        refusals.push(
          `${unmeasured}; policy unmeasuredArtifacts=evidence-only serves it once ${policy.minSpeedupSamples} runs ` +
            `of ${cls} timed it (${have} so far): the portable graph is served instead`,
        );
      } else {
        check.passed.unshift(
          `${unmeasured}; served by policy unmeasuredArtifacts=serve until ${policy.minSpeedupSamples} runs of ` +
            `${cls} time it (${have} so far; 'evidence-only' would serve the portable graph meanwhile)`,
        );
      }
    }
    if (refusals.length > 0) {
      refusedByEvidence++;
      rejected.push({ artifactId: candidate.artifactId, targetId: candidate.targetId, reasons: refusals });
      continue;
    }
    const req = candidate.manifest.requires;
    const speedup = estimate.speedup;
    compatible.push({
      candidate,
      check,
      speedup,
      estimate,
      tier: 0,
      gpu: req.computeCapability !== null ? 1 : 0,
      x86Level: req.x86Level ?? 0,
      tieKey: check.passed.join('\n'),
    });
  }
  const fastest = Math.max(0, ...compatible.map((e) => e.speedup));
  // The best speed any compatible artifact is known to reach (its interval's low end): an artifact whose interval
  // reaches it cannot be told apart from the fastest, so it counts as equally fast too (then specificity decides).
  const bestLow = Math.max(0, ...compatible.map((e) => (e.estimate.ci ? e.estimate.ci[0] : e.speedup)));
  for (const e of compatible) {
    const reachesBest = e.estimate.ci !== null && e.speedup > 0 && e.estimate.ci[1] >= bestLow;
    e.tier = asFastAs(e.speedup, fastest, tolerance) || reachesBest ? 1 : 0;
  }
  compatible.sort(compareEntries);
  rejected.sort(
    (a, b) =>
      codeUnitCompare(a.artifactId, b.artifactId) ||
      codeUnitCompare(a.targetId, b.targetId) ||
      codeUnitCompare(a.reasons.join('\n'), b.reasons.join('\n')),
  );

  const ranked: RankedArtifact[] = compatible.map((e) => ({
    artifactId: e.candidate.artifactId,
    targetId: e.candidate.targetId,
    speedup: e.speedup,
    basis: e.estimate.basis,
    speedupCi: e.estimate.ci,
  }));
  const [best, next] = compatible;
  if (best) {
    const evidenceLine = opts.evidence
      ? evidenceSummary(best, opts.evidence.get(best.candidate.artifactId), policy, opts.deviceClass ?? '')
      : null;
    return {
      chosen: { ...ranked[0], reasons: whyChosen(best, next, tolerance, fastest, evidenceLine) },
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
      : refusedByEvidence > 0
        ? `no compiled artifact to serve this device: ${refusedByEvidence} refused by fleet evidence for ${cls} ` +
          `(quarantined, confidently slower than the portable graph, or not yet timed by devices under the ` +
          `unmeasuredArtifacts policy), ${rejected.length - refusedByEvidence} ` +
          `incompatible (see rejected); ${PORTABLE}`
        : `no compiled artifact fits this device: ${rejected.length} rejected (see rejected); ${PORTABLE}`;
  return { chosen: null, fallback: { kind: 'portable', reason }, ranked, rejected };
}
