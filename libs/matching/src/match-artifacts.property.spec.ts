import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { ArtifactPrecision, ArtifactRequirements } from '@kiln/contracts';
import { X86_LEVEL_FLAGS } from '@kiln/targets/x86-levels';
import { validateFingerprint, type DeviceFingerprint } from './fingerprint.js';
import { resolveArtifact, type Candidate, type Resolution } from './match-artifacts.js';

const RUNS = 500;
const ALL_LEVEL_FLAGS = [...X86_LEVEL_FLAGS[2], ...X86_LEVEL_FLAGS[3], ...X86_LEVEL_FLAGS[4]];

// ---------------------------------------------------------------------------------------------------
// Arbitraries. Value pools are small on purpose so devices and artifacts often meet at the edges:
// equal versions, versions one step apart, "2.9" vs "2.10", compute capabilities that differ by one
// minor, torch builds that differ only in the local tag, speedups on the tolerance boundary.
// ---------------------------------------------------------------------------------------------------

const GLIBC = ['2.4', '2.9', '2.10', '2.17', '2.27', '2.28', '2.31', '2.34', '2.35', '2.36', '2.39'];
const GLIBCXX = ['3.4', '3.4.9', '3.4.19', '3.4.25', '3.4.26', '3.4.28', '3.4.29', '3.4.30', '3.4.33'];
const CC = ['7.5', '8.0', '8.6', '8.9', '9.0', '10.0', '12.0'];
const TORCH_PUBLIC = ['2.11.0', '2.12.0', '2.13.0', '2.13.0.dev20260101'];

const x86Flags = fc.oneof(
  // every flag up to some level, minus a few, plus noise the matcher must ignore
  fc
    .tuple(
      fc.integer({ min: 1, max: 4 }),
      fc.subarray(ALL_LEVEL_FLAGS, { maxLength: 2 }),
      fc.subarray(['fpu', 'sse', 'sse2', 'avx512_bf16', 'amx_tile', 'hypervisor']),
    )
    .map(([level, drop, noise]) => {
      const full = ([2, 3, 4] as const).filter((l) => l <= level).flatMap((l) => [...X86_LEVEL_FLAGS[l]]);
      return [...full.filter((f) => !drop.includes(f)), ...noise];
    }),
  fc.subarray(ALL_LEVEL_FLAGS),
  fc.constant([] as string[]),
);

const torchBuild = fc
  .tuple(fc.constantFrom(...TORCH_PUBLIC), fc.constantFrom('cpu', 'cu126', 'cu128', 'rocm6.2', null))
  .chain(([pub, local]) => {
    const version = local === null ? pub : `${pub}+${local}`;
    const cuda =
      local === 'cu126'
        ? fc.constant('12.6')
        : local === 'cu128'
          ? fc.constant('12.8')
          : local === null
            ? fc.constantFrom(null, '12.6', '12.8')
            : fc.constant(null);
    return cuda.map((c) => ({ version, cuda: c }));
  });

const rawFingerprint = fc
  .record({
    os: fc.oneof({ arbitrary: fc.constant('linux'), weight: 8 }, fc.constantFrom('windows', 'darwin')),
    arch: fc.oneof({ arbitrary: fc.constant('x86_64'), weight: 6 }, fc.constant('aarch64')),
    libc: fc.oneof(
      { arbitrary: fc.record({ name: fc.constant('glibc'), version: fc.constantFrom(...GLIBC, null) }), weight: 8 },
      fc.record({ name: fc.constantFrom('musl', 'unknown'), version: fc.constantFrom('1.2.4', null) }),
    ),
    libstdcxx: fc.record({ glibcxx: fc.constantFrom(...GLIBCXX, null) }),
    x86Flags,
    x86Level: fc.option(fc.constantFrom(1, 2, 3, 4), { nil: undefined }),
    torch: torchBuild,
    gpus: fc.array(
      fc.record({
        name: fc.constantFrom('NVIDIA H100', 'NVIDIA A100', 'RTX 4090'),
        computeCapability: fc.constantFrom(...CC),
      }),
      {
        maxLength: 3,
      },
    ),
  })
  .map(({ x86Flags: flags, x86Level, ...rest }) => ({
    schemaVersion: 1,
    ...rest,
    cpu:
      rest.arch === 'x86_64'
        ? { flags, ...(x86Level === undefined ? {} : { x86Level }) }
        : { flags: ['fp', 'asimd', 'atomics'] },
  }));

