import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AVX2_LAPTOP_FINGERPRINT, DEBIAN_GRAVITON_FINGERPRINT as GRAVITON } from './example-fingerprints.js';
import { type ArtifactEvidence, type Candidate, resolveArtifact } from './match-artifacts.js';
import { makeCandidate } from './testing/make-candidate.js';

/** An artifact of linux-aarch64 as the cross build writes it: verified under qemu, no speed figure. */
function aarch64Artifact(id: string): Candidate {
  const c = makeCandidate({
    artifactId: id,
    targetId: 'linux-aarch64',
    requires: { arch: 'aarch64', x86Level: null, torch: '2.13.0+cu130', glibc: '2.34', glibcxx: '3.4.30' },
  });
  c.manifest.verification = {
    ...c.manifest.verification,
    emulated: { emulator: 'qemu-aarch64', cpu: 'neoverse-n1', arch: 'aarch64', torch: '2.13.0+cu130' },
  };
  c.manifest.timing = {
    eagerMs: 0,
    compiledMs: 0,
    speedup: 0,
    runs: 0,
    threads: 0,
    inputShapes: [],
    method: 'unmeasured',
    reason: 'verified under user-mode emulation (qemu)',
  };
  c.manifest.isaCheck = { passed: true, forbidden: ['sve'], counts: { neon: 353, sve: 0 } };
  return c;
}

const x86 = makeCandidate({ artifactId: 'x86-v3', requires: { x86Level: 3 } });
const arm = aarch64Artifact('arm-1');

function timedBy(samples: number, speedup: number): ArtifactEvidence {
  return {
    reports: samples,
    failures: 0,
    failureCodes: {},
    speedupSamples: samples,
    logSpeedupMean: Math.log(speedup),
    logSpeedupVariance: 0.001,
  };
}

describe('artifacts of unmeasured speed (cross builds verified under emulation)', () => {
  it('an aarch64 device gets the aarch64 artifact by the default policy, which the reasons name', () => {
    const r = resolveArtifact(GRAVITON, [x86, arm]);
    assert.equal(r.chosen?.artifactId, 'arm-1');
    assert.equal(r.chosen?.speedup, 0);
    const reasons = r.chosen?.reasons.join('\n') ?? '';
    assert.match(reasons, /verified under emulation \(qemu-aarch64, neoverse-n1\): correct, speed unmeasured/);
    assert.match(reasons, /served by policy unmeasuredArtifacts=serve until 5 runs/);
    assert.match(reasons, /linux\/aarch64 matches/);
    assert.deepEqual(
      r.rejected.map((x) => [
        x.artifactId,
        x.reasons.some((why) => /built for x86_64 CPUs; this device is aarch64/.test(why)),
      ]),
      [['x86-v3', true]],
    );
  });

  it("'evidence-only' serves the portable graph until devices of the class timed it, then ranks by their figures", () => {
    const waiting = resolveArtifact(GRAVITON, [arm], { unmeasuredArtifacts: 'evidence-only', evidence: new Map() });
    assert.equal(waiting.chosen, null);
    assert.match(
      waiting.rejected[0].reasons.join('\n'),
      /policy unmeasuredArtifacts=evidence-only serves it once 5 runs/,
    );
    assert.match(waiting.fallback.reason, /refused by fleet evidence/);
    const timed = resolveArtifact(GRAVITON, [arm], {
      unmeasuredArtifacts: 'evidence-only',
      evidence: new Map([['arm-1', timedBy(6, 2.4)]]),
    });
    assert.equal(timed.chosen?.artifactId, 'arm-1');
    assert.equal(timed.chosen?.basis, 'device');
    assert.ok(Math.abs((timed.chosen?.speedup ?? 0) - 2.4) < 1e-9);
    assert.doesNotMatch(timed.chosen?.reasons.join('\n') ?? '', /unmeasuredArtifacts/);
  });

  it('device evidence that it is confidently slower refuses it under either policy', () => {
    for (const policy of ['serve', 'evidence-only'] as const) {
      const r = resolveArtifact(GRAVITON, [arm], {
        unmeasuredArtifacts: policy,
        evidence: new Map([['arm-1', timedBy(20, 0.5)]]),
      });
      assert.equal(r.chosen, null, policy);
      assert.match(r.rejected[0].reasons.join('\n'), /confidently slower than the portable graph on 20 runs/);
    }
  });

  it('an x86 device never gets it, and a measured artifact is untouched by the policy', () => {
    const r = resolveArtifact(AVX2_LAPTOP_FINGERPRINT, [x86, arm], { unmeasuredArtifacts: 'evidence-only' });
    assert.equal(r.chosen?.artifactId, 'x86-v3');
    assert.doesNotMatch(r.chosen?.reasons.join('\n') ?? '', /unmeasured/);
    assert.match(r.rejected.find((x) => x.artifactId === 'arm-1')?.reasons.join('\n') ?? '', /built for aarch64 CPUs/);
  });
});
