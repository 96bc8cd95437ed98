import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  AVX2_LAPTOP_FINGERPRINT,
  AVX512_SERVER_FINGERPRINT,
  GRAVITON_FINGERPRINT,
  H100_BOX_FINGERPRINT,
  SSE42_BOX_FINGERPRINT,
} from './example-fingerprints.js';
import type { DeviceFingerprint } from './fingerprint.js';
import { asFastAs, checkCandidate, resolveArtifact, type Resolution } from './match-artifacts.js';
import { makeCandidate } from './testing/make-candidate.js';

const v2 = makeCandidate({ artifactId: 'a-v2', requires: { x86Level: 2 }, speedup: 1.2 });
const v3 = makeCandidate({ artifactId: 'a-v3', requires: { x86Level: 3 }, speedup: 1.55 });
const v4 = makeCandidate({ artifactId: 'a-v4', requires: { x86Level: 4 }, speedup: 1.6 });
const cpuSet = [v2, v3, v4];

const sm90 = makeCandidate({
  artifactId: 'a-sm90',
  requires: { x86Level: null, computeCapability: '9.0', torch: '2.11.0+cu128', glibc: '2.34', glibcxx: '3.4.30' },
  speedup: 3.2,
});

function rejectedReasons(r: Resolution, artifactId: string): string[] {
  const entry = r.rejected.find((x) => x.artifactId === artifactId);
  assert.ok(entry, `${artifactId} should be rejected; rejected: ${JSON.stringify(r.rejected)}`);
  return entry.reasons;
}

function withFp(base: DeviceFingerprint, patch: Partial<DeviceFingerprint>): DeviceFingerprint {
  return { ...base, ...patch };
}