/** Generated as raw JSON and passed through the validator, as the resolver gets them. */
const fingerprint: fc.Arbitrary<DeviceFingerprint> = rawFingerprint.map((raw) => {
  const r = validateFingerprint(raw);
  if (!r.ok) throw new Error(`generator made an invalid fingerprint: ${r.errors.join('; ')}`);
  return r.value;
});

const speedup = fc.oneof(
  fc.double({ min: 0.05, max: 20, noNaN: true }),
  // edges: unmeasured/garbage values, exactly 1, a boundary of the default tolerance (√1.15)
  fc.constantFrom(0, -1, Number.NaN, Number.POSITIVE_INFINITY, 1, 1.15, Math.sqrt(1.15), 0.5),
);

const requirements: fc.Arbitrary<ArtifactRequirements> = fc.record({
  os: fc.constant('linux' as const),
  arch: fc.oneof({ arbitrary: fc.constant('x86_64' as const), weight: 6 }, fc.constant('aarch64' as const)),
  x86Level: fc.constantFrom(null, 1, 2, 3, 3, 4, 4, 0, 5),
  computeCapability: fc.oneof({ arbitrary: fc.constant(null), weight: 3 }, fc.constantFrom('8.0', '9.0', '10.0')),
  torch: fc.constantFrom(
    '2.13.0+cpu',
    '2.12.0+cpu',
    '2.13.0',
    '2.11.0+cu128',
    '2.11.0+cu126',
    '2.13.0+cu128',
    '2.11.0',
    '2.13.0.dev20260101+cpu',
  ),
  glibc: fc.constantFrom(null, ...GLIBC),
  glibcxx: fc.constantFrom(null, ...GLIBCXX),
});

const candidate: fc.Arbitrary<Candidate> = fc
  .record({
    // a small id pool: duplicate ids must not break determinism either
    artifactId: fc.constantFrom(...Array.from({ length: 16 }, (_, i) => `art-${i.toString(16)}`)),
    targetId: fc.constantFrom('linux-x86_64-v2', 'linux-x86_64-v3', 'linux-x86_64-v4', 'linux-x86_64-cuda-sm90'),
    requires: requirements,
    verified: fc.oneof({ arbitrary: fc.constant(true), weight: 6 }, fc.constant(false)),
    isaPassed: fc.oneof({ arbitrary: fc.constant(true), weight: 6 }, fc.constant(false)),
    speedup,
  })
  .map(({ artifactId, targetId, requires, verified, isaPassed, speedup: s }) => ({
    artifactId,
    targetId,
    manifest: {
      requires,
      verification: {
        passed: verified,
        atol: 1e-4,
        rtol: 1e-3,
        maxAbsError: verified ? 1e-6 : 1,
        maxRelError: 0,
        inputShapes: [],
        freshProcess: true,
        device: 'cpu',
      },
      isaCheck: { passed: isaPassed, forbidden: ['zmm'], counts: { zmm: isaPassed ? 0 : 3 } },
      timing: { eagerMs: 10, compiledMs: 10 / s, speedup: s, runs: 10, threads: 4, inputShapes: [] },
    },
  }));

/**
 * Requirements this device mostly meets: each field is, most of the time, one the device satisfies and
 * otherwise any pool value, so a run usually has several compatible candidates to rank (independent
 * draws alone leave almost every run with nothing compatible) and rejections often fail on one rule.
 */
