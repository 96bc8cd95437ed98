import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { deviceClassOf } from './device-class.js';
import { AVX2_LAPTOP_FINGERPRINT, AVX512_SERVER_FINGERPRINT, SSE42_BOX_FINGERPRINT } from './example-fingerprints.js';
import { type ArtifactEvidence, type Candidate, DEFAULT_EVIDENCE_POLICY, resolveArtifact } from './match-artifacts.js';
import { inRolloutStage, rolloutBucket } from './rollout-bucket.js';
import { makeCandidate } from './testing/make-candidate.js';

/** What `n` device runs timing a speedup of about `speedup` (log spread `sd`) add up to. */
function timed(
  speedup: number,
  n: number,
  sd = 0.05,
  failures = 0,
  codes: Record<string, number> = {},
): ArtifactEvidence {
  return {
    reports: n + failures,
    failures,
    failureCodes: codes,
    speedupSamples: n,
    logSpeedupMean: Math.log(speedup),
    logSpeedupVariance: sd * sd,
  };
}

function failing(failures: number, reports: number, code = 'LOAD_FAILED'): ArtifactEvidence {
  return { ...timed(1, 0), reports, failures, failureCodes: { [code]: failures } };
}

function withCi(c: Candidate, ci: [number, number], uncertain = false): Candidate {
  return {
    ...c,
    manifest: {
      ...c.manifest,
      timing: { ...c.manifest.timing, speedupCi: ci, uncertain, method: 'interleaved-median-ci' },
    },
  };
}

const v2 = makeCandidate({ artifactId: 'a-v2', requires: { x86Level: 2 }, speedup: 0.45 });
const v3 = makeCandidate({ artifactId: 'a-v3', requires: { x86Level: 3 }, speedup: 1.6 });