describe('resolveArtifact: x86 levels', () => {
  it('gives an AVX2 laptop the v3 artifact, not v4, and names the missing AVX-512 flags', () => {
    const r = resolveArtifact(AVX2_LAPTOP_FINGERPRINT, cpuSet);
    assert.equal(r.chosen?.artifactId, 'a-v3');
    assert.deepEqual(
      r.ranked.map((x) => x.artifactId),
      ['a-v3', 'a-v2'],
    );
    const [reason, ...others] = rejectedReasons(r, 'a-v4');
    assert.equal(others.length, 0);
    assert.match(reason, /^needs x86-64-v4 \(AVX-512 F\/BW\/CD\/DQ\/VL\); this CPU is x86-64-v3/);
    assert.match(reason, /missing avx512f, avx512bw, avx512cd, avx512dq, avx512vl$/);
  });

  it('gives an AVX-512 server v4 when the speedups are within tolerance (more specific wins)', () => {
    const r = resolveArtifact(AVX512_SERVER_FINGERPRINT, cpuSet);
    assert.equal(r.chosen?.artifactId, 'a-v4');
    assert.deepEqual(
      r.ranked.map((x) => x.artifactId),
      ['a-v4', 'a-v3', 'a-v2'],
    );
    assert.equal(r.rejected.length, 0);
    const reasons = r.chosen?.reasons ?? [];
    assert.match(
      reasons[0],
      /within the 15% speedup tolerance: 1\.6x .*linux-x86_64-v3 at 1\.55x counts as equally fast/,
    );
    assert.match(reasons[1], /more specific: x86-64-v4 over x86-64-v3/);
    assert.ok(reasons.includes("x86-64-v4 ≤ this CPU's x86-64-v4 (from its CPU flags)"), reasons.join('\n'));
    assert.ok(reasons.includes('torch 2.13.0 matches the build (2.13.0+cpu)'));
    assert.ok(reasons.includes('glibc 2.36 ≥ 2.28'));
    assert.ok(reasons.includes('GLIBCXX 3.4.30 ≥ 3.4.26'));
    assert.match(r.fallback.reason, /if a-v4 fails to download, verify or load, run the portable graph/);
  });

  it('gives an AVX-512 server v3 when v3 is measurably faster', () => {
    const fastV3 = makeCandidate({ artifactId: 'a-v3', requires: { x86Level: 3 }, speedup: 2.1 });
    const r = resolveArtifact(AVX512_SERVER_FINGERPRINT, [v2, fastV3, v4]);
    assert.equal(r.chosen?.artifactId, 'a-v3');
    assert.equal(r.chosen?.speedup, 2.1);
    assert.match(
      r.chosen?.reasons[0] ?? '',
      /^fastest compatible: 2\.1x measured over eager .*next: linux-x86_64-v4 at 1\.6x/,
    );
  });

  it('with tolerance 0 ranks by the exact measured speedup', () => {
    const r = resolveArtifact(AVX512_SERVER_FINGERPRINT, [v4, v3, v2], { speedupTolerance: 0 });
    assert.deepEqual(
      r.ranked.map((x) => x.speedup),
      [1.6, 1.55, 1.2],
    );
    const r2 = resolveArtifact(
      AVX512_SERVER_FINGERPRINT,
      [makeCandidate({ artifactId: 'x4', requires: { x86Level: 4 }, speedup: 1.5 }), v3],
      { speedupTolerance: 0 },
    );
    assert.equal(r2.chosen?.artifactId, 'a-v3');
  });

  it('gives an old SSE4.2 box the v2 artifact and rejects v3 and v4', () => {
    const r = resolveArtifact(SSE42_BOX_FINGERPRINT, cpuSet);
    assert.equal(r.chosen?.artifactId, 'a-v2');
    assert.match(rejectedReasons(r, 'a-v3')[0], /needs x86-64-v3 .*this CPU is x86-64-v2 .*missing avx, avx2, bmi1/);
    assert.match(rejectedReasons(r, 'a-v4')[0], /missing avx, avx2, .*avx512vl$/);
  });

  it('lets flags win over a contradicting reported x86Level, and says so', () => {
    const liar = withFp(AVX2_LAPTOP_FINGERPRINT, { cpu: { ...AVX2_LAPTOP_FINGERPRINT.cpu, x86Level: 4 } });
    const r = resolveArtifact(liar, cpuSet);
    assert.equal(r.chosen?.artifactId, 'a-v3');
    assert.match(rejectedReasons(r, 'a-v4')[0], /reported x86Level 4 was ignored: flags win/);
  });

  it('uses the reported level when no flags are sent, and the baseline when neither is', () => {
    const reported = withFp(AVX2_LAPTOP_FINGERPRINT, { cpu: { flags: [], x86Level: 4 } });
    assert.equal(resolveArtifact(reported, cpuSet).chosen?.artifactId, 'a-v4');
    const nothing = withFp(AVX2_LAPTOP_FINGERPRINT, { cpu: { flags: [] } });
    const r = resolveArtifact(nothing, cpuSet);
    assert.equal(r.chosen, null);
    assert.match(rejectedReasons(r, 'a-v2')[0], /x86-64-v1 \(assumed: neither CPU flags nor x86Level sent\)$/);
  });

  it('rejects x86 artifacts on an arm64 device with both the arch and the level reason', () => {
    const r = resolveArtifact(GRAVITON_FINGERPRINT, cpuSet);
    assert.equal(r.chosen, null);
    assert.deepEqual(rejectedReasons(r, 'a-v3'), [
      'built for x86_64 CPUs; this device is aarch64',
      'needs an x86-64-v3 (AVX2/FMA/BMI) CPU; this device is aarch64',
    ]);
  });
});