function requirementsNear(fp: DeviceFingerprint): fc.Arbitrary<ArtifactRequirements> {
  const mostly = <T>(fits: fc.Arbitrary<T>, any: fc.Arbitrary<T>) => fc.oneof({ arbitrary: fits, weight: 5 }, any);
  const devicePublic = fp.torch.version.split('+')[0];
  const cudaTag = fp.torch.cuda === null ? null : `cu${fp.torch.cuda.replace('.', '')}`;
  const below = (pool: string[], have: string | null) => {
    const fits = have === null ? [] : pool.filter((v) => !versionLess(have, v));
    return fits.length > 0 ? fc.constantFrom(null, ...fits) : fc.constant(null);
  };
  const level = fp.arch === 'x86_64' ? referenceDeviceLevel(fp) : 0;
  const gpuCc = fp.gpus.map((g) => g.computeCapability);
  return fc
    .record({
      base: requirements,
      arch: mostly(fc.constant(fp.arch), fc.constantFrom('x86_64' as const, 'aarch64' as const)),
      gpu:
        gpuCc.length > 0 && cudaTag !== null
          ? fc.oneof(fc.constant(null), fc.constantFrom(...gpuCc))
          : fc.constant(null),
      x86Level: level > 0 ? fc.constantFrom(null, ...[1, 2, 3, 4].filter((l) => l <= level)) : fc.constant(null),
      glibc: below(GLIBC, fp.libc.version),
      glibcxx: below(GLIBCXX, fp.libstdcxx.glibcxx),
    })
    .chain(({ base, arch, gpu, x86Level, glibc, glibcxx }) =>
      mostly(
        fc.constant({
          ...base,
          arch,
          computeCapability: gpu,
          x86Level,
          torch: gpu !== null && cudaTag !== null ? `${devicePublic}+${cudaTag}` : `${devicePublic}+cpu`,
          glibc,
          glibcxx,
        }),
        // one field taken from the independent draw: a near miss on (usually) a single rule
        fc.constantFrom('arch', 'computeCapability', 'x86Level', 'torch', 'glibc', 'glibcxx').map((field) => ({
          ...base,
          arch,
          computeCapability: gpu,
          x86Level,
          torch: gpu !== null && cudaTag !== null ? `${devicePublic}+${cudaTag}` : `${devicePublic}+cpu`,
          glibc,
          glibcxx,
          [field]: base[field],
        })),
      ),
    );
}

/** A device and candidates for it: mostly near-fits, some independent ones. */
const scenario: fc.Arbitrary<[DeviceFingerprint, Candidate[]]> = fingerprint.chain((fp) =>
  fc.tuple(
    fc.constant(fp),
    fc.array(
      fc.oneof(
        {
          arbitrary: fc
            .tuple(candidate, requirementsNear(fp))
            .map(([c, requires]) => ({ ...c, manifest: { ...c.manifest, requires } })),
          weight: 3,
        },
        { arbitrary: candidate, weight: 1 },
      ),
      { maxLength: 10 },
    ),
  ),
);
// includes subnormal and tiny tolerances (5e-324 once made every speed bucket -Infinity) and huge ones
const tolerance = fc.oneof(
  fc.constantFrom(0, Number.MIN_VALUE, 1e-12, 1e-9, 0.05, 0.15, 0.5, 1e300),
  fc.double({ min: 0, max: 1, noNaN: true }),
);

// ---------------------------------------------------------------------------------------------------
// A reference checker written from the rules in docs/fingerprint.md, as plainly as possible and
// sharing no code with the implementation (only the catalog's flag lists).
// ---------------------------------------------------------------------------------------------------

function versionLess(a: string, b: string): boolean {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) < (y[i] ?? 0);
  }
  return false;
}

function referenceDeviceLevel(fp: DeviceFingerprint): number {
  if (fp.cpu.flags.length === 0) return fp.cpu.x86Level ?? 1;
  let level = 1;
  for (const l of [2, 3, 4] as const) {
    if (X86_LEVEL_FLAGS[l].every((f) => fp.cpu.flags.includes(f))) level = l;
    else break;
  }
  return level;
}