describe('resolveArtifact: fleet evidence', () => {
  it('ranks by device evidence over a misleading build-host figure, and says so', () => {
    // The case: the build host timed v2 at 0.45x in a noisy moment; devices of the class run it 3.8x faster.
    const evidence = new Map([['a-v2', timed(3.8, 12)]]);
    const r = resolveArtifact(AVX2_LAPTOP_FINGERPRINT, [v2, v3], { evidence, deviceClass: 'laptops' });
    assert.equal(r.chosen?.artifactId, 'a-v2');
    assert.equal(r.chosen?.basis, 'device');
    assert.ok(Math.abs((r.chosen?.speedup ?? 0) - 3.8) < 1e-9);
    assert.ok(r.chosen?.speedupCi && r.chosen.speedupCi[0] < 3.8 && r.chosen.speedupCi[1] > 3.8);
    assert.match(r.chosen?.reasons[0] ?? '', /3\.8x over the portable graph on 12 runs of this device class/);
    const line = r.chosen?.reasons.find((x) => x.startsWith('evidence:')) ?? '';
    assert.match(line, /device reports decided .*device class "laptops".*the build host measured 0\.45x/);
    // v3 keeps its build-host figure.
    assert.deepEqual(
      r.ranked.map((x) => [x.artifactId, x.basis]),
      [
        ['a-v2', 'device'],
        ['a-v3', 'build-host'],
      ],
    );
  });

  it('keeps the build-host figure until enough runs of the class timed the artifact', () => {
    const few = DEFAULT_EVIDENCE_POLICY.minSpeedupSamples - 1;
    const r = resolveArtifact(AVX2_LAPTOP_FINGERPRINT, [v2, v3], { evidence: new Map([['a-v2', timed(3.8, few)]]) });
    assert.equal(r.chosen?.artifactId, 'a-v3');
    assert.equal(r.chosen?.basis, 'build-host');
    assert.match(r.chosen?.reasons.find((x) => x.startsWith('evidence:')) ?? '', /build-host figure decided/);
  });

  it('quarantines an artifact for the failing class only', () => {
    const evidence = new Map([['a-v3', failing(4, 10)]]);
    const failingClass = resolveArtifact(AVX2_LAPTOP_FINGERPRINT, [v2, v3], { evidence, deviceClass: 'laptops' });
    assert.equal(failingClass.chosen?.artifactId, 'a-v2');
    const reasons = failingClass.rejected.find((x) => x.artifactId === 'a-v3')?.reasons ?? [];
    assert.match(reasons.join('\n'), /quarantined for device class "laptops": 4 of 10 runs .*LOAD_FAILED ×4/);
    // Another class has no such evidence: it still gets v3.
    const other = resolveArtifact(AVX512_SERVER_FINGERPRINT, [v2, v3], { evidence: new Map() });
    assert.equal(other.chosen?.artifactId, 'a-v3');
  });

  it('does not quarantine below the thresholds', () => {
    const { quarantineMinFailures: min, quarantineFailureRate: rate } = DEFAULT_EVIDENCE_POLICY;
    const tooFew = resolveArtifact(AVX2_LAPTOP_FINGERPRINT, [v3], {
      evidence: new Map([['a-v3', failing(min - 1, min - 1)]]),
    });
    assert.equal(tooFew.chosen?.artifactId, 'a-v3');
    const rare = Math.ceil(min / rate) * 4;
    const tooRare = resolveArtifact(AVX2_LAPTOP_FINGERPRINT, [v3], {
      evidence: new Map([['a-v3', failing(min, rare)]]),
    });
    assert.equal(tooRare.chosen?.artifactId, 'a-v3');
  });

  it('never serves an artifact confidently slower than the portable graph for the class', () => {
    const evidence = new Map([['a-v3', timed(0.6, 10)]]);
    const r = resolveArtifact(AVX2_LAPTOP_FINGERPRINT, [v3], { evidence, deviceClass: 'laptops' });
    assert.equal(r.chosen, null);
    assert.match(
      r.rejected[0].reasons[0],
      /confidently slower than the portable graph on 10 runs of device class "laptops": 0\.6x/,
    );
    assert.match(r.fallback.reason, /refused by fleet evidence/);
  });

  it('serves one slower only when the interval reaches 1x (not confidently slower)', () => {
    const evidence = new Map([['a-v3', timed(0.9, 6, 0.3)]]);
    const r = resolveArtifact(AVX2_LAPTOP_FINGERPRINT, [v3], { evidence });
    assert.equal(r.chosen?.artifactId, 'a-v3');
    assert.ok(r.chosen?.reasons.some((x) => /not confidently: its interval reaches 1x/.test(x)));
  });

  it('uses a build-host interval, but never an uncertain one, as proof of slowness', () => {
    const confident = withCi(makeCandidate({ artifactId: 'b', speedup: 0.5 }), [0.45, 0.55]);
    assert.equal(resolveArtifact(AVX2_LAPTOP_FINGERPRINT, [confident]).chosen, null);
    const noisy = withCi(makeCandidate({ artifactId: 'b', speedup: 0.5 }), [0.45, 0.55], true);
    assert.equal(resolveArtifact(AVX2_LAPTOP_FINGERPRINT, [noisy]).chosen?.artifactId, 'b');
    // Manifests from before intervals (no speedupCi) are never proof either.
    assert.equal(
      resolveArtifact(AVX2_LAPTOP_FINGERPRINT, [makeCandidate({ artifactId: 'c', speedup: 0.5 })]).chosen?.artifactId,
      'c',
    );
  });

  it('counts artifacts whose intervals overlap as equally fast, then prefers the more specific', () => {
    const wideV2 = withCi(makeCandidate({ artifactId: 'w2', requires: { x86Level: 2 }, speedup: 2.0 }), [1.2, 2.4]);
    const v3fast = withCi(makeCandidate({ artifactId: 'w3', requires: { x86Level: 3 }, speedup: 1.5 }), [1.3, 1.7]);
    const r = resolveArtifact(AVX2_LAPTOP_FINGERPRINT, [wideV2, v3fast]);
    assert.equal(r.chosen?.artifactId, 'w3');
    assert.match(r.chosen?.reasons[0] ?? '', /cannot be told apart/);
    // Separated intervals: the faster one wins even though it is less specific.
    const tightV2 = withCi(makeCandidate({ artifactId: 't2', requires: { x86Level: 2 }, speedup: 2.0 }), [1.9, 2.1]);
    assert.equal(resolveArtifact(AVX2_LAPTOP_FINGERPRINT, [tightV2, v3fast]).chosen?.artifactId, 't2');
  });

  it('without evidence the answer is the build-host one, with no evidence line', () => {
    const r = resolveArtifact(AVX2_LAPTOP_FINGERPRINT, [v2, v3]);
    assert.equal(r.chosen?.artifactId, 'a-v3');
    assert.equal(
      r.chosen?.reasons.some((x) => x.startsWith('evidence:')),
      false,
    );
  });
});

const evidenceArb = fc.record({
  reports: fc.integer({ min: 0, max: 40 }),
  failures: fc.integer({ min: 0, max: 40 }),
  speedupSamples: fc.integer({ min: 0, max: 40 }),
  logSpeedupMean: fc.double({ min: -2, max: 2, noNaN: true }),
  logSpeedupVariance: fc.double({ min: 0, max: 1, noNaN: true }),
});
const candidatesArb = fc.array(
  fc.record({
    level: fc.constantFrom(2, 3, 4),
    speedup: fc.double({ min: 0.2, max: 5, noNaN: true }),
    ci: fc.option(fc.tuple(fc.double({ min: 0.5, max: 1, noNaN: true }), fc.double({ min: 1, max: 2, noNaN: true }))),
    uncertain: fc.boolean(),
    evidence: fc.option(evidenceArb),
  }),
  { maxLength: 6 },
);

type Spec = {
  level: number;
  speedup: number;
  ci: [number, number] | null;
  uncertain: boolean;
  evidence: Omit<ArtifactEvidence, 'failureCodes'> | null;
};