describe('resolveArtifact: libc, libstdc++, torch', () => {
  it('gives a musl device nothing, with the libc named in the reason', () => {
    const alpine = withFp(AVX2_LAPTOP_FINGERPRINT, { libc: { name: 'musl', version: '1.2.4' } });
    const r = resolveArtifact(alpine, cpuSet);
    assert.equal(r.chosen, null);
    assert.equal(r.rejected.length, 3);
    assert.ok(rejectedReasons(r, 'a-v2').includes("needs glibc ≥ 2.28; this device's libc is musl 1.2.4"));
    assert.match(
      r.fallback.reason,
      /^no compiled artifact fits this device: 3 rejected \(see rejected\); run the portable graph/,
    );
  });

  it('rejects a musl or unknown libc even when the artifact names no versioned glibc symbol', () => {
    const noGlibcSymbols = makeCandidate({ artifactId: 'plain', requires: { glibc: null } });
    const unknown = withFp(AVX2_LAPTOP_FINGERPRINT, { libc: { name: 'unknown', version: null } });
    assert.deepEqual(checkCandidate(unknown, noGlibcSymbols).failed, [
      "needs glibc; this device's libc is an unknown libc",
    ]);
    assert.ok(checkCandidate(AVX2_LAPTOP_FINGERPRINT, noGlibcSymbols).compatible);
  });

  it('rejects an older glibc, and a glibc device that did not report its version', () => {
    const bionic = withFp(AVX2_LAPTOP_FINGERPRINT, { libc: { name: 'glibc', version: '2.27' } });
    assert.deepEqual(checkCandidate(bionic, v3).failed, ['needs glibc ≥ 2.28; this device has glibc 2.27']);
    const silent = withFp(AVX2_LAPTOP_FINGERPRINT, { libc: { name: 'glibc', version: null } });
    assert.deepEqual(checkCandidate(silent, v3).failed, [
      'needs glibc ≥ 2.28; this device did not report its glibc version',
    ]);
  });

  it('compares GLIBCXX numerically (3.4.30 > 3.4.9) and rejects an older libstdc++', () => {
    const needs30 = makeCandidate({ artifactId: 'x', requires: { glibcxx: '3.4.30' } });
    const needs9 = makeCandidate({ artifactId: 'y', requires: { glibcxx: '3.4.9' } });
    const old = withFp(AVX2_LAPTOP_FINGERPRINT, { libstdcxx: { glibcxx: '3.4.29' } });
    assert.deepEqual(checkCandidate(old, needs30).failed, [
      "needs libstdc++ with GLIBCXX_3.4.30; this device's libstdc++ provides up to GLIBCXX_3.4.29",
    ]);
    assert.ok(checkCandidate(old, needs9).compatible);
    const unknown = withFp(AVX2_LAPTOP_FINGERPRINT, { libstdcxx: { glibcxx: null } });
    assert.match(checkCandidate(unknown, needs9).failed[0], /did not report its libstdc\+\+ \(GLIBCXX\) version/);
  });

  it('rejects a different torch release (2.12 vs 2.13)', () => {
    const older = withFp(AVX2_LAPTOP_FINGERPRINT, { torch: { version: '2.12.1+cpu', cuda: null } });
    const r = resolveArtifact(older, cpuSet);
    assert.equal(r.chosen, null);
    assert.deepEqual(rejectedReasons(r, 'a-v3'), [
      'built with torch 2.13.0 (2.13.0+cpu); this device runs torch 2.12.1 (2.12.1+cpu): compiled artifacts need the exact torch release',
    ]);
  });

  it('rejects a pre-release or dev build of the same X.Y.Z (strict public version)', () => {
    const nightly = withFp(AVX2_LAPTOP_FINGERPRINT, { torch: { version: '2.13.0.dev20260101+cpu', cuda: null } });
    assert.equal(checkCandidate(nightly, v3).compatible, false);
  });

  it('runs a CPU artifact on a CUDA build of the same torch release', () => {
    const r = resolveArtifact(
      withFp(H100_BOX_FINGERPRINT, { torch: { version: '2.13.0+cu128', cuda: '12.8' } }),
      cpuSet,
    );
    assert.equal(r.chosen?.artifactId, 'a-v4');
    assert.ok(
      r.chosen?.reasons.includes(
        'torch 2.13.0 matches the build (2.13.0+cpu) (a CPU artifact also runs on this CUDA build)',
      ),
    );
  });
});