function referenceCompatible(fp: DeviceFingerprint, c: Candidate): boolean {
  const r = c.manifest.requires;
  if (fp.os !== r.os || fp.arch !== r.arch) return false;
  if (!c.manifest.verification.passed || !c.manifest.isaCheck.passed) return false;

  const [buildPublic, buildLocal] = r.torch.split('+');
  const [devicePublic] = fp.torch.version.split('+');
  if (buildPublic !== devicePublic) return false;
  if (r.computeCapability !== null) {
    const cu = /^cu(\d+)(\d)$/.exec(buildLocal ?? '');
    if (!cu || fp.torch.cuda === null) return false;
    if (`${Number(cu[1])}.${cu[2]}` !== fp.torch.cuda) return false;
    if (!fp.gpus.some((g) => g.computeCapability === r.computeCapability)) return false;
  }

  if (fp.libc.name !== 'glibc') return false; // every generated artifact is a Linux one
  if (r.glibc !== null && (fp.libc.version === null || versionLess(fp.libc.version, r.glibc))) return false;
  if (r.glibcxx !== null && (fp.libstdcxx.glibcxx === null || versionLess(fp.libstdcxx.glibcxx, r.glibcxx))) {
    return false;
  }

  if (r.x86Level !== null) {
    if (![1, 2, 3, 4].includes(r.x86Level) || fp.arch !== 'x86_64') return false;
    if (referenceDeviceLevel(fp) < r.x86Level) return false;
  }
  return true;
}

function idsOf(list: { artifactId: string }[]): string[] {
  return list.map((x) => x.artifactId);
}

function sorted(ids: string[]): string[] {
  return [...ids].sort();
}

function shuffle<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let s = seed >>> 0 || 1;
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