function build(specs: Spec[]): { candidates: Candidate[]; evidence: Map<string, ArtifactEvidence> } {
  const candidates: Candidate[] = [];
  const evidence = new Map<string, ArtifactEvidence>();
  specs.forEach((s, i) => {
    const c = makeCandidate({ artifactId: `p${i}`, requires: { x86Level: s.level }, speedup: s.speedup });
    candidates.push(s.ci ? withCi(c, [s.speedup * s.ci[0], s.speedup * s.ci[1]], s.uncertain) : c);
    if (s.evidence) {
      const e = s.evidence;
      evidence.set(`p${i}`, {
        ...e,
        failures: Math.min(e.failures, e.reports),
        failureCodes: { LOAD_FAILED: Math.min(e.failures, e.reports) },
      });
    }
  });
  return { candidates, evidence };
}

describe('resolveArtifact with evidence: properties', () => {
  it('never serves a quarantined or confidently slower artifact; never one confidently slower than another', () => {
    fc.assert(
      fc.property(candidatesArb, (specs) => {
        const { candidates, evidence } = build(specs);
        const r = resolveArtifact(AVX512_SERVER_FINGERPRINT, candidates, { evidence });
        const policy = DEFAULT_EVIDENCE_POLICY;
        for (const ranked of r.ranked) {
          const e = evidence.get(ranked.artifactId);
          if (e)
            assert.ok(
              !(e.failures >= policy.quarantineMinFailures && e.failures / e.reports >= policy.quarantineFailureRate),
            );
          if (ranked.basis === 'device') assert.ok(ranked.speedupCi && ranked.speedupCi[1] >= 1);
        }
        if (!r.chosen) return;
        const c = r.chosen;
        for (const d of r.ranked) {
          const cHigh = c.speedupCi ? c.speedupCi[1] : c.speedup;
          const dLow = d.speedupCi ? d.speedupCi[0] : d.speedup;
          assert.ok(
            cHigh >= dLow || d.speedup <= c.speedup * 1.15 * (1 + 1e-9),
            `chose ${c.artifactId} (${c.speedup}, ${JSON.stringify(c.speedupCi)}) over ${d.artifactId} (${d.speedup}, ${JSON.stringify(d.speedupCi)})`,
          );
        }
      }),
      { numRuns: 500 },
    );
  });

  it('is independent of the candidate order', () => {
    fc.assert(
      fc.property(candidatesArb, (specs) => {
        const { candidates, evidence } = build(specs);
        const a = resolveArtifact(AVX512_SERVER_FINGERPRINT, candidates, { evidence });
        const b = resolveArtifact(AVX512_SERVER_FINGERPRINT, [...candidates].reverse(), { evidence });
        assert.deepEqual(b, a);
      }),
      { numRuns: 300 },
    );
  });
});

describe('deviceClassOf', () => {
  it('groups devices that run artifacts alike, whatever their hostname or libc', () => {
    const a = deviceClassOf(AVX2_LAPTOP_FINGERPRINT);
    const b = deviceClassOf({
      ...AVX2_LAPTOP_FINGERPRINT,
      hostname: 'other',
      libc: { name: 'glibc', version: '2.39' },
    });
    assert.deepEqual(a, b);
    assert.match(a.key, /^dc-[0-9a-f]{16}$/);
    assert.equal(
      a.label,
      'linux x86_64 · x86-64-v3 · Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz · torch 2.13.0+cpu · no GPU',
    );
  });

  it('separates CPU levels, CPU models and torch builds', () => {
    const keys = new Set(
      [
        AVX2_LAPTOP_FINGERPRINT,
        AVX512_SERVER_FINGERPRINT,
        SSE42_BOX_FINGERPRINT,
        { ...AVX2_LAPTOP_FINGERPRINT, cpu: { ...AVX2_LAPTOP_FINGERPRINT.cpu, model: 'AMD EPYC 7B13' } },
        { ...AVX2_LAPTOP_FINGERPRINT, torch: { version: '2.12.0+cpu', cuda: null } },
      ].map((fp) => deviceClassOf(fp).key),
    );
    assert.equal(keys.size, 5);
  });
});

describe('rolloutBucket', () => {
  it('is deterministic, nested across stages, and about uniform', () => {
    const devices = Array.from({ length: 20_000 }, (_, i) => `device-${i}`);
    assert.equal(rolloutBucket('r1', 'device-7'), rolloutBucket('r1', 'device-7'));
    const in10 = devices.filter((d) => inRolloutStage('r1', d, 10));
    const in50 = devices.filter((d) => inRolloutStage('r1', d, 50));
    assert.ok(
      in10.every((d) => inRolloutStage('r1', d, 50)),
      '10 % ⊂ 50 %',
    );
    assert.ok(devices.every((d) => inRolloutStage('r1', d, 100)) && !devices.some((d) => inRolloutStage('r1', d, 0)));
    assert.ok(Math.abs(in10.length / devices.length - 0.1) < 0.01, `${in10.length}`);
    assert.ok(Math.abs(in50.length / devices.length - 0.5) < 0.02, `${in50.length}`);
    // Another rollout picks other devices first.
    const other = devices.filter((d) => inRolloutStage('r2', d, 10));
    const overlap = other.filter((d) => in10.includes(d)).length;
    assert.ok(overlap < in10.length * 0.2, `${overlap} of ${in10.length} the same`);
  });
});