describe('resolveArtifact: CUDA artifacts', () => {
  it('chooses the sm90 artifact for an H100 with a matching CUDA torch', () => {
    const v4cu = makeCandidate({ artifactId: 'a-v4', requires: { x86Level: 4, torch: '2.11.0+cu128' }, speedup: 1.6 });
    const r = resolveArtifact(H100_BOX_FINGERPRINT, [v4cu, sm90]);
    assert.equal(r.chosen?.artifactId, 'a-sm90');
    assert.equal(r.chosen?.targetId, 'linux-x86_64-cuda-sm90');
    assert.deepEqual(
      r.ranked.map((x) => x.artifactId),
      ['a-sm90', 'a-v4'],
    );
    const reasons = r.chosen?.reasons ?? [];
    assert.ok(reasons.includes('GPU NVIDIA H100 80GB HBM3 has compute capability 9.0'), reasons.join('\n'));
    assert.ok(reasons.includes('torch 2.11.0 for CUDA 12.8 matches the build (2.11.0+cu128)'));
  });

  it('prefers the GPU artifact over a CPU one within the tolerance (3.2x vs 3.25x)', () => {
    const v4cu = makeCandidate({ artifactId: 'a-v4', requires: { x86Level: 4, torch: '2.11.0+cu128' }, speedup: 3.25 });
    const r = resolveArtifact(H100_BOX_FINGERPRINT, [v4cu, sm90]);
    assert.equal(r.chosen?.artifactId, 'a-sm90');
    assert.match(r.chosen?.reasons[1] ?? '', /more specific: GPU \(compute capability 9\.0\) over x86-64-v4/);
  });

  it('rejects the sm90 artifact on an A100 (8.0)', () => {
    const a100 = withFp(H100_BOX_FINGERPRINT, {
      gpus: [{ name: 'NVIDIA A100-SXM4-80GB', computeCapability: '8.0', driverVersion: '570.86.15' }],
    });
    const r = resolveArtifact(a100, [sm90]);
    assert.equal(r.chosen, null);
    assert.deepEqual(rejectedReasons(r, 'a-sm90'), [
      "needs a GPU of compute capability 9.0 (code built for sm_90 runs only there); this device's GPUs: NVIDIA A100-SXM4-80GB (8.0)",
    ]);
  });

  it('rejects the sm90 artifact for a CPU-only torch on the same H100 box', () => {
    const cpuTorch = withFp(H100_BOX_FINGERPRINT, { torch: { version: '2.11.0+cpu', cuda: null } });
    assert.deepEqual(rejectedReasons(resolveArtifact(cpuTorch, [sm90]), 'a-sm90'), [
      "needs a CUDA 12.8 build of torch (like 2.11.0+cu128); this device's torch 2.11.0+cpu is not a CUDA build",
    ]);
  });

  it('rejects a different CUDA major.minor, and a build torch that does not name its CUDA version', () => {
    const cu126 = withFp(H100_BOX_FINGERPRINT, { torch: { version: '2.11.0+cu126', cuda: '12.6' } });
    assert.deepEqual(checkCandidate(cu126, sm90).failed, [
      "needs torch built for CUDA 12.8; this device's torch 2.11.0+cu126 is built for CUDA 12.6",
    ]);
    const untagged = makeCandidate({
      artifactId: 'ngc',
      requires: { x86Level: null, computeCapability: '9.0', torch: '2.11.0', glibc: '2.34', glibcxx: '3.4.30' },
    });
    assert.match(checkCandidate(H100_BOX_FINGERPRINT, untagged).failed[0], /does not name its CUDA version/);
  });

  it('rejects a GPU artifact on a device without GPUs, listing every failing rule', () => {
    const reasons = rejectedReasons(resolveArtifact(AVX2_LAPTOP_FINGERPRINT, [sm90]), 'a-sm90');
    assert.equal(reasons.length, 3, reasons.join('\n'));
    assert.match(reasons[0], /this device has no CUDA GPU$/);
    assert.match(reasons[1], /built with torch 2\.11\.0/);
    assert.match(reasons[2], /not a CUDA build/);
  });
});