describe('resolveArtifact: properties', () => {
  it('(a) never hands out an artifact whose needs the device lacks; agrees with the reference checker on every candidate', () => {
    fc.assert(
      fc.property(scenario, ([fp, cands]) => {
        const r = resolveArtifact(fp, cands);
        if (r.chosen) {
          const chosen = cands.filter((c) => c.artifactId === r.chosen?.artifactId);
          assert.ok(chosen.some((c) => referenceCompatible(fp, c)));
        }
        // Stronger: compatible and incompatible are exactly the reference's split (as multisets of ids).
        assert.deepEqual(sorted(idsOf(r.ranked)), sorted(idsOf(cands.filter((c) => referenceCompatible(fp, c)))));
        assert.deepEqual(sorted(idsOf(r.rejected)), sorted(idsOf(cands.filter((c) => !referenceCompatible(fp, c)))));
      }),
      { numRuns: RUNS },
    );
  });

  it('(b) gives the same answer whatever the candidate order', () => {
    fc.assert(
      fc.property(scenario, fc.integer(), tolerance, ([fp, cands], seed, tol) => {
        const a = resolveArtifact(fp, cands, { speedupTolerance: tol });
        const b = resolveArtifact(fp, shuffle(cands, seed), { speedupTolerance: tol });
        assert.equal(b.chosen?.artifactId, a.chosen?.artifactId);
        assert.deepEqual(idsOf(b.ranked), idsOf(a.ranked));
        assert.deepEqual(sorted(idsOf(b.rejected)), sorted(idsOf(a.rejected)));
        // in fact the whole resolution, explanations included, is identical
        assert.deepEqual(b, a);
      }),
      { numRuns: RUNS },
    );
  });

  it('(c)-(f) always has a fallback, partitions the candidates, explains rejections, chooses ranked[0]', () => {
    fc.assert(
      fc.property(scenario, tolerance, ([fp, cands], tol) => {
        const r: Resolution = resolveArtifact(fp, cands, { speedupTolerance: tol });
        // (c)
        assert.equal(r.fallback.kind, 'portable');
        assert.match(r.fallback.reason, /torch\.export\.load/);
        // (d) every candidate in exactly one list
        assert.equal(r.ranked.length + r.rejected.length, cands.length);
        assert.deepEqual(sorted([...idsOf(r.ranked), ...idsOf(r.rejected)]), sorted(idsOf(cands)));
        // (e)
        for (const rej of r.rejected) assert.ok(rej.reasons.length >= 1 && rej.reasons.every((x) => x.length > 0));
        // (f)
        if (r.ranked.length === 0) assert.equal(r.chosen, null);
        else {
          const { reasons, ...chosen } = r.chosen ?? { reasons: [] };
          assert.deepEqual(chosen, r.ranked[0]);
          assert.ok(reasons.length > 0);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('(g) the chosen artifact is never measurably slower than any compatible one', () => {
    fc.assert(
      fc.property(scenario, tolerance, ([fp, cands], tol) => {
        const r = resolveArtifact(fp, cands, { speedupTolerance: tol });
        if (!r.chosen) return;
        const fastest = Math.max(...r.ranked.map((x) => x.speedup));
        if (fastest === 0) return; // nothing measured
        assert.ok(r.chosen.speedup > 0, 'a measured artifact outranks every unmeasured one');
        assert.ok(
          fastest <= r.chosen.speedup * (1 + tol) * (1 + 1e-9),
          `chose ${r.chosen.speedup}x while ${fastest}x was compatible (tolerance ${tol})`,
        );
      }),
      { numRuns: RUNS },
    );
  });

  it('(h) a more capable device never loses an artifact (all x86 flags, newer glibc and libstdc++)', () => {
    fc.assert(
      fc.property(scenario, ([fp, cands]) => {
        const better: DeviceFingerprint = {
          ...fp,
          cpu: {
            ...fp.cpu,
            flags: fp.arch === 'x86_64' ? [...new Set([...fp.cpu.flags, ...ALL_LEVEL_FLAGS])] : fp.cpu.flags,
          },
          libc: fp.libc.name === 'glibc' ? { name: 'glibc', version: '2.99' } : fp.libc,
          libstdcxx: { glibcxx: '3.4.99' },
        };
        const before = resolveArtifact(fp, cands).ranked;
        const after = idsOf(resolveArtifact(better, cands).ranked);
        for (const id of idsOf(before)) assert.ok(after.includes(id), `${id} lost`);
      }),
      { numRuns: RUNS },
    );
  });

  it('(i) never hands out a reduced-precision artifact the request did not accept; accepting more never loses one', () => {
    const precision = fc.constantFrom<ArtifactPrecision | undefined>(undefined, 'fp32', 'bf16', 'fp16');
    const accept = fc.subarray<ArtifactPrecision>(['fp32', 'bf16', 'fp16']);
    fc.assert(
      fc.property(scenario, fc.array(precision, { minLength: 8, maxLength: 8 }), accept, ([fp, cands], ps, acc) => {
        const unique = cands.map((c, i) => ({ ...c, artifactId: `${c.artifactId}-${i}` }));
        const withPrecision = unique.map((c, i) => ({
          ...c,
          manifest: { ...c.manifest, precision: ps[i % ps.length] },
        }));
        const r = resolveArtifact(fp, withPrecision, { acceptPrecisions: acc });
        const allowed = new Set<string>(['fp32', ...acc]);
        for (const ranked of r.ranked) {
          const c = withPrecision.find((x) => x.artifactId === ranked.artifactId);
          assert.ok(c && allowed.has(c.manifest.precision ?? 'fp32'));
        }
        // Without the precision rule, every ranked artifact would also be ranked; with everything accepted,
        // the answer is exactly the one for fp32-only candidates.
        const all = resolveArtifact(fp, withPrecision, { acceptPrecisions: ['fp32', 'bf16', 'fp16'] });
        const plain = resolveArtifact(fp, unique);
        assert.deepEqual(idsOf(all.ranked), idsOf(plain.ranked));
        for (const id of idsOf(r.ranked)) assert.ok(idsOf(all.ranked).includes(id));
        for (const rej of r.rejected) {
          const c = withPrecision.find((x) => x.artifactId === rej.artifactId);
          const p = c?.manifest.precision ?? 'fp32';
          if (!allowed.has(p))
            assert.ok(
              rej.reasons.some((x) => x.includes('acceptPrecisions')),
              rej.reasons.join('; '),
            );
        }
      }),
      { numRuns: RUNS },
    );
  });
});