describe('resolveArtifact: validation and fallback', () => {
  it('rejects an artifact that failed verification or the ISA check, with both reasons', () => {
    const bad = makeCandidate({ artifactId: 'bad', speedup: 9, verified: false, isaPassed: false });
    const r = resolveArtifact(AVX512_SERVER_FINGERPRINT, [bad, v3]);
    assert.equal(r.chosen?.artifactId, 'a-v3');
    assert.deepEqual(rejectedReasons(r, 'bad'), [
      'not verified: its outputs were not shown to match the portable graph (max abs error 0.25, atol 0.0001)',
      'failed the ISA check: uses forbidden zmm (12x); it could crash with an illegal instruction',
    ]);
  });

  it('answers an empty candidate list with the portable fallback only', () => {
    const r = resolveArtifact(AVX2_LAPTOP_FINGERPRINT, []);
    assert.deepEqual(r, {
      chosen: null,
      fallback: {
        kind: 'portable',
        reason:
          'no compiled artifacts to choose from; run the portable graph (the original .pt2) with torch.export.load',
      },
      ranked: [],
      rejected: [],
    });
  });

  it('ranks unmeasured speedups last and says the chosen one was measured slower than eager', () => {
    const nan = makeCandidate({ artifactId: 'a-nan', requires: { x86Level: 4 }, speedup: Number.NaN });
    const slow = makeCandidate({ artifactId: 'a-slow', requires: { x86Level: 2 }, speedup: 0.8 });
    const r = resolveArtifact(AVX512_SERVER_FINGERPRINT, [nan, slow]);
    assert.deepEqual(r.ranked, [
      { artifactId: 'a-slow', targetId: 'linux-x86_64-v2', speedup: 0.8, basis: 'build-host', speedupCi: null },
      { artifactId: 'a-nan', targetId: 'linux-x86_64-v4', speedup: 0, basis: 'build-host', speedupCi: null },
    ]);
    assert.ok(r.chosen?.reasons.includes('note: measured slower than the portable graph on the build host (0.8x)'));
  });

  it('breaks full ties by artifactId, whatever the input order', () => {
    const a = makeCandidate({ artifactId: 'b-2', speedup: 1.5 });
    const b = makeCandidate({ artifactId: 'b-1', speedup: 1.5 });
    for (const order of [
      [a, b],
      [b, a],
    ]) {
      const r = resolveArtifact(AVX2_LAPTOP_FINGERPRINT, order);
      assert.equal(r.chosen?.artifactId, 'b-1');
      assert.equal(r.chosen?.reasons[1], 'tie broken by artifactId (b-1 before b-2)');
    }
  });

  it('refuses a negative or non-finite tolerance', () => {
    assert.throws(() => resolveArtifact(AVX2_LAPTOP_FINGERPRINT, [], { speedupTolerance: -0.1 }), RangeError);
    assert.throws(() => resolveArtifact(AVX2_LAPTOP_FINGERPRINT, [], { speedupTolerance: Number.NaN }), RangeError);
  });
});

describe('asFastAs', () => {
  it('is relative to the fastest: slower by less than the tolerance, or equal', () => {
    assert.ok(asFastAs(1.6, 1.6, 0.15));
    assert.ok(asFastAs(1.45, 1.6, 0.15)); // 1.6 / 1.45 = 1.10
    assert.ok(!asFastAs(1.39, 1.6, 0.15)); // 1.6 / 1.39 = 1.15+
    assert.ok(asFastAs(1.6, 1.6, 0));
    assert.ok(!asFastAs(1.59, 1.6, 0));
    assert.ok(asFastAs(0, 0, 0.15)); // nothing measured: all equal
    assert.ok(!asFastAs(0, 1.2, 0.15)); // unmeasured never ties a measured one
    assert.ok(!asFastAs(0, 1.2, 1e308));
  });

  it('does not chain ties: 1.00 ~ 1.14 ~ 1.28 keeps only those within 15% of 1.28, then the most specific', () => {
    const r = resolveArtifact(AVX512_SERVER_FINGERPRINT, [
      makeCandidate({ artifactId: 'x4', requires: { x86Level: 4 }, speedup: 1.0 }),
      makeCandidate({ artifactId: 'x3', requires: { x86Level: 3 }, speedup: 1.14 }),
      makeCandidate({ artifactId: 'x2', requires: { x86Level: 2 }, speedup: 1.28 }),
    ]);
    assert.deepEqual(
      r.ranked.map((x) => x.artifactId),
      ['x3', 'x2', 'x4'],
    );
  });

  it("gives this repo's CI host v4 for speedups like v2 1.51x, v3 1.75x, v4 1.60x (within 15% of the fastest)", () => {
    const r = resolveArtifact(AVX512_SERVER_FINGERPRINT, [
      makeCandidate({ artifactId: 'y4', requires: { x86Level: 4 }, speedup: 1.596 }),
      makeCandidate({ artifactId: 'y3', requires: { x86Level: 3 }, speedup: 1.753 }),
      makeCandidate({ artifactId: 'y2', requires: { x86Level: 2 }, speedup: 1.507 }),
    ]);
    assert.equal(r.chosen?.artifactId, 'y4');
    assert.match(r.chosen?.reasons[1] ?? '', /more specific: x86-64-v4 over x86-64-v3/);
  });
});

describe('resolveArtifact: precision', () => {
  const fp32 = makeCandidate({ artifactId: 'a-fp32', requires: { x86Level: 3 }, speedup: 1.5 });
  const fp16 = makeCandidate({ artifactId: 'a-fp16', requires: { x86Level: 3 }, speedup: 3, precision: 'fp16' });

  it('keeps reduced precision out unless accepted, whatever its speed', () => {
    assert.equal(resolveArtifact(AVX2_LAPTOP_FINGERPRINT, [fp32, fp16]).chosen?.artifactId, 'a-fp32');
    assert.match(rejectedReasons(resolveArtifact(AVX2_LAPTOP_FINGERPRINT, [fp16]), 'a-fp16')[0], /^computes in fp16/);
    const r = resolveArtifact(AVX2_LAPTOP_FINGERPRINT, [fp32, fp16], { acceptPrecisions: ['fp16'] });
    assert.equal(r.chosen?.artifactId, 'a-fp16');
    assert.match(r.chosen?.reasons[0] ?? '', /fastest compatible: 3x/);
  });

  it('refuses a manifest with a precision it does not know', () => {
    const odd = makeCandidate({ artifactId: 'a-odd', requires: { x86Level: 3 } });
    const weird = { ...odd, manifest: { ...odd.manifest, precision: 'int4' as never } };
    const r = resolveArtifact(AVX2_LAPTOP_FINGERPRINT, [weird], { acceptPrecisions: ['fp32', 'bf16', 'fp16'] });
    assert.deepEqual(rejectedReasons(r, 'a-odd'), ['its manifest names an unknown precision "int4"']);
  });
});

describe('resolveArtifact: build sandbox', () => {
  const insecureRecord = {
    mode: 'insecure-local',
    missing: [
      { wall: 'network', why: 'bubblewrap (bwrap) is not installed' },
      { wall: 'memory-limit', why: 'no usable cgroup memory controller' },
    ],
  };
  const withSandbox = (artifactId: string, sandbox: Record<string, unknown> | undefined, speedup: number) => {
    const c = makeCandidate({ artifactId, requires: { x86Level: 3 }, speedup });
    return sandbox ? { ...c, manifest: { ...c.manifest, build: { sandbox: sandbox as never } } } : c;
  };

  it('never hands out an artifact built with KILN_SANDBOX=insecure-local by default, however fast', () => {
    const insecure = withSandbox('a-insecure', insecureRecord, 9.9);
    const enforced = withSandbox('a-enforced', { mode: 'enforced', missing: [] }, 1.2);
    const r = resolveArtifact(AVX2_LAPTOP_FINGERPRINT, [insecure, enforced]);
    assert.equal(r.chosen?.artifactId, 'a-enforced');
    const [reason, ...others] = rejectedReasons(r, 'a-insecure');
    assert.equal(others.length, 0);
    assert.equal(
      reason,
      'built without the full build sandbox (KILN_SANDBOX=insecure-local; missing: network, memory-limit): a model ' +
        'compiled there could have tampered with its own artifact; set acceptInsecureBuilds to allow it (development only)',
    );

    const alone = resolveArtifact(AVX2_LAPTOP_FINGERPRINT, [insecure]);
    assert.equal(alone.chosen, null);
    assert.match(alone.fallback.reason, /no compiled artifact fits this device: 1 rejected/);
  });

  it('serves it when the request accepts insecure builds, and says so among the reasons', () => {
    const insecure = withSandbox('a-insecure', insecureRecord, 2);
    const r = resolveArtifact(AVX2_LAPTOP_FINGERPRINT, [insecure], { acceptInsecureBuilds: true });
    assert.equal(r.chosen?.artifactId, 'a-insecure');
    assert.ok(
      r.chosen?.reasons.includes(
        'built without the full build sandbox (KILN_SANDBOX=insecure-local; missing: network, memory-limit); ' +
          'this request accepts insecure builds',
      ),
      JSON.stringify(r.chosen?.reasons),
    );
  });

  it('judges manifests without a recorded mode (written before it existed) by their other rules', () => {
    const legacy = withSandbox('a-legacy', { network: 'none', user: 'nobody' }, 1.5);
    const none = withSandbox('a-none', undefined, 1.4);
    const r = resolveArtifact(AVX2_LAPTOP_FINGERPRINT, [legacy, none]);
    assert.deepEqual(r.rejected, []);
    assert.deepEqual(r.ranked.map((x) => x.artifactId).sort(), ['a-legacy', 'a-none']);
    assert.equal(checkCandidate(AVX2_LAPTOP_FINGERPRINT, withSandbox('x', insecureRecord, 1)).compatible, false);
    assert.equal(
      checkCandidate(AVX2_LAPTOP_FINGERPRINT, withSandbox('x', insecureRecord, 1), undefined, true).compatible,
      true,
    );
  });
});
